/* linear's (and shift_linear's) double-buffered GPU tiled reduction (GPU knob double_buffer=1:
 * two shared tiles per staged tensor, the next k step's copied with cp.async
 * while this one computes, one barrier per step), without a GPU.
 *
 * Results: through the GPU emulation (cp.async runs as a plain copy, the
 * commit/wait before the step's barrier as nothing more than the barrier)
 * against the plain-C reference on shapes that divide no tile, and bit for
 * bit against the single-buffered kernel of the same tiles (same order of
 * additions, the same zero-filled partial tiles).
 *
 * PTX: cp.async.ca.shared.global and cp.async.wait_group in it, one bar.sync
 * per k step, and ptxas -v for sm_80 and sm_90 accepts it with no spills and
 * no stack frame. Errors: double_buffer=1 below sm_80, with shared=0, and
 * over 48 KiB of (doubled) staging. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_linear_harness.h"
#include "mfx/compiler.h"
#include "mfx/ops.h"
#include "ptxas_check.h"
#include "check_main.h"

static const int64_t shapes[][3] = {
    {1, 1, 1}, {37, 45, 29}, {130, 70, 40}, {33, 17, 65}, {64, 64, 64}, {98, 16, 300},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof *shapes))

/* Configs with double_buffer set; the same with 0 is the single-buffered twin. */
static const char *const configs[] = {
    "",
    ",\"block_m\":32,\"block_n\":16,\"thread_m\":2,\"thread_n\":2,\"block_k\":8",
    ",\"block_m\":64,\"block_n\":32,\"thread_m\":4,\"thread_n\":4,\"block_k\":4,\"pack\":0",
    ",\"contiguous\":1,\"block_k\":32,\"unroll\":0",
    ",\"split_k\":2,\"block_m\":32,\"block_n\":32,\"thread_m\":2,\"thread_n\":2",
};
#define N_CONFIGS ((int)(sizeof configs / sizeof *configs))

/* {"double_buffer":db<extra>}: linear's GPU config of one of the configs above. */
static const char *db_json(int db, const char *extra, char *json, size_t size) {
  snprintf(json, size, "{\"double_buffer\":%d%s}", db, extra);
  return json;
}

static void run_emulated(const int64_t *dims, int db, const char *extra, mfx_array *in,
                         mfx_array *out) {
  char json[512];
  glh_run_emulated(dims, db_json(db, extra, json, sizeof json), in, out);
}

START_TEST(double_buffer_matches_reference_and_single_buffer) {
  const mfx_op *op = glh_linear_op();
  const int64_t *dims = shapes[_i];
  for (int c = 0; c < N_CONFIGS; c++) {
    if (getenv("MFX_TEST_QUICK") != NULL && c > 1) break;
    mfx_array in[2], db[1], sb[1], ref[1];
    ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, db), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, sb), MFX_OK);
    ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, ref), MFX_OK);
    mfx_op_random_inputs(op, dims, (uint64_t)(_i * 7 + c + 1), in);
    run_emulated(dims, 1, configs[c], in, db);
    run_emulated(dims, 0, configs[c], in, sb);
    op->reference(dims, in, ref);
    mfx_compare r = mfx_compare_arrays(&db[0], &ref[0], 1e-5);
    ck_assert_msg(r.ok, "linear %lldx%lldx%lld double_buffer=1%s: element %lld is %.9g, the "
                  "reference %.9g", (long long)dims[0], (long long)dims[1], (long long)dims[2],
                  configs[c], (long long)r.first_index, r.first_got, r.first_want);
    ck_assert_msg(memcmp(db[0].data, sb[0].data,
                         (size_t)mfx_array_numel(&db[0]) * sizeof(float)) == 0,
                  "linear %lldx%lldx%lld%s: double- and single-buffered results differ",
                  (long long)dims[0], (long long)dims[1], (long long)dims[2], configs[c]);
    mfx_array_free(&in[0]);
    mfx_array_free(&in[1]);
    mfx_array_free(&db[0]);
    mfx_array_free(&sb[0]);
    mfx_array_free(&ref[0]);
  }
}
END_TEST

/* shift_linear through the same template: X (i32) copied by cp.async, the
 * u8 weight tiles by plain stores; integer results exact. */
START_TEST(double_buffer_shift_linear_matches) {
  const mfx_op *op = mfx_op_find("shift_linear");
  ck_assert_ptr_nonnull(op);
  const int64_t *dims = shapes[_i];
  mfx_array in[4], out[3][2];
  int n_in = op->n_inputs, n_out = op->n_outputs;
  ck_assert_int_le(n_in, 4);
  ck_assert_int_le(n_out, 2);
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  for (int v = 0; v < 3; v++) ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, out[v]), MFX_OK);
  mfx_op_random_inputs(op, dims, (uint64_t)_i + 5, in);
  for (int v = 0; v < 2; v++) {
    mfx_config cfg;
    char json[64];
    snprintf(json, sizeof json, "{\"double_buffer\":%d,\"block_k\":8}", 1 - v);
    ck_assert_msg(mfx_config_parse_json_for(op, "cuda:sm_80", json, &cfg) == MFX_OK, "%s",
                  mfx_last_error());
    mfx_op_kernel k;
    ck_assert_msg(mfx_op_compile_for(op, "emulate", dims, &cfg, &k) == MFX_OK, "%s",
                  mfx_last_error());
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, NULL);
    ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, out[v]), MFX_OK);
    mfx_op_kernel_free(&k);
  }
  op->reference(dims, in, out[2]);
  for (int o = 0; o < n_out; o++) {
    size_t bytes = (size_t)mfx_array_numel(&out[0][o]) * mfx_dtype_size(out[0][o].dtype);
    ck_assert_msg(memcmp(out[0][o].data, out[1][o].data, bytes) == 0,
                  "shift_linear %lldx%lldx%lld: double- and single-buffered differ",
                  (long long)dims[0], (long long)dims[1], (long long)dims[2]);
    mfx_compare r = mfx_compare_arrays_int(&out[0][o], &out[2][o], 1e-5, op->int_tolerance);
    ck_assert_msg(r.ok, "shift_linear %lldx%lldx%lld double_buffer=1: element %lld is %.9g, "
                  "the reference %.9g", (long long)dims[0], (long long)dims[1],
                  (long long)dims[2], (long long)r.first_index, r.first_got, r.first_want);
  }
  for (int i = 0; i < n_in; i++) mfx_array_free(&in[i]);
  for (int v = 0; v < 3; v++)
    for (int o = 0; o < n_out; o++) mfx_array_free(&out[v][o]);
}
END_TEST

/* ---- PTX ----------------------------------------------------------------------------- */

static char *linear_ptx(const int64_t *dims, int db, const char *extra, const char *sm) {
  char json[512];
  return glh_ptx(dims, db_json(db, extra, json, sizeof json), sm);
}

START_TEST(double_buffer_ptx_has_cp_async_and_assembles) {
  const int64_t dims[][3] = {{37, 45, 29}, {784, 128, 1024}};
  for (int d = 0; d < 2; d++)
    for (int c = 0; c < (d == 0 ? N_CONFIGS : 1); c++) {
      char *ptx = linear_ptx(dims[d], 1, configs[c], "sm_80");
      char what[256];
      snprintf(what, sizeof what, "linear %lldx%lldx%lld double_buffer=1%s",
               (long long)dims[d][0], (long long)dims[d][1], (long long)dims[d][2], configs[c]);
      /* split_k on a K it does not divide: the tiles are zero-padded tensors
       * computed into shared memory, plain stores (still one barrier a step) */
      int copies = strstr(configs[c], "split_k") == NULL;
      ck_assert_msg(!copies || ptx_count(ptx, "cp.async.ca.shared.global") > 0, "%s: no cp.async",
                    what);
      ck_assert_msg(ptx_count(ptx, "cp.async.commit_group") > 0, "%s: no commit_group", what);
      ck_assert_msg(ptx_count(ptx, "cp.async.wait_group") > 0, "%s: no wait_group", what);
      assemble_no_spills(ptx, "sm_80", what);
      assemble_no_spills(ptx, "sm_90", what);
      free(ptx);
      ptx = linear_ptx(dims[d], 0, configs[c], "sm_80");
      ck_assert_msg(ptx_count(ptx, "cp.async") == 0, "%s: cp.async with double_buffer=0", what);
      free(ptx);
    }
}
END_TEST

START_TEST(double_buffer_shift_linear_ptx) {
  const mfx_op *op = mfx_op_find("shift_linear");
  mfx_config cfg;
  ck_assert_int_eq(mfx_config_parse_json_for(op, "cuda:sm_80", "{\"double_buffer\":1}", &cfg),
                   MFX_OK);
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = NULL;
  ck_assert_msg(mfx_op_gpu_program(op, a, (int64_t[]){37, 45, 29}, &cfg, &p) == MFX_OK, "%s",
                mfx_last_error());
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s", mfx_last_error());
  ck_assert_msg(ptx_count(ptx, "cp.async.ca.shared.global") > 0, "shift_linear: no cp.async");
  ck_assert_msg(ptx_count(ptx, "cp.async.wait_group") > 0, "shift_linear: no wait_group");
  assemble_no_spills(ptx, "sm_80", "shift_linear 37x45x29 double_buffer=1");
  assemble_no_spills(ptx, "sm_90", "shift_linear 37x45x29 double_buffer=1");
  free(ptx);
  mfx_arena_destroy(a);
}
END_TEST

/* One barrier per k step instead of a pair (the default tiles at 784x128x1024:
 * the GEMM kernel after the W packing kernel, which has none). The loop body
 * may be peeled or unrolled by LLVM, so compare the two forms. */
START_TEST(double_buffer_halves_the_barriers) {
  const int64_t dims[3] = {784, 128, 1024};
  char *db = linear_ptx(dims, 1, "", "sm_90"), *sb = linear_ptx(dims, 0, "", "sm_90");
  int bars_db = ptx_count(db, "bar.sync"), bars_sb = ptx_count(sb, "bar.sync");
  assemble(db, "sm_90", "linear 784x128x1024 double_buffer=1");
  fprintf(stderr, "784x128x1024 default tiles: bar.sync %d (double_buffer=1), %d (0)\n", bars_db,
          bars_sb);
  ck_assert_msg(bars_db >= 1 && 2 * bars_db == bars_sb,
                "double_buffer=1 has %d bar.sync, single-buffered %d: expected about half",
                bars_db, bars_sb);
  free(db);
  free(sb);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(double_buffer_below_sm80_is_refused) {
  glh_expect_arch_refused("{\"double_buffer\":1}", "cp.async", "needs sm_80 or newer");
}
END_TEST

static void expect_refused(const char *extra, const char *says) {
  char json[512];
  glh_expect_refused(db_json(1, extra, json, sizeof json), says);
}

START_TEST(double_buffer_bad_configs_are_refused) {
  expect_refused(",\"shared\":0", "needs shared=1");
  /* 128 x 64 tiles: 2 x (128 + 64) x 64 x 4 bytes = 96 KiB doubled (48 KiB single) */
  expect_refused(",\"block_m\":128,\"block_n\":64,\"block_k\":64", "double_buffer=1");
  /* and single-buffered 64x32 tiles by 64 (24 KiB) build */
  char json[512];
  mfx_arena *a = mfx_arena_create();
  glh_program(a, (int64_t[]){37, 45, 29},
              db_json(0, ",\"block_m\":64,\"block_n\":32,\"block_k\":64", json, sizeof json));
  mfx_arena_destroy(a);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("gpu_double_buffer");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, double_buffer_matches_reference_and_single_buffer, 0, N_SHAPES);
  tcase_add_loop_test(tc, double_buffer_shift_linear_matches, 0, N_SHAPES);
  tcase_add_test(tc, double_buffer_ptx_has_cp_async_and_assembles);
  tcase_add_test(tc, double_buffer_halves_the_barriers);
  tcase_add_test(tc, double_buffer_shift_linear_ptx);
  tcase_add_test(tc, double_buffer_below_sm80_is_refused);
  tcase_add_test(tc, double_buffer_bad_configs_are_refused);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return check_run_suite(suite()); }
