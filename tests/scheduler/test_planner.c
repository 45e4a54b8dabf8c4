/* test_planner.c: the planner's pure functions: slot parsing, next slot in
 * an IANA zone across DST changes (no skipped or doubled slot), quiet hours,
 * jitter windows, spacing over many items, reproducible plans. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "scheduler.h"

static int64_t utc(const char *s)
{
    int64_t ms = 0;
    if (hr_parse_rfc3339(s, &ms) < 0) abort();
    return ms;
}

static int account(sched_account *a, const char *line)
{
    char *dup = strdup(line), *argv[16];
    int argc = 0;
    for (char *t = strtok(dup, " "); t && argc < 16; t = strtok(NULL, " "))
        argv[argc++] = t;
    hr_err err = {0};
    int rc = sched_account_parse(a, argc, argv, utc("2026-01-01T00:00:00Z"),
                                 utc("2032-01-01T00:00:00Z"), &err);
    if (rc < 0) fprintf(stderr, "account: %s\n", err.msg);
    free(dup);
    return rc;
}

static void test_parse(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@shop base-url=http://x tz=Europe/Paris "
                        "slots=mon-fri@09:00,12:30;sat@10:00 spacing=30m jitter=10m "
                        "quiet=22:00-07:00 credentials=file rate=300/3h") == 0);
    CHECK_STR(a.platform, "x");
    CHECK_STR(a.account, "@shop");
    CHECK_INT(a.nslots, 3);
    CHECK_INT(a.slots[0].sec, 9 * 3600);
    CHECK_INT(a.slots[0].wdays, 0x3e); /* mon..fri */
    CHECK_INT(a.slots[1].sec, 10 * 3600);
    CHECK_INT(a.slots[1].wdays, 0x40);
    CHECK_INT(a.spacing_ms, 1800000);
    CHECK_INT(a.jitter_ms, 600000);
    CHECK_INT(a.quiet_from_sec, 22 * 3600);
    sched_account_release(&a);
    sched_account b;
    hr_err err = {0};
    char *bad1[] = {"x:@a", "tz=Mars/Olympus"};
    CHECK(sched_account_parse(&b, 2, bad1, 0, 86400000, &err) < 0);
    CHECK(strstr(err.msg, "unknown time zone") != NULL);
    char *bad2[] = {"x:@a", "slots=someday@09:00"};
    CHECK(sched_account_parse(&b, 2, bad2, 0, 86400000, &err) < 0);
    char *bad3[] = {"x:@a", "slots=mon@25:00"};
    CHECK(sched_account_parse(&b, 2, bad3, 0, 86400000, &err) < 0);
    int64_t ms;
    CHECK(sched_parse_duration("90s", &ms) == 0 && ms == 90000);
    CHECK(sched_parse_duration("2h", &ms) == 0 && ms == 7200000);
    CHECK(sched_parse_duration("abc", &ms) < 0);
}

static void test_next_slot(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@shop tz=Europe/Paris slots=mon-fri@09:00,12:30;sat@10:00") == 0);
    /* Friday 2027-03-26 13:00 CET -> Saturday 10:00 CET */
    CHECK_INT(sched_next_slot(&a, utc("2027-03-26T12:00:00Z")), utc("2027-03-27T09:00:00Z"));
    /* Saturday after 10:00 -> Monday 09:00, now CEST */
    CHECK_INT(sched_next_slot(&a, utc("2027-03-27T09:00:00Z")), utc("2027-03-29T07:00:00Z"));
    /* strictly after */
    CHECK_INT(sched_next_slot(&a, utc("2027-03-29T07:00:00Z")), utc("2027-03-29T10:30:00Z"));
    sched_account_release(&a);
}

/* every local day has its slot exactly once across a DST change */
static void walk(const char *line, const char *from, const char *const *want, int n)
{
    sched_account a;
    REQUIRE(account(&a, line) == 0);
    int64_t t = utc(from);
    for (int i = 0; i < n; i++) {
        t = sched_next_slot(&a, t);
        char got[40];
        hr_format_rfc3339(t, got, sizeof got);
        CHECK_STR(got, want[i]);
    }
    sched_account_release(&a);
}

static void test_dst(void)
{
    /* Paris springs forward on 2027-03-28 at 02:00: 02:30 happens at 03:30 CEST */
    const char *spring[] = {"2027-03-27T01:30:00Z", "2027-03-28T01:30:00Z", "2027-03-29T00:30:00Z"};
    walk("x:@a tz=Europe/Paris slots=daily@02:30", "2027-03-27T00:00:00Z", spring, 3);
    /* and falls back on 2027-10-31 at 03:00: 02:30 happens twice, we post once */
    const char *fall[] = {"2027-10-30T00:30:00Z", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z"};
    walk("x:@a tz=Europe/Paris slots=daily@02:30", "2027-10-30T00:00:00Z", fall, 3);
    /* New York, 2027-03-14 and 2027-11-07 */
    const char *ny_spring[] = {"2027-03-13T07:15:00Z", "2027-03-14T07:15:00Z",
                               "2027-03-15T06:15:00Z"};
    walk("x:@a tz=America/New_York slots=daily@02:15", "2027-03-13T00:00:00Z", ny_spring, 3);
    const char *ny_fall[] = {"2027-11-06T05:30:00Z", "2027-11-07T05:30:00Z",
                             "2027-11-08T06:30:00Z"};
    walk("x:@a tz=America/New_York slots=daily@01:30", "2027-11-06T00:00:00Z", ny_fall, 3);
    /* a zone without DST and one with a half-hour offset */
    const char *kolkata[] = {"2027-03-28T03:30:00Z", "2027-03-29T03:30:00Z"};
    walk("x:@a tz=Asia/Kolkata slots=daily@09:00", "2027-03-28T00:00:00Z", kolkata, 2);
    sched_account a;
    REQUIRE(account(&a, "x:@a tz=Europe/Paris") == 0);
    CHECK_INT(sched_tz_offset(a.tz, utc("2027-03-28T00:59:59Z")), 3600);
    CHECK_INT(sched_tz_offset(a.tz, utc("2027-03-28T01:00:00Z")), 7200);
    sched_account_release(&a);
}

static void test_quiet(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a tz=Europe/Paris quiet=22:00-07:00") == 0);
    CHECK(sched_in_quiet(&a, utc("2027-06-01T21:00:00Z")));  /* 23:00 CEST */
    CHECK(!sched_in_quiet(&a, utc("2027-06-01T05:00:00Z"))); /* 07:00 */
    CHECK(sched_in_quiet(&a, utc("2027-06-01T04:59:00Z")));
    CHECK_INT(sched_quiet_end(&a, utc("2027-06-01T21:00:00Z")), utc("2027-06-02T05:00:00Z"));
    CHECK_INT(sched_quiet_end(&a, utc("2027-06-01T02:00:00Z")), utc("2027-06-01T05:00:00Z"));
    CHECK_INT(sched_quiet_end(&a, utc("2027-06-01T12:00:00Z")), utc("2027-06-01T12:00:00Z"));
    sched_account_release(&a);
}

static void test_jitter_window(void)
{
    int neg = 0, pos = 0;
    for (int i = 0; i < 20000; i++) {
        char key[32];
        snprintf(key, sizeof key, "c|wxr:%d|x|@a", i);
        int64_t j = sched_jitter(42, key, 600000);
        CHECK(j >= -600000 && j <= 600000);
        neg += j < -300000;
        pos += j > 300000;
        CHECK_INT(sched_jitter(42, key, 600000), j); /* reproducible */
    }
    CHECK(neg > 4000 && pos > 4000); /* spread over the window, both sides */
    CHECK_INT(sched_jitter(42, "k", 0), 0);
}

static void test_spacing_slots(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a tz=Europe/Paris spacing=40m jitter=15m quiet=23:00-06:00 "
                        "slots=daily@00:00,01:00,06:00,07:00,08:00,09:00,10:00,11:00,12:00,"
                        "12:20,13:00,14:00,15:00,16:00,17:00,18:00,19:00,20:00,21:00,22:00") == 0);
    sched_taken tk;
    sched_taken_init(&tk);
    int64_t now = utc("2027-03-20T00:00:00Z"), prev = 0;
    for (int i = 0; i < 6000; i++) {
        char key[32];
        snprintf(key, sizeof key, "c|s%d|x|@a", i);
        int64_t t = sched_place(&a, &tk, 7, key, now, 0);
        REQUIRE(t > now);
        CHECK(t - prev >= 40 * 60000 || prev == 0);
        CHECK(!sched_in_quiet(&a, t));
        /* within the jitter window of some slot */
        struct tm tm;
        sched_tz_local(a.tz, t, &tm);
        int sec = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec, best = 86400;
        for (int k = 0; k < a.nslots; k++) {
            int d = abs(sec - a.slots[k].sec);
            if (d > 43200) d = 86400 - d;
            if (d < best) best = d;
        }
        CHECK(best <= 15 * 60);
        prev = t;
    }
    /* the plan crossed both DST changes of 2027 */
    CHECK(prev > utc("2027-11-01T00:00:00Z"));
    sched_taken_release(&tk);
    sched_account_release(&a);
}

static void test_spacing_publish_time(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a spacing=5m jitter=2m") == 0);
    sched_taken tk;
    sched_taken_init(&tk);
    int64_t now = utc("2027-01-01T00:00:00Z"), p = utc("2027-01-02T10:00:00Z");
    int64_t *v = malloc(500 * sizeof *v);
    for (int i = 0; i < 500; i++) {
        char key[32];
        snprintf(key, sizeof key, "k%d", i);
        v[i] = sched_place(&a, &tk, 1, key, now, p);
        CHECK(v[i] >= p); /* never before the item is public */
    }
    CHECK(v[0] <= p + 120000); /* the first one within [P, P+J] */
    for (size_t i = 1; i < tk.n; i++)
        CHECK(tk.t[i] - tk.t[i - 1] >= 300000);
    free(v);
    sched_taken_release(&tk);
    sched_account_release(&a);
}

static void test_reproducible(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a tz=Asia/Tokyo slots=daily@09:00,18:00 spacing=1h jitter=20m") == 0);
    int64_t now = utc("2027-05-01T00:00:00Z");
    int64_t run1[50], run2[50], run3[50];
    for (int r = 0; r < 3; r++) {
        sched_taken tk;
        sched_taken_init(&tk);
        for (int i = 0; i < 50; i++) {
            char key[32];
            snprintf(key, sizeof key, "k%d", i);
            int64_t t = sched_place(&a, &tk, r == 2 ? 99 : 5, key, now, 0);
            (r == 0 ? run1 : r == 1 ? run2 : run3)[i] = t;
        }
        sched_taken_release(&tk);
    }
    CHECK(memcmp(run1, run2, sizeof run1) == 0);
    CHECK(memcmp(run1, run3, sizeof run1) != 0);
    sched_account_release(&a);
}

static void test_taken_slots_skipped(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a slots=daily@09:00,10:00") == 0);
    sched_taken tk;
    sched_taken_init(&tk);
    sched_taken_add(&tk, utc("2027-01-01T09:00:00Z")); /* queued by an earlier import */
    int64_t t = sched_place(&a, &tk, 1, "k", utc("2027-01-01T00:00:00Z"), 0);
    CHECK_INT(t, utc("2027-01-01T10:00:00Z"));
    sched_taken_release(&tk);
    sched_account_release(&a);
}

static void test_no_slots_queue(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@a spacing=10m jitter=1m") == 0);
    sched_taken tk;
    sched_taken_init(&tk);
    int64_t now = utc("2027-01-01T00:00:00Z"), prev = 0;
    for (int i = 0; i < 2000; i++) {
        char key[16];
        snprintf(key, sizeof key, "q%d", i);
        int64_t t = sched_place(&a, &tk, 3, key, now, 0);
        CHECK(t >= now);
        if (i) CHECK(t - prev >= 600000 && t - prev <= 660000);
        prev = t;
    }
    sched_taken_release(&tk);
    sched_account_release(&a);
}

/* an account whose every slot is in its quiet hours is refused (the slot
 * search could never place a post); the search itself gives up a week of
 * slots past the last taken time instead of trying 200,000 slots */
static void test_slots_all_quiet(void)
{
    sched_account a;
    hr_err err = {0};
    char *bad[] = {"x:@q", "tz=Europe/Paris", "slots=daily@23:00;sat@06:30", "quiet=22:00-07:00"};
    CHECK(sched_account_parse(&a, 4, bad, 0, 86400000, &err) < 0);
    CHECK_STR(err.msg, "slots: every slot (06:30,23:00) is in the quiet hours (22:00-07:00): "
                       "no post could be placed");
    REQUIRE(account(&a, "x:@q tz=Europe/Paris slots=daily@23:00,08:00 quiet=22:00-07:00") == 0);
    sched_taken tk;
    sched_taken_init(&tk);
    int64_t now = utc("2026-11-22T22:30:00Z");
    CHECK_INT(sched_place(&a, &tk, 1, "k1", now, 0), utc("2026-11-23T07:00:00Z"));
    a.quiet_to_sec = 9 * 3600; /* 08:00 quiet too, as no config could say */
    sched_taken_add(&tk, utc("2027-01-01T07:00:00Z"));
    CHECK_INT(sched_place(&a, &tk, 1, "k2", now, 0), -1);
    CHECK_INT(tk.n, 2);
    sched_taken_release(&tk);
    sched_account_release(&a);
}

/* offsets outside the zone table's span (2026-2032 here) are the zone's:
 * the table extends itself (it answered +01:00 in July 2033, and a post
 * due at 07:30 local was moved out of quiet hours it was not in) */
static void test_tz_beyond_table(void)
{
    sched_account a;
    REQUIRE(account(&a, "x:@f tz=Europe/Paris quiet=22:00-07:00") == 0);
    int64_t now = utc("2026-11-22T09:00:00Z");
    CHECK_INT(sched_tz_offset(a.tz, utc("2033-07-01T05:30:00Z")), 7200);
    CHECK_INT(sched_tz_offset(a.tz, utc("2033-01-10T05:30:00Z")), 3600);
    CHECK_INT(sched_tz_offset(a.tz, utc("2020-07-01T12:00:00Z")), 7200);
    CHECK_INT(sched_tz_offset(a.tz, utc("2019-12-01T12:00:00Z")), 3600);
    /* far away: a table around it, then back */
    CHECK_INT(sched_tz_offset(a.tz, utc("9999-07-01T05:30:00Z")), 7200);
    CHECK_INT(sched_tz_offset(a.tz, utc("9999-01-01T05:30:00Z")), 3600);
    CHECK_INT(sched_tz_from_local(a.tz, 2033, 7, 1, 7 * 3600 + 1800), utc("2033-07-01T05:30:00Z"));
    sched_taken tk;
    sched_taken_init(&tk);
    /* summer: 07:30 CEST, out of quiet hours, stays */
    CHECK_INT(sched_place(&a, &tk, 1, "s", now, utc("2033-07-01T05:30:00Z")),
              utc("2033-07-01T05:30:00Z"));
    /* winter: 06:30 CET, in quiet hours, moves to 07:00 CET */
    CHECK_INT(sched_place(&a, &tk, 1, "w", now, utc("2033-01-10T05:30:00Z")),
              utc("2033-01-10T06:00:00Z"));
    struct tm tm;
    sched_tz_local(a.tz, utc("2033-07-01T05:30:00Z"), &tm);
    CHECK_INT(tm.tm_hour * 100 + tm.tm_min, 730);
    CHECK_INT(tm.tm_gmtoff, 7200);
    sched_taken_release(&tk);
    sched_account_release(&a);
}

static void test_rate(void)
{
    sched_account a;
    REQUIRE(account(&a, "sendgrid:main rate=100/15m,300/3h email-rate=10/s") == 0);
    sched_blocks b = {0};
    int64_t t0 = utc("2027-01-01T00:00:00Z");
    /* a later item first, then an earlier one: each keeps its own time */
    CHECK_INT(sched_rate_block(&a, &b, t0 + 3600000, 100), t0 + 3600000);
    CHECK_INT(sched_rate_block(&a, &b, t0, 100), t0);
    CHECK_INT(sched_rate_at(&a, t0, 99), t0 + 9900);
    /* overlapping ones queue behind */
    CHECK_INT(sched_rate_block(&a, &b, t0 + 5000, 10), t0 + 10000);
    CHECK_INT(sched_rate_block(&a, &b, t0 + 3600000 - 500, 10), t0 + 3600000 + 10000);
    CHECK_INT(sched_rate_block(&a, &b, t0 + 3600000 - 1000, 10), t0 + 3600000 - 1000);
    sched_blocks_release(&b);
    sched_account_release(&a);
}

int main(void)
{
    th_run("parse", test_parse);
    th_run("next_slot", test_next_slot);
    th_run("dst", test_dst);
    th_run("quiet", test_quiet);
    th_run("jitter_window", test_jitter_window);
    th_run("spacing_slots", test_spacing_slots);
    th_run("spacing_publish_time", test_spacing_publish_time);
    th_run("reproducible", test_reproducible);
    th_run("taken_slots_skipped", test_taken_slots_skipped);
    th_run("no_slots_queue", test_no_slots_queue);
    th_run("slots_all_quiet", test_slots_all_quiet);
    th_run("tz_beyond_table", test_tz_beyond_table);
    th_run("rate", test_rate);
    return th_main_end();
}
