/* wxr.c: the WordPress WXR (RSS 2.0 + wp: namespaces, versions 1.0-1.2)
 * reader, on libxml2's SAX2 push parser so a 1 GB export needs little
 * memory and no tree is built: only the current <item>'s fields are kept,
 * in buffers reused from item to item. Elements are told apart by namespace
 * URI, not prefix. It does not resolve attachments or postmeta. */
#include <errno.h>
#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

enum { NS_RSS, NS_CONTENT, NS_DC, NS_EXCERPT, NS_WP, NS_OTHER };

static int ns_kind(const xmlChar *uri)
{
    const char *u = (const char *)uri;
    if (!u || !*u) return NS_RSS;
    if (strstr(u, "purl.org/rss/1.0/modules/content")) return NS_CONTENT;
    if (strstr(u, "purl.org/dc/elements")) return NS_DC;
    if (strstr(u, "wordpress.org/export/")) return strstr(u, "/excerpt/") ? NS_EXCERPT : NS_WP;
    return NS_OTHER;
}

/* the fields of an item we read; F_TAG is the post_tag category being read */
enum {
    F_TITLE,
    F_LINK,
    F_PUBDATE,
    F_CREATOR,
    F_CONTENT,
    F_EXCERPT,
    F_POST_ID,
    F_DATE_GMT,
    F_STATUS,
    F_TYPE,
    F_TAG,
    F_COUNT
};

typedef struct wxr_item {
    hr_buf f[F_COUNT];
    int set[F_COUNT]; /* 0: absent or an empty element, as the text is NULL */
    sched_strv tags;
    long line;
} wxr_item;

typedef struct wxr_ctx {
    const sched_src *src;
    xmlParserCtxtPtr px;
    sched_item_cb *cb;
    void *priv;
    hr_err *err;
    /* namespace URIs are interned in the parser's dictionary: a few pointers
     * stand for all of them, so strstr runs once per URI, not per element */
    const xmlChar *ns_uri[8];
    int ns_val[8], ns_n;
    hr_err xml_err; /* the first error libxml2 reported */
    int have_xml_err;
    int depth; /* of the next element: <rss> is at 0, <item> at 2 */
    int in_item;
    int field; /* the F_ being read (an <item>'s child), or -1 */
    int nodes; /* nodes inside it so far */
    int saw_rss, stop;
    wxr_item w;
} wxr_ctx;

static void on_xml_error(void *arg, xmlErrorPtr e)
{
    wxr_ctx *c = ((xmlParserCtxtPtr)arg)->_private;
    if (c->have_xml_err || !e || e->level < XML_ERR_ERROR) return;
    char msg[200];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "error");
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    hr_err_set(&c->xml_err, "%s:%d: malformed XML: %s", c->src->name, e->line, msg);
    c->have_xml_err = 1;
}

static void item_clear(wxr_item *it)
{
    for (int i = 0; i < F_COUNT; i++) {
        hr_buf_reset(&it->f[i]);
        it->set[i] = 0;
    }
    sched_strv_clear(&it->tags);
}

static const char *field(const wxr_item *it, int f)
{
    return !it->set[f] ? NULL : it->f[f].data ? it->f[f].data : "";
}
/* RSS pubDate: "Wed, 30 Nov 2011 21:18:19 +0000"; WordPress writes
 * "-0001" years for undated drafts, which we treat as unknown. */
static int parse_rfc822(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S %z", &tm);
    if (!end || *end || tm.tm_year < 70) return -1;
    long off = tm.tm_gmtoff;
    *ms = ((int64_t)timegm(&tm) - off) * 1000;
    return 0;
}

static char *title_text(const char *t)
{
    if (!t) return NULL;
    return strpbrk(t, "<&") ? sched_html_to_text(t) : hr_strdup(t);
}

static int emit(wxr_ctx *c, wxr_item *w)
{
    char idbuf[64], errbuf[240];
    sched_item it = {0};
    it.format = SCHED_FMT_WXR;
    it.file = c->src->name;
    it.line = w->line;
    char *title = title_text(field(w, F_TITLE));
    const char *excerpt = field(w, F_EXCERPT), *type = field(w, F_TYPE);
    const char *date_gmt = field(w, F_DATE_GMT), *pubdate = field(w, F_PUBDATE);
    it.title = title;
    it.link = field(w, F_LINK);
    it.html = field(w, F_CONTENT);
    it.excerpt = excerpt && *excerpt ? excerpt : NULL;
    it.author = field(w, F_CREATOR);
    it.status = sched_status_norm(field(w, F_STATUS));
    it.type = type ? type : "post";
    it.tags = (const char *const *)w->tags.v;
    it.ntags = w->tags.n;
    const char *pid = field(w, F_POST_ID);
    while (pid && (*pid == ' ' || *pid == '\n'))
        pid++;
    if (!pid || !*pid || strlen(pid) > 40) {
        it.id = "wxr:?";
        it.error = "item has no <wp:post_id>";
    } else {
        snprintf(idbuf, sizeof idbuf, "wxr:%s", pid);
        it.id = idbuf;
    }
    int64_t ms = 0;
    if (!it.error && date_gmt && *date_gmt && sched_parse_utc(date_gmt, &ms) < 0) {
        snprintf(errbuf, sizeof errbuf, "<wp:post_date_gmt> is not a date: \"%.60s\"", date_gmt);
        it.error = errbuf;
    }
    if (!it.error && ms == 0 && pubdate && parse_rfc822(pubdate, &ms) < 0) ms = 0;
    it.publish_ms = ms;
    if (!it.error && !strcmp(it.status, "future") && ms == 0)
        it.error = "scheduled item has no publish date";
    int rc = c->cb(&it, c->priv, c->err);
    free(title);
    return rc;
}

static int ns_cached(wxr_ctx *c, const xmlChar *uri)
{
    for (int i = 0; i < c->ns_n; i++)
        if (c->ns_uri[i] == uri) return c->ns_val[i];
    int k = ns_kind(uri);
    if (c->ns_n < 8) {
        c->ns_uri[c->ns_n] = uri;
        c->ns_val[c->ns_n++] = k;
    }
    return k;
}

static int field_for(int ns, const char *name)
{
    switch (ns) {
    case NS_RSS:
        if (!strcmp(name, "title")) return F_TITLE;
        if (!strcmp(name, "link")) return F_LINK;
        if (!strcmp(name, "pubDate")) return F_PUBDATE;
        return -1;
    case NS_DC:
        return !strcmp(name, "creator") ? F_CREATOR : -1;
    case NS_CONTENT:
        return !strcmp(name, "encoded") ? F_CONTENT : -1;
    case NS_EXCERPT:
        return !strcmp(name, "encoded") ? F_EXCERPT : -1;
    case NS_WP:
        if (!strcmp(name, "post_id")) return F_POST_ID;
        if (!strcmp(name, "post_date_gmt")) return F_DATE_GMT;
        if (!strcmp(name, "status")) return F_STATUS;
        if (!strcmp(name, "post_type")) return F_TYPE;
        return -1;
    default:
        return -1;
    }
}

/* is_post_tag: a <category domain="post_tag"> (SAX2 attributes come as
 * localname, prefix, URI, value, end) */
static int is_post_tag(int nattrs, const xmlChar **attrs)
{
    for (int i = 0; i < nattrs; i++, attrs += 5) {
        if (attrs[1] || strcmp((const char *)attrs[0], "domain") != 0) continue;
        size_t n = (size_t)(attrs[4] - attrs[3]);
        return n == 8 && !memcmp(attrs[3], "post_tag", 8);
    }
    return 0;
}

static void on_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
                     int nns, const xmlChar **nss, int nattrs, int ndefaulted,
                     const xmlChar **attrs)
{
    (void)prefix, (void)nns, (void)nss, (void)ndefaulted;
    wxr_ctx *c = ((xmlParserCtxtPtr)ctx)->_private;
    int d = c->depth++;
    const char *name = (const char *)local;
    if (c->field >= 0) {
        c->nodes++;
    } else if (d == 0) {
        c->saw_rss = !strcmp(name, "rss");
    } else if (d == 2 && !strcmp(name, "item") && ns_cached(c, uri) == NS_RSS) {
        item_clear(&c->w);
        c->w.line = xmlSAX2GetLineNumber(ctx);
        c->in_item = 1;
    } else if (d == 3 && c->in_item) {
        int ns = ns_cached(c, uri);
        c->field = field_for(ns, name);
        if (c->field < 0 && ns == NS_RSS && !strcmp(name, "category") && is_post_tag(nattrs, attrs))
            c->field = F_TAG;
        if (c->field >= 0) hr_buf_reset(&c->w.f[c->field]);
        c->nodes = 0;
    }
}

static void on_end(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
    (void)local, (void)prefix, (void)uri;
    xmlParserCtxtPtr px = ctx;
    wxr_ctx *c = px->_private;
    int d = --c->depth;
    if (d == 3 && c->field >= 0) {
        wxr_item *w = &c->w;
        if (c->field == F_TAG) {
            if (w->f[F_TAG].len) sched_strv_push(&w->tags, w->f[F_TAG].data, w->f[F_TAG].len);
        } else {
            w->set[c->field] = c->nodes > 0; /* the last one wins */
        }
        c->field = -1;
    } else if (d == 2 && c->in_item) {
        c->in_item = 0;
        if (emit(c, &c->w) < 0) {
            c->stop = 1;
            xmlStopParser(px);
        }
    }
}

static void on_text(void *ctx, const xmlChar *s, int len)
{
    wxr_ctx *c = ((xmlParserCtxtPtr)ctx)->_private;
    if (c->field < 0 || len == 0) return; /* an empty CDATA makes no node */
    c->nodes++;
    hr_buf_append(&c->w.f[c->field], s, (size_t)len);
}

static void on_comment(void *ctx, const xmlChar *s)
{
    (void)s;
    wxr_ctx *c = ((xmlParserCtxtPtr)ctx)->_private;
    if (c->field >= 0) c->nodes++;
}

int sched_wxr_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    FILE *f = NULL;
    if (s->path) {
        f = fopen(s->path, "rb");
        if (!f) return hr_err_set(err, "%s: cannot open: %s", s->name, strerror(errno));
    }
    wxr_ctx c = {.src = s, .cb = cb, .priv = priv, .err = err, .field = -1};
    xmlSAXHandler sax;
    xmlSAXVersion(&sax, 2); /* the SAX2 defaults keep the DTD's entities */
    sax.startElementNs = on_start;
    sax.endElementNs = on_end;
    sax.characters = on_text;
    sax.ignorableWhitespace = on_text;
    sax.cdataBlock = on_text;
    sax.comment = on_comment;
    sax.processingInstruction = NULL;
    sax.serror = on_xml_error;
    xmlParserCtxtPtr px = xmlCreatePushParserCtxt(&sax, NULL, NULL, 0, s->name);
    if (!px) {
        if (f) fclose(f);
        return hr_err_set(err, "%s: cannot read XML", s->name);
    }
    px->_private = &c;
    c.px = px;
    xmlCtxtUseOptions(px, XML_PARSE_NONET | XML_PARSE_BIG_LINES);
    enum { CHUNK = 64 * 1024 };
    char *buf = f ? hr_malloc(CHUNK) : NULL;
    size_t off = 0;
    int rc = 0;
    for (;;) {
        const char *p;
        size_t n;
        if (f) {
            n = fread(buf, 1, CHUNK, f);
            p = buf;
        } else {
            n = s->n - off < CHUNK ? s->n - off : CHUNK;
            p = (const char *)s->mem + off;
            off += n;
        }
        int last = n == 0;
        /* its return value also counts errors it recovers from (namespaces) */
        xmlParseChunk(px, p, (int)n, last);
        if (!px->wellFormed || c.stop || last) break;
    }
    if (c.stop) {
        rc = -1;
    } else if (!px->wellFormed) {
        if (c.have_xml_err)
            hr_err_set(err, "%s", c.xml_err.msg);
        else
            hr_err_set(err, "%s:%d: malformed XML", s->name, xmlSAX2GetLineNumber(px));
        rc = -1;
    } else if (!c.saw_rss) {
        rc = hr_err_set(err, "%s:1: not a WordPress export (no <rss> root)", s->name);
    } else if (f && ferror(f)) {
        rc = hr_err_set(err, "%s: cannot read: %s", s->name, strerror(errno));
    }
    for (int i = 0; i < F_COUNT; i++)
        hr_buf_release(&c.w.f[i]);
    sched_strv_release(&c.w.tags);
    if (px->myDoc) xmlFreeDoc(px->myDoc);
    xmlFreeParserCtxt(px);
    free(buf);
    if (f) fclose(f);
    return rc;
}
