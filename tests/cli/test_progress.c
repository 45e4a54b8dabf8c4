/* test_progress.c: `herald import` shows a progress bar on stderr when
 * stderr is a terminal (a pseudo-terminal here), and not when it is a file
 * or with --no-progress; the import itself is the same either way. A dry
 * run shows it too. */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "harness.h"

enum { ITEMS = 3000 };
static th_redis *R;
static char *dir;
static char conf[700], wxr[700];

/* write_wxr writes a WordPress export of n future posts. */
static void write_wxr(const char *path, int n)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<rss version=\"2.0\""
                    " xmlns:content=\"http://purl.org/rss/1.0/modules/content/\""
                    " xmlns:wp=\"http://wordpress.org/export/1.2/\">\n<channel>\n"
                    "<title>Progress</title>\n<wp:wxr_version>1.2</wp:wxr_version>\n");
    time_t base = time(NULL) + 7 * 86400;
    for (int i = 0; i < n; i++) {
        time_t t = base + i * 60;
        struct tm tm;
        gmtime_r(&t, &tm);
        char date[32];
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
        hr_buf_printf(&b,
                      "<item><title>Post %d</title><link>https://blog.example.com/%d/</link>"
                      "<content:encoded><![CDATA[<p>Body %d</p>]]></content:encoded>"
                      "<wp:post_id>%d</wp:post_id><wp:post_date_gmt>%s</wp:post_date_gmt>"
                      "<wp:status>future</wp:status><wp:post_type>post</wp:post_type></item>\n",
                      i, i, i, i + 1, date);
    }
    hr_buf_puts(&b, "</channel>\n</rss>\n");
    th_write_file(path, b.data);
    hr_buf_release(&b);
}

/* import runs `herald import` with stderr on a pseudo-terminal (tty) or a
 * file; returns its exit status and what it wrote to stderr in *err. */
static int import(int tty, const char *extra, char **err)
{
    char errpath[700];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    int master = -1, slave = -1;
    if (tty && openpty(&master, &slave, NULL, NULL, NULL) < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        int e = tty ? slave : open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(nul, 1);
        dup2(e, 2);
        char *argv[] = {HERALD_BIN, "--config", conf, "import", (char *)wxr, (char *)extra, NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    hr_buf b;
    hr_buf_init(&b);
    if (tty) {
        close(slave);
        char buf[4096];
        ssize_t r;
        /* the master reads EIO once the child has closed the terminal */
        while ((r = read(master, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
            if (r > 0) hr_buf_append(&b, buf, (size_t)r);
        close(master);
    }
    int st;
    waitpid(pid, &st, 0);
    if (!tty) {
        char *text = th_read_file(errpath, NULL);
        hr_buf_puts(&b, text ? text : "");
        free(text);
    }
    hr_buf_putc(&b, '\0');
    *err = hr_buf_detach(&b);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* shows_bar imports on a terminal with extra (or none): the bar is shown
 * and the campaign then has jobs (a count) */
static void shows_bar(const char *extra, const char *jobs)
{
    char *err = NULL;
    CHECK_INT(import(1, extra, &err), 0);
    char want[64];
    snprintf(want, sizeof want, "/%d items", ITEMS);
    CHECK(err && strstr(err, "\rimport [#"));
    CHECK(err && strstr(err, want));
    free(err);
    char *n = th_redis_cmd(R, "HLEN {p}:jobs");
    CHECK_STR(n, jobs);
    free(n);
}

static void bar_on_a_terminal(void)
{
    shows_bar(NULL, "3000");
}

/* a dry run reads and plans the same export: it shows the bar too, and
 * writes nothing */
static void bar_on_a_dry_run(void)
{
    shows_bar("--dry-run", "0");
}

static void no_bar_in_a_file(void)
{
    char *err = NULL;
    CHECK_INT(import(0, NULL, &err), 0); /* the same export again: adds nothing */
    CHECK(err && !strstr(err, "import ["));
    free(err);
    CHECK_INT(import(1, "--no-progress", &err), 0);
    CHECK(err && !strstr(err, "import ["));
    free(err);
    char *n = th_redis_cmd(R, "HLEN {p}:jobs");
    CHECK_STR(n, "3000");
    free(n);
}

int main(void)
{
    R = th_redis_start(0, NULL);
    dir = th_tempdir();
    snprintf(wxr, sizeof wxr, "%s/export.xml", dir);
    write_wxr(wxr, ITEMS);
    char *text = hr_asprintf("redis-url unix://%s\nnamespace p\n"
                             "account x:@a tz=Europe/Paris\n"
                             "campaign c platforms=x:@a \"template={{title}} {{link}}\"\n",
                             R->sock);
    snprintf(conf, sizeof conf, "%s/herald.conf", dir);
    th_write_file(conf, text);
    free(text);
    setenv("HERALD_SECRET", "test-secret-0123456789abcdef", 1);
    th_run("bar_on_a_dry_run", bar_on_a_dry_run);
    th_run("bar_on_a_terminal", bar_on_a_terminal);
    th_run("no_bar_in_a_file", no_bar_in_a_file);
    free(dir);
    return th_main_end();
}
