/* The expert latency table as the router sees it: a line fitted to measured
 * (token count, seconds) points, and the per-expert weights alpha of the
 * latency-aware loss. */
#include "router_internal.h"

#include <math.h>

static mfx_status router_check_points(const double *n, const double *seconds,
                                          int count) {
  const char *where = "router latency fit";
  if (n == NULL || seconds == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: n or seconds is NULL", where);
  }
  if (count < 2) {
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: %d measured points; expected at least 2", where, count);
  }
  for (int i = 0; i < count; i++) {
    if (!isfinite(n[i]) || !isfinite(seconds[i])) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: point %d is (n=%g, seconds=%g); expected finite "
                      "values", where, i, n[i], seconds[i]);
    }
  }
  return MFX_OK;
}

static double router_mean(const double *x, int count) {
  double sum = 0.0;
  for (int i = 0; i < count; i++) sum += x[i];
  return sum / count;
}

mfx_status mfx_router_latency_fit(const double *n, const double *seconds,
                                  int count, double *a, double *b, double *r2) {
  mfx_status st = router_check_points(n, seconds, count);
  if (st != MFX_OK) return st;
  if (a == NULL || b == NULL || r2 == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "router latency fit: a, b or r2 is NULL");
  }
  double n_mean = router_mean(n, count);
  double s_mean = router_mean(seconds, count);
  double snn = 0.0, sns = 0.0, sss = 0.0;
  for (int i = 0; i < count; i++) {
    snn += (n[i] - n_mean) * (n[i] - n_mean);
    sns += (n[i] - n_mean) * (seconds[i] - s_mean);
    sss += (seconds[i] - s_mean) * (seconds[i] - s_mean);
  }
  if (snn == 0.0) {
    return mfx_fail(MFX_ERR_INVALID,
                    "router latency fit: every point has n=%g; expected at "
                    "least two distinct token counts", n_mean);
  }
  *b = sns / snn;
  *a = s_mean - *b * n_mean;
  double residual = 0.0;
  for (int i = 0; i < count; i++) {
    double e = seconds[i] - (*a + *b * n[i]);
    residual += e * e;
  }
  *r2 = sss > 0.0 ? 1.0 - residual / sss : 1.0;
  return MFX_OK;
}

mfx_status mfx_router_latency_alpha(const double *latency, int experts,
                                    double *alpha) {
  const char *where = "router latency alpha";
  if (latency == NULL || alpha == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "%s: latency or alpha is NULL", where);
  }
  if (experts < 1) {
    return mfx_fail(MFX_ERR_INVALID, "%s: E=%d experts; expected E >= 1", where,
                    experts);
  }
  for (int i = 0; i < experts; i++) {
    if (!isfinite(latency[i]) || latency[i] <= 0.0) {
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: latency[%d]=%g; expected finite and > 0", where, i,
                      latency[i]);
    }
  }
  double mean = router_mean(latency, experts);
  for (int i = 0; i < experts; i++) alpha[i] = latency[i] / mean;
  return MFX_OK;
}
