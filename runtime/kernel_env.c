/* The environment every compiled CPU kernel receives: a pool to run parallel
 * loops on and a 64-byte aligned workspace allocator. */
#include "mfx/runtime.h"

#include <stdlib.h>

#define MFX_WORKSPACE_ALIGN 64

/* aligned_alloc wants a size that is a multiple of the alignment. */
static void *mfx_env_alloc(size_t bytes) {
  if (bytes > SIZE_MAX - (MFX_WORKSPACE_ALIGN - 1)) return NULL;
  size_t rounded = (bytes + MFX_WORKSPACE_ALIGN - 1) / MFX_WORKSPACE_ALIGN * MFX_WORKSPACE_ALIGN;
  if (rounded == 0) rounded = MFX_WORKSPACE_ALIGN;
  return aligned_alloc(MFX_WORKSPACE_ALIGN, rounded);
}

static void mfx_env_free(void *ptr) { free(ptr); }

static int mfx_env_parallel_for(void *pool, mfx_parallel_body body, void *closure, int64_t n) {
  return mfx_pool_parallel_for((mfx_pool *)pool, body, closure, n);
}

void mfx_kernel_env_init(mfx_kernel_env *env, mfx_pool *pool) {
  if (env == NULL) return;
  env->pool = pool;
  env->parallel_for = mfx_env_parallel_for;
  env->alloc = mfx_env_alloc;
  env->free = mfx_env_free;
}
