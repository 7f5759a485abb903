/* Lowering: a schedule and its tensor expressions become one loop-IR
 * function. Per stage: express every root axis through the leaf loops
 * (bound inference over split/fuse), guard non-dividing splits at the
 * depth where their loops are bound, split reductions into an init nest
 * and an update nest, accumulate in a local buffer when asked, and give
 * intermediate tensors a workspace. Then simplify and flatten. Attached
 * buffers: lower_region.c; checks on the result: lower_verify.c. */
#include <string.h>

#include "bounds.h"
#include "lower_internal.h"

/* NEST_ENCLOSING: the body holds the stage's other nests. NEST_REDUCE_GUARDS_ONLY: of the
 * guards, only those that read a reduction loop. */
enum { NEST_GUARDS = 1, NEST_ATTACHED = 2, NEST_ENCLOSING = 4, NEST_REDUCE_GUARDS_ONLY = 8 };

/* ---- inlining ------------------------------------------------------------------- */

int lower_stage_index(const mfx_schedule *s, const mfx_tensor *t) {
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i]->tensor == t) return i;
  return -1;
}

typedef struct {
  mfx_ir_mutator base;
  mfx_expr **bodies;
  const mfx_schedule *s;
} inliner;

/* Replace loads of inlined stages by their (already inlined) bodies. */
static mfx_expr *inline_load(mfx_ir_mutator *m, mfx_expr *e) {
  const inliner *in = (const inliner *)m;
  mfx_arena *a = m->arena;
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_LOAD || !c->u.load.buf->tensor) return c;
  int k = lower_stage_index(in->s, c->u.load.buf->tensor);
  if (k < 0 || !in->s->stages[k]->inlined) return c;
  const mfx_tensor *producer = in->s->stages[k]->tensor;
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  for (int i = 0; i < producer->n_axes; i++) repl[producer->axes[i]->id] = c->u.load.idx[i];
  return mfx_expr_substitute(a, in->bodies[k], repl);
}

static mfx_expr *inline_loads(mfx_arena *a, mfx_expr *e, mfx_expr **bodies,
                              const mfx_schedule *s) {
  inliner in = {{a, inline_load, NULL}, bodies, s};
  return mfx_ir_mutate_expr(&in.base, e);
}

/* ---- leaf values and guards ------------------------------------------------------- */

int lower_leaf_position(const mfx_stage *st, const mfx_var *v) {
  for (int i = 0; i < st->n_leaves; i++)
    if (st->leaves[i]->var == v) return i;
  return -1;
}

typedef struct {
  mfx_ir_visitor base;
  const mfx_stage *st;
  uint64_t mask;
} leaf_reads;

static void leaf_read(mfx_ir_visitor *v, const mfx_expr *e) {
  leaf_reads *r = (leaf_reads *)v;
  if (e->kind == MFX_EXPR_REDUCE) return;
  if (e->kind != MFX_EXPR_VAR) {
    mfx_ir_visit_expr_children(v, e);
    return;
  }
  int p = lower_leaf_position(r->st, e->u.var);
  if (p >= 0) r->mask |= (uint64_t)1 << p;
}

/* The leaf positions e reads. */
static uint64_t leaf_mask(const mfx_stage *st, const mfx_expr *e) {
  leaf_reads r = {{leaf_read, NULL, 0}, st, 0};
  mfx_ir_visit_expr(&r.base, e);
  return r.mask;
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
        g->mask = leaf_mask(st, g->cond);
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
      if ((flags & NEST_REDUCE_GUARDS_ONLY) && !(L->guards[g].mask & L->reduce_leaves)) continue;
      if (guard_depth(L, &L->guards[g], positions, n, outer, mine, flags) != j) continue;
      cond = cond ? mfx_binary(a, MFX_LAND, cond, L->guards[g].cond) : L->guards[g].cond;
    }
    if (cond) s = mfx_stmt_if(a, cond, s, NULL);
    if (j >= 0) {
      if (flags & NEST_ATTACHED) s = lower_wrap_attached(L, positions[j], s);
      const mfx_itervar *iv = L->stage->leaves[positions[j]];
      s = mfx_stmt_for(a, iv->var, iv->extent, iv->kind, s);
      if (flags & NEST_ATTACHED) s = lower_wrap_attached_loop(L, positions[j], s);
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

typedef struct {
  mfx_ir_visitor base;
  int safe;
} tile_reads;

static void tile_read(mfx_ir_visitor *v, const mfx_expr *e) {
  tile_reads *r = (tile_reads *)v;
  if (e->kind == MFX_EXPR_LOAD && e->u.load.buf->scope == MFX_SCOPE_GLOBAL) r->safe = 0;
  if (e->kind == MFX_EXPR_BINARY && (e->u.bin.op == MFX_DIV || e->u.bin.op == MFX_MOD) &&
      !mfx_dtype_is_float(e->type) && e->u.bin.b->kind != MFX_EXPR_INT)
    r->safe = 0;
  if (!r->safe) v->stop = 1;
  else mfx_ir_visit_expr_children(v, e);
}

/* The update of a local accumulator may run unguarded on the spatial axes
 * (mfx_sched_unguarded_update asks for it) when src reads only attached tiles (filled whole, zeros outside the
 * tensor: every read is defined and in bounds) and divides by no data: an
 * element past the tensor's edge accumulates a value nobody stores (its
 * write-back stays guarded). The partial tiles then cost no branch per
 * term; the guards on the reduction axis stay (zeros need not be its
 * identity) unless mfx_sched_unguarded_reduce said they are. */
static int update_unguarded(const mfx_expr *src) {
  tile_reads r = {{tile_read, NULL, 0}, 1};
  mfx_ir_visit_expr(&r.base, src);
  return r.safe;
}

static mfx_status lower_reduce_local(stage_lowering *L, mfx_expr **idx, const mfx_expr *red,
                                     mfx_expr *src, mfx_stmt **out) {
  mfx_arena *a = L->arena;
  mfx_stage *st = L->stage;
  const char *name = st->tensor->buf->name;
  int p = lower_leaf_position(st, st->local_at->var);
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
  for (int q = 0; q < st->n_leaves; q++)
    if (st->leaves[q]->is_reduce) L->reduce_leaves |= (uint64_t)1 << q;
  int unguarded = st->unguarded_update && update_unguarded(src);
  int flags = NEST_GUARDS | NEST_ATTACHED | (unguarded ? NEST_REDUCE_GUARDS_ONLY : 0);
  if (unguarded && st->unguarded_update == 2) flags = NEST_ATTACHED; /* no guard at all */
  mfx_stmt *update = nest(L, pos, n, mfx_stmt_store(a, local, ndim, lidx, acc), outer, flags);
  mfx_stmt *back = nest(L, sl, n_sl, write_back(L, idx, mfx_load(a, local, ndim, lidx)),
                        outer, NEST_GUARDS);
  mfx_stmt *body = mfx_stmt_allocate(a, local, mfx_stmt_seq(a, 3, (mfx_stmt *[]){init, update, back}));
  n = range_positions(0, p + 1, pos);
  *out = nest(L, pos, n, body, 0, NEST_GUARDS | NEST_ATTACHED | NEST_ENCLOSING);
  return MFX_OK;
}

static mfx_status lower_stage(mfx_arena *a, mfx_schedule *s, mfx_stage *st, mfx_expr *body,
                              mfx_expr **bodies, mfx_stmt **out) {
  if (st->nest != NULL) { /* mfx_sched_set_nest: built by its template */
    *out = st->nest;
    return MFX_OK;
  }
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
    int k = lower_stage_index(s, spec->tensor);
    mfx_status rc = lower_prepare_attachment(&L, spec, spec->compute ? bodies[k] : NULL, &src);
    if (rc != MFX_OK) return rc;
  }
  if (!is_reduce) {
    *out = lower_elementwise(&L, idx, src);
    return MFX_OK;
  }
  if (st->epilogue) {
    mfx_status rc = check_epilogue(s, st, bodies);
    if (rc != MFX_OK) return rc;
    L.epilogue = bodies[lower_stage_index(s, st->epilogue->tensor)];
  }
  if (st->local_at) return lower_reduce_local(&L, idx, body, src, out);
  *out = lower_reduce_in_place(&L, idx, body, src);
  return MFX_OK;
}

/* The walkers below recurse: refuse a body deeper than the TE allows
 * (inlining adds the producers' levels). */
static mfx_status check_depth(const mfx_stage *st, const mfx_expr *body, const char *with) {
  if (!body)
    return mfx_fail(MFX_ERR_INVALID, "compute %s: no body (mfx_compute_set_body was not called)",
                    st->tensor->buf->name);
  if (!mfx_expr_deeper_than(body, MFX_MAX_EXPR_DEPTH)) return MFX_OK;
  return mfx_fail(MFX_ERR_SCHEDULE, "compute %s: more than %d levels deep%s (the limit)",
                  st->tensor->buf->name, MFX_MAX_EXPR_DEPTH, with);
}

/* ---- the function ---------------------------------------------------------------------------- */

mfx_status mfx_lower_traced(mfx_schedule *s, const char *name, mfx_pass_hook after, void *ctx,
                            mfx_func **out) {
  mfx_arena *a = s->arena;
  *out = NULL;
  mfx_expr **bodies = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)s->n_stages);
  mfx_stmt **parts = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)s->n_stages);
  int n_parts = 0;
  for (int i = 0; i < s->n_stages; i++) {
    mfx_stage *st = s->stages[i];
    mfx_status rc = lower_check_attached_readers(s, st);
    if (rc != MFX_OK) return rc;
    if ((rc = check_depth(st, st->tensor->body, "")) != MFX_OK) return rc;
    bodies[i] = inline_loads(a, st->tensor->body, bodies, s);
    if ((rc = check_depth(st, bodies[i], " with its inlined producers")) != MFX_OK) return rc;
  }
  for (int i = 0; i < s->n_stages; i++) {
    mfx_stage *st = s->stages[i];
    /* A reduction with an epilogue runs where its consumer would: after
     * every stage the consumer reads. */
    if (st->inlined || st->attached_to || st->epilogue) continue;
    int k = st->fused_into ? lower_stage_index(s, st->fused_into->tensor) : i;
    st = s->stages[k];
    mfx_status rc = lower_stage(a, s, st, bodies[k], bodies, &parts[n_parts]);
    if (rc == MFX_OK) rc = lower_check_loops(parts[n_parts], st->tensor->buf->name);
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
  fn->body = body;
  mfx_status rc = mfx_run_passes(a, fn, after, ctx);
  if (rc != MFX_OK) return rc;
  *out = fn;
  return MFX_OK;
}

mfx_status mfx_lower(mfx_schedule *s, const char *name, mfx_func **out) {
  return mfx_lower_traced(s, name, NULL, NULL, out);
}
