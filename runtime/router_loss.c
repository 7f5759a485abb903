/* The router losses (switch, latency-aware, z-loss) and their gradients with
 * respect to the logits. Each loss is a function of per-expert statistics
 * (P or I, and the counts c), so its gradient is the softmax backward pass of
 * a per-expert weight v_i = dL/dp[t,i], the same for every token. */
#include "router_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mfx_router_loss_names[MFX_ROUTER_LOSS_COUNT] = {
    [MFX_ROUTER_SWITCH] = "switch",
    [MFX_ROUTER_LATENCY] = "latency",
    [MFX_ROUTER_ZLOSS] = "zloss",
};

const char *mfx_router_loss_name(mfx_router_loss_kind kind) {
  return mfx_name_of(mfx_router_loss_names, sizeof(char *), MFX_ROUTER_LOSS_COUNT, (int)kind,
                     "unknown");
}

mfx_status mfx_router_loss_from_name(const char *name, mfx_router_loss_kind *out) {
  if (name == NULL || out == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "router loss name: name or out is NULL");
  }
  int kind = mfx_name_index(mfx_router_loss_names, sizeof(char *), MFX_ROUTER_LOSS_COUNT, name);
  if (kind >= 0) {
    *out = (mfx_router_loss_kind)kind;
    return MFX_OK;
  }
  return mfx_fail(MFX_ERR_INVALID,
                  "router loss '%s' is unknown; expected switch, latency or zloss",
                  name);
}

/* ---- input checks -------------------------------------------------------- */

mfx_status mfx_router_check_alpha(mfx_router_loss_kind kind, const double *alpha,
                                  int alpha_count, int experts) {
  if (kind != MFX_ROUTER_LATENCY) {
    if (alpha == NULL) return MFX_OK;
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss %s: alpha is given but only the latency loss "
                    "uses it; expected NULL", mfx_router_loss_name(kind));
  }
  if (experts < 2) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss latency: E=%d experts; the unbiased variance "
                    "needs E >= 2", experts);
  }
  if (alpha == NULL) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss latency: alpha is NULL; expected %d positive "
                    "per-expert latency weights", experts);
  }
  if (alpha_count != experts) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss latency: alpha has %d entries; expected E=%d",
                    alpha_count, experts);
  }
  for (int i = 0; i < experts; i++) {
    if (!isfinite(alpha[i]) || alpha[i] <= 0.0 || alpha[i] > MFX_ROUTER_ALPHA_MAX) {
      return mfx_fail(MFX_ERR_INVALID,
                      "router loss latency: alpha[%d]=%g; expected 0 < alpha <= %g (latency "
                      "over the mean latency)", i, alpha[i], MFX_ROUTER_ALPHA_MAX);
    }
  }
  return MFX_OK;
}

static mfx_status router_check_global(mfx_router_loss_kind kind,
                                          const mfx_router_counts *global,
                                          int experts, int k) {
  const char *name = mfx_router_loss_name(kind);
  if (global == NULL) return MFX_OK;
  if (kind == MFX_ROUTER_ZLOSS) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss zloss: global counts given but zloss uses no "
                    "counts; expected NULL");
  }
  if (global->counts == NULL || global->experts != experts) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss %s: global counts %s with %d experts; expected "
                    "E=%d counts", name, global->counts ? "given" : "NULL",
                    global->experts, experts);
  }
  if (!isfinite(global->tokens) || global->tokens <= 0.0) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss %s: global tokens=%g; expected finite and > 0",
                    name, global->tokens);
  }
  double sum = 0.0;
  for (int i = 0; i < experts; i++) {
    if (!isfinite(global->counts[i]) || global->counts[i] < 0.0) {
      return mfx_fail(MFX_ERR_INVALID,
                      "router loss %s: global counts[%d]=%g; expected finite "
                      "and >= 0", name, i, global->counts[i]);
    }
    sum += global->counts[i];
  }
  double expected = (double)k * global->tokens;
  if (fabs(sum - expected) > 1e-9 * expected + 1e-6) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss %s: global counts sum to %g; expected k*tokens "
                    "= %d*%g = %g", name, sum, k, global->tokens, expected);
  }
  return MFX_OK;
}

/* ---- per-expert statistics ----------------------------------------------- */

/* Scratch of one loss evaluation, all [experts] but selected [k]. */
typedef struct {
  double *prob;      /* softmax of one row */
  double *score;     /* one row of logits, as doubles */
  double *prob_sum;  /* I_i = sum_t p[t,i] */
  double *counts;    /* local c_i */
  double *weight;    /* v_i = dL/dp[t,i] */
  int32_t *selected; /* top-k of one row */
} mfx_router_work;

static mfx_status router_work_create(int experts, int k, mfx_router_work *w) {
  size_t doubles = (size_t)experts * 5;
  void *block = NULL;
  mfx_status st = mfx_router_alloc(
      "router loss", doubles * sizeof(double) + (size_t)k * sizeof(int32_t), &block);
  if (st != MFX_OK) return st;
  double *d = block;
  memset(d, 0, doubles * sizeof(double));
  w->prob = d;
  w->score = d + experts;
  w->prob_sum = d + 2 * (size_t)experts;
  w->counts = d + 3 * (size_t)experts;
  w->weight = d + 4 * (size_t)experts;
  w->selected = (int32_t *)(d + doubles);
  return MFX_OK;
}

static void router_work_destroy(mfx_router_work *w) { free(w->prob); }

/* Fills w->prob_sum and w->counts from the logits. */
static void router_local_stats(const float *logits, int64_t tokens,
                                   int experts, int k, mfx_router_work *w) {
  for (int64_t t = 0; t < tokens; t++) {
    mfx_router_softmax_row(logits + t * experts, experts, w->prob);
    for (int j = 0; j < experts; j++) w->prob_sum[j] += w->prob[j];
  }
  mfx_router_add_counts(logits, tokens, experts, k, w->counts, w->score,
                        w->selected);
}

/* grad[t,j] = p[t,j] * (v_j - sum_i v_i p[t,i]): the softmax backward pass
 * of a per-expert weight v shared by all tokens. */
static void router_softmax_backward(const float *logits, int64_t tokens,
                                        int experts, mfx_router_work *w,
                                        float *grad) {
  for (int64_t t = 0; t < tokens; t++) {
    mfx_router_softmax_row(logits + t * experts, experts, w->prob);
    double dot = 0.0;
    for (int j = 0; j < experts; j++) dot += w->weight[j] * w->prob[j];
    for (int j = 0; j < experts; j++) {
      grad[t * experts + j] = (float)(w->prob[j] * (w->weight[j] - dot));
    }
  }
}

/* ---- the losses ---------------------------------------------------------- */

/* L = E * sum_i (c_i/(k*Tc)) * P_i, P_i = I_i / T. */
static double router_switch(int64_t tokens, int experts, int k,
                                const double *counts, double count_tokens,
                                mfx_router_work *w) {
  double loss = 0.0;
  for (int i = 0; i < experts; i++) {
    double share = (double)experts * counts[i] / ((double)k * count_tokens);
    loss += share * w->prob_sum[i] / (double)tokens;
    w->weight[i] = share / (double)tokens;
  }
  return loss;
}

/* CV^2(x) = var(x)/mean(x)^2 (unbiased variance); when dcv2 is not NULL it
 * receives dCV^2/dx_i = 2(x_i - m)/((E-1) m^2) - 2 var/(E m^3). */
double mfx_router_cv2(const double *x, int n, double *dcv2) {
  double mean = 0.0;
  for (int i = 0; i < n; i++) mean += x[i];
  mean /= n;
  double var = 0.0;
  for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
  var /= (n - 1);
  if (dcv2 != NULL) {
    for (int i = 0; i < n; i++) {
      dcv2[i] = 2.0 * (x[i] - mean) / ((n - 1) * mean * mean) -
                2.0 * var / (n * mean * mean * mean);
    }
  }
  return var / (mean * mean);
}

/* L = CV^2(alpha . I) + CV^2(alpha . c); v_i = alpha_i dCV^2/dx_i. Reuses
 * w->score and w->prob as scratch (the backward pass refills w->prob). */
static double router_latency(int experts, const double *alpha,
                                 const double *counts, mfx_router_work *w) {
  double *x = w->score;
  for (int i = 0; i < experts; i++) x[i] = alpha[i] * w->prob_sum[i];
  double loss = mfx_router_cv2(x, experts, w->weight);
  for (int i = 0; i < experts; i++) w->weight[i] *= alpha[i];
  for (int i = 0; i < experts; i++) x[i] = alpha[i] * counts[i];
  return loss + mfx_router_cv2(x, experts, NULL);
}

/* L = mean_t lse_t^2; dL/dz[t,j] = 2 lse_t p[t,j] / T. */
static double router_zloss(const float *logits, int64_t tokens, int experts,
                               mfx_router_work *w, float *grad) {
  double loss = 0.0;
  for (int64_t t = 0; t < tokens; t++) {
    double lse = mfx_router_softmax_row(logits + t * experts, experts, w->prob);
    loss += lse * lse;
    if (grad == NULL) continue;
    for (int j = 0; j < experts; j++) {
      grad[t * experts + j] = (float)(2.0 * lse * w->prob[j] / (double)tokens);
    }
  }
  return loss / (double)tokens;
}

static mfx_status router_check_loss_args(mfx_router_loss_kind kind,
                                             const float *logits, int64_t tokens,
                                             int experts, int k,
                                             const double *alpha, int alpha_count,
                                             const mfx_router_counts *global,
                                             const double *loss) {
  if ((int)kind < 0 || kind >= MFX_ROUTER_LOSS_COUNT) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router loss: kind %d is unknown; expected switch, latency "
                    "or zloss", (int)kind);
  }
  if (loss == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "router loss %s: loss output is NULL",
                    mfx_router_loss_name(kind));
  }
  char where[32];
  snprintf(where, sizeof where, "router loss %s", mfx_router_loss_name(kind));
  mfx_status st = mfx_router_check_logits(where, logits, tokens, experts, k);
  if (st != MFX_OK) return st;
  st = mfx_router_check_alpha(kind, alpha, alpha_count, experts);
  if (st != MFX_OK) return st;
  return router_check_global(kind, global, experts, k);
}

mfx_status mfx_router_loss(mfx_router_loss_kind kind, const float *logits,
                           int64_t tokens, int experts, int k,
                           const double *alpha, int alpha_count,
                           const mfx_router_counts *global, double *loss,
                           float *grad) {
  mfx_status st = router_check_loss_args(kind, logits, tokens, experts, k,
                                             alpha, alpha_count, global, loss);
  if (st != MFX_OK) return st;
  mfx_router_work w;
  st = router_work_create(experts, k, &w);
  if (st != MFX_OK) return st;
  if (kind == MFX_ROUTER_ZLOSS) {
    *loss = router_zloss(logits, tokens, experts, &w, grad);
    router_work_destroy(&w);
    return MFX_OK;
  }
  router_local_stats(logits, tokens, experts, k, &w);
  const double *counts = global ? global->counts : w.counts;
  double count_tokens = global ? global->tokens : (double)tokens;
  if (kind == MFX_ROUTER_SWITCH) {
    *loss = router_switch(tokens, experts, k, counts, count_tokens, &w);
  } else {
    *loss = router_latency(experts, alpha, counts, &w);
  }
  if (grad != NULL) router_softmax_backward(logits, tokens, experts, &w, grad);
  router_work_destroy(&w);
  if (!isfinite(*loss))
    return mfx_fail(MFX_ERR_INVALID, "router loss %s: the loss is %g, not a finite number "
                    "(alpha or the counts too large?)", mfx_router_loss_name(kind), *loss);
  return MFX_OK;
}

mfx_status mfx_router_expert_counts(const float *logits, int64_t tokens,
                                    int experts, int k, double *counts) {
  mfx_status st =
      mfx_router_check_logits("router counts", logits, tokens, experts, k);
  if (st != MFX_OK) return st;
  if (counts == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "router counts: counts output is NULL");
  }
  void *block = NULL;
  st = mfx_router_alloc("router counts",
                        (size_t)experts * sizeof(double) + (size_t)k * sizeof(int32_t),
                        &block);
  if (st != MFX_OK) return st;
  double *score = block;
  for (int i = 0; i < experts; i++) counts[i] = 0.0;
  mfx_router_add_counts(logits, tokens, experts, k, counts, score,
                        (int32_t *)(score + experts));
  free(block);
  return MFX_OK;
}
