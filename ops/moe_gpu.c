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
  moe_cache_head head;                 /* op, dims, config */
  mfx_arena *arena;
  mfx_jit_kernel *jit;                 /* emulate */
  mfx_artifact_kernel art;             /* cuda: PTX, arguments, launches */
  moe_gpu_kernel dev;                  /* cuda: loaded (moe/launch.c; meta re-pointed at
                                          art before each run: the cache may move) */
} gpu_kernel;

static void gpu_kernel_free(void *entry) {
  gpu_kernel *k = entry;
  moe_kernel_unload(&k->dev);
  mfx_artifact_kernel_release(&k->art);
  if (k->jit != NULL) mfx_jit_free(k->jit);
  if (k->arena != NULL) mfx_arena_destroy(k->arena);
}

static mfx_status gpu_load_cuda(mfx_moe *moe, gpu_kernel *k, mfx_schedule *s) {
  mfx_artifact_kernel *a = &k->art;
  size_t used = (size_t)snprintf(a->name, sizeof a->name, "%s", k->head.op->name);
  for (int d = 0; d < k->head.op->n_dims && used < sizeof a->name; d++)
    used += (size_t)snprintf(a->name + used, sizeof a->name - used, "_%c%lld",
                             tolower((unsigned char)k->head.op->dims[d][0]),
                             (long long)k->head.want.dims[d]);
  snprintf(a->op, sizeof a->op, "%s", k->head.op->name);
  snprintf(a->target, sizeof a->target, "%s", moe_gpu_build_target(moe));
  a->n_dims = k->head.op->n_dims;
  for (int d = 0; d < k->head.op->n_dims; d++) {
    snprintf(a->dim_names[d], sizeof a->dim_names[d], "%s", k->head.op->dims[d]);
    a->dims[d] = k->head.want.dims[d];
  }
  MFX_TRY(mfx_artifact_build(s, a));
  return moe_kernel_load(moe_gpu_device(moe), a, &k->dev);
}

static mfx_status gpu_choose(mfx_moe *moe, moe_cache_head *k) {
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
    MFX_TRY(mfx_op_gpu_program(k->head.op, k->arena, k->head.want.dims, &k->head.cfg, &p));
    return mfx_gpu_emulate_compile(k->arena, p, &k->jit);
  }
  mfx_schedule *s = NULL;
  MFX_TRY(mfx_op_build_for(k->head.op, moe_gpu_build_target(moe), k->arena, k->head.want.dims,
                           &k->head.cfg, &s));
  mfx_config_to_json(&k->head.cfg, k->art.config, sizeof k->art.config);
  return gpu_load_cuda(moe, k, s);
}

/* A failed build frees what it made and says which kernel and target. */
static mfx_status gpu_build_slot(void *ctx, void *slot) {
  mfx_moe *moe = ctx;
  gpu_kernel *k = slot;
  mfx_status st = gpu_build(moe, k);
  if (st == MFX_OK) return MFX_OK;
  gpu_kernel_free(k);
  return mfx_fail_context(st, "moe: compiling %s for %s (%s)", k->head.op->name,
                          moe_gpu_build_target(moe), moe_gpu_description(moe));
}

/* Runs w on device addresses: its inputs, then its outputs. */
static mfx_status gpu_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                          const uint64_t *addresses) {
  void *entry = NULL;
  MFX_TRY(moe_cache_get(moe_cached_cache(p), p->moe, w, &entry));
  gpu_kernel *k = entry;
  const char *name = w->op;
  int n = k->head.op->n_inputs + k->head.op->n_outputs;
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

static const moe_provider_ops gpu_provider_ops = {"gpu", moe_cached_ensure, NULL, gpu_run,
                                                  moe_cached_count, moe_cached_destroy};

mfx_status moe_gpu_provider_create(mfx_moe *moe, moe_provider **out) {
  moe_cache cache = {sizeof(gpu_kernel), gpu_choose, gpu_build_slot, NULL, 0, 0};
  return moe_cached_provider_create(moe, &gpu_provider_ops, cache, gpu_kernel_free, out);
}

int moe_gpu_provider_is(const moe_provider *p) { return p != NULL && p->ops == &gpu_provider_ops; }

const mfx_artifact_kernel *moe_gpu_provider_kernel(const moe_provider *p, int i) {
  gpu_kernel *k = moe_cache_at(moe_cached_cache(p), i);
  return k != NULL && !moe_gpu_emulated(p->moe) ? &k->art : NULL;
}
