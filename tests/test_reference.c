/* The plain-C references, checked against tiny examples worked out by hand
 * and against properties that hold for any input. Everything else in the
 * ops tests is compared with these, so they are checked first. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"
#include "check_main.h"

/* Inputs and outputs of one op at dims, allocated, inputs copied from
 * `data` (one pointer per input, row-major, the input's dtype). */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_array in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS];
} ref_case;

static void ref_setup(ref_case *c, const char *op, const int64_t *dims) {
  c->op = mfx_op_find(op);
  ck_assert_ptr_nonnull(c->op);
  memcpy(c->dims, dims, sizeof(int64_t) * (size_t)c->op->n_dims);
  ck_assert_int_eq(mfx_op_alloc_inputs(c->op, c->dims, c->in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(c->op, c->dims, c->out), MFX_OK);
}

static void ref_set_input(ref_case *c, int i, const void *data) {
  size_t bytes = (size_t)mfx_array_numel(&c->in[i]) * mfx_dtype_size(c->in[i].dtype);
  memcpy(c->in[i].data, data, bytes);
}

static void ref_run(ref_case *c) { c->op->reference(c->dims, c->in, c->out); }

static void ref_free(ref_case *c) {
  for (int i = 0; i < c->op->n_inputs; i++) mfx_array_free(&c->in[i]);
  for (int i = 0; i < c->op->n_outputs; i++) mfx_array_free(&c->out[i]);
}

static void ref_expect_f32(const ref_case *c, const float *want, int n, double tol) {
  const float *got = c->out[0].data;
  ck_assert_int_eq(mfx_array_numel(&c->out[0]), n);
  for (int i = 0; i < n; i++)
    ck_assert_msg(fabs(got[i] - want[i]) <= tol, "%s: element %d is %.7g, expected %.7g",
                  c->op->name, i, got[i], want[i]);
}

static void ref_expect_i32(const ref_case *c, const int32_t *want, int n) {
  const int32_t *got = c->out[0].data;
  ck_assert_int_eq(mfx_array_numel(&c->out[0]), n);
  for (int i = 0; i < n; i++)
    ck_assert_msg(got[i] == want[i], "%s: element %d is %d, expected %d", c->op->name, i,
                  got[i], want[i]);
}

/* ---- hand-checked examples ------------------------------------------------- */

START_TEST(test_linear_by_hand) {
  ref_case c;
  ref_setup(&c, "linear", (int64_t[]){2, 3, 2}); /* M=2, N=3, K=2 */
  ref_set_input(&c, 0, (float[]){1, 2, 3, 4});              /* X = [[1,2],[3,4]] */
  ref_set_input(&c, 1, (float[]){1, 0, 1, -1, 0.5f, 2});    /* W = [[1,0],[1,-1],[.5,2]] */
  ref_run(&c);
  /* Y[0] = [1*1+2*0, 1*1-2*1, .5+2*2] = [1, -1, 4.5]
   * Y[1] = [3, 3-4, 1.5+8] = [3, -1, 9.5] */
  ref_expect_f32(&c, (float[]){1, -1, 4.5f, 3, -1, 9.5f}, 6, 0.0);
  ref_free(&c);
}
END_TEST

START_TEST(test_shift_linear_by_hand) {
  ref_case c;
  ref_setup(&c, "shift_linear", (int64_t[]){1, 2, 3}); /* M=1, N=2, K=3 */
  ref_set_input(&c, 0, (int32_t[]){1024, -7, 65536});
  ref_set_input(&c, 1, (int8_t[]){1, 0, 16, 10, 1, 0}); /* S */
  ref_set_input(&c, 2, (int8_t[]){1, -1, 1, -1, 1, 0}); /* G */
  ref_run(&c);
  /* Y[0] = (1024>>1) - (-7>>0) + (65536>>16) = 512 + 7 + 1 = 520
   * Y[1] = -(1024>>10) + (-7>>1) + 0 = -1 + (-4: arithmetic, rounds down) = -5 */
  ref_expect_i32(&c, (int32_t[]){520, -5}, 2);
  ref_free(&c);
}
END_TEST

START_TEST(test_shift_linear_wraps) {
  ref_case c;
  ref_setup(&c, "shift_linear", (int64_t[]){1, 2, 2});
  ref_set_input(&c, 0, (int32_t[]){INT32_MAX, INT32_MAX});
  ref_set_input(&c, 1, (int8_t[]){0, 0, 0, 0});
  ref_set_input(&c, 2, (int8_t[]){1, 1, -1, -1});
  ref_run(&c);
  /* 2 (2^31 - 1) = 2^32 - 2 wraps to -2; its negation -(2^32 - 2) wraps to 2. */
  ref_expect_i32(&c, (int32_t[]){-2, 2}, 2);
  ref_free(&c);
}
END_TEST

START_TEST(test_matadd_by_hand) {
  ref_case c;
  ref_setup(&c, "matadd", (int64_t[]){1, 1, 3, 2, 2}); /* B=H=1, N=3, D=2, C=2 */
  ref_set_input(&c, 0, (int8_t[]){1, 0, 1, 1, 0, 1}); /* Hc[n][c] = [[1,0],[1,1],[0,1]] */
  ref_set_input(&c, 1, (float[]){1, 2, 3, 4, 5, 6});  /* V[n][d] = [[1,2],[3,4],[5,6]] */
  ref_run(&c);
  /* O[c=0] = V0 + V1 = [4, 6]; O[c=1] = V1 + V2 = [8, 10] */
  ref_expect_f32(&c, (float[]){4, 6, 8, 10}, 4, 0.0);
  ref_free(&c);
}
END_TEST

START_TEST(test_matadd_batches_are_separate) {
  ref_case c;
  ref_setup(&c, "matadd", (int64_t[]){2, 1, 1, 1, 1}); /* two batches of one token */
  ref_set_input(&c, 0, (int8_t[]){1, 0});
  ref_set_input(&c, 1, (float[]){7, 9});
  ref_run(&c);
  ref_expect_f32(&c, (float[]){7, 0}, 2, 0.0); /* the second code is 0 */
  ref_free(&c);
}
END_TEST

START_TEST(test_hamming_by_hand) {
  ref_case c;
  ref_setup(&c, "hamming", (int64_t[]){1, 2, 1}); /* N=1, M=2, W=1 */
  ref_set_input(&c, 0, (uint32_t[]){0xF0F0F0F0u});
  ref_set_input(&c, 1, (uint32_t[]){0xF0F0F0F0u, 0x0F0F0F0Fu});
  ref_run(&c);
  /* identical: 32 - 0 = 32; complementary: 32 - 2*32 = -32 */
  ref_expect_i32(&c, (int32_t[]){32, -32}, 2);
  ref_free(&c);

  ref_setup(&c, "hamming", (int64_t[]){1, 1, 2}); /* two words */
  ref_set_input(&c, 0, (uint32_t[]){0x1u, 0x0u});
  ref_set_input(&c, 1, (uint32_t[]){0x3u, 0xFFFFFFFFu});
  ref_run(&c);
  /* popcounts 1 (0x1^0x3 = 0x2) + 32 = 33: 64 - 66 = -2 */
  ref_expect_i32(&c, (int32_t[]){-2}, 1);
  ref_free(&c);
}
END_TEST

START_TEST(test_binary_attention_by_hand) {
  ref_case c;
  ref_setup(&c, "binary_attention", (int64_t[]){1, 1, 2, 2, 1}); /* N=2, D=2, C=1 */
  ref_set_input(&c, 0, (int8_t[]){1, 1});           /* both tokens have code 1 */
  ref_set_input(&c, 1, (float[]){1, 0, 0, 1});      /* V = identity */
  ref_run(&c);
  /* A = V0 + V1 = [1, 1]; Hc A = [1, 1] for both tokens.
   * X0 = [0.5 + 1/pi, 1/pi] = [0.8183099, 0.3183099], |X0| = 0.8780389
   * O0 = [0.9319746, 0.3625237]; X1 = [1/pi, 0.5 + 1/pi]: O1 = [0.3625237, 0.9319746] */
  ref_expect_f32(&c, (float[]){0.9319746f, 0.3625237f, 0.3625237f, 0.9319746f}, 4, 1e-6);
  ref_free(&c);

  ref_setup(&c, "binary_attention", (int64_t[]){1, 1, 2, 2, 1});
  ref_set_input(&c, 0, (int8_t[]){1, 0});
  ref_set_input(&c, 1, (float[]){3, 0, 0, 4});
  ref_run(&c);
  /* A = [3, 0]; X0 = [1.5 + 3/pi, 0] -> [1, 0]; X1 = [0, 2] -> [0, 1] */
  ref_expect_f32(&c, (float[]){1, 0, 0, 1}, 4, 1e-6);
  ref_free(&c);
}
END_TEST

/* ---- properties on random inputs ---------------------------------------------- */

static void ref_random(ref_case *c, const char *op, const int64_t *dims, uint64_t seed) {
  ref_setup(c, op, dims);
  mfx_op_random_inputs(c->op, c->dims, seed, c->in);
}

START_TEST(test_hamming_identical_codes) {
  ref_case c;
  ref_random(&c, "hamming", (int64_t[]){5, 5, 3}, 11);
  memcpy(c.in[1].data, c.in[0].data, 5 * 3 * sizeof(uint32_t)); /* K = Q */
  ref_run(&c);
  const int32_t *S = c.out[0].data;
  for (int n = 0; n < 5; n++) {
    ck_assert_int_eq(S[n * 5 + n], 32 * 3);
    for (int m = 0; m < 5; m++) ck_assert_int_le(S[n * 5 + m], 32 * 3);
  }
  ref_free(&c);
}
END_TEST

START_TEST(test_shift_linear_unit_weights_sum) {
  ref_case c;
  ref_random(&c, "shift_linear", (int64_t[]){4, 3, 9}, 12);
  memset(c.in[1].data, 0, 3 * 9);                    /* S = 0 */
  memset(c.in[2].data, 1, 3 * 9);                    /* G = 1 */
  ref_run(&c);
  const int32_t *X = c.in[0].data, *Y = c.out[0].data;
  for (int m = 0; m < 4; m++) {
    int64_t sum = 0;
    for (int k = 0; k < 9; k++) sum += X[m * 9 + k];
    for (int n = 0; n < 3; n++) ck_assert_int_eq(Y[m * 3 + n], sum);
  }
  ref_free(&c);
}
END_TEST

START_TEST(test_binary_attention_unit_rows) {
  ref_case c;
  ref_random(&c, "binary_attention", (int64_t[]){2, 3, 7, 5, 4}, 13);
  ref_run(&c);
  const float *O = c.out[0].data;
  for (int row = 0; row < 2 * 3 * 7; row++) {
    double sq = 0.0;
    for (int d = 0; d < 5; d++) sq += (double)O[row * 5 + d] * O[row * 5 + d];
    ck_assert_double_eq_tol(sqrt(sq), 1.0, 1e-5);
  }
  ref_free(&c);
}
END_TEST

/* linear with W = identity returns X; matadd with all codes set sums V over n. */
START_TEST(test_linear_identity_and_matadd_all_ones) {
  ref_case c;
  ref_random(&c, "linear", (int64_t[]){3, 4, 4}, 14);
  float *W = c.in[1].data;
  for (int i = 0; i < 16; i++) W[i] = (i % 5 == 0) ? 1.0f : 0.0f;
  ref_run(&c);
  ck_assert_mem_eq(c.out[0].data, c.in[0].data, 12 * sizeof(float));
  ref_free(&c);

  ref_random(&c, "matadd", (int64_t[]){1, 1, 6, 3, 2}, 15);
  memset(c.in[0].data, 1, 6 * 2);
  ref_run(&c);
  const float *V = c.in[1].data, *O = c.out[0].data;
  for (int d = 0; d < 3; d++) {
    double s = 0.0;
    for (int n = 0; n < 6; n++) s += V[n * 3 + d];
    ck_assert_double_eq_tol(O[d], s, 1e-6);
    ck_assert_float_eq(O[d], O[3 + d]); /* both codes see the same sum */
  }
  ref_free(&c);
}
END_TEST

/* Random inputs stay in their documented ranges and depend on the seed. */
START_TEST(test_random_inputs_ranges) {
  ref_case a, b;
  ref_random(&a, "shift_linear", (int64_t[]){8, 8, 8}, 1);
  ref_random(&b, "shift_linear", (int64_t[]){8, 8, 8}, 2);
  const int32_t *X = a.in[0].data;
  const int8_t *S = a.in[1].data, *G = a.in[2].data;
  for (int i = 0; i < 64; i++) {
    ck_assert(X[i] >= -(1 << 20) && X[i] <= (1 << 20));
    ck_assert(S[i] >= 0 && S[i] <= 15);
    ck_assert(G[i] >= -1 && G[i] <= 1);
  }
  ck_assert(memcmp(a.in[0].data, b.in[0].data, 64 * sizeof(int32_t)) != 0);
  ref_free(&a);
  ref_free(&b);
  ref_random(&a, "linear", (int64_t[]){16, 16, 16}, 3);
  const float *F = a.in[0].data;
  for (int i = 0; i < 256; i++) ck_assert(F[i] >= -1.0f && F[i] <= 1.0f);
  ref_free(&a);
}
END_TEST

static Suite *reference_suite(void) {
  Suite *s = suite_create("reference");
  TCase *t = tcase_create("by_hand");
  tcase_add_test(t, test_linear_by_hand);
  tcase_add_test(t, test_shift_linear_by_hand);
  tcase_add_test(t, test_shift_linear_wraps);
  tcase_add_test(t, test_matadd_by_hand);
  tcase_add_test(t, test_matadd_batches_are_separate);
  tcase_add_test(t, test_hamming_by_hand);
  tcase_add_test(t, test_binary_attention_by_hand);
  suite_add_tcase(s, t);
  TCase *p = tcase_create("properties");
  tcase_add_test(p, test_hamming_identical_codes);
  tcase_add_test(p, test_shift_linear_unit_weights_sum);
  tcase_add_test(p, test_binary_attention_unit_rows);
  tcase_add_test(p, test_linear_identity_and_matadd_all_ones);
  tcase_add_test(p, test_random_inputs_ranges);
  suite_add_tcase(s, p);
  return s;
}

int main(void) {
  return check_run_suite(reference_suite());
}
