/* http.c: libcurl's multi-socket API driven by libev: one ev_io per socket
 * curl asks about, one ev_timer for curl's timeout, connections kept alive
 * per host and a shared DNS + TLS session cache. It neither builds requests
 * nor reads answers' meaning (platforms/ does). */
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* curl looks for a reusable connection by walking every connection it has
 * to the host, so one multi handle with 512 connections to one API spends
 * its time searching. Requests are spread over shards of at most
 * SHARD_CONNS connections each; they share DNS and TLS sessions. */
#define SHARD_CONNS 32

typedef struct wk_shard {
    struct wk_http *h;
    CURLM *multi;
    ev_timer timer;
    int running;
    int added; /* handles added since curl last ran its timers */
} wk_shard;

struct wk_http {
    struct ev_loop *loop;
    wk_shard *shards;
    int nshards;
    CURLSH *share;
    int running; /* requests started and not yet called back */
    wk_req *active; /* those requests, a doubly linked list */
    wk_req *failed; /* refused by curl: called back from fail_timer */
    ev_timer fail_timer;
    wk_req *free_list;
    int nfree;
    struct wk_sock *free_socks; /* curl gives a pooled connection's socket
                                 * back after each request: reused, not freed */
};

/* One watched socket. */
typedef struct wk_sock {
    ev_io io;
    curl_socket_t fd;
    wk_shard *sh;
    struct wk_sock *next_free;
} wk_sock;

static void check_done(wk_shard *sh);

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    wk_sock *s = (wk_sock *)w;
    wk_shard *sh = s->sh; /* s may be freed by curl inside socket_action */
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                 (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int still;
    curl_multi_socket_action(sh->multi, s->fd, action, &still);
    check_done(sh);
}

static void finish(wk_req *r, CURLcode rc);

static void on_fail_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_http *h = w->data;
    while (h->failed) {
        wk_req *r = h->failed;
        h->failed = r->next_free;
        r->next_free = NULL;
        finish(r, CURLE_FAILED_INIT);
    }
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    wk_shard *sh = w->data;
    int still;
    sh->added = 0;
    curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &still);
    check_done(sh);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
    wk_shard *sh = userp;
    wk_http *h = sh->h;
    wk_sock *s = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(h->loop, &s->io);
            s->next_free = h->free_socks;
            h->free_socks = s;
        }
        curl_multi_assign(sh->multi, fd, NULL);
        return 0;
    }
    int ev = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!s) {
        s = h->free_socks ? h->free_socks : hr_calloc(1, sizeof *s);
        h->free_socks = s->next_free;
        s->next_free = NULL;
        s->fd = fd;
        s->sh = sh;
        curl_multi_assign(sh->multi, fd, s);
    } else if ((s->io.events & (EV_READ | EV_WRITE)) == ev) {
        return 0; /* watched as asked already: restarting costs an epoll_ctl */
    } else {
        ev_io_stop(h->loop, &s->io);
    }
    ev_io_init(&s->io, on_io, fd, ev);
    ev_io_start(h->loop, &s->io);
    return 0;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    wk_shard *sh = userp;
    struct ev_loop *loop = sh->h->loop;
    ev_timer_stop(loop, &sh->timer);
    if (timeout_ms >= 0) {
        /* 0 means "as soon as possible": the next loop iteration, never from
         * inside this callback (curl forbids re-entry). */
        ev_timer_set(&sh->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(loop, &sh->timer);
    }
    return 0;
}

wk_http *wk_http_new(struct ev_loop *loop, int max_conns)
{
    static int global_done;
    if (!global_done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        global_done = 1;
    }
    wk_http *h = hr_calloc(1, sizeof *h);
    h->loop = loop;
    h->share = curl_share_init();
    if (!h->share) {
        fprintf(stderr, "herald: curl: out of memory\n");
        abort();
    }
    /* One process, one thread: no share locks needed. */
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if (max_conns <= 0) max_conns = 256;
    h->nshards = (max_conns + SHARD_CONNS - 1) / SHARD_CONNS;
    h->shards = hr_calloc((size_t)h->nshards, sizeof *h->shards);
    for (int i = 0; i < h->nshards; i++) {
        wk_shard *sh = &h->shards[i];
        sh->h = h;
        sh->multi = curl_multi_init();
        if (!sh->multi) {
            fprintf(stderr, "herald: curl: out of memory\n");
            abort();
        }
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_SOCKETDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(sh->multi, CURLMOPT_TIMERDATA, sh);
        curl_multi_setopt(sh->multi, CURLMOPT_MAXCONNECTS, (long)SHARD_CONNS + 8);
        curl_multi_setopt(sh->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
        ev_timer_init(&sh->timer, on_timer, 0., 0.);
        sh->timer.data = sh;
    }
    ev_timer_init(&h->fail_timer, on_fail_timer, 0., 0.);
    h->fail_timer.data = h;
    return h;
}

size_t wk_collect_body(char *p, size_t size, size_t n, void *ud)
{
    wk_req *r = ud;
    /* Platform answers are small; a runaway body is cut, not buffered. */
    if (r->resp_body.len + size * n > 4 << 20) return 0;
    hr_buf_append(&r->resp_body, p, size * n);
    return size * n;
}

size_t wk_collect_header(char *p, size_t size, size_t n, void *ud)
{
    wk_req *r = ud;
    /* The request is out and the answer has begun: the platform has acted. */
    if (r->resp_headers.len == 0) worker_crash_point("during_send");
    /* A new status line starts a new response (100-continue, redirects):
     * keep only the last one's headers. */
    if (n * size >= 5 && strncmp(p, "HTTP/", 5) == 0) hr_buf_reset(&r->resp_headers);
    if (r->resp_headers.len + size * n > 64 << 10) return 0;
    hr_buf_append(&r->resp_headers, p, size * n);
    return size * n;
}

/* before_send runs as curl is about to send r's request, and again when it
 * would send it once more by itself: when a kept-alive connection dies
 * before any answer, curl sends the request again on a new connection
 * without telling us, and a platform that acted on the first would post
 * twice. Only a GET, or a request none of whose bytes went out, may go
 * again; otherwise the transfer fails, maybe sent (outcome unknown). */
static int before_send(void *ud, char *ip, char *local_ip, int port, int local_port)
{
    wk_req *r = ud;
    if (r->sends++ == 0 || r->resend_ok) return CURL_PREREQFUNC_OK;
    long out = 0; /* the request bytes sent so far, by every try */
    curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &out);
    if (out == 0) return CURL_PREREQFUNC_OK;
    r->resend_refused = 1;
    return CURL_PREREQFUNC_ABORT;
}

/* easy_defaults gives a handle the settings every request of the engine
 * shares, once per handle (curl_easy_setopt copies strings and parses
 * protocol lists: too dear to redo per request). r's address is stable for
 * the handle's life, so the callbacks' data are set here too. */
static void easy_defaults(wk_http *h, wk_req *r)
{
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, wk_collect_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, wk_collect_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, before_send);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_SHARE, h->share);
    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, 300L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Answers are small: a 1 KiB receive buffer instead of 16 KiB keeps a
     * worker with 512 sends in flight small. */
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "herald/0.1");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    r->easy_dirty = 0;
}

wk_req *wk_req_new(wk_http *h)
{
    wk_req *r = h->free_list;
    if (r) {
        h->free_list = r->next_free;
        h->nfree--;
        r->next_free = NULL;
        r->rc = CURLE_OK;
        r->status = 0;
        r->latency_us = 0;
        r->maybe_sent = 0;
        r->timeout_ms = 0;
        r->errbuf[0] = '\0';
        hr_buf_reset(&r->resp_body);
        hr_buf_reset(&r->resp_headers);
        if (r->easy_dirty) {
            curl_easy_reset(r->easy);
            easy_defaults(h, r);
        }
    } else {
        r = hr_calloc(1, sizeof *r);
        hr_buf_init(&r->resp_body);
        hr_buf_init(&r->resp_headers);
        hr_buf_init(&r->hdr_lines);
        r->easy = curl_easy_init();
        if (!r->easy) {
            fprintf(stderr, "herald: curl: out of memory\n");
            abort();
        }
        r->http = h;
        easy_defaults(h, r);
    }
    return r;
}

CURL *wk_req_easy(wk_req *r)
{
    r->easy_dirty = 1;
    return r->easy;
}

void wk_req_header_nv(wk_req *r, const char *name, const char *value)
{
    hr_buf_puts(&r->hdr_lines, name);
    hr_buf_append(&r->hdr_lines, ": ", 2);
    hr_buf_append(&r->hdr_lines, value, strlen(value) + 1);
    r->nhdr++;
}

void wk_req_header(wk_req *r, const char *line)
{
    hr_buf_append(&r->hdr_lines, line, strlen(line) + 1);
    r->nhdr++;
}

/* header_list builds curl's list over the NUL-separated lines (valid until
 * the next wk_req_header: the transfer adds none while it runs). */
static struct curl_slist *header_list(wk_req *r)
{
    if (r->nhdr == 0) return NULL;
    if (r->nhdr > r->cap_nodes) {
        r->cap_nodes = r->nhdr + 8;
        r->hdr_nodes = hr_realloc(r->hdr_nodes, (size_t)r->cap_nodes * sizeof *r->hdr_nodes);
    }
    char *s = r->hdr_lines.data;
    for (int i = 0; i < r->nhdr; i++) {
        r->hdr_nodes[i].data = s;
        r->hdr_nodes[i].next = i + 1 < r->nhdr ? &r->hdr_nodes[i + 1] : NULL;
        s += strlen(s) + 1;
    }
    return r->hdr_nodes;
}

static void release_request_parts(wk_req *r)
{
    free(r->method);
    free(r->url);
    free(r->body);
    r->method = r->url = r->body = NULL;
    hr_buf_reset(&r->hdr_lines);
    r->nhdr = 0;
}

static void req_destroy(wk_req *r)
{
    curl_easy_cleanup(r->easy);
    hr_buf_release(&r->resp_body);
    hr_buf_release(&r->resp_headers);
    hr_buf_release(&r->hdr_lines);
    free(r->hdr_nodes);
    free(r);
}

void wk_req_free(wk_req *r)
{
    if (!r) return;
    wk_http *h = r->http;
    release_request_parts(r);
    /* Recycle handles: they keep their settings, buffers and DNS entries. */
    if (h && h->nfree < 1024) {
        r->next_free = h->free_list;
        h->free_list = r;
        h->nfree++;
        return;
    }
    req_destroy(r);
}

int wk_http_running(const wk_http *h) { return h->running; }

static void finish(wk_req *r, CURLcode rc)
{
    wk_http *h = r->http;
    r->rc = rc;
    r->running = 0;
    h->running--;
    if (r->shard) r->shard->running--;
    r->shard = NULL;
    if (r->prev) r->prev->next = r->next;
    else if (h->active == r) h->active = r->next;
    if (r->next) r->next->prev = r->prev;
    r->prev = r->next = NULL;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    /* HTTP: any byte of the request out. SMTP sends no request as such
     * (CURLINFO_REQUEST_SIZE stays 0): the message is out, maybe taken,
     * once DATA was accepted (354) or any of its body left. */
    long req_size = 0;
    curl_off_t up = 0;
    curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &req_size);
    curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    r->maybe_sent = req_size > 0 || up > 0 || r->status == 354;
    if (r->resend_refused) { /* what curl would have hidden from us */
        r->rc = CURLE_GOT_NOTHING;
        snprintf(r->errbuf, sizeof r->errbuf,
                 "the connection closed with no answer after the request was sent");
    }
    r->latency_us = hr_mono_us() - r->started_us;
    r->cb(r, r->priv);
}

static void check_done(wk_shard *sh)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sh->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        wk_req *r = NULL;
        CURL *easy = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(sh->multi, easy);
        finish(r, rc);
    }
}

int wk_http_start(wk_req *r, wk_req_cb *cb, void *priv)
{
    wk_http *h = r->http;
    CURL *e = r->easy;
    r->cb = cb;
    r->priv = priv;
    r->errbuf[0] = '\0';
    r->sends = 0;
    r->resend_refused = 0;
    r->resend_ok = !r->body && (!r->method || strcmp(r->method, "GET") == 0);
    if (r->url) curl_easy_setopt(e, CURLOPT_URL, r->url);
    if (!r->easy_dirty) {
        /* A recycled handle keeps the last request's method and body: set
         * both every time. */
        const char *m = r->method ? r->method : "GET";
        int post = strcmp(m, "POST") == 0;
        if (r->body || post) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
            curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        }
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                         post || strcmp(m, "GET") == 0 ? NULL : m);
    } else if (r->method && strcmp(r->method, "GET") != 0) {
        if (strcmp(r->method, "POST") == 0) curl_easy_setopt(e, CURLOPT_POST, 1L);
        else curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    if (r->body && r->easy_dirty) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
    if (!r->easy_dirty) {
        /* no "Expect: 100-continue" round trip for small bodies */
        wk_req_header(r, "Expect:");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, header_list(r));
    } /* else the caller set the handle up, headers too (an SMTP message's
       * From, To, Subject... are CURLOPT_HTTPHEADER): left as they are */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 30000L);
    r->started_us = hr_mono_us();
    r->running = 1;
    h->running++;
    r->prev = NULL;
    r->next = h->active;
    if (h->active) h->active->prev = r;
    h->active = r;
    /* the least busy shard (they fill evenly, so connections stay warm) */
    wk_shard *sh = &h->shards[0];
    for (int i = 1; i < h->nshards; i++)
        if (h->shards[i].running < sh->running) sh = &h->shards[i];
    r->shard = sh;
    sh->running++;
    sh->added = 1;
    CURLMcode mc = curl_multi_add_handle(sh->multi, e);
    if (mc != CURLM_OK) {
        /* Still called back exactly once, from the loop, not from here. */
        snprintf(r->errbuf, sizeof r->errbuf, "curl: %s", curl_multi_strerror(mc));
        sh->running--;
        r->shard = NULL;
        r->next_free = h->failed;
        h->failed = r;
        ev_timer_set(&h->fail_timer, 0., 0.);
        ev_timer_start(h->loop, &h->fail_timer);
        return -1;
    }
    return 0;
}

void wk_http_flush(wk_http *h)
{
    for (int i = 0; i < h->nshards; i++) {
        wk_shard *sh = &h->shards[i];
        if (!sh->added) continue;
        sh->added = 0;
        int still;
        curl_multi_socket_action(sh->multi, CURL_SOCKET_TIMEOUT, 0, &still);
        check_done(sh);
    }
}

char *wk_req_header_value(const wk_req *r, const char *name)
{
    size_t n = strlen(name);
    const char *p = r->resp_headers.data, *end = p ? p + r->resp_headers.len : NULL;
    char *found = NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if ((size_t)(eol - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0) {
            const char *v = p + n + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            free(found);
            found = hr_strndup(v, (size_t)(ve - v));
        }
        p = eol + 1;
    }
    return found;
}

void wk_http_free(wk_http *h)
{
    if (!h) return;
    /* Fail what still runs: every callback runs exactly once. */
    on_fail_timer(h->loop, &h->fail_timer, 0);
    while (h->active) {
        wk_req *r = h->active;
        curl_multi_remove_handle(r->shard->multi, r->easy);
        snprintf(r->errbuf, sizeof r->errbuf, "shutting down");
        finish(r, CURLE_ABORTED_BY_CALLBACK);
    }
    ev_timer_stop(h->loop, &h->fail_timer);
    for (int i = 0; i < h->nshards; i++) {
        ev_timer_stop(h->loop, &h->shards[i].timer);
        curl_multi_cleanup(h->shards[i].multi);
    }
    free(h->shards);
    while (h->free_socks) {
        wk_sock *s = h->free_socks;
        h->free_socks = s->next_free;
        free(s);
    }
    while (h->free_list) {
        wk_req *r = h->free_list;
        h->free_list = r->next_free;
        req_destroy(r);
    }
    /* last: curl refuses to free a share an easy handle still uses */
    curl_share_cleanup(h->share);
    free(h);
}

