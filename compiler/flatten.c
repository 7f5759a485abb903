/* Flattening: multi-dimensional buffer indices become one row-major element
 * offset (n == 1), as code generation expects. A rewrite on the shared
 * mutator (ir_visit.c); accesses that already have one index are kept. */
#include "mfx/compiler.h"

static mfx_expr *flat_index(mfx_arena *a, const mfx_buffer *b, int n, mfx_expr *const *idx) {
  if (n == 1) return idx[0];
  mfx_expr *sum = NULL;
  int64_t stride = 1;
  for (int d = n - 1; d >= 0; d--) {
    mfx_expr *term = stride == 1 ? idx[d] : mfx_mul(a, idx[d], mfx_i64(a, stride));
    sum = sum ? mfx_add(a, term, sum) : term;
    stride *= b->shape[d];
  }
  return sum;
}

static mfx_expr *flatten_expr(mfx_ir_mutator *m, mfx_expr *e) {
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_LOAD || c->u.load.n == 1) return c;
  mfx_expr *flat = flat_index(m->arena, c->u.load.buf, c->u.load.n, c->u.load.idx);
  return mfx_load(m->arena, c->u.load.buf, 1, &flat);
}

static mfx_stmt *flatten_stmt(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_stmt *c = mfx_ir_mutate_stmt_children(m, s);
  if (c->kind != MFX_STMT_STORE || c->u.store.n == 1) return c;
  mfx_expr *flat = flat_index(m->arena, c->u.store.buf, c->u.store.n, c->u.store.idx);
  mfx_stmt *f = mfx_stmt_store(m->arena, c->u.store.buf, 1, &flat, c->u.store.value);
  if (f != NULL) f->u.store.async = c->u.store.async;
  return f;
}

mfx_stmt *mfx_flatten_stmt(mfx_arena *a, mfx_stmt *s) {
  mfx_ir_mutator m = {a, flatten_expr, flatten_stmt};
  return mfx_ir_mutate_stmt(&m, s);
}
