/* fuzz_job.c: the job decoders must reject any bytes cleanly, and whatever
 * they accept must re-encode and decode to the same bytes. An input that
 * starts with 8 base62 characters is a value of the jobs hash, as the
 * worker reads it (queue_job_decode_stored: the id's time prefix, then the
 * blob); any other is a bare blob (queue_job_decode). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "queue.h"

static const char ukh[] = "Fuzz0ukh0000"; /* the jobs hash's field */

static queue_job *decode(int stored, const void *p, size_t n, hr_err *err)
{
    return stored ? queue_job_decode_stored(ukh, p, n, err) : queue_job_decode(p, n, err);
}

static void encode(int stored, const queue_job *j, hr_buf *out)
{
    if (stored)
        queue_job_encode_stored(j, out);
    else
        queue_job_encode(j, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int stored = size >= 8;
    for (size_t i = 0; stored && i < 8; i++) {
        uint8_t c = data[i];
        stored = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }
    hr_err err = {0};
    queue_job *j = decode(stored, data, size, &err);
    if (!j) return 0;
    hr_buf a, b;
    hr_buf_init(&a);
    hr_buf_init(&b);
    encode(stored, j, &a);
    queue_job *k = decode(stored, a.data, a.len, &err);
    if (!k) abort();
    encode(stored, k, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
    if (strcmp(j->id, k->id) != 0) abort();
    char *js = queue_job_to_json(k);
    free(js);
    hr_buf_release(&a);
    hr_buf_release(&b);
    queue_job_free(j);
    queue_job_free(k);
    return 0;
}
