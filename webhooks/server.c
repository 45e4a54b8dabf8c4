/* server.c: `herald webhooks`: the providers' engagement routes, one-click
 * unsubscribe, health and metrics. Each request is verified, parsed, and
 * recorded by one Lua script; the answer waits for the script's reply.
 * It does not retry Redis writes itself: a 503 makes the provider retry. */
#include <ev.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "queue.h"

enum {
    K_SEEN0,
    K_EVENTS,
    K_SUPP,
    K_DONE,
    K_JOBS,
    K_PIDS,
    K_EJOBS,
    K_ECAMP,
    K_ECONT,
    K_ETOT,
    K_SEEN1,
    K_N
};
static const char *const key_names[K_N] = {
    "ev:seen:0", "events",        "suppressed",   "done",       "jobs",      "platform_ids",
    "eng:jobs",  "eng:campaigns", "eng:contacts", "eng:totals", "ev:seen:1",
};

struct hook_server {
    struct ev_loop *loop;
    hook_httpd *http;
    hook_redis *redis;
    char keys[K_N][160];
    char sha[41];
    hr_buf call_head; /* "EVALSHA <sha> <K_N> <keys...>" in the Redis protocol */
    char *secret;
    EVP_PKEY *sendgrid_key;
    char *mailgun_key;
    char *postmark_auth;
    char *generic_key;
    hook_mac *generic_mac; /* keyed with generic_key */
    int window_s;
    int64_t seen_period_ms;
    long stream_maxlen;
    struct batch *cur; /* filling; flushed before the loop blocks */
    int inflight;      /* batches sent, not answered yet */
    ev_prepare flush;
    hook_metrics_fn *metrics;
    void *metrics_priv;
    /* counters for /metrics */
    long requests, rejected, malformed, unavailable;
    long recorded, duplicates, unmatched, ignored, unsubscribes;
};

/* A request waiting for its batch: kept in the batch's array, not
 * allocated per request. */
typedef struct rec_ctx {
    hook_server *s;
    hook_req *r;
    int ignored;
    int first, count; /* this request's events in its batch */
    int tok;          /* its signature token's index in the batch, or -1 */
    char *unsub_msg;  /* an unsubscribe: its answer page's text (HTML), owned */
} rec_ctx;

/* A batch: the events of every request that arrived in one loop iteration,
 * recorded by one script call (group commit); each request is answered when
 * that call replies. */
typedef struct batch {
    hook_server *s;
    hr_buf args; /* the per-event ARGV, already in the Redis protocol */
    int nargs;
    int nevents;
    /* the events' platform keys and suppression digests, 2 ARGV each,
     * sent only when one is not empty: most events have neither, and each
     * ARGV costs Redis about 1,000 instructions */
    hr_buf keys;
    int has_keys;
    hr_buf toks; /* Mailgun's signature tokens: 4 ARGV each, after the events */
    int ntoks;
    rec_ctx *ctxs;
    int nctxs, capctxs;
} batch;

#define BATCH_MAX_EVENTS 512
/* Batches in flight to Redis before the next waits for a reply: while one
 * runs, the requests that arrive join the next, so under load a script call
 * records twice as many events (about 40 instead of 17 in bench/webhooks)
 * and its fixed cost is shared; when idle a request still goes at once. */
#define BATCH_INFLIGHT 1

/* ------------------------------------------------------------ helpers */

static void answer_error(hook_req *r, int status, const char *msg)
{
    char *j = hr_asprintf("{\"error\":\"%s\"}", msg);
    hook_req_respond_json(r, status, j);
    free(j);
}

/* answer_not_allowed: a 405 names the methods the route takes (RFC 9110) */
static void answer_not_allowed(hook_req *r, const char *allow, const char *msg)
{
    hook_req_add_header(r, "Allow", allow);
    answer_error(r, 405, msg);
}

/* The answer page for unsubscribe links; msg is already escaped HTML. */
static void answer_page(hook_req *r, int status, const char *title, const char *msg)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_printf(&b,
                  "<!doctype html><html><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width\">"
                  "<title>%s</title></head><body style=\"font-family:sans-serif;max-width:32em;"
                  "margin:3em auto\"><h1>%s</h1>%s</body></html>\n",
                  title, title, msg);
    hook_req_respond(r, status, "text/html; charset=utf-8", b.data, b.len);
    hr_buf_release(&b);
}

/* ---------------------------------------------------------- recording */

static void answer_recorded(rec_ctx *x, long rec, long dup, long unm)
{
    hook_server *s = x->s;
    s->recorded += rec;
    s->duplicates += dup;
    s->unmatched += unm;
    s->ignored += x->ignored;
    if (x->unsub_msg) {
        s->unsubscribes++;
        answer_page(x->r, 200, "Unsubscribed", x->unsub_msg);
    } else {
        /* {"recorded":n,"duplicates":n,"unmatched":n,"ignored":n}, no printf */
        static const char *const names[4] = {
            "{\"recorded\":", ",\"duplicates\":", ",\"unmatched\":", ",\"ignored\":"};
        const long v[4] = {rec, dup, unm, x->ignored};
        char out[160];
        size_t n = 0;
        for (int k = 0; k < 4; k++) {
            size_t l = strlen(names[k]);
            memcpy(out + n, names[k], l);
            n += l;
            n += hook_fmt_i64(out + n, v[k]);
        }
        out[n++] = '}';
        hook_req_respond(x->r, 200, "application/json", out, n);
    }
}

static void answer_unavailable(rec_ctx *x, const char *errmsg)
{
    x->s->unavailable++;
    if (x->unsub_msg)
        answer_page(x->r, 503, "Try again",
                    "<p>We could not record your request just now. Please try again in a "
                    "minute.</p>");
    else
        answer_error(x->r, 503, "storage unavailable, retry later");
}

static void batch_free(batch *b)
{
    hr_buf_release(&b->args);
    hr_buf_release(&b->keys);
    hr_buf_release(&b->toks);
    for (int i = 0; i < b->nctxs; i++)
        free(b->ctxs[i].unsub_msg);
    free(b->ctxs);
    free(b);
}

/* on_batch answers every request of the batch from the script's codes, one
 * character each: per event 1 recorded, 2 duplicate, 3 unmatched (4: its
 * request was refused), then per token 1 accepted, 2 a redelivery of the
 * same request (its events are duplicates), 4 used before with another
 * body. */
static void on_batch(redisReply *rep, const char *errmsg, void *priv)
{
    batch *b = priv;
    b->s->inflight--;
    int ok = rep && rep->type == REDIS_REPLY_STRING && (int)rep->len == b->nevents + b->ntoks;
    if (!ok)
        hr_log(HR_LOG_WARN, "webhook events not recorded", "error",
               errmsg ? errmsg : "unexpected script reply", NULL);
    for (int i = 0; i < b->nctxs; i++) {
        rec_ctx *x = &b->ctxs[i];
        if (!ok) {
            answer_unavailable(x, errmsg);
            continue;
        }
        if (x->tok >= 0 && rep->str[b->nevents + x->tok] == '4') {
            /* a replay: its token was used before with other event-data, so
             * nothing was written */
            x->s->rejected++;
            hr_log(HR_LOG_WARN, "webhook rejected", "route", "mailgun", "peer", hook_req_peer(x->r),
                   "error", "mailgun: signature token used before with other event-data", NULL);
            answer_error(x->r, 401, "signature check failed");
            continue;
        }
        long c[4] = {0};
        for (int k = x->first; k < x->first + x->count; k++) {
            int v = rep->str[k] - '0';
            if (v >= 1 && v <= 3) c[v]++;
        }
        answer_recorded(x, c[1], c[2], c[3]);
    }
    batch_free(b);
}

/* send_batch sends b's script call. The command is put together in the
 * Redis protocol here (the batch's arguments were as they came): hiredis
 * would format every argument again, which showed in the profile. */
static void send_batch(hook_server *s, batch *b)
{
    hr_buf cmd;
    hr_buf_init(&cmd);
    hr_buf_reserve(&cmd, s->call_head.len + b->args.len + b->keys.len + b->toks.len + 128);
    char num[24];
    int nkeys = b->has_keys ? 2 * b->nevents : 0;
    hr_buf_putc(&cmd, '*');
    hr_buf_append(&cmd, num, hook_fmt_i64(num, 3 + K_N + 5 + b->nargs + nkeys + 4 * b->ntoks));
    hr_buf_puts(&cmd, "\r\n");
    hr_buf_append(&cmd, s->call_head.data, s->call_head.len);
    const int64_t head[5] = {hr_now_ms(), s->seen_period_ms, s->stream_maxlen, b->nevents,
                             b->has_keys};
    for (int k = 0; k < 5; k++)
        hook_resp_arg(&cmd, num, hook_fmt_i64(num, head[k]));
    hr_buf_append(&cmd, b->args.data, b->args.len);
    if (b->has_keys) hr_buf_append(&cmd, b->keys.data, b->keys.len);
    if (b->ntoks) hr_buf_append(&cmd, b->toks.data, b->toks.len);
    hook_redis_formatted(s->redis, hook_lua_record, cmd.data, cmd.len, on_batch, b);
    hr_buf_release(&cmd);
}

static void flush_batch(hook_server *s)
{
    batch *b = s->cur;
    if (!b) return;
    s->cur = NULL;
    s->inflight++;
    send_batch(s, b);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    hook_server *s = w->data;
    if (s->inflight < BATCH_INFLIGHT) flush_batch(s);
    hook_redis_flush(s->redis);
}

static void push_arg(batch *b, const char *v)
{
    hook_resp_arg(&b->args, v, strlen(v));
    b->nargs++;
}

/* record adds evs to the current batch with a copy of *ctx, answered when
 * the batch's script replies (its unsub_msg is taken over). token, when not NULL, is the request's
 * signature token and tok_digest the digest of what it signed (mailgun_digest):
 * the script records its events only if the token was not used before, and
 * remembers it, with the digest, in the same call; a token used before with
 * the same digest makes the request a duplicate, with another a replay. */
static void record(hook_server *s, const rec_ctx *ctx, const hook_events *evs, const char *token,
                   const char *tok_digest)
{
    if (!s->cur) {
        s->cur = hr_calloc(1, sizeof *s->cur);
        s->cur->s = s;
    }
    batch *b = s->cur;
    if (b->nctxs == b->capctxs) {
        b->capctxs = b->capctxs ? b->capctxs * 2 : 16;
        b->ctxs = hr_realloc(b->ctxs, sizeof *b->ctxs * (size_t)b->capctxs);
    }
    rec_ctx *x = &b->ctxs[b->nctxs++];
    *x = *ctx;
    x->first = b->nevents;
    x->count = evs->n;
    x->tok = -1;
    if (token) {
        /* remembered with the event ids ("<platform>:<id>"), as
         * "mailgun-token:<token>" */
        char num[24], *f = hr_asprintf("mailgun-token:%s", token);
        hook_resp_arg(&b->toks, f, strlen(f));
        free(f);
        hook_resp_arg(&b->toks, num, hook_fmt_i64(num, x->first + 1));
        hook_resp_arg(&b->toks, num, hook_fmt_i64(num, evs->n));
        hook_resp_arg(&b->toks, tok_digest, strlen(tok_digest));
        x->tok = b->ntoks++;
    }
    for (int i = 0; i < evs->n; i++) {
        const hook_event *e = &evs->v[i];
        push_arg(b, e->id);
        push_arg(b, hook_ev_name(e->type));
        push_arg(b, e->job ? e->job : "");
        push_arg(b, e->campaign ? e->campaign : "");
        if (e->platform && e->platform_id) { /* "platform:id" */
            char *pk = hr_asprintf("%s:%s", e->platform, e->platform_id);
            hook_resp_arg(&b->keys, pk, strlen(pk));
            free(pk);
            b->has_keys = 1;
        } else {
            hook_resp_arg(&b->keys, "", 0);
        }
        char digest[65] = "";
        if (e->email && queue_suppress_hash(s->secret, e->email, digest) != 0) digest[0] = '\0';
        hook_resp_arg(&b->keys, digest, strlen(digest));
        if (digest[0]) b->has_keys = 1;
        push_arg(b, e->platform ? e->platform : "");
        char ts[24];
        hook_fmt_i64(ts, e->ts_ms);
        push_arg(b, ts);
    }
    b->nevents += evs->n;
    if (b->nevents >= BATCH_MAX_EVENTS) flush_batch(s);
}

/* ------------------------------------------------------------- routes */

/* The provider routes, /webhooks/<name>: named once per request, where
 * each step compared the name again. */
typedef enum { RT_SENDGRID, RT_MAILGUN, RT_POSTMARK, RT_GENERIC, RT_N } route_id;
static const char *const route_names[RT_N] = {"sendgrid", "mailgun", "postmark", "generic"};

static int route_verify(hook_server *s, hook_req *r, route_id rt, const char *body, size_t len,
                        hr_err *err)
{
    int64_t now = hr_now_ms() / 1000;
    if (rt == RT_SENDGRID)
        return hook_verify_sendgrid_key(
            s->sendgrid_key, hook_req_header(r, "X-Twilio-Email-Event-Webhook-Signature"),
            hook_req_header(r, "X-Twilio-Email-Event-Webhook-Timestamp"), body, len, now,
            s->window_s, err);
    if (rt == RT_POSTMARK)
        return hook_verify_basic(s->postmark_auth, hook_req_header(r, "Authorization"), err);
    if (rt == RT_GENERIC)
        return hook_verify_generic_mac(s->generic_mac, hook_req_header(r, "X-Herald-Signature"),
                                       body, len, now, s->window_s, err);
    /* mailgun signs inside the body */
    return hr_err_set(err, "unreachable");
}

/* mailgun_verify_body checks the signature object Mailgun puts in the JSON
 * body; on success *root is the parsed body (the caller's), so the events
 * are read from it without parsing the body again, and *token its signature
 * token (borrowed from *root). */
static int mailgun_verify_body(hook_server *s, const char *body, size_t len, json_t **root,
                               const char **token, hr_err *err)
{
    json_error_t je;
    *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!*root) return hr_err_set(err, "mailgun: body is not JSON (or repeats a key)");
    json_t *sig = json_object_get(*root, "signature");
    *token = json_string_value(json_object_get(sig, "token"));
    int rc = hook_verify_mailgun(
        s->mailgun_key, json_string_value(json_object_get(sig, "timestamp")), *token,
        json_string_value(json_object_get(sig, "signature")), hr_now_ms() / 1000, s->window_s, err);
    if (rc != 0) {
        json_decref(*root);
        *root = NULL;
        *token = NULL;
    }
    return rc;
}

/* mailgun_digest writes into out (33 bytes) what a Mailgun token is
 * remembered with: 32 hex digits of the HMAC, under the server's secret (it
 * names an address), of the request's event-data in one canonical form
 * (compact, keys sorted), so a redelivery of the same event matches however
 * its JSON is laid out, and a replay with other event-data does not. */
static void mailgun_digest(const hook_server *s, json_t *root, char out[33])
{
    char *c = json_dumps(json_object_get(root, "event-data"),
                         JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    unsigned char mac[32];
    hr_hmac_sha256(s->secret, strlen(s->secret), c ? c : "", c ? strlen(c) : 0, mac);
    free(c);
    hr_hex(mac, 16, out);
}

static void handle_webhook(hook_server *s, hook_req *r, const char *provider)
{
    if (strcmp(hook_req_method(r), "POST") != 0) {
        answer_not_allowed(r, "POST", "use POST");
        return;
    }
    route_id rt = RT_SENDGRID;
    while (rt < RT_N && strcmp(provider, route_names[rt]) != 0)
        rt++;
    int configured = rt == RT_SENDGRID   ? s->sendgrid_key != NULL
                     : rt == RT_MAILGUN  ? s->mailgun_key != NULL
                     : rt == RT_POSTMARK ? s->postmark_auth != NULL
                     : rt == RT_GENERIC  ? s->generic_key != NULL
                                         : -1;
    if (configured < 0) {
        answer_error(r, 404, "no such route");
        return;
    }
    if (!configured) {
        answer_error(r, 404, "route not configured (no credential)");
        return;
    }
    size_t len;
    const char *body = hook_req_body(r, &len);
    hr_err err = {0};
    json_t *mg_root = NULL; /* mailgun: the body, parsed once */
    const char *mg_token = NULL;
    int vrc = rt == RT_MAILGUN ? mailgun_verify_body(s, body, len, &mg_root, &mg_token, &err)
                               : route_verify(s, r, rt, body, len, &err);
    if (vrc != 0) {
        s->rejected++;
        hr_log(HR_LOG_WARN, "webhook rejected", "route", provider, "peer", hook_req_peer(r),
               "error", err.msg, NULL);
        /* Postmark authenticates with HTTP Basic: its 401 says so (RFC 7235) */
        if (rt == RT_POSTMARK)
            hook_req_add_header(r, "WWW-Authenticate", "Basic realm=\"herald\"");
        answer_error(r, 401, "signature check failed");
        return;
    }
    hook_events evs = {0};
    int prc = rt == RT_SENDGRID   ? hook_parse_sendgrid(body, len, &evs, &err)
              : mg_root           ? hook_parse_mailgun_json(mg_root, &evs, &err)
              : rt == RT_POSTMARK ? hook_parse_postmark(body, len, &evs, &err)
                                  : hook_parse_generic(body, len, &evs, &err);
    /* Mailgun signs only timestamp + token, not the event: each token is
     * good for one event-data, consumed by the script that records the
     * request (even one whose event herald ignores: its signature must not
     * carry another); the same event-data again is a redelivery */
    char *token = mg_token ? hr_strdup(mg_token) : NULL;
    char mg_digest[33] = "";
    if (token && prc == 0) mailgun_digest(s, mg_root, mg_digest);
    json_decref(mg_root);
    if (prc != 0) {
        free(token);
        s->malformed++;
        hr_log(HR_LOG_WARN, "webhook malformed", "route", provider, "error", err.msg, NULL);
        json_t *o = json_pack("{ss}", "error", err.msg);
        char *j = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        hook_req_respond_json(r, 400, j ? j : "{\"error\":\"malformed\"}");
        free(j);
        return;
    }
    if (evs.n == 0 && !token) {
        s->ignored += evs.ignored;
        char out[96];
        snprintf(out, sizeof out,
                 "{\"recorded\":0,\"duplicates\":0,\"unmatched\":0,\"ignored\":%d}", evs.ignored);
        hook_req_respond_json(r, 200, out);
        hook_events_release(&evs);
        return;
    }
    if (!hook_redis_up(s->redis)) {
        s->unavailable++;
        answer_error(r, 503, "storage unavailable, retry later");
        hook_events_release(&evs);
        free(token);
        return;
    }
    rec_ctx x = {.s = s, .r = r, .ignored = evs.ignored};
    record(s, &x, &evs, token, mg_digest);
    hook_events_release(&evs);
    free(token);
}

/* unsub_from names the campaign an unsubscribe is from, if any */
static void unsub_from(hr_buf *b, const char *campaign)
{
    if (!campaign[0]) return;
    hr_buf_puts(b, " from <b>");
    hr_buf_html_escape(b, campaign);
    hr_buf_puts(b, "</b>");
}

static void handle_unsub(hook_server *s, hook_req *r, const char *token)
{
    const char *m = hook_req_method(r);
    int post = strcmp(m, "POST") == 0;
    if (!post && strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        answer_not_allowed(r, "GET, HEAD, POST", "use GET or POST");
        return;
    }
    hr_unsub u;
    hr_err err = {0};
    if (hr_unsub_token_verify(s->secret, token, &u, &err) != 0) {
        s->rejected++;
        hr_log(HR_LOG_WARN, "unsubscribe token rejected", "error", err.msg, NULL);
        answer_page(r, 400, "Invalid link",
                    "<p>This unsubscribe link is not valid. Please use the link from your "
                    "email.</p>");
        return;
    }
    char masked[300];
    hr_mask_email(u.email, masked, sizeof masked);
    if (!post) {
        hr_buf b;
        hr_buf_init(&b);
        hr_buf_puts(&b, "<p>Stop sending emails to ");
        hr_buf_html_escape(&b, masked);
        unsub_from(&b, u.campaign);
        hr_buf_puts(&b, "?</p><form method=\"post\"><input type=\"hidden\" "
                        "name=\"List-Unsubscribe\" value=\"One-Click\">"
                        "<button type=\"submit\">Unsubscribe</button></form>");
        answer_page(r, 200, "Unsubscribe", b.data);
        hr_buf_release(&b);
        return;
    }
    /* RFC 8058 one-click POST, or the page's button: unsubscribe now. */
    hook_events evs = {0};
    evs.v = hr_calloc(1, sizeof *evs.v);
    evs.n = 1;
    char digest[65] = "";
    if (queue_suppress_hash(s->secret, u.email, digest) != 0) {
        hook_events_release(&evs);
        answer_page(r, 400, "Invalid link", "<p>This link names no valid address.</p>");
        return;
    }
    evs.v[0].id = hr_asprintf("unsub:%s:%s", digest, u.campaign);
    evs.v[0].type = HOOK_EV_UNSUBSCRIBE;
    evs.v[0].job = u.job[0] ? hr_strdup(u.job) : NULL;
    evs.v[0].campaign = u.campaign[0] ? hr_strdup(u.campaign) : NULL;
    evs.v[0].platform = hr_strdup("unsubscribe");
    evs.v[0].email = hr_strdup(u.email);
    evs.v[0].ts_ms = hr_now_ms();
    /* the answer's text, made now: masked and u go with this frame */
    hr_buf msg;
    hr_buf_init(&msg);
    hr_buf_puts(&msg, "<p>");
    hr_buf_html_escape(&msg, masked);
    hr_buf_puts(&msg, " will get no more emails");
    unsub_from(&msg, u.campaign);
    hr_buf_puts(&msg, ".</p>");
    rec_ctx x = {.s = s, .r = r, .unsub_msg = hr_buf_detach(&msg)};
    record(s, &x, &evs, NULL, NULL);
    hook_events_release(&evs);
}

/* the webhooks server's own counters: per process, unlike the queue's */
static void webhook_counter(hr_buf *b, const char *name, const char *help, long v)
{
    hr_prom_family(b, name, "counter", help);
    hr_buf_printf(b, "%s %ld\n", name, v);
}

static void handle_metrics(hook_server *s, hook_req *r)
{
    hr_buf b;
    hr_buf_init(&b);
    webhook_counter(&b, "herald_webhook_requests_total", "HTTP requests this server answered.",
                    s->requests);
    webhook_counter(&b, "herald_webhook_rejected_total",
                    "Requests refused: a webhook's signature, auth or timestamp, an unsubscribe token.", s->rejected);
    webhook_counter(&b, "herald_webhook_malformed_total",
                    "Webhook requests whose body could not be read.", s->malformed);
    webhook_counter(&b, "herald_webhook_unavailable_total",
                    "Webhook requests answered 503: Redis unreachable.", s->unavailable);
    hr_prom_family(&b, "herald_webhook_events_total", "counter",
                   "Engagement events received by this server, by what recording did.");
    hr_buf_printf(&b,
                  "herald_webhook_events_total{result=\"recorded\"} %ld\n"
                  "herald_webhook_events_total{result=\"duplicate\"} %ld\n"
                  "herald_webhook_events_total{result=\"unmatched\"} %ld\n"
                  "herald_webhook_events_total{result=\"ignored\"} %ld\n",
                  s->recorded, s->duplicates, s->unmatched, s->ignored);
    webhook_counter(&b, "herald_unsubscribes_total",
                    "One-click unsubscribes this server recorded.", s->unsubscribes);
    hr_prom_family(&b, "herald_webhook_redis_up", "gauge",
                   "1 while this server's Redis connection is up.");
    hr_buf_printf(&b, "herald_webhook_redis_up %d\n", hook_redis_up(s->redis));
    hr_prom_family(&b, "herald_webhook_connections", "gauge", "Open client connections.");
    hr_buf_printf(&b, "herald_webhook_connections %d\n", hook_httpd_conns(s->http));
    if (s->metrics) s->metrics(&b, s->metrics_priv);
    hook_req_respond(r, 200, "text/plain; version=0.0.4", b.data, b.len);
    hr_buf_release(&b);
}

static void on_request(hook_req *r, void *priv)
{
    hook_server *s = priv;
    const char *path = hook_req_path(r);
    s->requests++;
    if (strncmp(path, "/webhooks/", 10) == 0) return handle_webhook(s, r, path + 10);
    if (strncmp(path, "/u/", 3) == 0) return handle_unsub(s, r, path + 3);
    if (strcmp(path, "/healthz") == 0) return hook_req_respond_json(r, 200, "{\"ok\":true}");
    if (strcmp(path, "/readyz") == 0) {
        if (hook_redis_up(s->redis)) return hook_req_respond_json(r, 200, "{\"redis\":true}");
        return hook_req_respond_json(r, 503, "{\"redis\":false}");
    }
    if (strcmp(path, "/metrics") == 0) return handle_metrics(s, r);
    answer_error(r, 404, "no such route");
}

/* -------------------------------------------------------- life cycle */

int hook_window_check(int64_t window_s, int64_t dedupe_days, hr_err *err)
{
    /* Mailgun's tokens are remembered with the seen ids, for at least one
     * period: that must outlast twice the window a token is good in */
    if (window_s < 1)
        return hr_err_set(err, "webhooks-replay-window: %lld turns the timestamp check off",
                          (long long)window_s);
    if (dedupe_days < 1 || dedupe_days * 86400 < 2 * window_s)
        return hr_err_set(err,
                          "webhooks-dedupe-days: %lld is less than twice "
                          "webhooks-replay-window (%lld s)",
                          (long long)dedupe_days, (long long)window_s);
    return 0;
}

/* log_warning logs a credential file's warning (see hr_key_file_read) */
static void log_warning(const hr_err *w)
{
    if (w->code) hr_log(HR_LOG_WARN, "webhooks: credential file", "warning", w->msg, NULL);
}

void hook_server_free(hook_server *s)
{
    if (!s) return;
    ev_prepare_stop(s->loop, &s->flush);
    flush_batch(s);            /* fails at once when Redis is gone: 503s */
    hook_redis_free(s->redis); /* answers requests waiting on Redis (503) */
    hook_httpd_free(s->http);
    EVP_PKEY_free(s->sendgrid_key);
    hr_buf_release(&s->call_head);
    free(s->secret);
    free(s->mailgun_key);
    free(s->postmark_auth);
    free(s->generic_key);
    hook_mac_free(s->generic_mac);
    free(s);
}

hook_server *hook_server_new(struct ev_loop *loop, const hr_config *c, const char *listen,
                             hr_err *err)
{
    hook_server *s = hr_calloc(1, sizeof *s);
    s->loop = loop;
    hr_err warn_secret = {0};
    s->secret = hr_secret_load(c, &warn_secret, err);
    if (!s->secret) goto fail;
    log_warning(&warn_secret);
    const char *ns = hr_config_get(c, "namespace", "herald");
    for (int k = 0; k < K_N; k++)
        queue_key(ns, key_names[k], s->keys[k], sizeof s->keys[k]);
    hook_script_sha(hook_lua_record, s->sha);
    static const char evalsha[] = "EVALSHA";
    char nkeys[24];
    hook_resp_arg(&s->call_head, evalsha, sizeof evalsha - 1);
    hook_resp_arg(&s->call_head, s->sha, 40);
    hook_resp_arg(&s->call_head, nkeys, hook_fmt_i64(nkeys, K_N));
    for (int k = 0; k < K_N; k++)
        hook_resp_arg(&s->call_head, s->keys[k], strlen(s->keys[k]));
    /* every number in its range (hr_int_directives), as config check has it */
    int64_t v, days, max_body, max_conns, req_ms, idle_ms, redis_ms;
    if (hr_config_int(c, "webhooks-replay-window", &v, err) != 0 ||
        hr_config_int(c, "webhooks-dedupe-days", &days, err) != 0 ||
        hook_window_check(v, days, err) != 0)
        goto fail;
    s->window_s = (int)v;
    s->seen_period_ms = days * 86400000LL;
    if (hr_config_int(c, "webhooks-stream-maxlen", &v, err) != 0 ||
        hr_config_int(c, "webhooks-max-body", &max_body, err) != 0 ||
        hr_config_int(c, "webhooks-max-conns", &max_conns, err) != 0 ||
        hr_config_int(c, "webhooks-request-timeout-ms", &req_ms, err) != 0 ||
        hr_config_int(c, "webhooks-idle-timeout-ms", &idle_ms, err) != 0 ||
        hr_config_int(c, "webhooks-redis-timeout-ms", &redis_ms, err) != 0)
        goto fail;
    s->stream_maxlen = (long)v;
    hr_err cerr = {0}, warn[4] = {{0}};
    s->sendgrid_key = hook_sendgrid_key_load(c, &warn[0], &cerr);
    s->mailgun_key =
        hook_credential(c, "mailgun-signing-key-file", "mailgun-signing-key", &warn[1], &cerr);
    s->postmark_auth = hook_credential(c, "postmark-webhook-auth-file", "postmark-webhook-auth",
                                       &warn[2], &cerr);
    s->generic_key =
        hook_credential(c, "webhook-hmac-key-file", "webhook-hmac-key", &warn[3], &cerr);
    if (s->generic_key) s->generic_mac = hook_mac_new(s->generic_key);
    if (cerr.code) {
        hr_err_set(err, "%s", cerr.msg);
        goto fail;
    }
    for (size_t i = 0; i < HR_ARRAY_LEN(warn); i++)
        log_warning(&warn[i]);
    s->redis =
        hook_redis_new(loop, hr_config_get(c, "redis-url", NULL), ns, (int)redis_ms, err);
    if (!s->redis) goto fail;
    hook_redis_add_script(s->redis, hook_lua_record);
    hook_httpd_opts o = {0};
    o.listen = listen ? listen : hr_config_get(c, "webhooks-listen", "127.0.0.1:8025");
    o.max_body = (size_t)max_body;
    o.max_conns = (int)max_conns;
    o.request_timeout_ms = (int)req_ms;
    o.idle_timeout_ms = (int)idle_ms;
    o.handler = on_request;
    o.priv = s;
    s->http = hook_httpd_new(loop, &o, err);
    if (!s->http) goto fail;
    ev_prepare_init(&s->flush, on_prepare);
    s->flush.data = s;
    ev_prepare_start(loop, &s->flush);
    return s;
fail:
    hook_server_free(s);
    return NULL;
}

int hook_server_port(const hook_server *s)
{
    return hook_httpd_port(s->http);
}

void hook_server_stop(hook_server *s, void (*done)(void *priv), void *priv)
{
    hook_httpd_stop(s->http, done, priv);
}

void hook_server_set_metrics(hook_server *s, hook_metrics_fn *fn, void *priv)
{
    s->metrics = fn;
    s->metrics_priv = priv;
}
