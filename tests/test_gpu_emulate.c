/* GPU schedules checked on the CPU: a shared-memory tiled matmul with
 * register tiles and a two-kernel program with a workspace, bound to
 * blocks and threads, run through the GPU emulation and compared with plain
 * C on shapes that divide no tile. A program whose phases were not split at
 * barriers would read shared tiles other threads had not filled yet. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

typedef struct {
  mfx_arena *a;
  mfx_tensor *X, *W, *Y, *Z; /* Y = X . W^T, Z = Y + 1 (a second kernel) */
  mfx_schedule *s;
} program;

static program make(int64_t M, int64_t N, int64_t K, int two_stages) {
  program p = {.a = mfx_arena_create()};
  mfx_arena *a = p.a;
  p.X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){M, K});
  p.W = mfx_placeholder(a, "W", MFX_F32, 2, (int64_t[]){N, K});
  p.Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  mfx_var *k = mfx_var_create(a, "k", K, 1);
  mfx_expr *i = mfx_var_ref(a, p.Y->axes[0]), *j = mfx_var_ref(a, p.Y->axes[1]), *kk = mfx_var_ref(a, k);
  mfx_expr *src = mfx_mul(a, mfx_tensor_load(a, p.X, 2, (mfx_expr *[]){i, kk}),
                          mfx_tensor_load(a, p.W, 2, (mfx_expr *[]){j, kk}));
  ck_assert_int_eq(mfx_compute_set_body(a, p.Y, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, src)), MFX_OK);
  mfx_tensor *out = p.Y;
  if (two_stages) {
    p.Z = mfx_compute_begin(a, "Z", MFX_F32, 2, (int64_t[]){M, N}, (const char *[]){"zi", "zj"});
    mfx_expr *zi = mfx_var_ref(a, p.Z->axes[0]), *zj = mfx_var_ref(a, p.Z->axes[1]);
    ck_assert_int_eq(mfx_compute_set_body(a, p.Z, mfx_add(a, mfx_tensor_load(a, p.Y, 2, (mfx_expr *[]){zi, zj}),
                                                          mfx_f32(a, 1))), MFX_OK);
    out = p.Z;
  }
  ck_assert_int_eq(mfx_sched_create(a, 2, (mfx_tensor *[]){p.X, p.W}, 1, &out, &p.s), MFX_OK);
  return p;
}

static mfx_itervar *iv(mfx_stage *st, const char *name) { return mfx_sched_itervar(st, name); }

/* Blocks of 8x8 outputs, 4x4 threads with 2x2 register tiles, k tiles of 4
 * staged in shared memory. */
static void schedule_matmul(program *p) {
  mfx_schedule *s = p->s;
  mfx_stage *st = mfx_sched_stage(s, p->Y);
  mfx_itervar *bi, *ri, *bj, *rj, *ti, *ii, *tj, *jj, *ko, *ki;
  ck_assert_int_eq(mfx_sched_split(s, st, iv(st, "i"), 8, MFX_TAIL_GUARD, &bi, &ri), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(s, st, iv(st, "j"), 8, MFX_TAIL_GUARD, &bj, &rj), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(s, st, ri, 2, MFX_TAIL_GUARD, &ti, &ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(s, st, rj, 2, MFX_TAIL_GUARD, &tj, &jj), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(s, st, iv(st, "k"), 4, MFX_TAIL_GUARD, &ko, &ki), MFX_OK);
  ck_assert_int_eq(mfx_sched_reorder(s, st, 8, (mfx_itervar *[]){bi, bj, ti, tj, ko, ki, ii, jj}), MFX_OK);
  ck_assert_int_eq(mfx_sched_bind(s, st, bi, MFX_LOOP_BLOCK_Y), MFX_OK);
  ck_assert_int_eq(mfx_sched_bind(s, st, bj, MFX_LOOP_BLOCK_X), MFX_OK);
  ck_assert_int_eq(mfx_sched_bind(s, st, ti, MFX_LOOP_THREAD_Y), MFX_OK);
  ck_assert_int_eq(mfx_sched_bind(s, st, tj, MFX_LOOP_THREAD_X), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_read(s, st, p->X, MFX_SCOPE_SHARED, ko), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_read(s, st, p->W, MFX_SCOPE_SHARED, ko), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_write_local(s, st, tj), MFX_OK);
  if (p->Z) {
    mfx_stage *z = mfx_sched_stage(s, p->Z);
    mfx_itervar *f, *fo, *fi;
    ck_assert_int_eq(mfx_sched_fuse(s, z, iv(z, "zi"), iv(z, "zj"), &f), MFX_OK);
    ck_assert_int_eq(mfx_sched_split(s, z, f, 32, MFX_TAIL_GUARD, &fo, &fi), MFX_OK);
    ck_assert_int_eq(mfx_sched_bind(s, z, fo, MFX_LOOP_BLOCK_X), MFX_OK);
    ck_assert_int_eq(mfx_sched_bind(s, z, fi, MFX_LOOP_THREAD_X), MFX_OK);
  }
}

static void check(int64_t M, int64_t N, int64_t K, int two_stages) {
  program p = make(M, N, K, two_stages);
  schedule_matmul(&p);
  mfx_func *fn;
  mfx_gpu_program *gp;
  ck_assert_msg(mfx_lower(p.s, "mm", &fn) == MFX_OK, "%s", mfx_last_error());
  ck_assert_msg(mfx_split_kernels(p.a, fn, &gp) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(gp->n_kernels, two_stages ? 2 : 1);
  ck_assert_int_eq(gp->kernels[0].block[0] * gp->kernels[0].block[1], 16);
  mfx_jit_kernel *jit;
  ck_assert_msg(mfx_gpu_emulate_compile(p.a, gp, &jit) == MFX_OK, "%s", mfx_last_error());
  float *X = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
  float *out = malloc(sizeof(float) * M * N);
  for (int64_t i = 0; i < M * K; i++) X[i] = (float)((i * 7) % 13) - 6.0f;
  for (int64_t i = 0; i < N * K; i++) W[i] = (float)((i * 5) % 11) * 0.5f - 2.0f;
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)((void *[]){X, W, out}, &env), 0);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double want = two_stages ? 1 : 0;
      for (int64_t k = 0; k < K; k++) want += (double)X[i * K + k] * W[j * K + k];
      ck_assert_msg(out[i * N + j] == (float)want, "%lldx%lldx%lld: [%lld,%lld] = %g, want %g",
                    (long long)M, (long long)N, (long long)K, (long long)i, (long long)j,
                    out[i * N + j], want);
    }
  free(X);
  free(W);
  free(out);
  mfx_jit_free(jit);
  mfx_arena_destroy(p.a);
}

static const int64_t SHAPES[][3] = {{8, 8, 4}, {1, 1, 1}, {13, 9, 7}, {16, 24, 12}, {5, 17, 9}};

START_TEST(shared_tiled_matmul) {
  for (size_t c = 0; c < sizeof SHAPES / sizeof SHAPES[0]; c++)
    check(SHAPES[c][0], SHAPES[c][1], SHAPES[c][2], 0);
}
END_TEST

START_TEST(two_kernels_with_workspace) {
  for (size_t c = 0; c < sizeof SHAPES / sizeof SHAPES[0]; c++)
    check(SHAPES[c][0], SHAPES[c][1], SHAPES[c][2], 1);
}
END_TEST

/* A barrier under a condition cannot be emulated (nor run on a GPU). */
START_TEST(barrier_under_condition_is_an_error) {
  mfx_arena *a = mfx_arena_create();
  mfx_buffer *b = mfx_buffer_create(a, "B", MFX_F32, 1, (int64_t[]){4}, MFX_SCOPE_GLOBAL);
  mfx_var *t = mfx_var_create(a, "t", 4, 0);
  mfx_expr *tv = mfx_var_ref(a, t);
  mfx_stmt *inner = mfx_stmt_seq(a, 2, (mfx_stmt *[]){mfx_stmt_barrier(a),
                                                       mfx_stmt_store(a, b, 1, &tv, mfx_f32(a, 1))});
  mfx_stmt *body = mfx_stmt_for(a, t, 4, MFX_LOOP_THREAD_X,
                                mfx_stmt_if(a, mfx_binary(a, MFX_LT, tv, mfx_i64(a, 2)), inner, NULL));
  mfx_func fn = {"f", 1, (mfx_buffer *[]){b}, body};
  mfx_gpu_program *gp;
  ck_assert_int_eq(mfx_split_kernels(a, &fn, &gp), MFX_OK);
  mfx_func *out;
  ck_assert_int_eq(mfx_gpu_emulate_lower(a, gp, &out), MFX_ERR_SCHEDULE);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "reached by every thread"));
  mfx_arena_destroy(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("gpu_emulate");
  TCase *tc = tcase_create("cpu");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, shared_tiled_matmul);
  tcase_add_test(tc, two_kernels_with_workspace);
  tcase_add_test(tc, barrier_under_condition_is_an_error);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
