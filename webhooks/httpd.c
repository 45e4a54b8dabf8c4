/* httpd.c: a small HTTP/1.1 server on libev: http-parser reads requests, we
 * own the sockets, buffers, limits and timers. A handler may answer later
 * (after an async Redis reply); reading pauses until it does.
 * No TLS, no chunked responses, no HTTP/2: herald sits behind a proxy. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

typedef struct hdr {
    size_t name, value; /* offsets in hook_req.hbuf of NUL-terminated text */
    size_t name_len;    /* lookups compare it first: most names differ in length */
} hdr;

typedef enum {
    C_READING,  /* waiting for / reading a request */
    C_HANDLING, /* the handler has the request */
    C_WRITING,  /* flushing the answer */
    C_LINGER,   /* answered and shut: reading and dropping what still comes */
} conn_state;

typedef struct conn conn;

struct hook_req {
    conn *c;
    hr_buf url;
    const char *path, *query; /* in url */
    /* every header's name and value, one after the other: one buffer a
     * connection reuses, not two allocations per header */
    hr_buf hbuf;
    hdr *hdrs;
    int nhdrs, caphdrs;
    int last_was_value;
    hr_buf body;
    hr_buf out_hdrs; /* extra response headers */
    char method[16];
    int keep_alive;
};

struct conn {
    hook_httpd *h;
    conn *prev, *next;
    int fd;
    ev_io rio, wio;
    ev_timer timer;
    ev_timer resume; /* parses more pipelined requests on the next loop turn */
    http_parser parser;
    conn_state state;
    int got_bytes; /* a request has started arriving */
    int too_large;
    int closing; /* close after the answer is written */
    int eof;     /* the peer closed its side */
    int dead;    /* the socket is gone; the handler still holds req */
    int parsing; /* conn_try_parse is on the stack: it goes on, frees */
    int freed;   /* closed while parsing: conn_try_parse frees it */
    int over;    /* accepted over the cap, to be answered 503 */
    int whole;   /* the request being answered was read to its end */
    size_t lingered; /* bytes dropped while lingering */
    char peer[64];
    hr_buf in; /* bytes read but not parsed (pipelined) */
    size_t in_off;
    hr_buf out;
    size_t out_off;
    hook_req req;
};

struct hook_httpd {
    struct ev_loop *loop;
    hook_httpd_opts o;
    int fd, port;
    ev_io accept_io;
    /* out of descriptors: accepting pauses until a connection closes or
     * accept_retry fires (the listening socket would stay readable and
     * the loop spin) */
    int accept_paused;
    int fd_warned; /* logged that; cleared by the next accept */
    ev_timer accept_retry;
    conn *conns;
    int nconns;
    int nover, over_max; /* connections over the cap, lingering after their 503 */
    int stopping;
    void (*stop_done)(void *);
    void *stop_priv;
    ev_idle stop_idle; /* calls stop_done outside the caller's stack */
    http_parser_settings settings;
};

static void conn_close(conn *c);
static void accept_resume(hook_httpd *h);
static void conn_try_parse(conn *c);
static void conn_linger(conn *c);

/* Requests of one connection answered in one go: the rest of a pipelined
 * batch waits for the next loop turn, so other clients get their turn. */
enum { PIPELINE_BURST = 32 };

/* A connection closed after its last answer lingers (conn_linger) for at
 * most this long or this many bytes. */
enum { LINGER_MS = 5000, LINGER_BYTES = 4 << 20 };

/* Descriptors kept for what is not a connection (Redis, logs, the loop,
 * the sandbox's clients), and how long accepting pauses when they ran out. */
enum { FD_RESERVE = 32, ACCEPT_RETRY_MS = 100 };

/* ------------------------------------------------------------ status */

const char *hook_status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

size_t hook_fmt_i64(char out[24], int64_t v)
{
    /* two digits a step, written in place once the length is known: it
     * runs a dozen times per webhook event (lengths in the Redis protocol,
     * the answer's numbers) */
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = 1;
    for (uint64_t t = u; t >= 10; t /= 10)
        n++;
    if (v < 0) *out++ = '-';
    char *p = out + n;
    *p = '\0';
    while (u >= 100) {
        const char *d = pairs + 2 * (u % 100);
        u /= 100;
        *--p = d[1];
        *--p = d[0];
    }
    if (u >= 10) {
        *--p = pairs[2 * u + 1];
        *--p = pairs[2 * u];
    } else {
        *--p = (char)('0' + u);
    }
    return n + (v < 0);
}

/* ----------------------------------------------------------- request */

static void req_reset(hook_req *r)
{
    hr_buf_reset(&r->url);
    hr_buf_reset(&r->hbuf);
    r->nhdrs = 0; /* the buffers stay for the connection's next request */
    r->last_was_value = 0;
    hr_buf_reset(&r->body);
    hr_buf_reset(&r->out_hdrs);
    r->path = NULL;
    r->query = NULL;
    r->method[0] = '\0';
    r->keep_alive = 0;
}

static void req_release(hook_req *r)
{
    req_reset(r);
    free(r->hdrs);
    hr_buf_release(&r->hbuf);
    hr_buf_release(&r->url);
    hr_buf_release(&r->body);
    hr_buf_release(&r->out_hdrs);
}

const char *hook_req_method(const hook_req *r)
{
    return r->method;
}
const char *hook_req_path(const hook_req *r)
{
    return r->path ? r->path : "/";
}
const char *hook_req_query(const hook_req *r)
{
    return r->query ? r->query : "";
}
const char *hook_req_peer(const hook_req *r)
{
    return r->c->peer;
}

const char *hook_req_header(const hook_req *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nhdrs; i++)
        if (r->hdrs[i].name_len == n && strcasecmp(r->hbuf.data + r->hdrs[i].name, name) == 0)
            return r->hbuf.data + r->hdrs[i].value;
    return NULL;
}

const char *hook_req_body(const hook_req *r, size_t *len)
{
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

char *hook_url_decode(const char *q, size_t n)
{
    char *out = hr_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)q[i];
        if (ch == '+')
            ch = ' ';
        else if (ch == '%' && i + 2 < n && hexval(q[i + 1]) >= 0 && hexval(q[i + 2]) >= 0) {
            ch = hexval(q[i + 1]) * 16 + hexval(q[i + 2]);
            i += 2;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

char *hook_form_value(const char *form, size_t len, const char *name)
{
    const char *q = form, *end = form + len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        size_t seg = amp ? (size_t)(amp - q) : (size_t)(end - q);
        const char *eq = memchr(q, '=', seg);
        if (eq) {
            char *k = hook_url_decode(q, (size_t)(eq - q));
            int match = strcmp(k, name) == 0;
            free(k);
            if (match) return hook_url_decode(eq + 1, seg - (size_t)(eq - q) - 1);
        }
        if (!amp) break;
        q = amp + 1;
    }
    return NULL;
}

int hook_req_query_param(const hook_req *r, const char *name, char *out, size_t outlen)
{
    const char *q = hook_req_query(r);
    char *v = hook_form_value(q, strlen(q), name);
    if (!v) return -1;
    int rc = strlen(v) < outlen ? 0 : -1;
    if (rc == 0) memcpy(out, v, strlen(v) + 1);
    free(v);
    return rc;
}

void hook_req_add_header(hook_req *r, const char *name, const char *value)
{
    hr_buf_printf(&r->out_hdrs, "%s: %s\r\n", name, value);
}

/* ------------------------------------------------------------ timers */

static void conn_arm(conn *c, int ms)
{
    ev_timer_stop(c->h->loop, &c->timer);
    if (ms <= 0) return;
    ev_timer_set(&c->timer, ms / 1000.0, 0.);
    ev_timer_start(c->h->loop, &c->timer);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn *c = w->data;
    /* Slow or idle client: drop it. A request the handler holds is not
     * timed (its own deadline is the handler's business). */
    if (c->state != C_HANDLING) conn_close(c);
}

/* ------------------------------------------------------------ writing */

static void write_some(conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->h->loop, &c->wio);
            conn_arm(c, c->h->o.idle_timeout_ms);
            return;
        }
        conn_close(c);
        return;
    }
    ev_io_stop(c->h->loop, &c->wio);
    hr_buf_reset(&c->out);
    c->out_off = 0;
    if (c->state == C_WRITING) {
        if (c->closing || c->h->stopping) {
            /* only a client that may still be sending needs the lingering
             * close; one whose request was read whole is closed at once */
            if (c->over || !c->whole || c->in_off < c->in.len) conn_linger(c);
            else conn_close(c);
            return;
        }
        c->state = C_READING;
        c->got_bytes = 0;
        c->whole = 0;
        req_reset(&c->req);
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
        conn_arm(c, c->h->o.idle_timeout_ms);
        if (!c->eof) ev_io_start(c->h->loop, &c->rio);
        /* pipelined bytes already read; when the answer was given from
         * inside conn_try_parse, that call goes on instead (no recursion) */
        conn_try_parse(c);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    write_some(w->data);
}

static void on_linger(struct ev_loop *loop, ev_io *w, int revents)
{
    conn *c = w->data;
    char drop[16384];
    for (;;) {
        ssize_t n = recv(c->fd, drop, sizeof drop, 0);
        if (n > 0) {
            c->lingered += (size_t)n;
            if (c->lingered > LINGER_BYTES) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        break; /* the client is done (or gone) */
    }
    conn_close(c);
}

/* conn_linger ends a connection whose last answer is written. The client may
 * still be sending (a body over the limit, a request to a full server), and
 * a close with unread bytes makes the kernel reset the connection, which
 * destroys the answer before the client reads it: the provider sees a reset
 * and retries for ever. So our side is shut and what comes is dropped until
 * the client closes, LINGER_BYTES or LINGER_MS (or the idle timeout if
 * shorter) pass: nginx's lingering close. It still counts as a connection. */
static void conn_linger(conn *c)
{
    hook_httpd *h = c->h;
    if (c->eof || shutdown(c->fd, SHUT_WR) != 0) { /* it sends nothing more */
        conn_close(c);
        return;
    }
    c->state = C_LINGER;
    hr_buf_reset(&c->in);
    c->in_off = 0;
    ev_timer_stop(h->loop, &c->resume);
    ev_set_cb(&c->rio, on_linger);
    ev_io_start(h->loop, &c->rio);
    conn_arm(c, h->o.idle_timeout_ms < LINGER_MS ? h->o.idle_timeout_ms : LINGER_MS);
}

static void conn_answer(conn *c, int status, const char *ctype, const void *body, size_t len,
                        const char *extra)
{
    int keep = c->req.keep_alive && !c->closing && !c->h->stopping && status != 413 &&
               status != 400 && status != 408;
    if (!keep) c->closing = 1;
    /* no printf: formatting showed in the profile of small answers */
    hr_buf *o = &c->out;
    char num[24];
    hr_buf_puts(o, "HTTP/1.1 ");
    hr_buf_append(o, num, hook_fmt_i64(num, status));
    hr_buf_putc(o, ' ');
    hr_buf_puts(o, hook_status_text(status));
    hr_buf_puts(o, "\r\nContent-Length: ");
    hr_buf_append(o, num, hook_fmt_i64(num, (int64_t)len));
    hr_buf_puts(o, keep ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    if (ctype) {
        hr_buf_puts(o, "Content-Type: ");
        hr_buf_puts(o, ctype);
        hr_buf_puts(o, "\r\n");
    }
    if (extra) hr_buf_puts(&c->out, extra);
    hr_buf_puts(&c->out, "\r\n");
    if (len && strcmp(c->req.method, "HEAD") != 0) hr_buf_append(&c->out, body, len);
    c->state = C_WRITING;
    write_some(c);
}

static void conn_free(conn *c)
{
    if (c->parsing) { /* conn_try_parse, on the stack, still reads c */
        c->freed = 1;
        return;
    }
    req_release(&c->req);
    hr_buf_release(&c->in);
    hr_buf_release(&c->out);
    free(c);
}

void hook_req_respond(hook_req *r, int status, const char *ctype, const void *body, size_t len)
{
    conn *c = r->c;
    if (c->dead) { /* the client went away while we worked */
        conn_free(c);
        return;
    }
    if (c->state != C_HANDLING) return; /* BUG guard: a second answer is ignored */
    conn_answer(c, status, ctype, body, len, c->req.out_hdrs.data);
}

void hook_req_respond_json(hook_req *r, int status, const char *json)
{
    hook_req_respond(r, status, "application/json", json, strlen(json));
}

void hook_req_drop(hook_req *r)
{
    conn *c = r->c;
    if (c->dead) {
        conn_free(c);
        return;
    }
    c->state = C_READING; /* the request is over: close frees the connection */
    conn_close(c);
}

/* ------------------------------------------------------------ parsing */

static int p_begin(http_parser *p)
{
    conn *c = p->data;
    req_reset(&c->req);
    c->too_large = 0;
    return 0;
}

static int p_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->req.url.len + n > 8192) return -1;
    hr_buf_append(&c->req.url, at, n);
    return 0;
}

static int p_field(http_parser *p, const char *at, size_t n)
{
    hook_req *r = &((conn *)p->data)->req;
    if (r->nhdrs == 0 || r->last_was_value) {
        if (r->nhdrs >= 100) return -1;
        if (r->nhdrs == r->caphdrs) {
            r->caphdrs = r->caphdrs ? r->caphdrs * 2 : 16;
            r->hdrs = hr_realloc(r->hdrs, sizeof *r->hdrs * (size_t)r->caphdrs);
        }
        if (r->nhdrs) hr_buf_putc(&r->hbuf, '\0'); /* ends the last value */
        hdr *hd = &r->hdrs[r->nhdrs++];
        hd->name = r->hbuf.len;
        hd->value = 0;
        hd->name_len = 0;
        r->last_was_value = 0;
    }
    if (r->hbuf.len - r->hdrs[r->nhdrs - 1].name + n > 256) return -1;
    hr_buf_append(&r->hbuf, at, n);
    return 0;
}

static int p_value(http_parser *p, const char *at, size_t n)
{
    hook_req *r = &((conn *)p->data)->req;
    if (r->nhdrs == 0) return -1;
    hdr *hd = &r->hdrs[r->nhdrs - 1];
    if (!r->last_was_value) {
        hd->name_len = r->hbuf.len - hd->name;
        hr_buf_putc(&r->hbuf, '\0'); /* ends the name */
        hd->value = r->hbuf.len;
        r->last_was_value = 1;
    }
    if (r->hbuf.len - hd->value + n > 8192) return -1;
    hr_buf_append(&r->hbuf, at, n);
    return 0;
}

static int p_headers_done(http_parser *p)
{
    conn *c = p->data;
    hook_req *r = &c->req;
    const char *m = http_method_str(p->method);
    size_t ml = strlen(m);
    if (ml >= sizeof r->method) ml = sizeof r->method - 1;
    memcpy(r->method, m, ml);
    r->method[ml] = '\0';
    if (r->nhdrs) {
        if (!r->last_was_value) { /* a header without a value */
            r->hdrs[r->nhdrs - 1].name_len = r->hbuf.len - r->hdrs[r->nhdrs - 1].name;
            hr_buf_putc(&r->hbuf, '\0');
            r->hdrs[r->nhdrs - 1].value = r->hbuf.len;
        }
        hr_buf_putc(&r->hbuf, '\0');
    }
    struct http_parser_url u;
    http_parser_url_init(&u);
    hr_buf_puts(&r->url, "");
    if (http_parser_parse_url(r->url.data, r->url.len, 0, &u) != 0) return -1;
    /* path and query end where '?' or '#' or the URL did: NUL-terminated
     * in place */
    if (u.field_set & (1 << UF_QUERY)) {
        r->query = r->url.data + u.field_data[UF_QUERY].off;
        r->url.data[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
    }
    if (u.field_set & (1 << UF_PATH)) {
        r->path = r->url.data + u.field_data[UF_PATH].off;
        r->url.data[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0';
    }
    if (p->flags & F_CONTENTLENGTH && p->content_length > c->h->o.max_body) {
        c->too_large = 1;
        return -1;
    }
    const char *expect = hook_req_header(r, "Expect");
    if (expect && strcasecmp(expect, "100-continue") == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        /* best effort: the client sends the body anyway after a delay */
        if (send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL) < 0) { /* ignored */
        }
    }
    return 0;
}

static int p_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->req.body.len + n > c->h->o.max_body) {
        c->too_large = 1;
        return -1;
    }
    hr_buf_append(&c->req.body, at, n);
    return 0;
}

static int p_done(http_parser *p)
{
    conn *c = p->data;
    c->req.keep_alive = http_should_keep_alive(p);
    hr_buf_puts(&c->req.body, ""); /* NUL-terminate even when empty */
    c->whole = 1;
    c->state = C_HANDLING;
    http_parser_pause(p, 1);
    return 0;
}

static void settings_init(http_parser_settings *s)
{
    memset(s, 0, sizeof *s);
    s->on_message_begin = p_begin;
    s->on_url = p_url;
    s->on_header_field = p_field;
    s->on_header_value = p_value;
    s->on_headers_complete = p_headers_done;
    s->on_body = p_body;
    s->on_message_complete = p_done;
}

int hook_httpd_parse(const char *data, size_t len, size_t max_body, hook_parsed_fn *fn,
                     void *priv)
{
    hook_httpd h = {.fd = -1, .o.max_body = max_body ? max_body : 1 << 20};
    settings_init(&h.settings);
    conn *c = hr_calloc(1, sizeof *c);
    c->h = &h;
    c->fd = -1; /* an Expect: 100-continue answer fails quietly, as to a gone client */
    c->req.c = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    int n = 0;
    size_t off = 0;
    while (off < len) {
        off += http_parser_execute(&c->parser, &h.settings, data + off, len - off);
        if (c->state != C_HANDLING) {
            if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) n = -1;
            break; /* refused (400, 413), or all read */
        }
        fn(&c->req, priv);
        n++;
        if (!c->req.keep_alive) break; /* the server closes here */
        /* as write_some after a keep-alive answer */
        c->state = C_READING;
        req_reset(&c->req);
        http_parser_init(&c->parser, HTTP_REQUEST);
        c->parser.data = c;
    }
    req_release(&c->req);
    free(c);
    return n;
}

/* conn_try_parse feeds the unparsed bytes to the parser and hands a complete
 * request to the handler. */
static void conn_try_parse(conn *c)
{
    if (c->parsing) return; /* an answer given from the handler below */
    c->parsing = 1;
    int handed = 0;
    while (c->state == C_READING && c->in_off < c->in.len) {
        if (handed == PIPELINE_BURST) {
            ev_timer_start(c->h->loop, &c->resume);
            break;
        }
        size_t avail = c->in.len - c->in_off;
        if (!c->got_bytes) {
            c->got_bytes = 1;
            conn_arm(c, c->h->o.request_timeout_ms);
        }
        size_t used =
            http_parser_execute(&c->parser, &c->h->settings, c->in.data + c->in_off, avail);
        c->in_off += used;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (c->state == C_HANDLING) {
            if (e == HPE_PAUSED) http_parser_pause(&c->parser, 0);
            /* compact the input buffer: pipelined bytes stay */
            if (c->in_off == c->in.len) {
                hr_buf_reset(&c->in);
                c->in_off = 0;
            }
            /* rio stays on: a client waits for its answer and sends
             * nothing, and stopping and restarting it would cost an
             * epoll_ctl per request (on_readable buffers what comes) */
            ev_timer_stop(c->h->loop, &c->timer);
            handed++;
            /* a synchronous answer puts c back in C_READING: loop */
            c->h->o.handler(&c->req, c->h->o.priv);
            if (c->freed) break;
            continue;
        }
        if (e != HPE_OK) {
            c->state = C_HANDLING;
            c->closing = 1;
            if (c->too_large) {
                static const char msg[] = "{\"error\":\"request body too large\"}";
                conn_answer(c, 413, "application/json", msg, sizeof msg - 1, NULL);
            } else {
                static const char msg[] = "{\"error\":\"malformed request\"}";
                conn_answer(c, 400, "application/json", msg, sizeof msg - 1, NULL);
            }
            break;
        }
    }
    c->parsing = 0;
    if (c->freed) {
        conn_free(c);
        return;
    }
    if (c->in_off == c->in.len) {
        hr_buf_reset(&c->in);
        c->in_off = 0;
    }
    if (c->state != C_READING) return;
    if (c->eof && c->in_off == c->in.len) {
        conn_close(c); /* all it asked is answered */
        return;
    }
    /* reading stopped when the client was far ahead; go on once parsed */
    if (!c->eof && c->in.len - c->in_off <= c->h->o.max_body + 65536)
        ev_io_start(c->h->loop, &c->rio);
}

static void on_resume(struct ev_loop *loop, ev_timer *w, int revents)
{
    conn_try_parse(w->data);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    conn *c = w->data;
    for (;;) {
        if (c->in.len - c->in_off > c->h->o.max_body + 65536) {
            /* a pipelining client far ahead of its answers: parse and
             * answer first (write_some or conn_try_parse read on) */
            ev_io_stop(loop, &c->rio);
            break;
        }
        hr_buf_reserve(&c->in, 16384);
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            if ((size_t)n < 16384) break;
            continue;
        }
        if (n == 0) { /* peer closed its side */
            if (c->state == C_READING && c->in_off == c->in.len) {
                conn_close(c);
                return;
            }
            /* answer what it asked, pipelined requests not yet parsed
             * too, then close */
            c->eof = 1;
            ev_io_stop(loop, &c->rio);
            break;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        conn_close(c);
        return;
    }
    conn_try_parse(c);
}

/* ------------------------------------------------------- connections */

static void conn_close(conn *c)
{
    hook_httpd *h = c->h;
    ev_io_stop(h->loop, &c->rio);
    ev_io_stop(h->loop, &c->wio);
    ev_timer_stop(h->loop, &c->timer);
    ev_timer_stop(h->loop, &c->resume);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    h->nconns--;
    if (c->over) h->nover--;
    if (h->accept_paused) accept_resume(h); /* a descriptor is free */
    if (c->state == C_HANDLING)
        c->dead = 1; /* freed by the handler's answer */
    else
        conn_free(c);
    if (h->stopping && h->nconns == 0 && h->stop_done) ev_idle_start(h->loop, &h->stop_idle);
}

/* conn_new takes accepted fd (peer ss) into h's connections; reading is
 * not started. */
static conn *conn_new(hook_httpd *h, int fd, const struct sockaddr_storage *ss)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = hr_calloc(1, sizeof *c);
    c->h = h;
    c->fd = fd;
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, c->peer, sizeof c->peer);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, c->peer,
                  sizeof c->peer);
    c->req.c = c;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_init(&c->timer, on_timer);
    ev_timer_init(&c->resume, on_resume, 0., 0.);
    c->rio.data = c->wio.data = c->timer.data = c->resume.data = c;
    c->next = h->conns;
    if (h->conns) h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    return c;
}

static void accept_resume(hook_httpd *h)
{
    h->accept_paused = 0;
    ev_timer_stop(h->loop, &h->accept_retry);
    if (!h->stopping) ev_io_start(h->loop, &h->accept_io);
}

static void on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    accept_resume(w->data);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    hook_httpd *h = w->data;
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(h->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == ECONNABORTED) continue;
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
            /* the connection stays in the backlog; the listening socket
             * stays readable, so waiting for it would spin */
            if (!h->fd_warned)
                hr_log(HR_LOG_WARN, "httpd: cannot accept, waiting for a connection to close",
                       "error", strerror(errno), NULL);
            h->fd_warned = 1;
            h->accept_paused = 1;
            ev_io_stop(loop, w);
            ev_timer_set(&h->accept_retry, ACCEPT_RETRY_MS / 1000.0, 0.);
            ev_timer_start(loop, &h->accept_retry);
            return;
        }
        if (fd < 0) return; /* EAGAIN: all taken */
        h->fd_warned = 0;
        if (h->nconns - h->nover >= h->o.max_conns) {
            if (h->nover < h->over_max) {
                /* answered like any closing connection, so it lingers: a
                 * client that sent its request reads the 503, not a reset */
                conn *c = conn_new(h, fd, &ss);
                c->over = 1;
                h->nover++;
                conn_answer(c, 503, NULL, NULL, 0, "Retry-After: 1\r\n");
                continue;
            }
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\nRetry-After: 1\r\n\r\n";
            if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0) { /* best effort */
            }
            close(fd);
            continue;
        }
        conn *c = conn_new(h, fd, &ss);
        ev_io_start(loop, &c->rio);
        conn_arm(c, h->o.idle_timeout_ms);
    }
}

static void on_stop_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    hook_httpd *h = w->data;
    ev_idle_stop(loop, w);
    void (*done)(void *) = h->stop_done;
    h->stop_done = NULL;
    if (done) done(h->stop_priv);
}

/* fd_budget makes room for h's connections: the soft RLIMIT_NOFILE is
 * raised toward the hard one as needed (systemd's soft default is 1024,
 * which 1024 connections exceed), and where that is not enough max_conns
 * is lowered, so that the cap answers 503 before accept runs out of
 * descriptors. */
static void fd_budget(hook_httpd *h)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return;
    rlim_t want = (rlim_t)h->o.max_conns + (rlim_t)h->over_max + FD_RESERVE;
    if (rl.rlim_cur < want) {
        struct rlimit up = {rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max,
                            rl.rlim_max};
        if (up.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0) rl.rlim_cur = up.rlim_cur;
    }
    if (rl.rlim_cur >= want) return;
    int avail = rl.rlim_cur > FD_RESERVE + 2 ? (int)(rl.rlim_cur - FD_RESERVE) : 2;
    h->over_max = avail / 17 > 0 ? avail / 17 : 1;
    h->o.max_conns = avail - h->over_max;
    char lim[24], cap[24];
    hook_fmt_i64(lim, (int64_t)rl.rlim_cur);
    hook_fmt_i64(cap, h->o.max_conns);
    hr_log(HR_LOG_WARN, "httpd: too few file descriptors for the connection cap, lowered",
           "max_conns", cap, "rlimit_nofile", lim, NULL);
}

static int split_listen(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon) {
        snprintf(host, hostlen, "127.0.0.1");
        if ((size_t)snprintf(port, portlen, "%s", addr) >= portlen) return -1;
        return 0;
    }
    size_t hl = (size_t)(colon - addr);
    if (hl >= hostlen) return -1;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[') { /* [::1]:8080 */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (!host[0]) snprintf(host, hostlen, "0.0.0.0");
    if ((size_t)snprintf(port, portlen, "%s", colon + 1) >= portlen) return -1;
    return 0;
}

int hook_listen(const char *addr, int *port_out, hr_err *err)
{
    char host[256], port[16];
    if (split_listen(addr, host, sizeof host, port, sizeof port) != 0)
        return hr_err_set(err, "bad listen address \"%s\"", addr);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) return hr_err_set(err, "%s: %s", addr, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
        hr_err_set(err, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

hook_httpd *hook_httpd_new(struct ev_loop *loop, const hook_httpd_opts *o, hr_err *err)
{
    int port = 0;
    hr_err lerr = {0};
    int fd = hook_listen(o->listen ? o->listen : "127.0.0.1:0", &port, &lerr);
    if (fd < 0) {
        hr_err_set(err, "httpd: %s", lerr.msg);
        return NULL;
    }
    hook_httpd *h = hr_calloc(1, sizeof *h);
    h->loop = loop;
    h->o = *o;
    if (!h->o.max_body) h->o.max_body = 1 << 20;
    if (!h->o.request_timeout_ms) h->o.request_timeout_ms = 10000;
    if (!h->o.idle_timeout_ms) h->o.idle_timeout_ms = 30000;
    if (!h->o.max_conns) h->o.max_conns = 1024;
    h->over_max = h->o.max_conns / 16 + 1 < 64 ? h->o.max_conns / 16 + 1 : 64;
    fd_budget(h);
    h->o.listen = NULL; /* not kept: borrowed */
    h->fd = fd;
    h->port = port;
    settings_init(&h->settings);
    ev_io_init(&h->accept_io, on_accept, fd, EV_READ);
    h->accept_io.data = h;
    ev_io_start(loop, &h->accept_io);
    ev_timer_init(&h->accept_retry, on_accept_retry, 0., 0.);
    h->accept_retry.data = h;
    ev_idle_init(&h->stop_idle, on_stop_idle);
    h->stop_idle.data = h;
    return h;
}

int hook_httpd_port(const hook_httpd *h)
{
    return h->port;
}
int hook_httpd_conns(const hook_httpd *h)
{
    return h->nconns;
}

void hook_httpd_stop(hook_httpd *h, void (*done)(void *priv), void *priv)
{
    h->stopping = 1;
    h->stop_done = done;
    h->stop_priv = priv;
    ev_io_stop(h->loop, &h->accept_io);
    ev_timer_stop(h->loop, &h->accept_retry);
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    /* idle connections go now; busy ones close after their answer */
    for (conn *c = h->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == C_READING && !c->got_bytes) conn_close(c);
    }
    if (h->nconns == 0 && done) ev_idle_start(h->loop, &h->stop_idle);
}

void hook_httpd_free(hook_httpd *h)
{
    if (!h) return;
    ev_io_stop(h->loop, &h->accept_io);
    ev_timer_stop(h->loop, &h->accept_retry);
    h->accept_paused = 0; /* closing the connections must not resume it */
    ev_idle_stop(h->loop, &h->stop_idle);
    h->stop_done = NULL;
    while (h->conns) {
        conn *c = h->conns;
        int held = c->state == C_HANDLING;
        conn_close(c);
        if (held) conn_free(c); /* nobody may answer it after free */
    }
    if (h->fd >= 0) close(h->fd);
    free(h);
}
