/* outcomes.c: what the worker does with each outcome of a send, against a
 * real Redis and `herald sandbox`: a read-back finding nothing right after a
 * lost answer (resent only where that is safe, within max_attempts), a post
 * on a kept-alive connection that died unanswered (not resent by curl), budget
 * reservations given back when a job leaves unsent, Retry-After on a 503, a
 * refused Bluesky password, a Redis error reply mid-send, thread parts
 * resumed after a failure; and what a process serves: every lane, one
 * Bluesky login per account, a reload on a busy lane. */
#include "platforms.h"
#include "wktest.h"
#include "worker.h"

static const char *json_hdr[] = {"Content-Type: application/json", NULL};

static void faults(const char *json)
{
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", json_hdr, json, NULL), 200);
}

static int injected_at_least(void *arg) { return wt_faults_injected() >= *(long *)arg; }

/* drop_all makes the platform drop every request from now; returns the
 * count of faults injected so far (the sandbox's count runs across resets). */
static long drop_all(const char *platform)
{
    long before = wt_faults_injected();
    char *f = hr_asprintf("{\"platform\":\"%s\",\"drop\":1.0}", platform);
    faults(f);
    free(f);
    return before;
}

/* lost_answer_then_readback: once the platform dropped the send and the
 * read-back right after it (the worker cannot tell), it stops dropping
 * before the worker's next read-back (seconds later), which finds nothing. */
static void lost_answer_then_readback(const char *platform, long before)
{
    long two = before + 2;
    CHECK(th_wait_for(injected_at_least, &two, 10000));
    char *clear = hr_asprintf("{\"platform\":\"%s\"}", platform);
    faults(clear);
    free(clear);
}

typedef struct where {
    const char *key; /* a zset of the lane */
    long want;
} where;

static int in_set(void *arg)
{
    const where *w = arg;
    wt_tick();
    return wt_redis_int("ZCARD %s", w->key) >= w->want;
}

/* A 502 can come from a gateway after X made the post: the worker reads it
 * back and finds it, never resends it (a resend would replay the
 * sandbox's Idempotency-Key: a duplicate). */
static void gateway_error_reads_back(void)
{
    wt_reset();
    enum { N = 20 };
    long before = wt_faults_injected();
    faults("{\"platform\":\"x\",\"gateway\":0.5}");
    wt_enqueue("x", "@a", "behind a gateway", N);
    pid_t w = wt_worker(NULL, "gateway", "--processes", "1", NULL);
    CHECK(wt_wait_done(N, 30000));
    wt_term(w);
    faults("{\"platform\":\"x\"}");
    CHECK(wt_faults_injected() > before);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), N);
    CHECK_INT(dups, 0);
}

/* An email search right after the send can lag it: "absent" proves nothing,
 * so the job goes to unknown for the reconciler (which waits its settle
 * time), never sent again at once. */
static void email_absent_goes_to_unknown(void)
{
    wt_reset();
    long before = drop_all("sendgrid");
    wt_enqueue_emails("main", NULL, "lag", 1);
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(NULL, "email_absent", "--processes", "1", NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    lost_answer_then_readback("sendgrid", before);
    where u = {"{t}:unknown:sendgrid:main", 1};
    CHECK(th_wait_for(in_set, &u, 15000));
    wt_term(w);
    CHECK_INT(wt_done(), 0);
    CHECK_INT(wt_sandbox_count("sendgrid", "email"), 0); /* never resent */
    char *why = th_redis_cmd(wt.redis, "HVALS {t}:reasons");
    CHECK(why && strstr(why, "found nothing"));
    free(why);
}

/* Bluesky's read-back is exact (the post's rkey) and a resend with the same
 * rkey cannot duplicate: "absent" is a failed attempt, resent, but counted
 * against max_attempts (1 here: dead instead of sent again). */
static void bluesky_absent_counts_attempts(void)
{
    wt_reset();
    pid_t w = wt_worker(NULL, "bsky_absent", "--processes", "1", NULL);
    wt_enqueue("bluesky", "@b.bsky.social", "first", 1); /* logs in */
    CHECK(wt_wait_done(1, 10000));
    long before = drop_all("bluesky");
    queue_job *j = wt_post_job("bluesky", "@b.bsky.social", "bsky:once", "only once");
    j->max_attempts = 1;
    wt_enqueue_job(j);
    lost_answer_then_readback("bluesky", before);
    where d = {"{t}:dead:bluesky:@b.bsky.social", 1};
    CHECK(th_wait_for(in_set, &d, 15000));
    wt_idle(20);
    wt_term(w);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(wt_sandbox_posts("bluesky", NULL), 1);
}

/* A kept-alive connection that dies once the platform has read a post,
 * before any answer: curl would send the post again on a new connection
 * by itself, and a platform that had made it would have it twice. The
 * worker reads back instead: the sandbox receives the post once and the
 * outcome is unknown. */
static void lost_on_kept_alive_not_resent(void)
{
    wt_reset();
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(NULL, "kept_alive", "--processes", "1", "--concurrency", "1", NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    wt_enqueue("x", "@a", "warm", 1); /* opens the connection the next post reuses */
    CHECK(wt_wait_done(1, 10000));
    long before = drop_all("x");
    wt_enqueue("x", "@a", "lost", 1);
    lost_answer_then_readback("x", before);
    where u = {"{t}:unknown:x:@a", 1};
    CHECK(th_wait_for(in_set, &u, 15000));
    wt_term(w);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(wt_sandbox_records("x", "post", 1), 2); /* "warm 0", and "lost 0" once */
}

/* A 503's Retry-After is honoured by the transient retry's backoff too. */
static void transient_honours_retry_after(void)
{
    plat_header h = {.name = "Retry-After", .value = "120"};
    plat_response r = {.status = 503, .headers = &h, .nheaders = 1, .body = "", .body_len = 0};
    plat_outcome o;
    memset(&o, 0, sizeof o);
    int64_t now = 1700000000000;
    plat_classify_http(&r, now, &o);
    CHECK(o.kind == PLAT_OUT_TRANSIENT && o.retry_after_ms == 120000);
    worker_retry_policy p = {.base_ms = 1000, .cap_ms = 3600000, .hold_ms = 60000};
    worker_decision d;
    worker_decide(WORKER_TRANSIENT, 1, 5, now, now + o.retry_after_ms, 0, 0, &p,
                  0xffffffffffffULL, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.at_ms == now + 120000);
    plat_outcome_release(&o);
}

static int retrying(void *arg)
{
    return wt_redis_int("ZCARD %s", arg) >= 1;
}

/* A worker whose host clock is 100 s behind Redis's (promote goes by
 * Redis's): a 429 saying "in 120 s" is retried 120 s from Redis's now, not
 * 20 s. */
static void retry_time_on_redis_clock(void)
{
    wt_reset();
    faults("{\"platform\":\"mastodon\",\"rate429\":1.0,\"retry_after\":120}");
    wt_enqueue("mastodon", "@m", "later", 1);
    pid_t w = wt_worker("HERALD_WORKER_CLOCK_SKEW_MS=-100000", "skew", "--processes", "1", NULL);
    CHECK(th_wait_for(retrying, "{t}:retry:mastodon:@m", 10000));
    int64_t now = hr_now_ms(); /* this host's clock is Redis's */
    wt_term(w);
    faults("{\"platform\":\"mastodon\"}");
    char *at = th_redis_cmd(wt.redis, "ZRANGE {t}:retry:mastodon:@m 0 0 WITHSCORES");
    const char *score = at ? strchr(at, '\n') : NULL;
    CHECK(score && strtoll(score + 1, NULL, 10) >= now + 110000);
    free(at);
}

/* faults_now sets the sandbox's faults and returns the count of faults it
 * injected before (its answer's): nothing is injected between the two. */
static long faults_now(const char *json)
{
    char *body = NULL;
    long n = -1;
    if (th_http(wt.sandbox_port, "POST", "/_sandbox/faults", json_hdr, json, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        n = (long)json_integer_value(json_object_get(j, "injected"));
        json_decref(j);
    }
    free(body);
    return n;
}

static int injected_ticking(void *arg)
{
    wt_tick(); /* the retries are promoted meanwhile */
    return injected_at_least(arg);
}

/* 429s use up none of a job's attempts: after three of them, a job of 3
 * attempts still gets 3 transient failures (500s) before the dead set,
 * not one. */
static void throttle_spends_no_attempt(void)
{
    wt_reset();
    long before = faults_now("{\"platform\":\"x\",\"rate429\":1.0}");
    queue_job *j = wt_post_job("x", "@t", "x:t:throttled", "throttled then failing");
    j->max_attempts = 3;
    wt_enqueue_job(j);
    pid_t w = wt_worker(NULL, "throttled", "--processes", "1", NULL);
    long three = before + 3;
    CHECK(th_wait_for(injected_ticking, &three, 15000));
    long throttled = faults_now("{\"platform\":\"x\",\"rate500\":1.0}");
    where d = {"{t}:dead:x:@t", 1};
    CHECK(th_wait_for(in_set, &d, 15000));
    wt_term(w);
    faults("{\"platform\":\"x\"}");
    fprintf(stderr, "  %ld 429s, then %ld 500s until dead\n", throttled - before,
            wt_faults_injected() - throttled);
    CHECK(throttled - before >= 3);
    CHECK_INT(wt_faults_injected() - throttled, 3);
    CHECK_INT(wt_done(), 0);
}

/* bsky_sessions counts the Bluesky session calls the sandbox took whose
 * path has what (createSession, refreshSession) */
static long bsky_sessions(const char *what)
{
    char *body = NULL;
    long n = -1;
    if (th_http(wt.sandbox_port, NULL, "/_sandbox/posts?platform=bluesky&kind=session", NULL,
                NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL), *v;
        size_t i;
        n = 0;
        json_array_foreach(json_object_get(j, "posts"), i, v)
        {
            const char *path = json_string_value(json_object_get(v, "path"));
            n += path && strstr(path, what) != NULL;
        }
        json_decref(j);
    }
    free(body);
    return n;
}

/* An expired Bluesky session is refreshed (refreshSession with the refresh
 * token), not replaced by a new login: the worker dropped the refresh token
 * too and called createSession, of which Bluesky allows 30 per 5 minutes. */
static void bluesky_expired_refreshes(void)
{
    wt_reset();
    pid_t w = wt_worker(NULL, "bsky_refresh", "--processes", "1", NULL);
    wt_enqueue("bluesky", "@b.bsky.social", "before expiry", 1); /* logs in */
    CHECK(wt_wait_done(1, 10000));
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/expire-sessions", NULL, "", NULL), 200);
    wt_enqueue("bluesky", "@b.bsky.social", "after expiry", 1);
    CHECK(wt_wait_done(2, 10000));
    wt_term(w);
    CHECK_INT(bsky_sessions("refreshSession"), 1);
    CHECK_INT(bsky_sessions("createSession"), 1); /* the first login only */
    CHECK_INT(wt_sandbox_posts("bluesky", NULL), 2);
}

/* A lane whose open circuit has timed out but which has nothing ready
 * does not use up the fleet's one half-open probe: the next job that comes
 * is the probe at once (it waited for the probe's deadline, a lease). */
static void empty_lane_keeps_probe(void)
{
    wt_reset();
    hr_err err = {0};
    CHECK(queue_worker_register(wt.q, "w", 30000, &err) == 0);
    free(th_redis_cmd(wt.redis, "HSET {t}:lane:x:@b circuit open circuit_until_ms 1"));
    const char *lanes[] = {"x:@b"};
    queue_fetched *f = NULL;
    int n = -1;
    CHECK(queue_fetch(wt.q, "w", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 0);
    queue_fetched_free(f, n);
    wt_enqueue("x", "@b", "probe", 2);
    CHECK(queue_fetch(wt.q, "w", lanes, 1, 10, 30000, &f, &n, &err) == 0);
    CHECK_INT(n, 1); /* the probe, and only it */
    CHECK(n == 1 && f[0].probe);
    queue_fetched_free(f, n);
}

static long lane_field(const char *lane, const char *field)
{
    char *v = th_redis_cmd(wt.redis, "HGET {t}:lane:%s %s", lane, field);
    long n = v ? strtol(v, NULL, 10) : 0;
    free(v);
    return n;
}

static int done_is(void *arg)
{
    wt_tick();
    return wt_done() >= *(long *)arg;
}

/* The budget a fetch reserves comes back when the job leaves without being
 * sent: buried as suppressed, or returned to its lane by the reaper after
 * its worker died before the attempt. Else the day's cap (3 here) is spent
 * on nothing and real emails park. */
static void budget_back_when_not_sent(void)
{
    wt_reset();
    char digest[65];
    REQUIRE(queue_suppress_hash("test-secret-0123456789abcdef", "gone@example.com", digest) == 0);
    free(th_redis_cmd(wt.redis, "HSET {t}:suppressed %s unsubscribe", digest));
    wt_enqueue_emails("budget", "gone@example.com", "supp", 3);
    pid_t w = wt_worker(NULL, "budget", "--foreground", "--once", NULL);
    where d = {"{t}:dead:sendgrid:budget", 3};
    CHECK(th_wait_for(in_set, &d, 10000));
    wt_term(w);
    CHECK_INT(lane_field("sendgrid:budget", "b_day_used"), 0);
    /* three real emails, fetched together by a worker that dies at once */
    wt_enqueue_emails("budget", NULL, "real", 3);
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=after_fetch:1:%s/crashed-budget", wt.dir);
    w = wt_worker(env, "budget2", "--processes", "1", "--lease", "1s", NULL);
    long three = 3;
    CHECK(th_wait_for(done_is, &three, 15000));
    wt_term(w);
    CHECK_INT(lane_field("sendgrid:budget", "b_day_used"), 3000000); /* micro-units */
    CHECK_INT(wt_sandbox_count("sendgrid", "email"), 3);
}

/* budget_fetch: n emails of the budget lane (cost 1, 3 a day) fetched by
 * worker w through the queue API, as a worker's fetch would; new array */
static queue_fetched *budget_fetch(const char *w, int n)
{
    wt_enqueue_emails("budget", NULL, w, n);
    hr_err err = {0};
    const char *lane = "sendgrid:budget";
    free(th_redis_cmd(wt.redis, "HSET {t}:lane:%s b_cost 1000000 b_day_cap 3000000", lane));
    if (queue_worker_register(wt.q, w, 30000, &err) != 0) return NULL;
    queue_fetched *f = NULL;
    int got = 0;
    if (queue_fetch(wt.q, w, &lane, 1, n, 30000, &f, &got, &err) != 0) return NULL;
    if (got != n) {
        queue_fetched_free(f, got);
        return NULL;
    }
    return f;
}

/* A reservation made on one day and given back on the next goes back into
 * its own day, not the new one: the new day's count (3 of 3 sent) stays.
 * Redis TIME cannot be moved, so the note of the job's day is rewritten to
 * an earlier one after the fetch. */
static void budget_refund_into_its_day(void)
{
    wt_reset();
    hr_err err = {0};
    const char *lane = "sendgrid:budget";
    queue_fetched *f = budget_fetch("w-late", 1);
    REQUIRE(f);
    char *day = th_redis_cmd(wt.redis, "HGET {t}:lane:%s r|%s", lane, f[0].ukh);
    CHECK(day && strlen(day) == 8); /* the fetch noted today's date */
    free(day);
    /* the job was fetched "yesterday"; today 3 of 3 went out */
    free(th_redis_cmd(wt.redis, "HSET {t}:lane:%s r|%s 19991231 b_day_used 3000000", lane,
                      f[0].ukh));
    CHECK_INT(queue_bury(wt.q, "w-late", f[0].ukh, lane, NULL, "test", &err), 1);
    CHECK_INT(lane_field(lane, "b_day_used"), 3000000);
    CHECK_INT(wt_redis_int("HEXISTS {t}:lane:sendgrid:budget r|%s", f[0].ukh), 0);
    queue_fetched_free(f, 1);
}

/* No budget comes back for a job that may have been sent: a thread retried
 * after a part of it was posted, or a job an operator buries from the
 * unknown set. A job that sent nothing still gets it back. */
static void budget_kept_when_maybe_sent(void)
{
    wt_reset();
    hr_err err = {0};
    const char *lane = "sendgrid:budget";
    queue_fetched *f = budget_fetch("w-kept", 3);
    REQUIRE(f);
    CHECK_INT(lane_field(lane, "b_day_used"), 3000000);
    /* a retry after part 1 of 3 was posted: spent */
    queue_job *j = queue_job_decode_stored(f[0].ukh, f[0].value, f[0].value_len, &err);
    REQUIRE(j);
    queue_job_set_meta(j, "parts_sent", "1");
    CHECK_INT(queue_retry(wt.q, "w-kept", j, hr_now_ms() + 60000, &err), 1);
    queue_job_free(j);
    CHECK_INT(lane_field(lane, "b_day_used"), 3000000);
    /* the operator buries, from unknown, a job whose attempt had started */
    CHECK_INT(queue_attempt(wt.q, "w-kept", f[1].ukh, &err), 0);
    REQUIRE(queue_worker_unregister(wt.q, "w-kept", &err) == 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:%s", lane), 1);
    CHECK_INT(queue_bury(wt.q, NULL, f[1].ukh, lane, NULL, "operator", &err), 1);
    /* the third, never attempted, went back to its lane with its budget */
    CHECK_INT(lane_field(lane, "b_day_used"), 2000000);
    queue_fetched_free(f, 3);
}

static int lane_paused(void *arg)
{
    wt_tick();
    return wt_redis_int("SISMEMBER {t}:paused %s", arg) == 1;
}

/* A refused password is not an expired session: its 401 pauses the lane at
 * once, without a login per retry. */
static void bluesky_refused_password_pauses(void)
{
    wt_reset();
    wt_enqueue("bluesky", "@bad.bsky.social", "never", 2);
    pid_t w = wt_worker(NULL, "bsky_bad", "--processes", "1", NULL);
    CHECK(th_wait_for(lane_paused, "bluesky:@bad.bsky.social", 10000));
    wt_idle(30); /* time for a loop to show */
    wt_term(w);
    long sessions = wt_sandbox_count("bluesky", "session");
    CHECK(sessions >= 1 && sessions <= 2); /* one login per job at most */
    CHECK_INT(wt_done(), 0);
}

static int bad_retried_at_least(void *arg)
{
    return wt_redis_int("ZCARD {t}:retry:%s", "bluesky:@bad.bsky.social") >= *(long *)arg;
}

/* A refused password with many jobs waiting for the login: one refused
 * createSession, not one per waiting job; the waiters go back unsent. */
static void refused_login_not_per_waiter(void)
{
    wt_reset();
    wt_enqueue("bluesky", "@bad.bsky.social", "herd-bad", 40);
    pid_t w = wt_worker(NULL, "bsky_bad_herd", "--processes", "1", "--concurrency", "64", NULL);
    CHECK(th_wait_for(lane_paused, "bluesky:@bad.bsky.social", 10000));
    long all = 40; /* every job back in the retry set, unsent */
    CHECK(th_wait_for(bad_retried_at_least, &all, 10000));
    wt_term(w);
    long sessions = wt_sandbox_count("bluesky", "session");
    fprintf(stderr, "  40 jobs, refused password: %ld createSession calls\n", sessions);
    CHECK(sessions >= 1 && sessions <= 2);
    CHECK_INT(wt_done(), 0);
}

static int log_has(void *arg)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", wt.dir, ((const char **)arg)[0]);
    char *t = th_read_file(path, NULL);
    int ok = t && strstr(t, ((const char **)arg)[1]);
    free(t);
    return ok;
}

static int fix_settled(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_redis_int("LLEN {t}:ready:x:@fix", "") + wt_redis_int("ZCARD %s", "{t}:retry:x:@fix") ==
           3;
}

/* A 401 pauses the lane and holds its jobs; once the credential file is
 * fixed and the lane resumed (herald resume), the same running worker reads
 * the credential again and sends them, where it kept the refused one, got
 * another 401 and paused the lane again without a word. */
static void resume_reads_credential(void)
{
    wt_reset();
    char *cred = hr_asprintf("%s/x-fix", wt.dir);
    th_write_file(cred, "invalid");
    wt_enqueue("x", "@fix", "held", 3);
    pid_t w = wt_worker(NULL, "resume", "--processes", "1", NULL);
    CHECK(th_wait_for(lane_paused, "x:@fix", 10000));
    CHECK(th_wait_for(fix_settled, NULL, 10000)); /* none in flight */
    /* posts enqueued during the pause (never held) are ready first after
     * the resume: the first fetched must not meet the old credential */
    wt_enqueue("x", "@fix", "during the pause", 2);
    th_write_file(cred, "token-fixed");
    char *argv[] = {HERALD_BIN, "resume", "x:@fix", NULL};
    CHECK_INT(th_exec(argv, NULL, 0, NULL), 0);
    CHECK(wt_wait_done(5, 10000));
    wt_term(w);
    CHECK_INT(wt_redis_int("SISMEMBER {t}:paused %s", "x:@fix"), 0);
    CHECK_INT(wt_sandbox_posts("x", NULL), 5);
    const char *resumed[] = {"resume.log", "lane resumed: its credential read again"};
    CHECK(log_has(resumed));
    free(cred);
}

/* An error reply (OOM here) while the connection stays up: the job the
 * worker had to let go is not stranded in an in-flight record the
 * heartbeat keeps alive; the reaper returns it and it is sent. */
static void error_reply_does_not_strand(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "stranded", 1);
    pid_t w = wt_worker("HERALD_WORKER_STALL_AT=after_fetch:1:1000", "strand", "--processes",
                        "1", "--lease", "2s", NULL);
    const char *stall[] = {"strand.log", "test seam: stalling"};
    CHECK(th_wait_for(log_has, stall, 10000));
    free(th_redis_cmd(wt.redis, "CONFIG SET maxmemory 1"));
    const char *refused[] = {"strand.log", "attempt not recorded"};
    CHECK(th_wait_for(log_has, refused, 10000));
    free(th_redis_cmd(wt.redis, "CONFIG SET maxmemory 0"));
    long one = 1;
    CHECK(th_wait_for(done_is, &one, 15000));
    wt_term(w);
    CHECK_INT(wt_sandbox_posts("x", NULL), 1);
}

/* thread_jobs enqueues n threads of three parts to x:@t. */
static void thread_jobs_of(const char *account, int n, int max_attempts)
{
    queue_job **jobs = hr_calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        char text[700], key[64];
        int len = snprintf(text, sizeof text, "Thread %d:", i);
        while (len < 600) len += snprintf(text + len, sizeof text - (size_t)len, " word%d", len);
        snprintf(key, sizeof key, "thread:%d", i);
        queue_job *j = jobs[i] = wt_post_job("x", account, key, text);
        queue_job_set_meta(j, "thread", "1");
        j->max_attempts = max_attempts;
    }
    wt_enqueue_jobs(jobs, n);
    free(jobs);
}

/* thread_jobs: on X's @t, which has no breaker (its openings only slow the
 * tests) */
static void thread_jobs(int n, int max_attempts) { thread_jobs_of("@t", n, max_attempts); }

static int window_settled(void *arg)
{
    return wt_done() + wt_redis_int("ZCARD {t}:retry:%s", "x:@w") >= *(long *)arg;
}

/* A backlog of threads stays within the rate window (9 calls an hour
 * here): the fetch admits a job for its first part, and each further part
 * is admitted as its request goes out; a part that does not fit sends its
 * thread back unsent to the window's reset (resuming after the parts
 * posted), not over the window. */
static void thread_backlog_within_window(void)
{
    wt_reset();
    thread_jobs_of("@w", 9, 5);
    pid_t w = wt_worker(NULL, "window", "--processes", "1", NULL);
    long nine = 9;
    CHECK(th_wait_for(window_settled, &nine, 10000));
    wt_term(w);
    long posts = wt_sandbox_posts("x", NULL);
    fprintf(stderr, "  rate=9/1h, 9 threads of 3: %ld calls made, window=%ld\n", posts,
            wt_window_points("lane:x:@w", 1));
    CHECK(posts <= 9);
    CHECK_INT(wt_window_points("lane:x:@w", 1), posts);
}

/* Every part of a thread counts in the account's rate windows (X allows
 * so many posts per 15 minutes, not so many threads). */
static void thread_parts_charged(void)
{
    wt_reset();
    thread_jobs(4, 5);
    pid_t w = wt_worker(NULL, "parts", "--processes", "1", NULL);
    CHECK(wt_wait_done(4, 10000));
    wt_term(w);
    CHECK_INT(wt_sandbox_posts("x", NULL), 12);
    CHECK_INT(wt_window_points("lane:x:@t", 1), 12);
}

/* A thread whose later part failed resumes after the parts it posted: X
 * would take a repeated part as a new tweet (the sandbox counts them as
 * duplicates by Idempotency-Key). The rate window counts the calls made:
 * a part a failure left unposted is charged when a retry sends it, once. */
static void thread_resumes_after_posted_parts(void)
{
    wt_reset();
    long f0 = wt_faults_injected();
    faults("{\"platform\":\"x\",\"rate500\":0.3}");
    enum { N = 10 };
    thread_jobs(N, 50);
    pid_t w = wt_worker(NULL, "thread", "--processes", "1", "--concurrency", "8", NULL);
    CHECK(wt_wait_done(N, 30000));
    wt_term(w);
    faults("{\"platform\":\"x\"}");
    long failed = wt_faults_injected() - f0;
    CHECK(failed > 0);
    long dups = -1, posts = wt_sandbox_posts("x", &dups);
    CHECK_INT(posts, 3 * N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_window_points("lane:x:@t", 1), posts + failed);
}

/* Jobs of one Bluesky account started together log in once: the others
 * wait for that session (Bluesky allows 30 logins per 5 minutes). */
static void one_login_per_account(void)
{
    wt_reset();
    wt_enqueue("bluesky", "@b.bsky.social", "herd", 40);
    pid_t w = wt_worker(NULL, "herd", "--processes", "1", "--concurrency", "64", NULL);
    CHECK(wt_wait_done(40, 15000));
    wt_term(w);
    CHECK_INT(wt_sandbox_count("bluesky", "session"), 1);
    CHECK_INT(wt_sandbox_posts("bluesky", NULL), 40);
}

static int lane_limit_is(void *arg)
{
    return wt_redis_int("HGET {t}:lane:mastodon:@m w1_limit", "") == *(long *)arg;
}

static int eight_taken(void *arg)
{
    (void)arg;
    return wt_sandbox_posts("mastodon", NULL) >= 8;
}

/* SIGHUP while a lane's sends are in flight (slow answers: 5 s): its new
 * limits apply at once, not when they end (on a busy lane they might never
 * all end); its account is swapped once they have, the lane not fetched
 * meanwhile. */
static void reload_on_busy_lane(void)
{
    wt_reset();
    faults("{\"platform\":\"mastodon\",\"slow_ms\":5000}");
    wt_enqueue("mastodon", "@m", "busy", 16);
    pid_t w = wt_worker(NULL, "hup", "--processes", "1", "--concurrency", "8", NULL);
    CHECK(th_wait_for(eight_taken, NULL, 10000)); /* answers due in 5 s */
    char *old = th_read_file(wt.conf, NULL);
    REQUIRE(old);
    const char *was = "credentials=masto-m rate=1000000/1h";
    char *at = strstr(old, "account mastodon:@m ");
    REQUIRE(at);
    at = strstr(at, was);
    REQUIRE(at);
    char *conf = hr_asprintf("%.*scredentials=masto-m rate=7777777/1h%s", (int)(at - old), old,
                             at + strlen(was));
    th_write_file(wt.conf, conf);
    kill(w, SIGHUP);
    long want = 7777777;
    CHECK(th_wait_for(lane_limit_is, &want, 4000));
    CHECK_INT(wt_done(), 0); /* before the sends in flight ended */
    faults("{\"platform\":\"mastodon\"}");
    wt_term(w);
    CHECK_INT(wt_done(), 8); /* the drain saw them through */
    th_write_file(wt.conf, old);
    free(conf);
    free(old);
}

enum { MANY_LANES = 300 };

/* A process serves every lane of its pool, however many (a table of 256
 * left the rest unserved, silently). */
static void every_lane_served(void)
{
    wt_reset();
    for (int i = 0; i < MANY_LANES; i++) {
        char acct[32];
        snprintf(acct, sizeof acct, "@u%d", i);
        wt_enqueue("mastodon", acct, "many", 1);
    }
    pid_t w = wt_worker(NULL, "many", "--processes", "1", NULL);
    CHECK(wt_wait_done(MANY_LANES, 20000));
    wt_term(w);
    CHECK_INT(wt_done(), MANY_LANES);
}

int main(void)
{
    hr_buf conf;
    hr_buf_init(&conf);
    hr_buf_puts(&conf, "account sendgrid:main base-url=http://127.0.0.1:$PORT credentials=sg-key "
                       "from=news@shop.example rate=1000000/1h\n"
                       "account sendgrid:budget base-url=http://127.0.0.1:$PORT "
                       "credentials=sg-key from=news@shop.example rate=1000000/1h cost=1 "
                       "budget-daily=3\n"
                       "account bluesky:@bad.bsky.social base-url=http://127.0.0.1:$PORT "
                       "handle=bad.bsky.social credentials=x-bad rate=1000000/1h\n"
                       "account x:@t base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 "
                       "rate=1000000/1h circuit=1000\n"
                       "account x:@w base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 "
                       "rate=9/1h\n"
                       "account x:@fix base-url=http://127.0.0.1:$PORT credentials=x-fix "
                       "user-id=14 rate=1000000/1h\n");
    for (int i = 0; i < MANY_LANES; i++)
        hr_buf_printf(&conf, "account mastodon:@u%d base-url=http://127.0.0.1:$PORT "
                             "credentials=masto-m rate=1000000/1h\n", i);
    wt_start(conf.data);
    hr_buf_release(&conf);
    char *cred = hr_asprintf("%s/sg-key", wt.dir);
    th_write_file(cred, "SG.sandbox-key");
    free(cred);
    cred = hr_asprintf("%s/x-fix", wt.dir); /* resume_reads_credential fixes it */
    th_write_file(cred, "invalid");
    free(cred);
    th_run("transient_honours_retry_after", transient_honours_retry_after);
    th_run("retry_time_on_redis_clock", retry_time_on_redis_clock);
    th_run("throttle_spends_no_attempt", throttle_spends_no_attempt);
    th_run("bluesky_expired_refreshes", bluesky_expired_refreshes);
    th_run("empty_lane_keeps_probe", empty_lane_keeps_probe);
    th_run("email_absent_goes_to_unknown", email_absent_goes_to_unknown);
    th_run("gateway_error_reads_back", gateway_error_reads_back);
    th_run("bluesky_absent_counts_attempts", bluesky_absent_counts_attempts);
    th_run("lost_on_kept_alive_not_resent", lost_on_kept_alive_not_resent);
    th_run("budget_back_when_not_sent", budget_back_when_not_sent);
    th_run("budget_refund_into_its_day", budget_refund_into_its_day);
    th_run("budget_kept_when_maybe_sent", budget_kept_when_maybe_sent);
    th_run("bluesky_refused_password_pauses", bluesky_refused_password_pauses);
    th_run("refused_login_not_per_waiter", refused_login_not_per_waiter);
    th_run("resume_reads_credential", resume_reads_credential);
    th_run("error_reply_does_not_strand", error_reply_does_not_strand);
    th_run("thread_resumes_after_posted_parts", thread_resumes_after_posted_parts);
    th_run("thread_parts_charged", thread_parts_charged);
    th_run("thread_backlog_within_window", thread_backlog_within_window);
    th_run("one_login_per_account", one_login_per_account);
    th_run("every_lane_served", every_lane_served);
    th_run("reload_on_busy_lane", reload_on_busy_lane);
    wt_stop();
    return th_main_end();
}
