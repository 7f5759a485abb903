/* What the files of ops/ share and nobody else sees: the op definitions, the
 * plain-C references, random fills, and the schedule-template helpers. */
#ifndef MFX_OPS_INTERNAL_H
#define MFX_OPS_INTERNAL_H

#include "mfx/ops.h"

/* ---- the operators: one file each, one row each in op_list.h ---------------- */

/* An op's tensors as mfx_op_tensor (op_list.h's MFX_T rows; the runtime
 * reads the same rows with their value ranges). */
#define MFX_T(name, dtype, shape, about) \
  {name, dtype, MFX_OP_NDIM(shape), MFX_OP_SHAPE shape, about}
#define MFX_T_RANGE(name, dtype, shape, lo, hi, about) MFX_T(name, dtype, shape, about)
#define MFX_T_INDEX(name, shape, rows, about) MFX_T(name, MFX_I32, shape, about)

/* The counts and tolerance of op `name`, from its row in op_list.h:
 * mfx_opl_<name>_n_dims, _n_inputs, _n_outputs, _int_tolerance. */
#define MFX_OP(name, tol, wf, wd, wu)                                                       \
  mfx_opl_##name##_n_dims = MFX_OP_COUNT(const char *, MFX_DIMS_##name),                    \
  mfx_opl_##name##_n_inputs = MFX_OP_COUNT(mfx_op_tensor, MFX_INPUTS_##name),               \
  mfx_opl_##name##_n_outputs = MFX_OP_COUNT(mfx_op_tensor, MFX_OUTPUTS_##name),             \
  mfx_opl_##name##_int_tolerance = (tol),
enum {
#include "op_list.h"
};
#undef MFX_OP

/* Each op's definition (ops/<file>.c), plain-C reference (reference.c,
 * naive, independent of the compiler) and random inputs (random.c). */
#define MFX_OP(name, tol, wf, wd, wu)                                                 \
  extern const mfx_op mfx_op_def_##name;                                              \
  void mfx_ref_##name(const int64_t *dims, const mfx_array *in, mfx_array *out);      \
  void mfx_random_##name(int i, const int64_t *dims, mfx_array *a, uint64_t *rng);
#include "op_list.h"
#undef MFX_OP

/* The fields of mfx_op_def_<name> its row in op_list.h gives: begin the
 * definition with MFX_OP_LISTED(name), MFX_OP_IO(name), then the rest
 * (about, knobs, build). */
#define MFX_OP_LISTED(op)                                                                  \
  .name = #op, .n_dims = mfx_opl_##op##_n_dims, .n_inputs = mfx_opl_##op##_n_inputs,        \
  .n_outputs = mfx_opl_##op##_n_outputs, .int_tolerance = mfx_opl_##op##_int_tolerance,     \
  .reference = mfx_ref_##op, .random_input = mfx_random_##op
/* Its dims and tensors (names, dtypes, shapes, what they hold). */
#define MFX_OP_IO(op)                                                                      \
  .dims = MFX_DIMS_##op, .inputs = MFX_INPUTS_##op, .outputs = MFX_OUTPUTS_##op

/* ---- random fills (random.c) ------------------------------------------------ */

/* f32 uniform in [lo, hi). */
void mfx_fill_uniform_f32(mfx_array *a, uint64_t *rng, float lo, float hi);
/* Integers uniform in [lo, hi], for any integer dtype that holds them. */
void mfx_fill_uniform_int(mfx_array *a, uint64_t *rng, int64_t lo, int64_t hi);

/* ---- schedule-template helpers (template.c) ---------------------------------- */

/* t[i, j] and t[i, j, k, l] as expressions (NULL propagates). */
mfx_expr *mfx_tmpl_load2(mfx_arena *a, mfx_tensor *t, mfx_expr *i, mfx_expr *j);
mfx_expr *mfx_tmpl_load4(mfx_arena *a, mfx_tensor *t, mfx_expr *i, mfx_expr *j,
                         mfx_expr *k, mfx_expr *l);
/* Axis n of a compute as an expression. */
mfx_expr *mfx_tmpl_axis(mfx_arena *a, mfx_tensor *t, int n);
/* Finish a compute, naming it in the message when the body failed to build. */
mfx_status mfx_tmpl_set_body(mfx_arena *a, mfx_tensor *t, mfx_expr *body);
/* The transpose T[j, i] = src[i, j] of a 2-D tensor, as a new compute with
 * axes named by `axes` (T's order). */
mfx_status mfx_tmpl_transpose(mfx_arena *a, const char *name, mfx_tensor *src,
                              const char *const axes[2], mfx_tensor **out);

/* The register-tiled reduction every op here uses:
 *   outer..., x.o, y.o, [r.o, r.i | r], x.i, y.i     (y.o, x.o if cols_outer)
 * x.i unrolled, y.i vectorized (contiguous in memory), the accumulator kept
 * in a local buffer at the innermost outer loop, outer loops fused and run
 * in parallel. Non-dividing tiles are guarded. */
typedef struct {
  int n_outer;                      /* batch axes, outermost first */
  const char *outer[MFX_MAX_DIMS];
  const char *x, *y, *r;            /* rows, vector columns, reduction */
  int64_t fx, fy, fr;               /* tile sizes; fr = 0: r not split */
  int vec, unroll, parallel, local; /* 0/1 each */
  int cols_outer;                   /* column tiles outside row tiles: a panel of
                                     * the column operand stays in cache */
} mfx_tmpl_tiled_reduce;

mfx_status mfx_tmpl_apply_tiled_reduce(mfx_schedule *s, mfx_tensor *t,
                                       const mfx_tmpl_tiled_reduce *p);

/* An elementwise stage: the last axis split by `vector` and vectorized when
 * vec, the axes before it fused and run in parallel when parallel. A stage
 * with a reduction keeps its loops serial and in order (the reduction is
 * innermost, so nothing can be vectorized) and runs its fused spatial axes
 * in parallel. */
mfx_status mfx_tmpl_apply_elementwise(mfx_schedule *s, mfx_tensor *t, int64_t vector,
                                      int vec, int parallel);

/* Panels P[jo, k, ji] of a [rows, k] source: k in blocks of `block`, each
 * source row read along k within a block. */
mfx_status mfx_tmpl_apply_panel(mfx_schedule *s, mfx_tensor *t, int64_t block, int parallel);
/* A 2-D layout stage (a transpose, or any stage whose reads run across its
 * rows) in block x block tiles, block rows in parallel when parallel. */
mfx_status mfx_tmpl_apply_transpose(mfx_schedule *s, mfx_tensor *t, int64_t block,
                                    int parallel);

/* ---- GPU schedule-template helpers (gpu_template.c) ----------------------------- */

/* A tensor a GPU tiled reduction stages in shared memory: its tile spans the
 * block's rows ('x') or columns ('y'), by the reduction step. */
typedef struct {
  mfx_tensor *tensor;
  char spans;
} mfx_gpu_staged;

/* The GPU tiled reduction every op here uses. A block computes bx rows by by
 * columns; a thread tx rows by ty columns of it, strided by the thread count
 * (row xo*bx + xr*(bx/tx) + xt), accumulated in registers; the reduction
 * runs in steps of br with the staged tensors copied to shared memory by the
 * whole block at each step:
 *   [outer...], x.o, y.o, x.t, y.t, r.o, r.i, x.r, y.r
 * x.t -> threadIdx.y, y.t -> threadIdx.x. With no outer axis x.o ->
 * blockIdx.y, y.o -> blockIdx.x; with outer axes (x.o, y.o) fused ->
 * blockIdx.x (every output tile its own block), the last outer axis ->
 * blockIdx.y, the others fused -> blockIdx.z. Non-dividing tiles are
 * guarded by lowering. Refuses, naming
 * the op, blocks of more than 1024 threads and staging over 48 KiB. */
typedef struct {
  const char *what;                 /* the op, for messages */
  int n_outer;                      /* batch axes (0..3), outermost first */
  const char *outer[3];
  const char *x, *y, *r;            /* rows, columns, reduction */
  int64_t bx, by;                   /* block tile */
  int64_t tx, ty;                   /* thread tile */
  int64_t br;                       /* reduction step */
  int shared, unroll;               /* 0/1: shared staging; unrolled thread tile */
  int double_buffer;                /* 1 (with shared, sm_80+): two tiles per staged tensor,
                                     * the next step's copied by cp.async during this one's
                                     * compute, one barrier per step */
  int contiguous;                   /* 1: a thread's tile elements side by side (vector
                                     * shared loads) instead of strided by the threads */
  int unguarded;                    /* 1: no row / column guard per term in the update
                                     * (mfx_sched_unguarded_update); 2: no reduction
                                     * guard either (a term of zeros is 0:
                                     * mfx_sched_unguarded_reduce) */
  int n_staged;
  mfx_gpu_staged staged[MFX_MAX_ATTACHED];
  unsigned computed; /* bit i: staged[i] is an elementwise stage (a prologue),
                      * computed into its shared tile (compute_at), or
                      * inlined when shared staging is off */
  int64_t unroll_k;  /* > 1 (dividing br): the reduction step's loop split by
                      * unroll_k, the inner part unrolled innermost: unroll_k
                      * consecutive terms per accumulator (0, 1: none) */
} mfx_gpu_tiled_reduce;

mfx_status mfx_gpu_apply_tiled_reduce(mfx_schedule *s, mfx_tensor *t,
                                      const mfx_gpu_tiled_reduce *p);

/* Split-K: a long reduction cut into pieces, each piece's partial sums
 * computed by its own blocks into a workspace RP (pieces a batch axis of
 * the tiled reduction), then R = the sum over the pieces, one output
 * element per thread in a second kernel (deterministic, no atomics, no
 * zeroing pass). A piece is whole staging steps (chunk a multiple of step);
 * tensors read along the reduction are padded with zeros past K where the
 * pieces overrun it, computed into the staged tiles (or inlined without
 * staging). Built on the TE, before mfx_sched_create. */
#define MFX_GPU_SMS 132      /* H100 SXM: what "fill the device" aims at */
#define MFX_GPU_MAX_SPLIT 256
typedef struct {
  mfx_tensor *part; /* RP, or NULL when the reduction stays whole */
  int64_t pieces, chunk;
  int n_padded;
  mfx_tensor *source[MFX_MAX_ATTACHED], *padded[MFX_MAX_ATTACHED];
} mfx_gpu_split;

int64_t mfx_gpu_split_pieces(int64_t knob, int64_t tiles, int64_t K, int64_t step,
                             int64_t min_chunk);
/* Rewrites R's body (a sum over one axis) into the split form; the pieces
 * axis is inserted in RP at position `at` (after R's batch axes). */
mfx_status mfx_gpu_split_reduction(mfx_arena *a, mfx_tensor *R, int at, int64_t pieces,
                                   int64_t step, mfx_gpu_split *out);
/* Schedules RP with p (plus the pieces axis) and R elementwise; without a
 * split, R with p. */
mfx_status mfx_gpu_apply_split(mfx_schedule *s, mfx_tensor *R, const mfx_gpu_split *g,
                               const mfx_gpu_tiled_reduce *p, int64_t threads);

/* Tensor cores (gpu_mma.c): R[m, n] = sum_k A[m, k] B[n, k] (f32 2-D, A and
 * B read directly, no packing) by mma.sync m16n8k8 TF32, blocks of bm x bn,
 * k steps of bk, a warp per 32 x min(bn, 32) tile. With a split (g->part
 * not NULL, from mfx_gpu_split_reduction with step bk) the MMAs write the
 * partial sums, a piece per blockIdx.z, and R is their sum, `threads` a
 * block. Refuses, naming `what`, tiles that are not whole fragments, more
 * than 1024 threads and staging over 48 KiB. Needs sm_80 (checked by code
 * generation). */
typedef struct {
  const char *what;
  int64_t bm, bn, bk, threads;
} mfx_gpu_mma_tiles;
mfx_status mfx_gpu_apply_mma(mfx_schedule *s, mfx_tensor *R, const mfx_tensor *A,
                             const mfx_tensor *B, const mfx_gpu_split *g,
                             const mfx_gpu_mma_tiles *t);

/* An elementwise stage (or one reducing per output element, in a register):
 * its spatial axes fused, one element per thread, `threads` per block
 * (fewer when the stage is smaller). */
mfx_status mfx_gpu_apply_elementwise(mfx_schedule *s, mfx_tensor *t, int64_t threads);

/* The GPU knobs of an op scheduled by mfx_gpu_apply_elementwise alone, as
 * designated initializers of its mfx_op. */
#define MFX_GPU_ELEMENTWISE_KNOBS                                                           \
  .n_gpu_knobs = 1,                                                                         \
  .gpu_knobs = {                                                                            \
    {"threads", "threads per block, one element each", 256, 5, {64, 128, 256, 512, 1024}},  \
  }

/* ---- pieces of ops that composite ops reuse (fused.c) ------------------------------ */

/* linear.c: Y = X W^T over the dims M, N, K, W packed as `pack` says (panels
 * of tn columns for pack 2); the CPU and GPU templates read the op's knobs. */
typedef struct {
  mfx_tensor *X, *W, *Y;
  mfx_tensor *packed; /* the W layout stage, NULL for pack 0 */
} mfx_linear_parts;
mfx_status mfx_linear_te(mfx_arena *a, const int64_t *dims, int64_t pack, int64_t tn,
                         mfx_linear_parts *t);
mfx_status mfx_linear_schedule(mfx_schedule *s, const mfx_linear_parts *t,
                               const mfx_config *cfg);
mfx_status mfx_linear_schedule_gpu(mfx_schedule *s, const mfx_linear_parts *t,
                                   const mfx_config *cfg);

/* shift_linear.c: the reduction `red` (Y itself for forms 0 and 2, ACC for
 * forms 1 and 3 with Y = ACC + CNT[j]); X is the caller's when p->X is set on entry (an
 * elementwise stage: x_compute 1 lets the GPU template compute it into
 * shared memory, or inline it). A NULL Y to the templates leaves Y
 * unscheduled (for the caller to inline). */
typedef struct {
  mfx_tensor *X, *S, *G;     /* placeholders (X: or the caller's stage) */
  int pack, form;
  int64_t panel;             /* pack 2: columns per weight panel (0: 16) */
  int n_weight;              /* weight stages made here, scheduled elementwise */
  mfx_tensor *weight[3];
  int x_compute;
  int n_decoded;             /* form 3: shift, nonzero mask, sign mask [n, k] (i32), */
  mfx_tensor *decoded[3];    /* computed into the GPU kernel's shared tiles */
} mfx_shift_parts;
mfx_status mfx_shift_linear_te(mfx_arena *a, const int64_t *dims, mfx_shift_parts *p,
                               mfx_tensor **red, mfx_tensor **cnt, mfx_tensor **Y);
mfx_status mfx_shift_linear_schedule(mfx_schedule *s, const mfx_shift_parts *p,
                                     mfx_tensor *red, mfx_tensor *cnt, mfx_tensor *Y,
                                     const mfx_config *cfg);
mfx_status mfx_shift_linear_schedule_gpu(mfx_schedule *s, const mfx_shift_parts *p,
                                         mfx_tensor *red, mfx_tensor *cnt, mfx_tensor *Y,
                                         const mfx_config *cfg);

/* matadd.c: the compute `name`[b,h,c,d] = sum_n select(Hc[b,h,n,c] != 0, V[b,h,n,d], -0.0)
 * over matadd's dims (B, H, N, D, C); binary attention's Hc^T V. */
mfx_status mfx_matadd_te(mfx_arena *a, mfx_tensor *Hc, mfx_tensor *V, const int64_t *dims,
                         const char *name, mfx_tensor **out);

/* elementwise.c: the bodies of gelu, q16_quantize, q16_dequantize, q16_gelu. */
mfx_expr *mfx_ew_gelu(mfx_arena *a, mfx_expr *x);
mfx_expr *mfx_ew_q16_quantize(mfx_arena *a, mfx_expr *x);
mfx_expr *mfx_ew_q16_dequantize(mfx_arena *a, mfx_expr *q);
mfx_expr *mfx_ew_q16_gelu(mfx_arena *a, mfx_expr *q);

/* fused.c: the pieces every fused op is built from (fused.c, fused16.c). */
typedef mfx_expr *(*mfx_fused_fn)(mfx_arena *a, mfx_expr *x);
/* C[i, j] = f(R[i, j]) named `name`, of dtype t; R renamed "<name>_acc" when
 * it has that name (the kernel's arguments keep the op's names). */
mfx_status mfx_fused_consumer(mfx_arena *a, const char *name, mfx_dtype t, mfx_tensor *R,
                              mfx_fused_fn f, mfx_tensor **out);
/* c computed at red's register tile write-back (mfx_sched_fuse_epilogue). */
mfx_status mfx_fused_epilogue(mfx_schedule *s, mfx_tensor *red, mfx_tensor *c);
/* t's stage inlined into its consumers (mfx_sched_compute_inline). */
mfx_status mfx_fused_inline(mfx_schedule *s, mfx_tensor *t);

/* The stage of t, or MFX_ERR_SCHEDULE naming t. */
mfx_status mfx_tmpl_stage(mfx_schedule *s, mfx_tensor *t, mfx_stage **out);
/* The itervar `name` of stage st, or MFX_ERR_SCHEDULE naming both. */
mfx_status mfx_tmpl_itervar(mfx_stage *st, const char *name, mfx_itervar **out);

#endif
