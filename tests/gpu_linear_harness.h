/* linear on its GPU template with a config, for the tests of its GPU forms
 * (test_gpu_mma.c: tensor cores, test_gpu_double_buffer.c: cp.async): the
 * config parsed for cuda:sm_80, the GPU program and its PTX, a run through
 * the compiler's GPU emulation, and the refusals (a config the template
 * rejects, an arch below what the config needs). Included by test programs
 * only; every helper fails the calling test with the config and the
 * library's message. */
#ifndef MFX_TESTS_GPU_LINEAR_HARNESS_H
#define MFX_TESTS_GPU_LINEAR_HARNESS_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "mfx/ops.h"

static inline const mfx_op *glh_linear_op(void) {
  const mfx_op *op = mfx_op_find("linear");
  ck_assert_ptr_nonnull(op);
  return op;
}

/* json (a GPU config of linear) into cfg. */
static inline void glh_config(const char *json, mfx_config *cfg) {
  ck_assert_msg(mfx_config_parse_json_for(glh_linear_op(), "cuda:sm_80", json, cfg) == MFX_OK,
                "config %s: %s", json, mfx_last_error());
}

/* The GPU program of linear under dims and json, in arena a. */
static inline mfx_gpu_program *glh_program(mfx_arena *a, const int64_t *dims, const char *json) {
  mfx_config cfg;
  glh_config(json, &cfg);
  mfx_gpu_program *p = NULL;
  ck_assert_msg(mfx_op_gpu_program(glh_linear_op(), a, dims, &cfg, &p) == MFX_OK, "%s: %s",
                json, mfx_last_error());
  return p;
}

/* Its PTX for sm (the caller frees it). */
static inline char *glh_ptx(const int64_t *dims, const char *json, const char *sm) {
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = glh_program(a, dims, json);
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_ptx(p, sm, &ptx, &size) == MFX_OK, "%s: %s", json, mfx_last_error());
  mfx_arena_destroy(a);
  return ptx;
}

/* Y = X W^T (in: X, W; out: Y, allocated) by the emulated GPU kernel; Y is
 * filled with garbage first, so an element the kernel misses shows. */
static inline void glh_run_emulated(const int64_t *dims, const char *json, mfx_array *in,
                                    mfx_array *out) {
  mfx_config cfg;
  glh_config(json, &cfg);
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile_for(glh_linear_op(), "emulate", dims, &cfg, &k) == MFX_OK,
                "%s: %s", json, mfx_last_error());
  memset(out[0].data, 0x7f, (size_t)mfx_array_numel(&out[0]) * sizeof(float));
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_op_kernel_run(&k, &env, in, out), MFX_OK);
  mfx_op_kernel_free(&k);
}

/* The template refuses json at 37x45x29 (MFX_ERR_SCHEDULE) saying `says`. */
static inline void glh_expect_refused(const char *json, const char *says) {
  mfx_config cfg;
  glh_config(json, &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = NULL;
  ck_assert_int_eq(mfx_op_gpu_program(glh_linear_op(), a, (int64_t[]){37, 45, 29}, &cfg, &p),
                   MFX_ERR_SCHEDULE);
  ck_assert_msg(strstr(mfx_last_error(), says), "%s: %s", json, mfx_last_error());
  mfx_arena_destroy(a);
}

/* The program of json at 37x45x29 builds, its code generation for sm_75,
 * sm_70 and sm_60 is refused (MFX_ERR_CODEGEN, no PTX) with a message
 * holding `says`, `also` (NULL: nothing more) and the arch (sm_75 ...), and
 * for sm_86 it is accepted. */
static inline void glh_expect_arch_refused(const char *json, const char *says, const char *also) {
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = glh_program(a, (int64_t[]){37, 45, 29}, json);
  const char *archs[] = {"sm_75", "sm_70", "sm_60"};
  for (int i = 0; i < 3; i++) {
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_int_eq(mfx_codegen_ptx(p, archs[i], &ptx, &size), MFX_ERR_CODEGEN);
    ck_assert_ptr_null(ptx);
    const char *e = mfx_last_error();
    ck_assert_msg(strstr(e, says) && (also == NULL || strstr(e, also)) && strstr(e, archs[i]),
                  "%s %s: %s", json, archs[i], e);
  }
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_codegen_ptx(p, "sm_86", &ptx, &size), MFX_OK);
  free(ptx);
  mfx_arena_destroy(a);
}

#endif
