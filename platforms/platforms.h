/* platforms.h: what each platform accepts and answers. Turns a job and an
 * account into the exact request(s) a platform takes, and a response into an
 * outcome; counts text the way each platform does. Pure code: no sockets,
 * no clocks read behind the caller's back (plat_ctx carries "now").
 * The worker runs the requests (libcurl) and feeds the responses back.
 * Nothing here blocks or keeps global state: every function may be called
 * from any callback, on any thread, for different sends at once. */
#ifndef HERALD_PLATFORMS_H
#define HERALD_PLATFORMS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "queue.h"

/* ------------------------------------------------------------ accounts */

/* One "account <platform>:<name> key=value ..." config line. */
typedef struct plat_account {
    char *platform;   /* "x", "mastodon", ... */
    char *name;       /* "@shop", "main" */
    char *base_url;   /* without trailing '/', default: the real API */
    char *credential; /* the secret (token, key, app password), or NULL */
    long limit;       /* length limit as the platform counts */
    int max_hashtags;
    queue_kv *opts; /* every key=value of the line, in order */
    int nopts;
    const struct plat_ops *ops;
} plat_account;

/* plat_account_parse parses a config line whose key is "account". Returns a
 * new account (no credential loaded) or NULL with "path:line: reason". */
plat_account *plat_account_parse(const hr_conf_line *line, const char *path, hr_err *err);
/* plat_account_find finds and parses the account platform:name in c.
 * NULL with err when absent or malformed. */
plat_account *plat_account_find(const hr_config *c, const char *platform, const char *name,
                                hr_err *err);
/* plat_account_default makes an account with defaults only (no config), as
 * `herald format` uses when none is configured. NULL for unknown platforms. */
plat_account *plat_account_default(const char *platform, hr_err *err);
/* plat_account_load_credential reads the file named by credentials= from
 * $CREDENTIALS_DIRECTORY or the config's credentials-dir (first line,
 * trailing whitespace trimmed) with hr_key_file_read (warn as its). 0, or
 * -1 with err (never the secret). */
int plat_account_load_credential(plat_account *a, const hr_config *c, hr_err *warn,
                                hr_err *err);
void plat_account_free(plat_account *a);
/* plat_account_opt returns the value of key= on the line (borrowed) or def. */
const char *plat_account_opt(const plat_account *a, const char *key, const char *def);

/* plat_known returns 1 when name is a platform herald supports. */
int plat_known(const char *platform);
/* plat_is_email returns 1 for email platforms (sendgrid, mailgun, postmark,
 * smtp), 0 for social ones and webhook. */
int plat_is_email(const char *platform);
/* plat_resend_on_absent returns 1 when a read-back's ABSENT, right after a
 * send whose answer was lost, proves the send did not happen and a resend is
 * idempotent (bluesky: the rkey; mastodon: the Idempotency-Key); 0 where the
 * read-back can lag the send (email searches, timelines) or a resend could
 * duplicate it. */
int plat_resend_on_absent(const char *platform);
/* plat_names returns the NULL-terminated list of supported platforms. */
const char *const *plat_names(void);

/* ------------------------------------------------------------ counting */

/* Each returns the length of NUL-terminated UTF-8 text as the platform
 * counts it, or -1 when the text is not valid UTF-8. */
long plat_count_x(const char *text);        /* twitter-text v3 weighted */
long plat_count_mastodon(const char *text); /* graphemes, URL 23, @user@dom -> @user */
long plat_count_graphemes(const char *text);
long plat_count_utf16(const char *text); /* UTF-16 code units (JS length) */
/* plat_count counts text as the account's platform does. */
long plat_count(const plat_account *a, const char *text);
/* plat_count_text counts text as platform does and gives its default limit
 * (config limit= overrides are the account's business). Returns 0, or -1 for
 * an unknown platform or text that is not UTF-8. */
int plat_count_text(const char *platform, const char *text, long *len, long *limit);

/* ---------------------------------------------------------- formatting */

typedef enum { PLAT_FACET_LINK, PLAT_FACET_MENTION, PLAT_FACET_TAG } plat_facet_type;

/* A Bluesky rich-text facet: UTF-8 byte offsets into the part's text. */
typedef struct plat_facet {
    plat_facet_type type;
    size_t byte_start, byte_end;
    char *value; /* uri, did or tag (without '#') */
} plat_facet;

typedef struct plat_part {
    char *text;
    long length; /* as the platform counts it */
    plat_facet *facets;
    int nfacets;
} plat_part;

/* A formatted post (several parts for a thread) or email. */
typedef struct plat_post {
    plat_part *parts;
    int nparts;
    long limit;
    int valid;                  /* every part within limits */
    char reason[HR_ERRLEN];     /* why not valid */
    /* emails */
    char *subject;
    char *html;
    char *text; /* plain-text alternative */
    char *preheader;
    char *message_id;      /* "<...@domain>" */
    char *unsubscribe_url; /* NULL without unsubscribe-base/secret */
    char *from;            /* address */
    char *from_name;
    char *to;
    char *to_name;
} plat_post;

/* Things the caller knows that formatting needs. */
typedef struct plat_ctx {
    const char *secret; /* signs unsubscribe tokens; NULL: no unsubscribe URL */
    int64_t now_ms;     /* createdAt stamps; 0: hr_now_ms() */
    /* read-back: the send's attempt began at or after this (ms, host
     * clock); 0: when plat_send_new ran (the worker's own send), -1: not
     * known (a reconciler that only has the job). Mastodon repeats the POST
     * only within its Idempotency-Key's hour of it. */
    int64_t sent_after_ms;
} plat_ctx;

#define PLAT_FMT_FIT 1    /* cut text that is too long (templates always fit) */
#define PLAT_FMT_THREAD 2 /* split into a numbered thread instead of cutting */

/* plat_format_job builds the post or email a job makes for the account:
 * the job's text, or its template over title/excerpt/link/tags (UTM
 * parameters, hashtags, fitting, optional thread). Returns 0 (post->valid
 * says whether it may be sent) or -1 with err for unusable input. */
int plat_format_job(const plat_account *a, const queue_job *j, const plat_ctx *ctx, int flags,
                    plat_post *post, hr_err *err);
/* plat_format_text formats raw text as given (no template); with
 * PLAT_FMT_FIT it is cut to the limit, with PLAT_FMT_THREAD split. */
int plat_format_text(const plat_account *a, const char *text, int flags, plat_post *post,
                     hr_err *err);
void plat_post_release(plat_post *p);

/* Helpers the formatter is built from, exported for tests and other modules. */
/* plat_html_to_text returns a new plain-text rendering of an HTML fragment
 * (entities decoded, blocks on their own lines, script/style dropped). */
char *plat_html_to_text(const char *html, size_t len);
/* plat_add_utm returns link with utm_source/utm_medium/utm_campaign added
 * (existing query and fragment kept; existing utm_ keys left alone), or a
 * copy of link when it is not an http(s) URL. */
char *plat_add_utm(const char *link, const char *source, const char *medium,
                   const char *campaign);
/* plat_hashtag returns "#Tag" for a CMS tag under the platform's rules
 * ("summer sale" -> "#SummerSale"), or NULL when nothing usable is left. */
char *plat_hashtag(const char *platform, const char *tag);
/* plat_fit returns text cut to limit on a grapheme and word boundary with an
 * ellipsis, keeping trailing links and hashtags whole (new string; a copy
 * when it fits). NULL when even the kept tail does not fit. */
char *plat_fit(const plat_account *a, const char *text, long limit);
/* plat_bluesky_rkey writes the TID record key derived from key into out
 * (14 bytes). */
void plat_bluesky_rkey(const char *key, char out[14]);

/* ------------------------------------------------- requests, responses */

typedef struct plat_header {
    char *name;
    char *value;
} plat_header;

/* A request for the worker to run. SMTP requests have method "SMTP" and are
 * run with plat_smtp_setup instead. */
typedef struct plat_request {
    char method[8];
    char *url;
    plat_header *headers;
    int nheaders;
    char *body; /* may be NULL */
    size_t body_len;
    char *content_type; /* also present in headers; NULL without a body */
    char **secrets;     /* substrings to mask when shown to people */
    int nsecrets;
} plat_request;

void plat_request_release(plat_request *r);
/* plat_request_json returns a new JSON text {method,url,headers,body} with
 * every secret replaced by "***" when mask is set. */
char *plat_request_json(const plat_request *r, int mask);

typedef enum {
    PLAT_TE_NONE = 0,
    PLAT_TE_TIMEOUT,
    PLAT_TE_RESET,
    PLAT_TE_CONNECT,
    PLAT_TE_OTHER,
} plat_transport_error;

/* A response as the worker got it; everything is borrowed. */
typedef struct plat_response {
    long status; /* HTTP status, or the SMTP reply code; 0 when none */
    const plat_header *headers;
    int nheaders;
    const char *body;
    size_t body_len;
    plat_transport_error terr;
    int fully_sent; /* the whole request went out (so it may have acted) */
} plat_response;

/* plat_response_header returns the value of the last header named name
 * (case-insensitive), or NULL. */
const char *plat_response_header(const plat_response *r, const char *name);

typedef enum {
    PLAT_OUT_SENT = 1,  /* done; platform_id set */
    PLAT_OUT_NEXT,      /* call plat_send_request again (next step) */
    PLAT_OUT_RETRY,     /* rate limited: retry after retry_after_ms */
    PLAT_OUT_TRANSIENT, /* 5xx, timeouts: retry with backoff */
    PLAT_OUT_REAUTH,    /* session or token expired: refresh, then retry */
    PLAT_OUT_PERMANENT, /* the platform refused it: message says why */
    PLAT_OUT_UNKNOWN,   /* may or may not have been sent: read back */
    PLAT_OUT_ABSENT,    /* read-back: it was not sent, safe to send */
} plat_outcome_kind;

typedef struct plat_outcome {
    plat_outcome_kind kind;
    char *platform_id;      /* owned; SENT only */
    int64_t retry_after_ms; /* RETRY: delay from now (0: the time named is past) */
    char message[HR_ERRLEN];
    /* quota as the response's headers tell it; -1 when not given */
    long quota_remaining;
    long quota_limit;
    int64_t quota_reset_ms; /* absolute ms in the clock of plat_classify_http's
                             * now_ms, 0 when not given */
} plat_outcome;

void plat_outcome_release(plat_outcome *o);
const char *plat_outcome_name(plat_outcome_kind k);

/* plat_parse_retry_after parses a Retry-After value (delta seconds or an
 * HTTP-date) relative to now_ms; returns the delay in ms, at most a day (a
 * longer or out-of-range one counts as a day), or -1. */
int64_t plat_parse_retry_after(const char *v, int64_t now_ms);
/* plat_classify_http fills o from a response with the rules every platform
 * shares (transport errors, 429 and its headers, 5xx, 401, quota headers);
 * returns 1 when it decided, 0 when the platform must look at the body.
 * Times the platform names (reset, an HTTP-date Retry-After) are measured
 * against its own clock, the answer's Date header, when it sent one (else
 * against now_ms), and given as delays or in now_ms's clock. */
int plat_classify_http(const plat_response *r, int64_t now_ms, plat_outcome *o);

/* ------------------------------------------------------ sending a job */

/* Per-account session a worker keeps between jobs (Bluesky tokens). */
typedef struct plat_session {
    char *access;  /* accessJwt */
    char *refresh; /* refreshJwt */
    char *did;
} plat_session;
void plat_session_release(plat_session *s);

typedef struct plat_send plat_send;

/* plat_send_new formats job j for account a and prepares its steps. The
 * account and session are borrowed and must outlive the send (the session is
 * updated by createSession/refreshSession answers). Returns NULL with err
 * when the job cannot be sent at all (invalid text: permanent). */
plat_send *plat_send_new(const plat_account *a, plat_session *sess, const queue_job *j,
                         const plat_ctx *ctx, hr_err *err);
void plat_send_free(plat_send *s);
/* plat_send_post returns the formatted post (borrowed). */
const plat_post *plat_send_post(const plat_send *s);
/* plat_send_request fills req (caller releases) with the next request.
 * 0, or -1 with err (a bug or missing account setting: permanent). */
int plat_send_request(plat_send *s, plat_request *req, hr_err *err);
/* plat_send_response classifies the answer to the last request into o
 * (caller releases). PLAT_OUT_NEXT: call plat_send_request again. */
void plat_send_response(plat_send *s, const plat_response *r, plat_outcome *o);
/* plat_send_save_progress records in j's meta what this send has done
 * (thread parts sent and their ids, a Threads container created) so that a
 * retry of j with plat_send_new resumes instead of starting over. Call it
 * on j before storing it for a retry. */
void plat_send_save_progress(const plat_send *s, queue_job *j);
/* plat_send_readback fills req with the request that tells whether an
 * uncertain send went through (for a thread, its part in flight);
 * plat_send_readback_response says SENT (with the id), ABSENT, NEXT (read
 * back again: a session step, a next page), NEXT with platform_id (a part
 * of a thread was found, with that id, and recorded as progress: the next
 * part is to send, or to read back by whom cannot know it was not sent),
 * or an error outcome. */
int plat_send_readback(plat_send *s, plat_request *req, hr_err *err);
void plat_send_readback_response(plat_send *s, const plat_response *r, plat_outcome *o);
/* plat_send_readback_skip: the post id that a read-back found (SENT) is
 * another job's: the read-back starts over from its first request, passing
 * over it (and, for a thread, over the last part it matched). */
void plat_send_readback_skip(plat_send *s, const char *id);

/* SMTP: plat_smtp_setup configures the caller's CURL easy handle (URL,
 * MAIL FROM, RCPT, credentials, headers and a curl_mime body) for the send's
 * message. *cleanup gets what must be freed after the transfer with
 * plat_smtp_cleanup. 0 or -1 with err. */
struct plat_smtp_owned;
int plat_smtp_setup(plat_send *s, void *curl_easy, struct plat_smtp_owned **cleanup,
                    hr_err *err);
void plat_smtp_cleanup(struct plat_smtp_owned *o);

/* ---------------------------------------------------------- engagement */

typedef struct plat_engagement {
    long likes, reposts, replies, quotes, views; /* -1: not offered */
} plat_engagement;

/* plat_engagement_request builds the request reading post_id's counts.
 * -1 with err for email platforms. */
int plat_engagement_request(const plat_account *a, const plat_session *sess,
                            const char *post_id, plat_request *req, hr_err *err);
/* plat_engagement_parse parses its answer: SENT with e filled, or an error
 * outcome (malformed JSON is PERMANENT with a message, never a crash). */
void plat_engagement_parse(const plat_account *a, const plat_response *r, plat_engagement *e,
                           plat_outcome *o);

/* ------------------------------------------------------------- preview */

/* plat_preview_json returns the `herald format --json` object for a post
 * (text, length, limit, valid, facets, parts, request with secrets masked),
 * as a new string. req may be NULL. */
char *plat_preview_json(const plat_account *a, const plat_post *p, const plat_request *req);
/* plat_post_request builds the first request for an already formatted post
 * p of job j (as `herald format` shows raw text). A Bluesky request is shown
 * as if a session existed. 0 or -1 with err. */
int plat_post_request(const plat_account *a, const queue_job *j, const plat_post *p,
                      plat_request *req, hr_err *err);
/* plat_preview_job formats j for a and returns plat_preview_json of it and
 * its first request (for `herald preview`); NULL with err. */
char *plat_preview_job(const plat_account *a, const queue_job *j, const plat_ctx *ctx,
                       hr_err *err);

#endif
