/* What the files of autotune/ share and nobody else sees: a status macro,
 * a small integer hash map, the random generator, time and text helpers. */
#ifndef MFX_AUTOTUNE_INTERNAL_H
#define MFX_AUTOTUNE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mfx/autotune.h"
#include "mfx/device.h"
#include "mfx/target.h"

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
/* Writes all of buf to fd, through short and interrupted writes (what a
 * measuring child sends its parent before _exit); 0 when a write fails. */
int tune_write_all(int fd, const void *buf, size_t bytes);
/* The space a key searches: for a GPU device the template of its arch. */
mfx_status tune_space_init_key(mfx_space *s, const mfx_tune_key *key);
/* The f32 tolerance of a candidate's check: tol, or more where the op's
 * template says the config needs it (mfx_op.float_tolerance). */
double tune_tolerance(const mfx_op *op, const mfx_config *cfg, double tol);

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

/* ---- GPU targets (gpu_target.c, runner_gpu.c) ---------------------------------- */

/* mfx_tune_target_get of emulate, cuda and cuda:N. */
mfx_status tune_target_gpu(const mfx_target *t, mfx_tune_target *out);
/* The device's info, asked in a child process (CUDA never initialised here). */
mfx_status tune_gpu_probe(const char *spec, mfx_device_info *info);
/* Under MPI: target "cuda" on rank r is "cuda:<r mod devices>" (in buf);
 * buf "" for any other target. */
mfx_status tune_gpu_rank_target(const char *target, int rank, char *buf, size_t size);
/* "NAME, S SMs, M MiB, driver X.Y". */
void tune_gpu_describe(const mfx_device_info *info, char *buf, size_t size);

/* The summary of samples (sorted here): median, p10, p90, spread. */
void tune_summarize(double *samples, int n, int calls, double total, mfx_measurement *out);

/* Measuring candidates on a CUDA device: a worker process behind a
 * single-threaded "zygote" forked at creation (inputs and reference
 * outputs are inherited); candidates are PTX artifacts built on the host by
 * `jobs` threads while earlier ones are measured. */
typedef struct tune_gpu tune_gpu;
mfx_status tune_gpu_create(const mfx_op *op, const int64_t *dims, const mfx_runner_options *o,
                           const mfx_array *inputs, const mfx_array *expected, tune_gpu **out);
void tune_gpu_destroy(tune_gpu *g);
mfx_status tune_gpu_evaluate(tune_gpu *g, int n, const mfx_config *cfgs, mfx_trial *out,
                             mfx_trial_done_fn done, void *user);

#endif
