/* promote_bench.c: promotion lateness for bench/promote. Enqueues N jobs due
 * spread over one second (10 s from now) in 4 lanes, then pops the ready lists
 * as they fill (BLMPOP, then LPOPs) and records, per job, the time it became visible
 * minus its run_at. "observe" expects a scheduler already running on the
 * namespace; "poll:MS" runs a fixed-interval poller instead (the reference:
 * RQ polls every 1 s, Sidekiq and asynq about every 5 s).
 * Prints: p50_ms p99_ms max_ms observed steal_pct, the last the share of the
 * machine's CPU time the VM's host took while the jobs fell due (see
 * bench/lib.sh). */
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "queue.h"

#define LANES 4

typedef struct ent {
    char ukh[QUEUE_UKH_LEN + 1];
    int64_t run_at;
} ent;

/* /proc/stat's steal and total clock ticks over all cores */
static void steal_mark(unsigned long long *steal, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    *steal = *total = 0;
    if (!f) return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++) *total += v[i];
        *steal = v[7];
    }
    fclose(f);
}

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const ent *)a)->ukh, ((const ent *)b)->ukh);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static queue *connect_ns(const char *url, const char *ns)
{
    queue_opts o = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) {
        fprintf(stderr, "promote_bench: %s\n", err.msg);
        exit(1);
    }
    return q;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: promote_bench URL NS N observe|poll:MS\n");
        return 2;
    }
    const char *url = argv[1], *ns = argv[2], *mode = argv[4];
    long n = atol(argv[3]);
    queue *q = connect_ns(url, ns);
    ent *e = calloc((size_t)n, sizeof *e);
    int64_t t0 = hr_now_ms() + 10000; /* room to enqueue on a busy machine */
    enum { B = 2000 };
    queue_job *v[B];
    hr_err err = {0};
    for (long i = 0; i < n;) {
        int k = 0;
        for (; k < B && i < n; k++, i++) {
            queue_job *j = v[k] = queue_job_new();
            char acct[16];
            snprintf(acct, sizeof acct, "@l%ld", i % LANES);
            queue_set(&j->platform, "x");
            queue_set(&j->account, acct);
            j->unique_key = hr_asprintf("pb|%ld", i);
            j->run_at_ms = t0 + i * 1000 / n;
            queue_set(&j->text, "due");
            queue_ukh_from_key(j->unique_key, e[i].ukh);
            e[i].run_at = j->run_at_ms;
        }
        if (queue_enqueue(q, v, k, NULL, &err) < 0) {
            fprintf(stderr, "promote_bench: enqueue: %s\n", err.msg);
            return 1;
        }
        for (int x = 0; x < k; x++)
            queue_job_free(v[x]);
    }
    if (hr_now_ms() >= t0) fprintf(stderr, "promote_bench: enqueue took too long\n");
    qsort(e, (size_t)n, sizeof *e, ent_cmp);
    pid_t poller = 0;
    if (!strncmp(mode, "poll:", 5)) {
        int every_ms = atoi(mode + 5);
        poller = fork();
        if (poller == 0) {
            queue *pq = connect_ns(url, ns);
            for (;;) {
                long moved;
                int64_t next, now;
                do {
                    if (queue_promote(pq, 1000, &moved, &next, &now, &err) < 0) _exit(1);
                } while (moved > 0 && next && next <= now);
                usleep((useconds_t)every_ms * 1000);
            }
        }
    }
    while (hr_now_ms() < t0 - 100)
        usleep(10000);
    unsigned long long st0, tt0, st1, tt1;
    steal_mark(&st0, &tt0);
    int64_t *late = calloc((size_t)n, sizeof *late);
    long seen = 0;
    redisContext *c = queue_redis(q);
    int64_t deadline = t0 + 30000;
    /* The observer waits in BLMPOP (as a worker waiting for work would)
     * rather than polling: a spinning observer takes a whole core of the two
     * from the scheduler and Redis it measures. Once woken it drains the
     * lanes with pipelined LPOPs until they are empty, then waits again. */
    char k[LANES][64];
    for (int l = 0; l < LANES; l++)
        snprintf(k[l], sizeof k[l], "{%s}:ready:x:@l%d", ns, l);
    int drain = 0;
    while (seen < n && hr_now_ms() < deadline) {
        int calls = drain ? LANES : 1, got = 0;
        if (drain)
            for (int l = 0; l < LANES; l++)
                redisAppendCommand(c, "LPOP %s 1000", k[l]);
        else
            redisAppendCommand(c, "BLMPOP 1 %d %s %s %s %s LEFT COUNT 1000", LANES, k[0], k[1],
                               k[2], k[3]);
        for (int x = 0; x < calls; x++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) return 1;
            int64_t now = hr_now_ms();
            redisReply *el = r;
            if (!drain) /* BLMPOP: [key, [elements]] or nil on timeout */
                el = r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1] : NULL;
            if (r->type == REDIS_REPLY_ERROR) {
                fprintf(stderr, "promote_bench: %s\n", r->str);
                return 1;
            }
            if (el && el->type == REDIS_REPLY_ARRAY)
                for (size_t y = 0; y < el->elements && seen < n; y++, got++) {
                    ent key;
                    snprintf(key.ukh, sizeof key.ukh, "%s", el->element[y]->str);
                    ent *f = bsearch(&key, e, (size_t)n, sizeof *e, ent_cmp);
                    if (f) late[seen++] = now - f->run_at;
                }
            freeReplyObject(r);
        }
        drain = got > 0;
    }
    if (poller > 0) {
        kill(poller, SIGKILL);
        waitpid(poller, NULL, 0);
    }
    steal_mark(&st1, &tt1);
    qsort(late, (size_t)seen, sizeof *late, i64_cmp);
    if (seen == 0) return 1;
    printf("%lld %lld %lld %ld %.1f\n", (long long)late[seen / 2], (long long)late[seen * 99 / 100],
           (long long)late[seen - 1], seen,
           tt1 > tt0 ? (double)(st1 - st0) * 100.0 / (double)(tt1 - tt0) : 0.0);
    free(late);
    free(e);
    queue_free(q);
    return seen == n ? 0 : 1;
}
