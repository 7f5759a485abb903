/* What the runtime knows of each op without the compiler: its dims, its
 * arguments' names, dtypes and shapes as functions of the dims, and the
 * values an index or shift input may take. The loader checks every kernel
 * of a known op against it (a resealed file is a hostile file: its dims,
 * shapes and dtypes must agree), and every run checks data-dependent
 * inputs before a launch, so that no kernel reads outside its buffers.
 * The table is made from ops/op_list.h, the one list of ops and their
 * interfaces, which ops/ makes its mfx_op tables from too: a header of data
 * only, so the runtime reads it without depending on ops/ code
 * (docs/architecture.md). libc only. */
#include "mfx/artifact.h"

#include <stdio.h>
#include <string.h>

/* op_list.h's tensors as mfx_op_interface_tensor. */
#define MFX_T(name, dtype, shape, about) \
  {name, dtype, MFX_OP_NDIM(shape), MFX_OP_SHAPE shape, 0, 0, NULL, 0}
#define MFX_T_RANGE(name, dtype, shape, lo, hi, about) \
  {name, dtype, MFX_OP_NDIM(shape), MFX_OP_SHAPE shape, 1, lo, NULL, hi}
#define MFX_T_INDEX(name, shape, rows, about) \
  {name, MFX_I32, MFX_OP_NDIM(shape), MFX_OP_SHAPE shape, 1, -1, rows, 0}

static const mfx_op_interface iface_table[] = {
#define MFX_OP(name, tol, wf, wd, wu)                                                            \
  {#name, MFX_OP_COUNT(const char *, MFX_DIMS_##name), MFX_DIMS_##name,                          \
   MFX_OP_COUNT(mfx_op_interface_tensor, MFX_INPUTS_##name), MFX_INPUTS_##name,                  \
   MFX_OP_COUNT(mfx_op_interface_tensor, MFX_OUTPUTS_##name), MFX_OUTPUTS_##name},
#include "../ops/op_list.h"
#undef MFX_OP
};

#define IFACE_COUNT ((int)(sizeof iface_table / sizeof iface_table[0]))

int mfx_op_interface_count(void) { return IFACE_COUNT; }

const mfx_op_interface *mfx_op_interface_at(int i) {
  return i >= 0 && i < IFACE_COUNT ? &iface_table[i] : NULL;
}

const mfx_op_interface *mfx_op_interface_find(const char *op) {
  if (op == NULL) return NULL;
  for (int i = 0; i < IFACE_COUNT; i++)
    if (strcmp(iface_table[i].op, op) == 0) return &iface_table[i];
  return NULL;
}

int mfx_op_interface_dim(const mfx_op_interface *f, const char *name) {
  for (int d = 0; d < f->n_dims; d++)
    if (strcmp(f->dims[d], name) == 0) return d;
  return -1;
}

void mfx_op_interface_shape(const mfx_op_interface *f, const mfx_op_interface_tensor *t,
                            const int64_t *dims, int64_t *shape) {
  for (int i = 0; i < t->ndim; i++) {
    int d = mfx_op_interface_dim(f, t->shape[i]);
    shape[i] = d >= 0 ? dims[d] : 0;
  }
}

/* ---- values of ranged inputs ---------------------------------------------------- */

static int64_t iface_element(const mfx_array *a, int64_t i) {
  switch (a->dtype) {
  case MFX_I8: return ((const int8_t *)a->data)[i];
  case MFX_I16: return ((const int16_t *)a->data)[i];
  case MFX_I32: return ((const int32_t *)a->data)[i];
  case MFX_I64: return ((const int64_t *)a->data)[i];
  case MFX_BOOL: case MFX_U8: return ((const uint8_t *)a->data)[i];
  case MFX_U32: return ((const uint32_t *)a->data)[i];
  case MFX_U64: {
    uint64_t v = ((const uint64_t *)a->data)[i];
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
  }
  case MFX_F32: case MFX_DTYPE_COUNT: break;
  }
  return 0;
}

/* Element i as "[a, b]" of its shape. */
static void iface_position(const mfx_array *a, int64_t i, char *buf, size_t size) {
  int64_t at[MFX_MAX_DIMS] = {0};
  for (int d = a->ndim - 1; d >= 0; d--) {
    at[d] = a->shape[d] > 0 ? i % a->shape[d] : 0;
    i = a->shape[d] > 0 ? i / a->shape[d] : 0;
  }
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int d = 0; d < a->ndim && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "", (long long)at[d]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

static mfx_status iface_check_values(const mfx_op_interface *f, const mfx_op_interface_tensor *t,
                                     const int64_t *dims, const mfx_array *a, const char *where) {
  if (a->data == NULL || mfx_dtype_is_float(a->dtype) || (int)a->dtype < 0 ||
      a->dtype >= MFX_DTYPE_COUNT)
    return mfx_fail(MFX_ERR_INVALID, "%s: %s input %s must be integer data", where, f->op,
                    t->name);
  int64_t hi = t->max;
  if (t->max_dim != NULL) {
    int d = mfx_op_interface_dim(f, t->max_dim);
    hi = d >= 0 ? dims[d] - 1 : -1;
  }
  int64_t n = mfx_array_numel(a);
  for (int64_t i = 0; i < n; i++) {
    int64_t v = iface_element(a, i);
    if (v >= t->min && v <= hi) continue;
    char at[128];
    iface_position(a, i, at, sizeof at);
    if (t->max_dim != NULL)
      return mfx_fail(MFX_ERR_INVALID, "%s: %s input %s%s = %lld is not a row of the %s=%lld "
                      "rows (expected %lld..%lld, -1 for none)", where, f->op, t->name, at,
                      (long long)v, t->max_dim, (long long)(hi + 1), (long long)t->min,
                      (long long)hi);
    return mfx_fail(MFX_ERR_INVALID, "%s: %s input %s%s = %lld is outside %lld..%lld", where,
                    f->op, t->name, at, (long long)v, (long long)t->min, (long long)hi);
  }
  return MFX_OK;
}

mfx_status mfx_op_check_inputs(const char *op, const int64_t *dims, int n_inputs,
                               const mfx_array *inputs, const char *where) {
  const mfx_op_interface *f = mfx_op_interface_find(op);
  if (where == NULL) where = op != NULL ? op : "inputs";
  if (f == NULL) return MFX_OK;
  if (dims == NULL || (n_inputs > 0 && inputs == NULL) || n_inputs != f->n_inputs)
    return mfx_fail(MFX_ERR_INVALID, "%s: %s takes %d inputs and its dims, got %d", where, op,
                    f->n_inputs, n_inputs);
  for (int i = 0; i < f->n_inputs; i++) {
    const mfx_op_interface_tensor *t = &f->inputs[i];
    if (!t->ranged) continue;
    mfx_status st = iface_check_values(f, t, dims, &inputs[i], where);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}
