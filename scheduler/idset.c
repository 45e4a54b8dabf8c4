/* idset.c: the source ids an import met, so an id used twice in one export
 * is a bad item. Pass 1 keeps only a 64-bit hash per id (8 bytes a slot,
 * open addressing, at most 3/4 full), which says "maybe seen"; the exact
 * ids are compared only for hashes met twice (sched_idmap). It does not
 * read or report items. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

uint64_t sched_id_hash(const char *id)
{
    uint64_t h = sched_hash64(SCHED_HASH_INIT, id);
    return h ? h : 1; /* 0 marks an empty slot */
}

/* slot_of is where h's probe starts: FNV's low bits are mixed first */
static size_t slot_of(uint64_t h, size_t cap)
{
    return (size_t)((h * 0x9e3779b97f4a7c15ULL) >> 32) & (cap - 1);
}

/* find returns h's slot, or the empty one where it would go */
static size_t find(const uint64_t *slot, size_t cap, uint64_t h)
{
    size_t i = slot_of(h, cap);
    while (slot[i] && slot[i] != h)
        i = (i + 1) & (cap - 1);
    return i;
}

int sched_idset_add(sched_idset *s, uint64_t h)
{
    if (4 * (s->n + 1) > 3 * s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *slot = hr_calloc(cap, sizeof *slot);
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) slot[find(slot, cap, s->slot[i])] = s->slot[i];
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    size_t i = find(s->slot, s->cap, h);
    if (s->slot[i]) return 1;
    s->slot[i] = h;
    s->n++;
    return 0;
}

int sched_idset_has(const sched_idset *s, uint64_t h)
{
    return s->cap && s->slot[find(s->slot, s->cap, h)] == h;
}

void sched_idset_release(sched_idset *s)
{
    free(s->slot);
    memset(s, 0, sizeof *s);
}

struct sched_idmap {
    struct idmap_ent {
        uint64_t h; /* 0: empty */
        char *id;
        long line;
    } *e;
    size_t cap, n;
};

/* map_find returns the entry of id (hash h), or the empty one where it
 * would go */
static struct idmap_ent *map_find(const sched_idmap *m, uint64_t h, const char *id)
{
    size_t i = slot_of(h, m->cap);
    while (m->e[i].h && (m->e[i].h != h || strcmp(m->e[i].id, id)))
        i = (i + 1) & (m->cap - 1);
    return &m->e[i];
}

long sched_idmap_put(sched_idmap **mp, const char *id, long line)
{
    if (!*mp) *mp = hr_calloc(1, sizeof **mp);
    sched_idmap *m = *mp;
    if (4 * (m->n + 1) > 3 * m->cap) {
        sched_idmap grown = {hr_calloc(m->cap ? m->cap * 2 : 64, sizeof *m->e),
                             m->cap ? m->cap * 2 : 64, m->n};
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].h) *map_find(&grown, m->e[i].h, m->e[i].id) = m->e[i];
        free(m->e);
        *m = grown;
    }
    uint64_t h = sched_id_hash(id);
    struct idmap_ent *e = map_find(m, h, id);
    if (e->h) return e->line;
    *e = (struct idmap_ent){h, hr_strdup(id), line};
    m->n++;
    return -1;
}

void sched_idmap_free(sched_idmap *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].id);
    free(m->e);
    free(m);
}
