/* The compiler side of the MoE layer (ops/moe_*.c): the providers that
 * compile the layer's kernels on first use, and what they share. Not a
 * public interface. The executor is moe/ (moe/moe_internal.h).
 *
 *   moe_build.c  mfx_moe_create: a layer whose kernels are compiled here;
 *                random weights; the compiled kernels, for artifacts
 *   moe_jit.c    the host provider: JIT-compiled kernels (mfx_op_compile)
 *   moe_gpu.c    the GPU provider: PTX through the CUDA driver, or emulated
 *   moe_jobs.c   building several kernels side by side; the kernel cache
 *                both providers keep
 *
 * Calls go one way: moe_build.c -> moe_jit.c, moe_gpu.c -> moe_jobs.c. */
#ifndef MFX_MOE_BUILD_H
#define MFX_MOE_BUILD_H

#include "moe_internal.h"
#include "ops_internal.h"

/* ---- moe_jobs.c ---- */
/* Runs job(ctx, i) for i in [0, n) on up to one thread per CPU (at most 8). */
void moe_run_jobs(int n, void (*job)(void *ctx, int i), void *ctx);
/* Builds `fresh` slots of `size` bytes each with build(ctx, slot), side by
 * side (a failing build frees what it made); moves the slots that built to
 * the front, *kept of them, and returns the first failure with its message. */
mfx_status moe_build_side_by_side(void *slots, size_t size, int fresh,
                                  mfx_status (*build)(void *ctx, void *slot), void *ctx,
                                  int *kept);

/* The kernel cache of a provider, keyed by (op, dims): entries of `size`
 * bytes, each beginning with a moe_cache_head. On a miss, choose fills the
 * head's config and build(moe, entry) compiles the entry, the fresh entries
 * of one call side by side; a failed build frees what it made and stays
 * out of the cache. */
typedef struct {
  const mfx_op *op;
  moe_want want;
  mfx_config cfg; /* as chosen, before compiling */
} moe_cache_head;

typedef struct {
  size_t size;
  mfx_status (*choose)(mfx_moe *moe, moe_cache_head *head);
  mfx_status (*build)(void *moe, void *entry);
  char *entries;
  int n, cap;
} moe_cache;

/* The entry for w, or NULL. */
void *moe_cache_find(const moe_cache *c, const moe_want *w);
/* Entry i, or NULL out of range. */
void *moe_cache_at(const moe_cache *c, int i);
/* Builds the entries of want[0..n) not in the cache yet; counts them in
 * moe->compiled_since. */
mfx_status moe_cache_ensure(moe_cache *c, mfx_moe *moe, const moe_want *want, int n);
/* The entry for w, built first if missing. */
mfx_status moe_cache_get(moe_cache *c, mfx_moe *moe, const moe_want *w, void **out);
/* Frees every entry with free_entry, then the entries. */
void moe_cache_free(moe_cache *c, void (*free_entry)(void *entry));

/* A provider whose kernels live in a moe_cache (both of ops/): its ensure,
 * count and destroy are these; its file gives run and free_entry. */
typedef struct {
  moe_provider base;
  moe_cache cache;
  void (*free_entry)(void *entry);
} moe_cached_provider;

mfx_status moe_cached_provider_create(mfx_moe *moe, const moe_provider_ops *ops, moe_cache cache,
                                      void (*free_entry)(void *entry), moe_provider **out);
/* The cache of a provider made by moe_cached_provider_create. */
moe_cache *moe_cached_cache(const moe_provider *p);
mfx_status moe_cached_ensure(moe_provider *p, const moe_want *want, int n);
int moe_cached_count(const moe_provider *p);
void moe_cached_destroy(moe_provider *p);

/* ---- moe_jit.c ---- */
mfx_status moe_jit_provider_create(mfx_moe *moe, moe_provider **out);
int moe_jit_provider_is(const moe_provider *p);
/* Compiled kernel i of a host provider (NULL out of range). */
const mfx_op_kernel *moe_jit_provider_kernel(const moe_provider *p, int i);

/* ---- moe_gpu.c ---- */
mfx_status moe_gpu_provider_create(mfx_moe *moe, moe_provider **out);
int moe_gpu_provider_is(const moe_provider *p);
/* Kernel i of a cuda layer as built (PTX, launches); NULL when emulated. */
const mfx_artifact_kernel *moe_gpu_provider_kernel(const moe_provider *p, int i);

#endif
