/* test_ops.c: the operator surface of the herald command: --help of every
 * command, messages that name a bad flag, the exit codes docs/operations.md
 * gives (2 usage or malformed id, 3 not found, 4 refused by the job's
 * state) in jobs, dead, unknown and queue, the config's lease-ms, jobs list
 * --json past 100, unknown list (--json, attempts), pause of an unknown
 * account, resume under a paused platform, import --dry-run's summary and
 * config check's order. */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"

static int has(const char *out, const char *s)
{
    if (out && strstr(out, s)) return 1;
    fprintf(stderr, "  wanted \"%s\" in:\n%s\n", s, out ? out : "(nothing)");
    return 0;
}

/* expect: herald with the arguments exits rc and, unless msg is NULL, says
 * msg on stdout or stderr */
#define expect(rc, msg, ...) expect_at(__LINE__, rc, msg, __VA_ARGS__, NULL)
static void expect_at(int line, int rc, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    char *out = NULL;
    int got = herald_v(1, &out, ap);
    va_end(ap);
    if (got != rc || (msg && !(out && strstr(out, msg)))) {
        th_failures++;
        fprintf(stderr, "%s:%d: [%s] exit %d, expected %d%s%s; said:\n%s\n", __FILE__, line,
                th_current, got, rc, msg ? ", and " : "", msg ? msg : "", out ? out : "");
    }
    free(out);
}

static queue_job *mk(const char *lane_account, const char *title, int64_t run_at_ms, int unique)
{
    queue_job *j = queue_job_new();
    j->kind = QUEUE_KIND_POST;
    queue_set(&j->platform, "x");
    queue_set(&j->account, lane_account);
    queue_set(&j->campaign, "c1");
    queue_set(&j->title, title);
    queue_set(&j->text, title);
    if (unique) {
        char key[200];
        snprintf(key, sizeof key, "c1|x|%s|%s", lane_account, title);
        queue_set(&j->unique_key, key);
    }
    j->run_at_ms = run_at_ms;
    j->max_attempts = 5;
    return j;
}

/* enqueue adds one job and copies its id into id (QUEUE_ID_LEN + 1) */
static void enqueue(const char *acct, const char *title, int64_t run_at_ms, char *id)
{
    queue_job *j = mk(acct, title, run_at_ms, 1);
    hr_err err = {0};
    REQUIRE(queue_enqueue(Q, &j, 1, NULL, &err) == 0);
    snprintf(id, QUEUE_ID_LEN + 1, "%s", j->id);
    queue_job_free(j);
}

/* -h/--help after any command: its usage on stdout, exit 0, nothing run */
static void test_help(void)
{
    static const char *const cmds[] = {"config",  "dead",   "enqueue", "forget",  "format",
                                       "help",    "import", "jobs",    "pause",   "preview",
                                       "queue",   "resume", "run",     "sandbox", "scheduler",
                                       "stats",   "unknown", "webhooks", "worker"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL, want[64];
        snprintf(want, sizeof want, "usage: herald %s", cmds[i]);
        CHECK_INT(herald(&out, cmds[i], "--help", NULL), 0);
        CHECK(out && strncmp(out, want, strlen(want)) == 0);
        if (!out || strncmp(out, want, strlen(want)) != 0)
            fprintf(stderr, "  %s --help printed: %s\n", cmds[i], out ? out : "(nothing)");
        free(out);
    }
    char *out = NULL;
    /* after a subcommand or with other arguments: still only the usage */
    CHECK_INT(herald(&out, "forget", "-h", NULL), 0);
    CHECK(has(out, "usage: herald forget EMAIL"));
    free(out);
    CHECK_INT(herald(&out, "jobs", "list", "--state", "ready", "--help", NULL), 0);
    CHECK(has(out, "usage: herald jobs list"));
    free(out);
    CHECK_INT(herald(&out, "enqueue", "--help", NULL), 0);
    CHECK(has(out, "usage: herald enqueue"));
    free(out);
    /* --config without its file */
    char *argv[] = {HERALD_BIN, "--config", NULL};
    CHECK_INT(th_exec(argv, NULL, 1, &out), 2);
    CHECK(has(out, "herald: --config needs a file"));
    free(out);
}

/* a bad flag is named with what was expected; exit 2 */
static void test_flags(void)
{
    static const struct {
        const char *args[6];
        const char *msg;
    } cases[] = {
        {{"import", "--bogus", "f.csv"}, "herald import: unknown option --bogus"},
        {{"import", "--batch", "0", "f.csv"}, "herald import: --batch: expected 1..100000, got \"0\""},
        {{"import", "--seed", "x", "f.csv"}, "herald import: --seed: expected an integer, got \"x\""},
        {{"import", "--lock-wait", "-1", "f.csv"}, "herald import: --lock-wait: expected 0..86400"},
        {{"preview", "--seed", "x", "f.csv"}, "herald preview: --seed: expected an integer"},
        {{"stats", "--watch", "abc"}, "herald stats: --watch: expected 0.1..86400 seconds, got \"abc\""},
        {{"stats", "--bogus"}, "herald stats: unknown option --bogus"},
        {{"worker", "--processes"}, "herald worker: --processes needs a value"},
        {{"worker", "--processes", "0"}, "herald worker: --processes: expected 1..1024, got \"0\""},
        {{"scheduler", "--batch", "many"}, "herald scheduler: --batch: expected 1..1000000"},
        {{"jobs", "list", "--state"}, "herald jobs: --state needs a value"},
        {{"enqueue", "a", "b"}, "herald enqueue: unexpected argument 'b'"},
        {{"forget", "--now", "a@example.com"}, "herald forget: unknown option --now"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        expect(2, cases[i].msg, a[0], a[1], a[2], a[3], a[4]);
    }
}

/* the worker's registration score is when its lease ends (Redis time) */
static int registered(void *arg)
{
    char *s = th_redis_cmd(R, "ZRANGE {lease}:workers 0 -1 WITHSCORES");
    int ok = s && *s;
    if (ok) *(long long *)arg = atoll(strchr(s, '\n') ? strchr(s, '\n') + 1 : s);
    free(s);
    return ok;
}

static long long worker_lease_left(const char *lease_arg)
{
    free(th_redis_cmd(R, "DEL {lease}:workers"));
    char *argv[] = {HERALD_BIN, "--config", conf,        "worker", "--foreground", "--platforms",
                    "x",        (char *)(lease_arg ? "--lease" : NULL), (char *)lease_arg, NULL};
    char log[700];
    snprintf(log, sizeof log, "%s/worker.log", dir);
    setenv("HERALD_NAMESPACE", "lease", 1);
    pid_t pid = th_spawn(argv, log);
    unsetenv("HERALD_NAMESPACE");
    long long until = 0;
    int ok = th_wait_for(registered, &until, 15000);
    char *now = th_redis_cmd(R, "TIME");
    long long now_ms = now ? atoll(now) * 1000 : 0;
    free(now);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    if (!ok) {
        char *l = th_read_file(log, NULL);
        fprintf(stderr, "  worker did not register:\n%s\n", l ? l : "");
        free(l);
        return -1;
    }
    return until - now_ms;
}

/* lease-ms in the config is the worker's lease; --lease wins over it */
static void test_lease_ms(void)
{
    long long left = worker_lease_left(NULL);
    CHECK(left > 300000); /* lease-ms 600000 in the config; the default is 30 s */
    left = worker_lease_left("45s");
    CHECK(left > 20000 && left <= 46000);
}

/* not found 3, refused by state 4, malformed id 2, for every command */
static void test_exit_codes(void)
{
    int64_t now = hr_now_ms();
    char ready[QUEUE_ID_LEN + 1], sent[QUEUE_ID_LEN + 1], unk[QUEUE_ID_LEN + 1];
    enqueue("@a", "waiting", now + 3600000, ready);
    enqueue("@a", "was sent", now + 3600000, sent);
    /* sent: only its done record is left, as an ack leaves it */
    char *r = th_redis_cmd(R, "HDEL {t}:jobs %s", sent + 8);
    free(r);
    r = th_redis_cmd(R, "ZREM {t}:sched:x:@a %s", sent + 8);
    free(r);
    r = th_redis_cmd(R, "HSET {t}:done %s %s\tpost-1\t%lld", sent + 8, sent, (long long)now);
    free(r);
    /* an unknown job: its worker stopped mid-send */
    enqueue("@u", "maybe sent", now - 1000, unk);
    hr_err err = {0};
    const char *lanes[] = {"x:@u"};
    queue_fetched *f;
    int nf;
    REQUIRE(queue_worker_register(Q, "gone", 60000, &err) == 0);
    REQUIRE(queue_fetch(Q, "gone", lanes, 1, 1, 60000, &f, &nf, &err) == 0);
    REQUIRE(nf == 1);
    CHECK_INT(queue_attempt(Q, "gone", f[0].ukh, &err), 0);
    queue_fetched_free(f, nf);
    REQUIRE(queue_worker_unregister(Q, "gone", &err) == 0); /* its started job: unknown */
    r = th_redis_cmd(R, "ZCARD {t}:unknown:x:@u");
    CHECK_STR(r, "1");
    free(r);

    const char *missing = "0000000000000000000Z";
    char *out = NULL;
    /* unknown resolve */
    expect(3, "no job 0000000000000000000Z", "unknown", "resolve", missing, "--resend");
    expect(2, "\"nosuch\" is not a job id", "unknown", "resolve", "nosuch", "--resend");
    expect(4, "is scheduled: not in the unknown state", "unknown", "resolve", ready, "--sent");
    expect(4, "was already sent", "unknown", "resolve", sent, "--sent");
    expect(2, "--sent or --resend", "unknown", "resolve", unk); /* neither flag */
    /* dead retry / purge */
    expect(2, "\"nosuch\" is not a job id", "dead", "retry", "nosuch");
    expect(3, NULL, "dead", "retry", missing);
    expect(4, "is scheduled: not dead", "dead", "purge", ready);
    expect(4, NULL, "dead", "retry", missing, ready); /* the worse of 3 and 4 */
    /* jobs show / cancel */
    expect(2, NULL, "jobs", "show", "nosuch");
    expect(3, "without a unique key keeps no record", "jobs", "show", missing);
    expect(4, "was already sent: not cancellable", "jobs", "cancel", sent);
    expect(2, NULL, "jobs", "cancel", "nosuch");
    expect(4, "is unknown: not cancellable", "jobs", "cancel", unk);
    expect(3, "no stored job", "queue", "get", missing);
    expect(2, "\"nosuch\" is not a job id", "queue", "get", "nosuch");
    expect(4, "was already sent: not cancellable", "queue", "cancel", sent);
    expect(3, NULL, "queue", "cancel", missing);
    CHECK_INT(herald(&out, "jobs", "show", sent, "--json", NULL), 0);
    CHECK(has(out, "\"state\":\"sent\""));
    free(out);

    /* unknown list: the attempt that started is counted; --json */
    CHECK_INT(herald(&out, "unknown", "list", NULL), 0);
    char row[200];
    snprintf(row, sizeof row, "%s\tx:@u\t1\tworker gone stopped during the send", unk);
    CHECK(has(out, row));
    free(out);
    CHECK_INT(herald(&out, "unknown", "list", "--json", "--lane", "x:@u", NULL), 0);
    json_t *a = json_loads(out ? out : "", 0, NULL);
    CHECK_INT(json_array_size(a), 1);
    json_t *o = json_array_get(a, 0);
    CHECK_STR(json_string_value(json_object_get(o, "id")), unk);
    CHECK_INT(json_integer_value(json_object_get(o, "attempts")), 1);
    json_decref(a);
    free(out);
    expect(0, NULL, "unknown", "resolve", unk, "--resend");
}

/* jobs list --json lists every match unless --limit says otherwise */
static void test_list_json(void)
{
    int64_t now = hr_now_ms();
    queue_job *jobs[150];
    for (int i = 0; i < 150; i++) {
        char t[32];
        snprintf(t, sizeof t, "many %d", i);
        jobs[i] = mk("@many", t, now + 3600000 + i, i % 2); /* half without a unique key */
    }
    hr_err err = {0};
    REQUIRE(queue_enqueue(Q, jobs, 150, NULL, &err) == 0);
    for (int i = 0; i < 150; i++) queue_job_free(jobs[i]);
    char *out = NULL;
    CHECK_INT(herald(&out, "jobs", "list", "--lane", "x:@many", "--json", NULL), 0);
    json_t *a = json_loads(out ? out : "", 0, NULL);
    CHECK(json_is_array(a));
    CHECK_INT(json_array_size(a), 150);
    CHECK_STR(json_string_value(json_object_get(json_array_get(a, 149), "state")), "scheduled");
    json_decref(a);
    free(out);
    CHECK_INT(herald(&out, "jobs", "list", "--lane", "x:@many", "--json", "--limit", "7", NULL), 0);
    a = json_loads(out ? out : "", 0, NULL);
    CHECK_INT(json_array_size(a), 7);
    json_decref(a);
    free(out);
    /* the table stops at 100 and says so */
    expect(0, "(first 100 shown; --limit 0 shows all)", "jobs", "list", "--lane", "x:@many");
    /* nothing matches: an empty array */
    CHECK_INT(herald(&out, "jobs", "list", "--lane", "x:@none", "--json", NULL), 0);
    CHECK(has(out, "[]\n"));
    free(out);
}

/* pause refuses an account nobody configured (unless --force); resume of a
 * lane whose platform is paused says it still sends nothing */
static void test_pause(void)
{
    expect(3, "x:@nobody: no such account", "pause", "x:@nobody");
    char *s = th_redis_cmd(R, "SISMEMBER {t}:paused x:@nobody");
    CHECK_STR(s, "0");
    free(s);
    expect(0, NULL, "pause", "--force", "x:@nobody");
    s = th_redis_cmd(R, "SISMEMBER {t}:paused x:@nobody");
    CHECK_STR(s, "1");
    free(s);
    expect(0, NULL, "resume", "x:@nobody");
    expect(0, NULL, "pause", "x:@a");    /* an account line */
    expect(0, NULL, "pause", "x:@many"); /* jobs in the queue */
    expect(0, NULL, "pause", "x");
    expect(0, "resumed x:@a, but its platform x is paused", "resume", "x:@a");
    expect(0, "{\"resumed\":\"x:@a\",\"paused\":true}", "resume", "--json", "x:@a");
    expect(0, NULL, "resume", "x", "x:@many");
    expect(0, "resumed x:@a\n", "resume", "x:@a");
}

/* a dry run says how many jobs it planned, not "0 added" */
static void test_dry_run(void)
{
    char csv[700];
    snprintf(csv, sizeof csv, "%s/plan.csv", dir);
    th_write_file(csv, "id,title,text,link,publish_at\n"
                       "p1,First,One,https://example.com/1,2031-03-28T09:00:00Z\n"
                       "p2,Second,Two,https://example.com/2,2031-03-29T09:00:00Z\n"
                       "p3,Third,Three,https://example.com/3,2031-03-30T09:00:00Z\n");
    char *out = NULL;
    CHECK_INT(herald2(&out, "import", "--dry-run", "--no-progress", "--campaign", "c1", csv, NULL),
              0);
    CHECK(has(out, "3 jobs planned (nothing written)"));
    CHECK(out && !strstr(out, "added")); /* not "jobs: 0 added, ..." */
    free(out);
    char *n = th_redis_cmd(R, "ZCARD {t}:sched:x:@a");
    CHECK_STR(n, "1"); /* test_exit_codes' one only */
    free(n);
}

/* config check: each problem once prefixed, all in line order */
static void test_config_check(void)
{
    char bad[700], saved[700];
    snprintf(bad, sizeof bad, "%s/order.conf", dir);
    th_write_file(bad, "namespace t\n"
                       "account x:@b circuit=many\n"
                       "retry-base soon\n"
                       "colour blue\n");
    snprintf(saved, sizeof saved, "%s", conf);
    snprintf(conf, sizeof conf, "%s", bad);
    unsetenv("HERALD_SECRET");
    char *out = NULL;
    CHECK_INT(herald(&out, "config", "check", NULL), 2);
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    CHECK(has(out, "order.conf: secret: none configured"));
    CHECK(out && !strstr(out, "secret: secret:"));
    const char *l2 = out ? strstr(out, "order.conf:2: ") : NULL;
    const char *l3 = out ? strstr(out, "order.conf:3: ") : NULL;
    const char *l4 = out ? strstr(out, "order.conf:4: ") : NULL;
    CHECK(l2 && l3 && l4 && l2 < l3 && l3 < l4);
    if (!(l2 && l3 && l4 && l2 < l3 && l3 < l4)) fprintf(stderr, "%s\n", out ? out : "");
    free(out);
    snprintf(conf, sizeof conf, "%s", saved);
}

int main(void)
{
    /* base-url: the worker never reaches beyond loopback (it has nothing
     * to send in its namespace anyway) */
    if (clitest_start("lease-ms 600000\n"
                      "account x:@a credentials=x-a base-url=http://127.0.0.1:9\n"
                      "campaign c1 platforms=x:@a\n") < 0)
        return 1;
    th_run("help", test_help);
    th_run("flags", test_flags);
    th_run("lease_ms", test_lease_ms);
    th_run("exit_codes", test_exit_codes);
    th_run("list_json", test_list_json);
    th_run("pause", test_pause);
    th_run("dry_run", test_dry_run);
    th_run("config_check", test_config_check);
    queue_free(Q);
    free(dir);
    return th_main_end();
}
