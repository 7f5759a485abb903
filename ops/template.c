/* Helpers the ops' definitions and schedule templates share: expression
 * shorthands and the two loop nests every template here is made of (a
 * register-tiled reduction, and an elementwise pass). */
#include "ops_internal.h"

/* ---- expressions ------------------------------------------------------------ */

mfx_expr *mfx_tmpl_load2(mfx_arena *a, mfx_tensor *t, mfx_expr *i, mfx_expr *j) {
  if (i == NULL || j == NULL) return NULL;
  return mfx_tensor_load(a, t, 2, (mfx_expr *[]){i, j});
}

mfx_expr *mfx_tmpl_load4(mfx_arena *a, mfx_tensor *t, mfx_expr *i, mfx_expr *j,
                         mfx_expr *k, mfx_expr *l) {
  if (i == NULL || j == NULL || k == NULL || l == NULL) return NULL;
  return mfx_tensor_load(a, t, 4, (mfx_expr *[]){i, j, k, l});
}

mfx_expr *mfx_tmpl_axis(mfx_arena *a, mfx_tensor *t, int n) {
  if (t == NULL) return NULL;
  return mfx_var_ref(a, t->axes[n]);
}

mfx_status mfx_tmpl_set_body(mfx_arena *a, mfx_tensor *t, mfx_expr *body) {
  if (t == NULL) return mfx_fail_context(MFX_ERR_INVALID, "creating a compute");
  if (body == NULL)
    return mfx_fail_context(MFX_ERR_INVALID, "building the body of %s", t->buf->name);
  mfx_status st = mfx_compute_set_body(a, t, body);
  if (st != MFX_OK) return mfx_fail_context(st, "setting the body of %s", t->buf->name);
  return MFX_OK;
}

mfx_status mfx_tmpl_transpose(mfx_arena *a, const char *name, mfx_tensor *src,
                              const char *const axes[2], mfx_tensor **out) {
  int64_t shape[2] = {src->buf->shape[1], src->buf->shape[0]};
  mfx_tensor *t = mfx_compute_begin(a, name, src->buf->dtype, 2, shape, axes);
  mfx_expr *body = mfx_tmpl_load2(a, src, mfx_tmpl_axis(a, t, 1), mfx_tmpl_axis(a, t, 0));
  MFX_TRY(mfx_tmpl_set_body(a, t, body));
  *out = t;
  return MFX_OK;
}

/* ---- stages and itervars -------------------------------------------------------- */

mfx_status mfx_tmpl_stage(mfx_schedule *s, mfx_tensor *t, mfx_stage **out) {
  *out = mfx_sched_stage(s, t);
  if (*out == NULL)
    return mfx_fail(MFX_ERR_SCHEDULE, "template: %s has no stage in the schedule",
                    t->buf->name);
  return MFX_OK;
}

mfx_status mfx_tmpl_itervar(mfx_stage *st, const char *name, mfx_itervar **out) {
  *out = mfx_sched_itervar(st, name);
  if (*out == NULL)
    return mfx_fail(MFX_ERR_SCHEDULE, "template: stage %s has no itervar \"%s\"",
                    st->tensor->buf->name, name);
  return MFX_OK;
}

/* Fuse n adjacent leaves (outermost first) into one. */
static mfx_status tmpl_fuse_all(mfx_schedule *s, mfx_stage *st, int n,
                                    mfx_itervar *const *leaves, mfx_itervar **fused) {
  mfx_itervar *f = leaves[0];
  for (int i = 1; i < n; i++) MFX_TRY(mfx_sched_fuse(s, st, f, leaves[i], &f));
  *fused = f;
  return MFX_OK;
}

/* ---- the register-tiled reduction ------------------------------------------------ */

/* Leaves outer..., x.o, y.o (or y.o, x.o), [r.o, r.i | r], x.i, y.i; returns
 * how many (x.i and y.i are the last two). */
static mfx_status tmpl_tile_order(mfx_schedule *s, mfx_stage *st,
                                      const mfx_tmpl_tiled_reduce *p, mfx_itervar **order,
                                      int *n_order) {
  mfx_itervar *x, *y, *r, *xo, *yo, *xi, *yi;
  MFX_TRY(mfx_tmpl_itervar(st, p->x, &x));
  MFX_TRY(mfx_tmpl_itervar(st, p->y, &y));
  MFX_TRY(mfx_tmpl_itervar(st, p->r, &r));
  MFX_TRY(mfx_sched_tile(s, st, x, y, p->fx, p->fy, MFX_TAIL_GUARD, &xo, &yo, &xi, &yi));
  int n = 0;
  for (int i = 0; i < p->n_outer; i++) MFX_TRY(mfx_tmpl_itervar(st, p->outer[i], &order[n++]));
  order[n++] = p->cols_outer ? yo : xo;
  order[n++] = p->cols_outer ? xo : yo;
  if (p->fr > 0) {
    MFX_TRY(mfx_sched_split(s, st, r, p->fr, MFX_TAIL_GUARD, &order[n], &order[n + 1]));
    n += 2;
  } else {
    order[n++] = r;
  }
  order[n++] = xi;
  order[n++] = yi;
  MFX_TRY(mfx_sched_reorder(s, st, n, order));
  *n_order = n;
  return MFX_OK;
}

static mfx_status tmpl_tiled_reduce_stage(mfx_schedule *s, mfx_stage *st,
                                              const mfx_tmpl_tiled_reduce *p) {
  mfx_itervar *order[MFX_MAX_DIMS + 6];
  int n = 0;
  MFX_TRY(tmpl_tile_order(s, st, p, order, &n));
  mfx_itervar *xi = order[n - 2], *yi = order[n - 1];
  int n_spatial_outer = p->n_outer + 2; /* outer..., x.o, y.o */
  mfx_itervar *top = order[n_spatial_outer - 1];
  if (p->parallel) {
    MFX_TRY(tmpl_fuse_all(s, st, n_spatial_outer, order, &top));
    MFX_TRY(mfx_sched_parallel(s, st, top));
  }
  if (p->local) MFX_TRY(mfx_sched_cache_write_local(s, st, top));
  if (p->unroll) MFX_TRY(mfx_sched_unroll(s, st, xi));
  if (p->vec) MFX_TRY(mfx_sched_vectorize(s, st, yi));
  return MFX_OK;
}

mfx_status mfx_tmpl_apply_tiled_reduce(mfx_schedule *s, mfx_tensor *t,
                                       const mfx_tmpl_tiled_reduce *p) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = tmpl_tiled_reduce_stage(s, st, p);
  if (status != MFX_OK)
    return mfx_fail_context(status, "tiled reduction of %s (%s by %lld, %s by %lld, %s by %lld)",
                            t->buf->name, p->x, (long long)p->fx, p->y, (long long)p->fy,
                            p->r, (long long)p->fr);
  return MFX_OK;
}

/* ---- elementwise passes --------------------------------------------------------------- */

static mfx_status tmpl_elementwise_stage(mfx_schedule *s, mfx_stage *st, int64_t vector,
                                             int vec, int parallel) {
  int n_spatial = st->tensor->n_axes;
  int has_reduce = st->n_root > n_spatial;
  mfx_itervar *leaves[MFX_MAX_DIMS];
  for (int i = 0; i < n_spatial; i++) leaves[i] = st->root[i];
  /* The last axis stays an inner loop: contiguous, and free of the divisions
   * a fused index costs. */
  int n_parallel = n_spatial > 1 && !has_reduce ? n_spatial - 1 : n_spatial;
  if (vec && !has_reduce) {
    mfx_itervar *inner;
    MFX_TRY(mfx_sched_split(s, st, st->root[n_spatial - 1], vector, MFX_TAIL_GUARD,
                            &leaves[n_spatial - 1], &inner));
    MFX_TRY(mfx_sched_vectorize(s, st, inner));
  }
  if (parallel) {
    mfx_itervar *fused;
    MFX_TRY(tmpl_fuse_all(s, st, n_parallel, leaves, &fused));
    MFX_TRY(mfx_sched_parallel(s, st, fused));
  }
  return MFX_OK;
}

mfx_status mfx_tmpl_apply_elementwise(mfx_schedule *s, mfx_tensor *t, int64_t vector,
                                      int vec, int parallel) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = tmpl_elementwise_stage(s, st, vector, vec, parallel);
  if (status != MFX_OK)
    return mfx_fail_context(status, "elementwise schedule of %s (vector %lld)", t->buf->name,
                            (long long)vector);
  return MFX_OK;
}

/* ---- panels ---------------------------------------------------------------------------- */

/* P[jo, k, ji] = src[jo*tn + ji, k] in blocks of `block` k steps: for one
 * (jo, k block), each of the tn source rows is read along k (one cache line
 * for block 16 of f32/i32) before the next, and the block's tn x block
 * outputs are one contiguous run. Reading along ji instead (the plain
 * elementwise order) touches tn rows a row-stride apart per k step, all in
 * one L1 set when the stride is 4 KiB: at K = 1024 and tn = 32 that packing
 * took 7% of linear's time. */
static mfx_status tmpl_panel_stage(mfx_schedule *s, mfx_stage *st, int64_t block,
                                       int parallel) {
  if (st->tensor->n_axes != 3 || st->n_root != 3)
    return mfx_fail_context(MFX_ERR_INVALID, "a panel has 3 axes (jo, k, ji), not %d",
                            st->tensor->n_axes);
  mfx_itervar *ko, *ki, *top = st->root[0];
  MFX_TRY(mfx_sched_split(s, st, st->root[1], block, MFX_TAIL_GUARD, &ko, &ki));
  MFX_TRY(mfx_sched_reorder(s, st, 4, (mfx_itervar *[]){st->root[0], ko, st->root[2], ki}));
  MFX_TRY(mfx_sched_fuse(s, st, st->root[0], ko, &top));
  if (parallel) MFX_TRY(mfx_sched_parallel(s, st, top));
  return MFX_OK;
}

mfx_status mfx_tmpl_apply_panel(mfx_schedule *s, mfx_tensor *t, int64_t block, int parallel) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = tmpl_panel_stage(s, st, block, parallel);
  if (status != MFX_OK)
    return mfx_fail_context(status, "panel schedule of %s (k blocks of %lld)", t->buf->name,
                            (long long)block);
  return MFX_OK;
}

/* ---- transposes ------------------------------------------------------------------------ */

/* T[j, i] = src[i, j] in square blocks: the rows a block reads stay in L1
 * while its columns are written. Not vectorized: the reads would be gathers,
 * slower here than scalar loads that hit L1. */
static mfx_status tmpl_transpose_stage(mfx_schedule *s, mfx_stage *st, int64_t block,
                                           int parallel) {
  mfx_itervar *outer_rows, *outer_cols, *rows, *cols;
  MFX_TRY(mfx_sched_tile(s, st, st->root[0], st->root[1], block, block, MFX_TAIL_GUARD,
                         &outer_rows, &outer_cols, &rows, &cols));
  if (parallel) MFX_TRY(mfx_sched_parallel(s, st, outer_rows));
  return MFX_OK;
}

mfx_status mfx_tmpl_apply_transpose(mfx_schedule *s, mfx_tensor *t, int64_t block,
                                    int parallel) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  mfx_status status = tmpl_transpose_stage(s, st, block, parallel);
  if (status != MFX_OK)
    return mfx_fail_context(status, "transpose schedule of %s (blocks of %lld)", t->buf->name,
                            (long long)block);
  return MFX_OK;
}
