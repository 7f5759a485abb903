/* The noisy top-k gate of Shazeer et al. (2017) and its smooth load: the
 * probability that each expert lands in a token's top k, which gives the
 * load term of the switch and latency losses a gradient with respect to
 * the clean and the noise logits (include/mfx/router.h). Accumulation is in
 * double, as in router_loss.c. */
#include "router_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const mfx_router_load_names[MFX_ROUTER_LOAD_COUNT] = {
    [MFX_ROUTER_LOAD_HARD] = "hard",
    [MFX_ROUTER_LOAD_SMOOTH] = "smooth",
};

const char *mfx_router_load_name(mfx_router_load_kind kind) {
  if ((int)kind < 0 || kind >= MFX_ROUTER_LOAD_COUNT) return "unknown";
  return mfx_router_load_names[kind];
}

mfx_status mfx_router_load_from_name(const char *name, mfx_router_load_kind *out) {
  if (name == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "router load name: name or out is NULL");
  for (int kind = 0; kind < MFX_ROUTER_LOAD_COUNT; kind++) {
    if (strcmp(name, mfx_router_load_names[kind]) == 0) {
      *out = (mfx_router_load_kind)kind;
      return MFX_OK;
    }
  }
  return mfx_fail(MFX_ERR_INVALID, "router load '%s' is unknown; expected hard or smooth", name);
}

/* ---- checks ---------------------------------------------------------------- */

static mfx_status router_noisy_check_array(const char *where, const char *name,
                                           const float *a, int64_t count, int experts) {
  if (a == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: %s is NULL; expected [T,E] f32", where, name);
  for (int64_t i = 0; i < count; i++) {
    if (!isfinite(a[i]))
      return mfx_fail(MFX_ERR_INVALID, "%s: %s [%lld,%lld] is %g; expected finite values",
                      where, name, (long long)(i / experts), (long long)(i % experts),
                      (double)a[i]);
  }
  return MFX_OK;
}

/* z, r (and eps when given) [tokens, experts], 1 <= k <= experts. */
static mfx_status router_noisy_check(const char *where, const float *clean, const float *noise,
                                     const float *eps, int64_t tokens, int experts, int k) {
  mfx_status st = mfx_router_check_logits(where, clean, tokens, experts, k);
  if (st == MFX_OK)
    st = router_noisy_check_array(where, "noise logits", noise, tokens * experts, experts);
  if (st == MFX_OK && eps != NULL)
    st = router_noisy_check_array(where, "noise samples", eps, tokens * experts, experts);
  return st;
}

/* ---- one token ------------------------------------------------------------- */

static double router_softplus(double r) { return r > 30.0 ? r : log1p(exp(r)); }
static double router_sigmoid(double r) { return 1.0 / (1.0 + exp(-r)); }

/* Scratch of one token: [experts] doubles, k+1 selected. */
typedef struct {
  double *sigma, *h, *gz, *gr;
  int32_t *selected;
} router_noisy_row;

static mfx_status router_noisy_row_alloc(const char *where, int experts, int k,
                                         router_noisy_row *w) {
  void *block = NULL;
  size_t doubles = (size_t)experts * 4;
  mfx_status st = mfx_router_alloc(
      where, doubles * sizeof(double) + (size_t)(k + 1) * sizeof(int32_t), &block);
  if (st != MFX_OK) return st;
  double *d = block;
  w->sigma = d;
  w->h = d + experts;
  w->gz = d + 2 * (size_t)experts;
  w->gr = d + 3 * (size_t)experts;
  w->selected = (int32_t *)(d + doubles);
  return MFX_OK;
}

/* sigma and h of one token; then the top min(k+1, E) of h. */
static void router_noisy_token(const float *z, const float *r, const float *eps, int experts,
                               int k, router_noisy_row *w) {
  for (int j = 0; j < experts; j++) {
    w->sigma[j] = router_softplus(r[j]) + MFX_ROUTER_NOISE_MIN;
    w->h[j] = (double)z[j] + (eps ? (double)eps[j] * w->sigma[j] : 0.0);
  }
  mfx_router_topk_row(w->h, experts, k < experts ? k + 1 : k, w->selected);
}

static int router_in_topk(const int32_t *selected, int k, int i) {
  for (int s = 0; s < k; s++)
    if (selected[s] == i) return 1;
  return 0;
}

/* The expert whose noisy logit is expert i's threshold (k < E). */
static int router_threshold_expert(const router_noisy_row *w, int k, int i) {
  return router_in_topk(w->selected, k, i) ? w->selected[k] : w->selected[k - 1];
}

/* P[i] of one token (after router_noisy_token); 1 when k == E. */
static double router_prob_in_topk(const float *z, const router_noisy_row *w, int experts, int k,
                                  int i) {
  if (k == experts) return 1.0;
  int j = router_threshold_expert(w, k, i);
  double u = ((double)z[i] - w->h[j]) / w->sigma[i];
  return 0.5 * erfc(-u / sqrt(2.0));
}

/* Adds the load gradient of one token into w->gz, w->gr given dload:
 * P = Phi(u), u = (z_i - h_j)/sigma_i with h_j = z_j + eps_j sigma_j. */
static void router_load_token_backward(const float *z, const float *r, const float *eps,
                                       int experts, int k, const double *dload,
                                       router_noisy_row *w) {
  if (k == experts) return;
  const double inv_sqrt_2pi = 0.3989422804014327;
  for (int i = 0; i < experts; i++) {
    int j = router_threshold_expert(w, k, i);
    double u = ((double)z[i] - w->h[j]) / w->sigma[i];
    double g = dload[i] * inv_sqrt_2pi * exp(-0.5 * u * u) / w->sigma[i]; /* dL/dz_i */
    w->gz[i] += g;
    w->gz[j] -= g;
    w->gr[i] -= g * u * router_sigmoid(r[i]);
    if (eps != NULL) w->gr[j] -= g * (double)eps[j] * router_sigmoid(r[j]);
  }
}

/* ---- public entry points ----------------------------------------------------- */

mfx_status mfx_router_noisy_logits(const float *clean, const float *noise, const float *eps,
                                   int64_t tokens, int experts, float *noisy) {
  const char *where = "router noisy logits";
  mfx_status st = router_noisy_check(where, clean, noise, eps, tokens, experts, 1);
  if (st != MFX_OK) return st;
  if (noisy == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: output is NULL", where);
  for (int64_t i = 0; i < tokens * experts; i++) {
    double sigma = router_softplus(noise[i]) + MFX_ROUTER_NOISE_MIN;
    noisy[i] = (float)((double)clean[i] + (eps ? (double)eps[i] * sigma : 0.0));
  }
  return MFX_OK;
}

/* load[experts] of a checked input (kind known). */
static mfx_status router_noisy_load(mfx_router_load_kind kind, const float *clean,
                                    const float *noise, const float *eps, int64_t tokens,
                                    int experts, int k, double *load) {
  router_noisy_row w;
  mfx_status st = router_noisy_row_alloc("router noisy load", experts, k, &w);
  if (st != MFX_OK) return st;
  for (int i = 0; i < experts; i++) load[i] = 0.0;
  for (int64_t t = 0; t < tokens; t++) {
    const float *z = clean + t * experts;
    router_noisy_token(z, noise + t * experts, eps ? eps + t * experts : NULL, experts, k, &w);
    for (int i = 0; i < experts; i++) {
      if (kind == MFX_ROUTER_LOAD_HARD) load[i] += router_in_topk(w.selected, k, i);
      else load[i] += router_prob_in_topk(z, &w, experts, k, i);
    }
  }
  free(w.sigma);
  return MFX_OK;
}

static mfx_status router_check_load_kind(const char *where, mfx_router_load_kind kind) {
  if ((int)kind < 0 || kind >= MFX_ROUTER_LOAD_COUNT)
    return mfx_fail(MFX_ERR_INVALID, "%s: load kind %d is unknown; expected hard or smooth",
                    where, (int)kind);
  return MFX_OK;
}

mfx_status mfx_router_noisy_load(mfx_router_load_kind kind, const float *clean,
                                 const float *noise, const float *eps, int64_t tokens,
                                 int experts, int k, double *load) {
  const char *where = "router noisy load";
  mfx_status st = router_check_load_kind(where, kind);
  if (st == MFX_OK) st = router_noisy_check(where, clean, noise, eps, tokens, experts, k);
  if (st == MFX_OK && load == NULL) st = mfx_fail(MFX_ERR_INVALID, "%s: load is NULL", where);
  if (st != MFX_OK) return st;
  return router_noisy_load(kind, clean, noise, eps, tokens, experts, k, load);
}

/* Per token: softmax backward of the importance weight v (may be NULL),
 * plus the smooth load's backward of dload (may be NULL); written as f32. */
static mfx_status router_noisy_backward(const float *clean, const float *noise, const float *eps,
                                        int64_t tokens, int experts, int k, const double *v,
                                        const double *dload, float *grad_clean,
                                        float *grad_noise) {
  router_noisy_row w;
  mfx_status st = router_noisy_row_alloc("router noisy backward", experts, k, &w);
  if (st != MFX_OK) return st;
  double *p = malloc((size_t)experts * sizeof(double));
  if (p == NULL) {
    free(w.sigma);
    return mfx_fail(MFX_ERR_NOMEM, "router noisy backward: out of memory");
  }
  for (int64_t t = 0; t < tokens; t++) {
    const float *z = clean + t * experts, *r = noise + t * experts;
    const float *e = eps ? eps + t * experts : NULL;
    for (int j = 0; j < experts; j++) w.gz[j] = w.gr[j] = 0.0;
    if (v != NULL) {
      mfx_router_softmax_row(z, experts, p);
      double dot = 0.0;
      for (int j = 0; j < experts; j++) dot += v[j] * p[j];
      for (int j = 0; j < experts; j++) w.gz[j] = p[j] * (v[j] - dot);
    }
    if (dload != NULL) {
      router_noisy_token(z, r, e, experts, k, &w);
      router_load_token_backward(z, r, e, experts, k, dload, &w);
    }
    for (int j = 0; j < experts; j++) {
      if (grad_clean) grad_clean[t * experts + j] = (float)w.gz[j];
      if (grad_noise) grad_noise[t * experts + j] = (float)w.gr[j];
    }
  }
  free(p);
  free(w.sigma);
  return MFX_OK;
}

mfx_status mfx_router_smooth_load_backward(const float *clean, const float *noise,
                                           const float *eps, int64_t tokens, int experts,
                                           int k, const double *dload, float *grad_clean,
                                           float *grad_noise) {
  const char *where = "router smooth load backward";
  mfx_status st = router_noisy_check(where, clean, noise, eps, tokens, experts, k);
  if (st == MFX_OK && dload == NULL) st = mfx_fail(MFX_ERR_INVALID, "%s: dload is NULL", where);
  for (int i = 0; st == MFX_OK && i < experts; i++) {
    if (!isfinite(dload[i]))
      st = mfx_fail(MFX_ERR_INVALID, "%s: dload[%d]=%g; expected finite", where, i, dload[i]);
  }
  if (st != MFX_OK) return st;
  return router_noisy_backward(clean, noise, eps, tokens, experts, k, NULL, dload, grad_clean,
                               grad_noise);
}

static mfx_status router_noisy_loss_check(mfx_router_loss_kind kind, mfx_router_load_kind load,
                                          const float *clean, const float *noise,
                                          const float *eps, int64_t tokens, int experts, int k,
                                          const double *alpha, int alpha_count,
                                          const double *loss) {
  const char *where = "router noisy loss";
  if (kind != MFX_ROUTER_SWITCH && kind != MFX_ROUTER_LATENCY)
    return mfx_fail(MFX_ERR_INVALID, "%s: kind %s has no load term; expected switch or latency",
                    where, mfx_router_loss_name(kind));
  mfx_status st = router_check_load_kind(where, load);
  if (st == MFX_OK && loss == NULL) st = mfx_fail(MFX_ERR_INVALID, "%s: loss is NULL", where);
  if (st == MFX_OK) st = router_noisy_check(where, clean, noise, eps, tokens, experts, k);
  if (st == MFX_OK) st = mfx_router_check_alpha(kind, alpha, alpha_count, experts);
  return st;
}

/* The loss from I (sum of softmax) and the load; v = dL/dp, dload = dL/dload. */
static double router_noisy_value(mfx_router_loss_kind kind, int64_t tokens, int experts, int k,
                                 const double *alpha, const double *importance,
                                 const double *load, double *x, double *v, double *dload) {
  double T = (double)tokens, loss = 0.0;
  if (kind == MFX_ROUTER_SWITCH) {
    for (int i = 0; i < experts; i++) {
      double share = (double)experts * load[i] / ((double)k * T);
      loss += share * importance[i] / T;
      v[i] = share / T;
      dload[i] = (double)experts * importance[i] / ((double)k * T * T);
    }
    return loss;
  }
  for (int i = 0; i < experts; i++) x[i] = alpha[i] * importance[i];
  loss = mfx_router_cv2(x, experts, v);
  for (int i = 0; i < experts; i++) v[i] *= alpha[i];
  for (int i = 0; i < experts; i++) x[i] = alpha[i] * load[i];
  loss += mfx_router_cv2(x, experts, dload);
  for (int i = 0; i < experts; i++) dload[i] *= alpha[i];
  return loss;
}

mfx_status mfx_router_noisy_loss(mfx_router_loss_kind kind, mfx_router_load_kind load,
                                 const float *clean, const float *noise, const float *eps,
                                 int64_t tokens, int experts, int k, const double *alpha,
                                 int alpha_count, double *loss, float *grad_clean,
                                 float *grad_noise) {
  mfx_status st = router_noisy_loss_check(kind, load, clean, noise, eps, tokens, experts, k,
                                          alpha, alpha_count, loss);
  if (st != MFX_OK) return st;
  double *d = calloc((size_t)experts * 6, sizeof(double));
  if (d == NULL) return mfx_fail(MFX_ERR_NOMEM, "router noisy loss: out of memory");
  double *importance = d, *counts = d + experts, *x = d + 2 * experts, *v = d + 3 * experts;
  double *dload = d + 4 * experts, *p = d + 5 * experts;
  for (int64_t t = 0; t < tokens; t++) {
    mfx_router_softmax_row(clean + t * experts, experts, p);
    for (int j = 0; j < experts; j++) importance[j] += p[j];
  }
  st = router_noisy_load(load, clean, noise, eps, tokens, experts, k, counts);
  if (st == MFX_OK) {
    *loss = router_noisy_value(kind, tokens, experts, k, alpha, importance, counts, x, v, dload);
    if (!isfinite(*loss))
      st = mfx_fail(MFX_ERR_INVALID, "router noisy loss %s: the loss is %g, not a finite number",
                    mfx_router_loss_name(kind), *loss);
  }
  if (st == MFX_OK && (grad_clean != NULL || grad_noise != NULL))
    st = router_noisy_backward(clean, noise, eps, tokens, experts, k, v,
                               load == MFX_ROUTER_LOAD_SMOOTH ? dload : NULL, grad_clean,
                               grad_noise);
  free(d);
  return st;
}
