/* Every op, compiled for the host under several schedules and shapes, against
 * its plain-C reference; then the op interface's error cases. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/moe.h"
#include "mfx/ops.h"
#include "guarded_rows.h"
#include "check_main.h"

#define TOL 1e-4
#define MAX_SHAPES 8
#define MAX_CONFIGS 8

/* ---- configurations ----------------------------------------------------------- */

/* Every knob at its smallest (most serial, least split) or largest choice. */
static void config_extreme(const mfx_op *op, int largest, mfx_config *cfg) {
  mfx_config_default(op, cfg);
  for (int i = 0; i < op->n_knobs; i++) {
    const mfx_knob *k = &op->knobs[i];
    int64_t v = k->choices[0];
    for (int j = 1; j < k->n_choices; j++)
      if (largest ? k->choices[j] > v : k->choices[j] < v) v = k->choices[j];
    ck_assert_int_eq(mfx_config_set(op, cfg, k->name, v), MFX_OK);
  }
}

/* Each knob at a choice drawn from rng. */
static void config_random(const mfx_op *op, uint64_t *rng, mfx_config *cfg) {
  mfx_config_default(op, cfg);
  for (int i = 0; i < op->n_knobs; i++) {
    const mfx_knob *k = &op->knobs[i];
    int64_t v = k->choices[mfx_rng_next(rng) % (uint64_t)k->n_choices];
    ck_assert_int_eq(mfx_config_set(op, cfg, k->name, v), MFX_OK);
  }
}

/* default, all smallest, all largest, then random mixtures. */
static int configs_for(const mfx_op *op, int n_random, mfx_config *cfgs) {
  uint64_t rng = 0x5eed0000u + (uint64_t)strlen(op->name);
  int n = 0;
  mfx_config_default(op, &cfgs[n++]);
  config_extreme(op, 0, &cfgs[n++]);
  config_extreme(op, 1, &cfgs[n++]);
  for (int i = 0; i < n_random && n < MAX_CONFIGS; i++) config_random(op, &rng, &cfgs[n++]);
  return n;
}

/* ---- one case: compile, run, compare ----------------------------------------------- */

static void describe(const mfx_op *op, const int64_t *dims, const mfx_config *cfg, char *buf,
                     size_t size) {
  size_t used = (size_t)snprintf(buf, size, "%s", op->name);
  for (int d = 0; d < op->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : " ", op->dims[d],
                             (long long)dims[d]);
  if (used + 1 < size) {
    buf[used++] = ' ';
    mfx_config_to_json(cfg, buf + used, size - used);
  }
}

/* Runs one case; on failure writes why into `why` and returns 0. */
static int run_case(const mfx_op *op, const int64_t *dims, const mfx_config *cfg,
                    const mfx_kernel_env *env, uint64_t seed, char *why, size_t size) {
  mfx_array in[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_op_random_inputs(op, dims, seed, in);
  op->reference(dims, in, want);
  for (int i = 0; i < op->n_outputs; i++) /* garbage, so unwritten outputs show */
    memset(got[i].data, 0x7f, (size_t)mfx_array_numel(&got[i]) * mfx_dtype_size(got[i].dtype));
  int ok = 1;
  mfx_op_kernel k;
  mfx_status st = mfx_op_compile(op, dims, cfg, &k);
  if (st == MFX_OK) st = mfx_op_kernel_run(&k, env, in, got);
  if (st != MFX_OK) {
    snprintf(why, size, "%s: %s", mfx_status_name(st), mfx_last_error());
    ok = 0;
  }
  for (int i = 0; ok && i < op->n_outputs; i++) {
    mfx_compare c = mfx_compare_arrays_int(&got[i], &want[i], TOL, op->int_tolerance);
    if (!c.ok) {
      snprintf(why, size, "output %s differs: max_abs_err %g, max_rel_err %g at index %lld",
               op->outputs[i].name, c.max_abs_err, c.max_rel_err, (long long)c.worst_index);
      ok = 0;
    }
  }
  mfx_op_kernel_free(&k); /* compile zeroes k first, so this is always safe */
  for (int i = 0; i < op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int i = 0; i < op->n_outputs; i++) {
    mfx_array_free(&got[i]);
    mfx_array_free(&want[i]);
  }
  return ok;
}

/* Every shape under every configuration; all failures are printed, the first
 * one fails the test. */
static void check_op(const char *name, int n_shapes, const int64_t shapes[][MFX_OP_MAX_DIMS],
                     int n_random) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_msg(op != NULL, "op %s is not registered", name);
  mfx_config cfgs[MAX_CONFIGS];
  /* The sanitizer tree (MFX_TEST_QUICK) runs the default and the two extreme
   * configs on every shape: it looks for memory errors; the release tree
   * adds the random mixtures. */
  int n_cfgs = configs_for(op, getenv("MFX_TEST_QUICK") != NULL ? 0 : n_random, cfgs);
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  int failures = 0;
  char first[2048] = "";
  for (int s = 0; s < n_shapes; s++) {
    for (int c = 0; c < n_cfgs; c++) {
      char why[1024], what[512];
      if (run_case(op, shapes[s], &cfgs[c], &env, (uint64_t)(s * 31 + c + 1), why, sizeof why))
        continue;
      describe(op, shapes[s], &cfgs[c], what, sizeof what);
      fprintf(stderr, "FAIL %s: %s\n", what, why);
      if (failures++ == 0) snprintf(first, sizeof first, "%s: %s", what, why);
    }
  }
  mfx_pool_destroy(pool);
  ck_assert_msg(failures == 0, "%d of %d %s cases failed; first: %s", failures,
                n_shapes * n_cfgs, name, first);
}

/* ---- the ops ------------------------------------------------------------------------------ */

START_TEST(test_linear_kernels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 64, 64}, {3, 100, 1}, {1, 40, 300},
  };
  check_op("linear", 6, shapes, 2);
}
END_TEST

START_TEST(test_shift_linear_kernels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 64, 64}, {3, 100, 1}, {9, 8, 300},
  };
  check_op("shift_linear", 6, shapes, 2);
}
END_TEST

/* pack 2 (i32 weight panels of 16 columns) under both forms and every
 * register tile, on shapes that divide no tile and no panel. */
START_TEST(test_shift_linear_panels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {37, 45, 29}, {70, 130, 37}, {9, 8, 300}, {13, 17, 1},
  };
  static const int64_t tiles[][3] = {{1, 8, 0}, {6, 16, 0}, {8, 16, 64}, {4, 32, 16}, {8, 32, 0}};
  const mfx_op *op = mfx_op_find("shift_linear");
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  int failures = 0, cases = 0;
  for (int s = 0; s < 5; s++)
    for (int t = 0; t < 5; t++)
      for (int form = 0; form < 2; form++) {
        mfx_config cfg;
        mfx_config_default(op, &cfg);
        ck_assert_int_eq(mfx_config_set(op, &cfg, "pack", 2), MFX_OK);
        ck_assert_int_eq(mfx_config_set(op, &cfg, "form", form), MFX_OK);
        ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_m", tiles[t][0]), MFX_OK);
        ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_n", tiles[t][1]), MFX_OK);
        ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_k", tiles[t][2]), MFX_OK);
        char why[1024], what[512];
        cases++;
        if (run_case(op, shapes[s], &cfg, &env, (uint64_t)(s * 7 + t + 1), why, sizeof why))
          continue;
        describe(op, shapes[s], &cfg, what, sizeof what);
        fprintf(stderr, "FAIL %s: %s\n", what, why);
        failures++;
      }
  mfx_pool_destroy(pool);
  ck_assert_msg(failures == 0, "%d of %d shift_linear pack 2 cases failed", failures, cases);
}
END_TEST

/* The fused ops (fused.c) against their composed references: shapes that
 * divide no tile, one row, K past a reduction split. */
static const int64_t fused_shapes[][MFX_OP_MAX_DIMS] = {
  {1, 1, 1}, {37, 45, 29}, {33, 17, 65}, {64, 64, 64}, {9, 8, 300}, {70, 130, 37},
};

START_TEST(test_linear_gelu_kernels) { check_op("linear_gelu", 6, fused_shapes, 2); }
END_TEST

START_TEST(test_shift_linear_q16_gelu_kernels) {
  check_op("shift_linear_q16_gelu", 6, fused_shapes, 3);
}
END_TEST

START_TEST(test_shift_linear_dequantize_kernels) {
  check_op("shift_linear_dequantize", 6, fused_shapes, 2);
}
END_TEST

/* 16-bit lanes: K past one i16 block (16) and not a multiple of it, N past
 * one panel (32) and not a multiple of it. */
START_TEST(test_shift_linear16_kernels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 5}, {33, 47, 37}, {64, 64, 64}, {3, 100, 17}, {9, 8, 300},
  };
  check_op("shift_linear16", 6, shapes, 3);
}
END_TEST

START_TEST(test_matadd_kernels) { /* B, H, N, D, C */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1, 1, 1}, {2, 3, 7, 5, 13}, {1, 2, 33, 17, 9}, {2, 2, 64, 32, 16}, {1, 1, 5, 100, 3},
    {3, 1, 70, 1, 2},
  };
  check_op("matadd", 6, shapes, 2);
}
END_TEST

START_TEST(test_hamming_kernels) { /* N, M, W */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 3}, {33, 17, 5}, {64, 64, 8}, {3, 100, 1}, {5, 9, 40},
  };
  check_op("hamming", 6, shapes, 2);
}
END_TEST

/* i16 scores: W up to 1023 (scores up to +-32,736); W = 1024 is refused. */
START_TEST(test_hamming16_kernels) { /* N, M, W */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 3}, {33, 17, 5}, {3, 100, 1}, {5, 9, 40}, {3, 5, 1023},
  };
  check_op("hamming16", 6, shapes, 2);
  const mfx_op *op = mfx_op_find("hamming16");
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  ck_assert_int_eq(op->build(a, (int64_t[]){3, 5, 1024}, &cfg, &s), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "W = 1024") != NULL &&
                strstr(mfx_last_error(), "i16") != NULL, "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

START_TEST(test_binary_attention_kernels) { /* B, H, N, D, C */
  /* D picks the lanes of the row norms' partial sums: 16 (32), 8 (24), 4 (100),
   * 2 (6), none (1, 5, 17); N = 19 and 33 divide no block of rows. */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1, 1, 1}, {2, 3, 7, 5, 13}, {1, 2, 33, 17, 9}, {2, 2, 64, 32, 16}, {1, 1, 5, 100, 3},
    {1, 2, 19, 24, 5}, {2, 1, 9, 6, 11},
  };
  check_op("binary_attention", 7, shapes, 2);
}
END_TEST

/* The elementwise ops, M x N: shapes that divide no vector width, single
 * rows and columns. */
static const int64_t ELEMENTWISE_SHAPES[][MFX_OP_MAX_DIMS] = {
  {1, 1}, {3, 7}, {65, 129}, {64, 64}, {1, 300}, {17, 1},
};

START_TEST(test_gelu_kernels) { check_op("gelu", 6, ELEMENTWISE_SHAPES, 3); }
END_TEST

START_TEST(test_q16_quantize_kernels) { check_op("q16_quantize", 6, ELEMENTWISE_SHAPES, 3); }
END_TEST

START_TEST(test_q16_dequantize_kernels) { check_op("q16_dequantize", 6, ELEMENTWISE_SHAPES, 3); }
END_TEST

START_TEST(test_q16_gelu_kernels) { check_op("q16_gelu", 6, ELEMENTWISE_SHAPES, 3); }
END_TEST

/* The MoE dispatch and combine: row indices from data, -1 among them (the
 * random inputs make one in four -1), shapes that divide no vector width. */
START_TEST(test_gather_rows_kernels) { /* T, M, D */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {5, 7, 13}, {1, 9, 3}, {33, 65, 129}, {3, 100, 1}, {17, 5, 300},
  };
  check_op("gather_rows", 6, shapes, 3);
}
END_TEST

START_TEST(test_combine_rows_kernels) { /* R, T, K, D */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1, 1}, {9, 6, 2, 19}, {9, 6, 1, 19}, {9, 6, 3, 19}, {1, 5, 3, 7}, {40, 33, 2, 129},
    {5, 3, 4, 300},
  };
  check_op("combine_rows", 7, shapes, 3);
}
END_TEST

/* A row index of -1 is never read: the rows (input 0) start right after a
 * page that faults when touched, every index is -1 or 0, and each config
 * (default, smallest, largest) runs to the reference's result. A load of
 * row -1 would read the page before the rows and crash the test. */
static void check_rows_placed(const char *name, const int64_t *dims, int at_end) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_ptr_nonnull(op);
  mfx_config cfgs[MAX_CONFIGS];
  int n_cfgs = configs_for(op, 0, cfgs);
  guarded_rows g;
  guarded_rows_setup(op, dims, at_end, &g);
  for (int c = 0; c < n_cfgs; c++) {
    mfx_op_kernel k;
    ck_assert_msg(mfx_op_compile(op, dims, &cfgs[c], &k) == MFX_OK, "%s: %s", name,
                  mfx_last_error());
    ck_assert_msg(mfx_op_kernel_run(&k, NULL, g.in, g.got) == MFX_OK, "%s: %s", name,
                  mfx_last_error());
    mfx_compare cmp = mfx_compare_arrays(&g.got[0], &g.want[0], TOL);
    ck_assert_msg(cmp.ok, "%s config %d: max_rel_err %g", name, c, cmp.max_rel_err);
    mfx_op_kernel_free(&k);
  }
  guarded_rows_free(op, &g);
}

/* Rows right after a faulting page, then right before one. */
static void check_rows_in_bounds(const char *name, const int64_t *dims) {
  check_rows_placed(name, dims, 0);
  check_rows_placed(name, dims, 1);
}

START_TEST(test_row_index_minus_one_is_never_read) {
  check_rows_in_bounds("gather_rows", (int64_t[]){3, 7, 13});
  check_rows_in_bounds("combine_rows", (int64_t[]){2, 5, 3, 19});
}
END_TEST

/* ---- the elementwise ops are the MoE layer's host arithmetic, bit for bit --------------- */

#define HOST_CASES (1 << 21)

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* f32 inputs: every 4099th bit pattern (NaNs, infinities, subnormals,
 * huge values), then ordinary values, exact Q16 ties and the edges of
 * saturation. */
static void host_float_inputs(float *x, int64_t n) {
  static const float special[] = {0.0f, -0.0f, 0.5f / 65536, 1.5f / 65536, 2.5f / 65536,
                                  -0.5f / 65536, -1.5f / 65536, 32768.0f, -32768.0f,
                                  32767.998f, -32767.998f, 32767.99998f, -32767.99998f,
                                  INFINITY, -INFINITY, NAN, 1e-45f, -1e-45f, 3.4e38f};
  int64_t k = 0, n_special = (int64_t)(sizeof special / sizeof special[0]);
  for (; k < n_special; k++) x[k] = special[k];
  for (uint64_t bits = 0; k < n / 2 && bits <= UINT32_MAX; bits += 4099) x[k++] = bits_float((uint32_t)bits);
  uint64_t rng = 99;
  for (int64_t i = 0; k < n; i++, k++) {
    float u = (float)(mfx_rng_next(&rng) >> 40) * (1.0f / 16777216.0f);
    switch (i % 3) {
    case 0: x[k] = -8.0f + 16.0f * u; break;
    case 1: x[k] = (float)(2 * (int64_t)(mfx_rng_next(&rng) % (1u << 22)) - (1 << 22) + 1) / 131072.0f; break;
    default: x[k] = (i & 4 ? 1.0f : -1.0f) * (32766.0f + 4.0f * u); break;
    }
  }
}

/* i32 inputs: the ends of int32 (q16_gelu saturates only at the top), every
 * value of [-8, 8) in Q16.16, then every 4099th int32. */
static void host_int_inputs(int32_t *q, int64_t n) {
  static const int32_t ends[] = {INT32_MAX, INT32_MAX - 63, INT32_MAX - 64, INT32_MAX - 65,
                                 INT32_MIN, INT32_MIN + 1, 0, -1, 1};
  int64_t k = 0;
  for (; k < (int64_t)(sizeof ends / sizeof ends[0]); k++) q[k] = ends[k];
  for (int64_t v = -(8 << 16); k < n / 2 && v < (8 << 16); v++) q[k++] = (int32_t)v;
  for (int64_t v = INT32_MIN; k < n; v += 4099) q[k++] = (int32_t)(v <= INT32_MAX ? v : INT32_MAX);
}

/* Runs op (default CPU config, on the pool) on one [1, n] input. */
static void run_host_case(const char *name, const mfx_array *in, mfx_array *out) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_msg(op != NULL, "%s is not registered", name);
  int64_t dims[2] = {1, in->shape[1]};
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile(op, dims, NULL, &k) == MFX_OK, "%s: %s", name, mfx_last_error());
  ck_assert_msg(mfx_op_kernel_run(&k, &env, (mfx_array *)in, out) == MFX_OK, "%s: %s", name,
                mfx_last_error());
  mfx_op_kernel_free(&k);
  mfx_pool_destroy(pool);
}

/* Bit for bit (NaN equals NaN when both are NaN); counts mismatches and
 * keeps the first in `first`, without an assertion per element (each one is
 * a message to Check's parent process). */
typedef struct {
  int64_t mismatches;
  char first[256];
} host_diff;

static void same_float(host_diff *d, const char *what, double in, float got, float want) {
  if (float_bits(got) == float_bits(want) || (isnan(got) && isnan(want))) return;
  if (d->mismatches++ == 0)
    snprintf(d->first, sizeof d->first, "%s(%a) = %a, the host gives %a", what, in,
             (double)got, (double)want);
}

static void same_int(host_diff *d, const char *what, double in, int32_t got, int32_t want) {
  if (got == want) return;
  if (d->mismatches++ == 0)
    snprintf(d->first, sizeof d->first, "%s(%a) = %d, the host gives %d", what, in, got, want);
}

/* The kernels' GELU uses codegen_math.c's erf (within 1.5 ulp of the true
 * erf), the host's glibc's erff (within 1 ulp): the two erf differ by at
 * most 2.5 ulp <= 2.5 2^-24, 1 + erf adds at most one rounding of 2^-23
 * to each, and the product 0.5 x (1 + erf) one ulp of the result. So
 * |gelu - host| <= 0.5 |x| (2.5 2^-24 + 2^-23) + ulp(host) < 2^-22 |x| +
 * ulp(host): for x >= 0 (where 1 + erf >= 1 and the result is >= x/2)
 * that is within 9 ulp of the result; for x < 0 it is an absolute bound
 * of the same size as the host's own error against the exact GELU (erff's
 * ulp, scaled by x/2, where 1 + erf cancels). NaN and +-inf exactly. */
static void close_gelu(host_diff *d, double *worst_ulp, double in, float got, float want) {
  if (float_bits(got) == float_bits(want) || (isnan(got) && isnan(want))) return;
  double err = fabs((double)got - (double)want);
  double ulp = want == 0.0f ? 0x1p-149 : fmax(ldexp(1.0, ilogbf(want) - 23), 0x1p-149);
  if (in >= 0.0 && err / ulp > *worst_ulp) *worst_ulp = err / ulp;
  if (isfinite(got) && isfinite(want) && err <= ldexp(fabs(in), -22) + ulp) return;
  if (d->mismatches++ == 0)
    snprintf(d->first, sizeof d->first, "gelu(%a) = %a, the host gives %a (further than "
             "2^-22 |x| + 1 ulp)", in, (double)got, (double)want);
}

/* q16_gelu's bound: one Q16.16 unit (its int_tolerance). GELU values less
 * than 2^-16 apart (see ops/elementwise.c: here they differ by < 2^-22 |x|
 * + ulp, and only for |x| < 5.6, where erf is not +-1 in both) round to
 * integers at most 1 apart. */
static int q16_within_one(int32_t got, int32_t want) {
  return (int64_t)got - want >= -1 && (int64_t)got - want <= 1;
}

static void close_q16(host_diff *d, double in, int32_t got, int32_t want) {
  if (q16_within_one(got, want)) return;
  if (d->mismatches++ == 0)
    snprintf(d->first, sizeof d->first, "q16_gelu(%a) = %d, the host gives %d (more than one "
             "unit apart)", in, got, want);
}

START_TEST(test_elementwise_equal_the_layer_host_functions) {
  int64_t n = HOST_CASES;
  mfx_array fin, fout, qin, qout;
  ck_assert_int_eq(mfx_array_create(&fin, MFX_F32, 2, (int64_t[]){1, n}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&fout, MFX_F32, 2, (int64_t[]){1, n}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&qin, MFX_I32, 2, (int64_t[]){1, n}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&qout, MFX_I32, 2, (int64_t[]){1, n}), MFX_OK);
  float *x = fin.data, *y = fout.data;
  int32_t *q = qin.data, *r = qout.data;
  host_float_inputs(x, n);
  host_int_inputs(q, n);

  host_diff d = {0, ""};
  mfx_array fref, qref;
  ck_assert_int_eq(mfx_array_create(&fref, MFX_F32, 2, (int64_t[]){1, n}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&qref, MFX_I32, 2, (int64_t[]){1, n}), MFX_OK);
  float *fr = fref.data;
  int32_t *qr = qref.data;

  run_host_case("gelu", &fin, &fout); /* the kernel, then the reference */
  mfx_op_find("gelu")->reference((int64_t[]){1, n}, &fin, &fref);
  double worst_ulp = 0.0;
  for (int64_t i = 0; i < n; i++) {
    close_gelu(&d, &worst_ulp, x[i], y[i], mfx_gelu(x[i]));
    same_float(&d, "reference gelu", x[i], fr[i], mfx_gelu(x[i]));
  }
  run_host_case("q16_quantize", &fin, &qout);
  mfx_op_find("q16_quantize")->reference((int64_t[]){1, n}, &fin, &qref);
  for (int64_t i = 0; i < n; i++) {
    same_int(&d, "q16_quantize", x[i], r[i], mfx_q16_from_float(x[i]));
    same_int(&d, "reference q16_quantize", x[i], qr[i], mfx_q16_from_float(x[i]));
  }
  run_host_case("q16_dequantize", &qin, &fout);
  mfx_op_find("q16_dequantize")->reference((int64_t[]){1, n}, &qin, &fref);
  for (int64_t i = 0; i < n; i++) {
    same_float(&d, "q16_dequantize", q[i], y[i], mfx_q16_to_float(q[i]));
    same_float(&d, "reference q16_dequantize", q[i], fr[i], mfx_q16_to_float(q[i]));
  }
  run_host_case("q16_gelu", &qin, &qout);
  mfx_op_find("q16_gelu")->reference((int64_t[]){1, n}, &qin, &qref);
  int64_t off_by_one = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t want = mfx_q16_from_float(mfx_gelu(mfx_q16_to_float(q[i])));
    close_q16(&d, q[i], r[i], want);
    off_by_one += r[i] != want;
    same_int(&d, "reference q16_gelu", q[i], qr[i], want);
  }
  fprintf(stderr, "gelu: largest difference from the host for x >= 0: %.2f ulp; q16_gelu: "
          "%lld of %lld one unit off\n", worst_ulp, (long long)off_by_one, (long long)n);
  ck_assert_msg(worst_ulp <= 9.0, "gelu %.2f ulp from the host for some x >= 0", worst_ulp);
  /* The bound is exactly one unit: two would fail, and so would the op's
   * tolerance. */
  ck_assert(q16_within_one(7, 8) && q16_within_one(8, 7) && !q16_within_one(6, 8) &&
            !q16_within_one(INT32_MIN, INT32_MAX));
  int64_t tol = mfx_op_find("q16_gelu")->int_tolerance;
  ck_assert_int_eq(tol, 1);
  ck_assert(mfx_compare_arrays_int(&qout, &qref, 0.0, tol).ok); /* what the op checks use */
  r[5] = qr[5] + 1; /* one unit: allowed */
  ck_assert(mfx_compare_arrays_int(&qout, &qref, 0.0, tol).ok);
  r[5] = qr[5] + 2; /* two units: a failure */
  ck_assert(!mfx_compare_arrays_int(&qout, &qref, 0.0, tol).ok);
  ck_assert_msg(d.mismatches == 0, "%lld mismatches; first: %s", (long long)d.mismatches,
                d.first);
  mfx_array_free(&fref);
  mfx_array_free(&qref);

  /* Known values: ties to even, saturation, NaN. */
  static const struct { float x; int32_t q; } known[] = {
    {0.5f / 65536, 0}, {1.5f / 65536, 2}, {2.5f / 65536, 2}, {-0.5f / 65536, 0},
    {-1.5f / 65536, -2}, {1.0f, 65536}, {-1.0f, -65536}, {32767.998f, 2147483520},
    {32768.0f, INT32_MAX}, {-32768.0f, INT32_MIN}, {INFINITY, INT32_MAX},
    {-INFINITY, INT32_MIN}, {NAN, 0}, {1e30f, INT32_MAX},
  };
  mfx_array one_in, one_out;
  int64_t n_known = (int64_t)(sizeof known / sizeof known[0]);
  ck_assert_int_eq(mfx_array_create(&one_in, MFX_F32, 2, (int64_t[]){1, n_known}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&one_out, MFX_I32, 2, (int64_t[]){1, n_known}), MFX_OK);
  for (int64_t i = 0; i < n_known; i++) ((float *)one_in.data)[i] = known[i].x;
  run_host_case("q16_quantize", &one_in, &one_out);
  for (int64_t i = 0; i < n_known; i++)
    ck_assert_msg(((int32_t *)one_out.data)[i] == known[i].q, "q16_quantize(%a) = %d, expected %d",
                  (double)known[i].x, ((int32_t *)one_out.data)[i], known[i].q);
  mfx_array_free(&one_in);
  mfx_array_free(&one_out);
  mfx_array_free(&fin);
  mfx_array_free(&fout);
  mfx_array_free(&qin);
  mfx_array_free(&qout);
}
END_TEST

/* ---- multiplication-free: no multiply on values in the lowered kernels ----------------- */

static int value_multiplies(const mfx_expr *e) {
  if (e == NULL) return 0;
  switch (e->kind) {
  case MFX_EXPR_BINARY:
    if (e->u.bin.op == MFX_MUL && e->type != MFX_I64) return 1;
    return value_multiplies(e->u.bin.a) || value_multiplies(e->u.bin.b);
  case MFX_EXPR_UNARY: return value_multiplies(e->u.un.a);
  case MFX_EXPR_SELECT:
    return value_multiplies(e->u.sel.cond) || value_multiplies(e->u.sel.a) ||
           value_multiplies(e->u.sel.b);
  case MFX_EXPR_CAST: return value_multiplies(e->u.cast.a);
  case MFX_EXPR_REDUCE: return value_multiplies(e->u.red.src);
  default: return 0; /* constants, variables, loads (indices are i64) */
  }
}

static int stmt_multiplies(const mfx_stmt *s) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return stmt_multiplies(s->u.loop.body);
  case MFX_STMT_STORE: return value_multiplies(s->u.store.value);
  case MFX_STMT_LET: return value_multiplies(s->u.let.value) || stmt_multiplies(s->u.let.body);
  case MFX_STMT_IF: return stmt_multiplies(s->u.if_.then_s) || stmt_multiplies(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return stmt_multiplies(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (stmt_multiplies(s->u.seq.items[i])) return 1;
    return 0;
  case MFX_STMT_BARRIER: return 0;
  case MFX_STMT_MMA: return 1; /* tensor-core products */
  }
  return 0;
}

START_TEST(test_multiplication_free) {
  const char *names[] = {"shift_linear", "matadd", "hamming"};
  for (int i = 0; i < 3; i++) {
    const mfx_op *op = mfx_op_find(names[i]);
    mfx_config cfgs[MAX_CONFIGS];
    int n = configs_for(op, 2, cfgs);
    int64_t dims[MFX_OP_MAX_DIMS] = {3, 5, 7, 9, 11};
    for (int c = 0; c < n; c++) {
      mfx_arena *a = mfx_arena_create();
      mfx_schedule *s = NULL;
      mfx_func *f = NULL;
      ck_assert_int_eq(op->build(a, dims, &cfgs[c], &s), MFX_OK);
      ck_assert_msg(mfx_lower(s, op->name, &f) == MFX_OK, "%s: %s", op->name, mfx_last_error());
      ck_assert_msg(!stmt_multiplies(f->body), "%s computes a product of values", op->name);
      mfx_arena_destroy(a);
    }
  }
  /* The check itself sees a multiply: linear has one. */
  const mfx_op *lin = mfx_op_find("linear");
  mfx_config cfg;
  mfx_config_default(lin, &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_func *f = NULL;
  ck_assert_int_eq(lin->build(a, (int64_t[]){4, 4, 4}, &cfg, &s), MFX_OK);
  ck_assert_int_eq(mfx_lower(s, "linear", &f), MFX_OK);
  ck_assert(stmt_multiplies(f->body));
  mfx_arena_destroy(a);
}
END_TEST

/* ---- the registry ----------------------------------------------------------------------------- */

START_TEST(test_registry) {
  const char *names[] = {"linear", "shift_linear", "matadd", "hamming", "hamming16",
                         "binary_attention",
                         "gelu", "q16_quantize", "q16_dequantize", "q16_gelu",
                         "gather_rows", "combine_rows", "linear_gelu", "shift_linear_q16_gelu",
                         "shift_linear_dequantize", "shift_linear16", "shift_linear16_gelu",
                         "shift_linear16_dequantize"};
  const int n_names = (int)(sizeof names / sizeof names[0]);
  ck_assert_int_eq(mfx_op_count(), n_names);
  for (int i = 0; i < n_names; i++) {
    const mfx_op *op = mfx_op_find(names[i]);
    ck_assert_msg(op != NULL, "%s missing", names[i]);
    ck_assert_ptr_eq(mfx_op_at(i), op);
    for (int k = 0; k < op->n_knobs; k++) { /* every default is one of its choices */
      mfx_config cfg;
      mfx_config_default(op, &cfg);
      ck_assert_int_eq(mfx_config_set(op, &cfg, op->knobs[k].name, op->knobs[k].def), MFX_OK);
    }
  }
  ck_assert_ptr_null(mfx_op_find("conv2d"));
  ck_assert_ptr_null(mfx_op_find(NULL));
  ck_assert_ptr_null(mfx_op_at(-1));
  ck_assert_ptr_null(mfx_op_at(n_names));
  /* Integer slack only where a Q16.16 or Q3.10 GELU rounds a polynomial erf. */
  for (int i = 0; i < n_names; i++)
    ck_assert_int_eq(mfx_op_at(i)->int_tolerance, strstr(names[i], "q16_gelu") != NULL ||
                                                      strcmp(names[i], "shift_linear16_gelu") == 0);
}
END_TEST

/* The counts in ops/op_list.h agree with each mfx_op's names and shapes:
 * every dim and tensor slot below the count is named, none above it, and
 * every shape names one of the op's dims. */
static int name_count(const char *const *names, int max) {
  int n = 0;
  while (n < max && names[n] != NULL) n++;
  return n;
}

static void check_listed_interface(const mfx_op *op) {
  ck_assert_msg(name_count(op->dims, MFX_OP_MAX_DIMS) == op->n_dims,
                "%s: op_list.h says %d dims, its mfx_op names %d", op->name, op->n_dims,
                name_count(op->dims, MFX_OP_MAX_DIMS));
  for (int i = 0; i < MFX_OP_MAX_TENSORS; i++) {
    ck_assert_msg((op->inputs[i].name != NULL) == (i < op->n_inputs), "%s: input %d", op->name, i);
    ck_assert_msg((op->outputs[i].name != NULL) == (i < op->n_outputs), "%s: output %d",
                  op->name, i);
  }
  for (int i = 0; i < op->n_inputs + op->n_outputs; i++) {
    const mfx_op_tensor *t = i < op->n_inputs ? &op->inputs[i] : &op->outputs[i - op->n_inputs];
    for (int d = 0; d < t->ndim; d++) {
      int found = 0;
      for (int e = 0; e < op->n_dims; e++) found |= strcmp(op->dims[e], t->shape[d]) == 0;
      ck_assert_msg(found, "%s: %s's dim %s is not a dim of the op", op->name, t->name,
                    t->shape[d]);
    }
  }
}

START_TEST(test_op_list) {
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    check_listed_interface(op);
    ck_assert_ptr_nonnull(op->reference);
    ck_assert_ptr_nonnull(op->random_input);
    /* Every op has a work rate, over dims it has: all 3s give 3^k times the factor. */
    int64_t dims[MFX_OP_MAX_DIMS];
    for (int d = 0; d < MFX_OP_MAX_DIMS; d++) dims[d] = 3;
    const char *unit = NULL;
    double work = mfx_op_work(op, dims, &unit);
    ck_assert_msg(work > 0.0 && unit != NULL && strstr(unit, "/s") != NULL, "%s: no work rate",
                  op->name);
  }
  const char *unit = NULL;
  /* linear: 2 M N K flops. */
  ck_assert_double_eq(mfx_op_work(mfx_op_find("linear"), (int64_t[]){4, 5, 6}, &unit), 240.0);
  ck_assert_str_eq(unit, "GFLOP/s");
  /* matadd: B H N D C adds. */
  ck_assert_double_eq(mfx_op_work(mfx_op_find("matadd"), (int64_t[]){2, 3, 4, 5, 6}, &unit),
                      720.0);
  ck_assert_str_eq(unit, "Gadd/s");
  /* combine_rows (R, T, K, D): 2 T K D. */
  ck_assert_double_eq(mfx_op_work(mfx_op_find("combine_rows"), (int64_t[]){9, 2, 3, 4}, &unit),
                      48.0);
  /* An op outside the list has no work; neither has a NULL op. */
  mfx_op stranger = *mfx_op_find("linear");
  stranger.name = "stranger";
  ck_assert_double_eq(mfx_op_work(&stranger, (int64_t[]){4, 5, 6}, &unit), 0.0);
  ck_assert_double_eq(mfx_op_work(NULL, (int64_t[]){4, 5, 6}, &unit), 0.0);
}
END_TEST

/* Templates read their knobs through typed views (ops/knobs.h): a knob the
 * config lacks is an error naming it, never a -1 taken for a tile size. */
START_TEST(test_knob_views) {
  const mfx_op *op = mfx_op_find("linear");
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  int64_t v[2] = {0, 0};
  ck_assert_int_eq(mfx_config_read(&cfg, "linear", 2, (const char *[]){"tile_m", "pack"}, v),
                   MFX_OK);
  ck_assert_int_eq(v[0], 8);
  ck_assert_int_eq(v[1], 2);
  mfx_clear_error();
  ck_assert_int_eq(mfx_config_read(&cfg, "linear", 2, (const char *[]){"tile_m", "tile_nn"}, v),
                   MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "linear") && strstr(mfx_last_error(), "\"tile_nn\"") &&
                    strstr(mfx_last_error(), "tile_n, "),
                "%s", mfx_last_error());
  ck_assert_int_eq(mfx_config_read(NULL, "linear", 1, (const char *[]){"tile_m"}, v),
                   MFX_ERR_INVALID);
  /* Every template, CPU and GPU, refuses a config without its knobs. */
  mfx_config empty = {0};
  for (int i = 0; i < mfx_op_count(); i++) {
    op = mfx_op_at(i);
    int64_t dims[MFX_OP_MAX_DIMS];
    for (int d = 0; d < MFX_OP_MAX_DIMS; d++) dims[d] = 4;
    for (int gpu = 0; gpu < 2; gpu++) {
      mfx_arena *arena = mfx_arena_create();
      mfx_schedule *sched = NULL;
      mfx_clear_error();
      mfx_status st = gpu ? op->build_gpu(arena, dims, &empty, &sched)
                          : op->build(arena, dims, &empty, &sched);
      ck_assert_msg(st == MFX_ERR_INVALID && strstr(mfx_last_error(), "knobs of") != NULL &&
                        strstr(mfx_last_error(), "holds none") != NULL,
                    "%s (%s): %d %s", op->name, gpu ? "gpu" : "cpu", st, mfx_last_error());
      mfx_arena_destroy(arena);
    }
  }
}
END_TEST

static void expect_dims_error(const mfx_op *op, const char *text, const char *fragment) {
  int64_t dims[MFX_OP_MAX_DIMS] = {0};
  mfx_clear_error();
  ck_assert_msg(mfx_op_parse_dims(op, text, dims) == MFX_ERR_INVALID, "\"%s\" accepted", text);
  ck_assert_msg(strstr(mfx_last_error(), fragment) != NULL, "\"%s\": message \"%s\" lacks \"%s\"",
                text, mfx_last_error(), fragment);
}

START_TEST(test_parse_dims) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[MFX_OP_MAX_DIMS] = {0};
  ck_assert_int_eq(mfx_op_parse_dims(op, "K=16,M=64,N=32", dims), MFX_OK);
  ck_assert_int_eq(dims[0], 64);
  ck_assert_int_eq(dims[1], 32);
  ck_assert_int_eq(dims[2], 16);
  ck_assert_int_eq(mfx_op_parse_dims(op, " M = 1 , N=2,K= 3 ", dims), MFX_OK);
  ck_assert(dims[0] == 1 && dims[1] == 2 && dims[2] == 3);
  expect_dims_error(op, "M=4,N=4", "K is missing");
  expect_dims_error(op, "M=4,N=4,K=4,Z=1", "unknown dim \"Z\"");
  expect_dims_error(op, "M=4,M=5,N=1,K=1", "M given twice");
  expect_dims_error(op, "M=0,N=1,K=1", "M=0 must be positive");
  expect_dims_error(op, "M=-3,N=1,K=1", "M=-3 must be positive");
  expect_dims_error(op, "M=abc,N=1,K=1", "integer");
  expect_dims_error(op, "M=4x,N=1,K=1", "unexpected");
  expect_dims_error(op, "M=4 N=4 K=4", "unexpected");
  expect_dims_error(op, "M=4,N=4,K=4,", "NAME=VALUE");
  expect_dims_error(op, "", "NAME=VALUE");
  expect_dims_error(op, "M=99999999999999999999,N=1,K=1", "integer");
  expect_dims_error(op, "M=4294967296,N=1,K=1", "larger");
  ck_assert_int_eq(dims[0], 1); /* failures leave dims alone */
  int64_t tshape[MFX_MAX_DIMS];
  ck_assert_int_eq(mfx_op_parse_dims(op, "M=2,N=3,K=5", dims), MFX_OK);
  mfx_op_tensor_shape(op, &op->inputs[1], dims, tshape); /* W: [N, K] */
  ck_assert(tshape[0] == 3 && tshape[1] == 5);
}
END_TEST

START_TEST(test_configs) {
  const mfx_op *op = mfx_op_find("linear");
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  ck_assert_int_eq(cfg.n, op->n_knobs);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), op->knobs[0].def);
  ck_assert_int_eq(mfx_config_get(&cfg, "nonesuch"), -1);
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_m", 2), MFX_OK);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 2);
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_z", 2), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "unknown knob \"tile_z\""));
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_m", 3), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "tile_m=3 is not one of its choices"));
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 2);

  ck_assert_int_eq(mfx_config_parse_json(op, "{\"tile_m\": 4, \"vec\": 0}", &cfg), MFX_OK);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 4);
  ck_assert_int_eq(mfx_config_get(&cfg, "vec"), 0);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_n"), op->knobs[1].def); /* others: defaults */
  char json[512];
  mfx_config_to_json(&cfg, json, sizeof json);
  mfx_config back;
  ck_assert_int_eq(mfx_config_parse_json(op, json, &back), MFX_OK);
  ck_assert_int_eq(back.n, cfg.n);
  for (int i = 0; i < cfg.n; i++)
    ck_assert_int_eq(mfx_config_get(&back, cfg.names[i]), cfg.values[i]);
  char tiny[8];
  mfx_config_to_json(&cfg, tiny, sizeof tiny); /* truncates, stays a C string */
  ck_assert_int_lt((int)strlen(tiny), 8);

  const char *bad[][2] = {
    {"{\"tile_m\": 4", "malformed JSON"},
    {"[1, 2]", "expected a JSON object"},
    {"{\"tile_m\": \"4\"}", "must be an integer"},
    {"{\"tile_m\": 1.5}", "must be an integer"},
    {"{\"tile_m\": 3}", "not one of its choices"},
    {"{\"bogus\": 1}", "unknown knob"},
    {"{\"vec\": 1, \"vec\": 0}", "given twice"},
    {"{} trailing", "malformed JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mfx_config keep = cfg;
    ck_assert_msg(mfx_config_parse_json(op, bad[i][0], &cfg) == MFX_ERR_INVALID, "%s accepted",
                  bad[i][0]);
    ck_assert_msg(strstr(mfx_last_error(), bad[i][1]) != NULL, "%s: message \"%s\"", bad[i][0],
                  mfx_last_error());
    ck_assert_mem_eq(&keep, &cfg, sizeof cfg); /* a failed parse changes nothing */
  }
}
END_TEST

START_TEST(test_compare) {
  mfx_array a, b;
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 1, (int64_t[]){4}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_F32, 1, (int64_t[]){4}), MFX_OK);
  float *x = a.data, *y = b.data;
  for (int i = 0; i < 4; i++) x[i] = y[i] = (float)(i + 1) * 0.5f; /* max |ref| = 2 */
  mfx_compare c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(c.ok && c.max_abs_err == 0.0);
  x[2] += 1e-4f; /* rel 5e-5 */
  c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(c.ok);
  ck_assert_int_eq(c.worst_index, 2);
  x[1] += 1e-3f; /* rel 5e-4 */
  c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 1);
  ck_assert_double_eq_tol(c.max_rel_err, 5e-4, 1e-6);
  x[1] = NAN;
  ck_assert(!mfx_compare_arrays(&a, &b, TOL).ok);
  ck_assert(!mfx_compare_arrays(&a, &b, INFINITY).ok); /* NaN is never within tolerance */
  mfx_array_free(&a);
  mfx_array_free(&b);

  ck_assert_int_eq(mfx_array_create(&a, MFX_I32, 2, (int64_t[]){2, 2}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_I32, 2, (int64_t[]){2, 2}), MFX_OK);
  ck_assert(mfx_compare_arrays(&a, &b, 0.0).ok);
  ((int32_t *)a.data)[3] = 1; /* integers are exact whatever the tolerance */
  c = mfx_compare_arrays(&a, &b, 1.0);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 3);
  /* With an integer slack (GPU results): within it is ok, past it is not. */
  c = mfx_compare_arrays_int(&a, &b, 0.0, 1);
  ck_assert(c.ok);
  ck_assert(c.max_abs_err == 1.0 && c.worst_index == 3);
  ((int32_t *)a.data)[0] = -2;
  ((int32_t *)b.data)[1] = 5;
  c = mfx_compare_arrays_int(&a, &b, 0.0, 1);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 1); /* the farthest, 5 */
  ck_assert(c.max_abs_err == 5.0 && isinf(c.max_rel_err));
  ck_assert(mfx_compare_arrays_int(&a, &b, 0.0, 5).ok);
  ck_assert(!mfx_compare_arrays_int(&a, &b, 0.0, 4).ok);
  ck_assert(!mfx_compare_arrays(&a, &b, 0.0).ok);
  ck_assert(!mfx_compare_arrays_int(&a, &b, 0.0, -1).ok); /* a negative slack is refused */
  ((int32_t *)a.data)[2] = INT32_MIN; /* distances past INT32_MAX are exact */
  ((int32_t *)b.data)[2] = INT32_MAX;
  c = mfx_compare_arrays_int(&a, &b, 0.0, 1);
  ck_assert(!c.ok && c.max_abs_err == 4294967295.0 && c.worst_index == 2);
  mfx_array_free(&b);
  ck_assert_int_eq(mfx_array_create(&b, MFX_I32, 2, (int64_t[]){4, 1}), MFX_OK);
  ck_assert(!mfx_compare_arrays(&a, &b, 1.0).ok); /* shapes differ */
  ck_assert(!mfx_compare_arrays_int(&a, &b, 1.0, 100).ok);
  mfx_array_free(&a);
  mfx_array_free(&b);
  /* u64 extremes: the distance is not lost in a double or a signed type. */
  ck_assert_int_eq(mfx_array_create(&a, MFX_U64, 1, (int64_t[]){1}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_U64, 1, (int64_t[]){1}), MFX_OK);
  ((uint64_t *)a.data)[0] = UINT64_MAX;
  ((uint64_t *)b.data)[0] = UINT64_MAX - 1;
  ck_assert(mfx_compare_arrays_int(&a, &b, 0.0, 1).ok);
  ck_assert(!mfx_compare_arrays(&a, &b, 0.0).ok);
  ((uint64_t *)b.data)[0] = 0;
  ck_assert(!mfx_compare_arrays_int(&a, &b, 0.0, INT64_MAX).ok);
  mfx_array_free(&a);
  mfx_array_free(&b);
  /* f32 outputs ignore the integer slack. */
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 1, (int64_t[]){1}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_F32, 1, (int64_t[]){1}), MFX_OK);
  ((float *)a.data)[0] = 1.5f;
  ((float *)b.data)[0] = 1.0f;
  ck_assert(!mfx_compare_arrays_int(&a, &b, 1e-4, 1000).ok);
  mfx_array_free(&a);
  mfx_array_free(&b);
}
END_TEST

START_TEST(test_compile_errors) {
  const mfx_op *op = mfx_op_find("linear");
  mfx_op_kernel k;
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  snprintf(cfg.names[0], sizeof cfg.names[0], "tile_q");
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 2, 2}, &cfg, &k), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "tile_q"));
  mfx_config_default(op, &cfg);
  cfg.values[0] = 5; /* tile_m=5 is not a choice */
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 2, 2}, &cfg, &k), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 0, 2}, NULL, &k), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "N=0"));
}
END_TEST

START_TEST(test_run_checks_arrays) {
  const mfx_op *op = mfx_op_find("shift_linear");
  int64_t dims[3] = {2, 3, 4};
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile(op, dims, NULL, &k) == MFX_OK, "%s", mfx_last_error());
  mfx_array in[3], out[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, out), MFX_OK);
  mfx_op_random_inputs(op, dims, 7, in);
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_OK); /* NULL env: serial */

  mfx_array wrong;
  ck_assert_int_eq(mfx_array_create(&wrong, MFX_F32, 2, (int64_t[]){3, 4}), MFX_OK);
  mfx_array keep = in[1];
  in[1] = wrong; /* S as f32 */
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: S has dtype f32, expected i8");
  in[1] = keep;
  mfx_array_free(&wrong);

  ck_assert_int_eq(mfx_array_create(&wrong, MFX_I32, 2, (int64_t[]){3, 2}), MFX_OK);
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, &wrong), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: Y has shape [3,2], expected [2,3]");
  mfx_array_free(&wrong);

  ck_assert_int_eq(mfx_array_create(&wrong, MFX_I32, 1, (int64_t[]){8}), MFX_OK);
  keep = in[0];
  in[0] = wrong; /* X with one dimension */
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: X has shape [8], expected [2,4]");
  in[0] = keep;
  mfx_array_free(&wrong);

  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&out[0]);
  mfx_op_kernel_free(&k);
  mfx_op_kernel_free(&k); /* freeing twice is harmless */
}
END_TEST

static Suite *ops_suite(void) {
  Suite *s = suite_create("ops");
  TCase *api = tcase_create("interface");
  tcase_add_test(api, test_registry);
  tcase_add_test(api, test_op_list);
  tcase_add_test(api, test_knob_views);
  tcase_add_test(api, test_parse_dims);
  tcase_add_test(api, test_configs);
  tcase_add_test(api, test_compare);
  tcase_add_test(api, test_compile_errors);
  tcase_add_test(api, test_multiplication_free);
  tcase_add_test(api, test_run_checks_arrays);
  suite_add_tcase(s, api);
  TCase *kernels = tcase_create("kernels");
  tcase_set_timeout(kernels, 600);
  tcase_add_test(kernels, test_linear_kernels);
  tcase_add_test(kernels, test_shift_linear_kernels);
  tcase_add_test(kernels, test_shift_linear_panels);
  tcase_add_test(kernels, test_linear_gelu_kernels);
  tcase_add_test(kernels, test_shift_linear_q16_gelu_kernels);
  tcase_add_test(kernels, test_shift_linear_dequantize_kernels);
  tcase_add_test(kernels, test_shift_linear16_kernels);
  tcase_add_test(kernels, test_matadd_kernels);
  tcase_add_test(kernels, test_hamming_kernels);
  tcase_add_test(kernels, test_hamming16_kernels);
  tcase_add_test(kernels, test_binary_attention_kernels);
  tcase_add_test(kernels, test_gelu_kernels);
  tcase_add_test(kernels, test_q16_quantize_kernels);
  tcase_add_test(kernels, test_q16_dequantize_kernels);
  tcase_add_test(kernels, test_q16_gelu_kernels);
  tcase_add_test(kernels, test_gather_rows_kernels);
  tcase_add_test(kernels, test_combine_rows_kernels);
  tcase_add_test(kernels, test_row_index_minus_one_is_never_read);
  tcase_add_test(kernels, test_elementwise_equal_the_layer_host_functions);
  suite_add_tcase(s, kernels);
  return s;
}

int main(void) {
  return check_run_suite(ops_suite());
}
