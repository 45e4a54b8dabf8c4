/* cmd_run.c: `herald run`, the main job in one command: a private
 * redis-server (unix socket, append-only file, in a state directory), the
 * sandbox standing in for every platform, the webhooks server, the scheduler
 * and a worker pool as child processes; it imports the bundled example export
 * with its schedule compressed into seconds, shows progress, waits until every
 * job is sent (or dead) and engagement has come back, prints the stats, and
 * stops everything in order. Ctrl-C stops everything in the same order.
 * It does not send anything itself; the children do. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "queue.h"
#include "scheduler.h"

#define RUN_NS "herald"
#define PLAN_NS "herald-plan" /* staging namespace for the import's plan */

enum { CH_REDIS, CH_SANDBOX, CH_WEBHOOKS, CH_SCHEDULER, CH_WORKER, CH_COUNT };
static const char *const child_names[CH_COUNT] = {"redis", "sandbox", "webhooks", "scheduler",
                                                  "worker"};

/* The process's root struct. */
typedef struct run_state {
    char dir[PATH_MAX];
    char conf[PATH_MAX + 32];
    char sock[PATH_MAX + 32];
    char self[PATH_MAX];
    int sandbox_port, webhooks_port;
    pid_t pid[CH_COUNT];
    int tty;
    int quiet;
} run_state;

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    interrupted = sig;
}

/* ------------------------------------------------------------ helpers */

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) < 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) return -1;
    return 0;
}

static int write_file(const char *path, const char *data, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return -1;
    size_t n = strlen(data);
    ssize_t w = write(fd, data, n);
    close(fd);
    return w == (ssize_t)n ? 0 : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int alive(run_state *s, int ch)
{
    if (s->pid[ch] <= 0) return 0;
    int st;
    pid_t r = waitpid(s->pid[ch], &st, WNOHANG);
    if (r == s->pid[ch]) {
        s->pid[ch] = 0;
        return 0;
    }
    return 1;
}

/* spawn starts argv with stdout and stderr in logs/<name>.log, in its own
 * process group (so the terminal's Ctrl-C reaches only us, and we stop the
 * children in order) and told to stop if we die. */
static pid_t spawn(run_state *s, int ch, char *const argv[])
{
    char log[PATH_MAX + 64];
    snprintf(log, sizeof log, "%s/logs/%s.log", s->dir, child_names[ch]);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        unsetenv("HERALD_CONFIG");
        unsetenv("CREDENTIALS_DIRECTORY");
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "herald run: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    s->pid[ch] = pid;
    return pid;
}

/* stop sends SIGTERM and waits up to timeout_ms, then SIGKILL. */
static void stop(run_state *s, int ch, int timeout_ms)
{
    if (s->pid[ch] <= 0) return;
    kill(s->pid[ch], SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (!alive(s, ch)) return;
        sleep_ms(20);
    }
    fprintf(stderr, "herald run: %s did not stop in time; killing it\n", child_names[ch]);
    kill(s->pid[ch], SIGKILL);
    waitpid(s->pid[ch], NULL, 0);
    s->pid[ch] = 0;
}

static void stop_all(run_state *s)
{
    /* workers first so in-flight sends finish and are recorded while Redis
     * is up; Redis last, so it writes its append-only file on the way out */
    stop(s, CH_WORKER, 15000);
    stop(s, CH_SCHEDULER, 5000);
    stop(s, CH_WEBHOOKS, 5000);
    stop(s, CH_SANDBOX, 5000);
    stop(s, CH_REDIS, 10000);
}

typedef int wait_fn(run_state *s, void *arg);

/* wait_until polls cond every 20 ms; fails when the child dies or time
 * runs out. */
static int wait_until(run_state *s, int ch, wait_fn *cond, void *arg, int timeout_ms)
{
    for (int t = 0; t < timeout_ms && !interrupted; t += 20) {
        if (cond(s, arg)) return 0;
        if (!alive(s, ch)) {
            fprintf(stderr, "herald run: %s exited at start; see %s/logs/%s.log\n", child_names[ch],
                    s->dir, child_names[ch]);
            return -1;
        }
        sleep_ms(20);
    }
    if (!interrupted)
        fprintf(stderr, "herald run: %s did not start in %d ms; see %s/logs/%s.log\n",
                child_names[ch], timeout_ms, s->dir, child_names[ch]);
    return -1;
}

static int redis_up(run_state *s, void *arg)
{
    (void)arg;
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(s->sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static int port_up(run_state *s, void *arg)
{
    (void)s;
    return port_open(*(int *)arg);
}

static int file_up(run_state *s, void *arg)
{
    (void)s;
    struct stat st;
    return stat(arg, &st) == 0 && st.st_size > 0;
}

/* --------------------------------------------------------- state dir */

static int ensure_secret(run_state *s, const char *name, int hexlen)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size > 0) return 0;
    unsigned char raw[32];
    char hex[65];
    hr_random_bytes(raw, sizeof raw);
    hr_hex(raw, sizeof raw, hex);
    hex[hexlen] = '\0';
    return write_file(path, hex, 0600);
}

static int write_config(run_state *s)
{
    static const char *creds[] = {"credentials/x-token",
                                  "credentials/mastodon-token",
                                  "credentials/bluesky-password",
                                  "credentials/sendgrid-key",
                                  "secret",
                                  "webhook-hmac-key"};
    char cdir[PATH_MAX + 32];
    snprintf(cdir, sizeof cdir, "%s/credentials", s->dir);
    if (mkdir_p(cdir, 0700) < 0) return -1;
    for (size_t i = 0; i < HR_ARRAY_LEN(creds); i++)
        if (ensure_secret(s, creds[i], 40) < 0) return -1;
    const char *d = s->dir;
    int sp = s->sandbox_port, wp = s->webhooks_port;
    /* Every account points at the sandbox; the posting schedule is a real
     * one (three slots a day, two hours apart at least): `run` compresses
     * the plan's time axis into seconds after the import. */
    char *text = hr_asprintf(
        "# Generated by `herald run`: every account points at the sandbox.\n"
        "redis-url unix://%s\n"
        "namespace " RUN_NS "\n"
        "secret-file %s/secret\n"
        "credentials-dir %s/credentials\n"
        "webhooks-listen 127.0.0.1:%d\n"
        "webhook-hmac-key-file %s/webhook-hmac-key\n"
        "sendgrid-webhook-key-file %s/sendgrid.pem\n"
        "sandbox-listen 127.0.0.1:%d\n"
        "sandbox-webhooks-url http://127.0.0.1:%d\n"
        "reconcile-interval 1s\n"
        "retry-base 200ms\n"
        "retry-cap 2s\n"
        "poll-schedule none\n"
        "account x:@heraldhq base-url=http://127.0.0.1:%d credentials=x-token user-id=4242 "
        "tz=Europe/Paris slots=daily@09:00,13:00,18:00 spacing=2h jitter=15m\n"
        "account mastodon:@herald@sandbox.social base-url=http://127.0.0.1:%d "
        "credentials=mastodon-token tz=Europe/Paris slots=mon-fri@10:00,16:00 spacing=2h "
        "jitter=10m\n"
        "account bluesky:@herald.bsky.social base-url=http://127.0.0.1:%d "
        "handle=herald.bsky.social credentials=bluesky-password tz=America/New_York "
        "slots=daily@08:30,12:30,19:00 spacing=90m jitter=10m\n"
        "account sendgrid:main base-url=http://127.0.0.1:%d credentials=sendgrid-key "
        "from=news@herald.example \"from-name=Herald Engineering\" "
        "unsubscribe-base=http://127.0.0.1:%d\n"
        "campaign demo platforms=x:@heraldhq,mastodon:@herald@sandbox.social,"
        "bluesky:@herald.bsky.social \"template={{title}} {{link}} {{hashtags}}\" "
        "email=sendgrid:main contacts=%s/contacts.csv email-rate=4/s "
        "\"subject=New on the blog: {{title}}\"\n",
        s->sock, d, d, wp, d, d, sp, wp, sp, sp, sp, sp, wp, d);
    int rc = write_file(s->conf, text, 0600);
    free(text);
    return rc;
}

/* ------------------------------------------------------------- import */

typedef struct planned {
    queue_job **v;
    int n, cap;
} planned;

static int by_lane_then_time(const void *a, const void *b)
{
    const queue_job *x = *(queue_job *const *)a, *y = *(queue_job *const *)b;
    char lx[QUEUE_LANE_MAX], ly[QUEUE_LANE_MAX];
    queue_job_lane(x, lx, sizeof lx);
    queue_job_lane(y, ly, sizeof ly);
    int c = strcmp(lx, ly);
    if (c) return c;
    return x->run_at_ms < y->run_at_ms ? -1 : x->run_at_ms > y->run_at_ms;
}

/* compress maps each lane's plan onto [start, start + span_ms], keeping the
 * order and the proportions of the gaps (a plan already shorter keeps its
 * gaps as they are). */
static void compress(planned *p, int64_t start_ms, int64_t span_ms)
{
    qsort(p->v, (size_t)p->n, sizeof *p->v, by_lane_then_time);
    for (int i = 0; i < p->n;) {
        char lane[QUEUE_LANE_MAX], other[QUEUE_LANE_MAX];
        queue_job_lane(p->v[i], lane, sizeof lane);
        int j = i;
        while (j < p->n && queue_job_lane(p->v[j], other, sizeof other) == 0 &&
               strcmp(lane, other) == 0)
            j++;
        int64_t first = p->v[i]->run_at_ms, last = p->v[j - 1]->run_at_ms;
        double scale = last - first > span_ms ? (double)span_ms / (double)(last - first) : 1.0;
        for (int k = i; k < j; k++)
            p->v[k]->run_at_ms = start_ms + (int64_t)((double)(p->v[k]->run_at_ms - first) * scale);
        i = j;
    }
}

static int drop_namespace(queue *q, const char *ns, hr_err *err)
{
    redisContext *c = queue_redis(q);
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH {%s}:* COUNT 1000", cursor, ns);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r) freeReplyObject(r);
            return hr_err_set(err, "run: scan: %s", c->errstr);
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *d = redisCommand(c, "DEL %s", r->element[1]->element[i]->str);
            if (d) freeReplyObject(d);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* import runs the real importer into a staging namespace, reads the plan
 * back, compresses each lane's times into span_ms from now, and enqueues the
 * jobs into the run's namespace (where unique keys dedupe against earlier
 * runs). Sets *added to the number of new jobs. */
static int import(run_state *s, const hr_config *cfg, const char *path, queue *q, int64_t span_ms,
                  long *added, hr_err *err)
{
    char url[PATH_MAX + 80];
    snprintf(url, sizeof url, "unix://%s", s->sock);
    queue_opts o = {.url = url, .ns = PLAN_NS};
    queue *plan = queue_connect(&o, err);
    if (!plan) return -1;
    int rc = -1;
    planned p = {0};
    char **lanes = NULL;
    int nl = 0;
    if (drop_namespace(plan, PLAN_NS, err) < 0) goto out;
    sched_import_opts io = {0};
    io.path = path;
    io.campaign = "demo";
    io.has_seed = 1;
    io.seed = 2026;
    io.out = stderr;
    sched_import_stats st;
    if (sched_import(plan, cfg, &io, &st, err) < 0) goto out;
    if (!s->quiet)
        fprintf(stderr,
                "import: %s: %ld items, %ld taken (%ld left out by status/type); "
                "%ld jobs planned (%ld emails)\n",
                path, st.items, st.taken, st.filtered, st.added + st.updated + st.unchanged,
                st.emails);
    if (queue_lanes(plan, &lanes, &nl, err) < 0) goto out;
    static const char *states[] = {"scheduled", "ready"};
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < 2; k++) {
            char **u;
            int nu;
            if (queue_list(plan, lanes[l], states[k], 0, 100000, &u, &nu, err) < 0) goto out;
            for (int i = 0; i < nu; i++) {
                queue_job *j = queue_get(plan, u[i], err);
                if (!j) {
                    queue_strv_free(u, nu);
                    if (!err->code) hr_err_set(err, "run: planned job %s vanished", u[i]);
                    goto out;
                }
                if (p.n == p.cap) {
                    p.cap = p.cap ? p.cap * 2 : 64;
                    p.v = hr_realloc(p.v, sizeof *p.v * (size_t)p.cap);
                }
                p.v[p.n++] = j;
            }
            queue_strv_free(u, nu);
        }
    compress(&p, hr_now_ms() + 2000, span_ms);
    int *res = hr_calloc((size_t)p.n + 1, sizeof *res);
    if (p.n && queue_enqueue(q, p.v, p.n, res, err) < 0) {
        free(res);
        goto out;
    }
    long done = 0;
    *added = 0;
    for (int i = 0; i < p.n; i++) {
        if (res[i] == QUEUE_ADDED || res[i] == QUEUE_UPDATED) (*added)++;
        if (res[i] == QUEUE_DONE) done++;
    }
    free(res);
    if (!s->quiet) {
        fprintf(stderr, "queued: %ld jobs over the next %lld s", *added,
                (long long)(span_ms / 1000 + 2));
        if (done) fprintf(stderr, " (%ld already sent by an earlier run: not again)", done);
        fprintf(stderr, "\n");
    }
    rc = drop_namespace(plan, PLAN_NS, err);
out:
    for (int i = 0; i < p.n; i++)
        queue_job_free(p.v[i]);
    free(p.v);
    queue_strv_free(lanes, nl);
    queue_free(plan);
    return rc;
}

/* save_sandbox_record writes what the sandbox received (GET /_sandbox/posts)
 * to sandbox-posts.json in the state dir, so the run can be checked after
 * the sandbox is gone; returns the duplicates it counted, or -1. */
static size_t on_body(char *p, size_t size, size_t n, void *priv)
{
    hr_buf_append(priv, p, size * n);
    return size * n;
}

static long save_sandbox_record(run_state *s, long *count)
{
    char url[96], path[PATH_MAX + 32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/_sandbox/posts", s->sandbox_port);
    snprintf(path, sizeof path, "%s/sandbox-posts.json", s->dir);
    hr_buf b;
    hr_buf_init(&b);
    CURL *c = curl_easy_init();
    long status = 0, dups = -1;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
    }
    if (status == 200 && write_file(path, b.data ? b.data : "", 0600) == 0) {
        /* the totals are top-level fields of the answer */
        const char *d = strstr(b.data, "\"duplicates\":");
        const char *n = strstr(b.data, "\"count\":");
        if (d) dups = atol(d + 13);
        if (n) *count = atol(n + 8);
    }
    hr_buf_release(&b);
    return dups;
}

/* ----------------------------------------------------------- progress */

typedef struct progress {
    long scheduled, ready, inflight, retrying, dead, unknown, sent;
    long engagement;
} progress;

static int read_progress(queue *q, progress *pr, hr_err *err)
{
    memset(pr, 0, sizeof *pr);
    queue_lane_counts *c;
    int n;
    if (queue_counts(q, &c, &n, err) < 0) return -1;
    for (int i = 0; i < n; i++) {
        pr->scheduled += c[i].scheduled;
        pr->ready += c[i].ready;
        pr->inflight += c[i].inflight;
        pr->retrying += c[i].retrying;
        pr->dead += c[i].dead;
        pr->unknown += c[i].unknown;
        pr->sent += c[i].sent_total;
    }
    free(c);
    redisReply *r = redisCommand(queue_redis(q), "HGETALL {%s}:eng:totals", queue_ns(q));
    if (!r) return hr_err_set(err, "run: redis: %s", queue_redis(q)->errstr);
    for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k + 1 < r->elements; k += 2)
        if (strcmp(r->element[k]->str, "duplicate") != 0 &&
            strcmp(r->element[k]->str, "unmatched") != 0)
            pr->engagement += atol(r->element[k + 1]->str);
    freeReplyObject(r);
    return 0;
}

static void show_progress(run_state *s, const progress *pr, long base_sent, long total,
                          int64_t t0_ms, int final)
{
    if (s->quiet) return;
    long sent = pr->sent - base_sent;
    char line[256];
    snprintf(line, sizeof line,
             "%5.1fs  sent %ld/%ld | scheduled %ld ready %ld in flight %ld retrying %ld "
             "dead %ld | engagement %ld",
             (double)(hr_mono_ms() - t0_ms) / 1000.0, sent, total, pr->scheduled, pr->ready,
             pr->inflight, pr->retrying, pr->dead, pr->engagement);
    if (s->tty) {
        /* a line that wraps could not be redrawn in place: cut it */
        struct winsize ws;
        if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && ws.ws_col <= sizeof line)
            line[ws.ws_col - 1] = '\0';
        fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
    } else
        fprintf(stderr, "%s\n", line);
}

/* ---------------------------------------------------------------- run */

static int find_examples(char *out, size_t n, const char *self)
{
    /* the source tree's examples/ (build/cli/herald -> ../../examples), then
     * the installed copy */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", self);
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash) break;
        *slash = '\0';
        snprintf(out, n, "%s/examples/blog.wxr", dir);
        if (access(out, R_OK) == 0) return 0;
    }
    static const char *installed[] = {"/usr/local/share/doc/herald/examples/blog.wxr",
                                      "/usr/share/doc/herald/examples/blog.wxr"};
    for (size_t i = 0; i < HR_ARRAY_LEN(installed); i++)
        if (access(installed[i], R_OK) == 0) {
            snprintf(out, n, "%s", installed[i]);
            return 0;
        }
    return -1;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in) return -1;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, n, out);
    fclose(in);
    return fclose(out);
}

static int parse_secs(const char *name, const char *v, int lo, int hi, int *out)
{
    int64_t n;
    if (cli_opt_i64(name, v, lo, hi, &n) < 0) return -1;
    *out = (int)n;
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_state s;
    memset(&s, 0, sizeof s);
    const char *dir = cli_take_opt(&argc, argv, "state-dir");
    const char *file = cli_take_opt(&argc, argv, "import");
    const char *span_v = cli_take_opt(&argc, argv, "span");
    const char *timeout_v = cli_take_opt(&argc, argv, "timeout");
    const char *procs_v = cli_take_opt(&argc, argv, "processes");
    s.quiet = cli_has_flag(&argc, argv, "quiet");
    int fresh = cli_has_flag(&argc, argv, "fresh");
    int span_s = 20, timeout_s = 55, procs = 2;
    int bad = cli_args_left(argc, argv, 0, 0);
    if (bad) return bad;
    if ((span_v && parse_secs("span", span_v, 0, 3600, &span_s) < 0) ||
        (timeout_v && parse_secs("timeout", timeout_v, 5, 86400, &timeout_s) < 0) ||
        (procs_v && parse_secs("processes", procs_v, 1, 64, &procs) < 0))
        return 2;
    if (!dir) dir = getenv("HERALD_STATE_DIR");
    if (!dir || !*dir) dir = ".state";
    ssize_t sl = readlink("/proc/self/exe", s.self, sizeof s.self - 1);
    if (sl <= 0) {
        fprintf(stderr, "herald run: cannot find my own binary\n");
        return 1;
    }
    s.self[sl] = '\0';
    if (mkdir_p(dir, 0700) < 0 || !realpath(dir, s.dir)) {
        fprintf(stderr, "herald run: state dir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* one run per state dir: two would share a Redis socket and its file */
    char lock[PATH_MAX + 16];
    snprintf(lock, sizeof lock, "%s/lock", s.dir);
    int lockfd = open(lock, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "herald run: %s is in use by another herald run\n", s.dir);
        if (lockfd >= 0) close(lockfd);
        return 1;
    }
    char logs[PATH_MAX + 16], example[PATH_MAX + 32], contacts[PATH_MAX + 32];
    snprintf(logs, sizeof logs, "%s/logs", s.dir);
    mkdir_p(logs, 0700);
    if (!file) {
        if (find_examples(example, sizeof example, s.self) < 0) {
            fprintf(stderr, "herald run: the bundled examples/blog.wxr is missing; name an "
                            "export with --import FILE\n");
            return 2;
        }
        file = example;
    }
    if (access(file, R_OK) < 0) {
        fprintf(stderr, "herald run: --import %s: %s\n", file, strerror(errno));
        return 2;
    }
    /* the campaign's contacts sit next to the export (or a default list) */
    snprintf(contacts, sizeof contacts, "%s/contacts.csv", s.dir);
    {
        char src[PATH_MAX + 64];
        snprintf(src, sizeof src, "%s", file);
        char *slash = strrchr(src, '/');
        if (slash) snprintf(slash + 1, sizeof src - (size_t)(slash + 1 - src), "contacts.csv");
        if (!slash || copy_file(src, contacts) < 0)
            write_file(contacts, "Email,First Name\ndemo@example.com,Demo\n", 0600);
    }
    if (strlen(s.dir) > 90) {
        /* a unix socket path must fit in sun_path (108 bytes) */
        fprintf(stderr, "herald run: state dir path too long for a unix socket: %s\n", s.dir);
        return 2;
    }
    snprintf(s.sock, sizeof s.sock, "%s/redis.sock", s.dir);
    snprintf(s.conf, sizeof s.conf, "%s/herald.conf", s.dir);
    s.sandbox_port = free_port();
    s.webhooks_port = free_port();
    s.tty = isatty(2);
    if (s.sandbox_port < 0 || s.webhooks_port < 0 || write_config(&s) < 0) {
        fprintf(stderr, "herald run: cannot write %s: %s\n", s.conf, strerror(errno));
        return 1;
    }
    hr_err err = {0};
    hr_config *cfg = hr_config_load(s.conf, &err);
    if (!cfg) {
        fprintf(stderr, "herald run: %s\n", err.msg);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int64_t t0 = hr_mono_ms();
    int rc = 1;
    queue *q = NULL;
    if (!s.quiet) fprintf(stderr, "herald run: state in %s (logs in %s)\n", s.dir, logs);

    /* 1. a private Redis: unix socket only, append-only file in the state dir */
    char *redis_argv[] = {"redis-server",
                          "--port",
                          "0",
                          "--unixsocket",
                          s.sock,
                          "--unixsocketperm",
                          "700",
                          "--dir",
                          s.dir,
                          "--appendonly",
                          "yes",
                          "--save",
                          "",
                          "--daemonize",
                          "no",
                          NULL};
    if (spawn(&s, CH_REDIS, redis_argv) < 0 || wait_until(&s, CH_REDIS, redis_up, NULL, 10000) < 0)
        goto done;
    char url[PATH_MAX + 80];
    snprintf(url, sizeof url, "unix://%s", s.sock);
    queue_opts qo = {.url = url, .ns = RUN_NS};
    if (!(q = queue_connect(&qo, &err))) {
        fprintf(stderr, "herald run: %s\n", err.msg);
        goto done;
    }

    if (fresh && drop_namespace(q, RUN_NS, &err) < 0) goto fail;

    /* 2. the sandbox (it writes the key its SendGrid events are signed with),
     * then the webhooks server that checks them */
    char pem[PATH_MAX + 64], sp[32], wurl[64];
    snprintf(pem, sizeof pem, "%s/sandbox-sendgrid.pem", s.dir);
    unlink(pem);
    snprintf(sp, sizeof sp, "127.0.0.1:%d", s.sandbox_port);
    snprintf(wurl, sizeof wurl, "http://127.0.0.1:%d", s.webhooks_port);
    char *sandbox_argv[] = {
        s.self,       "--config", s.conf,          "sandbox", "--listen", sp,
        "--webhooks", wurl,       "--auto-events", "--seed",  "1",        "--sendgrid-pubkey-out",
        pem,          NULL};
    if (spawn(&s, CH_SANDBOX, sandbox_argv) < 0 ||
        wait_until(&s, CH_SANDBOX, port_up, &s.sandbox_port, 10000) < 0 ||
        wait_until(&s, CH_SANDBOX, file_up, pem, 10000) < 0)
        goto done;
    char pem_conf[PATH_MAX + 32];
    snprintf(pem_conf, sizeof pem_conf, "%s/sendgrid.pem", s.dir);
    if (copy_file(pem, pem_conf) < 0) {
        fprintf(stderr, "herald run: cannot copy %s\n", pem);
        goto done;
    }
    char *webhooks_argv[] = {s.self, "--config", s.conf, "webhooks", NULL};
    if (spawn(&s, CH_WEBHOOKS, webhooks_argv) < 0 ||
        wait_until(&s, CH_WEBHOOKS, port_up, &s.webhooks_port, 10000) < 0)
        goto done;

    /* 3. the scheduler, the import, the workers */
    char *sched_argv[] = {s.self, "--config", s.conf, "scheduler", NULL};
    if (spawn(&s, CH_SCHEDULER, sched_argv) < 0) goto done;
    progress pr;
    if (read_progress(q, &pr, &err) < 0) goto fail;
    long base_sent = pr.sent, base_eng = pr.engagement, total = 0;
    if (import(&s, cfg, file, q, (int64_t)span_s * 1000, &total, &err) < 0) goto fail;
    char procs_s[16];
    snprintf(procs_s, sizeof procs_s, "%d", procs);
    char *worker_argv[] = {
        s.self, "--config",           s.conf, "worker", "--processes", procs_s, "--concurrency",
        "16",   "--shutdown-timeout", "10s",  NULL};
    if (spawn(&s, CH_WORKER, worker_argv) < 0) goto done;

    /* 4. watch the jobs flow until all are settled and engagement is back */
    int64_t deadline = t0 + (int64_t)timeout_s * 1000, last_line = 0;
    int settled = 0;
    while (!interrupted) {
        if (read_progress(q, &pr, &err) < 0) goto fail;
        long open = pr.scheduled + pr.ready + pr.inflight + pr.retrying + pr.unknown;
        int engaged = total == 0 || pr.engagement > base_eng;
        if (open == 0 && engaged) {
            settled = 1;
            break;
        }
        for (int ch = 0; ch < CH_COUNT; ch++)
            if (!alive(&s, ch)) {
                fprintf(stderr, "\nherald run: %s exited; see %s/logs/%s.log\n", child_names[ch],
                        s.dir, child_names[ch]);
                goto done;
            }
        int64_t now = hr_mono_ms();
        if (now >= deadline) break;
        if (s.tty || now - last_line >= 5000) {
            show_progress(&s, &pr, base_sent, total, t0, 0);
            last_line = now;
        }
        sleep_ms(200);
    }
    show_progress(&s, &pr, base_sent, total, t0, 1);
    if (interrupted) {
        fprintf(stderr, "herald run: interrupted; stopping (jobs left stay queued in %s)\n", s.dir);
        rc = 130;
    } else if (!settled) {
        fprintf(stderr, "herald run: not finished after %d s; stopping\n", timeout_s);
    } else {
        rc = 0;
    }
    /* stop the senders first, so the table shows where everything ended */
    stop(&s, CH_WORKER, 15000);
    stop(&s, CH_SCHEDULER, 5000);
    /* read again now that nothing moves: the counts are read lane by lane,
     * so the read that saw the last job leave flight may predate its ack's
     * sent count (a run once reported 59 of 60 sent) */
    if (read_progress(q, &pr, &err) < 0) goto fail;
    if (!s.quiet) fprintf(stderr, "\n");
    if (cli_stats_report(q, cfg, stdout, &err) < 0) goto fail;
    long received = 0, dups = save_sandbox_record(&s, &received);
    printf("\nthis run: %ld sent, %ld new engagement events; the sandbox received %ld "
           "requests, %ld duplicate sends; %.1f s\n",
           pr.sent - base_sent, pr.engagement - base_eng, received, dups,
           (double)(hr_mono_ms() - t0) / 1000.0);
    fflush(stdout);
    goto done;
fail:
    fprintf(stderr, "herald run: %s\n", err.msg);
    rc = 1;
done:
    queue_free(q);
    stop_all(&s);
    hr_config_free(cfg);
    if (interrupted && rc != 130) rc = 130;
    return rc;
}
