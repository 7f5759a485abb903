/* Comparing a kernel's output with the reference: integers exactly (or
 * within an absolute slack, for GPU results), f32 within a relative
 * tolerance. Independent of the compiler (library mfx_reference). */
#include <math.h>
#include <string.h>

#include "ops_internal.h"

static double cmp_array_value(const mfx_array *a, int64_t i) {
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

static int cmp_array_same_layout(const mfx_array *got, const mfx_array *want) {
  if (got->dtype != want->dtype || got->ndim != want->ndim) return 0;
  for (int i = 0; i < got->ndim; i++)
    if (got->shape[i] != want->shape[i]) return 0;
  return got->data != NULL && want->data != NULL;
}

/* Element i of an integer array, widened: signed types to int64 in *s,
 * unsigned ones (and bool) to uint64 in *u. Returns 1 for signed. */
static int cmp_array_integer(const mfx_array *a, int64_t i, int64_t *s, uint64_t *u) {
  switch (a->dtype) {
  case MFX_I8: *s = ((const int8_t *)a->data)[i]; return 1;
  case MFX_I16: *s = ((const int16_t *)a->data)[i]; return 1;
  case MFX_I32: *s = ((const int32_t *)a->data)[i]; return 1;
  case MFX_I64: *s = ((const int64_t *)a->data)[i]; return 1;
  case MFX_BOOL: case MFX_U8: *u = ((const uint8_t *)a->data)[i]; return 0;
  case MFX_U32: *u = ((const uint32_t *)a->data)[i]; return 0;
  case MFX_U64: *u = ((const uint64_t *)a->data)[i]; return 0;
  case MFX_F32: case MFX_DTYPE_COUNT: break;
  }
  *u = 0;
  return 0;
}

/* |got[i] - want[i]| exactly, as an unsigned 64-bit number (modular
 * subtraction of the larger minus the smaller never wraps). */
static uint64_t cmp_integer_distance(const mfx_array *got, const mfx_array *want, int64_t i) {
  int64_t gs = 0, ws = 0;
  uint64_t gu = 0, wu = 0;
  if (cmp_array_integer(got, i, &gs, &gu)) {
    cmp_array_integer(want, i, &ws, &wu);
    return gs >= ws ? (uint64_t)gs - (uint64_t)ws : (uint64_t)ws - (uint64_t)gs;
  }
  cmp_array_integer(want, i, &ws, &wu);
  return gu >= wu ? gu - wu : wu - gu;
}

/* Integers: each within int_tol (0: exact, compared as bytes so that
 * 64-bit values lose nothing). The relative error is the largest distance
 * over max|ref| when every element is within int_tol, else infinite. */
static mfx_compare cmp_compare_integers(const mfx_array *got, const mfx_array *want,
                                        int64_t int_tol) {
  mfx_compare c = {0.0, 0.0, -1, 1, -1, 0.0, 0.0};
  size_t size = mfx_dtype_size(got->dtype);
  int64_t n = mfx_array_numel(got);
  const unsigned char *g = got->data, *w = want->data;
  uint64_t worst = 0;
  double max_ref = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (fabs(cmp_array_value(want, i)) > max_ref) max_ref = fabs(cmp_array_value(want, i));
    if (memcmp(g + (size_t)i * size, w + (size_t)i * size, size) == 0) continue;
    if (c.first_index < 0)
      c.first_index = i, c.first_got = cmp_array_value(got, i), c.first_want = cmp_array_value(want, i);
    uint64_t distance = cmp_integer_distance(got, want, i);
    int within = int_tol > 0 && distance <= (uint64_t)int_tol;
    /* The worst element: the largest distance, an element out of tolerance first. */
    if (c.worst_index < 0 || (c.ok && !within) || ((c.ok || !within) && distance > worst)) {
      worst = distance;
      c.worst_index = i;
    }
    if (!within) c.ok = 0;
  }
  c.max_abs_err = (double)worst;
  if (!c.ok) c.max_rel_err = INFINITY;
  else if (worst > 0) c.max_rel_err = max_ref > 0.0 ? (double)worst / max_ref : INFINITY;
  return c;
}

/* Equal as results: the same number, both NaN, or the same infinity. */
static int cmp_same_float(double g, double w) { return g == w || (isnan(g) && isnan(w)); }

/* Floats: an element equal to the reference (NaN to NaN, an infinity to the
 * same infinity) is exact whatever else the output holds; a difference
 * involving NaN or an infinity is never within tolerance; the rest are
 * within tol * max |ref| over the finite reference values. */
static mfx_compare cmp_compare_float(const mfx_array *got, const mfx_array *want,
                                     double tol) {
  mfx_compare c = {0.0, 0.0, -1, 1, -1, 0.0, 0.0};
  double max_ref = 0.0;
  int non_finite = 0;
  int64_t n = mfx_array_numel(got);
  for (int64_t i = 0; i < n; i++) {
    double g = cmp_array_value(got, i), w = cmp_array_value(want, i);
    if (isfinite(w) && fabs(w) > max_ref) max_ref = fabs(w);
    if (cmp_same_float(g, w)) continue;
    if (c.first_index < 0) c.first_index = i, c.first_got = g, c.first_want = w;
    double err = isfinite(g) && isfinite(w) ? fabs(g - w) : INFINITY;
    non_finite |= !isfinite(err);
    if (err > c.max_abs_err || c.worst_index < 0) {
      c.max_abs_err = err;
      c.worst_index = i;
    }
  }
  if (c.max_abs_err == 0.0) c.max_rel_err = 0.0;
  else c.max_rel_err = max_ref > 0.0 && !non_finite ? c.max_abs_err / max_ref : INFINITY;
  c.ok = !non_finite && c.max_rel_err <= tol;
  return c;
}

mfx_compare mfx_compare_arrays_int(const mfx_array *got, const mfx_array *want, double tol,
                                   int64_t int_tol) {
  mfx_compare bad = {INFINITY, INFINITY, -1, 0, -1, 0.0, 0.0};
  if (got == NULL || want == NULL || !cmp_array_same_layout(got, want) || int_tol < 0)
    return bad;
  if (mfx_dtype_is_float(got->dtype)) return cmp_compare_float(got, want, tol);
  return cmp_compare_integers(got, want, int_tol);
}

mfx_compare mfx_compare_arrays(const mfx_array *got, const mfx_array *want, double tol) {
  return mfx_compare_arrays_int(got, want, tol, 0);
}
