/* Knobs, once: the knob tables that several ops share, and typed views a
 * template reads its knobs through.
 *
 * A view is a struct with one int64_t field per knob a template reads,
 * filled once from the (complete, validated) config by view_read, which
 * refuses a knob the config lacks (a misspelled name, or a knob missing
 * from the op's table) with MFX_ERR_INVALID naming the template and the
 * knob, instead of the -1 of mfx_config_get:
 *
 *   #define MY_KNOBS(X) X(tile_m) X(vec)
 *   MFX_KNOB_VIEW(my_knobs, MY_KNOBS)
 *   ...
 *   my_knobs k;
 *   MFX_TRY(my_knobs_read(cfg, "my_op", &k));      then k.tile_m, k.vec */
#ifndef MFX_OPS_KNOBS_H
#define MFX_OPS_KNOBS_H

#include <string.h>

#include "ops_internal.h"

#define MFX_KNOB_VIEW_FIELD(k) int64_t k;
#define MFX_KNOB_VIEW_NAME(k) #k,
#define MFX_KNOB_VIEW(view, FIELDS)                                                        \
  typedef struct {                                                                         \
    FIELDS(MFX_KNOB_VIEW_FIELD)                                                            \
  } view;                                                                                  \
  static inline mfx_status view##_read(const mfx_config *cfg, const char *what, view *out) { \
    static const char *const names[] = {FIELDS(MFX_KNOB_VIEW_NAME)};                       \
    enum { n = (int)(sizeof names / sizeof names[0]) };                                    \
    _Static_assert(sizeof(view) == n * sizeof(int64_t), "a knob view holds int64_t only"); \
    int64_t values[n];                                                                     \
    MFX_TRY(mfx_config_read(cfg, what, n, names, values));                                 \
    memcpy(out, values, sizeof *out);                                                      \
    return MFX_OK;                                                                         \
  }

/* ---- the views of the templates that several files share ------------------------------ */

/* linear and linear_gelu (linear.c, fused.c). */
#define MFX_LINEAR_CPU_KNOBS(X) \
  X(tile_m) X(tile_n) X(tile_k) X(vec) X(unroll) X(parallel) X(local) X(pack) X(cols_outer)
MFX_KNOB_VIEW(mfx_linear_knobs, MFX_LINEAR_CPU_KNOBS)
#define MFX_LINEAR_GPU_KNOBS(X) \
  X(block_m) X(block_n) X(thread_m) X(thread_n) X(block_k) X(shared) X(unroll) X(pack) X(threads)
MFX_KNOB_VIEW(mfx_linear_gpu_knobs, MFX_LINEAR_GPU_KNOBS)

/* shift_linear and its fused forms (shift_linear.c, fused.c). */
#define MFX_SHIFT_CPU_KNOBS(X)                                                             \
  X(tile_m) X(tile_n) X(tile_k) X(vec) X(unroll) X(parallel) X(local) X(pack) X(form)      \
  X(cols_outer)
MFX_KNOB_VIEW(mfx_shift_knobs, MFX_SHIFT_CPU_KNOBS)
#define MFX_SHIFT_GPU_KNOBS(X)                                                             \
  X(block_m) X(block_n) X(thread_m) X(thread_n) X(block_k) X(shared) X(unroll) X(pack)     \
  X(form) X(threads)
MFX_KNOB_VIEW(mfx_shift_gpu_knobs, MFX_SHIFT_GPU_KNOBS)

/* Templates with one elementwise stage (elementwise.c, gather.c). */
#define MFX_EW_CPU_KNOBS(X) X(vector) X(vec) X(parallel)
MFX_KNOB_VIEW(mfx_ew_knobs, MFX_EW_CPU_KNOBS)
#define MFX_EW_GPU_KNOBS(X) X(threads)
MFX_KNOB_VIEW(mfx_ew_gpu_knobs, MFX_EW_GPU_KNOBS)

/* ---- knob table entries that several ops share ------------------------------------------ */

/* The flags of a register-tiled reduction (mfx_tmpl_tiled_reduce). */
#define MFX_KNOB_PARALLEL {"parallel", "run the tiles on the thread pool", 1, 2, {0, 1}}
#define MFX_KNOB_LOCAL {"local", "accumulate the tile in registers (local buffer)", 1, 2, {0, 1}}
/* local fixed at 1: a fused epilogue runs at the local tile's write-back. */
#define MFX_KNOB_LOCAL_FIXED \
  {"local", "accumulate the tile in registers (needed: the epilogue runs at write-back)", 1, 1, {1}}
#define MFX_GPU_KNOB_UNROLL {"unroll", "unroll the register tile", 1, 2, {0, 1}}

/* The GPU block and thread tiles of a 2-D reduction with rows M, columns N
 * and reduction K (linear, shift_linear and their fused forms). */
#define MFX_GPU_KNOBS_MNK(staged)                                                           \
  {"block_m", "rows of Y per thread block", 128, 4, {16, 32, 64, 128}},                     \
  {"block_n", "columns of Y per thread block", 64, 4, {16, 32, 64, 128}},                   \
  {"thread_m", "rows per thread (register tile, strided by the block's thread rows)", 8, 4, \
   {1, 2, 4, 8}},                                                                           \
  {"thread_n", "columns per thread (register tile, strided: stores coalesce)", 4, 4,        \
   {1, 2, 4, 8}},                                                                           \
  {"block_k", "reduction step: the " staged " tiles staged per step", 16, 5,                \
   {4, 8, 16, 32, 64}},                                                                     \
  {"shared", "stage the " staged " tiles in shared memory", 1, 2, {0, 1}},                  \
  MFX_GPU_KNOB_UNROLL

/* GPU knobs only the unfused reductions have (linear.c, shift_linear.c):
 * split-K pieces and contiguous thread tiles. */
#define MFX_GPU_KNOB_SPLIT_K                                                                \
  {"split_k", "pieces of the reduction over K, each on its own blocks, then summed by a "   \
   "second kernel (0: auto, the fewest for two waves on 132 SMs, >= 128 terms a piece)", 0, \
   8, {0, 1, 2, 4, 8, 16, 32, 64}}
/* GPU knobs whose non-zero values need an arch (ops/kernel.c refuses them
 * for an older cuda:sm_XX before building; the tuner's space of such a
 * device thereby leaves them out): the knob and the first sm. */
#define MFX_GPU_KNOBS_MIN_SM {{"mma", 80}, {"double_buffer", 80}}
#define MFX_GPU_KNOB_DOUBLE_BUFFER                                                          \
  {"double_buffer", "sm_80+, with shared=1: two shared tiles per staged tensor, the next "  \
   "step's copied by cp.async while this one computes, one barrier per step", 0, 2, {0, 1}}
#define MFX_LINEAR_GPU_EXTRA                                                                \
  MFX_GPU_KNOB_SPLIT_K,                                                                     \
  {"contiguous", "thread tiles: 0 strided by the threads, 1 a thread's rows and columns "   \
   "side by side (its shared loads merge into ld.shared.v4)", 0, 2, {0, 1}},               \
  {"mma", "tensor cores (sm_80+): 1 mma.sync m16n8k8 TF32 (inputs rounded to 10 mantissa "  \
   "bits), a warp per 32x32 tile, X and W read unpacked, split_k as without; thread_m/n, " \
   "contiguous, pack, unroll and double_buffer do not apply", 0, 2, {0, 1}},               \
  MFX_GPU_KNOB_DOUBLE_BUFFER,
#define MFX_SHIFT_GPU_EXTRA                                                                 \
  MFX_GPU_KNOB_SPLIT_K,                                                                     \
  {"contiguous", "thread tiles: 0 strided by the threads, 1 a thread's columns side by "    \
   "side", 0, 2, {0, 1}},                                                                   \
  MFX_GPU_KNOB_DOUBLE_BUFFER,
#define MFX_NO_GPU_EXTRA

/* linear's knobs (linear.c; linear_gelu in fused.c with MFX_KNOB_LOCAL_FIXED). */
#define MFX_LINEAR_KNOB_TABLES(local_knob, threads_about, gpu_extra_n, gpu_extra)           \
  .n_knobs = 9,                                                                             \
  .knobs = {                                                                                \
    {"tile_m", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},              \
    {"tile_n", "columns of the register tile (the vector loop)", 32, 3, {8, 16, 32}},       \
    {"tile_k", "split of the reduction (0: none)", 0, 5, {0, 16, 64, 128, 256}},            \
    {"vec", "vectorize the tile's columns", 1, 2, {0, 1}},                                  \
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},                                     \
    MFX_KNOB_PARALLEL,                                                                      \
    local_knob,                                                                             \
    {"pack", "W layout: 0 as given, 1 transposed WT[k,n], 2 panels WP[n/tn,k,tn]", 2, 3,    \
     {0, 1, 2}},                                                                            \
    {"cols_outer", "column tiles outside row tiles (a W panel stays in cache)", 1, 2,       \
     {0, 1}},                                                                               \
  },                                                                                        \
  .n_gpu_knobs = 9 + (gpu_extra_n),                                                         \
  .gpu_knobs = {                                                                            \
    MFX_GPU_KNOBS_MNK("X and W"),                                                           \
    {"pack", "W transposed to WT[k,n] first (its own kernel): shared rows of n", 1, 2,      \
     {0, 1}},                                                                               \
    {"threads", threads_about, 256, 4, {64, 128, 256, 512}},                                \
    gpu_extra                                                                               \
  }

/* shift_linear's knobs (shift_linear.c; its fused forms in fused.c with
 * MFX_KNOB_LOCAL_FIXED and extra_n more CPU knobs after them). */
#define MFX_SHIFT_KNOB_TABLES(local_knob, threads_about, gpu_extra_n, gpu_extra, extra_n, ...) \
  .n_knobs = 10 + (extra_n),                                                                \
  .knobs = {                                                                                \
    {"tile_m", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},              \
    {"tile_n", "columns of the register tile (the vector loop)", 16, 3, {8, 16, 32}},       \
    {"tile_k", "split of the reduction (0: none)", 0, 4, {0, 16, 64, 256}},                 \
    {"vec", "vectorize the tile's columns", 1, 2, {0, 1}},                                  \
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},                                     \
    MFX_KNOB_PARALLEL,                                                                      \
    local_knob,                                                                             \
    {"pack", "weights: 0 as given, 1 i8 [k,n], 2 i32 panels [n/tn,k,tn] of the tile's width", \
     2, 3, {0, 1, 2}},                                                                      \
    {"form", "0: select chain, 1: and/xor masks plus a count of negative signs", 1, 2,      \
     {0, 1}},                                                                               \
    {"cols_outer", "column tiles outside row tiles (weights stay in cache)", 1, 2, {0, 1}}, \
    __VA_ARGS__                                                                             \
  },                                                                                        \
  .n_gpu_knobs = 10 + (gpu_extra_n),                                                        \
  .gpu_knobs = {                                                                            \
    MFX_GPU_KNOBS_MNK("X and weight"),                                                      \
    {"pack", "weights as i8 [k,n] copies first (their own kernels)", 1, 2, {0, 1}},         \
    {"form", "0: select chain, 1: and/xor masks plus a count of negative signs, 2: shift "  \
     "and sign packed in one byte, sign by and/xor/subtract (no count), 3: the packed byte, " \
     "sign by and/xor, the count of negative signs added at write-back", 3, 4,              \
     {0, 1, 2, 3}},                                                                        \
    {"threads", threads_about, 256, 4, {64, 128, 256, 512}},                                \
    gpu_extra                                                                               \
  }

#endif
