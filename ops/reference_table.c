/* The references and random inputs of every op, by name, without the ops'
 * schedules: what links into programs that have no compiler (mfx-runner).
 * Keep it in step with registry.c; tests/test_artifact.c checks that both
 * tables hold the same ops with the same functions. */
#include <string.h>

#include "mfx/reference.h"
#include "ops_internal.h"

static const mfx_reference_op mfx_reference_table[] = {
  {"linear", 3, 2, 1, mfx_ref_linear, mfx_random_linear, 0},
  {"shift_linear", 3, 3, 1, mfx_ref_shift_linear, mfx_random_shift_linear, 0},
  {"matadd", 5, 2, 1, mfx_ref_matadd, mfx_random_matadd, 0},
  {"hamming", 3, 2, 1, mfx_ref_hamming, mfx_random_hamming, 0},
  {"binary_attention", 5, 2, 1, mfx_ref_binary_attention, mfx_random_binary_attention, 0},
  {"gelu", 2, 1, 1, mfx_ref_gelu, mfx_random_gelu, 0},
  {"q16_quantize", 2, 1, 1, mfx_ref_q16_quantize, mfx_random_q16_quantize, 0},
  {"q16_dequantize", 2, 1, 1, mfx_ref_q16_dequantize, mfx_random_q16_dequantize, 0},
  {"q16_gelu", 2, 1, 1, mfx_ref_q16_gelu, mfx_random_q16_gelu, 1}, /* see elementwise.c */
  {"gather_rows", 3, 2, 1, mfx_ref_gather_rows, mfx_random_gather_rows, 0},
  {"combine_rows", 4, 3, 1, mfx_ref_combine_rows, mfx_random_combine_rows, 0},
  {"linear_gelu", 3, 2, 1, mfx_ref_linear_gelu, mfx_random_linear, 0},
  {"shift_linear_q16_gelu", 3, 3, 1, mfx_ref_shift_linear_q16_gelu,
   mfx_random_shift_linear_q16_gelu, 1}, /* the GELU of q16_gelu */
  {"shift_linear_dequantize", 3, 3, 1, mfx_ref_shift_linear_dequantize,
   mfx_random_shift_linear, 0},
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
