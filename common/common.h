/* common.h: the few helpers every herald module shares: allocation that
 * aborts on out-of-memory, a growable byte buffer, error strings, JSON-lines
 * logging with email masking, clocks, random bytes and base62 ids.
 * Nothing here knows about jobs, Redis or platforms. */
#ifndef HERALD_COMMON_H
#define HERALD_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- allocation: these never return NULL; they abort with a message. */
void *hr_malloc(size_t n);
void *hr_calloc(size_t count, size_t n);
void *hr_realloc(void *p, size_t n);
char *hr_strdup(const char *s);           /* hr_strdup(NULL) returns NULL */
char *hr_strndup(const char *s, size_t n);
char *hr_asprintf(const char *fmt, ...) HR_PRINTF(1, 2);
char *hr_vasprintf(const char *fmt, va_list ap) HR_PRINTF(1, 0);

/* ---- hr_buf: a growable byte buffer, always NUL-terminated after len. */
typedef struct hr_buf {
    char *data;
    size_t len;
    size_t cap;
} hr_buf;

void hr_buf_init(hr_buf *b);
void hr_buf_release(hr_buf *b);
void hr_buf_reset(hr_buf *b);
/* hr_buf_grow makes room for extra more bytes (and the NUL): the slow path
 * of the inline functions below, which run several times per webhook
 * request and showed in its profile as calls. */
void hr_buf_grow(hr_buf *b, size_t extra);
static inline void hr_buf_reserve(hr_buf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) hr_buf_grow(b, extra);
}
static inline void hr_buf_append(hr_buf *b, const void *p, size_t n)
{
    hr_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}
static inline void hr_buf_puts(hr_buf *b, const char *s)
{
    hr_buf_append(b, s, strlen(s));
}
static inline void hr_buf_putc(hr_buf *b, char c)
{
    hr_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
void hr_buf_printf(hr_buf *b, const char *fmt, ...) HR_PRINTF(2, 3);
/* hr_buf_html_escape appends s with & < > " ' as character references, for
 * text or a quoted attribute value in HTML. */
void hr_buf_html_escape(hr_buf *b, const char *s);
/* hr_buf_detach returns the data (caller frees) and leaves b empty. */
char *hr_buf_detach(hr_buf *b);

/* ---- Prometheus text exposition (format 0.0.4): every /metrics page writes
 * through these, so each family has # HELP and # TYPE and each histogram
 * every bucket, _sum and _count on every scrape. */
/* hr_prom_family opens the family name: its # HELP and # TYPE lines. */
void hr_prom_family(hr_buf *b, const char *name, const char *type, const char *help);
/* hr_prom_label appends s as a label value (\, " and newline escaped). */
void hr_prom_label(hr_buf *b, const char *s);
/* hr_prom_histogram appends one series of histogram family name: labels is
 * "" or escaped `k="v",...` pairs; bounds_ms[nb] the finite upper bounds;
 * counts[nb + 1] the non-cumulative counts (the last: over every bound);
 * sum_ms their sum. Writes all nb + 1 buckets, _sum (seconds) and _count. */
void hr_prom_histogram(hr_buf *b, const char *name, const char *labels, const int64_t *bounds_ms,
                       int nb, const long *counts, long long sum_ms);

/* ---- errors: a caller-owned message buffer filled by one setter. */
/* room for a message that adds its consequences ("...; rolled back N jobs;
 * restored M"): cut messages hide what the operator must know */
#define HR_ERRLEN 512
typedef struct hr_err {
    int code; /* 0: no error */
    char msg[HR_ERRLEN];
} hr_err;

/* hr_err_set formats msg into e (when e is not NULL) and returns -1. */
int hr_err_set(hr_err *e, const char *fmt, ...) HR_PRINTF(2, 3);
void hr_err_clear(hr_err *e);

/* ---- logging: one JSON object per line on stderr.
 * hr_log("info", "job sent", "job", id, "platform", p, NULL): key/value
 * string pairs after the message, ending with NULL. Values that look like
 * email addresses are masked (j***@example.com). A key written "#name"
 * gives name a JSON number when its value is an integer ("#attempt", "2"). */
typedef enum { HR_LOG_DEBUG, HR_LOG_INFO, HR_LOG_WARN, HR_LOG_ERROR } hr_log_level;
void hr_log_set_level(hr_log_level min);
/* hr_log_parse_level reads "debug", "info", "warn" or "error"; 0, or -1
 * for anything else. */
int hr_log_parse_level(const char *s, hr_log_level *out);
void hr_log_set_name(const char *process_name);
void hr_log(hr_log_level lvl, const char *msg, ...);
/* hr_log_redact registers a secret (8 bytes or more) that hr_log writes as
 * "[redacted]" wherever a "detail" or "error" value (the keys that carry a
 * platform's or Redis's own text) holds it: credentials, as loaded. */
void hr_log_redact(const char *secret);
/* hr_log_batch(1) makes hr_log keep whole lines in a buffer instead of
 * writing each at once: hr_log_flush writes them, and a line that would not
 * fit flushes first; each write is at most PIPE_BUF bytes of whole lines,
 * so processes sharing a pipe never mix lines. For a loop that flushes once
 * per iteration (a worker: one write for many sends); lines not flushed are
 * lost if the process dies. hr_log_batch(0) flushes and writes at once; a
 * process turns batching off before it forks (the pid is read once). */
void hr_log_batch(int on);
void hr_log_flush(void);
/* hr_mask_email writes a masked copy of s into out (size outlen): every
 * address-like run found in s ("<local part>@", the local part quoted,
 * commented or not ASCII too; the at sign also as %40, %2540, &#64;, &#x40;,
 * &commat;, U+FF20 or U+FE6B) keeps its domain and only its first character
 * (when printable ASCII). An at sign right after ':' or '/' (a lane's
 * "x:@shop", a profile URL) is no address. When unsure it masks more. */
void hr_mask_email(const char *s, char *out, size_t outlen);

/* ---- time */
int64_t hr_now_ms(void);       /* wall clock, ms since the Unix epoch */
int64_t hr_mono_ms(void);      /* monotonic clock, ms */
int64_t hr_mono_us(void);      /* monotonic clock, us */
/* hr_format_rfc3339 writes ms as "2026-11-21T20:40:16Z" (UTC, second
 * precision unless the ms part is non-zero) into out (>= 32 bytes). */
void hr_format_rfc3339(int64_t ms, char *out, size_t outlen);
/* hr_parse_rfc3339 parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)"; returns 0
 * and sets *ms, or -1. */
int hr_parse_rfc3339(const char *s, int64_t *ms);

/* ---- randomness and ids */
void hr_random_bytes(void *out, size_t n); /* from the kernel; aborts on failure */
uint64_t hr_random_u64(void);
/* hr_base62_fixed writes v as exactly width base62 digits (0-9A-Za-z, an
 * ASCII-ordered alphabet, so equal-width strings sort like the numbers). */
void hr_base62_fixed(uint64_t v, int width, char *out);

/* ---- small string helpers */
int hr_streq(const char *a, const char *b); /* NULL-safe */
/* hr_ct_equal compares n bytes in constant time; returns 1 when equal. */
int hr_ct_equal(const void *a, const void *b, size_t n);
/* hr_hex writes 2*n lowercase hex digits and a NUL into out. */
void hr_hex(const unsigned char *in, size_t n, char *out);
/* hr_parse_i64 parses a whole decimal string; returns 0 or -1. */
int hr_parse_i64(const char *s, int64_t *out);

/* ---- configuration: one file of "directive arg arg..." lines, as
 * redis.conf is written; '#' starts a comment, double quotes group words
 * and take \" \\ \n escapes. Each module reads the directives it owns.
 * Every single-valued directive may be overridden from the environment:
 * "redis-url" by HERALD_REDIS_URL. */
typedef struct hr_conf_line {
    char *key;
    int argc; /* arguments after the key */
    char **argv;
    int line; /* 1-based line number in the file */
} hr_conf_line;

typedef struct hr_config {
    char *path; /* NULL when no file was read */
    hr_conf_line *lines;
    int nlines;
} hr_config;

/* hr_config_load reads path (NULL: an empty config). Returns a new config or
 * NULL with "path:line: reason" in err. Free with hr_config_free. */
hr_config *hr_config_load(const char *path, hr_err *err);
/* hr_config_parse parses text as if read from the file named name. */
hr_config *hr_config_parse(const char *text, const char *name, hr_err *err);
void hr_config_free(hr_config *c);
/* hr_config_get returns the environment override, else the first argument of
 * the last line with that key, else def. The result is borrowed. */
const char *hr_config_get(const hr_config *c, const char *key, const char *def);
/* hr_config_get_i64 does the same for an integer; returns -1 with err set
 * ("path:line: key: not a number") on a bad value. */
int hr_config_get_i64(const hr_config *c, const char *key, int64_t def, int64_t *out,
                      hr_err *err);
/* hr_config_next returns the next line with that key after *pos (start with
 * *pos = -1), or NULL; used for repeated directives such as "account". */
const hr_conf_line *hr_config_next(const hr_config *c, const char *key, int *pos);

/* Every integer directive, with its default and the range a value must be
 * in: the one list the modules read them through and `config check` checks
 * them by, so a value a process would refuse never passes the check. */
typedef struct hr_int_directive {
    const char *key;
    int64_t def, min, max;
} hr_int_directive;
extern const hr_int_directive hr_int_directives[]; /* ends with a NULL key */
/* hr_config_int reads the integer directive key (it must be in
 * hr_int_directives): its value, else its default. Returns 0, or -1 with
 * "path:line: key: expected MIN..MAX, got V" (or "not a number") in err and
 * *out untouched. */
int hr_config_int(const hr_config *c, const char *key, int64_t *out, hr_err *err);

/* ---- systemd */
/* hr_notify sends a state line to systemd ("READY=1", "STOPPING=1",
 * "WATCHDOG=1", "STATUS=..."); outside systemd it does nothing. */
void hr_notify(const char *state);
/* hr_notify_watchdog_ms returns the watchdog interval systemd asks for, or
 * 0; a daemon pings WATCHDOG=1 at half of it. */
int64_t hr_notify_watchdog_ms(void);

/* ---- secrets and signed tokens */
/* hr_trim_end cuts s to its first n bytes less any trailing whitespace
 * (space, tab, CR, LF...), in place; returns the new length. */
size_t hr_trim_end(char *s, size_t n);
/* hr_key_file_read reads the secret in the file at path (at most 64 KiB)
 * with trailing whitespace removed: a new string, or NULL with "cannot open
 * PATH: reason", "PATH is a directory", "PATH: larger than 64 KiB" or
 * "PATH is empty" in err. optional:
 * a file that does not exist is NULL with err untouched (not configured).
 * warn (may be NULL) gets "PATH is open to group or others" when the
 * mode lets anyone but the owner read it; the caller reports or logs it. */
char *hr_key_file_read(const char *path, int optional, hr_err *warn, hr_err *err);
/* hr_secret_load returns the install's secret (new string, >= 16 bytes):
 * $HERALD_SECRET, else the file named by config "secret-file", else
 * $CREDENTIALS_DIRECTORY/herald-secret. NULL with err when there is none.
 * warn as hr_key_file_read's. A file's secret is its first 1023 bytes less
 * trailing CR, LF and spaces (tabs kept), as it always was. The secret keys unsubscribe tokens and the
 * suppression list. */
char *hr_secret_load(const hr_config *c, hr_err *warn, hr_err *err);
/* hr_hmac_sha256 writes the 32-byte HMAC of msg under key into out. */
void hr_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[32]);
/* hr_b64url_encode writes unpadded base64url of in into out (needs
 * 4*ceil(n/3)+1 bytes); hr_b64url_decode returns the decoded length, or -1
 * for anything but the canonical unpadded spelling (spare bits of the last
 * character set, padding, the other alphabet, whitespace). */
void hr_b64url_encode(const unsigned char *in, size_t n, char *out);
long hr_b64url_decode(const char *in, unsigned char *out, size_t outcap);

/* An unsubscribe token names a recipient and campaign (and the job), sealed
 * with AES-256-GCM under a key derived from the secret: opaque (the address
 * is not readable in the URL), authenticated (a forged or altered token
 * fails), base64url so it is safe in a URL path. */
typedef struct hr_unsub {
    char email[256];
    char campaign[128];
    char job[64];
} hr_unsub;
/* hr_unsub_token_make returns a new token string. */
char *hr_unsub_token_make(const char *secret, const hr_unsub *u);
/* hr_unsub_url returns the link to token under base, the public base URL of
 * `herald webhooks` (new string): "<base>/u/<token>". Trailing slashes are
 * dropped and a base that already ends in "/u" is not given a second one,
 * since `herald webhooks` serves /u/<token> at its root only. */
char *hr_unsub_url(const char *base, const char *token);
/* hr_unsub_token_verify opens the token (the GCM tag is checked by OpenSSL)
 * and fills u; returns 0, or -1 with the reason in err (forged, altered,
 * malformed). */
int hr_unsub_token_verify(const char *secret, const char *token, hr_unsub *u, hr_err *err);

#endif
