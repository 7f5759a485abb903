/* The references and random inputs of every op, by name, without the ops'
 * schedules: what links into programs that have no compiler (mfx-runner).
 * Made from op_list.h, as the registry is (registry.c). */
#include <string.h>

#include "mfx/reference.h"
#include "ops_internal.h"

static const mfx_reference_op mfx_reference_table[] = {
#define MFX_OP(name, tol, wf, wd, wu)                                                  \
  {#name, mfx_opl_##name##_n_dims, mfx_opl_##name##_n_inputs, mfx_opl_##name##_n_outputs, \
   mfx_ref_##name, mfx_random_##name, tol},
#include "op_list.h"
#undef MFX_OP
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
