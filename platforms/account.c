/* account.c: "account <platform>:<name> key=value ..." config lines, the
 * platform table, and credentials read from files. Keys other modules own
 * (tz=, rate=, ...) are kept but not interpreted here. Secrets are never
 * logged and never part of an error message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const plat_ops *const all_ops[] = {
    &plat_x_ops,        &plat_mastodon_ops, &plat_bluesky_ops, &plat_linkedin_ops,
    &plat_threads_ops,  &plat_facebook_ops, &plat_sendgrid_ops, &plat_mailgun_ops,
    &plat_postmark_ops, &plat_smtp_ops,     &plat_webhook_ops,
};

static const char *const names[] = {"x",        "mastodon", "bluesky", "linkedin",
                                    "threads",  "facebook", "sendgrid", "mailgun",
                                    "postmark", "smtp",     "webhook",  NULL};

const char *const *plat_names(void) { return names; }

const plat_ops *plat_ops_find(const char *platform)
{
    for (size_t i = 0; platform && i < HR_ARRAY_LEN(all_ops); i++)
        if (strcmp(all_ops[i]->name, platform) == 0) return all_ops[i];
    return NULL;
}

int plat_known(const char *platform) { return plat_ops_find(platform) != NULL; }

int plat_is_email(const char *platform)
{
    const plat_ops *o = plat_ops_find(platform);
    return o && o->email;
}

int plat_resend_on_absent(const char *platform)
{
    const plat_ops *o = plat_ops_find(platform);
    return o && o->resend_on_absent;
}

const char *plat_account_opt(const plat_account *a, const char *key, const char *def)
{
    for (int i = a->nopts - 1; i >= 0; i--)
        if (strcmp(a->opts[i].key, key) == 0) return a->opts[i].value;
    return def;
}

static void add_opt(plat_account *a, const char *k, size_t kl, const char *v)
{
    a->opts = hr_realloc(a->opts, (size_t)(a->nopts + 1) * sizeof *a->opts);
    a->opts[a->nopts].key = hr_strndup(k, kl);
    a->opts[a->nopts].value = hr_strdup(v);
    a->nopts++;
}

/* apply the defaults and the keys platforms interpret */
static int settle(plat_account *a, const char *where, hr_err *err)
{
    const char *b = plat_account_opt(a, "base-url", a->ops->default_base);
    if (!b || !*b) return hr_err_set(err, "%s: %s: needs base-url=", where, a->platform);
    size_t bl = strlen(b);
    while (bl && b[bl - 1] == '/') bl--;
    a->base_url = hr_strndup(b, bl);
    a->limit = a->ops->default_limit;
    a->max_hashtags = a->ops->default_hashtags;
    const char *l = plat_account_opt(a, "limit", NULL);
    int64_t v;
    if (l) {
        if (hr_parse_i64(l, &v) != 0 || v <= 0 || v > 1000000)
            return hr_err_set(err, "%s: limit=%s is not a positive number", where, l);
        a->limit = (long)v;
    }
    const char *h = plat_account_opt(a, "hashtags", NULL);
    if (h) {
        if (hr_parse_i64(h, &v) != 0 || v < 0 || v > 100)
            return hr_err_set(err, "%s: hashtags=%s is not a number from 0 to 100", where, h);
        a->max_hashtags = (int)v;
    }
    return 0;
}

plat_account *plat_account_parse(const hr_conf_line *line, const char *path, hr_err *err)
{
    char where[300];
    snprintf(where, sizeof where, "%s:%d", path ? path : "config", line->line);
    if (line->argc < 1) {
        hr_err_set(err, "%s: account: expected <platform>:<name> key=value...", where);
        return NULL;
    }
    const char *id = line->argv[0];
    const char *colon = strchr(id, ':');
    if (!colon || colon == id || !colon[1]) {
        hr_err_set(err, "%s: account: \"%s\" is not <platform>:<name>", where, id);
        return NULL;
    }
    plat_account *a = hr_calloc(1, sizeof *a);
    a->platform = hr_strndup(id, (size_t)(colon - id));
    a->name = hr_strdup(colon + 1);
    a->ops = plat_ops_find(a->platform);
    if (!a->ops) {
        hr_err_set(err, "%s: account: unknown platform \"%s\"", where, a->platform);
        plat_account_free(a);
        return NULL;
    }
    for (int i = 1; i < line->argc; i++) {
        const char *eq = strchr(line->argv[i], '=');
        if (!eq || eq == line->argv[i]) {
            hr_err_set(err, "%s: account %s: \"%s\" is not key=value", where, id,
                       line->argv[i]);
            plat_account_free(a);
            return NULL;
        }
        add_opt(a, line->argv[i], (size_t)(eq - line->argv[i]), eq + 1);
    }
    if (settle(a, where, err) != 0) {
        plat_account_free(a);
        return NULL;
    }
    return a;
}

plat_account *plat_account_find(const hr_config *c, const char *platform, const char *name,
                                hr_err *err)
{
    int pos = -1;
    const hr_conf_line *l;
    size_t pl = strlen(platform);
    while ((l = hr_config_next(c, "account", &pos))) {
        if (l->argc < 1) continue;
        const char *id = l->argv[0];
        if (strncmp(id, platform, pl) == 0 && id[pl] == ':' && strcmp(id + pl + 1, name) == 0)
            return plat_account_parse(l, c->path, err);
    }
    hr_err_set(err, "account %s:%s: not in the config", platform, name);
    return NULL;
}

plat_account *plat_account_default(const char *platform, hr_err *err)
{
    const plat_ops *ops = plat_ops_find(platform);
    if (!ops) {
        hr_err_set(err, "unknown platform \"%s\"", platform ? platform : "");
        return NULL;
    }
    plat_account *a = hr_calloc(1, sizeof *a);
    a->platform = hr_strdup(platform);
    a->name = hr_strdup("default");
    a->ops = ops;
    if (settle(a, "default account", err) != 0) {
        plat_account_free(a);
        return NULL;
    }
    return a;
}

int plat_account_load_credential(plat_account *a, const hr_config *c, hr_err *warn,
                                hr_err *err)
{
    const char *name = plat_account_opt(a, "credentials", NULL);
    if (!name) return 0;
    if (strchr(name, '/') || strcmp(name, "..") == 0)
        return hr_err_set(err, "account %s:%s: credentials=%s must be a file name", a->platform,
                          a->name, name);
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    if (!dir || !*dir) dir = c ? hr_config_get(c, "credentials-dir", NULL) : NULL;
    if (!dir)
        return hr_err_set(err,
                          "account %s:%s: credentials=%s but neither $CREDENTIALS_DIRECTORY "
                          "nor credentials-dir is set",
                          a->platform, a->name, name);
    char *path = hr_asprintf("%s/%s", dir, name);
    hr_err e = {0}, w = {0};
    char *line = hr_key_file_read(path, 0, &w, &e);
    free(path);
    if (w.code)
        hr_err_set(warn, "account %s:%s: credentials: %s", a->platform, a->name, w.msg);
    if (!line)
        return hr_err_set(err, "account %s:%s: credentials: %s", a->platform, a->name, e.msg);
    /* the first line (trailing whitespace trimmed) */
    size_t cap = strlen(line);
    if (hr_trim_end(line, strcspn(line, "\n")) == 0) {
        explicit_bzero(line, cap);
        free(line);
        return hr_err_set(err, "account %s:%s: credentials: first line of %s/%s is empty",
                          a->platform, a->name, dir, name);
    }
    free(a->credential);
    a->credential = hr_strdup(line);
    /* never in a log line, even when a platform echoes it in an error;
     * for "user:secret" credentials (SMTP) the secret alone too */
    hr_log_redact(a->credential);
    const char *colon = strchr(a->credential, ':');
    if (colon) hr_log_redact(colon + 1);
    explicit_bzero(line, cap);
    free(line);
    return 0;
}

void plat_account_free(plat_account *a)
{
    if (!a) return;
    free(a->platform);
    free(a->name);
    free(a->base_url);
    if (a->credential) {
        explicit_bzero(a->credential, strlen(a->credential));
        free(a->credential);
    }
    for (int i = 0; i < a->nopts; i++) {
        free(a->opts[i].key);
        free(a->opts[i].value);
    }
    free(a->opts);
    free(a);
}

long plat_count(const plat_account *a, const char *text) { return a->ops->count(a, text); }

int plat_count_text(const char *platform, const char *text, long *len, long *limit)
{
    const plat_ops *o = plat_ops_find(platform);
    if (!o || !text) return -1;
    plat_account a = {.platform = (char *)platform, .name = "", .ops = o,
                      .limit = o->default_limit};
    long n = o->count(&a, text);
    if (n < 0) return -1;
    *len = n;
    *limit = o->default_limit;
    return 0;
}
