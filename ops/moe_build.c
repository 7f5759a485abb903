/* Building an MoE layer on the compiler side: mfx_moe_create gives a layer
 * (moe/) whose kernels are compiled on first use, by the host provider
 * (moe_jit.c) or, for a GPU target, the GPU provider (moe_gpu.c); random
 * weights; the kernels compiled so far, which mfx demo and mfx
 * compile-layer write into artifacts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "moe_build.h"

mfx_status mfx_moe_create(const mfx_moe_spec *spec, mfx_moe **out) {
  mfx_moe *moe = NULL;
  MFX_TRY(moe_layer_new(spec, &moe));
  mfx_status st = moe->gpu != NULL ? moe_gpu_provider_create(moe, &moe->provider)
                                   : moe_jit_provider_create(moe, &moe->provider);
  if (st != MFX_OK) {
    mfx_moe_destroy(moe);
    return st;
  }
  *out = moe;
  return MFX_OK;
}

const mfx_op_kernel *mfx_moe_kernel_at(const mfx_moe *moe, int i) {
  if (moe == NULL || !moe_jit_provider_is(moe->provider)) return NULL;
  return moe_jit_provider_kernel(moe->provider, i);
}

const mfx_artifact_kernel *mfx_moe_gpu_kernel_at(const mfx_moe *moe, int i) {
  if (moe == NULL || !moe_gpu_provider_is(moe->provider)) return NULL;
  return moe_gpu_provider_kernel(moe->provider, i);
}

/* ---- random weights ------------------------------------------------------------- */

static void moe_fill_uniform(float *w, size_t n, float bound, uint64_t *rng) {
  for (size_t i = 0; i < n; i++) {
    float u = (float)(mfx_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
    w[i] = bound * (2.0f * u - 1.0f);
  }
}

mfx_status mfx_moe_init_random(mfx_moe *moe, uint64_t seed) {
  if (moe == NULL) return mfx_fail(MFX_ERR_INVALID, "moe init random: the layer is NULL");
  const mfx_moe_spec *s = &moe->spec;
  size_t hd = (size_t)s->hidden * (size_t)s->dim;
  uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;
  float *w1 = malloc(hd * sizeof(float)), *w2 = malloc(hd * sizeof(float));
  mfx_status st = w1 && w2 ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "moe init random: out of memory");
  if (st == MFX_OK) {
    moe_fill_uniform(moe->router_w, (size_t)s->experts * (size_t)s->dim,
                     1.0f / sqrtf((float)s->dim), &rng);
    memset(moe->router_bias, 0, (size_t)s->experts * sizeof(float));
    moe->has_bias = 0;
    moe->weights_version++;
  }
  for (int e = 0; st == MFX_OK && e < s->experts; e++) {
    if (s->kinds[e] == MFX_EXPERT_NULL) continue;
    moe_fill_uniform(w1, hd, 1.0f / sqrtf((float)s->dim), &rng);
    moe_fill_uniform(w2, hd, 1.0f / sqrtf((float)s->hidden), &rng);
    st = mfx_moe_set_expert(moe, e, w1, w2);
  }
  free(w1);
  free(w2);
  return st;
}

