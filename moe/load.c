/* A layer loaded from an artifact of mfx compile-layer: its manifest (the
 * layer's dims, experts, k, buckets and each kernel's role) read with the
 * runtime's JSON reader and checked against the kernels the artifact
 * holds, and the provider that runs those kernels (mfx_artifact_run, on the
 * artifact's device and thread pool). Runtime only: nothing is compiled,
 * so a batch must fit the largest bucket. Also the per-expert latency
 * measurement of any layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "moe_internal.h"

/* ---- the provider ---------------------------------------------------------------- */

typedef struct {
  char op[MFX_ARTIFACT_NAME_BYTES];
  int n_dims;
  int64_t dims[MOE_MAX_OP_DIMS];
  int index; /* in the artifact */
} load_entry;

/* Two ways to run the kernels: host mode through the loaded artifact
 * (mfx_artifact_run: host arrays in and out of every kernel; CPU layers,
 * and cuda layers without the device pass's kernels), device mode on the
 * layer's GPU (moe/device.c: every kernel on device addresses, each
 * artifact kernel a module of its own here). */
typedef struct {
  moe_provider base;
  char label[256]; /* the artifact's path */
  void *image; /* the file; kernels point into it */
  mfx_artifact_kernel *kernels;
  int n_kernels;
  mfx_artifact *art;      /* host mode */
  moe_gpu_kernel *gpu;    /* device mode: one per kernel */
  int n;
  load_entry entries[MFX_ARTIFACT_MAX_KERNELS];
} load_provider;

static const load_entry *load_find(const load_provider *l, const moe_want *w) {
  for (int i = 0; i < l->n; i++) {
    const load_entry *e = &l->entries[i];
    if (strcmp(e->op, w->op) == 0 && e->n_dims == w->n_dims &&
        memcmp(e->dims, w->dims, (size_t)w->n_dims * sizeof(int64_t)) == 0)
      return e;
  }
  return NULL;
}

static mfx_status load_missing(const load_provider *l, const moe_want *w) {
  char text[160];
  moe_want_text(w, text, sizeof text);
  return mfx_fail(MFX_ERR_NOT_FOUND, "moe layer %s: no kernel %s in the artifact (it was built "
                  "for the layer's buckets and roles only; the Q16.16 entry needs a layer of "
                  "mfx_moe_create)", l->label, text);
}

static mfx_status load_ensure(moe_provider *p, const moe_want *want, int n) {
  const load_provider *l = (const load_provider *)p;
  for (int i = 0; i < n; i++)
    if (load_find(l, &want[i]) == NULL) return load_missing(l, &want[i]);
  return MFX_OK;
}

static mfx_status load_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                           mfx_array *in, mfx_array *out) {
  (void)env; /* the artifact's own pool */
  load_provider *l = (load_provider *)p;
  const load_entry *e = load_find(l, w);
  if (e == NULL) return load_missing(l, w);
  const mfx_artifact_kernel *k = mfx_artifact_kernel_at(l->art, e->index);
  return mfx_artifact_run(l->art, e->index, mfx_artifact_role_count(k, MFX_ARG_INPUT), in,
                          mfx_artifact_role_count(k, MFX_ARG_OUTPUT), out);
}

static mfx_status load_run_device(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                                  const uint64_t *addresses) {
  (void)env;
  load_provider *l = (load_provider *)p;
  const load_entry *e = load_find(l, w);
  if (e == NULL) return load_missing(l, w);
  return moe_kernel_run(&l->gpu[e->index], addresses, p->moe->weights_version);
}

static int load_count(const moe_provider *p) { return ((const load_provider *)p)->n; }

static void load_destroy(moe_provider *p) {
  load_provider *l = (load_provider *)p;
  for (int i = 0; l->gpu != NULL && i < l->n_kernels; i++) moe_kernel_unload(&l->gpu[i]);
  free(l->gpu);
  if (l->art != NULL) mfx_artifact_free(l->art);
  free(l->kernels);
  free(l->image);
  free(l);
}

static const moe_provider_ops load_provider_ops = {"artifact", load_ensure, load_run, NULL,
                                                   load_count, load_destroy};
static const moe_provider_ops load_device_ops = {"artifact", load_ensure, NULL, load_run_device,
                                                 load_count, load_destroy};

/* ---- the manifest ------------------------------------------------------------------ */

typedef struct {
  const char *label;
  mfx_moe_spec spec;
  int n_buckets;
  int64_t buckets[MOE_MAX_BUCKETS];
} load_manifest;

static mfx_status load_bad(const char *label, const char *what) {
  return mfx_fail(MFX_ERR_FORMAT, "moe layer %s: the manifest's %s (written by mfx "
                  "compile-layer; see docs/moe_layer.md)", label, what);
}

static int load_whole(const json_value *v, int64_t lo, int64_t hi, int64_t *out) {
  if (v == NULL || v->type != JSON_NUMBER || !(v->number >= (double)lo) ||
      !(v->number <= (double)hi) || v->number != (double)(int64_t)v->number)
    return 0;
  *out = (int64_t)v->number;
  return 1;
}

static mfx_status load_read_layer(load_manifest *m, const json_value *doc) {
  const json_value *format = json_get(doc, "format"), *experts = json_get(doc, "experts");
  if (format == NULL || format->type != JSON_STRING ||
      strcmp(format->string, MFX_MOE_LAYER_FORMAT) != 0)
    return load_bad(m->label, "\"format\" is not \"" MFX_MOE_LAYER_FORMAT "\"");
  int64_t d = 0, h = 0, k = 0;
  if (!load_whole(json_get(doc, "dim"), 1, 1 << 20, &d) ||
      !load_whole(json_get(doc, "hidden"), 1, 1 << 20, &h) ||
      !load_whole(json_get(doc, "k"), 1, MFX_MOE_MAX_EXPERTS, &k))
    return load_bad(m->label, "\"dim\", \"hidden\" or \"k\" is missing or out of range");
  if (experts == NULL || experts->type != JSON_STRING)
    return load_bad(m->label, "\"experts\" is missing");
  memset(&m->spec, 0, sizeof m->spec);
  m->spec.dim = (int)d;
  m->spec.hidden = (int)h;
  m->spec.k = (int)k;
  mfx_status st = mfx_expert_kinds_parse(experts->string, m->spec.kinds, MFX_MOE_MAX_EXPERTS,
                                         &m->spec.experts);
  if (st != MFX_OK) return mfx_fail_context(st, "moe layer %s: manifest", m->label);
  const json_value *b = json_get(doc, "buckets");
  if (b == NULL || b->type != JSON_ARRAY || b->n < 1 || b->n > MOE_MAX_BUCKETS)
    return load_bad(m->label, "\"buckets\" is not a list of 1..64 token counts");
  m->n_buckets = b->n;
  for (int i = 0; i < b->n; i++)
    if (!load_whole(&b->items[i], 1, MFX_MOE_MAX_BUCKET_TOKENS, &m->buckets[i]) ||
        (i > 0 && m->buckets[i] <= m->buckets[i - 1]))
      return load_bad(m->label, "\"buckets\" are not ascending positive token counts");
  return MFX_OK;
}

static int64_t load_nonnull(const mfx_moe_spec *s) {
  int64_t n = 0;
  for (int e = 0; e < s->experts; e++) n += s->kinds[e] != MFX_EXPERT_NULL;
  return n;
}

/* The kernel roles a manifest may name (load_read_kernel's list). */
#define LOAD_ROLES 9

/* The op and dims a role has at bucket b in this layer; for "gather" the
 * expert batch's bucket is the manifest's (dims[1]), checked by the caller. */
static int load_role_want(const mfx_moe_spec *s, const char *role, int64_t b,
                          const int64_t *dims, moe_want *w) {
  static const struct { const char *role, *op; int n, k; } roles[] = {
      {"router", "linear", 'E', 'D'},
      {"mult.fc1", "linear_gelu", 'H', 'D'},
      {"mult.fc2", "linear", 'D', 'H'},
      {"shift.fc1", "shift_linear_q16_gelu", 'H', 'D'},
      {"shift.fc2", "shift_linear_dequantize", 'D', 'H'},
      {"shift16.fc1", "shift_linear16_gelu", 'H', 'D'},
      {"shift16.fc2", "shift_linear16_dequantize", 'D', 'H'}};
  if (strcmp(role, "gather") == 0) {
    moe_want_add(w, 0, "gather_rows", b, dims[1], s->dim);
    return 1;
  }
  if (strcmp(role, "combine") == 0) {
    moe_want_add_dims(w, 0, "combine_rows", 4,
                      (int64_t[MOE_MAX_OP_DIMS]){load_nonnull(s) * b, b, s->k, s->dim});
    return 1;
  }
  for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
    if (strcmp(roles[i].role, role) != 0) continue;
    int64_t n = roles[i].n == 'E' ? s->experts : roles[i].n == 'H' ? s->hidden : s->dim;
    int64_t k = roles[i].k == 'H' ? s->hidden : s->dim;
    moe_want_add(w, 0, roles[i].op, b, n, k);
    return 1;
  }
  return 0;
}

static mfx_status load_dims_text(const json_value *dims, int64_t *out, int *n) {
  if (dims == NULL || dims->type != JSON_ARRAY || dims->n < 1 || dims->n > MOE_MAX_OP_DIMS)
    return MFX_ERR_FORMAT;
  *n = dims->n;
  for (int i = 0; i < dims->n; i++)
    if (!load_whole(&dims->items[i], 1, (int64_t)1 << 40, &out[i])) return MFX_ERR_FORMAT;
  return MFX_OK;
}

/* One kernel entry: its artifact kernel exists, and role, bucket, op and
 * dims agree with the layer. */
static mfx_status load_read_kernel(const load_manifest *m, load_provider *l,
                                   const json_value *v, int bucket_seen[][LOAD_ROLES]) {
  const json_value *role = json_get(v, "role"), *name = json_get(v, "name");
  int64_t bucket = 0, dims[MOE_MAX_OP_DIMS] = {0};
  int n_dims = 0;
  if (role == NULL || role->type != JSON_STRING || name == NULL || name->type != JSON_STRING ||
      !load_whole(json_get(v, "bucket"), 1, MFX_MOE_MAX_BUCKET_TOKENS, &bucket) ||
      load_dims_text(json_get(v, "dims"), dims, &n_dims) != MFX_OK)
    return load_bad(m->label, "kernel entries need \"role\", \"bucket\", \"name\" and \"dims\"");
  moe_want want[1];
  if (!load_role_want(&m->spec, role->string, bucket, dims, want))
    return mfx_fail(MFX_ERR_FORMAT, "moe layer %s: manifest kernel %s has an unknown role "
                    "\"%s\"", m->label, name->string, role->string);
  int b = 0;
  while (b < m->n_buckets && m->buckets[b] != bucket) b++;
  if (b == m->n_buckets)
    return mfx_fail(MFX_ERR_FORMAT, "moe layer %s: manifest kernel %s is for bucket %lld, "
                    "which \"buckets\" does not list", m->label, name->string, (long long)bucket);
  int index = 0;
  while (index < l->n_kernels && strcmp(l->kernels[index].name, name->string) != 0) index++;
  if (index == l->n_kernels)
    return mfx_fail(MFX_ERR_NOT_FOUND, "moe layer %s: the manifest names kernel %s (%s, bucket "
                    "%lld), which the artifact does not hold", m->label, name->string,
                    role->string, (long long)bucket);
  const mfx_artifact_kernel *k = &l->kernels[index];
  char expect[160];
  moe_want_text(want, expect, sizeof expect);
  int same = strcmp(k->op, want->op) == 0 && k->n_dims == want->n_dims && n_dims == k->n_dims;
  for (int d = 0; same && d < k->n_dims; d++)
    same = k->dims[d] == want->dims[d] && dims[d] == k->dims[d];
  if (!same)
    return mfx_fail(MFX_ERR_INVALID, "moe layer %s: kernel %s (%s, bucket %lld) is %s at "
                    "dims %lld,%lld,%lld; the layer (D=%d, H=%d, E=%d) needs %s (an artifact "
                    "built for other dims?)", m->label, name->string, role->string,
                    (long long)bucket, k->op, (long long)k->dims[0], (long long)k->dims[1],
                    (long long)k->dims[2], m->spec.dim, m->spec.hidden, m->spec.experts, expect);
  static const char *const role_names[] = {"router",    "mult.fc1", "mult.fc2",   "shift.fc1",
                                           "shift.fc2", "gather",   "combine",    "shift16.fc1",
                                           "shift16.fc2"};
  for (int r = 0; r < LOAD_ROLES; r++)
    if (strcmp(role_names[r], role->string) == 0) bucket_seen[b][r] = 1;
  if (load_find(l, want) == NULL) {
    load_entry *e = &l->entries[l->n++];
    snprintf(e->op, sizeof e->op, "%s", want->op);
    e->n_dims = want->n_dims;
    memcpy(e->dims, want->dims, sizeof e->dims);
    e->index = index;
  }
  return MFX_OK;
}

/* Every bucket has the router and the two kernels of each kind of expert
 * the layer has (indices of load_read_kernel's role names; gather and
 * combine, 5 and 6, are checked elsewhere). */
static mfx_status load_check_complete(const load_manifest *m, int seen[][LOAD_ROLES]) {
  static const char *const role_names[LOAD_ROLES] = {
      "router", "mult.fc1", "mult.fc2", "shift.fc1", "shift.fc2", "", "", "shift16.fc1",
      "shift16.fc2"};
  int need[LOAD_ROLES] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
  for (int e = 0; e < m->spec.experts; e++) {
    if (m->spec.kinds[e] == MFX_EXPERT_MULT) need[1] = need[2] = 1;
    if (m->spec.kinds[e] == MFX_EXPERT_SHIFT) need[3] = need[4] = 1;
    if (m->spec.kinds[e] == MFX_EXPERT_SHIFT16) need[7] = need[8] = 1;
  }
  for (int b = 0; b < m->n_buckets; b++)
    for (int r = 0; r < LOAD_ROLES; r++)
      if (need[r] && !seen[b][r])
        return mfx_fail(MFX_ERR_NOT_FOUND, "moe layer %s: the manifest has no %s kernel for "
                        "bucket %lld", m->label, role_names[r], (long long)m->buckets[b]);
  return MFX_OK;
}

static mfx_status load_read_manifest(load_manifest *m, load_provider *l, const char *text) {
  if (text == NULL)
    return mfx_fail(MFX_ERR_FORMAT, "moe layer %s: the artifact has no layer manifest (make "
                    "layer artifacts with mfx compile-layer)", m->label);
  json_value doc;
  MFX_TRY(json_parse("moe layer", "a broken layer manifest", m->label, text, &doc));
  mfx_status st = load_read_layer(m, &doc);
  const json_value *kernels = json_get(&doc, "kernels");
  if (st == MFX_OK && (kernels == NULL || kernels->type != JSON_ARRAY ||
                       kernels->n > MFX_ARTIFACT_MAX_KERNELS * 5))
    st = load_bad(m->label, "\"kernels\" is not a list");
  int (*seen)[LOAD_ROLES] = st == MFX_OK ? calloc(MOE_MAX_BUCKETS, sizeof *seen) : NULL;
  if (st == MFX_OK && seen == NULL) st = mfx_fail(MFX_ERR_NOMEM, "moe layer: out of memory");
  for (int i = 0; st == MFX_OK && i < kernels->n; i++)
    st = load_read_kernel(m, l, &kernels->items[i], seen);
  if (st == MFX_OK) st = load_check_complete(m, seen);
  free(seen);
  json_free(&doc);
  return st;
}

/* ---- loading ------------------------------------------------------------------------ */

/* 1 when the artifact holds what a pass on the device needs besides the
 * experts' kernels (mfx compile-layer --target cuda:sm_XX writes them):
 * at every bucket, gather_rows for each expert batch up to it and
 * combine_rows; and every kernel is a GPU kernel. */
static int load_device_ready(const load_manifest *m, const load_provider *l) {
  for (int i = 0; i < l->n_kernels; i++)
    if (strncmp(l->kernels[i].target, "cuda", 4) != 0) return 0;
  if (load_nonnull(&m->spec) == 0) return 0;
  for (int b = 0; b < m->n_buckets; b++) {
    moe_want w[1];
    load_role_want(&m->spec, "combine", m->buckets[b], NULL, w);
    if (load_find(l, w) == NULL) return 0;
    for (int r = 0; r <= b; r++) {
      load_role_want(&m->spec, "gather", m->buckets[b], (int64_t[]){0, m->buckets[r]}, w);
      if (load_find(l, w) == NULL) return 0;
    }
  }
  return 1;
}

/* Device mode: the layer on the GPU `device`, every kernel's module loaded
 * there. */
static mfx_status load_device_layer(load_manifest *m, load_provider *l, const char *device,
                                    mfx_moe **out) {
  m->spec.target = device;
  mfx_status st = moe_layer_new(&m->spec, out);
  if (st != MFX_OK)
    return mfx_fail_context(st, "artifact %s: opening device %s", m->label, device);
  l->gpu = calloc((size_t)l->n_kernels, sizeof *l->gpu);
  if (l->gpu == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe layer %s: out of memory", m->label);
  for (int i = 0; i < l->n_kernels; i++) {
    st = moe_kernel_load(moe_gpu_device(*out), &l->kernels[i], &l->gpu[i]);
    if (st != MFX_OK) return mfx_fail_context(st, "moe layer %s", m->label);
  }
  l->base.ops = &load_device_ops;
  return MFX_OK;
}

/* Reads and decodes the file, and its manifest into m and l's entries. */
static mfx_status load_read(const char *artifact, load_manifest *m, load_provider *l) {
  size_t size = 0;
  MFX_TRY(mfx_artifact_read_file(artifact, &l->image, &size));
  MFX_TRY(mfx_artifact_decode(l->image, size, artifact, &l->kernels, &l->n_kernels));
  const char *text = NULL;
  size_t bytes = 0;
  MFX_TRY(mfx_artifact_find_manifest(l->image, size, artifact, &text, &bytes));
  char *copy = text != NULL ? malloc(bytes + 1) : NULL;
  if (text != NULL && copy == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe load: out of memory");
  if (copy != NULL) {
    memcpy(copy, text, bytes);
    copy[bytes] = '\0';
  }
  mfx_status st = load_read_manifest(m, l, copy);
  free(copy);
  return st;
}

mfx_status mfx_moe_load(const char *artifact, const char *weights,
                        const mfx_moe_load_options *options, mfx_moe **out) {
  if (artifact == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe load: artifact and out must not be NULL");
  *out = NULL;
  load_provider *l = calloc(1, sizeof *l);
  if (l == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe load: out of memory");
  l->base.ops = &load_provider_ops;
  snprintf(l->label, sizeof l->label, "%s", artifact);
  load_manifest m = {artifact, {0}, 0, {0}};
  const char *device = options != NULL ? options->device : NULL;
  mfx_status st = load_read(artifact, &m, l);
  mfx_moe *moe = NULL;
  if (st == MFX_OK && (device == NULL || strcmp(device, "cpu") != 0) &&
      load_device_ready(&m, l)) {
    st = load_device_layer(&m, l, device != NULL ? device : "cuda", &moe);
  } else if (st == MFX_OK) {
    mfx_artifact_options ao = {device, options ? options->threads : 0};
    st = mfx_artifact_load(artifact, &ao, &l->art);
    if (st == MFX_OK) st = moe_layer_new(&m.spec, &moe);
  }
  if (moe != NULL) {
    l->base.moe = moe;
    moe->provider = &l->base;
    moe->n_buckets = m.n_buckets;
    memcpy(moe->buckets, m.buckets, sizeof m.buckets);
  }
  if (st == MFX_OK && weights != NULL) st = mfx_moe_load_weights(moe, weights);
  if (st != MFX_OK) {
    if (moe != NULL) mfx_moe_destroy(moe);
    else load_destroy(&l->base);
    return st;
  }
  *out = moe;
  return MFX_OK;
}

int mfx_moe_bucket_count(const mfx_moe *moe) { return moe != NULL ? moe->n_buckets : 0; }

int64_t mfx_moe_bucket_at(const mfx_moe *moe, int i) {
  return moe != NULL && i >= 0 && i < moe->n_buckets ? moe->buckets[i] : 0;
}

/* ---- latency of each expert ---------------------------------------------------------- */

typedef struct {
  mfx_moe *moe;
  int e;
  const mfx_kernel_env *env;
  float *x, *y;
} load_profile_job;

static mfx_status load_profile_call(void *user, int64_t tokens) {
  load_profile_job *j = user;
  return mfx_moe_expert_forward(j->moe, j->e, j->env, j->x, tokens, j->y);
}

static double load_profile_seconds(void *user) {
  return mfx_moe_last_expert_seconds(((load_profile_job *)user)->moe);
}

mfx_status mfx_moe_profile(mfx_moe *moe, const mfx_kernel_env *env, const int64_t *tokens,
                           int points, int64_t at_tokens, const mfx_profile_options *o,
                           mfx_latency_table *t) {
  if (moe == NULL || tokens == NULL || t == NULL || points < 2 ||
      points > MFX_LATENCY_MAX_POINTS || at_tokens < 1)
    return mfx_fail(MFX_ERR_INVALID, "moe profile: layer, tokens and table must not be NULL, "
                    "2..%d token counts and at_tokens >= 1", MFX_LATENCY_MAX_POINTS);
  int64_t most = 0;
  for (int i = 0; i < points; i++) {
    MFX_TRY(moe_check_batch(moe, tokens[i], "moe profile"));
    if (tokens[i] > most) most = tokens[i];
  }
  mfx_profile_options defaults;
  mfx_profile_options_default(&defaults);
  mfx_profile_options opt = o != NULL ? *o : defaults;
  opt.seconds = load_profile_seconds;
  memset(t, 0, sizeof *t);
  MFX_TRY(mfx_latency_host_key(t->device, sizeof t->device));
  snprintf(t->target, sizeof t->target, "%s", moe->gpu != NULL ? "cuda" : "cpu");
  t->dim = moe->spec.dim;
  t->hidden = moe->spec.hidden;
  t->at_tokens = at_tokens;
  size_t bytes = (size_t)most * (size_t)moe->spec.dim * sizeof(float);
  load_profile_job j = {moe, 0, env, malloc(bytes), malloc(bytes)};
  mfx_status st = j.x && j.y ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "moe profile: out of memory");
  for (size_t i = 0; st == MFX_OK && i < bytes / sizeof(float); i++)
    j.x[i] = (float)((int64_t)(i * 2654435761u % 2001) - 1000) / 1000.0f;
  for (int e = 0; st == MFX_OK && e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL) continue;
    j.e = e;
    mfx_latency_expert *x = &t->expert[t->experts];
    snprintf(x->name, sizeof x->name, "%s", mfx_expert_kind_name(moe->spec.kinds[e]));
    st = mfx_profile_expert(load_profile_call, &j, tokens, points, &opt, x);
    if (st == MFX_OK) t->experts++;
  }
  if (st == MFX_OK) st = mfx_latency_finish(t);
  free(j.x);
  free(j.y);
  return st;
}
