/* fuzz_config.c: the config parser (hr_config_parse: quotes, escapes,
 * comments) on arbitrary text, then the lookups every module makes. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    hr_err err = {0};
    hr_config *c = hr_config_parse(s, "fuzz.conf", &err);
    free(s);
    if (!c) return 0;
    size_t sum = strlen(hr_config_get(c, "namespace", ""));
    int64_t v;
    hr_config_get_i64(c, "workers", 1, &v, &err);
    int pos = -1;
    const hr_conf_line *l;
    while ((l = hr_config_next(c, "account", &pos)) != NULL)
        for (int i = 0; i < l->argc; i++)
            sum += strlen(l->argv[i]);
    for (int i = 0; i < c->nlines; i++)
        sum += strlen(c->lines[i].key);
    hr_config_free(c);
    return sum == (size_t)-1;
}
