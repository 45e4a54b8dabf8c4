/* fire.c: outgoing HTTP POSTs from a libev loop through libcurl's multi
 * socket API (as curl's evhiperfifo example does). The sandbox fires its
 * engagement webhooks with it. It does not retry: the caller sees the
 * status and decides. */
#include <curl/curl.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct hook_fire {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    int running;
    struct xfer *xfers; /* in flight, so free can fail them */
};

typedef struct sockw {
    ev_io io;
    hook_fire *f;
    curl_socket_t fd;
} sockw;

typedef struct xfer {
    struct xfer *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    hook_fire_cb *cb;
    void *priv;
} xfer;

static void xfer_end(hook_fire *f, xfer *x, long status)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        f->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    curl_multi_remove_handle(f->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->body);
    if (x->cb) x->cb(status, x->priv);
    free(x);
}

static void check_done(hook_fire *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURL *e = m->easy_handle;
        xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        long status = 0;
        if (m->data.result == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        xfer_end(f, x, status);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    hook_fire *f = w->data;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &f->running);
    check_done(f);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    hook_fire *f = userp;
    ev_timer_stop(f->loop, &f->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&f->timer, timeout_ms / 1000.0, 0.);
        ev_timer_start(f->loop, &f->timer);
    }
    return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    sockw *s = (sockw *)w;
    hook_fire *f = s->f;
    int action =
        ((revents & EV_READ) ? CURL_CSELECT_IN : 0) | ((revents & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(f->multi, s->fd, action, &f->running);
    check_done(f);
    if (f->running <= 0) ev_timer_stop(loop, &f->timer);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    hook_fire *f = userp;
    sockw *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(f->loop, &s->io);
            free(s);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    int kind = ((what & CURL_POLL_IN) ? EV_READ : 0) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
    if (!s) {
        s = hr_calloc(1, sizeof *s);
        s->f = f;
        s->fd = fd;
        curl_multi_assign(f->multi, fd, s);
    } else {
        ev_io_stop(f->loop, &s->io);
    }
    ev_io_init(&s->io, on_io, fd, kind);
    ev_io_start(f->loop, &s->io);
    return 0;
}

hook_fire *hook_fire_new(struct ev_loop *loop)
{
    hook_fire *f = hr_calloc(1, sizeof *f);
    f->loop = loop;
    f->multi = curl_multi_init();
    ev_init(&f->timer, on_timer);
    f->timer.data = f;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    return f;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
    return sz * n;
}

void hook_fire_post(hook_fire *f, const char *url, const char *const *headers, const char *body,
                    size_t len, hook_fire_cb *cb, void *priv)
{
    xfer *x = hr_calloc(1, sizeof *x);
    x->cb = cb;
    x->priv = priv;
    x->body = hr_strndup(body, len);
    for (int i = 0; headers && headers[i]; i++)
        x->hdrs = curl_slist_append(x->hdrs, headers[i]);
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    CURL *e = curl_easy_init();
    x->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    x->next = f->xfers;
    if (f->xfers) f->xfers->prev = x;
    f->xfers = x;
    curl_multi_add_handle(f->multi, e);
}

int hook_fire_pending(const hook_fire *f)
{
    return f->running;
}

void hook_fire_free(hook_fire *f)
{
    if (!f) return;
    while (f->xfers)
        xfer_end(f, f->xfers, 0); /* callbacks see status 0 */
    ev_timer_stop(f->loop, &f->timer);
    curl_multi_cleanup(f->multi);
    free(f);
}
