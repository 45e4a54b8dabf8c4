/* internal.h: what the scheduler's files share and nobody else sees: the
 * input source every reader takes, one reader entry point per format, and
 * small string helpers. */
#ifndef HERALD_SCHED_INTERNAL_H
#define HERALD_SCHED_INTERNAL_H

#include <stdio.h>

#include "scheduler.h"

/* Where a reader reads from: a file (path) or a buffer (mem, n). */
typedef struct sched_src {
    const char *path;
    const void *mem;
    size_t n;
    const char *name; /* for messages: the path's base name or the given name */
} sched_src;

/* sched_src_open returns a stream on the source (fopen or fmemopen). */
FILE *sched_src_open(const sched_src *s, hr_err *err);

int sched_wxr_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err);
int sched_ghost_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err);
int sched_csv_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err);
int sched_ndjson_read(const sched_src *s, sched_item_cb *cb, void *priv, hr_err *err);

/* A growable vector of owned strings. */
typedef struct sched_strv {
    char **v;
    int n, cap;
} sched_strv;
void sched_strv_push(sched_strv *s, const char *str, size_t len);
void sched_strv_clear(sched_strv *s);
void sched_strv_release(sched_strv *s);

/* sched_split appends the trimmed, non-empty parts of s separated by any of
 * seps to out. */
void sched_split(const char *s, const char *seps, sched_strv *out);

/* sched_parse_wall parses a wall time "YYYY-MM-DD[ HH:MM[:SS[.fff]]]" with
 * no zone; returns 0 or -1. */
int sched_parse_wall(const char *s, int *Y, int *M, int *D, int *sec_of_day);
/* sched_parse_utc parses "YYYY-MM-DD HH:MM:SS" (UTC), or RFC 3339 with a
 * zone. Returns 0 with *ms (0 for WordPress' "0000-00-00 00:00:00"), or -1. */
int sched_parse_utc(const char *s, int64_t *ms);

/* sched_bom_len returns 3 when the n bytes at s start with a UTF-8 byte
 * order mark (Excel and Windows editors write one), else 0. */
size_t sched_bom_len(const char *s, size_t n);

/* sched_utf8_valid returns 1 when s is valid UTF-8. */
int sched_utf8_valid(const char *s);

/* sched_status_norm maps CMS status words to herald's: published -> publish,
 * scheduled -> future; others are lowercased as they are. */
const char *sched_status_norm(const char *s);

/* sched_hash64 is FNV-1a over a string, continuing from h (start with
 * SCHED_HASH_INIT). */
#define SCHED_HASH_INIT 0xcbf29ce484222325ULL
uint64_t sched_hash64(uint64_t h, const char *s);

/* The ids an import met (idset.c). sched_id_hash is an id's 64-bit hash
 * (never 0). A sched_idset keeps hashes (zero it to start):
 * sched_idset_add returns 1 when h was there, else adds it and returns 0.
 * A sched_idmap keeps exact ids with a line: sched_idmap_put returns the
 * line id was put with before, or puts it (creating *m) and returns -1. */
typedef struct sched_idset {
    uint64_t *slot;
    size_t cap, n;
} sched_idset;
uint64_t sched_id_hash(const char *id);
int sched_idset_add(sched_idset *s, uint64_t h);
int sched_idset_has(const sched_idset *s, uint64_t h);
void sched_idset_release(sched_idset *s);
typedef struct sched_idmap sched_idmap;
long sched_idmap_put(sched_idmap **m, const char *id, long line);
void sched_idmap_free(sched_idmap *m);

/* A spool: the items an import's first pass read, kept in an unlinked temp
 * file and read back by its second pass (spool.c). sched_spool_put appends
 * a copy of it; sched_spool_read calls cb for every item put, in order
 * (the item lives during the call). Both 0, or -1 with err. */
typedef struct sched_spool sched_spool;
/* sched_tmpfile returns a new temp file in $TMPDIR (else /tmp), already
 * unlinked, or NULL with err naming what it was for. */
FILE *sched_tmpfile(const char *what, hr_err *err);
sched_spool *sched_spool_new(hr_err *err);
int sched_spool_put(sched_spool *s, const sched_item *it, hr_err *err);
int sched_spool_read(sched_spool *s, sched_item_cb *cb, void *priv, hr_err *err);
void sched_spool_free(sched_spool *s);

/* Test seam: when set, called (0-based batch number) before a batch with
 * edited items reads their jobs' times, after its lookup. */
extern void (*sched_test_before_edit_reads)(int batch_no);
/* Test seam: when set, the clock (ms) the import lock's lease is counted
 * on instead of the monotonic one, so a test can make the import see a
 * stall of half a lease or more without waiting one. */
extern int64_t (*sched_test_lock_clock_ms)(void);
/* Test seam: when set, the lease (ms) of the import's lock and of its
 * lanes' holds instead of 60 s, so a test sees a killed import's holds
 * lapse without waiting a minute. */
extern int (*sched_test_lock_lease_ms)(void);

/* sched_contacts_free_one frees one contact's fields (not the struct). */
void sched_contacts_free_one(sched_contact *ct);

#endif
