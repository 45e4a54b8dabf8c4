/* cmd_scheduler.c: `herald scheduler`: runs the promotion daemon on the
 * default loop until SIGTERM or SIGINT. */
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "queue.h"
#include "scheduler.h"

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    hr_notify("STOPPING=1");
    sched_daemon_stop(w->data);
    ev_break(loop, EVBREAK_ALL);
}

int cmd_scheduler(int argc, char **argv)
{
    const char *batch = cli_take_opt(&argc, argv, "batch");
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    const hr_config *cfg = cli_config();
    sched_daemon_opts o = {0};
    o.q.url = hr_config_get(cfg, "redis-url", NULL);
    o.q.ns = hr_config_get(cfg, "namespace", "herald");
    int64_t v;
    if (batch && cli_opt_i64("batch", batch, 1, 1000000, &v) < 0) return 2;
    o.batch = batch ? (int)v : 0;
    hr_err e = {0};
    struct ev_loop *loop = EV_DEFAULT;
    sched_daemon *d = sched_daemon_new(loop, &o, &e);
    if (!d) {
        fprintf(stderr, "herald scheduler: %s\n", e.msg);
        return 1;
    }
    ev_signal sterm, sint;
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_init(&sint, on_signal, SIGINT);
    sterm.data = sint.data = d;
    ev_signal_start(loop, &sterm);
    ev_signal_start(loop, &sint);
    hr_log(HR_LOG_INFO, "scheduler started", "namespace", o.q.ns, NULL);
    /* systemd: the watchdog is pinged by this loop, so a wedged loop is
     * restarted */
    ev_timer wd;
    cli_daemon_ready(loop, &wd);
    ev_run(loop, 0);
    cli_daemon_done(loop, &wd);
    char n[32];
    snprintf(n, sizeof n, "%ld", sched_daemon_promoted(d));
    hr_log(HR_LOG_INFO, "scheduler stopped", "promoted", n, NULL);
    sched_daemon_free(d);
    return 0;
}
