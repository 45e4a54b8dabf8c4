/* forget.c: `herald forget EMAIL`: cancels the queued emails to a contact,
 * deletes the engagement rows keyed by them, and leaves only the suppression
 * entry (a keyed hash). Sync hiredis through the queue's connection; each
 * step is idempotent, so a failure half-way is fixed by running it again. */
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

/* remove_jobs cancels every queued email job to norm. */
static int remove_jobs(struct queue *q, const char *norm, hook_forget_result *res, hr_err *err)
{
    const char *ns = queue_ns(q);
    char cursor[32] = "0";
    do {
        redisReply *r = cmd(q, err, "HSCAN {%s}:jobs %s COUNT 500", ns, cursor);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            return hr_err_set(err, "forget: unexpected HSCAN reply");
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            hr_err e2 = {0};
            queue_job *j = queue_job_decode_stored(kv->element[i]->str, kv->element[i + 1]->str,
                                                   kv->element[i + 1]->len, &e2);
            char to[256];
            if (j && j->kind == QUEUE_KIND_EMAIL && j->to &&
                queue_email_normalize(j->to, to, sizeof to) == 0 && strcmp(to, norm) == 0) {
                int c = queue_cancel(q, j->id, &e2);
                if (c == 1)
                    res->jobs_removed++;
                else if (c == 0)
                    res->jobs_in_flight++;
                else {
                    hr_err_set(err, "forget: cancel %s: %s", j->id, e2.msg);
                    queue_job_free(j);
                    freeReplyObject(r);
                    return -1;
                }
            }
            queue_job_free(j);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
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
    return remove_engagement(q, digest, res, err);
}
