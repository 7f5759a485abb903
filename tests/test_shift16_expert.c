/* The shift16 expert (Q3.10 on shift_linear16's 16-bit lanes): its two
 * fused ops (ops/fused16.c) against their plain-C references on shapes that
 * divide no tile, under several templates and through the GPU template's
 * emulation; the quantize and GELU steps at both ends of the i16 range, at a
 * tie, with saturation and non-finite inputs, checked by hand; the inputs
 * and sizes they refuse; and the layer with shift16 experts (compiled on
 * first use, and ahead of time into an artifact) against the layer's
 * reference. */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/artifact.h"
#include "mfx/moe.h"
#include "mfx/ops.h"
#include "check_main.h"

/* ---- the ops against their references ------------------------------------------------ */

static void run_against_reference(const char *name, const char *target, const char *json,
                                  const int64_t *dims, uint64_t seed) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_ptr_nonnull(op);
  mfx_config cfg;
  ck_assert_int_eq(mfx_config_parse_json_for(op, target, json, &cfg), MFX_OK);
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile_for(op, target, dims, &cfg, &k) == MFX_OK, "%s %s %s: %s", name,
                target, json, mfx_last_error());
  mfx_array in[3], got[1], want[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_op_random_inputs(op, dims, seed, in);
  op->reference(dims, in, want);
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, strcmp(target, "cpu") == 0 ? pool : NULL);
  ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, got), MFX_OK);
  mfx_compare c = mfx_compare_arrays_int(&got[0], &want[0], 0.0, op->int_tolerance);
  ck_assert_msg(c.ok, "%s %s %s dims %lld,%lld,%lld: max_abs_err %g at %lld", name, target, json,
                (long long)dims[0], (long long)dims[1], (long long)dims[2], c.max_abs_err,
                (long long)c.worst_index);
  mfx_pool_destroy(pool);
  mfx_op_kernel_free(&k);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&got[0]);
  mfx_array_free(&want[0]);
}

static const char *const ops[2] = {"shift_linear16_gelu", "shift_linear16_dequantize"};

/* One row, K not a whole block, N and M past no tile, K past a split. */
static const int64_t shapes[][3] = {{1, 1, 1}, {37, 45, 29}, {9, 70, 130}};

START_TEST(cpu_kernels_match_the_reference) {
  /* the default template, then the other panel widths, a split reduction, a
   * row tile of 6 and (for the first op) the quantize inlined into the loads */
  static const char *configs[] = {"{}", "{\"tile_m\":6,\"tile_n\":64,\"tile_k\":4,"
                                  "\"cols_outer\":0}",
                                  "{\"tile_m\":1,\"tile_n\":16,\"tile_k\":16}"};
  for (int o = 0; o < 2; o++)
    for (int s = 0; s < 3; s++)
      run_against_reference(ops[o], "cpu", configs[s == 0 ? 0 : 1 + (s + o) % 2], shapes[s],
                            (uint64_t)(s * 4 + o + 1));
  run_against_reference(ops[0], "cpu", "{\"prologue\":0,\"tile_m\":4}", shapes[1], 40);
}
END_TEST

START_TEST(gpu_template_matches_the_reference) {
  /* K not a whole block (XP, with the quantize inlined into it), and K whole */
  static const int64_t small[][3] = {{7, 13, 5}, {33, 47, 36}};
  for (int o = 0; o < 2; o++) {
    run_against_reference(ops[o], "emulate", "{}", small[o], 60);
    run_against_reference(ops[o], "emulate", "{\"shared\":0,\"block_m\":16,\"thread_m\":1}",
                          small[1 - o], 70);
  }
}
END_TEST

/* ---- by hand: the quantize and GELU steps ---------------------------------------------- */

/* Runs op (cpu or emulate) on X [M, K] (each row x[0..K)), S and G [N, K]
 * given whole, and checks every row of the output against want[0..N) and
 * the reference (within the op's int tolerance). */
static void run_by_hand(const char *name, const char *target, int64_t M, int64_t N, int64_t K,
                        const void *x, const int8_t *s, const int8_t *g, const double *want) {
  const mfx_op *op = mfx_op_find(name);
  int64_t dims[3] = {M, N, K};
  mfx_array in[3], got[1], ref[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, ref), MFX_OK);
  size_t xs = in[0].dtype == MFX_F32 ? 4 : 2;
  for (int64_t m = 0; m < M; m++) memcpy((char *)in[0].data + m * K * xs, x, (size_t)K * xs);
  memcpy(in[1].data, s, (size_t)(N * K));
  memcpy(in[2].data, g, (size_t)(N * K));
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile_for(op, target, dims, NULL, &k) == MFX_OK, "%s",
                mfx_last_error());
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, got), MFX_OK);
  op->reference(dims, in, ref);
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      int64_t i = m * N + n;
      double y = got[0].dtype == MFX_F32 ? ((float *)got[0].data)[i]
                                         : ((int16_t *)got[0].data)[i];
      double r = ref[0].dtype == MFX_F32 ? ((float *)ref[0].data)[i]
                                         : ((int16_t *)ref[0].data)[i];
      ck_assert_msg(r == want[n], "%s reference [%lld, %lld] = %g, by hand %g", name,
                    (long long)m, (long long)n, r, want[n]);
      ck_assert_msg(y == want[n], "%s %s [%lld, %lld] = %g, by hand %g", name, target,
                    (long long)m, (long long)n, y, want[n]);
    }
  mfx_op_kernel_free(&k);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&got[0]);
  mfx_array_free(&ref[0]);
}

/* With S = 0 and G the identity (N = K), H = XQ: R = q10(gelu(q10(x))).
 * q10(x) = rint(x 2^10) (ties to even) within -8192..8191, NaN -> 0; then
 * GELU in Q3.10: gelu(2) 2^10 = 2001.41, gelu(-1) 2^10 = -162.46, gelu(0.5)
 * 2^10 = 354.03, gelu(7.999) 2^10 = 8191 - 6e-12, gelu(-8) 2^10 = -5e-12. */
START_TEST(quantize_and_gelu_at_their_ends) {
  enum { K = 13 };
  const float x[K] = {2.0f, -1.0f, 8.0f, 1e9f, INFINITY, -INFINITY, -8.0f, NAN, 0.5f,
                      0.5f / 1024.0f,          /* 0.5: a tie, to even: 0 */
                      1.5f / 1024.0f,          /* 1.5: to even: 2 -> gelu 1.0016 -> 1 */
                      8191.0f / 1024.0f,       /* the top, exactly */
                      -8191.5f / 1024.0f};     /* a tie at the bottom: -8192 */
  const double want[K] = {2001, -162, 8191, 8191, 8191, 0, 0, 0, 354, 0, 1, 8191, 0};
  int8_t s[K * K], g[K * K];
  memset(s, 0, sizeof s);
  for (int n = 0; n < K; n++)
    for (int k = 0; k < K; k++) g[n * K + k] = (int8_t)(n == k);
  run_by_hand("shift_linear16_gelu", "cpu", 3, K, K, x, s, g, want);
  run_by_hand("shift_linear16_gelu", "emulate", 2, K, K, x, s, g, want);
}
END_TEST

/* GELU's output saturates: H = 4 * 8191 -> gelu(32) -> 8191; H = -32764 -> 0. */
START_TEST(gelu_output_saturates) {
  const float x[4] = {8.0f, 8.0f, 8.0f, 8.0f};
  int8_t s[8] = {0}, g[8] = {1, 1, 1, 1, -1, -1, -1, -1};
  const double want[2] = {8191, 0};
  run_by_hand("shift_linear16_gelu", "cpu", 5, 2, 4, x, s, g, want);
  run_by_hand("shift_linear16_gelu", "emulate", 5, 2, 4, x, s, g, want);
}
END_TEST

/* Y = sum / 2^10: both ends of X, per-term truncation (-3 >> 1 = -2). */
START_TEST(dequantize_at_the_ends) {
  enum { K = 7 };
  const int16_t x[K] = {-8192, -8192, -8192, 8191, 8191, -3, -3};
  int8_t s[3 * K] = {0}, g[3 * K] = {0};
  for (int k = 0; k < 3; k++) g[0 * K + k] = 1;         /* 3 * -8192 */
  for (int k = 3; k < 5; k++) g[1 * K + k] = -1;        /* -2 * 8191 */
  for (int k = 5; k < 7; k++) s[2 * K + k] = 1, g[2 * K + k] = -1; /* -2 * (-3 >> 1) = 4 */
  const double want[3] = {-24.0, -16382.0 / 1024.0, 4.0 / 1024.0};
  run_by_hand("shift_linear16_dequantize", "cpu", 4, 3, K, x, s, g, want);
  run_by_hand("shift_linear16_dequantize", "emulate", 4, 3, K, x, s, g, want);
}
END_TEST

/* ---- what they refuse ----------------------------------------------------------------- */

START_TEST(k_past_the_bound_is_refused) {
  int64_t dims[3] = {1, 1, (int64_t)1 << 18};
  for (int o = 0; o < 2; o++)
    for (int gpu = 0; gpu < 2; gpu++) {
      mfx_arena *a = mfx_arena_create();
      mfx_schedule *s = NULL;
      mfx_clear_error();
      ck_assert_int_eq(mfx_op_build_for(mfx_op_find(ops[o]), gpu ? "cuda:sm_90" : "cpu", a, dims,
                                        NULL, &s),
                       MFX_ERR_INVALID);
      ck_assert_msg(strstr(mfx_last_error(), "K = 262144 is over 262143") != NULL, "%s",
                    mfx_last_error());
      mfx_arena_destroy(a);
    }
}
END_TEST

/* X of the dequantize outside shift_linear16's range, and shifts and signs
 * of either op outside theirs, are refused before a run. */
START_TEST(inputs_out_of_range_are_refused) {
  int64_t dims[3] = {2, 3, 4};
  for (int o = 0; o < 2; o++) {
    const mfx_op *op = mfx_op_find(ops[o]);
    mfx_array in[3];
    ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
    mfx_op_random_inputs(op, dims, 3, in);
    ck_assert_int_eq(mfx_op_check_inputs(ops[o], dims, 3, in, "t"), MFX_OK);
    if (o == 1) {
      ((int16_t *)in[0].data)[5] = 8192;
      mfx_clear_error();
      ck_assert_int_eq(mfx_op_check_inputs(ops[o], dims, 3, in, "t"), MFX_ERR_INVALID);
      ck_assert_msg(strstr(mfx_last_error(), "X[1, 1] = 8192 is outside -8192..8191") != NULL,
                    "%s", mfx_last_error());
      ((int16_t *)in[0].data)[5] = 0;
    }
    ((int8_t *)in[1].data)[2] = 16;
    mfx_clear_error();
    ck_assert_int_eq(mfx_op_check_inputs(ops[o], dims, 3, in, "t"), MFX_ERR_INVALID);
    ck_assert_msg(strstr(mfx_last_error(), "S[0, 2] = 16 is outside 0..15") != NULL, "%s",
                  mfx_last_error());
    for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  }
}
END_TEST

/* ---- the layer --------------------------------------------------------------------------- */

enum { LD = 20, LH = 36, LE = 3, LK = 2 };

static mfx_moe_spec layer_spec(void) {
  mfx_moe_spec s;
  memset(&s, 0, sizeof s);
  s.dim = LD;
  s.hidden = LH;
  s.k = LK;
  s.experts = LE;
  s.kinds[0] = MFX_EXPERT_SHIFT16;
  s.kinds[1] = MFX_EXPERT_NULL;
  s.kinds[2] = MFX_EXPERT_SHIFT16;
  return s;
}

static void fill(float *x, int64_t n, uint64_t seed) {
  uint64_t s = seed * 2654435761u + 99;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = 2.0f * (float)((double)(s >> 40) / 8388608.0 - 1.0);
  }
}

/* forward against the reference (routed by the layer's logits). A Q3.10
 * GELU value one unit off (the kernels' erf against erff, int_tolerance 1)
 * moves an output by at most 2^-10 per slot: the bound is that, k slots of
 * it, over the f32 rounding. */
static void check_forward(mfx_moe *moe, int64_t T, uint64_t seed) {
  float *x = malloc((size_t)(T * LD) * 4), *y = malloc((size_t)(T * LD) * 4),
        *r = malloc((size_t)(T * LD) * 4), *logits = malloc((size_t)(T * LE) * 4);
  fill(x, T * LD, seed);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  ck_assert_msg(mfx_moe_forward(moe, NULL, x, T, y, &trace) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_reference(moe, x, T, logits, r, NULL), MFX_OK);
  double d = 0, scale = 0;
  for (int64_t i = 0; i < T * LD; i++) {
    d = fmax(d, fabs((double)y[i] - r[i]));
    scale = fmax(scale, fabs((double)r[i]));
  }
  ck_assert_msg(scale > 0.01 && d <= 1e-4 * scale + LK * ldexp(1.0, -10),
                "T=%lld: max diff %g of %g", (long long)T, d, scale);
  int shift16_used = 0;
  for (int e = 0; e < LE; e++)
    if (layer_spec().kinds[e] == MFX_EXPERT_SHIFT16) shift16_used += trace.counts[e] > 0;
  ck_assert_msg(T < 8 || shift16_used > 0, "T=%lld: no token reached a shift16 expert",
                (long long)T);
  free(x);
  free(y);
  free(r);
  free(logits);
}

START_TEST(layer_with_shift16_experts_matches_the_reference) {
  mfx_moe_spec spec = layer_spec();
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_create(&spec, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, 3), MFX_OK);
  check_forward(moe, 20, 5);
  /* the DeepShift weights are there, as for a shift expert */
  const int8_t *shift = NULL, *sign = NULL;
  ck_assert_int_eq(mfx_moe_shift_weights(moe, 0, 1, &shift, &sign), MFX_OK);
  ck_assert_ptr_nonnull(shift);
  mfx_moe_destroy(moe);
}
END_TEST

/* The GPU path (device buffers, the experts' two kernels each) through the
 * compiler's emulation. */
START_TEST(layer_on_the_gpu_emulation) {
  mfx_moe_spec spec = layer_spec();
  spec.target = "emulate";
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_create(&spec, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, 6), MFX_OK);
  check_forward(moe, 9, 3);
  mfx_moe_destroy(moe);
}
END_TEST

/* Ahead of time: the artifact carries the kinds (its manifest) and the
 * shift16 kernels (roles shift16.fc1, shift16.fc2); loaded, it runs them. */
START_TEST(layer_artifact_round_trip) {
  mfx_moe_spec spec = layer_spec();
  static const int64_t buckets[] = {16};
  void *image = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_moe_compile_layer(&spec, buckets, 1, "cpu", &image, &size) == MFX_OK, "%s",
                mfx_last_error());
  char path[] = "/tmp/mfx_shift16_layer_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  close(fd);
  ck_assert_int_eq(mfx_artifact_write_file(path, image, size), MFX_OK);
  free(image);
  mfx_moe *moe = NULL;
  mfx_status st = mfx_moe_load(path, NULL, NULL, &moe);
  unlink(path);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  const mfx_moe_spec *got = mfx_moe_get_spec(moe);
  for (int e = 0; e < LE; e++) ck_assert_int_eq(got->kinds[e], spec.kinds[e]);
  ck_assert_int_eq(mfx_moe_init_random(moe, 4), MFX_OK);
  check_forward(moe, 9, 1);
  mfx_moe_destroy(moe);
  /* for a GPU: the shift16 kernels' PTX, under their roles in the manifest */
  ck_assert_msg(mfx_moe_compile_layer(&spec, buckets, 1, "cuda:sm_90", &image, &size) == MFX_OK,
                "%s", mfx_last_error());
  ck_assert_ptr_nonnull(memmem(image, size, "\"shift16.fc1\"", 13));
  ck_assert_ptr_nonnull(memmem(image, size, "shift_linear16_dequantize", 25));
  free(image);
}
END_TEST

START_TEST(kind_names) {
  mfx_expert_kind k;
  ck_assert_int_eq(mfx_expert_kind_from_name("shift16", &k), MFX_OK);
  ck_assert_int_eq(k, MFX_EXPERT_SHIFT16);
  ck_assert_str_eq(mfx_expert_kind_name(MFX_EXPERT_SHIFT16), "shift16");
  ck_assert_int_eq(mfx_expert_kind_from_name("shift8", &k), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "expected mult, shift, shift16 or null") != NULL, "%s",
                mfx_last_error());
  mfx_expert_kind kinds[4];
  int n = 0;
  ck_assert_int_eq(mfx_expert_kinds_parse("mult,shift16,null", kinds, 4, &n), MFX_OK);
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(kinds[1], MFX_EXPERT_SHIFT16);
}
END_TEST

static Suite *shift16_suite(void) {
  Suite *s = suite_create("shift16_expert");
  TCase *ops_case = tcase_create("ops");
  tcase_add_test(ops_case, cpu_kernels_match_the_reference);
  tcase_add_test(ops_case, gpu_template_matches_the_reference);
  tcase_add_test(ops_case, quantize_and_gelu_at_their_ends);
  tcase_add_test(ops_case, gelu_output_saturates);
  tcase_add_test(ops_case, dequantize_at_the_ends);
  tcase_add_test(ops_case, k_past_the_bound_is_refused);
  tcase_add_test(ops_case, inputs_out_of_range_are_refused);
  tcase_set_timeout(ops_case, 300);
  suite_add_tcase(s, ops_case);
  TCase *layer = tcase_create("layer");
  tcase_add_test(layer, layer_with_shift16_experts_matches_the_reference);
  tcase_add_test(layer, layer_artifact_round_trip);
  tcase_add_test(layer, layer_on_the_gpu_emulation);
  tcase_add_test(layer, kind_names);
  tcase_set_timeout(layer, 300);
  suite_add_tcase(s, layer);
  return s;
}

int main(void) { return check_run_suite(shift16_suite()); }
