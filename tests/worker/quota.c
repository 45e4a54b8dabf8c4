/* quota.c: 429s and remaining-quota headers, against a stand-in X whose
 * answers each test chooses (a hook_httpd on a thread of this process): a
 * reset already past is retried after a pause, not at once; a reset is
 * read against the platform's clock (its Date), not this host's; an older
 * remaining count answered late never raises a newer, lower one. */
#include <ev.h>
#include <pthread.h>
#include <time.h>

#include "webhooks.h"
#include "wktest.h"

typedef enum { SI_PAST, SI_SKEW, SI_QUOTA } si_mode;

/* The stand-in: its loop runs on its own thread; what the tests read or
 * set is under mu. */
static struct {
    pthread_mutex_t mu;
    struct ev_loop *loop;
    hook_httpd *h;
    ev_async wake;
    pthread_t thread;
    si_mode mode;
    int requests;       /* posts seen since si_reset */
    int answered;       /* of those, answered */
    int throttled;      /* of those, answered 429 */
    int64_t last_429_ms; /* when the last 429 went out (this host's clock) */
    hook_req *held;     /* SI_QUOTA: the first post, answered when released */
    int release;
    int64_t reset_s;    /* SI_QUOTA: the window's reset (epoch s) */
} si = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* si_answer answers r as X would: 201 with a post id, or 429; the Date of
 * the platform's clock (date_s), and quota headers unless remaining < 0. */
static void si_answer(hook_req *r, int status, int64_t date_s, long remaining, int64_t reset_s)
{
    char date[64], v[32];
    time_t t = (time_t)date_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    hook_req_add_header(r, "Date", date);
    if (remaining >= 0) {
        hook_req_add_header(r, "x-rate-limit-limit", "5");
        snprintf(v, sizeof v, "%ld", remaining);
        hook_req_add_header(r, "x-rate-limit-remaining", v);
        snprintf(v, sizeof v, "%lld", (long long)reset_s);
        hook_req_add_header(r, "x-rate-limit-reset", v);
    }
    si.answered++;
    if (status == 429) {
        si.throttled++;
        si.last_429_ms = hr_now_ms();
        hook_req_respond_json(r, 429, "{\"title\":\"Too Many Requests\",\"status\":429}");
        return;
    }
    char body[96];
    snprintf(body, sizeof body, "{\"data\":{\"id\":\"%d\",\"text\":\"t\"}}", 9000 + si.answered);
    hook_req_respond_json(r, status, body);
}

static void si_handle(hook_req *r, void *priv)
{
    (void)priv;
    pthread_mutex_lock(&si.mu);
    int k = ++si.requests;
    int64_t now_s = hr_now_ms() / 1000;
    switch (si.mode) {
    case SI_PAST: /* the reset named is 5 s ago */
        si_answer(r, 429, now_s, 0, now_s - 5);
        break;
    case SI_SKEW: /* the platform's clock is 30 s behind; its reset 20 s ahead of it */
        si_answer(r, 429, now_s - 30, 0, now_s - 30 + 20);
        break;
    case SI_QUOTA: /* 5 a window; the first answer comes last */
        if (k == 1) si.held = r;
        else if (k > 5) si_answer(r, 429, now_s, 0, si.reset_s);
        else si_answer(r, 201, now_s, 5 - k, si.reset_s);
        break;
    }
    pthread_mutex_unlock(&si.mu);
}

static void si_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    pthread_mutex_lock(&si.mu);
    if (si.release && si.held) {
        si_answer(si.held, 201, hr_now_ms() / 1000, 4, si.reset_s);
        si.held = NULL;
    }
    pthread_mutex_unlock(&si.mu);
}

static void *si_run(void *arg)
{
    (void)arg;
    ev_run(si.loop, 0);
    return NULL;
}

/* si_start starts the stand-in; returns its port. */
static int si_start(void)
{
    si.loop = ev_loop_new(EVFLAG_AUTO);
    hook_httpd_opts o = {.listen = "127.0.0.1:0", .handler = si_handle};
    hr_err err = {0};
    si.h = hook_httpd_new(si.loop, &o, &err);
    if (!si.h) {
        fprintf(stderr, "stand-in: %s\n", err.msg);
        exit(1);
    }
    ev_async_init(&si.wake, si_on_wake);
    ev_async_start(si.loop, &si.wake);
    pthread_create(&si.thread, NULL, si_run, NULL);
    return hook_httpd_port(si.h);
}

/* si_reset sets the mode for the next test and forgets what it saw. */
static void si_reset(si_mode m)
{
    pthread_mutex_lock(&si.mu);
    si.mode = m;
    si.requests = si.answered = si.throttled = 0;
    si.last_429_ms = 0;
    si.release = 0;
    si.reset_s = hr_now_ms() / 1000 + 600;
    pthread_mutex_unlock(&si.mu);
}

static int si_get(const int *field)
{
    pthread_mutex_lock(&si.mu);
    int v = *field;
    pthread_mutex_unlock(&si.mu);
    return v;
}

/* retry_score returns the time the lane's one retry is due (Redis's
 * clock, ms), 0 when none. */
static int64_t retry_score(const char *lane)
{
    char *s = th_redis_cmd(wt.redis, "ZRANGE {t}:retry:%s 0 0 WITHSCORES", lane);
    const char *nl = s ? strchr(s, '\n') : NULL;
    int64_t v = nl ? strtoll(nl + 1, NULL, 10) : 0;
    free(s);
    return v;
}

static int retrying(void *arg) { return retry_score(arg) > 0; }

/* retried_after: the one post of lane is answered 429 by the stand-in in
 * mode m; returns how long after that answer the worker set its retry. */
static int64_t retried_after(si_mode m, const char *account)
{
    wt_reset();
    si_reset(m);
    char lane[64], key[80];
    snprintf(lane, sizeof lane, "x:%s", account);
    snprintf(key, sizeof key, "%s:once", lane);
    wt_enqueue_job(wt_post_job("x", account, key, "throttled"));
    pid_t w = wt_worker(NULL, account + 1, "--processes", "1", NULL);
    int ok = th_wait_for(retrying, lane, 10000);
    wt_term(w);
    CHECK(ok);
    CHECK_INT(si_get(&si.throttled), 1); /* not retried at once */
    pthread_mutex_lock(&si.mu);
    int64_t at = si.last_429_ms;
    pthread_mutex_unlock(&si.mu);
    return ok && at ? retry_score(lane) - at : -1;
}

/* A 429 whose reset is already past (a stale header, clocks apart): the
 * job waits at least WORKER_RETRY_AFTER_MIN_MS, where it came back at once
 * and a lane could spend its whole window on 429s. */
static void past_reset_waits(void)
{
    int64_t d = retried_after(SI_PAST, "@past");
    fprintf(stderr, "  reset 5 s past: retry due %lld ms after the 429\n", (long long)d);
    CHECK(d >= 1000);
}

/* The platform's clock is 30 s behind this host's and its reset 20 s ahead
 * of its own clock: the job waits the 20 s (the answer's Date), not the
 * floor for a reset that this host's clock sees as 10 s past. */
static void reset_by_platform_clock(void)
{
    int64_t d = retried_after(SI_SKEW, "@skew");
    fprintf(stderr, "  platform clock 30 s behind, reset +20 s: retry due %lld ms after\n",
            (long long)d);
    CHECK(d >= 19000 && d <= 25000);
}

/* quota_spent: the lane has no quota left, and every post but the held
 * first one is sent and acknowledged (none other fetched) */
static int quota_spent(void *arg)
{
    (void)arg;
    char *left = th_redis_cmd(wt.redis, "HGET {t}:lane:x:@quota q_left");
    int zero = left && strcmp(left, "0") == 0;
    free(left);
    long fetched = 8 - wt_redis_int("LLEN {t}:ready:x:@quota", "") - wt_done();
    pthread_mutex_lock(&si.mu);
    int rest = si.requests >= 2 && si.answered == si.requests - 1;
    pthread_mutex_unlock(&si.mu);
    return zero && rest && fetched == 1;
}

static int all_answered(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&si.mu);
    int all = si.answered == si.requests;
    pthread_mutex_unlock(&si.mu);
    return all;
}

/* X allows 5 a window here and says how many are left after each post:
 * the first post's answer (4 left) comes after those of the next ones (3,
 * 2, 1, ... left). Written last, it raised the count the fetch goes by
 * from 0 back to 4, and the lane sent into 429s; it must lower it only.
 * (Two posts started together may reach X in either order, so the worker
 * counts the later-started one as not in the other's answer: it may stop
 * one short of 5, never over.) */
static void late_quota_never_raises(void)
{
    wt_reset();
    si_reset(SI_QUOTA);
    wt_enqueue("x", "@quota", "quota", 8);
    pid_t w = wt_worker(NULL, "quota", "--processes", "1", "--concurrency", "2", NULL);
    CHECK(th_wait_for(quota_spent, NULL, 15000));
    pthread_mutex_lock(&si.mu);
    si.release = 1;
    pthread_mutex_unlock(&si.mu);
    ev_async_send(si.loop, &si.wake);
    CHECK(th_wait_for(all_answered, NULL, 10000));
    CHECK(wt_wait_done(si_get(&si.requests), 10000));
    wt_idle(50); /* many fetch rounds: none may send more */
    wt_term(w);
    int posts = si_get(&si.requests);
    fprintf(stderr, "  limit 5, first answer last: %d posts, %d answered 429\n",
            si_get(&si.requests), si_get(&si.throttled));
    CHECK(posts >= 4 && posts <= 5);
    CHECK_INT(si_get(&si.requests), posts);
    CHECK_INT(si_get(&si.throttled), 0);
    CHECK_INT(wt_done(), posts);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@quota", ""), 8 - posts);
}

int main(void)
{
    int port = si_start();
    char conf[1024];
    snprintf(conf, sizeof conf,
             "account x:@past base-url=http://127.0.0.1:%d credentials=x-a user-id=31 "
             "rate=1000/1h\n"
             "account x:@skew base-url=http://127.0.0.1:%d credentials=x-a user-id=32 "
             "rate=1000/1h\n"
             "account x:@quota base-url=http://127.0.0.1:%d credentials=x-a user-id=33 "
             "rate=1000/1h\n",
             port, port, port);
    wt_start(conf);
    th_run("past_reset_waits", past_reset_waits);
    th_run("reset_by_platform_clock", reset_by_platform_clock);
    th_run("late_quota_never_raises", late_quota_never_raises);
    wt_stop();
    return th_main_end();
}
