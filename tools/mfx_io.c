/* Inputs, outputs, checking and timing for the mfx tool: .npy bindings
 * checked against the op's interface, comparison with the reference, the
 * median-of-runs timer and operation counts for rates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx_cli.h"

/* ---- bindings ------------------------------------------------------------------ */

static int tool_tensor_index(const mfx_op_tensor *list, int n, const char *name) {
  for (int i = 0; i < n; i++) {
    if (strcmp(list[i].name, name) == 0) return i;
  }
  return -1;
}

static void tool_format_tensor_names(const mfx_op_tensor *list, int n, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && used < size; i++) {
    int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", list[i].name);
    if (k < 0) break;
    used += (size_t)k;
  }
}

/* Each binding names a tensor of `list` (the op's inputs or outputs), once. */
static int tool_check_binding_list(const mfx_op *op, const char *option, const char *kind,
                                   const tool_binding *b, int n, const mfx_op_tensor *list,
                                   int n_list) {
  char names[256];
  tool_format_tensor_names(list, n_list, names, sizeof names);
  for (int i = 0; i < n; i++) {
    if (tool_tensor_index(list, n_list, b[i].name) < 0) {
      return tool_error(TOOL_EXIT_USAGE, "%s %s=%s: %s has no %s named '%s'; its %ss: %s",
                        option, b[i].name, b[i].path, op->name, kind, b[i].name, kind, names);
    }
    for (int j = 0; j < i; j++) {
      if (strcmp(b[i].name, b[j].name) == 0) {
        return tool_error(TOOL_EXIT_USAGE, "%s: %s %s given twice (%s and %s); give it once",
                          option, kind, b[i].name, b[j].path, b[i].path);
      }
    }
  }
  return 0;
}

int tool_check_bindings(const mfx_op *op, const tool_args *args) {
  int rc = tool_check_binding_list(op, "--in", "input", args->in, args->n_in, op->inputs,
                                   op->n_inputs);
  if (rc != 0) return rc;
  return tool_check_binding_list(op, "--out", "output", args->out, args->n_out, op->outputs,
                                 op->n_outputs);
}

static int tool_same_shape(const mfx_array *a, const int64_t *shape, int ndim) {
  if (a->ndim != ndim) return 0;
  for (int i = 0; i < ndim; i++) {
    if (a->shape[i] != shape[i]) return 0;
  }
  return 1;
}

static int tool_load_one(const tool_problem *p, const tool_binding *b, mfx_array *slot) {
  const mfx_op_tensor *t = &p->op->inputs[tool_tensor_index(p->op->inputs, p->op->n_inputs,
                                                            b->name)];
  int64_t want[MFX_MAX_DIMS];
  char want_text[128], got_text[128];
  mfx_array loaded;
  memset(&loaded, 0, sizeof loaded);
  if (mfx_npy_load(b->path, &loaded) != MFX_OK) {
    char what[600];
    snprintf(what, sizeof what, "--in %s=%s", b->name, b->path);
    return tool_error_status(TOOL_EXIT_FAIL, what);
  }
  mfx_op_tensor_shape(p->op, t, p->dims, want);
  if (loaded.dtype != t->dtype || !tool_same_shape(&loaded, want, t->ndim)) {
    tool_format_shape(want, t->ndim, want_text, sizeof want_text);
    tool_format_shape(loaded.shape, loaded.ndim, got_text, sizeof got_text);
    tool_error(TOOL_EXIT_FAIL, "--in %s=%s: input %s of %s must be %s %s; the file holds %s %s",
               b->name, b->path, t->name, p->op->name, mfx_dtype_name(t->dtype), want_text,
               mfx_dtype_name(loaded.dtype), got_text);
    mfx_array_free(&loaded);
    return TOOL_EXIT_FAIL;
  }
  mfx_array_free(slot);
  *slot = loaded;
  return 0;
}

int tool_load_inputs(const tool_problem *p, const tool_args *args, mfx_array *inputs) {
  for (int i = 0; i < args->n_in; i++) {
    int index = tool_tensor_index(p->op->inputs, p->op->n_inputs, args->in[i].name);
    int rc = tool_load_one(p, &args->in[i], &inputs[index]);
    if (rc != 0) return rc;
  }
  /* Index and shift inputs from files: checked before any kernel sees them. */
  if (args->n_in > 0 &&
      mfx_op_check_inputs(p->op->name, p->dims, p->op->n_inputs, inputs, "--in") != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, p->op->name);
  return 0;
}

int tool_save_outputs(const tool_problem *p, const tool_args *args, const mfx_array *outputs) {
  for (int i = 0; i < args->n_out; i++) {
    const tool_binding *b = &args->out[i];
    int index = tool_tensor_index(p->op->outputs, p->op->n_outputs, b->name);
    if (mfx_npy_save(b->path, &outputs[index]) != MFX_OK) {
      char what[600];
      snprintf(what, sizeof what, "--out %s=%s", b->name, b->path);
      return tool_error_status(TOOL_EXIT_FAIL, what);
    }
  }
  return 0;
}

void tool_free_arrays(mfx_array *arrays, int n) {
  for (int i = 0; i < n; i++) mfx_array_free(&arrays[i]);
}

/* ---- checking against the reference ---------------------------------------------- */

/* The element of output `which` that failed the check, both values. */
static void tool_print_differing(int which, const mfx_array *got, const mfx_array *want,
                                 int64_t i) {
  if (i < 0 || got->data == NULL || want->data == NULL || got->dtype != want->dtype) return;
  if (got->dtype == MFX_F32) {
    fprintf(stderr, "mfx: output %d differs at element %lld: got %.9g, reference %.9g\n", which,
            (long long)i, (double)((const float *)got->data)[i],
            (double)((const float *)want->data)[i]);
    return;
  }
  size_t size = mfx_dtype_size(got->dtype);
  int64_t g = 0, w = 0;
  if (size > sizeof g) return;
  memcpy(&g, (const unsigned char *)got->data + (size_t)i * size, size);
  memcpy(&w, (const unsigned char *)want->data + (size_t)i * size, size);
  fprintf(stderr, "mfx: output %d differs at element %lld: got bytes 0x%llx, reference 0x%llx\n",
          which, (long long)i, (unsigned long long)g, (unsigned long long)w);
}

int tool_compare_outputs(const mfx_op *op, const int64_t *dims, const mfx_array *inputs,
                         const mfx_array *outputs, double tol, mfx_compare *worst) {
  mfx_array want[MFX_OP_MAX_TENSORS];
  memset(want, 0, sizeof want);
  memset(worst, 0, sizeof *worst);
  worst->ok = 1;
  worst->first_index = -1;
  worst->worst_index = -1;
  if (mfx_op_alloc_outputs(op, dims, want) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "reference outputs");
  }
  op->reference(dims, inputs, want);
  for (int i = 0; i < op->n_outputs; i++) {
    mfx_compare c = mfx_compare_arrays_int(&outputs[i], &want[i], tol, op->int_tolerance);
    if (c.max_abs_err > worst->max_abs_err) worst->max_abs_err = c.max_abs_err;
    if (c.max_rel_err > worst->max_rel_err) worst->max_rel_err = c.max_rel_err;
    if (!c.ok && worst->ok) {
      worst->ok = 0;
      worst->worst_index = c.worst_index;
      tool_print_differing(i, &outputs[i], &want[i], c.worst_index);
    }
    if (c.first_index >= 0 && worst->first_index < 0) {
      worst->first_index = c.first_index;
      worst->first_got = c.first_got;
      worst->first_want = c.first_want;
    }
  }
  tool_free_arrays(want, op->n_outputs);
  return 0;
}

/* ---- launching ------------------------------------------------------------------- */

int tool_launch_once(void *launch) {
  tool_launch *l = launch;
  if (mfx_op_kernel_run(l->kernel, &l->env, l->inputs, l->outputs) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "running the kernel");
  }
  return 0;
}

void tool_format_element(const mfx_array *a, int64_t i, char *buf, size_t size) {
  const void *d = a->data;
  switch (a->dtype) {
  case MFX_BOOL: snprintf(buf, size, "%d", ((const uint8_t *)d)[i] != 0); return;
  case MFX_I8: snprintf(buf, size, "%d", ((const int8_t *)d)[i]); return;
  case MFX_I16: snprintf(buf, size, "%d", ((const int16_t *)d)[i]); return;
  case MFX_I32: snprintf(buf, size, "%d", ((const int32_t *)d)[i]); return;
  case MFX_I64: snprintf(buf, size, "%lld", (long long)((const int64_t *)d)[i]); return;
  case MFX_U8: snprintf(buf, size, "%u", ((const uint8_t *)d)[i]); return;
  case MFX_U32: snprintf(buf, size, "%u", ((const uint32_t *)d)[i]); return;
  case MFX_U64: snprintf(buf, size, "%llu", (unsigned long long)((const uint64_t *)d)[i]); return;
  case MFX_F32: snprintf(buf, size, "%g", ((const float *)d)[i]); return;
  case MFX_DTYPE_COUNT: break;
  }
  snprintf(buf, size, "?");
}

/* ---- timing ------------------------------------------------------------------------ */

/* A tool's timed function (an exit status) under the runtime's timing loop. */
typedef struct {
  tool_timed_fn fn;
  void *closure;
  int rc;
} tool_timed_call;

static mfx_status tool_timed(void *user, double *seconds) {
  (void)seconds;
  tool_timed_call *c = user;
  c->rc = c->fn(c->closure);
  return c->rc == 0 ? MFX_OK : MFX_ERR_INVALID;
}

int tool_measure(tool_timed_fn fn, void *closure, int min_runs, int max_runs,
                 double min_seconds, double *median_seconds, int *runs) {
  tool_timed_call call = {fn, closure, 0};
  mfx_timing plan = {.min_runs = min_runs, .max_runs = max_runs, .min_seconds = min_seconds};
  mfx_status st = mfx_time_median(tool_timed, &call, &plan, median_seconds, runs);
  if (call.rc != 0) return call.rc;
  if (st != MFX_OK) return tool_error(TOOL_EXIT_FAIL, "%s", mfx_last_error());
  return 0;
}

/* ---- operation counts ---------------------------------------------------------------- */

/* The work rates are in ops/op_list.h. */
double tool_op_work(const mfx_op *op, const int64_t *dims, const char **unit) {
  return mfx_op_work(op, dims, unit);
}
