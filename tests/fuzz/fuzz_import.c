/* fuzz_import.c: every CMS reader on arbitrary bytes. The first byte picks
 * the format (so each reader is reached even where detection would not pick
 * it); the rest is the file. Items are walked so ASan sees every field. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "scheduler.h"

static int walk(const sched_item *it, void *priv, hr_err *err)
{
    (void)err;
    size_t *sum = priv;
    const char *fields[] = {it->id,    it->title,  it->link,   it->html, it->text, it->excerpt,
                            it->image, it->author, it->status, it->type, it->error};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i]) *sum += strlen(fields[i]);
    for (int i = 0; i < it->ntags; i++)
        *sum += strlen(it->tags[i]);
    for (int i = 0; i < it->nplatforms; i++)
        *sum += strlen(it->platforms[i]);
    for (int i = 0; i < it->nvars; i++)
        *sum += strlen(it->vars[i].key) + strlen(it->vars[i].value);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    sched_format f = (sched_format)(data[0] % 5); /* 0 = detect */
    size_t sum = 0;
    hr_err err = {0};
    sched_read_mem(data + 1, size - 1, "fuzz", f, walk, &sum, &err);
    if (size < 4096) {
        char *s = malloc(size);
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        char *t = sched_html_to_text(s);
        free(t);
        free(s);
    }
    return 0;
}
