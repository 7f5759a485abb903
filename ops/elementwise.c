/* The MoE layer's elementwise steps as ops, so that they compile for the CPU
 * and for GPUs like every other kernel:
 *   gelu            Y = GELU(X)                              f32 -> f32
 *   q16_quantize    Q = Q16.16 of X (x 2^16, rint, saturated) f32 -> i32
 *   q16_dequantize  X = Q 2^-16                              i32 -> f32
 *   q16_gelu        R = q16(GELU(Q 2^-16))                   i32 -> i32
 * Each has dims M, N and one [M, N] input and output.
 *
 * Against the host functions of the layer (ops/moe_internal.h), which are
 * also the references: the same f32 expressions in the same order, each
 * operation rounded once to f32 (no contraction into fused multiply-adds:
 * LLVM fuses nothing without fast-math flags), except erf. The kernels' erf
 * is the inline polynomial of compiler/codegen_math.c (vectorized, the
 * same instructions on a GPU), within 1.5 ulp of the true erf; the host's
 * is glibc's erff (within 1 ulp). So:
 * - gelu: (0.5 x) (1 + erf(x c)), c = 1/sqrt 2 rounded to f32. The two erf
 *   differ by at most 2.5 ulp <= 2.5 2^-24 (|erf| < 1; both are exactly
 *   +-1 for |x c| >= 3.9193, where erfc < 2^-25), 1 + erf adds at most one
 *   rounding (2^-23) to each, the product one ulp of the result:
 *   |gelu - host| <= 0.5 |x| (2.5 2^-24 + 2^-23) + ulp < 2^-22 |x| + ulp.
 *   For x >= 0 that is within 9 ulp of the result (measured: 2); for x < 0,
 *   where 1 + erf cancels, it is an absolute bound of the size of erff's own
 *   error scaled by x/2. NaN and +-inf give the same results bit for bit.
 *   tests/test_ops.c asserts exactly this bound.
 * - q16_gelu: within one Q16.16 unit of the host's, never more (its
 *   int_tolerance, on every target). Where the GELU values differ at all,
 *   |x| < 3.9193 sqrt 2 < 5.6, so they differ by less than 2^-22 5.6 + 2^-21
 *   < 2e-6, far below one step (2^-16 = 1.5e-5). Two values less than one
 *   step apart (v and v' with |v - v'| < 1 after the exact 2^16 scale) round
 *   to integers at most 1 apart, as rint is monotone and rint(v + 1) =
 *   rint(v) + 1; saturation is not reached for |v| < 5.6 2^16. About one
 *   value in 10^4 is one unit off (tests/test_ops.c counts them).
 * - x 2^16 is exact in f32 (a power-of-two scale: no bits are lost, and an
 *   overflow to infinity saturates either way), so v = x 2^16 is the same
 *   number as the host's double product. f32 has no value in (2^31 - 128,
 *   2^31), so "v >= 2147483647" in double and "v >= 2^31" in f32 pick the
 *   same values (and "v <= -2^31" is the same test in both). Below 2^31 in
 *   magnitude v is an f32, and rint of it (ties to even) is the host's
 *   round-to-nearest-even through the 1.5 * 2^52 trick; the result lies in
 *   int32, so the conversion is exact: q16_quantize is bit for bit.
 * - (f32)q 2^-16: q is rounded to f32 once, then scaled exactly (the result
 *   is at least 2^-16 in magnitude, a normal number). The host's
 *   (f32)((double)q / 2^16) rounds the exact quotient once; a power-of-two
 *   scale commutes with rounding to nearest, so both are the same f32:
 *   q16_dequantize is bit for bit.
 * Saturation is built from ordered comparisons and selects: NaN fails every
 * ordered comparison, so it takes the 0 arm, and the f32 -> i32 conversion
 * only ever sees rint(v) for v strictly inside (-2^31, 2^31), or 0.
 *
 * Templates: CPU, the inner axis split by `vector` and vectorized, the outer
 * axis on the thread pool; GPU, one element per thread. */
#include <stdint.h>

#include "knobs.h"

enum { EW_M, EW_N };

#define EW_TWO_31 2147483648.0 /* 2^31, an f32 */

/* ---- the expressions ------------------------------------------------------------------- */

/* (0.5 x) (1 + erf(x c)), c = 1/sqrt(2) rounded to f32 as the host's literal. */
mfx_expr *mfx_ew_gelu(mfx_arena *a, mfx_expr *x) {
  mfx_expr *half = mfx_mul(a, mfx_f32(a, 0.5), x);
  mfx_expr *scaled = mfx_mul(a, x, mfx_f32(a, (double)0.70710678118654752f));
  return mfx_mul(a, half, mfx_add(a, mfx_f32(a, 1.0), mfx_unary(a, MFX_ERF, scaled)));
}

/* The i32 Q16.16 of f32 x: v = x 2^16 (exact); v >= 2^31 -> INT32_MAX,
 * v <= -2^31 -> INT32_MIN, NaN -> 0, else rint(v). */
mfx_expr *mfx_ew_q16_quantize(mfx_arena *a, mfx_expr *x) {
  mfx_expr *v = mfx_mul(a, x, mfx_f32(a, 65536.0));
  mfx_expr *top = mfx_f32(a, EW_TWO_31), *bottom = mfx_f32(a, -EW_TWO_31);
  mfx_expr *inside = mfx_binary(a, MFX_LAND, mfx_binary(a, MFX_GT, v, bottom),
                                mfx_binary(a, MFX_LT, v, top));
  mfx_expr *safe = mfx_select(a, inside, mfx_unary(a, MFX_ROUND, v), mfx_f32(a, 0.0));
  mfx_expr *low = mfx_select(a, mfx_binary(a, MFX_LE, v, bottom), mfx_int(a, MFX_I32, INT32_MIN),
                             mfx_cast(a, MFX_I32, safe));
  return mfx_select(a, mfx_binary(a, MFX_GE, v, top), mfx_int(a, MFX_I32, INT32_MAX), low);
}

/* (f32)q 2^-16 */
mfx_expr *mfx_ew_q16_dequantize(mfx_arena *a, mfx_expr *q) {
  return mfx_mul(a, mfx_cast(a, MFX_F32, q), mfx_f32(a, 1.0 / 65536.0));
}

/* q16_quantize(gelu(q16_dequantize(Q))), the same numbers with fewer
 * vector operations per element. With f = (f32)Q and x = f 2^-16:
 * - the powers of two move: x c = (f (c 2^-16)) exactly in value (a scaled
 *   f32 product of normal numbers rounds the same), 0.5 x 2^16 = 0.5 f,
 *   and v = (0.5 x)(1 + erf) 2^16 = (0.5 f)(1 + erf) rounded once: 1 + erf
 *   is 0 or >= 2^-24, so no product here is subnormal, none overflows.
 * - only the quantize arms v can take: GELU(x) >= -0.17 and GELU(x) <= x
 *   <= 32768, so v is never NaN, never <= -2^31, and reaches 2^31 only at
 *   the top (Q >= 2^31 - 64 dequantizes to 32768, whose GELU is 32768:
 *   v = 2^31 -> INT32_MAX). The conversion sees rint(v) for v in
 *   (-2^31, 2^31) or 0, as in ew_q16_quantize. */
mfx_expr *mfx_ew_q16_gelu(mfx_arena *a, mfx_expr *q) {
  mfx_expr *f = mfx_cast(a, MFX_F32, q);
  mfx_expr *scaled = mfx_mul(a, f, mfx_f32(a, (double)0.70710678118654752f / 65536.0));
  mfx_expr *half = mfx_mul(a, mfx_f32(a, 0.5), f);
  mfx_expr *v = mfx_mul(a, half, mfx_add(a, mfx_f32(a, 1.0), mfx_unary(a, MFX_ERF, scaled)));
  mfx_expr *top = mfx_binary(a, MFX_GE, v, mfx_f32(a, EW_TWO_31));
  mfx_expr *safe = mfx_select(a, top, mfx_f32(a, 0.0), mfx_unary(a, MFX_ROUND, v));
  return mfx_select(a, top, mfx_int(a, MFX_I32, INT32_MAX), mfx_cast(a, MFX_I32, safe));
}

/* ---- definition and templates ---------------------------------------------------------- */

/* One op of this file: its tensors and its body. */
typedef struct {
  const char *what;
  const char *in, *out;
  mfx_dtype in_type, out_type;
  mfx_expr *(*body)(mfx_arena *a, mfx_expr *x);
} ew_kind;

static const ew_kind ew_gelu_kind = {"gelu", "X", "Y", MFX_F32, MFX_F32, mfx_ew_gelu};
static const ew_kind ew_quantize_kind = {"q16_quantize", "X", "Q", MFX_F32, MFX_I32,
                                         mfx_ew_q16_quantize};
static const ew_kind ew_dequantize_kind = {"q16_dequantize", "Q", "X", MFX_I32, MFX_F32,
                                           mfx_ew_q16_dequantize};
static const ew_kind ew_q16_gelu_kind = {"q16_gelu", "Q", "R", MFX_I32, MFX_I32, mfx_ew_q16_gelu};

/* OUT[i, j] = body(IN[i, j]) and its (unscheduled) schedule. */
static mfx_status ew_define(mfx_arena *a, const int64_t *dims, const ew_kind *k,
                            mfx_tensor **out_tensor, mfx_schedule **out) {
  int64_t shape[2] = {dims[EW_M], dims[EW_N]};
  mfx_tensor *in = mfx_placeholder(a, k->in, k->in_type, 2, shape);
  mfx_tensor *res = mfx_compute_begin(a, k->out, k->out_type, 2, shape,
                                      (const char *[]){"i", "j"});
  if (in == NULL || res == NULL) return mfx_fail_context(MFX_ERR_INVALID, "%s: tensors", k->what);
  mfx_expr *x = mfx_tmpl_load2(a, in, mfx_tmpl_axis(a, res, 0), mfx_tmpl_axis(a, res, 1));
  MFX_TRY(mfx_tmpl_set_body(a, res, x != NULL ? k->body(a, x) : NULL));
  *out_tensor = res;
  return mfx_sched_create(a, 1, &in, 1, &res, out);
}

static mfx_status ew_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                           const ew_kind *k, mfx_schedule **out) {
  mfx_tensor *t = NULL;
  mfx_ew_knobs kn;
  MFX_TRY(mfx_ew_knobs_read(cfg, k->what, &kn));
  MFX_TRY(ew_define(a, dims, k, &t, out));
  return mfx_tmpl_apply_elementwise(*out, t, kn.vector, (int)kn.vec, (int)kn.parallel);
}

static mfx_status ew_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                               const ew_kind *k, mfx_schedule **out) {
  mfx_tensor *t = NULL;
  mfx_ew_gpu_knobs kn;
  MFX_TRY(mfx_ew_gpu_knobs_read(cfg, k->what, &kn));
  MFX_TRY(ew_define(a, dims, k, &t, out));
  return mfx_gpu_apply_elementwise(*out, t, kn.threads);
}

#define EW_BUILDERS(name, kind)                                                             \
  static mfx_status name##_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg, \
                                 mfx_schedule **out) {                                      \
    return ew_build(a, dims, cfg, &kind, out);                                              \
  }                                                                                         \
  static mfx_status name##_build_gpu(mfx_arena *a, const int64_t *dims,                    \
                                     const mfx_config *cfg, mfx_schedule **out) {           \
    return ew_build_gpu(a, dims, cfg, &kind, out);                                          \
  }

EW_BUILDERS(gelu, ew_gelu_kind)
EW_BUILDERS(q16_quantize, ew_quantize_kind)
EW_BUILDERS(q16_dequantize, ew_dequantize_kind)
EW_BUILDERS(q16_gelu, ew_q16_gelu_kind)

/* ---- the ops ---------------------------------------------------------------------------- */

#define EW_KNOBS                                                                            \
  .n_knobs = 3,                                                                             \
  .knobs = {                                                                                \
    {"vector", "elements per vector step of the inner axis", 16, 4, {4, 8, 16, 32}},        \
    {"vec", "vectorize the inner axis", 1, 2, {0, 1}},                                      \
    {"parallel", "run the rows on the thread pool", 1, 2, {0, 1}},                          \
  },                                                                                        \
  MFX_GPU_ELEMENTWISE_KNOBS

const mfx_op mfx_op_def_gelu = {
  MFX_OP_LISTED(gelu),
  .about = "GELU in f32: Y = 0.5 X (1 + erf(X / sqrt 2)) (the MoE experts' activation)",
  MFX_OP_IO(gelu),
  EW_KNOBS,
  .build = gelu_build,
  .build_gpu = gelu_build_gpu,
};

const mfx_op mfx_op_def_q16_quantize = {
  MFX_OP_LISTED(q16_quantize),
  .about = "f32 to Q16.16 fixed point: round(X 2^16), ties to even, saturated; NaN to 0",
  MFX_OP_IO(q16_quantize),
  EW_KNOBS,
  .build = q16_quantize_build,
  .build_gpu = q16_quantize_build_gpu,
};

const mfx_op mfx_op_def_q16_dequantize = {
  MFX_OP_LISTED(q16_dequantize),
  .about = "Q16.16 fixed point to f32: X = Q 2^-16",
  MFX_OP_IO(q16_dequantize),
  EW_KNOBS,
  .build = q16_dequantize_build,
  .build_gpu = q16_dequantize_build_gpu,
};

const mfx_op mfx_op_def_q16_gelu = {
  MFX_OP_LISTED(q16_gelu),
  .about = "GELU on Q16.16 (the shift expert's middle step): R = q16(GELU(Q 2^-16))",
  MFX_OP_IO(q16_gelu),
  EW_KNOBS,
  .build = q16_gelu_build,
  .build_gpu = q16_gelu_build_gpu,
};
