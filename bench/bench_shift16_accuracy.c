/* The error of MatShift's fixed-point forms against the f32 product with the
 * same power-of-two weights, on data of the scale the MoE's experts see:
 *   layer 1: X LayerNorm'd rows (mean 0, variance 1), K = D
 *   layer 2: GELU of layer 1's f32 output, K = H
 * Weights W ~ N(0, 1/K) made shift weights: G = sign(W), S = round(-log2|W|)
 * clamped to 0..15 (the weight is G 2^-S). The f32 product is
 * sum_k x G 2^-S in double; each form runs its compiled kernel:
 *   shift_linear   X in Q16.16 (i32), per-term truncation
 *   shift_linear16 X in i16 with F fraction bits (F = 8, 9, 10, 11: ranges
 *                  [-32, 32) .. [-4, 4)), clamped to -8192..8191,
 *                  per-term truncation, exact sums
 * Reported: relative RMS error ||Y - Yf|| / ||Yf||, the largest error in the
 * output's own units, and the share of inputs clamped.
 * Then the whole expert (layer 1, GELU, layer 2) against the f32 expert with
 * the same weights (GELU in double, products in double), through the
 * layer's two fused kernels of each kind:
 *   shift    shift_linear_q16_gelu -> shift_linear_dequantize (Q16.16)
 *   shift16  shift_linear16_gelu -> shift_linear16_dequantize (Q3.10, i16)
 *
 * usage: bench_shift16_accuracy [--rows M]   (default 1024) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"

typedef struct {
  int64_t M, N, K;
  float *x;     /* [M, K] */
  int8_t *s, *g; /* [N, K] */
  double *yf;   /* [M, N], the f32 product in double */
} acc_case;

static uint64_t acc_rng = 0x9e3779b97f4a7c15u;

static double acc_uniform(void) {
  return ((double)(mfx_rng_next(&acc_rng) >> 11) + 0.5) / 9007199254740992.0;
}

static double acc_normal(void) {
  return sqrt(-2.0 * log(acc_uniform())) * cos(6.283185307179586 * acc_uniform());
}

static void acc_layernorm_rows(float *x, int64_t M, int64_t K) {
  for (int64_t m = 0; m < M; m++) {
    double mean = 0.0, var = 0.0;
    for (int64_t k = 0; k < K; k++) mean += x[m * K + k];
    mean /= (double)K;
    for (int64_t k = 0; k < K; k++) var += (x[m * K + k] - mean) * (x[m * K + k] - mean);
    double inv = 1.0 / sqrt(var / (double)K + 1e-5);
    for (int64_t k = 0; k < K; k++) x[m * K + k] = (float)((x[m * K + k] - mean) * inv);
  }
}

static void acc_shift_weights(acc_case *c) {
  for (int64_t i = 0; i < c->N * c->K; i++) {
    double w = acc_normal() / sqrt((double)c->K);
    double s = floor(-log2(fabs(w)) + 0.5);
    c->s[i] = (int8_t)(s < 0 ? 0 : s > 15 ? 15 : s);
    c->g[i] = (int8_t)(w > 0 ? 1 : w < 0 ? -1 : 0);
  }
}

static void acc_product(acc_case *c) {
  for (int64_t m = 0; m < c->M; m++)
    for (int64_t n = 0; n < c->N; n++) {
      double y = 0.0;
      for (int64_t k = 0; k < c->K; k++)
        y += c->x[m * c->K + k] * c->g[n * c->K + k] * ldexp(1.0, -c->s[n * c->K + k]);
      c->yf[m * c->N + n] = y;
    }
}

static int acc_open(acc_case *c, int64_t M, int64_t N, int64_t K) {
  *c = (acc_case){.M = M, .N = N, .K = K};
  c->x = malloc(sizeof(float) * (size_t)(M * K));
  c->s = malloc((size_t)(N * K));
  c->g = malloc((size_t)(N * K));
  c->yf = malloc(sizeof(double) * (size_t)(M * N));
  if (!c->x || !c->s || !c->g || !c->yf) return -1;
  acc_shift_weights(c);
  return 0;
}

static void acc_close(acc_case *c) {
  free(c->x);
  free(c->s);
  free(c->g);
  free(c->yf);
}

/* Runs op on X quantized with `frac` fraction bits into `dtype` (clamped to
 * lo..hi); prints the errors of Y / 2^frac against the f32 product. */
static int acc_form(const acc_case *c, const char *op_name, int frac, int64_t lo, int64_t hi) {
  const mfx_op *op = mfx_op_find(op_name);
  int64_t dims[3] = {c->M, c->N, c->K};
  mfx_array in[3], out[1];
  if (op == NULL || mfx_op_alloc_inputs(op, dims, in) != MFX_OK ||
      mfx_op_alloc_outputs(op, dims, out) != MFX_OK)
    return -1;
  int64_t clamped = 0;
  for (int64_t i = 0; i < c->M * c->K; i++) {
    double q = nearbyint(ldexp(c->x[i], frac));
    if (q < (double)lo || q > (double)hi) clamped++;
    q = q < (double)lo ? (double)lo : q > (double)hi ? (double)hi : q;
    if (in[0].dtype == MFX_I16) ((int16_t *)in[0].data)[i] = (int16_t)q;
    else ((int32_t *)in[0].data)[i] = (int32_t)q;
  }
  memcpy(in[1].data, c->s, (size_t)(c->N * c->K));
  memcpy(in[2].data, c->g, (size_t)(c->N * c->K));
  mfx_op_kernel k;
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  if (mfx_op_compile(op, dims, NULL, &k) != MFX_OK ||
      mfx_op_kernel_run(&k, &env, in, out) != MFX_OK) {
    fprintf(stderr, "bench_shift16_accuracy: %s: %s\n", op_name, mfx_last_error());
    return -1;
  }
  double err2 = 0.0, ref2 = 0.0, worst = 0.0;
  for (int64_t i = 0; i < c->M * c->N; i++) {
    double y = ldexp(((const int32_t *)out[0].data)[i], -frac), e = y - c->yf[i];
    err2 += e * e;
    ref2 += c->yf[i] * c->yf[i];
    if (fabs(e) > worst) worst = fabs(e);
  }
  printf("  %-15s F=%-2d rel. RMS error %.2e  max |error| %.4f  clamped %.4f%%\n", op_name,
         frac, sqrt(err2 / ref2), worst, 100.0 * (double)clamped / (double)(c->M * c->K));
  mfx_op_kernel_free(&k);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&out[0]);
  return 0;
}

static int acc_forms(const acc_case *c, const char *what) {
  double ref2 = 0.0;
  for (int64_t i = 0; i < c->M * c->N; i++) ref2 += c->yf[i] * c->yf[i];
  printf("%s: M=%lld N=%lld K=%lld, RMS of the f32 product %.3f\n", what, (long long)c->M,
         (long long)c->N, (long long)c->K, sqrt(ref2 / (double)(c->M * c->N)));
  int bad = acc_form(c, "shift_linear", 16, INT32_MIN, INT32_MAX);
  for (int frac = 8; frac <= 11; frac++) bad |= acc_form(c, "shift_linear16", frac, -8192, 8191);
  return bad;
}

/* Runs op (the default config) on in, into out; 0 on success. */
static int acc_run(const char *name, const int64_t *dims, mfx_array *in, mfx_array *out) {
  const mfx_op *op = mfx_op_find(name);
  mfx_op_kernel k;
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  if (op == NULL || mfx_op_compile(op, dims, NULL, &k) != MFX_OK ||
      mfx_op_kernel_run(&k, &env, in, out) != MFX_OK) {
    fprintf(stderr, "bench_shift16_accuracy: %s: %s\n", name, mfx_last_error());
    return -1;
  }
  mfx_op_kernel_free(&k);
  return 0;
}

/* One expert kind's chain (ops fc1 then fc2) on l1's X and both layers'
 * weights; prints its error against the f32 expert (l2.yf). */
static int acc_expert(const acc_case *l1, const acc_case *l2, const char *kind,
                      const char *fc1, const char *fc2) {
  int64_t d1[3] = {l1->M, l1->N, l1->K}, d2[3] = {l2->M, l2->N, l2->K};
  const mfx_op *o1 = mfx_op_find(fc1), *o2 = mfx_op_find(fc2);
  mfx_array in1[3], h[1], in2[3], y[1];
  if (o1 == NULL || o2 == NULL || mfx_op_alloc_inputs(o1, d1, in1) != MFX_OK ||
      mfx_op_alloc_outputs(o1, d1, h) != MFX_OK || mfx_op_alloc_inputs(o2, d2, in2) != MFX_OK ||
      mfx_op_alloc_outputs(o2, d2, y) != MFX_OK)
    return -1;
  memcpy(in1[0].data, l1->x, sizeof(float) * (size_t)(l1->M * l1->K));
  memcpy(in1[1].data, l1->s, (size_t)(l1->N * l1->K));
  memcpy(in1[2].data, l1->g, (size_t)(l1->N * l1->K));
  memcpy(in2[1].data, l2->s, (size_t)(l2->N * l2->K));
  memcpy(in2[2].data, l2->g, (size_t)(l2->N * l2->K));
  int bad = acc_run(fc1, d1, in1, h);
  if (!bad) {
    memcpy(in2[0].data, h[0].data, (size_t)mfx_array_numel(&h[0]) * mfx_dtype_size(h[0].dtype));
    bad = acc_run(fc2, d2, in2, y);
  }
  double err2 = 0.0, ref2 = 0.0, worst = 0.0;
  for (int64_t i = 0; !bad && i < l2->M * l2->N; i++) {
    double e = ((const float *)y[0].data)[i] - l2->yf[i];
    err2 += e * e;
    ref2 += l2->yf[i] * l2->yf[i];
    if (fabs(e) > worst) worst = fabs(e);
  }
  if (!bad)
    printf("  %-8s expert (%s -> %s): rel. RMS error %.2e  max |error| %.4f\n", kind, fc1,
           fc2, sqrt(err2 / ref2), worst);
  for (int i = 0; i < 3; i++) {
    mfx_array_free(&in1[i]);
    mfx_array_free(&in2[i]);
  }
  mfx_array_free(&h[0]);
  mfx_array_free(&y[0]);
  return bad;
}

/* GELU with erf in double. */
static float acc_gelu(double v) { return (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0)))); }

int main(int argc, char **argv) {
  int64_t M = 1024;
  if (argc == 3 && strcmp(argv[1], "--rows") == 0) M = atoll(argv[2]);
  if (M <= 0) {
    fprintf(stderr, "usage: bench_shift16_accuracy [--rows M]\n");
    return 2;
  }
  static const int64_t shapes[][2] = {{64, 512}, {512, 64}, {128, 1024}, {1024, 128}};
  int bad = 0;
  for (int i = 0; i < 2; i++) {
    int64_t D = shapes[2 * i][0], H = shapes[2 * i][1];
    acc_case l1, l2;
    if (acc_open(&l1, M, H, D) != 0 || acc_open(&l2, M, D, H) != 0) return 1;
    for (int64_t j = 0; j < M * D; j++) l1.x[j] = (float)acc_normal();
    acc_layernorm_rows(l1.x, M, D);
    acc_product(&l1);
    bad |= acc_forms(&l1, "layer 1 (LayerNorm'd X)");
    for (int64_t j = 0; j < M * H; j++) l2.x[j] = acc_gelu(l1.yf[j]);
    acc_product(&l2);
    bad |= acc_forms(&l2, "layer 2 (GELU of layer 1)");
    printf("the expert, D=%lld H=%lld, against the f32 expert with the same weights:\n",
           (long long)D, (long long)H);
    bad |= acc_expert(&l1, &l2, "shift", "shift_linear_q16_gelu", "shift_linear_dequantize");
    bad |= acc_expert(&l1, &l2, "shift16", "shift_linear16_gelu", "shift_linear16_dequantize");
    acc_close(&l1);
    acc_close(&l2);
  }
  return bad ? 1 : 0;
}
