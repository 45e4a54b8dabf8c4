/* smtpd.c: the server side of SMTP for the sandbox (RFC 5321's happy path
 * and its errors): greeting, EHLO/HELO, AUTH PLAIN and LOGIN (any
 * credentials: the sandbox checks nothing a relay would keep secret), MAIL,
 * RCPT, DATA (dot-unstuffed, size-capped), RSET, NOOP, QUIT. A message is
 * handed whole to the owner's callback, whose reply ends the DATA; nothing of
 * its content is parsed here. One ev_io per connection on the owner's loop. */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define SMTP_MAX_LINE 1000      /* RFC 5321 4.5.3.1.6, with CRLF */
#define SMTP_MAX_RCPT 100       /* 4.5.3.1.8 */
#define SMTP_IDLE_S 60.0

typedef enum { S_CMD, S_AUTH_USER, S_AUTH_PASS, S_AUTH_PLAIN, S_DATA } smtp_state;

typedef struct smtp_conn {
    struct hook_smtpd *d;
    int fd;
    ev_io rio, wio;
    ev_timer idle;
    smtp_state state;
    hr_buf in, out; /* what came and is not a whole line yet; what is to go */
    size_t out_off;
    int closing;    /* close once out is written */
    char *from;
    char **rcpt;
    int nrcpt;
    hr_buf data;
    int too_big;
    struct smtp_conn *prev, *next;
} smtp_conn;

struct hook_smtpd {
    struct ev_loop *loop;
    int fd, port;
    ev_io accept_io;
    hook_smtpd_fn *fn;
    void *priv;
    size_t max_size;
    smtp_conn *conns;
};

static void conn_close(smtp_conn *c);

static void reset_tx(smtp_conn *c)
{
    free(c->from);
    c->from = NULL;
    for (int i = 0; i < c->nrcpt; i++)
        free(c->rcpt[i]);
    free(c->rcpt);
    c->rcpt = NULL;
    c->nrcpt = 0;
    hr_buf_release(&c->data);
    hr_buf_init(&c->data);
    c->too_big = 0;
}

static void flush_out(smtp_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->d->loop, &c->wio);
            return;
        }
        conn_close(c);
        return;
    }
    ev_io_stop(c->d->loop, &c->wio);
    c->out.len = c->out_off = 0;
    if (c->closing) conn_close(c);
}

static void reply(smtp_conn *c, const char *line)
{
    hr_buf_puts(&c->out, line);
    hr_buf_puts(&c->out, "\r\n");
}

/* arg_addr returns the address inside <...> after "FROM:" / "TO:", or NULL */
static char *arg_addr(const char *arg)
{
    const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (!lt || !gt) return NULL;
    return hr_strndup(lt + 1, (size_t)(gt - lt - 1));
}

/* end_data answers the DATA; -1 when the owner dropped the connection (c
 * is gone) */
static int end_data(smtp_conn *c)
{
    char line[512] = "";
    if (c->too_big) {
        snprintf(line, sizeof line, "552 5.3.4 message exceeds %zu bytes", c->d->max_size);
    } else {
        hook_smtpd_msg m = {c->from, (const char *const *)c->rcpt, c->nrcpt,
                            c->data.data ? c->data.data : "", c->data.len};
        if (c->d->fn(c->d->priv, &m, line, sizeof line) < 0) {
            conn_close(c); /* the owner drops the connection: no answer at all */
            return -1;
        }
    }
    reply(c, line);
    reset_tx(c);
    c->state = S_CMD;
    return 0;
}

static int on_data_line(smtp_conn *c, const char *l, size_t n)
{
    if (n == 1 && l[0] == '.') return end_data(c);
    if (n && l[0] == '.') { /* transparency: a leading dot was doubled */
        l++;
        n--;
    }
    if (c->data.len + n + 2 > c->d->max_size) c->too_big = 1;
    if (c->too_big) return 0;
    hr_buf_append(&c->data, l, n);
    hr_buf_puts(&c->data, "\r\n");
    return 0;
}

/* on_command answers one command line; a reply that refuses leaves the
 * transaction as it was */
static void on_command(smtp_conn *c, char *l)
{
    char verb[8] = "";
    size_t vl = strcspn(l, " ");
    if (vl < sizeof verb) memcpy(verb, l, vl);
    const char *arg = l[vl] ? l + vl + 1 : "";
    const char *no = NULL; /* the refusal, if any */
    char *a = NULL;
    if (!strcasecmp(verb, "EHLO")) {
        reset_tx(c);
        char size[64];
        snprintf(size, sizeof size, "250-SIZE %zu", c->d->max_size);
        reply(c, "250-sandbox.invalid");
        reply(c, size);
        reply(c, "250-8BITMIME");
        reply(c, "250 AUTH PLAIN LOGIN");
    } else if (!strcasecmp(verb, "HELO")) {
        reset_tx(c);
        reply(c, "250 sandbox.invalid");
    } else if (!strcasecmp(verb, "AUTH")) {
        if (!strncasecmp(arg, "PLAIN ", 6)) {
            reply(c, "235 2.7.0 authenticated");
        } else if (!strcasecmp(arg, "PLAIN")) {
            c->state = S_AUTH_PLAIN;
            reply(c, "334 ");
        } else if (!strncasecmp(arg, "LOGIN", 5)) {
            c->state = S_AUTH_USER;
            reply(c, "334 VXNlcm5hbWU6"); /* "Username:" */
        } else {
            no = "504 5.5.4 unrecognized authentication type";
        }
    } else if (!strcasecmp(verb, "MAIL")) {
        a = !strncasecmp(arg, "FROM:", 5) ? arg_addr(arg + 5) : NULL;
        if (!a) no = "501 5.5.4 syntax: MAIL FROM:<address>";
        else if (c->from) no = "503 5.5.1 nested MAIL command";
        else {
            c->from = a;
            a = NULL;
            reply(c, "250 2.1.0 ok");
        }
    } else if (!strcasecmp(verb, "RCPT")) {
        a = !strncasecmp(arg, "TO:", 3) ? arg_addr(arg + 3) : NULL;
        if (!c->from) no = "503 5.5.1 need MAIL first";
        else if (!a || !strchr(a, '@')) no = "501 5.1.3 bad recipient address syntax";
        else if (c->nrcpt == SMTP_MAX_RCPT) no = "452 4.5.3 too many recipients";
        else {
            c->rcpt = hr_realloc(c->rcpt, sizeof *c->rcpt * (size_t)(c->nrcpt + 1));
            c->rcpt[c->nrcpt++] = a;
            a = NULL;
            reply(c, "250 2.1.5 ok");
        }
    } else if (!strcasecmp(verb, "DATA")) {
        if (!c->nrcpt) no = "503 5.5.1 need RCPT first";
        else {
            c->state = S_DATA;
            reply(c, "354 end data with <CR><LF>.<CR><LF>");
        }
    } else if (!strcasecmp(verb, "RSET")) {
        reset_tx(c);
        reply(c, "250 2.0.0 ok");
    } else if (!strcasecmp(verb, "NOOP")) {
        reply(c, "250 2.0.0 ok");
    } else if (!strcasecmp(verb, "QUIT")) {
        reply(c, "221 2.0.0 bye");
        c->closing = 1;
    } else {
        no = "500 5.5.2 command not recognized";
    }
    free(a);
    if (no) reply(c, no);
}

/* on_line takes one line without its CRLF; -1 when c is gone */
static int on_line(smtp_conn *c, char *l, size_t n)
{
    switch (c->state) {
    case S_DATA:
        return on_data_line(c, l, n);
    case S_AUTH_USER:
        c->state = S_AUTH_PASS;
        reply(c, "334 UGFzc3dvcmQ6"); /* "Password:" */
        break;
    case S_AUTH_PASS:
    case S_AUTH_PLAIN:
        c->state = S_CMD;
        reply(c, "235 2.7.0 authenticated");
        break;
    case S_CMD:
        if (n > SMTP_MAX_LINE - 2) reply(c, "500 5.5.6 line too long");
        else on_command(c, l);
        break;
    }
    return 0;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    smtp_conn *c = w->data;
    hr_buf_reserve(&c->in, 16384);
    ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return conn_close(c);
    if (n < 0) return;
    c->in.len += (size_t)n;
    ev_timer_again(loop, &c->idle);
    size_t start = 0;
    for (size_t i = 0; i < c->in.len; i++) {
        if (c->in.data[i] != '\n') continue;
        size_t end = i > start && c->in.data[i - 1] == '\r' ? i - 1 : i;
        c->in.data[end] = '\0';
        if (on_line(c, c->in.data + start, end - start) < 0) return;
        start = i + 1;
        if (c->closing) break;
    }
    if (!c->closing && c->in.len - start > 2 * 1024 * 1024) { /* a "line" with no end */
        reply(c, "500 5.5.6 line too long");
        c->closing = 1;
    }
    memmove(c->in.data, c->in.data + start, c->in.len - start);
    c->in.len -= start;
    flush_out(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    flush_out(w->data);
}

static void on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    smtp_conn *c = w->data;
    reply(c, "421 4.4.2 idle too long, closing");
    c->closing = 1;
    flush_out(c);
}

static void conn_close(smtp_conn *c)
{
    hook_smtpd *d = c->d;
    ev_io_stop(d->loop, &c->rio);
    ev_io_stop(d->loop, &c->wio);
    ev_timer_stop(d->loop, &c->idle);
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else d->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    reset_tx(c);
    hr_buf_release(&c->in);
    hr_buf_release(&c->out);
    hr_buf_release(&c->data);
    free(c);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    hook_smtpd *d = w->data;
    int fd = accept4(d->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    smtp_conn *c = hr_calloc(1, sizeof *c);
    c->d = d;
    c->fd = fd;
    hr_buf_init(&c->in);
    hr_buf_init(&c->out);
    hr_buf_init(&c->data);
    ev_io_init(&c->rio, on_readable, fd, EV_READ);
    ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
    ev_timer_init(&c->idle, on_idle, 0., SMTP_IDLE_S);
    c->rio.data = c->wio.data = c->idle.data = c;
    c->next = d->conns;
    if (d->conns) d->conns->prev = c;
    d->conns = c;
    ev_io_start(loop, &c->rio);
    ev_timer_again(loop, &c->idle);
    reply(c, "220 sandbox.invalid ESMTP herald sandbox");
    flush_out(c);
}

hook_smtpd *hook_smtpd_new(struct ev_loop *loop, const char *listen, size_t max_size,
                           hook_smtpd_fn *fn, void *priv, hr_err *err)
{
    int port = 0;
    hr_err lerr = {0};
    int fd = hook_listen(listen, &port, &lerr);
    if (fd < 0) {
        hr_err_set(err, "smtp: %s", lerr.msg);
        return NULL;
    }
    hook_smtpd *d = hr_calloc(1, sizeof *d);
    d->loop = loop;
    d->fd = fd;
    d->port = port;
    d->fn = fn;
    d->priv = priv;
    d->max_size = max_size ? max_size : 10 << 20;
    ev_io_init(&d->accept_io, on_accept, fd, EV_READ);
    d->accept_io.data = d;
    ev_io_start(loop, &d->accept_io);
    return d;
}

int hook_smtpd_port(const hook_smtpd *d) { return d->port; }

void hook_smtpd_free(hook_smtpd *d)
{
    if (!d) return;
    while (d->conns)
        conn_close(d->conns);
    ev_io_stop(d->loop, &d->accept_io);
    close(d->fd);
    free(d);
}
