/* fuzz_http.c: the HTTP request layer (webhooks/httpd.c): arbitrary bytes
 * as one connection's, through the server's own parser callbacks; each
 * request is read as the handlers read it (path, query parameters,
 * headers, a form body). Nothing may crash, leak or read past a buffer. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "internal.h"

static void on_request(const hook_req *r, void *priv)
{
    size_t *sum = priv;
    *sum += strlen(hook_req_method(r)) + strlen(hook_req_path(r)) + strlen(hook_req_query(r));
    static const char *const names[] = {"Content-Type", "Authorization", "X-Herald-Signature",
                                        "Expect", "Idempotency-Key", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *h = hook_req_header(r, names[i]);
        if (h) *sum += strlen(h);
    }
    char v[64];
    if (hook_req_query_param(r, "token", v, sizeof v) == 0) *sum += strlen(v);
    size_t len;
    const char *body = hook_req_body(r, &len);
    char *f = hook_form_value(body, len, "List-Unsubscribe");
    if (f) *sum += strlen(f);
    free(f);
    char *d = hook_url_decode(body, len);
    *sum += strlen(d);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t sum = 0;
    /* a small body limit, so the 413 paths are reached too */
    hook_httpd_parse((const char *)data, size, 4096, on_request, &sum);
    return 0;
}
