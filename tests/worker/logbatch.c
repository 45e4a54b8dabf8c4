/* logbatch.c: the worker's batched log lines (hr_log_batch in common/log.c,
 * flushed once per loop iteration): nothing written until a flush, then
 * whole lines in order; a line that would not fit flushes the ones before
 * it; batch(0) flushes. stderr is a pipe here, as under systemd. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "harness.h"

static int saved_fd = -1, pipe_rd = -1;

/* capture points stderr at a non-blocking pipe; release restores it. */
static void capture(void)
{
    int fds[2];
    if (pipe(fds) != 0) abort();
    fflush(stderr);
    saved_fd = dup(2);
    dup2(fds[1], 2);
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[0], F_SETPIPE_SZ, 1 << 20); /* room for every test line */
    pipe_rd = fds[0];
}

static void release(void)
{
    dup2(saved_fd, 2);
    close(saved_fd);
    close(pipe_rd);
    saved_fd = pipe_rd = -1;
}

/* drain returns what the pipe holds now (a new string, maybe empty). */
static char *drain(void)
{
    size_t len = 0, cap = 1 << 16;
    char *s = malloc(cap + 1);
    for (;;) {
        if (len == cap) s = realloc(s, (cap *= 2) + 1);
        ssize_t n = read(pipe_rd, s + len, cap - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    s[len] = '\0';
    return s;
}

static int count_lines(const char *s, const char *msg)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, msg)); p++) n++;
    return n;
}

static void held_until_flush(void)
{
    capture();
    hr_log_batch(1);
    hr_log(HR_LOG_INFO, "job sent", "job", "j1", NULL);
    hr_log(HR_LOG_INFO, "job sent", "job", "j2", NULL);
    /* needs JSON escaping: the other path, batched as well */
    hr_log(HR_LOG_INFO, "job sent", "job", "j3", "detail", "a \"quoted\"\nline", NULL);
    char *before = drain();
    hr_log_flush();
    char *after = drain();
    hr_log_batch(0);
    hr_log(HR_LOG_INFO, "unbatched", NULL);
    char *direct = drain();
    release();
    CHECK_STR(before, "");
    CHECK_INT(count_lines(after, "\"job sent\""), 3);
    CHECK(strstr(after, "\"j1\"") < strstr(after, "\"j2\""));
    CHECK(strstr(after, "\"j2\"") < strstr(after, "\"j3\""));
    CHECK(strstr(after, "\\\"quoted\\\"\\nline") != NULL);
    CHECK_INT(count_lines(after, "\n"), 3);
    CHECK(after[strlen(after) - 1] == '\n');
    CHECK_INT(count_lines(direct, "\"unbatched\""), 1);
    char pid[32]; /* read once when batching began, still this process's */
    snprintf(pid, sizeof pid, "\"pid\":%d,", (int)getpid());
    CHECK_INT(count_lines(after, pid), 3);
    free(before);
    free(after);
    free(direct);
}

static void full_buffer_writes_whole_lines(void)
{
    enum { N = 200 }; /* about 100 bytes each: several PIPE_BUFs */
    capture();
    hr_log_batch(1);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "job%03d", i);
        hr_log(HR_LOG_INFO, "job sent", "job", id, NULL);
    }
    char *early = drain(); /* what filled the buffer went out, whole lines */
    hr_log_batch(0);       /* and the rest */
    char *rest = drain();
    release();
    CHECK(strlen(early) > 0);
    CHECK(early[strlen(early) - 1] == '\n');
    CHECK_INT(count_lines(early, "\"job sent\"") + count_lines(rest, "\"job sent\""), N);
    CHECK(count_lines(rest, "\"job sent\"") > 0);
    /* in order across the two */
    char *all = malloc(strlen(early) + strlen(rest) + 1);
    strcpy(all, early);
    strcat(all, rest);
    const char *p = all;
    for (int i = 0; i < N; i++) {
        char id[24];
        snprintf(id, sizeof id, "\"job%03d\"", i);
        const char *q = strstr(p, id);
        CHECK(q != NULL);
        if (!q) break;
        p = q;
    }
    free(all);
    free(early);
    free(rest);
}

int main(void)
{
    th_run("held_until_flush", held_until_flush);
    th_run("full_buffer_writes_whole_lines", full_buffer_writes_whole_lines);
    return th_main_end();
}
