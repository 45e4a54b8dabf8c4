/* tz.c: time zones from the system tz database. A zone's UTC offset changes
 * are found once (localtime_r under a TZ switch, a day at a time, then
 * bisected to the second) and kept in a table, so the planner converts times
 * with a binary search instead of switching the process-wide TZ per call.
 * A lookup outside the table's span first extends it (doubling the span),
 * so any date gets the zone's offset.
 * BUG: two offset changes within one day (none in current tzdata) would be
 * seen as one. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct sched_tz {
    char *name;
    int off0;    /* offset before the first change */
    int64_t *at; /* instants (s) where the offset changes */
    int *off;    /* the offset from at[i] on */
    int n, cap;
    int64_t lo, hi; /* the span (s) the table is right for */
};

static long offset_now(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return tm.tm_gmtoff;
}

static int zone_exists(const char *name)
{
    if (!strcmp(name, "UTC") || !strcmp(name, "GMT")) return 1;
    if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 100) return 0;
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    return access(path, R_OK) == 0;
}

/* tz_enter switches the process to z's zone; tz_leave switches back to
 * saved (tz_enter's answer, freed) */
static char *tz_enter(const sched_tz *z)
{
    const char *old = getenv("TZ");
    char *saved = old ? hr_strdup(old) : NULL;
    setenv("TZ", z->name, 1);
    tzset();
    return saved;
}

static void tz_leave(char *saved)
{
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

/* tabulate (re)builds z's table of offset changes for instants in [lo, hi]
 * (seconds), under a TZ switch to the zone */
static void tabulate(sched_tz *z, int64_t lo, int64_t hi)
{
    char *saved = tz_enter(z);
    z->n = 0;
    z->lo = lo;
    z->hi = hi;
    long prev = offset_now((time_t)lo);
    z->off0 = (int)prev;
    for (int64_t t = lo + 86400; t <= hi + 86400; t += 86400) {
        long o = offset_now((time_t)t);
        if (o == prev) continue;
        int64_t a = t - 86400, b = t; /* offset(a) == prev, offset(b) == o */
        while (b - a > 1) {
            int64_t mid = a + (b - a) / 2;
            if (offset_now((time_t)mid) == prev)
                a = mid;
            else
                b = mid;
        }
        if (z->n == z->cap) {
            z->cap = z->cap ? z->cap * 2 : 16;
            z->at = hr_realloc(z->at, (size_t)z->cap * sizeof *z->at);
            z->off = hr_realloc(z->off, (size_t)z->cap * sizeof *z->off);
        }
        z->at[z->n] = b;
        z->off[z->n++] = (int)o;
        prev = o;
    }
    tz_leave(saved);
}

sched_tz *sched_tz_new(const char *name, int64_t from_ms, int64_t to_ms, hr_err *err)
{
    if (!name || !zone_exists(name)) {
        hr_err_set(err, "unknown time zone \"%s\" (not in the tz database)", name ? name : "");
        return NULL;
    }
    sched_tz *z = hr_calloc(1, sizeof *z);
    z->name = hr_strdup(name);
    tabulate(z, from_ms / 1000 - 2 * 86400, to_ms / 1000 + 2 * 86400);
    return z;
}

void sched_tz_free(sched_tz *z)
{
    if (!z) return;
    free(z->name);
    free(z->at);
    free(z->off);
    free(z);
}

const char *sched_tz_name(const sched_tz *z)
{
    return z->name;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

#define YEAR_S (366 * 86400LL)

/* offset_s returns the offset at s, first extending the table to s when s
 * is outside it (by at least its span again: a plan going years ahead
 * extends it a few times). An s more than 50 years away is looked up on
 * its own, the table left as it is: tabulating it scanned 8,000 years a
 * day at a time for a post dated 9999, and a table moved there and back
 * for every item of an export mixing such dates with current ones. */
static int offset_s(sched_tz *z, int64_t s)
{
    if (s < z->lo - 50 * YEAR_S || s > z->hi + 50 * YEAR_S) {
        char *saved = tz_enter(z);
        int off = (int)offset_now((time_t)s);
        tz_leave(saved);
        return off;
    }
    if (s < z->lo || s > z->hi) {
        int64_t span = z->hi - z->lo, margin = 2 * 86400;
        tabulate(z, s < z->lo ? s - span - margin : z->lo, s > z->hi ? s + span + margin : z->hi);
    }
    int lo = 0, hi = z->n; /* first change after s */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (z->at[mid] <= s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? z->off0 : z->off[lo - 1];
}

int sched_tz_offset(sched_tz *z, int64_t ms)
{
    return offset_s(z, floor_div(ms, 1000));
}

void sched_tz_local(sched_tz *z, int64_t ms, struct tm *out)
{
    int64_t s = floor_div(ms, 1000);
    int off = offset_s(z, s);
    time_t t = (time_t)(s + off);
    gmtime_r(&t, out);
    out->tm_gmtoff = off;
    out->tm_isdst = -1;
}

int64_t sched_tz_from_local(sched_tz *z, int year, int mon1, int mday, int sec_of_day)
{
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = mon1 - 1;
    tm.tm_mday = mday;
    int64_t L = (int64_t)timegm(&tm) + sec_of_day; /* the wall time read as if UTC */
    int o1 = offset_s(z, L - 86400), o2 = offset_s(z, L + 86400);
    int64_t ta = L - o1, tb = L - o2;
    if (o1 == o2) return ta * 1000;
    int va = offset_s(z, ta) == o1, vb = offset_s(z, tb) == o2;
    int64_t t;
    if (va && vb)
        t = ta < tb ? ta : tb; /* fall back: the first occurrence */
    else if (va)
        t = ta;
    else if (vb)
        t = tb;
    else
        t = ta; /* spring forward gap: read with the old offset = shifted by the gap */
    return t * 1000;
}
