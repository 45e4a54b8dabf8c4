/* stall.c: `herald worker` against a Redis that stops answering without
 * closing its connections (SIGSTOP: a hung server, a black-holed network):
 * the command timeout resets the connection, and every job still ends sent
 * exactly once; a thread's part whose charge got no answer does not go out;
 * a connection the address never answers is made again at the timeout.
 * (A Redis that restarts: send.c.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "wktest.h"

/* two resets: the stalled connection's, then the one made after it (to
 * the kernel's backlog: Redis still hangs) */
static int stall_reset_twice(void *arg)
{
    (void)arg;
    return wt_log_count("stall", "redis: no reply within 300 ms") >= 2;
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

static int part_one_posted(void *arg)
{
    (void)arg;
    return wt_sandbox_posts("x", NULL) >= 1;
}

/* charge_failed_then_reset: the worker's charge of the thread's next part
 * failed, and a reset came after that (by then a part sent regardless
 * would have reached the sandbox) */
static int charge_failed_then_reset(void *arg)
{
    (void)arg;
    char log[700];
    snprintf(log, sizeof log, "%s/charge.log", wt.dir);
    char *text = th_read_file(log, NULL);
    const char *failed = text ? strstr(text, "thread part not charged") : NULL;
    if (!failed && text) failed = strstr(text, "thread part not counted"); /* the old way */
    int yes = failed && strstr(failed, "resetting the connection");
    free(text);
    return yes;
}

/* parts_before: how many X posts the sandbox received before ms */
static long parts_before(int64_t ms)
{
    char *body = NULL;
    long n = -1;
    if (th_http(wt.sandbox_port, NULL, "/_sandbox/posts?platform=x&kind=post", NULL, NULL,
                &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *v;
        size_t i;
        n = 0;
        json_array_foreach(json_object_get(j, "posts"), i, v)
            n += json_integer_value(json_object_get(v, "received_ms")) < ms;
        json_decref(j);
    }
    free(body);
    return n;
}

static int thread_done(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_done() >= 1 && wt_redis_int("ZCARD %s", "{t}:unknown:x:@a") == 0;
}

/* charge_unanswered: a thread's later part is admitted by a charge script
 * call before it goes out; when that call gets no answer (Redis stopped
 * while part 1's answer was on its way), the part must not go out
 * uncounted: nothing more reaches the platform until Redis answers, and
 * then every part is posted once. */
static void charge_unanswered(void)
{
    wt_reset();
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h,
                      "{\"platform\":\"x\",\"slow_ms\":1500}", NULL),
              200);
    char text[800];
    int n = snprintf(text, sizeof text, "Thread while Redis hangs:");
    while (n < 600) n += snprintf(text + n, sizeof text - (size_t)n, " w%d", n);
    queue_job *j = wt_post_job("x", "@a", "thread:charge", text);
    queue_job_set_meta(j, "thread", "1");
    wt_enqueue_job(j);
    pid_t w = wt_worker(NULL, "charge", "--processes", "1", "--lease", "2s", NULL);
    CHECK(th_wait_for(part_one_posted, NULL, 10000));
    kill(wt.redis->pid, SIGSTOP);
    int failed = th_wait_for(charge_failed_then_reset, NULL, 10000);
    int64_t cont_ms = hr_now_ms();
    kill(wt.redis->pid, SIGCONT);
    CHECK(failed);
    CHECK_INT(parts_before(cont_ms), 1);
    th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, "{\"platform\":\"x\"}", NULL);
    CHECK(th_wait_for(thread_done, NULL, 30000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 3);
    CHECK_INT(dups, 0);
}

static int connect_retried_twice(void *arg)
{
    (void)arg;
    return wt_log_count("blackhole", "redis: no connection in time, connecting again") >= 2;
}

/* connect_black_holed: a connection Redis's address never answers (the
 * SYNs dropped, as by a black-holed network; the kernel would try for
 * minutes) is dropped at the timeout and made again */
static void connect_black_holed(void)
{
    /* a listener whose accept queue is full: the kernel drops new SYNs */
    int ls = socket(AF_INET, SOCK_STREAM, 0), filler = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    REQUIRE(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 0) == 0 &&
            getsockname(ls, (struct sockaddr *)&a, &alen) == 0 &&
            connect(filler, (struct sockaddr *)&a, sizeof a) == 0);
    char env[96];
    snprintf(env, sizeof env, "HERALD_REDIS_URL=redis://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(env, "blackhole", "--processes", "1", NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    CHECK(th_wait_for(connect_retried_twice, NULL, 10000));
    wt_term(w);
    close(filler);
    close(ls);
}

static int unreachable_said(void *arg)
{
    return wt_log_count(arg, "redis unreachable; retrying") >= 1;
}

/* locked_connections: how many connections r (whose password is
 * right-one) has taken, from its INFO */
static long locked_connections(th_redis *r)
{
    char *argv[] = {"/usr/bin/redis-cli", "-s", r->sock, "--no-auth-warning", "-a", "right-one", "INFO",
                    "stats", NULL};
    char *out = NULL;
    long n = -1;
    if (th_exec(argv, NULL, 0, &out) == 0 && out) {
        const char *p = strstr(out, "total_connections_received:");
        if (p) n = atol(p + strlen("total_connections_received:"));
    }
    free(out);
    return n;
}

struct tries {
    th_redis *r;
    long want;
};

static int tried(void *arg)
{
    struct tries *t = arg;
    return locked_connections(t->r) >= t->want;
}

/* connect_failures_said: a worker that cannot reach Redis says why (it
 * said nothing at all, for refused connections and refused passwords
 * alike), once per run of failures rather than once per try, and a refused
 * AUTH is not taken for a connection ("redis connected" / "lost" each try) */
static void connect_failures_said(void)
{
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    char env[128];
    snprintf(env, sizeof env, "HERALD_REDIS_URL=redis://127.0.0.1:%d", th_free_port());
    pid_t w = wt_worker(env, "refused", "--processes", "1", NULL);
    CHECK(th_wait_for(unreachable_said, "refused", 5000));
    usleep(3000 * 1000); /* retries meanwhile: 50, 100 ... 2000 ms apart */
    wt_term(w);
    /* one line per process (the supervisor's and its worker's), not per try */
    CHECK(wt_log_count("refused", "redis unreachable; retrying") <= 2);
    CHECK(wt_log_count("refused", "Connection refused") >= 1);

    th_redis *locked = th_redis_start(1, NULL);
    free(th_redis_cmd(locked, "CONFIG SET requirepass right-one"));
    long before = locked_connections(locked);
    snprintf(env, sizeof env, "HERALD_REDIS_URL=redis://:wrong-one@127.0.0.1:%d", locked->port);
    w = wt_worker(env, "wrongpass", "--processes", "1", NULL);
    CHECK(th_wait_for(unreachable_said, "wrongpass", 5000));
    /* the line count below means something only once tries were made */
    struct tries t = {locked, before + 6};
    CHECK(th_wait_for(tried, &t, 15000));
    wt_term(w);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    CHECK(wt_log_count("wrongpass", "redis unreachable; retrying") <= 2);
    CHECK(wt_log_count("wrongpass", "WRONGPASS") >= 1);
    CHECK_INT(wt_log_count("wrongpass", "redis connected"), 0);
    CHECK_INT(wt_log_count("wrongpass", "redis connection lost"), 0);
    CHECK_INT(wt_log_count("wrongpass", "wrong-one"), 0); /* never the password */
    th_redis_stop(locked);
}

int main(void)
{
    wt_start("worker-redis-timeout-ms 300\n");
    th_run("redis_stalled", redis_stalled);
    th_run("charge_unanswered", charge_unanswered);
    th_run("connect_black_holed", connect_black_holed);
    th_run("connect_failures_said", connect_failures_said);
    wt_stop();
    return th_main_end();
}
