/* The arithmetic the layer and its reference share: GELU, the Q16.16
 * fixed-point format of the shift experts, DeepShift's conversion of float
 * weights to shifts and signs, and the token-count buckets. */
#include <math.h>

#include "moe_internal.h"

#define MOE_SHIFT_MAX 15

float mfx_gelu(float x) { return moe_gelu(x); }

int32_t mfx_q16_from_float(float x) { return moe_q16_from_float(x); }

float mfx_q16_to_float(int32_t q) { return moe_q16_to_float(q); }

/* One weight; returns 0 for a non-finite one. */
static int moe_deepshift_one(float w, int8_t *shift, int8_t *sign) {
  *shift = 0;
  *sign = 0;
  if (!isfinite(w)) return 0;
  if (w == 0.0f) return 1;
  double p = round(log2(fabs((double)w)));
  double s = p > 0.0 ? 0.0 : -p;
  if (s > MOE_SHIFT_MAX) return 1; /* below 2^-15.5: dropped */
  *shift = (int8_t)s;
  *sign = w > 0.0f ? 1 : -1;
  return 1;
}

mfx_status mfx_deepshift_convert(const float *w, int64_t count, int8_t *shift, int8_t *sign) {
  if (w == NULL || shift == NULL || sign == NULL)
    return mfx_fail(MFX_ERR_INVALID, "deepshift convert: w, shift and sign must not be NULL");
  if (count < 0)
    return mfx_fail(MFX_ERR_INVALID, "deepshift convert: count=%lld must not be negative",
                    (long long)count);
  for (int64_t i = 0; i < count; i++) {
    if (!moe_deepshift_one(w[i], &shift[i], &sign[i]))
      return mfx_fail(MFX_ERR_INVALID,
                      "deepshift convert: weight %lld is %g; expected a finite number",
                      (long long)i, (double)w[i]);
  }
  return MFX_OK;
}

int64_t mfx_moe_bucket(int64_t n) {
  if (n <= 0) return 0;
  if (n <= 128) return (n + 15) / 16 * 16;
  int64_t top = 1;
  while (top * 2 <= n) top *= 2; /* the power of two at or below n */
  int64_t step = top / 8;
  return (n + step - 1) / step * step;
}
