/* async.c: the queue on a libev loop: hiredis async with its libev adapter,
 * reconnecting with exponential backoff. It shares argv builders and reply
 * parsers with the sync half (ops.c); only transport and lifetimes live
 * here. Every request's callback runs exactly once. */
#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum req_kind { RK_STATUS, RK_FETCH, RK_ACK, RK_LANES, RK_ATTEMPTS, RK_RAW };

typedef struct qreq {
    struct queue_async *qa;
    enum req_kind kind;
    int script; /* -1: a plain command */
    int retried;
    queue_argv argv;
    queue_status_cb *status_cb;
    queue_fetch_cb *fetch_cb;
    queue_lanes_cb *lanes_cb;
    queue_reply_cb *reply_cb;
    const char *reload_src; /* raw: the script to load again on NOSCRIPT */
    char *fmt;              /* raw with reload_src: the command, kept to resend */
    size_t fmt_len;
    void *priv;
    char **lanes; /* fetch: lane names by index */
    int nlanes;
    int *results; /* ack */
    int *order;   /* ack: item index per grouped position (qo_build_ack) */
    int n;
    char errmsg[HR_ERRLEN];
    struct qreq *next; /* on the deferred-failure list */
    /* awaiting its reply, when qa has a command timeout: sent then, on
     * qa's list of commands in flight (oldest first) */
    int timed;
    ev_tstamp sent;
    struct qreq *tprev, *tnext;
} qreq;

struct queue_async {
    struct ev_loop *loop;
    redisAsyncContext *ac;
    queue_url url;
    char ns[64];
    int connected;
    int backoff_ms;
    int authing;              /* connected, AUTH sent, its answer not in yet */
    int fail_streak;          /* connections failed in a row (connect_failed) */
    ev_tstamp fail_logged_at; /* when connect_failed last logged */
    ev_timer reconnect;
    ev_timer failer; /* runs deferred failures outside the caller's stack */
    qreq *failq;
    void (*state_cb)(queue_async *, int, void *);
    void *state_priv;
    queue_lane_change_cb *lane_cb; /* fetch: a lane parked or resumed */
    void *lane_priv;
    int depth; /* > 0 while our callbacks run */
    int in_cb; /* > 0 while hiredis runs one of our callbacks */
    int free_pending;
    ev_timer closer; /* completes a free asked for from inside a callback */
    /* The command timeout (queue_async_set_timeout). Redis answers in
     * order, so the oldest command in flight is the one late: one timer,
     * armed for its deadline and moved only when it fires. */
    double timeout_s; /* 0: none */
    qreq *oldest, *newest;
    ev_timer deadline;
    int timed_out; /* while a reset for it fails the commands in flight */
    char timeout_msg[64];
    ev_tstamp connect_at; /* when the connection being made was started */
    int64_t polls[QUEUE_POLLS_MAX]; /* queue_async_set_polls */
    int npolls;
};

static void start_connect(queue_async *qa);
static void on_closer(struct ev_loop *loop, ev_timer *w, int revents);

static void req_free(qreq *r)
{
    qa_release(&r->argv);
    free(r->fmt);
    queue_strv_free(r->lanes, r->nlanes);
    free(r->order);
    free(r);
}

static void finish_fail(qreq *r, const char *msg)
{
    queue_async *qa = r->qa;
    qa->depth++;
    switch (r->kind) {
    case RK_STATUS:
    case RK_ACK:
    case RK_ATTEMPTS:
        if (r->status_cb) r->status_cb(-1, msg, r->priv);
        break;
    case RK_FETCH:
        if (r->fetch_cb) r->fetch_cb(-1, NULL, 0, msg, r->priv);
        break;
    case RK_LANES:
        if (r->lanes_cb) r->lanes_cb(-1, NULL, 0, msg, r->priv);
        break;
    case RK_RAW:
        r->reply_cb(NULL, msg, r->priv);
        break;
    }
    qa->depth--;
    req_free(r);
}

static void defer_fail(qreq *r, const char *msg)
{
    queue_async *qa = r->qa;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    r->next = qa->failq;
    qa->failq = r;
    ev_timer_stop(qa->loop, &qa->failer);
    ev_timer_set(&qa->failer, 0., 0.);
    ev_timer_start(qa->loop, &qa->failer);
}

static void really_free(queue_async *qa)
{
    ev_timer_stop(qa->loop, &qa->reconnect);
    ev_timer_stop(qa->loop, &qa->deadline);
    ev_timer_stop(qa->loop, &qa->closer);
    ev_timer_stop(qa->loop, &qa->failer);
    while (qa->failq) {
        qreq *r = qa->failq;
        qa->failq = r->next;
        finish_fail(r, r->errmsg);
    }
    free(qa);
}

static void maybe_free(queue_async *qa)
{
    if (qa->free_pending && qa->depth == 0 && qa->in_cb == 0 && !qa->ac) really_free(qa);
}

static void on_failer(struct ev_loop *loop, ev_timer *w, int revents)
{
    queue_async *qa = w->data;
    qa->depth++;
    while (qa->failq) {
        qreq *r = qa->failq;
        qa->failq = r->next;
        finish_fail(r, r->errmsg);
    }
    qa->depth--;
    maybe_free(qa);
}

static void send_req(queue_async *qa, qreq *r);

/* timed_add puts r, just sent, last on the list of commands awaiting a
 * reply; timed_del takes it off when its reply (or failure) comes. */
static void timed_add(queue_async *qa, qreq *r)
{
    if (qa->timeout_s <= 0) return;
    r->timed = 1;
    r->sent = ev_now(qa->loop);
    r->tnext = NULL;
    r->tprev = qa->newest;
    if (qa->newest) qa->newest->tnext = r;
    else qa->oldest = r;
    qa->newest = r;
    if (!ev_is_active(&qa->deadline)) {
        ev_timer_set(&qa->deadline, qa->timeout_s, 0.);
        ev_timer_start(qa->loop, &qa->deadline);
    }
}

static void timed_del(queue_async *qa, qreq *r)
{
    if (!r->timed) return;
    r->timed = 0;
    if (r->tprev) r->tprev->tnext = r->tnext;
    else qa->oldest = r->tnext;
    if (r->tnext) r->tnext->tprev = r->tprev;
    else qa->newest = r->tprev;
}

/* on_deadline: the oldest command in flight has had no reply in time:
 * Redis stalled without closing the connection (SIGSTOP, a partition).
 * Reset it, which fails every command in flight as a lost connection
 * would; otherwise wait for the oldest's deadline. A connection not made
 * in time (a black-holed address drops the SYNs, and the kernel would try
 * for minutes) is dropped and made again the same way. */
static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    queue_async *qa = w->data;
    int connecting = !qa->connected && qa->ac;
    if (!qa->oldest && !connecting) return; /* all answered: the next command starts it */
    double left = (qa->oldest ? qa->oldest->sent : qa->connect_at) + qa->timeout_s - ev_now(loop);
    if (left > 0) {
        ev_timer_set(w, left, 0.);
        ev_timer_start(loop, w);
        return;
    }
    hr_log(HR_LOG_WARN,
           qa->oldest ? "redis: no reply in time, resetting the connection"
                      : "redis: no connection in time, connecting again",
           "error", qa->timeout_msg, NULL);
    qa->timed_out = 1;
    queue_async_reset(qa);
    qa->timed_out = 0;
    if (qa->oldest || (!qa->connected && qa->ac)) { /* not reset (cannot be, from here) */
        ev_timer_set(w, qa->timeout_s, 0.);
        ev_timer_start(loop, w);
    }
}

static void on_reply_body(redisAsyncContext *c, redisReply *rep, qreq *r);

/* arm_connect_deadline: a connection is being made; with a timeout, the
 * deadline timer looks at it (on_deadline). */
static void arm_connect_deadline(queue_async *qa)
{
    if (qa->timeout_s <= 0 || qa->connected || !qa->ac || ev_is_active(&qa->deadline)) return;
    ev_timer_set(&qa->deadline, qa->timeout_s, 0.);
    ev_timer_start(qa->loop, &qa->deadline);
}

static void on_reply(redisAsyncContext *c, void *reply, void *priv)
{
    qreq *r = priv;
    queue_async *qa = r->qa;
    qa->in_cb++;
    timed_del(qa, r);
    on_reply_body(c, reply, r);
    qa->in_cb--;
    maybe_free(qa);
}

static void on_reply_body(redisAsyncContext *c, redisReply *rep, qreq *r)
{
    queue_async *qa = r->qa;
    if (!rep) {
        finish_fail(r, qa->free_pending ? "queue: handle closed"
                       : qa->timed_out  ? qa->timeout_msg
                                        : "redis: connection lost");
        return;
    }
    const char *src = r->script >= 0 ? queue_scripts[r->script].src : r->reload_src;
    if (src && !r->retried && rep->type == REDIS_REPLY_ERROR &&
        strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        /* the script cache was flushed while Redis stayed up (SCRIPT FLUSH,
         * a restart without it): load it and resend, once; the connection
         * keeps order, so the load runs first (and before anything sent
         * later). The callback runs once, with the resend's answer. */
        r->retried = 1;
        redisAsyncCommand(c, NULL, NULL, "SCRIPT LOAD %s", src);
        send_req(qa, r);
        return;
    }
    if (r->kind == RK_RAW) {
        qa->depth++;
        if (rep->type == REDIS_REPLY_ERROR) r->reply_cb(NULL, rep->str, r->priv);
        else r->reply_cb(rep, NULL, r->priv);
        qa->depth--;
        req_free(r);
        return;
    }
    hr_err err = {0};
    qa->depth++;
    if (rep->type == REDIS_REPLY_ERROR) {
        hr_err_set(&err, "redis: %s", rep->str);
        qa->depth--;
        finish_fail(r, err.msg);
        return;
    }
    switch (r->kind) {
    case RK_STATUS: {
        long long v = -1;
        if (rep->type == REDIS_REPLY_INTEGER)
            v = rep->integer;
        else if (rep->type == REDIS_REPLY_STATUS)
            v = 0;
        else if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                 rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer >= 0)
            v = 0; /* reap: {requeued, unknown} */
        else
            hr_err_set(&err, "redis: unexpected reply");
        if (r->status_cb) r->status_cb(v < 0 ? -1 : (int)v, err.code ? err.msg : NULL, r->priv);
        break;
    }
    case RK_ACK: {
        int v = qo_parse_ack(rep, r->n, r->order, r->results, &err);
        if (r->status_cb) r->status_cb(v, err.code ? err.msg : NULL, r->priv);
        break;
    }
    case RK_FETCH: {
        queue_fetched *f = NULL;
        int n = 0;
        int st = qo_parse_fetch(rep, (const char *const *)r->lanes, r->nlanes, &f, &n, &err);
        if (st == 0 && r->qa->lane_cb) {
            queue_lane_change *ch;
            int nch = qo_fetch_changes(rep, &ch);
            for (int i = 0; i < nch; i++) r->qa->lane_cb(&ch[i], r->qa->lane_priv);
            free(ch);
        }
        if (r->fetch_cb) r->fetch_cb(st, f, n, err.code ? err.msg : NULL, r->priv);
        else queue_fetched_free(f, n);
        break;
    }
    case RK_ATTEMPTS: {
        int ok = rep->type == REDIS_REPLY_ARRAY && rep->elements == (size_t)r->n;
        for (int i = 0; ok && i < r->n; i++) {
            ok = rep->element[i]->type == REDIS_REPLY_INTEGER;
            if (ok) r->results[i] = (int)rep->element[i]->integer;
        }
        if (r->status_cb) r->status_cb(ok ? 0 : -1, ok ? NULL : "redis: unexpected reply", r->priv);
        break;
    }
    case RK_RAW: /* answered above */
        break;
    case RK_LANES: {
        char **v = hr_calloc(rep->elements + 1, sizeof *v);
        for (size_t i = 0; i < rep->elements; i++)
            v[i] = hr_strndup(rep->element[i]->str, rep->element[i]->len);
        if (r->lanes_cb)
            r->lanes_cb(0, v, (int)rep->elements, NULL, r->priv);
        else
            queue_strv_free(v, (int)rep->elements);
        break;
    }
    }
    qa->depth--;
    req_free(r);
}

/* sendable: whether r may go out now; if not, it fails (deferred). */
static int sendable(queue_async *qa, qreq *r)
{
    /* while AUTH is out, commands queue behind it on the connection (a
     * refused AUTH drops it, failing them as a lost connection does) */
    if ((qa->connected || qa->authing) && qa->ac && !qa->free_pending) return 1;
    defer_fail(r, qa->free_pending ? "queue: handle closed" : "redis: not connected");
    return 0;
}

/* sent: r was handed to hiredis (rc its answer) */
static void sent(queue_async *qa, qreq *r, int rc)
{
    if (rc != REDIS_OK) defer_fail(r, "redis: cannot send command");
    else timed_add(qa, r);
}

static void send_req(queue_async *qa, qreq *r)
{
    if (!sendable(qa, r)) return;
    if (r->fmt) sent(qa, r, redisAsyncFormattedCommand(qa->ac, on_reply, r, r->fmt, r->fmt_len));
    else
        sent(qa, r,
             redisAsyncCommandArgv(qa->ac, on_reply, r, r->argv.argc,
                                   (const char **)r->argv.argv, r->argv.lens));
}

static qreq *req_new(queue_async *qa, enum req_kind kind, int script, void *priv)
{
    qreq *r = hr_calloc(1, sizeof *r);
    r->qa = qa;
    r->kind = kind;
    r->script = script;
    r->priv = priv;
    qa_init(&r->argv);
    return r;
}

/* ------------------------------------------------------- connection */

static void schedule_reconnect(queue_async *qa)
{
    if (qa->free_pending) return;
    qa->backoff_ms = qa->backoff_ms ? qa->backoff_ms * 2 : 50;
    if (qa->backoff_ms > 2000) qa->backoff_ms = 2000;
    ev_timer_set(&qa->reconnect, qa->backoff_ms / 1000.0, 0.);
    ev_timer_start(qa->loop, &qa->reconnect);
}

/* connect_failed logs why Redis cannot be reached: the first failure of a
 * run of them, then at most every 30 s (a worker retries every 2 s at
 * most; an operator must see why nothing happens, not a line per try). */
static void connect_failed(queue_async *qa, const char *why)
{
    ev_tstamp now = ev_now(qa->loop);
    if (qa->fail_streak++ == 0 || now - qa->fail_logged_at >= 30.0) {
        char tries[24];
        snprintf(tries, sizeof tries, "%d", qa->fail_streak);
        hr_log(HR_LOG_WARN, "redis unreachable; retrying", "error", why && *why ? why : "unknown",
               "#attempts", tries, NULL);
        qa->fail_logged_at = now;
    }
}

/* became_connected: the connection is usable (made, and authenticated
 * when a password is set) */
static void became_connected(queue_async *qa)
{
    qa->authing = 0;
    qa->connected = 1;
    qa->backoff_ms = 0;
    qa->fail_streak = 0;
    hr_log(HR_LOG_INFO, "redis connected", NULL);
    if (qa->state_cb && !qa->free_pending) {
        qa->depth++;
        qa->state_cb(qa, 1, qa->state_priv);
        qa->depth--;
    }
    /* a free asked for in state_cb completes on the closer timer */
}

/* on_auth: the connection counts as made only once AUTH is accepted. A
 * refused one (wrong password, unknown user) would leave every command
 * failing with NOAUTH: it is said (connect_failed) and the connection
 * dropped, to be made again with backoff. */
static void on_auth(redisAsyncContext *c, void *reply, void *priv)
{
    queue_async *qa = priv;
    redisReply *r = reply;
    if (!r) return; /* the connection went first */
    if (r->type == REDIS_REPLY_ERROR) {
        qa->authing = 0;
        connect_failed(qa, r->str);
        redisAsyncDisconnect(c);
        return;
    }
    qa->in_cb++;
    became_connected(qa);
    qa->in_cb--;
}

static void on_connect(const redisAsyncContext *c, int status)
{
    queue_async *qa = c->data;
    qa->in_cb++;
    if (status != REDIS_OK) {
        connect_failed(qa, c->errstr);
        qa->ac = NULL; /* hiredis frees it after this callback */
        if (!qa->free_pending) schedule_reconnect(qa);
        qa->in_cb--;
        maybe_free(qa);
        return;
    }
    if (!qa->url.pass[0]) became_connected(qa);
    else qa->authing = 1; /* on_auth makes it connected */
    qa->in_cb--;
}

static void on_disconnect(const redisAsyncContext *c, int status)
{
    queue_async *qa = c->data;
    int was = qa->connected;
    qa->connected = 0;
    qa->authing = 0;
    qa->ac = NULL;
    if (qa->free_pending) {
        maybe_free(qa);
        return;
    }
    qa->in_cb++;
    if (was) {
        hr_log(HR_LOG_WARN, "redis connection lost", "error", c->errstr, NULL);
        if (qa->state_cb) {
            qa->depth++;
            qa->state_cb(qa, 0, qa->state_priv);
            qa->depth--;
        }
    }
    if (!qa->free_pending) schedule_reconnect(qa);
    qa->in_cb--;
}

static void on_reconnect_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    start_connect(w->data);
}

/* on_role drops a connection that reached a replica (the sentinels had not
 * finished a failover); the reconnect asks them again. */
static void on_role(redisAsyncContext *c, void *reply, void *priv)
{
    redisReply *r = reply;
    (void)priv;
    if (!r) return;
    int master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(r->element[0]->str, "master") == 0;
    if (!master) {
        hr_log(HR_LOG_WARN, "redis sentinel: connected to a replica; asking again", NULL);
        redisAsyncDisconnect(c);
    }
}

static void start_connect(queue_async *qa)
{
    if (qa->url.sentinel) {
        /* blocks the loop for at most a few hundred ms per dead sentinel,
         * and only while disconnected */
        hr_err e = {0};
        if (queue_sentinel_resolve(&qa->url, &e) < 0) {
            hr_log(HR_LOG_WARN, "redis sentinel", "error", e.msg, NULL);
            schedule_reconnect(qa);
            return;
        }
    }
    redisAsyncContext *ac = qa->url.unix_socket ? redisAsyncConnectUnix(qa->url.path)
                                                : redisAsyncConnect(qa->url.host, qa->url.port);
    if (!ac || ac->err) {
        connect_failed(qa, ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        schedule_reconnect(qa);
        return;
    }
    ac->data = qa;
    qa->ac = ac;
    qa->connect_at = ev_now(qa->loop);
    arm_connect_deadline(qa);
    redisLibevAttach(qa->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* queued now, sent first once connected */
    if (qa->url.pass[0]) {
        if (qa->url.user[0])
            redisAsyncCommand(ac, on_auth, qa, "AUTH %s %s", qa->url.user, qa->url.pass);
        else
            redisAsyncCommand(ac, on_auth, qa, "AUTH %s", qa->url.pass);
    }
    if (qa->url.db) redisAsyncCommand(ac, NULL, NULL, "SELECT %d", qa->url.db);
    if (qa->url.sentinel) redisAsyncCommand(ac, on_role, qa, "ROLE");
    for (int i = 0; i < QS_COUNT; i++)
        redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", queue_scripts[i].src);
}

queue_async *queue_async_new(struct ev_loop *loop, const queue_opts *o, hr_err *err)
{
    queue_scripts_init();
    queue_async *qa = hr_calloc(1, sizeof *qa);
    qa->loop = loop;
    const char *url = o && o->url ? o->url : getenv("HERALD_REDIS_URL");
    if (!url) url = "redis://127.0.0.1:6379";
    if (qo_check_ns(o && o->ns ? o->ns : "herald", qa->ns, sizeof qa->ns, err) < 0 ||
        queue_url_parse(url, &qa->url, err) < 0) {
        free(qa);
        return NULL;
    }
    ev_timer_init(&qa->reconnect, on_reconnect_timer, 0., 0.);
    qa->reconnect.data = qa;
    ev_timer_init(&qa->failer, on_failer, 0., 0.);
    qa->failer.data = qa;
    ev_timer_init(&qa->closer, on_closer, 0., 0.);
    qa->closer.data = qa;
    ev_timer_init(&qa->deadline, on_deadline, 0., 0.);
    qa->deadline.data = qa;
    start_connect(qa);
    return qa;
}

static void do_free(queue_async *qa)
{
    ev_timer_stop(qa->loop, &qa->reconnect);
    if (qa->ac) {
        redisAsyncContext *ac = qa->ac;
        qa->ac = NULL;
        /* pending replies come back NULL and fail their requests; the depth
         * keeps those callbacks from freeing qa under our feet */
        qa->depth++;
        redisAsyncFree(ac);
        qa->depth--;
    }
    maybe_free(qa);
}

static void on_closer(struct ev_loop *loop, ev_timer *w, int revents)
{
    do_free(w->data);
}

void queue_async_free(queue_async *qa)
{
    if (!qa || qa->free_pending) return;
    qa->free_pending = 1;
    if (qa->in_cb) {
        /* inside one of our hiredis callbacks: hiredis still uses its context
         * after we return, so the free happens on the next loop turn */
        ev_timer_set(&qa->closer, 0., 0.);
        ev_timer_start(qa->loop, &qa->closer);
        return;
    }
    do_free(qa);
}

void queue_async_reset(queue_async *qa)
{
    if (!qa->ac || qa->free_pending || qa->in_cb || qa->depth) return;
    redisAsyncContext *ac = qa->ac;
    int was = qa->connected;
    /* hiredis calls on_disconnect (which schedules the reconnect) only for
     * a context it had connected */
    int told = (ac->c.flags & REDIS_CONNECTED) != 0;
    /* the failed callbacks see the handle down, so none sends on the
     * context being freed (the caller logs why it resets) */
    qa->connected = 0;
    qa->authing = 0;
    qa->depth++;
    redisAsyncFree(ac);
    if (!told) {
        qa->ac = NULL;
        schedule_reconnect(qa);
    }
    if (was && qa->state_cb) qa->state_cb(qa, 0, qa->state_priv);
    qa->depth--;
}

void queue_async_set_timeout(queue_async *qa, int timeout_ms)
{
    qa->timeout_s = timeout_ms > 0 ? timeout_ms / 1000.0 : 0;
    snprintf(qa->timeout_msg, sizeof qa->timeout_msg, "redis: no reply within %d ms",
             timeout_ms);
    arm_connect_deadline(qa); /* the first connection's */
}

void queue_async_set_polls(queue_async *qa, const int64_t *delays_ms, int n)
{
    qa->npolls = qo_copy_polls(qa->polls, delays_ms, n);
}

int queue_async_connected(const queue_async *qa) { return qa->connected; }
const char *queue_async_ns(const queue_async *qa) { return qa->ns; }

void queue_async_on_state(queue_async *qa, void (*cb)(queue_async *, int, void *), void *priv)
{
    qa->state_cb = cb;
    qa->state_priv = priv;
}

void queue_async_on_lane_change(queue_async *qa, queue_lane_change_cb *cb, void *priv)
{
    qa->lane_cb = cb;
    qa->lane_priv = priv;
}

struct redisAsyncContext *queue_async_redis(queue_async *qa)
{
    return qa->connected ? qa->ac : NULL;
}

/* ------------------------------------------------------- operations */

static void status_req(queue_async *qa, qreq *r, queue_status_cb *cb)
{
    r->status_cb = cb;
    send_req(qa, r);
}

void queue_async_register(queue_async *qa, const char *worker, int lease_ms,
                          queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_REGISTER, priv);
    qo_build_register(qa->ns, worker, lease_ms, 0, &r->argv);
    status_req(qa, r, cb);
}

void queue_async_heartbeat(queue_async *qa, const char *worker, int lease_ms,
                           queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_REGISTER, priv);
    qo_build_register(qa->ns, worker, lease_ms, 1, &r->argv);
    status_req(qa, r, cb);
}

void queue_async_fetch(queue_async *qa, const char *worker, const char *const *lanes,
                       int nlanes, int max, int lease_ms, queue_fetch_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_FETCH, QS_FETCH, priv);
    r->fetch_cb = cb;
    r->lanes = hr_calloc((size_t)nlanes + 1, sizeof *r->lanes);
    for (int i = 0; i < nlanes; i++) r->lanes[i] = hr_strdup(lanes[i]);
    r->nlanes = nlanes;
    qo_build_fetch(qa->ns, worker, lanes, nlanes, max, lease_ms, &r->argv);
    send_req(qa, r);
}

void queue_async_attempt(queue_async *qa, const char *worker, const char *ukh,
                         queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_ATTEMPT, priv);
    qo_build_attempt(qa->ns, worker, ukh, &r->argv);
    status_req(qa, r, cb);
}

void queue_async_attempts(queue_async *qa, const char *worker, const char *const *ukhs,
                          const char *const *lanes, int n, int *results, queue_status_cb *cb,
                          void *priv)
{
    qreq *r = req_new(qa, RK_ATTEMPTS, QS_ATTEMPT, priv);
    r->status_cb = cb;
    r->results = results;
    r->n = n;
    if (n < 1 || n > QUEUE_ATTEMPT_MAX) {
        defer_fail(r, "attempt: batch size out of range");
        return;
    }
    qa_evalsha(&r->argv, QS_ATTEMPT, 2);
    qa_pushkey(&r->argv, qa->ns, "workers");
    qa_pushkey(&r->argv, qa->ns, "inflight:%s", worker);
    qa_pushs(&r->argv, worker);
    for (int i = 0; i < n; i++) {
        qa_pushs(&r->argv, ukhs[i]);
        qa_pushs(&r->argv, lanes[i]);
    }
    send_req(qa, r);
}

void queue_async_circuit(queue_async *qa, const char *lane, queue_circuit_op op, int k,
                         int64_t open_ms, int64_t max_ms, queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_CIRCUIT, priv);
    if (!qo_valid_lane(lane)) {
        r->status_cb = cb;
        defer_fail(r, "circuit: not a lane");
        return;
    }
    qo_build_circuit(qa->ns, lane, op, k, open_ms, max_ms, &r->argv);
    status_req(qa, r, cb);
}

void queue_async_ack(queue_async *qa, const char *worker, const queue_ack_item *items, int n,
                     int *results, queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_ACK, QS_ACK, priv);
    r->status_cb = cb;
    r->results = results;
    r->n = n;
    r->order = hr_malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    hr_err err = {0};
    if (qo_build_ack(qa->ns, worker, items, n, qa->polls, qa->npolls, &r->argv, r->order,
                     &err) < 0) {
        defer_fail(r, err.msg);
        return;
    }
    send_req(qa, r);
}

void queue_async_retry(queue_async *qa, const char *worker, const queue_job *job,
                       int64_t delay_ms, queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_RETRY, priv);
    hr_err err = {0};
    r->status_cb = cb;
    if (qo_build_retry(qa->ns, worker, job, delay_ms, 1, &r->argv, &err) < 0) {
        defer_fail(r, err.msg);
        return;
    }
    send_req(qa, r);
}

void queue_async_bury(queue_async *qa, const char *worker, const char *ukh, const char *lane,
                      const queue_job *job, const char *reason, queue_status_cb *cb,
                      void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_BURY, priv);
    hr_err err = {0};
    r->status_cb = cb;
    if (qo_build_bury(qa->ns, worker, ukh, lane, job, reason, &r->argv, &err) < 0) {
        defer_fail(r, err.msg);
        return;
    }
    send_req(qa, r);
}

void queue_async_unknown(queue_async *qa, const char *worker, const queue_job *job,
                         const char *reason, queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_UNKNOWN, priv);
    hr_err err = {0};
    r->status_cb = cb;
    if (qo_build_unknown(qa->ns, worker, job, reason, &r->argv, &err) < 0) {
        defer_fail(r, err.msg);
        return;
    }
    send_req(qa, r);
}

/* lane_script begins a status request running script on lane's state hash
 * (its first of nkeys keys); NULL when lane is not one (cb is told). */
static qreq *lane_script(queue_async *qa, int script, int nkeys, const char *lane,
                         queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, script, priv);
    r->status_cb = cb;
    if (!qo_valid_lane(lane)) {
        defer_fail(r, script == QS_QUOTA ? "quota: bad lane" : "charge: bad lane");
        return NULL;
    }
    qa_evalsha(&r->argv, script, nkeys);
    qa_pushkey(&r->argv, qa->ns, "lane:%s", lane);
    return r;
}

void queue_async_charge(queue_async *qa, const char *lane, int calls, queue_status_cb *cb,
                        void *priv)
{
    qreq *r = lane_script(qa, QS_CHARGE, 2, lane, cb, priv);
    if (!r) return;
    qa_pushkey(&r->argv, qa->ns, "app:%.*s", (int)strcspn(lane, ":"), lane);
    qa_pushf(&r->argv, "%d", calls);
    send_req(qa, r);
}

void queue_async_quota(queue_async *qa, const char *lane, long left, int64_t reset_in_ms,
                       long since, queue_status_cb *cb, void *priv)
{
    qreq *r = lane_script(qa, QS_QUOTA, 1, lane, cb, priv);
    if (!r) return;
    qa_pushf(&r->argv, "%ld", left);
    qa_pushf(&r->argv, "%lld", (long long)reset_in_ms);
    qa_pushf(&r->argv, "%ld", since);
    send_req(qa, r);
}

/* unregister: a graceful worker has drained its sends, so every entry left
 * is unstarted; the reap script (forced) returns them to their lanes. The
 * lanes are read first, as in the sync half. */
typedef struct unreg_ctx {
    queue_async *qa;
    char worker[128];
    queue_status_cb *cb;
    void *priv;
} unreg_ctx;

static void on_unreg_keys(struct redisReply *rep, const char *errmsg, void *priv)
{
    unreg_ctx *u = priv;
    queue_async *qa = u->qa;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (u->cb) u->cb(-1, rep ? "redis: unexpected reply" : errmsg, u->priv);
        free(u);
        return;
    }
    qreq *r = req_new(qa, RK_STATUS, QS_REAP, u->priv);
    r->status_cb = u->cb;
    queue_argv *a = &r->argv;
    qo_build_reap(qa->ns, u->worker, 1, rep, a);
    free(u);
    send_req(qa, r);
}

void queue_async_wait(queue_async *qa, int n, int64_t timeout_ms, queue_status_cb *cb,
                      void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, -1, priv);
    qa_pushs(&r->argv, "WAIT");
    qa_pushf(&r->argv, "%d", n);
    qa_pushf(&r->argv, "%lld", (long long)timeout_ms);
    status_req(qa, r, cb);
}

void queue_async_release(queue_async *qa, const char *worker, const char *const *ukhs,
                         const char *const *lanes, int n, queue_status_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_STATUS, QS_RELEASE, priv);
    r->status_cb = cb;
    /* the jobs grouped by lane, each lane where its first job is, fetch
     * order kept within: order[] their indices, heads[] each group's lane */
    int *order = hr_malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof *order), *heads = order + n;
    int no = 0, nl = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int l = 0; l < nl && !seen; l++) seen = strcmp(lanes[heads[l]], lanes[i]) == 0;
        if (seen) continue;
        if (!qo_valid_lane(lanes[i])) {
            free(order);
            defer_fail(r, "release: not a lane");
            return;
        }
        heads[nl++] = i;
        for (int m = i; m < n; m++)
            if (strcmp(lanes[m], lanes[i]) == 0) order[no++] = m;
    }
    queue_argv *a = &r->argv;
    qa_evalsha(a, QS_RELEASE, 1 + 2 * nl);
    qa_pushkey(a, qa->ns, "inflight:%s", worker);
    for (int l = 0; l < nl; l++) {
        qa_pushkey(a, qa->ns, "ready:%s", lanes[heads[l]]);
        qa_pushkey(a, qa->ns, "lane:%s", lanes[heads[l]]);
    }
    for (int l = 0, at = 0; l < nl; l++) {
        int k = 0;
        while (at + k < no && strcmp(lanes[order[at + k]], lanes[heads[l]]) == 0) k++;
        qa_pushs(a, lanes[heads[l]]);
        qa_pushf(a, "%d", k);
        for (int m = 0; m < k; m++) qa_pushs(a, ukhs[order[at + m]]);
        at += k;
    }
    free(order);
    send_req(qa, r);
}

void queue_async_unregister(queue_async *qa, const char *worker, queue_status_cb *cb,
                            void *priv)
{
    unreg_ctx *u = hr_calloc(1, sizeof *u);
    u->qa = qa;
    snprintf(u->worker, sizeof u->worker, "%s", worker);
    u->cb = cb;
    u->priv = priv;
    /* a request of ours, so the command timeout covers it too */
    qreq *r = req_new(qa, RK_RAW, -1, u);
    r->reply_cb = on_unreg_keys;
    qa_pushs(&r->argv, "HKEYS");
    qa_pushf(&r->argv, "{%s}:inflight:%s", qa->ns, worker);
    send_req(qa, r);
}

void queue_async_formatted(queue_async *qa, const char *cmd, size_t len,
                           const char *reload_src, queue_reply_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_RAW, -1, priv);
    r->reply_cb = cb;
    r->reload_src = reload_src;
    if (reload_src) { /* kept for one resend after NOSCRIPT (on_reply_body) */
        r->fmt = hr_malloc(len ? len : 1);
        memcpy(r->fmt, cmd, len);
        r->fmt_len = len;
        send_req(qa, r);
        return;
    }
    /* hiredis copies the command now */
    if (sendable(qa, r)) sent(qa, r, redisAsyncFormattedCommand(qa->ac, on_reply, r, cmd, len));
}

void queue_async_lanes(queue_async *qa, queue_lanes_cb *cb, void *priv)
{
    qreq *r = req_new(qa, RK_LANES, -1, priv);
    r->lanes_cb = cb;
    qa_pushs(&r->argv, "SMEMBERS");
    qa_pushf(&r->argv, "{%s}:lanes", qa->ns);
    send_req(qa, r);
}
