/* fuzz_unsub.c: the one-click unsubscribe path's token (/u/<token>):
 * base64url decoding takes only the canonical spelling (what it decodes
 * encodes back to the same text), and hr_unsub_token_verify never crashes
 * and fills only NUL-terminated fields. The seeds are real tokens under
 * this secret, so mutations start from the accepted path. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz.h"

static const char secret[] = "fuzz-secret-0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    size_t cap = size / 4 * 3 + 3;
    unsigned char *raw = malloc(cap);
    long n = hr_b64url_decode(s, raw, cap);
    if (n >= 0) {
        char *back = malloc((size_t)n / 3 * 4 + 5);
        hr_b64url_encode(raw, (size_t)n, back);
        if (strcmp(back, s) != 0) abort(); /* two spellings of one token */
        free(back);
    }
    hr_unsub u;
    hr_err err = {0};
    if (hr_unsub_token_verify(secret, s, &u, &err) == 0 &&
        (memchr(u.email, 0, sizeof u.email) == NULL ||
         memchr(u.campaign, 0, sizeof u.campaign) == NULL || memchr(u.job, 0, sizeof u.job) == NULL))
        abort();
    free(raw);
    free(s);
    return 0;
}
