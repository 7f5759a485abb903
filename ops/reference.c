/* Plain-C references: the truth every scheduled kernel is compared with.
 * Written naively and independently of the compiler: straight loops over
 * the definitions, double accumulation for floats, defined wrap-around for
 * integers. Shapes come from dims in each op's dim order. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mfx/reference.h"

#include "ops_internal.h"

#define MFX_REF_PI 3.14159265358979323846

/* x >> s with sign fill, without relying on the implementation-defined
 * behaviour of >> on negative values. */
static int32_t ref_sra(int32_t x, int s) {
  return x >= 0 ? (int32_t)(x >> s) : (int32_t)~(~x >> s);
}

/* The int32 with the bits of u (two's complement), without implementation-
 * defined conversions. */
static int32_t ref_wrap32(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)((int64_t)u - 4294967296LL);
}

static int ref_popcount32(uint32_t w) {
  int n = 0;
  for (int b = 0; b < 32; b++) n += (int)((w >> b) & 1u);
  return n;
}

/* linear: Y[m,n] = sum_k X[m,k] W[n,k]; dims M, N, K. */
void mfx_ref_linear(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const float *X = in[0].data, *W = in[1].data;
  float *Y = out[0].data;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)X[m * K + k] * (double)W[n * K + k];
      Y[m * N + n] = (float)acc;
    }
}

/* shift_linear: Y[m,n] = sum_k G[n,k] (X[m,k] >> S[n,k]), wrapping at 32 bits;
 * dims M, N, K. Shift amounts are taken modulo 32 (valid ones are 0..15). */
void mfx_ref_shift_linear(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const int32_t *X = in[0].data;
  const int8_t *S = in[1].data, *G = in[2].data;
  int32_t *Y = out[0].data;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      uint32_t acc = 0;
      for (int64_t k = 0; k < K; k++) {
        uint32_t v = (uint32_t)ref_sra(X[m * K + k], S[n * K + k] & 31);
        if (G[n * K + k] > 0) acc += v;
        else if (G[n * K + k] < 0) acc -= v;
      }
      Y[m * N + n] = ref_wrap32(acc);
    }
}

/* shift_linear16: Y[m,n] = sum_k G[n,k] (X[m,k] >> S[n,k]) with X i16, the
 * exact sum (each term truncated on its own: floor(x / 2^s), sign applied
 * after the shift); dims M, N, K. Shift amounts are taken modulo 16 (valid
 * ones are 0..15); for valid X (-8192..8191) and K < 2^18 the sum fits. */
void mfx_ref_shift_linear16(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const int16_t *X = in[0].data;
  const int8_t *S = in[1].data, *G = in[2].data;
  int32_t *Y = out[0].data;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; k++) {
        int64_t v = ref_sra(X[m * K + k], S[n * K + k] & 15);
        if (G[n * K + k] > 0) acc += v;
        else if (G[n * K + k] < 0) acc -= v;
      }
      Y[m * N + n] = (int32_t)acc;
    }
}

/* matadd: O[b,h,c,d] = sum_n Hc[b,h,n,c] V[b,h,n,d] with 0/1 codes (any
 * non-zero code counts as 1); dims B, H, N, D, C. */
void mfx_ref_matadd(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t B = dims[0], H = dims[1], N = dims[2], D = dims[3], C = dims[4];
  const int8_t *Hc = in[0].data;
  const float *V = in[1].data;
  float *O = out[0].data;
  for (int64_t bh = 0; bh < B * H; bh++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t d = 0; d < D; d++) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; n++)
          if (Hc[(bh * N + n) * C + c] != 0) acc += V[(bh * N + n) * D + d];
        O[(bh * C + c) * D + d] = (float)acc;
      }
}

/* hamming: S[n,m] = 32 W - 2 popcount(Q[n] xor K[m]) over W words; dims N, M, W. */
void mfx_ref_hamming(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t N = dims[0], M = dims[1], W = dims[2];
  const uint32_t *Q = in[0].data, *K = in[1].data;
  int32_t *S = out[0].data;
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      int64_t differing = 0;
      for (int64_t w = 0; w < W; w++) differing += ref_popcount32(Q[n * W + w] ^ K[m * W + w]);
      S[n * M + m] = (int32_t)(32 * W - 2 * differing);
    }
}

/* hamming16: hamming's scores as i16 (exact for W <= 1023, which the op's
 * build requires); dims N, M, W. */
void mfx_ref_hamming16(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t N = dims[0], M = dims[1], W = dims[2];
  const uint32_t *Q = in[0].data, *K = in[1].data;
  int16_t *S = out[0].data;
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      int64_t differing = 0;
      for (int64_t w = 0; w < W; w++) differing += ref_popcount32(Q[n * W + w] ^ K[m * W + w]);
      S[n * M + m] = (int16_t)(32 * W - 2 * differing);
    }
}

/* One (b, h) slice of binary attention: A = Hc^T V, X = V/2 + Hc A / pi,
 * O = X / max(|X| over d, 1e-12). A is C*D doubles, X is D doubles. */
static void ref_attention_slice(int64_t N, int64_t D, int64_t C, const int8_t *Hc,
                                    const float *V, float *O, double *A, double *X) {
  for (int64_t c = 0; c < C; c++)
    for (int64_t d = 0; d < D; d++) {
      A[c * D + d] = 0.0;
      for (int64_t n = 0; n < N; n++)
        if (Hc[n * C + c] != 0) A[c * D + d] += V[n * D + d];
    }
  for (int64_t n = 0; n < N; n++) {
    double sq = 0.0;
    for (int64_t d = 0; d < D; d++) {
      double hs = 0.0;
      for (int64_t c = 0; c < C; c++)
        if (Hc[n * C + c] != 0) hs += A[c * D + d];
      X[d] = 0.5 * V[n * D + d] + hs / MFX_REF_PI;
      sq += X[d] * X[d];
    }
    double norm = fmax(sqrt(sq), 1e-12);
    for (int64_t d = 0; d < D; d++) O[n * D + d] = (float)(X[d] / norm);
  }
}

/* binary_attention: dims B, H, N, D, C. */
void mfx_ref_binary_attention(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t B = dims[0], H = dims[1], N = dims[2], D = dims[3], C = dims[4];
  const int8_t *Hc = in[0].data;
  const float *V = in[1].data;
  float *O = out[0].data;
  /* Double accumulators for one (b, h) slice at a time. The reference
   * cannot report failure: without memory its output is NaN, which never
   * compares equal. */
  double *A = calloc((size_t)(C * D + D), sizeof(double));
  if (A == NULL) {
    for (int64_t i = 0; i < B * H * N * D; i++) O[i] = NAN;
    return;
  }
  for (int64_t bh = 0; bh < B * H; bh++)
    ref_attention_slice(N, D, C, Hc + bh * N * C, V + bh * N * D, O + bh * N * D, A,
                            A + C * D);
  free(A);
}

/* ---- the MoE layer's elementwise steps: GELU and Q16.16 ------------------------------ */

/* GELU in f32, in exactly this order: (0.5 x) (1 + erf(x / sqrt 2)), the
 * constant 1/sqrt(2) rounded to f32 first. Every operation is one f32
 * rounding: no double, no fused multiply-add (nothing here is a product
 * added to something). erf is glibc's erff; the kernels' is a polynomial
 * within 1.5 ulp, so they are checked within the bounds ops/elementwise.c
 * proves (gelu: 2^-22 |x| + 1 ulp; q16_gelu: one unit). */
static float ref_gelu1(float x) {
  float half = 0.5f * x;
  float scaled = x * 0.70710678118654752f;
  float one_plus = 1.0f + erff(scaled);
  return half * one_plus;
}

/* Round to nearest, ties to even, written out: floor, then up when the
 * fraction is over one half, or exactly one half and the floor is odd.
 * In double, where v - floor(v) is exact for |v| < 2^31. */
static double ref_round_even(double v) {
  double f = floor(v), frac = v - f;
  if (frac > 0.5 || (frac == 0.5 && fmod(f, 2.0) != 0.0)) f += 1.0;
  return f;
}

/* Q16.16 of x: x * 2^16 rounded (ties to even), saturated to int32; NaN is
 * 0. x * 2^16 is exact in double for every finite f32 x. */
static int32_t ref_q16(float x) {
  if (isnan(x)) return 0;
  double v = ldexp((double)x, 16);
  if (v >= 2147483648.0) return INT32_MAX;
  if (v <= -2147483648.0) return INT32_MIN;
  double r = ref_round_even(v);
  if (r >= 2147483648.0) return INT32_MAX; /* not reached: f32 has nothing in (2^31-128, 2^31) */
  return (int32_t)r;
}

/* The f32 nearest q * 2^-16: q rounded to f32 once, then scaled exactly. */
static float ref_dq16(int32_t q) { return (float)ldexp((double)q, -16); }

/* The four ops share dims M, N and one [M, N] input and output. */
static int64_t ref_elements(const int64_t *dims) { return dims[0] * dims[1]; }

void mfx_ref_gelu(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  const float *X = in[0].data;
  float *Y = out[0].data;
  for (int64_t i = 0; i < ref_elements(dims); i++) Y[i] = ref_gelu1(X[i]);
}

void mfx_ref_q16_quantize(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  const float *X = in[0].data;
  int32_t *Q = out[0].data;
  for (int64_t i = 0; i < ref_elements(dims); i++) Q[i] = ref_q16(X[i]);
}

void mfx_ref_q16_dequantize(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  const int32_t *Q = in[0].data;
  float *X = out[0].data;
  for (int64_t i = 0; i < ref_elements(dims); i++) X[i] = ref_dq16(Q[i]);
}

void mfx_ref_q16_gelu(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  const int32_t *Q = in[0].data;
  int32_t *R = out[0].data;
  for (int64_t i = 0; i < ref_elements(dims); i++)
    R[i] = ref_q16(ref_gelu1(ref_dq16(Q[i])));
}

/* ---- the MoE layer's dispatch and combine: rows picked by indices ------------------------ */

/* gather_rows: Y[m,d] = 0 <= IDX[m] < T ? X[IDX[m],d] : 0; dims T, M, D. -1
 * marks a padding row, and so does any other index outside [0, T). */
void mfx_ref_gather_rows(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t T = dims[0], M = dims[1], D = dims[2];
  const float *X = in[0].data;
  const int32_t *IDX = in[1].data;
  float *Y = out[0].data;
  for (int64_t m = 0; m < M; m++)
    for (int64_t d = 0; d < D; d++) Y[m * D + d] = IDX[m] >= 0 && IDX[m] < T ? X[IDX[m] * D + d] : 0.0f;
}

/* combine_rows: Y[t,d] = sum over s, in order, of GATES[t,s] YALL[ROWS[t,s],d]
 * where 0 <= ROWS[t,s] < R (-1, or any index outside, marks a null expert);
 * dims R, T, K, D. In f32
 * from 0, each product and each sum rounded once, in this order: the
 * layer's arithmetic, not a more accurate one (a C compiler that contracts
 * the multiply-add into an FMA, where the baseline ISA has one, changes the
 * last bit; within every tolerance). */
void mfx_ref_combine_rows(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t R = dims[0], T = dims[1], K = dims[2], D = dims[3];
  const float *YALL = in[0].data, *GATES = in[2].data;
  const int32_t *ROWS = in[1].data;
  float *Y = out[0].data;
  for (int64_t t = 0; t < T; t++)
    for (int64_t d = 0; d < D; d++) {
      float acc = 0.0f;
      for (int64_t s = 0; s < K; s++) {
        int32_t row = ROWS[t * K + s];
        if (row >= 0 && row < R) acc += GATES[t * K + s] * YALL[row * D + d];
      }
      Y[t * D + d] = acc;
    }
}

/* ---- fused ops: the references of their parts, composed ---------------------------------- */

/* Row m of a 2-D array of `cols` columns as a [1, cols] array (a view). */
static mfx_array ref_row(const mfx_array *a, int64_t m, int64_t cols) {
  mfx_array r = {.dtype = a->dtype, .ndim = 2, .shape = {1, cols}};
  r.data = (char *)a->data + m * cols * (int64_t)mfx_dtype_size(a->dtype);
  return r;
}

/* linear_gelu: Y = gelu(linear(X, W)); dims M, N, K. Row by row, in place. */
void mfx_ref_linear_gelu(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t N = dims[1], K = dims[2];
  for (int64_t m = 0; m < dims[0]; m++) {
    mfx_array x = ref_row(&in[0], m, K), y = ref_row(&out[0], m, N);
    mfx_ref_linear((int64_t[]){1, N, K}, (mfx_array[]){x, in[1]}, &y);
    mfx_ref_gelu((int64_t[]){1, N}, &y, &y);
  }
}

/* shift_linear_q16_gelu: R = q16_gelu(shift_linear(q16_quantize(X), S, G));
 * dims M, N, K. Without memory for one quantized row, R is all INT32_MIN
 * (no kernel computes that for the test inputs). */
void mfx_ref_shift_linear_q16_gelu(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t N = dims[1], K = dims[2];
  mfx_array q = {.dtype = MFX_I32, .ndim = 2, .shape = {1, K}, .data = malloc((size_t)K * 4)};
  for (int64_t m = 0; m < dims[0]; m++) {
    mfx_array x = ref_row(&in[0], m, K), r = ref_row(&out[0], m, N);
    if (q.data == NULL) {
      for (int64_t n = 0; n < N; n++) ((int32_t *)r.data)[n] = INT32_MIN;
      continue;
    }
    mfx_ref_q16_quantize((int64_t[]){1, K}, &x, &q);
    mfx_ref_shift_linear((int64_t[]){1, N, K}, (mfx_array[]){q, in[1], in[2]}, &r);
    mfx_ref_q16_gelu((int64_t[]){1, N}, &r, &r);
  }
  free(q.data);
}

/* shift_linear_dequantize: Y = q16_dequantize(shift_linear(X, S, G)); dims M, N, K. */
void mfx_ref_shift_linear_dequantize(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t N = dims[1], K = dims[2];
  int32_t *acc = malloc((size_t)N * 4);
  for (int64_t m = 0; m < dims[0]; m++) {
    mfx_array x = ref_row(&in[0], m, K), y = ref_row(&out[0], m, N);
    mfx_array r = {.dtype = MFX_I32, .ndim = 2, .shape = {1, N}, .data = acc};
    if (acc == NULL) {
      for (int64_t n = 0; n < N; n++) ((float *)y.data)[n] = NAN;
      continue;
    }
    mfx_ref_shift_linear((int64_t[]){1, N, K}, (mfx_array[]){x, in[1], in[2]}, &r);
    mfx_ref_q16_dequantize((int64_t[]){1, N}, &r, &y);
  }
  free(acc);
}

/* ---- the shift16 expert's fused ops (fused16.c) -------------------------------------------- */

/* Q3.10 of a value already scaled by 2^10: rint (ties to even) within
 * -8192..8191; NaN is 0. */
static int16_t ref_q10_scaled(double v) {
  if (isnan(v)) return 0;
  if (v >= 8191.0) return 8191;
  if (v <= -8192.0) return -8192;
  return (int16_t)ref_round_even(v);
}

/* sum_k G[n,k] (x[k] >> S[n,k]) of one row x of i16, exact in int64. */
static int64_t ref_shift16_sum(const int16_t *x, const int8_t *S, const int8_t *G, int64_t n,
                               int64_t K) {
  int64_t acc = 0;
  for (int64_t k = 0; k < K; k++) {
    int64_t v = ref_sra(x[k], S[n * K + k] & 15);
    if (G[n * K + k] > 0) acc += v;
    else if (G[n * K + k] < 0) acc -= v;
  }
  return acc;
}

/* shift_linear16_gelu: XQ = q10(X) (x 2^10 exact in double), H the exact
 * sum, R = q10(gelu(f32(H) 2^-10) 2^10) with glibc's erff; dims M, N, K.
 * Without memory for one quantized row, R is all INT16_MIN (no kernel
 * computes that: R >= -175). */
void mfx_ref_shift_linear16_gelu(const int64_t *dims, const mfx_array *in, mfx_array *out) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const float *X = in[0].data;
  int16_t *R = out[0].data, *xq = malloc((size_t)(K > 0 ? K : 1) * sizeof(int16_t));
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; xq != NULL && k < K; k++)
      xq[k] = ref_q10_scaled(ldexp((double)X[m * K + k], 10));
    for (int64_t n = 0; n < N; n++) {
      if (xq == NULL) {
        R[m * N + n] = INT16_MIN;
        continue;
      }
      float h = (float)ref_shift16_sum(xq, in[1].data, in[2].data, n, K);
      R[m * N + n] = ref_q10_scaled(ldexp((double)ref_gelu1((float)ldexp((double)h, -10)), 10));
    }
  }
  free(xq);
}

/* shift_linear16_dequantize: Y = the exact sum H / 2^10 rounded once to f32
 * (the sum is in int64, the quotient exact in double for |H| < 2^53). */
void mfx_ref_shift_linear16_dequantize(const int64_t *dims, const mfx_array *in,
                                       mfx_array *out) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const int16_t *X = in[0].data;
  float *Y = out[0].data;
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++)
      Y[m * N + n] =
          (float)ldexp((double)ref_shift16_sum(X + m * K, in[1].data, in[2].data, n, K), -10);
}
