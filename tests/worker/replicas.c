/* replicas.c: a worker whose Redis has a replica sends a batch only once
 * the replica has its attempt marks (WAIT after each batch): with the
 * replica stopped nothing goes out and the jobs wait in their lanes; once
 * it answers again every job is sent, once. */
#include "wktest.h"

static th_redis *replica;

static int replica_connected(void *arg)
{
    (void)arg;
    char *s = th_redis_cmd(wt.redis, "INFO replication");
    int ok = s && strstr(s, ",state=online,") != NULL; /* in sync, not only connected */
    free(s);
    return ok;
}

static int refusals(void)
{
    return wt_log_count("replicas", "attempt marks not on enough replicas: not sending");
}

/* refused_twice: two batches more than *arg were not sent */
static int refused_twice(void *arg)
{
    wt_tick();
    return refusals() >= *(int *)arg + 2;
}

static void marks_wait_for_replica(void)
{
    wt_reset();
    enum { N = 20, M = 10 };
    wt_enqueue("x", "@a", "replicated", N);
    pid_t w = wt_worker(NULL, "replicas", "--processes", "1", NULL);
    CHECK(wt_wait_done(N, 20000));
    CHECK(wt_log_count("replicas", "attempt marks wait for redis replicas") >= 1);

    /* the replica stops answering: no batch is confirmed, none is sent */
    kill(replica->pid, SIGSTOP);
    wt_enqueue("x", "@b", "while the replica is away", M);
    int before = refusals(); /* a loaded host may let a healthy WAIT run out */
    int refused = th_wait_for(refused_twice, &before, 20000);
    long sent_meanwhile = wt_sandbox_posts("x", NULL);
    kill(replica->pid, SIGCONT);
    CHECK(refused);
    CHECK_INT(sent_meanwhile, N);

    /* back: every job goes out, once */
    CHECK(wt_wait_done(N + M, 30000));
    wt_term(w);
    wt_sent_once("x", "@b", N + M);
}

int main(void)
{
    wt_start("redis-wait-timeout 500ms\n");
    int port = th_free_port();
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    free(th_redis_cmd(wt.redis, "CONFIG SET port %s", ps));
    free(th_redis_cmd(wt.redis, "CONFIG SET repl-diskless-sync-delay 0"));
    replica = th_redis_start(0, "--replicaof", "127.0.0.1", ps, NULL);
    if (!th_wait_for(replica_connected, NULL, 10000)) {
        fprintf(stderr, "replicas: the replica did not connect\n");
        return 1;
    }
    th_run("marks_wait_for_replica", marks_wait_for_replica);
    wt_stop();
    return th_main_end();
}
