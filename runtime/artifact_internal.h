/* Private: what the artifact container (artifact.c) and the loader
 * (module.c, module_cpu.c, module_cuda.c) share. */
#ifndef MFX_ARTIFACT_INTERNAL_H
#define MFX_ARTIFACT_INTERNAL_H

#include "mfx/artifact.h"

typedef enum { ART_TARGET_CPU, ART_TARGET_CUDA } art_target_kind;

typedef struct {
  art_target_kind kind;
  int sm;            /* cuda: 80 for sm_80 */
  int arch_specific; /* cuda: sm_90a runs on exactly 9.0 */
} art_target;

/* "cpu" or "cuda:sm_NN" (optionally with an 'a' suffix); 0 on success. */
int art_parse_target(const char *text, art_target *out);
/* shape as "[3, 4]" (sep ", ") or "[3,4]" (sep ","), truncated to size. */
void art_shape_text(int ndim, const int64_t *shape, const char *sep, char *buf, size_t size);

/* ---- device backends of a loaded artifact (module_cpu.c, module_cuda.c) ---- */

/* A backend runs the kernels of one loaded artifact on one device. Arrays
 * reaching run/time are already checked against the kernel's arguments, and
 * calls on one artifact never overlap (module.c serializes them). */
typedef struct {
  const char *name; /* "cpu", "cuda" */
  art_target_kind target;
  /* Open the device and load every kernel (targets already match the
   * backend; the backend checks what only the device knows). */
  mfx_status (*load)(const char *device, int threads, const char *label,
                     const mfx_artifact_kernel *kernels, int n_kernels, void **state);
  mfx_status (*run)(void *state, int index, const mfx_array *inputs, mfx_array *outputs);
  mfx_status (*time)(void *state, int index, const mfx_array *inputs, mfx_array *outputs,
                     int repeat, double *median_seconds);
  const char *(*device_name)(const void *state);
  void (*unload)(void *state);
} art_backend;

extern const art_backend art_cpu_backend;
extern const art_backend art_cuda_backend;


#endif
