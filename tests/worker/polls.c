/* polls.c: engagement polls: a sent post gets polls scheduled (here +3 s
 * and +5 s), the reconciler turns them into poll jobs in the post's lane,
 * a worker reads the counts through platforms/ and records the rise where
 * the webhooks server records pushed events (eng:jobs, eng:totals, events). */
#include "wktest.h"

static int polled(void *arg)
{
    (void)arg;
    wt_tick();
    /* 5 posts + 10 polls done, and likes counted */
    return wt_done() >= 15 && wt_redis_int("HGET {t}:eng:totals like", "") >= 5;
}

static void polls_record_engagement(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "polled post", 5);
    pid_t w = wt_worker(NULL, "polls", "--processes", "1", NULL);
    CHECK(th_wait_for(polled, NULL, 20000));
    wt_term(w);
    /* every sent post has its likes in eng:jobs, keyed by its job id */
    char *ids = th_redis_cmd(wt.redis, "HKEYS {t}:eng:jobs");
    REQUIRE(ids);
    int n = 0;
    for (char *p = ids; (p = strstr(p, "|like")); p++) n++;
    CHECK_INT(n, 5);
    free(ids);
    CHECK(wt_redis_int("XLEN {t}:events", "") >= 5);
    CHECK_INT(wt_redis_int("ZCARD {t}:polls", ""), 0);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 5);
    CHECK_INT(dups, 0);
}

int main(void)
{
    wt_start("poll-schedule 3s,5s\n");
    th_run("polls_record_engagement", polls_record_engagement);
    wt_stop();
    return th_main_end();
}
