/* The artifact decoder (runtime/artifact.c): magic, size, checksum, section
 * table and every kernel field. Each input is decoded as it is, and again
 * with its size and checksum fields made right, so that mutations reach the
 * sections behind the checksum. A decoded artifact is encoded again and
 * must decode to as many kernels. Kernels are never loaded or run (their
 * code is the input's bytes). */
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SIZE_OFFSET 16
#define CHECKSUM_OFFSET 24
#define HEADER_BYTES 64

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* FNV-1a 64 with the checksum field read as zeros (docs/artifact.md). */
static uint64_t checksum(const unsigned char *d, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) {
    unsigned char b = i >= CHECKSUM_OFFSET && i < CHECKSUM_OFFSET + 8 ? 0 : d[i];
    h = (h ^ b) * 0x100000001b3ull;
  }
  return h;
}

static void decode_and_reencode(const void *image, size_t size) {
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  if (mfx_artifact_decode(image, size, "fuzz.mfxa", &kernels, &n) != MFX_OK) return;
  for (int i = 0; i < n; i++)
    if (mfx_artifact_kernel_validate(&kernels[i], "fuzz.mfxa") != MFX_OK) abort();
  void *again = NULL;
  size_t again_size = 0;
  if (mfx_artifact_encode(kernels, n, &again, &again_size) == MFX_OK) {
    mfx_artifact_kernel *back = NULL;
    int n_back = 0;
    if (mfx_artifact_decode(again, again_size, "again.mfxa", &back, &n_back) != MFX_OK ||
        n_back != n)
      abort(); /* what decoded once must survive a round trip */
    free(back);
    free(again);
  }
  free(kernels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decode_and_reencode(data, size);
  if (size < HEADER_BYTES) return 0;
  unsigned char *fixed = malloc(size);
  if (!fixed) return 0;
  memcpy(fixed, data, size);
  put_u64(fixed + SIZE_OFFSET, size);
  put_u64(fixed + CHECKSUM_OFFSET, checksum(fixed, size));
  decode_and_reencode(fixed, size);
  free(fixed);
  return 0;
}
