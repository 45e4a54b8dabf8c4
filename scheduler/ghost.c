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

static const char *str_of(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Ghost ids are strings (ObjectId) since 1.0, integers before. */
static const char *id_of(json_t *o, const char *k, char *buf, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

static int truthy(json_t *v)
{
    if (json_is_true(v)) return 1;
    if (json_is_integer(v)) return json_integer_value(v) != 0;
    if (json_is_string(v)) return !strcmp(json_string_value(v), "1");
    return 0;
}

static json_t *find_data(json_t *root)
{
    json_t *db = json_object_get(root, "db");
    if (json_is_array(db) && json_array_size(db) > 0) root = json_array_get(db, 0);
    json_t *data = json_object_get(root, "data");
    return json_is_object(data) ? data : NULL;
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
    char b1[32], b2[32];
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(data, "tags"), i, v)
    {
        const char *id = id_of(v, "id", b1, sizeof b1), *name = str_of(v, "name");
        const char *vis = str_of(v, "visibility");
        /* internal tags (#name) organise the blog, they are not topics */
        if (id && name && !(vis && !strcmp(vis, "internal")) && name[0] != '#')
            json_object_set_new(tag_names, id, json_string(name));
    }
    json_array_foreach(json_object_get(data, "users"), i, v)
    {
        const char *id = id_of(v, "id", b1, sizeof b1), *name = str_of(v, "name");
        if (id && name) json_object_set_new(user_names, id, json_string(name));
    }
    json_array_foreach(json_object_get(data, "posts_tags"), i, v)
    {
        const char *pid = id_of(v, "post_id", b1, sizeof b1);
        const char *tid = id_of(v, "tag_id", b2, sizeof b2);
        json_t *name = tid ? json_object_get(tag_names, tid) : NULL;
        if (!pid || !name) continue;
        json_t *list = json_object_get(post_tags, pid);
        if (!list) json_object_set_new(post_tags, pid, list = json_array());
        json_array_append(list, name); /* sort_order: exports list them in order */
    }
    json_array_foreach(json_object_get(data, "posts_authors"), i, v)
    {
        const char *pid = id_of(v, "post_id", b1, sizeof b1);
        const char *uid = id_of(v, "author_id", b2, sizeof b2);
        json_t *name = uid ? json_object_get(user_names, uid) : NULL;
        if (pid && name && !json_object_get(post_author, pid))
            json_object_set(post_author, pid, name);
    }

    int rc = 0;
    sched_strv tags = {0};
    json_array_foreach(posts, i, v)
    {
        char idbuf[96], errbuf[200], linkbuf[300], pidbuf[32];
        sched_item it = {0};
        it.format = SCHED_FMT_GHOST;
        it.file = s->name;
        it.line = (long)i + 1; /* record number in posts[] */
        const char *pid = json_is_object(v) ? id_of(v, "id", pidbuf, sizeof pidbuf) : NULL;
        if (!pid || strlen(pid) > ID_MAX) {
            it.id = "ghost:?";
            if (pid)
                snprintf(errbuf, sizeof errbuf, "\"id\" is too long: %zu bytes, at most %d",
                         strlen(pid), ID_MAX);
            it.error = pid ? errbuf : "post has no id";
        } else {
            snprintf(idbuf, sizeof idbuf, "ghost:%s", pid);
            it.id = idbuf;
        }
        it.title = str_of(v, "title");
        const char *slug = str_of(v, "slug");
        if (slug && strlen(slug) < 200) {
            snprintf(linkbuf, sizeof linkbuf, "/%s/", slug);
            it.link = linkbuf;
        }
        const char *canon = str_of(v, "canonical_url");
        if (canon && *canon) it.link = canon;
        it.html = str_of(v, "html");
        const char *plain = str_of(v, "plaintext");
        it.text = plain && *plain ? plain : NULL;
        it.excerpt = str_of(v, "custom_excerpt");
        it.image = str_of(v, "feature_image");
        it.status = sched_status_norm(str_of(v, "status"));
        const char *type = str_of(v, "type");
        it.type = type ? type : truthy(json_object_get(v, "page")) ? "page" : "post";
        json_t *author = pid ? json_object_get(post_author, pid) : NULL;
        if (!author) {
            const char *aid = id_of(v, "author_id", b1, sizeof b1);
            if (aid) author = json_object_get(user_names, aid);
        }
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
        json_t *pa = json_object_get(v, "published_at");
        if (!it.error && json_is_integer(pa)) {
            it.publish_ms = json_integer_value(pa);
        } else if (!it.error && json_is_string(pa)) {
            if (sched_parse_utc(json_string_value(pa), &it.publish_ms) < 0) {
                snprintf(errbuf, sizeof errbuf, "published_at is not a date: \"%.60s\"",
                         json_string_value(pa));
                it.error = errbuf;
            }
        }
        if (!it.error && !strcmp(it.status, "future") && it.publish_ms == 0)
            it.error = "scheduled post has no published_at";
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
