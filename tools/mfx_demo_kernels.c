/* mfx demo, kernels: each kernel of the layer (with the config the layer
 * uses) timed against its dense baseline -- the linear kernel of the same
 * shape -- and the experts against each other; then every kernel the layer
 * compiled, built ahead of time into one artifact for mfx-runner and
 * mfx.Module. */
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx_moe_cli.h"

#define TOOL_KERNEL_SEED 3

typedef struct {
  mfx_op_kernel kernel;
  mfx_array inputs[MFX_OP_MAX_TENSORS], outputs[MFX_OP_MAX_TENSORS];
  tool_launch launch;
  int compiled;
} tool_timed_kernel;

static void tool_timed_free(tool_timed_kernel *t) {
  if (t->compiled) mfx_op_kernel_free(&t->kernel);
  tool_free_arrays(t->inputs, MFX_OP_MAX_TENSORS);
  tool_free_arrays(t->outputs, MFX_OP_MAX_TENSORS);
}

/* Compile op at dims with the layer's config, run on random inputs, time it. */
static int tool_time_kernel(const mfx_op *op, const int64_t *dims, tool_demo_tuning *tuning,
                            mfx_pool *pool, double *seconds) {
  tool_timed_kernel t;
  memset(&t, 0, sizeof t);
  mfx_config cfg;
  int rc = 0, runs = 0;
  if (tool_demo_choose(tuning, "cpu", op, dims, &cfg) != MFX_OK ||
      mfx_op_alloc_inputs(op, dims, t.inputs) != MFX_OK ||
      mfx_op_alloc_outputs(op, dims, t.outputs) != MFX_OK ||
      mfx_op_compile(op, dims, &cfg, &t.kernel) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "demo: kernel table");
  } else {
    t.compiled = 1;
    mfx_op_random_inputs(op, dims, TOOL_KERNEL_SEED, t.inputs);
    t.launch = (tool_launch){&t.kernel, {0}, t.inputs, t.outputs};
    mfx_kernel_env_init(&t.launch.env, pool);
    rc = tool_launch_once(&t.launch);
    if (rc == 0) rc = tool_measure(tool_launch_once, &t.launch, 5, 2000, 0.1, seconds, &runs);
  }
  tool_timed_free(&t);
  return rc;
}

static int tool_kernel_row(const tool_demo_kernel *k, tool_demo_tuning *tuning, mfx_pool *pool) {
  double s = 0.0, dense = 0.0;
  int rc = tool_time_kernel(k->op, k->dims, tuning, pool, &s);
  int has_baseline = strcmp(k->op->name, "linear") != 0;
  if (rc == 0 && has_baseline)
    rc = tool_time_kernel(mfx_op_find("linear"), k->dims, tuning, pool, &dense);
  if (rc != 0) return rc;
  char dims[96];
  snprintf(dims, sizeof dims, "M=%lld,N=%lld,K=%lld", (long long)k->dims[0],
           (long long)k->dims[1], (long long)k->dims[2]);
  if (has_baseline)
    printf("  %-10s %-12s %-20s %9.3f %9.3f %8.2fx\n", k->role, k->op->name, dims, s * 1e3,
           dense * 1e3, dense / s);
  else
    printf("  %-10s %-12s %-20s %9.3f %9s %9s\n", k->role, k->op->name, dims, s * 1e3,
           "(dense)", "-");
  return 0;
}

/* The shift experts against the first mult expert, from the latency table. */
static void tool_expert_rows(const mfx_latency_table *t) {
  const mfx_latency_expert *mult = NULL;
  for (int e = 0; e < t->experts && mult == NULL; e++)
    if (strcmp(t->expert[e].name, "mult") == 0) mult = &t->expert[e];
  for (int e = 0; e < t->experts; e++) {
    const mfx_latency_expert *x = &t->expert[e];
    char what[48];
    snprintf(what, sizeof what, "%lld tokens", (long long)t->at_tokens);
    if (mult != NULL && x != mult)
      printf("  %-10s %-12s %-20s %9.3f %9.3f %8.2fx\n", x->name, "expert", what,
             x->latency * 1e3, mult->latency * 1e3, mult->latency / x->latency);
    else
      printf("  %-10s %-12s %-20s %9.3f %9s %9s\n", x->name, "expert", what, x->latency * 1e3,
             "(dense)", "-");
  }
}

int tool_demo_kernel_table(const tool_demo_plan *plan, tool_demo_tuning *tuning, mfx_pool *pool,
                           const mfx_latency_table *latency) {
  printf("  %-10s %-12s %-20s %9s %9s %9s\n", "kernel", "op", "dims", "ms", "dense ms",
         "vs dense");
  for (int i = 0; i < plan->n; i++) {
    fprintf(stderr, "[demo] timing %s (%s)\n", plan->kernels[i].role, plan->kernels[i].op->name);
    int rc = tool_kernel_row(&plan->kernels[i], tuning, pool);
    if (rc != 0) return rc;
  }
  if (latency != NULL) tool_expert_rows(latency);
  printf("  (medians; dense = the linear kernel of the same shape, or the mult expert;\n"
         "   vs dense > 1 means faster than the dense baseline)\n");
  return 0;
}

/* ---- the artifact ---------------------------------------------------------------------- */

static void tool_describe(const mfx_op_kernel *k, mfx_artifact_kernel *a) {
  memset(a, 0, sizeof *a);
  snprintf(a->name, sizeof a->name, "%s_m%lld_n%lld_k%lld", k->op->name, (long long)k->dims[0],
           (long long)k->dims[1], (long long)k->dims[2]);
  snprintf(a->op, sizeof a->op, "%s", k->op->name);
  a->n_dims = k->op->n_dims;
  for (int d = 0; d < k->op->n_dims; d++) {
    snprintf(a->dim_names[d], sizeof a->dim_names[d], "%s", k->op->dims[d]);
    a->dims[d] = k->dims[d];
  }
  snprintf(a->target, sizeof a->target, "cpu");
  mfx_config_to_json(&k->cfg, a->config, sizeof a->config);
}

static mfx_status tool_build_one(const mfx_op_kernel *k, mfx_artifact_kernel *a) {
  tool_describe(k, a);
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "out of memory for an arena");
  mfx_schedule *s = NULL;
  mfx_status st = k->op->build(arena, k->dims, &k->cfg, &s);
  if (st == MFX_OK) st = mfx_artifact_build(s, a);
  mfx_arena_destroy(arena);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "building %s", a->name);
}

static mfx_status tool_write_kernels(const mfx_artifact_kernel *a, int n, const char *path) {
  void *data = NULL;
  size_t size = 0;
  mfx_status st = mfx_artifact_encode(a, n, &data, &size);
  if (st == MFX_OK) st = mfx_artifact_write_file(path, data, size);
  free(data);
  return st;
}

/* A GPU layer's kernels are built already (PTX and launches): written as they are. */
static int tool_demo_gpu_artifact(const mfx_moe *moe, const char *path) {
  int n = mfx_moe_kernel_count(moe);
  if (n > MFX_ARTIFACT_MAX_KERNELS) n = MFX_ARTIFACT_MAX_KERNELS;
  if (n == 0 || mfx_moe_gpu_kernel_at(moe, 0) == NULL) {
    printf("  no artifact: the GPU kernels were emulated on the CPU (no PTX was built)\n");
    return 0;
  }
  mfx_artifact_kernel *a = calloc((size_t)n, sizeof *a);
  if (a == NULL) return tool_error(TOOL_EXIT_FAIL, "demo: out of memory");
  for (int i = 0; i < n; i++) a[i] = *mfx_moe_gpu_kernel_at(moe, i);
  mfx_status st = tool_write_kernels(a, n, path);
  if (st == MFX_OK) {
    for (int i = 0; i < n; i++) printf("  %-32s %s %s\n", a[i].name, a[i].target, a[i].config);
    printf("  wrote %s: %d GPU kernels (load with mfx-runner or mfx.Module)\n", path, n);
  }
  free(a);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "demo: artifact");
}

int tool_demo_artifact(const mfx_moe *moe, const char *path) {
  if (mfx_moe_on_gpu(moe)) return tool_demo_gpu_artifact(moe, path);
  int n = mfx_moe_kernel_count(moe);
  if (n > MFX_ARTIFACT_MAX_KERNELS) n = MFX_ARTIFACT_MAX_KERNELS;
  mfx_artifact_kernel *a = calloc((size_t)(n > 0 ? n : 1), sizeof *a);
  if (a == NULL) return tool_error(TOOL_EXIT_FAIL, "demo: out of memory");
  mfx_status st = MFX_OK;
  int built = 0;
  while (st == MFX_OK && built < n) {
    fprintf(stderr, "[demo] artifact: building kernel %d of %d\n", built + 1, n);
    st = tool_build_one(mfx_moe_kernel_at(moe, built), &a[built]);
    if (st == MFX_OK) built++;
  }
  if (st == MFX_OK) st = tool_write_kernels(a, n, path);
  for (int i = 0; i < built; i++) mfx_artifact_kernel_release(&a[i]);
  if (st == MFX_OK) {
    for (int i = 0; i < n; i++) printf("  %-32s %s\n", a[i].name, a[i].config);
    printf("  wrote %s: %d kernels (load with mfx-runner or mfx.Module)\n", path, n);
  }
  free(a);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "demo: artifact");
}
