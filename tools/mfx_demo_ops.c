/* mfx demo, every op: each op on a moderate shape with its default config:
 * compile, run, check against the plain-C reference, and print a table of
 * times (the demo's last section). */
#include <stdio.h>
#include <string.h>

#include "mfx_moe_cli.h"

#define TOOL_DEMO_SEED 1

/* Moderate shapes; an op not listed runs with every dim 64. */
static const struct { const char *op; const char *dims; } tool_demo_shapes[] = {
    {"linear", "M=256,N=256,K=256"},
    {"shift_linear", "M=256,N=256,K=256"},
    {"matadd", "B=1,H=4,N=1024,D=64,C=64"},
    {"hamming", "N=1024,M=1024,W=8"},
    {"binary_attention", "B=1,H=4,N=1024,D=64,C=64"},
    /* the MoE layer's steps, at its size: hidden activations of half the tokens */
    {"gelu", "M=1568,N=512"},
    {"q16_quantize", "M=1568,N=512"},
    {"q16_dequantize", "M=1568,N=512"},
    {"q16_gelu", "M=1568,N=512"},
    {"gather_rows", "T=3136,M=1568,D=64"},
    {"combine_rows", "R=3136,T=3136,K=2,D=64"},
};

typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_array inputs[MFX_OP_MAX_TENSORS];
  mfx_array outputs[MFX_OP_MAX_TENSORS];
  mfx_array want[MFX_OP_MAX_TENSORS];
  mfx_op_kernel kernel;
  int compiled;
  tool_launch launch;
} tool_demo_case;

typedef struct {
  double kernel_s, reference_s, max_rel_err, rate;
  const char *unit;
  int ok;
} tool_demo_row;

static int tool_demo_dims(tool_demo_case *c) {
  const char *text = NULL;
  for (size_t i = 0; i < sizeof tool_demo_shapes / sizeof tool_demo_shapes[0]; i++) {
    if (strcmp(tool_demo_shapes[i].op, c->op->name) == 0) text = tool_demo_shapes[i].dims;
  }
  if (text == NULL) {
    for (int i = 0; i < c->op->n_dims; i++) c->dims[i] = 64;
    return 0;
  }
  if (mfx_op_parse_dims(c->op, text, c->dims) != MFX_OK) {
    return tool_error(TOOL_EXIT_FAIL, "demo %s: shape '%s': %s", c->op->name, text,
                      mfx_last_error());
  }
  return 0;
}

static int tool_reference_once(void *closure) {
  tool_demo_case *c = closure;
  c->op->reference(c->dims, c->inputs, c->want);
  return 0;
}

static int tool_demo_prepare(tool_demo_case *c, mfx_pool *pool) {
  mfx_config cfg;
  char what[128];
  snprintf(what, sizeof what, "demo %s", c->op->name);
  if (mfx_op_alloc_inputs(c->op, c->dims, c->inputs) != MFX_OK ||
      mfx_op_alloc_outputs(c->op, c->dims, c->outputs) != MFX_OK ||
      mfx_op_alloc_outputs(c->op, c->dims, c->want) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, what);
  }
  mfx_op_random_inputs(c->op, c->dims, TOOL_DEMO_SEED, c->inputs);
  mfx_config_default(c->op, &cfg);
  if (mfx_op_compile(c->op, c->dims, &cfg, &c->kernel) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, what);
  }
  c->compiled = 1;
  c->launch.kernel = &c->kernel;
  mfx_kernel_env_init(&c->launch.env, pool);
  c->launch.inputs = c->inputs;
  c->launch.outputs = c->outputs;
  return 0;
}

static int tool_demo_measure(tool_demo_case *c, tool_demo_row *row) {
  int runs = 0;
  int rc = tool_launch_once(&c->launch); /* warm-up */
  if (rc == 0) rc = tool_measure(tool_launch_once, &c->launch, 5, 1000, 0.2, &row->kernel_s, &runs);
  if (rc == 0) rc = tool_measure(tool_reference_once, c, 3, 50, 0.1, &row->reference_s, &runs);
  if (rc != 0) return rc;
  row->ok = 1;
  for (int i = 0; i < c->op->n_outputs; i++) {
    mfx_compare cmp =
        mfx_compare_arrays_int(&c->outputs[i], &c->want[i], TOOL_DEFAULT_TOL, c->op->int_tolerance);
    if (cmp.max_rel_err > row->max_rel_err) row->max_rel_err = cmp.max_rel_err;
    if (!cmp.ok) row->ok = 0;
  }
  double work = tool_op_work(c->op, c->dims, &row->unit);
  row->rate = work > 0.0 && row->kernel_s > 0.0 ? work / row->kernel_s * 1e-9 : 0.0;
  return 0;
}

static void tool_demo_print_row(const tool_demo_case *c, const tool_demo_row *row, int rc) {
  char dims[256], rate[48] = "-";
  tool_format_dims(c->op, c->dims, dims, sizeof dims);
  if (rc != 0) {
    printf("%-17s %-26s %10s %10s %9s %14s %11s  FAIL\n", c->op->name, dims, "-", "-", "-", "-",
           "-");
    return;
  }
  if (row->rate > 0.0) snprintf(rate, sizeof rate, "%.2f %s", row->rate, row->unit);
  printf("%-17s %-26s %10.3f %10.3f %8.1fx %14s %11.2e  %s\n", c->op->name, dims,
         row->kernel_s * 1e3, row->reference_s * 1e3, row->reference_s / row->kernel_s, rate,
         row->max_rel_err, row->ok ? "ok" : "MISMATCH");
}

/* Returns 0 when the op compiled, ran and matched its reference. */
static int tool_demo_one(const mfx_op *op, mfx_pool *pool) {
  tool_demo_case c;
  tool_demo_row row;
  memset(&c, 0, sizeof c);
  memset(&row, 0, sizeof row);
  c.op = op;
  int rc = tool_demo_dims(&c);
  if (rc == 0) rc = tool_demo_prepare(&c, pool);
  if (rc == 0) rc = tool_demo_measure(&c, &row);
  tool_demo_print_row(&c, &row, rc);
  fflush(stdout);
  if (c.compiled) mfx_op_kernel_free(&c.kernel);
  tool_free_arrays(c.inputs, MFX_OP_MAX_TENSORS);
  tool_free_arrays(c.outputs, MFX_OP_MAX_TENSORS);
  tool_free_arrays(c.want, MFX_OP_MAX_TENSORS);
  return rc != 0 || !row.ok;
}

int tool_demo_ops_table(mfx_pool *pool) {
  printf("  each op JIT-compiled for this CPU with its default config, %d threads; kernel and\n"
         "  reference times are medians; the reference is plain C on 1 thread.\n\n",
         mfx_pool_threads(pool));
  printf("%-17s %-26s %10s %10s %9s %14s %11s  %s\n", "op", "dims", "kernel ms", "ref ms",
         "speed-up", "rate", "max_rel_err", "check");
  int failed = 0;
  for (int i = 0; i < mfx_op_count(); i++) failed += tool_demo_one(mfx_op_at(i), pool);
  printf("\n%d of %d ops match their reference\n", mfx_op_count() - failed, mfx_op_count());
  return failed;
}
