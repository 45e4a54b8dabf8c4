/* send.c: the step machine every platform's file plugs into (format once,
 * then request/response until an outcome), engagement dispatch, and the
 * preview JSON of `herald format` and `herald preview`. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* split_words returns the n-th space-separated word of v (new string) */
static char *nth_word(const char *v, int n)
{
    for (int i = 0; v && *v; i++) {
        size_t l = strcspn(v, " ");
        if (i == n) return l ? hr_strndup(v, l) : NULL;
        v += l;
        while (*v == ' ') v++;
    }
    return NULL;
}

/* resume picks up the progress plat_send_save_progress left in the job */
static void resume(plat_send *s)
{
    const char *done = queue_job_get_meta(s->job, "parts_sent");
    int64_t n;
    if (done && hr_parse_i64(done, &n) == 0 && n > 0 && n < s->post.nparts) {
        const char *ids = queue_job_get_meta(s->job, "part_ids");
        const char *cids = queue_job_get_meta(s->job, "part_cids");
        int ok = 1;
        for (int i = 0; i < n; i++) {
            s->ids[i] = nth_word(ids, i);
            s->cids[i] = nth_word(cids, i);
            if (!s->ids[i]) ok = 0;
        }
        if (ok) {
            s->part = (int)n;
        } else {
            for (int i = 0; i < n; i++) {
                free(s->ids[i]);
                free(s->cids[i]);
                s->ids[i] = s->cids[i] = NULL;
            }
        }
    }
    const char *c = queue_job_get_meta(s->job, "container");
    if (c && *c) s->container = hr_strdup(c);
}

/* meta_put never stores NULL: a key once set is cleared to "" */
static void meta_put(queue_job *j, const char *k, const char *v)
{
    if (v) queue_job_set_meta(j, k, v);
    else if (queue_job_get_meta(j, k)) queue_job_set_meta(j, k, "");
}

void plat_send_save_progress(const plat_send *s, queue_job *j)
{
    hr_buf ids, cids;
    hr_buf_init(&ids);
    hr_buf_init(&cids);
    for (int i = 0; i < s->part; i++) {
        hr_buf_printf(&ids, "%s%s", i ? " " : "", s->ids[i] ? s->ids[i] : "");
        hr_buf_printf(&cids, "%s%s", i ? " " : "", s->cids[i] ? s->cids[i] : "-");
    }
    char num[16];
    snprintf(num, sizeof num, "%d", s->part);
    meta_put(j, "parts_sent", s->part ? num : NULL);
    meta_put(j, "part_ids", s->part ? ids.data : NULL);
    meta_put(j, "part_cids",
             s->part && strcmp(s->a->platform, "bluesky") == 0 ? cids.data : NULL);
    meta_put(j, "container", s->container);
    hr_buf_release(&ids);
    hr_buf_release(&cids);
}

plat_send *plat_send_new(const plat_account *a, plat_session *sess, const queue_job *j,
                         const plat_ctx *ctx, hr_err *err)
{
    plat_send *s = hr_calloc(1, sizeof *s);
    s->a = a;
    s->sess = sess;
    s->job = queue_job_dup(j);
    if (ctx) s->ctx = *ctx;
    s->born_ms = send_now(s);
    if (!s->job->idem_key && s->job->id[0])
        s->job->idem_key = hr_asprintf("hr-%s", queue_job_ukh(s->job));
    if (plat_format_job(a, s->job, ctx, 0, &s->post, err) != 0) {
        plat_send_free(s);
        return NULL;
    }
    if (!s->post.valid) {
        hr_err_set(err, "%s: %s", a->platform, s->post.reason);
        plat_send_free(s);
        return NULL;
    }
    /* ids and cids: one block, ids first (plat_send_free frees ids) */
    s->ids = hr_calloc(2 * ((size_t)s->post.nparts + 1), sizeof *s->ids);
    s->cids = s->ids + s->post.nparts + 1;
    resume(s);
    return s;
}

void plat_send_free(plat_send *s)
{
    if (!s) return;
    for (int i = 0; s->ids && i < s->post.nparts + 1; i++) free(s->ids[i]);
    for (int i = 0; s->cids && i < s->post.nparts + 1; i++) free(s->cids[i]);
    free(s->ids); /* cids too */
    plat_post_release(&s->post);
    free(s->container);
    free(s->unsub_header);
    free(s->rb_page);
    free(s->rb_skip);
    if (s->priv_free) s->priv_free(s->priv);
    queue_job_free(s->job);
    free(s);
}

const plat_post *plat_send_post(const plat_send *s) { return &s->post; }

int plat_send_request(plat_send *s, plat_request *req, hr_err *err)
{
    memset(req, 0, sizeof *req);
    if (s->part >= s->post.nparts)
        return hr_err_set(err, "%s: every part is sent already", s->a->platform);
    return s->a->ops->request(s, req, err);
}

/* gateway_unknown: a 502 or 504 is a gateway's answer, and it can come
 * after the platform behind it made the post or email (its answer timed out
 * or was lost on the way back). Where a resend could make it twice (no
 * idempotency key the platform honours, no record key: all but Mastodon
 * and Bluesky), that outcome is unknown, to read back, not a failure to
 * retry. A 503 is left transient: gateways give it when no upstream took
 * the request (none free, or maintenance), and platforms for overload. */
static void gateway_unknown(const plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (o->kind != PLAT_OUT_TRANSIENT || r->terr != PLAT_TE_NONE ||
        (r->status != 502 && r->status != 504) || s->a->ops->resend_on_absent)
        return;
    out_set(o, PLAT_OUT_UNKNOWN, "HTTP %ld from a gateway: the platform may have acted",
            r->status);
}

void plat_send_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    out_init(o);
    s->a->ops->response(s, r, o);
    gateway_unknown(s, r, o);
}

int plat_send_readback(plat_send *s, plat_request *req, hr_err *err)
{
    memset(req, 0, sizeof *req);
    if (!s->a->ops->readback)
        return hr_err_set(err, "%s: no read-back request", s->a->platform);
    /* the part in flight is read back; a send that is over, its last */
    if (s->part >= s->post.nparts && s->post.nparts > 0) s->part = s->post.nparts - 1;
    return s->a->ops->readback(s, req, err);
}

void plat_send_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    out_init(o);
    if (!s->a->ops->readback_response) {
        out_set(o, PLAT_OUT_PERMANENT, "%s: no read-back", s->a->platform);
        return;
    }
    s->a->ops->readback_response(s, r, o);
}

int plat_engagement_request(const plat_account *a, const plat_session *sess,
                            const char *post_id, plat_request *req, hr_err *err)
{
    memset(req, 0, sizeof *req);
    if (!a->ops->engagement)
        return hr_err_set(err, "%s: engagement is not read by polling", a->platform);
    if (!post_id || !*post_id) return hr_err_set(err, "%s: engagement: no post id", a->platform);
    return a->ops->engagement(a, sess, post_id, req, err);
}

void plat_engagement_parse(const plat_account *a, const plat_response *r, plat_engagement *e,
                           plat_outcome *o)
{
    out_init(o);
    eng_init(e);
    if (!a->ops->engagement_parse) {
        out_set(o, PLAT_OUT_PERMANENT, "%s: no engagement", a->platform);
        return;
    }
    if (classify_error(NULL, r, o, (const char *const[]){"error.message", "message", "error",
                                                         "detail", "title", NULL}))
        return;
    a->ops->engagement_parse(r, e, o);
}

/* ------------------------------------------------------------ preview */

static const char *facet_type(plat_facet_type t)
{
    return t == PLAT_FACET_LINK ? "link" : t == PLAT_FACET_MENTION ? "mention" : "tag";
}

static json_t *facets_json(const plat_part *p)
{
    json_t *a = json_array();
    for (int i = 0; i < p->nfacets; i++) {
        const plat_facet *f = &p->facets[i];
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string(facet_type(f->type)));
        json_object_set_new(o, "byteStart", json_integer((json_int_t)f->byte_start));
        json_object_set_new(o, "byteEnd", json_integer((json_int_t)f->byte_end));
        const char *k = f->type == PLAT_FACET_LINK ? "uri" : f->type == PLAT_FACET_MENTION
                                                                 ? "did"
                                                                 : "tag";
        json_object_set_new(o, k, json_string(f->value));
        json_array_append_new(a, o);
    }
    return a;
}

static void set_opt(json_t *o, const char *k, const char *v)
{
    if (v) json_object_set_new(o, k, json_string(v));
}

char *plat_preview_json(const plat_account *a, const plat_post *p, const plat_request *req)
{
    json_t *o = json_object();
    json_object_set_new(o, "platform", json_string(a->platform));
    json_object_set_new(o, "account", json_string(a->name));
    const plat_part *first = p->nparts ? &p->parts[0] : NULL;
    json_object_set_new(o, "text", json_string(first ? first->text : ""));
    json_object_set_new(o, "length", json_integer(first ? first->length : 0));
    json_object_set_new(o, "limit", json_integer(p->limit));
    json_object_set_new(o, "valid", json_boolean(p->valid));
    if (!p->valid) json_object_set_new(o, "reason", json_string(p->reason));
    if (strcmp(a->platform, "bluesky") == 0 && first) {
        json_object_set_new(o, "facets", facets_json(first));
        json_object_set_new(o, "bytes", json_integer((json_int_t)strlen(first->text)));
    }
    if (p->nparts > 1 || !a->ops->email) {
        json_t *parts = json_array();
        for (int i = 0; i < p->nparts; i++) {
            json_t *pt = json_object();
            json_object_set_new(pt, "text", json_string(p->parts[i].text));
            json_object_set_new(pt, "length", json_integer(p->parts[i].length));
            if (strcmp(a->platform, "bluesky") == 0)
                json_object_set_new(pt, "facets", facets_json(&p->parts[i]));
            json_array_append_new(parts, pt);
        }
        json_object_set_new(o, "parts", parts);
    }
    if (a->ops->email) {
        set_opt(o, "subject", p->subject);
        set_opt(o, "preheader", p->preheader);
        set_opt(o, "html", p->html);
        set_opt(o, "from", p->from);
        set_opt(o, "to", p->to);
        set_opt(o, "message_id", p->message_id);
        set_opt(o, "unsubscribe_url", p->unsubscribe_url);
    }
    if (req) {
        char *rj = plat_request_json(req, 1);
        json_object_set_new(o, "request", json_loads(rj, 0, NULL));
        free(rj);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    char *c = hr_strdup(s ? s : "{}");
    free(s);
    return c;
}

int plat_post_request(const plat_account *a, const queue_job *j, const plat_post *p,
                      plat_request *req, hr_err *err)
{
    memset(req, 0, sizeof *req);
    if (!p->nparts) return hr_err_set(err, "%s: nothing to send", a->platform);
    plat_session sess = {hr_strdup("ACCESS"), NULL, hr_strdup("did:plc:preview")};
    plat_send s = {.a = a, .sess = &sess, .job = queue_job_dup(j), .post = *p, .preview = 1};
    s.ids = hr_calloc((size_t)p->nparts + 1, sizeof *s.ids);
    s.cids = hr_calloc((size_t)p->nparts + 1, sizeof *s.cids);
    if (!s.job->idem_key) s.job->idem_key = hr_strdup("hr-preview");
    int r = a->ops->request(&s, req, err);
    free(s.ids);
    free(s.cids);
    free(s.container);
    free(s.unsub_header);
    if (s.priv_free) s.priv_free(s.priv);
    queue_job_free(s.job);
    plat_session_release(&sess);
    return r;
}

char *plat_preview_job(const plat_account *a, const queue_job *j, const plat_ctx *ctx,
                       hr_err *err)
{
    plat_post p;
    if (plat_format_job(a, j, ctx, 0, &p, err) != 0) {
        plat_post_release(&p);
        return NULL;
    }
    plat_request req = {0};
    hr_err e2 = {0};
    int have = p.valid && plat_post_request(a, j, &p, &req, &e2) == 0;
    char *out = plat_preview_json(a, &p, have ? &req : NULL);
    plat_request_release(&req);
    plat_post_release(&p);
    return out;
}
