/* The shift16 expert's two kernels: shift_linear16 (16-bit lanes) with its
 * elementwise neighbours fused, built from shift_linear16's tensor
 * expressions and templates (ops/shift16.h; no hand-written kernel):
 *   shift_linear16_gelu        R = q10(gelu(shift_linear16(q10(X), S, G) 2^-10))  f32 -> i16
 *   shift_linear16_dequantize  Y = f32(shift_linear16(X, S, G)) 2^-10             i16 -> f32
 * Q3.10 here is i16 fixed point with 10 fraction bits restricted to
 * shift_linear16's X range: q10(v) = clamp(rint(v 2^10), -8192, 8191), rint
 * rounding to nearest with ties to even (as q16_quantize, ops/elementwise.c),
 * NaN -> 0. So the expert is
 *   XQ = q10(x);  H = shift_linear16(XQ, S1, G1) (exact i32, units 2^-10);
 *   HQ = q10(gelu(H 2^-10));  Y = shift_linear16(HQ, S2, G2) 2^-10 as f32.
 *
 * q10(X) is a prologue: on the CPU (knob prologue) inlined into the
 * reduction's loads (0) or its own stage in the same kernel (1); on a GPU
 * its own kernel (inlined into XP when K is not a whole number of shift_linear16's
 * blocks). The consumer is an epilogue (mfx_sched_fuse_epilogue) at the
 * register tile's write-back, with Y = ACC + CNT[j] inlined into it.
 *
 * The arithmetic, against the references (ops/reference.c, plain C):
 * - q10(x): v = x 2^10 is exact in f32 (a power-of-two scale; an overflow to
 *   infinity saturates either way); v >= 8191 -> 8191, v <= -8192 -> -8192,
 *   NaN -> 0 (ordered comparisons fail), else rint(v), in -8192..8191: bit
 *   for bit.
 * - gelu step: f = (f32)H (exact for |H| < 2^24, one rounding above, in both),
 *   v = (0.5 f)(1 + erf(f (c 2^-10))), c = 1/sqrt 2 rounded to f32; this is
 *   gelu(f 2^-10) 2^10 with the powers of two moved (exact, as q16_gelu's
 *   comment in ops/elementwise.c shows: f is 0 or >= 1 in magnitude, no
 *   subnormal arises). GELU >= -0.17, so v > -175 and only the top clamps:
 *   v >= 8191 -> 8191, else rint(v). The kernels' erf is within 1.5 ulp of
 *   glibc's erff (the reference's), so R is within one unit of the
 *   reference (int_tolerance 1), by the argument of q16_gelu: where the
 *   two erf differ at all |x| < 5.6, the GELU values by < 2e-6, v by < 2e-3
 *   units, and rint of values less than one unit apart differs by at most 1.
 * - dequantize: (f32)H 2^-10, one rounding then an exact scale; the
 *   reference rounds H / 2^10 once in double -> f32: the same f32. */
#include <string.h>

#include "shift16.h"

enum { F16_M, F16_N, F16_K };

#define F16_TOP 8191.0
#define F16_BOTTOM -8192.0

/* ---- the expressions ------------------------------------------------------------------- */

/* q10 of f32 x as i16: v = x 2^10; v >= 8191 -> 8191, v <= -8192 -> -8192,
 * NaN -> 0, else rint(v). */
static mfx_expr *f16_quantize(mfx_arena *a, mfx_expr *x) {
  mfx_expr *v = mfx_mul(a, x, mfx_f32(a, 1024.0));
  mfx_expr *top = mfx_f32(a, F16_TOP), *bottom = mfx_f32(a, F16_BOTTOM);
  mfx_expr *inside = mfx_binary(a, MFX_LAND, mfx_binary(a, MFX_GT, v, bottom),
                                mfx_binary(a, MFX_LT, v, top));
  mfx_expr *safe = mfx_select(a, inside, mfx_unary(a, MFX_ROUND, v), mfx_f32(a, 0.0));
  mfx_expr *low = mfx_select(a, mfx_binary(a, MFX_LE, v, bottom), mfx_int(a, MFX_I16, -8192),
                             mfx_cast(a, MFX_I16, safe));
  return mfx_select(a, mfx_binary(a, MFX_GE, v, top), mfx_int(a, MFX_I16, 8191), low);
}

/* q10(gelu(H 2^-10)) of the i32 sum H, as i16. */
static mfx_expr *f16_gelu(mfx_arena *a, mfx_expr *h) {
  mfx_expr *f = mfx_cast(a, MFX_F32, h);
  mfx_expr *scaled = mfx_mul(a, f, mfx_f32(a, (double)0.70710678118654752f / 1024.0));
  mfx_expr *half = mfx_mul(a, mfx_f32(a, 0.5), f);
  mfx_expr *v = mfx_mul(a, half, mfx_add(a, mfx_f32(a, 1.0), mfx_unary(a, MFX_ERF, scaled)));
  mfx_expr *top = mfx_binary(a, MFX_GE, v, mfx_f32(a, F16_TOP));
  mfx_expr *safe = mfx_select(a, top, mfx_f32(a, 0.0), mfx_unary(a, MFX_ROUND, v));
  return mfx_select(a, top, mfx_int(a, MFX_I16, 8191), mfx_cast(a, MFX_I16, safe));
}

/* (f32)H 2^-10 */
static mfx_expr *f16_dequantize(mfx_arena *a, mfx_expr *h) {
  return mfx_mul(a, mfx_cast(a, MFX_F32, h), mfx_f32(a, 1.0 / 1024.0));
}

/* ---- definition and templates ---------------------------------------------------------- */

typedef struct {
  const char *what;
  int quantize;           /* X is f32, quantized by a prologue */
  const char *out;
  mfx_dtype out_type;
  mfx_fused_fn epilogue;
} f16_kind;

static const f16_kind f16_gelu_kind = {"shift_linear16_gelu", 1, "R", MFX_I16, f16_gelu};
static const f16_kind f16_dequantize_kind = {"shift_linear16_dequantize", 0, "Y", MFX_F32,
                                             f16_dequantize};

typedef struct {
  mfx_s16_parts p;
  mfx_tensor *Xf, *XQ, *C; /* Xf, XQ: the prologue's (NULL without) */
} f16_parts;

static mfx_status f16_define(mfx_arena *a, const int64_t *dims, int64_t panel, int pad_x,
                             const f16_kind *k, f16_parts *f, mfx_schedule **out) {
  memset(f, 0, sizeof *f);
  if (k->quantize) {
    f->Xf = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){dims[F16_M], dims[F16_K]});
    if (f->Xf == NULL) return mfx_fail_context(MFX_ERR_INVALID, "%s: X", k->what);
    MFX_TRY(mfx_fused_consumer(a, "XQ", MFX_I16, f->Xf, f16_quantize, &f->XQ));
    f->p.X = f->XQ;
  }
  MFX_TRY(mfx_s16_te(a, dims, panel, pad_x, &f->p));
  MFX_TRY(mfx_fused_consumer(a, k->out, k->out_type, f->p.Y, k->epilogue, &f->C));
  mfx_tensor *X = k->quantize ? f->Xf : f->p.X;
  return mfx_sched_create(a, 3, (mfx_tensor *[]){X, f->p.S, f->p.G}, 1, &f->C, out);
}

/* Y = ACC + CNT inlined into the epilogue C, fused at ACC's write-back. */
static mfx_status f16_finish(mfx_schedule *s, const f16_parts *f) {
  MFX_TRY(mfx_fused_inline(s, f->p.Y));
  return mfx_fused_epilogue(s, f->p.ACC, f->C);
}

#define F16_CPU_KNOBS(X) X(tile_n) X(vec) X(parallel)
MFX_KNOB_VIEW(f16_knobs, F16_CPU_KNOBS)
#define F16_PROLOGUE_KNOBS(X) X(prologue)
MFX_KNOB_VIEW(f16_prologue_knobs, F16_PROLOGUE_KNOBS)
#define F16_GPU_KNOBS(X) X(threads)
MFX_KNOB_VIEW(f16_gpu_knobs, F16_GPU_KNOBS)

static mfx_status f16_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                            const f16_kind *k, mfx_schedule **out) {
  f16_knobs kn;
  MFX_TRY(f16_knobs_read(cfg, k->what, &kn));
  f16_parts f;
  MFX_TRY(f16_define(a, dims, kn.tile_n, 0, k, &f, out));
  if (k->quantize) {
    f16_prologue_knobs pk;
    MFX_TRY(f16_prologue_knobs_read(cfg, k->what, &pk));
    if (pk.prologue == 0) MFX_TRY(mfx_fused_inline(*out, f.XQ));
    else MFX_TRY(mfx_tmpl_apply_elementwise(*out, f.XQ, 32, (int)kn.vec, (int)kn.parallel));
  }
  MFX_TRY(mfx_s16_schedule(*out, &f.p, cfg, k->what));
  return f16_finish(*out, &f);
}

static mfx_status f16_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                const f16_kind *k, mfx_schedule **out) {
  f16_gpu_knobs kn;
  MFX_TRY(f16_gpu_knobs_read(cfg, k->what, &kn));
  f16_parts f;
  MFX_TRY(f16_define(a, dims, 0, 1, k, &f, out));
  if (k->quantize) {
    if (f.p.XR != f.p.X) MFX_TRY(mfx_fused_inline(*out, f.XQ)); /* into XP's kernel */
    else MFX_TRY(mfx_gpu_apply_elementwise(*out, f.XQ, kn.threads));
  }
  MFX_TRY(mfx_s16_schedule_gpu(*out, &f.p, cfg, k->what, 0));
  return f16_finish(*out, &f);
}

static mfx_status f16_gelu_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                 mfx_schedule **out) {
  return f16_build(a, dims, cfg, &f16_gelu_kind, out);
}

static mfx_status f16_gelu_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                     mfx_schedule **out) {
  return f16_build_gpu(a, dims, cfg, &f16_gelu_kind, out);
}

static mfx_status f16_dequantize_build(mfx_arena *a, const int64_t *dims,
                                       const mfx_config *cfg, mfx_schedule **out) {
  return f16_build(a, dims, cfg, &f16_dequantize_kind, out);
}

static mfx_status f16_dequantize_build_gpu(mfx_arena *a, const int64_t *dims,
                                           const mfx_config *cfg, mfx_schedule **out) {
  return f16_build_gpu(a, dims, cfg, &f16_dequantize_kind, out);
}

/* ---- the ops ------------------------------------------------------------------------------- */

const mfx_op mfx_op_def_shift_linear16_gelu = {
  MFX_OP_LISTED(shift_linear16_gelu),
  .about = "the shift16 expert's first half fused: R = q10(gelu(shift_linear16(q10(X)) 2^-10)), "
           "Q3.10 i16",
  MFX_OP_IO(shift_linear16_gelu),
  /* rows outside columns: each row tile's outputs written whole (0.92-0.96x the time of
   * cols_outer 1 at M = 832 and 1664, N = 512, K = 64, 1 thread) */
  MFX_S16_KNOBS(0, 1, {"prologue", "q10(X): 0 inlined into the loads, 1 its own stage", 1, 2,
                       {0, 1}}),
  .build = f16_gelu_build,
  MFX_S16_GPU_KNOBS,
  .build_gpu = f16_gelu_build_gpu,
};

const mfx_op mfx_op_def_shift_linear16_dequantize = {
  MFX_OP_LISTED(shift_linear16_dequantize),
  .about = "the shift16 expert's second half fused: Y = f32(shift_linear16(X, S, G)) 2^-10",
  MFX_OP_IO(shift_linear16_dequantize),
  MFX_S16_KNOBS(1, 0, ),
  .build = f16_dequantize_build,
  MFX_S16_GPU_KNOBS,
  .build_gpu = f16_dequantize_build_gpu,
};
