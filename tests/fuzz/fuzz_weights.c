/* The MoE layer's weights reader (moe/weights.c, mfx_moe_load_weights): any
 * file gives the layer its weights or an error, never a crash, hang or a
 * read past the file. The layer: D=2, H=3, experts mult,shift,null, k=2. */
#include "fuzz_input.h" /* first: it defines _GNU_SOURCE */

#include <stdlib.h>
#include <string.h>

#include "mfx/moe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char path[64];
  if (fuzz_input_file(data, size, path, sizeof path) != 0) return 0;
  mfx_moe_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = 2;
  spec.hidden = 3;
  spec.k = 2;
  if (mfx_expert_kinds_parse("mult,shift,null", spec.kinds, MFX_MOE_MAX_EXPERTS,
                             &spec.experts) != MFX_OK)
    abort();
  mfx_moe *moe = NULL;
  if (mfx_moe_create(&spec, &moe) != MFX_OK) abort();
  if (mfx_moe_load_weights(moe, path) == MFX_OK) {
    float x[2] = {0.5f, -0.25f}, y[2];
    if (mfx_moe_reference(moe, x, 1, NULL, y, NULL) != MFX_OK) abort();
  }
  mfx_moe_destroy(moe);
  return 0;
}
