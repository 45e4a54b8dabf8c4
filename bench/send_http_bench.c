/* send_http_bench.c: the worker's HTTP engine alone (curl multi-socket on
 * libev), POSTing what herald posts to X (same headers, a post-sized body)
 * with C requests in flight: the floor of bench/send without the queue,
 * formatting or logging. It does not measure CPU (bench/send does, from
 * outside).
 *   send_http_bench URL N C [h1|h2]
 * h2: HTTP/2, by prior knowledge on http:// (h2c), by ALPN on https://
 * (peer not verified: a loopback bench against a self-signed server).
 * Prints "REQ_PER_S OK PROTOCOL", PROTOCOL being what the last answer
 * came over (http/1.1, h2). */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../worker/internal.h"

static long done, ok;
static long last_version;

static void on_done(wk_req *r, void *priv)
{
    done++;
    if (r->rc == CURLE_OK && r->status / 100 == 2) ok++;
    else if (getenv("BENCH_VERBOSE"))
        fprintf(stderr, "send_http_bench: curl %d, HTTP %ld: %s\n", (int)r->rc, r->status,
                r->errbuf);
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &last_version);
    wk_req_free(r);
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: send_http_bench URL N C [h1|h2]\n");
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[2]);
    int c = atoi(argv[3]);
    int h2 = argc == 5 && strcmp(argv[4], "h2") == 0;
    int tls = strncmp(url, "https:", 6) == 0;
    struct ev_loop *loop = ev_default_loop(0);
    wk_http *h = wk_http_new(loop, c + 16);
    long started = 0;
    int64_t t0 = hr_mono_us();
    while (done < n) {
        while (started < n && wk_http_running(h) < c) {
            wk_req *r = wk_req_new(h);
            r->method = hr_strdup("POST");
            r->url = hr_strdup(url);
            r->body = hr_strdup("{\"text\":\"bench post 12345\"}");
            r->body_len = strlen(r->body);
            wk_req_header(r, "Content-Type: application/json");
            wk_req_header(r, "Authorization: Bearer bench-token");
            wk_req_header(r, "Idempotency-Key: hr-0123456789ab");
            /* recycled handles keep options: set the protocol's every time */
            curl_easy_setopt(r->easy, CURLOPT_HTTP_VERSION,
                             !h2    ? (long)CURL_HTTP_VERSION_1_1
                             : tls  ? (long)CURL_HTTP_VERSION_2TLS
                                    : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
            /* h2: wait for a connection to multiplex on instead of opening more */
            curl_easy_setopt(r->easy, CURLOPT_PIPEWAIT, (long)h2);
            if (tls) {
                curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 0L);
            }
            wk_http_start(r, on_done, NULL);
            started++;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    double s = (double)(hr_mono_us() - t0) / 1e6;
    printf("%.0f %ld %s\n", (double)n / s, ok,
           last_version == CURL_HTTP_VERSION_2_0   ? "h2"
           : last_version == CURL_HTTP_VERSION_1_1 ? "http/1.1"
           : last_version == CURL_HTTP_VERSION_1_0 ? "http/1.0"
                                                   : "none");
    wk_http_free(h);
    return ok == n ? 0 : 1;
}
