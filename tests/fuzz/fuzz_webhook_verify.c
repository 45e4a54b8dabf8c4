/* fuzz_webhook_verify.c: the signature header parsers and checks on
 * arbitrary headers and bodies; they must never crash, and never accept. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "webhooks.h"

/* basic_ok: "Basic dXNlcjpwYXNz" (user:pass), the scheme in any case
 * (RFC 7235), one or more spaces after it */
static int basic_ok(const char *h)
{
    if (strncasecmp(h, "Basic ", 6) != 0) return 0;
    h += 6;
    while (*h == ' ')
        h++;
    return strcmp(h, "dXNlcjpwYXNz") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* split: header \n body */
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *nl = strchr(s, '\n');
    const char *body = nl ? nl + 1 : "";
    if (nl) *nl = '\0';
    hr_err err = {0};
    if (hook_verify_generic("fuzz-key-0123456789", s, body, strlen(body), 1700000000, 300, &err) ==
        0)
        abort(); /* a forged signature must never pass */
    if (hook_verify_basic("user:pass", s, &err) == 0 && !basic_ok(s)) abort();
    hook_verify_mailgun("fuzz-key", body, s, s, 1700000000, 300, &err);
    free(s);
    return 0;
}
