/* compose.c: from a job to the text a platform gets: templates over the CMS
 * item, UTM links, hashtags, fitting to the limit on grapheme and word
 * boundaries, numbered threads, and emails (variables, unsubscribe URL,
 * Message-ID, plain-text alternative). No requests are built here. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "internal.h"

#define ELLIPSIS "\xE2\x80\xA6" /* U+2026 */
#define EMAIL_SUBJECT_MAX 200
#define EMAIL_PREHEADER_MAX 250
#define DEFAULT_TEMPLATE "{{title}}\n\n{{excerpt}}\n\n{{link}}\n\n{{hashtags}}"

long count_for(const plat_account *a, const char *text) { return a->ops->count(a, text); }

/* fits: within the account's limit, and Bluesky's byte cap */
static int fits(const plat_account *a, const char *text)
{
    long n = count_for(a, text);
    if (n < 0 || n > a->limit) return 0;
    if (strcmp(a->platform, "bluesky") == 0 && strlen(text) > 3000) return 0;
    return 1;
}

/* ------------------------------------------------------------- links */

char *plat_add_utm(const char *link, const char *source, const char *medium,
                   const char *campaign)
{
    if (!link) return NULL;
    if (strncasecmp(link, "http://", 7) != 0 && strncasecmp(link, "https://", 8) != 0)
        return hr_strdup(link);
    CURLU *u = curl_url();
    if (curl_url_set(u, CURLUPART_URL, link, 0) != CURLUE_OK) {
        curl_url_cleanup(u);
        return hr_strdup(link);
    }
    char *q = NULL;
    int has = 0;
    if (curl_url_get(u, CURLUPART_QUERY, &q, 0) == CURLUE_OK && q) {
        /* a link already tagged keeps its own campaign */
        has = strncmp(q, "utm_", 4) == 0 || strstr(q, "&utm_") != NULL;
        curl_free(q);
    }
    if (!has) {
        const char *kv[][2] = {{"utm_source", source}, {"utm_medium", medium},
                               {"utm_campaign", campaign}};
        for (size_t i = 0; i < HR_ARRAY_LEN(kv); i++) {
            if (!kv[i][1] || !*kv[i][1]) continue;
            char *p = hr_asprintf("%s=%s", kv[i][0], kv[i][1]);
            curl_url_set(u, CURLUPART_QUERY, p, CURLU_APPENDQUERY | CURLU_URLENCODE);
            free(p);
        }
    }
    char *out = NULL;
    char *res;
    if (curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK && out) {
        res = hr_strdup(out);
        curl_free(out);
    } else {
        res = hr_strdup(link);
    }
    curl_url_cleanup(u);
    return res;
}

/* the job's link as posted: with UTM parameters for this platform */
static char *job_link(const plat_account *a, const queue_job *j)
{
    if (!j->link || !*j->link) return NULL;
    const char *medium = plat_account_opt(a, "utm-medium", a->ops->email ? "email" : "social");
    if (strcmp(plat_account_opt(a, "utm", "on"), "off") == 0) return hr_strdup(j->link);
    return plat_add_utm(j->link, a->platform, medium, j->campaign);
}

/* Bluesky shows long links shortened as its app does: the host, then the
 * path (with query and fragment) cut to 13 characters and "..." when it is
 * longer than 15. The facet keeps the full URI. */
char *bsky_short_link(const char *url);
char *bsky_short_link(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t host = strcspn(p, "/?#");
    const char *path = p + host;
    if (strcmp(path, "/") == 0) path = "";
    size_t n = strlen(path), cps = 0, cut = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)path[i] & 0xC0) != 0x80) {
            if (cps == 13) cut = i;
            cps++;
        }
    if (cps <= 15) return hr_asprintf("%.*s%s", (int)host, p, path);
    return hr_asprintf("%.*s%.*s...", (int)host, p, (int)cut, path);
}

/* link_in_text returns j->text with every link equal to j->link replaced
 * by the posted form of the link (new string), or NULL when there is none. */
static char *link_in_text(const plat_account *a, const queue_job *j)
{
    if (!j->link || !*j->link || !tx_valid_utf8(j->text, strlen(j->text))) return NULL;
    char *link = job_link(a, j);
    char *shown = strcmp(a->platform, "bluesky") == 0 ? bsky_short_link(link) : NULL;
    const char *with = shown ? shown : link;
    if (strcmp(with, j->link) == 0) {
        free(link);
        free(shown);
        return NULL;
    }
    size_t n = strlen(j->text), ll = strlen(j->link);
    tx_ent *e;
    int ne = tx_scan(j->text, n, a->ops->scan_flags, &e);
    hr_buf b;
    hr_buf_init(&b);
    size_t at = 0;
    int hits = 0;
    for (int i = 0; i < ne; i++) {
        if (e[i].type != TX_URL || e[i].end - e[i].start != ll ||
            memcmp(j->text + e[i].start, j->link, ll) != 0)
            continue;
        hr_buf_append(&b, j->text + at, e[i].start - at);
        hr_buf_puts(&b, with);
        at = e[i].end;
        hits++;
    }
    hr_buf_puts(&b, j->text + at);
    free(e);
    free(link);
    free(shown);
    if (!hits) {
        hr_buf_release(&b);
        return NULL;
    }
    return hr_buf_detach(&b);
}

/* ---------------------------------------------------------- hashtags */

/* Unicode-aware title-casing of one word's first letter. */
static void put_word(hr_buf *b, const char *w, size_t n, int capitalize)
{
    size_t i = 0;
    int first = 1;
    while (i < n) {
        int32_t cp;
        ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)w + i, (ssize_t)(n - i), &cp);
        if (k <= 0) return;
        if (first && capitalize) cp = utf8proc_toupper(cp);
        first = 0;
        utf8proc_uint8_t enc[4];
        ssize_t el = utf8proc_encode_char(cp, enc);
        hr_buf_append(b, enc, (size_t)el);
        i += (size_t)k;
    }
}

static int tag_cp_ok(const char *platform, int32_t cp)
{
    if (cp == '_') return strcmp(platform, "threads") != 0;
    if (cp < 0x80) return isalnum(cp) != 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ND:
        return 1;
    default:
        return 0;
    }
}

char *plat_hashtag(const char *platform, const char *tag)
{
    if (!tag) return NULL;
    size_t n = strlen(tag);
    if (!tx_valid_utf8(tag, n)) return NULL;
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_putc(&b, '#');
    /* split on anything not allowed; words after the first are capitalized,
     * the first keeps its case unless the tag has several words */
    const char *words[64];
    size_t lens[64];
    int nw = 0;
    size_t i = 0, ws = 0;
    int in_word = 0;
    while (i <= n) {
        int32_t cp = 0;
        ssize_t k = 1;
        if (i < n) {
            k = utf8proc_iterate((const utf8proc_uint8_t *)tag + i, (ssize_t)(n - i), &cp);
            if (k <= 0) break;
        }
        int ok = i < n && tag_cp_ok(platform, cp);
        if (ok && !in_word) ws = i, in_word = 1;
        if (!ok && in_word) {
            if (nw < 64) words[nw] = tag + ws, lens[nw] = i - ws, nw++;
            in_word = 0;
        }
        i += (size_t)k;
    }
    for (int w = 0; w < nw; w++) put_word(&b, words[w], lens[w], nw > 1);
    int digits_only = 1;
    for (size_t k = 1; k < b.len; k++)
        if (!isdigit((unsigned char)b.data[k])) digits_only = 0;
    if (b.len <= 1 || digits_only) {
        hr_buf_release(&b);
        return NULL;
    }
    /* Bluesky tags are at most 64 graphemes; X and others ~100 chars */
    long max = strcmp(platform, "bluesky") == 0 ? 64 : 100;
    if (tx_graphemes_n(b.data + 1, b.len - 1) > max) {
        hr_buf_release(&b);
        return NULL;
    }
    return hr_buf_detach(&b);
}

static int casecmp_utf8(const char *a, const char *b)
{
    utf8proc_uint8_t *fa = NULL, *fb = NULL;
    utf8proc_map((const utf8proc_uint8_t *)a, 0, &fa, UTF8PROC_NULLTERM | UTF8PROC_CASEFOLD);
    utf8proc_map((const utf8proc_uint8_t *)b, 0, &fb, UTF8PROC_NULLTERM | UTF8PROC_CASEFOLD);
    int r = (fa && fb) ? strcmp((char *)fa, (char *)fb) : strcmp(a, b);
    free(fa);
    free(fb);
    return r;
}

/* hashtags for a job: converted, duplicates (case-insensitive) removed,
 * at most max, also skipping tags already written in text. */
static int job_hashtags(const plat_account *a, const queue_job *j, char ***out)
{
    char **v = hr_calloc((size_t)j->ntags + 1, sizeof *v);
    int n = 0;
    for (int i = 0; i < j->ntags && n < a->max_hashtags; i++) {
        char *h = plat_hashtag(a->platform, j->tags[i]);
        if (!h) continue;
        int dup = 0;
        for (int k = 0; k < n && !dup; k++) dup = casecmp_utf8(v[k], h) == 0;
        if (dup) {
            free(h);
            continue;
        }
        v[n++] = h;
    }
    *out = v;
    return n;
}

/* ---------------------------------------------------------- templates */

typedef const char *(*var_fn)(void *cx, const char *name);

/* render replaces {{name}} and {{name|default}}; html escapes values. */
static char *render(const char *tpl, var_fn get, void *cx, int html)
{
    hr_buf b;
    hr_buf_init(&b);
    const char *p = tpl;
    while (*p) {
        const char *o = strstr(p, "{{");
        if (!o) {
            hr_buf_puts(&b, p);
            break;
        }
        const char *c = strstr(o + 2, "}}");
        if (!c) {
            hr_buf_puts(&b, p);
            break;
        }
        hr_buf_append(&b, p, (size_t)(o - p));
        char name[128];
        size_t nl = (size_t)(c - o - 2);
        if (nl >= sizeof name) nl = sizeof name - 1;
        memcpy(name, o + 2, nl);
        name[nl] = '\0';
        char *def = strchr(name, '|');
        if (def) *def++ = '\0';
        /* trim spaces: {{ first_name | there }} */
        char *nm = name;
        while (*nm == ' ') nm++;
        for (char *e = nm + strlen(nm); e > nm && e[-1] == ' ';) *--e = '\0';
        if (def) {
            while (*def == ' ') def++;
            for (char *e = def + strlen(def); e > def && e[-1] == ' ';) *--e = '\0';
        }
        const char *v = get(cx, nm);
        if (!v || !*v) v = def ? def : "";
        if (html) hr_buf_html_escape(&b, v);
        else hr_buf_puts(&b, v);
        p = c + 2;
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

/* tidy: trim each line's trailing spaces, at most one blank line in a row,
 * no leading/trailing blank lines (empty template fields leave gaps). */
static char *tidy(const char *s)
{
    hr_buf b;
    hr_buf_init(&b);
    int nl = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        size_t l = len;
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t' || p[l - 1] == '\r')) l--;
        size_t st = 0;
        /* an empty field at the start of the template leaves no leading space */
        while (b.len == 0 && st < l && (p[st] == ' ' || p[st] == '\t')) st++;
        if (l == st) {
            nl++;
        } else {
            if (b.len) hr_buf_append(&b, "\n\n", nl >= 2 ? 2 : 1);
            hr_buf_append(&b, p + st, l - st);
            nl = 1;
        }
        if (!e) break;
        p = e + 1;
        if (b.len == 0) nl = 0;
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

typedef struct post_vars {
    const char *title, *excerpt, *link, *hashtags;
    const queue_job *j;
} post_vars;

static const char *post_var(void *cx, const char *name)
{
    post_vars *v = cx;
    if (strcmp(name, "title") == 0) return v->title;
    if (strcmp(name, "excerpt") == 0) return v->excerpt;
    if (strcmp(name, "link") == 0) return v->link;
    if (strcmp(name, "hashtags") == 0) return v->hashtags;
    if (strcmp(name, "campaign") == 0) return v->j->campaign;
    const char *m = queue_job_get_var(v->j, name);
    return m ? m : queue_job_get_meta(v->j, name);
}

/* ------------------------------------------------------------ fitting */

/* cut_at returns s[0:p] with trailing spaces/punctuation removed and an
 * ellipsis (new string); "" when p is 0. */
static char *cut_at(const char *s, size_t p)
{
    while (p > 0 && (isspace((unsigned char)s[p - 1]) || strchr(",;:-(", s[p - 1]))) p--;
    if (p == 0) return hr_strdup("");
    char *r = hr_malloc(p + sizeof ELLIPSIS);
    memcpy(r, s, p);
    memcpy(r + p, ELLIPSIS, sizeof ELLIPSIS);
    return r;
}

/* candidate cut points of s: word ends (before whitespace), or, when
 * words is 0, every grapheme boundary; never inside a link or mention. */
static size_t *cut_points(const char *s, int words, int scan_flags, int *np)
{
    size_t n = strlen(s);
    size_t *b;
    long nb = tx_bounds(s, n, &b);
    tx_ent *e;
    int ne = tx_scan(s, n, scan_flags, &e);
    size_t *v = hr_malloc(((size_t)(nb < 0 ? 0 : nb) + 1) * sizeof *v);
    int cnt = 0, k = 0;
    for (long g = 1; g < nb; g++) {
        size_t p = b[g];
        /* entities are sorted and disjoint: walk them along with p */
        while (k < ne && e[k].end <= p) k++;
        if (k < ne && e[k].type != TX_TAG && p > e[k].start) continue;
        if (words && !(tx_is_space_at(s, n, p) && !tx_is_space_at(s, n, b[g - 1]))) continue;
        v[cnt++] = p;
    }
    free(b);
    free(e);
    *np = cnt;
    return v;
}

typedef char *(*build_fn)(void *cx, const char *cut);

/* longest_cut returns the index of the last cut point for which
 * build(cut) fits (binary search: longer cuts never fit better), or -1. */
static int longest_cut(const plat_account *a, const char *s, const size_t *pts, int np,
                       build_fn build, void *cx)
{
    int lo = 0, hi = np - 1, best = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        char *c = cut_at(s, pts[mid]);
        char *t = build(cx, c);
        int ok = fits(a, t);
        free(t);
        free(c);
        if (ok) best = mid, lo = mid + 1;
        else hi = mid - 1;
    }
    return best;
}

/* best_cut finds the longest cut of s for which build(cut) fits and returns
 * the built text, or NULL. It cuts at the end of a word, unless that keeps
 * less than 70% of what a cut between graphemes keeps (text without
 * spaces, such as CJK, is cut between graphemes). */
static char *best_cut(const plat_account *a, const char *s, build_fn build, void *cx)
{
    int nw, ng;
    size_t *wp = cut_points(s, 1, a->ops->scan_flags, &nw);
    size_t *gp = cut_points(s, 0, a->ops->scan_flags, &ng);
    int bw = longest_cut(a, s, wp, nw, build, cx);
    /* a grapheme cut ends before the next word end, which did not fit: when
     * that is within reach, the word cut wins without searching */
    int bg = bw >= 0 && bw + 1 < nw && wp[bw + 1] * 7 <= wp[bw] * 10
                 ? -1
                 : longest_cut(a, s, gp, ng, build, cx);
    size_t at = 0;
    int found = 1;
    if (bw >= 0 && (bg < 0 || wp[bw] * 10 >= gp[bg] * 7)) at = wp[bw];
    else if (bg >= 0) at = gp[bg];
    else found = 0;
    free(wp);
    free(gp);
    if (!found) return NULL;
    char *c = cut_at(s, at);
    char *t = build(cx, c);
    free(c);
    return t;
}

typedef struct tpl_cx {
    const plat_account *a;
    const char *tpl;
    post_vars v;
    const char *excerpt_full, *title_full;
    char **tags;
    int ntags;
    int which; /* 0: cutting excerpt, 1: cutting title */
} tpl_cx;

static char *tpl_render(tpl_cx *t)
{
    hr_buf h;
    hr_buf_init(&h);
    for (int i = 0; i < t->ntags; i++) {
        if (i) hr_buf_putc(&h, ' ');
        hr_buf_puts(&h, t->tags[i]);
    }
    if (!h.data) hr_buf_append(&h, "", 0);
    t->v.hashtags = h.data;
    char *r = render(t->tpl, post_var, &t->v, 0);
    char *out = tidy(r);
    free(r);
    hr_buf_release(&h);
    t->v.hashtags = NULL;
    return out;
}

static char *tpl_build(void *cx, const char *cut)
{
    tpl_cx *t = cx;
    if (t->which == 0) t->v.excerpt = cut;
    else t->v.title = cut;
    return tpl_render(t);
}

/* fit_template renders the template, shortening the excerpt, then the
 * title, then dropping hashtags until it fits; NULL when nothing fits. */
static char *fit_template(tpl_cx *t)
{
    char *full = tpl_render(t);
    if (fits(t->a, full)) return full;
    free(full);
    for (;;) {
        t->v.title = t->title_full;
        t->v.excerpt = "";
        t->which = 0;
        if (t->excerpt_full && *t->excerpt_full) {
            char *r = best_cut(t->a, t->excerpt_full, tpl_build, t);
            if (r) return r;
        }
        t->v.excerpt = "";
        t->which = 1;
        if (t->title_full && *t->title_full) {
            char *r = best_cut(t->a, t->title_full, tpl_build, t);
            if (r) return r;
        }
        t->v.title = "";
        char *r = tpl_render(t);
        if (fits(t->a, r)) return r;
        free(r);
        if (t->ntags == 0) return NULL;
        t->ntags--;
        t->v.title = t->title_full;
        full = tpl_render(t);
        if (fits(t->a, full)) return full;
        free(full);
    }
}

/* raw text: the body is cut, the trailing links and hashtags stay whole */
typedef struct raw_cx {
    const char *sep_tail; /* separator + tail, "" when none */
} raw_cx;

static char *raw_build(void *cx, const char *cut)
{
    raw_cx *r = cx;
    if (!*cut) {
        const char *t = r->sep_tail;
        while (*t && isspace((unsigned char)*t)) t++;
        return hr_strdup(t);
    }
    char *t = hr_asprintf("%s%s", cut, r->sep_tail);
    size_t n = strlen(t);
    while (n && isspace((unsigned char)t[n - 1])) t[--n] = '\0';
    return t;
}

static size_t tail_start(const plat_account *a, const char *s)
{
    size_t n = strlen(s);
    tx_ent *e;
    int ne = tx_scan(s, n, a->ops->scan_flags, &e);
    size_t t = n;
    /* walk the entities backwards while only links, tags and spaces follow */
    for (int k = ne - 1; k >= 0; k--) {
        size_t p = t;
        while (p > 0 && isspace((unsigned char)s[p - 1])) p--;
        if (e[k].end != p || e[k].type == TX_MENTION) break;
        t = e[k].start;
    }
    free(e);
    return t;
}

/* drop_tags: when even the links and hashtags at the end do not fit, keep
 * the longest prefix ending after a whole hashtag or link (the tags at the
 * end go first); NULL when not even the first one fits. */
static char *drop_tags(const plat_account *a, const char *text, size_t ts)
{
    size_t n = strlen(text);
    tx_ent *e;
    int ne = tx_scan(text, n, a->ops->scan_flags, &e);
    int lo = 0, hi = ne - 1, best = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (e[mid].end <= ts) {
            lo = mid + 1;
            continue;
        }
        char *t = hr_strndup(text, e[mid].end);
        int ok = fits(a, t);
        free(t);
        if (ok) best = mid, lo = mid + 1;
        else hi = mid - 1;
    }
    char *out = best >= 0 ? hr_strndup(text, e[best].end) : NULL;
    free(e);
    return out;
}

char *plat_fit(const plat_account *a, const char *text, long limit)
{
    plat_account tmp = *a;
    tmp.limit = limit;
    if (fits(&tmp, text)) return hr_strdup(text);
    size_t ts = tail_start(&tmp, text);
    size_t be = ts;
    while (be > 0 && isspace((unsigned char)text[be - 1])) be--;
    char *body = hr_strndup(text, be);
    raw_cx r = {text + be};
    char *out = best_cut(&tmp, body, raw_build, &r);
    if (!out) {
        char *t = raw_build(&r, "");
        if (fits(&tmp, t)) out = t;
        else free(t);
    }
    if (!out) out = drop_tags(&tmp, text, ts);
    free(body);
    return out;
}

/* ------------------------------------------------------------ threads */

/* split_thread splits text into numbered parts " i/N" that each fit. */
static char **split_thread(const plat_account *a, const char *s, int *nparts)
{
    size_t n = strlen(s);
    int guess = 1;
    for (int round = 0; round < 4; round++) {
        char **parts = NULL;
        int np = 0;
        size_t i = 0;
        while (i < n && isspace((unsigned char)s[i])) i++;
        while (i < n) {
            /* extend the part word by word while it fits with its suffix */
            size_t end = i, best = 0;
            char suffix[32];
            snprintf(suffix, sizeof suffix, " %d/%d", np + 1, guess < 2 ? 2 : guess);
            while (end < n) {
                size_t e = end;
                while (e < n && isspace((unsigned char)s[e])) e++;
                while (e < n && !isspace((unsigned char)s[e])) e++;
                char *cand = hr_asprintf("%.*s%s", (int)(e - i), s + i, suffix);
                int ok = fits(a, cand);
                free(cand);
                if (!ok) break;
                best = end = e;
            }
            if (!best) {
                /* one word longer than a part: cut it on graphemes */
                size_t *b;
                long nb = tx_bounds(s + i, n - i, &b);
                size_t take = 0;
                for (long g = 1; g <= nb; g++) {
                    char *cand = hr_asprintf("%.*s%s", (int)b[g], s + i, suffix);
                    int ok = fits(a, cand);
                    free(cand);
                    if (!ok) break;
                    take = b[g];
                }
                free(b);
                if (!take) {
                    for (int k = 0; k < np; k++) free(parts[k]);
                    free(parts);
                    *nparts = 0;
                    return NULL;
                }
                best = i + take;
            }
            parts = hr_realloc(parts, (size_t)(np + 1) * sizeof *parts);
            parts[np++] = hr_strndup(s + i, best - i);
            i = best;
            while (i < n && isspace((unsigned char)s[i])) i++;
        }
        if (np == guess || (np <= 1 && guess <= 1)) {
            if (np > 1)
                for (int k = 0; k < np; k++) {
                    char *t = hr_asprintf("%s %d/%d", parts[k], k + 1, np);
                    free(parts[k]);
                    parts[k] = t;
                }
            *nparts = np;
            return parts;
        }
        for (int k = 0; k < np; k++) free(parts[k]);
        free(parts);
        guess = np;
    }
    *nparts = 0;
    return NULL;
}

/* ------------------------------------------------------------- posts */

static void add_part(plat_post *p, char *text)
{
    p->parts = hr_realloc(p->parts, (size_t)(p->nparts + 1) * sizeof *p->parts);
    memset(&p->parts[p->nparts], 0, sizeof p->parts[0]);
    p->parts[p->nparts++].text = text;
}

static int finish_post(const plat_account *a, const queue_job *j, plat_post *p, hr_err *err)
{
    p->limit = a->limit;
    p->valid = 1;
    for (int i = 0; i < p->nparts; i++) {
        plat_part *pt = &p->parts[i];
        pt->length = count_for(a, pt->text);
        if (pt->length < 0) return hr_err_set(err, "text is not valid UTF-8");
        if (a->ops->finish && a->ops->finish(a, j, pt, err) != 0) return -1;
        if (!p->valid) continue;
        if (pt->length == 0) {
            p->valid = 0;
            snprintf(p->reason, sizeof p->reason, "text is empty");
        } else if (pt->length > a->limit) {
            p->valid = 0;
            snprintf(p->reason, sizeof p->reason, "too long: %ld > %ld", pt->length, a->limit);
        } else if (strcmp(a->platform, "bluesky") == 0 && strlen(pt->text) > 3000) {
            p->valid = 0;
            snprintf(p->reason, sizeof p->reason, "too long: %zu UTF-8 bytes > 3000",
                     strlen(pt->text));
        }
    }
    return 0;
}

static int thread_allowed(const plat_account *a)
{
    const char *p = a->platform;
    return strcmp(p, "x") == 0 || strcmp(p, "bluesky") == 0 || strcmp(p, "mastodon") == 0 ||
           strcmp(p, "threads") == 0;
}

static int place_text(const plat_account *a, const queue_job *j, const char *text, int flags,
                      plat_post *p, hr_err *err)
{
    if (!tx_valid_utf8(text, strlen(text))) return hr_err_set(err, "text is not valid UTF-8");
    if ((flags & PLAT_FMT_THREAD) && thread_allowed(a) && !fits(a, text)) {
        int np;
        char **parts = split_thread(a, text, &np);
        if (parts) {
            for (int i = 0; i < np; i++) add_part(p, parts[i]);
            free(parts);
            return finish_post(a, j, p, err);
        }
    }
    if ((flags & (PLAT_FMT_FIT | PLAT_FMT_THREAD)) && !fits(a, text)) {
        char *f = plat_fit(a, text, a->limit);
        add_part(p, f ? f : hr_strdup(text));
    } else {
        add_part(p, hr_strdup(text));
    }
    return finish_post(a, j, p, err);
}

int plat_format_text(const plat_account *a, const char *text, int flags, plat_post *p,
                     hr_err *err)
{
    memset(p, 0, sizeof *p);
    queue_job *j = queue_job_new();
    queue_set(&j->platform, a->platform);
    int r = place_text(a, j, text ? text : "", flags, p, err);
    queue_job_free(j);
    return r;
}

static int format_social(const plat_account *a, const queue_job *j, int flags, plat_post *p,
                         hr_err *err)
{
    const char *thread = queue_job_get_meta(j, "thread");
    int want_thread = (flags & PLAT_FMT_THREAD) || (thread && strcmp(thread, "0") != 0 &&
                                                     strcmp(thread, "false") != 0);
    if (j->text && *j->text) {
        /* a text rendered upstream (the scheduler's templates) still gets
         * the job's link with UTM parameters, shown as the platform shows it */
        char *text = link_in_text(a, j);
        int r = place_text(a, j, text ? text : j->text,
                           flags | (want_thread ? PLAT_FMT_THREAD : 0), p, err);
        free(text);
        return r;
    }
    const char *tpl = queue_job_get_meta(j, "template");
    if (!tpl) tpl = plat_account_opt(a, "template", DEFAULT_TEMPLATE);
    char *title = html_maybe(j->title), *excerpt = html_maybe(j->excerpt);
    char *link = job_link(a, j);
    char *shown = link && strcmp(a->platform, "bluesky") == 0 ? bsky_short_link(link) : NULL;
    char **tags;
    int ntags = job_hashtags(a, j, &tags);
    tpl_cx t = {.a = a, .tpl = tpl, .excerpt_full = excerpt, .title_full = title,
                .tags = tags, .ntags = ntags};
    t.v = (post_vars){title, excerpt, shown ? shown : link, NULL, j};
    int r = 0;
    char *full = tpl_render(&t);
    if (want_thread && thread_allowed(a) && !fits(a, full)) {
        r = place_text(a, j, full, PLAT_FMT_THREAD, p, err);
    } else {
        char *text = fit_template(&t);
        if (text) {
            add_part(p, text);
            r = finish_post(a, j, p, err);
        } else {
            r = place_text(a, j, full, 0, p, err); /* reported as too long */
        }
    }
    free(full);
    for (int i = 0; i < ntags; i++) free(tags[i]);
    free(tags);
    free(title);
    free(excerpt);
    free(link);
    free(shown);
    return r;
}

/* ------------------------------------------------------------ emails */

typedef struct email_vars {
    const queue_job *j;
    const char *unsub, *link;
    char first[128];
} email_vars;

static const char *email_var(void *cx, const char *name)
{
    email_vars *v = cx;
    const char *x = queue_job_get_var(v->j, name);
    if (x) return x;
    if (strcmp(name, "first_name") == 0) return v->first[0] ? v->first : NULL;
    if (strcmp(name, "name") == 0 || strcmp(name, "to_name") == 0) return v->j->to_name;
    if (strcmp(name, "email") == 0) return v->j->to;
    if (strcmp(name, "campaign") == 0) return v->j->campaign;
    if (strcmp(name, "unsubscribe_url") == 0) return v->unsub;
    if (strcmp(name, "link") == 0) return v->link;
    if (strcmp(name, "title") == 0) return v->j->title;
    return NULL;
}

/* header_ctl returns the first character of v a header may not carry: CR
 * or LF would end the header and start another (injection), and RFC 5322
 * lets no other control but HTAB appear in a header's text; 0 if none. */
static int header_ctl(const char *v)
{
    for (const unsigned char *c = (const unsigned char *)v; v && *c; c++)
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f) return *c;
    return 0;
}

/* unsafe_header names the first header of p whose value, as rendered,
 * holds a character header_ctl refuses (and sets *ch to it); NULL if none.
 * Every value that ends up in a header is checked here, whatever built it
 * (a template variable, a contact field, the account's config). */
static const char *unsafe_header(const plat_account *a, const queue_job *j, const plat_post *p,
                                 int *ch)
{
    const struct {
        const char *name, *value;
    } h[] = {
        {"From", p->from},
        {"From (name)", p->from_name},
        {"Reply-To", plat_account_opt(a, "reply-to", NULL)},
        {"To", p->to},
        {"To (name)", p->to_name},
        {"Subject", p->subject},
        {"Message-ID", p->message_id},
        {"List-Unsubscribe", p->unsubscribe_url},
        {"X-Herald-Job", j->id},
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++)
        if ((*ch = header_ctl(h[i].value))) return h[i].name;
    return NULL;
}

static int format_email(const plat_account *a, const queue_job *j, const plat_ctx *ctx,
                        plat_post *p, hr_err *err)
{
    char norm[256];
    if (!j->to || queue_email_normalize(j->to, norm, sizeof norm) != 0) {
        /* a line break in it is header injection: refused below, by name */
        if (!j->to || !header_ctl(j->to))
            return hr_err_set(err, "email: \"to\" is not an address: %s",
                              j->to ? j->to : "(none)");
        norm[0] = '\0';
    }
    const char *from = plat_account_opt(a, "from", NULL);
    p->from = hr_strdup(from);
    p->from_name = hr_strdup(plat_account_opt(a, "from-name", NULL));
    p->to = hr_strdup(j->to);
    p->to_name = hr_strdup(j->to_name);

    email_vars v = {.j = j};
    if (j->to_name) {
        size_t k = strcspn(j->to_name, " \t");
        snprintf(v.first, sizeof v.first, "%.*s", (int)k, j->to_name);
    }
    const char *ub = plat_account_opt(a, "unsubscribe-base", NULL);
    if (ub && ctx && ctx->secret) {
        hr_unsub u = {0};
        snprintf(u.email, sizeof u.email, "%s", norm);
        snprintf(u.campaign, sizeof u.campaign, "%s", j->campaign ? j->campaign : "");
        snprintf(u.job, sizeof u.job, "%s", j->id[0] ? j->id : (j->idem_key ? j->idem_key : ""));
        char *tok = hr_unsub_token_make(ctx->secret, &u);
        p->unsubscribe_url = hr_unsub_url(ub, tok);
        free(tok);
    }
    v.unsub = p->unsubscribe_url;
    char *link = job_link(a, j);
    v.link = link;

    const char *dom = from ? strchr(from, '@') : NULL;
    p->message_id = hr_asprintf("<%s.herald@%s>",
                                j->id[0] ? j->id : (j->idem_key ? j->idem_key : "job"),
                                dom ? dom + 1 : "herald.invalid");
    p->subject = render(j->subject ? j->subject : "", email_var, &v, 0);
    p->preheader = j->preheader ? render(j->preheader, email_var, &v, 0) : NULL;
    if (j->html) {
        char *h = render(j->html, email_var, &v, 1);
        if (p->preheader && *p->preheader) {
            /* the preheader is the inbox preview: hidden text before the body */
            hr_buf b;
            hr_buf_init(&b);
            hr_buf_puts(&b, "<div style=\"display:none;max-height:0;overflow:hidden\">");
            hr_buf_html_escape(&b, p->preheader);
            hr_buf_puts(&b, "</div>");
            hr_buf_puts(&b, h);
            free(h);
            h = hr_buf_detach(&b);
        }
        p->html = h;
    }
    if (j->body_text)
        p->text = render(j->body_text, email_var, &v, 0);
    else if (j->html) {
        char *h = render(j->html, email_var, &v, 0);
        p->text = plat_html_to_text(h, strlen(h));
        free(h);
    } else if (j->text) {
        p->text = render(j->text, email_var, &v, 0);
    } else {
        p->text = hr_strdup("");
    }
    if (p->unsubscribe_url && !strstr(p->text, p->unsubscribe_url)) {
        char *t = hr_asprintf("%s\n\n--\nUnsubscribe: %s", p->text, p->unsubscribe_url);
        free(p->text);
        p->text = t;
    }
    free(link);

    p->limit = EMAIL_SUBJECT_MAX;
    p->valid = 1;
    add_part(p, hr_strdup(p->text));
    p->parts[0].length = tx_graphemes_n(p->subject, strlen(p->subject));
    long pre = p->preheader ? tx_graphemes_n(p->preheader, strlen(p->preheader)) : 0;
    if (!tx_valid_utf8(p->subject, strlen(p->subject)) ||
        !tx_valid_utf8(p->text, strlen(p->text)) || p->parts[0].length < 0 || pre < 0)
        return hr_err_set(err, "email: text is not valid UTF-8");
    int ch = 0;
    const char *bad = unsafe_header(a, j, p, &ch);
    if (bad) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason,
                 "%s header would hold %s (0x%02x): refused (header injection)", bad,
                 ch == '\r' || ch == '\n' ? "a line break" : "a control character", ch);
    } else if (!from) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason, "account %s:%s has no from=", a->platform,
                 a->name);
    } else if (!*p->subject) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason, "subject is empty");
    } else if (p->parts[0].length > EMAIL_SUBJECT_MAX) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason, "subject too long: %ld > %d", p->parts[0].length,
                 EMAIL_SUBJECT_MAX);
    } else if (pre > EMAIL_PREHEADER_MAX) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason, "preheader too long: %ld > %d", pre,
                 EMAIL_PREHEADER_MAX);
    } else if (!j->html && !*p->text) {
        p->valid = 0;
        snprintf(p->reason, sizeof p->reason, "email has no body");
    }
    return 0;
}

int plat_format_job(const plat_account *a, const queue_job *j, const plat_ctx *ctx, int flags,
                    plat_post *p, hr_err *err)
{
    memset(p, 0, sizeof *p);
    if (a->ops->email) return format_email(a, j, ctx, p, err);
    return format_social(a, j, flags | PLAT_FMT_FIT, p, err);
}

void plat_post_release(plat_post *p)
{
    if (!p) return;
    for (int i = 0; i < p->nparts; i++) {
        free(p->parts[i].text);
        for (int k = 0; k < p->parts[i].nfacets; k++) free(p->parts[i].facets[k].value);
        free(p->parts[i].facets);
    }
    free(p->parts);
    free(p->subject);
    free(p->html);
    free(p->text);
    free(p->preheader);
    free(p->message_id);
    free(p->unsubscribe_url);
    free(p->from);
    free(p->from_name);
    free(p->to);
    free(p->to_name);
    memset(p, 0, sizeof *p);
}
