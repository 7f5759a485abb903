/* mfx-embed-moe: an MoE layer in an application. It loads a layer made by
 * `mfx compile-layer` and its weights (a safetensors file), runs it on the
 * tokens of x.npy ([T, D] f32; default: its own random tokens, as many as
 * the largest bucket), checks the output against the layer's plain-C
 * reference, prints a checksum and saves the output to y.npy if given.
 *
 *   mfx-embed-moe LAYER.mfxa WEIGHTS.safetensors [x.npy [y.npy]]
 *
 * Everything it uses is in <mfx/moe.h> and <mfx/runtime.h>, from libmfxrt:
 * no compiler, no LLVM. */
#include <mfx/moe.h>
#include <mfx/runtime.h>

#include <stdio.h>
#include <stdlib.h>

static double absolute(double v) { return v < 0 ? -v : v; }
static double larger(double a, double b) { return a > b ? a : b; }

static int fail(const char *what) {
  fprintf(stderr, "mfx-embed-moe: %s: %s\n", what, mfx_last_error());
  return 1;
}

/* x [T, D]: from the file, or T random tokens (T the largest bucket). */
static int tokens(mfx_moe *moe, const char *path, mfx_array *x) {
  int D = mfx_moe_get_spec(moe)->dim;
  if (path != NULL) {
    if (mfx_npy_load(path, x) != MFX_OK) return fail("x");
    if (x->dtype != MFX_F32 || x->ndim != 2 || x->shape[1] != D) {
      fprintf(stderr, "mfx-embed-moe: %s: expected f32 [T, %d]\n", path, D);
      return 1;
    }
    return 0;
  }
  int64_t T = mfx_moe_bucket_at(moe, mfx_moe_bucket_count(moe) - 1);
  if (mfx_array_create(x, MFX_F32, 2, (int64_t[]){T, D}) != MFX_OK) return fail("x");
  float *v = x->data;
  uint32_t s = 12345;
  for (int64_t i = 0; i < T * D; i++) {
    s = s * 1664525u + 1013904223u;
    v[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
  return 0;
}

static int run(mfx_moe *moe, const mfx_array *x, const char *out_path) {
  int64_t T = x->shape[0], D = x->shape[1];
  mfx_array y, want;
  if (mfx_array_create(&y, MFX_F32, 2, (int64_t[]){T, D}) != MFX_OK ||
      mfx_array_create(&want, MFX_F32, 2, (int64_t[]){T, D}) != MFX_OK)
    return fail("output");
  /* The reference routes by the layer's own logits, so a token whose two
   * best experts tie within rounding cannot decide the comparison. */
  float *logits = malloc((size_t)(T * mfx_moe_get_spec(moe)->experts) * sizeof(float));
  mfx_moe_trace trace = {0};
  trace.logits = logits;
  int rc = logits != NULL ? 0 : 1;
  if (rc == 0 && mfx_moe_forward(moe, NULL, x->data, T, y.data, &trace) != MFX_OK)
    rc = fail("forward");
  else if (rc == 0 && mfx_moe_reference(moe, x->data, T, logits, want.data, NULL) != MFX_OK)
    rc = fail("reference");
  if (rc == 0) {
    const float *a = y.data, *b = want.data;
    double sum = 0, worst = 0, scale = 0;
    for (int64_t i = 0; i < T * D; i++) {
      sum += a[i];
      worst = larger(worst, absolute((double)a[i] - b[i]));
      scale = larger(scale, absolute((double)b[i]));
    }
    printf("mfx-embed-moe: %lld tokens, output sum %.6f, max |y - reference| %.3g of %.3g\n",
           (long long)T, sum, worst, scale);
    if (worst > 1e-4 * (scale > 1 ? scale : 1)) {
      fprintf(stderr, "mfx-embed-moe: the output differs from the reference\n");
      rc = 1;
    }
  }
  if (rc == 0 && out_path != NULL && mfx_npy_save(out_path, &y) != MFX_OK) rc = fail(out_path);
  mfx_array_free(&y);
  mfx_array_free(&want);
  free(logits);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: mfx-embed-moe LAYER.mfxa WEIGHTS.safetensors [x.npy [y.npy]]\n");
    return 2;
  }
  mfx_moe *moe = NULL;
  if (mfx_moe_load(argv[1], argv[2], NULL, &moe) != MFX_OK) return fail("load");
  const mfx_moe_spec *s = mfx_moe_get_spec(moe);
  printf("mfx-embed-moe: layer D=%d H=%d, %d experts, top-%d, up to %lld tokens\n", s->dim,
         s->hidden, s->experts, s->k,
         (long long)mfx_moe_bucket_at(moe, mfx_moe_bucket_count(moe) - 1));
  mfx_array x;
  int rc = tokens(moe, argc > 3 ? argv[3] : NULL, &x);
  if (rc == 0) {
    rc = run(moe, &x, argc > 4 ? argv[4] : NULL);
    mfx_array_free(&x);
  }
  mfx_moe_destroy(moe);
  return rc;
}
