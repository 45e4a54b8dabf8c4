/* main.c: the `herald` command: global options, then one subcommand from the
 * table below. Subcommands parse their own arguments. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "commands.h"
#include "queue.h"

/* Keep sorted by name; `herald help` prints it in this order. */
static const cli_command commands[] = {

    {"config", cmd_config, "check the config and credential files (config check)"},
    {"dead", cmd_dead, "dead jobs: list, show, retry, purge"},
    {"enqueue", cmd_enqueue, "add jobs given as JSON lines in FILE or on stdin (all or nothing)"},
    {"forget", cmd_forget, "remove what is stored about a contact; keep the suppression"},
    {"format", cmd_format, "show what a platform would be sent for a post (--json)"},
    {"help", cmd_help, "list the subcommands"},
    {"import", cmd_import, "import a CMS export (WXR, Ghost, CSV, NDJSON) as scheduled jobs"},
    {"jobs", cmd_jobs, "jobs by state, platform, campaign: list, show, cancel"},
    {"pause", cmd_pause, "stop sending on a platform or lane (jobs wait)"},
    {"preview", cmd_preview, "show what every job of an import would send (format --json each)"},
    {"queue", cmd_queue, "queue operations: counts, promote, reap, lanes, get, cancel, pause"},
    {"resume", cmd_resume, "resume sending on a paused platform or lane"},
    {"run", cmd_run, "run the whole pipeline on a private Redis and the sandbox"},
    {"sandbox", cmd_sandbox, "serve look-alike platform APIs on loopback"},
    {"scheduler", cmd_scheduler, "promote due jobs on time and re-queue dead workers' jobs"},
    {"stats", cmd_stats, "queue depth, latency, outcomes, circuits, budgets (--json, --watch)"},
    {"unknown", cmd_unknown, "list or settle jobs whose send may have happened"},
    {"webhooks", cmd_webhooks, "receive engagement webhooks and one-click unsubscribes"},
    {"worker", cmd_worker, "run a pool of worker processes that send"},

};

static const char *config_path;
static hr_config *config;
static int config_checking; /* config check reports a bad value itself */
static queue *cli_q;

void cli_set_config_path(const char *path) { config_path = path; }

void cli_config_checking(void) { config_checking = 1; }

const hr_config *cli_config(void)
{
    if (config) return config;
    hr_err err = {0};
    const char *path = config_path ? config_path : getenv("HERALD_CONFIG");
    config = hr_config_load(path, &err);
    if (!config) {
        fprintf(stderr, "herald: config: %s\n", err.msg);
        exit(2);
    }
    /* log-level (or HERALD_LOG_LEVEL) applies from here on */
    const char *lv = hr_config_get(config, "log-level", NULL);
    hr_log_level min;
    if (lv && hr_log_parse_level(lv, &min) == 0) {
        hr_log_set_level(min);
    } else if (lv && !config_checking) {
        fprintf(stderr, "herald: config: log-level: \"%s\" is not debug, info, warn or error\n", lv);
        exit(2);
    }
    return config;
}

queue *cli_queue(void)
{
    if (cli_q) return cli_q;
    const hr_config *c = cli_config();
    queue_opts o = {0};
    o.url = hr_config_get(c, "redis-url", NULL);
    o.ns = hr_config_get(c, "namespace", "herald");
    hr_err err = {0};
    cli_q = queue_connect(&o, &err);
    if (!cli_q) {
        fprintf(stderr, "herald: redis: %s\n", err.msg);
        exit(1);
    }
    return cli_q;
}

static void remove_args(int *argc, char **argv, int at, int n)
{
    for (int i = at; i + n <= *argc; i++) argv[i] = argv[i + n];
    *argc -= n;
}

int cli_has_flag(int *argc, char **argv, const char *name)
{
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, name) == 0) {
            remove_args(argc, argv, i, 1);
            return 1;
        }
    }
    return 0;
}

const char *cli_take_opt(int *argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i] + 2, name, n) != 0) continue;
        const char *rest = argv[i] + 2 + n;
        if (*rest == '=') {
            remove_args(argc, argv, i, 1);
            return rest + 1;
        }
        if (*rest == '\0' && i + 1 < *argc) {
            const char *v = argv[i + 1];
            remove_args(argc, argv, i, 2);
            return v;
        }
    }
    return NULL;
}

int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("usage: herald [--config FILE] <command> [options]\n\n"
           "herald imports CMS exports, schedules posts and emails into Redis, and\n"
           "sends them from worker pools. Commands:\n\n");
    for (size_t i = 0; i < HR_ARRAY_LEN(commands); i++)
        printf("  %-12s %s\n", commands[i].name, commands[i].summary);
    printf("\nEnvironment: HERALD_CONFIG (config file), HERALD_REDIS_URL,\n"
           "HERALD_NAMESPACE, and HERALD_<KEY> for any config key.\n");
    return 0;
}

static void cleanup(void)
{
    queue_free(cli_q);
    hr_config_free(config);
}

int main(int argc, char **argv)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            cli_set_config_path(argv[i + 1]);
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            cli_set_config_path(argv[i] + 9);
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return cmd_help(0, NULL);
        } else {
            fprintf(stderr, "herald: unknown option %s (see herald help)\n", argv[i]);
            return 2;
        }
    }
    if (i >= argc) return cmd_help(0, NULL), 2;
    /* a peer that closed (Redis restarted or killed our connection, a
     * webhook client gone) must be an error the command handles (an import
     * rolls back), not a silent death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    for (size_t k = 0; k < HR_ARRAY_LEN(commands); k++)
        if (strcmp(commands[k].name, argv[i]) == 0) {
            hr_log_set_name(argv[i]);
            return commands[k].run(argc - i, argv + i);
        }
    fprintf(stderr, "herald: unknown command '%s' (see herald help)\n", argv[i]);
    return 2;
}

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    hr_notify("WATCHDOG=1");
}

void cli_daemon_ready(struct ev_loop *loop, ev_timer *wd)
{
    int64_t ms = hr_notify_watchdog_ms();
    ev_timer_init(wd, on_watchdog, ms / 2000.0, ms / 2000.0);
    if (ms > 0) {
        ev_timer_start(loop, wd);
        ev_unref(loop);
    }
    hr_notify("READY=1");
}

void cli_daemon_done(struct ev_loop *loop, ev_timer *wd)
{
    if (ev_is_active(wd)) {
        ev_ref(loop);
        ev_timer_stop(loop, wd);
    }
}
