/* Reductions with their elementwise neighbours fused, built from the other
 * ops' tensor expressions and templates (no hand-written kernel):
 *   linear_gelu              Y = gelu(linear(X, W))                        f32 -> f32
 *   shift_linear_q16_gelu    R = q16_gelu(shift_linear(q16_quantize(X), S, G)) f32 -> i32
 *   shift_linear_dequantize  Y = q16_dequantize(shift_linear(X, S, G))     i32 -> f32
 * The consumer is an epilogue (mfx_sched_fuse_epilogue): computed from the
 * reduction's register tile as it is written back, the reduction never
 * stored. shift_linear's form 1 add (ACC + CNT[j]) is inlined into it.
 * q16_quantize is a prologue: on the CPU (knob prologue) inlined into the
 * reduction's loads (0) or its own stage in the same kernel (1, quantizing
 * each element once rather than once per column tile); on a GPU computed
 * into the shared X tile of each reduction step (inlined without shared
 * staging). Knobs are the reduction's, `local` fixed at 1 (the epilogue is
 * applied at the local tile's write-back). */
#include "ops_internal.h"

enum { FUSED_M, FUSED_N, FUSED_K };

typedef mfx_expr *(*fused_fn)(mfx_arena *a, mfx_expr *x);

/* C[i, j] = f(R[i, j]) of the 2-D reduction R, named `name`, of dtype t. */
static mfx_status fused_consumer(mfx_arena *a, const char *name, mfx_dtype t, mfx_tensor *R,
                                 fused_fn f, mfx_tensor **out) {
  mfx_tensor *C = mfx_compute_begin(a, name, t, 2, R->buf->shape, (const char *[]){"i", "j"});
  mfx_expr *r = mfx_tmpl_load2(a, R, mfx_tmpl_axis(a, C, 0), mfx_tmpl_axis(a, C, 1));
  MFX_TRY(mfx_tmpl_set_body(a, C, r != NULL ? f(a, r) : NULL));
  *out = C;
  return MFX_OK;
}

static mfx_status fused_epilogue(mfx_schedule *s, mfx_tensor *red, mfx_tensor *c) {
  mfx_stage *rs, *cs;
  MFX_TRY(mfx_tmpl_stage(s, red, &rs));
  MFX_TRY(mfx_tmpl_stage(s, c, &cs));
  return mfx_sched_fuse_epilogue(s, rs, cs);
}

static mfx_status fused_inline(mfx_schedule *s, mfx_tensor *t) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  return mfx_sched_compute_inline(s, st);
}

/* ---- linear_gelu ----------------------------------------------------------------------- */

static mfx_status linear_gelu_define(mfx_arena *a, const int64_t *dims, int64_t pack,
                                     int64_t tn, mfx_linear_parts *t, mfx_tensor **C,
                                     mfx_schedule **out) {
  MFX_TRY(mfx_linear_te(a, dims, pack, tn, t));
  MFX_TRY(fused_consumer(a, "YG", MFX_F32, t->Y, mfx_ew_gelu, C));
  return mfx_schedule_create(a, 2, (mfx_tensor *[]){t->X, t->W}, 1, C, out);
}

static mfx_status linear_gelu_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    mfx_schedule **out) {
  mfx_linear_parts t;
  mfx_tensor *C;
  MFX_TRY(linear_gelu_define(a, dims, mfx_config_get(cfg, "pack"),
                             mfx_config_get(cfg, "tile_n"), &t, &C, out));
  MFX_TRY(mfx_linear_schedule(*out, &t, cfg));
  return fused_epilogue(*out, t.Y, C);
}

static mfx_status linear_gelu_build_gpu(mfx_arena *a, const int64_t *dims,
                                        const mfx_config *cfg, mfx_schedule **out) {
  mfx_linear_parts t;
  mfx_tensor *C;
  MFX_TRY(linear_gelu_define(a, dims, mfx_config_get(cfg, "pack"), 1, &t, &C, out));
  MFX_TRY(mfx_linear_schedule_gpu(*out, &t, cfg));
  return fused_epilogue(*out, t.Y, C);
}

/* ---- the shift_linear pair --------------------------------------------------------------- */

typedef struct {
  int quantize;           /* X is f32, quantized by a prologue */
  const char *out;
  mfx_dtype out_type;
  fused_fn epilogue;
} fused_shift_kind;

static const fused_shift_kind fused_q16_gelu = {1, "R", MFX_I32, mfx_ew_q16_gelu};
static const fused_shift_kind fused_dequantize = {0, "YF", MFX_F32, mfx_ew_q16_dequantize};

typedef struct {
  mfx_shift_parts p;
  mfx_tensor *Xf, *red, *cnt, *Y, *C;
} fused_shift;

static mfx_status fused_shift_define(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                     const fused_shift_kind *k, fused_shift *f,
                                     mfx_schedule **out) {
  int64_t M = dims[FUSED_M], K = dims[FUSED_K];
  f->p = (mfx_shift_parts){.pack = (int)mfx_config_get(cfg, "pack"),
                           .form = (int)mfx_config_get(cfg, "form"), .x_compute = k->quantize,
                           .panel = mfx_config_get(cfg, "tile_n")};
  mfx_tensor *X;
  if (k->quantize) {
    f->Xf = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){M, K});
    if (f->Xf == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear_q16_gelu: X");
    MFX_TRY(fused_consumer(a, "XQ", MFX_I32, f->Xf, mfx_ew_q16_quantize, &f->p.X));
  }
  MFX_TRY(mfx_shift_linear_te(a, dims, &f->p, &f->red, &f->cnt, &f->Y));
  X = k->quantize ? f->Xf : f->p.X;
  MFX_TRY(fused_consumer(a, k->out, k->out_type, f->Y, k->epilogue, &f->C));
  return mfx_schedule_create(a, 3, (mfx_tensor *[]){X, f->p.S, f->p.G}, 1, &f->C, out);
}

/* Y = ACC + CNT (form 1) goes into the epilogue; then the fusion. */
static mfx_status fused_shift_finish(mfx_schedule *s, const fused_shift *f) {
  if (f->Y != f->red) MFX_TRY(fused_inline(s, f->Y));
  return fused_epilogue(s, f->red, f->C);
}

static mfx_status fused_shift_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    const fused_shift_kind *k, mfx_schedule **out) {
  fused_shift f;
  MFX_TRY(fused_shift_define(a, dims, cfg, k, &f, out));
  if (k->quantize && mfx_config_get(cfg, "prologue") == 0) MFX_TRY(fused_inline(*out, f.p.X));
  else if (k->quantize)
    MFX_TRY(mfx_tmpl_apply_elementwise(*out, f.p.X, 16, (int)mfx_config_get(cfg, "vec"),
                                       (int)mfx_config_get(cfg, "parallel")));
  MFX_TRY(mfx_shift_linear_schedule(*out, &f.p, f.red, f.cnt, NULL, cfg));
  return fused_shift_finish(*out, &f);
}

static mfx_status fused_shift_build_gpu(mfx_arena *a, const int64_t *dims,
                                        const mfx_config *cfg, const fused_shift_kind *k,
                                        mfx_schedule **out) {
  fused_shift f;
  MFX_TRY(fused_shift_define(a, dims, cfg, k, &f, out));
  MFX_TRY(mfx_shift_linear_schedule_gpu(*out, &f.p, f.red, f.cnt, NULL, cfg));
  return fused_shift_finish(*out, &f);
}

static mfx_status shift_q16_gelu_build(mfx_arena *a, const int64_t *dims,
                                       const mfx_config *cfg, mfx_schedule **out) {
  return fused_shift_build(a, dims, cfg, &fused_q16_gelu, out);
}

static mfx_status shift_q16_gelu_build_gpu(mfx_arena *a, const int64_t *dims,
                                           const mfx_config *cfg, mfx_schedule **out) {
  return fused_shift_build_gpu(a, dims, cfg, &fused_q16_gelu, out);
}

static mfx_status shift_dequantize_build(mfx_arena *a, const int64_t *dims,
                                         const mfx_config *cfg, mfx_schedule **out) {
  return fused_shift_build(a, dims, cfg, &fused_dequantize, out);
}

static mfx_status shift_dequantize_build_gpu(mfx_arena *a, const int64_t *dims,
                                             const mfx_config *cfg, mfx_schedule **out) {
  return fused_shift_build_gpu(a, dims, cfg, &fused_dequantize, out);
}

/* ---- the ops ------------------------------------------------------------------------------- */

#define FUSED_LOCAL_KNOB \
  {"local", "accumulate the tile in registers (needed: the epilogue runs at write-back)", 1, 1, {1}}

const mfx_op mfx_op_def_linear_gelu = {
  MFX_OP_LISTED(linear_gelu),
  .about = "dense layer with GELU fused: Y = GELU(X W^T) in f32 (the mult expert's first half)",
  .dims = {"M", "N", "K"},
  .inputs = {
    {"X", MFX_F32, 2, {"M", "K"}, "activations"},
    {"W", MFX_F32, 2, {"N", "K"}, "weights, one row per output feature"},
  },
  .outputs = {{"Y", MFX_F32, 2, {"M", "N"}, "Y = gelu(linear(X, W))"}},
  .n_knobs = 9,
  .knobs = {
    {"tile_m", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},
    {"tile_n", "columns of the register tile (the vector loop)", 16, 3, {8, 16, 32}},
    {"tile_k", "split of the reduction (0: none)", 0, 5, {0, 16, 64, 128, 256}},
    {"vec", "vectorize the tile's columns", 1, 2, {0, 1}},
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},
    {"parallel", "run the tiles on the thread pool", 1, 2, {0, 1}},
    FUSED_LOCAL_KNOB,
    {"pack", "W layout: 0 as given, 1 transposed WT[k,n], 2 panels WP[n/tn,k,tn]", 2, 3,
     {0, 1, 2}},
    {"cols_outer", "column tiles outside row tiles (a W panel stays in cache)", 1, 2, {0, 1}},
  },
  .build = linear_gelu_build,
  .n_gpu_knobs = 9,
  .gpu_knobs = {
    {"block_m", "rows of Y per thread block", 128, 4, {16, 32, 64, 128}},
    {"block_n", "columns of Y per thread block", 64, 4, {16, 32, 64, 128}},
    {"thread_m", "rows per thread (register tile, strided by the block's thread rows)", 8, 4,
     {1, 2, 4, 8}},
    {"thread_n", "columns per thread (register tile, strided: stores coalesce)", 4, 4,
     {1, 2, 4, 8}},
    {"block_k", "reduction step: the X and W tiles staged per step", 16, 5, {4, 8, 16, 32, 64}},
    {"shared", "stage the X and W tiles in shared memory", 1, 2, {0, 1}},
    {"unroll", "unroll the register tile", 1, 2, {0, 1}},
    {"pack", "W transposed to WT[k,n] first (its own kernel): shared rows of n", 1, 2, {0, 1}},
    {"threads", "threads per block of the packing kernel", 256, 4, {64, 128, 256, 512}},
  },
  .build_gpu = linear_gelu_build_gpu,
};

#define FUSED_SHIFT_KNOBS(extra_n, ...)                                                      \
  .n_knobs = 10 + (extra_n),                                                                \
  .knobs = {                                                                                \
    {"tile_m", "rows of the register tile (unrolled)", 8, 5, {1, 2, 4, 6, 8}},              \
    {"tile_n", "columns of the register tile (the vector loop)", 16, 3, {8, 16, 32}},       \
    {"tile_k", "split of the reduction (0: none)", 0, 4, {0, 16, 64, 256}},                 \
    {"vec", "vectorize the tile's columns", 1, 2, {0, 1}},                                  \
    {"unroll", "unroll the tile's rows", 1, 2, {0, 1}},                                     \
    {"parallel", "run the tiles on the thread pool", 1, 2, {0, 1}},                         \
    FUSED_LOCAL_KNOB,                                                                       \
    {"pack", "weights: 0 as given, 1 i8 [k,n], 2 i32 panels [n/tn,k,tn]", 2, 3, {0, 1, 2}}, \
    {"form", "0: select chain, 1: and/xor masks plus a count of negative signs", 1, 2,      \
     {0, 1}},                                                                               \
    {"cols_outer", "column tiles outside row tiles (weights stay in cache)", 1, 2, {0, 1}}, \
    __VA_ARGS__                                                                             \
  },                                                                                        \
  .n_gpu_knobs = 10,                                                                        \
  .gpu_knobs = {                                                                            \
    {"block_m", "rows of Y per thread block", 128, 4, {16, 32, 64, 128}},                   \
    {"block_n", "columns of Y per thread block", 64, 4, {16, 32, 64, 128}},                 \
    {"thread_m", "rows per thread (register tile, strided by the block's thread rows)", 8,  \
     4, {1, 2, 4, 8}},                                                                      \
    {"thread_n", "columns per thread (register tile, strided: stores coalesce)", 4, 4,      \
     {1, 2, 4, 8}},                                                                         \
    {"block_k", "reduction step: the X and weight tiles staged per step", 16, 5,            \
     {4, 8, 16, 32, 64}},                                                                   \
    {"shared", "stage the X and weight tiles in shared memory", 1, 2, {0, 1}},              \
    {"unroll", "unroll the register tile", 1, 2, {0, 1}},                                   \
    {"pack", "weights as i8 [k,n] copies first (their own kernels)", 1, 2, {0, 1}},         \
    {"form", "0: select chain, 1: and/xor masks plus a count of negative signs", 0, 2,      \
     {0, 1}},                                                                               \
    {"threads", "threads per block of the weight and count kernels", 256, 4,                \
     {64, 128, 256, 512}},                                                                  \
  }

const mfx_op mfx_op_def_shift_linear_q16_gelu = {
  MFX_OP_LISTED(shift_linear_q16_gelu),
  .about = "the shift expert's first half fused: R = q16_gelu(shift_linear(q16_quantize(X)))",
  .dims = {"M", "N", "K"},
  .inputs = {
    {"X", MFX_F32, 2, {"M", "K"}, "activations, f32 (quantized to Q16.16 in the kernel)"},
    {"S", MFX_I8, 2, {"N", "K"}, "right-shift amounts 0..15"},
    {"G", MFX_I8, 2, {"N", "K"}, "signs -1, 0, 1"},
  },
  .outputs = {{"R", MFX_I32, 2, {"M", "N"},
               "R = q16_gelu(shift_linear(q16_quantize(X), S, G)), Q16.16"}},
  FUSED_SHIFT_KNOBS(1, {"prologue", "q16_quantize: 0 inlined into the loads, 1 its own stage",
                        1, 2, {0, 1}}),
  .build = shift_q16_gelu_build,
  .build_gpu = shift_q16_gelu_build_gpu,
};

const mfx_op mfx_op_def_shift_linear_dequantize = {
  MFX_OP_LISTED(shift_linear_dequantize),
  .about = "the shift expert's second half fused: Y = q16_dequantize(shift_linear(X, S, G))",
  .dims = {"M", "N", "K"},
  .inputs = {
    {"X", MFX_I32, 2, {"M", "K"}, "activations, Q16.16 fixed point"},
    {"S", MFX_I8, 2, {"N", "K"}, "right-shift amounts 0..15"},
    {"G", MFX_I8, 2, {"N", "K"}, "signs -1, 0, 1"},
  },
  .outputs = {{"Y", MFX_F32, 2, {"M", "N"}, "Y = f32(shift_linear(X, S, G)) 2^-16"}},
  FUSED_SHIFT_KNOBS(0, ),
  .build = shift_dequantize_build,
  .build_gpu = shift_dequantize_build_gpu,
};
