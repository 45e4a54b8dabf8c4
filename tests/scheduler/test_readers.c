/* test_readers.c: every reader on the real fixtures (tests/data/cms) and on
 * hand-made edge cases (tests/scheduler/data): fields, counts, and errors
 * that name the file, line or record and the reason. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "scheduler.h"

typedef struct got {
    char id[96], title[200], link[200], status[16], type[24], error[240], text[200], tags[400],
        plats[100];
    int ntags, nvars;
    long line;
    int64_t publish_ms;
    int has_html;
} got;

typedef struct bag {
    got v[400];
    int n;
} bag;

static void cp(char *dst, size_t n, const char *s)
{
    snprintf(dst, n, "%s", s ? s : "");
}

static int collect(const sched_item *it, void *priv, hr_err *err)
{
    (void)err;
    bag *b = priv;
    if (b->n >= 400) return -1;
    got *g = &b->v[b->n++];
    memset(g, 0, sizeof *g);
    cp(g->id, sizeof g->id, it->id);
    cp(g->title, sizeof g->title, it->title);
    cp(g->link, sizeof g->link, it->link);
    cp(g->status, sizeof g->status, it->status);
    cp(g->type, sizeof g->type, it->type);
    cp(g->error, sizeof g->error, it->error);
    cp(g->text, sizeof g->text, it->text);
    g->has_html = it->html && *it->html;
    for (int i = 0; i < it->ntags; i++) {
        size_t l = strlen(g->tags);
        snprintf(g->tags + l, sizeof g->tags - l, "%s%s", i ? "|" : "", it->tags[i]);
    }
    for (int i = 0; i < it->nplatforms; i++) {
        size_t l = strlen(g->plats);
        snprintf(g->plats + l, sizeof g->plats - l, "%s%s", i ? "|" : "", it->platforms[i]);
    }
    g->ntags = it->ntags;
    g->nvars = it->nvars;
    g->line = it->line;
    g->publish_ms = it->publish_ms;
    return 0;
}

static const got *find(const bag *b, const char *id)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->v[i].id, id)) return &b->v[i];
    return NULL;
}

static int count(const bag *b, const char *status, const char *type)
{
    int n = 0;
    for (int i = 0; i < b->n; i++)
        n += !strcmp(b->v[i].status, status) && !strcmp(b->v[i].type, type);
    return n;
}

static int64_t utc(const char *s)
{
    int64_t ms = 0;
    hr_parse_rfc3339(s, &ms);
    return ms;
}

static bag b;

static void test_wxr_theme_unit(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(HERALD_FIXTURES "/cms/wxr-wordpress-importer-theme-unit-test-data.xml",
                       SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 186);
    CHECK_INT(count(&b, "publish", "post"), 56);
    CHECK_INT(count(&b, "draft", "post"), 1);
    CHECK_INT(count(&b, "future", "post"), 1);
    const got *g = find(&b, "wxr:1169");
    REQUIRE(g);
    CHECK_STR(g->title, "");
    g = find(&b, "wxr:1153");
    REQUIRE(g);
    CHECK_STR(g->status, "future");
    CHECK_INT(g->publish_ms, utc("2030-01-01T19:00:18Z"));
    CHECK(strstr(g->tags, "content περιεχόμενο") != NULL);
    /* HTML in a title comes out as text */
    int markup = 0;
    for (int i = 0; i < b.n; i++)
        if (strstr(b.v[i].title, "Markup: Title With Markup")) markup = 1;
    CHECK(markup);
    for (int i = 0; i < b.n; i++)
        CHECK(b.v[i].error[0] == '\0');
}

static void test_wxr_small_export(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(HERALD_FIXTURES "/cms/wxr-wordpress-importer-small-export.xml",
                       SCHED_FMT_WXR, collect, &b, &err) == 0);
    CHECK_INT(b.n, 11);
    CHECK_INT(count(&b, "publish", "post"), 5);
    CHECK_INT(count(&b, "private", "post"), 1);
    CHECK_INT(count(&b, "draft", "page"), 1);
    for (int i = 0; i < b.n; i++) {
        if (!strcmp(b.v[i].status, "private")) CHECK_INT(b.v[i].ntags, 3);
        /* the zero date of the draft page is "unknown", not an error */
        if (!strcmp(b.v[i].status, "draft")) CHECK_INT(b.v[i].publish_ms, 0);
        CHECK(b.v[i].error[0] == '\0');
    }
}

static void test_wxr_edges(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/edge.xml", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 6);
    const got *g = find(&b, "wxr:10");
    REQUIRE(g);
    CHECK_STR(g->title, "");
    CHECK(g->has_html);
    g = find(&b, "wxr:11");
    REQUIRE(g);
    CHECK_STR(g->title, "Crème brûlée — 日本語 ✍️");
    CHECK_STR(g->tags, "desserts|cuisine française"); /* categories are not tags */
    CHECK_INT(g->line, 20);
    g = find(&b, "wxr:12");
    REQUIRE(g);
    CHECK_STR(g->status, "future");
    CHECK_INT(g->publish_ms, utc("2031-03-01T09:00:00Z"));
    g = find(&b, "wxr:13");
    REQUIRE(g);
    CHECK_STR(g->status, "draft");
    CHECK_INT(g->publish_ms, 0);
    CHECK_STR(g->error, "");
    g = find(&b, "wxr:14");
    REQUIRE(g);
    CHECK_STR(g->type, "page");
    g = find(&b, "wxr:15");
    REQUIRE(g);
    CHECK_INT(g->publish_ms, 0);
}

static void test_wxr_errors(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/bad-date.xml", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 3);
    const got *g = find(&b, "wxr:2");
    REQUIRE(g);
    CHECK_INT(g->line, 11);
    CHECK_STR(g->error, "<wp:post_date_gmt> is not a date: \"yesterday\"");
    b.n = 0;
    CHECK(sched_read(SCHED_DATA "/malformed.xml", SCHED_FMT_AUTO, collect, &b, &err) < 0);
    CHECK(strncmp(err.msg, "malformed.xml:10: malformed XML:", 32) == 0);
    CHECK(b.n <= 1); /* the reader may stop before handing out the item before */
    static const char junk[] = "<rss><channel><item><title>x</title>";
    b.n = 0;
    CHECK(sched_read_mem(junk, sizeof junk - 1, "junk.xml", SCHED_FMT_AUTO, collect, &b, &err) < 0);
    CHECK(strstr(err.msg, "junk.xml:1: malformed XML") == err.msg);
}

static void test_ghost_fixtures(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(HERALD_FIXTURES "/cms/ghost-2.1.3-nickisnoble-theme-unit-test.json",
                       SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 19);
    CHECK_INT(count(&b, "publish", "post"), 17);
    CHECK_INT(count(&b, "publish", "page"), 2);
    int many = 0;
    for (int i = 0; i < b.n; i++)
        if (!strcmp(b.v[i].title, "Many Tags")) many = b.v[i].ntags;
    CHECK_INT(many, 24);
    b.n = 0;
    REQUIRE(sched_read(HERALD_FIXTURES "/cms/ghost-3.3.0-uksb-theme-unit-test.json", SCHED_FMT_AUTO,
                       collect, &b, &err) == 0);
    CHECK_INT(b.n, 19);
    CHECK_INT(count(&b, "publish", "post"), 19);
    const got *g = find(&b, "ghost:5e2c0c2fbea7830001d7cf42");
    REQUIRE(g);
    CHECK_STR(g->title, "Creating a custom theme");
    CHECK_STR(g->link, "/themes/");
    CHECK_INT(g->publish_ms, utc("2020-01-24T20:04:22Z"));
    int emoji = 0;
    for (int i = 0; i < b.n; i++)
        emoji |= !strcmp(b.v[i].title, "Writing posts with Ghost ✍️");
    CHECK(emoji);
}

static void test_ghost_edges(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/ghost-small.json", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 5);
    const got *g = find(&b, "ghost:p1");
    REQUIRE(g);
    CHECK_STR(g->tags, "News|Café"); /* the internal tag is left out */
    CHECK_STR(g->text, "Body one");
    g = find(&b, "ghost:p2");
    REQUIRE(g);
    CHECK_STR(g->status, "future");
    CHECK_INT(g->publish_ms, utc("2031-06-01T12:00:00Z"));
    g = find(&b, "ghost:p4");
    REQUIRE(g);
    CHECK_STR(g->type, "page");
    g = find(&b, "ghost:p5");
    REQUIRE(g);
    CHECK_INT(g->line, 5);
    CHECK_STR(g->error, "published_at is not a date: \"not a date\"");
    b.n = 0;
    CHECK(sched_read(SCHED_DATA "/ghost-bad.json", SCHED_FMT_AUTO, collect, &b, &err) < 0);
    CHECK(strstr(err.msg, "ghost-bad.json:5: malformed JSON") == err.msg);
}

/* a Ghost field of the wrong type makes its post a bad item naming the
 * field (it was read as absent: a numeric title posted only the link, a
 * published_at of true slotted a published post as undated); null, which
 * Ghost writes for empty fields, stays absent */
static void test_ghost_types(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/ghost-types.json", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    REQUIRE(b.n == 9);
    static const char *const want[] = {
        "title is a number, not a string",
        "published_at is a boolean, not a string or an integer",
        "published_at is a boolean, not a string or an integer",
        "",
        "page is an array, not a string, an integer or a boolean",
        "id is a boolean, not a string or an integer",
        "the record is a string, not an object",
        "custom_excerpt is an object, not a string",
        "",
    };
    for (int i = 0; i < b.n; i++) {
        CHECK_INT(b.v[i].line, i + 1);
        CHECK_STR(b.v[i].error, want[i]);
    }
    CHECK_STR(b.v[3].id, "ghost:t4");
    CHECK_STR(b.v[3].status, "draft");
    CHECK_STR(b.v[5].id, "ghost:?");
    CHECK_STR(b.v[8].tags, "News");
    CHECK_INT(b.v[8].publish_ms, utc("2020-01-01T10:00:00Z"));
    /* tags, users and their links serve every post: a broken one fails the
     * file, naming it */
    static const struct {
        const char *data, *msg;
    } files[] = {
        {"\"tags\":\"nope\"", "g.json: data.tags is a string, not an array"},
        {"\"tags\":[{\"id\":\"a\",\"name\":5}]", "g.json: tags[1]: name is a number, not a string"},
        {"\"users\":[{\"id\":\"u\"},7]", "g.json: users[2] is a number, not an object"},
        {"\"posts_tags\":[{\"post_id\":\"p\",\"tag_id\":[1]}]",
         "g.json: posts_tags[1]: tag_id is an array, not a string or an integer"},
        {"\"posts_authors\":{}", "g.json: data.posts_authors is an object, not an array"},
    };
    for (size_t i = 0; i < HR_ARRAY_LEN(files); i++) {
        char *doc = hr_asprintf("{\"db\":[{\"meta\":{},\"data\":{\"posts\":[{\"id\":\"p\","
                                "\"title\":\"P\",\"status\":\"published\"}],%s}}]}",
                                files[i].data);
        b.n = 0;
        err.msg[0] = '\0';
        CHECK(sched_read_mem(doc, strlen(doc), "g.json", SCHED_FMT_AUTO, collect, &b, &err) < 0);
        CHECK_STR(err.msg, files[i].msg);
        CHECK_INT(b.n, 0);
        free(doc);
    }
}

static void test_csv(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/calendar.csv", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 4);
    const got *g = find(&b, "csv:c1");
    REQUIRE(g);
    CHECK_INT(g->line, 2);
    CHECK_INT(g->publish_ms, utc("2031-03-28T08:00:00Z")); /* 09:00 CET: DST starts on the 30th */
    CHECK_STR(g->tags, "sale|spring");
    CHECK_STR(g->plats, "x:@shop");
    CHECK_INT(g->nvars, 1);
    g = find(&b, "csv:c2");
    REQUIRE(g);
    CHECK_STR(g->title, "Café opening");
    CHECK_STR(g->text, "Come and see us.\nFree coffee ☕ all day.");
    CHECK_INT(g->publish_ms, utc("2031-04-02T06:30:00Z"));
    CHECK_STR(g->tags, "coffee|paris");
    CHECK_STR(g->plats, "x|mastodon");
    g = find(&b, "csv:c3");
    REQUIRE(g);
    CHECK_INT(g->line, 5); /* after a two-line row */
    g = find(&b, "csv:c4");
    REQUIRE(g);
    CHECK_STR(g->status, "draft");
}

static void test_csv_errors(void)
{
    hr_err err = {0};
    b.n = 0;
    CHECK(sched_read(SCHED_DATA "/bad-quote.csv", SCHED_FMT_CSV, collect, &b, &err) < 0);
    CHECK(strstr(err.msg, "bad-quote.csv:4: malformed CSV") == err.msg);
    CHECK_INT(b.n, 2);
    b.n = 0;
    CHECK(sched_read(SCHED_DATA "/unterminated.csv", SCHED_FMT_CSV, collect, &b, &err) < 0);
    CHECK(strstr(err.msg, "unterminated.csv:3: malformed CSV: unterminated") == err.msg);
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/bad-row.csv", SCHED_FMT_CSV, collect, &b, &err) == 0);
    CHECK_INT(b.n, 3);
    CHECK_STR(b.v[0].error, "");
    CHECK_INT(b.v[1].line, 3);
    CHECK_STR(b.v[1].error, "publish_at is not a date: \"31/01/2031\"");
    CHECK(strstr(b.v[2].error, "has no time zone") != NULL);
    static const char nohead[] = "foo,bar\n1,2\n";
    CHECK(sched_read_mem(nohead, sizeof nohead - 1, "x.csv", SCHED_FMT_CSV, collect, &b, &err) < 0);
    CHECK(strstr(err.msg, "x.csv:1: the header row names no") == err.msg);
}

/* a calendar may have any number of columns: 72 here, every one a
 * variable but id and title; a short row names the header's line */
static void test_csv_wide(void)
{
    hr_buf t;
    hr_buf_init(&t);
    hr_buf_puts(&t, "\n\nid,title");
    for (int i = 3; i <= 72; i++)
        hr_buf_printf(&t, ",v%d", i);
    hr_buf_puts(&t, "\nw1,Wide");
    for (int i = 3; i <= 72; i++)
        hr_buf_printf(&t, ",%d", i);
    hr_buf_puts(&t, "\nw2,Short,3\n");
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read_mem(t.data, t.len, "wide.csv", SCHED_FMT_CSV, collect, &b, &err) == 0);
    hr_buf_release(&t);
    REQUIRE(b.n == 2);
    CHECK_STR(b.v[0].id, "csv:w1");
    CHECK_STR(b.v[0].error, "");
    CHECK_INT(b.v[0].nvars, 70);
    CHECK_INT(b.v[1].line, 5);
    CHECK_STR(b.v[1].error, "row has 3 fields, the header row (line 3) has 72");
}

static void test_ndjson(void)
{
    hr_err err = {0};
    b.n = 0;
    REQUIRE(sched_read(SCHED_DATA "/posts.ndjson", SCHED_FMT_AUTO, collect, &b, &err) == 0);
    CHECK_INT(b.n, 4);
    CHECK_STR(b.v[0].id, "ndjson:n1");
    CHECK_STR(b.v[0].tags, "a|b");
    CHECK_STR(b.v[1].id, "ndjson:2");
    CHECK_INT(b.v[1].line, 3);
    CHECK_STR(b.v[1].status, "draft");
    CHECK_INT(b.v[2].line, 4);
    CHECK(strstr(b.v[2].error, "malformed JSON") == b.v[2].error);
    CHECK_INT(b.v[3].nvars, 1);
}

/* a UTF-8 byte order mark (Excel, Windows editors) is read past by every
 * reader, as the CSV and WXR ones always did */
static void test_bom(void)
{
    static const char nd[] =
        "\xEF\xBB\xBF{\"id\":1,\"title\":\"One\"}\n{\"id\":2,\"title\":\"Two\"}\n";
    static const char gh[] =
        "\xEF\xBB\xBF{\"db\":[{\"meta\":{},\"data\":{\"posts\":[{\"id\":\"g1\","
        "\"title\":\"G\",\"status\":\"published\"}]}}]}\n";
    static const char cs[] = "\xEF\xBB\xBFid,title\nc1,C\n";
    static const struct {
        const char *data;
        size_t n;
        const char *name, *id;
    } cases[] = {{nd, sizeof nd - 1, "bom.ndjson", "ndjson:1"},
                 {gh, sizeof gh - 1, "bom.json", "ghost:g1"},
                 {cs, sizeof cs - 1, "bom.csv", "csv:c1"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hr_err err = {0};
        b.n = 0;
        CHECK(sched_read_mem(cases[i].data, cases[i].n, cases[i].name, SCHED_FMT_AUTO, collect, &b,
                             &err) == 0);
        REQUIRE(b.n >= 1);
        CHECK_STR(b.v[0].id, cases[i].id);
        CHECK_STR(b.v[0].error, "");
    }
}

/* NDJSON whose first line is longer than the 4 KB detection used to look
 * at was taken for Ghost and failed ("b.ndjson:2: malformed JSON"): a file
 * and the same bytes in memory are NDJSON whatever the first line's length */
static void test_ndjson_long_first_line(void)
{
    static const size_t sizes[] = {3800, 4100, 70000};
    char *dir = th_tempdir();
    char *path = hr_asprintf("%s/b.ndjson", dir);
    for (size_t i = 0; i < HR_ARRAY_LEN(sizes); i++) {
        hr_buf t;
        hr_buf_init(&t);
        hr_buf_puts(&t, "{\"id\":\"long\",\"title\":\"Long\",\"html\":\"<p>");
        for (size_t k = 0; k < sizes[i]; k++)
            hr_buf_putc(&t, k % 64 == 63 ? ' ' : 'x');
        hr_buf_puts(&t, "</p>\"}\n{\"id\":\"short\",\"title\":\"Short\"}\n");
        th_write_file(path, t.data);
        for (int mem = 0; mem < 2; mem++) {
            hr_err err = {0};
            b.n = 0;
            int rc =
                mem ? sched_read_mem(t.data, t.len, "b.ndjson", SCHED_FMT_AUTO, collect, &b, &err)
                    : sched_read(path, SCHED_FMT_AUTO, collect, &b, &err);
            CHECK(rc == 0);
            if (rc < 0)
                fprintf(stderr, "  %zu bytes, %s: %s\n", sizes[i], mem ? "mem" : "file", err.msg);
            REQUIRE(b.n == 2);
            CHECK_STR(b.v[0].id, "ndjson:long");
            CHECK_INT(b.v[0].has_html, 1);
            CHECK_STR(b.v[1].id, "ndjson:short");
            CHECK_STR(b.v[1].error, "");
        }
        hr_buf_release(&t);
    }
    /* a document over several lines is still Ghost, whatever its first key */
    static const char pretty[] = "{\n  \"x\": 1,\n  \"db\": []\n}\n";
    hr_err err = {0};
    b.n = 0;
    CHECK(sched_read_mem(pretty, sizeof pretty - 1, "p.json", SCHED_FMT_AUTO, collect, &b, &err) <
          0);
    CHECK(strstr(err.msg, "p.json:1: not a Ghost export") == err.msg);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

static void test_detect_and_html(void)
{
    CHECK_INT(sched_detect("<?xml", 5, 0), SCHED_FMT_WXR);
    CHECK_INT(sched_detect("{\"db\":[", 7, 0), SCHED_FMT_GHOST);
    CHECK_INT(sched_detect("{\n \"db\": [", 10, 0), SCHED_FMT_GHOST);
    CHECK_INT(sched_detect("{\"id\":1}\n{\"id\":2}\n", 18, 0), SCHED_FMT_NDJSON);
    CHECK_INT(sched_detect("id,title\n", 9, 0), SCHED_FMT_CSV);
    CHECK_INT(sched_detect("  \n", 3, 1), SCHED_FMT_AUTO);
    /* a first line cut short cannot tell, unless it is all there is */
    CHECK_INT(sched_detect("{\"id\":1,\"html\":\"<p>", 19, 0), SCHED_FMT_AUTO);
    CHECK_INT(sched_detect("{\"id\":1,\"html\":\"<p>", 19, 1), SCHED_FMT_GHOST);
    CHECK_INT(sched_detect("{ \"me", 6, 0), SCHED_FMT_AUTO);
    CHECK_INT(sched_detect("{ \"meta\"", 9, 0), SCHED_FMT_GHOST);
    CHECK_INT(sched_detect("{\"id\":1,\n\"title\":\"x\"}", 23, 0), SCHED_FMT_GHOST);
    char *t = sched_html_to_text("<p>One &amp; two</p><!-- wp:paragraph --><p>Three</p>");
    CHECK(strstr(t, "One & two") != NULL);
    CHECK(strstr(t, "Three") != NULL);
    CHECK(strstr(t, "wp:paragraph") == NULL);
    free(t);
}

int main(void)
{
    th_run("wxr_theme_unit", test_wxr_theme_unit);
    th_run("wxr_small_export", test_wxr_small_export);
    th_run("wxr_edges", test_wxr_edges);
    th_run("wxr_errors", test_wxr_errors);
    th_run("ghost_fixtures", test_ghost_fixtures);
    th_run("ghost_edges", test_ghost_edges);
    th_run("ghost_types", test_ghost_types);
    th_run("csv", test_csv);
    th_run("csv_errors", test_csv_errors);
    th_run("csv_wide", test_csv_wide);
    th_run("ndjson", test_ndjson);
    th_run("ndjson_long_first_line", test_ndjson_long_first_line);
    th_run("bom", test_bom);
    th_run("detect_and_html", test_detect_and_html);
    return th_main_end();
}
