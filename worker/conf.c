/* conf.c: the worker's directives: per-account limits, costs, budgets and
 * breaker ("account" lines, whose credentials platforms/ reads), per-app
 * limits ("app" lines), pools, and the engagement poll schedule. Reads a
 * parsed hr_config; never a file. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker.h"
#ifdef HAVE_HERALD_PLATFORMS
#include "platforms.h"
#endif

static const char *conf_name(const hr_config *c) { return c && c->path ? c->path : "config"; }

/* line_opt returns the value of "key=value" among a line's arguments. */
static const char *line_opt(const hr_conf_line *l, const char *key)
{
    size_t n = strlen(key);
    for (int i = 1; i < l->argc; i++)
        if (strncmp(l->argv[i], key, n) == 0 && l->argv[i][n] == '=') return l->argv[i] + n + 1;
    return NULL;
}

/* first_line returns the first "key name ..." line, or NULL: the one used
 * (as platforms/ reads an account's) */
static const hr_conf_line *first_line(const hr_config *c, const char *key, const char *name)
{
    const hr_conf_line *it;
    int pos = -1;
    while ((it = hr_config_next(c, key, &pos)))
        if (it->argc > 0 && strcmp(it->argv[0], name) == 0) return it;
    return NULL;
}

/* limits_conf fills out from line l's rate= and points= (l may be NULL),
 * rate= defaulting to def and points= to cost (the platform's: a rate=
 * alone does not make a Bluesky create cost 1); errors name what
 * ("account", "app") and name. */
static int limits_conf(const hr_config *c, const hr_conf_line *l, const char *what,
                       const char *name, const char *def, int64_t cost, worker_limits *out,
                       hr_err *err)
{
    const char *rate = l ? line_opt(l, "rate") : NULL, *v;
    hr_err e = {0};
    if (worker_limits_parse(rate ? rate : def, cost, out, &e) != 0)
        return hr_err_set(err, "%s:%d: %s %s: %s", conf_name(c), l ? l->line : 0, what, name,
                          e.msg);
    if (l && (v = line_opt(l, "points")) && (hr_parse_i64(v, &out->cost) != 0 || out->cost < 1))
        return hr_err_set(err, "%s:%d: %s %s: points: not a positive number: \"%s\"",
                          conf_name(c), l->line, what, name, v);
    return 0;
}

/* account_conf reads lane's settings into a, which may be left half
 * filled on error: worker_account_conf_get only copies a whole one. */
static int account_conf(const hr_config *c, const char *lane, worker_account_conf *a,
                        hr_err *err)
{
    memset(a, 0, sizeof *a);
    size_t lane_len = strlen(lane);
    if (lane_len >= sizeof a->lane) return hr_err_set(err, "lane too long: %s", lane);
    memcpy(a->lane, lane, lane_len + 1);
    char platform[32];
    const char *colon = strchr(lane, ':');
    size_t plen = colon ? (size_t)(colon - lane) : strlen(lane);
    if (plen >= sizeof platform) plen = sizeof platform - 1;
    memcpy(platform, lane, plen);
    platform[plen] = '\0';

    const hr_conf_line *l = first_line(c, "account", lane);
    int64_t cost = worker_limits_cost(platform);
    if (limits_conf(c, l, "account", lane, worker_limits_default(platform), cost, &a->limits,
                    err) != 0 ||
        limits_conf(c, first_line(c, "app", platform), "app", platform,
                    worker_app_limits_default(platform), cost, &a->app, err) != 0)
        return -1;
    a->circuit = 5;
    if (!l) return 0;
    const char *v;
    hr_err e = {0};
    struct {
        const char *key;
        int64_t *out;
    } money[] = {{"cost", &a->budget.cost},
                 {"budget-daily", &a->budget.cap_day},
                 {"budget-monthly", &a->budget.cap_month}};
    for (size_t i = 0; i < HR_ARRAY_LEN(money); i++)
        if ((v = line_opt(l, money[i].key)) && worker_parse_money(v, money[i].out, &e) != 0)
            return hr_err_set(err, "%s:%d: account %s: %s: %s", conf_name(c), l->line, lane,
                              money[i].key, e.msg);
    int64_t k;
    if ((v = line_opt(l, "circuit"))) {
        /* K[/DURATION]: opens after K failures, first for DURATION */
        char kbuf[16];
        const char *slash = strchr(v, '/');
        snprintf(kbuf, sizeof kbuf, "%.*s", slash ? (int)(slash - v) : (int)strlen(v), v);
        if (hr_parse_i64(kbuf, &k) != 0 || k < 1 || k > 1000)
            return hr_err_set(err, "%s:%d: account %s: circuit: expected 1..1000, got \"%s\"",
                              conf_name(c), l->line, lane, v);
        if (slash && (worker_parse_duration(slash + 1, &a->circuit_open_ms, &e) != 0 ||
                      a->circuit_open_ms < 1))
            return hr_err_set(err, "%s:%d: account %s: circuit: K/DURATION: \"%s\": %s",
                              conf_name(c), l->line, lane, v,
                              e.code ? e.msg : "not a positive duration");
        a->circuit = (int)k;
    }
    return 0;
}

int worker_account_conf_get(const hr_config *c, const char *lane, worker_account_conf *a,
                            hr_err *err)
{
    worker_account_conf t;
    if (account_conf(c, lane, &t, err) != 0) return -1;
    *a = t;
    return 0;
}

/* known_platform: whether platforms/ has name in its table (without
 * platforms/ nothing is sent anyway) */
static int known_platform(const char *name)
{
#ifdef HAVE_HERALD_PLATFORMS
    return plat_known(name);
#else
    (void)name;
    return 1;
#endif
}

/* add_platform adds the n bytes at name; errors start with where and
 * name an entry that is no platform, else_what saying what else it could
 * have been ("" or ", nor a pool of herald.conf"). */
static int add_platform(worker_pool_conf *p, const char *name, size_t n, int weight,
                        const char *where, const char *else_what, hr_err *err)
{
    if (n == 0) return 0;
    if (n >= sizeof p->platforms[0])
        return hr_err_set(err, "%s: \"%.*s\" is not a platform herald knows%s", where, (int)n,
                          name, else_what);
    if (p->nplatforms == WORKER_MAX_PLATFORMS)
        return hr_err_set(err, "pool: more than %d platforms", WORKER_MAX_PLATFORMS);
    memcpy(p->platforms[p->nplatforms], name, n);
    p->platforms[p->nplatforms][n] = '\0';
    if (!known_platform(p->platforms[p->nplatforms]))
        return hr_err_set(err, "%s: \"%s\" is not a platform herald knows%s", where,
                          p->platforms[p->nplatforms], else_what);
    p->weights[p->nplatforms++] = weight;
    return 0;
}

static int parse_list(worker_pool_conf *p, const char *list, const char *where,
                      const char *else_what, hr_err *err)
{
    for (const char *s = list; *s;) {
        size_t n = strcspn(s, ",");
        if (add_platform(p, s, n, 1, where, else_what, err) != 0) return -1;
        s += n;
        if (*s == ',') s++;
    }
    return 0;
}

static int parse_weights(worker_pool_conf *p, const char *spec, const char *where, hr_err *err)
{
    char *copy = hr_strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        int64_t w;
        if (!colon || hr_parse_i64(colon + 1, &w) != 0 || w < 1 || w > 1000) {
            rc = hr_err_set(err, "%s: weights: expected platform:N (1..1000), got \"%s\"", where,
                            tok);
            break;
        }
        *colon = '\0';
        int found = 0;
        for (int i = 0; i < p->nplatforms; i++)
            if (strcmp(p->platforms[i], tok) == 0) p->weights[i] = (int)w, found = 1;
        if (!found) rc = hr_err_set(err, "%s: weights: %s is not in platforms=", where, tok);
    }
    free(copy);
    return rc;
}

int worker_pool_conf_get(const hr_config *c, const char *name_or_list, worker_pool_conf *p,
                         hr_err *err)
{
    memset(p, 0, sizeof *p);
    if (!name_or_list || !*name_or_list) {
        snprintf(p->name, sizeof p->name, "all");
        return 0;
    }
    const hr_conf_line *l = NULL, *it;
    int pos = -1;
    while ((it = hr_config_next(c, "pool", &pos)))
        if (it->argc > 0 && strcmp(it->argv[0], name_or_list) == 0) l = it;
    if (!l) {
        /* a mistyped pool name would otherwise serve nothing, silently */
        char nor[300];
        snprintf(nor, sizeof nor, ", nor a pool of %s", conf_name(c));
        snprintf(p->name, sizeof p->name, "%.63s", name_or_list);
        return parse_list(p, name_or_list, "--platforms", nor, err);
    }
    char where[600];
    snprintf(where, sizeof where, "%s:%d: pool %.63s", conf_name(c), l->line, l->argv[0]);
    snprintf(p->name, sizeof p->name, "%s", l->argv[0]);
    const char *v = line_opt(l, "platforms");
    if (!v) return hr_err_set(err, "%s: platforms= is missing", where);
    char at[640];
    snprintf(at, sizeof at, "%s: platforms", where);
    if (parse_list(p, v, at, "", err) != 0) return -1;
    if ((v = line_opt(l, "weights")) && parse_weights(p, v, where, err) != 0) return -1;
    struct {
        const char *key;
        int *out;
        int max;
    } ints[] = {{"concurrency", &p->concurrency, 100000}, {"processes", &p->processes, 1024}};
    for (size_t i = 0; i < HR_ARRAY_LEN(ints); i++) {
        int64_t n;
        if (!(v = line_opt(l, ints[i].key))) continue;
        if (hr_parse_i64(v, &n) != 0 || n < 1 || n > ints[i].max)
            return hr_err_set(err, "%s: %s: expected 1..%d, got \"%s\"", where, ints[i].key,
                              ints[i].max, v);
        *ints[i].out = (int)n;
    }
    return 0;
}

static int platform_index(const worker_pool_conf *p, const char *lane)
{
    size_t n = strcspn(lane, ":");
    for (int i = 0; i < p->nplatforms; i++)
        if (strlen(p->platforms[i]) == n && strncmp(p->platforms[i], lane, n) == 0) return i;
    return -1;
}

int worker_pool_serves(const worker_pool_conf *p, const char *lane)
{
    return p->nplatforms == 0 || platform_index(p, lane) >= 0;
}

int worker_pool_order(const worker_pool_conf *p, worker_pool_rr *rr, int taken,
                      const char *const *lanes, int nlanes, const char **out, int cap)
{
    /* Groups: one per platform present among lanes (every lane its own
     * platform group of weight 1 when the pool names none). */
    enum { MAXG = WORKER_MAX_PLATFORMS };
    int weight[MAXG], pi_of[MAXG], count[MAXG] = {0}, ng = 0;
    worker_pool_rr st; /* the place as the order goes; rr gets it after `taken` */
    if (rr) st = *rr;
    else memset(&st, 0, sizeof st);
    int *current = st.current; /* by the pool's platform index */
    unsigned *next = st.next;
    if (p->nplatforms == 0) {
        int n = 0;
        for (int i = 0; i < nlanes && n < cap; i++) out[n++] = lanes[i];
        return n;
    }
    int map[MAXG];
    for (int i = 0; i < MAXG; i++) map[i] = -1;
    int *group_of = hr_malloc((size_t)nlanes * sizeof *group_of);
    for (int i = 0; i < nlanes; i++) {
        int pi = platform_index(p, lanes[i]);
        group_of[i] = -1;
        if (pi < 0) continue;
        if (map[pi] < 0) {
            map[pi] = ng;
            pi_of[ng] = pi;
            weight[ng++] = p->weights[pi] > 0 ? p->weights[pi] : 1;
        }
        group_of[i] = map[pi];
        count[map[pi]]++;
    }
    if (ng == 0) {
        free(group_of);
        return 0;
    }
    int total = 0;
    for (int g = 0; g < ng; g++) total += weight[g];
    int n = 0;
    while (n < cap) {
        /* smooth weighted round robin, as nginx balances upstreams */
        int best = 0;
        for (int g = 0; g < ng; g++) {
            current[pi_of[g]] += weight[g];
            if (current[pi_of[g]] > current[pi_of[best]]) best = g;
        }
        current[pi_of[best]] -= total;
        /* the next lane of that group, in turn */
        int seen = 0;
        for (int i = 0; i < nlanes; i++) {
            if (group_of[i] != best) continue;
            if ((unsigned)seen++ == next[pi_of[best]] % (unsigned)count[best]) {
                out[n++] = lanes[i];
                break;
            }
        }
        next[pi_of[best]]++;
        if (rr && n == taken) *rr = st;
        if (n >= nlanes * 64) break; /* a full cycle is plenty */
    }
    if (rr && n < taken) *rr = st;
    free(group_of);
    return n;
}

const worker_duration_directive worker_durations[] = {
    /* 0 was quietly the default (1s, 1h, 60s, 10s) */
    {"retry-base", "1s", 1},
    {"retry-cap", "1h", 1},
    {"reauth-hold", "60s", 1},
    /* 0: the reconciler read back without pause, hammering Redis */
    {"reconcile-interval", "2s", 1},
    {"reconcile-email-settle", "10m", 0},
    {"reconcile-timeline-settle", "2m", 0},
    {"reconcile-exact-settle", "2s", 0},
    /* workers report every second: less would kill healthy ones */
    {"worker-hang-timeout", "10s", 1000},
    /* unset: 1s, or half worker-redis-timeout-ms (process.c wait_timeout) */
    {"redis-wait-timeout", "1s", 1},
    {NULL, NULL, 0},
};

int worker_conf_duration(const hr_config *c, const char *key, int64_t *ms, hr_err *err)
{
    const worker_duration_directive *d = worker_durations;
    while (d->key && strcmp(d->key, key) != 0)
        d++;
    assert(d->key); /* a directive missing from the table */
    const char *v = hr_config_get(c, key, d->def);
    const hr_conf_line *l = NULL, *it;
    int pos = -1;
    while ((it = hr_config_next(c, key, &pos))) l = it;
    hr_err e = {0};
    int64_t got;
    if (worker_parse_duration(v, &got, &e) == 0) {
        if (got >= d->min_ms) {
            *ms = got;
            return 0;
        }
        hr_err_set(&e, "at least %lldms, got \"%s\"", (long long)d->min_ms, v);
    }
    if (l && l->argc > 0 && l->argv[0] == v)
        return hr_err_set(err, "%s:%d: %s: %s", conf_name(c), l->line, key, e.msg);
    return hr_err_set(err, "%s: %s: %s", v == d->def ? "default" : "environment", key, e.msg);
}

int worker_poll_schedule(const hr_config *c, int64_t *delays_ms, int cap, hr_err *err)
{
    const char *spec = hr_config_get(c, "poll-schedule", "1h,24h,7d");
    int n = 0;
    if (strcmp(spec, "none") == 0 || !*spec) return 0;
    char *copy = hr_strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        hr_err e = {0};
        if (n == cap) {
            free(copy);
            return hr_err_set(err, "poll-schedule: more than %d polls", cap);
        }
        if (worker_parse_duration(tok, &delays_ms[n], &e) != 0) {
            free(copy);
            return hr_err_set(err, "poll-schedule: %s", e.msg);
        }
        n++;
    }
    free(copy);
    return n;
}
