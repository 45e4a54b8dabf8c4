/* threads.c: a thread whose later part loses its answer is neither marked
 * sent with parts missing nor posted twice: the read-back looks for the
 * part in flight (not the first), a part found before the last goes on with
 * the next, and the reconciler walks the parts from the saved progress when
 * a worker died mid-thread (kill -9, nothing saved). X, Mastodon, Bluesky. */
#include "wktest.h"

static const char *json_hdr[] = {"Content-Type: application/json", NULL};

/* enqueue_thread adds one job of about len characters, split into parts */
static void enqueue_thread(const char *platform, const char *account, int len)
{
    char text[1600];
    int n = snprintf(text, sizeof text, "Thread on %s:", platform);
    while (n < len) n += snprintf(text + n, sizeof text - (size_t)n, " w%d", n);
    queue_job *j = wt_post_job(platform, account, "thread:1", text);
    queue_job_set_meta(j, "thread", "1");
    wt_enqueue_job(j);
}

static void faults(const char *platform, const char *rest)
{
    char body[200];
    snprintf(body, sizeof body, "{\"platform\":\"%s\"%s}", platform, rest);
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", json_hdr, body, NULL), 200);
}

static const char *cur_platform;
static int posts_at_least(void *arg)
{
    return wt_sandbox_posts(cur_platform, NULL) >= *(long *)arg;
}
static int injected_at_least(void *arg) { return wt_faults_injected() >= *(long *)arg; }

/* done_and_settled: the job is done and its lane has nothing unknown */
static int done_and_settled(void *arg)
{
    wt_tick();
    return wt_done() >= 1 && wt_redis_int("ZCARD %s", (const char *)arg) == 0;
}

/* part_lost_inline: part 1 is posted, part 2's request is dropped (its
 * answer lost) and so is the read-back right after it. The worker must
 * look for part 2, not part 1: X proves nothing by a timeline at once (to
 * the reconciler, which sends it back with part 1 as progress); Mastodon's
 * keyed re-POST of part 2 posts it once, and the worker goes on with part
 * 3. Either way every part is posted exactly once. */
static void part_lost_inline(const char *platform, const char *account, int len)
{
    wt_reset();
    cur_platform = platform;
    /* part 1's answer comes late: time to drop what follows it */
    faults(platform, ",\"slow_ms\":1500");
    enqueue_thread(platform, account, len);
    long f0 = wt_faults_injected();
    char log[64];
    snprintf(log, sizeof log, "inline-%s", platform);
    pid_t w = wt_worker(NULL, log, "--processes", "1", NULL);
    long one = 1;
    CHECK(th_wait_for(posts_at_least, &one, 10000));
    faults(platform, ",\"drop\":1.0");
    long two = f0 + 2; /* part 2, then the read-back right after it */
    CHECK(th_wait_for(injected_at_least, &two, 15000));
    faults(platform, "");
    char unknown[128];
    snprintf(unknown, sizeof unknown, "{t}:unknown:%s:%s", platform, account);
    CHECK(th_wait_for(done_and_settled, unknown, 30000));
    wt_term(w);
    long posts = wt_sandbox_posts(platform, NULL);
    fprintf(stderr, "  %s: done=%ld, parts posted=%ld of 3\n", platform, wt_done(), posts);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(posts, 3);
}

/* killed_mid_thread: the worker dies (kill -9) as part 2's answer begins:
 * parts 1 and 2 are on the platform, the job's saved progress says none.
 * The reconciler finds part 1, then part 2, not part 3, and sends the job
 * back with both as progress (Mastodon: its keyed re-POST of part 3 posts
 * it): part 3 is posted once, the first two never again. n_before: the
 * requests of a send before part 1's (Bluesky logs in). */
static void killed_mid_thread(const char *platform, const char *account, int len, int n_before)
{
    wt_reset();
    cur_platform = platform;
    enqueue_thread(platform, account, len);
    char env[800], log[64];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=during_send:%d:%s/crashed-%s",
             n_before + 2, wt.dir, platform);
    snprintf(log, sizeof log, "killed-%s", platform);
    pid_t w = wt_worker(env, log, "--processes", "1", "--lease", "1s", NULL);
    char unknown[128];
    snprintf(unknown, sizeof unknown, "{t}:unknown:%s:%s", platform, account);
    CHECK(th_wait_for(done_and_settled, unknown, 30000));
    wt_term(w);
    char crashed[700];
    snprintf(crashed, sizeof crashed, "%s/crashed-%s", wt.dir, platform);
    CHECK(access(crashed, F_OK) == 0); /* it did die mid-thread */
    long posts = wt_sandbox_posts(platform, NULL);
    fprintf(stderr, "  %s: done=%ld, parts posted=%ld of 3\n", platform, wt_done(), posts);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(posts, 3);
}

/* Text lengths giving 3 parts: X 280, Mastodon 500, Bluesky 300. */
static void x_part_lost_inline(void) { part_lost_inline("x", "@t", 600); }
static void mastodon_part_lost_inline(void) { part_lost_inline("mastodon", "@mt", 1100); }
static void x_killed_mid_thread(void) { killed_mid_thread("x", "@t", 600, 0); }
static void mastodon_killed_mid_thread(void) { killed_mid_thread("mastodon", "@mt", 1100, 0); }
static void bluesky_killed_mid_thread(void)
{
    killed_mid_thread("bluesky", "@b.bsky.social", 700, 1);
}

int main(void)
{
    /* no breaker: the dropped requests must not hold the lane back */
    wt_start("account x:@t base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 "
             "rate=1000000/1h circuit=1000\n"
             "account mastodon:@mt base-url=http://127.0.0.1:$PORT credentials=masto-m "
             "rate=1000000/1h circuit=1000\n");
    th_run("x_part_lost_inline", x_part_lost_inline);
    th_run("mastodon_part_lost_inline", mastodon_part_lost_inline);
    th_run("x_killed_mid_thread", x_killed_mid_thread);
    th_run("mastodon_killed_mid_thread", mastodon_killed_mid_thread);
    th_run("bluesky_killed_mid_thread", bluesky_killed_mid_thread);
    wt_stop();
    return th_main_end();
}
