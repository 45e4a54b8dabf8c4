/* cmd_webhooks.c: `herald webhooks`: serves engagement webhooks, one-click
 * unsubscribe, /healthz, /readyz and /metrics until SIGTERM or SIGINT, then
 * finishes the requests in flight and exits. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "webhooks.h"

static void stop(void *obj, void (*done)(void *priv), void *priv)
{
    hr_notify("STOPPING=1");
    hook_server_stop(obj, done, priv);
}

int cmd_webhooks(int argc, char **argv)
{
    const char *listen = cli_take_opt(&argc, argv, "listen");
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    struct ev_loop *loop = ev_default_loop(0);
    hr_err err = {0};
    hook_server *s = hook_server_new(loop, cli_config(), listen, &err);
    if (!s) {
        fprintf(stderr, "herald webhooks: %s\n", err.msg);
        return 1;
    }
    /* /metrics: the server's own counters, then the queue's */
    hook_server_set_metrics(s, cli_metrics_hook, (void *)cli_config());
    char port[16];
    snprintf(port, sizeof port, "%d", hook_server_port(s));
    hr_log(HR_LOG_INFO, "webhooks listening", "port", port, NULL);
    /* systemd: ready once listening; the watchdog is pinged by the loop
     * itself, so a wedged loop is restarted */
    ev_timer wd;
    cli_daemon_ready(loop, &wd);
    hook_run(loop, stop, s);
    cli_daemon_done(loop, &wd);
    hook_server_free(s);
    ev_loop_destroy(loop);
    return 0;
}
