/* mastodon.c: Mastodon statuses API on any instance. Mastodon honours
 * Idempotency-Key for an hour; counting is in grapheme clusters with every
 * link 23 and remote mentions as their local part. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"


static long masto_count(const plat_account *a, const char *text)
{
    return plat_count_mastodon(text);
}

static int masto_post(plat_send *s, plat_request *req)
{
    req_init(req, "POST", url_join(s->a, "/api/v1/statuses"));
    req_bearer(req, s->a->credential);
    req_idem(req, s); /* per part: a thread's parts are distinct statuses */
    json_t *b = json_object();
    json_object_set_new(b, "status", json_string(s->post.parts[s->part].text));
    json_object_set_new(b, "visibility",
                        json_string(plat_account_opt(s->a, "visibility", "public")));
    if (s->part > 0) json_object_set_new(b, "in_reply_to_id", json_string(s->ids[s->part - 1]));
    req_json(req, b);
    return 0;
}

static int masto_request(plat_send *s, plat_request *req, hr_err *err)
{
    return masto_post(s, req);
}

static const char *const masto_msgs[] = {"error", "error_description", NULL};

static void masto_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (classify_error(s, r, o, masto_msgs)) return;
    json_t *j = body_json(r, o, "mastodon: post status");
    if (!j) return;
    const char *id = jstr(j, "id");
    if (id)
        social_part_done(s, id, o);
    else
        out_set(o, PLAT_OUT_UNKNOWN, "mastodon: post status: answer has no id");
    json_decref(j);
}

/* Mastodon keeps an Idempotency-Key for an hour; a repeat is only made
 * while the attempt is surely younger than that, with this margin. */
#define MASTO_KEY_SAFE_MS (55 * 60 * 1000)

/* Statuses per page of the list read-back (Mastodon's maximum), pages. */
#define MASTO_PAGE 40
#define MASTO_READBACK_PAGES 10

/* While the attempt is surely within the hour Mastodon keeps keys, the
 * read-back is the same POST with the same Idempotency-Key: it returns the
 * status Mastodon already has instead of a new one (exact). After that (or
 * when the attempt's time is not known) the repeat would post again: with
 * account-id= the account's statuses are listed, page by page back to the
 * job's time; without it there is no read-back and the job waits for an
 * operator. */
static int masto_readback(plat_send *s, plat_request *req, hr_err *err)
{
    const char *acct = plat_account_opt(s->a, "account-id", NULL);
    int64_t after = s->ctx.sent_after_ms ? s->ctx.sent_after_ms : s->born_ms;
    if (after > 0 && send_now(s) - after < MASTO_KEY_SAFE_MS)
        return masto_post(s, req); /* the part in flight, with its own key */
    if (!acct)
        return hr_err_set(err, "mastodon: the attempt may be older than the hour Mastodon keeps "
                               "its Idempotency-Key (a repeated POST could post again); set "
                               "account-id= to read back from the account's statuses");
    char *e = plat_urlenc(acct);
    char *older = s->rb_page ? plat_urlenc(s->rb_page) : NULL;
    req_init(req, "GET",
             url_join(s->a, "/api/v1/accounts/%s/statuses?limit=%d%s%s", e, MASTO_PAGE,
                      older ? "&max_id=" : "", older ? older : ""));
    free(older);
    free(e);
    req_bearer(req, s->a->credential);
    return 0;
}

static void masto_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    json_t *j = readback_json(s, r, o, masto_msgs, "mastodon: read back");
    if (!j) return;
    if (json_is_object(j)) { /* the idempotent re-POST: the status */
        const char *id = jstr(j, "id");
        if (id) readback_found(s, id, o);
        else out_set(o, PLAT_OUT_TRANSIENT, "mastodon: read back: answer has no id");
        json_decref(j);
        return;
    }
    int n = readback_in_list(s, j, NULL, "content", "created_at", o, "mastodon: read back");
    /* newest first: absent is proved once the list reaches back past the
     * job's time, or ends */
    json_t *last = json_array_get(j, json_array_size(j) - 1);
    int64_t at = 0;
    const char *ts = jstr(last, "created_at");
    int older = ts && hr_parse_rfc3339(ts, &at) == 0 && at < readback_since_ms(s);
    readback_page_on(s, o, n >= MASTO_PAGE && !older ? jstr(last, "id") : NULL,
                     MASTO_READBACK_PAGES, "mastodon: read back");
    json_decref(j);
}

static int masto_engagement(const plat_account *a, const plat_session *sess, const char *id,
                            plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET", url_join(a, "/api/v1/statuses/%s", e));
    free(e);
    req_bearer(req, a->credential);
    return 0;
}

static void masto_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "mastodon: engagement");
    if (!j) return;
    if (!json_is_object(j) || !jstr(j, "id")) {
        out_set(o, PLAT_OUT_PERMANENT, "mastodon: engagement: answer is not a status");
    } else {
        e->likes = jlong(j, "favourites_count", -1);
        e->reposts = jlong(j, "reblogs_count", -1);
        e->replies = jlong(j, "replies_count", -1);
        e->quotes = jlong(j, "quotes_count", -1);
        out_sent(o, jstr(j, "id"));
    }
    json_decref(j);
}

const plat_ops plat_mastodon_ops = {
    .name = "mastodon",
    .default_base = "https://mastodon.social",
    .default_limit = 500,
    .default_hashtags = 4,
    .scan_flags = TX_SCAN_MASTO,
    .count = masto_count,
    .request = masto_request,
    .response = masto_response,
    .readback = masto_readback,
    .readback_response = masto_readback_response,
    .resend_on_absent = 1,
    .engagement = masto_engagement,
    .engagement_parse = masto_engagement_parse,
};
