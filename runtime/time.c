/* Host timers and the one timing loop (the profiler, the artifact timer,
 * the tuner's measurement, mfx run and bench_ops all time through it). */
#define _POSIX_C_SOURCE 200809L
#include "mfx/runtime.h"

#include <stdlib.h>
#include <time.h>

double mfx_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int time_compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double mfx_median(double *values, int n) {
  if (values == NULL || n < 1) return 0.0;
  qsort(values, (size_t)n, sizeof *values, time_compare);
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

mfx_status mfx_time_runs(mfx_timed_fn fn, void *user, const mfx_timing *t, double *samples,
                         int *runs, double *total) {
  if (fn == NULL || t == NULL || samples == NULL || runs == NULL || t->warmup < 0 ||
      t->min_runs < 1 || t->max_runs < t->min_runs || !(t->min_seconds >= 0.0))
    return mfx_fail(MFX_ERR_INVALID, "time: a function, samples and warmup >= 0, "
                    "1 <= min_runs <= max_runs, min_seconds >= 0 are needed");
  double seconds = 0.0, sum = 0.0;
  for (int i = 0; i < t->warmup; i++) MFX_TRY(fn(user, &seconds));
  int n = 0;
  while (n < t->max_runs && (n < t->min_runs || sum < t->min_seconds)) {
    seconds = -1.0;
    double t0 = mfx_now_seconds();
    mfx_status st = fn(user, &seconds);
    double host = mfx_now_seconds() - t0;
    if (st != MFX_OK) {
      *runs = n;
      return st;
    }
    samples[n] = seconds >= 0.0 ? seconds : host;
    sum += samples[n++];
  }
  *runs = n;
  if (total != NULL) *total = sum;
  return MFX_OK;
}

mfx_status mfx_time_median(mfx_timed_fn fn, void *user, const mfx_timing *t, double *median_s,
                           int *runs) {
  if (t == NULL || median_s == NULL || t->max_runs < 1)
    return mfx_fail(MFX_ERR_INVALID, "time: a plan with max_runs >= 1 and median_s are needed");
  double *samples = malloc((size_t)t->max_runs * sizeof *samples);
  if (samples == NULL) return mfx_fail(MFX_ERR_NOMEM, "time: out of memory for %d runs", t->max_runs);
  int n = 0;
  mfx_status st = mfx_time_runs(fn, user, t, samples, &n, NULL);
  if (st == MFX_OK) *median_s = mfx_median(samples, n);
  if (runs != NULL) *runs = n;
  free(samples);
  return st;
}
