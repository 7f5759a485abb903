/* mfx router: the losses and balancing schemes of a mixture-of-experts
 * router, with their gradients with respect to the router logits.
 * Part of the runtime room: libc and libm only.
 *
 * Notation. Logits z [T,E] (f32, row-major: T tokens, E experts),
 * p = softmax(z) per token, top-k selection per token (1 <= k <= E, ties
 * broken by the lower expert index), c_i = number of (token, slot)
 * assignments of expert i under top-k (sum_i c_i = k*T), P_i = mean_t p[t,i],
 * I_i = sum_t p[t,i]. Every loss returns its value and dL/dz [T,E]; the
 * counts c carry no gradient. Accumulation is in double. */
#ifndef MFX_ROUTER_H
#define MFX_ROUTER_H

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- losses ------------------------------------------------------------ */

typedef enum {
  /* L = E * sum_i (c_i/(k*T)) * P_i; equals 1 at perfect balance. */
  MFX_ROUTER_SWITCH = 0,
  /* ShiftAddViT's latency-aware loss:
   * L = CV^2(alpha . I) + CV^2(alpha . c), CV^2(x) = var(x)/mean(x)^2 with
   * the unbiased variance (E >= 2). The c term carries no gradient. Minimal
   * when alpha_i * tokens_i are equal: faster experts get more tokens. */
  MFX_ROUTER_LATENCY,
  /* L = mean_t (logsumexp_j z[t,j])^2. */
  MFX_ROUTER_ZLOSS,
  MFX_ROUTER_LOSS_COUNT
} mfx_router_loss_kind;

const char *mfx_router_loss_name(mfx_router_loss_kind kind); /* "switch" */
/* "switch", "latency", "zloss" -> kind; MFX_ERR_INVALID otherwise. */
mfx_status mfx_router_loss_from_name(const char *name, mfx_router_loss_kind *out);

/* Expert counts of a larger batch than the logits at hand (global-batch
 * statistics): counts[experts] of (token, slot) assignments and the number
 * of tokens they came from, so sum(counts) == k * tokens. */
typedef struct {
  const double *counts;
  int experts;
  double tokens;
} mfx_router_counts;

/* Computes the loss `kind` of logits [tokens, experts] into *loss and, when
 * grad is not NULL, dL/dz into grad [tokens, experts].
 * k: top-k of the switch and latency losses (ignored by zloss, which
 *    still requires 1 <= k <= experts).
 * alpha, alpha_count: per-expert latency weights, positive, alpha_count ==
 *    experts; required by the latency loss, must be NULL for the others.
 *    Only ratios matter: the loss is invariant to scaling alpha.
 * global: NULL to use the counts of these logits; otherwise the switch and
 *    latency losses use global->counts (and global->tokens as T in c/(k*T))
 *    while P and I stay local. Must be NULL for zloss. */
mfx_status mfx_router_loss(mfx_router_loss_kind kind, const float *logits,
                           int64_t tokens, int experts, int k,
                           const double *alpha, int alpha_count,
                           const mfx_router_counts *global, double *loss,
                           float *grad);

/* Top-k counts c [experts] of logits [tokens, experts] (unbiased). */
mfx_status mfx_router_expert_counts(const float *logits, int64_t tokens,
                                    int experts, int k, double *counts);

/* ---- the noisy top-k gate and its smooth load (Shazeer et al. 2017) -------
 * Clean logits z [T,E], noise logits r [T,E] (a second projection of each
 * token) and standard normal samples eps [T,E] (NULL: all zero, the noise's
 * mean) give the noisy logits
 *   sigma = softplus(r) + MFX_ROUTER_NOISE_MIN,   h = z + eps * sigma;
 * a training layer takes its top k by h. The smooth load of expert i is
 *   load_i = sum_t P[t,i],  P[t,i] = Phi((z[t,i] - thr[t,i]) / sigma[t,i]),
 * the probability that i is in token t's top k when i's noise is drawn
 * again and the others' stay: thr[t,i] = the k-th largest h[t,j] over
 * j != i, i.e. h's (k+1)-th largest when i is in the top k of h (ties to the
 * lower index), its k-th largest otherwise. Phi is the standard normal CDF.
 * With k == E every P is 1. Unlike the counts, load has a gradient with
 * respect to z and r (through Phi, sigma and the threshold's h). */
#define MFX_ROUTER_NOISE_MIN 1e-2

typedef enum {
  MFX_ROUTER_LOAD_HARD = 0, /* top-k counts of h: no gradient */
  MFX_ROUTER_LOAD_SMOOTH,   /* the smooth load above */
  MFX_ROUTER_LOAD_COUNT
} mfx_router_load_kind;

const char *mfx_router_load_name(mfx_router_load_kind kind); /* "hard", "smooth" */
mfx_status mfx_router_load_from_name(const char *name, mfx_router_load_kind *out);

/* h [tokens, experts] (f32) from z, r and eps (eps may be NULL). */
mfx_status mfx_router_noisy_logits(const float *clean, const float *noise, const float *eps,
                                   int64_t tokens, int experts, float *noisy);
/* load [experts]: the smooth load (MFX_ROUTER_LOAD_SMOOTH) or the top-k
 * counts of h (MFX_ROUTER_LOAD_HARD). */
mfx_status mfx_router_noisy_load(mfx_router_load_kind kind, const float *clean,
                                 const float *noise, const float *eps, int64_t tokens,
                                 int experts, int k, double *load);
/* The backward pass of the smooth load: given dL/dload [experts], writes
 * dL/dz into grad_clean and dL/dr into grad_noise ([tokens, experts] each;
 * either may be NULL). */
mfx_status mfx_router_smooth_load_backward(const float *clean, const float *noise,
                                           const float *eps, int64_t tokens, int experts,
                                           int k, const double *dload, float *grad_clean,
                                           float *grad_noise);
/* The switch or latency loss of the noisy gate: the counts c replaced by
 * the load of `load` (P and I stay the softmax of the clean logits):
 *   switch:  L = E * sum_i load_i/(k*T) * P_i
 *   latency: L = CV^2(alpha . I) + CV^2(alpha . load)
 * so with the smooth load both terms train the router. grad_clean and
 * grad_noise [tokens, experts] may be NULL; with the hard load grad_noise
 * is zero. alpha, alpha_count as in mfx_router_loss. */
mfx_status mfx_router_noisy_loss(mfx_router_loss_kind kind, mfx_router_load_kind load,
                                 const float *clean, const float *noise, const float *eps,
                                 int64_t tokens, int experts, int k, const double *alpha,
                                 int alpha_count, double *loss, float *grad_clean,
                                 float *grad_noise);

/* ---- global-batch statistics ("Demons in the Detail") ---------------------
 * Sums the counts over the micro-batches of one optimizer step and, on
 * demand, across data-parallel ranks; probabilities stay local. */

/* Sums buf[0..n) element-wise over all ranks, in place, on every rank
 * (NCCL, MPI or torch.distributed all-reduce). Returns 0 on success. */
typedef int (*mfx_allreduce_fn)(double *buf, int n, void *user);

typedef struct mfx_router_stats mfx_router_stats;

mfx_status mfx_router_stats_create(int experts, int k, mfx_router_stats **out);
void mfx_router_stats_destroy(mfx_router_stats *stats);
/* Adds the top-k counts of one micro-batch of logits [tokens, experts]. */
mfx_status mfx_router_stats_add(mfx_router_stats *stats, const float *logits,
                                int64_t tokens, int experts);
/* Adds counts [experts] already computed for `tokens` tokens. */
mfx_status mfx_router_stats_add_counts(mfx_router_stats *stats,
                                       const double *counts, int experts,
                                       double tokens);
/* Sums counts and tokens over ranks with one call of allreduce on a buffer
 * of experts+1 doubles (counts, then tokens). Once per step: adding or
 * reducing again before mfx_router_stats_reset is an error. A failed
 * callback leaves the local sums as they were. */
mfx_status mfx_router_stats_allreduce(mfx_router_stats *stats,
                                      mfx_allreduce_fn allreduce, void *user);
/* Starts a new optimizer step: counts and tokens back to zero. */
void mfx_router_stats_reset(mfx_router_stats *stats);
/* A view of the accumulated counts for mfx_router_loss's `global`; valid
 * until the next add, reset or destroy. */
mfx_router_counts mfx_router_stats_counts(const mfx_router_stats *stats);
int mfx_router_stats_k(const mfx_router_stats *stats);

/* ---- auxiliary-loss-free balancing (DeepSeek-V3) --------------------------
 * Selection score s[t,i] = p[t,i] + bias[i]; the gates use the unbiased
 * probabilities of the selected experts, renormalised over the k selected. */

/* experts_out, gates_out: [tokens, k], slot order = descending score (ties:
 * lower index first). bias may be NULL (all zero); counts_out [experts] may
 * be NULL, else it receives the counts of this selection. */
mfx_status mfx_router_route(const float *logits, int64_t tokens, int experts,
                            int k, const float *bias, int32_t *experts_out,
                            float *gates_out, double *counts_out);

/* Once per step: bias[i] += rate * sign(mean(counts) - counts[i]). */
mfx_status mfx_router_update_bias(float *bias, const double *counts,
                                  int experts, double rate);

/* ---- latency table ------------------------------------------------------- */

/* Least squares fit seconds ~ a + b*n over `count` measured points
 * (count >= 2, not all n equal). r2 = 1 - SS_res/SS_tot (1 when every
 * measured time is equal and fitted exactly). */
mfx_status mfx_router_latency_fit(const double *n, const double *seconds,
                                  int count, double *a, double *b, double *r2);

/* alpha_i = latency_i / mean_j latency_j; latencies finite and positive.
 * The latency loss and latency tables take alpha in (0, MFX_ROUTER_ALPHA_MAX]
 * (a latency a million times the mean is a broken table, and larger ones
 * overflow the loss). */
#define MFX_ROUTER_ALPHA_MAX 1e6
mfx_status mfx_router_latency_alpha(const double *latency, int experts,
                                    double *alpha);

#ifdef __cplusplus
}
#endif
#endif
