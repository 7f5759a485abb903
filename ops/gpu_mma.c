/* GPU tensor cores for a dense product R[m, n] = sum_k A[m, k] B[n, k]
 * (linear's Y = X W^T): mma.sync m16n8k8 in TF32 (sm_80+), as a loop nest
 * built here (mfx_sched_set_nest) around the MMA statement, since a warp's
 * fragments are not something split/bind can state.
 *
 * A block computes bm x bn outputs with one warp per 32 x wn tile
 * (wn = min(bn, 32)): 2 x wn/8 fragments of 16 x 8, 4 f32 accumulators a
 * lane each, at most 32 a thread. Each step of bk along k, the whole block
 * copies A's bm x bk and B's bn x bk tiles into shared memory (coalesced
 * along k; zeros past M, N and K; k permuted within each 8 so that a lane's
 * two values of a fragment row are one 8-byte load), rows padded to 8 or 24
 * mod 32 floats so that those loads, 16 lanes at a time, hit 32 different
 * banks; a barrier; per 8-wide k-slice each warp issues its 2 x wn/8 MMAs; a
 * barrier. The accumulators are stored with row/column guards.
 *
 * Split-K (mfx_gpu_split): the product goes to the partial sums RP[ks, m, n]
 * instead, blockIdx.z the piece ks, whose k steps start at ks * chunk (chunk
 * whole steps of bk; the fill's zeros past K cover a last piece that
 * overruns K, so the padded tensors the split made are not read); the sum
 * over the pieces is the split's own elementwise kernel. */
#include "ops_internal.h"

#define MMA_WARP_M 32
#define MMA_MAX_WARP_N 32

typedef struct {
  mfx_arena *a;
  const char *what;
  int64_t M, N, K, bm, bn, bk, ld;  /* ld: shared row stride (> bk, padded) */
  int64_t pieces, chunk;            /* split-K: pieces of chunk terms (1, K: none) */
  int64_t wn, warps_n, threads, fm, fn;
  mfx_var *tid;
  mfx_buffer *sa, *sb, *acc;
} mma_plan;

static mfx_status mma_check(const mma_plan *p) {
  if (p->bm % MMA_WARP_M != 0 || p->bn % 8 != 0 || (p->bn > MMA_MAX_WARP_N && p->bn % 32 != 0) ||
      p->bk % 8 != 0)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config mma=1: block %lldx%lld, step %lld; tensor-core tiles need "
                    "block_m a multiple of 32, block_n of 8 (of 32 above 32) and block_k of 8",
                    p->what, (long long)p->bm, (long long)p->bn, (long long)p->bk);
  if (p->threads > MFX_GPU_MAX_THREADS)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config mma=1: block %lldx%lld needs %lld threads (a warp per 32x%lld "
                    "tile; at most %d)", p->what, (long long)p->bm, (long long)p->bn,
                    (long long)p->threads, (long long)p->wn, MFX_GPU_MAX_THREADS);
  int64_t bytes = (p->bm + p->bn) * p->ld * 4;
  if (bytes > 48 * 1024)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config mma=1: tiles of %lldx%lld by step %lld need %lld bytes of "
                    "shared memory (at most 48 KiB); use a smaller block tile or step",
                    p->what, (long long)p->bm, (long long)p->bn, (long long)p->bk,
                    (long long)bytes);
  return MFX_OK;
}

static mfx_expr *mma_c(mma_plan *p, int64_t v) { return mfx_i64(p->a, v); }
static mfx_expr *mma_ref(mma_plan *p, mfx_var *v) { return mfx_var_ref(p->a, v); }
static mfx_expr *mma_div(mma_plan *p, mfx_expr *x, int64_t d) {
  return mfx_binary(p->a, MFX_DIV, x, mma_c(p, d));
}
static mfx_expr *mma_mod(mma_plan *p, mfx_expr *x, int64_t d) {
  return mfx_binary(p->a, MFX_MOD, x, mma_c(p, d));
}
static mfx_expr *mma_lt(mma_plan *p, mfx_expr *x, int64_t n) {
  return mfx_binary(p->a, MFX_LT, x, mma_c(p, n));
}

/* shared[r*ld + c] = src[base + r][k0 + c] (0 outside rows x K), for the
 * rows x bk tile, the block's threads striding over it. */
static mfx_stmt *mma_fill(mma_plan *p, mfx_buffer *dst, const mfx_tensor *src, mfx_expr *base,
                          int64_t rows, int64_t extent, mfx_expr *k0, const char *name) {
  mfx_arena *a = p->a;
  int64_t elems = rows * p->bk, steps = (elems + p->threads - 1) / p->threads;
  mfx_var *l = mfx_var_create(a, name, steps, 0);
  mfx_expr *idx = mfx_add(a, mfx_mul(a, mma_ref(p, l), mma_c(p, p->threads)), mma_ref(p, p->tid));
  mfx_expr *r = mma_div(p, idx, p->bk), *c = mma_mod(p, idx, p->bk);
  mfx_expr *row = mfx_add(a, base, r), *col = mfx_add(a, k0, c);
  mfx_expr *inside = mfx_binary(a, MFX_LAND, mma_lt(p, row, extent), mma_lt(p, col, p->K));
  mfx_expr *at[2] = {mfx_binary(a, MFX_MIN, row, mma_c(p, extent - 1)),
                     mfx_binary(a, MFX_MIN, col, mma_c(p, p->K - 1))};
  mfx_expr *v = mfx_select(a, inside, mfx_load(a, src->buf, 2, at), mfx_f32(a, 0.0));
  /* k permuted within each 8 (0 4 1 5 2 6 3 7): a lane's fragment pair side by side */
  mfx_expr *cp = mfx_add(a, mfx_mul(a, mma_div(p, c, 8), mma_c(p, 8)),
                         mfx_add(a, mfx_mul(a, mma_mod(p, c, 4), mma_c(p, 2)),
                                 mma_div(p, mma_mod(p, c, 8), 4)));
  mfx_expr *to = mfx_add(a, mfx_mul(a, r, mma_c(p, p->ld)), cp);
  mfx_stmt *st = mfx_stmt_store(a, dst, 1, &to, v);
  if (elems % p->threads != 0) st = mfx_stmt_if(a, mma_lt(p, idx, elems), st, NULL);
  return mfx_stmt_for(a, l, steps, MFX_LOOP_UNROLLED, st);
}

/* for kk, i, j (unrolled): acc[(i*fn + j)*4..] += A(warp rows + 16i, kk*8) B(warp cols + 8j) */
static mfx_stmt *mma_compute(mma_plan *p, mfx_expr *lane, mfx_expr *wm, mfx_expr *wn) {
  mfx_arena *a = p->a;
  mfx_var *kk = mfx_var_create(a, "kk", p->bk / 8, 0), *i = mfx_var_create(a, "fi", p->fm, 0);
  mfx_var *j = mfx_var_create(a, "fj", p->fn, 0);
  mfx_expr *k8 = mfx_mul(a, mma_ref(p, kk), mma_c(p, 8));
  mfx_expr *arow = mfx_add(a, mfx_mul(a, wm, mma_c(p, MMA_WARP_M)),
                           mfx_mul(a, mma_ref(p, i), mma_c(p, 16)));
  mfx_expr *bcol = mfx_add(a, mfx_mul(a, wn, mma_c(p, p->wn)), mfx_mul(a, mma_ref(p, j), mma_c(p, 8)));
  mfx_buffer *buf[MFX_MMA_OPERANDS] = {p->acc, p->sa, p->sb};
  mfx_expr *off[MFX_MMA_OPERANDS] = {
      mfx_mul(a, mfx_add(a, mfx_mul(a, mma_ref(p, i), mma_c(p, p->fn)), mma_ref(p, j)), mma_c(p, 4)),
      mfx_add(a, mfx_mul(a, arow, mma_c(p, p->ld)), k8),
      mfx_add(a, mfx_mul(a, bcol, mma_c(p, p->ld)), k8)};
  int64_t ld[MFX_MMA_OPERANDS] = {1, p->ld, p->ld};
  mfx_stmt *s = mfx_stmt_mma(a, buf, off, ld, lane);
  if (s == NULL) return NULL;
  s->u.mma.kperm = 1;
  s = mfx_stmt_for(a, j, p->fn, MFX_LOOP_UNROLLED, s);
  s = mfx_stmt_for(a, i, p->fm, MFX_LOOP_UNROLLED, s);
  return mfx_stmt_for(a, kk, p->bk / 8, MFX_LOOP_UNROLLED, s);
}

/* R[row, col] (split: RP[piece, row, col]) = acc[e] for the lane's elements of
 * every fragment, guarded. */
static mfx_stmt *mma_store(mma_plan *p, mfx_tensor *R, mfx_expr *piece, mfx_expr *lane,
                           mfx_expr *row0, mfx_expr *col0) {
  mfx_arena *a = p->a;
  mfx_var *e = mfx_var_create(a, "e", p->fm * p->fn * 4, 0);
  mfx_expr *ev = mma_ref(p, e), *frag = mma_div(p, ev, 4), *i = mma_mod(p, ev, 4);
  mfx_expr *g = mma_div(p, lane, 4), *t = mma_mod(p, lane, 4);
  mfx_expr *row = mfx_add(a, row0, mfx_add(a, mfx_mul(a, mma_div(p, frag, p->fn), mma_c(p, 16)),
                                           mfx_add(a, g, mfx_mul(a, mma_div(p, i, 2), mma_c(p, 8)))));
  mfx_expr *col = mfx_add(a, col0, mfx_add(a, mfx_mul(a, mma_mod(p, frag, p->fn), mma_c(p, 8)),
                                           mfx_add(a, mfx_mul(a, t, mma_c(p, 2)), mma_mod(p, i, 2))));
  mfx_expr *at[3] = {piece, row, col};
  int n = piece != NULL ? 3 : 2;
  mfx_stmt *st = mfx_stmt_store(a, R->buf, n, at + 3 - n, mfx_load(a, p->acc, 1, &ev));
  mfx_expr *inside = mfx_binary(a, MFX_LAND, mma_lt(p, row, p->M), mma_lt(p, col, p->N));
  return mfx_stmt_for(a, e, p->fm * p->fn * 4, MFX_LOOP_UNROLLED, mfx_stmt_if(a, inside, st, NULL));
}

/* The block's work: accumulators zeroed, the k steps of its piece (fill,
 * barrier, MMAs, barrier), the guarded store to R[row, col] or, split, to
 * RP[ks, row, col]. */
static mfx_stmt *mma_block(mma_plan *p, mfx_tensor *R, const mfx_tensor *A, const mfx_tensor *B,
                           mfx_var *ks, mfx_expr *row0, mfx_expr *col0) {
  mfx_arena *a = p->a;
  int64_t ksteps = (p->chunk + p->bk - 1) / p->bk, n_acc = p->fm * p->fn * 4;
  mfx_var *ko = mfx_var_create(a, "ko", ksteps, 1), *z = mfx_var_create(a, "z", n_acc, 0);
  mfx_expr *tid = mma_ref(p, p->tid), *lane = mma_mod(p, tid, 32), *warp = mma_div(p, tid, 32);
  mfx_expr *wm = mma_div(p, warp, p->warps_n), *wn = mma_mod(p, warp, p->warps_n);
  mfx_expr *k0 = mfx_mul(a, mma_ref(p, ko), mma_c(p, p->bk));
  if (ks != NULL) k0 = mfx_add(a, mfx_mul(a, mma_ref(p, ks), mma_c(p, p->chunk)), k0);
  mfx_expr *zv = mma_ref(p, z);
  mfx_stmt *init = mfx_stmt_for(a, z, n_acc, MFX_LOOP_UNROLLED,
                                mfx_stmt_store(a, p->acc, 1, &zv, mfx_f32(a, 0.0)));
  mfx_stmt *compute = mma_compute(p, lane, wm, wn);
  if (compute == NULL) return NULL;
  mfx_stmt *step[5] = {mma_fill(p, p->sa, A, row0, p->bm, p->M, k0, "la"),
                       mma_fill(p, p->sb, B, col0, p->bn, p->N, k0, "lb"), mfx_stmt_barrier(a),
                       compute, mfx_stmt_barrier(a)};
  mfx_stmt *loop = mfx_stmt_for(a, ko, ksteps, MFX_LOOP_SERIAL, mfx_stmt_seq(a, 5, step));
  mfx_expr *wrow = mfx_add(a, row0, mfx_mul(a, wm, mma_c(p, MMA_WARP_M)));
  mfx_expr *wcol = mfx_add(a, col0, mfx_mul(a, wn, mma_c(p, p->wn)));
  mfx_expr *piece = ks != NULL ? mma_ref(p, ks) : NULL;
  mfx_stmt *store = mma_store(p, R, piece, lane, wrow, wcol);
  return mfx_stmt_allocate(a, p->acc, mfx_stmt_seq(a, 3, (mfx_stmt *[]){init, loop, store}));
}

static mfx_stmt *mma_nest(mma_plan *p, mfx_tensor *R, const mfx_tensor *A, const mfx_tensor *B) {
  mfx_arena *a = p->a;
  int64_t gy = (p->M + p->bm - 1) / p->bm, gx = (p->N + p->bn - 1) / p->bn;
  mfx_var *by = mfx_var_create(a, "by", gy, 0), *bx = mfx_var_create(a, "bx", gx, 0);
  mfx_var *ks = p->pieces > 1 ? mfx_var_create(a, "ks", p->pieces, 0) : NULL;
  p->tid = mfx_var_create(a, "tid", p->threads, 0);
  mfx_expr *row0 = mfx_mul(a, mma_ref(p, by), mma_c(p, p->bm));
  mfx_expr *col0 = mfx_mul(a, mma_ref(p, bx), mma_c(p, p->bn));
  mfx_stmt *body = mma_block(p, R, A, B, ks, row0, col0);
  if (body == NULL) return NULL;
  body = mfx_stmt_for(a, p->tid, p->threads, MFX_LOOP_THREAD_X, body);
  body = mfx_stmt_allocate(a, p->sb, mfx_stmt_allocate(a, p->sa, body));
  body = mfx_stmt_for(a, bx, gx, MFX_LOOP_BLOCK_X, body);
  body = mfx_stmt_for(a, by, gy, MFX_LOOP_BLOCK_Y, body);
  return ks != NULL ? mfx_stmt_for(a, ks, p->pieces, MFX_LOOP_BLOCK_Z, body) : body;
}

/* The split's workspace as the nest writes it, and its pieces. */
static mfx_status mma_split_plan(mma_plan *p, const mfx_tensor *R, const mfx_gpu_split *g) {
  p->pieces = 1;
  p->chunk = p->K;
  if (g == NULL || g->part == NULL) return MFX_OK;
  const mfx_buffer *rp = g->part->buf;
  if (rp->ndim != 3 || rp->shape[0] != g->pieces || rp->shape[1] != p->M ||
      rp->shape[2] != p->N || g->chunk % p->bk != 0 || g->pieces * g->chunk < p->K)
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "%s GPU config mma=1: split of %s into %lld pieces of %lld terms does not "
                    "fit the tensor-core form (expected partial sums [pieces, %lld, %lld], "
                    "pieces of whole block_k=%lld steps covering K=%lld)", p->what,
                    R->buf->name, (long long)g->pieces, (long long)g->chunk, (long long)p->M,
                    (long long)p->N, (long long)p->bk, (long long)p->K);
  p->pieces = g->pieces;
  p->chunk = g->chunk;
  return MFX_OK;
}

/* Split: the padded copies of A and B the split made are not read (the
 * fill guards K itself); inlined, they produce no kernel. Then R = the sum
 * of the pieces, one element a thread. */
static mfx_status mma_split_finish(mfx_schedule *s, mfx_tensor *R, const mfx_gpu_split *g,
                                   int64_t threads) {
  for (int i = 0; i < g->n_padded; i++) {
    mfx_stage *pad;
    MFX_TRY(mfx_tmpl_stage(s, g->padded[i], &pad));
    MFX_TRY(mfx_sched_compute_inline(s, pad));
  }
  return mfx_gpu_apply_elementwise(s, R, threads);
}

mfx_status mfx_gpu_apply_mma(mfx_schedule *s, mfx_tensor *R, const mfx_tensor *A,
                             const mfx_tensor *B, const mfx_gpu_split *g,
                             const mfx_gpu_mma_tiles *t) {
  const char *what = t->what;
  int64_t bm = t->bm, bn = t->bn, bk = t->bk;
  mma_plan p = {.a = s->arena, .what = what, .bm = bm, .bn = bn, .bk = bk};
  if (A->buf->ndim != 2 || B->buf->ndim != 2 || R->buf->ndim != 2 || A->buf->dtype != MFX_F32 ||
      B->buf->dtype != MFX_F32 || A->buf->shape[1] != B->buf->shape[1])
    return mfx_fail(MFX_ERR_SCHEDULE, "%s GPU mma: expects f32 A[M,K], B[N,K]", what);
  p.M = A->buf->shape[0];
  p.N = B->buf->shape[0];
  p.K = A->buf->shape[1];
  /* Row stride = 8 or 24 mod 32 words: the 8-byte fragment loads of a half
   * warp (rows g..g+3, words 2t, 2t+1) cover 32 banks once. */
  p.ld = bk + 1;
  while (p.ld % 32 != 8 && p.ld % 32 != 24) p.ld++;
  p.wn = bn < MMA_MAX_WARP_N ? bn : MMA_MAX_WARP_N;
  p.warps_n = bn / p.wn;
  p.threads = 32 * (bm / MMA_WARP_M) * p.warps_n;
  p.fm = MMA_WARP_M / 16;
  p.fn = p.wn / 8;
  MFX_TRY(mma_check(&p));
  MFX_TRY(mma_split_plan(&p, R, g));
  int split = p.pieces > 1;
  mfx_tensor *out = split ? g->part : R;
  p.sa = mfx_buffer_create(p.a, "XS", MFX_F32, 1, (int64_t[]){bm * p.ld}, MFX_SCOPE_SHARED);
  p.sb = mfx_buffer_create(p.a, "WS", MFX_F32, 1, (int64_t[]){bn * p.ld}, MFX_SCOPE_SHARED);
  p.acc = mfx_buffer_create(p.a, "acc", MFX_F32, 1, (int64_t[]){p.fm * p.fn * 4}, MFX_SCOPE_LOCAL);
  mfx_stmt *nest = mma_nest(&p, out, A, B);
  if (nest == NULL) return mfx_fail_context(MFX_ERR_SCHEDULE, "%s GPU mma: the loop nest", what);
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, out, &st));
  MFX_TRY(mfx_sched_set_nest(s, st, nest));
  return split ? mma_split_finish(s, R, g, t->threads) : MFX_OK;
}
