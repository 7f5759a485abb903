/* Target strings, parsed once (runtime/target.c) for every tool and library
 * that takes one:
 *
 *   cpu           this CPU
 *   cuda          a CUDA GPU, the first one, architecture not named
 *   cuda:N        CUDA device N (0..65535)
 *   cuda:sm_XX    code for compute capability XX (2 or 3 digits, >= 10),
 *                 optionally with the arch-specific suffix: cuda:sm_90a
 *   emulate       a GPU schedule run on the CPU (compiler/gpu_emulate.c)
 *
 * Each caller then states which of these it accepts. */
#ifndef MFX_TARGET_H
#define MFX_TARGET_H

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MFX_TARGET_CPU, MFX_TARGET_CUDA, MFX_TARGET_EMULATE } mfx_target_kind;

typedef struct {
  mfx_target_kind kind;
  int device;        /* cuda:N: N; otherwise -1 */
  int sm;            /* cuda:sm_XX: XX (90 for sm_90a); otherwise 0 */
  int arch_specific; /* the 'a' of sm_90a */
  char sm_name[16];  /* "sm_90a", or "" */
} mfx_target;

/* Parse text into *out; on anything else an MFX_ERR_INVALID naming the text
 * and the accepted forms. */
mfx_status mfx_target_parse(const char *text, mfx_target *out);
/* The text starts a GPU target: "cuda" or "cuda:..." (valid or not). Used to
 * pick a GPU schedule template before the target is checked. */
int mfx_target_names_gpu(const char *text);

#ifdef __cplusplus
}
#endif
#endif
