/* readback.c: the reconciler settles jobs whose outcome is unknown by
 * reading back, without losing one or logging in per job: an X post is the
 * job's only when its whole text matches (a post that merely starts the
 * same way once resolved a never-sent job as sent); Bluesky read-backs of
 * one account share a session; a lane with more unknown jobs than a pass
 * reads has them all looked at in turn. */
#include "wktest.h"

static void enqueue_text(const char *text, const char *key)
{
    wt_enqueue_job(wt_post_job("x", "@a", key, text));
}

static const char *unknown_key = "";

/* settled: want jobs done and the lane's unknown set at most left. */
typedef struct settle_goal {
    long done, left;
} settle_goal;

static int settled(void *arg)
{
    settle_goal *g = arg;
    wt_tick();
    return wt_done() >= g->done && wt_redis_int("ZCARD %s", unknown_key) <= g->left;
}

/* posted_then_lost posts first, then enqueues second, whose worker dies
 * right after its attempt record (never posted): the reconciler must read
 * second back as absent, not take first for it, and second is sent. */
static void posted_then_lost(const char *first, const char *second, const char *tag)
{
    wt_reset();
    unknown_key = "{t}:unknown:x:@a";
    enqueue_text(first, "first");
    pid_t w = wt_worker(NULL, tag, "--processes", "1", NULL);
    CHECK(wt_wait_done(1, 10000));
    wt_term(w);
    enqueue_text(second, "second");
    char env[800], log[64];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=after_attempt:1:%s/crashed-%s", wt.dir,
             tag);
    snprintf(log, sizeof log, "%s-lost", tag);
    w = wt_worker(env, log, "--processes", "1", "--lease", "1s", NULL);
    settle_goal g = {2, 0};
    CHECK(th_wait_for(settled, &g, 20000));
    wt_term(w);
    long dups = 0;
    CHECK_INT(wt_sandbox_posts("x", &dups), 2); /* second read back absent, then sent */
    CHECK_INT(dups, 0);
}

/* a post that only starts the same way is not the job's */
static void x_whole_text(void)
{
    posted_then_lost("Weekly roundup from the Shop blog, issue number 12: new shoes",
                     "Weekly roundup from the Shop blog, issue number 13: summer hats", "x");
}

/* X shows links as t.co: two posts that differ only in their link are
 * told apart by the expanded URLs X's entities give */
static void x_link_told_apart(void)
{
    posted_then_lost("New on the blog: https://shop.example/blog/spring?utm_source=x",
                     "New on the blog: https://shop.example/blog/summer?utm_source=x", "link");
}

/* a post the timeline does not show is not believed absent until it has
 * been unknown for reconcile-timeline-settle (timelines lag): read back
 * again and again meanwhile, never sent again */
static int read_back_thrice(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_sandbox_count("x", "read") >= 3;
}

static void x_absent_waits_settle(void)
{
    wt_reset();
    unknown_key = "{t}:unknown:x:@a";
    enqueue_text("Doors open at nine", "doors");
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=after_attempt:1:%s/crashed-settle", wt.dir);
    setenv("HERALD_RECONCILE_TIMELINE_SETTLE", "1h", 1);
    pid_t w = wt_worker(env, "settle", "--processes", "1", "--lease", "1s", NULL);
    unsetenv("HERALD_RECONCILE_TIMELINE_SETTLE");
    CHECK(th_wait_for(read_back_thrice, NULL, 20000));
    wt_term(w);
    CHECK_INT(wt_sandbox_posts("x", NULL), 0);
    CHECK_INT(wt_redis_int("ZCARD %s", unknown_key), 1);
}

/* bluesky_unknown leaves n Bluesky jobs in the unknown set: the worker
 * dies before its second acknowledgement (the first is the job that logged
 * in; the others waited for its session and went out together), no
 * reconciler runs, the reaper moves them. Returns how many went there. */
static long bluesky_unknown(int n, const char *tag)
{
    wt_reset();
    unknown_key = "{t}:unknown:bluesky:@b.bsky.social";
    wt_enqueue("bluesky", "@b.bsky.social", tag, n);
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=before_ack:2:%s/crashed-%s", wt.dir, tag);
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(env, tag, "--processes", "1", "--concurrency", "64", "--lease", "1s", NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    long unknown = 0;
    for (int i = 0; i < 2000; i++) { /* 20 s */
        wt_tick();
        unknown = wt_redis_int("ZCARD %s", unknown_key);
        if (unknown + wt_done() >= n) break;
        usleep(10000);
    }
    wt_term(w);
    return unknown;
}

static void reconciler_one_login(void)
{
    long unknown = bluesky_unknown(20, "login");
    CHECK(unknown >= 4);
    long before = wt_sandbox_count("bluesky", "session");
    pid_t w = wt_worker(NULL, "login-rc", "--processes", "1", NULL);
    settle_goal g = {20, 0};
    CHECK(th_wait_for(settled, &g, 20000));
    wt_term(w);
    long logins = wt_sandbox_count("bluesky", "session") - before;
    /* a job read back absent goes back to its lane: the worker that sends
     * it logs in too */
    char log[700];
    snprintf(log, sizeof log, "%s/login-rc.log", wt.dir);
    char *text = th_read_file(log, NULL);
    long resent = 0;
    for (const char *p = text; p && (p = strstr(p, "reconciled: not sent")); p++)
        resent++;
    free(text);
    if (logins > 1 + resent)
        fprintf(stderr, "  %ld unknown jobs read back with %ld logins (%ld sent again)\n", unknown,
                logins, resent);
    CHECK(logins <= 1 + resent);
}

/* 100 unknown jobs that cannot be settled (gone from the jobs hash, as if
 * an operator deleted them) sort first: the real ones after them are still
 * read back. */
static void reconciler_past_first_page(void)
{
    long unknown = bluesky_unknown(5, "page");
    CHECK(unknown >= 1);
    for (int i = 0; i < 100; i++) {
        char ukh[16];
        snprintf(ukh, sizeof ukh, "zz%010d", i);
        free(th_redis_cmd(wt.redis, "ZADD %s 1 %s", unknown_key, ukh));
    }
    pid_t w = wt_worker(NULL, "page-rc", "--processes", "1", NULL);
    settle_goal g = {5, 100};
    CHECK(th_wait_for(settled, &g, 20000));
    wt_term(w);
    CHECK_INT(wt_done(), 5);
}

int main(void)
{
    wt_start(NULL);
    th_run("x_whole_text", x_whole_text);
    th_run("x_link_told_apart", x_link_told_apart);
    th_run("x_absent_waits_settle", x_absent_waits_settle);
    th_run("reconciler_one_login", reconciler_one_login);
    th_run("reconciler_past_first_page", reconciler_past_first_page);
    wt_stop();
    return th_main_end();
}
