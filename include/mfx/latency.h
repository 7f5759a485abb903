/* mfx latency tables: measuring an expert at several token counts, the
 * latency fit and alpha, and the latency table as JSON keyed by device
 * (written with the shared JSON writer, read by the runtime's small JSON reader: the
 * runtime never needs cJSON). runtime/profile.c; it lives in libmfxrt, so
 * training code can load the table without LLVM. The latency-aware router
 * loss (mfx/router.h) reads the alphas. */
#ifndef MFX_LATENCY_H
#define MFX_LATENCY_H

#include <stdint.h>
#include <stdio.h>

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MFX_LATENCY_MAX_EXPERTS 64
#define MFX_LATENCY_MAX_POINTS 16

/* One expert's measurements and fitted line seconds ~ a + b * tokens. */
typedef struct {
  char name[32];                            /* "mult", "shift" */
  int points;
  int64_t tokens[MFX_LATENCY_MAX_POINTS];   /* tokens per call, ascending */
  double seconds[MFX_LATENCY_MAX_POINTS];   /* median seconds per call */
  double a, b, r2;
  double latency; /* seconds at the table's at_tokens (see mfx_latency_finish) */
} mfx_latency_expert;

typedef struct {
  char device[160];   /* the key: "cpu: AMD EPYC 7B13 (2 cores)", "cuda: NVIDIA H100" */
  char target[16];    /* "cpu", "cuda" */
  int64_t dim, hidden;
  int64_t at_tokens;  /* where latency and alpha are read off the fits */
  int experts;
  mfx_latency_expert expert[MFX_LATENCY_MAX_EXPERTS];
  double alpha[MFX_LATENCY_MAX_EXPERTS]; /* latency / mean latency */
} mfx_latency_table;

/* The key of this host: "cpu: <model name> (<N> cores)". */
mfx_status mfx_latency_host_key(char *buf, size_t size);
/* The default table path: $MFX_LATENCY when set, else
 * ~/.cache/mfx/latency.json (creating ~/.cache/mfx). */
mfx_status mfx_latency_default_path(char *buf, size_t size);

/* One timed call of an expert on `tokens` tokens. */
typedef mfx_status (*mfx_profile_fn)(void *user, int64_t tokens);

typedef struct {
  int warmup;         /* untimed calls before each token count (1) */
  int min_repeats;    /* timed calls, at least (5) */
  int max_repeats;    /* and at most (200) */
  double min_seconds; /* repeat until this much time was measured (0.05) */
  /* NULL: a call takes the host-clock time around it. Else the seconds a
   * call took are what this returns after it, given the fn's user pointer
   * (a GPU expert's kernel time from device events, say). */
  double (*seconds)(void *user);
} mfx_profile_options;

void mfx_profile_options_default(mfx_profile_options *o);

/* Median seconds of fn(user, tokens) over the repeats (host clock, or
 * o->seconds). */
mfx_status mfx_profile_measure(mfx_profile_fn fn, void *user, int64_t tokens,
                               const mfx_profile_options *o, double *median_s);
/* Measures fn at each of `points` token counts (positive, ascending, at
 * least 2 distinct) into out->tokens/seconds and fits out->a, b, r2. */
mfx_status mfx_profile_expert(mfx_profile_fn fn, void *user, const int64_t *tokens,
                              int points, const mfx_profile_options *o,
                              mfx_latency_expert *out);

/* Refits every expert of t (from its points), then sets each latency to
 * a + b * at_tokens -- or, when that is not positive (a fit whose
 * intercept is negative at a small at_tokens), the measured median nearest
 * to at_tokens -- and alpha = latency / mean latency. */
mfx_status mfx_latency_finish(mfx_latency_table *t);

/* The table as one JSON object (what one device key maps to), through the
 * shared writer (mfx/json.h): a NaN or infinity becomes null. */
void mfx_latency_write_json(FILE *out, const mfx_latency_table *t, int indent);
/* Saves t under its device key in the file at path, keeping the other
 * devices' tables there; written to a temporary file, then renamed.
 * The file: {"format": "mfx-latency-1", "devices": {KEY: TABLE, ...}}.
 * A table holding a NaN or infinite number is refused (MFX_ERR_INVALID,
 * nothing written): JSON has none. */
mfx_status mfx_latency_save(const char *path, const mfx_latency_table *t);
/* Loads the table of `device` (NULL: this host's key) from path: the key
 * itself, or the one key that starts with it ("cuda", "emulate"; several
 * are MFX_ERR_INVALID). MFX_ERR_NOT_FOUND names the devices the file has. */
mfx_status mfx_latency_load(const char *path, const char *device, mfx_latency_table *t);

#ifdef __cplusplus
}
#endif
#endif
