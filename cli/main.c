/* main.c: the `herald` command: global options, then one subcommand from the
 * table below. Subcommands parse their own arguments. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "commands.h"
#include "queue.h"

/* Keep sorted by name; `herald help` prints it in this order. Each usage
 * is what `herald CMD --help` prints on stdout and a usage error on stderr. */
static const cli_command commands[] = {

    {"config", cmd_config, "check the config and credential files (config check)",
     "usage: herald config check [--online] [--json] [FILE]\n"
     "exit: 0 valid, 2 problems found (each printed as FILE:LINE: reason),\n"
     "      1 Redis unreachable with --online (and nothing else wrong)\n"},
    {"dead", cmd_dead, "dead jobs: list, show, retry, purge",
     "usage: herald dead list [--platform P] [--lane L] [--campaign C] [--limit N] [--json]\n"
     "       herald dead show ID [--json]\n"
     "       herald dead retry ID...|--all [--platform P] [--lane L]\n"
     "       herald dead purge ID...|--all [--platform P] [--lane L] [--older-than 7d]\n"
     "exit: 0 ok, 1 Redis failed, 2 usage or malformed id, 3 no such job,\n"
     "      4 a named job is not dead\n"},
    {"enqueue", cmd_enqueue, "add jobs given as JSON lines in FILE or on stdin (all or nothing)",
     "usage: herald enqueue [FILE]   (JSON lines; stdin without FILE or with -)\n"},
    {"forget", cmd_forget, "remove what is stored about a contact; keep the suppression",
     "usage: herald forget EMAIL\n"
     "exit: 0 forgotten, 4 a job in flight or unknown was scrubbed, not removed\n"},
    {"format", cmd_format, "show what a platform would be sent for a post (--json)",
     "usage: herald format --platform P [--account NAME] [--job] [--fit] [--thread] [--json]"
     " < post\n"
     "  stdin is raw text (counted as given), or with --job a job as JSON.\n"},
    {"help", cmd_help, "list the subcommands", "usage: herald help\n"},
    {"import", cmd_import, "import a CMS export (WXR, Ghost, CSV, NDJSON) as scheduled jobs",
     "usage: herald import [--format wxr|ghost|csv|ndjson] [--campaign NAME]\n"
     "                     [--dry-run [--json]] [--sync] [--skip-invalid] [--drafts]\n"
     "                     [--seed N] [--now RFC3339] [--batch N] [--lock-wait SECONDS]\n"
     "                     [--no-progress] [--json] FILE\n"},
    {"jobs", cmd_jobs, "jobs by state, platform, campaign: list, show, cancel",
     "usage: herald jobs list [--state S] [--platform P] [--lane L] [--campaign C]\n"
     "                        [--limit N] [--json]\n"
     "       herald jobs show ID [--json]\n"
     "       herald jobs cancel ID...\n"
     "       herald jobs cancel --campaign C|--platform P|--lane L [--state S]\n"
     "states: scheduled, ready, inflight, retrying, dead, unknown\n"
     "--json lists every match unless --limit is given; the table shows 100.\n"
     "exit: 0 ok, 1 Redis failed, 2 usage or malformed id, 3 no such job,\n"
     "      4 not cancellable (in flight, unknown or already sent)\n"},
    {"pause", cmd_pause, "stop sending on a platform or lane (jobs wait)",
     "usage: herald pause [--force] [--json] PLATFORM|PLATFORM:ACCOUNT...\n"
     "  an account not in the config is refused (exit 3) unless --force\n"},
    {"preview", cmd_preview, "show what every job of an import would send (format --json each)",
     "usage: herald preview [--format F] [--campaign NAME] [--drafts] [--seed N]\n"
     "                      [--now RFC3339] FILE   (every job as `format --json`)\n"},
    {"queue", cmd_queue, "queue operations: counts, promote, reap, lanes, get, cancel, pause",
     "usage: herald queue counts [--json]\n"
     "       herald queue promote        move every due job to its ready lane\n"
     "       herald queue reap           re-queue the jobs of dead workers\n"
     "       herald queue prune          drop per-minute stats older than a day\n"
     "       herald queue lanes\n"
     "       herald queue get ID\n"
     "       herald queue cancel ID\n"
     "       herald queue pause|resume LANE|PLATFORM\n"},
    {"resume", cmd_resume, "resume sending on a paused platform or lane",
     "usage: herald resume [--json] PLATFORM|PLATFORM:ACCOUNT...\n"},
    {"run", cmd_run, "run the whole pipeline on a private Redis and the sandbox",
     "usage: herald run [--state-dir DIR] [--import FILE] [--span SECONDS]\n"
     "                  [--timeout SECONDS] [--processes N] [--fresh] [--quiet]\n"
     "Runs the whole pipeline on a private Redis and the sandbox platforms;\n"
     "state (Redis data, logs, generated config and secrets) goes in DIR\n"
     "(default $HERALD_STATE_DIR or ./.state). Jobs sent by an earlier run\n"
     "are not sent again; --fresh forgets them first.\n"},
    {"sandbox", cmd_sandbox, "serve look-alike platform APIs on loopback",
     "usage: herald sandbox [--listen HOST:PORT] [--webhooks URL] [--auto-events]\n"
     "                      [--faults JSON] [--seed N] [--sendgrid-pubkey-out FILE]\n"
     "                      [--smtp-listen HOST:PORT]\n"},
    {"scheduler", cmd_scheduler, "promote due jobs on time and re-queue dead workers' jobs",
     "usage: herald scheduler [--batch N]\n"},
    {"stats", cmd_stats, "queue depth, latency, outcomes, circuits, budgets (--json, --watch)",
     "usage: herald stats [--json|--prometheus] [--watch [SECONDS]] [--platform P]\n"
     "                    [--lane PLATFORM:ACCOUNT]\n"
     "       herald stats --serve HOST:PORT   (/metrics, /healthz, /readyz)\n"},
    {"unknown", cmd_unknown, "list or settle jobs whose send may have happened",
     "usage: herald unknown list [--lane LANE] [--json]\n"
     "       herald unknown resolve ID --sent [--platform-id ID]\n"
     "       herald unknown resolve ID --resend\n"
     "exit: 0 ok, 1 Redis failed, 2 usage or malformed id, 3 no such job,\n"
     "      4 not unknown (settled already) or the platform id is another job's\n"},
    {"webhooks", cmd_webhooks, "receive engagement webhooks and one-click unsubscribes",
     "usage: herald webhooks [--listen HOST:PORT]\n"},
    {"worker", cmd_worker, "run a pool of worker processes that send",
     "usage: herald worker [--platforms POOL|x,bluesky] [--processes N]\n"
     "                     [--concurrency M] [--shutdown-timeout 10s]\n"
     "                     [--lease 30s] [--once] [--foreground] [--metrics ADDR]\n"
     "Sends queued posts and emails. --foreground runs one worker process\n"
     "without a supervisor; --once exits when nothing is left to send.\n"
     "--lease defaults to the config's lease-ms (30000).\n"},

};

static const char *config_path;
static hr_config *config;
static int config_checking; /* config check reports a bad value itself */
static queue *cli_q;
static const char *cli_cmd = "herald"; /* the running command's name, for messages */

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
        if (*rest != '\0') continue;
        /* "--name" last, or followed by another option, is a missing value
         * (left in argv it would read as a stray argument) */
        if (i + 1 >= *argc || strncmp(argv[i + 1], "--", 2) == 0) {
            fprintf(stderr, "herald %s: --%s needs a value (see herald %s --help)\n", cli_cmd,
                    name, cli_cmd);
            exit(2);
        }
        const char *v = argv[i + 1];
        remove_args(argc, argv, i, 2);
        return v;
    }
    return NULL;
}

int cli_opt_i64(const char *name, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t n;
    if (hr_parse_i64(v, &n) != 0 || n < lo || n > hi) {
        if (lo == INT64_MIN && hi == INT64_MAX)
            fprintf(stderr, "herald %s: --%s: expected an integer, got \"%s\"\n", cli_cmd, name,
                    v);
        else
            fprintf(stderr, "herald %s: --%s: expected %lld..%lld, got \"%s\"\n", cli_cmd, name,
                    (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = n;
    return 0;
}

static const cli_command *find_command(const char *name)
{
    for (size_t k = 0; k < HR_ARRAY_LEN(commands); k++)
        if (strcmp(commands[k].name, name) == 0) return &commands[k];
    return NULL;
}

int cli_usage(void)
{
    const cli_command *c = find_command(cli_cmd);
    if (c) fputs(c->usage, stderr);
    return 2;
}

int cli_args_left(int argc, char **argv, int min, int max)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "herald %s: unknown option %s (see herald %s --help)\n", cli_cmd,
                    argv[i], cli_cmd);
            return 2;
        }
    }
    if (argc - 1 > max) {
        fprintf(stderr, "herald %s: unexpected argument '%s' (see herald %s --help)\n", cli_cmd,
                argv[max + 1], cli_cmd);
        return 2;
    }
    if (argc - 1 < min) return cli_usage();
    return 0;
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

/* wants_help: -h or --help anywhere among a command's arguments (before a
 * "--") asks for its usage, which no command then runs past */
static int wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "herald: %s needs a file\n", argv[i]);
                return 2;
            }
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
    const cli_command *c = find_command(argv[i]);
    if (!c) {
        fprintf(stderr, "herald: unknown command '%s' (see herald help)\n", argv[i]);
        return 2;
    }
    cli_cmd = c->name;
    if (wants_help(argc - i, argv + i)) {
        fputs(c->usage, stdout);
        return 0;
    }
    /* a peer that closed (Redis restarted or killed our connection, a
     * webhook client gone) must be an error the command handles (an import
     * rolls back), not a silent death by SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    hr_log_set_name(argv[i]);
    return c->run(argc - i, argv + i);
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
