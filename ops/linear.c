/* linear: the dense (multiplication) expert and the baseline of the others.
 *   Y[m, n] = sum_k X[m, k] W[n, k]
 * Template: W packed so that n is contiguous (WT[k, n], or panels
 * WP[n/tn, k, tn] of the register tile's width), then a register tile of
 * tile_m rows by tile_n vector columns accumulated in a local buffer. */
#include "knobs.h"

enum { LINEAR_M, LINEAR_N, LINEAR_K };

/* The panel layout WP[jo, k, ji] = W[min(jo*tn + ji, N-1), k]: each k step of
 * a register tile reads tn consecutive floats. Rows past N repeat the last
 * one; the guarded output never stores them. */
static mfx_status linear_panel(mfx_arena *a, mfx_tensor *W, int64_t tn, mfx_tensor **out) {
  int64_t N = W->buf->shape[0], K = W->buf->shape[1];
  int64_t shape[3] = {(N + tn - 1) / tn, K, tn};
  mfx_tensor *P = mfx_compute_begin(a, "WP", MFX_F32, 3, shape,
                                    (const char *[]){"jo", "k", "ji"});
  mfx_expr *row = mfx_add(a, mfx_mul(a, mfx_tmpl_axis(a, P, 0), mfx_i64(a, tn)),
                          mfx_tmpl_axis(a, P, 2));
  if (N % tn != 0) row = mfx_binary(a, MFX_MIN, row, mfx_i64(a, N - 1));
  MFX_TRY(mfx_tmpl_set_body(a, P, mfx_tmpl_load2(a, W, row, mfx_tmpl_axis(a, P, 1))));
  *out = P;
  return MFX_OK;
}

/* W[n, k] as read by Y at (n, k), in the layout the pack knob picks. */
static mfx_status linear_weight(mfx_arena *a, mfx_tensor *W, int64_t pack, int64_t tn,
                                mfx_tensor **packed, mfx_expr *n, mfx_expr *k,
                                mfx_expr **value) {
  *packed = NULL;
  if (pack == 0) {
    *value = mfx_tmpl_load2(a, W, n, k);
  } else if (pack == 1) {
    MFX_TRY(mfx_tmpl_transpose(a, "WT", W, (const char *[]){"k", "n"}, packed));
    *value = mfx_tmpl_load2(a, *packed, k, n);
  } else {
    MFX_TRY(linear_panel(a, W, tn, packed));
    mfx_expr *idx[3] = {mfx_binary(a, MFX_DIV, n, mfx_i64(a, tn)), k,
                        mfx_binary(a, MFX_MOD, n, mfx_i64(a, tn))};
    *value = idx[0] && idx[2] ? mfx_tensor_load(a, *packed, 3, idx) : NULL;
  }
  return MFX_OK;
}

/* The tensor expressions, W laid out as the pack knob says (panels of tn
 * columns for pack 2). */
mfx_status mfx_linear_te(mfx_arena *a, const int64_t *dims, int64_t pack, int64_t tn,
                         mfx_linear_parts *t) {
  int64_t M = dims[LINEAR_M], N = dims[LINEAR_N], K = dims[LINEAR_K];
  t->X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){M, K});
  t->W = mfx_placeholder(a, "W", MFX_F32, 2, (int64_t[]){N, K});
  t->Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  if (!t->X || !t->W || !t->Y) return mfx_fail_context(MFX_ERR_INVALID, "linear: tensors");
  mfx_var *k = mfx_var_create(a, "k", K, 1);
  mfx_expr *kk = mfx_var_ref(a, k), *w = NULL;
  MFX_TRY(linear_weight(a, t->W, pack, tn, &t->packed, mfx_tmpl_axis(a, t->Y, 1), kk, &w));
  mfx_expr *x = mfx_tmpl_load2(a, t->X, mfx_tmpl_axis(a, t->Y, 0), kk);
  return mfx_tmpl_set_body(a, t->Y, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, mfx_mul(a, x, w)));
}

static mfx_status linear_define(mfx_arena *a, const int64_t *dims, int64_t pack, int64_t tn,
                                mfx_linear_parts *t, mfx_schedule **out) {
  MFX_TRY(mfx_linear_te(a, dims, pack, tn, t));
  return mfx_sched_create(a, 2, (mfx_tensor *[]){t->X, t->W}, 1, &t->Y, out);
}

mfx_status mfx_linear_schedule(mfx_schedule *s, const mfx_linear_parts *t,
                               const mfx_config *cfg) {
  mfx_linear_knobs k;
  MFX_TRY(mfx_linear_knobs_read(cfg, "linear", &k));
  int64_t tn = k.tile_n;
  mfx_tensor *packed = t->packed;
  int parallel = (int)k.parallel;
  if (packed != NULL && packed->n_axes == 2)
    MFX_TRY(mfx_tmpl_apply_transpose(s, packed, 16, parallel));
  else if (packed != NULL && tn >= 32) /* k blocks: measured faster only for wide panels */
    MFX_TRY(mfx_tmpl_apply_panel(s, packed, 16, parallel));
  else if (packed != NULL)
    MFX_TRY(mfx_tmpl_apply_elementwise(s, packed, 8, 0, parallel));
  mfx_tmpl_tiled_reduce p = {
    .x = "i", .y = "j", .r = "k",
    .fx = k.tile_m, .fy = tn, .fr = k.tile_k,
    .vec = (int)k.vec, .unroll = (int)k.unroll,
    .parallel = parallel, .local = (int)k.local,
    .cols_outer = (int)k.cols_outer,
  };
  return mfx_tmpl_apply_tiled_reduce(s, t->Y, &p);
}

static mfx_status linear_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                               mfx_schedule **out) {
  mfx_linear_parts t;
  mfx_linear_knobs k;
  MFX_TRY(mfx_linear_knobs_read(cfg, "linear", &k));
  MFX_TRY(linear_define(a, dims, k.pack, k.tile_n, &t, out));
  return mfx_linear_schedule(*out, &t, cfg);
}

/* GPU: WT[k, n] (pack 1) in its own kernel, then blocks of block_m x block_n
 * outputs, X and W(T) tiles of block_k staged in shared memory; with split_k
 * the reduction over K in pieces (partial sums, then their sum). */
static mfx_gpu_tiled_reduce linear_gpu_tiles(const mfx_linear_parts *t, const mfx_config *cfg) {
  return (mfx_gpu_tiled_reduce){
    .what = "linear", .x = "i", .y = "j", .r = "k",
    .bx = mfx_config_get(cfg, "block_m"), .by = mfx_config_get(cfg, "block_n"),
    .tx = mfx_config_get(cfg, "thread_m"), .ty = mfx_config_get(cfg, "thread_n"),
    .br = mfx_config_get(cfg, "block_k"),
    .shared = (int)mfx_config_get(cfg, "shared"), .unroll = (int)mfx_config_get(cfg, "unroll"),
    .contiguous = mfx_config_get(cfg, "contiguous") == 1,
    .double_buffer = mfx_config_get(cfg, "double_buffer") == 1,
    .n_staged = 2, .staged = {{t->X, 'x'}, {t->packed != NULL ? t->packed : t->W, 'y'}},
  };
}

static mfx_status linear_schedule_gpu_split(mfx_schedule *s, const mfx_linear_parts *t,
                                            const mfx_gpu_split *g, const mfx_config *cfg) {
  int64_t threads = mfx_config_get(cfg, "threads");
  if (t->packed != NULL) MFX_TRY(mfx_gpu_apply_elementwise(s, t->packed, threads));
  mfx_gpu_tiled_reduce p = linear_gpu_tiles(t, cfg);
  return mfx_gpu_apply_split(s, t->Y, g, &p, threads);
}

mfx_status mfx_linear_schedule_gpu(mfx_schedule *s, const mfx_linear_parts *t,
                                   const mfx_config *cfg) {
  mfx_gpu_split whole = {.pieces = 1};
  return linear_schedule_gpu_split(s, t, &whole, cfg);
}

/* GPU split-K pieces: auto keeps >= 128 terms a piece, so that the partial
 * sums (8 bytes of traffic per output and piece) stay small next to the
 * 2 x 128 FLOPs each stands for. */
#define LINEAR_GPU_MIN_CHUNK 128

/* Split-K pieces for the GPU config's block tile (the split_k knob, or auto). */
static int64_t linear_gpu_pieces(const int64_t *dims, const mfx_config *cfg) {
  int64_t bm = mfx_config_get(cfg, "block_m"), bn = mfx_config_get(cfg, "block_n");
  int64_t tiles = bm < 1 || bn < 1 ? 1
                                   : ((dims[LINEAR_M] + bm - 1) / bm) *
                                         ((dims[LINEAR_N] + bn - 1) / bn);
  return mfx_gpu_split_pieces(mfx_config_get(cfg, "split_k"), tiles, dims[LINEAR_K],
                              mfx_config_get(cfg, "block_k"), LINEAR_GPU_MIN_CHUNK);
}

/* GPU tensor cores (knob mma 1): Y straight from X and W, no packing; with
 * split_k the MMAs write the pieces' partial sums, summed as without mma. */
static mfx_status linear_build_mma(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                   mfx_schedule **out) {
  mfx_linear_parts t;
  MFX_TRY(mfx_linear_te(a, dims, 0, 1, &t));
  int64_t bk = mfx_config_get(cfg, "block_k");
  mfx_gpu_split g;
  MFX_TRY(mfx_gpu_split_reduction(a, t.Y, 0, linear_gpu_pieces(dims, cfg), bk, &g));
  MFX_TRY(mfx_sched_create(a, 2, (mfx_tensor *[]){t.X, t.W}, 1, &t.Y, out));
  mfx_gpu_mma_tiles tiles = {"linear", mfx_config_get(cfg, "block_m"),
                             mfx_config_get(cfg, "block_n"), bk, mfx_config_get(cfg, "threads")};
  return mfx_gpu_apply_mma(*out, t.Y, t.X, t.W, &g, &tiles);
}

static mfx_status linear_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                   mfx_schedule **out) {
  mfx_linear_gpu_knobs k; /* checks the config holds linear's GPU knobs */
  MFX_TRY(mfx_linear_gpu_knobs_read(cfg, "linear (GPU)", &k));
  mfx_linear_parts t;
  if (mfx_config_get(cfg, "mma") == 1) return linear_build_mma(a, dims, cfg, out);
  MFX_TRY(mfx_linear_te(a, dims, k.pack, 1, &t));
  mfx_gpu_split g;
  MFX_TRY(mfx_gpu_split_reduction(a, t.Y, 0, linear_gpu_pieces(dims, cfg),
                                  mfx_config_get(cfg, "block_k"), &g));
  MFX_TRY(mfx_sched_create(a, 2, (mfx_tensor *[]){t.X, t.W}, 1, &t.Y, out));
  return linear_schedule_gpu_split(*out, &t, &g, cfg);
}

/* The tolerance a config's results need: the tensor-core form (mma=1) rounds
 * X and W to TF32 (10 mantissa bits), each input within 2^-11 relative;
 * over K terms of random signs the errors add up like the sum itself, so
 * the worst element stays near 2^-11 of max|ref| (tests/test_gpu_mma.c
 * checks the elementwise bound): 4e-3 relative to max|ref| leaves 8x of
 * margin. The f32 forms need nothing beyond a check's own. */
#define LINEAR_TF32_TOL 4e-3
static double linear_float_tolerance(const mfx_config *cfg) {
  return mfx_config_get(cfg, "mma") == 1 ? LINEAR_TF32_TOL : 0.0;
}

const mfx_op mfx_op_def_linear = {
  MFX_OP_LISTED(linear),
  .about = "dense layer Y = X W^T in f32 (the multiplication expert)",
  MFX_OP_IO(linear),
  MFX_LINEAR_KNOB_TABLES(MFX_KNOB_LOCAL,
                         "threads per block of the packing kernel and of the sum of split_k pieces",
                         4, MFX_LINEAR_GPU_EXTRA),
  .build = linear_build,
  .build_gpu = linear_build_gpu,
  .float_tolerance = linear_float_tolerance,
};
