/* webhook.c: a generic JSON webhook target: the job as JSON plus the
 * formatted text, signed with HMAC-SHA256 under the account's credential,
 * with the idempotency key in Idempotency-Key. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static long wh_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

static int wh_request(plat_send *s, plat_request *req, hr_err *err)
{
    const char *path = plat_account_opt(s->a, "path", "/");
    req_init(req, "POST", url_join(s->a, "%s%s", path[0] == '/' ? "" : "/", path));
    req_idem(req, s);
    char *js = queue_job_to_json(s->job);
    json_t *b = json_loads(js, 0, NULL);
    free(js);
    if (!b) b = json_object();
    json_object_set_new(b, "formatted_text", json_string(s->post.parts[0].text));
    req_json(req, b);
    if (s->a->credential) {
        unsigned char mac[32];
        char hex[65];
        hr_hmac_sha256(s->a->credential, strlen(s->a->credential), req->body, req->body_len, mac);
        hr_hex(mac, 32, hex);
        char *h = hr_asprintf("sha256=%s", hex);
        req_header(req, "X-Herald-Signature", h);
        free(h);
    }
    return 0;
}

static void wh_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, (const char *const[]){"error", "message", NULL})) return;
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *id = jstr(j, "id");
    out_sent(o, id ? id : s->job->id);
    json_decref(j);
}

const plat_ops plat_webhook_ops = {
    .name = "webhook",
    .default_base = "http://127.0.0.1:9000",
    .default_limit = 100000,
    .count = wh_count,
    .request = wh_request,
    .response = wh_response,
};
