/* json.c: a job as JSON, for people (herald jobs show) and for scripts
 * (herald enqueue, herald format --job). Field names are the documented
 * ones in docs/jobs.md; the msgpack codec stays the storage format. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

static const char *kind_name(queue_kind k)
{
    return k == QUEUE_KIND_EMAIL ? "email" : k == QUEUE_KIND_POLL ? "poll" : "post";
}

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v) json_object_set_new(o, k, json_string(v));
}

char *queue_job_to_json(const queue_job *j)
{
    json_t *o = json_object();
    char ts[40];
    if (j->id[0]) set_str(o, "id", j->id);
    set_str(o, "kind", kind_name(j->kind));
    set_str(o, "platform", j->platform);
    set_str(o, "account", j->account);
    set_str(o, "campaign", j->campaign);
    set_str(o, "source", j->source);
    set_str(o, "unique_key", j->unique_key);
    set_str(o, "idempotency_key", j->idem_key);
    hr_format_rfc3339(j->run_at_ms, ts, sizeof ts);
    set_str(o, "run_at", ts);
    hr_format_rfc3339(j->created_ms, ts, sizeof ts);
    set_str(o, "created_at", ts);
    json_object_set_new(o, "attempt", json_integer(j->attempt));
    json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    set_str(o, "last_error", j->last_error);
    set_str(o, "text", j->text);
    set_str(o, "title", j->title);
    set_str(o, "excerpt", j->excerpt);
    set_str(o, "link", j->link);
    if (j->ntags) {
        json_t *a = json_array();
        for (int i = 0; i < j->ntags; i++) json_array_append_new(a, json_string(j->tags[i]));
        json_object_set_new(o, "tags", a);
    }
    if (j->nmedia) {
        json_t *a = json_array();
        for (int i = 0; i < j->nmedia; i++) json_array_append_new(a, json_string(j->media[i]));
        json_object_set_new(o, "media", a);
    }
    set_str(o, "to", j->to);
    set_str(o, "to_name", j->to_name);
    set_str(o, "subject", j->subject);
    set_str(o, "html", j->html);
    set_str(o, "body_text", j->body_text);
    set_str(o, "preheader", j->preheader);
    const struct {
        const char *name;
        queue_kv *kv;
        int n;
    } maps[] = {{"vars", j->vars, j->nvars}, {"meta", j->meta, j->nmeta}};
    for (size_t m = 0; m < HR_ARRAY_LEN(maps); m++) {
        if (!maps[m].n) continue;
        json_t *v = json_object();
        for (int i = 0; i < maps[m].n; i++)
            json_object_set_new(v, maps[m].kv[i].key, json_string(maps[m].kv[i].value));
        json_object_set_new(o, maps[m].name, v);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s ? s : hr_strdup("{}");
}

static int get_str(json_t *o, const char *k, char **out, hr_err *err)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return hr_err_set(err, "job: \"%s\" must be a string", k);
    queue_set(out, json_string_value(v));
    return 0;
}

static int get_time(json_t *o, const char *k, int64_t *out, hr_err *err)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && hr_parse_rfc3339(json_string_value(v), out) == 0) return 0;
    return hr_err_set(err, "job: \"%s\" must be RFC 3339 time or epoch ms", k);
}

queue_job *queue_job_from_json(const char *text, hr_err *err)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o) {
        hr_err_set(err, "job: line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    queue_job *j = queue_job_new();
    if (!json_is_object(o)) {
        hr_err_set(err, "job: not a JSON object");
        goto bad;
    }
    const char *kind = json_string_value(json_object_get(o, "kind"));
    if (!kind || strcmp(kind, "post") == 0)
        j->kind = QUEUE_KIND_POST;
    else if (strcmp(kind, "email") == 0)
        j->kind = QUEUE_KIND_EMAIL;
    else if (strcmp(kind, "poll") == 0)
        j->kind = QUEUE_KIND_POLL;
    else {
        hr_err_set(err, "job: unknown kind \"%s\"", kind);
        goto bad;
    }
    struct {
        const char *k;
        char **f;
    } strs[] = {{"platform", &j->platform},   {"account", &j->account},
                {"campaign", &j->campaign},   {"source", &j->source},
                {"unique_key", &j->unique_key}, {"idempotency_key", &j->idem_key},
                {"last_error", &j->last_error}, {"text", &j->text},
                {"title", &j->title},         {"excerpt", &j->excerpt},
                {"link", &j->link},           {"to", &j->to},
                {"to_name", &j->to_name},     {"subject", &j->subject},
                {"html", &j->html},           {"body_text", &j->body_text},
                {"preheader", &j->preheader}};
    for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++)
        if (get_str(o, strs[i].k, strs[i].f, err) < 0) goto bad;
    if (get_time(o, "run_at", &j->run_at_ms, err) < 0) goto bad;
    if (get_time(o, "created_at", &j->created_ms, err) < 0) goto bad;
    const char *counts[] = {"attempt", "max_attempts"};
    for (size_t c = 0; c < 2; c++) {
        json_t *v = json_object_get(o, counts[c]);
        if (!json_is_integer(v)) continue;
        json_int_t n = json_integer_value(v);
        /* the codec's range: a job out of it could be enqueued but never
         * read back (a worker would bury it as corrupt) */
        if (n < 0 || n > QUEUE_ATTEMPTS_LIMIT) {
            hr_err_set(err, "job: \"%s\" must be from 0 to %d, not %lld", counts[c],
                       QUEUE_ATTEMPTS_LIMIT, (long long)n);
            goto bad;
        }
        *(c == 0 ? &j->attempt : &j->max_attempts) = (int)n;
    }
    const char *arrs[] = {"tags", "media"};
    for (size_t a = 0; a < 2; a++) {
        json_t *arr = json_object_get(o, arrs[a]);
        if (!arr) continue;
        if (!json_is_array(arr)) {
            hr_err_set(err, "job: \"%s\" must be an array of strings", arrs[a]);
            goto bad;
        }
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            if (!json_is_string(e)) {
                hr_err_set(err, "job: \"%s\" must be an array of strings", arrs[a]);
                goto bad;
            }
            if (a == 0)
                queue_job_add_tag(j, json_string_value(e));
            else
                queue_job_add_media(j, json_string_value(e));
        }
    }
    const char *maps[] = {"vars", "meta"};
    for (size_t m = 0; m < 2; m++) {
        json_t *map = json_object_get(o, maps[m]);
        if (!map) continue;
        if (!json_is_object(map)) {
            hr_err_set(err, "job: \"%s\" must be an object of strings", maps[m]);
            goto bad;
        }
        const char *k;
        json_t *e;
        json_object_foreach(map, k, e)
        {
            if (!json_is_string(e)) {
                hr_err_set(err, "job: \"%s.%s\" must be a string", maps[m], k);
                goto bad;
            }
            if (m == 0)
                queue_job_set_var(j, k, json_string_value(e));
            else
                queue_job_set_meta(j, k, json_string_value(e));
        }
    }
    const char *id = json_string_value(json_object_get(o, "id"));
    if (id && strlen(id) == QUEUE_ID_LEN) memcpy(j->id, id, QUEUE_ID_LEN + 1);
    json_decref(o);
    return j;
bad:
    json_decref(o);
    queue_job_free(j);
    return NULL;
}
