/* What `mfx experts`, `mfx loss` and `mfx demo` share: their option
 * parsing (--name V or --name=V), measuring each expert of a layer into a
 * latency table, printing it, and plotting it as SVG (mfx_experts.c); and
 * the sections of the demo (mfx_demo_*.c). */
#ifndef MFX_TOOL_MOE_CLI_H
#define MFX_TOOL_MOE_CLI_H

#include <stdio.h>

#include "mfx/moe.h"
#include "mfx_cli.h"

/* ---- options ---------------------------------------------------------------- */

/* Whole number / number in [lo, hi] for option `flag`; 0 or exit status 2. */
int tool_flag_int(const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out);
int tool_flag_double(const char *flag, const char *text, double lo, double hi, double *out);
/* "1.5,2,3" into at most max finite numbers; 0 or exit status 2. */
int tool_flag_doubles(const char *flag, const char *text, double *out, int max, int *count);
/* A tool_arg check for --experts LIST: the kinds into the tool_experts_request
 * given as user (its kinds and experts). */
int tool_check_expert_kinds(void *user, const char *option, const char *value, char *why,
                            size_t size);

/* ---- measuring experts ---------------------------------------------------------- */

typedef struct {
  int64_t tokens;      /* N: points at N/8, N/4, N/2, N */
  int dim, hidden;
  int experts;
  mfx_expert_kind kinds[MFX_MOE_MAX_EXPERTS];
  int64_t at_tokens;   /* 0: N / experts (a balanced load) */
  mfx_profile_options profile;
  mfx_moe_config_fn choose_config; /* NULL: template defaults */
  void *choose_user;
  const char *progress; /* prefix of the stderr progress lines; NULL: quiet */
  const char *target;   /* the layer's target (mfx_moe_spec.target); NULL: cpu */
} tool_experts_request;

/* target is cpu, cuda, cuda:N or emulate (or auto, when allow_auto); else a
 * usage error naming cmd (exit status 2). */
int tool_check_layer_target(const char *cmd, const char *target, int allow_auto);
/* The measured token counts for N: N/8, N/4, N/2, N (at least 1, distinct). */
int tool_experts_points(int64_t tokens, int64_t *points);
/* Measures every expert into t (device key, fits, alpha). Exit status. */
int tool_experts_measure(const tool_experts_request *r, mfx_pool *pool, mfx_latency_table *t);
void tool_experts_print(FILE *out, const mfx_latency_table *t);
/* SVG of seconds against tokens per expert: measured polylines, fit lines. */
int tool_experts_plot(const char *path, const mfx_latency_table *t);

/* ---- the demo's sections ------------------------------------------------------ */

#define TOOL_DEMO_MAX_KERNELS 8

/* One kernel of the layer at the balanced load, as the demo tunes and times it. */
typedef struct {
  const char *role; /* "router", "mult fc1", "shift fc2", ... */
  const mfx_op *op;
  int64_t dims[3];  /* M, N, K */
} tool_demo_kernel;

typedef struct {
  int n;
  tool_demo_kernel kernels[TOOL_DEMO_MAX_KERNELS];
} tool_demo_plan;

/* mfx_demo_tune.c: brief tuning through the autotuner, and the layer's
 * config chooser (an mfx_moe_config_fn over the tuning database). */
typedef struct tool_demo_tuning tool_demo_tuning;
/* target: where the layer runs (cpu, cuda, cuda:N, emulate): the kernels
 * are tuned there and the layer's chooser asks that device's records. */
int tool_demo_tune(const char *db_path, int trials, const tool_demo_plan *plan,
                   const char *target, tool_demo_tuning **out);
mfx_status tool_demo_choose(void *tuning, const char *target, const mfx_op *op,
                            const int64_t *dims, mfx_config *cfg);
/* How many configs the chooser handed out: tuned, nearest tuned shape, default. */
/* The chooser alone, over the database at db_path (NULL: $MFX_DB, else the
 * default; a missing file: template defaults), for the target's device. */
int tool_demo_tuning_open(const char *db_path, const char *target, tool_demo_tuning **out);
void tool_demo_tuning_sources(const tool_demo_tuning *t, int counts[3]);
void tool_demo_tuning_free(tool_demo_tuning *t);

/* mfx_demo_kernels.c: each kernel against its dense baseline; the layer's
 * compiled kernels ahead of time into one artifact. */
int tool_demo_kernel_table(const tool_demo_plan *plan, tool_demo_tuning *tuning, mfx_pool *pool,
                           const mfx_latency_table *latency);
int tool_demo_artifact(const mfx_moe *moe, const char *path);

/* mfx_demo_ops.c: every op on a moderate shape against its reference.
 * Returns the number of ops that failed. */
int tool_demo_ops_table(mfx_pool *pool);

/* The subcommands (mfx.c lists them); each prints its own --help. */
int tool_cmd_experts(int argc, char **argv);
int tool_cmd_loss(int argc, char **argv);
int tool_cmd_compile_layer(int argc, char **argv); /* mfx_compile_layer.c */

#endif
