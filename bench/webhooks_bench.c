/* webhooks_bench.c: the load generator of bench/webhooks: N keep-alive
 * connections on one epoll loop, each with one request in flight, each
 * request a new generic webhook event signed by hook_sign_generic_mac (or a
 * plain GET for the nginx reference). Prints one JSON object with req/s and
 * latency quantiles. Not a general tool: responses must carry
 * Content-Length.
 * The events (new ids, timestamps inside the replay window, signatures) are
 * made before the timed phase, so that sending one costs the generator about
 * what sending the reference's GET does: it is not the system under test. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "webhooks.h"

#define MAXC 1024
#define HIST_US 1000000 /* 1 us buckets up to 1 s */
#define REQ_MAX 512      /* one signed request */

typedef struct conn {
    int fd;
    const char *out; /* the request in flight: in the pool, own or get_req */
    size_t out_len, out_off;
    char own[REQ_MAX];
    char in[8192];
    size_t in_len;
    int64_t sent_us;
} conn;

static const char *mode, *path;
static int port, nconn, jobs = 1000;
static char get_req[256];
static hook_mac *mac; /* generic mode: the events' key */
/* signed requests made before the run, one after the other */
static char *pool;
static uint16_t *pool_lens;
static long pool_n, seq;
static size_t pool_off;
static uint32_t *hist;
static long done_n, errors, measuring;
static int64_t max_us;
static int64_t start_us;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* make_req writes the i-th event's request, signed at now_s, into out */
static size_t make_req(long i, long long now_s, char *out, size_t cap)
{
    char body[256], sig[128];
    int bl = snprintf(body, sizeof body,
                      "{\"events\":[{\"id\":\"bench-%d-%ld\",\"type\":\"open\",\"job\":"
                      "\"0000000A%012ld\",\"campaign\":\"bench\"}]}",
                      getpid(), i, i % jobs);
    hook_sign_generic_mac(mac, now_s, body, (size_t)bl, sig, sizeof sig);
    return (size_t)snprintf(out, cap,
                            "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\n"
                            "X-Herald-Signature: %s\r\nContent-Length: %d\r\n\r\n%s",
                            path, sig, bl, body);
}

/* make_pool makes the first n requests */
static void make_pool(long n)
{
    pool = malloc((size_t)n * REQ_MAX);
    pool_lens = malloc((size_t)n * sizeof *pool_lens);
    if (!pool || !pool_lens) {
        fprintf(stderr, "no memory for %ld requests\n", n);
        exit(1);
    }
    long long now = (long long)time(NULL);
    size_t off = 0;
    for (long i = 0; i < n; i++) {
        pool_lens[i] = (uint16_t)make_req(i, now, pool + off, REQ_MAX);
        off += pool_lens[i];
    }
    pool_n = n;
}

/* build points c at its next request: the next signed event (made now when
 * the pool ran out), or the GET */
static void build(conn *c)
{
    if (!mac) {
        c->out = get_req;
        c->out_len = strlen(get_req);
    } else if (seq < pool_n) {
        c->out = pool + pool_off;
        c->out_len = pool_lens[seq++];
        pool_off += c->out_len;
    } else {
        c->out_len = make_req(seq++, (long long)time(NULL), c->own, sizeof c->own);
        c->out = c->own;
    }
    c->out_off = 0;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    return fd;
}

static void send_req(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINPROGRESS)) return; /* EPOLLOUT resumes */
        fprintf(stderr, "send: %s\n", strerror(errno));
        exit(1);
    }
}

/* on_data consumes complete responses; returns 1 when one finished. */
static int on_data(conn *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    char *cl = strcasestr(c->in, "Content-Length:");
    long len = cl && cl < end ? atol(cl + 15) : 0;
    size_t need = (size_t)(end - c->in) + 4 + (size_t)len;
    if (c->in_len < need) return 0;
    int ok = strncmp(c->in, "HTTP/1.1 200", 12) == 0;
    if (measuring) {
        if (!ok) errors++;
        int64_t lat = now_us() - c->sent_us;
        if (lat > max_us) max_us = lat;
        hist[lat < HIST_US ? lat : HIST_US - 1]++;
        done_n++;
    }
    memmove(c->in, c->in + need, c->in_len - need);
    c->in_len -= need;
    return 1;
}

static double quantile(double q)
{
    long target = (long)(q * (double)done_n), acc = 0;
    for (int i = 0; i < HIST_US; i++) {
        acc += hist[i];
        if (acc > target) return i / 1000.0;
    }
    return HIST_US / 1000.0;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: webhooks_bench get|generic PORT PATH CONNS SECONDS WARMUP_S "
                        "[KEY [MAX_RATE]]\n");
        return 2;
    }
    mode = argv[1];
    port = atoi(argv[2]);
    path = argv[3];
    nconn = atoi(argv[4]);
    double secs = atof(argv[5]), warm = atof(argv[6]);
    if (nconn < 1 || nconn > MAXC) return 2;
    hist = calloc(HIST_US, sizeof *hist);
    snprintf(get_req, sizeof get_req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (strcmp(mode, "generic") == 0) {
        /* enough events for the whole run at MAX_RATE events/s, but no
         * more than 200 s of them: their signatures must stay inside the
         * server's replay window (300 s); later ones are signed as sent */
        double rate = argc > 8 ? atof(argv[8]) : 60000;
        double span = secs + warm < 200 ? secs + warm : 200;
        mac = hook_mac_new(argc > 7 ? argv[7] : "");
        make_pool((long)(span * rate) + nconn);
    }
    int ep = epoll_create1(0);
    static conn cs[MAXC];
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = dial();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        build(&cs[i]);
        cs[i].sent_us = now_us();
        send_req(&cs[i]);
    }
    struct rusage ru0, ru1;
    int64_t t0 = now_us(), warm_end = t0 + (int64_t)(warm * 1e6),
            end = warm_end + (int64_t)(secs * 1e6);
    struct epoll_event evs[256];
    for (;;) {
        int64_t t = now_us();
        if (!measuring && t >= warm_end) {
            measuring = 1;
            start_us = t;
            getrusage(RUSAGE_SELF, &ru0);
        }
        if (t >= end) break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) send_req(c);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    size_t room = sizeof c->in - c->in_len - 1;
                    ssize_t r = recv(c->fd, c->in + c->in_len, room, 0);
                    if (r > 0) {
                        c->in_len += (size_t)r;
                        c->in[c->in_len] = '\0';
                        while (on_data(c)) {
                            build(c);
                            c->sent_us = now_us();
                            send_req(c);
                        }
                        /* short read: the socket was drained, and what comes
                         * later raises a new edge (saves a recv per answer) */
                        if ((size_t)r < room) break;
                        continue;
                    }
                    if (r == 0) {
                        fprintf(stderr, "server closed a connection\n");
                        return 1;
                    }
                    break;
                }
            }
        }
    }
    double elapsed = (double)(now_us() - start_us) / 1e6;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu_us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                             ru0.ru_stime.tv_sec) *
                        1e6 +
                    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                             ru0.ru_stime.tv_usec);
    printf("{\"req_per_s\":%.0f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%ld,\"requests\":%ld,"
           "\"cpu_us_per_req\":%.1f}\n",
           (double)done_n / elapsed, quantile(0.50), quantile(0.90), quantile(0.99),
           quantile(0.999), (double)max_us / 1000.0, errors, done_n,
           done_n ? cpu_us / (double)done_n : 0.0);
    return 0;
}
