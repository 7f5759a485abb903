/* The GPU provider of the layer (moe/moe_internal.h): the kernels of a
 * layer on a GPU target, built on first use from the ops' GPU templates
 * (configs from the layer's chooser, several kernels side by side) and
 * kept in a cache keyed by (op, dims):
 *
 *   cuda     built into PTX (the artifact builder), loaded through the CUDA
 *            driver and launched on device addresses
 *   emulate  the same GPU programs compiled for the compiler's CPU
 *            emulation, run on the CPU device's buffers
 *
 * The device's buffers, the chains and the pass are moe/device.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_build.h"
#include "mfx/artifact.h"
#include "mfx/device.h"

/* A kernel of the cache: one op at one shape. */
typedef struct {
  const mfx_op *op;
  moe_want want;
  mfx_config cfg;
  mfx_arena *arena;
  mfx_jit_kernel *jit;                 /* emulate */
  mfx_artifact_kernel art;             /* cuda: PTX, arguments, launches */
  moe_gpu_kernel dev;                  /* cuda: loaded (moe/launch.c; meta re-pointed at
                                          art before each run: the cache may move) */
} gpu_kernel;

typedef struct {
  moe_provider base;
  gpu_kernel *kernels;
  int n_kernels, cap_kernels;
} gpu_provider;

static void gpu_kernel_free(gpu_kernel *k) {
  moe_kernel_unload(&k->dev);
  mfx_artifact_kernel_release(&k->art);
  if (k->jit != NULL) mfx_jit_free(k->jit);
  if (k->arena != NULL) mfx_arena_destroy(k->arena);
}

static mfx_status gpu_load_cuda(mfx_moe *moe, gpu_kernel *k, mfx_schedule *s) {
  mfx_artifact_kernel *a = &k->art;
  size_t used = (size_t)snprintf(a->name, sizeof a->name, "%s", k->op->name);
  for (int d = 0; d < k->op->n_dims && used < sizeof a->name; d++)
    used += (size_t)snprintf(a->name + used, sizeof a->name - used, "_%c%lld",
                             tolower((unsigned char)k->op->dims[d][0]), (long long)k->want.dims[d]);
  snprintf(a->op, sizeof a->op, "%s", k->op->name);
  snprintf(a->target, sizeof a->target, "%s", moe_gpu_build_target(moe));
  a->n_dims = k->op->n_dims;
  for (int d = 0; d < k->op->n_dims; d++) {
    snprintf(a->dim_names[d], sizeof a->dim_names[d], "%s", k->op->dims[d]);
    a->dims[d] = k->want.dims[d];
  }
  MFX_TRY(mfx_artifact_build(s, a));
  return moe_kernel_load(moe_gpu_device(moe), a, &k->dev);
}

static mfx_status gpu_choose(mfx_moe *moe, gpu_kernel *k) {
  mfx_config_default_for(k->op, "cuda", &k->cfg);
  if (moe->spec.choose_config == NULL) return MFX_OK;
  const char *target = moe_gpu_build_target(moe);
  mfx_status st =
      moe->spec.choose_config(moe->spec.choose_user, target, k->op, k->want.dims, &k->cfg);
  return st == MFX_OK ? MFX_OK
                      : mfx_fail_context(st, "moe: choosing the config of %s for %s",
                                         k->op->name, target);
}

static mfx_status gpu_build(mfx_moe *moe, gpu_kernel *k) {
  k->arena = mfx_arena_create();
  if (k->arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for an arena");
  if (moe_gpu_emulated(moe)) {
    mfx_gpu_program *p = NULL;
    MFX_TRY(mfx_op_gpu_program(k->op, k->arena, k->want.dims, &k->cfg, &p));
    return mfx_gpu_emulate_compile(k->arena, p, &k->jit);
  }
  mfx_schedule *s = NULL;
  MFX_TRY(mfx_op_build_for(k->op, moe_gpu_build_target(moe), k->arena, k->want.dims, &k->cfg,
                           &s));
  mfx_config_to_json(&k->cfg, k->art.config, sizeof k->art.config);
  return gpu_load_cuda(moe, k, s);
}

static gpu_kernel *gpu_kernel_find(gpu_provider *g, const moe_want *w) {
  for (int i = 0; i < g->n_kernels; i++)
    if (moe_want_equal(&g->kernels[i].want, w)) return &g->kernels[i];
  return NULL;
}

/* A failed build frees what it made and says which kernel and target. */
static mfx_status gpu_build_slot(void *ctx, void *slot) {
  mfx_moe *moe = ctx;
  gpu_kernel *k = slot;
  mfx_status st = gpu_build(moe, k);
  if (st == MFX_OK) return MFX_OK;
  gpu_kernel_free(k);
  return mfx_fail_context(st, "moe: compiling %s for %s (%s)", k->op->name,
                          moe_gpu_build_target(moe), moe_gpu_description(moe));
}

static mfx_status gpu_ensure(moe_provider *p, const moe_want *want, int n) {
  gpu_provider *g = (gpu_provider *)p;
  mfx_moe *moe = p->moe;
  if (!moe_grow((void **)&g->kernels, &g->cap_kernels, g->n_kernels + n, sizeof *g->kernels))
    return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
  int fresh = 0;
  for (int i = 0; i < n; i++) {
    const mfx_op *op = mfx_op_find(want[i].op);
    if (op == NULL)
      return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", want[i].op);
    if (gpu_kernel_find(g, &want[i]) != NULL) continue;
    gpu_kernel *k = &g->kernels[g->n_kernels + fresh++];
    memset(k, 0, sizeof *k);
    k->op = op;
    k->want = want[i];
    MFX_TRY(gpu_choose(moe, k));
  }
  if (fresh == 0) return MFX_OK;
  int kept = 0;
  mfx_status st = moe_build_side_by_side(&g->kernels[g->n_kernels], sizeof *g->kernels, fresh,
                                         gpu_build_slot, moe, &kept);
  g->n_kernels += kept;
  moe->compiled_since += kept;
  return st;
}

static mfx_status gpu_kernel_get(gpu_provider *g, const moe_want *w, gpu_kernel **out) {
  gpu_kernel *k = gpu_kernel_find(g, w);
  if (k == NULL) {
    MFX_TRY(gpu_ensure(&g->base, w, 1));
    k = gpu_kernel_find(g, w);
  }
  *out = k;
  return MFX_OK;
}

/* Runs w on device addresses: its inputs, then its outputs. */
static mfx_status gpu_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                          const uint64_t *addresses) {
  gpu_kernel *k = NULL;
  MFX_TRY(gpu_kernel_get((gpu_provider *)p, w, &k));
  const char *name = w->op;
  int n = k->op->n_inputs + k->op->n_outputs;
  if (k->jit != NULL) {
    void *args[2 * MFX_OP_MAX_TENSORS];
    for (int i = 0; i < n; i++) args[i] = (void *)(uintptr_t)addresses[i];
    if (mfx_jit_entry(k->jit)(args, env) != 0)
      return mfx_fail(MFX_ERR_NOMEM, "moe: emulated %s could not allocate its workspace", name);
    return MFX_OK;
  }
  k->dev.meta = &k->art;
  return moe_kernel_run(&k->dev, addresses, p->moe->weights_version);
}

static int gpu_count(const moe_provider *p) { return ((const gpu_provider *)p)->n_kernels; }

static void gpu_destroy(moe_provider *p) {
  gpu_provider *g = (gpu_provider *)p;
  for (int i = 0; i < g->n_kernels; i++) gpu_kernel_free(&g->kernels[i]);
  free(g->kernels);
  free(g);
}

static const moe_provider_ops gpu_provider_ops = {"gpu", gpu_ensure, NULL, gpu_run, gpu_count,
                                                  gpu_destroy};

mfx_status moe_gpu_provider_create(mfx_moe *moe, moe_provider **out) {
  gpu_provider *g = calloc(1, sizeof *g);
  if (g == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  g->base.ops = &gpu_provider_ops;
  g->base.moe = moe;
  *out = &g->base;
  return MFX_OK;
}

int moe_gpu_provider_is(const moe_provider *p) { return p != NULL && p->ops == &gpu_provider_ops; }

const mfx_artifact_kernel *moe_gpu_provider_kernel(const moe_provider *p, int i) {
  const gpu_provider *g = (const gpu_provider *)p;
  if (moe_gpu_emulated(p->moe) || i < 0 || i >= g->n_kernels) return NULL;
  return &g->kernels[i].art;
}
