/* job.c: the job record, its id, and its msgpack codec.
 * The encoding is a map of small integer keys (compact, and a reader skips
 * keys it does not know); field 0 is the codec version. Unknown fields are
 * kept verbatim and written back, so an older worker never drops what a
 * newer scheduler wrote. It does not talk to Redis. */
#include <msgpack.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"

enum {
    F_VERSION = 0,
    F_KIND = 2,
    F_PLATFORM,
    F_ACCOUNT,
    F_CAMPAIGN,
    F_SOURCE,
    F_UNIQUE,
    F_IDEM,
    F_RUN_AT,
    F_CREATED,
    F_ATTEMPT,
    F_MAX_ATTEMPTS,
    F_LAST_ERROR,
    F_TEXT = 20,
    F_TITLE,
    F_EXCERPT,
    F_LINK,
    F_TAGS,
    F_MEDIA,
    F_TO = 30,
    F_TO_NAME,
    F_SUBJECT,
    F_HTML,
    F_BODY_TEXT,
    F_PREHEADER,
    F_VARS,
    F_META = 40,
};

enum { QUEUE_DEFAULT_MAX_ATTEMPTS = 5 };

queue_job *queue_job_new(void)
{
    queue_job *j = hr_calloc(1, sizeof *j);
    j->kind = QUEUE_KIND_POST;
    j->max_attempts = QUEUE_DEFAULT_MAX_ATTEMPTS;
    return j;
}

static void free_strv(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void free_kv(queue_kv *kv, int n)
{
    for (int i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

void queue_job_free(queue_job *j)
{
    if (!j) return;
    char **strs[] = {&j->platform, &j->account, &j->campaign, &j->source, &j->unique_key,
                     &j->id_key, &j->idem_key, &j->last_error, &j->text, &j->title, &j->excerpt,
                     &j->link, &j->to, &j->to_name, &j->subject, &j->html, &j->body_text,
                     &j->preheader};
    for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++) free(*strs[i]);
    free_strv(j->tags, j->ntags);
    free_strv(j->media, j->nmedia);
    free_kv(j->vars, j->nvars);
    free_kv(j->meta, j->nmeta);
    free(j->extra);
    free(j);
}

void queue_set(char **field, const char *v)
{
    char *old = *field;
    *field = hr_strdup(v);
    free(old);
}

static void strv_push(char ***v, int *n, const char *s)
{
    *v = hr_realloc(*v, sizeof(char *) * (size_t)(*n + 1));
    (*v)[(*n)++] = hr_strdup(s);
}

void queue_job_add_tag(queue_job *j, const char *tag) { strv_push(&j->tags, &j->ntags, tag); }

void queue_job_add_media(queue_job *j, const char *ref)
{
    strv_push(&j->media, &j->nmedia, ref);
}

static void kv_set(queue_kv **kv, int *n, const char *k, const char *v)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*kv)[i].key, k) == 0) {
            queue_set(&(*kv)[i].value, v);
            return;
        }
    *kv = hr_realloc(*kv, sizeof(queue_kv) * (size_t)(*n + 1));
    (*kv)[*n].key = hr_strdup(k);
    (*kv)[*n].value = hr_strdup(v);
    (*n)++;
}

static const char *kv_get(const queue_kv *kv, int n, const char *k)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, k) == 0) return kv[i].value;
    return NULL;
}

void queue_job_set_var(queue_job *j, const char *k, const char *v)
{
    kv_set(&j->vars, &j->nvars, k, v);
}

void queue_job_set_meta(queue_job *j, const char *k, const char *v)
{
    kv_set(&j->meta, &j->nmeta, k, v);
}

const char *queue_job_get_meta(const queue_job *j, const char *k)
{
    return kv_get(j->meta, j->nmeta, k);
}

const char *queue_job_get_var(const queue_job *j, const char *k)
{
    return kv_get(j->vars, j->nvars, k);
}

queue_job *queue_job_dup(const queue_job *j)
{
    hr_buf b;
    hr_buf_init(&b);
    queue_job_encode(j, &b);
    hr_err err = {0};
    queue_job *d = queue_job_decode(b.data, b.len, &err);
    hr_buf_release(&b);
    if (!d) abort(); /* our own encoding must decode */
    memcpy(d->id, j->id, sizeof d->id);
    return d;
}

int queue_job_lane(const queue_job *j, char *out, size_t outlen)
{
    if (!j->platform || !*j->platform || !j->account || !*j->account) return -1;
    size_t p = strlen(j->platform), a = strlen(j->account);
    if (p + 1 + a >= outlen) return -1;
    memcpy(out, j->platform, p); /* not snprintf: this runs for every job enqueued */
    out[p] = ':';
    memcpy(out + p + 1, j->account, a + 1);
    return 0;
}

/* ukh_from_bytes turns 71 bits of b (9 bytes) into 12 base62 digits. */
static void ukh_from_bytes(const unsigned char *b, char *out)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    uint64_t lo;
    memcpy(&lo, b, 8);
    unsigned __int128 v = ((unsigned __int128)(b[8] & 0x7f) << 64) | lo;
    for (int i = QUEUE_UKH_LEN - 1; i >= 0; i--) {
        out[i] = b62[(int)(v % 62)];
        v /= 62;
    }
    out[QUEUE_UKH_LEN] = '\0';
}

void queue_ukh_from_key(const char *unique_key, char *out)
{
    /* A bulk import hashes millions of short keys: SHA256() looks the
     * algorithm up by name and EVP_Digest() allocates a context on every
     * call, each costing more than the hash itself. The algorithm and one
     * context are kept for the process (herald runs no threads). */
    static EVP_MD *sha256;
    static EVP_MD_CTX *ctx;
    if (!sha256) sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!ctx) ctx = EVP_MD_CTX_new();
    unsigned char md[SHA256_DIGEST_LENGTH];
    size_t n = strlen(unique_key);
    if (!sha256 || !ctx || !EVP_DigestInit_ex2(ctx, sha256, NULL) ||
        !EVP_DigestUpdate(ctx, unique_key, n) || !EVP_DigestFinal_ex(ctx, md, NULL))
        SHA256((const unsigned char *)unique_key, n, md);
    ukh_from_bytes(md, out);
}

void queue_job_assign_id(queue_job *j)
{
    if (j->id[0]) return;
    if (!j->created_ms) j->created_ms = hr_now_ms();
    char ukh[QUEUE_UKH_LEN + 1];
    if (j->unique_key && *j->unique_key) {
        queue_ukh_from_key(j->unique_key, ukh);
        queue_set(&j->id_key, j->unique_key);
    } else {
        unsigned char b[9];
        hr_random_bytes(b, sizeof b);
        ukh_from_bytes(b, ukh);
    }
    hr_base62_fixed((uint64_t)j->created_ms, QUEUE_TS_LEN, j->id);
    memcpy(j->id + QUEUE_TS_LEN, ukh, QUEUE_UKH_LEN + 1);
    if (!j->idem_key) { /* "hr-<ukh>", without printf: once per job enqueued */
        j->idem_key = hr_malloc(3 + QUEUE_UKH_LEN + 1);
        memcpy(j->idem_key, "hr-", 3);
        memcpy(j->idem_key + 3, ukh, QUEUE_UKH_LEN + 1);
    }
}

const char *queue_job_ukh(const queue_job *j) { return j->id + QUEUE_TS_LEN; }

/* ------------------------------------------------------------ encode */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int sbuf_write(void *data, const char *buf, size_t len)
{
    hr_buf *b = data;
    /* most writes are a byte or two (a key, a header): copied here, not
     * through a call to memcpy; hr_buf stays NUL-terminated after len */
    if (len <= 8 && b->len + len < b->cap) {
        for (size_t i = 0; i < len; i++)
            b->data[b->len + i] = buf[i];
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
    }
    hr_buf_append(b, buf, len);
    return 0;
}

/* is_default_idem: the idem key is "hr-<ukh>", what a reader derives */
static int is_default_idem(const queue_job *j)
{
    return j->idem_key && !strncmp(j->idem_key, "hr-", 3) &&
           !strcmp(j->idem_key + 3, j->id + QUEUE_TS_LEN);
}

/* created_in_id: the id's time prefix says created_ms */
static int created_in_id(const queue_job *j)
{
    char ts[QUEUE_TS_LEN + 1];
    if (j->created_ms <= 0) return 0;
    hr_base62_fixed((uint64_t)j->created_ms, QUEUE_TS_LEN, ts);
    return !memcmp(ts, j->id, QUEUE_TS_LEN);
}

/* encode writes j's map. Fields at their decoder's default (attempt 0, a
 * post, 5 attempts) are left out; for a stored value (stored), so are the
 * idem key and creation time when its id says them (the stored reader puts
 * them back): a third of a job's fixed fields, read back identically. */
static void encode(const queue_job *j, hr_buf *out, int stored)
{
    int skip_idem = stored && is_default_idem(j), skip_created = stored && created_in_id(j);
    struct {
        int key;
        const char *v;
    } strs[] = {
        {F_PLATFORM, j->platform}, {F_ACCOUNT, j->account},     {F_CAMPAIGN, j->campaign},
        {F_SOURCE, j->source},     {F_UNIQUE, j->unique_key},
        {F_IDEM, skip_idem ? NULL : j->idem_key},
        {F_LAST_ERROR, j->last_error}, {F_TEXT, j->text},       {F_TITLE, j->title},
        {F_EXCERPT, j->excerpt},   {F_LINK, j->link},           {F_TO, j->to},
        {F_TO_NAME, j->to_name},   {F_SUBJECT, j->subject},     {F_HTML, j->html},
        {F_BODY_TEXT, j->body_text}, {F_PREHEADER, j->preheader},
    };
    struct {
        int key;
        int64_t v;
        int skip;
    } ints[] = {
        {F_KIND, j->kind, j->kind == QUEUE_KIND_POST},
        {F_RUN_AT, j->run_at_ms, 0},
        {F_CREATED, j->created_ms, skip_created},
        {F_ATTEMPT, j->attempt, j->attempt == 0},
        {F_MAX_ATTEMPTS, j->max_attempts, j->max_attempts == QUEUE_DEFAULT_MAX_ATTEMPTS},
    };
    uint32_t count = 1 + j->extra_count; /* the version, then what is set */
    for (size_t i = 0; i < HR_ARRAY_LEN(ints); i++) count += !ints[i].skip;
    for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++) count += strs[i].v != NULL;
    count += j->ntags > 0;
    count += j->nmedia > 0;
    count += j->nvars > 0;
    count += j->nmeta > 0;

    msgpack_packer pk;
    msgpack_packer_init(&pk, out, sbuf_write);
    msgpack_pack_map(&pk, count);
    msgpack_pack_int(&pk, F_VERSION);
    msgpack_pack_int(&pk, QUEUE_CODEC_VERSION);
    for (size_t i = 0; i < HR_ARRAY_LEN(ints); i++) {
        if (ints[i].skip) continue;
        msgpack_pack_int(&pk, ints[i].key);
        msgpack_pack_int64(&pk, ints[i].v);
    }
    for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++) {
        if (!strs[i].v) continue;
        msgpack_pack_int(&pk, strs[i].key);
        pack_str(&pk, strs[i].v);
    }
    struct {
        int key;
        char **v;
        int n;
    } arrs[] = {{F_TAGS, j->tags, j->ntags}, {F_MEDIA, j->media, j->nmedia}};
    for (size_t i = 0; i < HR_ARRAY_LEN(arrs); i++) {
        if (arrs[i].n <= 0) continue;
        msgpack_pack_int(&pk, arrs[i].key);
        msgpack_pack_array(&pk, (size_t)arrs[i].n);
        for (int k = 0; k < arrs[i].n; k++) pack_str(&pk, arrs[i].v[k]);
    }
    struct {
        int key;
        queue_kv *v;
        int n;
    } maps[] = {{F_VARS, j->vars, j->nvars}, {F_META, j->meta, j->nmeta}};
    for (size_t i = 0; i < HR_ARRAY_LEN(maps); i++) {
        if (maps[i].n <= 0) continue;
        msgpack_pack_int(&pk, maps[i].key);
        msgpack_pack_map(&pk, (size_t)maps[i].n);
        for (int k = 0; k < maps[i].n; k++) {
            pack_str(&pk, maps[i].v[k].key);
            pack_str(&pk, maps[i].v[k].value);
        }
    }
    if (j->extra_len) hr_buf_append(out, j->extra, j->extra_len);
}

void queue_job_encode(const queue_job *j, hr_buf *out) { encode(j, out, 0); }

void queue_job_encode_stored(const queue_job *j, hr_buf *out)
{
    hr_buf_append(out, j->id, QUEUE_TS_LEN);
    encode(j, out, 1);
}

/* ------------------------------------------------------------ decode */

/* check_shape walks the msgpack bytes without allocating and fails when a
 * container claims more elements than bytes remain, or nests too deep, so a
 * hostile length cannot make the unpacker allocate gigabytes. */
static int check_shape(const unsigned char *p, size_t n, size_t *pos, int depth)
{
    if (depth > 16) return -1;
    if (*pos >= n) return -1;
    unsigned char c = p[(*pos)++];
    uint64_t len = 0, items = 0;
    size_t need;
#define NEED(k)                                                                      \
    do {                                                                             \
        if (n - *pos < (size_t)(k)) return -1;                                       \
    } while (0)
#define BE(k, out)                                                                   \
    do {                                                                             \
        NEED(k);                                                                     \
        out = 0;                                                                     \
        for (int _i = 0; _i < (k); _i++) out = (out << 8) | p[(*pos)++];             \
    } while (0)
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) return 0;
    if ((c & 0xf0) == 0x80) {
        items = (uint64_t)(c & 0x0f) * 2;
        goto container;
    }
    if ((c & 0xf0) == 0x90) {
        items = c & 0x0f;
        goto container;
    }
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
        goto bytes;
    }
    switch (c) {
    case 0xcc: case 0xd0: need = 1; goto fixed;
    case 0xcd: case 0xd1: need = 2; goto fixed;
    case 0xce: case 0xd2: case 0xca: need = 4; goto fixed;
    case 0xcf: case 0xd3: case 0xcb: need = 8; goto fixed;
    case 0xd4: need = 2; goto fixed;
    case 0xd5: need = 3; goto fixed;
    case 0xd6: need = 5; goto fixed;
    case 0xd7: need = 9; goto fixed;
    case 0xd8: need = 17; goto fixed;
    case 0xc4: case 0xd9: BE(1, len); goto bytes;
    case 0xc5: case 0xda: BE(2, len); goto bytes;
    case 0xc6: case 0xdb: BE(4, len); goto bytes;
    case 0xc7: BE(1, len); len += 1; goto bytes;
    case 0xc8: BE(2, len); len += 1; goto bytes;
    case 0xc9: BE(4, len); len += 1; goto bytes;
    case 0xdc: BE(2, items); goto container;
    case 0xdd: BE(4, items); goto container;
    case 0xde: BE(2, items); items *= 2; goto container;
    case 0xdf: BE(4, items); items *= 2; goto container;
    default: return -1; /* 0xc1 is never used */
    }
fixed:
    NEED(need);
    *pos += need;
    return 0;
bytes:
    NEED(len);
    *pos += (size_t)len;
    return 0;
container:
    if (items > n - *pos) return -1;
    for (uint64_t i = 0; i < items; i++)
        if (check_shape(p, n, pos, depth + 1) < 0) return -1;
    return 0;
#undef NEED
#undef BE
}

static int obj_str(const msgpack_object *o, char **out, const char *what, hr_err *err)
{
    if (o->type == MSGPACK_OBJECT_NIL) return 0;
    if (o->type != MSGPACK_OBJECT_STR)
        return hr_err_set(err, "job: field %s is not a string", what);
    if (memchr(o->via.str.ptr, '\0', o->via.str.size))
        return hr_err_set(err, "job: field %s contains a NUL byte", what);
    free(*out);
    *out = hr_strndup(o->via.str.ptr, o->via.str.size);
    return 0;
}

static int obj_int(const msgpack_object *o, int64_t *out, const char *what, hr_err *err)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) return hr_err_set(err, "job: field %s out of range", what);
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return hr_err_set(err, "job: field %s is not an integer", what);
}

static int obj_strv(const msgpack_object *o, char ***v, int *n, const char *what, hr_err *err)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return hr_err_set(err, "job: field %s is not an array", what);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        char *s = NULL;
        if (obj_str(&o->via.array.ptr[i], &s, what, err) < 0) return -1;
        if (!s) continue;
        *v = hr_realloc(*v, sizeof(char *) * (size_t)(*n + 1));
        (*v)[(*n)++] = s;
    }
    return 0;
}

static int obj_kv(const msgpack_object *o, queue_kv **kv, int *n, const char *what, hr_err *err)
{
    if (o->type != MSGPACK_OBJECT_MAP) return hr_err_set(err, "job: field %s is not a map", what);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        char *k = NULL, *v = NULL;
        if (obj_str(&o->via.map.ptr[i].key, &k, what, err) < 0 ||
            obj_str(&o->via.map.ptr[i].val, &v, what, err) < 0 || !k) {
            free(k);
            free(v);
            return err && err->code ? -1 : hr_err_set(err, "job: field %s has a nil key", what);
        }
        kv_set(kv, n, k, v ? v : "");
        free(k);
        free(v);
    }
    return 0;
}

static int decode_field(queue_job *j, int64_t key, const msgpack_object *v, hr_err *err,
                        msgpack_packer *extra_pk, const msgpack_object *keyobj)
{
    int64_t x = 0;
    switch (key) {
    case F_VERSION:
        if (obj_int(v, &x, "version", err) < 0) return -1;
        if (x < 1) return hr_err_set(err, "job: bad codec version %lld", (long long)x);
        return 0; /* newer versions are read as far as we understand them */
    case F_KIND:
        if (obj_int(v, &x, "kind", err) < 0) return -1;
        if (x < QUEUE_KIND_POST || x > QUEUE_KIND_POLL)
            return hr_err_set(err, "job: unknown kind %lld", (long long)x);
        j->kind = (queue_kind)x;
        return 0;
    case F_RUN_AT: return obj_int(v, &j->run_at_ms, "run_at", err);
    case F_CREATED: return obj_int(v, &j->created_ms, "created", err);
    case F_ATTEMPT:
    case F_MAX_ATTEMPTS:
        if (obj_int(v, &x, "attempt", err) < 0) return -1;
        if (x < 0 || x > QUEUE_ATTEMPTS_LIMIT)
            return hr_err_set(err, "job: attempt count out of range");
        *(key == F_ATTEMPT ? &j->attempt : &j->max_attempts) = (int)x;
        return 0;
    case F_PLATFORM: return obj_str(v, &j->platform, "platform", err);
    case F_ACCOUNT: return obj_str(v, &j->account, "account", err);
    case F_CAMPAIGN: return obj_str(v, &j->campaign, "campaign", err);
    case F_SOURCE: return obj_str(v, &j->source, "source", err);
    case F_UNIQUE: return obj_str(v, &j->unique_key, "unique_key", err);
    case F_IDEM: return obj_str(v, &j->idem_key, "idem_key", err);
    case F_LAST_ERROR: return obj_str(v, &j->last_error, "last_error", err);
    case F_TEXT: return obj_str(v, &j->text, "text", err);
    case F_TITLE: return obj_str(v, &j->title, "title", err);
    case F_EXCERPT: return obj_str(v, &j->excerpt, "excerpt", err);
    case F_LINK: return obj_str(v, &j->link, "link", err);
    case F_TO: return obj_str(v, &j->to, "to", err);
    case F_TO_NAME: return obj_str(v, &j->to_name, "to_name", err);
    case F_SUBJECT: return obj_str(v, &j->subject, "subject", err);
    case F_HTML: return obj_str(v, &j->html, "html", err);
    case F_BODY_TEXT: return obj_str(v, &j->body_text, "body_text", err);
    case F_PREHEADER: return obj_str(v, &j->preheader, "preheader", err);
    case F_TAGS: return obj_strv(v, &j->tags, &j->ntags, "tags", err);
    case F_MEDIA: return obj_strv(v, &j->media, &j->nmedia, "media", err);
    case F_VARS: return obj_kv(v, &j->vars, &j->nvars, "vars", err);
    case F_META: return obj_kv(v, &j->meta, &j->nmeta, "meta", err);
    default:
        /* a field from a newer herald: keep it */
        msgpack_pack_object(extra_pk, *keyobj);
        msgpack_pack_object(extra_pk, *v);
        j->extra_count++;
        return 0;
    }
}

queue_job *queue_job_decode(const void *p, size_t n, hr_err *err)
{
    size_t pos = 0;
    if (n == 0) {
        hr_err_set(err, "job: empty blob");
        return NULL;
    }
    if (check_shape(p, n, &pos, 0) < 0) {
        hr_err_set(err, "job: corrupt msgpack (truncated or bad lengths)");
        return NULL;
    }
    if (pos != n) {
        hr_err_set(err, "job: %zu trailing bytes after the job", n - pos);
        return NULL;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    queue_job *j = NULL;
    if (msgpack_unpack_next(&u, p, n, &off) != MSGPACK_UNPACK_SUCCESS) {
        hr_err_set(err, "job: corrupt msgpack");
        goto out;
    }
    const msgpack_object *root = &u.data;
    if (root->type != MSGPACK_OBJECT_MAP) {
        hr_err_set(err, "job: not a msgpack map");
        goto out;
    }
    j = queue_job_new();
    hr_buf extra;
    hr_buf_init(&extra);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &extra, sbuf_write);
    int have_version = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        int64_t key;
        if (kv->key.type != MSGPACK_OBJECT_POSITIVE_INTEGER || kv->key.via.u64 > 1000000) {
            /* string or other keys come from someone else's writer: keep them */
            msgpack_pack_object(&pk, kv->key);
            msgpack_pack_object(&pk, kv->val);
            j->extra_count++;
            continue;
        }
        key = (int64_t)kv->key.via.u64;
        if (key == F_VERSION) have_version = 1;
        if (decode_field(j, key, &kv->val, err, &pk, &kv->key) < 0) {
            hr_buf_release(&extra);
            queue_job_free(j);
            j = NULL;
            goto out;
        }
    }
    if (!have_version) {
        hr_buf_release(&extra);
        queue_job_free(j);
        j = NULL;
        hr_err_set(err, "job: no codec version (not a herald job)");
        goto out;
    }
    j->extra_len = extra.len;
    j->extra = (unsigned char *)(extra.len ? hr_buf_detach(&extra) : NULL);
    hr_buf_release(&extra);
out:
    msgpack_unpacked_destroy(&u);
    return j;
}

queue_job *queue_job_decode_stored(const char *ukh, const void *p, size_t n, hr_err *err)
{
    if (n < QUEUE_TS_LEN) {
        hr_err_set(err, "job %s: stored value too short (%zu bytes)", ukh, n);
        return NULL;
    }
    const char *s = p;
    for (int i = 0; i < QUEUE_TS_LEN; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            hr_err_set(err, "job %s: stored value has no id prefix", ukh);
            return NULL;
        }
    }
    queue_job *j = queue_job_decode(s + QUEUE_TS_LEN, n - QUEUE_TS_LEN, err);
    if (!j) return NULL;
    memcpy(j->id, s, QUEUE_TS_LEN);
    snprintf(j->id + QUEUE_TS_LEN, QUEUE_UKH_LEN + 1, "%s", ukh);
    /* what queue_job_encode_stored leaves out, said by the id */
    if (!j->idem_key) j->idem_key = hr_asprintf("hr-%s", j->id + QUEUE_TS_LEN);
    if (!j->created_ms) {
        for (int i = 0; i < QUEUE_TS_LEN; i++) {
            char c = s[i];
            int d = c <= '9' ? c - '0' : c <= 'Z' ? c - 'A' + 10 : c - 'a' + 36;
            j->created_ms = j->created_ms * 62 + d;
        }
    }
    return j;
}
