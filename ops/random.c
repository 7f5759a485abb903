/* Random fills for op inputs, from the xorshift64* generator. */
#include "ops_internal.h"

void mfx_fill_uniform_f32(mfx_array *a, uint64_t *rng, float lo, float hi) {
  float *p = a->data;
  int64_t n = mfx_array_numel(a);
  for (int64_t i = 0; i < n; i++) {
    /* 24 random bits: a float in [0, 1) with every value exact. */
    float u = (float)(mfx_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
    p[i] = lo + (hi - lo) * u;
  }
}

static void mfx_store_int(mfx_array *a, int64_t i, int64_t v) {
  switch (a->dtype) {
  case MFX_BOOL: case MFX_U8: ((uint8_t *)a->data)[i] = (uint8_t)v; break;
  case MFX_I8: ((int8_t *)a->data)[i] = (int8_t)v; break;
  case MFX_I16: ((int16_t *)a->data)[i] = (int16_t)v; break;
  case MFX_I32: ((int32_t *)a->data)[i] = (int32_t)v; break;
  case MFX_I64: ((int64_t *)a->data)[i] = v; break;
  case MFX_U32: ((uint32_t *)a->data)[i] = (uint32_t)v; break;
  case MFX_U64: ((uint64_t *)a->data)[i] = (uint64_t)v; break;
  case MFX_F32: ((float *)a->data)[i] = (float)v; break;
  case MFX_DTYPE_COUNT: break;
  }
}

void mfx_fill_uniform_int(mfx_array *a, uint64_t *rng, int64_t lo, int64_t hi) {
  uint64_t span = (uint64_t)hi - (uint64_t)lo + 1; /* 0: the whole 64-bit range */
  int64_t n = mfx_array_numel(a);
  for (int64_t i = 0; i < n; i++) {
    uint64_t r = mfx_rng_next(rng);
    uint64_t off = span == 0 ? r : r % span;
    mfx_store_int(a, i, (int64_t)((uint64_t)lo + off));
  }
}
