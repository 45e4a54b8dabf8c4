/* postmark.c: Postmark /email with a server token; the job id goes in
 * Metadata (echoed by Postmark's webhooks and searchable for read-back). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *email_addr(const char *name, const char *addr);

static long email_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

static void pm_auth(const plat_account *a, plat_request *req)
{
    req_header(req, "X-Postmark-Server-Token", a->credential ? a->credential : "");
    req_secret(req, a->credential);
    req_header(req, "Accept", "application/json");
}

static int pm_request(plat_send *s, plat_request *req, hr_err *err)
{
    const plat_post *p = &s->post;
    req_init(req, "POST", url_join(s->a, "/email"));
    pm_auth(s->a, req);
    req_idem(req, s);
    json_t *b = json_object();
    char *from = email_addr(p->from_name, p->from), *to = email_addr(p->to_name, p->to);
    json_object_set_new(b, "From", json_string(from));
    json_object_set_new(b, "To", json_string(to));
    free(from);
    free(to);
    json_object_set_new(b, "Subject", json_string(p->subject));
    if (p->html) json_object_set_new(b, "HtmlBody", json_string(p->html));
    json_object_set_new(b, "TextBody", json_string(p->text));
    const char *rt = plat_account_opt(s->a, "reply-to", NULL);
    if (rt) json_object_set_new(b, "ReplyTo", json_string(rt));
    json_object_set_new(b, "MessageStream",
                        json_string(plat_account_opt(s->a, "stream", "outbound")));
    if (s->job->campaign) json_object_set_new(b, "Tag", json_string(s->job->campaign));
    plat_header hs[8];
    int nh = email_headers(s, hs, 8);
    json_t *ha = json_array();
    for (int i = 0; i < nh; i++) {
        json_t *h = json_object();
        json_object_set_new(h, "Name", json_string(hs[i].name));
        json_object_set_new(h, "Value", json_string(hs[i].value));
        json_array_append_new(ha, h);
    }
    json_object_set_new(b, "Headers", ha);
    json_t *md = json_object();
    json_object_set_new(md, "herald_job", json_string(s->job->id));
    if (s->job->idem_key) json_object_set_new(md, "herald_idem", json_string(s->job->idem_key));
    json_object_set_new(b, "Metadata", md);
    req_json(req, b);
    return 0;
}

static void pm_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (plat_classify_http(r, send_now(s), o)) return;
    json_t *j = body_json(r, o, "postmark: send");
    if (!j) {
        if (r->status == 401) o->kind = PLAT_OUT_REAUTH;
        return;
    }
    long code = jlong(j, "ErrorCode", r->status >= 300 ? -1 : 0);
    const char *msg = jstr(j, "Message");
    const char *id = jstr(j, "MessageID");
    if (r->status >= 200 && r->status < 300 && code == 0 && id) {
        out_sent(o, id);
    } else if (r->status >= 200 && r->status < 300 && code == 0) {
        out_set(o, PLAT_OUT_UNKNOWN, "postmark: send: answer has no MessageID");
    } else if (code == 10 || r->status == 401) {
        out_set(o, PLAT_OUT_REAUTH, "postmark: error %ld: %s", code, msg ? msg : "");
    } else {
        out_set(o, PLAT_OUT_PERMANENT, "postmark: error %ld: %s", code, msg ? msg : "");
    }
    json_decref(j);
}

static int pm_readback(plat_send *s, plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(s->job->id);
    req_init(req, "GET",
             url_join(s->a, "/messages/outbound?count=1&offset=0&metadata_herald_job=%s", e));
    free(e);
    pm_auth(s->a, req);
    return 0;
}

static void pm_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, (const char *const[]){"Message", NULL})) return;
    readback_id_at(r, o, "Messages.0.MessageID", "postmark: read back");
}

const plat_ops plat_postmark_ops = {
    .name = "postmark",
    .email = 1,
    .default_base = "https://api.postmarkapp.com",
    .default_limit = 200,
    .count = email_count,
    .request = pm_request,
    .response = pm_response,
    .readback = pm_readback,
    .readback_response = pm_readback_response,
};
