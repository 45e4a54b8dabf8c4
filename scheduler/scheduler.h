/* scheduler.h: turns CMS exports into scheduled jobs and promotes due jobs.
 * Readers stream WordPress WXR, Ghost JSON, CSV calendars and NDJSON into one
 * item struct through a callback; the planner (pure functions) places jobs on
 * each account's posting schedule; the importer ties them to the queue; the
 * daemon promotes due jobs on a libev timer. It does not send anything. */
#ifndef HERALD_SCHEDULER_H
#define HERALD_SCHEDULER_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common.h"
#include "queue.h"

/* ------------------------------------------------------------ items */

typedef enum {
    SCHED_FMT_AUTO = 0,
    SCHED_FMT_WXR,
    SCHED_FMT_GHOST,
    SCHED_FMT_CSV,
    SCHED_FMT_NDJSON,
} sched_format;

/* One CMS item, as every reader produces it. All strings are owned by the
 * reader and valid only during the callback. */
typedef struct sched_item {
    sched_format format;
    const char *file; /* the name used in messages */
    long line;        /* line (WXR, CSV, NDJSON) or record number (Ghost) */
    const char *id;   /* stable source reference: "wxr:1169", "ghost:5b2e..." */
    const char *title;
    const char *link;
    const char *html; /* body as HTML (WXR, Ghost) or NULL */
    const char *text; /* plain body when the source has one, or NULL */
    const char *excerpt;
    const char *image;
    const char *author;
    const char *status; /* normalized: "publish", "future", "draft", "private", ... */
    const char *type;   /* "post", "page", "attachment", ... */
    int64_t publish_ms; /* publish time (UTC), 0 when unknown */
    const char *const *tags;
    int ntags;
    const char *const *platforms; /* per-item lanes (CSV/NDJSON), or none */
    int nplatforms;
    const queue_kv *vars; /* extra columns (CSV) or "vars" (NDJSON) */
    int nvars;
    /* a problem with this item only (bad date, no text): the reader goes on.
     * NULL when the item is valid as far as the reader can tell. */
    const char *error;
} sched_item;

/* Returns 0 to go on, -1 to stop reading (the reader then returns -1 and
 * leaves err as the callback set it). */
typedef int sched_item_cb(const sched_item *it, void *priv, hr_err *err);

/* sched_item_where writes where the item is, for messages, into buf and
 * returns buf: "posts.xml:1432" (a line), or "ghost.json: posts[3]" (a
 * Ghost record, 1-based, which is no line). */
const char *sched_item_where(const sched_item *it, char *buf, size_t n);

/* sched_detect guesses the format from the n bytes at the start of a file
 * (whole: 1 when they are the whole file); returns SCHED_FMT_AUTO when it
 * cannot tell: nothing but spaces, or, unless whole, a first JSON object
 * whose line goes on past n (read more and ask again: NDJSON's first line
 * may be any length). See docs/import.md, Formats. */
sched_format sched_detect(const char *head, size_t n, int whole);
sched_format sched_format_parse(const char *name); /* "wxr", ...; AUTO when unknown */
const char *sched_format_name(sched_format f);

/* sched_read streams the file at path (fmt AUTO: detected) and calls cb once
 * per item, in file order. Returns 0, or -1 with "file:line: reason" in err
 * for a file that cannot be read on (malformed XML, JSON or CSV). Memory does
 * not grow with the file, except for Ghost JSON, which jansson loads whole. */
int sched_read(const char *path, sched_format fmt, sched_item_cb *cb, void *priv, hr_err *err);
/* sched_read_mem does the same for a buffer; name is used in messages. */
int sched_read_mem(const void *data, size_t n, const char *name, sched_format fmt,
                   sched_item_cb *cb, void *priv, hr_err *err);

/* sched_html_to_text returns a new plain-text rendering of an HTML fragment
 * (libxml2's HTML parser): block elements become line breaks, whitespace is
 * collapsed, entities decoded, comments (Gutenberg's) and scripts dropped. */
char *sched_html_to_text(const char *html);

/* ------------------------------------------------------------ time zones */

/* A time zone from the system tz database, with its UTC offsets precomputed
 * for a span of years so lookups are a binary search (no TZ switching). */
typedef struct sched_tz sched_tz;

/* sched_tz_new loads name ("Europe/Paris", "UTC") with its offsets
 * tabulated for instants from from_ms to to_ms; a lookup outside that span
 * extends the table first, so any instant gets its offset. NULL with err
 * when the zone is unknown. Switches TZ briefly (here and when a lookup
 * extends the table): call from one thread. */
sched_tz *sched_tz_new(const char *name, int64_t from_ms, int64_t to_ms, hr_err *err);
void sched_tz_free(sched_tz *z);
const char *sched_tz_name(const sched_tz *z);
/* sched_tz_offset returns the zone's UTC offset in seconds at instant ms. */
int sched_tz_offset(sched_tz *z, int64_t ms);
/* sched_tz_local converts an instant to local broken-down time (tm_gmtoff set). */
void sched_tz_local(sched_tz *z, int64_t ms, struct tm *out);
/* sched_tz_from_local returns the instant of a local wall time: in a gap
 * (spring forward) the time shifted forward by the gap, in an overlap (fall
 * back) the first occurrence. sec_of_day in [0, 86400). */
int64_t sched_tz_from_local(sched_tz *z, int year, int mon1, int mday, int sec_of_day);

/* ------------------------------------------------------------ accounts */

#define SCHED_MAX_SLOTS 64

typedef struct sched_slot {
    unsigned wdays; /* bit 0 = Sunday ... bit 6 = Saturday */
    int sec;        /* seconds after local midnight */
} sched_slot;

/* An account's posting schedule (from its "account" config line). */
typedef struct sched_account {
    char *platform;
    char *account;
    char lane[QUEUE_LANE_MAX];
    sched_tz *tz;
    sched_slot slots[SCHED_MAX_SLOTS]; /* sorted by sec */
    int nslots;
    int64_t spacing_ms;
    int64_t jitter_ms;
    int quiet_from_sec, quiet_to_sec; /* local; -1: no quiet hours */
    double rate_per_s;                /* emails: sends per second (0: none), email-rate= */
} sched_account;

/* sched_account_parse reads "platform:account key=value..." words (the
 * arguments of an "account" line; unknown keys are ignored). tz defaults to
 * UTC. The zone table spans [from_ms, to_ms]. An account with slots all
 * in its quiet hours is refused. Returns 0 or -1 with err. */
int sched_account_parse(sched_account *a, int argc, char *const *argv, int64_t from_ms,
                        int64_t to_ms, hr_err *err);
void sched_account_release(sched_account *a);
/* sched_parse_slots parses "mon-fri@09:00,12:30;sat@10:00" into a. */
int sched_parse_slots(sched_account *a, const char *spec, hr_err *err);
/* sched_parse_duration parses "30m", "90s", "2h", "1500ms", "0"; -1 if bad. */
int sched_parse_duration(const char *s, int64_t *ms);

/* ------------------------------------------------------------ planner */

/* sched_next_slot returns the first slot instant strictly after after_ms
 * (each local day's slot happens exactly once across DST changes), or -1
 * when the account has no slots. */
int64_t sched_next_slot(const sched_account *a, int64_t after_ms);
/* sched_in_quiet returns 1 when t_ms falls in the account's quiet hours. */
int sched_in_quiet(const sched_account *a, int64_t t_ms);
/* sched_quiet_end returns the first instant >= t_ms outside quiet hours. */
int64_t sched_quiet_end(const sched_account *a, int64_t t_ms);
/* sched_jitter returns a reproducible offset in [-jitter_ms, jitter_ms]
 * derived from seed and key (the job's unique key). */
int64_t sched_jitter(uint64_t seed, const char *key, int64_t jitter_ms);

/* The times already taken in one lane, sorted; the planner keeps spacing
 * against them. */
typedef struct sched_taken {
    int64_t *t;
    size_t n, cap;
    int64_t cursor_ms; /* the last slot handed out: the slot search resumes here */
} sched_taken;

void sched_taken_init(sched_taken *tk);
void sched_taken_release(sched_taken *tk);
void sched_taken_add(sched_taken *tk, int64_t t_ms);
/* sched_taken_remove drops one occurrence of t_ms (a job that moves gives
 * its time back); returns 1, or 0 when it was not taken. */
int sched_taken_remove(sched_taken *tk, int64_t t_ms);

/* sched_place chooses a run time for one post in account a and records it in
 * tk. publish_ms > now_ms: at the item's own time plus jitter in [0, J]
 * (never before the item is public); otherwise the next free slot after
 * now_ms plus jitter in [-J, J]; an account without slots takes items as
 * soon as possible, one after the other (spacing apart, jitter in [0, J]). Spacing to every taken
 * time and quiet hours hold; the jitter is clamped to fit between neighbours. key seeds the jitter.
 * Returns the run time, or -1 when no slot fits within a week of slots past
 * the last time taken in tk (then none ever will). */
int64_t sched_place(const sched_account *a, sched_taken *tk, uint64_t seed, const char *key,
                    int64_t now_ms, int64_t publish_ms);

/* Email blocks: each item's emails go out as one block of n sends at the
 * provider's rate; blocks of different items never overlap. */
typedef struct sched_blocks {
    int64_t *start, *end; /* sorted, [start, end) */
    size_t n, cap;
} sched_blocks;
void sched_blocks_release(sched_blocks *b);
/* sched_rate_block reserves n sends at a's rate (email-rate=; none: all at
 * once) starting at the first free time >= at_ms out of quiet hours, and
 * returns that start; send k of the block is at start + k * 1000 / rate.
 * BUG: a long block may run into quiet hours; only its start is checked. */
int64_t sched_rate_block(const sched_account *a, sched_blocks *b, int64_t at_ms, long n);
/* sched_rate_at returns the time of send k of a block starting at start. */
int64_t sched_rate_at(const sched_account *a, int64_t start_ms, long k);

/* ------------------------------------------------------------ campaigns */

typedef struct sched_contact {
    char *email;
    char *first_name;
    char *last_name;
    queue_kv *vars; /* the other columns */
    int nvars;
    long line; /* where its row starts in the contacts file */
} sched_contact;

/* A contacts row left out: its line and why. The reason does not repeat
 * the address (summaries end up in logs, where addresses are masked). */
typedef struct sched_contact_skip {
    long line;
    char why[80];
} sched_contact_skip;

#define SCHED_CONTACT_SKIPS_KEPT 5
/* The rows a contacts load left out: n in all (not an address, or an
 * address already on an earlier row), the first `kept` of them by line
 * with their reasons, and the file they are in. */
typedef struct sched_contact_skips {
    long n;
    int kept;
    sched_contact_skip first[SCHED_CONTACT_SKIPS_KEPT];
    char file[256];
} sched_contact_skips;

#define SCHED_MAX_LANES 60 /* post lanes per campaign */

typedef struct sched_campaign {
    char *name;
    char **lanes; /* "x:@shop" */
    int nlanes;
    queue_kv *templates; /* platform (or lane, or "default") -> template */
    int ntemplates;
    char **statuses; /* default publish,future */
    int nstatuses;
    char **types; /* default post */
    int ntypes;
    int drafts;
    char *email_lane; /* "sendgrid:main" or NULL */
    char *contacts_path;
    char *subject;    /* template */
    char *email_html; /* template, NULL: the item's HTML */
    char *email_text; /* template, NULL: the item's text */
    double email_rate_per_s;
    char *base_url; /* prefixes relative links (Ghost exports have none) */
    int max_attempts;
    uint64_t config_hash; /* of everything above: a change re-plans items */
} sched_campaign;

/* sched_campaign_load reads "campaign NAME key=value..." lines (several lines
 * with one name add up). name NULL: the only campaign in the file. */
sched_campaign *sched_campaign_load(const hr_config *c, const char *name, hr_err *err);
void sched_campaign_free(sched_campaign *cp);
/* sched_campaign_template returns the template for a lane (lane, then its
 * platform, then "default", then a built-in "{{title}} {{link}}"). */
const char *sched_campaign_template(const sched_campaign *cp, const char *lane);

/* sched_render expands {{name}} placeholders from the item and vars (vars
 * win; unknown names expand to ""). Names: title, link, excerpt, text,
 * tags (space separated), hashtags (#tag ...), author, id, publish_at.
 * Returns a new string. */
char *sched_render(const char *tmpl, const sched_item *it, const char *plain_text,
                   const queue_kv *vars, int nvars);
/* sched_render_blank returns 1 when sched_render would return "" for the
 * item (only spaces and line breaks come out, and those it drops), without
 * building the text: it stops at the first other character. {{text}} is
 * plain_text, or (NULL) sched_item_plain's, made only when the rest is
 * blank. */
int sched_render_blank(const char *tmpl, const sched_item *it, const char *plain_text,
                       const queue_kv *vars, int nvars);
/* sched_item_plain returns the item's body as plain text for {{text}} (new
 * string): its text as written, else its HTML turned into text. */
char *sched_item_plain(const sched_item *it);

/* sched_contacts_load reads a CRM CSV export: a header row with an email
 * column (first/last name columns optional, any others become template
 * variables). Rows whose address is invalid, or already on an earlier row,
 * are left out and described in *skipped. Returns 0 or -1 with
 * "file:line: reason". */
int sched_contacts_load(const char *path, sched_contact **out, int *n, sched_contact_skips *skipped,
                        hr_err *err);
void sched_contacts_free(sched_contact *v, int n);

/* ------------------------------------------------------------ importer */

typedef struct sched_import_opts {
    const char *path;
    sched_format format;
    const char *campaign; /* NULL: the only one in the config */
    int drafts;           /* also take drafts */
    int dry_run;          /* write nothing; print the plan */
    int json;             /* dry run: one JSON object per job */
    int sync;             /* cancel jobs of items gone or unpublished */
    int skip_invalid;     /* enqueue the valid items, list the bad ones */
    int has_seed;
    uint64_t seed;  /* jitter seed (default: from the campaign name) */
    int64_t now_ms; /* 0: the clock */
    int batch;      /* jobs per enqueue call (0: 1000) */
    int progress;   /* progress bar on stderr */
    /* seconds to wait for a lane another import is planning into before
     * failing (0: 180; negative: fail at once) */
    int lock_wait_s;
    FILE *out;      /* plan and invalid-item listing (NULL: stdout) */
    /* dry run: when set, called with each planned job instead of printing
     * the plan (herald preview); the job is borrowed for the call only */
    void (*on_planned)(const queue_job *j, void *priv);
    void *planned_priv;
} sched_import_opts;

typedef struct sched_import_stats {
    long items;    /* items read */
    long taken;    /* items that made jobs */
    long filtered; /* items left out by status or type */
    long invalid;  /* bad items (skipped with skip_invalid) */
    long kept_invalid; /* of those, items with jobs that --sync kept */
    long unchanged_items;
    long added, updated, unchanged, done;
    long cancelled;
    long emails;
    long suppressed;
    sched_contact_skips invalid_emails; /* contacts rows left out (.n) */
    long rolled_back;
    long planned; /* dry run: jobs in the plan printed */
} sched_import_stats;

/* sched_import imports one export for one campaign (see docs/import.md).
 * q may be NULL for a dry run (no occupancy from Redis then). All or
 * nothing: on failure nothing this run added stays queued. Returns 0, or -1
 * with err (err->code 2: bad input, 1: environment). */
int sched_import(queue *q, const hr_config *cfg, const sched_import_opts *o, sched_import_stats *st,
                 hr_err *err);

/* Test seam: when set, called before each enqueue batch (0-based); a
 * non-zero return makes that batch fail as if Redis had gone away. */
extern int (*sched_test_enqueue_fail)(int batch_no);

/* ------------------------------------------------------------ daemon */

typedef struct sched_daemon_opts {
    queue_opts q;
    int batch;         /* jobs per lane per promote call (0: 1000) */
    int max_sleep_ms;  /* timer cap (0: 1000) */
    int reap_every_ms; /* 0: 1000 */
} sched_daemon_opts;

typedef struct sched_daemon sched_daemon;
struct ev_loop;

/* sched_daemon_new connects (sync handle for promote/reap, async one for the
 * wake channel) and arms its watchers on loop; while Redis is unreachable it
 * retries with backoff. NULL with err (a bad URL or namespace). */
sched_daemon *sched_daemon_new(struct ev_loop *loop, const sched_daemon_opts *o, hr_err *err);
/* sched_daemon_stop stops every watcher (ev_run then returns); safe from a
 * callback. */
void sched_daemon_stop(sched_daemon *d);
void sched_daemon_free(sched_daemon *d);
/* sched_daemon_promoted returns how many jobs this daemon promoted. */
long sched_daemon_promoted(const sched_daemon *d);

#endif
