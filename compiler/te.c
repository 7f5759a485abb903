/* Tensor expressions: placeholders (inputs) and computes (out[axes] = body),
 * where a body may be one reduction over reduction axes. A compute records
 * the tensors it reads, which is the graph the schedule walks. */
#include <string.h>

#include "bounds.h"
#include "mfx/compiler.h"

/* The most elements a tensor may have: 2^40 (4 TiB of f32); its byte size
 * and every flat index then fit an int64 with room to spare. */
#define TE_MAX_ELEMENTS ((int64_t)1 << 40)

static mfx_status check_shape(const char *name, int ndim, const int64_t *shape, mfx_dtype t) {
  if (ndim < 1 || ndim > MFX_MAX_DIMS)
    return mfx_fail(MFX_ERR_INVALID, "tensor %s: rank %d (expected 1..%d)", name, ndim,
                    MFX_MAX_DIMS);
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 1)
      return mfx_fail(MFX_ERR_INVALID, "tensor %s: dimension %d is %lld (must be positive)",
                      name, i, (long long)shape[i]);
    if (__builtin_mul_overflow(count, shape[i], &count) || count > TE_MAX_ELEMENTS)
      return mfx_fail(MFX_ERR_INVALID,
                      "tensor %s: too many elements (dimensions up to %d multiply past "
                      "2^40 = %lld, the limit)", name, i, (long long)TE_MAX_ELEMENTS);
  }
  int64_t bytes;
  if (t < MFX_DTYPE_COUNT && __builtin_mul_overflow(count, (int64_t)mfx_dtype_size(t), &bytes))
    return mfx_fail(MFX_ERR_INVALID, "tensor %s: its size in bytes overflows int64", name);
  return MFX_OK;
}

static mfx_tensor *tensor_new(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                              const int64_t *shape) {
  if (check_shape(name, ndim, shape, t) != MFX_OK) return NULL;
  if (t == MFX_BOOL || t >= MFX_DTYPE_COUNT) {
    mfx_fail(MFX_ERR_INVALID, "tensor %s: unsupported dtype", name);
    return NULL;
  }
  mfx_tensor *x = mfx_arena_alloc(a, sizeof *x);
  if (!x) return NULL;
  x->buf = mfx_buffer_create(a, name, t, ndim, shape, MFX_SCOPE_GLOBAL);
  x->buf->tensor = x;
  return x;
}

mfx_tensor *mfx_placeholder(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                            const int64_t *shape) {
  mfx_tensor *x = tensor_new(a, name, t, ndim, shape);
  if (x) x->is_placeholder = 1;
  return x;
}

mfx_tensor *mfx_compute_begin(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                              const int64_t *shape, const char *const *axis_names) {
  mfx_tensor *x = tensor_new(a, name, t, ndim, shape);
  if (!x) return NULL;
  for (int i = 0; axis_names && i < ndim; i++)
    for (int j = 0; j < i; j++)
      if (strcmp(axis_names[i], axis_names[j]) == 0) {
        mfx_fail(MFX_ERR_INVALID, "compute %s: axis name '%s' is used twice (axes %d and %d); "
                 "each axis needs its own name", name, axis_names[i], j, i);
        return NULL;
      }
  x->n_axes = ndim;
  for (int i = 0; i < ndim; i++) {
    char fallback[16];
    snprintf(fallback, sizeof fallback, "i%d", i);
    x->axes[i] = mfx_var_create(a, axis_names ? axis_names[i] : fallback, shape[i], 0);
  }
  return x;
}

mfx_expr *mfx_tensor_load(mfx_arena *a, mfx_tensor *t, int n, mfx_expr *const *idx) {
  if (!t) return NULL;
  if (n != t->buf->ndim) {
    mfx_fail(MFX_ERR_INVALID, "load %s: %d indices for a rank-%d tensor", t->buf->name, n,
             t->buf->ndim);
    return NULL;
  }
  return mfx_load(a, t->buf, n, idx);
}

/* ---- checking a body ------------------------------------------------------------ */

typedef struct {
  mfx_arena *arena;
  mfx_tensor *t;
  mfx_var *const *red_axes;
  int n_red;
  mfx_status status;
} body_check;

static int axis_allowed(const body_check *c, const mfx_var *v) {
  for (int i = 0; i < c->t->n_axes; i++)
    if (c->t->axes[i] == v) return 1;
  for (int i = 0; i < c->n_red; i++)
    if (c->red_axes[i] == v) return 1;
  return 0;
}

static void add_input(body_check *c, mfx_tensor *in) {
  mfx_tensor *t = c->t;
  for (int i = 0; i < t->n_inputs; i++)
    if (t->inputs[i] == in) return;
  mfx_tensor **grown = mfx_arena_alloc(c->arena, sizeof(mfx_tensor *) * (size_t)(t->n_inputs + 1));
  if (t->n_inputs) memcpy(grown, t->inputs, sizeof(mfx_tensor *) * (size_t)t->n_inputs);
  grown[t->n_inputs++] = in;
  t->inputs = grown;
}

static void check_expr(body_check *c, const mfx_expr *e, int top) {
  if (!e || c->status != MFX_OK) return;
  const char *name = c->t->buf->name;
  switch (e->kind) {
  case MFX_EXPR_INT: case MFX_EXPR_FLOAT: return;
  case MFX_EXPR_VAR:
    if (!axis_allowed(c, e->u.var))
      c->status = mfx_fail(MFX_ERR_INVALID,
                           "compute %s: uses axis %s, which is neither one of its axes nor "
                           "one of its reduction axes", name, e->u.var->name);
    return;
  case MFX_EXPR_LOAD: {
    mfx_tensor *in = e->u.load.buf->tensor;
    if (!in) {
      c->status = mfx_fail(MFX_ERR_INVALID, "compute %s: loads %s, which is not a tensor",
                           name, e->u.load.buf->name);
      return;
    }
    if (in == c->t) {
      c->status = mfx_fail(MFX_ERR_INVALID, "compute %s: reads itself", name);
      return;
    }
    add_input(c, in);
    for (int i = 0; i < e->u.load.n; i++) check_expr(c, e->u.load.idx[i], 0);
    return;
  }
  case MFX_EXPR_BINARY: check_expr(c, e->u.bin.a, 0); check_expr(c, e->u.bin.b, 0); return;
  case MFX_EXPR_UNARY: check_expr(c, e->u.un.a, 0); return;
  case MFX_EXPR_SELECT:
    check_expr(c, e->u.sel.cond, 0);
    check_expr(c, e->u.sel.a, 0);
    check_expr(c, e->u.sel.b, 0);
    return;
  case MFX_EXPR_CAST: check_expr(c, e->u.cast.a, 0); return;
  case MFX_EXPR_REDUCE:
    if (!top) {
      c->status = mfx_fail(MFX_ERR_INVALID,
                           "compute %s: a reduction must be the whole body, not part of it "
                           "(split it into its own compute)", name);
      return;
    }
    c->red_axes = e->u.red.axes;
    c->n_red = e->u.red.n_axes;
    check_expr(c, e->u.red.src, 0);
    return;
  }
}

mfx_status mfx_compute_set_body(mfx_arena *a, mfx_tensor *t, mfx_expr *body) {
  if (!t || t->is_placeholder)
    return mfx_fail(MFX_ERR_INVALID, "set_body: not a compute tensor");
  if (!body)
    return mfx_fail_context(MFX_ERR_INVALID, "compute %s: body", t->buf->name);
  if (body->kind == MFX_EXPR_FLOAT && !mfx_dtype_is_float(t->buf->dtype) &&
      !(body->u.f >= -9223372036854775808.0 && body->u.f < 9223372036854775808.0))
    return mfx_fail(MFX_ERR_INVALID, "compute %s: constant body %g does not fit %s", t->buf->name,
                    body->u.f, mfx_dtype_name(t->buf->dtype));
  if (body->kind == MFX_EXPR_INT || body->kind == MFX_EXPR_FLOAT)
    body = mfx_dtype_is_float(t->buf->dtype)
               ? mfx_f32(a, body->kind == MFX_EXPR_INT ? (double)body->u.i : body->u.f)
               : mfx_int(a, t->buf->dtype, body->kind == MFX_EXPR_INT ? body->u.i : (int64_t)body->u.f);
  if (body->type != t->buf->dtype)
    return mfx_fail(MFX_ERR_INVALID, "compute %s: body has type %s, tensor is %s (add a cast)",
                    t->buf->name, mfx_dtype_name(body->type), mfx_dtype_name(t->buf->dtype));
  if (mfx_expr_deeper_than(body, MFX_MAX_EXPR_DEPTH))
    return mfx_fail(MFX_ERR_INVALID,
                    "compute %s: body is more than %d levels deep (the limit; split it into "
                    "several computes)", t->buf->name, MFX_MAX_EXPR_DEPTH);
  body_check c = {a, t, NULL, 0, MFX_OK};
  t->n_inputs = 0;
  check_expr(&c, body, 1);
  if (c.status != MFX_OK) return c.status;
  mfx_status rc = mfx_check_expr_safe(body);
  if (rc != MFX_OK) return mfx_fail_context(rc, "compute %s", t->buf->name);
  t->body = body;
  return MFX_OK;
}
