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
  const mfx_op *op;
  moe_want want;
  mfx_config cfg; /* as chosen, before compiling */
  mfx_op_kernel kernel;
} jit_entry;

typedef struct {
  moe_provider base;
  jit_entry *kernels;
  int n_kernels, cap_kernels;
} jit_provider;

static jit_entry *jit_find(jit_provider *j, const moe_want *w) {
  for (int i = 0; i < j->n_kernels; i++)
    if (moe_want_equal(&j->kernels[i].want, w)) return &j->kernels[i];
  return NULL;
}

static mfx_status jit_choose(mfx_moe *moe, jit_entry *e) {
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

static mfx_status jit_compile_entry(void *ctx, void *slot) {
  (void)ctx;
  jit_entry *e = slot;
  return mfx_op_compile(e->op, e->want.dims, &e->cfg, &e->kernel);
}

static mfx_status jit_ensure(moe_provider *p, const moe_want *want, int n) {
  jit_provider *j = (jit_provider *)p;
  mfx_moe *moe = p->moe;
  if (!moe_grow((void **)&j->kernels, &j->cap_kernels, j->n_kernels + n, sizeof *j->kernels))
    return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
  int fresh = 0;
  for (int i = 0; i < n; i++) {
    const mfx_op *op = mfx_op_find(want[i].op);
    if (op == NULL)
      return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", want[i].op);
    if (jit_find(j, &want[i]) != NULL) continue;
    jit_entry *e = &j->kernels[j->n_kernels + fresh++];
    memset(e, 0, sizeof *e);
    e->op = op;
    e->want = want[i];
    MFX_TRY(jit_choose(moe, e));
  }
  if (fresh == 0) return MFX_OK;
  int kept = 0;
  mfx_status st = moe_build_side_by_side(&j->kernels[j->n_kernels], sizeof *j->kernels, fresh,
                                         jit_compile_entry, NULL, &kept);
  j->n_kernels += kept;
  moe->compiled_since += kept;
  return st;
}

static mfx_status jit_run(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                          mfx_array *in, mfx_array *out) {
  jit_provider *j = (jit_provider *)p;
  jit_entry *e = jit_find(j, w);
  if (e == NULL) {
    MFX_TRY(jit_ensure(p, w, 1));
    e = jit_find(j, w);
  }
  return mfx_op_kernel_run(&e->kernel, env, in, out);
}

static int jit_count(const moe_provider *p) { return ((const jit_provider *)p)->n_kernels; }

static void jit_destroy(moe_provider *p) {
  jit_provider *j = (jit_provider *)p;
  for (int i = 0; i < j->n_kernels; i++) mfx_op_kernel_free(&j->kernels[i].kernel);
  free(j->kernels);
  free(j);
}

static const moe_provider_ops jit_provider_ops = {"jit", jit_ensure, jit_run, NULL, jit_count,
                                                  jit_destroy};

mfx_status moe_jit_provider_create(mfx_moe *moe, moe_provider **out) {
  jit_provider *j = calloc(1, sizeof *j);
  if (j == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  j->base.ops = &jit_provider_ops;
  j->base.moe = moe;
  *out = &j->base;
  return MFX_OK;
}

int moe_jit_provider_is(const moe_provider *p) { return p != NULL && p->ops == &jit_provider_ops; }

const mfx_op_kernel *moe_jit_provider_kernel(const moe_provider *p, int i) {
  const jit_provider *j = (const jit_provider *)p;
  if (i < 0 || i >= j->n_kernels) return NULL;
  return &j->kernels[i].kernel;
}
