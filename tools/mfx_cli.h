/* The mfx command-line tool: what its subcommands share. Argument parsing,
 * error reporting, op resolution, input/output files, timing and the
 * per-op operation counts used for rates.
 *
 * Exit statuses: 0 success, 1 failure (a file, the compiler, a mismatch),
 * 2 usage error (the command line itself is wrong). */
#ifndef MFX_TOOL_CLI_H
#define MFX_TOOL_CLI_H

#include <stdint.h>

#include "mfx/artifact.h"
#include "mfx/json.h"
#include "mfx/ops.h"
#include "mfx_argparse.h"

#define TOOL_EXIT_OK 0
#define TOOL_EXIT_FAIL 1
#define TOOL_EXIT_USAGE 2

#define TOOL_VERSION "0.1.0"
#define TOOL_MAX_BINDINGS 16
#define TOOL_DEFAULT_TOL 1e-4

/* The options a subcommand accepts (a bit set). */
enum {
  TOOL_OPT_DIMS = 1u << 0,
  TOOL_OPT_CONFIG = 1u << 1,
  TOOL_OPT_EMIT = 1u << 2,
  TOOL_OPT_IN = 1u << 3,
  TOOL_OPT_OUT = 1u << 4,
  TOOL_OPT_THREADS = 1u << 5,
  TOOL_OPT_CHECK = 1u << 6,
  TOOL_OPT_REPEAT = 1u << 7,
  TOOL_OPT_SEED = 1u << 8,
  TOOL_OPT_TOL = 1u << 9,
  TOOL_OPT_DB = 1u << 10,
  TOOL_OPT_TARGET = 1u << 11,
  TOOL_OPT_JSON = 1u << 12,
};

/* --in NAME=FILE or --out NAME=FILE. */
typedef struct {
  const char *name; /* points into its own copy of the argument */
  const char *path;
  char text[512];
} tool_binding;

typedef struct {
  const char *command;
  const char *op_name;     /* the positional argument, NULL if none */
  const char *dims_text;
  const char *config_json;
  const char *emit;
  int n_in, n_out;
  tool_binding in[TOOL_MAX_BINDINGS];
  tool_binding out[TOOL_MAX_BINDINGS];
  int threads;             /* 0: one per CPU */
  int check;
  int repeat;              /* 0: run once, untimed */
  uint64_t seed;
  double tol;
  int help;                /* --help given */
  const char *db_path;     /* --db; NULL: $MFX_DB, else ~/.cache/mfx/tune.db */
  const char *target;      /* --target (checked by mfx_target_parse); NULL: cpu */
  int json;                /* --json: one JSON object */
} tool_args;

/* What every compile needs, resolved from the arguments. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_config cfg;
  char config_why[480];    /* where cfg came from: --config, tuned, nearest, default */
  const char *knobs;       /* the target whose knobs cfg holds: "cpu", "cuda..." or "emulate" */
} tool_problem;

/* Print "mfx: error: <message>" to stderr; returns `code`. */
int tool_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with the library's last error appended. */
int tool_error_status(int code, const char *what);

/* Parse argv (argv[0] is the subcommand) accepting the `allowed` options
 * and one positional OP, through the shared parser (mfx_argparse.h): every
 * error is reported as there, with exit status 2. --help sets out->help (the
 * caller prints its usage). Returns 0 or an exit status after printing the
 * error. */
int tool_parse_args(int argc, char **argv, unsigned allowed, tool_args *out);
/* The same with the command's own options too (a table ending in a NULL
 * name, pointing into the caller's variables), e.g. mfx lower's --passes. */
int tool_parse_args_with(int argc, char **argv, unsigned allowed, const tool_arg *extra,
                         tool_args *out);

/* Ends a JSON value a command wrote with the shared writer (mfx/json.h):
 * says on stderr when numbers were NaN or infinite (written as null, JSON
 * has no NaN); 0, or exit status 1 naming `what` when writing failed. */
int tool_json_finish(mfx_json *w, const char *what);

/* Op by name (listing known ops when unknown), --dims and --config. */
int tool_resolve_problem(const tool_args *args, tool_problem *out);
/* Without --config, take the tuning database's choice (see mfx tune). */
int tool_apply_tuned_config(const tool_args *args, tool_problem *p);
int tool_find_op(const char *name, const mfx_op **out);

/* Text helpers. */
void tool_format_shape(const int64_t *shape, int ndim, char *buf, size_t size);
void tool_format_dims(const mfx_op *op, const int64_t *dims, char *buf, size_t size);
/* "M=64,N=64,K=64"-style list of the op's dim names, for messages. */
void tool_format_dim_names(const mfx_op *op, char *buf, size_t size);

/* Load the --in files over the inputs (already allocated and filled),
 * checking each file's dtype and shape. */
int tool_load_inputs(const tool_problem *p, const tool_args *args, mfx_array *inputs);
/* Check that every --in/--out names a tensor of the op, at most once. */
int tool_check_bindings(const mfx_op *op, const tool_args *args);
int tool_save_outputs(const tool_problem *p, const tool_args *args, const mfx_array *outputs);

/* Timing: call fn(closure) repeatedly; returns the median seconds. Runs at
 * least min_runs times and until min_seconds have passed, at most max_runs. */
typedef int (*tool_timed_fn)(void *closure);
int tool_measure(tool_timed_fn fn, void *closure, int min_runs, int max_runs,
                 double min_seconds, double *median_seconds, int *runs);

/* Arithmetic operations one call of the op performs (0 when not meaningful)
 * and the unit for rates ("GFLOP/s", "Gop/s"). */
double tool_op_work(const mfx_op *op, const int64_t *dims, const char **unit);

/* Compare every output with the reference; the worst errors over outputs. */
int tool_compare_outputs(const mfx_op *op, const int64_t *dims, const mfx_array *inputs,
                         const mfx_array *outputs, double tol, mfx_compare *worst);
void tool_free_arrays(mfx_array *arrays, int n);

/* One launch of a compiled kernel, as a tool_timed_fn closure. */
typedef struct {
  const mfx_op_kernel *kernel;
  mfx_kernel_env env;
  mfx_array *inputs;
  mfx_array *outputs;
} tool_launch;
int tool_launch_once(void *launch);

/* Element i of an array as text ("1.5", "-3"). */
void tool_format_element(const mfx_array *a, int64_t i, char *buf, size_t size);

/* Subcommands: argv[0] is the subcommand name. */
int tool_cmd_ops(int argc, char **argv);
int tool_cmd_lower(int argc, char **argv);
int tool_cmd_run(int argc, char **argv);
int tool_cmd_bench(int argc, char **argv); /* mfx_bench.c */
int tool_cmd_demo(int argc, char **argv);
int tool_cmd_tune(int argc, char **argv); /* mfx_tune.c */
int tool_cmd_db(int argc, char **argv);   /* mfx_db.c */
int tool_cmd_cache(int argc, char **argv); /* mfx_cache.c */
int tool_cmd_compile(int argc, char **argv); /* mfx_compile.c */

/* Kernels written as TE text (FILE.te): the name ends in ".te"; the whole
 * file as a NUL-terminated string (malloc'd; NULL if unreadable or not text). */
int tool_is_te_file(const char *name);
char *tool_read_file(const char *path);
/* mfx run FILE.te (mfx_run_te.c); tool_args_te_file: the index in argv of a
 * FILE.te argument, 0 if none. */
int tool_args_te_file(int argc, char **argv);
int tool_cmd_run_te(int argc, char **argv);
/* mfx compile FILE.te: a kernel name from the file name ([A-Za-z0-9_]); k
 * built (name and target set by the caller) with the default schedule. */
void tool_te_default_name(const char *path, char *out, size_t size);
/* mfx_tune_te.c: mfx tune FILE.te, and FILE.te compiled with the auto-scheduler
 * (the tuned config of k->target, else its default) into k. */
int tool_cmd_tune_te(int argc, char **argv);
int tool_te_autosched_kernel(const char *path, const char *db, mfx_artifact_kernel *k);
/* mfx run FILE.te --target cuda[:N]|emulate: the config of the GPU schedule, and why. */
int tool_te_run_config(const mfx_op *op, const int64_t *dims, const char *target,
                       const char *db, mfx_config *cfg, char *why, size_t size);
int tool_te_emit_code(const char *path, const char *db, const char *target, int what,
                      char **data, size_t *size); /* what: an mfx_build_emit */

/* The usage text of one subcommand (NULL: unknown). */
const char *tool_usage(const char *command);

#endif
