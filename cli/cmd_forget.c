/* cmd_forget.c: `herald forget EMAIL`: removes what herald stores about a
 * contact and keeps only the suppression entry (a keyed hash). */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "queue.h"
#include "webhooks.h"

int cmd_forget(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: herald forget EMAIL\n");
        return 2;
    }
    hr_err err = {0};
    char *secret = hr_secret_load(cli_config(), &err);
    if (!secret) {
        fprintf(stderr, "herald forget: %s\n", err.msg);
        return 2;
    }
    hook_forget_result res = {0};
    int rc = hook_forget(cli_queue(), secret, argv[1], &res, &err);
    free(secret);
    if (rc != 0) {
        fprintf(stderr, "herald forget: %s\n", err.msg);
        return err.code == 2 ? 2 : 1;
    }
    printf("removed %ld queued job%s, %ld engagement row%s; suppression entry %s\n",
           res.jobs_removed, res.jobs_removed == 1 ? "" : "s", res.engagement_rows,
           res.engagement_rows == 1 ? "" : "s", res.suppressed ? "kept" : "missing");
    return 0;
}
