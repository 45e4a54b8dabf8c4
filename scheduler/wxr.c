/* wxr.c: the WordPress WXR (RSS 2.0 + wp: namespaces, versions 1.0-1.2)
 * reader, on libxml2's streaming xmlTextReader so a 1 GB export needs little
 * memory: only the current <item> is ever built. Elements are told apart by
 * namespace URI, not prefix. It does not resolve attachments or postmeta. */
#include <errno.h>
#include <libxml/xmlreader.h>
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

typedef struct wxr_item {
    char *title, *link, *pubdate, *creator, *content, *excerpt, *post_id, *date_gmt, *status, *type;
    sched_strv tags;
    long line;
} wxr_item;

typedef struct wxr_ctx {
    const sched_src *src;
    /* namespace URIs are interned in the reader's dictionary: a few pointers
     * stand for all of them, so strstr runs once per URI, not per element */
    const xmlChar *ns_uri[8];
    int ns_val[8], ns_n;
    hr_err xml_err; /* the first error libxml2 reported */
    int have_xml_err;
} wxr_ctx;

static void on_xml_error(void *arg, xmlErrorPtr e)
{
    wxr_ctx *c = arg;
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
    char **f[] = {&it->title,   &it->link,    &it->pubdate,  &it->creator, &it->content,
                  &it->excerpt, &it->post_id, &it->date_gmt, &it->status,  &it->type};
    for (size_t i = 0; i < HR_ARRAY_LEN(f); i++) {
        xmlFree(*f[i]);
        *f[i] = NULL;
    }
    sched_strv_clear(&it->tags);
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

static int emit(wxr_ctx *c, wxr_item *w, sched_item_cb *cb, void *priv, hr_err *err)
{
    char idbuf[64], errbuf[240];
    sched_item it = {0};
    it.format = SCHED_FMT_WXR;
    it.file = c->src->name;
    it.line = w->line;
    char *title = title_text(w->title);
    it.title = title;
    it.link = w->link;
    it.html = w->content;
    it.excerpt = w->excerpt && *w->excerpt ? w->excerpt : NULL;
    it.author = w->creator;
    it.status = sched_status_norm(w->status);
    it.type = w->type ? w->type : "post";
    it.tags = (const char *const *)w->tags.v;
    it.ntags = w->tags.n;
    const char *pid = w->post_id;
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
    if (!it.error && w->date_gmt && *w->date_gmt && sched_parse_utc(w->date_gmt, &ms) < 0) {
        snprintf(errbuf, sizeof errbuf, "<wp:post_date_gmt> is not a date: \"%.60s\"", w->date_gmt);
        it.error = errbuf;
    }
    if (!it.error && ms == 0 && w->pubdate && parse_rfc822(w->pubdate, &ms) < 0) ms = 0;
    it.publish_ms = ms;
    if (!it.error && !strcmp(it.status, "future") && ms == 0)
        it.error = "scheduled item has no publish date";
    int rc = cb(&it, priv, err);
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

static char **field_for(wxr_item *w, int ns, const char *name)
{
    switch (ns) {
    case NS_RSS:
        if (!strcmp(name, "title")) return &w->title;
        if (!strcmp(name, "link")) return &w->link;
        if (!strcmp(name, "pubDate")) return &w->pubdate;
        return NULL;
    case NS_DC:
        return !strcmp(name, "creator") ? &w->creator : NULL;
    case NS_CONTENT:
        return !strcmp(name, "encoded") ? &w->content : NULL;
    case NS_EXCERPT:
        return !strcmp(name, "encoded") ? &w->excerpt : NULL;
    case NS_WP:
        if (!strcmp(name, "post_id")) return &w->post_id;
        if (!strcmp(name, "post_date_gmt")) return &w->date_gmt;
        if (!strcmp(name, "status")) return &w->status;
        if (!strcmp(name, "post_type")) return &w->type;
        return NULL;
    default:
        return NULL;
    }
}

/* read_item consumes one <item> (the reader is on its start tag) and returns
 * the status of the read after it, as xmlTextReaderRead does. */
static int read_item(xmlTextReaderPtr r, wxr_ctx *c, wxr_item *w, sched_item_cb *cb, void *priv,
                     int *stop, hr_err *err)
{
    item_clear(w);
    xmlNodePtr node = xmlTextReaderCurrentNode(r);
    w->line = node ? xmlGetLineNo(node) : xmlTextReaderGetParserLineNumber(r);
    int depth = xmlTextReaderDepth(r);
    if (xmlTextReaderIsEmptyElement(r)) {
        if (emit(c, w, cb, priv, err) < 0) *stop = 1;
        return xmlTextReaderRead(r);
    }
    int ret = xmlTextReaderRead(r);
    while (ret == 1) {
        int type = xmlTextReaderNodeType(r), d = xmlTextReaderDepth(r);
        if (type == XML_READER_TYPE_END_ELEMENT && d == depth) {
            if (emit(c, w, cb, priv, err) < 0) *stop = 1;
            return xmlTextReaderRead(r);
        }
        if (type == XML_READER_TYPE_ELEMENT && d == depth + 1) {
            const char *name = (const char *)xmlTextReaderConstLocalName(r);
            int ns = ns_cached(c, xmlTextReaderConstNamespaceUri(r));
            char **f = field_for(w, ns, name);
            if (f) {
                xmlFree(*f);
                *f = (char *)xmlTextReaderReadString(r);
            } else if (ns == NS_RSS && !strcmp(name, "category")) {
                xmlChar *domain = xmlTextReaderGetAttribute(r, BAD_CAST "domain");
                if (domain && !strcmp((char *)domain, "post_tag")) {
                    xmlChar *v = xmlTextReaderReadString(r);
                    if (v && *v) sched_strv_push(&w->tags, (char *)v, strlen((char *)v));
                    xmlFree(v);
                }
                xmlFree(domain);
            }
            ret = xmlTextReaderNext(r);
            continue;
        }
        ret = xmlTextReaderRead(r);
    }
    return ret;
}

int sched_wxr_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    wxr_ctx c = {.src = s};
    int opts = XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_COMPACT | XML_PARSE_BIG_LINES;
    xmlTextReaderPtr r = s->path ? xmlReaderForFile(s->path, NULL, opts)
                                 : xmlReaderForMemory(s->mem, (int)s->n, s->name, NULL, opts);
    if (!r) {
        if (s->path) return hr_err_set(err, "%s: cannot open: %s", s->name, strerror(errno));
        return hr_err_set(err, "%s: cannot read XML", s->name);
    }
    xmlTextReaderSetStructuredErrorHandler(r, on_xml_error, &c);
    wxr_item w = {0};
    int stop = 0, items = 0, saw_rss = 0;
    int ret = xmlTextReaderRead(r);
    while (ret == 1 && !stop) {
        if (xmlTextReaderNodeType(r) == XML_READER_TYPE_ELEMENT) {
            const char *name = (const char *)xmlTextReaderConstLocalName(r);
            int d = xmlTextReaderDepth(r);
            if (d == 0) saw_rss = !strcmp(name, "rss");
            if (d == 2 && !strcmp(name, "item") &&
                ns_cached(&c, xmlTextReaderConstNamespaceUri(r)) == NS_RSS) {
                items++;
                ret = read_item(r, &c, &w, cb, priv, &stop, err);
                continue;
            }
        }
        ret = xmlTextReaderRead(r);
    }
    int rc = 0;
    if (stop) {
        rc = -1;
    } else if (ret < 0) {
        if (c.have_xml_err)
            rc = hr_err_set(err, "%s", c.xml_err.msg);
        else
            hr_err_set(err, "%s:%d: malformed XML", s->name, xmlTextReaderGetParserLineNumber(r));
        rc = -1;
    } else if (!saw_rss) {
        rc = hr_err_set(err, "%s:1: not a WordPress export (no <rss> root)", s->name);
    }
    item_clear(&w);
    sched_strv_release(&w.tags);
    xmlFreeTextReader(r);
    (void)items;
    return rc;
}
