/* item.c: format detection, the reader dispatch, HTML to text through
 * libxml2's HTML parser, and the small string helpers the readers share.
 * It does not parse any export format itself. */
#include <ctype.h>
#include <errno.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <utf8proc.h>

#include "internal.h"

#ifdef HAVE_HERALD_PLATFORMS
#include "platforms.h"
#endif

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

FILE *sched_src_open(const sched_src *s, hr_err *err)
{
    FILE *f = s->path ? fopen(s->path, "rb") : fmemopen((void *)s->mem, s->n ? s->n : 1, "rb");
    if (!f) hr_err_set(err, "%s: cannot open: %s", s->name, strerror(errno));
    if (f && !s->path && s->n == 0) {
        /* fmemopen refuses size 0: read one byte past and drop it. */
        fseek(f, 1, SEEK_SET);
    }
    return f;
}

sched_format sched_format_parse(const char *name)
{
    if (!name) return SCHED_FMT_AUTO;
    if (!strcasecmp(name, "wxr") || !strcasecmp(name, "wordpress")) return SCHED_FMT_WXR;
    if (!strcasecmp(name, "ghost")) return SCHED_FMT_GHOST;
    if (!strcasecmp(name, "csv")) return SCHED_FMT_CSV;
    if (!strcasecmp(name, "ndjson") || !strcasecmp(name, "jsonl")) return SCHED_FMT_NDJSON;
    return SCHED_FMT_AUTO;
}

const char *sched_format_name(sched_format f)
{
    switch (f) {
    case SCHED_FMT_WXR:
        return "wxr";
    case SCHED_FMT_GHOST:
        return "ghost";
    case SCHED_FMT_CSV:
        return "csv";
    case SCHED_FMT_NDJSON:
        return "ndjson";
    default:
        return "auto";
    }
}

/* A Ghost export is one JSON document ({"db":[...]} or {"meta":..,"data":..});
 * NDJSON has one complete object per line. So: '<' is XML; '{' whose first
 * key is a Ghost wrapper's is Ghost; another '{' is NDJSON when its object
 * closes on its first line, however long that line is, and Ghost when the
 * line ends first (a document over several lines); anything else is a CSV
 * whose header row we recognise later. */
sched_format sched_detect(const char *head, size_t n, int whole)
{
    size_t i = sched_bom_len(head, n);
    while (i < n && isspace((unsigned char)head[i]))
        i++;
    if (i >= n) return SCHED_FMT_AUTO;
    if (head[i] == '<') return SCHED_FMT_WXR;
    if (head[i] != '{') return SCHED_FMT_CSV;
    /* a wrapper's first key gives Ghost away even on one line */
    static const char *const wrapper_keys[] = {"\"db\"", "\"meta\"", "\"data\""};
    size_t k = i + 1;
    while (k < n && isspace((unsigned char)head[k]))
        k++;
    for (size_t w = 0; w < HR_ARRAY_LEN(wrapper_keys); w++) {
        size_t len = strlen(wrapper_keys[w]);
        if (n - k >= len && !memcmp(head + k, wrapper_keys[w], len)) return SCHED_FMT_GHOST;
        if (n - k < len && !whole && !memcmp(head + k, wrapper_keys[w], n - k))
            return SCHED_FMT_AUTO; /* cut short inside what may be one */
    }
    int depth = 0, in_str = 0;
    for (k = i; k < n; k++) {
        char c = head[k];
        if (c == '\n') return SCHED_FMT_GHOST; /* the object goes on past its line */
        if (in_str) {
            if (c == '\\')
                k++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return SCHED_FMT_NDJSON;
        }
    }
    /* a file that ends inside its first object is a broken document: the
     * Ghost reader says where */
    return whole ? SCHED_FMT_GHOST : SCHED_FMT_AUTO;
}

/* detect_file reads the start of a file until sched_detect can tell: the
 * first 4 KB mostly, the whole first line when that is one long object
 * (the NDJSON reader holds such a line whole anyway). Each read doubles
 * what was read, so the scans add up to twice the line at most. */
static int detect_file(const sched_src *s, sched_format *fmt, hr_err *err)
{
    FILE *f = sched_src_open(s, err);
    if (!f) return -1;
    hr_buf head;
    hr_buf_init(&head);
    int whole = 0, rc = 0;
    while (*fmt == SCHED_FMT_AUTO && !whole) {
        size_t want = head.len < 4096 ? 4096 : head.len;
        hr_buf_reserve(&head, want);
        size_t got = fread(head.data + head.len, 1, want, f);
        head.len += got;
        whole = got < want;
        *fmt = sched_detect(head.data, head.len, whole);
    }
    if (ferror(f)) rc = hr_err_set(err, "%s: cannot read: %s", s->name, strerror(errno));
    fclose(f);
    hr_buf_release(&head);
    return rc;
}

static int read_src(const sched_src *s, sched_format fmt, sched_item_cb *cb, void *priv,
                    hr_err *err)
{
    if (fmt == SCHED_FMT_AUTO) {
        /* a buffer is whole already: the same answer as its file would get */
        if (!s->path)
            fmt = sched_detect(s->mem, s->n, 1);
        else if (detect_file(s, &fmt, err) < 0)
            return -1;
        if (fmt == SCHED_FMT_AUTO)
            return hr_err_set(err, "%s: cannot tell the format (empty file?); use --format",
                              s->name);
    }
    switch (fmt) {
    case SCHED_FMT_WXR:
        return sched_wxr_read(s, cb, priv, err);
    case SCHED_FMT_GHOST:
        return sched_ghost_read(s, cb, priv, err);
    case SCHED_FMT_CSV:
        return sched_csv_read(s, cb, priv, err);
    case SCHED_FMT_NDJSON:
        return sched_ndjson_read(s, cb, priv, err);
    default:
        return hr_err_set(err, "%s: unknown format", s->name);
    }
}

int sched_read(const char *path, sched_format fmt, sched_item_cb *cb, void *priv, hr_err *err)
{
    sched_src s = {.path = path, .name = base_name(path)};
    return read_src(&s, fmt, cb, priv, err);
}

int sched_read_mem(const void *data, size_t n, const char *name, sched_format fmt,
                   sched_item_cb *cb, void *priv, hr_err *err)
{
    sched_src s = {.mem = data, .n = n, .name = name ? name : "(memory)"};
    return read_src(&s, fmt, cb, priv, err);
}

/* ---- HTML to text */

static int is_block(const char *name)
{
    static const char *const blocks[] = {
        "p",  "div",     "br",      "li",         "ul",     "ol",    "h1", "h2",     "h3",
        "h4", "h5",      "h6",      "blockquote", "pre",    "table", "tr", "figure", "figcaption",
        "hr", "section", "article", "header",     "footer", "dl",    "dt", "dd"};
    for (size_t i = 0; i < HR_ARRAY_LEN(blocks); i++)
        if (!strcasecmp(name, blocks[i])) return 1;
    return 0;
}

static void text_walk(xmlNode *n, hr_buf *out, int *space)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            for (const unsigned char *p = n->content; p && *p; p++) {
                if (isspace(*p)) {
                    *space = *space ? *space : 1;
                } else {
                    if (*space == 2 && out->len)
                        hr_buf_putc(out, '\n');
                    else if (*space == 1 && out->len && out->data[out->len - 1] != '\n')
                        hr_buf_putc(out, ' ');
                    *space = 0;
                    hr_buf_putc(out, (char)*p);
                }
            }
        } else if (n->type == XML_ELEMENT_NODE) {
            const char *name = (const char *)n->name;
            if (!strcasecmp(name, "script") || !strcasecmp(name, "style")) continue;
            int block = is_block(name);
            if (block) *space = 2;
            text_walk(n->children, out, space);
            if (block) *space = 2;
        }
    }
}

static void silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

char *sched_html_to_text(const char *html)
{
#ifdef HAVE_HERALD_PLATFORMS
    /* one HTML-to-text for the whole of herald when platforms is built */
    if (html && strpbrk(html, "<&")) return plat_html_to_text(html, strlen(html));
#endif
    hr_buf out;
    hr_buf_init(&out);
    hr_buf_append(&out, "", 0);
    if (!html || !*html) return hr_buf_detach(&out);
    /* Plain text (a CSV cell, Ghost plaintext) needs no parser. */
    if (!strpbrk(html, "<&")) {
        int space = 0;
        for (const unsigned char *p = (const unsigned char *)html; *p; p++) {
            if (isspace(*p)) {
                space = 1;
            } else {
                if (space && out.len) hr_buf_putc(&out, ' ');
                space = 0;
                hr_buf_putc(&out, (char)*p);
            }
        }
        return hr_buf_detach(&out);
    }
    xmlSetGenericErrorFunc(NULL, silent);
    htmlDocPtr doc = htmlReadMemory(html, (int)strlen(html), NULL, "UTF-8",
                                    HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                        HTML_PARSE_NOBLANKS | HTML_PARSE_NOIMPLIED);
    if (doc) {
        int space = 0;
        text_walk(doc->children, &out, &space);
        xmlFreeDoc(doc);
    }
    return hr_buf_detach(&out);
}

/* ---- strings */

void sched_strv_push(sched_strv *s, const char *str, size_t len)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = hr_realloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = hr_strndup(str, len);
}

void sched_strv_clear(sched_strv *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

void sched_strv_release(sched_strv *s)
{
    sched_strv_clear(s);
    free(s->v);
    s->v = NULL;
    s->cap = 0;
}

void sched_split(const char *s, const char *seps, sched_strv *out)
{
    if (!s) return;
    while (*s) {
        size_t n = strcspn(s, seps);
        const char *a = s, *b = s + n;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) sched_strv_push(out, a, (size_t)(b - a));
        s += n;
        if (*s) s++;
    }
}

int sched_parse_wall(const char *s, int *Y, int *M, int *D, int *sec_of_day)
{
    int h = 0, m = 0, sec = 0, used = 0;
    /* WordPress' "YYYY-MM-DD HH:MM:SS" read digit by digit (sscanf costs
     * more than the rest of an item's dates); anything else by sscanf */
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    int fast = 1;
    for (int i = 0; fast && shape[i]; i++)
        fast = shape[i] == 'd' ? isdigit((unsigned char)s[i]) : s[i] == shape[i];
    if (fast && !s[sizeof shape - 1]) {
#define NUM2(i) ((s[i] - '0') * 10 + (s[(i) + 1] - '0'))
        *Y = NUM2(0) * 100 + NUM2(2), *M = NUM2(5), *D = NUM2(8);
        h = NUM2(11), m = NUM2(14), sec = NUM2(17);
#undef NUM2
        if (*M < 1 || *M > 12 || *D < 1 || *D > 31 || h > 23 || m > 59 || sec > 59) return -1;
        *sec_of_day = h * 3600 + m * 60 + sec;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2d%n", Y, M, D, &used) != 3) return -1;
    const char *p = s + used;
    if (*p == ' ' || *p == 'T') {
        int u2 = 0;
        if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &m, &sec, &u2) != 3 &&
            sscanf(p + 1, "%2d:%2d%n", &h, &m, &u2) != 2)
            return -1;
        p += 1 + u2;
        if (*p == '.') {
            p++;
            while (isdigit((unsigned char)*p))
                p++;
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p || *M < 1 || *M > 12 || *D < 1 || *D > 31 || h > 23 || m > 59 || sec > 59) return -1;
    *sec_of_day = h * 3600 + m * 60 + sec;
    return 0;
}

int sched_parse_utc(const char *s, int64_t *ms)
{
    if (!s) return -1;
    while (isspace((unsigned char)*s))
        s++;
    if (!strncmp(s, "0000-00-00", 10)) {
        *ms = 0;
        return 0;
    }
    if (hr_parse_rfc3339(s, ms) == 0) return 0;
    int Y, M, D, sec;
    if (sched_parse_wall(s, &Y, &M, &D, &sec) < 0) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    *ms = ((int64_t)timegm(&tm) + sec) * 1000;
    return 0;
}

const char *sched_item_where(const sched_item *it, char *buf, size_t n)
{
    if (it->format == SCHED_FMT_GHOST)
        snprintf(buf, n, "%s: posts[%ld]", it->file, it->line);
    else
        snprintf(buf, n, "%s:%ld", it->file, it->line);
    return buf;
}

size_t sched_bom_len(const char *s, size_t n)
{
    return n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0;
}

int sched_utf8_valid(const char *s)
{
    if (!s) return 1;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    while (*p) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, -1, &cp);
        if (n <= 0) return 0;
        p += n;
    }
    return 1;
}

const char *sched_status_norm(const char *s)
{
    if (!s || !*s) return "publish";
    if (!strcasecmp(s, "published") || !strcasecmp(s, "publish")) return "publish";
    if (!strcasecmp(s, "scheduled") || !strcasecmp(s, "future")) return "future";
    if (!strcasecmp(s, "draft")) return "draft";
    if (!strcasecmp(s, "private")) return "private";
    if (!strcasecmp(s, "pending")) return "pending";
    if (!strcasecmp(s, "trash")) return "trash";
    return s;
}

uint64_t sched_hash64(uint64_t h, const char *s)
{
    if (!s) s = "\x01"; /* NULL and "" hash differently */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= 0xff; /* field separator */
    h *= 0x100000001b3ULL;
    return h;
}
