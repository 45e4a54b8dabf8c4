/* process.c: one worker process: a libev loop that fetches jobs in batches
 * sized to free capacity (hiredis async), sends them through platforms/ over
 * the curl engine, classifies, and records the outcome. Each job walks
 * decode -> suppression -> format -> attempt -> send -> classify -> record;
 * nothing blocks the loop. It does not reconcile reaped jobs (the
 * reconciler process does) and does not promote (the scheduler does). */
#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "platforms.h"
#include "queue.h"

/* the send-duration buckets: queue_send_bounds_ms, then +Inf */
#define SEND_BUCKETS QUEUE_SEND_BUCKETS

typedef struct wk_job wk_job;

/* Jobs waiting for one Redis call that serves many (a group commit), or for
 * their lane's login. */
typedef struct wk_jobq {
    wk_job **v;
    int n, cap;
} wk_jobq;

typedef struct wk_lane {
    char name[QUEUE_LANE_MAX];
    char platform[32];
    plat_account *acct; /* NULL: not usable (reason logged once) */
    plat_session sess;
    /* The job whose send is logging in (Bluesky createSession or
     * refreshSession), and those that wait for its session rather than
     * each logging in (the platform limits logins per account). */
    wk_job *login_job;
    wk_jobq login_wait;
    worker_account_conf conf;
    int inflight;
    int paused; /* re-auth failed: paused in Redis until an operator resumes */
    int64_t loaded_ms; /* when its account and credential were read (host clock) */
    int conf_written; /* limits written to its state hash for the fetch script */
    int conf_ok;      /* conf was read from the config once: else not served */
    int reload;       /* SIGHUP came while sends were in flight on it */
    int circuit_failed; /* we reported a failure since our last success */
    long calls; /* requests of the lane this process started (fetched jobs, thread parts) */
    /* send durations since the last flush, for {ns}:sendtime (herald stats,
     * herald_send_duration_seconds): counts per bucket, and their sum */
    long send_hist[SEND_BUCKETS + 1]; /* the last: over the top bound */
    long long send_sum_ms;
} wk_lane;


typedef struct wk_proc wk_proc;

struct wk_job {
    wk_proc *p;
    wk_lane *lane;
    char ukh[QUEUE_UKH_LEN + 1];
    char lane_name[QUEUE_LANE_MAX];
    char worker[64]; /* the worker id that fetched it (ids change on reconnect) */
    queue_job *job;
    plat_send *send;
    struct plat_smtp_owned *smtp;
    wk_req *req;
    plat_header *hdrs;
    int nhdrs;
    int64_t fetched_ms;
    int probe; /* the one job the lane's half-open circuit let through */
    int circuit_counted; /* its failure was reported to the breaker (once a job) */
    int64_t started_us;
    int refreshed;   /* its session was refreshed for it (the job's meta) */
    int had_session; /* its send began with a session (else it logs in) */
    int readbacks;
    long calls_mark; /* lane->calls when its latest request was counted */
    /* the thread part whose request the rate windows counted last (the
     * fetch counts the attempt's first): each further part is charged as
     * its request goes out */
    int part_counted;
    ev_timer readback_timer;
    queue_ack_item ack;
    char *platform_id;
    struct wk_job *prev, *next;
};

struct wk_proc {
    struct ev_loop *loop;
    worker_opts o;
    hr_config *owned_config;
    queue_async *qa;
    queue_async *sub; /* subscribed to {NS}:readych: lanes that got ready jobs */
    wk_http *http;
    char *secret;
    char worker_id[64];
    worker_pool_conf pool;
    worker_retry_policy retry;
    wk_lane **lanes; /* grows: a pool may serve any number of accounts */
    int nlanes, cap_lanes;
    unsigned lane_turn; /* where the next fetch's lane order starts */
    worker_pool_rr rr;  /* where the platforms' weighted round robin is */
    wk_job *jobs; /* in this process, any step */
    int inflight;
    int concurrency;
    int registered, registering, fetching, listing;
    int releasing; /* hand-backs of fetches under an old id on their way */
    int draining, done;
    int shutting; /* past the loop: callbacks only let go of their jobs */
    wk_jobq ackq; /* sent, waiting for the next group commit */
    wk_jobq attq; /* formatted, waiting for the next attempt record */
    ev_prepare ack_flush, att_flush;
    int lost_redis;
    /* The lease as this process can vouch for it: renewals (register,
     * fetch, heartbeat) extend it from the time they were issued, so it
     * ends no later than Redis's. lease_gen tells an old id's replies. */
    int64_t lease_until_ms, reg_issued_ms, fetch_issued_ms, beat_issued_ms;
    unsigned lease_gen, reg_gen, fetch_gen, beat_gen;
    char fetch_worker[64]; /* the id the fetch on its way was issued under */
    int beat_pending;
    int idle_polls; /* consecutive empty fetches */
    int64_t poll_delays_ms[8];
    int npolls;
    long sent, failed, retried, polled;
    int64_t stream_maxlen; /* webhooks-stream-maxlen: poll events trim the stream as webhooks do */
    /* Attempt marks on replicas before a send (redis-wait-replicas: -1
     * auto, the replicas INFO reports; else N): a failover or a lost
     * Redis host then keeps them. wait_replicas: what batches wait for. */
    int wait_conf, wait_replicas;
    int64_t wait_timeout_ms;
    ev_timer repl_timer;
    int exit_status;
    ev_timer fetch_timer, beat_timer, lanes_timer, status_timer, drain_timer;
    ev_signal sig_term, sig_int, sig_hup;
    ev_prepare kick; /* fetch again before the loop next waits (idle would starve) */
    ev_prepare log_flush; /* the iteration's log lines, in one write, last */
};

static void fetch_more(wk_proc *p);
static void check_lanes(wk_proc *p);
static void lane_write_conf(wk_proc *p, wk_lane *l);
static void poll_start(wk_job *j);
static void lane_reload(wk_proc *p, wk_lane *l);
static void lane_limits_reload(wk_proc *p, wk_lane *l);
static void on_raw(redisAsyncContext *c, void *r, void *priv);
static void job_send_step(wk_job *j);
static int part_to_charge(wk_job *j);
static void stop_now(wk_proc *p);

static void on_log_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    hr_log_flush();
}

/* ------------------------------------------------------------ helpers */

/* new_worker_id names this process in Redis: host:pid:random. A new id after
 * Redis came back lets the old one's lease run out, so the reaper returns
 * whatever an operation lost while Redis was away left in flight. */
static void new_worker_id(wk_proc *p)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char rnd[7];
    hr_base62_fixed(hr_random_u64() % 56800235584ULL, 6, rnd);
    snprintf(p->worker_id, sizeof p->worker_id, "%.32s:%d:%s", host, (int)getpid(), rnd);
    p->lease_gen++;
    p->lease_until_ms = 0;
}

/* lease_renewed: a renewal issued at issued_ms (monotonic) under generation
 * gen succeeded. */
static void lease_renewed(wk_proc *p, unsigned gen, int64_t issued_ms)
{
    if (gen == p->lease_gen && issued_ms + p->o.lease_ms > p->lease_until_ms)
        p->lease_until_ms = issued_ms + p->o.lease_ms;
}

/* lease_vouched: whether requests fetched under id may still go out: the id
 * is current and its lease has a fifth of its length left, so a reaper
 * cannot have handed these jobs to anyone else yet. */
static int lease_vouched(const wk_proc *p, const char *id)
{
    return strcmp(id, p->worker_id) == 0 && hr_mono_ms() < p->lease_until_ms - p->o.lease_ms / 5;
}

/* lease_abandon: a Redis call about a job fetched under id failed (an error
 * reply such as OOM, BUSY or READONLY on a live connection, or a dropped
 * one), so the job may still sit in id's in-flight record, which the
 * heartbeat would renew for as long as this process lives. Under a new id
 * the old lease runs out and the reaper settles the record (unattempted
 * jobs back to their lanes, attempted ones to unknown). */
static void lease_abandon(wk_proc *p, const char *id)
{
    if (strcmp(id, p->worker_id) != 0) return; /* done already */
    hr_log(HR_LOG_WARN, "redis refused a job's update; letting this lease go for the reaper",
           "worker", id, NULL);
    new_worker_id(p);
    p->registered = 0;
}
int wk_split_headers(const hr_buf *raw, plat_header **out)
{
    /* One block: the array, then a copy of the lines that names and values
     * point into (NUL-terminated in place), so wk_free_headers frees once. */
    int cap = 0;
    for (size_t i = 0; i < raw->len; i++) cap += raw->data[i] == '\n';
    cap++;
    plat_header *v = hr_malloc((size_t)cap * sizeof *v + raw->len + 1);
    char *text = (char *)(v + cap);
    if (raw->len) memcpy(text, raw->data, raw->len);
    text[raw->len] = '\0';
    int n = 0;
    char *s = text, *end = text + raw->len;
    while (s < end && n < cap) {
        char *eol = memchr(s, '\n', (size_t)(end - s));
        if (!eol) eol = end;
        char *colon = memchr(s, ':', (size_t)(eol - s));
        /* curl hands over whole header lines; only name and value remain */
        if (colon && strncmp(s, "HTTP/", 5) != 0) {
            char *val = colon + 1, *ve = eol;
            while (val < ve && (*val == ' ' || *val == '\t')) val++;
            while (ve > val && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            *colon = '\0';
            *ve = '\0';
            v[n].name = s;
            v[n++].value = val;
        }
        s = eol + 1;
    }
    *out = v;
    return n;
}

void wk_free_headers(plat_header *h, int n)
{
    (void)n;
    free(h);
}

/* meta_count reads a count kept in a job's meta (0 when absent or bad). */
static int64_t meta_count(const queue_job *job, const char *name)
{
    const char *v = queue_job_get_meta(job, name);
    int64_t n = 0;
    if (!v || hr_parse_i64(v, &n) != 0 || n < 0) n = 0;
    return n;
}

static void log_job(hr_log_level lvl, const char *msg, const wk_job *j, const char *outcome,
                    const char *detail)
{
    char attempt[16], lat[24];
    snprintf(attempt, sizeof attempt, "%d", j->job ? j->job->attempt : 0);
    snprintf(lat, sizeof lat, "%lld",
             (long long)(j->started_us ? (hr_mono_us() - j->started_us) / 1000 : 0));
    /* a job that did not decode still names its account through its lane */
    const char *acct = j->job && j->job->account ? j->job->account : NULL;
    if (!acct && strchr(j->lane_name, ':')) acct = strchr(j->lane_name, ':') + 1;
    hr_log(lvl, msg, "job", j->job ? j->job->id : j->ukh, "platform",
           j->lane ? j->lane->platform : "", "account", acct ? acct : "", "outcome",
           outcome ? outcome : "", "#latency_ms", lat, "#attempt", attempt, "detail",
           detail ? detail : "", NULL);
}

static void jobq_push(wk_jobq *q, wk_job *j)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->v = hr_realloc(q->v, (size_t)q->cap * sizeof *q->v);
    }
    q->v[q->n++] = j;
}

/* jobq_take moves up to max jobs fetched under the first one's worker id
 * (ids differ only after a reconnect) into a new array; returns how many. */
static int jobq_take(wk_jobq *q, int max, wk_job ***out)
{
    const char *worker = q->v[0]->worker;
    wk_job **v = hr_malloc((size_t)(q->n < max ? q->n : max) * sizeof *v);
    int n = 0, keep = 0;
    for (int i = 0; i < q->n; i++) {
        wk_job *j = q->v[i];
        if (n < max && strcmp(j->worker, worker) == 0) v[n++] = j;
        else q->v[keep++] = j; /* next batch */
    }
    q->n = keep;
    *out = v;
    return n;
}

/* jobq_release lets go of what still waits, past the loop. */
static void job_release(wk_job *j);
static void jobq_release(wk_jobq *q)
{
    for (int i = 0; i < q->n; i++) job_release(q->v[i]);
    free(q->v);
    memset(q, 0, sizeof *q);
}

static wk_lane *lane_get(wk_proc *p, const char *name)
{
    for (int i = 0; i < p->nlanes; i++)
        if (strcmp(p->lanes[i]->name, name) == 0) return p->lanes[i];
    return NULL;
}

static wk_lane *lane_add(wk_proc *p, const char *name)
{
    if (p->nlanes == p->cap_lanes) {
        p->cap_lanes = p->cap_lanes ? p->cap_lanes * 2 : 64;
        p->lanes = hr_realloc(p->lanes, (size_t)p->cap_lanes * sizeof *p->lanes);
    }
    wk_lane *l = hr_calloc(1, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    size_t n = strcspn(name, ":");
    snprintf(l->platform, sizeof l->platform, "%.*s", (int)(n < 31 ? n : 31), name);
    p->lanes[p->nlanes++] = l;
    lane_reload(p, l);
    return l;
}

/* lane_reload (re)reads the lane's account and limits from the config; only
 * called while no send borrows its account. */
static void lane_reload(wk_proc *p, wk_lane *l)
{
    hr_err err = {0};
    l->reload = 0;
    plat_account_free(l->acct);
    l->acct = NULL;
    plat_session_release(&l->sess);
    memset(&l->sess, 0, sizeof l->sess);
    const char *colon = strchr(l->name, ':');
    l->acct = plat_account_find(p->o.config, l->platform, colon ? colon + 1 : "", &err);
    hr_err warn = {0};
    if (l->acct && plat_account_load_credential(l->acct, p->o.config, &warn, &err) != 0) {
        plat_account_free(l->acct);
        l->acct = NULL;
    }
    if (!l->acct)
        hr_log(HR_LOG_ERROR, "lane not served: account unusable", "lane", l->name, "error",
               err.msg, NULL);
    else if (warn.code)
        hr_log(HR_LOG_WARN, "lane credential file", "lane", l->name, "warning", warn.msg, NULL);
    l->paused = 0;
    l->loaded_ms = hr_now_ms();
    lane_limits_reload(p, l);
}

/* lane_limits_reload rereads the lane's limits and budget and writes them
 * for the fetch script: no send borrows them, so at once. */
static void lane_limits_reload(wk_proc *p, wk_lane *l)
{
    hr_err err = {0};
    /* A bad line keeps the limits in force: writing none would lift the
     * lane's and, through the app hash, its whole platform's. */
    if (worker_account_conf_get(p->o.config, l->name, &l->conf, &err) != 0) {
        hr_log(HR_LOG_ERROR,
               l->conf_ok ? "lane config: keeping the old limits" : "lane not served: config",
               "lane", l->name, "error", err.msg, NULL);
        return;
    }
    l->conf_ok = 1;
    lane_write_conf(p, l);
}

/* hset_limits writes limits (and budget b, when not NULL) into the hash
 * key, where the fetch and charge scripts admit from them fleet-wide with
 * Redis TIME: nw, w<i>_ms, w<i>_limit, cost (points), b_cost, b_day_cap,
 * b_month_cap (millionths). */
static void hset_limits(redisAsyncContext *c, const char *key, const worker_limits *lim,
                        const worker_budget *b)
{
    char vals[24][32];
    const char *argv[40];
    int n = 0, v = 0;
    argv[n++] = "HSET";
    argv[n++] = key;
#define PUT(name, val)                                                          \
    do {                                                                       \
        snprintf(vals[v], sizeof vals[v], "%lld", (long long)(val));           \
        argv[n++] = name;                                                      \
        argv[n++] = vals[v++];                                                 \
    } while (0)
    static const char *wms[] = {"w1_ms", "w2_ms", "w3_ms", "w4_ms"};
    static const char *wlim[] = {"w1_limit", "w2_limit", "w3_limit", "w4_limit"};
    PUT("nw", lim->nw);
    for (int i = 0; i < lim->nw && i < 4; i++) {
        PUT(wms[i], lim->w[i].window_ms);
        PUT(wlim[i], lim->w[i].limit);
    }
    PUT("cost", lim->cost);
    if (b) {
        PUT("b_cost", b->cost);
        PUT("b_day_cap", b->cap_day);
        PUT("b_month_cap", b->cap_month);
    }
#undef PUT
    redisAsyncCommandArgv(c, on_raw, NULL, n, argv, NULL);
}

/* lane_write_conf puts the lane's limits and budget into {NS}:lane:LANE and
 * its platform's app limits into {NS}:app:PLATFORM (every lane of the
 * platform writes the same). */
static void lane_write_conf(wk_proc *p, wk_lane *l)
{
    redisAsyncContext *c = queue_async_redis(p->qa);
    if (!c) return;
    const worker_account_conf *a = &l->conf;
    char key[256];
    snprintf(key, sizeof key, "{%s}:lane:%s", queue_async_ns(p->qa), l->name);
    hset_limits(c, key, &a->limits, &a->budget);
    snprintf(key, sizeof key, "{%s}:app:%s", queue_async_ns(p->qa), l->platform);
    hset_limits(c, key, &a->app, NULL);
    l->conf_written = 1;
}

/* on_circuit logs a circuit this lane's failure opened (for the fleet). */
static void on_circuit(int status, const char *errmsg, void *priv)
{
    char *lane = priv;
    if (status == 1 || status == 2)
        hr_log(HR_LOG_WARN, "circuit changed", "lane", lane, "from",
               status == 1 ? "closed" : "half-open", "to", "open", NULL);
    else if (status < 0)
        hr_log(HR_LOG_ERROR, "circuit: failure not counted", "lane", lane, "error", errmsg, NULL);
    free(lane);
}

/* quota_note records what the platform's quota headers said of j's
 * request, so the fetch script stops before a 429 (for the whole fleet).
 * Answers come back in any order: the quota script only lowers the count
 * within a window, and takes off the requests this process started for
 * the lane after j's, which that answer cannot have counted. One call per
 * answer with the headers, as the HSET it replaces. */
static void quota_note(wk_proc *p, wk_job *j, const plat_outcome *o)
{
    if (o->quota_remaining < 0 || o->quota_reset_ms <= 0) return;
    /* plat_classify_http gives the reset in the host's clock (hr_now_ms) */
    int64_t in = o->quota_reset_ms - hr_now_ms();
    if (in <= 0) return; /* over: the fetch goes by its windows alone */
    queue_async_quota(p->qa, j->lane_name, o->quota_remaining, in,
                      j->lane->calls - j->calls_mark, NULL, NULL);
}

/* count_call: j's next request is counted in its lane's windows (by its
 * fetch, or a thread part's charge). */
static void count_call(wk_job *j) { j->calls_mark = ++j->lane->calls; }

/* on_lane_change logs a park or resume this process's fetch made: the
 * fetch script flips the lane's state once for the fleet, so the fleet logs
 * each once, however many processes and pools share the lane. */
static void on_lane_change(const queue_lane_change *c, void *priv)
{
    (void)priv;
    if (c->parked)
        hr_log(HR_LOG_ERROR, "budget cap reached: lane parked", "lane", c->lane, NULL);
    else
        hr_log(HR_LOG_INFO, "budget available again: lane resumed", "lane", c->lane, NULL);
}

static void lane_free(wk_lane *l)
{
    if (!l) return;
    plat_account_free(l->acct);
    plat_session_release(&l->sess);
    free(l->login_wait.v); /* the jobs are the process's to free */
    free(l);
}

static void job_free(wk_job *j)
{
    if (!j) return;
    ev_timer_stop(j->p->loop, &j->readback_timer);
    queue_job_free(j->job);
    plat_send_free(j->send);
    plat_smtp_cleanup(j->smtp);
    wk_req_free(j->req);
    wk_free_headers(j->hdrs, j->nhdrs);
    free(j->platform_id);
    free(j);
}

static void job_format_and_send(wk_job *j);

static void retry_in(wk_job *j, int64_t delay_ms, const char *why);

/* lane_login_over: the lane's login job has its session, or has finished
 * without one. back_ms < 0: the jobs that waited go on (one of them logs in
 * next when there is still no session). back_ms >= 0: the login was refused
 * or failed: they go back unsent, due back_ms from now, without a request
 * (a login each would repeat the refusal once per job). */
static void lane_login_over(wk_lane *l, int64_t back_ms, const char *why)
{
    wk_jobq w = l->login_wait;
    l->login_job = NULL;
    memset(&l->login_wait, 0, sizeof l->login_wait);
    for (int i = 0; i < w.n; i++) {
        if (w.v[i]->p->shutting) continue; /* freed with the process's jobs */
        if (back_ms >= 0) retry_in(w.v[i], back_ms, why);
        else job_format_and_send(w.v[i]);
    }
    free(w.v);
}

/* job_release takes j out of the process's books and frees it. */
static void job_release(wk_job *j)
{
    wk_proc *p = j->p;
    if (j->prev) j->prev->next = j->next;
    else p->jobs = j->next;
    if (j->next) j->next->prev = j->prev;
    p->inflight--;
    wk_lane *l = j->lane;
    if (l) l->inflight--;
    if (l && l->login_job == j) lane_login_over(l, -1, NULL);
    job_free(j);
    if (l && l->reload && l->inflight == 0 && !p->shutting) lane_reload(p, l);
    if (p->shutting) return;
    if (!p->draining) ev_prepare_start(p->loop, &p->kick);
    else if (p->inflight == 0 && !p->releasing) stop_now(p); /* else on_released */
}

static void on_status_done(int status, const char *errmsg, void *priv)
{
    wk_job *j = priv;
    if (status < 0 && !j->p->shutting) {
        log_job(HR_LOG_ERROR, "recording failed", j, NULL, errmsg);
        lease_abandon(j->p, j->worker);
    }
    job_release(j);
}

/* raw runs one Redis command for which no queue_ API exists (pause a lane,
 * record a platform id); fire and forget, failures logged. */
static void on_raw(redisAsyncContext *c, void *r, void *priv)
{
    redisReply *reply = r;
    if (!reply || reply->type == REDIS_REPLY_ERROR)
        hr_log(HR_LOG_ERROR, "redis command failed", "error",
               reply ? reply->str : (c && c->errstr[0] ? c->errstr : "no reply"), NULL);
}

/* ------------------------------------------------------ recording */

/* progress_save keeps, in the job as stored next, the thread parts its send
 * posted already (and their ids), so a retry resumes after them instead of
 * posting them again. */
static void progress_save(wk_job *j)
{
    if (j->send && j->job) plat_send_save_progress(j->send, j->job);
}

static void bury(wk_job *j, const char *reason)
{
    wk_proc *p = j->p;
    p->failed++;
    log_job(HR_LOG_WARN, "job dead", j, "dead", reason);
    if (j->job) queue_set(&j->job->last_error, reason);
    progress_save(j);
    queue_async_bury(p->qa, j->worker, j->ukh, j->lane_name, j->job, reason, on_status_done, j);
}

/* retry_in sends j back to its lane's retry set, due delay_ms after Redis's
 * clock (the one promote goes by: this host's may be off). */
static void retry_in(wk_job *j, int64_t delay_ms, const char *why)
{
    wk_proc *p = j->p;
    p->retried++;
    queue_set(&j->job->last_error, why);
    progress_save(j);
    queue_async_retry(p->qa, j->worker, j->job, delay_ms, on_status_done, j);
}

/* to_unknown hands a job whose outcome this worker cannot tell to its lane's
 * unknown set, budget held, where the reconciler (or an operator) settles
 * it. */
static void to_unknown(wk_job *j, const char *why)
{
    log_job(HR_LOG_WARN, "outcome unknown: left to the reconciler", j, "unknown", why);
    queue_set(&j->job->last_error, why);
    progress_save(j);
    queue_async_unknown(j->p->qa, j->worker, j->job, why, on_status_done, j);
}

static void readback(wk_job *j);

/* post_taken: the ack script found j's platform id recorded for another
 * job (two jobs with the same text, and another read-back or the
 * reconciler claimed the post first) and left j as it was. A read-back's
 * find is passed over and looked past; a post the platform said this send
 * made is not j's to claim either, so the reconciler reads back for it. */
static void post_taken(wk_job *j)
{
    j->p->sent--; /* counted by ack() */
    if (j->readbacks == 0) {
        to_unknown(j, "its post is recorded for another job");
        return;
    }
    log_job(HR_LOG_INFO, "read-back: the post found is another job's, looking on", j, "unknown",
            j->platform_id);
    plat_send_readback_skip(j->send, j->platform_id);
    readback(j);
}

/* Acknowledgements are group-committed: every job sent during one loop
 * iteration is acknowledged by one script call before the loop next waits.
 * The same script records each sent job's platform id in {NS}:platform_ids
 * and a post's engagement polls (poll-schedule: +1 h, +24 h, +7 d by
 * default) in {NS}:polls, so a worker killed after its ack loses neither
 * (the reconciler's resolve of a post records them the same way). It also
 * checks, atomically with the record, that the platform id is no other
 * job's (post_taken). */
typedef struct ack_batch {
    wk_proc *p;
    int n;
    wk_job **jobs;
    queue_ack_item *items;
    int *results;
} ack_batch;

/* acked_note logs a job its ack settled and counts its send time: only
 * then, as an ack refused (QUEUE_ACK_TAKEN) is made again later. */
static void acked_note(wk_job *j)
{
    if (j->ack.polled) log_job(HR_LOG_INFO, "engagement polled", j, "polled", NULL);
    else log_job(HR_LOG_INFO, "job sent", j, "sent", j->platform_id);
    if (!j->started_us) return;
    long long ms = j->ack.latency_ms;
    int b = 0;
    while (b < SEND_BUCKETS && ms > queue_send_bounds_ms[b]) b++;
    j->lane->send_hist[b]++;
    j->lane->send_sum_ms += ms;
}

static void on_batch_acked(int status, const char *errmsg, void *priv)
{
    ack_batch *b = priv;
    wk_proc *p = b->p;
    for (int i = 0; i < b->n; i++) {
        wk_job *j = b->jobs[i];
        if (!p->shutting && status >= 0 && b->results[i] == QUEUE_ACK_TAKEN) {
            post_taken(j); /* still ours, not settled */
            continue;
        }
        if (status >= 0 && b->results[i] > 0) acked_note(j); /* settled by this ack */
        if (!p->shutting) {
            if (status < 0) {
                /* Redis lost the ack: the attempt record makes the reaper put
                 * it in unknown, where the read-back finds it sent. Never
                 * re-send here. */
                log_job(HR_LOG_ERROR, "ack failed; left for the reconciler", j, "sent", errmsg);
                lease_abandon(p, j->worker);
            } else if (b->results[i] == 0)
                log_job(HR_LOG_WARN, "ack: job no longer ours (reaped); resolved later", j,
                        "sent", NULL);
        }
        job_release(j);
    }
    free(b->jobs);
    free(b->items);
    free(b->results);
    free(b);
}

/* flush_sendtime adds the lanes' send durations to {ns}:sendtime, once per
 * loop iteration with the acknowledgements. */
static void flush_sendtime(wk_proc *p)
{
    redisAsyncContext *c = queue_async_redis(p->qa);
    if (!c) return;
    char key[128];
    snprintf(key, sizeof key, "{%s}:sendtime", queue_async_ns(p->qa));
    for (int i = 0; i < p->nlanes; i++) {
        wk_lane *l = p->lanes[i];
        long total = 0;
        for (int b = 0; l && b <= SEND_BUCKETS; b++) total += l->send_hist[b];
        if (!total) continue;
        for (int b = 0; b <= SEND_BUCKETS; b++) {
            if (!l->send_hist[b]) continue;
            char field[64];
            if (b < SEND_BUCKETS)
                snprintf(field, sizeof field, "%s|%lld", l->platform,
                         (long long)queue_send_bounds_ms[b]);
            else
                snprintf(field, sizeof field, "%s|inf", l->platform);
            redisAsyncCommand(c, on_raw, NULL, "HINCRBY %s %s %ld", key, field, l->send_hist[b]);
        }
        redisAsyncCommand(c, on_raw, NULL, "HINCRBY %s %s|sum_ms %lld", key, l->platform,
                          l->send_sum_ms);
        memset(l->send_hist, 0, sizeof l->send_hist);
        l->send_sum_ms = 0;
    }
}

static void on_ack_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    wk_proc *p = w->data;
    ev_prepare_stop(loop, w);
    flush_sendtime(p);
    queue_async_set_polls(p->qa, p->poll_delays_ms, p->npolls); /* as reloaded */
    while (p->ackq.n > 0) {
        ack_batch *b = hr_calloc(1, sizeof *b);
        b->p = p;
        b->n = jobq_take(&p->ackq, QUEUE_ACK_MAX, &b->jobs);
        b->items = hr_calloc((size_t)b->n, sizeof *b->items);
        b->results = hr_calloc((size_t)b->n, sizeof *b->results);
        for (int i = 0; i < b->n; i++) b->items[i] = b->jobs[i]->ack;
        queue_async_ack(p->qa, b->jobs[0]->worker, b->items, b->n, b->results, on_batch_acked, b);
    }
}

static void ack(wk_job *j, const char *platform_id)
{
    wk_proc *p = j->p;
    int polled = j->job->kind == QUEUE_KIND_POLL; /* read, not sent: counted apart */
    if (polled) p->polled++;
    else p->sent++;
    char *id = hr_strdup(platform_id); /* platform_id may be j's own */
    free(j->platform_id);
    j->platform_id = id;
    j->ack.ukh = j->ukh;
    j->ack.id = j->job->id; /* the done record names the job by its full id */
    /* a job without a unique key can never be enqueued again under its
     * ukh, so it needs no done record */
    j->ack.no_done = !(j->job->unique_key && *j->job->unique_key);
    j->ack.lane = j->lane_name;
    j->ack.platform_id = j->platform_id;
    j->ack.campaign = j->job->campaign;
    j->ack.poll = j->job->kind == QUEUE_KIND_POST;
    j->ack.polled = polled;
    j->ack.lateness_ms = j->job->run_at_ms > 0 ? j->fetched_ms - j->job->run_at_ms : -1;
    /* the done record keeps what the send took and cost: one call per
     * part of a thread */
    int64_t calls = meta_count(j->job, "parts_sent");
    if (calls < 1) calls = 1;
    j->ack.metrics = 1;
    j->ack.latency_ms = j->started_us ? (hr_mono_us() - j->started_us) / 1000 : 0;
    j->ack.cost_micros = j->lane ? j->lane->conf.budget.cost * calls : 0;
    worker_crash_point("before_ack");
    jobq_push(&p->ackq, j);
    ev_prepare_start(p->loop, &p->ack_flush);
}

static worker_outcome outcome_of(plat_outcome_kind k)
{
    switch (k) {
    case PLAT_OUT_SENT: return WORKER_SENT;
    case PLAT_OUT_RETRY: return WORKER_RETRY_AFTER;
    case PLAT_OUT_REAUTH: return WORKER_REAUTH;
    case PLAT_OUT_PERMANENT: return WORKER_PERMANENT;
    case PLAT_OUT_UNKNOWN: return WORKER_UNKNOWN;
    default: return WORKER_TRANSIENT;
    }
}

static void readback_now(wk_job *j);

static void on_readback_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    readback_now(w->data);
}

/* throttled_note counts, in j's meta ("throttled"), the 429s it waited
 * out: they use up none of its attempts, but the logs should show them. */
static void throttled_note(wk_job *j)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)meta_count(j->job, "throttled") + 1);
    queue_job_set_meta(j->job, "throttled", v);
}

static void settle(wk_job *j, const plat_outcome *o)
{
    wk_proc *p = j->p;
    worker_outcome wo = outcome_of(o->kind);
    /* the decision's times are relative to now: any clock serves */
    int64_t now = wk_clock_ms();
    worker_decision d;
    /* a session can be refreshed only if the send began with one: a 401 to
     * its own login (createSession) is a refused password */
    int can_refresh = strcmp(j->lane->platform, "bluesky") == 0 && j->had_session;
    worker_decide(wo, j->job->attempt, j->job->max_attempts, now,
                  now + (o->retry_after_ms > 0 ? o->retry_after_ms : 0), can_refresh,
                  j->refreshed, &p->retry, wo == WORKER_SENT ? 0 : hr_random_u64(), &d);
    quota_note(p, j, o);
    if (j->refreshed && wo != WORKER_REAUTH) /* past the session: a later 401 may refresh */
        queue_job_set_meta(j->job, "refreshed", "");
    /* d.budget: REFUND is done by the retry and bury scripts (atomic with
     * the move: exactly once, even under kill -9), COMMIT by the ack, HOLD
     * by leaving the reservation with the job in unknown */
    /* the breaker is the fleet's, in Redis: a failure counts there, a
     * success is counted by the ack */
    wk_lane *l = j->lane;
    /* an unknown outcome counted already; its read-back finding nothing is
     * the same failure */
    if (d.circuit_failure && !j->circuit_counted) {
        j->circuit_counted = 1;
        l->circuit_failed = 1;
        queue_async_circuit(p->qa, l->name, QUEUE_CIRCUIT_FAIL, l->conf.circuit,
                            l->conf.circuit_open_ms, 0, on_circuit, hr_strdup(l->name));
    } else if (d.circuit_success && l->circuit_failed) {
        /* after our own failures: end the run now, in order, not at the ack */
        l->circuit_failed = 0;
        queue_async_circuit(p->qa, l->name, QUEUE_CIRCUIT_OK, 0, 0, 0, NULL, NULL);
    }
    if (j->probe && d.circuit_success) /* its ack closes the circuit */
        hr_log(HR_LOG_WARN, "circuit changed", "lane", l->name, "from", "half-open", "to",
               "closed", NULL);
    else if (j->probe && !d.circuit_failure) /* neither way: let another probe go */
        queue_async_circuit(p->qa, l->name, QUEUE_CIRCUIT_RELEASE, 0, 0, 0, NULL, NULL);
    if (l->login_job == j && !l->sess.access) {
        /* The login came to nothing. A refresh retried at once leaves the
         * waiters to log in (one at a time); otherwise they go back unsent
         * with the login's outcome: held as it is, or due when it is. */
        int64_t back = -1;
        if (d.action == WORKER_DO_HOLD || (d.action == WORKER_DO_RETRY && !d.refresh_session))
            back = d.at_ms - now;
        else if (d.action != WORKER_DO_RETRY)
            back = worker_backoff_ms(1, p->retry.base_ms, p->retry.cap_ms, hr_random_u64());
        lane_login_over(l, back,
                        o->message[0] ? o->message : "the account's login came to nothing");
    }
    switch (d.action) {
    case WORKER_DO_ACK: ack(j, o->platform_id); return;
    case WORKER_DO_RETRY:
        if (wo == WORKER_RETRY_AFTER) {
            /* A wait the platform asked for, not a failed attempt: the
             * attempt is given back (max_attempts counts failures, and the
             * backoff's ceiling grows with it); the job's meta counts
             * these waits for the logs. */
            if (j->job->attempt > 0) j->job->attempt--;
            throttled_note(j);
        }
        if (d.refresh_session) {
            /* the access token is spent, the refresh token is not: the next
             * send refreshes (refreshSession), and logs in again only if
             * that is refused (Bluesky allows 30 logins per 5 minutes) */
            free(j->lane->sess.access);
            j->lane->sess.access = NULL;
            /* carried by the job: a second 401 after this holds the lane */
            queue_job_set_meta(j->job, "refreshed", "1");
        }
        log_job(HR_LOG_INFO, "job retry", j, worker_outcome_name(wo), o->message);
        retry_in(j, d.at_ms - now, o->message[0] ? o->message : worker_outcome_name(wo));
        return;
    case WORKER_DO_BURY: bury(j, o->message[0] ? o->message : worker_outcome_name(wo)); return;
    case WORKER_DO_HOLD: {
        redisAsyncContext *c = queue_async_redis(p->qa);
        if (!j->lane->paused) { /* once per pause: a reload after a resume ends it */
            hr_log(HR_LOG_ERROR, "credentials refused: lane paused until fixed", "lane",
                   j->lane->name, "detail", o->message, NULL);
            j->lane->paused = 1;
        }
        /* when: a process that fetches it once the lane is resumed reads
         * the credential again first, if it read it before this */
        char held[24];
        snprintf(held, sizeof held, "%lld", (long long)hr_now_ms());
        queue_job_set_meta(j->job, "held_at", held);
        if (c) {
            char key[128];
            snprintf(key, sizeof key, "{%s}:paused", queue_async_ns(p->qa));
            redisAsyncCommand(c, on_raw, NULL, "SADD %s %s", key, j->lane->name);
        }
        retry_in(j, d.at_ms - now, o->message[0] ? o->message : "re-authentication needed");
        return;
    }
    case WORKER_DO_UNKNOWN:
        log_job(HR_LOG_WARN, "outcome unknown: reading back", j, "unknown", o->message);
        readback(j);
        return;
    }
}

/* ------------------------------------------------------------- HTTP */

static void fill_response(wk_job *j, plat_response *r)
{
    wk_req *q = j->req;
    wk_free_headers(j->hdrs, j->nhdrs);
    j->nhdrs = wk_split_headers(&q->resp_headers, &j->hdrs);
    memset(r, 0, sizeof *r);
    r->status = q->status;
    r->headers = j->hdrs;
    r->nheaders = j->nhdrs;
    r->body = q->resp_body.data ? q->resp_body.data : "";
    r->body_len = q->resp_body.len;
    r->fully_sent = q->maybe_sent;
    switch (q->rc) {
    case CURLE_OK: r->terr = PLAT_TE_NONE; break;
    case CURLE_OPERATION_TIMEDOUT: r->terr = PLAT_TE_TIMEOUT; break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        r->terr = PLAT_TE_CONNECT;
        r->fully_sent = 0;
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: r->terr = PLAT_TE_RESET; break;
    default: r->terr = PLAT_TE_OTHER; break;
    }
}

/* start_request sends pr for j; the request takes pr's URL and body. */
static int start_request(wk_job *j, plat_request *pr, wk_req_cb *cb)
{
    wk_proc *p = j->p;
    wk_req_free(j->req);
    j->req = wk_req_new(p->http);
    wk_req *q = j->req;
    if (strcmp(pr->method, "SMTP") == 0) {
        hr_err err = {0};
        plat_smtp_cleanup(j->smtp);
        j->smtp = NULL;
        if (plat_smtp_setup(j->send, wk_req_easy(q), &j->smtp, &err) != 0) return -1;
    } else {
        q->method = hr_strdup(pr->method);
        q->url = pr->url;
        pr->url = NULL;
        for (int i = 0; i < pr->nheaders; i++)
            wk_req_header_nv(q, pr->headers[i].name, pr->headers[i].value);
        q->body = pr->body;
        q->body_len = pr->body ? pr->body_len : 0;
        pr->body = NULL;
    }
    wk_http_start(q, cb, j);
    return 0;
}

/* answer_begin starts every HTTP answer callback: past the loop it only lets
 * go of the job (returns -1); otherwise r gets the answer and o is cleared. */
static int answer_begin(wk_job *j, plat_response *r, plat_outcome *o)
{
    if (j->p->shutting) {
        job_release(j);
        return -1;
    }
    fill_response(j, r);
    memset(o, 0, sizeof *o);
    return 0;
}

static void on_send_done(wk_req *q, void *priv)
{
    wk_job *j = priv;
    plat_response r;
    plat_outcome o;
    if (answer_begin(j, &r, &o) != 0) return;
    plat_send_response(j->send, &r, &o);
    if (j->lane->login_job == j && j->lane->sess.access)
        lane_login_over(j->lane, -1, NULL); /* logged in: the waiters go on */
    /* a login that came to nothing: settle decides for the waiters too */
    if (o.kind == PLAT_OUT_NEXT) {
        plat_outcome_release(&o);
        job_send_step(j);
        return;
    }
    worker_crash_point("after_answer");
    settle(j, &o);
    plat_outcome_release(&o);
}

/* on_part_charged: the rate windows counted the thread's next part (0), or
 * have no room for it (> 0: ms until they reset), or Redis failed (< 0). */
static void on_part_charged(int status, const char *errmsg, void *priv)
{
    wk_job *j = priv;
    if (j->p->shutting) {
        job_release(j);
        return;
    }
    if (status > 0) {
        /* Not sent: the job goes back, resuming after its posted parts,
         * when the window resets. A wait, not a failed attempt. */
        j->job->attempt--;
        log_job(HR_LOG_INFO, "thread part waits for the rate window", j, "retry", NULL);
        retry_in(j, status, "rate window full: the thread's next part waits for its reset");
        return;
    }
    if (status < 0) {
        /* No answer about the part's admission (an error reply, Redis away
         * or stalled): it does not go out uncounted. The thread goes back
         * after a backoff, resuming after its posted parts; not an attempt
         * (the platform did not fail). If that cannot be recorded either,
         * the lease is let go and the reaper hands the job to the
         * reconciler, which reads back the parts posted. */
        log_job(HR_LOG_WARN, "thread part not charged: the thread waits", j, "retry", errmsg);
        j->job->attempt--;
        char why[HR_ERRLEN];
        snprintf(why, sizeof why, "rate window charge failed: %s", errmsg ? errmsg : "redis");
        retry_in(j,
                 worker_backoff_ms(j->job->attempt > 0 ? j->job->attempt : 1,
                                   j->p->retry.base_ms, j->p->retry.cap_ms, hr_random_u64()),
                 why);
        return;
    }
    count_call(j);
    job_send_step(j);
}

static void job_send_step(wk_job *j)
{
    if (part_to_charge(j)) {
        queue_async_charge(j->p->qa, j->lane_name, 1, on_part_charged, j);
        return;
    }
    plat_request pr;
    memset(&pr, 0, sizeof pr);
    hr_err err = {0};
    if (plat_send_request(j->send, &pr, &err) != 0 || start_request(j, &pr, on_send_done) != 0) {
        plat_request_release(&pr);
        /* Nothing of this step went out; a bug or a missing setting. */
        bury(j, err.msg[0] ? err.msg : "could not build the request");
        return;
    }
    plat_request_release(&pr);
}

/* reply_begin starts the callback of a Redis command sent for j: past the
 * loop it only lets go of the job (returns -1); 1 when the command failed
 * (no reply, or an error), else 0. */
static int reply_begin(wk_job *j, const redisReply *reply)
{
    if (j->p->shutting) {
        job_release(j);
        return -1;
    }
    return !reply || reply->type == REDIS_REPLY_ERROR;
}

static void on_readback_done(wk_req *q, void *priv)
{
    wk_job *j = priv;
    plat_response r;
    plat_outcome o;
    if (answer_begin(j, &r, &o) != 0) return;
    plat_send_readback_response(j->send, &r, &o);
    if (o.kind == PLAT_OUT_SENT) {
        /* the ack script records it only if the post is no other job's
         * (the same text twice): else on_batch_acked looks past it */
        ack(j, o.platform_id);
    } else if (o.kind == PLAT_OUT_NEXT && o.platform_id) {
        /* a thread's part in flight was found, and a later part is still
         * to send: go on with it (a lost answer after it reads back anew) */
        j->readbacks = 0;
        job_send_step(j);
    } else if (o.kind == PLAT_OUT_NEXT) {
        readback_now(j); /* a session step first */
    } else if (o.kind == PLAT_OUT_ABSENT && plat_resend_on_absent(j->lane->platform)) {
        /* Proved not sent, and a resend cannot duplicate it (same rkey or
         * idempotency key): a failed attempt like any other, counted
         * against max_attempts. */
        log_job(HR_LOG_INFO, "read-back: not sent", j, "absent", NULL);
        o.kind = PLAT_OUT_TRANSIENT;
        snprintf(o.message, sizeof o.message, "outcome unknown; read-back found nothing");
        settle(j, &o);
    } else if (o.kind == PLAT_OUT_ABSENT) {
        /* An email search or a timeline read right after the send can lag
         * it: nothing found proves nothing yet. The reconciler decides
         * after its settle time. */
        to_unknown(j, "outcome unknown; a read-back right after the send found nothing");
    } else {
        readback(j);
    }
    plat_outcome_release(&o);
}

static void readback_now(wk_job *j)
{
    plat_request pr;
    memset(&pr, 0, sizeof pr);
    hr_err err = {0};
    j->readbacks++;
    if (j->p->draining || plat_send_readback(j->send, &pr, &err) != 0 ||
        start_request(j, &pr, on_readback_done) != 0) {
        plat_request_release(&pr);
        to_unknown(j, err.msg[0] ? err.msg : "no read-back");
        return;
    }
    plat_request_release(&pr);
}

static void readback(wk_job *j)
{
    if (j->p->draining || j->readbacks >= 5) {
        to_unknown(j, "read-back gave no answer");
        return;
    }
    if (j->readbacks == 0) {
        readback_now(j);
        return;
    }
    /* Give the platform time to show the post (eventual consistency). */
    ev_timer_set(&j->readback_timer, (double)(1 << j->readbacks), 0.);
    ev_timer_start(j->p->loop, &j->readback_timer);
}

/* ---------------------------------------------------- engagement polls */

/* Polled counts are recorded where the webhooks server records pushed
 * events: the rise since the last poll goes to eng:jobs (JOB|type, set to
 * the count), eng:campaigns and eng:totals (incremented) and one entry in
 * the events stream, so `herald stats` shows social and email side by side. */
static const char poll_record_lua[] =
    "local job, camp, plat, ts, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local n = 0\n"
    "for i = 6, #ARGV, 2 do\n"
    "  local typ, count = ARGV[i], tonumber(ARGV[i + 1])\n"
    "  local f = job .. '|' .. typ\n"
    "  local old = tonumber(redis.call('HGET', KEYS[1], f) or '0')\n"
    "  if count > old then\n"
    "    local d = count - old\n"
    "    redis.call('HSET', KEYS[1], f, count)\n"
    "    if camp ~= '' then redis.call('HINCRBY', KEYS[2], camp .. '|' .. typ, d) end\n"
    "    redis.call('HINCRBY', KEYS[3], typ, d)\n"
    "    redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'type', typ, 'job', job,\n"
    "      'campaign', camp, 'platform', plat, 'ts', ts, 'event', 'poll:' .. f .. ':' .. count)\n"
    "    n = n + d\n"
    "  end\n"
    "end\n"
    "return n\n";

static void poll_record(wk_job *j, const plat_engagement *e)
{
    wk_proc *p = j->p;
    redisAsyncContext *c = queue_async_redis(p->qa);
    const char *for_job = queue_job_get_meta(j->job, "for_job");
    if (!c || !for_job) return;
    const char *ns = queue_async_ns(p->qa);
    char k1[96], k2[96], k3[96], k4[96], ts[24], v[3][24];
    snprintf(k1, sizeof k1, "{%s}:eng:jobs", ns);
    snprintf(k2, sizeof k2, "{%s}:eng:campaigns", ns);
    snprintf(k3, sizeof k3, "{%s}:eng:totals", ns);
    snprintf(k4, sizeof k4, "{%s}:events", ns);
    snprintf(ts, sizeof ts, "%lld", (long long)hr_now_ms());
    /* the stream is trimmed as the webhooks server trims it (same key and
     * default, read with the other settings: proc_settings) */
    char ml[24];
    snprintf(ml, sizeof ml, "%lld", (long long)p->stream_maxlen);
    const char *argv[20] = {"EVAL", poll_record_lua, "4", k1, k2, k3, k4, for_job,
                            j->job->campaign ? j->job->campaign : "", j->lane->platform, ts, ml};
    int argc = 12;
    const char *types[] = {"like", "repost", "reply"};
    long counts[] = {e->likes, e->reposts, e->replies};
    for (int i = 0; i < 3; i++) {
        if (counts[i] < 0) continue; /* not offered by this platform */
        snprintf(v[i], sizeof v[i], "%ld", counts[i]);
        argv[argc++] = types[i];
        argv[argc++] = v[i];
    }
    redisAsyncCommandArgv(c, on_raw, NULL, argc, argv, NULL);
}

static void on_poll_done(wk_req *q, void *priv)
{
    wk_job *j = priv;
    plat_response r;
    plat_outcome o;
    if (answer_begin(j, &r, &o) != 0) return;
    plat_engagement e;
    memset(&e, 0, sizeof e);
    plat_engagement_parse(j->lane->acct, &r, &e, &o);
    if (o.kind == PLAT_OUT_SENT) {
        poll_record(j, &e);
        ack(j, NULL);
    } else {
        /* reads are safe to repeat: an unknown answer is just transient */
        if (o.kind == PLAT_OUT_UNKNOWN || o.kind == PLAT_OUT_NEXT || o.kind == PLAT_OUT_ABSENT)
            o.kind = PLAT_OUT_TRANSIENT;
        settle(j, &o);
    }
    plat_outcome_release(&o);
}

static void poll_start(wk_job *j)
{
    plat_request pr;
    memset(&pr, 0, sizeof pr);
    hr_err err = {0};
    const char *post_id = queue_job_get_meta(j->job, "post_id");
    j->job->attempt++;
    j->started_us = hr_mono_us();
    if (plat_engagement_request(j->lane->acct, &j->lane->sess, post_id, &pr, &err) != 0 ||
        start_request(j, &pr, on_poll_done) != 0) {
        plat_request_release(&pr);
        bury(j, err.msg[0] ? err.msg : "engagement: cannot build the request");
        return;
    }
    plat_request_release(&pr);
}

/* ----------------------------------------------------------- one job */

/* parts_sent: the parts of j's thread posted so far (its meta, kept up to
 * date by progress_save) */
static int parts_sent(const wk_job *j) { return (int)meta_count(j->job, "parts_sent"); }

/* part_to_charge: j's next request is a thread's part past the one its
 * fetch counted, not yet counted in the lane's rate windows (1: charge it
 * before it goes out, an admission of its own: one call per request made,
 * so a part a failure left unposted is not charged, and charged again only
 * when a retry sends it). */
static int part_to_charge(wk_job *j)
{
    const plat_post *post = plat_send_post(j->send);
    if (!post || post->nparts < 2) return 0;
    progress_save(j); /* parts_sent as of now */
    int part = parts_sent(j);
    if (part <= j->part_counted || part >= post->nparts) return 0;
    j->part_counted = part;
    return 1;
}

static void on_attempt(wk_job *j, int status, const char *errmsg)
{
    if (j->p->shutting) {
        job_release(j);
        return;
    }
    if (status != 0) {
        /* 1: reaped, no longer ours; -1: Redis gone. Either way nothing was
         * sent and we must not send. */
        log_job(HR_LOG_WARN, "attempt not recorded: not sending", j, "skipped",
                status < 0 ? errmsg : "job no longer ours");
        job_release(j);
        return;
    }
    worker_crash_point("after_attempt");
    j->started_us = hr_mono_us();
    j->part_counted = parts_sent(j); /* the fetch counted this request */
    job_send_step(j);
}

typedef struct attempt_batch {
    wk_proc *p;
    int n;
    wk_job **jobs;
    int *results;
    /* the attempts' answer, and with replicas WAIT's after it: the batch
     * goes on once both are in (pending 0) */
    int pending, recorded, status;
    char errmsg[HR_ERRLEN];
    int wait_n, replicas;
} attempt_batch;

/* marks_unconfirmed: fewer than wait_n replicas have the batch's attempt
 * marks: a failover or the Redis host's crash could lose them while the
 * posts went out (sent twice after the reaper's requeue). Nothing is sent:
 * each recorded job goes back to its lane after a backoff (mark dropped),
 * not counted as an attempt. */
static void marks_unconfirmed(attempt_batch *b)
{
    wk_proc *p = b->p;
    char want[16], got[16];
    snprintf(want, sizeof want, "%d", b->wait_n);
    snprintf(got, sizeof got, "%d", b->replicas);
    hr_log(HR_LOG_WARN, "attempt marks not on enough replicas: not sending", "want", want,
           "got", got, NULL);
    for (int i = 0; i < b->n; i++) {
        wk_job *j = b->jobs[i];
        if (b->results[i] != 0) {
            on_attempt(j, 1, NULL);
            continue;
        }
        j->job->attempt--;
        retry_in(j,
                 worker_backoff_ms(j->job->attempt > 0 ? j->job->attempt : 1, p->retry.base_ms,
                                   p->retry.cap_ms, hr_random_u64()),
                 "attempt mark not confirmed by the redis replicas");
    }
}

static void attempts_done(attempt_batch *b)
{
    wk_proc *p = b->p;
    int status = b->status;
    const char *errmsg = b->errmsg;
    /* the record may hold them still: the reaper must get to settle it */
    if (status < 0 && !p->shutting) lease_abandon(p, b->jobs[0]->worker);
    if (status >= 0 && !p->shutting && !lease_vouched(p, b->jobs[0]->worker)) {
        /* The loop stalled (or the id changed) while the record was made:
         * the reaper may already have given these jobs to another worker.
         * Their attempts are marked, so the reaper sends them to unknown
         * and the reconciler reads back; here they must not be sent. */
        char nj[16];
        snprintf(nj, sizeof nj, "%d", b->n);
        hr_log(HR_LOG_WARN, "lease not vouched for: not sending; the reaper settles these",
               "worker", b->jobs[0]->worker, "jobs", nj, NULL);
        if (strcmp(b->jobs[0]->worker, p->worker_id) == 0) {
            new_worker_id(p);
            p->registered = 0;
        }
        status = -1;
        errmsg = "lease not vouched for";
    }
    if (status >= 0 && !p->shutting && b->replicas < b->wait_n)
        marks_unconfirmed(b);
    else
        for (int i = 0; i < b->n; i++)
            on_attempt(b->jobs[i], status < 0 ? -1 : b->results[i], errmsg);
    free(b->jobs);
    free(b->results);
    free(b);
    /* The batch's requests leave now: a worker that dies later has sent
     * every job whose attempt it recorded (the narrowest unknown window). */
    if (p->http) wk_http_flush(p->http);
}

static void on_attempts(int status, const char *errmsg, void *priv)
{
    attempt_batch *b = priv;
    b->recorded = 1;
    b->status = status;
    snprintf(b->errmsg, sizeof b->errmsg, "%s", errmsg ? errmsg : "");
    if (--b->pending == 0) attempts_done(b);
}

/* on_marks_replicated: WAIT's answer, the replicas that have the batch's
 * marks; one that comes before the marks' own (their script was sent again
 * after a NOSCRIPT) vouches for nothing. */
static void on_marks_replicated(int status, const char *errmsg, void *priv)
{
    attempt_batch *b = priv;
    b->replicas = b->recorded ? status : -1;
    if (status < 0 && errmsg && !b->p->shutting)
        hr_log(HR_LOG_WARN, "redis WAIT failed", "error", errmsg, NULL);
    if (--b->pending == 0) attempts_done(b);
}

/* Attempts are group-committed like acknowledgements: the jobs formatted
 * during one loop iteration are recorded by one script call before the loop
 * next waits, and each is sent only once its record is in. */
static void on_att_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    wk_proc *p = w->data;
    ev_prepare_stop(loop, w);
    while (p->attq.n > 0) {
        attempt_batch *b = hr_calloc(1, sizeof *b);
        b->p = p;
        b->pending = 1;
        b->wait_n = p->wait_replicas;
        b->n = jobq_take(&p->attq, QUEUE_ATTEMPT_MAX, &b->jobs);
        b->results = hr_calloc((size_t)b->n, sizeof *b->results);
        const char **ukhs = hr_malloc(2 * (size_t)b->n * sizeof *ukhs), **lanes = ukhs + b->n;
        for (int i = 0; i < b->n; i++) {
            ukhs[i] = b->jobs[i]->ukh;
            lanes[i] = b->jobs[i]->lane_name;
        }
        if (b->wait_n > 0) b->pending++;
        queue_async_attempts(p->qa, b->jobs[0]->worker, ukhs, lanes, b->n, b->results,
                             on_attempts, b);
        /* pipelined: the marks go out, then the wait for the replicas */
        if (b->wait_n > 0)
            queue_async_wait(p->qa, b->wait_n, p->wait_timeout_ms, on_marks_replicated, b);
        free(ukhs);
    }
}

/* needs_login: j's send would begin by logging in (Bluesky without an
 * access token). */
static int needs_login(const wk_job *j)
{
    return strcmp(j->lane->platform, "bluesky") == 0 && !j->lane->sess.access;
}

static void job_format_and_send(wk_job *j)
{
    wk_proc *p = j->p;
    hr_err err = {0};
    if (needs_login(j)) {
        if (j->lane->login_job) { /* one login per account at a time */
            jobq_push(&j->lane->login_wait, j);
            return;
        }
        j->lane->login_job = j;
    }
    plat_ctx ctx = {.secret = p->secret, .now_ms = 0};
    j->had_session = j->lane->sess.access || j->lane->sess.refresh;
    j->send = plat_send_new(j->lane->acct, &j->lane->sess, j->job, &ctx, &err);
    if (!j->send) {
        bury(j, err.msg[0] ? err.msg : "cannot be formatted");
        return;
    }
    j->job->attempt++;
    jobq_push(&p->attq, j);
    ev_prepare_start(p->loop, &p->att_flush);
}

/* suppress_unknown: whether j's address is suppressed cannot be told now:
 * it is not sent; nothing attempted, the reaper returns it to its lane once
 * the lease let go here runs out. */
static void suppress_unknown(wk_job *j, const char *why)
{
    log_job(HR_LOG_ERROR, "suppression check failed", j, NULL, why);
    lease_abandon(j->p, j->worker);
    job_release(j);
}

static void on_suppressed(redisAsyncContext *c, void *r, void *priv)
{
    wk_job *j = priv;
    redisReply *reply = r;
    int rc = reply_begin(j, reply);
    if (rc < 0) return;
    if (rc > 0) {
        suppress_unknown(j, reply ? reply->str : "no reply");
        return;
    }
    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        bury(j, "suppressed: the address unsubscribed, bounced or complained");
        return;
    }
    job_format_and_send(j);
}

/* lane_resumed: j's lane was paused here, or j was held for refused
 * credentials after its lane's account was read here (held_at, its meta),
 * and j was fetched, so an operator resumed the lane (the fetch skips
 * paused ones) after fixing the credential: the account is read again
 * before j is sent, where the old credential was refused again and the
 * lane paused once more. Any job of the lane may come first: one enqueued
 * during the pause has no held_at. Returns 1
 * when j went back instead, to wait for the lane's sends in flight (the
 * account is theirs until they end). */
static int lane_resumed(wk_proc *p, wk_job *j)
{
    wk_lane *l = j->lane;
    if (l->inflight > 1) {
        l->reload = 1;
        retry_in(j, 1000, "lane resumed: its account is read again once its sends end");
        return 1;
    }
    lane_reload(p, l);
    hr_log(HR_LOG_INFO, "lane resumed: its credential read again", "lane", l->name, NULL);
    return 0;
}

/* job_start starts f, fetched under worker (the id it sits under in Redis). */
static void job_start(wk_proc *p, const char *worker, queue_fetched *f)
{
    wk_job *j = hr_calloc(1, sizeof *j);
    j->p = p;
    ev_timer_init(&j->readback_timer, on_readback_timer, 0., 0.);
    j->readback_timer.data = j;
    memcpy(j->ukh, f->ukh, sizeof j->ukh);
    memcpy(j->lane_name, f->lane, sizeof j->lane_name);
    j->probe = f->probe;
    snprintf(j->worker, sizeof j->worker, "%s", worker);
    j->fetched_ms = hr_now_ms();
    j->next = p->jobs;
    if (p->jobs) p->jobs->prev = j;
    p->jobs = j;
    p->inflight++;
    j->lane = lane_get(p, f->lane);
    if (!j->lane) j->lane = lane_add(p, f->lane);
    if (j->lane) {
        j->lane->inflight++;
        count_call(j);
    }
    worker_crash_point("after_fetch");

    hr_err err = {0};
    j->job = queue_job_decode_stored(f->ukh, f->value, f->value_len, &err);
    if (!j->job) {
        bury(j, err.msg);
        return;
    }
    if (queue_job_get_meta(j->job, "forgotten")) {
        /* herald forget took its recipient out while it was in flight or unknown */
        bury(j, "forgotten: herald forget removed its recipient");
        return;
    }
    const char *rf = queue_job_get_meta(j->job, "refreshed");
    j->refreshed = rf && strcmp(rf, "1") == 0;
    /* a job of a lane this process paused was fetched, or a job held after
     * it last read the account: either way the lane was resumed */
    if (j->lane && (j->lane->paused || meta_count(j->job, "held_at") > j->lane->loaded_ms) &&
        lane_resumed(p, j))
        return;
    if (!j->lane || !j->lane->acct) {
        /* Not ours to send after all: it stays, visible, for a pool that can. */
        retry_in(j, 60000, "no usable account for this lane in this pool");
        return;
    }
    if (j->job->kind == QUEUE_KIND_POLL) {
        poll_start(j);
        return;
    }
    if (j->job->kind == QUEUE_KIND_EMAIL && plat_is_email(j->lane->platform)) {
        /* Checked at send time: an unsubscribe after enqueue still counts.
         * Never fails open: what cannot be checked is not sent. */
        char digest[65];
        redisAsyncContext *c = queue_async_redis(p->qa);
        if (!p->secret) {
            bury(j, "suppression list unavailable (no secret): refusing to email");
        } else if (!j->job->to || queue_suppress_hash(p->secret, j->job->to, digest) != 0) {
            bury(j, "suppression check: \"to\" is not an email address (bad input)");
        } else if (!c) {
            suppress_unknown(j, "redis not connected");
        } else {
            char key[128];
            snprintf(key, sizeof key, "{%s}:suppressed", queue_async_ns(p->qa));
            if (redisAsyncCommand(c, on_suppressed, j, "HEXISTS %s %s", key, digest) != REDIS_OK)
                suppress_unknown(j, "redis refused the command"); /* no callback comes */
        }
        return;
    }
    job_format_and_send(j);
}

/* ------------------------------------------------------------ fetching */

static void arm_fetch(wk_proc *p, double after_s)
{
    ev_timer_stop(p->loop, &p->fetch_timer);
    ev_timer_set(&p->fetch_timer, after_s, 0.);
    ev_timer_start(p->loop, &p->fetch_timer);
}

static void on_released(int status, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    p->releasing--;
    if (p->shutting) return;
    char nj[16];
    snprintf(nj, sizeof nj, "%d", status);
    if (status < 0)
        hr_log(HR_LOG_WARN, "handing back a fetch failed; the reaper returns its jobs", "error",
               errmsg, NULL);
    else
        hr_log(HR_LOG_INFO, "fetch under an old id handed back", "jobs", nj, NULL);
    if (p->draining && p->inflight == 0 && !p->releasing) stop_now(p);
}

/* fetched_release hands the n jobs of a fetch issued under p->fetch_worker
 * back to their lanes, unstarted. */
static void fetched_release(wk_proc *p, const queue_fetched *jobs, int n)
{
    if (n == 0) return;
    const char **ukhs = hr_malloc(2 * (size_t)n * sizeof *ukhs), **lanes = ukhs + n;
    for (int i = 0; i < n; i++) {
        ukhs[i] = jobs[i].ukh;
        lanes[i] = jobs[i].lane;
    }
    hr_log(HR_LOG_WARN, "the id changed while a fetch was on its way: handing its jobs back",
           "worker", p->fetch_worker, NULL);
    p->releasing++;
    queue_async_release(p->qa, p->fetch_worker, ukhs, lanes, n, on_released, p);
    free(ukhs);
}

static void on_fetched(int status, queue_fetched *jobs, int n, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    p->fetching = 0;
    if (p->shutting) {
        queue_fetched_free(jobs, n);
        return;
    }
    if (status < 0) {
        hr_log(HR_LOG_WARN, "fetch failed", "error", errmsg, NULL);
        queue_fetched_free(jobs, n);
        arm_fetch(p, 0.2);
        return;
    }
    if (status == 1) {
        /* Our lease ran out (we were reaped): register again. */
        hr_log(HR_LOG_WARN, "lease lost; registering again", "worker", p->fetch_worker, NULL);
        /* Under a new id: the old record keeps what this process dropped
         * (refused attempts) until the reaper settles it; the same id would
         * renew the old lease and strand them. */
        if (p->fetch_gen == p->lease_gen) {
            new_worker_id(p);
            p->registered = 0;
        }
        queue_fetched_free(jobs, n);
        arm_fetch(p, 0.);
        return;
    }
    if (p->fetch_gen != p->lease_gen) {
        /* The id changed while the fetch was on its way: its jobs sit in
         * the old id's record, whose lease nothing renews or vouches for
         * now. They go back to their lanes at once (not after that lease
         * runs out) and are fetched again under the new id. */
        fetched_release(p, jobs, n);
        queue_fetched_free(jobs, n);
        if (p->draining && p->inflight == 0 && !p->releasing) stop_now(p);
        else arm_fetch(p, 0.);
        return;
    }
    lease_renewed(p, p->fetch_gen, p->fetch_issued_ms); /* the fetch renews it */
    if (p->draining) {
        /* Fetched as SIGTERM came: never started, so unregistering returns
         * them to the front of their lanes. */
        queue_fetched_free(jobs, n);
        if (p->inflight == 0) stop_now(p);
        return;
    }
    for (int i = 0; i < n; i++) job_start(p, p->fetch_worker, &jobs[i]);
    queue_fetched_free(jobs, n);
    if (n > 0) {
        p->idle_polls = 0;
        fetch_more(p);
        return;
    }
    p->idle_polls++;
    if (p->idle_polls == 1) check_lanes(p); /* idle: limits Redis lost? */
    if (p->o.once && p->inflight == 0 && p->idle_polls >= 3) {
        stop_now(p);
        return;
    }
    /* Nothing ready: look again soon, less often while idle. */
    double delay = 0.005 * (1 << (p->idle_polls < 7 ? p->idle_polls : 7));
    arm_fetch(p, delay);
}

static void on_registered(int status, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    p->registering = 0;
    if (p->shutting) return;
    if (status < 0) {
        hr_log(HR_LOG_WARN, "register failed", "error", errmsg, NULL);
        arm_fetch(p, 0.5);
        return;
    }
    p->registered = 1;
    lease_renewed(p, p->reg_gen, p->reg_issued_ms);
    fetch_more(p);
}

static void on_lanes(int status, char **lanes, int n, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    p->listing = 0;
    if (status >= 0)
        for (int i = 0; i < n; i++)
            if (worker_pool_serves(&p->pool, lanes[i]) && !lane_get(p, lanes[i]))
                lane_add(p, lanes[i]);
    queue_strv_free(lanes, n);
    if (!p->shutting) fetch_more(p);
}

static void fetch_more(wk_proc *p)
{
    if (p->draining || p->fetching || p->done) return;
    if (!queue_async_connected(p->qa)) {
        arm_fetch(p, 0.1);
        return;
    }
    if (!p->registered) {
        if (!p->registering) {
            p->registering = 1;
            p->reg_gen = p->lease_gen;
            p->reg_issued_ms = hr_mono_ms();
            queue_async_register(p->qa, p->worker_id, (int)p->o.lease_ms, on_registered, p);
        }
        return;
    }
    int free_slots = p->concurrency - p->inflight;
    if (free_slots <= 0) return; /* a finished job kicks us */
    if (p->nlanes == 0) {
        if (!p->listing) {
            p->listing = 1;
            queue_async_lanes(p->qa, on_lanes, p);
        }
        arm_fetch(p, 0.2);
        return;
    }
    const char **eligible = hr_malloc((size_t)p->nlanes * sizeof *eligible);
    int ne = 0;
    /* an open circuit is the fetch script's to refuse: fleet-wide. Each
     * fetch starts one lane further, so a weighted order cut at its cap
     * reaches every lane in turn, and processes do not all favour the
     * same first lanes. */
    unsigned turn = p->lane_turn++;
    for (int k = 0; k < p->nlanes; k++) {
        wk_lane *l = p->lanes[(turn + (unsigned)k) % (unsigned)p->nlanes];
        if (!l->acct || !l->conf_ok || l->reload) continue; /* a reload waits for it to empty */
        eligible[ne++] = l->name;
    }
    /* a few visits per lane, at most 256 entries (the script's keys), but
     * never fewer than the lanes */
    int cap = ne * 4 < 256 ? ne * 4 : ne > 256 ? ne : 256;
    const char **order = hr_malloc((size_t)(cap > 0 ? cap : 1) * sizeof *order);
    int no = ne ? worker_pool_order(&p->pool, &p->rr, free_slots, eligible, ne, order, cap) : 0;
    free(eligible);
    if (no == 0) {
        free(order);
        arm_fetch(p, 0.5);
        return;
    }
    p->fetching = 1;
    p->fetch_gen = p->lease_gen;
    p->fetch_issued_ms = hr_mono_ms();
    memcpy(p->fetch_worker, p->worker_id, sizeof p->fetch_worker);
    /* One batch sized to free capacity; the script round-robins lanes. */
    int batch = free_slots > 256 ? 256 : free_slots;
    queue_async_fetch(p->qa, p->worker_id, order, no, batch, (int)p->o.lease_ms, on_fetched, p);
    free(order);
    if (wk_seam_new_id("fetch_sent")) lease_abandon(p, p->worker_id);
}

static void on_fetch_timer(struct ev_loop *loop, ev_timer *w, int revents) { fetch_more(w->data); }

static void on_kick(struct ev_loop *loop, ev_prepare *w, int revents)
{
    ev_prepare_stop(loop, w);
    fetch_more(w->data);
}

/* check_lanes rewrites lane limits Redis lost (a budget's park is logged
 * by on_lane_change). */
static void check_lanes(wk_proc *p)
{
    redisAsyncContext *c = queue_async_redis(p->qa);
    for (int i = 0; c && i < p->nlanes; i++) {
        wk_lane *l = p->lanes[i];
        if (!l->conf_written && l->conf_ok) lane_write_conf(p, l);
    }
}

static void on_lanes_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_proc *p = w->data;
    if (!p->listing && queue_async_connected(p->qa) && !p->draining) {
        p->listing = 1;
        queue_async_lanes(p->qa, on_lanes, p);
    }
    check_lanes(p);
}

/* --------------------------------------------------- lease and status */

static void on_beat(int status, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    p->beat_pending = 0;
    if (status == 0) lease_renewed(p, p->beat_gen, p->beat_issued_ms);
    if (status == 1 && p->beat_gen == p->lease_gen) {
        hr_log(HR_LOG_WARN, "lease lost at heartbeat; registering again", "worker",
               p->worker_id, NULL);
        new_worker_id(p);
        p->registered = 0;
    }
}

static void on_beat_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_proc *p = w->data;
    if (p->registered && !p->beat_pending && queue_async_connected(p->qa)) {
        p->beat_pending = 1;
        p->beat_gen = p->lease_gen;
        p->beat_issued_ms = hr_mono_ms();
        queue_async_heartbeat(p->qa, p->worker_id, (int)p->o.lease_ms, on_beat, p);
    }
}

static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_proc *p = w->data;
    char st[160];
    if (wk_status_fd >= 0) {
        int n = snprintf(st, sizeof st, "%d %d %ld %ld %ld\n", (int)getpid(), p->inflight,
                         p->sent, p->failed, p->retried);
        /* a full pipe (the supervisor is busy) loses one report, not the loop */
        if (write(wk_status_fd, st, (size_t)n) < 0) { /* ignored */
        }
        return;
    }
    snprintf(st, sizeof st, "STATUS=in flight %d, sent %ld, failed %ld, retried %ld\nWATCHDOG=1",
             p->inflight, p->sent, p->failed, p->retried);
    hr_notify(st);
}

/* ---------------------------------------------------------- shutdown */

static void on_unregistered(int status, const char *errmsg, void *priv)
{
    wk_proc *p = priv;
    if (status < 0) hr_log(HR_LOG_WARN, "unregister failed; the reaper will do it", "error", errmsg, NULL);
    ev_break(p->loop, EVBREAK_ALL);
}

static void stop_now(wk_proc *p)
{
    if (p->done) return;
    p->done = 1;
    p->draining = 1;
    ev_timer_stop(p->loop, &p->fetch_timer);
    ev_timer_stop(p->loop, &p->drain_timer);
    ev_prepare_stop(p->loop, &p->kick);
    /* What never started goes back to the front of its lane; what started
     * moves to unknown for the reconciler. */
    if (p->registered && queue_async_connected(p->qa))
        queue_async_unregister(p->qa, p->worker_id, on_unregistered, p);
    else
        ev_break(p->loop, EVBREAK_ALL);
}

static void on_drain_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_proc *p = w->data;
    hr_log(HR_LOG_WARN, "shutdown timeout: leaving sends in flight to the reconciler", NULL);
    stop_now(p);
}

static void on_term(struct ev_loop *loop, ev_signal *w, int revents)
{
    wk_proc *p = w->data;
    if (p->draining) return;
    p->draining = 1;
    char n[16];
    snprintf(n, sizeof n, "%d", p->inflight);
    hr_log(HR_LOG_INFO, "stopping: finishing sends in flight", "inflight", n, NULL);
    ev_timer_stop(loop, &p->fetch_timer);
    if (p->inflight == 0) {
        stop_now(p);
        return;
    }
    ev_timer_set(&p->drain_timer, (double)p->o.shutdown_timeout_ms / 1000.0, 0.);
    ev_timer_start(loop, &p->drain_timer);
}

/* wait_timeout reads redis-wait-timeout: how long a batch's WAIT may take,
 * shorter than the command timeout (which would reset the connection
 * first); unset: 1 s, or half that timeout. */
static int wait_timeout(const hr_config *c, int64_t *ms, hr_err *err)
{
    int64_t cmd_ms = 5000;
    if (hr_config_int(c, "worker-redis-timeout-ms", &cmd_ms, err) != 0) return -1;
    if (!hr_config_get(c, "redis-wait-timeout", NULL)) {
        *ms = cmd_ms / 2 < 1000 ? (cmd_ms + 1) / 2 : 1000;
        return 0;
    }
    if (worker_conf_duration(c, "redis-wait-timeout", ms, err) != 0) return -1;
    if (*ms < 1 || *ms >= cmd_ms)
        return hr_err_set(err,
                          "redis-wait-timeout: expected 1 ms up to worker-redis-timeout-ms "
                          "(%lld ms), got %lld ms",
                          (long long)cmd_ms, (long long)*ms);
    return 0;
}

/* proc_settings reads what the process takes from config besides its
 * lanes: the pool's platforms and weights, the poll schedule, the retry
 * policy (at start and on SIGHUP; concurrency stays what it started
 * with). Returns 0, or -1 with err and nothing changed: a bad value is
 * never silently a default. */
static int proc_settings(wk_proc *p, const hr_config *c, hr_err *err)
{
    worker_pool_conf pool;
    worker_retry_policy retry;
    int64_t polls[HR_ARRAY_LEN(p->poll_delays_ms)];
    int npolls;
    int64_t maxlen = 100000, wait_n = -1, wait_ms = 0;
    const char *wr = hr_config_get(c, "redis-wait-replicas", "auto");
    if (strcmp(wr, "auto") != 0 && (hr_parse_i64(wr, &wait_n) != 0 || wait_n < 0 || wait_n > 64)) {
        hr_err_set(err, "redis-wait-replicas: expected auto or 0..64, got \"%s\"", wr);
        return -1;
    }
    if (worker_pool_conf_get(c, p->o.platforms, &pool, err) != 0 ||
        wait_timeout(c, &wait_ms, err) != 0 ||
        hr_config_int(c, "webhooks-stream-maxlen", &maxlen, err) != 0 ||
        (npolls = worker_poll_schedule(c, polls, (int)HR_ARRAY_LEN(polls), err)) < 0 ||
        worker_conf_duration(c, "retry-base", &retry.base_ms, err) != 0 ||
        worker_conf_duration(c, "retry-cap", &retry.cap_ms, err) != 0 ||
        worker_conf_duration(c, "reauth-hold", &retry.hold_ms, err) != 0)
        return -1;
    if (memcmp(&p->pool, &pool, sizeof pool) != 0) memset(&p->rr, 0, sizeof p->rr);
    p->pool = pool;
    memcpy(p->poll_delays_ms, polls, sizeof polls);
    p->npolls = npolls;
    p->retry = retry;
    p->stream_maxlen = maxlen;
    p->wait_conf = (int)wait_n;
    p->wait_timeout_ms = wait_ms;
    if (wait_n >= 0) p->wait_replicas = (int)wait_n;
    return 0;
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    wk_proc *p = w->data;
    if (!p->o.config_path) return;
    hr_err err = {0};
    hr_config *c = wk_config_reload(&p->o, &err);
    if (c && proc_settings(p, c, &err) != 0) {
        hr_config_free(c);
        c = NULL;
    }
    if (!c) {
        hr_log(HR_LOG_ERROR, "config reload failed, keeping the old one", "error", err.msg, NULL);
        return;
    }
    /* Limits and budgets apply at once. Lanes with sends in flight keep the
     * account those sends borrow until they finish, then reload it;
     * meanwhile nothing more is fetched for them (on a busy lane they would
     * never all finish). Accounts and lane settings are copies, so the old
     * config can go now. */
    hr_config_free(p->owned_config);
    p->owned_config = c;
    p->o.config = c;
    for (int i = 0; i < p->nlanes; i++) {
        wk_lane *l = p->lanes[i];
        if (l->inflight > 0) {
            l->reload = 1;
            lane_limits_reload(p, l);
        } else {
            lane_reload(p, l);
        }
    }
    hr_log(HR_LOG_INFO, "config reloaded", NULL);
}

/* wait_replicas_set: batches of attempt marks wait for n replicas now */
static void wait_replicas_set(wk_proc *p, int n)
{
    if (n == p->wait_replicas) return;
    char v[16];
    snprintf(v, sizeof v, "%d", n);
    hr_log(HR_LOG_INFO, "attempt marks wait for redis replicas", "replicas", v, NULL);
    p->wait_replicas = n;
}

/* on_repl_info: INFO replication's answer: with redis-wait-replicas auto,
 * batches wait for the replicas in sync now (a "slaveN:" line with
 * state=online: one still loading its first copy cannot acknowledge). */
static void on_repl_info(redisAsyncContext *c, void *reply, void *priv)
{
    wk_proc *p = priv;
    redisReply *r = reply;
    if (p->shutting || p->wait_conf >= 0 || !r || r->type != REDIS_REPLY_STRING)
        return; /* as it was: the next check asks again */
    int n = 0;
    for (const char *l = r->str; l;) {
        const char *eol = strchr(l, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        if (strncmp(l, "slave", 5) == 0 && memmem(l, len, ",state=online,", 14)) n++;
        l = eol ? eol + 1 : NULL;
    }
    wait_replicas_set(p, n);
}

/* repl_check asks Redis how many replicas it has (auto), at connect and
 * every 10 s: a replica added or lost changes what batches wait for. */
static void repl_check(wk_proc *p)
{
    redisAsyncContext *c = queue_async_redis(p->qa);
    if (p->wait_conf < 0 && c) redisAsyncCommand(c, on_repl_info, p, "INFO replication");
}

static void on_repl_timer(struct ev_loop *loop, ev_timer *w, int revents) { repl_check(w->data); }

/* on_ready_msg: promote and enqueue publish a lane's name on {NS}:readych
 * when it gets ready jobs: an idle worker that serves it fetches now, not
 * at the end of its idle backoff (up to 640 ms), and learns a new lane
 * before its next listing. */
static void on_ready_msg(redisAsyncContext *ac, void *reply, void *priv)
{
    wk_proc *p = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || p->shutting || p->draining)
        return;
    redisReply *kind = r->element[0], *lane = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0 ||
        lane->type != REDIS_REPLY_STRING || !worker_pool_serves(&p->pool, lane->str))
        return;
    if (!lane_get(p, lane->str)) lane_add(p, lane->str);
    if (p->idle_polls > 0 && !p->fetching) {
        p->idle_polls = 0;
        arm_fetch(p, 0.);
    }
}

static void on_sub_state(queue_async *qa, int connected, void *priv)
{
    redisAsyncContext *ac = connected ? queue_async_redis(qa) : NULL;
    if (ac) redisAsyncCommand(ac, on_ready_msg, priv, "SUBSCRIBE {%s}:readych", queue_async_ns(qa));
}

static void on_qa_state(queue_async *qa, int connected, void *priv)
{
    wk_proc *p = priv;
    if (p->shutting) return;
    hr_log(connected ? HR_LOG_INFO : HR_LOG_WARN, connected ? "redis connected" : "redis lost",
           NULL);
    if (!connected) {
        p->lost_redis = 1;
        return;
    }
    if (p->lost_redis && p->registered) {
        /* Operations that failed meanwhile left jobs in our in-flight
         * record: start afresh under a new id; the old lease runs out and
         * the reaper settles them (unsent ones back to their lanes). Jobs
         * still running keep acknowledging under the id they were
         * fetched with. */
        new_worker_id(p);
        p->registered = 0;
        for (int i = 0; i < p->nlanes; i++) p->lanes[i]->conf_written = 0;
    }
    p->lost_redis = 0;
    repl_check(p); /* a failover's new master may have other replicas */
    fetch_more(p);
}

int worker_process_main(const worker_opts *o)
{
    wk_seam_init();
    signal(SIGPIPE, SIG_IGN);
    wk_proc *p = hr_calloc(1, sizeof *p);
    p->o = *o;
    if (p->o.lease_ms <= 0) p->o.lease_ms = 30000;
    if (p->o.shutdown_timeout_ms <= 0) p->o.shutdown_timeout_ms = 10000;
    p->loop = ev_default_loop(0);
    hr_err err = {0};
    if (proc_settings(p, o->config, &err) != 0) {
        hr_log(HR_LOG_ERROR, "worker: config", "error", err.msg, NULL);
        free(p);
        return 2;
    }
    p->concurrency = o->concurrency > 0 ? o->concurrency
                     : p->pool.concurrency > 0 ? p->pool.concurrency
                                               : 64;
    hr_err warn = {0};
    p->secret = hr_secret_load(o->config, &warn, &err); /* NULL: emails refused */
    if (warn.code) hr_log(HR_LOG_WARN, "worker: secret file", "warning", warn.msg, NULL);
    new_worker_id(p);

    queue_opts qo = {.url = hr_config_get(o->config, "redis-url", NULL),
                     .ns = hr_config_get(o->config, "namespace", "herald")};
    p->qa = queue_async_new(p->loop, &qo, &err);
    if (!p->qa) {
        hr_log(HR_LOG_ERROR, "worker: redis", "error", err.msg, NULL);
        free(p->secret);
        free(p);
        return 1;
    }
    queue_async_on_state(p->qa, on_qa_state, p);
    queue_async_on_lane_change(p->qa, on_lane_change, p);
    /* its own connection: a subscribed one takes no other command */
    p->sub = queue_async_new(p->loop, &qo, &err);
    if (p->sub) queue_async_on_state(p->sub, on_sub_state, p);
    else hr_log(HR_LOG_WARN, "worker: no ready-lane subscription; polling", "error", err.msg, NULL);
    /* A Redis that stops answering without closing the socket would hold
     * fetches, attempts and acks for ever: past the timeout the connection
     * is reset and the worker goes the way it goes when Redis restarts. */
    int64_t redis_ms = 0;
    if (hr_config_int(o->config, "worker-redis-timeout-ms", &redis_ms, &err) != 0) {
        hr_log(HR_LOG_ERROR, "worker: config", "error", err.msg, NULL);
        queue_async_free(p->qa);
        queue_async_free(p->sub);
        free(p->secret);
        free(p);
        return 2;
    }
    queue_async_set_timeout(p->qa, (int)redis_ms);
    p->http = wk_http_new(p->loop, p->concurrency + 16);

    ev_timer_init(&p->fetch_timer, on_fetch_timer, 0., 0.);
    ev_timer_init(&p->beat_timer, on_beat_timer, 0., (double)p->o.lease_ms / 3000.0);
    ev_timer_init(&p->lanes_timer, on_lanes_timer, 0., 2.0);
    ev_timer_init(&p->status_timer, on_status_timer, 0., 1.0);
    ev_timer_init(&p->drain_timer, on_drain_timer, 0., 0.);
    ev_timer_init(&p->repl_timer, on_repl_timer, 0., 10.);
    p->repl_timer.data = p;
    ev_timer_again(p->loop, &p->repl_timer);
    ev_prepare_init(&p->kick, on_kick);
    ev_prepare_init(&p->ack_flush, on_ack_flush);
    ev_prepare_init(&p->att_flush, on_att_flush);
    p->ack_flush.data = p->att_flush.data = p;
    p->fetch_timer.data = p->beat_timer.data = p->lanes_timer.data = p;
    p->status_timer.data = p->drain_timer.data = p->kick.data = p;
    ev_timer_again(p->loop, &p->beat_timer);
    ev_timer_again(p->loop, &p->lanes_timer);
    int64_t wd = hr_notify_watchdog_ms();
    p->status_timer.repeat = wd ? (double)wd / 2e3 : 1.0;
    ev_timer_again(p->loop, &p->status_timer);
    ev_signal_init(&p->sig_term, on_term, SIGTERM);
    ev_signal_init(&p->sig_int, on_term, SIGINT);
    ev_signal_init(&p->sig_hup, on_hup, SIGHUP);
    p->sig_term.data = p->sig_int.data = p->sig_hup.data = p;
    ev_signal_start(p->loop, &p->sig_term);
    ev_signal_start(p->loop, &p->sig_int);
    ev_signal_start(p->loop, &p->sig_hup);
    if (wk_status_fd < 0) hr_notify("READY=1"); /* else the supervisor speaks */
    arm_fetch(p, 0.);
    /* A line per send written on its own was a system call per send: the
     * loop's lines go out together before it waits (lowest priority: after
     * the other prepare watchers have logged). */
    ev_prepare_init(&p->log_flush, on_log_flush);
    ev_set_priority(&p->log_flush, EV_MINPRI);
    ev_prepare_start(p->loop, &p->log_flush);
    hr_log_batch(1);

    ev_run(p->loop, 0);

    hr_log_batch(0);
    ev_prepare_stop(p->loop, &p->log_flush);

    /* Whatever still runs is failed through its callback, which only lets
     * go of its job now: HTTP first, then Redis. */
    p->shutting = 1;
    ev_prepare_stop(p->loop, &p->ack_flush);
    ev_prepare_stop(p->loop, &p->att_flush);
    jobq_release(&p->ackq);
    jobq_release(&p->attq); /* never attempted: back to their lanes */
    for (wk_job *j = p->jobs; j; j = j->next)
        if (j->req && !j->req->running) {
            wk_req_free(j->req);
            j->req = NULL;
        }
    wk_http_free(p->http);
    p->http = NULL;
    queue_async_free(p->qa);
    if (p->sub) {
        queue_async_on_state(p->sub, NULL, NULL);
        queue_async_free(p->sub);
    }
    while (p->jobs) {
        wk_job *j = p->jobs;
        p->jobs = j->next;
        job_free(j);
    }
    ev_timer_stop(p->loop, &p->beat_timer);
    ev_timer_stop(p->loop, &p->lanes_timer);
    ev_timer_stop(p->loop, &p->status_timer);
    ev_timer_stop(p->loop, &p->fetch_timer);
    ev_timer_stop(p->loop, &p->drain_timer);
    ev_timer_stop(p->loop, &p->repl_timer);
    ev_prepare_stop(p->loop, &p->kick);
    ev_signal_stop(p->loop, &p->sig_term);
    ev_signal_stop(p->loop, &p->sig_int);
    ev_signal_stop(p->loop, &p->sig_hup);
    for (int i = 0; i < p->nlanes; i++) lane_free(p->lanes[i]);
    free(p->lanes);
    char sent[24];
    snprintf(sent, sizeof sent, "%ld", p->sent);
    hr_log(HR_LOG_INFO, "worker stopped", "sent", sent, NULL);
    int rc = p->exit_status;
    hr_config_free(p->owned_config);
    free(p->secret);
    free(p);
    return rc;
}
