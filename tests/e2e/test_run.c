/* test_run.c: the main job end to end: `herald run` in a temp state dir
 * finishes, sends every example item exactly once to each of its platforms
 * (as the sandbox saw it: no duplicates), records engagement, sends nothing
 * again on a second run, and stops every child cleanly on Ctrl-C. An email's
 * one-click unsubscribe link, POSTed to `herald webhooks` with the run's
 * config, suppresses its recipient. */
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "queue.h"

/* The posts of examples/blog.wxr the demo campaign takes (not the draft,
 * not the page). */
static const char *const titles[] = {
    "Why we moved our build to CMake presets",
    "A small guide to Redis streams for job logs",
    "Jitter: why retries should not march in step",
    "Time zones, posting slots and the DST Sunday",
    "Counting characters the way X counts them",
    "Idempotency keys: sending exactly once over HTTP",
    "Circuit breakers for flaky APIs",
    "Unsubscribe in one click, without a database",
    "Reading a WordPress export without loading it all",
    "What we learned running a queue on one Redis",
};

static int run(const char *dir, const char *out, int *status)
{
    char *argv[] = {HERALD_BIN, "run",       "--state-dir", (char *)dir, "--span",
                    "6",        "--timeout", "100",         "--quiet",   NULL};
    pid_t pid = th_spawn(argv, out);
    return waitpid(pid, status, 0) == pid ? 0 : -1;
}

static int count_with(json_t *posts, const char *platform, const char *kind, const char *title)
{
    int n = 0;
    size_t i;
    json_t *p;
    json_array_foreach(posts, i, p)
    {
        if (!json_is_string(json_object_get(p, "platform")) ||
            strcmp(json_string_value(json_object_get(p, "platform")), platform) != 0)
            continue;
        if (strcmp(json_string_value(json_object_get(p, "kind")), kind) != 0) continue;
        char *body = json_dumps(json_object_get(p, "body"), JSON_COMPACT);
        if (body && strstr(body, title)) n++;
        free(body);
    }
    return n;
}

static int ready_at(void *port)
{
    return th_http(*(int *)port, NULL, "/readyz", NULL, NULL, NULL) == 200;
}

/* unsubscribe_link takes the List-Unsubscribe link of the first email in
 * posts (as the sandbox received it from the run in dir), checks that it
 * points at the run's `herald webhooks` as <base>/u/<token>, serves the run's
 * config on a fresh Redis, and POSTs the link one-click: 200, and its
 * recipient is suppressed. */
static void unsubscribe_link(const char *dir, json_t *posts)
{
    json_t *body = NULL;
    size_t i;
    json_t *p;
    json_array_foreach(posts, i, p)
    {
        const char *pl = json_string_value(json_object_get(p, "platform"));
        if (pl && strcmp(pl, "sendgrid") == 0) {
            body = json_object_get(p, "body");
            break;
        }
    }
    const char *link = json_string_value(
        json_object_get(json_object_get(body, "headers"), "List-Unsubscribe"));
    const char *to = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(body, "personalizations"), 0),
                                       "to"),
                       0),
        "email"));
    REQUIRE(link && to);
    char conf[600], prefix[64];
    snprintf(conf, sizeof conf, "%s/herald.conf", dir);
    char *text = th_read_file(conf, NULL);
    const char *wl = text ? strstr(text, "\nwebhooks-listen 127.0.0.1:") : NULL;
    REQUIRE(wl);
    int port = atoi(wl + 27);
    snprintf(prefix, sizeof prefix, "<http://127.0.0.1:%d/u/", port);
    size_t pl = strlen(prefix), ll = strlen(link);
    CHECK(strncmp(link, prefix, pl) == 0);
    REQUIRE(ll > pl + 1 && link[ll - 1] == '>');
    char path[600];
    snprintf(path, sizeof path, "/u/%.*s", (int)(ll - pl - 1), link + pl);
    CHECK(strchr(path + 3, '/') == NULL);

    /* the run's config, on a Redis of our own */
    th_redis *r = th_redis_start(0, NULL);
    char *conf2 = hr_asprintf("%s/unsub.conf", dir);
    char *text2 = hr_asprintf("%sredis-url unix://%s\n", text, r->sock);
    th_write_file(conf2, text2);
    char log[600];
    snprintf(log, sizeof log, "%s/logs/unsub-webhooks.log", dir);
    char *argv[] = {HERALD_BIN, "--config", conf2, "webhooks", NULL};
    pid_t pid = th_spawn(argv, log);
    REQUIRE(th_wait_for(ready_at, &port, 10000));
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    CHECK_INT(th_http(port, "POST", path, h, "List-Unsubscribe=One-Click", NULL), 200);
    char secret_path[600], digest[65];
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    char *secret = th_read_file(secret_path, NULL);
    REQUIRE(secret);
    secret[strcspn(secret, "\r\n")] = '\0';
    REQUIRE(queue_suppress_hash(secret, to, digest) == 0);
    char *v = th_redis_cmd(r, "HEXISTS {herald}:suppressed %s", digest);
    CHECK(v && strcmp(v, "1") == 0);
    free(v);
    th_kill(pid, SIGTERM);
    th_redis_stop(r);
    free(secret);
    free(text2);
    free(conf2);
    free(text);
}

static void test_run_once(void)
{
    char *dir = th_tempdir();
    char out[600], path[600];
    snprintf(out, sizeof out, "%s/run.out", dir);
    int st;
    REQUIRE(run(dir, out, &st) == 0);
    char *text = th_read_file(out, NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "%s\n", text ? text : "");
    REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    REQUIRE(text);
    int before = th_failures;
    CHECK(strstr(text, "this run: 60 sent") != NULL);
    CHECK(strstr(text, " 0 duplicate sends") != NULL);
    if (th_failures > before) fprintf(stderr, "%s\n", text); /* the stats table says where */
    const char *eng = strstr(text, "engagement: delivered=");
    CHECK(eng && atol(eng + 22) > 0);

    snprintf(path, sizeof path, "%s/sandbox-posts.json", dir);
    json_error_t je;
    json_t *rec = json_load_file(path, 0, &je);
    REQUIRE(rec);
    CHECK_INT(json_integer_value(json_object_get(rec, "duplicates")), 0);
    json_t *posts = json_object_get(rec, "posts");
    REQUIRE(json_is_array(posts));
    for (size_t i = 0; i < sizeof titles / sizeof titles[0]; i++) {
        th_current = titles[i];
        CHECK_INT(count_with(posts, "x", "post", titles[i]), 1);
        CHECK_INT(count_with(posts, "mastodon", "post", titles[i]), 1);
        CHECK_INT(count_with(posts, "bluesky", "post", titles[i]), 1);
        CHECK_INT(count_with(posts, "sendgrid", "email", titles[i]), 3); /* 3 contacts */
    }
    th_current = "run_once";
    unsubscribe_link(dir, posts);
    json_decref(rec);
    free(text);

    /* a second run finds every job done: nothing is sent again */
    snprintf(out, sizeof out, "%s/run2.out", dir);
    REQUIRE(run(dir, out, &st) == 0);
    text = th_read_file(out, NULL);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(text && strstr(text, "this run: 0 sent") != NULL);
    free(text);
    free(dir);
}

/* holds_dir returns 1 while some process's command line names dir. */
static int holds_dir(void *arg)
{
    const char *dir = arg;
    DIR *d = opendir("/proc");
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d)) && !found) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!buf[i]) buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, dir)) found = 1;
    }
    if (d) closedir(d);
    return found;
}

static int none_hold(void *arg)
{
    return !holds_dir(arg);
}

static int sending(void *arg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/logs/worker.log", (const char *)arg);
    char *s = th_read_file(path, NULL);
    int ok = s && strstr(s, "job sent");
    free(s);
    return ok;
}

static void test_ctrl_c(void)
{
    char *dir = th_tempdir();
    char out[600];
    snprintf(out, sizeof out, "%s/run.out", dir);
    char *argv[] = {HERALD_BIN, "run", "--state-dir", dir, "--span", "20", NULL};
    pid_t pid = th_spawn(argv, out);
    REQUIRE(th_wait_for(sending, dir, 30000));
    kill(pid, SIGINT);
    int st;
    REQUIRE(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 130);
    /* every child (redis, sandbox, webhooks, scheduler, workers) is gone */
    CHECK(th_wait_for(none_hold, dir, 5000));
    char *text = th_read_file(out, NULL);
    CHECK(text && strstr(text, "interrupted") != NULL);
    free(text);
    free(dir);
}

int main(void)
{
    th_run("run_once", test_run_once);
    th_run("ctrl_c", test_ctrl_c);
    return th_main_end();
}
