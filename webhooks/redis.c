/* redis.c: the webhooks processes' Redis commands on the queue's async
 * connection (queue_async: hiredis on libev, reconnects with backoff):
 * commands built once in the Redis protocol, scripts loaded on each
 * connection and again on NOSCRIPT. Every callback runs exactly once, within
 * the command timeout: a Redis that stalls without closing the connection
 * (SIGSTOP, a partition) has it reset. It does not queue commands while
 * disconnected: the caller answers 503 and the provider retries. */
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "queue.h"

typedef struct pending pending;

struct hook_redis {
    struct ev_loop *loop;
    queue_async *qa;        /* the connection, its reconnects and backoff */
    const char *scripts[4]; /* loaded on every (re)connection */
    int nscripts;
    /* Commands in flight, oldest first: Redis answers in order, so the
     * oldest is the one late. One timer for them all, armed for the
     * oldest's deadline and moved only when it fires (not per command). */
    pending *head, *tail;
    ev_timer deadline;
    double timeout_s;
    int timed_out; /* while a reset fails the commands in flight */
    char timeout_msg[64];
};

struct pending {
    hook_redis *r;
    hook_redis_cb *cb;
    void *priv;
    const char *src; /* the script, reloaded when Redis answers NOSCRIPT */
    ev_tstamp sent;
    pending *prev, *next;
};

void hook_script_sha(const char *src, char out[41])
{
    unsigned char d[20];
    SHA1((const unsigned char *)src, strlen(src), d);
    hr_hex(d, 20, out);
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv) {}

/* on_state loads the scripts first thing on each connection: commands sent
 * later on it are ordered after the load, so EVALSHA finds them. */
static void on_state(queue_async *qa, int connected, void *priv)
{
    hook_redis *r = priv;
    redisAsyncContext *ac = queue_async_redis(qa);
    for (int i = 0; connected && ac && i < r->nscripts; i++)
        redisAsyncCommand(ac, ignore_reply, NULL, "SCRIPT LOAD %s", r->scripts[i]);
}

/* on_deadline: the oldest command in flight has had no reply in time:
 * Redis is stalled. Reset the connection, which fails every command in
 * flight (their requests answer 503; a script Redis runs later anyway is
 * absorbed by the de-duplication when the provider retries). Otherwise
 * wait for the oldest's deadline. */
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    hook_redis *r = w->data;
    if (!r->head) return; /* all answered: the next command starts it */
    double left = r->head->sent + r->timeout_s - ev_now(loop);
    if (left > 0) {
        ev_timer_set(w, left, 0.);
        ev_timer_start(loop, w);
        return;
    }
    hr_log(HR_LOG_WARN, "redis: no reply in time, resetting the connection", "error",
           r->timeout_msg, NULL);
    r->timed_out = 1;
    queue_async_reset(r->qa);
    r->timed_out = 0;
    if (r->head) { /* not reset (cannot be, from here): try again later */
        ev_timer_set(w, r->timeout_s, 0.);
        ev_timer_start(loop, w);
    }
}

hook_redis *hook_redis_new(struct ev_loop *loop, const char *url, const char *ns,
                           int timeout_ms, hr_err *err)
{
    queue_opts o = {0};
    o.url = url;
    o.ns = ns;
    queue_async *qa = queue_async_new(loop, &o, err);
    if (!qa) return NULL;
    hook_redis *r = hr_calloc(1, sizeof *r);
    r->loop = loop;
    r->qa = qa;
    r->timeout_s = (timeout_ms > 0 ? timeout_ms : 2000) / 1000.0;
    snprintf(r->timeout_msg, sizeof r->timeout_msg, "redis: no reply within %d ms",
             timeout_ms > 0 ? timeout_ms : 2000);
    ev_timer_init(&r->deadline, on_deadline, 0., 0.);
    r->deadline.data = r;
    queue_async_on_state(qa, on_state, r);
    return r;
}

void hook_redis_free(hook_redis *r)
{
    if (!r) return;
    ev_timer_stop(r->loop, &r->deadline);
    /* pending commands get NULL replies: each request answers (503) */
    queue_async_free(r->qa);
    free(r);
}

int hook_redis_up(const hook_redis *r)
{
    return queue_async_connected(r->qa);
}

void hook_redis_flush(hook_redis *r)
{
    redisAsyncContext *ac = queue_async_redis(r->qa);
    /* the libev adapter started the write watcher; a complete write stops it
     * in the same iteration, so libev never tells the kernel */
    if (ac && sdslen(ac->c.obuf) > 0) redisAsyncHandleWrite(ac);
}

void hook_redis_add_script(hook_redis *r, const char *src)
{
    if (r->nscripts < (int)HR_ARRAY_LEN(r->scripts)) r->scripts[r->nscripts++] = src;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    pending *p = priv;
    hook_redis *r = p->r;
    redisReply *rep = reply;
    if (p->prev) p->prev->next = p->next;
    else r->head = p->next;
    if (p->next) p->next->prev = p->prev;
    else r->tail = p->prev;
    if (rep && rep->type == REDIS_REPLY_ERROR && p->src && strncmp(rep->str, "NOSCRIPT", 8) == 0)
        /* flushed behind our back: reload for the next call; this one fails
         * (503) and its provider retries */
        redisAsyncCommand(ac, ignore_reply, NULL, "SCRIPT LOAD %s", p->src);
    const char *msg = NULL;
    if (!rep)
        msg = r->timed_out           ? r->timeout_msg
              : ac && ac->errstr[0] ? ac->errstr
                                    : "redis: connection lost";
    else if (rep->type == REDIS_REPLY_ERROR)
        msg = rep->str;
    p->cb(msg ? NULL : rep, msg, p->priv);
    free(p);
}

void hook_resp_arg(hr_buf *b, const char *v, size_t len)
{
    /* written in place after one reserve: a batch has 8 of these per event */
    hr_buf_reserve(b, len + 32);
    char *p = b->data + b->len;
    *p++ = '$';
    p += hook_fmt_i64(p, (int64_t)len);
    *p++ = '\r';
    *p++ = '\n';
    memcpy(p, v, len);
    p += len;
    *p++ = '\r';
    *p++ = '\n';
    *p = '\0';
    b->len = (size_t)(p - b->data);
}

void hook_redis_formatted(hook_redis *r, const char *src, const char *cmd, size_t len,
                          hook_redis_cb *cb, void *priv)
{
    redisAsyncContext *ac = queue_async_redis(r->qa);
    if (!ac) {
        cb(NULL, "redis: not connected", priv);
        return;
    }
    pending *p = hr_calloc(1, sizeof *p);
    p->r = r;
    p->cb = cb;
    p->priv = priv;
    p->src = src;
    /* hiredis copies the command now: cmd need not outlive this call */
    if (redisAsyncFormattedCommand(ac, on_reply, p, cmd, len) != REDIS_OK) {
        free(p);
        cb(NULL, "redis: cannot send command", priv);
        return;
    }
    p->sent = ev_now(r->loop);
    p->prev = r->tail;
    if (r->tail) r->tail->next = p;
    else r->head = p;
    r->tail = p;
    if (!ev_is_active(&r->deadline)) {
        ev_timer_set(&r->deadline, r->timeout_s, 0.);
        ev_timer_start(r->loop, &r->deadline);
    }
}
