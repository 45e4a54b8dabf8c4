/* send_http_bench.c: the worker's HTTP engine alone (curl multi-socket on
 * libev), POSTing to a URL with C requests in flight: isolates the engine
 * from the queue in bench/send.   send_http_bench URL N C */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../worker/internal.h"

static long done, ok;

static void on_done(wk_req *r, void *priv)
{
    done++;
    ok += r->rc == CURLE_OK && r->status / 100 == 2;
    wk_req_free(r);
}

int main(int argc, char **argv)
{
    if (argc != 4) return 2;
    long n = atol(argv[2]);
    int c = atoi(argv[3]);
    struct ev_loop *loop = ev_default_loop(0);
    wk_http *h = wk_http_new(loop, c + 16);
    long started = 0;
    int64_t t0 = hr_mono_us();
    while (done < n) {
        while (started < n && wk_http_running(h) < c) {
            wk_req *r = wk_req_new(h);
            r->method = hr_strdup("POST");
            r->url = hr_strdup(argv[1]);
            r->body = hr_strdup("{\"text\":\"bench post 12345\"}");
            r->body_len = strlen(r->body);
            wk_req_header(r, "Content-Type: application/json");
            wk_http_start(r, on_done, NULL);
            started++;
        }
        ev_run(loop, EVRUN_ONCE);
    }
    double s = (double)(hr_mono_us() - t0) / 1e6;
    printf("%.0f %ld\n", (double)n / s, ok);
    wk_http_free(h);
    return 0;
}
