/* cmd_dead.c: `herald dead list|show|retry|purge`: the dead letters of every
 * lane, for an operator to read, send again or drop. Listing and showing are
 * shared with `herald jobs`; this file adds the bulk retry and purge. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "queue.h"
#include "worker.h"

static int lane_ok(const char *lane, const char *platform, const char *only)
{
    if (only && strcmp(only, lane) != 0) return 0;
    if (platform) {
        size_t n = strlen(platform);
        if (strncmp(lane, platform, n) != 0 || lane[n] != ':') return 0;
    }
    return 1;
}

/* bulk retries or purges every dead job of the matching lanes buried
 * before before_ms (0: any time). */
static int bulk(queue *q, int retry, const char *platform, const char *only, int64_t before_ms,
                int json)
{
    hr_err err = {0};
    char **lanes;
    int nl;
    long done = 0;
    if (queue_lanes(q, &lanes, &nl, &err) < 0) goto fail;
    for (int l = 0; l < nl; l++) {
        if (!lane_ok(lanes[l], platform, only)) continue;
        for (;;) {
            /* always from the start: the ones handled have left the set */
            char **u;
            int nu;
            if (queue_list(q, lanes[l], "dead", 0, 1000, &u, &nu, &err) < 0) {
                queue_strv_free(lanes, nl);
                goto fail;
            }
            long moved = 0;
            for (int i = 0; i < nu; i++) {
                if (before_ms) {
                    /* the dead set's score is when the job was buried */
                    redisReply *z = redisCommand(queue_redis(q), "ZSCORE {%s}:dead:%s %s",
                                                 queue_ns(q), lanes[l], u[i]);
                    int keep = z && z->type == REDIS_REPLY_STRING && atoll(z->str) >= before_ms;
                    if (z) freeReplyObject(z);
                    if (keep) continue;
                }
                int r = retry ? queue_dead_retry(q, u[i], &err) : queue_dead_purge(q, u[i], &err);
                if (r < 0) {
                    queue_strv_free(u, nu);
                    queue_strv_free(lanes, nl);
                    goto fail;
                }
                moved += r;
            }
            queue_strv_free(u, nu);
            done += moved;
            if (nu < 1000 || moved == 0) break;
        }
    }
    queue_strv_free(lanes, nl);
    if (json)
        printf("{\"%s\":%ld}\n", retry ? "retried" : "purged", done);
    else
        printf("%s %ld dead job%s\n", retry ? "retried" : "purged", done, done == 1 ? "" : "s");
    return 0;
fail:
    fprintf(stderr, "herald dead %s: %s\n", retry ? "retry" : "purge", err.msg);
    return 1;
}

int cmd_dead(int argc, char **argv)
{
    if (argc < 2) return cli_usage();
    const char *op = argv[1];
    if (strcmp(op, "list") == 0) return cli_list_jobs(argc, argv, "dead", "herald dead");
    int json = cli_has_flag(&argc, argv, "json");
    if (strcmp(op, "show") == 0) {
        if (argc != 3) return cli_usage();
        return cli_show_job(argv[2], json, "herald dead");
    }
    int retry = strcmp(op, "retry") == 0;
    if (!retry && strcmp(op, "purge") != 0) return cli_usage();
    int all = cli_has_flag(&argc, argv, "all");
    const char *platform = cli_take_opt(&argc, argv, "platform");
    const char *lane = cli_take_opt(&argc, argv, "lane");
    const char *older = retry ? NULL : cli_take_opt(&argc, argv, "older-than");
    int64_t before = 0;
    if (older) {
        hr_err e = {0};
        int64_t ms;
        if (worker_parse_duration(older, &ms, &e) < 0) {
            fprintf(stderr, "herald dead purge: --older-than: %s\n", e.msg);
            return 2;
        }
        before = hr_now_ms() - ms;
    }
    if (all || platform || lane) {
        if (argc > 2) return cli_usage();
        return bulk(cli_queue(), retry, platform, lane, before, json);
    }
    if (argc < 3) return cli_usage();
    queue *q = cli_queue();
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        hr_err err = {0};
        int r = retry ? queue_dead_retry(q, argv[i], &err) : queue_dead_purge(q, argv[i], &err);
        if (r < 0 && err.code != 2) {
            fprintf(stderr, "herald dead %s: %s\n", op, err.msg);
            return 1;
        }
        if (r <= 0) { /* say why: not a job id, no such job, or not dead */
            char who[32];
            snprintf(who, sizeof who, "herald dead %s", op);
            rc = cli_worse_exit(rc, cli_job_refused(q, argv[i], who, "not dead"));
            if (rc == 1) return 1;
            continue;
        }
        printf("%s %s\n", retry ? "retried" : "purged", argv[i]);
    }
    return rc;
}
