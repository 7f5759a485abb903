/* matadd (binary linear attention's KV product): additions selected by bits.
 *   O[b, h, c, d] = sum_n Hc[b, h, n, c] V[b, h, n, d]     (codes 0/1)
 * Multiplication-free: each term is select(Hc != 0, V, -0.0); -0.0, not 0.0,
 * is the exact identity of float addition, so the compiler may turn
 * "acc + select" into a masked add (acc + 0.0 would change acc = -0.0).
 * Template: a register tile of tile_c codes by tile_d vector columns of d
 * (contiguous in V and O), accumulated locally over n.
 * The code of a term is the same for every column of d: the vector select
 * takes it broadcast to every lane (compiler/codegen_llvm.c), so the term
 * becomes a compare to a mask and a masked add, not a branch per term. */
#include "knobs.h"

enum { MATADD_B, MATADD_H, MATADD_N, MATADD_D, MATADD_C };

typedef struct {
  mfx_tensor *Hc, *V, *O;
} matadd_te;

mfx_status mfx_matadd_te(mfx_arena *a, mfx_tensor *Hc, mfx_tensor *V, const int64_t *dims,
                         const char *name, mfx_tensor **out) {
  int64_t B = dims[MATADD_B], H = dims[MATADD_H], N = dims[MATADD_N];
  int64_t D = dims[MATADD_D], C = dims[MATADD_C];
  mfx_tensor *O = mfx_compute_begin(a, name, MFX_F32, 4, (int64_t[]){B, H, C, D},
                                    (const char *[]){"b", "h", "c", "d"});
  if (O == NULL) return mfx_fail_context(MFX_ERR_INVALID, "matadd: %s", name);
  mfx_var *n = mfx_var_create(a, "n", N, 1);
  mfx_expr *b = mfx_tmpl_axis(a, O, 0), *h = mfx_tmpl_axis(a, O, 1);
  mfx_expr *nn = mfx_var_ref(a, n);
  mfx_expr *code = mfx_tmpl_load4(a, Hc, b, h, nn, mfx_tmpl_axis(a, O, 2));
  mfx_expr *v = mfx_tmpl_load4(a, V, b, h, nn, mfx_tmpl_axis(a, O, 3));
  mfx_expr *term = mfx_select(a, mfx_binary(a, MFX_NE, code, mfx_int(a, MFX_I8, 0)), v,
                              mfx_f32(a, -0.0));
  MFX_TRY(mfx_tmpl_set_body(a, O, mfx_reduce(a, MFX_REDUCE_SUM, 1, &n, term)));
  *out = O;
  return MFX_OK;
}

/* The tensor expression. */
static mfx_status matadd_expr(mfx_arena *a, const int64_t *dims, matadd_te *t) {
  int64_t B = dims[MATADD_B], H = dims[MATADD_H], N = dims[MATADD_N];
  int64_t D = dims[MATADD_D], C = dims[MATADD_C];
  t->Hc = mfx_placeholder(a, "Hc", MFX_I8, 4, (int64_t[]){B, H, N, C});
  t->V = mfx_placeholder(a, "V", MFX_F32, 4, (int64_t[]){B, H, N, D});
  if (!t->Hc || !t->V) return mfx_fail_context(MFX_ERR_INVALID, "matadd: tensors");
  return mfx_matadd_te(a, t->Hc, t->V, dims, "O", &t->O);
}

/* The tensor expression and the (unscheduled) schedule. */
static mfx_status matadd_define(mfx_arena *a, const int64_t *dims, matadd_te *t,
                                mfx_schedule **out) {
  MFX_TRY(matadd_expr(a, dims, t));
  return mfx_sched_create(a, 2, (mfx_tensor *[]){t->Hc, t->V}, 1, &t->O, out);
}

#define MATADD_CPU_KNOBS(X) X(tile_c) X(tile_d) X(tile_n) X(vec) X(unroll) X(parallel) X(local)
MFX_KNOB_VIEW(matadd_knobs, MATADD_CPU_KNOBS)
#define MATADD_GPU_KNOBS(X) \
  X(block_c) X(block_d) X(thread_c) X(thread_d) X(block_n) X(shared) X(unroll)
MFX_KNOB_VIEW(matadd_gpu_knobs, MATADD_GPU_KNOBS)

static mfx_status matadd_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                               mfx_schedule **out) {
  matadd_te t;
  matadd_knobs k;
  MFX_TRY(matadd_knobs_read(cfg, "matadd", &k));
  MFX_TRY(matadd_define(a, dims, &t, out));
  mfx_tmpl_tiled_reduce p = {
    .n_outer = 2, .outer = {"b", "h"},
    .x = "c", .y = "d", .r = "n",
    .fx = k.tile_c, .fy = k.tile_d, .fr = k.tile_n,
    .vec = (int)k.vec, .unroll = (int)k.unroll, .parallel = (int)k.parallel, .local = (int)k.local,
  };
  return mfx_tmpl_apply_tiled_reduce(*out, t.O, &p);
}

/* GPU: the code x value tiles (fused) on blockIdx.x, batch and head on
 * blockIdx.z/y, the Hc (i8) and V tiles of block_n tokens staged in shared
 * memory; each term a select of V or -0.0, then an add. O has few elements
 * (C x D a head) and a long reduction over N: split_k cuts N in pieces, each
 * its own blocks (the pieces on blockIdx.y, batch and head fused on
 * blockIdx.z), then a second kernel sums the pieces. */
static mfx_status matadd_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                   mfx_schedule **out) {
  matadd_gpu_knobs k; /* checks the config holds matadd's GPU knobs */
  MFX_TRY(matadd_gpu_knobs_read(cfg, "matadd (GPU)", &k));
  matadd_te t;
  MFX_TRY(matadd_expr(a, dims, &t));
  int64_t bc = mfx_config_get(cfg, "block_c"), bd = mfx_config_get(cfg, "block_d");
  int64_t bn = mfx_config_get(cfg, "block_n");
  int64_t tiles = dims[MATADD_B] * dims[MATADD_H] * ((dims[MATADD_C] + bc - 1) / bc) *
                  ((dims[MATADD_D] + bd - 1) / bd);
  int64_t pieces = mfx_gpu_split_pieces(mfx_config_get(cfg, "split_k"), tiles, dims[MATADD_N], bn, bn);
  mfx_gpu_split g;
  MFX_TRY(mfx_gpu_split_reduction(a, t.O, 2, pieces, bn, &g));
  MFX_TRY(mfx_sched_create(a, 2, (mfx_tensor *[]){t.Hc, t.V}, 1, &t.O, out));
  mfx_gpu_tiled_reduce p = {
    .what = "matadd", .n_outer = 2, .outer = {"b", "h"}, .x = "c", .y = "d", .r = "n",
    .bx = bc, .by = bd,
    .tx = mfx_config_get(cfg, "thread_c"), .ty = mfx_config_get(cfg, "thread_d"), .br = bn,
    .shared = (int)mfx_config_get(cfg, "shared"), .unroll = (int)mfx_config_get(cfg, "unroll"),
    .n_staged = 2, .staged = {{t.Hc, 'x'}, {t.V, 'y'}},
  };
  return mfx_gpu_apply_split(*out, t.O, &g, &p, mfx_config_get(cfg, "threads"));
}

const mfx_op mfx_op_def_matadd = {
  MFX_OP_LISTED(matadd),
  .about = "binary codes times values with additions only: O = Hc^T V per batch and head",
  MFX_OP_IO(matadd),
  .n_knobs = 7,
  .knobs = {
    {"tile_c", "codes per register tile (unrolled)", 8, 4, {1, 2, 4, 8}},
    {"tile_d", "columns of d per register tile (the vector loop)", 32, 4, {8, 16, 32, 64}},
    {"tile_n", "split of the reduction over n (0: none)", 0, 3, {0, 16, 64}},
    {"vec", "vectorize over d in mfx (0: left to LLVM's loop vectorizer)", 1, 2, {0, 1}},
    {"unroll", "unroll the tile's codes", 1, 2, {0, 1}},
    MFX_KNOB_PARALLEL,
    MFX_KNOB_LOCAL,
  },
  .build = matadd_build,
  .n_gpu_knobs = 9,
  .gpu_knobs = {
    {"block_c", "codes per thread block", 16, 4, {8, 16, 32, 64}},
    {"block_d", "columns of d per thread block", 32, 4, {16, 32, 64, 128}},
    {"thread_c", "codes per thread (register tile, strided)", 2, 4, {1, 2, 4, 8}},
    {"thread_d", "columns per thread (register tile, strided: stores coalesce)", 1, 4,
     {1, 2, 4, 8}},
    {"block_n", "tokens per reduction step: the Hc and V tiles staged per step", 8, 5,
     {4, 8, 16, 32, 64}},
    {"shared", "stage the Hc and V tiles in shared memory", 1, 2, {0, 1}},
    MFX_GPU_KNOB_UNROLL,
    {"split_k", "pieces of the reduction over N, each on its own blocks, then summed by a "
     "second kernel (0: auto, the fewest for two waves on 132 SMs, a staging step or more a "
     "piece)", 0, 10, {0, 1, 2, 4, 8, 16, 32, 64, 128, 256}},
    {"threads", "threads per block of the kernel that sums the split_k pieces (C x D x B x H "
     "outputs, few: small blocks spread them over more SMs)", 64, 4, {32, 64, 128, 256}},
  },
  .build_gpu = matadd_build_gpu,
};
