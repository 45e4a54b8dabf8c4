/* test_sandbox.c: `herald sandbox`: each platform's validation, answers and
 * ids, Idempotency-Key, Bluesky sessions, injected faults, the record of
 * requests, and the whole loop: emails and posts it accepted come back as
 * signed webhooks that `herald webhooks` verifies and records. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "harness.h"
#include "webhooks.h"

#include <signal.h>
#include <sys/wait.h>

static th_redis *redis;
static pid_t sb_pid, wh_pid;
static char *dir;
static int sport, wport;
static const char *JOB = "0000000Bqrstuvwxyzab";
#define RELAY_KEY "crm-relay-key-for-sandbox-test"

typedef struct resp {
    long status;
    hr_buf body, hdrs;
} resp;

static size_t on_data(char *p, size_t sz, size_t n, void *u)
{
    hr_buf_append(u, p, sz * n);
    return sz * n;
}

/* req sends one request to the sandbox; r gets status (0: no answer),
 * body and headers. */
static void req(const char *method, const char *path, const char *const *hdrs, const char *body,
                resp *r)
{
    hr_buf_init(&r->body);
    hr_buf_init(&r->hdrs);
    hr_buf_puts(&r->body, "");
    hr_buf_puts(&r->hdrs, "");
    CURL *c = curl_easy_init();
    char url[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sport, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (int i = 0; hdrs && hdrs[i]; i++)
        h = curl_slist_append(h, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    r->status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void resp_release(resp *r)
{
    hr_buf_release(&r->body);
    hr_buf_release(&r->hdrs);
}

/* status_of sends one request and returns only its status. */
static long status_of(const char *method, const char *path, const char *const *hdrs,
                      const char *body)
{
    resp r;
    req(method, path, hdrs, body, &r);
    resp_release(&r);
    return r.status;
}

static json_t *json_of(const resp *r)
{
    return json_loads(r->body.data, 0, NULL);
}

/* json_answer sends one request, checks that it is answered status and
 * returns the answer's JSON (owned; NULL when it is none) */
static json_t *json_answer(const char *method, const char *path, const char *const *hdrs,
                           const char *body, long status)
{
    resp r;
    req(method, path, hdrs, body, &r);
    CHECK_INT(r.status, status);
    json_t *j = json_of(&r);
    resp_release(&r);
    return j;
}

/* jstr_at: the string at o.k1.k2, or NULL */
static const char *jstr_at(json_t *o, const char *k1, const char *k2)
{
    return json_string_value(json_object_get(json_object_get(o, k1), k2));
}

static int up(void *arg)
{
    return th_http(*(int *)arg, NULL, (const char *)"/readyz", NULL, NULL, NULL) == 200;
}

static void setup(void)
{
    redis = th_redis_start(0, NULL);
    dir = th_tempdir();
    sport = th_free_port();
    wport = th_free_port();
    char p[600];
#define FILE_AT(name, text)                                                                        \
    do {                                                                                           \
        snprintf(p, sizeof p, "%s/%s", dir, name);                                                 \
        th_write_file(p, text);                                                                    \
    } while (0)
    FILE_AT("secret", "sandbox-test-secret-0123456789");
    FILE_AT("gen.key", "generic-key-for-sandbox-test");
    FILE_AT("mg.key", "mailgun-key-for-sandbox-test");
    FILE_AT("pm.auth", "pm:hook-pass");
    FILE_AT("crm-hook", RELAY_KEY);
    char *text =
        hr_asprintf("redis-url unix://%s\nnamespace s\nsecret-file %s/secret\n"
                    "sendgrid-webhook-key-file %s/sg.pem\nmailgun-signing-key-file %s/mg.key\n"
                    "postmark-webhook-auth-file %s/pm.auth\nwebhook-hmac-key-file %s/gen.key\n"
                    "webhooks-listen 127.0.0.1:%d\ncredentials-dir %s\n"
                    "account webhook:crm base-url=http://127.0.0.1:1 path=/herald "
                    "credentials=crm-hook\n",
                    redis->sock, dir, dir, dir, dir, dir, wport, dir);
    char conf[600];
    snprintf(conf, sizeof conf, "%s/herald.conf", dir);
    th_write_file(conf, text);
    free(text);
    char listen[64], hooks[64], pub[600], log1[600], log2[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", sport);
    snprintf(hooks, sizeof hooks, "http://127.0.0.1:%d", wport);
    snprintf(pub, sizeof pub, "%s/sg.pem", dir);
    snprintf(log1, sizeof log1, "%s/sandbox.log", dir);
    snprintf(log2, sizeof log2, "%s/webhooks.log", dir);
    char *sb[] = {HERALD_BIN,
                  "--config",
                  conf,
                  "sandbox",
                  "--listen",
                  listen,
                  "--webhooks",
                  hooks,
                  "--sendgrid-pubkey-out",
                  pub,
                  "--seed",
                  "7",
                  "--auto-events",
                  NULL};
    sb_pid = th_spawn(sb, log1);
    if (!th_wait_for(up, &sport, 10000)) abort();
    char *wh[] = {HERALD_BIN, "--config", conf, "webhooks", NULL};
    wh_pid = th_spawn(wh, log2);
    if (!th_wait_for(up, &wport, 10000)) abort();
    free(th_redis_cmd(redis, "HSET {s}:done %s %s\t1700000000000\tx", JOB + 8, JOB));
}

static const char *bearer[] = {"Authorization: Bearer tok", "Content-Type: application/json", NULL};

static void test_x(void)
{
    resp r;
    req("POST", "/2/tweets", bearer, "{\"text\":\"hello from herald\"}", &r);
    CHECK_INT(r.status, 201);
    json_t *j = json_of(&r);
    const char *id = json_string_value(json_object_get(json_object_get(j, "data"), "id"));
    CHECK(id && strlen(id) >= 19);
    char path[100];
    snprintf(path, sizeof path, "/2/tweets/%s?tweet.fields=public_metrics", id ? id : "");
    resp_release(&r);
    req("GET", path, bearer, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"like_count\""));
    resp_release(&r);
    json_decref(j);
    const char *noauth[] = {"Content-Type: application/json", NULL};
    req("POST", "/2/tweets", noauth, "{\"text\":\"x\"}", &r);
    CHECK_INT(r.status, 401);
    resp_release(&r);
    char longt[400];
    memset(longt, 'a', 281);
    longt[281] = '\0';
    char *body = hr_asprintf("{\"text\":\"%s\"}", longt);
    req("POST", "/2/tweets", bearer, body, &r);
    CHECK_INT(r.status, 403);
    resp_release(&r);
    free(body);
    /* a URL counts 23 whatever its length */
    body = hr_asprintf("{\"text\":\"%.250s https://example.com/%s\"}", longt, longt);
    req("POST", "/2/tweets", bearer, body, &r);
    CHECK_INT(r.status, 201);
    resp_release(&r);
    free(body);
    req("POST", "/2/tweets", bearer, "{}", &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":", &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
}

/* repeat returns a new string of n copies of unit */
static char *repeat(const char *unit, int n)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_puts(&b, "");
    for (int i = 0; i < n; i++)
        hr_buf_puts(&b, unit);
    return hr_buf_detach(&b);
}

/* post_text POSTs {field: text} to path and returns the status */
static long post_text(const char *path, const char *field, const char *text)
{
    json_t *j = json_pack("{ss}", field, text);
    char *body = json_dumps(j, JSON_COMPACT);
    long st = status_of("POST", path, bearer, body);
    free(body);
    json_decref(j);
    return st;
}

/* lengths are counted as herald's platforms/ counts them (the real rules):
 * X weights CJK 2 and an emoji sequence 2; Mastodon counts graphemes and
 * only the user part of @user@domain */
static void test_lengths(void)
{
    char *t = repeat("\xe4\xb8\x80", 141); /* CJK: weight 282 */
    CHECK_INT(post_text("/2/tweets", "text", t), 403);
    free(t);
    t = repeat("\xe4\xb8\x80", 140); /* weight 280 */
    CHECK_INT(post_text("/2/tweets", "text", t), 201);
    free(t);
    /* 41 families (man ZWJ woman ZWJ girl ZWJ boy, 7 code points each):
     * weight 82 */
    t = repeat("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d"
               "\xf0\x9f\x91\xa7\xe2\x80\x8d\xf0\x9f\x91\xa6",
               41);
    CHECK_INT(post_text("/2/tweets", "text", t), 201);
    free(t);
    t = repeat("e\xcc\x81", 300); /* e + combining acute: 300 graphemes */
    CHECK_INT(post_text("/api/v1/statuses", "status", t), 200);
    free(t);
    t = repeat("e\xcc\x81", 501);
    CHECK_INT(post_text("/api/v1/statuses", "status", t), 422);
    free(t);
    char *a = repeat("a", 450), *dom = repeat("d", 56);
    t = hr_asprintf("%s @bob@%s.org", a, dom); /* 450 + " @bob" */
    CHECK_INT(post_text("/api/v1/statuses", "status", t), 200);
    free(t);
    free(a);
    free(dom);
    /* LinkedIn 3000, Threads 500, Facebook 63206: the limit is taken, one
     * more refused in the platform's own way */
    const char *li[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                        "LinkedIn-Version: 202401", "X-Restli-Protocol-Version: 2.0.0", NULL};
    const char *form[] = {"Authorization: Bearer tok",
                          "Content-Type: application/x-www-form-urlencoded", NULL};
    static const struct {
        const char *path, *head, *tail; /* the text goes between */
        int limit, form;
        long ok, over;
    } at_limit[] = {
        {"/rest/posts",
         "{\"author\":\"urn:li:organization:1\",\"commentary\":\"", "\",\"visibility\":"
         "\"PUBLIC\",\"distribution\":{\"feedDistribution\":\"MAIN_FEED\"},"
         "\"lifecycleState\":\"PUBLISHED\"}",
         3000, 0, 201, 422},
        {"/v1.0/1234567/threads", "media_type=TEXT&text=", "", 500, 1, 200, 400},
        {"/v19.0/1122334455/feed", "message=", "", 63206, 1, 200, 400},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(at_limit); i++)
        for (int extra = 0; extra < 2; extra++) {
            a = repeat("a", at_limit[i].limit + extra);
            t = hr_asprintf("%s%s%s", at_limit[i].head, a, at_limit[i].tail);
            long st = status_of("POST", at_limit[i].path, at_limit[i].form ? form : li, t);
            CHECK_INT(st, extra ? at_limit[i].over : at_limit[i].ok);
            if (st != (extra ? at_limit[i].over : at_limit[i].ok))
                fprintf(stderr, "  %s, %d characters: %ld\n", at_limit[i].path,
                        at_limit[i].limit + extra, st);
            free(t);
            free(a);
        }
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
}

static void test_idempotency(void)
{
    const char *h[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                       "Idempotency-Key: hr-idem-1", NULL};
    resp a, b;
    req("POST", "/api/v1/statuses", h, "{\"status\":\"once only\",\"visibility\":\"public\"}", &a);
    req("POST", "/api/v1/statuses", h, "{\"status\":\"once only\",\"visibility\":\"public\"}", &b);
    CHECK_INT(a.status, 200);
    CHECK_INT(b.status, 200);
    CHECK_STR(a.body.data, b.body.data);
    resp_release(&a);
    resp_release(&b);
    req("GET", "/_sandbox/posts?platform=mastodon", NULL, NULL, &a);
    json_t *j = json_of(&a);
    CHECK_INT(json_integer_value(json_object_get(j, "count")), 1);
    CHECK_INT(json_integer_value(json_object_get(j, "duplicates")), 1);
    json_t *p0 = json_array_get(json_object_get(j, "posts"), 0);
    CHECK_STR(json_string_value(json_object_get(p0, "idempotency_key")), "hr-idem-1");
    CHECK_STR(json_string_value(json_object_get(json_object_get(p0, "body"), "status")),
              "once only");
    json_decref(j);
    resp_release(&a);
    char big[600];
    memset(big, 'b', 501);
    big[501] = '\0';
    char *body = hr_asprintf("{\"status\":\"%s\"}", big);
    req("POST", "/api/v1/statuses", bearer, body, &a);
    CHECK_INT(a.status, 422);
    CHECK(strstr(a.body.data, "character limit of 500"));
    resp_release(&a);
    free(body);
}

/* hdr_value copies the value of answer header name from r into out */
static void hdr_value(const resp *r, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = r->hdrs.data; p && *p;) {
        size_t n = strlen(name);
        if (!strncasecmp(p, name, n) && p[n] == ':')
            snprintf(out, cap, "%.*s", (int)strcspn(p + n + 2, "\r\n"), p + n + 2);
        p = strchr(p, '\n');
        if (p) p++;
    }
}

/* taken_dups returns how many records of kind /_sandbox/posts lists for
 * platform and sets *dups to their duplicates */
static long taken_dups(const char *platform, const char *kind, long *dups)
{
    char path[100];
    snprintf(path, sizeof path, "/_sandbox/posts?platform=%s&kind=%s", platform, kind);
    resp r;
    req("GET", path, NULL, NULL, &r);
    json_t *j = json_of(&r);
    long n = (long)json_integer_value(json_object_get(j, "count"));
    *dups = (long)json_integer_value(json_object_get(j, "duplicates"));
    json_decref(j);
    resp_release(&r);
    return n;
}

/* bsky_login logs identifier in; returns the session's answer (owned) and
 * writes its "Authorization: Bearer <accessJwt>" header into auth */
static json_t *bsky_login(const char *identifier, char *auth, size_t cap)
{
    const char *ct[] = {"Content-Type: application/json", NULL};
    char *body = hr_asprintf("{\"identifier\":\"%s\",\"password\":\"p\"}", identifier);
    resp r;
    req("POST", "/xrpc/com.atproto.server.createSession", ct, body, &r);
    json_t *ss = json_of(&r);
    resp_release(&r);
    free(body);
    snprintf(auth, cap, "Authorization: Bearer %s",
             json_string_value(json_object_get(ss, "accessJwt")));
    return ss;
}

/* every route that makes something honours a repeated Idempotency-Key (the
 * first answer again, counted as a duplicate), per account and path; a
 * different key is a second post */
static void test_idempotency_everywhere(void)
{
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
    char bsky_auth[200];
    json_t *ss = bsky_login("idem.bsky.social", bsky_auth, sizeof bsky_auth);
    char *bsky_body = hr_asprintf("{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\","
                                  "\"record\":{\"text\":\"once\",\"createdAt\":"
                                  "\"2026-11-21T20:40:16Z\"}}",
                                  json_string_value(json_object_get(ss, "did")));
    const char *json = "Content-Type: application/json";
    const char *form = "Content-Type: application/x-www-form-urlencoded";
    struct {
        const char *platform, *kind, *path, *hdrs[4], *body, *id_header;
    } cases[] = {
        {"x",
         "post",
         "/2/tweets",
         {"Authorization: Bearer tok", json},
         "{\"text\":\"once\"}",
         NULL},
        {"mastodon",
         "post",
         "/api/v1/statuses",
         {"Authorization: Bearer tok", json},
         "{\"status\":\"once\"}",
         NULL},
        {"bluesky",
         "post",
         "/xrpc/com.atproto.repo.createRecord",
         {bsky_auth, json},
         bsky_body,
         NULL},
        {"linkedin",
         "post",
         "/rest/posts",
         {"Authorization: Bearer tok", "LinkedIn-Version: 202401",
          "X-Restli-Protocol-Version: 2.0.0", json},
         "{\"author\":\"urn:li:organization:1\",\"commentary\":\"once\",\"visibility\":"
         "\"PUBLIC\",\"distribution\":{\"feedDistribution\":\"MAIN_FEED\"},"
         "\"lifecycleState\":\"PUBLISHED\"}",
         "x-restli-id"},
        {"threads",
         "container",
         "/v1.0/1234567/threads",
         {"Authorization: Bearer tok", form},
         "media_type=TEXT&text=once",
         NULL},
        {"facebook",
         "post",
         "/v19.0/1122334455/feed",
         {"Authorization: Bearer tok", form},
         "message=once",
         NULL},
        {"sendgrid",
         "email",
         "/v3/mail/send",
         {"Authorization: Bearer tok", json},
         "{\"personalizations\":[{\"to\":[{\"email\":\"ann@example.com\"}]}],\"from\":{"
         "\"email\":\"a@shop.example\"},\"subject\":\"s\",\"content\":[{\"type\":"
         "\"text/plain\",\"value\":\"x\"}]}",
         "X-Message-Id"},
        {"mailgun",
         "email",
         "/v3/mg.shop.example/messages",
         {"Authorization: Basic YXBpOmtleS10ZXN0", form},
         "from=a%40b.c&to=x%40y.z&subject=s&text=x",
         NULL},
        {"postmark",
         "email",
         "/email",
         {"X-Postmark-Server-Token: tok", json},
         "{\"From\":\"a@b.c\",\"To\":\"c@d.e\",\"Subject\":\"s\",\"TextBody\":\"x\"}",
         NULL},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        char k1[64], k2[64];
        snprintf(k1, sizeof k1, "Idempotency-Key: once-%zu", i);
        snprintf(k2, sizeof k2, "Idempotency-Key: other-%zu", i);
        const char *h1[6] = {0}, *h2[6] = {0};
        int nh = 0;
        for (; nh < 4 && cases[i].hdrs[nh]; nh++)
            h1[nh] = h2[nh] = cases[i].hdrs[nh];
        h1[nh] = k1;
        h2[nh] = k2;
        const char *const *h1c = h1, *const *h2c = h2;
        resp a, b;
        req("POST", cases[i].path, h1c, cases[i].body, &a);
        req("POST", cases[i].path, h1c, cases[i].body, &b);
        if (a.status / 100 != 2) fprintf(stderr, "  %s: %s\n", cases[i].platform, a.body.data);
        CHECK_INT(a.status / 100, 2);
        CHECK_INT(b.status, a.status);
        CHECK_STR(b.body.data, a.body.data);
        if (cases[i].id_header) {
            char ida[128], idb[128];
            hdr_value(&a, cases[i].id_header, ida, sizeof ida);
            hdr_value(&b, cases[i].id_header, idb, sizeof idb);
            CHECK(ida[0] != '\0');
            CHECK_STR(idb, ida);
        }
        long dups = -1;
        CHECK_INT(taken_dups(cases[i].platform, cases[i].kind, &dups), 1);
        CHECK_INT(dups, 1);
        resp_release(&b);
        /* another key: a second post */
        req("POST", cases[i].path, h2c, cases[i].body, &b);
        CHECK_INT(b.status, a.status);
        CHECK_INT(taken_dups(cases[i].platform, cases[i].kind, &dups), 2);
        CHECK_INT(dups, 1);
        resp_release(&a);
        resp_release(&b);
    }
    free(bsky_body);
    json_decref(ss);
    /* Mastodon keeps keys per account: another token's key is its own */
    const char *ann[] = {"Authorization: Bearer ann", json, "Idempotency-Key: shared", NULL};
    const char *bob[] = {"Authorization: Bearer bob", json, "Idempotency-Key: shared", NULL};
    resp a, b;
    req("POST", "/api/v1/statuses", ann, "{\"status\":\"ann's\"}", &a);
    req("POST", "/api/v1/statuses", bob, "{\"status\":\"bob's\"}", &b);
    CHECK_INT(b.status, 200);
    json_t *ja = json_of(&a), *jb = json_of(&b);
    CHECK(strcmp(json_string_value(json_object_get(ja, "id")),
                 json_string_value(json_object_get(jb, "id"))) != 0);
    CHECK(strstr(b.body.data, "bob&#39;s") || strstr(b.body.data, "bob's"));
    json_decref(ja);
    json_decref(jb);
    resp_release(&a);
    resp_release(&b);
    /* the relay keeps keys per path */
    const char *rb = "{\"text\":\"relayed\"}";
    unsigned char mac[32];
    char hex[65], sig[100];
    hr_hmac_sha256(RELAY_KEY, strlen(RELAY_KEY), rb, strlen(rb), mac);
    hr_hex(mac, 32, hex);
    snprintf(sig, sizeof sig, "X-Herald-Signature: sha256=%s", hex);
    const char *rh[] = {sig, json, "Idempotency-Key: relay-1", NULL};
    req("POST", "/crm/one", rh, rb, &a);
    req("POST", "/crm/two", rh, rb, &b);
    CHECK_INT(a.status, 200);
    CHECK_INT(b.status, 200);
    CHECK(strcmp(a.body.data, b.body.data) != 0);
    resp_release(&a);
    resp_release(&b);
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
}

/* fault_set POSTs a fault setting and returns the status */
static long fault_set(const char *json)
{
    return status_of("POST", "/_sandbox/faults", NULL, json);
}

/* every request is recorded with its status: by default /_sandbox/posts
 * lists what the platforms answered (as before); ?all=1 adds faulted,
 * replayed, unrouted requests and reads, each saying whether it created a
 * post */
static void test_record_everything(void)
{
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
    const char *noauth[] = {"Content-Type: application/json", NULL};
    const char *keyed[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                           "Idempotency-Key: rec-1", NULL};
    CHECK_INT(status_of("POST", "/2/tweets", noauth, "{\"text\":\"x\"}"), 401);
    CHECK_INT(status_of("POST", "/2/tweets", bearer, "{}"), 400);
    CHECK_INT(status_of("POST", "/2/tweets", keyed, "{\"text\":\"kept\"}"), 201);
    CHECK_INT(status_of("POST", "/2/tweets", keyed, "{\"text\":\"kept\"}"), 201); /* replay */
    CHECK_INT(status_of("GET", "/2/tweets/404404", bearer, NULL), 404);
    CHECK_INT(status_of("GET", "/nowhere", NULL, NULL), 404);
    CHECK_INT(fault_set("{\"platform\":\"x\",\"rate429\":1}"), 200);
    CHECK_INT(status_of("POST", "/2/tweets", bearer, "{\"text\":\"a\"}"), 429);
    CHECK_INT(fault_set("{\"platform\":\"x\",\"rate500\":1}"), 200);
    CHECK_INT(status_of("POST", "/2/tweets", bearer, "{\"text\":\"b\"}"), 500);
    CHECK_INT(fault_set("{\"platform\":\"x\",\"drop\":1}"), 200);
    CHECK_INT(status_of("POST", "/2/tweets", bearer, "{\"text\":\"c\"}"), 0);
    CHECK_INT(fault_set("{\"platform\":\"x\",\"rate4xx\":1}"), 200);
    CHECK_INT(status_of("POST", "/2/tweets", bearer, "{\"text\":\"d\"}"), 403);
    CHECK_INT(fault_set("{\"platform\":\"x\"}"), 200);
    resp r;
    req("GET", "/_sandbox/posts", NULL, NULL, &r);
    json_t *j = json_of(&r);
    resp_release(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "count")), 3); /* 401, 400, 201 */
    CHECK_INT(json_integer_value(json_object_get(j, "duplicates")), 1);
    json_decref(j);
    req("GET", "/_sandbox/posts?all=1", NULL, NULL, &r);
    j = json_of(&r);
    resp_release(&r);
    /* in the order received: status, fault, created */
    static const struct {
        const char *path;
        int status;
        const char *fault;
        int created;
    } want[] = {
        {"/2/tweets", 401, NULL, 0},        {"/2/tweets", 400, NULL, 0},
        {"/2/tweets", 201, NULL, 1},        {"/2/tweets", 201, NULL, 0},
        {"/2/tweets/404404", 404, NULL, 0}, {"/nowhere", 404, NULL, 0},
        {"/2/tweets", 429, "429", 0},       {"/2/tweets", 500, "500", 0},
        {"/2/tweets", 0, "drop", 0},        {"/2/tweets", 403, "refusal", 0},
    };
    json_t *posts = json_object_get(j, "posts");
    CHECK_INT(json_array_size(posts), HR_ARRAY_LEN(want));
    for (size_t i = 0; i < HR_ARRAY_LEN(want) && i < json_array_size(posts); i++) {
        json_t *p = json_array_get(posts, i);
        CHECK_STR(json_string_value(json_object_get(p, "path")), want[i].path);
        CHECK_INT(json_integer_value(json_object_get(p, "status")), want[i].status);
        CHECK(hr_streq(json_string_value(json_object_get(p, "fault")), want[i].fault));
        CHECK_INT(json_is_true(json_object_get(p, "created")), want[i].created);
    }
    CHECK(json_is_true(json_object_get(json_array_get(posts, 3), "replay")));
    CHECK_STR(json_string_value(json_object_get(json_array_get(posts, 5), "kind")), "unrouted");
    CHECK_INT(json_integer_value(json_object_get(j, "duplicates")), 1);
    json_decref(j);
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
}

/* GET /api/v1/statuses/<id> answers the whole Status, as the create answer
 * gave it, with its counts; the account's list gives the same */
static void test_mastodon_status(void)
{
    json_t *made = json_answer("POST", "/api/v1/statuses", bearer,
                               "{\"status\":\"whole\",\"visibility\":\"unlisted\"}", 200);
    char path[100];
    snprintf(path, sizeof path, "/api/v1/statuses/%s",
             json_string_value(json_object_get(made, "id")));
    json_t *got = json_answer("GET", path, bearer, NULL, 200);
    json_t *list = json_answer("GET", "/api/v1/accounts/1/statuses?limit=1", bearer, NULL, 200);
    json_t *listed = json_array_get(list, 0);
    static const char *const keys[] = {"id",         "uri",     "url",       "content",
                                       "created_at", "account", "visibility"};
    for (size_t i = 0; i < HR_ARRAY_LEN(keys); i++) {
        json_t *v = json_object_get(made, keys[i]);
        CHECK(v != NULL);
        CHECK(json_equal(v, json_object_get(got, keys[i])));
        CHECK(json_equal(v, json_object_get(listed, keys[i])));
    }
    CHECK_STR(json_string_value(json_object_get(got, "visibility")), "unlisted");
    CHECK(json_string_value(json_object_get(json_object_get(got, "account"), "acct")) != NULL);
    static const char *const counts[] = {"favourites_count", "reblogs_count", "replies_count"};
    for (size_t i = 0; i < HR_ARRAY_LEN(counts); i++)
        CHECK(json_is_integer(json_object_get(got, counts[i])));
    json_decref(made);
    json_decref(got);
    json_decref(list);
}

static void test_bluesky(void)
{
    resp r;
    const char *ct[] = {"Content-Type: application/json", NULL};
    req("POST", "/xrpc/com.atproto.server.createSession", ct,
        "{\"identifier\":\"shop.bsky.social\",\"password\":\"app-pass\"}", &r);
    CHECK_INT(r.status, 200);
    json_t *s = json_of(&r);
    resp_release(&r);
    const char *acc = json_string_value(json_object_get(s, "accessJwt"));
    const char *ref = json_string_value(json_object_get(s, "refreshJwt"));
    const char *did = json_string_value(json_object_get(s, "did"));
    REQUIRE(acc && ref && did);
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", acc);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    char *body = hr_asprintf("{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"rkey\":"
                             "\"3kq2abcdefghi\",\"record\":{\"$type\":\"app.bsky.feed.post\","
                             "\"text\":\"hello bluesky\",\"createdAt\":\"2026-11-21T20:40:16Z\"}}",
                             did);
    req("POST", "/xrpc/com.atproto.repo.createRecord", h, body, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "app.bsky.feed.post/3kq2abcdefghi"));
    resp_release(&r);
    req("POST", "/xrpc/com.atproto.repo.createRecord", h, body, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "already exists"));
    resp_release(&r);
    char path[300];
    snprintf(path, sizeof path,
             "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=app.bsky.feed.post&rkey="
             "3kq2abcdefghi",
             did);
    req("GET", path, h, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    snprintf(path, sizeof path,
             "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=app.bsky.feed.post&rkey=nope",
             did);
    req("GET", path, h, NULL, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "RecordNotFound"));
    resp_release(&r);
    /* sessions expire; a refresh brings a working one */
    req("POST", "/_sandbox/expire-sessions", NULL, "", &r);
    resp_release(&r);
    free(body);
    body = hr_asprintf("{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"rkey\":"
                       "\"3kq2zzzzzzzzz\",\"record\":{\"text\":\"again\",\"createdAt\":"
                       "\"2026-11-21T20:40:16Z\"}}",
                       did);
    req("POST", "/xrpc/com.atproto.repo.createRecord", h, body, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "ExpiredToken"));
    resp_release(&r);
    char rauth[200];
    snprintf(rauth, sizeof rauth, "Authorization: Bearer %s", ref);
    const char *rh[] = {rauth, NULL};
    req("POST", "/xrpc/com.atproto.server.refreshSession", rh, "", &r);
    CHECK_INT(r.status, 200);
    json_t *s2 = json_of(&r);
    resp_release(&r);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s",
             json_string_value(json_object_get(s2, "accessJwt")));
    req("POST", "/xrpc/com.atproto.repo.createRecord", h, body, &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    /* too long: 301 graphemes */
    char t[400];
    memset(t, 'g', 301);
    t[301] = '\0';
    free(body);
    body = hr_asprintf("{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"record\":"
                       "{\"text\":\"%s\",\"createdAt\":\"2026-11-21T20:40:16Z\"}}",
                       did, t);
    req("POST", "/xrpc/com.atproto.repo.createRecord", h, body, &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
    free(body);
    json_decref(s);
    json_decref(s2);
}

static void test_linkedin_threads_facebook(void)
{
    resp r;
    const char *li[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                        "LinkedIn-Version: 202401", "X-Restli-Protocol-Version: 2.0.0", NULL};
    const char *post = "{\"author\":\"urn:li:organization:5515715\",\"commentary\":\"hi\","
                       "\"visibility\":\"PUBLIC\",\"distribution\":{\"feedDistribution\":"
                       "\"MAIN_FEED\"},\"lifecycleState\":\"PUBLISHED\"}";
    req("POST", "/rest/posts", li, post, &r);
    CHECK_INT(r.status, 201);
    CHECK(strstr(r.hdrs.data, "x-restli-id: urn:li:share:"));
    resp_release(&r);
    req("POST", "/rest/posts", bearer, post, &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);

    const char *form[] = {"Authorization: Bearer tok",
                          "Content-Type: application/x-www-form-urlencoded", NULL};
    json_t *c = json_answer("POST", "/v1.0/1234567/threads", form,
                            "media_type=TEXT&text=hello+threads", 200);
    char *pub = hr_asprintf("creation_id=%s", json_string_value(json_object_get(c, "id")));
    json_t *m = json_answer("POST", "/v1.0/1234567/threads_publish", form, pub, 200);
    req("POST", "/v1.0/1234567/threads_publish", form, pub, &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
    char path[200];
    snprintf(path, sizeof path, "/v1.0/%s/insights?metric=likes,replies",
             json_string_value(json_object_get(m, "id")));
    req("GET", path, form, NULL, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"likes\""));
    resp_release(&r);
    free(pub);
    json_decref(c);
    json_decref(m);
    req("POST", "/v1.0/1234567/threads", form, "text=no+type", &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);

    req("POST", "/v19.0/1122334455/feed", form, "message=hello+page&link=https%3A%2F%2Fx.y", &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"1122334455_"));
    resp_release(&r);
    const char *bad[] = {"Authorization: Bearer invalid",
                         "Content-Type: application/x-www-form-urlencoded", NULL};
    req("POST", "/v19.0/1122334455/feed", bad, "message=x", &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "\"code\":190"));
    resp_release(&r);
}

/* threads_post publishes text (form-encoded) as Threads user uid: a
 * container, then its publication; returns the post's id (new string). */
static char *threads_post(const char *uid, const char *text)
{
    const char *form[] = {"Authorization: Bearer tok",
                          "Content-Type: application/x-www-form-urlencoded", NULL};
    char path[96], body[160];
    snprintf(path, sizeof path, "/v1.0/%s/threads", uid);
    snprintf(body, sizeof body, "media_type=TEXT&text=%s", text);
    json_t *c = json_answer("POST", path, form, body, 200);
    snprintf(path, sizeof path, "/v1.0/%s/threads_publish", uid);
    snprintf(body, sizeof body, "creation_id=%s", json_string_value(json_object_get(c, "id")));
    json_t *m = json_answer("POST", path, form, body, 200);
    char *id = hr_strdup(json_string_value(json_object_get(m, "id")));
    json_decref(c);
    json_decref(m);
    return id;
}

/* meta_page GETs a Graph list page (path, or the absolute paging.next of
 * the last page, which must point back at the sandbox) and checks that its
 * posts are ids[0..n) in that order and that a next page is offered when
 * more is set; returns the answer. */
static json_t *meta_page(const char *path, const char *const *ids, size_t n, int more)
{
    CHECK(path != NULL);
    if (!path) return NULL;
    char own[64];
    int l = snprintf(own, sizeof own, "http://127.0.0.1:%d/", sport);
    if (strncmp(path, "http", 4) == 0) {
        CHECK(strncmp(path, own, (size_t)l) == 0);
        path += l - 1;
    }
    json_t *j = json_answer("GET", path, bearer, NULL, 200);
    json_t *data = json_object_get(j, "data");
    CHECK_INT(json_array_size(data), n);
    for (size_t i = 0; i < n && i < json_array_size(data); i++)
        CHECK_STR(json_string_value(json_object_get(json_array_get(data, i), "id")), ids[i]);
    json_t *paging = json_object_get(j, "paging");
    CHECK(!n || json_string_value(json_object_get(json_object_get(paging, "cursors"), "after")));
    CHECK_INT(json_string_value(json_object_get(paging, "next")) != NULL, more);
    return j;
}

/* Facebook's /feed and Threads' /threads list like Graph: one page's or
 * user's posts, newest first, limit, created_time/timestamp in Meta's
 * form, cursor paging with an absolute paging.next until the list ends. */
static void test_meta_lists(void)
{
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
    const char *form[] = {"Authorization: Bearer tok",
                          "Content-Type: application/x-www-form-urlencoded", NULL};
    char *fb[5], *th[3];
    for (int i = 0; i < 5; i++) {
        char body[64];
        snprintf(body, sizeof body, "message=post+%d", i);
        json_t *a = json_answer("POST", "/v19.0/1122334455/feed", form, body, 200);
        fb[4 - i] = hr_strdup(json_string_value(json_object_get(a, "id"))); /* newest first */
        json_decref(a);
        json_decref(json_answer("POST", "/v19.0/99/feed", form, "message=another+page", 200));
    }
    for (int i = 0; i < 3; i++) {
        char text[32];
        snprintf(text, sizeof text, "thread+%d", i);
        th[2 - i] = threads_post("1234567", text);
        free(threads_post("42", "other"));
    }

    /* the feed's default fields; page by page to the list's end */
    json_t *p1 = meta_page("/v19.0/1122334455/feed?limit=2", (const char *const *)fb, 2, 1);
    json_t *post = json_array_get(json_object_get(p1, "data"), 0);
    CHECK_STR(json_string_value(json_object_get(post, "message")), "post 4");
    const char *ts = json_string_value(json_object_get(post, "created_time"));
    CHECK(ts && strlen(ts) == 24 && strcmp(ts + 19, "+0000") == 0);
    json_t *p2 = meta_page(jstr_at(p1, "paging", "next"), (const char *const *)fb + 2, 2, 1);
    json_t *p3 = meta_page(jstr_at(p2, "paging", "next"), (const char *const *)fb + 4, 1, 0);
    /* the after cursor without next: the list's end, an empty page */
    char path[200];
    snprintf(path, sizeof path, "/v19.0/1122334455/feed?after=%s",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(p3, "paging"), "cursors"), "after")));
    json_decref(meta_page(path, NULL, 0, 0));
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);
    json_decref(meta_page("/v19.0/1122334455/feed?limit=500", (const char *const *)fb, 5, 0));

    /* Threads: only the fields asked for (id alone by default) */
    p1 = meta_page("/v1.0/1234567/threads?fields=id,text,timestamp&limit=2",
                   (const char *const *)th, 2, 1);
    post = json_array_get(json_object_get(p1, "data"), 1);
    CHECK_STR(json_string_value(json_object_get(post, "text")), "thread 1");
    CHECK(json_string_value(json_object_get(post, "timestamp")) != NULL);
    p2 = meta_page(jstr_at(p1, "paging", "next"), (const char *const *)th + 2, 1, 0);
    post = json_array_get(json_object_get(p2, "data"), 0);
    CHECK_STR(json_string_value(json_object_get(post, "text")), "thread 0");
    json_decref(p1);
    json_decref(p2);
    p1 = meta_page("/v1.0/1234567/threads", (const char *const *)th, 3, 0);
    CHECK_INT(json_object_size(json_array_get(json_object_get(p1, "data"), 0)), 1);
    json_decref(p1);

    const char *bad[] = {"Authorization: Bearer invalid", NULL};
    json_t *e = json_answer("GET", "/v19.0/1122334455/feed", bad, NULL, 400);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(e, "error"), "code")), 190);
    json_decref(e);
    CHECK_INT(status_of("GET", "/v1.0/1234567/threads?after=nonsense", bearer, NULL), 400);
    for (int i = 0; i < 5; i++)
        free(fb[i]);
    for (int i = 0; i < 3; i++)
        free(th[i]);
}

static int counted(void *arg)
{
    char *v = th_redis_cmd(redis, "HGET {s}:eng:jobs %s", (const char *)arg);
    int ok = v && atol(v) >= 1;
    free(v);
    return ok;
}

static int counted_twice(void *arg)
{
    char *v = th_redis_cmd(redis, "HGET {s}:eng:jobs %s", (const char *)arg);
    int ok = v && atol(v) >= 2;
    free(v);
    return ok;
}

/* post_says POSTs body to path with hdrs and checks the answer's status
 * and that its body holds text */
static void post_says(const char *path, const char *const *hdrs, const char *body, long status,
                      const char *text)
{
    resp r;
    req("POST", path, hdrs, body, &r);
    CHECK_INT(r.status, status);
    if (!strstr(r.body.data, text)) fprintf(stderr, "  %s: %s\n", path, r.body.data);
    CHECK(strstr(r.body.data, text) != NULL);
    resp_release(&r);
}

/* requests are validated as the real APIs validate them, with their error
 * shapes; a bad fault setting is refused naming its key and value, and
 * changes nothing */
static void test_validation(void)
{
    const char *li[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                        "LinkedIn-Version: 202401", "X-Restli-Protocol-Version: 2.0.0", NULL};
#define LI_POST(author, vis, dist)                                                                 \
    "{\"author\":\"" author "\",\"commentary\":\"hi\",\"visibility\":\"" vis "\"" dist             \
    ",\"lifecycleState\":\"PUBLISHED\"}"
#define LI_DIST ",\"distribution\":{\"feedDistribution\":\"MAIN_FEED\"}"
    post_says("/rest/posts", li, LI_POST("urn:li:organization:1", "FOO", LI_DIST), 422,
              "ERROR :: /visibility :: \\\"FOO\\\" is not an enum symbol");
    post_says("/rest/posts", li, LI_POST("bob", "PUBLIC", LI_DIST), 422,
              "processing fields [/author]");
    post_says("/rest/posts", li, LI_POST("urn:li:person:", "PUBLIC", LI_DIST), 422, "[/author]");
    post_says("/rest/posts", li, LI_POST("urn:li:organization:1", "PUBLIC", ""), 422,
              "ERROR :: /distribution :: field is required");
    CHECK_INT(status_of("POST", "/rest/posts", li,
                        LI_POST("urn:li:person:a1B-2", "CONNECTIONS", LI_DIST)),
              201);

    char auth[200], other[200];
    json_t *ann = bsky_login("ann.bsky.social", auth, sizeof auth);
    json_t *bob = bsky_login("bob.bsky.social", other, sizeof other);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
#define BSKY_POST                                                                                  \
    "{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"record\":{\"text\":\"hi\","          \
    "\"createdAt\":\"2026-11-21T20:40:16Z\"}}"
    char *body = hr_asprintf(BSKY_POST, json_string_value(json_object_get(bob, "did")));
    post_says("/xrpc/com.atproto.repo.createRecord", h, body, 401, "\"AuthenticationRequired\"");
    free(body);
    body = hr_asprintf(BSKY_POST, "did:plc:nobody");
    post_says("/xrpc/com.atproto.repo.createRecord", h, body, 400,
              "Could not find repo: did:plc:nobody");
    free(body);
    /* its own handle is its repo too */
    char *uri = hr_asprintf("\"at://%s/app.bsky.feed.post/",
                            json_string_value(json_object_get(ann, "did")));
    body = hr_asprintf(BSKY_POST, "ann.bsky.social");
    post_says("/xrpc/com.atproto.repo.createRecord", h, body, 200, uri);
    free(body);
    free(uri);
    json_decref(ann);
    json_decref(bob);

    CHECK_INT(fault_set("{\"platform\":\"x\",\"slow_ms\":1}"), 200);
    post_says("/_sandbox/faults", NULL, "{\"platform\":\"nope\",\"rate500\":1}", 400,
              "platform must be");
    post_says("/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate_429\":0.5}", 400,
              "unknown key \\\"rate_429\\\"");
    post_says("/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate429\":\"0.5\"}", 400,
              "rate429 must be a number from 0 to 1, not \\\"0.5\\\"");
    post_says("/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate429\":7}", 400,
              "rate429 must be a number from 0 to 1, not 7");
    post_says("/_sandbox/faults", NULL, "{\"platform\":\"x\",\"slow_ms\":-5}", 400,
              "slow_ms must be a whole number");
    post_says("/_sandbox/faults", NULL, "[{\"platform\":\"x\"},{\"platform\":\"x\",\"drop\":2}]",
              400, "drop must be");
    /* none of those changed x's fault */
    resp r;
    req("GET", "/_sandbox/faults", NULL, NULL, &r);
    CHECK(strstr(r.body.data, "\"slow_ms\":1,") != NULL);
    resp_release(&r);
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
}

/* the Graph API takes its parameters, access_token too, in the query string
 * or the form alike; a multipart form (curl -F) is answered 415 with a
 * message saying what to send instead, in Mailgun's own shape */
static void test_bodies(void)
{
    resp r;
    req("POST", "/v1.0/123/threads?access_token=t&media_type=TEXT&text=hi", NULL, "", &r);
    CHECK_INT(r.status, 200);
    json_t *c = json_of(&r);
    resp_release(&r);
    char *path = hr_asprintf("/v1.0/123/threads_publish?access_token=t&creation_id=%s",
                             json_string_value(json_object_get(c, "id")));
    CHECK_INT(status_of("POST", path, NULL, ""), 200);
    free(path);
    json_decref(c);
    CHECK_INT(status_of("POST", "/v1.0/123/threads?media_type=TEXT&text=hi", NULL, ""), 400);
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    req("POST", "/v19.0/1122334455/feed", form, "access_token=t&message=hello", &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"1122334455_"));
    resp_release(&r);
    req("POST", "/v19.0/1122334455/feed", form, "access_token=invalid&message=hello", &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "\"code\":190"));
    resp_release(&r);

    CURL *h = curl_easy_init();
    char url[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v3/mg.shop.example/messages", sport);
    curl_mime *m = curl_mime_init(h);
    const char *fields[][2] = {{"from", "a@b.c"}, {"to", "x@y.z"}, {"subject", "s"}, {"text", "x"}};
    for (size_t i = 0; i < HR_ARRAY_LEN(fields); i++) {
        curl_mimepart *part = curl_mime_addpart(m);
        curl_mime_name(part, fields[i][0]);
        curl_mime_data(part, fields[i][1], CURL_ZERO_TERMINATED);
    }
    hr_buf body;
    hr_buf_init(&body);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(h, CURLOPT_USERPWD, "api:key-test");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    CHECK_INT(status, 415);
    json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    CHECK(msg && strstr(msg, "application/x-www-form-urlencoded"));
    json_decref(j);
    hr_buf_release(&body);
    curl_mime_free(m);
    curl_easy_cleanup(h);
}

static void test_emails_and_loop(void)
{
    resp r;
    char *sg = hr_asprintf(
        "{\"personalizations\":[{\"to\":[{\"email\":\"ann@example.com\"}]}],\"from\":{\"email\":"
        "\"news@shop.example\"},\"subject\":\"Hi\",\"content\":[{\"type\":\"text/plain\",\"value\":"
        "\"x\"}],\"custom_args\":{\"herald_job\":\"%s\",\"herald_campaign\":\"spring\"}}",
        JOB);
    req("POST", "/v3/mail/send", bearer, sg, &r);
    CHECK_INT(r.status, 202);
    char *mid = strcasestr(r.hdrs.data, "X-Message-Id: ");
    CHECK(mid != NULL);
    char msgid[64] = "";
    if (mid) sscanf(mid + 14, "%63[^\r\n]", msgid);
    resp_release(&r);
    free(sg);
    req("POST", "/v3/mail/send", bearer, "{\"personalizations\":[]}", &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "\"errors\""));
    resp_release(&r);
    /* --auto-events: SendGrid's signed "delivered" reached herald webhooks */
    char field[100];
    snprintf(field, sizeof field, "%s|delivered", JOB);
    CHECK(th_wait_for(counted, field, 10000));
    /* an open, delivered twice by the provider, counted once */
    char *ev = hr_asprintf("{\"id\":\"%s\",\"type\":\"open\",\"repeat\":2}", msgid);
    req("POST", "/_sandbox/events", NULL, ev, &r);
    CHECK_INT(r.status, 202);
    resp_release(&r);
    free(ev);
    snprintf(field, sizeof field, "%s|open", JOB);
    CHECK(th_wait_for(counted, field, 10000));

    const char *mg[] = {"Authorization: Basic YXBpOmtleS10ZXN0", /* api:key-test */
                        "Content-Type: application/x-www-form-urlencoded", NULL};
    char *form =
        hr_asprintf("from=news%%40shop.example&to=Bob+%%3Cbob%%40example.com%%3E&subject=Hi"
                    "&text=x&v%%3Aherald-job=%s&o%%3Atag=spring",
                    JOB);
    req("POST", "/v3/mg.shop.example/messages", mg, form, &r);
    CHECK_INT(r.status, 200);
    json_t *j = json_of(&r);
    resp_release(&r);
    ev = hr_asprintf("{\"id\":\"%s\",\"type\":\"click\"}",
                     json_string_value(json_object_get(j, "id")));
    req("POST", "/_sandbox/events", NULL, ev, &r);
    CHECK_INT(r.status, 202);
    resp_release(&r);
    free(ev);
    json_decref(j);
    snprintf(field, sizeof field, "%s|click", JOB);
    CHECK(th_wait_for(counted, field, 10000));
    req("POST", "/v3/mg.shop.example/messages", mg, "from=a%40b.c&to=x%40y.z", &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
    free(form);

    const char *pm[] = {"X-Postmark-Server-Token: tok", "Content-Type: application/json",
                        "Accept: application/json", NULL};
    char *pb = hr_asprintf("{\"From\":\"news@shop.example\",\"To\":\"Cy <cy@example.com>\","
                           "\"Subject\":\"Hi\",\"TextBody\":\"x\",\"Metadata\":{\"herald_job\":"
                           "\"%s\"}}",
                           JOB);
    req("POST", "/email", pm, pb, &r);
    CHECK_INT(r.status, 200);
    j = json_of(&r);
    resp_release(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "ErrorCode")), 0);
    ev = hr_asprintf("{\"id\":\"%s\",\"type\":\"bounce\"}",
                     json_string_value(json_object_get(j, "MessageID")));
    req("POST", "/_sandbox/events", NULL, ev, &r);
    CHECK_INT(r.status, 202);
    resp_release(&r);
    free(ev);
    json_decref(j);
    free(pb);
    snprintf(field, sizeof field, "%s|bounce", JOB);
    CHECK(th_wait_for(counted, field, 10000));
    req("POST", "/email", pm, "{\"From\":\"a@b.c\",\"To\":\"nobody\",\"Subject\":\"s\"}", &r);
    CHECK_INT(r.status, 422);
    resp_release(&r);

    /* a social post: matched by the platform id the worker recorded */
    req("POST", "/2/tweets", bearer, "{\"text\":\"loop\"}", &r);
    j = json_of(&r);
    resp_release(&r);
    const char *pid = json_string_value(json_object_get(json_object_get(j, "data"), "id"));
    REQUIRE(pid);
    free(th_redis_cmd(redis, "HSET {s}:platform_ids x:%s %s\tlaunch", pid, JOB));
    ev = hr_asprintf("{\"id\":\"%s\",\"type\":\"like\"}", pid);
    req("POST", "/_sandbox/events", NULL, ev, &r);
    CHECK_INT(r.status, 202);
    resp_release(&r);
    free(ev);
    json_decref(j);
    snprintf(field, sizeof field, "%s|like", JOB);
    CHECK(th_wait_for(counted, field, 10000));
    /* --auto-events: the sandbox also likes the post by itself a moment
     * later, so the count reaches 2 */
    CHECK(th_wait_for(counted_twice, field, 10000));
    char *dups = th_redis_cmd(redis, "HGET {s}:eng:totals duplicate");
    CHECK(dups && atol(dups) >= 1);
    free(dups);
    req("GET", "/_sandbox/webhooks", NULL, NULL, &r);
    CHECK(strstr(r.body.data, "\"failed\":0"));
    resp_release(&r);
}

static void test_faults(void)
{
    resp r;
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate429\":1,\"retry_after\":7}",
        &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"limited\"}", &r);
    CHECK_INT(r.status, 429);
    CHECK(strcasestr(r.hdrs.data, "Retry-After: 7"));
    CHECK(strcasestr(r.hdrs.data, "x-rate-limit-reset: "));
    resp_release(&r);
    /* other platforms are untouched */
    req("POST", "/api/v1/statuses", bearer, "{\"status\":\"fine\"}", &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate500\":1}", &r);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"broken\"}", &r);
    CHECK_INT(r.status, 500);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"drop\":1}", &r);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"dropped\"}", &r);
    CHECK_INT(r.status, 0);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"slow_ms\":200}", &r);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"slow but fine\"}", &r);
    CHECK_INT(r.status, 201);
    resp_release(&r);
    req("GET", "/_sandbox/faults", NULL, NULL, &r);
    json_t *j = json_of(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "injected")), 3);
    json_decref(j);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate429\":2,", &r);
    CHECK_INT(r.status, 400);
    resp_release(&r);
    /* reset clears faults and records */
    req("POST", "/_sandbox/reset", NULL, "", &r);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"after reset\"}", &r);
    CHECK_INT(r.status, 201);
    resp_release(&r);
    req("GET", "/_sandbox/posts", NULL, NULL, &r);
    j = json_of(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "count")), 1);
    json_decref(j);
    resp_release(&r);
    req("GET", "/nowhere", NULL, NULL, &r);
    CHECK_INT(r.status, 404);
    resp_release(&r);
}

/* a refusal (rate4xx) answers a post with the given 4xx in X's own error
 * shape and message, is counted as injected and not recorded as a post;
 * reads pass; a status that is no 4xx or an overlong message is refused */
static void test_refusals(void)
{
    resp r;
    req("POST", "/_sandbox/reset", NULL, "", &r);
    resp_release(&r);
    req("GET", "/_sandbox/faults", NULL, NULL, &r);
    json_t *j = json_of(&r);
    long before = (long)json_integer_value(json_object_get(j, "injected"));
    json_decref(j);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL,
        "{\"platform\":\"x\",\"rate4xx\":1,\"status\":403,"
        "\"message\":\"You are not permitted to perform this action.\"}",
        &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    req("POST", "/2/tweets", bearer, "{\"text\":\"refused\"}", &r);
    CHECK_INT(r.status, 403);
    j = json_of(&r);
    CHECK_STR(json_string_value(json_object_get(j, "detail")),
              "You are not permitted to perform this action.");
    CHECK_INT(json_integer_value(json_object_get(j, "status")), 403);
    CHECK(json_string_value(json_object_get(j, "title")) != NULL);
    json_decref(j);
    resp_release(&r);
    req("GET", "/2/users/1/tweets", bearer, NULL, &r);
    CHECK_INT(r.status, 200);
    resp_release(&r);
    req("GET", "/_sandbox/faults", NULL, NULL, &r);
    j = json_of(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "injected")), before + 1);
    json_t *f = json_array_get(json_object_get(j, "faults"), 0);
    CHECK_INT(json_integer_value(json_object_get(f, "status")), 403);
    CHECK_STR(json_string_value(json_object_get(f, "message")),
              "You are not permitted to perform this action.");
    json_decref(j);
    resp_release(&r);
    req("GET", "/_sandbox/posts?platform=x&kind=post", NULL, NULL, &r);
    j = json_of(&r);
    CHECK_INT(json_integer_value(json_object_get(j, "count")), 0);
    json_decref(j);
    resp_release(&r);
    /* the default: 403 with the sandbox's message, here in Mastodon's shape */
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"mastodon\",\"rate4xx\":1}", &r);
    resp_release(&r);
    req("POST", "/api/v1/statuses", bearer, "{\"status\":\"refused\"}", &r);
    CHECK_INT(r.status, 403);
    j = json_of(&r);
    CHECK_STR(json_string_value(json_object_get(j, "error")), "sandbox: injected refusal");
    json_decref(j);
    resp_release(&r);
    req("POST", "/_sandbox/faults", NULL, "{\"platform\":\"x\",\"rate4xx\":1,\"status\":500}",
        &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "status must be a 4xx"));
    resp_release(&r);
    char big[400];
    snprintf(big, sizeof big, "{\"platform\":\"x\",\"rate4xx\":1,\"message\":\"%0250d\"}", 0);
    req("POST", "/_sandbox/faults", NULL, big, &r);
    CHECK_INT(r.status, 400);
    CHECK(strstr(r.body.data, "message is longer"));
    resp_release(&r);
    req("POST", "/_sandbox/reset", NULL, "", &r);
    resp_release(&r);
}

/* the generic relay checks the signature's value, not just its presence */
static void test_relay(void)
{
    const char *body = "{\"text\":\"to the crm\"}";
    unsigned char mac[32];
    char hex[65], good[100], bad[100];
    hr_hmac_sha256(RELAY_KEY, strlen(RELAY_KEY), body, strlen(body), mac);
    hr_hex(mac, 32, hex);
    snprintf(good, sizeof good, "X-Herald-Signature: sha256=%s", hex);
    hex[0] = hex[0] == '0' ? '1' : '0';
    snprintf(bad, sizeof bad, "X-Herald-Signature: sha256=%s", hex);
    const char *h_good[] = {good, "Content-Type: application/json", NULL};
    const char *h_bad[] = {bad, "Content-Type: application/json", NULL};
    const char *h_none[] = {"Content-Type: application/json", NULL};
    const char *h_garbage[] = {"X-Herald-Signature: t=1,v1=00", NULL};
    resp r;
    req("POST", "/herald", h_good, body, &r);
    CHECK_INT(r.status, 200);
    CHECK(strstr(r.body.data, "\"id\":\"wh-"));
    resp_release(&r);
    CHECK_INT(status_of("POST", "/herald", h_bad, body), 401);
    CHECK_INT(status_of("POST", "/herald", h_good, "{\"text\":\"altered\"}"), 401);
    /* unsigned: not a relay post at all */
    CHECK_INT(status_of("POST", "/herald", h_none, body), 404);
    CHECK_INT(status_of("POST", "/herald", h_garbage, body), 401);
}

static void test_stop(void)
{
    /* both stop cleanly on SIGTERM (and, under ASan, without leaks) */
    pid_t p[2] = {sb_pid, wh_pid};
    for (int i = 0; i < 2; i++) {
        kill(p[i], SIGTERM);
        int st = -1;
        waitpid(p[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

/* created_posts: how many requests /_sandbox/posts?all=1 says created
 * something */
static long created_posts(void)
{
    json_t *j = json_answer("GET", "/_sandbox/posts?all=1", NULL, NULL, 200);
    json_t *posts = json_object_get(j, "posts");
    long n = 0;
    for (size_t i = 0; i < json_array_size(posts); i++)
        n += json_is_true(json_object_get(json_array_get(posts, i), "created"));
    json_decref(j);
    return n;
}

/* every platform's create route refuses a request without its auth header
 * (or with a bad one) with the platform's own status, and creates nothing */
static void test_auth_everywhere(void)
{
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
    const char *json[] = {"Content-Type: application/json", NULL};
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *li[] = {"Content-Type: application/json", "LinkedIn-Version: 202401",
                        "X-Restli-Protocol-Version: 2.0.0", NULL};
    const char *mg_bad[] = {"Authorization: Basic YXBpOmludmFsaWQ=", /* api:invalid */
                            "Content-Type: application/x-www-form-urlencoded", NULL};
    const char *pm[] = {"Content-Type: application/json", "Accept: application/json", NULL};
    static const char bsky_body[] =
        "{\"repo\":\"did:plc:x\",\"collection\":\"app.bsky.feed.post\",\"record\":{\"text\":"
        "\"hi\",\"createdAt\":\"2026-11-21T20:40:16Z\"}}";
    const struct {
        const char *path;
        const char *const *hdrs;
        const char *body;
        long status;
    } cases[] = {
        {"/2/tweets", json, "{\"text\":\"hi\"}", 401},
        {"/api/v1/statuses", json, "{\"status\":\"hi\"}", 401},
        {"/xrpc/com.atproto.repo.createRecord", json, bsky_body, 401},
        {"/rest/posts", li,
         "{\"author\":\"urn:li:organization:1\",\"commentary\":\"hi\",\"visibility\":\"PUBLIC\","
         "\"distribution\":{\"feedDistribution\":\"MAIN_FEED\"},\"lifecycleState\":\"PUBLISHED\"}",
         401},
        {"/v1.0/1234567/threads", form, "media_type=TEXT&text=hi", 400},
        {"/v19.0/1122334455/feed", form, "message=hi", 400},
        {"/v3/mail/send", json,
         "{\"personalizations\":[{\"to\":[{\"email\":\"a@example.com\"}]}],\"from\":{\"email\":"
         "\"n@shop.example\"},\"subject\":\"Hi\",\"content\":[{\"type\":\"text/plain\","
         "\"value\":\"x\"}]}",
         401},
        {"/v3/mg.shop.example/messages", form,
         "from=n%40shop.example&to=a%40example.com&subject=Hi&text=x", 401},
        {"/v3/mg.shop.example/messages", mg_bad,
         "from=n%40shop.example&to=a%40example.com&subject=Hi&text=x", 401},
        {"/email", pm,
         "{\"From\":\"n@shop.example\",\"To\":\"a@example.com\",\"Subject\":\"Hi\","
         "\"TextBody\":\"x\"}",
         401},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        long st = status_of("POST", cases[i].path, cases[i].hdrs, cases[i].body);
        CHECK_INT(st, cases[i].status);
        if (st != cases[i].status) fprintf(stderr, "  %s: %ld\n", cases[i].path, st);
    }
    CHECK_INT(created_posts(), 0);
    CHECK_INT(status_of("POST", "/_sandbox/reset", NULL, ""), 200);
}

/* like_count reads a post's like count from its platform's read API at
 * path (jpath: the keys down to it, NULL-terminated; a number key "0" is an
 * array index), or -1 */
static long like_count(const char *path, const char *const *jpath)
{
    resp r;
    req("GET", path, bearer, NULL, &r);
    json_t *j = r.status == 200 ? json_of(&r) : NULL;
    resp_release(&r);
    json_t *v = j;
    for (int i = 0; v && jpath[i]; i++)
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(jpath[i]))
                             : json_object_get(v, jpath[i]);
    long n = json_is_integer(v) ? (long)json_integer_value(v) : -1;
    json_decref(j);
    return n;
}

typedef struct read_api {
    char path[400];
    const char *jpath[8];
    long first;
} read_api;

enum { NREADS = 6 };

static int all_grew(void *arg)
{
    read_api *a = arg;
    for (int i = 0; i < NREADS; i++)
        if (like_count(a[i].path, a[i].jpath) <= a[i].first) return 0;
    return 1;
}

/* the read APIs serve each accepted post's engagement, and it grows with
 * the post's age (a poller sees counts rise): X, Mastodon, Bluesky,
 * LinkedIn, Threads and Facebook */
static void test_engagement_grows(void)
{
    read_api a[NREADS] = {
        {.jpath = {"data", "public_metrics", "like_count", NULL}},
        {.jpath = {"favourites_count", NULL}},
        {.jpath = {"posts", "0", "likeCount", NULL}},
        {.jpath = {"likesSummary", "totalLikes", NULL}},
        {.jpath = {"data", "0", "values", "0", "value", NULL}},
        {.jpath = {"reactions", "summary", "total_count", NULL}},
    };
    json_t *j = json_answer("POST", "/2/tweets", bearer, "{\"text\":\"grows\"}", 201);
    snprintf(a[0].path, sizeof a[0].path, "/2/tweets/%s?tweet.fields=public_metrics",
             jstr_at(j, "data", "id"));
    json_decref(j);
    j = json_answer("POST", "/api/v1/statuses", bearer, "{\"status\":\"grows\"}", 200);
    snprintf(a[1].path, sizeof a[1].path, "/api/v1/statuses/%s",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    char auth[200];
    json_t *ann = bsky_login("grow.bsky.social", auth, sizeof auth);
    const char *bh[] = {auth, "Content-Type: application/json", NULL};
    char *body = hr_asprintf("{\"repo\":\"%s\",\"collection\":\"app.bsky.feed.post\",\"record\":"
                             "{\"text\":\"grows\",\"createdAt\":\"2026-11-21T20:40:16Z\"}}",
                             json_string_value(json_object_get(ann, "did")));
    j = json_answer("POST", "/xrpc/com.atproto.repo.createRecord", bh, body, 200);
    free(body);
    char *uri = curl_easy_escape(NULL, json_string_value(json_object_get(j, "uri")), 0);
    snprintf(a[2].path, sizeof a[2].path, "/xrpc/app.bsky.feed.getPosts?uris=%s", uri);
    curl_free(uri);
    json_decref(j);
    json_decref(ann);
    const char *li[] = {"Authorization: Bearer tok", "Content-Type: application/json",
                        "LinkedIn-Version: 202401", "X-Restli-Protocol-Version: 2.0.0", NULL};
    resp r;
    req("POST", "/rest/posts", li,
        "{\"author\":\"urn:li:organization:5515715\",\"commentary\":\"grows\",\"visibility\":"
        "\"PUBLIC\",\"distribution\":{\"feedDistribution\":\"MAIN_FEED\"},\"lifecycleState\":"
        "\"PUBLISHED\"}",
        &r);
    CHECK_INT(r.status, 201);
    char urn[200] = "";
    char *h = strcasestr(r.hdrs.data, "x-restli-id: ");
    if (h) sscanf(h + 13, "%199[^\r\n]", urn);
    resp_release(&r);
    char *enc = curl_easy_escape(NULL, urn, 0);
    snprintf(a[3].path, sizeof a[3].path, "/rest/socialActions/%s", enc);
    curl_free(enc);
    char *tid = threads_post("7654321", "grows");
    snprintf(a[4].path, sizeof a[4].path, "/v1.0/%s/insights?metric=likes", tid);
    free(tid);
    const char *form[] = {"Authorization: Bearer tok",
                          "Content-Type: application/x-www-form-urlencoded", NULL};
    j = json_answer("POST", "/v19.0/1122334455/feed", form, "message=grows", 200);
    snprintf(a[5].path, sizeof a[5].path, "/v19.0/%s",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    for (int i = 0; i < NREADS; i++) {
        a[i].first = like_count(a[i].path, a[i].jpath);
        CHECK(a[i].first >= 0);
        if (a[i].first < 0) fprintf(stderr, "  no like count at %s\n", a[i].path);
    }
    CHECK(th_wait_for(all_grew, a, 20000));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setup();
    th_run("x", test_x);
    th_run("lengths", test_lengths);
    th_run("idempotency", test_idempotency);
    th_run("idempotency_everywhere", test_idempotency_everywhere);
    th_run("mastodon_status", test_mastodon_status);
    th_run("bluesky", test_bluesky);
    th_run("linkedin_threads_facebook", test_linkedin_threads_facebook);
    th_run("meta_lists", test_meta_lists);
    th_run("bodies", test_bodies);
    th_run("validation", test_validation);
    th_run("emails_and_loop", test_emails_and_loop);
    th_run("faults", test_faults);
    th_run("refusals", test_refusals);
    th_run("record_everything", test_record_everything);
    th_run("relay", test_relay);
    th_run("auth_everywhere", test_auth_everywhere);
    th_run("engagement_grows", test_engagement_grows);
    th_run("stop", test_stop);
    free(dir);
    int rc = th_main_end();
    curl_global_cleanup();
    return rc;
}
