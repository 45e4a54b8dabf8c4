/* internal.h: what the worker's files share and its tests reach: the HTTP
 * engine (libcurl multi-socket on a libev loop), sd_notify, and the process
 * root. Not part of the public API. */
#ifndef HERALD_WORKER_INTERNAL_H
#define HERALD_WORKER_INTERNAL_H

#include <curl/curl.h>
#include <stdint.h>

#include "worker.h"

struct ev_loop;

/* ---------------------------------------------------------------- http */

typedef struct wk_http wk_http;
typedef struct wk_req wk_req;

typedef void wk_req_cb(wk_req *r, void *priv);

/* One request. The caller fills the first part (or configures easy itself
 * through wk_req_easy before wk_http_start); the engine fills the answer. */
struct wk_req {
    /* request */
    char *method; /* "GET", "POST", ...; NULL: GET (or what easy says) */
    char *url;
    char *body; /* owned */
    size_t body_len;
    long timeout_ms; /* 0: 30 s */

    /* answer */
    CURLcode rc;
    long status;
    hr_buf resp_body;
    hr_buf resp_headers; /* "Name: value\r\n" lines of the last response */
    int64_t latency_us;
    /* maybe_sent: some bytes of the request left this host, so a failure
     * does not prove the platform did nothing (unknown, not transient). */
    int maybe_sent;
    char errbuf[CURL_ERROR_SIZE];

    /* engine */
    CURL *easy;
    wk_http *http;
    wk_req_cb *cb;
    void *priv;
    int64_t started_us;
    int running;
    wk_req *next_free;
    wk_req *prev, *next; /* the engine's running list */
    struct wk_shard *shard;
    /* Header lines, NUL-separated in one buffer, and the list curl reads
     * built over it at start: no allocation per header once warm. */
    hr_buf hdr_lines;
    int nhdr;
    struct curl_slist *hdr_nodes;
    int cap_nodes;
    /* The caller configured easy itself (wk_req_easy): reset it before the
     * handle serves another request. */
    int easy_dirty;
    /* curl's tries at sending the request (it retries on its own); whether
     * another may go (a GET), and one was refused */
    int sends, resend_ok, resend_refused;
};

/* wk_http_new returns an engine on loop: one CURLM, a shared DNS and TLS
 * session cache, connections kept alive per host (max_conns; 0: 256). */
wk_http *wk_http_new(struct ev_loop *loop, int max_conns);
/* wk_http_free fails every running request (rc CURLE_ABORTED_BY_CALLBACK,
 * callback run) and frees the engine. */
void wk_http_free(wk_http *h);
/* wk_req_new returns a clean request of h: a recycled easy handle that
 * keeps its settings between requests (only a handle handed out through
 * wk_req_easy is reset). */
wk_req *wk_req_new(wk_http *h);
/* wk_req_easy returns the request's easy handle to configure directly (SMTP
 * through platforms/); the engine still sets its own callbacks. */
CURL *wk_req_easy(wk_req *r);
/* wk_req_header adds a "Name: value" line; wk_req_header_nv one made of
 * name and value. Both copy. */
void wk_req_header(wk_req *r, const char *line);
void wk_req_header_nv(wk_req *r, const char *name, const char *value);
/* wk_http_start sends r; cb runs exactly once, later, from the loop (never
 * from inside wk_http_start). Returns 0, or -1 when curl refused it (cb will
 * still run with the error). */
int wk_http_start(wk_req *r, wk_req_cb *cb, void *priv);
/* wk_http_flush lets curl start the requests added since it last ran, now
 * rather than on the next loop iteration (not from inside an engine
 * callback); their callbacks may run from it. */
void wk_http_flush(wk_http *h);
/* wk_req_free releases r (call it from or after its callback). */
void wk_req_free(wk_req *r);
int wk_http_running(const wk_http *h);
/* wk_req_header_value returns the value of the last response header name
 * (case-insensitive) as a new string, or NULL. */
char *wk_req_header_value(const wk_req *r, const char *name);

/* The curl write/header callbacks the engine uses, for blocking transfers
 * too (userdata: a wk_req whose resp_body/resp_headers collect). */
size_t wk_collect_body(char *p, size_t size, size_t n, void *ud);
size_t wk_collect_header(char *p, size_t size, size_t n, void *ud);
/* wk_split_headers turns collected header lines into a new array of
 * name/value pairs (free with wk_free_headers); returns the count. */
struct plat_header;
int wk_split_headers(const hr_buf *raw, struct plat_header **out);
void wk_free_headers(struct plat_header *h, int n);

/* ---------------------------------------------------------- processes */

/* wk_reconciler_main runs the reconciler process: it settles jobs in the
 * unknown state by reading back from each platform (sync Redis and curl:
 * it has no loop to block). Returns the exit status. */
int wk_reconciler_main(const worker_opts *o);
/* wk_config_reload loads o->config_path again for SIGHUP and passes it
 * through o->check: returns the new config (the caller's), or NULL with err
 * when it cannot be read or is not fit to run (the old one stays). */
hr_config *wk_config_reload(const worker_opts *o, hr_err *err);
/* wk_status_fd: in a worker forked by the supervisor, the pipe its status
 * lines go to ("pid in_flight sent failed retried\n", one write each: atomic
 * under PIPE_BUF): the supervisor tells systemd the pool's totals and
 * kills a worker that stops reporting; -1 (--foreground): the process
 * notifies systemd itself. */
extern int wk_status_fd;

/* --------------------------------------------------------------- seam */

/* wk_seam_init reads HERALD_WORKER_CRASH_AT (and the other seams) once. */
void wk_seam_init(void);
/* wk_clock_ms is the worker process's wall clock in ms: the host's, unless
 * the HERALD_WORKER_CLOCK_SKEW_MS test seam moves it. */
int64_t wk_clock_ms(void);
/* wk_seam_new_id returns 1 the N-th time step is reached under
 * HERALD_WORKER_NEW_ID_AT=STEP:N (the caller then lets its lease go), else 0. */
int wk_seam_new_id(const char *step);

#endif
