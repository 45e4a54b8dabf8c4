/* harness.h: what every herald test uses: checks that count failures, a
 * private redis-server per test process (temp dir, unix socket, killed at
 * exit), waiting on a condition with a deadline, and child processes. */
#ifndef HERALD_HARNESS_H
#define HERALD_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

extern int th_failures;
extern const char *th_current;

#define CHECK(c)                                                                     \
    do {                                                                             \
        if (!(c)) {                                                                  \
            th_failures++;                                                           \
            fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__,    \
                    th_current, #c);                                                 \
        }                                                                            \
    } while (0)

#define CHECK_INT(a, b)                                                              \
    do {                                                                             \
        long long _a = (long long)(a), _b = (long long)(b);                          \
        if (_a != _b) {                                                              \
            th_failures++;                                                           \
            fprintf(stderr, "%s:%d: [%s] %s == %lld, expected %s == %lld\n", __FILE__, \
                    __LINE__, th_current, #a, _a, #b, _b);                           \
        }                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                              \
    do {                                                                             \
        const char *_a = (a), *_b = (b);                                             \
        if (!_a || !_b || strcmp(_a, _b) != 0) {                                     \
            th_failures++;                                                           \
            fprintf(stderr, "%s:%d: [%s] %s == \"%s\", expected \"%s\"\n", __FILE__,  \
                    __LINE__, th_current, #a, _a ? _a : "(null)", _b ? _b : "(null)"); \
        }                                                                            \
    } while (0)

/* REQUIRE stops the current test function when c is false. */
#define REQUIRE(c)                                                                   \
    do {                                                                             \
        if (!(c)) {                                                                  \
            th_failures++;                                                           \
            fprintf(stderr, "%s:%d: [%s] required: %s\n", __FILE__, __LINE__,        \
                    th_current, #c);                                                 \
            return;                                                                  \
        }                                                                            \
    } while (0)

/* th_run runs one test function and reports it; th_main_end returns the exit
 * status for main(). Run a single test with TH_ONLY=name. */
void th_run(const char *name, void (*fn)(void));
int th_main_end(void);

/* ---- a private redis-server */
typedef struct th_redis {
    char dir[256];
    char sock[300];
    int port; /* TCP port on 127.0.0.1, 0 when not listening on TCP */
    pid_t pid;
} th_redis;

/* th_redis_start starts redis-server in a new temp dir on a unix socket (and,
 * with tcp, a free loopback port), waits until it answers PING and registers
 * it to be killed at exit. Extra "--opt value" arguments may follow, ending
 * with NULL. Aborts the test process when it cannot start. */
th_redis *th_redis_start(int tcp, ...);
void th_redis_stop(th_redis *r);    /* SIGKILL; keeps the dir */
void th_redis_restart(th_redis *r); /* start again on the same socket/dir */
/* th_redis_cmd runs a command through redis-cli-free hiredis and returns its
 * reply as a new string (integers printed, arrays joined with '\n'). */
char *th_redis_cmd(th_redis *r, const char *fmt, ...);

/* ---- waiting and processes */
/* th_wait_for polls cond(arg) every 2 ms until it is true or timeout_ms pass;
 * returns 1 when it became true. */
int th_wait_for(int (*cond)(void *), void *arg, int timeout_ms);
/* th_spawn starts argv[0] (a path) with argv; stdout and stderr go to
 * out_path when given. Registered to be killed at exit. */
pid_t th_spawn(char *const argv[], const char *out_path);
/* th_exec runs argv[0] (a path) with argv and waits for it: input (or
 * nothing) on its stdin; its stdout, and its stderr too when with_stderr, in
 * *out (caller frees; out NULL discards). Uncaptured stderr goes to
 * /dev/null unless TH_VERBOSE is set. Returns the exit status, -1 when it
 * did not exit. */
int th_exec(char *const argv[], const char *input, int with_stderr, char **out);
void th_kill(pid_t pid, int sig);  /* kill and reap */
int th_free_port(void);            /* a currently free loopback TCP port */
char *th_tempdir(void);            /* a new temp dir (caller frees the string) */
char *th_read_file(const char *path, size_t *len); /* NULL when missing */
void th_write_file(const char *path, const char *data);
/* th_http fetches http://127.0.0.1:port path with libcurl; returns status,
 * body in *body (caller frees). method NULL is GET. */
int th_http(int port, const char *method, const char *path, const char *headers[],
            const char *body, char **resp_body);

/* ---- Prometheus text */
/* th_check_exposition checks a /metrics page (format 0.0.4): every sample's
 * family has # HELP and # TYPE before it; every histogram series has the
 * same le buckets as the family's others, +Inf last and equal to _count,
 * cumulative counts, and _sum and _count. Returns NULL when it holds, else
 * the first problem (caller frees). */
char *th_check_exposition(const char *text);

/* ---- an SMTP sink */
/* th_smtp_start forks a minimal SMTP server on a free loopback port (set in
 * *port): it answers RFC 5321's happy path, ends each DATA with data_code
 * (250, 450, 550...; 0: takes the message and closes the connection
 * unanswered), and appends every command line and each message, whole and
 * before its answer, to log_path. Registered to be killed at exit (or
 * th_kill it). */
pid_t th_smtp_start(int data_code, const char *log_path, int *port);

#endif
