/* redis.c: the webhooks processes' one hiredis async connection on libev,
 * with reconnects (backoff 50 ms .. 2 s) and EVALSHA that loads the script
 * on NOSCRIPT. Every callback runs exactly once. It does not queue commands
 * while disconnected: the caller answers 503 and the provider retries. */
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct hook_redis {
    struct ev_loop *loop;
    redisAsyncContext *ac;
    int up;
    int backoff_ms;
    ev_timer retry;
    int is_unix;
    char host[256];
    int port;
    char path[512];
    char pass[256];
    int db;
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

static int parse_url(hook_redis *r, const char *url, hr_err *err)
{
    if (strncmp(url, "unix://", 7) == 0) {
        r->is_unix = 1;
        const char *p = url + 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof r->path) return hr_err_set(err, "redis: bad url %s", url);
        memcpy(r->path, p, n);
        if (q && strncmp(q, "?db=", 4) == 0) r->db = atoi(q + 4);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return hr_err_set(err, "redis: url must be redis:// or unix://: %s", url);
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        size_t n = (size_t)(at - pw);
        if (n >= sizeof r->pass) return hr_err_set(err, "redis: password too long");
        memcpy(r->pass, pw, n);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hp[256];
    if (hl >= sizeof hp) return hr_err_set(err, "redis: bad url");
    memcpy(hp, p, hl);
    hp[hl] = '\0';
    char *colon = strrchr(hp, ':');
    r->port = 6379;
    if (colon) {
        *colon = '\0';
        r->port = atoi(colon + 1);
    }
    snprintf(r->host, sizeof r->host, "%s", hp[0] ? hp : "127.0.0.1");
    if (slash && slash[1]) r->db = atoi(slash + 1);
    return 0;
}

static void connect_now(hook_redis *r);

static void schedule_retry(hook_redis *r)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 50;
    if (r->backoff_ms > 2000) r->backoff_ms = 2000;
    ev_timer_set(&r->retry, r->backoff_ms / 1000.0, 0.);
    ev_timer_start(r->loop, &r->retry);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    connect_now(w->data);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    hook_redis *r = ac->data;
    if (status != REDIS_OK) {
        r->ac = NULL; /* hiredis frees it */
        schedule_retry(r);
        return;
    }
    r->up = 1;
    r->backoff_ms = 0;
    hr_log(HR_LOG_INFO, "redis connected", NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    hook_redis *r = ac->data;
    if (!r) return; /* freed by hook_redis_free */
    int was_up = r->up;
    r->up = 0;
    r->ac = NULL;
    if (was_up) hr_log(HR_LOG_WARN, "redis connection lost", NULL);
    schedule_retry(r);
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv) {}

static void connect_now(hook_redis *r)
{
    redisAsyncContext *ac =
        r->is_unix ? redisAsyncConnectUnix(r->path) : redisAsyncConnect(r->host, r->port);
    if (!ac || ac->err) {
        if (ac) redisAsyncFree(ac);
        schedule_retry(r);
        return;
    }
    ac->data = r;
    redisLibevAttach(r->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* AUTH and SELECT go first in the pipe: replies are ordered */
    if (r->pass[0]) redisAsyncCommand(ac, ignore_reply, NULL, "AUTH %s", r->pass);
    if (r->db) redisAsyncCommand(ac, ignore_reply, NULL, "SELECT %d", r->db);
    r->ac = ac;
}

hook_redis *hook_redis_new(struct ev_loop *loop, const char *url, hr_err *err)
{
    hook_redis *r = hr_calloc(1, sizeof *r);
    r->loop = loop;
    if (parse_url(r, url ? url : "redis://127.0.0.1:6379", err) != 0) {
        free(r);
        return NULL;
    }
    ev_init(&r->retry, on_retry);
    r->retry.data = r;
    connect_now(r);
    return r;
}

void hook_redis_free(hook_redis *r)
{
    if (!r) return;
    ev_timer_stop(r->loop, &r->retry);
    if (r->ac) {
        r->ac->data = NULL;
        /* runs pending callbacks with NULL replies: each request answers */
        redisAsyncFree(r->ac);
    }
    free(r);
}

int hook_redis_up(const hook_redis *r)
{
    return r->up && r->ac;
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
    if (rep && rep->type == REDIS_REPLY_ERROR && p->src && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        p->r && p->r->ac == ac && ac->data) {
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
    if (!hook_redis_up(r)) {
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
    if (redisAsyncCommandArgv(r->ac, on_reply, p, argc, (const char **)p->argv, p->lens) !=
        REDIS_OK) {
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
