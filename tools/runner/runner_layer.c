/* mfx-runner LAYER.mfxa --weights W.safetensors: an MoE layer of mfx
 * compile-layer with its weights (mfx_moe_load), run on X [T, D] from
 * --in X=FILE.npy (or seeded random tokens, as many as the largest
 * bucket), its output Y saved with --out Y=FILE.npy, checked against the
 * plain-C reference (mfx_moe_reference, routed by the layer's own logits so
 * a near tie cannot decide the comparison) with --check, timed with
 * --bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/moe.h"
#include "mfx/ops.h"
#include "runner.h"

static int layer_input(const runner_args *a, const mfx_moe *moe, mfx_array *x) {
  const mfx_moe_spec *s = mfx_moe_get_spec(moe);
  if (a->n_in > 1 || (a->n_in == 1 && strcmp(a->in[0].name, "X") != 0))
    return runner_error(RUNNER_EXIT_USAGE, "a layer takes one input, --in X=FILE.npy [T, %d]",
                        s->dim);
  if (a->n_out > 1 || (a->n_out == 1 && strcmp(a->out[0].name, "Y") != 0))
    return runner_error(RUNNER_EXIT_USAGE, "a layer has one output, --out Y=FILE.npy");
  if (a->n_in == 0) {
    int64_t T = mfx_moe_bucket_at(moe, mfx_moe_bucket_count(moe) - 1);
    if (mfx_array_create(x, MFX_F32, 2, (int64_t[]){T, s->dim}) != MFX_OK)
      return runner_error_status(RUNNER_EXIT_FAIL, "input X");
    uint64_t rng = a->seed * 0x9E3779B97F4A7C15ull + 7;
    float *v = x->data;
    for (int64_t i = 0; i < T * s->dim; i++) {
      rng = rng * 6364136223846793005ull + 1442695040888963407ull;
      v[i] = (float)((double)(rng >> 40) / 8388608.0 - 1.0);
    }
    return 0;
  }
  if (mfx_npy_load(a->in[0].path, x) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "input X");
  if (x->dtype != MFX_F32 || x->ndim != 2 || x->shape[1] != s->dim || x->shape[0] < 1) {
    int rc = runner_error(RUNNER_EXIT_FAIL, "input X (%s): expected f32 [T, %d] tokens of the "
                          "layer's dim D=%d", a->in[0].path, s->dim, s->dim);
    mfx_array_free(x);
    return rc;
  }
  return 0;
}

static int layer_check(const runner_args *a, const mfx_moe *moe, const mfx_array *x,
                       const mfx_array *y, const float *logits) {
  mfx_array want;
  if (mfx_array_create(&want, MFX_F32, 2, (int64_t[]){y->shape[0], y->shape[1]}) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "reference");
  int rc = 0;
  if (mfx_moe_reference(moe, x->data, x->shape[0], logits, want.data, NULL) != MFX_OK) {
    rc = runner_error_status(RUNNER_EXIT_FAIL, "reference");
  } else {
    mfx_compare c = mfx_compare_arrays(y, &want, a->tol);
    printf("check Y vs the plain-C reference: max_abs_err=%.3g max_rel_err=%.3g (tol %g): %s\n",
           c.max_abs_err, c.max_rel_err, a->tol, c.ok ? "ok" : "MISMATCH");
    if (!c.ok)
      rc = runner_error(RUNNER_EXIT_FAIL, "Y differs from the reference at element %lld: %g, "
                        "expected %g", (long long)c.first_index, c.first_got, c.first_want);
  }
  mfx_array_free(&want);
  return rc;
}

static int layer_bench(const runner_args *a, mfx_moe *moe, const mfx_array *x, mfx_array *y) {
  double *t = malloc((size_t)a->repeat * sizeof *t);
  if (t == NULL) return runner_error(RUNNER_EXIT_FAIL, "out of memory");
  for (int i = 0; i < a->repeat; i++) {
    double t0 = mfx_now_seconds();
    if (mfx_moe_forward(moe, NULL, x->data, x->shape[0], y->data, NULL) != MFX_OK) {
      free(t);
      return runner_error_status(RUNNER_EXIT_FAIL, "forward");
    }
    t[i] = mfx_now_seconds() - t0;
  }
  for (int i = 1; i < a->repeat; i++) /* insertion sort: a few runs */
    for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
      double s = t[j];
      t[j] = t[j - 1];
      t[j - 1] = s;
    }
  printf("bench: %d runs, median %.3f ms per forward of %lld tokens\n", a->repeat,
         t[a->repeat / 2] * 1e3, (long long)x->shape[0]);
  free(t);
  return 0;
}

static int layer_run(const runner_args *a, mfx_moe *moe, const mfx_array *x) {
  const mfx_moe_spec *s = mfx_moe_get_spec(moe);
  int64_t T = x->shape[0];
  mfx_array y;
  float *logits = malloc((size_t)(T * s->experts) * sizeof(float));
  if (logits == NULL || mfx_array_create(&y, MFX_F32, 2, (int64_t[]){T, s->dim}) != MFX_OK) {
    free(logits);
    return runner_error(RUNNER_EXIT_FAIL, "out of memory for %lld tokens", (long long)T);
  }
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  int rc = 0;
  if (mfx_moe_forward(moe, NULL, x->data, T, y.data, &trace) != MFX_OK)
    rc = runner_error_status(RUNNER_EXIT_FAIL, "forward");
  if (rc == 0) {
    printf("forward: %lld tokens, %.3f ms; tokens per expert:", (long long)T,
           trace.total_s * 1e3);
    for (int e = 0; e < s->experts; e++)
      printf(" %s=%.0f", mfx_expert_kind_name(s->kinds[e]), trace.counts[e]);
    printf("\n");
  }
  if (rc == 0 && a->n_out == 1 && mfx_npy_save(a->out[0].path, &y) != MFX_OK)
    rc = runner_error_status(RUNNER_EXIT_FAIL, "output Y");
  if (rc == 0 && a->check) rc = layer_check(a, moe, x, &y, logits);
  if (rc == 0 && a->bench) rc = layer_bench(a, moe, x, &y);
  mfx_array_free(&y);
  free(logits);
  return rc;
}

int runner_run_layer(const runner_args *a) {
  if (a->kernel != NULL)
    return runner_error(RUNNER_EXIT_USAGE, "--kernel runs one kernel; with --weights the whole "
                        "layer runs");
  mfx_moe_load_options o = {a->device, a->threads};
  mfx_moe *moe = NULL;
  if (mfx_moe_load(a->artifact, a->weights, &o, &moe) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "loading the layer");
  const mfx_moe_spec *s = mfx_moe_get_spec(moe);
  printf("layer %s: D=%d H=%d experts", a->artifact, s->dim, s->hidden);
  for (int e = 0; e < s->experts; e++)
    printf("%c%s", e ? ',' : ' ', mfx_expert_kind_name(s->kinds[e]));
  printf(" k=%d, buckets up to %lld tokens\n", s->k,
         (long long)mfx_moe_bucket_at(moe, mfx_moe_bucket_count(moe) - 1));
  mfx_array x;
  int rc = layer_input(a, moe, &x);
  if (rc == 0) {
    rc = layer_run(a, moe, &x);
    mfx_array_free(&x);
  }
  mfx_moe_destroy(moe);
  return rc;
}
