/* shift_linear16 (MatShift on 16-bit lanes): the i16 block sums at their
 * bound, the per-term truncation, the GPU template through the emulation,
 * and the inputs it refuses. Random shapes and configs are in test_ops. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx/ops.h"
#include "check_main.h"

typedef struct {
  int64_t x, s, g; /* every X, S and G element */
  int alternate;   /* 1: k odd takes -g (signs alternate along k) */
} s16_fill;

static void fill(const s16_fill *f, const int64_t *dims, mfx_array *in) {
  int64_t M = dims[0], N = dims[1], K = dims[2];
  int16_t *x = in[0].data;
  int8_t *s = in[1].data, *g = in[2].data;
  for (int64_t i = 0; i < M * K; i++) x[i] = (int16_t)f->x;
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      s[n * K + k] = (int8_t)f->s;
      g[n * K + k] = (int8_t)(f->alternate && (k & 1) ? -f->g : f->g);
    }
}

/* G (X >> S) for one term, written out: floor division, sign after it. */
static int64_t term(int64_t x, int64_t s, int64_t g) {
  int64_t v = x >= 0 ? x / ((int64_t)1 << s) : -((-x + ((int64_t)1 << s) - 1) >> s);
  return g * v;
}

/* The fills at the edges of the bound: X at both ends of -8192..8191 with
 * shift 0 (every block sum at -32768 or 32764 before the count of negative
 * signs), the largest shift, signs all +1, all -1, alternating, all 0; and
 * the truncation of each term on its own: (-3 >> 1) = -2, negated 2; 1 >> 1
 * = 0 in every term (a sum shifted once would give K / 2). */
static const s16_fill edges[] = {
  {-8192, 0, 1, 0}, {-8192, 0, -1, 0}, {8191, 0, 1, 0}, {8191, 0, -1, 0},
  {-8192, 15, 1, 0}, {-8192, 15, -1, 0}, {8191, 15, -1, 0}, {-8192, 0, 1, 1},
  {8191, 0, -1, 1}, {-8192, 0, 0, 0}, {-1, 7, -1, 0}, {-3, 1, -1, 0}, {1, 1, 1, 0},
};
#define N_EDGES ((int)(sizeof edges / sizeof edges[0]))

/* Compiles the op for target under json (knobs over the defaults) once,
 * then runs it on every fill and compares each output with the reference
 * and with the value computed by hand. */
static void check_edges(const char *target, const char *json, const int64_t *dims) {
  const mfx_op *op = mfx_op_find("shift_linear16");
  ck_assert_ptr_nonnull(op);
  mfx_config cfg;
  ck_assert_int_eq(mfx_config_parse_json_for(op, target, json, &cfg), MFX_OK);
  mfx_op_kernel k;
  mfx_status st = mfx_op_compile_for(op, target, dims, &cfg, &k);
  ck_assert_msg(st == MFX_OK, "%s %s: %s", target, json, mfx_last_error());
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  mfx_array in[3], got[1], want[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  for (int e = 0; e < N_EDGES; e++) {
    const s16_fill *f = &edges[e];
    fill(f, dims, in);
    ck_assert_int_eq(mfx_op_check_inputs("shift_linear16", dims, 3, in, "test"), MFX_OK);
    int64_t by_hand = 0;
    for (int64_t kk = 0; kk < dims[2]; kk++)
      by_hand += term(f->x, f->s, f->alternate && (kk & 1) ? -f->g : f->g);
    op->reference(dims, in, want);
    memset(got[0].data, 0x7f, (size_t)mfx_array_numel(&got[0]) * sizeof(int32_t));
    ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, got), MFX_OK);
    const int32_t *y = got[0].data, *r = want[0].data;
    for (int64_t i = 0; i < mfx_array_numel(&got[0]); i++) {
      ck_assert_msg(r[i] == by_hand, "reference %d, by hand %lld (x %lld s %lld g %lld K %lld)",
                    r[i], (long long)by_hand, (long long)f->x, (long long)f->s,
                    (long long)f->g, (long long)dims[2]);
      ck_assert_msg(y[i] == by_hand,
                    "%s %s: Y[%lld] = %d, expected %lld (x %lld s %lld g %lld alt %d, K %lld)",
                    target, json, (long long)i, y[i], (long long)by_hand, (long long)f->x,
                    (long long)f->s, (long long)f->g, f->alternate, (long long)dims[2]);
    }
  }
  mfx_pool_destroy(pool);
  mfx_op_kernel_free(&k);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&got[0]);
  mfx_array_free(&want[0]);
}

/* CPU: K a whole number of blocks, one past, and many blocks; N past one
 * panel of 32 columns; tiles and splits of the reduction. */
START_TEST(cpu_block_sums_at_their_bound) {
  static const int64_t shapes[][3] = {{3, 37, 16}, {2, 33, 17}, {9, 5, 66}, {1, 70, 300}};
  static const char *configs[] = {"{}", "{\"tile_m\":6,\"tile_n\":64,\"tile_k\":4}",
                                  "{\"tile_m\":1,\"tile_n\":16,\"tile_k\":16}",
                                  "{\"tile_m\":2,\"cols_outer\":0,\"tile_k\":64}",
                                  "{\"vec\":0,\"unroll\":0,\"parallel\":0}"};
  for (int s = 0; s < 4; s++)
    for (int c = 0; c < 5; c++)
      check_edges("cpu", configs[c], shapes[s]);
}
END_TEST

/* The GPU template (the same arithmetic) through the compiler's emulation. */
START_TEST(gpu_template_block_sums_at_their_bound) {
  static const int64_t shapes[][3] = {{3, 37, 16}, {5, 17, 33}};
  static const char *configs[] = {"{}",
                                  "{\"shared\":0,\"block_k\":2,\"block_m\":16,\"thread_m\":1}"};
  for (int s = 0; s < 2; s++)
    for (int c = 0; c < 2; c++)
      check_edges("emulate", configs[c], shapes[s]);
}
END_TEST

/* Random data on shapes that divide no tile, through the GPU template. */
START_TEST(gpu_template_matches_the_reference) {
  const mfx_op *op = mfx_op_find("shift_linear16");
  static const int64_t shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {33, 47, 37}, {20, 70, 100}};
  for (int s = 0; s < 4; s++) {
    mfx_array in[3], got[1], want[1];
    ck_assert_int_eq(mfx_op_alloc_inputs(op, shapes[s], in), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, shapes[s], got), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, shapes[s], want), MFX_OK);
    mfx_op_random_inputs(op, shapes[s], (uint64_t)s + 11, in);
    op->reference(shapes[s], in, want);
    mfx_op_kernel k;
    ck_assert_msg(mfx_op_compile_for(op, "emulate", shapes[s], NULL, &k) == MFX_OK, "%s",
                  mfx_last_error());
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, NULL);
    ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, got), MFX_OK);
    mfx_compare c = mfx_compare_arrays(&got[0], &want[0], 0.0);
    ck_assert_msg(c.ok, "shape %d: max_abs_err %g at %lld", s, c.max_abs_err,
                  (long long)c.worst_index);
    mfx_op_kernel_free(&k);
    for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
    mfx_array_free(&got[0]);
    mfx_array_free(&want[0]);
  }
}
END_TEST

static void expect_refused(const mfx_array *in, const char *fragment) {
  mfx_clear_error();
  ck_assert_int_eq(mfx_op_check_inputs("shift_linear16", (int64_t[]){2, 3, 4}, 3, in, "t"),
                   MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), fragment) != NULL, "'%s' lacks '%s'",
                mfx_last_error(), fragment);
}

/* X outside -8192..8191 (its i16 block sums could overflow), shifts outside
 * 0..15, signs outside -1..1: refused before any run, naming the element. */
START_TEST(inputs_out_of_range_are_refused) {
  const mfx_op *op = mfx_op_find("shift_linear16");
  int64_t dims[3] = {2, 3, 4};
  mfx_array in[3];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  s16_fill ok = {8191, 15, -1, 0};
  fill(&ok, dims, in);
  ck_assert_int_eq(mfx_op_check_inputs("shift_linear16", dims, 3, in, "t"), MFX_OK);
  int16_t *x = in[0].data;
  int8_t *s = in[1].data, *g = in[2].data;
  x[5] = 8192;
  expect_refused(in, "X[1, 1] = 8192 is outside -8192..8191");
  x[5] = -8193;
  expect_refused(in, "X[1, 1] = -8193 is outside -8192..8191");
  x[5] = -8192;
  s[2] = 16;
  expect_refused(in, "S[0, 2] = 16 is outside 0..15");
  s[2] = -1;
  expect_refused(in, "S[0, 2] = -1 is outside 0..15");
  s[2] = 0;
  g[11] = 2;
  expect_refused(in, "G[2, 3] = 2 is outside -1..1");
  g[11] = -2;
  expect_refused(in, "G[2, 3] = -2 is outside -1..1");
  g[11] = 0;
  ck_assert_int_eq(mfx_op_check_inputs("shift_linear16", dims, 3, in, "t"), MFX_OK);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
}
END_TEST

/* A K whose exact sum could pass i32 is refused by both templates. */
START_TEST(k_past_the_bound_is_refused) {
  const mfx_op *op = mfx_op_find("shift_linear16");
  int64_t dims[3] = {1, 1, (int64_t)1 << 18};
  for (int gpu = 0; gpu < 2; gpu++) {
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s = NULL;
    mfx_clear_error();
    ck_assert_int_eq(mfx_op_build_for(op, gpu ? "cuda:sm_90" : "cpu", a, dims, NULL, &s),
                     MFX_ERR_INVALID);
    ck_assert_msg(strstr(mfx_last_error(), "K = 262144 is over 262143") != NULL, "%s",
                  mfx_last_error());
    mfx_arena_destroy(a);
  }
}
END_TEST

static Suite *shift16_suite(void) {
  Suite *s = suite_create("shift_linear16");
  TCase *t = tcase_create("shift_linear16");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, cpu_block_sums_at_their_bound);
  tcase_add_test(t, gpu_template_block_sums_at_their_bound);
  tcase_add_test(t, gpu_template_matches_the_reference);
  tcase_add_test(t, inputs_out_of_range_are_refused);
  tcase_add_test(t, k_past_the_bound_is_refused);
  suite_add_tcase(s, t);
  return s;
}

int main(void) { return check_run_suite(shift16_suite()); }
