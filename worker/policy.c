/* policy.c: the worker's decisions as plain functions of their inputs:
 * durations and money, backoff, outcome -> next state (and whether it counts for the
 * fleet's circuit breaker, kept in Redis: queue/lua/circuit.lua),
 * rate limit specs and budgets (the windows themselves slide in the fetch
 * script). No Redis, no loop, no clock reads. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker.h"

int worker_parse_duration(const char *s, int64_t *ms, hr_err *err)
{
    if (!s || !*s) return hr_err_set(err, "duration: empty");
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0 || errno) return hr_err_set(err, "duration: not a number: \"%s\"", s);
    int64_t mul;
    if (*end == '\0' || strcmp(end, "s") == 0) mul = 1000;
    else if (strcmp(end, "ms") == 0) mul = 1;
    else if (strcmp(end, "m") == 0) mul = 60 * 1000;
    else if (strcmp(end, "h") == 0) mul = 3600 * 1000;
    else if (strcmp(end, "d") == 0) mul = 86400 * 1000;
    else return hr_err_set(err, "duration: unknown unit in \"%s\" (ms, s, m, h, d)", s);
    if (v > INT64_MAX / mul) return hr_err_set(err, "duration: too large: \"%s\"", s);
    *ms = (int64_t)v * mul;
    return 0;
}

int worker_parse_money(const char *s, int64_t *micros, hr_err *err)
{
    if (!s || !*s) return hr_err_set(err, "amount: empty");
    int64_t whole = 0, frac = 0;
    int digits = 0, fdigits = 0;
    const char *p = s;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        if (whole > (INT64_MAX / 1000000 - 9) / 10)
            return hr_err_set(err, "amount: too large: \"%s\"", s);
        whole = whole * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; isdigit((unsigned char)*p); p++, fdigits++)
            if (fdigits < 6) frac = frac * 10 + (*p - '0');
            else if (*p != '0') return hr_err_set(err, "amount: finer than 1e-6: \"%s\"", s);
    }
    if (*p || (digits == 0 && fdigits == 0))
        return hr_err_set(err, "amount: not a decimal number: \"%s\"", s);
    for (int i = fdigits < 6 ? fdigits : 6; i < 6; i++) frac *= 10;
    *micros = whole * 1000000 + frac;
    return 0;
}

/* ------------------------------------------------------------- outcomes */

const char *worker_outcome_name(worker_outcome o)
{
    switch (o) {
    case WORKER_SENT: return "sent";
    case WORKER_RETRY_AFTER: return "retry_after";
    case WORKER_TRANSIENT: return "transient";
    case WORKER_REAUTH: return "reauth";
    case WORKER_PERMANENT: return "permanent";
    case WORKER_UNKNOWN: return "unknown";
    }
    return "?";
}

int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd)
{
    if (base_ms <= 0) base_ms = 1000;
    if (cap_ms <= 0) cap_ms = 3600 * 1000;
    if (attempt < 1) attempt = 1;
    int64_t ceil = base_ms;
    for (int i = 1; i < attempt && ceil < cap_ms; i++) ceil *= 2;
    if (ceil > cap_ms) ceil = cap_ms;
    return (int64_t)(rnd % (uint64_t)(ceil + 1));
}

int worker_readback_due(const worker_readback *rb, int64_t since_ms, int64_t settle_ms,
                        int64_t now_ms)
{
    if (rb->last_ms < 0 || now_ms < 0 || since_ms < 0 || rb->last_ms < since_ms) return 1;
    int64_t next = rb->last_ms + rb->gap_ms;
    int64_t settled = since_ms + settle_ms;
    if (settle_ms > 0 && settled > rb->last_ms && settled < next) next = settled;
    return now_ms >= next;
}

worker_readback worker_readback_next(const worker_readback *rb, int64_t since_ms,
                                     int64_t interval_ms, int64_t cap_ms, int64_t now_ms)
{
    int fresh = rb->last_ms < 0 || rb->last_ms < since_ms || rb->gap_ms <= 0;
    int64_t gap = fresh ? interval_ms : rb->gap_ms * 2;
    return (worker_readback){now_ms, gap < cap_ms ? gap : cap_ms};
}

void worker_decide(worker_outcome o, int attempt, int max_attempts, int64_t now_ms,
                   int64_t retry_at_ms, int can_refresh, int refreshed,
                   const worker_retry_policy *p, uint64_t rnd, worker_decision *d)
{
    static const worker_retry_policy defaults = {0};
    if (!p) p = &defaults;
    memset(d, 0, sizeof *d);
    if (max_attempts <= 0) max_attempts = 5;
    switch (o) {
    case WORKER_SENT:
        d->action = WORKER_DO_ACK;
        d->budget = WORKER_BUDGET_COMMIT;
        d->circuit_success = 1;
        return;
    case WORKER_RETRY_AFTER:
        /* The platform said when; never earlier. It does not count against
         * max_attempts: a throttled account is not a failing one. A time
         * already past (a stale reset, clocks apart) still gets a pause:
         * at once, the lane would spend its window on 429s. */
        d->action = WORKER_DO_RETRY;
        d->at_ms = retry_at_ms > now_ms ? retry_at_ms : now_ms + WORKER_RETRY_AFTER_MIN_MS;
        d->budget = WORKER_BUDGET_REFUND;
        return;
    case WORKER_TRANSIENT:
        d->circuit_failure = 1;
        d->budget = WORKER_BUDGET_REFUND;
        if (attempt >= max_attempts) {
            d->action = WORKER_DO_BURY;
            return;
        }
        d->action = WORKER_DO_RETRY;
        d->at_ms = now_ms + worker_backoff_ms(attempt, p->base_ms, p->cap_ms, rnd);
        /* a 503 may say when to come back too: not earlier than that */
        if (retry_at_ms > d->at_ms) d->at_ms = retry_at_ms;
        return;
    case WORKER_REAUTH:
        d->budget = WORKER_BUDGET_REFUND;
        if (can_refresh && !refreshed) {
            d->action = WORKER_DO_RETRY;
            d->refresh_session = 1;
            d->at_ms = now_ms;
            return;
        }
        d->action = WORKER_DO_HOLD;
        d->pause_lane = 1;
        d->at_ms = now_ms + (p->hold_ms > 0 ? p->hold_ms : 60 * 1000);
        return;
    case WORKER_PERMANENT:
        d->action = WORKER_DO_BURY;
        d->budget = WORKER_BUDGET_REFUND;
        return;
    case WORKER_UNKNOWN:
        /* No answer to a request that went out: to the lane, the platform
         * failed (a read-back that finds the post acks, and resets it).
         * Not counted, a platform that drops every request would never
         * open the breaker. */
        d->action = WORKER_DO_UNKNOWN;
        d->budget = WORKER_BUDGET_HOLD;
        d->circuit_failure = 1;
        return;
    }
}

/* ---------------------------------------------------------- rate windows */

int worker_limits_parse(const char *spec, int64_t cost, worker_limits *l, hr_err *err)
{
    memset(l, 0, sizeof *l);
    l->cost = cost > 0 ? cost : 1;
    if (!spec) return 0;
    char *copy = hr_strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",;", &save); tok; tok = strtok_r(NULL, ",;", &save)) {
        if (strncmp(tok, "cost=", 5) == 0) {
            if (hr_parse_i64(tok + 5, &l->cost) != 0 || l->cost < 1) {
                rc = hr_err_set(err, "rate: bad cost \"%s\"", tok + 5);
                break;
            }
            continue;
        }
        char *slash = strchr(tok, '/');
        if (!slash) {
            rc = hr_err_set(err, "rate: expected LIMIT/WINDOW, got \"%s\"", tok);
            break;
        }
        *slash = '\0';
        worker_window w;
        if (hr_parse_i64(tok, &w.limit) != 0 || w.limit < 0) {
            rc = hr_err_set(err, "rate: bad limit \"%s\"", tok);
            break;
        }
        const char *win = slash + 1;
        char unit[16];
        /* "15m" but also "m" (one minute) and "s" */
        if (!isdigit((unsigned char)win[0]) && strlen(win) < sizeof unit - 1) {
            snprintf(unit, sizeof unit, "1%s", win);
            win = unit;
        }
        if (worker_parse_duration(win, &w.window_ms, err) != 0 || w.window_ms <= 0) {
            rc = hr_err_set(err, "rate: bad window \"%s\"", slash + 1);
            break;
        }
        if (l->nw == WORKER_MAX_WINDOWS) {
            rc = hr_err_set(err, "rate: more than %d windows", WORKER_MAX_WINDOWS);
            break;
        }
        l->w[l->nw++] = w;
    }
    free(copy);
    return rc;
}

const char *worker_limits_default(const char *platform)
{
    /* Published per-user limits, rounded down; the remaining-quota headers
     * lower them further at run time. */
    static const struct {
        const char *platform, *spec;
    } table[] = {
        {"x", "100/15m,300/3h,2400/24h"},
        {"bluesky", "5000/1h,35000/24h;cost=3"},
        {"mastodon", "300/3h"},
        {"linkedin", "150/24h"},
        {"threads", "250/24h"},
        {"facebook", "200/1h"},
        {"sendgrid", "100/1s"},
        {"mailgun", "100/1s"},
        {"postmark", "50/1s"},
        {"smtp", "10/1s"},
    };
    for (size_t i = 0; platform && i < HR_ARRAY_LEN(table); i++)
        if (strcmp(table[i].platform, platform) == 0) return table[i].spec;
    return "";
}

int64_t worker_limits_cost(const char *platform)
{
    worker_limits l;
    if (worker_limits_parse(worker_limits_default(platform), 1, &l, NULL) != 0) return 1;
    return l.cost;
}

const char *worker_app_limits_default(const char *platform)
{
    /* Published per-app limits only. X (API v2 rate limits, POST
     * /2/tweets, per app and 24 hours): 10,000 at the Pro tier, whose
     * per-user 100/15m the account defaults assume (Basic: 1,667, Free:
     * 17; such apps set their own). LinkedIn's application limits exist
     * but are not published (each app's developer portal shows them);
     * Mastodon and Bluesky limit per account and per IP, Meta scales with
     * the app's users, the email providers with the plan: none. */
    if (platform && strcmp(platform, "x") == 0) return "10000/24h";
    return "";
}

/* --------------------------------------------------------------- budget */

int64_t worker_budget_admit(const worker_budget *b, int64_t used_day, int64_t used_month,
                            int64_t want)
{
    if (b->cost <= 0) return want;
    int64_t n = want;
    if (b->cap_day > 0) {
        int64_t fit = b->cap_day > used_day ? (b->cap_day - used_day) / b->cost : 0;
        if (fit < n) n = fit;
    }
    if (b->cap_month > 0) {
        int64_t fit = b->cap_month > used_month ? (b->cap_month - used_month) / b->cost : 0;
        if (fit < n) n = fit;
    }
    return n < 0 ? 0 : n;
}

static void utc(int64_t now_ms, struct tm *tm)
{
    time_t t = (time_t)(now_ms / 1000);
    gmtime_r(&t, tm);
}

int64_t worker_budget_day(int64_t now_ms)
{
    struct tm tm;
    utc(now_ms, &tm);
    return (int64_t)(tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

int64_t worker_budget_month(int64_t now_ms)
{
    struct tm tm;
    utc(now_ms, &tm);
    return (int64_t)(tm.tm_year + 1900) * 100 + (tm.tm_mon + 1);
}
