/* The references and random inputs of every op, by name, without the ops'
 * schedules: what links into programs that have no compiler (mfx-runner).
 * Keep it in step with registry.c; tests/test_artifact.c checks that both
 * tables hold the same ops with the same functions. */
#include <string.h>

#include "mfx/reference.h"
#include "ops_internal.h"

static const mfx_reference_op mfx_reference_table[] = {
  {"linear", 3, 2, 1, mfx_ref_linear, mfx_random_linear},
  {"shift_linear", 3, 3, 1, mfx_ref_shift_linear, mfx_random_shift_linear},
  {"matadd", 5, 2, 1, mfx_ref_matadd, mfx_random_matadd},
  {"hamming", 3, 2, 1, mfx_ref_hamming, mfx_random_hamming},
  {"binary_attention", 5, 2, 1, mfx_ref_binary_attention, mfx_random_binary_attention},
};

#define MFX_REFERENCE_TABLE_SIZE \
  ((int)(sizeof mfx_reference_table / sizeof mfx_reference_table[0]))

int mfx_reference_count(void) { return MFX_REFERENCE_TABLE_SIZE; }

const mfx_reference_op *mfx_reference_at(int i) {
  return i >= 0 && i < MFX_REFERENCE_TABLE_SIZE ? &mfx_reference_table[i] : NULL;
}

const mfx_reference_op *mfx_reference_find(const char *op) {
  if (op == NULL) return NULL;
  for (int i = 0; i < MFX_REFERENCE_TABLE_SIZE; i++)
    if (strcmp(mfx_reference_table[i].op, op) == 0) return &mfx_reference_table[i];
  return NULL;
}
