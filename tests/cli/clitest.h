/* clitest.h: what the tests of the herald command share: a private Redis,
 * a temp dir with a config (namespace t, a credential file x-a) and a queue
 * handle on it, and herald_io, which runs the built binary with that config.
 * Header-only (static): each test is one file. */
#ifndef HERALD_CLITEST_H
#define HERALD_CLITEST_H

#include <stdarg.h>
#include <stdlib.h>

#include "harness.h"
#include "queue.h"

static th_redis *R;
static queue *Q;
static char *dir;
static char conf[700];

/* herald_v runs herald --config conf with the arguments in ap (NULL-ended);
 * stdout, and stderr too when both, go into *out (may be NULL). Returns the
 * exit status. */
static inline int herald_v(int both, char **out, va_list ap)
{
    char *argv[40];
    int n = 0;
    argv[n++] = HERALD_BIN;
    argv[n++] = "--config";
    argv[n++] = conf;
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 38)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    return th_exec(argv, NULL, both, out);
}

static inline int herald_io(int both, char **out, ...)
{
    va_list ap;
    va_start(ap, out);
    int rc = herald_v(both, out, ap);
    va_end(ap);
    return rc;
}
/* herald: stdout only; herald2: stdout and stderr */
#define herald(...) herald_io(0, __VA_ARGS__)
#define herald2(...) herald_io(1, __VA_ARGS__)

/* clitest_start starts Redis, writes the config (redis-url, namespace t,
 * credentials-dir, then the lines of extra) with the credential file x-a,
 * sets HERALD_SECRET and connects Q. Returns 0, or -1 (said why). */
static inline int clitest_start(const char *extra)
{
    R = th_redis_start(0, NULL);
    dir = th_tempdir();
    char cred[700];
    snprintf(cred, sizeof cred, "%s/x-a", dir);
    th_write_file(cred, "token-a\n");
    snprintf(conf, sizeof conf, "%s/herald.conf", dir);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace t\ncredentials-dir %s\n%s", R->sock,
                             dir, extra);
    th_write_file(conf, text);
    free(text);
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    unsetenv("CREDENTIALS_DIRECTORY");
    char url[400];
    snprintf(url, sizeof url, "unix://%s", R->sock);
    queue_opts o = {.url = url, .ns = "t"};
    hr_err err = {0};
    Q = queue_connect(&o, &err);
    if (!Q) fprintf(stderr, "connect: %s\n", err.msg);
    return Q ? 0 : -1;
}

#endif
