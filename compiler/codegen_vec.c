/* Vectorization legality: may a VECTORIZED loop's body run all its lanes
 * at once and give the serial loop's result? The body is walked once with
 * the loop variable bound to the lane ids (codegen_llvm.c); every access
 * is recorded with how its index depends on the variable (cg_linear), and
 * every guard (IF condition) that depends on it. The answer is yes when
 * the body holds only stores, lets, ifs and sequences of plain
 * expressions, every guard is monotone in the variable (so checking it at
 * the first and last lane before the vector body suffices), and lanes
 * never communicate through memory (cg_plan_lanes_independent). */
#include "codegen_internal.h"

#include <stdlib.h>

static mfx_status cg_plan_access(cg_vec_plan *p, const mfx_buffer *buf, int n, mfx_expr *const *idx,
                                 int is_store) {
  if (buf == NULL || n != 1 || idx == NULL || idx[0] == NULL) {
    p->ok = 0; /* the serial loop reports it */
    return MFX_OK;
  }
  void *items = p->access;
  mfx_status st = cg_grow(&items, &p->cap_access, p->n_access, sizeof *p->access);
  p->access = items;
  if (st != MFX_OK) return st;
  p->access[p->n_access++] = (cg_access){buf, idx[0], cg_linear(p->cg, idx[0]), is_store};
  return MFX_OK;
}

static mfx_status cg_plan_expr(cg_vec_plan *p, const mfx_expr *e) {
  if (e == NULL) {
    p->ok = 0;
    return MFX_OK;
  }
  mfx_status st = MFX_OK;
  switch (e->kind) {
  case MFX_EXPR_INT:
  case MFX_EXPR_FLOAT:
  case MFX_EXPR_VAR: return MFX_OK;
  case MFX_EXPR_LOAD:
    st = cg_plan_access(p, e->u.load.buf, e->u.load.n, e->u.load.idx, 0);
    for (int i = 0; st == MFX_OK && p->ok && i < e->u.load.n; i++)
      st = cg_plan_expr(p, e->u.load.idx[i]);
    return st;
  case MFX_EXPR_BINARY:
    st = cg_plan_expr(p, e->u.bin.a);
    return st == MFX_OK ? cg_plan_expr(p, e->u.bin.b) : st;
  case MFX_EXPR_UNARY: return cg_plan_expr(p, e->u.un.a);
  case MFX_EXPR_SELECT:
    st = cg_plan_expr(p, e->u.sel.cond);
    if (st == MFX_OK) st = cg_plan_expr(p, e->u.sel.a);
    return st == MFX_OK ? cg_plan_expr(p, e->u.sel.b) : st;
  case MFX_EXPR_CAST: return cg_plan_expr(p, e->u.cast.a);
  case MFX_EXPR_REDUCE: break;
  }
  p->ok = 0;
  return MFX_OK;
}

/* Does e read a variable bound inside the vectorized body (a let, which
 * the guard check before the body cannot see)? */
static int cg_uses_inner_let(const mfx_cg *cg, const mfx_expr *e) {
  if (e == NULL) return 0;
  switch (e->kind) {
  case MFX_EXPR_INT:
  case MFX_EXPR_FLOAT: return 0;
  case MFX_EXPR_VAR: {
    const mfx_cg_binding *b = cg_lookup(cg, e->u.var);
    return b != NULL && b->value == NULL;
  }
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++)
      if (cg_uses_inner_let(cg, e->u.load.idx[i])) return 1;
    return 0;
  case MFX_EXPR_BINARY:
    return cg_uses_inner_let(cg, e->u.bin.a) || cg_uses_inner_let(cg, e->u.bin.b);
  case MFX_EXPR_UNARY: return cg_uses_inner_let(cg, e->u.un.a);
  case MFX_EXPR_SELECT:
    return cg_uses_inner_let(cg, e->u.sel.cond) || cg_uses_inner_let(cg, e->u.sel.a) ||
           cg_uses_inner_let(cg, e->u.sel.b);
  case MFX_EXPR_CAST: return cg_uses_inner_let(cg, e->u.cast.a);
  case MFX_EXPR_REDUCE: return 1;
  }
  return 1;
}

/* A guard that holds at the first and the last lane holds at every lane:
 * true of comparisons between affine functions of the variable, and of
 * conjunctions of such. */
static int cg_guard_is_monotone(const mfx_cg *cg, const mfx_expr *e) {
  if (!cg_linear(cg, e).dep) return 1;
  if (e->kind != MFX_EXPR_BINARY) return 0;
  switch (e->u.bin.op) {
  case MFX_LT:
  case MFX_LE:
  case MFX_GT:
  case MFX_GE: return cg_linear(cg, e->u.bin.a).affine && cg_linear(cg, e->u.bin.b).affine;
  case MFX_LAND:
    return cg_guard_is_monotone(cg, e->u.bin.a) && cg_guard_is_monotone(cg, e->u.bin.b);
  default: return 0;
  }
}

static mfx_status cg_plan_stmt(cg_vec_plan *p, const mfx_stmt *s);

static mfx_status cg_plan_let(cg_vec_plan *p, const mfx_stmt *s) {
  mfx_status st = cg_plan_expr(p, s->u.let.value);
  if (st != MFX_OK || !p->ok || s->u.let.var == NULL) {
    if (s->u.let.var == NULL) p->ok = 0;
    return st;
  }
  int mark = cg_scope_mark(p->cg);
  /* Bound without a value: known to be inside, with its dependence. */
  st = cg_bind_var(p->cg, s->u.let.var, s->u.let.value->type, NULL,
                   cg_linear(p->cg, s->u.let.value));
  if (st == MFX_OK) st = cg_plan_stmt(p, s->u.let.body);
  cg_scope_pop(p->cg, mark);
  return st;
}

static mfx_status cg_plan_if(cg_vec_plan *p, const mfx_stmt *s) {
  const mfx_expr *c = s->u.if_.cond;
  if (c == NULL) {
    p->ok = 0;
    return MFX_OK;
  }
  mfx_status st = MFX_OK;
  if (cg_linear(p->cg, c).dep) {
    if (cg_uses_inner_let(p->cg, c) || !cg_guard_is_monotone(p->cg, c)) {
      p->ok = 0;
      return MFX_OK;
    }
    void *items = (void *)p->guard;
    st = cg_grow(&items, &p->cap_guard, p->n_guard, sizeof *p->guard);
    p->guard = items;
    if (st != MFX_OK) return st;
    p->guard[p->n_guard++] = c;
  }
  st = cg_plan_expr(p, c);
  if (st == MFX_OK && s->u.if_.then_s != NULL) st = cg_plan_stmt(p, s->u.if_.then_s);
  if (st == MFX_OK && s->u.if_.else_s != NULL) st = cg_plan_stmt(p, s->u.if_.else_s);
  return st;
}

static mfx_status cg_plan_stmt(cg_vec_plan *p, const mfx_stmt *s) {
  if (s == NULL || !p->ok) {
    p->ok = 0;
    return MFX_OK;
  }
  mfx_status st = MFX_OK;
  switch (s->kind) {
  case MFX_STMT_STORE:
    st = cg_plan_access(p, s->u.store.buf, s->u.store.n, s->u.store.idx, 1);
    if (st == MFX_OK && p->ok) st = cg_plan_expr(p, s->u.store.idx[0]);
    return st == MFX_OK ? cg_plan_expr(p, s->u.store.value) : st;
  case MFX_STMT_LET: return cg_plan_let(p, s);
  case MFX_STMT_IF: return cg_plan_if(p, s);
  case MFX_STMT_SEQ:
    if (s->u.seq.n > 0 && s->u.seq.items == NULL) p->ok = 0;
    for (int i = 0; st == MFX_OK && p->ok && i < s->u.seq.n; i++)
      st = cg_plan_stmt(p, s->u.seq.items[i]);
    return st;
  case MFX_STMT_FOR:
  case MFX_STMT_ALLOCATE:
  case MFX_STMT_BARRIER:
  case MFX_STMT_MMA: break;
  }
  p->ok = 0;
  return MFX_OK;
}

static int cg_expr_equal(const mfx_expr *a, const mfx_expr *b) {
  if (a == b) return 1;
  if (a == NULL || b == NULL || a->kind != b->kind || a->type != b->type) return 0;
  switch (a->kind) {
  case MFX_EXPR_INT: return a->u.i == b->u.i;
  case MFX_EXPR_FLOAT: return a->u.f == b->u.f;
  case MFX_EXPR_VAR: return a->u.var == b->u.var;
  case MFX_EXPR_LOAD:
    if (a->u.load.buf != b->u.load.buf || a->u.load.n != b->u.load.n) return 0;
    for (int i = 0; i < a->u.load.n; i++)
      if (!cg_expr_equal(a->u.load.idx[i], b->u.load.idx[i])) return 0;
    return 1;
  case MFX_EXPR_BINARY:
    return a->u.bin.op == b->u.bin.op && cg_expr_equal(a->u.bin.a, b->u.bin.a) &&
           cg_expr_equal(a->u.bin.b, b->u.bin.b);
  case MFX_EXPR_UNARY: return a->u.un.op == b->u.un.op && cg_expr_equal(a->u.un.a, b->u.un.a);
  case MFX_EXPR_SELECT:
    return cg_expr_equal(a->u.sel.cond, b->u.sel.cond) && cg_expr_equal(a->u.sel.a, b->u.sel.a) &&
           cg_expr_equal(a->u.sel.b, b->u.sel.b);
  case MFX_EXPR_CAST: return cg_expr_equal(a->u.cast.a, b->u.cast.a);
  case MFX_EXPR_REDUCE: return 0;
  }
  return 0;
}

/* Lanes must not communicate through memory: every buffer the body stores
 * to is accessed at one index, affine in the variable with a non-zero
 * coefficient, so each lane owns its elements. */
static int cg_plan_lanes_independent(const cg_vec_plan *p) {
  for (int i = 0; i < p->n_access; i++) {
    const cg_access *store = &p->access[i];
    if (!store->is_store) continue;
    if (!store->lin.affine || store->lin.coeff == 0) return 0;
    for (int j = 0; j < p->n_access; j++)
      if (p->access[j].buf == store->buf && !cg_expr_equal(p->access[j].idx, store->idx)) return 0;
  }
  return 1;
}

mfx_status cg_vec_plan_body(cg_vec_plan *p, const mfx_stmt *body) {
  mfx_status st = cg_plan_stmt(p, body);
  if (st == MFX_OK && p->ok && !cg_plan_lanes_independent(p)) p->ok = 0;
  return st;
}

void cg_vec_plan_free(cg_vec_plan *p) {
  free(p->access);
  free((void *)p->guard);
  p->access = NULL;
  p->guard = NULL;
}
