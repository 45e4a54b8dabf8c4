/* test_import_lanes.c: imports of different campaigns into one account
 * take turns (the lanes' planning locks, {NS}:planning:LANE): run at the
 * same time they keep the account's spacing; one that finds a lane taken
 * waits, then goes on when it is free or its lease lapses, or gives up
 * after --lock-wait enqueueing nothing. Real redis-server, the herald
 * binary in child processes. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "common.h"

static th_redis *R;
static char *dir;
static int ns_seq;
static char ns[32];
static char conf[512];
static char items_a[512], items_b[512];

#define LANE "x:@shop"
#define NITEMS 400
#define SPACING_MS (30 * 60000LL)
#define OTHER "0123456789abcdef0123456789abcdef other"

/* setup writes a fresh namespace's config: one account, campaigns a and
 * b on it, and each campaign's items */
static void setup(void)
{
    snprintf(ns, sizeof ns, "l%d", ++ns_seq);
    snprintf(conf, sizeof conf, "%s/%s.conf", dir, ns);
    char *text = hr_asprintf(
        "redis-url unix://%s\nnamespace %s\n"
        "account " LANE " credentials=x tz=Europe/Paris slots=daily@09:00,12:00,15:00,18:00 "
        "spacing=30m jitter=10m\n"
        "campaign a platforms=" LANE "\ncampaign b platforms=" LANE "\n",
        R->sock, ns);
    th_write_file(conf, text);
    free(text);
    const char *name[2] = {"a", "b"};
    char *path[2] = {items_a, items_b};
    for (int k = 0; k < 2; k++) {
        snprintf(path[k], sizeof items_a, "%s/%s-%s.ndjson", dir, ns, name[k]);
        hr_buf b;
        hr_buf_init(&b);
        for (int i = 0; i < NITEMS; i++)
            hr_buf_printf(&b, "{\"id\":\"%s%d\",\"title\":\"Post %d\"}\n", name[k], i, i);
        th_write_file(path[k], b.data);
        hr_buf_release(&b);
    }
}

static long count(const char *cmd, const char *key)
{
    char *s = th_redis_cmd(R, "%s {%s}:%s", cmd, ns, key);
    long n = s ? atol(s) : -1;
    free(s);
    return n;
}

/* spawn starts `herald import` of campaign, its output into log */
static pid_t spawn(const char *campaign, const char *items, const char *log)
{
    char *argv[] = {HERALD_BIN,   "--config",       conf,         "import",
                    "--no-progress", "--campaign", (char *)campaign, (char *)items,
                    NULL};
    return th_spawn(argv, log);
}

/* exit_code waits for a spawned import and returns its exit status */
static int exit_code(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    th_kill(pid, 0); /* reaped: only stops the harness tracking it */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* spacing_kept: the lane's jobs, in time order, are at least the
 * account's spacing apart (and there are n of them) */
static void check_spacing(long n)
{
    char *s = th_redis_cmd(R, "ZRANGE {%s}:sched:" LANE " 0 -1 WITHSCORES", ns);
    REQUIRE(s);
    long jobs = 0, close = 0;
    long long prev = 0;
    char *save = NULL;
    int odd = 0;
    for (char *t = strtok_r(s, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        if (!(odd ^= 1)) {
            long long at = atoll(t);
            if (jobs++ && at - prev < SPACING_MS) close++;
            prev = at;
        }
    }
    free(s);
    CHECK_INT(jobs, n);
    CHECK_INT(close, 0);
}

static int log_has(void *arg)
{
    const char **a = arg;
    char *s = th_read_file(a[0], NULL);
    int yes = s && strstr(s, a[1]);
    free(s);
    return yes;
}

/* two campaigns imported at the same time into one account: each books
 * its slots after the other's are written, so the spacing holds */
static void test_concurrent_keep_spacing(void)
{
    setup();
    char *la = hr_asprintf("%s/%s-a.log", dir, ns), *lb = hr_asprintf("%s/%s-b.log", dir, ns);
    pid_t a = spawn("a", items_a, la);
    pid_t b = spawn("b", items_b, lb);
    CHECK_INT(exit_code(a), 0);
    CHECK_INT(exit_code(b), 0);
    check_spacing(2 * NITEMS);
    CHECK_INT(count("EXISTS", "planning:" LANE), 0); /* released */
    free(la);
    free(lb);
}

/* import_behind sets up a namespace whose lane another import (campaign
 * "other") plans into, its lock's lease lease_ms (0: none), and starts an
 * import of campaign a into *log */
static pid_t import_behind(int lease_ms, char **log)
{
    setup();
    if (lease_ms)
        free(th_redis_cmd(R, "SET {%s}:planning:" LANE " %s PX %d", ns, OTHER, lease_ms));
    else
        free(th_redis_cmd(R, "SET {%s}:planning:" LANE " %s", ns, OTHER));
    *log = hr_asprintf("%s/%s-a.log", dir, ns);
    return spawn("a", items_a, *log);
}

/* a lane another (live) import plans into: this one says it waits, enqueues
 * nothing meanwhile, and goes on once the lane is free */
static void test_waits_for_live_import(void)
{
    char *log;
    pid_t a = import_behind(0, &log);
    const char *want[2] = {log, "campaign a waits for lane " LANE ", which campaign other's"};
    CHECK(th_wait_for(log_has, want, 20000));
    CHECK_INT(count("ZCARD", "sched:" LANE), 0);
    free(th_redis_cmd(R, "DEL {%s}:planning:" LANE, ns));
    CHECK_INT(exit_code(a), 0);
    CHECK_INT(count("ZCARD", "sched:" LANE), NITEMS);
    char *s = th_read_file(log, NULL);
    const char *w = s ? strstr(s, "waits for lane") : NULL;
    CHECK(w && !strstr(w + 1, "waits for lane")); /* said once */
    free(s);
    free(log);
}

/* a crashed import's planning lock lapses with its lease and is taken */
static void test_lapsed_lease_taken_over(void)
{
    char *log;
    pid_t a = import_behind(300, &log);
    CHECK_INT(exit_code(a), 0);
    check_spacing(NITEMS);
    free(log);
}

/* a lane that stays taken: the import gives up after --lock-wait, naming
 * the lane and the other campaign, and enqueues nothing */
static void test_gives_up_after_lock_wait(void)
{
    setup();
    free(th_redis_cmd(R, "SET {%s}:planning:" LANE " %s", ns, OTHER));
    char *argv[] = {HERALD_BIN, "--config", conf,   "import", "--no-progress", "--campaign",
                    "a",        "--lock-wait", "1", items_a, NULL};
    char *out = NULL;
    CHECK_INT(th_exec(argv, NULL, 1, &out), 1);
    CHECK(out && strstr(out, "lane " LANE " is being planned by campaign other's import"));
    CHECK(out && strstr(out, "nothing was enqueued"));
    free(out);
    CHECK_INT(count("ZCARD", "sched:" LANE), 0);
    CHECK_INT(count("HLEN", "jobs"), 0);
    CHECK_INT(count("EXISTS", "importing:a"), 0);
    CHECK_INT(count("ZCARD", "held"), 0);
    char *s = th_redis_cmd(R, "GET {%s}:planning:" LANE, ns);
    CHECK_STR(s, OTHER); /* the other's lock is left alone */
    free(s);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    dir = th_tempdir();
    th_run("concurrent_keep_spacing", test_concurrent_keep_spacing);
    th_run("waits_for_live_import", test_waits_for_live_import);
    th_run("lapsed_lease_taken_over", test_lapsed_lease_taken_over);
    th_run("gives_up_after_lock_wait", test_gives_up_after_lock_wait);
    free(dir);
    return th_main_end();
}
