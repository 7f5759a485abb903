/* One kernel of an artifact through mfx-runner: its inputs (the seeded
 * random data of `mfx run`, then --in files), one run or a timed series,
 * the comparison with the plain-C reference, and --out files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"
#include "mfx/reference.h"
#include "runner.h"

typedef struct {
  mfx_artifact *art;
  int index;
  const mfx_artifact_kernel *k;
  const mfx_reference_op *ref; /* NULL: an op without a reference here */
  int n_in, n_out;
  mfx_array inputs[MFX_ARTIFACT_MAX_ARGS];
  mfx_array outputs[MFX_ARTIFACT_MAX_ARGS];
} runner_kernel;

static void runner_shape_text(int ndim, const int64_t *shape, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

static void runner_dims_text(const mfx_artifact_kernel *k, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < k->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : "", k->dim_names[d],
                             (long long)k->dims[d]);
}

void runner_list_kernel(const mfx_artifact_kernel *k, int index) {
  char dims[256], shape[160];
  runner_dims_text(k, dims, sizeof dims);
  printf("kernel %d %s: op %s %s, target %s, compiled by %s\n", index, k->name, k->op, dims,
         k->target, k->compiler);
  printf("  config   %s\n", k->config);
  for (int i = 0; i < k->n_args; i++) {
    runner_shape_text(k->args[i].ndim, k->args[i].shape, shape, sizeof shape);
    printf("  %-9s %s %s %s\n", mfx_arg_role_name(k->args[i].role), k->args[i].name,
           mfx_dtype_name(k->args[i].dtype), shape);
  }
  for (int i = 0; i < k->n_launches; i++) {
    const mfx_artifact_launch *l = &k->launches[i];
    printf("  launch   %s grid (%u,%u,%u) block (%u,%u,%u) shared %llu+%llu\n", l->name,
           l->grid[0], l->grid[1], l->grid[2], l->block[0], l->block[1], l->block[2],
           (unsigned long long)l->shared_static, (unsigned long long)l->shared_dynamic);
  }
}

/* ---- inputs ---------------------------------------------------------------------- */

static int runner_find_arg(const mfx_artifact_kernel *k, mfx_arg_role role, const char *name) {
  int first = mfx_artifact_role_first(k, role), n = mfx_artifact_role_count(k, role);
  for (int i = 0; i < n; i++)
    if (strcmp(k->args[first + i].name, name) == 0) return i;
  return -1;
}

/* Every binding names an argument of the role. */
static int runner_check_bindings(const runner_kernel *r, const runner_binding *b, int n,
                                 mfx_arg_role role, const char *option) {
  for (int i = 0; i < n; i++)
    if (runner_find_arg(r->k, role, b[i].name) < 0)
      return runner_error(RUNNER_EXIT_USAGE, "%s %s=%s: kernel %s has no %s named %s (see "
                          "--list)", option, b[i].name, b[i].path, r->k->name,
                          mfx_arg_role_name(role), b[i].name);
  return 0;
}

static int runner_load_input(runner_kernel *r, const runner_binding *b) {
  int i = runner_find_arg(r->k, MFX_ARG_INPUT, b->name);
  const mfx_artifact_arg *want = &r->k->args[i];
  mfx_array loaded;
  memset(&loaded, 0, sizeof loaded);
  char what[600], got_shape[160], want_shape[160];
  snprintf(what, sizeof what, "--in %s=%s", b->name, b->path);
  if (mfx_npy_load(b->path, &loaded) != MFX_OK) return runner_error_status(RUNNER_EXIT_FAIL, what);
  int same = loaded.dtype == want->dtype && loaded.ndim == want->ndim;
  for (int d = 0; same && d < want->ndim; d++) same = loaded.shape[d] == want->shape[d];
  if (!same) {
    runner_shape_text(loaded.ndim, loaded.shape, got_shape, sizeof got_shape);
    runner_shape_text(want->ndim, want->shape, want_shape, sizeof want_shape);
    mfx_array_free(&loaded);
    return runner_error(RUNNER_EXIT_FAIL, "%s: input %s of kernel %s must be %s %s; the file "
                        "holds %s %s", what, want->name, r->k->name, mfx_dtype_name(want->dtype),
                        want_shape, mfx_dtype_name(loaded.dtype), got_shape);
  }
  mfx_array_free(&r->inputs[i]);
  r->inputs[i] = loaded;
  return 0;
}

/* Seeded random data for every input, as mfx run makes it; then the files. */
static int runner_prepare_inputs(runner_kernel *r, const runner_args *a) {
  if (mfx_artifact_alloc_arrays(r->k, MFX_ARG_INPUT, r->inputs) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "allocating inputs");
  if (r->ref != NULL) mfx_random_inputs(r->ref->random_input, r->n_in, r->k->dims, a->seed,
                                        r->inputs);
  else if (a->n_in < r->n_in)
    return runner_error(RUNNER_EXIT_FAIL, "kernel %s: this runner has no random inputs for op "
                        "%s; give every input with --in", r->k->name, r->k->op);
  for (int i = 0; i < a->n_in; i++) {
    int rc = runner_load_input(r, &a->in[i]);
    if (rc != 0) return rc;
  }
  if (mfx_op_check_inputs(r->k->op, r->k->dims, r->n_in, r->inputs, r->k->name) != MFX_OK)
    return runner_error(RUNNER_EXIT_FAIL, "%s", mfx_last_error());
  return 0;
}

/* ---- running and checking ---------------------------------------------------------- */

static int runner_execute(runner_kernel *r, const runner_args *a) {
  if (!a->bench) {
    if (mfx_artifact_run(r->art, r->index, r->n_in, r->inputs, r->n_out, r->outputs) != MFX_OK)
      return runner_error_status(RUNNER_EXIT_FAIL, "run");
    return 0;
  }
  double median = 0.0;
  if (mfx_artifact_time(r->art, r->index, r->n_in, r->inputs, r->n_out, r->outputs, a->repeat,
                        &median) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "bench");
  printf("time     median %.4f ms over %d runs (after 1 warm-up) on %s\n", median * 1e3,
         a->repeat, mfx_artifact_device(r->art));
  return 0;
}

/* Integer slack of the check: the op's, on every target (its math, erf
 * from a polynomial, may differ from libm's by design). */
static int64_t runner_int_tolerance(const runner_kernel *r) { return r->ref->int_tolerance; }

static int runner_check(runner_kernel *r, double tol) {
  if (r->ref == NULL)
    return runner_error(RUNNER_EXIT_FAIL, "--check: no reference for op %s in this runner",
                        r->k->op);
  int64_t int_tol = runner_int_tolerance(r);
  mfx_array want[MFX_ARTIFACT_MAX_ARGS];
  memset(want, 0, sizeof want);
  if (mfx_artifact_alloc_arrays(r->k, MFX_ARG_OUTPUT, want) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "reference outputs");
  /* The reference reads rows by index too: never with an index out of range. */
  if (mfx_op_check_inputs(r->k->op, r->k->dims, r->n_in, r->inputs, "--check") != MFX_OK) {
    for (int i = 0; i < r->n_out; i++) mfx_array_free(&want[i]);
    return runner_error_status(RUNNER_EXIT_FAIL, r->k->name);
  }
  r->ref->reference(r->k->dims, r->inputs, want);
  mfx_compare worst = {0.0, 0.0, -1, 1, -1, 0.0, 0.0};
  const char *first_output = NULL;
  for (int i = 0; i < r->n_out; i++) {
    mfx_compare c = mfx_compare_arrays_int(&r->outputs[i], &want[i], tol, int_tol);
    if (c.first_index >= 0 && first_output == NULL) {
      first_output = r->k->args[r->n_in + i].name;
      worst.first_index = c.first_index;
      worst.first_got = c.first_got;
      worst.first_want = c.first_want;
    }
    if (c.max_abs_err > worst.max_abs_err || c.max_abs_err != c.max_abs_err)
      worst.max_abs_err = c.max_abs_err;
    if (c.max_rel_err > worst.max_rel_err || c.max_rel_err != c.max_rel_err)
      worst.max_rel_err = c.max_rel_err;
    if (!c.ok && worst.ok) worst.ok = 0, worst.worst_index = c.worst_index;
  }
  for (int i = 0; i < r->n_out; i++) mfx_array_free(&want[i]);
  printf("check    max_abs_err=%.3g max_rel_err=%.3g %s\n", worst.max_abs_err, worst.max_rel_err,
         worst.ok ? "ok" : "MISMATCH");
  if (worst.ok) return 0;
  return runner_error(RUNNER_EXIT_FAIL, "kernel %s: output differs from the reference (worst "
                      "element %lld, tolerance %g, integers within %lld; first difference: "
                      "%s element %lld is %.9g, the reference %.9g)", r->k->name,
                      (long long)worst.worst_index, tol, (long long)int_tol,
                      first_output != NULL ? first_output : "?", (long long)worst.first_index,
                      worst.first_got, worst.first_want);
}

static int runner_save_outputs(const runner_kernel *r, const runner_args *a) {
  for (int i = 0; i < a->n_out; i++) {
    int o = runner_find_arg(r->k, MFX_ARG_OUTPUT, a->out[i].name);
    if (mfx_npy_save(a->out[i].path, &r->outputs[o]) != MFX_OK) {
      char what[600];
      snprintf(what, sizeof what, "--out %s=%s", a->out[i].name, a->out[i].path);
      return runner_error_status(RUNNER_EXIT_FAIL, what);
    }
    printf("output   %s -> %s\n", a->out[i].name, a->out[i].path);
  }
  return 0;
}

/* The op's reference, when it has the kernel's interface. */
static const mfx_reference_op *runner_reference(const mfx_artifact_kernel *k) {
  const mfx_reference_op *ref = mfx_reference_find(k->op);
  if (ref == NULL || ref->n_dims != k->n_dims ||
      ref->n_inputs != mfx_artifact_role_count(k, MFX_ARG_INPUT) ||
      ref->n_outputs != mfx_artifact_role_count(k, MFX_ARG_OUTPUT))
    return NULL;
  return ref;
}

static int runner_kernel_steps(runner_kernel *r, const runner_args *a) {
  int rc = runner_check_bindings(r, a->in, a->n_in, MFX_ARG_INPUT, "--in");
  if (rc == 0) rc = runner_check_bindings(r, a->out, a->n_out, MFX_ARG_OUTPUT, "--out");
  if (rc == 0) rc = runner_prepare_inputs(r, a);
  if (rc == 0 && mfx_artifact_alloc_arrays(r->k, MFX_ARG_OUTPUT, r->outputs) != MFX_OK)
    rc = runner_error_status(RUNNER_EXIT_FAIL, "allocating outputs");
  if (rc == 0) rc = runner_execute(r, a);
  if (rc == 0 && a->check) rc = runner_check(r, a->tol);
  if (rc == 0) rc = runner_save_outputs(r, a);
  return rc;
}

int runner_run_kernel(mfx_artifact *art, int index, const runner_args *a) {
  runner_kernel r;
  memset(&r, 0, sizeof r);
  r.art = art;
  r.index = index;
  r.k = mfx_artifact_kernel_at(art, index);
  r.ref = runner_reference(r.k);
  r.n_in = mfx_artifact_role_count(r.k, MFX_ARG_INPUT);
  r.n_out = mfx_artifact_role_count(r.k, MFX_ARG_OUTPUT);
  char dims[256];
  runner_dims_text(r.k, dims, sizeof dims);
  printf("kernel   %d %s: %s %s (%s) seed %llu\n", index, r.k->name, r.k->op, dims, r.k->target,
         (unsigned long long)a->seed);
  int rc = runner_kernel_steps(&r, a);
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) {
    mfx_array_free(&r.inputs[i]);
    mfx_array_free(&r.outputs[i]);
  }
  return rc;
}
