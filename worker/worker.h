/* worker.h: herald's sending side: the supervisor that forks and restarts
 * worker processes, the worker process (one libev loop driving hiredis async
 * for the queue and libcurl's multi-socket API for HTTP), and the plain
 * decisions they make (backoff, outcome -> next state, circuit breaker,
 * budgets, rate windows, pool weights), testable without a loop.
 * It does not format posts or read platform answers (platforms/ does) and
 * does not promote or reap jobs (the scheduler does). */
#ifndef HERALD_WORKER_H
#define HERALD_WORKER_H

#include <stdint.h>

#include "common.h"

/* ------------------------------------------------------------ durations */

/* worker_parse_duration parses "500ms", "30s", "15m", "3h", "7d" (or a bare
 * number of seconds) into ms; returns 0, or -1 with err. */
int worker_parse_duration(const char *s, int64_t *ms, hr_err *err);

/* worker_parse_money parses a non-negative decimal amount ("0.01", "5",
 * "12.5") into micro-units (1 = 1e-6 of the currency); returns 0 or -1. */
int worker_parse_money(const char *s, int64_t *micros, hr_err *err);

/* ------------------------------------------------------------- outcomes */

/* What a send came to, as platforms/ classifies an answer (plus UNKNOWN:
 * the request may have reached the platform but no answer came back). */
typedef enum worker_outcome {
    WORKER_SENT = 0,
    WORKER_RETRY_AFTER, /* the platform named a time: not earlier */
    WORKER_TRANSIENT,   /* 5xx, connection refused before sending, ... */
    WORKER_REAUTH,      /* 401/expired token */
    WORKER_PERMANENT,   /* 4xx the platform will always refuse */
    WORKER_UNKNOWN,     /* timeout or drop after the request went out */
} worker_outcome;

const char *worker_outcome_name(worker_outcome o);

/* What to do with the job next. */
typedef enum worker_action {
    WORKER_DO_ACK,     /* record sent, commit budget, acknowledge */
    WORKER_DO_RETRY,   /* back to its lane's retry set at at_ms */
    WORKER_DO_BURY,    /* dead set with the platform's message */
    WORKER_DO_HOLD,    /* re-auth: lane paused, job kept (retry set at at_ms) */
    WORKER_DO_UNKNOWN, /* unknown set: the reconciler decides */
} worker_action;

typedef enum worker_budget_op {
    WORKER_BUDGET_COMMIT, /* the money is spent */
    WORKER_BUDGET_REFUND, /* nothing was spent: give the reservation back */
    WORKER_BUDGET_HOLD,   /* might be spent: keep it reserved */
} worker_budget_op;

typedef struct worker_decision {
    worker_action action;
    int64_t at_ms;          /* retry/hold time (absolute ms, Redis clock) */
    worker_budget_op budget;
    int refresh_session;    /* re-auth with a refreshable session: refresh first */
    int pause_lane;         /* re-auth: pause only this lane */
    int circuit_failure;    /* counts as a consecutive failure for the breaker */
    int circuit_success;    /* closes/resets the breaker */
} worker_decision;

typedef struct worker_retry_policy {
    int64_t base_ms; /* first backoff ceiling; 0: 1000 */
    int64_t cap_ms;  /* largest backoff ceiling; 0: 1 h */
    int64_t hold_ms; /* how soon a held (re-auth) job is looked at again; 0: 60 s */
} worker_retry_policy;

/* worker_backoff_ms returns a delay with "full jitter": uniform in
 * [0, min(cap, base * 2^(attempt-1))], drawn from rnd (any 64-bit random
 * value), so a fleet that failed together does not retry together. */
int64_t worker_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t rnd);

/* The reconciler's schedule of read-backs for one unknown job, in Redis's
 * clock: when it was last read back (-1: not yet) and the gap before the
 * next. */
typedef struct worker_readback {
    int64_t last_ms, gap_ms;
} worker_readback;
/* worker_readback_due returns 1 when a job unknown since since_ms (-1: not
 * known) is to be read back at now_ms: the first time, once its gap has
 * passed, and once its settle time (settle_ms after since_ms; 0: none) has
 * ended, which a read-back before it could not use; a schedule older than
 * since_ms (an earlier stay in the unknown set) counts as none. */
int worker_readback_due(const worker_readback *rb, int64_t since_ms, int64_t settle_ms,
                        int64_t now_ms);
/* worker_readback_next returns the schedule after a read-back at now_ms
 * that settled nothing: the gap doubles from interval_ms up to cap_ms. */
worker_readback worker_readback_next(const worker_readback *rb, int64_t since_ms,
                                     int64_t interval_ms, int64_t cap_ms, int64_t now_ms);

/* The least a RETRY_AFTER waits when the time the platform named is not
 * after now (Retry-After: 0, a reset already past). */
#define WORKER_RETRY_AFTER_MIN_MS 1000

/* worker_decide maps an outcome to the next state. attempt: attempts started
 * including this one; retry_at_ms: the platform's Retry-After as an absolute
 * time (RETRY_AFTER: not earlier, and at least WORKER_RETRY_AFTER_MIN_MS
 * after now; the earliest retry of a TRANSIENT); refreshed: the session was
 * already refreshed for this job (a second 401 then pauses the lane). now_ms
 * may be any clock: the times decided are only meant relative to it. */
void worker_decide(worker_outcome o, int attempt, int max_attempts, int64_t now_ms,
                   int64_t retry_at_ms, int can_refresh, int refreshed,
                   const worker_retry_policy *p, uint64_t rnd, worker_decision *d);

/* ---------------------------------------------------------- rate windows */

#define WORKER_MAX_WINDOWS 4

typedef struct worker_window {
    int64_t window_ms;
    int64_t limit; /* points per window */
} worker_window;

typedef struct worker_limits {
    worker_window w[WORKER_MAX_WINDOWS];
    int nw;
    int64_t cost; /* points one send uses (Bluesky create: 3); >= 1 */
} worker_limits;

/* worker_limits_parse parses "100/15m,300/3h,2400/24h" (optionally ending
 * in ";cost=3") into l, cost being the points of a send when the spec names
 * none (< 1: 1); returns 0 or -1 with err. "" means no limits. */
int worker_limits_parse(const char *spec, int64_t cost, worker_limits *l, hr_err *err);
/* worker_limits_default returns the spec herald uses for a platform when the
 * config names none (conservative published limits), or "". */
const char *worker_limits_default(const char *platform);
/* worker_limits_cost returns the points one send of platform uses, as its
 * default spec says (Bluesky's create: 3; else 1): what a rate= without
 * points= counts. */
int64_t worker_limits_cost(const char *platform);
/* worker_app_limits_default returns the spec of a platform's limits for the
 * whole app (every account of it together) when the config names none: a
 * published per-app limit, or "" (none known). */
const char *worker_app_limits_default(const char *platform);
/* The windows slide: the fetch and charge scripts (queue/lua/lib/prelude.lua,
 * win_load) cut a window into buckets of g = ceil(win/20) ms and admit a call
 * only while the points of the last ceil(win/g) + 2 buckets (the current one
 * included) stay within the limit, so no interval of win + g ms (a bucket
 * to spare for the way to the platform) holds more than it. */

/* --------------------------------------------------------------- budget */

typedef struct worker_budget {
    int64_t cost;      /* micro-units per call; 0: free */
    int64_t cap_day;   /* 0: none */
    int64_t cap_month; /* 0: none */
} worker_budget;

/* worker_budget_admit returns how many of want calls fit under both caps,
 * given what is already reserved or spent today and this month. */
int64_t worker_budget_admit(const worker_budget *b, int64_t used_day, int64_t used_month,
                            int64_t want);
/* worker_budget_day / worker_budget_month return the UTC period ids of
 * now_ms: 20261121 and 202611. */
int64_t worker_budget_day(int64_t now_ms);
int64_t worker_budget_month(int64_t now_ms);

/* ------------------------------------------------------------ config */

/* Per account (lane) settings from "account <platform>:<name> ... rate=...
 * cost=... budget-daily=... budget-monthly=... circuit=K[/DURATION]", and
 * its platform's app limits from "app <platform> rate=... points=N". */
typedef struct worker_account_conf {
    char lane[160];
    worker_limits limits;
    worker_limits app; /* the platform's, shared by all its accounts */
    worker_budget budget;
    int circuit;             /* K */
    int64_t circuit_open_ms; /* how long it first stays open; 0: 5 s */
} worker_account_conf;

/* worker_account_conf_get fills a for lane ("x:@shop") from the config (its
 * account line if any, else the platform's defaults; a->app from the
 * platform's app line, else worker_app_limits_default). Returns 0, or -1
 * with "path:line: reason" in err and a left as it was (a caller keeps the
 * limits it had rather than none). */
int worker_account_conf_get(const hr_config *c, const char *lane, worker_account_conf *a,
                            hr_err *err);

#define WORKER_MAX_PLATFORMS 16

/* "pool <name> platforms=x,bluesky weights=x:3,bluesky:1 concurrency=64
 * processes=2" */
typedef struct worker_pool_conf {
    char name[64];
    char platforms[WORKER_MAX_PLATFORMS][32];
    int weights[WORKER_MAX_PLATFORMS];
    int nplatforms; /* 0: every platform */
    int concurrency; /* 0: unset */
    int processes;   /* 0: unset */
} worker_pool_conf;

/* worker_pool_conf_get resolves what --platforms names: a pool of the
 * config, or a comma list of platforms (each weight 1), or NULL/"" for every
 * platform. Returns 0 or -1 with err. */
int worker_pool_conf_get(const hr_config *c, const char *name_or_list, worker_pool_conf *p,
                         hr_err *err);
/* worker_pool_serves returns 1 when the pool sends for lane's platform. */
int worker_pool_serves(const worker_pool_conf *p, const char *lane);
/* worker_pool_rr: the round robin's place between calls of
 * worker_pool_order, per platform of the pool (zeroed: from the start; again
 * when the pool changes). A fetch takes lanes from the front of the order,
 * often for one or two free slots: begun afresh each time, the heaviest
 * platform would always come first and the weights act as a priority. */
typedef struct worker_pool_rr {
    int current[WORKER_MAX_PLATFORMS];
    unsigned next[WORKER_MAX_PLATFORMS];
} worker_pool_rr;
/* worker_pool_order writes into out (room for cap entries) the order in
 * which to offer capacity to the given lanes: a smooth weighted round robin
 * over platforms (weights from the pool), going on from rr (NULL: from the
 * start), lanes of one platform in turn. rr keeps the place after the first
 * `taken` entries (the fetch's free slots: the entries it will use at most;
 * a whole order is often a multiple of the cycle and would leave rr where it
 * was). Returns the number written (at most cap). */
int worker_pool_order(const worker_pool_conf *p, worker_pool_rr *rr, int taken,
                      const char *const *lanes, int nlanes, const char **out, int cap);

/* Every duration directive the worker reads, with its default and the
 * least it takes: the one list the worker reads them through and `config
 * check` checks them by (ends with a NULL key). */
typedef struct worker_duration_directive {
    const char *key, *def;
    int64_t min_ms;
} worker_duration_directive;
extern const worker_duration_directive worker_durations[];
/* worker_conf_duration reads the duration directive key (one of
 * worker_durations; its default when absent; $HERALD_<KEY> first, as
 * hr_config_get) into ms; returns 0, or -1 with "path:line: key: ..." in err
 * (not a duration, or below its least) and ms unchanged. */
int worker_conf_duration(const hr_config *c, const char *key, int64_t *ms, hr_err *err);

/* worker_poll_schedule reads "poll-schedule 1h,24h,7d" (the default) into
 * delays_ms (room for cap); returns the count, or -1 with err. */
int worker_poll_schedule(const hr_config *c, int64_t *delays_ms, int cap, hr_err *err);

/* ---------------------------------------------------------- processes */

struct ev_loop;

typedef struct worker_opts {
    const hr_config *config;   /* borrowed; reloaded on SIGHUP by the callee */
    const char *config_path;   /* to reload on SIGHUP; NULL: no reload */
    const char *platforms;     /* --platforms: a pool name or a list */
    /* check (may be NULL) decides whether a config is fit to run, by the
     * rules of `herald config check`: 0, or -1 with the problems in err.
     * The supervisor, each worker and the reconciler refuse a config
     * reloaded on SIGHUP that fails it and keep running the one they had. */
    int (*check)(const hr_config *c, hr_err *err);
    int processes;             /* 0: pool's, else the number of cores */
    int concurrency;           /* sends in flight per process; 0: pool's, else 64 */
    int64_t shutdown_timeout_ms; /* 0: 10 s */
    int64_t lease_ms;          /* 0: 30 s */
    int once;                  /* exit when no job is ready (tests, bench) */
    /* supervisor only (both may be NULL): on_loop runs on its loop before
     * it starts, e.g. to serve /metrics (herald worker --metrics); on_child
     * runs first thing in every forked child, to let go of what on_loop set
     * up there. */
    void (*on_loop)(struct ev_loop *loop, void *priv);
    void (*on_child)(void *priv);
    void *hook_priv;
} worker_opts;

/* worker_supervise runs the supervisor in the calling process: forks
 * o->processes workers (each runs worker_process_main), restarts one that
 * dies with backoff (100 ms doubling to 10 s, reset after a minute of life),
 * forwards SIGTERM/SIGINT/SIGHUP. Returns the exit status for main. */
int worker_supervise(const worker_opts *o);

/* worker_process_main runs one worker process: its own libev loop until
 * SIGTERM (then drains within shutdown_timeout) or, with o->once, until
 * nothing is left to send. Returns the exit status. */
int worker_process_main(const worker_opts *o);

/* ---------------------------------------------------------- test seam */

/* TEST SEAM: HERALD_WORKER_CRASH_AT=STEP[:N[:FILE]] (read once at start)
 * makes the worker process _exit(137) the N-th time (default 1) it reaches
 * STEP, one of after_fetch, after_attempt, during_send, after_answer,
 * before_ack; with FILE only the first process to create FILE does.
 * worker_crash_point is called at each of those steps. */
void worker_crash_point(const char *step);

#endif
