/* mfx run FILE.te: a kernel written as TE text, compiled for this CPU with
 * the default schedule (every loop serial, as `mfx lower FILE.te` prints
 * it; mfx tune and mfx compile FILE.te auto-schedule it), run on .npy or
 * seeded random inputs, and with --check compared with the IR interpreter
 * (compiler/interp.c), the reference of any kernel. With --target cuda[:N]
 * or emulate: its auto-scheduled GPU schedule with the tuned config (as
 * tool_te_run_config chooses), on the device or the GPU emulation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx/autosched.h"
#include "mfx/device.h"
#include "mfx/target.h"
#include "mfx_cli.h"

#define TOOL_TE_PREVIEW 4
#define TOOL_TE_MAX_ARGS 64

static const char tool_run_te_usage[] =
    "usage: mfx run FILE.te [--kernel NAME] [options]\n"
    "\n"
    "Compile a kernel written as TE text (see mfx help lower) for this CPU with the\n"
    "default schedule (every loop serial; mfx tune/compile FILE.te auto-schedule it)\n"
    "and run it. Inputs are the placeholders, outputs the computes nothing reads.\n"
    "  --kernel NAME           compute only tensor NAME (an output, or any compute of\n"
    "                          the file: it becomes the only output)\n"
    "  --in NAME=FILE.npy      an input (others get seeded random data: f32 in\n"
    "                          [-1, 1), integers over their whole range)\n"
    "  --out NAME=FILE.npy     save an output\n"
    "  --threads N             thread pool size (default: one per CPU)\n"
    "  --check                 compare with the IR interpreter (checked before the\n"
    "                          kernel runs: loads out of bounds, division by zero and\n"
    "                          undefined values are errors); integers exactly, f32\n"
    "                          within --tol; exit 1 on mismatch\n"
    "  --tol T                 relative tolerance of --check for f32 (default 1e-4 of\n"
    "                          the largest |value|: the compiled code fuses x*y+z and\n"
    "                          may approximate exp, erf, tanh)\n"
    "  --repeat R              time R runs after one warm-up; print the median\n"
    "  --seed S                seed of the random inputs (default 1)\n"
    "  --target T              cpu (default: the default schedule), cuda, cuda:N (the\n"
    "                          auto-scheduled GPU schedule built to PTX for the device,\n"
    "                          timed with CUDA events) or emulate (that schedule run by\n"
    "                          the GPU emulation on this CPU); with the tuned config:\n"
    "                          this device's record, its sm_XX's nearest, the emulated\n"
    "                          one, else the auto-scheduler's default\n"
    "  --db PATH               the tuning database of --target (default $MFX_DB, else\n"
    "                          ~/.cache/mfx/tune.db)\n";

typedef struct {
  const char *path;
  const char *kernel_name;  /* --kernel, NULL: every output */
  char *text;
  mfx_arena *arena;
  mfx_schedule *s;
  mfx_func *fn;
  mfx_jit_kernel *jit;
  mfx_pool *pool;
  mfx_kernel_env env;
  mfx_array inputs[TOOL_TE_MAX_ARGS];
  mfx_array outputs[TOOL_TE_MAX_ARGS];
  mfx_array want[TOOL_TE_MAX_ARGS]; /* the interpreter's, with --check */
} tool_te_run;

/* ---- the command line ------------------------------------------------------------ */

int tool_args_te_file(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '-' && strchr(argv[i], '=') == NULL && tool_is_te_file(argv[i])) return i;
  return 0;
}

/* ---- the kernel ------------------------------------------------------------------ */

static mfx_tensor *tool_te_find_compute(mfx_tensor *t, const char *name, int depth) {
  if (t == NULL || t->is_placeholder || depth > 256) return NULL;
  if (strcmp(t->buf->name, name) == 0) return t;
  for (int i = 0; i < t->n_inputs; i++) {
    mfx_tensor *found = tool_te_find_compute(t->inputs[i], name, depth + 1);
    if (found != NULL) return found;
  }
  return NULL;
}

static void tool_te_output_names(const mfx_schedule *s, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n_outputs && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", s->outputs[i]->buf->name);
    if (n < 0) return;
    used += (size_t)n;
  }
}

/* --kernel NAME: a schedule of the same inputs with NAME its only output. */
static int tool_te_pick_kernel(tool_te_run *r) {
  if (r->kernel_name == NULL) return 0;
  mfx_tensor *t = NULL;
  for (int i = 0; i < r->s->n_outputs && t == NULL; i++)
    t = tool_te_find_compute(r->s->outputs[i], r->kernel_name, 0);
  if (t == NULL) {
    char names[512];
    tool_te_output_names(r->s, names, sizeof names);
    return tool_error(TOOL_EXIT_FAIL, "--kernel %s: %s has no compute named %s (its outputs: "
                      "%s)", r->kernel_name, r->path, r->kernel_name, names);
  }
  mfx_schedule *one = NULL;
  if (mfx_sched_create(r->arena, r->s->n_inputs, r->s->inputs, 1, &t, &one) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--kernel");
  r->s = one;
  return 0;
}

static int tool_te_build(tool_te_run *r) {
  r->text = tool_read_file(r->path);
  if (r->text == NULL) return tool_error(TOOL_EXIT_FAIL, "cannot read TE text from %s", r->path);
  r->arena = mfx_arena_create();
  if (r->arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  if (mfx_te_parse(r->arena, r->text, r->path, &r->s) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "parsing");
  int rc = tool_te_pick_kernel(r);
  if (rc != 0) return rc;
  if (r->s->n_inputs + r->s->n_outputs > TOOL_TE_MAX_ARGS)
    return tool_error(TOOL_EXIT_FAIL, "%s: %d inputs and outputs, at most %d are supported",
                      r->path, r->s->n_inputs + r->s->n_outputs, TOOL_TE_MAX_ARGS);
  return 0;
}

static int tool_te_compile(tool_te_run *r, int threads) {
  const char *name = r->kernel_name != NULL ? r->kernel_name : "kernel";
  if (mfx_lower(r->s, name, &r->fn) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "lowering");
  if (mfx_jit_compile(r->fn, &r->jit) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  if (mfx_pool_create(threads, &r->pool) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "creating the thread pool");
  mfx_kernel_env_init(&r->env, r->pool);
  printf("threads  %d (the default schedule runs serially)\n", mfx_pool_threads(r->pool));
  return 0;
}

/* ---- inputs and outputs ------------------------------------------------------------ */

static int tool_te_find(mfx_tensor *const *ts, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(ts[i]->buf->name, name) == 0) return i;
  return -1;
}

static int tool_te_check_list(const char *option, const tool_binding *b, int n,
                              mfx_tensor *const *ts, int n_ts, const char *what) {
  for (int i = 0; i < n; i++) {
    if (tool_te_find(ts, n_ts, b[i].name) < 0)
      return tool_error(TOOL_EXIT_USAGE, "%s %s=%s: the kernel has no %s named %s", option,
                        b[i].name, b[i].path, what, b[i].name);
    for (int j = 0; j < i; j++)
      if (strcmp(b[i].name, b[j].name) == 0)
        return tool_error(TOOL_EXIT_USAGE, "%s %s given twice", option, b[i].name);
  }
  return 0;
}

static int tool_te_check_bindings(const tool_te_run *r, const tool_args *args) {
  int rc = tool_te_check_list("--in", args->in, args->n_in, r->s->inputs, r->s->n_inputs,
                              "input (placeholder)");
  if (rc == 0)
    rc = tool_te_check_list("--out", args->out, args->n_out, r->s->outputs, r->s->n_outputs,
                            "output");
  return rc;
}

/* Seeded random data by dtype, from the generator of the ops' inputs. */
static void tool_te_fill_random(mfx_array *a, uint64_t *rng) {
  int64_t n = mfx_array_numel(a);
  for (int64_t i = 0; i < n; i++) {
    uint64_t r = mfx_rng_next(rng);
    switch (a->dtype) {
    case MFX_F32: /* 24 random bits: [-1, 1), every value exact */
      ((float *)a->data)[i] = -1.0f + 2.0f * ((float)(r >> 40) * (1.0f / 16777216.0f));
      break;
    case MFX_BOOL: ((uint8_t *)a->data)[i] = (uint8_t)(r & 1u); break;
    default: memcpy((char *)a->data + (size_t)i * mfx_dtype_size(a->dtype), &r,
                    mfx_dtype_size(a->dtype)); /* the low bytes: the whole range */
    }
  }
}

static int tool_same_array_shape(const mfx_array *a, const mfx_buffer *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < b->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

static void tool_te_print_array(const char *role, const mfx_array *a, const char *name) {
  char shape[128];
  tool_format_shape(a->shape, a->ndim, shape, sizeof shape);
  printf("%-8s %s %s %s", role, name, mfx_dtype_name(a->dtype), shape);
}

static int tool_te_load_input(tool_te_run *r, int i, const tool_binding *b) {
  const mfx_buffer *buf = r->s->inputs[i]->buf;
  mfx_array loaded;
  memset(&loaded, 0, sizeof loaded);
  if (mfx_npy_load(b->path, &loaded) != MFX_OK) {
    char what[600];
    snprintf(what, sizeof what, "--in %s=%s", b->name, b->path);
    return tool_error_status(TOOL_EXIT_FAIL, what);
  }
  if (loaded.dtype != buf->dtype || !tool_same_array_shape(&loaded, buf)) {
    char want[128], got[128];
    tool_format_shape(buf->shape, buf->ndim, want, sizeof want);
    tool_format_shape(loaded.shape, loaded.ndim, got, sizeof got);
    tool_error(TOOL_EXIT_FAIL, "--in %s=%s: input %s of %s must be %s %s; the file holds %s %s",
               b->name, b->path, buf->name, r->path, mfx_dtype_name(buf->dtype), want,
               mfx_dtype_name(loaded.dtype), got);
    mfx_array_free(&loaded);
    return TOOL_EXIT_FAIL;
  }
  r->inputs[i] = loaded;
  tool_te_print_array("input", &r->inputs[i], buf->name);
  printf(" from %s\n", b->path);
  return 0;
}

/* Every placeholder: its --in file, else random data (one generator over
 * the inputs in order, seeded by --seed). */
static int tool_te_prepare_inputs(tool_te_run *r, const tool_args *args) {
  uint64_t rng = args->seed ^ 0x9E3779B97F4A7C15ull; /* as mfx_random_inputs: seed 0 is valid */
  for (int i = 0; i < r->s->n_inputs; i++) {
    const mfx_buffer *buf = r->s->inputs[i]->buf;
    int k = -1;
    for (int j = 0; j < args->n_in; j++)
      if (strcmp(args->in[j].name, buf->name) == 0) k = j;
    if (k >= 0) {
      int rc = tool_te_load_input(r, i, &args->in[k]);
      if (rc != 0) return rc;
      continue;
    }
    if (mfx_array_create(&r->inputs[i], buf->dtype, buf->ndim, buf->shape) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "allocating inputs");
    tool_te_fill_random(&r->inputs[i], &rng);
    tool_te_print_array("input", &r->inputs[i], buf->name);
    printf(" random (seed %llu)\n", (unsigned long long)args->seed);
  }
  return 0;
}

static int tool_te_alloc_outputs(tool_te_run *r) {
  for (int o = 0; o < r->s->n_outputs; o++) {
    const mfx_buffer *buf = r->s->outputs[o]->buf;
    if (mfx_array_create(&r->outputs[o], buf->dtype, buf->ndim, buf->shape) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  }
  return 0;
}

/* ---- running, checking, timing ---------------------------------------------------------- */

static int tool_te_launch(void *closure) {
  tool_te_run *r = closure;
  void *args[TOOL_TE_MAX_ARGS];
  int n_in = r->s->n_inputs;
  for (int i = 0; i < n_in; i++) args[i] = r->inputs[i].data;
  for (int o = 0; o < r->s->n_outputs; o++) args[n_in + o] = r->outputs[o].data;
  if (mfx_jit_entry(r->jit)(args, &r->env) != 0)
    return tool_error(TOOL_EXIT_FAIL, "running %s: the kernel could not allocate its "
                      "intermediate buffers", r->path);
  return 0;
}

/* The interpreter's outputs: before the kernel runs, so that a kernel that
 * would read out of bounds is reported rather than run. */
static int tool_te_interpret(tool_te_run *r) {
  if (mfx_interp_run(r->s, r->inputs, r->want) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--check: the IR interpreter");
  return 0;
}

static int tool_te_check(tool_te_run *r, double tol) {
  int bad = 0;
  for (int o = 0; o < r->s->n_outputs; o++) {
    mfx_compare c = mfx_compare_arrays(&r->outputs[o], &r->want[o], tol);
    printf("check    %s max_abs_err=%.3g max_rel_err=%.3g %s\n", r->s->outputs[o]->buf->name,
           c.max_abs_err, c.max_rel_err, c.ok ? "ok" : "MISMATCH");
    if (!c.ok) {
      tool_error(TOOL_EXIT_FAIL, "run %s: output %s differs from the IR interpreter (worst "
                 "element %lld, tolerance %g)", r->path, r->s->outputs[o]->buf->name,
                 (long long)c.worst_index, tol);
      bad = 1;
    }
  }
  return bad ? TOOL_EXIT_FAIL : 0;
}

static int tool_te_time(tool_te_run *r, int repeat) {
  double median = 0.0;
  int runs = 0;
  int rc = tool_measure(tool_te_launch, r, repeat, repeat, 0.0, &median, &runs);
  if (rc == 0) printf("time     median %.4f ms over %d runs (after 1 warm-up)\n", median * 1e3, runs);
  return rc;
}

static int tool_te_finish(tool_te_run *r, const tool_args *args) {
  for (int o = 0; o < r->s->n_outputs; o++) {
    const mfx_array *a = &r->outputs[o];
    const char *name = r->s->outputs[o]->buf->name;
    const char *path = NULL;
    for (int j = 0; j < args->n_out; j++)
      if (strcmp(args->out[j].name, name) == 0) path = args->out[j].path;
    tool_te_print_array("output", a, name);
    if (path != NULL) printf(" -> %s", path);
    printf(" first values:");
    int64_t n = mfx_array_numel(a);
    for (int64_t j = 0; j < n && j < TOOL_TE_PREVIEW; j++) {
      char value[64];
      tool_format_element(a, j, value, sizeof value);
      printf(" %s", value);
    }
    printf("%s\n", n > TOOL_TE_PREVIEW ? " ..." : "");
    if (path != NULL && mfx_npy_save(path, a) != MFX_OK) {
      char what[600];
      snprintf(what, sizeof what, "--out %s=%s", name, path);
      return tool_error_status(TOOL_EXIT_FAIL, what);
    }
  }
  return 0;
}

static int tool_te_steps(tool_te_run *r, const tool_args *args) {
  int rc = tool_te_build(r);
  if (rc == 0) rc = tool_te_check_bindings(r, args);
  if (rc != 0) return rc;
  printf("kernel   %s%s%s (default schedule: every loop serial; mfx tune/compile FILE.te "
         "auto-schedule it)\n", r->path, r->kernel_name ? " --kernel " : "",
         r->kernel_name ? r->kernel_name : "");
  rc = tool_te_prepare_inputs(r, args);
  if (rc == 0 && args->check) rc = tool_te_interpret(r);
  if (rc == 0) rc = tool_te_compile(r, args->threads);
  if (rc == 0) rc = tool_te_alloc_outputs(r);
  if (rc == 0) rc = tool_te_launch(r);
  if (rc == 0 && args->repeat > 0) rc = tool_te_time(r, args->repeat);
  if (rc == 0 && args->check) rc = tool_te_check(r, args->tol);
  if (rc == 0) rc = tool_te_finish(r, args);
  return rc;
}

/* ---- --target cuda[:N] or emulate: the auto-scheduled GPU schedule --------------------------- */

typedef struct {
  mfx_te_op *t;
  mfx_op_kernel kernel; /* emulate */
  int compiled;
  tool_launch launch;
  mfx_artifact *art; /* cuda */
} tool_te_gpu;

/* The GPU schedule for the device's architecture, loaded on it. */
static int tool_te_gpu_load(tool_te_gpu *g, const char *target, const int64_t *dims,
                            const mfx_config *cfg) {
  mfx_device *dev = NULL;
  if (mfx_device_open(target, &dev) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "--target");
  const mfx_device_info *info = mfx_device_get_info(dev);
  char sm[32], device[256];
  snprintf(sm, sizeof sm, "cuda:sm_%d%d", info->compute_major, info->compute_minor);
  snprintf(device, sizeof device, "%s: %s (%s)", mfx_device_name(dev), info->name, info->arch);
  mfx_device_close(dev);
  void *image = NULL;
  size_t size = 0;
  if (mfx_op_gpu_image(mfx_te_op_get(g->t), sm, dims, cfg, "run", &image, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "auto-scheduling");
  mfx_artifact_options o = {target, 0};
  mfx_status st = mfx_artifact_load_memory(image, size, "mfx run", &o, &g->art);
  free(image);
  if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "loading on the GPU");
  printf("target   %s, PTX for %s\n", device, sm);
  return 0;
}

static int tool_te_gpu_compile(tool_te_gpu *g, tool_te_run *r, const char *target,
                               const int64_t *dims, const mfx_config *cfg, int threads) {
  if (strcmp(target, "emulate") != 0) return tool_te_gpu_load(g, target, dims, cfg);
  if (mfx_op_compile_for(mfx_te_op_get(g->t), "emulate", dims, cfg, &g->kernel) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "auto-scheduling");
  g->compiled = 1;
  if (mfx_pool_create(threads, &r->pool) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "creating the thread pool");
  printf("target   emulate: the auto-scheduled GPU schedule run by the CPU emulation\n");
  g->launch.kernel = &g->kernel;
  mfx_kernel_env_init(&g->launch.env, r->pool);
  g->launch.inputs = r->inputs;
  g->launch.outputs = r->outputs;
  return 0;
}

static int tool_te_gpu_launch(tool_te_gpu *g, tool_te_run *r) {
  if (g->art == NULL) return tool_launch_once(&g->launch);
  if (mfx_artifact_run(g->art, 0, r->s->n_inputs, r->inputs, r->s->n_outputs, r->outputs) !=
      MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "running on the GPU");
  return 0;
}

static int tool_te_gpu_time(tool_te_gpu *g, tool_te_run *r, int repeat) {
  double median = 0.0;
  int runs = repeat;
  if (g->art == NULL) {
    int rc = tool_measure(tool_launch_once, &g->launch, repeat, repeat, 0.0, &median, &runs);
    if (rc != 0) return rc;
  } else if (mfx_artifact_time(g->art, 0, r->s->n_inputs, r->inputs, r->s->n_outputs, r->outputs,
                               repeat, &median) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "timing on the GPU");
  }
  printf("time     median %.4f ms over %d runs (%safter 1 warm-up)\n", median * 1e3, runs,
         g->art != NULL ? "CUDA events, " : "");
  return 0;
}

static int tool_te_gpu_steps(tool_te_run *r, const tool_args *args, tool_te_gpu *g) {
  int rc = tool_te_build(r);
  if (rc == 0) rc = tool_te_check_bindings(r, args);
  if (rc == 0 && mfx_te_op_create(r->text, r->path, &g->t) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "auto-scheduler");
  if (rc != 0) return rc;
  const mfx_op *op = mfx_te_op_get(g->t);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(g->t, dims);
  mfx_config cfg;
  char why[480], config[1024];
  rc = tool_te_run_config(op, dims, args->target, args->db_path, &cfg, why, sizeof why);
  if (rc != 0) return rc;
  mfx_config_to_json(&cfg, config, sizeof config);
  printf("kernel   %s as %s, auto-scheduled for %s\nconfig   %s\n         (%s)\n", r->path,
         op->name, args->target, config, why);
  rc = tool_te_prepare_inputs(r, args);
  if (rc == 0 && args->check) rc = tool_te_interpret(r);
  if (rc == 0) rc = tool_te_alloc_outputs(r);
  if (rc == 0) rc = tool_te_gpu_compile(g, r, args->target, dims, &cfg, args->threads);
  if (rc == 0) rc = tool_te_gpu_launch(g, r);
  if (rc == 0 && args->repeat > 0) rc = tool_te_gpu_time(g, r, args->repeat);
  if (rc == 0 && args->check) rc = tool_te_check(r, args->tol);
  if (rc == 0) rc = tool_te_finish(r, args);
  return rc;
}

/* --target: cpu (the default schedule, above), cuda[:N] or emulate; a GPU
 * runs every output (no --kernel) with the tuned (or default) config. */
static int tool_te_gpu_run(tool_te_run *r, const tool_args *args) {
  mfx_target t;
  if (mfx_target_parse(args->target, &t) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--target %s: %s", args->target, mfx_last_error());
  if (t.kind == MFX_TARGET_CUDA && t.sm > 0)
    return tool_error(TOOL_EXIT_USAGE, "--target %s names an architecture, not a device: mfx run "
                      "runs on a GPU; give cuda or cuda:N", args->target);
  if (r->kernel_name != NULL)
    return tool_error(TOOL_EXIT_USAGE, "--kernel %s: runs on --target %s take the whole kernel "
                      "(its auto-scheduled schedule); --kernel is for the CPU's default schedule",
                      r->kernel_name, args->target);
  tool_te_gpu g;
  memset(&g, 0, sizeof g);
  int rc = tool_te_gpu_steps(r, args, &g);
  if (g.compiled) mfx_op_kernel_free(&g.kernel);
  if (g.art != NULL) mfx_artifact_free(g.art);
  mfx_te_op_destroy(g.t);
  return rc;
}

static void tool_te_cleanup(tool_te_run *r) {
  tool_free_arrays(r->inputs, TOOL_TE_MAX_ARGS);
  tool_free_arrays(r->outputs, TOOL_TE_MAX_ARGS);
  tool_free_arrays(r->want, TOOL_TE_MAX_ARGS);
  if (r->jit != NULL) mfx_jit_free(r->jit);
  if (r->pool != NULL) mfx_pool_destroy(r->pool);
  if (r->arena != NULL) mfx_arena_destroy(r->arena);
  free(r->text);
}

int tool_cmd_run_te(int argc, char **argv) {
  tool_te_run *r = calloc(1, sizeof *r);
  if (r == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory");
  tool_args args;
  unsigned allowed = TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_IN | TOOL_OPT_OUT |
                     TOOL_OPT_THREADS | TOOL_OPT_CHECK | TOOL_OPT_REPEAT | TOOL_OPT_SEED |
                     TOOL_OPT_TOL | TOOL_OPT_TARGET | TOOL_OPT_DB;
  const tool_arg extra[] = {
      {.name = "--kernel", .type = TOOL_ARG_TEXT, .to.text = &r->kernel_name,
       .example = "--kernel Y"},
      {0},
  };
  int rc = tool_parse_args_with(argc, argv, allowed, extra, &args);
  if (rc == 0 && args.help) {
    fputs(tool_run_te_usage, stdout);
  } else if (rc == 0 && (args.dims_text != NULL || args.config_json != NULL)) {
    rc = tool_error(TOOL_EXIT_USAGE, "%s: a TE file fixes its own shapes and schedule; --dims "
                    "and --config apply to ops", args.op_name);
  } else if (rc == 0) {
    r->path = args.op_name;
    if (args.target != NULL && strcmp(args.target, "cpu") != 0) rc = tool_te_gpu_run(r, &args);
    else rc = tool_te_steps(r, &args);
  }
  tool_te_cleanup(r);
  free(r);
  fflush(stdout);
  return rc;
}

/* ---- mfx compile FILE.te: the kernel into an artifact -------------------------------- */

void tool_te_default_name(const char *path, char *out, size_t size) {
  const char *base = strrchr(path, '/');
  base = base != NULL ? base + 1 : path;
  size_t n = strlen(base) - 3; /* without ".te" */
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < size; i++) {
    char c = base[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    out[k++] = ok ? c : '_';
  }
  if (k == 0 && size > 2) out[k++] = 'k';
  out[k] = '\0';
}
