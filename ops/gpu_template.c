/* GPU schedule templates the ops share: the block/thread-tiled reduction
 * with shared-memory staging and register accumulators, and the
 * one-element-per-thread pass for elementwise stages. Every loop of a stage
 * scheduled here is bound to blockIdx/threadIdx or runs serially inside a
 * bound loop: no stage runs on one thread, nothing is marked parallel. */
#include "ops_internal.h"

#define MFX_GPU_SHARED_BYTES (48 * 1024)

/* ---- limits ---------------------------------------------------------------------- */

static mfx_status gpu_check_threads(const mfx_gpu_tiled_reduce *p) {
  if (p->tx < 1 || p->ty < 1 || p->bx % p->tx != 0 || p->by % p->ty != 0)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config: thread tile %lldx%lld must divide block tile %lldx%lld",
                    p->what, (long long)p->tx, (long long)p->ty, (long long)p->bx,
                    (long long)p->by);
  int64_t threads = (p->bx / p->tx) * (p->by / p->ty);
  if (threads > MFX_GPU_MAX_THREADS)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config: block tile %lldx%lld with thread tile %lldx%lld needs %lld "
                    "threads per block (at most %d); use a larger thread tile or a smaller "
                    "block tile", p->what, (long long)p->bx, (long long)p->by,
                    (long long)p->tx, (long long)p->ty, (long long)threads,
                    MFX_GPU_MAX_THREADS);
  return MFX_OK;
}

static int64_t gpu_staged_bytes(const mfx_gpu_tiled_reduce *p, const mfx_gpu_staged *st) {
  int64_t rows = st->spans == 'x' ? p->bx : p->by;
  int64_t slots = p->double_buffer ? 2 : 1;
  return slots * rows * p->br * (int64_t)mfx_dtype_size(st->tensor->buf->dtype);
}

static mfx_status gpu_check_shared(const mfx_gpu_tiled_reduce *p) {
  if (p->double_buffer && !p->shared)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s GPU config: double_buffer=1 double-buffers the "
                    "shared tiles, so it needs shared=1 (got shared=0)", p->what);
  if (!p->shared) return MFX_OK;
  int64_t bytes = 0;
  for (int i = 0; i < p->n_staged; i++) bytes += gpu_staged_bytes(p, &p->staged[i]);
  if (bytes > MFX_GPU_SHARED_BYTES)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config: staging tiles of block %lldx%lld by reduction step %lld "
                    "needs %lld bytes of shared memory%s (at most %d = 48 KiB); use a smaller "
                    "block tile or reduction step, or turn shared staging off", p->what,
                    (long long)p->bx, (long long)p->by, (long long)p->br, (long long)bytes,
                    p->double_buffer ? " (two tiles each: double_buffer=1)" : "",
                    MFX_GPU_SHARED_BYTES);
  return MFX_OK;
}

/* ---- the tiled reduction -------------------------------------------------------------- */

typedef struct {
  mfx_itervar *outer[3];
  mfx_itervar *xo, *xt, *xr, *yo, *yt, *yr, *ro, *ri;
} mfx_gpu_loops;

/* iv -> o (extent/block), t (block/tile: a thread each), r (tile: in registers),
 * so that iv = o*block + r*(block/tile) + t (strided: neighbouring threads
 * neighbouring elements, coalesced), or with contiguous tiles
 * iv = o*block + t*tile + r (a thread's elements side by side: its shared
 * loads merge into ld.shared.v2/v4). */
static mfx_status gpu_split3(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, int64_t block,
                                 int64_t tile, int contiguous, mfx_itervar **o,
                                 mfx_itervar **t, mfx_itervar **r) {
  mfx_itervar *in;
  MFX_TRY(mfx_sched_split(s, st, iv, block, MFX_TAIL_GUARD, o, &in));
  if (contiguous) return mfx_sched_split(s, st, in, tile, MFX_TAIL_GUARD, t, r);
  return mfx_sched_split(s, st, in, block / tile, MFX_TAIL_GUARD, r, t);
}

static mfx_status gpu_split_all(mfx_schedule *s, mfx_stage *st,
                                    const mfx_gpu_tiled_reduce *p, mfx_gpu_loops *l) {
  mfx_itervar *x, *y, *r;
  for (int i = 0; i < p->n_outer; i++) MFX_TRY(mfx_tmpl_itervar(st, p->outer[i], &l->outer[i]));
  MFX_TRY(mfx_tmpl_itervar(st, p->x, &x));
  MFX_TRY(mfx_tmpl_itervar(st, p->y, &y));
  MFX_TRY(mfx_tmpl_itervar(st, p->r, &r));
  MFX_TRY(gpu_split3(s, st, x, p->bx, p->tx, p->contiguous, &l->xo, &l->xt, &l->xr));
  MFX_TRY(gpu_split3(s, st, y, p->by, p->ty, p->contiguous, &l->yo, &l->yt, &l->yr));
  return mfx_sched_split(s, st, r, p->br, MFX_TAIL_GUARD, &l->ro, &l->ri);
}

/* Order the loops and bind the block axes: with no outer axis the row tiles
 * take blockIdx.y and the column tiles blockIdx.x; with outer axes both
 * tile loops are fused into blockIdx.x (every tile its own block), the last
 * outer axis takes blockIdx.y and the others, fused, blockIdx.z. The block
 * index is split back by / and % once per block; the staged regions take it
 * as an opaque base (lower_region.c). */
static mfx_status gpu_bind_blocks(mfx_schedule *s, mfx_stage *st,
                                      const mfx_gpu_tiled_reduce *p, const mfx_gpu_loops *l) {
  mfx_itervar *order[12];
  int n = 0;
  for (int i = 0; i < p->n_outer; i++) order[n++] = l->outer[i];
  order[n++] = l->xo;
  order[n++] = l->yo;
  mfx_itervar *inner[6] = {l->xt, l->yt, l->ro, l->ri, l->xr, l->yr};
  for (int i = 0; i < 6; i++) order[n++] = inner[i];
  MFX_TRY(mfx_sched_reorder(s, st, n, order));
  if (p->n_outer == 0) {
    MFX_TRY(mfx_sched_bind(s, st, l->xo, MFX_LOOP_BLOCK_Y));
    return mfx_sched_bind(s, st, l->yo, MFX_LOOP_BLOCK_X);
  }
  mfx_itervar *tiles, *z = NULL;
  MFX_TRY(mfx_sched_fuse(s, st, l->xo, l->yo, &tiles));
  MFX_TRY(mfx_sched_bind(s, st, tiles, MFX_LOOP_BLOCK_X));
  MFX_TRY(mfx_sched_bind(s, st, l->outer[p->n_outer - 1], MFX_LOOP_BLOCK_Y));
  if (p->n_outer == 1) return MFX_OK;
  z = l->outer[0];
  for (int i = 1; i < p->n_outer - 1; i++) MFX_TRY(mfx_sched_fuse(s, st, z, l->outer[i], &z));
  return mfx_sched_bind(s, st, z, MFX_LOOP_BLOCK_Z);
}

/* A staged tensor at each reduction step: copied to shared memory, or for a
 * computed one (an elementwise prologue) evaluated into it, or inlined into
 * the loads when shared staging is off. */
static mfx_status gpu_stage_tile_at(mfx_schedule *s, mfx_stage *st,
                                        const mfx_gpu_tiled_reduce *p, int i,
                                        mfx_itervar *step) {
  const mfx_gpu_staged *g = &p->staged[i];
  if (!(p->computed >> i & 1u))
    return p->shared ? mfx_sched_cache_read(s, st, g->tensor, MFX_SCOPE_SHARED, step) : MFX_OK;
  mfx_stage *producer;
  MFX_TRY(mfx_tmpl_stage(s, g->tensor, &producer));
  if (p->shared) return mfx_sched_compute_at(s, producer, st, step, MFX_SCOPE_SHARED);
  return mfx_sched_compute_inline(s, producer);
}

/* ... and with double_buffer, the attachment it made double-buffered (a
 * copy's fill then is cp.async; a computed one's plain stores). */
static mfx_status gpu_stage_tile(mfx_schedule *s, mfx_stage *st,
                                     const mfx_gpu_tiled_reduce *p, int i, mfx_itervar *step) {
  int before = st->n_attached;
  MFX_TRY(gpu_stage_tile_at(s, st, p, i, step));
  if (p->double_buffer && p->shared && st->n_attached == before + 1)
    st->attached[before].double_buffer = 1;
  return MFX_OK;
}

/* ri -> rio, rii (unroll_k terms), rii unrolled and innermost: each
 * accumulator takes unroll_k consecutive terms in a row (a three-input add
 * can take two at once). */
static mfx_status gpu_unroll_k(mfx_schedule *s, mfx_stage *st, const mfx_gpu_tiled_reduce *p,
                               const mfx_gpu_loops *l) {
  if (p->br % p->unroll_k != 0)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s GPU config: unroll_k %lld must divide the reduction "
                    "step %lld", p->what, (long long)p->unroll_k, (long long)p->br);
  mfx_itervar *rio, *rii;
  MFX_TRY(mfx_sched_split(s, st, l->ri, p->unroll_k, MFX_TAIL_GUARD, &rio, &rii));
  MFX_TRY(mfx_sched_reorder(s, st, 4, (mfx_itervar *[]){rio, l->xr, l->yr, rii}));
  return mfx_sched_unroll(s, st, rii);
}

static mfx_status gpu_tiled_reduce_stage(mfx_schedule *s, mfx_stage *st,
                                             const mfx_gpu_tiled_reduce *p) {
  mfx_gpu_loops l = {0};
  MFX_TRY(gpu_split_all(s, st, p, &l));
  MFX_TRY(gpu_bind_blocks(s, st, p, &l));
  MFX_TRY(mfx_sched_bind(s, st, l.xt, MFX_LOOP_THREAD_Y));
  MFX_TRY(mfx_sched_bind(s, st, l.yt, MFX_LOOP_THREAD_X));
  MFX_TRY(mfx_sched_cache_write_local(s, st, l.yt));
  if (p->unguarded == 2) MFX_TRY(mfx_sched_unguarded_reduce(s, st));
  else if (p->unguarded) MFX_TRY(mfx_sched_unguarded_update(s, st));
  for (int i = 0; i < p->n_staged; i++) MFX_TRY(gpu_stage_tile(s, st, p, i, l.ro));
  if (p->unroll) {
    MFX_TRY(mfx_sched_unroll(s, st, l.xr));
    MFX_TRY(mfx_sched_unroll(s, st, l.yr));
  }
  if (p->unroll_k > 1) MFX_TRY(gpu_unroll_k(s, st, p, &l));
  return MFX_OK;
}

mfx_status mfx_gpu_apply_tiled_reduce(mfx_schedule *s, mfx_tensor *t,
                                      const mfx_gpu_tiled_reduce *p) {
  if (p->n_outer < 0 || p->n_outer > 3 || p->n_staged > MFX_MAX_ATTACHED)
    return mfx_fail(MFX_ERR_INVALID, "%s GPU template: %d outer axes, %d staged tensors",
                    p->what, p->n_outer, p->n_staged);
  MFX_TRY(gpu_check_threads(p));
  MFX_TRY(gpu_check_shared(p));
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = gpu_tiled_reduce_stage(s, st, p);
  if (status != MFX_OK)
    return mfx_fail_context(status,
                            "GPU tiled reduction of %s (block %s %lld x %s %lld, thread tile "
                            "%lld x %lld, %s by %lld)", t->buf->name, p->x, (long long)p->bx,
                            p->y, (long long)p->by, (long long)p->tx, (long long)p->ty, p->r,
                            (long long)p->br);
  return MFX_OK;
}

/* ---- elementwise stages ------------------------------------------------------------------ */

static mfx_status gpu_elementwise_stage(mfx_schedule *s, mfx_stage *st, int64_t threads) {
  int n_spatial = st->tensor->n_axes;
  mfx_itervar *f = st->root[0], *blocks, *lanes;
  for (int i = 1; i < n_spatial; i++) MFX_TRY(mfx_sched_fuse(s, st, f, st->root[i], &f));
  if (f->extent < threads) threads = f->extent;
  MFX_TRY(mfx_sched_split(s, st, f, threads, MFX_TAIL_GUARD, &blocks, &lanes));
  MFX_TRY(mfx_sched_bind(s, st, blocks, MFX_LOOP_BLOCK_X));
  MFX_TRY(mfx_sched_bind(s, st, lanes, MFX_LOOP_THREAD_X));
  if (st->n_root > n_spatial) MFX_TRY(mfx_sched_cache_write_local(s, st, lanes));
  return MFX_OK;
}

mfx_status mfx_gpu_apply_elementwise(mfx_schedule *s, mfx_tensor *t, int64_t threads) {
  if (threads < 1 || threads > MFX_GPU_MAX_THREADS)
    return mfx_fail(MFX_ERR_SCHEDULE, "GPU elementwise schedule of %s: %lld threads per block "
                    "(expected 1..%d)", t->buf->name, (long long)threads, MFX_GPU_MAX_THREADS);
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = gpu_elementwise_stage(s, st, threads);
  if (status != MFX_OK)
    return mfx_fail_context(status, "GPU elementwise schedule of %s (%lld threads per block)",
                            t->buf->name, (long long)threads);
  return MFX_OK;
}

/* ---- split reductions (split-K) ------------------------------------------------------------ */

/* Pieces for a reduction of K over `tiles` output blocks: the knob's value,
 * or for 0 (auto) enough pieces for two waves of blocks on a 132-SM GPU,
 * each piece whole staging steps of at least min_chunk terms. */
int64_t mfx_gpu_split_pieces(int64_t knob, int64_t tiles, int64_t K, int64_t step,
                             int64_t min_chunk) {
  if (knob >= 1) return knob;
  int64_t target = 2 * MFX_GPU_SMS;
  if (tiles >= target || step < 1) return 1;
  int64_t needed = (target + tiles - 1) / tiles;
  int64_t chunk = K / needed / step * step;
  if (chunk < min_chunk) chunk = (min_chunk + step - 1) / step * step;
  if (chunk < step) chunk = step;
  int64_t pieces = (K + chunk - 1) / chunk;
  return pieces > MFX_GPU_MAX_SPLIT ? MFX_GPU_MAX_SPLIT : pieces;
}

typedef struct {
  mfx_ir_mutator base;
  const mfx_var *k;
  int64_t K, padded_extent;
  mfx_gpu_split *out;
  mfx_status status;
} split_padder;

/* TP = T with dimension d padded to the pieces' whole extent:
 * TP[.., i, ..] = i < K ? T[.., i, ..] : 0 (the index clamped, so no load
 * leaves T; when staged, the select runs where the tile is filled). */
static mfx_status split_padded(split_padder *sp, mfx_tensor *T, int d, mfx_tensor **out) {
  mfx_arena *a = sp->base.arena;
  mfx_gpu_split *g = sp->out;
  for (int i = 0; i < g->n_padded; i++)
    if (g->source[i] == T) {
      *out = g->padded[i];
      return MFX_OK;
    }
  if (g->n_padded == MFX_MAX_ATTACHED)
    return mfx_fail(MFX_ERR_SCHEDULE, "split reduction: more than %d tensors read along %s",
                    MFX_MAX_ATTACHED, sp->k->name);
  int nd = T->buf->ndim;
  int64_t shape[MFX_MAX_DIMS];
  const char *names[MFX_MAX_DIMS];
  for (int i = 0; i < nd; i++) {
    shape[i] = i == d ? sp->padded_extent : T->buf->shape[i];
    names[i] = mfx_arena_printf(a, "p%d", i);
  }
  mfx_tensor *P = mfx_compute_begin(a, mfx_arena_printf(a, "%s_pad", T->buf->name),
                                    T->buf->dtype, nd, shape, names);
  if (P == NULL) return mfx_fail_context(MFX_ERR_INVALID, "split reduction: padded %s",
                                         T->buf->name);
  mfx_expr *idx[MFX_MAX_DIMS], *axis = mfx_var_ref(a, P->axes[d]);
  for (int i = 0; i < nd; i++) idx[i] = mfx_var_ref(a, P->axes[i]);
  idx[d] = mfx_binary(a, MFX_MIN, axis, mfx_i64(a, sp->K - 1));
  mfx_expr *body = mfx_select(a, mfx_binary(a, MFX_LT, axis, mfx_i64(a, sp->K)),
                              mfx_tensor_load(a, T, nd, idx),
                              mfx_reduce_identity(a, MFX_REDUCE_SUM, T->buf->dtype));
  MFX_TRY(mfx_tmpl_set_body(a, P, body));
  g->source[g->n_padded] = T;
  g->padded[g->n_padded++] = P;
  *out = P;
  return MFX_OK;
}

/* Loads indexed by the reduction variable itself read its padded tensor. */
static mfx_expr *split_pad_load(mfx_ir_mutator *m, mfx_expr *e) {
  split_padder *sp = (split_padder *)m;
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_LOAD || sp->status != MFX_OK) return c;
  int d = -1;
  for (int i = 0; i < c->u.load.n; i++) {
    if (!mfx_expr_uses_var(c->u.load.idx[i], sp->k)) continue;
    if (d >= 0 || c->u.load.idx[i]->kind != MFX_EXPR_VAR) {
      sp->status = mfx_fail(MFX_ERR_SCHEDULE,
                            "split reduction: %s is read at an index other than %s itself; "
                            "only plain reduction indices can be split", c->u.load.buf->name,
                            sp->k->name);
      return c;
    }
    d = i;
  }
  if (d < 0) return c;
  mfx_tensor *P = NULL;
  sp->status = split_padded(sp, c->u.load.buf->tensor, d, &P);
  return sp->status == MFX_OK ? mfx_tensor_load(m->arena, P, c->u.load.n, c->u.load.idx) : c;
}

/* R[axes] = sum_k f(k) becomes
 *   RP[axes[..at], ks, axes[at..]] = sum_{k < chunk} f(ks*chunk + k)
 *   R[axes] = sum_ks RP[.., ks, ..]
 * with tensors read along k padded with zeros when pieces*chunk > K. */
static mfx_status split_build(mfx_arena *a, mfx_tensor *R, int at, mfx_gpu_split *g) {
  const mfx_expr *red = R->body;
  const mfx_var *k = red->u.red.axes[0];
  int nd = R->n_axes;
  int64_t K = k->extent, shape[MFX_MAX_DIMS];
  const char *names[MFX_MAX_DIMS];
  for (int i = 0, j = 0; i <= nd; i++) {
    shape[i] = i == at ? g->pieces : R->buf->shape[j];
    names[i] = i == at ? "ks" : R->axes[j++]->name;
  }
  mfx_tensor *P = mfx_compute_begin(a, mfx_arena_printf(a, "%sP", R->buf->name),
                                    R->buf->dtype, nd + 1, shape, names);
  if (P == NULL) return mfx_fail_context(MFX_ERR_INVALID, "split reduction of %s", R->buf->name);
  split_padder sp = {{a, split_pad_load, NULL}, k, K, g->pieces * g->chunk, g, MFX_OK};
  mfx_expr *src = red->u.red.src;
  if (g->pieces * g->chunk != K) src = mfx_ir_mutate_expr(&sp.base, src);
  if (sp.status != MFX_OK) return sp.status;
  mfx_var *kk = mfx_var_create(a, k->name, g->chunk, 1);
  mfx_expr **repl = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  for (int i = 0, j = 0; i <= nd; i++)
    if (i != at) repl[R->axes[j++]->id] = mfx_var_ref(a, P->axes[i]);
  repl[k->id] = mfx_add(a, mfx_mul(a, mfx_var_ref(a, P->axes[at]), mfx_i64(a, g->chunk)),
                        mfx_var_ref(a, kk));
  src = mfx_expr_substitute(a, src, repl);
  MFX_TRY(mfx_tmpl_set_body(a, P, mfx_reduce(a, MFX_REDUCE_SUM, 1, &kk, src)));
  mfx_var *ks = mfx_var_create(a, "ks", g->pieces, 1);
  mfx_expr *idx[MFX_MAX_DIMS];
  for (int i = 0, j = 0; i <= nd; i++)
    idx[i] = i == at ? mfx_var_ref(a, ks) : mfx_var_ref(a, R->axes[j++]);
  g->part = P;
  return mfx_tmpl_set_body(a, R, mfx_reduce(a, MFX_REDUCE_SUM, 1, &ks,
                                            mfx_tensor_load(a, P, nd + 1, idx)));
}

mfx_status mfx_gpu_split_reduction(mfx_arena *a, mfx_tensor *R, int at, int64_t pieces,
                                   int64_t step, mfx_gpu_split *out) {
  *out = (mfx_gpu_split){.pieces = 1};
  const mfx_expr *red = R->body;
  if (red == NULL || red->kind != MFX_EXPR_REDUCE || red->u.red.op != MFX_REDUCE_SUM ||
      red->u.red.n_axes != 1 || at < 0 || at > R->n_axes || R->n_axes >= MFX_MAX_DIMS)
    return mfx_fail(MFX_ERR_SCHEDULE, "split reduction of %s: expected a sum over one axis",
                    R->buf ? R->buf->name : "?");
  if (pieces < 1 || pieces > MFX_GPU_MAX_SPLIT || step < 1)
    return mfx_fail(MFX_ERR_SCHEDULE, "split reduction of %s: %lld pieces (expected 1..%d)",
                    R->buf->name, (long long)pieces, MFX_GPU_MAX_SPLIT);
  int64_t K = red->u.red.axes[0]->extent;
  int64_t chunk = (K + pieces - 1) / pieces;
  chunk = (chunk + step - 1) / step * step; /* whole staging steps: no tail inside a piece */
  out->chunk = chunk;
  out->pieces = (K + chunk - 1) / chunk;
  if (out->pieces == 1) return MFX_OK;
  mfx_status st = split_build(a, R, at, out);
  if (st != MFX_OK) return mfx_fail_context(st, "splitting the reduction of %s in %lld pieces",
                                            R->buf->name, (long long)out->pieces);
  return MFX_OK;
}

/* The partial sums' tiled reduction (the pieces axis one more batch axis,
 * the padded tensors computed into the staged tiles) and the final sum, one
 * output element per thread. */
mfx_status mfx_gpu_apply_split(mfx_schedule *s, mfx_tensor *R, const mfx_gpu_split *g,
                               const mfx_gpu_tiled_reduce *p, int64_t threads) {
  if (g->part == NULL) return mfx_gpu_apply_tiled_reduce(s, R, p);
  mfx_gpu_tiled_reduce q = *p;
  if (q.n_outer >= 3)
    return mfx_fail(MFX_ERR_SCHEDULE, "%s GPU config: split reduction with %d batch axes "
                    "(at most 2)", p->what, q.n_outer);
  q.outer[q.n_outer++] = "ks";
  for (int i = 0; i < q.n_staged; i++)
    for (int j = 0; j < g->n_padded; j++)
      if (q.staged[i].tensor == g->source[j]) {
        q.staged[i].tensor = g->padded[j];
        q.computed |= 1u << i;
      }
  MFX_TRY(mfx_gpu_apply_tiled_reduce(s, g->part, &q));
  return mfx_gpu_apply_elementwise(s, R, threads);
}
