/* mfx bench: one op with the configuration the tuning database chooses (or
 * --config) against the template default, timed side by side in one run on
 * the same inputs, each checked against the reference first. On a CUDA
 * target both are the GPU template's PTX loaded through the driver and
 * timed with CUDA events, and cuBLAS SGEMM at the op's dense float
 * equivalent (TF32 off and on) is timed beside them; without cuBLAS a
 * "no cuBLAS" line and the mfx numbers alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/target.h"
#include "mfx_bench.h"

typedef struct {
  mfx_op_kernel kernel;
  mfx_kernel_env env;
  mfx_array *inputs, *outputs;
  int compiled;
} bench_side;

static int bench_compare(double a, double b) { return (a > b) - (a < b); }
static int bench_compare_doubles(const void *a, const void *b) {
  return bench_compare(*(const double *)a, *(const double *)b);
}

double bench_median(double *seconds, int n) {
  qsort(seconds, (size_t)n, sizeof *seconds, bench_compare_doubles);
  return n % 2 ? seconds[n / 2] : 0.5 * (seconds[n / 2 - 1] + seconds[n / 2]);
}

static int bench_launch(void *closure) {
  bench_side *b = closure;
  if (mfx_op_kernel_run(&b->kernel, &b->env, b->inputs, b->outputs) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "running the kernel");
  return 0;
}

static int bench_check(const tool_problem *p, mfx_array *out, mfx_array *want) {
  for (int i = 0; i < p->op->n_outputs; i++) {
    mfx_compare c =
        mfx_compare_arrays_int(&out[i], &want[i], TOOL_DEFAULT_TOL, p->op->int_tolerance);
    if (!c.ok)
      return tool_error(TOOL_EXIT_FAIL, "output %s differs from the reference (max_rel_err %.3g)",
                        p->op->outputs[i].name, c.max_rel_err);
  }
  return 0;
}

/* On the host (cpu, emulate): compile cfg, run once, check, then time it. */
static int bench_side_host(const tool_problem *p, const char *target, const mfx_config *cfg,
                           mfx_pool *pool, mfx_array *in, mfx_array *want, int repeat,
                           double *median) {
  mfx_array out[MFX_OP_MAX_TENSORS];
  memset(out, 0, sizeof out);
  bench_side b = {.inputs = in, .outputs = out};
  int rc = 0, runs = 0;
  if (mfx_op_compile_for(p->op, target, p->dims, cfg, &b.kernel) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  mfx_kernel_env_init(&b.env, pool);
  if (mfx_op_alloc_outputs(p->op, p->dims, out) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  if (rc == 0) rc = bench_launch(&b);
  if (rc == 0) rc = bench_check(p, out, want);
  if (rc == 0) rc = tool_measure(bench_launch, &b, repeat, repeat, 0.0, median, &runs);
  for (int i = 0; i < p->op->n_outputs; i++) mfx_array_free(&out[i]);
  mfx_op_kernel_free(&b.kernel);
  return rc;
}

/* On a GPU: cfg as PTX for sm, loaded on device, run once, checked, timed. */
static int bench_side_cuda(const tool_problem *p, const char *device, const char *sm,
                           const mfx_config *cfg, mfx_array *in, mfx_array *want, int repeat,
                           double *median) {
  void *image = NULL;
  size_t size = 0;
  mfx_artifact *art = NULL;
  mfx_array out[MFX_OP_MAX_TENSORS];
  memset(out, 0, sizeof out);
  if (mfx_op_gpu_image(p->op, sm, p->dims, cfg, "bench", &image, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  mfx_artifact_options o = {device, 0};
  int rc = 0, ni = p->op->n_inputs, no = p->op->n_outputs;
  if (mfx_artifact_load_memory(image, size, "mfx bench", &o, &art) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "loading on the GPU");
  free(image);
  if (rc == 0 && mfx_op_alloc_outputs(p->op, p->dims, out) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  if (rc == 0 && mfx_artifact_run(art, 0, ni, in, no, out) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "running on the GPU");
  if (rc == 0) rc = bench_check(p, out, want);
  if (rc == 0 && mfx_artifact_time(art, 0, ni, in, no, out, repeat, median) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "timing on the GPU");
  for (int i = 0; i < no; i++) mfx_array_free(&out[i]);
  if (art != NULL) mfx_artifact_free(art);
  return rc;
}

typedef struct {
  double chosen_s, default_s, fp32_s, tf32_s;
  int have_cublas;
  char device[256], no_cublas[320];
  int threads;
} bench_result;

static void bench_print_text(const tool_problem *p, const tool_args *args, int repeat,
                             const bench_result *r) {
  char dims[256], config[1024];
  tool_format_dims(p->op, p->dims, dims, sizeof dims);
  mfx_config_to_json(&p->cfg, config, sizeof config);
  if (r->device[0] != '\0')
    printf("op       %s %s on %s, medians of %d runs, both checked\n", p->op->name, dims,
           r->device, repeat);
  else
    printf("op       %s %s, %d threads, medians of %d runs, both checked\n", p->op->name, dims,
           r->threads, repeat);
  printf("config   %s\n         (%s)\n", config, p->config_why);
  printf("chosen   %.4f ms\ndefault  %.4f ms\nspeedup  %.2fx over the template default\n",
         r->chosen_s * 1e3, r->default_s * 1e3,
         r->chosen_s > 0 ? r->default_s / r->chosen_s : 0.0);
  if (r->have_cublas)
    printf("cublas   fp32 %.4f ms (%.2fx of chosen), tf32 %.4f ms (%.2fx of chosen)\n",
           r->fp32_s * 1e3, r->chosen_s > 0 ? r->fp32_s / r->chosen_s : 0.0, r->tf32_s * 1e3,
           r->chosen_s > 0 ? r->tf32_s / r->chosen_s : 0.0);
  else if (r->no_cublas[0] != '\0')
    printf("cublas   %s\n", r->no_cublas);
  (void)args;
}

static void bench_json_text(const char *s) {
  putchar('"');
  for (; *s != '\0'; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
  putchar('"');
}

static void bench_print_json(const tool_problem *p, const tool_args *args, int repeat,
                             const bench_result *r) {
  char dims[256], config[1024];
  tool_format_dims(p->op, p->dims, dims, sizeof dims);
  mfx_config_to_json(&p->cfg, config, sizeof config);
  printf("{\"op\":\"%s\",\"dims\":\"%s\",\"target\":", p->op->name, dims);
  bench_json_text(args->target != NULL ? args->target : "cpu");
  printf(",\"device\":");
  bench_json_text(r->device);
  printf(",\"repeat\":%d,\"config\":%s,\"config_why\":", repeat, config);
  bench_json_text(p->config_why);
  printf(",\"chosen_ms\":%.6g,\"default_ms\":%.6g", r->chosen_s * 1e3, r->default_s * 1e3);
  if (r->have_cublas)
    printf(",\"cublas_fp32_ms\":%.6g,\"cublas_tf32_ms\":%.6g}\n", r->fp32_s * 1e3,
           r->tf32_s * 1e3);
  else {
    printf(",\"cublas_fp32_ms\":null,\"cublas_tf32_ms\":null,\"no_cublas\":");
    bench_json_text(r->no_cublas);
    printf("}\n");
  }
}

/* The device of a cuda target and the PTX target of its architecture. */
static int bench_cuda_device(const tool_args *args, char *sm, size_t sm_cap, bench_result *r) {
  mfx_device *dev = NULL;
  if (mfx_device_open(args->target, &dev) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--target");
  const mfx_device_info *info = mfx_device_get_info(dev);
  snprintf(sm, sm_cap, "cuda:sm_%d%d", info->compute_major, info->compute_minor);
  snprintf(r->device, sizeof r->device, "%s: %s (%s)", mfx_device_name(dev), info->name,
           info->arch);
  mfx_device_close(dev);
  return 0;
}

static int bench_sides(const tool_problem *p, const tool_args *args, mfx_array *in,
                       mfx_array *want, int repeat, bench_result *r) {
  mfx_config def;
  const char *target = args->target != NULL ? args->target : "cpu";
  mfx_config_default_for(p->op, p->knobs, &def);
  if (mfx_target_names_gpu(target)) {
    char sm[32];
    int rc = bench_cuda_device(args, sm, sizeof sm, r);
    if (rc == 0) rc = bench_side_cuda(p, target, sm, &p->cfg, in, want, repeat, &r->chosen_s);
    if (rc == 0) rc = bench_side_cuda(p, target, sm, &def, in, want, repeat, &r->default_s);
    if (rc == 0)
      r->have_cublas = bench_cublas_times(p, target, repeat, &r->fp32_s, &r->tf32_s,
                                          r->no_cublas, sizeof r->no_cublas);
    return rc;
  }
  mfx_pool *pool = NULL;
  if (mfx_pool_create(args->threads, &pool) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "creating the thread pool");
  r->threads = mfx_pool_threads(pool);
  int rc = bench_side_host(p, target, &p->cfg, pool, in, want, repeat, &r->chosen_s);
  if (rc == 0) rc = bench_side_host(p, target, &def, pool, in, want, repeat, &r->default_s);
  mfx_pool_destroy(pool);
  return rc;
}

static int bench_problem(const tool_problem *p, const tool_args *args) {
  mfx_array in[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  memset(in, 0, sizeof in);
  memset(want, 0, sizeof want);
  int rc = 0, repeat = args->repeat > 0 ? args->repeat : 20;
  if (mfx_op_alloc_inputs(p->op, p->dims, in) != MFX_OK ||
      mfx_op_alloc_outputs(p->op, p->dims, want) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "allocating arrays");
  if (rc == 0) {
    mfx_op_random_inputs(p->op, p->dims, args->seed, in);
    p->op->reference(p->dims, in, want);
  }
  bench_result r;
  memset(&r, 0, sizeof r);
  if (rc == 0) rc = bench_sides(p, args, in, want, repeat, &r);
  if (rc == 0 && args->json) bench_print_json(p, args, repeat, &r);
  else if (rc == 0) bench_print_text(p, args, repeat, &r);
  for (int i = 0; i < p->op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int i = 0; i < p->op->n_outputs; i++) mfx_array_free(&want[i]);
  return rc;
}

int tool_cmd_bench(int argc, char **argv) {
  tool_args args;
  unsigned allowed = TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_THREADS | TOOL_OPT_REPEAT |
                     TOOL_OPT_SEED | TOOL_OPT_DB | TOOL_OPT_TARGET | TOOL_OPT_JSON;
  int rc = tool_parse_args(argc, argv, allowed, &args);
  if (rc != 0) return rc;
  if (args.help) {
    fputs(tool_usage("bench"), stdout);
    return TOOL_EXIT_OK;
  }
  tool_problem p;
  rc = tool_resolve_problem(&args, &p);
  if (rc == 0) rc = tool_apply_tuned_config(&args, &p);
  if (rc == 0) rc = bench_problem(&p, &args);
  fflush(stdout);
  return rc;
}
