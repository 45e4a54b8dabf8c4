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

#endif
