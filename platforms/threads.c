/* threads.c: Threads (graph.threads.net): each part is a media container
 * that is then published; a reply part names the previous post. Meta's
 * Graph error codes decide retry, re-auth or refusal. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"


static long th_count(const plat_account *a, const char *text) { return plat_count_utf16(text); }

static int th_request(plat_send *s, plat_request *req, hr_err *err)
{
    const char *uid;
    if (need_opt(s->a, "user-id", &uid, err)) return -1;
    char *e = plat_urlenc(uid);
    if (!s->container) {
        req_init(req, "POST", url_join(s->a, "/v1.0/%s/threads", e));
        const char *pairs[] = {"media_type", "TEXT", "text", s->post.parts[s->part].text,
                               "reply_to_id", s->part ? s->ids[s->part - 1] : NULL, NULL};
        req_bearer(req, s->a->credential);
        req_idem(req, s);
        req_form(req, pairs);
    } else {
        req_init(req, "POST", url_join(s->a, "/v1.0/%s/threads_publish", e));
        const char *pairs[] = {"creation_id", s->container, NULL};
        req_bearer(req, s->a->credential);
        req_idem_step(req, s, "publish");
        req_form(req, pairs);
    }
    free(e);
    return 0;
}

static void th_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (plat_classify_http(r, send_now(s), o) || meta_error(r, o)) return;
    if (classify_error(s, r, o, NULL)) return;
    json_t *j = body_json(r, o, s->container ? "threads: publish" : "threads: create container");
    if (!j) return;
    const char *id = jstr(j, "id");
    if (!id) {
        out_set(o, PLAT_OUT_UNKNOWN, "threads: answer has no id");
    } else if (!s->container) {
        s->container = hr_strdup(id);
        out_set(o, PLAT_OUT_NEXT, "threads: container %s created", id);
    } else {
        free(s->container);
        s->container = NULL;
        social_part_done(s, id, o);
    }
    json_decref(j);
}

/* th_readback: the user's threads, page by page back to the job's time
 * (readback.c). */
static int th_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *uid;
    if (need_opt(s->a, "user-id", &uid, err)) return -1;
    char *e = plat_urlenc(uid);
    char *path = hr_asprintf("/v1.0/%s/threads", e);
    readback_graph_request(s, req, path, "text", "timestamp");
    free(path);
    free(e);
    return 0;
}

static void th_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    readback_graph_response(s, r, o, "text", "timestamp", "threads: read back");
}

static int th_engagement(const plat_account *a, const plat_session *sess, const char *id,
                         plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET",
             url_join(a, "/v1.0/%s/insights?metric=likes,replies,reposts,quotes,views", e));
    free(e);
    req_bearer(req, a->credential);
    return 0;
}

static void th_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "threads: engagement");
    if (!j) return;
    json_t *data = json_object_get(j, "data");
    if (!json_is_array(data)) {
        out_set(o, PLAT_OUT_PERMANENT, "threads: engagement: answer has no data");
        json_decref(j);
        return;
    }
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        const char *name = jstr(m, "name");
        long v = jlong(m, "values.0.value", jlong(m, "total_value.value", -1));
        if (!name) continue;
        if (strcmp(name, "likes") == 0) e->likes = v;
        else if (strcmp(name, "replies") == 0) e->replies = v;
        else if (strcmp(name, "reposts") == 0) e->reposts = v;
        else if (strcmp(name, "quotes") == 0) e->quotes = v;
        else if (strcmp(name, "views") == 0) e->views = v;
    }
    out_sent(o, NULL);
    json_decref(j);
}

const plat_ops plat_threads_ops = {
    .name = "threads",
    .default_base = "https://graph.threads.net",
    .default_limit = 500,
    .default_hashtags = 1,
    .count = th_count,
    .request = th_request,
    .response = th_response,
    .readback = th_readback,
    .readback_response = th_readback_response,
    .engagement = th_engagement,
    .engagement_parse = th_engagement_parse,
};
