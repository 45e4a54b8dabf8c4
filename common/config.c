/* config.c: tokenizes the config file into directive lines; what a directive
 * means is up to the module that owns it, except the range of an integer
 * directive, kept in one table here for the modules and `config check`. */
#include "common.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_word(hr_conf_line *l, hr_buf *w)
{
    char *s = hr_buf_detach(w);
    if (!l->key) {
        l->key = s;
        return;
    }
    l->argv = hr_realloc(l->argv, sizeof(char *) * (size_t)(l->argc + 1));
    l->argv[l->argc++] = s;
}

/* split_line splits one line into words; returns -1 with a reason on an
 * unterminated quote. */
static int split_line(const char *s, hr_conf_line *l, const char **why)
{
    hr_buf w;
    hr_buf_init(&w);
    const char *p = s;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') break;
        hr_buf_reset(&w);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                    hr_buf_putc(&w, *p == 'n' ? '\n' : *p == 't' ? '\t' : *p);
                } else {
                    hr_buf_putc(&w, *p);
                }
                p++;
            }
            if (*p != '"') {
                hr_buf_release(&w);
                *why = "unterminated quote";
                return -1;
            }
            p++;
            if (*p && !isspace((unsigned char)*p)) {
                hr_buf_release(&w);
                *why = "closing quote must be followed by a space";
                return -1;
            }
            if (!w.data) hr_buf_append(&w, "", 0);
        } else {
            while (*p && !isspace((unsigned char)*p)) hr_buf_putc(&w, *p++);
        }
        add_word(l, &w);
    }
    hr_buf_release(&w);
    return 0;
}

static void free_line(hr_conf_line *l)
{
    free(l->key);
    for (int i = 0; i < l->argc; i++) free(l->argv[i]);
    free(l->argv);
}

hr_config *hr_config_parse(const char *text, const char *name, hr_err *err)
{
    hr_config *c = hr_calloc(1, sizeof *c);
    c->path = hr_strdup(name);
    const char *p = text;
    int lineno = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = hr_strndup(p, n);
        lineno++;
        hr_conf_line l = {0};
        l.line = lineno;
        const char *why = NULL;
        if (split_line(line, &l, &why) < 0) {
            hr_err_set(err, "%s:%d: %s", name ? name : "config", lineno, why);
            free(line);
            free_line(&l);
            hr_config_free(c);
            return NULL;
        }
        free(line);
        if (l.key) {
            c->lines = hr_realloc(c->lines, sizeof *c->lines * (size_t)(c->nlines + 1));
            c->lines[c->nlines++] = l;
        }
        p += n;
        if (*p == '\n') p++;
    }
    return c;
}

hr_config *hr_config_load(const char *path, hr_err *err)
{
    if (!path) return hr_config_parse("", NULL, err);
    FILE *f = fopen(path, "rb");
    if (!f) {
        hr_err_set(err, "%s: cannot open: %m", path);
        return NULL;
    }
    hr_buf b;
    hr_buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) hr_buf_append(&b, chunk, n);
    fclose(f);
    hr_config *c = hr_config_parse(b.data ? b.data : "", path, err);
    hr_buf_release(&b);
    return c;
}

void hr_config_free(hr_config *c)
{
    if (!c) return;
    for (int i = 0; i < c->nlines; i++) free_line(&c->lines[i]);
    free(c->lines);
    free(c->path);
    free(c);
}

static const char *env_override(const char *key)
{
    char name[128] = "HERALD_";
    size_t o = strlen(name);
    for (const char *k = key; *k && o + 1 < sizeof name; k++)
        name[o++] = *k == '-' ? '_' : (char)toupper((unsigned char)*k);
    name[o] = '\0';
    return getenv(name);
}

static const hr_conf_line *last_line(const hr_config *c, const char *key)
{
    for (int i = c ? c->nlines - 1 : -1; i >= 0; i--)
        if (strcmp(c->lines[i].key, key) == 0) return &c->lines[i];
    return NULL;
}

const char *hr_config_get(const hr_config *c, const char *key, const char *def)
{
    const char *e = env_override(key);
    if (e) return e;
    const hr_conf_line *l = last_line(c, key);
    return l && l->argc > 0 ? l->argv[0] : def;
}

/* bad_value sets err to "path:line: key: why" (where key's value came from)
 * and returns -1. */
static int bad_value(const hr_config *c, const char *key, const char *why, hr_err *err)
{
    const hr_conf_line *l = last_line(c, key);
    if (env_override(key) || !l) return hr_err_set(err, "environment: %s: %s", key, why);
    return hr_err_set(err, "%s:%d: %s: %s", c->path ? c->path : "config", l->line, key, why);
}

int hr_config_get_i64(const hr_config *c, const char *key, int64_t def, int64_t *out,
                      hr_err *err)
{
    const char *v = hr_config_get(c, key, NULL);
    if (!v) {
        *out = def;
        return 0;
    }
    if (hr_parse_i64(v, out) == 0) return 0;
    char *why = hr_asprintf("not a number: \"%s\"", v);
    bad_value(c, key, why, err);
    free(why);
    return -1;
}

const hr_conf_line *hr_config_next(const hr_config *c, const char *key, int *pos)
{
    for (int i = *pos + 1; c && i < c->nlines; i++) {
        if (strcmp(c->lines[i].key, key) == 0) {
            *pos = i;
            return &c->lines[i];
        }
    }
    return NULL;
}

const hr_int_directive hr_int_directives[] = {
    {"lease-ms", 30000, 1000, 86400000},
    {"worker-redis-timeout-ms", 5000, 1, 3600000},
    /* 0 turned the timestamp check off: a captured webhook replayed for ever */
    {"webhooks-replay-window", 300, 1, 86400},
    {"webhooks-dedupe-days", 7, 1, 3650},
    /* XTRIM refuses a negative MAXLEN after the script's XADD: half a batch */
    {"webhooks-stream-maxlen", 100000, 1, 1000000000},
    {"webhooks-max-body", 1 << 20, 1, 1 << 30},
    {"webhooks-max-conns", 1024, 1, 1000000},
    {"webhooks-request-timeout-ms", 10000, 1, 3600000},
    {"webhooks-idle-timeout-ms", 30000, 1, 3600000},
    {"webhooks-redis-timeout-ms", 2000, 1, 3600000},
    {NULL, 0, 0, 0},
};

int hr_config_int(const hr_config *c, const char *key, int64_t *out, hr_err *err)
{
    const hr_int_directive *d = hr_int_directives;
    while (d->key && strcmp(d->key, key) != 0)
        d++;
    assert(d->key); /* a directive missing from the table */
    int64_t v;
    if (hr_config_get_i64(c, key, d->def, &v, err) != 0) return -1;
    if (v < d->min || v > d->max) {
        char why[96];
        snprintf(why, sizeof why, "expected %lld..%lld, got %lld", (long long)d->min,
                 (long long)d->max, (long long)v);
        return bad_value(c, key, why, err);
    }
    *out = v;
    return 0;
}
