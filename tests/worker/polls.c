/* polls.c: engagement polls: a sent post gets polls scheduled (here +3 s
 * and +5 s), the reconciler turns them into poll jobs in the post's lane,
 * a worker reads the counts through platforms/ and records the rise where
 * the webhooks server records pushed events (eng:jobs, eng:totals, events,
 * trimmed to webhooks-stream-maxlen). */
#include "wktest.h"

static int polled(void *arg)
{
    (void)arg;
    wt_tick();
    /* 5 posts + 10 polls done, and likes counted */
    return wt_done() >= 15 && wt_redis_int("HGET {t}:eng:totals like", "") >= 5;
}

/* liked_jobs: how many jobs eng:jobs has likes of */
static int liked_jobs(void)
{
    char *ids = th_redis_cmd(wt.redis, "HKEYS {t}:eng:jobs");
    int n = 0;
    for (char *p = ids; p && (p = strstr(p, "|like")); p++) n++;
    free(ids);
    return n;
}

/* count: occurrences of what in s */
static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

static void polls_record_engagement(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "polled post", 5);
    pid_t w = wt_worker(NULL, "polls", "--processes", "1", NULL);
    CHECK(th_wait_for(polled, NULL, 20000));
    wt_term(w);
    /* every sent post has its likes in eng:jobs, keyed by its job id */
    CHECK_INT(liked_jobs(), 5);
    CHECK(wt_redis_int("XLEN {t}:events", "") >= 5);
    CHECK_INT(wt_redis_int("ZCARD {t}:polls", ""), 0);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 5);
    CHECK_INT(dups, 0);
    /* polls are read, not sent: stats count them apart (they were counted
     * as sends, tripling "sent") and so do the log lines */
    CHECK_INT(wt_redis_int("HGET {t}:stats sent|x:@a", ""), 5);
    CHECK_INT(wt_redis_int("HGET {t}:stats polled|x:@a", ""), 10);
    char path[700];
    snprintf(path, sizeof path, "%s/polls.log", wt.dir);
    char *log = th_read_file(path, NULL);
    REQUIRE(log);
    CHECK_INT(count(log, "\"msg\":\"job sent\""), 5);
    CHECK_INT(count(log, "\"msg\":\"engagement polled\""), 10);
    /* latency and attempt are numbers in the JSON lines */
    CHECK(strstr(log, "\"attempt\":1,") != NULL);
    CHECK(strstr(log, "\"attempt\":\"") == NULL);
    CHECK(strstr(log, "\"latency_ms\":\"") == NULL);
    free(log);
    char *argv[] = {HERALD_BIN, "stats", "--json", NULL};
    char *stats = NULL;
    CHECK_INT(th_exec(argv, NULL, 0, &stats), 0);
    CHECK(stats && strstr(stats, "\"sent_total\":5,") && strstr(stats, "\"polled_total\":10,"));
    free(stats);
}

static int polled_three(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_done() >= 9; /* 3 posts + 6 polls */
}

/* Poll events go to the stream the webhooks server trims, trimmed to the
 * same webhooks-stream-maxlen. */
static void polls_stream_maxlen(void)
{
    wt_reset();
    /* whole stream nodes of one entry: MAXLEN ~ trims to the entry */
    free(th_redis_cmd(wt.redis, "CONFIG SET stream-node-max-entries 1"));
    char *conf = th_read_file(wt.conf, NULL);
    REQUIRE(conf);
    char *more = hr_asprintf("%swebhooks-stream-maxlen 2\n", conf);
    th_write_file(wt.conf, more);
    free(more);
    free(conf);
    wt_enqueue("x", "@a", "trimmed post", 3);
    pid_t w = wt_worker(NULL, "polls-maxlen", "--processes", "1", NULL);
    CHECK(th_wait_for(polled_three, NULL, 20000));
    wt_term(w);
    /* each post's likes rose at least once: 3 events or more were added */
    CHECK_INT(liked_jobs(), 3);
    CHECK_INT(wt_redis_int("XLEN {t}:events", ""), 2);
}

int main(void)
{
    wt_start("poll-schedule 3s,5s\n");
    th_run("polls_record_engagement", polls_record_engagement);
    th_run("polls_stream_maxlen", polls_stream_maxlen);
    wt_stop();
    return th_main_end();
}
