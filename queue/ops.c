/* ops.c: every queue operation: the argv each script takes, the parsing of
 * its reply, and the synchronous wrappers. The async half (async.c) reuses
 * the builders and parsers. Decisions (when to retry, what is due) live in
 * the callers and in the scripts, not here. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ENQUEUE_CHUNK 1000
#define PROMOTE_ENTRIES 256

const int64_t queue_lateness_bounds_ms[QUEUE_LATENESS_BUCKETS] = {
    1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000, 60000, INT64_MAX};

const int64_t queue_send_bounds_ms[QUEUE_SEND_BUCKETS] = {10, 25, 50, 100, 250, 500, 1000, 5000};

int qo_lateness_bucket(int64_t ms)
{
    for (int i = 0; i < QUEUE_LATENESS_BUCKETS; i++)
        if (ms <= queue_lateness_bounds_ms[i]) return i;
    return QUEUE_LATENESS_BUCKETS - 1;
}

int qo_valid_lane(const char *lane)
{
    size_t n = strlen(lane);
    if (n == 0 || n >= QUEUE_LANE_MAX || !strchr(lane, ':')) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)lane[i] < 0x20) return 0; /* tabs separate in-flight fields */
    return 1;
}

static int ukh_of(const char *id, char *ukh)
{
    size_t n = strlen(id);
    const char *p = n == QUEUE_ID_LEN ? id + QUEUE_TS_LEN : n == QUEUE_UKH_LEN ? id : NULL;
    if (!p) return -1;
    for (int i = 0; i < QUEUE_UKH_LEN; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return -1;
    }
    memcpy(ukh, p, QUEUE_UKH_LEN);
    ukh[QUEUE_UKH_LEN] = '\0';
    return 0;
}

int queue_id_check(const char *id, hr_err *err)
{
    char ukh[QUEUE_UKH_LEN + 1];
    if (ukh_of(id, ukh) == 0) return 0;
    hr_err_set(err, "\"%s\" is not a job id", id);
    if (err) err->code = 2; /* bad input, not the environment */
    return -1;
}

int qo_int_reply(redisReply *r, long long *out, hr_err *err)
{
    if (!r || r->type != REDIS_REPLY_INTEGER) return hr_err_set(err, "redis: unexpected reply");
    *out = r->integer;
    return 0;
}

static long long reply_ll(redisReply *e)
{
    if (e->type == REDIS_REPLY_INTEGER) return e->integer;
    if (e->type == REDIS_REPLY_STRING) return strtoll(e->str, NULL, 10);
    return 0;
}

/* ------------------------------------------------------------ enqueue */

typedef struct {
    int idx;
    int lane;        /* in the batch's lanes */
    const char *ukh; /* borrowed from the job */
} lane_ref;

typedef char lane_name[QUEUE_LANE_MAX];

/* A batch prepared for the enqueue script: the jobs' refs grouped by lane,
 * cut into chunks of one script call each, and the results so far. */
struct queue_enqueue_batch {
    queue_job **jobs; /* borrowed */
    int n;
    lane_ref *refs; /* in argument order, duplicates dropped */
    int nref;
    lane_name *lanes; /* the distinct lanes, first seen first */
    int nlanes;
    int *res;    /* n results */
    int *winner; /* per job: the later one of its ukh that replaced it, or
                    -1 (NULL: the batch has no such pair) */
    char **locks; /* the import locks every call checks (enqueue_locks) */
    int nlocks, locks_found;
    const char *token; /* the caller's import lock token, while it sends */
    hr_buf cmd;        /* one chunk's command */
};

/* fnv1a hashes n bytes (FNV-1a, 64 bits): for the batch's small tables. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
    return h;
}

/* lane_of returns the number of job j's lane in b, adding the lane when it
 * is new (slots: an open-addressing table of lane number + 1, mask + 1
 * entries); -1 when j has no valid lane. A batch has few lanes: each is
 * built and checked once per job, compared once per lane. */
static int lane_of(queue_enqueue_batch *b, int *slots, unsigned mask, const queue_job *j)
{
    lane_name lane;
    if (queue_job_lane(j, lane, sizeof lane) < 0) return -1;
    uint64_t h = fnv1a(lane, strlen(lane));
    for (unsigned s = (unsigned)h & mask;; s = (s + 1) & mask) {
        if (!slots[s]) {
            if (!qo_valid_lane(lane)) return -1;
            memcpy(b->lanes[b->nlanes], lane, sizeof lane);
            slots[s] = ++b->nlanes;
            return slots[s] - 1;
        }
        if (!strcmp(b->lanes[slots[s] - 1], lane)) return slots[s] - 1;
    }
}

static int has_unique(const queue_job *j)
{
    return j->unique_key && *j->unique_key;
}

/* import_campaign returns the length of the campaign that unique key uk
 * names when it has the form an import gives its jobs' keys
 * (campaign|source|platform|account[|email]: a campaign name has no '|'),
 * else 0. */
static size_t import_campaign(const char *uk)
{
    const char *bar = strchr(uk, '|'), *s;
    if (!bar || bar == uk || !(s = strchr(bar + 1, '|')) || !strchr(s + 1, '|')) return 0;
    return (size_t)(bar - uk);
}

/* enqueue_locks finds, once per batch, the import locks
 * ({ns}:importing:CAMPAIGN) of the campaigns its unique keys name. An
 * import writes its campaign's new jobs without the script's checks and
 * keeps its index, rollback and --sync by their unique keys, so the script
 * refuses a call, writing nothing, while one of its locks is held by
 * someone else than the caller (an importer passes its token: its call is
 * refused once the lock is no longer its own). Every call of the batch
 * checks them all, so a batch with a job of a campaign being imported is
 * refused whole (each call is atomic, the batch is not: a lock taken
 * between two calls refuses the later ones only). Jobs without a unique
 * key cost nothing here, and the script's text (hashed by Redis at every
 * EVAL) little. */
static void enqueue_locks(const queue *q, queue_enqueue_batch *b)
{
    if (b->locks_found) return;
    b->locks_found = 1;
    unsigned mask = 15;
    int *slots = NULL; /* lock number + 1, by the campaign's hash */
    size_t *lens = NULL;
    for (int k = 0; k < b->nref; k++) {
        const char *uk = b->jobs[b->refs[k].idx]->unique_key;
        size_t n = uk ? import_campaign(uk) : 0;
        if (!n) continue;
        if (!slots) {
            while (mask < 2u * (unsigned)b->nref)
                mask = mask * 2 + 1;
            slots = hr_calloc(mask + 1, sizeof *slots);
            b->locks = hr_malloc(sizeof *b->locks * (size_t)b->nref);
            lens = hr_malloc(sizeof *lens * (size_t)b->nref);
        }
        /* a lock's key ends with its campaign: compared there */
        unsigned s = (unsigned)fnv1a(uk, n) & mask;
        for (int l; (l = slots[s] - 1) >= 0; s = (s + 1) & mask)
            if (lens[l] == n && !memcmp(b->locks[l] + strlen(b->locks[l]) - n, uk, n)) break;
        if (slots[s]) continue;
        lens[b->nlocks] = n;
        b->locks[b->nlocks] = hr_asprintf("{%s}:importing:%.*s", q->ns, (int)n, uk);
        slots[s] = ++b->nlocks;
    }
    free(slots);
    free(lens);
}

/* resp_head appends a RESP bulk string header ("$len\r\n"), or with c '*'
 * an array header. Hand-rolled because it runs four times per job. */
static void resp_head(hr_buf *b, char c, size_t len)
{
    char tmp[24];
    int k = (int)sizeof tmp;
    tmp[--k] = '\n';
    tmp[--k] = '\r';
    do {
        tmp[--k] = (char)('0' + len % 10);
        len /= 10;
    } while (len);
    tmp[--k] = c;
    hr_buf_append(b, tmp + k, sizeof tmp - (size_t)k);
}

static void resp_arg(hr_buf *b, const void *p, size_t n)
{
    resp_head(b, '$', n);
    hr_buf_reserve(b, n + 2);
    memcpy(b->data + b->len, p, n);
    memcpy(b->data + b->len + n, "\r\n", 2);
    b->len += n + 2;
    b->data[b->len] = '\0';
}

static void resp_str(hr_buf *b, const char *s)
{
    resp_arg(b, s, strlen(s));
}

static void resp_ll(hr_buf *b, long long v)
{
    char t[24];
    int k = (int)sizeof t;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        t[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) t[--k] = '-';
    resp_arg(b, t + k, sizeof t - (size_t)k);
}

static void resp_key(hr_buf *b, const char *ns, const char *suffix, const char *lane)
{
    char k[QUEUE_LANE_MAX + 128];
    int n = snprintf(k, sizeof k, "{%s}:%s%s", ns, suffix, lane ? lane : "");
    resp_arg(b, k, (size_t)n);
}

/* enqueue_format writes the script call for refs [i, i+c) into b->cmd as one
 * RESP command (EVAL with the script's text: Redis caches it by its SHA-1). */
static void enqueue_format(queue *q, queue_enqueue_batch *b, int i, int c)
{
    const lane_ref *refs = b->refs + i;
    int ngroups = 0;
    for (int k = 0; k < c; k++)
        ngroups += k == 0 || refs[k].lane != refs[k - 1].lane;
    int nkeys = 4 + b->nlocks + 2 * ngroups;
    hr_buf *o = &b->cmd;
    hr_buf_reset(o);
    resp_head(o, '*', (size_t)(3 + nkeys + 4 + 4 * ngroups + 4 * c));
    resp_str(o, "EVAL");
    resp_str(o, queue_scripts[QS_ENQUEUE].src);
    resp_ll(o, nkeys);
    const char *ns = q->ns;
    resp_key(o, ns, "jobs", NULL);
    resp_key(o, ns, "done", NULL);
    resp_key(o, ns, "lanes", NULL);
    resp_key(o, ns, "due", NULL);
    for (int l = 0; l < b->nlocks; l++)
        resp_str(o, b->locks[l]);
    for (int k = 0; k < c; k++) {
        if (k > 0 && refs[k].lane == refs[k - 1].lane) continue;
        resp_key(o, ns, "sched:", b->lanes[refs[k].lane]);
        resp_key(o, ns, "ready:", b->lanes[refs[k].lane]);
    }
    resp_key(o, ns, "wake", NULL);
    resp_key(o, ns, "readych", NULL);
    resp_ll(o, b->nlocks);
    resp_str(o, b->token ? b->token : "");
    hr_buf v;
    hr_buf_init(&v);
    for (int g = 0; g < c;) {
        int e = g, nu = 0;
        int64_t tmin = INT64_MAX;
        while (e < c && refs[e].lane == refs[g].lane) {
            const queue_job *job = b->jobs[refs[e].idx];
            nu += has_unique(job);
            if (job->run_at_ms < tmin) tmin = job->run_at_ms;
            e++;
        }
        resp_str(o, b->lanes[refs[g].lane]);
        resp_ll(o, nu);
        resp_ll(o, e - g - nu);
        resp_ll(o, (long long)tmin);
        /* unique-key jobs first, then plain ones: (ukh, value) pairs for
         * HSET, then (run_at, ukh) pairs for ZADD */
        for (int pass = 0; pass < 4; pass++) {
            for (int k = g; k < e; k++) {
                const queue_job *job = b->jobs[refs[k].idx];
                if (has_unique(job) != !(pass & 1)) continue;
                if (pass < 2) {
                    resp_arg(o, refs[k].ukh, QUEUE_UKH_LEN);
                    hr_buf_reset(&v);
                    queue_job_encode_stored(job, &v);
                    resp_arg(o, v.data, v.len);
                } else {
                    resp_ll(o, (long long)job->run_at_ms);
                    resp_arg(o, refs[k].ukh, QUEUE_UKH_LEN);
                }
            }
        }
        g = e;
    }
    hr_buf_release(&v);
}

/* enqueue_mark gives the jobs of refs [i, i+c) one result */
static void enqueue_mark(queue_enqueue_batch *b, int i, int c, int code)
{
    for (int k = i; k < i + c; k++)
        b->res[b->refs[k].idx] = code;
}

/* lock_refused tells why an import lock refused a call of c jobs:
 * enqueue.lua's "IMPORTING <lock number> <its PTTL>" or "NOTLOCKED <lock
 * number>". Returns -1. */
static int lock_refused(const queue_enqueue_batch *b, const char *why, int c, hr_err *err)
{
    char *end;
    long l = strtol(why + 10, &end, 10) - 1;
    if (l < 0 || l >= b->nlocks) return hr_err_set(err, "redis: script enqueue: %s", why);
    const char *lock = b->locks[l], *campaign = strchr(lock, '}') + strlen("}:importing:");
    if (why[0] == 'N')
        return hr_err_set(err, "enqueue: lost the lock of campaign %s (%s): another import "
                          "holds it or it lapsed; %d job%s not written", campaign, lock, c,
                          c == 1 ? "" : "s");
    long long ms = strtoll(end, NULL, 10);
    return hr_err_set(err, "enqueue: campaign %s is being imported by another process (lock %s, "
                      "its lease ends within %lld s): try again when it is done; %d job%s not "
                      "written", campaign, lock, ms > 0 ? (ms + 999) / 1000 : 0, c,
                      c == 1 ? "" : "s");
}

/* enqueue_reply reads one chunk's reply into b->res; a failed chunk's jobs
 * are QUEUE_FAILED (the script writes nothing when a call fails). */
static int enqueue_reply(queue_enqueue_batch *b, int i, int c, redisReply *r, hr_err *err)
{
    const lane_ref *refs = b->refs + i;
    if (r->type == REDIS_REPLY_ERROR) {
        enqueue_mark(b, i, c, QUEUE_FAILED);
        if (!strncmp(r->str, "IMPORTING ", 10) || !strncmp(r->str, "NOTLOCKED ", 10))
            return lock_refused(b, r->str, c, err);
        int nl = 1;
        for (int k = 1; k < c; k++)
            nl += refs[k].lane != refs[k - 1].lane;
        return hr_err_set(err, "redis: script enqueue: %s (%d jobs, of lane %s%s, not written)",
                          r->str, c, b->lanes[refs[0].lane], nl > 1 ? " and others" : "");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 3) {
        enqueue_mark(b, i, c, QUEUE_UNKNOWN);
        return hr_err_set(err, "redis: enqueue: unexpected reply");
    }
    /* positions count the unique-key jobs in argument order */
    int *uidx = hr_malloc(sizeof(int) * (size_t)(c ? c : 1));
    int nu_all = 0;
    for (int k = 0; k < c; k++)
        if (has_unique(b->jobs[refs[k].idx])) uidx[nu_all++] = k;
    for (int k = 0; k < c; k++)
        b->res[refs[k].idx] = QUEUE_ADDED;
    /* the reply lists only the unique-key jobs not simply added */
    for (size_t e = 0; e + 2 < r->elements; e += 3) {
        long long u = reply_ll(r->element[e]) - 1;
        if (u < 0 || u >= nu_all) continue;
        int k = uidx[u];
        queue_job *job = b->jobs[refs[k].idx];
        redisReply *pre = r->element[e + 2];
        if (pre->type == REDIS_REPLY_STRING && pre->len == QUEUE_TS_LEN)
            memcpy(job->id, pre->str, QUEUE_TS_LEN); /* keep the first id */
        b->res[refs[k].idx] = (int)reply_ll(r->element[e + 1]);
    }
    free(uidx);
    return 0;
}

void queue_enqueue_batch_free(queue_enqueue_batch *b)
{
    if (!b) return;
    free(b->jobs);
    free(b->refs);
    free(b->lanes);
    free(b->res);
    free(b->winner);
    for (int l = 0; l < b->nlocks; l++)
        free(b->locks[l]);
    free(b->locks);
    hr_buf_release(&b->cmd);
    free(b);
}

/* enqueue_prepare checks the jobs, assigns ids and groups them by lane. */
static queue_enqueue_batch *enqueue_prepare(queue_job *const *jobs, int n, hr_err *err)
{
    queue_enqueue_batch *b = hr_calloc(1, sizeof *b);
    b->n = n;
    b->jobs = hr_malloc(sizeof *b->jobs * (size_t)(n ? n : 1));
    memcpy(b->jobs, jobs, sizeof *b->jobs * (size_t)n);
    b->res = hr_calloc((size_t)(n ? n : 1), sizeof *b->res);
    b->refs = hr_malloc(sizeof *b->refs * (size_t)(n ? n : 1));
    b->lanes = hr_malloc(sizeof *b->lanes * (size_t)(n ? n : 1));
    unsigned mask = 15;
    while (mask < 2u * (unsigned)n)
        mask = mask * 2 + 1;
    int *slots = hr_calloc(mask + 1, sizeof *slots);
    lane_ref *refs = b->refs;
    for (int i = 0; i < n; i++) {
        queue_job *j = jobs[i];
        refs[i].lane = lane_of(b, slots, mask, j);
        if (refs[i].lane < 0) {
            free(slots);
            queue_enqueue_batch_free(b);
            hr_err_set(err,
                       "enqueue: job %d: needs a platform and an account "
                       "(without control characters)",
                       i);
            return NULL;
        }
        if (j->id[0] && has_unique(j) && !(j->id_key && strcmp(j->id_key, j->unique_key) == 0)) {
            /* the unique key decides the ukh, whatever id a caller passed
             * (one queue_job_assign_id gave from this very key is kept) */
            char ukh[QUEUE_UKH_LEN + 1];
            queue_ukh_from_key(j->unique_key, ukh);
            memcpy(j->id + QUEUE_TS_LEN, ukh, QUEUE_UKH_LEN + 1);
        }
        queue_job_assign_id(j);
        refs[i].idx = i;
        refs[i].ukh = queue_job_ukh(j);
    }
    free(slots);
    /* The same ukh twice in one batch: the last one wins, the earlier ones
     * report UPDATED (found with a table of ukhs, sized as the lanes':
     * latest job + 1) */
    int *latest = hr_calloc(mask + 1, sizeof *latest);
    int *count = hr_calloc((size_t)b->nlanes + 1, sizeof *count);
    for (int i = 0; i < n; i++) {
        unsigned s = (unsigned)fnv1a(refs[i].ukh, QUEUE_UKH_LEN) & mask;
        while (latest[s] && (refs[latest[s] - 1].lane != refs[i].lane ||
                             memcmp(refs[latest[s] - 1].ukh, refs[i].ukh, QUEUE_UKH_LEN) != 0))
            s = (s + 1) & mask;
        if (latest[s]) {
            int o = latest[s] - 1;
            b->res[o] = QUEUE_UPDATED;
            if (!b->winner) {
                b->winner = hr_malloc(sizeof *b->winner * (size_t)n);
                memset(b->winner, 0xff, sizeof *b->winner * (size_t)n); /* all -1 */
            }
            b->winner[o] = i;
            count[refs[o].lane + 1]--;
        }
        latest[s] = i + 1;
        count[refs[i].lane + 1]++;
    }
    /* grouped by lane, in batch order within each (jobs due now keep FIFO) */
    for (int l = 1; l <= b->nlanes; l++)
        count[l] += count[l - 1];
    lane_ref *grouped = hr_malloc(sizeof *grouped * (size_t)(n ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (b->res[i] == QUEUE_UPDATED) continue;
        grouped[count[refs[i].lane]++] = refs[i];
        m++;
    }
    free(latest);
    free(count);
    free(b->refs);
    b->refs = grouped;
    b->nref = m;
    return b;
}

static int nchunks(const queue_enqueue_batch *b)
{
    return (b->nref + ENQUEUE_CHUNK - 1) / ENQUEUE_CHUNK;
}

static int chunk_len(const queue_enqueue_batch *b, int i)
{
    return b->nref - i < ENQUEUE_CHUNK ? b->nref - i : ENQUEUE_CHUNK;
}

/* copy_results hands b's results over; a job replaced by a later one of
 * its ukh in the batch (UPDATED) shares that one's failure. */
static void copy_results(queue_enqueue_batch *b, int *results)
{
    for (int i = b->n - 1; b->winner && i >= 0; i--) {
        int w = b->winner[i];
        if (w >= 0 && b->res[w] >= QUEUE_FAILED) b->res[i] = b->res[w];
    }
    if (results) memcpy(results, b->res, sizeof *results * (size_t)b->n);
}

static void fail_all(int *results, int n)
{
    for (int i = 0; results && i < n; i++)
        results[i] = QUEUE_FAILED;
}

/* enqueue_write appends every chunk of b (EVAL with the script's text: no
 * NOSCRIPT to handle in a pipeline) and writes them out. -1 when the
 * connection failed: a command may have been cut short, none has run. */
static int enqueue_write(queue *q, queue_enqueue_batch *b, hr_err *err)
{
    enqueue_locks(q, b);
    for (int i = 0; i < b->nref; i += ENQUEUE_CHUNK) {
        enqueue_format(q, b, i, chunk_len(b, i));
        redisAppendFormattedCommand(q->c, b->cmd.data, b->cmd.len);
    }
    hr_buf_release(&b->cmd);
    int done = 0;
    while (!done)
        if (redisBufferWrite(q->c, &done) == REDIS_ERR)
            return hr_err_set(err, "redis: %s", q->c->errstr[0] ? q->c->errstr : "write failed");
    return 0;
}

queue_enqueue_batch *queue_enqueue_send_locked(queue *q, queue_job *const *jobs, int n,
                                               const char *lock_token, hr_err *err)
{
    if (!q->c) {
        hr_err_set(err, "redis: not connected");
        return NULL;
    }
    queue_enqueue_batch *b = enqueue_prepare(jobs, n, err);
    if (!b) return NULL;
    b->token = lock_token;
    int rc = enqueue_write(q, b, err);
    b->token = NULL; /* borrowed for the call only */
    if (rc < 0) {
        queue_enqueue_batch_free(b);
        return NULL;
    }
    return b;
}

queue_enqueue_batch *queue_enqueue_send(queue *q, queue_job *const *jobs, int n, hr_err *err)
{
    return queue_enqueue_send_locked(q, jobs, n, NULL, err);
}

int queue_enqueue(queue *q, queue_job *const *jobs, int n, int *results, hr_err *err)
{
    if (n <= 0) return 0;
    queue_enqueue_batch *b = enqueue_prepare(jobs, n, err);
    if (!b) {
        fail_all(results, n);
        return -1;
    }
    /* a connection found dead while writing is replaced once: nothing ran */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!q->c) { /* reconnects through the one place that knows how */
            redisReply *p = queue_cmd_sync(q, err, "PING");
            if (!p) break;
            freeReplyObject(p);
        }
        if (enqueue_write(q, b, err) == 0) {
            int rc = queue_enqueue_recv(q, b, results, err);
            if (rc < 0 && q->c && q->c->err) {
                redisFree(q->c);
                q->c = NULL;
            }
            return rc;
        }
        redisFree(q->c);
        q->c = NULL;
    }
    queue_enqueue_batch_free(b);
    fail_all(results, n);
    return -1;
}

int queue_enqueue_recv(queue *q, queue_enqueue_batch *b, int *results, hr_err *err)
{
    int rc = 0;
    for (int k = 0; k < nchunks(b); k++) {
        int i = k * ENQUEUE_CHUNK;
        redisReply *r = NULL;
        if (!q->c || redisGetReply(q->c, (void **)&r) != REDIS_OK || !r) {
            if (rc == 0)
                hr_err_set(err, "redis: %s (the batch was sent; it may or may not have run)",
                           q->c && q->c->errstr[0] ? q->c->errstr : "connection lost");
            enqueue_mark(b, i, b->nref - i, QUEUE_UNKNOWN);
            rc = -1;
            break;
        }
        /* every chunk's reply is read, even after an error, so that the
         * connection stays in step and the chunks that ran are known (each
         * is atomic, the batch is not); the first error is the one told */
        hr_err later = {0};
        if (enqueue_reply(b, i, chunk_len(b, i), r, rc == 0 ? err : &later) < 0) rc = -1;
        freeReplyObject(r);
    }
    copy_results(b, results);
    queue_enqueue_batch_free(b);
    return rc;
}

/* enqueue_new_format writes the plain commands of queue_enqueue_new_append
 * for all of b's refs into b->cmd: ZADD per lane (in lane order, the order
 * of the groups), HSET of the jobs, SADD of the lanes, ZADD LT of the due
 * entries, PUBLISH of the earliest time. */
static void enqueue_new_format(queue *q, queue_enqueue_batch *b)
{
    hr_buf *o = &b->cmd;
    hr_buf_reset(o);
    const lane_ref *refs = b->refs;
    int64_t *tmin = hr_malloc(sizeof *tmin * (size_t)(b->nlanes ? b->nlanes : 1));
    int64_t all_min = INT64_MAX;
    for (int g = 0; g < b->nref;) {
        int e = g, lane = refs[g].lane;
        tmin[lane] = INT64_MAX;
        while (e < b->nref && refs[e].lane == lane) {
            int64_t at = b->jobs[refs[e].idx]->run_at_ms;
            if (at < tmin[lane]) tmin[lane] = at;
            e++;
        }
        if (tmin[lane] < all_min) all_min = tmin[lane];
        /* scheduled before stored, as the script does */
        resp_head(o, '*', (size_t)(2 + 2 * (e - g)));
        resp_str(o, "ZADD");
        resp_key(o, q->ns, "sched:", b->lanes[lane]);
        for (int k = g; k < e; k++) {
            resp_ll(o, (long long)b->jobs[refs[k].idx]->run_at_ms);
            resp_arg(o, refs[k].ukh, QUEUE_UKH_LEN);
        }
        g = e;
    }
    resp_head(o, '*', (size_t)(2 + 2 * b->nref));
    resp_str(o, "HSET");
    resp_key(o, q->ns, "jobs", NULL);
    hr_buf v;
    hr_buf_init(&v);
    for (int k = 0; k < b->nref; k++) {
        resp_arg(o, refs[k].ukh, QUEUE_UKH_LEN);
        hr_buf_reset(&v);
        queue_job_encode_stored(b->jobs[refs[k].idx], &v);
        resp_arg(o, v.data, v.len);
    }
    hr_buf_release(&v);
    resp_head(o, '*', (size_t)(2 + b->nlanes));
    resp_str(o, "SADD");
    resp_key(o, q->ns, "lanes", NULL);
    for (int l = 0; l < b->nlanes; l++)
        resp_str(o, b->lanes[l]);
    /* LT: a lane's due entry only moves earlier (new members are added) */
    resp_head(o, '*', (size_t)(3 + 2 * b->nlanes));
    resp_str(o, "ZADD");
    resp_key(o, q->ns, "due", NULL);
    resp_str(o, "LT");
    for (int l = 0; l < b->nlanes; l++) {
        char member[QUEUE_LANE_MAX + 2] = "s|";
        memcpy(member + 2, b->lanes[l], strlen(b->lanes[l]) + 1);
        resp_ll(o, (long long)tmin[l]);
        resp_str(o, member);
    }
    /* every such batch wakes the scheduler: one cheap promote per 1000 jobs
     * instead of reading the earliest due time first */
    resp_head(o, '*', 3);
    resp_str(o, "PUBLISH");
    resp_key(o, q->ns, "wake", NULL);
    resp_ll(o, (long long)all_min);
    free(tmin);
}

queue_enqueue_batch *queue_enqueue_new_append(queue *q, queue_job *const *jobs, int n, int *ncmds,
                                              hr_err *err)
{
    if (!q->c) {
        hr_err_set(err, "redis: not connected");
        return NULL;
    }
    queue_enqueue_batch *b = enqueue_prepare(jobs, n, err);
    if (!b) return NULL;
    *ncmds = 0;
    if (b->nref == 0) return b;
    enqueue_new_format(q, b);
    redisAppendFormattedCommand(q->c, b->cmd.data, b->cmd.len);
    hr_buf_release(&b->cmd);
    *ncmds = b->nlanes + 4;
    return b;
}

int queue_enqueue_new_results(queue_enqueue_batch *b, const redisReply *exec, size_t first,
                              int *results, hr_err *err)
{
    int rc = 0;
    size_t need = b->nref ? first + (size_t)b->nlanes + 4 : first;
    if (!exec || exec->type != REDIS_REPLY_ARRAY || exec->elements < need) {
        enqueue_mark(b, 0, b->nref, QUEUE_UNKNOWN);
        rc = hr_err_set(err, "redis: enqueue: unexpected reply");
    } else if (b->nref) {
        redisReply *const *e = exec->element + first;
        int hset_failed = e[b->nlanes]->type == REDIS_REPLY_ERROR;
        for (int k = 0; k < b->nref; k++) {
            int zadd_failed = e[b->refs[k].lane]->type == REDIS_REPLY_ERROR;
            b->res[b->refs[k].idx] = hset_failed   ? QUEUE_FAILED
                                     : zadd_failed ? QUEUE_STORED
                                                   : QUEUE_ADDED;
        }
        static const char *const what[] = {"HSET of the jobs", "SADD of the lanes",
                                           "ZADD of the due entries", "PUBLISH"};
        for (int c = b->nlanes + 3; c >= 0; c--) {
            if (e[c]->type != REDIS_REPLY_ERROR) continue;
            if (c < b->nlanes)
                rc = hr_err_set(err, "redis: enqueue: %s (ZADD of lane %s's scheduled set)",
                                e[c]->str, b->lanes[c]);
            else
                rc = hr_err_set(err, "redis: enqueue: %s (%s)", e[c]->str, what[c - b->nlanes]);
        }
    }
    copy_results(b, results);
    queue_enqueue_batch_free(b);
    return rc;
}

/* ------------------------------------------------------- get, cancel */

static redisReply *hget_job(queue *q, const char *ukh, hr_err *err)
{
    return queue_cmd_sync(q, err, "HGET {%s}:jobs %s", q->ns, ukh);
}

queue_job *queue_get(queue *q, const char *id, hr_err *err)
{
    char ukh[QUEUE_UKH_LEN + 1];
    hr_err_clear(err);
    if (ukh_of(id, ukh) < 0) return NULL;
    redisReply *r = hget_job(q, ukh, err);
    if (!r) return NULL;
    queue_job *j = NULL;
    if (r->type == REDIS_REPLY_STRING) j = queue_job_decode_stored(ukh, r->str, r->len, err);
    freeReplyObject(r);
    return j;
}

/* job_lane finds the lane of a stored job, also when its blob is corrupt
 * (then from whichever lane's sets hold it). */
static int job_lane(queue *q, const char *ukh, char *lane, hr_err *err)
{
    hr_err e2 = {0};
    queue_job *j = queue_get(q, ukh, &e2);
    if (j) {
        int rc = queue_job_lane(j, lane, QUEUE_LANE_MAX);
        queue_job_free(j);
        if (rc == 0) return 0;
    }
    char **lanes;
    int n;
    if (queue_lanes(q, &lanes, &n, err) < 0) return -1;
    int found = -1;
    for (int i = 0; i < n && found < 0; i++) {
        redisReply *r = queue_cmd_sync(
            q, err, "EVAL %s 5 {%s}:sched:%s {%s}:retry:%s {%s}:ready:%s {%s}:dead:%s "
                    "{%s}:unknown:%s %s",
            "for i=1,5 do if i==3 then if redis.call('LPOS',KEYS[i],ARGV[1]) then return 1 end "
            "elseif redis.call('ZSCORE',KEYS[i],ARGV[1]) then return 1 end end return 0",
            q->ns, lanes[i], q->ns, lanes[i], q->ns, lanes[i], q->ns, lanes[i], q->ns, lanes[i],
            ukh);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
            snprintf(lane, QUEUE_LANE_MAX, "%s", lanes[i]);
            found = 0;
        }
        if (r) freeReplyObject(r);
    }
    queue_strv_free(lanes, n);
    return found;
}

/* cancel_argv starts the cancel script's call for job ukh of lane: its six
 * keys, then (forget) the lane's unknown set, and ukh. */
static void cancel_argv(queue_argv *a, const queue *q, const char *ukh, const char *lane,
                        int forget)
{
    qa_init(a);
    qa_evalsha(a, QS_CANCEL, forget ? 7 : 6);
    qa_pushkey(a, q->ns, "jobs");
    qa_pushkey(a, q->ns, "reasons");
    qa_pushkey(a, q->ns, "sched:%s", lane);
    qa_pushkey(a, q->ns, "retry:%s", lane);
    qa_pushkey(a, q->ns, "ready:%s", lane);
    qa_pushkey(a, q->ns, "dead:%s", lane);
    if (forget) qa_pushkey(a, q->ns, "unknown:%s", lane);
    qa_pushs(a, ukh);
}

static int cancel_run(queue *q, queue_argv *a, hr_err *err)
{
    redisReply *r = queue_run_sync(q, a, QS_CANCEL, err);
    qa_release(a);
    long long v = -1;
    if (r) qo_int_reply(r, &v, err);
    if (r) freeReplyObject(r);
    return (int)v;
}

int queue_cancel(queue *q, const char *id, hr_err *err)
{
    char ukh[QUEUE_UKH_LEN + 1], lane[QUEUE_LANE_MAX];
    if (ukh_of(id, ukh) < 0) return queue_id_check(id, err);
    hr_err_clear(err);
    if (job_lane(q, ukh, lane, err) < 0) return err && err->code ? -1 : 0;
    queue_argv a;
    cancel_argv(&a, q, ukh, lane, 0);
    return cancel_run(q, &a, err);
}

int queue_forget_job(queue *q, const char *ukh, const char *lane, const void *expected,
                     size_t expected_len, const void *scrubbed, size_t scrubbed_len,
                     const char *reason, hr_err *err)
{
    hr_err_clear(err);
    queue_argv a;
    cancel_argv(&a, q, ukh, lane, 1);
    qa_push(&a, expected, expected_len);
    qa_push(&a, scrubbed, scrubbed_len);
    qa_pushs(&a, reason ? reason : "");
    return cancel_run(q, &a, err);
}

/* ------------------------------------------------------------ promote */

/* time_reply_ms reads a TIME reply in ms; -1 when it is not one. */
static int64_t time_reply_ms(const redisReply *t)
{
    if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
        t->element[0]->type != REDIS_REPLY_STRING || t->element[1]->type != REDIS_REPLY_STRING)
        return -1;
    return strtoll(t->element[0]->str, NULL, 10) * 1000 +
           strtoll(t->element[1]->str, NULL, 10) / 1000;
}

int queue_promote(queue *q, int batch, long *promoted, int64_t *next_due_ms, int64_t *now_ms,
                  hr_err *err)
{
    *promoted = 0;
    /* The pipeline needs a live connection; reconnect through a no-op first. */
    if (!q->c) {
        redisReply *p = queue_cmd_sync(q, err, "PING");
        if (!p) return -1;
        freeReplyObject(p);
    }
    redisAppendCommand(q->c, "TIME");
    redisAppendCommand(q->c, "ZRANGE {%s}:due 0 %d WITHSCORES", q->ns, PROMOTE_ENTRIES - 1);
    redisReply *t = NULL, *d = NULL;
    if (redisGetReply(q->c, (void **)&t) != REDIS_OK || redisGetReply(q->c, (void **)&d) != REDIS_OK) {
        hr_err_set(err, "redis: %s", q->c->errstr);
        if (t) freeReplyObject(t);
        redisFree(q->c);
        q->c = NULL;
        return -1;
    }
    int64_t now = time_reply_ms(t);
    if (now < 0) now = 0;
    freeReplyObject(t);
    if (d->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(d);
        return hr_err_set(err, "redis: promote: unexpected reply");
    }
    queue_argv a;
    qa_init(&a);
    qa_evalsha(&a, QS_PROMOTE, 0);
    qa_pushkey(&a, q->ns, "due");
    qa_pushkey(&a, q->ns, "held"); /* lanes imports hold: skipped */
    int entries = 0;
    int64_t first_later = 0;
    for (size_t i = 0; i + 1 < d->elements; i += 2) {
        const char *m = d->element[i]->str;
        int64_t at = strtoll(d->element[i + 1]->str, NULL, 10);
        if (at > now) {
            first_later = at;
            break;
        }
        if (strlen(m) < 3 || m[1] != '|') continue;
        qa_pushkey(&a, q->ns, "%s:%s", m[0] == 'r' ? "retry" : "sched", m + 2);
        qa_pushkey(&a, q->ns, "ready:%s", m + 2);
        entries++;
    }
    if (entries == 0) {
        qa_release(&a);
        freeReplyObject(d);
        *next_due_ms = first_later;
        *now_ms = now;
        return 0;
    }
    qa_set_nkeys(&a, 2 + 2 * entries);
    qa_pushf(&a, "%d", batch);
    qa_pushf(&a, "{%s}:readych", q->ns);
    for (size_t i = 0, k = 0; k < (size_t)entries; i += 2) {
        const char *m = d->element[i]->str;
        if (strlen(m) < 3 || m[1] != '|') continue;
        qa_pushs(&a, m);
        k++;
    }
    freeReplyObject(d);
    redisReply *r = queue_run_sync(q, &a, QS_PROMOTE, err);
    qa_release(&a);
    if (!r) return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        freeReplyObject(r);
        return hr_err_set(err, "redis: promote: unexpected reply");
    }
    *promoted = (long)reply_ll(r->element[0]);
    *next_due_ms = reply_ll(r->element[1]);
    *now_ms = reply_ll(r->element[2]);
    freeReplyObject(r);
    return 0;
}

/* -------------------------------------------------------------- fetch */

static void run_register(queue_argv *a, const char *ns, const char *worker, int lease_ms,
                         int renew)
{
    qa_evalsha(a, QS_REGISTER, 1);
    qa_pushkey(a, ns, "workers");
    qa_pushs(a, worker);
    qa_pushf(a, "%d", lease_ms);
    qa_pushs(a, renew ? "renew" : "new");
}

void qo_build_register(const char *ns, const char *worker, int lease_ms, int renew,
                       queue_argv *a)
{
    run_register(a, ns, worker, lease_ms, renew);
}

static int sync_int_script(queue *q, queue_argv *a, int script, hr_err *err)
{
    redisReply *r = queue_run_sync(q, a, script, err);
    qa_release(a);
    if (!r) return -1;
    long long v = -1;
    int rc = qo_int_reply(r, &v, err);
    freeReplyObject(r);
    return rc < 0 ? -1 : (int)v;
}

int queue_worker_register(queue *q, const char *worker, int lease_ms, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    qo_build_register(q->ns, worker, lease_ms, 0, &a);
    return sync_int_script(q, &a, QS_REGISTER, err);
}

int queue_heartbeat(queue *q, const char *worker, int lease_ms, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    qo_build_register(q->ns, worker, lease_ms, 1, &a);
    return sync_int_script(q, &a, QS_REGISTER, err);
}

void qo_build_fetch(const char *ns, const char *worker, const char *const *lanes, int nlanes,
                    int max, int lease_ms, queue_argv *a)
{
    qa_evalsha(a, QS_FETCH, 5 + 3 * nlanes);
    qa_pushkey(a, ns, "workers");
    qa_pushkey(a, ns, "paused");
    qa_pushkey(a, ns, "jobs");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushkey(a, ns, "stats");
    for (int i = 0; i < nlanes; i++) {
        qa_pushkey(a, ns, "ready:%s", lanes[i]);
        qa_pushkey(a, ns, "lane:%s", lanes[i]);
        /* the platform's limits for the whole app (all its lanes) */
        qa_pushkey(a, ns, "app:%.*s", (int)strcspn(lanes[i], ":"), lanes[i]);
    }
    qa_pushs(a, worker);
    qa_pushf(a, "%d", max);
    qa_pushf(a, "%d", lease_ms);
    for (int i = 0; i < nlanes; i++) qa_pushs(a, lanes[i]);
}

int qo_parse_fetch(redisReply *r, const char *const *lanes, int nlanes, queue_fetched **out,
                   int *nout, hr_err *err)
{
    *out = NULL;
    *nout = 0;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return hr_err_set(err, "redis: fetch: unexpected reply");
    if (strcmp(r->element[0]->str, "lease") == 0) return 1;
    /* per lane visit: lane index, its ukhs, their values; then, when lanes
     * were parked or resumed, their list (qo_fetch_changes) */
    size_t end = r->elements - (r->elements - 1) % 3;
    if (end != r->elements && (end + 1 != r->elements ||
                               r->element[end]->type != REDIS_REPLY_ARRAY))
        return hr_err_set(err, "redis: fetch: malformed entry");
    size_t n = 0;
    for (size_t t = 1; t < end; t += 3) {
        redisReply *li = r->element[t], *u = r->element[t + 1], *v = r->element[t + 2];
        long long idx = llabs(reply_ll(li)); /* < 0: the circuit's probe */
        if (idx < 1 || idx > nlanes || u->type != REDIS_REPLY_STRING ||
            v->type != REDIS_REPLY_ARRAY || u->len != v->elements * QUEUE_UKH_LEN)
            return hr_err_set(err, "redis: fetch: malformed entry");
        n += v->elements;
    }
    queue_fetched *f = n ? hr_calloc(n, sizeof *f) : NULL;
    size_t k = 0;
    for (size_t t = 1; t < end; t += 3) {
        long long idx = reply_ll(r->element[t]);
        const char *lane = lanes[llabs(idx) - 1];
        redisReply *u = r->element[t + 1], *v = r->element[t + 2];
        for (size_t i = 0; i < v->elements; i++, k++) {
            redisReply *vi = v->element[i];
            if (vi->type != REDIS_REPLY_STRING) {
                queue_fetched_free(f, (int)k);
                return hr_err_set(err, "redis: fetch: malformed entry");
            }
            memcpy(f[k].ukh, u->str + i * QUEUE_UKH_LEN, QUEUE_UKH_LEN);
            snprintf(f[k].lane, sizeof f[k].lane, "%s", lane);
            f[k].value = hr_strndup(vi->str, vi->len);
            f[k].value_len = vi->len;
            f[k].probe = idx < 0;
        }
    }
    *out = f;
    *nout = (int)n;
    return 0;
}

int qo_fetch_changes(redisReply *r, queue_lane_change **out)
{
    *out = NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || (r->elements - 1) % 3 != 1) return 0;
    redisReply *c = r->element[r->elements - 1];
    if (c->type != REDIS_REPLY_ARRAY || c->elements % 2 != 0) return 0;
    int n = (int)(c->elements / 2);
    queue_lane_change *v = n ? hr_calloc((size_t)n, sizeof *v) : NULL;
    for (int i = 0; i < n; i++) {
        redisReply *lane = c->element[2 * i], *parked = c->element[2 * i + 1];
        if (lane->type != REDIS_REPLY_STRING || parked->type != REDIS_REPLY_INTEGER) {
            free(v);
            return 0;
        }
        snprintf(v[i].lane, sizeof v[i].lane, "%.*s", (int)lane->len, lane->str);
        v[i].parked = parked->integer != 0;
    }
    *out = v;
    return n;
}

void queue_fetched_free(queue_fetched *f, int n)
{
    if (!f) return;
    for (int i = 0; i < n; i++) free(f[i].value);
    free(f);
}

int queue_fetch(queue *q, const char *worker, const char *const *lanes, int nlanes, int max,
                int lease_ms, queue_fetched **out, int *nout, hr_err *err)
{
    *out = NULL;
    *nout = 0;
    if (nlanes <= 0 || max <= 0) return 0;
    queue_argv a;
    qa_init(&a);
    qo_build_fetch(q->ns, worker, lanes, nlanes, max, lease_ms, &a);
    redisReply *r = queue_run_sync(q, &a, QS_FETCH, err);
    qa_release(&a);
    if (!r) return -1;
    int rc = qo_parse_fetch(r, lanes, nlanes, out, nout, err);
    freeReplyObject(r);
    return rc;
}

int queue_lanes(queue *q, char ***out, int *n, hr_err *err)
{
    *out = NULL;
    *n = 0;
    redisReply *r = queue_cmd_sync(q, err, "SMEMBERS {%s}:lanes", q->ns);
    if (!r) return -1;
    char **v = hr_calloc(r->elements + 1, sizeof *v);
    for (size_t i = 0; i < r->elements; i++) v[i] = hr_strndup(r->element[i]->str, r->element[i]->len);
    /* sorted, so listings and round robin start are stable */
    for (size_t i = 1; i < r->elements; i++)
        for (size_t k = i; k > 0 && strcmp(v[k - 1], v[k]) > 0; k--) {
            char *t = v[k];
            v[k] = v[k - 1];
            v[k - 1] = t;
        }
    *out = v;
    *n = (int)r->elements;
    freeReplyObject(r);
    return 0;
}

void queue_strv_free(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* ----------------------------------------------------------- outcomes */

void qo_build_attempt(const char *ns, const char *worker, const char *ukh, queue_argv *a)
{
    qa_evalsha(a, QS_ATTEMPT, 2);
    qa_pushkey(a, ns, "workers");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushs(a, worker);
    qa_pushs(a, ukh);
}

int queue_attempt(queue *q, const char *worker, const char *ukh, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    qo_build_attempt(q->ns, worker, ukh, &a);
    return sync_int_script(q, &a, QS_ATTEMPT, err);
}

/* push_n pushes v as a decimal word (no printf: once per job and poll) */
static void push_n(queue_argv *a, long long v)
{
    char b[24], *p = b + sizeof b;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    qa_push(a, p, (size_t)(b + sizeof b - p));
}

/* push_cat pushes the NULL-ended strings joined by sep as one word, built
 * in buffer w. sep is an int: va_start after a char parameter is undefined
 * (C11 7.16.1.4; clang refuses it) */
static void push_cat(queue_argv *a, hr_buf *w, int sep, ...)
{
    va_list ap;
    va_start(ap, sep);
    hr_buf_reset(w);
    const char *s;
    for (int k = 0; (s = va_arg(ap, const char *)); k++) {
        if (k) hr_buf_putc(w, (char)sep);
        hr_buf_append(w, s, strlen(s));
    }
    va_end(ap);
    qa_push(a, w->data, w->len);
}

void qo_push_sent(queue_argv *a, const queue_ack_item *const *it, int n, const int64_t *polls,
                  int npolls)
{
    int nr = 0, nz = 0;
    for (int g = 0; g < n; g++) {
        nr += it[g]->platform_id != NULL;
        nz += it[g]->platform_id && it[g]->poll && npolls > 0;
    }
    push_n(a, nr);
    if (nr == 0) return;
    for (int g = 0; nr < n && g < n; g++)
        if (it[g]->platform_id) push_n(a, g + 1);
    hr_buf w;
    hr_buf_init(&w);
    for (int g = 0; g < n; g++) {
        const queue_ack_item *t = it[g];
        if (!t->platform_id) continue;
        /* PLATFORM:ID, the platform being the lane's name up to its ':' */
        hr_buf_reset(&w);
        hr_buf_append(&w, t->lane, strcspn(t->lane, ":") + 1);
        hr_buf_append(&w, t->platform_id, strlen(t->platform_id));
        qa_push(a, w.data, w.len);
        push_cat(a, &w, '\t', t->id ? t->id : t->ukh, t->campaign ? t->campaign : "",
                 (char *)NULL);
    }
    push_n(a, nz);
    if (nz > 0) {
        push_n(a, npolls);
        for (int g = 0; nz < n && g < n; g++)
            if (it[g]->platform_id && it[g]->poll) push_n(a, g + 1);
        long long now = (long long)hr_now_ms();
        for (int g = 0; g < n; g++) {
            const queue_ack_item *t = it[g];
            if (!t->platform_id || !t->poll) continue;
            for (int k = 0; k < npolls; k++) {
                char idx[2] = {(char)('0' + k), '\0'}; /* k < QUEUE_POLLS_MAX */
                push_n(a, now + polls[k]);
                push_cat(a, &w, '\t', t->lane, t->platform_id, t->id ? t->id : t->ukh,
                         t->campaign ? t->campaign : "", idx, (char *)NULL);
            }
        }
    }
    hr_buf_release(&w);
}

int qo_build_ack(const char *ns, const char *worker, const queue_ack_item *items, int n,
                 const int64_t *polls, int npolls, queue_argv *a, int *order, hr_err *err)
{
    if (n > QUEUE_ACK_MAX)
        return hr_err_set(err, "ack: %d jobs in one call (at most %d)", n, QUEUE_ACK_MAX);
    /* distinct lanes, in first-seen order */
    const char **lanes = hr_malloc(sizeof(char *) * (size_t)n);
    int *li = hr_malloc(sizeof(int) * (size_t)n);
    int *per_lane = hr_calloc((size_t)n + 1, sizeof(int));
    int nl = 0, nd = 0, nb = 0;
    for (int i = 0; i < n; i++) {
        if (!items[i].lane || !qo_valid_lane(items[i].lane) || !items[i].ukh ||
            strlen(items[i].ukh) != QUEUE_UKH_LEN) {
            free(lanes);
            free(li);
            free(per_lane);
            return hr_err_set(err, "ack: item %d has no valid lane or ukh", i);
        }
        int k = 0;
        while (k < nl && strcmp(lanes[k], items[i].lane) != 0) k++;
        if (k == nl) lanes[nl++] = items[i].lane;
        li[i] = k;
        per_lane[k]++;
        nd += !items[i].no_done;
        nb += items[i].lateness_ms >= 0;
    }
    /* the script takes each lane's ukhs as one range: order[g] is the item
     * at grouped position g (items keep their order within a lane) */
    int *next = hr_calloc((size_t)nl + 1, sizeof(int));
    for (int k = 1; k < nl; k++) next[k] = next[k - 1] + per_lane[k - 1];
    for (int i = 0; i < n; i++) order[next[li[i]]++] = i;
    free(next);
    qa_evalsha(a, QS_ACK, 7 + 2 * nl);
    qa_pushkey(a, ns, "jobs");
    qa_pushkey(a, ns, "done");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushkey(a, ns, "stats");
    qa_pushkey(a, ns, "reasons");
    for (int k = 0; k < nl; k++) qa_pushkey(a, ns, "unknown:%s", lanes[k]);
    for (int k = 0; k < nl; k++) qa_pushkey(a, ns, "lane:%s", lanes[k]);
    qa_pushkey(a, ns, "platform_ids");
    qa_pushkey(a, ns, "polls");
    qa_pushf(a, "%d", nl);
    for (int k = 0; k < nl; k++) qa_pushs(a, lanes[k]);
    qa_pushf(a, "%d", n);
    for (int g = 0; g < n; g++) qa_push(a, items[order[g]].ukh, QUEUE_UKH_LEN);
    for (int k = 0; k < nl; k++) qa_pushf(a, "%d", per_lane[k]);
    /* the grouped positions of engagement polls: settled like sends, but
     * counted as polled, not sent */
    int np = 0;
    for (int g = 0; g < n; g++) np += items[order[g]].polled != 0;
    qa_pushf(a, "%d", np);
    for (int g = 0; np && g < n; g++)
        if (items[order[g]].polled) qa_pushf(a, "%d", g + 1);
    qa_pushf(a, "%d", nd);
    long long now = (long long)hr_now_ms();
    for (int i = 0; i < n; i++) {
        if (items[i].no_done) continue;
        qa_pushs(a, items[i].ukh);
        /* id, platform id, sent at[, latency ms, cost, campaign]: see
         * docs/architecture.md; webhooks count a sent job's engagement under
         * the campaign recorded here */
        if (items[i].metrics)
            qa_pushf(a, "%s\t%s\t%lld\t%lld\t%lld\t%s", items[i].id ? items[i].id : items[i].ukh,
                     items[i].platform_id ? items[i].platform_id : "", now,
                     (long long)items[i].latency_ms, (long long)items[i].cost_micros,
                     items[i].campaign ? items[i].campaign : "");
        else
            qa_pushf(a, "%s\t%s\t%lld", items[i].id ? items[i].id : items[i].ukh,
                     items[i].platform_id ? items[i].platform_id : "", now);
    }
    /* per job, so that the script counts only the jobs it settles */
    qa_pushf(a, "%d", nb);
    for (int g = 0; g < n; g++) {
        if (items[order[g]].lateness_ms < 0) continue;
        qa_pushf(a, "%d", g + 1);
        qa_pushf(a, "%d:%lld", qo_lateness_bucket(items[order[g]].lateness_ms),
                 (long long)items[order[g]].lateness_ms);
    }
    const queue_ack_item **grouped = hr_malloc(sizeof *grouped * (size_t)n);
    for (int g = 0; g < n; g++) grouped[g] = &items[order[g]];
    qo_push_sent(a, grouped, n, polls, npolls);
    free(grouped);
    free(lanes);
    free(li);
    free(per_lane);
    return 0;
}

int qo_parse_ack(redisReply *r, int n, const int *order, int *results, hr_err *err)
{
    if (r->type != REDIS_REPLY_ARRAY) return hr_err_set(err, "redis: ack: unexpected reply");
    if (n > 1 && r->elements == 1) {
        /* {n}: every job was still the worker's */
        if (reply_ll(r->element[0]) != n) return hr_err_set(err, "redis: ack: unexpected reply");
        for (int i = 0; results && i < n; i++) results[i] = 1;
        return n;
    }
    /* per job in the grouped order (for n == 1 the short form {1} reads the
     * same: acked) */
    if (r->elements != (size_t)n) return hr_err_set(err, "redis: ack: unexpected reply");
    int acked = 0;
    for (int g = 0; g < n; g++) {
        int v = (int)reply_ll(r->element[g]);
        if (results) results[order[g]] = v;
        acked += v == 1 || v == 2;
    }
    return acked;
}

int qo_copy_polls(int64_t *dst, const int64_t *delays_ms, int n)
{
    int k = 0;
    for (int i = 0; delays_ms && i < n && k < QUEUE_POLLS_MAX; i++) dst[k++] = delays_ms[i];
    return k;
}

void queue_set_polls(queue *q, const int64_t *delays_ms, int n)
{
    q->npolls = qo_copy_polls(q->polls, delays_ms, n);
}

int queue_ack(queue *q, const char *worker, const queue_ack_item *items, int n, int *results,
              hr_err *err)
{
    if (n <= 0) return 0;
    if (n > QUEUE_ACK_MAX) { /* the script's unpack has a limit: in chunks */
        for (int i = 0; i < n; i += QUEUE_ACK_MAX) {
            int c = n - i < QUEUE_ACK_MAX ? n - i : QUEUE_ACK_MAX;
            if (queue_ack(q, worker, items + i, c, results ? results + i : NULL, err) < 0)
                return -1;
        }
        return 0;
    }
    queue_argv a;
    qa_init(&a);
    int order[QUEUE_ACK_MAX];
    if (qo_build_ack(q->ns, worker, items, n, q->polls, q->npolls, &a, order, err) < 0) {
        qa_release(&a);
        return -1;
    }
    redisReply *r = queue_run_sync(q, &a, QS_ACK, err);
    qa_release(&a);
    if (!r) return -1;
    int rc = qo_parse_ack(r, n, order, results, err);
    freeReplyObject(r);
    return rc < 0 ? -1 : 0;
}

/* qo_part_posted: some part of job (a thread) was posted: its budget is
 * spent, whatever becomes of the rest */
static int qo_part_posted(const queue_job *job)
{
    const char *n = queue_job_get_meta(job, "parts_sent");
    return n && n[0] && strcmp(n, "0") != 0;
}

int qo_build_retry(const char *ns, const char *worker, const queue_job *job, int64_t at_ms,
                   int relative, queue_argv *a, hr_err *err)
{
    char lane[QUEUE_LANE_MAX];
    if (!job->id[0] || queue_job_lane(job, lane, sizeof lane) < 0)
        return hr_err_set(err, "retry: job has no id or lane");
    qa_evalsha(a, QS_RETRY, 8);
    qa_pushkey(a, ns, "jobs");
    qa_pushkey(a, ns, "due");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushkey(a, ns, "retry:%s", lane);
    qa_pushkey(a, ns, "stats");
    qa_pushkey(a, ns, "unknown:%s", lane);
    qa_pushkey(a, ns, "reasons");
    qa_pushkey(a, ns, "lane:%s", lane); /* its budget reservation goes back */
    qa_pushs(a, queue_job_ukh(job));
    qa_pushf(a, "%lld", (long long)at_ms);
    hr_buf v;
    hr_buf_init(&v);
    queue_job_encode_stored(job, &v);
    qa_push(a, v.data, v.len);
    hr_buf_release(&v);
    qa_pushs(a, lane);
    qa_pushf(a, "{%s}:wake", ns);
    qa_pushs(a, relative ? "1" : "0");
    qa_pushs(a, qo_part_posted(job) ? "1" : "0");
    return 0;
}

int queue_retry(queue *q, const char *worker, const queue_job *job, int64_t at_ms, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    if (qo_build_retry(q->ns, worker, job, at_ms, 0, &a, err) < 0) {
        qa_release(&a);
        return -1;
    }
    return sync_int_script(q, &a, QS_RETRY, err);
}

int qo_build_bury(const char *ns, const char *worker, const char *ukh, const char *lane,
                  const queue_job *job, const char *reason, queue_argv *a, hr_err *err)
{
    char jl[QUEUE_LANE_MAX];
    if (job) {
        if (queue_job_lane(job, jl, sizeof jl) < 0) return hr_err_set(err, "bury: job has no lane");
        lane = jl;
        ukh = queue_job_ukh(job);
    }
    if (!ukh || !lane || !qo_valid_lane(lane)) return hr_err_set(err, "bury: no ukh or lane");
    qa_evalsha(a, QS_BURY, 7);
    qa_pushkey(a, ns, "jobs");
    qa_pushkey(a, ns, "reasons");
    qa_pushkey(a, ns, "inflight:%s", worker ? worker : "-");
    qa_pushkey(a, ns, "dead:%s", lane);
    qa_pushkey(a, ns, "stats");
    qa_pushkey(a, ns, "unknown:%s", lane);
    qa_pushkey(a, ns, "lane:%s", lane); /* its budget reservation goes back */
    qa_pushs(a, ukh);
    qa_pushs(a, reason ? reason : "buried");
    if (job) {
        hr_buf v;
        hr_buf_init(&v);
        queue_job_encode_stored(job, &v);
        qa_push(a, v.data, v.len);
        hr_buf_release(&v);
    } else {
        qa_pushs(a, "");
    }
    qa_pushs(a, lane);
    qa_pushs(a, worker ? "1" : "0");
    qa_pushs(a, job && qo_part_posted(job) ? "1" : "0");
    return 0;
}

int qo_build_unknown(const char *ns, const char *worker, const queue_job *job,
                     const char *reason, queue_argv *a, hr_err *err)
{
    char lane[QUEUE_LANE_MAX];
    if (!job->id[0] || queue_job_lane(job, lane, sizeof lane) < 0)
        return hr_err_set(err, "unknown: job has no id or lane");
    qa_evalsha(a, QS_UNKNOWN, 5);
    qa_pushkey(a, ns, "jobs");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushkey(a, ns, "unknown:%s", lane);
    qa_pushkey(a, ns, "reasons");
    qa_pushkey(a, ns, "stats");
    qa_pushs(a, queue_job_ukh(job));
    qa_pushs(a, lane);
    qa_pushs(a, reason ? reason : "outcome unknown");
    hr_buf v;
    hr_buf_init(&v);
    queue_job_encode_stored(job, &v);
    qa_push(a, v.data, v.len);
    hr_buf_release(&v);
    return 0;
}

int queue_bury(queue *q, const char *worker, const char *ukh, const char *lane,
               const queue_job *job, const char *reason, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    if (qo_build_bury(q->ns, worker, ukh, lane, job, reason, &a, err) < 0) {
        qa_release(&a);
        return -1;
    }
    return sync_int_script(q, &a, QS_BURY, err);
}

int queue_inflight(queue *q, const char *worker, queue_inflight_job **out, int *n,
                   hr_err *err)
{
    *out = NULL;
    *n = 0;
    redisReply *h = queue_cmd_sync(q, err, "HGETALL {%s}:inflight:%s", q->ns, worker);
    if (!h) return -1;
    if (h->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(h);
        return hr_err_set(err, "redis: inflight: unexpected reply");
    }
    /* lane fields pack 12-char ukhs; ukh fields mark started attempts */
    size_t total = 0;
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strchr(h->element[i]->str, ':')) total += h->element[i + 1]->len / QUEUE_UKH_LEN;
    queue_inflight_job *v = hr_calloc(total + 1, sizeof *v);
    int k = 0;
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *p = h->element[i + 1];
        if (!strchr(f->str, ':')) continue;
        for (size_t o = 0; o + QUEUE_UKH_LEN <= p->len; o += QUEUE_UKH_LEN, k++) {
            memcpy(v[k].ukh, p->str + o, QUEUE_UKH_LEN);
            snprintf(v[k].lane, sizeof v[k].lane, "%s", f->str);
        }
    }
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i];
        if (strchr(f->str, ':')) continue;
        for (int j = 0; j < k; j++)
            if (strcmp(v[j].ukh, f->str) == 0) v[j].started_ms = strtoll(h->element[i + 1]->str, NULL, 10);
    }
    freeReplyObject(h);
    *out = v;
    *n = k;
    return 0;
}

void qo_build_circuit(const char *ns, const char *lane, int op, int k, int64_t open_ms,
                      int64_t max_ms, queue_argv *a)
{
    static const char *const ops[] = {"fail", "ok", "release"};
    qa_evalsha(a, QS_CIRCUIT, 1);
    qa_pushkey(a, ns, "lane:%s", lane);
    qa_pushs(a, ops[op >= 0 && op <= QUEUE_CIRCUIT_RELEASE ? op : 0]);
    qa_pushf(a, "%d", k > 0 ? k : 5);
    qa_pushf(a, "%lld", (long long)(open_ms > 0 ? open_ms : 5000));
    qa_pushf(a, "%lld", (long long)(max_ms > 0 ? max_ms : 300000));
}

int queue_circuit(queue *q, const char *lane, queue_circuit_op op, int k, int64_t open_ms,
                  int64_t max_ms, hr_err *err)
{
    if (!qo_valid_lane(lane)) return hr_err_set(err, "circuit: \"%s\" is not a lane", lane);
    queue_argv a;
    qa_init(&a);
    qo_build_circuit(q->ns, lane, op, k, open_ms, max_ms, &a);
    return sync_int_script(q, &a, QS_CIRCUIT, err);
}

/* ------------------------------------------------------ dead workers */

int queue_time_ms(queue *q, int64_t *ms, hr_err *err)
{
    redisReply *t = queue_cmd_sync(q, err, "TIME");
    if (!t) return -1;
    *ms = time_reply_ms(t);
    freeReplyObject(t);
    return *ms < 0 ? hr_err_set(err, "redis: TIME: unexpected reply") : 0;
}

void qo_build_reap(const char *ns, const char *worker, int force, const redisReply *keys,
                   queue_argv *a)
{
    qa_evalsha(a, QS_REAP, 0);
    qa_pushkey(a, ns, "workers");
    qa_pushkey(a, ns, "inflight:%s", worker);
    qa_pushkey(a, ns, "reasons");
    qa_pushkey(a, ns, "stats");
    int nl = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        const char *f = keys->element[i]->str;
        if (!f || !strchr(f, ':')) continue; /* an attempt mark, not a lane */
        qa_pushkey(a, ns, "ready:%s", f);
        qa_pushkey(a, ns, "unknown:%s", f);
        qa_pushkey(a, ns, "lane:%s", f); /* budget of the requeued goes back */
        nl++;
    }
    qa_set_nkeys(a, 4 + 3 * nl);
    qa_pushs(a, worker);
    qa_pushs(a, force ? "1" : "0");
    for (size_t i = 0; i < keys->elements; i++) {
        const char *f = keys->element[i]->str;
        if (f && strchr(f, ':')) qa_pushs(a, f);
    }
}

int qo_check_ns(const char *ns, char *out, size_t outlen, hr_err *err)
{
    if (!*ns || strpbrk(ns, "{}") || strlen(ns) >= outlen)
        return hr_err_set(err, "namespace \"%s\": must be 1-63 characters without braces", ns);
    snprintf(out, outlen, "%s", ns);
    return 0;
}

/* reap_worker runs the reap script for one worker: reads its in-flight
 * lanes, then lets the script re-check and move atomically. */
static int reap_worker(queue *q, const char *worker, int force, long *requeued, long *unknown,
                       hr_err *err)
{
    for (int tries = 0; tries < 5; tries++) {
        redisReply *h = queue_cmd_sync(q, err, "HKEYS {%s}:inflight:%s", q->ns, worker);
        if (!h) return -1;
        queue_argv a;
        qa_init(&a);
        qo_build_reap(q->ns, worker, force, h, &a);
        freeReplyObject(h);
        redisReply *r = queue_run_sync(q, &a, QS_REAP, err);
        qa_release(&a);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
            freeReplyObject(r);
            return hr_err_set(err, "redis: reap: unexpected reply");
        }
        long long first = reply_ll(r->element[0]);
        if (first == -2) { /* the record changed between the read and the script */
            freeReplyObject(r);
            continue;
        }
        if (first >= 0 && r->elements == 2) {
            *requeued += (long)first;
            *unknown += (long)reply_ll(r->element[1]);
        }
        freeReplyObject(r);
        return 0;
    }
    return hr_err_set(err, "reap: worker %s: in-flight record kept changing", worker);
}

int queue_reap(queue *q, long *requeued, long *unknown, hr_err *err)
{
    *requeued = *unknown = 0;
    int64_t now;
    if (queue_time_ms(q, &now, err) < 0) return -1;
    redisReply *w = queue_cmd_sync(q, err, "ZRANGEBYSCORE {%s}:workers -inf %lld LIMIT 0 100",
                                   q->ns, now - 1);
    if (!w) return -1;
    int rc = 0;
    for (size_t i = 0; i < w->elements && rc == 0; i++)
        rc = reap_worker(q, w->element[i]->str, 0, requeued, unknown, err);
    freeReplyObject(w);
    return rc;
}

int queue_worker_unregister(queue *q, const char *worker, hr_err *err)
{
    long r = 0, u = 0;
    return reap_worker(q, worker, 1, &r, &u, err);
}

/* ------------------------------------------------- unknown and dead */

/* resolve runs resolve.lua; store (or, with reset_attempts, the stored job
 * with its attempts cleared) replaces the stored job as it moves. */
static int resolve(queue *q, const char *op, const char *id, const char *platform_id,
                   int reset_attempts, const queue_job *store, hr_err *err)
{
    char ukh[QUEUE_UKH_LEN + 1], lane[QUEUE_LANE_MAX];
    if (ukh_of(id, ukh) < 0) return queue_id_check(id, err);
    hr_err_clear(err);
    if (job_lane(q, ukh, lane, err) < 0) return err && err->code ? -1 : 0;
    hr_buf v;
    hr_buf_init(&v);
    if (store) queue_job_encode_stored(store, &v);
    int sent = platform_id && *platform_id && strcmp(op, "sent") == 0;
    queue_job *j = NULL; /* its id, campaign and kind, for a job recorded as sent */
    if (reset_attempts || sent) {
        hr_err e2 = {0};
        j = queue_get(q, ukh, &e2);
    }
    if (j && reset_attempts) {
        j->attempt = 0;
        queue_set(&j->last_error, NULL);
        queue_job_encode_stored(j, &v);
    }
    queue_argv a;
    qa_init(&a);
    qa_evalsha(&a, QS_RESOLVE, 10);
    qa_pushkey(&a, q->ns, "jobs");
    qa_pushkey(&a, q->ns, "done");
    qa_pushkey(&a, q->ns, "reasons");
    qa_pushkey(&a, q->ns, "unknown:%s", lane);
    qa_pushkey(&a, q->ns, "dead:%s", lane);
    qa_pushkey(&a, q->ns, "ready:%s", lane);
    qa_pushkey(&a, q->ns, "stats");
    qa_pushkey(&a, q->ns, "lane:%s", lane); /* a resend's budget goes back */
    qa_pushkey(&a, q->ns, "platform_ids");
    qa_pushkey(&a, q->ns, "polls");
    qa_pushs(&a, op);
    qa_pushs(&a, ukh);
    qa_pushs(&a, ukh);
    qa_pushs(&a, platform_id ? platform_id : "");
    qa_pushs(&a, lane);
    qa_push(&a, v.data ? v.data : "", v.len);
    /* recorded as an ack records it */
    queue_ack_item it = {.ukh = ukh,
                         .id = j ? j->id : NULL,
                         .lane = lane,
                         .platform_id = sent ? platform_id : NULL,
                         .campaign = j ? j->campaign : NULL,
                         .poll = j && j->kind == QUEUE_KIND_POST};
    const queue_ack_item *one = &it;
    qo_push_sent(&a, &one, 1, q->polls, q->npolls);
    hr_buf_release(&v);
    queue_job_free(j);
    return sync_int_script(q, &a, QS_RESOLVE, err);
}

int queue_unknown_resolve(queue *q, const char *id, int sent, const char *platform_id,
                          hr_err *err)
{
    return resolve(q, sent ? "sent" : "resend", id, platform_id, 0, NULL, err);
}

int queue_unknown_resend_job(queue *q, const queue_job *j, hr_err *err)
{
    return resolve(q, "resend", j->id, NULL, 0, j, err);
}

int queue_dead_retry(queue *q, const char *id, hr_err *err)
{
    return resolve(q, "dead_retry", id, NULL, 1, NULL, err);
}

int queue_dead_purge(queue *q, const char *id, hr_err *err)
{
    return resolve(q, "dead_purge", id, NULL, 0, NULL, err);
}

int queue_unknown_attempts(const queue_job *j, const char *reason)
{
    static const char tail[] = " stopped during the send"; /* reap.lua's reason */
    size_t n = reason ? strlen(reason) : 0, t = sizeof tail - 1;
    int reaped = n > t && strncmp(reason, "worker ", 7) == 0 && strcmp(reason + n - t, tail) == 0;
    return j->attempt + reaped;
}

char *queue_dead_reason(queue *q, const char *id, hr_err *err)
{
    char ukh[QUEUE_UKH_LEN + 1];
    if (ukh_of(id, ukh) < 0) {
        queue_id_check(id, err);
        return NULL;
    }
    redisReply *r = queue_cmd_sync(q, err, "HGET {%s}:reasons %s", q->ns, ukh);
    if (!r) return NULL;
    char *s = r->type == REDIS_REPLY_STRING ? hr_strndup(r->str, r->len) : NULL;
    freeReplyObject(r);
    return s;
}

/* ------------------------------------------------------ pause, stats */

int queue_pause(queue *q, const char *what, hr_err *err)
{
    redisReply *r = queue_cmd_sync(q, err, "SADD {%s}:paused %s", q->ns, what);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

int queue_resume(queue *q, const char *what, hr_err *err)
{
    redisReply *r = queue_cmd_sync(q, err, "SREM {%s}:paused %s", q->ns, what);
    if (!r) return -1;
    freeReplyObject(r);
    return 0;
}

int queue_is_paused(queue *q, const char *lane, hr_err *err)
{
    char platform[QUEUE_LANE_MAX];
    snprintf(platform, sizeof platform, "%s", lane);
    char *colon = strchr(platform, ':');
    if (colon) *colon = '\0';
    redisReply *r = queue_cmd_sync(q, err, "SMISMEMBER {%s}:paused %s %s", q->ns, lane, platform);
    if (!r) return -1;
    int p = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_INTEGER &&
            r->element[1]->type == REDIS_REPLY_INTEGER &&
            (r->element[0]->integer || r->element[1]->integer);
    freeReplyObject(r);
    return p;
}

static long long hmget_ll(const redisReply *h, int i)
{
    if (!h || h->type != REDIS_REPLY_ARRAY || (size_t)i >= h->elements) return 0;
    const redisReply *e = h->element[i];
    return e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : 0;
}

int queue_counts(queue *q, queue_lane_counts **out, int *n, hr_err *err)
{
    *out = NULL;
    *n = 0;
    char **lanes;
    int nl;
    if (queue_lanes(q, &lanes, &nl, err) < 0) return -1;
    queue_lane_counts *c = hr_calloc(nl ? (size_t)nl : 1, sizeof *c);
    redisContext *ctx = q->c; /* queue_lanes just used it, so it is connected */
    for (int i = 0; i < nl; i++) {
        const char *l = lanes[i], *ns = q->ns;
        redisAppendCommand(ctx, "ZCARD {%s}:sched:%s", ns, l);
        redisAppendCommand(ctx, "LLEN {%s}:ready:%s", ns, l);
        redisAppendCommand(ctx, "ZCARD {%s}:retry:%s", ns, l);
        redisAppendCommand(ctx, "ZCARD {%s}:dead:%s", ns, l);
        redisAppendCommand(ctx, "ZCARD {%s}:unknown:%s", ns, l);
        redisAppendCommand(ctx, "LINDEX {%s}:ready:%s 0", ns, l);
    }
    int rc = 0;
    /* every pipelined reply is read before any other command is sent */
    char **heads = hr_calloc(nl ? (size_t)nl : 1, sizeof *heads);
    for (int i = 0; i < nl; i++) {
        snprintf(c[i].lane, sizeof c[i].lane, "%s", lanes[i]);
        long *fields[] = {&c[i].scheduled, &c[i].ready, &c[i].retrying, &c[i].dead, &c[i].unknown};
        for (int k = 0; k < 6; k++) {
            redisReply *r = NULL;
            if (redisGetReply(ctx, (void **)&r) != REDIS_OK || !r) {
                if (rc == 0) rc = hr_err_set(err, "redis: %s", ctx->errstr);
                break;
            }
            if (k < 5 && r->type == REDIS_REPLY_INTEGER) *fields[k] = (long)r->integer;
            if (k == 5 && r->type == REDIS_REPLY_STRING) heads[i] = hr_strndup(r->str, r->len);
            freeReplyObject(r);
        }
        if (rc < 0) break;
    }
    if (rc < 0) { /* the pipeline is out of step: start on a new connection */
        redisFree(q->c);
        q->c = NULL;
    }
    /* the lanes' oldest ready jobs, in one HMGET */
    int nh = 0;
    queue_argv ha;
    qa_init(&ha);
    qa_pushs(&ha, "HMGET");
    qa_pushf(&ha, "{%s}:jobs", q->ns);
    for (int i = 0; i < nl; i++)
        if (heads[i]) qa_pushs(&ha, heads[i]), nh++;
    redisReply *hv = rc == 0 && nh ? queue_cmdargv_sync(q, &ha, err) : NULL;
    qa_release(&ha);
    for (int i = 0, k = 0; hv && i < nl; i++) {
        if (!heads[i]) continue;
        const redisReply *e = (size_t)k < hv->elements ? hv->element[k] : NULL;
        k++;
        if (!e || e->type != REDIS_REPLY_STRING) continue;
        queue_job *j = queue_job_decode_stored(heads[i], e->str, e->len, &(hr_err){0});
        /* a job enqueued with no time has waited since it was created */
        if (j) c[i].oldest_ready_ms = j->run_at_ms > 0 ? j->run_at_ms : j->created_ms;
        queue_job_free(j);
    }
    if (hv) freeReplyObject(hv);
    queue_strv_free(heads, nl);
    if (rc == 0) {
        /* in flight: every worker's record, by lane */
        redisReply *w = queue_cmd_sync(q, err, "ZRANGE {%s}:workers 0 -1", q->ns);
        /* only the totals this needs (the stats hash also holds a day of
         * per-minute buckets per lane) */
        redisReply *st = NULL;
        if (w) {
            queue_argv a;
            qa_init(&a);
            qa_pushs(&a, "HMGET");
            qa_pushf(&a, "{%s}:stats", q->ns);
            for (int i = 0; i < nl; i++) {
                qa_pushf(&a, "sent|%s", lanes[i]);
                qa_pushf(&a, "dead|%s", lanes[i]);
                qa_pushf(&a, "retried|%s", lanes[i]);
                qa_pushf(&a, "polled|%s", lanes[i]);
            }
            if (nl == 0) qa_pushs(&a, "-");
            st = queue_cmdargv_sync(q, &a, err);
            qa_release(&a);
        }
        redisReply *pz = st ? queue_cmd_sync(q, err, "SMEMBERS {%s}:paused", q->ns) : NULL;
        if (!pz) rc = -1;
        for (size_t k = 0; rc == 0 && k < w->elements; k++) {
            queue_inflight_job *fj;
            int nf;
            if (queue_inflight(q, w->element[k]->str, &fj, &nf, err) < 0) {
                rc = -1;
                break;
            }
            for (int e = 0; e < nf; e++)
                for (int i = 0; i < nl; i++)
                    if (strcmp(fj[e].lane, lanes[i]) == 0) c[i].inflight++;
            free(fj);
        }
        for (int i = 0; rc == 0 && i < nl; i++) {
            c[i].sent_total = (long)hmget_ll(st, 4 * i);
            c[i].dead_total = (long)hmget_ll(st, 4 * i + 1);
            c[i].retried_total = (long)hmget_ll(st, 4 * i + 2);
            c[i].polled_total = (long)hmget_ll(st, 4 * i + 3);
            char platform[QUEUE_LANE_MAX];
            snprintf(platform, sizeof platform, "%s", lanes[i]);
            char *colon = strchr(platform, ':');
            if (colon) *colon = '\0';
            for (size_t k = 0; k < pz->elements; k++)
                if (strcmp(pz->element[k]->str, lanes[i]) == 0 ||
                    strcmp(pz->element[k]->str, platform) == 0)
                    c[i].paused = 1;
        }
        if (w) freeReplyObject(w);
        if (st) freeReplyObject(st);
        if (pz) freeReplyObject(pz);
    }
    queue_strv_free(lanes, nl);
    if (rc < 0) {
        free(c);
        return -1;
    }
    *out = c;
    *n = nl;
    return 0;
}

int queue_recent(queue *q, const char *lane, int window_min, long *sent, long *dead,
                 long *retried, hr_err *err)
{
    int64_t now_ms;
    if (queue_time_ms(q, &now_ms, err) < 0) return -1;
    long long minute = now_ms / 60000;
    if (window_min < 1) window_min = 1;
    if (window_min > 1440) window_min = 1440;
    static const char *kinds[3] = {"sent", "dead", "retry"};
    long v[3] = {0, 0, 0};
    /* the exact buckets of the window: no scan of the whole hash */
    queue_argv a;
    qa_init(&a);
    qa_pushs(&a, "HMGET");
    qa_pushf(&a, "{%s}:stats", q->ns);
    for (int k = 0; k < 3; k++)
        for (int m = 0; m < window_min; m++)
            qa_pushf(&a, "m|%s|%s|%lld", kinds[k], lane, minute - m);
    redisReply *r = queue_cmdargv_sync(q, &a, err);
    qa_release(&a);
    if (!r) return -1;
    for (int k = 0; k < 3; k++)
        for (int m = 0; m < window_min; m++) v[k] += (long)hmget_ll(r, k * window_min + m);
    freeReplyObject(r);
    if (sent) *sent = v[0];
    if (dead) *dead = v[1];
    if (retried) *retried = v[2];
    return 0;
}

int queue_prune_stats(queue *q, hr_err *err)
{
    int64_t now_ms;
    if (queue_time_ms(q, &now_ms, err) < 0) return -1;
    long long minute = now_ms / 60000;
    unsigned long long cursor = 0;
    int pruned = 0;
    do {
        redisReply *r = queue_cmd_sync(q, err, "HSCAN {%s}:stats %llu MATCH m|* COUNT 1000",
                                       q->ns, cursor);
        if (!r) return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return hr_err_set(err, "redis: HSCAN: unexpected reply");
        }
        cursor = strtoull(r->element[0]->str, NULL, 10);
        redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            const char *f = kv->element[i]->str;
            const char *bar = f ? strrchr(f, '|') : NULL;
            if (!bar || minute - strtoll(bar + 1, NULL, 10) <= 1440) continue;
            redisReply *d = queue_cmd_sync(q, err, "HDEL {%s}:stats %s", q->ns, f);
            if (d) freeReplyObject(d);
            pruned++;
        }
        freeReplyObject(r);
    } while (cursor != 0);
    return pruned;
}

int queue_lateness(queue *q, long counts[QUEUE_LATENESS_BUCKETS], long long *sum_ms, hr_err *err)
{
    queue_argv a;
    qa_init(&a);
    qa_pushs(&a, "HMGET");
    qa_pushf(&a, "{%s}:stats", q->ns);
    for (int i = 0; i < QUEUE_LATENESS_BUCKETS; i++) qa_pushf(&a, "lat|%d", i);
    qa_pushs(&a, "lat|sum_ms");
    redisReply *r = queue_cmdargv_sync(q, &a, err);
    qa_release(&a);
    if (!r) return -1;
    for (int i = 0; i < QUEUE_LATENESS_BUCKETS; i++) counts[i] = (long)hmget_ll(r, i);
    *sum_ms = hmget_ll(r, QUEUE_LATENESS_BUCKETS);
    freeReplyObject(r);
    return 0;
}

int queue_list(queue *q, const char *lane, const char *state, long start, long count,
               char ***out, int *n, hr_err *err)
{
    *out = NULL;
    *n = 0;
    static const char *zsets[] = {"scheduled", "retry", "dead", "unknown"};
    static const char *keys[] = {"sched", "retry", "dead", "unknown"};
    redisReply *r = NULL;
    if (strcmp(state, "ready") == 0) {
        r = queue_cmd_sync(q, err, "LRANGE {%s}:ready:%s %ld %ld", q->ns, lane, start,
                           start + count - 1);
    } else {
        for (size_t i = 0; i < HR_ARRAY_LEN(zsets); i++)
            if (strcmp(state, zsets[i]) == 0)
                r = queue_cmd_sync(q, err, "ZRANGE {%s}:%s:%s %ld %ld", q->ns, keys[i], lane,
                                   start, start + count - 1);
        if (!r && !(err && err->code))
            return hr_err_set(err, "list: unknown state \"%s\" (scheduled, retry, ready, dead, "
                                   "unknown)", state);
    }
    if (!r) return -1;
    char **v = hr_calloc(r->elements + 1, sizeof *v);
    for (size_t i = 0; i < r->elements; i++) v[i] = hr_strndup(r->element[i]->str, r->element[i]->len);
    *out = v;
    *n = (int)r->elements;
    freeReplyObject(r);
    return 0;
}
