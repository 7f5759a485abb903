/* shift_linear16's pieces, for the ops built on it (fused16.c): its tensor
 * expressions with the caller's X, its CPU and GPU templates and its knob
 * tables. ops/shift_linear16.c says what the op computes and how. */
#ifndef MFX_OPS_SHIFT16_H
#define MFX_OPS_SHIFT16_H

#include "knobs.h"

/* The largest K: |Y| <= K * 8192 must fit i32 (checked by mfx_s16_te). */
#define MFX_SHIFT16_K_MAX (((int64_t)1 << 18) - 1)

typedef struct {
  mfx_tensor *X, *S, *G;
  mfx_tensor *XR;           /* what the reduction reads: X, or XP (X padded to Kp) */
  mfx_tensor *ST, *ZM, *NM; /* the i16 weight stages: shift, non-zero mask, negative mask */
  mfx_tensor *ACC, *CNT, *Y; /* Y = ACC + CNT[j] */
  int64_t panel;            /* > 0: panels [N/P, Kp, P]; 0: [Kp, N] */
  int64_t block;            /* k per i16 block sum */
} mfx_s16_parts;

/* The tensor expressions over dims M, N, K: X is the caller's (an i16 [M, K]
 * stage) when p->X is set on entry, else the placeholder "X"; S and G
 * placeholders. panel: the CPU's weight panel width (tile_n), 0 on a GPU;
 * pad_x: X read through XP when K is not a whole number of blocks (GPU).
 * Refuses K > MFX_SHIFT16_K_MAX. */
mfx_status mfx_s16_te(mfx_arena *a, const int64_t *dims, int64_t panel, int pad_x,
                      mfx_s16_parts *p);
/* The CPU template with the knobs of MFX_S16_KNOBS: weights, CNT, ACC (not
 * Y, left to the caller: an epilogue or inlined into one). */
mfx_status mfx_s16_schedule(mfx_schedule *s, const mfx_s16_parts *p, const mfx_config *cfg,
                            const char *what);
/* The GPU template (MFX_S16_GPU_KNOBS): weights, CNT, XP, ACC, and Y one
 * element per thread when with_y (else left to the caller). */
mfx_status mfx_s16_schedule_gpu(mfx_schedule *s, const mfx_s16_parts *p, const mfx_config *cfg,
                                const char *what, int with_y);

/* The knob tables, as designated initializers of an mfx_op: cols_outer's
 * default, then extra_n knobs (the rest of the arguments) after the CPU ones. */
#define MFX_S16_KNOBS(cols_outer_default, extra_n, ...)                                    \
  .n_knobs = 7 + (extra_n),                                                                \
  .knobs = {                                                                               \
    {"tile_m", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},             \
    {"tile_n", "columns of the register tile and weight panel (the vector loop, i16 lanes)", \
     32, 3, {16, 32, 64}},                                                                 \
    {"tile_k", "split of the reduction, in blocks of 4 k (0: none)", 0, 4, {0, 4, 16, 64}}, \
    {"vec", "vectorize the tile's columns", 1, 2, {0, 1}},                                 \
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},                                    \
    MFX_KNOB_PARALLEL,                                                                     \
    {"cols_outer", "column tiles outside row tiles (weights stay in cache)",              \
     cols_outer_default, 2, {0, 1}},                                                       \
    __VA_ARGS__                                                                            \
  }

#define MFX_S16_GPU_KNOBS                                                                  \
  .n_gpu_knobs = 8,                                                                        \
  .gpu_knobs = {                                                                           \
    {"block_m", "rows of Y per thread block", 128, 4, {16, 32, 64, 128}},                  \
    {"block_n", "columns of Y per thread block", 64, 4, {16, 32, 64, 128}},                \
    {"thread_m", "rows per thread (register tile, strided by the block's thread rows)", 8, 4, \
     {1, 2, 4, 8}},                                                                        \
    {"thread_n", "columns per thread (register tile, strided: stores coalesce)", 4, 4,     \
     {1, 2, 4, 8}},                                                                        \
    {"block_k", "reduction step in blocks of 4 k: the X and weight tiles staged per step", \
     4, 4, {1, 2, 4, 8}},                                                                  \
    {"shared", "stage the X and weight tiles in shared memory", 1, 2, {0, 1}},             \
    MFX_GPU_KNOB_UNROLL,                                                                   \
    {"threads", "threads per block of the weight, count and add kernels", 256, 4,          \
     {64, 128, 256, 512}},                                                                 \
  }

#endif
