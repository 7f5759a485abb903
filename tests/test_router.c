/* Router losses, balancing schemes and the latency table helper: values
 * computed by hand, gradients against central finite differences, the
 * global-batch accumulator over simulated ranks, and every error case. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/router.h"
#include "check_main.h"

/* ---- helpers ------------------------------------------------------------- */

static void expect_error(mfx_status st, mfx_status expected, const char *needle) {
  ck_assert_int_eq(st, expected);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL,
                "message '%s' lacks '%s'", mfx_last_error(), needle);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform01(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Random logits whose values within a row are at least 0.3 apart, so a
 * finite-difference step never changes the top-k selection. */
static void random_logits(float *z, int64_t tokens, int experts) {
  for (int64_t t = 0; t < tokens; t++) {
    float *row = z + t * experts;
    for (int j = 0; j < experts; j++) row[j] = (float)(0.5 * j - 0.25 * experts);
    for (int j = experts - 1; j > 0; j--) {
      int r = (int)(uniform01() * (j + 1));
      float tmp = row[j];
      row[j] = row[r];
      row[r] = tmp;
    }
    for (int j = 0; j < experts; j++) row[j] += (float)(0.2 * (uniform01() - 0.5));
  }
}

static double loss_of(mfx_router_loss_kind kind, const float *z, int64_t tokens,
                      int experts, int k, const double *alpha,
                      const mfx_router_counts *global) {
  double loss = NAN;
  mfx_status st = mfx_router_loss(kind, z, tokens, experts, k, alpha,
                                  alpha ? experts : 0, global, &loss, NULL);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  return loss;
}

/* Hand-computed example shared by several tests (T=2, E=2, k=1):
 *   z = [[ln 3, 0], [0, 0]]  ->  p = [[3/4, 1/4], [1/2, 1/2]]
 *   top-1: token 0 -> expert 0; token 1 ties -> expert 0 (lower index)
 *   c = [2, 0], I = [5/4, 3/4], P = [5/8, 3/8] */
static const float hand_logits[4] = {1.0986122886681098f, 0.0f, 0.0f, 0.0f};

/* ---- names --------------------------------------------------------------- */

START_TEST(test_names) {
  const char *names[] = {"switch", "latency", "zloss"};
  for (int i = 0; i < 3; i++) {
    mfx_router_loss_kind kind = MFX_ROUTER_LOSS_COUNT;
    ck_assert_int_eq(mfx_router_loss_from_name(names[i], &kind), MFX_OK);
    ck_assert_int_eq(kind, i);
    ck_assert_str_eq(mfx_router_loss_name(kind), names[i]);
  }
  mfx_router_loss_kind kind;
  expect_error(mfx_router_loss_from_name("balance", &kind), MFX_ERR_INVALID,
               "'balance' is unknown");
  expect_error(mfx_router_loss_from_name(NULL, &kind), MFX_ERR_INVALID, "NULL");
  ck_assert_str_eq(mfx_router_loss_name(MFX_ROUTER_LOSS_COUNT), "unknown");
}
END_TEST

/* ---- values by hand ------------------------------------------------------ */

START_TEST(test_switch_by_hand) {
  /* L = E * sum_i c_i/(kT) P_i = 2 * (2/2 * 5/8 + 0) = 5/4.
   * v_i = E c_i/(kT) / T = [1, 0]; grad = p (v - p.v):
   *   token 0: p.v = 3/4 -> [3/4 * 1/4, 1/4 * (-3/4)] = [3/16, -3/16]
   *   token 1: p.v = 1/2 -> [1/4, -1/4] */
  double loss = 0.0;
  float grad[4];
  ck_assert_int_eq(mfx_router_loss(MFX_ROUTER_SWITCH, hand_logits, 2, 2, 1, NULL,
                                   0, NULL, &loss, grad), MFX_OK);
  ck_assert_double_eq_tol(loss, 1.25, 1e-6);
  const float expected[4] = {0.1875f, -0.1875f, 0.25f, -0.25f};
  for (int i = 0; i < 4; i++) ck_assert_float_eq_tol(grad[i], expected[i], 1e-6f);
  double counts[2];
  ck_assert_int_eq(mfx_router_expert_counts(hand_logits, 2, 2, 1, counts), MFX_OK);
  ck_assert_double_eq(counts[0], 2.0);
  ck_assert_double_eq(counts[1], 0.0);
}
END_TEST

START_TEST(test_latency_by_hand) {
  /* alpha = [1, 2]:
   *   x = alpha I = [5/4, 3/2]: m = 11/8, var = 2 (1/8)^2 / (E-1) = 1/32,
   *       CV^2 = (1/32) / (121/64) = 2/121
   *   y = alpha c = [2, 0]: mean 1, var = 2, CV^2 = 2
   *   L = 2 + 2/121.
   * dCV^2/dx_i = 2(x_i - m)/((E-1) m^2) - 2 var/(E m^3)
   *            = [-16/121, 16/121] - 16/1331 = [-192, 160]/1331
   *   (check: x . dCV^2/dx = (1.25*-192 + 1.5*160)/1331 = 0, scale invariance)
   *   v = alpha dCV^2/dx = [-192, 320]/1331
   *   token 0: p.v = (0.75*-192 + 0.25*320)/1331 = -64/1331
   *            grad = [0.75*(-128), 0.25*384]/1331 = [-96, 96]/1331
   *   token 1: p.v = 64/1331, grad = [0.5*(-256), 0.5*256]/1331 = [-128, 128]/1331 */
  const double alpha[2] = {1.0, 2.0};
  double loss = 0.0;
  float grad[4];
  ck_assert_int_eq(mfx_router_loss(MFX_ROUTER_LATENCY, hand_logits, 2, 2, 1, alpha,
                                   2, NULL, &loss, grad), MFX_OK);
  ck_assert_double_eq_tol(loss, 2.0 + 2.0 / 121.0, 1e-6);
  const double expected[4] = {-96.0, 96.0, -128.0, 128.0};
  for (int i = 0; i < 4; i++) {
    ck_assert_double_eq_tol(grad[i], expected[i] / 1331.0, 1e-6);
  }
}
END_TEST

START_TEST(test_zloss_by_hand) {
  /* lse = [ln 4, ln 2]; L = ((ln 4)^2 + (ln 2)^2)/2 = 2.5 (ln 2)^2;
   * grad[t,j] = 2 lse_t p[t,j] / T = lse_t p[t,j]. */
  double loss = 0.0;
  float grad[4];
  ck_assert_int_eq(mfx_router_loss(MFX_ROUTER_ZLOSS, hand_logits, 2, 2, 1, NULL, 0,
                                   NULL, &loss, grad), MFX_OK);
  double ln2 = log(2.0);
  ck_assert_double_eq_tol(loss, 2.5 * ln2 * ln2, 1e-6);
  const double expected[4] = {2 * ln2 * 0.75, 2 * ln2 * 0.25, ln2 * 0.5, ln2 * 0.5};
  for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(grad[i], expected[i], 1e-6);
}
END_TEST

START_TEST(test_zloss_is_stable) {
  /* logsumexp of [1000, 1000] is 1000 + ln 2: no overflow. */
  const float z[2] = {1000.0f, 1000.0f};
  double loss = loss_of(MFX_ROUTER_ZLOSS, z, 1, 2, 1, NULL, NULL);
  ck_assert_double_eq_tol(loss, (1000.0 + log(2.0)) * (1000.0 + log(2.0)), 1e-6);
}
END_TEST

/* ---- properties ---------------------------------------------------------- */

START_TEST(test_switch_perfect_balance) {
  /* T=8, E=4, k=2: token t prefers experts t and t+1 (mod 4), so every
   * expert gets 4 of the 16 assignments; L = 1 whatever P is. */
  enum { T = 8, E = 4 };
  float z[T * E];
  for (int t = 0; t < T; t++) {
    for (int j = 0; j < E; j++) {
      z[t * E + j] = (float)(-((j - t + 2 * E) % E)) * (0.3f + 0.1f * t);
    }
  }
  ck_assert_double_eq_tol(loss_of(MFX_ROUTER_SWITCH, z, T, E, 2, NULL, NULL), 1.0,
                          1e-12);
  /* Unbalanced: every token prefers expert 0 -> L > 1. */
  for (int t = 0; t < T; t++) z[t * E] = 5.0f;
  ck_assert(loss_of(MFX_ROUTER_SWITCH, z, T, E, 1, NULL, NULL) > 1.5);
}
END_TEST

START_TEST(test_latency_minimal_at_equal_weighted_counts) {
  /* E=3, alpha = [1, 2, 4], T=7, k=1: alpha_i c_i are equal exactly at
   * c = [4, 2, 1]. Near one-hot logits make I ~ c; over all 3^7 assignments
   * the loss is smallest, and ~0, exactly there. */
  enum { T = 7, E = 3 };
  const double alpha[E] = {1.0, 2.0, 4.0};
  float z[T * E];
  double best = INFINITY;
  int best_counts[E] = {0, 0, 0};
  int assignments = 1;
  for (int t = 0; t < T; t++) assignments *= E;
  for (int a = 0; a < assignments; a++) {
    int code = a, counts[E] = {0, 0, 0};
    for (int t = 0; t < T; t++, code /= E) {
      int expert = code % E;
      counts[expert]++;
      for (int j = 0; j < E; j++) z[t * E + j] = j == expert ? 30.0f : 0.0f;
    }
    double loss = loss_of(MFX_ROUTER_LATENCY, z, T, E, 1, alpha, NULL);
    if (loss < best - 1e-9) {
      best = loss;
      memcpy(best_counts, counts, sizeof counts);
    }
  }
  ck_assert_double_le(best, 1e-9);
  ck_assert_int_eq(best_counts[0], 4);
  ck_assert_int_eq(best_counts[1], 2);
  ck_assert_int_eq(best_counts[2], 1);
}
END_TEST

START_TEST(test_latency_invariant_to_alpha_scale) {
  enum { T = 5, E = 4 };
  float z[T * E];
  random_logits(z, T, E);
  const double alpha[E] = {0.5, 1.0, 1.5, 1.0};
  const double scaled[E] = {5e-4, 1e-3, 1.5e-3, 1e-3};
  ck_assert_double_eq_tol(loss_of(MFX_ROUTER_LATENCY, z, T, E, 2, alpha, NULL),
                          loss_of(MFX_ROUTER_LATENCY, z, T, E, 2, scaled, NULL),
                          1e-12);
}
END_TEST

/* ---- gradients against central finite differences ------------------------ */

static void check_gradient(mfx_router_loss_kind kind, int64_t tokens, int experts,
                           int k, const mfx_router_counts *global) {
  float *z = malloc(sizeof(float) * tokens * experts);
  float *grad = malloc(sizeof(float) * tokens * experts);
  double *alpha = malloc(sizeof(double) * experts);
  ck_assert(z && grad && alpha);
  random_logits(z, tokens, experts);
  for (int i = 0; i < experts; i++) alpha[i] = 0.5 + uniform01();
  const double *a = kind == MFX_ROUTER_LATENCY ? alpha : NULL;
  double loss = 0.0;
  ck_assert_int_eq(mfx_router_loss(kind, z, tokens, experts, k, a,
                                   a ? experts : 0, global, &loss, grad), MFX_OK);
  for (int64_t i = 0; i < tokens * experts; i++) {
    float saved = z[i];
    z[i] = saved + 1e-3f;
    double up = z[i], loss_up = loss_of(kind, z, tokens, experts, k, a, global);
    z[i] = saved - 1e-3f;
    double down = z[i], loss_down = loss_of(kind, z, tokens, experts, k, a, global);
    z[i] = saved;
    double fd = (loss_up - loss_down) / (up - down);
    ck_assert_msg(fabs(fd - grad[i]) <= 2e-5 + 1e-3 * fabs(fd),
                  "%s T=%lld E=%d k=%d: grad[%lld]=%.8g, finite difference %.8g",
                  mfx_router_loss_name(kind), (long long)tokens, experts, k,
                  (long long)i, (double)grad[i], fd);
  }
  free(z);
  free(grad);
  free(alpha);
}

START_TEST(test_gradients_finite_differences) {
  const int shapes[][3] = {{1, 2, 1}, {3, 4, 2}, {5, 3, 3}, {7, 8, 2}, {16, 5, 1}};
  for (int kind = 0; kind < MFX_ROUTER_LOSS_COUNT; kind++) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      check_gradient((mfx_router_loss_kind)kind, shapes[s][0], shapes[s][1],
                     shapes[s][2], NULL);
    }
  }
  /* With global counts (constant) the gradient is still exact. */
  const double counts[4] = {10.0, 3.0, 5.0, 6.0};
  mfx_router_counts global = {counts, 4, 12.0};
  check_gradient(MFX_ROUTER_SWITCH, 6, 4, 2, &global);
  check_gradient(MFX_ROUTER_LATENCY, 6, 4, 2, &global);
}
END_TEST

/* ---- the noisy top-k gate and the smooth load ---------------------------- */

static double std_normal_cdf(double u) { return 0.5 * erfc(-u / sqrt(2.0)); }

START_TEST(test_noisy_by_hand) {
  /* T=1, E=3, k=1: z = [1, 0, -1], r = 0 (sigma = ln 2 + 0.01), eps = [0, 2, 0]:
   * h = [1, 2 sigma, -1] = [1, 1.40629, -1]: the top 1 is expert 1, the
   * second is expert 0. Thresholds: expert 1 (in the top k) -> h_0; the
   * others -> h_1. */
  const float z[3] = {1.0f, 0.0f, -1.0f}, r[3] = {0.0f, 0.0f, 0.0f}, eps[3] = {0.0f, 2.0f, 0.0f};
  double sigma = log(2.0) + MFX_ROUTER_NOISE_MIN, h1 = 2.0 * sigma;
  float h[3];
  ck_assert_int_eq(mfx_router_noisy_logits(z, r, eps, 1, 3, h), MFX_OK);
  ck_assert_float_eq_tol(h[1], (float)h1, 1e-6f);
  ck_assert_float_eq(h[0], 1.0f);
  double load[3];
  ck_assert_int_eq(mfx_router_noisy_load(MFX_ROUTER_LOAD_SMOOTH, z, r, eps, 1, 3, 1, load), MFX_OK);
  ck_assert_double_eq_tol(load[0], std_normal_cdf((1.0 - h1) / sigma), 1e-12);
  ck_assert_double_eq_tol(load[1], std_normal_cdf((0.0 - 1.0) / sigma), 1e-12);
  ck_assert_double_eq_tol(load[2], std_normal_cdf((-1.0 - h1) / sigma), 1e-12);
  ck_assert_int_eq(mfx_router_noisy_load(MFX_ROUTER_LOAD_HARD, z, r, eps, 1, 3, 1, load), MFX_OK);
  ck_assert(load[0] == 0.0 && load[1] == 1.0 && load[2] == 0.0);
  /* eps NULL: h = z; k = E: every expert always in the top k. */
  ck_assert_int_eq(mfx_router_noisy_logits(z, r, NULL, 1, 3, h), MFX_OK);
  ck_assert(h[0] == 1.0f && h[1] == 0.0f && h[2] == -1.0f);
  ck_assert_int_eq(mfx_router_noisy_load(MFX_ROUTER_LOAD_SMOOTH, z, r, NULL, 1, 3, 3, load), MFX_OK);
  ck_assert(load[0] == 1.0 && load[1] == 1.0 && load[2] == 1.0);
  float gz[3], gr[3];
  const double dload[3] = {1.0, -2.0, 0.5};
  ck_assert_int_eq(mfx_router_smooth_load_backward(z, r, NULL, 1, 3, 3, dload, gz, gr), MFX_OK);
  for (int j = 0; j < 3; j++) ck_assert(gz[j] == 0.0f && gr[j] == 0.0f);
}
END_TEST

START_TEST(test_noisy_hard_loss_equals_the_loss_of_h) {
  /* The hard load is the counts of h: with eps NULL that is the plain loss. */
  enum { T = 9, E = 4 };
  float z[T * E], r[T * E], ga[T * E], gb[T * E], gn[T * E];
  random_logits(z, T, E);
  for (int i = 0; i < T * E; i++) r[i] = (float)(uniform01() - 0.5);
  const double alpha[E] = {0.5, 1.0, 2.0, 1.5};
  for (int kind = MFX_ROUTER_SWITCH; kind <= MFX_ROUTER_LATENCY; kind++) {
    const double *a = kind == MFX_ROUTER_LATENCY ? alpha : NULL;
    double noisy = 0.0, plain = 0.0;
    ck_assert_int_eq(mfx_router_noisy_loss((mfx_router_loss_kind)kind, MFX_ROUTER_LOAD_HARD, z, r,
                                           NULL, T, E, 2, a, a ? E : 0, &noisy, ga, gn), MFX_OK);
    ck_assert_int_eq(mfx_router_loss((mfx_router_loss_kind)kind, z, T, E, 2, a, a ? E : 0, NULL,
                                     &plain, gb), MFX_OK);
    ck_assert_double_eq_tol(noisy, plain, 1e-12);
    for (int i = 0; i < T * E; i++) {
      ck_assert_float_eq_tol(ga[i], gb[i], 1e-7f);
      ck_assert(gn[i] == 0.0f);
    }
  }
}
END_TEST

static double noisy_loss_of(mfx_router_loss_kind kind, mfx_router_load_kind load, const float *z,
                            const float *r, const float *eps, int64_t T, int E, int k,
                            const double *alpha) {
  double loss = NAN;
  mfx_status st = mfx_router_noisy_loss(kind, load, z, r, eps, T, E, k, alpha, alpha ? E : 0,
                                        &loss, NULL, NULL);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  return loss;
}

/* Central differences of the noisy loss in every clean and noise logit. */
static void check_noisy_gradient(mfx_router_loss_kind kind, int64_t T, int E, int k,
                                 int with_eps) {
  size_t n = (size_t)T * E;
  float *z = malloc(n * sizeof(float)), *r = malloc(n * sizeof(float));
  float *eps = malloc(n * sizeof(float)), *gz = malloc(n * sizeof(float));
  float *gr = malloc(n * sizeof(float));
  double *alpha = malloc((size_t)E * sizeof(double));
  ck_assert(z && r && eps && gz && gr && alpha);
  random_logits(z, T, E);
  for (size_t i = 0; i < n; i++) {
    r[i] = (float)(-2.5 + uniform01()); /* sigma 0.08..0.2: keeps h's order */
    eps[i] = (float)(2.0 * uniform01() - 1.0);
  }
  for (int i = 0; i < E; i++) alpha[i] = 0.5 + uniform01();
  const double *a = kind == MFX_ROUTER_LATENCY ? alpha : NULL;
  const float *e = with_eps ? eps : NULL;
  mfx_router_load_kind L = MFX_ROUTER_LOAD_SMOOTH;
  double loss = 0.0;
  ck_assert_int_eq(mfx_router_noisy_loss(kind, L, z, r, e, T, E, k, a, a ? E : 0, &loss, gz, gr),
                   MFX_OK);
  for (int which = 0; which < 2; which++) {
    float *x = which ? r : z, *g = which ? gr : gz;
    for (size_t i = 0; i < n; i++) {
      float saved = x[i];
      x[i] = saved + 1e-3f;
      double up = x[i], loss_up = noisy_loss_of(kind, L, z, r, e, T, E, k, a);
      x[i] = saved - 1e-3f;
      double down = x[i], loss_down = noisy_loss_of(kind, L, z, r, e, T, E, k, a);
      x[i] = saved;
      double fd = (loss_up - loss_down) / (up - down);
      ck_assert_msg(fabs(fd - g[i]) <= 5e-5 + 2e-3 * fabs(fd),
                    "%s T=%lld E=%d k=%d eps=%d: d/d%s[%zu]=%.8g, finite difference %.8g",
                    mfx_router_loss_name(kind), (long long)T, E, k, with_eps,
                    which ? "r" : "z", i, (double)g[i], fd);
    }
  }
  free(z);
  free(r);
  free(eps);
  free(gz);
  free(gr);
  free(alpha);
}

START_TEST(test_noisy_gradients_finite_differences) {
  const int shapes[][3] = {{1, 2, 1}, {3, 4, 2}, {5, 3, 3}, {7, 8, 2}, {16, 5, 1}};
  for (int kind = MFX_ROUTER_SWITCH; kind <= MFX_ROUTER_LATENCY; kind++) {
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      for (int with_eps = 0; with_eps < 2; with_eps++)
        check_noisy_gradient((mfx_router_loss_kind)kind, shapes[s][0], shapes[s][1],
                             shapes[s][2], with_eps);
    }
  }
}
END_TEST

START_TEST(test_smooth_load_backward_matches_the_loss) {
  /* The load backward alone, dload = 1 for one expert: the gradient of load_i. */
  enum { T = 6, E = 5, K = 2 };
  float z[T * E], r[T * E], eps[T * E], gz[T * E], gr[T * E];
  random_logits(z, T, E);
  for (int i = 0; i < T * E; i++) {
    r[i] = (float)(-2.0 + uniform01());
    eps[i] = (float)(uniform01() - 0.5);
  }
  for (int expert = 0; expert < E; expert++) {
    double dload[E] = {0};
    dload[expert] = 1.0;
    ck_assert_int_eq(mfx_router_smooth_load_backward(z, r, eps, T, E, K, dload, gz, gr), MFX_OK);
    for (int i = 0; i < T * E; i++) {
      double up[E], down[E];
      float saved = z[i];
      z[i] = saved + 1e-3f;
      double zu = z[i];
      ck_assert_int_eq(mfx_router_noisy_load(MFX_ROUTER_LOAD_SMOOTH, z, r, eps, T, E, K, up), 0);
      z[i] = saved - 1e-3f;
      double zd = z[i];
      ck_assert_int_eq(mfx_router_noisy_load(MFX_ROUTER_LOAD_SMOOTH, z, r, eps, T, E, K, down), 0);
      z[i] = saved;
      double fd = (up[expert] - down[expert]) / (zu - zd);
      ck_assert_msg(fabs(fd - gz[i]) <= 5e-5 + 2e-3 * fabs(fd), "dload_%d/dz[%d]=%g, fd %g",
                    expert, i, (double)gz[i], fd);
    }
  }
}
END_TEST

START_TEST(test_noisy_errors) {
  const float z[4] = {0.0f, 1.0f, 2.0f, 3.0f}, r[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const float nan4[4] = {0.0f, NAN, 0.0f, 0.0f};
  const double alpha[2] = {1.0, 2.0};
  double loss, load[2];
  float h[4], g[4];
  mfx_router_loss_kind S = MFX_ROUTER_SWITCH, L = MFX_ROUTER_LATENCY;
  mfx_router_load_kind SM = MFX_ROUTER_LOAD_SMOOTH;
  ck_assert_str_eq(mfx_router_load_name(MFX_ROUTER_LOAD_HARD), "hard");
  ck_assert_str_eq(mfx_router_load_name(SM), "smooth");
  ck_assert_str_eq(mfx_router_load_name((mfx_router_load_kind)7), "unknown");
  mfx_router_load_kind parsed;
  ck_assert_int_eq(mfx_router_load_from_name("smooth", &parsed), MFX_OK);
  ck_assert_int_eq(parsed, SM);
  expect_error(mfx_router_load_from_name("soft", &parsed), MFX_ERR_INVALID,
               "'soft' is unknown; expected hard or smooth");
  expect_error(mfx_router_noisy_logits(z, NULL, NULL, 2, 2, h), MFX_ERR_INVALID,
               "noise logits is NULL");
  expect_error(mfx_router_noisy_logits(z, nan4, NULL, 2, 2, h), MFX_ERR_INVALID,
               "noise logits [0,1] is nan");
  expect_error(mfx_router_noisy_logits(z, r, nan4, 2, 2, h), MFX_ERR_INVALID,
               "noise samples [0,1] is nan");
  expect_error(mfx_router_noisy_logits(nan4, r, NULL, 2, 2, h), MFX_ERR_INVALID, "logit [0,1]");
  expect_error(mfx_router_noisy_logits(z, r, NULL, 2, 2, NULL), MFX_ERR_INVALID, "output is NULL");
  expect_error(mfx_router_noisy_load(SM, z, r, NULL, 2, 2, 3, load), MFX_ERR_INVALID, "k=3");
  expect_error(mfx_router_noisy_load((mfx_router_load_kind)5, z, r, NULL, 2, 2, 1, load),
               MFX_ERR_INVALID, "load kind 5");
  expect_error(mfx_router_noisy_load(SM, z, r, NULL, 2, 2, 1, NULL), MFX_ERR_INVALID,
               "load is NULL");
  expect_error(mfx_router_smooth_load_backward(z, r, NULL, 2, 2, 1, NULL, g, g), MFX_ERR_INVALID,
               "dload is NULL");
  const double bad_dload[2] = {INFINITY, 0.0};
  expect_error(mfx_router_smooth_load_backward(z, r, NULL, 2, 2, 1, bad_dload, g, g),
               MFX_ERR_INVALID, "dload[0]=inf");
  expect_error(mfx_router_noisy_loss(MFX_ROUTER_ZLOSS, SM, z, r, NULL, 2, 2, 1, NULL, 0, &loss,
                                     g, g), MFX_ERR_INVALID, "zloss has no load term");
  expect_error(mfx_router_noisy_loss(L, SM, z, r, NULL, 2, 2, 1, NULL, 0, &loss, g, g),
               MFX_ERR_INVALID, "alpha is NULL");
  expect_error(mfx_router_noisy_loss(S, SM, z, r, NULL, 2, 2, 1, alpha, 2, &loss, g, g),
               MFX_ERR_INVALID, "only the latency loss");
  expect_error(mfx_router_noisy_loss(S, SM, z, r, NULL, 2, 2, 1, NULL, 0, NULL, g, g),
               MFX_ERR_INVALID, "loss is NULL");
  ck_assert_int_eq(mfx_router_noisy_loss(L, SM, z, r, NULL, 2, 2, 1, alpha, 2, &loss, NULL, NULL),
                   MFX_OK);
}
END_TEST

/* ---- global-batch statistics --------------------------------------------- */

/* A fake communicator of 2 ranks: each rank's buffer as it entered the
 * all-reduce; the callback answers their element-wise sum. */
typedef struct {
  double entered[2][16];
  int n;
  int fail;
} fake_comm;

static int fake_allreduce(double *buf, int n, void *user) {
  fake_comm *comm = user;
  if (comm->fail) return 7;
  ck_assert_int_eq(n, comm->n);
  for (int i = 0; i < n; i++) buf[i] = comm->entered[0][i] + comm->entered[1][i];
  return 0;
}

static int negative_allreduce(double *buf, int n, void *user) {
  (void)user;
  for (int i = 0; i < n; i++) buf[i] = -1.0;
  return 0;
}

START_TEST(test_global_stats_two_ranks) {
  /* Rank r has two micro-batches; the global batch is all four concatenated. */
  enum { E = 5, K = 2 };
  const int64_t micro[2][2] = {{3, 4}, {6, 2}};
  int64_t total = 15, offset = 0;
  float all[15 * E];
  random_logits(all, total, E);
  mfx_router_stats *stats[2];
  fake_comm comm = {.n = E + 1, .fail = 0};
  for (int r = 0; r < 2; r++) {
    ck_assert_int_eq(mfx_router_stats_create(E, K, &stats[r]), MFX_OK);
    ck_assert_int_eq(mfx_router_stats_k(stats[r]), K);
    for (int m = 0; m < 2; m++) {
      ck_assert_int_eq(mfx_router_stats_add(stats[r], all + offset * E, micro[r][m],
                                            E), MFX_OK);
      offset += micro[r][m];
    }
    mfx_router_counts local = mfx_router_stats_counts(stats[r]);
    ck_assert_double_eq(local.tokens, (double)(micro[r][0] + micro[r][1]));
    memcpy(comm.entered[r], local.counts, sizeof(double) * E);
    comm.entered[r][E] = local.tokens;
  }
  for (int r = 0; r < 2; r++) {
    ck_assert_int_eq(mfx_router_stats_allreduce(stats[r], fake_allreduce, &comm),
                     MFX_OK);
  }
  double single[E];
  ck_assert_int_eq(mfx_router_expert_counts(all, total, E, K, single), MFX_OK);
  const double alpha[E] = {1.0, 0.5, 2.0, 1.5, 1.0};
  for (int r = 0; r < 2; r++) {
    mfx_router_counts global = mfx_router_stats_counts(stats[r]);
    ck_assert_double_eq(global.tokens, (double)total);
    for (int i = 0; i < E; i++) ck_assert_double_eq(global.counts[i], single[i]);
    /* Loss on the concatenated batch with the global counts equals the
     * plain single-batch loss. */
    ck_assert_double_eq_tol(loss_of(MFX_ROUTER_SWITCH, all, total, E, K, NULL, &global),
                            loss_of(MFX_ROUTER_SWITCH, all, total, E, K, NULL, NULL),
                            1e-12);
    ck_assert_double_eq_tol(loss_of(MFX_ROUTER_LATENCY, all, total, E, K, alpha, &global),
                            loss_of(MFX_ROUTER_LATENCY, all, total, E, K, alpha, NULL),
                            1e-12);
  }
  /* Probabilities stay local: the token-weighted mean of each rank's switch
   * loss with global counts is the single-batch loss. */
  mfx_router_counts global = mfx_router_stats_counts(stats[0]);
  int64_t rank_tokens[2] = {7, 8};
  double weighted = 0.0;
  for (int r = 0, start = 0; r < 2; start += (int)rank_tokens[r], r++) {
    weighted += (double)rank_tokens[r] / total *
                loss_of(MFX_ROUTER_SWITCH, all + start * E, rank_tokens[r], E, K,
                        NULL, &global);
  }
  ck_assert_double_eq_tol(weighted,
                          loss_of(MFX_ROUTER_SWITCH, all, total, E, K, NULL, NULL),
                          1e-12);
  /* Once per step: no add or reduce after the reduce until reset. */
  expect_error(mfx_router_stats_add(stats[0], all, 1, E), MFX_ERR_INVALID, "reset");
  expect_error(mfx_router_stats_allreduce(stats[0], fake_allreduce, &comm),
               MFX_ERR_INVALID, "already all-reduced");
  mfx_router_stats_reset(stats[0]);
  mfx_router_counts cleared = mfx_router_stats_counts(stats[0]);
  ck_assert_double_eq(cleared.tokens, 0.0);
  for (int i = 0; i < E; i++) ck_assert_double_eq(cleared.counts[i], 0.0);
  ck_assert_int_eq(mfx_router_stats_add_counts(stats[0], single, E, 15.0), MFX_OK);
  ck_assert_double_eq(mfx_router_stats_counts(stats[0]).counts[1], single[1]);
  comm.fail = 1;
  expect_error(mfx_router_stats_allreduce(stats[0], fake_allreduce, &comm),
               MFX_ERR_DEVICE, "failed with 7");
  mfx_router_stats_reset(stats[1]);
  expect_error(mfx_router_stats_allreduce(stats[1], negative_allreduce, NULL),
               MFX_ERR_INVALID, "all-reduce returned -1");
  mfx_router_stats_destroy(stats[0]);
  mfx_router_stats_destroy(stats[1]);
  mfx_router_stats_destroy(NULL);
}
END_TEST

START_TEST(test_stats_errors) {
  mfx_router_stats *stats = NULL;
  expect_error(mfx_router_stats_create(0, 1, &stats), MFX_ERR_INVALID, "E=0");
  expect_error(mfx_router_stats_create(4, 5, &stats), MFX_ERR_INVALID, "k=5");
  expect_error(mfx_router_stats_create(4, 1, NULL), MFX_ERR_INVALID, "NULL");
  ck_assert_int_eq(mfx_router_stats_create(4, 2, &stats), MFX_OK);
  const float z[8] = {0, 1, 2, 3, 3, 2, 1, NAN};
  expect_error(mfx_router_stats_add(stats, z, 2, 3), MFX_ERR_INVALID, "hold E=4");
  expect_error(mfx_router_stats_add(stats, z, 2, 4), MFX_ERR_INVALID, "[1,3]");
  expect_error(mfx_router_stats_add(NULL, z, 2, 4), MFX_ERR_INVALID, "NULL");
  const double bad[4] = {1, -2, 0, 0};
  expect_error(mfx_router_stats_add_counts(stats, bad, 4, 1.0), MFX_ERR_INVALID,
               "counts[1]=-2");
  expect_error(mfx_router_stats_add_counts(stats, bad, 4, NAN), MFX_ERR_INVALID,
               "tokens=nan");
  expect_error(mfx_router_stats_allreduce(stats, NULL, NULL), MFX_ERR_INVALID,
               "callback is NULL");
  mfx_router_counts view = mfx_router_stats_counts(stats);
  ck_assert_double_eq(view.tokens, 0.0); /* failed adds left nothing behind */
  mfx_router_stats_destroy(stats);
}
END_TEST

/* ---- auxiliary-loss-free balancing --------------------------------------- */

START_TEST(test_update_bias_signs) {
  float bias[4] = {0.0f, 0.0f, 0.5f, -0.5f};
  const double counts[4] = {5.0, 1.0, 3.0, 3.0}; /* mean 3 */
  ck_assert_int_eq(mfx_router_update_bias(bias, counts, 4, 0.25), MFX_OK);
  ck_assert_float_eq(bias[0], -0.25f); /* overloaded: pushed down */
  ck_assert_float_eq(bias[1], 0.25f);  /* underloaded: pulled up */
  ck_assert_float_eq(bias[2], 0.5f);   /* at the mean: unchanged */
  ck_assert_float_eq(bias[3], -0.5f);
  expect_error(mfx_router_update_bias(NULL, counts, 4, 0.1), MFX_ERR_INVALID, "NULL");
  expect_error(mfx_router_update_bias(bias, counts, 0, 0.1), MFX_ERR_INVALID, "E=0");
  expect_error(mfx_router_update_bias(bias, counts, 4, -0.1), MFX_ERR_INVALID,
               "rate u=-0.1");
  const double bad[2] = {1.0, INFINITY};
  expect_error(mfx_router_update_bias(bias, bad, 2, 0.1), MFX_ERR_INVALID,
               "counts[1]=inf");
}
END_TEST

START_TEST(test_route_biased) {
  /* z = [2, 1, 0]: p ~ [0.665, 0.245, 0.090]. Bias [0, 0, 1] makes expert 2
   * score ~1.09, so it is chosen first; the gates stay the unbiased p of the
   * selected experts renormalised: k=2 picks [2, 0] with gates
   * [p2, p0] / (p0 + p2). */
  const float z[3] = {2.0f, 1.0f, 0.0f};
  const float bias[3] = {0.0f, 0.0f, 1.0f};
  double e[3], sum = 0.0;
  for (int j = 0; j < 3; j++) sum += e[j] = exp((double)z[j]);
  double p0 = e[0] / sum, p2 = e[2] / sum;
  int32_t experts[2];
  float gates[2];
  double counts[3];
  ck_assert_int_eq(mfx_router_route(z, 1, 3, 1, bias, experts, gates, counts), MFX_OK);
  ck_assert_int_eq(experts[0], 2);
  ck_assert_float_eq_tol(gates[0], 1.0f, 1e-7f);
  ck_assert_double_eq(counts[2], 1.0);
  ck_assert_double_eq(counts[0], 0.0);
  ck_assert_int_eq(mfx_router_route(z, 1, 3, 2, bias, experts, gates, NULL), MFX_OK);
  ck_assert_int_eq(experts[0], 2);
  ck_assert_int_eq(experts[1], 0);
  ck_assert_double_eq_tol(gates[0], p2 / (p0 + p2), 1e-6);
  ck_assert_double_eq_tol(gates[1], p0 / (p0 + p2), 1e-6);
  /* No bias: plain top-k, gates = softmax over the selected. */
  ck_assert_int_eq(mfx_router_route(z, 1, 3, 2, NULL, experts, gates, NULL), MFX_OK);
  ck_assert_int_eq(experts[0], 0);
  ck_assert_int_eq(experts[1], 1);
  ck_assert_double_eq_tol(gates[0], e[0] / (e[0] + e[1]), 1e-6);
}
END_TEST

START_TEST(test_route_matches_counts) {
  /* Unbiased routing selects what the losses count, ties to lower index. */
  enum { T = 9, E = 6, K = 3 };
  float z[T * E];
  random_logits(z, T, E);
  z[0] = z[1] = 4.0f; /* a tie in token 0 */
  int32_t experts[T * K];
  float gates[T * K];
  double routed[E], counted[E];
  ck_assert_int_eq(mfx_router_route(z, T, E, K, NULL, experts, gates, routed), MFX_OK);
  ck_assert_int_eq(mfx_router_expert_counts(z, T, E, K, counted), MFX_OK);
  for (int i = 0; i < E; i++) ck_assert_double_eq(routed[i], counted[i]);
  ck_assert_int_eq(experts[0], 0);
  ck_assert_int_eq(experts[1], 1);
  for (int t = 0; t < T; t++) {
    double sum = 0.0;
    for (int s = 0; s < K; s++) sum += gates[t * K + s];
    ck_assert_double_eq_tol(sum, 1.0, 1e-6);
  }
  /* Huge logit gaps: gates stay finite even when p underflows. */
  const float far[3] = {0.0f, -2000.0f, -3000.0f};
  const float push[3] = {0.0f, 2.0f, 2.0f};
  ck_assert_int_eq(mfx_router_route(far, 1, 3, 2, push, experts, gates, NULL), MFX_OK);
  ck_assert_int_eq(experts[0], 1);
  ck_assert_int_eq(experts[1], 2);
  ck_assert_float_eq_tol(gates[0], 1.0f, 1e-7f);
  ck_assert_float_eq_tol(gates[1], 0.0f, 1e-7f);
}
END_TEST

START_TEST(test_route_errors) {
  const float z[2] = {0.0f, 1.0f};
  const float bad_bias[2] = {0.0f, NAN};
  int32_t experts[2];
  float gates[2];
  expect_error(mfx_router_route(z, 1, 2, 1, NULL, NULL, gates, NULL),
               MFX_ERR_INVALID, "output is NULL");
  expect_error(mfx_router_route(z, 1, 2, 1, bad_bias, experts, gates, NULL),
               MFX_ERR_INVALID, "bias[1]=nan");
  expect_error(mfx_router_route(z, 1, 2, 3, NULL, experts, gates, NULL),
               MFX_ERR_INVALID, "k=3");
  expect_error(mfx_router_route(z, 0, 2, 1, NULL, experts, gates, NULL),
               MFX_ERR_INVALID, "T=0");
}
END_TEST

/* ---- latency table ------------------------------------------------------- */

START_TEST(test_latency_fit) {
  /* An exact line: seconds = 2e-5 + 3e-8 n. */
  const double n[5] = {1, 16, 64, 256, 1024};
  double s[5], a, b, r2;
  for (int i = 0; i < 5; i++) s[i] = 2e-5 + 3e-8 * n[i];
  ck_assert_int_eq(mfx_router_latency_fit(n, s, 5, &a, &b, &r2), MFX_OK);
  ck_assert_double_eq_tol(a, 2e-5, 1e-15);
  ck_assert_double_eq_tol(b, 3e-8, 1e-18);
  ck_assert_double_eq_tol(r2, 1.0, 1e-12);
  /* By hand: (0,1), (1,3), (2,2): b = 1/2, a = 3/2, SS_res = 3/2,
   * SS_tot = 2, R^2 = 1/4. */
  const double hn[3] = {0, 1, 2}, hs[3] = {1, 3, 2};
  ck_assert_int_eq(mfx_router_latency_fit(hn, hs, 3, &a, &b, &r2), MFX_OK);
  ck_assert_double_eq_tol(a, 1.5, 1e-12);
  ck_assert_double_eq_tol(b, 0.5, 1e-12);
  ck_assert_double_eq_tol(r2, 0.25, 1e-12);
  /* Constant times: a flat line, fitted exactly. */
  const double flat[3] = {4, 4, 4};
  ck_assert_int_eq(mfx_router_latency_fit(hn, flat, 3, &a, &b, &r2), MFX_OK);
  ck_assert_double_eq_tol(a, 4.0, 1e-12);
  ck_assert_double_eq_tol(b, 0.0, 1e-12);
  ck_assert_double_eq(r2, 1.0);
  const double same[3] = {8, 8, 8}, nan_s[3] = {1, NAN, 2};
  expect_error(mfx_router_latency_fit(same, hs, 3, &a, &b, &r2), MFX_ERR_INVALID,
               "distinct token counts");
  expect_error(mfx_router_latency_fit(hn, hs, 1, &a, &b, &r2), MFX_ERR_INVALID,
               "at least 2");
  expect_error(mfx_router_latency_fit(hn, nan_s, 3, &a, &b, &r2), MFX_ERR_INVALID,
               "point 1");
  expect_error(mfx_router_latency_fit(NULL, hs, 3, &a, &b, &r2), MFX_ERR_INVALID,
               "NULL");
  expect_error(mfx_router_latency_fit(hn, hs, 3, NULL, &b, &r2), MFX_ERR_INVALID,
               "NULL");
}
END_TEST

START_TEST(test_latency_alpha) {
  const double latency[3] = {1e-3, 2e-3, 3e-3};
  double alpha[3];
  ck_assert_int_eq(mfx_router_latency_alpha(latency, 3, alpha), MFX_OK);
  ck_assert_double_eq_tol(alpha[0], 0.5, 1e-12);
  ck_assert_double_eq_tol(alpha[1], 1.0, 1e-12);
  ck_assert_double_eq_tol(alpha[2], 1.5, 1e-12);
  const double bad[2] = {1.0, 0.0};
  expect_error(mfx_router_latency_alpha(bad, 2, alpha), MFX_ERR_INVALID,
               "latency[1]=0");
  expect_error(mfx_router_latency_alpha(latency, 0, alpha), MFX_ERR_INVALID, "E=0");
  expect_error(mfx_router_latency_alpha(NULL, 3, alpha), MFX_ERR_INVALID, "NULL");
}
END_TEST

/* ---- loss errors --------------------------------------------------------- */

START_TEST(test_loss_errors) {
  const float z[4] = {0.0f, 1.0f, 2.0f, 3.0f};
  const double alpha[2] = {1.0, 2.0};
  double loss;
  float grad[4];
  mfx_router_loss_kind S = MFX_ROUTER_SWITCH, L = MFX_ROUTER_LATENCY,
                       Z = MFX_ROUTER_ZLOSS;
  expect_error(mfx_router_loss(S, NULL, 2, 2, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "logits is NULL");
  expect_error(mfx_router_loss(S, z, 0, 2, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "T=0");
  expect_error(mfx_router_loss(Z, z, 2, 0, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "E=0");
  expect_error(mfx_router_loss(S, z, 2, 2, 0, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "k=0; expected 1 <= k <= E=2");
  expect_error(mfx_router_loss(S, z, 2, 2, 3, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "k=3");
  expect_error(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, NULL, NULL, grad),
               MFX_ERR_INVALID, "loss output is NULL");
  expect_error(mfx_router_loss((mfx_router_loss_kind)9, z, 2, 2, 1, NULL, 0, NULL,
                               &loss, grad), MFX_ERR_INVALID, "kind 9");
  const float nan_z[4] = {0.0f, 1.0f, NAN, 3.0f};
  expect_error(mfx_router_loss(Z, nan_z, 2, 2, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "logit [1,0] is nan");
  const float inf_z[4] = {0.0f, -INFINITY, 2.0f, 3.0f};
  expect_error(mfx_router_loss(S, inf_z, 2, 2, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "logit [0,1] is -inf");
  /* alpha */
  expect_error(mfx_router_loss(L, z, 2, 2, 1, NULL, 0, NULL, &loss, grad),
               MFX_ERR_INVALID, "alpha is NULL");
  expect_error(mfx_router_loss(L, z, 2, 2, 1, alpha, 3, NULL, &loss, grad),
               MFX_ERR_INVALID, "alpha has 3 entries; expected E=2");
  const double zero_alpha[2] = {1.0, 0.0}, nan_alpha[2] = {NAN, 1.0};
  expect_error(mfx_router_loss(L, z, 2, 2, 1, zero_alpha, 2, NULL, &loss, grad),
               MFX_ERR_INVALID, "alpha[1]=0");
  expect_error(mfx_router_loss(L, z, 2, 2, 1, nan_alpha, 2, NULL, &loss, grad),
               MFX_ERR_INVALID, "alpha[0]=nan");
  expect_error(mfx_router_loss(L, z, 4, 1, 1, alpha, 1, NULL, &loss, grad),
               MFX_ERR_INVALID, "E >= 2");
  expect_error(mfx_router_loss(S, z, 2, 2, 1, alpha, 2, NULL, &loss, grad),
               MFX_ERR_INVALID, "only the latency loss");
  /* global counts */
  const double counts[2] = {3.0, 1.0};
  mfx_router_counts global = {counts, 2, 4.0};
  expect_error(mfx_router_loss(Z, z, 2, 2, 1, NULL, 0, &global, &loss, grad),
               MFX_ERR_INVALID, "zloss uses no counts");
  global.experts = 3;
  expect_error(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, &global, &loss, grad),
               MFX_ERR_INVALID, "with 3 experts; expected E=2");
  global.experts = 2;
  global.tokens = 0.0;
  expect_error(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, &global, &loss, grad),
               MFX_ERR_INVALID, "tokens=0");
  global.tokens = 5.0;
  expect_error(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, &global, &loss, grad),
               MFX_ERR_INVALID, "sum to 4; expected k*tokens");
  const double negative[2] = {5.0, -1.0};
  global.counts = negative;
  global.tokens = 4.0;
  expect_error(mfx_router_loss(L, z, 2, 2, 1, alpha, 2, &global, &loss, grad),
               MFX_ERR_INVALID, "counts[1]=-1");
  global.counts = NULL;
  expect_error(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, &global, &loss, grad),
               MFX_ERR_INVALID, "global counts NULL");
  /* counts helper */
  double out[2];
  expect_error(mfx_router_expert_counts(z, 2, 2, 1, NULL), MFX_ERR_INVALID, "NULL");
  expect_error(mfx_router_expert_counts(z, 2, 2, 5, out), MFX_ERR_INVALID, "k=5");
  /* A valid call after all these still works, and grad may be NULL. */
  ck_assert_int_eq(mfx_router_loss(S, z, 2, 2, 1, NULL, 0, NULL, &loss, NULL), MFX_OK);
}
END_TEST

static Suite *router_suite(void) {
  Suite *s = suite_create("router");
  TCase *values = tcase_create("values");
  tcase_add_test(values, test_names);
  tcase_add_test(values, test_switch_by_hand);
  tcase_add_test(values, test_latency_by_hand);
  tcase_add_test(values, test_zloss_by_hand);
  tcase_add_test(values, test_zloss_is_stable);
  tcase_add_test(values, test_switch_perfect_balance);
  tcase_add_test(values, test_latency_minimal_at_equal_weighted_counts);
  tcase_add_test(values, test_latency_invariant_to_alpha_scale);
  tcase_add_test(values, test_gradients_finite_differences);
  suite_add_tcase(s, values);
  TCase *noisy = tcase_create("noisy gate");
  tcase_add_test(noisy, test_noisy_by_hand);
  tcase_add_test(noisy, test_noisy_hard_loss_equals_the_loss_of_h);
  tcase_add_test(noisy, test_noisy_gradients_finite_differences);
  tcase_add_test(noisy, test_smooth_load_backward_matches_the_loss);
  tcase_add_test(noisy, test_noisy_errors);
  suite_add_tcase(s, noisy);
  TCase *balance = tcase_create("balance");
  tcase_add_test(balance, test_global_stats_two_ranks);
  tcase_add_test(balance, test_stats_errors);
  tcase_add_test(balance, test_update_bias_signs);
  tcase_add_test(balance, test_route_biased);
  tcase_add_test(balance, test_route_matches_counts);
  tcase_add_test(balance, test_route_errors);
  suite_add_tcase(s, balance);
  TCase *latency = tcase_create("latency table");
  tcase_add_test(latency, test_latency_fit);
  tcase_add_test(latency, test_latency_alpha);
  suite_add_tcase(s, latency);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_loss_errors);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  return check_run_suite(router_suite());
}
