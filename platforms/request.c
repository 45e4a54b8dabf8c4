/* request.c: building requests (headers, JSON and form bodies, secrets to
 * mask) and reading answers the way every platform shares: transport
 * errors, 429 and its headers, 5xx, quota headers, JSON bodies that may be
 * empty or malformed. Platform-specific rules live in the platform files. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

void req_init(plat_request *r, const char *method, char *url)
{
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", method);
    r->url = url;
}

/* grow gives an array of n items room for one more, doubling (from 4) when
 * n is a power of two: the capacity follows from n, no field needed. */
static void *grow(void *v, int n, size_t size)
{
    if (n == 0) return hr_realloc(v, 4 * size);
    if (n >= 4 && (n & (n - 1)) == 0) return hr_realloc(v, 2 * (size_t)n * size);
    return v;
}

/* header_put adds name: prefix value as one block, "name\0prefix value\0"
 * (plat_request_release frees the name, which is the block). */
static void header_put(plat_request *r, const char *name, const char *prefix, const char *value)
{
    size_t nl = strlen(name) + 1, pl = strlen(prefix), vl = strlen(value) + 1;
    char *b = hr_malloc(nl + pl + vl);
    memcpy(b, name, nl);
    memcpy(b + nl, prefix, pl);
    memcpy(b + nl + pl, value, vl);
    r->headers = grow(r->headers, r->nheaders, sizeof *r->headers);
    r->headers[r->nheaders].name = b;
    r->headers[r->nheaders].value = b + nl;
    r->nheaders++;
}

void req_header(plat_request *r, const char *name, const char *value)
{
    header_put(r, name, "", value);
}

void req_secret(plat_request *r, const char *secret)
{
    if (!secret || !*secret) return;
    r->secrets = grow(r->secrets, r->nsecrets, sizeof *r->secrets);
    r->secrets[r->nsecrets++] = hr_strdup(secret);
}

void req_bearer(plat_request *r, const char *token)
{
    header_put(r, "Authorization", "Bearer ", token ? token : "");
    req_secret(r, token);
}

static void req_body(plat_request *r, char *body, size_t len, const char *ctype)
{
    free(r->body);
    free(r->content_type);
    r->body = body;
    r->body_len = len;
    r->content_type = hr_strdup(ctype);
    req_header(r, "Content-Type", ctype);
}

void req_json(plat_request *r, json_t *body)
{
    /* jansson allocates with malloc (we never set other functions), so its
     * text is the body as is: free() releases it */
    char *s = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!s) s = hr_strdup("{}");
    req_body(r, s, strlen(s), "application/json");
}

char *plat_urlenc(const char *s)
{
    char *e = curl_easy_escape(NULL, s ? s : "", 0);
    if (!e) abort();
    char *c = hr_strdup(e);
    curl_free(e);
    return c;
}

void req_form(plat_request *r, const char *const *pairs)
{
    hr_buf b;
    hr_buf_init(&b);
    for (int i = 0; pairs[i]; i += 2) {
        if (!pairs[i + 1]) continue;
        char *k = plat_urlenc(pairs[i]), *v = plat_urlenc(pairs[i + 1]);
        hr_buf_printf(&b, "%s%s=%s", b.len ? "&" : "", k, v);
        free(k);
        free(v);
    }
    size_t len = b.len;
    req_body(r, hr_buf_detach(&b), len, "application/x-www-form-urlencoded");
}

/* Each distinct request of a send gets its own key: a server that honours
 * Idempotency-Key replays the first answer to a key, so a thread's second
 * part or Threads' publish step must not reuse the first request's key.
 * Part 1 uses the job's key as is; part n "<key>-n"; a step adds "-<step>". */
void req_idem_step(plat_request *r, const plat_send *s, const char *step)
{
    if (!s->job->idem_key) return;
    char part[16] = "", small[64];
    if (s->part > 0) snprintf(part, sizeof part, "-%d", s->part + 1);
    const char *dash = step ? "-" : "", *st = step ? step : "";
    int n = snprintf(small, sizeof small, "%s%s%s", part, dash, st);
    char *suffix = n < (int)sizeof small ? small : hr_asprintf("%s%s%s", part, dash, st);
    header_put(r, "Idempotency-Key", s->job->idem_key, suffix);
    if (suffix != small) free(suffix);
}

void req_idem(plat_request *r, const plat_send *s) { req_idem_step(r, s, NULL); }

char *url_join(const plat_account *a, const char *fmt, ...)
{
    /* one allocation: the base, then the path formatted in place */
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t bl = strlen(a->base_url);
    char *u = hr_malloc(bl + (size_t)(n > 0 ? n : 0) + 1);
    memcpy(u, a->base_url, bl);
    u[bl] = '\0';
    if (n > 0) vsnprintf(u + bl, (size_t)n + 1, fmt, again);
    va_end(again);
    return u;
}

int need_opt(const plat_account *a, const char *key, const char **out, hr_err *err)
{
    *out = plat_account_opt(a, key, NULL);
    if (!*out || !**out)
        return hr_err_set(err, "%s:%s: account needs %s=", a->platform, a->name, key);
    return 0;
}

void plat_request_release(plat_request *r)
{
    if (!r) return;
    free(r->url);
    for (int i = 0; i < r->nheaders; i++) free(r->headers[i].name); /* holds the value too */
    free(r->headers);
    free(r->body);
    free(r->content_type);
    for (int i = 0; i < r->nsecrets; i++) free(r->secrets[i]);
    free(r->secrets);
    memset(r, 0, sizeof *r);
}

/* mask replaces every occurrence of every secret (and its URL-encoded
 * form) with "***". */
static char *mask(const plat_request *r, const char *s, size_t n)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_append(&b, s, n);
    for (int k = 0; k < r->nsecrets; k++) {
        char *forms[2] = {hr_strdup(r->secrets[k]), plat_urlenc(r->secrets[k])};
        for (int f = 0; f < 2; f++) {
            size_t sl = strlen(forms[f]);
            if (!sl) continue;
            hr_buf o;
            hr_buf_init(&o);
            const char *p = b.data, *end = b.data + b.len;
            while (p < end) {
                const char *m = memmem(p, (size_t)(end - p), forms[f], sl);
                if (!m) {
                    hr_buf_append(&o, p, (size_t)(end - p));
                    break;
                }
                hr_buf_append(&o, p, (size_t)(m - p));
                hr_buf_puts(&o, "***");
                p = m + sl;
            }
            hr_buf_release(&b);
            b = o;
            if (!b.data) hr_buf_append(&b, "", 0);
        }
        free(forms[0]);
        free(forms[1]);
    }
    return hr_buf_detach(&b);
}

static json_t *request_obj(const plat_request *r, int m)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(r->method));
    char *u = m ? mask(r, r->url, strlen(r->url)) : hr_strdup(r->url);
    json_object_set_new(o, "url", json_string(u));
    free(u);
    json_t *h = json_object();
    for (int i = 0; i < r->nheaders; i++) {
        char *v = m ? mask(r, r->headers[i].value, strlen(r->headers[i].value))
                    : hr_strdup(r->headers[i].value);
        json_object_set_new(h, r->headers[i].name, json_string(v));
        free(v);
    }
    json_object_set_new(o, "headers", h);
    if (r->body) {
        char *b = m ? mask(r, r->body, r->body_len) : hr_strndup(r->body, r->body_len);
        json_t *parsed = NULL;
        if (r->content_type && strcmp(r->content_type, "application/json") == 0)
            parsed = json_loads(b, 0, NULL);
        json_object_set_new(o, "body", parsed ? parsed : json_string(b));
        free(b);
    } else {
        json_object_set_new(o, "body", json_null());
    }
    return o;
}

char *plat_request_json(const plat_request *r, int m)
{
    json_t *o = request_obj(r, m);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    char *c = hr_strdup(s ? s : "{}");
    free(s);
    return c;
}

/* ------------------------------------------------------------ answers */

const char *plat_response_header(const plat_response *r, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < r->nheaders; i++)
        if (r->headers[i].name && strcasecmp(r->headers[i].name, name) == 0)
            v = r->headers[i].value;
    return v;
}

void out_init(plat_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->quota_remaining = -1;
    o->quota_limit = -1;
}

void plat_outcome_release(plat_outcome *o)
{
    if (!o) return;
    free(o->platform_id);
    o->platform_id = NULL;
}

void out_set(plat_outcome *o, plat_outcome_kind k, const char *fmt, ...)
{
    o->kind = k;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
}

void out_sent(plat_outcome *o, const char *id)
{
    o->kind = PLAT_OUT_SENT;
    free(o->platform_id);
    o->platform_id = hr_strdup(id);
    o->message[0] = '\0';
}

const char *plat_outcome_name(plat_outcome_kind k)
{
    switch (k) {
    case PLAT_OUT_SENT: return "sent";
    case PLAT_OUT_NEXT: return "next";
    case PLAT_OUT_RETRY: return "retry";
    case PLAT_OUT_TRANSIENT: return "transient";
    case PLAT_OUT_REAUTH: return "reauth";
    case PLAT_OUT_PERMANENT: return "permanent";
    case PLAT_OUT_UNKNOWN: return "unknown";
    case PLAT_OUT_ABSENT: return "absent";
    }
    return "?";
}

/* A wait longer than a day is a broken or hostile header: a day it is (and
 * no arithmetic on it can overflow). */
#define WAIT_MAX_S (24 * 3600)

/* wait_ms turns a wait in seconds (maybe absurd) into ms within a day. */
static int64_t wait_ms(int64_t secs)
{
    return (secs > WAIT_MAX_S ? WAIT_MAX_S : secs) * 1000;
}

int64_t plat_parse_retry_after(const char *v, int64_t now_ms)
{
    if (!v) return -1;
    while (*v == ' ') v++;
    int64_t secs;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s", v);
    size_t l = strlen(tmp);
    while (l && (tmp[l - 1] == ' ' || tmp[l - 1] == '\r')) tmp[--l] = '\0';
    if (hr_parse_i64(tmp, &secs) == 0) return secs < 0 ? -1 : wait_ms(secs);
    if (l && strspn(tmp, "0123456789") == l) return wait_ms(WAIT_MAX_S); /* past int64 */
    time_t t = curl_getdate(tmp, NULL); /* HTTP-date, as curl parses it */
    if (t < 0) return -1;
    int64_t at_s = (int64_t)t, now_s = now_ms / 1000;
    if (at_s - now_s > WAIT_MAX_S) return wait_ms(WAIT_MAX_S);
    int64_t d = at_s * 1000 - now_ms;
    return d < 0 ? 0 : d;
}

static int parse_long(const char *v, long *out)
{
    int64_t x;
    if (!v) return -1;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%s", v);
    char *dot = strchr(tmp, '.');
    if (dot) *dot = '\0';
    if (hr_parse_i64(tmp, &x) != 0) return -1;
    *out = (long)x;
    return 0;
}

/* A reset header is epoch seconds (X, Bluesky), delta seconds (the IETF
 * RateLimit draft) or ISO 8601 (Mastodon): tell them apart by size. */
static int64_t reset_to_abs_ms(const char *v, int64_t now_ms)
{
    long x;
    int64_t ms;
    if (!v) return 0;
    if (parse_long(v, &x) == 0) {
        if (x < 0) return now_ms;
        if (x > 1000000000L) { /* epoch seconds: at most a day ahead */
            int64_t ahead = (int64_t)x - now_ms / 1000;
            return ahead > WAIT_MAX_S ? now_ms + wait_ms(WAIT_MAX_S) : (int64_t)x * 1000;
        }
        return now_ms + wait_ms(x);
    }
    if (hr_parse_rfc3339(v, &ms) == 0) return ms;
    return 0;
}

/* platform_clock: the platform's time when it answered: its Date header
 * (whole seconds, so a wait measured from it is never short) when it sent
 * one, else now_ms. Reset times and HTTP-dates are written in the
 * platform's clock: measured against this host's, a host a few seconds
 * ahead would see every reset as past and retry at once. */
static int64_t platform_clock(const plat_response *r, int64_t now_ms)
{
    const char *v = plat_response_header(r, "date");
    time_t t = v ? curl_getdate(v, NULL) : -1;
    return t > 0 ? (int64_t)t * 1000 : now_ms;
}

/* read_quota reads the quota headers; pnow_ms is the platform's clock,
 * now_ms the caller's, in which o->quota_reset_ms is given. */
static void read_quota(const plat_response *r, int64_t pnow_ms, int64_t now_ms, plat_outcome *o)
{
    static const char *rem[] = {"x-rate-limit-remaining", "ratelimit-remaining",
                                "x-ratelimit-remaining"};
    static const char *lim[] = {"x-rate-limit-limit", "ratelimit-limit", "x-ratelimit-limit"};
    static const char *rst[] = {"x-rate-limit-reset", "ratelimit-reset", "x-ratelimit-reset"};
    for (int i = 0; i < 3; i++) {
        long v;
        if (parse_long(plat_response_header(r, rem[i]), &v) == 0) o->quota_remaining = v;
        if (parse_long(plat_response_header(r, lim[i]), &v) == 0) o->quota_limit = v;
        int64_t t = reset_to_abs_ms(plat_response_header(r, rst[i]), pnow_ms);
        if (t) o->quota_reset_ms = t - pnow_ms + now_ms;
    }
    /* Meta: X-App-Usage {"call_count":percent,...}: report what is left of 100 */
    const char *mu = plat_response_header(r, "x-app-usage");
    if (mu) {
        json_t *j = json_loads(mu, 0, NULL);
        long used = jlong(j, "call_count", -1);
        if (used >= 0) {
            o->quota_limit = 100;
            o->quota_remaining = used >= 100 ? 0 : 100 - used;
        }
        json_decref(j);
    }
}

int plat_classify_http(const plat_response *r, int64_t now_ms, plat_outcome *o)
{
    int64_t pnow = platform_clock(r, now_ms);
    read_quota(r, pnow, now_ms, o);
    if (r->terr != PLAT_TE_NONE || r->status == 0) {
        static const char *names[] = {"no answer", "timeout", "connection reset",
                                      "connect failed", "transport error"};
        const char *what = names[r->terr <= PLAT_TE_OTHER ? r->terr : PLAT_TE_OTHER];
        /* a request fully sent may have acted: only a read-back can tell */
        if (r->fully_sent && r->terr != PLAT_TE_CONNECT)
            out_set(o, PLAT_OUT_UNKNOWN, "%s after the request was sent", what);
        else
            out_set(o, PLAT_OUT_TRANSIENT, "%s", what);
        return 1;
    }
    if (r->status == 429) {
        int64_t d = plat_parse_retry_after(plat_response_header(r, "retry-after"), pnow);
        if (d < 0) {
            int64_t t = 0;
            static const char *rst[] = {"x-rate-limit-reset", "ratelimit-reset",
                                        "x-ratelimit-reset"};
            for (int i = 0; i < 3 && !t; i++)
                t = reset_to_abs_ms(plat_response_header(r, rst[i]), pnow);
            if (t) d = t > pnow ? t - pnow : 0;
            if (d > wait_ms(WAIT_MAX_S)) d = wait_ms(WAIT_MAX_S);
        }
        o->retry_after_ms = d < 0 ? 60000 : d;
        out_set(o, PLAT_OUT_RETRY, "rate limited (HTTP 429), retry in %lld ms",
                (long long)o->retry_after_ms);
        return 1;
    }
    if (r->status >= 500 || r->status == 408) {
        int64_t d = plat_parse_retry_after(plat_response_header(r, "retry-after"), pnow);
        if (d >= 0) o->retry_after_ms = d;
        out_set(o, PLAT_OUT_TRANSIENT, "HTTP %ld", r->status);
        return 1;
    }
    return 0;
}

json_t *body_json(const plat_response *r, plat_outcome *o, const char *what)
{
    if (!r->body || r->body_len == 0) {
        out_set(o, r->status >= 200 && r->status < 300 ? PLAT_OUT_UNKNOWN : PLAT_OUT_PERMANENT,
                "%s: HTTP %ld with an empty body", what, r->status);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!j) {
        out_set(o, r->status >= 200 && r->status < 300 ? PLAT_OUT_UNKNOWN : PLAT_OUT_PERMANENT,
                "%s: HTTP %ld with malformed JSON: %s", what, r->status, je.text);
        return NULL;
    }
    return j;
}

static json_t *jget(json_t *o, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
        if (json_is_array(o)) {
            char *end;
            long idx = strtol(k, &end, 10);
            o = *end ? NULL : json_array_get(o, (size_t)idx);
        } else {
            o = json_object_get(o, k);
        }
    }
    return o;
}

const char *jstr(json_t *o, const char *path)
{
    json_t *v = o ? jget(o, path) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

long jlong(json_t *o, const char *path, long def)
{
    json_t *v = o ? jget(o, path) : NULL;
    if (json_is_integer(v)) return (long)json_integer_value(v);
    if (json_is_string(v)) {
        long x;
        if (parse_long(json_string_value(v), &x) == 0) return x;
    }
    return def;
}

int64_t send_now(const plat_send *s) { return s->ctx.now_ms ? s->ctx.now_ms : hr_now_ms(); }

int classify_error(const plat_send *s, const plat_response *r, plat_outcome *o,
                   const char *const *msg_paths)
{
    if (plat_classify_http(r, s ? send_now(s) : hr_now_ms(), o)) return 1;
    if (r->status >= 200 && r->status < 300) return 0;
    const char *msg = NULL;
    json_t *j = (r->body && r->body_len) ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    for (int i = 0; msg_paths && msg_paths[i] && !msg; i++) msg = jstr(j, msg_paths[i]);
    plat_outcome_kind k = (r->status == 401) ? PLAT_OUT_REAUTH : PLAT_OUT_PERMANENT;
    if (msg)
        out_set(o, k, "HTTP %ld: %s", r->status, msg);
    else if (r->body_len && !j)
        out_set(o, k, "HTTP %ld (body is not JSON)", r->status);
    else
        out_set(o, k, "HTTP %ld", r->status);
    json_decref(j);
    return 1;
}

int meta_error(const plat_response *r, plat_outcome *o)
{
    if (r->status >= 200 && r->status < 300) return 0;
    json_t *j = (r->body && r->body_len) ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    if (!e) {
        json_decref(j);
        return 0;
    }
    long code = jlong(e, "code", 0);
    const char *msg = jstr(e, "message");
    if (!msg) msg = "(no message)";
    if (code == 190 || code == 102 || code == 463)
        out_set(o, PLAT_OUT_REAUTH, "graph error %ld: %s", code, msg);
    else if (code == 4 || code == 17 || code == 32 || code == 613 || code == 80001) {
        o->retry_after_ms = 60000;
        out_set(o, PLAT_OUT_RETRY, "graph error %ld: %s", code, msg);
    } else if (code == 1 || code == 2 || json_is_true(json_object_get(e, "is_transient")))
        out_set(o, PLAT_OUT_TRANSIENT, "graph error %ld: %s", code, msg);
    else
        out_set(o, PLAT_OUT_PERMANENT, "graph error %ld: %s", code, msg);
    json_decref(j);
    return 1;
}

void eng_init(plat_engagement *e)
{
    e->likes = e->reposts = e->replies = e->quotes = e->views = -1;
}

void plat_session_release(plat_session *s)
{
    if (!s) return;
    free(s->access);
    free(s->refresh);
    free(s->did);
    memset(s, 0, sizeof *s);
}

json_t *eng_body(const plat_response *r, plat_outcome *o, const char *what)
{
    json_t *j = body_json(r, o, what);
    if (!j) o->kind = PLAT_OUT_PERMANENT; /* a poll that cannot be read is not retried */
    return j;
}

void readback_id_at(const plat_response *r, plat_outcome *o, const char *path, const char *what)
{
    json_t *j = body_json(r, o, what);
    if (!j) {
        o->kind = PLAT_OUT_TRANSIENT;
        return;
    }
    const char *id = jstr(j, path);
    if (id) out_sent(o, id);
    else out_set(o, PLAT_OUT_ABSENT, "%s: no message for the job", what);
    json_decref(j);
}
