/* supervisor.c: `herald worker`'s parent process: forks N worker processes
 * and one reconciler, restarts a child that dies (with backoff), forwards
 * SIGTERM/SIGINT/SIGHUP, and reloads the config on SIGHUP. It speaks to
 * systemd for the pool: the workers report to it over a pipe, it sends the
 * totals as STATUS and pings the watchdog, and kills a worker that stopped
 * reporting (a hung loop) so that it is restarted alone. It sends nothing
 * itself and touches no queue state. */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define MAX_CHILDREN 1025

int wk_status_fd = -1;

typedef struct child {
    int slot;
    int reconciler; /* the reconciler process instead of a worker */
    pid_t pid;
    int64_t started_ms;
    int64_t backoff_ms;
    int64_t heard_ms; /* its last status report (or its start) */
    long inflight, sent, failed, retried; /* as last reported */
    ev_timer restart;
    struct sup *sup;
} child;

typedef struct sup {
    struct ev_loop *loop;
    worker_opts opts;
    hr_config *owned_config; /* after a reload */
    child *children;
    int nchildren;
    int alive;
    int stopping;
    int status; /* exit status: 0 unless a child failed to start at all */
    ev_child child_w;
    ev_signal sig_term, sig_int, sig_hup;
    ev_timer kill_timer;
    int status_pipe[2];  /* the workers' reports: read end here */
    ev_io status_io;
    ev_timer status_timer;
    int64_t hung_ms;     /* a worker silent this long is killed */
    long gone_sent, gone_failed, gone_retried; /* of children that ended */
    char partial[256];   /* a report split across reads */
    size_t npartial;
} sup;

static void start_child(sup *s, child *c);

static void on_restart(struct ev_loop *loop, ev_timer *w, int revents)
{
    child *c = w->data;
    if (!c->sup->stopping) start_child(c->sup, c);
}

static void start_child(sup *s, child *c)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        hr_log(HR_LOG_ERROR, "worker: fork failed", "error", strerror(errno), NULL);
        ev_timer_set(&c->restart, 1.0, 0.);
        ev_timer_start(s->loop, &c->restart);
        return;
    }
    if (pid == 0) {
        /* a worker outlives no supervisor: if it dies, the worker is told to
         * stop (and drains within its shutdown timeout) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        if (s->opts.on_child) s->opts.on_child(s->opts.hook_priv);
        /* The child starts clean: its own loop, default signal handling.
         * libev keeps signal watchers in process-wide tables: stop ours
         * first, or the child's own ev_signal would never be installed. */
        ev_signal_stop(s->loop, &s->sig_term);
        ev_signal_stop(s->loop, &s->sig_int);
        ev_signal_stop(s->loop, &s->sig_hup);
        ev_child_stop(s->loop, &s->child_w);
        ev_timer_stop(s->loop, &s->kill_timer);
        for (int i = 0; i < s->nchildren; i++) ev_timer_stop(s->loop, &s->children[i].restart);
        ev_io_stop(s->loop, &s->status_io);
        ev_timer_stop(s->loop, &s->status_timer);
        ev_loop_destroy(EV_DEFAULT_UC);
        close(s->status_pipe[0]);
        wk_status_fd = c->reconciler ? -1 : s->status_pipe[1];
        if (c->reconciler) close(s->status_pipe[1]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        char name[32];
        snprintf(name, sizeof name, c->reconciler ? "reconciler" : "worker.%d", c->slot);
        hr_log_set_name(name);
        int rc = c->reconciler ? wk_reconciler_main(&s->opts) : worker_process_main(&s->opts);
        fflush(NULL);
        _exit(rc);
    }
    c->pid = pid;
    c->started_ms = c->heard_ms = hr_mono_ms();
    c->inflight = c->failed = c->retried = 0;
    c->sent = -1; /* not reported yet: slow to start is not hung */
    s->alive++;
    char spid[24], slot[16];
    snprintf(spid, sizeof spid, "%d", (int)pid);
    snprintf(slot, sizeof slot, "%d", c->slot);
    hr_log(HR_LOG_INFO, c->reconciler ? "reconciler started" : "worker started", "#child_pid", spid,
           "slot", slot, NULL);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    sup *s = w->data;
    child *c = NULL;
    for (int i = 0; i < s->nchildren; i++)
        if (s->children[i].pid == w->rpid) c = &s->children[i];
    if (!c) return;
    c->pid = 0;
    s->alive--;
    if (c->sent > 0) s->gone_sent += c->sent;
    s->gone_failed += c->failed;
    s->gone_retried += c->retried;
    c->inflight = c->sent = c->failed = c->retried = 0;
    char spid[24], how[48];
    snprintf(spid, sizeof spid, "%d", (int)w->rpid);
    if (WIFSIGNALED(w->rstatus)) snprintf(how, sizeof how, "signal %d", WTERMSIG(w->rstatus));
    else snprintf(how, sizeof how, "exit %d", WEXITSTATUS(w->rstatus));
    if (s->stopping) {
        hr_log(HR_LOG_INFO, "worker stopped", "#child_pid", spid, "status", how, NULL);
        if (s->alive == 0) ev_break(loop, EVBREAK_ALL);
        return;
    }
    /* A child that lived a minute earns a fresh start; one that keeps dying
     * waits longer each time, up to 10 s. */
    int64_t lived = hr_mono_ms() - c->started_ms;
    if (lived > 60000 || c->backoff_ms == 0) c->backoff_ms = 100;
    else c->backoff_ms = c->backoff_ms * 2 > 10000 ? 10000 : c->backoff_ms * 2;
    if (s->opts.once && WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0 &&
        !c->reconciler) {
        /* --once: a worker that finished is done, not dead. */
        int workers_left = 0;
        for (int i = 0; i < s->nchildren; i++)
            if (s->children[i].pid && !s->children[i].reconciler) workers_left++;
        if (workers_left == 0) {
            s->stopping = 1;
            for (int i = 0; i < s->nchildren; i++)
                if (s->children[i].pid) kill(s->children[i].pid, SIGTERM);
            if (s->alive == 0) ev_break(loop, EVBREAK_ALL);
        }
        return;
    }
    char backoff[24];
    snprintf(backoff, sizeof backoff, "%lld", (long long)c->backoff_ms);
    hr_log(HR_LOG_WARN, "worker died, restarting", "#child_pid", spid, "status", how, "backoff_ms",
           backoff, NULL);
    ev_timer_set(&c->restart, (double)c->backoff_ms / 1000.0, 0.);
    ev_timer_start(loop, &c->restart);
}

/* on_status_read takes the workers' reports: "pid in_flight sent failed
 * retried" lines. */
static void on_status_read(struct ev_loop *loop, ev_io *w, int revents)
{
    sup *s = w->data;
    char buf[4096];
    ssize_t n;
    while ((n = read(s->status_pipe[0], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (s->npartial < sizeof s->partial - 1) s->partial[s->npartial++] = buf[i];
                continue;
            }
            s->partial[s->npartial] = '\0';
            s->npartial = 0;
            int pid;
            long in, sent, failed, retried;
            if (sscanf(s->partial, "%d %ld %ld %ld %ld", &pid, &in, &sent, &failed, &retried) != 5)
                continue;
            for (int k = 0; k < s->nchildren; k++) {
                child *c = &s->children[k];
                if (c->pid != pid) continue;
                c->heard_ms = hr_mono_ms();
                c->inflight = in;
                c->sent = sent;
                c->failed = failed;
                c->retried = retried;
            }
        }
    }
}

/* on_status_timer tells systemd the pool's totals and pings its watchdog.
 * A worker whose loop stopped reporting is killed (and restarted by
 * on_child) rather than left hung: the watchdog then stands for this
 * process's own loop, and one stuck worker does not restart the pool. */
static void on_status_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup *s = w->data;
    int64_t now = hr_mono_ms();
    long in = 0, sent = s->gone_sent, failed = s->gone_failed, retried = s->gone_retried;
    int workers = 0, up = 0;
    for (int i = 0; i < s->nchildren; i++) {
        child *c = &s->children[i];
        if (c->reconciler) continue;
        workers++;
        if (!c->pid) continue;
        in += c->inflight;
        if (c->sent > 0) sent += c->sent;
        failed += c->failed;
        retried += c->retried;
        /* before its first report a worker is starting: three times as long */
        int64_t limit = c->sent >= 0 ? s->hung_ms : 3 * s->hung_ms;
        if (c->sent >= 0 && now - c->heard_ms <= s->hung_ms) up++;
        if (!s->stopping && now - c->heard_ms > limit) {
            char spid[24], silent[24];
            snprintf(spid, sizeof spid, "%d", (int)c->pid);
            snprintf(silent, sizeof silent, "%lld", (long long)(now - c->heard_ms));
            hr_log(HR_LOG_ERROR, "worker not responding, killing it", "#child_pid", spid, "silent_ms",
                   silent, NULL);
            kill(c->pid, SIGKILL);
            c->heard_ms = now; /* once: on_child restarts it */
            c->sent = -1;      /* and it no longer counts as responding */
        }
    }
    char st[200];
    snprintf(st, sizeof st,
             "STATUS=workers %d/%d responding, in flight %ld, sent %ld, failed %ld, retried "
             "%ld\nWATCHDOG=1",
             up, workers, in, sent, failed, retried);
    hr_notify(st);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup *s = w->data;
    /* Children had their shutdown timeout and more: no more waiting. */
    for (int i = 0; i < s->nchildren; i++)
        if (s->children[i].pid) kill(s->children[i].pid, SIGKILL);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    sup *s = w->data;
    if (s->stopping) return;
    s->stopping = 1;
    hr_log(HR_LOG_INFO, "stopping workers", NULL);
    hr_notify("STOPPING=1");
    for (int i = 0; i < s->nchildren; i++) {
        ev_timer_stop(loop, &s->children[i].restart);
        if (s->children[i].pid) kill(s->children[i].pid, SIGTERM);
    }
    if (s->alive == 0) {
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    double grace = (double)(s->opts.shutdown_timeout_ms > 0 ? s->opts.shutdown_timeout_ms : 10000);
    ev_timer_set(&s->kill_timer, grace / 1000.0 + 5.0, 0.);
    ev_timer_start(loop, &s->kill_timer);
}

hr_config *wk_config_reload(const worker_opts *o, hr_err *err)
{
    hr_config *c = hr_config_load(o->config_path, err);
    if (c && o->check && o->check(c, err) != 0) {
        hr_config_free(c);
        return NULL;
    }
    return c;
}

static void on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    sup *s = w->data;
    if (!s->opts.config_path) return;
    hr_err err = {0};
    hr_config *c = wk_config_reload(&s->opts, &err);
    if (!c) {
        /* A broken edit keeps the old config everywhere: the workers are
         * not told (logged once, here). */
        hr_log(HR_LOG_ERROR, "config reload failed, keeping the old one", "error", err.msg, NULL);
        return;
    }
    hr_config_free(s->owned_config);
    s->owned_config = c;
    s->opts.config = c;
    hr_log(HR_LOG_INFO, "config reloaded", "path", s->opts.config_path, NULL);
    for (int i = 0; i < s->nchildren; i++)
        if (s->children[i].pid) kill(s->children[i].pid, SIGHUP);
}

int worker_supervise(const worker_opts *o)
{
    sup s;
    memset(&s, 0, sizeof s);
    s.opts = *o;
    hr_err herr = {0};
    if (worker_conf_duration(o->config, "worker-hang-timeout", &s.hung_ms, &herr) != 0) {
        hr_log(HR_LOG_ERROR, "worker: config", "error", herr.msg, NULL);
        return 2;
    }
    s.loop = ev_default_loop(0);
    if (s.opts.processes <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s.opts.processes = n > 0 ? (int)n : 1;
    }
    if (s.opts.processes > MAX_CHILDREN - 1) s.opts.processes = MAX_CHILDREN - 1;
    int reconciler = !s.opts.once && !getenv("HERALD_WORKER_NO_RECONCILER");
    s.nchildren = s.opts.processes + reconciler;
    s.children = hr_calloc((size_t)s.nchildren, sizeof *s.children);
    ev_child_init(&s.child_w, on_child, 0, 0);
    s.child_w.data = &s;
    ev_child_start(s.loop, &s.child_w);
    ev_signal_init(&s.sig_term, on_stop, SIGTERM);
    ev_signal_init(&s.sig_int, on_stop, SIGINT);
    ev_signal_init(&s.sig_hup, on_hup, SIGHUP);
    s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
    ev_signal_start(s.loop, &s.sig_term);
    ev_signal_start(s.loop, &s.sig_int);
    ev_signal_start(s.loop, &s.sig_hup);
    ev_timer_init(&s.kill_timer, on_kill_timer, 0., 0.);
    s.kill_timer.data = &s;
    if (pipe2(s.status_pipe, O_CLOEXEC) != 0) {
        hr_log(HR_LOG_ERROR, "worker: pipe failed", "error", strerror(errno), NULL);
        free(s.children);
        return 1;
    }
    fcntl(s.status_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(s.status_pipe[1], F_SETFL, O_NONBLOCK);
    ev_io_init(&s.status_io, on_status_read, s.status_pipe[0], EV_READ);
    s.status_io.data = &s;
    ev_io_start(s.loop, &s.status_io);
    /* workers report every second (at half the watchdog interval when
     * systemd's watchdog is theirs); one silent for worker-hang-timeout
     * (10 s), counted from its first report, has a hung loop */
    int64_t wd = hr_notify_watchdog_ms();
    ev_timer_init(&s.status_timer, on_status_timer, 0., wd ? (double)wd / 2e3 : 1.0);
    s.status_timer.data = &s;
    ev_timer_again(s.loop, &s.status_timer);
    for (int i = 0; i < s.nchildren; i++) {
        child *c = &s.children[i];
        c->slot = i;
        c->sup = &s;
        c->reconciler = reconciler && i == s.nchildren - 1;
        ev_timer_init(&c->restart, on_restart, 0., 0.);
        c->restart.data = c;
        start_child(&s, c);
    }
    if (s.opts.on_loop) s.opts.on_loop(s.loop, s.opts.hook_priv);
    hr_notify("READY=1");
    ev_run(s.loop, 0);
    for (int i = 0; i < s.nchildren; i++) ev_timer_stop(s.loop, &s.children[i].restart);
    ev_timer_stop(s.loop, &s.kill_timer);
    ev_timer_stop(s.loop, &s.status_timer);
    ev_io_stop(s.loop, &s.status_io);
    close(s.status_pipe[0]);
    close(s.status_pipe[1]);
    ev_signal_stop(s.loop, &s.sig_term);
    ev_signal_stop(s.loop, &s.sig_int);
    ev_signal_stop(s.loop, &s.sig_hup);
    ev_child_stop(s.loop, &s.child_w);
    free(s.children);
    hr_config_free(s.owned_config);
    return s.status;
}
