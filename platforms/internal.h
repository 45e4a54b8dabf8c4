/* internal.h: what the files of platforms/ share and nobody else sees: the
 * per-platform ops table, the send state, text scanning, request and
 * classification helpers. */
#ifndef HERALD_PLATFORMS_INTERNAL_H
#define HERALD_PLATFORMS_INTERNAL_H

#include <jansson.h>
#include <sys/types.h>

#include "platforms.h"

/* ---- the one table of function pointers, one instance per platform file */
typedef struct plat_ops {
    const char *name;
    int email;
    const char *default_base;
    long default_limit;
    int default_hashtags;
    int scan_flags; /* TX_SCAN_* for facets/counting */
    long (*count)(const plat_account *a, const char *text);
    /* finish: after formatting, per part (Bluesky facets). May be NULL. */
    int (*finish)(const plat_account *a, const queue_job *j, plat_part *p, hr_err *err);
    int (*request)(plat_send *s, plat_request *req, hr_err *err);
    void (*response)(plat_send *s, const plat_response *r, plat_outcome *o);
    int (*readback)(plat_send *s, plat_request *req, hr_err *err);
    void (*readback_response)(plat_send *s, const plat_response *r, plat_outcome *o);
    /* resend_on_absent: a read-back's ABSENT right after the send may be
     * acted on (exact read-back, idempotent resend: Bluesky's rkey,
     * Mastodon's Idempotency-Key); elsewhere a search can lag the send. */
    int resend_on_absent;
    /* social only (NULL for email) */
    int (*engagement)(const plat_account *a, const plat_session *sess, const char *post_id,
                      plat_request *req, hr_err *err);
    void (*engagement_parse)(const plat_response *r, plat_engagement *e, plat_outcome *o);
} plat_ops;

extern const plat_ops plat_x_ops, plat_mastodon_ops, plat_bluesky_ops, plat_linkedin_ops,
    plat_threads_ops, plat_facebook_ops, plat_sendgrid_ops, plat_mailgun_ops,
    plat_postmark_ops, plat_smtp_ops, plat_webhook_ops;

const plat_ops *plat_ops_find(const char *platform);

/* ---- the state of one job being sent (steps, thread progress) */
struct plat_send {
    const plat_account *a;
    plat_session *sess;
    queue_job *job; /* own copy */
    plat_ctx ctx;
    plat_post post;
    int step;  /* platform-defined */
    int part;  /* thread part being sent */
    char **ids;  /* platform id per part */
    char **cids; /* Bluesky cid per part */
    char *container; /* Threads: the container being published */
    int readback_tries;
    int64_t born_ms; /* when plat_send_new ran (send_now) */
    /* read-back paging (X, LinkedIn, Mastodon, Graph): the next page's
     * token, cursor or offset (NULL: the first page) and pages read so far */
    char *rb_page;
    int rb_pages;
    char *rb_skip; /* posts a read-back passes over: "\nID\nID\n" (readback.c) */
    int preview; /* building a request to show, not to send: no lookups */
    char *unsub_header; /* "<url>" for List-Unsubscribe */
    void *priv;                 /* platform-private step state */
    void (*priv_free)(void *priv);
};

/* ---- text (text.c) */
#define TX_SCAN_SCHEMELESS 1 /* bare domains are links (X) */
#define TX_SCAN_MASTO 2      /* @user@domain mentions */
#define TX_SCAN_DOTTED 4     /* @handle.domain mentions (Bluesky) */

typedef enum { TX_URL, TX_MENTION, TX_TAG } tx_type;
typedef struct tx_ent {
    tx_type type;
    size_t start, end; /* bytes; for mentions/tags includes the sigil */
    size_t user_end;   /* mentions: end of "@user" before "@domain" */
} tx_ent;

/* tx_scan finds links, mentions and hashtags in s; returns the count and a
 * new array in *out (free()), sorted by start. */
int tx_scan(const char *s, size_t n, int flags, tx_ent **out);
/* tx_bounds fills a new array of grapheme cluster starts plus n at the end;
 * returns the cluster count, or -1 for invalid UTF-8. */
long tx_bounds(const char *s, size_t n, size_t **out);
int tx_valid_utf8(const char *s, size_t n);
long tx_graphemes_n(const char *s, size_t n);
int tx_is_space_at(const char *s, size_t n, size_t i); /* whitespace cp at i */

/* ---- requests and answers (request.c) */
void req_init(plat_request *r, const char *method, char *url /* owned */);
void req_header(plat_request *r, const char *name, const char *value);
void req_secret(plat_request *r, const char *secret);
void req_bearer(plat_request *r, const char *token);
void req_json(plat_request *r, json_t *body /* stolen */);
/* form body: name/value pairs, NULL-terminated; NULL values are skipped */
void req_form(plat_request *r, const char *const *pairs);
void req_idem(plat_request *r, const plat_send *s);
void req_idem_step(plat_request *r, const plat_send *s, const char *step);
char *plat_urlenc(const char *s); /* percent-encoded copy */
char *url_join(const plat_account *a, const char *fmt, ...) HR_PRINTF(2, 3);
int need_opt(const plat_account *a, const char *key, const char **out, hr_err *err);

void out_init(plat_outcome *o);
void out_set(plat_outcome *o, plat_outcome_kind k, const char *fmt, ...) HR_PRINTF(3, 4);
void out_sent(plat_outcome *o, const char *id);
/* body_json parses the response body; NULL (and o PERMANENT or TRANSIENT
 * with a message) when empty or malformed. what names the answer. */
json_t *body_json(const plat_response *r, plat_outcome *o, const char *what);
const char *jstr(json_t *o, const char *path); /* "data.id" style, NULL if not a string */
long jlong(json_t *o, const char *path, long def);
/* classify_common: plat_classify_http plus the 4xx default (permanent with
 * the message found at msg_path in the JSON body); returns 1 when decided. */
int classify_error(const plat_send *s, const plat_response *r, plat_outcome *o,
                   const char *const *msg_paths);
int64_t send_now(const plat_send *s);
/* meta_error classifies a Meta Graph error body; returns 1 when decided. */
int meta_error(const plat_response *r, plat_outcome *o);
/* email_headers: the headers every email carries, as name/value pairs
 * (List-Unsubscribe, List-Unsubscribe-Post, Message-ID, X-Herald-Job). */
int email_headers(plat_send *s, plat_header *out, int max);

/* ---- composition (compose.c) */
long count_for(const plat_account *a, const char *text);
/* html_strip: text from possibly-HTML CMS content (new string) */
char *html_maybe(const char *s);

/* ---- shared platform bits */
void eng_init(plat_engagement *e);
/* eng_body parses an engagement answer; NULL with o PERMANENT when it
 * cannot be read */
json_t *eng_body(const plat_response *r, plat_outcome *o, const char *what);
/* readback_id_at: SENT with the id at path of the answer, else ABSENT */
void readback_id_at(const plat_response *r, plat_outcome *o, const char *path, const char *what);

/* social_part_done (x.c) records id as the id of the part being sent and
 * moves on: NEXT while parts remain, else SENT with the first part's id. */
void social_part_done(plat_send *s, const char *id, plat_outcome *o);

/* ---- read-back (readback.c) */
/* readback_found: the read-back found the part that was in flight (s->part)
 * as id. Its id is recorded as progress; SENT (the first part's id) when it
 * was the last part, else NEXT with platform_id set to id: the next part is
 * still to send (plat_send_readback's contract). */
void readback_found(plat_send *s, const char *id, plat_outcome *o);
/* readback_since_ms returns the earliest time a post of s's job can have
 * been created (the job's creation or due time, whichever is later, less a
 * minute of clock skew); 0 when the job does not say. */
int64_t readback_since_ms(const plat_send *s);
/* readback_text_match returns 1 when got, a post's text as the platform
 * shows it, is want, the text herald sent: equal whole, after NFC and
 * folding whitespace runs, with links compared without scheme or trailing
 * slash; a link the platform shortened (t.co) and did not expand matches
 * any link. */
int readback_text_match(const char *want, const char *got);
/* readback_in_list looks for the sent post in arr (a JSON array of posts
 * with "id", the text at field and the creation time at created, RFC 3339
 * or epoch ms; created NULL: not checked): SENT with its id, else ABSENT.
 * Posts created before readback_since_ms are not the job's. want NULL is
 * the text of the part in flight (s->part); a match goes through
 * readback_found. Returns the number of posts in arr. */
int readback_in_list(plat_send *s, json_t *arr, const char *want, const char *field,
                     const char *created, plat_outcome *o, const char *what);
/* readback_page_on: after a page of posts that did not have the job's
 * (o ABSENT), next (NULL: none) says where a next page of posts since the
 * job's time starts (a token, an id; "" when the page count says it): o
 * becomes NEXT and s->rb_page a copy of next (returns 1) while fewer than
 * max_pages were read, then TRANSIENT (not proved absent). Otherwise the
 * paging restarts (readback_page_reset), as after an error. */
int readback_page_on(plat_send *s, plat_outcome *o, const char *next, int max_pages,
                     const char *what);
void readback_page_reset(plat_send *s);
/* readback_json: a read-back answer's JSON, or NULL when it is an error
 * (classified with msgs) or not JSON (TRANSIENT); either way the paging
 * restarts. The caller owns the value. */
json_t *readback_json(plat_send *s, const plat_response *r, plat_outcome *o,
                      const char *const *msgs, const char *what);
/* readback_graph_request: GET path (from the base URL) of a Graph list of
 * posts (Facebook's /feed, Threads' /threads) with fields id, field and
 * created, a page of 100, from the page s->rb_page's after cursor names. */
void readback_graph_request(plat_send *s, plat_request *req, const char *path, const char *field,
                            const char *created);
/* readback_graph_response: readback_in_list over a Graph list page; ABSENT
 * only when the page reaches back past the job's time or the list ends,
 * NEXT (after the cursor in s->rb_page) while pages of newer posts
 * follow, TRANSIENT after 10 of them (not proved absent). */
void readback_graph_response(plat_send *s, const plat_response *r, plat_outcome *o,
                             const char *field, const char *created, const char *what);

#endif
