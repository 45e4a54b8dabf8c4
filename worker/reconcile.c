/* reconcile.c: the reconciler process: settles jobs in the unknown state
 * (attempt recorded, outcome never heard). Emails first look for an
 * engagement webhook about the job (the job id rides in the provider's custom
 * args; `herald webhooks` counts its events in {NS}:eng:jobs): any event
 * proves the provider took the message. Then it reads back from the
 * platform: Bluesky's rkey derived from the idempotency key (one session
 * per account, kept between jobs), Mastodon's Idempotency-Key, X and
 * LinkedIn by looking for the post among the account's posts since the
 * job's time, the email providers' message search. Each pass reads up to
 * RC_PASS_JOBS jobs per lane, going on where the last pass stopped.
 * A thread is read back part by part from the progress its job saved;
 * the parts found are kept as progress when a later one is missing.
 * Found: resolved as sent. Proved absent: back to its lane — for emails only
 * once the job has been unknown for reconcile-email-settle, because the
 * providers' search indexes lag behind their send API, and for posts found
 * by text in a timeline (X, LinkedIn, Threads, Facebook) once unknown for
 * reconcile-timeline-settle, as timelines can lag too. Anything else (no
 * read-back, platform down) waits for `herald unknown resolve`.
 * A job still unknown after a read-back is read back again after a gap
 * doubling from reconcile-interval up to RC_READBACK_CAP_MS (kept in
 * {NS}:readback:LANE, so a restart or another reconciler keeps it), and at
 * the moment its settle time ends: an absent post costs the account's read
 * quota a few times an hour, not on every pass.
 * It never sends a post itself, but for Mastodon's read-back within the
 * key's hour: the keyed POST returns the status or makes it, once. Sync
 * Redis and blocking curl: this process has no loop to block; it wakes
 * every interval and on SIGTERM exits. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "internal.h"
#include "platforms.h"
#include "queue.h"

static volatile sig_atomic_t stop_flag, reload_flag;

/* What the reconciler keeps between jobs and passes, per lane: Bluesky's
 * session (one login serves every read-back of the account: Bluesky allows
 * 30 createSession per 5 minutes) and where the next pass goes on in the
 * lane's unknown set (a lane with more unknown jobs than one pass reads
 * has them all looked at in turn). */
typedef struct rc_lane {
    char *name;
    plat_session sess;
    long cursor;
} rc_lane;

typedef struct rc_lanes {
    rc_lane *v;
    int n;
} rc_lanes;

static rc_lane *lane_state(rc_lanes *ls, const char *name)
{
    for (int i = 0; i < ls->n; i++)
        if (strcmp(ls->v[i].name, name) == 0) return &ls->v[i];
    ls->v = hr_realloc(ls->v, (size_t)(ls->n + 1) * sizeof *ls->v);
    rc_lane *l = &ls->v[ls->n++];
    memset(l, 0, sizeof *l);
    l->name = hr_strdup(name);
    return l;
}

static void lanes_release(rc_lanes *ls)
{
    for (int i = 0; i < ls->n; i++) {
        free(ls->v[i].name);
        plat_session_release(&ls->v[i].sess);
    }
    free(ls->v);
    memset(ls, 0, sizeof *ls);
}
static void on_stop(int sig) { stop_flag = 1; }
static void on_hup(int sig) { reload_flag = 1; }

/* Unknown jobs read back per lane and pass: each may cost the platform a
 * request or more. */
#define RC_PASS_JOBS 100

/* run_blocking performs one plat_request with curl_easy and fills resp from
 * the owned buffers in b/h. Returns 0 (a response, maybe an error code). */
static int run_blocking(CURL *e, const plat_request *pr, wk_req *q)
{
    curl_easy_reset(e);
    struct curl_slist *hl = NULL;
    for (int i = 0; i < pr->nheaders; i++) {
        char *line = hr_asprintf("%s: %s", pr->headers[i].name, pr->headers[i].value);
        hl = curl_slist_append(hl, line);
        free(line);
    }
    hr_buf_reset(&q->resp_body);
    hr_buf_reset(&q->resp_headers);
    curl_easy_setopt(e, CURLOPT_URL, pr->url);
    if (strcmp(pr->method, "GET") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, pr->method);
    if (pr->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, pr->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pr->body_len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wk_collect_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, wk_collect_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
    q->rc = curl_easy_perform(e);
    q->status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &q->status);
    curl_slist_free_all(hl);
    return 0;
}

/* email_evidence returns the first engagement type recorded for job id
 * (delivered, open, ...): the provider had the message. NULL when none. */
static const char *email_evidence(queue *q, const char *id)
{
    static const char *const types[] = {"delivered", "open", "click", "bounce", "spam",
                                        "unsubscribe"};
    enum { NT = HR_ARRAY_LEN(types) };
    char key[128], fields[NT][64];
    const char *argv[2 + NT];
    snprintf(key, sizeof key, "{%s}:eng:jobs", queue_ns(q));
    argv[0] = "HMGET";
    argv[1] = key;
    for (int i = 0; i < NT; i++) {
        snprintf(fields[i], sizeof fields[i], "%s|%s", id, types[i]);
        argv[2 + i] = fields[i];
    }
    redisReply *r = redisCommandArgv(queue_redis(q), 2 + NT, argv, NULL);
    const char *found = NULL;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && !found; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING && atol(r->element[i]->str) > 0)
            found = types[i];
    if (r) freeReplyObject(r);
    return found;
}

/* How long a job must have been unknown before a read-back that finds
 * nothing is believed, where the read-back can lag the send; and how often
 * one that stays unknown is read back. */
typedef struct rc_settle {
    int64_t email_ms;    /* providers' message search */
    int64_t timeline_ms; /* a post looked for among the account's posts */
    int64_t exact_ms;    /* an exact read-back (Bluesky's rkey): the dead
                          * worker's request may still be on its way */
    int64_t interval_ms; /* reconcile-interval: the first gap between read-backs */
    int64_t polls_ms[QUEUE_POLLS_MAX]; /* poll-schedule */
    int npolls;
    worker_pool_conf pool; /* the lanes it settles */
} rc_settle;

/* rc_settings reads the reconciler's settings from c into st (at start and
 * on SIGHUP); returns 0, or -1 with err and st unchanged: a bad value is
 * never silently a default. */
static int rc_settings(const hr_config *c, const worker_opts *o, rc_settle *st, hr_err *err)
{
    rc_settle t;
    if (worker_pool_conf_get(c, o->platforms, &t.pool, err) != 0 ||
        worker_conf_duration(c, "reconcile-interval", &t.interval_ms, err) != 0 ||
        worker_conf_duration(c, "reconcile-email-settle", &t.email_ms, err) != 0 ||
        worker_conf_duration(c, "reconcile-timeline-settle", &t.timeline_ms, err) != 0 ||
        worker_conf_duration(c, "reconcile-exact-settle", &t.exact_ms, err) != 0 ||
        (t.npolls = worker_poll_schedule(c, t.polls_ms, QUEUE_POLLS_MAX, err)) < 0)
        return -1;
    *st = t;
    return 0;
}

/* The longest gap between two read-backs of a job that stays unknown. */
#define RC_READBACK_CAP_MS (5 * 60 * 1000)
/* {NS}:readback:LANE outlives its last write by this long (a stale field
 * of a job an operator resolved goes with it). */
#define RC_READBACK_TTL_MS (24 * 3600 * 1000)

/* readback_get reads job ukh's time in lane's unknown set (*since_ms, -1
 * when it cannot be told) and its read-back schedule, in one round trip. */
static void readback_get(queue *q, const char *lane, const char *ukh, int64_t *since_ms,
                         worker_readback *rb)
{
    redisContext *c = queue_redis(q);
    redisAppendCommand(c, "ZSCORE {%s}:unknown:%s %s", queue_ns(q), lane, ukh);
    redisAppendCommand(c, "HGET {%s}:readback:%s %s", queue_ns(q), lane, ukh);
    redisReply *z = NULL, *h = NULL;
    if (redisGetReply(c, (void **)&z) == REDIS_OK) redisGetReply(c, (void **)&h);
    *since_ms = z && z->type == REDIS_REPLY_STRING ? atoll(z->str) : -1;
    long long last = -1, gap = 0;
    if (!h || h->type != REDIS_REPLY_STRING || sscanf(h->str, "%lld:%lld", &last, &gap) != 2)
        last = -1;
    *rb = (worker_readback){last, gap};
    if (z) freeReplyObject(z);
    if (h) freeReplyObject(h);
}

/* readback_put stores job ukh's schedule (rb NULL: drops it, the job left
 * the unknown set). */
static void readback_put(queue *q, const char *lane, const char *ukh, const worker_readback *rb)
{
    redisContext *c = queue_redis(q);
    redisReply *r;
    if (!rb) {
        r = redisCommand(c, "HDEL {%s}:readback:%s %s", queue_ns(q), lane, ukh);
    } else {
        redisAppendCommand(c, "HSET {%s}:readback:%s %s %lld:%lld", queue_ns(q), lane, ukh,
                           (long long)rb->last_ms, (long long)rb->gap_ms);
        redisAppendCommand(c, "PEXPIRE {%s}:readback:%s %d", queue_ns(q), lane,
                           RC_READBACK_TTL_MS);
        r = NULL;
        if (redisGetReply(c, (void **)&r) == REDIS_OK && r) {
            freeReplyObject(r);
            r = NULL;
            redisGetReply(c, (void **)&r);
        }
    }
    if (r) freeReplyObject(r);
}

/* Posts of other jobs a read-back looks past before it gives up for the
 * pass (the same text posted as many times). */
#define RC_SKIPS 8

/* settle_one reads back one unknown job with the lane's session sess;
 * returns 1 when resolved. */
static int settle_one(queue *q, const hr_config *c, CURL *e, wk_req *buf, const char *ukh,
                      const char *lane, plat_session *sess, const rc_settle *st, int64_t now)
{
    hr_err err = {0};
    queue_job *j = queue_get(q, ukh, &err);
    if (!j) return 0;
    int resolved = 0;
    const char *ev = j->kind == QUEUE_KIND_EMAIL ? email_evidence(q, j->id) : NULL;
    if (ev) {
        if (queue_unknown_resolve(q, j->id, 1, NULL, &err) > 0) resolved = 1;
        hr_log(HR_LOG_INFO, "reconciled: sent (engagement webhook)", "job", j->id, "lane", lane,
               "event", ev, NULL);
        queue_job_free(j);
        return resolved;
    }
    int64_t settle_ms = j->kind == QUEUE_KIND_EMAIL         ? st->email_ms
                        : plat_resend_on_absent(j->platform) ? st->exact_ms
                                                             : st->timeline_ms;
    int64_t since = -1;
    worker_readback rb;
    readback_get(q, lane, ukh, &since, &rb);
    if (!worker_readback_due(&rb, since, settle_ms, now)) {
        queue_job_free(j);
        return 0;
    }
    plat_account *a = plat_account_find(c, j->platform, j->account, &err);
    /* the attempt was made no earlier than the job was created and due */
    int64_t after = j->created_ms > j->run_at_ms ? j->created_ms : j->run_at_ms;
    plat_ctx ctx = {.sent_after_ms = after > 0 ? after : -1};
    plat_send *s = NULL;
    plat_request pr;
    memset(&pr, 0, sizeof pr);
    if (!a || plat_account_load_credential(a, c, NULL, &err) != 0) goto out;
    if (!(s = plat_send_new(a, sess, j, &ctx, &err))) goto out;
    /* Bluesky reads back with a session: log in first when it asks; X,
     * LinkedIn, Mastodon, Facebook and Threads read page after page of
     * posts since the job's time. A thread is read back part by part from
     * the progress its job kept: a worker killed mid-thread may have
     * posted more parts than it saved. */
    int found = 0; /* parts found past the job's saved progress */
    int skips = 0;  /* posts found that were other jobs' */
    for (int step = 0; step < 16; step++) {
        plat_request_release(&pr);
        memset(&pr, 0, sizeof pr);
        if (plat_send_readback(s, &pr, &err) != 0) goto out;
        run_blocking(e, &pr, buf);
        plat_header *hdrs = NULL;
        int nh = wk_split_headers(&buf->resp_headers, &hdrs);
        plat_response r = {.status = buf->status,
                           .headers = hdrs,
                           .nheaders = nh,
                           .body = buf->resp_body.data ? buf->resp_body.data : "",
                           .body_len = buf->resp_body.len,
                           .terr = buf->rc == CURLE_OK ? PLAT_TE_NONE : PLAT_TE_OTHER};
        plat_outcome o;
        memset(&o, 0, sizeof o);
        plat_send_readback_response(s, &r, &o);
        wk_free_headers(hdrs, nh);
        if (o.kind == PLAT_OUT_SENT) {
            /* recorded with its platform id and polls, unless that post is
             * already another job's (the same text twice): then it is
             * looked for again past that one */
            int rc = queue_unknown_resolve(q, j->id, 1, o.platform_id, &err);
            if (rc == 2 && ++skips <= RC_SKIPS) {
                hr_log(HR_LOG_INFO, "read-back: the post found is another job's, looking on",
                       "job", j->id, "lane", lane, "platform_id", o.platform_id, NULL);
                plat_send_readback_skip(s, o.platform_id);
                plat_outcome_release(&o);
                step = -1;
                continue;
            }
            if (rc == 1) resolved = 1;
            hr_log(HR_LOG_INFO, rc == 2 ? "unknown job: its post is another job's" : "reconciled: sent",
                   "job", j->id, "lane", lane, "platform_id", o.platform_id ? o.platform_id : "", NULL);
        } else if (o.kind == PLAT_OUT_ABSENT && settle_ms > 0 &&
                   (since < 0 || now < 0 || now - since < settle_ms)) {
            /* the search or timeline may not show it yet, or (an exact
             * read-back) the request the dead worker wrote may not have
             * reached the platform yet: absent is not proved */
            hr_log(HR_LOG_DEBUG, "unknown job: not found yet, waiting for the platform", "job",
                   j->id, "lane", lane, NULL);
        } else if (o.kind == PLAT_OUT_ABSENT) {
            /* the parts found go with it: its send resumes after them */
            if (found) plat_send_save_progress(s, j);
            if ((found ? queue_unknown_resend_job(q, j, &err)
                       : queue_unknown_resolve(q, j->id, 0, NULL, &err)) > 0)
                resolved = 1;
            hr_log(HR_LOG_INFO, "reconciled: not sent, back to its lane", "job", j->id, "lane",
                   lane, NULL);
        } else if (o.kind == PLAT_OUT_NEXT && o.platform_id) {
            /* a part of the thread is there: look for the next one */
            found++;
            step = -1;
            plat_outcome_release(&o);
            continue;
        } else if (o.kind == PLAT_OUT_NEXT) {
            plat_outcome_release(&o);
            continue;
        }
        plat_outcome_release(&o);
        break;
    }
out:
    if (!resolved && err.msg[0])
        hr_log(HR_LOG_DEBUG, "unknown job waits for an operator", "job", j->id, "lane", lane,
               "detail", err.msg, NULL);
    if (resolved) {
        readback_put(q, lane, ukh, NULL);
    } else if (now >= 0) {
        worker_readback next =
            worker_readback_next(&rb, since, st->interval_ms, RC_READBACK_CAP_MS, now);
        readback_put(q, lane, ukh, &next);
    }
    plat_request_release(&pr);
    plat_send_free(s);
    plat_account_free(a);
    queue_job_free(j);
    return resolved;
}

/* enqueue_due_polls turns due entries of {NS}:polls (written by workers at
 * send time) into poll jobs in the post's lane. Their unique key makes a
 * repeat after a crash between enqueue and ZREM harmless. */
static void enqueue_due_polls(queue *q)
{
    redisContext *c = queue_redis(q);
    int64_t now = hr_now_ms();
    redisReply *r = redisCommand(c, "ZRANGEBYSCORE {%s}:polls -inf %lld LIMIT 0 500",
                                 queue_ns(q), (long long)now);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        if (r) freeReplyObject(r);
        return;
    }
    queue_job **jobs = hr_calloc(r->elements, sizeof *jobs);
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        char *m = hr_strndup(r->element[i]->str, r->element[i]->len), *save = NULL;
        char *lane = strtok_r(m, "\t", &save), *post = strtok_r(NULL, "\t", &save);
        char *job = strtok_r(NULL, "\t", &save), *camp = strtok_r(NULL, "\t", &save);
        char *idx = camp ? strtok_r(NULL, "\t", &save) : NULL;
        if (!idx) { /* no campaign: the field was empty */
            idx = camp;
            camp = NULL;
        }
        char *colon = lane ? strchr(lane, ':') : NULL;
        if (colon && post && job && idx) {
            queue_job *j = queue_job_new();
            j->kind = QUEUE_KIND_POLL;
            *colon = '\0';
            queue_set(&j->platform, lane);
            queue_set(&j->account, colon + 1);
            queue_set(&j->campaign, camp);
            char key[160];
            snprintf(key, sizeof key, "poll:%s:%s", job, idx);
            queue_set(&j->unique_key, key);
            queue_job_set_meta(j, "post_id", post);
            queue_job_set_meta(j, "for_job", job);
            j->run_at_ms = now;
            j->max_attempts = 5;
            jobs[n++] = j;
        }
        free(m);
    }
    hr_err err = {0};
    if (queue_enqueue(q, jobs, n, NULL, &err) == 0) {
        /* one ZREM of every entry taken */
        size_t argc = 2 + r->elements;
        const char **argv = hr_malloc(argc * sizeof *argv);
        size_t *lens = hr_malloc(argc * sizeof *lens);
        char key[128];
        snprintf(key, sizeof key, "{%s}:polls", queue_ns(q));
        argv[0] = "ZREM";
        argv[1] = key;
        lens[0] = 4;
        lens[1] = strlen(key);
        for (size_t i = 0; i < r->elements; i++) {
            argv[2 + i] = r->element[i]->str;
            lens[2 + i] = r->element[i]->len;
        }
        redisReply *z = redisCommandArgv(c, (int)argc, argv, lens);
        if (z) freeReplyObject(z);
        free(argv);
        free(lens);
    } else {
        hr_log(HR_LOG_WARN, "engagement polls: enqueue failed", "error", err.msg, NULL);
    }
    for (int i = 0; i < n; i++) queue_job_free(jobs[i]);
    free(jobs);
    freeReplyObject(r);
}

int wk_reconciler_main(const worker_opts *o)
{
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGHUP, on_hup);
    signal(SIGPIPE, SIG_IGN);
    const hr_config *conf = o->config;
    hr_config *owned = NULL;
    hr_err err = {0};
    rc_settle st;
    if (rc_settings(conf, o, &st, &err) != 0) {
        hr_log(HR_LOG_ERROR, "reconciler: config", "error", err.msg, NULL);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    wk_req buf;
    memset(&buf, 0, sizeof buf);
    hr_buf_init(&buf.resp_body);
    hr_buf_init(&buf.resp_headers);
    queue *q = NULL;
    rc_lanes ls = {0};
    while (!stop_flag) {
        if (reload_flag && o->config_path) {
            reload_flag = 0;
            hr_config *c = wk_config_reload(o, &err);
            if (c && rc_settings(c, o, &st, &err) != 0) {
                hr_config_free(c);
                c = NULL;
            }
            if (c) {
                hr_config_free(owned);
                owned = c;
                conf = c;
                lanes_release(&ls); /* credentials may have changed */
            } else {
                hr_log(HR_LOG_ERROR, "reconciler: config reload failed, keeping the old one",
                       "error", err.msg, NULL);
            }
        }
        if (!q) {
            queue_opts qo = {.url = hr_config_get(conf, "redis-url", NULL),
                             .ns = hr_config_get(conf, "namespace", "herald")};
            q = queue_connect(&qo, &err);
        }
        if (q) /* a post settled as sent gets its engagement polls */
            queue_set_polls(q, st.polls_ms, st.npolls);
        char **lanes = NULL;
        int nl = 0;
        if (q && queue_lanes(q, &lanes, &nl, &err) != 0) {
            queue_free(q);
            q = NULL;
        }
        /* Redis's clock, once a pass: unknown jobs' ages are in it */
        int64_t now = -1;
        if (q && queue_time_ms(q, &now, &err) != 0) now = -1;
        for (int i = 0; q && i < nl && !stop_flag; i++) {
            if (!worker_pool_serves(&st.pool, lanes[i])) continue;
            rc_lane *l = lane_state(&ls, lanes[i]);
            char **ukhs = NULL;
            int nu = 0;
            if (queue_list(q, lanes[i], "unknown", l->cursor, RC_PASS_JOBS, &ukhs, &nu, &err) != 0)
                continue;
            long kept = 0, from = l->cursor;
            for (int k = 0; k < nu && !stop_flag; k++)
                kept += !settle_one(q, conf, e, &buf, ukhs[k], lanes[i], &l->sess, &st, now);
            /* resolved jobs left the set: the next pass starts after the
             * ones kept, and from the start once the set's end is reached */
            l->cursor = nu < RC_PASS_JOBS ? 0 : l->cursor + kept;
            if (nu == 0 && from == 0) /* none left: no schedule either */
                freeReplyObject(redisCommand(queue_redis(q), "DEL {%s}:readback:%s",
                                             queue_ns(q), lanes[i]));
            queue_strv_free(ukhs, nu);
        }
        queue_strv_free(lanes, nl);
        if (q) enqueue_due_polls(q);
        /* Also what the scheduler would do: re-queue jobs of dead workers. */
        long rq = 0, un = 0;
        if (q && queue_reap(q, &rq, &un, &err) != 0) {
            queue_free(q);
            q = NULL;
        }
        for (int64_t slept = 0; slept < st.interval_ms && !stop_flag; slept += 50) usleep(50000);
    }
    lanes_release(&ls);
    queue_free(q);
    hr_config_free(owned);
    hr_buf_release(&buf.resp_body);
    hr_buf_release(&buf.resp_headers);
    curl_easy_cleanup(e);
    return 0;
}
