/* tdata.h: reading the platform test vectors: escapes in data files and
 * recorded HTTP answers. */
#ifndef HERALD_TEST_TDATA_H
#define HERALD_TEST_TDATA_H

#include <stddef.h>

/* td_unescape decodes \n \t \r \\ \u{HEX} and \{N*TEXT} (TEXT repeated N
 * times) into a new string. */
char *td_unescape(const char *s);
/* td_path returns a new path under tests/platforms/data. */
char *td_path(const char *rel);
/* td_each_file calls fn(path, name) for every file in data/<rel> whose name
 * ends with suffix, naming the file when fn adds failed checks; returns how
 * many it ran (-1 when the folder cannot be read). */
int td_each_file(const char *rel, const char *suffix, void (*fn)(const char *path, const char *name));

#endif
