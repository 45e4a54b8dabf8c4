/* webhooks_load.c: a small HTTP/1.1 load generator for bench/webhooks: N
 * keep-alive connections on one epoll loop, each with one request in flight,
 * each request a freshly signed generic webhook event (or a plain GET for the
 * nginx reference). Prints one JSON object with req/s and latency quantiles.
 * Not a general tool: responses must carry Content-Length. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXC 1024
#define HIST_US 1000000 /* 1 us buckets up to 1 s */

typedef struct conn {
    int fd;
    char out[2048];
    size_t out_len, out_off;
    char in[8192];
    size_t in_len;
    int64_t sent_us;
} conn;

static const char *mode, *key, *path;
static EVP_MAC_CTX *keyed; /* HMAC keyed once: the generator's CPU is the machine's too */
static int port, nconn, jobs = 1000;
static uint64_t seq;
static uint32_t *hist;
static long done_n, errors, measuring;
static int64_t start_us;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void build(conn *c)
{
    if (strcmp(mode, "get") == 0) {
        c->out_len = (size_t)snprintf(c->out, sizeof c->out,
                                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    } else {
        char body[512];
        uint64_t n = ++seq;
        int bl = snprintf(body, sizeof body,
                          "{\"events\":[{\"id\":\"bench-%d-%llu\",\"type\":\"open\",\"job\":"
                          "\"0000000A%012d\",\"campaign\":\"bench\"}]}",
                          getpid(), (unsigned long long)n, (int)(n % (uint64_t)jobs));
        char ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
        unsigned char mac[32];
        size_t maclen = 0;
        if (EVP_MAC_init(keyed, NULL, 0, NULL) != 1 || /* same key, new message */
            EVP_MAC_update(keyed, (unsigned char *)ts, strlen(ts)) != 1 ||
            EVP_MAC_update(keyed, (const unsigned char *)".", 1) != 1 ||
            EVP_MAC_update(keyed, (unsigned char *)body, (size_t)bl) != 1 ||
            EVP_MAC_final(keyed, mac, &maclen, sizeof mac) != 1) {
            fprintf(stderr, "HMAC failed\n");
            exit(1);
        }
        char hex[65];
        for (int i = 0; i < 32; i++) {
            hex[2 * i] = "0123456789abcdef"[mac[i] >> 4];
            hex[2 * i + 1] = "0123456789abcdef"[mac[i] & 15];
        }
        hex[64] = '\0';
        /* the generator's CPU is taken from the server's machine: no
         * needless copies */
        c->out_len =
            (size_t)snprintf(c->out, sizeof c->out,
                             "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/json\r\n"
                             "X-Herald-Signature: t=%s,v1=%s\r\nContent-Length: %d\r\n\r\n",
                             path, ts, hex, bl);
        memcpy(c->out + c->out_len, body, (size_t)bl);
        c->out_len += (size_t)bl;
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
        fprintf(stderr,
                "usage: webhooks_load get|generic PORT PATH CONNS SECONDS WARMUP_S [KEY]\n");
        return 2;
    }
    mode = argv[1];
    port = atoi(argv[2]);
    path = argv[3];
    nconn = atoi(argv[4]);
    double secs = atof(argv[5]), warm = atof(argv[6]);
    key = argc > 7 ? argv[7] : "";
    if (nconn < 1 || nconn > MAXC) return 2;
    hist = calloc(HIST_US, sizeof *hist);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    keyed = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (!keyed || EVP_MAC_init(keyed, (const unsigned char *)key, strlen(key), params) != 1) {
        fprintf(stderr, "no HMAC-SHA256 in OpenSSL\n");
        return 1;
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
    printf("{\"req_per_s\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"errors\":%ld,\"requests\":%ld,"
           "\"cpu_us_per_req\":%.1f}\n",
           (double)done_n / elapsed, quantile(0.50), quantile(0.99), errors, done_n,
           done_n ? cpu_us / (double)done_n : 0.0);
    return 0;
}
