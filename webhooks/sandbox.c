/* sandbox.c: `herald sandbox`: look-alike platform APIs on loopback, as
 * docs/platforms.md describes them: same paths, auth headers, validation,
 * answer shapes and ids; Idempotency-Key; injected faults; engagement counts
 * that grow; signed engagement webhooks fired at `herald webhooks`; and a
 * queryable record of every request. Records live in memory only. */
#include <ctype.h>
#include <ev.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "platforms.h"
#include "queue.h"

typedef struct sb_fault {
    char platform[32]; /* "*" for all */
    double rate429, rate500, drop;
    int retry_after_s, slow_ms;
    int search_lag_ms; /* email providers: a message shows in search this late */
    /* refusals: a share of the posts and emails answered with status4xx
     * in the platform's own error shape (a permanent failure) */
    double rate4xx;
    int status4xx;
    char message[200];
    /* a share of what is made (posts, emails, Threads containers) answered
     * 502 instead: a gateway in front of the platform lost its answer */
    double gateway;
} sb_fault;

typedef struct sb_rec {
    char *platform, *kind, *method, *path, *idem, *id;
    char *scope; /* whose Idempotency-Key idem is: "<account> <path>" */
    /* answered otherwise than by the platform: an injected fault ("429",
     * "500", "drop", "refusal"), a repeated key's first answer (replay),
     * or no route; such records are aside, listed only with ?all=1. A
     * "gateway" fault is not: the platform made the record (its status),
     * only its answer was replaced by a 502. */
    const char *fault;
    int replay, aside;
    json_t *body; /* the request body: parsed JSON, a form as an object, or a string */
    int status;
    char *resp;      /* answer body */
    char *resp_hdrs; /* extra answer headers, "Name: value\r\n"... */
    int duplicates;
    int64_t received_ms;
    char *text;                   /* the post's text, for read-back */
    char *email, *job, *campaign; /* emails: for the webhooks it fires */
    char *message_id;             /* mailgun/sendgrid Message-Id header we were given */
    char *rkey, *repo;            /* bluesky */
    char *owner;   /* x: the token that posted it (its timeline); threads: the user */
    int published; /* threads containers */
} sb_rec;

typedef struct sb_session {
    char access[48], refresh[48], did[64];
    char handle[256]; /* the identifier it logged in with */
    int expired;
} sb_session;

struct hook_sandbox {
    struct ev_loop *loop;
    hook_httpd *http;
    hook_smtpd *smtpd; /* the SMTP relay stand-in, when asked for */
    hook_fire *fire;
    sb_rec **recs;
    int nrecs, caprecs;
    sb_fault faults[16];
    int nfaults;
    sb_session *sessions;
    int nsessions;
    uint64_t rng;
    uint64_t seq;
    char *webhooks_url;
    int auto_events;
    EVP_PKEY *sg_key;
    char *sg_pub_pem;
    char *mailgun_key, *postmark_auth, *generic_key;
    /* the credentials of the config's webhook accounts: a relay POST must
     * be signed with one of them (none configured: any value passes) */
    char **relay_keys;
    int nrelay_keys;
    long fired, fired_ok, fired_failed, faults_injected;
    struct delayed *delays; /* slow answers waiting on their timers */
    struct later *laters;   /* engagement to fire about accepted posts */
    unsigned generation;    /* bumped by reset: laters of older records drop */
};

/* The answer being built for one request. */
typedef struct sb_reply {
    int status;
    hr_buf body;
    hr_buf hdrs;
} sb_reply;

/* ------------------------------------------------------------ helpers */

static double rnd(hook_sandbox *s)
{
    /* xorshift64*: faults must be reproducible with --seed */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static void reply_json(sb_reply *o, int status, json_t *j)
{
    o->status = status;
    if (!j) { /* BUG guard: a json_pack format mistake */
        hr_log(HR_LOG_ERROR, "sandbox: cannot build an answer", NULL);
        o->status = 500;
        hr_buf_puts(&o->body, "{\"error\":\"sandbox: cannot build the answer\"}");
        return;
    }
    char *t = json_dumps(j, JSON_COMPACT);
    hr_buf_puts(&o->body, t);
    free(t);
    json_decref(j);
}

static void reply_hdr(sb_reply *o, const char *name, const char *value)
{
    hr_buf_printf(&o->hdrs, "%s: %s\r\n", name, value);
}

static char *jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? hr_strdup(v) : NULL;
}

static const char *bearer(const hook_req *r)
{
    const char *a = hook_req_header(r, "Authorization");
    if (!a || strncasecmp(a, "Bearer ", 7) != 0 || !a[7]) return NULL;
    return a + 7;
}

/* text_len counts text as herald's platforms/ module counts it for
 * platform (X weighted, Mastodon's URLs and mentions, graphemes, UTF-16),
 * so the sandbox and herald never disagree on a limit. Returns the length,
 * or -1 for text that is not UTF-8; *limit gets the platform's limit. */
static long text_len(const char *platform, const char *text, long *limit)
{
    long n;
    if (plat_count_text(platform, text, &n, limit) != 0) return -1;
    return n;
}

static char *digits_id(hook_sandbox *s, const char *prefix, int width)
{
    /* time-ordered decimal ids like the platforms' snowflakes */
    uint64_t v = (uint64_t)hr_now_ms() * 1000 + (++s->seq % 1000);
    char d[32];
    snprintf(d, sizeof d, "%llu", (unsigned long long)v);
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_puts(&b, prefix);
    for (int i = (int)strlen(d); i < width; i++)
        hr_buf_putc(&b, (char)('1' + (i % 9)));
    hr_buf_puts(&b, d);
    return hr_buf_detach(&b);
}

static char *rand_token(int nbytes)
{
    unsigned char raw[48];
    char out[72];
    hr_random_bytes(raw, (size_t)nbytes);
    hr_b64url_encode(raw, (size_t)nbytes, out);
    return hr_strdup(out);
}

static json_t *form_to_json(const char *body, size_t len)
{
    json_t *o = json_object();
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        size_t seg = amp ? (size_t)(amp - p) : (size_t)(end - p);
        const char *eq = memchr(p, '=', seg);
        if (eq) {
            char *name = hook_url_decode(p, (size_t)(eq - p));
            char *v = hook_url_decode(eq + 1, seg - (size_t)(eq - p) - 1);
            /* json_string refuses invalid UTF-8: keep such values as null */
            if (json_object_get(o, name) == NULL) json_object_set_new(o, name, json_string(v));
            free(v);
            free(name);
        }
        if (!amp) break;
        p = amp + 1;
    }
    return o;
}

/* ------------------------------------------------------------ records */

/* rec_add appends a new record of what platform was asked (method path) */
static sb_rec *rec_add(hook_sandbox *s, const char *platform, const char *kind,
                       const char *method, const char *path)
{
    sb_rec *x = hr_calloc(1, sizeof *x);
    x->platform = hr_strdup(platform);
    x->kind = hr_strdup(kind);
    x->method = hr_strdup(method);
    x->path = hr_strdup(path);
    x->received_ms = hr_now_ms();
    if (s->nrecs == s->caprecs) {
        s->caprecs = s->caprecs ? s->caprecs * 2 : 64;
        s->recs = hr_realloc(s->recs, sizeof *s->recs * (size_t)s->caprecs);
    }
    s->recs[s->nrecs++] = x;
    return x;
}

static sb_rec *rec_new(hook_sandbox *s, const char *platform, const char *kind, hook_req *r)
{
    sb_rec *x = rec_add(s, platform, kind, hook_req_method(r), hook_req_path(r));
    x->idem = hr_strdup(hook_req_header(r, "Idempotency-Key"));
    size_t len;
    const char *body = hook_req_body(r, &len);
    const char *ct = hook_req_header(r, "Content-Type");
    if (len && ct && strstr(ct, "json"))
        x->body = json_loadb(body, len, 0, NULL);
    else if (len && ct && strstr(ct, "x-www-form-urlencoded"))
        x->body = form_to_json(body, len);
    if (!x->body && len) x->body = json_stringn_nocheck(body, len);
    if (!x->body) x->body = json_null();
    return x;
}

static void rec_free(sb_rec *x)
{
    free(x->platform);
    free(x->kind);
    free(x->method);
    free(x->path);
    free(x->idem);
    free(x->scope);
    free(x->id);
    json_decref(x->body);
    free(x->resp);
    free(x->resp_hdrs);
    free(x->text);
    free(x->owner);
    free(x->email);
    free(x->job);
    free(x->campaign);
    free(x->message_id);
    free(x->rkey);
    free(x->repo);
    free(x);
}

/* find_idem returns the accepted request that first used key in scope
 * (idem_scope) on platform, or NULL */
static sb_rec *find_idem(hook_sandbox *s, const char *platform, const char *scope, const char *key)
{
    for (int i = 0; i < s->nrecs; i++) {
        sb_rec *x = s->recs[i];
        if (x->idem && x->status >= 200 && x->status < 300 && strcmp(x->idem, key) == 0 &&
            strcmp(x->platform, platform) == 0 && hr_streq(x->scope, scope))
            return x;
    }
    return NULL;
}

static sb_rec *find_id(hook_sandbox *s, const char *platform, const char *kind, const char *id)
{
    for (int i = 0; i < s->nrecs; i++) {
        sb_rec *x = s->recs[i];
        if (x->id && strcmp(x->id, id) == 0 && strcmp(x->platform, platform) == 0 &&
            (!kind || strcmp(x->kind, kind) == 0) && x->status >= 200 && x->status < 300)
            return x;
    }
    return NULL;
}

static struct sb_fault *fault_for(hook_sandbox *s, const char *platform);

/* searchable: a provider's message search shows p only once its index has
 * caught up (the search_lag_ms fault; none by default) */
static int searchable(hook_sandbox *s, const sb_rec *p)
{
    const sb_fault *f = fault_for(s, p->platform);
    return !f || hr_now_ms() - p->received_ms >= f->search_lag_ms;
}

/* engagement grows with the post's age, so polls see counts rise */
static long grow(const sb_rec *x, int per_s)
{
    int64_t age_s = (hr_now_ms() - x->received_ms) / 1000;
    return per_s > 0 ? (long)(age_s / per_s) : 0;
}

/* ------------------------------------------------------------ platforms */

typedef void handler_fn(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x);

static json_t *load_body(hook_req *r)
{
    size_t len;
    const char *b = hook_req_body(r, &len);
    return json_loadb(b, len, 0, NULL);
}

/* X */
static void x_error(sb_reply *o, int status, const char *detail)
{
    reply_json(o, status,
               json_pack("{ss ss ss si}", "title",
                         status == 401 ? "Unauthorized" : "Invalid Request", "detail", detail,
                         "type", "https://api.twitter.com/2/problems/invalid-request", "status",
                         status));
}

static void x_create(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    if (!tok || strcmp(tok, "invalid") == 0) return x_error(o, 401, "Unauthorized");
    json_t *j = load_body(r);
    const char *text = json_string_value(json_object_get(j, "text"));
    long limit, n = text ? text_len("x", text, &limit) : -1;
    if (!text || n <= 0)
        x_error(o, 400, "The `text` field is required and must be UTF-8");
    else if (n > limit)
        x_error(o, 403, "Your Tweet text is too long.");
    else {
        x->id = digits_id(s, "", 19);
        x->text = hr_strdup(text);
        x->owner = hr_strdup(tok);
        reply_json(o, 201, json_pack("{s{ssss}}", "data", "id", x->id, "text", text));
    }
    json_decref(j);
}

static void x_get(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *id = hook_req_path(r) + strlen("/2/tweets/");
    sb_rec *p = find_id(s, "x", "post", id);
    if (!p) return x_error(o, 404, "Could not find tweet");
    reply_json(o, 200,
               json_pack("{s{ssss s{sisisisisi}}}", "data", "id", p->id, "text", p->text,
                         "public_metrics", "retweet_count", (int)grow(p, 10), "reply_count",
                         (int)grow(p, 15), "like_count", (int)grow(p, 3), "quote_count",
                         (int)grow(p, 30), "impression_count", (int)grow(p, 1) * 7));
}

/* x_shown adds p to t as X shows a post: every http(s) link is a t.co link
 * of 23 characters; with entities, entities.urls says what each expands to
 * (start and end in code points, as X counts them). */
static void x_shown(const sb_rec *p, json_t *t, int entities)
{
    hr_buf b;
    hr_buf_init(&b);
    json_t *urls = json_array();
    long cps = 0; /* code points written */
    int k = 0;
    for (const char *c = p->text; *c;) {
        if (strncmp(c, "https://", 8) == 0 || strncmp(c, "http://", 7) == 0) {
            size_t n = strcspn(c, " \t\r\n");
            char tco[32];
            size_t idl = strlen(p->id);
            snprintf(tco, sizeof tco, "https://t.co/%s%c", p->id + (idl > 9 ? idl - 9 : 0),
                     'a' + k++ % 26);
            char *exp = hr_strndup(c, n);
            json_array_append_new(urls, json_pack("{sIsIssssss}", "start", (json_int_t)cps, "end",
                                                  (json_int_t)(cps + 23), "url", tco,
                                                  "expanded_url", exp, "display_url", exp + 8));
            free(exp);
            hr_buf_puts(&b, tco);
            cps += 23;
            c += n;
            continue;
        }
        /* X escapes these in the text it answers */
        if (*c == '&') hr_buf_puts(&b, "&amp;");
        else if (*c == '<') hr_buf_puts(&b, "&lt;");
        else if (*c == '>') hr_buf_puts(&b, "&gt;");
        else hr_buf_putc(&b, *c);
        if ((*c & 0xC0) != 0x80) cps++;
        c++;
    }
    json_object_set_new(t, "text", json_string(b.data ? b.data : ""));
    if (entities && json_array_size(urls))
        json_object_set_new(t, "entities", json_pack("{so}", "urls", urls));
    else
        json_decref(urls);
    hr_buf_release(&b);
}

/* x_list: GET /2/users/<id>/tweets as X answers it: the posts of the
 * token's account (the sandbox's stand-in for the user id), newest first,
 * max_results 5-100 (default 10), start_time (inclusive), pagination by
 * meta.next_token, created_at and entities only when tweet.fields asks,
 * links shown as t.co. */
static void x_list(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    if (!tok || strcmp(tok, "invalid") == 0) return x_error(o, 401, "Unauthorized");
    char v[128];
    long max = 10;
    if (hook_req_query_param(r, "max_results", v, sizeof v) == 0) {
        char *end;
        max = strtol(v, &end, 10);
        if (*end || max < 5 || max > 100)
            return x_error(o, 400,
                           "The `max_results` query parameter value is not between 5 "
                           "and 100");
    }
    int64_t start = 0;
    if (hook_req_query_param(r, "start_time", v, sizeof v) == 0 && hr_parse_rfc3339(v, &start) != 0)
        return x_error(o, 400, "The `start_time` query parameter value is not a valid time");
    int from = s->nrecs - 1; /* the token is the record to go on from */
    if (hook_req_query_param(r, "pagination_token", v, sizeof v) == 0) {
        char *end;
        long k = v[0] == 'p' ? strtol(v + 1, &end, 10) : -1;
        if (k < 0 || k >= s->nrecs || *end)
            return x_error(o, 400, "The `pagination_token` query parameter value is invalid");
        from = (int)k;
    }
    int fields = hook_req_query_param(r, "tweet.fields", v, sizeof v) == 0;
    int created = fields && strstr(v, "created_at") != NULL;
    int entities = fields && strstr(v, "entities") != NULL;
    json_t *data = json_array(), *meta = json_object();
    for (int i = from; i >= 0; i--) {
        sb_rec *p = s->recs[i];
        if (strcmp(p->platform, "x") || strcmp(p->kind, "post") || !p->id ||
            p->received_ms < start || !hr_streq(p->owner, tok))
            continue;
        if ((long)json_array_size(data) == max) {
            char next[32];
            snprintf(next, sizeof next, "p%d", i);
            json_object_set_new(meta, "next_token", json_string(next));
            break;
        }
        json_t *t = json_pack("{ss}", "id", p->id);
        x_shown(p, t, entities);
        if (created) {
            char ts[32];
            hr_format_rfc3339(p->received_ms, ts, sizeof ts);
            json_object_set_new(t, "created_at", json_string(ts));
        }
        json_array_append_new(data, t);
    }
    size_t n = json_array_size(data);
    json_object_set_new(meta, "result_count", json_integer((json_int_t)n));
    if (n) {
        json_object_set_new(meta, "newest_id",
                            json_copy(json_object_get(json_array_get(data, 0), "id")));
        json_object_set_new(meta, "oldest_id",
                            json_copy(json_object_get(json_array_get(data, n - 1), "id")));
    }
    json_t *ans = json_pack("{so}", "meta", meta);
    if (n)
        json_object_set_new(ans, "data", data);
    else
        json_decref(data);
    reply_json(o, 200, ans);
}

/* Mastodon */

/* masto_status returns status p as Mastodon's Status entity (new): what
 * the create answer, a status's GET and the account's list all give;
 * its counts grow with its age (none yet when it is new) */
static json_t *masto_status(const sb_rec *p)
{
    static const char *const vis[] = {"public", "unlisted", "private", "direct"};
    const char *v = json_string_value(json_object_get(p->body, "visibility"));
    const char *visibility = "public";
    for (size_t i = 0; v && i < HR_ARRAY_LEN(vis); i++)
        if (!strcmp(v, vis[i])) visibility = vis[i];
    char *url = hr_asprintf("https://mastodon.sandbox/@shop/%s", p->id);
    char ts[32];
    hr_format_rfc3339(p->received_ms, ts, sizeof ts);
    hr_buf content;
    hr_buf_init(&content);
    hr_buf_puts(&content, "<p>");
    hr_buf_html_escape(&content, p->text);
    hr_buf_puts(&content, "</p>");
    json_t *j = json_pack("{ss ss ss ss ss ss s{ssssssssss} si si si}", "id", p->id, "uri", url,
                          "url", url, "created_at", ts, "content", content.data, "visibility",
                          visibility, "account", "id", "1", "username", "shop", "acct", "shop",
                          "display_name", "shop", "url", "https://mastodon.sandbox/@shop",
                          "favourites_count", (int)grow(p, 3), "reblogs_count", (int)grow(p, 10),
                          "replies_count", (int)grow(p, 15));
    hr_buf_release(&content);
    free(url);
    return j;
}

static void masto_create(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    if (!tok || strcmp(tok, "invalid") == 0)
        return reply_json(o, 401, json_pack("{ss}", "error", "The access token is invalid"));
    const char *text = json_string_value(json_object_get(x->body, "status"));
    long limit, n = text ? text_len("mastodon", text, &limit) : -1;
    if (!text || n <= 0)
        return reply_json(o, 422,
                          json_pack("{ss}", "error", "Validation failed: Text can't be blank"));
    if (n > limit)
        return reply_json(
            o, 422,
            json_pack("{ss}", "error", "Validation failed: Text character limit of 500 exceeded"));
    x->id = digits_id(s, "", 18);
    x->text = hr_strdup(text);
    reply_json(o, 200, masto_status(x));
}

static void masto_get(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *id = hook_req_path(r) + strlen("/api/v1/statuses/");
    sb_rec *p = find_id(s, "mastodon", "post", id);
    if (!p) return reply_json(o, 404, json_pack("{ss}", "error", "Record not found"));
    reply_json(o, 200, masto_status(p));
}

/* masto_list: an account's statuses, newest first: limit (default 20, at
 * most 40), max_id (only statuses older than that id), whole statuses. */
static void masto_list(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char v[64];
    long limit = 20;
    if (hook_req_query_param(r, "limit", v, sizeof v) == 0) limit = strtol(v, NULL, 10);
    if (limit < 1) limit = 20;
    if (limit > 40) limit = 40;
    int older_than = hook_req_query_param(r, "max_id", v, sizeof v) == 0;
    json_t *a = json_array();
    for (int i = s->nrecs - 1; i >= 0 && (long)json_array_size(a) < limit; i--) {
        sb_rec *p = s->recs[i];
        if (strcmp(p->platform, "mastodon") || strcmp(p->kind, "post") || !p->id) continue;
        if (older_than) { /* ids grow with time: skip down to max_id */
            older_than = strcmp(p->id, v) != 0;
            continue;
        }
        json_array_append_new(a, masto_status(p));
    }
    reply_json(o, 200, a);
}

/* Bluesky */
static void bsky_error(sb_reply *o, int status, const char *err, const char *msg)
{
    reply_json(o, status, json_pack("{ssss}", "error", err, "message", msg));
}

static void bsky_session_reply(sb_reply *o, const sb_session *ss, const char *handle)
{
    reply_json(o, 200,
               json_pack("{ssssssss}", "did", ss->did, "handle", handle, "accessJwt", ss->access,
                         "refreshJwt", ss->refresh));
}

static sb_session *new_session(hook_sandbox *s, const char *did, const char *handle)
{
    s->sessions = hr_realloc(s->sessions, sizeof *s->sessions * (size_t)(s->nsessions + 1));
    sb_session *ss = &s->sessions[s->nsessions++];
    memset(ss, 0, sizeof *ss);
    char *a = rand_token(24), *f = rand_token(24);
    snprintf(ss->access, sizeof ss->access, "acc.%s", a);
    snprintf(ss->refresh, sizeof ss->refresh, "ref.%s", f);
    snprintf(ss->did, sizeof ss->did, "%s", did);
    snprintf(ss->handle, sizeof ss->handle, "%s", handle);
    free(a);
    free(f);
    return ss;
}

static void bsky_create_session(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *id = json_string_value(json_object_get(x->body, "identifier"));
    const char *pw = json_string_value(json_object_get(x->body, "password"));
    if (!id || !pw) return bsky_error(o, 400, "InvalidRequest", "identifier and password required");
    if (strcmp(pw, "invalid") == 0)
        return bsky_error(o, 401, "AuthenticationRequired", "Invalid identifier or password");
    char ukh[13], did[64];
    queue_ukh_from_key(id, ukh);
    snprintf(did, sizeof did, "did:plc:%s", ukh);
    for (char *p = did; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    sb_session *ss = new_session(s, did, id);
    bsky_session_reply(o, ss, id);
}

static void bsky_refresh_session(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    for (int i = 0; tok && i < s->nsessions; i++)
        if (strcmp(s->sessions[i].refresh, tok) == 0) {
            /* copies: new_session moves the sessions */
            char did[64], handle[256];
            snprintf(did, sizeof did, "%s", s->sessions[i].did);
            snprintf(handle, sizeof handle, "%s", s->sessions[i].handle);
            s->sessions[i].refresh[0] = '\0'; /* refresh tokens are single use */
            sb_session *ss = new_session(s, did, handle);
            return bsky_session_reply(o, ss, handle);
        }
    bsky_error(o, 400, "ExpiredToken", "Token has been revoked");
}

/* session_of returns the session whose access token r carries, or NULL */
static sb_session *session_of(hook_sandbox *s, const hook_req *r)
{
    const char *tok = bearer(r);
    for (int i = 0; tok && i < s->nsessions; i++)
        if (strcmp(s->sessions[i].access, tok) == 0) return &s->sessions[i];
    return NULL;
}

static int bsky_auth(hook_sandbox *s, hook_req *r, sb_reply *o)
{
    const sb_session *ss = session_of(s, r);
    if (ss && !ss->expired) return 0;
    if (ss)
        bsky_error(o, 400, "ExpiredToken", "Token has expired");
    else
        bsky_error(o, 401, "InvalidToken", "Bad token");
    return -1;
}

/* bsky_repo returns the DID of repo (a DID or a handle) when it is the
 * session's own account; otherwise it answers as a PDS does: another
 * account it hosts is 401 AuthenticationRequired, one it does not know 400
 * InvalidRequest, and returns NULL */
static const char *bsky_repo(hook_sandbox *s, const sb_session *own, const char *repo,
                             sb_reply *o)
{
    if (!strcmp(repo, own->did) || !strcasecmp(repo, own->handle)) return own->did;
    for (int i = 0; i < s->nsessions; i++)
        if (!strcmp(repo, s->sessions[i].did) || !strcasecmp(repo, s->sessions[i].handle)) {
            bsky_error(o, 401, "AuthenticationRequired", "Authentication Required");
            return NULL;
        }
    char *msg = hr_asprintf("Could not find repo: %s", repo);
    bsky_error(o, 400, "InvalidRequest", msg);
    free(msg);
    return NULL;
}

static void bsky_create_record(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    if (bsky_auth(s, r, o) != 0) return;
    const char *repo = json_string_value(json_object_get(x->body, "repo"));
    const char *coll = json_string_value(json_object_get(x->body, "collection"));
    const char *rkey = json_string_value(json_object_get(x->body, "rkey"));
    json_t *rec = json_object_get(x->body, "record");
    const char *text = json_string_value(json_object_get(rec, "text"));
    if (!repo || !coll || !json_is_object(rec) || !text ||
        !json_string_value(json_object_get(rec, "createdAt")))
        return bsky_error(o, 400, "InvalidRequest",
                          "Input must have the properties \"repo\", \"collection\", \"record\" "
                          "(with text and createdAt)");
    repo = bsky_repo(s, session_of(s, r), repo, o);
    if (!repo) return;
    if (strcmp(coll, "app.bsky.feed.post") != 0)
        return bsky_error(o, 400, "InvalidRequest", "Unsupported collection");
    long limit, g = text_len("bluesky", text, &limit);
    if (g < 0 || g > limit || strlen(text) > 3000)
        return bsky_error(o, 400, "InvalidRequest",
                          "Invalid app.bsky.feed.post record: Record/text must not be longer "
                          "than 300 graphemes");
    char *key = rkey ? hr_strdup(rkey) : digits_id(s, "3k", 11);
    for (int i = 0; i < s->nrecs; i++) {
        sb_rec *p = s->recs[i];
        if (p != x && p->rkey && p->status == 200 && strcmp(p->rkey, key) == 0 &&
            hr_streq(p->repo, repo)) {
            p->duplicates++;
            free(key);
            return bsky_error(o, 400, "InvalidRequest", "Record already exists");
        }
    }
    x->rkey = key;
    x->repo = hr_strdup(repo);
    x->text = hr_strdup(text);
    x->id = hr_asprintf("at://%s/app.bsky.feed.post/%s", repo, key);
    char *cid = rand_token(30);
    for (char *p = cid; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : (*p == '-' || *p == '_') ? 'a' : *p);
    char *full = hr_asprintf("bafyrei%s", cid);
    reply_json(o, 200, json_pack("{ssss}", "uri", x->id, "cid", full));
    free(cid);
    free(full);
}

static void bsky_get_record(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char repo[128], rkey[64];
    if (hook_req_query_param(r, "repo", repo, sizeof repo) ||
        hook_req_query_param(r, "rkey", rkey, sizeof rkey))
        return bsky_error(o, 400, "InvalidRequest", "repo and rkey are required");
    for (int i = 0; i < s->nrecs; i++) {
        sb_rec *p = s->recs[i];
        if (p->rkey && p->status == 200 && strcmp(p->rkey, rkey) == 0 && hr_streq(p->repo, repo))
            return reply_json(o, 200,
                              json_pack("{sssssO}", "uri", p->id, "cid", "bafyreisandbox", "value",
                                        json_object_get(p->body, "record")));
    }
    bsky_error(o, 400, "RecordNotFound", "Could not locate record");
}

static void bsky_get_posts(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char uri[300];
    json_t *posts = json_array();
    if (hook_req_query_param(r, "uris", uri, sizeof uri) == 0) {
        sb_rec *p = find_id(s, "bluesky", "post", uri);
        if (p)
            json_array_append_new(posts, json_pack("{sssisisisi}", "uri", p->id, "likeCount",
                                                   (int)grow(p, 3), "repostCount", (int)grow(p, 10),
                                                   "replyCount", (int)grow(p, 15), "quoteCount",
                                                   (int)grow(p, 30)));
    }
    reply_json(o, 200, json_pack("{so}", "posts", posts));
}

/* LinkedIn */

/* li_one_of returns 1 when v is one of the NULL-terminated names */
static int li_one_of(const char *v, const char *const *names)
{
    for (; v && *names; names++)
        if (!strcmp(v, *names)) return 1;
    return 0;
}

/* li_urn_ok: urn:li:person:<id> or urn:li:organization:<digits>, the
 * authors a post may have */
static int li_urn_ok(const char *a)
{
    const char *id = NULL;
    int digits = 0;
    if (a && !strncmp(a, "urn:li:person:", 14)) id = a + 14;
    if (a && !strncmp(a, "urn:li:organization:", 20)) id = a + 20, digits = 1;
    if (!id || !*id) return 0;
    for (; *id; id++)
        if (digits ? (*id < '0' || *id > '9') : !(isalnum((unsigned char)*id) || *id == '-' ||
                                                  *id == '_'))
            return 0;
    return 1;
}

/* li_invalid checks a post as LinkedIn's Posts API validates it and
 * returns its message for the first fault found (new string), or NULL:
 * Rest.li names the field ("ERROR :: /visibility :: ...") */
static char *li_invalid(json_t *b)
{
    static const char *const required[] = {"author", "commentary", "visibility", "distribution",
                                           "lifecycleState"};
    static const char *const vis[] = {"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER", NULL};
    static const char *const feed[] = {"MAIN_FEED", "NONE", NULL};
    static const char *const life[] = {"PUBLISHED", "DRAFT", NULL};
    if (!json_is_object(b)) return hr_strdup("ERROR :: / :: the body is not a JSON object");
    for (size_t i = 0; i < HR_ARRAY_LEN(required); i++)
        if (!json_object_get(b, required[i]))
            return hr_asprintf("ERROR :: /%s :: field is required but not found and has no "
                               "default value",
                               required[i]);
    const char *author = json_string_value(json_object_get(b, "author"));
    if (!li_urn_ok(author))
        return hr_strdup("Field Value validation failed in REQUEST_BODY: Data Processing "
                         "Exception while processing fields [/author]");
    const char *v = json_string_value(json_object_get(b, "visibility"));
    if (!li_one_of(v, vis))
        return hr_asprintf("ERROR :: /visibility :: \"%s\" is not an enum symbol", v ? v : "");
    json_t *d = json_object_get(b, "distribution");
    const char *fd = json_string_value(json_object_get(d, "feedDistribution"));
    if (!json_is_object(d) || !fd)
        return hr_strdup("ERROR :: /distribution/feedDistribution :: field is required but not "
                         "found and has no default value");
    if (!li_one_of(fd, feed))
        return hr_asprintf("ERROR :: /distribution/feedDistribution :: \"%s\" is not an enum "
                           "symbol",
                           fd);
    v = json_string_value(json_object_get(b, "lifecycleState"));
    if (!li_one_of(v, life))
        return hr_asprintf("ERROR :: /lifecycleState :: \"%s\" is not an enum symbol",
                           v ? v : "");
    const char *text = json_string_value(json_object_get(b, "commentary"));
    long limit, n = text ? text_len("linkedin", text, &limit) : -1;
    if (n < 0) return hr_strdup("ERROR :: /commentary :: not a UTF-8 string");
    if (n > limit)
        return hr_asprintf("ERROR :: /commentary :: length %ld exceeds the maximum of %ld", n,
                           limit);
    return NULL;
}

static void li_create(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    if (!tok || strcmp(tok, "invalid") == 0)
        return reply_json(o, 401,
                          json_pack("{sssisi}", "message", "Invalid access token", "status", 401,
                                    "serviceErrorCode", 65600));
    if (!hook_req_header(r, "LinkedIn-Version") ||
        !hr_streq(hook_req_header(r, "X-Restli-Protocol-Version"), "2.0.0"))
        return reply_json(o, 400,
                          json_pack("{sssi}", "message",
                                    "LinkedIn-Version and X-Restli-Protocol-Version: 2.0.0 "
                                    "headers are required",
                                    "status", 400));
    char *bad = li_invalid(x->body);
    if (bad) {
        reply_json(o, 422,
                   json_pack("{sssisi}", "message", bad, "status", 422, "serviceErrorCode", 100));
        free(bad);
        return;
    }
    const char *text = json_string_value(json_object_get(x->body, "commentary"));
    x->id = digits_id(s, "urn:li:share:7", 18);
    x->text = hr_strdup(text);
    o->status = 201;
    reply_hdr(o, "x-restli-id", x->id);
}

static void li_social(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *enc = hook_req_path(r) + strlen("/rest/socialActions/");
    char *form = hr_asprintf("u=%s", enc); /* the URN arrives percent-encoded */
    char *urn = hook_form_value(form, strlen(form), "u");
    free(form);
    sb_rec *p = find_id(s, "linkedin", "post", urn ? urn : "");
    free(urn);
    if (!p) return reply_json(o, 404, json_pack("{sssi}", "message", "Not found", "status", 404));
    reply_json(o, 200,
               json_pack("{s{si}s{si}}", "likesSummary", "totalLikes", (int)grow(p, 3),
                         "commentsSummary", "aggregatedTotalComments", (int)grow(p, 15)));
}

/* li_list: GET /rest/posts?q=author: newest first, start/count paging
 * (count at most 100), createdAt in epoch ms. */
static void li_list(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char v[32];
    long start = 0, count = 10;
    if (hook_req_query_param(r, "start", v, sizeof v) == 0) start = strtol(v, NULL, 10);
    if (hook_req_query_param(r, "count", v, sizeof v) == 0) count = strtol(v, NULL, 10);
    if (start < 0 || count < 1 || count > 100)
        return reply_json(
            o, 400, json_pack("{sssi}", "message", "start or count out of range", "status", 400));
    json_t *a = json_array();
    long seen = 0;
    for (int i = s->nrecs - 1; i >= 0 && (long)json_array_size(a) < count; i--) {
        sb_rec *p = s->recs[i];
        if (strcmp(p->platform, "linkedin") || strcmp(p->kind, "post") || !p->id) continue;
        if (seen++ < start) continue;
        json_array_append_new(a, json_pack("{sssssI}", "id", p->id, "commentary", p->text,
                                           "createdAt", (json_int_t)p->received_ms));
    }
    reply_json(o, 200,
               json_pack("{sos{sisi}}", "elements", a, "paging", "start", (int)start, "count",
                         (int)count));
}

/* Meta (Threads, Facebook) */
static void meta_error(sb_reply *o, int status, int code, const char *msg)
{
    reply_json(o, status,
               json_pack("{s{sssssi}}", "error", "message", msg, "type",
                         code == 190 ? "OAuthException" : "GraphMethodException", "code", code));
}

/* graph_params adds to x->body the query string's parameters it lacks: the
 * Graph API takes each parameter, access_token too, in the query string or
 * the body (form or JSON) alike */
static void graph_params(const hook_req *r, sb_rec *x)
{
    const char *q = hook_req_query(r);
    if (!*q) return;
    json_t *qp = form_to_json(q, strlen(q));
    if (!json_is_object(x->body)) {
        json_decref(x->body);
        x->body = json_object();
    }
    json_object_update_missing(x->body, qp);
    json_decref(qp);
}

/* meta_token returns the access token of a Graph request (borrowed): the
 * Bearer header, else access_token among its parameters */
static const char *meta_token(const hook_req *r, const sb_rec *x)
{
    const char *tok = bearer(r);
    return tok ? tok : json_string_value(json_object_get(x->body, "access_token"));
}

static int meta_auth(hook_req *r, const sb_rec *x, sb_reply *o)
{
    const char *tok = meta_token(r, x);
    if (!tok || strcmp(tok, "invalid") == 0) {
        meta_error(o, 400, 190, "Invalid OAuth access token.");
        return -1;
    }
    return 0;
}

/* graph_node copies the node a Graph path names ("/v1.0/<node>/...") to
 * out, cut to outlen. */
static void graph_node(const hook_req *r, char *out, size_t outlen)
{
    const char *path = hook_req_path(r) + 1;
    path += strcspn(path, "/");
    path += *path == '/';
    size_t n = strcspn(path, "/");
    if (n >= outlen) n = outlen - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

static void threads_create(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    if (meta_auth(r, x, o) != 0) return;
    const char *mt = json_string_value(json_object_get(x->body, "media_type"));
    const char *text = json_string_value(json_object_get(x->body, "text"));
    if (!mt || strcmp(mt, "TEXT") != 0 || !text || !text[0])
        return meta_error(o, 400, 100, "Param media_type=TEXT and text are required");
    long limit, n = text_len("threads", text, &limit);
    if (n < 0 || n > limit) return meta_error(o, 400, 100, "Param text is too long");
    x->id = digits_id(s, "", 17);
    x->text = hr_strdup(text);
    reply_json(o, 200, json_pack("{ss}", "id", x->id));
}

static void threads_publish(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    if (meta_auth(r, x, o) != 0) return;
    const char *cid = json_string_value(json_object_get(x->body, "creation_id"));
    sb_rec *c = cid ? find_id(s, "threads", "container", cid) : NULL;
    if (!c) return meta_error(o, 400, 100, "Param creation_id is not a valid container");
    if (c->published) {
        c->duplicates++;
        return meta_error(o, 400, 100, "The media has already been published");
    }
    c->published = 1;
    x->id = digits_id(s, "", 17);
    x->text = hr_strdup(c->text);
    char uid[64];
    graph_node(r, uid, sizeof uid);
    x->owner = hr_strdup(uid);
    reply_json(o, 200, json_pack("{ss}", "id", x->id));
}

static void threads_insights(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char id[64];
    graph_node(r, id, sizeof id);
    sb_rec *p = find_id(s, "threads", "post", id);
    if (!p) return meta_error(o, 400, 100, "Unsupported get request");
    const char *names[] = {"likes", "replies", "reposts", "quotes", "views"};
    int per[] = {3, 15, 10, 30, 1};
    json_t *data = json_array();
    for (int i = 0; i < 5; i++)
        json_array_append_new(data, json_pack("{ss s[{si}]}", "name", names[i], "values", "value",
                                              (int)grow(p, per[i])));
    reply_json(o, 200, json_pack("{so}", "data", data));
}

/* meta_time writes ms as Meta does: "2026-11-18T11:00:05+0000". */
static void meta_time(int64_t ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%S+0000", &tm);
}

/* listed: whether name is one of a comma-separated list */
static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list;; p++) {
        size_t l = strcspn(p, ",");
        if (l == n && strncmp(p, name, n) == 0) return 1;
        p += l;
        if (!*p) return 0;
    }
}

/* meta_next_url: the request's own URL, absolute on this sandbox, with
 * after=c<after> for its cursors (new string) */
static char *meta_next_url(const hook_sandbox *s, const hook_req *r, int after)
{
    hr_buf b;
    hr_buf_init(&b);
    const char *host = hook_req_header(r, "Host");
    if (host) hr_buf_printf(&b, "http://%s%s?", host, hook_req_path(r));
    else hr_buf_printf(&b, "http://127.0.0.1:%d%s?", hook_httpd_port(s->http), hook_req_path(r));
    for (const char *q = hook_req_query(r); *q;) {
        size_t n = strcspn(q, "&");
        if (n && strncmp(q, "after=", 6) != 0 && strncmp(q, "before=", 7) != 0) {
            hr_buf_append(&b, q, n);
            hr_buf_putc(&b, '&');
        }
        q += n + (q[n] == '&');
    }
    hr_buf_printf(&b, "after=c%d", after);
    return hr_buf_detach(&b);
}

/* meta_list: GET /v19.0/<page>/feed and /v1.0/<user>/threads as Graph
 * answers them: that page's or user's posts, newest first, with the
 * fields asked for (default: Facebook's id, message and created_time;
 * Threads' id), times as Meta writes them; limit (default 25, at most 100:
 * Graph cuts a larger one); cursor paging: paging.cursors on a page with
 * posts, and paging.next (absolute, with after=) while older posts
 * remain. A cursor is the record it stands at ("c<index>"). */
static void meta_list(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x, const char *platform,
                      const char *field, const char *created)
{
    if (meta_auth(r, x, o) != 0) return;
    char node[64], v[256];
    graph_node(r, node, sizeof node);
    size_t nl = strlen(node);
    long limit = 25;
    if (hook_req_query_param(r, "limit", v, sizeof v) == 0) {
        char *end;
        limit = strtol(v, &end, 10);
        if (!v[0] || *end || limit < 1)
            return meta_error(o, 400, 100, "(#100) Param limit must be a positive integer");
        if (limit > 100) limit = 100;
    }
    int from = s->nrecs - 1;
    if (hook_req_query_param(r, "after", v, sizeof v) == 0) {
        char *end;
        long k = v[0] == 'c' ? strtol(v + 1, &end, 10) : -1;
        if (k < 0 || k >= s->nrecs || *end)
            return meta_error(o, 400, 100, "(#100) The after cursor is not valid");
        from = (int)k - 1;
    }
    int fields = hook_req_query_param(r, "fields", v, sizeof v) == 0;
    int fb = strcmp(platform, "facebook") == 0;
    int text = fields ? listed(v, field) : fb, at = fields ? listed(v, created) : fb;
    json_t *data = json_array();
    int first = -1, last = -1, more = 0;
    for (int i = from; i >= 0; i--) {
        sb_rec *p = s->recs[i];
        if (strcmp(p->platform, platform) || strcmp(p->kind, "post") || !p->id) continue;
        /* a page's post ids are "<page>_<n>"; a Threads post has its user */
        if (fb ? strncmp(p->id, node, nl) != 0 || p->id[nl] != '_' : !hr_streq(p->owner, node))
            continue;
        if ((long)json_array_size(data) == limit) {
            more = 1;
            break;
        }
        json_t *t = json_pack("{ss}", "id", p->id);
        if (text) json_object_set_new(t, field, json_string(p->text));
        if (at) {
            char ts[40];
            meta_time(p->received_ms, ts, sizeof ts);
            json_object_set_new(t, created, json_string(ts));
        }
        json_array_append_new(data, t);
        if (first < 0) first = i;
        last = i;
    }
    json_t *ans = json_pack("{so}", "data", data);
    if (last >= 0) {
        char before[16], after[16];
        snprintf(before, sizeof before, "c%d", first);
        snprintf(after, sizeof after, "c%d", last);
        json_t *paging = json_pack("{s{ssss}}", "cursors", "before", before, "after", after);
        if (more) {
            char *next = meta_next_url(s, r, last);
            json_object_set_new(paging, "next", json_string(next));
            free(next);
        }
        json_object_set_new(ans, "paging", paging);
    }
    reply_json(o, 200, ans);
}

static void threads_list(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    meta_list(s, r, o, x, "threads", "text", "timestamp");
}

static void fb_create(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    if (meta_auth(r, x, o) != 0) return;
    const char *msg = json_string_value(json_object_get(x->body, "message"));
    if (!msg || !msg[0]) return meta_error(o, 400, 100, "(#100) Missing message or attachment");
    long limit, len = text_len("facebook", msg, &limit);
    if (len < 0 || len > limit) return meta_error(o, 400, 100, "(#100) Message too long");
    const char *page = hook_req_path(r) + strlen("/v19.0/");
    size_t n = strcspn(page, "/");
    char *prefix = hr_asprintf("%.*s_", (int)n, page);
    x->id = digits_id(s, prefix, 16);
    free(prefix);
    x->text = hr_strdup(msg);
    reply_json(o, 200, json_pack("{ss}", "id", x->id));
}

static void fb_get(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *path = hook_req_path(r) + strlen("/v19.0/");
    if (strchr(path, '/')) /* <page>/feed */
        return meta_list(s, r, o, x, "facebook", "message", "created_time");
    sb_rec *p = find_id(s, "facebook", "post", path);
    if (!p) return meta_error(o, 400, 100, "Unsupported get request");
    reply_json(o, 200,
               json_pack("{ss s{s[]s{si}} s{s[]s{si}} s{si}}", "id", p->id, "reactions", "data",
                         "summary", "total_count", (int)grow(p, 3), "comments", "data", "summary",
                         "total_count", (int)grow(p, 15), "shares", "count", (int)grow(p, 10)));
}

/* SendGrid */
static void sg_error(sb_reply *o, int status, const char *msg, const char *field)
{
    reply_json(o, status,
               json_pack("{s[{sssoso}]}", "errors", "message", msg, "field",
                         field ? json_string(field) : json_null(), "help", json_null()));
}

static void sg_send(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = bearer(r);
    if (!tok || strcmp(tok, "invalid") == 0)
        return sg_error(o, 401, "The provided authorization grant is invalid, expired, or revoked",
                        NULL);
    json_t *b = x->body;
    json_t *p0 = json_array_get(json_object_get(b, "personalizations"), 0);
    const char *to =
        json_string_value(json_object_get(json_array_get(json_object_get(p0, "to"), 0), "email"));
    const char *from = json_string_value(json_object_get(json_object_get(b, "from"), "email"));
    const char *subj = json_string_value(json_object_get(b, "subject"));
    if (!json_is_object(b)) return sg_error(o, 400, "Bad Request", NULL);
    if (!to)
        return sg_error(o, 400, "The to array is required for all personalization objects",
                        "personalizations.0.to");
    if (!from)
        return sg_error(o, 400, "The from object must be provided for every email send.", "from");
    if (!subj || !subj[0]) return sg_error(o, 400, "The subject is required.", "subject");
    json_t *c0 = json_array_get(json_object_get(b, "content"), 0);
    if (!json_string_value(json_object_get(c0, "value")))
        return sg_error(
            o, 400, "Unless a valid template_id is provided, the content parameter is required.",
            "content");
    if (!strchr(to, '@'))
        return sg_error(o, 400, "Does not contain a valid address.",
                        "personalizations.0.to.0.email");
    x->id = rand_token(16);
    x->email = hr_strdup(to);
    json_t *ca = json_object_get(b, "custom_args");
    x->job = jstr(ca, "herald_job");
    x->campaign = jstr(ca, "herald_campaign");
    x->text = hr_strdup(subj);
    o->status = 202;
    reply_hdr(o, "X-Message-Id", x->id);
}

static void sg_messages(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char q[512];
    json_t *a = json_array();
    if (hook_req_query_param(r, "query", q, sizeof q) == 0) {
        char *v = strchr(q, '"'), *e = v ? strchr(v + 1, '"') : NULL;
        if (v && e) {
            *e = '\0';
            for (int i = 0; i < s->nrecs; i++) {
                sb_rec *p = s->recs[i];
                if (!strcmp(p->platform, "sendgrid") && p->id && hr_streq(p->job, v + 1) &&
                    searchable(s, p))
                    json_array_append_new(a, json_pack("{ss}", "msg_id", p->id));
            }
        }
    }
    reply_json(o, 200, json_pack("{so}", "messages", a));
}

/* Mailgun */
static void mg_send(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *auth = hook_req_header(r, "Authorization");
    unsigned char dec[512];
    long n = (auth && strncmp(auth, "Basic ", 6) == 0)
                 ? hook_b64_decode(auth + 6, dec, sizeof dec - 1)
                 : -1;
    if (n > 0) dec[n] = '\0';
    if (n <= 4 || strncmp((char *)dec, "api:", 4) != 0 || strcmp((char *)dec + 4, "invalid") == 0) {
        o->status = 401;
        hr_buf_puts(&o->body, "Forbidden");
        return;
    }
    json_t *b = x->body;
    const char *from = json_string_value(json_object_get(b, "from"));
    const char *to = json_string_value(json_object_get(b, "to"));
    const char *subj = json_string_value(json_object_get(b, "subject"));
    if (!from)
        return reply_json(o, 400, json_pack("{ss}", "message", "'from' parameter is missing"));
    if (!to) return reply_json(o, 400, json_pack("{ss}", "message", "'to' parameter is missing"));
    if (!subj)
        return reply_json(o, 400, json_pack("{ss}", "message", "'subject' parameter is missing"));
    if (!json_object_get(b, "text") && !json_object_get(b, "html"))
        return reply_json(o, 400,
                          json_pack("{ss}", "message",
                                    "Need at least one of 'text' or 'html' parameters specified"));
    const char *dom = hook_req_path(r) + strlen("/v3/");
    size_t dl = strcspn(dom, "/");
    char *ts = digits_id(s, "", 14);
    x->id = hr_asprintf("<%.14s.%llu@%.*s>", ts, (unsigned long long)s->seq, (int)dl, dom);
    free(ts);
    const char *lt = strrchr(to, '<');
    x->email = lt ? hr_strndup(lt + 1, strcspn(lt + 1, ">")) : hr_strdup(to);
    x->job = jstr(b, "v:herald-job");
    x->campaign = jstr(b, "o:tag");
    x->message_id = jstr(b, "h:Message-Id");
    x->text = hr_strdup(subj);
    reply_json(o, 200, json_pack("{ssss}", "id", x->id, "message", "Queued. Thank you."));
}

static void mg_events(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char mid[300];
    json_t *a = json_array();
    if (hook_req_query_param(r, "message-id", mid, sizeof mid) == 0)
        for (int i = 0; i < s->nrecs; i++) {
            sb_rec *p = s->recs[i];
            if (strcmp(p->platform, "mailgun") || !p->id || !p->message_id || !searchable(s, p))
                continue;
            const char *m = p->message_id + (p->message_id[0] == '<');
            if (strncmp(m, mid, strlen(mid)) == 0)
                json_array_append_new(a, json_pack("{sss{s{ss}}}", "event", "accepted", "message",
                                                   "headers", "message-id", mid));
        }
    reply_json(o, 200, json_pack("{so}", "items", a));
}

/* Postmark */
static void pm_error(sb_reply *o, int status, int code, const char *msg)
{
    reply_json(o, status, json_pack("{siss}", "ErrorCode", code, "Message", msg));
}

static void pm_send(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *tok = hook_req_header(r, "X-Postmark-Server-Token");
    if (!tok || !tok[0] || strcmp(tok, "invalid") == 0)
        return pm_error(o, 401, 10, "Request does not contain a valid Server token.");
    json_t *b = x->body;
    const char *to = json_string_value(json_object_get(b, "To"));
    if (!json_is_object(b)) return pm_error(o, 422, 402, "Received invalid JSON input.");
    if (!json_string_value(json_object_get(b, "From")))
        return pm_error(o, 422, 300, "Invalid 'From' address: ''.");
    if (!to || !strchr(to, '@')) return pm_error(o, 422, 300, "Invalid 'To' address.");
    if (!json_string_value(json_object_get(b, "Subject")))
        return pm_error(o, 422, 300, "Subject is required");
    if (!json_object_get(b, "HtmlBody") && !json_object_get(b, "TextBody"))
        return pm_error(o, 422, 300, "Provide either email TextBody or HtmlBody or both.");
    unsigned char u[16];
    hr_random_bytes(u, sizeof u);
    char hex[33];
    hr_hex(u, 16, hex);
    x->id = hr_asprintf("%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    const char *lt = strrchr(to, '<');
    x->email = lt ? hr_strndup(lt + 1, strcspn(lt + 1, ">")) : hr_strdup(to);
    json_t *md = json_object_get(b, "Metadata");
    x->job = jstr(md, "herald_job");
    x->campaign = jstr(b, "Tag");
    x->text = jstr(b, "Subject");
    char ts[40];
    hr_format_rfc3339(x->received_ms, ts, sizeof ts);
    reply_json(o, 200,
               json_pack("{sssssssiss}", "To", to, "SubmittedAt", ts, "MessageID", x->id,
                         "ErrorCode", 0, "Message", "OK"));
}

static void pm_outbound(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    char job[64];
    json_t *a = json_array();
    if (hook_req_query_param(r, "metadata_herald_job", job, sizeof job) == 0)
        for (int i = 0; i < s->nrecs; i++) {
            sb_rec *p = s->recs[i];
            if (!strcmp(p->platform, "postmark") && p->id && hr_streq(p->job, job) &&
                searchable(s, p))
                json_array_append_new(a, json_pack("{ss}", "MessageID", p->id));
        }
    reply_json(o, 200,
               json_pack("{sIso}", "TotalCount", (json_int_t)json_array_size(a), "Messages", a));
}

/* relay_signed: sig is "sha256=<hex HMAC-SHA256(key, body)>" under one of
 * the relay keys (platforms/webhook.c signs so); compared in constant time. */
static int relay_signed(const hook_sandbox *s, const char *sig, const char *body, size_t len)
{
    if (s->nrelay_keys == 0) return 1;
    if (strlen(sig) != 7 + 64 || strncmp(sig, "sha256=", 7) != 0) return 0;
    int ok = 0;
    for (int i = 0; i < s->nrelay_keys; i++) {
        unsigned char mac[32];
        char hex[65];
        hr_hmac_sha256(s->relay_keys[i], strlen(s->relay_keys[i]), body, len, mac);
        hr_hex(mac, 32, hex);
        ok |= hr_ct_equal(hex, sig + 7, 64);
    }
    return ok;
}

/* Generic webhook relay (a CRM) */
static void relay_post(hook_sandbox *s, hook_req *r, sb_reply *o, sb_rec *x)
{
    const char *sig = hook_req_header(r, "X-Herald-Signature");
    if (!sig) return reply_json(o, 401, json_pack("{ss}", "error", "missing X-Herald-Signature"));
    size_t len;
    const char *body = hook_req_body(r, &len);
    if (!relay_signed(s, sig, body, len))
        return reply_json(o, 401,
                          json_pack("{ss}", "error", "X-Herald-Signature does not match the body"));
    x->id = digits_id(s, "wh-", 12);
    reply_json(o, 200, json_pack("{ss}", "id", x->id));
}

typedef struct route {
    const char *method;
    const char *prefix; /* path prefix */
    const char *suffix; /* required path suffix, or NULL */
    const char *platform, *kind;
    handler_fn *fn;
} route;

static const route routes[] = {
    {"POST", "/2/tweets", "/2/tweets", "x", "post", x_create},
    {"GET", "/2/tweets/", NULL, "x", "read", x_get},
    {"GET", "/2/users/", "/tweets", "x", "read", x_list},
    {"POST", "/api/v1/statuses", "/api/v1/statuses", "mastodon", "post", masto_create},
    {"GET", "/api/v1/statuses/", NULL, "mastodon", "read", masto_get},
    {"GET", "/api/v1/accounts/", "/statuses", "mastodon", "read", masto_list},
    {"POST", "/xrpc/com.atproto.server.createSession", NULL, "bluesky", "session",
     bsky_create_session},
    {"POST", "/xrpc/com.atproto.server.refreshSession", NULL, "bluesky", "session",
     bsky_refresh_session},
    {"POST", "/xrpc/com.atproto.repo.createRecord", NULL, "bluesky", "post", bsky_create_record},
    {"GET", "/xrpc/com.atproto.repo.getRecord", NULL, "bluesky", "read", bsky_get_record},
    {"GET", "/xrpc/app.bsky.feed.getPosts", NULL, "bluesky", "read", bsky_get_posts},
    {"POST", "/rest/posts", "/rest/posts", "linkedin", "post", li_create},
    {"GET", "/rest/posts", "/rest/posts", "linkedin", "read", li_list},
    {"GET", "/rest/socialActions/", NULL, "linkedin", "read", li_social},
    {"POST", "/v1.0/", "/threads_publish", "threads", "post", threads_publish},
    {"POST", "/v1.0/", "/threads", "threads", "container", threads_create},
    {"GET", "/v1.0/", "/insights", "threads", "read", threads_insights},
    {"GET", "/v1.0/", "/threads", "threads", "read", threads_list},
    {"POST", "/v19.0/", "/feed", "facebook", "post", fb_create},
    {"GET", "/v19.0/", NULL, "facebook", "read", fb_get},
    {"POST", "/v3/mail/send", "/v3/mail/send", "sendgrid", "email", sg_send},
    {"GET", "/v3/messages", "/v3/messages", "sendgrid", "read", sg_messages},
    {"POST", "/v3/", "/messages", "mailgun", "email", mg_send},
    {"GET", "/v3/", "/events", "mailgun", "read", mg_events},
    {"POST", "/email", "/email", "postmark", "email", pm_send},
    {"GET", "/messages/outbound", "/messages/outbound", "postmark", "read", pm_outbound},
    {"POST", "/hook/", NULL, "webhook", "post", relay_post},
};

static const route *find_route(const char *method, const char *path)
{
    size_t pl = strlen(path);
    for (size_t i = 0; i < HR_ARRAY_LEN(routes); i++) {
        const route *rt = &routes[i];
        size_t n = strlen(rt->prefix);
        if (strcmp(rt->method, method) != 0 || strncmp(path, rt->prefix, n) != 0) continue;
        if (rt->suffix) {
            size_t sl = strlen(rt->suffix);
            if (pl < sl || strcmp(path + pl - sl, rt->suffix) != 0) continue;
        }
        return rt;
    }
    return NULL;
}

/* ------------------------------------------------------------ webhooks */

typedef struct fire_ctx {
    hook_sandbox *s;
} fire_ctx;

static void on_fired(long status, void *priv)
{
    hook_sandbox *s = priv;
    if (status >= 200 && status < 300)
        s->fired_ok++;
    else
        s->fired_failed++;
}

static void post_to(hook_sandbox *s, const char *rpath, const char *const *hdrs, const char *body)
{
    char *url = hr_asprintf("%s/webhooks/%s", s->webhooks_url, rpath);
    s->fired++;
    hook_fire_post(s->fire, url, hdrs, body, strlen(body), on_fired, s);
    free(url);
}

/* fire_event sends one signed event about record x, repeat times (the same
 * event id each time, as providers redeliver). Returns -1 when it cannot. */
static int fire_event(hook_sandbox *s, sb_rec *x, hook_ev_type t, int repeat, hr_err *err)
{
    if (!s->webhooks_url) return hr_err_set(err, "no --webhooks URL configured");
    int64_t now_ms = hr_now_ms();
    char *evid = rand_token(16);
    char *body = NULL;
    const char *rpath = x->platform;
    char h1[800] = "", h2[300] = "";
    const char *name = hook_provider_event(x->platform, t);
    if (!strcmp(x->platform, "sendgrid") && name) {
        if (!s->sg_key) {
            free(evid);
            return hr_err_set(err, "no sendgrid key");
        }
        json_t *ev =
            json_pack("{sssIssssss}", "email", x->email, "timestamp", (json_int_t)(now_ms / 1000),
                      "event", name, "sg_event_id", evid, "sg_message_id", "");
        char *smid = hr_asprintf("%s.filterdrecv-sandbox.0", x->id);
        json_object_set_new(ev, "sg_message_id", json_string(smid));
        free(smid);
        if (x->job) json_object_set_new(ev, "herald_job", json_string(x->job));
        if (x->campaign) json_object_set_new(ev, "herald_campaign", json_string(x->campaign));
        if (t == HOOK_EV_BOUNCE) json_object_set_new(ev, "type", json_string("bounce"));
        json_t *arr = json_array();
        json_array_append_new(arr, ev);
        body = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)(now_ms / 1000));
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned char sig[128];
        size_t sl = sizeof sig;
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->sg_key);
        EVP_DigestSignUpdate(ctx, ts, strlen(ts));
        EVP_DigestSignUpdate(ctx, body, strlen(body));
        EVP_DigestSignFinal(ctx, sig, &sl);
        EVP_MD_CTX_free(ctx);
        unsigned char b64[200];
        EVP_EncodeBlock(b64, sig, (int)sl);
        snprintf(h1, sizeof h1, "X-Twilio-Email-Event-Webhook-Signature: %s", (char *)b64);
        snprintf(h2, sizeof h2, "X-Twilio-Email-Event-Webhook-Timestamp: %s", ts);
    } else if (!strcmp(x->platform, "mailgun") && name) {
        if (!s->mailgun_key) {
            free(evid);
            return hr_err_set(err, "no mailgun signing key");
        }
        char ts[24], tokhex[65], sighex[65];
        snprintf(ts, sizeof ts, "%lld", (long long)(now_ms / 1000));
        unsigned char rb[25], mac[32];
        hr_random_bytes(rb, sizeof rb);
        hr_hex(rb, 25, tokhex);
        tokhex[50] = '\0';
        char *msg = hr_asprintf("%s%s", ts, tokhex);
        hr_hmac_sha256(s->mailgun_key, strlen(s->mailgun_key), msg, strlen(msg), mac);
        free(msg);
        hr_hex(mac, 32, sighex);
        const char *mid = x->id + 1;
        json_t *ed = json_pack("{sssssfss s{s{ss#}}}", "event", name, "id", evid, "timestamp",
                               now_ms / 1000.0, "recipient", x->email, "message", "headers",
                               "message-id", mid, (int)(strlen(mid) - 1));
        json_t *uv = json_object();
        if (x->job) json_object_set_new(uv, "herald-job", json_string(x->job));
        json_object_set_new(ed, "user-variables", uv);
        if (x->campaign) json_object_set_new(ed, "tags", json_pack("[s]", x->campaign));
        if (t == HOOK_EV_BOUNCE) json_object_set_new(ed, "severity", json_string("permanent"));
        json_t *root = json_pack("{s{ssssss}so}", "signature", "timestamp", ts, "token", tokhex,
                                 "signature", sighex, "event-data", ed);
        body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
    } else if (!strcmp(x->platform, "postmark") && name) {
        if (!s->postmark_auth) {
            free(evid);
            return hr_err_set(err, "no postmark credentials");
        }
        char ts[40];
        hr_format_rfc3339(now_ms, ts, sizeof ts);
        json_t *o = json_pack("{ss ss ss ss ss si ss}", "RecordType", name, "MessageID", x->id,
                              "Recipient", x->email, "ReceivedAt", ts, "DeliveredAt", ts,
                              "ServerID", 1, "MessageStream", "broadcast");
        json_t *md = json_object();
        if (x->job) json_object_set_new(md, "herald_job", json_string(x->job));
        json_object_set_new(o, "Metadata", md);
        if (x->campaign) json_object_set_new(o, "Tag", json_string(x->campaign));
        if (t == HOOK_EV_BOUNCE) json_object_set_new(o, "Type", json_string("HardBounce"));
        if (t == HOOK_EV_UNSUBSCRIBE) json_object_set_new(o, "SuppressSending", json_true());
        if (t == HOOK_EV_OPEN) json_object_set_new(o, "FirstOpen", json_false());
        json_object_set_new(o, "SandboxEventId", json_string(evid)); /* distinct bodies */
        body = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        unsigned char b64[700];
        EVP_EncodeBlock(b64, (const unsigned char *)s->postmark_auth,
                        (int)strlen(s->postmark_auth));
        snprintf(h1, sizeof h1, "Authorization: Basic %s", (char *)b64);
    } else {
        /* social posts (and anything else): the generic signed route */
        if (!s->generic_key) {
            free(evid);
            return hr_err_set(err, "no webhook-hmac-key");
        }
        rpath = "generic";
        json_t *ev = json_pack("{ss ss ss ss sI}", "id", evid, "type", hook_ev_name(t), "platform",
                               x->platform, "platform_id", x->id, "ts", (json_int_t)now_ms);
        if (x->job) json_object_set_new(ev, "job", json_string(x->job));
        if (x->email) json_object_set_new(ev, "email", json_string(x->email));
        json_t *root = json_pack("{s[o]}", "events", ev);
        body = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        char sig[200];
        hook_sign_generic(s->generic_key, now_ms / 1000, body, strlen(body), sig, sizeof sig);
        snprintf(h1, sizeof h1, "X-Herald-Signature: %s", sig);
    }
    if (!body) { /* a json_pack format bug: fail loudly, not with a crash */
        free(evid);
        return hr_err_set(err, "cannot build the %s event", x->platform);
    }
    const char *hdrs[] = {"Content-Type: application/json", h1[0] ? h1 : NULL, h2[0] ? h2 : NULL,
                          NULL};
    if (!h1[0]) hdrs[1] = NULL;
    for (int i = 0; i < (repeat > 0 ? repeat : 1); i++)
        post_to(s, rpath, hdrs, body);
    free(body);
    free(evid);
    return 0;
}

/* refuse answers status with msg in the platform's own error shape, as the
 * real API refuses a request it will never take (the rate4xx fault) */
static void refuse(sb_reply *o, const char *platform, int status, const char *msg)
{
    if (!strcmp(platform, "x")) return x_error(o, status, msg);
    if (!strcmp(platform, "bluesky")) return bsky_error(o, status, "InvalidRequest", msg);
    if (!strcmp(platform, "linkedin"))
        return reply_json(o, status,
                          json_pack("{sssisi}", "message", msg, "status", status,
                                    "serviceErrorCode", 100));
    /* Graph error 200: a permission the page or user lacks */
    if (!strcmp(platform, "threads") || !strcmp(platform, "facebook"))
        return meta_error(o, status, 200, msg);
    if (!strcmp(platform, "sendgrid")) return sg_error(o, status, msg, NULL);
    if (!strcmp(platform, "mailgun"))
        return reply_json(o, status, json_pack("{ss}", "message", msg));
    /* Postmark 406: the recipient is inactive (bounced or unsubscribed) */
    if (!strcmp(platform, "postmark")) return pm_error(o, status, 406, msg);
    reply_json(o, status, json_pack("{ss}", "error", msg)); /* Mastodon, the relay */
}

/* ------------------------------------------------------------ control */

static struct sb_fault *fault_for(hook_sandbox *s, const char *platform)
{
    for (int i = 0; i < s->nfaults; i++)
        if (strcmp(s->faults[i].platform, platform) == 0) return &s->faults[i];
    for (int i = 0; i < s->nfaults; i++)
        if (strcmp(s->faults[i].platform, "*") == 0) return &s->faults[i];
    return NULL;
}

/* fault_bad sets err to "faults: <key> <must>, not <value as JSON>" */
static int fault_bad(hr_err *err, const char *key, json_t *v, const char *must)
{
    char *shown = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    hr_err_set(err, "faults: %s %s, not %s", key, must, shown ? shown : "?");
    free(shown);
    return -1;
}

/* fault_check validates one fault setting: a known platform (or "*"),
 * known keys only, rates from 0 to 1, times whole non-negative numbers.
 * 0, or -1 with err naming the bad key and value; nothing is changed. */
static int fault_check(json_t *j, hr_err *err)
{
    static const char *const rates[] = {"rate429", "rate500", "drop", "rate4xx", "gateway"};
    static const char *const times[] = {"slow_ms", "search_lag_ms", "retry_after"};
    if (!json_is_object(j)) return hr_err_set(err, "faults: expected an object");
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        int known = !strcmp(key, "platform") || !strcmp(key, "status") || !strcmp(key, "message");
        for (size_t i = 0; i < HR_ARRAY_LEN(rates); i++)
            if (!strcmp(key, rates[i])) {
                known = 1;
                double d = json_number_value(v);
                if (!json_is_number(v) || d < 0 || d > 1)
                    return fault_bad(err, key, v, "must be a number from 0 to 1");
            }
        for (size_t i = 0; i < HR_ARRAY_LEN(times); i++)
            if (!strcmp(key, times[i])) {
                known = 1;
                if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                    json_integer_value(v) > 86400000)
                    return fault_bad(err, key, v, "must be a whole number from 0 to 86400000");
            }
        if (!known)
            return hr_err_set(err,
                              "faults: unknown key \"%s\" (platform, rate429, rate500, drop, "
                              "slow_ms, retry_after, search_lag_ms, rate4xx, status, message, "
                              "gateway)",
                              key);
    }
    json_t *pv = json_object_get(j, "platform");
    const char *p = json_string_value(pv);
    if (pv && (!p || (strcmp(p, "*") != 0 && !plat_known(p))))
        return fault_bad(err, "platform", pv, "must be \"*\" or a platform herald knows");
    json_t *st = json_object_get(j, "status");
    if (st && (!json_is_integer(st) || json_integer_value(st) < 400 ||
               json_integer_value(st) > 499))
        return hr_err_set(err, "faults: status must be a 4xx code (400..499)");
    json_t *mv = json_object_get(j, "message");
    if (mv && !json_is_string(mv)) return fault_bad(err, "message", mv, "must be a string");
    if (mv && strlen(json_string_value(mv)) >= sizeof((sb_fault *)0)->message)
        return hr_err_set(err, "faults: message is longer than %zu bytes",
                          sizeof((sb_fault *)0)->message - 1);
    return 0;
}

/* set_faults sets the faults of one object, or of each of an array, all
 * checked first: a bad setting changes nothing. 0, or -1 with err. */
static int set_faults(hook_sandbox *s, json_t *j, hr_err *err)
{
    size_t i;
    json_t *v;
    if (json_is_array(j)) {
        json_array_foreach(j, i, v) if (fault_check(v, err) != 0) return -1;
        json_array_foreach(j, i, v) if (set_faults(s, v, err) != 0) return -1;
        return 0;
    }
    if (fault_check(j, err) != 0) return -1;
    const char *p = json_string_value(json_object_get(j, "platform"));
    if (!p) p = "*";
    json_t *st = json_object_get(j, "status");
    const char *msg = json_string_value(json_object_get(j, "message"));
    sb_fault *f = NULL;
    for (int k = 0; k < s->nfaults; k++)
        if (strcmp(s->faults[k].platform, p) == 0) f = &s->faults[k];
    if (!f) {
        if (s->nfaults == (int)HR_ARRAY_LEN(s->faults)) return hr_err_set(err, "faults: too many");
        f = &s->faults[s->nfaults++];
    }
    memset(f, 0, sizeof *f);
    snprintf(f->platform, sizeof f->platform, "%s", p);
    f->rate429 = json_number_value(json_object_get(j, "rate429"));
    f->rate500 = json_number_value(json_object_get(j, "rate500"));
    f->drop = json_number_value(json_object_get(j, "drop"));
    f->slow_ms = (int)json_integer_value(json_object_get(j, "slow_ms"));
    f->search_lag_ms = (int)json_integer_value(json_object_get(j, "search_lag_ms"));
    f->retry_after_s = (int)json_integer_value(json_object_get(j, "retry_after"));
    if (!f->retry_after_s) f->retry_after_s = 1;
    f->rate4xx = json_number_value(json_object_get(j, "rate4xx"));
    f->status4xx = st ? (int)json_integer_value(st) : 403;
    f->gateway = json_number_value(json_object_get(j, "gateway"));
    snprintf(f->message, sizeof f->message, "%s", msg ? msg : "sandbox: injected refusal");
    return 0;
}

static json_t *rec_json(const sb_rec *x)
{
    /* created: this request made a post, email or Threads container */
    json_t *o =
        json_pack("{ssssssss si sb si sI sO}", "platform", x->platform, "kind", x->kind, "method",
                  x->method, "path", x->path, "status", x->status, "created",
                  x->id && !x->aside && strcmp(x->kind, "read") != 0, "duplicates", x->duplicates,
                  "received_ms", (json_int_t)x->received_ms, "body", x->body);
    if (x->fault) json_object_set_new(o, "fault", json_string(x->fault));
    if (x->replay) json_object_set_new(o, "replay", json_true());
    if (x->id) json_object_set_new(o, "id", json_string(x->id));
    if (x->idem) json_object_set_new(o, "idempotency_key", json_string(x->idem));
    if (x->text) json_object_set_new(o, "text", json_string(x->text));
    if (x->job) json_object_set_new(o, "job", json_string(x->job));
    return o;
}

static void sandbox_reset(hook_sandbox *s)
{
    s->generation++;
    for (int i = 0; i < s->nrecs; i++)
        rec_free(s->recs[i]);
    s->nrecs = 0;
    s->nfaults = 0;
    free(s->sessions);
    s->sessions = NULL;
    s->nsessions = 0;
}

static void control(hook_sandbox *s, hook_req *r, sb_reply *o)
{
    const char *path = hook_req_path(r) + strlen("/_sandbox/");
    int post = strcmp(hook_req_method(r), "POST") == 0;
    hr_err err = {0};
    if (!strcmp(path, "posts")) {
        char plat[32] = "", kind[32] = "", all[8] = "";
        hook_req_query_param(r, "platform", plat, sizeof plat);
        hook_req_query_param(r, "kind", kind, sizeof kind);
        hook_req_query_param(r, "all", all, sizeof all);
        int everything = all[0] && strcmp(all, "0") != 0;
        json_t *a = json_array();
        long dups = 0;
        for (int i = 0; i < s->nrecs; i++) {
            sb_rec *x = s->recs[i];
            if ((plat[0] && strcmp(plat, x->platform)) || (kind[0] && strcmp(kind, x->kind)))
                continue;
            /* by default what the platforms answered, polls only when
             * asked; all=1: every request */
            if (!everything && (x->aside || (!kind[0] && !strcmp(x->kind, "read")))) continue;
            dups += x->duplicates;
            json_array_append_new(a, rec_json(x));
        }
        return reply_json(o, 200,
                          json_pack("{sIsIso}", "count", (json_int_t)json_array_size(a),
                                    "duplicates", (json_int_t)dups, "posts", a));
    }
    if (!strcmp(path, "reset") && post) {
        sandbox_reset(s);
        return reply_json(o, 200, json_pack("{sb}", "ok", 1));
    }
    if (!strcmp(path, "faults")) {
        if (post) {
            json_t *j = load_body(r);
            int rc = j ? set_faults(s, j, &err) : hr_err_set(&err, "faults: body is not JSON");
            json_decref(j);
            if (rc != 0) return reply_json(o, 400, json_pack("{ss}", "error", err.msg));
        }
        json_t *a = json_array();
        for (int i = 0; i < s->nfaults; i++) {
            sb_fault *f = &s->faults[i];
            json_t *fj = json_pack("{ss sf sf sf si si si}", "platform", f->platform, "rate429",
                                   f->rate429, "rate500", f->rate500, "drop", f->drop, "slow_ms",
                                   f->slow_ms, "retry_after", f->retry_after_s, "search_lag_ms",
                                   f->search_lag_ms);
            if (f->rate4xx > 0)
                json_object_update_new(fj, json_pack("{sf si ss}", "rate4xx", f->rate4xx,
                                                     "status", f->status4xx, "message",
                                                     f->message));
            if (f->gateway > 0) json_object_set_new(fj, "gateway", json_real(f->gateway));
            json_array_append_new(a, fj);
        }
        return reply_json(
            o, 200, json_pack("{soso}", "faults", a, "injected", json_integer(s->faults_injected)));
    }
    if (!strcmp(path, "expire-sessions") && post) {
        for (int i = 0; i < s->nsessions; i++)
            s->sessions[i].expired = 1;
        return reply_json(o, 200, json_pack("{si}", "expired", s->nsessions));
    }
    if (!strcmp(path, "events") && post) {
        json_t *j = load_body(r);
        const char *id = json_string_value(json_object_get(j, "id"));
        hook_ev_type t = hook_ev_parse(json_string_value(json_object_get(j, "type")));
        int repeat = (int)json_integer_value(json_object_get(j, "repeat"));
        sb_rec *x = NULL;
        for (int i = 0; id && i < s->nrecs && !x; i++)
            if (s->recs[i]->id && !strcmp(s->recs[i]->id, id) && s->recs[i]->status / 100 == 2 &&
                strcmp(s->recs[i]->kind, "container"))
                x = s->recs[i];
        int rc = -1;
        if (!x)
            hr_err_set(&err, "events: no accepted post or email with that id");
        else if (t == HOOK_EV_NONE)
            hr_err_set(&err, "events: unknown type");
        else
            rc = fire_event(s, x, t, repeat, &err);
        json_decref(j);
        if (rc != 0) return reply_json(o, 400, json_pack("{ss}", "error", err.msg));
        return reply_json(o, 202, json_pack("{si}", "fired", repeat > 0 ? repeat : 1));
    }
    if (!strcmp(path, "webhooks"))
        return reply_json(o, 200,
                          json_pack("{sIsIsIsi}", "fired", (json_int_t)s->fired, "ok",
                                    (json_int_t)s->fired_ok, "failed", (json_int_t)s->fired_failed,
                                    "pending", hook_fire_pending(s->fire)));
    if (!strcmp(path, "keys"))
        return reply_json(
            o, 200, json_pack("{ss}", "sendgrid_public_key", s->sg_pub_pem ? s->sg_pub_pem : ""));
    reply_json(o, 404, json_pack("{ss}", "error", "no such sandbox route"));
}

/* ------------------------------------------------------- later events */

/* With --auto-events an accepted post gets a "like" a moment later: by then
 * the worker has recorded the post's id, so `herald webhooks` can match it. */
#define AUTO_LIKE_AFTER_S 1.5

typedef struct later {
    ev_timer t;
    hook_sandbox *s;
    int rec;
    unsigned generation;
    struct later *prev, *next;
} later;

static void later_unlink(hook_sandbox *s, later *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        s->laters = l->next;
    if (l->next) l->next->prev = l->prev;
}

static void on_later(struct ev_loop *loop, ev_timer *w, int revents)
{
    later *l = (later *)w;
    hook_sandbox *s = l->s;
    later_unlink(s, l);
    if (l->generation == s->generation && l->rec < s->nrecs) {
        hr_err err = {0};
        if (fire_event(s, s->recs[l->rec], HOOK_EV_LIKE, 1, &err) != 0)
            hr_log(HR_LOG_WARN, "sandbox: cannot fire like", "error", err.msg, NULL);
    }
    free(l);
}

static void fire_later(hook_sandbox *s, int rec)
{
    later *l = hr_calloc(1, sizeof *l);
    l->s = s;
    l->rec = rec;
    l->generation = s->generation;
    l->next = s->laters;
    if (s->laters) s->laters->prev = l;
    s->laters = l;
    ev_timer_init(&l->t, on_later, AUTO_LIKE_AFTER_S, 0.);
    ev_timer_start(s->loop, &l->t);
}

/* ------------------------------------------------------------ requests */

typedef struct delayed {
    ev_timer t;
    hook_req *r;
    hook_sandbox *s;
    struct delayed *prev, *next;
    sb_reply o;
} delayed;

static void delayed_unlink(hook_sandbox *s, delayed *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        s->delays = d->next;
    if (d->next) d->next->prev = d->prev;
}

static void send_reply(hook_req *r, sb_reply *o)
{
    if (o->hdrs.len) {
        /* split "Name: value\r\n" lines into the request's answer headers */
        char *p = o->hdrs.data;
        while (*p) {
            char *eol = strstr(p, "\r\n");
            if (!eol) break;
            *eol = '\0';
            char *colon = strchr(p, ':');
            if (colon) {
                *colon = '\0';
                hook_req_add_header(r, p, colon + 2);
            }
            p = eol + 2;
        }
    }
    const char *ct =
        o->body.len
            ? (o->body.data[0] == '{' || o->body.data[0] == '[' ? "application/json" : "text/plain")
            : NULL;
    hook_req_respond(r, o->status, ct, o->body.data, o->body.len);
    hr_buf_release(&o->body);
    hr_buf_release(&o->hdrs);
}

static void on_delay(struct ev_loop *loop, ev_timer *w, int revents)
{
    delayed *d = (delayed *)w;
    delayed_unlink(d->s, d);
    send_reply(d->r, &d->o);
    free(d);
}

/* idem_scope returns whose Idempotency-Key a request uses, as a new
 * "<account> <path>": the real APIs keep keys per account (Mastodon per
 * user), and a key means nothing at another path. The account is the
 * credential the request carries; a Bluesky token stands for its DID,
 * which outlives a session refresh. */
static char *idem_scope(hook_sandbox *s, const hook_req *r, const sb_rec *x)
{
    const sb_session *ss = !strcmp(x->platform, "bluesky") ? session_of(s, r) : NULL;
    const char *acct = ss ? ss->did : hook_req_header(r, "Authorization");
    if (!acct) acct = hook_req_header(r, "X-Postmark-Server-Token");
    if (!acct) acct = meta_token(r, x);
    return hr_asprintf("%s %s", acct ? acct : "", hook_req_path(r));
}

static void on_request(hook_req *r, void *priv)
{
    hook_sandbox *s = priv;
    const char *path = hook_req_path(r);
    sb_reply o = {0};
    hr_buf_init(&o.body);
    hr_buf_init(&o.hdrs);
    if (!strcmp(path, "/healthz") || !strcmp(path, "/readyz")) {
        reply_json(&o, 200, json_pack("{sb}", "ok", 1));
        return send_reply(r, &o);
    }
    if (!strncmp(path, "/_sandbox/", 10)) {
        control(s, r, &o);
        return send_reply(r, &o);
    }
    const route *rt = find_route(hook_req_method(r), path);
    if (!rt && !strcmp(hook_req_method(r), "POST") && hook_req_header(r, "X-Herald-Signature"))
        rt = find_route("POST", "/hook/"); /* a generic relay at any path */
    /* every request is recorded, whatever its fate; what was answered
     * otherwise than by the platform's handler is set aside */
    sb_rec *x = rec_new(s, rt ? rt->platform : "none", rt ? rt->kind : "unrouted", r);
    int xi = s->nrecs - 1;
    if (!rt) {
        x->aside = 1;
        reply_json(&o, 404, json_pack("{ss}", "error", "not found"));
        x->status = 404;
        return send_reply(r, &o);
    }
    if (!strcmp(rt->platform, "threads") || !strcmp(rt->platform, "facebook")) graph_params(r, x);
    sb_fault *f = fault_for(s, rt->platform);
    int slow = 0, made = 0;
    if (f) {
        double v = rnd(s);
        slow = f->slow_ms;
        if (v < f->drop) {
            s->faults_injected++;
            x->aside = 1;
            x->fault = "drop"; /* status 0: no answer */
            hr_buf_release(&o.body);
            hr_buf_release(&o.hdrs);
            return hook_req_drop(r);
        }
        v = rnd(s);
        if (v < f->rate429) {
            s->faults_injected++;
            x->fault = "429";
            char ra[24], reset[24];
            snprintf(ra, sizeof ra, "%d", f->retry_after_s);
            snprintf(reset, sizeof reset, "%lld",
                     (long long)(hr_now_ms() / 1000 + f->retry_after_s));
            reply_hdr(&o, "Retry-After", ra);
            reply_hdr(&o, "x-rate-limit-reset", reset);
            reply_hdr(&o, "ratelimit-reset", reset);
            reply_hdr(&o, "x-rate-limit-remaining", "0");
            reply_json(&o, 429, json_pack("{ss si}", "title", "Too Many Requests", "status", 429));
            goto answer;
        }
        v = rnd(s);
        if (v < f->rate500) {
            s->faults_injected++;
            x->fault = "500";
            reply_json(&o, 500, json_pack("{ss}", "error", "sandbox: injected server error"));
            goto answer;
        }
        /* drawn only when set: the faults above keep their seeded sequence;
         * what is refused is content (a post, an email, a Threads
         * container), not a login or a read */
        if (f->rate4xx > 0 && strcmp(rt->kind, "read") != 0 && strcmp(rt->kind, "session") != 0 &&
            rnd(s) < f->rate4xx) {
            s->faults_injected++;
            x->fault = "refusal";
            refuse(&o, rt->platform, f->status4xx, f->message);
            goto answer;
        }
    }
    /* Every route that makes something honours Idempotency-Key for an
     * hour, per account and path: a repeat gets the first answer and is
     * counted as a duplicate, so a test sees a send made twice. */
    const char *idem = hook_req_header(r, "Idempotency-Key");
    char *scope = idem && strcmp(rt->kind, "read") ? idem_scope(s, r, x) : NULL;
    sb_rec *prev = scope ? find_idem(s, rt->platform, scope, idem) : NULL;
    if (prev && hr_now_ms() - prev->received_ms > 3600 * 1000) prev = NULL;
    if (prev) {
        free(scope);
        prev->duplicates++;
        x->replay = 1;
        o.status = prev->status;
        hr_buf_puts(&o.body, prev->resp ? prev->resp : "");
        if (prev->resp_hdrs) hr_buf_puts(&o.hdrs, prev->resp_hdrs);
        goto answer;
    }
    x->scope = scope;
    const char *ct = hook_req_header(r, "Content-Type");
    if (ct && !strncasecmp(ct, "multipart/form-data", 19))
        /* no MIME parser among herald's libraries (libmicrohttpd's post
         * processor needs its own server's connection): say so plainly */
        refuse(&o, rt->platform, 415,
               "sandbox: multipart/form-data bodies are not supported; send the form as "
               "application/x-www-form-urlencoded (as herald does)");
    else
        rt->fn(s, r, &o, x);
    if (!o.status) o.status = 500;
    int ok = o.status / 100 == 2;
    if (!ok) {
        free(x->id);
        x->id = NULL;
    }
    /* kept to replay a repeated key; not for a read, whose answer can be
     * large */
    if (strcmp(rt->kind, "read") == 0) goto answer;
    x->resp = hr_strdup(o.body.data ? o.body.data : "");
    x->resp_hdrs = hr_strdup(o.hdrs.data ? o.hdrs.data : "");
    if (ok && s->auto_events && s->webhooks_url && !strcmp(rt->kind, "email")) {
        hr_err err = {0};
        if (fire_event(s, x, HOOK_EV_DELIVERED, 1, &err) != 0)
            hr_log(HR_LOG_WARN, "sandbox: cannot fire delivered event", "error", err.msg, NULL);
    } else if (ok && s->auto_events && s->webhooks_url && s->generic_key &&
               !strcmp(rt->kind, "post") && strcmp(rt->platform, "webhook") != 0) {
        fire_later(s, xi);
    }
    /* drawn only when set (the other faults keep their sequence): made,
     * and a repeat of its key gets the real answer, but this one is lost */
    if (ok && f && f->gateway > 0 && strcmp(rt->kind, "session") != 0 && rnd(s) < f->gateway) {
        s->faults_injected++;
        x->fault = "gateway";
        made = o.status;
        hr_buf_release(&o.body);
        hr_buf_release(&o.hdrs);
        hr_buf_init(&o.body);
        hr_buf_init(&o.hdrs);
        reply_json(&o, 502, json_pack("{ss}", "error", "sandbox: injected bad gateway"));
    }
answer:
    x->status = made ? made : o.status;
    if ((x->fault && !made) || x->replay) x->aside = 1;
    if (slow > 0) {
        delayed *d = hr_calloc(1, sizeof *d);
        d->r = r;
        d->s = s;
        d->o = o;
        d->next = s->delays;
        if (s->delays) s->delays->prev = d;
        s->delays = d;
        ev_timer_init(&d->t, on_delay, slow / 1000.0, 0.);
        ev_timer_start(s->loop, &d->t);
        return;
    }
    send_reply(r, &o);
}

/* ------------------------------------------------------------ life cycle */

/* write_pubkey writes the SendGrid public key to path through a temporary
 * file and rename, so a reader never sees half of it. */
static int write_pubkey(hook_sandbox *s, const char *path, hr_err *err)
{
    if (!s->sg_pub_pem) return hr_err_set(err, "sandbox: no SendGrid key was generated");
    char *tmp = hr_asprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int ok = f && fputs(s->sg_pub_pem, f) >= 0;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) {
        hr_err_set(err, "sandbox: cannot write %s: %m", path);
        unlink(tmp);
    }
    free(tmp);
    return ok ? 0 : -1;
}

/* load_relay_keys reads the credential of each webhook account in the
 * config. An account whose credential cannot be read is skipped with a
 * warning: the sandbox serves the other platforms all the same. */
static void load_relay_keys(hook_sandbox *s, const hr_config *c)
{
    int pos = -1;
    const hr_conf_line *l;
    while (c && (l = hr_config_next(c, "account", &pos))) {
        if (l->argc < 1 || strncmp(l->argv[0], "webhook:", 8) != 0) continue;
        hr_err e = {0};
        plat_account *a = plat_account_parse(l, c->path, &e);
        if (a && plat_account_load_credential(a, c, NULL, &e) == 0 && a->credential) {
            s->relay_keys =
                hr_realloc(s->relay_keys, sizeof *s->relay_keys * (size_t)(s->nrelay_keys + 1));
            s->relay_keys[s->nrelay_keys++] = hr_strdup(a->credential);
        } else {
            hr_log(HR_LOG_WARN, "sandbox: relay account without a credential", "account",
                   l->argv[0], "error", e.msg[0] ? e.msg : "no credentials=", NULL);
        }
        plat_account_free(a);
    }
}

/* ------------------------------------------------------------- SMTP */

/* header_of returns the value of the message header name (the first one,
 * unfolded lines only), as a new string, or NULL: enough to file the
 * message under its job, not a MIME parser. */
static char *header_of(const char *data, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = data, *end = data + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((eol ? eol : end) - p);
        if (n && p[n - 1] == '\r') n--;
        if (n == 0) break; /* the blank line: the body starts */
        if (n > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (v < p + n && (*v == ' ' || *v == '\t'))
                v++;
            return hr_strndup(v, (size_t)(p + n - v));
        }
        if (!eol) break;
        p = eol + 1;
    }
    return NULL;
}

/* on_smtp takes a message the SMTP stand-in received: the faults set for
 * "smtp" first (drop: no answer; 429 and 500: 451, a temporary failure;
 * refusals: 550), then it is recorded like an email provider's send. */
static int on_smtp(void *priv, const hook_smtpd_msg *m, char *line, size_t cap)
{
    hook_sandbox *s = priv;
    sb_rec *x = rec_add(s, "smtp", "email", "SMTP", "DATA");
    /* what is not UTF-8 is left out of the record (jansson returns NULL) */
    json_t *to = json_array();
    for (int i = 0; i < m->nrcpt; i++)
        json_array_append_new(to, json_string(m->rcpt[i]));
    x->body = json_object();
    json_object_set_new(x->body, "from", json_string(m->from));
    json_object_set_new(x->body, "to", to);
    json_object_set_new(x->body, "data", json_stringn(m->data, m->len));
    sb_fault *f = fault_for(s, "smtp");
    if (f) {
        x->aside = 1; /* unless no fault is drawn, below */
        if (rnd(s) < f->drop) {
            s->faults_injected++;
            x->fault = "drop";
            return -1;
        }
        if (rnd(s) < f->rate429) {
            s->faults_injected++;
            x->fault = "429";
            x->status = 451;
            snprintf(line, cap, "451 4.7.1 sandbox: too many messages, try again in %d s",
                     f->retry_after_s);
            return 0;
        }
        if (rnd(s) < f->rate500) {
            s->faults_injected++;
            x->fault = "500";
            x->status = 451;
            snprintf(line, cap, "451 4.3.0 sandbox: injected temporary failure");
            return 0;
        }
        if (f->rate4xx > 0 && rnd(s) < f->rate4xx) {
            s->faults_injected++;
            x->fault = "refusal";
            x->status = 550;
            snprintf(line, cap, "550 5.7.1 %s",
                     f->message[0] ? f->message : "sandbox: message refused");
            return 0;
        }
        x->aside = 0;
    }
    x->id = rand_token(16);
    x->email = hr_strdup(m->rcpt[0]);
    x->job = header_of(m->data, m->len, "X-Herald-Job");
    x->message_id = header_of(m->data, m->len, "Message-ID");
    x->text = header_of(m->data, m->len, "Subject");
    x->status = 250;
    snprintf(line, cap, "250 2.0.0 queued as %s", x->id);
    return 0;
}

hook_sandbox *hook_sandbox_new(struct ev_loop *loop, const hook_sandbox_opts *o, hr_err *err)
{
    hook_sandbox *s = hr_calloc(1, sizeof *s);
    s->loop = loop;
    s->rng = o->seed ? o->seed : hr_random_u64() | 1;
    s->webhooks_url = o->webhooks_url ? hr_strdup(o->webhooks_url) : NULL;
    if (s->webhooks_url) {
        size_t n = strlen(s->webhooks_url);
        while (n && s->webhooks_url[n - 1] == '/')
            s->webhooks_url[--n] = '\0';
    }
    s->auto_events = o->auto_events;
    s->fire = hook_fire_new(loop);
    s->sg_key = EVP_EC_gen("P-256");
    if (s->sg_key) {
        BIO *b = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(b, s->sg_key);
        char *p;
        long n = BIO_get_mem_data(b, &p);
        s->sg_pub_pem = hr_strndup(p, (size_t)n);
        BIO_free(b);
    }
    hr_err cerr = {0};
    s->mailgun_key =
        hook_credential(o->config, "mailgun-signing-key-file", "mailgun-signing-key", NULL, &cerr);
    s->postmark_auth =
        hook_credential(o->config, "postmark-webhook-auth-file", "postmark-webhook-auth", NULL, &cerr);
    s->generic_key = hook_credential(o->config, "webhook-hmac-key-file", "webhook-hmac-key", NULL, &cerr);
    if (cerr.msg[0]) {
        hr_err_set(err, "sandbox: %s", cerr.msg);
        hook_sandbox_free(s);
        return NULL;
    }
    load_relay_keys(s, o->config);
    if (o->faults) {
        json_error_t je;
        json_t *j = json_loads(o->faults, 0, &je);
        int rc = j ? set_faults(s, j, err)
                   : hr_err_set(err, "sandbox: --faults is not JSON: %s", je.text);
        json_decref(j);
        if (rc != 0) {
            hook_sandbox_free(s);
            return NULL;
        }
    }
    if (o->sendgrid_pubkey_out && write_pubkey(s, o->sendgrid_pubkey_out, err) != 0) {
        hook_sandbox_free(s);
        return NULL;
    }
    hook_httpd_opts ho = {0};
    ho.listen = o->listen ? o->listen : "127.0.0.1:8700";
    ho.max_body = 4 << 20;
    ho.handler = on_request;
    ho.priv = s;
    s->http = hook_httpd_new(loop, &ho, err);
    if (!s->http) {
        hook_sandbox_free(s);
        return NULL;
    }
    if (o->smtp_listen) {
        s->smtpd = hook_smtpd_new(loop, o->smtp_listen, 0, on_smtp, s, err);
        if (!s->smtpd) {
            hook_sandbox_free(s);
            return NULL;
        }
    }
    return s;
}

void hook_sandbox_free(hook_sandbox *s)
{
    if (!s) return;
    while (s->delays) { /* answer what waits, so no request is left held */
        delayed *d = s->delays;
        ev_timer_stop(s->loop, &d->t);
        delayed_unlink(s, d);
        send_reply(d->r, &d->o);
        free(d);
    }
    while (s->laters) {
        later *l = s->laters;
        ev_timer_stop(s->loop, &l->t);
        later_unlink(s, l);
        free(l);
    }
    hook_httpd_free(s->http);
    hook_smtpd_free(s->smtpd);
    hook_fire_free(s->fire);
    sandbox_reset(s);
    free(s->recs);
    free(s->webhooks_url);
    EVP_PKEY_free(s->sg_key);
    free(s->sg_pub_pem);
    free(s->mailgun_key);
    free(s->postmark_auth);
    free(s->generic_key);
    for (int i = 0; i < s->nrelay_keys; i++)
        free(s->relay_keys[i]);
    free(s->relay_keys);
    free(s);
}

int hook_sandbox_port(const hook_sandbox *s)
{
    return hook_httpd_port(s->http);
}

int hook_sandbox_smtp_port(const hook_sandbox *s)
{
    return s->smtpd ? hook_smtpd_port(s->smtpd) : 0;
}

void hook_sandbox_stop(hook_sandbox *s, void (*done)(void *priv), void *priv)
{
    hook_httpd_stop(s->http, done, priv);
}
