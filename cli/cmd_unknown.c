/* cmd_unknown.c: `herald unknown list|resolve`: jobs whose send may or may
 * not have happened, for an operator to settle when no read-back can. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "queue.h"
#include "worker.h"

static int list_unknown(queue *q, const char *only_lane)
{
    hr_err err = {0};
    char **lanes = NULL;
    int nl = 0;
    if (queue_lanes(q, &lanes, &nl, &err) != 0) {
        fprintf(stderr, "herald unknown: %s\n", err.msg);
        return 1;
    }
    long total = 0;
    for (int i = 0; i < nl; i++) {
        if (only_lane && strcmp(only_lane, lanes[i]) != 0) continue;
        for (long start = 0;; start += 500) {
            char **ukhs = NULL;
            int n = 0;
            if (queue_list(q, lanes[i], "unknown", start, 500, &ukhs, &n, &err) != 0) {
                fprintf(stderr, "herald unknown: %s: %s\n", lanes[i], err.msg);
                queue_strv_free(lanes, nl);
                return 1;
            }
            for (int k = 0; k < n; k++) {
                queue_job *j = queue_get(q, ukhs[k], &err);
                char *reason = queue_dead_reason(q, ukhs[k], &err);
                printf("%s\t%s\t%d\t%s\n", j ? j->id : ukhs[k], lanes[i], j ? j->attempt : 0,
                       reason ? reason : "");
                free(reason);
                queue_job_free(j);
                total++;
            }
            queue_strv_free(ukhs, n);
            if (n < 500) break;
        }
    }
    queue_strv_free(lanes, nl);
    fprintf(stderr, "%ld unknown\n", total);
    return 0;
}

int cmd_unknown(int argc, char **argv)
{
    const char *usage = "usage: herald unknown list [--lane LANE]\n"
                        "       herald unknown resolve ID --sent [--platform-id ID]\n"
                        "       herald unknown resolve ID --resend\n";
    if (argc < 2 || cli_has_flag(&argc, argv, "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "list") == 0) {
        const char *lane = cli_take_opt(&argc, argv, "lane");
        if (argc > 2) {
            fprintf(stderr, "herald unknown list: unexpected argument '%s'\n", argv[2]);
            return 2;
        }
        return list_unknown(cli_queue(), lane);
    }
    if (strcmp(argv[1], "resolve") == 0) {
        int sent = cli_has_flag(&argc, argv, "sent");
        int resend = cli_has_flag(&argc, argv, "resend");
        const char *pid = cli_take_opt(&argc, argv, "platform-id");
        if (argc != 3 || sent == resend) {
            fprintf(stderr, "herald unknown resolve: give one job id and --sent or --resend\n%s",
                    usage);
            return 2;
        }
        hr_err err = {0};
        /* a post resolved as sent gets the engagement polls the workers'
         * acks give, from the same poll-schedule */
        int64_t polls[QUEUE_POLLS_MAX];
        int np = sent ? worker_poll_schedule(cli_config(), polls, QUEUE_POLLS_MAX, &err) : 0;
        if (np < 0) {
            fprintf(stderr, "herald unknown resolve: %s\n", err.msg);
            return 1;
        }
        queue *q = cli_queue();
        queue_set_polls(q, polls, np);
        int rc = queue_unknown_resolve(q, argv[2], sent, pid, &err);
        if (rc == 2) {
            fprintf(stderr,
                    "herald unknown resolve: %s: platform id %s is recorded for another job\n",
                    argv[2], pid);
            return 1;
        }
        if (rc < 0) {
            fprintf(stderr, "herald unknown resolve: %s: %s\n", argv[2], err.msg);
            return 1;
        }
        if (rc == 0) {
            fprintf(stderr, "herald unknown resolve: %s: not in the unknown state\n", argv[2]);
            return 1;
        }
        printf("%s %s\n", argv[2], sent ? "resolved as sent" : "back to its lane to be sent");
        return 0;
    }
    fprintf(stderr, "herald unknown: unknown action '%s'\n%s", argv[1], usage);
    return 2;
}
