/* tdata.c: see tdata.h. */
#include "tdata.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"
#include "harness.h"

char *td_path(const char *rel) { return hr_asprintf("%s/tests/platforms/data/%s", HERALD_SRC, rel); }

char *td_unescape(const char *s)
{
    hr_buf b;
    hr_buf_init(&b);
    for (const char *p = s; *p; p++) {
        if (*p != '\\' || !p[1]) {
            hr_buf_putc(&b, *p);
            continue;
        }
        p++;
        switch (*p) {
        case 'n': hr_buf_putc(&b, '\n'); break;
        case 't': hr_buf_putc(&b, '\t'); break;
        case 'r': hr_buf_putc(&b, '\r'); break;
        case 'u': {
            if (p[1] != '{') break;
            char *end;
            long cp = strtol(p + 2, &end, 16);
            utf8proc_uint8_t enc[4];
            hr_buf_append(&b, enc, (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, enc));
            p = end; /* at '}' */
            break;
        }
        case '{': {
            char *end;
            long n = strtol(p + 1, &end, 10);
            const char *close = strchr(end, '}');
            if (*end != '*' || !close) break;
            char *unit = hr_strndup(end + 1, (size_t)(close - end - 1));
            char *u = td_unescape(unit);
            for (long i = 0; i < n; i++) hr_buf_puts(&b, u);
            free(u);
            free(unit);
            p = close;
            break;
        }
        default: hr_buf_putc(&b, *p);
        }
    }
    if (!b.data) hr_buf_append(&b, "", 0);
    return hr_buf_detach(&b);
}

int td_each_file(const char *rel, const char *suffix, void (*fn)(const char *path, const char *name))
{
    char *dir = td_path(rel);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return -1;
    }
    size_t sl = strlen(suffix);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= sl || strcmp(de->d_name + l - sl, suffix) != 0) continue;
        char *p = hr_asprintf("%s/%s", dir, de->d_name);
        int before = th_failures;
        fn(p, de->d_name);
        if (th_failures != before) fprintf(stderr, "  in %s\n", de->d_name);
        free(p);
        n++;
    }
    closedir(d);
    free(dir);
    return n;
}
