/* fuzz_webhook_events.c: every provider's event parser on arbitrary bodies
 * (the first byte picks the parser); they must never crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    hook_events ev = {0};
    hr_err err = {0};
    switch (data[0] % 4) {
    case 0:
        hook_parse_sendgrid(body, len, &ev, &err);
        break;
    case 1:
        hook_parse_mailgun(body, len, &ev, &err);
        break;
    case 2:
        hook_parse_postmark(body, len, &ev, &err);
        break;
    default:
        hook_parse_generic(body, len, &ev, &err);
        break;
    }
    hook_events_release(&ev);
    return 0;
}
