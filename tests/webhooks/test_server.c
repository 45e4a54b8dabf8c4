/* test_server.c: `herald webhooks` end to end against a private Redis:
 * every route with valid, forged, replayed, duplicated, oversized, truncated
 * and malformed requests; unknown jobs; Redis stopped mid-test; many
 * concurrent connections; keep-alive, pipelining and slow clients; one-click
 * unsubscribe; `herald forget`. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "internal.h"
#include "queue.h"
#include "webhooks.h"

static th_redis *redis;
static char *dir;
static char conf[512];
static int port;
static pid_t server;
static EVP_PKEY *sg_key;
static const char *secret = "test-secret-0123456789abcdef";
static const char *gen_key = "generic-hmac-key-0123456789";
static const char *mg_key = "mailgun-signing-key-0123456789";
static const char *JOB = "0000000Aabcdefghijkl"; /* a sent job (in the done hash) */

static void write_at(const char *name, const char *text)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    th_write_file(p, text);
}

static int healthy(void *arg)
{
    return th_http(port, NULL, (const char *)arg, NULL, NULL, NULL) == 200;
}

static int ready_at(void *arg)
{
    return th_http(*(int *)arg, NULL, "/readyz", NULL, NULL, NULL) == 200;
}

/* spawn_server starts `herald webhooks` with the config file at path
 * (logging to log_name in dir) and waits until it serves /readyz on *at. */
static pid_t spawn_server(const char *path, const char *log_name, int *at)
{
    char *argv[] = {HERALD_BIN, "--config", (char *)path, "webhooks", NULL};
    char log[600];
    snprintf(log, sizeof log, "%s/%s", dir, log_name);
    pid_t pid = th_spawn(argv, log);
    if (!th_wait_for(ready_at, at, 10000)) {
        fprintf(stderr, "webhooks did not start; log:\n%s\n", th_read_file(log, NULL));
        abort();
    }
    return pid;
}

static void start_server(void)
{
    server = spawn_server(conf, "webhooks.log", &port);
}

/* write_conf writes the test config, listening on listen_port with a body
 * limit of max_body bytes and the extra lines (or NULL), to path. Redis gets
 * 10 s to reply (graceful_stop makes it sleep 1.5 s), unless extra says. */
static void write_conf(const char *path, int listen_port, long max_body, const char *extra)
{
    char *text =
        hr_asprintf("redis-url unix://%s\nnamespace t\nsecret-file %s/secret\n"
                    "sendgrid-webhook-key-file %s/sg.pem\nmailgun-signing-key-file %s/mg.key\n"
                    "postmark-webhook-auth-file %s/pm.auth\nwebhook-hmac-key-file %s/gen.key\n"
                    "webhooks-listen 127.0.0.1:%d\nwebhooks-max-body %ld\n"
                    "webhooks-request-timeout-ms 400\nwebhooks-max-conns 200\n%s",
                    redis->sock, dir, dir, dir, dir, dir, listen_port, max_body,
                    extra ? extra : "webhooks-redis-timeout-ms 10000\n");
    th_write_file(path, text);
    free(text);
}

static void setup(void)
{
    redis = th_redis_start(0, "--enable-debug-command", "local", NULL);
    dir = th_tempdir();
    port = th_free_port();
    sg_key = EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, sg_key);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *pem = strndup(p, (size_t)n);
    BIO_free(b);
    write_at("sg.pem", pem);
    free(pem);
    write_at("secret", secret);
    write_at("gen.key", gen_key);
    write_at("mg.key", mg_key);
    write_at("pm.auth", "hooks:pm-pass");
    snprintf(conf, sizeof conf, "%s/herald.conf", dir);
    write_conf(conf, port, 65536, NULL);
    char *r = th_redis_cmd(redis, "HSET {t}:done %s %s\t1700000000000\t1999", JOB + 8, JOB);
    free(r);
    start_server();
}

#define rcmd(...) th_redis_cmd(redis, __VA_ARGS__)
#define rint_(...) to_long(th_redis_cmd(redis, __VA_ARGS__))

static long to_long(char *s)
{
    long v = s ? atol(s) : -1;
    free(s);
    return v;
}

/* post_generic_to signs body at time ts (0: now) and posts it to the
 * server on port at. */
static int post_generic_to(int at, const char *body, int64_t ts, char **resp)
{
    char sig[200], hdr[260];
    hook_sign_generic(gen_key, ts ? ts : hr_now_ms() / 1000, body, strlen(body), sig, sizeof sig);
    snprintf(hdr, sizeof hdr, "X-Herald-Signature: %s", sig);
    const char *h[] = {hdr, "Content-Type: application/json", NULL};
    return th_http(at, "POST", "/webhooks/generic", h, body, resp);
}

static int post_generic(const char *body, int64_t ts, char **resp)
{
    return post_generic_to(port, body, ts, resp);
}

/* generic_answers posts body (signed now) and says whether the answer is
 * a 200 holding want. */
static int generic_answers(const char *body, const char *want)
{
    char *resp = NULL;
    int ok = post_generic(body, 0, &resp) == 200 && resp && strstr(resp, want);
    free(resp);
    return ok;
}

/* unsub_link fills u (email, campaign, the job JOB) and writes its link's
 * path to path; returns its token (caller frees). */
static char *unsub_link(hr_unsub *u, const char *email, const char *campaign, char path[600])
{
    memset(u, 0, sizeof *u);
    snprintf(u->email, sizeof u->email, "%s", email);
    snprintf(u->campaign, sizeof u->campaign, "%s", campaign);
    snprintf(u->job, sizeof u->job, "%s", JOB);
    char *tok = hr_unsub_token_make(secret, u);
    snprintf(path, 600, "/u/%s", tok);
    return tok;
}

/* unsub_post posts a one-click unsubscribe to path and returns the status */
static int unsub_post(const char *path)
{
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    return th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL);
}

static void test_generic(void)
{
    char body[400];
    snprintf(
        body, sizeof body,
        "{\"events\":[{\"id\":\"ev1\",\"type\":\"like\",\"job\":\"%s\",\"campaign\":\"spring\"}]}",
        JOB);
    CHECK(generic_answers(body, "\"recorded\":1"));
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|like", JOB), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns spring|like"), 1);
    /* the same event again (a provider retry, freshly signed): counted once */
    CHECK(generic_answers(body, "\"duplicates\":1"));
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|like", JOB), 1);
    /* replayed: an old signature is refused and changes nothing */
    CHECK_INT(post_generic(body, hr_now_ms() / 1000 - 3600, NULL), 401);
    /* forged: wrong key */
    const char *h[] = {"X-Herald-Signature: t=1700000000,v1="
                       "0000000000000000000000000000000000000000000000000000000000000000",
                       NULL};
    CHECK_INT(th_http(port, "POST", "/webhooks/generic", h, body, NULL), 401);
    CHECK_INT(th_http(port, "POST", "/webhooks/generic", NULL, body, NULL), 401);
    /* malformed and truncated (validly signed) */
    CHECK_INT(post_generic("{\"events\":[{\"id\":\"x\"", 0, NULL), 400);
    CHECK_INT(post_generic("{\"events\":[{\"type\":\"like\",\"job\":\"J\"}]}", 0, NULL), 400);
    CHECK_INT(post_generic("not json", 0, NULL), 400);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|like", JOB), 1);
    /* wrong method, unknown route */
    CHECK_INT(th_http(port, "GET", "/webhooks/generic", NULL, NULL, NULL), 405);
    CHECK_INT(th_http(port, "POST", "/webhooks/nope", NULL, "{}", NULL), 404);
    /* the stream got one entry per new event */
    CHECK_INT(rint_("XLEN {t}:events"), 1);
}

static void test_unknown_job(void)
{
    const char *body = "{\"events\":[{\"id\":\"ev-unk\",\"type\":\"click\",\"job\":"
                       "\"0000000Azzzzzzzzzzzz\"}]}";
    CHECK(generic_answers(body, "\"unmatched\":1"));
    CHECK_INT(rint_("HGET {t}:eng:jobs 0000000Azzzzzzzzzzzz|click"), 0);
    CHECK(rint_("HGET {t}:eng:totals unmatched") >= 1);
}

static void test_platform_id(void)
{
    free(rcmd("HSET {t}:platform_ids x:1445880548472328192 %s\tlaunch", JOB));
    const char *body = "{\"events\":[{\"id\":\"r1\",\"type\":\"repost\",\"platform\":\"x\","
                       "\"platform_id\":\"1445880548472328192\"}]}";
    CHECK_INT(post_generic(body, 0, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|repost", JOB), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns launch|repost"), 1);
}

/* stream_entry returns the fields of the stream's n-th newest entry (1 the
 * newest) as "name,value,...". */
static char *stream_entry(int n)
{
    return rcmd("EVAL %s 1 {t}:events %d",
                "local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[1])"
                "[tonumber(ARGV[1])] return table.concat(e[2], ',')",
                n);
}

/* test_one_batch: the events of one request are recorded by one script
 * call: a repeat inside the batch is a duplicate, a contact's job is listed
 * once, the first suppression reason is kept, and each new event's stream
 * entry carries the job and campaign it was matched to. */
static void test_one_batch(void)
{
    const char *J2 = "0000000Abatch0000001"; /* its own job: other tests count JOB's */
    free(rcmd("HSET {t}:done %s %s\t1700000000000\t1999", J2 + 8, J2));
    free(rcmd("HSET {t}:platform_ids x:777 %s\tlaunch2", J2));
    long xlen0 = rint_("XLEN {t}:events");
    char body[1200];
    snprintf(body, sizeof body,
             "{\"events\":["
             "{\"id\":\"b1\",\"type\":\"open\",\"job\":\"%s\",\"email\":\"Cara@example.com\","
             "\"campaign\":\"fall\",\"ts\":1700000000},"
             "{\"id\":\"b1\",\"type\":\"open\",\"job\":\"%s\"},"
             "{\"id\":\"b2\",\"type\":\"bounce\",\"job\":\"%s\",\"email\":\"cara@example.com\"},"
             "{\"id\":\"b5\",\"type\":\"spam\",\"job\":\"%s\",\"email\":\"cara@example.com\"},"
             "{\"id\":\"b3\",\"type\":\"repost\",\"platform\":\"x\",\"platform_id\":\"777\"},"
             "{\"id\":\"b4\",\"type\":\"click\",\"job\":\"0000000Azzzzzzzzzzzz\"}]}",
             J2, J2, J2, J2);
    CHECK(generic_answers(body, "\"recorded\":4,\"duplicates\":1,\"unmatched\":1"));
    CHECK_INT(rint_("XLEN {t}:events") - xlen0, 5);
    char digest[65];
    REQUIRE(queue_suppress_hash(secret, "cara@example.com", digest) == 0);
    CHECK_INT(rint_("HGET {t}:eng:contacts %s|open", digest), 1);
    CHECK_INT(rint_("HGET {t}:eng:contacts %s|bounce", digest), 1);
    char *v = rcmd("HGET {t}:eng:contacts %s|jobs", digest);
    CHECK(v && strcmp(v, J2) == 0);
    free(v);
    v = rcmd("HGET {t}:suppressed %s", digest);
    CHECK(v && strncmp(v, "bounce\t", 7) == 0);
    free(v);
    CHECK_INT(rint_("HGET {t}:eng:campaigns fall|open"), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns launch2|repost"), 1);
    char want[300];
    v = stream_entry(1); /* b4: not matched to any job */
    CHECK(v && strcmp(v, "type,click,job,,campaign,,platform,,ts,0,event,generic:b4") == 0);
    free(v);
    v = stream_entry(2); /* b3: job and campaign from the platform's id */
    snprintf(want, sizeof want, "type,repost,job,%s,campaign,launch2,platform,x,ts,0,event,generic:x:b3",
             J2);
    CHECK(v && strcmp(v, want) == 0);
    free(v);
    v = stream_entry(5); /* b1, once */
    snprintf(want, sizeof want,
             "type,open,job,%s,campaign,fall,platform,,ts,1700000000000,event,generic:b1", J2);
    CHECK(v && strcmp(v, want) == 0);
    free(v);
    /* the whole request again: every event a duplicate, nothing counted */
    CHECK(generic_answers(body, "\"recorded\":0,\"duplicates\":6"));
    CHECK_INT(rint_("XLEN {t}:events") - xlen0, 5);
    CHECK_INT(rint_("HGET {t}:eng:contacts %s|open", digest), 1);
}

/* test_event_time_range: an event time outside [2000, now + 1 day] (an
 * integer too large to turn into ms, a huge float, before 2000, in the
 * future) is recorded as unknown (ts 0), its request still answered 200;
 * times in range, as seconds, fractions or RFC 3339, keep their value. */
static void test_event_time_range(void)
{
    char future[32];
    snprintf(future, sizeof future, "%lld", (long long)(hr_now_ms() / 1000 + 2 * 86400));
    const struct {
        const char *ts, *want;
    } cases[] = {
        {"9223372036854775807", "0"},  {"-9223372036854775808", "0"},
        {"1e300", "0"},                {"-1e300", "0"},
        {"946684799", "0"},            {"\"1999-12-31T23:59:59Z\"", "0"},
        {future, "0"},                 {"1700000000.5", "1700000000500"},
        {"946684800", "946684800000"}, {"\"2023-11-14T22:13:20Z\"", "1700000000000"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    hr_buf body;
    hr_buf_init(&body);
    hr_buf_puts(&body, "{\"events\":[");
    for (int i = 0; i < n; i++)
        hr_buf_printf(&body, "%s{\"id\":\"ts%d\",\"type\":\"click\",\"platform\":\"x\","
                             "\"platform_id\":\"ts-range-%d\",\"ts\":%s}",
                      i ? "," : "", i, i, cases[i].ts);
    hr_buf_puts(&body, "]}");
    char *resp = NULL;
    CHECK_INT(post_generic(body.data, 0, &resp), 200);
    CHECK(resp && strstr(resp, "\"unmatched\":10"));
    free(resp);
    for (int i = 0; i < n; i++) {
        char want[200];
        snprintf(want, sizeof want, "platform,x,ts,%s,event,generic:x:ts%d", cases[i].want, i);
        char *v = stream_entry(n - i); /* the last event is the newest entry */
        CHECK(v && strstr(v, want));
        if (!v || !strstr(v, want)) fprintf(stderr, "  ts %s: %s, want %s\n", cases[i].ts, v, want);
        free(v);
    }
    hr_buf_release(&body);
}

static void sg_sign(const char *ts, const char *body, char *out)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[128];
    size_t sl = sizeof sig;
    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, sg_key);
    EVP_DigestSignUpdate(ctx, ts, strlen(ts));
    EVP_DigestSignUpdate(ctx, body, strlen(body));
    EVP_DigestSignFinal(ctx, sig, &sl);
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, sig, (int)sl);
}

static int post_sendgrid(const char *body, const char *sign_body)
{
    char ts[24], sig[200], h1[300], h2[100];
    snprintf(ts, sizeof ts, "%lld", (long long)(hr_now_ms() / 1000));
    sg_sign(ts, sign_body ? sign_body : body, sig);
    snprintf(h1, sizeof h1, "X-Twilio-Email-Event-Webhook-Signature: %s", sig);
    snprintf(h2, sizeof h2, "X-Twilio-Email-Event-Webhook-Timestamp: %s", ts);
    const char *h[] = {h1, h2, "Content-Type: application/json", NULL};
    return th_http(port, "POST", "/webhooks/sendgrid", h, body, NULL);
}

static void test_sendgrid(void)
{
    char body[600];
    snprintf(body, sizeof body,
             "[{\"email\":\"Bounce.Me@Example.com\",\"timestamp\":1700000000,\"event\":\"bounce\","
             "\"sg_event_id\":\"sg-b1\",\"herald_job\":\"%s\",\"herald_campaign\":\"spring\"},"
             "{\"email\":\"x@example.com\",\"event\":\"processed\",\"sg_event_id\":\"sg-p1\"}]",
             JOB);
    CHECK_INT(post_sendgrid(body, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|bounce", JOB), 1);
    char digest[65];
    REQUIRE(queue_suppress_hash(secret, "bounce.me@example.com", digest) == 0);
    char *v = rcmd("HGET {t}:suppressed %s", digest);
    CHECK(v && strncmp(v, "bounce\t", 7) == 0);
    free(v);
    /* the address itself is stored nowhere */
    char *keys = rcmd("KEYS *");
    CHECK(keys && !strstr(keys, "bounce.me"));
    free(keys);
    /* signed over something else: forged */
    CHECK_INT(post_sendgrid(body, "[]"), 401);
    CHECK_INT(post_sendgrid("[{\"event\":", NULL), 400);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|bounce", JOB), 1);
}

/* post_mailgun posts event_json under a signature block of token tok at
 * time ts (forged: a wrong MAC); *resp gets the answer when not NULL. */
static int post_mailgun_tok(const char *event_json, int64_t ts, int forge, const char *tok,
                            char **resp)
{
    char t[24], hex[65];
    snprintf(t, sizeof t, "%lld", (long long)ts);
    char *msg = hr_asprintf("%s%s", t, tok);
    unsigned char mac[32];
    hr_hmac_sha256(mg_key, strlen(mg_key), msg, strlen(msg), mac);
    free(msg);
    hr_hex(mac, 32, hex);
    if (forge) hex[0] = hex[0] == 'a' ? 'b' : 'a';
    char *body = hr_asprintf("{\"signature\":{\"timestamp\":\"%s\",\"token\":\"%s\",\"signature\":"
                             "\"%s\"},\"event-data\":%s}",
                             t, tok, hex, event_json);
    const char *h[] = {"Content-Type: application/json", NULL};
    int st = th_http(port, "POST", "/webhooks/mailgun", h, body, resp);
    free(body);
    return st;
}

/* post_mailgun: with a fresh token each time, as Mailgun signs each
 * delivery */
static int post_mailgun(const char *event_json, int64_t ts, int forge)
{
    static int n;
    char tok[64];
    snprintf(tok, sizeof tok, "tok%047d", ++n);
    return post_mailgun_tok(event_json, ts, forge, tok, NULL);
}

/* engagement_state: every counter, suppression and stream length, to see
 * that a refused request changed none */
static char *engagement_state(void)
{
    static const char *const cmds[][2] = {
        {"HGETALL", "{t}:eng:totals"},   {"HGETALL", "{t}:eng:jobs"},
        {"HGETALL", "{t}:eng:campaigns"}, {"HGETALL", "{t}:eng:contacts"},
        {"HGETALL", "{t}:suppressed"},   {"XLEN", "{t}:events"},
        {"HLEN", "{t}:ev:seen:0"},       {"HLEN", "{t}:ev:seen:1"}};
    hr_buf b;
    hr_buf_init(&b);
    for (size_t i = 0; i < HR_ARRAY_LEN(cmds); i++) {
        char *v = rcmd("%s %s", cmds[i][0], cmds[i][1]);
        hr_buf_printf(&b, "%s\n--\n", v ? v : "(nil)");
        free(v);
    }
    return b.data;
}

static void test_mailgun(void)
{
    char ev[400];
    snprintf(ev, sizeof ev,
             "{\"event\":\"complained\",\"id\":\"mg-1\",\"recipient\":\"spam@example.com\","
             "\"user-variables\":{\"herald-job\":\"%s\"}}",
             JOB);
    int64_t now = hr_now_ms() / 1000;
    char *before = engagement_state();
    CHECK_INT(post_mailgun(ev, now, 1), 401);
    CHECK_INT(post_mailgun(ev, now - 3600, 0), 401);
    char *after = engagement_state(); /* refused: nothing changed */
    CHECK_STR(after, before);
    free(after);
    free(before);
    CHECK_INT(post_mailgun(ev, now, 0), 200);
    CHECK_INT(post_mailgun(ev, now, 0), 200); /* redelivered, freshly signed */
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|spam", JOB), 1);
    CHECK_INT(post_mailgun("{\"event\":\"opened\"}", now, 0), 400);
}

/* test_mailgun_replay: Mailgun signs timestamp + token only, so a captured
 * signature block carries any event-data: each token is good for the
 * event-data it first came with; with other event-data it is 401 that
 * changes nothing. */
static void test_mailgun_replay(void)
{
    const char *tok = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed00";
    int64_t now = hr_now_ms() / 1000;
    char *resp = NULL;
    CHECK_INT(post_mailgun_tok("{\"event\":\"opened\",\"id\":\"rp-1\",\"recipient\":"
                               "\"reader@example.com\",\"timestamp\":1700000000}",
                               now, 0, tok, &resp),
              200);
    CHECK(resp && strstr(resp, "\"recorded\":0,\"duplicates\":0,\"unmatched\":1"));
    free(resp);
    char *before = engagement_state();
    /* the same signature block, new event-data: a forged bounce */
    const char *forged = "{\"event\":\"failed\",\"severity\":\"permanent\",\"id\":\"rp-2\","
                         "\"recipient\":\"victim@example.com\",\"timestamp\":1700000000}";
    CHECK_INT(post_mailgun_tok(forged, now, 0, tok, NULL), 401);
    /* the genuine event's id with other data: a forged recipient */
    CHECK_INT(post_mailgun_tok("{\"event\":\"opened\",\"id\":\"rp-1\",\"recipient\":"
                               "\"victim@example.com\",\"timestamp\":1700000000}",
                               now, 0, tok, NULL),
              401);
    char *after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    char digest[65];
    REQUIRE(queue_suppress_hash(secret, "victim@example.com", digest) == 0);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 0);
    free(before);
    /* a token whose event herald ignores is spent all the same */
    const char *tok2 = "0123456789abcdef0123456789abcdef0123456789abcdef01";
    resp = NULL;
    CHECK_INT(post_mailgun_tok("{\"event\":\"accepted\",\"id\":\"rp-3\"}", now, 0, tok2, &resp),
              200);
    CHECK(resp && strstr(resp, "\"ignored\":1"));
    free(resp);
    before = engagement_state(); /* the token is remembered */
    CHECK_INT(post_mailgun_tok(forged, now, 0, tok2, NULL), 401);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 0);
    after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    free(before);
    /* the forged event with a token of its own is recorded (it is signed) */
    CHECK_INT(post_mailgun_tok(forged, now, 0, "ffffffffffffffffffffffffffffffffffffffffffffffff00",
                               NULL),
              200);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 1);
}

/* test_mailgun_redelivery: Mailgun retries a webhook it did not see answered
 * 2xx (a lost 200, a 503 whose script ran after all) with the same signature
 * block and the same event-data: that is a duplicate, answered 200, and
 * changes nothing but the duplicate count; the same token with another body
 * is still 401 and changes nothing. */
static void test_mailgun_redelivery(void)
{
    const char *tok = "feedc0defeedc0defeedc0defeedc0defeedc0defeedc0de00";
    char ev[400];
    snprintf(ev, sizeof ev,
             "{\"event\":\"failed\",\"severity\":\"permanent\",\"id\":\"rd-1\","
             "\"recipient\":\"gone@example.com\",\"timestamp\":1700000000,"
             "\"user-variables\":{\"herald-job\":\"%s\"}}",
             JOB);
    int64_t now = hr_now_ms() / 1000;
    long bounces = rint_("HGET {t}:eng:jobs %s|bounce", JOB);
    char *resp = NULL;
    CHECK_INT(post_mailgun_tok(ev, now, 0, tok, &resp), 200);
    CHECK(resp && strstr(resp, "{\"recorded\":1,\"duplicates\":0"));
    free(resp);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|bounce", JOB), bounces + 1);
    char *before = engagement_state();
    long dups = rint_("HGET {t}:eng:totals duplicate");
    /* the same request again, as Mailgun redelivers it */
    resp = NULL;
    CHECK_INT(post_mailgun_tok(ev, now, 0, tok, &resp), 200);
    CHECK(resp && strstr(resp, "{\"recorded\":0,\"duplicates\":1,\"unmatched\":0"));
    free(resp);
    /* its JSON laid out otherwise (keys in another order) is the same event */
    char ev2[400];
    snprintf(ev2, sizeof ev2,
             "{ \"id\": \"rd-1\", \"user-variables\": {\"herald-job\": \"%s\"}, "
             "\"timestamp\": 1700000000, \"recipient\": \"gone@example.com\", "
             "\"severity\": \"permanent\", \"event\": \"failed\" }",
             JOB);
    CHECK_INT(post_mailgun_tok(ev2, now, 0, tok, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:totals duplicate"), dups + 2);
    CHECK_INT(rint_("HSET {t}:eng:totals duplicate %ld", dups), 0); /* all else equal */
    char *after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    /* the same token and event id with another body: refused, no change */
    snprintf(ev2, sizeof ev2,
             "{\"event\":\"failed\",\"severity\":\"permanent\",\"id\":\"rd-1\","
             "\"recipient\":\"victim2@example.com\",\"timestamp\":1700000000,"
             "\"user-variables\":{\"herald-job\":\"%s\"}}",
             JOB);
    CHECK_INT(post_mailgun_tok(ev2, now, 0, tok, NULL), 401);
    after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    free(before);
    /* an ignored event's token: its redelivery is 200, changing nothing */
    const char *tok2 = "feedc0defeedc0defeedc0defeedc0defeedc0defeedc0de01";
    CHECK_INT(post_mailgun_tok("{\"event\":\"accepted\",\"id\":\"rd-2\"}", now, 0, tok2, NULL),
              200);
    before = engagement_state();
    resp = NULL;
    CHECK_INT(post_mailgun_tok("{\"event\":\"accepted\",\"id\":\"rd-2\"}", now, 0, tok2, &resp),
              200);
    CHECK(resp && strstr(resp, "\"ignored\":1"));
    free(resp);
    CHECK_INT(post_mailgun_tok("{\"event\":\"accepted\",\"id\":\"rd-3\"}", now, 0, tok2, NULL),
              401);
    after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    free(before);
}

/* test_record_tokens: one script call (as one loop iteration's requests
 * make) with a token more than once: the first request is recorded; the
 * token with another digest is refused, and its event does not count as
 * seen (a request carrying the same event id under its own token is
 * recorded); with the same digest it is a redelivery, its event a
 * duplicate. The next call knows the token's digest. */
static void test_record_tokens(void)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)hr_now_ms());
#define RKEYS                                                                                      \
    "{r}:ev:seen:0 {r}:events {r}:suppressed {r}:done {r}:jobs {r}:platform_ids "                  \
    "{r}:eng:jobs {r}:eng:campaigns {r}:eng:contacts {r}:eng:totals {r}:ev:seen:1 "
    char *v =
        rcmd("EVAL %s 11 " RKEYS "%s 604800000 1000 4 0 "
             "mailgun:x1 open %s %s mailgun 0 "
             "mailgun:x2 open %s %s mailgun 0 "
             "mailgun:x2 open %s %s mailgun 0 "
             "mailgun:x1 open %s %s mailgun 0 "
             "mailgun-token:T 1 1 d1 mailgun-token:T 2 1 d2 mailgun-token:U 3 1 d3 "
             "mailgun-token:T 4 1 d1",
             hook_lua_record, now, "", "", "", "", "", "", "", "");
    CHECK_STR(v ? v : "(nil)", "34321412");
    free(v);
    CHECK_INT(rint_("HGET {r}:eng:totals open"), 2);
    CHECK_INT(rint_("HGET {r}:eng:totals unmatched"), 2);
    CHECK_INT(rint_("HGET {r}:eng:totals duplicate"), 1);
    CHECK_INT(rint_("XLEN {r}:events"), 2);
    v = rcmd("HGET {r}:ev:seen:%d mailgun-token:T",
             rint_("HEXISTS {r}:ev:seen:0 mailgun-token:T") ? 0 : 1);
    CHECK_STR(v ? v : "(nil)", "d1");
    free(v);
    /* a later call: the same digest a duplicate, another refused */
    v = rcmd("EVAL %s 11 " RKEYS "%s 604800000 1000 2 1 "
             "mailgun:x1 open %s %s mailgun 0 "
             "mailgun:x9 open %s %s mailgun 0 "
             "%s %s %s %s "
             "mailgun-token:T 1 1 d1 mailgun-token:U 2 1 d9",
             hook_lua_record, now, "", "", "", "", "", "", "", "");
    CHECK_STR(v ? v : "(nil)", "2424");
    free(v);
    CHECK_INT(rint_("HGET {r}:eng:totals duplicate"), 2);
    CHECK_INT(rint_("XLEN {r}:events"), 2);
#undef RKEYS
}

/* test_seen_rotation: an event id is remembered in two seen hashes that
 * take turns per period (webhooks-dedupe-days): delivered again in the next
 * period it is still a duplicate; two periods after it was last recorded it
 * is forgotten (new again), and a hash left from an older period counts for
 * nothing. One script call per delivery, at times chosen in periods of 1 s. */
static char *record_at(long long period, const char *id)
{
    return rcmd("EVAL %s 11 {d}:ev:seen:0 {d}:events {d}:suppressed {d}:done {d}:jobs "
                "{d}:platform_ids {d}:eng:jobs {d}:eng:campaigns {d}:eng:contacts "
                "{d}:eng:totals {d}:ev:seen:1 %lld 1000 1000 1 0 %s click %s %s generic 0",
                hook_lua_record, period * 1000 + 500, id, "", "");
}

static void test_seen_rotation(void)
{
    static const struct {
        long long period;
        const char *id, *want; /* 3: new (unmatched), 2: duplicate */
    } steps[] = {
        {10, "generic:r1", "3"}, {10, "generic:r1", "2"}, {11, "generic:r1", "2"},
        {11, "generic:r2", "3"}, {12, "generic:r1", "3"}, {12, "generic:r2", "2"},
        {13, "generic:r1", "2"}, {16, "generic:r1", "3"}, {16, "generic:r2", "3"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(steps); i++) {
        char *v = record_at(steps[i].period, steps[i].id);
        CHECK_STR(v ? v : "(nil)", steps[i].want);
        if (!v || strcmp(v, steps[i].want) != 0)
            fprintf(stderr, "  step %zu: period %lld %s\n", i, steps[i].period, steps[i].id);
        free(v);
    }
    CHECK_INT(rint_("HGET {d}:eng:totals unmatched"), 5);
    CHECK_INT(rint_("HGET {d}:eng:totals duplicate"), 4);
}

/* test_generic_namespace: the generic route's sender names its events'
 * platform, but not the seen ids of the provider routes: events claiming to
 * be SendGrid's and Mailgun's, and one whose id is a Mailgun signature token,
 * leave the genuine SendGrid event and Mailgun request to be recorded. */
static void test_generic_namespace(void)
{
    const char *J3 = "0000000Anamespace001";
    free(rcmd("HSET {t}:done %s %s\t1700000000000\t1999", J3 + 8, J3));
    const char *tok = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee00";
    char body[800];
    snprintf(body, sizeof body,
             "{\"events\":["
             "{\"id\":\"sg-ns-1\",\"type\":\"click\",\"platform\":\"sendgrid\","
             "\"job\":\"0000000Azzzzzzzzzzzz\"},"
             "{\"id\":\"mg-ns-1\",\"type\":\"open\",\"platform\":\"mailgun\","
             "\"job\":\"0000000Azzzzzzzzzzzz\"},"
             "{\"id\":\"%s\",\"type\":\"open\",\"platform\":\"mailgun-token\","
             "\"job\":\"0000000Azzzzzzzzzzzz\"}]}",
             tok);
    CHECK(generic_answers(body, "\"unmatched\":3"));
    snprintf(body, sizeof body,
             "[{\"email\":\"ns@example.com\",\"event\":\"click\",\"sg_event_id\":\"sg-ns-1\","
             "\"herald_job\":\"%s\"}]",
             J3);
    CHECK_INT(post_sendgrid(body, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|click", J3), 1);
    char ev[400];
    snprintf(ev, sizeof ev,
             "{\"event\":\"opened\",\"id\":\"mg-ns-1\",\"recipient\":\"ns@example.com\","
             "\"user-variables\":{\"herald-job\":\"%s\"}}",
             J3);
    char *resp = NULL;
    CHECK_INT(post_mailgun_tok(ev, hr_now_ms() / 1000, 0, tok, &resp), 200);
    CHECK(resp && strstr(resp, "\"recorded\":1"));
    free(resp);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|open", J3), 1);
}

static void test_postmark(void)
{
    char body[400];
    snprintf(body, sizeof body,
             "{\"RecordType\":\"Open\",\"MessageID\":\"m-1\",\"Recipient\":\"o@example.com\","
             "\"ReceivedAt\":\"2026-11-21T20:00:00Z\",\"Metadata\":{\"herald_job\":\"%s\"}}",
             JOB);
    const char *good[] = {"Authorization: Basic aG9va3M6cG0tcGFzcw==", NULL}; /* hooks:pm-pass */
    const char *bad[] = {"Authorization: Basic aG9va3M6bm9wZQ==", NULL};
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", bad, body, NULL), 401);
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", NULL, body, NULL), 401);
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", good, body, NULL), 200);
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", good, body, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|open", JOB), 1);
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", good, "{\"RecordType\":", NULL), 400);
}

static void test_oversized(void)
{
    size_t n = 70000;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    memcpy(big, "{\"events\":[]", 12);
    big[n - 1] = '}';
    CHECK_INT(post_generic(big, 0, NULL), 413);
    free(big);
    /* the server is fine afterwards */
    CHECK_INT(th_http(port, NULL, "/healthz", NULL, NULL, NULL), 200);
}

/* test_script_flush: the recording script flushed from Redis's cache
 * between two requests (SCRIPT FLUSH, or a restart without it): the second
 * is recorded and answered 200, where it got a 503 ("NOSCRIPT") although
 * Redis was up */
static void test_script_flush(void)
{
    char body[300];
    snprintf(body, sizeof body,
             "{\"events\":[{\"id\":\"flush-1\",\"type\":\"reply\",\"job\":\"%s\"}]}", JOB);
    CHECK_INT(post_generic(body, 0, NULL), 200);
    free(rcmd("SCRIPT FLUSH"));
    snprintf(body, sizeof body,
             "{\"events\":[{\"id\":\"flush-2\",\"type\":\"reply\",\"job\":\"%s\"}]}", JOB);
    char *resp = NULL;
    CHECK_INT(post_generic(body, 0, &resp), 200);
    CHECK(resp && strstr(resp, "\"recorded\":1"));
    free(resp);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|reply", JOB), 2);
}

static int redis_down(void *arg)
{
    return th_http(port, NULL, "/readyz", NULL, NULL, NULL) == 503;
}

static void test_redis_down(void)
{
    th_redis_stop(redis);
    CHECK(th_wait_for(redis_down, NULL, 5000));
    char body[300];
    snprintf(body, sizeof body,
             "{\"events\":[{\"id\":\"down-1\",\"type\":\"reply\",\"job\":\"%s\"}]}", JOB);
    CHECK_INT(post_generic(body, 0, NULL), 503);
    /* a one-click unsubscribe is not confirmed while it cannot be stored */
    hr_unsub u;
    char path[600];
    free(unsub_link(&u, "down@example.com", "outage", path));
    CHECK_INT(unsub_post(path), 503);
    th_redis_restart(redis);
    CHECK(th_wait_for(healthy, "/readyz", 10000));
    CHECK_INT(unsub_post(path), 200);
    char digest[65];
    REQUIRE(queue_suppress_hash(secret, u.email, digest) == 0);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 1);
    /* the restarted Redis kept nothing (no persistence): the job again */
    free(rcmd("HSET {t}:done %s %s\t1700000000000\t1999", JOB + 8, JOB));
    CHECK_INT(post_generic(body, 0, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|reply", JOB), 1);
}

/* test_redis_stall: a Redis that hangs without closing the connection
 * (SIGSTOP, like a partition) gets the requests waiting on it answered 503
 * at the deadline (a server of its own: webhooks-redis-timeout-ms 300),
 * again after the connection is reset, for as long as it hangs. Once Redis
 * is back the provider's retries are 200, and each event is recorded once
 * whether or not Redis ran the scripts sent before the reset. */
typedef struct retry_arg {
    int at;
    const char *body;
} retry_arg;

static int retried_ok(void *arg)
{
    const retry_arg *a = arg;
    return post_generic_to(a->at, a->body, 0, NULL) == 200;
}

static void test_redis_stall(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stall.conf", dir);
    int at = th_free_port();
    write_conf(path, at, 65536, "webhooks-redis-timeout-ms 300\n");
    pid_t pid = spawn_server(path, "stall.log", &at);
    const char *J = "0000000Astall0000001";
    free(rcmd("HSET {t}:done %s %s\t1700000000000\t1999", J + 8, J));
    char body[3][200];
    for (int i = 0; i < 3; i++)
        snprintf(body[i], sizeof body[i],
                 "{\"events\":[{\"id\":\"stall-%d\",\"type\":\"click\",\"job\":\"%s\"}]}", i, J);
    CHECK_INT(post_generic_to(at, body[0], 0, NULL), 200);
    long xlen0 = rint_("XLEN {t}:events");
    kill(redis->pid, SIGSTOP);
    char *resp = NULL;
    CHECK_INT(post_generic_to(at, body[1], 0, &resp), 503);
    CHECK(resp && strstr(resp, "retry later"));
    free(resp);
    /* on the connection made after the reset (to the kernel's backlog: Redis
     * still hangs): the same */
    CHECK(th_wait_for(ready_at, &at, 10000));
    CHECK_INT(post_generic_to(at, body[2], 0, NULL), 503);
    CHECK_INT(post_generic_to(at, body[1], 0, NULL), 503);
    kill(redis->pid, SIGCONT);
    for (int i = 1; i < 3; i++) {
        retry_arg a = {at, body[i]};
        CHECK(th_wait_for(retried_ok, &a, 10000));
    }
    resp = NULL;
    CHECK_INT(post_generic_to(at, body[1], 0, &resp), 200);
    CHECK(resp && strstr(resp, "\"recorded\":0,\"duplicates\":1"));
    free(resp);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|click", J), 3);
    CHECK_INT(rint_("XLEN {t}:events") - xlen0, 2);
    char log[600];
    snprintf(log, sizeof log, "%s/stall.log", dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "redis: no reply within 300 ms"));
    free(text);
    th_kill(pid, SIGTERM);
}

/* ---- raw sockets for keep-alive, pipelining, slow clients, many conns */

static int dial_port(int at)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)at);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int dial(void)
{
    return dial_port(port);
}

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    return 0;
}

/* next_response: the status of the whole response at *pos in b (and *pos
 * moves past it), or 0 when it has not all arrived */
static int next_response(const hr_buf *b, size_t *pos)
{
    char *hdr_end = b->data ? strstr(b->data + *pos, "\r\n\r\n") : NULL;
    if (!hdr_end) return 0;
    char *cl = strcasestr(b->data + *pos, "Content-Length: ");
    long len = cl && cl < hdr_end ? atol(cl + 16) : 0;
    size_t need = (size_t)(hdr_end - b->data) + 4 + (size_t)len;
    if (b->len < need) return 0;
    int status = strncmp(b->data + *pos, "HTTP/1.1 ", 9) == 0 ? atoi(b->data + *pos + 9) : -1;
    *pos = need;
    return status;
}

/* read_responses reads until count "HTTP/1.1 " status lines with their
 * bodies arrived; returns how many 200s it saw, or -1 on EOF/timeout. */
static int read_responses(int fd, int count)
{
    hr_buf b;
    hr_buf_init(&b);
    int seen = 0, ok = 0;
    size_t pos = 0;
    while (seen < count) {
        int status = next_response(&b, &pos);
        if (status) {
            ok += status == 200;
            seen++;
            continue;
        }
        char chunk[4096];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            hr_buf_release(&b);
            return -1;
        }
        hr_buf_append(&b, chunk, (size_t)n);
    }
    hr_buf_release(&b);
    return ok;
}

/* read_to_end appends what fd receives to in until the peer closes (0) or
 * a read fails (-1) */
static int read_to_end(int fd, hr_buf *in)
{
    char buf[4096];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        hr_buf_append(in, buf, (size_t)r);
    return r == 0 ? 0 : -1;
}

/* upload sends head then n bytes of body on fd, as a client that writes
 * its whole request before it reads the answer (urllib, most providers'
 * senders), with a small send buffer so that the send only finishes when the
 * server takes the body; then it reads the answer to the end of the stream.
 * Returns the answer's status, or -1 when a send or a read failed (a
 * reset). */
static int upload(int fd, const char *head, size_t n)
{
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    if (send_all(fd, head) != 0) return -1;
    char chunk[16384];
    memset(chunk, 'x', sizeof chunk);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(fd, chunk, n - off < sizeof chunk ? n - off : sizeof chunk, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    hr_buf in;
    hr_buf_init(&in);
    size_t pos = 0;
    int status = read_to_end(fd, &in) == 0 ? next_response(&in, &pos) : -1;
    hr_buf_release(&in);
    return status;
}

static const char big_head[] = "POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n";

static int closed_by_peer(void *arg)
{
    int fd = *(int *)arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static char *signed_request(const char *evid, int keep)
{
    char body[300], sig[200];
    snprintf(body, sizeof body, "{\"events\":[{\"id\":\"%s\",\"type\":\"open\",\"job\":\"%s\"}]}",
             evid, JOB);
    hook_sign_generic(gen_key, hr_now_ms() / 1000, body, strlen(body), sig, sizeof sig);
    return hr_asprintf("POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nX-Herald-Signature: %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n%s",
                       sig, strlen(body), keep ? "" : "Connection: close\r\n", body);
}

static void test_keepalive_pipelining(void)
{
    int fd = dial();
    REQUIRE(fd >= 0);
    char *a = signed_request("ka-1", 1), *b = signed_request("ka-2", 1);
    CHECK_INT(send_all(fd, a), 0);
    CHECK_INT(read_responses(fd, 1), 1);
    CHECK_INT(send_all(fd, b), 0); /* same connection, second request */
    CHECK_INT(read_responses(fd, 1), 1);
    free(a);
    free(b);
    /* three pipelined in one write */
    char *p1 = signed_request("pl-1", 1), *p2 = signed_request("pl-2", 1),
         *p3 = signed_request("pl-3", 0);
    char *all = hr_asprintf("%s%s%s", p1, p2, p3);
    CHECK_INT(send_all(fd, all), 0);
    CHECK_INT(read_responses(fd, 3), 3);
    free(p1);
    free(p2);
    free(p3);
    free(all);
    close(fd);
    /* a client that sends two pipelined requests and closes its side at
     * once gets both answers, then the connection is closed */
    fd = dial();
    REQUIRE(fd >= 0);
    p1 = signed_request("hc-1", 1);
    p2 = signed_request("hc-2", 1);
    all = hr_asprintf("%s%s", p1, p2);
    CHECK_INT(send_all(fd, all), 0);
    shutdown(fd, SHUT_WR);
    CHECK_INT(read_responses(fd, 2), 2);
    CHECK(th_wait_for(closed_by_peer, &fd, 10000));
    free(p1);
    free(p2);
    free(all);
    close(fd);
    /* a chunked body is reassembled before the signature is checked */
    {
        const char *body = "{\"events\":[{\"id\":\"chunked-1\",\"type\":\"open\",\"job\":"
                           "\"0000000Aabcdefghijkl\"}]}";
        char sig[200];
        hook_sign_generic(gen_key, hr_now_ms() / 1000, body, strlen(body), sig, sizeof sig);
        size_t half = strlen(body) / 2;
        char *req = hr_asprintf("POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n"
                                "X-Herald-Signature: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "%zx\r\n%.*s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                                sig, half, (int)half, body, strlen(body) - half, body + half);
        int cfd = dial();
        REQUIRE(cfd >= 0);
        CHECK_INT(send_all(cfd, req), 0);
        CHECK_INT(read_responses(cfd, 1), 1);
        close(cfd);
        free(req);
    }
    /* garbage is a 400 and a closed connection */
    fd = dial();
    REQUIRE(fd >= 0);
    send_all(fd, "NOT HTTP AT ALL\r\n\r\n");
    char buf[256] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    CHECK(n > 0 && strncmp(buf, "HTTP/1.1 400", 12) == 0);
    close(fd);
}

/* test_oversized_upload: a client that writes a body far over the limit
 * (2 MiB, the limit 64 KiB) before reading reads the 413: the server drops
 * the rest of the body instead of closing on it, which reset the connection
 * (the client's send failed, and the answer was lost) */
static void test_oversized_upload(void)
{
    int fd = dial();
    REQUIRE(fd >= 0);
    CHECK_INT(upload(fd, big_head, 2 << 20), 413);
    close(fd);
    CHECK(ready_at(&port));
}

/* answer_to sends req (which asks to close) on a new connection and returns
 * the whole answer, headers and body (new string), or NULL */
static char *answer_to(const char *req)
{
    int fd = dial();
    if (fd < 0) return NULL;
    send_all(fd, req);
    hr_buf in;
    hr_buf_init(&in);
    read_to_end(fd, &in);
    close(fd);
    hr_buf_puts(&in, "");
    return hr_buf_detach(&in);
}

static int answer_has(const char *a, const char *status, const char *header)
{
    return a && strncmp(a, status, strlen(status)) == 0 && strstr(a, header) != NULL;
}

/* test_auth_headers: a 405 says which methods the route takes (Allow), a
 * refused Postmark request which scheme it wants (WWW-Authenticate), and
 * Postmark's scheme is taken in any case ("basic": case-insensitive) */
static void test_auth_headers(void)
{
    char *a = answer_to("OPTIONS /webhooks/generic HTTP/1.1\r\nHost: x\r\n"
                        "Connection: close\r\n\r\n");
    CHECK(answer_has(a, "HTTP/1.1 405", "\r\nAllow: POST\r\n"));
    free(a);
    a = answer_to("PUT /u/abc HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                  "Connection: close\r\n\r\n");
    CHECK(answer_has(a, "HTTP/1.1 405", "\r\nAllow: GET, HEAD, POST\r\n"));
    free(a);
    a = answer_to("POST /webhooks/postmark HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                  "Connection: close\r\n\r\n{}");
    CHECK(answer_has(a, "HTTP/1.1 401", "\r\nWWW-Authenticate: Basic realm=\"herald\"\r\n"));
    free(a);
    char body[400];
    snprintf(body, sizeof body,
             "{\"RecordType\":\"Click\",\"MessageID\":\"m-lc\",\"Recipient\":\"o@example.com\","
             "\"ReceivedAt\":\"2026-11-21T20:00:00Z\",\"Metadata\":{\"herald_job\":\"%s\"}}",
             JOB);
    const char *lower[] = {"Authorization: basic aG9va3M6cG0tcGFzcw==", NULL};
    CHECK_INT(th_http(port, "POST", "/webhooks/postmark", lower, body, NULL), 200);
}

/* pipeline sends count requests on fd in one stream, without waiting for
 * answers (every 1000th a GET /readyz, the rest a POST to an unknown route),
 * reading answers as they come; with shut, it closes its side after the
 * last. Returns how many answers came, in order, with their expected status
 * (200 or 404) before the first wrong one; *eof says whether the server
 * closed the connection after them. */
static int pipeline(int fd, int count, int shut, int *eof)
{
    static const char miss[] = "POST /webhooks/nope HTTP/1.1\r\nHost: x\r\n\r\n",
                      ready[] = "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
    hr_buf out, in;
    hr_buf_init(&out);
    hr_buf_init(&in);
    for (int i = 0; i < count; i++)
        hr_buf_puts(&out, i % 1000 == 999 ? ready : miss);
    size_t sent = 0, pos = 0;
    int good = 0, wrong = 0;
    *eof = 0;
    while (!*eof && !wrong) {
        struct pollfd p = {fd, POLLIN | (sent < out.len ? POLLOUT : 0), 0};
        if (poll(&p, 1, 10000) <= 0) break;
        if (p.revents & POLLOUT) {
            ssize_t n = send(fd, out.data + sent, out.len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) sent += (size_t)n;
            if (shut && sent == out.len) shutdown(fd, SHUT_WR);
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char chunk[65536];
        ssize_t n = recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) {
            *eof = 1;
            break;
        }
        hr_buf_append(&in, chunk, (size_t)n);
        for (int status; (status = next_response(&in, &pos)) != 0;) {
            if (status != (good % 1000 == 999 ? 200 : 404)) {
                wrong = 1;
                break;
            }
            good++;
        }
        if (good == count && !shut) break;
    }
    hr_buf_release(&out);
    hr_buf_release(&in);
    return good;
}

static void test_pipeline_flood(void)
{
    /* one connection pipelining 30,000 requests answered at once (404s)
     * gets every answer in order, and the server stays up. Its own server,
     * whose read-ahead (max body + 64 KB) holds them all: answered one
     * from inside the other, they overflowed its stack. */
    char path[600];
    snprintf(path, sizeof path, "%s/flood.conf", dir);
    int at = th_free_port();
    write_conf(path, at, 4 << 20, NULL);
    pid_t pid = spawn_server(path, "flood.log", &at);
    int fd = dial_port(at), eof;
    REQUIRE(fd >= 0);
    CHECK_INT(pipeline(fd, 30000, 0, &eof), 30000);
    close(fd);
    int st = -1;
    pid_t gone = waitpid(pid, &st, WNOHANG);
    CHECK_INT(gone, 0); /* alive */
    CHECK(ready_at(&at));
    if (gone == 0) {
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
    }
    CHECK_INT(WIFSIGNALED(st) ? WTERMSIG(st) : 0, 0); /* SIGSEGV (11) when it overflowed */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_pipeline_half_close(void)
{
    /* 2,000 pipelined requests and a half-close: the bytes not yet parsed
     * when the end of input is read are answered all the same, then the
     * connection is closed */
    int fd = dial(), eof;
    REQUIRE(fd >= 0);
    CHECK_INT(pipeline(fd, 2000, 1, &eof), 2000);
    CHECK(eof);
    close(fd);
    CHECK(ready_at(&port));
}

static void test_slow_client(void)
{
    int fd = dial();
    REQUIRE(fd >= 0);
    send_all(fd, "POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Le");
    /* request timeout 400 ms: the server drops it */
    CHECK(th_wait_for(closed_by_peer, &fd, 10000));
    close(fd);
    fd = dial();
    REQUIRE(fd >= 0);
    send_all(fd, "POST /webhooks/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{");
    CHECK(th_wait_for(closed_by_peer, &fd, 10000));
    close(fd);
}

static void test_many_connections(void)
{
    enum { N = 100 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial();
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "conc-%d", i);
        char *req = signed_request(id, 0);
        if (fds[i] >= 0) send_all(fds[i], req);
        free(req);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        if (fds[i] >= 0 && read_responses(fds[i], 1) == 1) ok++;
        if (fds[i] >= 0) close(fds[i]);
    }
    CHECK_INT(ok, N);
}

static long metric(const char *name)
{
    char *m = NULL, pat[128];
    th_http(port, NULL, "/metrics", NULL, NULL, &m);
    snprintf(pat, sizeof pat, "\n%s ", name);
    char *p = m ? strstr(m, pat) : NULL;
    long v = p ? atol(p + strlen(pat)) : -1;
    free(m);
    return v;
}

static int conns_open(void *arg)
{
    return metric("herald_webhook_connections") >= *(long *)arg;
}

static int extra_fds[64], nextra;

/* refused: one more connection is answered 503 (accepted ones stay open so
 * the count only grows) */
static int refused(void *arg)
{
    int fd = dial();
    if (fd < 0 || nextra == 64) return 0;
    struct timeval tv = {0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[128] = "";
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    extra_fds[nextra++] = fd;
    return n > 0 && strncmp(buf, "HTTP/1.1 503", 12) == 0;
}

static void test_connection_cap(void)
{
    /* webhooks-max-conns 200 */
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = dial();
    CHECK(th_wait_for(refused, NULL, 10000));
    /* one more that sends its request (with a large body) at once reads
     * its 503 too, not a reset */
    int over = dial();
    CHECK(over >= 0);
    if (over >= 0) CHECK_INT(upload(over, big_head, 2 << 20), 503);
    if (over >= 0) close(over);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    for (int i = 0; i < nextra; i++)
        close(extra_fds[i]);
    long one = 1;
    CHECK(th_wait_for(conns_open, &one, 10000)); /* serving again */
}

/* spawn_nofile starts `herald webhooks` on a config of its own (max-conns
 * 200) with RLIMIT_NOFILE 64 and `hold` more descriptors it inherits and
 * never uses (they are not free for connections); returns its pid, its port
 * in *at, its log's path in log. */
static pid_t spawn_nofile(const char *name, int hold, int *at, char log[600])
{
    char path[600], logname[64], cmd[1400];
    snprintf(path, sizeof path, "%s/%s.conf", dir, name);
    *at = th_free_port();
    write_conf(path, *at, 65536, NULL);
    snprintf(cmd, sizeof cmd, "ulimit -n 64 && exec %s --config %s webhooks", HERALD_BIN, path);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int held[64];
    for (int i = 0; i < hold; i++)
        held[i] = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: inherited */
    snprintf(logname, sizeof logname, "%s.log", name);
    snprintf(log, 600, "%s/%s", dir, logname);
    pid_t pid = th_spawn(argv, log);
    for (int i = 0; i < hold; i++)
        close(held[i]);
    if (!th_wait_for(ready_at, at, 10000)) fprintf(stderr, "%s did not start\n", name);
    return pid;
}

/* runnable_ns: the nanoseconds pid has been running or waiting to run
 * (on a runqueue), from /proc/PID/schedstat: a spinning process is one or
 * the other all the time, however loaded the machine, where its CPU ticks
 * would depend on how many others share the cores */
static double runnable_ns(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/schedstat", (int)pid);
    char *st = th_read_file(p, NULL);
    double run = -1e18, wait = 0;
    if (!st || sscanf(st, "%lf %lf", &run, &wait) != 2) run = -1e18;
    free(st);
    return run + wait;
}

static int log_says(const char *log, const char *what)
{
    char *text = th_read_file(log, NULL);
    int yes = text && strstr(text, what);
    free(text);
    return yes;
}

static int log_says_no_fd(void *arg)
{
    return log_says(arg, "httpd: cannot accept");
}

/* test_nofile: with few file descriptors (RLIMIT_NOFILE 64, the default
 * max-conns 200 of these tests far above), the cap is lowered so that it
 * answers 503 before accept runs out of descriptors; and a server out of
 * descriptors all the same (30 taken by inherited ones) stops accepting for
 * a while instead of spinning on its readable listening socket, then serves
 * again once connections close */
static void test_nofile(void)
{
    enum { N = 40 };
    char log[600];
    int at, fds[N];
    pid_t pid = spawn_nofile("nofile", 0, &at, log);
    for (int i = 0; i < N; i++)
        fds[i] = dial_port(at);
    /* the last is over the lowered cap (31) */
    char buf[128] = "";
    ssize_t n = fds[N - 1] >= 0 ? recv(fds[N - 1], buf, sizeof buf - 1, 0) : -1;
    CHECK(n > 0 && strncmp(buf, "HTTP/1.1 503", 12) == 0);
    CHECK(log_says(log, "too few file descriptors for the connection cap"));
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    th_kill(pid, SIGTERM);

    pid = spawn_nofile("nofile-held", 30, &at, log);
    for (int i = 0; i < N; i++)
        fds[i] = dial_port(at); /* the kernel completes them: the backlog */
    CHECK(th_wait_for(log_says_no_fd, log, 10000));
    struct timeval t0, t1;
    double r0 = runnable_ns(pid);
    gettimeofday(&t0, NULL);
    poll(NULL, 0, 1000); /* use over an interval: a spinning loop uses all of it */
    double r1 = runnable_ns(pid);
    gettimeofday(&t1, NULL);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_usec - t0.tv_usec) / 1e6;
    double share = (r1 - r0) / 1e9 / secs;
    if (share >= 0.5) fprintf(stderr, "webhooks was runnable %.0f%% of the time\n", share * 100);
    CHECK(share >= 0 && share < 0.5);
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0) close(fds[i]);
    CHECK(th_wait_for(ready_at, &at, 10000)); /* serving again */
    th_kill(pid, SIGTERM);
}

static void test_unsubscribe(void)
{
    hr_unsub u;
    char path[600];
    char *tok = unsub_link(&u, "Reader@Example.com", "newsletter", path);
    char *page = NULL;
    CHECK_INT(th_http(port, "GET", path, NULL, NULL, &page), 200);
    CHECK(page && strstr(page, "<form method=\"post\"") && !strstr(page, "Reader@Example.com"));
    CHECK(page && strstr(page, "<p>Stop sending emails to ") &&
          strstr(page, "@Example.com from <b>newsletter</b>?</p>"));
    free(page);
    char digest[65];
    queue_suppress_hash(secret, u.email, digest);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 0);
    /* RFC 8058 one-click */
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", &page), 200);
    /* the answer page names the masked address and the campaign */
    CHECK(page && strstr(page, "<title>Unsubscribed</title>") &&
          strstr(page, "@Example.com will get no more emails from <b>newsletter</b>.</p>") &&
          !strstr(page, "Reader@Example.com"));
    free(page);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns newsletter|unsubscribe"), 1);
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:campaigns newsletter|unsubscribe"), 1);
    /* altered and forged tokens are refused */
    char *alt = strdup(path);
    size_t L = strlen(alt);
    alt[L - 2] = alt[L - 2] == 'A' ? 'B' : 'A';
    CHECK_INT(th_http(port, "POST", alt, h, "List-Unsubscribe=One-Click", NULL), 400);
    CHECK_INT(th_http(port, "GET", alt, NULL, NULL, NULL), 400);
    free(alt);
    /* a token of 74 bytes (99 characters): its last character has 2 spare
     * bits; one set spells the same bytes and must still be refused */
    snprintf(u.campaign, sizeof u.campaign, "spring");
    char *tok2 = hr_unsub_token_make(secret, &u);
    REQUIRE(strlen(tok2) % 4 == 3);
    snprintf(path, sizeof path, "/u/%s", tok2);
    CHECK_INT(th_http(port, "GET", path, NULL, NULL, NULL), 200);
    L = strlen(path);
    /* its neighbour in the alphabet: only the lowest (a spare) bit moves */
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    path[L - 1] = b64url[(strchr(b64url, path[L - 1]) - b64url) ^ 1];
    CHECK_INT(th_http(port, "GET", path, NULL, NULL, NULL), 400);
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL), 400);
    free(tok2);
    char *other = hr_unsub_token_make("another-secret-0123456789", &u);
    snprintf(path, sizeof path, "/u/%s", other);
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL), 400);
    CHECK_INT(th_http(port, "GET", "/u/garbage", NULL, NULL, NULL), 400);
    free(other);
    free(tok);
}

/* test_idle_timeout: a connection that sends nothing, and a keep-alive
 * connection idle after its answer, are closed by the server after
 * webhooks-idle-timeout-ms (a server of its own: 300 ms), so idle clients
 * cannot hold the connection cap */
static void test_idle_timeout(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/idle.conf", dir);
    int at = th_free_port();
    write_conf(path, at, 65536,
               "webhooks-redis-timeout-ms 10000\nwebhooks-idle-timeout-ms 300\n");
    pid_t pid = spawn_server(path, "idle.log", &at);
    int fd = dial_port(at);
    REQUIRE(fd >= 0);
    CHECK(th_wait_for(closed_by_peer, &fd, 10000));
    close(fd);
    fd = dial_port(at);
    REQUIRE(fd >= 0);
    char *req = signed_request("idle-1", 1);
    CHECK_INT(send_all(fd, req), 0);
    free(req);
    CHECK_INT(read_responses(fd, 1), 1); /* kept alive, then idle */
    CHECK(th_wait_for(closed_by_peer, &fd, 10000));
    close(fd);
    th_kill(pid, SIGTERM);
}

/* test_refused_change_nothing: every route's refused request (forged,
 * replayed, unsigned, wrong password, altered token) is 401 (400 for a
 * token) and leaves every counter, suppression, seen id and the stream as
 * they were */
static void test_refused_change_nothing(void)
{
    char *before = engagement_state();
    /* a SendGrid body signed by someone else, and one with no signature */
    const char *sg = "[{\"email\":\"forged@example.com\",\"event\":\"spamreport\",\"sg_event_id\":"
                     "\"sg-forged\",\"herald_job\":\"0000000Aabcdefghijkl\"}]";
    CHECK_INT(post_sendgrid(sg, "[]"), 401);
    /* generic: replayed (signed an hour ago) */
    const char *gen = "{\"events\":[{\"id\":\"gen-forged\",\"type\":\"spam\",\"job\":"
                      "\"0000000Aabcdefghijkl\",\"email\":\"forged@example.com\"}]}";
    CHECK_INT(post_generic(gen, hr_now_ms() / 1000 - 3600, NULL), 401);
    /* unsigned or with a wrong password (Mailgun's: test_mailgun) */
    const char *none[] = {"Content-Type: application/json", NULL};
    const char *pm_bad[] = {"Authorization: Basic aG9va3M6bm9wZQ==", NULL};
    const struct {
        const char *path, **hdrs, *body;
    } unsigned_[] = {
        {"/webhooks/sendgrid", none, sg},
        {"/webhooks/generic", none, gen},
        {"/webhooks/postmark", pm_bad,
         "{\"RecordType\":\"SpamComplaint\",\"MessageID\":\"pm-forged\",\"Recipient\":"
         "\"forged@example.com\",\"Metadata\":{\"herald_job\":\"0000000Aabcdefghijkl\"}}"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(unsigned_); i++)
        CHECK_INT(th_http(port, "POST", unsigned_[i].path, unsigned_[i].hdrs, unsigned_[i].body,
                          NULL),
                  401);
    /* an altered unsubscribe token */
    hr_unsub u;
    char path[600];
    free(unsub_link(&u, "forged@example.com", "refused", path));
    size_t L = strlen(path);
    path[L - 5] = path[L - 5] == 'A' ? 'B' : 'A';
    CHECK_INT(unsub_post(path), 400);
    char *after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    free(before);
}

/* test_oversized_every_route: a body over webhooks-max-body is 413 on every
 * route, unsubscribe links too, and records nothing */
static void test_oversized_every_route(void)
{
    hr_unsub u;
    char upath[600];
    free(unsub_link(&u, "big@example.com", "oversized", upath));
    const char *paths[] = {"/webhooks/sendgrid", "/webhooks/mailgun", "/webhooks/postmark",
                           "/webhooks/generic", upath};
    size_t n = 70000;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = '\0';
    big[0] = '[';
    big[n - 1] = ']';
    const char *h[] = {"Authorization: Basic aG9va3M6cG0tcGFzcw==", "Content-Type: application/json",
                       NULL};
    char *before = engagement_state();
    for (size_t i = 0; i < HR_ARRAY_LEN(paths); i++) {
        int st = th_http(port, "POST", paths[i], h, big, NULL);
        CHECK_INT(st, 413);
        if (st != 413) fprintf(stderr, "  %s: %d\n", paths[i], st);
    }
    char *after = engagement_state();
    CHECK_STR(after, before);
    free(after);
    free(before);
    free(big);
    CHECK(ready_at(&port));
}

/* test_stream_bounded: the events stream is trimmed to about
 * webhooks-stream-maxlen (a server of its own: 10) as events come, so it
 * cannot grow without bound; counters still count every event */
static void test_stream_bounded(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/stream.conf", dir);
    int at = th_free_port();
    write_conf(path, at, 1 << 20, "webhooks-redis-timeout-ms 10000\nwebhooks-stream-maxlen 10\n");
    pid_t pid = spawn_server(path, "stream.log", &at);
    const char *J = "0000000Astream000001";
    free(rcmd("HSET {t}:done %s %s\t1700000000000\t1999", J + 8, J));
    enum { REQS = 5, PER = 100 };
    for (int k = 0; k < REQS; k++) {
        hr_buf body;
        hr_buf_init(&body);
        hr_buf_puts(&body, "{\"events\":[");
        for (int i = 0; i < PER; i++)
            hr_buf_printf(&body, "%s{\"id\":\"st-%d-%d\",\"type\":\"open\",\"job\":\"%s\"}",
                          i ? "," : "", k, i, J);
        hr_buf_puts(&body, "]}");
        CHECK_INT(post_generic_to(at, body.data, 0, NULL), 200);
        hr_buf_release(&body);
    }
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|open", J), REQS * PER);
    /* approximate trimming ("~") removes whole nodes of up to 100 entries */
    long xlen = rint_("XLEN {t}:events");
    if (xlen > 10 + 100) fprintf(stderr, "  XLEN %ld after %d events\n", xlen, REQS * PER);
    CHECK(xlen >= 10 && xlen <= 10 + 100);
    th_kill(pid, SIGTERM);
}

/* reply_holds says whether any string in r (arrays walked) holds needle,
 * ignoring ASCII case: a msgpack blob holds its strings as they are. */
static int reply_holds(const redisReply *r, const char *needle)
{
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++)
            if (reply_holds(r->element[i], needle)) return 1;
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) return 0;
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= r->len; i++)
        if (strncasecmp(r->str + i, needle, m) == 0) return 1;
    return 0;
}

/* address_keys counts the keys of namespace t whose name, fields, members
 * or values hold addr (every type: jobs, done, dead and unknown sets,
 * reasons, eng:*, the events stream, ...), naming each on stderr. */
static long address_keys(redisContext *c, const char *addr)
{
    static const char *const read[][2] = {
        {"hash", "HGETALL"}, {"zset", "ZRANGE"},   {"list", "LRANGE"},
        {"set", "SMEMBERS"}, {"string", "GET"},    {"stream", "XRANGE"},
    };
    long hits = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH {t}:* COUNT 1000", cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            redisReply *t = redisCommand(c, "TYPE %b", k->str, k->len), *v = NULL;
            for (size_t x = 0; t && x < sizeof read / sizeof read[0] && !v; x++) {
                if (strcmp(t->str, read[x][0]) != 0) continue;
                const char *op = read[x][1];
                v = op[0] == 'Z' || op[0] == 'L' ? redisCommand(c, "%s %b 0 -1", op, k->str, k->len)
                    : op[0] == 'X'               ? redisCommand(c, "XRANGE %b - +", k->str, k->len)
                                                 : redisCommand(c, "%s %b", op, k->str, k->len);
            }
            if (reply_holds(k, addr) || (v && reply_holds(v, addr))) {
                fprintf(stderr, "[forget] %s holds %s\n", k->str, addr);
                hits++;
            }
            if (t) freeReplyObject(t);
            if (v) freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return hits;
}

static queue_job *email_to(const char *to, int64_t run_at_ms)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_EMAIL;
    queue_set(&j->platform, "sendgrid");
    queue_set(&j->account, "main");
    queue_set(&j->campaign, "spring");
    queue_set(&j->to, to);
    queue_set(&j->to_name, "Ann Example");
    queue_set(&j->subject, "hello");
    char *html = hr_asprintf("<p>Sent to %s</p>", to);
    queue_set(&j->html, html);
    free(html);
    queue_job_set_var(j, "email", to);
    j->run_at_ms = run_at_ms;
    return j;
}

/* take_one has worker w fetch the one ready job of sendgrid:main. */
static int take_one(queue *q, const char *w, int lease_ms, queue_fetched **f)
{
    const char *lanes[] = {"sendgrid:main"};
    int n = 0;
    hr_err err = {0};
    if (queue_worker_register(q, w, lease_ms, &err) != 0 ||
        queue_fetch(q, w, lanes, 1, 1, lease_ms, f, &n, &err) != 0)
        return 0;
    return n;
}

static int reaped_to_unknown(void *q)
{
    long rq = 0, un = 0;
    hr_err err = {0};
    queue_reap(q, &rq, &un, &err);
    return rint_("ZCARD {t}:unknown:sendgrid:main") == 1;
}

static int buried_as_forgotten(void *id)
{
    const char *ukh = (const char *)id + QUEUE_TS_LEN;
    char *why = rcmd("HGET {t}:reasons %s", ukh);
    int yes = why && strncmp(why, "forgotten", 9) == 0 &&
              rint_("ZSCORE {t}:dead:sendgrid:main %s", ukh) > 0;
    free(why);
    return yes;
}

static void on_status(int status, const char *errmsg, void *priv)
{
    (void)errmsg;
    *(int *)priv = status;
}

/* unknown_async has worker w report job j unknown with reason, as a worker
 * that lost its answer does (the call is async only); returns its status. */
static int unknown_async(const queue_opts *o, const char *w, const queue_job *j,
                         const char *reason)
{
    struct ev_loop *loop = ev_loop_new(0);
    hr_err err = {0};
    queue_async *qa = queue_async_new(loop, o, &err);
    int status = -2;
    int64_t deadline = hr_now_ms() + 10000;
    while (qa && !queue_async_connected(qa) && hr_now_ms() < deadline)
        ev_run(loop, EVRUN_ONCE);
    if (qa) queue_async_unknown(qa, w, j, reason, on_status, &status);
    while (qa && status == -2 && hr_now_ms() < deadline)
        ev_run(loop, EVRUN_ONCE);
    queue_async_free(qa);
    ev_loop_destroy(loop);
    return status;
}

/* test_queue connects to the test's Redis in namespace t; *o (its url in
 * url) serves for more connections. */
static queue *test_queue(char url[400], queue_opts *o)
{
    snprintf(url, 400, "unix://%s", redis->sock);
    *o = (queue_opts){.url = url, .ns = "t"};
    hr_err err = {0};
    queue *q = queue_connect(o, &err);
    if (!q) fprintf(stderr, "queue: %s\n", err.msg);
    return q;
}

/* forget: ann's scheduled jobs and her dead one are removed; those in flight
 * and one unknown cannot be, so they are named, exit 4, and lose the
 * address: no key of the namespace holds it afterwards, also when the
 * workers holding them report them retried, dead or unknown with their own
 * copies. The unknown one, resent, is buried as forgotten by a real worker,
 * never sent. */
static void test_forget(void)
{
    char url[400];
    queue_opts o;
    queue *q = test_queue(url, &o);
    REQUIRE(q);
    hr_err err = {0};
    int64_t later = hr_now_ms() + 3600000, now = hr_now_ms() - 1000;
    enum { N = 8 };
    queue_job *jobs[N] = {email_to("ann@example.com", later), email_to("ANN@example.com ", later),
                          email_to("bob@example.com", later), email_to("ann@example.com", now),
                          email_to("ann@example.com", now),   email_to("Ann@Example.com", now),
                          email_to("ann@example.com", now),   email_to("ann@example.com", now)};
    /* an import's unique key ends with the address */
    queue_set(&jobs[4]->unique_key, "spring|wxr:1|sendgrid|main|ann@example.com");
    REQUIRE(queue_enqueue(q, jobs, 3, NULL, &err) == 0);
    /* 3: its worker dies mid-send (unknown, its reason naming her) */
    REQUIRE(queue_enqueue(q, jobs + 3, 1, NULL, &err) == 0);
    queue_fetched *f = NULL;
    REQUIRE(take_one(q, "fg-gone", 500, &f) == 1);
    CHECK_INT(queue_attempt(q, "fg-gone", f[0].ukh, &err), 0);
    queue_fetched_free(f, 1);
    CHECK(th_wait_for(reaped_to_unknown, q, 10000));
    free(rcmd("HSET {t}:reasons %s %s", queue_job_ukh(jobs[3]), "timeout: ann@example.com"));
    /* 4, 6, 7: in flight with a live worker; 5: buried, the reason naming her */
    for (int i = 4; i < N; i += i == 4 ? 2 : 1) {
        REQUIRE(queue_enqueue(q, jobs + i, 1, NULL, &err) == 0);
        REQUIRE(take_one(q, "fg-live", 600000, &f) == 1);
        queue_fetched_free(f, 1);
    }
    REQUIRE(queue_enqueue(q, jobs + 5, 1, NULL, &err) == 0);
    REQUIRE(take_one(q, "fg-live", 600000, &f) == 1);
    CHECK_INT(queue_bury(q, "fg-live", f[0].ukh, f[0].lane, jobs[5],
                         "sendgrid: 550 ann@example.com: no such user", &err),
              1);
    queue_fetched_free(f, 1);
    /* an open by ann, recorded against her first job */
    char body[400];
    snprintf(body, sizeof body,
             "{\"events\":[{\"id\":\"f-1\",\"type\":\"open\",\"job\":\"%s\",\"email\":"
             "\"ann@example.com\"}]}",
             jobs[0]->id);
    CHECK_INT(post_generic(body, 0, NULL), 200);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|open", jobs[0]->id), 1);
    CHECK(address_keys(queue_redis(q), "ann@example.com") > 0); /* the scan sees it */

    char out[600];
    snprintf(out, sizeof out, "%s/forget.out", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "forget", "ann@example.com", NULL};
    pid_t pid = th_spawn(argv, out);
    int st = -1;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 4); /* some could not be removed */
    char *text = th_read_file(out, NULL);
    CHECK(text && strstr(text, "removed 3 jobs"));
    char line[80];
    snprintf(line, sizeof line, "%s unknown", jobs[3]->id);
    CHECK(text && strstr(text, line));
    for (int i = 4; i < N; i += i == 4 ? 2 : 1) {
        snprintf(line, sizeof line, "%s in flight", jobs[i]->id);
        CHECK(text && strstr(text, line));
    }
    CHECK(text && !strstr(text, jobs[2]->id));
    free(text);
    CHECK_INT(address_keys(queue_redis(q), "ann@example.com"), 0);
    /* the live worker, which holds the address in its copies, reports them:
     * retried, buried, unknown; the scrubbed records stay */
    CHECK_INT(queue_retry(q, "fg-live", jobs[4], hr_now_ms() + 3600000, &err), 1);
    CHECK_INT(queue_bury(q, "fg-live", queue_job_ukh(jobs[6]), "sendgrid:main", jobs[6],
                         "sendgrid: 550 ann@example.com: no such user", &err),
              1);
    CHECK_INT(unknown_async(&o, "fg-live", jobs[7], "timeout: ann@example.com"), 1);
    CHECK_INT(address_keys(queue_redis(q), "ann@example.com"), 0);
    hr_err e2 = {0};
    for (int i = 0; i < N; i++) {
        queue_job *g = queue_get(q, jobs[i]->id, &e2);
        if (i == 2) /* bob keeps his */
            CHECK(g && g->to && strcmp(g->to, "bob@example.com") == 0);
        else if (i != 0 && i != 1 && i != 5) /* kept in place, scrubbed */
            CHECK(g && !g->to && !g->html && !g->unique_key && g->nvars == 0 &&
                  queue_job_get_meta(g, "forgotten"));
        else
            CHECK(g == NULL);
        queue_job_free(g);
    }
    CHECK_INT(rint_("ZCARD {t}:unknown:sendgrid:main"), 2);
    CHECK_INT(rint_("HGET {t}:eng:jobs %s|open", jobs[0]->id), 0);
    CHECK_INT(queue_is_suppressed(q, secret, "ann@example.com", &e2), 1);
    char digest[65];
    queue_suppress_hash(secret, "ann@example.com", digest);
    char *v = rcmd("HGET {t}:suppressed %s", digest);
    CHECK(v && strncmp(v, "forget\t", 7) == 0);
    free(v);

    /* the unknown one resent: a worker buries it as forgotten, sending
     * nothing (its platform's URL has no server), and the address stays out */
    CHECK_INT(queue_unknown_resolve(q, jobs[3]->id, 0, NULL, &e2), 1);
    char wconf[600], cred[600];
    snprintf(cred, sizeof cred, "%s/sg-key", dir);
    th_write_file(cred, "SG.key\n");
    char *extra = hr_asprintf("credentials-dir %s\naccount sendgrid:main base-url=http://"
                              "127.0.0.1:1 credentials=sg-key from=news@example.org\n",
                              dir);
    snprintf(wconf, sizeof wconf, "%s/worker.conf", dir);
    write_conf(wconf, port, 65536, extra);
    free(extra);
    char *wargv[] = {HERALD_BIN, "--config", wconf, "worker", "--processes", "1", NULL};
    char wout[600];
    snprintf(wout, sizeof wout, "%s/worker.out", dir);
    pid_t w = th_spawn(wargv, wout);
    CHECK(th_wait_for(buried_as_forgotten, jobs[3]->id, 20000));
    th_kill(w, SIGTERM);
    CHECK_INT(rint_("ZSCORE {t}:dead:sendgrid:main %s", queue_job_ukh(jobs[3])) > 0, 1);
    CHECK_INT(rint_("HGET {t}:stats sent|sendgrid:main") <= 0, 1);
    CHECK_INT(address_keys(queue_redis(q), "ann@example.com"), 0);

    /* bad input is exit 2 */
    char *bad[] = {HERALD_BIN, "--config", conf, "forget", "not-an-address", NULL};
    pid = th_spawn(bad, out);
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    for (int i = 0; i < N; i++)
        queue_job_free(jobs[i]);
    queue_free(q);
}

/* test_forget_unsubscribe: after a one-click unsubscribe and `herald
 * forget`, the contact's digest is in no key, field or stream entry but the
 * suppression hash's field. */
static void test_forget_unsubscribe(void)
{
    hr_unsub u;
    char path[600];
    free(unsub_link(&u, "una@example.com", "letters", path));
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL), 200);
    char digest[65], url[400];
    REQUIRE(queue_suppress_hash(secret, u.email, digest) == 0);
    queue_opts o;
    queue *q = test_queue(url, &o);
    REQUIRE(q);
    CHECK(address_keys(queue_redis(q), digest) > 1); /* the scan sees them */
    char *argv[] = {HERALD_BIN, "--config", conf, "forget", u.email, NULL};
    CHECK_INT(th_exec(argv, NULL, 1, NULL), 0);
    CHECK_INT(address_keys(queue_redis(q), digest), 1);
    CHECK_INT(rint_("HEXISTS {t}:suppressed %s", digest), 1);
    queue_free(q);
}

/* test_campaign_from_job: an event's campaign is its job's, queued or sent
 * (the done record the ack writes holds it), not what the event claims or
 * leaves out; an unmatched event keeps its own. */
static void test_campaign_from_job(void)
{
    char url[400];
    queue_opts o;
    queue *q = test_queue(url, &o);
    REQUIRE(q);
    hr_err err = {0};
    queue_job *queued = email_to("cq@example.com", hr_now_ms() + 3600000);
    queue_job *sent = email_to("cs@example.com", hr_now_ms() - 1000);
    queue_set(&queued->campaign, "winter");
    queue_set(&queued->unique_key, "winter|q");
    queue_set(&sent->campaign, "autumn");
    queue_set(&sent->unique_key, "autumn|s"); /* keeps a done record */
    REQUIRE(queue_enqueue(q, &queued, 1, NULL, &err) == 0);
    REQUIRE(queue_enqueue(q, &sent, 1, NULL, &err) == 0);
    queue_fetched *f = NULL;
    REQUIRE(take_one(q, "cj-w", 600000, &f) == 1);
    queue_ack_item it = {.ukh = f[0].ukh, .id = sent->id, .lane = "sendgrid:main",
                         .lateness_ms = -1, .campaign = sent->campaign, .metrics = 1};
    REQUIRE(queue_ack(q, "cj-w", &it, 1, NULL, &err) == 0);
    queue_fetched_free(f, 1);
    char body[900];
    snprintf(body, sizeof body,
             "{\"events\":["
             "{\"id\":\"cj1\",\"type\":\"open\",\"job\":\"%s\"},"
             "{\"id\":\"cj2\",\"type\":\"click\",\"job\":\"%s\",\"campaign\":\"claimed\"},"
             "{\"id\":\"cj3\",\"type\":\"open\",\"job\":\"%s\"},"
             "{\"id\":\"cj4\",\"type\":\"click\",\"job\":\"%s\",\"campaign\":\"claimed\"},"
             "{\"id\":\"cj5\",\"type\":\"reply\",\"job\":\"0000000Azzzzzzzzzzzz\","
             "\"campaign\":\"claimed\"}]}",
             queued->id, queued->id, sent->id, sent->id);
    CHECK(generic_answers(body, "\"recorded\":4,\"duplicates\":0,\"unmatched\":1"));
    CHECK_INT(rint_("HGET {t}:eng:campaigns winter|open"), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns winter|click"), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns autumn|open"), 1);
    CHECK_INT(rint_("HGET {t}:eng:campaigns autumn|click"), 1);
    CHECK_INT(rint_("HEXISTS {t}:eng:campaigns claimed|click"), 0);
    char *v = stream_entry(1); /* the unmatched one keeps its claim */
    CHECK(v && strstr(v, "job,,campaign,claimed,"));
    free(v);
    v = stream_entry(2);
    CHECK(v && strstr(v, ",campaign,autumn,"));
    free(v);
    queue_job_free(queued);
    queue_job_free(sent);
    queue_free(q);
}

static void test_health_metrics(void)
{
    char *m = NULL;
    CHECK_INT(th_http(port, NULL, "/metrics", NULL, NULL, &m), 200);
    CHECK(m && strstr(m, "herald_webhook_events_total{result=\"recorded\"}"));
    /* every family has # HELP and # TYPE (tests/harness) */
    char *problem = m ? th_check_exposition(m) : NULL;
    if (problem) fprintf(stderr, "exposition: %s\n", problem);
    CHECK(problem == NULL);
    free(problem);
    free(m);
    CHECK_INT(th_http(port, NULL, "/healthz", NULL, NULL, NULL), 200);
    CHECK_INT(th_http(port, NULL, "/nope", NULL, NULL, NULL), 404);
}

static int redis_blocked(void *arg)
{
    struct timeval tv = {0, 30000};
    redisContext *c = redisConnectUnixWithTimeout(redis->sock, tv);
    if (!c || c->err) {
        redisFree(c);
        return 1;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "PING");
    int blocked = r == NULL;
    if (r) freeReplyObject(r);
    redisFree(c);
    return blocked;
}

static long metric_requests(void)
{
    char *m = NULL;
    th_http(port, NULL, "/metrics", NULL, NULL, &m);
    char *p = m ? strstr(m, "\nherald_webhook_requests_total ") : NULL;
    long v = p ? atol(p + 31) : -1;
    free(m);
    return v;
}

static long requests_before;
static int request_arrived(void *arg)
{
    return metric_requests() >= requests_before + 2;
}

static void test_graceful_stop(void)
{
    /* Redis sleeps, so a request is held waiting for its script when SIGTERM
     * arrives: it must still be answered, then the process exits 0. */
    char *cli[] = {"/usr/bin/redis-cli", "-s", redis->sock, "DEBUG", "SLEEP", "1.5", NULL};
    th_spawn(cli, "/dev/null");
    CHECK(th_wait_for(redis_blocked, NULL, 5000));
    requests_before = metric_requests();
    int fd = dial();
    REQUIRE(fd >= 0);
    char *req = signed_request("stop-1", 1);
    send_all(fd, req);
    free(req);
    CHECK(th_wait_for(request_arrived, NULL, 5000));
    kill(server, SIGTERM);
    CHECK_INT(read_responses(fd, 1), 1);
    close(fd);
    int st = -1;
    waitpid(server, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* test_url_password: a redis-url with the wrong scheme is refused naming
 * the url, without its password */
/* hook_fmt_i64 writes what printf's %lld does (it writes the numbers of
 * every answer and Redis command) */
static void test_fmt_i64(void)
{
    const int64_t edge[] = {0, 9, 10, 99, 100, 101, 999, 1000, 1700000000123LL, INT64_MAX,
                            INT64_MIN, INT64_MIN + 1};
    char got[24], want[32];
    for (size_t i = 0; i < HR_ARRAY_LEN(edge); i++) {
        snprintf(want, sizeof want, "%lld", (long long)edge[i]);
        CHECK_INT((int)hook_fmt_i64(got, edge[i]), (int)strlen(want));
        CHECK_STR(got, want);
    }
    int bad = 0;
    for (int64_t v = -20000; v <= 20000; v++) {
        snprintf(want, sizeof want, "%lld", (long long)v);
        if (hook_fmt_i64(got, v) != strlen(want) || strcmp(got, want) != 0) bad++;
    }
    CHECK_INT(bad, 0);
}

static void test_url_password(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/badurl.conf", dir);
    char *text = hr_asprintf("redis-url http://herald:s3cret-pw@redis.internal:6379/0\n"
                             "namespace t\nsecret-file %s/secret\n",
                             dir);
    th_write_file(path, text);
    free(text);
    char *argv[] = {HERALD_BIN, "--config", path, "webhooks", NULL};
    char *out = NULL;
    CHECK(th_exec(argv, NULL, 1, &out) != 0);
    CHECK(out && strstr(out, "\"http://***@redis.internal:6379/0\": expected redis://"));
    CHECK(out && !strstr(out, "s3cret"));
    free(out);
}

static int exited(void *arg)
{
    int *st = arg;
    return waitpid((pid_t)st[0], &st[1], WNOHANG) == st[0];
}

/* start_refused_at: `herald webhooks` will not start on the config at path (with
 * env NAME=VALUE set when given) and says want; `herald config check` finds
 * the same problem and exits 2. */
static void start_refused_at(const char *path, const char *env, const char *want)
{
    char log[600];
    snprintf(log, sizeof log, "%s/bad.log", dir);
    char *name = env ? hr_strndup(env, strcspn(env, "=")) : NULL;
    if (env) setenv(name, strchr(env, '=') + 1, 1);
    char *argv[] = {HERALD_BIN, "--config", (char *)path, "webhooks", NULL};
    int st[2] = {(int)th_spawn(argv, log), 0};
    /* without the check it starts and serves: stop it, and fail */
    int gone = th_wait_for(exited, st, 10000);
    if (!gone) th_kill((pid_t)st[0], SIGTERM);
    char *text = th_read_file(log, NULL);
    CHECK(gone && WIFEXITED(st[1]) && WEXITSTATUS(st[1]) != 0);
    CHECK(text && strstr(text, want));
    if (!gone || !text || !strstr(text, want))
        fprintf(stderr, "[%s] webhooks said:\n%s\n", want, text ? text : "");
    free(text);
    char *cargv[] = {HERALD_BIN, "--config", (char *)path, "config", "check", NULL};
    char *out = NULL;
    CHECK_INT(th_exec(cargv, NULL, 0, &out), 2);
    CHECK(out && strstr(out, want));
    if (!out || !strstr(out, want))
        fprintf(stderr, "[%s] config check said:\n%s\n", want, out ? out : "");
    free(out);
    if (env) unsetenv(name);
    free(name);
}

/* start_refused: start_refused_at on bad.conf, the test config with extra lines (from
 * line 12 on) */
static void start_refused(const char *extra, const char *env, const char *want)
{
    char path[600];
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    write_conf(path, th_free_port(), 65536, extra);
    start_refused_at(path, env, want);
}

/* test_bad_numbers: every webhooks-* number is range-checked by the server
 * at start and by config check, through the same table. A negative stream
 * length made record.lua XADD, then fail at XTRIM before the seen ids and
 * counters (half a batch, and a 503 the provider retries into duplicates); a
 * replay window of 0 took any old signature; max-body -1 was SIZE_MAX. */
static void test_bad_numbers(void)
{
    start_refused("webhooks-stream-maxlen -3\n", NULL,
            "bad.conf:12: webhooks-stream-maxlen: expected 1..1000000000, got -3");
    start_refused("webhooks-stream-maxlen 0\n", NULL, "bad.conf:12: webhooks-stream-maxlen: expected");
    start_refused("webhooks-max-body -1\n", NULL, "bad.conf:12: webhooks-max-body: expected 1..");
    start_refused("webhooks-max-conns 0\n", NULL, "bad.conf:12: webhooks-max-conns: expected 1..");
    start_refused("webhooks-request-timeout-ms 0\n", NULL,
            "bad.conf:12: webhooks-request-timeout-ms: expected 1..");
    start_refused("webhooks-idle-timeout-ms -5\n", NULL,
            "bad.conf:12: webhooks-idle-timeout-ms: expected 1..");
    start_refused("webhooks-redis-timeout-ms 0\n", NULL,
            "bad.conf:12: webhooks-redis-timeout-ms: expected 1..3600000, got 0");
    start_refused("webhooks-replay-window 0\n", NULL, "bad.conf:12: webhooks-replay-window: expected 1..");
    start_refused("webhooks-replay-window -300\n", NULL,
            "bad.conf:12: webhooks-replay-window: expected 1..");
    start_refused("webhooks-dedupe-days 0\n", NULL, "bad.conf:12: webhooks-dedupe-days: expected 1..");
    /* the environment is checked the same way */
    start_refused(NULL, "HERALD_WEBHOOKS_STREAM_MAXLEN=-1",
            "environment: webhooks-stream-maxlen: expected 1..");
    /* the dedupe period must outlast twice the window */
    start_refused("webhooks-replay-window 86400\nwebhooks-dedupe-days 1\n", NULL,
            "webhooks-dedupe-days: 1 is less than twice webhooks-replay-window (86400 s)");
}

/* test_bad_credentials: a credential that exists but cannot be read (a
 * symlink loop, a directory) in $CREDENTIALS_DIRECTORY is an error naming
 * it, not a route quietly off; a SendGrid key config check passes is one
 * the server takes, and the refusal names the directive and the file */
static void test_bad_credentials(void)
{
    char cdir[600], p[700], env[700];
    snprintf(cdir, sizeof cdir, "%s/creds", dir);
    REQUIRE(mkdir(cdir, 0700) == 0);
    snprintf(env, sizeof env, "CREDENTIALS_DIRECTORY=%s", cdir);
    snprintf(p, sizeof p, "%s/mailgun-signing-key", cdir);
    REQUIRE(symlink(p, p) == 0);
    /* no mailgun-signing-key-file: the service's credential is the key */
    char path[600], want[900];
    snprintf(path, sizeof path, "%s/creds.conf", dir);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace t\nsecret-file %s/secret\n"
                             "webhooks-listen 127.0.0.1:%d\n",
                             redis->sock, dir, th_free_port());
    th_write_file(path, text);
    free(text);
    snprintf(want, sizeof want,
             "credential mailgun-signing-key-file: cannot open %s: Too many levels of symbolic "
             "links", p);
    start_refused_at(path, env, want);
    REQUIRE(unlink(p) == 0);
    REQUIRE(mkdir(p, 0700) == 0);
    snprintf(want, sizeof want, "credential mailgun-signing-key-file: %s is a directory", p);
    start_refused_at(path, env, want);
    REQUIRE(rmdir(p) == 0);
    /* absent: the route is simply not configured */
    char *cargv[] = {HERALD_BIN, "--config", path, "config", "check", NULL};
    setenv("CREDENTIALS_DIRECTORY", cdir, 1);
    CHECK_INT(th_exec(cargv, NULL, 0, NULL), 0);
    unsetenv("CREDENTIALS_DIRECTORY");

    snprintf(p, sizeof p, "%s/not-a-key.pem", dir);
    th_write_file(p, "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n");
    char *extra = hr_asprintf("sendgrid-webhook-key-file %s\n", p);
    snprintf(want, sizeof want,
             "credential sendgrid-webhook-key-file: %s: sendgrid: public key is neither PEM "
             "nor base64 DER", p);
    start_refused(extra, NULL, want);
    free(extra);
}

/* test_loose_key_file: a key file others may read is a warning, in config
 * check and in the server's log at start, and it still serves; a key file
 * with a trailing tab works as the key without it */
static void test_loose_key_file(void)
{
    char path[600], log[600], key[600];
    int at = th_free_port();
    snprintf(path, sizeof path, "%s/loose.conf", dir);
    snprintf(key, sizeof key, "%s/gen-tab.key", dir);
    char *line = hr_asprintf("%s\t\n", gen_key);
    th_write_file(key, line);
    free(line);
    REQUIRE(chmod(key, 0644) == 0);
    char *extra = hr_asprintf("webhook-hmac-key-file %s\n", key);
    write_conf(path, at, 65536, extra);
    free(extra);
    char *cargv[] = {HERALD_BIN, "--config", path, "config", "check", NULL};
    char *out = NULL;
    CHECK_INT(th_exec(cargv, NULL, 0, &out), 0);
    char *want = hr_asprintf("warning: credential webhook-hmac-key-file: %s is open to group or "
                             "others (mode 0644; chmod go-rwx)", key);
    CHECK(out && strstr(out, want));
    if (!out || !strstr(out, want)) fprintf(stderr, "config check said:\n%s\n", out ? out : "");
    free(out);
    pid_t pid = spawn_server(path, "loose.log", &at);
    snprintf(log, sizeof log, "%s/loose.log", dir);
    CHECK(log_says(log, "credential webhook-hmac-key-file: ") && log_says(log, "/gen-tab.key is open to group or others"));
    char body[300], *resp = NULL;
    snprintf(body, sizeof body,
             "{\"events\":[{\"id\":\"tab1\",\"type\":\"like\",\"job\":\"%s\"}]}", JOB);
    CHECK_INT(post_generic_to(at, body, 0, &resp), 200);
    free(resp);
    th_kill(pid, SIGTERM);
    REQUIRE(chmod(key, 0600) == 0);
    CHECK_INT(th_exec(cargv, NULL, 0, &out), 0);
    CHECK(out && !strstr(out, want));
    free(out);
    free(want);
}

int main(void)
{
    setup();
    th_run("generic", test_generic);
    th_run("unknown_job", test_unknown_job);
    th_run("platform_id", test_platform_id);
    th_run("one_batch", test_one_batch);
    th_run("event_time_range", test_event_time_range);
    th_run("sendgrid", test_sendgrid);
    th_run("mailgun", test_mailgun);
    th_run("mailgun_replay", test_mailgun_replay);
    th_run("mailgun_redelivery", test_mailgun_redelivery);
    th_run("record_tokens", test_record_tokens);
    th_run("seen_rotation", test_seen_rotation);
    th_run("generic_namespace", test_generic_namespace);
    th_run("postmark", test_postmark);
    th_run("oversized", test_oversized);
    th_run("keepalive_pipelining", test_keepalive_pipelining);
    th_run("oversized_upload", test_oversized_upload);
    th_run("auth_headers", test_auth_headers);
    th_run("pipeline_flood", test_pipeline_flood);
    th_run("pipeline_half_close", test_pipeline_half_close);
    th_run("slow_client", test_slow_client);
    th_run("many_connections", test_many_connections);
    th_run("connection_cap", test_connection_cap);
    th_run("nofile", test_nofile);
    th_run("unsubscribe", test_unsubscribe);
    th_run("idle_timeout", test_idle_timeout);
    th_run("refused_change_nothing", test_refused_change_nothing);
    th_run("oversized_every_route", test_oversized_every_route);
    th_run("forget", test_forget);
    th_run("campaign_from_job", test_campaign_from_job);
    th_run("forget_unsubscribe", test_forget_unsubscribe);
    th_run("health_metrics", test_health_metrics);
    th_run("url_password", test_url_password);
    th_run("bad_numbers", test_bad_numbers);
    th_run("bad_credentials", test_bad_credentials);
    th_run("loose_key_file", test_loose_key_file);
    th_run("fmt_i64", test_fmt_i64);
    th_run("stream_bounded", test_stream_bounded);
    th_run("script_flush", test_script_flush);
    th_run("redis_down", test_redis_down);
    th_run("redis_stall", test_redis_stall);
    th_run("graceful_stop", test_graceful_stop);
    EVP_PKEY_free(sg_key);
    free(dir);
    return th_main_end();
}
