/* unknown_email.c: emails whose outcome is unknown (the worker died during
 * the send) are settled without a duplicate: an engagement webhook about the
 * job (the sandbox fires SendGrid's signed "delivered" at `herald webhooks`,
 * which counts it against the job id in custom_args) settles it as sent even
 * when the provider's message search is down; and a search that finds
 * nothing sends the email again only after reconcile-email-settle, because a
 * provider's search lags behind its send API. */
#include "wktest.h"

enum { SETTLE_MS = 3000 };
static int hooks_port;

static int up(void *arg) { return th_http(*(int *)arg, NULL, "/readyz", NULL, NULL, NULL) == 200; }

/* start: Redis, the sandbox firing signed events at `herald webhooks`, and
 * a config with one SendGrid account on the sandbox. */
static void start(void)
{
    wt.redis = th_redis_start(0, NULL);
    wt.dir = th_tempdir();
    wt.sandbox_port = th_free_port();
    hooks_port = th_free_port();
    char path[700];
    snprintf(path, sizeof path, "%s/sg-main", wt.dir);
    th_write_file(path, "SG.sandbox-key");
    char *text = hr_asprintf(
        "redis-url unix://%s\nnamespace t\ncredentials-dir %s\n"
        "reconcile-interval 100ms\nreconcile-email-settle %dms\nretry-base 50ms\n"
        "retry-cap 500ms\nsendgrid-webhook-key-file %s/sg.pem\n"
        "webhooks-listen 127.0.0.1:%d\n"
        "account sendgrid:main base-url=http://127.0.0.1:%d credentials=sg-main "
        "from=news@shop.example rate=1000000/1h\n",
        wt.redis->sock, wt.dir, SETTLE_MS, wt.dir, hooks_port, wt.sandbox_port);
    snprintf(wt.conf, sizeof wt.conf, "%s/herald.conf", wt.dir);
    th_write_file(wt.conf, text);
    free(text);
    setenv("HERALD_CONFIG", wt.conf, 1);
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    char listen[64], hooks[64], pub[700], log1[700], log2[700];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", wt.sandbox_port);
    snprintf(hooks, sizeof hooks, "http://127.0.0.1:%d", hooks_port);
    snprintf(pub, sizeof pub, "%s/sg.pem", wt.dir);
    snprintf(log1, sizeof log1, "%s/sandbox.log", wt.dir);
    snprintf(log2, sizeof log2, "%s/webhooks.log", wt.dir);
    char *sb[] = {HERALD_BIN, "sandbox", "--listen", listen, "--webhooks", hooks,
                  "--sendgrid-pubkey-out", pub, "--seed", "7", "--auto-events", NULL};
    th_spawn(sb, log1);
    if (!th_wait_for(up, &wt.sandbox_port, 10000)) abort();
    char *wh[] = {HERALD_BIN, "webhooks", NULL};
    th_spawn(wh, log2);
    if (!th_wait_for(up, &hooks_port, 10000)) abort();
    char url[400];
    snprintf(url, sizeof url, "unix://%s", wt.redis->sock);
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    if (!(wt.q = queue_connect(&o, &err))) abort();
}

static long unknowns(void) { return wt_redis_int("ZCARD {t}:unknown:sendgrid:main", ""); }

/* crash_once runs a worker without its reconciler that dies the k-th time
 * it reaches step, restarts, and sends the rest; then reaps the dead
 * process's jobs. Returns the Redis-clock-ish time just before the reap
 * that moved jobs to unknown (a lower bound of when they went there). */
static int64_t crash_once(const char *step, int n, int k)
{
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=%s:%d:%s/crashed-%s", step, k, wt.dir,
             step);
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(env, step, "--processes", "1", "--concurrency", "32", "--lease", "1s",
                        NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    int64_t first = 0;
    for (int64_t t0 = hr_mono_ms(); hr_mono_ms() - t0 < 20000;) {
        long rq = 0, un = 0, promoted = 0;
        int64_t next = 0, now = 0, before = hr_now_ms();
        hr_err err = {0};
        queue_promote(wt.q, 1000, &promoted, &next, &now, &err);
        queue_reap(wt.q, &rq, &un, &err);
        if (un > 0 && !first) first = before;
        if (first && wt_done() + unknowns() == n) break;
        usleep(20000);
    }
    wt_term(w);
    CHECK(first > 0);
    CHECK_INT(wt_done() + unknowns(), n);
    return first;
}

/* sandbox_emails returns the accepted emails as an array (owned) and sets
 * *dups. */
static json_t *sandbox_emails(long *dups)
{
    char *body = NULL;
    json_t *posts = NULL;
    if (th_http(wt.sandbox_port, NULL, "/_sandbox/posts?platform=sendgrid&kind=email", NULL,
                NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        posts = json_incref(json_object_get(j, "posts"));
        *dups = (long)json_integer_value(json_object_get(j, "duplicates"));
        json_decref(j);
    }
    free(body);
    return posts;
}

static int fired_all(void *arg)
{
    long want = *(long *)arg;
    char *body = NULL;
    long ok = 0;
    if (th_http(wt.sandbox_port, NULL, "/_sandbox/webhooks", NULL, NULL, &body) == 200) {
        json_t *j = json_loads(body, 0, NULL);
        ok = (long)json_integer_value(json_object_get(j, "ok"));
        json_decref(j);
    }
    free(body);
    return ok >= want;
}

static int all_settled(void *arg)
{
    long n = *(long *)arg;
    wt_tick();
    return unknowns() == 0 && wt_done() == n;
}

/* email_job: the job id an email the sandbox took was sent with. */
static const char *email_job(json_t *post)
{
    json_t *args = json_object_get(json_object_get(post, "body"), "custom_args");
    return json_string_value(json_object_get(args, "herald_job"));
}

/* emailed_jobs returns the job ids of the emails the sandbox took, one
 * string "id id ..." (owned), and sets *count. */
static char *emailed_jobs(long *count)
{
    long dups = 0;
    json_t *posts = sandbox_emails(&dups);
    hr_buf b;
    hr_buf_init(&b);
    size_t i;
    json_t *p;
    *count = 0;
    json_array_foreach(posts, i, p)
    {
        const char *job = email_job(p);
        hr_buf_printf(&b, "%s ", job ? job : "-");
        (*count)++;
    }
    json_decref(posts);
    hr_buf_putc(&b, '\0');
    return hr_buf_detach(&b);
}

static int done_is(void *arg)
{
    wt_tick();
    return wt_done() == *(long *)arg;
}

static void webhook_settles_unknown(void)
{
    wt_reset();
    enum { N = 200 };
    wt_enqueue_emails("main", NULL, "hook", N);
    crash_once("after_answer", N, 40);
    CHECK(unknowns() > 0);
    /* The sandbox fired "delivered" for every email it took. A job marked
     * as attempted whose request had not left when the worker died is
     * unknown too, and was never taken. */
    long taken = 0;
    free(emailed_jobs(&taken));
    CHECK(taken > N - unknowns());
    CHECK(th_wait_for(fired_all, &taken, 15000));
    /* the provider's message search now fails: only the webhook can tell */
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", NULL,
                      "{\"platform\":\"sendgrid\",\"rate500\":1.0}", NULL),
              200);
    pid_t w = wt_worker(NULL, "hook-reconcile", "--processes", "1", NULL);
    /* every email the provider took is settled as sent, by its webhook */
    CHECK(th_wait_for(done_is, &taken, 15000));
    CHECK_INT(unknowns(), N - taken);
    /* the search works again: what was never taken goes out, once */
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", NULL,
                      "{\"platform\":\"sendgrid\",\"rate500\":0}", NULL),
              200);
    long n = N;
    CHECK(th_wait_for(all_settled, &n, 15000));
    wt_term(w);
    long dups = -1;
    json_t *posts = sandbox_emails(&dups);
    CHECK_INT((long)json_array_size(posts), N); /* none sent twice */
    CHECK_INT(dups, 0);
    json_decref(posts);
    char log[700];
    snprintf(log, sizeof log, "%s/hook-reconcile.log", wt.dir);
    char *text = th_read_file(log, NULL);
    CHECK(text && strstr(text, "reconciled: sent (engagement webhook)"));
    free(text);
}

static void absent_email_waits_then_resends(void)
{
    wt_reset();
    enum { N = 100 };
    wt_enqueue_emails("main", NULL, "gone", N);
    /* dies with its attempts recorded, their requests (mostly) not sent */
    int64_t since = crash_once("after_attempt", N, 20);
    char *ids = th_redis_cmd(wt.redis, "ZRANGE {t}:unknown:sendgrid:main 0 -1");
    long unknown = unknowns(), taken = 0;
    char *before = emailed_jobs(&taken);
    CHECK(unknown > 0 && ids);
    pid_t w = wt_worker(NULL, "gone-reconcile", "--processes", "1", NULL);
    long n = N;
    CHECK(th_wait_for(all_settled, &n, 20000));
    wt_term(w);
    long dups = -1;
    json_t *posts = sandbox_emails(&dups);
    CHECK_INT((long)json_array_size(posts), N);
    CHECK_INT(dups, 0);
    /* each unknown email the provider had not taken went out only after the
     * settle time: the search finding nothing earlier proved nothing */
    long resent = 0;
    size_t i;
    json_t *p;
    json_array_foreach(posts, i, p)
    {
        const char *job = email_job(p);
        if (!job || strlen(job) != 20 || !strstr(ids, job + 8) || strstr(before, job)) continue;
        resent++;
        int64_t at = (int64_t)json_integer_value(json_object_get(p, "received_ms"));
        CHECK(at >= since + SETTLE_MS);
    }
    CHECK(resent > 0);
    json_decref(posts);
    free(before);
    free(ids);
}

int main(void)
{
    start();
    th_run("webhook_settles_unknown", webhook_settles_unknown);
    th_run("absent_email_waits_then_resends", absent_email_waits_then_resends);
    wt_stop();
    return th_main_end();
}
