/* internal.h: what the webhooks module's files share: cached key checks, the
 * Redis connection with reconnects, and the recording script. Not public. */
#ifndef HERALD_HOOK_INTERNAL_H
#define HERALD_HOOK_INTERNAL_H

#include <openssl/evp.h>

#include "webhooks.h"

struct redisAsyncContext;
struct redisReply;

long hook_b64_decode(const char *in, unsigned char *out, size_t outcap);

/* hook_listen binds a non-blocking listening TCP socket to addr
 * ("host:port", "[::1]:port", or a bare port on 127.0.0.1; port 0 picks
 * one, set in *port); returns the fd, or -1 with err. */
int hook_listen(const char *addr, int *port, hr_err *err);

/* hook_smtpd: the SMTP server side the sandbox stands in for relays with
 * (smtpd.c). A message is handed whole to fn, which writes the reply line
 * that ends its DATA ("250 2.0.0 queued as ...") into line and returns 0,
 * or returns -1 to drop the connection unanswered. */
typedef struct hook_smtpd hook_smtpd;
typedef struct hook_smtpd_msg {
    const char *from;        /* the envelope sender */
    const char *const *rcpt; /* the envelope recipients */
    int nrcpt;
    const char *data; /* the message, dot-unstuffed, CRLF line ends */
    size_t len;
} hook_smtpd_msg;
typedef int hook_smtpd_fn(void *priv, const hook_smtpd_msg *m, char *line, size_t cap);
/* max_size: the largest message taken (0: 10 MB; more is 552) */
hook_smtpd *hook_smtpd_new(struct ev_loop *loop, const char *listen, size_t max_size,
                           hook_smtpd_fn *fn, void *priv, hr_err *err);
int hook_smtpd_port(const hook_smtpd *d);
void hook_smtpd_free(hook_smtpd *d);
EVP_PKEY *hook_pubkey_load(const char *pubkey, hr_err *err);
/* hook_sendgrid_key_load reads and parses SendGrid's public key
 * (sendgrid-webhook-key-file, else the sendgrid-webhook-key credential).
 * NULL with err->code 0 when not configured; errors name the directive and
 * the file. */
EVP_PKEY *hook_sendgrid_key_load(const hr_config *c, hr_err *warn, hr_err *err);
int hook_verify_sendgrid_key(EVP_PKEY *key, const char *sig_b64, const char *timestamp,
                             const char *body, size_t len, int64_t now_s, int window_s,
                             hr_err *err);

/* hook_mac_hex writes the hex MAC of the concatenation a + b; it reuses
 * one context, so one hook_mac serves one MAC at a time (one loop's). */
void hook_mac_hex(hook_mac *m, const void *a, size_t alen, const void *b, size_t blen,
                  char hex[65]);
/* hook_verify_generic_mac is hook_verify_generic with a keyed hook_mac. */
int hook_verify_generic_mac(hook_mac *m, const char *sig_header, const char *body, size_t len,
                            int64_t now_s, int window_s, hr_err *err);

/* hook_redis: raw commands and scripts on a queue_async connection (which
 * reconnects with backoff). Commands issued while down fail at once; a
 * command with no reply within timeout_ms (0: 2000) resets the connection,
 * failing every command in flight. */
typedef struct hook_redis hook_redis;
/* cb gets the reply (NULL on failure; valid only during cb). */
typedef void hook_redis_cb(struct redisReply *reply, const char *errmsg, void *priv);
hook_redis *hook_redis_new(struct ev_loop *loop, const char *url, const char *ns,
                           int timeout_ms, hr_err *err);
/* hook_redis_free fails the commands in flight (their callbacks run now);
 * not from inside a hook_redis_cb. */
void hook_redis_free(hook_redis *r);
/* hook_redis_add_script has src (static) loaded on every connection. */
void hook_redis_add_script(hook_redis *r, const char *src);
int hook_redis_up(const hook_redis *r);
/* hook_redis_flush writes the commands issued so far now rather than on the
 * next loop iteration (saves a poll and two epoll_ctl per batch). Not from
 * inside a hook_redis_cb: call it where the loop would block (ev_prepare). */
void hook_redis_flush(hook_redis *r);
/* hook_resp_arg appends v (len bytes) to b as one argument in the Redis
 * protocol ("$<len>\r\n<v>\r\n"): a caller that sends many arguments
 * builds its command once (hiredis would format each again). */
void hook_resp_arg(hr_buf *b, const char *v, size_t len);
/* hook_redis_formatted sends cmd, a whole command in the Redis protocol
 * ("*<argc>\r\n" then hook_resp_arg's); src is the script an EVALSHA in
 * it runs, or NULL. When Redis answers NOSCRIPT, src is loaded again and
 * cmd resent once (queue_async_formatted): cb gets that answer. cb runs
 * exactly once. */
void hook_redis_formatted(hook_redis *r, const char *src, const char *cmd, size_t len,
                          hook_redis_cb *cb, void *priv);
void hook_script_sha(const char *src, char out[41]);

extern const char hook_lua_record[];

/* hook_fire: POSTs from the loop through libcurl multi. cb gets the HTTP
 * status (0 when the request failed or the handle was freed). */
typedef struct hook_fire hook_fire;
typedef void hook_fire_cb(long status, void *priv);
hook_fire *hook_fire_new(struct ev_loop *loop);
void hook_fire_free(hook_fire *f);
void hook_fire_post(hook_fire *f, const char *url, const char *const *headers, const char *body,
                    size_t len, hook_fire_cb *cb, void *priv);
int hook_fire_pending(const hook_fire *f);

/* hook_httpd_parse feeds data to the server's request parser as the bytes
 * of one connection and calls fn on each whole request (hook_req_* getters
 * work; fn must not answer it), as far as a keep-alive connection would go.
 * Returns the number of requests, or -1 when the parser refused what
 * followed them (the server's 400 or 413). max_body 0: 1 MiB. The fuzz
 * target's way in: the live callbacks without a socket or a loop. */
typedef void hook_parsed_fn(const hook_req *r, void *priv);
int hook_httpd_parse(const char *data, size_t len, size_t max_body, hook_parsed_fn *fn,
                     void *priv);

/* hook_form_value returns the decoded value of name in an
 * application/x-www-form-urlencoded text (new string), or NULL. */
char *hook_form_value(const char *form, size_t len, const char *name);
/* hook_url_decode decodes %XX and '+' in n bytes of q (new string). */
char *hook_url_decode(const char *q, size_t n);

/* hook_parse_mailgun_json is hook_parse_mailgun on a parsed body (borrowed):
 * the server parses a Mailgun body once for its signature and its event. */
struct json_t;
int hook_parse_mailgun_json(struct json_t *root, hook_events *out, hr_err *err);

/* hook_provider_event names type t as provider ("sendgrid", "mailgun",
 * "postmark") names it in its webhooks, or NULL. */
const char *hook_provider_event(const char *provider, hook_ev_type t);

/* hook_fmt_i64 writes v in decimal to out (NUL-terminated) and returns its
 * length: snprintf costs more than the rest of a small answer. */
size_t hook_fmt_i64(char out[24], int64_t v);


#endif
