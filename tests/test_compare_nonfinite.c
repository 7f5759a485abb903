/* --check on data with NaN or Inf: bit-identical non-finite values match
 * (NaN with NaN, an infinity with the same infinity); a NaN or infinity on
 * one side only, or infinities of opposite sign, fail at that element. */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "mfx/ops.h"
#include "check_main.h"

static void make_pair(mfx_array *a, mfx_array *b, int n) {
  ck_assert_int_eq(mfx_array_create(a, MFX_F32, 1, (int64_t[]){n}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(b, MFX_F32, 1, (int64_t[]){n}), MFX_OK);
  for (int i = 0; i < n; i++) ((float *)a->data)[i] = ((float *)b->data)[i] = (float)i + 0.5f;
}

START_TEST(test_identical_nonfinite_passes) {
  mfx_array a, b;
  make_pair(&a, &b, 5);
  float *x = a.data, *y = b.data;
  x[1] = y[1] = NAN;
  x[2] = y[2] = INFINITY;
  x[3] = y[3] = -INFINITY;
  mfx_compare c = mfx_compare_arrays(&a, &b, 1e-4);
  ck_assert(c.ok);
  ck_assert(c.max_abs_err == 0.0);
  mfx_array_free(&a);
  mfx_array_free(&b);
}
END_TEST

START_TEST(test_one_sided_nonfinite_fails) {
  mfx_array a, b;
  make_pair(&a, &b, 5);
  float *x = a.data, *y = b.data;
  x[1] = y[1] = NAN; /* matched, not the failure */
  x[3] = NAN;        /* got NaN, want finite */
  mfx_compare c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 3);
  x[3] = y[3];
  y[4] = INFINITY; /* want Inf, got finite */
  c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 4);
  x[4] = -INFINITY; /* opposite infinities */
  c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 4);
  x[4] = INFINITY;
  ck_assert(mfx_compare_arrays(&a, &b, 1e-4).ok);
  mfx_array_free(&a);
  mfx_array_free(&b);
}
END_TEST

int main(void) {
  Suite *s = suite_create("compare_nonfinite");
  TCase *t = tcase_create("compare");
  tcase_add_test(t, test_identical_nonfinite_passes);
  tcase_add_test(t, test_one_sided_nonfinite_fails);
  suite_add_tcase(s, t);
  return check_run_suite(s);
}
