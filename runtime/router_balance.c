/* Balancing without (or beyond) a local auxiliary loss: global-batch count
 * statistics summed over micro-batches and data-parallel ranks, and
 * DeepSeek-V3's auxiliary-loss-free routing with a per-expert bias. */
#include "router_internal.h"

#include <math.h>
#include <stdlib.h>

/* ---- global-batch statistics --------------------------------------------- */

struct mfx_router_stats {
  int experts;
  int k;
  int reduced;     /* all-reduced this step: no more adds until reset */
  double *buffer;   /* counts[experts], then tokens */
  double *exchange; /* the all-reduce works on this copy of buffer */
  double *scratch;  /* one row of scores [experts] */
  int32_t *selected;
};

mfx_status mfx_router_stats_create(int experts, int k, mfx_router_stats **out) {
  if (out == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "router stats create: out is NULL");
  }
  *out = NULL;
  if (experts < 1 || k < 1 || k > experts) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router stats create: E=%d, k=%d; expected E >= 1 and "
                    "1 <= k <= E", experts, k);
  }
  mfx_router_stats *stats = calloc(1, sizeof *stats);
  double *buffer = calloc((size_t)3 * experts + 2, sizeof(double));
  int32_t *selected = calloc((size_t)k, sizeof(int32_t));
  if (stats == NULL || buffer == NULL || selected == NULL) {
    free(stats);
    free(buffer);
    free(selected);
    return mfx_fail(MFX_ERR_NOMEM, "router stats create: out of memory for E=%d",
                    experts);
  }
  stats->experts = experts;
  stats->k = k;
  stats->buffer = buffer;
  stats->exchange = buffer + experts + 1;
  stats->scratch = buffer + 2 * (size_t)experts + 2;
  stats->selected = selected;
  *out = stats;
  return MFX_OK;
}

void mfx_router_stats_destroy(mfx_router_stats *stats) {
  if (stats == NULL) return;
  free(stats->buffer);
  free(stats->selected);
  free(stats);
}

static mfx_status router_stats_check_open(const char *where,
                                              const mfx_router_stats *stats,
                                              int experts) {
  if (stats == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: stats is NULL", where);
  }
  if (stats->reduced) {
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: stats were already all-reduced this step; call "
                    "mfx_router_stats_reset first", where);
  }
  if (experts != stats->experts) {
    return mfx_fail(MFX_ERR_INVALID, "%s: E=%d experts; the stats hold E=%d",
                    where, experts, stats->experts);
  }
  return MFX_OK;
}

mfx_status mfx_router_stats_add(mfx_router_stats *stats, const float *logits,
                                int64_t tokens, int experts) {
  const char *where = "router stats add";
  mfx_status st = router_stats_check_open(where, stats, experts);
  if (st != MFX_OK) return st;
  st = mfx_router_check_logits(where, logits, tokens, experts, stats->k);
  if (st != MFX_OK) return st;
  mfx_router_add_counts(logits, tokens, experts, stats->k, stats->buffer,
                        stats->scratch, stats->selected);
  stats->buffer[experts] += (double)tokens;
  return MFX_OK;
}

mfx_status mfx_router_stats_add_counts(mfx_router_stats *stats,
                                       const double *counts, int experts,
                                       double tokens) {
  const char *where = "router stats add counts";
  mfx_status st = router_stats_check_open(where, stats, experts);
  if (st != MFX_OK) return st;
  if (counts == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: counts is NULL", where);
  if (!isfinite(tokens) || tokens < 0.0) {
    return mfx_fail(MFX_ERR_INVALID, "%s: tokens=%g; expected finite and >= 0",
                    where, tokens);
  }
  for (int i = 0; i < experts; i++) {
    if (!isfinite(counts[i]) || counts[i] < 0.0) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: counts[%d]=%g; expected finite and >= 0", where, i,
                      counts[i]);
    }
  }
  for (int i = 0; i < experts; i++) stats->buffer[i] += counts[i];
  stats->buffer[experts] += tokens;
  return MFX_OK;
}

mfx_status mfx_router_stats_allreduce(mfx_router_stats *stats,
                                      mfx_allreduce_fn allreduce, void *user) {
  const char *where = "router stats allreduce";
  if (stats == NULL || allreduce == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: stats or allreduce callback is NULL",
                    where);
  }
  mfx_status st = router_stats_check_open(where, stats, stats->experts);
  if (st != MFX_OK) return st;
  int n = stats->experts + 1;
  for (int i = 0; i < n; i++) stats->exchange[i] = stats->buffer[i];
  int rc = allreduce(stats->exchange, n, user);
  if (rc != 0) {
    return mfx_fail(MFX_ERR_DEVICE,
                    "%s: the all-reduce callback failed with %d on %d doubles",
                    where, rc, n);
  }
  for (int i = 0; i < n; i++) {
    if (!isfinite(stats->exchange[i]) || stats->exchange[i] < 0.0) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: the all-reduce returned %g at [%d]; expected finite "
                      "sums >= 0", where, stats->exchange[i], i);
    }
  }
  for (int i = 0; i < n; i++) stats->buffer[i] = stats->exchange[i];
  stats->reduced = 1;
  return MFX_OK;
}

void mfx_router_stats_reset(mfx_router_stats *stats) {
  if (stats == NULL) return;
  for (int i = 0; i <= stats->experts; i++) stats->buffer[i] = 0.0;
  stats->reduced = 0;
}

mfx_router_counts mfx_router_stats_counts(const mfx_router_stats *stats) {
  mfx_router_counts view = {NULL, 0, 0.0};
  if (stats == NULL) return view;
  view.counts = stats->buffer;
  view.experts = stats->experts;
  view.tokens = stats->buffer[stats->experts];
  return view;
}

int mfx_router_stats_k(const mfx_router_stats *stats) {
  return stats ? stats->k : 0;
}

/* ---- auxiliary-loss-free routing ----------------------------------------- */

static mfx_status router_check_route(const float *logits, int64_t tokens,
                                         int experts, int k, const float *bias,
                                         const int32_t *experts_out,
                                         const float *gates_out) {
  const char *where = "router route";
  mfx_status st = mfx_router_check_logits(where, logits, tokens, experts, k);
  if (st != MFX_OK) return st;
  if (experts_out == NULL || gates_out == NULL) {
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: experts or gates output is NULL; expected [T,k] arrays",
                    where);
  }
  for (int i = 0; bias != NULL && i < experts; i++) {
    if (!isfinite(bias[i])) {
      return mfx_fail(MFX_ERR_INVALID, "%s: bias[%d]=%g; expected finite", where,
                      i, (double)bias[i]);
    }
  }
  return MFX_OK;
}

/* Gates of the selected experts: the softmax of their logits, which equals
 * their probabilities renormalised over the k selected, without underflow. */
static void router_gates_row(const float *z, const int32_t *selected, int k,
                                 float *gates) {
  double max = z[selected[0]];
  for (int s = 1; s < k; s++) {
    if (z[selected[s]] > max) max = z[selected[s]];
  }
  double sum = 0.0;
  for (int s = 0; s < k; s++) sum += exp((double)z[selected[s]] - max);
  for (int s = 0; s < k; s++) {
    gates[s] = (float)(exp((double)z[selected[s]] - max) / sum);
  }
}

mfx_status mfx_router_route(const float *logits, int64_t tokens, int experts,
                            int k, const float *bias, int32_t *experts_out,
                            float *gates_out, double *counts_out) {
  mfx_status st = router_check_route(logits, tokens, experts, k, bias,
                                         experts_out, gates_out);
  if (st != MFX_OK) return st;
  void *block = NULL;
  st = mfx_router_alloc("router route", (size_t)experts * sizeof(double), &block);
  if (st != MFX_OK) return st;
  double *score = block;
  for (int i = 0; counts_out != NULL && i < experts; i++) counts_out[i] = 0.0;
  for (int64_t t = 0; t < tokens; t++) {
    const float *z = logits + t * experts;
    int32_t *selected = experts_out + t * k;
    mfx_router_softmax_row(z, experts, score);
    for (int i = 0; bias != NULL && i < experts; i++) score[i] += bias[i];
    mfx_router_topk_row(score, experts, k, selected);
    router_gates_row(z, selected, k, gates_out + t * k);
    for (int s = 0; counts_out != NULL && s < k; s++) counts_out[selected[s]] += 1.0;
  }
  free(score);
  return MFX_OK;
}

mfx_status mfx_router_update_bias(float *bias, const double *counts,
                                  int experts, double rate) {
  const char *where = "router update bias";
  if (bias == NULL || counts == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: bias or counts is NULL", where);
  }
  if (experts < 1) {
    return mfx_fail(MFX_ERR_INVALID, "%s: E=%d experts; expected E >= 1", where,
                    experts);
  }
  if (!isfinite(rate) || rate < 0.0) {
    return mfx_fail(MFX_ERR_INVALID, "%s: rate u=%g; expected finite and >= 0",
                    where, rate);
  }
  double mean = 0.0;
  for (int i = 0; i < experts; i++) {
    if (!isfinite(counts[i]) || counts[i] < 0.0) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: counts[%d]=%g; expected finite and >= 0", where, i,
                      counts[i]);
    }
    mean += counts[i];
  }
  mean /= experts;
  for (int i = 0; i < experts; i++) {
    double sign = (mean > counts[i]) - (mean < counts[i]);
    bias[i] = (float)((double)bias[i] + rate * sign);
  }
  return MFX_OK;
}
