/* cmd_import.c: `herald import [options] FILE`: parses options, connects and
 * runs sched_import; prints the plan (--dry-run) or a summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "queue.h"
#include "scheduler.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: herald import [--format wxr|ghost|csv|ndjson] [--campaign NAME]\n"
            "                     [--dry-run [--json]] [--sync] [--skip-invalid] [--drafts]\n"
            "                     [--seed N] [--now RFC3339] [--batch N] [--json] FILE\n");
    return 2;
}

int cmd_import(int argc, char **argv)
{
    sched_import_opts o = {0};
    const char *fmt = cli_take_opt(&argc, argv, "format");
    o.campaign = cli_take_opt(&argc, argv, "campaign");
    const char *seed = cli_take_opt(&argc, argv, "seed");
    const char *now = cli_take_opt(&argc, argv, "now");
    const char *batch = cli_take_opt(&argc, argv, "batch");
    o.dry_run = cli_has_flag(&argc, argv, "dry-run");
    o.json = cli_has_flag(&argc, argv, "json");
    o.sync = cli_has_flag(&argc, argv, "sync");
    o.skip_invalid = cli_has_flag(&argc, argv, "skip-invalid");
    o.drafts = cli_has_flag(&argc, argv, "drafts");
    int no_progress = cli_has_flag(&argc, argv, "no-progress");
    if (argc != 2 || argv[1][0] == '-') return usage();
    o.path = argv[1];
    if (fmt) {
        o.format = sched_format_parse(fmt);
        if (o.format == SCHED_FMT_AUTO) {
            fprintf(stderr, "herald import: --format: unknown format \"%s\"\n", fmt);
            return 2;
        }
    }
    int64_t v;
    if (seed) {
        if (hr_parse_i64(seed, &v) < 0) return usage();
        o.has_seed = 1;
        o.seed = (uint64_t)v;
    }
    if (now && hr_parse_rfc3339(now, &o.now_ms) < 0) {
        fprintf(stderr, "herald import: --now: \"%s\" is not an RFC 3339 time\n", now);
        return 2;
    }
    if (batch) {
        if (hr_parse_i64(batch, &v) < 0 || v < 1 || v > 100000) return usage();
        o.batch = (int)v;
    }
    o.progress = !no_progress && !o.dry_run && isatty(2);
    const hr_config *cfg = cli_config();
    queue *q = NULL;
    if (o.dry_run) {
        /* a plan needs no Redis; with one, it respects slots already taken */
        queue_opts qo = {0};
        qo.url = hr_config_get(cfg, "redis-url", NULL);
        qo.ns = hr_config_get(cfg, "namespace", "herald");
        qo.timeout_ms = 1000;
        hr_err e = {0};
        q = queue_connect(&qo, &e);
    } else {
        q = cli_queue();
    }
    sched_import_stats st;
    hr_err err = {0};
    int rc = sched_import(q, cfg, &o, &st, &err);
    if (o.dry_run) queue_free(q);
    if (rc < 0) {
        fprintf(stderr, "herald %s\n", err.msg);
        return err.code == 2 ? 2 : 1;
    }
    FILE *out = o.dry_run ? stderr : stdout;
    if (o.json && !o.dry_run) {
        printf("{\"items\":%ld,\"taken\":%ld,\"filtered\":%ld,\"invalid\":%ld,"
               "\"unchanged_items\":%ld,\"added\":%ld,\"updated\":%ld,\"unchanged\":%ld,"
               "\"done\":%ld,\"cancelled\":%ld,\"emails\":%ld,\"suppressed\":%ld,"
               "\"invalid_emails\":%ld}\n",
               st.items, st.taken, st.filtered, st.invalid, st.unchanged_items, st.added,
               st.updated, st.unchanged, st.done, st.cancelled, st.emails, st.suppressed,
               st.invalid_emails);
    } else if (!(o.dry_run && o.json)) {
        fprintf(out,
                "import: %ld items: %ld taken, %ld left out by status/type, %ld invalid%s, "
                "%ld unchanged\n"
                "jobs: %ld added, %ld updated, %ld unchanged, %ld already sent, %ld cancelled\n",
                st.items, st.taken, st.filtered, st.invalid, st.invalid ? " (skipped)" : "",
                st.unchanged_items, st.added, st.updated, st.unchanged, st.done, st.cancelled);
        if (st.emails || st.suppressed || st.invalid_emails)
            fprintf(out, "emails: %ld jobs; contacts skipped: %ld suppressed, %ld invalid\n",
                    st.emails, st.suppressed, st.invalid_emails);
    }
    return 0;
}
