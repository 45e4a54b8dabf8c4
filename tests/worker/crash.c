/* crash.c: kill -9 at each step of a send (after fetch, after the attempt
 * record, during the send, after the answer, before the acknowledgement),
 * with up to 512 sends in flight out of 2,000 jobs: afterwards every job is
 * sent exactly once (the sandbox's duplicate count is zero, nothing left
 * unknown) and none is lost. */
#include "wktest.h"

static void crash_at(const char *step, const char *platform, const char *account)
{
    wt_reset();
    enum { N = 2000 };
    wt_enqueue(platform, account, step, N);
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=%s:300:%s/crashed-%s-%s", step, wt.dir,
             step, platform);
    /* The worker process dies the 300th time it reaches the step, with up to
     * 512 sends in flight; the supervisor restarts it; the reconciler settles
     * what was unknown. */
    pid_t w = wt_worker(env, step, "--processes", "1", "--concurrency", "512", "--lease", "1s",
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

/* A worker that stalls past its lease (a frozen host) right after a fetch
 * must not send what it had recorded attempts for (the reaper may have
 * handed those jobs on: they go to unknown and are read back), and comes
 * back under a new id so the reaper returns what it dropped: the old id
 * renewed would strand them, or let a re-fetch be sent twice. */
static void stall_past_lease(void)
{
    wt_reset();
    enum { N = 500 };
    wt_enqueue("x", "@a", "stall", N);
    pid_t w = wt_worker("HERALD_WORKER_STALL_AT=after_fetch:100:2500", "stall", "--processes",
                        "1", "--concurrency", "64", "--lease", "1s", NULL);
    CHECK(wt_wait_done(N, 28000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 0);
    char log[700];
    snprintf(log, sizeof log, "%s/stall.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "test seam: stalling"));
    CHECK(text && (strstr(text, "lease lost") || strstr(text, "lease not vouched")));
    free(text);
}

int main(void)
{
    wt_start(NULL);
    th_run("stall_past_lease", stall_past_lease);
    th_run("crash_after_fetch", crash_after_fetch);
    th_run("crash_after_attempt", crash_after_attempt);
    th_run("crash_during_send", crash_during_send);
    th_run("crash_after_answer", crash_after_answer);
    th_run("crash_before_ack", crash_before_ack);
    th_run("crash_mastodon", crash_mastodon);
    wt_stop();
    return th_main_end();
}
