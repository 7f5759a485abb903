/* linear's tensor-core form (GPU knob mma=1: mma.sync m16n8k8 TF32), without
 * a GPU.
 *
 * Results: the GPU emulation (the MMA statement run per lane with TF32
 * rounding) against a double-precision reference on shapes that divide no
 * tile and on ShiftAddViT's MLP shapes scaled down, within the TF32 bound
 *   |Y - Y_exact| <= (2^-10 + K 2^-23) sum_k |X[m,k]| |W[n,k]|
 * (each input rounded to 10 mantissa bits, relative error <= 2^-11, so a
 * product is off by <= 2^-10 + 2^-22 of its size; the f32 additions add at
 * most K units of 2^-24 of the running |sum|); and the rounding itself:
 * ties go away from zero (cvt.rna), values below half a unit go down.
 *
 * PTX: mma.sync and cvt.rna.tf32.f32 in it, ptxas -v for sm_80 and sm_90
 * accepts it with no spills and no stack frame. Errors: mma=1 below sm_80,
 * tiles that are not whole fragments, staging over 48 KiB. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_linear_harness.h"
#include "mfx/compiler.h"
#include "mfx/ops.h"
#include "ptxas_check.h"
#include "check_main.h"

typedef struct {
  int64_t dims[3];
} shape;

/* 37x45x29 divides no tile; the ShiftAddViT MLP shapes (3136x512x64,
 * 3136x64x512, 784x1024x128, 784x128x1024) with M and N scaled down by 8. */
static const shape shapes[] = {
    {{1, 1, 1}}, {{37, 45, 29}}, {{33, 17, 65}}, {{130, 70, 40}},
    {{392, 64, 64}}, {{392, 8, 512}}, {{98, 128, 128}}, {{98, 16, 1024}},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof *shapes))

static const char *const configs[] = {
    "{\"mma\":1}",
    "{\"mma\":1,\"block_m\":32,\"block_n\":16,\"block_k\":8}",
    "{\"mma\":1,\"block_m\":64,\"block_n\":128,\"block_k\":32}",
    "{\"mma\":1,\"block_m\":128,\"block_n\":32,\"block_k\":64}",
};
#define N_CONFIGS ((int)(sizeof configs / sizeof *configs))

/* Every element within the TF32 bound of the exact product; returns the
 * largest error relative to its bound. */
static double check_bound(const int64_t *dims, const mfx_array *in, const mfx_array *out,
                          const char *what) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  const float *X = in[0].data, *W = in[1].data, *Y = out[0].data;
  double worst = 0, unit = ldexp(1.0, -10) + (double)K * ldexp(1.0, -23);
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double exact = 0, size = 0;
      for (int64_t k = 0; k < K; k++) {
        exact += (double)X[m * K + k] * W[n * K + k];
        size += fabs((double)X[m * K + k] * W[n * K + k]);
      }
      double err = fabs((double)Y[m * N + n] - exact), bound = unit * size + 1e-30;
      ck_assert_msg(err <= bound, "%s: Y[%lld,%lld] = %.9g, exact %.9g: error %.3g over the TF32 "
                    "bound %.3g", what, (long long)m, (long long)n, Y[m * N + n], exact, err,
                    bound);
      if (err / bound > worst) worst = err / bound;
    }
  return worst;
}

START_TEST(mma_matches_reference_within_tf32_bound) {
  const mfx_op *op = glh_linear_op();
  const int64_t *dims = shapes[_i].dims;
  /* The sanitizer tree (MFX_TEST_QUICK) looks for memory errors on the
   * first four shapes (three divide no tile); the release tree runs all. */
  if (getenv("MFX_TEST_QUICK") != NULL && _i >= 4) return;
  double worst = 0;
  for (int j = 0; j < 2; j++) { /* two configs a shape, every config on four shapes */
    int c = (_i + j * 2) % N_CONFIGS;
    mfx_array in[2], out[1];
    ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, out), MFX_OK);
    mfx_op_random_inputs(op, dims, (uint64_t)(_i * 11 + c + 1), in);
    glh_run_emulated(dims, configs[c], in, out);
    char what[256];
    snprintf(what, sizeof what, "linear %lldx%lldx%lld %s", (long long)dims[0],
             (long long)dims[1], (long long)dims[2], configs[c]);
    double w = check_bound(dims, in, out, what);
    if (w > worst) worst = w;
    mfx_array_free(&in[0]);
    mfx_array_free(&in[1]);
    mfx_array_free(&out[0]);
  }
  fprintf(stderr, "mma %lldx%lldx%lld: largest error %.2f of the TF32 bound\n",
          (long long)dims[0], (long long)dims[1], (long long)dims[2], worst);
}
END_TEST

/* X[m, k] = x, W = 1: Y = K * tf32(x) exactly (every partial sum exact). */
static void expect_rounded(float x, float want) {
  const mfx_op *op = glh_linear_op();
  int64_t dims[3] = {37, 19, 29};
  mfx_array in[2], out[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, out), MFX_OK);
  float *X = in[0].data, *W = in[1].data;
  for (int64_t i = 0; i < mfx_array_numel(&in[0]); i++) X[i] = x;
  for (int64_t i = 0; i < mfx_array_numel(&in[1]); i++) W[i] = 1.0f;
  glh_run_emulated(dims, "{\"mma\":1,\"block_m\":32,\"block_n\":16,\"block_k\":8}", in, out);
  const float *Y = out[0].data;
  for (int64_t i = 0; i < mfx_array_numel(&out[0]); i++)
    ck_assert_msg(Y[i] == 29.0f * want, "x = %.10g: Y[%lld] = %.10g, expected 29 x %.10g",
                  (double)x, (long long)i, (double)Y[i], (double)want);
  mfx_array_free(&in[0]);
  mfx_array_free(&in[1]);
  mfx_array_free(&out[0]);
}

START_TEST(mma_rounds_inputs_to_tf32_ties_away) {
  float half = ldexpf(1.0f, -11), ulp = ldexpf(1.0f, -10); /* TF32's unit at 1 is 2^-10 */
  expect_rounded(1.0f + half, 1.0f + ulp);          /* a tie: away from zero */
  expect_rounded(-(1.0f + half), -(1.0f + ulp));    /* also for negatives */
  expect_rounded(1.0f + 3 * half, 1.0f + 2 * ulp);  /* a tie above an odd unit: still up */
  expect_rounded(1.0f + half / 2, 1.0f);            /* below half a unit: down */
  expect_rounded(1.0f + ulp, 1.0f + ulp);           /* TF32 values stay */
}
END_TEST

/* ---- split-K --------------------------------------------------------------------------- */

/* The MMAs write partial sums RP[ks, m, n] over K ranges of whole block_k
 * steps (the last one past K where the split does not divide it), the
 * split's second kernel sums them. */
typedef struct {
  int64_t dims[3];
  const char *json;
  int64_t pieces; /* expected blockIdx.z extent of the MMA kernel */
} split_case;

static const split_case split_cases[] = {
    /* K = 29: pieces of 16, the second past K */
    {{37, 45, 29}, "{\"mma\":1,\"block_m\":32,\"block_n\":16,\"block_k\":8,\"split_k\":2}", 2},
    /* K = 65 in 4 asked: pieces of 24 (17 rounded up to whole steps), so 3, 72 > 65 */
    {{33, 17, 65}, "{\"mma\":1,\"block_m\":32,\"block_n\":16,\"block_k\":8,\"split_k\":4}", 3},
    /* 64 asked, one 16-step a piece: 3 pieces of K = 40 */
    {{130, 70, 40}, "{\"mma\":1,\"block_m\":64,\"block_n\":32,\"block_k\":16,\"split_k\":64}", 3},
    /* auto: one 128x64 block, pieces of >= 128 terms */
    {{98, 16, 1024}, "{\"mma\":1}", 8},
};
#define N_SPLIT_CASES ((int)(sizeof split_cases / sizeof *split_cases))

static int64_t kernel_blocks(const mfx_gpu_kernel *k) {
  return k->grid[0] * k->grid[1] * k->grid[2];
}

START_TEST(mma_split_k_matches_reference_within_tf32_bound) {
  const split_case *c = &split_cases[_i];
  const mfx_op *op = glh_linear_op();
  /* the sanitizer tree (MFX_TEST_QUICK): the three shapes that divide no tile */
  if (getenv("MFX_TEST_QUICK") != NULL && _i >= 3) return;
  char what[256];
  snprintf(what, sizeof what, "linear %lldx%lldx%lld %s", (long long)c->dims[0],
           (long long)c->dims[1], (long long)c->dims[2], c->json);
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = glh_program(a, c->dims, c->json);
  ck_assert_msg(p->n_kernels == 2, "%s: %d kernels, expected the MMAs and the sum of pieces",
                what, p->n_kernels);
  ck_assert_msg(p->kernels[0].grid[2] == c->pieces, "%s: %lld pieces (blockIdx.z), expected %lld",
                what, (long long)p->kernels[0].grid[2], (long long)c->pieces);
  mfx_arena_destroy(a);
  mfx_array in[2], out[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, c->dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, c->dims, out), MFX_OK);
  mfx_op_random_inputs(op, c->dims, (uint64_t)(_i * 7 + 3), in);
  glh_run_emulated(c->dims, c->json, in, out);
  double w = check_bound(c->dims, in, out, what);
  fprintf(stderr, "mma split %s: largest error %.2f of the TF32 bound\n", what, w);
  mfx_array_free(&in[0]);
  mfx_array_free(&in[1]);
  mfx_array_free(&out[0]);
}
END_TEST

/* 784x128x1024 (ShiftAddViT's second MLP layer): 14 blocks of 128x64 without
 * a split; the default (split_k auto) fills the 132 SMs of an H100 with >= 100
 * blocks, and some split_k choice reaches two waves (>= 264). */
START_TEST(mma_split_k_fills_the_device) {
  static const struct {
    const char *json;
    int64_t blocks;
  } cases[] = {
      {"{\"mma\":1,\"split_k\":1}", 14},
      {"{\"mma\":1}", 112}, /* auto: 8 pieces of 128 */
      {"{\"mma\":1,\"split_k\":32}", 448},
      {"{\"mma\":1,\"block_m\":32,\"block_n\":32,\"block_k\":32,\"split_k\":4}", 400},
  };
  const int64_t dims[3] = {784, 128, 1024};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = glh_program(a, dims, cases[i].json);
    int64_t blocks = kernel_blocks(&p->kernels[0]);
    fprintf(stderr, "mma 784x128x1024 %s: %lld blocks, %d kernels\n", cases[i].json,
            (long long)blocks, p->n_kernels);
    ck_assert_msg(blocks == cases[i].blocks, "%s: %lld blocks, expected %lld", cases[i].json,
                  (long long)blocks, (long long)cases[i].blocks);
    ck_assert_int_eq(p->n_kernels, i == 0 ? 1 : 2);
    if (i == 1) ck_assert_msg(blocks >= 100, "the default launches %lld blocks", (long long)blocks);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* The template says what its results need (the tuner checks mma=1 within
 * it, test_gputune's test_emulate_tunes_checked): TF32 4e-3 of max|ref|, the
 * f32 forms (GPU and CPU configs) nothing beyond a check's own. */
START_TEST(mma_declares_its_tolerance) {
  const mfx_op *op = glh_linear_op();
  ck_assert_ptr_nonnull(op->float_tolerance);
  mfx_config cfg;
  glh_config("{\"mma\":1}", &cfg);
  ck_assert(op->float_tolerance(&cfg) == 4e-3);
  glh_config("{\"mma\":0}", &cfg);
  ck_assert(op->float_tolerance(&cfg) == 0.0);
  mfx_config_default(op, &cfg);
  ck_assert(op->float_tolerance(&cfg) == 0.0);
}
END_TEST

/* ---- PTX ----------------------------------------------------------------------------- */

/* mma.sync and TF32 rounding in the PTX, a barrier pair per k step, and
 * ptxas for sm_80 and sm_90 without spills in any kernel. */
static void check_mma_ptx(const int64_t *dims, const char *json) {
  char *ptx = glh_ptx(dims, json, "sm_80");
  char what[256];
  snprintf(what, sizeof what, "linear %lldx%lldx%lld %s", (long long)dims[0], (long long)dims[1],
           (long long)dims[2], json);
  ck_assert_msg(ptx_count(ptx, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32") > 0,
                "%s: no mma.sync in the PTX", what);
  ck_assert_msg(ptx_count(ptx, "cvt.rna.tf32.f32") > 0, "%s: inputs not rounded to TF32", what);
  int bars = ptx_count(ptx, "bar.sync"); /* LLVM may peel the last k step: 2 more */
  ck_assert_msg(bars >= 2 && bars % 2 == 0, "%s: %d bar.sync, expected a pair per k step "
                "(after the fill, after the MMAs)", what, bars);
  assemble_no_spills(ptx, "sm_80", what);
  assemble_no_spills(ptx, "sm_90", what);
  free(ptx);
}

START_TEST(mma_ptx_assembles_without_spills) {
  for (int c = 0; c < N_CONFIGS; c++) check_mma_ptx((int64_t[]){37, 45, 29}, configs[c]);
  check_mma_ptx((int64_t[]){784, 128, 1024}, "{\"mma\":1,\"split_k\":1}");
}
END_TEST

/* The split kernels: the MMAs writing partial sums (and the sum of pieces). */
START_TEST(mma_split_k_ptx_assembles_without_spills) {
  for (int c = 0; c < 2; c++) check_mma_ptx(split_cases[c].dims, split_cases[c].json);
  check_mma_ptx((int64_t[]){784, 128, 1024}, "{\"mma\":1}");
  check_mma_ptx((int64_t[]){784, 128, 1024},
                "{\"mma\":1,\"block_m\":32,\"block_n\":32,\"block_k\":32,\"split_k\":4}");
}
END_TEST

/* The default mma config (128x64 blocks of 8 warps, k steps of 16): one k
 * step is 2 x 8 MMAs a warp, fragments loaded once per 8-wide slice, two
 * values a load. */
START_TEST(mma_ptx_inner_step) {
  char *ptx = glh_ptx((int64_t[]){3136, 512, 64}, "{\"mma\":1}", "sm_90");
  int mma = ptx_count(ptx, "mma.sync.aligned"), cvt = ptx_count(ptx, "cvt.rna.tf32.f32");
  int lds = ptx_count(ptx, "ld.shared.f32"), lds2 = ptx_count(ptx, "ld.shared.v2.f32");
  assemble(ptx, "sm_90", "linear 3136x512x64 mma default");
  free(ptx);
  ck_assert_int_eq(mma, 16);
  ck_assert_int_eq(cvt, 32); /* 2 x (8 of X + 8 of W) */
  ck_assert_int_eq(lds2, 16); /* k permuted: a lane's pair (t, t + 4) in one 8-byte load */
  ck_assert_int_eq(lds, 0);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(mma_below_sm80_is_refused) {
  glh_expect_arch_refused("{\"mma\":1}", "need sm_80 or newer", NULL);
}
END_TEST

START_TEST(mma_bad_tiles_are_refused) {
  glh_expect_refused("{\"mma\":1,\"block_m\":16}", "block_m a multiple of 32");
  glh_expect_refused("{\"mma\":1,\"block_k\":4}", "block_k of 8");
  glh_expect_refused("{\"mma\":1,\"block_m\":128,\"block_n\":128,\"block_k\":64}", "48 KiB");
}
END_TEST

/* An MMA under a condition: lanes that skip it would hang the warp. */
START_TEST(mma_under_a_condition_is_refused) {
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = glh_program(a, (int64_t[]){37, 45, 29},
                                   "{\"mma\":1,\"block_m\":32,\"block_n\":16,\"block_k\":8}");
  mfx_buffer *buf[MFX_MMA_OPERANDS];
  mfx_expr *off[MFX_MMA_OPERANDS];
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    buf[i] = mfx_buffer_create(a, i == 0 ? "c" : "ab", MFX_F32, 1, (int64_t[]){256},
                               i == 0 ? MFX_SCOPE_LOCAL : MFX_SCOPE_SHARED);
    off[i] = mfx_i64(a, 0);
  }
  buf[MFX_MMA_B] = buf[MFX_MMA_A];
  mfx_var *t = mfx_var_create(a, "t", 32, 0);
  mfx_stmt *mma = mfx_stmt_mma(a, buf, off, (int64_t[]){1, 8, 8}, mfx_var_ref(a, t));
  ck_assert_ptr_nonnull(mma);
  mfx_expr *cond = mfx_binary(a, MFX_LT, mfx_var_ref(a, t), mfx_i64(a, 16));
  mfx_stmt *body = mfx_stmt_allocate(a, buf[MFX_MMA_A], mfx_stmt_for(a, t, 32, MFX_LOOP_THREAD_X,
      mfx_stmt_allocate(a, buf[MFX_MMA_C], mfx_stmt_if(a, cond, mma, NULL))));
  p->kernels[0].body = body;
  p->kernels[0].block[0] = 32;
  p->n_kernels = 1;
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_codegen_ptx(p, "sm_80", &ptx, &size), MFX_ERR_CODEGEN);
  ck_assert_msg(strstr(mfx_last_error(), "conditional"), "%s", mfx_last_error());
  /* and the builder's own checks */
  ck_assert_ptr_null(mfx_stmt_mma(a, buf, off, (int64_t[]){1, 4, 8}, mfx_var_ref(a, t)));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "stride 4"));
  mfx_arena_destroy(a);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("gpu_mma");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, mma_matches_reference_within_tf32_bound, 0, N_SHAPES);
  tcase_add_test(tc, mma_rounds_inputs_to_tf32_ties_away);
  tcase_add_loop_test(tc, mma_split_k_matches_reference_within_tf32_bound, 0, N_SPLIT_CASES);
  tcase_add_test(tc, mma_split_k_fills_the_device);
  tcase_add_test(tc, mma_declares_its_tolerance);
  tcase_add_test(tc, mma_ptx_assembles_without_spills);
  tcase_add_test(tc, mma_split_k_ptx_assembles_without_spills);
  tcase_add_test(tc, mma_ptx_inner_step);
  tcase_add_test(tc, mma_below_sm80_is_refused);
  tcase_add_test(tc, mma_bad_tiles_are_refused);
  tcase_add_test(tc, mma_under_a_condition_is_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return check_run_suite(suite()); }
