/* forget.c: `herald forget EMAIL`: removes the jobs to a contact that wait
 * (scheduled, retrying, ready, dead), takes the address out of those that
 * cannot be removed now (in flight, unknown), deletes the engagement rows
 * keyed by them and their one-click unsubscribe events (seen ids, stream
 * entries), and leaves only the suppression entry (a keyed hash). Sync
 * hiredis through the queue's connection; each step is idempotent, so a
 * failure half-way is fixed by running it again. */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "webhooks.h"

static redisReply *cmd(struct queue *q, hr_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(queue_redis(q), fmt, ap);
    va_end(ap);
    if (!r) {
        hr_err_set(err, "forget: redis: %s", queue_redis(q)->errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hr_err_set(err, "forget: redis: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* scrubbed_value appends the stored value of j without anything that
 * names or addresses its recipient: the whole payload (to, to_name,
 * subject, bodies, vars: rendered or not, they may hold the address or the
 * name), the unique key (an import's ends with the address), the idem key,
 * the last error, meta, and fields of a newer herald this one cannot read.
 * What is left places it (kind, lane, campaign, source, times, attempts),
 * and meta forgotten=1, so that a worker it comes back to buries it unsent
 * instead of failing to format it. */
static void scrubbed_value(const queue_job *j, hr_buf *out)
{
    queue_job *s = queue_job_new();
    memcpy(s->id, j->id, sizeof s->id);
    s->kind = j->kind;
    queue_set(&s->platform, j->platform);
    queue_set(&s->account, j->account);
    queue_set(&s->campaign, j->campaign);
    queue_set(&s->source, j->source);
    s->run_at_ms = j->run_at_ms;
    s->created_ms = j->created_ms;
    s->attempt = j->attempt;
    s->max_attempts = j->max_attempts;
    queue_job_set_meta(s, "forgotten", "1");
    queue_job_encode_stored(s, out);
    queue_job_free(s);
}

/* masked_reason returns the job's reason (why it is unknown) with every
 * address masked, or NULL when it has none (caller frees). */
static char *masked_reason(struct queue *q, const char *ukh, hr_err *err)
{
    redisReply *r = cmd(q, err, "HGET {%s}:reasons %s", queue_ns(q), ukh);
    if (!r) return NULL;
    char *m = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        m = hr_malloc(r->len + 1);
        hr_mask_email(r->str, m, r->len + 1);
    }
    freeReplyObject(r);
    return m;
}

/* job_to decodes a stored job and returns it when it is an email to norm. */
static queue_job *job_to(const char *ukh, const char *v, size_t n, const char *norm)
{
    hr_err e2 = {0};
    queue_job *j = queue_job_decode_stored(ukh, v, n, &e2);
    char to[256];
    if (j && j->kind == QUEUE_KIND_EMAIL && j->to &&
        queue_email_normalize(j->to, to, sizeof to) == 0 && strcmp(to, norm) == 0)
        return j;
    queue_job_free(j);
    return NULL;
}

/* forget_one removes job j (stored as v, n bytes) or scrubs it, and counts
 * what it did in res. Returns a queue_forget_result, or -1. */
static int forget_one(struct queue *q, const queue_job *j, const char *v, size_t n,
                      hook_forget_result *res, hr_err *err)
{
    char lane[QUEUE_LANE_MAX];
    if (queue_job_lane(j, lane, sizeof lane) < 0) return QUEUE_FORGET_GONE; /* never sent */
    hr_buf clean;
    hr_buf_init(&clean);
    scrubbed_value(j, &clean);
    hr_err e2 = {0};
    char *reason = masked_reason(q, queue_job_ukh(j), &e2);
    int r = e2.msg[0] ? -1
                      : queue_forget_job(q, queue_job_ukh(j), lane, v, n, clean.data, clean.len,
                                         reason, &e2);
    free(reason);
    hr_buf_release(&clean);
    if (r < 0) return hr_err_set(err, "forget: %s: %s", j->id, e2.msg);
    if (r == QUEUE_FORGET_REMOVED) res->jobs_removed++;
    if (r == QUEUE_FORGET_INFLIGHT || r == QUEUE_FORGET_UNKNOWN) {
        res->kept = hr_realloc(res->kept, sizeof *res->kept * (size_t)(res->jobs_in_flight + 1));
        hook_forget_kept *k = &res->kept[res->jobs_in_flight++];
        snprintf(k->id, sizeof k->id, "%s", j->id);
        k->unknown = r == QUEUE_FORGET_UNKNOWN;
    }
    return r;
}

/* forget_job removes or scrubs the job stored under ukh as v (n bytes) when
 * it is an email to norm, reading it again while it changes under us (a
 * worker settling it). */
static int forget_job(struct queue *q, const char *ukh, const char *v, size_t n, const char *norm,
                      hook_forget_result *res, hr_err *err)
{
    redisReply *again = NULL;
    int rc = 0;
    for (int tries = 0;; tries++) {
        queue_job *j = job_to(ukh, v, n, norm);
        if (!j) break; /* not to norm, or no longer: sent, removed or scrubbed since */
        int r = tries < 10 ? forget_one(q, j, v, n, res, err)
                           : hr_err_set(err, "forget: %s keeps changing; run it again", j->id);
        queue_job_free(j);
        if (r != QUEUE_FORGET_CHANGED) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        if (again) freeReplyObject(again);
        if (!(again = cmd(q, err, "HGET {%s}:jobs %s", queue_ns(q), ukh))) {
            rc = -1;
            break;
        }
        if (again->type != REDIS_REPLY_STRING) break;
        v = again->str, n = again->len;
    }
    if (again) freeReplyObject(again);
    return rc;
}

/* hscan_fn handles one field f (value v) of an hscan_each; 0 or -1. */
typedef int hscan_fn(struct queue *q, const redisReply *f, const redisReply *v, void *priv,
                     hr_err *err);

/* hscan_each calls fn for every field of hash key matching match, count
 * at a time. */
static int hscan_each(struct queue *q, const char *key, const char *match, int count, hscan_fn *fn,
                      void *priv, hr_err *err)
{
    char cursor[32] = "0";
    do {
        redisReply *r = cmd(q, err, "HSCAN %s %s MATCH %s COUNT %d", key, cursor, match, count);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return hr_err_set(err, "forget: unexpected HSCAN reply");
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            if (fn(q, kv->element[i], kv->element[i + 1], priv, err) != 0) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

typedef struct forget_scan {
    const char *norm; /* remove_jobs: the normalized address */
    const char *key;  /* remove_unsub_seen: the seen hash */
    hook_forget_result *res;
} forget_scan;

static int forget_field(struct queue *q, const redisReply *f, const redisReply *v, void *priv,
                        hr_err *err)
{
    forget_scan *fs = priv;
    return forget_job(q, f->str, v->str, v->len, fs->norm, fs->res, err);
}

/* remove_jobs removes or scrubs every email job to norm. */
static int remove_jobs(struct queue *q, const char *norm, hook_forget_result *res, hr_err *err)
{
    char key[300];
    snprintf(key, sizeof key, "{%s}:jobs", queue_ns(q));
    forget_scan fs = {.norm = norm, .res = res};
    return hscan_each(q, key, "*", 500, forget_field, &fs, err);
}

/* remove_engagement deletes the contact's rows and those of their jobs. */
static int remove_engagement(struct queue *q, const char *digest, hook_forget_result *res,
                             hr_err *err)
{
    const char *ns = queue_ns(q);
    redisReply *r = cmd(q, err, "HGET {%s}:eng:contacts %s|jobs", ns, digest);
    if (!r) return -1;
    char *jobs = r->type == REDIS_REPLY_STRING ? hr_strdup(r->str) : NULL;
    freeReplyObject(r);
    for (char *save = NULL, *job = jobs ? strtok_r(jobs, " ", &save) : NULL; job;
         job = strtok_r(NULL, " ", &save)) {
        for (int t = 1; t < HOOK_EV_COUNT; t++) {
            r = cmd(q, err, "HDEL {%s}:eng:jobs %s|%s", ns, job, hook_ev_name((hook_ev_type)t));
            if (!r) {
                free(jobs);
                return -1;
            }
            res->engagement_rows += r->integer;
            freeReplyObject(r);
        }
    }
    free(jobs);
    for (int t = 0; t < HOOK_EV_COUNT; t++) {
        const char *field = t == 0 ? "jobs" : hook_ev_name((hook_ev_type)t);
        r = cmd(q, err, "HDEL {%s}:eng:contacts %s|%s", ns, digest, field);
        if (!r) return -1;
        res->engagement_rows += r->integer;
        freeReplyObject(r);
    }
    return 0;
}

static int delete_field(struct queue *q, const redisReply *f, const redisReply *v, void *priv,
                        hr_err *err)
{
    forget_scan *fs = priv;
    redisReply *d = cmd(q, err, "HDEL %s %b", fs->key, f->str, f->len);
    if (!d) return -1;
    fs->res->engagement_rows += d->integer;
    freeReplyObject(d);
    return 0;
}

/* remove_unsub_seen deletes the one-click unsubscribe events' seen ids of
 * the contact ("unsub:<digest>:<campaign>", server.c; prefix without the
 * campaign) from both seen hashes: they name the contact by the
 * suppression digest. */
static int remove_unsub_seen(struct queue *q, const char *prefix, hook_forget_result *res,
                             hr_err *err)
{
    char key[300], match[100];
    snprintf(match, sizeof match, "%s*", prefix);
    forget_scan fs = {.key = key, .res = res};
    for (int h = 0; h < 2; h++) {
        snprintf(key, sizeof key, "{%s}:ev:seen:%d", queue_ns(q), h);
        if (hscan_each(q, key, match, 10000, delete_field, &fs, err) != 0) return -1;
    }
    return 0;
}

/* entry_is reports whether stream entry e (id, [field, value, ...]) has
 * field "event" starting with prefix. */
static int entry_is(const redisReply *e, const char *prefix)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) return 0;
    const redisReply *f = e->element[1];
    size_t pl = strlen(prefix);
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "event") == 0)
            return f->element[i + 1]->len >= pl && memcmp(f->element[i + 1]->str, prefix, pl) == 0;
    return 0;
}

/* remove_unsub_stream deletes the contact's one-click unsubscribe entries
 * from the events stream (their event id holds the digest), reading it in
 * pages. */
static int remove_unsub_stream(struct queue *q, const char *prefix, hook_forget_result *res,
                               hr_err *err)
{
    const char *ns = queue_ns(q);
    char start[64] = "-";
    for (;;) {
        redisReply *r = cmd(q, err, "XRANGE {%s}:events %s + COUNT 1000", ns, start);
        if (!r) return -1;
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (!entry_is(e, prefix)) continue;
            redisReply *d = cmd(q, err, "XDEL {%s}:events %s", ns, e->element[0]->str);
            if (!d) {
                freeReplyObject(r);
                return -1;
            }
            res->engagement_rows += d->integer;
            freeReplyObject(d);
        }
        if (n) snprintf(start, sizeof start, "(%s", r->element[n - 1]->element[0]->str);
        freeReplyObject(r);
        if (n < 1000) return 0;
    }
}

void hook_forget_result_release(hook_forget_result *res)
{
    free(res->kept);
    memset(res, 0, sizeof *res);
}

int hook_forget(struct queue *q, const char *secret, const char *email, hook_forget_result *res,
                hr_err *err)
{
    memset(res, 0, sizeof *res);
    char norm[256], digest[65];
    if (queue_email_normalize(email, norm, sizeof norm) != 0 ||
        queue_suppress_hash(secret, email, digest) != 0) {
        hr_err_set(err, "forget: \"%s\" is not an email address", email);
        if (err) err->code = 2;
        return -1;
    }
    /* suppress first: a worker about to send checks the list */
    char when[32];
    snprintf(when, sizeof when, "%lld", (long long)hr_now_ms());
    redisReply *r = cmd(q, err, "HSETNX {%s}:suppressed %s forget\t%s", queue_ns(q), digest, when);
    if (!r) return -1;
    freeReplyObject(r);
    res->suppressed = 1;
    if (remove_jobs(q, norm, res, err) != 0) return -1;
    char unsub[80];
    snprintf(unsub, sizeof unsub, "unsub:%s:", digest);
    if (remove_unsub_seen(q, unsub, res, err) != 0 || remove_unsub_stream(q, unsub, res, err) != 0)
        return -1;
    return remove_engagement(q, digest, res, err);
}
