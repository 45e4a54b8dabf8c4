/* redis.c: the webhooks processes' Redis commands on the queue's async
 * connection (queue_async: hiredis on libev, reconnects with backoff), and
 * EVALSHA that loads the script on NOSCRIPT. Every callback runs exactly once. It does not queue
 * commands while disconnected: the caller answers 503 and the provider retries. */
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "queue.h"

struct hook_redis {
    queue_async *qa; /* the connection, its reconnects and backoff */
};

typedef struct pending {
    hook_redis *r;
    hook_redis_cb *cb;
    void *priv;
    /* for NOSCRIPT: the full argv to retry once with SCRIPT LOAD first */
    const char *src;
    int argc;
    char **argv;
    size_t *lens;
} pending;

void hook_script_sha(const char *src, char out[41])
{
    unsigned char d[20];
    SHA1((const unsigned char *)src, strlen(src), d);
    hr_hex(d, 20, out);
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv) {}

hook_redis *hook_redis_new(struct ev_loop *loop, const char *url, const char *ns, hr_err *err)
{
    queue_opts o = {0};
    o.url = url;
    o.ns = ns;
    queue_async *qa = queue_async_new(loop, &o, err);
    if (!qa) return NULL;
    hook_redis *r = hr_calloc(1, sizeof *r);
    r->qa = qa;
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

static void pending_free(pending *p)
{
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p->lens);
    free(p);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    pending *p = priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && p->src && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        /* load it and retry once, in order on the same connection */
        redisAsyncCommand(ac, ignore_reply, NULL, "SCRIPT LOAD %s", p->src);
        p->argv[0][4] = '\0'; /* "EVALSHA" -> "EVAL", body instead of sha */
        free(p->argv[1]);
        p->argv[1] = hr_strdup(p->src);
        p->lens[0] = 4;
        p->lens[1] = strlen(p->src);
        p->src = NULL;
        if (redisAsyncCommandArgv(ac, on_reply, p, p->argc, (const char **)p->argv, p->lens) ==
            REDIS_OK)
            return;
        rep = NULL;
    }
    const char *msg = NULL;
    if (!rep)
        msg = ac && ac->errstr[0] ? ac->errstr : "redis: connection lost";
    else if (rep->type == REDIS_REPLY_ERROR)
        msg = rep->str;
    p->cb(msg ? NULL : rep, msg, p->priv);
    pending_free(p);
}

static void submit(hook_redis *r, const char *src, int argc, const char **argv, const size_t *lens,
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
    p->argc = argc;
    p->argv = hr_malloc(sizeof *p->argv * (size_t)argc);
    p->lens = hr_malloc(sizeof *p->lens * (size_t)argc);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        p->argv[i] = hr_malloc(n + 1);
        memcpy(p->argv[i], argv[i], n);
        p->argv[i][n] = '\0';
        p->lens[i] = n;
    }
    if (redisAsyncCommandArgv(ac, on_reply, p, argc, (const char **)p->argv, p->lens) != REDIS_OK) {
        pending_free(p);
        cb(NULL, "redis: cannot send command", priv);
    }
}

void hook_redis_argv(hook_redis *r, int argc, const char **argv, const size_t *lens,
                     hook_redis_cb *cb, void *priv)
{
    submit(r, NULL, argc, argv, lens, cb, priv);
}

void hook_redis_script(hook_redis *r, const char *src, const char *sha, int nkeys, int argc,
                       const char **argv, const size_t *lens, hook_redis_cb *cb, void *priv)
{
    int total = argc + 3;
    const char **av = hr_malloc(sizeof *av * (size_t)total);
    size_t *ln = hr_malloc(sizeof *ln * (size_t)total);
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = "EVALSHA";
    ln[0] = 7;
    av[1] = sha;
    ln[1] = 40;
    av[2] = nk;
    ln[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        ln[i + 3] = lens ? lens[i] : strlen(argv[i]);
    }
    submit(r, src, total, av, ln, cb, priv);
    free(av);
    free(ln);
}
