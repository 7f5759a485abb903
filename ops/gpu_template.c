/* GPU schedule templates the ops share: the block/thread-tiled reduction
 * with shared-memory staging and register accumulators, and the
 * one-element-per-thread pass for elementwise stages. Every loop of a stage
 * scheduled here is bound to blockIdx/threadIdx or runs serially inside a
 * bound loop: no stage runs on one thread, nothing is marked parallel. */
#include "ops_internal.h"

#define MFX_GPU_SHARED_BYTES (48 * 1024)

/* ---- limits ---------------------------------------------------------------------- */

static mfx_status mfx_gpu_check_threads(const mfx_gpu_tiled_reduce *p) {
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

static int64_t mfx_gpu_staged_bytes(const mfx_gpu_tiled_reduce *p, const mfx_gpu_staged *st) {
  int64_t rows = st->spans == 'x' ? p->bx : p->by;
  return rows * p->br * (int64_t)mfx_dtype_size(st->tensor->buf->dtype);
}

static mfx_status mfx_gpu_check_shared(const mfx_gpu_tiled_reduce *p) {
  if (!p->shared) return MFX_OK;
  int64_t bytes = 0;
  for (int i = 0; i < p->n_staged; i++) bytes += mfx_gpu_staged_bytes(p, &p->staged[i]);
  if (bytes > MFX_GPU_SHARED_BYTES)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config: staging tiles of block %lldx%lld by reduction step %lld "
                    "needs %lld bytes of shared memory (at most %d = 48 KiB); use a smaller "
                    "block tile or reduction step, or turn shared staging off", p->what,
                    (long long)p->bx, (long long)p->by, (long long)p->br, (long long)bytes,
                    MFX_GPU_SHARED_BYTES);
  return MFX_OK;
}

/* ---- the tiled reduction -------------------------------------------------------------- */

typedef struct {
  mfx_itervar *outer[3];
  mfx_itervar *xo, *xt, *xr, *yo, *yt, *yr, *ro, *ri;
} mfx_gpu_loops;

/* iv -> o (extent/block), t (block/tile: a thread each), r (tile: in registers),
 * so that iv = o*block + r*(block/tile) + t. */
static mfx_status mfx_gpu_split3(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, int64_t block,
                                 int64_t tile, mfx_itervar **o, mfx_itervar **t,
                                 mfx_itervar **r) {
  mfx_itervar *in;
  MFX_TRY(mfx_sched_split(s, st, iv, block, MFX_TAIL_GUARD, o, &in));
  return mfx_sched_split(s, st, in, block / tile, MFX_TAIL_GUARD, r, t);
}

static mfx_status mfx_gpu_split_all(mfx_schedule *s, mfx_stage *st,
                                    const mfx_gpu_tiled_reduce *p, mfx_gpu_loops *l) {
  mfx_itervar *x, *y, *r;
  for (int i = 0; i < p->n_outer; i++) MFX_TRY(mfx_tmpl_itervar(st, p->outer[i], &l->outer[i]));
  MFX_TRY(mfx_tmpl_itervar(st, p->x, &x));
  MFX_TRY(mfx_tmpl_itervar(st, p->y, &y));
  MFX_TRY(mfx_tmpl_itervar(st, p->r, &r));
  MFX_TRY(mfx_gpu_split3(s, st, x, p->bx, p->tx, &l->xo, &l->xt, &l->xr));
  MFX_TRY(mfx_gpu_split3(s, st, y, p->by, p->ty, &l->yo, &l->yt, &l->yr));
  return mfx_sched_split(s, st, r, p->br, MFX_TAIL_GUARD, &l->ro, &l->ri);
}

/* Order the loops and bind the block axes: with no outer axis the row tiles
 * take blockIdx.y and the column tiles blockIdx.x; with outer axes both
 * tile loops are fused into blockIdx.x (every tile its own block), the last
 * outer axis takes blockIdx.y and the others, fused, blockIdx.z. The block
 * index is split back by / and % once per block; the staged regions take it
 * as an opaque base (lower_region.c). */
static mfx_status mfx_gpu_bind_blocks(mfx_schedule *s, mfx_stage *st,
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
static mfx_status mfx_gpu_stage_tile(mfx_schedule *s, mfx_stage *st,
                                     const mfx_gpu_tiled_reduce *p, int i, mfx_itervar *step) {
  const mfx_gpu_staged *g = &p->staged[i];
  if (!(p->computed >> i & 1u))
    return p->shared ? mfx_sched_cache_read(s, st, g->tensor, MFX_SCOPE_SHARED, step) : MFX_OK;
  mfx_stage *producer;
  MFX_TRY(mfx_tmpl_stage(s, g->tensor, &producer));
  if (p->shared) return mfx_sched_compute_at(s, producer, st, step, MFX_SCOPE_SHARED);
  return mfx_sched_compute_inline(s, producer);
}

static mfx_status mfx_gpu_tiled_reduce_stage(mfx_schedule *s, mfx_stage *st,
                                             const mfx_gpu_tiled_reduce *p) {
  mfx_gpu_loops l = {0};
  MFX_TRY(mfx_gpu_split_all(s, st, p, &l));
  MFX_TRY(mfx_gpu_bind_blocks(s, st, p, &l));
  MFX_TRY(mfx_sched_bind(s, st, l.xt, MFX_LOOP_THREAD_Y));
  MFX_TRY(mfx_sched_bind(s, st, l.yt, MFX_LOOP_THREAD_X));
  MFX_TRY(mfx_sched_cache_write_local(s, st, l.yt));
  for (int i = 0; i < p->n_staged; i++) MFX_TRY(mfx_gpu_stage_tile(s, st, p, i, l.ro));
  if (p->unroll) {
    MFX_TRY(mfx_sched_unroll(s, st, l.xr));
    MFX_TRY(mfx_sched_unroll(s, st, l.yr));
  }
  return MFX_OK;
}

mfx_status mfx_gpu_apply_tiled_reduce(mfx_schedule *s, mfx_tensor *t,
                                      const mfx_gpu_tiled_reduce *p) {
  if (p->n_outer < 0 || p->n_outer > 3 || p->n_staged > MFX_MAX_ATTACHED)
    return mfx_fail(MFX_ERR_INVALID, "%s GPU template: %d outer axes, %d staged tensors",
                    p->what, p->n_outer, p->n_staged);
  MFX_TRY(mfx_gpu_check_threads(p));
  MFX_TRY(mfx_gpu_check_shared(p));
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = mfx_gpu_tiled_reduce_stage(s, st, p);
  if (status != MFX_OK)
    return mfx_fail_context(status,
                            "GPU tiled reduction of %s (block %s %lld x %s %lld, thread tile "
                            "%lld x %lld, %s by %lld)", t->buf->name, p->x, (long long)p->bx,
                            p->y, (long long)p->by, (long long)p->tx, (long long)p->ty, p->r,
                            (long long)p->br);
  return MFX_OK;
}

/* ---- elementwise stages ------------------------------------------------------------------ */

static mfx_status mfx_gpu_elementwise_stage(mfx_schedule *s, mfx_stage *st, int64_t threads) {
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
  mfx_status status = mfx_gpu_elementwise_stage(s, st, threads);
  if (status != MFX_OK)
    return mfx_fail_context(status, "GPU elementwise schedule of %s (%lld threads per block)",
                            t->buf->name, (long long)threads);
  return MFX_OK;
}
