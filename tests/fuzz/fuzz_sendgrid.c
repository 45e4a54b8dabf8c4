/* fuzz_sendgrid.c: SendGrid's signature check and what it reads: the
 * public key (PEM or base64 DER, hook_pubkey_load), the base64 signature
 * (hook_b64_decode), the timestamp and the body. The input is those four
 * separated by NUL bytes. A signature that passes must fail once the body
 * changes (the seeds hold one real key, signature and body). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 2);
    memcpy(s, data, size);
    s[size] = s[size + 1] = '\0';
    const char *part[4] = {"", "", "", ""};
    const char *p = s, *end = s + size;
    for (int i = 0; i < 4 && p <= end; i++) {
        part[i] = p;
        p += strlen(p) + 1;
    }
    const char *body = part[3];
    size_t len = *body ? (size_t)(end - body) : 0; /* the body may hold NULs */
    hr_err err = {0};
    unsigned char der[6144];
    hook_b64_decode(part[1], der, sizeof der);
    EVP_PKEY *k = hook_pubkey_load(part[0], &err);
    if (hook_verify_sendgrid(part[0], part[1], part[2], body, len, 1700000000, 300, &err) == 0) {
        char *other = malloc(len + 1);
        memcpy(other, body, len);
        other[len] = 'x';
        if (!k || hook_verify_sendgrid_key(k, part[1], part[2], other, len + 1, 1700000000, 300,
                                           &err) == 0)
            abort();
        free(other);
    }
    EVP_PKEY_free(k);
    free(s);
    return 0;
}
