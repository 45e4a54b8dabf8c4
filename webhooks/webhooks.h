/* webhooks.h: herald's HTTP side: a small HTTP/1.1 server on libev (reused by
 * the webhooks server, the sandbox and the worker supervisor's metrics), the
 * engagement webhook receiver with its signature checks and atomic Redis
 * recording, one-click unsubscribe, `forget`, and the sandbox platforms.
 * It does not send posts or emails; platforms/ and worker/ do. */
#ifndef HERALD_WEBHOOKS_H
#define HERALD_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct ev_loop;
struct queue;

/* ------------------------------------------------------------ httpd */

/* One HTTP/1.1 server on the caller's loop: http-parser for the protocol,
 * one ev_io per connection, keep-alive, a body limit (413), a header/request
 * timeout and an idle timeout (slow clients are dropped), a connection cap
 * (503 and close), and a graceful stop that lets requests in flight finish.
 * A connection closed after an answer while its client may still be sending
 * lingers: what it sends is read and dropped for a while (no reset).
 * One request per connection is handled at a time; pipelined requests wait. */
typedef struct hook_httpd hook_httpd;
typedef struct hook_req hook_req;

/* hook_handler_fn is called once per complete request. It must answer with
 * hook_req_respond (or hook_req_drop) exactly once, now or later (after an
 * async reply); the request stays valid until then. */
typedef void hook_handler_fn(hook_req *r, void *priv);

typedef struct hook_httpd_opts {
    const char *listen;     /* "host:port" or "port"; port 0 picks a free one */
    size_t max_body;        /* bytes; 0: 1 MiB */
    int request_timeout_ms; /* first byte to complete request; 0: 10000 */
    int idle_timeout_ms;    /* keep-alive idle and write stalls; 0: 30000 */
    int max_conns;          /* 0: 1024 */
    hook_handler_fn *handler;
    void *priv;
} hook_httpd_opts;

/* hook_httpd_new binds and starts listening; NULL with err on failure. */
hook_httpd *hook_httpd_new(struct ev_loop *loop, const hook_httpd_opts *o, hr_err *err);
/* hook_httpd_free closes every connection at once and frees the requests a
 * handler still holds: answer or cancel those first (the webhooks server
 * frees its Redis handle first, which answers them 503). hook_httpd_free(NULL)
 * is a no-op. */
void hook_httpd_free(hook_httpd *h);
int hook_httpd_port(const hook_httpd *h);
int hook_httpd_conns(const hook_httpd *h); /* open connections */
/* hook_httpd_stop stops accepting, closes idle connections, lets requests in
 * flight finish (answered with Connection: close) and calls done once when
 * the last connection is gone (maybe at once). */
void hook_httpd_stop(hook_httpd *h, void (*done)(void *priv), void *priv);

const char *hook_req_method(const hook_req *r); /* "GET", "POST", ... */
const char *hook_req_path(const hook_req *r);   /* the path, without query */
const char *hook_req_query(const hook_req *r);  /* after '?', or "" */
/* hook_req_header returns a header's value (first one; name case-insensitive)
 * or NULL. */
const char *hook_req_header(const hook_req *r, const char *name);
const char *hook_req_body(const hook_req *r, size_t *len); /* NUL-terminated */
const char *hook_req_peer(const hook_req *r);              /* "127.0.0.1" */
/* hook_req_query_param copies a decoded query parameter into out; returns 0
 * or -1 when absent or too long. */
int hook_req_query_param(const hook_req *r, const char *name, char *out, size_t outlen);
/* hook_req_add_header adds a response header (copied) before respond. */
void hook_req_add_header(hook_req *r, const char *name, const char *value);
/* hook_req_respond sends the answer and ends the request (r is invalid
 * afterwards). ctype may be NULL when len is 0. */
void hook_req_respond(hook_req *r, int status, const char *ctype, const void *body, size_t len);
void hook_req_respond_json(hook_req *r, int status, const char *json);
/* hook_req_drop closes the connection without answering (fault injection). */
void hook_req_drop(hook_req *r);
const char *hook_status_text(int status);

/* ------------------------------------------------- events and checks */

typedef enum {
    HOOK_EV_NONE = 0, /* an event type herald does not count (processed, ...) */
    HOOK_EV_DELIVERED,
    HOOK_EV_OPEN,
    HOOK_EV_CLICK,
    HOOK_EV_BOUNCE,
    HOOK_EV_SPAM,
    HOOK_EV_UNSUBSCRIBE,
    HOOK_EV_LIKE,
    HOOK_EV_REPOST,
    HOOK_EV_REPLY,
    HOOK_EV_COUNT
} hook_ev_type;

/* hook_ev_name returns "delivered", "open", ... ("none" for HOOK_EV_NONE);
 * hook_ev_parse maps such a name back (HOOK_EV_NONE when unknown). */
const char *hook_ev_name(hook_ev_type t);
hook_ev_type hook_ev_parse(const char *name);

/* One engagement event, normalized from any provider. */
typedef struct hook_event {
    char *id; /* "<provider>:<provider's event id>", the dedupe key */
    hook_ev_type type;
    char *job;         /* herald job id carried with the message, or NULL */
    char *campaign;    /* when the provider echoes it, or NULL */
    char *platform;    /* "sendgrid", "x", ... */
    char *platform_id; /* the platform's message/post id, or NULL */
    char *email;       /* recipient (emails only), or NULL */
    int64_t ts_ms;     /* when it happened (provider's clock), 0 if unknown */
} hook_event;

typedef struct hook_events {
    hook_event *v;
    int n;
    int ignored; /* events of types herald does not count */
} hook_events;

void hook_events_release(hook_events *e);

/* The parsers turn a provider's verified body into events (appended to out).
 * They never trust the input: bad JSON or a missing field is -1 with err
 * naming the event index and field; nothing is appended on failure. */
int hook_parse_sendgrid(const char *body, size_t len, hook_events *out, hr_err *err);
int hook_parse_mailgun(const char *body, size_t len, hook_events *out, hr_err *err);
int hook_parse_postmark(const char *body, size_t len, hook_events *out, hr_err *err);
/* generic: {"events":[{"id","type","job"?,"campaign"?,"platform"?,
 * "platform_id"?,"email"?,"ts"?}]} or a bare array of such objects. */
int hook_parse_generic(const char *body, size_t len, hook_events *out, hr_err *err);

/* Signature checks: each returns 0 when valid, -1 with the reason in err.
 * Comparisons run in constant time. now_s and window_s bound replays. */
/* hook_verify_sendgrid: ECDSA P-256 / SHA-256 over timestamp + body; sig_b64
 * is the X-Twilio-Email-Event-Webhook-Signature header (base64 DER); pubkey
 * is PEM or the base64 DER key SendGrid shows. */
int hook_verify_sendgrid(const char *pubkey, const char *sig_b64, const char *timestamp,
                         const char *body, size_t len, int64_t now_s, int window_s, hr_err *err);
/* hook_verify_mailgun: hex HMAC-SHA256(key, timestamp + token). */
int hook_verify_mailgun(const char *key, const char *timestamp, const char *token,
                        const char *sig_hex, int64_t now_s, int window_s, hr_err *err);
/* hook_verify_basic: an "Authorization: Basic ..." header against "user:pass". */
int hook_verify_basic(const char *userpass, const char *authorization, hr_err *err);
/* hook_verify_generic: X-Herald-Signature "t=<unix s>,v1=<hex HMAC-SHA256(key,
 * "<t>." + body)>". */
int hook_verify_generic(const char *key, const char *sig_header, const char *body, size_t len,
                        int64_t now_s, int window_s, hr_err *err);
/* hook_sign_generic writes such a header value into out (>= 96 bytes). */
void hook_sign_generic(const char *key, int64_t now_s, const char *body, size_t len, char *out,
                       size_t outlen);
/* hook_mac: an HMAC-SHA256 key set up once, for whoever signs or checks many
 * messages (OpenSSL's one-shot HMAC costs more than hashing a small webhook).
 * hook_mac_new aborts when OpenSSL has no HMAC-SHA256. */
typedef struct hook_mac hook_mac;
hook_mac *hook_mac_new(const char *key);
void hook_mac_free(hook_mac *m);
/* hook_sign_generic_mac is hook_sign_generic with m keyed once; one message
 * at a time per hook_mac. */
void hook_sign_generic_mac(hook_mac *m, int64_t now_s, const char *body, size_t len, char *out,
                           size_t outlen);

/* ------------------------------------------------ herald webhooks */

typedef struct hook_server hook_server;

/* hook_server_new reads the config (webhooks-listen, namespace, redis-url,
 * credential files), connects to Redis in the background and listens.
 * listen overrides webhooks-listen when not NULL. */
hook_server *hook_server_new(struct ev_loop *loop, const hr_config *c, const char *listen,
                             hr_err *err);
void hook_server_free(hook_server *s);
int hook_server_port(const hook_server *s);
/* hook_server_stop finishes requests in flight, then calls done. */
void hook_server_stop(hook_server *s, void (*done)(void *priv), void *priv);
/* hook_metrics_fn appends Prometheus text to out; the issue-7 hook. */
typedef void hook_metrics_fn(hr_buf *out, void *priv);
void hook_server_set_metrics(hook_server *s, hook_metrics_fn *fn, void *priv);

/* --------------------------------------------------------- forget */

/* A job forget could not remove: its record is kept, without the address. */
typedef struct hook_forget_kept {
    char id[32]; /* the job's id (queue.h: QUEUE_ID_LEN characters) */
    int unknown; /* 1: in its lane's unknown set; 0: in flight */
} hook_forget_kept;

typedef struct hook_forget_result {
    long jobs_removed;      /* email jobs to the address that waited or were dead */
    long jobs_in_flight;    /* in flight or unknown: kept, scrubbed; listed in kept */
    long engagement_rows;   /* engagement rows keyed by the contact, and its
                               one-click unsubscribe events (seen ids, stream) */
    int suppressed;         /* 1 when the suppression entry was added or kept */
    hook_forget_kept *kept; /* jobs_in_flight entries (hook_forget_result_release) */
} hook_forget_result;

/* hook_forget removes every email job to email that waits or is dead, and
 * the engagement rows keyed by the address, and leaves (adds) the
 * suppression entry. A job in flight or unknown cannot be removed: its
 * record loses everything that names the recipient (a worker it comes back
 * to buries it as forgotten) and it is listed in res->kept. res is
 * released with hook_forget_result_release, also after -1. */
int hook_forget(struct queue *q, const char *secret, const char *email, hook_forget_result *res,
                hr_err *err);
void hook_forget_result_release(hook_forget_result *res);

/* -------------------------------------------------------- sandbox */

typedef struct hook_sandbox hook_sandbox;

typedef struct hook_sandbox_opts {
    const char *listen;       /* "host:port"; port 0 picks one */
    const char *webhooks_url; /* base URL of `herald webhooks`, or NULL */
    int auto_events;          /* fire "delivered" for accepted emails */
    const hr_config *config;  /* for credential files (signing keys) */
    const char *faults;       /* initial faults JSON (see docs/sandbox.md) */
    uint64_t seed;            /* fault RNG seed; 0: random */
    /* where to write the PEM public key its SendGrid events are signed with
     * (written, atomically, before the sandbox listens), or NULL */
    const char *sendgrid_pubkey_out;
    /* "host:port" of an SMTP relay stand-in (port 0 picks one), or NULL */
    const char *smtp_listen;
} hook_sandbox_opts;

hook_sandbox *hook_sandbox_new(struct ev_loop *loop, const hook_sandbox_opts *o, hr_err *err);
void hook_sandbox_free(hook_sandbox *s);
int hook_sandbox_port(const hook_sandbox *s);
/* hook_sandbox_smtp_port: the SMTP stand-in's port, 0 when it has none */
int hook_sandbox_smtp_port(const hook_sandbox *s);
void hook_sandbox_stop(hook_sandbox *s, void (*done)(void *priv), void *priv);

/* ----------------------------------------------------------- running */

/* hook_stop_fn stops obj gracefully and calls done(priv) once when it has. */
typedef void hook_stop_fn(void *obj, void (*done)(void *priv), void *priv);
/* hook_run runs loop until SIGTERM or SIGINT, then stops obj with stop and
 * returns when it has stopped. For main's loop (it watches signals). */
void hook_run(struct ev_loop *loop, hook_stop_fn *stop, void *obj);

/* ----------------------------------------------------- credentials */

/* hook_credential reads a secret from the file named by config key (e.g.
 * "webhook-hmac-key-file"), else $CREDENTIALS_DIRECTORY/<name>, through
 * hr_key_file_read (warn as its). Returns a new string with trailing
 * whitespace removed, or NULL: err->code 0 when simply not configured (no
 * key, no such credential); any other failure names the file. */
char *hook_credential(const hr_config *c, const char *key, const char *name, hr_err *warn,
                      hr_err *err);
/* hook_window_check returns 0 when a replay window of window_s seconds is
 * on (>= 1) and webhooks-dedupe-days remembers ids at least twice as long
 * (a Mailgun token is good for the whole window either side); else -1 with
 * the reason in err. */
int hook_window_check(int64_t window_s, int64_t dedupe_days, hr_err *err);
/* hook_credential_check reads the credential as `herald webhooks` would at
 * start (SendGrid's key is parsed too) and throws it away: 0 when it is
 * fine or not configured, -1 with err as `herald webhooks` would refuse it. */
int hook_credential_check(const hr_config *c, const char *key, const char *name, hr_err *warn,
                          hr_err *err);

#endif
