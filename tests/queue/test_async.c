/* test_async.c: the async queue on a libev loop: register, fetch, attempt,
 * ack; a Redis restart mid-run (the handle reconnects with backoff); the
 * handle freed with requests pending (each callback still runs once); a
 * script call resent once after the script cache was flushed. */
#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "queue.h"

static th_redis *R;

typedef struct state {
    struct ev_loop *loop;
    queue_async *qa;
    int step;
    int fetched, acked, failures, connects, losses;
    int wait_reconnect; /* start only after a loss and a new connection */
    const char *lanes[1];
    queue_fetched *f;
    int nf;
    int results[64];
    queue_ack_item items[64];
} state;

static void on_state(queue_async *qa, int connected, void *priv)
{
    state *s = priv;
    if (connected) s->connects++;
    else s->losses++;
}

static void next(state *s);

static void on_fail_only_count(int st, const char *err, void *priv)
{
    (*(int *)priv)++;
}

static void on_status(int st, const char *err, void *priv)
{
    state *s = priv;
    if (st < 0) {
        s->failures++;
        fprintf(stderr, "status error: %s\n", err ? err : "?");
    }
    next(s);
}

static void on_ack(int st, const char *err, void *priv)
{
    state *s = priv;
    if (st >= 0) s->acked += st;
    else s->failures++;
    queue_fetched_free(s->f, s->nf);
    s->f = NULL;
    s->nf = 0;
    next(s);
}

static void on_fetch(int st, queue_fetched *f, int n, const char *err, void *priv)
{
    state *s = priv;
    if (st != 0) {
        s->failures++;
        ev_break(s->loop, EVBREAK_ALL);
        return;
    }
    s->f = f;
    s->nf = n;
    s->fetched += n;
    next(s);
}

/* the steps: register, fetch, attempt each, ack all, stop */
static void next(state *s)
{
    s->step++;
    if (s->step == 1) {
        queue_async_register(s->qa, "aw", 30000, on_status, s);
    } else if (s->step == 2) {
        queue_async_fetch(s->qa, "aw", s->lanes, 1, 64, 30000, on_fetch, s);
    } else if (s->step == 3) {
        for (int i = 0; i < s->nf; i++) {
            s->items[i] = (queue_ack_item){.ukh = s->f[i].ukh, .lane = s->f[i].lane, .lateness_ms = 1};
        }
        queue_async_attempt(s->qa, "aw", s->f[0].ukh, on_status, s);
    } else if (s->step == 4) {
        queue_async_ack(s->qa, "aw", s->items, s->nf, s->results, on_ack, s);
    } else {
        ev_break(s->loop, EVBREAK_ALL);
    }
}

static void on_start(struct ev_loop *loop, ev_timer *w, int revents)
{
    state *s = w->data;
    if (!queue_async_connected(s->qa)) return; /* wait for the connection */
    if (s->wait_reconnect && (s->losses == 0 || s->connects < 2)) return;
    ev_timer_stop(loop, w);
    next(s);
}

static queue *sync_q(void)
{
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "a1"};
    hr_err err = {0};
    return queue_connect(&o, &err);
}

static void enqueue_some(int n)
{
    queue *q = sync_q();
    queue_job **jobs = calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        jobs[i] = queue_job_new();
        queue_set(&jobs[i]->platform, "x");
        queue_set(&jobs[i]->account, "@a");
    }
    hr_err err = {0};
    CHECK(queue_enqueue(q, jobs, n, NULL, &err) == 0);
    for (int i = 0; i < n; i++) queue_job_free(jobs[i]);
    free(jobs);
    queue_free(q);
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    ev_break(loop, EVBREAK_ALL);
}

static void run(state *s, struct ev_loop *loop)
{
    ev_timer start, guard;
    ev_timer_init(&start, on_start, 0.005, 0.005);
    start.data = s;
    ev_timer_start(loop, &start);
    ev_timer_init(&guard, on_guard, 10., 0.);
    ev_timer_start(loop, &guard);
    ev_run(loop, 0);
    ev_timer_stop(loop, &start);
    ev_timer_stop(loop, &guard);
}

static void test_flow(void)
{
    enqueue_some(10);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "a1"};
    hr_err err = {0};
    state s = {.loop = loop, .lanes = {"x:@a"}};
    s.qa = queue_async_new(loop, &o, &err);
    REQUIRE(s.qa);
    queue_async_on_state(s.qa, on_state, &s);
    run(&s, loop);
    CHECK_INT(s.fetched, 10);
    CHECK_INT(s.acked, 10);
    CHECK_INT(s.failures, 0);
    CHECK_INT(s.connects, 1);

    /* Redis restarts: the handle notices, reconnects, and works again
     * (scripts are reloaded on connect) */
    th_redis_restart(R);
    enqueue_some(5);
    /* make the old connection's death visible: a command on it fails */
    static int dummy;
    queue_async_attempt(s.qa, "aw", "x", on_fail_only_count, &dummy);
    s.step = 0; /* register again: the restart lost the registration */
    s.wait_reconnect = 1;
    s.fetched = s.acked = 0;
    run(&s, loop);
    CHECK_INT(dummy, 1); /* the command on the dead connection failed, once */
    CHECK(s.losses >= 1);
    CHECK(s.connects >= 2);
    CHECK_INT(s.fetched, 5);
    CHECK_INT(s.acked, 5);

    /* freed with a request in flight: its callback runs once, with an error */
    s.failures = 0;
    s.step = 1;
    queue_async_fetch(s.qa, "aw", s.lanes, 1, 1, 30000, on_fetch, &s);
    queue_async_free(s.qa);
    CHECK_INT(s.failures, 1);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
}

static void on_fail_only(int st, const char *err, void *priv)
{
    int *n = priv;
    (*n)++;
    CHECK_INT(st, -1);
}

static void test_not_connected(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    queue_opts o = {.url = "unix:///nonexistent/redis.sock", .ns = "a2"};
    hr_err err = {0};
    queue_async *qa = queue_async_new(loop, &o, &err);
    REQUIRE(qa);
    int calls = 0;
    queue_async_attempt(qa, "w", "ukh", on_fail_only, &calls);
    CHECK_INT(calls, 0); /* never from inside the call */
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(calls, 1);
    queue_async_free(qa);
    ev_loop_destroy(loop);
}

/* queue_async_free from inside a reply callback: the other pending
 * callbacks still run once each, and nothing is touched after the free. */
typedef struct freer {
    queue_async *qa;
    int calls, fails;
} freer;

static void on_free_in_cb(int st, const char *err, void *priv)
{
    freer *f = priv;
    f->calls++;
    if (st < 0) f->fails++;
    if (f->calls == 1) queue_async_free(f->qa);
}

static void test_free_in_callback(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "a3"};
    hr_err err = {0};
    freer f = {0};
    f.qa = queue_async_new(loop, &o, &err);
    REQUIRE(f.qa);
    for (int i = 0; i < 50 && !queue_async_connected(f.qa); i++) ev_run(loop, EVRUN_ONCE);
    REQUIRE(queue_async_connected(f.qa));
    for (int i = 0; i < 3; i++) queue_async_heartbeat(f.qa, "w", 1000, on_free_in_cb, &f);
    for (int i = 0; i < 20 && f.calls < 3; i++) ev_run(loop, EVRUN_ONCE);
    ev_run(loop, EVRUN_NOWAIT);
    CHECK_INT(f.calls, 3);
    ev_loop_destroy(loop);
}

/* A script call through queue_async_formatted whose script Redis's cache
 * lost (SCRIPT FLUSH between two calls, Redis up) is answered by its
 * script all the same: loaded again and resent once, its callback run
 * once with that answer. A command whose script cannot be found even
 * then (reload_src is not its script) is resent once only and fails. */
typedef struct raw_calls {
    int calls, ok;
    char err[128];
} raw_calls;

static void on_raw_reply(struct redisReply *rep, const char *errmsg, void *priv)
{
    raw_calls *c = priv;
    c->calls++;
    if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 7) c->ok++;
    if (!rep) snprintf(c->err, sizeof c->err, "%s", errmsg ? errmsg : "?");
}

static void formatted_call(struct ev_loop *loop, queue_async *qa, const char *sha,
                           const char *src, raw_calls *c)
{
    char *cmd = NULL;
    int len = redisFormatCommand(&cmd, "EVALSHA %s 0", sha);
    REQUIRE(len > 0);
    int before = c->calls;
    queue_async_formatted(qa, cmd, (size_t)len, src, on_raw_reply, c);
    redisFreeCommand(cmd);
    for (int i = 0; i < 500 && c->calls == before; i++) ev_run(loop, EVRUN_ONCE);
    ev_run(loop, EVRUN_NOWAIT); /* a second callback would run by now */
}

static long scripts_evaluated(void)
{
    char *s = th_redis_cmd(R, "INFO commandstats");
    const char *p = s ? strstr(s, "cmdstat_evalsha:calls=") : NULL;
    long n = p ? atol(p + strlen("cmdstat_evalsha:calls=")) : 0;
    free(s);
    return n;
}

static void test_formatted_noscript(void)
{
    static const char src[] = "return 7";
    static const char other[] = "return 8";
    char *sha = th_redis_cmd(R, "SCRIPT LOAD %s", src);
    REQUIRE(sha && strlen(sha) == 40);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "a4"};
    hr_err err = {0};
    queue_async *qa = queue_async_new(loop, &o, &err);
    REQUIRE(qa);
    for (int i = 0; i < 50 && !queue_async_connected(qa); i++) ev_run(loop, EVRUN_ONCE);
    REQUIRE(queue_async_connected(qa));
    raw_calls c = {0};
    formatted_call(loop, qa, sha, src, &c);
    CHECK_INT(c.calls, 1);
    CHECK_INT(c.ok, 1);
    free(th_redis_cmd(R, "SCRIPT FLUSH"));
    formatted_call(loop, qa, sha, src, &c);
    CHECK_INT(c.calls, 2);
    CHECK_INT(c.ok, 2);
    /* resent at most once: the wrong script loaded, NOSCRIPT again */
    free(th_redis_cmd(R, "SCRIPT FLUSH"));
    long before = scripts_evaluated();
    formatted_call(loop, qa, sha, other, &c);
    CHECK_INT(c.calls, 3);
    CHECK_INT(c.ok, 2);
    CHECK(strncmp(c.err, "NOSCRIPT", 8) == 0);
    CHECK_INT(scripts_evaluated() - before, 2);
    queue_async_free(qa);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
    free(sha);
}

/* release: a worker's unstarted jobs go back to the front of their lanes
 * in fetch order; an attempted one, and one of another lane not named,
 * stay in its record. */
static void on_released(int st, const char *err, void *priv)
{
    *(int *)priv = st;
}

static void test_release(void)
{
    queue *q = sync_q();
    REQUIRE(q);
    free(th_redis_cmd(R, "FLUSHALL"));
    enqueue_some(4);
    hr_err err = {0};
    REQUIRE(queue_worker_register(q, "rw", 60000, &err) == 0);
    const char *lanes[] = {"x:@a"};
    queue_fetched *f = NULL;
    int n = 0;
    REQUIRE(queue_fetch(q, "rw", lanes, 1, 4, 60000, &f, &n, &err) == 0);
    REQUIRE(n == 4);
    CHECK(queue_attempt(q, "rw", f[1].ukh, &err) == 0);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "a1"};
    queue_async *qa = queue_async_new(loop, &o, &err);
    REQUIRE(qa);
    for (int i = 0; i < 50 && !queue_async_connected(qa); i++) ev_run(loop, EVRUN_ONCE);
    const char *ukhs[] = {f[0].ukh, f[1].ukh, f[2].ukh};
    const char *from[] = {f[0].lane, f[1].lane, f[2].lane};
    int st = -2;
    queue_async_release(qa, "rw", ukhs, from, 3, on_released, &st);
    for (int i = 0; i < 50 && st == -2; i++) ev_run(loop, EVRUN_ONCE);
    CHECK_INT(st, 2);
    char *head = th_redis_cmd(R, "LINDEX {a1}:ready:x:@a 0");
    char *second = th_redis_cmd(R, "LINDEX {a1}:ready:x:@a 1");
    CHECK_STR(head, f[0].ukh);
    CHECK_STR(second, f[2].ukh);
    free(head);
    free(second);
    char *left = th_redis_cmd(R, "HGET {a1}:inflight:rw x:@a");
    char want[2 * QUEUE_UKH_LEN + 1];
    snprintf(want, sizeof want, "%s%s", f[1].ukh, f[3].ukh);
    CHECK_STR(left, want);
    free(left);
    /* again: nothing of theirs is left to hand back */
    st = -2;
    queue_async_release(qa, "rw", ukhs, from, 3, on_released, &st);
    for (int i = 0; i < 50 && st == -2; i++) ev_run(loop, EVRUN_ONCE);
    CHECK_INT(st, 0);
    queue_async_free(qa);
    ev_loop_destroy(loop);
    queue_fetched_free(f, n);
    queue_free(q);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    th_run("flow", test_flow);
    th_run("not_connected", test_not_connected);
    th_run("free_in_callback", test_free_in_callback);
    th_run("formatted_noscript", test_formatted_noscript);
    th_run("release", test_release);
    return th_main_end();
}
