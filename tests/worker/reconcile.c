/* reconcile.c: the reconciler reads back a job that stays unknown less and
 * less often (the gap doubling from reconcile-interval), not on every pass,
 * and a restarted reconciler keeps the schedule. (What a read-back finds:
 * readback.c.) */
#include "wktest.h"

static const char *lane_unknown = "{t}:unknown:x:@a";

/* gap_ms: the gap before the unknown job's next read-back that the
 * reconciler keeps in Redis, or -1 */
static long gap_ms(void)
{
    char *ukh = th_redis_cmd(wt.redis, "ZRANGE %s 0 0", lane_unknown);
    long gap = -1;
    if (ukh && *ukh) {
        char *v = th_redis_cmd(wt.redis, "HGET {t}:readback:x:@a %s", ukh);
        const char *colon = v ? strchr(v, ':') : NULL;
        if (colon) gap = strtol(colon + 1, NULL, 10);
        free(v);
    }
    free(ukh);
    return gap;
}

static int gap_reached(void *arg)
{
    wt_tick();
    return gap_ms() >= *(long *)arg;
}

/* unknown_for_ms: how long (Redis's clock) the job has been unknown */
static long unknown_for_ms(void)
{
    char *since = th_redis_cmd(wt.redis, "ZRANGE %s 0 0 WITHSCORES", lane_unknown);
    char *now = th_redis_cmd(wt.redis, "TIME");
    const char *score = since ? strchr(since, '\n') : NULL;
    const char *us = now ? strchr(now, '\n') : NULL;
    long ms = score && us ? strtol(now, NULL, 10) * 1000 + strtol(us + 1, NULL, 10) / 1000 -
                                strtol(score + 1, NULL, 10)
                          : -1;
    free(since);
    free(now);
    return ms;
}

static void readback_backs_off(void)
{
    wt_reset();
    wt_enqueue_job(wt_post_job("x", "@a", "doors", "Doors open at ten"));
    /* the worker dies after the attempt record, before posting: the post is
     * absent, and believed absent only after an hour, so it stays unknown */
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=after_attempt:1:%s/crashed-backoff",
             wt.dir);
    setenv("HERALD_RECONCILE_TIMELINE_SETTLE", "1h", 1);
    pid_t w = wt_worker(env, "backoff", "--processes", "1", "--lease", "1s", NULL);
    /* read back at 0, then after 200, 400, 800 and 1600 ms: five
     * read-backs over at least 15 passes of 200 ms (a read-back per pass
     * would be 15 or more) */
    long gap = 3200;
    CHECK(th_wait_for(gap_reached, &gap, 30000));
    CHECK_INT(wt_sandbox_count("x", "read"), 5);
    CHECK(unknown_for_ms() >= 3000);
    /* a new reconciler goes on with the schedule: one more read-back
     * 3200 ms after the last (starting over would be 1 + 5 more) */
    wt_term(w);
    w = wt_worker(env, "backoff-again", "--processes", "1", "--lease", "1s", NULL);
    unsetenv("HERALD_RECONCILE_TIMELINE_SETTLE");
    gap = 6400;
    CHECK(th_wait_for(gap_reached, &gap, 30000));
    CHECK_INT(wt_sandbox_count("x", "read"), 6);
    wt_term(w);
    CHECK_INT(wt_sandbox_posts("x", NULL), 0);
    CHECK_INT(wt_redis_int("ZCARD %s", lane_unknown), 1);
}

int main(void)
{
    wt_start(NULL);
    th_run("readback_backs_off", readback_backs_off);
    wt_stop();
    return th_main_end();
}
