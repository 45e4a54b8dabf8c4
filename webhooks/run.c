/* run.c: the graceful-stop main loop the webhooks server and the sandbox
 * share: run until SIGTERM or SIGINT, stop accepting, finish what is in
 * flight, return. It does not free anything. */
#include <ev.h>
#include <signal.h>

#include "webhooks.h"

typedef struct run_ctx {
    hook_stop_fn *stop;
    void *obj;
    ev_signal term, intr;
} run_ctx;

static void stopped(void *priv)
{
    ev_break((struct ev_loop *)priv, EVBREAK_ALL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    run_ctx *x = w->data;
    hr_log(HR_LOG_INFO, "stopping: finishing requests in flight", NULL);
    ev_signal_stop(loop, &x->term);
    ev_signal_stop(loop, &x->intr);
    x->stop(x->obj, stopped, loop);
}

void hook_run(struct ev_loop *loop, hook_stop_fn *stop, void *obj)
{
    run_ctx x = {0};
    x.stop = stop;
    x.obj = obj;
    ev_signal_init(&x.term, on_signal, SIGTERM);
    ev_signal_init(&x.intr, on_signal, SIGINT);
    x.term.data = x.intr.data = &x;
    ev_signal_start(loop, &x.term);
    ev_signal_start(loop, &x.intr);
    ev_run(loop, 0);
    ev_signal_stop(loop, &x.term);
    ev_signal_stop(loop, &x.intr);
}
