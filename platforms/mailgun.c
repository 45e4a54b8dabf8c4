/* mailgun.c: Mailgun messages API: a form post with h: headers and v:
 * variables (the job id comes back in webhooks as user-variables). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

char *email_addr(const char *name, const char *addr);

static long email_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

static void basic_auth(plat_request *req, const char *key)
{
    char *raw = hr_asprintf("api:%s", key ? key : "");
    size_t n = strlen(raw);
    /* base64 (not url-safe) as RFC 7617 wants: from base64url by mapping */
    char *enc = hr_malloc(4 * ((n + 2) / 3) + 4);
    hr_b64url_encode((const unsigned char *)raw, n, enc);
    size_t el = strlen(enc);
    for (size_t i = 0; i < el; i++) enc[i] = enc[i] == '-' ? '+' : enc[i] == '_' ? '/' : enc[i];
    while (el % 4) enc[el++] = '=';
    enc[el] = '\0';
    char *h = hr_asprintf("Basic %s", enc);
    req_header(req, "Authorization", h);
    req_secret(req, enc);
    req_secret(req, key);
    free(h);
    free(enc);
    explicit_bzero(raw, n);
    free(raw);
}

static int mg_request(plat_send *s, plat_request *req, hr_err *err)
{
    const plat_post *p = &s->post;
    const char *dom;
    if (need_opt(s->a, "domain", &dom, err)) return -1;
    char *e = plat_urlenc(dom);
    req_init(req, "POST", url_join(s->a, "/v3/%s/messages", e));
    free(e);
    basic_auth(req, s->a->credential);
    req_idem(req, s);
    char *from = email_addr(p->from_name, p->from), *to = email_addr(p->to_name, p->to);
    plat_header hs[8];
    int nh = email_headers(s, hs, 8);
    const char *pairs[64];
    int n = 0;
    pairs[n++] = "from", pairs[n++] = from;
    pairs[n++] = "to", pairs[n++] = to;
    pairs[n++] = "subject", pairs[n++] = p->subject;
    pairs[n++] = "text", pairs[n++] = p->text;
    pairs[n++] = "html", pairs[n++] = p->html;
    char *hnames[8];
    for (int i = 0; i < nh; i++) {
        /* Mailgun spells it Message-Id */
        hnames[i] = hr_asprintf("h:%s", strcmp(hs[i].name, "Message-ID") == 0 ? "Message-Id"
                                                                              : hs[i].name);
        pairs[n++] = hnames[i], pairs[n++] = hs[i].value;
    }
    pairs[n++] = "h:Reply-To", pairs[n++] = plat_account_opt(s->a, "reply-to", NULL);
    pairs[n++] = "o:tag", pairs[n++] = s->job->campaign;
    pairs[n++] = "v:herald-job", pairs[n++] = s->job->id;
    pairs[n++] = "v:herald-idem", pairs[n++] = s->job->idem_key;
    pairs[n] = NULL;
    req_form(req, pairs);
    for (int i = 0; i < nh; i++) free(hnames[i]);
    free(from);
    free(to);
    return 0;
}

static const char *const mg_msgs[] = {"message", NULL};

static void mg_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, mg_msgs)) return;
    json_t *j = body_json(r, o, "mailgun: send");
    if (!j) return;
    const char *id = jstr(j, "id");
    if (id) out_sent(o, id);
    else out_set(o, PLAT_OUT_UNKNOWN, "mailgun: send: answer has no id");
    json_decref(j);
}

static int mg_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *dom;
    if (need_opt(s->a, "domain", &dom, err)) return -1;
    const char *mid = s->post.message_id ? s->post.message_id : "";
    size_t ml = strlen(mid);
    char *bare = ml > 2 && mid[0] == '<' ? hr_strndup(mid + 1, ml - 2) : hr_strdup(mid);
    char *e = plat_urlenc(dom), *m = plat_urlenc(bare);
    req_init(req, "GET", url_join(s->a, "/v3/%s/events?message-id=%s", e, m));
    free(e);
    free(m);
    free(bare);
    basic_auth(req, s->a->credential);
    return 0;
}

static void mg_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, mg_msgs)) return;
    json_t *j = body_json(r, o, "mailgun: read back");
    if (!j) {
        o->kind = PLAT_OUT_TRANSIENT;
        return;
    }
    json_t *it = json_array_get(json_object_get(j, "items"), 0);
    if (it) {
        const char *id = jstr(it, "message.headers.message-id");
        out_sent(o, id ? id : s->post.message_id);
    } else {
        out_set(o, PLAT_OUT_ABSENT, "mailgun: no events for the message");
    }
    json_decref(j);
}

const plat_ops plat_mailgun_ops = {
    .name = "mailgun",
    .email = 1,
    .default_base = "https://api.mailgun.net",
    .default_limit = 200,
    .count = email_count,
    .request = mg_request,
    .response = mg_response,
    .readback = mg_readback,
    .readback_response = mg_readback_response,
};
