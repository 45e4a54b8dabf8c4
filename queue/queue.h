/* queue.h: herald's Redis data model: the job record and its msgpack codec,
 * the key schema, and every queue operation as one atomic Lua script, with a
 * synchronous API (hiredis, for the CLI and scheduler) and an asynchronous one
 * (hiredis async on libev, for workers) sharing scripts, argv and replies.
 * It does not decide when to retry or how to send; callers do. */
#ifndef HERALD_QUEUE_H
#define HERALD_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* ---------------------------------------------------------------- jobs */

/* A job id is 20 characters: 8 base62 digits of its creation time in ms
 * (so ids sort by time) then the 12-character unique hash (ukh) that keys
 * the job in Redis. The ukh is derived from the job's unique key when it has
 * one (so a re-import finds the same job) and random otherwise. */
#define QUEUE_TS_LEN 8
#define QUEUE_UKH_LEN 12
#define QUEUE_ID_LEN (QUEUE_TS_LEN + QUEUE_UKH_LEN)
#define QUEUE_CODEC_VERSION 1

typedef enum {
    QUEUE_KIND_POST = 1,  /* a social post (possibly a thread) */
    QUEUE_KIND_EMAIL = 2, /* one email to one recipient */
    QUEUE_KIND_POLL = 3,  /* read a sent post's engagement counts */
} queue_kind;

typedef struct queue_kv {
    char *key;
    char *value;
} queue_kv;

/* attempt and max_attempts are 0..QUEUE_ATTEMPTS_LIMIT: what the codec
 * stores, so every reader (msgpack, JSON) takes the same range */
#define QUEUE_ATTEMPTS_LIMIT 1000000

typedef struct queue_job {
    char id[QUEUE_ID_LEN + 1]; /* "" until queue_job_assign_id */
    queue_kind kind;
    char *platform; /* "x", "mastodon", "bluesky", "sendgrid", ... */
    char *account;  /* "@shop", "main": with platform names the lane */
    char *campaign;
    char *source;     /* the CMS item it came from, e.g. "wxr:1169" */
    char *unique_key; /* dedupe key: same key, same job (may be NULL) */
    char *id_key;     /* the unique_key the id's ukh was hashed from, kept by
                         queue_job_assign_id so enqueue need not hash again */
    char *idem_key;   /* sent to platforms; stable across retries/imports */
    int64_t run_at_ms;
    int64_t created_ms;
    int attempt; /* attempts started so far */
    int max_attempts;
    char *last_error;

    /* post payload */
    char *text; /* the text to post, or NULL to build it from the template */
    char *title;
    char *excerpt;
    char *link;
    char **tags;
    int ntags;
    char **media; /* media references (URLs) */
    int nmedia;

    /* email payload */
    char *to;
    char *to_name;
    char *subject;
    char *html;
    char *body_text;
    char *preheader;
    queue_kv *vars; /* template variables */
    int nvars;

    /* anything else a module needs to carry: thread parts, the platform's
     * post id for a poll, template name, ... */
    queue_kv *meta;
    int nmeta;

    /* fields written by a newer herald, kept verbatim and re-encoded */
    unsigned char *extra;
    size_t extra_len;
    uint32_t extra_count;
} queue_job;

queue_job *queue_job_new(void);
void queue_job_free(queue_job *j);           /* queue_job_free(NULL) is a no-op */
queue_job *queue_job_dup(const queue_job *j); /* deep copy */
/* queue_set replaces *field with a copy of v (NULL clears it). */
void queue_set(char **field, const char *v);
void queue_job_add_tag(queue_job *j, const char *tag);
void queue_job_add_media(queue_job *j, const char *ref);
void queue_job_set_var(queue_job *j, const char *k, const char *v);
void queue_job_set_meta(queue_job *j, const char *k, const char *v);
const char *queue_job_get_meta(const queue_job *j, const char *k); /* borrowed */
const char *queue_job_get_var(const queue_job *j, const char *k);  /* borrowed */

/* queue_job_lane writes "platform:account" into out; returns -1 when it
 * does not fit or a part is missing. */
int queue_job_lane(const queue_job *j, char *out, size_t outlen);
#define QUEUE_LANE_MAX 160

/* queue_ukh_from_key writes the 12-char hash of a unique key into out (13
 * bytes). */
void queue_ukh_from_key(const char *unique_key, char *out);
/* queue_job_assign_id gives j an id (creation time now, ukh from its unique
 * key or random) and, when unset, the idempotency key "hr-<ukh>". */
void queue_job_assign_id(queue_job *j);
const char *queue_job_ukh(const queue_job *j); /* borrowed: j->id + 8 */

/* queue_job_encode appends j's msgpack encoding (without its id) to out. */
void queue_job_encode(const queue_job *j, hr_buf *out);
/* queue_job_decode decodes a msgpack blob. Returns a new job or NULL with the
 * reason in err; never reads outside [p, p+n). Unknown fields are kept. */
queue_job *queue_job_decode(const void *p, size_t n, hr_err *err);
/* queue_job_encode_stored appends the value the jobs hash keeps for j: its
 * id's 8-char time prefix and its blob, without what the id says (the
 * default idem key "hr-<ukh>", the creation time). */
void queue_job_encode_stored(const queue_job *j, hr_buf *out);
/* queue_job_decode_stored decodes a value of the jobs hash (8-char time
 * prefix + blob) stored under ukh, and sets the job's id (and the idem key
 * and creation time when the value leaves them to the id). */
queue_job *queue_job_decode_stored(const char *ukh, const void *p, size_t n, hr_err *err);
/* queue_job_to_json returns a new JSON text of j for people and scripts. */
char *queue_job_to_json(const queue_job *j);
/* queue_job_from_json parses such a JSON object; NULL with err on bad input. */
queue_job *queue_job_from_json(const char *text, hr_err *err);

/* ------------------------------------------------------- redis handles */

/* Connection settings. url: redis://[user:pass@]host:port[/db] or
 * unix:///path/to.sock[?db=N] or
 * redis-sentinel://[user:pass@]host:port[,host:port]/master[/db]
 * (NULL: $HERALD_REDIS_URL or
 * redis://127.0.0.1:6379). ns: key namespace (NULL: "herald"). */
typedef struct queue_opts {
    const char *url;
    const char *ns;
    int timeout_ms; /* connect/command timeout for the sync API; 0: 5000 */
    /* queue_connect: 1 answers a handle even while Redis is unreachable (its
     * first command connects), for a daemon that waits for Redis as the
     * async handle does; 0 fails at once */
    int lazy;
} queue_opts;

typedef struct queue queue; /* a synchronous handle */

queue *queue_connect(const queue_opts *o, hr_err *err);
void queue_free(queue *q);
const char *queue_ns(const queue *q);
/* queue_redis returns the underlying redisContext (borrowed) so other
 * modules can run their own commands on the same connection. */
struct redisContext *queue_redis(queue *q);
/* queue_time_ms reads Redis's clock (TIME) in ms: the clock every score of
 * the schema is in, not this host's. */
int queue_time_ms(queue *q, int64_t *ms, hr_err *err);
/* queue_key writes "{ns}:suffix" into out; returns out. */
char *queue_key(const char *ns, const char *suffix, char *out, size_t outlen);

/* ------------------------------------------------------------ enqueue */

typedef enum {
    QUEUE_ADDED = 1,     /* new job: scheduled or ready */
    QUEUE_UPDATED = 2,   /* same unique key, still scheduled: updated */
    QUEUE_UNCHANGED = 3, /* same unique key, already ready/in flight/dead */
    QUEUE_DONE = 4,      /* same unique key, already sent: never touched */
    QUEUE_FAILED = 5,    /* its script call failed: nothing of it written */
    QUEUE_UNKNOWN = 6,   /* its reply was lost: it may or may not be written */
    QUEUE_STORED = 7,    /* queue_enqueue_new: stored but not scheduled (its
                            lane's ZADD failed): unreachable, to be deleted */
} queue_enqueue_result;

/* queue_enqueue adds n jobs in one round trip per lane group (ids are
 * assigned when empty). Jobs due now go straight to their lane's ready list,
 * later ones to its scheduled set. results (n entries, may be NULL) gets a
 * queue_enqueue_result per job; an updated job keeps its first id, which is
 * written back into jobs[i]->id. Returns 0 or -1 with err. A batch of more
 * than 1000 jobs is several script calls, each atomic, not the whole: after
 * -1, results still says what each job became (the jobs of calls that ran
 * ADDED, UPDATED..., the others QUEUE_FAILED or QUEUE_UNKNOWN), so that a
 * caller can undo what was written.
 * A job whose unique key has an import's form (campaign|source|platform|
 * account[|email]) may not be enqueued while `herald import` of that
 * campaign holds its lock {ns}:importing:<campaign>: every script call of
 * the batch checks the locks of all the campaigns its keys name, in the
 * script, and is refused whole, QUEUE_FAILED, with err "enqueue: campaign
 * C is being imported by another process (...)". Jobs without a unique key
 * are not checked. */
int queue_enqueue(queue *q, queue_job *const *jobs, int n, int *results, hr_err *err);

/* Pipelined enqueue, for bulk importers that prepare the next batch while
 * Redis runs this one. queue_enqueue_send writes the batch's script calls
 * (the same atomic script as queue_enqueue, one call per 1000 jobs) without
 * reading their replies; the caller may send other commands after it, and
 * must then read every reply in the order sent: the batch's with
 * queue_enqueue_recv, which fills results as queue_enqueue does (also when
 * it returns -1) and frees the batch. The jobs (borrowed) must live until
 * then. NULL or -1 with err; after an error the connection is out of step:
 * read nothing more on it. */
typedef struct queue_enqueue_batch queue_enqueue_batch;
struct redisReply;
queue_enqueue_batch *queue_enqueue_send(queue *q, queue_job *const *jobs, int n, hr_err *err);
/* queue_enqueue_send_locked is queue_enqueue_send for the importer that
 * holds the import lock of its jobs' campaign with lock_token (borrowed for
 * the call): its script calls go through while the lock holds that token,
 * and are refused ("enqueue: lost the lock of campaign C ...") when it
 * does not. The importer holds its lanes ({NS}:held), so a job of such a
 * call that is due now is scheduled at its time, not made ready: nothing
 * of an import becomes ready before it ends. */
queue_enqueue_batch *queue_enqueue_send_locked(queue *q, queue_job *const *jobs, int n,
                                               const char *lock_token, hr_err *err);
int queue_enqueue_recv(queue *q, queue_enqueue_batch *b, int *results, hr_err *err);
void queue_enqueue_batch_free(queue_enqueue_batch *b); /* without reading its replies */

/* The bulk path for jobs the caller KNOWS are new (no job and no done
 * record under their ukhs: an importer's index says so, under its lock)
 * and due later than now. queue_enqueue_new_append appends to the
 * connection's output, without writing it out, plain commands and no
 * script: per lane ZADD of its scheduled set, then one HSET of the jobs,
 * SADD of the lanes, ZADD LT of each lane's due entry and a PUBLISH of the
 * wake channel; *ncmds gets their number. Nothing checks here, and they are
 * atomic only inside the caller's MULTI/EXEC, which must wrap them. Ids are
 * assigned as queue_enqueue does. NULL with err for a job without a valid
 * lane. queue_enqueue_new_results reads the jobs' results from the EXEC
 * reply's elements first, first + 1, ... (ADDED, or after an error inside
 * EXEC: STORED for the jobs of a lane whose ZADD failed, FAILED when the
 * HSET failed), frees b, and returns 0, or -1 with err naming the failed
 * command when one did. */
queue_enqueue_batch *queue_enqueue_new_append(queue *q, queue_job *const *jobs, int n, int *ncmds,
                                              hr_err *err);
int queue_enqueue_new_results(queue_enqueue_batch *b, const struct redisReply *exec, size_t first,
                              int *results, hr_err *err);

/* queue_cancel removes a job that is scheduled, retrying, ready or dead.
 * Returns 1 when removed, 0 when unknown or not cancellable (in flight,
 * unknown, sent), -1 on error. */
int queue_cancel(queue *q, const char *id, hr_err *err);

/* queue_forget_job is `herald forget`'s step for one job ukh of lane, in one
 * script call: a job that waits (scheduled, retrying, ready, dead) is
 * removed as queue_cancel removes it; one that cannot be (in flight,
 * unknown) keeps its place, and its stored value becomes scrubbed (the
 * caller's copy without what names the recipient, as
 * queue_job_encode_stored writes it) and its reason, if it has one, reason
 * (NULL: kept), provided its value still is expected (the value the caller
 * read). Returns a queue_forget_result or -1 with err. */
typedef enum {
    QUEUE_FORGET_GONE = 0,     /* no record: sent, or removed since */
    QUEUE_FORGET_REMOVED = 1,  /* it waited: removed */
    QUEUE_FORGET_INFLIGHT = 2, /* in flight: scrubbed */
    QUEUE_FORGET_UNKNOWN = 3,  /* unknown: scrubbed */
    QUEUE_FORGET_CHANGED = 4,  /* its value is no longer expected: read it again */
} queue_forget_result;
int queue_forget_job(queue *q, const char *ukh, const char *lane, const void *expected,
                     size_t expected_len, const void *scrubbed, size_t scrubbed_len,
                     const char *reason, hr_err *err);

/* queue_id_check returns 0 when id is a job id (or a ukh), else -1 with
 * err->code 2 (bad input) and err naming it. queue_cancel, queue_dead_*,
 * queue_unknown_resolve and queue_dead_reason fail the same way. */
int queue_id_check(const char *id, hr_err *err);

/* queue_get reads a job by id (or by ukh). Returns a new job, or NULL with
 * err->code 0 when there is none, or NULL with err set. */
queue_job *queue_get(queue *q, const char *id, hr_err *err);

/* ------------------------------------------------------------ promote */

/* queue_promote moves every job whose time has come (by Redis TIME) from the
 * scheduled and retry sets into its lane's ready list, at most batch per lane
 * per call; safe with several schedulers at once. A lane an import holds
 * ({NS}:held, see docs/import.md) keeps its scheduled jobs (not its
 * retrying ones) until the import ends or its hold lapses. Sets *promoted
 * and *next_due_ms (the earliest time still scheduled, or 0 when none) and
 * *now_ms (Redis time). */
int queue_promote(queue *q, int batch, long *promoted, int64_t *next_due_ms,
                  int64_t *now_ms, hr_err *err);

/* -------------------------------------------------------------- fetch */

typedef struct queue_fetched {
    char ukh[QUEUE_UKH_LEN + 1];
    char lane[QUEUE_LANE_MAX];
    char *value; /* the stored value: time prefix + blob (owned) */
    size_t value_len;
    int probe; /* 1: the one job a half-open circuit admits (queue_circuit_fail) */
} queue_fetched;

/* A worker has an id (unique per process), a lease renewed by heartbeats,
 * and an in-flight record; queue_worker_register creates them. */
int queue_worker_register(queue *q, const char *worker, int lease_ms, hr_err *err);
/* queue_heartbeat renews the lease; returns 0, 1 when the lease was lost
 * (the worker was reaped: it must stop and register again), -1 on error. */
int queue_heartbeat(queue *q, const char *worker, int lease_ms, hr_err *err);
/* queue_worker_unregister returns in-flight jobs that have not started an
 * attempt to the front of their lanes and removes the worker. */
int queue_worker_unregister(queue *q, const char *worker, hr_err *err);

/* queue_fetch takes up to max jobs from the given lanes (round robin, only
 * lanes not paused whose budget admits them) into the worker's in-flight
 * record. *out gets a new array of *nout entries (free with
 * queue_fetched_free). Returns 0, 1 when the lease was lost, -1 on error. */
int queue_fetch(queue *q, const char *worker, const char *const *lanes, int nlanes, int max,
                int lease_ms, queue_fetched **out, int *nout, hr_err *err);
void queue_fetched_free(queue_fetched *f, int n);
/* A lane whose budget cap a fetch parked (parked 1) or let go (0). The
 * fetch script flips the lane's 'parked' field once for the fleet, so only
 * the worker whose fetch did it hears of it: it logs the change, once. */
typedef struct queue_lane_change {
    char lane[QUEUE_LANE_MAX];
    int parked;
} queue_lane_change;
/* queue_lanes lists every lane that has ever held a job (new array of new
 * strings; free with queue_strv_free). */
int queue_lanes(queue *q, char ***out, int *n, hr_err *err);
void queue_strv_free(char **v, int n);

/* ----------------------------------------------------------- outcomes */

/* queue_attempt records that the worker is about to send job ukh. Returns 0
 * when recorded, 1 when the job is no longer the worker's (it must not
 * send), -1 on error. */
int queue_attempt(queue *q, const char *worker, const char *ukh, hr_err *err);

typedef struct queue_ack_item {
    const char *ukh;
    const char *id; /* the job's full id for the done record (NULL: ukh) */
    const char *lane;
    const char *platform_id; /* the platform's id of the post/message, or NULL */
    int64_t lateness_ms;     /* fetch time - run_at, for the histogram; <0: skip */
    int no_done; /* 1: the job has no unique key, so keep no done record (it
                    can never be enqueued again under the same ukh) */
    const char *campaign; /* in the done record (with metrics), and with
                           * platform_id in platform_ids */
    int poll;             /* 1: a post: its engagement polls are scheduled */
    int polled;           /* 1: an engagement poll, not a send: counted apart */
    int metrics;          /* 1: latency_ms and cost_micros go in the done record */
    int64_t latency_ms;   /* the platform's answer time */
    int64_t cost_micros;  /* what the send cost, in millionths (budget cost per call) */
} queue_ack_item;

/* At most this many jobs per async ack (the sync queue_ack splits larger
 * batches itself). */
#define QUEUE_ACK_MAX 1000

/* queue_ack marks jobs sent: removes them and keeps a small "done" record so
 * a re-import never sends them again. A job reaped while its attempt was
 * running is found in the unknown set and resolved as sent. In the same
 * script, each acked job with a platform_id gets its {ns}:platform_ids entry
 * and, with poll, its engagement polls in {ns}:polls (queue_set_polls).
 * results[i]: 1 acked, 2 resolved from unknown, 0 not the worker's,
 * QUEUE_ACK_TAKEN: nothing done (the job stays the worker's) as its
 * platform_id is recorded for another job, or claimed by an earlier item of
 * the call: one post never settles two jobs (the script checks, so no
 * other process can claim it in between). */
#define QUEUE_ACK_TAKEN 3
int queue_ack(queue *q, const char *worker, const queue_ack_item *items, int n, int *results,
              hr_err *err);

/* queue_retry puts the worker's job back in its lane's retry set at at_ms
 * (absolute), storing the updated job (attempt, last_error). Returns 1, 0
 * when not the worker's, -1. */
int queue_retry(queue *q, const char *worker, const queue_job *job, int64_t at_ms,
                hr_err *err);

/* queue_bury moves a job to its lane's dead set with reason. job may be
 * NULL for a blob that could not be decoded (then ukh and lane name it).
 * worker NULL buries a job that is not in flight (operator action). */
int queue_bury(queue *q, const char *worker, const char *ukh, const char *lane,
               const queue_job *job, const char *reason, hr_err *err);

/* One job in a worker's in-flight record. */
typedef struct queue_inflight_job {
    char ukh[QUEUE_UKH_LEN + 1];
    char lane[QUEUE_LANE_MAX];
    int64_t started_ms; /* when its attempt started (Redis time); 0: not yet */
} queue_inflight_job;

/* queue_inflight lists worker's in-flight jobs into a new array of *n
 * entries (free with free()). Returns 0 or -1 with err. */
int queue_inflight(queue *q, const char *worker, queue_inflight_job **out, int *n,
                   hr_err *err);

/* The circuit breaker of a lane is fleet-wide, in {ns}:lane:LANE (fields
 * circuit = closed | open | half-open, circuit_until_ms, c_fail, c_open_ms,
 * c_probe_until), all times Redis TIME. queue_circuit reports to it:
 * QUEUE_CIRCUIT_FAIL a transient failure of lane: after k consecutive ones
 * anywhere in the fleet it opens for open_ms (0: 5 s), and fetch takes
 * nothing from the lane until then; then it is half-open: fetch admits one
 * probe job for the whole fleet (queue_fetched.probe; another only when
 * that one has not reported within its worker's lease). The probe's failure
 * opens it again for twice as long, at most max_ms (0: 5 min). Any ack of
 * the lane (the probe's, or a send that started before it opened) resets
 * the count and closes it; QUEUE_CIRCUIT_OK resets
 * it at once (a worker whose success follows its own failures, so the run
 * is counted in the order things happened, not the ack's). QUEUE_CIRCUIT_
 * RELEASE: the probe ended neither sent nor failed (a 429, a refusal): the
 * next fetch may admit another. k, open_ms, max_ms matter for FAIL only.
 * Returns 0 unchanged, 1 opened, 2 opened again (the probe failed), -1. */
typedef enum {
    QUEUE_CIRCUIT_FAIL,
    QUEUE_CIRCUIT_OK,
    QUEUE_CIRCUIT_RELEASE,
} queue_circuit_op;
int queue_circuit(queue *q, const char *lane, queue_circuit_op op, int k, int64_t open_ms,
                  int64_t max_ms, hr_err *err);

/* ------------------------------------------------------ dead workers */

/* queue_reap re-queues the in-flight jobs of every worker whose lease ended:
 * jobs whose attempt had not started go back to the front of their lane,
 * started ones to the lane's unknown set. Exactly once, however many
 * schedulers run it. Sets *requeued and *unknown. */
int queue_reap(queue *q, long *requeued, long *unknown, hr_err *err);

/* At most this many engagement polls per sent post. */
#define QUEUE_POLLS_MAX 8

/* queue_set_polls sets the engagement poll delays (ms after the send; the
 * config's poll-schedule) that q's acks and resolves as sent schedule for a
 * post with a platform id; none until set. Past QUEUE_POLLS_MAX are
 * dropped. */
void queue_set_polls(queue *q, const int64_t *delays_ms, int n);

/* queue_unknown_resolve settles a job in the unknown state: sent (record it
 * done with platform_id, which goes to {ns}:platform_ids with the post's
 * engagement polls as an ack's does) or resend (back to the front of its
 * lane). Returns 1, 0 (not unknown), 2 (nothing done: platform_id is
 * recorded for another job), -1 with err. */
int queue_unknown_resolve(queue *q, const char *id, int sent, const char *platform_id,
                          hr_err *err);
/* queue_unknown_resend_job resends the unknown job j as queue_unknown_resolve
 * does, storing j in place of the stored job (what a read-back learnt: the
 * thread parts it found posted). Returns 1, 0 (not unknown), -1. */
int queue_unknown_resend_job(queue *q, const queue_job *j, hr_err *err);

/* queue_dead_retry moves a dead job back to its lane's ready list;
 * queue_dead_purge deletes a dead job. Return 1, 0 (not dead), -1. */
int queue_dead_retry(queue *q, const char *id, hr_err *err);
int queue_dead_purge(queue *q, const char *id, hr_err *err);
/* queue_dead_reason returns the reason a job was buried (new string). */
char *queue_dead_reason(queue *q, const char *id, hr_err *err);
/* queue_unknown_attempts is how many attempts the unknown job j (its
 * reason as queue_dead_reason gives it) has started: a worker that moves a
 * job to unknown stores it with the attempt counted, the reaper (reason
 * "worker ID stopped during the send", reap.lua) cannot rewrite it. */
int queue_unknown_attempts(const queue_job *j, const char *reason);

/* ------------------------------------------------------ pause, stats */

/* queue_pause/queue_resume take a lane ("x:@shop") or a platform ("x"). */
int queue_pause(queue *q, const char *lane_or_platform, hr_err *err);
int queue_resume(queue *q, const char *lane_or_platform, hr_err *err);
int queue_is_paused(queue *q, const char *lane, hr_err *err); /* 1, 0, -1 */

typedef struct queue_lane_counts {
    char lane[QUEUE_LANE_MAX];
    long scheduled, ready, inflight, retrying, dead, unknown;
    long sent_total, dead_total, retried_total, polled_total;
    int paused;
    int64_t oldest_ready_ms; /* since when the lane's oldest ready job has been
                                due (its run_at, or its creation when it had
                                none); 0 when the lane has no ready job */
} queue_lane_counts;

/* queue_counts fills a new array with one entry per lane. */
int queue_counts(queue *q, queue_lane_counts **out, int *n, hr_err *err);

/* queue_recent counts outcomes of one lane in the last window_min minutes
 * (1..1440), from the per-minute buckets kept in {ns}:stats
 * ("m|sent|LANE|MINUTE", also m|dead and m|retry), reading exactly the
 * window's buckets. Sets sent/dead/retried (each may be NULL). */
int queue_recent(queue *q, const char *lane, int window_min, long *sent, long *dead,
                 long *retried, hr_err *err);
/* queue_prune_stats deletes buckets older than a day (the scripts delete
 * yesterday's bucket of a lane when they open today's; this catches the
 * rest). Returns how many it deleted, or -1. */
int queue_prune_stats(queue *q, hr_err *err);

/* The send-duration histogram {ns}:sendtime (written by the workers, read
 * by /metrics): the finite upper bounds of its buckets, in ms. */
#define QUEUE_SEND_BUCKETS 8
extern const int64_t queue_send_bounds_ms[QUEUE_SEND_BUCKETS];

/* Lateness histogram buckets (upper bounds in ms; the last is +Inf). */
#define QUEUE_LATENESS_BUCKETS 12
extern const int64_t queue_lateness_bounds_ms[QUEUE_LATENESS_BUCKETS];
/* queue_lateness reads the histogram: counts[i] jobs had lateness <= bound i
 * (not cumulative), and *sum_ms their lateness in all. */
int queue_lateness(queue *q, long counts[QUEUE_LATENESS_BUCKETS], long long *sum_ms,
                   hr_err *err);

/* List members of one lane's state: state is "scheduled", "retry", "ready",
 * "dead" or "unknown"; returns ukhs (new strings). */
int queue_list(queue *q, const char *lane, const char *state, long start, long count,
               char ***out, int *n, hr_err *err);

/* ------------------------------------------------- suppression list */

/* The suppression list holds, per namespace, a keyed hash (HMAC-SHA256 with
 * the install's secret) of each normalized address, never the address:
 * key {ns}:suppressed, a hash of hex digest -> "reason\tms". */
/* queue_email_normalize lowercases and trims an address into out; returns -1
 * when it is not a plausible address (no '@', spaces, empty parts). */
int queue_email_normalize(const char *email, char *out, size_t outlen);
/* queue_email_check is queue_email_normalize that says why: NULL when the
 * address is plausible (normalized into out), else a static reason that
 * does not repeat the address ("not an email address: no @"). */
const char *queue_email_check(const char *email, char *out, size_t outlen);
/* queue_suppress_hash writes the 64-hex-digit keyed hash of the normalized
 * address into out (65 bytes); returns -1 for an invalid address. */
int queue_suppress_hash(const char *secret, const char *email, char *out);
int queue_suppress_add(queue *q, const char *secret, const char *email, const char *reason,
                       hr_err *err);
/* queue_is_suppressed returns 1, 0, or -1 on error (Redis, or an address
 * that does not normalise: never "not suppressed"). */
int queue_is_suppressed(queue *q, const char *secret, const char *email, hr_err *err);

/* ------------------------------------------------ async API (libev) */

/* The asynchronous handle runs on the caller's libev loop through hiredis'
 * libev adapter. It connects in the background and reconnects with
 * exponential backoff (50 ms .. 2 s); a command issued while disconnected
 * fails at once through its callback. Every callback runs exactly once,
 * with status -1 and a message on failure or when the handle is freed.
 * Replies are decoded into herald's own structs before callbacks run. */
struct ev_loop;
typedef struct queue_async queue_async;

queue_async *queue_async_new(struct ev_loop *loop, const queue_opts *o, hr_err *err);
/* queue_async_free fails every pending callback and frees the handle. It may
 * be called from inside a callback; the free is then deferred. */
void queue_async_free(queue_async *qa);
int queue_async_connected(const queue_async *qa);
const char *queue_async_ns(const queue_async *qa);
/* queue_async_on_state registers cb for (re)connections and losses. */
void queue_async_on_state(queue_async *qa, void (*cb)(queue_async *qa, int connected, void *priv),
                          void *priv);
/* queue_async_redis returns the current redisAsyncContext (borrowed; NULL
 * while disconnected) for modules running their own commands. */
struct redisAsyncContext *queue_async_redis(queue_async *qa);
/* queue_async_reset drops the connection now, for a caller that decided
 * Redis stalled (no reply in time): every pending callback gets its failure
 * (NULL reply) before it returns, and the handle reconnects with backoff.
 * Commands already sent may still run in Redis. Not from inside one of
 * qa's callbacks (it does nothing then). */
void queue_async_reset(queue_async *qa);
/* queue_async_set_timeout gives qa a command timeout: when the oldest
 * command sent through qa's own calls (the operations below and
 * queue_async_formatted) has had no reply for timeout_ms, Redis stalled
 * without closing the connection (SIGSTOP, a black-holed network), and qa
 * logs it and resets as queue_async_reset does; those commands fail with
 * "redis: no reply within N ms". Commands sent straight on
 * queue_async_redis's context are not timed (they fail with the reset).
 * A connection not made within timeout_ms is dropped and made again.
 * 0, the default: wait for ever. */
void queue_async_set_timeout(queue_async *qa, int timeout_ms);
/* queue_async_formatted sends cmd (len bytes, a whole command in the Redis
 * protocol; copied now). cb runs exactly once: with the reply (valid only
 * during cb), or NULL and a message (an error reply's text, a failure).
 * reload_src (static, may be NULL) is the script an EVALSHA in cmd runs:
 * when Redis answers NOSCRIPT (its script cache was flushed), it is loaded
 * again and cmd (then kept) resent once, ahead of anything sent later; cb
 * gets the resend's answer. Timed as qa's own commands. */
typedef void queue_reply_cb(struct redisReply *reply, const char *errmsg, void *priv);
void queue_async_formatted(queue_async *qa, const char *cmd, size_t len,
                           const char *reload_src, queue_reply_cb *cb, void *priv);

/* status: the operation's result as in the sync API (0/1 as documented
 * there, a count for ack), or -1 with errmsg. */
typedef void queue_status_cb(int status, const char *errmsg, void *priv);
/* jobs: a new array the callback owns (free with queue_fetched_free). */
typedef void queue_fetch_cb(int status, queue_fetched *jobs, int n, const char *errmsg,
                            void *priv);

void queue_async_register(queue_async *qa, const char *worker, int lease_ms,
                          queue_status_cb *cb, void *priv);
void queue_async_heartbeat(queue_async *qa, const char *worker, int lease_ms,
                           queue_status_cb *cb, void *priv);
void queue_async_fetch(queue_async *qa, const char *worker, const char *const *lanes,
                       int nlanes, int max, int lease_ms, queue_fetch_cb *cb, void *priv);
/* queue_async_on_lane_change sets cb, called from a fetch's reply (before
 * the fetch's own callback) once per lane that fetch parked or resumed
 * (queue_lane_change; borrowed for the call). NULL: none. */
typedef void queue_lane_change_cb(const queue_lane_change *c, void *priv);
void queue_async_on_lane_change(queue_async *qa, queue_lane_change_cb *cb, void *priv);
void queue_async_attempt(queue_async *qa, const char *worker, const char *ukh,
                         queue_status_cb *cb, void *priv);
/* queue_async_attempts records the attempts of n jobs (at most
 * QUEUE_ATTEMPT_MAX) of worker in one script call: ukhs[i] was fetched from
 * lanes[i]. results[i] (caller-owned, alive until cb) gets 0 when recorded,
 * 1 when job i is no longer the worker's (it must not be sent). cb's status
 * is 0, or -1 with a message when nothing is known (none may be sent). */
#define QUEUE_ATTEMPT_MAX 1000
void queue_async_attempts(queue_async *qa, const char *worker, const char *const *ukhs,
                          const char *const *lanes, int n, int *results, queue_status_cb *cb,
                          void *priv);
/* queue_async_circuit: queue_circuit on the loop; cb (may be NULL) gets its
 * return value as status. */
void queue_async_circuit(queue_async *qa, const char *lane, queue_circuit_op op, int k,
                         int64_t open_ms, int64_t max_ms, queue_status_cb *cb, void *priv);
/* queue_async_set_polls: queue_set_polls for qa's acks. */
void queue_async_set_polls(queue_async *qa, const int64_t *delays_ms, int n);
/* results may be NULL; otherwise it must live until cb runs. */
void queue_async_ack(queue_async *qa, const char *worker, const queue_ack_item *items, int n,
                     int *results, queue_status_cb *cb, void *priv);
/* queue_async_retry: queue_retry, due delay_ms after Redis's clock (not the
 * host's, which may differ from the one promote goes by). */
void queue_async_retry(queue_async *qa, const char *worker, const queue_job *job,
                       int64_t delay_ms, queue_status_cb *cb, void *priv);
void queue_async_bury(queue_async *qa, const char *worker, const char *ukh, const char *lane,
                      const queue_job *job, const char *reason, queue_status_cb *cb,
                      void *priv);
/* queue_async_unknown moves worker's in-flight job (stored with its current
 * value) to its lane's unknown set with reason, for the reconciler: its
 * outcome cannot be told here. status 1, or 0 when it was no longer the
 * worker's (the reaper moved it). */
void queue_async_unknown(queue_async *qa, const char *worker, const queue_job *job,
                         const char *reason, queue_status_cb *cb, void *priv);
/* queue_async_charge counts calls more requests of lane (a thread's parts
 * past the first, which its fetch counted) in its rate windows before they
 * go out: status 0 when counted, > 0 when a window or the quota left has
 * no room (nothing counted; ms until it resets), -1; cb may be NULL. */
void queue_async_charge(queue_async *qa, const char *lane, int calls, queue_status_cb *cb,
                        void *priv);
/* queue_async_quota keeps what a platform's quota headers said after a
 * send of lane: left calls until its reset, reset_in_ms from now (measured
 * in the platform's clock; the script adds Redis's), less since, the calls
 * of the lane fetched after the answered one. Within one reset window the
 * count kept only goes down (answers come back in any order); a later
 * window replaces it. status: the count kept, or -1; cb may be NULL. */
void queue_async_quota(queue_async *qa, const char *lane, long left, int64_t reset_in_ms,
                       long since, queue_status_cb *cb, void *priv);
/* queue_async_wait sends WAIT n timeout_ms on the handle's connection: its
 * status is how many replicas acknowledged every write sent before it (fewer
 * than n when the timeout ran out), or -1. */
void queue_async_wait(queue_async *qa, int n, int64_t timeout_ms, queue_status_cb *cb,
                      void *priv);
/* queue_async_release hands back n jobs worker fetched and will not start
 * (ukhs[i] from lanes[i], in fetch order): each still in its record and not
 * attempted goes back to the front of its lane, its budget refunded, at
 * once rather than when worker's lease runs out. status: how many went
 * back, or -1 with a message (they stay for the reaper); cb may be NULL. */
void queue_async_release(queue_async *qa, const char *worker, const char *const *ukhs,
                         const char *const *lanes, int n, queue_status_cb *cb, void *priv);
void queue_async_unregister(queue_async *qa, const char *worker, queue_status_cb *cb,
                            void *priv);
/* queue_async_lanes lists every lane; cb owns the array (queue_strv_free). */
typedef void queue_lanes_cb(int status, char **lanes, int n, const char *errmsg, void *priv);
void queue_async_lanes(queue_async *qa, queue_lanes_cb *cb, void *priv);

#endif
