/* cmd_stats.c: `herald stats` (queue depth per lane and state, queue latency,
 * recent outcomes, circuits, budgets, engagement; a table, --json, --watch)
 * and the Prometheus text the servers' /metrics append (cli_metrics_render).
 * It only reads: nothing here changes the queue. */
#include <ev.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "queue.h"
#include "webhooks.h"
#include "worker.h"

/* One lane's figures, as `stats` shows them. */
typedef struct cli_lane_stats {
    queue_lane_counts c;
    char platform[64];
    long sent[3], dead[3], retried[3]; /* last minute, hour, day */
    char circuit[16];
    char parked[32]; /* why the fetch script holds the whole lane ("budget"), or "" */
    int64_t circuit_until_ms;
    int64_t wait_until_ms; /* the platform's quota is used up until then */
    int64_t spent_day, spent_month, cap_day, cap_month; /* micro-units */
} cli_lane_stats;

/* The states of a lane's jobs, in the order of lane_states(): the names of
 * the JSON fields and of herald_queue_depth's state label. "unknown" is an
 * attempt whose outcome nobody knows yet; a lane the fetch script holds back
 * as a whole is "parked", shown apart (cli_lane_stats.parked). */
#define NSTATES 6
static const char *const state_names[NSTATES] = {"scheduled", "ready", "inflight",
                                                 "retrying",  "dead",  "unknown"};

static void lane_states(const queue_lane_counts *c, long st[NSTATES])
{
    st[0] = c->scheduled, st[1] = c->ready, st[2] = c->inflight;
    st[3] = c->retrying, st[4] = c->dead, st[5] = c->unknown;
}

/* The windows of "sent/failed in the last ...", in minutes. */
static const int windows_min[3] = {1, 60, 1440};
static const char *const window_names[3] = {"1m", "1h", "1d"};

/* ---------------------------------------------------------- collect */

static int by_lane(const void *a, const void *b)
{
    return strcmp(((const cli_lane_stats *)a)->c.lane, ((const cli_lane_stats *)b)->c.lane);
}

/* recent_all counts every lane's outcomes in the last minute, hour and day
 * in one pass over the per-minute buckets ("m|KIND|LANE|MINUTE" in
 * {ns}:stats, queue.h), where queue_recent would scan them all once per lane
 * and window. v must be sorted by lane. Old buckets are left to
 * queue_recent's pruning: stats only reads. */
static int recent_all(queue *q, cli_lane_stats *v, int n, int64_t now_ms, hr_err *err)
{
    redisContext *rc = queue_redis(q);
    int64_t minute = now_ms / 60000;
    char cursor[32] = "0";
    cli_lane_stats key;
    do {
        redisReply *r =
            redisCommand(rc, "HSCAN {%s}:stats %s MATCH m|* COUNT 1000", queue_ns(q), cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            hr_err_set(err, "stats: redis HSCAN: %s", r ? "unexpected reply" : rc->errstr);
            if (r) freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            const char *f = kv->element[i]->str + 2; /* after "m|" */
            const char *bar = strchr(f, '|'), *last = strrchr(f, '|');
            if (!bar || last <= bar || (size_t)(last - bar - 1) >= sizeof key.c.lane) continue;
            int64_t age = minute - atoll(last + 1);
            if (age >= windows_min[2]) continue;
            snprintf(key.c.lane, sizeof key.c.lane, "%.*s", (int)(last - bar - 1), bar + 1);
            cli_lane_stats *s = bsearch(&key, v, (size_t)n, sizeof *v, by_lane);
            if (!s) continue;
            long count = atol(kv->element[i + 1]->str);
            size_t kl = (size_t)(bar - f);
            long *slot = kl == 4 && !strncmp(f, "sent", 4)    ? s->sent
                         : kl == 4 && !strncmp(f, "dead", 4)  ? s->dead
                         : kl == 5 && !strncmp(f, "retry", 5) ? s->retried
                                                              : NULL;
            for (int w = 0; slot && w < 3; w++)
                if (age < windows_min[w]) slot[w] += count;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* cli_stats_collect reads every lane's figures; with_recent also counts the
 * last minute/hour/day (a scan of the per-minute buckets per lane, which
 * /metrics skips: Prometheus takes rates of the counters itself). */
static int cli_stats_collect(queue *q, const hr_config *cfg, int with_recent, cli_lane_stats **out,
                             int *nout, int64_t *now_ms, hr_err *err)
{
    *out = NULL;
    *nout = 0;
    if (queue_time_ms(q, now_ms, err) < 0) return -1;
    redisContext *rc = queue_redis(q);

    queue_lane_counts *c;
    int n;
    if (queue_counts(q, &c, &n, err) < 0) return -1;
    cli_lane_stats *v = hr_calloc((size_t)n + 1, sizeof *v);
    int64_t day = worker_budget_day(*now_ms), month = worker_budget_month(*now_ms);
    /* every lane's state hash in one round trip: a scrape reads them all */
    for (int i = 0; i < n; i++)
        redisAppendCommand(rc, "HGETALL {%s}:lane:%s", queue_ns(q), c[i].lane);
    for (int i = 0; i < n; i++) {
        cli_lane_stats *s = &v[i];
        s->c = c[i];
        const char *colon = strchr(c[i].lane, ':');
        snprintf(s->platform, sizeof s->platform, "%.*s",
                 colon ? (int)(colon - c[i].lane) : (int)strlen(c[i].lane), c[i].lane);
        /* The worker keeps the lane's limiter, circuit and budget state in
         * {ns}:lane:LANE (see docs/metrics.md); absent fields read as zero. */
        snprintf(s->circuit, sizeof s->circuit, "closed");
        redisReply *h = NULL;
        if (redisGetReply(rc, (void **)&h) != REDIS_OK || !h) {
            /* the connection is broken: its other replies will not come */
            hr_err_set(err, "stats: redis: %s", rc->errstr);
            goto fail;
        }
        /* the worker's fields (worker/process.c, queue/lua/fetch.lua): b_day
         * and b_month name the period b_*_used counts; q_left/q_reset are
         * the platform's remaining quota until its reset; parked is why the
         * fetch script holds the whole lane (budget: a cap is reached; any
         * other value but 0 holds it too) */
        int64_t b_day = 0, b_month = 0, b_day_used = 0, b_month_used = 0, q_left = -1,
                q_reset = 0;
        for (size_t k = 0; h->type == REDIS_REPLY_ARRAY && k + 1 < h->elements; k += 2) {
            const char *f = h->element[k]->str, *val = h->element[k + 1]->str;
            if (strcmp(f, "circuit") == 0)
                snprintf(s->circuit, sizeof s->circuit, "%s", val);
            else if (strcmp(f, "circuit_until_ms") == 0)
                s->circuit_until_ms = atoll(val);
            else if (strcmp(f, "parked") == 0 && strcmp(val, "0") != 0)
                snprintf(s->parked, sizeof s->parked, "%s", val);
            else if (strcmp(f, "b_day") == 0)
                b_day = atoll(val);
            else if (strcmp(f, "b_month") == 0)
                b_month = atoll(val);
            else if (strcmp(f, "b_day_used") == 0)
                b_day_used = atoll(val);
            else if (strcmp(f, "b_month_used") == 0)
                b_month_used = atoll(val);
            else if (strcmp(f, "q_left") == 0)
                q_left = atoll(val);
            else if (strcmp(f, "q_reset") == 0)
                q_reset = atoll(val);
        }
        if (b_day == day) s->spent_day = b_day_used;
        if (b_month == month) s->spent_month = b_month_used;
        if (q_left == 0 && q_reset > *now_ms)
            s->wait_until_ms = q_reset; /* waiting for the platform's reset */
        freeReplyObject(h);
        worker_account_conf a;
        hr_err e2 = {0};
        if (worker_account_conf_get(cfg, c[i].lane, &a, &e2) == 0) {
            s->cap_day = a.budget.cap_day;
            s->cap_month = a.budget.cap_month;
        }
    }
    free(c);
    qsort(v, (size_t)n, sizeof *v, by_lane);
    if (with_recent && recent_all(q, v, n, *now_ms, err) < 0) {
        free(v);
        return -1;
    }
    *out = v;
    *nout = n;
    return 0;
fail:
    free(c);
    free(v);
    return -1;
}

static int cli_engagement(queue *q, queue_kv **out, int *n, hr_err *err)
{
    *out = NULL;
    *n = 0;
    redisContext *rc = queue_redis(q);
    redisReply *r = redisCommand(rc, "HGETALL {%s}:eng:totals", queue_ns(q));
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        hr_err_set(err, "engagement: redis: %s", r ? "unexpected reply" : rc->errstr);
        if (r) freeReplyObject(r);
        return -1;
    }
    queue_kv *v = hr_calloc(r->elements / 2 + 1, sizeof *v);
    for (size_t k = 0; k + 1 < r->elements; k += 2) {
        v[*n].key = hr_strdup(r->element[k]->str);
        v[*n].value = hr_strdup(r->element[k + 1]->str);
        (*n)++;
    }
    freeReplyObject(r);
    *out = v;
    return 0;
}

static void cli_kv_free(queue_kv *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

/* ------------------------------------------------------------ print */

static int matches(const cli_lane_stats *s, const char *platform, const char *lane)
{
    if (platform && strcmp(s->platform, platform) != 0) return 0;
    if (lane && strcmp(s->c.lane, lane) != 0) return 0;
    return 1;
}

static double age_s(const cli_lane_stats *s, int64_t now_ms)
{
    if (!s->c.oldest_ready_ms || s->c.ready == 0) return 0;
    int64_t d = now_ms - s->c.oldest_ready_ms;
    return d > 0 ? (double)d / 1000.0 : 0;
}

static const char *circuit_now(const cli_lane_stats *s, int64_t now_ms)
{
    /* an open breaker whose time has passed lets a probe through next */
    if (strcmp(s->circuit, "open") == 0 && s->circuit_until_ms && s->circuit_until_ms <= now_ms)
        return "half-open";
    return s->circuit;
}

static json_t *money(int64_t micros)
{
    return json_real((double)micros / 1e6);
}

static json_t *stats_json(const cli_lane_stats *v, int n, int64_t now_ms, const queue_kv *eng,
                          int neng, const char *platform, const char *lane)
{
    json_t *lanes = json_array();
    long tot[NSTATES] = {0}, tsent[3] = {0}, tfail[3] = {0};
    for (int i = 0; i < n; i++) {
        const cli_lane_stats *s = &v[i];
        if (!matches(s, platform, lane)) continue;
        json_t *o = json_object();
        json_object_set_new(o, "lane", json_string(s->c.lane));
        json_object_set_new(o, "platform", json_string(s->platform));
        json_object_set_new(o, "account", json_string(s->c.lane + strlen(s->platform) + 1));
        long st[NSTATES];
        lane_states(&s->c, st);
        for (int k = 0; k < NSTATES; k++) {
            json_object_set_new(o, state_names[k], json_integer(st[k]));
            tot[k] += st[k];
        }
        json_object_set_new(o, "paused", json_boolean(s->c.paused));
        json_object_set_new(o, "parked", s->parked[0] ? json_string(s->parked) : json_null());
        json_object_set_new(o, "oldest_ready_age_s", json_real(age_s(s, now_ms)));
        json_t *sent = json_object(), *failed = json_object(), *retried = json_object();
        for (int w = 0; w < 3; w++) {
            json_object_set_new(sent, window_names[w], json_integer(s->sent[w]));
            json_object_set_new(failed, window_names[w], json_integer(s->dead[w]));
            json_object_set_new(retried, window_names[w], json_integer(s->retried[w]));
            tsent[w] += s->sent[w];
            tfail[w] += s->dead[w];
        }
        json_object_set_new(o, "sent", sent);
        json_object_set_new(o, "failed", failed);
        json_object_set_new(o, "retried", retried);
        json_object_set_new(o, "sent_total", json_integer(s->c.sent_total));
        json_object_set_new(o, "dead_total", json_integer(s->c.dead_total));
        json_object_set_new(o, "retried_total", json_integer(s->c.retried_total));
        json_object_set_new(o, "polled_total", json_integer(s->c.polled_total));
        json_object_set_new(o, "circuit", json_string(circuit_now(s, now_ms)));
        int64_t wait = s->wait_until_ms > now_ms ? s->wait_until_ms - now_ms : 0;
        json_object_set_new(o, "rate_limit_wait_s", json_real((double)wait / 1000.0));
        json_t *b = json_object();
        json_object_set_new(b, "spent_day", money(s->spent_day));
        json_object_set_new(b, "limit_day", s->cap_day ? money(s->cap_day) : json_null());
        json_object_set_new(b, "spent_month", money(s->spent_month));
        json_object_set_new(b, "limit_month", s->cap_month ? money(s->cap_month) : json_null());
        json_object_set_new(o, "budget", b);
        json_array_append_new(lanes, o);
    }
    json_t *t = json_object();
    for (int k = 0; k < NSTATES; k++)
        json_object_set_new(t, state_names[k], json_integer(tot[k]));
    json_t *sent = json_object(), *failed = json_object();
    for (int w = 0; w < 3; w++) {
        json_object_set_new(sent, window_names[w], json_integer(tsent[w]));
        json_object_set_new(failed, window_names[w], json_integer(tfail[w]));
    }
    json_object_set_new(t, "sent", sent);
    json_object_set_new(t, "failed", failed);
    /* per platform, by state */
    json_t *plats = json_object();
    for (int i = 0; i < n; i++) {
        const cli_lane_stats *s = &v[i];
        if (!matches(s, platform, lane)) continue;
        json_t *o = json_object_get(plats, s->platform);
        if (!o) {
            o = json_object();
            json_object_set_new(plats, s->platform, o);
        }
        long st[NSTATES];
        lane_states(&s->c, st);
        for (int k = 0; k < NSTATES; k++)
            json_object_set_new(
                o, state_names[k],
                json_integer(json_integer_value(json_object_get(o, state_names[k])) + st[k]));
        double age = age_s(s, now_ms);
        if (age > json_real_value(json_object_get(o, "oldest_ready_age_s")))
            json_object_set_new(o, "oldest_ready_age_s", json_real(age));
        else if (!json_object_get(o, "oldest_ready_age_s"))
            json_object_set_new(o, "oldest_ready_age_s", json_real(0));
    }
    json_t *e = json_object();
    for (int i = 0; i < neng; i++)
        json_object_set_new(e, eng[i].key, json_integer(atoll(eng[i].value)));
    return json_pack("{s:I,s:o,s:o,s:o,s:o}", "time_ms", (json_int_t)now_ms, "lanes", lanes,
                     "platforms", plats, "totals", t, "engagement", e);
}

static void fmt_age(double s, char *out, size_t n)
{
    if (s <= 0)
        snprintf(out, n, "-");
    else if (s < 120)
        snprintf(out, n, "%.1fs", s);
    else if (s < 7200)
        snprintf(out, n, "%.0fm", s / 60);
    else
        snprintf(out, n, "%.0fh", s / 3600);
}

static void fmt_budget(const cli_lane_stats *s, char *out, size_t n)
{
    if (s->cap_day)
        snprintf(out, n, "%.2f/%.2f", (double)s->spent_day / 1e6, (double)s->cap_day / 1e6);
    else if (s->cap_month)
        snprintf(out, n, "%.2f/%.2f mo", (double)s->spent_month / 1e6, (double)s->cap_month / 1e6);
    else if (s->spent_day)
        snprintf(out, n, "%.2f", (double)s->spent_day / 1e6);
    else
        snprintf(out, n, "-");
}

/* A sum of lanes: a platform's or everything's. */
typedef struct lane_sum {
    long st[NSTATES], sent[3], dead[3];
    double age_s; /* the oldest ready job among them */
    int lanes;
} lane_sum;

static void sum_add(lane_sum *t, const cli_lane_stats *s, int64_t now_ms)
{
    long st[NSTATES];
    lane_states(&s->c, st);
    for (int k = 0; k < NSTATES; k++)
        t->st[k] += st[k];
    for (int w = 0; w < 3; w++)
        t->sent[w] += s->sent[w], t->dead[w] += s->dead[w];
    if (age_s(s, now_ms) > t->age_s) t->age_s = age_s(s, now_ms);
    t->lanes++;
}

static void print_sum(FILE *f, const char *label, const lane_sum *t)
{
    char age[16], sent[48], failed[40];
    fmt_age(t->age_s, age, sizeof age);
    snprintf(sent, sizeof sent, "%ld/%ld/%ld", t->sent[0], t->sent[1], t->sent[2]);
    snprintf(failed, sizeof failed, "%ld/%ld", t->dead[1], t->dead[2]);
    fprintf(f, "%-32s %5ld %5ld %5ld %5ld %5ld %7ld %7s %14s %11s\n", label, t->st[0], t->st[1],
            t->st[2], t->st[3], t->st[4], t->st[5], age, sent, failed);
}

/* cli_stats_print prints one row per lane (v is sorted, so a platform's
 * lanes are together), a subtotal per platform with several lanes, and the
 * total. */
static void cli_stats_print(FILE *f, const cli_lane_stats *v, int n, int64_t now_ms,
                            const char *platform, const char *lane)
{
    fprintf(f, "%-32s %5s %5s %5s %5s %5s %7s %7s %14s %11s %6s %-9s %-7s %s\n", "LANE",
            "SCHED", "READY", "FLIGHT", "RETRY", "DEAD", "UNKNOWN", "LATENCY", "SENT 1m/1h/1d",
            "FAILED 1h/1d", "WAIT", "CIRCUIT", "PARKED", "BUDGET");
    lane_sum total = {0}, plat = {0};
    const char *cur = NULL;
    for (int i = 0; i < n; i++) {
        const cli_lane_stats *s = &v[i];
        if (!matches(s, platform, lane)) continue;
        if (cur && strcmp(cur, s->platform) != 0) {
            if (plat.lanes > 1) {
                char label[80];
                snprintf(label, sizeof label, "  %s (%d lanes)", cur, plat.lanes);
                print_sum(f, label, &plat);
            }
            memset(&plat, 0, sizeof plat);
        }
        cur = s->platform;
        char age[16], sent[48], failed[40], wait[16], budget[48];
        fmt_age(age_s(s, now_ms), age, sizeof age);
        snprintf(sent, sizeof sent, "%ld/%ld/%ld", s->sent[0], s->sent[1], s->sent[2]);
        snprintf(failed, sizeof failed, "%ld/%ld", s->dead[1], s->dead[2]);
        fmt_age(s->wait_until_ms > now_ms ? (double)(s->wait_until_ms - now_ms) / 1000 : 0, wait,
                sizeof wait);
        fmt_budget(s, budget, sizeof budget);
        fprintf(f, "%-32s %5ld %5ld %5ld %5ld %5ld %7ld %7s %14s %11s %6s %-9s %-7s %s%s\n",
                s->c.lane, s->c.scheduled, s->c.ready, s->c.inflight, s->c.retrying, s->c.dead,
                s->c.unknown, age, sent, failed, wait, circuit_now(s, now_ms),
                s->parked[0] ? s->parked : "-", budget, s->c.paused ? "  PAUSED" : "");
        sum_add(&plat, s, now_ms);
        sum_add(&total, s, now_ms);
    }
    if (cur && plat.lanes > 1) {
        char label[80];
        snprintf(label, sizeof label, "  %s (%d lanes)", cur, plat.lanes);
        print_sum(f, label, &plat);
    }
    print_sum(f, "TOTAL", &total);
}

int cli_stats_report(queue *q, const hr_config *cfg, FILE *f, hr_err *err)
{
    cli_lane_stats *v;
    int n, neng = 0;
    int64_t now;
    queue_kv *eng = NULL;
    if (cli_stats_collect(q, cfg, 1, &v, &n, &now, err) < 0) return -1;
    if (cli_engagement(q, &eng, &neng, err) < 0) {
        free(v);
        return -1;
    }
    cli_stats_print(f, v, n, now, NULL, NULL);
    fprintf(f, "\nengagement:");
    for (int i = 0; i < neng; i++)
        fprintf(f, " %s=%s", eng[i].key, eng[i].value);
    fprintf(f, "%s\n", neng ? "" : " none recorded");
    free(v);
    cli_kv_free(eng, neng);
    return 0;
}

/* --serve: a small metrics server of its own (hook_httpd), for a machine
 * that runs no other herald server, or as a Prometheus sidecar: /metrics,
 * /healthz, /readyz. Its loop does nothing else, so the sync reads of a
 * scrape block nobody. */
void cli_metrics_request(hook_req *r, void *priv)
{
    const char *path = hook_req_path(r);
    if (strcmp(path, "/healthz") == 0) return hook_req_respond_json(r, 200, "{\"ok\":true}");
    if (strcmp(path, "/metrics") == 0 || strcmp(path, "/readyz") == 0) {
        hr_buf b;
        hr_buf_init(&b);
        cli_metrics_hook(&b, priv);
        int up = strstr(b.data, "herald_metrics_redis_up 1") != NULL;
        if (path[1] == 'r')
            hook_req_respond_json(r, up ? 200 : 503, up ? "{\"redis\":true}" : "{\"redis\":false}");
        else
            hook_req_respond(r, 200, "text/plain; version=0.0.4", b.data, b.len);
        hr_buf_release(&b);
        return;
    }
    hook_req_respond_json(r, 404, "{\"error\":\"no such route\"}");
}

static void serve_stopped(void *priv)
{
    ev_break((struct ev_loop *)priv, EVBREAK_ALL);
}

static void serve_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)revents;
    ev_signal_stop(loop, w);
    hook_httpd_stop(w->data, serve_stopped, loop);
}

static int serve(const char *listen, const hr_config *cfg)
{
    struct ev_loop *loop = ev_default_loop(0);
    hook_httpd_opts o = {0};
    o.listen = listen;
    o.handler = cli_metrics_request;
    o.priv = (void *)cfg;
    hr_err err = {0};
    hook_httpd *h = hook_httpd_new(loop, &o, &err);
    if (!h) {
        fprintf(stderr, "herald stats --serve: %s\n", err.msg);
        return 1;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", hook_httpd_port(h));
    hr_log(HR_LOG_INFO, "metrics listening", "port", port, NULL);
    ev_signal term, intr;
    ev_signal_init(&term, serve_signal, SIGTERM);
    ev_signal_init(&intr, serve_signal, SIGINT);
    term.data = intr.data = h;
    ev_signal_start(loop, &term);
    ev_signal_start(loop, &intr);
    ev_run(loop, 0);
    ev_signal_stop(loop, &term);
    ev_signal_stop(loop, &intr);
    hook_httpd_free(h);
    ev_loop_destroy(loop);
    return 0;
}

static volatile sig_atomic_t stop_watch;
static void on_int(int sig)
{
    stop_watch = sig;
}

int cmd_stats(int argc, char **argv)
{
    int json = cli_has_flag(&argc, argv, "json");
    int prom = cli_has_flag(&argc, argv, "prometheus");
    const char *listen = cli_take_opt(&argc, argv, "serve");
    const char *platform = cli_take_opt(&argc, argv, "platform");
    const char *lane = cli_take_opt(&argc, argv, "lane");
    int watch = 0;
    double every = 2;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--watch") == 0) {
            watch = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                char *end;
                every = strtod(argv[i + 1], &end);
                if (end == argv[i + 1] || *end || !(every >= 0.1 && every <= 86400)) {
                    fprintf(stderr, "herald stats: --watch: expected 0.1..86400 seconds, got \"%s\"\n",
                            argv[i + 1]);
                    return 2;
                }
                memmove(&argv[i + 1], &argv[i + 2], sizeof *argv * (size_t)(argc - i - 2));
                argc--;
            }
            memmove(&argv[i], &argv[i + 1], sizeof *argv * (size_t)(argc - i - 1));
            argc--;
            break;
        }
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    if (listen) return serve(listen, cli_config());
    queue *q = cli_queue();
    const hr_config *cfg = cli_config();
    if (prom) {
        /* the /metrics text once, e.g. for node_exporter's textfile collector */
        hr_buf b;
        hr_buf_init(&b);
        hr_err err = {0};
        int rc = cli_metrics_render(q, cfg, &b, &err);
        if (rc == 0)
            fwrite(b.data, 1, b.len, stdout);
        else
            fprintf(stderr, "herald stats: %s\n", err.msg);
        hr_buf_release(&b);
        return rc == 0 ? 0 : 1;
    }
    int tty = isatty(1);
    if (watch) signal(SIGINT, on_int);
    for (;;) {
        cli_lane_stats *v;
        int n;
        int64_t now;
        hr_err err = {0};
        queue_kv *eng = NULL;
        int neng = 0;
        if (cli_stats_collect(q, cfg, 1, &v, &n, &now, &err) < 0 ||
            cli_engagement(q, &eng, &neng, &err) < 0) {
            fprintf(stderr, "herald stats: %s\n", err.msg);
            return 1;
        }
        if (json) {
            json_t *o = stats_json(v, n, now, eng, neng, platform, lane);
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            /* like top: home the cursor and clear, so the table redraws in place */
            if (watch && tty) fputs("\033[H\033[2J", stdout);
            if (watch) {
                char ts[40];
                hr_format_rfc3339(now - now % 1000, ts, sizeof ts);
                printf("herald stats  %s  (every %gs, Ctrl-C to stop)\n\n", ts, every);
            }
            cli_stats_print(stdout, v, n, now, platform, lane);
            if (neng) {
                printf("\nengagement:");
                for (int i = 0; i < neng; i++)
                    printf(" %s=%s", eng[i].key, eng[i].value);
                printf("\n");
            }
        }
        fflush(stdout);
        free(v);
        cli_kv_free(eng, neng);
        if (!watch) return 0;
        for (int ms = 0; ms < every * 1000 && !stop_watch; ms += 100)
            usleep(100 * 1000);
        if (stop_watch) return 0;
    }
}

/* ----------------------------------------------------------- metrics */

/* send_hist_render renders {ns}:sendtime ("PLATFORM|LE_MS" or
 * "PLATFORM|inf" -> count, "PLATFORM|sum_ms" -> ms; docs/metrics.md) as one
 * histogram per platform, every bucket of queue_send_bounds_ms each time. */
typedef struct send_hist {
    char platform[64];
    long counts[QUEUE_SEND_BUCKETS + 1];
    long long sum_ms;
} send_hist;

static void send_hist_render(hr_buf *b, const redisReply *r)
{
    send_hist *h = hr_calloc(r->elements / 2 + 1, sizeof *h);
    int nh = 0;
    for (size_t k = 0; k + 1 < r->elements; k += 2) {
        const char *f = r->element[k]->str, *bar = strrchr(f, '|');
        if (!bar || (size_t)(bar - f) >= sizeof h[0].platform) continue;
        int i = 0;
        while (i < nh && (strncmp(h[i].platform, f, (size_t)(bar - f)) != 0 ||
                          h[i].platform[bar - f] != '\0'))
            i++;
        if (i == nh) snprintf(h[nh++].platform, sizeof h[0].platform, "%.*s", (int)(bar - f), f);
        long long v = atoll(r->element[k + 1]->str);
        if (strcmp(bar + 1, "sum_ms") == 0) {
            h[i].sum_ms = v;
            continue;
        }
        int bk = QUEUE_SEND_BUCKETS; /* "inf" */
        if (strcmp(bar + 1, "inf") != 0) {
            long long le = atoll(bar + 1);
            for (bk = 0; bk < QUEUE_SEND_BUCKETS && queue_send_bounds_ms[bk] != le; bk++) {}
            if (bk == QUEUE_SEND_BUCKETS) continue; /* a bound no worker writes */
        }
        h[i].counts[bk] += (long)v;
    }
    hr_buf labels;
    hr_buf_init(&labels);
    for (int i = 0; i < nh; i++) {
        hr_buf_reset(&labels);
        hr_buf_puts(&labels, "platform=\"");
        hr_prom_label(&labels, h[i].platform);
        hr_buf_putc(&labels, '"');
        hr_prom_histogram(b, "herald_send_duration_seconds", labels.data, queue_send_bounds_ms,
                          QUEUE_SEND_BUCKETS, h[i].counts, h[i].sum_ms);
    }
    hr_buf_release(&labels);
    free(h);
}

/* Platform totals for herald_sends_total, summed over lanes. */
typedef struct plat_sum {
    char platform[64];
    long sent, dead, retried, polled;
} plat_sum;

int cli_metrics_render(queue *q, const hr_config *cfg, hr_buf *b, hr_err *err)
{
    cli_lane_stats *v;
    int n;
    int64_t now;
    if (cli_stats_collect(q, cfg, 0, &v, &n, &now, err) < 0) return -1;
    hr_prom_family(b, "herald_queue_depth", "gauge", "Jobs per lane and state.");
    for (int i = 0; i < n; i++) {
        long st[NSTATES];
        lane_states(&v[i].c, st);
        for (int k = 0; k < NSTATES; k++) {
            hr_buf_puts(b, "herald_queue_depth{platform=\"");
            hr_prom_label(b, v[i].platform);
            hr_buf_puts(b, "\",lane=\"");
            hr_prom_label(b, v[i].c.lane);
            hr_buf_printf(b, "\",state=\"%s\"} %ld\n", state_names[k], st[k]);
        }
    }
    hr_prom_family(b, "herald_queue_oldest_ready_seconds", "gauge", "Age of the oldest ready job.");
    for (int i = 0; i < n; i++) {
        hr_buf_puts(b, "herald_queue_oldest_ready_seconds{lane=\"");
        hr_prom_label(b, v[i].c.lane);
        hr_buf_printf(b, "\"} %.3f\n", age_s(&v[i], now));
    }
    hr_prom_family(b, "herald_lane_paused", "gauge", "1 when the lane or its platform is paused.");
    for (int i = 0; i < n; i++) {
        hr_buf_puts(b, "herald_lane_paused{lane=\"");
        hr_prom_label(b, v[i].c.lane);
        hr_buf_printf(b, "\"} %d\n", v[i].c.paused ? 1 : 0);
    }
    hr_prom_family(b, "herald_lane_parked", "gauge",
                   "1 while the fetch script holds the whole lane back (reason: why, e.g. "
                   "budget).");
    for (int i = 0; i < n; i++) {
        hr_buf_puts(b, "herald_lane_parked{lane=\"");
        hr_prom_label(b, v[i].c.lane);
        if (v[i].parked[0]) {
            hr_buf_puts(b, "\",reason=\"");
            hr_prom_label(b, v[i].parked);
        }
        hr_buf_printf(b, "\"} %d\n", v[i].parked[0] ? 1 : 0);
    }
    hr_prom_family(b, "herald_circuit_open", "gauge", "1 while the lane's circuit breaker is open.");
    for (int i = 0; i < n; i++) {
        hr_buf_puts(b, "herald_circuit_open{lane=\"");
        hr_prom_label(b, v[i].c.lane);
        hr_buf_printf(b, "\"} %d\n", strcmp(circuit_now(&v[i], now), "closed") != 0);
    }
    hr_prom_family(b, "herald_budget_spent", "gauge", "Money spent in the period (currency units).");
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 2; p++) {
            hr_buf_puts(b, "herald_budget_spent{lane=\"");
            hr_prom_label(b, v[i].c.lane);
            hr_buf_printf(b, "\",period=\"%s\"} %.6f\n", p ? "month" : "day",
                          (double)(p ? v[i].spent_month : v[i].spent_day) / 1e6);
        }
    }
    hr_prom_family(b, "herald_budget_limit", "gauge", "Budget cap of the period (absent: no cap).");
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < 2; p++) {
            int64_t cap = p ? v[i].cap_month : v[i].cap_day;
            if (!cap) continue;
            hr_buf_puts(b, "herald_budget_limit{lane=\"");
            hr_prom_label(b, v[i].c.lane);
            hr_buf_printf(b, "\",period=\"%s\"} %.6f\n", p ? "month" : "day", (double)cap / 1e6);
        }
    }
    plat_sum *ps = hr_calloc((size_t)n + 1, sizeof *ps);
    int np = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < np && strcmp(ps[k].platform, v[i].platform) != 0)
            k++;
        if (k == np) snprintf(ps[np++].platform, sizeof ps[0].platform, "%s", v[i].platform);
        ps[k].sent += v[i].c.sent_total;
        ps[k].dead += v[i].c.dead_total;
        ps[k].retried += v[i].c.retried_total;
        ps[k].polled += v[i].c.polled_total;
    }
    hr_prom_family(b, "herald_sends_total", "counter", "Send outcomes per platform.");
    for (int k = 0; k < np; k++) {
        const char *outcome[3] = {"sent", "dead", "retry"};
        long val[3] = {ps[k].sent, ps[k].dead, ps[k].retried};
        for (int o = 0; o < 3; o++) {
            hr_buf_puts(b, "herald_sends_total{platform=\"");
            hr_prom_label(b, ps[k].platform);
            hr_buf_printf(b, "\",outcome=\"%s\"} %ld\n", outcome[o], val[o]);
        }
    }
    hr_prom_family(b, "herald_polls_total", "counter", "Engagement polls answered, per platform.");
    for (int k = 0; k < np; k++) {
        hr_buf_puts(b, "herald_polls_total{platform=\"");
        hr_prom_label(b, ps[k].platform);
        hr_buf_printf(b, "\"} %ld\n", ps[k].polled);
    }
    free(ps);
    free(v);

    /* Lateness (fetch time - run_at) from the queue's histogram. */
    long lat[QUEUE_LATENESS_BUCKETS];
    long long lat_sum_ms = 0;
    if (queue_lateness(q, lat, &lat_sum_ms, err) < 0) return -1;
    hr_prom_family(b, "herald_job_lateness_seconds", "histogram",
                   "How late jobs were fetched after their run time.");
    /* the last bound is INT64_MAX: the +Inf bucket */
    hr_prom_histogram(b, "herald_job_lateness_seconds", "", queue_lateness_bounds_ms,
                      QUEUE_LATENESS_BUCKETS - 1, lat, lat_sum_ms);

    /* Engagement events recorded by the webhooks and polls, per type, from
     * {NS}:eng:totals; its unmatched and duplicate counts are not events. */
    queue_kv *eng;
    int neng;
    if (cli_engagement(q, &eng, &neng, err) < 0) return -1;
    hr_prom_family(b, "herald_engagement_events_total", "counter",
                   "Engagement events recorded, per type (delivered, open, click, ...).");
    for (int i = 0; i < neng; i++) {
        if (strcmp(eng[i].key, "unmatched") == 0 || strcmp(eng[i].key, "duplicate") == 0)
            continue;
        hr_buf_puts(b, "herald_engagement_events_total{type=\"");
        hr_prom_label(b, eng[i].key);
        hr_buf_printf(b, "\"} %lld\n", atoll(eng[i].value));
    }
    cli_kv_free(eng, neng);

    /* Send durations, when the workers record them: {ns}:sendtime hash
     * "PLATFORM|BUCKET_MS" -> count (non-cumulative; "inf" for the last),
     * "PLATFORM|sum_ms" -> total ms. See docs/metrics.md. */
    redisContext *rc = queue_redis(q);
    redisReply *r = redisCommand(rc, "HGETALL {%s}:sendtime", queue_ns(q));
    if (!r) return hr_err_set(err, "metrics: redis: %s", rc->errstr);
    hr_prom_family(b, "herald_send_duration_seconds", "histogram",
                   "Platform request time of sends answered with success (and of "
                   "engagement polls).");
    if (r->type == REDIS_REPLY_ARRAY) send_hist_render(b, r);
    freeReplyObject(r);
    return 0;
}

/* cli_metrics_hook adapts cli_metrics_render to webhooks.h's hook_metrics_fn
 * (priv: the config). It keeps its own sync connection, opened on first use
 * with a short timeout and reopened after a failure, so a scrape while Redis
 * is down answers with a comment instead of failing the whole page.
 * BUG: the reads block the server's loop for the few ms they take; a
 * snapshot refreshed by an async timer would not. */
void cli_metrics_hook(hr_buf *out, void *priv)
{
    static queue *q; /* the process's metrics connection */
    const hr_config *cfg = priv;
    hr_err err = {0};
    if (!q) {
        queue_opts o = {0};
        o.url = hr_config_get(cfg, "redis-url", NULL);
        o.ns = hr_config_get(cfg, "namespace", "herald");
        o.timeout_ms = 500;
        q = queue_connect(&o, &err);
    }
    hr_buf page; /* all or nothing: no half page when Redis fails mid-scrape */
    hr_buf_init(&page);
    int up = q && cli_metrics_render(q, cfg, &page, &err) == 0;
    if (up) hr_buf_append(out, page.data, page.len);
    hr_buf_release(&page);
    if (!up) {
        queue_free(q);
        q = NULL;
        hr_buf_puts(out, "# herald queue metrics unavailable\n");
    }
    hr_prom_family(out, "herald_metrics_redis_up", "gauge",
                   "1 when this scrape read the queue's figures from Redis.");
    hr_buf_printf(out, "herald_metrics_redis_up %d\n", up);
}
