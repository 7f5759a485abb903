/* The tensor-expression text form: every op's TE prints, parses back and
 * prints the same; a parsed kernel runs and matches plain C; malformed text
 * fails with file:line:col and what was expected. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"

static char *te_text(const mfx_schedule *s) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  mfx_print_te(f, s);
  fclose(f);
  return buf;
}

START_TEST(every_op_round_trips) {
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    int64_t dims[MFX_OP_MAX_DIMS];
    for (int d = 0; d < op->n_dims; d++) dims[d] = 3 + 2 * d;
    mfx_config cfg;
    mfx_config_default(op, &cfg);
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s, *back;
    ck_assert_msg(op->build(a, dims, &cfg, &s) == MFX_OK, "%s: %s", op->name, mfx_last_error());
    char *text = te_text(s);
    ck_assert_msg(mfx_te_parse(a, text, op->name, &back) == MFX_OK, "%s: %s\n%s", op->name,
                  mfx_last_error(), text);
    char *again = te_text(back);
    ck_assert_str_eq(again, text);
    ck_assert_int_eq(back->n_inputs, op->n_inputs);
    free(text);
    free(again);
    mfx_arena_destroy(a);
  }
}
END_TEST

static const char *MATMUL_TEXT =
    "# Y = relu(X) . W^T, with a comment and a statement over two lines\n"
    "placeholder X: f32[5, 7]\n"
    "placeholder W: f32[3, 7]\n"
    "compute R: f32[5, 7] (a, b) = max(X[a, b], 0)\n"
    "compute Y: f32[5, 3] (i, j) = sum(k < 7:\n"
    "    R[i, k] * W[j, k] + 0.5f * -1)\n";

START_TEST(parsed_kernel_runs) {
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s;
  ck_assert_msg(mfx_te_parse(a, MATMUL_TEXT, "mm.te", &s) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(s->n_inputs, 2);
  ck_assert_int_eq(s->n_outputs, 1);
  ck_assert_str_eq(s->outputs[0]->buf->name, "Y");
  mfx_func *fn;
  mfx_jit_kernel *jit;
  ck_assert_int_eq(mfx_lower(s, "mm", &fn), MFX_OK);
  ck_assert_msg(mfx_jit_compile(fn, &jit) == MFX_OK, "%s", mfx_last_error());
  float X[35], W[21], Y[15];
  for (int i = 0; i < 35; i++) X[i] = (float)(i % 9) - 4;
  for (int i = 0; i < 21; i++) W[i] = (float)(i % 5) - 2;
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)((void *[]){X, W, Y}, &env), 0);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 3; j++) {
      float want = 0;
      for (int k = 0; k < 7; k++) want += (X[i * 7 + k] > 0 ? X[i * 7 + k] : 0) * W[j * 7 + k] - 0.5f;
      ck_assert_float_eq_tol(Y[i * 3 + j], want, 1e-5);
    }
  mfx_jit_free(jit);
  mfx_arena_destroy(a);
}
END_TEST

/* erf and round print, parse back and print the same, and run. */
START_TEST(erf_and_round_round_trip) {
  static const char *text = "placeholder X: f32[6]\n"
                            "compute Y: f32[6] (i) = (erf(X[i]) + round((X[i] * 2.5f)))\n";
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s;
  ck_assert_msg(mfx_te_parse(a, text, "er.te", &s) == MFX_OK, "%s", mfx_last_error());
  char *again = te_text(s);
  ck_assert_ptr_nonnull(strstr(again, "erf(X[i])"));
  ck_assert_ptr_nonnull(strstr(again, "round((X[i] * 2.5f))"));
  mfx_schedule *back;
  ck_assert_msg(mfx_te_parse(a, again, "again.te", &back) == MFX_OK, "%s", mfx_last_error());
  char *third = te_text(back);
  ck_assert_str_eq(third, again);
  mfx_func *fn;
  mfx_jit_kernel *jit;
  ck_assert_int_eq(mfx_lower(s, "er", &fn), MFX_OK);
  ck_assert_msg(mfx_jit_compile(fn, &jit) == MFX_OK, "%s", mfx_last_error());
  float X[6] = {0.2f, 0.6f, -0.2f, 1.0f, -3.0f, 0.0f}, Y[6];
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)((void *[]){X, Y}, &env), 0);
  for (int i = 0; i < 6; i++) /* 0.5, 1.5, -0.5, 2.5, -7.5: ties go to even */
    ck_assert_float_eq(Y[i], erff(X[i]) + rintf(X[i] * 2.5f));
  ck_assert_float_eq(rintf(0.6f * 2.5f), 2.0f);
  mfx_jit_free(jit);
  free(again);
  free(third);
  mfx_arena_destroy(a);
}
END_TEST

static const struct { const char *text, *message; } BAD[] = {
    {"placeholder X: f33[4]\n", "1:16: unknown dtype 'f33'"},
    {"placeholder X: f32[4\n", "expected ']'"},
    {"placeholder X: f32[0]\n", "dimensions must be positive"},
    {"placeholder X: f32[4]\nplaceholder X: f32[4]\n", "2:13: tensor 'X' is defined twice"},
    {"compute Y: f32[4] (i) = Z[i]\n", "unknown name 'Z'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[j]\n", "2:27: unknown name 'j'"},
    {"placeholder X: f32[4, 4]\ncompute Y: f32[4] (i) = X[i]\n", "1 indices for a rank-2 tensor"},
    {"placeholder X: i32[4]\ncompute Y: f32[4] (i) = X[i] + 1.5\n", "operand types differ"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] << 2\n", "needs integer operands"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] + sum(k < 2: X[k])\n", "unknown function 'sum'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = sum(k < 2: X[k]) + 1\n", "unexpected '+'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] X[i]\n", "unexpected 'X'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i, j) = X[i]\n", "more axes than dimensions"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = sqrt(X[i], X[i])\n", "sqrt takes 1 argument, got 2"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = frob(X[i])\n", "unknown function 'frob'"},
    {"placeholder X: f32[4]\ncompute Y: i32[4] (i) = X[i]\n", "body has type f32"},
    {"placeholder X: f32[4]\n", "no compute statement"},
    {"bogus\n", "expected 'placeholder' or 'compute'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = (X[i]\n", "expected ')'"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X\n", "tensor 'X' needs indices"},
    {"placeholder X: i32[4]\ncompute Y: i32[4] (i) = erf(X[i])\n", "erf needs an f32 operand, got i32"},
    {"placeholder X: i32[4]\ncompute Y: i32[4] (i) = round(X[i])\n", "round needs an f32 operand, got i32"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = round(X[i], 2)\n", "round takes 1 argument, got 2"},
};

START_TEST(malformed_text_is_an_error) {
  mfx_arena *a = mfx_arena_create();
  for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
    mfx_schedule *s = (mfx_schedule *)1;
    mfx_status rc = mfx_te_parse(a, BAD[i].text, "bad.te", &s);
    ck_assert_msg(rc == MFX_ERR_INVALID, "case %zu: status %d", i, rc);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(mfx_last_error(), BAD[i].message) != NULL, "case %zu: '%s' lacks '%s'", i,
                  mfx_last_error(), BAD[i].message);
    ck_assert_msg(strncmp(mfx_last_error(), "bad.te:", 7) == 0 || strstr(BAD[i].message, "no compute"),
                  "case %zu: '%s' does not say where", i, mfx_last_error());
  }
  mfx_arena_destroy(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("parse");
  TCase *tc = tcase_create("te");
  tcase_add_test(tc, every_op_round_trips);
  tcase_add_test(tc, parsed_kernel_runs);
  tcase_add_test(tc, erf_and_round_round_trip);
  tcase_add_test(tc, malformed_text_is_an_error);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
