/* html.c: CMS HTML to plain text with libxml2's HTML parser: entities
 * decoded, block elements on their own lines, script/style dropped,
 * whitespace collapsed as a browser would. It keeps no markup at all. */
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static int is_block(const char *n)
{
    static const char *const blocks[] = {
        "p",      "div",    "br",     "li",      "ul",     "ol",     "h1",    "h2",
        "h3",     "h4",     "h5",     "h6",      "tr",     "table",  "blockquote",
        "pre",    "hr",     "section", "article", "header", "footer", "aside", "nav",
        "figure", "figcaption", "dd", "dt",      "dl",     "address", "main", "form",
        "fieldset", "details", "summary", NULL};
    for (int i = 0; blocks[i]; i++)
        if (strcasecmp(n, blocks[i]) == 0) return 1;
    return 0;
}

typedef struct {
    hr_buf b;
    int pending_space; /* whitespace seen since the last character */
    int newlines;      /* newlines pending before the next text */
    int pre;
} walker;

static void emit_break(walker *w, int n)
{
    if (w->b.len == 0) return; /* nothing leads with blank lines */
    if (w->newlines < n) w->newlines = n;
    w->pending_space = 0;
}

static void emit_text(walker *w, const char *t)
{
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        int sp = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f';
        if (w->pre && *p == '\n') {
            emit_break(w, 1);
            continue;
        }
        if (sp) {
            w->pending_space = 1;
            continue;
        }
        if (w->newlines && w->b.len) {
            for (int i = 0; i < w->newlines; i++) hr_buf_putc(&w->b, '\n');
        } else if (w->pending_space && w->b.len) {
            hr_buf_putc(&w->b, ' ');
        }
        w->newlines = 0;
        w->pending_space = 0;
        hr_buf_putc(&w->b, (char)*p);
    }
}

static void walk(walker *w, xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content) emit_text(w, (const char *)n->content);
            continue;
        }
        if (n->type != XML_ELEMENT_NODE) continue;
        const char *name = (const char *)n->name;
        if (strcasecmp(name, "script") == 0 || strcasecmp(name, "style") == 0 ||
            strcasecmp(name, "head") == 0 || strcasecmp(name, "template") == 0 ||
            strcasecmp(name, "noscript") == 0)
            continue;
        int block = is_block(name);
        int para = block && (strcasecmp(name, "p") == 0 || name[0] == 'h' ||
                             strcasecmp(name, "blockquote") == 0 ||
                             strcasecmp(name, "pre") == 0);
        if (strcasecmp(name, "br") == 0) {
            if (w->b.len) w->newlines++;
            w->pending_space = 0;
            continue;
        }
        if (block) emit_break(w, para ? 2 : 1);
        if (strcasecmp(name, "li") == 0) emit_text(w, "- ");
        int was_pre = w->pre;
        if (strcasecmp(name, "pre") == 0) w->pre = 1;
        walk(w, n->children);
        w->pre = was_pre;
        if (block) emit_break(w, para ? 2 : 1);
    }
}

char *plat_html_to_text(const char *html, size_t len)
{
    walker w = {0};
    hr_buf_init(&w.b);
    if (len > 0 && len < (size_t)INT32_MAX) {
        htmlDocPtr doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
                                        HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
                                            HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
        if (doc) {
            walk(&w, doc->children);
            xmlFreeDoc(doc);
        }
    }
    if (!w.b.data) hr_buf_append(&w.b, "", 0);
    return hr_buf_detach(&w.b);
}

/* html_maybe: CMS fields may or may not be HTML; plain text with neither
 * tags nor entities is returned as a copy. */
char *html_maybe(const char *s)
{
    if (!s) return NULL;
    if (!strchr(s, '<') && !strchr(s, '&')) return hr_strdup(s);
    return plat_html_to_text(s, strlen(s));
}
