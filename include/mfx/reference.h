/* mfx references without the compiler: each op's plain-C reference, its
 * seeded random inputs and the comparison of results (library
 * mfx_reference: ops/reference.c, random.c, compare.c, reference_table.c).
 * This is what mfx-runner links to check artifacts on a machine without
 * LLVM; mfx/ops.h offers the same through each op's mfx_op. */
#ifndef MFX_REFERENCE_H
#define MFX_REFERENCE_H

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Outputs are allocated; dims in the op's dim order. */
typedef void (*mfx_reference_fn)(const int64_t *dims, const mfx_array *inputs,
                                 mfx_array *outputs);
/* Fill input i with valid random data from the generator state rng. */
typedef void (*mfx_random_input_fn)(int i, const int64_t *dims, mfx_array *a, uint64_t *rng);

typedef struct {
  const char *op; /* the op's name, as in mfx/ops.h */
  int n_dims, n_inputs, n_outputs;
  mfx_reference_fn reference;
  mfx_random_input_fn random_input;
  int64_t int_tolerance; /* as the mfx_op's: integer slack on every target */
} mfx_reference_op;

int mfx_reference_count(void);
const mfx_reference_op *mfx_reference_at(int i);
const mfx_reference_op *mfx_reference_find(const char *op); /* NULL if unknown */

/* The inputs `mfx run --seed seed` uses: inputs[i] allocated, filled by
 * random_input in order from one generator seeded by seed. */
void mfx_random_inputs(mfx_random_input_fn random_input, int n_inputs, const int64_t *dims,
                       uint64_t seed, mfx_array *inputs);


#ifdef __cplusplus
}
#endif
#endif
