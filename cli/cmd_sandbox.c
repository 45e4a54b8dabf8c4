/* cmd_sandbox.c: `herald sandbox`: serves look-alike platform APIs on
 * loopback (see docs/sandbox.md) until SIGTERM or SIGINT. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "webhooks.h"

static void stop(void *obj, void (*done)(void *priv), void *priv)
{
    hook_sandbox_stop(obj, done, priv);
}

int cmd_sandbox(int argc, char **argv)
{
    const hr_config *c = cli_config();
    hook_sandbox_opts o = {0};
    o.config = c;
    o.listen = cli_take_opt(&argc, argv, "listen");
    o.webhooks_url = cli_take_opt(&argc, argv, "webhooks");
    o.faults = cli_take_opt(&argc, argv, "faults");
    const char *seed = cli_take_opt(&argc, argv, "seed");
    o.sendgrid_pubkey_out = cli_take_opt(&argc, argv, "sendgrid-pubkey-out");
    o.smtp_listen = cli_take_opt(&argc, argv, "smtp-listen");
    o.auto_events = cli_has_flag(&argc, argv, "auto-events");
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    if (!o.listen) o.listen = hr_config_get(c, "sandbox-listen", "127.0.0.1:8700");
    if (!o.webhooks_url) o.webhooks_url = hr_config_get(c, "sandbox-webhooks-url", NULL);
    if (!o.smtp_listen) o.smtp_listen = hr_config_get(c, "sandbox-smtp-listen", NULL);
    int64_t sv;
    if (seed && cli_opt_i64("seed", seed, 0, INT64_MAX, &sv) < 0) return 2;
    if (seed) o.seed = (uint64_t)sv;
    struct ev_loop *loop = ev_default_loop(0);
    hr_err err = {0};
    hook_sandbox *s = hook_sandbox_new(loop, &o, &err);
    if (!s) {
        fprintf(stderr, "herald sandbox: %s\n", err.msg);
        return 1;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", hook_sandbox_port(s));
    char smtp[16] = "";
    if (hook_sandbox_smtp_port(s)) snprintf(smtp, sizeof smtp, "%d", hook_sandbox_smtp_port(s));
    hr_log(HR_LOG_INFO, "sandbox listening", "port", port, smtp[0] ? "smtp_port" : NULL, smtp,
           NULL);
    hook_run(loop, stop, s);
    hook_sandbox_free(s);
    ev_loop_destroy(loop);
    return 0;
}
