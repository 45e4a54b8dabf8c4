/* plan.c: the planner, as plain functions of their inputs: an account's
 * posting slots in its own time zone, quiet hours, spacing, reproducible
 * jitter and email rates. No Redis, no loop, no clock: callers pass now. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

/* ---- parsing the account line */

int sched_parse_duration(const char *s, int64_t *ms)
{
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul;
    if (!*end || !strcmp(end, "s"))
        mul = 1000;
    else if (!strcmp(end, "ms"))
        mul = 1;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        mul = 60000;
    else if (!strcmp(end, "h"))
        mul = 3600000;
    else if (!strcmp(end, "d"))
        mul = 86400000;
    else
        return -1;
    *ms = (int64_t)(v * mul);
    return 0;
}

static int parse_hhmm(const char *s, size_t n, int *sec)
{
    int h, m, used = 0;
    char buf[16];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (sscanf(buf, "%2d:%2d%n", &h, &m, &used) != 2 || buf[used] || h > 24 || m > 59 ||
        (h == 24 && m))
        return -1;
    *sec = h * 3600 + m * 60;
    return 0;
}

static int day_index(const char *s, size_t n)
{
    static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    if (n < 3) return -1;
    for (int i = 0; i < 7; i++)
        if (!strncasecmp(s, days[i], 3)) return i;
    return -1;
}

/* "mon-fri", "sat", "sat+sun", "daily" -> a weekday mask */
static int parse_days(const char *s, size_t n, unsigned *mask)
{
    *mask = 0;
    if ((n == 5 && !strncasecmp(s, "daily", 5)) || (n == 1 && *s == '*') ||
        (n == 3 && !strncasecmp(s, "all", 3))) {
        *mask = 0x7f;
        return 0;
    }
    while (n > 0) {
        size_t k = 0;
        while (k < n && s[k] != '+')
            k++;
        const char *dash = memchr(s, '-', k);
        if (dash) {
            int a = day_index(s, (size_t)(dash - s)),
                b = day_index(dash + 1, k - (size_t)(dash - s) - 1);
            if (a < 0 || b < 0) return -1;
            for (int d = a;; d = (d + 1) % 7) {
                *mask |= 1u << d;
                if (d == b) break;
            }
        } else {
            int d = day_index(s, k);
            if (d < 0 || k > 9) return -1;
            *mask |= 1u << d;
        }
        s += k;
        n -= k;
        if (n) s++, n--;
    }
    return *mask ? 0 : -1;
}

static int slot_cmp(const void *a, const void *b)
{
    const sched_slot *x = a, *y = b;
    return (x->sec > y->sec) - (x->sec < y->sec);
}

int sched_parse_slots(sched_account *a, const char *spec, hr_err *err)
{
    a->nslots = 0;
    const char *p = spec;
    while (*p) {
        size_t glen = strcspn(p, ";");
        const char *at = memchr(p, '@', glen);
        unsigned mask;
        if (!at || parse_days(p, (size_t)(at - p), &mask) < 0)
            return hr_err_set(err, "slots: \"%.*s\": expected DAYS@HH:MM[,HH:MM...]", (int)glen, p);
        const char *t = at + 1, *gend = p + glen;
        while (t < gend) {
            size_t tl = strcspn(t, ",;");
            if (t + tl > gend) tl = (size_t)(gend - t);
            int sec;
            if (parse_hhmm(t, tl, &sec) < 0 || sec >= 86400)
                return hr_err_set(err, "slots: \"%.*s\" is not a time of day (HH:MM)", (int)tl, t);
            int k;
            for (k = 0; k < a->nslots && a->slots[k].sec != sec; k++) {
            }
            if (k == a->nslots) {
                if (a->nslots == SCHED_MAX_SLOTS)
                    return hr_err_set(err, "slots: more than %d times of day", SCHED_MAX_SLOTS);
                a->slots[a->nslots].sec = sec;
                a->slots[a->nslots++].wdays = 0;
            }
            a->slots[k].wdays |= mask;
            t += tl;
            if (t < gend) t++;
        }
        p += glen;
        if (*p) p++;
    }
    qsort(a->slots, (size_t)a->nslots, sizeof a->slots[0], slot_cmp);
    return 0;
}

static int parse_rate(const char *s, double *per_s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return -1;
    if (!*end || !strcmp(end, "/s"))
        *per_s = v;
    else if (!strcmp(end, "/m") || !strcmp(end, "/min"))
        *per_s = v / 60;
    else if (!strcmp(end, "/h"))
        *per_s = v / 3600;
    else
        return -1;
    return 0;
}

/* quiet_sec is 1 when the local time of day sec is in a's quiet hours */
static int quiet_sec(const sched_account *a, int sec)
{
    int f = a->quiet_from_sec, e = a->quiet_to_sec;
    if (f < 0) return 0;
    return f < e ? (sec >= f && sec < e) : (sec >= f || sec < e);
}

/* slots_all_quiet: a has slots and every one is in its quiet hours (the
 * slot search would never end) */
static int slots_all_quiet(const sched_account *a)
{
    int n = 0;
    for (int i = 0; i < a->nslots; i++)
        n += quiet_sec(a, a->slots[i].sec);
    return a->nslots > 0 && n == a->nslots;
}

int sched_account_parse(sched_account *a, int argc, char *const *argv, int64_t from_ms,
                        int64_t to_ms, hr_err *err)
{
    memset(a, 0, sizeof *a);
    a->quiet_from_sec = a->quiet_to_sec = -1;
    if (argc < 1) return hr_err_set(err, "account: missing platform:account");
    const char *colon = strchr(argv[0], ':');
    if (!colon || colon == argv[0] || !colon[1] || strlen(argv[0]) >= QUEUE_LANE_MAX)
        return hr_err_set(err, "account \"%s\": expected platform:account", argv[0]);
    a->platform = hr_strndup(argv[0], (size_t)(colon - argv[0]));
    a->account = hr_strdup(colon + 1);
    snprintf(a->lane, sizeof a->lane, "%s", argv[0]);
    const char *tz = "UTC";
    for (int i = 1; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq) continue;
        size_t kl = (size_t)(eq - argv[i]);
        const char *v = eq + 1;
#define KEY(k) (kl == strlen(k) && !strncmp(argv[i], k, kl))
        if (KEY("tz")) {
            tz = v;
        } else if (KEY("slots")) {
            if (sched_parse_slots(a, v, err) < 0) goto fail;
        } else if (KEY("spacing") || KEY("jitter")) {
            int64_t ms;
            if (sched_parse_duration(v, &ms) < 0) {
                hr_err_set(err, "%.*s: \"%s\" is not a duration (30m, 90s, 2h)", (int)kl, argv[i],
                           v);
                goto fail;
            }
            if (KEY("spacing"))
                a->spacing_ms = ms;
            else
                a->jitter_ms = ms;
        } else if (KEY("quiet")) {
            const char *dash = strchr(v, '-');
            if (!dash || parse_hhmm(v, (size_t)(dash - v), &a->quiet_from_sec) < 0 ||
                parse_hhmm(dash + 1, strlen(dash + 1), &a->quiet_to_sec) < 0) {
                hr_err_set(err, "quiet: \"%s\" is not HH:MM-HH:MM", v);
                goto fail;
            }
            if (a->quiet_to_sec == 86400) a->quiet_to_sec = 0;
            if (a->quiet_from_sec == a->quiet_to_sec) a->quiet_from_sec = a->quiet_to_sec = -1;
        } else if (KEY("email-rate")) {
            /* not "rate=": the worker owns that key (windows like 100/15m) */
            if (parse_rate(v, &a->rate_per_s) < 0) {
                hr_err_set(err, "email-rate: \"%s\" is not N/s, N/m or N/h", v);
                goto fail;
            }
        }
#undef KEY
    }
    if (slots_all_quiet(a)) {
        char list[SCHED_MAX_SLOTS * 6 + 1] = "";
        for (int i = 0; i < a->nslots; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%02d:%02d", i ? "," : "",
                     a->slots[i].sec / 3600, a->slots[i].sec / 60 % 60);
        hr_err_set(err,
                   "slots: every slot (%s) is in the quiet hours (%02d:%02d-%02d:%02d): no post "
                   "could be placed",
                   list, a->quiet_from_sec / 3600, a->quiet_from_sec / 60 % 60,
                   a->quiet_to_sec / 3600, a->quiet_to_sec / 60 % 60);
        goto fail;
    }
    a->tz = sched_tz_new(tz, from_ms, to_ms, err);
    if (!a->tz) goto fail;
    return 0;
fail:
    sched_account_release(a);
    return -1;
}

void sched_account_release(sched_account *a)
{
    free(a->platform);
    free(a->account);
    sched_tz_free(a->tz);
    a->platform = a->account = NULL;
    a->tz = NULL;
}

/* ---- slots and quiet hours */

/* local date of ms shifted by k days: year, month, day, weekday */
static void local_day(const sched_account *a, int64_t ms, int k, int *Y, int *M, int *D, int *wd)
{
    struct tm tm;
    sched_tz_local(a->tz, ms, &tm);
    struct tm d = {0};
    d.tm_year = tm.tm_year;
    d.tm_mon = tm.tm_mon;
    d.tm_mday = tm.tm_mday + k;
    time_t t = timegm(&d);
    gmtime_r(&t, &d);
    *Y = d.tm_year + 1900;
    *M = d.tm_mon + 1;
    *D = d.tm_mday;
    *wd = d.tm_wday;
}

int64_t sched_next_slot(const sched_account *a, int64_t after_ms)
{
    if (a->nslots == 0) return -1;
    int64_t best = -1;
    /* a slot's instant is computed once per local date, so a DST change can
     * shift it but never skip or repeat it; start a day early because an
     * offset change can move yesterday's late slot past after_ms */
    for (int k = -1; k <= 8; k++) {
        int Y, M, D, wd;
        local_day(a, after_ms, k, &Y, &M, &D, &wd);
        for (int i = 0; i < a->nslots; i++) {
            if (!(a->slots[i].wdays & (1u << wd))) continue;
            int64_t t = sched_tz_from_local(a->tz, Y, M, D, a->slots[i].sec);
            if (t > after_ms && (best < 0 || t < best)) best = t;
        }
        if (best >= 0 && k >= 1) break;
    }
    return best;
}

static int local_sec(const sched_account *a, int64_t t_ms)
{
    struct tm tm;
    sched_tz_local(a->tz, t_ms, &tm);
    return tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

int sched_in_quiet(const sched_account *a, int64_t t_ms)
{
    return a->quiet_from_sec >= 0 && quiet_sec(a, local_sec(a, t_ms));
}

int64_t sched_quiet_end(const sched_account *a, int64_t t_ms)
{
    if (!sched_in_quiet(a, t_ms)) return t_ms;
    int s = local_sec(a, t_ms);
    int k = (a->quiet_from_sec > a->quiet_to_sec && s >= a->quiet_from_sec) ? 1 : 0;
    int Y, M, D, wd;
    local_day(a, t_ms, k, &Y, &M, &D, &wd);
    int64_t e = sched_tz_from_local(a->tz, Y, M, D, a->quiet_to_sec);
    return e > t_ms ? e : t_ms;
}

/* ---- jitter, spacing, placement */

int64_t sched_jitter(uint64_t seed, const char *key, int64_t jitter_ms)
{
    if (jitter_ms <= 0) return 0;
    uint64_t h = sched_hash64(SCHED_HASH_INIT ^ seed, key);
    /* splitmix64 finaliser: FNV's low bits are weak */
    h += 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (int64_t)(h % (uint64_t)(2 * jitter_ms + 1)) - jitter_ms;
}

void sched_taken_init(sched_taken *tk)
{
    memset(tk, 0, sizeof *tk);
}

void sched_taken_release(sched_taken *tk)
{
    free(tk->t);
    memset(tk, 0, sizeof *tk);
}

static size_t lower_bound(const sched_taken *tk, int64_t v)
{
    size_t lo = 0, hi = tk->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tk->t[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void sched_taken_add(sched_taken *tk, int64_t t_ms)
{
    if (tk->n == tk->cap) {
        tk->cap = tk->cap ? tk->cap * 2 : 64;
        tk->t = hr_realloc(tk->t, tk->cap * sizeof *tk->t);
    }
    /* imports mostly hand out increasing times: appending is the fast path */
    size_t i = (tk->n == 0 || tk->t[tk->n - 1] <= t_ms) ? tk->n : lower_bound(tk, t_ms);
    memmove(tk->t + i + 1, tk->t + i, (tk->n - i) * sizeof *tk->t);
    tk->t[i] = t_ms;
    tk->n++;
}

int sched_taken_remove(sched_taken *tk, int64_t t_ms)
{
    size_t i = lower_bound(tk, t_ms);
    if (i == tk->n || tk->t[i] != t_ms) return 0;
    memmove(tk->t + i, tk->t + i + 1, (tk->n - i - 1) * sizeof *tk->t);
    tk->n--;
    return 1;
}

/* fit returns the time in [lo, hi] nearest to want that keeps spacing to
 * every taken time, or -1. */
static int64_t fit(const sched_taken *tk, int64_t want, int64_t lo, int64_t hi, int64_t spacing)
{
    if (want < lo) want = lo;
    if (want > hi) want = hi;
    if (lo > hi) return -1;
    if (spacing <= 0) return want;
    int64_t best = -1, bestd = 0, cur = lo;
    for (size_t i = lower_bound(tk, lo - spacing + 1); i < tk->n && tk->t[i] < hi + spacing; i++) {
        int64_t x = tk->t[i], end = x - spacing < hi ? x - spacing : hi;
        if (end >= cur) {
            int64_t p = want < cur ? cur : want > end ? end : want;
            int64_t d = p > want ? p - want : want - p;
            if (best < 0 || d < bestd) best = p, bestd = d;
        }
        if (x + spacing > cur) cur = x + spacing;
        if (cur > hi) break;
    }
    if (cur <= hi) {
        int64_t p = want < cur ? cur : want;
        int64_t d = p - want;
        if (best < 0 || d < bestd) best = p;
    }
    return best;
}

static int occupied(const sched_taken *tk, int64_t lo, int64_t hi)
{
    size_t i = lower_bound(tk, lo);
    return i < tk->n && tk->t[i] <= hi;
}

int64_t sched_place(const sched_account *a, sched_taken *tk, uint64_t seed, const char *key,
                    int64_t now_ms, int64_t publish_ms)
{
    int64_t J = a->jitter_ms, S = a->spacing_ms, j = sched_jitter(seed, key, J);
    int queued = 0;
    if (publish_ms <= now_ms && a->nslots == 0) {
        /* no posting schedule: as soon as possible, one after the other */
        publish_ms = tk->cursor_ms ? tk->cursor_ms + S : now_ms;
        if (publish_ms < now_ms) publish_ms = now_ms;
        queued = 1;
    }
    if (publish_ms > now_ms || queued) {
        /* the item's own time: never before it is public */
        int64_t lo = publish_ms, step = S > 0 ? S : 60000;
        for (int round = 0; round < 100000; round++) {
            lo = sched_quiet_end(a, lo);
            int64_t hi = lo + J + (round ? step * round : 0);
            int64_t t = fit(tk, lo + (j < 0 ? -j : j), lo, hi, S);
            if (t >= 0 && !sched_in_quiet(a, t)) {
                sched_taken_add(tk, t);
                if (queued) tk->cursor_ms = t;
                return t;
            }
            if (t >= 0) lo = t; /* jitter ran into quiet hours: start after them */
        }
        return -1;
    }
    int64_t after = tk->cursor_ms > now_ms ? tk->cursor_ms : now_ms;
    /* a slot later than the last taken time by more than spacing and
     * jitter always fits unless it is in quiet hours: a week of slots past
     * that, none ever will (where 200,000 slots were tried, ~1 s a job) */
    int64_t last = tk->n && tk->t[tk->n - 1] > after ? tk->t[tk->n - 1] : after;
    int64_t horizon = last + S + 2 * J + 8 * 86400000LL;
    for (;;) {
        int64_t s = sched_next_slot(a, after);
        if (s < 0 || s > horizon) return -1;
        after = s;
        if (sched_in_quiet(a, s) || occupied(tk, s - J, s + J)) continue;
        int64_t lo = s - J > now_ms ? s - J : now_ms;
        int64_t t = fit(tk, s + j, lo, s + J, S);
        if (t >= 0 && sched_in_quiet(a, t)) t = fit(tk, s, s, s, S);
        if (t < 0) continue;
        tk->cursor_ms = s;
        sched_taken_add(tk, t);
        return t;
    }
}

void sched_blocks_release(sched_blocks *b)
{
    free(b->start);
    free(b->end);
    memset(b, 0, sizeof *b);
}

int64_t sched_rate_at(const sched_account *a, int64_t start_ms, long k)
{
    return a->rate_per_s > 0 ? start_ms + (int64_t)((double)k * 1000.0 / a->rate_per_s) : start_ms;
}

int64_t sched_rate_block(const sched_account *a, sched_blocks *b, int64_t at_ms, long n)
{
    int64_t len = sched_rate_at(a, 0, n);
    int64_t t = sched_quiet_end(a, at_ms);
    size_t i = 0;
    /* first block that ends after t (blocks are sorted and disjoint) */
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->end[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (i = lo; i < b->n; i++) {
        if (b->start[i] >= t + len && len > 0) break; /* fits before block i */
        if (b->end[i] > t) t = sched_quiet_end(a, b->end[i]);
    }
    if (len <= 0) return t;
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->start = hr_realloc(b->start, b->cap * sizeof *b->start);
        b->end = hr_realloc(b->end, b->cap * sizeof *b->end);
    }
    memmove(b->start + i + 1, b->start + i, (b->n - i) * sizeof *b->start);
    memmove(b->end + i + 1, b->end + i, (b->n - i) * sizeof *b->end);
    b->start[i] = t;
    b->end[i] = t + len;
    b->n++;
    return t;
}
