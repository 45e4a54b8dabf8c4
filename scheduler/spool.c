/* spool.c: the items an import's first pass read, kept in an unlinked temp
 * file in a compact binary form and read back by its second pass, so an
 * export is parsed once and the second pass takes exactly the items the
 * first one validated. Records are in this process's byte order and live
 * for one import: it is no exchange format. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct sched_spool {
    FILE *f;
    hr_buf rec; /* the record being written or read */
    /* the arrays of the item being read back, reused */
    const char **strs;
    int capstrs;
    queue_kv *vars;
    int capvars;
};

FILE *sched_tmpfile(const char *what, hr_err *err)
{
    const char *dir = getenv("TMPDIR");
    char *path = hr_asprintf("%s/herald-import-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w+");
    if (!f) {
        hr_err_set(err, "import: cannot create a temp file for %s in %s: %s", what,
                   dir && *dir ? dir : "/tmp", strerror(errno));
        if (fd >= 0) close(fd);
    }
    if (fd >= 0) unlink(path); /* gone when closed, even after a kill */
    free(path);
    return f;
}

sched_spool *sched_spool_new(hr_err *err)
{
    FILE *f = sched_tmpfile("the items", err);
    if (!f) return NULL;
    sched_spool *s = hr_calloc(1, sizeof *s);
    s->f = f;
    return s;
}

void sched_spool_free(sched_spool *s)
{
    if (!s) return;
    if (s->f) fclose(s->f);
    hr_buf_release(&s->rec);
    free(s->strs);
    free(s->vars);
    free(s);
}

static void put_u32(hr_buf *b, uint32_t v) { hr_buf_append(b, &v, sizeof v); }

/* a string: its length + 1 (0 for NULL), then its bytes and a NUL */
static void put_str(hr_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(b, s ? (uint32_t)n + 1 : 0);
    if (s) hr_buf_append(b, s, n + 1);
}

int sched_spool_put(sched_spool *s, const sched_item *it, hr_err *err)
{
    hr_buf *b = &s->rec;
    hr_buf_reset(b);
    put_u32(b, 0); /* the record's length, set below */
    int64_t nums[] = {it->format, it->line, it->publish_ms};
    hr_buf_append(b, nums, sizeof nums);
    const char *strs[] = {it->file,    it->id,    it->title,  it->link,   it->html, it->text,
                          it->excerpt, it->image, it->author, it->status, it->type, it->error};
    for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++)
        put_str(b, strs[i]);
    put_u32(b, (uint32_t)it->ntags);
    for (int i = 0; i < it->ntags; i++)
        put_str(b, it->tags[i]);
    put_u32(b, (uint32_t)it->nplatforms);
    for (int i = 0; i < it->nplatforms; i++)
        put_str(b, it->platforms[i]);
    put_u32(b, (uint32_t)it->nvars);
    for (int i = 0; i < it->nvars; i++) {
        put_str(b, it->vars[i].key);
        put_str(b, it->vars[i].value);
    }
    uint32_t len = (uint32_t)(b->len - sizeof len);
    memcpy(b->data, &len, sizeof len);
    if (fwrite(b->data, 1, b->len, s->f) != b->len)
        return hr_err_set(err, "import: cannot write the items' temp file: %s", strerror(errno));
    return 0;
}

/* a cursor over a record read back */
typedef struct cur {
    const char *p, *end;
    int bad;
} cur;

static uint32_t get_u32(cur *c)
{
    uint32_t v = 0;
    if ((size_t)(c->end - c->p) < sizeof v) {
        c->bad = 1;
        return 0;
    }
    memcpy(&v, c->p, sizeof v);
    c->p += sizeof v;
    return v;
}

static const char *get_str(cur *c)
{
    uint32_t n = get_u32(c);
    if (n == 0 || c->bad) return NULL;
    if ((size_t)(c->end - c->p) < n || c->p[n - 1] != '\0') {
        c->bad = 1;
        return NULL;
    }
    const char *s = c->p;
    c->p += n;
    return s;
}

/* get_strv reads a count and that many strings into s->strs from at on;
 * returns the count */
static int get_strv(sched_spool *s, cur *c, int at)
{
    uint32_t k = get_u32(c);
    if (c->bad || k > (uint32_t)(c->end - c->p)) {
        c->bad = 1;
        return 0;
    }
    if (at + (int)k > s->capstrs) {
        s->capstrs = (at + (int)k) * 2;
        s->strs = hr_realloc(s->strs, sizeof *s->strs * (size_t)s->capstrs);
    }
    for (uint32_t i = 0; i < k; i++)
        s->strs[at + (int)i] = get_str(c);
    return (int)k;
}

int sched_spool_read(sched_spool *s, sched_item_cb *cb, void *priv, hr_err *err)
{
    if (fflush(s->f) != 0 || ferror(s->f))
        return hr_err_set(err, "import: cannot write the items' temp file: %s", strerror(errno));
    if (fseek(s->f, 0, SEEK_SET) != 0)
        return hr_err_set(err, "import: cannot read the items' temp file: %s", strerror(errno));
    for (;;) {
        uint32_t len;
        size_t got = fread(&len, 1, sizeof len, s->f);
        if (got == 0 && feof(s->f)) return 0;
        hr_buf_reset(&s->rec);
        hr_buf_reserve(&s->rec, len);
        if (got != sizeof len || fread(s->rec.data, 1, len, s->f) != len)
            return hr_err_set(err, "import: cannot read the items' temp file: %s",
                              ferror(s->f) ? strerror(errno) : "cut short");
        cur c = {s->rec.data, s->rec.data + len, 0};
        sched_item it = {0};
        int64_t nums[3] = {0};
        if (len < sizeof nums) c.bad = 1;
        if (!c.bad) memcpy(nums, c.p, sizeof nums), c.p += sizeof nums;
        it.format = (sched_format)nums[0];
        it.line = (long)nums[1];
        it.publish_ms = nums[2];
        const char **strs[] = {&it.file,    &it.id,    &it.title,  &it.link,
                               &it.html,    &it.text,  &it.excerpt, &it.image,
                               &it.author,  &it.status, &it.type,   &it.error};
        for (size_t i = 0; i < HR_ARRAY_LEN(strs); i++)
            *strs[i] = get_str(&c);
        it.ntags = get_strv(s, &c, 0);
        it.nplatforms = get_strv(s, &c, it.ntags);
        it.tags = s->strs;
        it.platforms = s->strs + it.ntags;
        uint32_t nv = get_u32(&c);
        if (nv > (uint32_t)(c.end - c.p)) c.bad = 1;
        if (!c.bad && (int)nv > s->capvars) {
            s->capvars = (int)nv * 2;
            s->vars = hr_realloc(s->vars, sizeof *s->vars * (size_t)s->capvars);
        }
        for (uint32_t i = 0; !c.bad && i < nv; i++) {
            s->vars[i].key = (char *)get_str(&c);
            s->vars[i].value = (char *)get_str(&c);
        }
        it.vars = s->vars;
        it.nvars = c.bad ? 0 : (int)nv;
        if (c.bad || c.p != c.end)
            return hr_err_set(err, "import: the items' temp file is corrupt");
        if (cb(&it, priv, err) < 0) return -1;
    }
}
