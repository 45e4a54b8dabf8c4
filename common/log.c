/* log.c: JSON-lines logging to stderr. Every value passes through the email
 * masker, so a recipient address never reaches a log file whole. The level and
 * process name are the process's parsed configuration, set once at start. */
#include "common.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static hr_log_level log_min = HR_LOG_INFO;
static char log_name[32] = "herald";
/* hr_log_batch's lines, whole ones only */
static char log_buf[PIPE_BUF];
static size_t log_len;
static int log_batched;
static int log_pid; /* while batched: no getpid() per line (no fork then) */

void hr_log_flush(void)
{
    if (log_len) fwrite(log_buf, 1, log_len, stderr);
    log_len = 0;
}

void hr_log_batch(int on)
{
    if (!on) hr_log_flush();
    log_batched = on;
    log_pid = (int)getpid();
}

/* emit writes line (n bytes, then a newline when nl) or keeps it for
 * hr_log_flush. */
static void emit(const char *line, size_t n, int nl)
{
    size_t all = n + (nl ? 1 : 0);
    if (log_batched && all <= sizeof log_buf) {
        if (log_len + all > sizeof log_buf) hr_log_flush();
        memcpy(log_buf + log_len, line, n);
        if (nl) log_buf[log_len + n] = '\n';
        log_len += all;
        return;
    }
    hr_log_flush(); /* keep the order */
    /* one write per line (stderr is unbuffered: fprintf writes once) */
    if (nl) fprintf(stderr, "%.*s\n", (int)n, line);
    else fwrite(line, 1, n, stderr);
}

void hr_log_set_level(hr_log_level min) { log_min = min; }

int hr_log_parse_level(const char *s, hr_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; s && i < (int)HR_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (hr_log_level)i;
            return 0;
        }
    return -1;
}

void hr_log_set_name(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name);
}

/* What is masked. An email address is a local part, an at sign, a domain.
 * The at sign may be '@' or a form it takes in what herald logs: "%40" (a
 * URL, a form body), "%2540" (encoded twice), "&#64;", "&#x40;" (leading
 * zeros too) and "&commat;" (HTML), U+FF20 FULLWIDTH and U+FE6B SMALL
 * COMMERCIAL AT; an HTML entity in a local part ("jane&#46;doe") is part of
 * it.
 * Not an address, so not masked:
 * - an at sign with nothing address-like before it ("@mention", " @ ");
 * - one right after ':' or '/': a lane's handle ("x:@shop") or a URL's path
 *   segment ("https://mastodon.social/@shop/1"); no one's local part ends so;
 * - an encoded or look-alike at sign followed by a byte no domain starts
 *   with ("50%40 off"): those are also ordinary text. A plain '@' is masked
 *   whatever follows, and any at sign at the end of the text (it may have
 *   been cut short).
 * Inside a URL (the local part's run holds "://") the local part starts
 * after the URL's last '/', '?', '#', '&' or '=' (the user of
 * "redis://user:pw@host", the value of "?email=jane@example.com"). In doubt,
 * more is masked: a leaked address is worse than an over-masked line. */

/* addr_stop: a byte that ends an address-like run: what
 * queue_email_normalize refuses in an address, and '@' (one address's domain
 * is not the next one's local part). Anything else may be part of a local
 * part: non-ASCII, quotes, parentheses, "%", ":" ... */
static int addr_stop(unsigned char c)
{
    return c <= ' ' || c == 0x7f || c == '<' || c == '>' || c == ',' || c == ';' || c == '@';
}

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* entity_len returns the length of the HTML character reference ("&#64;",
 * "&#x040;", "&lt;") at p, or 0; *ch gets its code point (-1 when named,
 * but '@' for "&commat;"). */
static size_t entity_len(const char *p, long *ch)
{
    if (p[0] != '&') return 0;
    size_t i = 1;
    *ch = -1;
    if (p[1] == '#') {
        int hex = p[2] == 'x' || p[2] == 'X';
        long v = 0;
        for (i = hex ? 3 : 2; i < 12; i++) {
            unsigned char c = (unsigned char)p[i];
            int d = c >= '0' && c <= '9'                            ? c - '0'
                    : hex && (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                                    : -1;
            if (d < 0) break;
            v = v * (hex ? 16 : 10) + d;
        }
        if (i == (hex ? 3u : 2u) || p[i] != ';') return 0;
        *ch = v;
        return i + 1;
    }
    while (i < 12 && is_alnum((unsigned char)p[i])) i++;
    if (i == 1 || p[i] != ';') return 0;
    if (i == 7 && strncmp(p, "&commat", 7) == 0) *ch = '@';
    return i + 1;
}

/* local_start returns where the local part ending at s[at] (its at sign)
 * begins (at when there is none), not before from. It runs back over every
 * byte an address may hold, and over a whole "quoted string" or (comment)
 * with its spaces: when unsure, more is masked. */
static size_t local_start(const char *s, size_t from, size_t at)
{
    if (at > from && (s[at - 1] == ':' || s[at - 1] == '/')) return at;
    size_t i = at, cut = 0; /* cut: after the URL delimiter nearest the at sign */
    while (i > from) {
        char c = s[i - 1];
        if (c == '"' || c == ')') {
            char open = c == '"' ? '"' : '(';
            size_t k = i - 1;
            while (k > from && s[k - 1] != open) k--;
            if (k > from) { /* the whole quoted part, spaces and all */
                i = k - 1;
                continue;
            }
        }
        if (c == ';') { /* an entity's end is in the run, with its entity */
            size_t k = i - 1;
            long ch;
            while (k > from && i - k < 12 && s[k] != '&') k--;
            if (s[k] == '&' && entity_len(s + k, &ch) == i - k) {
                i = k;
                continue;
            }
        }
        if (addr_stop((unsigned char)c)) break;
        if (!cut && (c == '/' || c == '?' || c == '#' || c == '&' || c == '=')) cut = i;
        i--;
    }
    if (cut)
        for (size_t k = i; k + 3 <= at; k++)
            if (s[k] == ':' && s[k + 1] == '/' && s[k + 2] == '/') return cut;
    return i;
}

/* next_at returns the next at sign (any form above) from p on, with its
 * length in *len; NULL when none. */
static const char *next_at(const char *p, size_t *len)
{
    static const char *const forms[] = {"%40", "%2540", "\xef\xbc\xa0", "\xef\xb9\xab"};
    for (p = strpbrk(p, "@%&\xef"); p; p = strpbrk(p + 1, "@%&\xef")) {
        if (*p == '@') {
            *len = 1;
            return p;
        }
        long ch;
        size_t n = entity_len(p, &ch);
        if (ch != '@') n = 0;
        for (size_t k = 0; !n && k < HR_ARRAY_LEN(forms); k++)
            if (strncmp(p, forms[k], strlen(forms[k])) == 0) n = strlen(forms[k]);
        /* encoded: an address only when a domain may follow */
        unsigned char d = (unsigned char)p[n];
        if (n && (!d || d >= 0x80 || is_alnum(d) || d == '[' || d == '%' || d == '&')) {
            *len = n;
            return p;
        }
    }
    return NULL;
}

void hr_mask_email(const char *s, char *out, size_t outlen)
{
    if (!outlen) return;
    size_t o = 0, last = 0, floor = 0, n = strlen(s), len;
    /* copy s[last..] up to each at sign, its local part replaced by its
     * first character (printable ASCII only: never half a UTF-8 sequence)
     * and ***; floor: a local part starts after the at sign before it */
    for (const char *a = next_at(s, &len); a && o + 1 < outlen; a = next_at(a + len, &len)) {
        size_t at = (size_t)(a - s), ls = local_start(s, floor, at);
        floor = at + len;
        if (ls == at) continue;
        while (last < ls && o + 1 < outlen) out[o++] = s[last++];
        if (s[ls] > ' ' && s[ls] < 0x7f && o + 1 < outlen) out[o++] = s[ls];
        for (int k = 0; k < 3 && o + 1 < outlen; k++) out[o++] = '*';
        last = at;
    }
    while (last < n && o + 1 < outlen) out[o++] = s[last++];
    out[o] = '\0';
}

/* put_plain appends the masked s at *o, or returns -1 when it needs JSON
 * escaping (or does not fit): the line then goes through jansson. */
static int put_plain(char *line, size_t cap, size_t *o, const char *s)
{
    if (*o + 4 >= cap) return -1;
    line[(*o)++] = '"';
    size_t room = cap - *o - 2;
    hr_mask_email(s, line + *o, room < 1024 ? room : 1024); /* as hr_log cuts */
    size_t n = strlen(line + *o);
    if (*o + n + 3 >= cap) return -1; /* maybe cut short: jansson's turn */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)line[*o + i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') return -1;
    }
    *o += n;
    line[(*o)++] = '"';
    return 0;
}

/* Secrets no log line may carry (hr_log_redact): a platform that echoes a
 * token in an error message must not put it in the logs. Values shorter
 * than the shortest secret (most: ids, names, numbers) are not searched. */
static char **redact;
static size_t nredact, redact_min = (size_t)-1;

void hr_log_redact(const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n < 8) return; /* a short one would blank ordinary words */
    for (size_t i = 0; i < nredact; i++)
        if (strcmp(redact[i], secret) == 0) return;
    redact = hr_realloc(redact, (nredact + 1) * sizeof *redact);
    redact[nredact++] = hr_strdup(secret);
    if (n < redact_min) redact_min = n;
}

/* log_value: v with every registered secret replaced by "[redacted]" (in
 * buf, at most cap bytes, when v holds one), else v itself. Only the values
 * that carry text from outside (a platform's or Redis's message: "detail",
 * "error") are looked at, so the ids and names of every job line cost
 * nothing however many accounts there are. */
static const char *log_value(const char *k, const char *v, char *buf, size_t cap)
{
    if (!v || !nredact || (strcmp(k, "detail") != 0 && strcmp(k, "error") != 0) ||
        strlen(v) < redact_min)
        return v;
    size_t i = 0;
    for (; i < nredact && !strstr(v, redact[i]); i++) {
    }
    if (i == nredact) return v;
    size_t o = 0;
    for (const char *s = v; *s && o + 1 < cap;) {
        size_t r = 0, sl = 0;
        for (; r < nredact; r++) {
            sl = strlen(redact[r]);
            if (strncmp(s, redact[r], sl) == 0) break;
        }
        if (r < nredact) {
            int w = snprintf(buf + o, cap - o, "[redacted]");
            o = w < 0 || (size_t)w >= cap - o ? cap - 1 : o + (size_t)w;
            s += sl;
        } else {
            buf[o++] = *s++;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* log_number: a key written "#name" asks for its value as a JSON number
 * (latencies, counts): returns 1 when v is an integer that can be written
 * as is; a value that is not stays a string. */
static int log_number(const char *v)
{
    if (!v || *v == '\0') return 0;
    const char *s = v + (*v == '-');
    if (*s == '\0' || strlen(s) > 18) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* log_plain writes the line itself, without building a JSON object, when
 * no key or value needs escaping and no key repeats (most lines: a worker
 * logs one per job). Returns -1 to leave the line to jansson. */
static int log_plain(const char *level, const char *msg, va_list ap)
{
    char line[2048], ts[40], clean[1024];
    const char *keys[24];
    int nk = 0;
    hr_format_rfc3339(hr_now_ms(), ts, sizeof ts);
    int o = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"proc\":", ts, level);
    size_t n = (size_t)o;
    if (put_plain(line, sizeof line, &n, log_name) < 0) return -1;
    n += (size_t)snprintf(line + n, sizeof line - n, ",\"pid\":%d,\"msg\":",
                          log_batched ? log_pid : (int)getpid());
    if (put_plain(line, sizeof line, &n, msg) < 0) return -1;
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        int num = k[0] == '#';
        k += num;
        if (nk == 24 || strcmp(k, "ts") == 0 || strcmp(k, "level") == 0 ||
            strcmp(k, "proc") == 0 || strcmp(k, "pid") == 0 || strcmp(k, "msg") == 0)
            return -1;
        for (int i = 0; i < nk; i++)
            if (strcmp(keys[i], k) == 0) return -1;
        keys[nk++] = k;
        line[n++] = ',';
        if (put_plain(line, sizeof line, &n, k) < 0 || n + 2 >= sizeof line) return -1;
        line[n++] = ':';
        if (num && log_number(v)) {
            size_t l = strlen(v);
            if (n + l + 2 >= sizeof line) return -1;
            memcpy(line + n, v, l);
            n += l;
        } else if (put_plain(line, sizeof line, &n, v ? log_value(k, v, clean, sizeof clean) : "") <
                   0) {
            return -1;
        }
    }
    if (n + 2 >= sizeof line) return -1;
    line[n++] = '}';
    line[n++] = '\n';
    emit(line, n, 0);
    return 0;
}

void hr_log(hr_log_level lvl, const char *msg, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_min) return;
    va_list fast;
    va_start(fast, msg);
    int done = log_plain(names[lvl], msg, fast) == 0;
    va_end(fast);
    if (done) return;
    json_t *o = json_object();
    char ts[40];
    hr_format_rfc3339(hr_now_ms(), ts, sizeof ts);
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(names[lvl]));
    json_object_set_new(o, "proc", json_string(log_name));
    json_object_set_new(o, "pid", json_integer(log_batched ? log_pid : getpid()));
    char masked[1024];
    hr_mask_email(msg, masked, sizeof masked);
    json_object_set_new(o, "msg", json_string(masked));
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        if (k[0] == '#') {
            k++;
            if (log_number(v)) {
                json_object_set_new(o, k, json_integer(strtoll(v, NULL, 10)));
                continue;
            }
        }
        char clean[1024];
        hr_mask_email(v ? log_value(k, v, clean, sizeof clean) : "", masked, sizeof masked);
        json_object_set_new(o, k, json_string(masked));
    }
    va_end(ap);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
        emit(line, strlen(line), 1);
        free(line);
    }
    json_decref(o);
}
