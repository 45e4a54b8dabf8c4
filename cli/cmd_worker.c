/* cmd_worker.c: `herald worker`: runs a supervised pool of worker processes
 * (see worker/worker.h and docs/worker.md). Option parsing only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "webhooks.h"
#include "worker.h"

/* --metrics ADDR: the supervisor serves /metrics, /healthz and /readyz on
 * its own loop; forked workers close their copy of the listener. */
typedef struct metrics_ctx {
    const char *listen;
    const hr_config *cfg;
    hook_httpd *h;
} metrics_ctx;

static void metrics_start(struct ev_loop *loop, void *priv)
{
    metrics_ctx *m = priv;
    hook_httpd_opts ho = {0};
    ho.listen = m->listen;
    ho.handler = cli_metrics_request;
    ho.priv = (void *)m->cfg;
    hr_err err = {0};
    m->h = hook_httpd_new(loop, &ho, &err);
    if (!m->h) {
        hr_log(HR_LOG_ERROR, "metrics server not started", "error", err.msg, NULL);
        return;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", hook_httpd_port(m->h));
    hr_log(HR_LOG_INFO, "metrics listening", "port", port, NULL);
}

static void metrics_drop(void *priv)
{
    metrics_ctx *m = priv;
    hook_httpd_free(m->h); /* the child's copy: the parent keeps serving */
    m->h = NULL;
}

/* config_fit is the workers' check of a config reloaded on SIGHUP */
static int config_fit(const hr_config *c, hr_err *err)
{
    return cli_config_errors(c, NULL, err) > 0 ? -1 : 0;
}

int cmd_worker(int argc, char **argv)
{
    worker_opts o = {0};
    o.config = cli_config();
    o.config_path = o.config->path;
    const char *v;
    o.platforms = cli_take_opt(&argc, argv, "platforms");
    int64_t n;
    if ((v = cli_take_opt(&argc, argv, "processes"))) {
        if (cli_opt_i64("processes", v, 1, 1024, &n) != 0) return 2;
        o.processes = (int)n;
    }
    if ((v = cli_take_opt(&argc, argv, "concurrency"))) {
        if (cli_opt_i64("concurrency", v, 1, 100000, &n) != 0) return 2;
        o.concurrency = (int)n;
    }
    hr_err err = {0};
    if ((v = cli_take_opt(&argc, argv, "shutdown-timeout")) &&
        worker_parse_duration(v, &o.shutdown_timeout_ms, &err) != 0) {
        fprintf(stderr, "herald worker: --shutdown-timeout: %s\n", err.msg);
        return 2;
    }
    /* a lease shorter than a second lapses between heartbeats (lease/3) */
    if ((v = cli_take_opt(&argc, argv, "lease")) &&
        (worker_parse_duration(v, &o.lease_ms, &err) != 0 || o.lease_ms < 1000)) {
        fprintf(stderr, "herald worker: --lease: %s\n",
                err.code ? err.msg : "shorter than 1s");
        return 2;
    }
    o.once = cli_has_flag(&argc, argv, "once");
    metrics_ctx mc = {.listen = cli_take_opt(&argc, argv, "metrics"), .cfg = o.config};
    if (!mc.listen) mc.listen = hr_config_get(o.config, "metrics-listen", NULL);
    int foreground = cli_has_flag(&argc, argv, "foreground");
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    /* what config check rejects would run with some settings dropped */
    if (cli_config_errors(o.config, stderr, &err) > 0) {
        fprintf(stderr, "herald worker: %s has errors (herald config check): not starting\n",
                o.config->path ? o.config->path : "the config");
        return 2;
    }
    o.check = config_fit;
    /* config check has range-checked it */
    if (!o.lease_ms && hr_config_int(o.config, "lease-ms", &o.lease_ms, &err) != 0) {
        fprintf(stderr, "herald worker: %s\n", err.msg);
        return 2;
    }
    worker_pool_conf pool;
    if (worker_pool_conf_get(o.config, o.platforms, &pool, &err) != 0) {
        fprintf(stderr, "herald worker: %s\n", err.msg);
        return 2;
    }
    if (o.processes == 0 && pool.processes > 0) o.processes = pool.processes;
    if (foreground) return worker_process_main(&o);
    if (mc.listen) {
        o.on_loop = metrics_start;
        o.on_child = metrics_drop;
        o.hook_priv = &mc;
    }
    int rc = worker_supervise(&o);
    hook_httpd_free(mc.h);
    return rc;
}
