/* fuzz_contacts.c: the contacts CSV loader (sched_contacts_load) on
 * arbitrary bytes, handed over as a file in memory (memfd): every contact
 * it keeps is walked so ASan sees each field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "scheduler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("contacts.csv", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    sched_contact *v;
    int n;
    sched_contact_skips skipped;
    hr_err err = {0};
    if (sched_contacts_load(path, &v, &n, &skipped, &err) != 0) return 0;
    size_t sum = strlen(skipped.file);
    for (int i = 0; i < skipped.kept; i++)
        sum += strlen(skipped.first[i].why);
    for (int i = 0; i < n; i++) {
        sum += strlen(v[i].email);
        if (v[i].first_name) sum += strlen(v[i].first_name);
        if (v[i].last_name) sum += strlen(v[i].last_name);
        for (int j = 0; j < v[i].nvars; j++)
            sum += strlen(v[i].vars[j].key) + strlen(v[i].vars[j].value);
    }
    sched_contacts_free(v, n);
    return sum == (size_t)-1;
}
