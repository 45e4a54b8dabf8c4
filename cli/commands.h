/* commands.h: the subcommands of the one `herald` binary. Each lives in
 * cli/cmd_<name>.c and returns the process exit status:
 * 0 ok, 1 failure (environment: Redis down, platform error),
 * 2 bad usage or bad input (a message names the file, line and reason). */
#ifndef HERALD_COMMANDS_H
#define HERALD_COMMANDS_H

#include "common.h"

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
    const char *summary;
} cli_command;

/* cli_config loads the config named by --config/-c or $HERALD_CONFIG (or
 * none) once per process; returns it (borrowed), or exits 2 with a message. */
const hr_config *cli_config(void);
void cli_set_config_path(const char *path);
/* cli_queue connects with the config's redis-url and namespace; exits 1 with
 * a message when Redis cannot be reached. The handle lives until exit. */
struct queue *cli_queue(void);
/* cli_has_flag removes "--name" from argv if present and returns 1. */
int cli_has_flag(int *argc, char **argv, const char *name);
/* cli_take_opt removes "--name VALUE" or "--name=VALUE" and returns VALUE
 * (borrowed from argv), or NULL. */
const char *cli_take_opt(int *argc, char **argv, const char *name);

#define CLI_CMD(n) int cmd_##n(int argc, char **argv)
CLI_CMD(enqueue);
CLI_CMD(forget);
CLI_CMD(format);
CLI_CMD(help);
CLI_CMD(import);
CLI_CMD(queue);
CLI_CMD(sandbox);
CLI_CMD(scheduler);
CLI_CMD(unknown);
CLI_CMD(webhooks);
CLI_CMD(worker);



#endif
