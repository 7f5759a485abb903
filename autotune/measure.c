/* The measurement protocol (after TVM's time evaluator and Triton's
 * do_bench): the reference check before it was the warm-up; a timed call
 * sizes the repeats so each lasts at least min_sample_s (calls grouped);
 * then repeats until min_seconds of measured time and min_repeats; the
 * median per call and the spread (p90 - p10) / median. With flush_cache,
 * a buffer larger than the last-level cache is written before every
 * repeat (outside the timing) and each repeat is one call: cold caches. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autotune_internal.h"

#define TUNE_MAX_CALLS_PER_REPEAT 100000

void mfx_measure_options_default(mfx_measure_options *o) {
  memset(o, 0, sizeof *o);
  o->min_seconds = 0.05;
  o->min_repeats = 3;
  o->max_repeats = 200;
  o->min_sample_s = 2e-4;
  o->flush_cache = 0;
  o->tol = 1e-4;
}

size_t mfx_measure_flush_bytes(void) {
  long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  size_t bytes = llc > 0 ? 2 * (size_t)llc : (size_t)64 << 20;
  return bytes < ((size_t)8 << 20) ? (size_t)8 << 20 : bytes;
}

mfx_status mfx_launch_call(const mfx_launch *l) {
  if (l->fn != NULL) return l->fn(l->user, l->kernel, l->env, l->inputs, l->outputs);
  return mfx_op_kernel_run(l->kernel, l->env, l->inputs, l->outputs);
}

static void tune_flush(const mfx_launch *l, int round) {
  if (l->flush != NULL) memset(l->flush, round & 0xff, l->flush_bytes);
}

/* Seconds of `calls` launches back to back. */
static mfx_status tune_time_calls(const mfx_launch *l, int calls, double *seconds) {
  double t0 = mfx_now_seconds();
  for (int c = 0; c < calls; c++) MFX_TRY(mfx_launch_call(l));
  *seconds = mfx_now_seconds() - t0;
  return MFX_OK;
}

/* One repeat of the timing loop: the cache flushed (when asked), then
 * `calls` launches timed together (by the loop's host clock). */
typedef struct {
  const mfx_launch *launch;
  int calls, flush, round;
} tune_repeat;

static mfx_status tune_timed_repeat(void *user, double *seconds) {
  (void)seconds;
  tune_repeat *r = user;
  if (r->flush) tune_flush(r->launch, r->round);
  r->round++;
  for (int c = 0; c < r->calls; c++) MFX_TRY(mfx_launch_call(r->launch));
  return MFX_OK;
}

/* q-quantile of sorted values, linearly interpolated. */
static double tune_quantile(const double *v, int n, double q) {
  double at = q * (n - 1);
  int i = (int)floor(at);
  if (i >= n - 1) return v[n - 1];
  return v[i] + (at - i) * (v[i + 1] - v[i]);
}

void tune_summarize(double *samples, int n, int calls, double total,
                           mfx_measurement *out) {
  mfx_median(samples, n); /* sorts them */
  out->median_s = tune_quantile(samples, n, 0.5);
  out->p10_s = tune_quantile(samples, n, 0.1);
  out->p90_s = tune_quantile(samples, n, 0.9);
  out->spread = out->median_s > 0.0 ? (out->p90_s - out->p10_s) / out->median_s : 0.0;
  out->repeats = n;
  out->calls_per_repeat = calls;
  out->total_s = total;
}

/* Calls per repeat: enough that one repeat lasts min_sample_s. */
static mfx_status tune_calls_per_repeat(const mfx_launch *l, const mfx_measure_options *o,
                                        int *calls) {
  *calls = 1;
  if (o->flush_cache || o->min_sample_s <= 0.0) return MFX_OK;
  double one;
  MFX_TRY(tune_time_calls(l, 1, &one));
  if (one < o->min_sample_s) {
    double n = ceil(o->min_sample_s / (one > 1e-9 ? one : 1e-9));
    *calls = n > TUNE_MAX_CALLS_PER_REPEAT ? TUNE_MAX_CALLS_PER_REPEAT : (int)n;
  }
  return MFX_OK;
}

mfx_status mfx_measure_cpu(const mfx_launch *l, const mfx_measure_options *o,
                           mfx_measurement *out) {
  if (l == NULL || o == NULL || out == NULL || o->max_repeats < 1)
    return mfx_fail(MFX_ERR_INVALID, "measure: bad arguments (max_repeats must be >= 1)");
  int calls;
  MFX_TRY(tune_calls_per_repeat(l, o, &calls));
  double *samples = malloc(sizeof(double) * (size_t)o->max_repeats);
  if (samples == NULL) return mfx_fail(MFX_ERR_NOMEM, "measure: out of memory");
  double total = 0.0;
  int n = 0;
  tune_repeat repeat = {l, calls, o->flush_cache, 0};
  int min_repeats = o->min_repeats < 1 ? 1 : o->min_repeats;
  mfx_timing plan = {.min_runs = min_repeats < o->max_repeats ? min_repeats : o->max_repeats,
                     .max_runs = o->max_repeats,
                     .min_seconds = o->min_seconds > 0.0 ? o->min_seconds : 0.0};
  mfx_status st = mfx_time_runs(tune_timed_repeat, &repeat, &plan, samples, &n, &total);
  for (int i = 0; i < n; i++) samples[i] /= calls;
  if (st == MFX_OK) tune_summarize(samples, n, calls, total, out);
  free(samples);
  return st;
}
