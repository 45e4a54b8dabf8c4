/* sendgrid.c: SendGrid v3 mail send. One personalization per job; the job
 * id rides in custom_args so Event Webhook callbacks match back. SendGrid
 * answers 202 with the message id in X-Message-Id and offers no
 * idempotency key. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static long email_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

static json_t *addr(const char *email, const char *name)
{
    json_t *o = json_object();
    json_object_set_new(o, "email", json_string(email));
    if (name && *name) json_object_set_new(o, "name", json_string(name));
    return o;
}

static int sg_request(plat_send *s, plat_request *req, hr_err *err)
{
    const plat_post *p = &s->post;
    req_init(req, "POST", url_join(s->a, "/v3/mail/send"));
    req_bearer(req, s->a->credential);
    req_idem(req, s);
    json_t *b = json_object(), *pers = json_object(), *to = json_array();
    json_array_append_new(to, addr(p->to, p->to_name));
    json_object_set_new(pers, "to", to);
    json_t *pa = json_array();
    json_array_append_new(pa, pers);
    json_object_set_new(b, "personalizations", pa);
    json_object_set_new(b, "from", addr(p->from, p->from_name));
    const char *rt = plat_account_opt(s->a, "reply-to", NULL);
    if (rt) json_object_set_new(b, "reply_to", addr(rt, NULL));
    json_object_set_new(b, "subject", json_string(p->subject));
    json_t *content = json_array(), *c;
    c = json_object();
    json_object_set_new(c, "type", json_string("text/plain"));
    json_object_set_new(c, "value", json_string(p->text));
    json_array_append_new(content, c);
    if (p->html) {
        c = json_object();
        json_object_set_new(c, "type", json_string("text/html"));
        json_object_set_new(c, "value", json_string(p->html));
        json_array_append_new(content, c);
    }
    json_object_set_new(b, "content", content);
    plat_header hs[8];
    int nh = email_headers(s, hs, 8);
    json_t *h = json_object();
    for (int i = 0; i < nh; i++) json_object_set_new(h, hs[i].name, json_string(hs[i].value));
    json_object_set_new(b, "headers", h);
    json_t *ca = json_object();
    json_object_set_new(ca, "herald_job", json_string(s->job->id));
    if (s->job->idem_key) json_object_set_new(ca, "herald_idem", json_string(s->job->idem_key));
    if (s->job->campaign) json_object_set_new(ca, "herald_campaign", json_string(s->job->campaign));
    json_object_set_new(b, "custom_args", ca);
    if (s->job->campaign) {
        json_t *cat = json_array();
        json_array_append_new(cat, json_string(s->job->campaign));
        json_object_set_new(b, "categories", cat);
    }
    req_json(req, b);
    return 0;
}

static const char *const sg_msgs[] = {"errors.0.message", "message", NULL};

static void sg_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, sg_msgs)) {
        if (r->status == 403 && o->kind == PLAT_OUT_PERMANENT) o->kind = PLAT_OUT_REAUTH;
        return;
    }
    const char *id = plat_response_header(r, "x-message-id");
    if (id && *id) out_sent(o, id);
    else out_set(o, PLAT_OUT_UNKNOWN, "sendgrid: HTTP %ld without X-Message-Id", r->status);
}

static int sg_readback(plat_send *s, plat_request *req, hr_err *err)
{
    char *q = hr_asprintf("unique_args['herald_job']=\"%s\"", s->job->id);
    char *e = plat_urlenc(q);
    req_init(req, "GET", url_join(s->a, "/v3/messages?limit=1&query=%s", e));
    free(e);
    free(q);
    req_bearer(req, s->a->credential);
    return 0;
}

static void sg_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, sg_msgs)) return;
    readback_id_at(r, o, "messages.0.msg_id", "sendgrid: read back");
}

const plat_ops plat_sendgrid_ops = {
    .name = "sendgrid",
    .email = 1,
    .default_base = "https://api.sendgrid.com",
    .default_limit = 200,
    .count = email_count,
    .request = sg_request,
    .response = sg_response,
    .readback = sg_readback,
    .readback_response = sg_readback_response,
};
