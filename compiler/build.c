/* The build driver: a schedule through lowering, kernel splitting (GPU) and
 * code generation, for a target string, emitting what the caller asks for.
 * Tools (mfx lower / compile), ops and the artifact writer all call this. */
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"

const char *mfx_build_emit_name(mfx_build_emit what) {
  static const char *const names[] = {"func", "program", "jit", "ll", "asm", "obj", "ptx"};
  return (unsigned)what < sizeof names / sizeof names[0] ? names[what] : "?";
}

static mfx_status build_refuse(const char *target, mfx_build_emit what, const char *why) {
  return mfx_fail(MFX_ERR_INVALID, "build for %s: cannot emit %s: %s", target,
                  mfx_build_emit_name(what), why);
}

/* Which emits a target takes; MFX_OK or a message saying what would. */
static mfx_status build_check(const mfx_target *t, const char *target, mfx_build_emit what) {
  if (what < MFX_BUILD_FUNC || what > MFX_BUILD_PTX)
    return mfx_fail(MFX_ERR_INVALID, "build for %s: unknown emit kind %d", target, (int)what);
  if (t->kind == MFX_TARGET_CPU) {
    if (what == MFX_BUILD_PROGRAM || what == MFX_BUILD_PTX)
      return build_refuse(target, what, "that is GPU code; give a cuda target (e.g. cuda:sm_80)");
    return MFX_OK;
  }
  if (what == MFX_BUILD_OBJ)
    return build_refuse(target, what, "an object is host code; for a GPU emit ptx (the CUDA "
                        "driver or ptxas makes GPU binaries)");
  if ((what == MFX_BUILD_LL || what == MFX_BUILD_ASM || what == MFX_BUILD_PTX) && !t->sm)
    return build_refuse(target, what, "GPU code needs an architecture: give cuda:sm_XX "
                        "(e.g. cuda:sm_80)");
  return MFX_OK;
}

static mfx_status build_host(mfx_build_emit what, mfx_build_result *r) {
  switch (what) {
  case MFX_BUILD_JIT: return mfx_jit_compile(r->func, &r->jit);
  case MFX_BUILD_LL: return mfx_codegen_emit(r->func, MFX_EMIT_LL, &r->data, &r->size);
  case MFX_BUILD_ASM: return mfx_codegen_emit(r->func, MFX_EMIT_ASM, &r->data, &r->size);
  case MFX_BUILD_OBJ: return mfx_codegen_emit(r->func, MFX_EMIT_OBJ, &r->data, &r->size);
  default: return MFX_OK;
  }
}

static mfx_status build_gpu(mfx_arena *a, const mfx_target *t, mfx_build_emit what,
                            mfx_build_result *r) {
  MFX_TRY(mfx_split_kernels(a, r->func, &r->program));
  switch (what) {
  case MFX_BUILD_JIT: return mfx_gpu_emulate_compile(a, r->program, &r->jit);
  case MFX_BUILD_LL: return mfx_codegen_gpu_emit(r->program, t->sm_name, MFX_EMIT_LL, &r->data, &r->size);
  case MFX_BUILD_ASM: case MFX_BUILD_PTX:
    return mfx_codegen_ptx(r->program, t->sm_name, &r->data, &r->size);
  default: return MFX_OK;
  }
}

mfx_status mfx_build(mfx_schedule *s, const char *name, const char *target, mfx_build_emit what,
                     const mfx_build_options *opts, mfx_build_result *out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_build: out must not be NULL");
  memset(out, 0, sizeof *out);
  if (s == NULL || name == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_build: schedule and name must not be NULL");
  mfx_target t;
  MFX_TRY(mfx_target_parse(target, &t));
  MFX_TRY(build_check(&t, target, what));
  mfx_build_result r = {0};
  double t0 = mfx_now_seconds();
  mfx_status st = mfx_lower_traced(s, name, opts ? opts->after : NULL, opts ? opts->ctx : NULL,
                                   &r.func);
  mfx_compile_time_add(MFX_PHASE_LOWER, mfx_now_seconds() - t0);
  if (st == MFX_OK && what != MFX_BUILD_FUNC)
    st = t.kind == MFX_TARGET_CPU ? build_host(what, &r) : build_gpu(s->arena, &t, what, &r);
  if (st != MFX_OK) {
    if (r.jit) mfx_jit_free(r.jit);
    free(r.data);
    return st;
  }
  *out = r;
  return MFX_OK;
}
