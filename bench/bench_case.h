/* What the benchmarks share (bench_ops, bench_pair): one op at one shape,
 * compiled with a config, its arrays with random inputs (seed 7), run and
 * checked against the plain-C reference, so no timing is of a wrong kernel. */
#ifndef MFX_BENCH_CASE_H
#define MFX_BENCH_CASE_H

#include <string.h>

#include "mfx/ops.h"

typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_op_kernel kernel;
  mfx_array in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  mfx_kernel_env env;
} bench_case;

/* Compiles op at dims ("M=64,N=64,K=64") with the config in JSON (NULL: the
 * template default), allocates its arrays and fills its inputs. */
static inline mfx_status bench_case_open(bench_case *c, const char *op, const char *dims,
                                         const char *json, mfx_pool *pool) {
  memset(c, 0, sizeof *c);
  c->op = mfx_op_find(op);
  if (c->op == NULL)
    return mfx_fail(MFX_ERR_NOT_FOUND, "unknown op %s (mfx ops lists them)", op);
  mfx_config cfg;
  mfx_status rc = mfx_op_parse_dims(c->op, dims, c->dims);
  if (json == NULL) mfx_config_default(c->op, &cfg);
  else if (rc == MFX_OK) rc = mfx_config_parse_json(c->op, json, &cfg);
  if (rc == MFX_OK) rc = mfx_op_compile(c->op, c->dims, &cfg, &c->kernel);
  if (rc == MFX_OK) rc = mfx_op_alloc_inputs(c->op, c->dims, c->in);
  if (rc == MFX_OK) rc = mfx_op_alloc_outputs(c->op, c->dims, c->out);
  if (rc == MFX_OK) rc = mfx_op_alloc_outputs(c->op, c->dims, c->want);
  if (rc != MFX_OK) return rc;
  mfx_op_random_inputs(c->op, c->dims, 7, c->in);
  mfx_kernel_env_init(&c->env, pool);
  return MFX_OK;
}

/* One run (a bench_fn: ctx is the bench_case). */
static inline void bench_case_run(void *ctx) {
  bench_case *c = ctx;
  mfx_op_kernel_run(&c->kernel, &c->env, c->in, c->out);
}

/* Runs once more and compares with the reference: 1 when it agrees. */
static inline int bench_case_check(bench_case *c) {
  bench_case_run(c);
  c->op->reference(c->dims, c->in, c->want);
  return mfx_compare_arrays_int(&c->out[0], &c->want[0], 1e-4, c->op->int_tolerance).ok;
}

static inline void bench_case_close(bench_case *c) {
  if (c->op == NULL) return;
  for (int i = 0; i < c->op->n_inputs; i++) mfx_array_free(&c->in[i]);
  for (int i = 0; i < c->op->n_outputs; i++) {
    mfx_array_free(&c->out[i]);
    mfx_array_free(&c->want[i]);
  }
  mfx_op_kernel_free(&c->kernel);
}

#endif
