/* tdata.c: see tdata.h. */
#include "tdata.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common.h"

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
