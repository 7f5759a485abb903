/* The MoE layer as data: its spec (dims, expert kinds, routing), its
 * weights, its token buckets, creation and destruction. Running it is
 * forward.c; where its kernels come from, the provider (moe_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_internal.h"

static const char *const moe_kind_names[MFX_EXPERT_KIND_COUNT] = {"mult", "shift", "null",
                                                                     "shift16"};

const char *mfx_expert_kind_name(mfx_expert_kind kind) {
  return mfx_name_of(moe_kind_names, sizeof(char *), MFX_EXPERT_KIND_COUNT, (int)kind, "?");
}

mfx_status mfx_expert_kind_from_name(const char *name, mfx_expert_kind *out) {
  if (name == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "expert kind: name and out must not be NULL");
  int i = mfx_name_index(moe_kind_names, sizeof(char *), MFX_EXPERT_KIND_COUNT, name);
  if (i >= 0) {
    *out = (mfx_expert_kind)i;
    return MFX_OK;
  }
  return mfx_fail(MFX_ERR_INVALID,
                  "unknown expert kind '%s'; expected mult, shift, shift16 or null", name);
}

mfx_status mfx_expert_kinds_parse(const char *text, mfx_expert_kind *kinds, int max,
                                  int *count) {
  if (text == NULL || kinds == NULL || count == NULL)
    return mfx_fail(MFX_ERR_INVALID, "expert list: text, kinds and count must not be NULL");
  *count = 0;
  const char *p = text;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char name[32];
    if (len == 0 || len >= sizeof name)
      return mfx_fail(MFX_ERR_INVALID, "expert list '%s': empty or overlong name at "
                      "position %d; expected names like mult,shift,null", text, (int)(p - text));
    if (*count >= max)
      return mfx_fail(MFX_ERR_INVALID, "expert list '%s': more than %d experts", text, max);
    memcpy(name, p, len);
    name[len] = '\0';
    mfx_status st = mfx_expert_kind_from_name(name, &kinds[*count]);
    if (st != MFX_OK) return mfx_fail_context(st, "expert list '%s'", text);
    (*count)++;
    if (end == NULL) return MFX_OK;
    p = end + 1;
  }
}

int mfx_moe_target_valid(const char *target) {
  if (target == NULL) return 0;
  if (strcmp(target, "cpu") == 0 || strcmp(target, "emulate") == 0 ||
      strcmp(target, "cuda") == 0)
    return 1;
  const char *n = strncmp(target, "cuda:", 5) == 0 ? target + 5 : "";
  return *n != '\0' && strlen(n) < 9 && strspn(n, "0123456789") == strlen(n);
}

static mfx_status moe_check_target(const char *target) {
  if (target == NULL || mfx_moe_target_valid(target)) return MFX_OK;
  return mfx_fail(MFX_ERR_INVALID, "moe: target '%s'; expected cpu, cuda, cuda:N or emulate",
                  target);
}

static mfx_status moe_check_spec(const mfx_moe_spec *s) {
  if (s->dim <= 0 || s->hidden <= 0)
    return mfx_fail(MFX_ERR_INVALID, "moe: dims D=%d, H=%d must be positive", s->dim, s->hidden);
  if (s->experts < 1 || s->experts > MFX_MOE_MAX_EXPERTS)
    return mfx_fail(MFX_ERR_INVALID, "moe: E=%d experts; expected 1..%d", s->experts,
                    MFX_MOE_MAX_EXPERTS);
  if (s->k < 1 || s->k > s->experts)
    return mfx_fail(MFX_ERR_INVALID, "moe: k=%d; expected 1 <= k <= E=%d", s->k, s->experts);
  mfx_status st = moe_check_target(s->target);
  if (st != MFX_OK) return st;
  for (int e = 0; e < s->experts; e++) {
    if ((unsigned)s->kinds[e] >= MFX_EXPERT_KIND_COUNT)
      return mfx_fail(MFX_ERR_INVALID,
                      "moe: expert %d has kind %d; expected mult, shift, shift16 or null", e,
                      (int)s->kinds[e]);
  }
  return MFX_OK;
}

static void *moe_zalloc(size_t count, size_t size) { return calloc(count ? count : 1, size); }

static mfx_status moe_alloc_expert(mfx_moe *moe, int e) {
  size_t hd = (size_t)moe->spec.hidden * (size_t)moe->spec.dim;
  moe_expert *x = &moe->expert[e];
  mfx_expert_kind kind = moe->spec.kinds[e];
  if (kind == MFX_EXPERT_NULL) return MFX_OK;
  x->w1 = moe_zalloc(hd, sizeof(float));
  x->w2 = moe_zalloc(hd, sizeof(float));
  if (x->w1 == NULL || x->w2 == NULL) return MFX_ERR_NOMEM;
  if (!moe_kind_shifts(kind)) return MFX_OK;
  x->s1 = moe_zalloc(hd, 1);
  x->g1 = moe_zalloc(hd, 1);
  x->s2 = moe_zalloc(hd, 1);
  x->g2 = moe_zalloc(hd, 1);
  return x->s1 && x->g1 && x->s2 && x->g2 ? MFX_OK : MFX_ERR_NOMEM;
}

mfx_status moe_layer_new(const mfx_moe_spec *spec, mfx_moe **out) {
  if (spec == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe create: spec and out must not be NULL");
  *out = NULL;
  mfx_status st = moe_check_spec(spec);
  if (st != MFX_OK) return st;
  mfx_moe *moe = calloc(1, sizeof *moe);
  if (moe == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe create: out of memory");
  moe->spec = *spec;
  snprintf(moe->target, sizeof moe->target, "%s", spec->target ? spec->target : "cpu");
  moe->spec.target = moe->target;
  size_t ed = (size_t)spec->experts * (size_t)spec->dim;
  moe->router_w = moe_zalloc(ed, sizeof(float));
  moe->router_bias = moe_zalloc((size_t)spec->experts, sizeof(float));
  st = moe->router_w && moe->router_bias ? MFX_OK : MFX_ERR_NOMEM;
  for (int e = 0; st == MFX_OK && e < spec->experts; e++) st = moe_alloc_expert(moe, e);
  if (st != MFX_OK) {
    mfx_moe_destroy(moe);
    return mfx_fail(MFX_ERR_NOMEM, "moe create: out of memory for the weights of E=%d, D=%d, "
                    "H=%d", spec->experts, spec->dim, spec->hidden);
  }
  if (strcmp(moe->target, "cpu") != 0) st = moe_gpu_open(moe, moe->target);
  if (st != MFX_OK) {
    mfx_moe_destroy(moe);
    return st;
  }
  *out = moe;
  return MFX_OK;
}

void mfx_moe_destroy(mfx_moe *moe) {
  if (moe == NULL) return;
  for (int e = 0; e < MFX_MOE_MAX_EXPERTS; e++) {
    moe_expert *x = &moe->expert[e];
    free(x->w1);
    free(x->w2);
    free(x->s1);
    free(x->g1);
    free(x->s2);
    free(x->g2);
  }
  free(moe->router_w);
  free(moe->router_bias);
  if (moe->provider != NULL) moe->provider->ops->destroy(moe->provider);
  moe_ws_free(moe);
  moe_gpu_close(moe);
  free(moe);
}

const mfx_moe_spec *mfx_moe_get_spec(const mfx_moe *moe) { return moe ? &moe->spec : NULL; }

const char *mfx_moe_target_description(const mfx_moe *moe) {
  if (moe == NULL) return "";
  return moe->gpu != NULL ? moe_gpu_description(moe) : "cpu";
}

int mfx_moe_on_gpu(const mfx_moe *moe) { return moe != NULL && moe->gpu != NULL; }

mfx_status moe_check_expert(const mfx_moe *moe, int e, const char *where) {
  if (moe == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: the layer is NULL", where);
  if (e < 0 || e >= moe->spec.experts)
    return mfx_fail(MFX_ERR_INVALID, "%s: expert %d; expected 0..%d", where, e,
                    moe->spec.experts - 1);
  return MFX_OK;
}

mfx_status moe_check_tokens(int64_t tokens, const char *where) {
  if (tokens <= 0)
    return mfx_fail(MFX_ERR_INVALID, "%s: %lld tokens; expected at least 1", where,
                    (long long)tokens);
  return MFX_OK;
}

int64_t moe_bucket(const mfx_moe *moe, int64_t n) {
  if (moe->n_buckets == 0) return mfx_moe_bucket(n);
  if (n <= 0) return 0;
  for (int i = 0; i < moe->n_buckets; i++)
    if (moe->buckets[i] >= n) return moe->buckets[i];
  return 0;
}

mfx_status moe_check_batch(const mfx_moe *moe, int64_t n, const char *where) {
  mfx_status st = moe_check_tokens(n, where);
  if (st != MFX_OK || moe->n_buckets == 0 || n <= moe->buckets[moe->n_buckets - 1]) return st;
  return mfx_fail(MFX_ERR_INVALID, "%s: a batch of %lld tokens is larger than the layer's "
                  "largest bucket, %lld (its kernels exist for at most that many tokens; "
                  "split the batch, or build the layer with a larger bucket: mfx compile-layer "
                  "--buckets ...)", where, (long long)n,
                  (long long)moe->buckets[moe->n_buckets - 1]);
}

static mfx_status moe_check_finite(const float *w, size_t n, const char *where) {
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(w[i]))
      return mfx_fail(MFX_ERR_INVALID, "%s: weight %zu is %g; expected finite weights", where, i,
                      (double)w[i]);
  }
  return MFX_OK;
}

mfx_status mfx_moe_set_router(mfx_moe *moe, const float *weight, const float *bias) {
  if (moe == NULL || weight == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe set router: layer and weight must not be NULL");
  size_t ed = (size_t)moe->spec.experts * (size_t)moe->spec.dim;
  mfx_status st = moe_check_finite(weight, ed, "moe set router");
  if (st == MFX_OK && bias != NULL)
    st = moe_check_finite(bias, (size_t)moe->spec.experts, "moe set router (bias)");
  if (st != MFX_OK) return st;
  memcpy(moe->router_w, weight, ed * sizeof(float));
  moe->weights_version++;
  moe->has_bias = bias != NULL;
  if (bias != NULL) memcpy(moe->router_bias, bias, (size_t)moe->spec.experts * sizeof(float));
  else memset(moe->router_bias, 0, (size_t)moe->spec.experts * sizeof(float));
  return MFX_OK;
}

mfx_status mfx_moe_set_expert(mfx_moe *moe, int e, const float *w1, const float *w2) {
  mfx_status st = moe_check_expert(moe, e, "moe set expert");
  if (st != MFX_OK) return st;
  moe_expert *x = &moe->expert[e];
  mfx_expert_kind kind = moe->spec.kinds[e];
  if (kind == MFX_EXPERT_NULL) {
    if (w1 == NULL && w2 == NULL) return MFX_OK;
    return mfx_fail(MFX_ERR_INVALID, "moe set expert %d: a null expert has no weights; pass "
                    "NULL, NULL", e);
  }
  if (w1 == NULL || w2 == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe set expert %d (%s): w1 [H,D] and w2 [D,H] must not "
                    "be NULL", e, mfx_expert_kind_name(kind));
  size_t hd = (size_t)moe->spec.hidden * (size_t)moe->spec.dim;
  st = moe_check_finite(w1, hd, "moe set expert (w1)");
  if (st == MFX_OK) st = moe_check_finite(w2, hd, "moe set expert (w2)");
  if (st != MFX_OK) return mfx_fail_context(st, "expert %d", e);
  memcpy(x->w1, w1, hd * sizeof(float));
  memcpy(x->w2, w2, hd * sizeof(float));
  moe->weights_version++;
  if (!moe_kind_shifts(kind)) return MFX_OK;
  st = mfx_deepshift_convert(w1, (int64_t)hd, x->s1, x->g1);
  if (st == MFX_OK) st = mfx_deepshift_convert(w2, (int64_t)hd, x->s2, x->g2);
  return st;
}

mfx_status mfx_moe_shift_weights(const mfx_moe *moe, int e, int layer, const int8_t **shift,
                                 const int8_t **sign) {
  mfx_status st = moe_check_expert(moe, e, "moe shift weights");
  if (st != MFX_OK) return st;
  if (!moe_kind_shifts(moe->spec.kinds[e]))
    return mfx_fail(MFX_ERR_INVALID, "moe shift weights: expert %d is %s, not shift or shift16", e,
                    mfx_expert_kind_name(moe->spec.kinds[e]));
  if ((layer != 0 && layer != 1) || shift == NULL || sign == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe shift weights: layer %d; expected 0 or 1 (and "
                    "non-NULL outputs)", layer);
  *shift = layer == 0 ? moe->expert[e].s1 : moe->expert[e].s2;
  *sign = layer == 0 ? moe->expert[e].g1 : moe->expert[e].g2;
  return MFX_OK;
}
