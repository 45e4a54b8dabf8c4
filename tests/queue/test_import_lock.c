/* test_import_lock.c: the enqueue script honours `herald import`'s lock
 * ({ns}:importing:<campaign>) against a real redis-server: a job whose
 * unique key has an import's form is refused while another process holds
 * its campaign's lock, with the whole batch; the importer's own calls (its
 * token) go through, and are refused once the lock is not its own. The
 * lanes an import holds ({ns}:held) keep their scheduled jobs through
 * promotion, and the importer's jobs due now are scheduled, not ready. */
#include <stdlib.h>

#include "harness.h"
#include "queue.h"

static th_redis *R;
static queue *Q;

static void connect_ns(const char *ns)
{
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = ns};
    hr_err err = {0};
    queue_free(Q);
    Q = queue_connect(&o, &err);
    if (!Q) fprintf(stderr, "connect: %s\n", err.msg);
}

static queue_job *post(const char *account, const char *key)
{
    queue_job *j = queue_job_new();
    queue_set(&j->platform, "x");
    queue_set(&j->account, account);
    if (key) queue_set(&j->unique_key, key);
    queue_set(&j->text, "hello");
    j->run_at_ms = hr_now_ms() + 3600000;
    return j;
}

static long count(const char *cmd, const char *key)
{
    char *s = th_redis_cmd(R, "%s %s", cmd, key);
    long v = s ? atol(s) : -1;
    free(s);
    return v;
}

/* enqueue_one enqueues a job with unique key key (NULL: none) and returns
 * its result, or -1 (err in *err) when the call failed. */
static int enqueue_one(const char *key, hr_err *err)
{
    queue_job *j = post("@shop", key);
    int res = 0;
    int rc = queue_enqueue(Q, &j, 1, &res, err);
    queue_job_free(j);
    if (rc < 0) CHECK_INT(res, QUEUE_FAILED);
    return rc < 0 ? -1 : res;
}

/* A held lock refuses its campaign's jobs, and every batch holding one;
 * other campaigns, other key forms and jobs without a key are not kept out. */
static void test_refused_while_held(void)
{
    connect_ns("l1");
    REQUIRE(Q);
    free(th_redis_cmd(R, "SET {l1}:importing:blog tok PX 60000"));
    hr_err err = {0};
    CHECK_INT(enqueue_one("blog|wxr:1|x|@shop", &err), -1);
    CHECK(strstr(err.msg, "enqueue: campaign blog is being imported by another process (lock "
                          "{l1}:importing:blog, its lease ends within ") != NULL);
    CHECK(strstr(err.msg, " s): try again when it is done; 1 job not written") != NULL);
    CHECK_INT(count("EXISTS", "{l1}:jobs"), 0);
    CHECK_INT(enqueue_one("blog|wxr:1|x|@shop|ann@example.com", &err), -1); /* an email's */

    /* a batch with one such job writes nothing, over all its script calls
     * (2,500 jobs: the campaign's job is in the last call) */
    enum { N = 2500 };
    queue_job **jobs = hr_malloc(sizeof *jobs * N);
    int *res = hr_malloc(sizeof *res * N);
    for (int i = 0; i < N - 1; i++)
        jobs[i] = post("@a", i % 2 ? NULL : "news|wxr:1|x|@a");
    jobs[N - 1] = post("@z", "blog|wxr:2|x|@z");
    CHECK(queue_enqueue(Q, jobs, N, res, &err) < 0);
    CHECK(strstr(err.msg, "campaign blog is being imported") != NULL);
    int failed = 0;
    for (int i = 0; i < N; i++)
        failed += res[i] == QUEUE_FAILED;
    CHECK_INT(failed, N);
    CHECK_INT(count("EXISTS", "{l1}:jobs"), 0);
    CHECK_INT(count("ZCARD", "{l1}:sched:x:@a"), 0);
    for (int i = 0; i < N; i++)
        queue_job_free(jobs[i]);
    free(jobs);
    free(res);

    CHECK_INT(enqueue_one("news|wxr:1|x|@shop", &err), QUEUE_ADDED);
    CHECK_INT(enqueue_one(NULL, &err), QUEUE_ADDED);
    CHECK_INT(enqueue_one("blog|wxr:1", &err), QUEUE_ADDED);     /* not an import's form */
    CHECK_INT(enqueue_one("blog|wxr:1|x", &err), QUEUE_ADDED);   /* nor this */
    CHECK_INT(enqueue_one("poll:abc:0", &err), QUEUE_ADDED);     /* a poll job's */
    CHECK_INT(enqueue_one("|wxr:1|x|@shop", &err), QUEUE_ADDED); /* no campaign */
    CHECK_INT(count("HLEN", "{l1}:jobs"), 6);

    /* the campaign is what comes before the first '|' */
    free(th_redis_cmd(R, "SET {l1}:importing:a:b tok"));
    CHECK_INT(enqueue_one("a:b|csv:1|x|@shop", &err), -1);
    CHECK(strstr(err.msg, "campaign a:b is being imported by another process (lock "
                          "{l1}:importing:a:b, its lease ends within 0 s)") != NULL);

    free(th_redis_cmd(R, "DEL {l1}:importing:blog"));
    CHECK_INT(enqueue_one("blog|wxr:1|x|@shop", &err), QUEUE_ADDED);
    CHECK_INT(count("HLEN", "{l1}:jobs"), 7);
}

/* send_locked sends one job of key with token and returns its result, or
 * -1 with err */
static int send_locked(const char *key, const char *token, hr_err *err)
{
    queue_job *j = post("@shop", key);
    queue_enqueue_batch *b = queue_enqueue_send_locked(Q, &j, 1, token, err);
    int res = 0, rc = b ? queue_enqueue_recv(Q, b, &res, err) : -1;
    queue_job_free(j);
    return rc < 0 ? -1 : res;
}

/* The importer's calls carry its token: they go through while the lock is
 * its own, and are refused once another owner holds it or it lapsed. */
static void test_importer_token(void)
{
    connect_ns("l2");
    REQUIRE(Q);
    hr_err err = {0};
    free(th_redis_cmd(R, "SET {l2}:importing:blog tok PX 60000"));
    CHECK_INT(send_locked("blog|wxr:1|x|@shop", "tok", &err), QUEUE_ADDED);
    CHECK_INT(send_locked("blog|wxr:2|x|@shop", "other", &err), -1);
    CHECK(strstr(err.msg, "enqueue: lost the lock of campaign blog ({l2}:importing:blog): "
                          "another import holds it or it lapsed; 1 job not written") != NULL);
    free(th_redis_cmd(R, "DEL {l2}:importing:blog"));
    CHECK_INT(send_locked("blog|wxr:2|x|@shop", "tok", &err), -1);
    CHECK(strstr(err.msg, "lost the lock of campaign blog") != NULL);
    CHECK_INT(count("HLEN", "{l2}:jobs"), 1);
    /* without a token, nothing held: as before */
    CHECK_INT(send_locked("blog|wxr:2|x|@shop", NULL, &err), QUEUE_ADDED);
    CHECK_INT(count("HLEN", "{l2}:jobs"), 2);
}

static long promote(void)
{
    long n = -1;
    int64_t next, now;
    hr_err err = {0};
    CHECK_INT(queue_promote(Q, 1000, &n, &next, &now, &err), 0);
    return n;
}

/* issue #4: an importer's job due now is scheduled (its lane is held);
 * a held lane keeps its scheduled jobs (its retries go on) and its due
 * entry waits at the hold's expiry; a lapsed hold (a killed import's) is
 * dropped and the lane promoted. */
static void test_held_lane(void)
{
    connect_ns("l3");
    REQUIRE(Q);
    hr_err err = {0};
    free(th_redis_cmd(R, "SET {l3}:importing:blog tok PX 60000"));
    queue_job *j[2] = {post("@shop", "blog|wxr:1|x|@shop"), post("@shop", NULL)};
    j[0]->run_at_ms = j[1]->run_at_ms = hr_now_ms() - 1000;
    int res = 0;
    queue_enqueue_batch *b = queue_enqueue_send_locked(Q, j, 1, "tok", &err);
    REQUIRE(b && queue_enqueue_recv(Q, b, &res, &err) == 0);
    CHECK_INT(res, QUEUE_ADDED);
    CHECK_INT(count("ZCARD", "{l3}:sched:x:@shop"), 1);
    CHECK_INT(count("LLEN", "{l3}:ready:x:@shop"), 0);
    /* anyone else's job due now is ready at once, as before */
    CHECK_INT(queue_enqueue(Q, &j[1], 1, &res, &err), 0);
    CHECK_INT(count("LLEN", "{l3}:ready:x:@shop"), 1);
    queue_job_free(j[0]);
    queue_job_free(j[1]);

    int64_t until = hr_now_ms() + 60000;
    free(th_redis_cmd(R, "ZADD {l3}:held %lld tok|x:@shop", (long long)until));
    free(th_redis_cmd(R, "ZADD {l3}:retry:x:@shop 1 rj"));
    free(th_redis_cmd(R, "ZADD {l3}:due 1 r|x:@shop"));
    CHECK_INT(promote(), 1); /* the retry only */
    CHECK_INT(count("ZCARD", "{l3}:sched:x:@shop"), 1);
    CHECK_INT(count("LLEN", "{l3}:ready:x:@shop"), 2);
    char *at = th_redis_cmd(R, "ZSCORE {l3}:due s|x:@shop");
    CHECK(at && atoll(at) >= until - 5000); /* Redis's clock may differ a little */
    free(at);
    CHECK_INT(promote(), 0); /* nothing due: no spin */

    /* lapsed: dropped by the next promotion once the entry is due */
    free(th_redis_cmd(R, "ZADD {l3}:held 2 tok|x:@shop"));
    free(th_redis_cmd(R, "ZADD {l3}:due 2 s|x:@shop"));
    CHECK_INT(promote(), 1);
    CHECK_INT(count("ZCARD", "{l3}:held"), 0);
    CHECK_INT(count("ZCARD", "{l3}:sched:x:@shop"), 0);
    CHECK_INT(count("LLEN", "{l3}:ready:x:@shop"), 3);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    th_run("refused_while_held", test_refused_while_held);
    th_run("importer_token", test_importer_token);
    th_run("held_lane", test_held_lane);
    queue_free(Q);
    return th_main_end();
}
