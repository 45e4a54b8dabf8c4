/* sentinel.c: Redis Sentinel discovery for "redis-sentinel://" URLs: parses
 * the sentinel list and master name, and asks the sentinels, in order, where
 * the master is now (SENTINEL get-master-addr-by-name). The sync and async
 * connects call it before every (re)connect, so clients follow a failover.
 * It does not subscribe to sentinel events: a client learns of a failover
 * when its connection drops (sentinels kill the clients of a demoted master). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "internal.h"

/* Sentinels are asked one after another; each gets this long to answer, so
 * a dead one delays a reconnect by at most this much. */
#define SENTINEL_TIMEOUT_MS 300

int queue_sentinel_parse(const char *url, queue_url *u, hr_err *err)
{
    memset(u, 0, sizeof *u);
    u->sentinel = 1;
    const char *p = url + strlen("redis-sentinel://");
    const char *slash = strchr(p, '/');
    const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) p = queue_url_userinfo(u, p, at);
    if (!slash || slash == p)
        return hr_err_set(err, "redis url: redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER"
                               "[/DB]: sentinels and master name needed");
    size_t n = (size_t)(slash - p);
    if (n >= sizeof u->sentinels) return hr_err_set(err, "redis url: sentinel list too long");
    memcpy(u->sentinels, p, n);
    u->sentinels[n] = '\0';
    const char *name = slash + 1, *db = strchr(name, '/');
    size_t nl = db ? (size_t)(db - name) : strlen(name);
    if (nl == 0 || nl >= sizeof u->master)
        return hr_err_set(err, "redis url: sentinel master name missing or too long");
    memcpy(u->master, name, nl);
    u->master[nl] = '\0';
    if (db && db[1]) {
        int64_t v;
        if (hr_parse_i64(db + 1, &v) < 0 || v < 0)
            return hr_err_set(err, "redis url: bad database \"%s\"", db + 1);
        u->db = (int)v;
    }
    /* every sentinel must be host:port (port default 26379) */
    char copy[sizeof u->sentinels];
    snprintf(copy, sizeof copy, "%s", u->sentinels);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        int64_t port;
        if (!*tok || colon == tok ||
            (colon && (hr_parse_i64(colon + 1, &port) < 0 || port <= 0 || port > 65535)))
            return hr_err_set(err, "redis url: bad sentinel address \"%s\"", tok);
    }
    snprintf(u->host, sizeof u->host, "%s", "");
    return 0;
}

/* ask one sentinel; 0 and the address, or -1 with the reason */
static int ask(const char *host, int port, const char *master, char *ip, size_t iplen, int *mport,
               hr_err *err)
{
    struct timeval tv = {0, SENTINEL_TIMEOUT_MS * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        hr_err_set(err, "sentinel %s:%d: %s", host, port, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    redisReply *r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master);
    int rc = -1;
    if (!r) {
        hr_err_set(err, "sentinel %s:%d: %s", host, port, c->errstr);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(ip, iplen, "%s", r->element[0]->str);
        *mport = atoi(r->element[1]->str);
        rc = *mport > 0 ? 0 : hr_err_set(err, "sentinel %s:%d: bad port", host, port);
    } else if (r->type == REDIS_REPLY_ERROR) {
        hr_err_set(err, "sentinel %s:%d: %s", host, port, r->str);
    } else {
        hr_err_set(err, "sentinel %s:%d: no master named \"%s\"", host, port, master);
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return rc;
}

int queue_sentinel_resolve(queue_url *u, hr_err *err)
{
    char copy[sizeof u->sentinels];
    snprintf(copy, sizeof copy, "%s", u->sentinels);
    hr_err last = {0};
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(tok, ':');
        int port = 26379;
        if (colon) {
            *colon = '\0';
            port = atoi(colon + 1);
        }
        char ip[256];
        int mport;
        if (ask(tok, port, u->master, ip, sizeof ip, &mport, &last) == 0) {
            snprintf(u->host, sizeof u->host, "%s", ip);
            u->port = mport;
            return 0;
        }
    }
    return hr_err_set(err, "redis sentinel: no sentinel knows master \"%s\" (last: %s)", u->master,
                      last.msg);
}
