/* mfx operators: for each op, its interface (dims, inputs, outputs), its
 * tensor-expression definition with a schedule template whose knobs the
 * tuner searches, a default configuration, and a plain-C reference. */
#ifndef MFX_OPS_H
#define MFX_OPS_H

#include "mfx/compiler.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MFX_OP_MAX_DIMS 8
#define MFX_OP_MAX_TENSORS 4
#define MFX_OP_MAX_KNOBS 16
#define MFX_KNOB_MAX_CHOICES 16

/* One tensor of an op's interface; its shape is named by the op's dims. */
typedef struct {
  const char *name;
  mfx_dtype dtype;
  int ndim;
  const char *shape[MFX_MAX_DIMS]; /* dim names, e.g. {"M", "K"} */
  const char *about;
} mfx_op_tensor;

typedef struct {
  const char *name;
  const char *about;
  int64_t def;                     /* template default */
  int n_choices;                   /* the values the tuner may pick */
  int64_t choices[MFX_KNOB_MAX_CHOICES];
} mfx_knob;

/* Knob values: missing knobs take the default. */
typedef struct {
  int n;
  char names[MFX_OP_MAX_KNOBS][32];
  int64_t values[MFX_OP_MAX_KNOBS];
} mfx_config;

typedef struct mfx_op mfx_op;
struct mfx_op {
  const char *name;
  const char *about;
  int n_dims;
  const char *dims[MFX_OP_MAX_DIMS];
  int n_inputs;
  mfx_op_tensor inputs[MFX_OP_MAX_TENSORS];
  int n_outputs;
  mfx_op_tensor outputs[MFX_OP_MAX_TENSORS];
  int n_knobs;
  mfx_knob knobs[MFX_OP_MAX_KNOBS];
  /* Build TE and schedule. cfg is complete (every knob set, validated). */
  mfx_status (*build)(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                      mfx_schedule **out);
  /* Plain C, independent of the compiler. outputs are allocated. */
  void (*reference)(const int64_t *dims, const mfx_array *inputs, mfx_array *outputs);
  /* Fill input i with valid random data (codes 0/1, shifts 0..15, ...). */
  void (*random_input)(int i, const int64_t *dims, mfx_array *a, uint64_t *rng);
  /* The GPU schedule template (targets "cuda:sm_XX"): its own knobs, and a
   * build whose stages are all bound to blockIdx/threadIdx (no parallel
   * loops), within 1024 threads and 48 KiB of static shared memory per
   * block; configs beyond those limits are refused by the build. Each root
   * stage becomes one kernel (mfx_split_kernels). */
  int n_gpu_knobs;
  mfx_knob gpu_knobs[MFX_OP_MAX_KNOBS];
  mfx_status (*build_gpu)(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                          mfx_schedule **out);
  int64_t int_tolerance; /* |got - want| allowed for integer outputs, on every target;
                          * 0: exact (1 for q16_gelu: its erf is a polynomial within
                          * 1.5 ulp of libm's, see ops/elementwise.c) */
  /* The tolerance of float outputs (relative to the largest reference value)
   * that a config's results need where it rounds more than f32 does (linear's
   * tensor-core form, mma=1 with TF32 inputs: 4e-3); a check uses the larger
   * of this and its own. NULL, or 0 for a config: the check's own. */
  double (*float_tolerance)(const mfx_config *cfg);
};

int mfx_op_count(void);
const mfx_op *mfx_op_at(int i);
const mfx_op *mfx_op_find(const char *name); /* NULL if unknown */

/* Parse "M=64,N=32,K=16" into dims (in the op's dim order). Every dim must be
 * given exactly once, positive. */
mfx_status mfx_op_parse_dims(const mfx_op *op, const char *text, int64_t *dims);
/* Every input and output under dims fits in 2^62 bytes (mfx_op_parse_dims
 * checks this); _memory also that each fits one allocation and all of them
 * this machine's memory (MFX_ERR_NOMEM saying what they would need). */
mfx_status mfx_op_check_sizes(const mfx_op *op, const int64_t *dims);
mfx_status mfx_op_check_memory(const mfx_op *op, const int64_t *dims);
/* The work of one run of op under dims (its line in ops/op_list.h: a factor
 * times a product of dims, e.g. 2 M N K flops for linear), *unit its rate's
 * unit ("GFLOP/s"); 0 for an op that is not listed. */
double mfx_op_work(const mfx_op *op, const int64_t *dims, const char **unit);
/* Shape of an interface tensor under dims. */
void mfx_op_tensor_shape(const mfx_op *op, const mfx_op_tensor *t, const int64_t *dims,
                         int64_t *shape);

/* Configurations. */
void mfx_config_default(const mfx_op *op, mfx_config *cfg);
/* Set one knob (must exist and take one of its choices). */
mfx_status mfx_config_set(const mfx_op *op, mfx_config *cfg, const char *name, int64_t v);
/* Parse a JSON object {"knob": value, ...} over the defaults. */
mfx_status mfx_config_parse_json(const mfx_op *op, const char *json, mfx_config *cfg);
/* Write {"knob":value,...} into buf. */
void mfx_config_to_json(const mfx_config *cfg, char *buf, size_t size);
int64_t mfx_config_get(const mfx_config *cfg, const char *name); /* -1 if absent */
/* Read n knobs by name into values, in order; MFX_ERR_INVALID naming `what`
 * (the op or template) and the first knob cfg does not hold. What the
 * templates' typed knob views (ops/knobs.h) are filled by. */
mfx_status mfx_config_read(const mfx_config *cfg, const char *what, int n,
                           const char *const *names, int64_t *values);

/* Targets. "cpu" (or NULL) uses op->knobs and op->build; "cuda:sm_XX" (any
 * name starting with "cuda") op->gpu_knobs and op->build_gpu. The plain
 * mfx_config_* functions above are the "cpu" ones. */
int mfx_target_is_gpu(const char *target);
/* The knob list of the target (*n its length). */
const mfx_knob *mfx_op_knobs(const mfx_op *op, const char *target, int *n);
void mfx_config_default_for(const mfx_op *op, const char *target, mfx_config *cfg);
mfx_status mfx_config_set_for(const mfx_op *op, const char *target, mfx_config *cfg,
                              const char *name, int64_t v);
mfx_status mfx_config_parse_json_for(const mfx_op *op, const char *target, const char *json,
                                     mfx_config *cfg);
/* The target's defaults with every knob of cfg (NULL: none) validated on
 * top of them. */
mfx_status mfx_config_complete_for(const mfx_op *op, const char *target, const mfx_config *cfg,
                                   mfx_config *out);
/* Build the op's schedule for target: cfg completed (mfx_config_complete_for),
 * dims checked, then the target's template. */
mfx_status mfx_op_build_for(const mfx_op *op, const char *target, mfx_arena *a,
                            const int64_t *dims, const mfx_config *cfg, mfx_schedule **out);
/* The GPU program of an op: mfx_op_build_for a cuda target, lowered (named
 * after the op) and split into kernels, in arena a. */
mfx_status mfx_op_gpu_program(const mfx_op *op, mfx_arena *a, const int64_t *dims,
                              const mfx_config *cfg, mfx_gpu_program **out);

/* Build + lower + JIT for the host CPU. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_config cfg;
  mfx_arena *arena;
  mfx_schedule *schedule;
  mfx_func *func;
  mfx_jit_kernel *jit;
} mfx_op_kernel;

mfx_status mfx_op_compile(const mfx_op *op, const int64_t *dims, const mfx_config *cfg,
                          mfx_op_kernel *out);
void mfx_op_kernel_free(mfx_op_kernel *k);
/* The same for a target: "cpu" (or NULL) as mfx_op_compile; "emulate" the
 * op's GPU template through the compiler's CPU emulation (cfg holds GPU
 * knobs); the kernel runs with mfx_op_kernel_run either way. */
mfx_status mfx_op_compile_for(const mfx_op *op, const char *target, const int64_t *dims,
                              const mfx_config *cfg, mfx_op_kernel *out);
/* The op's GPU template built to PTX for sm_target ("cuda:sm_90") as a
 * one-kernel artifact image (*image malloc'd: free() it), named
 * "<op>_<suffix>": what mfx run, bench and the GPU tuner load on a device. */
mfx_status mfx_op_gpu_image(const mfx_op *op, const char *sm_target, const int64_t *dims,
                            const mfx_config *cfg, const char *suffix, void **image,
                            size_t *size);
/* Run with inputs then outputs (shapes and dtypes checked). */
mfx_status mfx_op_kernel_run(const mfx_op_kernel *k, const mfx_kernel_env *env,
                             mfx_array *inputs, mfx_array *outputs);

/* Allocate arrays for the op's inputs/outputs under dims. */
mfx_status mfx_op_alloc_inputs(const mfx_op *op, const int64_t *dims, mfx_array *inputs);
mfx_status mfx_op_alloc_outputs(const mfx_op *op, const int64_t *dims, mfx_array *outputs);
void mfx_op_random_inputs(const mfx_op *op, const int64_t *dims, uint64_t seed,
                          mfx_array *inputs);

/* Compare output against reference: integers exact, f32 within
 * tol * max|ref| (NaN equals NaN and an infinity the same infinity; any
 * other difference involving them is a mismatch). Reports the worst
 * errors and the first element that differs (first_index -1: none). */
typedef struct {
  double max_abs_err, max_rel_err;
  int64_t worst_index;
  int ok;
  int64_t first_index;
  double first_got, first_want;
} mfx_compare;
mfx_compare mfx_compare_arrays(const mfx_array *got, const mfx_array *want, double tol);
/* The same, with integers allowed to differ by up to int_tol (>= 0) each:
 * for ops whose integer outputs may differ by design (the op's int_tolerance). */
mfx_compare mfx_compare_arrays_int(const mfx_array *got, const mfx_array *want, double tol,
                                   int64_t int_tol);

/* xorshift64*: the reproducible generator used for random inputs. */
uint64_t mfx_rng_next(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif
