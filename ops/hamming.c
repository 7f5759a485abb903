/* hamming: similarity of packed binary codes, xor plus popcount.
 *   S[n, m] = 32 W - 2 popcount(Q[n] xor K[m])   over W words of 32 bits
 * computed as one reduction: sum_w (32 - (popcount(Q[n,w] ^ K[m,w]) << 1)).
 * Template: K packed as KT[w, m] so that a vector runs over m, then a
 * register tile of tile_n rows of Q by tile_m vector columns. */
#include "ops_internal.h"

enum { HAMMING_N, HAMMING_M, HAMMING_W };

static mfx_status hamming_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                mfx_schedule **out) {
  int64_t N = dims[HAMMING_N], M = dims[HAMMING_M], W = dims[HAMMING_W];
  int pack = (int)mfx_config_get(cfg, "pack");
  int parallel = (int)mfx_config_get(cfg, "parallel");
  mfx_tensor *Q = mfx_placeholder(a, "Q", MFX_U32, 2, (int64_t[]){N, W});
  mfx_tensor *K = mfx_placeholder(a, "K", MFX_U32, 2, (int64_t[]){M, W});
  mfx_tensor *S = mfx_compute_begin(a, "S", MFX_I32, 2, (int64_t[]){N, M},
                                    (const char *[]){"i", "j"});
  if (!Q || !K || !S) return mfx_fail_context(MFX_ERR_INVALID, "hamming: tensors");
  mfx_tensor *KT = NULL;
  if (pack) MFX_TRY(mfx_tmpl_transpose(a, "KT", K, (const char *[]){"w", "m"}, &KT));
  mfx_var *w = mfx_var_create(a, "w", W, 1);
  mfx_expr *ww = mfx_var_ref(a, w), *j = mfx_tmpl_axis(a, S, 1);
  mfx_expr *q = mfx_tmpl_load2(a, Q, mfx_tmpl_axis(a, S, 0), ww);
  mfx_expr *k = pack ? mfx_tmpl_load2(a, KT, ww, j) : mfx_tmpl_load2(a, K, j, ww);
  mfx_expr *bits = mfx_cast(a, MFX_I32, mfx_unary(a, MFX_POPCOUNT, mfx_binary(a, MFX_XOR, q, k)));
  mfx_expr *term = mfx_sub(a, mfx_int(a, MFX_I32, 32),
                           mfx_binary(a, MFX_SHL, bits, mfx_int(a, MFX_I32, 1)));
  MFX_TRY(mfx_tmpl_set_body(a, S, mfx_reduce(a, MFX_REDUCE_SUM, 1, &w, term)));

  MFX_TRY(mfx_schedule_create(a, 2, (mfx_tensor *[]){Q, K}, 1, &S, out));
  if (KT != NULL) MFX_TRY(mfx_tmpl_apply_elementwise(*out, KT, 8, 0, parallel));
  mfx_tmpl_tiled_reduce p = {
    .x = "i", .y = "j", .r = "w",
    .fx = mfx_config_get(cfg, "tile_n"), .fy = mfx_config_get(cfg, "tile_m"),
    .fr = mfx_config_get(cfg, "tile_w"),
    .vec = (int)mfx_config_get(cfg, "vec"), .unroll = (int)mfx_config_get(cfg, "unroll"),
    .parallel = parallel, .local = (int)mfx_config_get(cfg, "local"),
    .cols_outer = (int)mfx_config_get(cfg, "cols_outer"),
  };
  return mfx_tmpl_apply_tiled_reduce(*out, S, &p);
}

const mfx_op mfx_op_def_hamming = {
  .name = "hamming",
  .about = "Hamming similarity of packed binary codes: S = 32W - 2 popcount(Q xor K)",
  .n_dims = 3,
  .dims = {"N", "M", "W"},
  .n_inputs = 2,
  .inputs = {
    {"Q", MFX_U32, 2, {"N", "W"}, "query codes, bit j of word w is code bit 32w+j"},
    {"K", MFX_U32, 2, {"M", "W"}, "key codes, same packing"},
  },
  .n_outputs = 1,
  .outputs = {{"S", MFX_I32, 2, {"N", "M"}, "S[n,m] = 32W - 2 popcount(Q[n] xor K[m])"}},
  .n_knobs = 9,
  .knobs = {
    {"tile_n", "query rows per register tile (unrolled)", 4, 4, {1, 2, 4, 8}},
    {"tile_m", "key columns per register tile (the vector loop)", 16, 3, {8, 16, 32}},
    {"tile_w", "split of the reduction over words (0: none)", 0, 3, {0, 4, 16}},
    {"vec", "vectorize over keys", 1, 2, {0, 1}},
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},
    {"parallel", "run the tiles on the thread pool", 1, 2, {0, 1}},
    {"local", "accumulate the tile in registers (local buffer)", 1, 2, {0, 1}},
    {"pack", "K transposed to KT[w,m] (keys contiguous)", 1, 2, {0, 1}},
    {"cols_outer", "key tiles outside query tiles (a KT panel stays in cache)", 0, 2, {0, 1}},
  },
  .build = hamming_build,
  .reference = mfx_ref_hamming,
  .random_input = mfx_random_hamming,
};
