/* text.c: Unicode text as the platforms count it: grapheme clusters and NFC
 * from utf8proc, twitter-text v3 weights, and a scanner for the links,
 * mentions and hashtags that counting and facets treat specially.
 * It does not decide what text to post; compose.c does. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "internal.h"

#define X_URL_LEN 23
#define MASTO_URL_LEN 23

static ssize_t next_cp(const char *s, size_t n, size_t i, int32_t *cp)
{
    return utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), cp);
}

int tx_valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        ssize_t k = next_cp(s, n, i, &cp);
        if (k <= 0 || cp < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

long tx_bounds(const char *s, size_t n, size_t **out)
{
    size_t cap = 16, cnt = 0;
    size_t *b = hr_malloc(cap * sizeof *b);
    int32_t state = 0, prev = -1;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        ssize_t k = next_cp(s, n, i, &cp);
        if (k <= 0 || cp < 0) {
            free(b);
            if (out) *out = NULL;
            return -1;
        }
        if (prev < 0 || utf8proc_grapheme_break_stateful(prev, cp, &state)) {
            if (cnt + 2 > cap) b = hr_realloc(b, (cap *= 2) * sizeof *b);
            b[cnt++] = i;
        }
        prev = cp;
        i += (size_t)k;
    }
    b[cnt] = n;
    if (out)
        *out = b;
    else
        free(b);
    return (long)cnt;
}

long tx_graphemes_n(const char *s, size_t n) { return tx_bounds(s, n, NULL); }

static int is_space_cp(int32_t cp)
{
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v')
        return 1;
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

int tx_is_space_at(const char *s, size_t n, size_t i)
{
    int32_t cp;
    if (i >= n || next_cp(s, n, i, &cp) <= 0) return 0;
    return is_space_cp(cp);
}

/* A code point that can be part of a hashtag: letters, marks, digits, '_'. */
static int is_tag_cp(int32_t cp)
{
    if (cp == '_') return 1;
    if (cp < 0x80) return isalnum(cp) != 0;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
        return 1;
    default:
        return cp == 0x200C || cp == 0x200D || cp == 0xB7; /* ZWNJ, ZWJ, middle dot */
    }
}

/* ---------------------------------------------------------------- scan */

/* Top-level domains accepted for links written without a scheme: the
 * generic ones people use plus every country code. twitter-text uses the
 * whole IANA list; these cover real text without matching "file.txt". */
static const char tlds[] =
    " com net org edu gov mil int info biz name pro aero coop museum mobi asia tel travel"
    " jobs cat app dev page blog shop store online site tech xyz club news social link live"
    " cloud email website space art design agency media studio digital network solutions"
    " company world today life team tools top vip wiki"
    " ac ad ae af ag ai al am ao aq ar as at au aw ax az ba bb bd be bf bg bh bi bj bm bn bo"
    " br bs bt bw by bz ca cc cd cf cg ch ci ck cl cm cn co cr cu cv cw cx cy cz de dj dk dm"
    " do dz ec ee eg er es et eu fi fj fk fm fo fr ga gd ge gf gg gh gi gl gm gn gp gq gr gs"
    " gt gu gw gy hk hm hn hr ht hu id ie il im in io iq ir is it je jm jo jp ke kg kh ki km"
    " kn kp kr kw ky kz la lb lc li lk lr ls lt lu lv ly ma mc md me mg mh mk ml mm mn mo mp"
    " mq mr ms mt mu mv mw mx my mz na nc ne nf ng ni nl no np nr nu nz om pa pe pf pg ph pk"
    " pl pm pn pr ps pt pw py qa re ro rs ru rw sa sb sc sd se sg sh si sk sl sm sn so sr ss"
    " st su sv sx sy sz tc td tf tg th tj tk tl tm tn to tr tt tv tw tz ua ug uk us uy uz va"
    " vc ve vg vi vn vu wf ws ye yt za zm zw ";

static int known_tld(const char *s, size_t n)
{
    if (n < 2 || n > 12) return 0;
    char want[16];
    want[0] = ' ';
    for (size_t i = 0; i < n; i++) want[i + 1] = (char)tolower((unsigned char)s[i]);
    want[n + 1] = ' ';
    want[n + 2] = '\0';
    return strstr(tlds, want) != NULL;
}

static int url_stop(unsigned char c)
{
    return c <= ' ' || c == '<' || c == '>' || c == '"' || c == '`' || c == 0x7f;
}

/* end of a URL's path part starting at i: up to whitespace (or any non-ASCII
 * space), then trailing punctuation and unbalanced ')' dropped. */
static size_t url_tail(const char *s, size_t n, size_t i)
{
    size_t e = i;
    while (e < n && !url_stop((unsigned char)s[e]) && !tx_is_space_at(s, n, e)) e++;
    for (;;) {
        if (e <= i) break;
        char c = s[e - 1];
        if (strchr(".,;:!?'*", c)) {
            e--;
            continue;
        }
        if (c == ')') {
            int depth = 0;
            for (size_t k = i; k < e; k++) depth += s[k] == '(' ? 1 : s[k] == ')' ? -1 : 0;
            if (depth < 0) {
                e--;
                continue;
            }
        }
        break;
    }
    return e;
}

static int word_byte(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

/* a bare domain (label.label.tld) at i; returns its end or 0 */
static size_t domain_at(const char *s, size_t n, size_t i)
{
    size_t e = i, last_dot = 0;
    int labels = 0;
    while (e < n) {
        size_t ls = e;
        while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '-')) e++;
        if (e == ls || s[ls] == '-' || s[e - 1] == '-') return 0;
        labels++;
        if (e < n && s[e] == '.' && e + 1 < n && isalnum((unsigned char)s[e + 1])) {
            last_dot = e;
            e++;
            continue;
        }
        break;
    }
    if (labels < 2 || !known_tld(s + last_dot + 1, e - last_dot - 1)) return 0;
    if (e < n && (word_byte((unsigned char)s[e]) || s[e] == '@')) return 0;
    return e;
}

static void push(tx_ent **v, int *nv, int *cap, tx_type t, size_t a, size_t b, size_t ue)
{
    if (*nv == *cap) *v = hr_realloc(*v, (size_t)(*cap = *cap ? *cap * 2 : 8) * sizeof **v);
    (*v)[(*nv)++] = (tx_ent){t, a, b, ue};
}

int tx_scan(const char *s, size_t n, int flags, tx_ent **out)
{
    tx_ent *v = NULL;
    int nv = 0, cap = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        unsigned char prev = i ? (unsigned char)s[i - 1] : ' ';
        int at_word_start = !word_byte(prev) && prev != '@' && prev != '.' && prev != '/' &&
                            prev != '-' && prev != '#' && prev != '&';
        /* links with a scheme */
        if ((c == 'h' || c == 'H') && at_word_start) {
            size_t sl = 0;
            if (n - i > 8 && strncasecmp(s + i, "https://", 8) == 0) sl = 8;
            else if (n - i > 7 && strncasecmp(s + i, "http://", 7) == 0) sl = 7;
            if (sl && i + sl < n &&
                (isalnum((unsigned char)s[i + sl]) || (unsigned char)s[i + sl] >= 0x80)) {
                size_t e = url_tail(s, n, i + sl);
                if (e > i + sl) {
                    push(&v, &nv, &cap, TX_URL, i, e, e);
                    i = e;
                    continue;
                }
            }
        }
        if ((flags & TX_SCAN_SCHEMELESS) && isalnum(c) && at_word_start) {
            size_t d = domain_at(s, n, i);
            if (d) {
                size_t e = d < n && s[d] == '/' ? url_tail(s, n, d) : d;
                if (e < d) e = d;
                push(&v, &nv, &cap, TX_URL, i, e, e);
                i = e;
                continue;
            }
        }
        if (c == '@' && !word_byte(prev) && prev != '@') {
            size_t e = i + 1;
            if (flags & TX_SCAN_DOTTED) {
                while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '-' || s[e] == '.'))
                    e++;
                while (e > i + 1 && (s[e - 1] == '.' || s[e - 1] == '-')) e--;
                if (e > i + 1 && memchr(s + i + 1, '.', e - i - 1)) {
                    push(&v, &nv, &cap, TX_MENTION, i, e, e);
                    i = e;
                    continue;
                }
            } else {
                while (e < n && (isalnum((unsigned char)s[e]) || s[e] == '_')) e++;
                if (e > i + 1) {
                    size_t ue = e;
                    if ((flags & TX_SCAN_MASTO) && e < n && s[e] == '@') {
                        size_t d = e + 1;
                        while (d < n && (isalnum((unsigned char)s[d]) || s[d] == '-' ||
                                         s[d] == '.'))
                            d++;
                        while (d > e + 1 && (s[d - 1] == '.' || s[d - 1] == '-')) d--;
                        if (d > e + 1 && memchr(s + e + 1, '.', d - e - 1)) e = d;
                    }
                    push(&v, &nv, &cap, TX_MENTION, i, e, ue);
                    i = e;
                    continue;
                }
            }
        }
        if (c == '#' && !word_byte(prev) && prev != '#' && prev != '&') {
            size_t e = i + 1;
            int nondigit = 0;
            while (e < n) {
                int32_t cp;
                ssize_t k = next_cp(s, n, e, &cp);
                if (k <= 0 || cp < 0 || !is_tag_cp(cp)) break;
                /* a tag starts with a letter, digit or '_', not a mark
                 * (so the keycap "#\uFE0F\u20E3" is no tag) */
                if (e == i + 1 && utf8proc_category(cp) >= UTF8PROC_CATEGORY_MN &&
                    utf8proc_category(cp) <= UTF8PROC_CATEGORY_ME)
                    break;
                if (cp >= 0x80 || !isdigit(cp)) nondigit = 1;
                e += (size_t)k;
            }
            if (e > i + 1 && nondigit) {
                push(&v, &nv, &cap, TX_TAG, i, e, e);
                i = e;
                continue;
            }
        }
        /* skip the rest of a word so "a@b" or "x#y" never start an entity */
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    }
    *out = v;
    return nv;
}

/* -------------------------------------------------------------- counts */

long plat_count_graphemes(const char *text) { return tx_graphemes_n(text, strlen(text)); }

long plat_count_utf16(const char *text)
{
    size_t n = strlen(text);
    long units = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        ssize_t k = next_cp(text, n, i, &cp);
        if (k <= 0 || cp < 0) return -1;
        units += cp >= 0x10000 ? 2 : 1;
        i += (size_t)k;
    }
    return units;
}

/* twitter-text v3: code points in these ranges weigh 100, others 200 (the
 * scale is 100, the limit 280 * 100). */
static int x_weight(int32_t cp)
{
    if ((cp >= 0 && cp <= 4351) || (cp >= 8192 && cp <= 8205) || (cp >= 8208 && cp <= 8223) ||
        (cp >= 8242 && cp <= 8247))
        return 100;
    return 200;
}

/* An emoji sequence: a flag (two regional indicators), a keycap, a ZWJ
 * sequence or modified emoji, or one pictographic code point that is
 * presented as emoji (astral, or followed by U+FE0F). */
static int cluster_is_emoji(const char *s, size_t a, size_t b)
{
    int ri = 0, pict = 0, vs16 = 0, keycap = 0, astral_pict = 0, zwj = 0, tone = 0;
    for (size_t i = a; i < b;) {
        int32_t cp;
        ssize_t k = next_cp(s, b, i, &cp);
        if (k <= 0) break;
        i += (size_t)k;
        const utf8proc_property_t *p = utf8proc_get_property(cp);
        if (p->boundclass == UTF8PROC_BOUNDCLASS_REGIONAL_INDICATOR) ri++;
        if (p->boundclass == UTF8PROC_BOUNDCLASS_EXTENDED_PICTOGRAPHIC ||
            p->boundclass == UTF8PROC_BOUNDCLASS_E_ZWG) {
            pict = 1;
            if (cp >= 0x1F000) astral_pict = 1;
        }
        if (cp == 0xFE0F) vs16 = 1;
        if (cp == 0x20E3) keycap = 1;
        if (cp == 0x200D) zwj = 1;
        if (cp >= 0x1F3FB && cp <= 0x1F3FF) tone = 1;
    }
    return ri >= 2 || keycap || astral_pict || tone || (pict && (vs16 || zwj));
}

/* count_x_ascii: plat_count_x of an ASCII text, which NFC leaves as it is,
 * whose clusters are single code points (or CR LF) of weight 100 and never
 * emoji: every byte weighs 100, a URL X_URL_LEN of them. -1: not ASCII. */
static long count_x_ascii(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] >= 0x80) return -1;
    tx_ent *e;
    int ne = tx_scan(s, n, TX_SCAN_SCHEMELESS, &e);
    long w = (long)n;
    for (int i = 0; i < ne; i++)
        if (e[i].type == TX_URL) w += X_URL_LEN - (long)(e[i].end - e[i].start);
    free(e);
    return w;
}

long plat_count_x(const char *text)
{
    long ascii = count_x_ascii(text);
    if (ascii >= 0) return ascii;
    utf8proc_uint8_t *nfc = utf8proc_NFC((const utf8proc_uint8_t *)text);
    if (!nfc) return -1;
    const char *s = (const char *)nfc;
    size_t n = strlen(s);
    size_t *b;
    long nb = tx_bounds(s, n, &b);
    if (nb < 0) {
        free(nfc);
        return -1;
    }
    tx_ent *e;
    int ne = tx_scan(s, n, TX_SCAN_SCHEMELESS, &e);
    long w = 0;
    int ei = 0;
    for (long g = 0; g < nb; g++) {
        size_t a = b[g], z = b[g + 1];
        while (ei < ne && (e[ei].type != TX_URL || e[ei].end <= a)) ei++;
        if (ei < ne && a >= e[ei].start) {
            if (a == e[ei].start) w += X_URL_LEN * 100;
            continue;
        }
        if (cluster_is_emoji(s, a, z)) {
            w += 200;
            continue;
        }
        for (size_t i = a; i < z;) {
            int32_t cp;
            ssize_t k = next_cp(s, z, i, &cp);
            if (k <= 0) break;
            w += x_weight(cp);
            i += (size_t)k;
        }
    }
    free(e);
    free(b);
    free(nfc);
    return w / 100;
}

long plat_count_mastodon(const char *s)
{
    size_t n = strlen(s);
    size_t *b;
    long nb = tx_bounds(s, n, &b);
    if (nb < 0) return -1;
    tx_ent *e;
    int ne = tx_scan(s, n, TX_SCAN_MASTO, &e);
    long len = 0;
    int ei = 0;
    for (long g = 0; g < nb; g++) {
        size_t a = b[g];
        while (ei < ne && e[ei].end <= a) ei++;
        if (ei < ne && a >= e[ei].start) {
            if (e[ei].type == TX_URL) {
                if (a == e[ei].start) len += MASTO_URL_LEN;
                continue;
            }
            /* a remote mention counts as its local part "@user" */
            if (e[ei].type == TX_MENTION && a >= e[ei].user_end) continue;
        }
        len++;
    }
    free(e);
    free(b);
    return len;
}
