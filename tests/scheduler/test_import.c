/* test_import.c: herald import against a private redis-server: the real
 * fixtures, idempotent re-import, edits, --sync (also with many batches in
 * flight), jobs already sent, all or nothing (bad input and a Redis failure
 * midway), --skip-invalid, dry-run JSON, and emails with suppression and
 * invalid contacts. */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "platforms.h"
#include "scheduler.h"

static th_redis *R;
static char *dir;
static int ns_seq;
static char ns[32];
static queue *Q;

static const char *ACCOUNTS =
    "account x:@shop tz=Europe/Paris slots=daily@09:00,13:00,18:00 spacing=30m jitter=10m "
    "quiet=22:00-07:00 credentials=ignored\n"
    "account mastodon:@shop@mastodon.social tz=Europe/Paris slots=mon-fri@10:00 spacing=1h\n";

/* fresh namespace and config per test */
static hr_config *setup(const char *campaign_line)
{
    snprintf(ns, sizeof ns, "t%d", ++ns_seq);
    char *text = hr_asprintf("%s%s\n", ACCOUNTS, campaign_line);
    hr_err err = {0};
    hr_config *c = hr_config_parse(text, "test.conf", &err);
    if (!c) fprintf(stderr, "config: %s\n", err.msg);
    free(text);
    queue_free(Q);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = ns};
    Q = queue_connect(&o, &err);
    if (!Q) fprintf(stderr, "connect: %s\n", err.msg);
    return c;
}

static const char *CAMPAIGN =
    "campaign blog platforms=x:@shop,mastodon:@shop@mastodon.social "
    "\"template.x={{title}} {{link}} {{hashtags}}\" statuses=publish,future";

/* count runs a counting command (HLEN, ZCARD, LLEN) on {ns}:key */
static long count(const char *cmd, const char *key)
{
    char *s = th_redis_cmd(R, "%s {%s}:%s", cmd, ns, key);
    long n = s ? atol(s) : -1;
    free(s);
    return n;
}

static long hlen(const char *key)
{
    return count("HLEN", key);
}

static int import(hr_config *c, sched_import_opts *o, sched_import_stats *st, hr_err *err)
{
    if (!o->now_ms) hr_parse_rfc3339("2027-01-04T08:00:00Z", &o->now_ms);
    return sched_import(Q, c, o, st, err);
}

/* import_seam imports with the test seam set to seam for this one run */
static int import_seam(hr_config *c, sched_import_opts *o, sched_import_stats *st, hr_err *err,
                       int (*seam)(int))
{
    sched_test_enqueue_fail = seam;
    int rc = import(c, o, st, err);
    sched_test_enqueue_fail = NULL;
    return rc;
}

static queue_job *job_of(const char *key)
{
    char ukh[QUEUE_UKH_LEN + 1];
    queue_ukh_from_key(key, ukh);
    hr_err err = {0};
    return queue_get(Q, ukh, &err);
}

static void test_wxr_fixture_and_reimport(void)
{
    hr_config *c = setup(CAMPAIGN);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = HERALD_FIXTURES
                           "/cms/wxr-wordpress-importer-theme-unit-test-data.xml"};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.items, 186);
    CHECK_INT(st.taken, 57); /* 56 published posts and the scheduled one */
    CHECK_INT(st.added, 114);
    CHECK_INT(hlen("jobs"), 114);
    queue_job *j = job_of("blog|wxr:1153|x|@shop");
    REQUIRE(j);
    int64_t p;
    hr_parse_rfc3339("2030-01-01T19:00:18Z", &p);
    CHECK(j->run_at_ms >= p && j->run_at_ms <= p + 600000);
    CHECK_STR(j->campaign, "blog");
    CHECK_STR(j->source, "wxr:1153");
    CHECK(strncmp(j->text, "Scheduled https://", 18) == 0);
    CHECK(strstr(j->text, "#content") != NULL);
    queue_job_free(j);
    /* the same export again adds nothing */
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.updated, 0);
    CHECK_INT(st.unchanged_items, 57);
    CHECK_INT(hlen("jobs"), 114);
    hr_config_free(c);
}

static void write_ndjson(const char *path, const char *second_text, int with_third)
{
    char *s = hr_asprintf(
        "{\"id\":\"a\",\"title\":\"Alpha\",\"text\":\"one\",\"link\":\"https://e.x/a\"}\n"
        "{\"id\":\"b\",\"title\":\"Beta\",\"text\":\"%s\",\"link\":\"https://e.x/b\"}\n%s",
        second_text,
        with_third ? "{\"id\":\"c\",\"title\":\"Gamma\",\"publish_at\":\"2027-02-01T10:00:00Z\"}\n"
                   : "");
    th_write_file(path, s);
    free(s);
}

/* setup_both sets up campaign name on both accounts (x and mastodon) */
static hr_config *setup_both(const char *name)
{
    char *line = hr_asprintf("campaign %s platforms=x:@shop,mastodon:@shop@mastodon.social "
                             "\"template={{title}}: {{text}}\"",
                             name);
    hr_config *c = setup(line);
    free(line);
    return c;
}

/* item_file writes content to DIR/name.ndjson; the caller frees the path */
static char *item_file(const char *name, const char *content)
{
    char *path = hr_asprintf("%s/%s.ndjson", dir, name);
    th_write_file(path, content);
    return path;
}

static void test_edit_sync_and_sent(void)
{
    hr_config *c = setup_both("news");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/news.ndjson", dir);
    write_ndjson(path, "two", 1);
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 6);
    queue_job *before = job_of("news|ndjson:b|x|@shop");
    REQUIRE(before);
    CHECK_STR(before->text, "Beta: two");

    /* an edit updates the still-scheduled jobs and keeps their times */
    write_ndjson(path, "two, edited", 1);
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.updated, 2);
    CHECK_INT(st.unchanged_items, 2);
    queue_job *after = job_of("news|ndjson:b|x|@shop");
    REQUIRE(after);
    CHECK_STR(after->text, "Beta: two, edited");
    CHECK_INT(after->run_at_ms, before->run_at_ms);
    CHECK_STR(after->id, before->id);
    queue_job_free(before);
    queue_job_free(after);

    /* without --sync a vanished item stays; with it, its jobs are cancelled */
    write_ndjson(path, "two, edited", 0);
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.cancelled, 0);
    CHECK_INT(hlen("jobs"), 6);
    o.sync = 1;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.cancelled, 2);
    CHECK_INT(hlen("jobs"), 4);
    queue_job *gone = job_of("news|ndjson:c|x|@shop");
    CHECK(gone == NULL);
    queue_job_free(gone);
    hr_config_free(c);
    free(path);
}

/* an edit that moves a scheduled item's publish time re-plans its jobs
 * from the new time (later, then earlier): they never go out before the
 * article is public; an edit that keeps the time keeps the jobs' times */
static void write_future(const char *path, const char *title, const char *when)
{
    char *body = hr_asprintf("{\"id\":3,\"title\":\"%s\",\"status\":\"future\","
                             "\"publish_at\":\"%s\"}\n",
                             title, when);
    th_write_file(path, body);
    free(body);
}

/* as_older_herald rewrites key's stored job without its meta, as a herald
 * that did not record the item's publish time stored it */
static void as_older_herald(const char *key)
{
    queue_job *j = job_of(key);
    REQUIRE(j);
    for (int i = 0; i < j->nmeta; i++)
        free(j->meta[i].key), free(j->meta[i].value);
    j->nmeta = 0;
    hr_buf v;
    hr_buf_init(&v);
    queue_job_encode_stored(j, &v);
    redisContext *c = redisConnectUnix(R->sock);
    REQUIRE(c && !c->err);
    redisReply *r = redisCommand(c, "HSET {%s}:jobs %s %b", ns, queue_job_ukh(j), v.data, v.len);
    CHECK(r && r->type == REDIS_REPLY_INTEGER);
    if (r) freeReplyObject(r);
    redisFree(c);
    hr_buf_release(&v);
    queue_job_free(j);
}

static void test_edit_publish_time(void)
{
    hr_config *c = setup_both("pubt");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/pubt.ndjson", dir);
    write_future(path, "three", "2027-01-05T10:00:00Z");
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    /* x's job from a herald that kept no publish time: re-planned since
     * it would go out early */
    as_older_herald("pubt|ndjson:3|x|@shop");
    const char *when[] = {"2027-03-01T10:00:00Z", "2027-02-01T10:00:00Z"};
    for (int i = 0; i < 2; i++) {
        write_future(path, "three", when[i]);
        REQUIRE(import(c, &o, &st, &err) == 0);
        CHECK_INT(st.updated, 2);
        int64_t pub;
        hr_parse_rfc3339(when[i], &pub);
        const char *keys[] = {"pubt|ndjson:3|x|@shop", "pubt|ndjson:3|mastodon|@shop@mastodon.social"};
        for (int k = 0; k < 2; k++) {
            queue_job *j = job_of(keys[k]);
            REQUIRE(j);
            /* at the new time plus a jitter of 10 min at most (x), none (mastodon) */
            CHECK(j->run_at_ms >= pub && j->run_at_ms <= pub + 600000);
            queue_job_free(j);
        }
    }
    /* another edit of the same item, its time unchanged: the times stay */
    queue_job *before = job_of("pubt|ndjson:3|x|@shop");
    REQUIRE(before);
    write_future(path, "three, edited", when[1]);
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.updated, 2);
    queue_job *after = job_of("pubt|ndjson:3|x|@shop");
    REQUIRE(after);
    CHECK_INT(after->run_at_ms, before->run_at_ms);
    CHECK_STR(after->title, "three, edited");
    queue_job_free(before);
    queue_job_free(after);
    hr_config_free(c);
    free(path);
}

/* write_many writes n NDJSON items; item edited (if >= 0) has another text,
 * items skip1 and skip2 are left out */
static void write_many(const char *path, int n, int edited, int skip1, int skip2)
{
    hr_buf b;
    hr_buf_init(&b);
    for (int i = 0; i < n; i++) {
        if (i == skip1 || i == skip2) continue;
        hr_buf_printf(&b,
                      "{\"id\":\"p%d\",\"title\":\"Post %d\",\"text\":\"%s\","
                      "\"link\":\"https://e.x/%d\"}\n",
                      i, i, i == edited ? "edited" : "body", i);
    }
    th_write_file(path, b.data);
    hr_buf_release(&b);
}

/* setup_many sets up campaign name on both accounts and writes n items
 * to *path (the caller frees it) */
static hr_config *setup_many(const char *name, int n, char **path)
{
    hr_config *c = setup_both(name);
    *path = hr_asprintf("%s/%s.ndjson", dir, name);
    write_many(*path, n, -1, -1, -1);
    return c;
}

/* batches of a few jobs keep several of them in flight to Redis at once:
 * edits and --sync in the middle of that stream, then a re-import */
static void test_pipelined_batches(void)
{
    char *path;
    hr_config *c = setup_many("pipe", 40, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 3};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 80);
    CHECK_INT(hlen("jobs"), 80);
    queue_job *before = job_of("pipe|ndjson:p17|x|@shop");
    REQUIRE(before);

    write_many(path, 40, 17, 10, 30);
    o.sync = 1;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.updated, 2);
    CHECK_INT(st.unchanged_items, 37);
    CHECK_INT(st.cancelled, 4);
    CHECK_INT(hlen("jobs"), 76);
    queue_job *after = job_of("pipe|ndjson:p17|x|@shop");
    REQUIRE(after);
    CHECK_STR(after->text, "Post 17: edited");
    CHECK_INT(after->run_at_ms, before->run_at_ms);
    CHECK_STR(after->id, before->id);
    queue_job_free(before);
    queue_job_free(after);

    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added + st.updated + st.cancelled, 0);
    CHECK_INT(st.unchanged_items, 38);
    CHECK_INT(hlen("jobs"), 76);
    hr_config_free(c);
    free(path);
}

/* send_all promotes what is due (as `herald scheduler` does: an import's
 * jobs due now are scheduled, not made ready) and fetches and acks every
 * ready job of lane x:@shop (a worker sends them); returns how many */
static int send_all_on(queue *q)
{
    hr_err err = {0};
    const char *lanes[] = {"x:@shop"};
    queue_fetched *f = NULL;
    int n = 0;
    long promoted;
    int64_t next, now;
    if (queue_promote(q, 1000, &promoted, &next, &now, &err) < 0 ||
        queue_worker_register(q, "w1", 30000, &err) < 0 ||
        queue_fetch(q, "w1", lanes, 1, 10, 30000, &f, &n, &err) < 0)
        return -1;
    static int posts; /* one post per job: an id is one job's (ack refuses a taken one) */
    for (int i = 0; i < n; i++) {
        CHECK_INT(queue_attempt(q, "w1", f[i].ukh, &err), 0);
        char pid[24];
        snprintf(pid, sizeof pid, "%d", ++posts);
        queue_ack_item a = {
            .ukh = f[i].ukh, .lane = f[i].lane, .platform_id = pid, .lateness_ms = -1};
        int res = 0;
        CHECK(queue_ack(q, "w1", &a, 1, &res, &err) >= 0);
        CHECK_INT(res, 1);
    }
    queue_fetched_free(f, n);
    return n;
}

static int send_all(void)
{
    return send_all_on(Q);
}

static void test_sent_jobs_untouched(void)
{
    hr_config *c = setup("campaign now platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/now.ndjson", dir);
    write_ndjson(path, "two", 0);
    /* plan as of long ago, so every job is due now and goes to the ready list */
    sched_import_opts o = {.path = path};
    hr_parse_rfc3339("2020-01-01T00:00:00Z", &o.now_ms);
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(sched_import(Q, c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    CHECK_INT(send_all(), 2); /* a worker sends both */
    /* an edited re-import with --sync touches neither */
    write_ndjson(path, "changed", 0);
    o.sync = 1;
    REQUIRE(sched_import(Q, c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.done, 1);
    CHECK_INT(hlen("jobs"), 0);
    CHECK_INT(hlen("done"), 2);
    hr_config_free(c);
    free(path);
}

/* A sent item that leaves the export (--sync) and comes back later, now
 * planned in the future: its index entry is kept (GONE, its job could not
 * be cancelled), so the bulk path, which trusts "no entry, no job", never
 * sees it, and the checked path finds the job sent. */
static void test_sent_gone_and_back(void)
{
    hr_config *c = setup("campaign back platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/back.ndjson", dir);
    write_ndjson(path, "two", 0);
    sched_import_opts o = {.path = path};
    hr_parse_rfc3339("2020-01-01T00:00:00Z", &o.now_ms);
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(sched_import(Q, c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    CHECK_INT(send_all(), 2);
    /* b leaves the export */
    th_write_file(path, "{\"id\":\"a\",\"title\":\"Alpha\",\"text\":\"one\","
                        "\"link\":\"https://e.x/a\"}\n");
    o.sync = 1;
    REQUIRE(sched_import(Q, c, &o, &st, &err) == 0);
    CHECK_INT(st.cancelled, 0);
    char *e = th_redis_cmd(R, "HGET {%s}:import:back ndjson:b", ns);
    CHECK(e && strstr(e, " 0000000000000001 ") != NULL); /* GONE, its job listed */
    free(e);
    /* and comes back, planned in the future (bulk path territory) */
    write_ndjson(path, "two", 0);
    o.now_ms = 0;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.done, 1);
    CHECK_INT(st.unchanged_items, 1);
    CHECK_INT(hlen("jobs"), 0);
    CHECK_INT(count("ZCARD", "sched:x:@shop"), 0);
    hr_config_free(c);
    free(path);
}

/* fails_as_bad checks that importing with o fails on a bad item (msg,
 * exit 2) and writes no job */
static void fails_as_bad(hr_config *c, sched_import_opts *o, const char *msg)
{
    sched_import_stats st;
    hr_err err = {0};
    CHECK(import(c, o, &st, &err) < 0);
    CHECK_STR(err.msg, msg);
    CHECK_INT(err.code, 2);
    CHECK_INT(hlen("jobs"), 0);
}

/* skip_listed sets o to --skip-invalid, listing into a new memory stream
 * (*buf once closed) */
static FILE *skip_listed(sched_import_opts *o, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    o->skip_invalid = 1;
    o->out = open_memstream(buf, len);
    return o->out;
}

/* The same source id twice in one export (NDJSON lines, CSV rows, in one
 * batch or two): a bad item naming both lines, so the import fails and
 * writes nothing; with --skip-invalid the first goes in and the second is
 * listed, and a re-import finds nothing to update. */
static void test_duplicate_items(void)
{
    for (int batch = 1; batch <= 1000; batch += 999) {
        hr_config *c = setup_both("dup");
        REQUIRE(c && Q);
        char *path = hr_asprintf("%s/dup.ndjson", dir);
        th_write_file(path, "{\"id\":\"a\",\"title\":\"A\",\"text\":\"first\"}\n"
                            "{\"id\":\"b\",\"title\":\"B\",\"text\":\"b\"}\n"
                            "{\"id\":\"a\",\"title\":\"A\",\"text\":\"second\"}\n");
        sched_import_opts o = {.path = path, .batch = batch};
        sched_import_stats st;
        hr_err err = {0};
        fails_as_bad(c, &o, "import: dup.ndjson:3: id a already used by line 1");
        char *buf = NULL;
        size_t len = 0;
        FILE *out = skip_listed(&o, &buf, &len);
        for (int run = 0; run < 2; run++) {
            REQUIRE(import(c, &o, &st, &err) == 0);
            CHECK_INT(st.invalid, 1);
            CHECK_INT(st.added, run ? 0 : 4);
            CHECK_INT(st.updated, 0);
        }
        fclose(out);
        CHECK(buf && strstr(buf, "skipped: dup.ndjson:3: ndjson:a: id a already used by "
                                 "line 1\n") != NULL);
        free(buf);
        CHECK_INT(hlen("jobs"), 4);
        queue_job *j = job_of("dup|ndjson:a|x|@shop");
        CHECK(j && !strcmp(j->text, "A: first"));
        queue_job_free(j);
        hr_config_free(c);
        free(path);
    }
}

/* a CSV row whose id an earlier row has: the error names both lines */
static void test_duplicate_csv_rows(void)
{
    hr_config *c = setup("campaign dupc platforms=x:@shop");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/dup.csv", dir);
    th_write_file(path, "id,title,platforms\n7,First post,x\n7,Second different post,x\n");
    sched_import_opts o = {.path = path};
    fails_as_bad(c, &o, "import: dup.csv:3: id 7 already used by line 2");
    hr_config_free(c);
    free(path);
}

/* the id sets through their growth: 100,000 ids are each new once, then
 * all met; the exact map gives back each id's first line */
static void test_id_sets(void)
{
    sched_idset s = {0};
    sched_idmap *m = NULL;
    long again = 0, lines_ok = 0;
    char id[32];
    for (int round = 0; round < 2; round++)
        for (long i = 0; i < 100000; i++) {
            snprintf(id, sizeof id, "csv:%ld", i);
            again += sched_idset_add(&s, sched_id_hash(id));
            long first = sched_idmap_put(&m, id, i + 2 + round);
            lines_ok += round ? first == i + 2 : first == -1;
        }
    CHECK_INT(again, 100000);
    CHECK_INT(lines_ok, 200000);
    CHECK_INT((long)s.n, 100000);
    CHECK((double)s.n / (double)s.cap <= 0.75);
    sched_idset_release(&s);
    sched_idmap_free(m);
}

/* other_owner_kept checks that campaign's lock is still the other owner's
 * a test gave it (PX 100000), never renewed by the import (its lease is
 * 60 s), and deletes it */
static void other_owner_kept(const char *campaign)
{
    char *v = th_redis_cmd(R, "GET {%s}:importing:%s", ns, campaign);
    CHECK(v && !strcmp(v, "other-owner"));
    free(v);
    v = th_redis_cmd(R, "PTTL {%s}:importing:%s", ns, campaign);
    CHECK(v && atol(v) > 60000); /* not renewed by us */
    free(v);
    free(th_redis_cmd(R, "DEL {%s}:importing:%s", ns, campaign));
}

static int drop_lock_seam(int batch_no)
{
    if (batch_no == 2) free(th_redis_cmd(R, "DEL {%s}:importing:pipe", ns));
    return 0;
}

static int take_lock_seam(int batch_no)
{
    if (batch_no == 2)
        free(th_redis_cmd(R, "SET {%s}:importing:pipe other-owner PX 100000", ns));
    return 0;
}

/* One import of a campaign at a time: a held lock is a clear error that
 * writes nothing; it is released at the end; a lock lost midway (deleted,
 * or another owner's between two batches) fails the import, which writes
 * nothing more, leaves another owner's lock alone and rolls back nothing
 * (the jobs may be the other import's by then); what was written before
 * stays consistent, and a later import adds the rest. */
static void test_lock(void)
{
    char *path;
    hr_config *c = setup_many("pipe", 40, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 4};
    sched_import_stats st;
    hr_err err = {0};
    free(th_redis_cmd(R, "SET {%s}:importing:pipe someone-else PX 60000", ns));
    CHECK(import(c, &o, &st, &err) < 0);
    CHECK_INT(err.code, 1);
    CHECK(strstr(err.msg, "import: campaign pipe is being imported by another process") != NULL);
    CHECK_INT(hlen("jobs"), 0);
    char *v = th_redis_cmd(R, "GET {%s}:importing:pipe", ns);
    CHECK(v && !strcmp(v, "someone-else")); /* not ours to drop */
    free(v);
    free(th_redis_cmd(R, "DEL {%s}:importing:pipe", ns));

    /* batches of 2 items (4 jobs): batches 0 and 1 are in when batch 2 runs */
    CHECK(import_seam(c, &o, &st, &err, take_lock_seam) < 0);
    CHECK_INT(err.code, 1);
    CHECK(strstr(err.msg, "lost the lock of campaign pipe") != NULL);
    CHECK(strstr(err.msg, "could not be cancelled: the import's lock was lost") != NULL);
    CHECK_INT(hlen("jobs"), 8);
    CHECK_INT(hlen("import:pipe"), 5); /* 4 items and the generation counter */
    other_owner_kept("pipe");

    CHECK(import_seam(c, &o, &st, &err, drop_lock_seam) < 0);
    CHECK(strstr(err.msg, "lost the lock of campaign pipe") != NULL);
    CHECK_INT(hlen("jobs"), 8); /* batches 0 and 1 were in already */
    CHECK_INT(hlen("import:pipe"), 5);

    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 72);
    CHECK_INT(st.unchanged_items, 4);
    CHECK_INT(hlen("jobs"), 80);
    CHECK_INT(count("EXISTS", "importing:pipe"), 0);
    hr_config_free(c);
    free(path);
}

/* cli_enqueue runs `herald enqueue` (the binary, on this test's namespace)
 * with one job of unique key key on its stdin; returns its exit status,
 * its output in *out (caller frees). */
static int cli_enqueue(const char *key, char **out)
{
    char *conf = hr_asprintf("%s/enqueue.conf", dir);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace %s\n", R->sock, ns);
    th_write_file(conf, text);
    char *job = hr_asprintf("{\"platform\":\"x\",\"account\":\"@shop\",\"text\":\"mine\","
                            "\"unique_key\":\"%s\",\"run_at\":\"2031-01-01T00:00:00Z\"}\n",
                            key);
    char *argv[] = {HERALD_BIN, "--config", conf, "enqueue", NULL};
    int st = th_exec(argv, job, 1, out);
    free(job);
    free(text);
    free(conf);
    return st;
}

/* the seam of enqueue_lock: while the import holds its lock (batches 0
 * and 1 are in), `herald enqueue` of a job of its campaign is refused, of
 * another campaign's is not */
static int enqueue_refused, enqueue_other;
static int enqueue_seam(int batch_no)
{
    if (batch_no != 2) return 0;
    char *out = NULL;
    enqueue_refused = cli_enqueue("el|ndjson:p39|x|@shop", &out) == 1 && out &&
                      strstr(out, "herald enqueue: enqueue: campaign el is being imported by "
                                  "another process (lock {") &&
                      strstr(out, "}:importing:el, its lease ends within ") &&
                      strstr(out, " s): try again when it is done; 1 job not written");
    if (!enqueue_refused) fprintf(stderr, "herald enqueue said: %s\n", out ? out : "");
    free(out);
    enqueue_other = cli_enqueue("other|ndjson:p39|x|@shop", &out) == 0;
    free(out);
    return 0;
}

/* `herald enqueue` honours the import lock: a job whose unique key is of
 * the form of a campaign's import (campaign|source|platform|account) is
 * refused while that campaign is being imported, so it cannot race with
 * the import's plain writes, index or rollback; other campaigns' jobs are
 * not, and once the import is done the campaign's are enqueued again. */
static void test_enqueue_lock(void)
{
    char *path;
    hr_config *c = setup_many("el", 40, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 4};
    sched_import_stats st;
    hr_err err = {0};
    enqueue_refused = enqueue_other = 0;
    CHECK(import_seam(c, &o, &st, &err, enqueue_seam) == 0);
    CHECK(enqueue_refused);
    CHECK(enqueue_other);
    CHECK_INT(st.added, 80);
    CHECK_INT(hlen("jobs"), 81);
    queue_job *j = job_of("el|ndjson:p39|x|@shop");
    CHECK(j && !strcmp(j->text, "Post 39: body")); /* the import's, not the refused one */
    queue_job_free(j);
    j = job_of("other|ndjson:p39|x|@shop");
    CHECK(j && !strcmp(j->text, "mine"));
    queue_job_free(j);

    char *out = NULL;
    CHECK_INT(cli_enqueue("el|ndjson:new|x|@shop", &out), 0);
    CHECK(out && strstr(out, "1 added"));
    free(out);
    CHECK_INT(hlen("jobs"), 82);
    hr_config_free(c);
    free(path);
}

/* monitor_open opens a connection to the test's Redis in MONITOR mode:
 * it is told every command Redis runs, in the order it runs them. */
static redisContext *monitor_open(void)
{
    redisContext *m = redisConnectUnix(R->sock);
    redisReply *r = m && !m->err ? redisCommand(m, "MONITOR") : NULL;
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    if (!ok && m) redisFree(m);
    return ok ? m : NULL;
}

/* monitor_read returns (caller frees) the commands Redis ran on this test's
 * namespace, one per line without their time and client, up to the ECHO
 * of marker it sends now: nothing is waited for but that command. */
static char *monitor_read(redisContext *m, const char *marker)
{
    free(th_redis_cmd(R, "ECHO %s", marker));
    hr_buf b;
    hr_buf_init(&b);
    char *tag = hr_asprintf("{%s}:", ns);
    redisReply *r;
    while (redisGetReply(m, (void **)&r) == REDIS_OK && r) {
        int end = r->type == REDIS_REPLY_STATUS && strstr(r->str, marker);
        const char *c = r->type == REDIS_REPLY_STATUS ? strstr(r->str, "] \"") : NULL;
        if (!end && c && strstr(c, tag)) hr_buf_printf(&b, "%s\n", c + 2);
        freeReplyObject(r);
        if (end) break;
    }
    free(tag);
    return hr_buf_detach(&b);
}

/* The lock is taken before the campaign's occupancy (its lanes' scheduled
 * sets) and its contacts (the suppression list) are read: a second import
 * run right after a first one then plans around all the first one's jobs,
 * never into the same slots. Checked on the order Redis ran the commands
 * in (MONITOR): the lock's SET is the first thing an import does in the
 * namespace, and an import that finds the lock held reads nothing. */
static void test_lock_before_reads(void)
{
    char *contacts = hr_asprintf("%s/lr-contacts.csv", dir);
    th_write_file(contacts, "Email\nann@example.com\n");
    char *line = hr_asprintf("campaign lr platforms=x:@shop email=sendgrid:main contacts=%s",
                             contacts);
    hr_config *c = setup(line);
    REQUIRE(c && Q);
    setenv("HERALD_SECRET", "0123456789abcdef0123456789abcdef", 1);
    char *path = item_file("lr", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    redisContext *mon = monitor_open();
    REQUIRE(mon);
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    CHECK(import(c, &o, &st, &err) == 0);
    char *log = monitor_read(mon, "lr-first-done");
    char *set = hr_asprintf("\"SET\" \"{%s}:importing:lr\"", ns);
    char *occupancy = hr_asprintf("\"ZRANGE\" \"{%s}:sched:x:@shop\"", ns);
    char *suppressed = hr_asprintf("{%s}:suppressed\"", ns);
    CHECK(log && !strncmp(log, set, strlen(set))); /* the first command */
    CHECK(log && strstr(log, occupancy) && strstr(log, suppressed)); /* then the reads */
    free(log);

    free(th_redis_cmd(R, "SET {%s}:importing:lr someone-else PX 60000", ns));
    free(monitor_read(mon, "lr-held")); /* up to here */
    CHECK(import(c, &o, &st, &err) < 0);
    CHECK(strstr(err.msg, "campaign lr is being imported by another process") != NULL);
    log = monitor_read(mon, "lr-second-done");
    char *pttl = hr_asprintf("\"PTTL\" \"{%s}:importing:lr\"\n", ns);
    const char *nl = log ? strchr(log, '\n') : NULL;
    CHECK(log && !strncmp(log, set, strlen(set))); /* its SET NX, its lease's PTTL: no read */
    CHECK(nl && !strcmp(nl + 1, pttl));
    if (log && (!nl || strcmp(nl + 1, pttl))) fprintf(stderr, "commands run:\n%s", log);
    free(log);
    free(pttl);
    free(set);
    free(occupancy);
    free(suppressed);
    redisFree(mon);
    hr_config_free(c);
    free(line);
    free(contacts);
    free(path);
}

/* the seams of stall_lock: the import's lease clock jumps by stall_by_ms
 * before batch 0 writes (as if it had stalled that long), and with
 * stall_steal the lock lapsed meanwhile and another import took it */
static int64_t stall_ms, stall_by_ms;
static int stall_steal;
static int64_t stalled_clock_ms(void)
{
    return hr_mono_ms() + stall_ms;
}

static int stall_seam(int batch_no)
{
    if (batch_no != 0) return 0;
    stall_ms = stall_by_ms;
    if (stall_steal) free(th_redis_cmd(R, "SET {%s}:importing:st other-owner PX 100000", ns));
    return 0;
}

static int import_stalled(hr_config *c, sched_import_opts *o, sched_import_stats *st,
                          hr_err *err, int64_t by_ms, int steal)
{
    stall_ms = 0;
    stall_by_ms = by_ms;
    stall_steal = steal;
    sched_test_lock_clock_ms = stalled_clock_ms;
    int rc = import_seam(c, o, st, err, stall_seam);
    sched_test_lock_clock_ms = NULL;
    return rc;
}

/* A batch that finds more than half a lease gone since the lock's last
 * renewal (a stall: the lease may have lapsed and another import taken the
 * lock, which the lookup's GET, read before the stall, could not see)
 * checks the lock again with the compare script before its first write:
 * lost, the import stops with nothing of the batch written, not even the
 * PENDING entry that goes outside its transaction; still its own, the
 * lock is renewed and the import goes on. Without a stall, a lock that
 * changes hands in the instant between the lookup and the writes lets the
 * PENDING entry go, but the script call checks the import's token and is
 * refused. */
static void test_stall_lock(void)
{
    hr_config *c = setup_both("st");
    REQUIRE(c && Q);
    char *path = item_file("st", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    /* without its entry, the item's jobs (they exist) take the checked
     * path: a PENDING entry, then the script */
    free(th_redis_cmd(R, "HDEL {%s}:import:st ndjson:a", ns));
    th_write_file(path, "{\"id\":\"a\",\"title\":\"A\",\"text\":\"two\"}\n");
    CHECK(import_stalled(c, &o, &st, &err, 0, 1) < 0);
    CHECK(strstr(err.msg, "enqueue: lost the lock of campaign st ({") != NULL);
    char *entry = th_redis_cmd(R, "HGET {%s}:import:st ndjson:a", ns);
    CHECK(entry && strstr(entry, " 0000000000000000 ")); /* PENDING */
    free(entry);
    queue_job *j = job_of("st|ndjson:a|x|@shop");
    CHECK(j && !strcmp(j->text, "A: one"));
    queue_job_free(j);
    other_owner_kept("st");

    free(th_redis_cmd(R, "HDEL {%s}:import:st ndjson:a", ns));
    CHECK(import_stalled(c, &o, &st, &err, 60000, 1) < 0);
    CHECK_INT(err.code, 1);
    CHECK(strstr(err.msg, "import: lost the lock of campaign st ({") &&
          strstr(err.msg, "}:importing:st): another import holds it or it lapsed"));
    entry = th_redis_cmd(R, "HEXISTS {%s}:import:st ndjson:a", ns);
    CHECK(entry && !strcmp(entry, "0")); /* no PENDING entry */
    free(entry);
    j = job_of("st|ndjson:a|x|@shop");
    CHECK(j && !strcmp(j->text, "A: one"));
    queue_job_free(j);
    other_owner_kept("st");

    CHECK(import_stalled(c, &o, &st, &err, 60000, 0) == 0);
    CHECK_INT(st.updated, 2);
    j = job_of("st|ndjson:a|x|@shop");
    CHECK(j && !strcmp(j->text, "A: two"));
    queue_job_free(j);
    CHECK_INT(count("EXISTS", "importing:st"), 0);
    hr_config_free(c);
    free(path);
}

/* the seam of sent_during_rollback: a worker (its own connection)
 * promotes and sends what it can, then the batch fails */
static int sent_before_failure;
static int send_then_fail(int batch_no)
{
    if (batch_no != 2) return 0;
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts qo = {.url = url, .ns = ns};
    hr_err err = {0};
    queue *w = queue_connect(&qo, &err);
    sent_before_failure = w ? send_all_on(w) : -1;
    queue_free(w);
    return 1;
}

/* Jobs due now of a failed import were never ready (its lanes are held
 * while it runs, issue #4): a worker meanwhile sends none of them, and
 * the rollback cancels them all; the import run again adds them all. */
static void test_sent_during_rollback(void)
{
    char *path;
    hr_config *c = setup_many("rb", 6, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 2};
    hr_parse_rfc3339("2020-01-01T00:00:00Z", &o.now_ms); /* due now */
    sched_import_stats st;
    hr_err err = {0};
    CHECK(import_seam(c, &o, &st, &err, send_then_fail) < 0);
    CHECK_INT(sent_before_failure, 0);
    CHECK_INT(hlen("done"), 0);
    /* batches 0 and 1 (4 jobs) were in: all are rolled back */
    CHECK_INT(st.rolled_back, 4);
    CHECK(strstr(err.msg, "rolled back the 4 jobs this run had added") != NULL);
    o.now_ms = 0; /* now planned later than now */
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 12);
    CHECK_INT(hlen("jobs"), 12);
    hr_config_free(c);
    free(path);
}

/* job_ukh writes the ukh of the job of unique key key */
static char *job_ukh(const char *key, char ukh[QUEUE_UKH_LEN + 1])
{
    queue_ukh_from_key(key, ukh);
    return ukh;
}

/* fake_sent makes the job ukh of lane x:@shop look sent: only its done
 * record is left */
static void fake_sent(const char *ukh)
{
    free(th_redis_cmd(R, "HDEL {%s}:jobs %s", ns, ukh));
    free(th_redis_cmd(R, "ZREM {%s}:sched:x:@shop %s", ns, ukh));
    free(th_redis_cmd(R, "HSET {%s}:done %s 00000000%s\t1\t1", ns, ukh, ukh));
}

/* An item's index entry is missing (an index from before entries were
 * kept for sent jobs, an operator's HDEL) while its job was sent, or
 * exists (ready): a re-import finds the done or job record with its
 * lookup, takes the checked path, and neither schedules the job again. */
static void test_missing_entry(void)
{
    hr_config *c = setup("campaign lost platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/lost.ndjson", dir);
    write_ndjson(path, "two", 0);
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    char a[QUEUE_UKH_LEN + 1], b[QUEUE_UKH_LEN + 1];
    job_ukh("lost|ndjson:a|x|@shop", a);
    job_ukh("lost|ndjson:b|x|@shop", b);
    /* a was sent: only its done record is left; b is ready */
    free(th_redis_cmd(R, "HDEL {%s}:jobs %s", ns, a));
    free(th_redis_cmd(R, "ZREM {%s}:sched:x:@shop %s %s", ns, a, b));
    free(th_redis_cmd(R, "HSET {%s}:done %s 00000000%s\t1\t1", ns, a, a));
    free(th_redis_cmd(R, "RPUSH {%s}:ready:x:@shop %s", ns, b));
    free(th_redis_cmd(R, "HDEL {%s}:import:lost ndjson:a ndjson:b", ns));
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.done, 1);
    CHECK_INT(count("ZCARD", "sched:x:@shop"), 0);
    CHECK_INT(count("LLEN", "ready:x:@shop"), 1);
    CHECK_INT(hlen("jobs"), 1);
    /* both items have their entries again */
    CHECK_INT(hlen("import:lost"), 3);
    hr_config_free(c);
    free(path);
}

/* An edit with --sync that drops a platform whose job was sent keeps that
 * job listed in the item's entry: the index still accounts for it. */
static void test_edit_sync_keeps_sent(void)
{
    hr_config *c = setup_both("keep");
    REQUIRE(c && Q);
    char *path = item_file("keep", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path, .sync = 1};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    char x[QUEUE_UKH_LEN + 1], md[QUEUE_UKH_LEN + 1];
    job_ukh("keep|ndjson:a|x|@shop", x);
    job_ukh("keep|ndjson:a|mastodon|@shop@mastodon.social", md);
    /* x's job was sent */
    fake_sent(x);
    /* the item now goes to mastodon only */
    th_write_file(path, "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\","
                        "\"platforms\":\"mastodon\"}\n");
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.cancelled, 0);
    char *e = th_redis_cmd(R, "HGET {%s}:import:keep ndjson:a", ns);
    CHECK(e && strstr(e, x) && strstr(e, md));
    free(e);
    hr_config_free(c);
    free(path);
}

/* --sync comes back to GONE entries: a job it could not cancel before is
 * cancelled now, an id with neither a job nor a done record is dropped, a
 * sent one stays listed; a GONE entry left with nothing is deleted. */
static void test_sync_revisits_gone(void)
{
    hr_config *c = setup("campaign rev platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/rev.ndjson", dir);
    write_ndjson(path, "two", 0);
    sched_import_opts o = {.path = path, .sync = 1};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    char a[QUEUE_UKH_LEN + 1], b[QUEUE_UKH_LEN + 1];
    job_ukh("rev|ndjson:a|x|@shop", a);
    job_ukh("rev|ndjson:b|x|@shop", b);
    /* a: GONE listing its scheduled job and an unknown id; b: GONE, sent */
    char *v = hr_asprintf("1 0000000000000001 %s,zzzzzzzzzzzz", a);
    free(th_redis_cmd(R, "HSET {%s}:import:rev ndjson:a %s", ns, v));
    free(v);
    fake_sent(b);
    v = hr_asprintf("1 0000000000000001 %s", b);
    free(th_redis_cmd(R, "HSET {%s}:import:rev ndjson:b %s", ns, v));
    free(v);
    th_write_file(path, "{\"id\":\"c\",\"title\":\"C\",\"text\":\"c\"}\n");
    if (import(c, &o, &st, &err) < 0) fprintf(stderr, "import: %s\n", err.msg);
    CHECK_INT(st.cancelled, 1);
    CHECK_INT(hlen("jobs"), 1); /* c's */
    char *e = th_redis_cmd(R, "HGET {%s}:import:rev ndjson:a", ns);
    CHECK(e && !*e); /* deleted */
    free(e);
    e = th_redis_cmd(R, "HGET {%s}:import:rev ndjson:b", ns);
    CHECK(e && strstr(e, " 0000000000000001 ") && strstr(e, b));
    free(e);
    hr_config_free(c);
    free(path);
}

/* A batch with a new item that takes the checked path (its job was sent:
 * its PENDING entry is queued on the connection) before an edited item,
 * whose jobs' times are read one by one: each read gets its own reply. */
static void test_new_then_edit_in_batch(void)
{
    hr_config *c = setup("campaign mix platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = item_file("mix", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    queue_job *before = job_of("mix|ndjson:a|x|@shop");
    REQUIRE(before);
    char cu[QUEUE_UKH_LEN + 1];
    job_ukh("mix|ndjson:c|x|@shop", cu);
    free(th_redis_cmd(R, "HSET {%s}:done %s 00000000%s\t1\t1", ns, cu, cu));
    th_write_file(path, "{\"id\":\"c\",\"title\":\"C\",\"text\":\"c\"}\n"
                        "{\"id\":\"a\",\"title\":\"A\",\"text\":\"two\"}\n");
    if (import(c, &o, &st, &err) < 0) fprintf(stderr, "import: %s\n", err.msg);
    CHECK_INT(st.added, 0);
    CHECK_INT(st.done, 1);
    CHECK_INT(st.updated, 1);
    queue_job *after = job_of("mix|ndjson:a|x|@shop");
    CHECK(after && !strcmp(after->text, "A: two") && after->run_at_ms == before->run_at_ms);
    queue_job_free(before);
    queue_job_free(after);
    hr_config_free(c);
    free(path);
}

/* the seams of reconnect_lock and sync_cancel_lock: before a batch reads
 * its edits' job times, another import takes the lock (and, with
 * seam_kill, the importer's connection is killed: its next read
 * reconnects, which drops the WATCH of the batch's lookup) */
static const char *seam_campaign;
static int seam_kill;
static void steal_lock_seam(int batch_no)
{
    (void)batch_no;
    if (seam_kill) free(th_redis_cmd(R, "CLIENT KILL TYPE normal"));
    free(th_redis_cmd(R, "SET {%s}:importing:%s other-owner PX 100000", ns, seam_campaign));
}

static int import_steal(hr_config *c, sched_import_opts *o, sched_import_stats *st, hr_err *err,
                        const char *campaign, int kill)
{
    seam_campaign = campaign;
    seam_kill = kill;
    sched_test_before_edit_reads = steal_lock_seam;
    int rc = import(c, o, st, err);
    sched_test_before_edit_reads = NULL;
    return rc;
}

/* A reconnect between a batch's lookup (WATCH and GET of the lock) and its
 * MULTI drops the WATCH: the batch checks the lock again on the new
 * connection, so it writes nothing under another owner's lock and does not
 * renew it. */
static void test_reconnect_lock(void)
{
    hr_config *c = setup("campaign rc platforms=x:@shop \"template={{title}}: {{text}}\"");
    REQUIRE(c && Q);
    char *path = item_file("rc", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    char *e0 = th_redis_cmd(R, "HGET {%s}:import:rc ndjson:a", ns);
    th_write_file(path, "{\"id\":\"a\",\"title\":\"A\",\"text\":\"two\"}\n");
    CHECK(import_steal(c, &o, &st, &err, "rc", 1) < 0);
    CHECK_INT(err.code, 1);
    CHECK(strstr(err.msg, "lost the lock of campaign rc") != NULL);
    queue_job *j = job_of("rc|ndjson:a|x|@shop");
    CHECK(j && !strcmp(j->text, "A: one"));
    queue_job_free(j);
    char *e1 = th_redis_cmd(R, "HGET {%s}:import:rc ndjson:a", ns);
    CHECK(e0 && e1 && !strcmp(e0, e1));
    free(e0);
    free(e1);
    other_owner_kept("rc");
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.updated, 1);
    j = job_of("rc|ndjson:a|x|@shop");
    CHECK(j && !strcmp(j->text, "A: two"));
    queue_job_free(j);
    hr_config_free(c);
    free(path);
}

/* --sync's cancels for an edited item run only while the lock is ours: a
 * lock taken by another import before them stops the import with none
 * run. */
static void test_sync_cancel_lock(void)
{
    hr_config *c = setup_both("sc");
    REQUIRE(c && Q);
    char *path = item_file("sc", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path, .sync = 1};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    th_write_file(path, "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\","
                        "\"platforms\":\"mastodon\"}\n");
    CHECK(import_steal(c, &o, &st, &err, "sc", 0) < 0);
    CHECK(strstr(err.msg, "lost the lock of campaign sc") != NULL);
    CHECK_INT(st.cancelled, 0);
    queue_job *j = job_of("sc|ndjson:a|x|@shop");
    CHECK(j != NULL); /* not cancelled */
    queue_job_free(j);
    free(th_redis_cmd(R, "DEL {%s}:importing:sc", ns));
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.cancelled, 1);
    j = job_of("sc|ndjson:a|x|@shop");
    CHECK(j == NULL);
    queue_job_free(j);
    hr_config_free(c);
    free(path);
}

/* An email campaign whose contacts are all gone (unsubscribed): its items
 * make no jobs.
 * A new item with no job (listed twice: the second is skipped as a bad
 * item) next to an edited item whose --sync cancel, one by one, must get
 * its own reply. */
static void test_sync_no_jobs_pending(void)
{
    char *contacts = hr_asprintf("%s/nj-contacts.csv", dir);
    th_write_file(contacts, "Email,First Name\nann@example.com,Ann\n");
    char *line = hr_asprintf("campaign nj email=sendgrid:main contacts=%s email-rate=2/s "
                             "\"subject={{title}}\"",
                             contacts);
    hr_config *c = setup(line);
    REQUIRE(c && Q);
    setenv("HERALD_SECRET", "0123456789abcdef0123456789abcdef", 1);
    char *path = item_file("nj", "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    sched_import_opts o = {.path = path, .sync = 1};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.emails, 1);
    /* its one contact now unsubscribed: none left */
    th_write_file(contacts, "Email,First Name\nbob@example.com,Bob\n");
    REQUIRE(queue_suppress_add(Q, "0123456789abcdef0123456789abcdef", "bob@example.com",
                               "unsubscribed", &err) == 0);
    th_write_file(path, "{\"id\":\"c\",\"title\":\"C\",\"text\":\"c\"}\n"
                        "{\"id\":\"c\",\"title\":\"C\",\"text\":\"c\"}\n"
                        "{\"id\":\"a\",\"title\":\"A\",\"text\":\"one\"}\n");
    o.skip_invalid = 1;
    o.out = fopen("/dev/null", "w");
    int rc = import(c, &o, &st, &err);
    fclose(o.out);
    if (rc < 0) fprintf(stderr, "import: %s\n", err.msg);
    CHECK_INT(rc, 0);
    CHECK_INT(st.cancelled, 1);
    CHECK(job_of("nj|ndjson:a|sendgrid|main|ann@example.com") == NULL);
    CHECK_INT(hlen("jobs"), 0);
    hr_config_free(c);
    free(path);
    free(line);
    free(contacts);
}

static const char *rewrite_path;
static int rewrite_seam(int batch_no)
{
    if (batch_no == 0) th_write_file(rewrite_path, "{\"id\":\"zz\",\"title\":\"late\"}\n{bad\n");
    return 0;
}

/* The export is parsed once: the second pass reads back the items the
 * first one validated, so a file rewritten in place during the import
 * (here by a bad one, once the reader has read its first 64 KB and more
 * than one batch) changes nothing. */
static void test_file_changed_midway(void)
{
    char *path;
    hr_config *c = setup_many("once", 3000, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 200};
    sched_import_stats st;
    hr_err err = {0};
    rewrite_path = path;
    CHECK_INT(import_seam(c, &o, &st, &err, rewrite_seam), 0);
    CHECK_INT(st.items, 3000);
    CHECK_INT(st.added, 6000);
    CHECK_INT(hlen("jobs"), 6000);
    hr_config_free(c);
    free(path);
}

static void test_all_or_nothing_bad_item(void)
{
    hr_config *c = setup(CAMPAIGN);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = SCHED_DATA "/bad-date.xml"};
    sched_import_stats st;
    hr_err err = {0};
    fails_as_bad(c, &o, "import: bad-date.xml:11: <wp:post_date_gmt> is not a date: "
                        "\"yesterday\"");
    /* --skip-invalid: the rest goes in, the bad one is listed */
    char *buf = NULL;
    size_t len = 0;
    FILE *out = skip_listed(&o, &buf, &len);
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK_INT(st.invalid, 1);
    CHECK_INT(st.added, 4);
    CHECK(strstr(buf, "skipped: bad-date.xml:11: wxr:2: <wp:post_date_gmt>") != NULL);
    free(buf);
    /* a platform the campaign does not have is a bad item too */
    sched_import_opts o2 = {.path = SCHED_DATA "/calendar.csv"};
    hr_config *c2 = setup("campaign cal platforms=x:@shop");
    CHECK(import(c2, &o2, &st, &err) < 0);
    CHECK(strstr(err.msg, "calendar.csv:3: platform \"mastodon\" is not in campaign") != NULL);
    CHECK_INT(hlen("jobs"), 0);
    hr_config_free(c);
    hr_config_free(c2);
}

static int fail_at;
static int fail_third(int batch_no)
{
    return batch_no == fail_at;
}

static void test_all_or_nothing_redis_failure(void)
{
    hr_config *c = setup(CAMPAIGN);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = HERALD_FIXTURES
                           "/cms/wxr-wordpress-importer-theme-unit-test-data.xml",
                           .batch = 10};
    sched_import_stats st;
    hr_err err = {0};
    fail_at = 3;
    CHECK(import_seam(c, &o, &st, &err, fail_third) < 0);
    CHECK(strstr(err.msg, "rolled back") != NULL);
    CHECK(st.rolled_back > 0);
    CHECK_INT(hlen("jobs"), 0);
    CHECK_INT(hlen("import:blog"), 1); /* only the generation counter */
    /* and it imports cleanly afterwards */
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 114);
    hr_config_free(c);
}

/* write_edits writes items a, b, c (and d) with publish times in the
 * future; a and b edited (another text, a another time) when edited */
static void write_edits(const char *path, int edited)
{
    char *s = hr_asprintf(
        "{\"id\":\"a\",\"title\":\"A\",\"text\":\"%s\",\"publish_at\":\"%s\"}\n"
        "{\"id\":\"b\",\"title\":\"B\",\"text\":\"%s\",\"publish_at\":\"2027-02-02T10:00:00Z\"}\n"
        "{\"id\":\"c\",\"title\":\"C\",\"text\":\"c\",\"publish_at\":\"2027-02-03T10:00:00Z\"}\n%s",
        edited ? "a, edited" : "a", edited ? "2027-03-01T10:00:00Z" : "2027-02-01T10:00:00Z",
        edited ? "b, edited" : "b",
        edited ? "{\"id\":\"d\",\"title\":\"D\",\"text\":\"d\"}\n" : "");
    th_write_file(path, s);
    free(s);
}

/* A failed import undoes its edits too: the jobs it updated get their
 * stored value and time back, their items' index entries their value (and
 * the lanes' due entries follow), so a repeated import updates them again */
static void test_all_or_nothing_edits(void)
{
    hr_config *c = setup_both("ed");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/ed.ndjson", dir);
    write_edits(path, 0);
    sched_import_opts o = {.path = path, .batch = 2}; /* an item a batch */
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 6);
    const char *keys[] = {"ed|ndjson:a|x|@shop", "ed|ndjson:a|mastodon|@shop@mastodon.social",
                          "ed|ndjson:b|x|@shop", "ed|ndjson:b|mastodon|@shop@mastodon.social"};
    queue_job *before[4];
    char *score[4];
    for (int i = 0; i < 4; i++) {
        before[i] = job_of(keys[i]);
        REQUIRE(before[i]);
        char lane[QUEUE_LANE_MAX];
        queue_job_lane(before[i], lane, sizeof lane);
        score[i] = th_redis_cmd(R, "ZSCORE {%s}:sched:%s %s", ns, lane, queue_job_ukh(before[i]));
    }
    char *entry_a = th_redis_cmd(R, "HGET {%s}:import:ed ndjson:a", ns);
    char *entry_b = th_redis_cmd(R, "HGET {%s}:import:ed ndjson:b", ns);
    char *due = th_redis_cmd(R, "ZRANGE {%s}:due 0 0 WITHSCORES", ns);

    /* a and b are updated by batches 0 and 1, batch 3 (d, new) fails */
    write_edits(path, 1);
    fail_at = 3;
    CHECK(import_seam(c, &o, &st, &err, fail_third) < 0);
    CHECK_INT(st.updated, 4);
    CHECK(strstr(err.msg, "; restored the 4 jobs it had updated") != NULL);
    for (int i = 0; i < 4; i++) {
        queue_job *j = job_of(keys[i]);
        REQUIRE(j);
        CHECK_STR(j->text, before[i]->text);
        CHECK_INT(j->run_at_ms, before[i]->run_at_ms);
        char lane[QUEUE_LANE_MAX];
        queue_job_lane(j, lane, sizeof lane);
        char *sc = th_redis_cmd(R, "ZSCORE {%s}:sched:%s %s", ns, lane, queue_job_ukh(j));
        CHECK_STR(sc, score[i]);
        free(sc);
        queue_job_free(j);
    }
    char *v = th_redis_cmd(R, "HGET {%s}:import:ed ndjson:a", ns);
    CHECK_STR(v, entry_a);
    free(v);
    v = th_redis_cmd(R, "HGET {%s}:import:ed ndjson:b", ns);
    CHECK_STR(v, entry_b);
    free(v);
    v = th_redis_cmd(R, "ZRANGE {%s}:due 0 0 WITHSCORES", ns);
    CHECK_STR(v, due);
    free(v);
    CHECK_INT(hlen("jobs"), 6);

    /* and the repeated import does it all */
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.updated, 4);
    CHECK_INT(st.added, 2);
    for (int i = 0; i < 4; i++) {
        queue_job_free(before[i]);
        free(score[i]);
    }
    free(entry_a);
    free(entry_b);
    free(due);
    hr_config_free(c);
    free(path);
}

/* --sync --skip-invalid: an item still in the export but invalid (a typo
 * in its date) keeps its jobs, and says so; one that left is cancelled;
 * once fixed, the item is unchanged */
static void test_sync_keeps_invalid(void)
{
    hr_config *c = setup_both("zk");
    REQUIRE(c && Q);
    const char *ok = "{\"id\":1,\"title\":\"one\"}\n{\"id\":2,\"title\":\"two\"}\n"
                     "{\"id\":3,\"title\":\"three\"}\n";
    char *path = item_file("zk", ok);
    sched_import_opts o = {.path = path, .sync = 1};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 6);
    th_write_file(path, "{\"id\":1,\"title\":\"one\"}\n"
                        "{\"id\":2,\"title\":\"two\",\"publish_at\":\"2026-13-01T00:00:00Z\"}\n");
    char *buf, *e2;
    size_t len;
    FILE *out = skip_listed(&o, &buf, &len);
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK_INT(st.invalid, 1);
    CHECK_INT(st.kept_invalid, 1);
    CHECK_INT(st.cancelled, 2); /* item 3's */
    CHECK_INT(hlen("jobs"), 4);
    CHECK(buf && strstr(buf, "skipped: zk.ndjson:2: ndjson:2: ") != NULL);
    free(buf);
    queue_job *j = job_of("zk|ndjson:2|x|@shop");
    CHECK(j != NULL);
    queue_job_free(j);
    e2 = th_redis_cmd(R, "HGET {%s}:import:zk ndjson:2", ns);
    CHECK(e2 && !strncmp(e2, "2 ", 2)); /* seen by run 2 */
    free(e2);
    /* fixed: as it was */
    th_write_file(path, ok);
    o.skip_invalid = 0;
    o.out = NULL;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.unchanged_items, 2);
    CHECK_INT(st.added, 2);
    CHECK_INT(st.updated + st.cancelled, 0);
    hr_config_free(c);
    free(path);
}

/* Source ids with line breaks (NDJSON ids are any string) come back whole
 * from the undo log: the rollback deletes their entries,
 * and, through TMPDIR, the temp files are made where it says. */
static void test_rollback_odd_ids(void)
{
    hr_config *c = setup("campaign odd platforms=x:@shop \"template={{title}}\"");
    REQUIRE(c && Q);
    char *path = hr_asprintf("%s/odd.ndjson", dir);
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_puts(&b, "{\"id\":\"one\\ntwo\",\"title\":\"A\"}\n{\"id\":\"");
    hr_buf_puts(&b, "\\nx\\n");
    hr_buf_puts(&b, "\",\"title\":\"B\"}\n{\"id\":\"c\",\"title\":\"C\"}\n");
    th_write_file(path, b.data);
    hr_buf_release(&b);
    sched_import_opts o = {.path = path, .batch = 1};
    sched_import_stats st;
    hr_err err = {0};
    char *tmp = hr_asprintf("%s/tmp", dir);
    REQUIRE(mkdir(tmp, 0700) == 0);
    const char *old = getenv("TMPDIR");
    char *saved = old ? hr_strdup(old) : NULL;
    setenv("TMPDIR", tmp, 1);
    fail_at = 2;
    CHECK(import_seam(c, &o, &st, &err, fail_third) < 0);
    CHECK_INT(st.rolled_back, 2);
    CHECK_INT(hlen("jobs"), 0);
    CHECK_INT(hlen("import:odd"), 1); /* only the generation counter */
    free(path);
    /* a TMPDIR where no file can be made is a clear error */
    path = hr_asprintf("%s/none", dir);
    setenv("TMPDIR", path, 1);
    CHECK(import(c, &o, &st, &err) < 0);
    CHECK(strstr(err.msg, "cannot create a temp file for the items in") != NULL);
    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
    free(tmp);
    free(path);
    hr_config_free(c);
}

/* the test seam breaks a lane's scheduled set (made a string) just before
 * the batch is sent: after the import read it for the lane's occupancy */
static const char *break_lane;
static int break_lane_seam(int batch_no)
{
    (void)batch_no;
    free(th_redis_cmd(R, "SET {%s}:sched:%s wrongtype", ns, break_lane));
    return 0;
}

/* A batch of 2000 jobs goes to Redis as two script calls (jobs due now),
 * all sent before any reply is read, or as one transaction of plain
 * commands (new jobs due later); when one call or the ZADD of one lane
 * fails (its lane's scheduled set is of the wrong type), the other's jobs
 * are rolled back too, whichever ran first, and nothing half-written is
 * left behind (the failed lane's jobs that the transaction stored are
 * deleted). */
static void test_all_or_nothing_failed_chunk(void)
{
    char *path;
    hr_config *c = setup_many("big", 1000, &path);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = path, .batch = 2000};
    sched_import_stats st;
    hr_err err = {0};
    const char *lanes[] = {"x:@shop", "mastodon:@shop@mastodon.social"};
    for (int bad = 0; bad < 4; bad++) {
        o.now_ms = 0; /* the default: later than this host's clock */
        if (bad >= 2) hr_parse_rfc3339("2020-01-01T00:00:00Z", &o.now_ms);
        break_lane = lanes[bad % 2];
        CHECK(import_seam(c, &o, &st, &err, break_lane_seam) < 0);
        CHECK(strstr(err.msg, "WRONGTYPE") != NULL);
        CHECK(strstr(err.msg, lanes[bad % 2]) != NULL);
        CHECK(strstr(err.msg, "rolled back the 1000 jobs") != NULL);
        CHECK_INT(st.rolled_back, 1000);
        CHECK_INT(hlen("jobs"), 0);
        CHECK_INT(hlen("import:big"), 1); /* only the generation counter */
        char key[128];
        snprintf(key, sizeof key, "sched:%s", lanes[!(bad % 2)]);
        CHECK_INT(count("ZCARD", key), 0);
        for (int l = 0; l < 2; l++) {
            snprintf(key, sizeof key, "ready:%s", lanes[l]);
            CHECK_INT(count("LLEN", key), 0);
        }
        free(th_redis_cmd(R, "DEL {%s}:sched:%s", ns, lanes[bad % 2]));
    }
    /* and it imports cleanly afterwards */
    o.now_ms = 0;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2000);
    CHECK_INT(hlen("jobs"), 2000);
    hr_config_free(c);
    free(path);
}

static void test_csv_calendar(void)
{
    hr_config *c = setup("campaign cal platforms=x:@shop,mastodon:@shop@mastodon.social");
    REQUIRE(c && Q);
    sched_import_opts o = {.path = SCHED_DATA "/calendar.csv"};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.filtered, 1); /* the draft */
    CHECK_INT(st.added, 5);
    queue_job *j = job_of("cal|csv:c1|x|@shop");
    REQUIRE(j);
    int64_t p;
    hr_parse_rfc3339("2031-03-28T08:00:00Z", &p);
    CHECK(j->run_at_ms >= p && j->run_at_ms <= p + 600000);
    queue_job_free(j);
    /* drafts come with the flag */
    o.drafts = 1;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.added, 2);
    hr_config_free(c);
}

static void test_dry_run_json(void)
{
    hr_config *c = setup(CAMPAIGN);
    REQUIRE(c && Q);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    sched_import_opts o = {.path = HERALD_FIXTURES "/cms/ghost-3.3.0-uksb-theme-unit-test.json",
                           .dry_run = 1,
                           .json = 1,
                           .out = out};
    sched_import_stats st;
    hr_err err = {0};
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK_INT(hlen("jobs"), 0);
    int lines = 0;
    for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *v = json_loads(l, 0, &je);
        CHECK(v != NULL);
        CHECK(json_is_string(json_object_get(v, "source")));
        CHECK(json_is_string(json_object_get(v, "platform")));
        CHECK(json_is_string(json_object_get(v, "account")));
        CHECK(json_is_string(json_object_get(v, "text")));
        CHECK(json_is_integer(json_object_get(v, "length")));
        CHECK(json_object_get(v, "limit") != NULL);
        const char *run = json_string_value(json_object_get(v, "run_at"));
        int64_t ms;
        CHECK(run && hr_parse_rfc3339(run, &ms) == 0 && run[strlen(run) - 1] == 'Z');
        json_decref(v);
        lines++;
    }
    CHECK_INT(lines, 38);
    free(buf);
    /* the table */
    buf = NULL;
    out = open_memstream(&buf, &len);
    o.json = 0;
    o.out = out;
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK(strstr(buf, "TIME (ACCOUNT ZONE)") == buf);
    CHECK(strstr(buf, "+01:00 x          @shop") != NULL);
    free(buf);
    hr_config_free(c);
}

/* dry_run runs o as a dry run into a buffer (caller frees) */
static char *dry_run(hr_config *c, sched_import_opts o, int json, hr_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    o.dry_run = 1;
    o.json = json;
    o.out = open_memstream(&buf, &len);
    sched_import_stats st;
    int rc = import(c, &o, &st, err);
    fclose(o.out);
    if (rc == 0) return buf;
    free(buf);
    return NULL;
}

/* the dry run shows what the worker will send: the platforms module's
 * formatting of the job as imported (Bluesky's shortened link, LinkedIn's
 * UTM parameters), counted with the account's limit */
static void test_dry_run_as_sent(void)
{
    hr_config *c = setup("account bluesky:@b.bsky.social handle=b.bsky.social\n"
                         "account linkedin:@l\n"
                         "campaign sent platforms=bluesky:@b.bsky.social,linkedin:@l "
                         "\"template={{title}} {{link}}\"");
    REQUIRE(c && Q);
    hr_buf t;
    hr_buf_init(&t);
    hr_buf_puts(&t, "{\"id\":1,\"title\":\"");
    for (int i = 0; i < 45; i++)
        hr_buf_puts(&t, "word ");
    hr_buf_puts(&t, "\",\"link\":\"https://example.com/a/very/long/path/that/keeps/going/and/"
                    "going/2026/11/22/post-slug-here/\"}\n");
    char *path = item_file("sent", t.data);
    hr_buf_release(&t);
    sched_import_opts o = {.path = path};
    hr_err err = {0};
    char *json = dry_run(c, o, 1, &err), *table = dry_run(c, o, 0, &err);
    REQUIRE(json && table);
    sched_import_stats st;
    REQUIRE(import(c, &o, &st, &err) == 0);
    static const char *const lanes[][2] = {{"bluesky", "@b.bsky.social"}, {"linkedin", "@l"}};
    int seen = 0;
    for (char *l = strtok(json, "\n"); l; l = strtok(NULL, "\n")) {
        json_t *v = json_loads(l, 0, NULL);
        REQUIRE(v);
        const char *plat = json_string_value(json_object_get(v, "platform"));
        for (int k = 0; k < 2; k++) {
            if (strcmp(plat, lanes[k][0]) != 0) continue;
            seen++;
            char *key = hr_asprintf("sent|ndjson:1|%s|%s", lanes[k][0], lanes[k][1]);
            queue_job *j = job_of(key);
            plat_account *a = plat_account_find(c, lanes[k][0], lanes[k][1], &err);
            REQUIRE(j && a);
            plat_post p;
            REQUIRE(plat_format_job(a, j, NULL, 0, &p, &err) == 0);
            CHECK(p.valid);
            CHECK_STR(json_string_value(json_object_get(v, "text")), p.parts[0].text);
            CHECK_INT(json_integer_value(json_object_get(v, "length")), p.parts[0].length);
            CHECK_INT(json_integer_value(json_object_get(v, "limit")), p.limit);
            char row[64];
            snprintf(row, sizeof row, " %ld/%-5ld ", p.parts[0].length, p.limit);
            CHECK(strstr(table, row) != NULL);
            if (k == 1) CHECK(strstr(p.parts[0].text, "utm_source=linkedin") != NULL);
            plat_post_release(&p);
            plat_account_free(a);
            queue_job_free(j);
            free(key);
        }
        json_decref(v);
    }
    CHECK_INT(seen, 2);
    free(json);
    free(table);
    free(path);
    hr_config_free(c);
}

/* a template that renders nothing for an item makes it a bad item, in the
 * import, the dry run and with --skip-invalid alike (the worker would
 * otherwise send its own default template instead of the campaign's) */
static void test_empty_post_bad_item(void)
{
    hr_config *c = setup("campaign mt platforms=x:@shop,mastodon:@shop@mastodon.social "
                         "\"template.x={{title}} {{hashtags}}\"");
    REQUIRE(c && Q);
    char *path = item_file(
        "empty", "{\"id\":\"a\",\"title\":\"Alpha\",\"link\":\"https://e.x/a\"}\n"
                 "{\"id\":\"e\",\"title\":\" \",\"text\":\"body\",\"link\":\"https://e.x/e\"}\n"
                 "{\"id\":\"t\",\"title\":\"\",\"text\":\"b\",\"tags\":[\"t\"],\"link\":\"https://"
                 "e.x/t\"}\n");
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    hr_err err = {0};
    const char *want = "empty.ndjson:2: template \"{{title}} {{hashtags}}\" of x:@shop gives an "
                       "empty post";
    CHECK(import(c, &o, &st, &err) < 0);
    CHECK_INT(err.code, 2);
    CHECK(strstr(err.msg, want) != NULL);
    CHECK_INT(hlen("jobs"), 0);
    CHECK(dry_run(c, o, 1, &err) == NULL);
    CHECK(strstr(err.msg, want) != NULL);
    o.skip_invalid = 1;
    char *plan = dry_run(c, o, 1, &err);
    REQUIRE(plan);
    CHECK(strstr(plan, "\"ndjson:a\"") && strstr(plan, "\"ndjson:t\""));
    CHECK(strstr(plan, "\"ndjson:e\"") == NULL);
    CHECK(strstr(plan, "\"text\":\"\"") == NULL);
    free(plan);
    char *listed;
    size_t n;
    FILE *out = skip_listed(&o, &listed, &n);
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK_INT(st.invalid, 1);
    CHECK(strstr(listed, "skipped: empty.ndjson:2: ndjson:e: template") != NULL);
    free(listed);
    CHECK_INT(st.added, 4); /* a and t on both lanes; e on neither */
    queue_job *j = job_of("mt|ndjson:e|mastodon|@shop@mastodon.social");
    CHECK(j == NULL);
    queue_job_free(j);
    j = job_of("mt|ndjson:t|x|@shop");
    REQUIRE(j);
    CHECK_STR(j->text, "#t");
    queue_job_free(j);
    free(path);
    hr_config_free(c);
}

/* an account whose every slot is in its quiet hours is a config error
 * naming it (its posts were planned "now", in quiet hours, all at once) */
static void test_slots_all_quiet(void)
{
    hr_err err = {0};
    hr_config *c = hr_config_parse("account x:@q credentials=x tz=Europe/Paris slots=daily@23:00 "
                                   "quiet=22:00-07:00\ncampaign q platforms=x:@q\n",
                                   "qq.conf", &err);
    REQUIRE(c);
    char *path = hr_asprintf("%s/six.ndjson", dir);
    hr_buf b;
    hr_buf_init(&b);
    for (int i = 1; i <= 6; i++)
        hr_buf_printf(&b, "{\"id\":%d,\"title\":\"Post %d\"}\n", i, i);
    th_write_file(path, b.data);
    hr_buf_release(&b);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    sched_import_opts o = {.path = path, .dry_run = 1, .out = out};
    hr_parse_rfc3339("2026-11-22T22:30:00Z", &o.now_ms);
    sched_import_stats st;
    CHECK_INT(sched_import(NULL, c, &o, &st, &err), -1);
    fclose(out);
    CHECK_INT(err.code, 2);
    CHECK_STR(err.msg, "qq.conf:1: account x:@q: slots: every slot (23:00) is in the quiet hours "
                       "(22:00-07:00): no post could be placed");
    CHECK_INT(len, 0); /* no plan printed */
    free(buf);
    free(path);
    hr_config_free(c);
}

/* a bad item's message names its place as it is: a Ghost post by its
 * record (posts[N], not a line: p5 is on line 7), an NDJSON record by its
 * line; an id too long says so, with its length and the limit */
static void test_errors_name_record(void)
{
    hr_config *c = setup(CAMPAIGN);
    REQUIRE(c && Q);
    sched_import_opts o = {.path = SCHED_DATA "/ghost-small.json"};
    fails_as_bad(c, &o,
                 "import: ghost-small.json: posts[5]: published_at is not a date: "
                 "\"not a date\"");
    char id[96];
    memset(id, 'i', 95);
    id[95] = '\0';
    char *text = hr_asprintf("{\"id\":\"a\",\"title\":\"A\"}\n{\"id\":\"%s\",\"title\":\"B\"}\n"
                             "{\"id\":1.5,\"title\":\"C\"}\n",
                             id);
    char *path = item_file("longid", text);
    sched_import_opts o2 = {.path = path};
    fails_as_bad(c, &o2, "import: longid.ndjson:2: \"id\" is too long: 95 bytes, at most 80");
    char *gtext = hr_asprintf("{\"db\":[{\"meta\":{},\"data\":{\"posts\":[{\"id\":\"%s\",\"title\":"
                              "\"G\",\"status\":\"published\"}]}}]}\n",
                              id);
    char *gpath = hr_asprintf("%s/longid.json", dir);
    th_write_file(gpath, gtext);
    sched_import_opts o3 = {.path = gpath};
    fails_as_bad(c, &o3, "import: longid.json: posts[1]: \"id\" is too long: 95 bytes, at most 64");
    /* --skip-invalid lists them the same way, with their source ids */
    sched_import_stats st;
    hr_err err = {0};
    char *listed;
    size_t n;
    FILE *out = skip_listed(&o, &listed, &n);
    REQUIRE(import(c, &o, &st, &err) == 0);
    fclose(out);
    CHECK(strstr(listed, "skipped: ghost-small.json: posts[5]: ghost:p5: published_at") != NULL);
    free(listed);
    out = skip_listed(&o2, &listed, &n);
    REQUIRE(import(c, &o2, &st, &err) == 0);
    fclose(out);
    CHECK(strstr(listed, "longid.ndjson:3: ndjson:line3: \"id\" is not a string or an integer"));
    free(listed);
    /* a Ghost field of the wrong type is a bad item naming it, not a field
     * read as absent (a title of 12345 posted the link alone) */
    sched_import_opts o4 = {.path = SCHED_DATA "/ghost-types.json"};
    CHECK(import(c, &o4, &st, &err) < 0);
    CHECK_STR(err.msg, "import: ghost-types.json: posts[1]: title is a number, not a string");
    CHECK_INT(err.code, 2);
    err = (hr_err){0};
    out = skip_listed(&o4, &listed, &n);
    REQUIRE(import(c, &o4, &st, &err) == 0);
    fclose(out);
    CHECK(strstr(listed, "skipped: ghost-types.json: posts[3]: ghost:t3: published_at is a "
                         "boolean, not a string or an integer\n"));
    CHECK_INT(st.invalid, 7);
    CHECK_INT(st.taken, 1); /* t9; t4 is a draft */
    free(listed);
    free(text);
    free(path);
    free(gtext);
    free(gpath);
    hr_config_free(c);
}

static void test_emails(void)
{
    char *contacts = hr_asprintf("%s/contacts.csv", dir);
    th_write_file(contacts, "Email,First Name,Last Name,Plan\n"
                            "ann@example.com,Ann,Lee,pro\n"
                            "bob@example.com,Bob,,free\n"
                            "not-an-address,X,Y,free\n"
                            "gone@example.com,Gone,Away,pro\n"
                            "ANN@example.com,Ann,Again,pro\n");
    char *line = hr_asprintf("campaign mail email=sendgrid:main contacts=%s email-rate=2/s "
                             "\"subject=Hi {{first_name}}: {{title}}\"",
                             contacts);
    hr_config *c = setup(line);
    REQUIRE(c && Q);
    setenv("HERALD_SECRET", "0123456789abcdef0123456789abcdef", 1);
    hr_err err = {0};
    REQUIRE(queue_suppress_add(Q, "0123456789abcdef0123456789abcdef", "gone@example.com",
                               "unsubscribed", &err) == 0);
    char *path = hr_asprintf("%s/mail.ndjson", dir);
    write_ndjson(path, "two", 0);
    sched_import_opts o = {.path = path};
    sched_import_stats st;
    REQUIRE(import(c, &o, &st, &err) == 0);
    CHECK_INT(st.emails, 4); /* 2 items x ann, bob */
    CHECK_INT(st.suppressed, 1);
    CHECK_INT(st.invalid_emails.n, 2); /* not-an-address and the duplicate */
    REQUIRE(st.invalid_emails.kept == 2);
    CHECK_INT(st.invalid_emails.first[0].line, 4);
    CHECK_STR(st.invalid_emails.first[0].why, "not an email address: no @");
    CHECK_INT(st.invalid_emails.first[1].line, 6);
    CHECK_STR(st.invalid_emails.first[1].why, "same address as line 2");
    queue_job *j = job_of("mail|ndjson:a|sendgrid|main|ann@example.com");
    REQUIRE(j);
    CHECK_INT(j->kind, QUEUE_KIND_EMAIL);
    CHECK_STR(j->subject, "Hi Ann: Alpha");
    CHECK_STR(j->to, "ann@example.com");
    CHECK_STR(j->to_name, "Ann Lee");
    CHECK_STR(queue_job_get_var(j, "plan"), "pro");
    int64_t t0 = j->run_at_ms;
    queue_job_free(j);
    j = job_of("mail|ndjson:b|sendgrid|main|bob@example.com");
    REQUIRE(j);
    CHECK_INT(j->run_at_ms - t0, 1500); /* 4th email at 2/s */
    queue_job_free(j);
    hr_config_free(c);
    free(path);
    free(line);
    free(contacts);
}

/* the command itself: exit codes, messages, the dry-run table, a summary */
static int run_cli(const char *conf, const char *a1, const char *a2, const char *a3,
                   const char *out)
{
    char *argv[] = {HERALD_BIN, "--config", (char *)conf, "import", "--no-progress",
                    (char *)a1, (char *)a2, (char *)a3,   NULL};
    pid_t pid = th_spawn(argv, out);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void)
{
    snprintf(ns, sizeof ns, "t%d", ++ns_seq);
    char *conf = hr_asprintf("%s/cli.conf", dir), *out = hr_asprintf("%s/cli.out", dir);
    char *text =
        hr_asprintf("redis-url unix://%s\nnamespace %s\n%s%s\n", R->sock, ns, ACCOUNTS, CAMPAIGN);
    th_write_file(conf, text);
    CHECK_INT(run_cli(conf, SCHED_DATA "/bad-date.xml", NULL, NULL, out), 2);
    char *o = th_read_file(out, NULL);
    CHECK(o && strstr(o, "herald import: bad-date.xml:11: <wp:post_date_gmt> is not a date"));
    free(o);
    CHECK_INT(run_cli(conf, SCHED_DATA "/malformed.xml", NULL, NULL, out), 2);
    o = th_read_file(out, NULL);
    CHECK(o && strstr(o, "herald import: malformed.xml:10: malformed XML"));
    free(o);
    CHECK_INT(run_cli(conf, "--dry-run", SCHED_DATA "/edge.xml", NULL, out), 0);
    o = th_read_file(out, NULL);
    CHECK(o && strstr(o, "TIME (ACCOUNT ZONE)") && strstr(o, "Crème brûlée"));
    free(o);
    CHECK_INT(hlen("jobs"), 0);
    CHECK_INT(run_cli(conf, "--json", SCHED_DATA "/edge.xml", NULL, out), 0);
    o = th_read_file(out, NULL);
    CHECK(o && strstr(o, "\"added\":8")); /* 4 posts (10, 11, 12, 15) x 2 lanes */
    free(o);
    CHECK_INT(run_cli(conf, "--format", "ghost", SCHED_DATA "/edge.xml", out), 2);
    free(text);
    free(conf);
    free(out);
}

/* contacts rows left out are named, not only counted: the first 5 by line
 * with their reasons (bad addresses and later rows of an address, found
 * apart, in line order), the rest counted, in the summary, the dry run's
 * stderr and the --json summary; the address itself is never repeated */
static void test_contacts_skipped(void)
{
    char *contacts = hr_asprintf("%s/skip-contacts.csv", dir);
    th_write_file(contacts, "email,first name\n"
                            "ann@example.com,Ann\n"    /* 2 */
                            "zed@example.com,Zed\n"    /* 3 */
                            "Zed@Example.com,Again\n"  /* 4: same as 3 */
                            "bob@,Bob\n"               /* 5 */
                            "\"carl example.com\",C\n" /* 6 */
                            ",Nobody\n"                /* 7 */
                            "ANN@example.com,Ann2\n"   /* 8: same as 2 */
                            "dee@localhost,Dee\n"      /* 9 */
                            "@example.com,E\n"         /* 10 */
                            "fay@example.com,Fay\n");  /* 11 */
    sched_contact *v;
    int n;
    sched_contact_skips sk;
    hr_err err = {0};
    REQUIRE(sched_contacts_load(contacts, &v, &n, &sk, &err) == 0);
    CHECK_INT(n, 3);
    CHECK_STR(v[2].email, "zed@example.com");
    CHECK_STR(v[2].first_name, "Zed"); /* the first row of an address stays */
    CHECK_INT(v[2].line, 3);
    sched_contacts_free(v, n);
    CHECK_INT(sk.n, 7);
    REQUIRE(sk.kept == 5);
    static const struct {
        long line;
        const char *why;
    } want[] = {{4, "same address as line 3"},
                {5, "not an email address: nothing after the @"},
                {6, "not an email address: no @"},
                {7, "no email address"},
                {8, "same address as line 2"}};
    for (int i = 0; i < 5; i++) {
        CHECK_INT(sk.first[i].line, want[i].line);
        CHECK_STR(sk.first[i].why, want[i].why);
    }
    CHECK_STR(sk.file, contacts);

    setenv("HERALD_SECRET", "0123456789abcdef0123456789abcdef", 1);
    snprintf(ns, sizeof ns, "t%d", ++ns_seq);
    char *conf = hr_asprintf("%s/skip.conf", dir), *out = hr_asprintf("%s/skip.out", dir);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace %s\n%scampaign mail "
                             "email=sendgrid:main contacts=%s\n",
                             R->sock, ns, ACCOUNTS, contacts);
    th_write_file(conf, text);
    char *items = hr_asprintf("%s/skip.ndjson", dir);
    write_ndjson(items, "two", 0);
    for (int json = 0; json < 2; json++) {
        unlink(out);
        CHECK_INT(run_cli(conf, json ? "--json" : "--dry-run", items, NULL, out), 0);
        char *o = th_read_file(out, NULL);
        REQUIRE(o);
        char *first = hr_asprintf(json ? "\"invalid_emails\":7,\"invalid_email_rows\":[{\"file\":"
                                         "\"%s\",\"line\":4,\"reason\":\"same address as line "
                                         "3\"},{"
                                       : "skipped contact: %s:4: same address as line 3\n",
                                  contacts);
        CHECK(strstr(o, first) != NULL);
        if (json) {
            CHECK(strstr(o, "\"line\":8,\"reason\":\"same address as line 2\"}]}\n") != NULL);
        } else {
            CHECK(strstr(o, "contacts skipped: 0 suppressed, 7 invalid\n") != NULL);
            CHECK(strstr(o, "skip-contacts.csv:7: no email address\n") != NULL);
            CHECK(strstr(o, "skipped contacts: 2 more\n") != NULL);
        }
        CHECK(strstr(o, "bob@") == NULL && strstr(o, "carl") == NULL);
        if (!strstr(o, first)) fprintf(stderr, "%s", o);
        free(first);
        free(o);
    }
    unlink(out);
    free(items);
    free(text);
    free(conf);
    free(out);
    free(contacts);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    dir = th_tempdir();
    th_run("wxr_fixture_and_reimport", test_wxr_fixture_and_reimport);
    th_run("edit_sync_and_sent", test_edit_sync_and_sent);
    th_run("edit_publish_time", test_edit_publish_time);
    th_run("pipelined_batches", test_pipelined_batches);
    th_run("sent_jobs_untouched", test_sent_jobs_untouched);
    th_run("sent_gone_and_back", test_sent_gone_and_back);
    th_run("duplicate_items", test_duplicate_items);
    th_run("id_sets", test_id_sets);
    th_run("lock", test_lock);
    th_run("enqueue_lock", test_enqueue_lock);
    th_run("lock_before_reads", test_lock_before_reads);
    th_run("stall_lock", test_stall_lock);
    th_run("missing_entry", test_missing_entry);
    th_run("edit_sync_keeps_sent", test_edit_sync_keeps_sent);
    th_run("sync_revisits_gone", test_sync_revisits_gone);
    th_run("new_then_edit_in_batch", test_new_then_edit_in_batch);
    th_run("reconnect_lock", test_reconnect_lock);
    th_run("sync_cancel_lock", test_sync_cancel_lock);
    th_run("sync_no_jobs_pending", test_sync_no_jobs_pending);
    th_run("file_changed_midway", test_file_changed_midway);
    th_run("sent_during_rollback", test_sent_during_rollback);
    th_run("all_or_nothing_bad_item", test_all_or_nothing_bad_item);
    th_run("all_or_nothing_redis_failure", test_all_or_nothing_redis_failure);
    th_run("rollback_odd_ids", test_rollback_odd_ids);
    th_run("all_or_nothing_failed_chunk", test_all_or_nothing_failed_chunk);
    th_run("csv_calendar", test_csv_calendar);
    th_run("dry_run_json", test_dry_run_json);
    th_run("dry_run_as_sent", test_dry_run_as_sent);
    th_run("empty_post_bad_item", test_empty_post_bad_item);
    th_run("slots_all_quiet", test_slots_all_quiet);
    th_run("errors_name_record", test_errors_name_record);
    th_run("emails", test_emails);
    th_run("contacts_skipped", test_contacts_skipped);
    th_run("cli", test_cli);
    th_run("duplicate_csv_rows", test_duplicate_csv_rows);
    th_run("all_or_nothing_edits", test_all_or_nothing_edits);
    th_run("sync_keeps_invalid", test_sync_keeps_invalid);
    queue_free(Q);
    free(dir);
    return th_main_end();
}
