/* The latency-table reader (runtime/profile.c, mfx_latency_load): any file
 * gives a table or an error, for a device named exactly, by prefix, or not
 * at all (this host's key). */
#include "fuzz_input.h" /* first: it defines _GNU_SOURCE */

#include <stdlib.h>

#include "mfx/moe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char path[64];
  if (fuzz_input_file(data, size, path, sizeof path) != 0) return 0;
  const char *devices[] = {"cpu", "emulate", "cpu: AMD EPYC (2 cores)", NULL};
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
    mfx_latency_table t;
    if (mfx_latency_load(path, devices[i], &t) != MFX_OK) continue;
    if (t.experts < 0 || t.experts > MFX_LATENCY_MAX_EXPERTS) abort();
    for (int e = 0; e < t.experts; e++)
      if (t.expert[e].points < 0 || t.expert[e].points > MFX_LATENCY_MAX_POINTS) abort();
  }
  return 0;
}
