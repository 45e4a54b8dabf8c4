/* x.c: X (API v2). POST /2/tweets with a bearer token; threads reply to the
 * previous part. X offers no idempotency, so the key rides along in a header
 * it ignores and uncertain sends are settled by reading the timeline back. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static long x_count(const plat_account *a, const char *text) { return plat_count_x(text); }

static int x_request(plat_send *s, plat_request *req, hr_err *err)
{
    req_init(req, "POST", url_join(s->a, "/2/tweets"));
    req_bearer(req, s->a->credential);
    req_idem(req, s);
    json_t *b = json_object();
    json_object_set_new(b, "text", json_string(s->post.parts[s->part].text));
    if (s->part > 0) {
        json_t *r = json_object();
        json_object_set_new(r, "in_reply_to_tweet_id", json_string(s->ids[s->part - 1]));
        json_object_set_new(b, "reply", r);
    }
    req_json(req, b);
    return 0;
}

static const char *const x_msgs[] = {"detail", "title", "errors.0.message", NULL};

void social_part_done(plat_send *s, const char *id, plat_outcome *o)
{
    free(s->ids[s->part]);
    s->ids[s->part] = hr_strdup(id);
    s->part++;
    if (s->part < s->post.nparts)
        out_set(o, PLAT_OUT_NEXT, "part %d of %d sent", s->part, s->post.nparts);
    else
        out_sent(o, s->ids[0]);
}

static void x_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, x_msgs)) {
        /* X refuses a repeat of a post it already has: the first try went
         * through, which only a read-back can confirm */
        if (r->status == 403 && strstr(o->message, "duplicate")) o->kind = PLAT_OUT_UNKNOWN;
        return;
    }
    json_t *j = body_json(r, o, "x: create post");
    if (!j) return;
    const char *id = jstr(j, "data.id");
    if (id)
        social_part_done(s, id, o);
    else
        out_set(o, PLAT_OUT_UNKNOWN, "x: create post: answer has no data.id");
    json_decref(j);
}

/* Read-back pages: at most this many of 100 posts since the job's time. */
#define X_READBACK_PAGES 10

static int x_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *uid;
    if (need_opt(s->a, "user-id", &uid, err)) return -1;
    char *e = plat_urlenc(uid);
    hr_buf q;
    hr_buf_init(&q);
    /* entities: X shows links as t.co, and says what each one expands to */
    hr_buf_puts(&q, "max_results=100&tweet.fields=created_at,entities");
    int64_t since = readback_since_ms(s);
    if (since > 0) {
        char ts[32];
        hr_format_rfc3339(since, ts, sizeof ts);
        char *t = plat_urlenc(ts);
        hr_buf_printf(&q, "&start_time=%s", t);
        free(t);
    }
    if (s->rb_page) {
        char *t = plat_urlenc(s->rb_page);
        hr_buf_printf(&q, "&pagination_token=%s", t);
        free(t);
    }
    req_init(req, "GET", url_join(s->a, "/2/users/%s/tweets?%s", e, q.data));
    hr_buf_release(&q);
    free(e);
    req_bearer(req, s->a->credential);
    return 0;
}

/* x_shown_text returns a post's text as written: X escapes &, < and > and
 * shows links as t.co, whose expansion its entities give (new string). */
static char *x_shown_text(json_t *post)
{
    const char *t = jstr(post, "text");
    json_t *urls = json_object_get(json_object_get(post, "entities"), "urls");
    hr_buf b;
    hr_buf_init(&b);
    while (t && *t) {
        size_t i, n = 0;
        json_t *u;
        const char *exp = NULL;
        json_array_foreach(urls, i, u)
        {
            const char *short_url = jstr(u, "url");
            size_t l = short_url ? strlen(short_url) : 0;
            if (l && jstr(u, "expanded_url") && strncmp(t, short_url, l) == 0) {
                exp = jstr(u, "expanded_url");
                n = l;
                break;
            }
        }
        static const char *const esc[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}};
        for (size_t k = 0; !exp && k < 3; k++)
            if (strncmp(t, esc[k][0], strlen(esc[k][0])) == 0) {
                exp = esc[k][1];
                n = strlen(esc[k][0]);
            }
        if (exp) {
            hr_buf_puts(&b, exp);
            t += n;
        } else {
            hr_buf_putc(&b, *t++);
        }
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

static void x_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    json_t *j = readback_json(s, r, o, x_msgs, "x: read back");
    if (!j) return;
    json_t *data = json_object_get(j, "data"), *p;
    size_t i;
    json_array_foreach(data, i, p)
    {
        char *shown = x_shown_text(p);
        json_object_set_new(p, "text", json_string(shown));
        free(shown);
    }
    readback_in_list(s, data, NULL, "text", "created_at", o, "x: read back");
    readback_page_on(s, o, jstr(j, "meta.next_token"), X_READBACK_PAGES, "x: read back");
    json_decref(j);
}

static int x_engagement(const plat_account *a, const plat_session *sess, const char *id,
                        plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET", url_join(a, "/2/tweets/%s?tweet.fields=public_metrics", e));
    free(e);
    req_bearer(req, a->credential);
    return 0;
}

static void x_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "x: engagement");
    if (!j) return;
    json_t *m = json_object_get(json_object_get(j, "data"), "public_metrics");
    if (!m) {
        out_set(o, PLAT_OUT_PERMANENT, "x: engagement: answer has no data.public_metrics");
    } else {
        e->likes = jlong(m, "like_count", -1);
        e->reposts = jlong(m, "retweet_count", -1);
        e->replies = jlong(m, "reply_count", -1);
        e->quotes = jlong(m, "quote_count", -1);
        e->views = jlong(m, "impression_count", -1);
        out_sent(o, jstr(j, "data.id"));
    }
    json_decref(j);
}

const plat_ops plat_x_ops = {
    .name = "x",
    .default_base = "https://api.x.com",
    .default_limit = 280,
    .default_hashtags = 2,
    .scan_flags = TX_SCAN_SCHEMELESS,
    .count = x_count,
    .request = x_request,
    .response = x_response,
    .readback = x_readback,
    .readback_response = x_readback_response,
    .engagement = x_engagement,
    .engagement_parse = x_engagement_parse,
};
