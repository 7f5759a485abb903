/* The host provider of the layer (moe/moe_internal.h): kernels JIT-compiled
 * for this CPU on first use, with configs from the layer's chooser (for
 * instance the tuning database), several side by side, and cached by
 * (op, dims). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_build.h"

/* A compiled kernel of the cache, keyed by op and dims. */
typedef struct {
  moe_cache_head head;
  mfx_op_kernel kernel;
} jit_entry;

static mfx_status jit_choose(mfx_moe *moe, moe_cache_head *e) {
  mfx_config_default(e->op, &e->cfg);
  if (moe->spec.choose_config == NULL) return MFX_OK;
  const int64_t *dims = e->want.dims;
  mfx_status st = moe->spec.choose_config(moe->spec.choose_user, "cpu", e->op, dims, &e->cfg);
  if (st != MFX_OK)
    return mfx_fail_context(st, "moe: choosing the config of %s M=%lld,N=%lld,K=%lld",
                            e->op->name, (long long)dims[0], (long long)dims[1],
                            (long long)dims[2]);
  return MFX_OK;
}

static mfx_status jit_compile_entry(void *moe, void *slot) {
  (void)moe;
  jit_entry *e = slot;
  return mfx_op_compile(e->head.op, e->head.want.dims, &e->head.cfg, &e->kernel);
}

static mfx_status jit_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                          mfx_array *in, mfx_array *out) {
  void *e = NULL;
  MFX_TRY(moe_cache_get(moe_cached_cache(p), p->moe, w, &e));
  return mfx_op_kernel_run(&((jit_entry *)e)->kernel, env, in, out);
}

static void jit_entry_free(void *e) { mfx_op_kernel_free(&((jit_entry *)e)->kernel); }

static const moe_provider_ops jit_provider_ops = {"jit", moe_cached_ensure, jit_run, NULL,
                                                  moe_cached_count, moe_cached_destroy};

mfx_status moe_jit_provider_create(mfx_moe *moe, moe_provider **out) {
  moe_cache cache = {sizeof(jit_entry), jit_choose, jit_compile_entry, NULL, 0, 0};
  return moe_cached_provider_create(moe, &jit_provider_ops, cache, jit_entry_free, out);
}

int moe_jit_provider_is(const moe_provider *p) { return p != NULL && p->ops == &jit_provider_ops; }

const mfx_op_kernel *moe_jit_provider_kernel(const moe_provider *p, int i) {
  jit_entry *e = moe_cache_at(moe_cached_cache(p), i);
  return e != NULL ? &e->kernel : NULL;
}
