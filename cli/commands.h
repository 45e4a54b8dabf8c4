/* commands.h: the subcommands of the one `herald` binary. Each lives in
 * cli/cmd_<name>.c and returns the process exit status:
 * 0 ok, 1 failure (environment: Redis down, platform error),
 * 2 bad usage or bad input (a message names the file, line and reason),
 * 3 not found (no such job or account), 4 refused by a job's state
 * (docs/operations.md). */
#ifndef HERALD_COMMANDS_H
#define HERALD_COMMANDS_H

#include <stdio.h>

#include "common.h"

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
    const char *usage; /* `herald NAME --help` */
} cli_command;

struct ev_loop;
struct ev_timer;
/* cli_daemon_ready tells systemd a daemon is ready and, when systemd asks
 * for a watchdog, pings it from the daemon's own loop (so a wedged loop is
 * restarted) with wd, which does not keep the loop running by itself;
 * cli_daemon_done stops it. */
void cli_daemon_ready(struct ev_loop *loop, struct ev_timer *wd);
void cli_daemon_done(struct ev_loop *loop, struct ev_timer *wd);

/* cli_config loads the config named by --config/-c or $HERALD_CONFIG (or
 * none) once per process; returns it (borrowed), or exits 2 with a message. */
const hr_config *cli_config(void);
/* cli_config_checking makes cli_config leave a bad log-level to the caller
 * (config check reports it with the other problems) instead of exiting. */
void cli_config_checking(void);
void cli_set_config_path(const char *path);
/* cli_config_errors runs `herald config check`'s offline checks on c (each
 * module parses what it owns), prints each error as config check does to
 * out (NULL: nowhere), and returns how many, with the first (and their
 * count) in err: what `herald worker` refuses to start or reload with. */
int cli_config_errors(const hr_config *c, FILE *out, hr_err *err);
/* cli_queue connects with the config's redis-url and namespace; exits 1 with
 * a message when Redis cannot be reached. The handle lives until exit. */
struct queue *cli_queue(void);
/* cli_has_flag removes "--name" from argv if present and returns 1. */
int cli_has_flag(int *argc, char **argv, const char *name);
/* cli_take_opt removes "--name VALUE" or "--name=VALUE" and returns VALUE
 * (borrowed from argv), or NULL; "--name" without a value (last, or before
 * another --option) exits 2 saying so. */
const char *cli_take_opt(int *argc, char **argv, const char *name);
/* cli_opt_i64 parses the value v of --name into *out when it is an integer
 * in lo..hi; else prints `herald CMD: --name: expected lo..hi, got "v"` and
 * returns -1 (the caller exits 2). */
int cli_opt_i64(const char *name, const char *v, int64_t lo, int64_t hi, int64_t *out);
/* cli_args_left checks what is left in argv once the options are taken:
 * an option still there is unknown and named; then min..max arguments
 * (argv[1] on; a subcommand counts). Returns 0, or 2 after saying why. */
int cli_args_left(int argc, char **argv, int min, int max);
/* cli_usage prints the running command's usage (the table in main.c) on
 * stderr and returns 2. */
int cli_usage(void);

/* cli_stats_report prints the stats table and the engagement recorded
 * (cmd_stats.c); cli_metrics_render appends the queue's Prometheus text to b
 * (sync Redis reads: a few ms). Both return 0 or -1 with err. */
struct queue;
struct queue_job;
int cli_stats_report(struct queue *q, const hr_config *cfg, FILE *f, hr_err *err);
int cli_metrics_render(struct queue *q, const hr_config *cfg, hr_buf *b, hr_err *err);
/* cli_metrics_hook is a hook_metrics_fn (webhooks.h) for any server's
 * /metrics: priv is the config. Daemons: hook_server_set_metrics(s,
 * cli_metrics_hook, (void *)cli_config()). */
void cli_metrics_hook(hr_buf *out, void *priv);
/* cli_metrics_request answers /metrics, /healthz and /readyz (404 else) for
 * a metrics-only server (hook_httpd handler; priv is the config). */
struct hook_req;
void cli_metrics_request(struct hook_req *r, void *priv);

/* Shared by `jobs` and `dead` (cmd_jobs.c): cli_job_state writes the state
 * of a stored job ("scheduled", "ready", "inflight", "retrying", "dead",
 * "unknown", "sent"); cli_list_jobs and cli_show_job run the list and show
 * subcommands and return the exit status (3: no such job). */
int cli_job_state(struct queue *q, const struct queue_job *j, char *out, size_t outlen,
                  hr_err *err);
int cli_list_jobs(int argc, char **argv, const char *fixed_state, const char *who);
int cli_show_job(const char *id, int json, const char *who);
/* cli_job_refused says why an operation that did nothing (what: "not
 * cancellable", "not dead") left id alone, prefixed by who, and returns the
 * exit status docs/operations.md gives: 2 not a job id, 3 no such job, 4 the
 * job is in another state (or already sent), 1 Redis failed. */
int cli_job_refused(struct queue *q, const char *id, const char *who, const char *what);
/* cli_worse_exit folds the status of one more id into a command's: 1 over
 * 2 over 4 over 3 over 0. */
int cli_worse_exit(int a, int b);

#define CLI_CMD(n) int cmd_##n(int argc, char **argv)
CLI_CMD(config);
CLI_CMD(dead);
CLI_CMD(enqueue);
CLI_CMD(forget);
CLI_CMD(format);
CLI_CMD(help);
CLI_CMD(import);
CLI_CMD(jobs);
CLI_CMD(pause);
CLI_CMD(preview);
CLI_CMD(queue);
CLI_CMD(resume);
CLI_CMD(run);
CLI_CMD(sandbox);
CLI_CMD(stats);
CLI_CMD(scheduler);
CLI_CMD(unknown);
CLI_CMD(webhooks);
CLI_CMD(worker);



#endif
