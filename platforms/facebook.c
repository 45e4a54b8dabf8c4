/* facebook.c: Facebook Pages: POST /{page-id}/feed with the page token.
 * Meta's Graph error codes decide retry, re-auth or refusal; Facebook
 * offers no idempotency, so uncertain sends are read back from the feed,
 * page by page back to the job's time (readback.c). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FB_VERSION "v19.0"

static long fb_count(const plat_account *a, const char *text) { return plat_count_utf16(text); }

static int fb_request(plat_send *s, plat_request *req, hr_err *err)
{
    const char *page;
    if (need_opt(s->a, "page-id", &page, err)) return -1;
    char *e = plat_urlenc(page);
    req_init(req, "POST", url_join(s->a, "/%s/%s/feed", FB_VERSION, e));
    free(e);
    req_bearer(req, s->a->credential);
    req_idem(req, s);
    char *link = s->job->link ? plat_add_utm(s->job->link, "facebook", "social", s->job->campaign)
                              : NULL;
    const char *pairs[] = {"message", s->post.parts[0].text, "link", link, NULL};
    req_form(req, pairs);
    free(link);
    return 0;
}

static void fb_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (plat_classify_http(r, send_now(s), o) || meta_error(r, o)) return;
    if (classify_error(s, r, o, NULL)) return;
    json_t *j = body_json(r, o, "facebook: page post");
    if (!j) return;
    const char *id = jstr(j, "id");
    if (id) out_sent(o, id);
    else out_set(o, PLAT_OUT_UNKNOWN, "facebook: page post: answer has no id");
    json_decref(j);
}

static int fb_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *page;
    if (need_opt(s->a, "page-id", &page, err)) return -1;
    char *e = plat_urlenc(page);
    char *path = hr_asprintf("/%s/%s/feed", FB_VERSION, e);
    readback_graph_request(s, req, path, "message", "created_time");
    free(path);
    free(e);
    return 0;
}

static void fb_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    readback_graph_response(s, r, o, "message", "created_time", "facebook: read back");
}

static int fb_engagement(const plat_account *a, const plat_session *sess, const char *id,
                         plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET",
             url_join(a,
                      "/%s/%s?fields=reactions.summary(total_count).limit(0),"
                      "comments.summary(total_count).limit(0),shares",
                      FB_VERSION, e));
    free(e);
    req_bearer(req, a->credential);
    return 0;
}

static void fb_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "facebook: engagement");
    if (!j) return;
    if (!jstr(j, "id")) {
        out_set(o, PLAT_OUT_PERMANENT, "facebook: engagement: answer has no id");
    } else {
        e->likes = jlong(j, "reactions.summary.total_count", -1);
        e->replies = jlong(j, "comments.summary.total_count", -1);
        e->reposts = jlong(j, "shares.count", json_object_get(j, "shares") ? -1 : 0);
        out_sent(o, jstr(j, "id"));
    }
    json_decref(j);
}

const plat_ops plat_facebook_ops = {
    .name = "facebook",
    .default_base = "https://graph.facebook.com",
    .default_limit = 63206,
    .default_hashtags = 3,
    .count = fb_count,
    .request = fb_request,
    .response = fb_response,
    .readback = fb_readback,
    .readback_response = fb_readback_response,
    .engagement = fb_engagement,
    .engagement_parse = fb_engagement_parse,
};
