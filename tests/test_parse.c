/* The tensor-expression text form: every op's TE prints, parses back and
 * prints the same; a parsed kernel runs and matches plain C; malformed text
 * fails with file:line:col and what was expected. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"
#include "check_main.h"

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
    /* Loads that can leave their tensor, divisions that can divide by 0. */
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i + 100]\n",
     "2:26: load X: index 0, (i + 100), ranges over [100, 115] for i < 16, outside dimension 0 of X, [0, 16)"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i - 1]\n", "ranges over [-1, 14]"},
    {"placeholder X: f32[4, 6]\ncompute Y: f32[4] (i) = sum(k < 7: X[i, k])\n",
     "2:36: load X: index 1, k, ranges over [0, 6] for k < 7, outside dimension 1 of X, [0, 6)"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i / 0]\n", "2:30: integer division by the constant 0"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i % 0]\n", "2:30: integer modulo by the constant 0"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[15 / i]\n", "division by i, which can be 0 (it ranges over [0, 15] for i < 16)"},
    {"placeholder X: i32[16]\ncompute Y: i32[16] (i) = X[i] % (X[i] | 1)\n", "modulo by (X[i] | i32(1)), which can be 0"},
    {"placeholder X: i32[16]\ncompute Y: i32[16] (i) = X[i] / -1\n", "can be -1 while the dividend can be the smallest i32"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[select(i < 15, i + 1, 15)]\n", "ranges over [1, 16]"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i32(i) * 2147483647]\n", "ranges over [-2147483648, 2147483647]"},
    {"placeholder X: f32[16]\ncompute Y: f32[16] (i) = X[i * 4611686018427387904]\n", "ranges over [-9223372036854775808, 9223372036854775807]"},
    /* Names, literals and shapes that used to be truncated or clamped. */
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = "
     "X_234567890123456789012345678901234567890123456789012345678901234[i]\n",
     "2:25: name 'X_234567890123456789...' is 65 characters long (at most 63)"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] * 1e999\n", "2:32: float literal 1e999 is out of range"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] * 1e39\n", "float literal 1e39 is out of range"},
    {"placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i] * -1e39f\n", "2:33: float literal 1e39 is out of range"},
    {"placeholder X: i64[4]\ncompute Y: i64[4] (i) = X[i] + 9223372036854775808\n", "integer literal 9223372036854775808 is out of range"},
    {"placeholder X: f32[99999999999999999999]\n", "1:20: integer literal 99999999999999999999 is out of range"},
    {"placeholder X: f32[3037000500, 3037000500]\n", "tensor X: too many elements"},
    {"placeholder X: u8[1099511627777]\n", "tensor X: too many elements"},
    {"placeholder X: f32[4, 4]\ncompute Y: f32[4, 4] (i, i) = X[i, i]\n", "2:26: axis 'i' is defined twice"},
    /* Found by fuzz_te_parse: the conversion to int64 was undefined. */
    {"compute Y: i32[4] (i) = inf\n", "compute Y: constant body inf does not fit i32"},
    {"compute Y: i32[4] (i) = -1e30\n", "compute Y: constant body -1e+30 does not fit i32"},
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

/* Text that is deep without being long per line, in every shape that used
 * to overflow the stack (the parser's recursion, or the walkers after it). */
static char *append(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return p + n;
}

static char *repeated(const char *head, const char *unit, int n, const char *mid, const char *close) {
  size_t size = strlen(head) + (strlen(unit) + strlen(close)) * (size_t)n + strlen(mid) + 2;
  char *text = malloc(size);
  if (!text) abort();
  char *p = append(text, head);
  for (int i = 0; i < n; i++) p = append(p, unit);
  p = append(p, mid);
  for (int i = 0; i < n; i++) p = append(p, close);
  strcpy(p, "\n");
  return text;
}

#define DEEP_HEAD "placeholder X: f32[16]\ncompute Y: f32[16] (i) = "

START_TEST(deep_text_is_an_error) {
  char *texts[] = {repeated(DEEP_HEAD, "(", 8000, "X[i]", ")"),
                   repeated(DEEP_HEAD, "-", 20000, "X[i]", ""),
                   repeated(DEEP_HEAD "X[i]", " + X[i]", 100000, "", ""),
                   repeated(DEEP_HEAD, "exp(", 5000, "X[i]", ")"),
                   repeated(DEEP_HEAD "X[", "i + ", 5000, "0", "]"),
                   repeated(DEEP_HEAD, "X[", 5000, "i", "]")};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s = (mfx_schedule *)1;
    ck_assert_int_eq(mfx_te_parse(a, texts[i], "deep.te", &s), MFX_ERR_INVALID);
    ck_assert_ptr_null(s);
    ck_assert_msg(strncmp(mfx_last_error(), "deep.te:2:", 10) == 0 &&
                      strstr(mfx_last_error(), "256 levels deep (the limit"),
                  "case %zu: %s", i, mfx_last_error());
    mfx_arena_destroy(a);
    free(texts[i]);
  }
}
END_TEST

/* Just inside every limit: accepted, and the kernel lowers. */
START_TEST(text_at_the_limits_is_accepted) {
  char *texts[] = {repeated(DEEP_HEAD, "(", 200, "X[i]", ")"),
                   repeated(DEEP_HEAD "X[i]", " + X[i]", 200, "", ""),
                   repeated(DEEP_HEAD, "-", 200, "X[i]", "")};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s;
    mfx_func *fn;
    ck_assert_msg(mfx_te_parse(a, texts[i], "ok.te", &s) == MFX_OK, "case %zu: %s", i,
                  mfx_last_error());
    ck_assert_msg(mfx_lower(s, "ok", &fn) == MFX_OK, "case %zu: %s", i, mfx_last_error());
    mfx_arena_destroy(a);
    free(texts[i]);
  }
  static const char *safe =
      "placeholder X: f32[16]\n"
      "placeholder idx: i32[4]\n"
      "placeholder N_2345678901234567890123456789012345678901234567890123456789012: f32[4, 3]\n"
      "compute Y: f32[16] (i) = X[15 - i] + X[i / 2] + X[(i + 3) % 16] + X[min(i + 1, 15)]"
      " + X[i >> 1] + X[i & 7] + X[(i * 3) % 16] + X[abs(i - 15)] + X[15 - i % 4 * 4]\n"
      "compute G: f32[4, 3] (m, d) = X[idx[m]] + N_2345678901234567890123456789012345678901234567890123456789012[m, d]"
      " * 3.4e38 + f32(idx[m] / 3 + idx[m] % (i32(m) + 1))\n";
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s;
  ck_assert_msg(mfx_te_parse(a, safe, "safe.te", &s) == MFX_OK, "%s", mfx_last_error());
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
  tcase_add_test(tc, deep_text_is_an_error);
  tcase_add_test(tc, text_at_the_limits_is_accepted);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
