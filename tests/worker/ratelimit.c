/* ratelimit.c: the fleet's sliding rate windows and per-app limits: no
 * interval of a window's length sees more calls at the sandbox than the
 * limit, across window boundaries (fixed windows let a lane make twice its
 * limit around one); an app limit holds every account of its platform,
 * across pools, while other platforms flow; the charge script's wait is
 * the time until the oldest buckets that must go have left the window. */
#include "internal.h"
#include "wktest.h"

/* the receive times of the posts the sandbox took for platform, sorted */
static int received(const char *platform, int64_t *at, int cap)
{
    char path[128];
    snprintf(path, sizeof path, "/_sandbox/posts?platform=%s&kind=post", platform);
    char *body = NULL;
    int n = 0;
    if (th_http(wt.sandbox_port, NULL, path, NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL), *v;
        size_t i;
        json_array_foreach(json_object_get(j, "posts"), i, v)
            if (n < cap && json_integer_value(json_object_get(v, "status")) / 100 == 2)
                at[n++] = json_integer_value(json_object_get(v, "received_ms"));
        json_decref(j);
    }
    free(body);
    for (int i = 1; i < n; i++) /* insertion sort: a few dozen */
        for (int k = i; k > 0 && at[k - 1] > at[k]; k--) {
            int64_t t = at[k];
            at[k] = at[k - 1];
            at[k - 1] = t;
        }
    return n;
}

/* the most calls any closed interval of win_ms holds */
static int busiest(const int64_t *at, int n, int64_t win_ms)
{
    int most = 0;
    for (int i = 0, k = 0; i < n; i++) {
        while (k < n && at[k] - at[i] <= win_ms) k++;
        if (k - i > most) most = k - i;
    }
    return most;
}

static int sent_at_least(void *arg)
{
    const long *want = arg;
    wt_tick();
    return wt_sandbox_posts("mastodon", NULL) >= *want;
}

/* 60 posts on an account allowed 20 per 2 s, ready late in a window (as
 * windows are aligned to the epoch, 1 s before one ends): fixed windows
 * sent 20 then and 20 more as the next began, 40 within 2 s. */
static void sliding_window_safety(void)
{
    wt_reset();
    pid_t w = wt_worker(NULL, "sliding", "--processes", "1", "--concurrency", "32", NULL);
    while (hr_now_ms() % 2000 < 1000 || hr_now_ms() % 2000 > 1100) usleep(2000);
    wt_enqueue("mastodon", "@s", "slide", 60);
    long all = 60;
    CHECK(th_wait_for(sent_at_least, &all, 30000));
    wt_term(w);
    int64_t at[64];
    int n = received("mastodon", at, 64);
    CHECK_INT(n, 60);
    int most = busiest(at, n, 2000);
    fprintf(stderr, "  rate=20/2s: 60 posts over %lld ms, at most %d within 2 s\n",
            (long long)(n ? at[n - 1] - at[0] : 0), most);
    CHECK(most <= 20);
    /* it kept flowing: three windows' worth in a few windows' time */
    CHECK(n == 60 && at[n - 1] - at[0] < 12000);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("mastodon", &dups), 60);
    CHECK_INT(dups, 0);
}

static int app_settled(void *arg)
{
    wt_tick();
    return wt_sandbox_posts("x", NULL) >= 40 && wt_sandbox_posts("mastodon", NULL) >= *(long *)arg;
}

/* Two X accounts allowed 30 an hour each, under an app limit of 80 points
 * an hour at 2 points a call (40 calls), sent by two pools: together they
 * make 40 calls, not 60, and Mastodon's lane keeps flowing meanwhile. */
static void app_limit_across_accounts(void)
{
    wt_reset();
    wt_enqueue("x", "@p1", "one", 50);
    wt_enqueue("x", "@p2", "two", 50);
    wt_enqueue("mastodon", "@m", "other", 30);
    pid_t w1 = wt_worker(NULL, "app1", "--processes", "2", "--concurrency", "8", NULL);
    pid_t w2 = wt_worker(NULL, "app2", "--processes", "2", "--concurrency", "8", NULL);
    long other = 30;
    CHECK(th_wait_for(app_settled, &other, 20000));
    wt_idle(50); /* many more fetch rounds: none may send more */
    wt_term(w1);
    wt_term(w2);
    CHECK_INT(wt_sandbox_posts("x", NULL), 40);
    CHECK_INT(wt_sandbox_posts("mastodon", NULL), 30);
    CHECK_INT(wt_window_points("app:x", 1), 80);
    long p1 = wt_window_points("lane:x:@p1", 1), p2 = wt_window_points("lane:x:@p2", 1);
    CHECK_INT(p1 + p2, 40);
    CHECK(p1 <= 30 && p2 <= 30);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@p1", "") + wt_redis_int("LLEN {t}:ready:x:@p2", ""),
              60);
    /* held by the app, not parked */
    CHECK_INT(wt_redis_int("HEXISTS {t}:lane:x:@p1 parked", ""), 0);
}

/* the charge script, run as the worker runs it: 0 or the ms to wait */
static long long charge(const char *lane, const char *app, int calls)
{
    queue_scripts_init();
    char *v = th_redis_cmd(wt.redis, "EVAL %s 2 {t}:lane:%s {t}:app:%s %d",
                           queue_scripts[QS_CHARGE].src, lane, app, calls);
    long long n = v ? atoll(v) : -1;
    free(v);
    return n;
}

/* Redis' clock (the scripts'), ms */
static long long redis_now_ms(void)
{
    char *v = th_redis_cmd(wt.redis, "TIME");
    char *nl = v ? strchr(v, '\n') : NULL;
    long long ms = nl ? atoll(v) * 1000 + atoll(nl + 1) / 1000 : 0;
    free(v);
    return ms;
}

/* A window of 5 per 2 s has buckets of 100 ms and looks at 22 of them
 * (20 for the window, the current one, one to spare): 2 calls in the
 * oldest, 3 ten buckets ago. One more call waits for the oldest bucket to
 * leave; three more for the one of ten buckets ago too. */
static void charge_waits_for_buckets(void)
{
    wt_reset();
    long long wait1 = 0, wait3 = 0, b = 0;
    for (int tries = 0; tries < 20; tries++) {
        long long now = redis_now_ms();
        if (now % 100 > 60) { /* a new bucket soon: the checks need one */
            usleep(50000);
            continue;
        }
        b = now / 100;
        free(th_redis_cmd(wt.redis,
                          "HSET {t}:lane:x:@c nw 1 w1_ms 2000 w1_limit 5 cost 1 "
                          "w1_b 100:%lld:2,0,0,0,0,0,0,0,0,0,0,3",
                          b - 21));
        wait1 = charge("x:@c", "x", 1);
        wait3 = charge("x:@c", "x", 3);
        if (redis_now_ms() / 100 == b) break;
        b = 0;
    }
    REQUIRE(b);
    CHECK(wait1 > 0 && wait1 <= 100);
    CHECK(wait3 > 1100 && wait3 <= 1200);
    /* nothing was charged by a refusal */
    char *v = th_redis_cmd(wt.redis, "HGET {t}:lane:x:@c w1_b");
    char want[64];
    snprintf(want, sizeof want, "100:%lld:2,0,0,0,0,0,0,0,0,0,0,3", b - 21);
    CHECK_STR(v, want);
    free(v);

    /* counts kept under another bucket size (the window was 1 s, g 50 ms)
     * count in the bucket of their last ms: 5 in bucket 2b-42 of 50 ms
     * end in bucket b-21 of 100 ms, the oldest still in the span; 5 in
     * bucket 2b-44 end in b-22, gone */
    for (int tries = 0; tries < 20; tries++) {
        long long now = redis_now_ms();
        if (now % 100 > 60) {
            usleep(50000);
            continue;
        }
        b = now / 100;
        free(th_redis_cmd(wt.redis, "HSET {t}:lane:x:@f nw 1 w1_ms 2000 w1_limit 5 w1_b 50:%lld:5",
                          2 * b - 42));
        free(th_redis_cmd(wt.redis, "HSET {t}:lane:x:@g nw 1 w1_ms 2000 w1_limit 5 w1_b 50:%lld:5",
                          2 * b - 44));
        wait1 = charge("x:@f", "none", 1);
        wait3 = charge("x:@g", "none", 1);
        if (redis_now_ms() / 100 == b) break;
        b = 0;
    }
    REQUIRE(b);
    CHECK(wait1 > 0 && wait1 <= 100);
    CHECK_INT(wait3, 0);

    /* an app window without room refuses the lane's call, charging neither */
    free(th_redis_cmd(wt.redis, "HSET {t}:lane:x:@d nw 1 w1_ms 60000 w1_limit 100 cost 1"));
    free(th_redis_cmd(wt.redis, "HSET {t}:app:x nw 1 w1_ms 60000 w1_limit 4 cost 2"));
    CHECK_INT(charge("x:@d", "x", 2), 0);
    CHECK_INT(wt_window_points("app:x", 1), 4);
    long long wait = charge("x:@d", "x", 1);
    CHECK(wait > 60000 && wait <= 66000); /* the span: 60 s and two buckets of 3 s */
    CHECK_INT(wt_window_points("lane:x:@d", 1), 2);
    CHECK_INT(wt_window_points("app:x", 1), 4);

    /* the fields of the fixed windows of old are ignored */
    free(th_redis_cmd(wt.redis, "HSET {t}:lane:x:@e nw 1 w1_ms 60000 w1_limit 3 w1_start 0 "
                                "w1_used 3"));
    CHECK_INT(charge("x:@e", "none", 3), 0);
    CHECK_INT(wt_window_points("lane:x:@e", 1), 3);
    CHECK(charge("x:@e", "none", 1) > 0);
}

int main(void)
{
    wt_start("account mastodon:@s base-url=http://127.0.0.1:$PORT credentials=masto-m "
             "rate=20/2s\n"
             "account x:@p1 base-url=http://127.0.0.1:$PORT credentials=x-a user-id=21 "
             "rate=30/1h\n"
             "account x:@p2 base-url=http://127.0.0.1:$PORT credentials=x-b user-id=22 "
             "rate=30/1h\n"
             "app x rate=80/1h points=2\n");
    th_run("sliding_window_safety", sliding_window_safety);
    th_run("app_limit_across_accounts", app_limit_across_accounts);
    th_run("charge_waits_for_buckets", charge_waits_for_buckets);
    wt_stop();
    return th_main_end();
}
