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

typedef struct {
  moe_provider base;
  moe_cache cache;
} jit_provider;

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

static mfx_status jit_ensure(moe_provider *p, const moe_want *want, int n) {
  return moe_cache_ensure(&((jit_provider *)p)->cache, p->moe, want, n);
}

static mfx_status jit_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                          mfx_array *in, mfx_array *out) {
  void *e = NULL;
  MFX_TRY(moe_cache_get(&((jit_provider *)p)->cache, p->moe, w, &e));
  return mfx_op_kernel_run(&((jit_entry *)e)->kernel, env, in, out);
}

static int jit_count(const moe_provider *p) { return ((const jit_provider *)p)->cache.n; }

static void jit_entry_free(void *e) { mfx_op_kernel_free(&((jit_entry *)e)->kernel); }

static void jit_destroy(moe_provider *p) {
  jit_provider *j = (jit_provider *)p;
  moe_cache_free(&j->cache, jit_entry_free);
  free(j);
}

static const moe_provider_ops jit_provider_ops = {"jit", jit_ensure, jit_run, NULL, jit_count,
                                                  jit_destroy};

mfx_status moe_jit_provider_create(mfx_moe *moe, moe_provider **out) {
  jit_provider *j = calloc(1, sizeof *j);
  if (j == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  j->base.ops = &jit_provider_ops;
  j->base.moe = moe;
  j->cache = (moe_cache){sizeof(jit_entry), jit_choose, jit_compile_entry, NULL, 0, 0};
  *out = &j->base;
  return MFX_OK;
}

int moe_jit_provider_is(const moe_provider *p) { return p != NULL && p->ops == &jit_provider_ops; }

const mfx_op_kernel *moe_jit_provider_kernel(const moe_provider *p, int i) {
  jit_entry *e = moe_cache_at(&((const jit_provider *)p)->cache, i);
  return e != NULL ? &e->kernel : NULL;
}
