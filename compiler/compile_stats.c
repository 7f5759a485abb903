/* Where compile time goes: the build driver and the LLVM targets add each
 * phase's seconds here, and the LLVM pipeline every kernel uses is chosen
 * here (one place, so the kernel cache can key on it). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static mfx_compile_times stats_totals;

static const char *const phase_names[MFX_PHASE_COUNT] = {"lower", "irgen", "optimize", "codegen",
                                                         "link"};

const char *mfx_compile_phase_name(mfx_compile_phase p) {
  return p >= 0 && p < MFX_PHASE_COUNT ? phase_names[p] : "?";
}

void mfx_compile_time_add(mfx_compile_phase p, double seconds) {
  if (p < 0 || p >= MFX_PHASE_COUNT) return;
  pthread_mutex_lock(&stats_lock);
  stats_totals.seconds[p] += seconds;
  pthread_mutex_unlock(&stats_lock);
}

void mfx_compile_note_build(int from_cache) {
  pthread_mutex_lock(&stats_lock);
  if (from_cache) stats_totals.cached++;
  else stats_totals.builds++;
  pthread_mutex_unlock(&stats_lock);
}

void mfx_compile_times_get(mfx_compile_times *out) {
  if (out == NULL) return;
  pthread_mutex_lock(&stats_lock);
  *out = stats_totals;
  pthread_mutex_unlock(&stats_lock);
}

void mfx_compile_times_reset(void) {
  pthread_mutex_lock(&stats_lock);
  memset(&stats_totals, 0, sizeof stats_totals);
  pthread_mutex_unlock(&stats_lock);
}

/* ---- the LLVM pipeline ------------------------------------------------------------- */

typedef struct {
  const char *name;     /* what $MFX_LLVM_PIPELINE may say */
  const char *pipeline; /* what LLVMRunPasses gets */
} stats_pipeline;

static const stats_pipeline pipelines[] = {
    {"O1", "default<O1>"},
    {"O2", "default<O2>"},
    {"O3", "default<O3>"},
};

#define PIPELINE_DEFAULT "default<O3>"

const char *mfx_llvm_pipeline(void) {
  const char *want = getenv("MFX_LLVM_PIPELINE");
  if (want == NULL || want[0] == '\0') return PIPELINE_DEFAULT;
  for (size_t i = 0; i < sizeof pipelines / sizeof pipelines[0]; i++)
    if (strcmp(want, pipelines[i].name) == 0) return pipelines[i].pipeline;
  mfx_fail(MFX_ERR_INVALID, "MFX_LLVM_PIPELINE=%s: expected O1, O2 or O3 (or unset for the "
           "default)", want);
  return NULL;
}
