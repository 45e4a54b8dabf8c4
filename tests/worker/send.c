/* send.c: `herald worker` end to end against a real redis-server and
 * `herald sandbox`: every job sent exactly once under injected faults
 * (500s, 429 with Retry-After), the circuit breaker, a 401 pauses only its
 * lane, SIGTERM drains, Redis restarted mid-run; a job failing transiently
 * up to max_attempts and one refused for good go dead with their reason and
 * their budget back. (kill -9 at each step: crash.c.) */
#include "wktest.h"

static const char *json_hdr[] = {"Content-Type: application/json", NULL};

/* x:@d has a daily budget of 3 sends (cost 1): wt_start's extra line */
#define DEAD_LANE_CONF                                                                            \
    "account x:@d base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 rate=1000000/1h "  \
    "cost=1 budget-daily=3 circuit=1000\n"

static int dead_reached(void *arg)
{
    wt_tick(); /* promotes the retries */
    return wt_redis_int("ZCARD {t}:dead:x:@d", "") >= *(long *)arg;
}

/* dead_run enqueues n posts to x:@d with max_attempts each while the
 * sandbox answers X with fault, runs a worker until all n are dead, and
 * returns how many requests the sandbox failed meanwhile. */
static long dead_run(const char *fault, int n, int max_attempts, const char *tag)
{
    wt_reset();
    long f0 = wt_faults_injected();
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", json_hdr, fault, NULL), 200);
    queue_job **jobs = hr_calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        char text[64], key[64];
        snprintf(text, sizeof text, "%s %d", tag, i);
        snprintf(key, sizeof key, "dead:%s:%d", tag, i);
        jobs[i] = wt_post_job("x", "@d", key, text);
        jobs[i]->max_attempts = max_attempts;
    }
    wt_enqueue_jobs(jobs, n);
    free(jobs);
    pid_t w = wt_worker(NULL, tag, "--processes", "1", "--concurrency", "8", NULL);
    long want = n;
    CHECK(th_wait_for(dead_reached, &want, 20000));
    wt_term(w);
    th_http(wt.sandbox_port, "POST", "/_sandbox/faults", json_hdr, "{\"platform\":\"x\"}", NULL);
    CHECK_INT(wt_sandbox_posts("x", NULL), 0);
    CHECK_INT(wt_done(), 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:retry:x:@d", ""), 0);
    /* every reservation given back: 3 a day would not have lasted */
    CHECK_INT(wt_redis_int("HGET {t}:lane:x:@d b_day_used", ""), 0);
    return wt_faults_injected() - f0;
}

/* check_dead: each job of x:@d's dead set made attempts attempts and
 * carries a reason containing why, in the dead set's reasons and as the
 * stored job's last error. */
static void check_dead(int attempts, const char *why)
{
    char *ukhs = th_redis_cmd(wt.redis, "ZRANGE {t}:dead:x:@d 0 -1");
    REQUIRE(ukhs);
    int n = 0;
    for (char *u = strtok(ukhs, "\n"); u; u = strtok(NULL, "\n"), n++) {
        char *reason = th_redis_cmd(wt.redis, "HGET {t}:reasons %s", u);
        if (!reason || !strstr(reason, why))
            fprintf(stderr, "  dead %s: reason %s\n", u, reason ? reason : "(none)");
        CHECK(reason && strstr(reason, why));
        free(reason);
        hr_err err = {0};
        queue_job *j = queue_get(wt.q, u, &err);
        CHECK(j && j->attempt == attempts);
        CHECK(j && j->last_error && strstr(j->last_error, why));
        queue_job_free(j);
    }
    CHECK(n > 0);
    free(ukhs);
}

/* A platform failing transiently (500) on every try: each job is tried
 * exactly max_attempts times, with a reservation of the lane's budget each
 * time that its retry gives back, then goes dead saying why. */
static void transient_to_dead(void)
{
    long failed = dead_run("{\"platform\":\"x\",\"rate500\":1.0}", 3, 3, "flaky-dead");
    CHECK_INT(failed, 3 * 3);
    check_dead(3, "HTTP 500");
}

/* A post the platform refuses for good (a 403 with its own message): dead
 * at the first answer with that message, never retried, its budget back. */
static void permanent_to_dead(void)
{
    const char *msg = "You are not permitted to perform this action.";
    char *fault =
        hr_asprintf("{\"platform\":\"x\",\"rate4xx\":1.0,\"status\":403,\"message\":\"%s\"}", msg);
    long failed = dead_run(fault, 3, 5, "refused-dead");
    free(fault);
    CHECK_INT(failed, 3);
    char *why = hr_asprintf("HTTP 403: %s", msg);
    check_dead(1, why);
    free(why);
}

/* A platform that echoes the account's token in its error: the log lines
 * say [redacted] where the token was (it went to the log as is). */
static void secret_echo_redacted(void)
{
    const char *token = "xa-0123456789-long-secret-token";
    char path[700];
    snprintf(path, sizeof path, "%s/x-a", wt.dir);
    th_write_file(path, token); /* x:@d's credential, read at the worker's start */
    char *fault = hr_asprintf("{\"platform\":\"x\",\"rate4xx\":1.0,\"status\":403,"
                              "\"message\":\"bad token %s for ann@example.com\"}",
                              token);
    dead_run(fault, 1, 5, "echoed-secret");
    free(fault);
    th_write_file(path, "token-a");
    snprintf(path, sizeof path, "%s/echoed-secret.log", wt.dir);
    char *log = th_read_file(path, NULL);
    REQUIRE(log);
    CHECK(strstr(log, "bad token [redacted] for a***@example.com") != NULL);
    CHECK(strstr(log, token) == NULL);
    free(log);
}

/* subscribers returns how many connections listen on {t}:readych */
static long subscribers(void)
{
    char *s = th_redis_cmd(wt.redis, "PUBSUB NUMSUB %s", "{t}:readych"); /* "name\ncount" */
    const char *nl = s ? strchr(s, '\n') : NULL;
    long n = nl ? strtol(nl + 1, NULL, 10) : -1;
    free(s);
    return n;
}

static int resubscribed(void *arg)
{
    (void)arg;
    return subscribers() == 2;
}

static void sends_all(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "hello from a", 300);
    wt_enqueue("mastodon", "@m", "toot", 100);
    pid_t w = wt_worker(NULL, "sends_all", "--processes", "2", "--concurrency", "32", NULL);
    CHECK(wt_wait_done(400, 20000));
    /* each worker process listens for lanes that get ready jobs */
    CHECK_INT(subscribers(), 2);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 300);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_sandbox_posts("mastodon", &dups), 100);
    CHECK_INT(dups, 0);
    wt_term(w);
    /* the platform id -> job index the webhooks server matches against */
    CHECK_INT(wt_redis_int("HLEN {t}:platform_ids", ""), 400);
    /* a sent job shows its platform id, latency and cost (the done record
     * kept only the id and time) */
    char *ukh = th_redis_cmd(wt.redis, "HRANDFIELD {t}:done");
    REQUIRE(ukh && strlen(ukh) == QUEUE_UKH_LEN);
    char *argv[] = {HERALD_BIN, "jobs", "show", ukh, "--json", NULL};
    char *out = NULL;
    CHECK_INT(th_exec(argv, NULL, 0, &out), 0);
    CHECK(out && strstr(out, "\"state\":\"sent\"") && strstr(out, "\"latency_ms\":") &&
          strstr(out, "\"cost\":") && !strstr(out, "\"platform_id\":\"\""));
    free(out);
    free(ukh);
    /* nothing left in any worker's in-flight record (keyed by worker id) */
    CHECK_INT(wt_redis_int("EVAL %s 0", "local n = 0 for _, k in ipairs(redis.call('KEYS', "
                                        "'{t}:inflight:*')) do n = n + redis.call('HLEN', k) end "
                                        "return n"),
              0);
}

static void faults_retry(void)
{
    wt_reset();
    const char *faults = "{\"platform\":\"x\",\"rate500\":0.3,\"rate429\":0.1,\"retry_after\":1}";
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, faults, NULL), 200);
    wt_enqueue("x", "@a", "flaky", 120);
    pid_t w = wt_worker(NULL, "faults", "--processes", "1", "--concurrency", "16", NULL);
    CHECK(wt_wait_done(120, 25000));
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 120);
    CHECK_INT(dups, 0);
    CHECK(wt_redis_int("HLEN {t}:stats", "") > 0);
    wt_term(w);
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@a", ""), 0);
}

static int log_has(void *arg)
{
    const char *what = arg;
    char log[700];
    snprintf(log, sizeof log, "%s/circuit.log", wt.dir);
    char *text = th_read_file(log, NULL);
    int yes = text && strstr(text, what);
    free(text);
    return yes;
}

static void circuit_breaker(void)
{
    wt_reset();
    /* every call fails: after 5 in a row the breaker opens and the lane
     * waits instead of burning attempts */
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h,
                      "{\"platform\":\"x\",\"rate500\":1.0}", NULL),
              200);
    wt_enqueue("x", "@a", "breaker", 30);
    pid_t w = wt_worker(NULL, "circuit", "--processes", "1", "--concurrency", "1", NULL);
    CHECK(th_wait_for(log_has, "\"to\":\"open\"", 15000));
    /* the platform recovers: the half-open probe succeeds and closes it */
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, "{\"platform\":\"x\"}",
                      NULL),
              200);
    CHECK(wt_wait_done(30, 25000));
    /* the probe ran half-open and closed the breaker */
    CHECK(log_has("\"from\":\"half-open\",\"to\":\"closed\""));
    wt_term(w);
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@a", ""), 0);
}

static int some_done(void *arg)
{
    (void)arg;
    return wt_done() >= 8;
}

static void sigterm_drains(void)
{
    wt_reset();
    /* slow answers, so sends are in flight when SIGTERM comes */
    const char *faults = "{\"platform\":\"x\",\"slow_ms\":300}";
    const char *h[] = {"Content-Type: application/json", NULL};
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, faults, NULL), 200);
    wt_enqueue("x", "@a", "drain", 200);
    pid_t w = wt_worker(NULL, "drain", "--processes", "2", "--concurrency", "16",
                        "--shutdown-timeout", "10s", NULL);
    CHECK(th_wait_for(some_done, NULL, 15000));
    wt_term(w); /* waits for the supervisor, which waits for its workers */
    long done = wt_done();
    long dups = -1;
    /* every send that started finished and was recorded: nothing unknown,
     * nothing left in flight, the rest back in the lane */
    CHECK_INT(wt_sandbox_posts("x", &dups), done);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 0);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@a", "") + done, 200);
    CHECK(done < 200);
    char log[700];
    snprintf(log, sizeof log, "%s/drain.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "finishing sends in flight"));
    CHECK(text && !strstr(text, "signal 15"));
    free(text);
    th_http(wt.sandbox_port, "POST", "/_sandbox/faults", h, "{\"platform\":\"x\"}", NULL);
}

static int half_done(void *arg)
{
    (void)arg;
    return wt_done() >= 100;
}

static void redis_restart(void)
{
    wt_reset();
    enum { N = 400 };
    wt_enqueue("bluesky", "@b.bsky.social", "through the outage", N);
    pid_t w = wt_worker(NULL, "redis_restart", "--processes", "2", "--concurrency", "32",
                        "--lease", "1s", NULL);
    CHECK(th_wait_for(half_done, NULL, 15000));
    th_redis_stop(wt.redis);    /* kill -9: append-only with fsync always */
    th_redis_restart(wt.redis); /* workers reconnect with backoff */
    queue_free(wt.q);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", wt.redis->sock);
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    wt.q = queue_connect(&o, &err);
    REQUIRE(wt.q);
    CHECK(wt_wait_done(N, 25000));
    CHECK(th_wait_for(resubscribed, NULL, 10000)); /* the subscription came back too */
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("bluesky", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:bluesky:@b.bsky.social", ""), 0);
}

static int bad_lane_paused(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_redis_int("SISMEMBER {t}:paused %s", "x:@bad") == 1;
}

static void reauth_pauses_one_lane(void)
{
    wt_reset();
    wt_enqueue("x", "@bad", "refused", 20);
    wt_enqueue("x", "@b", "fine", 150);
    pid_t w = wt_worker(NULL, "reauth", "--processes", "1", "--concurrency", "16", NULL);
    CHECK(wt_wait_done(150, 20000));
    CHECK(th_wait_for(bad_lane_paused, NULL, 10000));
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 150);
    wt_term(w);
    /* held, counted and visible, never deleted */
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@bad", ""), 0);
    long held = wt_redis_int("ZCARD {t}:retry:x:@bad", "") +
                wt_redis_int("LLEN {t}:ready:x:@bad", "") +
                wt_redis_int("ZCARD {t}:sched:x:@bad", "");
    CHECK_INT(held, 20);
    CHECK_INT(wt_done(), 150);
}

int main(void)
{
    wt_start(DEAD_LANE_CONF);
    th_run("sends_all", sends_all);
    th_run("faults_retry", faults_retry);
    th_run("circuit_breaker", circuit_breaker);
    th_run("reauth_pauses_one_lane", reauth_pauses_one_lane);
    th_run("sigterm_drains", sigterm_drains);
    th_run("redis_restart", redis_restart);
    th_run("transient_to_dead", transient_to_dead);
    th_run("permanent_to_dead", permanent_to_dead);
    th_run("secret_echo_redacted", secret_echo_redacted);
    wt_stop();
    return th_main_end();
}
