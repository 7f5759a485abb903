/* Lowering: a schedule and its tensor expressions become one loop-IR
 * function. Per stage: express every root axis through the leaf loops
 * (bound inference over split/fuse), guard non-dividing splits at the
 * depth where their loops are bound, split reductions into an init nest
 * and an update nest, accumulate in a local buffer when asked, and give
 * intermediate tensors a workspace. Then simplify and flatten. */
#include <string.h>

#include "mfx/compiler.h"

typedef struct {
  mfx_expr *cond;
  uint64_t mask; /* leaf positions the condition reads */
} guard;

/* An attached buffer of the stage being lowered: its region per dimension
 * is base[d] + [0, extent[d]), base in the loops outside the attach loop. */
typedef struct {
  const mfx_attached *spec;
  int pos;                      /* leaf position of the attach loop */
  mfx_buffer *buf;
  mfx_expr *base[MFX_MAX_DIMS];
  int64_t lo[MFX_MAX_DIMS];     /* region start relative to the outside part */
  mfx_expr *value;              /* compute_at: the producer's body */
} attachment;

typedef struct {
  mfx_arena *arena;
  mfx_schedule *schedule;
  mfx_stage *stage;
  mfx_expr **value;  /* var id -> its value in terms of the leaf loops */
  guard guards[MFX_MAX_RELATIONS];
  int n_guards;
  attachment attached[MFX_MAX_ATTACHED];
  int n_attached;
  int guards_innermost; /* shared buffers: no guard may enclose a barrier */
  mfx_expr *epilogue;   /* fuse_epilogue: the consumer's (inlined) body */
} stage_lowering;

/* NEST_ENCLOSING: the body holds the stage's other nests. */
enum { NEST_GUARDS = 1, NEST_ATTACHED = 2, NEST_ENCLOSING = 4 };

/* ---- inlining ------------------------------------------------------------------- */

static mfx_expr *inline_loads(mfx_arena *a, mfx_expr *e, mfx_expr **bodies,
                              const mfx_schedule *s);

static mfx_expr *inline_children(mfx_arena *a, mfx_expr *e, mfx_expr **bodies,
                                 const mfx_schedule *s) {
  mfx_expr *c = mfx_arena_alloc(a, sizeof *c);
  *c = *e;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    c->u.load.idx = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)e->u.load.n);
    for (int i = 0; i < e->u.load.n; i++)
      c->u.load.idx[i] = inline_loads(a, e->u.load.idx[i], bodies, s);
    break;
  case MFX_EXPR_BINARY:
    c->u.bin.a = inline_loads(a, e->u.bin.a, bodies, s);
    c->u.bin.b = inline_loads(a, e->u.bin.b, bodies, s);
    break;
  case MFX_EXPR_UNARY: c->u.un.a = inline_loads(a, e->u.un.a, bodies, s); break;
  case MFX_EXPR_SELECT:
    c->u.sel.cond = inline_loads(a, e->u.sel.cond, bodies, s);
    c->u.sel.a = inline_loads(a, e->u.sel.a, bodies, s);
    c->u.sel.b = inline_loads(a, e->u.sel.b, bodies, s);
    break;
  case MFX_EXPR_CAST: c->u.cast.a = inline_loads(a, e->u.cast.a, bodies, s); break;
  case MFX_EXPR_REDUCE: c->u.red.src = inline_loads(a, e->u.red.src, bodies, s); break;
  default: break;
  }
  return c;
}

static int stage_index(const mfx_schedule *s, const mfx_tensor *t) {
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i]->tensor == t) return i;
  return -1;
}

/* Replace loads of inlined stages by their (already inlined) bodies. */
static mfx_expr *inline_loads(mfx_arena *a, mfx_expr *e, mfx_expr **bodies,
                              const mfx_schedule *s) {
  if (e->kind == MFX_EXPR_INT || e->kind == MFX_EXPR_FLOAT || e->kind == MFX_EXPR_VAR) return e;
  mfx_expr *c = inline_children(a, e, bodies, s);
  if (c->kind != MFX_EXPR_LOAD || !c->u.load.buf->tensor) return c;
  int k = stage_index(s, c->u.load.buf->tensor);
  if (k < 0 || !s->stages[k]->inlined) return c;
  const mfx_tensor *producer = s->stages[k]->tensor;
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  for (int i = 0; i < producer->n_axes; i++) repl[producer->axes[i]->id] = c->u.load.idx[i];
  return mfx_expr_substitute(a, bodies[k], repl);
}

/* ---- leaf values and guards ------------------------------------------------------- */

static int leaf_position(const mfx_stage *st, const mfx_var *v) {
  for (int i = 0; i < st->n_leaves; i++)
    if (st->leaves[i]->var == v) return i;
  return -1;
}

static void leaf_mask(const mfx_stage *st, const mfx_expr *e, uint64_t *mask) {
  if (!e) return;
  switch (e->kind) {
  case MFX_EXPR_VAR: {
    int p = leaf_position(st, e->u.var);
    if (p >= 0) *mask |= (uint64_t)1 << p;
    return;
  }
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++) leaf_mask(st, e->u.load.idx[i], mask);
    return;
  case MFX_EXPR_BINARY: leaf_mask(st, e->u.bin.a, mask); leaf_mask(st, e->u.bin.b, mask); return;
  case MFX_EXPR_UNARY: leaf_mask(st, e->u.un.a, mask); return;
  case MFX_EXPR_CAST: leaf_mask(st, e->u.cast.a, mask); return;
  case MFX_EXPR_SELECT:
    leaf_mask(st, e->u.sel.cond, mask);
    leaf_mask(st, e->u.sel.a, mask);
    leaf_mask(st, e->u.sel.b, mask);
    return;
  default: return;
  }
}

/* Walk the relations newest first: children are known before parents. */
static void infer_values(stage_lowering *L) {
  mfx_stage *st = L->stage;
  mfx_arena *a = L->arena;
  for (int i = 0; i < st->n_leaves; i++)
    L->value[st->leaves[i]->var->id] = mfx_var_ref(a, st->leaves[i]->var);
  for (int r = st->n_relations - 1; r >= 0; r--) {
    const mfx_relation *rel = &st->relations[r];
    if (rel->kind == MFX_REL_SPLIT) {
      mfx_expr *o = L->value[rel->outer->var->id], *i = L->value[rel->inner->var->id];
      L->value[rel->parent->var->id] = mfx_add(a, mfx_mul(a, o, mfx_i64(a, rel->factor)), i);
      if (rel->parent->extent % rel->factor != 0) {
        guard *g = &L->guards[L->n_guards++];
        g->cond = mfx_simplify_expr(a, mfx_binary(a, MFX_LT, L->value[rel->parent->var->id],
                                                  mfx_i64(a, rel->parent->extent)));
        leaf_mask(st, g->cond, &g->mask);
      }
    } else {
      mfx_expr *f = L->value[rel->fused->var->id];
      mfx_expr *ext = mfx_i64(a, rel->inner->extent);
      L->value[rel->outer->var->id] = mfx_binary(a, MFX_DIV, f, ext);
      L->value[rel->inner->var->id] = mfx_binary(a, MFX_MOD, f, ext);
    }
  }
}

/* ---- loop nests --------------------------------------------------------------------- */

static mfx_stmt *wrap_attached(stage_lowering *L, int pos, mfx_stmt *body);

/* The depth (index into positions, -1: outside them all) of guard g, or -2
 * when this nest does not place it. A guard goes right inside the innermost
 * loop it reads, if every loop it reads is one of these or bound outside
 * (`outer`), and it reads at least one of these (or, for the outermost nest,
 * none). With shared buffers every guard goes innermost instead, and the
 * outermost nest places none, so that no barrier is ever guarded. */
static int guard_depth(const stage_lowering *L, const guard *g, const int *positions, int n,
                       uint64_t outer, uint64_t mine, int flags) {
  uint64_t m = g->mask;
  if ((m & ~(outer | mine)) != 0) return -2;
  if (L->guards_innermost) return (flags & NEST_ENCLOSING) ? -2 : n - 1;
  if ((m & mine) == 0 && !(outer == 0 && m == 0)) return -2;
  int depth = -1;
  for (int k = 0; k < n; k++)
    if (m & ((uint64_t)1 << positions[k])) depth = k;
  return depth;
}

/* Wrap body in the leaf loops at `positions` (outermost first), with the
 * guards this nest places and, with NEST_ATTACHED, the fills of attached
 * buffers at the start of their loops. */
static mfx_stmt *nest(stage_lowering *L, const int *positions, int n, mfx_stmt *body,
                      uint64_t outer, int flags) {
  mfx_arena *a = L->arena;
  uint64_t mine = 0;
  for (int j = 0; j < n; j++) mine |= (uint64_t)1 << positions[j];
  mfx_stmt *s = body;
  for (int j = n - 1; j >= -1; j--) {
    mfx_expr *cond = NULL;
    for (int g = 0; (flags & NEST_GUARDS) && g < L->n_guards; g++) {
      if (guard_depth(L, &L->guards[g], positions, n, outer, mine, flags) != j) continue;
      cond = cond ? mfx_binary(a, MFX_LAND, cond, L->guards[g].cond) : L->guards[g].cond;
    }
    if (cond) s = mfx_stmt_if(a, cond, s, NULL);
    if (j >= 0) {
      if (flags & NEST_ATTACHED) s = wrap_attached(L, positions[j], s);
      const mfx_itervar *iv = L->stage->leaves[positions[j]];
      s = mfx_stmt_for(a, iv->var, iv->extent, iv->kind, s);
    }
  }
  return s;
}

static int range_positions(int from, int to, int *out) {
  int n = 0;
  for (int p = from; p < to; p++) out[n++] = p;
  return n;
}

static int spatial_positions(const mfx_stage *st, int from, int *out) {
  int n = 0;
  for (int p = from; p < st->n_leaves; p++)
    if (!st->leaves[p]->is_reduce) out[n++] = p;
  return n;
}

static uint64_t mask_below(int p) { return p >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << p) - 1); }

static mfx_expr *combine(mfx_arena *a, mfx_reduce_op op, mfx_expr *acc, mfx_expr *x) {
  switch (op) {
  case MFX_REDUCE_SUM: return mfx_add(a, acc, x);
  case MFX_REDUCE_MAX: return mfx_binary(a, MFX_MAX, acc, x);
  case MFX_REDUCE_MIN: return mfx_binary(a, MFX_MIN, acc, x);
  default: return mfx_binary(a, MFX_OR, acc, x);
  }
}

/* ---- attached buffers ------------------------------------------------------------ */

/* An index as c + sum(coeff[v] * leaf v); fails on anything not affine. */
typedef struct {
  int64_t c;
  int64_t coeff[MFX_MAX_ITERVARS]; /* by leaf position */
} linear_form;

static int linear_of(const mfx_stage *st, const mfx_expr *e, int64_t scale, linear_form *out) {
  switch (e->kind) {
  case MFX_EXPR_INT: out->c += scale * e->u.i; return 1;
  case MFX_EXPR_VAR: {
    int p = leaf_position(st, e->u.var);
    if (p < 0) return 0;
    out->coeff[p] += scale;
    return 1;
  }
  case MFX_EXPR_CAST: return linear_of(st, e->u.cast.a, scale, out);
  case MFX_EXPR_BINARY: {
    const mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
    switch (e->u.bin.op) {
    case MFX_ADD: return linear_of(st, x, scale, out) && linear_of(st, y, scale, out);
    case MFX_SUB: return linear_of(st, x, scale, out) && linear_of(st, y, -scale, out);
    case MFX_MUL:
      if (y->kind == MFX_EXPR_INT) return linear_of(st, x, scale * y->u.i, out);
      if (x->kind == MFX_EXPR_INT) return linear_of(st, y, scale * x->u.i, out);
      return 0;
    default: return 0;
    }
  }
  default: return 0;
  }
}

static int is_thread_kind(mfx_loop_kind k) { return k >= MFX_LOOP_THREAD_X && k <= MFX_LOOP_THREAD_Z; }
static int is_block_kind(mfx_loop_kind k) { return k >= MFX_LOOP_BLOCK_X && k <= MFX_LOOP_BLOCK_Z; }

/* Inside the attach loop: the loops below it, and for shared buffers every
 * thread loop (the block's threads fill the buffer together). */
static int is_inside(const attachment *at, const mfx_stage *st, int p) {
  return p > at->pos || (at->spec->scope == MFX_SCOPE_SHARED && is_thread_kind(st->leaves[p]->kind));
}

typedef struct {
  stage_lowering *L;
  attachment *at;
  int n_loads;
  linear_form first[MFX_MAX_DIMS]; /* the outside part of the first load */
  int64_t lo[MFX_MAX_DIMS], hi[MFX_MAX_DIMS];
  mfx_status status;
} region_walk;

static int same_outside(const region_walk *w, const linear_form *f, int d) {
  for (int p = 0; p < w->L->stage->n_leaves; p++)
    if (!is_inside(w->at, w->L->stage, p) && f->coeff[p] != w->first[d].coeff[p]) return 0;
  return 1;
}

static void region_add_load(region_walk *w, const mfx_expr *e) {
  const mfx_stage *st = w->L->stage;
  const char *name = w->at->spec->tensor->buf->name;
  for (int d = 0; d < e->u.load.n && w->status == MFX_OK; d++) {
    linear_form f = {0};
    if (!linear_of(st, e->u.load.idx[d], 1, &f)) {
      w->status = mfx_fail(MFX_ERR_SCHEDULE,
                           "attach %s to stage %s: index %d of a load is not affine in the loops "
                           "(fused loops cannot be cached)", name, st->tensor->buf->name, d);
      return;
    }
    int64_t lo = f.c, hi = f.c;
    for (int p = 0; p < st->n_leaves; p++) {
      if (!is_inside(w->at, st, p) || !f.coeff[p]) continue;
      int64_t span = f.coeff[p] * (st->leaves[p]->extent - 1);
      if (span < 0) lo += span;
      else hi += span;
    }
    if (w->n_loads == 0) {
      w->first[d] = f;
      w->lo[d] = lo;
      w->hi[d] = hi;
    } else if (!same_outside(w, &f, d)) {
      w->status = mfx_fail(MFX_ERR_SCHEDULE,
                           "attach %s to stage %s: loads of it move differently with the outer "
                           "loops; cannot share one buffer", name, st->tensor->buf->name);
      return;
    } else {
      if (lo < w->lo[d]) w->lo[d] = lo;
      if (hi > w->hi[d]) w->hi[d] = hi;
    }
  }
  w->n_loads++;
}

static void region_walk_expr(region_walk *w, const mfx_expr *e) {
  if (!e || w->status != MFX_OK) return;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++) region_walk_expr(w, e->u.load.idx[i]);
    if (e->u.load.buf == w->at->spec->tensor->buf) region_add_load(w, e);
    return;
  case MFX_EXPR_BINARY: region_walk_expr(w, e->u.bin.a); region_walk_expr(w, e->u.bin.b); return;
  case MFX_EXPR_UNARY: region_walk_expr(w, e->u.un.a); return;
  case MFX_EXPR_CAST: region_walk_expr(w, e->u.cast.a); return;
  case MFX_EXPR_SELECT:
    region_walk_expr(w, e->u.sel.cond);
    region_walk_expr(w, e->u.sel.a);
    region_walk_expr(w, e->u.sel.b);
    return;
  default: return;
  }
}

/* The outside part of a linear form (plus a constant) as an expression. */
static mfx_expr *outside_expr(stage_lowering *L, const attachment *at, const linear_form *f,
                              int64_t c) {
  mfx_arena *a = L->arena;
  mfx_expr *e = mfx_i64(a, c);
  for (int p = 0; p < L->stage->n_leaves; p++)
    if (!is_inside(at, L->stage, p) && f->coeff[p])
      e = mfx_add(a, e, mfx_mul(a, mfx_var_ref(a, L->stage->leaves[p]->var), mfx_i64(a, f->coeff[p])));
  return mfx_simplify_expr(a, e);
}

/* The index into the buffer: the inside part, shifted by the region start. */
static mfx_expr *inside_expr(stage_lowering *L, const attachment *at, const linear_form *f,
                             int64_t lo) {
  mfx_arena *a = L->arena;
  mfx_expr *e = mfx_i64(a, f->c - lo);
  for (int p = 0; p < L->stage->n_leaves; p++)
    if (is_inside(at, L->stage, p) && f->coeff[p])
      e = mfx_add(a, e, mfx_mul(a, mfx_var_ref(a, L->stage->leaves[p]->var), mfx_i64(a, f->coeff[p])));
  return mfx_simplify_expr(a, e);
}

static mfx_expr *redirect_loads(stage_lowering *L, const attachment *at, mfx_expr *e) {
  if (!e) return NULL;
  mfx_arena *a = L->arena;
  mfx_expr *c;
  switch (e->kind) {
  case MFX_EXPR_LOAD: {
    mfx_expr *idx[MFX_MAX_DIMS];
    for (int i = 0; i < e->u.load.n; i++) idx[i] = redirect_loads(L, at, e->u.load.idx[i]);
    if (e->u.load.buf != at->spec->tensor->buf) return mfx_load(a, e->u.load.buf, e->u.load.n, idx);
    for (int d = 0; d < e->u.load.n; d++) {
      linear_form f = {0};
      linear_of(L->stage, idx[d], 1, &f);
      idx[d] = inside_expr(L, at, &f, at->lo[d]);
    }
    return mfx_load(a, at->buf, e->u.load.n, idx);
  }
  case MFX_EXPR_BINARY:
    return mfx_binary(a, e->u.bin.op, redirect_loads(L, at, e->u.bin.a), redirect_loads(L, at, e->u.bin.b));
  case MFX_EXPR_UNARY: return mfx_unary(a, e->u.un.op, redirect_loads(L, at, e->u.un.a));
  case MFX_EXPR_CAST: return mfx_cast(a, e->type, redirect_loads(L, at, e->u.cast.a));
  case MFX_EXPR_SELECT:
    c = mfx_select(a, redirect_loads(L, at, e->u.sel.cond), redirect_loads(L, at, e->u.sel.a),
                   redirect_loads(L, at, e->u.sel.b));
    return c;
  default: return e;
  }
}

#define MFX_MAX_SHARED_BYTES (48 * 1024)
#define MFX_MAX_LOCAL_ELEMS 4096

static mfx_status check_attach_loop(stage_lowering *L, const mfx_attached *spec, int pos) {
  const mfx_stage *st = L->stage;
  const char *name = spec->tensor->buf->name, *stage = st->tensor->buf->name;
  if (pos < 0)
    return mfx_fail(MFX_ERR_SCHEDULE, "attach %s to stage %s: loop %s is no longer a leaf", name,
                    stage, spec->at->var->name);
  for (int p = pos + 1; p < st->n_leaves; p++)
    if (is_block_kind(st->leaves[p]->kind) ||
        (spec->scope == MFX_SCOPE_SHARED && is_thread_kind(st->leaves[p]->kind)))
      return mfx_fail(MFX_ERR_SCHEDULE,
                      "attach %s to stage %s at %s: GPU-bound loop %s must be outside the "
                      "attach loop", name, stage, spec->at->var->name, st->leaves[p]->var->name);
  return MFX_OK;
}

/* Infer the region the stage reads at the attach loop, make the buffer,
 * and point the stage's loads at it. */
static mfx_status prepare_attachment(stage_lowering *L, const mfx_attached *spec,
                                     mfx_expr *producer_body, mfx_expr **src) {
  mfx_arena *a = L->arena;
  attachment *at = &L->attached[L->n_attached];
  *at = (attachment){.spec = spec, .pos = leaf_position(L->stage, spec->at->var)};
  mfx_status rc = check_attach_loop(L, spec, at->pos);
  if (rc != MFX_OK) return rc;
  region_walk w = {.L = L, .at = at, .status = MFX_OK};
  region_walk_expr(&w, *src);
  if (w.status != MFX_OK) return w.status;
  const mfx_buffer *t = spec->tensor->buf;
  int64_t shape[MFX_MAX_DIMS], elems = 1;
  for (int d = 0; d < t->ndim; d++) {
    at->lo[d] = w.lo[d];
    shape[d] = w.n_loads ? w.hi[d] - w.lo[d] + 1 : 1;
    elems *= shape[d];
    at->base[d] = outside_expr(L, at, &w.first[d], w.lo[d]);
  }
  int64_t bytes = elems * (int64_t)mfx_dtype_size(t->dtype);
  if (spec->scope == MFX_SCOPE_SHARED ? bytes > MFX_MAX_SHARED_BYTES : elems > MFX_MAX_LOCAL_ELEMS)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "attach %s to stage %s at %s: the region needs %lld elements (%lld bytes), "
                    "more than %s allows; attach it deeper or tile smaller", t->name,
                    L->stage->tensor->buf->name, spec->at->var->name, (long long)elems,
                    (long long)bytes, spec->scope == MFX_SCOPE_SHARED ? "48 KiB of shared memory" : "4096 local elements");
  at->buf = mfx_buffer_create(a, mfx_arena_printf(a, "%s.%s", t->name,
                                                  spec->scope == MFX_SCOPE_SHARED ? "shared" : "local"),
                              t->dtype, t->ndim, shape, spec->scope);
  at->value = producer_body;
  *src = redirect_loads(L, at, *src);
  L->n_attached++;
  if (spec->scope == MFX_SCOPE_SHARED) L->guards_innermost = 1;
  return MFX_OK;
}

/* buf[r] = (g in bounds) ? tensor[g] or producer(g) : 0, with g = base + r. */
static mfx_stmt *fill_element(stage_lowering *L, const attachment *at, mfx_expr *const *r) {
  mfx_arena *a = L->arena;
  const mfx_tensor *t = at->spec->tensor;
  mfx_expr *g[MFX_MAX_DIMS], *in = NULL;
  for (int d = 0; d < t->buf->ndim; d++) {
    g[d] = mfx_simplify_expr(a, mfx_add(a, at->base[d], r[d]));
    mfx_expr *ok = mfx_binary(a, MFX_LAND, mfx_binary(a, MFX_GE, g[d], mfx_i64(a, 0)),
                              mfx_binary(a, MFX_LT, g[d], mfx_i64(a, t->buf->shape[d])));
    in = in ? mfx_binary(a, MFX_LAND, in, ok) : ok;
  }
  mfx_expr *value;
  if (at->spec->compute) {
    mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
    for (int d = 0; d < t->n_axes; d++) repl[t->axes[d]->id] = g[d];
    value = mfx_expr_substitute(a, at->value, repl);
  } else {
    value = mfx_load(a, t->buf, t->buf->ndim, g);
  }
  mfx_expr *zero = mfx_reduce_identity(a, MFX_REDUCE_SUM, t->buf->dtype);
  return mfx_stmt_if(a, in, mfx_stmt_store(a, at->buf, t->buf->ndim, r, value),
                     mfx_stmt_store(a, at->buf, t->buf->ndim, r, zero));
}

/* Each thread (or the CPU) fills the whole region with its own loops. */
static mfx_stmt *fill_local(stage_lowering *L, const attachment *at) {
  mfx_arena *a = L->arena;
  int nd = at->buf->ndim;
  mfx_var *v[MFX_MAX_DIMS];
  mfx_expr *r[MFX_MAX_DIMS];
  for (int d = 0; d < nd; d++) {
    v[d] = mfx_var_create(a, mfx_arena_printf(a, "%s.r%d", at->buf->name, d), at->buf->shape[d], 0);
    r[d] = mfx_var_ref(a, v[d]);
  }
  mfx_stmt *s = fill_element(L, at, r);
  for (int d = nd - 1; d >= 0; d--) s = mfx_stmt_for(a, v[d], at->buf->shape[d], MFX_LOOP_SERIAL, s);
  return s;
}

/* The block's threads fill the region together: element e*threads + tid. */
static mfx_stmt *fill_shared(stage_lowering *L, const attachment *at) {
  mfx_arena *a = L->arena;
  const mfx_stage *st = L->stage;
  mfx_expr *tid = mfx_i64(a, 0);
  int64_t threads = 1;
  for (int p = st->n_leaves - 1; p >= 0; p--) {
    if (!is_thread_kind(st->leaves[p]->kind)) continue;
    tid = mfx_add(a, tid, mfx_mul(a, mfx_var_ref(a, st->leaves[p]->var), mfx_i64(a, threads)));
    threads *= st->leaves[p]->extent;
  }
  int64_t total = 1;
  for (int d = 0; d < at->buf->ndim; d++) total *= at->buf->shape[d];
  mfx_var *e = mfx_var_create(a, mfx_arena_printf(a, "%s.e", at->buf->name), (total + threads - 1) / threads, 0);
  mfx_var *flat = mfx_var_create(a, mfx_arena_printf(a, "%s.f", at->buf->name), e->extent * threads, 0);
  mfx_expr *fe = mfx_var_ref(a, flat), *r[MFX_MAX_DIMS];
  int64_t stride = 1;
  for (int d = at->buf->ndim - 1; d >= 0; d--) {
    r[d] = mfx_binary(a, MFX_MOD, mfx_binary(a, MFX_DIV, fe, mfx_i64(a, stride)),
                      mfx_i64(a, at->buf->shape[d]));
    stride *= at->buf->shape[d];
  }
  mfx_stmt *body = mfx_stmt_if(a, mfx_binary(a, MFX_LT, fe, mfx_i64(a, total)), fill_element(L, at, r), NULL);
  mfx_expr *fv = mfx_add(a, mfx_mul(a, mfx_var_ref(a, e), mfx_i64(a, threads)), tid);
  body = mfx_stmt_let(a, flat, mfx_simplify_expr(a, fv), body);
  return mfx_stmt_for(a, e, e->extent, MFX_LOOP_SERIAL, body);
}

static mfx_stmt *wrap_attached(stage_lowering *L, int pos, mfx_stmt *body) {
  mfx_arena *a = L->arena;
  for (int i = L->n_attached - 1; i >= 0; i--) {
    const attachment *at = &L->attached[i];
    if (at->pos != pos) continue;
    mfx_stmt *s;
    if (at->spec->scope == MFX_SCOPE_SHARED)
      s = mfx_stmt_seq(a, 4, (mfx_stmt *[]){mfx_stmt_barrier(a), fill_shared(L, at),
                                            mfx_stmt_barrier(a), body});
    else
      s = mfx_stmt_seq(a, 2, (mfx_stmt *[]){fill_local(L, at), body});
    body = mfx_stmt_allocate(a, at->buf, s);
  }
  return body;
}

/* ---- one stage -------------------------------------------------------------------------- */

static mfx_stmt *lower_elementwise(stage_lowering *L, mfx_expr **idx, mfx_expr *value) {
  mfx_stage *st = L->stage;
  int pos[MFX_MAX_ITERVARS];
  int n = range_positions(0, st->n_leaves, pos);
  mfx_stmt *store = mfx_stmt_store(L->arena, st->tensor->buf, st->tensor->n_axes, idx, value);
  return nest(L, pos, n, store, 0, NEST_GUARDS | NEST_ATTACHED);
}

static mfx_stmt *lower_reduce_in_place(stage_lowering *L, mfx_expr **idx, const mfx_expr *red,
                                       mfx_expr *src) {
  mfx_arena *a = L->arena;
  mfx_stage *st = L->stage;
  mfx_buffer *buf = st->tensor->buf;
  int n_idx = st->tensor->n_axes;
  int r = 0;
  while (!st->leaves[r]->is_reduce) r++;
  int pos[MFX_MAX_ITERVARS];

  mfx_expr *ident = mfx_reduce_identity(a, red->u.red.op, red->type);
  int n = spatial_positions(st, r, pos);
  mfx_stmt *init = nest(L, pos, n, mfx_stmt_store(a, buf, n_idx, idx, ident), mask_below(r), NEST_GUARDS);

  mfx_expr *acc = combine(a, red->u.red.op, mfx_load(a, buf, n_idx, idx), src);
  n = range_positions(r, st->n_leaves, pos);
  mfx_stmt *update = nest(L, pos, n, mfx_stmt_store(a, buf, n_idx, idx, acc), mask_below(r),
                          NEST_GUARDS | NEST_ATTACHED);

  mfx_stmt *both = mfx_stmt_seq(a, 2, (mfx_stmt *[]){init, update});
  n = range_positions(0, r, pos);
  return nest(L, pos, n, both, 0, NEST_GUARDS | NEST_ATTACHED | NEST_ENCLOSING);
}

/* ---- epilogue fusion: the consumer applied at write-back ------------------------------- */

static mfx_expr *replace_loads(mfx_arena *a, mfx_expr *e, const mfx_buffer *buf, mfx_expr *v) {
  if (!e || !mfx_expr_reads(e, buf)) return e;
  mfx_expr *c = mfx_arena_alloc(a, sizeof *c);
  *c = *e;
  switch (e->kind) {
  case MFX_EXPR_LOAD: return e->u.load.buf == buf ? v : e; /* indices never read buf */
  case MFX_EXPR_BINARY:
    c->u.bin.a = replace_loads(a, e->u.bin.a, buf, v);
    c->u.bin.b = replace_loads(a, e->u.bin.b, buf, v);
    return c;
  case MFX_EXPR_UNARY: c->u.un.a = replace_loads(a, e->u.un.a, buf, v); return c;
  case MFX_EXPR_CAST: c->u.cast.a = replace_loads(a, e->u.cast.a, buf, v); return c;
  case MFX_EXPR_SELECT:
    c->u.sel.cond = replace_loads(a, e->u.sel.cond, buf, v);
    c->u.sel.a = replace_loads(a, e->u.sel.a, buf, v);
    c->u.sel.b = replace_loads(a, e->u.sel.b, buf, v);
    return c;
  default: return e;
  }
}

/* The store of one accumulated element: R[idx] = acc, or with an epilogue
 * C[idx] = f(acc, ...), C's axes taking R's index. */
static mfx_stmt *write_back(stage_lowering *L, mfx_expr **idx, mfx_expr *acc) {
  mfx_arena *a = L->arena;
  const mfx_tensor *r = L->stage->tensor;
  if (!L->epilogue) return mfx_stmt_store(a, r->buf, r->n_axes, idx, acc);
  const mfx_tensor *c = L->stage->epilogue->tensor;
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  for (int d = 0; d < c->n_axes; d++) repl[c->axes[d]->id] = idx[d];
  mfx_expr *v = mfx_expr_substitute(a, replace_loads(a, L->epilogue, r->buf, acc), repl);
  return mfx_stmt_store(a, c->buf, c->n_axes, idx, v);
}

/* R fused with consumer C: C reads R only at its own element (through the
 * stages inlined into it too), nothing else reads R, and R accumulates
 * locally (the write-back is where C is applied). */
static mfx_status check_epilogue(const mfx_schedule *s, const mfx_stage *st, mfx_expr **bodies) {
  const mfx_stage *c = st->epilogue;
  const char *rn = st->tensor->buf->name, *cn = c->tensor->buf->name;
  if (!st->local_at)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the reduction does not accumulate locally; "
                    "cache_write it (the epilogue is applied at the write-back)", cn, rn);
  if (c->n_relations || c->n_attached || c->local_at || c->inlined || c->attached_to)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer was scheduled after the fusion; a "
                    "fused consumer runs in the reduction's loops", cn, rn);
  for (int i = 0; i < s->n_stages; i++) {
    const mfx_stage *o = s->stages[i];
    if (o == st || o->inlined) continue;
    if (o == c && mfx_expr_reads_at_axes(bodies[i], st->tensor->buf, c->tensor)) continue;
    if (mfx_expr_reads(bodies[i], st->tensor->buf))
      return mfx_fail(MFX_ERR_SCHEDULE,
                      o == c ? "fuse_epilogue %s into %s: %s reads %s at another index than its "
                               "own element (through an inlined stage)"
                             : "fuse_epilogue %s into %s: %s reads %s too; a fused reduction "
                               "is never stored, so the consumer must be its one reader",
                      cn, rn, o->tensor->buf->name, rn);
  }
  return MFX_OK;
}

static mfx_status lower_reduce_local(stage_lowering *L, mfx_expr **idx, const mfx_expr *red,
                                     mfx_expr *src, mfx_stmt **out) {
  mfx_arena *a = L->arena;
  mfx_stage *st = L->stage;
  const char *name = st->tensor->buf->name;
  int p = leaf_position(st, st->local_at->var);
  if (p < 0)
    return mfx_fail(MFX_ERR_SCHEDULE, "cache_write %s: attach loop %s is no longer a leaf",
                    name, st->local_at->var->name);
  for (int q = 0; q <= p; q++)
    if (st->leaves[q]->is_reduce)
      return mfx_fail(MFX_ERR_SCHEDULE,
                      "cache_write %s at %s: reduction loop %s is outside the attach loop; "
                      "every reduction loop must be inside it", name, st->local_at->var->name,
                      st->leaves[q]->var->name);
  int sl[MFX_MAX_ITERVARS], pos[MFX_MAX_ITERVARS];
  int n_sl = spatial_positions(st, p + 1, sl);
  int64_t shape[MFX_MAX_DIMS], elems = 1;
  mfx_expr *lidx[MFX_MAX_DIMS];
  if (n_sl > MFX_MAX_DIMS)
    return mfx_fail(MFX_ERR_SCHEDULE, "cache_write %s: %d spatial loops inside %s (at most %d)",
                    name, n_sl, st->local_at->var->name, MFX_MAX_DIMS);
  for (int j = 0; j < n_sl; j++) {
    shape[j] = st->leaves[sl[j]]->extent;
    elems *= shape[j];
    lidx[j] = mfx_var_ref(a, st->leaves[sl[j]]->var);
  }
  int ndim = n_sl;
  if (ndim == 0) {
    shape[0] = 1;
    lidx[0] = mfx_i64(a, 0);
    ndim = 1;
  }
  if (elems > 4096)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "cache_write %s at %s: the local tile has %lld elements (at most 4096); "
                    "attach it deeper", name, st->local_at->var->name, (long long)elems);
  mfx_buffer *local = mfx_buffer_create(a, mfx_arena_printf(a, "%s.local", name), red->type, ndim,
                                        shape, MFX_SCOPE_LOCAL);
  uint64_t outer = mask_below(p + 1);
  mfx_expr *ident = mfx_reduce_identity(a, red->u.red.op, red->type);
  mfx_stmt *init = nest(L, sl, n_sl, mfx_stmt_store(a, local, ndim, lidx, ident), outer, 0);
  mfx_expr *acc = combine(a, red->u.red.op, mfx_load(a, local, ndim, lidx), src);
  int n = range_positions(p + 1, st->n_leaves, pos);
  mfx_stmt *update = nest(L, pos, n, mfx_stmt_store(a, local, ndim, lidx, acc), outer,
                          NEST_GUARDS | NEST_ATTACHED);
  mfx_stmt *back = nest(L, sl, n_sl, write_back(L, idx, mfx_load(a, local, ndim, lidx)),
                        outer, NEST_GUARDS);
  mfx_stmt *body = mfx_stmt_allocate(a, local, mfx_stmt_seq(a, 3, (mfx_stmt *[]){init, update, back}));
  n = range_positions(0, p + 1, pos);
  *out = nest(L, pos, n, body, 0, NEST_GUARDS | NEST_ATTACHED | NEST_ENCLOSING);
  return MFX_OK;
}

static mfx_status lower_stage(mfx_arena *a, mfx_schedule *s, mfx_stage *st, mfx_expr *body,
                              mfx_expr **bodies, mfx_stmt **out) {
  stage_lowering L = {.arena = a, .schedule = s, .stage = st};
  L.value = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  infer_values(&L);
  mfx_tensor *t = st->tensor;
  mfx_expr *idx[MFX_MAX_DIMS];
  for (int d = 0; d < t->n_axes; d++) idx[d] = L.value[t->axes[d]->id];
  int is_reduce = body->kind == MFX_EXPR_REDUCE;
  mfx_expr *src = mfx_expr_substitute(a, is_reduce ? body->u.red.src : body, L.value);
  for (int i = 0; i < st->n_attached; i++) {
    const mfx_attached *spec = &st->attached[i];
    int k = stage_index(s, spec->tensor);
    mfx_status rc = prepare_attachment(&L, spec, spec->compute ? bodies[k] : NULL, &src);
    if (rc != MFX_OK) return rc;
  }
  if (!is_reduce) {
    *out = lower_elementwise(&L, idx, src);
    return MFX_OK;
  }
  if (st->epilogue) {
    mfx_status rc = check_epilogue(s, st, bodies);
    if (rc != MFX_OK) return rc;
    L.epilogue = bodies[stage_index(s, st->epilogue->tensor)];
  }
  if (st->local_at) return lower_reduce_local(&L, idx, body, src, out);
  *out = lower_reduce_in_place(&L, idx, body, src);
  return MFX_OK;
}

/* ---- checks on the result ------------------------------------------------------------------ */

static int contains_for(const mfx_stmt *s) {
  if (!s) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return 1;
  case MFX_STMT_LET: return contains_for(s->u.let.body);
  case MFX_STMT_IF: return contains_for(s->u.if_.then_s) || contains_for(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return contains_for(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (contains_for(s->u.seq.items[i])) return 1;
    return 0;
  default: return 0;
  }
}

static mfx_status check_loops(const mfx_stmt *s, int in_parallel, const char *stage) {
  if (!s) return MFX_OK;
  mfx_status rc = MFX_OK;
  switch (s->kind) {
  case MFX_STMT_FOR:
    if (s->u.loop.kind == MFX_LOOP_VECTORIZED && contains_for(s->u.loop.body))
      return mfx_fail(MFX_ERR_SCHEDULE,
                      "stage %s: vectorized loop %s is not innermost (move it inside, or unroll "
                      "nothing below it)", stage, s->u.loop.var->name);
    if (s->u.loop.kind == MFX_LOOP_PARALLEL && in_parallel)
      return mfx_fail(MFX_ERR_SCHEDULE, "stage %s: parallel loop %s is nested in another",
                      stage, s->u.loop.var->name);
    return check_loops(s->u.loop.body, in_parallel || s->u.loop.kind == MFX_LOOP_PARALLEL, stage);
  case MFX_STMT_LET: return check_loops(s->u.let.body, in_parallel, stage);
  case MFX_STMT_IF:
    rc = check_loops(s->u.if_.then_s, in_parallel, stage);
    return rc ? rc : check_loops(s->u.if_.else_s, in_parallel, stage);
  case MFX_STMT_ALLOCATE: return check_loops(s->u.alloc.body, in_parallel, stage);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n && rc == MFX_OK; i++)
      rc = check_loops(s->u.seq.items[i], in_parallel, stage);
    return rc;
  default: return MFX_OK;
  }
}

/* A stage computed at a loop of one consumer exists nowhere else. */
static mfx_status check_attached_readers(const mfx_schedule *s, const mfx_stage *st) {
  for (int i = 0; i < st->tensor->n_inputs; i++) {
    int k = stage_index(s, st->tensor->inputs[i]);
    if (k < 0 || !s->stages[k]->attached_to || s->stages[k]->attached_to == st) continue;
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "stage %s is computed at a loop of %s but %s reads it too; inline it or "
                    "keep it at the root", st->tensor->inputs[i]->buf->name,
                    s->stages[k]->attached_to->tensor->buf->name, st->tensor->buf->name);
  }
  return MFX_OK;
}

/* ---- the function ---------------------------------------------------------------------------- */

mfx_status mfx_lower(mfx_schedule *s, const char *name, mfx_func **out) {
  mfx_arena *a = s->arena;
  *out = NULL;
  mfx_expr **bodies = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)s->n_stages);
  mfx_stmt **parts = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)s->n_stages);
  int n_parts = 0;
  for (int i = 0; i < s->n_stages; i++) {
    mfx_stage *st = s->stages[i];
    mfx_status rc = check_attached_readers(s, st);
    if (rc != MFX_OK) return rc;
    bodies[i] = inline_loads(a, st->tensor->body, bodies, s);
  }
  for (int i = 0; i < s->n_stages; i++) {
    mfx_stage *st = s->stages[i];
    /* A reduction with an epilogue runs where its consumer would: after
     * every stage the consumer reads. */
    if (st->inlined || st->attached_to || st->epilogue) continue;
    int k = st->fused_into ? stage_index(s, st->fused_into->tensor) : i;
    st = s->stages[k];
    mfx_status rc = lower_stage(a, s, st, bodies[k], bodies, &parts[n_parts]);
    if (rc == MFX_OK) rc = check_loops(parts[n_parts], 0, st->tensor->buf->name);
    if (rc != MFX_OK) return rc;
    n_parts++;
  }
  mfx_stmt *body = mfx_stmt_seq(a, n_parts, parts);
  for (int i = s->n_stages - 1; i >= 0; i--)
    if (!s->stages[i]->is_output && !s->stages[i]->inlined && !s->stages[i]->attached_to &&
        !s->stages[i]->epilogue)
      body = mfx_stmt_allocate(a, s->stages[i]->tensor->buf, body);

  mfx_func *fn = mfx_arena_alloc(a, sizeof *fn);
  fn->name = mfx_arena_strdup(a, name);
  fn->n_args = s->n_inputs + s->n_outputs;
  fn->args = mfx_arena_alloc(a, sizeof(mfx_buffer *) * (size_t)fn->n_args);
  for (int i = 0; i < s->n_inputs; i++) fn->args[i] = s->inputs[i]->buf;
  for (int i = 0; i < s->n_outputs; i++) fn->args[s->n_inputs + i] = s->outputs[i]->buf;
  body = mfx_simplify_stmt(a, body);
  body = mfx_flatten_stmt(a, body);
  fn->body = mfx_simplify_stmt(a, body);
  *out = fn;
  return MFX_OK;
}
