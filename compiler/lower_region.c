/* Buffers attached to a stage by cache_read and compute_at: the region of
 * the tensor the stage reads inside the attach loop (inferred from affine
 * load indices), the redirection of those loads to the buffer, and the code
 * that fills it at the start of each iteration (shared: by the block's
 * threads together, between barriers). */
#include "lower_internal.h"

static int is_thread_kind(mfx_loop_kind k) { return k >= MFX_LOOP_THREAD_X && k <= MFX_LOOP_THREAD_Z; }
static int is_block_kind(mfx_loop_kind k) { return k >= MFX_LOOP_BLOCK_X && k <= MFX_LOOP_BLOCK_Z; }

/* Inside the attach loop: the loops below it, and for shared buffers every
 * thread loop (the block's threads fill the buffer together). */
static int is_inside(const attachment *at, const mfx_stage *st, int p) {
  return p > at->pos || (at->spec->scope == MFX_SCOPE_SHARED && is_thread_kind(st->leaves[p]->kind));
}

#define REGION_MAX_OPAQUE 4

/* An index as c + sum(coeff[v] * leaf v) + sum(opaque_coeff[i] * opaque[i]),
 * where each opaque term is a non-affine expression of loops outside the
 * attach loop only (a block index split out of fused block loops by / and
 * %): constant over the region, so it moves the region's base, never its
 * extent. Fails on anything else not affine. */
typedef struct {
  int64_t c;
  int64_t coeff[MFX_MAX_ITERVARS]; /* by leaf position */
  int n_opaque;
  const mfx_expr *opaque[REGION_MAX_OPAQUE];
  int64_t opaque_coeff[REGION_MAX_OPAQUE];
} linear_form;

static int region_same_expr(const mfx_expr *x, const mfx_expr *y) {
  if (x == y) return 1;
  if (!x || !y || x->kind != y->kind || x->type != y->type) return 0;
  switch (x->kind) {
  case MFX_EXPR_INT: return x->u.i == y->u.i;
  case MFX_EXPR_VAR: return x->u.var == y->u.var;
  case MFX_EXPR_BINARY:
    return x->u.bin.op == y->u.bin.op && region_same_expr(x->u.bin.a, y->u.bin.a) &&
           region_same_expr(x->u.bin.b, y->u.bin.b);
  case MFX_EXPR_UNARY: return x->u.un.op == y->u.un.op && region_same_expr(x->u.un.a, y->u.un.a);
  case MFX_EXPR_CAST: return region_same_expr(x->u.cast.a, y->u.cast.a);
  default: return 0;
  }
}

/* 1 when e is integer arithmetic on loops outside the attach loop only. */
static int region_outside_only(const mfx_stage *st, const attachment *at, const mfx_expr *e) {
  switch (e->kind) {
  case MFX_EXPR_INT: return 1;
  case MFX_EXPR_VAR: {
    int p = lower_leaf_position(st, e->u.var);
    return p >= 0 && !is_inside(at, st, p);
  }
  case MFX_EXPR_BINARY:
    return region_outside_only(st, at, e->u.bin.a) && region_outside_only(st, at, e->u.bin.b);
  case MFX_EXPR_UNARY: return region_outside_only(st, at, e->u.un.a);
  case MFX_EXPR_CAST: return region_outside_only(st, at, e->u.cast.a);
  default: return 0;
  }
}

static int linear_add_opaque(linear_form *out, const mfx_expr *e, int64_t scale) {
  for (int i = 0; i < out->n_opaque; i++)
    if (region_same_expr(out->opaque[i], e)) {
      out->opaque_coeff[i] += scale;
      return 1;
    }
  if (out->n_opaque == REGION_MAX_OPAQUE) return 0;
  out->opaque[out->n_opaque] = e;
  out->opaque_coeff[out->n_opaque++] = scale;
  return 1;
}

static int linear_of(const mfx_stage *st, const attachment *at, const mfx_expr *e,
                     int64_t scale, linear_form *out);

static int linear_of_binary(const mfx_stage *st, const attachment *at, const mfx_expr *e,
                            int64_t scale, linear_form *out) {
  const mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  switch (e->u.bin.op) {
  case MFX_ADD: return linear_of(st, at, x, scale, out) && linear_of(st, at, y, scale, out);
  case MFX_SUB: return linear_of(st, at, x, scale, out) && linear_of(st, at, y, -scale, out);
  case MFX_MUL:
    if (y->kind == MFX_EXPR_INT) return linear_of(st, at, x, scale * y->u.i, out);
    if (x->kind == MFX_EXPR_INT) return linear_of(st, at, y, scale * x->u.i, out);
    return 0;
  default: return 0;
  }
}

static int linear_of(const mfx_stage *st, const attachment *at, const mfx_expr *e,
                     int64_t scale, linear_form *out) {
  switch (e->kind) {
  case MFX_EXPR_INT: out->c += scale * e->u.i; return 1;
  case MFX_EXPR_VAR: {
    int p = lower_leaf_position(st, e->u.var);
    if (p < 0) return 0;
    out->coeff[p] += scale;
    return 1;
  }
  case MFX_EXPR_CAST: return linear_of(st, at, e->u.cast.a, scale, out);
  case MFX_EXPR_BINARY: {
    linear_form tried = *out; /* a failed try leaves out as it was */
    if (linear_of_binary(st, at, e, scale, &tried)) {
      *out = tried;
      return 1;
    }
    return region_outside_only(st, at, e) && linear_add_opaque(out, e, scale);
  }
  default: return 0;
  }
}


typedef struct {
  mfx_ir_visitor base;
  stage_lowering *L;
  attachment *at;
  int n_loads;
  linear_form first[MFX_MAX_DIMS]; /* the outside part of the first load */
  int64_t lo[MFX_MAX_DIMS], hi[MFX_MAX_DIMS];
  mfx_status status;
} region_walk;

static int same_opaque(const linear_form *f, const linear_form *g) {
  if (f->n_opaque != g->n_opaque) return 0;
  for (int i = 0; i < f->n_opaque; i++) {
    int found = 0;
    for (int j = 0; j < g->n_opaque && !found; j++)
      found = region_same_expr(f->opaque[i], g->opaque[j]) &&
              f->opaque_coeff[i] == g->opaque_coeff[j];
    if (!found) return 0;
  }
  return 1;
}

static int same_outside(const region_walk *w, const linear_form *f, int d) {
  for (int p = 0; p < w->L->stage->n_leaves; p++)
    if (!is_inside(w->at, w->L->stage, p) && f->coeff[p] != w->first[d].coeff[p]) return 0;
  return same_opaque(f, &w->first[d]);
}

static void region_add_load(region_walk *w, const mfx_expr *e) {
  const mfx_stage *st = w->L->stage;
  const char *name = w->at->spec->tensor->buf->name;
  for (int d = 0; d < e->u.load.n && w->status == MFX_OK; d++) {
    linear_form f = {0};
    if (!linear_of(st, w->at, e->u.load.idx[d], 1, &f)) {
      w->status = mfx_fail(MFX_ERR_SCHEDULE,
                           "attach %s to stage %s: index %d of a load is not affine in the loops "
                           "(a loop fused inside the attach loop cannot be cached)", name, st->tensor->buf->name, d);
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

/* After a load's indices, the load itself: loads of the attached tensor
 * widen the region. */
static void region_visit(mfx_ir_visitor *v, const mfx_expr *e) {
  region_walk *w = (region_walk *)v;
  mfx_ir_visit_expr_children(v, e);
  if (!v->stop && e->kind == MFX_EXPR_LOAD && e->u.load.buf == w->at->spec->tensor->buf)
    region_add_load(w, e);
  if (w->status != MFX_OK) v->stop = 1;
}

/* The outside part of a linear form (plus a constant) as an expression. */
static mfx_expr *outside_expr(stage_lowering *L, const attachment *at, const linear_form *f,
                              int64_t c) {
  mfx_arena *a = L->arena;
  mfx_expr *e = mfx_i64(a, c);
  for (int p = 0; p < L->stage->n_leaves; p++)
    if (!is_inside(at, L->stage, p) && f->coeff[p])
      e = mfx_add(a, e, mfx_mul(a, mfx_var_ref(a, L->stage->leaves[p]->var), mfx_i64(a, f->coeff[p])));
  for (int i = 0; i < f->n_opaque; i++)
    if (f->opaque_coeff[i])
      e = mfx_add(a, e, mfx_mul(a, (mfx_expr *)f->opaque[i], mfx_i64(a, f->opaque_coeff[i])));
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

typedef struct {
  mfx_ir_mutator base;
  stage_lowering *L;
  const attachment *at;
} load_redirect;

/* Double buffering: the slot of iteration (attach loop + ahead) % 2. */
static mfx_expr *region_slot(stage_lowering *L, const attachment *at, int64_t ahead) {
  mfx_arena *a = L->arena;
  mfx_expr *it = mfx_add(a, mfx_var_ref(a, L->stage->leaves[at->pos]->var), mfx_i64(a, ahead));
  return mfx_simplify_expr(a, mfx_binary(a, MFX_MOD, it, mfx_i64(a, 2)));
}

/* Loads of the attached tensor read the buffer instead, at the inside part. */
static mfx_expr *redirect_load(mfx_ir_mutator *m, mfx_expr *e) {
  const load_redirect *r = (const load_redirect *)m;
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_LOAD || c->u.load.buf != r->at->spec->tensor->buf) return c;
  mfx_expr *idx[MFX_MAX_DIMS + 1];
  int k = r->at->slots == 2;
  if (k) idx[0] = region_slot(r->L, r->at, 0);
  for (int d = 0; d < c->u.load.n; d++) {
    linear_form f = {0};
    linear_of(r->L->stage, r->at, c->u.load.idx[d], 1, &f);
    idx[k + d] = inside_expr(r->L, r->at, &f, r->at->lo[d]);
  }
  return mfx_load(m->arena, r->at->buf, k + c->u.load.n, idx);
}

static mfx_expr *redirect_loads(stage_lowering *L, const attachment *at, mfx_expr *e) {
  load_redirect r = {{L->arena, redirect_load, NULL}, L, at};
  return mfx_ir_mutate_expr(&r.base, e);
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
mfx_status lower_prepare_attachment(stage_lowering *L, const mfx_attached *spec,
                                    mfx_expr *producer_body, mfx_expr **src) {
  mfx_arena *a = L->arena;
  attachment *at = &L->attached[L->n_attached];
  *at = (attachment){.spec = spec, .pos = lower_leaf_position(L->stage, spec->at->var)};
  mfx_status rc = check_attach_loop(L, spec, at->pos);
  if (rc != MFX_OK) return rc;
  region_walk w = {.base = {region_visit, NULL, 0}, .L = L, .at = at, .status = MFX_OK};
  mfx_ir_visit_expr(&w.base, *src);
  if (w.status != MFX_OK) return w.status;
  const mfx_buffer *t = spec->tensor->buf;
  int64_t shape[MFX_MAX_DIMS + 1], elems = 1;
  at->slots = spec->double_buffer && spec->scope == MFX_SCOPE_SHARED ? 2 : 1;
  int k = at->slots == 2;
  if (k) {
    if (t->ndim >= MFX_MAX_DIMS)
      return mfx_fail(MFX_ERR_SCHEDULE, "double-buffered %s: %d dimensions (at most %d)",
                      t->name, t->ndim, MFX_MAX_DIMS - 1);
    shape[0] = elems = 2;
  }
  for (int d = 0; d < t->ndim; d++) {
    at->lo[d] = w.lo[d];
    shape[k + d] = w.n_loads ? w.hi[d] - w.lo[d] + 1 : 1;
    elems *= shape[k + d];
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
                              t->dtype, k + t->ndim, shape, spec->scope);
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
  mfx_expr *idx[MFX_MAX_DIMS + 1];
  int k = at->slots == 2;
  if (k) idx[0] = at->slot;
  for (int d = 0; d < t->buf->ndim; d++) idx[k + d] = r[d];
  mfx_stmt *copy = mfx_stmt_store(a, at->buf, k + t->buf->ndim, idx, value);
  if (copy != NULL) copy->u.store.async = k && !at->spec->compute;
  return mfx_stmt_if(a, in, copy, mfx_stmt_store(a, at->buf, k + t->buf->ndim, idx, zero));
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
  int k = at->slots == 2, nd = at->buf->ndim - k;
  const int64_t *shape = at->buf->shape + k;
  int64_t total = 1;
  for (int d = 0; d < nd; d++) total *= shape[d];
  mfx_var *e = mfx_var_create(a, mfx_arena_printf(a, "%s.e", at->buf->name), (total + threads - 1) / threads, 0);
  mfx_var *flat = mfx_var_create(a, mfx_arena_printf(a, "%s.f", at->buf->name), e->extent * threads, 0);
  mfx_expr *fe = mfx_var_ref(a, flat), *r[MFX_MAX_DIMS];
  int64_t stride = 1;
  for (int d = nd - 1; d >= 0; d--) {
    r[d] = mfx_binary(a, MFX_MOD, mfx_binary(a, MFX_DIV, fe, mfx_i64(a, stride)),
                      mfx_i64(a, shape[d]));
    stride *= shape[d];
  }
  mfx_stmt *body = mfx_stmt_if(a, mfx_binary(a, MFX_LT, fe, mfx_i64(a, total)), fill_element(L, at, r), NULL);
  mfx_expr *fv = mfx_add(a, mfx_mul(a, mfx_var_ref(a, e), mfx_i64(a, threads)), tid);
  body = mfx_stmt_let(a, flat, mfx_simplify_expr(a, fv), body);
  return mfx_stmt_for(a, e, e->extent, MFX_LOOP_SERIAL, body);
}

/* The fill of a double-buffered attachment for iteration it0 + ahead of
 * the attach loop (it0: the loop variable, or 0 for the prologue), into
 * slot (it0 + ahead) % 2. */
static mfx_stmt *fill_ahead(stage_lowering *L, attachment *at, int prologue) {
  mfx_arena *a = L->arena;
  mfx_var *v = L->stage->leaves[at->pos]->var;
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  mfx_expr *it = prologue ? mfx_i64(a, 0) : mfx_add(a, mfx_var_ref(a, v), mfx_i64(a, 1));
  repl[v->id] = it;
  mfx_expr *saved[MFX_MAX_DIMS];
  int nd = at->spec->tensor->buf->ndim;
  for (int d = 0; d < nd; d++) {
    saved[d] = at->base[d];
    at->base[d] = mfx_simplify_expr(a, mfx_expr_substitute(a, at->base[d], repl));
  }
  at->slot = prologue ? mfx_i64(a, 0) : region_slot(L, at, 1);
  mfx_stmt *s = fill_shared(L, at);
  for (int d = 0; d < nd; d++) at->base[d] = saved[d];
  return s;
}

static int double_buffered_at(const stage_lowering *L, int pos) {
  for (int i = 0; i < L->n_attached; i++)
    if (L->attached[i].pos == pos && L->attached[i].slots == 2) return 1;
  return 0;
}

/* Double buffering at pos, inside the loop: one barrier per iteration that
 * first waits for this thread's async copies (the tiles of this iteration
 * are complete, and every thread is done with the last iteration's, whose
 * slot the next fill overwrites), then the async fills of the next
 * iteration, then body. */
static mfx_stmt *wrap_double_buffered(stage_lowering *L, int pos, mfx_stmt *body) {
  mfx_arena *a = L->arena;
  mfx_stmt *fills[MFX_MAX_ATTACHED], *wait = mfx_stmt_barrier(a);
  int n = 0;
  if (wait != NULL) wait->u.bar.wait_async = 1;
  for (int i = 0; i < L->n_attached; i++)
    if (L->attached[i].pos == pos && L->attached[i].slots == 2)
      fills[n++] = fill_ahead(L, &L->attached[i], 0);
  const mfx_itervar *iv = L->stage->leaves[pos];
  mfx_expr *more = mfx_binary(a, MFX_LT, mfx_add(a, mfx_var_ref(a, iv->var), mfx_i64(a, 1)),
                              mfx_i64(a, iv->extent));
  mfx_stmt *next = mfx_stmt_if(a, more, mfx_stmt_seq(a, n, fills), NULL);
  return mfx_stmt_seq(a, 3, (mfx_stmt *[]){wait, next, body});
}

/* Around the loop at pos: the double-buffered buffers, allocated once, and
 * the prologue filling slot 0 for the first iteration (after a barrier when
 * a serial loop encloses it: no thread still reads them from its last pass). */
mfx_stmt *lower_wrap_attached_loop(stage_lowering *L, int pos, mfx_stmt *loop) {
  if (!double_buffered_at(L, pos)) return loop;
  mfx_arena *a = L->arena;
  mfx_stmt *items[MFX_MAX_ATTACHED + 2];
  int n = 0;
  for (int p = 0; p < pos; p++) /* a serial loop around: its last pass may still read */
    if (!is_thread_kind(L->stage->leaves[p]->kind) && !is_block_kind(L->stage->leaves[p]->kind) &&
        L->stage->leaves[p]->extent > 1) {
      items[n++] = mfx_stmt_barrier(a);
      break;
    }
  for (int i = 0; i < L->n_attached; i++)
    if (L->attached[i].pos == pos && L->attached[i].slots == 2)
      items[n++] = fill_ahead(L, &L->attached[i], 1);
  items[n++] = loop;
  mfx_stmt *s = mfx_stmt_seq(a, n, items);
  for (int i = L->n_attached - 1; i >= 0; i--)
    if (L->attached[i].pos == pos && L->attached[i].slots == 2)
      s = mfx_stmt_allocate(a, L->attached[i].buf, s);
  return s;
}

/* The fills of the buffers attached at pos, then body: the shared fills
 * together between one pair of barriers (the first: no thread still reads
 * the last step's tiles; the second: every tile is complete), then the
 * local fills; each buffer allocated around it all. Double-buffered ones
 * (all shared ones at pos, or none) see wrap_double_buffered. */
mfx_stmt *lower_wrap_attached(stage_lowering *L, int pos, mfx_stmt *body) {
  mfx_arena *a = L->arena;
  mfx_stmt *items[2 * MFX_MAX_ATTACHED + 3];
  int n = 0, n_shared = 0;
  if (double_buffered_at(L, pos)) body = wrap_double_buffered(L, pos, body);
  for (int i = 0; i < L->n_attached; i++)
    if (L->attached[i].pos == pos && L->attached[i].spec->scope == MFX_SCOPE_SHARED &&
        L->attached[i].slots == 1) {
      if (n_shared++ == 0) items[n++] = mfx_stmt_barrier(a);
      items[n++] = fill_shared(L, &L->attached[i]);
    }
  if (n_shared > 0) items[n++] = mfx_stmt_barrier(a);
  for (int i = 0; i < L->n_attached; i++)
    if (L->attached[i].pos == pos && L->attached[i].spec->scope != MFX_SCOPE_SHARED)
      items[n++] = fill_local(L, &L->attached[i]);
  if (n == 0) return body;
  items[n++] = body;
  mfx_stmt *s = mfx_stmt_seq(a, n, items);
  for (int i = L->n_attached - 1; i >= 0; i--)
    if (L->attached[i].pos == pos && L->attached[i].slots == 1) s = mfx_stmt_allocate(a, L->attached[i].buf, s);
  return s;
}
