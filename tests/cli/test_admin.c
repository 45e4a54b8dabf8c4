/* test_admin.c: the operator commands against known queue contents: stats
 * (--json, --prometheus), jobs list/show/cancel, dead list/show/retry/purge,
 * pause/resume, and config check's errors with line numbers; exit codes as
 * docs/operations.md documents them. */
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

static queue_job *mk(const char *platform, const char *account, const char *campaign,
                     const char *title, int64_t run_at_ms)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_POST;
    queue_set(&j->platform, platform);
    queue_set(&j->account, account);
    queue_set(&j->campaign, campaign);
    queue_set(&j->title, title);
    queue_set(&j->text, title);
    char key[200];
    snprintf(key, sizeof key, "%s|%s|%s", campaign, platform, title);
    queue_set(&j->unique_key, key);
    j->run_at_ms = run_at_ms;
    j->max_attempts = 5;
    return j;
}

static char ids[8][QUEUE_ID_LEN + 1];

/* setup: x:@a has 2 scheduled, 3 ready (one then in flight), one dead and
 * one retrying; mastodon:@m has 1 ready (campaign c2). */
static void setup(void)
{
    int64_t now = hr_now_ms();
    queue_job *jobs[8] = {
        mk("x", "@a", "c1", "later one", now + 3600000),
        mk("x", "@a", "c1", "later two", now + 7200000),
        mk("x", "@a", "c1", "now one", now - 5000),
        mk("x", "@a", "c1", "now two", now - 4000),
        mk("x", "@a", "c1", "now three", now - 3000),
        mk("mastodon", "@m", "c2", "toot", now - 2000),
        mk("x", "@a", "c1", "to bury", now - 6000),
        mk("x", "@a", "c1", "to retry", now - 7000),
    };
    hr_err err = {0};
    /* first the two to bury and retry: fetched, then settled */
    CHECK(queue_enqueue(Q, jobs + 6, 2, NULL, &err) == 0);
    CHECK(queue_worker_register(Q, "w1", 60000, &err) == 0);
    const char *lanes[] = {"x:@a"};
    queue_fetched *f;
    int nf;
    CHECK(queue_fetch(Q, "w1", lanes, 1, 2, 60000, &f, &nf, &err) == 0);
    for (int i = 0; i < nf; i++) {
        queue_job *j = queue_job_decode_stored(f[i].ukh, f[i].value, f[i].value_len, &err);
        if (j && strcmp(j->title, "to bury") == 0)
            CHECK(queue_bury(Q, "w1", f[i].ukh, f[i].lane, j, "x: 403 duplicate content", &err) == 1);
        else if (j)
            CHECK(queue_retry(Q, "w1", j, now + 600000, &err) == 1);
        queue_job_free(j);
    }
    queue_fetched_free(f, nf);
    /* then the rest; the oldest ready one ("now one") stays in flight */
    CHECK(queue_enqueue(Q, jobs, 6, NULL, &err) == 0);
    CHECK(queue_fetch(Q, "w1", lanes, 1, 1, 60000, &f, &nf, &err) == 0);
    queue_fetched_free(f, nf);
    for (int i = 0; i < 8; i++)
        snprintf(ids[i], sizeof ids[i], "%s", jobs[i]->id);
    for (int i = 0; i < 8; i++)
        queue_job_free(jobs[i]);
}

static json_t *lane_of(json_t *stats, const char *lane)
{
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(stats, "lanes"), i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "lane")), lane) == 0) return l;
    }
    return NULL;
}

static long jint(json_t *o, const char *k)
{
    return (long)json_integer_value(json_object_get(o, k));
}

static void test_stats(void)
{
    char *out;
    CHECK_INT(herald(&out, "stats", "--json", NULL), 0);
    json_t *s = json_loads(out, 0, NULL);
    REQUIRE(s);
    json_t *x = lane_of(s, "x:@a"), *m = lane_of(s, "mastodon:@m");
    REQUIRE(x && m);
    CHECK_INT(jint(x, "scheduled"), 2);
    CHECK_INT(jint(x, "ready"), 2);
    CHECK_INT(jint(x, "inflight"), 1);
    CHECK_INT(jint(x, "retrying"), 1);
    CHECK_INT(jint(x, "dead"), 1);
    CHECK_INT(jint(x, "unknown"), 0);
    CHECK_INT(jint(m, "ready"), 1);
    CHECK_STR(json_string_value(json_object_get(x, "platform")), "x");
    CHECK_STR(json_string_value(json_object_get(x, "circuit")), "closed");
    /* the oldest ready job of x:@a was due 4 s ago */
    CHECK(json_real_value(json_object_get(x, "oldest_ready_age_s")) >= 3.0);
    CHECK_INT(jint(json_object_get(x, "failed"), "1h"), 1);
    CHECK_INT(jint(json_object_get(x, "retried"), "1h"), 1);
    /* the budget cap comes from the account line */
    CHECK(json_real_value(json_object_get(json_object_get(x, "budget"), "limit_day")) == 2.5);
    json_t *t = json_object_get(s, "totals");
    CHECK_INT(jint(t, "ready"), 3);
    CHECK_INT(jint(t, "scheduled"), 2);
    json_t *px = json_object_get(json_object_get(s, "platforms"), "x");
    CHECK_INT(jint(px, "ready"), 2);
    CHECK_INT(jint(px, "dead"), 1);
    CHECK_INT(jint(json_object_get(json_object_get(s, "platforms"), "mastodon"), "ready"), 1);
    json_decref(s);
    free(out);

    CHECK_INT(herald(&out, "stats", "--json", "--platform", "mastodon", NULL), 0);
    s = json_loads(out, 0, NULL);
    CHECK_INT(json_array_size(json_object_get(s, "lanes")), 1);
    json_decref(s);
    free(out);

    CHECK_INT(herald(&out, "stats", NULL), 0);
    CHECK(out && strstr(out, "x:@a") && strstr(out, "TOTAL"));
    free(out);

    CHECK_INT(herald(&out, "stats", "--prometheus", NULL), 0);
    CHECK(out && strstr(out, "herald_queue_depth{platform=\"x\",lane=\"x:@a\",state=\"ready\"} 2"));
    CHECK(out && strstr(out, "herald_queue_depth{platform=\"x\",lane=\"x:@a\",state=\"dead\"} 1"));
    CHECK(out && strstr(out, "herald_sends_total{platform=\"x\",outcome=\"dead\"} 1"));
    CHECK(out && strstr(out, "herald_circuit_open{lane=\"x:@a\"} 0"));
    CHECK(out && strstr(out, "herald_budget_limit{lane=\"x:@a\",period=\"day\"} 2.5"));
    CHECK(out && strstr(out, "# TYPE herald_job_lateness_seconds histogram"));
    free(out);

    CHECK_INT(herald(NULL, "stats", "--bogus", NULL), 2);
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++) n++;
    return n;
}

/* the /metrics text is well formed (tests/harness: th_check_exposition):
 * each family has HELP and TYPE; the send-duration histogram has every
 * bucket although the workers wrote only the ones that counted; lateness has
 * its _sum; engagement totals are exported per type. */
static void test_exposition(void)
{
    free(th_redis_cmd(R, "HSET {t}:sendtime x|250 3 x|sum_ms 600 mastodon|10 1 mastodon|inf 1 "
                         "mastodon|sum_ms 6000"));
    free(th_redis_cmd(R, "HSET {t}:stats lat|3 2 lat|sum_ms 14"));
    free(th_redis_cmd(R, "HSET {t}:eng:totals delivered 30 open 4 unmatched 2 duplicate 1"));
    char *out = NULL;
    CHECK_INT(herald(&out, "stats", "--prometheus", NULL), 0);
    REQUIRE(out);
    char *problem = th_check_exposition(out);
    if (problem) fprintf(stderr, "exposition: %s\n", problem);
    CHECK(problem == NULL);
    free(problem);
    CHECK_INT(count_of(out, "herald_send_duration_seconds_bucket{platform=\"x\""),
              QUEUE_SEND_BUCKETS + 1);
    CHECK_INT(count_of(out, "herald_send_duration_seconds_bucket{platform=\"mastodon\""),
              QUEUE_SEND_BUCKETS + 1);
    CHECK(strstr(out, "herald_send_duration_seconds_bucket{platform=\"x\",le=\"0.1\"} 0\n"));
    CHECK(strstr(out, "herald_send_duration_seconds_bucket{platform=\"x\",le=\"0.25\"} 3\n"));
    CHECK(strstr(out, "herald_send_duration_seconds_bucket{platform=\"x\",le=\"+Inf\"} 3\n"));
    CHECK(strstr(out, "herald_send_duration_seconds_sum{platform=\"x\"} 0.600\n"));
    CHECK(strstr(out, "herald_send_duration_seconds_count{platform=\"mastodon\"} 2\n"));
    CHECK_INT(count_of(out, "herald_job_lateness_seconds_bucket{"), QUEUE_LATENESS_BUCKETS);
    CHECK(strstr(out, "herald_job_lateness_seconds_sum 0.014\n"));
    CHECK(strstr(out, "herald_engagement_events_total{type=\"open\"} 4\n"));
    CHECK(strstr(out, "herald_engagement_events_total{type=\"delivered\"} 30\n"));
    CHECK(!strstr(out, "type=\"unmatched\""));
    free(out);
    free(th_redis_cmd(R, "DEL {t}:sendtime {t}:eng:totals"));
    free(th_redis_cmd(R, "HDEL {t}:stats lat|3 lat|sum_ms"));
}

/* reaped is th_wait_for's condition: the reaper moved the job of the dead
 * worker "gone" to x:@u's unknown set. */
static int reaped(void *arg)
{
    (void)arg;
    long rq = 0, un = 0;
    hr_err err = {0};
    if (queue_reap(Q, &rq, &un, &err) < 0) return 0;
    char *n = th_redis_cmd(R, "ZCARD {t}:unknown:x:@u");
    int done = n && strcmp(n, "1") == 0;
    free(n);
    return done;
}

/* A lane the budget parked (x:@p, parked=budget in its hash) and a job whose
 * outcome is unknown (x:@u) are two things: stats names the first "parked"
 * per lane and counts the second as "unknown", in the table, --json and
 * the Prometheus text. */
static void test_stats_parked_unknown(void)
{
    int64_t now = hr_now_ms();
    queue_job *jobs[2] = {mk("x", "@p", "c3", "held", now - 1000),
                          mk("x", "@u", "c3", "maybe sent", now - 1000)};
    hr_err err = {0};
    REQUIRE(queue_enqueue(Q, jobs, 2, NULL, &err) == 0);
    free(th_redis_cmd(R, "HSET {t}:lane:x:@p parked budget"));
    const char *lanes[] = {"x:@u"};
    queue_fetched *f;
    int nf;
    REQUIRE(queue_worker_register(Q, "gone", 500, &err) == 0);
    REQUIRE(queue_fetch(Q, "gone", lanes, 1, 1, 500, &f, &nf, &err) == 0);
    CHECK_INT(nf, 1);
    if (nf == 1) CHECK_INT(queue_attempt(Q, "gone", f[0].ukh, &err), 0);
    queue_fetched_free(f, nf);
    CHECK(th_wait_for(reaped, NULL, 10000)); /* its lease ran out mid-send */

    char *out;
    CHECK_INT(herald(&out, "stats", "--json", NULL), 0);
    json_t *s = json_loads(out ? out : "", 0, NULL);
    REQUIRE(s);
    json_t *p = lane_of(s, "x:@p"), *u = lane_of(s, "x:@u"), *x = lane_of(s, "x:@a");
    REQUIRE(p && u && x);
    CHECK_STR(json_string_value(json_object_get(p, "parked")), "budget");
    CHECK_INT(jint(p, "unknown"), 0);
    CHECK_INT(jint(p, "ready"), 1);
    CHECK(json_is_null(json_object_get(u, "parked")));
    CHECK_INT(jint(u, "unknown"), 1);
    CHECK(json_is_null(json_object_get(x, "parked")));
    CHECK_INT(jint(json_object_get(s, "totals"), "unknown"), 1);
    CHECK_INT(jint(json_object_get(json_object_get(s, "platforms"), "x"), "unknown"), 1);
    json_decref(s);
    free(out);

    CHECK_INT(herald(&out, "stats", NULL), 0);
    CHECK(out && strstr(out, " UNKNOWN ") && strstr(out, " PARKED "));
    char *row = out ? strstr(out, "\nx:@p ") : NULL, *end = row ? strchr(row + 1, '\n') : NULL;
    CHECK(row && end);
    if (row && end) {
        *end = 0;
        CHECK(strstr(row, " budget ") != NULL);
        *end = '\n';
    }
    row = out ? strstr(out, "\nx:@u ") : NULL;
    CHECK(row != NULL);
    if (row) {
        long st[6] = {-1, -1, -1, -1, -1, -1};
        char wait[16], circuit[16], parked[32];
        /* LANE SCHED READY FLIGHT RETRY DEAD UNKNOWN LATENCY SENT FAILED WAIT CIRCUIT PARKED */
        CHECK_INT(sscanf(row + 1, "%*s %ld %ld %ld %ld %ld %ld %*s %*s %*s %15s %15s %31s", &st[0],
                         &st[1], &st[2], &st[3], &st[4], &st[5], wait, circuit, parked),
                  9);
        CHECK_INT(st[5], 1);
        CHECK_STR(parked, "-");
    }
    free(out);

    CHECK_INT(herald(&out, "stats", "--prometheus", NULL), 0);
    CHECK(out && strstr(out, "herald_queue_depth{platform=\"x\",lane=\"x:@u\",state=\"unknown\"} 1"));
    CHECK(out && !strstr(out, "state=\"parked\""));
    CHECK(out && strstr(out, "# TYPE herald_lane_parked gauge"));
    CHECK(out && strstr(out, "herald_lane_parked{lane=\"x:@p\",reason=\"budget\"} 1"));
    CHECK(out && strstr(out, "herald_lane_parked{lane=\"x:@u\"} 0"));
    free(out);
    for (int i = 0; i < 2; i++) queue_job_free(jobs[i]);
}

static void test_jobs(void)
{
    char *out;
    CHECK_INT(herald(&out, "jobs", "list", "--state", "ready", "--json", NULL), 0);
    json_t *a = json_loads(out, 0, NULL);
    CHECK_INT(json_array_size(a), 3);
    json_decref(a);
    free(out);
    CHECK_INT(herald(&out, "jobs", "list", "--campaign", "c2", "--json", NULL), 0);
    a = json_loads(out, 0, NULL);
    CHECK_INT(json_array_size(a), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "title")), "toot");
    json_decref(a);
    free(out);
    CHECK_INT(herald(&out, "jobs", "list", "--state", "inflight", "--json", NULL), 0);
    a = json_loads(out, 0, NULL);
    CHECK_INT(json_array_size(a), 1);
    json_decref(a);
    free(out);
    CHECK_INT(herald(&out, "jobs", "list", NULL), 0);
    CHECK(out && strstr(out, "later two") && strstr(out, "scheduled"));
    free(out);
    CHECK_INT(herald(NULL, "jobs", "list", "--state", "sideways", NULL), 2);

    CHECK_INT(herald(&out, "jobs", "show", ids[0], "--json", NULL), 0);
    json_t *j = json_loads(out, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(j, "state")), "scheduled");
    json_decref(j);
    free(out);
    CHECK_INT(herald(&out, "jobs", "show", ids[7], NULL), 0);
    CHECK(out && strstr(out, "retrying"));
    free(out);
    CHECK_INT(herald(NULL, "jobs", "show", "0000000000000000000Z", NULL), 3);

    CHECK_INT(herald(NULL, "jobs", "cancel", ids[1], NULL), 0);
    CHECK_INT(herald(NULL, "jobs", "show", ids[1], NULL), 3);
    CHECK_INT(herald(NULL, "jobs", "cancel", ids[2], NULL), 4); /* in flight */
    CHECK_INT(herald(NULL, "jobs", "cancel", "0000000000000000000Z", NULL), 3);
    CHECK_INT(herald(NULL, "jobs", "cancel", NULL), 2);
    CHECK_INT(herald(&out, "jobs", "cancel", "--campaign", "c2", "--json", NULL), 0);
    CHECK(out && strstr(out, "\"cancelled\":1"));
    free(out);
}

static void test_dead(void)
{
    char *out;
    CHECK_INT(herald(&out, "dead", "list", "--json", NULL), 0);
    json_t *a = json_loads(out, 0, NULL);
    REQUIRE(json_array_size(a) == 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 0), "reason")),
              "x: 403 duplicate content");
    json_decref(a);
    free(out);
    CHECK_INT(herald(&out, "dead", "show", ids[6], NULL), 0);
    CHECK(out && strstr(out, "403 duplicate content") && strstr(out, "dead"));
    free(out);
    CHECK_INT(herald(NULL, "dead", "retry", ids[0], NULL), 4); /* scheduled: not dead */
    CHECK_INT(herald(NULL, "dead", "retry", ids[6], NULL), 0);
    char *s = th_redis_cmd(R, "LLEN {t}:ready:x:@a");
    CHECK_STR(s, "3");
    free(s);
    /* bury it again (fetched by another worker) and purge everything dead on x */
    hr_err err = {0};
    const char *lanes[] = {"x:@a"};
    queue_fetched *f;
    int nf;
    REQUIRE(queue_worker_register(Q, "w2", 60000, &err) == 0);
    REQUIRE(queue_fetch(Q, "w2", lanes, 1, 3, 60000, &f, &nf, &err) == 0);
    int buried = 0;
    for (int i = 0; i < nf; i++)
        if (strcmp(f[i].ukh, ids[6] + 8) == 0)
            buried = queue_bury(Q, "w2", f[i].ukh, f[i].lane, NULL, "again", &err);
    queue_fetched_free(f, nf);
    CHECK_INT(buried, 1);
    queue_worker_unregister(Q, "w2", &err);
    CHECK_INT(herald(&out, "dead", "purge", "--platform", "x", NULL), 0);
    CHECK(out && strstr(out, "purged 1"));
    free(out);
    CHECK_INT(herald(NULL, "dead", "show", ids[6], NULL), 3);
    CHECK_INT(herald(NULL, "dead", "frobnicate", NULL), 2);
}

static void test_pause(void)
{
    char *out;
    CHECK_INT(herald(NULL, "pause", "x", NULL), 0);
    CHECK_INT(herald(&out, "stats", "--json", NULL), 0);
    json_t *s = json_loads(out, 0, NULL);
    CHECK(json_is_true(json_object_get(lane_of(s, "x:@a"), "paused")));
    json_decref(s);
    free(out);
    CHECK_INT(herald(NULL, "resume", "x", NULL), 0);
    CHECK_INT(herald(&out, "stats", "--json", NULL), 0);
    s = json_loads(out, 0, NULL);
    CHECK(json_is_false(json_object_get(lane_of(s, "x:@a"), "paused")));
    json_decref(s);
    free(out);
    CHECK_INT(herald(NULL, "pause", "myspace", NULL), 2);
    CHECK_INT(herald(NULL, "pause", NULL), 2);
}

static void test_config_check(void)
{
    char *out;
    CHECK_INT(herald(&out, "config", "check", NULL), 0);
    CHECK(out && strstr(out, ": ok"));
    free(out);

    char bad[580], good_conf[700];
    snprintf(bad, sizeof bad, "%s/bad.conf", dir);
    th_write_file(bad, "# a config with problems\n"
                       "namespace t\n"
                       "redis-ur unix:///tmp/x.sock\n"
                       "account x:@a credentials=missing-file\n"
                       "account x:@b circuit=many\n"
                       "campaign c platforms=x:@a \"template={{title}}\" colour=blue\n"
                       "pool p platforms=x weights=mastodon:2\n"
                       "retry-base soon\n"
                       "account mastodon:@m credentails=m\n"
                       "log-level loud\n"
                       "pool social platforms=x,blusky\n");
    snprintf(good_conf, sizeof good_conf, "%s", conf);
    snprintf(conf, sizeof conf, "%s", bad);
    CHECK_INT(herald(&out, "config", "check", NULL), 2);
    CHECK(out && strstr(out, "bad.conf:3: unknown directive \"redis-ur\""));
    CHECK(out && strstr(out, "bad.conf:4: ") && strstr(out, "missing-file"));
    CHECK(out && strstr(out, "bad.conf:5: ") && strstr(out, "circuit"));
    CHECK(out && strstr(out, "bad.conf:6: ") && strstr(out, "colour"));
    CHECK(out && strstr(out, "bad.conf:7: ") && strstr(out, "weights"));
    CHECK(out && strstr(out, "bad.conf:8: retry-base"));
    CHECK(out &&
          strstr(out, "bad.conf:9: warning: account mastodon:@m: unknown key \"credentails\""));
    CHECK(out && strstr(out, "bad.conf:10: log-level: \"loud\" is not debug, info, warn or error"));
    CHECK(out && strstr(out, "bad.conf:11: pool social: platforms: \"blusky\" is not a platform"));
    if (th_failures) fprintf(stderr, "%s\n", out ? out : "");
    free(out);
    CHECK_INT(herald(&out, "config", "check", "--json", NULL), 2);
    json_t *o = json_loads(out, 0, NULL);
    CHECK(json_is_false(json_object_get(o, "ok")));
    CHECK(json_integer_value(json_object_get(o, "errors")) >= 6);
    json_decref(o);
    free(out);

    /* numbers out of the range the worker and webhooks take them in (the
     * worker refuses what config check refuses); lease-ms is read now */
    th_write_file(bad, "namespace t\nlease-ms 0\nworker-redis-timeout-ms -1\n"
                       "webhooks-stream-maxlen -3\nwebhooks-replay-window 0\n"
                       "webhooks-max-body 99999999999\nretry-base 0\nreconcile-interval 0\n"
                       "worker-hang-timeout 500ms\nreconcile-exact-settle 0\n");
    CHECK_INT(herald(&out, "config", "check", NULL), 2);
    CHECK(out && strstr(out, "bad.conf:2: lease-ms: expected 1000..86400000, got 0"));
    CHECK(out && strstr(out, "bad.conf:3: worker-redis-timeout-ms: expected 1..3600000, got -1"));
    CHECK(out && strstr(out, "bad.conf:4: webhooks-stream-maxlen: expected 1..1000000000, got -3"));
    CHECK(out && strstr(out, "bad.conf:5: webhooks-replay-window: expected 1..86400, got 0"));
    CHECK(out && strstr(out, "bad.conf:6: webhooks-max-body: expected 1..1073741824"));
    /* durations too: 0 was quietly 1s, a busy reconciler, 10s */
    CHECK(out && strstr(out, "bad.conf:7: retry-base: at least 1ms, got \"0\""));
    CHECK(out && strstr(out, "bad.conf:8: reconcile-interval: at least 1ms, got \"0\""));
    CHECK(out && strstr(out, "bad.conf:9: worker-hang-timeout: at least 1000ms, got \"500ms\""));
    CHECK(out && !strstr(out, "reconcile-exact-settle"));
    CHECK(out && strstr(out, "8 errors"));
    if (th_failures) fprintf(stderr, "%s\n", out ? out : "");
    free(out);

    /* a syntax error stops at its line */
    th_write_file(bad, "namespace t\nredis-url \"unterminated\n");
    CHECK_INT(herald(NULL, "config", "check", NULL), 2);
    snprintf(conf, sizeof conf, "%s", good_conf);
}

static int two_lines(void *arg)
{
    char *s = th_read_file(arg, NULL);
    int n = 0;
    for (char *p = s; p && (p = strchr(p, '\n')); p++)
        n++;
    free(s);
    return n >= 2;
}

/* stats --watch refreshes until Ctrl-C, then exits 0 */
static void test_watch(void)
{
    char out[800];
    snprintf(out, sizeof out, "%s/watch.out", dir);
    char *argv[] = {HERALD_BIN, "--config", conf, "stats", "--json", "--watch", "0.2", NULL};
    pid_t pid = th_spawn(argv, out);
    CHECK(th_wait_for(two_lines, out, 10000));
    kill(pid, SIGINT);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *text = th_read_file(out, NULL);
    json_t *first = text ? json_loads(text, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    CHECK(first && json_object_get(first, "lanes"));
    json_decref(first);
    free(text);
}

static int serving(void *arg)
{
    return th_http(*(int *)arg, NULL, "/healthz", NULL, NULL, NULL) == 200;
}

/* herald stats --serve: /metrics, /healthz and /readyz of its own */
static void test_serve(void)
{
    int port = th_free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    char *argv[] = {HERALD_BIN, "--config", conf, "stats", "--serve", listen, NULL};
    /* HERALD_LOG_LEVEL (the log-level key) hides the info line it logs */
    char log[600];
    snprintf(log, sizeof log, "%s/serve.log", dir);
    setenv("HERALD_LOG_LEVEL", "warn", 1);
    pid_t pid = th_spawn(argv, log);
    unsetenv("HERALD_LOG_LEVEL");
    REQUIRE(th_wait_for(serving, &port, 10000));
    char *body = NULL;
    CHECK_INT(th_http(port, NULL, "/metrics", NULL, NULL, &body), 200);
    CHECK(body && strstr(body, "herald_queue_depth{platform=\"x\",lane=\"x:@a\",state=\"ready\"}"));
    CHECK(body && strstr(body, "herald_metrics_redis_up 1"));
    char *problem = body ? th_check_exposition(body) : NULL;
    if (problem) fprintf(stderr, "exposition: %s\n", problem);
    CHECK(problem == NULL);
    free(problem);
    free(body);
    CHECK_INT(th_http(port, NULL, "/readyz", NULL, NULL, NULL), 200);
    CHECK_INT(th_http(port, NULL, "/nope", NULL, NULL, NULL), 404);
    kill(pid, SIGTERM);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *logged = th_read_file(log, NULL);
    CHECK(logged && !strstr(logged, "metrics listening"));
    free(logged);
    /* and an unknown level stops the command with the reason */
    setenv("HERALD_LOG_LEVEL", "loud", 1);
    char *msg = NULL;
    CHECK_INT(th_exec(argv, NULL, 1, &msg), 2);
    unsetenv("HERALD_LOG_LEVEL");
    CHECK(msg && strstr(msg, "log-level: \"loud\" is not debug, info, warn or error"));
    free(msg);
}

/* the shipped example config is valid once its credential files exist */
static void test_example_config(void)
{
    char path[700], cdir[620], *text = th_read_file(HERALD_SRC "/examples/herald.conf", NULL);
    REQUIRE(text);
    snprintf(cdir, sizeof cdir, "%s/etc-credentials", dir);
    REQUIRE(mkdir(cdir, 0700) == 0);
    static const char *files[] = {"x-heraldhq",   "mastodon-herald",      "bluesky-herald",
                                  "sendgrid-key", "sendgrid-webhook-key", "webhook-hmac-key"};
    /* SendGrid's is parsed as `herald webhooks` will (a public key) */
    static const char sg_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAERc1Z2KFFJwtTHMr4GAq3UKxqdyYq\n"
                                 "dftL4QXn9dD96wSqBFiU+r0r8ydl+f7R7k6VnQWLdk8l2+WbHr7AI0fzeg==\n"
                                 "-----END PUBLIC KEY-----\n";
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", cdir, files[i]);
        th_write_file(path, strcmp(files[i], "sendgrid-webhook-key") == 0
                                ? sg_pem
                                : "not-a-real-secret-0123456789\n");
        REQUIRE(chmod(path, 0600) == 0);
    }
    snprintf(path, sizeof path, "%s/contacts.csv", dir);
    th_write_file(path, "Email\nann@example.com\n");
    /* point its /etc paths at the temp dir */
    hr_buf b;
    hr_buf_init(&b);
    for (const char *p = text; *p;) {
        const char *a = strstr(p, "/etc/herald/credentials"),
                   *c = strstr(p, "/etc/herald/contacts.csv");
        const char *hit = a && (!c || a < c) ? a : c;
        if (!hit) {
            hr_buf_puts(&b, p);
            break;
        }
        hr_buf_append(&b, p, (size_t)(hit - p));
        hr_buf_puts(&b, hit == a ? cdir : path);
        p = hit + strlen(hit == a ? "/etc/herald/credentials" : "/etc/herald/contacts.csv");
    }
    char example[640], saved[700];
    snprintf(example, sizeof example, "%s/example.conf", dir);
    th_write_file(example, b.data);
    hr_buf_release(&b);
    free(text);
    snprintf(saved, sizeof saved, "%s", conf);
    snprintf(conf, sizeof conf, "%s", example);
    char *out;
    CHECK_INT(herald(&out, "config", "check", NULL), 0);
    CHECK(out && strstr(out, ": ok (0 warnings)"));
    if (!out || !strstr(out, ": ok (0 warnings)")) fprintf(stderr, "%s\n", out ? out : "");
    free(out);
    snprintf(conf, sizeof conf, "%s", saved);
}

int main(void)
{
    if (clitest_start("account x:@a credentials=x-a budget-daily=2.5 cost=0.01\n") < 0) return 1;
    setup();
    th_run("stats", test_stats);
    th_run("exposition", test_exposition);
    th_run("jobs", test_jobs);
    th_run("dead", test_dead);
    th_run("pause", test_pause);
    th_run("serve", test_serve);
    th_run("watch", test_watch);
    th_run("config_check", test_config_check);
    th_run("example_config", test_example_config);
    th_run("stats_parked_unknown", test_stats_parked_unknown);
    queue_free(Q);
    free(dir);
    return th_main_end();
}
