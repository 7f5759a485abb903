/* Simplification of the loop IR: constant folding, algebraic identities, and
 * range facts about loop variables that remove guards and divisions that
 * cannot matter. A rewrite on the shared mutator (ir_visit.c): what does not
 * change is shared with the input tree. Flattening: flatten.c. */
#include <string.h>

#include "mfx/compiler.h"

/* ---- ranges ----------------------------------------------------------------- */

typedef struct { int known; int64_t lo, hi; } range;

static const range UNKNOWN = {0, 0, 0};

static range range_of(const mfx_expr *e);

static int fits(int64_t v) { return v > -((int64_t)1 << 52) && v < ((int64_t)1 << 52); }

static range make_range(int64_t lo, int64_t hi) {
  return (fits(lo) && fits(hi)) ? (range){1, lo, hi} : UNKNOWN;
}

static range range_binary(const mfx_expr *e) {
  range a = range_of(e->u.bin.a), b = range_of(e->u.bin.b);
  if (!a.known || !b.known) return UNKNOWN;
  switch (e->u.bin.op) {
  case MFX_ADD: return make_range(a.lo + b.lo, a.hi + b.hi);
  case MFX_SUB: return make_range(a.lo - b.hi, a.hi - b.lo);
  case MFX_MUL:
    if (a.lo >= 0 && b.lo >= 0) return make_range(a.lo * b.lo, a.hi * b.hi);
    return UNKNOWN;
  case MFX_DIV:
    if (a.lo >= 0 && b.lo > 0) return make_range(a.lo / b.hi, a.hi / b.lo);
    return UNKNOWN;
  case MFX_MOD:
    if (a.lo >= 0 && b.lo > 0) return make_range(0, a.hi < b.hi - 1 ? a.hi : b.hi - 1);
    return UNKNOWN;
  case MFX_MIN: return make_range(a.lo < b.lo ? a.lo : b.lo, a.hi < b.hi ? a.hi : b.hi);
  case MFX_MAX: return make_range(a.lo > b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi);
  default: return UNKNOWN;
  }
}

/* Ranges of index arithmetic (i64). Loop variables run over [0, extent). */
static range range_of(const mfx_expr *e) {
  if (e->type != MFX_I64) return UNKNOWN;
  switch (e->kind) {
  case MFX_EXPR_INT: return make_range(e->u.i, e->u.i);
  case MFX_EXPR_VAR:
    return e->u.var->extent > 0 ? make_range(0, e->u.var->extent - 1) : UNKNOWN;
  case MFX_EXPR_BINARY: return range_binary(e);
  default: return UNKNOWN;
  }
}

/* ---- folding ------------------------------------------------------------------ */

static int is_int(const mfx_expr *e, int64_t v) { return e->kind == MFX_EXPR_INT && e->u.i == v; }

/* Wrap a value to the width of an integer type. */
static int64_t wrap(mfx_dtype t, int64_t v) {
  switch (t) {
  case MFX_I8: return (int8_t)v;
  case MFX_I16: return (int16_t)v;
  case MFX_I32: return (int32_t)v;
  case MFX_U8: return (uint8_t)v;
  case MFX_U32: return (uint32_t)v;
  case MFX_BOOL: return v != 0;
  default: return v;
  }
}

/* Fold integer constants; 0 when the operation is not folded. */
static int fold_ints(mfx_binary_op op, mfx_dtype t, int64_t x, int64_t y, int64_t *out) {
  int is_unsigned = t == MFX_U8 || t == MFX_U32 || t == MFX_U64;
  uint64_t ux = (uint64_t)x, uy = (uint64_t)y;
  switch (op) {
  case MFX_ADD: *out = (int64_t)(ux + uy); return 1;
  case MFX_SUB: *out = (int64_t)(ux - uy); return 1;
  case MFX_MUL: *out = (int64_t)(ux * uy); return 1;
  case MFX_DIV: case MFX_MOD:
    if (y == 0 || is_unsigned || (x == INT64_MIN && y == -1)) return 0;
    *out = op == MFX_DIV ? x / y : x % y;
    return 1;
  case MFX_MIN: *out = x < y ? x : y; return !is_unsigned;
  case MFX_MAX: *out = x > y ? x : y; return !is_unsigned;
  case MFX_AND: case MFX_LAND: *out = x & y; return 1;
  case MFX_OR: case MFX_LOR: *out = x | y; return 1;
  case MFX_XOR: *out = x ^ y; return 1;
  case MFX_SHL: case MFX_SHR:
    if (y < 0 || y >= (int64_t)(8 * mfx_dtype_size(t))) return 0;
    if (op == MFX_SHL) *out = (int64_t)(ux << y);
    else *out = is_unsigned ? (int64_t)(ux >> y) : x >> y;
    return 1;
  case MFX_LT: *out = x < y; return !is_unsigned;
  case MFX_LE: *out = x <= y; return !is_unsigned;
  case MFX_GT: *out = x > y; return !is_unsigned;
  case MFX_GE: *out = x >= y; return !is_unsigned;
  case MFX_EQ: *out = x == y; return 1;
  case MFX_NE: *out = x != y; return 1;
  default: return 0;
  }
}

static mfx_expr *bool_const(mfx_arena *a, int v) { return mfx_int(a, MFX_BOOL, v); }

/* Comparisons decided by the ranges of both sides. */
static mfx_expr *decide_comparison(mfx_arena *a, const mfx_expr *e) {
  range x = range_of(e->u.bin.a), y = range_of(e->u.bin.b);
  if (!x.known || !y.known) return NULL;
  switch (e->u.bin.op) {
  case MFX_LT:
    if (x.hi < y.lo) return bool_const(a, 1);
    if (x.lo >= y.hi) return bool_const(a, 0);
    return NULL;
  case MFX_LE:
    if (x.hi <= y.lo) return bool_const(a, 1);
    if (x.lo > y.hi) return bool_const(a, 0);
    return NULL;
  case MFX_GE:
    if (x.lo >= y.hi) return bool_const(a, 1);
    if (x.hi < y.lo) return bool_const(a, 0);
    return NULL;
  case MFX_GT:
    if (x.lo > y.hi) return bool_const(a, 1);
    if (x.hi <= y.lo) return bool_const(a, 0);
    return NULL;
  default: return NULL;
  }
}

static int is_commutative(mfx_binary_op op) {
  return op == MFX_ADD || op == MFX_MUL || op == MFX_MIN || op == MFX_MAX || op == MFX_AND ||
         op == MFX_OR || op == MFX_XOR || op == MFX_EQ || op == MFX_NE || op == MFX_LAND ||
         op == MFX_LOR;
}

static mfx_expr *simplify_int_binary(mfx_arena *a, mfx_expr *e);

static int is_nonnegative(const mfx_expr *e) {
  range r = range_of(e);
  return r.known && r.lo >= 0;
}

/* (m*k*c + b) / c -> m*k + b/c and (m*k*c + b) % c -> b % c, for
 * non-negative m and b (in either order of the sum). NULL: no match. */
static mfx_expr *divide_multiple(mfx_arena *a, mfx_binary_op op, mfx_expr *x, int64_t c) {
  if (x->kind != MFX_EXPR_BINARY || x->u.bin.op != MFX_ADD) return NULL;
  for (int side = 0; side < 2; side++) {
    mfx_expr *prod = side ? x->u.bin.b : x->u.bin.a, *rest = side ? x->u.bin.a : x->u.bin.b;
    if (prod->kind != MFX_EXPR_BINARY || prod->u.bin.op != MFX_MUL ||
        prod->u.bin.b->kind != MFX_EXPR_INT || prod->u.bin.b->u.i % c != 0)
      continue;
    mfx_expr *m = prod->u.bin.a;
    if (!is_nonnegative(m) || !is_nonnegative(rest) || prod->u.bin.b->u.i < 0) continue;
    mfx_expr *cc = mfx_i64(a, c);
    mfx_expr *r = simplify_int_binary(a, mfx_binary(a, op, rest, cc));
    if (op == MFX_MOD) return r;
    mfx_expr *q = simplify_int_binary(a, mfx_mul(a, m, mfx_i64(a, prod->u.bin.b->u.i / c)));
    return simplify_int_binary(a, mfx_add(a, q, r));
  }
  return NULL;
}

static mfx_expr *simplify_int_binary(mfx_arena *a, mfx_expr *e) {
  mfx_binary_op op = e->u.bin.op;
  mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  mfx_dtype t = x->type;
  if (x->kind == MFX_EXPR_INT && y->kind == MFX_EXPR_INT) {
    int64_t v;
    if (fold_ints(op, t, x->u.i, y->u.i, &v)) return mfx_int(a, e->type, wrap(e->type, v));
  }
  if (is_commutative(op) && x->kind == MFX_EXPR_INT && y->kind != MFX_EXPR_INT) {
    mfx_expr *tmp = x; /* constants to the right */
    x = y;
    y = tmp;
    e = mfx_binary(a, op, x, y);
  }
  if ((op == MFX_ADD || op == MFX_SUB || op == MFX_OR || op == MFX_XOR) && is_int(y, 0)) return x;
  if (op == MFX_MUL && is_int(y, 1)) return x;
  if (op == MFX_MUL && is_int(y, 0)) return y;
  if (op == MFX_DIV && is_int(y, 1)) return x;
  if (op == MFX_MOD && is_int(y, 1)) return mfx_int(a, t, 0);
  if (t != MFX_I64) return e;
  /* (x + c1) + c2 -> x + (c1 + c2); (x * c1) * c2 -> x * (c1 * c2) */
  if ((op == MFX_ADD || op == MFX_MUL) && y->kind == MFX_EXPR_INT && x->kind == MFX_EXPR_BINARY &&
      x->u.bin.op == op && x->u.bin.b->kind == MFX_EXPR_INT) {
    int64_t c = op == MFX_ADD ? x->u.bin.b->u.i + y->u.i : x->u.bin.b->u.i * y->u.i;
    return simplify_int_binary(a, mfx_binary(a, op, x->u.bin.a, mfx_i64(a, c)));
  }
  range rx = range_of(x);
  if ((op == MFX_DIV || op == MFX_MOD) && y->kind == MFX_EXPR_INT && y->u.i > 0) {
    mfx_expr *split = divide_multiple(a, op, x, y->u.i);
    if (split) return split;
  }
  if (op == MFX_DIV && y->kind == MFX_EXPR_INT && rx.known && rx.lo >= 0 && rx.hi < y->u.i)
    return mfx_i64(a, 0);
  if (op == MFX_MOD && y->kind == MFX_EXPR_INT && rx.known && rx.lo >= 0 && rx.hi < y->u.i)
    return x;
  if (op == MFX_MIN || op == MFX_MAX) {
    range ry = range_of(y);
    if (rx.known && ry.known && (op == MFX_MIN ? rx.hi <= ry.lo : rx.lo >= ry.hi)) return x;
    if (rx.known && ry.known && (op == MFX_MIN ? ry.hi <= rx.lo : ry.lo >= rx.hi)) return y;
  }
  mfx_expr *decided = decide_comparison(a, e);
  return decided ? decided : e;
}

static mfx_expr *simplify_bool_binary(mfx_arena *a, mfx_expr *e) {
  mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  if (e->u.bin.op == MFX_LAND) {
    if (is_int(x, 1)) return y;
    if (is_int(y, 1)) return x;
    if (is_int(x, 0) || is_int(y, 0)) return bool_const(a, 0);
  }
  if (e->u.bin.op == MFX_LOR) {
    if (is_int(x, 0)) return y;
    if (is_int(y, 0)) return x;
    if (is_int(x, 1) || is_int(y, 1)) return bool_const(a, 1);
  }
  return e;
}

static mfx_expr *simplify_binary(mfx_ir_mutator *m, mfx_expr *e) {
  mfx_arena *a = m->arena;
  mfx_expr *x = mfx_ir_mutate_expr(m, e->u.bin.a), *y = mfx_ir_mutate_expr(m, e->u.bin.b);
  if (x != e->u.bin.a || y != e->u.bin.b) e = mfx_binary(a, e->u.bin.op, x, y);
  if (x->type == MFX_BOOL) return simplify_bool_binary(a, e);
  if (mfx_dtype_is_float(x->type)) return e;
  return simplify_int_binary(a, e);
}

static mfx_expr *simplify_expr(mfx_ir_mutator *m, mfx_expr *e) {
  if (e->kind == MFX_EXPR_BINARY) return simplify_binary(m, e);
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  switch (c->kind) {
  case MFX_EXPR_CAST:
    if (c->u.cast.a->kind == MFX_EXPR_INT && !mfx_dtype_is_float(c->type) && c->type != MFX_BOOL &&
        !mfx_dtype_is_float(c->u.cast.a->type))
      return mfx_int(m->arena, c->type, wrap(c->type, c->u.cast.a->u.i));
    return c;
  case MFX_EXPR_SELECT:
    if (c->u.sel.cond->kind == MFX_EXPR_INT) return c->u.sel.cond->u.i ? c->u.sel.a : c->u.sel.b;
    return c;
  default: return c;
  }
}

static mfx_stmt *simplify_stmt(mfx_ir_mutator *m, mfx_stmt *s);

static mfx_ir_mutator simplifier(mfx_arena *a) {
  return (mfx_ir_mutator){a, simplify_expr, simplify_stmt};
}

mfx_expr *mfx_simplify_expr(mfx_arena *a, mfx_expr *e) {
  mfx_ir_mutator m = simplifier(a);
  return mfx_ir_mutate_expr(&m, e);
}

/* ---- statements ----------------------------------------------------------------- */

static mfx_stmt *empty_seq(mfx_arena *a) { return mfx_stmt_seq(a, 0, NULL); }

static int is_empty(const mfx_stmt *s) {
  return !s || (s->kind == MFX_STMT_SEQ && s->u.seq.n == 0);
}

/* The statement itself, or the one item of a sequence of one. */
static mfx_stmt *only_stmt(mfx_stmt *s) {
  while (s->kind == MFX_STMT_SEQ && s->u.seq.n == 1) s = s->u.seq.items[0];
  return s;
}

/* A loop whose whole body is `if (v < C) B` with no else and 0 < C < extent
 * runs B for v in [0, C): the guard of a tile wider than the tensor (N = 16
 * under a 32-wide tile, the tile's only column block). Returns C, else 0.
 * v keeps its declared extent, so later range facts stay true (wider). */
static int64_t guard_bound(const mfx_var *v, int64_t extent, mfx_stmt *body) {
  const mfx_stmt *g = only_stmt(body);
  if (g->kind != MFX_STMT_IF || g->u.if_.else_s != NULL) return 0;
  const mfx_expr *c = g->u.if_.cond;
  if (c->kind != MFX_EXPR_BINARY) return 0;
  const mfx_expr *x = c->u.bin.a, *y = c->u.bin.b;
  if (c->u.bin.op == MFX_GT) x = c->u.bin.b, y = c->u.bin.a; /* C > v */
  else if (c->u.bin.op != MFX_LT) return 0;
  if (x->kind != MFX_EXPR_VAR || x->u.var != v || y->kind != MFX_EXPR_INT) return 0;
  return y->u.i > 0 && y->u.i < extent ? y->u.i : 0;
}

static mfx_stmt *simplify_for(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_arena *a = m->arena;
  mfx_loop_kind k = s->u.loop.kind;
  int keep_binding = k >= MFX_LOOP_BLOCK_X && k <= MFX_LOOP_THREAD_Z;
  if (s->u.loop.extent == 1 && !keep_binding) {
    mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
    repl[s->u.loop.var->id] = mfx_i64(a, 0);
    return mfx_ir_mutate_stmt(m, mfx_stmt_substitute(a, s->u.loop.body, repl));
  }
  mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.loop.body);
  if (is_empty(body)) return empty_seq(a);
  int64_t bound = keep_binding ? 0 : guard_bound(s->u.loop.var, s->u.loop.extent, body);
  if (bound > 0) return mfx_stmt_for(a, s->u.loop.var, bound, k, only_stmt(body)->u.if_.then_s);
  if (body == s->u.loop.body) return s;
  return mfx_stmt_for(a, s->u.loop.var, s->u.loop.extent, k, body);
}

/* Simplify the items, drop empty ones and splice nested sequences. */
static mfx_stmt *simplify_seq(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_arena *a = m->arena;
  int n_in = s->u.seq.n, cap = 0, n = 0, same = 1;
  mfx_stmt **done = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(n_in + 1));
  for (int i = 0; i < n_in; i++) {
    done[i] = mfx_ir_mutate_stmt(m, s->u.seq.items[i]);
    cap += done[i]->kind == MFX_STMT_SEQ ? done[i]->u.seq.n : 1;
    same &= done[i] == s->u.seq.items[i] && done[i]->kind != MFX_STMT_SEQ;
  }
  if (same && n_in != 1) return s;
  mfx_stmt **items = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(cap + 1));
  for (int i = 0; i < n_in; i++) {
    if (done[i]->kind != MFX_STMT_SEQ) {
      items[n++] = done[i];
      continue;
    }
    for (int j = 0; j < done[i]->u.seq.n; j++) items[n++] = done[i]->u.seq.items[j];
  }
  return mfx_stmt_seq(a, n, items);
}

static mfx_stmt *simplify_if(mfx_ir_mutator *m, mfx_stmt *s) {
  mfx_arena *a = m->arena;
  mfx_expr *cond = mfx_ir_mutate_expr(m, s->u.if_.cond);
  mfx_stmt *t = mfx_ir_mutate_stmt(m, s->u.if_.then_s);
  mfx_stmt *f = mfx_ir_mutate_stmt(m, s->u.if_.else_s);
  if (cond->kind == MFX_EXPR_INT) return cond->u.i ? t : (f ? f : empty_seq(a));
  if (is_empty(t) && is_empty(f)) return empty_seq(a);
  if (is_empty(f)) f = NULL;
  if (cond == s->u.if_.cond && t == s->u.if_.then_s && f == s->u.if_.else_s) return s;
  return mfx_stmt_if(a, cond, t, f);
}

static mfx_stmt *simplify_stmt(mfx_ir_mutator *m, mfx_stmt *s) {
  switch (s->kind) {
  case MFX_STMT_FOR: return simplify_for(m, s);
  case MFX_STMT_IF: return simplify_if(m, s);
  case MFX_STMT_SEQ: return simplify_seq(m, s);
  default: return mfx_ir_mutate_stmt_children(m, s);
  }
}

mfx_stmt *mfx_simplify_stmt(mfx_arena *a, mfx_stmt *s) {
  mfx_ir_mutator m = simplifier(a);
  return mfx_ir_mutate_stmt(&m, s);
}
