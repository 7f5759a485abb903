/* Tensor expressions built in C are held to the same limits as text ones:
 * no body deeper than the compiler's walkers allow (checked when the body is
 * set, and again at lowering, where inlining adds levels), no load that can
 * leave its tensor, no integer division that can divide by zero, no shape
 * whose size overflows, no two axes of one name. Each case used to crash,
 * or compile a kernel that reads out of bounds. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

#define HAS(msg) (strstr(mfx_last_error(), (msg)) != NULL)

static mfx_tensor *vector(mfx_arena *a, const char *name, int64_t n) {
  return mfx_placeholder(a, name, MFX_F32, 1, (int64_t[]){n});
}

static mfx_expr *at(mfx_arena *a, mfx_tensor *t, mfx_expr *i) { return mfx_tensor_load(a, t, 1, &i); }

/* x + x + ... (n terms): n - 1 levels of additions, one line of C. */
static mfx_expr *chain(mfx_arena *a, mfx_expr *x, int n) {
  mfx_expr *e = x;
  for (int i = 1; i < n; i++) e = mfx_add(a, e, x);
  return e;
}

START_TEST(deep_body_is_refused_when_set) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = vector(a, "X", 16);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){16}, NULL);
  mfx_expr *x = at(a, X, mfx_var_ref(a, Y->axes[0]));
  ck_assert_int_eq(mfx_compute_set_body(a, Y, chain(a, x, 100000)), MFX_ERR_INVALID);
  ck_assert_msg(HAS("compute Y: body is more than 256 levels deep"), "%s", mfx_last_error());
  mfx_expr *neg = x;
  for (int i = 0; i < 20000; i++) neg = mfx_unary(a, MFX_NEG, neg);
  ck_assert_int_eq(mfx_compute_set_body(a, Y, neg), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_compute_set_body(a, Y, chain(a, x, 200)), MFX_OK);
  mfx_arena_destroy(a);
}
END_TEST

/* A body stored without mfx_compute_set_body: refused by mfx_lower. */
START_TEST(deep_body_is_refused_by_lowering) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = vector(a, "X", 16);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){16}, NULL);
  mfx_expr *x = at(a, X, mfx_var_ref(a, Y->axes[0]));
  ck_assert_int_eq(mfx_compute_set_body(a, Y, x), MFX_OK);
  mfx_schedule *s;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  Y->body = chain(a, x, 100000);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(s, "deep", &fn), MFX_ERR_SCHEDULE);
  ck_assert_msg(HAS("compute Y: more than 256 levels deep (the limit)"), "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

/* Two computes 200 deep each are fine; inlining one into the other is not. */
START_TEST(inlining_past_the_depth_is_refused) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = vector(a, "X", 16);
  mfx_tensor *P = mfx_compute_begin(a, "P", MFX_F32, 1, (int64_t[]){16}, NULL);
  ck_assert_int_eq(mfx_compute_set_body(a, P, chain(a, at(a, X, mfx_var_ref(a, P->axes[0])), 200)),
                   MFX_OK);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){16}, NULL);
  mfx_expr *p = at(a, P, mfx_var_ref(a, Y->axes[0]));
  mfx_expr *body = p;
  for (int i = 1; i < 200; i++) body = mfx_add(a, p, body); /* P's load at the bottom */
  ck_assert_int_eq(mfx_compute_set_body(a, Y, body), MFX_OK);
  mfx_schedule *s;
  mfx_func *fn;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  ck_assert_msg(mfx_lower(s, "two", &fn) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  ck_assert_int_eq(mfx_sched_compute_inline(s, mfx_sched_stage(s, P)), MFX_OK);
  ck_assert_int_eq(mfx_lower(s, "one", &fn), MFX_ERR_SCHEDULE);
  ck_assert_msg(HAS("compute Y: more than 256 levels deep with its inlined producers"), "%s",
                mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

/* Y[i] = X[f(i)] over i < 16 with X of size 16. */
static mfx_status gather_with(mfx_arena *a, mfx_expr *(*index)(mfx_arena *, mfx_expr *)) {
  mfx_tensor *X = vector(a, "X", 16);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){16}, (const char *[]){"i"});
  return mfx_compute_set_body(a, Y, at(a, X, index(a, mfx_var_ref(a, Y->axes[0]))));
}

static mfx_expr *plus_one(mfx_arena *a, mfx_expr *i) { return mfx_add(a, i, mfx_i64(a, 1)); }
static mfx_expr *minus_one(mfx_arena *a, mfx_expr *i) { return mfx_sub(a, i, mfx_i64(a, 1)); }
static mfx_expr *div_zero(mfx_arena *a, mfx_expr *i) { return mfx_binary(a, MFX_DIV, i, mfx_i64(a, 0)); }
static mfx_expr *mod_zero(mfx_arena *a, mfx_expr *i) { return mfx_binary(a, MFX_MOD, i, mfx_i64(a, 0)); }
static mfx_expr *div_self(mfx_arena *a, mfx_expr *i) { return mfx_binary(a, MFX_DIV, i, i); }
static mfx_expr *reversed(mfx_arena *a, mfx_expr *i) { return mfx_sub(a, mfx_i64(a, 15), i); }
static mfx_expr *mod_four(mfx_arena *a, mfx_expr *i) {
  return mfx_binary(a, MFX_MOD, mfx_add(a, i, mfx_i64(a, 5)), mfx_i64(a, 16));
}
static mfx_expr *div_plus_one(mfx_arena *a, mfx_expr *i) {
  return mfx_binary(a, MFX_DIV, mfx_i64(a, 15), mfx_add(a, i, mfx_i64(a, 1)));
}

START_TEST(unsafe_loads_are_refused) {
  static const struct { mfx_expr *(*index)(mfx_arena *, mfx_expr *); const char *message; } BAD[] = {
      {plus_one, "compute Y: load X: index 0, (i + 1), ranges over [1, 16] for i < 16, outside "
                 "dimension 0 of X, [0, 16)"},
      {minus_one, "ranges over [-1, 14]"},
      {div_zero, "compute Y: integer division by the constant 0"},
      {mod_zero, "compute Y: integer modulo by the constant 0"},
      {div_self, "compute Y: integer division by i, which can be 0 (it ranges over [0, 15] for i < 16)"},
  };
  for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
    mfx_arena *a = mfx_arena_create();
    ck_assert_int_eq(gather_with(a, BAD[k].index), MFX_ERR_INVALID);
    ck_assert_msg(HAS(BAD[k].message), "case %zu: '%s' lacks '%s'", k, mfx_last_error(),
                  BAD[k].message);
    mfx_arena_destroy(a);
  }
  mfx_expr *(*good[])(mfx_arena *, mfx_expr *) = {reversed, mod_four, div_plus_one};
  for (size_t k = 0; k < sizeof good / sizeof good[0]; k++) {
    mfx_arena *a = mfx_arena_create();
    ck_assert_msg(gather_with(a, good[k]) == MFX_OK, "good %zu: %s", k, mfx_last_error());
    mfx_arena_destroy(a);
  }
}
END_TEST

/* X[idx[m], d]: the index is data, bounded only at run time; accepted. */
START_TEST(data_dependent_loads_are_left_to_the_runtime) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){8, 4});
  mfx_tensor *idx = mfx_placeholder(a, "idx", MFX_I32, 1, (int64_t[]){3});
  mfx_tensor *G = mfx_compute_begin(a, "G", MFX_F32, 2, (int64_t[]){3, 4},
                                    (const char *[]){"m", "d"});
  mfx_expr *m = mfx_var_ref(a, G->axes[0]), *d = mfx_var_ref(a, G->axes[1]);
  mfx_expr *row = mfx_cast(a, MFX_I64, mfx_tensor_load(a, idx, 1, &m));
  ck_assert_int_eq(mfx_compute_set_body(a, G, mfx_tensor_load(a, X, 2, (mfx_expr *[]){row, d})),
                   MFX_OK);
  /* ... but its other indices are still checked, and so are the loads in it. */
  mfx_expr *d1 = mfx_add(a, d, mfx_i64(a, 1));
  ck_assert_int_eq(mfx_compute_set_body(a, G, mfx_tensor_load(a, X, 2, (mfx_expr *[]){row, d1})),
                   MFX_ERR_INVALID);
  ck_assert_msg(HAS("load X: index 1, (d + 1), ranges over [1, 4]"), "%s", mfx_last_error());
  mfx_expr *bad = mfx_tensor_load(a, idx, 1, (mfx_expr *[]){mfx_add(a, m, mfx_i64(a, 1))});
  ck_assert_int_eq(mfx_compute_set_body(a, G, mfx_tensor_load(a, X, 2,
                                                              (mfx_expr *[]){mfx_cast(a, MFX_I64, bad), d})),
                   MFX_ERR_INVALID);
  ck_assert_msg(HAS("load idx: index 0, (m + 1), ranges over [1, 3]"), "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

START_TEST(bad_shapes_and_names_are_refused) {
  mfx_arena *a = mfx_arena_create();
  ck_assert_ptr_null(mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){3037000500, 3037000500}));
  ck_assert_msg(HAS("tensor X: too many elements"), "%s", mfx_last_error());
  ck_assert_ptr_null(mfx_placeholder(a, "X", MFX_U8, 1, (int64_t[]){((int64_t)1 << 40) + 1}));
  ck_assert_ptr_nonnull(mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){1 << 20, 1 << 20}));
  ck_assert_ptr_null(mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){4, 4},
                                       (const char *[]){"i", "i"}));
  ck_assert_msg(HAS("compute Y: axis name 'i' is used twice"), "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("te_checks");
  TCase *tc = tcase_create("te");
  tcase_add_test(tc, deep_body_is_refused_when_set);
  tcase_add_test(tc, deep_body_is_refused_by_lowering);
  tcase_add_test(tc, inlining_past_the_depth_is_refused);
  tcase_add_test(tc, unsafe_loads_are_refused);
  tcase_add_test(tc, data_dependent_loads_are_left_to_the_runtime);
  tcase_add_test(tc, bad_shapes_and_names_are_refused);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
