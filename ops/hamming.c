/* hamming: similarity of packed binary codes, xor plus popcount.
 *   S[n, m] = 32 W - 2 popcount(Q[n] xor K[m])   over W words of 32 bits
 * computed as one reduction: sum_w (32 - (popcount(Q[n,w] ^ K[m,w]) << 1)).
 * hamming16: the same scores as i16 (half the bytes written, the bound of
 * the GPU kernel): every partial sum over w words lies in [-32 w, 32 w], so
 * an i16 accumulator is exact for W <= 1023; larger W is refused.
 * Template: K packed as KT[w, m] so that a vector runs over m, then a
 * register tile of tile_n rows of Q by tile_m vector columns. */
#include "knobs.h"

enum { HAMMING_N, HAMMING_M, HAMMING_W };

typedef struct {
  mfx_tensor *Q, *K, *KT, *S; /* KT: NULL without pack */
} hamming_te;

/* The tensor expressions and the (unscheduled) schedule. */
static mfx_status hamming_define(mfx_arena *a, const int64_t *dims, int pack, mfx_dtype out_type,
                                 hamming_te *t, mfx_schedule **out) {
  int64_t N = dims[HAMMING_N], M = dims[HAMMING_M], W = dims[HAMMING_W];
  t->Q = mfx_placeholder(a, "Q", MFX_U32, 2, (int64_t[]){N, W});
  t->K = mfx_placeholder(a, "K", MFX_U32, 2, (int64_t[]){M, W});
  t->S = mfx_compute_begin(a, "S", out_type, 2, (int64_t[]){N, M}, (const char *[]){"i", "j"});
  if (!t->Q || !t->K || !t->S) return mfx_fail_context(MFX_ERR_INVALID, "hamming: tensors");
  t->KT = NULL;
  if (pack) MFX_TRY(mfx_tmpl_transpose(a, "KT", t->K, (const char *[]){"w", "m"}, &t->KT));
  mfx_var *w = mfx_var_create(a, "w", W, 1);
  mfx_expr *ww = mfx_var_ref(a, w), *j = mfx_tmpl_axis(a, t->S, 1);
  mfx_expr *q = mfx_tmpl_load2(a, t->Q, mfx_tmpl_axis(a, t->S, 0), ww);
  mfx_expr *k = pack ? mfx_tmpl_load2(a, t->KT, ww, j) : mfx_tmpl_load2(a, t->K, j, ww);
  mfx_expr *bits = mfx_cast(a, MFX_I32, mfx_unary(a, MFX_POPCOUNT, mfx_binary(a, MFX_XOR, q, k)));
  mfx_expr *term = mfx_sub(a, mfx_int(a, MFX_I32, 32),
                           mfx_binary(a, MFX_SHL, bits, mfx_int(a, MFX_I32, 1)));
  if (out_type != MFX_I32) term = mfx_cast(a, out_type, term);
  MFX_TRY(mfx_tmpl_set_body(a, t->S, mfx_reduce(a, MFX_REDUCE_SUM, 1, &w, term)));
  return mfx_sched_create(a, 2, (mfx_tensor *[]){t->Q, t->K}, 1, &t->S, out);
}

#define HAMMING_CPU_KNOBS(X) \
  X(tile_n) X(tile_m) X(tile_w) X(vec) X(unroll) X(parallel) X(local) X(pack) X(cols_outer)
MFX_KNOB_VIEW(hamming_knobs, HAMMING_CPU_KNOBS)
#define HAMMING_GPU_KNOBS(X) \
  X(block_n) X(block_m) X(thread_n) X(thread_m) X(block_w) X(shared) X(unroll) X(pack) X(threads)
MFX_KNOB_VIEW(hamming_gpu_knobs, HAMMING_GPU_KNOBS)

static mfx_status hamming_build_as(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                   mfx_dtype out_type, mfx_schedule **out) {
  hamming_knobs k;
  MFX_TRY(hamming_knobs_read(cfg, "hamming", &k));
  int parallel = (int)k.parallel;
  hamming_te t;
  MFX_TRY(hamming_define(a, dims, (int)k.pack, out_type, &t, out));
  if (t.KT != NULL) MFX_TRY(mfx_tmpl_apply_transpose(*out, t.KT, 16, parallel));
  mfx_tmpl_tiled_reduce p = {
    .x = "i", .y = "j", .r = "w",
    .fx = k.tile_n, .fy = k.tile_m, .fr = k.tile_w,
    .vec = (int)k.vec, .unroll = (int)k.unroll,
    .parallel = parallel, .local = (int)k.local,
    .cols_outer = (int)k.cols_outer,
  };
  return mfx_tmpl_apply_tiled_reduce(*out, t.S, &p);
}

/* GPU: KT[w, m] (pack) in its own kernel, then blocks of query rows by key
 * columns with the Q and K(T) words staged in shared memory: xor, popcount,
 * shift and add, no multiplication. */
static mfx_status hamming_build_gpu_as(mfx_arena *a, const int64_t *dims,
                                       const mfx_config *cfg, mfx_dtype out_type,
                                       mfx_schedule **out) {
  hamming_gpu_knobs k;
  MFX_TRY(hamming_gpu_knobs_read(cfg, "hamming (GPU)", &k));
  hamming_te t;
  MFX_TRY(hamming_define(a, dims, (int)k.pack, out_type, &t, out));
  if (t.KT != NULL) MFX_TRY(mfx_gpu_apply_elementwise(*out, t.KT, k.threads));
  mfx_gpu_tiled_reduce p = {
    .what = "hamming", .x = "i", .y = "j", .r = "w",
    .bx = k.block_n, .by = k.block_m, .tx = k.thread_n, .ty = k.thread_m, .br = k.block_w,
    .shared = (int)k.shared, .unroll = (int)k.unroll, .unguarded = 1,
    .n_staged = 2, .staged = {{t.Q, 'x'}, {t.KT != NULL ? t.KT : t.K, 'y'}},
  };
  return mfx_gpu_apply_tiled_reduce(*out, t.S, &p);
}

static mfx_status hamming_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                mfx_schedule **out) {
  return hamming_build_as(a, dims, cfg, MFX_I32, out);
}

static mfx_status hamming_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    mfx_schedule **out) {
  return hamming_build_gpu_as(a, dims, cfg, MFX_I32, out);
}

/* |S| <= 32 W <= INT16_MAX: W at most 1023 words (32,736 code bits). */
#define HAMMING16_MAX_W 1023

static mfx_status hamming16_check(const int64_t *dims) {
  if (dims[HAMMING_W] <= HAMMING16_MAX_W) return MFX_OK;
  return mfx_fail(MFX_ERR_INVALID,
                  "hamming16: W = %lld words: scores reach 32 W = %lld, past the i16 range "
                  "(W at most %d); use hamming (i32 scores)", (long long)dims[HAMMING_W],
                  (long long)(32 * dims[HAMMING_W]), HAMMING16_MAX_W);
}

static mfx_status hamming16_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                  mfx_schedule **out) {
  MFX_TRY(hamming16_check(dims));
  return hamming_build_as(a, dims, cfg, MFX_I16, out);
}

static mfx_status hamming16_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                      mfx_schedule **out) {
  MFX_TRY(hamming16_check(dims));
  return hamming_build_gpu_as(a, dims, cfg, MFX_I16, out);
}

/* The knobs of hamming and hamming16 (one template). */
#define HAMMING_KNOB_TABLES \
  .n_knobs = 9, \
  .knobs = { \
    {"tile_n", "query rows per register tile (unrolled)", 4, 4, {1, 2, 4, 8}}, \
    {"tile_m", "key columns per register tile (the vector loop)", 16, 3, {8, 16, 32}}, \
    {"tile_w", "split of the reduction over words (0: none)", 0, 3, {0, 4, 16}}, \
    {"vec", "vectorize over keys", 1, 2, {0, 1}}, \
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}}, \
    MFX_KNOB_PARALLEL, \
    MFX_KNOB_LOCAL, \
    {"pack", "K transposed to KT[w,m] (keys contiguous)", 1, 2, {0, 1}}, \
    {"cols_outer", "key tiles outside query tiles (a KT panel stays in cache)", 0, 2, {0, 1}}, \
  }, \
  .n_gpu_knobs = 9, \
  .gpu_knobs = { \
    {"block_n", "query rows per thread block", 64, 4, {16, 32, 64, 128}}, \
    {"block_m", "key columns per thread block", 64, 4, {16, 32, 64, 128}}, \
    {"thread_n", "query rows per thread (register tile, strided)", 4, 4, {1, 2, 4, 8}}, \
    {"thread_m", "key columns per thread (register tile, strided: stores coalesce)", 4, 4, \
     {1, 2, 4, 8}}, \
    {"block_w", "words per reduction step: the Q and K tiles staged per step", 8, 5, \
     {1, 2, 4, 8, 16}}, \
    {"shared", "stage the Q and K tiles in shared memory", 1, 2, {0, 1}}, \
    MFX_GPU_KNOB_UNROLL, \
    {"pack", "K transposed to KT[w,m] first (its own kernel): shared rows of keys", 1, 2, \
     {0, 1}}, \
    {"threads", "threads per block of the packing kernel", 256, 4, {64, 128, 256, 512}}, \
  }

const mfx_op mfx_op_def_hamming = {
  MFX_OP_LISTED(hamming),
  .about = "Hamming similarity of packed binary codes: S = 32W - 2 popcount(Q xor K)",
  MFX_OP_IO(hamming),
  HAMMING_KNOB_TABLES,
  .build = hamming_build,
  .build_gpu = hamming_build_gpu,
};

const mfx_op mfx_op_def_hamming16 = {
  MFX_OP_LISTED(hamming16),
  .about = "hamming with i16 scores (half the bytes written), for W <= 1023 words",
  MFX_OP_IO(hamming16),
  HAMMING_KNOB_TABLES,
  .build = hamming16_build,
  .build_gpu = hamming16_build_gpu,
};
