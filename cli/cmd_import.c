/* cmd_import.c: `herald import [options] FILE`: parses options, connects and
 * runs sched_import; prints the plan (--dry-run) or a summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "commands.h"
#include "platforms.h"
#include "queue.h"
#include "scheduler.h"

/* herald preview: every job an import would create, each printed as the
 * `herald format --json` object for its account (docs/format.md) plus the
 * job's source, run_at and kind. Accounts are parsed once each. */
typedef struct preview_ctx {
    const hr_config *cfg;
    char *secret;
    plat_account **accts;
    char **lanes;
    int n;
    int failed;
} preview_ctx;

static void on_planned(const queue_job *j, void *priv)
{
    preview_ctx *pc = priv;
    char lane[QUEUE_LANE_MAX];
    if (queue_job_lane(j, lane, sizeof lane) < 0) return;
    plat_account *a = NULL;
    for (int i = 0; i < pc->n && !a; i++)
        if (strcmp(pc->lanes[i], lane) == 0) a = pc->accts[i];
    hr_err err = {0};
    if (!a) {
        a = plat_account_find(pc->cfg, j->platform, j->account, &err);
        if (!a) {
            fprintf(stderr, "herald preview: %s\n", err.msg);
            pc->failed = 1;
            return;
        }
        pc->accts = hr_realloc(pc->accts, sizeof *pc->accts * (size_t)(pc->n + 1));
        pc->lanes = hr_realloc(pc->lanes, sizeof *pc->lanes * (size_t)(pc->n + 1));
        pc->accts[pc->n] = a;
        pc->lanes[pc->n++] = hr_strdup(lane);
    }
    plat_ctx ctx = {.secret = pc->secret, .now_ms = 0};
    char *js = plat_preview_job(a, j, &ctx, &err);
    if (!js) {
        fprintf(stderr, "herald preview: %s %s: %s\n", j->source ? j->source : "?", lane,
                err.msg);
        pc->failed = 1;
        return;
    }
    json_t *o = json_loads(js, 0, NULL);
    free(js);
    if (!o) return;
    char run[40];
    hr_format_rfc3339(j->run_at_ms, run, sizeof run);
    json_object_set_new(o, "source", json_string(j->source ? j->source : ""));
    json_object_set_new(o, "platform", json_string(j->platform));
    json_object_set_new(o, "account", json_string(j->account));
    json_object_set_new(o, "kind", json_string(j->kind == QUEUE_KIND_EMAIL ? "email" : "post"));
    json_object_set_new(o, "run_at", json_string(run));
    char *line = json_dumps(o, JSON_COMPACT);
    if (line) printf("%s\n", line);
    free(line);
    json_decref(o);
}

static int run_import(int argc, char **argv, int preview);

int cmd_import(int argc, char **argv) { return run_import(argc, argv, 0); }
int cmd_preview(int argc, char **argv) { return run_import(argc, argv, 1); }

static int run_import(int argc, char **argv, int preview)
{
    sched_import_opts o = {0};
    const char *fmt = cli_take_opt(&argc, argv, "format");
    o.campaign = cli_take_opt(&argc, argv, "campaign");
    const char *seed = cli_take_opt(&argc, argv, "seed");
    const char *now = cli_take_opt(&argc, argv, "now");
    const char *batch = cli_take_opt(&argc, argv, "batch");
    const char *lock_wait = cli_take_opt(&argc, argv, "lock-wait");
    o.dry_run = cli_has_flag(&argc, argv, "dry-run");
    o.json = cli_has_flag(&argc, argv, "json");
    o.sync = cli_has_flag(&argc, argv, "sync");
    o.skip_invalid = cli_has_flag(&argc, argv, "skip-invalid");
    o.drafts = cli_has_flag(&argc, argv, "drafts");
    int no_progress = cli_has_flag(&argc, argv, "no-progress");
    int bad = cli_args_left(argc, argv, 1, 1);
    if (bad) return bad;
    o.path = argv[1];
    if (fmt) {
        o.format = sched_format_parse(fmt);
        if (o.format == SCHED_FMT_AUTO) {
            fprintf(stderr, "herald %s: --format: unknown format \"%s\"\n", argv[0], fmt);
            return 2;
        }
    }
    int64_t v;
    if (seed) {
        if (cli_opt_i64("seed", seed, INT64_MIN, INT64_MAX, &v) < 0) return 2;
        o.has_seed = 1;
        o.seed = (uint64_t)v;
    }
    if (now && hr_parse_rfc3339(now, &o.now_ms) < 0) {
        fprintf(stderr, "herald %s: --now: \"%s\" is not an RFC 3339 time\n", argv[0], now);
        return 2;
    }
    if (batch) {
        if (cli_opt_i64("batch", batch, 1, 100000, &v) < 0) return 2;
        o.batch = (int)v;
    }
    if (lock_wait) {
        if (cli_opt_i64("lock-wait", lock_wait, 0, 86400, &v) < 0) return 2;
        o.lock_wait_s = v ? (int)v : -1;
    }
    preview_ctx pc = {0}; /* once the options are good: it holds the secret */
    if (preview) {
        o.dry_run = 1;
        o.json = 1;
        o.on_planned = on_planned;
        o.planned_priv = &pc;
        pc.cfg = cli_config();
        hr_err se = {0};
        pc.secret = hr_secret_load(pc.cfg, NULL, &se); /* NULL: emails show no unsubscribe URL */
    }
    /* a dry run of a large export takes as long to read: it shows one too */
    o.progress = !no_progress && isatty(2);
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
    if (preview) {
        for (int i = 0; i < pc.n; i++) {
            plat_account_free(pc.accts[i]);
            free(pc.lanes[i]);
        }
        free(pc.accts);
        free(pc.lanes);
        free(pc.secret);
        if (rc == 0 && pc.failed) return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "herald %s\n", err.msg);
        return err.code == 2 ? 2 : 1;
    }
    FILE *out = o.dry_run ? stderr : stdout;
    const sched_contact_skips *sk = &st.invalid_emails;
    if (o.json && !o.dry_run) {
        /* the first contacts rows left out: line and reason, never the
         * address (this output is often kept as a log) */
        json_t *rows = json_array();
        for (int i = 0; i < sk->kept; i++)
            json_array_append_new(rows, json_pack("{s:s, s:I, s:s}", "file", sk->file, "line",
                                                  (json_int_t)sk->first[i].line, "reason",
                                                  sk->first[i].why));
        char *rows_js = json_dumps(rows, JSON_COMPACT);
        json_decref(rows);
        printf("{\"items\":%ld,\"taken\":%ld,\"filtered\":%ld,\"invalid\":%ld,"
               "\"kept_invalid\":%ld,\"unchanged_items\":%ld,\"added\":%ld,\"updated\":%ld,\"unchanged\":%ld,"
               "\"done\":%ld,\"cancelled\":%ld,\"emails\":%ld,\"suppressed\":%ld,"
               "\"invalid_emails\":%ld,\"invalid_email_rows\":%s}\n",
               st.items, st.taken, st.filtered, st.invalid, st.kept_invalid, st.unchanged_items,
               st.added, st.updated, st.unchanged, st.done, st.cancelled, st.emails, st.suppressed,
               sk->n, rows_js ? rows_js : "[]");
        free(rows_js);
    } else if (!(o.dry_run && o.json)) {
        char skipped[80] = "";
        if (st.invalid) snprintf(skipped, sizeof skipped, " (skipped)");
        if (st.kept_invalid) /* --sync did not cancel them */
            snprintf(skipped, sizeof skipped, " (skipped; %ld kept their jobs)", st.kept_invalid);
        fprintf(out,
                "import: %ld items: %ld taken, %ld left out by status/type, %ld invalid%s, "
                "%ld unchanged\n",
                st.items, st.taken, st.filtered, st.invalid, skipped, st.unchanged_items);
        if (o.dry_run) /* nothing was added: the plan above is the result */
            fprintf(out, "%ld job%s planned (nothing written)\n", st.planned,
                    st.planned == 1 ? "" : "s");
        else
            fprintf(out, "jobs: %ld added, %ld updated, %ld unchanged, %ld already sent, "
                         "%ld cancelled\n",
                    st.added, st.updated, st.unchanged, st.done, st.cancelled);
        if (st.emails || st.suppressed || sk->n)
            fprintf(out, "emails: %ld jobs; contacts skipped: %ld suppressed, %ld invalid\n",
                    st.emails, st.suppressed, sk->n);
    }
    if (!(o.json && !o.dry_run)) { /* a dry run's JSON plan is on stdout: these go to stderr */
        for (int i = 0; i < sk->kept; i++)
            fprintf(out, "skipped contact: %s:%ld: %s\n", sk->file, sk->first[i].line,
                    sk->first[i].why);
        if (sk->n > sk->kept)
            fprintf(out, "skipped contacts: %ld more\n", sk->n - sk->kept);
    }
    return 0;
}
