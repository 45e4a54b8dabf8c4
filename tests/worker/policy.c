/* policy.c: the worker's plain decisions: durations, money, backoff with
 * full jitter, outcome -> next state, circuit-breaker flags, windows, budgets,
 * account and pool config, weighted lane order. */
#include <stdlib.h>

#include "harness.h"
#include "worker.h"

static void durations_and_money(void)
{
    int64_t v;
    hr_err e = {0};
    CHECK(worker_parse_duration("15m", &v, &e) == 0 && v == 15 * 60000);
    CHECK(worker_parse_duration("500ms", &v, &e) == 0 && v == 500);
    CHECK(worker_parse_duration("7d", &v, &e) == 0 && v == 7LL * 86400000);
    CHECK(worker_parse_duration("30", &v, &e) == 0 && v == 30000);
    CHECK(worker_parse_duration("3x", &v, &e) == -1);
    CHECK(strstr(e.msg, "unknown unit") != NULL);
    CHECK(worker_parse_duration("-1s", &v, &e) == -1);
    CHECK(worker_parse_money("0.01", &v, &e) == 0 && v == 10000);
    CHECK(worker_parse_money("5", &v, &e) == 0 && v == 5000000);
    CHECK(worker_parse_money("12.5", &v, &e) == 0 && v == 12500000);
    CHECK(worker_parse_money(".000001", &v, &e) == 0 && v == 1);
    CHECK(worker_parse_money("0.0000001", &v, &e) == -1);
    CHECK(worker_parse_money("1,5", &v, &e) == -1);
    CHECK(worker_parse_money("", &v, &e) == -1);
}

static void backoff_full_jitter(void)
{
    /* The ceiling doubles per attempt up to the cap; the draw is uniform
     * below it, never above. */
    for (uint64_t r = 0; r < 5000; r += 7) {
        CHECK(worker_backoff_ms(1, 1000, 60000, r * 2654435761u) <= 1000);
        CHECK(worker_backoff_ms(3, 1000, 60000, r * 2654435761u) <= 4000);
        CHECK(worker_backoff_ms(30, 1000, 60000, r * 2654435761u) <= 60000);
    }
    CHECK_INT(worker_backoff_ms(3, 1000, 60000, 4000), 4000);
    CHECK_INT(worker_backoff_ms(3, 1000, 60000, 4001), 0);
    CHECK_INT(worker_backoff_ms(200, 1000, 60000, 60000), 60000);
    /* jitter spreads: many draws at attempt 5 are not all equal */
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 100; i++) {
        int64_t d = worker_backoff_ms(5, 1000, 60000, hr_random_u64());
        if (d < lo) lo = d;
        if (d > hi) hi = d;
    }
    CHECK(hi - lo > 1000);
}

static void outcomes(void)
{
    worker_decision d;
    worker_retry_policy p = {.base_ms = 1000, .cap_ms = 60000, .hold_ms = 30000};
    int64_t now = 1000000;

    worker_decide(WORKER_SENT, 1, 5, now, 0, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_ACK && d.budget == WORKER_BUDGET_COMMIT && d.circuit_success);

    worker_decide(WORKER_RETRY_AFTER, 1, 5, now, now + 42000, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.at_ms == now + 42000);
    CHECK(d.budget == WORKER_BUDGET_REFUND && !d.circuit_failure);
    /* at the attempt limit, Retry-After still waits: it is not a failure */
    worker_decide(WORKER_RETRY_AFTER, 5, 5, now, now + 1, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.at_ms == now + 1);
    /* a time already past (or now) still waits a little: retried at once,
     * a stale reset would spend the lane's window on 429s */
    worker_decide(WORKER_RETRY_AFTER, 1, 5, now, now - 5, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.at_ms == now + WORKER_RETRY_AFTER_MIN_MS);
    worker_decide(WORKER_RETRY_AFTER, 1, 5, now, now, 0, 0, &p, 1, &d);
    CHECK(d.at_ms == now + WORKER_RETRY_AFTER_MIN_MS);
    CHECK(WORKER_RETRY_AFTER_MIN_MS >= 1000);

    worker_decide(WORKER_TRANSIENT, 2, 5, now, 0, 0, 0, &p, 2000, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.at_ms == now + 2000);
    CHECK(d.circuit_failure && d.budget == WORKER_BUDGET_REFUND);
    worker_decide(WORKER_TRANSIENT, 5, 5, now, 0, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_BURY && d.budget == WORKER_BUDGET_REFUND);

    worker_decide(WORKER_REAUTH, 1, 5, now, 0, 1, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_RETRY && d.refresh_session && !d.pause_lane);
    worker_decide(WORKER_REAUTH, 1, 5, now, 0, 1, 1, &p, 1, &d);
    CHECK(d.action == WORKER_DO_HOLD && d.pause_lane && d.at_ms == now + 30000);
    worker_decide(WORKER_REAUTH, 1, 5, now, 0, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_HOLD && d.pause_lane);

    worker_decide(WORKER_PERMANENT, 1, 5, now, 0, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_BURY && d.budget == WORKER_BUDGET_REFUND);

    worker_decide(WORKER_UNKNOWN, 1, 5, now, 0, 0, 0, &p, 1, &d);
    CHECK(d.action == WORKER_DO_UNKNOWN && d.budget == WORKER_BUDGET_HOLD);
    CHECK(d.circuit_failure && !d.circuit_success); /* a dropped request fails the lane */
    CHECK_STR(worker_outcome_name(WORKER_REAUTH), "reauth");
}

static void windows(void)
{
    worker_limits l;
    hr_err e = {0};
    CHECK(worker_limits_parse("100/15m,300/3h,2400/24h", 1, &l, &e) == 0);
    CHECK_INT(l.nw, 3);
    CHECK_INT(l.w[1].window_ms, 3 * 3600000);
    CHECK_INT(l.cost, 1);

    CHECK(worker_limits_parse(worker_limits_default("bluesky"), 1, &l, &e) == 0);
    CHECK_INT(l.cost, 3);
    CHECK(worker_limits_parse("10/s", 1, &l, &e) == 0 && l.w[0].window_ms == 1000);
    CHECK(worker_limits_parse("ten/15m", 1, &l, &e) == -1);
    CHECK(worker_limits_parse("10/15q", 1, &l, &e) == -1);
    CHECK(worker_limits_parse("", 1, &l, &e) == 0 && l.nw == 0);

    /* per-app: X publishes one, most platforms none */
    CHECK(worker_limits_parse(worker_app_limits_default("x"), 1, &l, &e) == 0);
    CHECK_INT(l.nw, 1);
    CHECK_INT(l.w[0].window_ms, 86400000);
    CHECK(worker_limits_parse(worker_app_limits_default("mastodon"), 1, &l, &e) == 0);
    CHECK_INT(l.nw, 0);
}

static void budgets(void)
{
    worker_budget b = {.cost = 10000, .cap_day = 50000, .cap_month = 1000000};
    CHECK_INT(worker_budget_admit(&b, 0, 0, 10), 5);
    CHECK_INT(worker_budget_admit(&b, 45000, 0, 10), 0);
    CHECK_INT(worker_budget_admit(&b, 40000, 0, 10), 1);
    CHECK_INT(worker_budget_admit(&b, 0, 990000, 10), 1);
    CHECK_INT(worker_budget_admit(&b, 60000, 0, 10), 0); /* over (held unknowns) */
    worker_budget free_b = {0};
    CHECK_INT(worker_budget_admit(&free_b, 1 << 30, 1 << 30, 9), 9);
    int64_t ms = 1795293616000LL; /* 2026-11-21T20:40:16Z */
    CHECK_INT(worker_budget_day(ms), 20261121);
    CHECK_INT(worker_budget_month(ms), 202611);
}

static void account_config(void)
{
    hr_err e = {0};
    hr_config *c = hr_config_parse(
        "account x:@shop token=abc rate=10/1m,20/1h cost=0.01 budget-daily=1 "
        "budget-monthly=20 circuit=3\n"
        "account x:@bad circuit=zero\n"
        "account bluesky:me.bsky.social points=2\n"
        "app x rate=50/1s,1000/1h points=2\n"
        "app x rate=1/1s\n"
        "app mastodon rate=5/1q\n"
        "app bluesky points=0\n",
        "herald.conf", &e);
    REQUIRE(c);
    worker_account_conf a;
    CHECK(worker_account_conf_get(c, "x:@shop", &a, &e) == 0);
    CHECK_INT(a.limits.nw, 2);
    CHECK_INT(a.limits.w[0].limit, 10);
    CHECK_INT(a.budget.cost, 10000);
    CHECK_INT(a.budget.cap_day, 1000000);
    CHECK_INT(a.budget.cap_month, 20000000);
    CHECK_INT(a.circuit, 3);
    /* the platform's first app line, for every account of it */
    CHECK_INT(a.app.nw, 2);
    CHECK_INT(a.app.w[0].limit, 50);
    CHECK_INT(a.app.w[1].window_ms, 3600000);
    CHECK_INT(a.app.cost, 2);
    CHECK(worker_account_conf_get(c, "x:@other", &a, &e) == 0);
    CHECK_INT(a.limits.nw, 3); /* X's defaults */
    CHECK_INT(a.app.nw, 2);
    CHECK_INT(a.circuit, 5);
    CHECK(worker_account_conf_get(c, "x:@bad", &a, &e) == -1);
    CHECK_STR(e.msg, "herald.conf:2: account x:@bad: circuit: expected 1..1000, got \"zero\"");
    /* a bad line leaves a as it was: a caller keeps the limits it had */
    CHECK_STR(a.lane, "x:@other");
    CHECK_INT(a.limits.nw, 3);
    CHECK_INT(a.app.nw, 2);
    CHECK(worker_account_conf_get(c, "bluesky:me.bsky.social", &a, &e) == -1);
    CHECK_STR(e.msg, "herald.conf:7: app bluesky: points: not a positive number: \"0\"");
    CHECK(worker_account_conf_get(c, "mastodon:@m", &a, &e) == -1);
    CHECK_STR(e.msg, "herald.conf:6: app mastodon: rate: bad window \"1q\"");
    CHECK(worker_account_conf_get(c, "linkedin:me", &a, &e) == 0);
    CHECK_INT(a.app.nw, 0); /* none published */
    hr_config_free(c);
    c = hr_config_parse("account bluesky:me.bsky.social points=2\napp x rate=\n", "herald.conf",
                        &e);
    REQUIRE(c);
    CHECK(worker_account_conf_get(c, "x:@y", &a, &e) == 0);
    CHECK_INT(a.app.nw, 0); /* an empty rate= turns X's default off */
    CHECK(worker_account_conf_get(c, "bluesky:me.bsky.social", &a, &e) == 0);
    CHECK_INT(a.limits.cost, 2);
    CHECK_INT(a.app.nw, 0);
    CHECK_INT(a.app.cost, 3); /* the platform's, not the account's points= */
    hr_config_free(c);
    /* a rate= without points= keeps the platform's cost: a Bluesky create
     * is 3 points whatever the windows */
    c = hr_config_parse("account bluesky:p.bsky.social rate=5000/1h,35000/24h\n"
                        "account x:@r rate=10/1h\n"
                        "app bluesky rate=100/1h\n",
                        "herald.conf", &e);
    REQUIRE(c);
    CHECK(worker_account_conf_get(c, "bluesky:p.bsky.social", &a, &e) == 0);
    CHECK_INT(a.limits.nw, 2);
    CHECK_INT(a.limits.cost, 3);
    CHECK_INT(a.app.cost, 3);
    CHECK(worker_account_conf_get(c, "bluesky:q.bsky.social", &a, &e) == 0);
    CHECK_INT(a.limits.cost, 3);
    CHECK(worker_account_conf_get(c, "x:@r", &a, &e) == 0);
    CHECK_INT(a.limits.cost, 1);
    hr_config_free(c);
}

static void pools(void)
{
    hr_err e = {0};
    hr_config *c = hr_config_parse(
        "pool social platforms=x,bluesky weights=x:3,bluesky:1 concurrency=64 processes=2\n"
        "pool broken platforms=x weights=mastodon:2\n"
        "pool typo platforms=x,blusky\n"
        "pool nolist concurrency=3\n",
        "herald.conf", &e);
    REQUIRE(c);
    worker_pool_conf p;
    CHECK(worker_pool_conf_get(c, "social", &p, &e) == 0);
    CHECK_INT(p.nplatforms, 2);
    CHECK_INT(p.weights[0], 3);
    CHECK_INT(p.concurrency, 64);
    CHECK_INT(p.processes, 2);
    CHECK(worker_pool_serves(&p, "x:@shop"));
    CHECK(worker_pool_serves(&p, "bluesky:a"));
    CHECK(!worker_pool_serves(&p, "xmas:a"));
    CHECK(!worker_pool_serves(&p, "sendgrid:main"));

    const char *lanes[] = {"x:@a", "bluesky:b", "x:@c", "sendgrid:m"};
    const char *order[8];
    int n = worker_pool_order(&p, NULL, 0, lanes, 4, order, 8);
    CHECK_INT(n, 8);
    int nx = 0, nb = 0, na = 0, nc = 0;
    for (int i = 0; i < n; i++) {
        nx += order[i][0] == 'x';
        nb += order[i][0] == 'b';
        na += strcmp(order[i], "x:@a") == 0;
        nc += strcmp(order[i], "x:@c") == 0;
        CHECK(strcmp(order[i], "sendgrid:m") != 0);
    }
    CHECK_INT(nx, 6);
    CHECK_INT(nb, 2);
    CHECK_INT(na, 3); /* the x lanes take turns */
    CHECK_INT(nc, 3);
    /* fetches for one free slot at a time still follow the weights: the
     * round robin goes on from the place after the entries a fetch uses
     * (begun afresh, or kept after a whole order of 8, a multiple of the
     * 4-step cycle, x would come first every time) */
    worker_pool_rr rr;
    memset(&rr, 0, sizeof rr);
    char seq[9] = "";
    for (int i = 0; i < 8; i++) {
        CHECK_INT(worker_pool_order(&p, &rr, 1, lanes, 4, order, 8), 8);
        seq[i] = order[0][0];
    }
    CHECK_STR(seq, "xxbxxxbx");

    CHECK(worker_pool_conf_get(c, "mastodon,x", &p, &e) == 0);
    CHECK_INT(p.nplatforms, 2);
    CHECK(worker_pool_serves(&p, "mastodon:a"));
    CHECK(worker_pool_conf_get(c, NULL, &p, &e) == 0);
    CHECK(worker_pool_serves(&p, "anything:a"));
    CHECK(worker_pool_conf_get(c, "broken", &p, &e) == -1);
    CHECK(strstr(e.msg, "herald.conf:2: pool broken: weights: mastodon") != NULL);
    CHECK(worker_pool_conf_get(c, "nolist", &p, &e) == -1);
    CHECK(strstr(e.msg, "platforms= is missing") != NULL);
    /* names are platforms herald knows, or pools: a typo serves nothing */
    CHECK(worker_pool_conf_get(c, "typo", &p, &e) == -1);
    CHECK_STR(e.msg, "herald.conf:3: pool typo: platforms: \"blusky\" is not a platform herald "
                     "knows");
    CHECK(worker_pool_conf_get(c, "nosuchpool", &p, &e) == -1);
    CHECK_STR(e.msg, "--platforms: \"nosuchpool\" is not a platform herald knows, nor a pool of "
                     "herald.conf");
    CHECK(worker_pool_conf_get(c, "xx,bluesky", &p, &e) == -1);
    CHECK(strstr(e.msg, "\"xx\" is not a platform") != NULL);

    int64_t d[8];
    CHECK_INT(worker_poll_schedule(c, d, 8, &e), 3);
    /* a bad duration is an error naming its line, never the default */
    hr_config *bad = hr_config_parse("retry-base 5x\nretry-cap 1m\nretry-cap 24hh\n"
                                     "poll-schedule 1h,24hh,7d\n",
                                     "herald.conf", &e);
    REQUIRE(bad);
    int64_t ms = 42;
    CHECK(worker_conf_duration(bad, "retry-base", &ms, &e) == -1);
    CHECK_STR(e.msg, "herald.conf:1: retry-base: duration: unknown unit in \"5x\" (ms, s, m, h, d)");
    CHECK_INT(ms, 42);
    CHECK(worker_conf_duration(bad, "retry-cap", &ms, &e) == -1);
    CHECK(strstr(e.msg, "herald.conf:3: retry-cap: ") != NULL);
    CHECK(worker_conf_duration(bad, "reauth-hold", &ms, &e) == 0);
    CHECK_INT(ms, 60000);
    /* below its least is an error, not the default */
    setenv("HERALD_REAUTH_HOLD", "0", 1);
    CHECK(worker_conf_duration(bad, "reauth-hold", &ms, &e) == -1);
    CHECK_STR(e.msg, "environment: reauth-hold: at least 1ms, got \"0\"");
    unsetenv("HERALD_REAUTH_HOLD");
    CHECK(worker_poll_schedule(bad, d, 8, &e) == -1);
    CHECK(strstr(e.msg, "24hh") != NULL);
    hr_config_free(bad);
    CHECK_INT(d[2], 7LL * 86400000);
    hr_config_free(c);
    c = hr_config_parse("poll-schedule 2s,5s\n", "t.conf", &e);
    CHECK_INT(worker_poll_schedule(c, d, 8, &e), 2);
    CHECK_INT(d[1], 5000);
    hr_config_free(c);
}

/* the reconciler's read-backs of a job that stays unknown: the gap doubles
 * up to the cap, the settle moment gets a read-back of its own, and a
 * schedule left from an earlier stay in the unknown set is not used */
static void readback_schedule(void)
{
    worker_readback rb = {-1, 0};
    int64_t since = 10000, now = since, reads = 0;
    /* 200 ms passes over 10 s, no settle time: reads at +0, 200, 600,
     * 1400, 3000, then every 3 s (the cap) */
    for (int pass = 0; pass < 50; pass++, now += 200) {
        if (!worker_readback_due(&rb, since, 0, now)) continue;
        reads++;
        rb = worker_readback_next(&rb, since, 200, 3000, now);
    }
    CHECK_INT(reads, 7); /* 0, .2, .6, 1.4, 3.0, 6.0, 9.0 s */
    CHECK_INT(rb.gap_ms, 3000);
    CHECK_INT(rb.last_ms, since + 9000);
    /* read at +600 with the gap at 800: due at +1400, but a settle time
     * ending at +1000 brings it forward to then (not before) */
    worker_readback at600 = {since + 600, 800};
    CHECK_INT(worker_readback_due(&at600, since, 1000, since + 999), 0);
    CHECK_INT(worker_readback_due(&at600, since, 1000, since + 1000), 1);
    CHECK_INT(worker_readback_due(&at600, since, 0, since + 1000), 0);
    CHECK_INT(worker_readback_due(&at600, since, 0, since + 1400), 1);
    /* a settle time that ended before the last read-back: the gap rules */
    CHECK_INT(worker_readback_due(&at600, since, 500, since + 1000), 0);
    /* back in the unknown set after an earlier stay: due at once, and the
     * gap starts over */
    CHECK_INT(worker_readback_due(&at600, since + 5000, 0, since + 5000), 1);
    worker_readback again = worker_readback_next(&at600, since + 5000, 200, 3000, since + 5000);
    CHECK_INT(again.gap_ms, 200);
    /* Redis's clock or the job's time unknown: read back */
    CHECK_INT(worker_readback_due(&at600, -1, 0, since + 700), 1);
    CHECK_INT(worker_readback_due(&at600, since, 0, -1), 1);
}

int main(void)
{
    th_run("durations_and_money", durations_and_money);
    th_run("backoff_full_jitter", backoff_full_jitter);
    th_run("outcomes", outcomes);
    th_run("windows", windows);
    th_run("budgets", budgets);
    th_run("account_config", account_config);
    th_run("pools", pools);
    th_run("readback_schedule", readback_schedule);
    return th_main_end();
}
