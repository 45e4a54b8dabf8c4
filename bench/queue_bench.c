/* queue_bench.c: pushes N no-op jobs through enqueue -> promote -> fetch ->
 * ack with batching and reports jobs/s, and Redis memory per queued job
 * (ready and scheduled). Driven by bench/queue, which starts redis-server. */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue.h"

#define LANES 8
#define BATCH 1000

static queue *connect_ns(const char *url, const char *ns)
{
    queue_opts o = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) {
        fprintf(stderr, "queue_bench: %s\n", err.msg);
        exit(1);
    }
    return q;
}

static long long used_memory(queue *q)
{
    redisReply *r = redisCommand(queue_redis(q), "INFO memory");
    const char *p = r && r->str ? strstr(r->str, "used_memory:") : NULL;
    long long v = p ? atoll(p + 12) : -1;
    if (r) freeReplyObject(r);
    return v;
}

static const char *accounts[LANES] = {"@shop", "@news", "@blog", "@deals",
                                      "@team", "@jobs", "@help", "@dev"};

static queue_job *make_job(long i, int64_t run_at)
{
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "x");
    queue_set(&j->account, accounts[i % LANES]);
    j->run_at_ms = run_at;
    return j;
}

static void die(const char *what, hr_err *err)
{
    fprintf(stderr, "queue_bench: %s: %s\n", what, err->msg);
    exit(1);
}

/* fill enqueues n jobs due at run_at into namespace q; returns the mean
 * stored blob size */
static double fill(queue *q, long n, int64_t run_at)
{
    hr_err err = {0};
    long payload_total = 0;
    queue_job *batch[BATCH];
    for (long i = 0; i < n; i += BATCH) {
        int k = 0;
        for (; k < BATCH && i + k < n; k++) {
            batch[k] = make_job(i + k, run_at);
            queue_job_assign_id(batch[k]);
            hr_buf b;
            hr_buf_init(&b);
            queue_job_encode(batch[k], &b);
            payload_total += (long)b.len;
            hr_buf_release(&b);
        }
        if (queue_enqueue(q, batch, k, NULL, &err) < 0) die("enqueue", &err);
        for (int x = 0; x < k; x++) queue_job_free(batch[x]);
    }
    return (double)payload_total / (double)n;
}

/* memory: N jobs queued as scheduled (an hour ahead), then N as ready */
static void measure_memory(const char *url, long n, double *per_sched, double *per_ready,
                           double *payload)
{
    queue *q = connect_ns(url, "mem");
    long long m0 = used_memory(q);
    *payload = fill(q, n, hr_now_ms() + 3600000);
    long long m1 = used_memory(q);
    redisReply *r = redisCommand(queue_redis(q), "FLUSHALL");
    if (r) freeReplyObject(r);
    long long m2 = used_memory(q);
    fill(q, n, 0);
    long long m3 = used_memory(q);
    *per_sched = (double)(m1 - m0) / (double)n;
    *per_ready = (double)(m3 - m2) / (double)n;
    r = redisCommand(queue_redis(q), "FLUSHALL");
    if (r) freeReplyObject(r);
    queue_free(q);
}

/* throughput: the stages run as they do in production, as separate
 * processes on the same Redis: a producer enqueues (scheduled 20 ms ahead, so
 * every job passes through promote), a scheduler promotes, a worker fetches
 * and acknowledges. The figure is N over the time until the last ack. */
static void producer(const char *url, long n)
{
    queue *q = connect_ns(url, "tp");
    hr_err err = {0};
    queue_job *batch[BATCH];
    for (long enq = 0; enq < n;) {
        int k = 0;
        int64_t at = hr_now_ms() + 20;
        for (; k < BATCH && enq + k < n; k++) batch[k] = make_job(enq + k, at);
        if (queue_enqueue(q, batch, k, NULL, &err) < 0) die("enqueue", &err);
        for (int x = 0; x < k; x++) queue_job_free(batch[x]);
        enq += k;
    }
    queue_free(q);
}

/* scheduler promotes until the parent stops it (when the worker is done);
 * it reports how many jobs it promoted on its exit status pipe. */
static int sched_pipe[2];

static void scheduler(const char *url, long n)
{
    (void)n;
    queue *q = connect_ns(url, "tp");
    hr_err err = {0};
    long promoted = 0, calls = 0, idle = 0;
    char c;
    fcntl(sched_pipe[0], F_SETFL, O_NONBLOCK);
    while (read(sched_pipe[0], &c, 1) != 1) {
        long p;
        int64_t next, now;
        if (queue_promote(q, BATCH, &p, &next, &now, &err) < 0) die("promote", &err);
        promoted += p;
        calls++;
        if (p == 0) {
            idle++;
            usleep(200);
        }
    }
    fprintf(stderr, "queue_bench: scheduler: %ld promote calls, %ld found nothing due\n", calls,
            idle);
    if (write(sched_pipe[1], &promoted, sizeof promoted) != sizeof promoted) _exit(1);
    queue_free(q);
}

static void worker(const char *url, long n)
{
    queue *q = connect_ns(url, "tp");
    hr_err err = {0};
    const char *lanes[LANES];
    for (int i = 0; i < LANES; i++) lanes[i] = hr_asprintf("x:%s", accounts[i]);
    if (queue_worker_register(q, "bench", 60000, &err) < 0) die("register", &err);
    queue_ack_item items[BATCH];
    long calls = 0, idle = 0;
    for (long acked = 0; acked < n;) {
        queue_fetched *f;
        int nf;
        if (queue_fetch(q, "bench", lanes, LANES, BATCH, 60000, &f, &nf, &err) != 0)
            die("fetch", &err);
        calls++;
        idle += nf == 0;
        for (int i = 0; i < nf; i++)
            items[i] = (queue_ack_item){
                .ukh = f[i].ukh, .lane = f[i].lane, .lateness_ms = -1, .no_done = 1};
        if (nf && queue_ack(q, "bench", items, nf, NULL, &err) < 0) die("ack", &err);
        acked += nf;
        queue_fetched_free(f, nf);
        if (nf == 0) usleep(500);
    }
    fprintf(stderr, "queue_bench: worker: %ld fetch calls, %ld empty\n", calls, idle);
    for (int i = 0; i < LANES; i++) free((char *)lanes[i]);
    queue_free(q);
}

static double redis_cpu_us(queue *q);

static double measure_throughput(const char *url, long n)
{
    void (*stages[3])(const char *, long) = {producer, scheduler, worker};
    pid_t pids[3];
    if (pipe(sched_pipe) < 0) exit(1);
    queue *probe = connect_ns(url, "probe");
    double cpu0 = redis_cpu_us(probe), cpu1 = 0;
    int64_t t0 = hr_mono_us();
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            stages[i](url, n);
            _exit(0);
        }
    }
    double secs = 0, stage_us[3] = {0};
    long promoted = 0;
    for (int i = 2; i >= 0; i--) {
        int st;
        struct rusage ru;
        if (i == 1) { /* the worker is done: stop the scheduler */
            secs = (double)(hr_mono_us() - t0) / 1e6;
            cpu1 = redis_cpu_us(probe);
            if (write(sched_pipe[1], "x", 1) != 1) exit(1);
            usleep(100000);
        }
        wait4(pids[i], &st, 0, &ru);
        stage_us[i] = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                      (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "queue_bench: stage %d failed\n", i);
            exit(1);
        }
    }
    if (read(sched_pipe[0], &promoted, sizeof promoted) != sizeof promoted) promoted = -1;
    fprintf(stderr,
            "queue_bench: %ld jobs through enqueue, promote (%ld), fetch, ack in %.3f s; "
            "CPU per job: Redis %.2f us, producer %.2f, scheduler %.2f, worker %.2f\n",
            n, promoted, secs, (cpu1 - cpu0) / (double)n, stage_us[0] / (double)n,
            stage_us[1] / (double)n, stage_us[2] / (double)n);
    queue_free(probe);
    return (double)n / secs;
}

/* redis_cpu_us reads the server's own CPU time (user + sys) from INFO */
static double redis_cpu_us(queue *q)
{
    redisReply *r = redisCommand(queue_redis(q), "INFO cpu");
    double u = 0, s = 0;
    const char *p;
    if (r && r->str && (p = strstr(r->str, "used_cpu_user:"))) u = atof(p + 14);
    if (r && r->str && (p = strstr(r->str, "used_cpu_sys:"))) s = atof(p + 13);
    if (r) freeReplyObject(r);
    return (u + s) * 1e6;
}

/* stages: each stage in turn over n jobs in one process, printing the
 * Redis CPU per job of each (a diagnostic: where the server's time goes) */
static void measure_stages(const char *url, long n)
{
    queue *q = connect_ns(url, "st");
    hr_err err = {0};
    const char *lanes[LANES];
    for (int i = 0; i < LANES; i++) lanes[i] = hr_asprintf("x:%s", accounts[i]);
    if (queue_worker_register(q, "stages", 600000, &err) < 0) die("register", &err);
    double t0 = redis_cpu_us(q);
    queue_job *batch[BATCH];
    int64_t at = hr_now_ms() + 1000;
    for (long i = 0; i < n; i += BATCH) {
        int k = 0;
        for (; k < BATCH && i + k < n; k++) batch[k] = make_job(i + k, at);
        if (queue_enqueue(q, batch, k, NULL, &err) < 0) die("enqueue", &err);
        for (int x = 0; x < k; x++) queue_job_free(batch[x]);
    }
    double t1 = redis_cpu_us(q);
    while (hr_now_ms() < at + 50) usleep(10000);
    double t2 = redis_cpu_us(q);
    for (long p = 1; p > 0;) {
        int64_t next, now;
        if (queue_promote(q, BATCH, &p, &next, &now, &err) < 0) die("promote", &err);
    }
    double t3 = redis_cpu_us(q), fetch_us = 0, ack_us = 0;
    queue_ack_item items[BATCH];
    /* fetch and ack alternate, as in a worker, so the in-flight record
     * stays batch-sized; each is timed on its own */
    for (long got = 0; got < n;) {
        queue_fetched *f;
        int nf;
        double a = redis_cpu_us(q);
        if (queue_fetch(q, "stages", lanes, LANES, BATCH, 600000, &f, &nf, &err) != 0)
            die("fetch", &err);
        double b = redis_cpu_us(q);
        if (nf == 0) {
            hr_err_set(&err, "no job ready after %ld", got);
            die("fetch", &err);
        }
        for (int i = 0; i < nf; i++)
            items[i] = (queue_ack_item){
                .ukh = f[i].ukh, .lane = f[i].lane, .lateness_ms = -1, .no_done = 1};
        if (queue_ack(q, "stages", items, nf, NULL, &err) < 0) die("ack", &err);
        double c = redis_cpu_us(q);
        fetch_us += b - a;
        ack_us += c - b;
        got += nf;
        queue_fetched_free(f, nf);
    }
    fprintf(stderr,
            "queue_bench: Redis CPU per job: enqueue %.2f us, promote %.2f, fetch %.2f, "
            "ack %.2f, total %.2f\n",
            (t1 - t0) / n, (t3 - t2) / n, fetch_us / n, ack_us / n,
            (t1 - t0 + t3 - t2 + fetch_us + ack_us) / n);
    for (int i = 0; i < LANES; i++) free((char *)lanes[i]);
    redisReply *r = redisCommand(queue_redis(q), "FLUSHALL");
    if (r) freeReplyObject(r);
    queue_free(q);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: queue_bench REDIS_URL N\n");
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[2]);
    if (argc > 3 && strcmp(argv[3], "stages") == 0) {
        measure_stages(url, n);
        return 0;
    }
    double per_sched, per_ready, payload;
    measure_memory(url, n, &per_sched, &per_ready, &payload);
    double jps = measure_throughput(url, n);
    printf("%.0f %.1f %.1f %.1f\n", jps, per_ready, per_sched, payload);
    return 0;
}
