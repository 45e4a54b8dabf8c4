/* http.c: the curl multi-socket engine on libev against a real nginx on
 * loopback: many requests in flight on reused connections, every callback
 * exactly once, the line between "never sent" (connection refused) and
 * "maybe sent" (a peer that takes the request and never answers), and no
 * POST sent twice by curl's own retry on a reused connection. */
#include <ev.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

static int nginx_port;
static char *nginx_dir;

static int port_open(void *arg)
{
    (void)arg;
    return th_http(nginx_port, NULL, "/ping", NULL, NULL, NULL) == 200;
}

static void start_nginx(void)
{
    nginx_dir = th_tempdir();
    nginx_port = th_free_port();
    char conf[4096], path[600];
    snprintf(conf, sizeof conf,
             "master_process off; worker_processes 1; error_log %s/error.log; pid %s/nginx.pid;\n"
             "events { worker_connections 1024; }\n"
             "http { access_log off; client_body_temp_path %s;\n"
             "  server { listen 127.0.0.1:%d; keepalive_requests 100000;\n"
             "    location /ping { return 200 'pong'; }\n"
             /* 444: read the request, close the connection unanswered */
             "    location /lost { access_log %s/lost.log; return 444; }\n"
             "    location /2/tweets { default_type application/json;\n"
             "      add_header x-rate-limit-remaining 42;\n"
             "      return 201 '{\"data\":{\"id\":\"1445880548472328192\"}}'; }\n"
             "  } }\n",
             nginx_dir, nginx_dir, nginx_dir, nginx_port, nginx_dir);
    snprintf(path, sizeof path, "%s/nginx.conf", nginx_dir);
    th_write_file(path, conf);
    char *argv[] = {"/usr/sbin/nginx", "-p", nginx_dir, "-c", path, "-g", "daemon off;", NULL};
    char out[600];
    snprintf(out, sizeof out, "%s/nginx.out", nginx_dir);
    th_spawn(argv, out);
    if (!th_wait_for(port_open, NULL, 5000)) {
        fprintf(stderr, "nginx did not start\n");
        exit(1);
    }
}

typedef struct tally {
    int done, ok, with_id, quota;
    int dup_callbacks;
} tally;

static void on_done(wk_req *r, void *priv)
{
    tally *t = priv;
    if (r->running) t->dup_callbacks++;
    t->done++;
    if (r->rc == CURLE_OK && r->status == 201) t->ok++;
    if (r->resp_body.data && strstr(r->resp_body.data, "1445880548472328192")) t->with_id++;
    char *q = wk_req_header_value(r, "X-Rate-Limit-Remaining");
    if (q && strcmp(q, "42") == 0) t->quota++;
    free(q);
    wk_req_free(r);
}

static void many_in_flight(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    wk_http *h = wk_http_new(loop, 64);
    tally t = {0};
    enum { N = 2000 };
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/2/tweets", nginx_port);
    int started = 0;
    /* Keep 200 in flight until N are done. */
    while (t.done < N) {
        while (started < N && wk_http_running(h) < 200) {
            wk_req *r = wk_req_new(h);
            r->method = hr_strdup("POST");
            r->url = hr_strdup(url);
            r->body = hr_strdup("{\"text\":\"hello\"}");
            r->body_len = strlen(r->body);
            wk_req_header(r, "Content-Type: application/json");
            wk_req_header(r, "Idempotency-Key: hr-abc");
            CHECK(wk_http_start(r, on_done, &t) == 0);
            started++;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    CHECK_INT(t.done, N);
    CHECK_INT(t.ok, N);
    CHECK_INT(t.with_id, N);
    CHECK_INT(t.quota, N);
    CHECK_INT(t.dup_callbacks, 0);
    CHECK_INT(wk_http_running(h), 0);
    wk_http_free(h);
    ev_loop_destroy(loop);
}

static void on_one(wk_req *r, void *priv)
{
    wk_req **out = priv;
    *out = r;
}

static void on_abort(wk_req *r, void *priv)
{
    int *rc = priv;
    *rc = (int)r->rc;
    wk_req_free(r);
}

/* run_one sends a POST of "{}" (or a GET) to url and returns it done */
static wk_req *run_one(struct ev_loop *loop, wk_http *h, const char *method, const char *url,
                       long timeout_ms)
{
    wk_req *done = NULL;
    wk_req *r = wk_req_new(h);
    r->method = hr_strdup(method);
    r->url = hr_strdup(url);
    if (strcmp(method, "POST") == 0) {
        r->body = hr_strdup("{}");
        r->body_len = 2;
    }
    r->timeout_ms = timeout_ms;
    wk_http_start(r, on_one, &done);
    CHECK(done == NULL); /* never called back from inside start */
    while (!done) ev_run(loop, EVRUN_ONCE);
    return done;
}

static void sent_or_not(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    wk_http *h = wk_http_new(loop, 8);
    char url[128];

    /* Connection refused: nothing left this host. */
    int closed = th_free_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%d/2/tweets", closed);
    wk_req *r = run_one(loop, h, "POST", url, 2000);
    CHECK(r->rc == CURLE_COULDNT_CONNECT);
    CHECK_INT(r->maybe_sent, 0);
    wk_req_free(r);

    /* A peer that accepts (the kernel's backlog) and never answers: the
     * request went out, the outcome is unknown. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    REQUIRE(listen(fd, 8) == 0);
    socklen_t alen = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &alen);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/2/tweets", ntohs(a.sin_port));
    r = run_one(loop, h, "POST", url, 300);
    CHECK(r->rc == CURLE_OPERATION_TIMEDOUT);
    CHECK_INT(r->maybe_sent, 1);
    wk_req_free(r);
    close(fd);

    /* Freeing the engine fails what still runs, through its callback. */
    int rc = -1;
    wk_req *q = wk_req_new(h);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/2/tweets", nginx_port);
    q->url = hr_strdup(url);
    wk_http_start(q, on_abort, &rc);
    wk_http_free(h);
    CHECK_INT(rc, CURLE_ABORTED_BY_CALLBACK);
    ev_loop_destroy(loop);
}

static long lines(const char *path)
{
    char *t = th_read_file(path, NULL);
    long n = 0;
    for (const char *p = t; p && *p; p++) n += *p == '\n';
    free(t);
    return n;
}

/* A kept-alive connection that closes unanswered once the peer has read a
 * request: curl would send the request again on a new connection by
 * itself. A POST (the peer may have acted) goes once and comes back maybe
 * sent; a GET may go again. */
static void lost_on_reused_connection(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    wk_http *h = wk_http_new(loop, 8);
    char tweets[128], lost[128], log[600];
    snprintf(tweets, sizeof tweets, "http://127.0.0.1:%d/2/tweets", nginx_port);
    snprintf(lost, sizeof lost, "http://127.0.0.1:%d/lost", nginx_port);
    snprintf(log, sizeof log, "%s/lost.log", nginx_dir);
    const char *methods[] = {"POST", "GET"};
    long want[] = {1, 3}; /* the POST once; the GET twice more */
    for (int i = 0; i < 2; i++) {
        wk_req *r = run_one(loop, h, "POST", tweets, 2000); /* a connection to reuse */
        CHECK_INT(r->status, 201);
        wk_req_free(r);
        r = run_one(loop, h, methods[i], lost, 2000);
        CHECK_INT(r->rc, CURLE_GOT_NOTHING);
        CHECK_INT(r->maybe_sent, 1);
        wk_req_free(r);
        CHECK_INT(lines(log), want[i]);
    }
    wk_http_free(h);
    ev_loop_destroy(loop);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    start_nginx();
    th_run("many_in_flight", many_in_flight);
    th_run("sent_or_not", sent_or_not);
    th_run("lost_on_reused_connection", lost_on_reused_connection);
    free(nginx_dir);
    return th_main_end();
}
