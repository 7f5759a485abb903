/* The MoE layer against its plain-C reference on several shapes and expert
 * mixes; the DeepShift conversion and Q16.16 on hand-computed values; null
 * experts, top-2 routing and the selection bias; the kernel cache; the
 * latency profiler and table (fit, alpha, JSON round trip); every error. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/device.h"
#include "mfx/moe.h"
#include "check_main.h"

/* ---- helpers ------------------------------------------------------------- */

static void expect_error(mfx_status st, mfx_status expected, const char *needle) {
  ck_assert_int_eq(st, expected);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
}

static void fill_uniform(float *x, int64_t n, float lo, float hi, uint64_t seed) {
  uint64_t s = seed * 2654435761u + 12345;
  for (int64_t i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x[i] = lo + (hi - lo) * (float)((double)(s >> 11) / 9007199254740992.0);
  }
}

static mfx_moe_spec make_spec(int D, int H, int k, const char *kinds) {
  mfx_moe_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = D;
  spec.hidden = H;
  spec.k = k;
  ck_assert_int_eq(mfx_expert_kinds_parse(kinds, spec.kinds, MFX_MOE_MAX_EXPERTS, &spec.experts),
                   MFX_OK);
  return spec;
}

/* The layer's config chooser in most tests: no unrolling, which compiles
 * several times faster than the template default (any valid config must
 * match the reference). */
static mfx_status quick_config(void *user, const char *target, const mfx_op *op,
                               const int64_t *dims, mfx_config *cfg) {
  int *calls = user;
  ck_assert(dims[0] > 0 && dims[1] > 0);
  if (calls != NULL) (*calls)++;
  if (strcmp(target, "cpu") != 0) return MFX_OK; /* the GPU defaults */
  return mfx_config_set(op, cfg, "unroll", 0);
}

static mfx_status failing_config(void *user, const char *target, const mfx_op *op,
                                 const int64_t *dims, mfx_config *cfg) {
  (void)user;
  (void)target;
  (void)dims;
  (void)cfg;
  return mfx_fail(MFX_ERR_NOT_FOUND, "no tuning record for %s", op->name);
}

static mfx_moe *make_layer_on(const char *target, int D, int H, int k, const char *kinds,
                              uint64_t seed, mfx_moe_config_fn choose, void *user) {
  mfx_moe_spec spec = make_spec(D, H, k, kinds);
  spec.target = target;
  spec.choose_config = choose;
  spec.choose_user = user;
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_create(&spec, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, seed), MFX_OK);
  return moe;
}

static mfx_moe *make_layer_with(int D, int H, int k, const char *kinds, uint64_t seed,
                                mfx_moe_config_fn choose, void *user) {
  return make_layer_on(NULL, D, H, k, kinds, seed, choose, user);
}

static mfx_moe *make_layer(int D, int H, int k, const char *kinds, uint64_t seed) {
  return make_layer_with(D, H, k, kinds, seed, quick_config, NULL);
}

static mfx_pool *test_pool(void) {
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  return pool;
}

/* max |a - b| / max(max |b|, tiny) */
static double rel_err(const float *a, const float *b, int64_t n) {
  double worst = 0.0, scale = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return worst / scale;
}

/* The shift expert's integers against the host's. Its GELU step
 * (q16_gelu) may be one Q16.16 unit off per hidden element: the kernels'
 * erf is codegen_math.c's polynomial, the host's glibc's erff (the bound is
 * proved in ops/elementwise.c and asserted in tests/test_ops.c). The first
 * shift layer, before it, is exact. The second sums G[n,k] (hq[k] >> S[n,k])
 * with G in {-1, 0, 1}; an arithmetic shift is floor(hq / 2^s), and
 * floor((a + 1) / 2^s) - floor(a / 2^s) is 0 or 1, so each hidden element
 * one unit off moves each output by at most one unit (wrapping sums keep
 * that, the results being far from +-2^31 here): an output is at most H
 * units off, H the hidden width. Returns the largest difference. */
static int64_t q16_max_diff(const int32_t *a, const int32_t *b, int64_t n, int64_t *count) {
  int64_t worst = 0;
  *count = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t d = llabs((int64_t)a[i] - b[i]);
    worst = d > worst ? d : worst;
    *count += d != 0;
  }
  return worst;
}

static void assert_shift_within(const int32_t *yq, const int32_t *yq_ref, int64_t n, int64_t H) {
  int64_t count;
  int64_t worst = q16_max_diff(yq, yq_ref, n, &count);
  ck_assert_msg(worst <= H, "shift expert: an output %lld units from the host (at most %lld: "
                "one per hidden element)", (long long)worst, (long long)H);
  fprintf(stderr, "shift expert: %lld of %lld outputs differ from the host, by at most %lld\n",
          (long long)count, (long long)n, (long long)worst);
}

/* ---- arithmetic ------------------------------------------------------------ */

START_TEST(test_bucket) {
  static const int64_t cases[][2] = {{0, 0},       {1, 16},      {16, 16},    {17, 32},
                                     {128, 128},   {129, 144},   {255, 256},  {256, 256},
                                     {257, 288},   {1568, 1664}, {1024, 1024}, {3136, 3328},
                                     {5000, 5120}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    ck_assert_int_eq(mfx_moe_bucket(cases[i][0]), cases[i][1]);
  for (int64_t n = 129; n < 70000; n += 97) {
    int64_t b = mfx_moe_bucket(n);
    ck_assert(b >= n && (double)b <= 1.125 * (double)n + 1e-9);
  }
}
END_TEST

START_TEST(test_q16_and_gelu) {
  ck_assert_int_eq(mfx_q16_from_float(1.0f), 65536);
  ck_assert_int_eq(mfx_q16_from_float(-0.5f), -32768);
  ck_assert_int_eq(mfx_q16_from_float(1.5f / 65536.0f), 2);  /* tie to even */
  ck_assert_int_eq(mfx_q16_from_float(2.5f / 65536.0f), 2);
  ck_assert_int_eq(mfx_q16_from_float(-2.5f / 65536.0f), -2);
  ck_assert_int_eq(mfx_q16_from_float(1e9f), INT32_MAX);
  ck_assert_int_eq(mfx_q16_from_float(-1e9f), INT32_MIN);
  ck_assert_int_eq(mfx_q16_from_float(NAN), 0);
  ck_assert(mfx_q16_to_float(98304) == 1.5f);
  ck_assert(mfx_q16_to_float(-1) == -1.0f / 65536.0f);
  ck_assert(mfx_gelu(0.0f) == 0.0f);
  ck_assert_double_eq_tol(mfx_gelu(1.0f), 0.8413447460685429, 1e-6);
  ck_assert_double_eq_tol(mfx_gelu(-1.0f), -0.15865525393145707, 1e-6);
  ck_assert_double_eq_tol(mfx_gelu(3.0f), 2.9959502, 1e-6);
}
END_TEST

START_TEST(test_deepshift_by_hand) {
  /* w, expected S, expected G; w = G * 2^-S afterwards. */
  static const struct { float w; int s, g; } cases[] = {
      {0.5f, 1, 1},          {-0.25f, 2, -1},       {1.0f, 0, 1},
      {3.0f, 0, 1},          /* log2 3 = 1.58 -> p = 2 -> S clamped to 0 */
      {-100.0f, 0, -1},      {0.7f, 1, 1},          /* log2 0.7 = -0.515 -> p = -1 */
      {0.71f, 0, 1},         /* log2 0.71 = -0.494 -> p = 0 */
      {0.09f, 3, 1},         /* log2 0.09 = -3.47 -> p = -3 */
      {-0.0468f, 4, -1},     /* log2 0.0468 = -4.42 -> p = -4 */
      {0.0f, 0, 0},          {-0.0f, 0, 0},
      {3.0517578125e-05f, 15, 1},    /* 2^-15 */
      {-2.3e-05f, 15, -1},           /* log2 = -15.41 -> p = -15 */
      {1.9e-05f, 0, 0},              /* log2 = -15.68 -> p = -16: dropped */
      {1.52587890625e-05f, 0, 0},    /* 2^-16: dropped */
      {-1e-30f, 0, 0},
  };
  size_t n = sizeof cases / sizeof cases[0];
  float w[32];
  int8_t s[32], g[32];
  for (size_t i = 0; i < n; i++) w[i] = cases[i].w;
  ck_assert_int_eq(mfx_deepshift_convert(w, (int64_t)n, s, g), MFX_OK);
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg(s[i] == cases[i].s && g[i] == cases[i].g, "w=%g: got S=%d G=%d, want S=%d G=%d",
                  (double)w[i], s[i], g[i], cases[i].s, cases[i].g);
  }
}
END_TEST

START_TEST(test_deepshift_errors) {
  float w[3] = {0.5f, NAN, 1.0f};
  int8_t s[3], g[3];
  expect_error(mfx_deepshift_convert(w, 3, s, g), MFX_ERR_INVALID, "weight 1 is nan");
  w[1] = INFINITY;
  expect_error(mfx_deepshift_convert(w, 3, s, g), MFX_ERR_INVALID, "expected a finite");
  expect_error(mfx_deepshift_convert(NULL, 3, s, g), MFX_ERR_INVALID, "must not be NULL");
  expect_error(mfx_deepshift_convert(w, -1, s, g), MFX_ERR_INVALID, "negative");
}
END_TEST

/* ---- spec and weights ------------------------------------------------------------ */

START_TEST(test_kinds_parse) {
  mfx_expert_kind kinds[4];
  int n = 0;
  ck_assert_int_eq(mfx_expert_kinds_parse("mult,shift,null", kinds, 4, &n), MFX_OK);
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(kinds[0], MFX_EXPERT_MULT);
  ck_assert_int_eq(kinds[1], MFX_EXPERT_SHIFT);
  ck_assert_int_eq(kinds[2], MFX_EXPERT_NULL);
  ck_assert_str_eq(mfx_expert_kind_name(MFX_EXPERT_SHIFT), "shift");
  expect_error(mfx_expert_kinds_parse("mult,mul", kinds, 4, &n), MFX_ERR_INVALID,
               "unknown expert kind 'mul'");
  expect_error(mfx_expert_kinds_parse("mult,,shift", kinds, 4, &n), MFX_ERR_INVALID, "empty");
  expect_error(mfx_expert_kinds_parse("", kinds, 4, &n), MFX_ERR_INVALID, "empty");
  expect_error(mfx_expert_kinds_parse("mult,mult,mult,mult,mult", kinds, 4, &n),
               MFX_ERR_INVALID, "more than 4");
}
END_TEST

START_TEST(test_create_errors) {
  mfx_moe *moe = NULL;
  mfx_moe_spec spec = make_spec(8, 16, 1, "mult,shift");
  spec.k = 3;
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "k=3; expected 1 <= k <= E=2");
  ck_assert_ptr_null(moe);
  spec.k = 0;
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "k=0");
  spec = make_spec(0, 16, 1, "mult");
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "D=0, H=16 must be positive");
  spec = make_spec(8, -4, 1, "mult");
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "H=-4 must be positive");
  spec = make_spec(8, 8, 1, "mult");
  spec.experts = 0;
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "E=0 experts");
  spec.experts = 1;
  spec.kinds[0] = (mfx_expert_kind)7;
  expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID, "has kind 7");
  expect_error(mfx_moe_create(NULL, &moe), MFX_ERR_INVALID, "must not be NULL");
  spec = make_spec(8, 8, 1, "mult");
  static const char *const bad_targets[] = {"gpu", "cuda:", "cuda:x", "cuda:1a", "CPU", "",
                                            "cuda:123456789"};
  for (size_t i = 0; i < sizeof bad_targets / sizeof bad_targets[0]; i++) {
    spec.target = bad_targets[i];
    expect_error(mfx_moe_create(&spec, &moe), MFX_ERR_INVALID,
                 "expected cpu, cuda, cuda:N or emulate");
    ck_assert_ptr_null(moe);
  }
}
END_TEST

START_TEST(test_weight_errors) {
  mfx_moe *moe = make_layer(4, 4, 1, "mult,null,shift", 1);
  float w[16] = {0}, r[12] = {0};
  expect_error(mfx_moe_set_expert(moe, 3, w, w), MFX_ERR_INVALID, "expert 3; expected 0..2");
  expect_error(mfx_moe_set_expert(moe, 1, w, w), MFX_ERR_INVALID, "null expert has no weights");
  ck_assert_int_eq(mfx_moe_set_expert(moe, 1, NULL, NULL), MFX_OK);
  expect_error(mfx_moe_set_expert(moe, 0, w, NULL), MFX_ERR_INVALID, "must not be NULL");
  w[5] = NAN;
  expect_error(mfx_moe_set_expert(moe, 2, w, w), MFX_ERR_INVALID, "weight 5 is nan");
  r[2] = INFINITY;
  expect_error(mfx_moe_set_router(moe, r, NULL), MFX_ERR_INVALID, "weight 2 is inf");
  const int8_t *s, *g;
  expect_error(mfx_moe_shift_weights(moe, 0, 0, &s, &g), MFX_ERR_INVALID, "is mult, not shift");
  expect_error(mfx_moe_shift_weights(moe, 2, 2, &s, &g), MFX_ERR_INVALID, "layer 2");
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_shift_weights_converted) {
  mfx_moe *moe = make_layer(3, 2, 1, "shift", 1);
  const float w1[6] = {0.5f, -0.25f, 3.0f, 0.0f, 1e-6f, -0.09f}; /* [H=2, D=3] */
  const float w2[6] = {1.0f, -1.0f, 0.125f, 0.7f, -0.71f, 2e-5f}; /* [D=3, H=2] */
  ck_assert_int_eq(mfx_moe_set_expert(moe, 0, w1, w2), MFX_OK);
  const int8_t *s, *g;
  ck_assert_int_eq(mfx_moe_shift_weights(moe, 0, 0, &s, &g), MFX_OK);
  const int8_t s1[6] = {1, 2, 0, 0, 0, 3}, g1[6] = {1, -1, 1, 0, 0, -1};
  ck_assert_mem_eq(s, s1, 6);
  ck_assert_mem_eq(g, g1, 6);
  ck_assert_int_eq(mfx_moe_shift_weights(moe, 0, 1, &s, &g), MFX_OK);
  const int8_t s2[6] = {0, 0, 3, 1, 0, 0}, g2[6] = {1, -1, 1, 1, -1, 0};
  ck_assert_mem_eq(s, s2, 6);
  ck_assert_mem_eq(g, g2, 6);
  mfx_moe_destroy(moe);
}
END_TEST

/* ---- the layer against the reference ----------------------------------------------- */

typedef struct {
  int64_t T;
  int D, H, k;
  const char *kinds;
} layer_case;

static void check_layer_on(const char *target, const layer_case *c, mfx_pool *pool) {
  mfx_moe *moe = make_layer_on(target, c->D, c->H, c->k, c->kinds, (uint64_t)c->T, quick_config,
                               NULL);
  int E = mfx_moe_get_spec(moe)->experts;
  int64_t n = c->T * c->D;
  float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
  float *logits = malloc((size_t)(c->T * E) * 4), *ref_logits = malloc((size_t)(c->T * E) * 4);
  fill_uniform(x, n, -1.0f, 1.0f, (uint64_t)c->T + 7);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  ck_assert_msg(mfx_moe_forward(moe, &env, x, c->T, y, &trace) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_reference(moe, x, c->T, logits, want, ref_logits), MFX_OK);
  double lerr = rel_err(logits, ref_logits, c->T * E), yerr = rel_err(y, want, n);
  ck_assert_msg(lerr < 1e-5, "T=%lld D=%d H=%d %s: logits rel err %g", (long long)c->T, c->D,
                c->H, c->kinds, lerr);
  ck_assert_msg(yerr < 1e-4, "%s: T=%lld D=%d H=%d k=%d %s: output rel err %g",
                target ? target : "cpu", (long long)c->T, c->D, c->H, c->k, c->kinds, yerr);
  double total = 0.0;
  for (int e = 0; e < E; e++) total += trace.counts[e];
  ck_assert_double_eq(total, (double)(c->T * c->k));
  free(x);
  free(y);
  free(want);
  free(logits);
  free(ref_logits);
  mfx_moe_destroy(moe);
}

START_TEST(test_layer_vs_reference) {
  static const layer_case cases[] = {
      {37, 16, 24, 1, "mult,shift"},
      {30, 32, 48, 2, "mult,shift,null"},
      {5, 8, 8, 1, "mult"},
      {61, 24, 40, 2, "shift,mult,shift,mult"},
      {40, 13, 7, 3, "shift,mult,null,mult"},
  };
  mfx_pool *pool = test_pool();
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_layer_on(NULL, &cases[i], pool);
  mfx_pool_destroy(pool);
}
END_TEST

/* ---- the layer on a GPU target --------------------------------------------------------- */

/* Shapes that divide no GPU tile: 37 tokens pad to a 48-row bucket, D=13
 * and H=7/40 leave partial blocks and thread tiles everywhere. */
static const layer_case gpu_cases[] = {
    {37, 16, 24, 1, "mult,shift"},
    {40, 13, 7, 2, "shift,mult,null"},
    {130, 24, 40, 2, "mult,shift,shift"},
};

START_TEST(test_gpu_emulated_vs_reference) {
  mfx_pool *pool = test_pool();
  for (size_t i = 0; i < sizeof gpu_cases / sizeof gpu_cases[0]; i++)
    check_layer_on("emulate", &gpu_cases[i], pool);
  mfx_pool_destroy(pool);
}
END_TEST

/* A real GPU, when this machine has one (else a loud skip). */
START_TEST(test_gpu_real_vs_reference) {
  mfx_device *dev = NULL;
  if (mfx_device_open("cuda", &dev) != MFX_OK) {
    printf("SKIP the MoE layer on a real GPU: %s\n", mfx_last_error());
    return;
  }
  printf("the MoE layer on %s\n", mfx_device_description(dev));
  mfx_device_close(dev);
  for (size_t i = 0; i < sizeof gpu_cases / sizeof gpu_cases[0]; i++)
    check_layer_on("cuda", &gpu_cases[i], NULL);
}
END_TEST

/* The emulated GPU kernels run the same polynomial erf as the CPU's: the
 * integer pipeline of a shift expert is within H units of the host's
 * (assert_shift_within). */
START_TEST(test_gpu_emulated_shift_exact) {
  mfx_moe *moe = make_layer_on("emulate", 24, 40, 1, "shift,shift", 3, NULL, NULL);
  int64_t T = 21, n = T * 24;
  float *x = malloc((size_t)n * 4);
  int32_t *xq = malloc((size_t)n * 4), *yq = malloc((size_t)n * 4), *yq_ref = malloc((size_t)n * 4);
  fill_uniform(x, n, -2.0f, 2.0f, 5);
  for (int64_t i = 0; i < n; i++) xq[i] = mfx_q16_from_float(x[i]);
  ck_assert_msg(mfx_moe_shift_expert_q16(moe, 1, NULL, xq, T, yq) == MFX_OK, "%s",
                mfx_last_error());
  ck_assert_int_eq(mfx_moe_reference_shift_q16(moe, 1, xq, T, yq_ref), MFX_OK);
  assert_shift_within(yq, yq_ref, n, 40);
  free(x);
  free(xq);
  free(yq);
  free(yq_ref);
  mfx_moe_destroy(moe);
}
END_TEST

/* New weights reach the device before the next forward. */
START_TEST(test_gpu_weights_follow) {
  mfx_moe *moe = make_layer_on("emulate", 8, 12, 1, "mult", 1, NULL, NULL);
  int64_t T = 9, n = T * 8;
  float x[72], y[72], want[72], w1[96], w2[96];
  fill_uniform(x, n, -1.0f, 1.0f, 2);
  ck_assert_int_eq(mfx_moe_expert_forward(moe, 0, NULL, x, T, y), MFX_OK);
  fill_uniform(w1, 96, -0.5f, 0.5f, 3);
  fill_uniform(w2, 96, -0.5f, 0.5f, 4);
  ck_assert_int_eq(mfx_moe_set_expert(moe, 0, w1, w2), MFX_OK);
  ck_assert_int_eq(mfx_moe_expert_forward(moe, 0, NULL, x, T, y), MFX_OK);
  for (int64_t t = 0; t < T; t++) {
    for (int d = 0; d < 8; d++) {
      double acc = 0.0;
      for (int h = 0; h < 12; h++) {
        double u = 0.0;
        for (int i = 0; i < 8; i++) u += (double)x[t * 8 + i] * w1[h * 8 + i];
        acc += (double)mfx_gelu((float)u) * w2[d * 12 + h];
      }
      want[t * 8 + d] = (float)acc;
    }
  }
  ck_assert_msg(rel_err(y, want, n) < 1e-5, "after new weights: rel err %g", rel_err(y, want, n));
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_gpu_kernel_list) {
  mfx_moe *moe = make_layer_on("emulate", 16, 24, 1, "mult,shift,null", 1, NULL, NULL);
  ck_assert(mfx_moe_on_gpu(moe));
  ck_assert_ptr_nonnull(strstr(mfx_moe_target_description(moe), "emulated"));
  ck_assert_ptr_nonnull(mfx_moe_device_info(moe));
  ck_assert_int_eq(mfx_moe_device_info(moe)->kind, MFX_DEVICE_CPU); /* emulated on it */
  ck_assert_int_eq(mfx_moe_prepare(moe, 20), MFX_OK);
  /* mult: linear_gelu, linear; shift: shift_linear_q16_gelu, shift_linear_dequantize */
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 4);
  ck_assert_ptr_null(mfx_moe_kernel_at(moe, 0));
  ck_assert_ptr_null(mfx_moe_gpu_kernel_at(moe, 0)); /* emulated: no PTX */
  ck_assert_int_eq(mfx_moe_prepare(moe, 17), MFX_OK); /* the same bucket: nothing new */
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 4);
  mfx_moe_destroy(moe);
  mfx_moe *cpu = make_layer(16, 24, 1, "mult", 1);
  ck_assert(!mfx_moe_on_gpu(cpu));
  ck_assert_str_eq(mfx_moe_target_description(cpu), "cpu");
  ck_assert_ptr_null(mfx_moe_device_info(cpu));
  mfx_moe_destroy(cpu);
}
END_TEST

/* The chooser sees the GPU target; its failure, and an impossible GPU
 * config, stop the pass with a message naming the kernel and target. */
static mfx_status gpu_chooser(void *user, const char *target, const mfx_op *op,
                              const int64_t *dims, mfx_config *cfg) {
  (void)dims;
  int *mode = user;
  ck_assert_str_eq(target, "cuda");
  if (*mode == 0) return mfx_fail(MFX_ERR_NOT_FOUND, "no GPU record for %s", op->name);
  if (strcmp(op->name, *mode == 1 ? "linear" : "shift_linear_q16_gelu") != 0) return MFX_OK;
  /* 64 x 64 threads: over 1024 per block */
  mfx_status st = mfx_config_set_for(op, "cuda", cfg, "block_m", 64);
  if (st == MFX_OK) st = mfx_config_set_for(op, "cuda", cfg, "thread_m", 1);
  if (st == MFX_OK) st = mfx_config_set_for(op, "cuda", cfg, "block_n", 64);
  if (st == MFX_OK) st = mfx_config_set_for(op, "cuda", cfg, "thread_n", 1);
  return st;
}

START_TEST(test_gpu_config_errors) {
  int mode = 0;
  mfx_moe *moe = make_layer_on("emulate", 8, 8, 1, "mult", 1, gpu_chooser, &mode);
  float x[32] = {0}, y[32];
  expect_error(mfx_moe_forward(moe, NULL, x, 4, y, NULL), MFX_ERR_NOT_FOUND, "no GPU record for linear");
  ck_assert_msg(strstr(mfx_last_error(), "choosing the config of linear for cuda") != NULL, "%s",
                mfx_last_error());
  mode = 1;
  mfx_status st = mfx_moe_forward(moe, NULL, x, 4, y, NULL);
  ck_assert_int_eq(st, MFX_ERR_SCHEDULE);
  ck_assert_msg(strstr(mfx_last_error(), "threads per block") != NULL, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 0);
  mfx_moe_destroy(moe);
  /* A failure inside a batch built side by side: the kernels that built
   * are kept, the first failure is the error. */
  mode = 2;
  moe = make_layer_on("emulate", 8, 8, 1, "mult,shift", 1, gpu_chooser, &mode);
  st = mfx_moe_prepare(moe, 4);
  ck_assert_int_eq(st, MFX_ERR_SCHEDULE);
  ck_assert_msg(strstr(mfx_last_error(), "compiling shift_linear_q16_gelu for cuda") != NULL, "%s",
                mfx_last_error());
  /* linear_gelu, linear and shift_linear_dequantize; shift_linear_q16_gelu failed */
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 3);
  mfx_moe_destroy(moe);
}
END_TEST

/* On the device: every token to null experts (nothing to gather or
 * combine), and an expert that gets no token while another gets all. */
START_TEST(test_gpu_pass_edges) {
  int64_t T = 21, D = 8;
  float x[21 * 8], y[21 * 8], want[21 * 8], logits[21 * 3];
  fill_uniform(x, T * D, -1.0f, 1.0f, 12);
  mfx_moe *all_null = make_layer_on("emulate", (int)D, 16, 2, "null,null", 1, NULL, NULL);
  for (int64_t i = 0; i < T * D; i++) y[i] = 1.0f;
  ck_assert_int_eq(mfx_moe_forward(all_null, NULL, x, T, y, NULL), MFX_OK);
  for (int64_t i = 0; i < T * D; i++) ck_assert(y[i] == 0.0f);
  mfx_moe_destroy(all_null);
  mfx_moe *moe = make_layer_on("emulate", (int)D, 16, 1, "mult,shift,null", 3, NULL, NULL);
  float w[3 * 8] = {0}, bias[3] = {0.0f, 50.0f, 0.0f}; /* every token to the shift expert */
  ck_assert_int_eq(mfx_moe_set_router(moe, w, bias), MFX_OK);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  ck_assert_double_eq(trace.counts[1], (double)T);
  ck_assert_double_eq(trace.counts[0], 0.0);
  ck_assert_int_eq(mfx_moe_reference(moe, x, T, logits, want, NULL), MFX_OK);
  ck_assert_msg(rel_err(y, want, T * D) < 1e-5, "rel err %g", rel_err(y, want, T * D));
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_gpu_missing_driver) {
  setenv("MFX_CUDA_LIBRARY", "/nonexistent/mfx/libcuda.so.1", 1);
  mfx_moe_spec spec = make_spec(8, 8, 1, "mult,shift");
  spec.target = "cuda:1";
  mfx_moe *moe = NULL;
  mfx_status st = mfx_moe_create(&spec, &moe);
  ck_assert_int_ne(st, MFX_OK);
  ck_assert_ptr_null(moe);
  ck_assert_msg(strstr(mfx_last_error(), "moe: opening target 'cuda:1'") != NULL, "%s",
                mfx_last_error());
  unsetenv("MFX_CUDA_LIBRARY");
}
END_TEST

START_TEST(test_shift_exact) {
  /* The template defaults here (quick_config elsewhere). */
  mfx_moe *moe = make_layer_with(24, 40, 1, "shift,shift", 3, NULL, NULL);
  mfx_pool *pool = test_pool();
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  int64_t T = 16, n = T * 24; /* one bucket: the router and both experts, M=16 */
  float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
  float *logits = malloc((size_t)T * 2 * 4);
  int32_t *xq = malloc((size_t)n * 4), *yq = malloc((size_t)n * 4), *yq_ref = malloc((size_t)n * 4);
  fill_uniform(x, n, -2.0f, 2.0f, 5);
  for (int64_t i = 0; i < n; i++) xq[i] = mfx_q16_from_float(x[i]);
  ck_assert_int_eq(mfx_moe_shift_expert_q16(moe, 1, &env, xq, T, yq), MFX_OK);
  ck_assert_int_eq(mfx_moe_reference_shift_q16(moe, 1, xq, T, yq_ref), MFX_OK);
  assert_shift_within(yq, yq_ref, n, 40);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  ck_assert_int_eq(mfx_moe_forward(moe, &env, x, T, y, &trace), MFX_OK);
  ck_assert_int_eq(mfx_moe_reference(moe, x, T, logits, want, NULL), MFX_OK);
  /* top-1: y = w q16_to_float(yq), w <= 1, for both host and kernels: at most
   * H = 40 units of 2^-16, and the product's rounding. */
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)y[i] - (double)want[i]));
  ck_assert_msg(worst <= 40.0 / 65536.0 * (1.0 + 0x1p-20), "shift layer differs by %g", worst);
  free(x);
  free(y);
  free(want);
  free(logits);
  free(xq);
  free(yq);
  free(yq_ref);
  mfx_pool_destroy(pool);
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_null_experts) {
  int64_t T = 64, D = 8;
  float x[64 * 8], y[64 * 8];
  fill_uniform(x, T * D, -1.0f, 1.0f, 11);
  mfx_moe *all_null = make_layer((int)D, 16, 2, "null,null", 1);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  ck_assert_int_eq(mfx_moe_forward(all_null, NULL, x, T, y, &trace), MFX_OK);
  for (int64_t i = 0; i < T * D; i++) ck_assert(y[i] == 0.0f);
  ck_assert_int_eq(mfx_moe_kernel_count(all_null) , 1); /* the router only */
  mfx_moe_destroy(all_null);

  mfx_moe *moe = make_layer((int)D, 16, 1, "mult,null", 2);
  int32_t chosen[64];
  float gates[64], row[8];
  memset(&trace, 0, sizeof trace);
  trace.chosen = chosen;
  trace.gates = gates;
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  ck_assert(trace.counts[0] > 0 && trace.counts[1] > 0);
  ck_assert(trace.expert_s[1] == 0.0);
  for (int64_t t = 0; t < T; t++) {
    ck_assert(gates[t] == 1.0f);
    if (chosen[t] == 1) {
      for (int64_t i = 0; i < D; i++) ck_assert(y[t * D + i] == 0.0f);
    } else {
      ck_assert_int_eq(mfx_moe_expert_forward(moe, 0, NULL, x + t * D, 1, row), MFX_OK);
      ck_assert(rel_err(y + t * D, row, D) < 1e-6);
    }
  }
  ck_assert_int_eq(mfx_moe_expert_forward(moe, 1, NULL, x, 3, y), MFX_OK);
  for (int i = 0; i < 3 * 8; i++) ck_assert(y[i] == 0.0f);
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_top2_routing) {
  int64_t T = 40, D = 12;
  float x[40 * 12], y[40 * 12], logits[40 * 3], gates[40 * 2], a[12], b[12];
  int32_t chosen[40 * 2];
  fill_uniform(x, T * D, -1.0f, 1.0f, 21);
  mfx_moe *moe = make_layer((int)D, 20, 2, "mult,shift,mult", 4);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  trace.chosen = chosen;
  trace.gates = gates;
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  for (int64_t t = 0; t < T; t++) {
    int e0 = chosen[2 * t], e1 = chosen[2 * t + 1];
    ck_assert_int_ne(e0, e1);
    ck_assert(logits[t * 3 + e0] >= logits[t * 3 + e1]);
    ck_assert_double_eq_tol(gates[2 * t] + gates[2 * t + 1], 1.0, 1e-6);
    ck_assert(gates[2 * t] >= gates[2 * t + 1]);
    ck_assert_int_eq(mfx_moe_expert_forward(moe, e0, NULL, x + t * D, 1, a), MFX_OK);
    ck_assert_int_eq(mfx_moe_expert_forward(moe, e1, NULL, x + t * D, 1, b), MFX_OK);
    for (int64_t i = 0; i < D; i++) {
      double want = gates[2 * t] * a[i] + gates[2 * t + 1] * b[i];
      ck_assert_double_eq_tol(y[t * D + i], want, 1e-5);
    }
  }
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_bias_routing) {
  int64_t T = 50, D = 8;
  float x[50 * 8], y[50 * 8], want[50 * 8], wr[3 * 8], gates[50];
  fill_uniform(x, T * D, -1.0f, 1.0f, 31);
  fill_uniform(wr, 3 * D, -0.5f, 0.5f, 32);
  mfx_moe *moe = make_layer((int)D, 16, 1, "mult,shift,mult", 5);
  const float bias[3] = {0.0f, 2.0f, 0.0f}; /* p + bias: expert 1 always wins */
  ck_assert_int_eq(mfx_moe_set_router(moe, wr, bias), MFX_OK);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.gates = gates;
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  ck_assert_double_eq(trace.counts[1], (double)T);
  for (int64_t t = 0; t < T; t++) ck_assert(gates[t] == 1.0f); /* unbiased, renormalised */
  ck_assert_int_eq(mfx_moe_expert_forward(moe, 1, NULL, x, T, want), MFX_OK);
  ck_assert(rel_err(y, want, T * D) == 0.0);
  ck_assert_int_eq(mfx_moe_reference(moe, x, T, NULL, want, NULL), MFX_OK);
  ck_assert(rel_err(y, want, T * D) == 0.0);
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_kernel_cache) {
  int64_t T = 60, D = 8;
  float x[60 * 8], y[60 * 8];
  fill_uniform(x, T * D, -1.0f, 1.0f, 41);
  int calls = 0;
  mfx_moe *moe = make_layer_with((int)D, 16, 1, "mult,shift,mult", 6, quick_config, &calls);
  ck_assert_int_eq(mfx_moe_prepare(moe, 30), MFX_OK);
  /* M=32: linear_gelu [D->H], linear [H->D], shift_linear_q16_gelu [D->H] and
   * shift_linear_dequantize [H->D], shared by experts of a kind */
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 4);
  ck_assert_int_eq(calls, 4);
  const mfx_op_kernel *k0 = mfx_moe_kernel_at(moe, 0);
  ck_assert_ptr_nonnull(k0);
  ck_assert_int_eq(k0->dims[0], 32);
  ck_assert_int_eq(mfx_config_get(&k0->cfg, "unroll"), 0);
  ck_assert_ptr_null(mfx_moe_kernel_at(moe, 4));
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  ck_assert(trace.kernels_compiled >= 1);
  ck_assert(trace.compile_s > 0.0);
  ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y, &trace), MFX_OK);
  ck_assert_int_eq(trace.kernels_compiled, 0); /* same buckets: all cached */
  ck_assert_int_eq(calls, mfx_moe_kernel_count(moe));
  ck_assert(trace.total_s > 0.0);
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_config_errors) {
  float x[4 * 8] = {0}, y[4 * 8];
  mfx_moe *moe = make_layer_with(8, 8, 1, "mult", 1, failing_config, NULL);
  expect_error(mfx_moe_forward(moe, NULL, x, 4, y, NULL), MFX_ERR_NOT_FOUND,
               "moe router: moe: choosing the config of linear M=16,N=1,K=8: no tuning record");
  expect_error(mfx_moe_prepare(moe, 4), MFX_ERR_NOT_FOUND, "no tuning record for linear");
  ck_assert_int_eq(mfx_moe_kernel_count(moe), 0);
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(test_forward_errors) {
  mfx_moe *moe = make_layer(4, 4, 1, "mult,shift", 1);
  float x[8] = {0}, y[8];
  int32_t q[8] = {0};
  expect_error(mfx_moe_forward(moe, NULL, x, 0, y, NULL), MFX_ERR_INVALID, "0 tokens");
  expect_error(mfx_moe_forward(moe, NULL, NULL, 2, y, NULL), MFX_ERR_INVALID, "must not be NULL");
  expect_error(mfx_moe_forward(NULL, NULL, x, 2, y, NULL), MFX_ERR_INVALID, "must not be NULL");
  expect_error(mfx_moe_expert_forward(moe, 2, NULL, x, 2, y), MFX_ERR_INVALID, "expert 2");
  expect_error(mfx_moe_expert_forward(moe, -1, NULL, x, 2, y), MFX_ERR_INVALID, "expert -1");
  expect_error(mfx_moe_expert_forward(moe, 0, NULL, x, -3, y), MFX_ERR_INVALID, "-3 tokens");
  expect_error(mfx_moe_shift_expert_q16(moe, 0, NULL, q, 2, q), MFX_ERR_INVALID, "not shift");
  expect_error(mfx_moe_reference(moe, x, 0, NULL, y, NULL), MFX_ERR_INVALID, "0 tokens");
  expect_error(mfx_moe_reference_shift_q16(moe, 0, q, 2, q), MFX_ERR_INVALID, "not shift");
  expect_error(mfx_moe_prepare(moe, 0), MFX_ERR_INVALID, "0 tokens");
  mfx_moe_destroy(moe);
}
END_TEST

/* ---- the latency profiler and table ------------------------------------------------ */

static volatile double sink;

/* Work proportional to tokens: a latency that grows with n. */
static mfx_status busy_expert(void *user, int64_t tokens) {
  int scale = *(int *)user;
  double acc = 0.0;
  for (int64_t i = 0; i < tokens * scale; i++) acc += (double)i * 1e-9;
  sink = acc;
  return MFX_OK;
}

static mfx_status failing_expert(void *user, int64_t tokens) {
  (void)user;
  return mfx_fail(MFX_ERR_DEVICE, "kernel launch failed at %lld", (long long)tokens);
}

START_TEST(test_profile_measures) {
  mfx_profile_options o;
  mfx_profile_options_default(&o);
  o.min_seconds = 0.002;
  int scale = 2000;
  const int64_t tokens[4] = {50, 100, 200, 400};
  mfx_latency_expert x;
  memset(&x, 0, sizeof x);
  ck_assert_int_eq(mfx_profile_expert(busy_expert, &scale, tokens, 4, &o, &x), MFX_OK);
  ck_assert_int_eq(x.points, 4);
  ck_assert(x.seconds[3] > x.seconds[0]);
  ck_assert(x.b > 0.0);
  ck_assert(x.r2 > 0.5);
  const int64_t bad[3] = {100, 50, 200}, same[2] = {8, 8};
  expect_error(mfx_profile_expert(busy_expert, &scale, bad, 3, &o, &x), MFX_ERR_INVALID,
               "ascending");
  expect_error(mfx_profile_expert(busy_expert, &scale, same, 2, &o, &x), MFX_ERR_INVALID,
               "two distinct");
  expect_error(mfx_profile_expert(busy_expert, &scale, tokens, 1, &o, &x), MFX_ERR_INVALID,
               "1 token counts");
  expect_error(mfx_profile_expert(failing_expert, NULL, tokens, 4, &o, &x), MFX_ERR_DEVICE,
               "profile at 50 tokens: kernel launch failed");
  o.min_repeats = 0;
  double m;
  expect_error(mfx_profile_measure(busy_expert, &scale, 10, &o, &m), MFX_ERR_INVALID,
               "min_repeats");
}
END_TEST

/* An expert that reports its own time (as a GPU expert reports its kernels'
 * device-event time): 1 ms + 2 us per token, whatever the host clock says. */
typedef struct {
  int64_t last_tokens;
  int calls;
} self_timed;

static mfx_status self_timed_call(void *user, int64_t tokens) {
  self_timed *s = user;
  s->last_tokens = tokens;
  s->calls++;
  return MFX_OK;
}

static double self_timed_seconds(void *user) {
  const self_timed *s = user;
  return 1e-3 + 2e-6 * (double)s->last_tokens;
}

START_TEST(test_profile_own_clock) {
  mfx_profile_options o;
  mfx_profile_options_default(&o);
  ck_assert_ptr_null(o.seconds);
  o.seconds = self_timed_seconds;
  o.min_seconds = 0.0;
  self_timed s = {0, 0};
  const int64_t tokens[3] = {100, 200, 400};
  mfx_latency_expert x;
  memset(&x, 0, sizeof x);
  ck_assert_int_eq(mfx_profile_expert(self_timed_call, &s, tokens, 3, &o, &x), MFX_OK);
  ck_assert_double_eq_tol(x.seconds[0], 1.2e-3, 1e-15);
  ck_assert_double_eq_tol(x.seconds[2], 1.8e-3, 1e-15);
  ck_assert_double_eq_tol(x.a, 1e-3, 1e-12);
  ck_assert_double_eq_tol(x.b, 2e-6, 1e-15);
  /* each count: one warm-up and min_repeats timed calls (min_seconds 0) */
  ck_assert_int_eq(s.calls, 3 * (o.warmup + o.min_repeats));
}
END_TEST

/* Two experts with exact lines: 1 ms + 1 us/token and 1 ms + 3 us/token. */
static void hand_table(mfx_latency_table *t, const char *device) {
  memset(t, 0, sizeof *t);
  snprintf(t->device, sizeof t->device, "%s", device);
  snprintf(t->target, sizeof t->target, "cpu");
  t->dim = 64;
  t->hidden = 512;
  t->at_tokens = 1000;
  t->experts = 2;
  const char *names[2] = {"mult", "shift"};
  const double slope[2] = {1e-6, 3e-6};
  for (int e = 0; e < 2; e++) {
    mfx_latency_expert *x = &t->expert[e];
    snprintf(x->name, sizeof x->name, "%s", names[e]);
    x->points = 4;
    for (int i = 0; i < 4; i++) {
      x->tokens[i] = 250 << i;
      x->seconds[i] = 1e-3 + slope[e] * (double)x->tokens[i];
    }
  }
}

START_TEST(test_latency_finish) {
  mfx_latency_table t;
  hand_table(&t, "cpu: test (1 cores)");
  ck_assert_int_eq(mfx_latency_finish(&t), MFX_OK);
  ck_assert_double_eq_tol(t.expert[0].a, 1e-3, 1e-12);
  ck_assert_double_eq_tol(t.expert[1].b, 3e-6, 1e-15);
  ck_assert_double_eq_tol(t.expert[0].latency, 2e-3, 1e-12);
  ck_assert_double_eq_tol(t.expert[1].latency, 4e-3, 1e-12);
  ck_assert_double_eq_tol(t.alpha[0], 2.0 / 3.0, 1e-9);
  ck_assert_double_eq_tol(t.alpha[1], 4.0 / 3.0, 1e-9);
  /* A negative intercept at a small at_tokens: the nearest measured median. */
  const double steep[4] = {1e-7, 1e-3, 3e-3, 7e-3};
  memcpy(t.expert[0].seconds, steep, sizeof steep);
  t.at_tokens = 1;
  ck_assert_int_eq(mfx_latency_finish(&t), MFX_OK);
  ck_assert(t.expert[0].a < 0.0);
  ck_assert(t.expert[0].latency == 1e-7);
  t.experts = 0;
  expect_error(mfx_latency_finish(&t), MFX_ERR_INVALID, "0 experts");
  hand_table(&t, "x");
  t.expert[1].points = 1;
  expect_error(mfx_latency_finish(&t), MFX_ERR_INVALID, "expert 1 (shift) has 1 points");
}
END_TEST

static char temp_dir[256];

static void make_temp_dir(void) {
  snprintf(temp_dir, sizeof temp_dir, "/tmp/mfx_test_moe_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(temp_dir));
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

START_TEST(test_latency_json_round_trip) {
  make_temp_dir();
  char path[400];
  snprintf(path, sizeof path, "%s/latency.json", temp_dir);
  mfx_latency_table a, b, got;
  hand_table(&a, "cpu: Model \"X\" (2 cores)");
  ck_assert_int_eq(mfx_latency_finish(&a), MFX_OK);
  hand_table(&b, "cuda: NVIDIA H100");
  b.expert[1].seconds[3] = 9e-3;
  ck_assert_int_eq(mfx_latency_finish(&b), MFX_OK);
  ck_assert_int_eq(mfx_latency_save(path, &a), MFX_OK);
  ck_assert_int_eq(mfx_latency_save(path, &b), MFX_OK);
  ck_assert_int_eq(mfx_latency_save(path, &a), MFX_OK); /* replaces, keeps b */
  ck_assert_int_eq(mfx_latency_load(path, "cuda: NVIDIA H100", &got), MFX_OK);
  ck_assert_double_eq_tol(got.alpha[1], b.alpha[1], 1e-11);
  ck_assert_int_eq(got.expert[1].points, 4);
  ck_assert_double_eq_tol(got.expert[1].seconds[3], 9e-3, 1e-15);
  ck_assert_int_eq(mfx_latency_load(path, a.device, &got), MFX_OK);
  ck_assert_str_eq(got.device, a.device);
  ck_assert_str_eq(got.expert[1].name, "shift");
  ck_assert_int_eq(got.expert[1].tokens[2], 1000);
  ck_assert_int_eq(got.at_tokens, 1000);
  ck_assert_int_eq(got.hidden, 512);
  ck_assert_double_eq_tol(got.alpha[0] + got.alpha[1], 2.0, 1e-11);
  expect_error(mfx_latency_load(path, "cuda: other", &got), MFX_ERR_NOT_FOUND,
               "no table for device 'cuda: other'; it has 'cuda: NVIDIA H100', 'cpu: Model");
  /* the one key a prefix starts */
  memset(&got, 0, sizeof got);
  ck_assert_int_eq(mfx_latency_load(path, "cuda", &got), MFX_OK);
  ck_assert_str_eq(got.device, "cuda: NVIDIA H100");
  ck_assert_double_eq_tol(got.alpha[1], b.alpha[1], 1e-11);
  hand_table(&b, "cuda: NVIDIA A100");
  ck_assert_int_eq(mfx_latency_finish(&b), MFX_OK);
  ck_assert_int_eq(mfx_latency_save(path, &b), MFX_OK);
  expect_error(mfx_latency_load(path, "cuda", &got), MFX_ERR_INVALID, "'cuda' starts 2 device keys");
  ck_assert_int_eq(mfx_latency_load(path, "cuda: NVIDIA A", &got), MFX_OK);
  ck_assert_str_eq(got.device, "cuda: NVIDIA A100");
  char missing[400];
  snprintf(missing, sizeof missing, "%s/none.json", temp_dir);
  expect_error(mfx_latency_load(missing, NULL, &got), MFX_ERR_NOT_FOUND, "cannot open");
  unlink(path);
  rmdir(temp_dir);
}
END_TEST

START_TEST(test_latency_json_errors) {
  make_temp_dir();
  char path[400];
  snprintf(path, sizeof path, "%s/bad.json", temp_dir);
  mfx_latency_table t;
  write_text(path, "{\"format\": \"mfx-latency-1\", \"devices\": {\"d\": {\"target\": 3}}");
  expect_error(mfx_latency_load(path, "d", &t), MFX_ERR_FORMAT, "expected ',' or '}'");
  write_text(path, "{\"format\": \"mfx-latency-1\", \"devices\": {\"d\": {\"target\": 3}}}");
  expect_error(mfx_latency_load(path, "d", &t), MFX_ERR_FORMAT,
               "\"target\" is missing or not a string");
  write_text(path, "{\"format\": \"other\", \"devices\": {}}");
  expect_error(mfx_latency_load(path, "d", &t), MFX_ERR_FORMAT, "not an mfx latency table");
  write_text(path, "[1, 2,");
  expect_error(mfx_latency_load(path, "d", &t), MFX_ERR_FORMAT, "byte 6: expected a value");
  write_text(path, "{\"format\": \"mfx-latency-1\", \"devices\": {\"d\": {\"target\": \"cpu\", "
                   "\"dim\": 1, \"hidden\": 1, \"at_tokens\": 1, \"experts\": [{\"name\": \"m\", "
                   "\"tokens\": [1, 2], \"seconds\": [1], \"a\": 0, \"b\": 0, \"r2\": 1, "
                   "\"latency\": 1}], \"alpha\": [1]}}}");
  expect_error(mfx_latency_load(path, "d", &t), MFX_ERR_FORMAT, "differs in length");
  /* Saving over a corrupt file refuses rather than destroying it. */
  hand_table(&t, "cpu: x");
  ck_assert_int_eq(mfx_latency_finish(&t), MFX_OK);
  write_text(path, "not json");
  expect_error(mfx_latency_save(path, &t), MFX_ERR_FORMAT, "expected a value");
  t.device[0] = '\0';
  expect_error(mfx_latency_save(path, &t), MFX_ERR_INVALID, "device key");
  unlink(path);
  rmdir(temp_dir);
}
END_TEST

/* Every truncation of a valid table file, and every byte of it replaced by
 * a few characters that matter to JSON: each load either succeeds (a
 * table whose alpha is still positive and finite) or fails with a format
 * message, never crashes (the sanitizer build runs this too). */
START_TEST(test_latency_json_mutations) {
  make_temp_dir();
  char path[400], bad[400];
  snprintf(path, sizeof path, "%s/good.json", temp_dir);
  snprintf(bad, sizeof bad, "%s/bad.json", temp_dir);
  mfx_latency_table t;
  hand_table(&t, "cpu: x");
  ck_assert_int_eq(mfx_latency_finish(&t), MFX_OK);
  ck_assert_int_eq(mfx_latency_save(path, &t), MFX_OK);
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  char text[8192];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  ck_assert(n > 100 && n < sizeof text - 1);
  static const char swaps[] = {'\0', '"', '{', ']', ',', '-', '9', 'e', '\\', ' '};
  int ok = 0, refused = 0;
  for (size_t cut = 0; cut <= n + (sizeof swaps) * n; cut++) {
    char copy[8192];
    size_t len = n;
    memcpy(copy, text, n);
    if (cut < n) len = cut; /* a truncation */
    else if (cut > n) copy[(cut - n - 1) / sizeof swaps] = swaps[(cut - n - 1) % sizeof swaps];
    f = fopen(bad, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite(copy, 1, len, f);
    fclose(f);
    mfx_latency_table got;
    mfx_status st = mfx_latency_load(bad, "cpu: x", &got);
    if (st == MFX_OK) {
      ok++;
      for (int e = 0; e < got.experts; e++)
        ck_assert_msg(isfinite(got.alpha[e]) && got.alpha[e] > 0, "mutation %zu: alpha %g", cut,
                      got.alpha[e]);
    } else {
      refused++;
      ck_assert_msg(st == MFX_ERR_FORMAT || st == MFX_ERR_NOT_FOUND, "mutation %zu: status %d (%s)",
                    cut, (int)st, mfx_last_error());
      ck_assert(strlen(mfx_last_error()) > 0);
    }
  }
  ck_assert_int_gt(refused, (int)n); /* every truncation at least */
  ck_assert_int_gt(ok, 0);           /* the unchanged file, and harmless swaps */
  unlink(path);
  unlink(bad);
  rmdir(temp_dir);
}
END_TEST

START_TEST(test_latency_keys) {
  char key[160], path[512];
  ck_assert_int_eq(mfx_latency_host_key(key, sizeof key), MFX_OK);
  ck_assert(strncmp(key, "cpu: ", 5) == 0);
  ck_assert_ptr_nonnull(strstr(key, " cores)"));
  setenv("MFX_LATENCY", "/tmp/somewhere.json", 1);
  ck_assert_int_eq(mfx_latency_default_path(path, sizeof path), MFX_OK);
  ck_assert_str_eq(path, "/tmp/somewhere.json");
  unsetenv("MFX_LATENCY");
  expect_error(mfx_latency_host_key(key, 4), MFX_ERR_INVALID, "under 16 bytes");
}
END_TEST

static Suite *moe_suite(void) {
  Suite *s = suite_create("moe");
  TCase *math = tcase_create("arithmetic");
  tcase_add_test(math, test_bucket);
  tcase_add_test(math, test_q16_and_gelu);
  tcase_add_test(math, test_deepshift_by_hand);
  tcase_add_test(math, test_deepshift_errors);
  suite_add_tcase(s, math);

  TCase *spec = tcase_create("spec");
  tcase_add_test(spec, test_kinds_parse);
  tcase_add_test(spec, test_create_errors);
  tcase_add_test(spec, test_weight_errors);
  tcase_add_test(spec, test_shift_weights_converted);
  suite_add_tcase(s, spec);

  TCase *layer = tcase_create("layer");
  tcase_set_timeout(layer, 240);
  tcase_add_test(layer, test_layer_vs_reference);
  tcase_add_test(layer, test_shift_exact);
  tcase_add_test(layer, test_null_experts);
  tcase_add_test(layer, test_top2_routing);
  tcase_add_test(layer, test_bias_routing);
  tcase_add_test(layer, test_kernel_cache);
  tcase_add_test(layer, test_config_errors);
  tcase_add_test(layer, test_forward_errors);
  suite_add_tcase(s, layer);

  TCase *gpu = tcase_create("gpu");
  tcase_set_timeout(gpu, 240);
  tcase_add_test(gpu, test_gpu_emulated_vs_reference);
  tcase_add_test(gpu, test_gpu_emulated_shift_exact);
  tcase_add_test(gpu, test_gpu_weights_follow);
  tcase_add_test(gpu, test_gpu_kernel_list);
  tcase_add_test(gpu, test_gpu_missing_driver);
  tcase_add_test(gpu, test_gpu_config_errors);
  tcase_add_test(gpu, test_gpu_pass_edges);
  tcase_add_test(gpu, test_gpu_real_vs_reference);
  suite_add_tcase(s, gpu);

  TCase *latency = tcase_create("latency");
  tcase_set_timeout(latency, 60);
  tcase_add_test(latency, test_profile_measures);
  tcase_add_test(latency, test_profile_own_clock);
  tcase_add_test(latency, test_latency_finish);
  tcase_add_test(latency, test_latency_json_round_trip);
  tcase_add_test(latency, test_latency_json_errors);
  tcase_add_test(latency, test_latency_keys);
  tcase_add_test(latency, test_latency_json_mutations);
  suite_add_tcase(s, latency);
  return s;
}

int main(void) {
  return check_run_suite(moe_suite());
}
