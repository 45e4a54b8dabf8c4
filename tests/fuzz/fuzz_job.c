/* fuzz_job.c: the job decoder must reject any bytes cleanly, and whatever
 * it accepts must re-encode and decode to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "queue.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    hr_err err = {0};
    queue_job *j = queue_job_decode(data, size, &err);
    if (!j) return 0;
    hr_buf a, b;
    hr_buf_init(&a);
    hr_buf_init(&b);
    queue_job_encode(j, &a);
    queue_job *k = queue_job_decode(a.data, a.len, &err);
    if (!k) abort();
    queue_job_encode(k, &b);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0) abort();
    char *js = queue_job_to_json(k);
    free(js);
    hr_buf_release(&a);
    hr_buf_release(&b);
    queue_job_free(j);
    queue_job_free(k);
    return 0;
}
