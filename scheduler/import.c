/* import.c: `herald import`: reads an export once, streaming, in two
 * passes. Pass 1 validates every item, writes nothing to Redis and spools
 * the items to a temp file (spool.c); pass 2 reads them back, maps them to jobs through
 * the campaign, plans their times and enqueues them in batches, keeping the
 * campaign's import index ({NS}:import:<campaign>) so a re-import adds
 * nothing, an edit updates, and --sync cancels what disappeared. Jobs this
 * run added are logged to a temp file and cancelled if a later batch fails;
 * its lanes are held meanwhile, so none of its jobs is sent before it ends.
 * It does not send; it formats for platforms only to show a dry run. */
#include <errno.h>
#include <stdarg.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <utf8proc.h>

#include "internal.h"

#ifdef HAVE_HERALD_PLATFORMS
#include "platforms.h"
#endif

int (*sched_test_enqueue_fail)(int batch_no);
void (*sched_test_before_edit_reads)(int batch_no);
int64_t (*sched_test_lock_clock_ms)(void);
int (*sched_test_lock_lease_ms)(void);

/* One item of a batch: its jobs are jobs[first .. first+n). */
typedef struct pending {
    char *source;
    uint64_t hash;
    int first, n;
    int64_t publish_ms;
    int changed; /* set at flush: 0 unchanged, 1 changed, 2 new */
    int pending; /* its PENDING entry was sent (and logged for the undo) */
    int dup;     /* its source id is also in this batch: the index lookup
                    could not see the other's write */
    int touch;   /* a bad item skipped under --sync: no jobs, its entry (if
                    any) only gets this run's generation, keeping its jobs */
    char *old;   /* the index entry's job list before this run */
} pending;

/* Index entries whose hash field is one of these never match an item
 * (item_hash avoids them), so their item takes the checked path (the
 * script, job by job) when it comes back: PENDING is written before the
 * script call of a new item's jobs (a kill before its real entry must not
 * leave jobs without one), GONE replaces an entry that --sync or a
 * rollback removed but some of whose jobs could not be cancelled (sent, in
 * flight). Only a new item (no entry) none of whose jobs has a job record
 * or a done record (read with the lookup) goes in with plain commands
 * (queue_enqueue_new_append): the index alone is not trusted, since an
 * entry can be missing (an index from before it was kept for sent jobs,
 * an operator's HDEL), and a plain write over a sent job would send it
 * again. */
enum { HASH_PENDING = 0, HASH_GONE = 1 };
#define LOCK_LEASE_MS 60000
#define LOCK_WAIT_S 180 /* how long an import waits for a lane another plans */

/* lease_ms is the lease of the import's lock and of its lanes' holds:
 * LOCK_LEASE_MS, or a test's (sched_test_lock_lease_ms: a killed import's
 * holds lapse without waiting a minute) */
static int lease_ms(void)
{
    return sched_test_lock_lease_ms ? sched_test_lock_lease_ms() : LOCK_LEASE_MS;
}

/* A batch of items on its way through the pipeline: filled by pass2_cb,
 * then its index entries are looked up, then it is planned and its jobs and
 * index entries are written; it is freed when those replies are read. So
 * Redis writes batch k while the next ones are parsed and planned. */
typedef struct batch {
    pending *pend;
    int npend, cappend;
    queue_job **jobs;
    int njobs, capjobs;
    redisReply *lookup;      /* HMGET of the items' index entries, once read */
    char *known; /* per job: 1 when it has a job or a done record (read
                    for new items only, see known_read) */
    queue_enqueue_batch *eb; /* the jobs' script calls, until their replies */
    queue_job **out;         /* the jobs written by script (borrowed from jobs) */
    int nout;
    queue_enqueue_batch *neb; /* the new jobs' plain commands, until EXEC */
    queue_job **fresh;        /* those jobs (borrowed) */
    int nfresh, fresh_cmds;
} batch;

/* what each reply due on the connection belongs to, in the order sent:
 * SENT_LOOKUP is WATCH and GET of the lock and the HMGET of the index;
 * SENT_TXN is the batch's transaction (MULTI, its new jobs' commands, the
 * index HSET, the renewal of the lock and the lanes' holds, EXEC), its
 * last */
enum { SENT_LOOKUP, SENT_PENDING, SENT_ENQUEUE, SENT_TXN };
typedef struct sent {
    int kind;
    batch *b;
} sent;

typedef struct imp {
    queue *q;
    const sched_import_opts *o;
    sched_import_stats *st;
    hr_err *err;
    sched_campaign *cp;
    sched_account *accts; /* one per campaign lane, then the email lane */
    sched_taken *taken;
    int naccts;
    int email_acct; /* index in accts, or -1 */
    sched_blocks email_blocks;
    sched_contact *contacts;
    int ncontacts;
    uint64_t contacts_hash;
    uint64_t seed;
    int64_t now;
    int pass;
    long total_items, seen;
    FILE *out;
    char index_key[256];
    char lock_key[256];
    char lock_token[33];
    int64_t lock_sent_ms; /* when the last renewal was sent (lock_clock_ms) */
    unsigned lock_ops;    /* --sync's and the rollback's, since the last renewal */
    redisContext *watch_c; /* the connection the lock's WATCH was sent on */
    long long gen;
    char gen_s[24]; /* gen and a space */
    /* pass 2 */
    batch *cur;    /* being filled */
    batch *looked; /* its index lookup sent, to be planned next */
    batch **live;  /* every batch not freed yet (freed on error) */
    int nlive, caplive;
    sent *sent; /* replies due, oldest first: sent[sent_head .. nsent) */
    int sent_head, nsent, capsent;
    int batch_no;
    FILE *undo;
    long undo_n;
    sched_spool *spool; /* pass 1's items, which pass 2 reads back */
    int spool_failed;
    sched_idset ids;     /* pass 1: every id met (hashes), freed after it */
    sched_idset twice;   /* the hashes met twice: pass 2 compares their ids */
    sched_idmap *firsts; /* pass 2: those ids, with the line of their first use */
    int64_t last_progress_ms;
    int bar_shown; /* the progress bar is on stderr's last line */
    int need_text; /* a template or the email body uses {{text}} */
    const hr_config *cfg;
    struct plat_account **fmt_accts; /* dry run: per accts[] index, for plan_text */
} imp;

/* ---- small helpers */

static int in_list(char **v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcasecmp(v[i], s)) return 1;
    return 0;
}

static long utf8_len(const char *s)
{
    long n = 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, -1, &cp);
        p += k > 0 ? k : 1;
        n++;
    }
    return n;
}

/* text_length returns the platform's length of text and its limit (0 when
 * unknown): the platforms module counts when it is built in. */
static void text_length(const char *platform, const char *text, long *len, long *limit)
{
#ifdef HAVE_HERALD_PLATFORMS
    if (plat_count_text(platform, text, len, limit) == 0) return;
#endif
    (void)platform;
    *len = utf8_len(text);
    *limit = 0;
}

static int acct_index(const imp *m, const char *lane)
{
    for (int i = 0; i < m->naccts; i++)
        if (!strcmp(m->accts[i].lane, lane)) return i;
    return -1;
}

/* job_acct returns the index in m->accts of j's lane */
static int job_acct(const imp *m, const queue_job *j)
{
    char lane[QUEUE_LANE_MAX];
    queue_job_lane(j, lane, sizeof lane);
    return acct_index(m, lane);
}

/* ---- accounts and contacts */

static int load_accounts(imp *m, const hr_config *cfg)
{
    sched_campaign *cp = m->cp;
    int n = cp->nlanes + (cp->email_lane ? 1 : 0);
    m->accts = hr_calloc((size_t)n, sizeof *m->accts);
    m->taken = hr_calloc((size_t)n, sizeof *m->taken);
    m->email_acct = -1;
    /* the zone tables' first span: a later time extends them (tz.c) */
    int64_t from = m->now - 86400000LL, to = m->now + 5 * 366 * 86400000LL;
    for (int i = 0; i < n; i++) {
        const char *lane = i < cp->nlanes ? cp->lanes[i] : cp->email_lane;
        if (i < cp->nlanes && acct_index(m, lane) >= 0) continue; /* listed twice */
        const hr_conf_line *l = NULL, *x;
        int pos = -1;
        while ((x = hr_config_next(cfg, "account", &pos)))
            if (x->argc >= 1 && !strcmp(x->argv[0], lane)) l = x;
        char *argv1[1] = {(char *)lane};
        hr_err e = {0};
        sched_account *a = &m->accts[m->naccts];
        if (sched_account_parse(a, l ? l->argc : 1, l ? l->argv : argv1, from, to, &e) < 0) {
            hr_err_set(m->err, "%s:%d: account %s: %s", cfg->path ? cfg->path : "config",
                       l ? l->line : 0, lane, e.msg);
            return -1;
        }
        sched_taken_init(&m->taken[m->naccts]);
        if (i >= cp->nlanes) {
            m->email_acct = m->naccts;
            if (cp->email_rate_per_s > 0) a->rate_per_s = cp->email_rate_per_s;
        }
        m->naccts++;
    }
    return 0;
}

/* cmd runs one command on the import's connection; NULL when there is
 * none (a failed call of the queue dropped it) or it fails */
static redisReply *cmd(imp *m, const char *fmt, ...)
{
    redisContext *c = queue_redis(m->q);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static int redis_fail(imp *m, redisContext *c, redisReply *r)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        hr_err_set(m->err, "redis: %s", r->str);
    else
        hr_err_set(m->err, "redis: %s", c && c->errstr[0] ? c->errstr : "no reply");
    if (r) freeReplyObject(r);
    m->err->code = 1;
    return -1;
}

/* occupancy: jobs already scheduled on our lanes (any campaign) take slots */
static int load_taken(imp *m)
{
    if (!m->q) return 0;
    redisContext *c = queue_redis(m->q);
    enum { PAGE = 10000 }; /* a million-job lane in one reply would cost ~100 MB */
    for (int i = 0; i < m->naccts; i++) {
        if (i == m->email_acct) continue;
        for (long start = 0;; start += PAGE) {
            redisReply *r = redisCommand(c, "ZRANGE {%s}:sched:%s %ld %ld WITHSCORES",
                                         queue_ns(m->q), m->accts[i].lane, start, start + PAGE - 1);
            if (!r || r->type != REDIS_REPLY_ARRAY) return redis_fail(m, c, r);
            size_t n = r->elements / 2;
            for (size_t k = 0; k + 1 < r->elements; k += 2)
                sched_taken_add(&m->taken[i], strtoll(r->element[k + 1]->str, NULL, 10));
            freeReplyObject(r);
            if (n < PAGE) break;
        }
    }
    return 0;
}

static int load_contacts(imp *m, const hr_config *cfg)
{
    if (!m->cp->email_lane) return 0;
    hr_err e = {0};
    if (sched_contacts_load(m->cp->contacts_path, &m->contacts, &m->ncontacts,
                            &m->st->invalid_emails, &e) < 0) {
        hr_err_set(m->err, "import: %s", e.msg);
        return -1;
    }
    if (m->q) {
        char *secret = hr_secret_load(cfg, NULL, &e);
        if (!secret) {
            hr_err_set(m->err,
                       "import: email needs the install's secret for the suppression "
                       "list: %s",
                       e.msg);
            return -1;
        }
        char *gone = hr_calloc((size_t)(m->ncontacts ? m->ncontacts : 1), 1);
        for (int i = 0; i < m->ncontacts; i++) {
            int s = queue_is_suppressed(m->q, secret, m->contacts[i].email, &e);
            if (s < 0) {
                free(secret);
                free(gone);
                hr_err_set(m->err, "import: suppression check: %s", e.msg);
                return -1;
            }
            gone[i] = s == 1;
        }
        int w = 0;
        for (int i = 0; i < m->ncontacts; i++) {
            if (gone[i]) {
                m->st->suppressed++;
                sched_contacts_free_one(&m->contacts[i]);
            } else {
                m->contacts[w++] = m->contacts[i];
            }
        }
        m->ncontacts = w;
        free(gone);
        free(secret);
    }
    uint64_t h = SCHED_HASH_INIT;
    for (int i = 0; i < m->ncontacts; i++) {
        h = sched_hash64(h, m->contacts[i].email);
        h = sched_hash64(h, m->contacts[i].first_name);
        h = sched_hash64(h, m->contacts[i].last_name);
        for (int k = 0; k < m->contacts[i].nvars; k++)
            h = sched_hash64(h, m->contacts[i].vars[k].value);
    }
    m->contacts_hash = h;
    return 0;
}

/* ---- item checks shared by both passes */

/* wanted returns 1 when the campaign takes the item (status and type). */
static int wanted(const imp *m, const sched_item *it)
{
    int drafts = m->o->drafts || m->cp->drafts;
    int st_ok = in_list(m->cp->statuses, m->cp->nstatuses, it->status) ||
                (drafts && !strcmp(it->status, "draft"));
    return st_ok && in_list(m->cp->types, m->cp->ntypes, it->type);
}

/* item_lanes fills sel[] (account indexes) for the item's platforms, or
 * writes the reason into why: a platform not in the campaign, or a lane
 * whose template gives the item an empty post (the worker would send its
 * own default template instead of the campaign's: a bad item, in both
 * passes and the dry run alike). plain: the item's {{text}} when already
 * made, else NULL. */
static int item_lanes(const imp *m, const sched_item *it, const char *plain, int *sel, int *nsel,
                      char *why, size_t whylen)
{
    *nsel = 0;
    int nposts = m->cp->nlanes;
    if (it->nplatforms == 0)
        for (int i = 0; i < m->naccts; i++)
            if (i != m->email_acct) sel[(*nsel)++] = i;
    for (int k = 0; k < it->nplatforms; k++) {
        const char *p = it->platforms[k];
        int found = 0;
        for (int i = 0; i < m->naccts && nposts; i++) {
            if (i == m->email_acct) continue;
            int match =
                strchr(p, ':') ? !strcmp(m->accts[i].lane, p) : !strcmp(m->accts[i].platform, p);
            if (!match) continue;
            found = 1;
            int dup = 0;
            for (int j = 0; j < *nsel; j++)
                dup |= sel[j] == i;
            if (!dup) sel[(*nsel)++] = i;
        }
        if (!found) {
            snprintf(why, whylen, "platform \"%.60s\" is not in campaign %.60s's platforms", p,
                     m->cp->name);
            return -1;
        }
    }
    const char *last = NULL;
    for (int k = 0; k < *nsel; k++) {
        const char *lane = m->accts[sel[k]].lane, *tmpl = sched_campaign_template(m->cp, lane);
        if (tmpl == last) continue; /* lanes sharing a template: checked once */
        last = tmpl;
        if (sched_render_blank(tmpl, it, plain, it->vars, it->nvars)) {
            snprintf(why, whylen, "template \"%.80s\" of %.60s gives an empty post", tmpl, lane);
            return -1;
        }
    }
    return 0;
}

static void report_invalid(imp *m, const sched_item *it, const char *why)
{
    m->st->invalid++;
    char where[300];
    if (m->o->skip_invalid)
        fprintf(m->out, "skipped: %s: %s: %s\n", sched_item_where(it, where, sizeof where), it->id,
                why);
}

/* ---- ids used twice */

/* dup_why writes the reason an item whose id an earlier one (at line
 * first) used is a bad item */
static void dup_why(const sched_item *it, long first, char *why, size_t len)
{
    const char *id = strchr(it->id, ':'); /* as the export writes it */
    snprintf(why, len, "id %.100s already used by %s %ld", id ? id + 1 : it->id,
             it->format == SCHED_FMT_GHOST ? "record" : "line", first);
}

typedef struct first_use {
    const imp *m;
    const char *id;
    long line;
} first_use;

static int first_use_cb(const sched_item *it, void *priv, hr_err *err)
{
    first_use *f = priv;
    (void)err;
    if (it->error || strcmp(it->id, f->id) || !wanted(f->m, it)) return 0;
    f->line = it->line;
    return -1;
}

/* id_reused checks, in pass 1, whether the id of an item the campaign
 * takes was met before (only those: a WordPress export repeats the ids of
 * its nav_menu_items): a
 * hash met before is confirmed from the spool (where pass 1 put the items
 * so far) without --skip-invalid, which fails on it; with it, pass 2
 * compares the ids (id_reused_exact). Returns the earlier item's line, 0
 * when not reused, -1 when the spool cannot be read (err set). */
static long id_reused(imp *m, const sched_item *it, hr_err *err)
{
    uint64_t h = sched_id_hash(it->id);
    if (!sched_idset_add(&m->ids, h)) return 0;
    sched_idset_add(&m->twice, h);
    if (m->o->skip_invalid) return 0;
    first_use f = {m, it->id, 0};
    if (sched_spool_read(m->spool, first_use_cb, &f, err) < 0 && !f.line) return -1;
    return f.line; /* 0: another id of the same hash */
}

/* id_reused_exact is pass 2's check of an item whose id's hash was met
 * twice in pass 1: the earlier item's line, or 0 (the id is noted) */
static long id_reused_exact(imp *m, const sched_item *it)
{
    if (!m->twice.n || !sched_idset_has(&m->twice, sched_id_hash(it->id))) return 0;
    long first = sched_idmap_put(&m->firsts, it->id, it->line);
    return first < 0 ? 0 : first;
}

/* ---- pass 1 */

static int pass1_cb(const sched_item *it, void *priv, hr_err *err)
{
    imp *m = priv;
    m->total_items++;
    int take = !it->error && wanted(m, it);
    /* an id used twice: which of the two is meant cannot be told */
    long first = take ? id_reused(m, it, err) : 0;
    if (first < 0) {
        m->spool_failed = 1;
        return -1;
    }
    /* pass 2 only counts or lists an item it does not take: its body and
     * the rest are not spooled */
    sched_item lite = {.format = it->format, .file = it->file, .line = it->line, .id = it->id,
                       .status = it->status, .type = it->type, .error = it->error,
                       .publish_ms = it->publish_ms};
    if (sched_spool_put(m->spool, take ? it : &lite, err) < 0) {
        m->spool_failed = 1;
        return -1;
    }
    char why[240];
    const char *problem = it->error;
    if (first > 0) {
        dup_why(it, first, why, sizeof why);
        problem = why;
    } else if (take && !m->o->skip_invalid) { /* else pass 2 checks and lists it */
        int sel[SCHED_MAX_LANES + 1], nsel;
        if (item_lanes(m, it, NULL, sel, &nsel, why, sizeof why) < 0) problem = why;
    }
    if (!problem) return 0;
    if (m->o->skip_invalid) return 0; /* listed in pass 2, which meets it again */
    m->st->invalid++;
    char where[300];
    hr_err_set(err, "import: %s: %s", sched_item_where(it, where, sizeof where), problem);
    err->code = 2;
    return -1;
}

/* ---- pass 2: building jobs */

static uint64_t item_hash(const imp *m, const sched_item *it)
{
    uint64_t h = m->cp->config_hash ^ m->contacts_hash;
    h = sched_hash64(h, it->title);
    h = sched_hash64(h, it->link);
    h = sched_hash64(h, it->html);
    h = sched_hash64(h, it->text);
    h = sched_hash64(h, it->excerpt);
    h = sched_hash64(h, it->image);
    h = sched_hash64(h, it->status);
    h = sched_hash64(h, it->author);
    h = sched_hash64(h, it->type);
    char t[24]; /* the time in decimal, written by hand: once per item */
    int k = (int)sizeof t;
    t[--k] = '\0';
    unsigned long long u = it->publish_ms < 0 ? 0ULL - (unsigned long long)it->publish_ms
                                              : (unsigned long long)it->publish_ms;
    do {
        t[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (it->publish_ms < 0) t[--k] = '-';
    h = sched_hash64(h, t + k);
    for (int i = 0; i < it->ntags; i++)
        h = sched_hash64(h, it->tags[i]);
    h = sched_hash64(h, "|");
    for (int i = 0; i < it->nplatforms; i++)
        h = sched_hash64(h, it->platforms[i]);
    for (int i = 0; i < it->nvars; i++)
        h = sched_hash64(sched_hash64(h, it->vars[i].key), it->vars[i].value);
    return h <= HASH_GONE ? h + HASH_GONE + 1 : h; /* never a marker */
}

static batch *batch_new(imp *m)
{
    batch *b = hr_calloc(1, sizeof *b);
    if (m->nlive == m->caplive) {
        m->caplive = m->caplive ? m->caplive * 2 : 8;
        m->live = hr_realloc(m->live, (size_t)m->caplive * sizeof *m->live);
    }
    m->live[m->nlive++] = b;
    return b;
}

static void batch_free(imp *m, batch *b)
{
    if (!b) return;
    for (int i = 0; i < m->nlive; i++)
        if (m->live[i] == b) m->live[i] = m->live[--m->nlive];
    for (int i = 0; i < b->npend; i++) {
        free(b->pend[i].source);
        free(b->pend[i].old);
    }
    for (int i = 0; i < b->njobs; i++)
        queue_job_free(b->jobs[i]);
    free(b->pend);
    free(b->jobs);
    if (b->lookup) freeReplyObject(b->lookup);
    free(b->known);
    queue_enqueue_batch_free(b->eb);
    queue_enqueue_batch_free(b->neb);
    free(b->out);
    free(b->fresh);
    free(b);
}

static void push_job(batch *b, queue_job *j)
{
    if (b->njobs == b->capjobs) {
        b->capjobs = b->capjobs ? b->capjobs * 2 : 256;
        b->jobs = hr_realloc(b->jobs, (size_t)b->capjobs * sizeof *b->jobs);
    }
    b->jobs[b->njobs++] = j;
}

/* PUBLISH_META is the job meta that keeps the item's publish time (ms, in
 * decimal) the job was planned from: an edit that moves it re-plans the job */
#define PUBLISH_META "publish_ms"

static queue_job *base_job(const imp *m, const sched_item *it, const sched_account *a,
                           const char *link, const char *email, const char *pub)
{
    queue_job *j = queue_job_new();
    queue_job_set_meta(j, PUBLISH_META, pub);
    queue_set(&j->platform, a->platform);
    queue_set(&j->account, a->account);
    queue_set(&j->campaign, m->cp->name);
    queue_set(&j->source, it->id);
    /* campaign|item|platform|account[|email], joined by hand: once per job */
    const char *part[5] = {m->cp->name, it->id, a->platform, a->account, email};
    hr_buf key;
    hr_buf_init(&key);
    hr_buf_reserve(&key, 96);
    for (int i = 0; i < (email ? 5 : 4); i++) {
        if (i) hr_buf_putc(&key, '|');
        hr_buf_puts(&key, part[i]);
    }
    j->unique_key = hr_buf_detach(&key);
    j->max_attempts = m->cp->max_attempts;
    queue_set(&j->title, it->title);
    queue_set(&j->excerpt, it->excerpt);
    queue_set(&j->link, link);
    for (int i = 0; i < it->ntags; i++)
        queue_job_add_tag(j, it->tags[i]);
    if (it->image && *it->image) {
        char *img = it->image[0] == '/' && m->cp->base_url
                        ? hr_asprintf("%s%s", m->cp->base_url, it->image)
                        : hr_strdup(it->image);
        queue_job_add_media(j, img);
        free(img);
    }
    return j;
}

static int pass2_flush(imp *m, int final);

/* pend_add adds an item (source id) to the batch being filled, *b */
static pending *pend_add(imp *m, const char *source, batch **bp)
{
    if (!m->cur) m->cur = batch_new(m);
    batch *b = *bp = m->cur;
    if (b->npend == b->cappend) {
        b->cappend = b->cappend ? b->cappend * 2 : 64;
        b->pend = hr_realloc(b->pend, (size_t)b->cappend * sizeof *b->pend);
    }
    pending *p = &b->pend[b->npend++];
    memset(p, 0, sizeof *p);
    p->source = hr_strdup(source);
    p->first = b->njobs;
    return p;
}

/* batch_full flushes the batch being filled once it has --batch jobs or
 * items */
static int batch_full(imp *m, const batch *b)
{
    int limit = m->o->batch > 0 ? m->o->batch : 1000;
    return b->njobs >= limit || b->npend >= limit ? pass2_flush(m, 0) : 0;
}

/* skip_invalid lists a bad item; with --sync, one the campaign would take
 * keeps its jobs (a typo in its date does not unpublish it): its entry,
 * if it has one, gets this run's generation, so sync_gone leaves it */
static int skip_invalid(imp *m, const sched_item *it, const char *why)
{
    report_invalid(m, it, why);
    if (!m->o->sync || m->o->dry_run || !wanted(m, it)) return 0;
    batch *b;
    pend_add(m, it->id, &b)->touch = 1;
    return batch_full(m, b);
}

static int pass2_cb(const sched_item *it, void *priv, hr_err *err)
{
    imp *m = priv;
    (void)err;
    m->seen++;
    if (m->o->progress && (m->seen % 1000) == 0) {
        int64_t t = hr_mono_ms();
        if (t - m->last_progress_ms >= 100) {
            m->last_progress_ms = t;
            int pct = m->total_items ? (int)(m->seen * 100 / m->total_items) : 0;
            char bar[31];
            memset(bar, ' ', 30);
            bar[30] = '\0';
            memset(bar, '#', (size_t)(pct * 30 / 100));
            fprintf(stderr, "\rimport [%s] %3d%% %ld/%ld items", bar, pct, m->seen, m->total_items);
            m->bar_shown = 1;
        }
    }
    m->st->items++;
    char why[240];
    if (it->error) return skip_invalid(m, it, it->error);
    if (!wanted(m, it)) {
        m->st->filtered++;
        return 0;
    }
    long first = id_reused_exact(m, it);
    if (first) {
        dup_why(it, first, why, sizeof why);
        report_invalid(m, it, why);
        return 0;
    }
    /* HTML to text is the dearest step per item: only when something uses
     * it, and once (the blank check and the render share it) */
    char *plain = m->need_text ? sched_item_plain(it) : NULL;
    int sel[SCHED_MAX_LANES + 1], nsel;
    if (item_lanes(m, it, plain, sel, &nsel, why, sizeof why) < 0) {
        free(plain);
        return skip_invalid(m, it, why);
    }
    m->st->taken++;
    char *link = it->link && it->link[0] == '/' && m->cp->base_url
                     ? hr_asprintf("%s%s", m->cp->base_url, it->link)
                     : hr_strdup(it->link);
    sched_item view = *it;
    view.link = link;
    batch *b;
    pending *p = pend_add(m, it->id, &b);
    p->hash = item_hash(m, it);
    p->publish_ms = it->publish_ms;
    char pub[24];
    snprintf(pub, sizeof pub, "%lld", (long long)it->publish_ms);
    const char *last_tmpl = NULL, *last_text = NULL;
    for (int k = 0; k < nsel; k++) {
        const sched_account *a = &m->accts[sel[k]];
        queue_job *j = base_job(m, &view, a, link, NULL, pub);
        j->kind = QUEUE_KIND_POST;
        /* lanes sharing a template share its rendering */
        const char *tmpl = sched_campaign_template(m->cp, a->lane);
        j->text = tmpl == last_tmpl && last_text
                      ? hr_strdup(last_text)
                      : sched_render(tmpl, &view, plain, it->vars, it->nvars);
        last_tmpl = tmpl;
        last_text = j->text;
        push_job(b, j);
    }
    if (m->email_acct >= 0) {
        const sched_account *a = &m->accts[m->email_acct];
        for (int c = 0; c < m->ncontacts; c++) {
            const sched_contact *ct = &m->contacts[c];
            int nv = ct->nvars + it->nvars + 3;
            queue_kv *vars = hr_malloc((size_t)nv * sizeof *vars);
            int k = 0;
            vars[k++] = (queue_kv){"first_name", ct->first_name};
            vars[k++] = (queue_kv){"last_name", ct->last_name};
            vars[k++] = (queue_kv){"email", ct->email};
            for (int i = 0; i < ct->nvars; i++)
                vars[k++] = ct->vars[i];
            for (int i = 0; i < it->nvars; i++)
                vars[k++] = it->vars[i];
            queue_job *j = base_job(m, &view, a, link, ct->email, pub);
            j->kind = QUEUE_KIND_EMAIL;
            queue_set(&j->to, ct->email);
            char *name = hr_asprintf("%s %s", ct->first_name, ct->last_name);
            char *trim = name;
            while (*trim == ' ')
                trim++;
            size_t nl = strlen(trim);
            while (nl && trim[nl - 1] == ' ')
                trim[--nl] = '\0';
            if (*trim) queue_set(&j->to_name, trim);
            free(name);
            j->subject = sched_render(m->cp->subject, &view, plain, vars, k);
            j->html = m->cp->email_html ? sched_render(m->cp->email_html, &view, plain, vars, k)
                                        : hr_strdup(it->html);
            j->body_text = m->cp->email_text
                               ? sched_render(m->cp->email_text, &view, plain, vars, k)
                               : hr_strdup(plain);
            for (int i = 0; i < k; i++)
                queue_job_set_var(j, vars[i].key, vars[i].value);
            free(vars);
            push_job(b, j);
        }
    }
    p->n = b->njobs - p->first;
    free(plain);
    free(link);
    return batch_full(m, b);
}

/* ---- pass 2: planning and writing a batch */

/* plan_item sets the run time of each job of item p. Returns 0, or -1 with
 * m->err (a bad item: a post for which no slot fits) */
static int plan_item(imp *m, const batch *b, pending *p, const int64_t *keep_ms)
{
    long email_k = 0;
    int64_t email_start = 0;
    for (int i = 0; i < p->n; i++) {
        queue_job *j = b->jobs[p->first + i];
        if (keep_ms && keep_ms[i] > 0) { /* an edit keeps its time */
            j->run_at_ms = keep_ms[i];
            continue;
        }
        char lane[QUEUE_LANE_MAX];
        queue_job_lane(j, lane, sizeof lane);
        int ai = acct_index(m, lane);
        const sched_account *a = &m->accts[ai];
        if (j->kind == QUEUE_KIND_EMAIL) {
            if (email_k == 0) {
                long n = 0;
                for (int k = i; k < p->n; k++)
                    n += b->jobs[p->first + k]->kind == QUEUE_KIND_EMAIL;
                int64_t at = p->publish_ms > m->now ? p->publish_ms : m->now;
                email_start = sched_rate_block(a, &m->email_blocks, at, n);
            }
            j->run_at_ms = sched_rate_at(a, email_start, email_k++);
        } else {
            int64_t t =
                sched_place(a, &m->taken[ai], m->seed, j->unique_key, m->now, p->publish_ms);
            if (t < 0) {
                hr_err_set(m->err,
                           "import: item %s: no free slot for %s within the search horizon "
                           "(a week of slots past the lane's last job)",
                           p->source, lane);
                m->err->code = 2;
                return -1;
            }
            j->run_at_ms = t;
        }
    }
    return 0;
}

/* plan_text returns (new) a planned job's text, and its length and limit,
 * as the worker will send it: formatted for its account by the platforms
 * module, as `herald preview` shows it (UTM parameters on the link,
 * Bluesky's shortened links, fitting to the limit); for an email, its
 * subject. Only the dry run pays for this: an import sends the text as
 * rendered and the worker formats it. */
static char *plan_text(imp *m, const queue_job *j, int ai, long *len, long *limit)
{
    const char *raw = j->kind == QUEUE_KIND_EMAIL ? j->subject : j->text;
#ifdef HAVE_HERALD_PLATFORMS
    if (!m->fmt_accts) m->fmt_accts = hr_calloc((size_t)m->naccts, sizeof *m->fmt_accts);
    hr_err e = {0};
    if (!m->fmt_accts[ai]) {
        /* a lane without an account line is formatted with the defaults */
        m->fmt_accts[ai] = plat_account_find(m->cfg, j->platform, j->account, &e);
        if (!m->fmt_accts[ai]) m->fmt_accts[ai] = plat_account_default(j->platform, &e);
    }
    plat_post p = {0};
    plat_ctx ctx = {.now_ms = m->now};
    if (m->fmt_accts[ai] && plat_format_job(m->fmt_accts[ai], j, &ctx, 0, &p, &e) == 0 &&
        p.nparts) {
        char *t = hr_strdup(j->kind == QUEUE_KIND_EMAIL ? p.subject : p.parts[0].text);
        *len = p.parts[0].length;
        *limit = p.limit;
        plat_post_release(&p);
        return t;
    }
    plat_post_release(&p); /* text that cannot be formatted is shown as it is */
#endif
    text_length(j->platform, raw ? raw : "", len, limit);
    return hr_strdup(raw ? raw : "");
}

/* bar_clear blanks the progress bar's line, so that what comes next (the
 * plan, on the same terminal, or the summary) starts on a clean line */
static void bar_clear(imp *m)
{
    if (m->bar_shown) fprintf(stderr, "\r%*s\r", 70, "");
    m->bar_shown = 0;
}

static void print_plan(imp *m, const batch *b, pending *p)
{
    if (p->n) bar_clear(m);
    m->st->planned += p->n;
    for (int i = 0; i < p->n; i++) {
        queue_job *j = b->jobs[p->first + i];
        if (m->o->on_planned) {
            m->o->on_planned(j, m->o->planned_priv);
            continue;
        }
        char lane[QUEUE_LANE_MAX];
        queue_job_lane(j, lane, sizeof lane);
        int ai = acct_index(m, lane);
        const sched_account *a = &m->accts[ai];
        long len, limit;
        char *text = plan_text(m, j, ai, &len, &limit);
        if (m->o->json) {
            char *js = NULL;
            char run[40];
            hr_format_rfc3339(j->run_at_ms, run, sizeof run);
            json_t *o = json_pack("{s:s,s:s?,s:s,s:s,s:s,s:s,s:s?,s:I,s:o}", "source", j->source,
                                  "title", j->title, "platform", j->platform, "account", j->account,
                                  "kind", j->kind == QUEUE_KIND_EMAIL ? "email" : "post", "run_at",
                                  run, "text", text, "length", (json_int_t)len, "limit",
                                  limit > 0 ? json_integer(limit) : json_null());
            if (o && j->to) json_object_set_new(o, "to", json_string(j->to));
            js = o ? json_dumps(o, JSON_COMPACT) : NULL;
            if (js) fprintf(m->out, "%s\n", js);
            free(js);
            json_decref(o);
            free(text);
            continue;
        }
        struct tm tm;
        sched_tz_local(a->tz, j->run_at_ms, &tm);
        int off = (int)tm.tm_gmtoff;
        char when[64];
        snprintf(when, sizeof when, "%04d-%02d-%02d %02d:%02d%c%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, off < 0 ? '-' : '+',
                 abs(off) / 3600, abs(off) % 3600 / 60);
        /* preview: 40 characters on one line, cut on a character boundary */
        char prev[200];
        size_t w = 0;
        int chars = 0;
        const char *s = text;
        if (j->kind == QUEUE_KIND_EMAIL) {
            w = (size_t)snprintf(prev, sizeof prev, "%.60s: ", j->to);
        }
        while (*s && chars < 40 && w + 5 < sizeof prev) {
            unsigned char c = (unsigned char)*s;
            size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (c == '\n' || c == '\t' || c == '\r') {
                prev[w++] = ' ';
                s++;
            } else {
                for (size_t k = 0; k < n && s[k]; k++)
                    prev[w++] = s[k];
                s += n;
            }
            chars++;
        }
        if (*s && w + 3 < sizeof prev) prev[w++] = '.', prev[w++] = '.', prev[w++] = '.';
        prev[w] = '\0';
        char lim[32] = "-";
        if (limit > 0) snprintf(lim, sizeof lim, "%ld", limit);
        fprintf(m->out, "%-22s %-10s %-24s %5ld/%-5s %s\n", when, j->platform, j->account, len, lim,
                prev);
        free(text);
    }
}

/* old entry: "<gen> <hash> <ukh>,<ukh>..." */
static int parse_entry(const char *v, long long *gen, uint64_t *hash, const char **ids)
{
    char *end;
    *gen = strtoll(v, &end, 10);
    if (*end != ' ') return -1;
    *hash = strtoull(end + 1, &end, 16);
    if (*end != ' ' && *end != '\0') return -1;
    *ids = *end ? end + 1 : "";
    return 0;
}

/* next_ukh reads the entry of a comma-separated ukh list at s into ukh
 * ("" when it is not a ukh) and returns where the next one starts, or NULL
 * at the end of the list. */
static const char *next_ukh(const char *s, char ukh[QUEUE_UKH_LEN + 1])
{
    if (!s || !*s) return NULL;
    size_t n = strcspn(s, ",");
    ukh[0] = '\0';
    if (n == QUEUE_UKH_LEN) {
        memcpy(ukh, s, n);
        ukh[n] = '\0';
    }
    return s[n] ? s + n + 1 : s + n;
}

static int list_has(const char *list, const char *ukh)
{
    char u[QUEUE_UKH_LEN + 1];
    for (const char *p = list; (p = next_ukh(p, u));)
        if (!strcmp(u, ukh)) return 1;
    return 0;
}

/* ---- pass 2: the pipeline to Redis */

static int pipe_fail(imp *m, const char *what)
{
    redisContext *c = queue_redis(m->q);
    hr_err_set(m->err, "redis: %s: %s", what, c && c->errstr[0] ? c->errstr : "connection lost");
    m->err->code = 1;
    return -1;
}

static int pipe_flush(imp *m)
{
    redisContext *c = queue_redis(m->q);
    int done = 0;
    while (!done)
        if (!c || redisBufferWrite(c, &done) == REDIS_ERR) return pipe_fail(m, "write");
    return 0;
}

static void pipe_push(imp *m, int kind, batch *b)
{
    if (m->nsent == m->capsent && m->sent_head > 0) {
        /* slide the read entries out before growing */
        m->nsent -= m->sent_head;
        memmove(m->sent, m->sent + m->sent_head, (size_t)m->nsent * sizeof *m->sent);
        m->sent_head = 0;
    }
    if (m->nsent == m->capsent) {
        m->capsent = m->capsent ? m->capsent * 2 : 16;
        m->sent = hr_realloc(m->sent, (size_t)m->capsent * sizeof *m->sent);
    }
    m->sent[m->nsent++] = (sent){kind, b};
}

/* undo_put appends a record to the undo log: its type ('j' a job added,
 * 'h' a job stored but not scheduled, 's' an index entry added, 'e' and
 * 'u' an edited item's entry and job before the edit), its
 * length and its bytes, so any source id reads back whole. */
static void undo_put(imp *m, char type, const char *data, size_t len)
{
    fprintf(m->undo, "%c %zu ", type, len);
    fwrite(data, 1, len, m->undo);
    putc('\n', m->undo);
}

/* put_fields appends n strings, each with its NUL */
static void put_fields(hr_buf *v, const char *const *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hr_buf_append(v, f[i], strlen(f[i]) + 1);
}

/* undo_put_entry logs the index entry (value) of an edited item before the
 * edit writes it ('e': source and value, NUL-separated) */
static void undo_put_entry(imp *m, const char *source, const char *value)
{
    hr_buf v;
    hr_buf_init(&v);
    put_fields(&v, (const char *[]){source, value}, 2);
    undo_put(m, 'e', v.data, v.len);
    hr_buf_release(&v);
}

/* undo_put_job logs a job an edit is about to update ('u': its ukh, lane
 * and time, NUL-separated, then its stored value, binary), so a rollback
 * can put it back as it was */
static void undo_put_job(imp *m, const queue_job *old)
{
    char lane[QUEUE_LANE_MAX], at[24];
    queue_job_lane(old, lane, sizeof lane);
    snprintf(at, sizeof at, "%lld", (long long)old->run_at_ms);
    hr_buf v;
    hr_buf_init(&v);
    put_fields(&v, (const char *[]){queue_job_ukh(old), lane, at}, 3);
    queue_job_encode_stored(old, &v);
    undo_put(m, 'u', v.data, v.len);
    hr_buf_release(&v);
}

/* undo_check fails the import when the undo log could not be written
 * (disk full): no more is sent that a rollback would not know. */
static int undo_check(imp *m)
{
    if (fflush(m->undo) == 0 && !ferror(m->undo)) return 0;
    hr_err_set(m->err, "import: cannot write the undo log: %s", strerror(errno));
    m->err->code = 1;
    return -1;
}

/* enqueued takes a batch's job results into the stats and the undo log,
 * also those of a batch that failed midway: its chunks that ran added jobs
 * the rollback must remove. Only ADDED jobs are this run's to undo: an
 * UPDATED one was there before (or is logged as ADDED by an earlier batch
 * or its own twin in the batch). */
static void enqueued(imp *m, queue_job *const *jobs, int n, const int *res)
{
    for (int i = 0; i < n; i++) {
        if (res[i] == QUEUE_FAILED || res[i] == QUEUE_UNKNOWN) continue;
        switch (res[i]) {
        case QUEUE_STORED: /* never scheduled: deleted, not cancelled */
        case QUEUE_ADDED:
            if (res[i] == QUEUE_ADDED) m->st->added++;
            undo_put(m, res[i] == QUEUE_ADDED ? 'j' : 'h', queue_job_ukh(jobs[i]), QUEUE_UKH_LEN);
            m->undo_n++;
            break;
        case QUEUE_UPDATED:
            m->st->updated++;
            break;
        case QUEUE_DONE:
            m->st->done++;
            break;
        default:
            m->st->unchanged++;
            break;
        }
        if (jobs[i]->kind == QUEUE_KIND_EMAIL) m->st->emails++;
    }
}

/* txn_read reads the replies of a batch's transaction: MULTI, one QUEUED
 * per command, EXEC. Returns 0 or -1 with m->err: the lock was lost
 * (EXEC did nothing), a command was refused (EXECABORT: nothing ran), or
 * one failed inside EXEC (the others ran: the new jobs' results say what
 * was written, for the rollback). */
static int txn_read(imp *m, batch *b)
{
    redisContext *c = queue_redis(m->q);
    int nq = b->fresh_cmds + 2, rc = 0;
    char refused[200] = "";
    redisReply *r = NULL;
    for (int i = 0; i < nq + 1; i++) {
        if (!c || redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            if (b->neb) {
                int *res = hr_calloc((size_t)(b->nfresh ? b->nfresh : 1), sizeof *res);
                queue_enqueue_new_results(b->neb, NULL, 0, res, &(hr_err){0});
                b->neb = NULL;
                free(res);
            }
            return pipe_fail(m, "import batch");
        }
        if (r->type == REDIS_REPLY_ERROR && !refused[0])
            snprintf(refused, sizeof refused, "%s", r->str);
        freeReplyObject(r);
    }
    if (!c || redisGetReply(c, (void **)&r) != REDIS_OK || !r) return pipe_fail(m, "import batch");
    int *res = hr_calloc((size_t)(b->nfresh ? b->nfresh : 1), sizeof *res);
    hr_err e = {0};
    if (r->type == REDIS_REPLY_NIL) {
        hr_err_set(m->err, "import: lost the lock of campaign %s (%s): it changed or its "
                   "lease of %d s ran out; this batch's transaction was not written",
                   m->cp->name, m->lock_key, lease_ms() / 1000);
        rc = -1;
    } else if (r->type != REDIS_REPLY_ARRAY) {
        hr_err_set(m->err, "redis: import batch: %s (not written)",
                   refused[0] ? refused : r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        rc = -1;
    }
    if (b->neb) {
        if (queue_enqueue_new_results(b->neb, rc == 0 ? r : NULL, 0, res, &e) < 0 && rc == 0) {
            hr_err_set(m->err, "%s", e.msg);
            rc = -1;
        }
        b->neb = NULL;
        if (rc < 0 && r->type != REDIS_REPLY_ARRAY)
            for (int i = 0; i < b->nfresh; i++)
                res[i] = QUEUE_FAILED; /* nothing ran */
        enqueued(m, b->fresh, b->nfresh, res);
    }
    if (rc == 0) {
        redisReply *ix = r->element[r->elements - 2], *px = r->element[r->elements - 1];
        if (ix->type == REDIS_REPLY_ERROR) {
            hr_err_set(m->err, "redis: import index update: %s", ix->str);
            rc = -1;
        } else if (px->type != REDIS_REPLY_INTEGER || px->integer != 1) {
            hr_err_set(m->err, "import: lost the lock of campaign %s (%s)", m->cp->name,
                       m->lock_key);
            rc = -1;
        }
    }
    if (rc < 0) m->err->code = 1;
    free(res);
    freeReplyObject(r);
    return rc;
}

/* lookup_read reads a batch's lookup: WATCH and GET of the lock, then the
 * HMGET of its index entries. The lock must still hold this run's token:
 * nothing of the batch is sent before that is known, and the WATCH makes
 * its EXEC fail if the lock changes later. Returns 0 or -1 with m->err. */
static int lookup_read(imp *m, batch *b)
{
    redisContext *c = queue_redis(m->q);
    int n = 3, rc = 0;
    redisReply *r[3] = {0};
    for (int i = 0; i < n; i++)
        if (!c || redisGetReply(c, (void **)&r[i]) != REDIS_OK || !r[i]) {
            rc = pipe_fail(m, "import index");
            break;
        }
    for (int i = 0; rc == 0 && i < n; i++)
        if (r[i]->type == REDIS_REPLY_ERROR) {
            hr_err_set(m->err, "redis: import index: %s", r[i]->str);
            m->err->code = 1;
            rc = -1;
        }
    if (rc == 0 && (r[1]->type != REDIS_REPLY_STRING || strcmp(r[1]->str, m->lock_token))) {
        hr_err_set(m->err, "import: lost the lock of campaign %s (%s): %s; stopped before "
                   "writing batch %d", m->cp->name, m->lock_key,
                   r[1]->type == REDIS_REPLY_STRING ? "another import holds it" : "it is gone",
                   m->batch_no + 1);
        m->err->code = 1;
        rc = -1;
    }
    if (rc == 0 && (r[2]->type != REDIS_REPLY_ARRAY || r[2]->elements != (size_t)b->npend)) {
        hr_err_set(m->err, "redis: import index: unexpected reply");
        m->err->code = 1;
        rc = -1;
    }
    if (rc == 0) {
        b->lookup = r[2];
        r[2] = NULL;
    }
    for (int i = 0; i < n; i++)
        if (r[i]) freeReplyObject(r[i]);
    return rc;
}

/* pipe_read reads the oldest reply due; the last one of a batch frees it.
 * Returns 0 or -1 with m->err; after a lost connection every read fails. */
static int pipe_read(imp *m)
{
    sent s = m->sent[m->sent_head++];
    redisContext *c = queue_redis(m->q);
    if (s.kind == SENT_LOOKUP) return lookup_read(m, s.b);
    if (s.kind == SENT_ENQUEUE) {
        hr_err e = {0};
        int *res = hr_calloc((size_t)(s.b->nout ? s.b->nout : 1), sizeof *res);
        queue_enqueue_batch *eb = s.b->eb;
        s.b->eb = NULL;
        int rc = queue_enqueue_recv(m->q, eb, res, &e);
        enqueued(m, s.b->out, s.b->nout, res);
        free(res);
        if (rc < 0) {
            hr_err_set(m->err, "%s", e.msg);
            m->err->code = 1;
        }
        return rc;
    }
    if (s.kind == SENT_TXN) {
        int rc = txn_read(m, s.b);
        batch_free(m, s.b); /* the last of it */
        return rc;
    }
    redisReply *r = NULL;
    int rc = 0;
    if (!c || redisGetReply(c, (void **)&r) != REDIS_OK || !r)
        rc = pipe_fail(m, "import index update");
    else if (r->type == REDIS_REPLY_ERROR)
        rc = redis_fail(m, c, r);
    else
        freeReplyObject(r);
    return rc;
}

/* pipe_drain reads every reply due, so the connection can run commands
 * one by one again. Returns the first error. */
static int pipe_drain(imp *m)
{
    int rc = 0;
    while (m->sent_head < m->nsent) {
        if (rc == 0) {
            rc = pipe_read(m);
            continue;
        }
        hr_err first = *m->err;
        pipe_read(m);
        *m->err = first;
    }
    m->sent_head = m->nsent = 0;
    return rc;
}

/* watch_mark notes the connection the lock's WATCH goes on. A reconnect
 * (queue_get and queue_cancel reconnect and resend on a broken connection
 * or a timeout) drops the WATCH: the new connection is told apart by its
 * pointer and, as a freed context's address may be reused at once, by a
 * mark in its reader (hiredis never reads the reader's privdata). */
static void watch_mark(imp *m)
{
    redisContext *c = queue_redis(m->q);
    m->watch_c = c;
    if (c && c->reader) c->reader->privdata = m;
}

/* watch_same is 1 while the connection is the one the WATCH went on */
static int watch_same(imp *m)
{
    redisContext *c = queue_redis(m->q);
    return c && c == m->watch_c && c->reader && c->reader->privdata == m;
}

/* mark_dups flags b's items whose source id is also elsewhere in b: each
 * one's entry may be written after the other's lookup, so none of them
 * takes the plain path. (The batch before b wrote everything before b's
 * lookup was sent, so b's lookup sees its writes.) */
static void mark_dups(batch *b)
{
    unsigned mask = 15;
    while (mask < 2u * (unsigned)b->npend)
        mask = mask * 2 + 1;
    pending **slot = hr_calloc(mask + 1, sizeof *slot);
    for (int i = 0; i < b->npend; i++) {
        pending *p = &b->pend[i];
        unsigned h = (unsigned)sched_hash64(SCHED_HASH_INIT, p->source) & mask;
        while (slot[h] && strcmp(slot[h]->source, p->source))
            h = (h + 1) & mask;
        if (slot[h]) p->dup = slot[h]->dup = 1;
        slot[h] = p;
    }
    free(slot);
}

/* send_lookup sends a batch's lookup (lookup_read reads it): WATCH and GET
 * of the lock and its items' index entries. It must go after the EXEC of
 * the batch before (EXEC ends every WATCH of the connection). */
static void send_lookup(imp *m, batch *b)
{
    mark_dups(b);
    redisContext *c = queue_redis(m->q);
    redisAppendCommand(c, "WATCH %s", m->lock_key);
    watch_mark(m);
    redisAppendCommand(c, "GET %s", m->lock_key);
    const char **argv = hr_malloc(sizeof *argv * (size_t)(b->npend + 2));
    size_t *lens = hr_malloc(sizeof *lens * (size_t)(b->npend + 2));
    argv[0] = "HMGET", lens[0] = 5;
    argv[1] = m->index_key, lens[1] = strlen(m->index_key);
    for (int i = 0; i < b->npend; i++)
        argv[i + 2] = b->pend[i].source, lens[i + 2] = strlen(b->pend[i].source);
    redisAppendCommandArgv(c, b->npend + 2, argv, lens);
    free(argv);
    free(lens);
    pipe_push(m, SENT_LOOKUP, b);
}

/* known_read reads, in one round trip (the connection has no reply due),
 * whether the jobs of b's new items have a done record or a job record:
 * any such job keeps its item off the plain path whatever the index says
 * (an entry can be missing: an index from before entries were kept for
 * sent jobs, an operator's HDEL). Items with an entry need no read: they
 * take the checked path or are unchanged. Returns 0 or -1 with m->err. */
static int known_read(imp *m, batch *b)
{
    b->known = hr_calloc((size_t)(b->njobs ? b->njobs : 1), 1);
    int n = 0;
    for (int i = 0; i < b->npend; i++)
        if (b->pend[i].changed == 2 && !b->pend[i].dup) n += b->pend[i].n;
    if (n == 0) return 0;
    const char **argv = hr_malloc(sizeof *argv * (size_t)(n + 2));
    size_t *lens = hr_malloc(sizeof *lens * (size_t)(n + 2));
    int *at = hr_malloc(sizeof *at * (size_t)n), k = 0;
    for (int i = 0; i < b->npend; i++) {
        pending *p = &b->pend[i];
        if (p->changed != 2 || p->dup) continue;
        for (int j = 0; j < p->n; j++) {
            at[k] = p->first + j;
            argv[k + 2] = queue_job_ukh(b->jobs[at[k]]), lens[k + 2] = QUEUE_UKH_LEN;
            k++;
        }
    }
    redisContext *c = queue_redis(m->q);
    char key[2][256];
    queue_key(queue_ns(m->q), "done", key[0], sizeof key[0]);
    queue_key(queue_ns(m->q), "jobs", key[1], sizeof key[1]);
    argv[0] = "HMGET", lens[0] = 5;
    for (int h = 0; h < 2; h++) {
        argv[1] = key[h], lens[1] = strlen(key[h]);
        redisAppendCommandArgv(c, n + 2, argv, lens);
    }
    int rc = 0;
    for (int h = 0; h < 2; h++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            if (rc == 0) rc = pipe_fail(m, "import lookup");
            break;
        }
        if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)n)) {
            hr_err_set(m->err, "redis: import lookup: %s",
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            m->err->code = 1;
            rc = -1;
        }
        for (int j = 0; rc == 0 && j < n; j++)
            b->known[at[j]] |= r->element[j]->type != REDIS_REPLY_NIL;
        if (r) freeReplyObject(r);
    }
    free(argv);
    free(lens);
    free(at);
    return rc;
}

/* index_value builds an item's new index entry: this run's generation, its
 * hash and its jobs; with --sync, jobs an edit no longer makes are
 * cancelled (the connection must have no reply due), else kept listed. */
static void entry_head(hr_buf *v, const char *gen_s, uint64_t hash)
{
    /* "<gen> <16 hex digits> ", without printf: once per item */
    char hex[17];
    for (int i = 0; i < 16; i++)
        hex[i] = "0123456789abcdef"[(hash >> (60 - 4 * i)) & 15];
    hex[16] = ' ';
    hr_buf_puts(v, gen_s);
    hr_buf_append(v, hex, sizeof hex);
}

static int lock_hold_watched(imp *m);

/* index_value returns NULL (m->err set) only when --sync's lock check
 * before a cancel failed: no cancel runs after that. */
static char *index_value(imp *m, batch *b, pending *p, size_t *len)
{
    hr_buf v;
    hr_buf_init(&v);
    entry_head(&v, m->gen_s, p->hash);
    if (p->changed == 0) {
        hr_buf_puts(&v, p->old);
        *len = v.len;
        return hr_buf_detach(&v);
    }
    for (int k = 0; k < p->n; k++) {
        if (k) hr_buf_putc(&v, ',');
        hr_buf_append(&v, queue_job_ukh(b->jobs[p->first + k]), QUEUE_UKH_LEN);
    }
    /* jobs of the old version that this one no longer makes */
    char ukh[QUEUE_UKH_LEN + 1];
    for (const char *s = p->old; (s = next_ukh(s, ukh));) {
        int mine = 0;
        if (ukh[0]) {
            for (int k = 0; k < p->n && !mine; k++)
                mine = !strcmp(queue_job_ukh(b->jobs[p->first + k]), ukh);
            if (!mine) {
                hr_err ce = {0};
                if (m->o->sync && lock_hold_watched(m) < 0) {
                    hr_buf_release(&v);
                    return NULL;
                }
                if (m->o->sync && queue_cancel(m->q, ukh, &ce) == 1) {
                    m->st->cancelled++;
                    continue;
                }
                /* kept, or sent or in flight: still listed, so the item's
                 * entry keeps accounting for it */
                hr_buf_printf(&v, "%s%s", v.data[v.len - 1] == ' ' ? "" : ",", ukh);
            }
        }
    }
    if (p->changed == 2 && !p->pending) undo_put(m, 's', p->source, strlen(p->source));
    *len = v.len;
    return hr_buf_detach(&v);
}

/* send_pending writes a new item's PENDING entry, listing its jobs, before
 * they go through the script: if the import dies before its real entry,
 * the next one still finds them through the script, times kept. */
static void send_pending(imp *m, batch *b, pending *p)
{
    hr_buf v;
    hr_buf_init(&v);
    entry_head(&v, m->gen_s, HASH_PENDING);
    for (int k = 0; k < p->n; k++) { /* ids assigned (from the unique keys) by now */
        if (k) hr_buf_putc(&v, ',');
        hr_buf_append(&v, queue_job_ukh(b->jobs[p->first + k]), QUEUE_UKH_LEN);
    }
    const char *argv[] = {"HSET", m->index_key, p->source, v.data};
    size_t lens[] = {4, strlen(m->index_key), strlen(p->source), v.len};
    redisAppendCommandArgv(queue_redis(m->q), 4, argv, lens);
    pipe_push(m, SENT_PENDING, b);
    hr_buf_release(&v);
    undo_put(m, 's', p->source, strlen(p->source));
    p->pending = 1;
}

/* lock_clock_ms is the clock the lock's lease is counted on: monotonic,
 * or a test's (sched_test_lock_clock_ms: a stall without waiting one) */
static int64_t lock_clock_ms(void)
{
    return sched_test_lock_clock_ms ? sched_test_lock_clock_ms() : hr_mono_ms();
}

/* lock_stale is 1 when more than half a lease went by since the lock's
 * last renewal was sent (a stall): it may have lapsed and changed hands */
static int lock_stale(const imp *m)
{
    return lock_clock_ms() - m->lock_sent_ms >= lease_ms() / 2;
}

/* ---- the lanes' holds (issue #4: all or nothing while schedulers run)
 *
 * While it runs, an import holds every lane of its campaign: {NS}:held
 * has TOKEN|LANE with the hold's expiry (Redis time), and promote.lua
 * leaves the scheduled jobs of a held lane where they are, so nothing this
 * run writes becomes ready (its jobs due now are scheduled too: see
 * enqueue.lua) before it has succeeded, and a failed run's rollback finds
 * them all. Holds are per run (several campaigns may hold a lane), taken
 * with the lock and renewed with it by the same script, so a killed run's
 * lapse with its lock; the end of the run drops them. */

/* The lanes' planning locks ({NS}:planning:LANE = "TOKEN CAMPAIGN"): an
 * import reads its lanes' occupancy and then books slots in them for the
 * whole run, so two imports (of different campaigns: the campaign lock
 * keeps out the same one) planning into one lane at once would book the
 * same slots. HOLD takes all of a run's planning locks at once or none
 * (the first HOLD of the run, retried while another run has one), then
 * renews them with the lock and the holds, on the same lease. */

/* HOLD renews the lock if it still holds this run's token (compare and
 * renew: a bare PEXPIRE could renew another owner's lock), then, if no
 * other run has one of the lanes' planning locks, takes or renews them all
 * and, with the same lease, this run's holds. KEYS[1] lock, KEYS[2] held,
 * KEYS[3..] planning:LANE per lane; ARGV[1] token, ARGV[2] lease ms,
 * ARGV[3] campaign, ARGV[4..] lanes. 1; 0 when the lock is not ours;
 * {lane's number (1-based), its owner} when another run has that lane. */
static const char HOLD[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "local owner = ARGV[1] .. ' ' .. ARGV[3] "
    "for i = 3, #KEYS do "
    "  local v = redis.call('GET', KEYS[i]) "
    "  if v and v ~= owner then return {i - 2, v} end "
    "end "
    "for i = 3, #KEYS do redis.call('SET', KEYS[i], owner, 'PX', ARGV[2]) end "
    "local t = redis.call('TIME') "
    "local exp = string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2]) "
    "local z = {} "
    "for i = 4, #ARGV do z[#z + 1] = exp z[#z + 1] = ARGV[1] .. '|' .. ARGV[i] end "
    "if #z > 0 then redis.call('ZADD', KEYS[2], unpack(z)) end return 1";

/* RELEASE ends a run: drops its holds (and lapsed ones) and its planning
 * locks, puts each lane's due entry back at its earliest scheduled job
 * (promote.lua moved it to the hold's expiry), wakes the schedulers, and
 * deletes the lock if it still holds the token (a lane's set of the wrong
 * type, which failed the run, is left alone). KEYS[1] lock, KEYS[2] held,
 * KEYS[3] due, then sched:LANE per lane, then planning:LANE per lane;
 * ARGV[1] token, ARGV[2] wake channel, ARGV[3] campaign, ARGV[4..] the
 * lanes. */
static const char RELEASE[] =
    "local t = redis.call('TIME') "
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', "
    "  string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))) "
    "local n, owner, min = #ARGV - 3, ARGV[1] .. ' ' .. ARGV[3] "
    "for j = 1, n do "
    "  local member = 's|' .. ARGV[j + 3] "
    "  redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[j + 3]) "
    "  if redis.call('GET', KEYS[3 + n + j]) == owner then redis.call('DEL', KEYS[3 + n + j]) end "
    "  local head = redis.pcall('ZRANGE', KEYS[3 + j], 0, 0, 'WITHSCORES') "
    "  if head.err then "
    "  elseif #head > 0 then "
    "    redis.call('ZADD', KEYS[3], head[2], member) "
    "    if not min or tonumber(head[2]) < tonumber(min) then min = head[2] end "
    "  else redis.call('ZREM', KEYS[3], member) end "
    "end "
    "if min then redis.call('PUBLISH', ARGV[2], min) end "
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1";

/* lane_key writes the key NAME:LANE of this run's lane i into key */
static const char *lane_key(const imp *m, const char *name, int i, char *key, size_t size)
{
    char suffix[QUEUE_LANE_MAX + 16];
    snprintf(suffix, sizeof suffix, "%s:%s", name, m->accts[i].lane);
    return queue_key(queue_ns(m->q), suffix, key, size);
}

/* hold_argv writes the EVAL of HOLD (release 0) or RELEASE (1) on this
 * run's lanes into a new argv (free it with argv_free); returns argc */
static int hold_argv(const imp *m, int release, char ***out)
{
    const char *ns = queue_ns(m->q);
    char key[QUEUE_LANE_MAX + 300];
    int n = m->naccts, k = 0;
    char **v = hr_calloc((size_t)(9 + 3 * n), sizeof *v);
    v[k++] = hr_strdup("EVAL");
    v[k++] = hr_strdup(release ? RELEASE : HOLD);
    v[k++] = hr_asprintf("%d", release ? 3 + 2 * n : 2 + n);
    v[k++] = hr_strdup(m->lock_key);
    v[k++] = hr_strdup(queue_key(ns, "held", key, sizeof key));
    if (release) {
        v[k++] = hr_strdup(queue_key(ns, "due", key, sizeof key));
        for (int i = 0; i < n; i++)
            v[k++] = hr_strdup(lane_key(m, "sched", i, key, sizeof key));
    }
    for (int i = 0; i < n; i++)
        v[k++] = hr_strdup(lane_key(m, "planning", i, key, sizeof key));
    v[k++] = hr_strdup(m->lock_token);
    v[k++] = release ? hr_strdup(queue_key(ns, "wake", key, sizeof key))
                     : hr_asprintf("%d", lease_ms());
    v[k++] = hr_strdup(m->cp->name);
    for (int i = 0; i < n; i++)
        v[k++] = hr_strdup(m->accts[i].lane);
    *out = v;
    return k;
}

static void argv_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* hold_run runs HOLD or RELEASE (the connection must have no reply due) */
static redisReply *hold_run(imp *m, int release)
{
    redisContext *c = queue_redis(m->q);
    if (!c) return NULL;
    char **v;
    int n = hold_argv(m, release, &v);
    redisReply *r = redisCommandArgv(c, n, (const char **)v, NULL);
    argv_free(v, n);
    return r;
}

/* hold_try runs HOLD: 1 when the lock, the lanes' planning locks and the
 * holds are this run's (taken or renewed), 0 when the lock is not ours, -1
 * when Redis failed, 2 when another run has a lane's planning lock (that
 * lane's index in *lane, the other run's campaign in other) */
static int hold_try(imp *m, int *lane, char *other, size_t size)
{
    redisReply *r = hold_run(m, 0);
    int rc = -1;
    if (r && r->type == REDIS_REPLY_INTEGER) {
        rc = r->integer == 1;
    } else if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
               r->element[0]->type == REDIS_REPLY_INTEGER &&
               r->element[0]->integer >= 1 && r->element[0]->integer <= m->naccts &&
               r->element[1]->type == REDIS_REPLY_STRING) {
        *lane = (int)r->element[0]->integer - 1;
        const char *sp = strchr(r->element[1]->str, ' ');
        snprintf(other, size, "%s", sp ? sp + 1 : r->element[1]->str);
        rc = 2;
    }
    if (r) freeReplyObject(r);
    return rc;
}

/* lock_renew checks with a round trip that the lock still holds this
 * run's token and renews its lease, its lanes' planning locks and the
 * run's holds (HOLD; the connection must have no reply due). A lapsed lock
 * is lost too: another import may have run meanwhile. Returns 0, or -1
 * with err. */
static int lock_renew(imp *m, hr_err *err)
{
    int lane = 0;
    char other[160];
    int ok = hold_try(m, &lane, other, sizeof other);
    if (ok == 2) {
        hr_err_set(err, "import: lost lane %s to campaign %s's import: its planning lock lapsed",
                   m->accts[lane].lane, other);
        err->code = 1;
        return -1;
    }
    if (ok != 1) {
        hr_err_set(err, "import: lost the lock of campaign %s (%s): %s", m->cp->name, m->lock_key,
                   ok < 0 ? "Redis unreachable" : "another import holds it or it lapsed");
        err->code = 1;
        return -1;
    }
    m->lock_sent_ms = lock_clock_ms();
    m->lock_ops = 1; /* the next 255 operations go on this check */
    return 0;
}

/* lock_hold is lock_renew before every 256th of the operations that --sync
 * and the rollback make (and whenever half a lease went by): they act only
 * while the lock is this run's. */
static int lock_hold(imp *m, hr_err *err)
{
    if (m->lock_ops++ % 256 && !lock_stale(m)) return 0;
    return lock_renew(m, err);
}

/* lock_rewatch_now drops the lookup's WATCH (renewing the watched key
 * would fail our own EXEC), renews the lock if still ours, watches it again
 * and checks, once watched, that it is still ours: from then on a change
 * fails the batch's EXEC. Returns 0, or -1 with m->err ("lost the lock"
 * when it is not ours). */
static int lock_rewatch_now(imp *m)
{
    if (pipe_drain(m) < 0) return -1;
    redisContext *c = queue_redis(m->q);
    redisReply *r = c ? redisCommand(c, "UNWATCH") : NULL;
    if (r) freeReplyObject(r);
    if (lock_renew(m, m->err) < 0) return -1;
    c = queue_redis(m->q);
    if (!c) return redis_fail(m, c, NULL);
    r = redisCommand(c, "WATCH %s", m->lock_key);
    if (!r || r->type == REDIS_REPLY_ERROR) return redis_fail(m, c, r);
    freeReplyObject(r);
    watch_mark(m);
    r = redisCommand(c, "GET %s", m->lock_key);
    if (!r || r->type == REDIS_REPLY_ERROR) return redis_fail(m, c, r);
    int ours = r->type == REDIS_REPLY_STRING && !strcmp(r->str, m->lock_token);
    freeReplyObject(r);
    if (!ours) {
        hr_err_set(m->err, "import: lost the lock of campaign %s (%s): another import holds "
                   "it or it lapsed; stopped before writing batch %d",
                   m->cp->name, m->lock_key, m->batch_no);
        m->err->code = 1;
        return -1;
    }
    return 0;
}

/* lock_rewatch runs before a batch's first write and again before its
 * MULTI: when more than half a lease went by since the lock was last
 * renewed (a stall), or when the connection is not the one the WATCH went
 * on (a read or a --sync cancel reconnected: the new connection watches
 * nothing, and its EXEC would write under whoever holds the lock now), it
 * is lock_rewatch_now. Returns 0 or -1. */
static int lock_rewatch(imp *m)
{
    if (watch_same(m) && !lock_stale(m)) return 0;
    return lock_rewatch_now(m);
}

/* lock_hold_watched is lock_hold for --sync's cancels of edited items,
 * which run between a batch's lookup and its MULTI: lock_rewatch_now before
 * every 256th of them (and whenever lock_rewatch would run). */
static int lock_hold_watched(imp *m)
{
    if (m->lock_ops++ % 256 && watch_same(m) && !lock_stale(m)) return 0;
    return lock_rewatch_now(m);
}

/* send_txn writes the batch's new jobs and its index entries (every item
 * seen gets this run's generation) in one transaction under the lock's
 * WATCH (sent with the lookup), and renews the lock in it: a kill leaves
 * both or neither, and a lock that changed or lapsed makes it write
 * nothing. */
static int send_txn(imp *m, batch *b)
{
    if (lock_rewatch(m) < 0) return -1;
    int argc = 2 + 2 * b->npend;
    const char **hv = hr_malloc(sizeof *hv * (size_t)argc);
    size_t *lens = hr_malloc(sizeof *lens * (size_t)argc);
    char **vals = hr_calloc((size_t)b->npend, sizeof *vals);
    size_t *vlen = hr_calloc((size_t)b->npend + 1, sizeof *vlen);
    hv[0] = "HSET", lens[0] = 4;
    hv[1] = m->index_key, lens[1] = strlen(m->index_key);
    /* edited items' entries first (their --sync cancels run one by one),
     * the others' once the new jobs have their ids */
    int rc = 0;
    for (int i = 0; i < b->npend && rc == 0; i++) {
        pending *p = &b->pend[i];
        if (p->changed == 1) {
            vals[i] = index_value(m, b, p, &vlen[i]);
            if (!vals[i]) rc = -1; /* the lock was lost */
        }
    }
    /* the cancels may have reconnected, or taken long */
    if (rc == 0 && lock_rewatch(m) < 0) rc = -1;
    if (rc < 0) {
        for (int i = 0; i < b->npend; i++)
            free(vals[i]);
        free(vals);
        free(vlen);
        free(hv);
        free(lens);
        return -1;
    }
    redisContext *c = queue_redis(m->q);
    redisAppendCommand(c, "MULTI"); /* under the WATCH of b's lookup */
    if (b->nfresh) {
        hr_err e = {0};
        b->neb = queue_enqueue_new_append(m->q, b->fresh, b->nfresh, &b->fresh_cmds, &e);
        if (!b->neb) {
            hr_err_set(m->err, "redis: %s", e.msg);
            m->err->code = 1;
            rc = -1;
            /* nothing of it was appended: end the transaction, in step */
            redisAppendCommand(c, "DISCARD");
            for (int i = 0; i < 2; i++)
                pipe_push(m, SENT_PENDING, b);
        }
    }
    if (rc == 0) {
        argc = 2;
        for (int i = 0; i < b->npend; i++) {
            pending *p = &b->pend[i];
            /* a skipped bad item writes no entry of its own, nor one that
             * another item of the batch with its id writes */
            if (p->touch && (p->changed != 0 || p->dup)) continue;
            if (!vals[i]) vals[i] = index_value(m, b, p, &vlen[i]);
            hv[argc] = p->source, lens[argc++] = strlen(p->source);
            hv[argc] = vals[i], lens[argc++] = vlen[i];
        }
        if (argc == 2) /* none: a command in its place keeps the replies in step */
            hv[0] = "HLEN", lens[0] = 4;
        redisAppendCommandArgv(c, argc, hv, lens);
        char **hv2;
        int hn = hold_argv(m, 0, &hv2); /* the lock's and the holds' renewal */
        redisAppendCommandArgv(c, hn, (const char **)hv2, NULL);
        argv_free(hv2, hn);
        redisAppendCommand(c, "EXEC");
        m->lock_sent_ms = lock_clock_ms();
        pipe_push(m, SENT_TXN, b);
    }
    for (int i = 0; i < b->npend; i++)
        free(vals[i]);
    free(vals);
    free(vlen);
    free(hv);
    free(lens);
    return rc < 0 ? rc : pipe_flush(m);
}

/* edit_keeps_time is 1 when an edited item's still-scheduled job old keeps
 * its time: unless the item's publish time (now publish_ms) moved, or the
 * job would go out before it. A move between two past times keeps it (a
 * past publish time does not place a job); a job of an older herald, which
 * did not record the publish time, is re-planned only when it is early. */
static int edit_keeps_time(const imp *m, const queue_job *old, int64_t publish_ms)
{
    if (old->run_at_ms < publish_ms) return 0;
    const char *was = queue_job_get_meta(old, PUBLISH_META);
    if (!was) return 1;
    int64_t w = strtoll(was, NULL, 10);
    return w == publish_ms || (w <= m->now && publish_ms <= m->now);
}

/* plan_and_send plans a batch whose lookup is in and sends its jobs and
 * index entries. Items edited since the last import read their jobs' times
 * first (an edit keeps its time): only those batches wait for the pipe. */
static int plan_and_send(imp *m, batch *b)
{
    int edits = 0, rc = 0;
    for (int i = 0; i < b->npend; i++) {
        pending *p = &b->pend[i];
        redisReply *e = b->lookup->element[i];
        long long g;
        uint64_t h;
        const char *ids;
        if (e->type != REDIS_REPLY_STRING || parse_entry(e->str, &g, &h, &ids) < 0) {
            p->changed = 2;
            continue;
        }
        p->old = hr_strdup(ids);
        if (p->touch) p->hash = h; /* kept as it is, its generation aside */
        p->changed = h == p->hash ? 0 : 1;
        edits += p->changed == 1;
        if (p->changed == 1) undo_put_entry(m, p->source, e->str);
    }
    freeReplyObject(b->lookup);
    b->lookup = NULL;
    for (int i = 0; i < b->njobs; i++)
        queue_job_assign_id(b->jobs[i]);
    if (pipe_drain(m) < 0 || known_read(m, b) < 0) return -1;
    int failed = sched_test_enqueue_fail && sched_test_enqueue_fail(m->batch_no);
    m->batch_no++;
    if (failed) {
        hr_err_set(m->err, "redis: enqueue failed (injected by a test)");
        m->err->code = 1;
        return -1;
    }

    b->out = hr_malloc(sizeof *b->out * (size_t)(b->njobs ? b->njobs : 1));
    b->fresh = hr_malloc(sizeof *b->fresh * (size_t)(b->njobs ? b->njobs : 1));
    int64_t fresh_after = hr_now_ms();
    if (m->now > fresh_after) fresh_after = m->now;
    /* an edit keeps its jobs' times: read one by one, before anything of
     * the batch is appended to the connection (a read would take its reply) */
    int64_t **keeps = hr_calloc((size_t)(b->npend ? b->npend : 1), sizeof *keeps);
    if (edits && sched_test_before_edit_reads) sched_test_before_edit_reads(m->batch_no - 1);
    for (int i = 0; i < b->npend && rc == 0; i++) {
        pending *p = &b->pend[i];
        if (p->changed != 1) continue;
        int64_t *keep = keeps[i] = hr_calloc((size_t)(p->n ? p->n : 1), sizeof *keep);
        for (int k = 0; k < p->n; k++) {
            queue_job *j = b->jobs[p->first + k];
            if (!list_has(p->old, queue_job_ukh(j))) continue;
            hr_err e = {0};
            queue_job *old = queue_get(m->q, queue_job_ukh(j), &e);
            if (!old && e.msg[0] && (!queue_redis(m->q) || queue_redis(m->q)->err)) {
                /* unread, it could not be restored by a rollback */
                hr_err_set(m->err, "redis: import: reading job %s before its update: %s",
                           queue_job_ukh(j), e.msg);
                m->err->code = 1;
                rc = -1;
                break;
            }
            if (old) undo_put_job(m, old);
            if (old && old->run_at_ms > m->now) {
                if (edit_keeps_time(m, old, p->publish_ms))
                    keep[k] = old->run_at_ms;
                else /* re-planned: its old time is free for it and the others */
                    sched_taken_remove(&m->taken[job_acct(m, j)], old->run_at_ms);
            }
            queue_job_free(old);
        }
    }
    /* before the batch's first write */
    if (rc < 0 || undo_check(m) < 0 || lock_rewatch(m) < 0) {
        for (int i = 0; i < b->npend; i++)
            free(keeps[i]);
        free(keeps);
        return -1;
    }
    for (int i = 0; i < b->npend; i++) {
        pending *p = &b->pend[i];
        if (p->touch) {
            m->st->kept_invalid += p->changed == 0 && !p->dup;
            continue;
        }
        if (p->changed == 0) {
            m->st->unchanged_items++;
            continue;
        }
        int64_t *keep = keeps[i];
        int planned = plan_item(m, b, p, keep);
        free(keep);
        keeps[i] = NULL;
        if (planned < 0) {
            rc = -1;
            break;
        }
        /* a new item whose jobs are all later than now, none of which has
         * a job or a done record, goes in with plain commands (under the
         * lock nothing else writes them); the others through the script,
         * job by job checked */
        int fresh = p->changed == 2 && !p->dup;
        for (int k = 0; k < p->n && fresh; k++) {
            int at = p->first + k;
            fresh = b->jobs[at]->run_at_ms > fresh_after &&
                    !b->known[at];
        }
        for (int k = 0; k < p->n; k++) {
            queue_job *j = b->jobs[p->first + k];
            if (fresh)
                b->fresh[b->nfresh++] = j;
            else
                b->out[b->nout++] = j;
        }
        if (!fresh && p->changed == 2) send_pending(m, b, p);
    }
    for (int i = 0; i < b->npend; i++)
        free(keeps[i]); /* those after a failed plan */
    free(keeps);
    if (rc < 0) return -1;
    if (b->nout) {
        hr_err e = {0};
        b->eb = queue_enqueue_send_locked(m->q, b->out, b->nout, m->lock_token, &e);
        if (!b->eb) {
            hr_err_set(m->err, "redis: %s", e.msg);
            m->err->code = 1;
            return -1;
        }
        pipe_push(m, SENT_ENQUEUE, b);
    }
    /* an edited item's index entry (its new hash) is written only once
     * its jobs are: else a failed batch would leave the edit looking
     * imported; and --sync's cancels below run one by one, so nothing may
     * be due on the connection (not even a PENDING entry's HSET: items
     * with no jobs, e.g. emails with no contacts, send one with nout 0) */
    if (edits && pipe_drain(m) < 0) return -1;
    return send_txn(m, b);
}

/* pass2_flush hands the batch being filled to the pipeline: the batch
 * looked up before it is planned and written as soon as its lookup is in,
 * then this one's lookup is sent after those writes (its WATCH after the
 * other's EXEC), so Redis writes a batch while the next one is parsed.
 * With final, everything is written and read. */
static int pass2_flush(imp *m, int final)
{
    batch *b = m->cur;
    m->cur = NULL;
    if (b && b->npend == 0) {
        batch_free(m, b);
        b = NULL;
    }
    if (m->o->dry_run) {
        int rc = 0;
        for (int i = 0; b && i < b->npend && rc == 0; i++)
            if ((rc = plan_item(m, b, &b->pend[i], NULL)) == 0) print_plan(m, b, &b->pend[i]);
        batch_free(m, b);
        return rc;
    }
    for (int last = 0;; last = 1) {
        batch *ready = m->looked;
        m->looked = NULL;
        if (ready) {
            while (!ready->lookup)
                if (pipe_read(m) < 0) return -1;
            if (plan_and_send(m, ready) < 0) return -1;
        }
        if (b) send_lookup(m, b);
        m->looked = b;
        b = NULL;
        if (pipe_flush(m) < 0) return -1;
        if (!final || last) break;
    }
    return final ? pipe_drain(m) : 0;
}

/* ---- sync and rollback */

/* entry_cas replaces an item's entry by value (NULL: deletes it) only
 * while it still reads old: one another writer changed meanwhile stays.
 * Returns 1 when replaced, 0 when not, -1 on error. */
static int entry_cas(imp *m, const char *source, const char *old, const char *value)
{
    redisReply *r = cmd(m, "EVAL %s 1 %s %s %s %s",
                        "if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then "
                        "return 0 end if ARGV[3] == '' then "
                        "return redis.call('HDEL', KEYS[1], ARGV[1]) end "
                        "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1",
                        m->index_key, source, old, value ? value : "");
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (r) freeReplyObject(r);
    return rc;
}

/* job_known returns 1 when ukh has a job or a done record (or that cannot
 * be read), 0 when it has neither: an id an entry need not keep. */
static int job_known(imp *m, const char *ukh)
{
    redisReply *r = cmd(m, "EVAL %s 2 {%s}:jobs {%s}:done %s",
                        "return redis.call('HEXISTS', KEYS[1], ARGV[1]) + "
                        "redis.call('HEXISTS', KEYS[2], ARGV[1])",
                        queue_ns(m->q), queue_ns(m->q), ukh);
    int known = !r || r->type != REDIS_REPLY_INTEGER || r->integer > 0;
    if (r) freeReplyObject(r);
    return known;
}

/* sync_gone cancels the jobs of entries of an older generation (GONE ones
 * too: their jobs are tried again) and deletes the entries; an entry with
 * a job that could not be cancelled (sent, in flight) is kept as GONE,
 * listing those; ids with neither a job nor a done record are dropped.
 * It acts only while the lock is this run's, and rewrites an entry only if
 * it still reads as it found it. */
static int sync_gone(imp *m)
{
    char cursor[32] = "0";
    int rc = 0;
    do {
        if (lock_renew(m, m->err) < 0) return -1; /* every page */
        /* queue_cancel may have reconnected: the connection is read anew */
        redisReply *r = cmd(m, "HSCAN %s %s COUNT 1000", m->index_key, cursor);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            return redis_fail(m, queue_redis(m->q), r);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        redisReply *kv = r->element[1];
        for (size_t i = 0; rc == 0 && i + 1 < kv->elements; i += 2) {
            const char *src = kv->element[i]->str, *old = kv->element[i + 1]->str;
            long long g;
            uint64_t h;
            const char *ids;
            /* an entry of this run, or of a later one, is not ours to drop */
            if (src[0] == '#' || parse_entry(old, &g, &h, &ids) < 0 || g >= m->gen) continue;
            hr_buf v;
            hr_buf_init(&v);
            entry_head(&v, m->gen_s, HASH_GONE);
            size_t head = v.len;
            char ukh[QUEUE_UKH_LEN + 1];
            for (const char *s = ids; rc == 0 && (s = next_ukh(s, ukh));) {
                hr_err e = {0};
                if (!ukh[0]) continue;
                if ((rc = lock_hold(m, m->err)) < 0) break;
                int cancel = queue_cancel(m->q, ukh, &e);
                if (cancel == 1) {
                    m->st->cancelled++;
                    continue;
                }
                if (cancel == 0 && !job_known(m, ukh)) continue;
                if (v.len > head) hr_buf_putc(&v, ',');
                hr_buf_append(&v, ukh, QUEUE_UKH_LEN);
            }
            if (rc == 0) entry_cas(m, src, old, v.len > head ? v.data : NULL);
            hr_buf_release(&v);
        }
        freeReplyObject(r);
    } while (rc == 0 && strcmp(cursor, "0") != 0);
    return rc;
}

/* undo_get reads the undo log's next record: its type into *type, its
 * bytes into rec (NUL-terminated). Returns 1, or 0 at the end (or where
 * it is cut short). */
static int undo_get(imp *m, char *type, hr_buf *rec)
{
    size_t n;
    int t = getc(m->undo);
    if (t == EOF || fscanf(m->undo, " %zu", &n) != 1 || getc(m->undo) != ' ') return 0;
    hr_buf_reset(rec);
    hr_buf_reserve(rec, n + 1);
    if (fread(rec->data, 1, n, m->undo) != n || getc(m->undo) != '\n') return 0;
    rec->data[n] = '\0';
    rec->len = n;
    *type = (char)t;
    return 1;
}

/* The rollback's two scripts on an entry this run added, ARGV[2] the head
 * of its GONE value: MARK_GONE rewrites it as GONE keeping the ids it
 * lists (an entry the run never wrote stays absent); DEL_GONE deletes it
 * if it is still GONE as this run marked it. */
static const char MARK_GONE[] = "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
                                "if not v then return 0 end "
                                "local ids = string.match(v, '^%d+ %x+ (.*)$') or '' "
                                "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ids) return 1";
static const char DEL_GONE[] = "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
                               "if v and string.sub(v, 1, #ARGV[2]) == ARGV[2] then "
                               "return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0";

/* entry_eval runs one of them on source's entry. Returns 0 or -1. */
static int entry_eval(imp *m, const char *script, const char *source, const char *head)
{
    redisReply *r = cmd(m, "EVAL %s 1 %s %s %s", script, m->index_key, source, head);
    int rc = r && r->type == REDIS_REPLY_INTEGER ? 0 : -1;
    if (r) freeReplyObject(r);
    return rc;
}

/* RESTORE_ENTRY puts back an edited item's entry (ARGV[3]) if this run
 * (ARGV[2], the head of its generation) wrote it. RESTORE_JOB puts back a
 * job an edit updated, if it is still scheduled (nothing took it since):
 * KEYS[1] jobs, KEYS[2] sched:LANE, KEYS[3] due; ARGV[1] ukh, ARGV[2] its
 * time, ARGV[3] its stored value, ARGV[4] the lane. Both 1 when written
 * (RESTORE_JOB: when it differed). */
static const char RESTORE_ENTRY[] =
    "local v = redis.call('HGET', KEYS[1], ARGV[1]) "
    "if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return 0 end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1";
static const char RESTORE_JOB[] =
    "local at = redis.call('ZSCORE', KEYS[2], ARGV[1]) "
    "if not at or (tonumber(at) == tonumber(ARGV[2]) and "
    "  redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[3]) then return 0 end "
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) "
    "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) "
    "local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES') "
    "redis.call('ZADD', KEYS[3], head[2], 's|' .. ARGV[4]) return 1";

/* restore_one runs the script of an 'e' or 'u' record; 1 written, 0 not
 * this run's to restore, -1 on error */
static int restore_one(imp *m, char t, const hr_buf *rec)
{
    const char *a = rec->data, *b = a + strlen(a) + 1;
    redisReply *r;
    if (t == 'e') {
        r = cmd(m, "EVAL %s 1 %s %s %s %s", RESTORE_ENTRY, m->index_key, a, m->gen_s, b);
    } else {
        const char *at = b + strlen(b) + 1, *val = at + strlen(at) + 1;
        char sfx[QUEUE_LANE_MAX + 16], k[3][QUEUE_LANE_MAX + 300];
        snprintf(sfx, sizeof sfx, "sched:%s", b);
        const char *ns = queue_ns(m->q);
        r = cmd(m, "EVAL %s 3 %s %s %s %s %s %b %s", RESTORE_JOB,
                queue_key(ns, "jobs", k[0], sizeof k[0]), queue_key(ns, sfx, k[1], sizeof k[1]),
                queue_key(ns, "due", k[2], sizeof k[2]), a, at, val,
                (size_t)(rec->data + rec->len - val), b);
    }
    int rc = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
    if (r) freeReplyObject(r);
    return rc;
}

/* restore_edits puts back what this run's edits changed, as the undo log
 * kept it before they were written: the entries first (back at its old
 * hash, an item is seen as edited by the next import, whatever a kill
 * here leaves), then the jobs. Counts the jobs put back in *restored;
 * returns how many records could not be (Redis, or the lock lost). */
static long restore_edits(imp *m, long *restored)
{
    char t;
    hr_buf rec;
    hr_buf_init(&rec);
    hr_err e = {0};
    long failed = 0;
    for (int pass = 0; pass < 2; pass++) {
        rewind(m->undo);
        while (undo_get(m, &t, &rec)) {
            if (t != (pass ? 'u' : 'e')) continue;
            int rc = failed || lock_hold(m, &e) < 0 ? -1 : restore_one(m, t, &rec);
            if (rc < 0) failed++;
            *restored += pass && rc == 1;
        }
    }
    hr_buf_release(&rec);
    return failed;
}

/* rollback undoes what the log says this run added, in three steps: the
 * items it added to the index are marked GONE (if one cannot be, nothing
 * is cancelled: an entry saying "imported" must not outlive its jobs),
 * their jobs are cancelled, and only when every one was are the entries
 * deleted (if still GONE). Dying or failing at any point leaves no job
 * without its entry. It acts only while the lock is this run's (checked
 * before it starts and every 256 operations): else the jobs may be another
 * import's by then. */
static void rollback(imp *m)
{
    if (!m->undo) return;
    char t;
    hr_buf rec;
    hr_buf_init(&rec);
    long left = 0, kept = 0, njobs = 0;
    int ok = 1;
    const char *why = "Redis unreachable";
    hr_err e = {0};
    redisContext *c = queue_redis(m->q);
    if (!c || c->err) { /* a read through the queue reconnects */
        queue_job_free(queue_get(m->q, "000000000000", &e));
        hr_err_clear(&e);
    }
    redisReply *r = cmd(m, "UNWATCH");
    if (r) freeReplyObject(r);
    hr_buf gone;
    hr_buf_init(&gone);
    entry_head(&gone, m->gen_s, HASH_GONE);
    rewind(m->undo);
    long nedits = 0;
    while (undo_get(m, &t, &rec)) {
        njobs += t == 'j';
        nedits += t == 'e' || t == 'u';
    }
    if (lock_renew(m, &e) < 0) {
        ok = 0;
        if (e.code == 1 && !strstr(e.msg, "unreachable")) why = "the import's lock was lost";
    }
    rewind(m->undo);
    while (ok && undo_get(m, &t, &rec))
        if (t == 's' &&
            (lock_hold(m, &e) < 0 || entry_eval(m, MARK_GONE, rec.data, gone.data) < 0))
            ok = 0;
    if (!ok) left = njobs;
    rewind(m->undo);
    while (ok && undo_get(m, &t, &rec)) {
        if (t != 'j' && t != 'h') continue;
        if (lock_hold(m, &e) < 0) {
            why = "the import's lock was lost";
            left += t == 'j';
            while (undo_get(m, &t, &rec))
                left += t == 'j';
            break;
        }
        if (t == 'j') {
            int rc = queue_cancel(m->q, rec.data, &e);
            if (rc == 1)
                m->st->rolled_back++;
            else if (rc == 0)
                kept++; /* sent or in flight by now: its entry stays */
            else
                left++;
        } else {
            /* stored by a transaction whose ZADD failed: never reachable */
            r = cmd(m, "HDEL {%s}:jobs %s", queue_ns(m->q), rec.data);
            if (!r || r->type != REDIS_REPLY_INTEGER) left++;
            if (r) freeReplyObject(r);
        }
    }
    if (ok && left == 0 && kept == 0) {
        rewind(m->undo);
        while (undo_get(m, &t, &rec))
            if (t == 's' &&
                (lock_hold(m, &e) < 0 || entry_eval(m, DEL_GONE, rec.data, gone.data) < 0))
                break;
    }
    long restored = 0, unrestored = !nedits ? 0 : ok ? restore_edits(m, &restored) : -1;
    hr_buf_release(&gone);
    hr_buf_release(&rec);
    size_t n = strlen(m->err->msg);
    if (left || kept)
        snprintf(m->err->msg + n, sizeof m->err->msg - n,
                 "; rolled back %ld of the %ld jobs this run had added (%ld sent or in flight "
                 "meanwhile stay, %ld could not be cancelled: %s)",
                 m->st->rolled_back, njobs, kept, left, left ? why : "none");
    else
        snprintf(m->err->msg + n, sizeof m->err->msg - n,
                 "; rolled back the %ld jobs this run had added", m->st->rolled_back);
    n = strlen(m->err->msg);
    if (unrestored)
        snprintf(m->err->msg + n, sizeof m->err->msg - n, "; its edits not undone: %s",
                 unrestored < 0 ? why : "Redis unreachable or the lock lost");
    else if (restored)
        snprintf(m->err->msg + n, sizeof m->err->msg - n, "; restored the %ld jobs it had updated",
                 restored);
}

/* ---- the lock: one import of a campaign at a time */

/* lanes_take takes the run's lanes' planning locks, and its holds, before
 * their occupancy is read (HOLD: all or none). While another import has
 * one, it waits, polling with backoff (each try renews the lock), says so
 * once on stderr, and gives up after --lock-wait (LOCK_WAIT_S). Returns 0,
 * or -1 with m->err naming the lane and the other campaign. */
static int lanes_take(imp *m)
{
    int64_t wait_ms = 1000LL * (m->o->lock_wait_s < 0    ? 0
                                 : m->o->lock_wait_s > 0 ? m->o->lock_wait_s
                                                         : LOCK_WAIT_S);
    int64_t start = hr_mono_ms();
    int pause_ms = 20, said = 0, lane = 0;
    char other[160];
    while (hold_try(m, &lane, other, sizeof other) == 2) {
        int64_t waited = hr_mono_ms() - start;
        char key[QUEUE_LANE_MAX + 300];
        if (waited >= wait_ms) {
            hr_err_set(m->err,
                       "import: lane %s is being planned by campaign %s's import (lock %s); "
                       "gave up after %lld s (--lock-wait): nothing was enqueued",
                       m->accts[lane].lane, other,
                       lane_key(m, "planning", lane, key, sizeof key), (long long)wait_ms / 1000);
            m->err->code = 1;
            return -1;
        }
        if (!said++)
            fprintf(stderr,
                    "herald import: campaign %s waits for lane %s, which campaign %s's import "
                    "is planning (up to %lld s, --lock-wait)\n",
                    m->cp->name, m->accts[lane].lane, other, (long long)wait_ms / 1000);
        int64_t left = wait_ms - waited;
        int64_t ms = pause_ms < left ? pause_ms : left;
        nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L}, NULL);
        if (pause_ms < 1000) pause_ms *= 2;
    }
    return lock_renew(m, m->err); /* took them, or says why not */
}

/* lock_take takes {NS}:importing:<campaign> for this run, with a lease
 * that every batch's transaction renews; another import of the campaign
 * running is an error (exit 1: try again once it ends). Then it takes the
 * lanes (lanes_take). */
static int lock_take(imp *m)
{
    char suffix[160];
    snprintf(suffix, sizeof suffix, "importing:%s", m->cp->name);
    queue_key(queue_ns(m->q), suffix, m->lock_key, sizeof m->lock_key);
    unsigned char rnd[16];
    hr_random_bytes(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(m->lock_token + 2 * i, 3, "%02x", rnd[i]);
    redisContext *c = queue_redis(m->q);
    redisReply *r =
        redisCommand(c, "SET %s %s NX PX %d", m->lock_key, m->lock_token, lease_ms());
    if (!r || r->type == REDIS_REPLY_ERROR) return redis_fail(m, c, r);
    int taken = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!taken) {
        long long ms = -1;
        r = redisCommand(c, "PTTL %s", m->lock_key);
        if (r && r->type == REDIS_REPLY_INTEGER) ms = r->integer;
        if (r) freeReplyObject(r);
        hr_err_set(m->err,
                   "import: campaign %s is being imported by another process (lock %s, "
                   "its lease ends within %lld s): try again when it is done",
                   m->cp->name, m->lock_key, ms > 0 ? (ms + 999) / 1000 : 0);
        m->err->code = 1;
        m->lock_key[0] = '\0';
        return -1;
    }
    /* the lanes and the holds, before anything is read or written */
    return lanes_take(m);
}

/* lock_drop releases the run's holds (RELEASE: after the rollback, if it
 * failed), then the lock if it is still ours. If Redis is away, both lapse
 * with their lease. */
static void lock_drop(imp *m)
{
    if (!m->lock_key[0] || !queue_redis(m->q)) return;
    redisReply *r = hold_run(m, 1);
    if (r) freeReplyObject(r);
    m->lock_key[0] = '\0';
}

/* ---- the import */

int sched_import(queue *q, const hr_config *cfg, const sched_import_opts *o, sched_import_stats *st,
                 hr_err *err)
{
    memset(st, 0, sizeof *st);
    imp m = {.q = o->dry_run && !q ? NULL : q, .o = o, .st = st, .err = err, .email_acct = -1};
    m.out = o->out ? o->out : stdout;
    m.cfg = cfg;
    m.now = o->now_ms ? o->now_ms : hr_now_ms();
    int rc = -1;
    hr_err e = {0};
    if (!o->dry_run && !q) return hr_err_set(err, "import: no Redis connection");
    m.cp = sched_campaign_load(cfg, o->campaign, &e);
    if (!m.cp) {
        hr_err_set(err, "import: %s", e.msg);
        err->code = 2;
        return -1;
    }
    /* emails carry a text body; posts need text only when a template says so */
    m.need_text = m.cp->email_lane != NULL;
    for (int i = 0; i < m.cp->ntemplates; i++)
        if (strstr(m.cp->templates[i].value, "{{text")) m.need_text = 1;
    m.seed = o->has_seed ? o->seed : sched_hash64(SCHED_HASH_INIT, m.cp->name);
    if (load_accounts(&m, cfg) < 0) {
        err->code = 2;
        goto out;
    }
    /* pass 1: validate everything, write nothing but the spool */
    m.pass = 1;
    m.spool = sched_spool_new(err);
    if (!m.spool) {
        err->code = 1;
        goto out;
    }
    if (sched_read(o->path, o->format, pass1_cb, &m, err) < 0) {
        if (m.spool_failed) {
            err->code = 1;
            goto out;
        }
        if (strncmp(err->msg, "import: ", 8) != 0) {
            char msg[HR_ERRLEN];
            snprintf(msg, sizeof msg, "%s", err->msg);
            hr_err_set(err, "import: %.*s", HR_ERRLEN - 10, msg);
        }
        err->code = 2;
        goto out;
    }
    st->invalid = 0; /* counted again in pass 2 */
    sched_idset_release(&m.ids); /* pass 2 needs only the hashes met twice */
    if (m.q) {
        char suffix[160];
        snprintf(suffix, sizeof suffix, "import:%s", m.cp->name);
        queue_key(queue_ns(m.q), suffix, m.index_key, sizeof m.index_key);
    }
    /* the lock and the lanes' planning locks first: the occupancy read
     * next must not be another import's (of this campaign or another one
     * on these lanes) still being written: both would book the same slots */
    if (!o->dry_run && lock_take(&m) < 0) goto out;
    if (load_contacts(&m, cfg) < 0 || load_taken(&m) < 0) goto out;
    if (!o->dry_run) {
        redisReply *r = redisCommand(queue_redis(q), "HINCRBY %s #gen 1", m.index_key);
        if (!r || r->type != REDIS_REPLY_INTEGER) {
            redis_fail(&m, queue_redis(q), r);
            goto out;
        }
        m.gen = r->integer;
        snprintf(m.gen_s, sizeof m.gen_s, "%lld ", m.gen);
        freeReplyObject(r);
        m.undo = sched_tmpfile("the undo log", err);
        if (!m.undo) {
            err->code = 1;
            goto out;
        }
    }
    if (o->dry_run && !o->json)
        fprintf(m.out, "%-22s %-10s %-24s %11s %s\n", "TIME (ACCOUNT ZONE)", "PLATFORM", "ACCOUNT",
                "LENGTH", "TEXT");
    m.pass = 2;
    int r2 = sched_spool_read(m.spool, pass2_cb, &m, err);
    if (r2 == 0) r2 = pass2_flush(&m, 1);
    bar_clear(&m);
    if (r2 < 0) {
        if (!o->dry_run) {
            pipe_drain(&m); /* what was sent is known before it is undone */
            rollback(&m);
        }
        goto out;
    }
    if (!o->dry_run && o->sync && sync_gone(&m) < 0) goto out;
    rc = 0;
out:
    if (m.lock_key[0] && m.nsent == m.sent_head && queue_redis(q)) {
        /* a WATCH left by a failed batch would fail this connection's
         * next transaction */
        redisReply *r = redisCommand(queue_redis(q), "UNWATCH");
        if (r) freeReplyObject(r);
    }
    lock_drop(&m);
    if (q && queue_redis(q) && queue_redis(q)->reader && queue_redis(q)->reader->privdata == &m)
        queue_redis(q)->reader->privdata = NULL; /* watch_mark's, m ends here */
    while (m.nlive)
        batch_free(&m, m.live[0]);
    free(m.live);
    free(m.sent);
    if (m.undo) fclose(m.undo);
    sched_spool_free(m.spool);
    sched_idset_release(&m.ids);
    sched_idset_release(&m.twice);
    sched_idmap_free(m.firsts);
    for (int i = 0; i < m.naccts; i++) {
        sched_account_release(&m.accts[i]);
        sched_taken_release(&m.taken[i]);
    }
    free(m.accts);
    free(m.taken);
#ifdef HAVE_HERALD_PLATFORMS
    for (int i = 0; m.fmt_accts && i < m.naccts; i++)
        plat_account_free(m.fmt_accts[i]);
#endif
    free(m.fmt_accts);
    sched_contacts_free(m.contacts, m.ncontacts);
    sched_blocks_release(&m.email_blocks);
    sched_campaign_free(m.cp);
    return rc;
}
