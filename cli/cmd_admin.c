/* cmd_admin.c: `herald pause|resume PLATFORM|LANE` and `herald config check`,
 * which validates the config file and the credential files it names by asking
 * each module to parse what it owns, and prints every problem with its line.
 * It never prints a secret, only whether it could be read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdarg.h>

#include "commands.h"
#include "platforms.h"
#include "queue.h"
#include "scheduler.h"
#include "webhooks.h"
#include "worker.h"

/* ------------------------------------------------------ pause/resume */

/* lane_known: an account line in the config names lane, or the queue has
 * it (jobs for an account with defaults). 1, 0, -1 with err. */
static int lane_known(queue *q, const char *lane, hr_err *err)
{
    int pos = -1;
    const hr_conf_line *l;
    while ((l = hr_config_next(cli_config(), "account", &pos)))
        if (l->argc >= 1 && strcmp(l->argv[0], lane) == 0) return 1;
    char **lanes;
    int n, found = 0;
    if (queue_lanes(q, &lanes, &n, err) < 0) return -1;
    for (int i = 0; i < n && !found; i++)
        found = strcmp(lanes[i], lane) == 0;
    queue_strv_free(lanes, n);
    return found;
}

static int pause_resume(int argc, char **argv, int pause)
{
    const char *who = pause ? "herald pause" : "herald resume";
    int json = cli_has_flag(&argc, argv, "json");
    int force = pause && cli_has_flag(&argc, argv, "force");
    int bad = cli_args_left(argc, argv, 1, argc);
    if (bad) return bad;
    for (int i = 1; i < argc; i++) {
        const char *colon = strchr(argv[i], ':');
        char plat[64];
        snprintf(plat, sizeof plat, "%.*s", colon ? (int)(colon - argv[i]) : (int)strlen(argv[i]),
                 argv[i]);
        if (!plat_known(plat)) {
            fprintf(stderr, "%s: \"%s\" is not a platform herald knows\n", who, plat);
            return 2;
        }
    }
    queue *q = cli_queue();
    hr_err err = {0};
    /* a misspelt account would be paused to no effect: refuse it (all or
     * nothing) unless --force */
    for (int i = 1; i < argc && pause && !force; i++) {
        int k = strchr(argv[i], ':') ? lane_known(q, argv[i], &err) : 1;
        if (k < 0) goto fail;
        if (k == 0) {
            fprintf(stderr,
                    "%s: %s: no such account (no account line in the config, no jobs in the "
                    "queue); --force pauses it anyway\n",
                    who, argv[i]);
            return 3;
        }
    }
    for (int i = 1; i < argc; i++) {
        if ((pause ? queue_pause(q, argv[i], &err) : queue_resume(q, argv[i], &err)) < 0)
            goto fail;
        /* a lane resumed while its platform is paused still sends nothing */
        int held = !pause && strchr(argv[i], ':') ? queue_is_paused(q, argv[i], &err) : 0;
        if (held < 0) goto fail;
        if (json)
            printf("{\"%s\":\"%s\",\"paused\":%s}\n", pause ? "paused" : "resumed", argv[i],
                   pause || held ? "true" : "false");
        else if (held)
            printf("resumed %s, but its platform %.*s is paused: it still sends nothing "
                   "(herald resume %.*s)\n",
                   argv[i], (int)(strchr(argv[i], ':') - argv[i]), argv[i],
                   (int)(strchr(argv[i], ':') - argv[i]), argv[i]);
        else
            printf("%s %s\n", pause ? "paused" : "resumed", argv[i]);
    }
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", who, err.msg);
    return 1;
}

int cmd_pause(int argc, char **argv)
{
    return pause_resume(argc, argv, 1);
}
int cmd_resume(int argc, char **argv)
{
    return pause_resume(argc, argv, 0);
}

/* ------------------------------------------------------ config check */

/* Every directive some module reads (docs/config.md describes each), with
 * the form its value must take; the integer ones, with their ranges, are
 * common's hr_int_directives, the durations the worker's worker_durations. */
enum value_kind { V_ANY, V_LEVEL };
static const struct directive {
    const char *name;
    enum value_kind kind;
} known[] = {
    {"account", V_ANY},
    {"app", V_ANY},
    {"campaign", V_ANY},
    {"pool", V_ANY},
    {"redis-url", V_ANY},
    {"namespace", V_ANY},
    {"secret-file", V_ANY},
    {"credentials-dir", V_ANY},
    {"poll-schedule", V_ANY},
    {"redis-wait-replicas", V_ANY},
    {"sandbox-listen", V_ANY},
    {"sandbox-smtp-listen", V_ANY},
    {"sandbox-webhooks-url", V_ANY},
    {"webhooks-listen", V_ANY},
    {"sendgrid-webhook-key-file", V_ANY},
    {"mailgun-signing-key-file", V_ANY},
    {"postmark-webhook-auth-file", V_ANY},
    {"webhook-hmac-key-file", V_ANY},
    {"metrics-listen", V_ANY},
    {"log-level", V_LEVEL},
    {NULL, V_ANY},
};

/* Every key=value an account line may carry, the union of what platforms/
 * (per platform), the scheduler (schedule) and the worker (limits) read. */
static const char *const account_keys[] = {
    "account-id",   "api-version",
    "author",       "base-url",
    "credentials",  "domain",
    "from",         "from-name",
    "handle",       "hashtags",
    "limit",        "page-id",
    "path",         "reply-to",
    "starttls",     "stream",
    "template",     "unsubscribe-base",
    "user-id",      "utm",
    "utm-medium",   "visibility",
    "tz",           "slots",
    "spacing",      "jitter",
    "quiet",        "rate",
    "points",       "cost",
    "budget-daily", "budget-monthly",
    "circuit",      NULL,
};

/* a problem found, printed once every check has run, in line order */
typedef struct problem {
    int line, warn, seq;
    char *msg;
} problem;

typedef struct checker {
    const hr_config *c;
    const char *path;
    int problems, warnings;
    int unreachable; /* --online: Redis did not answer (exit 1) */
    json_t *list; /* --json: one object per problem */
    FILE *out;    /* where problems are printed (NULL: nowhere) */
    int errors_only; /* print no warnings (they are still counted) */
    hr_err *first;   /* gets the first error, "path:line: reason" */
    problem *found;
    int nfound;
} checker;

static void report(checker *k, int warn, int line, const char *fmt, ...) HR_PRINTF(4, 5);
static void report(checker *k, int warn, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = hr_vasprintf(fmt, ap);
    va_end(ap);
    if (warn)
        k->warnings++;
    else
        k->problems++;
    k->found = hr_realloc(k->found, sizeof *k->found * (size_t)(k->nfound + 1));
    k->found[k->nfound] = (problem){.line = line > 0 ? line : 0, .warn = warn,
                                    .seq = k->nfound, .msg = msg};
    k->nfound++;
}

static int by_line(const void *a, const void *b)
{
    const problem *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* flush prints what report() gathered in line order (problems without a
 * line first: they concern the whole file) and frees it. */
static void flush(checker *k)
{
    if (k->nfound) qsort(k->found, (size_t)k->nfound, sizeof *k->found, by_line);
    for (int i = 0; i < k->nfound; i++) {
        const problem *p = &k->found[i];
        if (!p->warn && k->first && !k->first->code) {
            if (p->line > 0) hr_err_set(k->first, "%s:%d: %s", k->path, p->line, p->msg);
            else hr_err_set(k->first, "%s: %s", k->path, p->msg);
        }
        if (k->list) {
            json_t *o = json_pack("{s:s,s:s,s:s}", "file", k->path, "level",
                                  p->warn ? "warning" : "error", "message", p->msg);
            if (p->line > 0) json_object_set_new(o, "line", json_integer(p->line));
            json_array_append_new(k->list, o);
        } else if (k->out && !(p->warn && k->errors_only)) {
            if (p->line > 0)
                fprintf(k->out, "%s:%d: %s%s\n", k->path, p->line, p->warn ? "warning: " : "",
                        p->msg);
            else
                fprintf(k->out, "%s: %s%s\n", k->path, p->warn ? "warning: " : "", p->msg);
        }
        free(p->msg);
    }
    free(k->found);
    k->found = NULL;
    k->nfound = 0;
}

/* strip_prefix drops a leading "path:line: " a module put in its message,
 * since report() adds the file and line itself. */
static const char *strip_prefix(const char *msg, const char *path, int *line)
{
    size_t n = path ? strlen(path) : 0;
    if (n && strncmp(msg, path, n) == 0 && msg[n] == ':') {
        char *end;
        long l = strtol(msg + n + 1, &end, 10);
        if (end != msg + n + 1 && *end == ':') {
            if (line && l > 0) *line = (int)l;
            msg = end + 1;
            while (*msg == ' ')
                msg++;
        }
    }
    return msg;
}

static int is_known(const char *key)
{
    for (int i = 0; known[i].name; i++)
        if (strcmp(known[i].name, key) == 0) return 1;
    for (int i = 0; hr_int_directives[i].key; i++)
        if (strcmp(hr_int_directives[i].key, key) == 0) return 1;
    for (int i = 0; worker_durations[i].key; i++)
        if (strcmp(worker_durations[i].key, key) == 0) return 1;
    return 0;
}

/* report_err reports e (a module's "path:line: reason", or a bare reason
 * at line) as an error, or as a warning when warn. */
static void report_err(checker *k, int warn, int line, const hr_err *e)
{
    if (!e->code) return;
    report(k, warn, line, "%s", strip_prefix(e->msg, k->path, &line));
}

static void check_accounts(checker *k)
{
    int pos = -1;
    const hr_conf_line *l;
    int64_t now = hr_now_ms();
    while ((l = hr_config_next(k->c, "account", &pos))) {
        hr_err e = {0};
        plat_account *a = plat_account_parse(l, k->path, &e);
        if (!a) {
            int line = l->line;
            report(k, 0, line, "%s", strip_prefix(e.msg, k->path, &line));
            continue;
        }
        sched_account sa;
        memset(&sa, 0, sizeof sa);
        if (sched_account_parse(&sa, l->argc, l->argv, now - 86400000LL, now + 2 * 366 * 86400000LL,
                                &e) < 0)
            report(k, 0, l->line, "account %s: %s", l->argv[0], e.msg);
        else
            sched_account_release(&sa);
        worker_account_conf wa;
        hr_err_clear(&e);
        if (worker_account_conf_get(k->c, l->argv[0], &wa, &e) < 0) {
            int line = l->line;
            report(k, 0, line, "%s", strip_prefix(e.msg, k->path, &line));
        }
        hr_err_clear(&e);
        if (plat_account_opt(a, "credentials", NULL)) {
            hr_err w = {0};
            if (plat_account_load_credential(a, k->c, &w, &e) < 0)
                report(k, 0, l->line, "%s", e.msg);
            else
                report_err(k, 1, l->line, &w);
        } else if (strcmp(a->platform, "webhook") != 0) {
            report(k, 1, l->line, "account %s:%s: no credentials= (fine for the sandbox only)",
                   a->platform, a->name);
        }
        /* a misspelt key is otherwise silently ignored by every module */
        for (int i = 1; i < l->argc; i++) {
            const char *eq = strchr(l->argv[i], '=');
            size_t kl = eq ? (size_t)(eq - l->argv[i]) : strlen(l->argv[i]);
            int ok = 0;
            for (int j = 0; account_keys[j] && !ok; j++)
                ok = strlen(account_keys[j]) == kl && !strncmp(account_keys[j], l->argv[i], kl);
            if (!ok)
                report(k, 1, l->line, "account %s: unknown key \"%.*s\" (ignored)", l->argv[0],
                       (int)kl, l->argv[i]);
        }
        plat_account_free(a);
    }
}

static void check_campaigns(checker *k)
{
    int pos = -1;
    const hr_conf_line *l;
    char *seen[256];
    int nseen = 0;
    while ((l = hr_config_next(k->c, "campaign", &pos))) {
        if (l->argc < 1) {
            report(k, 0, l->line, "campaign: needs a name");
            continue;
        }
        int dup = 0;
        for (int i = 0; i < nseen; i++)
            dup |= strcmp(seen[i], l->argv[0]) == 0;
        if (dup) continue;
        if (nseen < (int)HR_ARRAY_LEN(seen)) seen[nseen++] = l->argv[0];
        hr_err e = {0};
        sched_campaign *cp = sched_campaign_load(k->c, l->argv[0], &e);
        if (!cp) {
            int line = l->line;
            report(k, 0, line, "%s", strip_prefix(e.msg, k->path, &line));
            continue;
        }
        /* every lane a campaign posts to should have an account line */
        for (int i = 0; i <= cp->nlanes; i++) {
            const char *lane = i < cp->nlanes ? cp->lanes[i] : cp->email_lane;
            if (!lane) continue;
            int p2 = -1, found = 0;
            const hr_conf_line *x;
            while ((x = hr_config_next(k->c, "account", &p2)))
                if (x->argc >= 1 && strcmp(x->argv[0], lane) == 0) found = 1;
            if (!found)
                report(k, 1, l->line, "campaign %s: lane %s has no account line (defaults used)",
                       cp->name, lane);
        }
        if (cp->contacts_path) {
            FILE *f = fopen(cp->contacts_path, "r");
            if (!f)
                report(k, 0, l->line, "campaign %s: contacts file %s cannot be read", cp->name,
                       cp->contacts_path);
            else
                fclose(f);
        }
        sched_campaign_free(cp);
    }
}

static void check_pools(checker *k)
{
    int pos = -1;
    const hr_conf_line *l;
    while ((l = hr_config_next(k->c, "pool", &pos))) {
        if (l->argc < 1) {
            report(k, 0, l->line, "pool: needs a name");
            continue;
        }
        worker_pool_conf p;
        hr_err e = {0};
        if (worker_pool_conf_get(k->c, l->argv[0], &p, &e) < 0) {
            int line = l->line;
            report(k, 0, line, "%s", strip_prefix(e.msg, k->path, &line));
        }
    }
    int64_t d[16];
    hr_err e = {0};
    if (worker_poll_schedule(k->c, d, 16, &e) < 0) report(k, 0, 0, "%s", e.msg);
}

static int line_of(const hr_config *c, const char *key)
{
    int line = 0;
    for (int i = 0; i < c->nlines; i++)
        if (strcmp(c->lines[i].key, key) == 0) line = c->lines[i].line;
    return line;
}

static void check_globals(checker *k, int online)
{
    for (int i = 0; i < k->c->nlines; i++) {
        const hr_conf_line *l = &k->c->lines[i];
        if (!is_known(l->key))
            report(k, 0, l->line, "unknown directive \"%s\"", l->key);
        else if (l->argc < 1)
            report(k, 0, l->line, "%s: needs a value", l->key);
    }
    for (int i = 0; known[i].name; i++) {
        const char *name = known[i].name;
        const char *val = hr_config_get(k->c, name, NULL);
        hr_log_level lv;
        if (known[i].kind == V_LEVEL && val && hr_log_parse_level(val, &lv) < 0)
            report(k, 0, line_of(k->c, name), "%s: \"%s\" is not debug, info, warn or error",
                   name, val);
    }
    /* numbers and durations in the ranges the modules take them in */
    int bad_window = 0;
    for (int i = 0; hr_int_directives[i].key; i++) {
        const char *name = hr_int_directives[i].key;
        hr_err e = {0};
        int64_t v;
        if (hr_config_int(k->c, name, &v, &e) == 0) continue;
        report_err(k, 0, line_of(k->c, name), &e);
        bad_window |= strcmp(name, "webhooks-replay-window") == 0 ||
                      strcmp(name, "webhooks-dedupe-days") == 0;
    }
    for (int i = 0; worker_durations[i].key; i++) {
        hr_err e = {0};
        int64_t v;
        if (worker_conf_duration(k->c, worker_durations[i].key, &v, &e) != 0)
            report_err(k, 0, line_of(k->c, worker_durations[i].key), &e);
    }
    int64_t window_s, days;
    hr_err we = {0};
    if (!bad_window && hr_config_int(k->c, "webhooks-replay-window", &window_s, &we) == 0 &&
        hr_config_int(k->c, "webhooks-dedupe-days", &days, &we) == 0 &&
        hook_window_check(window_s, days, &we) != 0)
        report_err(k, 0, line_of(k->c, "webhooks-dedupe-days"), &we);
    /* Redis: the URL parses (and, with --online, answers) */
    const char *url = hr_config_get(k->c, "redis-url", NULL);
    queue_opts o = {0};
    o.url = url;
    o.ns = hr_config_get(k->c, "namespace", "herald");
    o.timeout_ms = 2000;
    if (online) {
        hr_err e = {0};
        queue *q = queue_connect(&o, &e);
        if (!q) {
            report(k, 0, line_of(k->c, "redis-url"), "%s", e.msg);
            k->unreachable = 1;
        }
        queue_free(q);
    }
    /* the install's secret (unsubscribe links, suppression list) */
    hr_err e = {0}, warn = {0};
    char *secret = hr_secret_load(k->c, &warn, &e);
    if (!secret) report(k, 0, line_of(k->c, "secret-file"), "%s", e.msg);
    else report_err(k, 1, line_of(k->c, "secret-file"), &warn);
    free(secret);
    /* webhook verification keys: the *-file directives, else the service's
     * credentials, read (and SendGrid's parsed) as `herald webhooks` does */
    static const char *creds[][2] = {{"sendgrid-webhook-key-file", "sendgrid-webhook-key"},
                                     {"mailgun-signing-key-file", "mailgun-signing-key"},
                                     {"postmark-webhook-auth-file", "postmark-webhook-auth"},
                                     {"webhook-hmac-key-file", "webhook-hmac-key"}};
    for (size_t i = 0; i < HR_ARRAY_LEN(creds); i++) {
        hr_err ce = {0}, cw = {0};
        int line = line_of(k->c, creds[i][0]);
        if (hook_credential_check(k->c, creds[i][0], creds[i][1], &cw, &ce) != 0)
            report_err(k, 0, line, &ce);
        else
            report_err(k, 1, line, &cw);
    }
}

/* check_all runs every offline check, then --online's */
static void check_all(checker *k, int online)
{
    check_globals(k, online);
    check_accounts(k);
    check_campaigns(k);
    check_pools(k);
    flush(k);
}

int cli_config_errors(const hr_config *c, FILE *out, hr_err *err)
{
    hr_err first = {0};
    checker k = {.c = c, .out = out, .errors_only = 1, .first = &first};
    k.path = c->path ? c->path : "(no config file)";
    check_all(&k, 0);
    if (k.problems > 1)
        hr_err_set(err, "%.200s (and %d more: herald config check)", first.msg, k.problems - 1);
    else if (k.problems == 1)
        hr_err_set(err, "%s", first.msg);
    return k.problems;
}

static int config_check(int argc, char **argv)
{
    int json = cli_has_flag(&argc, argv, "json");
    int online = cli_has_flag(&argc, argv, "online");
    int bad = cli_args_left(argc, argv, 1, 2);
    if (bad) return bad;
    if (argc == 3) cli_set_config_path(argv[2]);
    /* cli_config exits 2 with "path:line: reason" on a syntax error */
    checker k = {0};
    cli_config_checking();
    k.c = cli_config();
    k.path = k.c->path ? k.c->path : "(no config file)";
    k.out = stdout;
    if (json) k.list = json_array();
    check_all(&k, online);
    if (json) {
        json_t *o = json_pack("{s:s,s:b,s:i,s:i,s:o}", "file", k.path, "ok", k.problems == 0,
                              "errors", k.problems, "warnings", k.warnings, "problems", k.list);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else if (k.problems == 0) {
        printf("%s: ok (%d warning%s)\n", k.path, k.warnings, k.warnings == 1 ? "" : "s");
    } else {
        printf("%s: %d error%s, %d warning%s\n", k.path, k.problems, k.problems == 1 ? "" : "s",
               k.warnings, k.warnings == 1 ? "" : "s");
    }
    /* an unreachable Redis is the environment failing, not the file */
    if (k.unreachable && k.problems == 1) return 1;
    return k.problems ? 2 : 0;
}

int cmd_config(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0) return config_check(argc, argv);
    return cli_usage();
}
