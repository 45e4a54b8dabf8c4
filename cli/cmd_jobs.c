/* cmd_jobs.c: `herald jobs list|show|cancel`: jobs by state, platform, lane
 * and campaign, for people (a table) and scripts (--json). It reads through
 * the queue's public API and changes nothing but what cancel removes. */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "queue.h"

/* States as operators name them, and the queue_list name of each. */
static const char *const states[] = {"scheduled", "ready", "inflight",
                                     "retrying",  "dead",  "unknown"};
static const char *const list_names[] = {"scheduled", "ready", NULL, "retry", "dead", "unknown"};
#define NSTATES 6

static int state_index(const char *s)
{
    for (int i = 0; i < NSTATES; i++)
        if (strcmp(s, states[i]) == 0) return i;
    if (strcmp(s, "retry") == 0) return 3;
    if (strcmp(s, "parked") == 0) return 5; /* its old name */
    if (strcmp(s, "in-flight") == 0) return 2;
    return -1;
}

static redisReply *cmd(queue *q, hr_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisContext *c = queue_redis(q);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        hr_err_set(err, "redis: %s", c->errstr);
    else if (r->type == REDIS_REPLY_ERROR) {
        hr_err_set(err, "redis: %s", r->str);
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

int cli_job_state(queue *q, const queue_job *j, char *out, size_t outlen, hr_err *err)
{
    char lane[QUEUE_LANE_MAX];
    const char *ukh = queue_job_ukh(j);
    const char *ns = queue_ns(q);
    snprintf(out, outlen, "unknown");
    if (queue_job_lane(j, lane, sizeof lane) < 0) return 0;
    redisReply *r = cmd(q, err,
                        "EVAL %s 6 {%s}:sched:%s {%s}:ready:%s {%s}:retry:%s {%s}:dead:%s "
                        "{%s}:unknown:%s {%s}:done %s",
                        "if redis.call('ZSCORE',KEYS[1],ARGV[1]) then return 'scheduled' end "
                        "if redis.call('LPOS',KEYS[2],ARGV[1]) then return 'ready' end "
                        "if redis.call('ZSCORE',KEYS[3],ARGV[1]) then return 'retrying' end "
                        "if redis.call('ZSCORE',KEYS[4],ARGV[1]) then return 'dead' end "
                        "if redis.call('ZSCORE',KEYS[5],ARGV[1]) then return 'unknown' end "
                        "if redis.call('HEXISTS',KEYS[6],ARGV[1])==1 then return 'sent' end "
                        "return 'inflight'",
                        ns, lane, ns, lane, ns, lane, ns, lane, ns, lane, ns, ukh);
    if (!r) return -1;
    if (r->type == REDIS_REPLY_STRING) snprintf(out, outlen, "%s", r->str);
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------- filter */

typedef struct filter {
    int state; /* -1: every state */
    const char *platform, *lane, *campaign;
    long limit;
} filter;

typedef struct found {
    char ukh[QUEUE_UKH_LEN + 1];
    char lane[QUEUE_LANE_MAX];
    int state;
} found;

static int lane_ok(const filter *f, const char *lane)
{
    if (f->lane && strcmp(f->lane, lane) != 0) return 0;
    if (f->platform) {
        size_t n = strlen(f->platform);
        if (strncmp(lane, f->platform, n) != 0 || lane[n] != ':') return 0;
    }
    return 1;
}

static void add_found(found **v, int *n, int *cap, const char *ukh, const char *lane, int st)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = hr_realloc(*v, sizeof **v * (size_t)*cap);
    }
    found *x = &(*v)[(*n)++];
    snprintf(x->ukh, sizeof x->ukh, "%s", ukh);
    snprintf(x->lane, sizeof x->lane, "%s", lane);
    x->state = st;
}

/* collect lists the ukhs that match f's state and lane filters (campaign is
 * checked on the decoded job). In-flight jobs are read from each live
 * worker's in-flight hash. */
static int collect(queue *q, const filter *f, found **out, int *nout, hr_err *err)
{
    found *v = NULL;
    int n = 0, cap = 0;
    char **lanes;
    int nl;
    if (queue_lanes(q, &lanes, &nl, err) < 0) return -1;
    const long page = 10000;
    for (int s = 0; s < NSTATES; s++) {
        if (f->state >= 0 && f->state != s) continue;
        if (!list_names[s]) {
            redisReply *w = cmd(q, err, "ZRANGE {%s}:workers 0 -1", queue_ns(q));
            if (!w) goto fail;
            for (size_t i = 0; i < w->elements; i++) {
                queue_inflight_job *fj;
                int nf;
                if (queue_inflight(q, w->element[i]->str, &fj, &nf, err) < 0) {
                    freeReplyObject(w);
                    goto fail;
                }
                for (int k = 0; k < nf; k++)
                    if (lane_ok(f, fj[k].lane)) add_found(&v, &n, &cap, fj[k].ukh, fj[k].lane, s);
                free(fj);
            }
            freeReplyObject(w);
            continue;
        }
        for (int l = 0; l < nl; l++) {
            if (!lane_ok(f, lanes[l])) continue;
            for (long start = 0;; start += page) {
                char **u;
                int nu;
                if (queue_list(q, lanes[l], list_names[s], start, page, &u, &nu, err) < 0)
                    goto fail;
                for (int i = 0; i < nu; i++)
                    add_found(&v, &n, &cap, u[i], lanes[l], s);
                queue_strv_free(u, nu);
                if (nu < page) break;
            }
        }
    }
    queue_strv_free(lanes, nl);
    *out = v;
    *nout = n;
    return 0;
fail:
    queue_strv_free(lanes, nl);
    free(v);
    return -1;
}

static int parse_filter(int *argc, char **argv, filter *f)
{
    memset(f, 0, sizeof *f);
    f->state = -1;
    f->limit = -1; /* not given */
    const char *st = cli_take_opt(argc, argv, "state");
    f->platform = cli_take_opt(argc, argv, "platform");
    f->lane = cli_take_opt(argc, argv, "lane");
    f->campaign = cli_take_opt(argc, argv, "campaign");
    const char *lim = cli_take_opt(argc, argv, "limit");
    if (st && (f->state = state_index(st)) < 0) {
        fprintf(stderr,
                "herald jobs: --state: \"%s\" is not one of scheduled, ready, inflight, "
                "retrying, dead, unknown\n",
                st);
        return -1;
    }
    int64_t v;
    if (lim && (hr_parse_i64(lim, &v) < 0 || v < 0)) {
        fprintf(stderr, "herald jobs: --limit: \"%s\" is not a count\n", lim);
        return -1;
    }
    if (lim) f->limit = v; /* 0: no limit */
    return 0;
}

/* ------------------------------------------------------------ commands */

static json_t *job_json(const queue_job *j, const char *state, const char *reason)
{
    char *s = queue_job_to_json(j);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    if (!o) o = json_object();
    json_object_set_new(o, "state", json_string(state));
    if (reason) json_object_set_new(o, "reason", json_string(reason));
    return o;
}

static void print_row(const queue_job *j, const char *lane, const char *state)
{
    char when[40] = "-";
    if (j && j->run_at_ms) hr_format_rfc3339(j->run_at_ms - j->run_at_ms % 1000, when, sizeof when);
    const char *what = j ? (j->title ? j->title : j->subject ? j->subject : j->text) : NULL;
    printf("%-20s %-9s %-24s %-20s %-16s %3d  %.40s\n", j ? j->id : "?", state, lane, when,
           j && j->campaign ? j->campaign : "-", j ? j->attempt : 0, what ? what : "");
}

/* cli_list_jobs lists jobs matching the options (shared with `dead list`,
 * which fixes the state). Returns the exit status. */
int cli_list_jobs(int argc, char **argv, const char *fixed_state, const char *who)
{
    int json = cli_has_flag(&argc, argv, "json");
    filter f;
    if (parse_filter(&argc, argv, &f) < 0) return 2;
    /* a script reading --json gets every match; a person, a screenful */
    if (f.limit < 0) f.limit = json ? 0 : 100;
    if (fixed_state) f.state = state_index(fixed_state);
    int bad = cli_args_left(argc, argv, 1, 1);
    if (bad) return bad;
    queue *q = cli_queue();
    hr_err err = {0};
    found *v;
    int n;
    if (collect(q, &f, &v, &n, &err) < 0) {
        fprintf(stderr, "%s list: %s\n", who, err.msg);
        return 1;
    }
    /* --json streams the array: it may hold every job in the queue */
    if (json)
        fputs("[", stdout);
    else
        printf("%-20s %-9s %-24s %-20s %-16s %3s  %s\n", "ID", "STATE", "LANE", "RUN AT",
               "CAMPAIGN", "TRY", "TITLE");
    long shown = 0;
    int rc = 0;
    for (int i = 0; i < n && (f.limit == 0 || shown < f.limit); i++) {
        queue_job *j = queue_get(q, v[i].ukh, &err);
        if (!j && err.code) {
            /* a blob that cannot be decoded is still listed, by its ukh */
            hr_err_clear(&err);
        }
        if (f.campaign && (!j || !hr_streq(j->campaign, f.campaign))) {
            queue_job_free(j);
            continue;
        }
        const char *st = states[v[i].state];
        char *reason = v[i].state == 4 ? queue_dead_reason(q, v[i].ukh, &err) : NULL;
        if (json) {
            json_t *o =
                j ? job_json(j, st, reason)
                  : json_pack("{s:s,s:s,s:s}", "ukh", v[i].ukh, "state", st, "lane", v[i].lane);
            if (!j && reason) json_object_set_new(o, "reason", json_string(reason));
            char *line = json_dumps(o, JSON_COMPACT);
            printf("%s%s", shown ? ",\n" : "", line ? line : "{}");
            free(line);
            json_decref(o);
        } else {
            print_row(j, v[i].lane, st);
            if (reason) printf("%20s └ %s\n", "", reason);
        }
        free(reason);
        queue_job_free(j);
        shown++;
    }
    if (json)
        fputs("]\n", stdout);
    else if (shown < n && f.limit && shown == f.limit) {
        fprintf(stderr, "(first %ld shown; --limit 0 shows all)\n", shown);
    }
    free(v);
    return rc;
}

/* done_record reads the record a sent job with a unique key leaves
 * ("id\tplatform id\tsent at[\tlatency ms\tcost]"): a string reply, or
 * NULL (none, or err set). */
static redisReply *done_record(queue *q, const char *id, hr_err *err)
{
    if (strlen(id) < QUEUE_UKH_LEN) return NULL;
    redisReply *r =
        cmd(q, err, "HGET {%s}:done %s", queue_ns(q), id + strlen(id) - QUEUE_UKH_LEN);
    if (r && r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* what a missing job may be: a sent job keeps a record only when it had a
 * unique key (docs/jobs.md) */
#define NO_RECORD_HINT "(a sent job without a unique key keeps no record)"

int cli_job_refused(queue *q, const char *id, const char *who, const char *what)
{
    hr_err err = {0};
    if (queue_id_check(id, &err) < 0) {
        fprintf(stderr, "%s: %s\n", who, err.msg);
        return 2;
    }
    char st[16] = "sent";
    queue_job *j = queue_get(q, id, &err);
    if (j) {
        cli_job_state(q, j, st, sizeof st, &err);
        queue_job_free(j);
    } else if (!err.code) { /* gone: sent (its done record), or never there */
        redisReply *r = done_record(q, id, &err);
        if (!r && !err.code) {
            fprintf(stderr, "%s: no job %s %s\n", who, id, NO_RECORD_HINT);
            return 3;
        }
        if (r) freeReplyObject(r);
    }
    if (err.code) {
        fprintf(stderr, "%s: %s\n", who, err.msg);
        return 1;
    }
    if (strcmp(st, "sent") == 0)
        fprintf(stderr, "%s: %s was already sent: %s\n", who, id, what);
    else
        fprintf(stderr, "%s: %s is %s: %s\n", who, id, st, what);
    return 4;
}

/* cli_show_job prints one job with its state (and reason when dead).
 * Returns the exit status: 3 when there is no such job. */
int cli_show_job(const char *id, int json, const char *who)
{
    hr_err err = {0};
    if (queue_id_check(id, &err) < 0) {
        fprintf(stderr, "%s show: %s\n", who, err.msg);
        return 2;
    }
    queue *q = cli_queue();
    queue_job *j = queue_get(q, id, &err);
    if (!j) {
        /* a sent job keeps only its done record */
        redisReply *r = err.code ? NULL : done_record(q, id, &err);
        if (err.code) {
            fprintf(stderr, "%s show: %s\n", who, err.msg);
            return 1;
        }
        if (r) {
            /* id, platform id, sent at[, latency ms, cost in millionths]:
             * fields may be empty (an email's platform id), so not strtok */
            char *f[5] = {0}, *s = r->str;
            for (int k = 0; k < 5 && s; k++) f[k] = strsep(&s, "\t");
            char when[40] = "";
            if (f[2]) hr_format_rfc3339(atoll(f[2]), when, sizeof when);
            json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", f[0] && *f[0] ? f[0] : id, "state",
                                  "sent", "platform_id", f[1] ? f[1] : "", "sent_at", when);
            if (f[3] && f[4]) {
                json_object_set_new(o, "latency_ms", json_integer(atoll(f[3])));
                json_object_set_new(o, "cost", json_real((double)atoll(f[4]) / 1e6));
            }
            if (json) {
                char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                printf("%s\n", line);
                free(line);
            } else {
                printf("id:          %s\nstate:       sent\nplatform id: %s\nsent at:     %s\n",
                       json_string_value(json_object_get(o, "id")), f[1] ? f[1] : "", when);
                if (f[3] && f[4])
                    printf("latency:     %lld ms\ncost:        %.6f\n", atoll(f[3]),
                           (double)atoll(f[4]) / 1e6);
            }
            json_decref(o);
            freeReplyObject(r);
            return 0;
        }
        fprintf(stderr, "%s show: no job %s %s\n", who, id, NO_RECORD_HINT);
        return 3;
    }
    char st[16];
    if (cli_job_state(q, j, st, sizeof st, &err) < 0) {
        fprintf(stderr, "%s show: %s\n", who, err.msg);
        queue_job_free(j);
        return 1;
    }
    char *reason = queue_dead_reason(q, j->id, &err);
    if (json) {
        json_t *o = job_json(j, st, reason);
        char *s = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        char lane[QUEUE_LANE_MAX] = "?", when[40] = "-", created[40] = "-";
        queue_job_lane(j, lane, sizeof lane);
        if (j->run_at_ms) hr_format_rfc3339(j->run_at_ms, when, sizeof when);
        if (j->created_ms) hr_format_rfc3339(j->created_ms, created, sizeof created);
        printf("id:          %s\nstate:       %s\nlane:        %s\nkind:        %s\n"
               "campaign:    %s\nsource:      %s\nrun at:      %s\ncreated:     %s\n"
               "attempts:    %d of %d\n",
               j->id, st, lane,
               j->kind == QUEUE_KIND_EMAIL  ? "email"
               : j->kind == QUEUE_KIND_POLL ? "poll"
                                            : "post",
               j->campaign ? j->campaign : "-", j->source ? j->source : "-", when, created,
               j->attempt, j->max_attempts);
        if (j->last_error) printf("last error:  %s\n", j->last_error);
        if (reason) printf("reason:      %s\n", reason);
        if (j->title) printf("title:       %s\n", j->title);
        if (j->subject) printf("subject:     %s\n", j->subject);
        if (j->to) {
            char masked[300];
            hr_mask_email(j->to, masked, sizeof masked);
            printf("to:          %s\n", masked);
        }
        if (j->link) printf("link:        %s\n", j->link);
        if (j->text) printf("text:\n%s\n", j->text);
    }
    free(reason);
    queue_job_free(j);
    return 0;
}

int cli_worse_exit(int a, int b)
{
    static const int rank[] = {0, 4, 3, 1, 2}; /* by status 0..4 */
    return rank[b] > rank[a] ? b : a;
}

static int cancel(int argc, char **argv)
{
    int json = cli_has_flag(&argc, argv, "json");
    filter f;
    if (parse_filter(&argc, argv, &f) < 0) return 2;
    queue *q = cli_queue();
    hr_err err = {0};
    if (argc > 2) { /* by id */
        int rc = 0;
        for (int i = 2; i < argc; i++) {
            int r = queue_cancel(q, argv[i], &err);
            if (r < 0 && err.code != 2) {
                fprintf(stderr, "herald jobs cancel: %s\n", err.msg);
                return 1;
            }
            hr_err_clear(&err);
            if (r == 1) {
                printf("cancelled %s\n", argv[i]);
                continue;
            }
            rc = cli_worse_exit(rc, cli_job_refused(q, argv[i], "herald jobs cancel", "not cancellable"));
            if (rc == 1) return 1;
        }
        return rc;
    }
    if (!f.campaign && !f.platform && !f.lane) {
        fprintf(stderr, "herald jobs cancel: name job ids, or --campaign, --platform or --lane\n");
        return 2;
    }
    found *v;
    int n;
    if (collect(q, &f, &v, &n, &err) < 0) {
        fprintf(stderr, "herald jobs cancel: %s\n", err.msg);
        return 1;
    }
    long done = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        if (f.campaign) {
            queue_job *j = queue_get(q, v[i].ukh, &err);
            int ok = j && hr_streq(j->campaign, f.campaign);
            queue_job_free(j);
            if (!ok) continue;
        }
        int r = queue_cancel(q, v[i].ukh, &err);
        if (r < 0) {
            fprintf(stderr, "herald jobs cancel: %s\n", err.msg);
            free(v);
            return 1;
        }
        if (r)
            done++;
        else
            skipped++;
    }
    free(v);
    if (json)
        printf("{\"cancelled\":%ld,\"not_cancellable\":%ld}\n", done, skipped);
    else
        printf("cancelled %ld, not cancellable (in flight or unknown) %ld\n", done, skipped);
    return 0;
}

int cmd_jobs(int argc, char **argv)
{
    if (argc < 2) return cli_usage();
    const char *op = argv[1];
    if (strcmp(op, "list") == 0) return cli_list_jobs(argc, argv, NULL, "herald jobs");
    if (strcmp(op, "show") == 0) {
        int json = cli_has_flag(&argc, argv, "json");
        if (argc != 3) return cli_usage();
        return cli_show_job(argv[2], json, "herald jobs");
    }
    if (strcmp(op, "cancel") == 0) return cancel(argc, argv);
    return cli_usage();
}
