/* readback.c: finding a sent post again among an account's posts by its
 * text, for platforms with no idempotency (X, LinkedIn, Threads, Facebook,
 * Mastodon after its key's hour): the whole text must match, links compared
 * modulo the platform's shortener, and the post must be no older than the
 * job; and the paging state those read-backs share. The requests are the
 * platforms' own (x.c, linkedin.c, mastodon.c), but for Graph's lists
 * (Facebook, Threads), which share one shape. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "internal.h"

/* A minute of clock difference between the host that stamped the job and
 * the platform's servers. */
#define SKEW_MS 60000

int64_t readback_since_ms(const plat_send *s)
{
    const queue_job *j = s->job;
    int64_t t = j->created_ms > j->run_at_ms ? j->created_ms : j->run_at_ms;
    return t > SKEW_MS ? t - SKEW_MS : 0;
}

/* skeleton is text in NFC with each link replaced by \x01, remote
 * mentions cut to "@user" (Mastodon shows @user@domain so), runs of
 * whitespace made one space and trimmed (platforms trim and fold them);
 * the links' [start, end) byte ranges in the NFC text go to *links. Returns
 * a new string; *nfc (new) is the NFC text the ranges index. */
static char *skeleton(const char *text, char **nfc, tx_ent **links, int *nlinks)
{
    char *t = (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
    if (!t) t = hr_strdup(text); /* not UTF-8: compared as bytes */
    size_t n = strlen(t);
    tx_ent *e = NULL;
    int ne = tx_scan(t, n, TX_SCAN_SCHEMELESS | TX_SCAN_MASTO, &e), nl = 0;
    for (int i = 0; i < ne; i++)
        if (e[i].type == TX_URL || (e[i].type == TX_MENTION && e[i].user_end < e[i].end))
            e[nl++] = e[i];
    hr_buf b;
    hr_buf_init(&b);
    int k = 0, space = 0;
    for (size_t i = 0; i < n;) {
        if (k < nl && i == e[k].start) {
            if (space && b.len) hr_buf_putc(&b, ' ');
            space = 0;
            if (e[k].type == TX_URL)
                hr_buf_putc(&b, '\x01');
            else
                hr_buf_append(&b, t + e[k].start, e[k].user_end - e[k].start);
            i = e[k++].end;
        } else if (tx_is_space_at(t, n, i)) {
            space = 1;
            int32_t cp;
            ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)t + i, (ssize_t)(n - i), &cp);
            i += l > 0 ? (size_t)l : 1;
        } else {
            if (space && b.len) hr_buf_putc(&b, ' ');
            space = 0;
            hr_buf_putc(&b, t[i++]);
        }
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    int nu = 0; /* the links only, for the caller */
    for (int i = 0; i < nl; i++)
        if (e[i].type == TX_URL) e[nu++] = e[i];
    *nfc = t;
    *links = e;
    *nlinks = nu;
    return hr_buf_detach(&b);
}

/* link_core is a link without its scheme and trailing slashes: X expands
 * "shop.example/x" to "http://shop.example/x". */
static void link_core(const char *s, size_t n, const char **out, size_t *outn)
{
    size_t scheme = n >= 8 && strncasecmp(s, "https://", 8) == 0  ? 8
                    : n >= 7 && strncasecmp(s, "http://", 7) == 0 ? 7
                                                                  : 0;
    s += scheme;
    n -= scheme;
    while (n && s[n - 1] == '/')
        n--;
    *out = s;
    *outn = n;
}

static int is_shortened(const char *s, size_t n)
{
    const char *c;
    size_t cn;
    link_core(s, n, &c, &cn);
    return cn > 5 && strncasecmp(c, "t.co/", 5) == 0;
}

int readback_text_match(const char *want, const char *got)
{
    if (!want || !got) return 0;
    char *wt, *gt;
    tx_ent *wl, *gl;
    int nw, ng;
    char *ws = skeleton(want, &wt, &wl, &nw), *gs = skeleton(got, &gt, &gl, &ng);
    int ok = *ws && strcmp(ws, gs) == 0 && nw == ng;
    for (int i = 0; ok && i < nw; i++) {
        const char *a, *b;
        size_t an, bn;
        link_core(wt + wl[i].start, wl[i].end - wl[i].start, &a, &an);
        link_core(gt + gl[i].start, gl[i].end - gl[i].start, &b, &bn);
        /* a link the platform shortened and did not expand for us cannot be
         * told apart: the rest of the text decides */
        ok = (an == bn && memcmp(a, b, an) == 0) ||
             is_shortened(gt + gl[i].start, gl[i].end - gl[i].start);
    }
    free(ws);
    free(gs);
    free(wt);
    free(gt);
    free(wl);
    free(gl);
    return ok;
}

/* created_ms reads a post's creation time at field: RFC 3339 text (Meta
 * writes "+0000" for "+00:00") or epoch ms (LinkedIn); -1 when absent. */
static int64_t created_ms(json_t *post, const char *field)
{
    json_t *v = field ? json_object_get(post, field) : NULL;
    if (json_is_integer(v)) return (int64_t)json_integer_value(v);
    const char *t = json_string_value(v);
    int64_t ms;
    if (!t) return -1;
    if (hr_parse_rfc3339(t, &ms) == 0) return ms;
    size_t n = strlen(t);
    if (n > 5 && n < 60 && (t[n - 5] == '+' || t[n - 5] == '-')) {
        char fixed[64];
        snprintf(fixed, sizeof fixed, "%.*s:%s", (int)(n - 2), t, t + n - 2);
        if (hr_parse_rfc3339(fixed, &ms) == 0) return ms;
    }
    return -1;
}

void readback_found(plat_send *s, const char *id, plat_outcome *o)
{
    /* the part was published: its container (Threads) is done with */
    free(s->container);
    s->container = NULL;
    int part = s->part;
    social_part_done(s, id, o);
    if (o->kind == PLAT_OUT_NEXT) {
        free(o->platform_id);
        o->platform_id = hr_strdup(id);
        out_set(o, PLAT_OUT_NEXT, "part %d of %d found; the next is still to send", part + 1,
                s->post.nparts);
    }
}

/* skipped: whether post id is one plat_send_readback_skip passed over */
static int skipped(const plat_send *s, const char *id)
{
    if (!s->rb_skip) return 0;
    size_t n = strlen(id);
    for (const char *p = strstr(s->rb_skip, id); p; p = strstr(p + 1, id))
        if (p[-1] == '\n' && p[n] == '\n') return 1;
    return 0;
}

static void skip_add(plat_send *s, const char *id)
{
    if (!id || !*id || skipped(s, id)) return;
    char *v = hr_asprintf("%s%s\n", s->rb_skip ? s->rb_skip : "\n", id);
    free(s->rb_skip);
    s->rb_skip = v;
}

void plat_send_readback_skip(plat_send *s, const char *id)
{
    skip_add(s, id);
    int n = s->post.nparts;
    if (n > 0 && s->part >= n && s->ids) skip_add(s, s->ids[n - 1]);
    readback_page_reset(s);
}

int readback_in_list(plat_send *s, json_t *arr, const char *want, const char *field,
                     const char *created, plat_outcome *o, const char *what)
{
    /* the part in flight: the parts before it have their ids already */
    if (!want) want = s->post.parts[s->part].text;
    out_set(o, PLAT_OUT_ABSENT, "%s: no post since the job's time has its text", what);
    int64_t since = readback_since_ms(s);
    size_t i;
    json_t *p;
    json_array_foreach(arr, i, p)
    {
        const char *got = jstr(p, field), *id = jstr(p, "id");
        if (!got || !id || skipped(s, id)) continue; /* skipped: another job's */
        int64_t at = created_ms(p, created);
        if (since > 0 && at >= 0 && at < since) continue; /* older than the job */
        char *plain = NULL;
        if (strcmp(field, "content") == 0) /* Mastodon answers HTML */
            got = plain = plat_html_to_text(got, strlen(got));
        int m = readback_text_match(want, got);
        free(plain);
        if (m) {
            readback_found(s, id, o);
            break;
        }
    }
    return (int)json_array_size(arr);
}

void readback_page_reset(plat_send *s)
{
    free(s->rb_page);
    s->rb_page = NULL;
    s->rb_pages = 0;
}

int readback_page_on(plat_send *s, plat_outcome *o, const char *next, int max_pages,
                     const char *what)
{
    if (o->kind == PLAT_OUT_ABSENT && next) {
        if (++s->rb_pages < max_pages) {
            char *n = hr_strdup(next); /* next may point into s->rb_page's answer */
            free(s->rb_page);
            s->rb_page = n;
            out_set(o, PLAT_OUT_NEXT, "%s: page %d", what, s->rb_pages + 1);
            return 1;
        }
        /* not proved absent: more posts since the job than read */
        out_set(o, PLAT_OUT_TRANSIENT, "%s: more than %d pages of posts since the job", what,
                max_pages);
    }
    readback_page_reset(s);
    return 0;
}

json_t *readback_json(plat_send *s, const plat_response *r, plat_outcome *o,
                      const char *const *msgs, const char *what)
{
    json_t *j = NULL;
    if (!classify_error(s, r, o, msgs) && !(j = body_json(r, o, what)))
        o->kind = PLAT_OUT_TRANSIENT;
    if (!j) readback_page_reset(s);
    return j;
}

/* Graph read-back pages: Graph's largest page of /feed and /threads, and
 * at most this many of them since the job's time. */
#define GRAPH_PAGE 100
#define GRAPH_READBACK_PAGES 10

void readback_graph_request(plat_send *s, plat_request *req, const char *path, const char *field,
                            const char *created)
{
    char *after = s->rb_page ? plat_urlenc(s->rb_page) : NULL;
    req_init(req, "GET",
             url_join(s->a, "%s?fields=id,%s,%s&limit=%d%s%s", path, field, created, GRAPH_PAGE,
                      after ? "&after=" : "", after ? after : ""));
    free(after);
    req_bearer(req, s->a->credential);
}

void readback_graph_response(plat_send *s, const plat_response *r, plat_outcome *o,
                             const char *field, const char *created, const char *what)
{
    if (plat_classify_http(r, send_now(s), o) || meta_error(r, o)) {
        readback_page_reset(s);
        return;
    }
    json_t *j = readback_json(s, r, o, NULL, what);
    if (!j) return;
    json_t *data = json_object_get(j, "data");
    int n = readback_in_list(s, data, NULL, field, created, o, what);
    /* Newest first: absent is proved once a page reaches back past the
     * job's time, or the list ends. Graph ends it by leaving paging.next
     * out (a page may be short, even empty, with more to come); Threads
     * may give only paging.cursors, so a page with posts and an after
     * cursor is followed too (one more request at the list's end). */
    int64_t at = n > 0 ? created_ms(json_array_get(data, (size_t)n - 1), created) : -1;
    int older = at >= 0 && at < readback_since_ms(s);
    const char *after = jstr(j, "paging.cursors.after");
    int more = !older && (jstr(j, "paging.next") || (after && n > 0));
    if (more && !after && o->kind == PLAT_OUT_ABSENT) {
        /* a next page we would only reach by its URL, which carries the
         * token: not followed, and not proved absent */
        out_set(o, PLAT_OUT_TRANSIENT, "%s: a next page without paging.cursors.after", what);
        readback_page_reset(s);
    } else {
        readback_page_on(s, o, more ? after : NULL, GRAPH_READBACK_PAGES, what);
    }
    json_decref(j);
}
