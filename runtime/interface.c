/* What the runtime knows of each op without the compiler: its dims, its
 * arguments' names, dtypes and shapes as functions of the dims, and the
 * values an index or shift input may take. The loader checks every kernel
 * of a known op against it (a resealed file is a hostile file: its dims,
 * shapes and dtypes must agree), and every run checks data-dependent
 * inputs before a launch, so that no kernel reads outside its buffers.
 * Keep it in step with the ops (ops/registry.c); tests/test_hardening.c
 * checks that both say the same. libc only. */
#include "mfx/artifact.h"

#include <stdio.h>
#include <string.h>

#define IN(name, dtype, ndim, ...) {name, dtype, ndim, {__VA_ARGS__}, 0, 0, NULL, 0}
/* An input whose values are row indices in [-1, dim): -1 marks padding. */
#define INDEX(name, ndim, bound, ...) {name, MFX_I32, ndim, {__VA_ARGS__}, 1, -1, bound, 0}
/* An input whose values lie in [lo, hi]. */
#define RANGED(name, dtype, ndim, lo, hi, ...) {name, dtype, ndim, {__VA_ARGS__}, 1, lo, NULL, hi}

static const mfx_op_interface iface_table[] = {
  {"linear", 3, {"M", "N", "K"}, 2,
   {IN("X", MFX_F32, 2, "M", "K"), IN("W", MFX_F32, 2, "N", "K")}, 1,
   {IN("Y", MFX_F32, 2, "M", "N")}},
  {"shift_linear", 3, {"M", "N", "K"}, 3,
   {IN("X", MFX_I32, 2, "M", "K"), RANGED("S", MFX_I8, 2, 0, 15, "N", "K"),
    RANGED("G", MFX_I8, 2, -1, 1, "N", "K")}, 1,
   {IN("Y", MFX_I32, 2, "M", "N")}},
  {"matadd", 5, {"B", "H", "N", "D", "C"}, 2,
   {IN("Hc", MFX_I8, 4, "B", "H", "N", "C"), IN("V", MFX_F32, 4, "B", "H", "N", "D")}, 1,
   {IN("O", MFX_F32, 4, "B", "H", "C", "D")}},
  {"linear_gelu", 3, {"M", "N", "K"}, 2,
   {IN("X", MFX_F32, 2, "M", "K"), IN("W", MFX_F32, 2, "N", "K")}, 1,
   {IN("Y", MFX_F32, 2, "M", "N")}},
  {"shift_linear_q16_gelu", 3, {"M", "N", "K"}, 3,
   {IN("X", MFX_F32, 2, "M", "K"), RANGED("S", MFX_I8, 2, 0, 15, "N", "K"),
    RANGED("G", MFX_I8, 2, -1, 1, "N", "K")}, 1,
   {IN("R", MFX_I32, 2, "M", "N")}},
  {"shift_linear_dequantize", 3, {"M", "N", "K"}, 3,
   {IN("X", MFX_I32, 2, "M", "K"), RANGED("S", MFX_I8, 2, 0, 15, "N", "K"),
    RANGED("G", MFX_I8, 2, -1, 1, "N", "K")}, 1,
   {IN("Y", MFX_F32, 2, "M", "N")}},
  {"shift_linear16", 3, {"M", "N", "K"}, 3,
   {RANGED("X", MFX_I16, 2, -8192, 8191, "M", "K"), RANGED("S", MFX_I8, 2, 0, 15, "N", "K"),
    RANGED("G", MFX_I8, 2, -1, 1, "N", "K")}, 1,
   {IN("Y", MFX_I32, 2, "M", "N")}},
  {"hamming", 3, {"N", "M", "W"}, 2,
   {IN("Q", MFX_U32, 2, "N", "W"), IN("K", MFX_U32, 2, "M", "W")}, 1,
   {IN("S", MFX_I32, 2, "N", "M")}},
  {"hamming16", 3, {"N", "M", "W"}, 2,
   {IN("Q", MFX_U32, 2, "N", "W"), IN("K", MFX_U32, 2, "M", "W")}, 1,
   {IN("S", MFX_I16, 2, "N", "M")}},
  {"binary_attention", 5, {"B", "H", "N", "D", "C"}, 2,
   {IN("Hc", MFX_I8, 4, "B", "H", "N", "C"), IN("V", MFX_F32, 4, "B", "H", "N", "D")}, 1,
   {IN("O", MFX_F32, 4, "B", "H", "N", "D")}},
  {"gelu", 2, {"M", "N"}, 1, {IN("X", MFX_F32, 2, "M", "N")}, 1,
   {IN("Y", MFX_F32, 2, "M", "N")}},
  {"q16_quantize", 2, {"M", "N"}, 1, {IN("X", MFX_F32, 2, "M", "N")}, 1,
   {IN("Q", MFX_I32, 2, "M", "N")}},
  {"q16_dequantize", 2, {"M", "N"}, 1, {IN("Q", MFX_I32, 2, "M", "N")}, 1,
   {IN("X", MFX_F32, 2, "M", "N")}},
  {"q16_gelu", 2, {"M", "N"}, 1, {IN("Q", MFX_I32, 2, "M", "N")}, 1,
   {IN("R", MFX_I32, 2, "M", "N")}},
  {"gather_rows", 3, {"T", "M", "D"}, 2,
   {IN("X", MFX_F32, 2, "T", "D"), INDEX("IDX", 1, "T", "M")}, 1,
   {IN("Y", MFX_F32, 2, "M", "D")}},
  {"combine_rows", 4, {"R", "T", "K", "D"}, 3,
   {IN("YALL", MFX_F32, 2, "R", "D"), INDEX("ROWS", 2, "R", "T", "K"),
    IN("GATES", MFX_F32, 2, "T", "K")}, 1,
   {IN("Y", MFX_F32, 2, "T", "D")}},
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
