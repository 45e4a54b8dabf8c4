/* limits.c: throttling as a fleet: two worker pools (separate process
 * trees, as on two machines) sharing one account stay under its limit
 * together; a budget cap parks a lane (visible, nothing dropped) and a
 * config reload that lifts the cap resumes it. */
#include "wktest.h"

static long sent_x(void) { return wt_sandbox_posts("x", NULL); }

static int settled(void *arg)
{
    long *want = arg;
    wt_tick();
    return wt_done() >= *want;
}

static void two_pools_share_a_limit(void)
{
    wt_reset();
    wt_enqueue("x", "@a", "limited", 100);
    /* x:@a allows 30 a day (config below): two pools, two processes each */
    pid_t w1 = wt_worker(NULL, "pool1", "--processes", "2", "--concurrency", "8", NULL);
    pid_t w2 = wt_worker(NULL, "pool2", "--processes", "2", "--concurrency", "8", NULL);
    long want = 30;
    CHECK(th_wait_for(settled, &want, 15000));
    /* Give all four processes many more fetch rounds: none may send more. */
    wt_idle(50);
    CHECK_INT(sent_x(), 30);
    CHECK_INT(wt_done(), 30);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@a", ""), 70);
    CHECK_INT(wt_window_points("lane:x:@a", 1), 30);
    wt_term(w1);
    wt_term(w2);
}

/* lane_parked: whether the lane's state hash says a budget cap holds it */
static int lane_parked(const char *lane)
{
    char *s = th_redis_cmd(wt.redis, "HGET {t}:lane:%s parked", lane);
    int yes = s && strcmp(s, "budget") == 0;
    free(s);
    return yes;
}

static int parked(void *arg)
{
    (void)arg;
    return lane_parked("x:@b");
}

static int park_logged(void *arg)
{
    (void)arg;
    char log[700];
    snprintf(log, sizeof log, "%s/budget.log", wt.dir);
    char *text = th_read_file(log, NULL);
    int yes = text && strstr(text, "budget cap reached");
    free(text);
    return yes;
}

static void budget_cap_parks_and_resumes(void)
{
    wt_reset();
    wt_enqueue("x", "@b", "paid", 60);
    pid_t w = wt_worker(NULL, "budget", "--processes", "1", "--concurrency", "8", NULL);
    long want = 25;
    CHECK(th_wait_for(settled, &want, 15000));
    CHECK(th_wait_for(parked, NULL, 10000));
    CHECK(th_wait_for(park_logged, NULL, 10000));
    CHECK_INT(wt_done(), 25); /* 0.25 a day at 0.01 a post */
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@b", ""), 0);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@b", ""), 35);
    /* lift the cap and reload: the lane resumes */
    char *conf = th_read_file(wt.conf, NULL);
    REQUIRE(conf);
    char *at = strstr(conf, "budget-daily=0.25");
    REQUIRE(at);
    memcpy(at, "budget-daily=9.00", 17);
    th_write_file(wt.conf, conf);
    free(conf);
    kill(w, SIGHUP);
    want = 60;
    CHECK(th_wait_for(settled, &want, 15000));
    CHECK_INT(sent_x(), 60);
    wt_term(w);
    CHECK(!parked(NULL));
    /* the park was logged once, as an error, and the resume once */
    char log[700];
    snprintf(log, sizeof log, "%s/budget.log", wt.dir);
    char *text = th_read_file(log, NULL);
    int n = 0;
    for (char *q = text; q && (q = strstr(q, "budget cap reached")); q++) n++;
    CHECK_INT(n, 1);
    CHECK(text && strstr(text, "budget available again"));
    free(text);
}

/* count_in counts needle in the logs of pools (NULL-terminated names). */
static int count_in(const char *needle, const char *const *pools)
{
    int n = 0;
    for (int i = 0; pools[i]; i++) {
        char log[700];
        snprintf(log, sizeof log, "%s/%s.log", wt.dir, pools[i]);
        char *text = th_read_file(log, NULL);
        for (char *q = text; q && (q = strstr(q, needle)); q++) n++;
        free(text);
    }
    return n;
}

static const char *const fleet_logs[] = {"fleet1", "fleet2", NULL};

static int fleet_parked(void *arg)
{
    (void)arg;
    return lane_parked("x:@c") && count_in("budget cap reached", fleet_logs) > 0;
}

/* The park is one change for the fleet, made by one fetch: one error line
 * for it however many processes and pools share the lane, and one resume. */
static void budget_park_logged_once_by_fleet(void)
{
    wt_reset();
    wt_enqueue("x", "@c", "fleet", 20);
    pid_t w1 = wt_worker(NULL, "fleet1", "--processes", "3", "--concurrency", "4", NULL);
    pid_t w2 = wt_worker(NULL, "fleet2", "--processes", "2", "--concurrency", "4", NULL);
    long want = 5;
    CHECK(th_wait_for(settled, &want, 15000));
    CHECK(th_wait_for(fleet_parked, NULL, 10000));
    /* every process fetches (and before the fix looked at the lane every
     * 2 s and logged the park itself) many times meanwhile */
    wt_idle(300);
    CHECK_INT(wt_done(), 5); /* 0.05 a day at 0.01 a post */
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@c", ""), 15);
    CHECK_INT(count_in("budget cap reached", fleet_logs), 1);
    /* herald stats shows the lane parked */
    char *argv[] = {HERALD_BIN, "stats", "--json", NULL};
    char *out = NULL;
    CHECK_INT(th_exec(argv, NULL, 0, &out), 0);
    CHECK(out && strstr(out, "\"parked\":\"budget\""));
    free(out);
    /* lift the cap and reload both pools: the lane resumes */
    char *conf = th_read_file(wt.conf, NULL);
    REQUIRE(conf);
    char *at = strstr(conf, "budget-daily=0.05");
    REQUIRE(at);
    memcpy(at, "budget-daily=9.00", 17);
    th_write_file(wt.conf, conf);
    free(conf);
    kill(w1, SIGHUP);
    kill(w2, SIGHUP);
    want = 20;
    CHECK(th_wait_for(settled, &want, 15000));
    wt_idle(300);
    wt_term(w1);
    wt_term(w2);
    CHECK_INT(wt_done(), 20);
    CHECK_INT(sent_x(), 20);
    CHECK_INT(wt_redis_int("HEXISTS {t}:lane:x:@c parked", ""), 0);
    CHECK_INT(count_in("budget cap reached", fleet_logs), 1);
    CHECK_INT(count_in("budget available again", fleet_logs), 1);
}

int main(void)
{
    wt_start("account x:@a base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 "
             "rate=30/24h\n"
             "account x:@b base-url=http://127.0.0.1:$PORT credentials=x-b user-id=12 "
             "cost=0.01 budget-daily=0.25\n"
             "account x:@c base-url=http://127.0.0.1:$PORT credentials=x-b user-id=12 "
             "cost=0.01 budget-daily=0.05\n");
    th_run("two_pools_share_a_limit", two_pools_share_a_limit);
    th_run("budget_cap_parks_and_resumes", budget_cap_parks_and_resumes);
    th_run("budget_park_logged_once_by_fleet", budget_park_logged_once_by_fleet);
    wt_stop();
    return th_main_end();
}
