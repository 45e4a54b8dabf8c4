/* harness.c: the test runner, private redis-servers and child processes. */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int th_failures;
const char *th_current = "";
static int th_ran;

#define MAX_CHILDREN 64
static pid_t children[MAX_CHILDREN];
static int nchildren;
static th_redis *servers[16];
static int nservers;
#define MAX_TEMPDIRS 64
static char *tempdirs[MAX_TEMPDIRS]; /* removed at exit when no check failed */
static int ntempdirs;

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */
    }
}

/* A failed run keeps its temp dirs (logs, configs) for the developer. */
static pid_t owner; /* a forked child that calls exit() must not remove them */
static void remove_tempdirs(void)
{
    if (getpid() != owner) return;
    for (int i = 0; i < ntempdirs; i++) {
        if (!th_failures) rm_rf(tempdirs[i]);
        else fprintf(stderr, "kept %s\n", tempdirs[i]);
        free(tempdirs[i]);
    }
    ntempdirs = 0;
}

static void kill_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    nchildren = 0;
    for (int i = 0; i < nservers; i++) {
        rm_rf(servers[i]->dir);
        free(servers[i]);
    }
    nservers = 0;
}

static void on_signal(int sig)
{
    kill_children();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void setup_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    owner = getpid();
    atexit(remove_tempdirs); /* runs after kill_children: no child still writes */
    atexit(kill_children);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
}

void th_run(const char *name, void (*fn)(void))
{
    const char *only = getenv("TH_ONLY");
    if (only && strcmp(only, name) != 0) return;
    setup_once();
    th_current = name;
    int before = th_failures;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    fn();
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    fprintf(stderr, "%s %s (%ld ms)\n", th_failures == before ? "ok  " : "FAIL", name, ms);
    th_ran++;
}

int th_main_end(void)
{
    fprintf(stderr, "%d tests, %d failed checks\n", th_ran, th_failures);
    return th_failures ? 1 : 0;
}

static void track(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] <= 0) {
            children[i] = pid;
            return;
        }
    if (nchildren < MAX_CHILDREN) children[nchildren++] = pid;
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid) children[i] = 0;
}

pid_t th_spawn(char *const argv[], const char *out_path)
{
    setup_once();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        /* die with the test process, and never hold its output pipe open */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *f = freopen(out_path ? out_path : "/dev/null", "a", stdout);
        if (f) dup2(fileno(stdout), 2);
        setpgid(0, 0);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    track(pid);
    return pid;
}

int th_exec(char *const argv[], const char *input, int with_stderr, char **out)
{
    FILE *in = tmpfile(); /* a file, not a pipe: no deadlock on big inputs */
    int fd[2];
    if (!in || pipe(fd) < 0) abort();
    if (input) fputs(input, in);
    fflush(in);
    rewind(in);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fileno(in), 0);
        dup2(fd[1], 1);
        if (with_stderr) dup2(fd[1], 2);
        else if (!getenv("TH_VERBOSE")) {
            int nul = open("/dev/null", O_WRONLY);
            if (nul >= 0) dup2(nul, 2);
        }
        close(fd[0]);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    fclose(in);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd[0], buf + n, cap - n - 1)) > 0 || (r < 0 && errno == EINTR)) {
        if (r > 0) n += (size_t)r;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void th_kill(pid_t pid, int sig)
{
    if (pid <= 0) return;
    kill(pid, sig);
    waitpid(pid, NULL, 0);
    untrack(pid);
}

char *th_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/herald-test-XXXXXX", base ? base : "/tmp");
    setup_once();
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        abort();
    }
    if (ntempdirs < MAX_TEMPDIRS) tempdirs[ntempdirs++] = strdup(tmpl);
    return strdup(tmpl);
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) abort();
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static const char *redis_server_path(void)
{
    const char *e = getenv("REDIS_SERVER");
    if (e) return e;
    if (access("/usr/bin/redis-server", X_OK) == 0) return "/usr/bin/redis-server";
    return "/usr/local/bin/redis-server";
}

static int redis_ping(th_redis *r)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *rep = redisCommand(c, "PING");
        ok = rep && rep->type == REDIS_REPLY_STATUS;
        if (rep) freeReplyObject(rep);
    }
    if (c) redisFree(c);
    return ok;
}

static char *extra_args[32];
static int nextra;

static void launch(th_redis *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)redis_server_path();
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--unixsocket";
    argv[n++] = r->sock;
    argv[n++] = "--dir";
    argv[n++] = r->dir;
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--logfile";
    argv[n++] = "redis.log";
    for (int i = 0; i < nextra && n < 62; i++) argv[n++] = extra_args[i];
    argv[n] = NULL;
    r->pid = th_spawn(argv, NULL);
    for (int i = 0; i < 2500; i++) {
        if (redis_ping(r)) return;
        usleep(2000);
    }
    fprintf(stderr, "harness: redis-server did not start in %s\n", r->dir);
    abort();
}

th_redis *th_redis_start(int tcp, ...)
{
    setup_once();
    th_redis *r = calloc(1, sizeof *r);
    char *d = th_tempdir();
    snprintf(r->dir, sizeof r->dir, "%s", d);
    free(d);
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    r->port = tcp ? th_free_port() : 0;
    va_list ap;
    va_start(ap, tcp);
    nextra = 0;
    const char *a;
    while ((a = va_arg(ap, const char *)) && nextra < 31) extra_args[nextra++] = (char *)a;
    va_end(ap);
    launch(r);
    if (nservers < 16) servers[nservers++] = r;
    return r;
}

void th_redis_stop(th_redis *r)
{
    th_kill(r->pid, SIGKILL);
    r->pid = 0;
    unlink(r->sock);
}

void th_redis_restart(th_redis *r)
{
    if (r->pid) th_redis_stop(r);
    launch(r);
}

char *th_redis_cmd(th_redis *r, const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(r->sock, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    va_end(ap);
    char *out = NULL;
    if (rep && rep->type == REDIS_REPLY_ERROR) {
        /* a test's Redis command must not fail: a wrong key type or a typo
         * would otherwise read as 0 */
        th_failures++;
        fprintf(stderr, "[%s] redis error: %s\n", th_current, rep->str);
    }
    if (rep) {
        size_t cap = 64, len = 0;
        out = malloc(cap);
        out[0] = '\0';
#define APPEND(s, n)                                                                 \
    do {                                                                             \
        while (len + (n) + 2 > cap) out = realloc(out, cap *= 2);                    \
        memcpy(out + len, s, n);                                                     \
        len += n;                                                                    \
        out[len] = '\0';                                                             \
    } while (0)
        if (rep->type == REDIS_REPLY_INTEGER) {
            char tmp[32];
            int n = snprintf(tmp, sizeof tmp, "%lld", rep->integer);
            APPEND(tmp, (size_t)n);
        } else if (rep->type == REDIS_REPLY_ARRAY) {
            for (size_t i = 0; i < rep->elements; i++) {
                redisReply *e = rep->element[i];
                if (i) APPEND("\n", 1);
                if (e->type == REDIS_REPLY_INTEGER) {
                    char tmp[32];
                    int n = snprintf(tmp, sizeof tmp, "%lld", e->integer);
                    APPEND(tmp, (size_t)n);
                } else if (e->str) {
                    APPEND(e->str, e->len);
                }
            }
        } else if (rep->str) {
            APPEND(rep->str, rep->len);
        }
#undef APPEND
        freeReplyObject(rep);
    }
    redisFree(c);
    return out;
}

int th_wait_for(int (*cond)(void *), void *arg, int timeout_ms)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        if (cond(arg)) return 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
        if (ms > timeout_ms) return 0;
        usleep(2000);
    }
}

char *th_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0, r;
    char *p = malloc(cap);
    while ((r = fread(p + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) p = realloc(p, cap *= 2);
    }
    fclose(f);
    p[n] = '\0';
    if (len) *len = n;
    return p;
}

void th_write_file(const char *path, const char *data)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(data, f);
    fclose(f);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    char **out = ud;
    size_t old = *out ? strlen(*out) : 0;
    *out = realloc(*out, old + size * n + 1);
    memcpy(*out + old, p, size * n);
    (*out)[old + size * n] = '\0';
    return size * n;
}

int th_http(int port, const char *method, const char *path, const char *headers[],
            const char *body, char **resp_body)
{
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *out = NULL;
    struct curl_slist *h = NULL;
    for (int i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (resp_body)
        *resp_body = out;
    else
        free(out);
    return (int)status;
}

/* One SMTP session on fd: commands and messages go to log (O_APPEND, one
 * write per line or message, so concurrent sessions do not tear them). */
static void smtp_session(int fd, int log, int data_code)
{
    FILE *in = fdopen(fd, "r");
    char line[4096], reply[64];
    char *msg = NULL;
    size_t msg_len = 0, msg_cap = 0;
    int in_data = 0;
#define SAY(s) (void)!write(fd, s, strlen(s))
    SAY("220 sink ESMTP\r\n");
    while (in && fgets(line, sizeof line, in)) {
        size_t n = strlen(line);
        if (in_data) {
            if (strcmp(line, ".\r\n") != 0) {
                if (msg_len + n + 1 > msg_cap) msg = realloc(msg, msg_cap = 2 * (msg_cap + n + 1));
                memcpy(msg + msg_len, line, n);
                msg_len += n;
                continue;
            }
            (void)!write(log, msg, msg_len);
            (void)!write(log, ".\r\n", 3);
            if (data_code == 0) break; /* taken, and the answer lost */
            msg_len = 0;
            in_data = 0;
            snprintf(reply, sizeof reply, "%d %s\r\n", data_code,
                     data_code / 100 == 2 ? "queued" : "no");
            SAY(reply);
            continue;
        }
        (void)!write(log, line, n);
        if (strncasecmp(line, "EHLO", 4) == 0)
            SAY("250-sink\r\n250 8BITMIME\r\n");
        else if (strncasecmp(line, "DATA", 4) == 0) {
            in_data = 1;
            SAY("354 go ahead\r\n");
        } else if (strncasecmp(line, "QUIT", 4) == 0) {
            SAY("221 bye\r\n");
            break;
        } else
            SAY("250 ok\r\n");
    }
#undef SAY
    free(msg);
    if (in) fclose(in);
}

pid_t th_smtp_start(int data_code, const char *log_path, int *port)
{
    setup_once();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("th_smtp_start");
        abort();
    }
    *port = ntohs(a.sin_port);
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) {
        perror(log_path);
        abort();
    }
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGCHLD, SIG_IGN); /* sessions are reaped by the kernel */
        for (;;) {
            int fd = accept(lfd, NULL, NULL);
            if (fd < 0) continue;
            if (fork() == 0) { /* one process per session: curl may hold two */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(lfd);
                smtp_session(fd, log, data_code);
                _exit(0);
            }
            close(fd);
        }
    }
    close(lfd);
    close(log);
    track(pid);
    return pid;
}

/* ---- Prometheus text */

typedef struct th_family {
    char name[128];
    int help, typed, histogram;
} th_family;

typedef struct th_series { /* one histogram series: its labels but le */
    const th_family *f;
    char labels[512], les[1024];
    double last, inf, count;
    int has_inf, has_sum, has_count;
} th_series;

static char *expo_problem(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = malloc(1024);
    vsnprintf(m, 1024, fmt, ap);
    va_end(ap);
    return m;
}

static th_family *expo_family(th_family *fs, int nf, const char *name, size_t len)
{
    for (int i = 0; i < nf; i++)
        if (strlen(fs[i].name) == len && strncmp(fs[i].name, name, len) == 0) return &fs[i];
    return NULL;
}

char *th_check_exposition(const char *text)
{
    enum { MAXF = 256, MAXS = 512 };
    th_family *fs = calloc(MAXF, sizeof *fs);
    th_series *ss = calloc(MAXS, sizeof *ss);
    int nf = 0, ns = 0;
    char *problem = NULL, line[2048];
    for (const char *p = text; *p && !problem;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        p += len + (end != NULL);
        char name[128], word[32];
        if (line[0] == '#') {
            int help = sscanf(line, "# HELP %127s", name) == 1;
            int type = !help && sscanf(line, "# TYPE %127s %31s", name, word) == 2;
            if (!help && !type) continue; /* a comment */
            th_family *f = expo_family(fs, nf, name, strlen(name));
            if (!f && nf < MAXF) {
                f = &fs[nf++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            if (!f) continue;
            if (help) f->help = 1;
            else {
                f->typed = 1;
                f->histogram = strcmp(word, "histogram") == 0;
            }
            continue;
        }
        if (!line[0]) continue;
        size_t nlen = strcspn(line, "{ ");
        const char *sp = strrchr(line, ' ');
        if (!sp || nlen == 0) {
            problem = expo_problem("not a sample: \"%s\"", line);
            break;
        }
        double value = strtod(sp + 1, NULL);
        th_family *f = expo_family(fs, nf, line, nlen);
        const char *suffix = NULL;
        if (!f || !f->typed) {
            static const char *sufs[] = {"_bucket", "_sum", "_count"};
            for (int i = 0; i < 3 && !suffix; i++) {
                size_t sl = strlen(sufs[i]);
                if (nlen > sl && strncmp(line + nlen - sl, sufs[i], sl) == 0) {
                    th_family *h = expo_family(fs, nf, line, nlen - sl);
                    if (h && h->histogram) {
                        f = h;
                        suffix = sufs[i];
                    }
                }
            }
        }
        if (!f || !f->help || !f->typed) {
            problem = expo_problem("%.*s: no # HELP and # TYPE before its sample", (int)nlen, line);
            break;
        }
        if (!f->histogram) continue;
        if (!suffix) {
            problem = expo_problem("%s: a histogram sample without a suffix", line);
            break;
        }
        /* the labels but le, and le */
        char labels[512] = "", le[64] = "";
        if (line[nlen] == '{') {
            const char *close = strrchr(line, '}');
            const char *l = line + nlen + 1;
            size_t n = close ? (size_t)(close - l) : 0;
            char all[512];
            snprintf(all, sizeof all, "%.*s", (int)n, l);
            for (char *tok = strtok(all, ","); tok; tok = strtok(NULL, ",")) {
                if (strncmp(tok, "le=\"", 4) == 0) {
                    snprintf(le, sizeof le, "%.*s", (int)strcspn(tok + 4, "\""), tok + 4);
                    continue;
                }
                size_t have = strlen(labels);
                snprintf(labels + have, sizeof labels - have, "%s%s", have ? "," : "", tok);
            }
        }
        th_series *s = NULL;
        for (int i = 0; i < ns && !s; i++)
            if (ss[i].f == f && strcmp(ss[i].labels, labels) == 0) s = &ss[i];
        if (!s && ns < MAXS) {
            s = &ss[ns++];
            s->f = f;
            snprintf(s->labels, sizeof s->labels, "%s", labels);
        }
        if (!s) continue;
        if (strcmp(suffix, "_sum") == 0) s->has_sum = 1;
        else if (strcmp(suffix, "_count") == 0) {
            s->has_count = 1;
            s->count = value;
        } else if (!le[0] || s->has_inf || value < s->last) {
            problem = expo_problem("%s: %s", line,
                                   !le[0] ? "a bucket without le"
                                   : s->has_inf ? "a bucket after +Inf"
                                                : "counts not cumulative");
        } else {
            s->last = value;
            size_t have = strlen(s->les);
            snprintf(s->les + have, sizeof s->les - have, "%s|", le);
            if (strcmp(le, "+Inf") == 0) {
                s->has_inf = 1;
                s->inf = value;
            }
        }
    }
    for (int i = 0; i < ns && !problem; i++) {
        th_series *s = &ss[i];
        const th_series *first = NULL;
        for (int k = 0; k < i && !first; k++)
            if (ss[k].f == s->f) first = &ss[k];
        if (!s->has_inf || !s->has_sum || !s->has_count)
            problem = expo_problem("%s{%s}: lacks %s", s->f->name, s->labels,
                                   !s->has_inf ? "its +Inf bucket" : !s->has_sum ? "_sum" : "_count");
        else if (s->inf != s->count)
            problem = expo_problem("%s{%s}: _count %g is not the +Inf bucket's %g", s->f->name,
                                   s->labels, s->count, s->inf);
        else if (first && strcmp(first->les, s->les) != 0)
            problem = expo_problem("%s{%s}: buckets %s, not %s as {%s}", s->f->name, s->labels,
                                   s->les, first->les, first->labels);
    }
    free(fs);
    free(ss);
    return problem;
}
