/* test_cli.c: `herald enqueue` and `herald queue` against a real Redis:
 * bad input names the line and enqueues nothing; good input is counted. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"
#include "queue.h"

static th_redis *R;

/* REDIS_IS checks that a Redis command's reply (th_redis_cmd's text) is want. */
#define REDIS_IS(want, ...)                                                    \
    do {                                                                       \
        char *reply_ = th_redis_cmd(R, __VA_ARGS__);                           \
        CHECK_STR(reply_, want);                                               \
        free(reply_);                                                          \
    } while (0)

/* run returns the exit status of `herald ARGS` (ARGS split at spaces) with
 * input on its stdin, and its stdout and stderr in *out (caller frees). */
static int run(const char *input, const char *args, char **out)
{
    char *copy = strdup(args), *save = NULL, *argv[16];
    int n = 0;
    argv[n++] = HERALD_BIN;
    for (char *t = strtok_r(copy, " ", &save); t && n < 15; t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    char url[320];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    setenv("HERALD_REDIS_URL", url, 1);
    setenv("HERALD_NAMESPACE", "cli", 1);
    int st = th_exec(argv, input, 1, out);
    unsetenv("HERALD_REDIS_URL");
    unsetenv("HERALD_NAMESPACE");
    free(copy);
    return st;
}

static void test_enqueue_all_or_nothing(void)
{
    char *out;
    const char *bad = "{\"platform\":\"x\",\"account\":\"@a\",\"text\":\"one\"}\n"
                      "{\"platform\":\"x\",\"text\":\"no account\"}\n"
                      "{\"platform\": \n";
    CHECK_INT(run(bad, "enqueue", &out), 2);
    CHECK(strstr(out, "stdin:2: job needs") != NULL);
    CHECK(strstr(out, "stdin:3: job: ") != NULL);
    CHECK(strstr(out, "nothing enqueued") != NULL);
    free(out);
    REDIS_IS("0", "EXISTS {cli}:jobs");

    const char *good = "{\"platform\":\"x\",\"account\":\"@a\",\"text\":\"one\",\"unique_key\":\"k1\"}\n"
                       "{\"platform\":\"mastodon\",\"account\":\"@a@m.social\",\"text\":\"two\","
                       "\"run_at\":\"2999-01-01T00:00:00Z\"}\n";
    CHECK_INT(run(good, "enqueue", &out), 0);
    CHECK(strstr(out, "2 added") != NULL);
    free(out);
    CHECK_INT(run(good, "enqueue", &out), 0); /* k1 is ready: unchanged; the other is new */
    CHECK(strstr(out, "1 added, 0 updated, 1 unchanged") != NULL);
    free(out);
    CHECK_INT(run("", "queue counts --json", &out), 0);
    CHECK(strstr(out, "\"lane\":\"x:@a\"") != NULL);
    CHECK(strstr(out, "\"scheduled\":2") != NULL);
    free(out);
    CHECK_INT(run("", "queue pause x", &out), 0);
    free(out);
    CHECK_INT(run("", "queue counts", &out), 0);
    CHECK(strstr(out, "(paused)") != NULL);
    free(out);
    CHECK_INT(run("", "queue bogus", &out), 2);
    free(out);
}

/* herald enqueue FILE reads FILE (errors name it), not stdin; more than one
 * argument or a file that cannot be opened is exit 2, nothing enqueued. */
static void test_enqueue_file(void)
{
    char *dir = th_tempdir(), path[512], args[1200], *out;
    snprintf(path, sizeof path, "%s/jobs.ndjson", dir);
    th_write_file(path, "{\"platform\":\"x\",\"account\":\"@file\",\"text\":\"one\"}\n"
                        "{\"platform\":\"x\",\"text\":\"no account\"}\n");
    snprintf(args, sizeof args, "enqueue %s", path);
    CHECK_INT(run("", args, &out), 2);
    CHECK(out && strstr(out, "jobs.ndjson:2: job needs") != NULL);
    free(out);
    th_write_file(path, "{\"platform\":\"x\",\"account\":\"@file\",\"text\":\"one\"}\n");
    /* stdin holds a different job: only FILE's is read */
    CHECK_INT(run("{\"platform\":\"x\",\"account\":\"@stdin\",\"text\":\"two\"}\n", args,
                  &out),
              0);
    CHECK(out && strstr(out, "1 added") != NULL);
    free(out);
    REDIS_IS("1", "LLEN {cli}:ready:x:@file");
    REDIS_IS("0", "EXISTS {cli}:ready:x:@stdin");
    /* "-" is stdin */
    CHECK_INT(run("{\"platform\":\"x\",\"account\":\"@stdin\",\"text\":\"two\"}\n",
                  "enqueue -", &out),
              0);
    free(out);
    REDIS_IS("1", "LLEN {cli}:ready:x:@stdin");
    snprintf(args, sizeof args, "enqueue %s %s", path, path);
    CHECK_INT(run("", args, &out), 2);
    CHECK(out && strstr(out, "unexpected argument") != NULL);
    free(out);
    snprintf(args, sizeof args, "enqueue %s/missing.ndjson", dir);
    CHECK_INT(run("", args, &out), 2);
    CHECK(out && strstr(out, "missing.ndjson: No such file") != NULL);
    free(out);
    REDIS_IS("1", "LLEN {cli}:ready:x:@file");
    snprintf(args, sizeof args, "rm -rf %s", dir);
    CHECK(system(args) == 0);
    free(dir);
}

/* reaped_unknown is th_wait_for's condition: the reaper has moved the jobs
 * of the dead worker (arg: the queue) to the unknown set. */
static int reaped_unknown(void *arg)
{
    long rq = 0, un = 0;
    hr_err err = {0};
    if (queue_reap(arg, &rq, &un, &err) < 0) return 0;
    char *n = th_redis_cmd(R, "ZCARD {cli}:unknown:bluesky:@unk");
    int done = n && strcmp(n, "3") == 0;
    free(n);
    return done;
}

/* herald unknown list|resolve, the real binary: three jobs whose worker died
 * after their attempts started are listed; --sent moves one to done, --resend
 * one back to its ready lane; a bad or settled id is a clear error. */
static void test_unknown_cli(void)
{
    char url[320];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "cli"};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    REQUIRE(q);
    queue_job *jobs[3];
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "unk-%d", i);
        jobs[i] = queue_job_new();
        jobs[i]->kind = QUEUE_KIND_POST;
        queue_set(&jobs[i]->platform, "bluesky"); /* x is paused by now */
        queue_set(&jobs[i]->account, "@unk");
        queue_set(&jobs[i]->text, "maybe sent");
        queue_set(&jobs[i]->unique_key, key);
    }
    REQUIRE(queue_enqueue(q, jobs, 3, NULL, &err) == 0);
    const char *lanes[] = {"bluesky:@unk"};
    queue_fetched *f = NULL;
    int nf = 0;
    REQUIRE(queue_worker_register(q, "gone", 500, &err) == 0);
    REQUIRE(queue_fetch(q, "gone", lanes, 1, 3, 500, &f, &nf, &err) == 0);
    CHECK_INT(nf, 3);
    for (int i = 0; i < nf; i++) CHECK_INT(queue_attempt(q, "gone", f[i].ukh, &err), 0);
    queue_fetched_free(f, nf);
    /* the worker never comes back: its lease runs out and the reaper parks
     * the started jobs as unknown */
    CHECK(th_wait_for(reaped_unknown, q, 10000));

    char *out, args[128];
    CHECK_INT(run("", "unknown list", &out), 0);
    for (int i = 0; i < 3; i++) {
        char row[64];
        snprintf(row, sizeof row, "%s\tbluesky:@unk\t", jobs[i]->id);
        CHECK(out && strstr(out, row) != NULL);
    }
    CHECK(out && strstr(out, "3 unknown") != NULL);
    free(out);
    CHECK_INT(run("", "unknown list --lane bluesky:@other", &out), 0);
    CHECK(out && strstr(out, "0 unknown") != NULL && !strstr(out, jobs[0]->id));
    free(out);

    /* --sent: out of unknown, into done, the job record gone */
    snprintf(args, sizeof args, "unknown resolve %s --sent --platform-id 777", jobs[0]->id);
    CHECK_INT(run("", args, &out), 0);
    CHECK(out && strstr(out, "resolved as sent") != NULL);
    free(out);
    const char *u0 = queue_job_ukh(jobs[0]), *u1 = queue_job_ukh(jobs[1]);
    REDIS_IS("", "ZSCORE {cli}:unknown:bluesky:@unk %s", u0); /* nil */
    char *v = th_redis_cmd(R, "HGET {cli}:done %s", u0);
    CHECK(v && strncmp(v, jobs[0]->id, QUEUE_ID_LEN) == 0 && strstr(v, "\t777\t") != NULL);
    free(v);
    REDIS_IS("0", "HEXISTS {cli}:jobs %s", u0);

    /* --resend: back to the front of its ready lane, the record kept */
    snprintf(args, sizeof args, "unknown resolve %s --resend", jobs[1]->id);
    CHECK_INT(run("", args, &out), 0);
    CHECK(out && strstr(out, "back to its lane") != NULL);
    free(out);
    v = th_redis_cmd(R, "LRANGE {cli}:ready:bluesky:@unk 0 -1");
    CHECK(v && strstr(v, u1) != NULL);
    free(v);
    REDIS_IS("1", "HEXISTS {cli}:jobs %s", u1);
    REDIS_IS("1", "ZCARD {cli}:unknown:bluesky:@unk");

    /* settled (4), absent (3) and malformed (2) ids: a clear error */
    snprintf(args, sizeof args, "unknown resolve %s --resend", jobs[1]->id);
    CHECK_INT(run("", args, &out), 4);
    CHECK(out && strstr(out, "is ready: not in the unknown state") != NULL);
    free(out);
    CHECK_INT(run("", "unknown resolve 00000000AAAAAAAAAAAA --sent", &out), 3);
    CHECK(out && strstr(out, "no job 00000000AAAAAAAAAAAA") != NULL);
    free(out);
    CHECK_INT(run("", "unknown resolve not-an-id --sent", &out), 2);
    CHECK(out && strstr(out, "not-an-id") != NULL && strstr(out, "not a job id") != NULL);
    free(out);
    snprintf(args, sizeof args, "unknown resolve %s", jobs[2]->id);
    CHECK_INT(run("", args, &out), 2); /* neither --sent nor --resend */
    CHECK(out && strstr(out, "--sent or --resend") != NULL);
    free(out);
    snprintf(args, sizeof args, "unknown resolve %s --sent --resend", jobs[2]->id);
    CHECK_INT(run("", args, &out), 2);
    free(out);

    /* what is left: the third job only */
    CHECK_INT(run("", "unknown list --lane bluesky:@unk", &out), 0);
    CHECK(out && strstr(out, jobs[2]->id) && !strstr(out, jobs[0]->id) &&
          !strstr(out, jobs[1]->id) && strstr(out, "1 unknown"));
    free(out);
    for (int i = 0; i < 3; i++) queue_job_free(jobs[i]);
    queue_free(q);
}

/* herald preview: every job of the example import as `format --json`. */
static void test_preview(void)
{
    char *dir = th_tempdir();
    char conf[512], cmd[2048];
    snprintf(conf, sizeof conf, "%s/h.conf", dir);
    snprintf(cmd, sizeof cmd,
             "sed 's|contacts=/etc/herald/contacts.csv|contacts=%s/examples/contacts.csv|' "
             "%s/examples/herald.conf > %s",
             HERALD_SRC, HERALD_SRC, conf);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof cmd,
             "HERALD_SECRET=0123456789abcdef0123 HERALD_REDIS_URL=unix:///nonexistent "
             "%s --config %s preview %s/examples/blog.wxr 2>/dev/null",
             HERALD_BIN, conf, HERALD_SRC);
    FILE *p = popen(cmd, "r");
    char line[16384];
    int lines = 0, with_request = 0, emails = 0, bad_unsub = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        with_request += strstr(line, "\"request\":{\"method\"") != NULL;
        emails += strstr(line, "\"kind\":\"email\"") != NULL;
        bad_unsub += strstr(line, "/u/u/") != NULL;
        CHECK(strstr(line, "\"run_at\":\"") != NULL);
        CHECK(strstr(line, "\"length\":") != NULL);
    }
    CHECK_INT(WEXITSTATUS(pclose(p)), 0);
    CHECK_INT(lines, 60); /* 10 posts x 3 platforms + 10 x 3 contacts */
    CHECK_INT(with_request, 60);
    CHECK_INT(emails, 30);
    CHECK_INT(bad_unsub, 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(dir);
}

/* herald worker --metrics: the supervisor serves Prometheus text. */
static void test_worker_metrics(void)
{
    int port = th_free_port();
    char url[400], listen[64];
    snprintf(url, sizeof url, "HERALD_REDIS_URL=unix://%s", R->sock);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    putenv(url);
    setenv("HERALD_NAMESPACE", "cli", 1);
    /* a worker starts only with a config config check accepts: a secret */
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    char *argv[] = {HERALD_BIN, "worker", "--processes", "1", "--metrics", listen, NULL};
    pid_t pid = th_spawn(argv, NULL);
    char *body = NULL;
    int status = -1;
    for (int i = 0; i < 250 && status != 200; i++) {
        free(body);
        body = NULL;
        status = th_http(port, NULL, "/metrics", NULL, NULL, &body);
        if (status != 200) usleep(20000);
    }
    CHECK_INT(status, 200);
    CHECK(body && strstr(body, "herald_queue_depth{") != NULL);
    free(body);
    CHECK_INT(th_http(port, NULL, "/readyz", NULL, NULL, NULL), 200);
    th_kill(pid, SIGTERM);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    th_run("enqueue_all_or_nothing", test_enqueue_all_or_nothing);
    th_run("enqueue_file", test_enqueue_file);
    th_run("unknown_cli", test_unknown_cli);
    th_run("preview", test_preview);
    th_run("worker_metrics", test_worker_metrics);
    return th_main_end();
}
