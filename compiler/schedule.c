/* Schedules. One stage per compute; each stage owns itervars (its loops),
 * the relations that made them (split, fuse), the order of its leaf loops
 * and their annotations. Primitives only record; lower.c does the work. */
#include <string.h>

#include "mfx/compiler.h"

/* ---- building the stage list ------------------------------------------------- */

typedef struct {
  mfx_arena *arena;
  mfx_schedule *s;
  int cap;
  int n_inputs;
  mfx_tensor *const *inputs;
  mfx_status status;
} graph_walk;

static int is_listed_input(const graph_walk *w, const mfx_tensor *t) {
  for (int i = 0; i < w->n_inputs; i++)
    if (w->inputs[i] == t) return 1;
  return 0;
}

static mfx_itervar *itervar_new(mfx_arena *a, mfx_var *v, int64_t extent, int is_reduce) {
  mfx_itervar *iv = mfx_arena_alloc(a, sizeof *iv);
  if (!iv) return NULL;
  iv->var = v;
  iv->extent = extent;
  iv->is_reduce = is_reduce;
  iv->kind = MFX_LOOP_SERIAL;
  iv->is_leaf = 1;
  return iv;
}

static void stage_add_root(mfx_arena *a, mfx_stage *st, mfx_var *v) {
  mfx_itervar *iv = itervar_new(a, v, v->extent, v->is_reduce);
  st->root[st->n_root++] = iv;
  st->itervars[st->n_itervars++] = iv;
  st->leaves[st->n_leaves++] = iv;
}

static mfx_stage *stage_new(mfx_arena *a, mfx_tensor *t) {
  mfx_stage *st = mfx_arena_alloc(a, sizeof *st);
  if (!st) return NULL;
  st->tensor = t;
  for (int i = 0; i < t->n_axes; i++) stage_add_root(a, st, t->axes[i]);
  if (t->body->kind == MFX_EXPR_REDUCE)
    for (int i = 0; i < t->body->u.red.n_axes; i++) stage_add_root(a, st, t->body->u.red.axes[i]);
  return st;
}

static void visit(graph_walk *w, mfx_tensor *t) {
  if (w->status != MFX_OK) return;
  mfx_schedule *s = w->s;
  if (t->is_placeholder) {
    if (!is_listed_input(w, t))
      w->status = mfx_fail(MFX_ERR_INVALID,
                           "schedule: placeholder %s is read but not listed as an input",
                           t->buf->name);
    return;
  }
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i]->tensor == t) return;
  if (!t->body) {
    w->status = mfx_fail(MFX_ERR_INVALID, "schedule: compute %s has no body", t->buf->name);
    return;
  }
  for (int i = 0; i < t->n_inputs; i++) visit(w, t->inputs[i]);
  if (w->status != MFX_OK) return;
  if (s->n_stages == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 8;
    mfx_stage **grown = mfx_arena_alloc(w->arena, sizeof(mfx_stage *) * (size_t)w->cap);
    if (s->n_stages) memcpy(grown, s->stages, sizeof(mfx_stage *) * (size_t)s->n_stages);
    s->stages = grown;
  }
  s->stages[s->n_stages++] = stage_new(w->arena, t);
}

mfx_status mfx_sched_create(mfx_arena *a, int n_inputs, mfx_tensor *const *inputs,
                               int n_outputs, mfx_tensor *const *outputs,
                               mfx_schedule **out) {
  *out = NULL;
  if (n_outputs < 1) return mfx_fail(MFX_ERR_INVALID, "schedule: no outputs");
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i] || !inputs[i]->is_placeholder)
      return mfx_fail(MFX_ERR_INVALID, "schedule: input %d is not a placeholder", i);
  mfx_schedule *s = mfx_arena_alloc(a, sizeof *s);
  s->arena = a;
  s->n_inputs = n_inputs;
  s->inputs = mfx_arena_alloc(a, sizeof(mfx_tensor *) * (size_t)(n_inputs + 1));
  if (n_inputs) memcpy(s->inputs, inputs, sizeof(mfx_tensor *) * (size_t)n_inputs);
  s->n_outputs = n_outputs;
  s->outputs = mfx_arena_alloc(a, sizeof(mfx_tensor *) * (size_t)n_outputs);
  graph_walk w = {a, s, 0, n_inputs, inputs, MFX_OK};
  for (int i = 0; i < n_outputs; i++) {
    if (!outputs[i] || outputs[i]->is_placeholder)
      return mfx_fail(MFX_ERR_INVALID, "schedule: output %d is not a compute", i);
    s->outputs[i] = outputs[i];
    visit(&w, outputs[i]);
    if (w.status != MFX_OK) return w.status;
  }
  for (int i = 0; i < n_outputs; i++) mfx_sched_stage(s, outputs[i])->is_output = 1;
  *out = s;
  return MFX_OK;
}

mfx_stage *mfx_sched_stage(mfx_schedule *s, const mfx_tensor *t) {
  for (int i = 0; i < s->n_stages; i++)
    if (s->stages[i]->tensor == t) return s->stages[i];
  return NULL;
}

mfx_itervar *mfx_sched_itervar(mfx_stage *st, const char *name) {
  for (int i = 0; i < st->n_itervars; i++)
    if (strcmp(st->itervars[i]->var->name, name) == 0) return st->itervars[i];
  return NULL;
}

/* ---- checks shared by the primitives ------------------------------------------- */

static const char *stage_name(const mfx_stage *st) { return st->tensor->buf->name; }

static int leaf_position(const mfx_stage *st, const mfx_itervar *iv) {
  for (int i = 0; i < st->n_leaves; i++)
    if (st->leaves[i] == iv) return i;
  return -1;
}

static mfx_status check_leaf(const mfx_stage *st, const mfx_itervar *iv, const char *what) {
  if (!st) return mfx_fail(MFX_ERR_SCHEDULE, "%s: no stage", what);
  if (!iv) return mfx_fail(MFX_ERR_SCHEDULE, "%s on stage %s: no such loop", what, stage_name(st));
  if (leaf_position(st, iv) < 0)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s on stage %s: loop %s is not a leaf loop of this stage (already split "
                    "or fused, or from another stage)", what, stage_name(st), iv->var->name);
  return MFX_OK;
}

static mfx_status check_room(mfx_stage *st, int itervars, const char *what) {
  if (st->n_itervars + itervars > MFX_MAX_ITERVARS || st->n_relations >= MFX_MAX_RELATIONS)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s on stage %s: too many loops (at most %d)", what,
                    stage_name(st), MFX_MAX_ITERVARS);
  return MFX_OK;
}

static mfx_itervar *stage_new_itervar(mfx_schedule *s, mfx_stage *st, const char *name,
                                      int64_t extent, int is_reduce) {
  mfx_var *v = mfx_var_create(s->arena, name, extent, is_reduce);
  mfx_itervar *iv = itervar_new(s->arena, v, extent, is_reduce);
  st->itervars[st->n_itervars++] = iv;
  return iv;
}

/* ---- split, fuse, reorder, tile ---------------------------------------------------- */

mfx_status mfx_sched_split(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, int64_t factor,
                           mfx_tail tail, mfx_itervar **outer, mfx_itervar **inner) {
  mfx_status rc = check_leaf(st, iv, "split");
  if (rc != MFX_OK) return rc;
  if ((rc = check_room(st, 2, "split")) != MFX_OK) return rc;
  const char *n = iv->var->name;
  if (factor < 1)
    return mfx_fail(MFX_ERR_SCHEDULE, "split %s.%s: factor %lld must be positive", stage_name(st),
                    n, (long long)factor);
  if (tail == MFX_TAIL_EXACT && iv->extent % factor != 0)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "split %s.%s: factor %lld does not divide extent %lld (tail 'exact'; use "
                    "'guard')", stage_name(st), n, (long long)factor, (long long)iv->extent);
  if (iv->kind != MFX_LOOP_SERIAL)
    return mfx_fail(MFX_ERR_SCHEDULE, "split %s.%s: loop is already marked %s; split first",
                    stage_name(st), n, mfx_loop_kind_name(iv->kind));
  char name[128];
  snprintf(name, sizeof name, "%s.o", n);
  mfx_itervar *o = stage_new_itervar(s, st, name, (iv->extent + factor - 1) / factor, iv->is_reduce);
  snprintf(name, sizeof name, "%s.i", n);
  mfx_itervar *i = stage_new_itervar(s, st, name, factor, iv->is_reduce);
  mfx_relation *r = &st->relations[st->n_relations++];
  *r = (mfx_relation){.kind = MFX_REL_SPLIT, .parent = iv, .outer = o, .inner = i,
                      .factor = factor, .tail = tail};
  int pos = leaf_position(st, iv);
  memmove(&st->leaves[pos + 2], &st->leaves[pos + 1],
          sizeof(mfx_itervar *) * (size_t)(st->n_leaves - pos - 1));
  st->leaves[pos] = o;
  st->leaves[pos + 1] = i;
  st->n_leaves++;
  iv->is_leaf = 0;
  if (outer) *outer = o;
  if (inner) *inner = i;
  return MFX_OK;
}

mfx_status mfx_sched_fuse(mfx_schedule *s, mfx_stage *st, mfx_itervar *outer,
                          mfx_itervar *inner, mfx_itervar **fused) {
  mfx_status rc = check_leaf(st, outer, "fuse");
  if (rc == MFX_OK) rc = check_leaf(st, inner, "fuse");
  if (rc == MFX_OK) rc = check_room(st, 1, "fuse");
  if (rc != MFX_OK) return rc;
  int pos = leaf_position(st, outer);
  if (leaf_position(st, inner) != pos + 1)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse on stage %s: %s must come immediately before %s in the loop order",
                    stage_name(st), outer->var->name, inner->var->name);
  if (outer->is_reduce != inner->is_reduce)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse on stage %s: cannot fuse a reduction loop with a spatial loop (%s, %s)",
                    stage_name(st), outer->var->name, inner->var->name);
  if (outer->kind != MFX_LOOP_SERIAL || inner->kind != MFX_LOOP_SERIAL)
    return mfx_fail(MFX_ERR_SCHEDULE, "fuse on stage %s: loops %s, %s are already annotated",
                    stage_name(st), outer->var->name, inner->var->name);
  char name[256];
  snprintf(name, sizeof name, "%s.%s.f", outer->var->name, inner->var->name);
  mfx_itervar *f = stage_new_itervar(s, st, name, outer->extent * inner->extent, outer->is_reduce);
  mfx_relation *r = &st->relations[st->n_relations++];
  *r = (mfx_relation){.kind = MFX_REL_FUSE, .outer = outer, .inner = inner, .fused = f};
  st->leaves[pos] = f;
  memmove(&st->leaves[pos + 1], &st->leaves[pos + 2],
          sizeof(mfx_itervar *) * (size_t)(st->n_leaves - pos - 2));
  st->n_leaves--;
  outer->is_leaf = inner->is_leaf = 0;
  if (fused) *fused = f;
  return MFX_OK;
}

mfx_status mfx_sched_reorder(mfx_schedule *s, mfx_stage *st, int n, mfx_itervar *const *order) {
  (void)s;
  int slots[MFX_MAX_ITERVARS];
  if (n < 1 || n > MFX_MAX_ITERVARS)
    return mfx_fail(MFX_ERR_SCHEDULE, "reorder: %d loops", n);
  for (int i = 0; i < n; i++) {
    mfx_status rc = check_leaf(st, order[i], "reorder");
    if (rc != MFX_OK) return rc;
    for (int j = 0; j < i; j++)
      if (order[j] == order[i])
        return mfx_fail(MFX_ERR_SCHEDULE, "reorder on stage %s: loop %s named twice",
                        stage_name(st), order[i]->var->name);
    slots[i] = leaf_position(st, order[i]);
  }
  /* The named loops fill their own slots, taken in increasing order. */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && slots[j - 1] > slots[j]; j--) {
      int t = slots[j];
      slots[j] = slots[j - 1];
      slots[j - 1] = t;
    }
  for (int i = 0; i < n; i++) st->leaves[slots[i]] = order[i];
  return MFX_OK;
}

mfx_status mfx_sched_tile(mfx_schedule *s, mfx_stage *st, mfx_itervar *x, mfx_itervar *y,
                          int64_t fx, int64_t fy, mfx_tail tail, mfx_itervar **xo,
                          mfx_itervar **yo, mfx_itervar **xi, mfx_itervar **yi) {
  mfx_itervar *a, *b, *c, *d;
  mfx_status rc = mfx_sched_split(s, st, x, fx, tail, &a, &b);
  if (rc == MFX_OK) rc = mfx_sched_split(s, st, y, fy, tail, &c, &d);
  if (rc == MFX_OK) rc = mfx_sched_reorder(s, st, 4, (mfx_itervar *[]){a, c, b, d});
  if (rc != MFX_OK) return rc;
  if (xo) *xo = a;
  if (yo) *yo = c;
  if (xi) *xi = b;
  if (yi) *yi = d;
  return MFX_OK;
}

/* ---- annotations ----------------------------------------------------------------------- */

#define MFX_MAX_VECTOR_LANES 64
#define MFX_MAX_UNROLL 64

static mfx_status annotate(mfx_stage *st, mfx_itervar *iv, mfx_loop_kind kind, const char *what) {
  mfx_status rc = check_leaf(st, iv, what);
  if (rc != MFX_OK) return rc;
  if (iv->kind != MFX_LOOP_SERIAL && iv->kind != kind)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s %s.%s: loop is already marked %s", what,
                    stage_name(st), iv->var->name, mfx_loop_kind_name(iv->kind));
  iv->kind = kind;
  return MFX_OK;
}

mfx_status mfx_sched_vectorize(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv) {
  (void)s;
  mfx_status rc = check_leaf(st, iv, "vectorize");
  if (rc != MFX_OK) return rc;
  if (iv->is_reduce)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "vectorize %s.%s: cannot vectorize a reduction loop (lanes would race on "
                    "one accumulator); vectorize a spatial loop", stage_name(st), iv->var->name);
  if (iv->extent > MFX_MAX_VECTOR_LANES)
    return mfx_fail(MFX_ERR_SCHEDULE, "vectorize %s.%s: extent %lld exceeds %d lanes; split first",
                    stage_name(st), iv->var->name, (long long)iv->extent, MFX_MAX_VECTOR_LANES);
  return annotate(st, iv, MFX_LOOP_VECTORIZED, "vectorize");
}

mfx_status mfx_sched_unroll(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv) {
  (void)s;
  mfx_status rc = check_leaf(st, iv, "unroll");
  if (rc != MFX_OK) return rc;
  if (iv->extent > MFX_MAX_UNROLL)
    return mfx_fail(MFX_ERR_SCHEDULE, "unroll %s.%s: extent %lld exceeds %d; split first",
                    stage_name(st), iv->var->name, (long long)iv->extent, MFX_MAX_UNROLL);
  return annotate(st, iv, MFX_LOOP_UNROLLED, "unroll");
}

static int stage_has_kind(const mfx_stage *st, mfx_loop_kind k) {
  for (int i = 0; i < st->n_leaves; i++)
    if (st->leaves[i]->kind == k) return 1;
  return 0;
}

mfx_status mfx_sched_parallel(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv) {
  (void)s;
  mfx_status rc = check_leaf(st, iv, "parallel");
  if (rc != MFX_OK) return rc;
  if (iv->is_reduce)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "parallel %s.%s: cannot run a reduction loop in parallel (threads would "
                    "race on one accumulator)", stage_name(st), iv->var->name);
  if (iv->kind != MFX_LOOP_PARALLEL && stage_has_kind(st, MFX_LOOP_PARALLEL))
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "parallel %s.%s: the stage already has a parallel loop (fuse loops to "
                    "parallelize more)", stage_name(st), iv->var->name);
  return annotate(st, iv, MFX_LOOP_PARALLEL, "parallel");
}

mfx_status mfx_sched_bind(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, mfx_loop_kind k) {
  (void)s;
  mfx_status rc = check_leaf(st, iv, "bind");
  if (rc != MFX_OK) return rc;
  if (k < MFX_LOOP_BLOCK_X || k > MFX_LOOP_THREAD_Z)
    return mfx_fail(MFX_ERR_SCHEDULE, "bind %s.%s: %s is not a GPU block or thread axis",
                    stage_name(st), iv->var->name, mfx_loop_kind_name(k));
  if (iv->is_reduce)
    return mfx_fail(MFX_ERR_SCHEDULE, "bind %s.%s: cannot bind a reduction loop",
                    stage_name(st), iv->var->name);
  if (iv->kind != k && stage_has_kind(st, k))
    return mfx_fail(MFX_ERR_SCHEDULE, "bind %s.%s: %s is already bound in this stage",
                    stage_name(st), iv->var->name, mfx_loop_kind_name(k));
  return annotate(st, iv, k, "bind");
}

mfx_status mfx_sched_compute_inline(mfx_schedule *s, mfx_stage *st) {
  (void)s;
  if (!st) return mfx_fail(MFX_ERR_SCHEDULE, "compute_inline: no stage");
  if (st->is_output)
    return mfx_fail(MFX_ERR_SCHEDULE, "compute_inline %s: an output cannot be inlined",
                    stage_name(st));
  if (st->tensor->body->kind == MFX_EXPR_REDUCE)
    return mfx_fail(MFX_ERR_SCHEDULE, "compute_inline %s: a reduction cannot be inlined",
                    stage_name(st));
  if (st->n_relations || st->local_at)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "compute_inline %s: the stage has loop transformations; an inlined stage "
                    "has no loops", stage_name(st));
  if (st->fused_into)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "compute_inline %s: the stage is already the epilogue of %s",
                    stage_name(st), stage_name(st->fused_into));
  st->inlined = 1;
  return MFX_OK;
}

mfx_status mfx_sched_cache_write_local(mfx_schedule *s, mfx_stage *st, mfx_itervar *at) {
  (void)s;
  mfx_status rc = check_leaf(st, at, "cache_write");
  if (rc != MFX_OK) return rc;
  if (st->tensor->body->kind != MFX_EXPR_REDUCE)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "cache_write %s: only reductions accumulate in a local buffer",
                    stage_name(st));
  if (at->is_reduce)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "cache_write %s at %s: the attach loop must be a spatial loop",
                    stage_name(st), at->var->name);
  st->local_at = at;
  return MFX_OK;
}

mfx_status mfx_sched_unguarded_update(mfx_schedule *s, mfx_stage *st) {
  (void)s;
  if (st->local_at == NULL)
    return mfx_fail(MFX_ERR_SCHEDULE, "unguarded_update %s: the stage does not accumulate in a "
                    "local buffer (cache_write_local it first)", stage_name(st));
  st->unguarded_update = 1;
  return MFX_OK;
}

mfx_status mfx_sched_unguarded_reduce(mfx_schedule *s, mfx_stage *st) {
  MFX_TRY(mfx_sched_unguarded_update(s, st));
  st->unguarded_update = 2;
  return MFX_OK;
}

/* ---- attached buffers: cache_read and compute_at ------------------------------------ */

/* Does `reader` read t, directly or through stages inlined into it? */
static int tensor_reads(mfx_schedule *s, const mfx_tensor *reader, const mfx_tensor *t) {
  for (int i = 0; i < reader->n_inputs; i++) {
    if (reader->inputs[i] == t) return 1;
    mfx_stage *producer = mfx_sched_stage(s, reader->inputs[i]);
    if (producer && producer->inlined && tensor_reads(s, reader->inputs[i], t)) return 1;
  }
  return 0;
}

static mfx_status attach(mfx_schedule *s, mfx_stage *st, mfx_tensor *t, mfx_scope scope,
                         mfx_itervar *at, int compute, const char *what) {
  mfx_status rc = check_leaf(st, at, what);
  if (rc != MFX_OK) return rc;
  if (!t) return mfx_fail(MFX_ERR_SCHEDULE, "%s on stage %s: no tensor", what, stage_name(st));
  if (scope != MFX_SCOPE_SHARED && scope != MFX_SCOPE_LOCAL)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s %s in %s: scope must be shared or local", what,
                    t->buf->name, stage_name(st));
  if (!tensor_reads(s, st->tensor, t))
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s: stage %s does not read %s (inline the stages in between first)", what,
                    stage_name(st), t->buf->name);
  if (st->n_attached == MFX_MAX_ATTACHED)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s on stage %s: at most %d attached buffers", what,
                    stage_name(st), MFX_MAX_ATTACHED);
  for (int i = 0; i < st->n_attached; i++)
    if (st->attached[i].tensor == t)
      return mfx_fail(MFX_ERR_SCHEDULE, "%s: %s is already attached to stage %s", what,
                      t->buf->name, stage_name(st));
  st->attached[st->n_attached++] = (mfx_attached){t, scope, at, compute, 0};
  return MFX_OK;
}

mfx_status mfx_sched_cache_read(mfx_schedule *s, mfx_stage *st, mfx_tensor *input,
                                mfx_scope scope, mfx_itervar *at) {
  return attach(s, st, input, scope, at, 0, "cache_read");
}

mfx_status mfx_sched_compute_at(mfx_schedule *s, mfx_stage *producer, mfx_stage *consumer,
                                mfx_itervar *at, mfx_scope scope) {
  if (!producer || !consumer) return mfx_fail(MFX_ERR_SCHEDULE, "compute_at: no stage");
  const char *name = stage_name(producer);
  if (producer->is_output)
    return mfx_fail(MFX_ERR_SCHEDULE, "compute_at %s: an output cannot be computed at a loop", name);
  if (producer->tensor->body->kind == MFX_EXPR_REDUCE)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "compute_at %s: only elementwise stages can be computed at a loop", name);
  if (producer->n_relations || producer->inlined || producer->attached_to)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "compute_at %s: the stage is already split, inlined or attached", name);
  mfx_status rc = attach(s, consumer, producer->tensor, scope, at, 1, "compute_at");
  if (rc == MFX_OK) producer->attached_to = consumer;
  return rc;
}

/* ---- epilogue fusion ------------------------------------------------------------------ */

int mfx_expr_reads(const mfx_expr *e, const mfx_buffer *buf) {
  if (!e) return 0;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    if (e->u.load.buf == buf) return 1;
    for (int i = 0; i < e->u.load.n; i++)
      if (mfx_expr_reads(e->u.load.idx[i], buf)) return 1;
    return 0;
  case MFX_EXPR_BINARY: return mfx_expr_reads(e->u.bin.a, buf) || mfx_expr_reads(e->u.bin.b, buf);
  case MFX_EXPR_UNARY: return mfx_expr_reads(e->u.un.a, buf);
  case MFX_EXPR_CAST: return mfx_expr_reads(e->u.cast.a, buf);
  case MFX_EXPR_SELECT:
    return mfx_expr_reads(e->u.sel.cond, buf) || mfx_expr_reads(e->u.sel.a, buf) ||
           mfx_expr_reads(e->u.sel.b, buf);
  case MFX_EXPR_REDUCE: return mfx_expr_reads(e->u.red.src, buf);
  default: return 0;
  }
}

static int load_at_axes(const mfx_expr *e, const mfx_tensor *c) {
  if (e->u.load.n != c->n_axes) return 0;
  for (int d = 0; d < c->n_axes; d++) {
    const mfx_expr *x = e->u.load.idx[d];
    if (x->kind != MFX_EXPR_VAR || x->u.var != c->axes[d]) return 0;
  }
  return 1;
}

int mfx_expr_reads_at_axes(const mfx_expr *e, const mfx_buffer *buf, const mfx_tensor *c) {
  if (!e) return 1;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    if (e->u.load.buf == buf && !load_at_axes(e, c)) return 0;
    for (int i = 0; i < e->u.load.n; i++)
      if (!mfx_expr_reads_at_axes(e->u.load.idx[i], buf, c)) return 0;
    return 1;
  case MFX_EXPR_BINARY:
    return mfx_expr_reads_at_axes(e->u.bin.a, buf, c) && mfx_expr_reads_at_axes(e->u.bin.b, buf, c);
  case MFX_EXPR_UNARY: return mfx_expr_reads_at_axes(e->u.un.a, buf, c);
  case MFX_EXPR_CAST: return mfx_expr_reads_at_axes(e->u.cast.a, buf, c);
  case MFX_EXPR_SELECT:
    return mfx_expr_reads_at_axes(e->u.sel.cond, buf, c) &&
           mfx_expr_reads_at_axes(e->u.sel.a, buf, c) && mfx_expr_reads_at_axes(e->u.sel.b, buf, c);
  default: return 1;
  }
}

static mfx_status check_epilogue_reduction(const mfx_stage *r) {
  const char *name = stage_name(r);
  if (r->tensor->body->kind != MFX_EXPR_REDUCE)
    return mfx_fail(MFX_ERR_SCHEDULE, "fuse_epilogue %s: the stage is not a reduction", name);
  if (r->is_output)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s: the reduction is an output, so it must be stored; fuse "
                    "only a reduction whose one reader is the consumer", name);
  if (r->epilogue)
    return mfx_fail(MFX_ERR_SCHEDULE, "fuse_epilogue %s: the reduction already has epilogue %s",
                    name, stage_name(r->epilogue));
  return MFX_OK;
}

static int same_shape(const mfx_tensor *x, const mfx_tensor *y) {
  if (x->n_axes != y->n_axes) return 0;
  for (int d = 0; d < x->n_axes; d++)
    if (x->buf->shape[d] != y->buf->shape[d]) return 0;
  return 1;
}

static mfx_status check_epilogue_consumer(mfx_schedule *s, const mfx_stage *r,
                                          const mfx_stage *c) {
  const char *rn = stage_name(r), *cn = stage_name(c);
  if (c->tensor->body->kind == MFX_EXPR_REDUCE)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer is a reduction; only an elementwise "
                    "consumer can be applied at write-back", cn, rn);
  if (c->inlined || c->attached_to || c->fused_into || c->epilogue)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer is already inlined, attached or "
                    "fused", cn, rn);
  if (c->n_relations || c->n_attached || c->local_at || stage_has_kind(c, MFX_LOOP_PARALLEL) ||
      stage_has_kind(c, MFX_LOOP_VECTORIZED))
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer has its own schedule; a fused "
                    "consumer runs in the reduction's loops and has none", cn, rn);
  if (!same_shape(r->tensor, c->tensor))
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer's shape differs from the "
                    "reduction's; it must have one element per element of %s", cn, rn, rn);
  if (!tensor_reads(s, c->tensor, r->tensor))
    return mfx_fail(MFX_ERR_SCHEDULE, "fuse_epilogue %s into %s: the consumer does not read %s",
                    cn, rn, rn);
  if (!mfx_expr_reads_at_axes(c->tensor->body, r->tensor->buf, c->tensor))
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "fuse_epilogue %s into %s: the consumer reads %s at another index than its "
                    "own element (only C[i...] = f(R[i...], ...) can be fused)", cn, rn, rn);
  return MFX_OK;
}

mfx_status mfx_sched_fuse_epilogue(mfx_schedule *s, mfx_stage *reduction, mfx_stage *consumer) {
  if (!reduction || !consumer) return mfx_fail(MFX_ERR_SCHEDULE, "fuse_epilogue: no stage");
  if (reduction == consumer)
    return mfx_fail(MFX_ERR_SCHEDULE, "fuse_epilogue %s: a stage cannot be its own epilogue",
                    stage_name(reduction));
  mfx_status rc = check_epilogue_reduction(reduction);
  if (rc == MFX_OK) rc = check_epilogue_consumer(s, reduction, consumer);
  if (rc != MFX_OK) return rc;
  reduction->epilogue = consumer;
  consumer->fused_into = reduction;
  return MFX_OK;
}

mfx_status mfx_sched_set_nest(mfx_schedule *s, mfx_stage *st, struct mfx_stmt *nest) {
  (void)s;
  if (!st || !nest) return mfx_fail(MFX_ERR_SCHEDULE, "set_nest: no stage or no loop nest");
  if (st->n_relations || st->local_at || st->n_attached || st->inlined || st->attached_to ||
      st->epilogue || st->fused_into)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "set_nest %s: the stage is already scheduled (loops, caches, inlining or "
                    "fusion); a stage with a template-built nest takes no other primitive",
                    stage_name(st));
  st->nest = nest;
  return MFX_OK;
}
