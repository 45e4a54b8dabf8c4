/* linkedin.c: LinkedIn Posts API (versioned /rest/posts). The commentary is
 * "little text": its reserved characters are backslash-escaped and hashtags
 * use the {hashtag|\#|Tag} template. The new post's URN comes back in the
 * x-restli-id header. LinkedIn offers no idempotency. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static long li_count(const plat_account *a, const char *text) { return plat_count_utf16(text); }

/* little_text escapes reserved characters and turns #Tags into LinkedIn's
 * hashtag template (new string). */
char *plat_linkedin_little_text(const char *t);
char *plat_linkedin_little_text(const char *t)
{
    size_t n = strlen(t);
    tx_ent *e;
    int ne = tx_scan(t, n, 0, &e);
    hr_buf b;
    hr_buf_init(&b);
    int k = 0;
    for (size_t i = 0; i < n;) {
        while (k < ne && e[k].end <= i) k++;
        if (k < ne && e[k].type == TX_TAG && i == e[k].start) {
            hr_buf_puts(&b, "{hashtag|\\#|");
            hr_buf_append(&b, t + i + 1, e[k].end - i - 1);
            hr_buf_putc(&b, '}');
            i = e[k].end;
            continue;
        }
        /* links stay as written: escaping would break them */
        if (k < ne && e[k].type == TX_URL && i == e[k].start) {
            hr_buf_append(&b, t + i, e[k].end - i);
            i = e[k].end;
            continue;
        }
        if (strchr("\\|{}@[]()<>#*_~", t[i])) hr_buf_putc(&b, '\\');
        hr_buf_putc(&b, t[i]);
        i++;
    }
    free(e);
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

static void li_headers(const plat_account *a, plat_request *req)
{
    req_bearer(req, a->credential);
    req_header(req, "LinkedIn-Version", plat_account_opt(a, "api-version", "202401"));
    req_header(req, "X-Restli-Protocol-Version", "2.0.0");
}

static int li_request(plat_send *s, plat_request *req, hr_err *err)
{
    const char *author;
    if (need_opt(s->a, "author", &author, err)) return -1;
    req_init(req, "POST", url_join(s->a, "/rest/posts"));
    li_headers(s->a, req);
    req_idem(req, s);
    char *c = plat_linkedin_little_text(s->post.parts[0].text);
    json_t *b = json_object();
    json_object_set_new(b, "author", json_string(author));
    json_object_set_new(b, "commentary", json_string(c));
    free(c);
    json_object_set_new(b, "visibility", json_string("PUBLIC"));
    json_t *d = json_object();
    json_object_set_new(d, "feedDistribution", json_string("MAIN_FEED"));
    json_object_set_new(d, "targetEntities", json_array());
    json_object_set_new(d, "thirdPartyDistributionChannels", json_array());
    json_object_set_new(b, "distribution", d);
    json_object_set_new(b, "lifecycleState", json_string("PUBLISHED"));
    json_object_set_new(b, "isReshareDisabledByAuthor", json_false());
    req_json(req, b);
    return 0;
}

static const char *const li_msgs[] = {"message", NULL};

static void li_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, li_msgs)) return;
    const char *id = plat_response_header(r, "x-restli-id");
    if (!id) id = plat_response_header(r, "x-linkedin-id");
    if (id && *id)
        out_sent(o, id);
    else
        out_set(o, PLAT_OUT_UNKNOWN, "linkedin: create post: HTTP %ld without x-restli-id",
                r->status);
}

/* Read-back pages: at most this many of LI_PAGE posts, newest first. */
#define LI_READBACK_PAGES 10
#define LI_PAGE 100

static int li_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *author;
    if (need_opt(s->a, "author", &author, err)) return -1;
    char *e = plat_urlenc(author);
    req_init(req, "GET",
             url_join(s->a, "/rest/posts?author=%s&q=author&count=%d&sortBy=CREATED&start=%d", e,
                      LI_PAGE, s->rb_pages * LI_PAGE));
    free(e);
    li_headers(s->a, req);
    return 0;
}

static void li_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    json_t *j = readback_json(s, r, o, li_msgs, "linkedin: read back");
    if (!j) return;
    char *want = plat_linkedin_little_text(s->post.parts[s->part].text);
    json_t *els = json_object_get(j, "elements");
    int n = readback_in_list(s, els, want, "commentary", "createdAt", o, "linkedin: read back");
    /* newest first: a full page whose last post is not older than the job
     * may have the job's post on the next one */
    json_t *last = json_array_get(els, json_array_size(els) - 1);
    json_t *at = json_object_get(last, "createdAt");
    int older = json_is_integer(at) && json_integer_value(at) < readback_since_ms(s);
    readback_page_on(s, o, n >= LI_PAGE && !older ? "" : NULL, LI_READBACK_PAGES,
                     "linkedin: read back");
    free(want);
    json_decref(j);
}

static int li_engagement(const plat_account *a, const plat_session *sess, const char *id,
                         plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET", url_join(a, "/rest/socialActions/%s", e));
    free(e);
    li_headers(a, req);
    return 0;
}

static void li_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "linkedin: engagement");
    if (!j) return;
    if (!json_object_get(j, "likesSummary") && !json_object_get(j, "commentsSummary")) {
        out_set(o, PLAT_OUT_PERMANENT, "linkedin: engagement: no likesSummary/commentsSummary");
    } else {
        e->likes = jlong(j, "likesSummary.totalLikes", -1);
        e->replies = jlong(j, "commentsSummary.aggregatedTotalComments", -1);
        out_sent(o, jstr(j, "target"));
    }
    json_decref(j);
}

const plat_ops plat_linkedin_ops = {
    .name = "linkedin",
    .default_base = "https://api.linkedin.com",
    .default_limit = 3000,
    .default_hashtags = 3,
    .count = li_count,
    .request = li_request,
    .response = li_response,
    .readback = li_readback,
    .readback_response = li_readback_response,
    .engagement = li_engagement,
    .engagement_parse = li_engagement_parse,
};
