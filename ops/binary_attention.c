/* binary_attention: linear attention with binary codes, additions selected
 * by bits for both products, then a row normalisation.
 *   A[b,h,c,d]  = sum_n Hc[b,h,n,c] V[b,h,n,d]           (Hc^T V)
 *   XS[b,h,n,d] = sum_c Hc[b,h,n,c] A[b,h,c,d]           (Hc A)
 *   X           = 0.5 V + XS / pi
 *   NRM[b,h,n]  = sum_d X^2
 *   O           = X / max(sqrt(NRM), 1e-12)
 * The two products are register-tiled reductions with selects whose
 * "off" value is -0.0, the exact identity of float addition; X may be
 * inlined into its two consumers. On the CPU the row norms go through
 * partial sums over L lanes of d (L divides D), so that they are vector
 * code:
 *   NP[b,h,n,l] = sum_k X[b,h,n,k*L+l]^2,   NRM[b,h,n] = sum_l NP[b,h,n,l]
 * Vectorized over d, each select of a code is a compare to a mask and a
 * masked add (see matadd.c). */
#include "knobs.h"

enum { ATTN_B, ATTN_H, ATTN_N, ATTN_D, ATTN_C };

#define ATTN_INV_PI 0.31830988618379067154

typedef struct {
  mfx_tensor *Hc, *V, *A, *XS, *X, *NP, *NRM, *O;
} attn_stages;

/* The lanes of the norm's partial sums: the widest of 16, 8, 4, 2 that
 * divides D, or 0 (no partial sums) when none does. */
static int64_t attn_norm_lanes(int64_t D) {
  for (int64_t l = 16; l >= 2; l /= 2)
    if (D % l == 0) return l;
  return 0;
}

static mfx_expr *attn_code_set(mfx_arena *a, mfx_expr *code) {
  return mfx_binary(a, MFX_NE, code, mfx_int(a, MFX_I8, 0));
}

/* A[b,h,c,d] = sum_n select(Hc[b,h,n,c], V[b,h,n,d], 0): matadd's expression. */
static mfx_status attn_kv(mfx_arena *a, attn_stages *t, const int64_t *dims) {
  return mfx_matadd_te(a, t->Hc, t->V, dims, "A", &t->A);
}

/* XS[b,h,n,d] = sum_c select(Hc[b,h,n,c], A[b,h,c,d], 0). */
static mfx_status attn_query(mfx_arena *a, attn_stages *t, const int64_t *dims) {
  int64_t B = dims[ATTN_B], H = dims[ATTN_H], N = dims[ATTN_N], D = dims[ATTN_D];
  int64_t C = dims[ATTN_C];
  mfx_tensor *XS = mfx_compute_begin(a, "XS", MFX_F32, 4, (int64_t[]){B, H, N, D},
                                     (const char *[]){"b", "h", "n", "d"});
  mfx_var *c = mfx_var_create(a, "c", C, 1);
  mfx_expr *b = mfx_tmpl_axis(a, XS, 0), *h = mfx_tmpl_axis(a, XS, 1), *cc = mfx_var_ref(a, c);
  mfx_expr *code = mfx_tmpl_load4(a, t->Hc, b, h, mfx_tmpl_axis(a, XS, 2), cc);
  mfx_expr *kv = mfx_tmpl_load4(a, t->A, b, h, cc, mfx_tmpl_axis(a, XS, 3));
  mfx_expr *term = mfx_select(a, attn_code_set(a, code), kv, mfx_f32(a, -0.0));
  MFX_TRY(mfx_tmpl_set_body(a, XS, mfx_reduce(a, MFX_REDUCE_SUM, 1, &c, term)));
  t->XS = XS;
  return MFX_OK;
}

/* X = 0.5 V + XS / pi, elementwise over [B, H, N, D]. */
static mfx_status attn_mix(mfx_arena *a, attn_stages *t) {
  mfx_tensor *X = mfx_compute_begin(a, "X", MFX_F32, 4, t->XS->buf->shape,
                                    (const char *[]){"b", "h", "n", "d"});
  mfx_expr *ax[4];
  for (int i = 0; i < 4; i++) ax[i] = mfx_tmpl_axis(a, X, i);
  mfx_expr *v = mfx_tmpl_load4(a, t->V, ax[0], ax[1], ax[2], ax[3]);
  mfx_expr *xs = mfx_tmpl_load4(a, t->XS, ax[0], ax[1], ax[2], ax[3]);
  mfx_expr *body = mfx_add(a, mfx_mul(a, mfx_f32(a, 0.5), v),
                           mfx_mul(a, mfx_f32(a, ATTN_INV_PI), xs));
  MFX_TRY(mfx_tmpl_set_body(a, X, body));
  t->X = X;
  return MFX_OK;
}

/* NP[b,h,n,l] = sum_k X[b,h,n,k*lanes+l]^2. */
static mfx_status attn_norm_partial(mfx_arena *a, attn_stages *t, int64_t lanes) {
  const int64_t *s = t->X->buf->shape;
  mfx_tensor *NP = mfx_compute_begin(a, "NP", MFX_F32, 4, (int64_t[]){s[0], s[1], s[2], lanes},
                                     (const char *[]){"b", "h", "n", "l"});
  mfx_var *k = mfx_var_create(a, "k", s[3] / lanes, 1);
  mfx_expr *d = mfx_add(a, mfx_mul(a, mfx_var_ref(a, k), mfx_i64(a, lanes)),
                        mfx_tmpl_axis(a, NP, 3));
  mfx_expr *x = mfx_tmpl_load4(a, t->X, mfx_tmpl_axis(a, NP, 0), mfx_tmpl_axis(a, NP, 1),
                               mfx_tmpl_axis(a, NP, 2), d);
  MFX_TRY(mfx_tmpl_set_body(a, NP, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, mfx_mul(a, x, x))));
  t->NP = NP;
  return MFX_OK;
}

/* NRM[b,h,n] = sum_d X[b,h,n,d]^2, or sum_l NP[b,h,n,l] over lanes > 0
 * partial sums. */
static mfx_status attn_norm(mfx_arena *a, attn_stages *t, int64_t lanes) {
  const int64_t *s = t->X->buf->shape;
  if (lanes > 0) MFX_TRY(attn_norm_partial(a, t, lanes));
  mfx_tensor *NRM = mfx_compute_begin(a, "NRM", MFX_F32, 3, s, (const char *[]){"b", "h", "n"});
  mfx_var *d = mfx_var_create(a, lanes > 0 ? "l" : "dn", lanes > 0 ? lanes : s[3], 1);
  mfx_expr *b = mfx_tmpl_axis(a, NRM, 0), *h = mfx_tmpl_axis(a, NRM, 1);
  mfx_expr *n = mfx_tmpl_axis(a, NRM, 2), *dd = mfx_var_ref(a, d), *body;
  if (lanes > 0) {
    body = mfx_tmpl_load4(a, t->NP, b, h, n, dd);
  } else {
    mfx_expr *x = mfx_tmpl_load4(a, t->X, b, h, n, dd);
    body = x ? mfx_mul(a, x, x) : NULL;
  }
  MFX_TRY(mfx_tmpl_set_body(a, NRM, body ? mfx_reduce(a, MFX_REDUCE_SUM, 1, &d, body) : NULL));
  t->NRM = NRM;
  return MFX_OK;
}

/* O = X / max(sqrt(NRM), 1e-12). */
static mfx_status attn_normalize(mfx_arena *a, attn_stages *t) {
  mfx_tensor *O = mfx_compute_begin(a, "O", MFX_F32, 4, t->X->buf->shape,
                                    (const char *[]){"b", "h", "n", "d"});
  mfx_expr *ax[4];
  for (int i = 0; i < 4; i++) ax[i] = mfx_tmpl_axis(a, O, i);
  mfx_expr *x = mfx_tmpl_load4(a, t->X, ax[0], ax[1], ax[2], ax[3]);
  mfx_expr *nrm = ax[0] && ax[1] && ax[2] ? mfx_tensor_load(a, t->NRM, 3, ax) : NULL;
  mfx_expr *den = mfx_binary(a, MFX_MAX, mfx_unary(a, MFX_SQRT, nrm), mfx_f32(a, 1e-12));
  MFX_TRY(mfx_tmpl_set_body(a, O, mfx_binary(a, MFX_DIV, x, den)));
  t->O = O;
  return MFX_OK;
}

/* GPU: the row norms a warp per row, folded into the inverse norm.
 *   INV[b,h,n,l] = rsqrt(max(warp_sum(sum_i X[b,h,n,l+32i]^2), 1e-24))   (l < 32 lanes)
 * Lane l squares the elements l, l+32, ... of its row (a select drops
 * those past D: every lane of the warp takes part in the shuffles), the
 * warp adds the 32 partial sums with shfl.sync (every lane gets the
 * total), and rsqrt.approx replaces the IEEE sqrt and division:
 * max(sqrt(s), 1e-12) = sqrt(max(s, 1e-24)). Each lane stores the same
 * value (one coalesced 128-byte store per row); O reads lane 0's. */
static mfx_status attn_gpu_inverse_norm(mfx_arena *a, attn_stages *t) {
  const int64_t *s = t->X->buf->shape;
  int64_t D = s[3];
  mfx_tensor *INV = mfx_compute_begin(a, "INV", MFX_F32, 4, (int64_t[]){s[0], s[1], s[2], 32},
                                      (const char *[]){"b", "h", "n", "l"});
  if (INV == NULL) return mfx_fail_context(MFX_ERR_INVALID, "binary_attention: INV");
  mfx_expr *ax[4], *sum = NULL;
  for (int i = 0; i < 4; i++) ax[i] = mfx_tmpl_axis(a, INV, i);
  for (int64_t i = 0; i * 32 < D; i++) {
    mfx_expr *d = mfx_add(a, ax[3], mfx_i64(a, 32 * i));
    mfx_expr *x = mfx_tmpl_load4(a, t->X, ax[0], ax[1], ax[2],
                                 mfx_binary(a, MFX_MIN, d, mfx_i64(a, D - 1)));
    mfx_expr *sq = mfx_mul(a, x, x);
    if (32 * (i + 1) > D)
      sq = mfx_select(a, mfx_binary(a, MFX_LT, d, mfx_i64(a, D)), sq, mfx_f32(a, 0.0));
    sum = sum ? mfx_add(a, sum, sq) : sq;
  }
  mfx_expr *total = mfx_unary(a, MFX_WARP_SUM, sum);
  MFX_TRY(mfx_tmpl_set_body(a, INV, mfx_unary(a, MFX_RSQRT, mfx_binary(a, MFX_MAX, total,
                                                                        mfx_f32(a, 1e-24)))));
  t->NRM = INV;
  return MFX_OK;
}

/* GPU: O = X * INV[b,h,n,0] (no division). */
static mfx_status attn_gpu_normalize(mfx_arena *a, attn_stages *t) {
  mfx_tensor *O = mfx_compute_begin(a, "O", MFX_F32, 4, t->X->buf->shape,
                                    (const char *[]){"b", "h", "n", "d"});
  if (O == NULL) return mfx_fail_context(MFX_ERR_INVALID, "binary_attention: O");
  mfx_expr *ax[4];
  for (int i = 0; i < 4; i++) ax[i] = mfx_tmpl_axis(a, O, i);
  mfx_expr *x = mfx_tmpl_load4(a, t->X, ax[0], ax[1], ax[2], ax[3]);
  mfx_expr *inv = mfx_tmpl_load4(a, t->NRM, ax[0], ax[1], ax[2], mfx_i64(a, 0));
  MFX_TRY(mfx_tmpl_set_body(a, O, mfx_mul(a, x, inv)));
  t->O = O;
  return MFX_OK;
}

/* NRM over blocks of `rows` tokens: b, h, n.o | r, n.i with n.i unrolled,
 * so that `rows` independent sums are in flight instead of one chain of
 * dependent additions; accumulated locally. */
static mfx_status attn_schedule_norm(mfx_schedule *s, const attn_stages *t, int64_t rows,
                                     int parallel, int local) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t->NRM, &st));
  mfx_itervar *b, *h, *n, *r, *no, *ni;
  MFX_TRY(mfx_tmpl_itervar(st, "b", &b));
  MFX_TRY(mfx_tmpl_itervar(st, "h", &h));
  MFX_TRY(mfx_tmpl_itervar(st, "n", &n));
  MFX_TRY(mfx_tmpl_itervar(st, t->NP ? "l" : "dn", &r));
  MFX_TRY(mfx_sched_split(s, st, n, rows, MFX_TAIL_GUARD, &no, &ni));
  MFX_TRY(mfx_sched_reorder(s, st, 5, (mfx_itervar *[]){b, h, no, r, ni}));
  mfx_itervar *top = no;
  if (parallel) {
    MFX_TRY(mfx_sched_fuse(s, st, b, h, &top));
    MFX_TRY(mfx_sched_fuse(s, st, top, no, &top));
    MFX_TRY(mfx_sched_parallel(s, st, top));
  }
  if (local) MFX_TRY(mfx_sched_cache_write_local(s, st, top));
  return mfx_sched_unroll(s, st, ni);
}

#define ATTN_CPU_KNOBS(X) \
  X(tile_c) X(tile_n) X(tile_d) X(vec) X(unroll) X(parallel) X(local) X(inline_x) X(rows_norm)
MFX_KNOB_VIEW(attn_knobs, ATTN_CPU_KNOBS)
#define ATTN_GPU_KNOBS(X)                                                                   \
  X(block_c) X(block_n) X(block_d) X(thread_r) X(thread_d) X(block_k) X(shared) X(unroll)  \
  X(inline_x) X(threads)
MFX_KNOB_VIEW(attn_gpu_knobs, ATTN_GPU_KNOBS)

static mfx_status attn_schedule(mfx_schedule *s, const attn_stages *t, const mfx_config *cfg) {
  attn_knobs k;
  MFX_TRY(attn_knobs_read(cfg, "binary_attention", &k));
  int vec = (int)k.vec, parallel = (int)k.parallel;
  int unroll = (int)k.unroll, local = (int)k.local;
  int64_t td = k.tile_d;
  mfx_tmpl_tiled_reduce kv = {
    .n_outer = 2, .outer = {"b", "h"}, .x = "c", .y = "d", .r = "n",
    .fx = k.tile_c, .fy = td,
    .vec = vec, .unroll = unroll, .parallel = parallel, .local = local,
  };
  MFX_TRY(mfx_tmpl_apply_tiled_reduce(s, t->A, &kv));
  mfx_tmpl_tiled_reduce q = {
    .n_outer = 2, .outer = {"b", "h"}, .x = "n", .y = "d", .r = "c",
    .fx = k.tile_n, .fy = td,
    .vec = vec, .unroll = unroll, .parallel = parallel, .local = local,
  };
  MFX_TRY(mfx_tmpl_apply_tiled_reduce(s, t->XS, &q));
  mfx_stage *x_stage;
  MFX_TRY(mfx_tmpl_stage(s, t->X, &x_stage));
  if (k.inline_x) MFX_TRY(mfx_sched_compute_inline(s, x_stage));
  else MFX_TRY(mfx_tmpl_apply_elementwise(s, t->X, td, vec, parallel));
  int64_t rows = k.rows_norm;
  if (t->NP) {
    mfx_tmpl_tiled_reduce np = {
      .n_outer = 2, .outer = {"b", "h"}, .x = "n", .y = "l", .r = "k",
      .fx = rows, .fy = t->NP->buf->shape[3],
      .vec = vec, .unroll = unroll, .parallel = parallel, .local = local,
    };
    MFX_TRY(mfx_tmpl_apply_tiled_reduce(s, t->NP, &np));
  }
  MFX_TRY(attn_schedule_norm(s, t, rows, parallel, local));
  return mfx_tmpl_apply_elementwise(s, t->O, td, vec, parallel);
}

/* The tensor expressions (gpu: the inverse norm a warp per row). */
static mfx_status attn_te(mfx_arena *a, const int64_t *dims, int64_t norm_lanes, int gpu,
                          attn_stages *t) {
  int64_t B = dims[ATTN_B], H = dims[ATTN_H], N = dims[ATTN_N], D = dims[ATTN_D];
  int64_t C = dims[ATTN_C];
  *t = (attn_stages){
    .Hc = mfx_placeholder(a, "Hc", MFX_I8, 4, (int64_t[]){B, H, N, C}),
    .V = mfx_placeholder(a, "V", MFX_F32, 4, (int64_t[]){B, H, N, D}),
  };
  if (!t->Hc || !t->V) return mfx_fail_context(MFX_ERR_INVALID, "binary_attention: inputs");
  MFX_TRY(attn_kv(a, t, dims));
  MFX_TRY(attn_query(a, t, dims));
  MFX_TRY(attn_mix(a, t));
  if (gpu) {
    MFX_TRY(attn_gpu_inverse_norm(a, t));
    return attn_gpu_normalize(a, t);
  }
  MFX_TRY(attn_norm(a, t, norm_lanes));
  return attn_normalize(a, t);
}

/* The tensor expressions and the (unscheduled) schedule. */
static mfx_status attn_define(mfx_arena *a, const int64_t *dims, int64_t norm_lanes,
                              attn_stages *t, mfx_schedule **out) {
  MFX_TRY(attn_te(a, dims, norm_lanes, 0, t));
  return mfx_sched_create(a, 2, (mfx_tensor *[]){t->Hc, t->V}, 1, &t->O, out);
}

static mfx_status attn_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                             mfx_schedule **out) {
  attn_stages t;
  MFX_TRY(attn_define(a, dims, attn_norm_lanes(dims[ATTN_D]), &t, out));
  return attn_schedule(*out, &t, cfg);
}

/* GPU: one kernel per stage. Hc^T V and Hc A are block-tiled reductions
 * with their operands staged in shared memory (A read back from the
 * workspace); Hc^T V's long reduction over N in split_k pieces (partial
 * sums, then their sum: A has only C x D elements a head); X is inlined or
 * its own pass; INV (the inverse row norms) a warp per row, one lane per
 * thread; O is one element per thread. */
static mfx_status attn_schedule_gpu(mfx_schedule *s, const attn_stages *t,
                                    const mfx_gpu_split *g, const mfx_config *cfg) {
  attn_gpu_knobs k;
  MFX_TRY(attn_gpu_knobs_read(cfg, "binary_attention (GPU)", &k));
  int64_t threads = k.threads;
  mfx_gpu_tiled_reduce kv = {
    .what = "binary_attention (Hc^T V)", .n_outer = 2, .outer = {"b", "h"},
    .x = "c", .y = "d", .r = "n",
    .bx = k.block_c, .by = k.block_d, .tx = k.thread_r, .ty = k.thread_d, .br = k.block_k,
    .shared = (int)k.shared, .unroll = (int)k.unroll,
    .n_staged = 2, .staged = {{t->Hc, 'x'}, {t->V, 'y'}},
  };
  MFX_TRY(mfx_gpu_apply_split(s, t->A, g, &kv, threads));
  mfx_gpu_tiled_reduce q = kv;
  q.what = "binary_attention (Hc A)";
  q.x = "n";
  q.r = "c";
  q.bx = k.block_n;
  q.staged[1] = (mfx_gpu_staged){t->A, 'y'};
  MFX_TRY(mfx_gpu_apply_tiled_reduce(s, t->XS, &q));
  mfx_stage *x_stage;
  MFX_TRY(mfx_tmpl_stage(s, t->X, &x_stage));
  if (k.inline_x) MFX_TRY(mfx_sched_compute_inline(s, x_stage));
  else MFX_TRY(mfx_gpu_apply_elementwise(s, t->X, threads));
  MFX_TRY(mfx_gpu_apply_elementwise(s, t->NRM, threads));
  return mfx_gpu_apply_elementwise(s, t->O, threads);
}

static mfx_status attn_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                 mfx_schedule **out) {
  attn_gpu_knobs k; /* checks the config holds binary attention's GPU knobs */
  MFX_TRY(attn_gpu_knobs_read(cfg, "binary_attention (GPU)", &k));
  attn_stages t;
  MFX_TRY(attn_te(a, dims, 0, 1, &t));
  int64_t bc = mfx_config_get(cfg, "block_c"), bd = mfx_config_get(cfg, "block_d");
  int64_t bk = mfx_config_get(cfg, "block_k");
  int64_t tiles = dims[ATTN_B] * dims[ATTN_H] * ((dims[ATTN_C] + bc - 1) / bc) *
                  ((dims[ATTN_D] + bd - 1) / bd);
  int64_t pieces = mfx_gpu_split_pieces(mfx_config_get(cfg, "split_k"), tiles, dims[ATTN_N], bk,
                                        bk);
  mfx_gpu_split g;
  MFX_TRY(mfx_gpu_split_reduction(a, t.A, 2, pieces, bk, &g));
  MFX_TRY(mfx_sched_create(a, 2, (mfx_tensor *[]){t.Hc, t.V}, 1, &t.O, out));
  return attn_schedule_gpu(*out, &t, &g, cfg);
}

const mfx_op mfx_op_def_binary_attention = {
  MFX_OP_LISTED(binary_attention),
  .about = "binary-code linear attention: O = normalize(V/2 + Hc (Hc^T V) / pi) over d",
  MFX_OP_IO(binary_attention),
  .n_knobs = 9,
  .knobs = {
    {"tile_c", "codes per register tile of Hc^T V (unrolled)", 8, 4, {1, 2, 4, 8}},
    {"tile_n", "tokens per register tile of Hc A (unrolled)", 8, 4, {1, 2, 4, 8}},
    {"tile_d", "columns of d per tile (the vector loop of the products and of O)", 32, 3,
     {8, 16, 32}},
    {"vec", "vectorize over d in mfx (0: left to LLVM's loop vectorizer)", 1, 2, {0, 1}},
    {"unroll", "unroll the tiles' rows", 1, 2, {0, 1}},
    {"parallel", "run every stage on the thread pool", 1, 2, {0, 1}},
    {"local", "accumulate the tiles in registers (local buffers)", 1, 2, {0, 1}},
    {"inline_x", "compute X inside the row norms and O instead of storing it", 1, 2, {0, 1}},
    {"rows_norm", "tokens per block of the row norms (rows summed side by side)", 8, 3,
     {1, 4, 8}},
  },
  .build = attn_build,
  .n_gpu_knobs = 11,
  .gpu_knobs = {
    {"block_c", "codes per thread block of Hc^T V", 16, 4, {8, 16, 32, 64}},
    {"block_n", "tokens per thread block of Hc A", 8, 6, {4, 8, 16, 32, 64, 128}},
    {"block_d", "columns of d per thread block (both products)", 32, 4, {16, 32, 64, 128}},
    {"thread_r", "rows (codes, tokens) per thread of both products (register tile)", 2, 4,
     {1, 2, 4, 8}},
    {"thread_d", "columns per thread of both products (register tile, strided)", 1, 4,
     {1, 2, 4, 8}},
    {"block_k", "reduction step of both products: the tiles staged per step", 8, 5,
     {4, 8, 16, 32, 64}},
    {"shared", "stage the products' operand tiles in shared memory", 1, 2, {0, 1}},
    {"unroll", "unroll the register tiles", 1, 2, {0, 1}},
    {"inline_x", "compute X inside NRM and O instead of its own kernel", 1, 2, {0, 1}},
    {"threads", "threads per block of the X, NRM and O kernels and of the sum of the split_k "
     "pieces", 256, 4, {64, 128, 256, 512}},
    {"split_k", "pieces of Hc^T V's reduction over N, each on its own blocks, then summed by a "
     "second kernel (0: auto, the fewest for two waves on 132 SMs, a staging step or more a "
     "piece)", 0, 10, {0, 1, 2, 4, 8, 16, 32, 64, 128, 256}},
  },
  .build_gpu = attn_build_gpu,
};
