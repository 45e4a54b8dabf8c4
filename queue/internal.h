/* internal.h: what the queue's sync and async halves share: the parsed
 * Redis URL, the script table, key building, and argv assembly. Not part of
 * the public API. */
#ifndef HERALD_QUEUE_INTERNAL_H
#define HERALD_QUEUE_INTERNAL_H

#include <hiredis/hiredis.h>

#include "queue.h"

typedef struct queue_url {
    int unix_socket;
    char host[256];
    int port;
    char path[512];
    char user[128];
    char pass[256];
    int db;
    int sentinel;        /* redis-sentinel://: host/port come from the sentinels */
    char sentinels[512]; /* "host:port,host:port" */
    char master[128];    /* the monitored master's name */
} queue_url;

/* queue_url_parse parses redis://, rediss:// (refused: no TLS here) and
 * unix:// URLs. */
int queue_url_parse(const char *url, queue_url *u, hr_err *err);
/* queue_url_userinfo reads "user:pass" (or "pass") from p up to at ('@')
 * into u; returns at + 1. */
const char *queue_url_userinfo(queue_url *u, const char *p, const char *at);
/* sentinel.c: queue_sentinel_parse parses redis-sentinel://[user:pass@]
 * host:port[,host:port...]/master[/db]; queue_sentinel_resolve asks the
 * sentinels in order for the master's address and sets u->host/port
 * (blocking, a few hundred ms per unreachable sentinel). */
int queue_sentinel_parse(const char *url, queue_url *u, hr_err *err);
int queue_sentinel_resolve(queue_url *u, hr_err *err);

/* The scripts (queue/lua/NAME.lua), indexed by the QS_ constants. */
enum {
    QS_ENQUEUE,
    QS_PROMOTE,
    QS_FETCH,
    QS_ATTEMPT,
    QS_ACK,
    QS_RETRY,
    QS_BURY,
    QS_REAP,
    QS_CANCEL,
    QS_RESOLVE,
    QS_REGISTER,
    QS_CIRCUIT,
    QS_UNKNOWN,
    QS_CHARGE,
    QS_QUOTA,
    QS_RELEASE,
    QS_COUNT
};
typedef struct queue_script {
    const char *name;
    const char *src;
    char sha[41]; /* computed locally with SHA-1, as Redis does */
} queue_script;
extern queue_script queue_scripts[QS_COUNT];
void queue_scripts_init(void); /* idempotent; fills the shas */

/* An argv under construction: owned copies of each argument. */
typedef struct queue_argv {
    int argc, cap;
    char **argv;
    size_t *lens;
} queue_argv;

void qa_init(queue_argv *a);
void qa_release(queue_argv *a);
void qa_push(queue_argv *a, const void *p, size_t n);
void qa_pushs(queue_argv *a, const char *s);
void qa_pushf(queue_argv *a, const char *fmt, ...) HR_PRINTF(2, 3);
void qa_pushkey(queue_argv *a, const char *ns, const char *fmt, ...) HR_PRINTF(3, 4);

/* qa_evalsha starts an EVALSHA of script s with nkeys keys to follow. */
void qa_evalsha(queue_argv *a, int s, int nkeys_placeholder);
/* qa_set_nkeys writes the key count into the EVALSHA argv (index 2). */
void qa_set_nkeys(queue_argv *a, int nkeys);

/* queue_run_sync sends argv (an EVALSHA) and returns its reply, loading the
 * script and retrying once on NOSCRIPT. NULL with err on failure; a Redis
 * error reply also becomes NULL with its text in err. */
redisReply *queue_run_sync(queue *q, queue_argv *a, int script, hr_err *err);
/* queue_cmd_sync and queue_cmdargv_sync run one idempotent command (sent
 * once more after a broken connection); NULL with err on failure or on a
 * Redis error reply. */
redisReply *queue_cmd_sync(queue *q, hr_err *err, const char *fmt, ...);
redisReply *queue_cmdargv_sync(queue *q, queue_argv *a, hr_err *err);

struct queue {
    redisContext *c;
    char ns[64];
    queue_url url;
    int timeout_ms;
    int64_t polls[QUEUE_POLLS_MAX]; /* queue_set_polls */
    int npolls;
};

/* ---- per-operation argv builders and reply parsers (ops.c), shared by
 * the sync (ops.c) and async (async.c) halves. */
int qo_valid_lane(const char *lane);
void qo_build_fetch(const char *ns, const char *worker, const char *const *lanes, int nlanes,
                    int max, int lease_ms, queue_argv *a);
/* qo_parse_fetch returns 0 (jobs in *out), 1 lease lost, -1 bad reply. */
int qo_parse_fetch(redisReply *r, const char *const *lanes, int nlanes, queue_fetched **out,
                   int *nout, hr_err *err);
/* qo_fetch_changes: the lanes a fetch reply says it parked or resumed (a
 * new array in *out, NULL when none; a malformed list is ignored). */
int qo_fetch_changes(redisReply *r, queue_lane_change **out);
void qo_build_attempt(const char *ns, const char *worker, const char *ukh, queue_argv *a);
/* qo_build_ack passes each lane's ukhs as one range; order (n entries)
 * gets the item index at each grouped position, for qo_parse_ack; polls
 * are the npolls delays of a post's engagement polls. */
int qo_build_ack(const char *ns, const char *worker, const queue_ack_item *items, int n,
                 const int64_t *polls, int npolls, queue_argv *a, int *order, hr_err *err);
int qo_parse_ack(redisReply *r, int n, const int *order, int *results, hr_err *err);
/* qo_push_sent pushes what records the jobs it[0..n) that have a platform
 * id as sent, with npolls engagement polls for each post (sent_record in
 * queue/lua/lib/prelude.lua reads it); nothing per job when none has one. */
void qo_push_sent(queue_argv *a, const queue_ack_item *const *it, int n, const int64_t *polls,
                  int npolls);
/* qo_copy_polls copies up to QUEUE_POLLS_MAX of n poll delays to dst;
 * returns how many. */
int qo_copy_polls(int64_t *dst, const int64_t *delays_ms, int n);
/* relative: at_ms is a delay from Redis's clock (the async worker's) */
int qo_build_retry(const char *ns, const char *worker, const queue_job *job, int64_t at_ms,
                   int relative, queue_argv *a, hr_err *err);
int qo_build_bury(const char *ns, const char *worker, const char *ukh, const char *lane,
                  const queue_job *job, const char *reason, queue_argv *a, hr_err *err);
int qo_build_unknown(const char *ns, const char *worker, const queue_job *job,
                     const char *reason, queue_argv *a, hr_err *err);
void qo_build_register(const char *ns, const char *worker, int lease_ms, int renew,
                       queue_argv *a);
void qo_build_circuit(const char *ns, const char *lane, int op, int k, int64_t open_ms,
                      int64_t max_ms, queue_argv *a);
/* qo_int_reply reads an integer reply into *out; -1 when it is not one. */
int qo_int_reply(redisReply *r, long long *out, hr_err *err);
int qo_lateness_bucket(int64_t ms);
/* qo_build_reap builds the reap script's argv for worker from its in-flight
 * record's field names (an HKEYS reply: the lanes are those with a ':'). */
void qo_build_reap(const char *ns, const char *worker, int force, const redisReply *keys,
                   queue_argv *a);
/* qo_check_ns validates a namespace and copies it into out. */
int qo_check_ns(const char *ns, char *out, size_t outlen, hr_err *err);

#endif
