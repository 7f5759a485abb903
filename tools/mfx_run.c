/* mfx run: compile one op for a target, run it on .npy or seeded random
 * inputs, and optionally check it against the reference and time it.
 * Targets: cpu (JIT for this CPU), emulate (the op's GPU template through
 * the compiler's CPU emulation), cuda or cuda:N (the GPU template built to
 * PTX for the device's architecture, loaded through the driver as an
 * in-memory artifact, timed with CUDA events). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/device.h"
#include "mfx/reference.h"
#include "mfx/target.h"
#include "mfx_cli.h"

#define TOOL_PREVIEW 4

typedef struct {
  tool_problem p;
  mfx_array inputs[MFX_OP_MAX_TENSORS];
  mfx_array outputs[MFX_OP_MAX_TENSORS];
  mfx_op_kernel kernel;
  int compiled;
  mfx_pool *pool;
  tool_launch launch;
  mfx_artifact *art; /* cuda targets */
} tool_run_state;

static const tool_binding *tool_find_binding(const tool_binding *b, int n, const char *name) {
  for (int i = 0; i < n; i++) {
    if (strcmp(b[i].name, name) == 0) return &b[i];
  }
  return NULL;
}

static int tool_prepare_inputs(tool_run_state *st, const tool_args *args) {
  const mfx_op *op = st->p.op;
  if (mfx_op_alloc_inputs(op, st->p.dims, st->inputs) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "allocating inputs");
  }
  mfx_op_random_inputs(op, st->p.dims, args->seed, st->inputs);
  int rc = tool_load_inputs(&st->p, args, st->inputs);
  if (rc != 0) return rc;
  for (int i = 0; i < op->n_inputs; i++) {
    char shape[128];
    const tool_binding *b = tool_find_binding(args->in, args->n_in, op->inputs[i].name);
    tool_format_shape(st->inputs[i].shape, st->inputs[i].ndim, shape, sizeof shape);
    printf("input    %s %s %s ", op->inputs[i].name, mfx_dtype_name(st->inputs[i].dtype), shape);
    if (b != NULL) printf("from %s\n", b->path);
    else printf("random (seed %llu)\n", (unsigned long long)args->seed);
  }
  return 0;
}

static void tool_print_header(const tool_problem *p) {
  char dims[256], config[1024];
  tool_format_dims(p->op, p->dims, dims, sizeof dims);
  mfx_config_to_json(&p->cfg, config, sizeof config);
  printf("op       %s %s\nconfig   %s\n         (%s)\n", p->op->name, dims, config, p->config_why);
}

static int tool_is_cuda(const tool_args *args) {
  return args->target != NULL && mfx_target_names_gpu(args->target);
}

/* The op's GPU template for the device's architecture, loaded on it. */
static int tool_prepare_cuda(tool_run_state *st, const tool_args *args) {
  mfx_device *dev = NULL;
  if (mfx_device_open(args->target, &dev) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--target");
  const mfx_device_info *info = mfx_device_get_info(dev);
  char sm[32], device[256];
  snprintf(sm, sizeof sm, "cuda:sm_%d%d", info->compute_major, info->compute_minor);
  snprintf(device, sizeof device, "%s: %s (%s)", mfx_device_name(dev), info->name, info->arch);
  mfx_device_close(dev);
  void *image = NULL;
  size_t size = 0;
  if (mfx_op_gpu_image(st->p.op, sm, st->p.dims, &st->p.cfg, "run", &image, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  mfx_artifact_options o = {args->target, 0};
  mfx_status status = mfx_artifact_load_memory(image, size, "mfx run", &o, &st->art);
  free(image);
  if (status != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "loading on the GPU");
  printf("target   %s, PTX for %s\n", device, sm);
  if (mfx_op_alloc_outputs(st->p.op, st->p.dims, st->outputs) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  return 0;
}

static int tool_cuda_run(tool_run_state *st) {
  const mfx_op *op = st->p.op;
  if (mfx_artifact_run(st->art, 0, op->n_inputs, st->inputs, op->n_outputs, st->outputs) !=
      MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "running on the GPU");
  return 0;
}

static int tool_cuda_time(tool_run_state *st, int repeat) {
  const mfx_op *op = st->p.op;
  double median = 0.0;
  if (mfx_artifact_time(st->art, 0, op->n_inputs, st->inputs, op->n_outputs, st->outputs, repeat,
                        &median) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "timing on the GPU");
  printf("time     median %.4f ms over %d runs (CUDA events, after 1 warm-up)", median * 1e3,
         repeat);
  const char *unit = NULL;
  double work = tool_op_work(op, st->p.dims, &unit);
  if (work > 0.0 && median > 0.0) printf(", %.2f %s", work / median * 1e-9, unit);
  printf("\n");
  return 0;
}

static int tool_prepare_kernel(tool_run_state *st, const tool_args *args) {
  if (tool_is_cuda(args)) return tool_prepare_cuda(st, args);
  const char *target = args->target != NULL ? args->target : "cpu";
  if (mfx_op_compile_for(st->p.op, target, st->p.dims, &st->p.cfg, &st->kernel) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  }
  if (strcmp(target, "emulate") == 0)
    printf("target   emulate: the GPU template run by the CPU emulation\n");
  st->compiled = 1;
  if (mfx_pool_create(args->threads, &st->pool) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "creating the thread pool");
  }
  printf("threads  %d\n", mfx_pool_threads(st->pool));
  if (mfx_op_alloc_outputs(st->p.op, st->p.dims, st->outputs) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  }
  st->launch.kernel = &st->kernel;
  mfx_kernel_env_init(&st->launch.env, st->pool);
  st->launch.inputs = st->inputs;
  st->launch.outputs = st->outputs;
  return 0;
}

static int tool_time_kernel(tool_run_state *st, int repeat) {
  double median = 0.0;
  int runs = 0;
  int rc = tool_measure(tool_launch_once, &st->launch, repeat, repeat, 0.0, &median, &runs);
  if (rc != 0) return rc;
  printf("time     median %.4f ms over %d runs (after 1 warm-up)", median * 1e3, runs);
  const char *unit = NULL;
  double work = tool_op_work(st->p.op, st->p.dims, &unit);
  if (work > 0.0 && median > 0.0) printf(", %.2f %s", work / median * 1e-9, unit);
  printf("\n");
  return 0;
}

static int tool_check_kernel(tool_run_state *st, double tol) {
  mfx_compare c;
  int rc = tool_compare_outputs(st->p.op, st->p.dims, st->inputs, st->outputs, tol, &c);
  if (rc != 0) return rc;
  printf("check    max_abs_err=%.3g max_rel_err=%.3g %s\n", c.max_abs_err, c.max_rel_err,
         c.ok ? "ok" : "MISMATCH");
  if (!c.ok) {
    return tool_error(TOOL_EXIT_FAIL,
                      "run %s: output differs from the reference (worst element %lld, "
                      "tolerance %g; first difference at element %lld: got %.9g, reference "
                      "%.9g)",
                      st->p.op->name, (long long)c.worst_index, tol, (long long)c.first_index,
                      c.first_got, c.first_want);
  }
  return 0;
}

static void tool_print_outputs(const tool_run_state *st, const tool_args *args) {
  const mfx_op *op = st->p.op;
  for (int i = 0; i < op->n_outputs; i++) {
    const mfx_array *a = &st->outputs[i];
    char shape[128], value[64];
    tool_format_shape(a->shape, a->ndim, shape, sizeof shape);
    printf("output   %s %s %s", op->outputs[i].name, mfx_dtype_name(a->dtype), shape);
    const tool_binding *b = tool_find_binding(args->out, args->n_out, op->outputs[i].name);
    if (b != NULL) printf(" -> %s", b->path);
    printf(" first values:");
    int64_t n = mfx_array_numel(a);
    for (int64_t j = 0; j < n && j < TOOL_PREVIEW; j++) {
      tool_format_element(a, j, value, sizeof value);
      printf(" %s", value);
    }
    printf("%s\n", n > TOOL_PREVIEW ? " ..." : "");
  }
}

static int tool_run_steps(tool_run_state *st, const tool_args *args) {
  tool_print_header(&st->p);
  if (mfx_op_check_memory(st->p.op, st->p.dims) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "run");
  int rc = tool_prepare_inputs(st, args);
  if (rc == 0) rc = tool_prepare_kernel(st, args);
  int cuda = tool_is_cuda(args);
  if (rc == 0) rc = cuda ? tool_cuda_run(st) : tool_launch_once(&st->launch);
  if (rc == 0 && args->repeat > 0)
    rc = cuda ? tool_cuda_time(st, args->repeat) : tool_time_kernel(st, args->repeat);
  if (rc == 0 && args->check) rc = tool_check_kernel(st, args->tol);
  if (rc == 0) tool_print_outputs(st, args);
  if (rc == 0) rc = tool_save_outputs(&st->p, args, st->outputs);
  return rc;
}

static void tool_run_cleanup(tool_run_state *st) {
  tool_free_arrays(st->inputs, MFX_OP_MAX_TENSORS);
  tool_free_arrays(st->outputs, MFX_OP_MAX_TENSORS);
  if (st->compiled) mfx_op_kernel_free(&st->kernel);
  if (st->pool != NULL) mfx_pool_destroy(st->pool);
  if (st->art != NULL) mfx_artifact_free(st->art);
}

int tool_cmd_run(int argc, char **argv) {
  if (tool_args_te_file(argc, argv) > 0) return tool_cmd_run_te(argc, argv); /* mfx_run_te.c */
  tool_args args;
  unsigned allowed = TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_IN | TOOL_OPT_OUT |
                     TOOL_OPT_THREADS | TOOL_OPT_CHECK | TOOL_OPT_REPEAT | TOOL_OPT_SEED |
                     TOOL_OPT_TOL | TOOL_OPT_DB | TOOL_OPT_TARGET;
  int rc = tool_parse_args(argc, argv, allowed, &args);
  if (rc != 0) return rc;
  if (args.help) {
    fputs(tool_usage("run"), stdout);
    return TOOL_EXIT_OK;
  }
  tool_run_state st;
  memset(&st, 0, sizeof st);
  rc = tool_resolve_problem(&args, &st.p);
  if (rc == 0) rc = tool_apply_tuned_config(&args, &st.p);
  if (rc == 0) rc = tool_check_bindings(st.p.op, &args);
  if (rc == 0) rc = tool_run_steps(&st, &args);
  tool_run_cleanup(&st);
  fflush(stdout);
  return rc;
}
