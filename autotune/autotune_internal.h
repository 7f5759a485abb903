/* What the files of autotune/ share and nobody else sees: a status macro,
 * a small integer hash map, the random generator, time and text helpers. */
#ifndef MFX_AUTOTUNE_INTERNAL_H
#define MFX_AUTOTUNE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mfx/autotune.h"

/* ---- u64 -> u64 hash map (open addressing); also a set ------------------ */

typedef struct {
  uint64_t *keys;   /* key + 1; 0 marks an empty slot */
  uint64_t *values;
  size_t cap, count;
} tune_map;

void tune_map_init(tune_map *m);
void tune_map_free(tune_map *m);
/* MFX_ERR_NOMEM when growing fails. */
mfx_status tune_map_put(tune_map *m, uint64_t key, uint64_t value);
/* 1 and *value when present (value may be NULL). */
int tune_map_get(const tune_map *m, uint64_t key, uint64_t *value);

/* ---- random numbers ------------------------------------------------------ */

/* Uniform in [0, n), n > 0. */
uint64_t tune_rng_below(uint64_t *state, uint64_t n);
/* Uniform in [0, 1). */
double tune_rng_unit(uint64_t *state);

/* ---- misc ------------------------------------------------------------------ */

/* Seconds since the Unix epoch, with fractions. */
double tune_wall_seconds(void);
/* A fresh random session id (hex) into buf. */
void tune_session_id(char *buf, size_t size);
/* FNV-1a 64 of a string. */
uint64_t tune_hash_text(const char *s);
/* Copy at most size-1 bytes and terminate. */
void tune_copy_text(char *dst, size_t size, const char *src);

/* ---- the cost model's posterior (model.c) ------------------------------------ */

/* Predict with weights drawn from the fit's Gaussian posterior
 * N(w, sigma^2 (X^T X + lambda I)^-1) until the next draw, mean or fit:
 * Thompson sampling, so that a batch explores where the fit is unsure. */
void tune_cost_model_draw(mfx_cost_model *m, uint64_t *rng);
/* Predict with the fitted weights again. */
void tune_cost_model_mean(mfx_cost_model *m);

/* ---- the tuning loop's evaluation step (tune.c), also used by mpi.c -------- */

/* Evaluates a batch of space indices into trials (one per index), calling
 * done as each trial is final (so that it is committed at once). */
typedef mfx_status (*tune_evaluate_fn)(void *user, int n, const uint64_t *indices,
                                       mfx_trial *trials, mfx_trial_done_fn done,
                                       void *done_user);

/* The tuning loop of mfx_tune with its evaluation step replaced (MPI). */
mfx_status tune_run_loop(mfx_tune_db *db, const mfx_tune_key *key, const mfx_tune_options *o,
                         int batch, tune_evaluate_fn evaluate, void *user,
                         mfx_tune_summary *out);

/* Candidates per round when the options do not say: twice the builder
 * threads, at least 4. */
int tune_default_batch(const mfx_tune_options *o);

#endif
