/* The .npy reader (runtime/npy.c): any file gives an array or an error; a
 * loaded array is read whole (its data must be as large as its shape). */
#include "fuzz_input.h" /* first: it defines _GNU_SOURCE */

#include <stdlib.h>
#include <string.h>

#include "mfx/runtime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  if (fuzz_input_file(data, size, path, sizeof path) != 0) return 0;
  mfx_array arr;
  memset(&arr, 0, sizeof arr);
  if (mfx_npy_load(path, &arr) != MFX_OK) return 0;
  size_t bytes = (size_t)mfx_array_numel(&arr) * mfx_dtype_size(arr.dtype);
  volatile unsigned char sum = 0;
  for (size_t i = 0; i < bytes; i++) sum ^= ((const unsigned char *)arr.data)[i];
  (void)sum;
  mfx_array_free(&arr);
  return 0;
}
