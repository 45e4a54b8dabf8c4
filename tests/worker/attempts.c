/* attempts.c: the worker's group-committed attempt records
 * (queue_async_attempts, attempt.lua with ukh/lane pairs): each job of a
 * batch is marked or refused on its own, a job not in the worker's in-flight
 * record is refused, a lost lease refuses them all, and a reaped worker's
 * marked jobs go to unknown, never back to their lane. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "queue.h"

static th_redis *redis;
static char url[400];

typedef struct outcome {
    int called, status;
    int results[8];
} outcome;

static void on_done(int status, const char *errmsg, void *priv)
{
    outcome *o = priv;
    o->called++;
    o->status = status;
}

/* attempt_batch records ukhs/lanes through a fresh async handle and waits
 * for the callback. */
static void attempt_batch(const char *worker, const char **ukhs, const char **lanes, int n,
                          outcome *o)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    queue_opts qo = {.url = url, .ns = "t"};
    hr_err err = {0};
    queue_async *qa = queue_async_new(loop, &qo, &err);
    REQUIRE(qa != NULL);
    while (!queue_async_connected(qa))
        ev_run(loop, EVRUN_ONCE);
    memset(o, 0, sizeof *o);
    for (int i = 0; i < n; i++)
        o->results[i] = -7;
    queue_async_attempts(qa, worker, ukhs, lanes, n, o->results, on_done, o);
    while (!o->called)
        ev_run(loop, EVRUN_ONCE);
    queue_async_free(qa);
    ev_loop_destroy(loop);
}

/* reaped: the reaper has settled want jobs of dead workers (its lease
 * ended), adding up what it requeued and moved to unknown. */
typedef struct reap_sum {
    queue *q;
    long want, requeued, unknown;
} reap_sum;

static int reaped(void *arg)
{
    reap_sum *r = arg;
    long rq = 0, un = 0;
    hr_err err = {0};
    if (queue_reap(r->q, &rq, &un, &err) != 0) return 0;
    r->requeued += rq;
    r->unknown += un;
    return r->requeued + r->unknown >= r->want;
}

static queue *connect_sync(void)
{
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) {
        fprintf(stderr, "attempts: %s\n", err.msg);
        abort();
    }
    return q;
}

static void enqueue(queue *q, const char *account, int n)
{
    queue_job *jobs[8];
    for (int i = 0; i < n; i++) {
        jobs[i] = queue_job_new();
        jobs[i]->kind = QUEUE_KIND_POST;
        queue_set(&jobs[i]->platform, "x");
        queue_set(&jobs[i]->account, account);
        queue_set(&jobs[i]->text, "hello");
        jobs[i]->run_at_ms = hr_now_ms() - 1000;
        jobs[i]->max_attempts = 3;
    }
    hr_err err = {0};
    CHECK(queue_enqueue(q, jobs, n, NULL, &err) == 0);
    for (int i = 0; i < n; i++)
        queue_job_free(jobs[i]);
}

static void each_job_on_its_own(void)
{
    queue *q = connect_sync();
    hr_err err = {0};
    enqueue(q, "@a", 2);
    enqueue(q, "@b", 1);
    CHECK(queue_worker_register(q, "w1", 30000, &err) == 0);
    const char *lanes[] = {"x:@a", "x:@b"};
    queue_fetched *f = NULL;
    int nf = 0;
    CHECK(queue_fetch(q, "w1", lanes, 2, 10, 30000, &f, &nf, &err) == 0);
    REQUIRE(nf == 3);
    /* the fetched jobs, plus one the worker never fetched */
    const char *ukhs[4], *from[4];
    for (int i = 0; i < 3; i++) {
        ukhs[i] = f[i].ukh;
        from[i] = f[i].lane;
    }
    ukhs[3] = "zzzzzzzzzzzz";
    from[3] = "x:@a";
    outcome o;
    attempt_batch("w1", ukhs, from, 4, &o);
    CHECK_INT(o.status, 0);
    for (int i = 0; i < 3; i++)
        CHECK_INT(o.results[i], 0);
    CHECK_INT(o.results[3], 1);
    /* marked: the worker's death sends them to unknown, not back to a lane */
    for (int i = 0; i < 3; i++) {
        char *v = th_redis_cmd(redis, "HEXISTS {t}:inflight:w1 %s", f[i].ukh);
        CHECK(v && strcmp(v, "1") == 0);
        free(v);
    }
    CHECK(queue_heartbeat(q, "w1", 1, &err) == 0); /* the lease ends in 1 ms */
    reap_sum r = {.q = q, .want = 3};
    CHECK(th_wait_for(reaped, &r, 10000));
    CHECK_INT(r.requeued, 0);
    CHECK_INT(r.unknown, 3);
    queue_fetched_free(f, nf);
    queue_free(q);
}

/* lease_over: Redis' clock is past the worker's lease. */
static int lease_over(void *worker)
{
    char *exp = th_redis_cmd(redis, "ZSCORE {t}:workers %s", (const char *)worker);
    char *now = th_redis_cmd(redis, "TIME");
    long long until = exp ? atoll(exp) : 0, now_ms = 0;
    if (now)
        now_ms = atoll(now) * 1000 + atoll(strchr(now, '\n') ? strchr(now, '\n') + 1 : "0") / 1000;
    free(exp);
    free(now);
    return now_ms > until;
}

static void lost_lease_refuses_all(void)
{
    queue *q = connect_sync();
    hr_err err = {0};
    enqueue(q, "@c", 2);
    CHECK(queue_worker_register(q, "w2", 30000, &err) == 0);
    const char *lanes[] = {"x:@c"};
    queue_fetched *f = NULL;
    int nf = 0;
    CHECK(queue_fetch(q, "w2", lanes, 1, 10, 30000, &f, &nf, &err) == 0);
    REQUIRE(nf == 2);
    CHECK(queue_heartbeat(q, "w2", 1, &err) == 0); /* the lease ends in 1 ms */
    reap_sum r = {.q = q, .want = 2};
    CHECK(th_wait_for(lease_over, "w2", 10000));
    const char *ukhs[] = {f[0].ukh, f[1].ukh}, *from[] = {f[0].lane, f[1].lane};
    outcome o;
    attempt_batch("w2", ukhs, from, 2, &o);
    CHECK_INT(o.status, 0);
    CHECK_INT(o.results[0], 1);
    CHECK_INT(o.results[1], 1);
    /* nothing marked: the reaper returns both to their lane */
    CHECK(th_wait_for(reaped, &r, 10000));
    CHECK_INT(r.requeued, 2);
    CHECK_INT(r.unknown, 0);
    queue_fetched_free(f, nf);
    queue_free(q);
}

int main(void)
{
    redis = th_redis_start(0, NULL);
    snprintf(url, sizeof url, "unix://%s", redis->sock);
    th_run("each_job_on_its_own", each_job_on_its_own);
    th_run("lost_lease_refuses_all", lost_lease_refuses_all);
    return th_main_end();
}
