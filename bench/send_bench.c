/* send_bench.c: the helper of bench/send: enqueues N posts due now to one X
 * lane, so `herald worker` has a full queue to drain.
 *   send_bench REDIS_URL NS N LANE_ACCOUNT */
#include <stdio.h>
#include <stdlib.h>

#include "queue.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: send_bench REDIS_URL NS N ACCOUNT\n");
        return 2;
    }
    queue_opts o = {.url = argv[1], .ns = argv[2]};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) {
        fprintf(stderr, "send_bench: %s\n", err.msg);
        return 1;
    }
    long n = strtol(argv[3], NULL, 10);
    enum { BATCH = 1000 };
    queue_job *jobs[BATCH];
    int64_t now = hr_now_ms();
    for (long done = 0; done < n;) {
        int k = n - done < BATCH ? (int)(n - done) : BATCH;
        for (int i = 0; i < k; i++) {
            queue_job *j = queue_job_new();
            j->kind = QUEUE_KIND_POST;
            queue_set(&j->platform, "x");
            queue_set(&j->account, argv[4]);
            char text[64];
            snprintf(text, sizeof text, "bench post %ld", done + i);
            queue_set(&j->text, text);
            j->run_at_ms = now - 1000;
            j->max_attempts = 5;
            jobs[i] = j;
        }
        if (queue_enqueue(q, jobs, k, NULL, &err) != 0) {
            fprintf(stderr, "send_bench: enqueue: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < k; i++) queue_job_free(jobs[i]);
        done += k;
    }
    queue_free(q);
    return 0;
}
