/* csv.c: the CSV content-calendar reader on libcsv (RFC 4180, strict). A
 * header row names the columns (see docs/import.md); unknown columns become
 * template variables. The file is fed to libcsv one line at a time so every
 * message names the line a row starts on. It does not guess delimiters. */
#include <csv.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

enum {
    C_ID,
    C_TITLE,
    C_TEXT,
    C_LINK,
    C_PUBLISH,
    C_TZ,
    C_PLATFORMS,
    C_TAGS,
    C_STATUS,
    C_IMAGE,
    C_EXCERPT,
    C_NCOLS
};

static const struct {
    int col;
    const char *name;
} col_names[] = {
    {C_ID, "id"},
    {C_ID, "key"},
    {C_TITLE, "title"},
    {C_TEXT, "text"},
    {C_TEXT, "body"},
    {C_TEXT, "message"},
    {C_LINK, "link"},
    {C_LINK, "url"},
    {C_PUBLISH, "publish_at"},
    {C_PUBLISH, "publish_time"},
    {C_PUBLISH, "date"},
    {C_PUBLISH, "time"},
    {C_TZ, "timezone"},
    {C_TZ, "tz"},
    {C_TZ, "time_zone"},
    {C_PLATFORMS, "platforms"},
    {C_PLATFORMS, "platform"},
    {C_TAGS, "tags"},
    {C_STATUS, "status"},
    {C_IMAGE, "image"},
    {C_IMAGE, "media"},
    {C_EXCERPT, "excerpt"},
};

typedef struct tz_cache {
    char *name;
    sched_tz *tz;
} tz_cache;

typedef struct csv_ctx {
    const sched_src *src;
    sched_item_cb *cb;
    void *priv;
    hr_err *err;
    int stop;
    long line, row_line;
    int between_rows;
    long rows;
    sched_strv fields; /* the current row */
    sched_strv header;
    int *colmap; /* header index -> C_ column, or -1: a variable */
    int ncols;   /* the header's fields: as many as it has */
    long header_line;
    int have[C_NCOLS];
    tz_cache *zones;
    int nzones;
} csv_ctx;

static void on_field(void *s, size_t n, void *arg)
{
    csv_ctx *c = arg;
    sched_strv_push(&c->fields, s ? s : "", s ? n : 0);
}

static sched_tz *zone(csv_ctx *c, const char *name, hr_err *err)
{
    for (int i = 0; i < c->nzones; i++)
        if (!strcmp(c->zones[i].name, name)) return c->zones[i].tz;
    /* 2000..2100 covers any content calendar */
    sched_tz *z = sched_tz_new(name, 946684800000LL, 4102444800000LL, err);
    if (!z) return NULL;
    c->zones = hr_realloc(c->zones, (size_t)(c->nzones + 1) * sizeof *c->zones);
    c->zones[c->nzones].name = hr_strdup(name);
    c->zones[c->nzones++].tz = z;
    return z;
}

/* local "YYYY-MM-DD HH:MM[:SS]" in zone zname */
static int local_time(csv_ctx *c, const char *s, const char *zname, int64_t *ms, char *why,
                      size_t whylen)
{
    int Y, M, D, sec;
    if (sched_parse_wall(s, &Y, &M, &D, &sec) < 0) {
        snprintf(why, whylen, "publish_at is not a date: \"%.60s\"", s);
        return -1;
    }
    if (!zname || !*zname) {
        snprintf(why, whylen,
                 "publish_at \"%.40s\" has no time zone (add an offset or a "
                 "timezone column)",
                 s);
        return -1;
    }
    hr_err zerr = {0};
    sched_tz *z = zone(c, zname, &zerr);
    if (!z) {
        snprintf(why, whylen, "%.200s", zerr.msg);
        return -1;
    }
    *ms = sched_tz_from_local(z, Y, M, D, sec);
    return 0;
}

static const char *field(csv_ctx *c, int col)
{
    int i = c->have[col] - 1;
    if (i < 0 || i >= c->fields.n) return NULL;
    return c->fields.v[i];
}

static void header_row(csv_ctx *c)
{
    c->ncols = c->fields.n;
    c->header_line = c->row_line;
    c->colmap = hr_malloc((size_t)c->ncols * sizeof *c->colmap);
    for (int i = 0; i < c->ncols; i++) {
        char *h = c->fields.v[i];
        /* a UTF-8 byte order mark sticks to the first name */
        if (i == 0 && sched_bom_len(h, strlen(h))) memmove(h, h + 3, strlen(h + 3) + 1);
        for (char *p = h; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        sched_strv_push(&c->header, h, strlen(h));
        c->colmap[i] = -1;
        for (size_t k = 0; k < HR_ARRAY_LEN(col_names); k++)
            if (!strcmp(h, col_names[k].name) && !c->have[col_names[k].col]) {
                c->colmap[i] = col_names[k].col;
                c->have[col_names[k].col] = i + 1;
                break;
            }
    }
    if (!c->have[C_TITLE] && !c->have[C_TEXT]) {
        hr_err_set(c->err, "%s:%ld: the header row names no \"title\" or \"text\" column",
                   c->src->name, c->row_line);
        c->stop = 1;
    }
}

static void on_row(int term, void *arg)
{
    csv_ctx *c = arg;
    (void)term;
    c->between_rows = 1;
    if (c->stop) goto out;
    if (c->rows++ == 0) {
        header_row(c);
        goto out;
    }
    char why[240] = "", idbuf[80];
    sched_item it = {0};
    it.format = SCHED_FMT_CSV;
    it.file = c->src->name;
    it.line = c->row_line;
    it.title = field(c, C_TITLE);
    it.text = field(c, C_TEXT);
    if (it.text && !*it.text) it.text = NULL;
    it.link = field(c, C_LINK);
    if (it.link && !*it.link) it.link = NULL;
    it.image = field(c, C_IMAGE);
    it.excerpt = field(c, C_EXCERPT);
    it.status = sched_status_norm(field(c, C_STATUS));
    it.type = "post";
    const char *key = field(c, C_ID);
    if (key && *key) {
        snprintf(idbuf, sizeof idbuf, "csv:%.70s", key);
    } else {
        /* no id column: the row's content names it (an edit makes a new item) */
        uint64_t h = SCHED_HASH_INIT;
        h = sched_hash64(h, it.title);
        h = sched_hash64(h, it.text);
        h = sched_hash64(h, it.link);
        h = sched_hash64(h, field(c, C_PUBLISH));
        snprintf(idbuf, sizeof idbuf, "csv:h%016llx", (unsigned long long)h);
    }
    it.id = idbuf;
    sched_strv tags = {0}, plats = {0};
    queue_kv *vars = NULL;
    int nvars = 0;
    if (c->fields.n != c->ncols)
        snprintf(why, sizeof why, "row has %d fields, the header row (line %ld) has %d",
                 c->fields.n, c->header_line, c->ncols);
    for (int i = 0; i < c->fields.n && !why[0]; i++)
        if (!sched_utf8_valid(c->fields.v[i]))
            snprintf(why, sizeof why, "column %d is not valid UTF-8", i + 1);
    if (!why[0] && (!it.title || !*it.title) && !it.text)
        snprintf(why, sizeof why, "row has neither text nor title");
    const char *pub = field(c, C_PUBLISH);
    if (!why[0] && pub && *pub) {
        if (hr_parse_rfc3339(pub, &it.publish_ms) < 0 &&
            local_time(c, pub, field(c, C_TZ), &it.publish_ms, why, sizeof why) < 0)
            it.publish_ms = 0;
    }
    if (!why[0] && !strcmp(it.status, "future") && it.publish_ms == 0)
        snprintf(why, sizeof why, "scheduled row has no publish_at");
    sched_split(field(c, C_TAGS), ",;| ", &tags);
    for (int i = 0; i < tags.n; i++)
        if (tags.v[i][0] == '#') memmove(tags.v[i], tags.v[i] + 1, strlen(tags.v[i]));
    sched_split(field(c, C_PLATFORMS), ",;| ", &plats);
    it.tags = (const char *const *)tags.v;
    it.ntags = tags.n;
    it.platforms = (const char *const *)plats.v;
    it.nplatforms = plats.n;
    for (int i = 0; i < c->ncols && i < c->fields.n; i++) {
        if (c->colmap[i] != -1 || !c->header.v[i][0]) continue;
        vars = hr_realloc(vars, (size_t)(nvars + 1) * sizeof *vars);
        vars[nvars].key = c->header.v[i];
        vars[nvars++].value = c->fields.v[i];
    }
    it.vars = vars;
    it.nvars = nvars;
    if (why[0]) it.error = why;
    if (c->cb(&it, c->priv, c->err) < 0) c->stop = 1;
    free(vars);
    sched_strv_release(&tags);
    sched_strv_release(&plats);
out:
    sched_strv_clear(&c->fields);
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

int sched_csv_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    FILE *f = sched_src_open(s, err);
    if (!f) return -1;
    struct csv_parser p;
    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL);
    csv_ctx c = {.src = s, .cb = cb, .priv = priv, .err = err, .between_rows = 1};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!c.stop && (n = getline(&line, &cap, f)) > 0) {
        c.line++;
        if (c.between_rows && !blank(line)) {
            c.row_line = c.line;
            c.between_rows = 0;
        }
        if (csv_parse(&p, line, (size_t)n, on_field, on_row, &c) != (size_t)n) {
            rc = hr_err_set(err, "%s:%ld: malformed CSV: %s", s->name, c.line,
                            csv_strerror(csv_error(&p)));
            break;
        }
    }
    if (!rc && !c.stop && csv_fini(&p, on_field, on_row, &c) != 0)
        rc = hr_err_set(err, "%s:%ld: malformed CSV: unterminated quoted field", s->name,
                        c.row_line);
    if (!rc && !c.stop && c.rows == 0)
        rc = hr_err_set(err, "%s:1: empty CSV: no header row", s->name);
    if (c.stop) rc = -1;
    csv_free(&p);
    free(line);
    fclose(f);
    sched_strv_release(&c.fields);
    sched_strv_release(&c.header);
    free(c.colmap);
    for (int i = 0; i < c.nzones; i++) {
        free(c.zones[i].name);
        sched_tz_free(c.zones[i].tz);
    }
    free(c.zones);
    return rc;
}
