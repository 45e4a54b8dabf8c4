/* import_bench.c: helpers for bench/import: "gen FILE N" writes a WordPress
 * export with N future-dated posts; "run OUT PID -- CMD..." runs CMD with
 * stdout to OUT and prints its wall time (s), peak RSS (KB), its CPU time
 * (user + system, s) and that of process PID (redis-server) meanwhile, so a
 * shared machine still shows where the time goes; "enqueue URL N"
 * enqueues N jobs of the same shape straight through queue_enqueue (the
 * reference: the queue's own bulk speed without parsing or planning). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"

static int gen(const char *path, long n)
{
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<rss version=\"2.0\"\n"
          " xmlns:excerpt=\"http://wordpress.org/export/1.2/excerpt/\"\n"
          " xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"\n"
          " xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
          " xmlns:wp=\"http://wordpress.org/export/1.2/\">\n<channel>\n"
          "<title>Bench</title>\n<wp:wxr_version>1.2</wp:wxr_version>\n",
          f);
    time_t base = time(NULL) + 86400;
    for (long i = 0; i < n; i++) {
        time_t t = base + i * 10;
        struct tm tm;
        gmtime_r(&t, &tm);
        char date[32];
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(f,
                "<item>\n<title>Post number %ld about queues</title>\n"
                "<link>https://blog.example.com/%ld/</link>\n<dc:creator><![CDATA[maya]]>"
                "</dc:creator>\n<content:encoded><![CDATA[<!-- wp:paragraph -->\n<p>Body of "
                "post %ld with <b>bold</b> text &amp; an entity.</p>\n<!-- /wp:paragraph -->"
                "]]></content:encoded>\n<excerpt:encoded><![CDATA[]]></excerpt:encoded>\n"
                "<wp:post_id>%ld</wp:post_id>\n<wp:post_date_gmt>%s</wp:post_date_gmt>\n"
                "<wp:status>future</wp:status>\n<wp:post_type>post</wp:post_type>\n"
                "<category domain=\"post_tag\" nicename=\"redis\"><![CDATA[redis]]></category>\n"
                "<category domain=\"post_tag\" nicename=\"c\"><![CDATA[c]]></category>\n"
                "</item>\n",
                i, i, i, i + 1, date);
    }
    fputs("</channel>\n</rss>\n", f);
    return fclose(f) == 0 ? 0 : 1;
}

/* cpu_s returns the user + system CPU time of process pid so far (s) */
static double cpu_s(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int run(const char *out, long watch, char **argv)
{
    double w0 = cpu_s(watch);
    int64_t t0 = hr_mono_us();
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0) _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (pid < 0 || wait4(pid, &status, 0, &ru) < 0) return 1;
    double s = (hr_mono_us() - t0) / 1e6;
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("%.3f %ld %.2f %.2f\n", s, ru.ru_maxrss, cpu, cpu_s(watch) - w0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int enqueue(const char *url, long n)
{
    queue_opts o = {.url = url, .ns = "ref"};
    hr_err err = {0};
    queue *q = queue_connect(&o, &err);
    if (!q) return fprintf(stderr, "import_bench: %s\n", err.msg), 1;
    static const char *plat[3][2] = {
        {"x", "@a"}, {"mastodon", "@a@m.example"}, {"bluesky", "@a.example"}};
    enum { B = 2000 };
    queue_job *v[B];
    int64_t t0 = hr_mono_us(), base = hr_now_ms() + 86400000;
    for (long i = 0; i < n;) {
        int k = 0;
        for (; k < B && i < n; k++, i++) {
            queue_job *j = v[k] = queue_job_new();
            queue_set(&j->platform, plat[i % 3][0]);
            queue_set(&j->account, plat[i % 3][1]);
            queue_set(&j->campaign, "bench");
            j->source = hr_asprintf("wxr:%ld", i / 3);
            j->unique_key =
                hr_asprintf("bench|wxr:%ld|%s|%s", i / 3, plat[i % 3][0], plat[i % 3][1]);
            j->text = hr_asprintf("Post number %ld about queues https://blog.example.com/%ld/ "
                                  "#redis #c",
                                  i / 3, i / 3);
            queue_set(&j->title, "Post number about queues");
            queue_set(&j->link, "https://blog.example.com/1/");
            queue_job_add_tag(j, "redis");
            queue_job_add_tag(j, "c");
            j->run_at_ms = base + (i / 3) * 10000;
        }
        if (queue_enqueue(q, v, k, NULL, &err) < 0)
            return fprintf(stderr, "import_bench: %s\n", err.msg), 1;
        for (int x = 0; x < k; x++)
            queue_job_free(v[x]);
    }
    double s = (hr_mono_us() - t0) / 1e6;
    printf("%.0f\n", n / s);
    queue_free(q);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "gen")) return gen(argv[2], atol(argv[3]));
    if (argc >= 6 && !strcmp(argv[1], "run") && !strcmp(argv[4], "--"))
        return run(argv[2], atol(argv[3]), argv + 5);
    if (argc == 4 && !strcmp(argv[1], "enqueue")) return enqueue(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: import_bench gen FILE N | run OUT PID -- CMD... | enqueue URL N\n");
    return 2;
}
