/* daemon.c: `herald scheduler`'s loop glue. One ev_timer is armed for the
 * next due time that queue_promote reports (capped, as a safety net), a
 * subscription to {NS}:wake re-arms it when an enqueue moves the earliest due
 * time earlier, and a second timer reaps dead workers. Promotion itself is an
 * atomic script, so any number of daemons may run against one Redis. The
 * sync calls block the loop for one round trip each; nothing else runs here. */
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct sched_daemon {
    struct ev_loop *loop;
    queue *q;
    queue_async *sub;
    ev_timer promote_w, reap_w;
    int batch, max_sleep_ms, reap_every_ms;
    int fail_streak;
    long promoted;
    char ns[64];
};

static void arm(sched_daemon *d, double after_s)
{
    ev_timer_stop(d->loop, &d->promote_w);
    ev_now_update(d->loop); /* the loop's cached time may be a whole callback old */
    ev_timer_set(&d->promote_w, after_s < 0 ? 0 : after_s, 0);
    ev_timer_start(d->loop, &d->promote_w);
}

/* promote_now moves everything due and arms the timer for what comes next.
 * A lane with more than a batch due is served again at once, after other
 * watchers had a turn. */
static void promote_now(sched_daemon *d)
{
    for (int round = 0; round < 16; round++) {
        long n = 0;
        int64_t next = 0, now = 0;
        hr_err e = {0};
        if (queue_promote(d->q, d->batch, &n, &next, &now, &e) < 0) {
            /* Redis away: back off 10 ms .. 1 s, the sync handle reconnects */
            int ms = 10 << (d->fail_streak < 7 ? d->fail_streak : 7);
            if (ms > 1000) ms = 1000;
            if (d->fail_streak++ == 0) hr_log(HR_LOG_WARN, "promote failed", "error", e.msg, NULL);
            arm(d, ms / 1000.0);
            return;
        }
        if (d->fail_streak) hr_log(HR_LOG_INFO, "promote recovered", NULL);
        d->fail_streak = 0;
        d->promoted += n;
        if (n > 0 && next && next <= now) continue;
        int64_t wait = next ? next - now : d->max_sleep_ms;
        if (wait > d->max_sleep_ms) wait = d->max_sleep_ms;
        arm(d, wait / 1000.0);
        return;
    }
    arm(d, 0);
}

static void on_promote_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    promote_now(w->data);
}

static void on_reap_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    sched_daemon *d = w->data;
    long requeued = 0, unknown = 0;
    hr_err e = {0};
    if (queue_reap(d->q, &requeued, &unknown, &e) < 0) return; /* promote logs Redis loss */
    if (requeued || unknown) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%ld", requeued);
        snprintf(b, sizeof b, "%ld", unknown);
        hr_log(HR_LOG_WARN, "reaped dead workers' jobs", "requeued", a, "unknown", b, NULL);
        promote_now(d); /* requeued jobs may be due */
    }
}

static void on_wake(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    sched_daemon *d = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    if (r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "message"))
        promote_now(d);
}

static void on_sub_state(queue_async *qa, int connected, void *priv)
{
    sched_daemon *d = priv;
    if (!connected) return;
    redisAsyncContext *ac = queue_async_redis(qa);
    if (ac) redisAsyncCommand(ac, on_wake, d, "SUBSCRIBE {%s}:wake", d->ns);
    promote_now(d); /* a wake may have been missed while away */
}

sched_daemon *sched_daemon_new(struct ev_loop *loop, const sched_daemon_opts *o, hr_err *err)
{
    sched_daemon *d = hr_calloc(1, sizeof *d);
    d->loop = loop;
    d->batch = o->batch > 0 ? o->batch : 1000;
    d->max_sleep_ms = o->max_sleep_ms > 0 ? o->max_sleep_ms : 1000;
    d->reap_every_ms = o->reap_every_ms > 0 ? o->reap_every_ms : 1000;
    /* Redis may come up after us (boot, an outage): promote_now and the
     * async handle retry with backoff, logging "redis unreachable;
     * retrying", rather than exiting into systemd's start limit */
    queue_opts qo = o->q;
    qo.lazy = 1;
    d->q = queue_connect(&qo, err);
    if (!d->q) {
        free(d);
        return NULL;
    }
    snprintf(d->ns, sizeof d->ns, "%s", queue_ns(d->q));
    d->sub = queue_async_new(loop, &o->q, err);
    if (!d->sub) {
        queue_free(d->q);
        free(d);
        return NULL;
    }
    ev_timer_init(&d->promote_w, on_promote_timer, 0, 0);
    d->promote_w.data = d;
    double every = d->reap_every_ms / 1000.0;
    ev_timer_init(&d->reap_w, on_reap_timer, every, every);
    d->reap_w.data = d;
    ev_timer_start(loop, &d->reap_w);
    queue_async_on_state(d->sub, on_sub_state, d);
    promote_now(d);
    return d;
}

void sched_daemon_stop(sched_daemon *d)
{
    ev_timer_stop(d->loop, &d->promote_w);
    ev_timer_stop(d->loop, &d->reap_w);
    queue_async_on_state(d->sub, NULL, NULL);
    queue_async_free(d->sub);
    d->sub = NULL;
}

void sched_daemon_free(sched_daemon *d)
{
    if (!d) return;
    ev_timer_stop(d->loop, &d->promote_w);
    ev_timer_stop(d->loop, &d->reap_w);
    if (d->sub) {
        queue_async_on_state(d->sub, NULL, NULL);
        queue_async_free(d->sub);
    }
    queue_free(d->q);
    free(d);
}

long sched_daemon_promoted(const sched_daemon *d)
{
    return d->promoted;
}
