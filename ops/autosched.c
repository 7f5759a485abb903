/* The auto-scheduler's rules applied (include/mfx/autosched.h): from the
 * analysis of compiler/autosched.c, a knob space per kernel and, for one
 * config, the schedule, made of the primitives the hand templates use
 * (ops/template.c on the CPU, ops/gpu_template.c on GPUs). Packing rewrites
 * the tensor expressions first: an operand read across its rows along the
 * vector axis becomes a new compute in the layout the vector wants, and the
 * loads of it are redirected there. */
#include <string.h>

#include "mfx/autosched.h"
#include "ops_internal.h"

/* ---- the knobs ------------------------------------------------------------------- */

static const mfx_knob as_cpu_tile[] = {
  {"tile_x", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},
  {"tile_y", "vector columns of the register tile", 16, 4, {8, 16, 32, 64}},
  {"tile_k", "split of the reduction (0: none)", 0, 4, {0, 16, 64, 256}},
  {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},
  {"local", "accumulate the tile in a local buffer (cache_write)", 1, 2, {0, 1}},
  {"cols_outer", "column tiles outside row tiles", 1, 2, {0, 1}},
};
static const mfx_knob as_cpu_vec = {"vec", "vectorize the tile's columns", 1, 2, {0, 1}};
static const mfx_knob as_cpu_pack = {
    "pack", "operands read across rows: 0 as given, 1 transposed, 2 panels of tile_y", 2, 3,
    {0, 1, 2}};
static const mfx_knob as_fuse = {"fuse", "elementwise consumer as the reduction's epilogue", 1,
                                 2, {0, 1}};
static const mfx_knob as_inline = {
    "inline", "elementwise producers a tiled stage reuses: 0 computed once (own stage), 1 inlined",
    0, 2, {0, 1}};
static const mfx_knob as_cpu_parallel = {"parallel", "outer loops on the thread pool", 1, 2,
                                         {0, 1}};
static const mfx_knob as_cpu_ew = {"ew_vec", "vector width of elementwise stages (0: none)", 16,
                                   4, {0, 8, 16, 32}};

static const mfx_knob as_gpu_tile[] = {
  {"block_x", "rows per thread block", 64, 4, {16, 32, 64, 128}},
  {"block_y", "columns per thread block", 64, 4, {16, 32, 64, 128}},
  {"thread_x", "rows per thread (register tile)", 4, 4, {1, 2, 4, 8}},
  {"thread_y", "columns per thread (register tile)", 4, 4, {1, 2, 4, 8}},
  {"block_k", "reduction step staged per block", 16, 4, {4, 8, 16, 32}},
  {"shared", "stage the operands of a step in shared memory", 1, 2, {0, 1}},
  {"unroll", "unroll the register tile", 1, 2, {0, 1}},
};
static const mfx_knob as_gpu_pack = {"pack", "operands read across rows transposed first", 1, 2,
                                     {0, 1}};
static const mfx_knob as_gpu_threads = {"threads", "threads per block of elementwise stages",
                                        256, 4, {64, 128, 256, 512}};

static int as_any(const mfx_autosched_plan *p, int (*pred)(const mfx_autosched_stage *)) {
  for (int i = 0; i < p->n_stages; i++)
    if (pred(&p->stages[i])) return 1;
  return 0;
}
static int as_is_tiled(const mfx_autosched_stage *s) { return s->tiled; }
static int as_is_tiled_vector(const mfx_autosched_stage *s) {
  return s->tiled && (s->rules >> MFX_RULE_VECTORIZE & 1u);
}
static int as_is_epilogue(const mfx_autosched_stage *s) { return s->epilogue_of >= 0; }
static int as_is_plain(const mfx_autosched_stage *s) {
  return !s->tiled && !s->inlined && s->epilogue_of < 0 && !s->packed;
}
static int as_is_reused(const mfx_autosched_stage *s) { return s->reused; }
static int as_is_plain_vector(const mfx_autosched_stage *s) {
  return (as_is_plain(s) || s->reused) && !s->is_reduction && (s->rules >> MFX_RULE_VECTORIZE & 1u);
}

static void as_put(mfx_knob *knobs, int *n, const mfx_knob *k) { knobs[(*n)++] = *k; }

/* The largest extent of a tiled stage's rows (what 0), vector columns (1)
 * or reduction (2), over the plan's tiled stages. */
static int64_t as_tiled_extent(const mfx_autosched_plan *p, int what) {
  int64_t most = 0;
  for (int i = 0; i < p->n_stages; i++) {
    const mfx_autosched_stage *st = &p->stages[i];
    if (!st->tiled) continue;
    int64_t e = what == 0   ? st->tensor->axes[st->row_axis]->extent
                : what == 1 ? st->tensor->axes[st->vec_axis]->extent
                            : st->tensor->body->u.red.axes[0]->extent;
    if (e > most) most = e;
  }
  return most;
}

/* Drop the choices a kernel's extents make pointless: tiles past the
 * extent (bar the smallest, which always stays), reduction splits that do
 * not split; the default moves to the largest choice left when it went. */
static void as_fit_knob(mfx_knob *k, int64_t extent, int split) {
  int n = 0, has_def = 0;
  for (int c = 0; c < k->n_choices; c++) {
    int64_t v = k->choices[c];
    int keep = split ? (v == 0 || v < extent) : (c == 0 || v <= extent);
    if (!keep) continue;
    k->choices[n++] = v;
    has_def |= v == k->def;
  }
  k->n_choices = n;
  if (!has_def) k->def = k->choices[split ? 0 : n - 1];
}

static void as_fit_tiles(const mfx_autosched_plan *p, mfx_knob *knobs, int n) {
  for (int i = 0; i < n; i++) {
    if (strcmp(knobs[i].name, "tile_x") == 0) as_fit_knob(&knobs[i], as_tiled_extent(p, 0), 0);
    if (strcmp(knobs[i].name, "tile_y") == 0) as_fit_knob(&knobs[i], 2 * as_tiled_extent(p, 1), 0);
    if (strcmp(knobs[i].name, "tile_k") == 0) as_fit_knob(&knobs[i], as_tiled_extent(p, 2), 1);
  }
}

void mfx_autosched_knobs(const mfx_autosched_plan *p, int gpu, mfx_knob *knobs, int *n) {
  *n = 0;
  int tiled = as_any(p, as_is_tiled);
  if (gpu) {
    for (size_t i = 0; tiled && i < sizeof as_gpu_tile / sizeof *as_gpu_tile; i++)
      as_put(knobs, n, &as_gpu_tile[i]);
    if (p->n_packs > 0) as_put(knobs, n, &as_gpu_pack);
    if (as_any(p, as_is_epilogue)) as_put(knobs, n, &as_fuse);
    if (as_any(p, as_is_reused)) as_put(knobs, n, &as_inline);
    as_put(knobs, n, &as_gpu_threads);
    return;
  }
  for (size_t i = 0; tiled && i < sizeof as_cpu_tile / sizeof *as_cpu_tile; i++)
    as_put(knobs, n, &as_cpu_tile[i]);
  if (as_any(p, as_is_tiled_vector)) as_put(knobs, n, &as_cpu_vec);
  if (p->n_packs > 0) as_put(knobs, n, &as_cpu_pack);
  if (as_any(p, as_is_epilogue)) as_put(knobs, n, &as_fuse);
  if (as_any(p, as_is_reused)) as_put(knobs, n, &as_inline);
  as_put(knobs, n, &as_cpu_parallel);
  if (as_any(p, as_is_plain_vector)) as_put(knobs, n, &as_cpu_ew);
  as_fit_tiles(p, knobs, *n);
}

/* A knob's value, or its default when the config lacks it. */
static int64_t as_knob(const mfx_config *cfg, const char *name, int64_t def) {
  int64_t v = cfg != NULL ? mfx_config_get(cfg, name) : -1;
  return v < 0 ? def : v;
}

/* ---- packing: the tensor expressions rewritten ---------------------------------------- */

/* T(a, b): T's value at (a, b), a load for a placeholder, the body for a compute. */
static mfx_expr *as_value_at(mfx_arena *a, mfx_tensor *t, mfx_expr *i, mfx_expr *j) {
  if (i == NULL || j == NULL) return NULL;
  if (t->is_placeholder) return mfx_tmpl_load2(a, t, i, j);
  int n = mfx_arena_var_count(a);
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)(n > 0 ? n : 1));
  if (repl == NULL) return NULL;
  repl[t->axes[0]->id] = i;
  repl[t->axes[1]->id] = j;
  return mfx_expr_substitute(a, t->body, repl);
}

typedef struct {
  mfx_ir_mutator base;
  const mfx_buffer *from;
  mfx_tensor *to;
  int64_t panel; /* 0: transposed to[e1, e0]; else to[e0 / panel, e1, e0 % panel] */
} as_redirect;

static mfx_expr *as_redirect_load(mfx_ir_mutator *m, mfx_expr *e) {
  as_redirect *r = (as_redirect *)m;
  e = mfx_ir_mutate_expr_children(m, e);
  if (e == NULL || e->kind != MFX_EXPR_LOAD || e->u.load.buf != r->from) return e;
  mfx_expr *e0 = e->u.load.idx[0], *e1 = e->u.load.idx[1];
  if (r->panel == 0) return mfx_tmpl_load2(m->arena, r->to, e1, e0);
  mfx_expr *p = mfx_i64(m->arena, r->panel);
  mfx_expr *idx[3] = {mfx_binary(m->arena, MFX_DIV, e0, p), e1,
                      mfx_binary(m->arena, MFX_MOD, e0, p)};
  if (idx[0] == NULL || idx[2] == NULL) return NULL;
  return mfx_tensor_load(m->arena, r->to, 3, idx);
}

/* Whether every load of `buf` in the tiled stages sits directly under a
 * cast to one type (i32(S[n, k])): then the pack holds the converted values
 * and the inner loop converts nothing (the cast left there is to its own
 * type). */
typedef struct {
  mfx_ir_visitor base;
  const mfx_buffer *buf;
  int plain, cast;
  mfx_dtype type;
} as_cast_walk;

static void as_cast_visit(mfx_ir_visitor *v, const mfx_expr *e) {
  as_cast_walk *w = (as_cast_walk *)v;
  if (e->kind == MFX_EXPR_CAST && e->u.cast.a->kind == MFX_EXPR_LOAD &&
      e->u.cast.a->u.load.buf == w->buf) {
    if (w->cast > 0 && e->type != w->type) w->plain++;
    w->type = e->type;
    w->cast++;
    for (int i = 0; i < e->u.cast.a->u.load.n; i++) mfx_ir_visit_expr(v, e->u.cast.a->u.load.idx[i]);
    return;
  }
  if (e->kind == MFX_EXPR_LOAD && e->u.load.buf == w->buf) w->plain++;
  mfx_ir_visit_expr_children(v, e);
}

static mfx_dtype as_pack_type(const mfx_autosched_plan *p, const mfx_tensor *t) {
  as_cast_walk w = {{as_cast_visit, NULL, 0}, t->buf, 0, 0, t->buf->dtype};
  for (int i = 0; i < p->n_stages; i++)
    if (p->stages[i].tiled) mfx_ir_visit_expr(&w.base, p->stages[i].tensor->body);
  return w.plain == 0 && w.cast > 0 ? w.type : t->buf->dtype;
}

/* T's value at (i, j) converted to `type` when it differs from T's. */
static mfx_expr *as_packed_value(mfx_arena *a, mfx_tensor *t, mfx_dtype type, mfx_expr *i,
                                 mfx_expr *j) {
  mfx_expr *v = as_value_at(a, t, i, j);
  return v != NULL && type != t->buf->dtype ? mfx_cast(a, type, v) : v;
}

/* The packed layout of T[N, K]: TT[K, N] (panel 0) or TP[ceil(N/panel), K,
 * panel] with rows past N repeating the last (never stored: the consumer's
 * tail is guarded); values of `type` (as_pack_type). */
static mfx_status as_pack_tensor(mfx_arena *a, mfx_tensor *t, mfx_dtype type, int64_t panel,
                                 mfx_tensor **out) {
  int64_t N = t->buf->shape[0], K = t->buf->shape[1];
  const char *name = mfx_arena_printf(a, "%s_pack", t->buf->name);
  if (panel == 0) {
    mfx_tensor *p = mfx_compute_begin(a, name, type, 2, (int64_t[]){K, N},
                                      (const char *[]){"pk", "pn"});
    if (p == NULL) return mfx_fail(MFX_ERR_INVALID, "auto-scheduler: packing %s", t->buf->name);
    MFX_TRY(mfx_tmpl_set_body(a, p, as_packed_value(a, t, type, mfx_tmpl_axis(a, p, 1),
                                                    mfx_tmpl_axis(a, p, 0))));
    *out = p;
    return MFX_OK;
  }
  int64_t shape[3] = {(N + panel - 1) / panel, K, panel};
  mfx_tensor *p = mfx_compute_begin(a, name, type, 3, shape,
                                    (const char *[]){"po", "pk", "pi"});
  if (p == NULL) return mfx_fail(MFX_ERR_INVALID, "auto-scheduler: packing %s", t->buf->name);
  mfx_expr *row = mfx_add(a, mfx_mul(a, mfx_tmpl_axis(a, p, 0), mfx_i64(a, panel)),
                          mfx_tmpl_axis(a, p, 2));
  if (N % panel != 0) row = mfx_binary(a, MFX_MIN, row, mfx_i64(a, N - 1));
  MFX_TRY(mfx_tmpl_set_body(a, p, as_packed_value(a, t, type, row, mfx_tmpl_axis(a, p, 1))));
  *out = p;
  return MFX_OK;
}

/* Pack every operand of the plan and redirect the tiled stages' loads. */
static mfx_status as_apply_packs(mfx_arena *a, const mfx_autosched_plan *p, int64_t panel,
                                 mfx_tensor **packed) {
  for (int k = 0; k < p->n_packs; k++) {
    MFX_TRY(as_pack_tensor(a, p->packs[k], as_pack_type(p, p->packs[k]), panel, &packed[k]));
    for (int i = 0; i < p->n_stages; i++) {
      const mfx_autosched_stage *st = &p->stages[i];
      if (!st->tiled) continue;
      as_redirect r = {{a, as_redirect_load, NULL}, p->packs[k]->buf, packed[k], panel};
      mfx_expr *body = mfx_ir_mutate_expr(&r.base, st->tensor->body);
      if (body != st->tensor->body) MFX_TRY(mfx_tmpl_set_body(a, st->tensor, body));
    }
  }
  return MFX_OK;
}

/* ---- the CPU schedule --------------------------------------------------------------------- */

typedef struct {
  mfx_schedule *s;
  const mfx_autosched_plan *plan;
  const mfx_config *cfg;
  int gpu;
  int pack;      /* the pack knob (0 when nothing is packed) */
  int fuse;
  int inline_reused;
  int parallel;
  int64_t threads;
  mfx_tensor *packed[MFX_AUTOSCHED_MAX_OPERANDS];
} as_apply;

static const char *as_axis(const mfx_autosched_stage *st, int i) {
  return st->tensor->axes[i]->name;
}

static mfx_status as_cpu_tiled(as_apply *x, const mfx_autosched_stage *st) {
  mfx_tmpl_tiled_reduce p = {
    .n_outer = st->n_outer,
    .x = as_axis(st, st->row_axis), .y = as_axis(st, st->vec_axis),
    .r = st->tensor->body->u.red.axes[0]->name,
    .fx = as_knob(x->cfg, "tile_x", 4), .fy = as_knob(x->cfg, "tile_y", 16),
    .fr = as_knob(x->cfg, "tile_k", 0),
    .vec = (int)as_knob(x->cfg, "vec", 0) && (st->rules >> MFX_RULE_VECTORIZE & 1u),
    .unroll = (int)as_knob(x->cfg, "unroll", 1),
    .parallel = x->parallel, .local = (int)as_knob(x->cfg, "local", 1),
    .cols_outer = (int)as_knob(x->cfg, "cols_outer", 1),
  };
  for (int i = 0; i < st->n_outer; i++) p.outer[i] = as_axis(st, st->outer[i]);
  return mfx_tmpl_apply_tiled_reduce(x->s, st->tensor, &p);
}

static mfx_status as_cpu_plain(as_apply *x, const mfx_autosched_stage *st) {
  int64_t ew = as_knob(x->cfg, "ew_vec", 0);
  int vec = ew > 0 && !st->is_reduction && (st->rules >> MFX_RULE_VECTORIZE & 1u);
  return mfx_tmpl_apply_elementwise(x->s, st->tensor, vec ? ew : 8, vec, x->parallel);
}

static mfx_status as_cpu_pack_stage(as_apply *x, mfx_tensor *t) {
  if (x->pack == 1) return mfx_tmpl_apply_transpose(x->s, t, 16, x->parallel);
  return mfx_tmpl_apply_elementwise(x->s, t, 8, 0, x->parallel);
}

/* ---- the GPU schedule ------------------------------------------------------------------------- */

typedef struct {
  mfx_ir_visitor base;
  const mfx_buffer *buf;
  const mfx_var *row, *col, *red;
  int uses_row, uses_col, uses_red, loads;
} as_span_walk;

static void as_span_visit(mfx_ir_visitor *v, const mfx_expr *e) {
  as_span_walk *w = (as_span_walk *)v;
  if (e->kind == MFX_EXPR_LOAD && e->u.load.buf == w->buf) {
    w->loads++;
    for (int i = 0; i < e->u.load.n; i++) {
      w->uses_row |= mfx_expr_uses_var(e->u.load.idx[i], w->row);
      w->uses_col |= mfx_expr_uses_var(e->u.load.idx[i], w->col);
      w->uses_red |= mfx_expr_uses_var(e->u.load.idx[i], w->red);
    }
  }
  mfx_ir_visit_expr_children(v, e);
}

/* The tensors the block stages at each reduction step: placeholders and
 * packed operands whose tile spans the block's rows or its columns. */
static void as_gpu_staged(const as_apply *x, const mfx_autosched_stage *st,
                          mfx_gpu_tiled_reduce *p) {
  mfx_tensor *t = st->tensor;
  for (int i = 0; i < t->n_inputs && p->n_staged < MFX_MAX_ATTACHED; i++) {
    mfx_tensor *in = t->inputs[i];
    int own = in->is_placeholder;
    for (int k = 0; k < x->plan->n_packs; k++) own |= in == x->packed[k];
    if (!own) continue;
    as_span_walk w = {{as_span_visit, NULL, 0}, in->buf, t->axes[st->row_axis],
                      t->axes[st->vec_axis], t->body->u.red.axes[0], 0, 0, 0, 0};
    mfx_ir_visit_expr(&w.base, t->body);
    if (!w.uses_red || w.uses_row == w.uses_col) continue;
    p->staged[p->n_staged].tensor = in;
    p->staged[p->n_staged++].spans = w.uses_row ? 'x' : 'y';
  }
}

static mfx_status as_gpu_tiled(as_apply *x, const mfx_autosched_stage *st) {
  mfx_gpu_tiled_reduce p = {
    .what = st->tensor->buf->name, .n_outer = st->n_outer,
    .x = as_axis(st, st->row_axis), .y = as_axis(st, st->vec_axis),
    .r = st->tensor->body->u.red.axes[0]->name,
    .bx = as_knob(x->cfg, "block_x", 64), .by = as_knob(x->cfg, "block_y", 64),
    .tx = as_knob(x->cfg, "thread_x", 4), .ty = as_knob(x->cfg, "thread_y", 4),
    .br = as_knob(x->cfg, "block_k", 16),
    .shared = (int)as_knob(x->cfg, "shared", 1), .unroll = (int)as_knob(x->cfg, "unroll", 1),
  };
  if (st->n_outer > 2)
    return mfx_fail(MFX_ERR_SCHEDULE, "auto-scheduler: %s has %d batch axes; the GPU tiling "
                    "takes at most 2", st->tensor->buf->name, st->n_outer);
  for (int i = 0; i < st->n_outer; i++) p.outer[i] = as_axis(st, st->outer[i]);
  as_gpu_staged(x, st, &p);
  return mfx_gpu_apply_tiled_reduce(x->s, st->tensor, &p);
}

/* ---- applying the plan ------------------------------------------------------------------------- */

static mfx_status as_stage_of(as_apply *x, const mfx_tensor *t, mfx_stage **out) {
  *out = mfx_sched_stage(x->s, t);
  return MFX_OK; /* NULL: not in the schedule (a producer packed into its layout) */
}

static mfx_status as_apply_inline(as_apply *x) {
  for (int i = 0; i < x->plan->n_stages; i++) {
    const mfx_autosched_stage *st = &x->plan->stages[i];
    if (!st->inlined && !(st->packed && x->pack == 0)) continue;
    if (st->reused && !x->inline_reused) continue; /* its own stage: as_apply_stage */
    mfx_stage *stage;
    MFX_TRY(as_stage_of(x, st->tensor, &stage));
    if (stage != NULL) MFX_TRY(mfx_sched_compute_inline(x->s, stage));
  }
  return MFX_OK;
}

static mfx_status as_apply_epilogue(as_apply *x, const mfx_autosched_stage *st) {
  if (!x->fuse) {
    if (x->gpu) return mfx_gpu_apply_elementwise(x->s, st->tensor, x->threads);
    return as_cpu_plain(x, st);
  }
  if (!x->gpu && !as_knob(x->cfg, "local", 1))
    return mfx_fail(MFX_ERR_SCHEDULE, "auto-scheduler: fuse=1 needs local=1 (the epilogue of "
                    "%s is applied at its local tile's write-back)", st->tensor->buf->name);
  mfx_stage *r, *c;
  MFX_TRY(mfx_tmpl_stage(x->s, x->plan->stages[st->epilogue_of].tensor, &r));
  MFX_TRY(mfx_tmpl_stage(x->s, st->tensor, &c));
  return mfx_sched_fuse_epilogue(x->s, r, c);
}

static mfx_status as_apply_stage(as_apply *x, const mfx_autosched_stage *st) {
  if ((st->inlined && !(st->reused && !x->inline_reused)) || st->packed) return MFX_OK;
  if (st->epilogue_of >= 0) return as_apply_epilogue(x, st);
  if (st->tiled) return x->gpu ? as_gpu_tiled(x, st) : as_cpu_tiled(x, st);
  if (x->gpu) return mfx_gpu_apply_elementwise(x->s, st->tensor, x->threads);
  return as_cpu_plain(x, st);
}

static mfx_status as_apply_all(as_apply *x) {
  MFX_TRY(as_apply_inline(x));
  for (int k = 0; x->pack != 0 && k < x->plan->n_packs; k++) {
    if (x->gpu) MFX_TRY(mfx_gpu_apply_elementwise(x->s, x->packed[k], x->threads));
    else MFX_TRY(as_cpu_pack_stage(x, x->packed[k]));
  }
  /* Reductions before their epilogues (stages are in producer order). */
  for (int i = 0; i < x->plan->n_stages; i++) MFX_TRY(as_apply_stage(x, &x->plan->stages[i]));
  return MFX_OK;
}

mfx_status mfx_autosched_build(mfx_arena *a, const char *text, const char *file,
                               const char *target, const mfx_config *cfg, mfx_schedule **out,
                               mfx_autosched_plan *plan) {
  mfx_schedule *parsed = NULL;
  mfx_autosched_plan local;
  mfx_autosched_plan *p = plan != NULL ? plan : &local;
  MFX_TRY(mfx_te_parse(a, text, file, &parsed));
  MFX_TRY(mfx_autosched_analyze(parsed, p));
  as_apply x = {.plan = p, .cfg = cfg, .gpu = mfx_target_names_gpu(target) ||
                (target != NULL && strcmp(target, "emulate") == 0)};
  x.pack = p->n_packs > 0 ? (int)as_knob(cfg, "pack", x.gpu ? 1 : 2) : 0;
  x.fuse = (int)as_knob(cfg, "fuse", 1);
  x.inline_reused = (int)as_knob(cfg, "inline", 0);
  x.parallel = (int)as_knob(cfg, "parallel", 1);
  x.threads = as_knob(cfg, "threads", 256);
  if (x.pack != 0)
    MFX_TRY(as_apply_packs(a, p, x.pack == 2 ? as_knob(cfg, "tile_y", 16) : 0, x.packed));
  MFX_TRY(mfx_sched_create(a, parsed->n_inputs, parsed->inputs, parsed->n_outputs,
                              parsed->outputs, &x.s));
  mfx_status st = as_apply_all(&x);
  if (st != MFX_OK) return mfx_fail_context(st, "auto-scheduling %s", file);
  *out = x.s;
  return MFX_OK;
}
