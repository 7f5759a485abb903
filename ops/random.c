/* Random fills for op inputs, from the xorshift64* generator: the
 * generator, the fills, and each op's random inputs. Independent of the
 * compiler (library mfx_reference). */
#include <math.h>

#include "mfx/reference.h"
#include "ops_internal.h"

uint64_t mfx_rng_next(uint64_t *state) {
  uint64_t x = *state;
  if (x == 0) x = 0x9E3779B97F4A7C15ull; /* xorshift must not start at 0 */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

void mfx_fill_uniform_f32(mfx_array *a, uint64_t *rng, float lo, float hi) {
  float *p = a->data;
  int64_t n = mfx_array_numel(a);
  for (int64_t i = 0; i < n; i++) {
    /* 24 random bits: a float in [0, 1) with every value exact. */
    float u = (float)(mfx_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
    p[i] = lo + (hi - lo) * u;
  }
}

static void rnd_store_int(mfx_array *a, int64_t i, int64_t v) {
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
    rnd_store_int(a, i, (int64_t)((uint64_t)lo + off));
  }
}

void mfx_random_inputs(mfx_random_input_fn random_input, int n_inputs, const int64_t *dims,
                       uint64_t seed, mfx_array *inputs) {
  uint64_t state = seed ^ 0x9E3779B97F4A7C15ull; /* seed 0 becomes a valid state */
  for (int i = 0; i < n_inputs; i++) random_input(i, dims, &inputs[i], &state);
}

/* ---- each op's random inputs (valid codes, shifts and signs) ------------------------ */

void mfx_random_linear(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  mfx_fill_uniform_f32(a, rng, -1.0f, 1.0f);
}

/* linear_gelu: the inputs of linear. */
void mfx_random_linear_gelu(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  mfx_random_linear(i, dims, a, rng);
}

void mfx_random_shift_linear(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)dims;
  if (i == 0) mfx_fill_uniform_int(a, rng, -(1 << 20), 1 << 20); /* Q16.16 in [-16, 16] */
  else if (i == 1) mfx_fill_uniform_int(a, rng, 0, 15);          /* shifts */
  else mfx_fill_uniform_int(a, rng, -1, 1);                      /* signs */
}

/* shift_linear16: X over its whole valid range -8192..8191, shifts, signs. */
void mfx_random_shift_linear16(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  if (i == 0) mfx_fill_uniform_int(a, rng, -8192, 8191);
  else mfx_random_shift_linear(i, dims, a, rng);
}

/* shift_linear_dequantize: the inputs of shift_linear. */
void mfx_random_shift_linear_dequantize(int i, const int64_t *dims, mfx_array *a,
                                        uint64_t *rng) {
  mfx_random_shift_linear(i, dims, a, rng);
}

/* X f32 in [-2, 2) (a few sums reach past GELU's bend), then S and G. */
void mfx_random_shift_linear_q16_gelu(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  if (i == 0) mfx_fill_uniform_f32(a, rng, -2.0f, 2.0f);
  else mfx_random_shift_linear(i, dims, a, rng);
}

void mfx_random_matadd(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)dims;
  if (i == 0) mfx_fill_uniform_int(a, rng, 0, 1);
  else mfx_fill_uniform_f32(a, rng, -1.0f, 1.0f);
}

void mfx_random_hamming(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  mfx_fill_uniform_int(a, rng, 0, UINT32_MAX);
}

/* hamming16: the inputs of hamming. */
void mfx_random_hamming16(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  mfx_random_hamming(i, dims, a, rng);
}

void mfx_random_binary_attention(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)dims;
  if (i == 0) mfx_fill_uniform_int(a, rng, 0, 1);
  else mfx_fill_uniform_f32(a, rng, -1.0f, 1.0f);
}

/* ---- the elementwise ops (GELU, Q16.16) ------------------------------------------------ */

static float rnd_random_unit(uint64_t *rng) { /* [0, 1), 24 random bits */
  return (float)(mfx_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

/* GELU's interesting part, [-6, 6): the bend near 0 and both tails. */
void mfx_random_gelu(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  mfx_fill_uniform_f32(a, rng, -6.0f, 6.0f);
}

/* Mostly ordinary values of [-8, 8); then exact ties of Q16.16 ((2k+1) /
 * 2^17, halfway between two Q16 steps), values at and past saturation
 * (+-32768 = 2^31 / 2^16), and NaN, infinities and signed zeros. */
void mfx_random_q16_quantize(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  static const float special[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e30f, -1e30f,
                                  32768.0f, -32768.0f, 32767.998f, -32767.998f,
                                  32767.99998f, 1.5f / 65536, 2.5f / 65536, -0.5f / 65536};
  (void)i;
  (void)dims;
  float *p = a->data;
  for (int64_t k = 0; k < mfx_array_numel(a); k++) {
    uint64_t kind = mfx_rng_next(rng) % 8;
    float u = rnd_random_unit(rng);
    if (kind < 4) {
      p[k] = -8.0f + 16.0f * u;
    } else if (kind == 4) { /* a tie: odd multiple of 2^-17, |k| < 2^21 */
      int64_t odd = 2 * (int64_t)(mfx_rng_next(rng) % (1u << 21)) - (1 << 21) + 1;
      p[k] = (float)odd * (1.0f / 131072.0f);
    } else if (kind == 5) { /* near saturation, either sign */
      float v = 32760.0f + 16.0f * u;
      p[k] = mfx_rng_next(rng) & 1 ? v : -v;
    } else if (kind == 6) {
      p[k] = special[mfx_rng_next(rng) % (sizeof special / sizeof special[0])];
    } else {
      p[k] = -40000.0f + 80000.0f * u;
    }
  }
}

/* Any int32, from 32 bits of r. */
static int32_t rnd_random_any_int32(uint64_t r) {
  return (int32_t)((int64_t)(r % 4294967296ull) - 2147483648LL);
}

/* Q16.16 values: small ones, any int32, and the extremes. */
void mfx_random_q16_dequantize(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  int32_t *p = a->data;
  for (int64_t k = 0; k < mfx_array_numel(a); k++) {
    uint64_t kind = mfx_rng_next(rng) % 4, r = mfx_rng_next(rng);
    if (kind < 2) p[k] = (int32_t)(int64_t)(r % (1u << 21)) - (1 << 20); /* [-16, 16) */
    else if (kind == 2) p[k] = rnd_random_any_int32(r);
    else p[k] = r & 1 ? INT32_MAX : INT32_MIN;
  }
}

/* GELU's interesting part in Q16.16, [-6, 6), with some of any magnitude. */
void mfx_random_q16_gelu(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  int32_t *p = a->data;
  for (int64_t k = 0; k < mfx_array_numel(a); k++) {
    uint64_t kind = mfx_rng_next(rng) % 8, r = mfx_rng_next(rng);
    if (kind < 7) p[k] = (int32_t)(int64_t)(r % (12u << 16)) - (6 << 16);
    else p[k] = rnd_random_any_int32(r);
  }
}

/* ---- the MoE layer's dispatch and combine ------------------------------------------------ */

/* Row indices of [-1, rows): -1 (padding, or a null expert) one time in
 * four, so that small shapes have some; the others uniform. */
static void rnd_fill_row_indices(mfx_array *a, uint64_t *rng, int64_t rows) {
  int32_t *p = a->data;
  for (int64_t k = 0; k < mfx_array_numel(a); k++) {
    uint64_t kind = mfx_rng_next(rng) % 4, r = mfx_rng_next(rng);
    p[k] = kind == 0 ? -1 : (int32_t)(r % (uint64_t)rows);
  }
}

/* X in [-1, 1); IDX in [-1, T). */
void mfx_random_gather_rows(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  if (i == 0) mfx_fill_uniform_f32(a, rng, -1.0f, 1.0f);
  else rnd_fill_row_indices(a, rng, dims[0]);
}

/* YALL in [-1, 1); ROWS in [-1, R); GATES in [0, 1). */
void mfx_random_combine_rows(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  if (i == 0) mfx_fill_uniform_f32(a, rng, -1.0f, 1.0f);
  else if (i == 1) rnd_fill_row_indices(a, rng, dims[0]);
  else mfx_fill_uniform_f32(a, rng, 0.0f, 1.0f);
}

/* shift_linear16_gelu: X f32 in [-9, 9): quantizing saturates past
 * [-8, 8) (the ends of Q3.10), then S and G. */
void mfx_random_shift_linear16_gelu(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  if (i == 0) mfx_fill_uniform_f32(a, rng, -9.0f, 9.0f);
  else mfx_random_shift_linear(i, dims, a, rng);
}

/* shift_linear16_dequantize: the inputs of shift_linear16. */
void mfx_random_shift_linear16_dequantize(int i, const int64_t *dims, mfx_array *a,
                                          uint64_t *rng) {
  mfx_random_shift_linear16(i, dims, a, rng);
}
