/* cmd_webhooks.c: `herald webhooks`: serves engagement webhooks, one-click
 * unsubscribe, /healthz, /readyz and /metrics until SIGTERM or SIGINT, then
 * finishes the requests in flight and exits. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include "queue.h" /* before commands.h, which names struct queue_job */
#include "commands.h"
#include "webhooks.h"

static void stopped(void *priv) { ev_break((struct ev_loop *)priv, EVBREAK_ALL); }

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    hr_log(HR_LOG_INFO, "stopping: finishing requests in flight", NULL);
    ev_signal_stop(loop, w);
    hook_server_stop(w->data, stopped, loop);
}

int cmd_webhooks(int argc, char **argv)
{
    const char *listen = cli_take_opt(&argc, argv, "listen");
    if (argc > 1) {
        fprintf(stderr, "usage: herald webhooks [--listen HOST:PORT]\n");
        return 2;
    }
    struct ev_loop *loop = ev_default_loop(0);
    hr_err err = {0};
    hook_server *s = hook_server_new(loop, cli_config(), listen, &err);
    if (!s) {
        fprintf(stderr, "herald webhooks: %s\n", err.msg);
        return 1;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", hook_server_port(s));
    hr_log(HR_LOG_INFO, "webhooks listening", "port", port, NULL);
    ev_signal term, intr;
    ev_signal_init(&term, on_signal, SIGTERM);
    ev_signal_init(&intr, on_signal, SIGINT);
    term.data = intr.data = s;
    ev_signal_start(loop, &term);
    ev_signal_start(loop, &intr);
    ev_run(loop, 0);
    ev_signal_stop(loop, &term);
    ev_signal_stop(loop, &intr);
    hook_server_free(s);
    ev_loop_destroy(loop);
    return 0;
}
