/* send.c: `herald worker` end to end against a real redis-server and
 * `herald sandbox`: every job sent exactly once under injected faults, a
 * 401 pauses only its lane, and kill -9 at each step of a send (after fetch,
 * after the attempt record, during the send, after the answer, before the
 * acknowledgement) loses nothing and doubles nothing. */
#include "wktest.h"

static void sends_all(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "hello from a", 300);
    wt_enqueue("mastodon", "@m", "toot", 100);
    pid_t w = wt_worker(NULL, "sends_all", "--processes", "2", "--concurrency", "32", NULL);
    CHECK(wt_wait_done(400, 20000));
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 300);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_sandbox_posts("mastodon", &dups), 100);
    CHECK_INT(dups, 0);
    wt_term(w);
    /* the platform id -> job index the webhooks server matches against */
    CHECK_INT(wt_redis_int("HLEN {t}:platform_ids", ""), 400);
    CHECK_INT(wt_redis_int("HLEN {t}:inflight:x", ""), 0);
}

static void faults_retry(void)
{
    wt_reset();
    const char *faults = "{\"platform\":\"x\",\"rate500\":0.3,\"rate429\":0.1,\"retry_after\":1}";
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, faults, NULL), 200);
    wt_enqueue("x", "@a", "flaky", 120);
    pid_t w = wt_worker(NULL, "faults", "--processes", "1", "--concurrency", "16", NULL);
    CHECK(wt_wait_done(120, 25000));
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 120);
    CHECK_INT(dups, 0);
    CHECK(wt_redis_int("HLEN {t}:stats", "") > 0);
    wt_term(w);
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@a", ""), 0);
    /* 30% 500s: five in a row happen, and the breaker opens rather than
     * burning attempts, then a probe closes it */
    char log[700];
    snprintf(log, sizeof log, "%s/faults.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "\"to\":\"open\""));
    CHECK(text && strstr(text, "\"to\":\"closed\""));
    free(text);
}

static int some_done(void *arg)
{
    (void)arg;
    return wt_done() >= 8;
}

static void sigterm_drains(void)
{
    wt_reset();
    /* slow answers, so sends are in flight when SIGTERM comes */
    const char *faults = "{\"platform\":\"x\",\"slow_ms\":300}";
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, faults, NULL), 200);
    wt_enqueue("x", "@a", "drain", 200);
    pid_t w = wt_worker(NULL, "drain", "--processes", "2", "--concurrency", "16",
                        "--shutdown-timeout", "10s", NULL);
    CHECK(th_wait_for(some_done, NULL, 15000));
    wt_term(w); /* waits for the supervisor, which waits for its workers */
    long done = wt_done();
    long dups = -1;
    /* every send that started finished and was recorded: nothing unknown,
     * nothing left in flight, the rest back in the lane */
    CHECK_INT(wt_sandbox_posts("x", &dups), done);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 0);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@a", "") + done, 200);
    CHECK(done < 200);
    char log[700];
    snprintf(log, sizeof log, "%s/drain.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "finishing sends in flight"));
    CHECK(text && !strstr(text, "signal 15"));
    free(text);
    th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, "{\"platform\":\"x\"}", NULL);
}

static int half_done(void *arg)
{
    (void)arg;
    return wt_done() >= 100;
}

static void redis_restart(void)
{
    wt_reset();
    enum { N = 400 };
    wt_enqueue("bluesky", "@b.bsky.social", "through the outage", N);
    pid_t w = wt_worker(NULL, "redis_restart", "--processes", "2", "--concurrency", "32",
                        "--lease", "1s", NULL);
    CHECK(th_wait_for(half_done, NULL, 15000));
    th_redis_stop(wt.redis);    /* kill -9: append-only with fsync always */
    th_redis_restart(wt.redis); /* workers reconnect with backoff */
    queue_free(wt.q);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", wt.redis->sock);
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    wt.q = queue_connect(&o, &err);
    REQUIRE(wt.q);
    CHECK(wt_wait_done(N, 25000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("bluesky", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:bluesky:@b.bsky.social", ""), 0);
}

static int bad_lane_paused(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_redis_int("SISMEMBER {t}:paused %s", "x:@bad") == 1;
}

static void reauth_pauses_one_lane(void)
{
    wt_reset();
    wt_enqueue("x", "@bad", "refused", 20);
    wt_enqueue("x", "@b", "fine", 150);
    pid_t w = wt_worker(NULL, "reauth", "--processes", "1", "--concurrency", "16", NULL);
    CHECK(wt_wait_done(150, 20000));
    CHECK(th_wait_for(bad_lane_paused, NULL, 10000));
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 150);
    wt_term(w);
    /* held, counted and visible, never deleted */
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@bad", ""), 0);
    long held = wt_redis_int("ZCARD {t}:retry:x:@bad", "") +
                wt_redis_int("LLEN {t}:ready:x:@bad", "") +
                wt_redis_int("ZCARD {t}:sched:x:@bad", "");
    CHECK_INT(held, 20);
    CHECK_INT(wt_done(), 150);
}

static void crash_at(const char *step, const char *platform, const char *account)
{
    wt_reset();
    enum { N = 400 };
    wt_enqueue(platform, account, step, N);
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=%s:40:%s/crashed-%s-%s", step, wt.dir, step,
             platform);
    /* The worker process dies the 40th time it reaches the step, with up to
     * 64 sends in flight; the supervisor restarts it; the reconciler settles
     * what was unknown. */
    pid_t w = wt_worker(env, step, "--processes", "1", "--concurrency", "64", "--lease", "1s",
                        NULL);
    int ok = wt_wait_done(N, 28000);
    CHECK(ok);
    wt_term(w);
    long dups = -1;
    long posts = wt_sandbox_posts(platform, &dups);
    if (!ok || posts != N || dups != 0)
        fprintf(stderr, "crash_at %s: done %ld, posts %ld, dups %ld\n", step, wt_done(), posts,
                dups);
    CHECK_INT(posts, N);
    /* Mastodon's read-back is the same request with the same
     * Idempotency-Key: the sandbox answers it from its record and counts it
     * as a replay; no post is made twice (posts == N). */
    if (strcmp(platform, "mastodon") != 0) CHECK_INT(dups, 0);
    char lane[96];
    snprintf(lane, sizeof lane, "{t}:unknown:%s:%s", platform, account);
    CHECK_INT(wt_redis_int("ZCARD %s", lane), 0);
    /* it really crashed */
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", wt.dir, step);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "test seam: crashing"));
    free(text);
}

static void crash_after_fetch(void) { crash_at("after_fetch", "bluesky", "@b.bsky.social"); }
static void crash_after_attempt(void) { crash_at("after_attempt", "bluesky", "@b.bsky.social"); }
static void crash_during_send(void) { crash_at("during_send", "bluesky", "@b.bsky.social"); }
static void crash_after_answer(void) { crash_at("after_answer", "bluesky", "@b.bsky.social"); }
static void crash_before_ack(void) { crash_at("before_ack", "bluesky", "@b.bsky.social"); }
static void crash_mastodon(void) { crash_at("after_answer", "mastodon", "@m"); }

int main(void)
{
    wt_start(NULL);
    th_run("sends_all", sends_all);
    th_run("faults_retry", faults_retry);
    th_run("reauth_pauses_one_lane", reauth_pauses_one_lane);
    th_run("sigterm_drains", sigterm_drains);
    th_run("redis_restart", redis_restart);
    th_run("crash_after_fetch", crash_after_fetch);
    th_run("crash_after_attempt", crash_after_attempt);
    th_run("crash_during_send", crash_during_send);
    th_run("crash_after_answer", crash_after_answer);
    th_run("crash_before_ack", crash_before_ack);
    th_run("crash_mastodon", crash_mastodon);
    wt_stop();
    return th_main_end();
}
