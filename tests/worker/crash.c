/* crash.c: kill -9 at each step of a send (after fetch, after the attempt
 * record, during the send, after the answer, before the acknowledgement),
 * on every kind of read-back: Bluesky (exact, by rkey) with up to 512 sends
 * in flight out of 2,000 jobs; X, LinkedIn, Facebook and Threads (the post
 * looked for by its text in the account's posts, page by page: 128 sends
 * in flight post more than a page's worth since a job's time), Mastodon
 * (the Idempotency-Key replayed) and SendGrid (the provider's message
 * search) with 200. Afterwards every
 * job is sent exactly once (each job's key once among what the sandbox
 * took, no duplicate request, nothing left unknown, every job done) and
 * none is lost. */
#include "wktest.h"

typedef struct crash_case {
    const char *name, *platform, *account;
    const char *kind;    /* what the sandbox records: post or email */
    int jobs, nth, conc; /* crash the nth time a step is reached, conc in flight */
} crash_case;

/* Built three times (tests/worker/CMakeLists.txt): worker_crash runs the
 * stall and Bluesky's 2,000, worker_crash_platforms (CRASH_PLATFORMS) the
 * others but Meta's, worker_crash_meta (CRASH_META) Facebook and Threads,
 * so that `ctest -j` runs them side by side. */
static const crash_case cases[] = {
#if defined(CRASH_META)
    {"crash_facebook", "facebook", "shop", "post", 200, 80, 128},
    {"crash_threads", "threads", "shop", "post", 200, 80, 128},
#elif !defined(CRASH_PLATFORMS)
    {"crash_bluesky", "bluesky", "@b.bsky.social", "post", 2000, 300, 512},
#else
    {"crash_x", "x", "@a", "post", 200, 80, 128},
    {"crash_linkedin", "linkedin", "@li", "post", 200, 80, 128},
    {"crash_mastodon", "mastodon", "@m", "post", 200, 80, 128},
    {"crash_sendgrid", "sendgrid", "main", "email", 200, 80, 128},
#endif
};

/* the LinkedIn, SendGrid, Facebook and Threads accounts, and a short email
 * settle: a search that finds nothing is believed 300 ms after the job went
 * unknown (the timelines' reconcile-timeline-settle is wt_start's 100 ms),
 * so an absent job is sent again within the test instead of waiting for
 * minutes */
#define CRASH_CONF                                                                                \
    "reconcile-email-settle 300ms\n"                                                              \
    "account linkedin:@li base-url=http://127.0.0.1:$PORT credentials=li-token "                 \
    "author=urn:li:organization:5515715 rate=1000000/1h\n"                                        \
    "account sendgrid:main base-url=http://127.0.0.1:$PORT credentials=sg-key "                  \
    "from=news@shop.example rate=1000000/1h\n"                                                   \
    "account facebook:shop base-url=http://127.0.0.1:$PORT credentials=fb-token "                \
    "page-id=1122334455 rate=1000000/1h\n"                                                       \
    "account threads:shop base-url=http://127.0.0.1:$PORT credentials=th-token "                 \
    "user-id=1234567 rate=1000000/1h\n"

static void crash_at(const char *step, const crash_case *c)
{
    wt_reset();
    int n = c->jobs;
    if (!strcmp(c->kind, "email")) wt_enqueue_emails(c->account, NULL, step, n);
    else wt_enqueue(c->platform, c->account, step, n);
    char env[800], conc[16];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=%s:%d:%s/crashed-%s-%s", step, c->nth,
             wt.dir, step, c->platform);
    snprintf(conc, sizeof conc, "%d", c->conc);
    /* The worker process dies the nth time it reaches the step, with many
     * sends in flight; the supervisor restarts it; the reconciler settles
     * what was unknown: found, it is sent; proved absent (the timelines and
     * emails after their settle time), it goes back to its lane. */
    pid_t w = wt_worker(env, step, "--processes", "1", "--concurrency", conc, "--lease", "1s",
                        NULL);
    int ok = wt_wait_done(n, 28000);
    CHECK(ok);
    wt_term(w);
    long dups = -1, keys = -1;
    long taken = wt_sandbox_taken(c->platform, c->kind, &dups, &keys);
    char lane[96];
    snprintf(lane, sizeof lane, "{t}:unknown:%s:%s", c->platform, c->account);
    long unknown = wt_redis_int("ZCARD %s", lane);
    int replays = !strcmp(c->platform, "mastodon"); /* below */
    if (!ok || taken != n || keys != n || (dups != 0 && !replays) || unknown != 0)
        fprintf(stderr, "  %s at %s: done %ld, taken %ld, distinct %ld, dups %ld, unknown %ld\n",
                c->platform, step, wt_done(), taken, keys, dups, unknown);
    CHECK_INT(taken, n); /* none lost, none taken twice */
    CHECK_INT(keys, n);
    /* Mastodon's read-back is the same request with the same
     * Idempotency-Key: the sandbox answers it from its record and counts it
     * as a replay; no post is made twice (taken == n). */
    if (!replays) CHECK_INT(dups, 0);
    CHECK_INT(unknown, 0);
    CHECK_INT(wt_done(), n);
    /* it really crashed; past the fetch, the job it died on had its attempt
     * recorded, so the reconciler settled at least that one */
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", wt.dir, step);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "test seam: crashing"));
    if (strcmp(step, "after_fetch") != 0) CHECK(text && strstr(text, "\"msg\":\"reconciled: "));
    free(text);
}

static const crash_case *current;

static void crash_each_step(void)
{
    static const char *const steps[] = {"after_fetch", "after_attempt", "during_send",
                                        "after_answer", "before_ack"};
    for (size_t i = 0; i < HR_ARRAY_LEN(steps); i++)
        crash_at(steps[i], current);
}

#if !defined(CRASH_PLATFORMS) && !defined(CRASH_META)
/* A worker that stalls past its lease (a frozen host) right after a fetch
 * must not send what it had recorded attempts for (the reaper may have
 * handed those jobs on: they go to unknown and are read back), and comes
 * back under a new id so the reaper returns what it dropped: the old id
 * renewed would strand them, or let a re-fetch be sent twice. */
static void stall_past_lease(void)
{
    wt_reset();
    enum { N = 500 };
    wt_enqueue("x", "@a", "stall", N);
    pid_t w = wt_worker("HERALD_WORKER_STALL_AT=after_fetch:100:2500", "stall", "--processes",
                        "1", "--concurrency", "64", "--lease", "1s", NULL);
    CHECK(wt_wait_done(N, 28000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 0);
    char log[700];
    snprintf(log, sizeof log, "%s/stall.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "test seam: stalling"));
    CHECK(text && (strstr(text, "lease lost") || strstr(text, "lease not vouched")));
    free(text);
}
#endif

int main(void)
{
    wt_start(CRASH_CONF);
    const char *creds[][2] = {{"li-token", "token-li"},
                              {"sg-key", "SG.sandbox-key"},
                              {"fb-token", "token-fb"},
                              {"th-token", "token-th"}};
    for (size_t i = 0; i < HR_ARRAY_LEN(creds); i++) {
        char *path = hr_asprintf("%s/%s", wt.dir, creds[i][0]);
        th_write_file(path, creds[i][1]);
        free(path);
    }
#if !defined(CRASH_PLATFORMS) && !defined(CRASH_META)
    th_run("stall_past_lease", stall_past_lease);
#endif
    for (size_t i = 0; i < HR_ARRAY_LEN(cases); i++) {
        current = &cases[i];
        th_run(cases[i].name, crash_each_step);
    }
    wt_stop();
    return th_main_end();
}
