/* test_ops.c: every queue operation against a real redis-server. */
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue.h"

static th_redis *R;

static queue *connect_q(const char *ns)
{
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) fprintf(stderr, "connect: %s\n", err.msg);
    return q;
}

static queue_job *post(const char *platform, const char *account, const char *key,
                       int64_t run_at)
{
    queue_job *j = queue_job_new();
    queue_set(&j->platform, platform);
    queue_set(&j->account, account);
    queue_set(&j->campaign, "c1");
    if (key) queue_set(&j->unique_key, key);
    queue_set(&j->text, "hello");
    j->run_at_ms = run_at;
    return j;
}

static long count(const char *fmt, const char *ns, const char *lane)
{
    char *s = th_redis_cmd(R, fmt, ns, lane);
    long v = s ? atol(s) : -1;
    free(s);
    return v;
}

static void test_enqueue_dedupe(void)
{
    queue *q = connect_q("t1");
    REQUIRE(q);
    hr_err err = {0};
    int64_t later = hr_now_ms() + 3600000;
    queue_job *a = post("x", "@shop", "c1|wxr:1|x|@shop", later);
    queue_job *b = post("x", "@shop", "c1|wxr:2|x|@shop", 0); /* due now */
    queue_job *jobs[] = {a, b};
    int res[2];
    CHECK(queue_enqueue(q, jobs, 2, res, &err) == 0);
    CHECK_INT(res[0], QUEUE_ADDED);
    CHECK_INT(res[1], QUEUE_ADDED);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t1", "x:@shop"), 1);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t1", "x:@shop"), 1);
    char first_id[QUEUE_ID_LEN + 1];
    memcpy(first_id, a->id, sizeof first_id);

    /* re-import: same unique keys, new content and a new time */
    queue_job *a2 = post("x", "@shop", "c1|wxr:1|x|@shop", later + 60000);
    queue_set(&a2->text, "edited");
    a2->created_ms = hr_now_ms() + 5000; /* a different id time */
    queue_job *b2 = post("x", "@shop", "c1|wxr:2|x|@shop", 0);
    queue_job *jobs2[] = {a2, b2};
    CHECK(queue_enqueue(q, jobs2, 2, res, &err) == 0);
    CHECK_INT(res[0], QUEUE_UPDATED);
    CHECK_INT(res[1], QUEUE_UNCHANGED); /* already ready: left alone */
    CHECK_STR(a2->id, first_id);       /* the first id is kept */
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t1", "x:@shop"), 1);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t1", "x:@shop"), 1);
    CHECK_INT(count("HLEN {%s}:jobs%s", "t1", ""), 2);
    queue_job *g = queue_get(q, first_id, &err);
    REQUIRE(g);
    CHECK_STR(g->text, "edited");
    CHECK_INT(g->run_at_ms, later + 60000);
    CHECK_STR(g->id, first_id);
    queue_job_free(g);

    /* the same key twice in one batch: one job */
    queue_job *d1 = post("x", "@shop", "c1|wxr:3|x|@shop", later);
    queue_job *d2 = post("x", "@shop", "c1|wxr:3|x|@shop", later);
    queue_set(&d2->text, "second");
    queue_job *jobs3[] = {d1, d2};
    CHECK(queue_enqueue(q, jobs3, 2, res, &err) == 0);
    CHECK_INT(res[0], QUEUE_UPDATED);
    CHECK_INT(res[1], QUEUE_ADDED);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t1", "x:@shop"), 2);

    /* a bad lane is refused with a message, nothing written */
    queue_job *bad = post("x", "", NULL, 0);
    CHECK(queue_enqueue(q, &bad, 1, res, &err) < 0);
    CHECK(strstr(err.msg, "account") != NULL);
    queue_job *all[] = {a, b, a2, b2, d1, d2, bad};
    for (size_t i = 0; i < HR_ARRAY_LEN(all); i++) queue_job_free(all[i]);
    queue_free(q);
}

static void test_done_never_resent(void)
{
    queue *q = connect_q("t2");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("mastodon", "@shop@m.social", "k|1", 0);
    CHECK(queue_enqueue(q, &a, 1, NULL, &err) == 0);
    CHECK(queue_worker_register(q, "w1", 30000, &err) == 0);
    const char *lanes[] = {"mastodon:@shop@m.social"};
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w1", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    CHECK(queue_attempt(q, "w1", f[0].ukh, &err) == 0);
    queue_ack_item it = {.ukh = f[0].ukh, .id = a->id, .lane = f[0].lane,
                         .platform_id = "109", .lateness_ms = 3};
    int r;
    CHECK(queue_ack(q, "w1", &it, 1, &r, &err) == 0);
    CHECK_INT(r, 1);
    queue_fetched_free(f, n);
    /* a re-import of the sent item does nothing */
    queue_job *again = post("mastodon", "@shop@m.social", "k|1", 0);
    int res;
    CHECK(queue_enqueue(q, &again, 1, &res, &err) == 0);
    CHECK_INT(res, QUEUE_DONE);
    CHECK_STR(again->id, a->id);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t2", "mastodon:@shop@m.social"), 0);
    long sent = -1, dead = -1;
    CHECK(queue_recent(q, "mastodon:@shop@m.social", 60, &sent, &dead, NULL, &err) == 0);
    CHECK_INT(sent, 1);
    CHECK_INT(dead, 0);
    /* a bucket from two days ago is pruned; today's stays */
    free(th_redis_cmd(R, "HSET {t2}:stats m|sent|x:@old|1000 5"));
    CHECK_INT(queue_prune_stats(q, &err), 1);
    CHECK(queue_recent(q, "mastodon:@shop@m.social", 1440, &sent, NULL, NULL, &err) == 0);
    CHECK_INT(sent, 1);
    long lat[QUEUE_LATENESS_BUCKETS];
    long long lat_sum_ms = -1;
    CHECK(queue_lateness(q, lat, &lat_sum_ms, &err) == 0);
    CHECK_INT(lat[2], 1); /* 3 ms falls in the <= 5 ms bucket */
    CHECK_INT(lat_sum_ms, 3); /* herald_job_lateness_seconds_sum */
    queue_job_free(a);
    queue_job_free(again);
    queue_free(q);
}

static void test_promote(void)
{
    queue *q = connect_q("t3");
    REQUIRE(q);
    hr_err err = {0};
    int64_t now = hr_now_ms();
    queue_job *jobs[30];
    for (int i = 0; i < 30; i++) {
        char key[32];
        snprintf(key, sizeof key, "p|%d", i);
        /* 10 due in the past on two lanes, 20 far in the future */
        jobs[i] = post("x", i % 2 ? "@a" : "@b", key, i < 10 ? now - 1000 + i : now + 3600000);
    }
    /* due-in-the-past jobs go straight to ready; schedule them first at a
     * future time, then move the clock by rewriting their scores */
    for (int i = 0; i < 10; i++) jobs[i]->run_at_ms = now + 600000;
    CHECK(queue_enqueue(q, jobs, 30, NULL, &err) == 0);
    for (int i = 0; i < 10; i++) {
        char *s = th_redis_cmd(R, "ZADD {t3}:sched:%s %lld %s", i % 2 ? "x:@a" : "x:@b",
                               (long long)(now - 1000), queue_job_ukh(jobs[i]));
        free(s);
        s = th_redis_cmd(R, "ZADD {t3}:due %lld s|%s", (long long)(now - 1000),
                         i % 2 ? "x:@a" : "x:@b");
        free(s);
    }
    long promoted;
    int64_t next, rnow;
    CHECK(queue_promote(q, 1000, &promoted, &next, &rnow, &err) == 0);
    CHECK_INT(promoted, 10);
    CHECK(next >= now + 3600000 - 10);
    CHECK(rnow >= now - 5000);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t3", "x:@a") + count("LLEN {%s}:ready:%s", "t3", "x:@b"), 10);
    CHECK(queue_promote(q, 1000, &promoted, &next, &rnow, &err) == 0);
    CHECK_INT(promoted, 0);
    for (int i = 0; i < 30; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

/* Two schedulers promote the same stream of due jobs concurrently: every job
 * reaches a ready list exactly once. */
static void test_two_promoters(void)
{
    queue *q = connect_q("t4");
    REQUIRE(q);
    hr_err err = {0};
    enum { N = 3000 };
    int64_t base = hr_now_ms() + 400;
    queue_job **jobs = calloc(N, sizeof *jobs);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "tp|%d", i);
        jobs[i] = post("x", i % 3 == 0 ? "@a" : i % 3 == 1 ? "@b" : "@c", key, base + i % 600);
    }
    CHECK(queue_enqueue(q, jobs, N, NULL, &err) == 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            queue *qq = connect_q("t4");
            int64_t end = hr_now_ms() + 2500;
            while (hr_now_ms() < end) {
                long p;
                int64_t nx, rn;
                if (queue_promote(qq, 50, &p, &nx, &rn, &err) < 0) _exit(3);
            }
            queue_free(qq);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    long total = count("LLEN {%s}:ready:%s", "t4", "x:@a") + count("LLEN {%s}:ready:%s", "t4", "x:@b") +
                 count("LLEN {%s}:ready:%s", "t4", "x:@c");
    CHECK_INT(total, N);
    /* and no ukh twice */
    char *s = th_redis_cmd(R, "EVAL %s 3 {t4}:ready:x:@a {t4}:ready:x:@b {t4}:ready:x:@c",
                           "local seen, d = {}, 0 for i=1,3 do for _,v in ipairs(redis.call('LRANGE',"
                           "KEYS[i],0,-1)) do if seen[v] then d=d+1 end seen[v]=1 end end return d");
    CHECK_STR(s, "0");
    free(s);
    for (int i = 0; i < N; i++) queue_job_free(jobs[i]);
    free(jobs);
    queue_free(q);
}

static void test_fetch_lanes_pause(void)
{
    queue *q = connect_q("t5");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *jobs[9];
    const char *accts[] = {"@a", "@b", "@c"};
    for (int i = 0; i < 9; i++) jobs[i] = post("x", accts[i % 3], NULL, 0);
    CHECK(queue_enqueue(q, jobs, 9, NULL, &err) == 0);
    CHECK(queue_worker_register(q, "w", 30000, &err) == 0);
    const char *lanes[] = {"x:@a", "x:@b", "x:@c"};
    CHECK(queue_pause(q, "x:@b", &err) == 0);
    CHECK_INT(queue_is_paused(q, "x:@b", &err), 1);
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w", lanes, 3, 4, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 4);
    int per[3] = {0};
    for (int i = 0; i < n; i++) per[f[i].lane[3] - 'a']++;
    CHECK_INT(per[1], 0); /* paused lane untouched */
    CHECK_INT(per[0], 2); /* round robin across the others */
    CHECK_INT(per[2], 2);
    queue_fetched_free(f, n);
    /* pausing the whole platform stops everything */
    CHECK(queue_resume(q, "x:@b", &err) == 0);
    CHECK(queue_pause(q, "x", &err) == 0);
    CHECK(queue_fetch(q, "w", lanes, 3, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 0);
    queue_fetched_free(f, n);
    CHECK(queue_resume(q, "x", &err) == 0);
    CHECK(queue_fetch(q, "w", lanes, 3, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 5);
    queue_fetched_free(f, n);
    queue_lane_counts *c;
    int nc;
    CHECK(queue_counts(q, &c, &nc, &err) == 0);
    CHECK_INT(nc, 3);
    long inflight = 0;
    for (int i = 0; i < nc; i++) inflight += c[i].inflight;
    CHECK_INT(inflight, 9);
    free(c);
    /* an unregistered worker cannot fetch */
    CHECK_INT(queue_fetch(q, "ghost", lanes, 3, 10, 30000, &f, &n, &err), 1);
    for (int i = 0; i < 9; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

static void test_corrupt_blob_dead(void)
{
    queue *q = connect_q("t6");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("x", "@a", NULL, 0), *b = post("x", "@a", NULL, 0);
    queue_job *jobs[] = {a, b};
    CHECK(queue_enqueue(q, jobs, 2, NULL, &err) == 0);
    /* corrupt the first job's stored blob, and push a dangling member */
    free(th_redis_cmd(R, "HSET {t6}:jobs %s %s", queue_job_ukh(a), "00000000garbage!"));
    free(th_redis_cmd(R, "LPUSH {t6}:ready:x:@a %s", "ZZZZZZZZZZZZ"));
    CHECK(queue_worker_register(q, "w", 30000, &err) == 0);
    const char *lanes[] = {"x:@a"};
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 2); /* the dangling member is dropped, the next jobs served */
    int decoded = 0;
    for (int i = 0; i < n; i++) {
        hr_err de = {0};
        queue_job *j = queue_job_decode_stored(f[i].ukh, f[i].value, f[i].value_len, &de);
        if (!j) {
            char reason[HR_ERRLEN + 16];
            snprintf(reason, sizeof reason, "decode: %s", de.msg);
            CHECK_INT(queue_bury(q, "w", f[i].ukh, f[i].lane, NULL, reason, &err), 1);
        } else {
            decoded++;
            CHECK_STR(j->id, b->id);
            queue_job_free(j);
        }
    }
    CHECK_INT(decoded, 1);
    char *reason = queue_dead_reason(q, a->id, &err);
    CHECK(reason && strncmp(reason, "decode: job", 11) == 0);
    free(reason);
    CHECK_INT(count("ZCARD {%s}:dead:%s", "t6", "x:@a"), 1);
    /* dead purge */
    CHECK_INT(queue_dead_purge(q, a->id, &err), 1);
    CHECK_INT(count("ZCARD {%s}:dead:%s", "t6", "x:@a"), 0);
    queue_fetched_free(f, n);
    queue_job_free(a);
    queue_job_free(b);
    queue_free(q);
}

static void test_retry_bury_dead_retry(void)
{
    queue *q = connect_q("t7");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("bluesky", "@s.bsky.social", "r|1", 0);
    CHECK(queue_enqueue(q, &a, 1, NULL, &err) == 0);
    CHECK(queue_worker_register(q, "w", 30000, &err) == 0);
    const char *lanes[] = {"bluesky:@s.bsky.social"};
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    queue_job *j = queue_job_decode_stored(f[0].ukh, f[0].value, f[0].value_len, &err);
    REQUIRE(j);
    j->attempt = 1;
    queue_set(&j->last_error, "503 from platform");
    int64_t at = hr_now_ms() + 120000;
    CHECK_INT(queue_retry(q, "w", j, at, &err), 1);
    CHECK_INT(queue_retry(q, "w", j, at, &err), 0); /* no longer in flight */
    CHECK_INT(count("ZCARD {%s}:retry:%s", "t7", "bluesky:@s.bsky.social"), 1);
    char *s = th_redis_cmd(R, "ZSCORE {t7}:due r|bluesky:@s.bsky.social");
    CHECK(s && atoll(s) == at);
    free(s);
    queue_job *g = queue_get(q, a->id, &err);
    REQUIRE(g);
    CHECK_INT(g->attempt, 1);
    CHECK_STR(g->last_error, "503 from platform");
    queue_job_free(g);
    /* move it due and promote: it comes back; then bury it */
    free(th_redis_cmd(R, "ZADD {t7}:retry:bluesky:@s.bsky.social 1 %s", f[0].ukh));
    free(th_redis_cmd(R, "ZADD {t7}:due 1 r|bluesky:@s.bsky.social"));
    long p;
    int64_t nx, rn;
    CHECK(queue_promote(q, 100, &p, &nx, &rn, &err) == 0);
    CHECK_INT(p, 1);
    queue_fetched_free(f, n);
    CHECK(queue_fetch(q, "w", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    CHECK_INT(queue_bury(q, "w", NULL, NULL, j, "400: text too long", &err), 1);
    CHECK_INT(count("ZCARD {%s}:dead:%s", "t7", "bluesky:@s.bsky.social"), 1);
    CHECK_INT(queue_dead_retry(q, a->id, &err), 1);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t7", "bluesky:@s.bsky.social"), 1);
    g = queue_get(q, a->id, &err);
    REQUIRE(g);
    CHECK_INT(g->attempt, 0); /* an operator retry starts afresh */
    queue_job_free(g);
    queue_fetched_free(f, n);
    queue_job_free(j);
    queue_job_free(a);
    queue_free(q);
}

static void test_cancel(void)
{
    queue *q = connect_q("t8");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("x", "@a", NULL, hr_now_ms() + 100000), *b = post("x", "@a", NULL, 0);
    queue_job *jobs[] = {a, b};
    CHECK(queue_enqueue(q, jobs, 2, NULL, &err) == 0);
    CHECK_INT(queue_cancel(q, a->id, &err), 1);
    CHECK_INT(queue_cancel(q, a->id, &err), 0);
    CHECK_INT(queue_cancel(q, b->id, &err), 1);
    CHECK_INT(count("HLEN {%s}:jobs%s", "t8", ""), 0);
    CHECK(queue_cancel(q, "nonsense", &err) < 0);
    queue_job_free(a);
    queue_job_free(b);
    queue_free(q);
}

/* A worker process is killed with jobs in flight (some with an attempt
 * started); after its lease ends, reaping (twice, concurrently) re-queues the
 * unstarted ones exactly once and parks the started ones as unknown. A live
 * worker then gets each re-queued job exactly once. */
static void test_killed_worker(void)
{
    queue *q = connect_q("t9");
    REQUIRE(q);
    hr_err err = {0};
    enum { N = 200 };
    queue_job *jobs[N];
    for (int i = 0; i < N; i++) jobs[i] = post("x", i % 2 ? "@a" : "@b", NULL, 0);
    CHECK(queue_enqueue(q, jobs, N, NULL, &err) == 0);
    const char *lanes[] = {"x:@a", "x:@b"};
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t kid = fork();
    if (kid == 0) {
        queue *kq = connect_q("t9");
        hr_err e = {0};
        queue_worker_register(kq, "doomed", 300, &e);
        queue_fetched *f;
        int n;
        queue_fetch(kq, "doomed", lanes, 2, 150, 300, &f, &n, &e);
        for (int i = 0; i < 20 && i < n; i++) queue_attempt(kq, "doomed", f[i].ukh, &e);
        if (write(pfd[1], "x", 1) != 1) _exit(1);
        pause(); /* killed here, mid-flight */
        _exit(0);
    }
    char c;
    CHECK(read(pfd[0], &c, 1) == 1);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    close(pfd[0]);
    close(pfd[1]);
    /* 150 in flight, 20 of them with their attempt started */
    queue_inflight_job *fj;
    int nfj = -1, nstarted = 0;
    CHECK(queue_inflight(q, "doomed", &fj, &nfj, &err) == 0);
    CHECK_INT(nfj, 150);
    for (int i = 0; i < nfj; i++) nstarted += fj[i].started_ms > 0;
    CHECK_INT(nstarted, 20);
    free(fj);
    /* before the lease ends nothing moves */
    long rq = 0, un = 0;
    CHECK(queue_reap(q, &rq, &un, &err) == 0);
    CHECK_INT(rq + un, 0);
    usleep(400000);
    pid_t reapers[2];
    for (int k = 0; k < 2; k++) {
        reapers[k] = fork();
        if (reapers[k] == 0) {
            queue *rq2 = connect_q("t9");
            long a = 0, b = 0;
            hr_err e = {0};
            int rc = queue_reap(rq2, &a, &b, &e);
            queue_free(rq2);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int k = 0; k < 2; k++) waitpid(reapers[k], NULL, 0);
    CHECK_INT(count("HLEN {%s}:inflight:%s", "t9", "doomed"), 0);
    CHECK_INT(count("ZCARD {%s}:unknown:%s", "t9", "x:@a") + count("ZCARD {%s}:unknown:%s", "t9", "x:@b"), 20);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t9", "x:@a") + count("LLEN {%s}:ready:%s", "t9", "x:@b"), N - 20);
    /* the live worker gets every remaining job exactly once */
    CHECK(queue_worker_register(q, "alive", 30000, &err) == 0);
    int seen[N] = {0};
    for (;;) {
        queue_fetched *f;
        int n;
        CHECK(queue_fetch(q, "alive", lanes, 2, 64, 30000, &f, &n, &err) == 0);
        if (n == 0) break;
        queue_ack_item *items = calloc((size_t)n, sizeof *items);
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < N; k++)
                if (strcmp(queue_job_ukh(jobs[k]), f[i].ukh) == 0) seen[k]++;
            items[i] = (queue_ack_item){.ukh = f[i].ukh, .lane = f[i].lane, .lateness_ms = -1};
        }
        CHECK(queue_ack(q, "alive", items, n, NULL, &err) == 0);
        free(items);
        queue_fetched_free(f, n);
    }
    int once = 0, twice = 0;
    for (int k = 0; k < N; k++) {
        once += seen[k] == 1;
        twice += seen[k] > 1;
    }
    CHECK_INT(once, N - 20);
    CHECK_INT(twice, 0);
    /* the unknown ones: the late ack of the reaped worker resolves one as
     * sent; an operator resends another */
    char **u;
    int nu;
    CHECK(queue_list(q, "x:@a", "unknown", 0, 100, &u, &nu, &err) == 0);
    REQUIRE(nu > 1);
    queue_ack_item late = {.ukh = u[0], .lane = "x:@a", .lateness_ms = -1};
    int r;
    CHECK(queue_ack(q, "doomed", &late, 1, &r, &err) == 0);
    CHECK_INT(r, 2);
    CHECK_INT(queue_unknown_resolve(q, u[1], 0, NULL, &err), 1);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t9", "x:@a"), 1);
    queue_strv_free(u, nu);
    for (int i = 0; i < N; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

/* The in-flight record packs each lane's jobs in one field: acks in any
 * order, across lanes and with strangers, retry and bury from the middle,
 * attempt marks, and a reap that puts jobs back in their fetch order. */
static void test_inflight_record(void)
{
    queue *q = connect_q("t12");
    REQUIRE(q);
    hr_err err = {0};
    enum { N = 16 };
    queue_job *jobs[N];
    for (int i = 0; i < N; i++) jobs[i] = post("x", i % 2 ? "@a" : "@b", NULL, 0);
    CHECK(queue_enqueue(q, jobs, N, NULL, &err) == 0);
    const char *lanes[] = {"x:@a", "x:@b"};
    CHECK(queue_worker_register(q, "w", 30000, &err) == 0);
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w", lanes, 2, 10, 30000, &f, &n, &err) == 0);
    REQUIRE(n == 10);
    /* a[] and b[]: the fetched jobs of each lane, in fetch order */
    const queue_fetched *a[N], *b[N];
    int na = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(f[i].lane, "x:@a") == 0) a[na++] = &f[i];
        else b[nb++] = &f[i];
    }
    REQUIRE(na == 5 && nb == 5);
    queue_inflight_job *fj;
    int nfj;
    CHECK(queue_inflight(q, "w", &fj, &nfj, &err) == 0);
    CHECK_INT(nfj, 10);
    free(fj);

    /* attempt: only a job in flight */
    CHECK_INT(queue_attempt(q, "w", a[1]->ukh, &err), 0);
    char stranger[QUEUE_UKH_LEN + 1];
    snprintf(stranger, sizeof stranger, "%s", queue_job_ukh(jobs[N - 1])); /* still ready */
    CHECK_INT(queue_attempt(q, "w", stranger, &err), 1);
    CHECK(queue_inflight(q, "w", &fj, &nfj, &err) == 0);
    int started = 0;
    for (int i = 0; i < nfj; i++)
        if (fj[i].started_ms > 0) started += strcmp(fj[i].ukh, a[1]->ukh) == 0 ? 1 : 100;
    CHECK_INT(started, 1);
    free(fj);

    /* ack out of order across lanes, with a job that is not the worker's:
     * results come back in the caller's order */
    queue_ack_item items[5] = {
        {.ukh = b[3]->ukh, .lane = "x:@b", .lateness_ms = -1},
        {.ukh = a[1]->ukh, .lane = "x:@a", .lateness_ms = -1},
        {.ukh = stranger, .lane = "x:@a", .lateness_ms = -1},
        {.ukh = b[0]->ukh, .lane = "x:@b", .lateness_ms = -1},
        {.ukh = a[1]->ukh, .lane = "x:@a", .lateness_ms = -1},
    };
    int res[5] = {-1, -1, -1, -1, -1};
    CHECK(queue_ack(q, "w", items, 5, res, &err) == 0);
    CHECK_INT(res[0], 1);
    CHECK_INT(res[1], 1);
    CHECK_INT(res[2], 0);
    CHECK_INT(res[3], 1);
    CHECK_INT(res[4], 0); /* the same job twice: acked once */
    queue_job *kept = queue_get(q, stranger, &err); /* not the worker's: untouched */
    CHECK(kept != NULL);
    queue_job_free(kept);
    CHECK_INT(count("HGET {%s}:stats sent|%s", "t12", "x:@a"), 1);
    CHECK_INT(count("HGET {%s}:stats sent|%s", "t12", "x:@b"), 2);
    /* its attempt mark went with it */
    CHECK_INT(count("HEXISTS {%s}:inflight:w %s", "t12", a[1]->ukh), 0);

    /* retry and bury from the middle of a lane */
    queue_job *j = queue_job_decode_stored(a[2]->ukh, a[2]->value, a[2]->value_len, &err);
    REQUIRE(j);
    CHECK_INT(queue_retry(q, "w", j, hr_now_ms() + 60000, &err), 1);
    CHECK_INT(queue_retry(q, "w", j, hr_now_ms() + 60000, &err), 0);
    queue_job_free(j);
    CHECK_INT(queue_bury(q, "w", b[2]->ukh, "x:@b", NULL, "bad", &err), 1);
    CHECK_INT(queue_bury(q, "w", b[2]->ukh, "x:@b", NULL, "bad", &err), 0);
    CHECK(queue_inflight(q, "w", &fj, &nfj, &err) == 0);
    CHECK_INT(nfj, 5); /* a0 a3 a4 b1 b4 */
    free(fj);

    /* the rest in one ack, out of fetch order */
    queue_ack_item rest[5] = {
        {.ukh = a[4]->ukh, .lane = "x:@a", .lateness_ms = -1},
        {.ukh = b[1]->ukh, .lane = "x:@b", .lateness_ms = -1},
        {.ukh = a[0]->ukh, .lane = "x:@a", .lateness_ms = -1},
        {.ukh = b[4]->ukh, .lane = "x:@b", .lateness_ms = -1},
        {.ukh = a[3]->ukh, .lane = "x:@a", .lateness_ms = -1},
    };
    CHECK(queue_ack(q, "w", rest, 5, res, &err) == 0);
    for (int i = 0; i < 5; i++) CHECK_INT(res[i], 1);
    CHECK_INT(count("EXISTS {%s}:inflight:%s", "t12", "w"), 0);
    queue_fetched_free(f, n);

    /* a reaped worker's jobs go back to the front in fetch order; the one
     * whose attempt started to unknown */
    CHECK(queue_worker_register(q, "gone", 200, &err) == 0);
    CHECK(queue_fetch(q, "gone", lanes, 1, 10, 200, &f, &n, &err) == 0);
    REQUIRE(n == 3); /* what x:@a has left */
    CHECK_INT(queue_attempt(q, "gone", f[1].ukh, &err), 0);
    usleep(300000);
    long rq = 0, un = 0;
    CHECK(queue_reap(q, &rq, &un, &err) == 0);
    CHECK_INT(rq, 2);
    CHECK_INT(un, 1);
    char **front;
    int nf;
    CHECK(queue_list(q, "x:@a", "ready", 0, 10, &front, &nf, &err) == 0);
    REQUIRE(nf == 2);
    CHECK_STR(front[0], f[0].ukh);
    CHECK_STR(front[1], f[2].ukh);
    queue_strv_free(front, nf);
    CHECK(queue_list(q, "x:@a", "unknown", 0, 10, &front, &nf, &err) == 0);
    CHECK(nf == 1 && strcmp(front[0], f[1].ukh) == 0);
    queue_strv_free(front, nf);
    queue_fetched_free(f, n);
    for (int i = 0; i < N; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

/* fetched_from counts the jobs of lane among n fetched */
static int fetched_from(const queue_fetched *f, int n, const char *lane)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += strcmp(f[i].lane, lane) == 0;
    return c;
}

/* The fleet's circuit breaker in the lane's state hash: K failures from any
 * worker open it, an ack resets the count; open, fetch skips the lane while
 * others flow; half-open, one probe for all workers (another only after the
 * probe's deadline); the probe's failure opens it for twice as long, its
 * ack closes it. */
static void test_circuit(void)
{
    queue *q = connect_q("t13");
    REQUIRE(q);
    hr_err err = {0};
    enum { N = 20 };
    queue_job *jobs[2 * N];
    for (int i = 0; i < 2 * N; i++) jobs[i] = post("x", i < N ? "@c" : "@d", NULL, 0);
    CHECK(queue_enqueue(q, jobs, 2 * N, NULL, &err) == 0);
    const char *lanes[] = {"x:@c", "x:@d"};
    CHECK(queue_worker_register(q, "w1", 30000, &err) == 0);
    CHECK(queue_worker_register(q, "w2", 30000, &err) == 0);

    /* two failures, then a success anywhere: the run starts again */
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "w2", lanes, 1, 1, 30000, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    queue_ack_item it = {.ukh = f[0].ukh, .lane = f[0].lane, .lateness_ms = -1};
    CHECK(queue_ack(q, "w2", &it, 1, NULL, &err) == 0);
    queue_fetched_free(f, n);
    CHECK_INT(count("HGET {%s}:lane:%s c_fail", "t13", "x:@c"), 0);
    /* a worker's own success after its failures ends the run at once */
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_OK, 0, 0, 0, &err), 0);
    CHECK_INT(count("HGET {%s}:lane:%s c_fail", "t13", "x:@c"), 0);
    /* three in a row, from two workers: open */
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 1);
    char *st = th_redis_cmd(R, "HGET {t13}:lane:x:@c circuit");
    CHECK_STR(st, "open");
    free(st);
    /* a late failure while open only counts */
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 0);

    /* open: nothing from x:@c, x:@d flows */
    CHECK(queue_fetch(q, "w1", lanes, 2, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(fetched_from(f, n, "x:@c"), 0);
    CHECK_INT(fetched_from(f, n, "x:@d"), 10);
    queue_fetched_free(f, n);

    /* the open time is over: one probe, for both workers */
    free(th_redis_cmd(R, "HSET {t13}:lane:x:@c circuit_until_ms 1"));
    CHECK(queue_fetch(q, "w1", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 1);
    queue_fetched *g;
    int ng;
    CHECK(queue_fetch(q, "w2", lanes, 1, 10, 30000, &g, &ng, &err) == 0);
    CHECK_INT(ng, 0);
    queue_fetched_free(g, ng);
    st = th_redis_cmd(R, "HGET {t13}:lane:x:@c circuit");
    CHECK_STR(st, "half-open");
    free(st);
    /* the probe never reports (its worker died): after its deadline, another */
    free(th_redis_cmd(R, "HSET {t13}:lane:x:@c c_probe_until 1"));
    CHECK(queue_fetch(q, "w2", lanes, 1, 10, 30000, &g, &ng, &err) == 0);
    CHECK_INT(ng, 1);
    /* that probe fails: open again, for twice as long */
    CHECK_INT(queue_circuit(q, "x:@c", QUEUE_CIRCUIT_FAIL, 3, 60000, 0, &err), 2);
    CHECK_INT(count("HGET {%s}:lane:%s c_open_ms", "t13", "x:@c"), 120000);
    queue_fetched_free(g, ng);
    CHECK(queue_fetch(q, "w2", lanes, 1, 10, 30000, &g, &ng, &err) == 0);
    CHECK_INT(ng, 0);
    queue_fetched_free(g, ng);
    /* half-open again; this probe succeeds: closed, and the lane flows */
    free(th_redis_cmd(R, "HSET {t13}:lane:x:@c circuit_until_ms 1"));
    CHECK(queue_fetch(q, "w2", lanes, 1, 10, 30000, &g, &ng, &err) == 0);
    REQUIRE(ng == 1);
    it = (queue_ack_item){.ukh = g[0].ukh, .lane = g[0].lane, .lateness_ms = -1};
    CHECK(queue_ack(q, "w2", &it, 1, NULL, &err) == 0);
    queue_fetched_free(g, ng);
    st = th_redis_cmd(R, "HGET {t13}:lane:x:@c circuit");
    CHECK_STR(st, "closed");
    free(st);
    CHECK_INT(count("HGET {%s}:lane:%s c_fail", "t13", "x:@c"), 0);
    CHECK(queue_fetch(q, "w2", lanes, 1, 100, 30000, &g, &ng, &err) == 0);
    CHECK_INT(ng, N - 4); /* all but the first ack's job and the three probes */
    queue_fetched_free(g, ng);
    queue_fetched_free(f, n);
    CHECK(queue_circuit(q, "x", QUEUE_CIRCUIT_FAIL, 3, 0, 0, &err) < 0); /* not a lane */
    for (int i = 0; i < 2 * N; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

static void test_lease_lost_no_send(void)
{
    queue *q = connect_q("t10");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("x", "@a", NULL, 0);
    CHECK(queue_enqueue(q, &a, 1, NULL, &err) == 0);
    CHECK(queue_worker_register(q, "slow", 100, &err) == 0);
    const char *lanes[] = {"x:@a"};
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "slow", lanes, 1, 1, 100, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    usleep(200000);
    /* lease ended: the attempt is refused even before a reaper ran */
    CHECK_INT(queue_attempt(q, "slow", f[0].ukh, &err), 1);
    CHECK_INT(queue_heartbeat(q, "slow", 100, &err), 1);
    long rq, un;
    CHECK(queue_reap(q, &rq, &un, &err) == 0);
    CHECK_INT(rq, 1);
    CHECK_INT(un, 0);
    /* graceful unregister returns unstarted jobs */
    CHECK(queue_worker_register(q, "polite", 30000, &err) == 0);
    queue_fetched_free(f, n);
    CHECK(queue_fetch(q, "polite", lanes, 1, 1, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK(queue_worker_unregister(q, "polite", &err) == 0);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t10", "x:@a"), 1);
    queue_fetched_free(f, n);
    queue_job_free(a);
    queue_free(q);
}

static void test_suppression(void)
{
    queue *q = connect_q("t11");
    REQUIRE(q);
    hr_err err = {0};
    const char *secret = "0123456789abcdef0123";
    CHECK(queue_suppress_add(q, secret, " Ann@Example.COM ", "bounce", &err) == 0);
    CHECK_INT(queue_is_suppressed(q, secret, "ann@example.com", &err), 1);
    CHECK_INT(queue_is_suppressed(q, secret, "bob@example.com", &err), 0);
    /* an address that does not normalise is never reported clear */
    CHECK_INT(queue_is_suppressed(q, secret, "not an address", &err), -1);
    CHECK(strstr(err.msg, "not an email address") != NULL);
    char *s = th_redis_cmd(R, "HKEYS {t11}:suppressed");
    CHECK(s && strstr(s, "ann") == NULL && strlen(s) == 64); /* a hash, not the address */
    free(s);
    char norm[64];
    CHECK(queue_email_normalize("not an address", norm, sizeof norm) < 0);
    CHECK(queue_email_normalize("a@b", norm, sizeof norm) < 0);
    /* the reason names what is wrong, never the address */
    CHECK_STR(queue_email_check(" ", norm, sizeof norm), "no email address");
    CHECK_STR(queue_email_check("bob@", norm, sizeof norm),
              "not an email address: nothing after the @");
    CHECK_STR(queue_email_check("a@b@c.d", norm, sizeof norm),
              "not an email address: more than one @");
    CHECK_STR(queue_email_check("a@b", norm, sizeof norm),
              "not an email address: no dot in the domain");
    CHECK(queue_email_check(" Ann@Example.COM ", norm, sizeof norm) == NULL);
    CHECK_STR(norm, "ann@example.com");
    queue_free(q);
}

static void test_url(void)
{
    hr_err err = {0};
    char url[400];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", R->port);
    queue_opts o = {.url = url, .ns = "t12"};
    queue *q = queue_connect(&o, &err);
    REQUIRE(q);
    queue_job *a = post("x", "@a", NULL, 0);
    CHECK(queue_enqueue(q, &a, 1, NULL, &err) == 0);
    char *s = th_redis_cmd(R, "SELECT 3");
    free(s);
    queue_job_free(a);
    queue_free(q);
    o.url = "redis://127.0.0.1:1/0";
    hr_err_clear(&err);
    CHECK(queue_connect(&o, &err) == NULL);
    CHECK(strstr(err.msg, "connect") != NULL);
    o.url = "http://nope";
    CHECK(queue_connect(&o, &err) == NULL);
    o.url = url;
    o.ns = "bad{ns}";
    CHECK(queue_connect(&o, &err) == NULL);
}

/* Redis restarts between calls: the sync handle reconnects by itself. */
static void test_reconnect(void)
{
    queue *q = connect_q("t13");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *a = post("x", "@a", NULL, 0);
    CHECK(queue_enqueue(q, &a, 1, NULL, &err) == 0);
    th_redis_restart(R); /* no persistence in tests: data is gone, scripts too */
    queue_job *b = post("x", "@a", NULL, 0);
    CHECK(queue_enqueue(q, &b, 1, NULL, &err) == 0); /* NOSCRIPT handled */
    CHECK_INT(count("LLEN {%s}:ready:%s", "t13", "x:@a"), 1);
    queue_job_free(a);
    queue_job_free(b);
    queue_free(q);
}

/* Found in review: the same plain job enqueued twice (a retry after an
 * error) must not be queued twice; counts must match each lane; a retry
 * that arrives after a reap settles the job from the unknown set; acks of
 * more jobs than one script takes are split. */
static void test_review_fixes(void)
{
    queue *q = connect_q("t14");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *p = post("x", "@a", NULL, 0);
    CHECK(queue_enqueue(q, &p, 1, NULL, &err) == 0);
    CHECK(queue_enqueue(q, &p, 1, NULL, &err) == 0);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t14", "x:@a"), 1);
    queue_job *later = post("x", "@a", NULL, hr_now_ms() + 600000);
    CHECK(queue_enqueue(q, &later, 1, NULL, &err) == 0);
    CHECK(queue_enqueue(q, &later, 1, NULL, &err) == 0);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t14", "x:@a"), 1);

    /* counts over several lanes, with the oldest ready time */
    int64_t past = hr_now_ms() - 5000; /* due already: straight to ready */
    queue_job *b1 = post("y", "@b", NULL, past), *b2 = post("y", "@b", NULL, past + 1);
    queue_job *bb[] = {b1, b2};
    CHECK(queue_enqueue(q, bb, 2, NULL, &err) == 0);
    queue_lane_counts *c;
    int nc;
    CHECK(queue_counts(q, &c, &nc, &err) == 0);
    REQUIRE(nc == 2);
    CHECK_STR(c[0].lane, "x:@a");
    CHECK_INT(c[0].ready, 1);
    CHECK_INT(c[0].scheduled, 1);
    CHECK_STR(c[1].lane, "y:@b");
    CHECK_INT(c[1].ready, 2);
    CHECK_INT(c[1].scheduled, 0);
    CHECK_INT(c[1].oldest_ready_ms, past); /* the head of the lane */
    /* x:@a's ready job had no run_at: it has waited since its creation */
    CHECK(c[0].oldest_ready_ms > 0 && c[0].oldest_ready_ms <= hr_now_ms());
    free(c);

    /* a retry after the worker was reaped mid-send */
    CHECK(queue_worker_register(q, "gone", 50, &err) == 0);
    const char *lanes[] = {"x:@a"};
    queue_fetched *f;
    int n;
    CHECK(queue_fetch(q, "gone", lanes, 1, 1, 50, &f, &n, &err) == 0);
    REQUIRE(n == 1);
    CHECK_INT(queue_attempt(q, "gone", f[0].ukh, &err), 0);
    usleep(100000);
    long rq, un;
    CHECK(queue_reap(q, &rq, &un, &err) == 0);
    CHECK_INT(un, 1);
    queue_job *j = queue_job_decode_stored(f[0].ukh, f[0].value, f[0].value_len, &err);
    REQUIRE(j);
    j->attempt = 1;
    CHECK_INT(queue_retry(q, "gone", j, hr_now_ms() + 1000, &err), 1);
    CHECK_INT(count("ZCARD {%s}:unknown:%s", "t14", "x:@a"), 0);
    CHECK_INT(count("ZCARD {%s}:retry:%s", "t14", "x:@a"), 1);
    queue_job_free(j);
    queue_fetched_free(f, n);

    /* 2500 acks in one call */
    enum { M = 2500 };
    queue_job **m = calloc(M, sizeof *m);
    for (int i = 0; i < M; i++) {
        char key[32];
        snprintf(key, sizeof key, "big|%d", i);
        m[i] = post("z", "@c", key, 0);
    }
    CHECK(queue_enqueue(q, m, M, NULL, &err) == 0);
    CHECK(queue_worker_register(q, "big", 60000, &err) == 0);
    const char *zl[] = {"z:@c"};
    queue_ack_item *items = calloc(M, sizeof *items);
    queue_fetched *all[16];
    int na[16], nb = 0, total = 0;
    while (total < M && nb < 16) {
        CHECK(queue_fetch(q, "big", zl, 1, 1000, 60000, &all[nb], &na[nb], &err) == 0);
        for (int i = 0; i < na[nb]; i++)
            items[total + i] = (queue_ack_item){.ukh = all[nb][i].ukh, .lane = "z:@c", .lateness_ms = -1};
        total += na[nb++];
    }
    CHECK_INT(total, M);
    int *res = calloc(M, sizeof *res);
    CHECK(queue_ack(q, "big", items, M, res, &err) == 0);
    int ok = 0;
    for (int i = 0; i < M; i++) ok += res[i] == 1;
    CHECK_INT(ok, M);
    CHECK_INT(count("HLEN {%s}:done%s", "t14", ""), M);
    for (int i = 0; i < nb; i++) queue_fetched_free(all[i], na[i]);
    for (int i = 0; i < M; i++) queue_job_free(m[i]);
    free(m);
    free(items);
    free(res);
    queue_job_free(p);
    queue_job_free(later);
    queue_job_free(b1);
    queue_job_free(b2);
    queue_free(q);
}

/* count_res counts the results in res[from, to) equal to code */
/* new_txn runs queue_enqueue_new_append's commands in MULTI/EXEC on q's
 * connection and reads the results; returns queue_enqueue_new_results' */
static int new_txn(queue *q, queue_job **jobs, int n, int *res, hr_err *err)
{
    redisContext *c = queue_redis(q);
    redisAppendCommand(c, "MULTI");
    int ncmds = 0;
    queue_enqueue_batch *b = queue_enqueue_new_append(q, jobs, n, &ncmds, err);
    if (!b) return -1;
    redisAppendCommand(c, "EXEC");
    redisReply *r = NULL;
    for (int i = 0; i < ncmds + 2; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK) return -1;
        if (i < ncmds + 1) freeReplyObject(r);
    }
    int rc = queue_enqueue_new_results(b, r, 0, res, err);
    freeReplyObject(r);
    return rc;
}

/* The bulk path for jobs known new: plain commands in the caller's
 * MULTI/EXEC store and schedule them, move each lane's due entry only
 * earlier, and report ADDED; a lane whose scheduled set has the wrong type
 * makes its jobs STORED (stored, never scheduled), the others ADDED. */
static void test_enqueue_new(void)
{
    queue *q = connect_q("tn");
    REQUIRE(q);
    hr_err err = {0};
    int64_t t = hr_now_ms() + 3600000;
    free(th_redis_cmd(R, "ZADD {tn}:due %lld s|x:@shop", (long long)t + 5));
    queue_job *jobs[] = {post("x", "@shop", "c1|a|x", t + 10), post("x", "@shop", "c1|b|x", t + 20),
                         post("mastodon", "@m@e.x", "c1|a|m", t + 30)};
    int res[3];
    CHECK(new_txn(q, jobs, 3, res, &err) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_INT(res[i], QUEUE_ADDED);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "tn", "x:@shop"), 2);
    CHECK_INT(count("HLEN {%s}:jobs%s", "tn", ""), 3);
    CHECK_INT(count("SCARD {%s}:lanes%s", "tn", ""), 2);
    CHECK_INT(count("ZSCORE {%s}:due s|%s", "tn", "x:@shop"), t + 5); /* LT: kept */
    CHECK_INT(count("ZSCORE {%s}:due s|%s", "tn", "mastodon:@m@e.x"), t + 30);
    queue_job *g = queue_get(q, jobs[1]->id, &err);
    REQUIRE(g);
    CHECK_STR(g->text, "hello");
    CHECK_INT(g->run_at_ms, t + 20);
    queue_job_free(g);
    for (int i = 0; i < 3; i++)
        queue_job_free(jobs[i]);

    free(th_redis_cmd(R, "SET {tn}:sched:x:@other wrongtype"));
    queue_job *more[] = {post("x", "@other", "c1|c|xo", t), post("x", "@shop", "c1|c|x", t)};
    CHECK(new_txn(q, more, 2, res, &err) < 0);
    CHECK(strstr(err.msg, "WRONGTYPE") && strstr(err.msg, "x:@other"));
    CHECK_INT(res[0], QUEUE_STORED);
    CHECK_INT(res[1], QUEUE_ADDED);
    CHECK_INT(count("HLEN {%s}:jobs%s", "tn", ""), 5);
    for (int i = 0; i < 2; i++)
        queue_job_free(more[i]);
    queue_free(q);
}

static int count_res(const int *res, int from, int to, int code)
{
    int n = 0;
    for (int i = from; i < to; i++)
        n += res[i] == code;
    return n;
}

/* A batch of more than 1000 jobs is several script calls; when one fails
 * (a lane's key of the wrong type), the others still run: results tell
 * each job's fate, and the failed call wrote nothing (not even half). */
static void test_enqueue_failed_chunk(void)
{
    queue *q = connect_q("t30");
    REQUIRE(q);
    hr_err err = {0};
    int64_t later = hr_now_ms() + 3600000;
    enum { N = 1501 }; /* 1000 on x:@a, 500 on x:@b, job 0 again on x:@a */
    queue_job *jobs[N];
    int res[N];
    char key[64];

    /* the second call fails: the first one's jobs stay and are told */
    free(th_redis_cmd(R, "SET {t30}:sched:x:@b wrongtype"));
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "c1|k%d", i == N - 1 ? 0 : i);
        jobs[i] = post("x", i < 1000 || i == N - 1 ? "@a" : "@b", key, later + i);
    }
    memset(res, 0, sizeof res);
    CHECK(queue_enqueue(q, jobs, N, res, &err) < 0);
    CHECK(strstr(err.msg, "WRONGTYPE") != NULL);
    CHECK(strstr(err.msg, "(500 jobs, of lane x:@b, not written)") != NULL);
    CHECK_INT(res[0], QUEUE_UPDATED); /* replaced by its twin, which ran */
    CHECK_INT(count_res(res, 1, 1000, QUEUE_ADDED), 999);
    CHECK_INT(count_res(res, 1000, 1500, QUEUE_FAILED), 500);
    CHECK_INT(res[N - 1], QUEUE_ADDED);
    CHECK_INT(count("HLEN {%s}:jobs%s", "t30", ""), 1000);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t30", "x:@a"), 1000);
    for (int i = 0; i < N; i++)
        queue_job_free(jobs[i]);

    /* the first call fails, the second runs all the same: job 1000 is due
     * now (the script's slower path), its twin in the failed call too */
    queue_free(q);
    q = connect_q("t31");
    REQUIRE(q);
    free(th_redis_cmd(R, "SET {t31}:sched:x:@a wrongtype"));
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "c1|k%d", i == N - 1 ? 0 : i);
        jobs[i] = post("x", i < 1000 || i == N - 1 ? "@a" : "@b", key, i == 1000 ? 0 : later + i);
    }
    memset(res, 0, sizeof res);
    CHECK(queue_enqueue(q, jobs, N, res, &err) < 0);
    CHECK(strstr(err.msg, "(1000 jobs, of lane x:@a, not written)") != NULL);
    CHECK_INT(res[0], QUEUE_FAILED); /* its twin's call failed */
    CHECK_INT(count_res(res, 1, 1000, QUEUE_FAILED), 999);
    CHECK_INT(count_res(res, 1000, 1500, QUEUE_ADDED), 500);
    CHECK_INT(res[N - 1], QUEUE_FAILED);
    CHECK_INT(count("HLEN {%s}:jobs%s", "t31", ""), 500);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t31", "x:@b"), 499);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t31", "x:@b"), 1);
    for (int i = 0; i < N; i++)
        queue_job_free(jobs[i]);

    /* one call whose last write would fail (a job due now, a ready list of
     * the wrong type): it writes nothing, and runs once the key is fixed */
    queue_free(q);
    q = connect_q("t32");
    REQUIRE(q);
    free(th_redis_cmd(R, "SET {t32}:ready:x:@c wrongtype"));
    queue_job *two[] = {post("x", "@c", "c1|later", later), post("x", "@c", "c1|now", 0)};
    CHECK(queue_enqueue(q, two, 2, res, &err) < 0);
    CHECK(strstr(err.msg, "WRONGTYPE") != NULL);
    CHECK_INT(res[0], QUEUE_FAILED);
    CHECK_INT(res[1], QUEUE_FAILED);
    CHECK_INT(count("HLEN {%s}:jobs%s", "t32", ""), 0);
    CHECK_INT(count("ZCARD {%s}:sched:%s", "t32", "x:@c"), 0);
    free(th_redis_cmd(R, "DEL {t32}:ready:x:@c"));
    CHECK(queue_enqueue(q, two, 2, res, &err) == 0);
    CHECK_INT(res[0], QUEUE_ADDED);
    CHECK_INT(res[1], QUEUE_ADDED);
    CHECK_INT(count("LLEN {%s}:ready:%s", "t32", "x:@c"), 1);
    queue_job_free(two[0]);
    queue_job_free(two[1]);
    queue_free(q);
}

/* fetch_ids fetches n jobs of lane for worker into f and their full ids */
static int fetch_ids(queue *q, const char *worker, const char *lane, int n, queue_fetched **f,
                     char ids[][QUEUE_ID_LEN + 1])
{
    hr_err err = {0};
    const char *lanes[] = {lane};
    int nf = 0;
    if (queue_fetch(q, worker, lanes, 1, n, 60000, f, &nf, &err) != 0) return -1;
    for (int i = 0; i < nf; i++) {
        queue_job *j = queue_get(q, (*f)[i].ukh, &err);
        snprintf(ids[i], QUEUE_ID_LEN + 1, "%s", j ? j->id : "");
        queue_job_free(j);
    }
    return nf;
}

/* owner_is: whether {ns}:platform_ids names job id, of campaign c, as the
 * owner of X post pid */
static int owner_is(const char *ns, const char *pid, const char *id, const char *c)
{
    char *v = th_redis_cmd(R, "HGET {%s}:platform_ids x:%s", ns, pid);
    char want[200];
    snprintf(want, sizeof want, "%s\t%s", id, c);
    int ok = v && strcmp(v, want) == 0;
    free(v);
    return ok;
}

/* A post that becomes sent, acked or resolved, gets its platform id and
 * its engagement polls in the same script; a job not the worker's gets
 * neither, and one platform id never settles two jobs. */
static void test_sent_records(void)
{
    queue *q = connect_q("t40");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *jobs[] = {post("x", "@a", "k0", 0), post("x", "@a", "k1", 0),
                         post("x", "@a", "k2", 0), post("x", "@b", "k3", 0),
                         post("x", "@a", "k4", 0), post("x", "@a", "k5", 0)};
    CHECK(queue_enqueue(q, jobs, 6, NULL, &err) == 0);
    for (int i = 0; i < 6; i++) queue_job_free(jobs[i]);
    const int64_t polls[] = {3600000, 7200000};
    queue_set_polls(q, polls, 2);
    CHECK(queue_worker_register(q, "w", 60000, &err) == 0);
    queue_fetched *fa = NULL, *fb = NULL;
    char a[3][QUEUE_ID_LEN + 1], b[1][QUEUE_ID_LEN + 1];
    REQUIRE(fetch_ids(q, "w", "x:@a", 3, &fa, a) == 3);
    REQUIRE(fetch_ids(q, "w", "x:@b", 1, &fb, b) == 1);
    int64_t before = hr_now_ms();
    /* one by one (a stranger in the batch): a post, an email-like job (no
     * polls), one without a platform id, and one that is not ours */
    queue_ack_item items[4] = {
        {.ukh = fa[0].ukh, .id = a[0], .lane = "x:@a", .platform_id = "p0", .campaign = "c1",
         .poll = 1, .lateness_ms = -1},
        {.ukh = fa[1].ukh, .id = a[1], .lane = "x:@a", .platform_id = "p1", .lateness_ms = -1},
        {.ukh = fa[2].ukh, .id = a[2], .lane = "x:@a", .lateness_ms = -1},
        {.ukh = "AAAAAAAAAAAA", .lane = "x:@a", .platform_id = "ps", .poll = 1,
         .lateness_ms = -1},
    };
    int res[4];
    CHECK(queue_ack(q, "w", items, 4, res, &err) == 0);
    CHECK_INT(res[3], 0);
    CHECK_INT(count("HLEN {%s}:platform_ids%s", "t40", ""), 2);
    CHECK(owner_is("t40", "p0", a[0], "c1"));
    CHECK(owner_is("t40", "p1", a[1], ""));
    CHECK_INT(count("ZCARD {%s}:polls%s", "t40", ""), 2);
    char member[200];
    snprintf(member, sizeof member, "x:@a\tp0\t%s\tc1\t1", a[0]);
    char *v = th_redis_cmd(R, "ZSCORE {t40}:polls %s", member);
    CHECK(v && atoll(v) >= before + 7200000 - 60000 && atoll(v) <= hr_now_ms() + 7200000 + 60000);
    free(v);
    /* the common case, all ours in fetch order */
    queue_ack_item one = {.ukh = fb[0].ukh, .id = b[0], .lane = "x:@b", .platform_id = "pb",
                          .poll = 1, .lateness_ms = -1};
    CHECK(queue_ack(q, "w", &one, 1, res, &err) == 0);
    CHECK_INT(res[0], 1);
    CHECK_INT(count("HLEN {%s}:platform_ids%s", "t40", ""), 3);
    CHECK_INT(count("ZCARD {%s}:polls%s", "t40", ""), 4);
    queue_fetched_free(fa, 3);
    queue_fetched_free(fb, 1);

    /* resolved as sent from unknown: recorded alike; another job with the
     * same platform id is refused (2) and stays unknown */
    char u[2][QUEUE_ID_LEN + 1];
    queue_fetched *fu = NULL;
    CHECK(queue_worker_register(q, "gone", 60000, &err) == 0);
    REQUIRE(fetch_ids(q, "gone", "x:@a", 2, &fu, u) == 2);
    for (int i = 0; i < 2; i++) CHECK_INT(queue_attempt(q, "gone", fu[i].ukh, &err), 0);
    queue_fetched_free(fu, 2);
    CHECK(queue_worker_unregister(q, "gone", &err) == 0);
    CHECK_INT(count("ZCARD {%s}:unknown:%s", "t40", "x:@a"), 2);
    CHECK_INT(queue_unknown_resolve(q, u[0], 1, "pu", &err), 1);
    CHECK_INT(queue_unknown_resolve(q, u[1], 1, "pu", &err), 2);
    CHECK_INT(queue_unknown_resolve(q, u[1], 1, "p0", &err), 2); /* acked above */
    CHECK_INT(queue_unknown_resolve(q, u[0], 1, "pu", &err), 0); /* settled already */
    CHECK_INT(count("ZCARD {%s}:unknown:%s", "t40", "x:@a"), 1);
    CHECK(owner_is("t40", "pu", u[0], "c1"));
    CHECK_INT(count("ZCARD {%s}:polls%s", "t40", ""), 6);
    /* without a platform id (an email's webhook evidence): nothing more */
    CHECK_INT(queue_unknown_resolve(q, u[1], 1, NULL, &err), 1);
    CHECK_INT(count("HLEN {%s}:platform_ids%s", "t40", ""), 4);
    CHECK_INT(count("ZCARD {%s}:polls%s", "t40", ""), 6);
    queue_free(q);
}

/* The ack script is where a post's owner is checked: a platform id that
 * another job owns, or that an earlier job of the same call claims (two
 * read-backs found one post), is refused (QUEUE_ACK_TAKEN) and that job is
 * left in flight, unrecorded, to be acked again with its own post. */
static void test_ack_taken(void)
{
    queue *q = connect_q("t41");
    REQUIRE(q);
    hr_err err = {0};
    queue_job *jobs[] = {post("x", "@a", "t0", 0), post("x", "@a", "t1", 0),
                         post("x", "@a", "t2", 0), post("x", "@a", "t3", 0)};
    CHECK(queue_enqueue(q, jobs, 4, NULL, &err) == 0);
    for (int i = 0; i < 4; i++) queue_job_free(jobs[i]);
    const int64_t polls[] = {3600000};
    queue_set_polls(q, polls, 1);
    CHECK(queue_worker_register(q, "w", 60000, &err) == 0);
    queue_fetched *f = NULL;
    char a[4][QUEUE_ID_LEN + 1];
    REQUIRE(fetch_ids(q, "w", "x:@a", 4, &f, a) == 4);
    queue_ack_item it[4];
    for (int i = 0; i < 4; i++)
        it[i] = (queue_ack_item){.ukh = f[i].ukh, .id = a[i], .lane = "x:@a",
                                 .platform_id = "p0", .campaign = "c1", .poll = 1,
                                 .lateness_ms = -1};
    /* two of one call claim one post (in fetch order: the fast path); the
     * refused one's lateness counts when it is acked, not now */
    it[1].lateness_ms = 0;
    int res[4] = {-1, -1, -1, -1};
    CHECK(queue_ack(q, "w", it, 2, res, &err) == 0);
    CHECK_INT(res[0], 1);
    CHECK_INT(res[1], QUEUE_ACK_TAKEN);
    CHECK_INT(count("HGET {%s}:stats lat|%s", "t41", "0"), 0);
    /* one alone claims a post another job owns */
    CHECK(queue_ack(q, "w", it + 2, 1, res + 2, &err) == 0);
    CHECK_INT(res[2], QUEUE_ACK_TAKEN);
    CHECK_INT(count("HLEN {%s}:done%s", "t41", ""), 1);
    CHECK_INT(count("HLEN {%s}:platform_ids%s", "t41", ""), 1);
    CHECK_INT(count("ZCARD {%s}:polls%s", "t41", ""), 1);
    CHECK_INT(count("HGET {%s}:stats sent|%s", "t41", "x:@a"), 1);
    CHECK(owner_is("t41", "p0", a[0], "c1"));
    for (int i = 1; i < 3; i++) CHECK_INT(count("HEXISTS {%s}:jobs %s", "t41", f[i].ukh), 1);
    char *v = th_redis_cmd(R, "HGET {t41}:inflight:w x:@a");
    CHECK(v && strlen(v) == 3 * QUEUE_UKH_LEN && strstr(v, f[1].ukh) && strstr(v, f[2].ukh));
    free(v);
    /* still the worker's: acked with their own posts, all at once */
    it[1].platform_id = "p1";
    it[2].platform_id = "p2";
    it[3].platform_id = "p3";
    CHECK(queue_ack(q, "w", it + 1, 3, res + 1, &err) == 0);
    for (int i = 1; i < 4; i++) CHECK_INT(res[i], 1);
    CHECK_INT(count("HGET {%s}:stats lat|%s", "t41", "0"), 1);
    CHECK_INT(count("HLEN {%s}:done%s", "t41", ""), 4);
    CHECK_INT(count("HLEN {%s}:platform_ids%s", "t41", ""), 4);
    CHECK_INT(count("HGET {%s}:stats sent|%s", "t41", "x:@a"), 4);
    CHECK_INT(count("EXISTS {%s}:inflight:w%s", "t41", ""), 0);
    /* refused, and no longer the worker's (settled, or reaped and resolved):
     * not ours (0), not "taken" (3) */
    it[2].platform_id = "p1";
    CHECK(queue_ack(q, "w", it + 2, 1, res + 2, &err) == 0);
    CHECK_INT(res[2], 0);
    queue_fetched_free(f, 4);
    queue_free(q);
}

int main(void)
{
    R = th_redis_start(1, NULL);
    th_run("enqueue_dedupe", test_enqueue_dedupe);
    th_run("done_never_resent", test_done_never_resent);
    th_run("promote", test_promote);
    th_run("two_promoters", test_two_promoters);
    th_run("fetch_lanes_pause", test_fetch_lanes_pause);
    th_run("corrupt_blob_dead", test_corrupt_blob_dead);
    th_run("retry_bury_dead_retry", test_retry_bury_dead_retry);
    th_run("cancel", test_cancel);
    th_run("killed_worker", test_killed_worker);
    th_run("inflight_record", test_inflight_record);
    th_run("circuit", test_circuit);
    th_run("lease_lost_no_send", test_lease_lost_no_send);
    th_run("suppression", test_suppression);
    th_run("url", test_url);
    th_run("review_fixes", test_review_fixes);
    th_run("reconnect", test_reconnect);
    th_run("enqueue_failed_chunk", test_enqueue_failed_chunk);
    th_run("enqueue_new", test_enqueue_new);
    th_run("sent_records", test_sent_records);
    th_run("ack_taken", test_ack_taken);
    return th_main_end();
}
