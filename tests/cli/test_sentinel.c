/* test_sentinel.c: redis-sentinel:// URLs against a real redis-sentinel and
 * two redis-servers (a master and its replica): the sync and async handles
 * find the master through the sentinel, and after `SENTINEL failover` both
 * follow it to the promoted replica (writes land there, nothing is lost). */
#include <ev.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "queue.h"

static th_redis *M, *S; /* master, replica */
static int sentinel_port;
static char url[128];

static redisReply *ask(int port, const char *cmd)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    redisReply *r = redisCommand(c, cmd);
    redisFree(c);
    return r;
}

/* master_port returns the port the sentinel names as master, or 0. */
static int master_port(void)
{
    redisReply *r = ask(sentinel_port, "SENTINEL get-master-addr-by-name mymaster");
    int p = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? atoi(r->element[1]->str) : 0;
    if (r) freeReplyObject(r);
    return p;
}

static int replica_known(void *arg)
{
    (void)arg;
    redisReply *r = ask(sentinel_port, "SENTINEL replicas mymaster");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
    if (r) freeReplyObject(r);
    /* and the replica is in sync */
    redisReply *i = ok ? ask(S->port, "INFO replication") : NULL;
    ok = i && i->type == REDIS_REPLY_STRING && strstr(i->str, "master_link_status:up");
    if (i) freeReplyObject(i);
    return ok;
}

static int promoted(void *arg)
{
    (void)arg;
    return master_port() == S->port;
}

/* demoted: the sentinel has turned the old master into a replica (and so
 * closed its clients' connections). Writes that reach the old master before
 * then are lost by Redis itself: see docs/operations.md. */
static int demoted(void *arg)
{
    (void)arg;
    redisReply *r = ask(M->port, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             strcmp(r->element[0]->str, "slave") == 0;
    if (r) freeReplyObject(r);
    return ok;
}

/* ------------------------------------------------------------ async */

static struct ev_loop *loop;
static queue_async *qa;
static int status = -2;

static void on_status(int st, const char *errmsg, void *priv)
{
    (void)errmsg;
    (void)priv;
    status = st;
}

static int async_connected(void *arg)
{
    (void)arg;
    ev_run(loop, EVRUN_NOWAIT);
    return queue_async_connected(qa);
}

/* registered tries a write through the async handle until one succeeds. */
static int registered(void *arg)
{
    ev_run(loop, EVRUN_NOWAIT);
    if (status == -2) return 0; /* in progress */
    if (status >= 0) return 1;
    status = -2;
    if (queue_async_connected(qa))
        queue_async_register(qa, arg, 60000, on_status, NULL);
    else
        status = -1;
    return 0;
}

static int on_new_master(const char *what)
{
    redisReply *r = ask(S->port, what);
    int ok = r && r->type == REDIS_REPLY_STRING;
    if (r) freeReplyObject(r);
    return ok;
}

static queue *Q;
static int sync_write(void *arg)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_POST;
    queue_set(&j->platform, "x");
    queue_set(&j->account, "@a");
    queue_set(&j->text, arg);
    queue_set(&j->unique_key, arg);
    j->run_at_ms = hr_now_ms() + 3600000;
    hr_err err = {0};
    int rc = queue_enqueue(Q, &j, 1, NULL, &err);
    queue_job_free(j);
    return rc == 0;
}

static void test_parse(void)
{
    queue_opts o = {.url = "redis-sentinel://127.0.0.1:1/", .ns = "s"};
    hr_err err = {0};
    CHECK(queue_connect(&o, &err) == NULL);
    CHECK(strstr(err.msg, "master name") != NULL);
    o.url = "redis-sentinel://127.0.0.1:x/m";
    CHECK(queue_connect(&o, &err) == NULL);
    CHECK(strstr(err.msg, "bad sentinel address") != NULL);
    /* a sentinel that is not there: a clear message, no hang */
    char bad[64];
    snprintf(bad, sizeof bad, "redis-sentinel://127.0.0.1:%d/mymaster", th_free_port());
    o.url = bad;
    CHECK(queue_connect(&o, &err) == NULL);
    CHECK(strstr(err.msg, "no sentinel knows master") != NULL);
}

static void test_failover(void)
{
    queue_opts o = {.url = url, .ns = "s"};
    hr_err err = {0};
    Q = queue_connect(&o, &err);
    if (!Q) fprintf(stderr, "connect: %s\n", err.msg);
    REQUIRE(Q);
    REQUIRE(sync_write("before failover"));
    char *n = th_redis_cmd(M, "HLEN {s}:jobs");
    CHECK_STR(n, "1"); /* it went to the master */
    free(n);

    loop = ev_loop_new(EVFLAG_AUTO);
    qa = queue_async_new(loop, &o, &err);
    REQUIRE(qa);
    REQUIRE(th_wait_for(async_connected, NULL, 10000));
    status = -1;
    REQUIRE(th_wait_for(registered, "w-before", 10000));

    /* fail over to the replica */
    REQUIRE(th_wait_for(replica_known, NULL, 20000));
    redisReply *r = ask(sentinel_port, "SENTINEL failover mymaster");
    CHECK(r && r->type == REDIS_REPLY_STATUS);
    if (r && r->type == REDIS_REPLY_ERROR) fprintf(stderr, "failover: %s\n", r->str);
    if (r) freeReplyObject(r);
    REQUIRE(th_wait_for(promoted, NULL, 20000));
    REQUIRE(th_wait_for(demoted, NULL, 30000));

    /* both handles follow: their writes land on the promoted replica */
    status = -1;
    CHECK(th_wait_for(registered, "w-after", 20000));
    CHECK(on_new_master("ZSCORE {s}:workers w-after"));
    CHECK(th_wait_for(sync_write, "after failover", 20000));
    n = th_redis_cmd(S, "HLEN {s}:jobs");
    CHECK_STR(n, "2"); /* the one from before came along by replication */
    free(n);

    queue_async_free(qa);
    ev_run(loop, EVRUN_NOWAIT);
    ev_loop_destroy(loop);
    queue_free(Q);
}

int main(void)
{
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        printf("skip: redis-server is not installed\n");
        return 77; /* CTest's SKIP_RETURN_CODE: reported as skipped, not passed */
    }
    M = th_redis_start(1, NULL);
    char mport[16];
    snprintf(mport, sizeof mport, "%d", M->port);
    S = th_redis_start(1, "--replicaof", "127.0.0.1", mport, NULL);
    /* a real sentinel: redis-sentinel is redis-server in sentinel mode */
    char *dir = th_tempdir();
    sentinel_port = th_free_port();
    char conf[600], text[1024], bin[256] = "/usr/bin/redis-server";
    snprintf(conf, sizeof conf, "%s/sentinel.conf", dir);
    snprintf(text, sizeof text,
             "port %d\nbind 127.0.0.1\ndir %s\n"
             "sentinel monitor mymaster 127.0.0.1 %d 1\n"
             "sentinel down-after-milliseconds mymaster 2000\n"
             "sentinel failover-timeout mymaster 10000\n",
             sentinel_port, dir, M->port);
    th_write_file(conf, text);
    /* redis-sentinel (Debian package) when installed, else the same binary
     * in sentinel mode */
    FILE *p = popen("command -v redis-sentinel || command -v redis-server", "r");
    if (p && fgets(bin, sizeof bin, p)) bin[strcspn(bin, "\n")] = '\0';
    if (p) pclose(p);
    char log[600];
    snprintf(log, sizeof log, "%s/sentinel.log", dir);
    char *argv[] = {bin, conf, "--sentinel", NULL};
    th_spawn(argv, log);
    for (int i = 0; i < 2500 && master_port() == 0; i++)
        usleep(2000);
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d/mymaster", sentinel_port);
    th_run("parse", test_parse);
    th_run("failover", test_failover);
    free(dir);
    return th_main_end();
}
