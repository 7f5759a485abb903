/* What every router computation shares: input checks, a numerically stable
 * softmax, top-k selection with ties to the lower index. */
#include "router_internal.h"

#include <math.h>
#include <stdlib.h>

mfx_status mfx_router_check_logits(const char *where, const float *logits,
                                   int64_t tokens, int experts, int k) {
  if (logits == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: logits is NULL; expected [T,E] f32",
                    where);
  }
  if (tokens < 1) {
    return mfx_fail(MFX_ERR_INVALID, "%s: T=%lld tokens; expected T >= 1",
                    where, (long long)tokens);
  }
  if (experts < 1) {
    return mfx_fail(MFX_ERR_INVALID, "%s: E=%d experts; expected E >= 1",
                    where, experts);
  }
  if (tokens > INT64_MAX / experts) {
    return mfx_fail(MFX_ERR_INVALID, "%s: T=%lld x E=%d overflows", where,
                    (long long)tokens, experts);
  }
  if (k < 1 || k > experts) {
    return mfx_fail(MFX_ERR_INVALID, "%s: k=%d; expected 1 <= k <= E=%d",
                    where, k, experts);
  }
  for (int64_t i = 0; i < tokens * experts; i++) {
    if (!isfinite(logits[i])) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: logit [%lld,%lld] is %g; expected finite values",
                      where, (long long)(i / experts), (long long)(i % experts),
                      (double)logits[i]);
    }
  }
  return MFX_OK;
}

double mfx_router_softmax_row(const float *z, int experts, double *p) {
  double max = z[0];
  for (int j = 1; j < experts; j++) {
    if (z[j] > max) max = z[j];
  }
  double sum = 0.0;
  for (int j = 0; j < experts; j++) {
    p[j] = exp((double)z[j] - max);
    sum += p[j];
  }
  for (int j = 0; j < experts; j++) p[j] /= sum;
  return max + log(sum);
}

/* True when (score a, index ia) ranks before (score b, index ib). */
static int router_ranks_before(double a, int ia, double b, int ib) {
  return a > b || (a == b && ia < ib);
}

/* Each pass takes the best entry ranked after the previous pick, so no
 * marks are needed: O(k * experts). */
void mfx_router_topk_row(const double *score, int experts, int k,
                         int32_t *selected) {
  for (int slot = 0; slot < k; slot++) {
    int best = -1;
    for (int j = 0; j < experts; j++) {
      if (slot > 0) {
        int prev = selected[slot - 1];
        if (!router_ranks_before(score[prev], prev, score[j], j)) continue;
      }
      if (best < 0 || router_ranks_before(score[j], j, score[best], best)) {
        best = j;
      }
    }
    selected[slot] = best;
  }
}

void mfx_router_add_counts(const float *logits, int64_t tokens, int experts,
                           int k, double *counts, double *scratch,
                           int32_t *selected) {
  for (int64_t t = 0; t < tokens; t++) {
    const float *z = logits + t * experts;
    for (int j = 0; j < experts; j++) scratch[j] = z[j];
    mfx_router_topk_row(scratch, experts, k, selected);
    for (int slot = 0; slot < k; slot++) counts[selected[slot]] += 1.0;
  }
}

mfx_status mfx_router_alloc(const char *where, size_t bytes, void **out) {
  *out = malloc(bytes);
  if (*out == NULL) {
    return mfx_fail(MFX_ERR_NOMEM, "%s: could not allocate %zu bytes", where,
                    bytes);
  }
  return MFX_OK;
}
