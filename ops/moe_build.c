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


/* ---- a layer ahead of time: every kernel of every bucket, and its manifest ---------- */

/* One kernel of the artifact. */
typedef struct {
  moe_want want;
  const mfx_op *op;
  mfx_config cfg;
  char target[32];
  mfx_artifact_kernel art;
} build_slot;

/* The role of a kernel of bucket b in the layer (moe/experts.c's chains). */
typedef struct {
  const char *role; /* "router", "mult.fc1", ... */
  int64_t bucket;
  int kernel;       /* index into the slots */
} build_role;

typedef struct {
  const mfx_moe_spec *spec;
  const char *target;
  int n_slots;
  build_slot *slots;
  int n_roles;
  build_role *roles;
} build_layer;

static const char *build_role_of(const moe_want *w, int64_t E, int64_t D) {
  if (strcmp(w->op, "linear_gelu") == 0) return "mult.fc1";
  if (strcmp(w->op, "shift_linear_q16_gelu") == 0) return "shift.fc1";
  if (strcmp(w->op, "shift_linear_dequantize") == 0) return "shift.fc2";
  if (strcmp(w->op, "shift_linear16_gelu") == 0) return "shift16.fc1";
  if (strcmp(w->op, "shift_linear16_dequantize") == 0) return "shift16.fc2";
  return w->dims[1] == E && w->dims[2] == D ? "router" : "mult.fc2";
}

static int build_find(const build_layer *b, const moe_want *w) {
  for (int i = 0; i < b->n_slots; i++)
    if (moe_want_equal(&b->slots[i].want, w)) return i;
  return -1;
}

static mfx_status build_choose(const build_layer *b, build_slot *s) {
  mfx_config_default_for(s->op, b->target, &s->cfg);
  if (b->spec->choose_config == NULL) return MFX_OK;
  mfx_status st = b->spec->choose_config(b->spec->choose_user, b->target, s->op, s->want.dims,
                                         &s->cfg);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "moe layer: choosing the config of %s",
                                                  s->op->name);
}

/* Adds the kernel w of bucket b in `role` (a kernel serving two roles is
 * built once). */
static mfx_status build_add(build_layer *b, const moe_want *w, const char *role, int64_t bucket) {
  int i = build_find(b, w);
  if (i < 0) {
    build_slot *s = &b->slots[i = b->n_slots++];
    memset(s, 0, sizeof *s);
    s->want = *w;
    s->op = mfx_op_find(w->op);
    if (s->op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "moe layer: op '%s' is not registered",
                                       w->op);
    snprintf(s->target, sizeof s->target, "%s", b->target);
    MFX_TRY(build_choose(b, s));
  }
  b->roles[b->n_roles++] = (build_role){role, bucket, i};
  return MFX_OK;
}

/* On a GPU the pass stays on the device (moe/device.c): at bucket
 * buckets[i] of tokens, gather_rows for each expert batch bucket up to it
 * and combine_rows over YALL's most rows (every non-null expert at the
 * bucket). */
static mfx_status build_plan_device(build_layer *b, const int64_t *buckets, int i) {
  const mfx_moe_spec *spec = b->spec;
  int64_t experts = 0;
  for (int e = 0; e < spec->experts; e++) experts += spec->kinds[e] != MFX_EXPERT_NULL;
  if (experts == 0) return MFX_OK; /* nothing to gather or combine */
  moe_want w[1];
  for (int r = 0; r <= i; r++) {
    moe_want_add(w, 0, "gather_rows", buckets[i], buckets[r], spec->dim);
    MFX_TRY(build_add(b, w, "gather", buckets[i]));
  }
  moe_want_add_dims(w, 0, "combine_rows", 4,
                    (int64_t[MOE_MAX_OP_DIMS]){experts * buckets[i], buckets[i], spec->k,
                                               spec->dim});
  return build_add(b, w, "combine", buckets[i]);
}

static mfx_status build_plan(build_layer *b, const int64_t *buckets, int n_buckets) {
  const mfx_moe_spec *spec = b->spec;
  for (int i = 0; i < n_buckets; i++) {
    moe_want want[MOE_MAX_WANTS + 1];
    int n = moe_want_add(want, 0, "linear", buckets[i], spec->experts, spec->dim);
    mfx_moe probe; /* moe_expert_wants reads the spec only */
    memset(&probe, 0, sizeof probe);
    probe.spec = *spec;
    int64_t rows[MFX_MOE_MAX_EXPERTS];
    for (int e = 0; e < spec->experts; e++) rows[e] = buckets[i];
    int m = moe_expert_wants(&probe, rows, want + 1);
    MFX_TRY(build_add(b, &want[0], "router", buckets[i]));
    for (int j = 1; j <= m; j++) {
      (void)n;
      MFX_TRY(build_add(b, &want[j], build_role_of(&want[j], spec->experts, spec->dim),
                        buckets[i]));
    }
    if (strncmp(b->target, "cuda", 4) == 0) MFX_TRY(build_plan_device(b, buckets, i));
  }
  return MFX_OK;
}

static mfx_status build_slot_compile(void *ctx, void *slot) {
  (void)ctx;
  build_slot *s = slot;
  mfx_artifact_kernel *k = &s->art;
  size_t used = (size_t)snprintf(k->name, sizeof k->name, "%s", s->op->name);
  for (int d = 0; d < s->op->n_dims && used < sizeof k->name; d++)
    used += (size_t)snprintf(k->name + used, sizeof k->name - used, "_%c%lld",
                             (char)(s->op->dims[d][0] | 0x20), (long long)s->want.dims[d]);
  snprintf(k->op, sizeof k->op, "%s", s->op->name);
  snprintf(k->target, sizeof k->target, "%s", s->target);
  k->n_dims = s->op->n_dims;
  for (int d = 0; d < s->op->n_dims; d++) {
    snprintf(k->dim_names[d], sizeof k->dim_names[d], "%s", s->op->dims[d]);
    k->dims[d] = s->want.dims[d];
  }
  mfx_config_to_json(&s->cfg, k->config, sizeof k->config);
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe layer: out of memory for an arena");
  mfx_schedule *sched = NULL;
  mfx_status st = mfx_op_build_for(s->op, s->target, arena, s->want.dims, &s->cfg, &sched);
  if (st == MFX_OK) st = mfx_artifact_build(sched, k);
  mfx_arena_destroy(arena);
  if (st != MFX_OK) {
    mfx_artifact_kernel_release(k);
    return mfx_fail_context(st, "moe layer: compiling %s for %s", k->name, s->target);
  }
  return MFX_OK;
}

/* The manifest (docs/moe_layer.md): the layer, its buckets, each kernel's
 * role, bucket, name, op, dims and config. */
static char *build_manifest(const build_layer *b, const int64_t *buckets, int n_buckets) {
  const mfx_moe_spec *spec = b->spec;
  size_t cap = 4096 + (size_t)b->n_roles * (MFX_ARTIFACT_CONFIG_BYTES + 512);
  char *text = malloc(cap);
  if (text == NULL) return NULL;
  size_t n = (size_t)snprintf(text, cap, "{\n  \"format\": \"%s\",\n  \"dim\": %d,\n  \"hidden\": "
                              "%d,\n  \"k\": %d,\n  \"experts\": \"", MFX_MOE_LAYER_FORMAT,
                              spec->dim, spec->hidden, spec->k);
  for (int e = 0; e < spec->experts; e++)
    n += (size_t)snprintf(text + n, cap - n, "%s%s", e ? "," : "",
                          mfx_expert_kind_name(spec->kinds[e]));
  n += (size_t)snprintf(text + n, cap - n, "\",\n  \"target\": \"%s\",\n  \"buckets\": [",
                        b->target);
  for (int i = 0; i < n_buckets; i++)
    n += (size_t)snprintf(text + n, cap - n, "%s%lld", i ? ", " : "", (long long)buckets[i]);
  n += (size_t)snprintf(text + n, cap - n, "],\n  \"kernels\": [");
  for (int i = 0; i < b->n_roles; i++) {
    const build_role *r = &b->roles[i];
    const build_slot *s = &b->slots[r->kernel];
    n += (size_t)snprintf(text + n, cap - n, "%s\n    {\"role\": \"%s\", \"bucket\": %lld, "
                          "\"name\": \"%s\", \"op\": \"%s\", \"dims\": [", i ? "," : "", r->role,
                          (long long)r->bucket, s->art.name, s->op->name);
    for (int d = 0; d < s->want.n_dims; d++)
      n += (size_t)snprintf(text + n, cap - n, "%s%lld", d ? ", " : "",
                            (long long)s->want.dims[d]);
    n += (size_t)snprintf(text + n, cap - n, "], \"config\": %s}", s->art.config);
  }
  snprintf(text + n, cap - n, "\n  ]\n}\n");
  return text;
}

static mfx_status build_check(const mfx_moe_spec *spec, const int64_t *buckets, int n_buckets,
                              const char *target) {
  if (spec == NULL || buckets == NULL || target == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe layer: spec, buckets and target must not be NULL");
  if (n_buckets < 1 || n_buckets > MFX_MOE_MAX_BUCKETS)
    return mfx_fail(MFX_ERR_INVALID, "moe layer: %d buckets; expected 1..%d", n_buckets,
                    MFX_MOE_MAX_BUCKETS);
  for (int i = 0; i < n_buckets; i++)
    if (buckets[i] < 1 || buckets[i] > MFX_MOE_MAX_BUCKET_TOKENS ||
        (i > 0 && buckets[i] <= buckets[i - 1]))
      return mfx_fail(MFX_ERR_INVALID, "moe layer: bucket %lld; expected ascending token "
                      "counts in 1..%lld", (long long)buckets[i],
                      (long long)MFX_MOE_MAX_BUCKET_TOKENS);
  if (strcmp(target, "cpu") != 0 && strncmp(target, "cuda:sm_", 8) != 0)
    return mfx_fail(MFX_ERR_INVALID, "moe layer: target '%s'; expected cpu or cuda:sm_XX",
                    target);
  mfx_moe *probe = NULL;
  mfx_moe_spec cpu = *spec;
  cpu.target = "cpu";
  MFX_TRY(moe_layer_new(&cpu, &probe)); /* checks the spec */
  mfx_moe_destroy(probe);
  return MFX_OK;
}

mfx_status mfx_moe_compile_layer(const mfx_moe_spec *spec, const int64_t *buckets,
                                 int n_buckets, const char *target, void **image,
                                 size_t *size) {
  if (image == NULL || size == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe layer: image and size must not be NULL");
  *image = NULL;
  *size = 0;
  MFX_TRY(build_check(spec, buckets, n_buckets, target));
  int most = n_buckets * (MOE_MAX_WANTS + 2 + n_buckets);
  build_layer b = {spec, target, 0, calloc((size_t)most, sizeof(build_slot)), 0,
                   calloc((size_t)most, sizeof(build_role))};
  mfx_status st = b.slots && b.roles ? build_plan(&b, buckets, n_buckets)
                                     : mfx_fail(MFX_ERR_NOMEM, "moe layer: out of memory");
  int kept = 0;
  if (st == MFX_OK)
    st = moe_build_side_by_side(b.slots, sizeof *b.slots, b.n_slots, build_slot_compile, NULL,
                                &kept);
  char *manifest = st == MFX_OK ? build_manifest(&b, buckets, n_buckets) : NULL;
  if (st == MFX_OK && manifest == NULL) st = mfx_fail(MFX_ERR_NOMEM, "moe layer: out of memory");
  mfx_artifact_kernel *arts = st == MFX_OK ? calloc((size_t)kept, sizeof *arts) : NULL;
  if (st == MFX_OK && arts == NULL) st = mfx_fail(MFX_ERR_NOMEM, "moe layer: out of memory");
  for (int i = 0; st == MFX_OK && i < kept; i++) arts[i] = b.slots[i].art;
  if (st == MFX_OK) st = mfx_artifact_encode_manifest(arts, kept, manifest, image, size);
  for (int i = 0; i < kept; i++) mfx_artifact_kernel_release(&b.slots[i].art);
  free(arts);
  free(manifest);
  free(b.slots);
  free(b.roles);
  return st;
}
