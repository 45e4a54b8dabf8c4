/* cmd_forget.c: `herald forget EMAIL`: removes what herald stores about a
 * contact and keeps only the suppression entry (a keyed hash); exit 4 when
 * a job in flight or unknown could only be scrubbed, not removed. */
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "queue.h"
#include "webhooks.h"

int cmd_forget(int argc, char **argv)
{
    int bad = cli_args_left(argc, argv, 1, 1);
    if (bad) return bad;
    hr_err err = {0};
    char *secret = hr_secret_load(cli_config(), NULL, &err);
    if (!secret) {
        fprintf(stderr, "herald forget: %s\n", err.msg);
        return 2;
    }
    hook_forget_result res = {0};
    int rc = hook_forget(cli_queue(), secret, argv[1], &res, &err);
    free(secret);
    if (rc != 0) {
        fprintf(stderr, "herald forget: %s\n", err.msg);
        hook_forget_result_release(&res);
        return err.code == 2 ? 2 : 1;
    }
    printf("removed %ld job%s, %ld engagement row%s; suppression entry %s\n", res.jobs_removed,
           res.jobs_removed == 1 ? "" : "s", res.engagement_rows,
           res.engagement_rows == 1 ? "" : "s", res.suppressed ? "kept" : "missing");
    /* Not removable now, but no longer holding the address: say which, and
     * fail, so that a script does not take the contact for gone. */
    if (res.jobs_in_flight)
        printf("not removed, address scrubbed from the record: %ld job%s\n", res.jobs_in_flight,
               res.jobs_in_flight == 1 ? "" : "s");
    for (long i = 0; i < res.jobs_in_flight; i++) {
        const hook_forget_kept *k = &res.kept[i];
        if (k->unknown)
            printf("  %s unknown: settle it with herald unknown resolve %s --sent|--resend "
                   "(resent, it is buried as forgotten)\n",
                   k->id, k->id);
        else
            printf("  %s in flight: a worker has it; if it comes back unsent it is buried as "
                   "forgotten\n",
                   k->id);
    }
    int kept = res.jobs_in_flight > 0;
    hook_forget_result_release(&res);
    return kept ? 4 : 0;
}
