/* The build driver (compiler/build.c, mfx_build) and the one target parser
 * (runtime/target.c): each emit kind for the targets that take it, kernels
 * run against a reference computed here, and every refused combination or
 * malformed target fails with a message. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

/* ---- target strings ------------------------------------------------------------ */

START_TEST(target_parse_accepts) {
  mfx_target t;
  ck_assert_int_eq(mfx_target_parse("cpu", &t), MFX_OK);
  ck_assert_int_eq(t.kind, MFX_TARGET_CPU);
  ck_assert_int_eq(t.device, -1);
  ck_assert_int_eq(mfx_target_parse("emulate", &t), MFX_OK);
  ck_assert_int_eq(t.kind, MFX_TARGET_EMULATE);
  ck_assert_int_eq(mfx_target_parse("cuda", &t), MFX_OK);
  ck_assert_int_eq(t.kind, MFX_TARGET_CUDA);
  ck_assert_int_eq(t.device, -1);
  ck_assert_int_eq(t.sm, 0);
  ck_assert_int_eq(mfx_target_parse("cuda:3", &t), MFX_OK);
  ck_assert_int_eq(t.kind, MFX_TARGET_CUDA);
  ck_assert_int_eq(t.device, 3);
  ck_assert_int_eq(mfx_target_parse("cuda:65535", &t), MFX_OK);
  ck_assert_int_eq(t.device, 65535);
  ck_assert_int_eq(mfx_target_parse("cuda:sm_80", &t), MFX_OK);
  ck_assert_int_eq(t.sm, 80);
  ck_assert_int_eq(t.device, -1);
  ck_assert_int_eq(t.arch_specific, 0);
  ck_assert_str_eq(t.sm_name, "sm_80");
  ck_assert_int_eq(mfx_target_parse("cuda:sm_90a", &t), MFX_OK);
  ck_assert_int_eq(t.sm, 90);
  ck_assert_int_eq(t.arch_specific, 1);
  ck_assert_str_eq(t.sm_name, "sm_90a");
  ck_assert_int_eq(mfx_target_parse("cuda:sm_100", &t), MFX_OK);
  ck_assert_int_eq(t.sm, 100);
  ck_assert(mfx_target_names_gpu("cuda:sm_80"));
  ck_assert(mfx_target_names_gpu("cuda"));
  ck_assert(!mfx_target_names_gpu("cpu"));
  ck_assert(!mfx_target_names_gpu(NULL));
}
END_TEST

START_TEST(target_parse_rejects) {
  const char *bad[] = {"", "gpu", "CPU", "cpu ", "cuda:", "cuda:-1", "cuda:65536", "cuda:123456", "cuda:1x",
                       "cuda:sm_", "cuda:sm_8", "cuda:sm_09", "cuda:sm_1000", "cuda:sm_80b",
                       "cuda:sm_80aa", "cudax", "emulate:0", "cuda:sm80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mfx_target t = {.kind = MFX_TARGET_EMULATE, .device = 42};
    ck_assert_msg(mfx_target_parse(bad[i], &t) == MFX_ERR_INVALID, "accepted '%s'", bad[i]);
    ck_assert_ptr_nonnull(strstr(mfx_last_error(), "expected cpu, cuda, cuda:N, cuda:sm_XX"));
    ck_assert_int_eq(t.device, 42); /* untouched on failure */
  }
  mfx_target t;
  ck_assert_int_eq(mfx_target_parse(NULL, &t), MFX_ERR_INVALID);
}
END_TEST

/* ---- the driver ---------------------------------------------------------------- */

enum { ROWS = 3, COLS = 5 };

/* Y[i, j] = X[i, j] * 2 + 1; gpu: rows on blocks, columns on threads. */
static mfx_schedule *scaled(mfx_arena *a, int gpu) {
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){ROWS, COLS});
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){ROWS, COLS}, NULL);
  mfx_expr *idx[2] = {mfx_var_ref(a, Y->axes[0]), mfx_var_ref(a, Y->axes[1])};
  mfx_expr *body = mfx_add(a, mfx_mul(a, mfx_tensor_load(a, X, 2, idx), mfx_f32(a, 2)), mfx_f32(a, 1));
  ck_assert_int_eq(mfx_compute_set_body(a, Y, body), MFX_OK);
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  if (gpu) {
    mfx_stage *st = mfx_sched_stage(s, Y);
    ck_assert_int_eq(mfx_sched_bind(s, st, st->leaves[0], MFX_LOOP_BLOCK_X), MFX_OK);
    ck_assert_int_eq(mfx_sched_bind(s, st, st->leaves[1], MFX_LOOP_THREAD_X), MFX_OK);
  }
  return s;
}

static void run_and_check(const mfx_jit_kernel *jit) {
  float X[ROWS * COLS], Y[ROWS * COLS];
  for (int i = 0; i < ROWS * COLS; i++) {
    X[i] = (float)(i * 3 - 7) * 0.25f;
    Y[i] = -1e30f;
  }
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)((void *[]){X, Y}, &env), 0);
  for (int i = 0; i < ROWS * COLS; i++) ck_assert_float_eq(Y[i], X[i] * 2.0f + 1.0f);
}

START_TEST(build_cpu_emits) {
  mfx_arena *a = mfx_arena_create();
  mfx_build_result r;
  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_JIT, NULL, &r), MFX_OK);
  ck_assert_ptr_nonnull(r.func);
  ck_assert_ptr_nonnull(r.jit);
  ck_assert_ptr_null(r.program);
  run_and_check(r.jit);
  mfx_jit_free(r.jit);

  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_FUNC, NULL, &r), MFX_OK);
  ck_assert_ptr_nonnull(r.func);
  ck_assert_ptr_null(r.jit);
  ck_assert_ptr_null(r.data);
  ck_assert_str_eq(r.func->name, "k");

  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_LL, NULL, &r), MFX_OK);
  ck_assert_ptr_nonnull(strstr(r.data, "define"));
  free(r.data);
  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_OBJ, NULL, &r), MFX_OK);
  ck_assert_int_gt((int)r.size, 4);
  ck_assert_int_eq(memcmp(r.data, "\177ELF", 4), 0);
  free(r.data);
  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_ASM, NULL, &r), MFX_OK);
  ck_assert_ptr_nonnull(r.data);
  ck_assert_ptr_null(strstr(r.data, "\177ELF"));
  free(r.data);
  mfx_arena_destroy(a);
}
END_TEST

START_TEST(build_gpu_emits) {
  mfx_arena *a = mfx_arena_create();
  mfx_build_result r;
  ck_assert_msg(mfx_build(scaled(a, 1), "g", "cuda", MFX_BUILD_PROGRAM, NULL, &r) == MFX_OK, "%s",
                mfx_last_error());
  ck_assert_ptr_nonnull(r.program);
  ck_assert_int_eq(r.program->n_kernels, 1);
  ck_assert_int_eq(r.program->kernels[0].grid[0], ROWS);
  ck_assert_int_eq(r.program->kernels[0].block[0], COLS);

  ck_assert_msg(mfx_build(scaled(a, 1), "g", "emulate", MFX_BUILD_JIT, NULL, &r) == MFX_OK, "%s",
                mfx_last_error());
  run_and_check(r.jit);
  mfx_jit_free(r.jit);

  ck_assert_msg(mfx_build(scaled(a, 1), "g", "cuda:sm_80", MFX_BUILD_PTX, NULL, &r) == MFX_OK,
                "%s", mfx_last_error());
  ck_assert_ptr_nonnull(r.program);
  ck_assert_ptr_nonnull(strstr(r.data, ".entry g_k0"));
  ck_assert_ptr_nonnull(strstr(r.data, ".target sm_80"));
  free(r.data);
  ck_assert_int_eq(mfx_build(scaled(a, 1), "g", "cuda:sm_80", MFX_BUILD_LL, NULL, &r), MFX_OK);
  ck_assert_ptr_nonnull(strstr(r.data, "nvptx64"));
  free(r.data);
  mfx_arena_destroy(a);
}
END_TEST

/* Pass hook: counts runs. */
static void count_pass(const mfx_pass *pass, const mfx_func *fn, void *ctx) {
  (void)pass;
  (void)fn;
  ++*(int *)ctx;
}

START_TEST(build_options_hook) {
  mfx_arena *a = mfx_arena_create();
  int runs = 0, n = 0;
  mfx_lower_passes(&n);
  mfx_build_options opts = {count_pass, &runs};
  mfx_build_result r;
  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_FUNC, &opts, &r), MFX_OK);
  ck_assert_int_eq(runs, n);
  mfx_arena_destroy(a);
}
END_TEST

static void expect_refusal(const char *target, mfx_build_emit what, int gpu, const char *needle) {
  mfx_arena *a = mfx_arena_create();
  mfx_build_result r = {.data = (char *)"untouched"};
  mfx_status st = mfx_build(scaled(a, gpu), "k", target, what, NULL, &r);
  ck_assert_msg(st != MFX_OK, "%s / %s accepted", target, mfx_build_emit_name(what));
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "%s / %s: '%s' lacks '%s'", target,
                mfx_build_emit_name(what), mfx_last_error(), needle);
  ck_assert_ptr_null(r.data); /* cleared: nothing to free */
  ck_assert_ptr_null(r.jit);
  mfx_arena_destroy(a);
}

START_TEST(build_refusals) {
  expect_refusal("cpu", MFX_BUILD_PTX, 0, "that is GPU code");
  expect_refusal("cpu", MFX_BUILD_PROGRAM, 0, "that is GPU code");
  expect_refusal("cuda:sm_80", MFX_BUILD_OBJ, 1, "an object is host code");
  expect_refusal("cuda", MFX_BUILD_PTX, 1, "needs an architecture");
  expect_refusal("cuda:0", MFX_BUILD_LL, 1, "needs an architecture");
  expect_refusal("emulate", MFX_BUILD_ASM, 1, "needs an architecture");
  expect_refusal("gpu", MFX_BUILD_JIT, 0, "target \"gpu\": expected");
  expect_refusal("cpu", (mfx_build_emit)99, 0, "unknown emit kind 99");
  /* A GPU schedule on the CPU: the block loop is refused by code generation. */
  mfx_arena *a = mfx_arena_create();
  mfx_build_result r;
  ck_assert_int_ne(mfx_build(scaled(a, 1), "k", "cpu", MFX_BUILD_JIT, NULL, &r), MFX_OK);
  ck_assert_ptr_null(r.jit);
  ck_assert_int_eq(mfx_build(NULL, "k", "cpu", MFX_BUILD_JIT, NULL, &r), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_build(scaled(a, 0), "k", "cpu", MFX_BUILD_JIT, NULL, NULL), MFX_ERR_INVALID);
  mfx_arena_destroy(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("build");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, target_parse_accepts);
  tcase_add_test(tc, target_parse_rejects);
  tcase_add_test(tc, build_cpu_emits);
  tcase_add_test(tc, build_gpu_emits);
  tcase_add_test(tc, build_options_hook);
  tcase_add_test(tc, build_refusals);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
