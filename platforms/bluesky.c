/* bluesky.c: Bluesky over the AT Protocol: a session (createSession /
 * refreshSession) kept by the worker per account, then one
 * com.atproto.repo.createRecord of app.bsky.feed.post per part, with rich
 * text facets at UTF-8 byte offsets and a record key derived from the
 * idempotency key so a repeated create cannot duplicate. */
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

char *bsky_short_link(const char *url);

enum { ST_CREATE = 0, ST_SESSION = 1, ST_CHECK = 2, ST_RESOLVE = 3 };

/* Handles mentioned without a known DID, resolved one request each before
 * the first createRecord (com.atproto.identity.resolveHandle). */
typedef struct mentions {
    char **handles;
    int n, next;
    int listed;
} mentions;

static void mentions_free(void *p)
{
    mentions *m = p;
    if (!m) return;
    for (int i = 0; i < m->n; i++) free(m->handles[i]);
    free(m->handles);
    free(m);
}

static long bsky_count(const plat_account *a, const char *text)
{
    return plat_count_graphemes(text);
}

void plat_bluesky_rkey(const char *key, char out[14])
{
    static const char b32[] = "234567abcdefghijklmnopqrstuvwxyz";
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), h);
    uint64_t x = 0, y = 0;
    for (int i = 0; i < 8; i++) x = x << 8 | h[i], y = y << 8 | h[8 + i];
    /* a TID: 53 bits of microseconds (from 2024-01-01 plus ~200 days of
     * hash, so keys look like real TIDs) and 10 bits of clock id */
    uint64_t us = 1704067200000000ULL + (x & ((1ULL << 44) - 1));
    uint64_t v = (us & ((1ULL << 53) - 1)) << 10 | (y & 1023);
    for (int i = 12; i >= 0; i--) {
        out[i] = b32[v & 31];
        v >>= 5;
    }
    out[13] = '\0';
}

static void part_rkey(const plat_send *s, int part, char out[14])
{
    const char *k = s->job->idem_key ? s->job->idem_key : s->job->id;
    if (part == 0) {
        plat_bluesky_rkey(k, out);
        return;
    }
    char *pk = hr_asprintf("%s#%d", k, part + 1);
    plat_bluesky_rkey(pk, out);
    free(pk);
}

/* ------------------------------------------------------------ facets */

static void add_facet(plat_part *p, plat_facet_type t, size_t a, size_t b, const char *v)
{
    p->facets = hr_realloc(p->facets, (size_t)(p->nfacets + 1) * sizeof *p->facets);
    p->facets[p->nfacets++] = (plat_facet){t, a, b, hr_strdup(v)};
}

static int overlaps(const plat_part *p, size_t a, size_t b)
{
    for (int i = 0; i < p->nfacets; i++)
        if (a < p->facets[i].byte_end && b > p->facets[i].byte_start) return 1;
    return 0;
}

static int facet_cmp(const void *x, const void *y)
{
    const plat_facet *a = x, *b = y;
    return a->byte_start < b->byte_start ? -1 : a->byte_start > b->byte_start;
}

static int bsky_finish(const plat_account *a, const queue_job *j, plat_part *p, hr_err *err)
{
    const char *t = p->text;
    size_t n = strlen(t);
    /* the job's link, shown shortened, still links to the full URI */
    if (j && j->link && *j->link) {
        const char *medium = plat_account_opt(a, "utm-medium", "social");
        char *full = strcmp(plat_account_opt(a, "utm", "on"), "off") == 0
                         ? hr_strdup(j->link)
                         : plat_add_utm(j->link, a->platform, medium, j->campaign);
        char *shown = bsky_short_link(full);
        const char *f = strstr(t, shown);
        if (f && !overlaps(p, (size_t)(f - t), (size_t)(f - t) + strlen(shown)))
            add_facet(p, PLAT_FACET_LINK, (size_t)(f - t), (size_t)(f - t) + strlen(shown), full);
        free(shown);
        free(full);
    }
    tx_ent *e;
    int ne = tx_scan(t, n, TX_SCAN_DOTTED | TX_SCAN_SCHEMELESS, &e);
    for (int i = 0; i < ne; i++) {
        if (overlaps(p, e[i].start, e[i].end)) continue;
        char *v = hr_strndup(t + e[i].start, e[i].end - e[i].start);
        if (e[i].type == TX_URL) {
            /* a bare domain links to https://, as Bluesky's app does */
            char *uri = strstr(v, "://") ? hr_strdup(v) : hr_asprintf("https://%s", v);
            add_facet(p, PLAT_FACET_LINK, e[i].start, e[i].end, uri);
            free(uri);
        } else if (e[i].type == TX_TAG) {
            /* the lexicon caps a tag at 64 graphemes / 640 bytes */
            size_t tl = e[i].end - e[i].start - 1;
            if (tl <= 640 && tx_graphemes_n(v + 1, tl) <= 64)
                add_facet(p, PLAT_FACET_TAG, e[i].start, e[i].end, v + 1);
        } else {
            /* a mention needs the handle's DID; without it the text stays
             * plain, as Bluesky's own app does for unresolved handles */
            char *mk = hr_asprintf("did:%s", v + 1);
            const char *did = j ? queue_job_get_meta(j, mk) : NULL;
            if (!did && j) {
                char *lower = hr_strdup(mk);
                for (char *q = lower; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
                did = queue_job_get_meta(j, lower);
                free(lower);
            }
            if (did) add_facet(p, PLAT_FACET_MENTION, e[i].start, e[i].end, did);
            free(mk);
        }
        free(v);
    }
    free(e);
    if (p->nfacets > 1) qsort(p->facets, (size_t)p->nfacets, sizeof *p->facets, facet_cmp);
    return 0;
}

static json_t *facets_record(const plat_part *p)
{
    json_t *arr = json_array();
    for (int i = 0; i < p->nfacets; i++) {
        const plat_facet *f = &p->facets[i];
        json_t *idx = json_object();
        json_object_set_new(idx, "byteStart", json_integer((json_int_t)f->byte_start));
        json_object_set_new(idx, "byteEnd", json_integer((json_int_t)f->byte_end));
        json_t *feat = json_object();
        if (f->type == PLAT_FACET_LINK) {
            json_object_set_new(feat, "$type", json_string("app.bsky.richtext.facet#link"));
            json_object_set_new(feat, "uri", json_string(f->value));
        } else if (f->type == PLAT_FACET_MENTION) {
            json_object_set_new(feat, "$type", json_string("app.bsky.richtext.facet#mention"));
            json_object_set_new(feat, "did", json_string(f->value));
        } else {
            json_object_set_new(feat, "$type", json_string("app.bsky.richtext.facet#tag"));
            json_object_set_new(feat, "tag", json_string(f->value));
        }
        json_t *fo = json_object();
        json_object_set_new(fo, "index", idx);
        json_t *feats = json_array();
        json_array_append_new(feats, feat);
        json_object_set_new(fo, "features", feats);
        json_array_append_new(arr, fo);
    }
    return arr;
}

static int has_facet_at(const plat_part *p, size_t start)
{
    for (int i = 0; i < p->nfacets; i++)
        if (p->facets[i].byte_start == start) return 1;
    return 0;
}

static mentions *list_mentions(plat_send *s)
{
    mentions *m = s->priv;
    if (m && m->listed) return m;
    if (!m) {
        m = hr_calloc(1, sizeof *m);
        s->priv = m;
        s->priv_free = mentions_free;
    }
    m->listed = 1;
    for (int k = 0; k < s->post.nparts; k++) {
        const plat_part *p = &s->post.parts[k];
        tx_ent *e;
        int ne = tx_scan(p->text, strlen(p->text), TX_SCAN_DOTTED, &e);
        for (int i = 0; i < ne; i++) {
            if (e[i].type != TX_MENTION || has_facet_at(p, e[i].start)) continue;
            char *h = hr_strndup(p->text + e[i].start + 1, e[i].end - e[i].start - 1);
            int dup = 0;
            for (int d = 0; d < m->n && !dup; d++) dup = strcasecmp(m->handles[d], h) == 0;
            if (dup || m->n >= 20) { /* a post mentions few people; cap the lookups */
                free(h);
                continue;
            }
            m->handles = hr_realloc(m->handles, (size_t)(m->n + 1) * sizeof *m->handles);
            m->handles[m->n++] = h;
        }
        free(e);
    }
    return m;
}

/* apply_did adds a mention facet for every unfaceted @handle in every part */
static void apply_did(plat_send *s, const char *handle, const char *did)
{
    for (int k = 0; k < s->post.nparts; k++) {
        plat_part *p = &s->post.parts[k];
        tx_ent *e;
        int ne = tx_scan(p->text, strlen(p->text), TX_SCAN_DOTTED, &e);
        for (int i = 0; i < ne; i++) {
            if (e[i].type != TX_MENTION || has_facet_at(p, e[i].start)) continue;
            if (e[i].end - e[i].start - 1 != strlen(handle) ||
                strncasecmp(p->text + e[i].start + 1, handle, strlen(handle)) != 0)
                continue;
            add_facet(p, PLAT_FACET_MENTION, e[i].start, e[i].end, did);
        }
        free(e);
        if (p->nfacets > 1) qsort(p->facets, (size_t)p->nfacets, sizeof *p->facets, facet_cmp);
    }
}

/* ---------------------------------------------------------- requests */

static int session_request(plat_send *s, plat_request *req, hr_err *err)
{
    s->step = ST_SESSION;
    if (s->sess && s->sess->refresh) {
        req_init(req, "POST", url_join(s->a, "/xrpc/com.atproto.server.refreshSession"));
        req_bearer(req, s->sess->refresh);
        return 0;
    }
    const char *handle = plat_account_opt(s->a, "handle", NULL);
    if (!handle) handle = s->a->name[0] == '@' ? s->a->name + 1 : s->a->name;
    req_init(req, "POST", url_join(s->a, "/xrpc/com.atproto.server.createSession"));
    json_t *b = json_object();
    json_object_set_new(b, "identifier", json_string(handle));
    json_object_set_new(b, "password", json_string(s->a->credential ? s->a->credential : ""));
    req_json(req, b);
    req_secret(req, s->a->credential);
    return 0;
}

static int get_record(plat_send *s, plat_request *req)
{
    char rk[14];
    part_rkey(s, s->part, rk);
    char *did = plat_urlenc(s->sess->did);
    req_init(req, "GET",
             url_join(s->a,
                      "/xrpc/com.atproto.repo.getRecord?repo=%s&collection=app.bsky.feed.post"
                      "&rkey=%s",
                      did, rk));
    free(did);
    req_bearer(req, s->sess->access);
    return 0;
}

static int bsky_request(plat_send *s, plat_request *req, hr_err *err)
{
    if (!s->sess) return hr_err_set(err, "bluesky: a session is required");
    if (!s->sess->access || !s->sess->did) return session_request(s, req, err);
    if (s->step == ST_CHECK) return get_record(s, req);
    mentions *m = s->preview ? NULL : list_mentions(s);
    if (m && m->next < m->n) {
        s->step = ST_RESOLVE;
        char *h = plat_urlenc(m->handles[m->next]);
        req_init(req, "GET", url_join(s->a, "/xrpc/com.atproto.identity.resolveHandle?handle=%s", h));
        free(h);
        req_bearer(req, s->sess->access);
        return 0;
    }
    s->step = ST_CREATE;
    const plat_part *p = &s->post.parts[s->part];
    char rk[14], ts[40];
    part_rkey(s, s->part, rk);
    hr_format_rfc3339(send_now(s), ts, sizeof ts);
    req_init(req, "POST", url_join(s->a, "/xrpc/com.atproto.repo.createRecord"));
    req_bearer(req, s->sess->access);
    req_idem(req, s);
    json_t *rec = json_object();
    json_object_set_new(rec, "$type", json_string("app.bsky.feed.post"));
    json_object_set_new(rec, "text", json_string(p->text));
    json_object_set_new(rec, "createdAt", json_string(ts));
    if (p->nfacets) json_object_set_new(rec, "facets", facets_record(p));
    const char *lang = queue_job_get_meta(s->job, "lang");
    if (lang) {
        json_t *l = json_array();
        json_array_append_new(l, json_string(lang));
        json_object_set_new(rec, "langs", l);
    }
    if (s->part > 0) {
        json_t *reply = json_object(), *root = json_object(), *parent = json_object();
        json_object_set_new(root, "uri", json_string(s->ids[0]));
        json_object_set_new(root, "cid", json_string(s->cids[0] ? s->cids[0] : ""));
        json_object_set_new(parent, "uri", json_string(s->ids[s->part - 1]));
        json_object_set_new(parent, "cid",
                            json_string(s->cids[s->part - 1] ? s->cids[s->part - 1] : ""));
        json_object_set_new(reply, "root", root);
        json_object_set_new(reply, "parent", parent);
        json_object_set_new(rec, "reply", reply);
    }
    json_t *b = json_object();
    json_object_set_new(b, "repo", json_string(s->sess->did));
    json_object_set_new(b, "collection", json_string("app.bsky.feed.post"));
    json_object_set_new(b, "rkey", json_string(rk));
    json_object_set_new(b, "record", rec);
    req_json(req, b);
    return 0;
}

static const char *const bsky_msgs[] = {"message", "error", NULL};

static int expired(const plat_response *r)
{
    if (r->status != 400 && r->status != 401) return 0;
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *e = jstr(j, "error");
    int x = r->status == 401 || (e && (strcmp(e, "ExpiredToken") == 0 ||
                                       strcmp(e, "InvalidToken") == 0 ||
                                       strcmp(e, "AuthenticationRequired") == 0));
    json_decref(j);
    return x;
}

/* access_expired: on an expired access token, drops it from the session
 * (the next request refreshes) and says reauth; returns 1 when it did */
static int access_expired(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (!expired(r)) return 0;
    free(s->sess->access);
    s->sess->access = NULL;
    out_set(o, PLAT_OUT_REAUTH, "bluesky: access token expired");
    return 1;
}

static void session_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    int refreshing = s->sess->refresh != NULL;
    if (expired(r) && refreshing) {
        /* the refresh token is gone too: log in again */
        free(s->sess->refresh);
        s->sess->refresh = NULL;
        out_set(o, PLAT_OUT_NEXT, "bluesky: refresh token expired, creating a session");
        return;
    }
    if (classify_error(s, r, o, bsky_msgs)) {
        if (o->kind == PLAT_OUT_PERMANENT && r->status == 401) o->kind = PLAT_OUT_REAUTH;
        return;
    }
    json_t *j = body_json(r, o, "bluesky: session");
    if (!j) {
        o->kind = PLAT_OUT_TRANSIENT;
        return;
    }
    const char *acc = jstr(j, "accessJwt"), *ref = jstr(j, "refreshJwt"), *did = jstr(j, "did");
    if (!acc || !did) {
        out_set(o, PLAT_OUT_TRANSIENT, "bluesky: session: answer has no accessJwt/did");
    } else {
        plat_session_release(s->sess);
        s->sess->access = hr_strdup(acc);
        s->sess->refresh = hr_strdup(ref);
        s->sess->did = hr_strdup(did);
        s->step = ST_CREATE;
        out_set(o, PLAT_OUT_NEXT, "bluesky: session ready");
    }
    json_decref(j);
}

static void record_done(plat_send *s, json_t *j, plat_outcome *o)
{
    free(s->cids[s->part]);
    s->cids[s->part] = hr_strdup(jstr(j, "cid"));
    s->step = ST_CREATE;
    social_part_done(s, jstr(j, "uri"), o);
}

static void bsky_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (s->step == ST_SESSION) {
        session_response(s, r, o);
        return;
    }
    if (access_expired(s, r, o)) return;
    if (s->step == ST_RESOLVE) {
        mentions *m = s->priv;
        if (classify_error(s, r, o, bsky_msgs)) {
            /* an unknown handle stays plain text; a failing server is retried */
            if (o->kind == PLAT_OUT_PERMANENT) {
                m->next++;
                out_set(o, PLAT_OUT_NEXT, "bluesky: handle not resolved");
            }
            return;
        }
        json_t *j = body_json(r, o, "bluesky: resolveHandle");
        if (!j) {
            o->kind = PLAT_OUT_TRANSIENT;
            return;
        }
        const char *did = jstr(j, "did");
        if (did && strncmp(did, "did:", 4) == 0) apply_did(s, m->handles[m->next], did);
        m->next++;
        out_set(o, PLAT_OUT_NEXT, "bluesky: handle resolved");
        json_decref(j);
        return;
    }
    if (s->step == ST_CHECK) {
        if (classify_error(s, r, o, bsky_msgs)) {
            if (r->status == 400) out_set(o, PLAT_OUT_PERMANENT, "bluesky: %s", o->message);
            return;
        }
        json_t *j = body_json(r, o, "bluesky: getRecord");
        if (!j) return;
        if (jstr(j, "uri")) record_done(s, j, o);
        else out_set(o, PLAT_OUT_UNKNOWN, "bluesky: getRecord: answer has no uri");
        json_decref(j);
        return;
    }
    if (classify_error(s, r, o, bsky_msgs)) {
        /* the rkey is taken: this post was created before; confirm it */
        if (r->status == 409 ||
            (o->kind == PLAT_OUT_PERMANENT && strstr(o->message, "already exists"))) {
            s->step = ST_CHECK;
            out_set(o, PLAT_OUT_NEXT, "bluesky: record exists, reading it back");
        }
        return;
    }
    json_t *j = body_json(r, o, "bluesky: createRecord");
    if (!j) return;
    if (jstr(j, "uri")) record_done(s, j, o);
    else out_set(o, PLAT_OUT_UNKNOWN, "bluesky: createRecord: answer has no uri");
    json_decref(j);
}

static int bsky_readback(plat_send *s, plat_request *req, hr_err *err)
{
    if (!s->sess || !s->sess->access || !s->sess->did)
        return session_request(s, req, err);
    s->step = ST_CHECK; /* the part in flight: its rkey is derived from its key */
    return get_record(s, req);
}

static void bsky_readback_response(plat_send *s, const plat_response *r, plat_outcome *o)
{
    if (s->step == ST_SESSION) {
        session_response(s, r, o);
        return;
    }
    if (r->status == 400 || r->status == 404) {
        json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
        const char *e = jstr(j, "error");
        int nf = e && strcmp(e, "RecordNotFound") == 0;
        json_decref(j);
        if (nf || r->status == 404) {
            out_set(o, PLAT_OUT_ABSENT, "bluesky: no record with that rkey");
            return;
        }
    }
    if (access_expired(s, r, o)) return;
    if (classify_error(s, r, o, bsky_msgs)) return;
    json_t *j = body_json(r, o, "bluesky: read back");
    if (!j) {
        o->kind = PLAT_OUT_TRANSIENT;
        return;
    }
    if (jstr(j, "uri")) {
        free(s->cids[s->part]);
        s->cids[s->part] = hr_strdup(jstr(j, "cid"));
        s->step = ST_CREATE;
        readback_found(s, jstr(j, "uri"), o);
    } else {
        out_set(o, PLAT_OUT_TRANSIENT, "bluesky: read back: answer has no uri");
    }
    json_decref(j);
}

static int bsky_engagement(const plat_account *a, const plat_session *sess, const char *id,
                           plat_request *req, hr_err *err)
{
    char *e = plat_urlenc(id);
    req_init(req, "GET", url_join(a, "/xrpc/app.bsky.feed.getPosts?uris=%s", e));
    free(e);
    if (sess && sess->access) req_bearer(req, sess->access);
    return 0;
}

static void bsky_engagement_parse(const plat_response *r, plat_engagement *e, plat_outcome *o)
{
    json_t *j = eng_body(r, o, "bluesky: engagement");
    if (!j) return;
    json_t *p = json_array_get(json_object_get(j, "posts"), 0);
    if (!p) {
        out_set(o, PLAT_OUT_PERMANENT, "bluesky: engagement: no such post");
    } else {
        e->likes = jlong(p, "likeCount", -1);
        e->reposts = jlong(p, "repostCount", -1);
        e->replies = jlong(p, "replyCount", -1);
        e->quotes = jlong(p, "quoteCount", -1);
        out_sent(o, jstr(p, "uri"));
    }
    json_decref(j);
}

const plat_ops plat_bluesky_ops = {
    .name = "bluesky",
    .default_base = "https://bsky.social",
    .default_limit = 300,
    .default_hashtags = 3,
    .scan_flags = TX_SCAN_DOTTED | TX_SCAN_SCHEMELESS,
    .count = bsky_count,
    .finish = bsky_finish,
    .request = bsky_request,
    .response = bsky_response,
    .readback = bsky_readback,
    .readback_response = bsky_readback_response,
    .resend_on_absent = 1,
    .engagement = bsky_engagement,
    .engagement_parse = bsky_engagement_parse,
};
