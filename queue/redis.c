/* redis.c: the synchronous connection: URL parsing, connect with AUTH and
 * SELECT, EVALSHA with NOSCRIPT handled, and the argv builder that the sync
 * and async halves share. Reconnects once when the connection broke. */
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

extern const char queue_lua_enqueue[], queue_lua_promote[], queue_lua_fetch[],
    queue_lua_attempt[], queue_lua_ack[], queue_lua_retry[], queue_lua_bury[],
    queue_lua_reap[], queue_lua_cancel[], queue_lua_resolve[], queue_lua_register[],
    queue_lua_circuit[], queue_lua_unknown[], queue_lua_charge[], queue_lua_quota[],
    queue_lua_release[];

queue_script queue_scripts[QS_COUNT] = {
    [QS_ENQUEUE] = {"enqueue", queue_lua_enqueue, ""},
    [QS_PROMOTE] = {"promote", queue_lua_promote, ""},
    [QS_FETCH] = {"fetch", queue_lua_fetch, ""},
    [QS_ATTEMPT] = {"attempt", queue_lua_attempt, ""},
    [QS_ACK] = {"ack", queue_lua_ack, ""},
    [QS_RETRY] = {"retry", queue_lua_retry, ""},
    [QS_BURY] = {"bury", queue_lua_bury, ""},
    [QS_REAP] = {"reap", queue_lua_reap, ""},
    [QS_CANCEL] = {"cancel", queue_lua_cancel, ""},
    [QS_RESOLVE] = {"resolve", queue_lua_resolve, ""},
    [QS_REGISTER] = {"register", queue_lua_register, ""},
    [QS_CIRCUIT] = {"circuit", queue_lua_circuit, ""},
    [QS_UNKNOWN] = {"unknown", queue_lua_unknown, ""},
    [QS_CHARGE] = {"charge", queue_lua_charge, ""},
    [QS_QUOTA] = {"quota", queue_lua_quota, ""},
    [QS_RELEASE] = {"release", queue_lua_release, ""},
};

void queue_scripts_init(void)
{
    if (queue_scripts[0].sha[0]) return;
    for (int i = 0; i < QS_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)queue_scripts[i].src, strlen(queue_scripts[i].src), md);
        hr_hex(md, sizeof md, queue_scripts[i].sha);
    }
}

static int parse_port(const char *s, int *port)
{
    int64_t v;
    if (hr_parse_i64(s, &v) < 0 || v <= 0 || v > 65535) return -1;
    *port = (int)v;
    return 0;
}

const char *queue_url_userinfo(queue_url *u, const char *p, const char *at)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon) {
        snprintf(u->user, sizeof u->user, "%.*s", (int)(colon - p), p);
        snprintf(u->pass, sizeof u->pass, "%.*s", (int)(at - colon - 1), colon + 1);
    } else {
        snprintf(u->pass, sizeof u->pass, "%.*s", (int)(at - p), p);
    }
    return at + 1;
}

int queue_url_parse(const char *url, queue_url *u, hr_err *err)
{
    if (strncmp(url, "redis-sentinel://", 17) == 0) return queue_sentinel_parse(url, u, err);
    memset(u, 0, sizeof *u);
    u->port = 6379;
    snprintf(u->host, sizeof u->host, "127.0.0.1");
    if (strncmp(url, "unix://", 7) == 0) {
        u->unix_socket = 1;
        const char *p = url + 7;
        const char *q = strchr(p, '?');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 0 || n >= sizeof u->path) return hr_err_set(err, "redis url: bad socket path");
        memcpy(u->path, p, n);
        if (q && strncmp(q, "?db=", 4) == 0) u->db = atoi(q + 4);
        return 0;
    }
    if (strncmp(url, "rediss://", 9) == 0)
        return hr_err_set(err, "redis url: TLS (rediss://) is not supported; use a local "
                               "TLS proxy such as stunnel");
    if (strncmp(url, "redis://", 8) != 0) {
        /* echoed without its userinfo: a password must never reach a log */
        const char *at = strrchr(url, '@'), *sep = strstr(url, "://");
        int keep = at && sep && sep < at ? (int)(sep + 3 - url) : 0;
        return hr_err_set(err, "redis url: \"%.*s%s%s\": expected redis:// or unix://",
                          at ? keep : (int)strlen(url), url, at ? "***" : "", at ? at : "");
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at) p = queue_url_userinfo(u, p, at);
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[256];
    if (hl >= sizeof hostport) return hr_err_set(err, "redis url: host too long");
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    char *colon = strrchr(hostport, ':');
    if (colon) {
        *colon = '\0';
        if (parse_port(colon + 1, &u->port) < 0)
            return hr_err_set(err, "redis url: bad port \"%s\"", colon + 1);
    }
    if (hostport[0]) snprintf(u->host, sizeof u->host, "%s", hostport);
    if (slash && slash[1]) {
        int64_t db;
        if (hr_parse_i64(slash + 1, &db) < 0 || db < 0)
            return hr_err_set(err, "redis url: bad database \"%s\"", slash + 1);
        u->db = (int)db;
    }
    return 0;
}

char *queue_key(const char *ns, const char *suffix, char *out, size_t outlen)
{
    snprintf(out, outlen, "{%s}:%s", ns, suffix);
    return out;
}

static int sync_connect(queue *q, hr_err *err)
{
    struct timeval tv = {q->timeout_ms / 1000, (q->timeout_ms % 1000) * 1000};
    /* with Sentinel, ask where the master is now on every (re)connect */
    if (q->url.sentinel && queue_sentinel_resolve(&q->url, err) < 0) return -1;
    redisContext *c = q->url.unix_socket ? redisConnectUnixWithTimeout(q->url.path, tv)
                                         : redisConnectWithTimeout(q->url.host, q->url.port, tv);
    if (!c || c->err) {
        hr_err_set(err, "connect %s: %s", q->url.unix_socket ? q->url.path : q->url.host,
                   c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (q->url.pass[0]) {
        r = q->url.user[0] ? redisCommand(c, "AUTH %s %s", q->url.user, q->url.pass)
                           : redisCommand(c, "AUTH %s", q->url.pass);
        /* the password is never echoed into the message */
        if (!r || r->type == REDIS_REPLY_ERROR) {
            hr_err_set(err, "redis AUTH failed%s%s", r ? ": " : "", r ? r->str : "");
            if (r) freeReplyObject(r);
            redisFree(c);
            return -1;
        }
        freeReplyObject(r);
    }
    if (q->url.db) {
        r = redisCommand(c, "SELECT %d", q->url.db);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            hr_err_set(err, "redis SELECT %d failed", q->url.db);
            if (r) freeReplyObject(r);
            redisFree(c);
            return -1;
        }
        freeReplyObject(r);
    }
    if (q->url.sentinel) {
        /* a demoted master answers until the sentinels reconfigure it */
        r = redisCommand(c, "ROLE");
        int master = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                     r->element[0]->type == REDIS_REPLY_STRING &&
                     strcmp(r->element[0]->str, "master") == 0;
        if (r) freeReplyObject(r);
        if (!master) {
            hr_err_set(err, "redis sentinel: %s:%d is not a master yet (failover running)",
                       q->url.host, q->url.port);
            redisFree(c);
            return -1;
        }
    }
    q->c = c;
    return 0;
}

queue *queue_connect(const queue_opts *o, hr_err *err)
{
    queue_scripts_init();
    queue *q = hr_calloc(1, sizeof *q);
    const char *url = o && o->url ? o->url : getenv("HERALD_REDIS_URL");
    if (!url) url = "redis://127.0.0.1:6379";
    if (qo_check_ns(o && o->ns ? o->ns : "herald", q->ns, sizeof q->ns, err) < 0) {
        free(q);
        return NULL;
    }
    q->timeout_ms = o && o->timeout_ms ? o->timeout_ms : 5000;
    if (queue_url_parse(url, &q->url, err) < 0) {
        free(q);
        return NULL;
    }
    hr_err cerr = {0};
    if (sync_connect(q, o && o->lazy ? &cerr : err) < 0 && !(o && o->lazy)) {
        free(q);
        return NULL;
    }
    return q;
}

void queue_free(queue *q)
{
    if (!q) return;
    if (q->c) redisFree(q->c);
    free(q);
}

const char *queue_ns(const queue *q) { return q->ns; }
redisContext *queue_redis(queue *q) { return q->c; }

void qa_init(queue_argv *a) { memset(a, 0, sizeof *a); }

void qa_release(queue_argv *a)
{
    for (int i = 0; i < a->argc; i++) free(a->argv[i]);
    free(a->argv);
    free(a->lens);
    qa_init(a);
}

void qa_push(queue_argv *a, const void *p, size_t n)
{
    if (a->argc == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->argv = hr_realloc(a->argv, sizeof(char *) * (size_t)a->cap);
        a->lens = hr_realloc(a->lens, sizeof(size_t) * (size_t)a->cap);
    }
    a->argv[a->argc] = hr_strndup(p, n);
    a->lens[a->argc++] = n;
}

void qa_pushs(queue_argv *a, const char *s) { qa_push(a, s, strlen(s)); }

void qa_pushf(queue_argv *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = hr_vasprintf(fmt, ap);
    va_end(ap);
    qa_pushs(a, s);
    free(s);
}

void qa_pushkey(queue_argv *a, const char *ns, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = hr_vasprintf(fmt, ap);
    va_end(ap);
    qa_pushf(a, "{%s}:%s", ns, s);
    free(s);
}

void qa_evalsha(queue_argv *a, int s, int nkeys)
{
    qa_pushs(a, "EVALSHA");
    qa_pushs(a, queue_scripts[s].sha);
    qa_pushf(a, "%d", nkeys);
}

void qa_set_nkeys(queue_argv *a, int nkeys)
{
    free(a->argv[2]);
    a->argv[2] = hr_asprintf("%d", nkeys);
    a->lens[2] = strlen(a->argv[2]);
}

/* send_argv sends one command. It is sent again on a new connection only
 * when writing it failed (an incomplete command never runs). Once written,
 * a timeout or a broken connection leaves its outcome unknown, and a script
 * is never resent blindly: enqueue would add its jobs twice. */
static redisReply *send_argv(queue *q, queue_argv *a, hr_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!q->c && sync_connect(q, err) < 0) return NULL;
        redisAppendCommandArgv(q->c, a->argc, (const char **)a->argv, a->lens);
        int done = 0;
        while (!done)
            if (redisBufferWrite(q->c, &done) == REDIS_ERR) break;
        if (!done) { /* not sent: safe to try once more */
            hr_err_set(err, "redis: %s", q->c->errstr[0] ? q->c->errstr : "write failed");
            redisFree(q->c);
            q->c = NULL;
            continue;
        }
        redisReply *r = NULL;
        if (redisGetReply(q->c, (void **)&r) == REDIS_OK && r) return r;
        hr_err_set(err, "redis: %s (the command was sent; it may or may not have run)",
                   q->c->errstr[0] ? q->c->errstr : "connection lost");
        redisFree(q->c);
        q->c = NULL;
        return NULL;
    }
    return NULL;
}

redisReply *queue_run_sync(queue *q, queue_argv *a, int script, hr_err *err)
{
    redisReply *r = send_argv(q, a, err);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        queue_argv load;
        qa_init(&load);
        qa_pushs(&load, "SCRIPT");
        qa_pushs(&load, "LOAD");
        qa_pushs(&load, queue_scripts[script].src);
        r = send_argv(q, &load, err);
        qa_release(&load);
        if (!r) return NULL;
        if (r->type == REDIS_REPLY_ERROR) {
            hr_err_set(err, "redis: loading script %s: %s", queue_scripts[script].name, r->str);
            freeReplyObject(r);
            return NULL;
        }
        freeReplyObject(r);
        r = send_argv(q, a, err);
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
        hr_err_set(err, "redis: script %s: %s", queue_scripts[script].name, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* idempotent_send sends one formatted command; after a broken connection it
 * reconnects and sends it once more, so it is for idempotent commands only
 * (reads, SADD, HSET of a fixed value...). */
static redisReply *idempotent_send(queue *q, const char *cmd, size_t len, hr_err *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!q->c && sync_connect(q, err) < 0) return NULL;
        redisReply *r = NULL;
        if (redisAppendFormattedCommand(q->c, cmd, len) == REDIS_OK &&
            redisGetReply(q->c, (void **)&r) == REDIS_OK && r) {
            if (r->type == REDIS_REPLY_ERROR) {
                hr_err_set(err, "redis: %s", r->str);
                freeReplyObject(r);
                return NULL;
            }
            return r;
        }
        hr_err_set(err, "redis: %s", q->c->errstr[0] ? q->c->errstr : "connection lost");
        redisFree(q->c);
        q->c = NULL;
    }
    return NULL;
}

redisReply *queue_cmd_sync(queue *q, hr_err *err, const char *fmt, ...)
{
    char *cmd;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0) {
        hr_err_set(err, "redis: bad command format");
        return NULL;
    }
    redisReply *r = idempotent_send(q, cmd, (size_t)len, err);
    redisFreeCommand(cmd);
    return r;
}

redisReply *queue_cmdargv_sync(queue *q, queue_argv *a, hr_err *err)
{
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, a->argc, (const char **)a->argv, a->lens);
    if (len < 0) {
        hr_err_set(err, "redis: cannot format command");
        return NULL;
    }
    redisReply *r = idempotent_send(q, cmd, (size_t)len, err);
    redisFreeCommand(cmd);
    return r;
}
