/* An op compiled for the host: build its schedule from a configuration,
 * lower it, JIT it; run it on arrays checked against the interface. */
#include <stdio.h>
#include <ctype.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx/target.h"
#include "knobs.h"
#include "ops_internal.h"

static mfx_status kern_op_check_dims(const mfx_op *op, const int64_t *dims) {
  for (int d = 0; d < op->n_dims; d++)
    if (dims[d] <= 0)
      return mfx_fail(MFX_ERR_INVALID, "%s: %s=%lld must be positive", op->name, op->dims[d],
                      (long long)dims[d]);
  return MFX_OK;
}

/* ---- building for a target ------------------------------------------------------- */

/* A GPU knob that needs an arch (MFX_GPU_KNOBS_MIN_SM in knobs.h: mma=1
 * tensor cores, double_buffer=1 cp.async) set to non-zero on a target that
 * names an older sm_XX: refused before building (code generation refuses
 * it too). "cuda" and "emulate" name no arch and keep every config. */
static mfx_status kern_check_arch(const mfx_op *op, const char *target, const mfx_config *cfg) {
  const char *sm = target != NULL ? strstr(target, "sm_") : NULL;
  mfx_ptx_target t;
  if (sm == NULL || mfx_ptx_target_resolve(sm, &t) != MFX_OK) return MFX_OK;
  static const struct {
    const char *knob;
    int sm;
  } needs[] = MFX_GPU_KNOBS_MIN_SM;
  int n = 0;
  const mfx_knob *knobs = mfx_op_knobs(op, target, &n);
  for (size_t j = 0; j < sizeof needs / sizeof needs[0]; j++)
    for (int i = 0; i < n; i++) {
      int64_t v = mfx_config_get(cfg, knobs[i].name);
      if (strcmp(knobs[i].name, needs[j].knob) != 0 || v == 0 || t.sm_emitted >= needs[j].sm)
        continue;
      return mfx_fail(MFX_ERR_SCHEDULE, "%s for %s: %s=%lld needs sm_%d or newer (%s); set "
                      "%s=0 or target cuda:sm_%d or later", op->name, target, knobs[i].name,
                      (long long)v, needs[j].sm, knobs[i].about, knobs[i].name, needs[j].sm);
    }
  return MFX_OK;
}

mfx_status mfx_op_build_for(const mfx_op *op, const char *target, mfx_arena *a,
                            const int64_t *dims, const mfx_config *cfg, mfx_schedule **out) {
  if (op == NULL || a == NULL || dims == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "build: op, arena, dims and out must not be NULL");
  int gpu = mfx_target_is_gpu(target);
  if (gpu && op->build_gpu == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s has no GPU schedule template (target %s)", op->name,
                    target);
  mfx_config done;
  MFX_TRY(kern_op_check_dims(op, dims));
  MFX_TRY(mfx_config_complete_for(op, target, cfg, &done));
  if (gpu) MFX_TRY(kern_check_arch(op, target, &done));
  return gpu ? op->build_gpu(a, dims, &done, out) : op->build(a, dims, &done, out);
}

mfx_status mfx_op_gpu_program(const mfx_op *op, mfx_arena *a, const int64_t *dims,
                              const mfx_config *cfg, mfx_gpu_program **out) {
  mfx_schedule *s = NULL;
  mfx_build_result r;
  MFX_TRY(mfx_op_build_for(op, "cuda", a, dims, cfg, &s));
  MFX_TRY(mfx_build(s, op->name, "cuda", MFX_BUILD_PROGRAM, NULL, &r));
  *out = r.program;
  return MFX_OK;
}

/* ---- the host kernel ----------------------------------------------------------------- */

static void kern_op_describe(const mfx_op_kernel *k, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "%s", k->op->name);
  for (int d = 0; d < k->op->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : " ",
                             k->op->dims[d], (long long)k->dims[d]);
  if (used + 1 < size) {
    buf[used++] = ' ';
    mfx_config_to_json(&k->cfg, buf + used, size - used);
  }
}

static mfx_status kern_op_build_and_jit(mfx_op_kernel *k) {
  k->arena = mfx_arena_create();
  if (k->arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "out of memory creating an arena");
  MFX_TRY(k->op->build(k->arena, k->dims, &k->cfg, &k->schedule));
  mfx_build_result r;
  MFX_TRY(mfx_build(k->schedule, k->op->name, "cpu", MFX_BUILD_JIT, NULL, &r));
  k->func = r.func;
  k->jit = r.jit;
  return MFX_OK;
}

/* Checks, fills out's op, dims and config for `target` ("cpu" or
 * "emulate"), then builds it with `build`; on failure out holds nothing. */
static mfx_status kern_op_compile_for(const mfx_op *op, const int64_t *dims,
                                      const mfx_config *cfg, const char *target,
                                      mfx_status (*build)(mfx_op_kernel *), const char *suffix,
                                      mfx_op_kernel *out) {
  if (op == NULL || dims == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "compile: op, dims and out must not be NULL");
  memset(out, 0, sizeof *out);
  out->op = op;
  MFX_TRY(kern_op_check_dims(op, dims));
  memcpy(out->dims, dims, sizeof(int64_t) * (size_t)op->n_dims);
  MFX_TRY(mfx_config_complete_for(op, target, cfg, &out->cfg));
  mfx_status st = build(out);
  if (st != MFX_OK) {
    char what[512];
    kern_op_describe(out, what, sizeof what);
    mfx_op_kernel_free(out);
    return mfx_fail_context(st, "compiling %s%s", what, suffix);
  }
  return MFX_OK;
}

mfx_status mfx_op_compile(const mfx_op *op, const int64_t *dims, const mfx_config *cfg,
                          mfx_op_kernel *out) {
  return kern_op_compile_for(op, dims, cfg, "cpu", kern_op_build_and_jit, "", out);
}

void mfx_op_kernel_free(mfx_op_kernel *k) {
  if (k == NULL) return;
  if (k->jit != NULL) mfx_jit_free(k->jit);
  if (k->arena != NULL) mfx_arena_destroy(k->arena);
  k->jit = NULL;
  k->arena = NULL;
  k->schedule = NULL;
  k->func = NULL;
}

static void kern_shape_text(int ndim, const int64_t *shape, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                             (long long)shape[i]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

static mfx_status kern_op_check_array(const mfx_op_kernel *k, const mfx_op_tensor *t,
                                     const mfx_array *a) {
  const char *op = k->op->name;
  if (a->data == NULL) return mfx_fail(MFX_ERR_INVALID, "run %s: %s has no data", op, t->name);
  if (a->dtype != t->dtype)
    return mfx_fail(MFX_ERR_INVALID, "run %s: %s has dtype %s, expected %s", op, t->name,
                    mfx_dtype_name(a->dtype), mfx_dtype_name(t->dtype));
  int64_t want[MFX_MAX_DIMS];
  mfx_op_tensor_shape(k->op, t, k->dims, want);
  int same = a->ndim == t->ndim;
  for (int i = 0; same && i < t->ndim; i++) same = a->shape[i] == want[i];
  if (!same) {
    char got_text[128], want_text[128];
    kern_shape_text(a->ndim, a->shape, got_text, sizeof got_text);
    kern_shape_text(t->ndim, want, want_text, sizeof want_text);
    return mfx_fail(MFX_ERR_INVALID, "run %s: %s has shape %s, expected %s", op, t->name,
                    got_text, want_text);
  }
  return MFX_OK;
}

mfx_status mfx_op_kernel_run(const mfx_op_kernel *k, const mfx_kernel_env *env,
                             mfx_array *inputs, mfx_array *outputs) {
  if (k == NULL || k->jit == NULL)
    return mfx_fail(MFX_ERR_INVALID, "run: the kernel is not compiled");
  const mfx_op *op = k->op;
  if ((op->n_inputs > 0 && inputs == NULL) || outputs == NULL)
    return mfx_fail(MFX_ERR_INVALID, "run %s: inputs and outputs must not be NULL", op->name);
  void *args[2 * MFX_OP_MAX_TENSORS];
  for (int i = 0; i < op->n_inputs; i++) {
    MFX_TRY(kern_op_check_array(k, &op->inputs[i], &inputs[i]));
    args[i] = inputs[i].data;
  }
  for (int i = 0; i < op->n_outputs; i++) {
    MFX_TRY(kern_op_check_array(k, &op->outputs[i], &outputs[i]));
    args[op->n_inputs + i] = outputs[i].data;
  }
  mfx_kernel_env serial;
  if (env == NULL) {
    mfx_kernel_env_init(&serial, NULL);
    env = &serial;
  }
  if (mfx_jit_entry(k->jit)(args, env) != 0)
    return mfx_fail(MFX_ERR_NOMEM, "run %s: the kernel could not allocate its workspace",
                    op->name);
  return MFX_OK;
}

/* ---- other targets ---------------------------------------------------------------------- */

static mfx_status kern_op_emulate_jit(mfx_op_kernel *k) {
  k->arena = mfx_arena_create();
  if (k->arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "out of memory creating an arena");
  mfx_build_result r;
  MFX_TRY(mfx_op_build_for(k->op, "emulate", k->arena, k->dims, &k->cfg, &k->schedule));
  MFX_TRY(mfx_build(k->schedule, k->op->name, "emulate", MFX_BUILD_JIT, NULL, &r));
  k->func = r.func;
  k->jit = r.jit;
  return MFX_OK;
}

mfx_status mfx_op_compile_for(const mfx_op *op, const char *target, const int64_t *dims,
                              const mfx_config *cfg, mfx_op_kernel *out) {
  if (target == NULL || strcmp(target, "cpu") == 0) return mfx_op_compile(op, dims, cfg, out);
  if (strcmp(target, "emulate") != 0)
    return mfx_fail(MFX_ERR_INVALID, "compile: target '%s' does not run in this process; "
                    "expected cpu or emulate", target);
  return kern_op_compile_for(op, dims, cfg, "emulate", kern_op_emulate_jit, " for emulate", out);
}

/* Names in an artifact and in PTX are identifiers: a text kernel's op
 * te:<hash> becomes te_<hash> there. */
static void kern_identifier(char *name) {
  for (char *c = name; *c != '\0'; c++)
    if (!isalnum((unsigned char)*c) && *c != '_') *c = '_';
}

mfx_status mfx_op_gpu_image(const mfx_op *op, const char *sm_target, const int64_t *dims,
                            const mfx_config *cfg, const char *suffix, void **image,
                            size_t *size) {
  mfx_arena *a = mfx_arena_create();
  if (a == NULL) return mfx_fail(MFX_ERR_NOMEM, "build: out of memory for an arena");
  mfx_schedule *s = NULL;
  mfx_artifact_kernel k;
  memset(&k, 0, sizeof k);
  mfx_status st = mfx_op_build_for(op, sm_target, a, dims, cfg, &s);
  if (st == MFX_OK) {
    snprintf(k.name, sizeof k.name, "%s_%s", op->name, suffix);
    snprintf(k.op, sizeof k.op, "%s", op->name);
    kern_identifier(k.name);
    kern_identifier(k.op);
    snprintf(k.target, sizeof k.target, "%s", sm_target);
    k.n_dims = op->n_dims;
    for (int d = 0; d < op->n_dims; d++) {
      snprintf(k.dim_names[d], sizeof k.dim_names[d], "%s", op->dims[d]);
      k.dims[d] = dims[d];
    }
    mfx_config cfg_done;
    if (mfx_config_complete_for(op, sm_target, cfg, &cfg_done) == MFX_OK)
      mfx_config_to_json(&cfg_done, k.config, sizeof k.config);
    st = mfx_artifact_build(s, &k);
  }
  if (st == MFX_OK) st = mfx_artifact_encode(&k, 1, image, size);
  mfx_artifact_kernel_release(&k);
  mfx_arena_destroy(a);
  return st;
}
