/* log.c: JSON-lines logging to stderr. Every value passes through the email
 * masker, so a recipient address never reaches a log file whole. The level and
 * process name are the process's parsed configuration, set once at start. */
#include "common.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static hr_log_level log_min = HR_LOG_INFO;
static char log_name[32] = "herald";

void hr_log_set_level(hr_log_level min) { log_min = min; }

void hr_log_set_name(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name);
}

static int is_local_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr(".!#$%&'*+/=?^_`{|}~-", c));
}

void hr_mask_email(const char *s, char *out, size_t outlen)
{
    size_t o = 0, n = strlen(s);
    if (!outlen) return;
    for (size_t i = 0; i < n && o + 1 < outlen;) {
        if (is_local_char(s[i])) {
            size_t j = i;
            while (j < n && is_local_char(s[j])) j++;
            if (j < n && s[j] == '@' && j + 1 < n && s[j + 1] != '@' && j > i) {
                /* keep the first character, then *** and the domain */
                out[o++] = s[i];
                for (int k = 0; k < 3 && o + 1 < outlen; k++) out[o++] = '*';
                i = j;
                continue;
            }
            while (i < j && o + 1 < outlen) out[o++] = s[i++];
            continue;
        }
        out[o++] = s[i++];
    }
    out[o] = '\0';
}

void hr_log(hr_log_level lvl, const char *msg, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_min) return;
    json_t *o = json_object();
    char ts[40];
    hr_format_rfc3339(hr_now_ms(), ts, sizeof ts);
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(names[lvl]));
    json_object_set_new(o, "proc", json_string(log_name));
    json_object_set_new(o, "pid", json_integer(getpid()));
    char masked[1024];
    hr_mask_email(msg, masked, sizeof masked);
    json_object_set_new(o, "msg", json_string(masked));
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        hr_mask_email(v ? v : "", masked, sizeof masked);
        json_object_set_new(o, k, json_string(masked));
    }
    va_end(ap);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (line) {
        fprintf(stderr, "%s\n", line);
        free(line);
    }
    json_decref(o);
}
