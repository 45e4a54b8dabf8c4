/* campaign.c: the "campaign" config directive (which lanes, templates,
 * statuses, email and contacts), {{name}} template expansion, and the CRM
 * contacts CSV (libcsv). It does not plan times or talk to Redis. */
#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static void strv_add(char ***v, int *n, const char *s, size_t len)
{
    *v = hr_realloc(*v, (size_t)(*n + 1) * sizeof **v);
    (*v)[(*n)++] = hr_strndup(s, len);
}

static void list_set(char ***v, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        free((*v)[i]);
    *n = 0;
    while (*s) {
        size_t k = strcspn(s, ",");
        if (k) strv_add(v, n, s, k);
        s += k;
        if (*s) s++;
    }
}

static int yes(const char *v)
{
    return !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1");
}

static void set_kv(queue_kv **kv, int *n, const char *k, const char *v)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*kv)[i].key, k)) {
            free((*kv)[i].value);
            (*kv)[i].value = hr_strdup(v);
            return;
        }
    *kv = hr_realloc(*kv, (size_t)(*n + 1) * sizeof **kv);
    (*kv)[*n].key = hr_strdup(k);
    (*kv)[(*n)++].value = hr_strdup(v);
}

static int apply(sched_campaign *cp, const hr_config *c, const hr_conf_line *l, hr_err *err)
{
    const char *file = c->path ? c->path : "config";
    for (int i = 1; i < l->argc; i++) {
        const char *w = l->argv[i], *eq = strchr(w, '=');
        if (!eq)
            return hr_err_set(err, "%s:%d: campaign %s: \"%s\" is not key=value", file, l->line,
                              cp->name, w);
        char key[64];
        size_t kl = (size_t)(eq - w);
        if (kl >= sizeof key)
            return hr_err_set(err, "%s:%d: campaign: key too long", file, l->line);
        memcpy(key, w, kl);
        key[kl] = '\0';
        const char *v = eq + 1;
        if (!strcmp(key, "platforms")) {
            list_set(&cp->lanes, &cp->nlanes, v);
            if (cp->nlanes > SCHED_MAX_LANES)
                return hr_err_set(err, "%s:%d: campaign %s: platforms: more than %d lanes", file,
                                  l->line, cp->name, SCHED_MAX_LANES);
            for (int k = 0; k < cp->nlanes; k++) {
                const char *colon = strchr(cp->lanes[k], ':');
                if (!colon || colon == cp->lanes[k] || !colon[1] ||
                    strlen(cp->lanes[k]) >= QUEUE_LANE_MAX)
                    return hr_err_set(err,
                                      "%s:%d: campaign %s: platforms: \"%s\" is not "
                                      "platform:account",
                                      file, l->line, cp->name, cp->lanes[k]);
            }
        } else if (!strcmp(key, "template")) {
            set_kv(&cp->templates, &cp->ntemplates, "default", v);
        } else if (!strncmp(key, "template.", 9) && key[9]) {
            set_kv(&cp->templates, &cp->ntemplates, key + 9, v);
        } else if (!strcmp(key, "statuses")) {
            list_set(&cp->statuses, &cp->nstatuses, v);
        } else if (!strcmp(key, "types")) {
            list_set(&cp->types, &cp->ntypes, v);
        } else if (!strcmp(key, "drafts")) {
            cp->drafts = yes(v);
        } else if (!strcmp(key, "email")) {
            free(cp->email_lane);
            cp->email_lane = *v ? hr_strdup(v) : NULL;
            if (cp->email_lane && !strchr(v, ':'))
                return hr_err_set(err,
                                  "%s:%d: campaign %s: email: \"%s\" is not "
                                  "provider:account",
                                  file, l->line, cp->name, v);
        } else if (!strcmp(key, "contacts")) {
            free(cp->contacts_path);
            if (v[0] != '/' && c->path) {
                char *dup = hr_strdup(c->path);
                cp->contacts_path = hr_asprintf("%s/%s", dirname(dup), v);
                free(dup);
            } else {
                cp->contacts_path = hr_strdup(v);
            }
        } else if (!strcmp(key, "subject")) {
            free(cp->subject);
            cp->subject = hr_strdup(v);
        } else if (!strcmp(key, "email-html")) {
            free(cp->email_html);
            cp->email_html = hr_strdup(v);
        } else if (!strcmp(key, "email-text")) {
            free(cp->email_text);
            cp->email_text = hr_strdup(v);
        } else if (!strcmp(key, "email-rate")) {
            char *end;
            double r = strtod(v, &end);
            if (end == v || r <= 0 ||
                (*end && strcmp(end, "/s") && strcmp(end, "/m") && strcmp(end, "/h")))
                return hr_err_set(err,
                                  "%s:%d: campaign %s: email-rate: \"%s\" is not N/s, "
                                  "N/m or N/h",
                                  file, l->line, cp->name, v);
            cp->email_rate_per_s = !strcmp(end, "/m") ? r / 60 : !strcmp(end, "/h") ? r / 3600 : r;
        } else if (!strcmp(key, "base-url")) {
            free(cp->base_url);
            cp->base_url = hr_strdup(v);
            size_t n = strlen(cp->base_url);
            while (n && cp->base_url[n - 1] == '/')
                cp->base_url[--n] = '\0';
        } else if (!strcmp(key, "max-attempts")) {
            int64_t n;
            if (hr_parse_i64(v, &n) < 0 || n < 1 || n > 100)
                return hr_err_set(err, "%s:%d: campaign %s: max-attempts: \"%s\"", file, l->line,
                                  cp->name, v);
            cp->max_attempts = (int)n;
        } else {
            return hr_err_set(err, "%s:%d: campaign %s: unknown key \"%s\" (see docs/import.md)",
                              file, l->line, cp->name, key);
        }
    }
    return 0;
}

sched_campaign *sched_campaign_load(const hr_config *c, const char *name, hr_err *err)
{
    int pos = -1;
    const hr_conf_line *l;
    if (!name) {
        while ((l = hr_config_next(c, "campaign", &pos))) {
            if (l->argc < 1) continue;
            if (name && strcmp(name, l->argv[0])) {
                hr_err_set(err, "config: several campaigns (%s, %s): choose one with --campaign",
                           name, l->argv[0]);
                return NULL;
            }
            name = l->argv[0];
        }
        if (!name) {
            hr_err_set(err, "config: no \"campaign\" line (see docs/import.md)");
            return NULL;
        }
        pos = -1;
    }
    sched_campaign *cp = hr_calloc(1, sizeof *cp);
    cp->name = hr_strdup(name);
    cp->max_attempts = 5;
    int found = 0;
    while ((l = hr_config_next(c, "campaign", &pos))) {
        if (l->argc < 1 || strcmp(l->argv[0], name)) continue;
        found = 1;
        if (apply(cp, c, l, err) < 0) goto fail;
    }
    if (!found) {
        hr_err_set(err, "config: no campaign named \"%s\"", name);
        goto fail;
    }
    if (strlen(name) > 100 || strchr(name, '|')) {
        hr_err_set(err, "config: campaign name \"%s\": at most 100 characters, no '|'", name);
        goto fail;
    }
    if (!cp->nstatuses) list_set(&cp->statuses, &cp->nstatuses, "publish,future");
    if (!cp->ntypes) list_set(&cp->types, &cp->ntypes, "post");
    if (!cp->nlanes && !cp->email_lane) {
        hr_err_set(err, "config: campaign %s has no platforms= and no email=", name);
        goto fail;
    }
    if (cp->email_lane && !cp->contacts_path) {
        hr_err_set(err, "config: campaign %s: email= needs contacts=", name);
        goto fail;
    }
    if (!cp->subject) cp->subject = hr_strdup("{{title}}");
    uint64_t h = sched_hash64(SCHED_HASH_INIT, cp->name);
    for (int i = 0; i < cp->nlanes; i++)
        h = sched_hash64(h, cp->lanes[i]);
    for (int i = 0; i < cp->ntemplates; i++)
        h = sched_hash64(sched_hash64(h, cp->templates[i].key), cp->templates[i].value);
    h = sched_hash64(h, cp->email_lane);
    h = sched_hash64(h, cp->subject);
    h = sched_hash64(h, cp->email_html);
    h = sched_hash64(h, cp->email_text);
    h = sched_hash64(h, cp->base_url);
    cp->config_hash = h;
    return cp;
fail:
    sched_campaign_free(cp);
    return NULL;
}

void sched_campaign_free(sched_campaign *cp)
{
    if (!cp) return;
    free(cp->name);
    for (int i = 0; i < cp->nlanes; i++)
        free(cp->lanes[i]);
    free(cp->lanes);
    for (int i = 0; i < cp->ntemplates; i++) {
        free(cp->templates[i].key);
        free(cp->templates[i].value);
    }
    free(cp->templates);
    for (int i = 0; i < cp->nstatuses; i++)
        free(cp->statuses[i]);
    free(cp->statuses);
    for (int i = 0; i < cp->ntypes; i++)
        free(cp->types[i]);
    free(cp->types);
    free(cp->email_lane);
    free(cp->contacts_path);
    free(cp->subject);
    free(cp->email_html);
    free(cp->email_text);
    free(cp->base_url);
    free(cp);
}

const char *sched_campaign_template(const sched_campaign *cp, const char *lane)
{
    size_t plen = strcspn(lane, ":");
    const char *by_platform = NULL, *def = NULL;
    for (int i = 0; i < cp->ntemplates; i++) {
        const char *k = cp->templates[i].key;
        if (!strcmp(k, lane)) return cp->templates[i].value;
        if (strlen(k) == plen && !strncmp(k, lane, plen)) by_platform = cp->templates[i].value;
        if (!strcmp(k, "default")) def = cp->templates[i].value;
    }
    return by_platform ? by_platform : def ? def : "{{title}} {{link}}";
}

/* ---- templates */

/* Where expansion writes: a buffer (sched_render), or nowhere when only
 * asked whether anything but spaces and line breaks would come out
 * (sched_render_blank, which stops at the first such character). */
typedef struct sink {
    hr_buf *b;
    int nonblank;
} sink;

static void put(sink *k, const char *s, size_t n)
{
    if (k->b) {
        hr_buf_append(k->b, s, n);
        return;
    }
    for (size_t i = 0; i < n && !k->nonblank; i++)
        k->nonblank = s[i] != ' ' && s[i] != '\n';
}

static void put_hashtag(sink *k, const char *tag)
{
    put(k, "#", 1);
    for (const unsigned char *p = (const unsigned char *)tag; *p; p++)
        if (isalnum(*p) || *p == '_' || *p >= 0x80) put(k, (const char *)p, 1);
}

/* plain is the item's text for {{text}}; NULL: made from the item when
 * first needed (*made keeps it for the caller to free) */
static void put_var(sink *k, const char *name, const sched_item *it, const char *plain, char **made,
                    const queue_kv *vars, int nvars)
{
    for (int i = 0; i < nvars; i++)
        if (!strcmp(vars[i].key, name)) {
            if (vars[i].value) put(k, vars[i].value, strlen(vars[i].value));
            return;
        }
    if (!it) return;
    const char *v = NULL;
    if (!strcmp(name, "title"))
        v = it->title;
    else if (!strcmp(name, "link"))
        v = it->link;
    else if (!strcmp(name, "excerpt"))
        v = it->excerpt;
    else if (!strcmp(name, "text"))
        v = plain ? plain : made ? (*made ? *made : (*made = sched_item_plain(it))) : NULL;
    else if (!strcmp(name, "author"))
        v = it->author;
    else if (!strcmp(name, "id"))
        v = it->id;
    else if (!strcmp(name, "image"))
        v = it->image;
    else if (!strcmp(name, "html"))
        v = it->html;
    if (v) {
        put(k, v, strlen(v));
        return;
    }
    if (!strcmp(name, "tags") || !strcmp(name, "hashtags")) {
        for (int i = 0; i < it->ntags; i++) {
            if (i) put(k, " ", 1);
            if (name[0] == 'h')
                put_hashtag(k, it->tags[i]);
            else
                put(k, it->tags[i], strlen(it->tags[i]));
        }
    } else if (!strcmp(name, "publish_at") && it->publish_ms) {
        char t[40];
        hr_format_rfc3339(it->publish_ms, t, sizeof t);
        put(k, t, strlen(t));
    }
}

static void expand(sink *k, const char *tmpl, const sched_item *it, const char *plain, char **made,
                   const queue_kv *vars, int nvars)
{
    const char *p = tmpl;
    while (*p && !k->nonblank) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!open || !close) {
            put(k, p, strlen(p));
            break;
        }
        put(k, p, (size_t)(open - p));
        const char *a = open + 2, *e = close;
        while (a < e && isspace((unsigned char)*a))
            a++;
        while (e > a && isspace((unsigned char)e[-1]))
            e--;
        char name[64];
        size_t n = (size_t)(e - a);
        if (n < sizeof name) {
            memcpy(name, a, n);
            name[n] = '\0';
            put_var(k, name, it, plain, made, vars, nvars);
        }
        p = close + 2;
    }
}

char *sched_item_plain(const sched_item *it)
{
    /* already plain: keep it as written */
    return it->text ? hr_strdup(it->text) : sched_html_to_text(it->html);
}

int sched_render_blank(const char *tmpl, const sched_item *it, const char *plain_text,
                       const queue_kv *vars, int nvars)
{
    sink k = {0};
    char *made = NULL;
    expand(&k, tmpl, it, plain_text, &made, vars, nvars);
    free(made);
    return !k.nonblank;
}

char *sched_render(const char *tmpl, const sched_item *it, const char *plain_text,
                   const queue_kv *vars, int nvars)
{
    hr_buf b;
    hr_buf_init(&b);
    hr_buf_append(&b, "", 0);
    sink k = {.b = &b};
    expand(&k, tmpl, it, plain_text, NULL, vars, nvars);
    /* a missing {{hashtags}} or {{link}} leaves double spaces and a trailing one
     * (sched_render_blank knows that only spaces and line breaks go away) */
    char *s = hr_buf_detach(&b);
    size_t w = 0;
    for (size_t r = 0; s[r]; r++) {
        if (s[r] == ' ' && (w == 0 || s[w - 1] == ' ' || s[w - 1] == '\n')) continue;
        s[w++] = s[r];
    }
    /* and an empty {{excerpt}} between paragraphs leaves blank lines */
    size_t w2 = 0;
    for (size_t r = 0; r < w; r++) {
        if (s[r] == '\n' && w2 >= 2 && s[w2 - 1] == '\n' && s[w2 - 2] == '\n') continue;
        s[w2++] = s[r];
    }
    w = w2;
    while (w && (s[w - 1] == ' ' || s[w - 1] == '\n'))
        w--;
    s[w] = '\0';
    return s;
}

/* ---- contacts */

void sched_contacts_free_one(sched_contact *ct)
{
    free(ct->email);
    free(ct->first_name);
    free(ct->last_name);
    for (int k = 0; k < ct->nvars; k++) {
        free(ct->vars[k].key);
        free(ct->vars[k].value);
    }
    free(ct->vars);
}

typedef struct contacts_ctx {
    const char *file;
    sched_strv row, header;
    int col_email, col_first, col_last;
    long rows, line, row_line;
    int between;
    sched_contact *v;
    int n, cap;
    sched_contact_skips *skipped;
    hr_err *err;
    int failed;
} contacts_ctx;

static void c_field(void *s, size_t n, void *arg)
{
    contacts_ctx *c = arg;
    sched_strv_push(&c->row, s ? s : "", s ? n : 0);
}

static void norm_header(char *h)
{
    for (char *p = h; *p; p++)
        *p = (*p == ' ' || *p == '-') ? '_' : (char)tolower((unsigned char)*p);
}

/* by address, then line: of an address on several rows the first stays */
static int contact_cmp(const void *a, const void *b)
{
    const sched_contact *x = a, *y = b;
    int c = strcmp(x->email, y->email);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* skip counts a row left out and keeps it when it is among the first
 * SCHED_CONTACT_SKIPS_KEPT by line (duplicates are found after the bad
 * addresses, in address order) */
static void skip(sched_contact_skips *sk, long line, const char *why)
{
    sk->n++;
    int at = sk->kept;
    while (at > 0 && sk->first[at - 1].line > line)
        at--;
    if (at == SCHED_CONTACT_SKIPS_KEPT) return;
    int last = sk->kept < SCHED_CONTACT_SKIPS_KEPT ? sk->kept : SCHED_CONTACT_SKIPS_KEPT - 1;
    memmove(&sk->first[at + 1], &sk->first[at], (size_t)(last - at) * sizeof sk->first[0]);
    sk->first[at].line = line;
    snprintf(sk->first[at].why, sizeof sk->first[at].why, "%s", why);
    if (sk->kept < SCHED_CONTACT_SKIPS_KEPT) sk->kept++;
}

static void c_row(int term, void *arg)
{
    contacts_ctx *c = arg;
    (void)term;
    c->between = 1;
    if (c->failed) goto out;
    if (c->rows++ == 0) {
        c->col_email = c->col_first = c->col_last = -1;
        for (int i = 0; i < c->row.n; i++) {
            char *h = c->row.v[i];
            if (i == 0 && sched_bom_len(h, strlen(h))) memmove(h, h + 3, strlen(h + 3) + 1);
            norm_header(h);
            sched_strv_push(&c->header, h, strlen(h));
            if (c->col_email < 0 &&
                (!strcmp(h, "email") || !strcmp(h, "e_mail") || !strcmp(h, "email_address")))
                c->col_email = i;
            else if (c->col_first < 0 && (!strcmp(h, "first_name") || !strcmp(h, "firstname") ||
                                          !strcmp(h, "given_name")))
                c->col_first = i;
            else if (c->col_last < 0 && (!strcmp(h, "last_name") || !strcmp(h, "lastname") ||
                                         !strcmp(h, "family_name") || !strcmp(h, "surname")))
                c->col_last = i;
        }
        if (c->col_email < 0) {
            hr_err_set(c->err, "%s:%ld: contacts: the header row has no \"email\" column", c->file,
                       c->row_line);
            c->failed = 1;
        }
        goto out;
    }
    char norm[256];
    const char *email = c->col_email < c->row.n ? c->row.v[c->col_email] : "";
    const char *why = queue_email_check(email, norm, sizeof norm);
    if (why) {
        skip(c->skipped, c->row_line, why);
        goto out;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->v = hr_realloc(c->v, (size_t)c->cap * sizeof *c->v);
    }
    sched_contact *ct = &c->v[c->n++];
    memset(ct, 0, sizeof *ct);
    ct->line = c->row_line;
    ct->email = hr_strdup(norm);
    ct->first_name =
        hr_strdup(c->col_first >= 0 && c->col_first < c->row.n ? c->row.v[c->col_first] : "");
    ct->last_name =
        hr_strdup(c->col_last >= 0 && c->col_last < c->row.n ? c->row.v[c->col_last] : "");
    for (int i = 0; i < c->row.n && i < c->header.n; i++) {
        if (i == c->col_email || i == c->col_first || i == c->col_last || !c->header.v[i][0])
            continue;
        ct->vars = hr_realloc(ct->vars, (size_t)(ct->nvars + 1) * sizeof *ct->vars);
        ct->vars[ct->nvars].key = hr_strdup(c->header.v[i]);
        ct->vars[ct->nvars++].value = hr_strdup(c->row.v[i]);
    }
out:
    sched_strv_clear(&c->row);
}

int sched_contacts_load(const char *path, sched_contact **out, int *n, sched_contact_skips *skipped,
                        hr_err *err)
{
    *out = NULL;
    *n = 0;
    memset(skipped, 0, sizeof *skipped);
    snprintf(skipped->file, sizeof skipped->file, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return hr_err_set(err, "contacts: %s: %s", path, strerror(errno));
    contacts_ctx c = {.file = path, .skipped = skipped, .err = err, .between = 1};
    struct csv_parser p;
    csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (!c.failed && (len = getline(&line, &cap, f)) > 0) {
        c.line++;
        if (c.between && strspn(line, " \t\r\n") != (size_t)len) {
            c.row_line = c.line;
            c.between = 0;
        }
        if (csv_parse(&p, line, (size_t)len, c_field, c_row, &c) != (size_t)len) {
            rc = hr_err_set(err, "%s:%ld: malformed CSV: %s", path, c.line,
                            csv_strerror(csv_error(&p)));
            break;
        }
    }
    if (!rc && !c.failed && csv_fini(&p, c_field, c_row, &c) != 0)
        rc = hr_err_set(err, "%s:%ld: malformed CSV: unterminated quoted field", path, c.row_line);
    if (!rc && !c.failed && c.rows == 0) rc = hr_err_set(err, "%s:1: contacts: empty file", path);
    if (c.failed) rc = -1;
    csv_free(&p);
    free(line);
    fclose(f);
    sched_strv_release(&c.row);
    sched_strv_release(&c.header);
    if (rc < 0) {
        sched_contacts_free(c.v, c.n);
        return -1;
    }
    /* one email per address: later rows of an address are left out */
    if (c.n > 1) qsort(c.v, (size_t)c.n, sizeof *c.v, contact_cmp); /* c.v is NULL when empty */
    int w = 0;
    for (int i = 0; i < c.n; i++) {
        if (w > 0 && !strcmp(c.v[w - 1].email, c.v[i].email)) {
            char why[48];
            snprintf(why, sizeof why, "same address as line %ld", c.v[w - 1].line);
            skip(skipped, c.v[i].line, why);
            sched_contacts_free_one(&c.v[i]);
            continue;
        }
        c.v[w++] = c.v[i];
    }
    *out = c.v;
    *n = w;
    return 0;
}

void sched_contacts_free(sched_contact *v, int n)
{
    for (int i = 0; i < n; i++)
        sched_contacts_free_one(&v[i]);
    free(v);
}
