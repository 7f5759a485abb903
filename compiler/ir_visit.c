/* The IR's one walker and one rewriter (see compiler.h): every pass that
 * reads or rebuilds expressions and statements is written on these, so the
 * shape of each node kind is spelled out here and nowhere else. */
#include <string.h>

#include "mfx/compiler.h"

/* ---- visitor ------------------------------------------------------------------ */

void mfx_ir_visit_expr(mfx_ir_visitor *v, const mfx_expr *e) {
  if (!e || v->stop) return;
  if (v->expr) v->expr(v, e);
  else mfx_ir_visit_expr_children(v, e);
}

void mfx_ir_visit_stmt(mfx_ir_visitor *v, const mfx_stmt *s) {
  if (!s || v->stop) return;
  if (v->stmt) v->stmt(v, s);
  else mfx_ir_visit_stmt_children(v, s);
}

void mfx_ir_visit_expr_children(mfx_ir_visitor *v, const mfx_expr *e) {
  if (!e) return;
  switch (e->kind) {
  case MFX_EXPR_INT: case MFX_EXPR_FLOAT: case MFX_EXPR_VAR: return;
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++) mfx_ir_visit_expr(v, e->u.load.idx[i]);
    return;
  case MFX_EXPR_BINARY:
    mfx_ir_visit_expr(v, e->u.bin.a);
    mfx_ir_visit_expr(v, e->u.bin.b);
    return;
  case MFX_EXPR_UNARY: mfx_ir_visit_expr(v, e->u.un.a); return;
  case MFX_EXPR_SELECT:
    mfx_ir_visit_expr(v, e->u.sel.cond);
    mfx_ir_visit_expr(v, e->u.sel.a);
    mfx_ir_visit_expr(v, e->u.sel.b);
    return;
  case MFX_EXPR_CAST: mfx_ir_visit_expr(v, e->u.cast.a); return;
  case MFX_EXPR_REDUCE: mfx_ir_visit_expr(v, e->u.red.src); return;
  }
}

void mfx_ir_visit_stmt_children(mfx_ir_visitor *v, const mfx_stmt *s) {
  if (!s) return;
  switch (s->kind) {
  case MFX_STMT_FOR: mfx_ir_visit_stmt(v, s->u.loop.body); return;
  case MFX_STMT_STORE:
    for (int i = 0; i < s->u.store.n; i++) mfx_ir_visit_expr(v, s->u.store.idx[i]);
    mfx_ir_visit_expr(v, s->u.store.value);
    return;
  case MFX_STMT_LET:
    mfx_ir_visit_expr(v, s->u.let.value);
    mfx_ir_visit_stmt(v, s->u.let.body);
    return;
  case MFX_STMT_IF:
    mfx_ir_visit_expr(v, s->u.if_.cond);
    mfx_ir_visit_stmt(v, s->u.if_.then_s);
    mfx_ir_visit_stmt(v, s->u.if_.else_s);
    return;
  case MFX_STMT_ALLOCATE: mfx_ir_visit_stmt(v, s->u.alloc.body); return;
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++) mfx_ir_visit_stmt(v, s->u.seq.items[i]);
    return;
  case MFX_STMT_BARRIER: return;
  case MFX_STMT_MMA:
    for (int i = 0; i < MFX_MMA_OPERANDS; i++) mfx_ir_visit_expr(v, s->u.mma.off[i]);
    mfx_ir_visit_expr(v, s->u.mma.lane);
    return;
  }
}

/* ---- mutator ------------------------------------------------------------------- */

mfx_expr *mfx_ir_mutate_expr(mfx_ir_mutator *m, mfx_expr *e) {
  if (!e) return NULL;
  return m->expr ? m->expr(m, e) : mfx_ir_mutate_expr_children(m, e);
}

mfx_stmt *mfx_ir_mutate_stmt(mfx_ir_mutator *m, mfx_stmt *s) {
  if (!s) return NULL;
  return m->stmt ? m->stmt(m, s) : mfx_ir_mutate_stmt_children(m, s);
}

static mfx_expr *expr_copy(mfx_arena *a, const mfx_expr *e) {
  mfx_expr *c = mfx_arena_alloc(a, sizeof *c);
  if (c) *c = *e;
  return c;
}

static mfx_stmt *stmt_copy(mfx_arena *a, const mfx_stmt *s) {
  mfx_stmt *c = mfx_arena_alloc(a, sizeof *c);
  if (c) *c = *s;
  return c;
}

/* Mutate n expressions; NULL when none changed, else a new array in the arena. */
static mfx_expr **mutate_exprs(mfx_ir_mutator *m, int n, mfx_expr **in) {
  mfx_expr **out = NULL;
  for (int i = 0; i < n; i++) {
    mfx_expr *x = mfx_ir_mutate_expr(m, in[i]);
    if (x == in[i] && !out) continue;
    if (!out) {
      out = mfx_arena_alloc(m->arena, sizeof(mfx_expr *) * (size_t)n);
      if (!out) return NULL;
      memcpy(out, in, sizeof(mfx_expr *) * (size_t)i);
    }
    out[i] = x;
  }
  return out;
}

static mfx_expr *mutate_operands(mfx_ir_mutator *m, mfx_expr *e, mfx_expr **ops, int n) {
  mfx_expr *next[3];
  int changed = 0;
  for (int i = 0; i < n; i++) {
    next[i] = mfx_ir_mutate_expr(m, ops[i]);
    changed |= next[i] != ops[i];
  }
  if (!changed) return e;
  mfx_expr *c = expr_copy(m->arena, e);
  if (!c) return NULL;
  mfx_expr **slots[3] = {0};
  switch (e->kind) {
  case MFX_EXPR_BINARY: slots[0] = &c->u.bin.a; slots[1] = &c->u.bin.b; break;
  case MFX_EXPR_UNARY: slots[0] = &c->u.un.a; break;
  case MFX_EXPR_SELECT: slots[0] = &c->u.sel.cond; slots[1] = &c->u.sel.a; slots[2] = &c->u.sel.b; break;
  case MFX_EXPR_CAST: slots[0] = &c->u.cast.a; break;
  case MFX_EXPR_REDUCE: slots[0] = &c->u.red.src; break;
  default: break;
  }
  for (int i = 0; i < n; i++) *slots[i] = next[i];
  return c;
}

mfx_expr *mfx_ir_mutate_expr_children(mfx_ir_mutator *m, mfx_expr *e) {
  if (!e) return NULL;
  switch (e->kind) {
  case MFX_EXPR_INT: case MFX_EXPR_FLOAT: case MFX_EXPR_VAR: return e;
  case MFX_EXPR_LOAD: {
    mfx_expr **idx = mutate_exprs(m, e->u.load.n, e->u.load.idx);
    if (!idx) return e;
    mfx_expr *c = expr_copy(m->arena, e);
    if (c) c->u.load.idx = idx;
    return c;
  }
  case MFX_EXPR_BINARY: return mutate_operands(m, e, (mfx_expr *[]){e->u.bin.a, e->u.bin.b}, 2);
  case MFX_EXPR_UNARY: return mutate_operands(m, e, (mfx_expr *[]){e->u.un.a}, 1);
  case MFX_EXPR_SELECT:
    return mutate_operands(m, e, (mfx_expr *[]){e->u.sel.cond, e->u.sel.a, e->u.sel.b}, 3);
  case MFX_EXPR_CAST: return mutate_operands(m, e, (mfx_expr *[]){e->u.cast.a}, 1);
  case MFX_EXPR_REDUCE: return mutate_operands(m, e, (mfx_expr *[]){e->u.red.src}, 1);
  }
  return e;
}

static mfx_stmt *mutate_store(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_expr **idx = mutate_exprs(m, s->u.store.n, s->u.store.idx);
  mfx_expr *value = mfx_ir_mutate_expr(m, s->u.store.value);
  if (!idx && value == s->u.store.value) return s;
  mfx_stmt *c = stmt_copy(m->arena, s);
  if (!c) return NULL;
  if (idx) c->u.store.idx = idx;
  c->u.store.value = value;
  return c;
}

static mfx_stmt *mutate_mma(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_expr *off[MFX_MMA_OPERANDS];
  int same = 1;
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    off[i] = mfx_ir_mutate_expr(m, s->u.mma.off[i]);
    same &= off[i] == s->u.mma.off[i];
  }
  mfx_expr *lane = mfx_ir_mutate_expr(m, s->u.mma.lane);
  if (same && lane == s->u.mma.lane) return s;
  mfx_stmt *c = stmt_copy(m->arena, s);
  if (!c) return NULL;
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) c->u.mma.off[i] = off[i];
  c->u.mma.lane = lane;
  return c;
}

static mfx_stmt *mutate_seq(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_stmt **items = NULL;
  int n = s->u.seq.n;
  for (int i = 0; i < n; i++) {
    mfx_stmt *x = mfx_ir_mutate_stmt(m, s->u.seq.items[i]);
    if (x == s->u.seq.items[i] && !items) continue;
    if (!items) {
      items = mfx_arena_alloc(m->arena, sizeof(mfx_stmt *) * (size_t)n);
      if (!items) return NULL;
      memcpy(items, s->u.seq.items, sizeof(mfx_stmt *) * (size_t)i);
    }
    items[i] = x;
  }
  if (!items) return s;
  mfx_stmt *c = stmt_copy(m->arena, s);
  if (c) c->u.seq.items = items;
  return c;
}

mfx_stmt *mfx_ir_mutate_stmt_children(mfx_ir_mutator *m, mfx_stmt *s) {
  if (!s) return NULL;
  mfx_stmt *c;
  switch (s->kind) {
  case MFX_STMT_FOR: {
    mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.loop.body);
    if (body == s->u.loop.body) return s;
    if ((c = stmt_copy(m->arena, s))) c->u.loop.body = body;
    return c;
  }
  case MFX_STMT_STORE: return mutate_store(m, s);
  case MFX_STMT_LET: {
    mfx_expr *value = mfx_ir_mutate_expr(m, s->u.let.value);
    mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.let.body);
    if (value == s->u.let.value && body == s->u.let.body) return s;
    if ((c = stmt_copy(m->arena, s))) {
      c->u.let.value = value;
      c->u.let.body = body;
    }
    return c;
  }
  case MFX_STMT_IF: {
    mfx_expr *cond = mfx_ir_mutate_expr(m, s->u.if_.cond);
    mfx_stmt *t = mfx_ir_mutate_stmt(m, s->u.if_.then_s);
    mfx_stmt *f = mfx_ir_mutate_stmt(m, s->u.if_.else_s);
    if (cond == s->u.if_.cond && t == s->u.if_.then_s && f == s->u.if_.else_s) return s;
    if ((c = stmt_copy(m->arena, s))) {
      c->u.if_.cond = cond;
      c->u.if_.then_s = t;
      c->u.if_.else_s = f;
    }
    return c;
  }
  case MFX_STMT_ALLOCATE: {
    mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.alloc.body);
    if (body == s->u.alloc.body) return s;
    if ((c = stmt_copy(m->arena, s))) c->u.alloc.body = body;
    return c;
  }
  case MFX_STMT_SEQ: return mutate_seq(m, s);
  case MFX_STMT_BARRIER: return s;
  case MFX_STMT_MMA: return mutate_mma(m, s);
  }
  return s;
}
