/* test_import_hold.c: issue #4, all or nothing while `herald scheduler`
 * runs: an import holds its lanes, so none of its jobs (due now, or due
 * while it runs) becomes ready before it has succeeded; a failed one
 * leaves nothing, a successful one's jobs are promoted once it ends, and a
 * killed one's holds lapse with its lock. Real redis-server, real
 * scheduler process. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "scheduler.h"

static th_redis *R;
static char *dir;
static int ns_seq;
static char ns[32];
static char url[400];
static queue *Q;
static pid_t sched_pid;

#define LANE "x:@now"
#define NITEMS 6
#define NFUTURE 2 /* the first items: due a second after the import starts */

/* setup starts a fresh namespace, its config and a `herald scheduler` on it */
static hr_config *setup(void)
{
    snprintf(ns, sizeof ns, "h%d", ++ns_seq);
    hr_err err = {0};
    hr_config *c = hr_config_parse("account " LANE " credentials=ignored\n"
                                   "campaign hold platforms=" LANE " \"template={{title}}\"\n",
                                   "test.conf", &err);
    if (!c) fprintf(stderr, "config: %s\n", err.msg);
    queue_free(Q);
    queue_opts o = {.url = url, .ns = ns};
    Q = queue_connect(&o, &err);
    if (!Q) fprintf(stderr, "connect: %s\n", err.msg);
    char *conf = hr_asprintf("%s/%s.conf", dir, ns);
    char *text = hr_asprintf("redis-url %s\nnamespace %s\n", url, ns);
    th_write_file(conf, text);
    char *log = hr_asprintf("%s/%s-scheduler.log", dir, ns);
    char *argv[] = {HERALD_BIN, "--config", conf, "scheduler", NULL};
    sched_pid = th_spawn(argv, log);
    free(conf);
    free(text);
    free(log);
    return c;
}

static void teardown(hr_config *c)
{
    th_kill(sched_pid, SIGTERM);
    hr_config_free(c);
}

static long count(const char *cmd, const char *key)
{
    char *s = th_redis_cmd(R, "%s {%s}:%s", cmd, ns, key);
    long n = s ? atol(s) : -1;
    free(s);
    return n;
}

static int64_t redis_now_ms(void)
{
    char *s = th_redis_cmd(R, "EVAL %s 0",
                           "local t = redis.call('TIME') return t[1] * 1000 + "
                           "math.floor(t[2] / 1000)");
    int64_t v = s ? atoll(s) : 0;
    free(s);
    return v;
}

/* write_items writes NITEMS items: the first NFUTURE due at future_ms
 * (their own time: they go in with the import's plain commands), the
 * others undated (due now: through the enqueue script) */
static char *write_items(int64_t future_ms)
{
    char *path = hr_asprintf("%s/%s.ndjson", dir, ns);
    hr_buf b;
    hr_buf_init(&b);
    for (int i = 0; i < NITEMS; i++) {
        hr_buf_printf(&b, "{\"id\":\"p%d\",\"title\":\"Post %d\"", i, i);
        if (i < NFUTURE) hr_buf_printf(&b, ",\"publish_at\":%lld", (long long)future_ms);
        hr_buf_printf(&b, "}\n");
    }
    th_write_file(path, b.data);
    hr_buf_release(&b);
    return path;
}

/* what the seam saw in the middle of the import */
static int64_t future_at;
static long ready_during, sent_during, sched_during;

/* scheduled_past: the future jobs' time has passed and the scheduler has
 * been through the lane since (it moved the lane's due entry to the hold's
 * expiry), or something is ready (what this test forbids) */
static int scheduled_past(void *arg)
{
    (void)arg;
    int64_t now = redis_now_ms();
    if (now <= future_at + 100) return 0;
    if (count("LLEN", "ready:" LANE) > 0) return 1;
    char *s = th_redis_cmd(R, "ZSCORE {%s}:due s|%s", ns, LANE);
    int64_t at = s && *s ? atoll(s) : 0;
    free(s);
    return at > now;
}

/* look_midway waits, in the middle of the import (before batch 2 of 3 is
 * written: batches 0 and 1, 4 jobs, are in), for the scheduler to have had
 * its chance at every job written so far, then lets a worker (its own
 * connection, which also promotes, as a second scheduler would) send what
 * it can */
static void look_midway(void)
{
    th_wait_for(scheduled_past, NULL, 15000);
    ready_during = count("LLEN", "ready:" LANE);
    sched_during = count("ZCARD", "sched:" LANE);
    queue_opts qo = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *w = queue_connect(&qo, &err);
    sent_during = -1;
    if (!w) return;
    long promoted = 0;
    int64_t next = 0, now = 0;
    const char *lanes[] = {LANE};
    queue_fetched *f = NULL;
    int n = 0;
    if (queue_promote(w, 1000, &promoted, &next, &now, &err) == 0 &&
        queue_worker_register(w, "w1", 30000, &err) == 0 &&
        queue_fetch(w, "w1", lanes, 1, 10, 30000, &f, &n, &err) == 0) {
        for (int i = 0; i < n; i++) {
            queue_ack_item a = {
                .ukh = f[i].ukh, .lane = f[i].lane, .platform_id = "1", .lateness_ms = -1};
            int res = 0;
            queue_attempt(w, "w1", f[i].ukh, &err);
            queue_ack(w, "w1", &a, 1, &res, &err);
        }
        queue_fetched_free(f, n);
        sent_during = n;
    }
    queue_free(w);
}

static int fail_midway(int batch_no)
{
    if (batch_no != 2) return 0;
    look_midway();
    return 1; /* the last batch fails */
}

static int look_only(int batch_no)
{
    if (batch_no == 2) look_midway();
    return 0;
}

/* import_watched sets up a namespace with its scheduler and imports the
 * items (2 jobs a batch: 3 batches) with the test seam set to seam */
static int import_watched(int (*seam)(int), hr_config **c, sched_import_stats *st, hr_err *err)
{
    *c = setup();
    if (!*c || !Q) return -2;
    future_at = redis_now_ms() + 1000;
    char *path = write_items(future_at);
    sched_import_opts o = {.path = path, .batch = 2};
    sched_test_enqueue_fail = seam;
    int rc = sched_import(Q, *c, &o, st, err);
    sched_test_enqueue_fail = NULL;
    free(path);
    return rc;
}

/* (a) an import whose jobs are due now, or become due while it runs,
 * fails on its last batch with a scheduler running: nothing became ready
 * or was sent meanwhile, and the rollback leaves none of its jobs */
static void test_failed_import_promotes_nothing(void)
{
    hr_config *c;
    sched_import_stats st;
    hr_err err = {0};
    CHECK_INT(import_watched(fail_midway, &c, &st, &err), -1);
    CHECK_INT(sched_during, 4); /* batches 0 and 1 were written... */
    CHECK_INT(ready_during, 0); /* ...and none of their jobs became ready */
    CHECK_INT(sent_during, 0);
    CHECK(strstr(err.msg, "rolled back the 4 jobs this run had added") != NULL);
    CHECK_INT(st.rolled_back, 4);
    CHECK_INT(count("LLEN", "ready:" LANE), 0);
    CHECK_INT(count("ZCARD", "sched:" LANE), 0);
    CHECK_INT(count("HLEN", "jobs"), 0);
    CHECK_INT(count("HLEN", "done"), 0);
    CHECK_INT(count("ZCARD", "held"), 0); /* the holds are dropped */
    CHECK_INT(count("ZCARD", "due"), 0);
    teardown(c);
}

static int all_ready(void *arg)
{
    return count("LLEN", "ready:" LANE) >= *(long *)arg;
}

/* (b) the same import succeeding: its jobs wait while it runs, and all
 * become ready once it ends */
static void test_import_promoted_after_success(void)
{
    hr_config *c;
    sched_import_stats st;
    hr_err err = {0};
    CHECK_INT(import_watched(look_only, &c, &st, &err), 0);
    CHECK_INT(st.added, NITEMS);
    CHECK_INT(ready_during, 0);
    CHECK_INT(sent_during, 0);
    CHECK_INT(count("ZCARD", "held"), 0);
    long want = NITEMS;
    CHECK(th_wait_for(all_ready, &want, 15000));
    CHECK_INT(count("LLEN", "ready:" LANE), NITEMS);
    CHECK_INT(count("ZCARD", "sched:" LANE), 0);
    teardown(c);
}

static int short_lease(void)
{
    return 5000; /* a loaded machine must not stall the child past it */
}

static int block_forever(int batch_no)
{
    if (batch_no == 2)
        for (;;)
            pause();
    return 0;
}

static int written_four(void *arg)
{
    (void)arg;
    return count("ZCARD", "sched:" LANE) >= 4;
}

/* (c) an import killed midway (kill -9) with its lanes held: once its
 * lease lapses the scheduler promotes the lane again (what it wrote is
 * then live: the documented limit of a kill -9), nothing stays stuck */
static void test_killed_import_hold_lapses(void)
{
    hr_config *c = setup();
    REQUIRE(c && Q);
    char *path = write_items(0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        queue_opts qo = {.url = url, .ns = ns};
        hr_err err = {0};
        queue *q = queue_connect(&qo, &err);
        sched_test_lock_lease_ms = short_lease;
        sched_test_enqueue_fail = block_forever;
        sched_import_opts o = {.path = path, .batch = 2};
        sched_import_stats st;
        if (q) sched_import(q, c, &o, &st, &err);
        _exit(0);
    }
    CHECK(th_wait_for(written_four, NULL, 15000));
    th_kill(pid, SIGKILL);
    long want = 4;
    CHECK(th_wait_for(all_ready, &want, 20000));
    CHECK_INT(count("LLEN", "ready:" LANE), 4);
    free(path);
    teardown(c);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    dir = th_tempdir();
    snprintf(url, sizeof url, "unix://%s", R->sock);
    th_run("failed_import_promotes_nothing", test_failed_import_promotes_nothing);
    th_run("import_promoted_after_success", test_import_promoted_after_success);
    th_run("killed_import_hold_lapses", test_killed_import_hold_lapses);
    queue_free(Q);
    free(dir);
    return th_main_end();
}
