/* Helpers shared by the router files (router_*.c); not a public interface. */
#ifndef MFX_ROUTER_INTERNAL_H
#define MFX_ROUTER_INTERNAL_H

#include "mfx/router.h"

/* Checks logits [tokens, experts] and k: non-NULL, tokens >= 1,
 * 1 <= k <= experts, every value finite. `where` names the caller. */
mfx_status mfx_router_check_logits(const char *where, const float *logits,
                                   int64_t tokens, int experts, int k);

/* p[0..experts) = softmax(z) in double; returns logsumexp(z). */
double mfx_router_softmax_row(const float *z, int experts, double *p);

/* The k largest of score[0..experts) in descending order, ties broken by
 * the lower index, into selected[0..k). */
void mfx_router_topk_row(const double *score, int experts, int k,
                         int32_t *selected);

/* Adds the top-k counts of logits [tokens, experts] into counts[experts];
 * scratch holds experts doubles and k int32. */
void mfx_router_add_counts(const float *logits, int64_t tokens, int experts,
                           int k, double *counts, double *scratch,
                           int32_t *selected);

/* Checks alpha for loss `kind` (required by the latency loss only). */
mfx_status mfx_router_check_alpha(mfx_router_loss_kind kind, const double *alpha,
                                  int alpha_count, int experts);

/* CV^2(x) = var(x)/mean(x)^2 (unbiased variance, n >= 2); when dcv2 is not
 * NULL it receives dCV^2/dx. */
double mfx_router_cv2(const double *x, int n, double *dcv2);

/* malloc that reports MFX_ERR_NOMEM naming `where`. */
mfx_status mfx_router_alloc(const char *where, size_t bytes, void **out);

#endif
