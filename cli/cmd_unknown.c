/* cmd_unknown.c: `herald unknown list|resolve`: jobs whose send may or may
 * not have happened, for an operator to settle when no read-back can. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "queue.h"
#include "worker.h"

/* list_unknown prints the unknown jobs (of one lane): a table, or with json
 * a streamed array of {id, lane, attempts, reason}. */
static int list_unknown(queue *q, const char *only_lane, int json)
{
    hr_err err = {0};
    char **lanes = NULL;
    int nl = 0;
    if (queue_lanes(q, &lanes, &nl, &err) != 0) {
        fprintf(stderr, "herald unknown: %s\n", err.msg);
        return 1;
    }
    long total = 0;
    if (json) fputs("[", stdout);
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
                const char *id = j ? j->id : ukhs[k];
                int tries = j ? queue_unknown_attempts(j, reason) : 0;
                if (json) {
                    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "id", id, "lane", lanes[i],
                                          "attempts", tries, "reason", reason ? reason : "");
                    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                    printf("%s%s", total ? ",\n" : "", line ? line : "{}");
                    free(line);
                    json_decref(o);
                } else {
                    printf("%s\t%s\t%d\t%s\n", id, lanes[i], tries, reason ? reason : "");
                }
                free(reason);
                queue_job_free(j);
                total++;
            }
            queue_strv_free(ukhs, n);
            if (n < 500) break;
        }
    }
    queue_strv_free(lanes, nl);
    if (json) fputs("]\n", stdout);
    fprintf(stderr, "%ld unknown\n", total);
    return 0;
}

static int resolve(int argc, char **argv)
{
    int sent = cli_has_flag(&argc, argv, "sent");
    int resend = cli_has_flag(&argc, argv, "resend");
    const char *pid = cli_take_opt(&argc, argv, "platform-id");
    int bad = cli_args_left(argc, argv, 2, 2);
    if (bad) return bad;
    if (sent == resend) {
        fprintf(stderr, "herald unknown resolve: give --sent or --resend\n");
        return cli_usage();
    }
    const char *id = argv[2];
    hr_err err = {0};
    if (queue_id_check(id, &err) < 0) {
        fprintf(stderr, "herald unknown resolve: %s\n", err.msg);
        return 2;
    }
    /* a post resolved as sent gets the engagement polls the workers'
     * acks give, from the same poll-schedule */
    int64_t polls[QUEUE_POLLS_MAX];
    int np = sent ? worker_poll_schedule(cli_config(), polls, QUEUE_POLLS_MAX, &err) : 0;
    if (np < 0) {
        fprintf(stderr, "herald unknown resolve: %s\n", err.msg);
        return 2; /* the config's poll-schedule */
    }
    queue *q = cli_queue();
    queue_set_polls(q, polls, np);
    int rc = queue_unknown_resolve(q, id, sent, pid, &err);
    if (rc == 2) {
        fprintf(stderr, "herald unknown resolve: %s: platform id %s is recorded for another job\n",
                id, pid);
        return 4;
    }
    if (rc < 0) {
        fprintf(stderr, "herald unknown resolve: %s: %s\n", id, err.msg);
        return err.code == 2 ? 2 : 1;
    }
    if (rc == 0) return cli_job_refused(q, id, "herald unknown resolve", "not in the unknown state");
    printf("%s %s\n", id, sent ? "resolved as sent" : "back to its lane to be sent");
    return 0;
}

int cmd_unknown(int argc, char **argv)
{
    if (argc < 2) return cli_usage();
    if (strcmp(argv[1], "list") == 0) {
        const char *lane = cli_take_opt(&argc, argv, "lane");
        int json = cli_has_flag(&argc, argv, "json");
        int bad = cli_args_left(argc, argv, 1, 1);
        if (bad) return bad;
        return list_unknown(cli_queue(), lane, json);
    }
    if (strcmp(argv[1], "resolve") == 0) return resolve(argc, argv);
    fprintf(stderr, "herald unknown: unknown action '%s'\n", argv[1]);
    return cli_usage();
}
