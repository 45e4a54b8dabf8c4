/* ghost.c: the Ghost JSON export reader (Ghost 1.x-5.x: {"db":[{meta,data}]}
 * or {meta,data}). posts, tags, posts_tags and users/posts_authors become
 * items with their tags and author; html, or plaintext when present. jansson
 * loads the document whole: Ghost exports hold no media, so they stay small.
 * Links are relative ("/slug/"); the importer prefixes the campaign's base-url. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* the longest id (ObjectIds have 24 characters) */
enum { ID_MAX = 64 };

/* The JSON types a field may have, as a mask. null reads as absent: Ghost
 * writes it for an empty plaintext or custom_excerpt, a draft's
 * published_at. */
#define T_OF(t) (1u << (t))
enum {
    T_STR = T_OF(JSON_STRING),
    T_INT = T_OF(JSON_INTEGER),
    T_BOOL = T_OF(JSON_TRUE) | T_OF(JSON_FALSE),
    T_ARRAY = T_OF(JSON_ARRAY),
};

static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* field returns o's field k when its type is in types, NULL when it is
 * absent or null. Another type is no value either, and writes why (unless
 * it holds an earlier reason): "title is a number, not a string". Ghost
 * files are machine-written, so a wrong type means a broken file or tool,
 * never something to guess around. */
static json_t *field(json_t *o, const char *k, unsigned types, char *why, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return NULL;
    if (types & T_OF(json_typeof(v))) return v;
    if (!why[0]) {
        const char *want[4];
        int nw = 0;
        if (types & T_STR) want[nw++] = "a string";
        if (types & T_INT) want[nw++] = "an integer";
        if (types & T_BOOL) want[nw++] = "a boolean";
        if (types & T_ARRAY) want[nw++] = "an array";
        const char *sep = nw > 2 ? ", " : " or "; /* "a, b or c", "a or b" */
        snprintf(why, n, "%s is %s, not %s%s%s%s%s", k, kind_of(v), want[0], nw > 1 ? sep : "",
                 nw > 1 ? want[1] : "", nw > 2 ? " or " : "", nw > 2 ? want[2] : "");
    }
    return NULL;
}

static const char *str_of(json_t *o, const char *k, char *why, size_t n)
{
    json_t *v = field(o, k, T_STR, why, n);
    return v ? json_string_value(v) : NULL;
}

/* Ghost ids are strings (ObjectId) since 1.0, integers before. */
static const char *id_of(json_t *o, const char *k, char *buf, size_t bufn, char *why, size_t n)
{
    json_t *v = field(o, k, T_STR | T_INT, why, n);
    if (json_is_integer(v)) {
        snprintf(buf, bufn, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return v ? json_string_value(v) : NULL;
}

static int truthy(json_t *v)
{
    if (json_is_true(v)) return 1;
    if (json_is_integer(v)) return json_integer_value(v) != 0;
    if (json_is_string(v)) return !strcmp(json_string_value(v), "1");
    return 0;
}

/* table sets *t to data's array k (NULL when absent or null); 0, or -1
 * with err when it is another type or holds an entry that is not an object:
 * tags, users and their links serve every post, so a broken one fails the
 * file, naming it. */
static int table(const sched_src *s, json_t *data, const char *k, json_t **t, hr_err *err)
{
    char why[120] = "";
    *t = field(data, k, T_ARRAY, why, sizeof why);
    if (why[0]) return hr_err_set(err, "%s: data.%s", s->name, why);
    size_t i;
    json_t *v;
    json_array_foreach(*t, i, v)
    {
        if (!json_is_object(v))
            return hr_err_set(err, "%s: %s[%zu] is %s, not an object", s->name, k, i + 1,
                              kind_of(v));
    }
    return 0;
}

static json_t *find_data(json_t *root)
{
    json_t *db = json_object_get(root, "db");
    if (json_is_array(db) && json_array_size(db) > 0) root = json_array_get(db, 0);
    json_t *data = json_object_get(root, "data");
    return json_is_object(data) ? data : NULL;
}

static int entry_err(const sched_src *s, const char *tname, size_t i, const char *why, hr_err *err)
{
    return hr_err_set(err, "%s: %s[%zu]: %s", s->name, tname, i + 1, why);
}

/* load_tables fills the maps the posts are read with from data's tags,
 * users, posts_tags and posts_authors; 0, or -1 with err naming the
 * broken entry. */
static int load_tables(const sched_src *s, json_t *data, json_t *tag_names, json_t *user_names,
                       json_t *post_tags, json_t *post_author, hr_err *err)
{
    char b1[32], b2[32], why[200] = "";
    size_t i;
    json_t *v, *t;
    if (table(s, data, "tags", &t, err) < 0) return -1;
    json_array_foreach(t, i, v)
    {
        const char *id = id_of(v, "id", b1, sizeof b1, why, sizeof why);
        const char *name = str_of(v, "name", why, sizeof why);
        const char *vis = str_of(v, "visibility", why, sizeof why);
        if (why[0]) return entry_err(s, "tags", i, why, err);
        /* internal tags (#name) organise the blog, they are not topics */
        if (id && name && !(vis && !strcmp(vis, "internal")) && name[0] != '#')
            json_object_set_new(tag_names, id, json_string(name));
    }
    if (table(s, data, "users", &t, err) < 0) return -1;
    json_array_foreach(t, i, v)
    {
        const char *id = id_of(v, "id", b1, sizeof b1, why, sizeof why);
        const char *name = str_of(v, "name", why, sizeof why);
        if (why[0]) return entry_err(s, "users", i, why, err);
        if (id && name) json_object_set_new(user_names, id, json_string(name));
    }
    if (table(s, data, "posts_tags", &t, err) < 0) return -1;
    json_array_foreach(t, i, v)
    {
        const char *pid = id_of(v, "post_id", b1, sizeof b1, why, sizeof why);
        const char *tid = id_of(v, "tag_id", b2, sizeof b2, why, sizeof why);
        if (why[0]) return entry_err(s, "posts_tags", i, why, err);
        json_t *name = tid ? json_object_get(tag_names, tid) : NULL;
        if (!pid || !name) continue;
        json_t *list = json_object_get(post_tags, pid);
        if (!list) json_object_set_new(post_tags, pid, list = json_array());
        json_array_append(list, name); /* sort_order: exports list them in order */
    }
    if (table(s, data, "posts_authors", &t, err) < 0) return -1;
    json_array_foreach(t, i, v)
    {
        const char *pid = id_of(v, "post_id", b1, sizeof b1, why, sizeof why);
        const char *uid = id_of(v, "author_id", b2, sizeof b2, why, sizeof why);
        if (why[0]) return entry_err(s, "posts_authors", i, why, err);
        json_t *name = uid ? json_object_get(user_names, uid) : NULL;
        if (pid && name && !json_object_get(post_author, pid))
            json_object_set(post_author, pid, name);
    }
    return 0;
}

int sched_ghost_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    FILE *f = sched_src_open(s, err);
    if (!f) return -1;
    /* a byte order mark is no part of the JSON */
    char bom[3];
    size_t got = fread(bom, 1, sizeof bom, f);
    if (!sched_bom_len(bom, got)) fseek(f, -(long)got, SEEK_CUR);
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!root) return hr_err_set(err, "%s:%d: malformed JSON: %s", s->name, je.line, je.text);
    json_t *data = json_is_object(root) ? find_data(root) : NULL;
    json_t *posts = data ? json_object_get(data, "posts") : NULL;
    if (!json_is_array(posts)) {
        json_decref(root);
        return hr_err_set(err, "%s:1: not a Ghost export (no db[0].data.posts array)", s->name);
    }

    /* tag id -> name, user id -> name, post id -> [tag names] in sort order */
    json_t *tag_names = json_object(), *user_names = json_object(), *post_tags = json_object(),
           *post_author = json_object();
    int bad = load_tables(s, data, tag_names, user_names, post_tags, post_author, err) < 0;
    char b1[32], why[200];
    size_t i;
    json_t *v;
    int rc = bad ? -1 : 0;
    sched_strv tags = {0};
    if (bad) posts = NULL; /* no item of a file that fails */
    json_array_foreach(posts, i, v)
    {
        char idbuf[96], linkbuf[300], pidbuf[32];
        why[0] = '\0';
        sched_item it = {0};
        it.format = SCHED_FMT_GHOST;
        it.file = s->name;
        it.line = (long)i + 1; /* record number in posts[] */
        if (!json_is_object(v))
            snprintf(why, sizeof why, "the record is %s, not an object", kind_of(v));
        const char *pid = id_of(v, "id", pidbuf, sizeof pidbuf, why, sizeof why);
        if (!pid || strlen(pid) > ID_MAX) {
            it.id = "ghost:?";
            if (pid)
                snprintf(why, sizeof why, "\"id\" is too long: %zu bytes, at most %d", strlen(pid),
                         ID_MAX);
            else if (!why[0])
                snprintf(why, sizeof why, "post has no id");
        } else {
            snprintf(idbuf, sizeof idbuf, "ghost:%s", pid);
            it.id = idbuf;
        }
        it.title = str_of(v, "title", why, sizeof why);
        const char *slug = str_of(v, "slug", why, sizeof why);
        if (slug && strlen(slug) < 200) {
            snprintf(linkbuf, sizeof linkbuf, "/%s/", slug);
            it.link = linkbuf;
        }
        const char *canon = str_of(v, "canonical_url", why, sizeof why);
        if (canon && *canon) it.link = canon;
        it.html = str_of(v, "html", why, sizeof why);
        const char *plain = str_of(v, "plaintext", why, sizeof why);
        it.text = plain && *plain ? plain : NULL;
        it.excerpt = str_of(v, "custom_excerpt", why, sizeof why);
        it.image = str_of(v, "feature_image", why, sizeof why);
        it.status = sched_status_norm(str_of(v, "status", why, sizeof why));
        const char *type = str_of(v, "type", why, sizeof why);
        json_t *page = field(v, "page", T_BOOL | T_INT | T_STR, why, sizeof why);
        it.type = type ? type : truthy(page) ? "page" : "post";
        json_t *author = pid ? json_object_get(post_author, pid) : NULL;
        const char *aid = id_of(v, "author_id", b1, sizeof b1, why, sizeof why);
        if (!author && aid) author = json_object_get(user_names, aid);
        it.author = author ? json_string_value(author) : NULL;
        sched_strv_clear(&tags);
        json_t *tl = pid ? json_object_get(post_tags, pid) : NULL;
        size_t k;
        json_t *t;
        json_array_foreach(tl, k, t)
        {
            const char *name = json_string_value(t);
            sched_strv_push(&tags, name, strlen(name));
        }
        it.tags = (const char *const *)tags.v;
        it.ntags = tags.n;
        /* Ghost 0.x/1.x stored ms numbers; later ones "YYYY-MM-DD HH:MM:SS" UTC or ISO */
        json_t *pa = field(v, "published_at", T_STR | T_INT, why, sizeof why);
        if (!why[0] && json_is_integer(pa)) {
            it.publish_ms = json_integer_value(pa);
        } else if (!why[0] && json_is_string(pa)) {
            if (sched_parse_utc(json_string_value(pa), &it.publish_ms) < 0)
                snprintf(why, sizeof why, "published_at is not a date: \"%.60s\"",
                         json_string_value(pa));
        }
        if (!why[0] && !strcmp(it.status, "future") && it.publish_ms == 0)
            snprintf(why, sizeof why, "scheduled post has no published_at");
        if (why[0]) it.error = why;
        if (cb(&it, priv, err) < 0) {
            rc = -1;
            break;
        }
    }
    sched_strv_release(&tags);
    json_decref(tag_names);
    json_decref(user_names);
    json_decref(post_tags);
    json_decref(post_author);
    json_decref(root);
    return rc;
}
