/* test_sandbox.c: every platform's step machine over real HTTP against
 * `herald sandbox` on loopback (webhooks/sandbox.c serves the paths and
 * shapes of docs/platforms.md): send, read back, and poll engagement, with
 * requests run by libcurl exactly as built. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include <jansson.h>

#include "harness.h"
#include "platforms.h"

static int port;
static char *dir, *conf;

typedef struct answer {
    long status;
    hr_buf body;
    plat_header hdrs[64];
    int nhdrs;
} answer;

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    hr_buf_append(&((answer *)u)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u)
{
    answer *a = u;
    size_t len = sz * n;
    const char *colon = memchr(p, ':', len);
    if (colon && a->nhdrs < 64) {
        const char *v = colon + 1;
        const char *end = p + len;
        while (v < end && *v == ' ') v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n')) end--;
        a->hdrs[a->nhdrs].name = hr_strndup(p, (size_t)(colon - p));
        a->hdrs[a->nhdrs].value = hr_strndup(v, (size_t)(end - v));
        a->nhdrs++;
    }
    return len;
}

static void answer_release(answer *a)
{
    for (int i = 0; i < a->nhdrs; i++) {
        free(a->hdrs[i].name);
        free(a->hdrs[i].value);
    }
    hr_buf_release(&a->body);
    memset(a, 0, sizeof *a);
}

/* run performs req and fills r (borrowing from a) */
static void run(const plat_request *req, answer *a, plat_response *r)
{
    memset(a, 0, sizeof *a);
    hr_buf_init(&a->body);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    for (int i = 0; i < req->nheaders; i++) {
        char *line = hr_asprintf("%s: %s", req->headers[i].name, req->headers[i].value);
        h = curl_slist_append(h, line);
        free(line);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    memset(r, 0, sizeof *r);
    r->status = a->status;
    r->headers = a->hdrs;
    r->nheaders = a->nhdrs;
    r->body = a->body.data ? a->body.data : "";
    r->body_len = a->body.len;
    r->terr = rc == CURLE_OK ? PLAT_TE_NONE : PLAT_TE_OTHER;
    r->fully_sent = 1;
}

static plat_account *account(const char *rest)
{
    char *line = hr_asprintf("account %s base-url=http://127.0.0.1:%d\n", rest, port);
    hr_err err = {0};
    hr_config *c = hr_config_parse(line, "t.conf", &err);
    free(line);
    int pos = -1;
    plat_account *a = c ? plat_account_parse(hr_config_next(c, "account", &pos), "t", &err) : NULL;
    hr_config_free(c);
    if (!a) {
        fprintf(stderr, "account: %s\n", err.msg);
        abort();
    }
    a->credential = hr_strdup(strncmp(rest, "postmark", 8) == 0 ? "pm-server-token" : "tok");
    return a;
}

/* drive runs a send to its outcome; returns the outcome kind and the id,
 * and its message when message is not NULL (owned by the caller) */
static plat_outcome_kind drive(plat_send *s, char **id, char **message, const char *what)
{
    for (int step = 0; step < 8; step++) {
        plat_request req;
        hr_err err = {0};
        if (plat_send_request(s, &req, &err) != 0) {
            fprintf(stderr, "%s: request: %s\n", what, err.msg);
            plat_request_release(&req);
            return PLAT_OUT_PERMANENT;
        }
        answer a;
        plat_response r;
        run(&req, &a, &r);
        plat_outcome o;
        plat_send_response(s, &r, &o);
        if (o.kind != PLAT_OUT_NEXT) {
            if (o.kind != PLAT_OUT_SENT)
                fprintf(stderr, "%s: %s %s (HTTP %ld %s %s)\n", what,
                        plat_outcome_name(o.kind), o.message, a.status, req.url,
                        a.body.data ? a.body.data : "");
            plat_outcome_kind k = o.kind;
            *id = o.platform_id ? hr_strdup(o.platform_id) : NULL;
            if (message) *message = hr_strdup(o.message);
            plat_outcome_release(&o);
            answer_release(&a);
            plat_request_release(&req);
            return k;
        }
        plat_outcome_release(&o);
        answer_release(&a);
        plat_request_release(&req);
    }
    return PLAT_OUT_TRANSIENT;
}

/* send_one sends job_json from acct and expects outcome want, whose
 * message contains want_msg (unless NULL); sent, with readback, reads it
 * back and expects that outcome kind (PLAT_OUT_SENT, PLAT_OUT_ABSENT);
 * with engagement, polls it. */
static void send_one(const char *acct, const char *job_json, plat_outcome_kind want,
                     const char *want_msg, plat_outcome_kind readback, int engagement)
{
    plat_account *a = account(acct);
    hr_err err = {0};
    queue_job *j = queue_job_from_json(job_json, &err);
    REQUIRE(j);
    queue_job_assign_id(j);
    plat_session sess = {0};
    plat_ctx ctx = {.secret = "0123456789abcdef0123456789abcdef"};
    plat_send *s = plat_send_new(a, &sess, j, &ctx, &err);
    if (!s) fprintf(stderr, "%s: %s\n", acct, err.msg);
    REQUIRE(s);
    char *id = NULL, *msg = NULL;
    CHECK_INT(drive(s, &id, &msg, acct), want);
    if (want_msg && (!msg || !strstr(msg, want_msg)))
        fprintf(stderr, "%s: message %s, expected %s\n", acct, msg ? msg : "-", want_msg);
    CHECK(!want_msg || (msg && strstr(msg, want_msg)));
    free(msg);
    if (want == PLAT_OUT_SENT) CHECK(id && *id);
    if (readback && want == PLAT_OUT_SENT) {
        plat_outcome o = {0};
        for (int i = 0; i < 3; i++) {
            plat_request req;
            if (plat_send_readback(s, &req, &err) != 0) {
                fprintf(stderr, "%s: readback: %s\n", acct, err.msg);
                plat_request_release(&req);
                break;
            }
            answer an;
            plat_response r;
            run(&req, &an, &r);
            plat_outcome_release(&o);
            plat_send_readback_response(s, &r, &o);
            if (o.kind != readback)
                fprintf(stderr, "%s: readback %s %s (HTTP %ld %s)\n", acct,
                        plat_outcome_name(o.kind), o.message, an.status, req.url);
            answer_release(&an);
            plat_request_release(&req);
            if (o.kind != PLAT_OUT_NEXT) break;
        }
        CHECK_INT(o.kind, readback);
        plat_outcome_release(&o);
    }
    if (engagement && id && want == PLAT_OUT_SENT) {
        plat_request req;
        CHECK(plat_engagement_request(a, &sess, id, &req, &err) == 0);
        answer an;
        plat_response r;
        run(&req, &an, &r);
        plat_engagement e;
        plat_outcome o;
        plat_engagement_parse(a, &r, &e, &o);
        if (o.kind != PLAT_OUT_SENT)
            fprintf(stderr, "%s: engagement %s (HTTP %ld %s %s)\n", acct, o.message, an.status,
                    req.url, an.body.data ? an.body.data : "");
        CHECK_INT(o.kind, PLAT_OUT_SENT);
        CHECK(e.likes >= 0);
        plat_outcome_release(&o);
        answer_release(&an);
        plat_request_release(&req);
    }
    free(id);
    plat_send_free(s);
    plat_session_release(&sess);
    queue_job_free(j);
    plat_account_free(a);
}

static void one(const char *acct, const char *job_json, plat_outcome_kind readback, int engagement)
{
    send_one(acct, job_json, PLAT_OUT_SENT, NULL, readback, engagement);
}

static void test_social(void)
{
    one("x:@shop user-id=1", "{\"kind\":\"post\",\"text\":\"Hello from herald 🌷 #spring\"}",
        PLAT_OUT_SENT, 1);
    one("mastodon:@shop@m.example account-id=1",
        "{\"kind\":\"post\",\"text\":\"Hello fediverse @friend@example.org\"}", PLAT_OUT_SENT, 1);
    one("bluesky:@shop.bsky.social handle=shop.bsky.social",
        "{\"kind\":\"post\",\"text\":\"Hello sky https://shop.example #spring\"}", PLAT_OUT_SENT,
        1);
    one("linkedin:shop author=urn:li:organization:5515715",
        "{\"kind\":\"post\",\"text\":\"Hello (LinkedIn) #launch\"}", PLAT_OUT_SENT, 1);
    one("threads:shop user-id=1234567", "{\"kind\":\"post\",\"text\":\"Hello Threads\"}",
        PLAT_OUT_SENT, 1);
    one("facebook:shop page-id=1122334455",
        "{\"kind\":\"post\",\"text\":\"Hello page\",\"link\":\"https://shop.example/p\"}",
        PLAT_OUT_SENT, 1);
}

/* sandbox_posts counts the posts the sandbox took for platform. */
static long sandbox_posts(const char *platform)
{
    char path[96], *body = NULL;
    snprintf(path, sizeof path, "/_sandbox/posts?platform=%s&kind=post", platform);
    long n = -1;
    if (th_http(port, NULL, path, NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        n = (long)json_integer_value(json_object_get(j, "count"));
        json_decref(j);
    }
    free(body);
    return n;
}

/* a text over the account's limit goes out as a thread: several posts */
static void test_threads_of_posts(void)
{
    th_http(port, "POST", "/_sandbox/reset", NULL, "", NULL);
    one("x:@shop user-id=1 limit=40",
        "{\"kind\":\"post\",\"text\":\"one two three four five six seven eight nine ten eleven "
        "twelve\",\"meta\":{\"thread\":\"1\"}}",
        0, 0);
    CHECK(sandbox_posts("x") >= 2);
    one("bluesky:@shop.bsky.social limit=40",
        "{\"kind\":\"post\",\"text\":\"one two three four five six seven eight nine ten eleven "
        "twelve\",\"meta\":{\"thread\":\"1\"}}",
        0, 0);
    CHECK(sandbox_posts("bluesky") >= 2);
}

static void test_email(void)
{
    const char *e = "{\"kind\":\"email\",\"campaign\":\"spring\",\"to\":\"ann@example.com\","
                    "\"to_name\":\"Ann\",\"subject\":\"Hello {{first_name}}\","
                    "\"html\":\"<p>Hi</p>\"}";
    one("sendgrid:main from=news@shop.example unsubscribe-base=https://hooks.shop.example", e,
        PLAT_OUT_SENT, 0);
    one("mailgun:main domain=mg.shop.example from=news@shop.example "
        "unsubscribe-base=https://hooks.shop.example",
        e, PLAT_OUT_SENT, 0);
    one("postmark:main from=news@shop.example unsubscribe-base=https://hooks.shop.example", e,
        PLAT_OUT_SENT, 0);
}

/* x_list_get fetches the sandbox's X timeline at query; returns the JSON
 * answer (NULL unless 200) */
static json_t *x_list_get(const char *query)
{
    char path[512], *body = NULL;
    snprintf(path, sizeof path, "/2/users/1/tweets?%s", query);
    const char *h[] = {"Authorization: Bearer tok", NULL};
    int st = th_http(port, NULL, path, h, NULL, &body);
    json_t *j = st == 200 ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return j;
}

/* the sandbox's X timeline pages as X's does: max_results (5-100), a
 * next_token to follow, start_time, created_at only when asked for */
static void test_x_timeline(void)
{
    th_http(port, "POST", "/_sandbox/reset", NULL, "", NULL);
    const char *h[] = {"Authorization: Bearer tok", "Content-Type: application/json", NULL};
    for (int i = 0; i < 12; i++) {
        char b[64];
        snprintf(b, sizeof b, "{\"text\":\"timeline %d\"}", i);
        CHECK_INT(th_http(port, "POST", "/2/tweets", h, b, NULL), 201);
    }
    json_t *j = x_list_get("max_results=5&tweet.fields=created_at");
    REQUIRE(j);
    CHECK_INT(json_array_size(json_object_get(j, "data")), 5);
    CHECK_STR(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "text")),
        "timeline 11");
    CHECK(json_object_get(json_array_get(json_object_get(j, "data"), 0), "created_at"));
    int seen = 0, pages = 0;
    while (j && pages++ < 10) {
        seen += (int)json_array_size(json_object_get(j, "data"));
        const char *next =
            json_string_value(json_object_get(json_object_get(j, "meta"), "next_token"));
        if (!next) break;
        char q[128];
        snprintf(q, sizeof q, "max_results=5&pagination_token=%s", next);
        json_decref(j);
        j = x_list_get(q);
    }
    json_decref(j);
    CHECK_INT(seen, 12);
    CHECK_INT(pages, 3);
    j = x_list_get("max_results=100");
    REQUIRE(j);
    CHECK_INT(json_array_size(json_object_get(j, "data")), 12);
    CHECK(!json_object_get(json_array_get(json_object_get(j, "data"), 0), "created_at"));
    json_decref(j);
    CHECK(x_list_get("max_results=3") == NULL); /* X: 5 to 100 */
    /* another account's post is not on this timeline; links show as t.co,
     * entities say what they expand to */
    const char *h2[] = {"Authorization: Bearer other", "Content-Type: application/json", NULL};
    CHECK_INT(th_http(port, "POST", "/2/tweets", h2, "{\"text\":\"not mine\"}", NULL), 201);
    CHECK_INT(th_http(port, "POST", "/2/tweets", h, "{\"text\":\"A & B https://shop.example/a\"}",
                      NULL),
              201);
    j = x_list_get("max_results=5&tweet.fields=created_at,entities");
    REQUIRE(j);
    json_t *t = json_array_get(json_object_get(j, "data"), 0);
    const char *text = json_string_value(json_object_get(t, "text"));
    CHECK(text && strncmp(text, "A &amp; B https://t.co/", 23) == 0 && strlen(text) == 33);
    json_t *u = json_array_get(json_object_get(json_object_get(t, "entities"), "urls"), 0);
    CHECK_STR(json_string_value(json_object_get(u, "expanded_url")), "https://shop.example/a");
    CHECK_INT(json_integer_value(json_object_get(u, "start")), 6);
    char *dump = json_dumps(j, 0);
    CHECK(dump && strstr(dump, "not mine") == NULL);
    free(dump);
    json_decref(j);
    j = x_list_get("start_time=2099-01-01T00%3A00%3A00Z");
    REQUIRE(j);
    CHECK_INT(json_integer_value(json_object_get(json_object_get(j, "meta"), "result_count")), 0);
    CHECK(!json_object_get(j, "data"));
    json_decref(j);
}

/* the sandbox's email search lags the send when asked to (search_lag_ms),
 * as the providers' indexes do: a read-back right after the send finds
 * nothing */
static void test_search_lag(void)
{
    const char *e = "{\"kind\":\"email\",\"campaign\":\"spring\",\"to\":\"ann@example.com\","
                    "\"subject\":\"Hello\",\"html\":\"<p>Hi</p>\"}";
    const char *accts[] = {"sendgrid:main from=news@shop.example",
                           "mailgun:main domain=mg.shop.example from=news@shop.example",
                           "postmark:main from=news@shop.example"};
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(port, "POST", "/_sandbox/faults", h,
                      "[{\"platform\":\"sendgrid\",\"search_lag_ms\":600000},"
                      "{\"platform\":\"mailgun\",\"search_lag_ms\":600000},"
                      "{\"platform\":\"postmark\",\"search_lag_ms\":600000}]",
                      NULL),
              200);
    for (int i = 0; i < 3; i++)
        one(accts[i], e, PLAT_OUT_ABSENT, 0);
    th_http(port, "POST", "/_sandbox/reset", NULL, "", NULL);
}

/* refused sends job_json from acct while the sandbox refuses its
 * platform's posts (rate4xx) with status and a message of its own: the
 * platform's error shape must read as permanent, with that message. */
static void refused(const char *acct, const char *job_json, int status)
{
    char platform[32];
    snprintf(platform, sizeof platform, "%.*s", (int)strcspn(acct, ":"), acct);
    char *msg = hr_asprintf("%s refuses this post for good", platform);
    char *fault = hr_asprintf("{\"platform\":\"%s\",\"rate4xx\":1,\"status\":%d,"
                              "\"message\":\"%s\"}",
                              platform, status, msg);
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(port, "POST", "/_sandbox/faults", h, fault, NULL), 200);
    send_one(acct, job_json, PLAT_OUT_PERMANENT, msg, 0, 0);
    free(fault);
    free(msg);
}

/* a refusal the sandbox injects (rate4xx) is, on every platform, a
 * permanent failure carrying the platform's own message */
static void test_refusals(void)
{
    th_http(port, "POST", "/_sandbox/reset", NULL, "", NULL);
    const char *post = "{\"kind\":\"post\",\"text\":\"Not for this account\"}";
    refused("x:@shop user-id=1", post, 403);
    refused("mastodon:@shop@m.example account-id=1", post, 422);
    refused("bluesky:@shop.bsky.social handle=shop.bsky.social", post, 400);
    refused("linkedin:shop author=urn:li:organization:5515715", post, 403);
    refused("threads:shop user-id=1234567", post, 400);
    refused("facebook:shop page-id=1122334455", post, 403);
    const char *e = "{\"kind\":\"email\",\"campaign\":\"spring\",\"to\":\"ann@example.com\","
                    "\"subject\":\"Hello\",\"html\":\"<p>Hi</p>\"}";
    refused("sendgrid:main from=news@shop.example", e, 400); /* 403: a key lacking rights */
    refused("mailgun:main domain=mg.shop.example from=news@shop.example", e, 400);
    refused("postmark:main from=news@shop.example", e, 422);
    th_http(port, "POST", "/_sandbox/reset", NULL, "", NULL);
}

static int up(void *arg)
{
    return th_http(*(int *)arg, NULL, "/readyz", NULL, NULL, NULL) == 200;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    dir = th_tempdir();
    conf = hr_asprintf("%s/herald.conf", dir);
    th_write_file(conf, "namespace p\n");
    port = th_free_port();
    char listen[64], log[600];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(log, sizeof log, "%s/sandbox.log", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "sandbox", "--listen", listen, NULL};
    pid_t pid = th_spawn(argv, log);
    if (!th_wait_for(up, &port, 10000)) {
        fprintf(stderr, "sandbox did not start (see %s)\n", log);
        return 1;
    }
    th_run("social", test_social);
    th_run("threads_of_posts", test_threads_of_posts);
    th_run("x_timeline", test_x_timeline);
    th_run("search_lag", test_search_lag);
    th_run("email", test_email);
    th_run("refusals", test_refusals);
    th_kill(pid, SIGTERM);
    free(conf);
    free(dir);
    curl_global_cleanup();
    return th_main_end();
}
