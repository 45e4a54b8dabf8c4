/* stall.c: `herald worker` against a Redis that stops answering without
 * closing its connections (SIGSTOP: a hung server, a black-holed network):
 * the command timeout resets the connection, and every job still ends sent
 * exactly once. (A Redis that restarts: send.c.) */
#include "wktest.h"

/* log_count: how many times the worker's log has what */
static int log_count(const char *what)
{
    char log[700];
    snprintf(log, sizeof log, "%s/stall.log", wt.dir);
    char *text = th_read_file(log, NULL);
    int n = 0;
    for (const char *s = text; s && (s = strstr(s, what)); s++) n++;
    free(text);
    return n;
}

/* two resets: the stalled connection's, then the one made after it (to
 * the kernel's backlog: Redis still hangs) */
static int stall_reset_twice(void *arg)
{
    (void)arg;
    return log_count("redis: no reply within 300 ms") >= 2;
}

static int some_done(void *arg)
{
    (void)arg;
    return wt_done() >= 40;
}

static void redis_stalled(void)
{
    wt_reset();
    enum { N = 200 };
    /* slow answers keep sends in flight when Redis stops */
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h,
                      "{\"platform\":\"bluesky\",\"slow_ms\":200}", NULL),
              200);
    wt_enqueue("bluesky", "@b.bsky.social", "through the stall", N);
    pid_t w = wt_worker(NULL, "stall", "--processes", "1", "--concurrency", "32", "--lease",
                        "3s", NULL);
    CHECK(th_wait_for(some_done, NULL, 15000));
    kill(wt.redis->pid, SIGSTOP);
    /* nothing of the test talks to Redis meanwhile: it would hang too */
    int reset = th_wait_for(stall_reset_twice, NULL, 10000);
    kill(wt.redis->pid, SIGCONT);
    CHECK(reset);
    CHECK(wt_wait_done(N, 30000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("bluesky", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:bluesky:@b.bsky.social", ""), 0);
    th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, "{\"platform\":\"bluesky\"}", NULL);
}

int main(void)
{
    wt_start("worker-redis-timeout-ms 300\n");
    th_run("redis_stalled", redis_stalled);
    wt_stop();
    return th_main_end();
}
