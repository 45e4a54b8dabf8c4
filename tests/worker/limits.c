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

/* worker_until starts a one-process pool logging to log_name and waits
 * until want jobs are done. */
static pid_t worker_until(const char *log_name, long want)
{
    pid_t w = wt_worker(NULL, log_name, "--processes", "1", "--concurrency", "8", NULL);
    CHECK(th_wait_for(settled, &want, 15000));
    return w;
}

/* conf_edit rewrites the config with its first `from` made `to`; returns
 * the text it had (the caller's), or NULL when from is not in it. */
static char *conf_edit(const char *from, const char *to)
{
    char *conf = th_read_file(wt.conf, NULL);
    char *at = conf ? strstr(conf, from) : NULL;
    if (!at) {
        free(conf);
        return NULL;
    }
    char *edited = hr_asprintf("%.*s%s%s", (int)(at - conf), conf, to, at + strlen(from));
    th_write_file(wt.conf, edited);
    free(edited);
    return conf;
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
    pid_t w = worker_until("budget", 25);
    CHECK(th_wait_for(parked, NULL, 10000));
    CHECK(th_wait_for(park_logged, NULL, 10000));
    CHECK_INT(wt_done(), 25); /* 0.25 a day at 0.01 a post */
    CHECK_INT(wt_redis_int("ZCARD {t}:dead:x:@b", ""), 0);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@b", ""), 35);
    /* lift the cap and reload: the lane resumes */
    char *conf = conf_edit("budget-daily=0.25", "budget-daily=9.00");
    REQUIRE(conf);
    free(conf);
    kill(w, SIGHUP);
    long want = 60;
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
    char *conf = conf_edit("budget-daily=0.05", "budget-daily=9.00");
    REQUIRE(conf);
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

/* refused_start writes the test config plus extra to a file of its own and
 * starts a worker with it, which must refuse (exit 2, "not starting");
 * returns what it printed (the caller's) and sets *line to extra's first
 * line. */
static char *refused_start(const char *extra, char **path, int *line)
{
    char *conf = th_read_file(wt.conf, NULL);
    char *bad = hr_asprintf("%s%s", conf ? conf : "", extra);
    *line = 1;
    for (const char *c = conf; c && *c; c++) *line += *c == '\n';
    *path = hr_asprintf("%s/bad-%d.conf", wt.dir, *line);
    th_write_file(*path, bad);
    char *argv[] = {HERALD_BIN, "--config", *path, "worker", "--once", "--processes", "1", NULL};
    char *out = NULL;
    CHECK_INT(th_exec(argv, NULL, 1, &out), 2);
    CHECK(out && strstr(out, "not starting"));
    free(bad);
    free(conf);
    return out;
}

/* A config that `herald config check` rejects (a typo in a rate) does not
 * start a worker: it would run without that account's limits and, through
 * the app hash, without any of its platform's. */
static void bad_rate_refuses_start(void)
{
    char *path;
    int line;
    char *out = refused_start("account x:@typo credentials=x-a user-id=14 rate=2/1hr\n", &path,
                              &line);
    /* the error config check prints, with its line */
    char *want = hr_asprintf("%s:%d: account x:@typo: rate: bad window \"1hr\"", path, line);
    CHECK(out && strstr(out, want));
    free(want);
    free(out);
    free(path);
}

/* Bad settings are errors too, never their defaults: retry-base 5x was
 * the default 1 s, a poll schedule with a typo no polls at all. */
static void bad_settings_refuse_start(void)
{
    char *path;
    int line;
    char *out = refused_start("retry-base 5x\npoll-schedule 1h,24hh,7d\n", &path, &line);
    CHECK(out && strstr(out, "retry-base: duration: unknown unit in \"5x\""));
    CHECK(out && strstr(out, "poll-schedule: duration: unknown unit in \"24hh\""));
    free(out);
    free(path);
}

/* --platforms names a pool or platforms: a typo would serve nothing */
static void unknown_platforms_refused(void)
{
    const char *bad[] = {"nosuchpool", "xx,bluesky"};
    for (size_t i = 0; i < HR_ARRAY_LEN(bad); i++) {
        char *argv[] = {HERALD_BIN, "worker", "--once", "--platforms", (char *)bad[i], NULL};
        char *out = NULL;
        CHECK_INT(th_exec(argv, NULL, 1, &out), 2);
        char *want = hr_asprintf("herald worker: --platforms: \"%.*s\" is not a platform herald "
                                 "knows, nor a pool of %s",
                                 (int)strcspn(bad[i], ","), bad[i], wt.conf);
        CHECK(out && strstr(out, want));
        free(want);
        free(out);
    }
}

static const char *const badrate_logs[] = {"badrate", NULL};

static int reload_refused(void *arg)
{
    (void)arg;
    return count_in("config reload failed", badrate_logs) > 0;
}

/* A typo in a rate on SIGHUP keeps the limits in force: for the lane and
 * the platform's app (not zeroed fleet-wide), and the jobs stay throttled. */
static void bad_rate_on_reload_keeps_limit(void)
{
    wt_reset();
    wt_enqueue("x", "@s", "slow", 6);
    pid_t w = worker_until("badrate", 2);
    CHECK_INT(wt_redis_int("HGET {t}:lane:x:@s nw", ""), 1);
    CHECK_INT(wt_redis_int("HGET {t}:lane:x:@s w1_limit", ""), 2);
    CHECK_INT(wt_redis_int("HGET {t}:app:x nw", ""), 1);
    char *conf = conf_edit("rate=2/1h\n", "rate=2/1hr\n");
    REQUIRE(conf);
    kill(w, SIGHUP);
    CHECK(th_wait_for(reload_refused, NULL, 10000));
    wt_idle(100); /* fetch rounds in which the worker could send the rest */
    CHECK_INT(wt_done(), 2);
    CHECK_INT(wt_redis_int("LLEN {t}:ready:x:@s", ""), 4);
    CHECK_INT(wt_redis_int("HGET {t}:lane:x:@s nw", ""), 1);
    CHECK_INT(wt_redis_int("HGET {t}:lane:x:@s w1_limit", ""), 2);
    CHECK_INT(wt_redis_int("HGET {t}:app:x nw", ""), 1);
    wt_term(w);
    th_write_file(wt.conf, conf);
    /* logged once (by the supervisor: its workers keep the old config) */
    CHECK_INT(count_in("config reload failed", badrate_logs), 1);
    char log[700];
    snprintf(log, sizeof log, "%s/badrate.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "rate: bad window"));
    free(text);
    free(conf);
}

int main(void)
{
    wt_start("account x:@a base-url=http://127.0.0.1:$PORT credentials=x-a user-id=11 "
             "rate=30/24h\n"
             "account x:@b base-url=http://127.0.0.1:$PORT credentials=x-b user-id=12 "
             "cost=0.01 budget-daily=0.25\n"
             "account x:@c base-url=http://127.0.0.1:$PORT credentials=x-b user-id=12 "
             "cost=0.01 budget-daily=0.05\n"
             "account x:@s base-url=http://127.0.0.1:$PORT credentials=x-a user-id=15 "
             "rate=2/1h\n");
    th_run("two_pools_share_a_limit", two_pools_share_a_limit);
    th_run("budget_cap_parks_and_resumes", budget_cap_parks_and_resumes);
    th_run("budget_park_logged_once_by_fleet", budget_park_logged_once_by_fleet);
    th_run("bad_rate_refuses_start", bad_rate_refuses_start);
    th_run("bad_rate_on_reload_keeps_limit", bad_rate_on_reload_keeps_limit);
    th_run("bad_settings_refuse_start", bad_settings_refuse_start);
    th_run("unknown_platforms_refused", unknown_platforms_refused);
    wt_stop();
    return th_main_end();
}
