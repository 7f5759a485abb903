/* The small MoE layer that the layer tests share (tests/test_moe_layer.c,
 * tests/test_moe_gpu.c): its dims, bucket list and spec (a mult, a shift
 * and a null expert, top-2), the seeded inputs, the error check and the
 * max-difference measure. Included by test programs only. */
#ifndef MFX_TESTS_MOE_FIXTURE_H
#define MFX_TESTS_MOE_FIXTURE_H

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "mfx/moe.h"

enum { D = 16, H = 24, E = 3, K = 2 };

/* The buckets the tests' layer artifacts are compiled for. */
static const int64_t moe_fixture_buckets[] = {16, 48};

/* The layer's spec; target NULL: the host. */
static inline mfx_moe_spec moe_fixture_spec(const char *target) {
  mfx_moe_spec s;
  memset(&s, 0, sizeof s);
  s.dim = D;
  s.hidden = H;
  s.k = K;
  s.experts = E;
  s.kinds[0] = MFX_EXPERT_MULT;
  s.kinds[1] = MFX_EXPERT_SHIFT;
  s.kinds[2] = MFX_EXPERT_NULL;
  s.target = target;
  return s;
}

/* st failed with a message that contains needle. */
static inline void expect_error(mfx_status st, const char *needle) {
  ck_assert_int_ne(st, MFX_OK);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
}

/* n values uniform in [-scale, scale) from seed. */
static inline void fill(float *x, int64_t n, float scale, uint64_t seed) {
  uint64_t s = seed * 2654435761u + 99;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = scale * (float)((double)(s >> 40) / 8388608.0 - 1.0);
  }
}

/* max |a - b| over n values; *scale: max |b|. */
static inline double max_diff(const float *a, const float *b, int64_t n, double *scale) {
  double m = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    m = fmax(m, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  *scale = s;
  return m;
}

#endif
