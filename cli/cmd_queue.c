/* cmd_queue.c: `herald queue` (low-level queue operations for operators and
 * scripts: counts, promote, reap, lanes, get, cancel, pause, resume) and
 * `herald enqueue [FILE]` (jobs as JSON lines from FILE or stdin). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "commands.h"
#include "queue.h"

static int print_counts(queue *q, int json)
{
    hr_err err = {0};
    queue_lane_counts *c;
    int n;
    if (queue_counts(q, &c, &n, &err) < 0) {
        fprintf(stderr, "herald queue: %s\n", err.msg);
        return 1;
    }
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:b}", "lane", c[i].lane,
                                  "scheduled", (json_int_t)c[i].scheduled, "ready",
                                  (json_int_t)c[i].ready, "inflight", (json_int_t)c[i].inflight,
                                  "retrying", (json_int_t)c[i].retrying, "dead",
                                  (json_int_t)c[i].dead, "unknown", (json_int_t)c[i].unknown,
                                  "sent_total", (json_int_t)c[i].sent_total, "dead_total",
                                  (json_int_t)c[i].dead_total, "paused", c[i].paused);
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(arr);
    } else {
        printf("%-32s %9s %7s %8s %8s %6s %7s %9s\n", "LANE", "SCHEDULED", "READY", "INFLIGHT",
               "RETRYING", "DEAD", "UNKNOWN", "SENT");
        for (int i = 0; i < n; i++)
            printf("%-32s %9ld %7ld %8ld %8ld %6ld %7ld %9ld%s\n", c[i].lane, c[i].scheduled,
                   c[i].ready, c[i].inflight, c[i].retrying, c[i].dead, c[i].unknown,
                   c[i].sent_total, c[i].paused ? "  (paused)" : "");
    }
    free(c);
    return 0;
}

int cmd_queue(int argc, char **argv)
{
    int json = cli_has_flag(&argc, argv, "json");
    if (argc < 2) return cli_usage();
    const char *op = argv[1];
    queue *q = cli_queue();
    hr_err err = {0};
    if (strcmp(op, "counts") == 0) return print_counts(q, json);
    if (strcmp(op, "promote") == 0) {
        long total = 0, p;
        int64_t next, now;
        do {
            if (queue_promote(q, 1000, &p, &next, &now, &err) < 0) goto fail;
            total += p;
        } while (p > 0);
        printf("promoted %ld\n", total);
        return 0;
    }
    if (strcmp(op, "reap") == 0) {
        long rq, un;
        if (queue_reap(q, &rq, &un, &err) < 0) goto fail;
        printf("requeued %ld, unknown %ld\n", rq, un);
        return 0;
    }
    if (strcmp(op, "prune") == 0) {
        int n = queue_prune_stats(q, &err);
        if (n < 0) goto fail;
        printf("pruned %d\n", n);
        return 0;
    }
    if (strcmp(op, "lanes") == 0) {
        char **v;
        int n;
        if (queue_lanes(q, &v, &n, &err) < 0) goto fail;
        for (int i = 0; i < n; i++) printf("%s\n", v[i]);
        queue_strv_free(v, n);
        return 0;
    }
    if (argc < 3) return cli_usage();
    if (strcmp(op, "get") == 0) {
        if (queue_id_check(argv[2], &err) < 0) {
            fprintf(stderr, "herald queue get: %s\n", err.msg);
            return 2;
        }
        queue_job *j = queue_get(q, argv[2], &err);
        if (!j) {
            if (err.code) goto fail;
            fprintf(stderr, "herald queue get: no stored job %s (herald jobs show finds sent ones)\n",
                    argv[2]);
            return 3;
        }
        char *s = queue_job_to_json(j);
        printf("%s\n", s);
        free(s);
        queue_job_free(j);
        return 0;
    }
    if (strcmp(op, "cancel") == 0) {
        int r = queue_cancel(q, argv[2], &err);
        if (r < 0 && err.code != 2) goto fail;
        if (r <= 0) return cli_job_refused(q, argv[2], "herald queue cancel", "not cancellable");
        printf("cancelled\n");
        return 0;
    }
    if (strcmp(op, "pause") == 0 || strcmp(op, "resume") == 0) {
        int r = op[0] == 'p' ? queue_pause(q, argv[2], &err) : queue_resume(q, argv[2], &err);
        if (r < 0) goto fail;
        printf("%s %s\n", op[0] == 'p' ? "paused" : "resumed", argv[2]);
        return 0;
    }
    return cli_usage();
fail:
    fprintf(stderr, "herald queue %s: %s\n", op, err.msg);
    return 1;
}

/* herald enqueue [FILE]: one JSON job per line, from FILE or stdin (no FILE
 * or "-"); all lines are checked before any is written, so bad input
 * enqueues nothing. */
int cmd_enqueue(int argc, char **argv)
{
    int rc = cli_args_left(argc, argv, 0, 1);
    if (rc) return rc;
    const char *name = argc == 2 && strcmp(argv[1], "-") != 0 ? argv[1] : NULL;
    FILE *in = name ? fopen(name, "r") : stdin;
    if (!in) {
        fprintf(stderr, "herald enqueue: %s: %s\n", name, strerror(errno));
        return 2;
    }
    if (!name) name = "stdin";
    queue_job **jobs = NULL;
    int n = 0, cap = 0, lineno = 0, bad = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, in)) >= 0) {
        lineno++;
        if (len <= 1) continue;
        hr_err err = {0};
        queue_job *j = queue_job_from_json(line, &err);
        char lane[QUEUE_LANE_MAX];
        if (j && queue_job_lane(j, lane, sizeof lane) < 0) {
            hr_err_set(&err, "job needs \"platform\" and \"account\"");
            queue_job_free(j);
            j = NULL;
        }
        if (!j) {
            fprintf(stderr, "herald enqueue: %s:%d: %s\n", name, lineno, err.msg);
            bad++;
            continue;
        }
        if (n == cap) jobs = hr_realloc(jobs, sizeof *jobs * (size_t)(cap = cap ? cap * 2 : 64));
        jobs[n++] = j;
    }
    if (ferror(in)) {
        fprintf(stderr, "herald enqueue: %s: read error\n", name);
        bad++;
    }
    if (in != stdin) fclose(in);
    free(line);
    if (bad) {
        fprintf(stderr, "herald enqueue: %d bad line(s); nothing enqueued\n", bad);
        rc = 2;
    } else if (n) {
        hr_err err = {0};
        int *res = hr_calloc((size_t)n, sizeof *res);
        if (queue_enqueue(cli_queue(), jobs, n, res, &err) < 0) {
            fprintf(stderr, "herald enqueue: %s\n", err.msg);
            rc = 1;
        } else {
            long counts[5] = {0};
            for (int i = 0; i < n; i++) counts[res[i] >= 1 && res[i] <= 4 ? res[i] : 0]++;
            for (int i = 0; i < n; i++) printf("%s\n", jobs[i]->id);
            fprintf(stderr, "herald enqueue: %ld added, %ld updated, %ld unchanged, %ld already sent\n",
                    counts[1], counts[2], counts[3], counts[4]);
        }
        free(res);
    }
    for (int i = 0; i < n; i++) queue_job_free(jobs[i]);
    free(jobs);
    return rc;
}
