/* mfx bench: one op with the configuration the tuning database chooses (or
 * --config) against the template default, timed side by side in one run on
 * the same inputs, each checked against the reference first. */
#include <stdio.h>
#include <string.h>

#include "mfx_cli.h"

typedef struct {
  mfx_op_kernel kernel;
  mfx_kernel_env env;
  mfx_array *inputs, *outputs;
  int compiled;
} bench_side;

static int bench_launch(void *closure) {
  bench_side *b = closure;
  if (mfx_op_kernel_run(&b->kernel, &b->env, b->inputs, b->outputs) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "running the kernel");
  return 0;
}

/* Compile cfg, run once, compare with the reference, then time it. */
static int bench_side_run(const tool_problem *p, const mfx_config *cfg, mfx_pool *pool,
                          mfx_array *in, mfx_array *want, int repeat, double *median) {
  mfx_array out[MFX_OP_MAX_TENSORS];
  memset(out, 0, sizeof out);
  bench_side b = {.inputs = in, .outputs = out};
  int rc = 0, runs = 0;
  if (mfx_op_compile(p->op, p->dims, cfg, &b.kernel) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compiling");
  mfx_kernel_env_init(&b.env, pool);
  if (mfx_op_alloc_outputs(p->op, p->dims, out) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "allocating outputs");
  if (rc == 0) rc = bench_launch(&b);
  for (int i = 0; rc == 0 && i < p->op->n_outputs; i++) {
    mfx_compare c =
        mfx_compare_arrays_int(&out[i], &want[i], TOOL_DEFAULT_TOL, p->op->int_tolerance);
    if (!c.ok)
      rc = tool_error(TOOL_EXIT_FAIL, "output %s differs from the reference (max_rel_err %.3g)",
                      p->op->outputs[i].name, c.max_rel_err);
  }
  if (rc == 0) rc = tool_measure(bench_launch, &b, repeat, repeat, 0.0, median, &runs);
  for (int i = 0; i < p->op->n_outputs; i++) mfx_array_free(&out[i]);
  mfx_op_kernel_free(&b.kernel);
  return rc;
}

static int bench_problem(const tool_problem *p, const tool_args *args) {
  mfx_array in[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  memset(in, 0, sizeof in);
  memset(want, 0, sizeof want);
  mfx_pool *pool = NULL;
  int rc = 0, repeat = args->repeat > 0 ? args->repeat : 20;
  if (mfx_op_alloc_inputs(p->op, p->dims, in) != MFX_OK ||
      mfx_op_alloc_outputs(p->op, p->dims, want) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "allocating arrays");
  if (rc == 0 && mfx_pool_create(args->threads, &pool) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "creating the thread pool");
  if (rc == 0) {
    mfx_op_random_inputs(p->op, p->dims, args->seed, in);
    p->op->reference(p->dims, in, want);
  }
  mfx_config def;
  mfx_config_default(p->op, &def);
  double chosen_s = 0, default_s = 0;
  if (rc == 0) rc = bench_side_run(p, &p->cfg, pool, in, want, repeat, &chosen_s);
  if (rc == 0) rc = bench_side_run(p, &def, pool, in, want, repeat, &default_s);
  if (rc == 0) {
    char dims[256], config[1024];
    tool_format_dims(p->op, p->dims, dims, sizeof dims);
    mfx_config_to_json(&p->cfg, config, sizeof config);
    printf("op       %s %s, %d threads, medians of %d runs, both checked\n", p->op->name, dims,
           mfx_pool_threads(pool), repeat);
    printf("config   %s\n         (%s)\n", config, p->config_why);
    printf("chosen   %.4f ms\ndefault  %.4f ms\nspeedup  %.2fx over the template default\n",
           chosen_s * 1e3, default_s * 1e3, chosen_s > 0 ? default_s / chosen_s : 0.0);
  }
  for (int i = 0; i < p->op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int i = 0; i < p->op->n_outputs; i++) mfx_array_free(&want[i]);
  mfx_pool_destroy(pool);
  return rc;
}

int tool_cmd_bench(int argc, char **argv) {
  tool_args args;
  unsigned allowed = TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_THREADS | TOOL_OPT_REPEAT |
                     TOOL_OPT_SEED | TOOL_OPT_DB;
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
