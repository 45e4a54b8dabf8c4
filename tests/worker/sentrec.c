/* sentrec.c: what is recorded when a post becomes sent, whichever way it
 * does (the worker's ack, the reconciler's read-back, an operator's
 * `herald unknown resolve --sent`): its platform id in {t}:platform_ids and
 * its engagement polls in {t}:polls, with the move to done; one post never
 * settles two jobs, even when two claim it at once; and an email is sent
 * only once its address was checked against the suppression list. */
#include "wktest.h"

/* poll-schedule 1h,2h: two polls a post, none due during a test */
enum { NPOLLS = 2 };

static int all_settled(void *arg)
{
    const char *unknown = arg;
    wt_tick();
    return wt_done() >= 3 && wt_redis_int("ZCARD %s", unknown) == 0;
}

/* A worker killed between the platform's answer and its ack leaves the job
 * to the reconciler, whose read-back settles it as sent: it gets its polls
 * and platform id like the jobs the worker acked itself. */
static void reconciled_post_gets_polls(void)
{
    wt_reset();
    enum { N = 3 };
    wt_enqueue("bluesky", "@b.bsky.social", "recorded post", N);
    char env[800];
    snprintf(env, sizeof env, "HERALD_WORKER_CRASH_AT=after_answer:1:%s/crashed-sentrec", wt.dir);
    pid_t w = wt_worker(env, "sentrec", "--processes", "1", "--lease", "1s", NULL);
    CHECK(th_wait_for(all_settled, "{t}:unknown:bluesky:@b.bsky.social", 20000));
    wt_term(w);
    char path[700];
    snprintf(path, sizeof path, "%s/sentrec.log", wt.dir);
    char *log = th_read_file(path, NULL);
    CHECK(log && strstr(log, "test seam: crashing") && strstr(log, "reconciled: sent"));
    free(log);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("bluesky", &dups), N);
    CHECK_INT(dups, 0);
    CHECK_INT(wt_done(), N);
    CHECK_INT(wt_redis_int("ZCARD {t}:polls", ""), N * NPOLLS);
    CHECK_INT(wt_redis_int("HLEN {t}:platform_ids", ""), N);
}

/* make_unknown plays a worker that fetched n jobs of lane, recorded their
 * attempts and died: they are left in the lane's unknown set. ids gets
 * their full ids, in fetch order. */
static void make_unknown(const char *lane, int n, char ids[][QUEUE_ID_LEN + 1])
{
    hr_err err = {0};
    queue_fetched *f = NULL;
    int nf = 0;
    const char *lanes[] = {lane};
    CHECK(queue_worker_register(wt.q, "gone", 60000, &err) == 0);
    CHECK(queue_fetch(wt.q, "gone", lanes, 1, n, 60000, &f, &nf, &err) == 0);
    REQUIRE(nf == n);
    for (int i = 0; i < nf; i++) {
        CHECK_INT(queue_attempt(wt.q, "gone", f[i].ukh, &err), 0);
        queue_job *j = queue_get(wt.q, f[i].ukh, &err);
        REQUIRE(j);
        snprintf(ids[i], QUEUE_ID_LEN + 1, "%s", j->id);
        queue_job_free(j);
    }
    CHECK(queue_worker_unregister(wt.q, "gone", &err) == 0);
    queue_fetched_free(f, nf);
    char key[128];
    snprintf(key, sizeof key, "{t}:unknown:%s", lane);
    CHECK_INT(wt_redis_int("ZCARD %s", key), n);
}

static int resolve_cli(const char *id, const char *platform_id, char **out)
{
    char *argv[] = {HERALD_BIN, "unknown", "resolve", (char *)id, "--sent", "--platform-id",
                    (char *)platform_id, NULL};
    return th_exec(argv, NULL, 1, out);
}

/* An operator's resolve --sent with a platform id records both as an ack
 * does; the same platform id for another job is refused, and that job
 * stays unknown. */
static void cli_resolve_records(void)
{
    wt_reset();
    wt_enqueue_job(wt_post_job("x", "@a", "cli-one", "resolved by hand"));
    char ids[2][QUEUE_ID_LEN + 1];
    make_unknown("x:@a", 1, ids);
    const char *id = ids[0];
    char *out = NULL;
    int rc = resolve_cli(id, "777", &out);
    CHECK_INT(rc, 0);
    if (rc != 0) fprintf(stderr, "herald unknown resolve: %s\n", out ? out : "");
    free(out);
    CHECK_INT(wt_done(), 1);
    char *v = th_redis_cmd(wt.redis, "HGET {t}:platform_ids x:777");
    char want[200];
    snprintf(want, sizeof want, "%s\tc1", id);
    CHECK(v && strcmp(v, want) == 0);
    free(v);
    CHECK_INT(wt_redis_int("ZCARD {t}:polls", ""), NPOLLS);
    char member[300];
    snprintf(member, sizeof member, "x:@a\t777\t%s\tc1\t1", id);
    v = th_redis_cmd(wt.redis, "ZSCORE {t}:polls %s", member);
    CHECK(v && atoll(v) > 0);
    free(v);

    wt_enqueue_job(wt_post_job("x", "@a", "cli-two", "resolved by hand"));
    make_unknown("x:@a", 1, ids + 1);
    const char *id2 = ids[1];
    CHECK_INT(resolve_cli(id2, "777", &out), 4); /* refused: docs/operations.md exit 4 */
    CHECK(out && strstr(out, "recorded for another job"));
    free(out);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 1);
    CHECK_INT(wt_redis_int("HLEN {t}:platform_ids", ""), 1);
}

/* post_by_hand posts text on x:@a straight to the sandbox (a post no job
 * of ours made); id (NULL: not wanted) gets its id */
static void post_by_hand(const char *text, char *id, size_t idlen)
{
    const char *hdrs[] = {"Authorization: Bearer token-a", "Content-Type: application/json",
                          NULL};
    char body[200], *resp = NULL;
    snprintf(body, sizeof body, "{\"text\":\"%s\"}", text);
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/2/tweets", hdrs, body, &resp), 201);
    json_t *js = json_loads(resp ? resp : "", 0, NULL);
    const char *v = json_string_value(json_object_get(json_object_get(js, "data"), "id"));
    if (id) snprintf(id, idlen, "%s", v ? v : "");
    json_decref(js);
    free(resp);
}

/* refuse_duplicates: the sandbox refuses every new X post as X refuses a
 * duplicate (403; the first try may have gone through: read back) */
static void refuse_duplicates(void)
{
    const char *faults = "{\"platform\":\"x\",\"rate4xx\":1,\"status\":403,"
                         "\"message\":\"You are not allowed to create a Tweet with duplicate "
                         "content.\"}";
    CHECK_INT(th_http(wt.sandbox_port, "POST", "/_sandbox/faults", NULL, faults, NULL), 200);
}

static int both_done(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_done() >= 2 && wt_redis_int("ZCARD {t}:unknown:x:@a", "") == 0;
}

/* Two jobs with the same text are left unknown and only one was posted:
 * the read-back settles one of them as sent with that post; the other is
 * not taken for sent from the same post: read back absent, it is sent. */
static void one_post_one_job(void)
{
    wt_reset();
    const char *text = "Twice the same words, posted once";
    wt_enqueue_job(wt_post_job("x", "@a", "same-1", text));
    wt_enqueue_job(wt_post_job("x", "@a", "same-2", text));
    char ids[2][QUEUE_ID_LEN + 1];
    make_unknown("x:@a", 2, ids);
    post_by_hand(text, NULL, 0);
    pid_t w = wt_worker(NULL, "same", "--processes", "1", NULL);
    CHECK(th_wait_for(both_done, NULL, 20000));
    wt_term(w);
    long dups = -1;
    CHECK_INT(wt_sandbox_posts("x", &dups), 2);
    CHECK_INT(wt_redis_int("HLEN {t}:platform_ids", ""), 2);
    /* each post is one job's */
    char *owners = th_redis_cmd(wt.redis, "HVALS {t}:platform_ids");
    REQUIRE(owners);
    CHECK(strstr(owners, ids[0]) && strstr(owners, ids[1]));
    free(owners);
}

static int log_has(void *arg)
{
    const char **what = arg; /* log name, text */
    char path[700];
    snprintf(path, sizeof path, "%s/%s.log", wt.dir, what[0]);
    char *text = th_read_file(path, NULL);
    int found = text && strstr(text, what[1]);
    free(text);
    return found;
}

/* The worker's own read-back (X refuses a repeat as a "duplicate": the
 * first try may have gone through) finds another job's post with the same
 * text: it passes over it instead of taking it for the job's. */
static void inline_readback_passes_over(void)
{
    wt_reset();
    const char *text = "The same words as a post already sent";
    wt_enqueue_job(wt_post_job("x", "@a", "first", text));
    pid_t w = wt_worker(NULL, "first", "--processes", "1", NULL);
    CHECK(wt_wait_done(1, 10000));
    wt_term(w);
    char *firsts = th_redis_cmd(wt.redis, "HVALS {t}:platform_ids");
    REQUIRE(firsts);
    refuse_duplicates();
    wt_enqueue_job(wt_post_job("x", "@a", "second", text));
    w = wt_worker(NULL, "second", "--processes", "1", NULL);
    const char *what[] = {"second", "read-back: the post found is another job's"};
    CHECK(th_wait_for(log_has, what, 15000));
    wt_term(w);
    CHECK_INT(wt_done(), 1);
    char *now = th_redis_cmd(wt.redis, "HVALS {t}:platform_ids");
    CHECK(now && strcmp(now, firsts) == 0); /* still the first job's */
    free(now);
    free(firsts);
    CHECK_INT(wt_sandbox_posts("x", NULL), 1);
}

/* twin_settled: the twin job claimed the post, and the worker's job has
 * been settled one way or the other (acked, or back in unknown) */
static int twin_settled(void *arg)
{
    (void)arg;
    return wt_done() >= 2 || wt_redis_int("ZCARD {t}:unknown:x:@a", "") >= 1;
}

/* The worker's read-back finds the post of a job with the same text, and
 * the twin job (unknown) is settled with that post by someone else (here an
 * operator's resolve; the reconciler or another worker alike) between the
 * read-back and the ack: a seam holds the worker at its ack until the twin
 * is resolved. The ack script sees the post is the twin's and records
 * nothing: the worker looks past it (nothing else is there: unknown). One
 * post, one job; without the check in the script both were sent with it. */
static void readback_claim_race(void)
{
    wt_reset();
    const char *text = "Twin words raced for one post";
    wt_enqueue_job(wt_post_job("x", "@a", "twin-b", text));
    char ids[1][QUEUE_ID_LEN + 1];
    make_unknown("x:@a", 1, ids);
    char post[64];
    post_by_hand(text, post, sizeof post);
    REQUIRE(post[0]);
    /* the worker's job: refused as a duplicate, so its read-back runs */
    refuse_duplicates();
    wt_enqueue_job(wt_post_job("x", "@a", "twin-a", text));
    char env[800], gate[700];
    snprintf(gate, sizeof gate, "%s/twin-go", wt.dir);
    snprintf(env, sizeof env, "HERALD_WORKER_STALL_AT=before_ack:1:30000:%s", gate);
    setenv("HERALD_WORKER_NO_RECONCILER", "1", 1);
    pid_t w = wt_worker(env, "twin", "--processes", "1", NULL);
    unsetenv("HERALD_WORKER_NO_RECONCILER");
    const char *what[] = {"twin", "test seam: stalling"};
    CHECK(th_wait_for(log_has, what, 15000));
    /* read back and about to ack: the twin is settled with the post now */
    char *out = NULL;
    CHECK_INT(resolve_cli(ids[0], post, &out), 0);
    free(out);
    th_write_file(gate, "");
    CHECK(th_wait_for(twin_settled, NULL, 20000));
    const char *passed[] = {"twin", "read-back: the post found is another job's"};
    CHECK(th_wait_for(log_has, passed, 5000));
    wt_term(w);
    CHECK_INT(wt_done(), 1);
    CHECK_INT(wt_redis_int("ZCARD {t}:unknown:x:@a", ""), 1);
    char *owner = th_redis_cmd(wt.redis, "HGET {t}:platform_ids x:%s", post);
    CHECK(owner && strncmp(owner, ids[0], QUEUE_ID_LEN) == 0);
    free(owner);
    /* no done record but the twin's names the post */
    char *done = th_redis_cmd(wt.redis, "HVALS {t}:done"), field[80];
    snprintf(field, sizeof field, "\t%s\t", post); /* id, platform id, ... */
    int with_post = 0;
    for (const char *p = done; p && (p = strstr(p, field)); p++) with_post++;
    CHECK_INT(with_post, 1);
    free(done);
    CHECK_INT(wt_sandbox_posts("x", NULL), 1);
}

static int buried(void *arg)
{
    (void)arg;
    wt_tick();
    return wt_redis_int("ZCARD {t}:dead:sendgrid:main", "") >= 1;
}

/* An email whose address the suppression check cannot normalise is bad
 * input: buried by the check, with its reason, never sent unchecked. */
static void unchecked_address_buried(void)
{
    wt_reset();
    wt_enqueue_job(wt_email_job("sendgrid", "main", "not-an-address", "mail:bad", "Hello"));
    pid_t w = wt_worker(NULL, "badaddr", "--processes", "1", NULL);
    CHECK(th_wait_for(buried, NULL, 15000));
    wt_term(w);
    CHECK_INT(wt_sandbox_count("sendgrid", "email"), 0);
    char *reason = th_redis_cmd(wt.redis, "HVALS {t}:reasons");
    CHECK(reason && strstr(reason, "suppression check") && strstr(reason, "not an email"));
    free(reason);
}

int main(void)
{
    wt_start("poll-schedule 1h,2h\n"
             "account sendgrid:main base-url=http://127.0.0.1:$PORT credentials=sg-main "
             "from=news@shop.example rate=1000/1s\n");
    char *cred = hr_asprintf("%s/sg-main", wt.dir);
    th_write_file(cred, "SG.sandbox-key");
    free(cred);
    th_run("reconciled_post_gets_polls", reconciled_post_gets_polls);
    th_run("cli_resolve_records", cli_resolve_records);
    th_run("one_post_one_job", one_post_one_job);
    th_run("inline_readback_passes_over", inline_readback_passes_over);
    th_run("readback_claim_race", readback_claim_race);
    th_run("unchecked_address_buried", unchecked_address_buried);
    wt_stop();
    return th_main_end();
}
