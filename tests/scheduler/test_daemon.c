/* test_daemon.c: the promotion daemon: due jobs reach their ready lists,
 * never before their time, a wake for an earlier job re-arms a long timer,
 * dead workers' jobs are re-queued, and two `herald scheduler` processes
 * never promote a job twice. */
#include <ev.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"
#include "scheduler.h"

static th_redis *R;
static char url[400];

static queue *connect_ns(const char *ns)
{
    queue_opts o = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) fprintf(stderr, "connect: %s\n", err.msg);
    return q;
}

static void enqueue(queue *q, const char *lane_account, int n, int64_t at_ms, int64_t step_ms,
                    int tag)
{
    queue_job **v = malloc(sizeof *v * (size_t)n);
    for (int i = 0; i < n; i++) {
        v[i] = queue_job_new();
        queue_set(&v[i]->platform, "x");
        queue_set(&v[i]->account, lane_account);
        v[i]->unique_key = hr_asprintf("d|%d|%s|%d", tag, lane_account, i);
        v[i]->run_at_ms = at_ms + i * step_ms;
        queue_set(&v[i]->text, "hello");
    }
    hr_err err = {0};
    CHECK(queue_enqueue(q, v, n, NULL, &err) == 0);
    for (int i = 0; i < n; i++)
        queue_job_free(v[i]);
    free(v);
}

static long llen(const char *ns, const char *lane)
{
    char *s = th_redis_cmd(R, "LLEN {%s}:ready:%s", ns, lane);
    long n = s ? atol(s) : -1;
    free(s);
    return n;
}

/* ---- running the loop until a condition holds */

typedef struct watch {
    int (*cond)(void *);
    void *arg;
    int met;
} watch;

static void on_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    watch *wa = w->data;
    if (wa->cond(wa->arg)) {
        wa->met = 1;
        ev_break(loop, EVBREAK_ONE);
    }
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

static int run_until(struct ev_loop *loop, int (*cond)(void *), void *arg, double max_s)
{
    watch wa = {cond, arg, 0};
    ev_timer check, deadline;
    ev_timer_init(&check, on_check, 0.005, 0.005);
    check.data = &wa;
    ev_timer_init(&deadline, on_deadline, max_s, 0);
    ev_timer_start(loop, &check);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &check);
    ev_timer_stop(loop, &deadline);
    return wa.met;
}

typedef struct want {
    const char *ns, *lane;
    long n;
} want;

static int ready_has(void *arg)
{
    want *w = arg;
    return llen(w->ns, w->lane) >= w->n;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void test_promotes_due_jobs(void)
{
    queue *q = connect_ns("d1");
    REQUIRE(q);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sched_daemon_opts o = {.q = {.url = url, .ns = "d1"}, .batch = 7};
    hr_err err = {0};
    sched_daemon *d = sched_daemon_new(loop, &o, &err);
    REQUIRE(d);
    int64_t now = hr_now_ms();
    enqueue(q, "@a", 60, now + 200, 2, 1);
    enqueue(q, "@b", 40, now + 300, 0, 2);
    want wa = {"d1", "x:@a", 60}, wb = {"d1", "x:@b", 40};
    CHECK(run_until(loop, ready_has, &wa, 10));
    CHECK(run_until(loop, ready_has, &wb, 10));
    CHECK_INT(llen("d1", "x:@a"), 60);
    CHECK_INT(sched_daemon_promoted(d), 100);
    sched_daemon_free(d);
    ev_loop_destroy(loop);
    queue_free(q);
}

static void test_wake_rearms(void)
{
    queue *q = connect_ns("d2");
    REQUIRE(q);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    /* a timer cap far beyond the test: only the wake can bring the job in */
    sched_daemon_opts o = {.q = {.url = url, .ns = "d2"}, .max_sleep_ms = 600000};
    hr_err err = {0};
    sched_daemon *d = sched_daemon_new(loop, &o, &err);
    REQUIRE(d);
    enqueue(q, "@late", 1, hr_now_ms() + 3600000, 0, 3);
    run_until(loop, never, NULL, 0.2); /* subscribed, timer armed for an hour */
    enqueue(q, "@soon", 1, hr_now_ms() + 50, 0, 4);
    want w = {"d2", "x:@soon", 1};
    CHECK(run_until(loop, ready_has, &w, 10));
    CHECK_INT(llen("d2", "x:@late"), 0);
    sched_daemon_free(d);
    ev_loop_destroy(loop);
    queue_free(q);
}

static void test_reaps_dead_workers(void)
{
    queue *q = connect_ns("d3");
    REQUIRE(q);
    enqueue(q, "@r", 3, hr_now_ms() - 1000, 0, 5);
    hr_err err = {0};
    /* the jobs are due: promote them, then a worker takes them and dies */
    long n;
    int64_t next, now;
    REQUIRE(queue_promote(q, 100, &n, &next, &now, &err) == 0);
    REQUIRE(queue_worker_register(q, "dead-worker", 50, &err) == 0);
    const char *lanes[] = {"x:@r"};
    queue_fetched *f = NULL;
    int nf = 0;
    REQUIRE(queue_fetch(q, "dead-worker", lanes, 1, 10, 50, &f, &nf, &err) == 0);
    CHECK_INT(nf, 3);
    queue_fetched_free(f, nf);
    CHECK_INT(llen("d3", "x:@r"), 0);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    sched_daemon_opts o = {.q = {.url = url, .ns = "d3"}, .reap_every_ms = 50};
    sched_daemon *d = sched_daemon_new(loop, &o, &err);
    REQUIRE(d);
    want w = {"d3", "x:@r", 3};
    CHECK(run_until(loop, ready_has, &w, 10));
    sched_daemon_free(d);
    ev_loop_destroy(loop);
    queue_free(q);
}

typedef struct total {
    const char *ns;
    long n;
} total;

static int all_ready(void *arg)
{
    total *t = arg;
    long sum = 0;
    for (int i = 0; i < 3; i++) {
        char lane[16];
        snprintf(lane, sizeof lane, "x:@m%d", i);
        sum += llen(t->ns, lane);
    }
    return sum >= t->n;
}

static void test_two_schedulers_no_double(void)
{
    char *dir = th_tempdir();
    char *conf = hr_asprintf("%s/herald.conf", dir);
    char *text = hr_asprintf("redis-url %s\nnamespace d4\n", url);
    th_write_file(conf, text);
    char *out1 = hr_asprintf("%s/s1.log", dir), *out2 = hr_asprintf("%s/s2.log", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "scheduler", "--batch", "50", NULL};
    pid_t p1 = th_spawn(argv, out1), p2 = th_spawn(argv, out2);
    queue *q = connect_ns("d4");
    REQUIRE(q);
    int64_t at = hr_now_ms() + 500;
    for (int i = 0; i < 3; i++) {
        char acct[8];
        snprintf(acct, sizeof acct, "@m%d", i);
        enqueue(q, acct, 1000, at, 0, 10 + i); /* 3000 jobs due in the same ms */
    }
    total t = {"d4", 3000};
    CHECK(th_wait_for(all_ready, &t, 20000));
    /* nothing left to promote, and every ukh is in a ready list exactly once */
    th_wait_for(never, NULL, 300);
    long sum = 0;
    for (int i = 0; i < 3; i++) {
        char lane[16];
        snprintf(lane, sizeof lane, "x:@m%d", i);
        sum += llen("d4", lane);
        char *dup = th_redis_cmd(
            R, "EVAL %s 1 {d4}:ready:%s",
            "local s={} local d=0 for _,v in ipairs(redis.call('LRANGE',KEYS[1],0,-1)) do "
            "if s[v] then d=d+1 end s[v]=1 end return d",
            lane);
        CHECK_STR(dup, "0");
        free(dup);
    }
    CHECK_INT(sum, 3000);
    char *z = th_redis_cmd(R, "ZCARD {d4}:due");
    CHECK_STR(z, "0");
    free(z);
    th_kill(p1, SIGTERM);
    th_kill(p2, SIGTERM);
    queue_free(q);
    free(text);
    free(conf);
    free(out1);
    free(out2);
    free(dir);
}

/* log_has: the scheduler's log file holds this JSON line's message */
typedef struct log_has {
    const char *path, *msg;
} log_has;

static int logged(void *arg)
{
    const log_has *h = arg;
    char *text = th_read_file(h->path, NULL);
    char *hit = text ? strstr(text, h->msg) : NULL;
    /* the line is a JSON log line, not plain stderr */
    while (hit && hit > text && hit[-1] != '\n') hit--;
    int yes = hit && strncmp(hit, "{\"ts\":", 6) == 0;
    free(text);
    return yes;
}

static int lane_has_one(void *arg)
{
    return llen(arg, "x:@boot") == 1;
}

/* starts_before_redis: `herald scheduler` started while Redis is down (a
 * boot, an outage) waits for it, logging "redis unreachable; retrying",
 * instead of exiting into systemd's start limit; once Redis is up it
 * promotes due jobs. */
static void test_starts_before_redis(void)
{
    th_redis *r2 = th_redis_start(0, NULL);
    th_redis_stop(r2);
    char *dir = th_tempdir();
    char *conf = hr_asprintf("%s/herald.conf", dir);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace d6\n", r2->sock);
    th_write_file(conf, text);
    char *out = hr_asprintf("%s/s.log", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "scheduler", NULL};
    pid_t pid = th_spawn(argv, out);
    log_has h = {out, "\"msg\":\"redis unreachable; retrying\""};
    CHECK(th_wait_for(logged, &h, 10000));
    int st;
    CHECK(waitpid(pid, &st, WNOHANG) == 0); /* still running */
    th_redis_restart(r2);
    char u2[400];
    snprintf(u2, sizeof u2, "unix://%s", r2->sock);
    queue_opts o = {.url = u2, .ns = "d6"};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    REQUIRE(q);
    th_redis *saved = R;
    R = r2; /* llen reads R */
    /* due soon, not now: an enqueue puts a job due already straight into
     * its ready list, this one needs the scheduler */
    enqueue(q, "@boot", 1, hr_now_ms() + 1000, 0, 60);
    CHECK_INT(llen("d6", "x:@boot"), 0);
    CHECK(th_wait_for(lane_has_one, "d6", 10000));
    R = saved;
    th_kill(pid, SIGTERM);
    queue_free(q);
    th_redis_stop(r2);
    free(out);
    free(text);
    free(conf);
    free(dir);
}

/* ---- promotion precision: no job in a ready list before its time */

enum { PREC_LANES = 4, PREC_JOBS = 240 };

typedef struct prec_job {
    char ukh[64];
    int64_t run_at_ms;
    int seen;
} prec_job;

typedef struct prec {
    redisContext *c;
    prec_job jobs[PREC_JOBS];
    int njobs;
    long seen, early, twice, strangers;
    int64_t worst_early_ms;
} prec;

static prec_job *prec_find(prec *p, const char *ukh)
{
    for (int i = 0; i < p->njobs; i++)
        if (strcmp(p->jobs[i].ukh, ukh) == 0) return &p->jobs[i];
    return NULL;
}

/* prec_observe takes, in one script, Redis TIME and everything in the ready
 * lists (emptied): each job there was promoted no later than that time, so
 * a time before its run_at means it was promoted early. */
static int prec_observe(void *arg)
{
    prec *p = arg;
    redisReply *r = redisCommand(
        p->c,
        "EVAL %s 4 {d5}:ready:x:@p0 {d5}:ready:x:@p1 {d5}:ready:x:@p2 {d5}:ready:x:@p3",
        "local t = redis.call('TIME') local out = {t[1], t[2]} "
        "for _, k in ipairs(KEYS) do "
        "for _, v in ipairs(redis.call('LRANGE', k, 0, -1)) do out[#out + 1] = v end "
        "redis.call('DEL', k) end return out");
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2) {
        fprintf(stderr, "  observe: %s\n", r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        th_failures++;
        if (r) freeReplyObject(r);
        return 1;
    }
    int64_t t_ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    for (size_t i = 2; i < r->elements; i++) {
        prec_job *j = prec_find(p, r->element[i]->str);
        if (!j) {
            p->strangers++;
            continue;
        }
        if (j->seen++) p->twice++;
        p->seen++;
        if (t_ms < j->run_at_ms) {
            p->early++;
            if (j->run_at_ms - t_ms > p->worst_early_ms) p->worst_early_ms = j->run_at_ms - t_ms;
        }
    }
    freeReplyObject(r);
    usleep(1000);
    return p->seen >= p->njobs;
}

/* Jobs due at distinct times over 1.7 s from 1 s on, promoted by a `herald
 * scheduler`: the ready lists, read every millisecond together with Redis
 * TIME, never hold a job before its run_at, and every job arrives, once.
 * (How late they arrive is bench/promote's to measure, not a test's.) */
static void test_promotion_precision(void)
{
    char *dir = th_tempdir();
    char *conf = hr_asprintf("%s/herald.conf", dir);
    char *text = hr_asprintf("redis-url %s\nnamespace d5\n", url);
    th_write_file(conf, text);
    char *out = hr_asprintf("%s/s.log", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "scheduler", NULL};
    pid_t pid = th_spawn(argv, out);
    queue *q = connect_ns("d5");
    REQUIRE(q);
    prec *p = calloc(1, sizeof *p);
    p->c = redisConnectUnix(R->sock);
    REQUIRE(p->c && !p->c->err);
    /* 60 jobs per lane, 7 ms apart across the lanes in turn */
    int64_t at = hr_now_ms() + 1000;
    for (int l = 0; l < PREC_LANES; l++) {
        char acct[8];
        snprintf(acct, sizeof acct, "@p%d", l);
        enqueue(q, acct, PREC_JOBS / PREC_LANES, at + l * 7, PREC_LANES * 7, 20 + l);
    }
    /* each job's run_at as the scheduled sets hold it */
    for (int l = 0; l < PREC_LANES; l++) {
        redisReply *r =
            redisCommand(p->c, "ZRANGE {d5}:sched:x:@p%d 0 -1 WITHSCORES", l);
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements &&
                           p->njobs < PREC_JOBS;
             i += 2) {
            prec_job *j = &p->jobs[p->njobs++];
            snprintf(j->ukh, sizeof j->ukh, "%s", r->element[i]->str);
            j->run_at_ms = atoll(r->element[i + 1]->str);
        }
        if (r) freeReplyObject(r);
    }
    /* all still scheduled when read: none was promoted before the poll */
    CHECK_INT(p->njobs, PREC_JOBS);
    CHECK(th_wait_for(prec_observe, p, 20000));
    if (p->early)
        fprintf(stderr, "  %ld jobs in a ready list before their time (up to %lld ms)\n",
                p->early, (long long)p->worst_early_ms);
    CHECK_INT(p->early, 0);
    CHECK_INT(p->seen, PREC_JOBS);
    CHECK_INT(p->twice, 0);
    CHECK_INT(p->strangers, 0);
    th_kill(pid, SIGTERM);
    redisFree(p->c);
    free(p);
    queue_free(q);
    free(out);
    free(text);
    free(conf);
    free(dir);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    snprintf(url, sizeof url, "unix://%s", R->sock);
    th_run("promotes_due_jobs", test_promotes_due_jobs);
    th_run("wake_rearms", test_wake_rearms);
    th_run("reaps_dead_workers", test_reaps_dead_workers);
    th_run("two_schedulers_no_double", test_two_schedulers_no_double);
    th_run("promotion_precision", test_promotion_precision);
    th_run("starts_before_redis", test_starts_before_redis);
    return th_main_end();
}
