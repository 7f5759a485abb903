/* mfx autotuning: the knob space of an op's schedule template, search
 * strategies, the builder/runner split with the measurement protocol, and
 * the SQLite tuning database the compiler front-ends consult. In file order:
 *
 *   space.c    the knobs x choices of one op under one shape; validity
 *   model.c    the cost model (ridge regression on knob features)
 *   search.c   exhaustive, random (no repeats), model-guided (annealing)
 *   measure.c  warm-up, repeats to a minimum time, median and spread
 *   runner.c   build candidates in parallel, check and time them in process
 *              or in a child process with a timeout
 *   target.c   the target key: architecture, device fingerprint, version
 *   db.c       the database: schema, migrations, trials, best, listing
 *   db_io.c    export / import as JSON lines, SVG plot of a tuning
 *   lookup.c   best config for a key: tuned, nearest tuned shape, default
 *   tune.c     the tuning loop: search -> build -> run -> commit each trial
 *   mpi.c      the same loop with candidates sharded over MPI ranks
 *   util.c     (private) hash map, random numbers, clocks, text */
#ifndef MFX_AUTOTUNE_H
#define MFX_AUTOTUNE_H

#include <stdio.h>

#include "mfx/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the knob space --------------------------------------------------------- */

/* Every combination of an op's knob choices under one shape. Index i is a
 * mixed-radix number: the first knob's choice varies fastest. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  uint64_t size;
  char target[16]; /* "cpu" or "cuda:sm_XX": the template and knobs searched */
} mfx_space;

/* The space of the op's CPU template. */
mfx_status mfx_space_init(mfx_space *s, const mfx_op *op, const int64_t *dims);
/* The space of the target's template (mfx_op_knobs, mfx_op_build_for). */
mfx_status mfx_space_init_for(mfx_space *s, const mfx_op *op, const int64_t *dims,
                              const char *target);
/* The complete configuration at index (< size), knobs in the op's order. */
void mfx_space_config(const mfx_space *s, uint64_t index, mfx_config *cfg);
/* The index of cfg (knobs missing from cfg take their defaults);
 * MFX_ERR_NOT_FOUND when a value is not one of its knob's choices. */
mfx_status mfx_space_index(const mfx_space *s, const mfx_config *cfg, uint64_t *index);
/* Whether the template accepts cfg under the space's dims: builds the
 * schedule only (cheap; nothing is lowered or compiled). MFX_OK when it
 * does; otherwise the op's status (MFX_ERR_SCHEDULE for an impossible
 * combination) and its message. */
mfx_status mfx_space_check(const mfx_space *s, const mfx_config *cfg);

/* ---- search strategies ------------------------------------------------------ */

typedef enum {
  MFX_SEARCH_EXHAUSTIVE, /* every valid config once, in index order */
  MFX_SEARCH_RANDOM,     /* uniformly random, never the same config twice */
  MFX_SEARCH_MODEL,      /* annealing over a cost model fitted to the trials */
} mfx_strategy;

const char *mfx_strategy_name(mfx_strategy s);
/* "exhaustive", "random" or "model"; 0 on success. */
int mfx_strategy_from_name(const char *name, mfx_strategy *out);

typedef struct mfx_search mfx_search;

mfx_status mfx_search_create(const mfx_space *space, mfx_strategy strategy, uint64_t seed,
                             mfx_search **out);
void mfx_search_destroy(mfx_search *s);
/* Up to n candidates (space indices) that are valid and were never proposed
 * or observed; *got < n only when the space has no more. */
mfx_status mfx_search_next(mfx_search *s, int n, uint64_t *indices, int *got);
/* A result: seconds > 0 for a measured config, 0 for a failed one. A config
 * observed here (for instance from the database) is never proposed. */
mfx_status mfx_search_observe(mfx_search *s, uint64_t index, double seconds);
/* Configs the template refused while searching. */
int mfx_search_invalid(const mfx_search *s);

/* The cost model on its own: predicts log(seconds) of a config. */
typedef struct mfx_cost_model mfx_cost_model;
mfx_status mfx_cost_model_create(const mfx_space *space, mfx_cost_model **out);
void mfx_cost_model_destroy(mfx_cost_model *m);
/* Fit to n (index, log seconds) samples; replaces any earlier fit. */
mfx_status mfx_cost_model_fit(mfx_cost_model *m, int n, const uint64_t *indices,
                              const double *log_seconds);
double mfx_cost_model_predict(const mfx_cost_model *m, uint64_t index);

/* ---- measurement -------------------------------------------------------------- */

typedef struct {
  double min_seconds;  /* repeat until this much time was measured (0.05) */
  int min_repeats;     /* at least this many repeats (3) */
  int max_repeats;     /* at most (200) */
  double min_sample_s; /* a repeat groups calls until it lasts this long (2e-4);
                          one call per repeat when flushing */
  int flush_cache;     /* write a buffer larger than the LLC (on a GPU: twice the L2)
                          before each repeat */
  double tol;          /* f32 tolerance of the reference check (1e-4) */
} mfx_measure_options;

void mfx_measure_options_default(mfx_measure_options *o);

typedef struct {
  double median_s;     /* per call */
  double p10_s, p90_s;
  double spread;       /* (p90 - p10) / median */
  int repeats;
  int calls_per_repeat;
  double total_s;      /* time measured over all repeats */
} mfx_measurement;

/* One launch of a compiled kernel; NULL fn means mfx_op_kernel_run. */
typedef mfx_status (*mfx_launch_fn)(void *user, const mfx_op_kernel *k,
                                    const mfx_kernel_env *env, mfx_array *inputs,
                                    mfx_array *outputs);

typedef struct {
  mfx_launch_fn fn;
  void *user;
  const mfx_op_kernel *kernel;
  const mfx_kernel_env *env;
  mfx_array *inputs;
  mfx_array *outputs;
  unsigned char *flush;   /* cache-flush buffer (NULL: none) */
  size_t flush_bytes;
} mfx_launch;

mfx_status mfx_launch_call(const mfx_launch *l);

/* The measurement protocol of one target. The check run before it is the
 * warm-up. CPU: mfx_measure_cpu, host monotonic clock around launches. A GPU
 * target plugs in its own (events around the launches). */
typedef mfx_status (*mfx_measure_fn)(const mfx_launch *l, const mfx_measure_options *o,
                                     mfx_measurement *out);
mfx_status mfx_measure_cpu(const mfx_launch *l, const mfx_measure_options *o,
                           mfx_measurement *out);
/* Bytes the cache flush writes on this machine (twice the LLC, >= 8 MiB). */
size_t mfx_measure_flush_bytes(void);

/* ---- trials and the runner ------------------------------------------------------- */

typedef enum {
  MFX_TRIAL_OK,    /* checked against the reference and timed */
  MFX_TRIAL_ERROR, /* did not build, crashed, timed out, failed to run */
  MFX_TRIAL_WRONG, /* ran, but its result differs from the reference */
} mfx_trial_status;

const char *mfx_trial_status_name(mfx_trial_status s);
int mfx_trial_status_from_name(const char *name, mfx_trial_status *out);

#define MFX_TRIAL_ERROR_MAX 320

typedef struct {
  mfx_config cfg;
  mfx_trial_status status;
  mfx_measurement m;    /* OK only */
  double build_s;       /* host time to build it */
  int rank;             /* the MPI rank that ran it (0 alone) */
  double created;       /* Unix time it was recorded */
  char error[MFX_TRIAL_ERROR_MAX];
  /* GPU candidates: "regs 40, spill 0 B, shared 8192 B, threads 256, occupancy 0.75,
   * waves 1.2" (what the driver reports and the occupancy that implies); "" otherwise. */
  char resources[192];
} mfx_trial;

/* A synthetic objective instead of building and timing (strategy studies,
 * tests): seconds for cfg, or <= 0 to record the config as an error. */
typedef double (*mfx_objective_fn)(void *user, const mfx_config *cfg);

typedef struct {
  /* Where candidates run: NULL or "cpu" this CPU; "emulate" the GPU template
   * through the compiler's CPU emulation (mfx_gpu_emulate_compile); "cuda" or
   * "cuda:N" a GPU: candidates are compiled to PTX on the host and measured
   * by a worker process (forked before CUDA is initialised, restarted after
   * a sticky error or a timeout) with CUDA events. */
  const char *target;
  int jobs;              /* builder threads (default 1; 0 means 1) */
  double timeout_s;      /* > 0: run each candidate in a child process killed
                            after this long; 0: in this process */
  int threads;           /* kernel thread pool size; 0: one per CPU */
  uint64_t input_seed;   /* random inputs of the check (default 1) */
  int rank;              /* stamped on every trial (the MPI rank) */
  mfx_measure_options measure;
  mfx_launch_fn launch;  /* NULL: mfx_op_kernel_run */
  void *launch_user;
  mfx_measure_fn measure_fn; /* NULL: mfx_measure_cpu */
  mfx_objective_fn objective; /* non-NULL: no build, no run */
  void *objective_user;
} mfx_runner_options;

void mfx_runner_options_default(mfx_runner_options *o);

typedef struct mfx_runner mfx_runner;

/* Inputs, reference outputs and (in process) a thread pool for one shape. */
mfx_status mfx_runner_create(const mfx_op *op, const int64_t *dims,
                             const mfx_runner_options *o, mfx_runner **out);
void mfx_runner_destroy(mfx_runner *r);
/* Build the n configs in parallel, then check and time each in turn;
 * calls done (if not NULL) as each trial finishes. Failures of candidates
 * are trials, not a failed status. */
typedef void (*mfx_trial_done_fn)(void *user, int i, const mfx_trial *t);
mfx_status mfx_runner_evaluate(mfx_runner *r, int n, const mfx_config *cfgs, mfx_trial *out,
                               mfx_trial_done_fn done, void *user);

/* ---- the target key -------------------------------------------------------------- */

typedef struct {
  char target[16];   /* "cpu" */
  char arch[192];    /* "x86_64 avx2,fma flags:<hash of the full flag list>" */
  char device[192];  /* "AMD EPYC ... (2 cores)" */
  char version[64];  /* "mfx 0.1.0 llvm 14.0.6" */
} mfx_tune_target;

/* The fingerprint of a target (mfx/target.h):
 *   cpu         this host (arch: machine, SIMD flags, flag hash)
 *   emulate     the GPU templates emulated on this host
 *   cuda[:N]    GPU N: arch "sm_XX", device "NAME, S SMs, M MiB, driver X.Y"
 *               (asked in a child process: this process never initialises CUDA)
 * cuda:sm_XX names no device and is refused. */
mfx_status mfx_tune_target_get(const char *name, mfx_tune_target *out);

/* What a record is keyed by: op (with its dtypes), dims, target. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_tune_target target;
} mfx_tune_key;

mfx_status mfx_tune_key_init(mfx_tune_key *key, const mfx_op *op, const int64_t *dims,
                             const char *target);
/* "M=64,N=64,K=64" and "X:f32,W:f32->Y:f32". */
void mfx_tune_key_dims_text(const mfx_tune_key *key, char *buf, size_t size);
void mfx_tune_key_dtypes_text(const mfx_op *op, char *buf, size_t size);

/* ---- the database ---------------------------------------------------------------- */

#define MFX_TUNE_DB_SCHEMA 3

typedef struct mfx_tune_db mfx_tune_db;

/* Open or create (with its directory's parent existing). A file that is not
 * SQLite, an SQLite file of another application, or one written by a newer
 * schema is MFX_ERR_FORMAT with a message that says which. */
mfx_status mfx_tune_db_open(const char *path, mfx_tune_db **out);
/* The same, but MFX_ERR_NOT_FOUND (nothing created) when there is no file. */
mfx_status mfx_tune_db_open_existing(const char *path, mfx_tune_db **out);
/* For lookups only: SQLITE_OPEN_READONLY, no schema or journal writes, so a
 * shared read-only database works; an empty or older file is MFX_ERR_FORMAT.
 * Ok trials without a positive time are never a best. */
mfx_status mfx_tune_db_open_readonly(const char *path, mfx_tune_db **out);
void mfx_tune_db_close(mfx_tune_db *db);
const char *mfx_tune_db_path_of(const mfx_tune_db *db);

/* Commit one trial (its own transaction; waits and retries while another
 * writer holds the database). session names the tuning run. */
mfx_status mfx_tune_db_add_trial(mfx_tune_db *db, const mfx_tune_key *key, const char *session,
                                 const mfx_trial *t);
/* The fastest OK trial of the key; *found = 0 when none. */
mfx_status mfx_tune_db_best(mfx_tune_db *db, const mfx_tune_key *key, mfx_trial *best,
                            int *found);
/* Every trial of the key, oldest first; stop early by returning non-zero. */
typedef int (*mfx_trial_visit_fn)(void *user, const mfx_trial *t);
mfx_status mfx_tune_db_trials(mfx_tune_db *db, const mfx_tune_key *key, mfx_trial_visit_fn fn,
                              void *user);
mfx_status mfx_tune_db_count(mfx_tune_db *db, const mfx_tune_key *key, int *trials);

/* One tuned key, for listings. */
typedef struct {
  char op[32];
  char dims[160];
  char dtypes[160];
  mfx_tune_target target;
  int trials, ok, errors, wrong;
  double best_s;          /* 0 when no OK trial */
  char best_config[512];
} mfx_tune_task_info;

typedef int (*mfx_task_visit_fn)(void *user, const mfx_tune_task_info *t);
mfx_status mfx_tune_db_list(mfx_tune_db *db, mfx_task_visit_fn fn, void *user);

/* JSON lines, one trial per line with its whole key. Import is one
 * transaction and skips trials already present. */
mfx_status mfx_tune_db_export(mfx_tune_db *db, FILE *out, int *count);
mfx_status mfx_tune_db_import(mfx_tune_db *db, FILE *in, const char *name, int *added,
                              int *skipped);
/* SVG: best-so-far time against trial number for one key. */
mfx_status mfx_tune_db_plot(mfx_tune_db *db, const mfx_tune_key *key, FILE *out);

/* ---- what the compiler front-ends call ------------------------------------------- */

typedef enum {
  MFX_TUNE_TUNED,   /* a record of exactly this key */
  MFX_TUNE_NEAREST, /* same op and target, the nearest tuned dims (log space) */
  MFX_TUNE_DEFAULT, /* the template default */
} mfx_tune_source;

const char *mfx_tune_source_name(mfx_tune_source s); /* "tuned", "nearest tuned shape", ... */

typedef struct {
  mfx_config cfg;
  mfx_tune_source source;
  double median_s;                      /* of the record used; 0 for the default */
  int64_t tuned_dims[MFX_OP_MAX_DIMS];  /* the dims of the record used */
  char why[400];                        /* for a person */
} mfx_tune_choice;

/* The config to compile key with. db may be NULL (no database). */
mfx_status mfx_tune_choose(mfx_tune_db *db, const mfx_tune_key *key, mfx_tune_choice *out);
/* The database path: `given` when not NULL, else $MFX_DB, else
 * ~/.cache/mfx/tune.db (creating ~/.cache/mfx). */
mfx_status mfx_tune_db_path(const char *given, char *buf, size_t size);
/* mfx_tune_choose for the host CPU with the database at db_path (NULL: the
 * default path); a missing file means the template default. */
mfx_status mfx_tune_lookup(const char *db_path, const mfx_op *op, const int64_t *dims,
                           mfx_tune_choice *out);
/* The same for a target (mfx_tune_target_get: cpu, emulate, cuda, cuda:N),
 * so a GPU gets the records of that device. */
mfx_status mfx_tune_lookup_for(const char *db_path, const mfx_op *op, const int64_t *dims,
                               const char *target, mfx_tune_choice *out);

/* ---- tuning ------------------------------------------------------------------------ */

typedef struct {
  int done, total;          /* trials of the key so far (resumed ones too) / budget */
  int resumed;              /* of which loaded from the database */
  const mfx_trial *last;    /* NULL for the first report after resuming */
  int have_best;
  mfx_config best;
  double best_s;
  double elapsed_s, eta_s;  /* eta_s < 0 while unknown */
} mfx_tune_progress;

typedef void (*mfx_tune_progress_fn)(void *user, const mfx_tune_progress *p);

typedef struct {
  mfx_strategy strategy;
  int trials;               /* budget: configs measured for the key (with --resume,
                               those already in the database count) */
  int resume;               /* continue: never remeasure a config of the key */
  int batch;                /* candidates per round; 0: from jobs */
  uint64_t seed;
  const char *session;      /* NULL: a fresh random id */
  mfx_runner_options runner;
  mfx_tune_progress_fn progress;
  void *progress_user;
} mfx_tune_options;

void mfx_tune_options_default(mfx_tune_options *o);

typedef struct {
  int trials;               /* measured by this run */
  int resumed;
  int ok, errors, wrong;    /* of this run's trials */
  int invalid;              /* configs the template refused */
  uint64_t space_size;
  int exhausted;            /* every valid config was measured */
  int have_best;            /* over the key, resumed trials included */
  mfx_config best;
  double best_s, best_spread;
  double elapsed_s;
  char session[40];
} mfx_tune_summary;

/* Tune key into db (which may be NULL: nothing is recorded or resumed). */
mfx_status mfx_tune(mfx_tune_db *db, const mfx_tune_key *key, const mfx_tune_options *o,
                    mfx_tune_summary *out);

/* ---- MPI: candidates sharded over ranks, gathered on rank 0 --------------------------- */

int mfx_tune_mpi_available(void);
/* MPI_Init; MFX_ERR_DEVICE when this mfx was built without MPI. */
mfx_status mfx_tune_mpi_init(int *argc, char ***argv, int *rank, int *size);
void mfx_tune_mpi_finalize(void);
/* Every rank calls it with the same key and options; only rank 0 opens the
 * database at db_path and writes every rank's trials into it. */
mfx_status mfx_tune_mpi(const char *db_path, const mfx_tune_key *key, const mfx_tune_options *o,
                        mfx_tune_summary *out);

#ifdef __cplusplus
}
#endif
#endif
