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

struct hook_redis {
    struct ev_loop *loop;
    /* the connection, its reconnects and backoff, and the command timeout
     * (queue_async_set_timeout) */
    queue_async *qa;
    const char *scripts[4]; /* loaded on every (re)connection */
    int nscripts;
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
    /* a stalled Redis resets the connection, failing the commands in
     * flight: their requests answer 503, and a script Redis runs later
     * anyway is absorbed by the de-duplication when the provider retries */
    queue_async_set_timeout(qa, timeout_ms > 0 ? timeout_ms : 2000);
    queue_async_on_state(qa, on_state, r);
    return r;
}

void hook_redis_free(hook_redis *r)
{
    if (!r) return;
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
    if (!queue_async_connected(r->qa)) { /* answered now: the request gets its 503 */
        cb(NULL, "redis: not connected", priv);
        return;
    }
    /* a script flushed behind our back is loaded again and this command
     * resent once, ahead of anything sent after it (queue_async) */
    queue_async_formatted(r->qa, cmd, len, src, cb, priv);
}
