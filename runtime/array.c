/* Dense row-major host arrays. */
#include "mfx/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int64_t mfx_array_numel(const mfx_array *a) {
  int64_t n = 1;
  for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
  return n;
}

static mfx_status array_check_shape(mfx_dtype t, int ndim, const int64_t *shape,
                                        size_t *bytes) {
  if ((int)t < 0 || t >= MFX_DTYPE_COUNT) {
    return mfx_fail(MFX_ERR_INVALID, "array: dtype %d is not one of the %d known types",
                    (int)t, MFX_DTYPE_COUNT);
  }
  if (ndim < 0 || ndim > MFX_MAX_DIMS) {
    return mfx_fail(MFX_ERR_INVALID, "array: ndim=%d, expected 0..%d", ndim, MFX_MAX_DIMS);
  }
  if (ndim > 0 && shape == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "array: ndim=%d but shape is NULL", ndim);
  }
  size_t total = mfx_dtype_size(t);
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      return mfx_fail(MFX_ERR_INVALID, "array: shape[%d]=%lld must not be negative", i,
                      (long long)shape[i]);
    }
    if (shape[i] != 0 && total > SIZE_MAX / (size_t)shape[i]) {
      return mfx_fail(MFX_ERR_INVALID, "array: shape dimension %d overflows the size", i);
    }
    total *= (size_t)shape[i];
  }
  size_t cap = mfx_array_max_bytes();
  if (total > cap) {
    char shape_text[200];
    size_t used = 0;
    shape_text[0] = '\0';
    for (int i = 0; i < ndim && used < sizeof shape_text; i++)
      used += (size_t)snprintf(shape_text + used, sizeof shape_text - used, "%s%lld",
                               i ? ", " : "", (long long)shape[i]);
    return mfx_fail(MFX_ERR_NOMEM, "array %s [%s]: %zu bytes (%.1f GiB), more than the cap of "
                    "%zu bytes (%.1f GiB, this machine's memory) for one allocation",
                    mfx_dtype_name(t), shape_text, total, (double)total / 1073741824.0, cap,
                    (double)cap / 1073741824.0);
  }
  *bytes = total;
  return MFX_OK;
}

/* The machine's physical memory: no single array may need more. */
size_t mfx_array_max_bytes(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return (size_t)1 << 40;
  if ((unsigned long)pages > SIZE_MAX / (unsigned long)page) return SIZE_MAX;
  return (size_t)pages * (size_t)page;
}

mfx_status mfx_array_create(mfx_array *a, mfx_dtype t, int ndim, const int64_t *shape) {
  size_t bytes = 0;
  if (a == NULL) return mfx_fail(MFX_ERR_INVALID, "array: output pointer is NULL");
  memset(a, 0, sizeof *a);
  mfx_status st = array_check_shape(t, ndim, shape, &bytes);
  if (st != MFX_OK) return st;
  /* At least one byte so that an empty array still owns a distinct pointer. */
  void *data = calloc(bytes > 0 ? bytes : 1, 1);
  if (data == NULL) {
    return mfx_fail(MFX_ERR_NOMEM, "array: out of memory allocating %zu bytes", bytes);
  }
  a->dtype = t;
  a->ndim = ndim;
  for (int i = 0; i < ndim; i++) a->shape[i] = shape[i];
  a->data = data;
  return MFX_OK;
}

void mfx_array_free(mfx_array *a) {
  if (a == NULL) return;
  free(a->data);
  a->data = NULL;
}
