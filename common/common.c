/* common.c: allocation, buffers, errors, clocks, ids. Logging lives in log.c.
 * No global state here. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *hr_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *hr_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p) oom(count * n);
    return p;
}

void *hr_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *hr_strdup(const char *s)
{
    return s ? hr_strndup(s, strlen(s)) : NULL;
}

char *hr_strndup(const char *s, size_t n)
{
    char *p = hr_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *hr_vasprintf(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) oom(0);
    char *p = hr_malloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *hr_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = hr_vasprintf(fmt, ap);
    va_end(ap);
    return p;
}

void hr_buf_init(hr_buf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
}

void hr_buf_release(hr_buf *b)
{
    free(b->data);
    hr_buf_init(b);
}

void hr_buf_reset(hr_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void hr_buf_grow(hr_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = hr_realloc(b->data, cap);
    b->cap = cap;
}

void hr_buf_html_escape(hr_buf *b, const char *s)
{
    for (;;) {
        size_t n = strcspn(s, "&<>\"'");
        hr_buf_append(b, s, n);
        s += n;
        switch (*s++) {
        case '&': hr_buf_puts(b, "&amp;"); break;
        case '<': hr_buf_puts(b, "&lt;"); break;
        case '>': hr_buf_puts(b, "&gt;"); break;
        case '"': hr_buf_puts(b, "&quot;"); break;
        case '\'': hr_buf_puts(b, "&#39;"); break;
        default: return; /* the terminating NUL */
        }
    }
}

void hr_prom_family(hr_buf *b, const char *name, const char *type, const char *help)
{
    hr_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void hr_prom_label(hr_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') hr_buf_putc(b, '\\');
        if (*s == '\n') {
            hr_buf_puts(b, "\\n");
            continue;
        }
        hr_buf_putc(b, *s);
    }
}

void hr_prom_histogram(hr_buf *b, const char *name, const char *labels, const int64_t *bounds_ms,
                       int nb, const long *counts, long long sum_ms)
{
    const char *sep = labels[0] ? "," : "";
    long cum = 0;
    for (int i = 0; i <= nb; i++) {
        cum += counts[i];
        if (i < nb)
            hr_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %ld\n", name, labels, sep,
                          (double)bounds_ms[i] / 1000.0, cum);
        else
            hr_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %ld\n", name, labels, sep, cum);
    }
    if (labels[0]) {
        hr_buf_printf(b, "%s_sum{%s} %.3f\n", name, labels, (double)sum_ms / 1000.0);
        hr_buf_printf(b, "%s_count{%s} %ld\n", name, labels, cum);
    } else {
        hr_buf_printf(b, "%s_sum %.3f\n", name, (double)sum_ms / 1000.0);
        hr_buf_printf(b, "%s_count %ld\n", name, cum);
    }
}

void hr_buf_printf(hr_buf *b, const char *fmt, ...)
{
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n > 0) {
        hr_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
}

char *hr_buf_detach(hr_buf *b)
{
    char *p = b->data ? b->data : hr_strdup("");
    hr_buf_init(b);
    return p;
}

int hr_err_set(hr_err *e, const char *fmt, ...)
{
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (!e->code) e->code = 1;
    return -1;
}

void hr_err_clear(hr_err *e)
{
    if (!e) return;
    e->code = 0;
    e->msg[0] = '\0';
}

int64_t hr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hr_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t hr_mono_ms(void)
{
    return hr_mono_us() / 1000;
}

void hr_format_rfc3339(int64_t ms, char *out, size_t outlen)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    if (frac)
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    else
        snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int hr_parse_rfc3339(const char *s, int64_t *ms)
{
    int Y, M, D, h, m, sec, frac = 0;
    const char *p = s;
    if (digits(&p, 4, &Y) || *p++ != '-' || digits(&p, 2, &M) || *p++ != '-' ||
        digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &m) || *p++ != ':' ||
        digits(&p, 2, &sec))
        return -1;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) frac = frac * 10 + (*p - '0');
            n++, p++;
        }
        if (n == 0) return -1;
        for (; n < 3; n++) frac *= 10;
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om)) return -1;
        off_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac;
    return 0;
}

static void fill_random(unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "herald: getrandom: %s\n", strerror(errno));
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

/* A pool of kernel randomness, so ids cost no system call each. It is the
 * one piece of process state here; a fork empties it in the child (an
 * atfork handler, registered once) so parent and child never hand out the
 * same bytes. */
static struct {
    unsigned char buf[4096];
    size_t pos;
} rnd_pool = {.pos = sizeof rnd_pool.buf};
static pthread_once_t rnd_once = PTHREAD_ONCE_INIT;

static void rnd_pool_empty(void) { rnd_pool.pos = sizeof rnd_pool.buf; }
static void rnd_pool_register(void) { pthread_atfork(NULL, NULL, rnd_pool_empty); }

void hr_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    if (n > sizeof rnd_pool.buf / 4) {
        fill_random(p, n);
        return;
    }
    pthread_once(&rnd_once, rnd_pool_register);
    if (rnd_pool.pos + n > sizeof rnd_pool.buf) {
        fill_random(rnd_pool.buf, sizeof rnd_pool.buf);
        rnd_pool.pos = 0;
    }
    memcpy(p, rnd_pool.buf + rnd_pool.pos, n);
    /* used bytes are wiped so a core dump does not replay them */
    memset(rnd_pool.buf + rnd_pool.pos, 0, n);
    rnd_pool.pos += n;
}

uint64_t hr_random_u64(void)
{
    uint64_t v;
    hr_random_bytes(&v, sizeof v);
    return v;
}

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void hr_base62_fixed(uint64_t v, int width, char *out)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = b62[v % 62];
        v /= 62;
    }
    out[width] = '\0';
}

int hr_streq(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

int hr_ct_equal(const void *a, const void *b, size_t n)
{
    /* eight bytes a step (a webhook signature is 64), never leaving early:
     * the empty asm hides d from the optimizer, which could otherwise stop
     * at the first difference */
    const unsigned char *x = a, *y = b;
    uint64_t d = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t u, v;
        memcpy(&u, x + i, 8);
        memcpy(&v, y + i, 8);
        d |= u ^ v;
        __asm__("" : "+r"(d));
    }
    for (; i < n; i++) {
        d |= (uint64_t)(x[i] ^ y[i]);
        __asm__("" : "+r"(d));
    }
    return d == 0;
}

void hr_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int hr_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

size_t hr_trim_end(char *s, size_t n)
{
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    s[n] = '\0';
    return n;
}
