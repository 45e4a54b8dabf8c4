/* wktest.h: what the worker's end-to-end tests share: a private Redis, a
 * `herald sandbox`, a config with accounts pointing at it, enqueueing
 * numbered posts, and reading back what the sandbox and Redis saw. */
#ifndef HERALD_WKTEST_H
#define HERALD_WKTEST_H

#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "queue.h"

typedef struct wt_env {
    th_redis *redis;
    int sandbox_port;
    char *dir;
    char conf[600];
    queue *q;
} wt_env;

static wt_env wt;

/* wt_start starts Redis (append-only, so a restart keeps the data), the
 * sandbox, and writes a config; extra_conf lines are appended. */
static inline void wt_start(const char *extra_conf)
{
    wt.redis = th_redis_start(0, "--appendonly", "yes", "--appendfsync", "always", NULL);
    wt.dir = th_tempdir();
    wt.sandbox_port = th_free_port();
    char listen[64], out[700];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", wt.sandbox_port);
    snprintf(out, sizeof out, "%s/sandbox.log", wt.dir);
    char *argv[] = {HERALD_BIN, "sandbox", "--listen", listen, "--seed", "7", NULL};
    th_spawn(argv, out);
    const char *creds[][2] = {{"x-a", "token-a"}, {"x-b", "token-b"}, {"x-bad", "invalid"},
                              {"bsky-b", "app-password"}, {"masto-m", "token-m"}};
    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
        char path[700];
        snprintf(path, sizeof path, "%s/%s", wt.dir, creds[i][0]);
        th_write_file(path, creds[i][1]);
    }
    hr_buf c;
    hr_buf_init(&c);
    int p = wt.sandbox_port;
    /* extra lines first: the first line for an account is the one used;
     * $PORT stands for the sandbox's port */
    char port[16];
    snprintf(port, sizeof port, "%d", p);
    for (const char *e = extra_conf; e && *e; e++) {
        if (strncmp(e, "$PORT", 5) == 0) {
            hr_buf_puts(&c, port);
            e += 4;
        } else {
            hr_buf_putc(&c, *e);
        }
    }
    hr_buf_printf(&c,
                  "redis-url unix://%s\nnamespace t\ncredentials-dir %s\n"
                  "reconcile-interval 200ms\nretry-base 50ms\n"
                  /* the sandbox's timelines show a post at once */
                  "reconcile-timeline-settle 100ms\n"
                  "retry-cap 500ms\nreauth-hold 200ms\n"
                  /* the platforms' real limits would make tests wait hours */
                  "account x:@a base-url=http://127.0.0.1:%d credentials=x-a user-id=11 "
                  "rate=1000000/1h\n"
                  "account x:@b base-url=http://127.0.0.1:%d credentials=x-b user-id=12 "
                  "rate=1000000/1h\n"
                  "account x:@bad base-url=http://127.0.0.1:%d credentials=x-bad user-id=13\n"
                  "account bluesky:@b.bsky.social base-url=http://127.0.0.1:%d "
                  "handle=b.bsky.social credentials=bsky-b rate=1000000/1h\n"
                  "account mastodon:@m base-url=http://127.0.0.1:%d credentials=masto-m "
                  "rate=1000000/1h\n",
                  wt.redis->sock, wt.dir, p, p, p, p, p);
    snprintf(wt.conf, sizeof wt.conf, "%s/herald.conf", wt.dir);
    th_write_file(wt.conf, c.data);
    hr_buf_release(&c);
    setenv("HERALD_CONFIG", wt.conf, 1);
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", wt.redis->sock);
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    wt.q = queue_connect(&o, &err);
    if (!wt.q) {
        fprintf(stderr, "wt_start: %s\n", err.msg);
        exit(1);
    }
    for (int i = 0; i < 2500; i++) {
        if (th_http(wt.sandbox_port, NULL, "/healthz", NULL, NULL, NULL) == 200) return;
        usleep(2000);
    }
    fprintf(stderr, "wt_start: sandbox did not start\n");
    exit(1);
}

static inline void wt_stop(void)
{
    queue_free(wt.q);
    wt.q = NULL;
    free(wt.dir);
    wt.dir = NULL;
}

/* wt_job returns a new job of kind to platform:account keyed key, campaign
 * c1, due now, 5 attempts; the caller sets the rest. */
static inline queue_job *wt_job(queue_kind kind, const char *platform, const char *account,
                                const char *key)
{
    queue_job *j = queue_job_new();
    j->kind = kind;
    queue_set(&j->platform, platform);
    queue_set(&j->account, account);
    queue_set(&j->campaign, "c1");
    queue_set(&j->unique_key, key);
    j->run_at_ms = hr_now_ms() - 1000;
    j->max_attempts = 5;
    return j;
}

/* wt_email_job returns a new email job to platform:account for to, with a
 * plain-text body; the caller may set more and passes it to wt_enqueue_job. */
static inline queue_job *wt_email_job(const char *platform, const char *account, const char *to,
                                      const char *key, const char *subject)
{
    queue_job *j = wt_job(QUEUE_KIND_EMAIL, platform, account, key);
    queue_set(&j->to, to);
    queue_set(&j->subject, subject);
    queue_set(&j->body_text, "Hi");
    return j;
}

/* wt_post_job returns a new post of text to platform:account */
static inline queue_job *wt_post_job(const char *platform, const char *account, const char *key,
                                     const char *text)
{
    queue_job *j = wt_job(QUEUE_KIND_POST, platform, account, key);
    queue_set(&j->text, text);
    return j;
}

/* wt_enqueue_jobs enqueues the n jobs and frees them (not the array); a
 * failure fails the test: its setup cannot mean anything. */
static inline void wt_enqueue_jobs(queue_job **jobs, int n)
{
    hr_err err = {0};
    if (queue_enqueue(wt.q, jobs, n, NULL, &err) != 0) {
        fprintf(stderr, "enqueue: %s\n", err.msg);
        th_failures++;
    }
    for (int i = 0; i < n; i++) queue_job_free(jobs[i]);
}

static inline void wt_enqueue_job(queue_job *j) { wt_enqueue_jobs(&j, 1); }

/* wt_enqueue adds n posts "<prefix> <i>" to platform:account, due now. */
static inline void wt_enqueue(const char *platform, const char *account, const char *prefix, int n)
{
    queue_job **jobs = hr_calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        char text[128], key[320];
        snprintf(text, sizeof text, "%s %d", prefix, i);
        snprintf(key, sizeof key, "%s:%s:%s", platform, account, text);
        jobs[i] = wt_post_job(platform, account, key, text);
        jobs[i]->max_attempts = 50;
    }
    wt_enqueue_jobs(jobs, n);
    free(jobs);
}

/* wt_worker starts `herald worker` with extra arguments (NULL-terminated);
 * env is "NAME=value" or NULL. */
static inline pid_t wt_worker(const char *env, const char *log_name, ...)
{
    char *argv[32];
    int n = 0;
    argv[n++] = HERALD_BIN;
    argv[n++] = "worker";
    va_list ap;
    va_start(ap, log_name);
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 30) argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char out[700];
    snprintf(out, sizeof out, "%s/%s.log", wt.dir, log_name);
    char name[64] = "";
    if (env) {
        const char *eq = strchr(env, '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - env), env);
        setenv(name, eq + 1, 1);
    }
    pid_t pid = th_spawn(argv, out);
    if (env) unsetenv(name);
    return pid;
}

/* wt_sandbox_taken returns how many records of kind ("post", "email") the
 * sandbox took for platform (answered 2xx, each once), sets *dups (unless
 * NULL) to the duplicate requests it saw (a replayed Idempotency-Key) and
 * *distinct (unless NULL) to how many Idempotency-Keys, one per job, those
 * records carry: a job sent twice shows as taken > distinct. */
static inline long wt_sandbox_taken(const char *platform, const char *kind, long *dups,
                                    long *distinct)
{
    char path[128];
    snprintf(path, sizeof path, "/_sandbox/posts?platform=%s&kind=%s", platform, kind);
    char *body = NULL;
    long count = -1;
    if (th_http(wt.sandbox_port, NULL, path, NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *v, *keys = json_object();
        size_t i;
        count = 0;
        /* what the platform took (not refused ones) */
        json_array_foreach(json_object_get(j, "posts"), i, v)
        {
            if (json_integer_value(json_object_get(v, "status")) / 100 != 2) continue;
            count++;
            const char *k = json_string_value(json_object_get(v, "idempotency_key"));
            if (k) json_object_set_new(keys, k, json_true());
        }
        if (dups) *dups = (long)json_integer_value(json_object_get(j, "duplicates"));
        if (distinct) *distinct = (long)json_object_size(keys);
        json_decref(keys);
        json_decref(j);
    }
    free(body);
    return count;
}

/* wt_sandbox_posts returns how many posts the sandbox took for platform
 * (each once) and sets *dups to the duplicate requests it saw. */
static inline long wt_sandbox_posts(const char *platform, long *dups)
{
    return wt_sandbox_taken(platform, "post", dups, NULL);
}

/* wt_enqueue_emails adds n SendGrid emails of account, due now, keyed
 * "mail:<tag>:<i>": to every one, or to <tag><i>@example.com when to is
 * NULL. */
static inline void wt_enqueue_emails(const char *account, const char *to, const char *tag, int n)
{
    queue_job **jobs = hr_calloc((size_t)n, sizeof *jobs);
    for (int i = 0; i < n; i++) {
        char addr[96], key[96];
        if (to) snprintf(addr, sizeof addr, "%s", to);
        else snprintf(addr, sizeof addr, "%s%d@example.com", tag, i);
        snprintf(key, sizeof key, "mail:%s:%d", tag, i);
        jobs[i] = wt_email_job("sendgrid", account, addr, key, "Hello");
        queue_set(&jobs[i]->body_text, "Hello");
    }
    wt_enqueue_jobs(jobs, n);
    free(jobs);
}

/* wt_sandbox_records returns how many records of kind ("email",
 * "session", ...) the sandbox keeps for platform, or -1: what it answered,
 * or with all every request it received (faults and replays too). */
static inline long wt_sandbox_records(const char *platform, const char *kind, int all)
{
    char path[128];
    snprintf(path, sizeof path, "/_sandbox/posts?platform=%s&kind=%s&all=%d", platform, kind,
             all);
    char *body = NULL;
    long n = -1;
    if (th_http(wt.sandbox_port, NULL, path, NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        n = (long)json_array_size(json_object_get(j, "posts"));
        json_decref(j);
    }
    free(body);
    return n;
}

/* wt_sandbox_count returns how many records of kind the sandbox keeps for
 * platform (what it answered), or -1. */
static inline long wt_sandbox_count(const char *platform, const char *kind)
{
    return wt_sandbox_records(platform, kind, 0);
}

/* wt_faults_injected: how many requests the sandbox failed on purpose so
 * far (the count survives /_sandbox/reset), or -1. */
static inline long wt_faults_injected(void)
{
    char *body = NULL;
    long n = -1;
    if (th_http(wt.sandbox_port, NULL, "/_sandbox/faults", NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        n = (long)json_integer_value(json_object_get(j, "injected"));
        json_decref(j);
    }
    free(body);
    return n;
}

static inline long wt_redis_int(const char *fmt, const char *arg)
{
    char *s = th_redis_cmd(wt.redis, fmt, arg);
    long v = s ? strtol(s, NULL, 10) : -1;
    free(s);
    return v;
}

/* wt_window_points returns the points counted in rate window i of the hash
 * {t}:KEY (lane:LANE or app:PLATFORM): the sum of its buckets (w<i>_b,
 * "G:FIRST:c,c,...", queue/lua/lib/prelude.lua), 0 without any. */
static inline long wt_window_points(const char *key, int i)
{
    char field[16];
    snprintf(field, sizeof field, "w%d_b", i);
    char *s = th_redis_cmd(wt.redis, "HGET {t}:%s %s", key, field);
    char *p = s ? strchr(s, ':') : NULL;
    p = p ? strchr(p + 1, ':') : NULL;
    long sum = 0;
    while (p && *p) sum += strtol(p + 1, &p, 10);
    free(s);
    return sum;
}

/* wt_done counts sent jobs in Redis. */
static inline long wt_done(void) { return wt_redis_int("HLEN {t}:done", ""); }

/* wt_tick plays the scheduler: promotes due retries, reaps dead workers. */
static inline void wt_tick(void)
{
    long promoted = 0, rq = 0, un = 0;
    int64_t next = 0, now = 0;
    hr_err err = {0};
    queue_promote(wt.q, 1000, &promoted, &next, &now, &err);
    queue_reap(wt.q, &rq, &un, &err);
}

typedef struct wt_goal {
    long done;
} wt_goal;

static inline int wt_reached(void *arg)
{
    wt_goal *g = arg;
    static int64_t last;
    if (hr_mono_ms() - last > 20) {
        wt_tick();
        last = hr_mono_ms();
    }
    return wt_done() >= g->done;
}

/* wt_idle plays the scheduler for rounds of 10 ms: time for workers to
 * do what they should not. */
static inline void wt_idle(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        wt_tick();
        usleep(10000);
    }
}

/* wt_wait_done waits until n jobs are done (promoting retries meanwhile). */
static inline int wt_wait_done(long n, int timeout_ms)
{
    wt_goal g = {n};
    return th_wait_for(wt_reached, &g, timeout_ms);
}

/* wt_reset empties Redis and the sandbox between tests. */
static inline void wt_reset(void)
{
    char *s = th_redis_cmd(wt.redis, "FLUSHALL");
    free(s);
    th_http(wt.sandbox_port, "POST", "/_sandbox/reset", NULL, "", NULL);
}

/* wt_log_count: how many times the worker's log name.log has what */
static inline int wt_log_count(const char *name, const char *what)
{
    char log[700];
    snprintf(log, sizeof log, "%s/%s.log", wt.dir, name);
    char *text = th_read_file(log, NULL);
    int n = 0;
    for (const char *s = text; s && (s = strstr(s, what)); s++) n++;
    free(text);
    return n;
}

/* wt_sent_once checks that the sandbox took n posts of platform, none of
 * them twice, and that nothing of platform:account is left unknown. */
static inline void wt_sent_once(const char *platform, const char *account, long n)
{
    long dups = -1;
    CHECK_INT(wt_sandbox_posts(platform, &dups), n);
    CHECK_INT(dups, 0);
    char key[160];
    snprintf(key, sizeof key, "{t}:unknown:%s:%s", platform, account);
    CHECK_INT(wt_redis_int("ZCARD %s", key), 0);
}

/* wt_term stops a worker supervisor gracefully and waits for it. */
static inline void wt_term(pid_t pid) { th_kill(pid, SIGTERM); }

#endif
