/* fuzz.h: what every target in tests/fuzz/ defines. Linked with libFuzzer
 * (HERALD_FUZZ) or with driver.c, which replays a seed corpus and
 * deterministic mutations of it as a regression test. */
#ifndef HERALD_FUZZ_H
#define HERALD_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
