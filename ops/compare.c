/* Comparing a kernel's output with the reference: integers exactly, f32
 * within a relative tolerance. Independent of the compiler (library
 * mfx_reference). */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

static double mfx_array_value(const mfx_array *a, int64_t i) {
  switch (a->dtype) {
  case MFX_BOOL: case MFX_U8: return ((const uint8_t *)a->data)[i];
  case MFX_I8: return ((const int8_t *)a->data)[i];
  case MFX_I16: return ((const int16_t *)a->data)[i];
  case MFX_I32: return ((const int32_t *)a->data)[i];
  case MFX_I64: return (double)((const int64_t *)a->data)[i];
  case MFX_U32: return ((const uint32_t *)a->data)[i];
  case MFX_U64: return (double)((const uint64_t *)a->data)[i];
  case MFX_F32: return ((const float *)a->data)[i];
  case MFX_DTYPE_COUNT: break;
  }
  return NAN;
}

static int mfx_array_same_layout(const mfx_array *got, const mfx_array *want) {
  if (got->dtype != want->dtype || got->ndim != want->ndim) return 0;
  for (int i = 0; i < got->ndim; i++)
    if (got->shape[i] != want->shape[i]) return 0;
  return got->data != NULL && want->data != NULL;
}

/* Integers: exact, compared as bytes so that 64-bit values lose nothing. */
static mfx_compare mfx_compare_exact(const mfx_array *got, const mfx_array *want) {
  mfx_compare c = {0.0, 0.0, -1, 1};
  size_t size = mfx_dtype_size(got->dtype);
  int64_t n = mfx_array_numel(got);
  const unsigned char *g = got->data, *w = want->data;
  for (int64_t i = 0; i < n; i++) {
    if (memcmp(g + (size_t)i * size, w + (size_t)i * size, size) == 0) continue;
    double err = fabs(mfx_array_value(got, i) - mfx_array_value(want, i));
    if (c.ok || err > c.max_abs_err) {
      c.max_abs_err = err;
      c.worst_index = i;
    }
    c.ok = 0;
  }
  c.max_rel_err = c.ok ? 0.0 : INFINITY;
  return c;
}

static mfx_compare mfx_compare_float(const mfx_array *got, const mfx_array *want,
                                     double tol) {
  mfx_compare c = {0.0, 0.0, -1, 1};
  double max_ref = 0.0;
  int64_t n = mfx_array_numel(got);
  for (int64_t i = 0; i < n; i++) {
    double g = mfx_array_value(got, i), w = mfx_array_value(want, i);
    double err = fabs(g - w);
    if (isnan(err)) {
      c.max_abs_err = NAN;
      c.worst_index = i;
      c.ok = 0;
      break;
    }
    if (err > c.max_abs_err) {
      c.max_abs_err = err;
      c.worst_index = i;
    }
    if (fabs(w) > max_ref) max_ref = fabs(w);
  }
  if (isnan(c.max_abs_err)) {
    c.max_rel_err = NAN;
    return c;
  }
  if (c.max_abs_err == 0.0) c.max_rel_err = 0.0;
  else c.max_rel_err = max_ref > 0.0 ? c.max_abs_err / max_ref : INFINITY;
  c.ok = c.max_rel_err <= tol;
  return c;
}

mfx_compare mfx_compare_arrays(const mfx_array *got, const mfx_array *want, double tol) {
  mfx_compare bad = {INFINITY, INFINITY, -1, 0};
  if (got == NULL || want == NULL || !mfx_array_same_layout(got, want)) return bad;
  if (mfx_dtype_is_float(got->dtype)) return mfx_compare_float(got, want, tol);
  return mfx_compare_exact(got, want);
}
