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
#include "knobs.h"

#include <stdio.h>
#include <string.h>

enum { FUSED_M, FUSED_N, FUSED_K };

/* C[i, j] = f(R[i, j]) of the 2-D reduction R, named `name`, of dtype t.
 * When C takes R's name (the op's output is called what the unfused op's
 * is), R becomes "<name>_acc": the kernel's arguments keep the op's names. */
mfx_status mfx_fused_consumer(mfx_arena *a, const char *name, mfx_dtype t, mfx_tensor *R,
                              mfx_fused_fn f, mfx_tensor **out) {
  if (strcmp(R->buf->name, name) == 0) {
    char *renamed = mfx_arena_alloc(a, strlen(name) + 5);
    if (renamed == NULL) return mfx_fail(MFX_ERR_NOMEM, "fused op: out of memory");
    snprintf(renamed, strlen(name) + 5, "%s_acc", name);
    R->buf->name = renamed;
  }
  mfx_tensor *C = mfx_compute_begin(a, name, t, 2, R->buf->shape, (const char *[]){"i", "j"});
  mfx_expr *r = mfx_tmpl_load2(a, R, mfx_tmpl_axis(a, C, 0), mfx_tmpl_axis(a, C, 1));
  MFX_TRY(mfx_tmpl_set_body(a, C, r != NULL ? f(a, r) : NULL));
  *out = C;
  return MFX_OK;
}

mfx_status mfx_fused_epilogue(mfx_schedule *s, mfx_tensor *red, mfx_tensor *c) {
  mfx_stage *rs, *cs;
  MFX_TRY(mfx_tmpl_stage(s, red, &rs));
  MFX_TRY(mfx_tmpl_stage(s, c, &cs));
  return mfx_sched_fuse_epilogue(s, rs, cs);
}

mfx_status mfx_fused_inline(mfx_schedule *s, mfx_tensor *t) {
  mfx_stage *st;
  MFX_TRY(mfx_tmpl_stage(s, t, &st));
  return mfx_sched_compute_inline(s, st);
}

/* ---- linear_gelu ----------------------------------------------------------------------- */

static mfx_status linear_gelu_define(mfx_arena *a, const int64_t *dims, int64_t pack,
                                     int64_t tn, mfx_linear_parts *t, mfx_tensor **C,
                                     mfx_schedule **out) {
  MFX_TRY(mfx_linear_te(a, dims, pack, tn, t));
  MFX_TRY(mfx_fused_consumer(a, "Y", MFX_F32, t->Y, mfx_ew_gelu, C));
  return mfx_sched_create(a, 2, (mfx_tensor *[]){t->X, t->W}, 1, C, out);
}

static mfx_status linear_gelu_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    mfx_schedule **out) {
  mfx_linear_parts t;
  mfx_tensor *C;
  mfx_linear_knobs k;
  MFX_TRY(mfx_linear_knobs_read(cfg, "linear_gelu", &k));
  MFX_TRY(linear_gelu_define(a, dims, k.pack, k.tile_n, &t, &C, out));
  MFX_TRY(mfx_linear_schedule(*out, &t, cfg));
  return mfx_fused_epilogue(*out, t.Y, C);
}

static mfx_status linear_gelu_build_gpu(mfx_arena *a, const int64_t *dims,
                                        const mfx_config *cfg, mfx_schedule **out) {
  mfx_linear_parts t;
  mfx_tensor *C;
  mfx_linear_gpu_knobs k;
  MFX_TRY(mfx_linear_gpu_knobs_read(cfg, "linear_gelu (GPU)", &k));
  MFX_TRY(linear_gelu_define(a, dims, k.pack, 1, &t, &C, out));
  MFX_TRY(mfx_linear_schedule_gpu(*out, &t, cfg));
  return mfx_fused_epilogue(*out, t.Y, C);
}

/* ---- the shift_linear pair --------------------------------------------------------------- */

typedef struct {
  int quantize;           /* X is f32, quantized by a prologue */
  const char *out;
  mfx_dtype out_type;
  mfx_fused_fn epilogue;
} fused_shift_kind;

static const fused_shift_kind fused_q16_gelu = {1, "R", MFX_I32, mfx_ew_q16_gelu};
static const fused_shift_kind fused_dequantize = {0, "Y", MFX_F32, mfx_ew_q16_dequantize};

typedef struct {
  mfx_shift_parts p;
  mfx_tensor *Xf, *red, *cnt, *Y, *C;
} fused_shift;

/* The knobs the definition reads, on either target (panel: tile_n, 0 on a GPU). */
#define FUSED_SHIFT_DEFINE_KNOBS(X) X(pack) X(form)
MFX_KNOB_VIEW(fused_shift_define_knobs, FUSED_SHIFT_DEFINE_KNOBS)
#define FUSED_PROLOGUE_KNOBS(X) X(prologue)
MFX_KNOB_VIEW(fused_prologue_knobs, FUSED_PROLOGUE_KNOBS)

static mfx_status fused_shift_define(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                     int64_t panel, const fused_shift_kind *k, fused_shift *f,
                                     mfx_schedule **out) {
  int64_t M = dims[FUSED_M], K = dims[FUSED_K];
  fused_shift_define_knobs kn;
  MFX_TRY(fused_shift_define_knobs_read(cfg, "shift_linear (fused)", &kn));
  f->p = (mfx_shift_parts){.pack = (int)kn.pack, .form = (int)kn.form, .x_compute = k->quantize,
                           .panel = panel};
  mfx_tensor *X;
  if (k->quantize) {
    f->Xf = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){M, K});
    if (f->Xf == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear_q16_gelu: X");
    MFX_TRY(mfx_fused_consumer(a, "XQ", MFX_I32, f->Xf, mfx_ew_q16_quantize, &f->p.X));
  }
  MFX_TRY(mfx_shift_linear_te(a, dims, &f->p, &f->red, &f->cnt, &f->Y));
  X = k->quantize ? f->Xf : f->p.X;
  MFX_TRY(mfx_fused_consumer(a, k->out, k->out_type, f->Y, k->epilogue, &f->C));
  return mfx_sched_create(a, 3, (mfx_tensor *[]){X, f->p.S, f->p.G}, 1, &f->C, out);
}

/* Y = ACC + CNT (form 1) goes into the epilogue; then the fusion. */
static mfx_status fused_shift_finish(mfx_schedule *s, const fused_shift *f) {
  if (f->Y != f->red) MFX_TRY(mfx_fused_inline(s, f->Y));
  return mfx_fused_epilogue(s, f->red, f->C);
}

static mfx_status fused_shift_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    const fused_shift_kind *k, mfx_schedule **out) {
  fused_shift f;
  mfx_shift_knobs kn;
  MFX_TRY(mfx_shift_knobs_read(cfg, "shift_linear (fused)", &kn));
  MFX_TRY(fused_shift_define(a, dims, cfg, kn.tile_n, k, &f, out));
  if (k->quantize) {
    fused_prologue_knobs pk;
    MFX_TRY(fused_prologue_knobs_read(cfg, "shift_linear_q16_gelu", &pk));
    if (pk.prologue == 0) MFX_TRY(mfx_fused_inline(*out, f.p.X));
    else MFX_TRY(mfx_tmpl_apply_elementwise(*out, f.p.X, 16, (int)kn.vec, (int)kn.parallel));
  }
  MFX_TRY(mfx_shift_linear_schedule(*out, &f.p, f.red, f.cnt, NULL, cfg));
  return fused_shift_finish(*out, &f);
}

static mfx_status fused_shift_build_gpu(mfx_arena *a, const int64_t *dims,
                                        const mfx_config *cfg, const fused_shift_kind *k,
                                        mfx_schedule **out) {
  fused_shift f;
  MFX_TRY(fused_shift_define(a, dims, cfg, 0, k, &f, out));
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

const mfx_op mfx_op_def_linear_gelu = {
  MFX_OP_LISTED(linear_gelu),
  .about = "dense layer with GELU fused: Y = GELU(X W^T) in f32 (the mult expert's first half)",
  MFX_OP_IO(linear_gelu),
  MFX_LINEAR_KNOB_TABLES(MFX_KNOB_LOCAL_FIXED, "threads per block of the packing kernel", 0,
                         MFX_NO_GPU_EXTRA),
  .build = linear_gelu_build,
  .build_gpu = linear_gelu_build_gpu,
};

#define FUSED_SHIFT_KNOBS(extra_n, ...)                                                   \
  MFX_SHIFT_KNOB_TABLES(MFX_KNOB_LOCAL_FIXED, "threads per block of the weight and count kernels", \
                        0, MFX_NO_GPU_EXTRA, \
                        extra_n, __VA_ARGS__)

const mfx_op mfx_op_def_shift_linear_q16_gelu = {
  MFX_OP_LISTED(shift_linear_q16_gelu),
  .about = "the shift expert's first half fused: R = q16_gelu(shift_linear(q16_quantize(X)))",
  MFX_OP_IO(shift_linear_q16_gelu),
  FUSED_SHIFT_KNOBS(1, {"prologue", "q16_quantize: 0 inlined into the loads, 1 its own stage",
                        1, 2, {0, 1}}),
  .build = shift_q16_gelu_build,
  .build_gpu = shift_q16_gelu_build_gpu,
};

const mfx_op mfx_op_def_shift_linear_dequantize = {
  MFX_OP_LISTED(shift_linear_dequantize),
  .about = "the shift expert's second half fused: Y = q16_dequantize(shift_linear(X, S, G))",
  MFX_OP_IO(shift_linear_dequantize),
  FUSED_SHIFT_KNOBS(0, ),
  .build = shift_dequantize_build,
  .build_gpu = shift_dequantize_build_gpu,
};
