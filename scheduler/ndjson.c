/* ndjson.c: the NDJSON reader: one JSON object per line (fields in
 * docs/import.md), parsed with jansson line by line so memory stays flat. A
 * line that is not a JSON object is an item error, not the end of the file. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *str_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void strings_of(json_t *o, const char *k, sched_strv *out)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v)) {
        sched_split(json_string_value(v), ",; ", out);
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (json_is_string(e))
        sched_strv_push(out, json_string_value(e), strlen(json_string_value(e)));
}

/* the longest string id: the source id, and the job's unique key made of
 * it, stay short */
enum { ID_MAX = 80 };

static int one_line(const sched_src *s, long lineno, char *line, size_t len, sched_item_cb *cb,
                    void *priv, hr_err *err)
{
    char why[240] = "", idbuf[96];
    sched_item it = {0};
    it.format = SCHED_FMT_NDJSON;
    it.file = s->name;
    it.line = lineno;
    it.status = "publish";
    it.type = "post";
    snprintf(idbuf, sizeof idbuf, "ndjson:line%ld", lineno);
    it.id = idbuf;
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
    sched_strv tags = {0}, plats = {0};
    queue_kv *vars = NULL;
    int nvars = 0;
    if (!o) {
        snprintf(why, sizeof why, "malformed JSON: %s (column %d)", je.text, je.column);
    } else if (!json_is_object(o)) {
        snprintf(why, sizeof why, "not a JSON object");
    } else {
        json_t *id = json_object_get(o, "id");
        size_t idlen = json_is_string(id) ? strlen(json_string_value(id)) : 0;
        if (json_is_integer(id))
            snprintf(idbuf, sizeof idbuf, "ndjson:%lld", (long long)json_integer_value(id));
        else if (!id)
            snprintf(why, sizeof why, "record has no \"id\" (string or integer)");
        else if (!json_is_string(id))
            snprintf(why, sizeof why, "\"id\" is not a string or an integer");
        else if (idlen > ID_MAX)
            snprintf(why, sizeof why, "\"id\" is too long: %zu bytes, at most %d", idlen, ID_MAX);
        else
            snprintf(idbuf, sizeof idbuf, "ndjson:%s", json_string_value(id));
        it.title = str_of(o, "title");
        it.text = str_of(o, "text");
        it.html = str_of(o, "html");
        it.link = str_of(o, "link");
        it.excerpt = str_of(o, "excerpt");
        it.image = str_of(o, "image");
        it.author = str_of(o, "author");
        if (str_of(o, "status")) it.status = sched_status_norm(str_of(o, "status"));
        if (str_of(o, "type")) it.type = str_of(o, "type");
        json_t *pa = json_object_get(o, "publish_at");
        if (json_is_integer(pa)) {
            it.publish_ms = json_integer_value(pa);
        } else if (json_is_string(pa) && !why[0]) {
            if (hr_parse_rfc3339(json_string_value(pa), &it.publish_ms) < 0)
                snprintf(why, sizeof why,
                         "publish_at is not an RFC 3339 time with a zone: \"%.60s\"",
                         json_string_value(pa));
        }
        if (!why[0] && (!it.title || !*it.title) && (!it.text || !*it.text) &&
            (!it.html || !*it.html))
            snprintf(why, sizeof why, "record has no title, text or html");
        if (!why[0] && !strcmp(it.status, "future") && it.publish_ms == 0)
            snprintf(why, sizeof why, "scheduled record has no publish_at");
        strings_of(o, "tags", &tags);
        strings_of(o, "platforms", &plats);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(o, "vars"), k, v)
        {
            if (!json_is_string(v)) continue;
            vars = hr_realloc(vars, (size_t)(nvars + 1) * sizeof *vars);
            vars[nvars].key = (char *)k;
            vars[nvars++].value = (char *)json_string_value(v);
        }
    }
    it.tags = (const char *const *)tags.v;
    it.ntags = tags.n;
    it.platforms = (const char *const *)plats.v;
    it.nplatforms = plats.n;
    it.vars = vars;
    it.nvars = nvars;
    if (why[0]) it.error = why;
    int rc = cb(&it, priv, err);
    free(vars);
    sched_strv_release(&tags);
    sched_strv_release(&plats);
    json_decref(o);
    return rc;
}

int sched_ndjson_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    FILE *f = sched_src_open(s, err);
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        /* a byte order mark is no part of the first object */
        size_t start = lineno == 1 ? sched_bom_len(line, len) : 0;
        while (start < len && (line[start] == ' ' || line[start] == '\t'))
            start++;
        if (start == len) continue;
        if (one_line(s, lineno, line + start, len - start, cb, priv, err) < 0) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}
