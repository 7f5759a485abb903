/* Attached buffers on the CPU: cache_read into local buffers and compute_at
 * of an elementwise producer, JIT-compiled and compared with plain C on
 * shapes that divide no tile; and the schedules they must refuse. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

typedef struct {
  mfx_arena *a;
  mfx_tensor *X, *W, *T, *Y; /* T = X * 2 (elementwise), Y = T . W^T */
  mfx_schedule *s;
  mfx_stage *st;
} matmul;

static matmul make_matmul(int64_t M, int64_t N, int64_t K) {
  matmul m = {.a = mfx_arena_create()};
  mfx_arena *a = m.a;
  m.X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){M, K});
  m.W = mfx_placeholder(a, "W", MFX_F32, 2, (int64_t[]){N, K});
  m.T = mfx_compute_begin(a, "T", MFX_F32, 2, (int64_t[]){M, K}, (const char *[]){"ti", "tk"});
  mfx_expr *ti = mfx_var_ref(a, m.T->axes[0]), *tk = mfx_var_ref(a, m.T->axes[1]);
  ck_assert_int_eq(mfx_compute_set_body(a, m.T, mfx_mul(a, mfx_tensor_load(a, m.X, 2, (mfx_expr *[]){ti, tk}),
                                                        mfx_f32(a, 2))), MFX_OK);
  m.Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  mfx_var *k = mfx_var_create(a, "k", K, 1);
  mfx_expr *i = mfx_var_ref(a, m.Y->axes[0]), *j = mfx_var_ref(a, m.Y->axes[1]), *kk = mfx_var_ref(a, k);
  mfx_expr *src = mfx_mul(a, mfx_tensor_load(a, m.T, 2, (mfx_expr *[]){i, kk}),
                          mfx_tensor_load(a, m.W, 2, (mfx_expr *[]){j, kk}));
  ck_assert_int_eq(mfx_compute_set_body(a, m.Y, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, src)), MFX_OK);
  ck_assert_int_eq(mfx_sched_create(a, 2, (mfx_tensor *[]){m.X, m.W}, 1, &m.Y, &m.s), MFX_OK);
  m.st = mfx_sched_stage(m.s, m.Y);
  return m;
}

static mfx_itervar *iv(matmul *m, const char *name) { return mfx_sched_itervar(m->st, name); }

/* i.o, j.o, k.o, i.i, k.i, j.i with tiles 3 x 4 x 5. */
static void tile(matmul *m) {
  mfx_itervar *io, *ii, *jo, *ji, *ko, *ki;
  ck_assert_int_eq(mfx_sched_tile(m->s, m->st, iv(m, "i"), iv(m, "j"), 3, 4, MFX_TAIL_GUARD, &io, &jo, &ii, &ji), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(m->s, m->st, iv(m, "k"), 5, MFX_TAIL_GUARD, &ko, &ki), MFX_OK);
  ck_assert_int_eq(mfx_sched_reorder(m->s, m->st, 6, (mfx_itervar *[]){io, jo, ko, ii, ki, ji}), MFX_OK);
  ck_assert_int_eq(mfx_sched_vectorize(m->s, m->st, ji), MFX_OK);
}

static void run_and_check(matmul *m, int64_t M, int64_t N, int64_t K) {
  mfx_func *fn;
  ck_assert_msg(mfx_lower(m->s, "mm", &fn) == MFX_OK, "lower: %s", mfx_last_error());
  mfx_jit_kernel *jit;
  ck_assert_msg(mfx_jit_compile(fn, &jit) == MFX_OK, "jit: %s", mfx_last_error());
  float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
  float *Y = malloc(sizeof(float) * M * N);
  for (int64_t i = 0; i < M * K; i++) X[i] = (float)((i * 7) % 13) - 6.0f;
  for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 5) % 11) * 0.5f - 2.0f;
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)((void *[]){X, W, Y}, &env), 0);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double want = 0;
      for (int64_t k = 0; k < K; k++) want += 2.0 * X[i * K + k] * W[j * K + k];
      ck_assert_msg(Y[i * N + j] == (float)want, "M=%lld N=%lld K=%lld: Y[%lld,%lld] = %g, want %g",
                    (long long)M, (long long)N, (long long)K, (long long)i, (long long)j,
                    Y[i * N + j], want);
    }
  free(X);
  free(W);
  free(Y);
  mfx_jit_free(jit);
}

static const int64_t SHAPES[][3] = {{1, 1, 1}, {7, 9, 11}, {6, 8, 10}, {13, 5, 17}, {3, 4, 5}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

START_TEST(cache_read_local_matches) {
  for (size_t c = 0; c < N_SHAPES; c++) {
    int64_t M = SHAPES[c][0], N = SHAPES[c][1], K = SHAPES[c][2];
    matmul m = make_matmul(M, N, K);
    tile(&m);
    ck_assert_int_eq(mfx_sched_compute_inline(m.s, mfx_sched_stage(m.s, m.T)), MFX_OK);
    ck_assert_int_eq(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_LOCAL, iv(&m, "k.o")), MFX_OK);
    ck_assert_int_eq(mfx_sched_cache_read(m.s, m.st, m.X, MFX_SCOPE_LOCAL, iv(&m, "k.o")), MFX_OK);
    ck_assert_int_eq(mfx_sched_cache_write_local(m.s, m.st, iv(&m, "j.o")), MFX_OK);
    run_and_check(&m, M, N, K);
    mfx_arena_destroy(m.a);
  }
}
END_TEST

START_TEST(compute_at_matches) {
  for (size_t c = 0; c < N_SHAPES; c++) {
    int64_t M = SHAPES[c][0], N = SHAPES[c][1], K = SHAPES[c][2];
    matmul m = make_matmul(M, N, K);
    tile(&m);
    ck_assert_int_eq(mfx_sched_compute_at(m.s, mfx_sched_stage(m.s, m.T), m.st, iv(&m, "j.o"),
                                          MFX_SCOPE_LOCAL), MFX_OK);
    run_and_check(&m, M, N, K);
    mfx_arena_destroy(m.a);
  }
}
END_TEST

static void assert_error(mfx_status got, const char *needle) {
  ck_assert_int_eq(got, MFX_ERR_SCHEDULE);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
}

START_TEST(attach_errors) {
  matmul m = make_matmul(8, 8, 8);
  tile(&m);
  mfx_func *fn;
  /* Y does not read X directly (it reads T). */
  assert_error(mfx_sched_cache_read(m.s, m.st, m.X, MFX_SCOPE_LOCAL, iv(&m, "k.o")), "does not read X");
  assert_error(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_GLOBAL, iv(&m, "k.o")), "scope must be");
  ck_assert_int_eq(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_LOCAL, iv(&m, "k.o")), MFX_OK);
  assert_error(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_LOCAL, iv(&m, "k.o")), "already attached");
  mfx_stage *t = mfx_sched_stage(m.s, m.T);
  assert_error(mfx_sched_compute_at(m.s, m.st, t, iv(&m, "j.o"), MFX_SCOPE_LOCAL), "output");
  mfx_arena_destroy(m.a);

  /* A region larger than the local limit. */
  m = make_matmul(8, 8, 5000);
  ck_assert_int_eq(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_LOCAL, iv(&m, "i")), MFX_OK);
  assert_error(mfx_lower(m.s, "mm", &fn), "4096 local elements");
  mfx_arena_destroy(m.a);

}
END_TEST

/* Fused loops make the region's base non-affine in the loops outside the
 * attachment: it is kept as an opaque term (lower_region.c), as GPU block
 * tiles need, and the kernel still computes the product. */
START_TEST(attach_below_fused_loops) {
  for (size_t c = 0; c < N_SHAPES; c++) {
    int64_t M = SHAPES[c][0], N = SHAPES[c][1], K = SHAPES[c][2];
    matmul m = make_matmul(M, N, K);
    mfx_itervar *f;
    ck_assert_int_eq(mfx_sched_fuse(m.s, m.st, iv(&m, "i"), iv(&m, "j"), &f), MFX_OK);
    ck_assert_int_eq(mfx_sched_cache_read(m.s, m.st, m.W, MFX_SCOPE_LOCAL, f), MFX_OK);
    run_and_check(&m, M, N, K);
    mfx_arena_destroy(m.a);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("attach");
  TCase *tc = tcase_create("cpu");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, cache_read_local_matches);
  tcase_add_test(tc, compute_at_matches);
  tcase_add_test(tc, attach_errors);
  tcase_add_test(tc, attach_below_fused_loops);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
