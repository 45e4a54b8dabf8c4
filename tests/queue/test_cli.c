/* test_cli.c: `herald enqueue` and `herald queue` against a real Redis:
 * bad input names the line and enqueues nothing; good input is counted. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>

#include "harness.h"

static th_redis *R;

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
    char *n = th_redis_cmd(R, "EXISTS {cli}:jobs");
    CHECK_STR(n, "0");
    free(n);

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
    th_run("preview", test_preview);
    th_run("worker_metrics", test_worker_metrics);
    return th_main_end();
}
