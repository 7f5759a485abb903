/* f32 exp, log, tanh and erf as inline LLVM IR, for every target.
 *
 * The IR's MFX_EXP, MFX_LOG, MFX_TANH and MFX_ERF are expanded here into
 * straight-line code: fma, mul, add, compares, selects, integer operations
 * on the bits; no calls and no branches. The same instructions apply to an
 * f32 and to a <N x f32>, so a vectorized loop gets vector code (zmm on
 * AVX-512) where a call to libm's erff would be made once per lane, and the
 * NVPTX target gets the same expansion (no libdevice needed). GPU
 * emulation runs the lowered program through the CPU target, hence through
 * this file too.
 *
 * Why LLVM IR builder code and not an expansion in mfx's own IR before
 * codegen: the expansions need fma (one rounding), the bits of an f32 (the
 * 2^n scale of exp, the exponent of log) and selects that keep NaN, which
 * LLVM IR states exactly and mfx's expression IR does not; written here
 * once they sit behind the one function the code generator calls for a
 * unary math operator, for either target.
 *
 * Methods (coefficients: Chebyshev fits with mpmath, rounded to f32; the
 * fit's error after rounding is given with each table):
 *   exp(x)  n = rint(x log2 e), r = x - n ln2 in two fma (Cody-Waite with
 *           ln2 = hi + lo), e^r by a degree-7 polynomial on |r| <= 0.35,
 *           times 2^n as two exact powers of two 2^(n>>1) 2^(n - (n>>1))
 *           built in the exponent bits, so that results in the subnormal
 *           range are rounded once and 2^128 overflows to inf. x is first
 *           clamped to [-104, 90] (e^-104 rounds to 0, e^89 to inf).
 *   log(x)  x = m 2^e with m in [sqrt(1/2), sqrt 2) (subnormals scaled by
 *           2^23 first), s = (m-1)/(m+1), log m = 2s + 2s s^2 R(s^2),
 *           log x = e ln2 + log m (fma with ln2 = hi + lo).
 *   tanh(x) |x| < 0.625: x + x t P(t), t = x^2 (odd polynomial);
 *           else sign(x) (1 - 2 / (exp(2|x|) + 1)), exp as above. Past
 *           |x| = 9.02 that is exactly +-1 (2 / (e + 1) < 2^-25).
 *   erf(x)  |x| < 1: x (c0 + t P(t)), t = x^2, with c0 = 2/sqrt(pi) as two
 *           f32 (hi + lo), so tiny x keeps its relative accuracy;
 *           1 <= |x| < 2.2 and 2.2 <= |x| < 3.919206: sign(x) (1 - Q(u)),
 *           Q a degree-9 fit of erfc(|x|) in u = |x| - centre, the two
 *           intervals' coefficients chosen by selects (one polynomial is
 *           evaluated); |x| >= 3.919206 (erfc < 2^-25): +-1 exactly.
 * Special values: NaN in, NaN out (every function); exp(-inf) = 0,
 * exp(+inf) = inf; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf;
 * tanh and erf of +-inf are +-1; -0 stays -0 for tanh and erf.
 *
 * Largest errors measured against double-precision libm (truth) by
 * tests/test_vecmath.c (every 37th f32 bit pattern over the whole range,
 * plus dense grids where the methods switch, and the edges), evaluated on
 * the CPU with real fma:
 *   exp   1 ulp   (measured 0.89; in the subnormal range the ulp is 2^-149)
 *   log   2 ulp   (measured 1.97, just above 1: s = (m-1)/(m+1) rounds twice)
 *   tanh  1.5 ulp (measured 1.37, just above 0.625)
 *   erf   1.5 ulp (measured 1.31, just below 1; relative for tiny x too:
 *                  erf(1e-30) is 2/sqrt(pi) 1e-30 correctly rounded)
 * The test asserts exactly these bounds, on the vectorized, serial and
 * GPU-emulated kernels. Polynomials are evaluated by Horner's scheme for
 * exp and for erf below 1, where the last roundings count, and by
 * Estrin's (shorter chains of fma: the fma latency, not the throughput,
 * bounds a vector's erf) elsewhere.
 *
 * On a GPU the same instructions give the same results: PTX's fma.rn, add,
 * mul, div.rn and cvt.rni are correctly rounded, subnormals are kept (no
 * ftz), and nothing here is an approximate instruction (tests/test_nvptx.c
 * checks the PTX). Not yet run on a GPU: none was lent to this work. */
#include "codegen_internal.h"

#include <math.h>
#include <string.h>

/* The type being computed on: f32 or <N x f32>, and its i32 twin. */
typedef struct {
  mfx_cg *cg;
  LLVMBuilderRef b;
  LLVMTypeRef f, i;
  unsigned lanes; /* 0: scalar */
} math;

static math math_for(mfx_cg *cg, LLVMValueRef x) {
  math m = {cg, cg->b, LLVMTypeOf(x), LLVMInt32TypeInContext(cg->ctx), 0};
  if (LLVMGetTypeKind(m.f) == LLVMVectorTypeKind) {
    m.lanes = LLVMGetVectorSize(m.f);
    m.i = LLVMVectorType(m.i, m.lanes);
  }
  return m;
}

/* A constant of the computed type (the builder folds the splat). */
static LLVMValueRef math_splat(const math *m, LLVMValueRef scalar) {
  if (m->lanes == 0) return scalar;
  LLVMTypeRef i32 = LLVMInt32TypeInContext(m->cg->ctx);
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(scalar), m->lanes);
  LLVMValueRef first =
      LLVMBuildInsertElement(m->b, LLVMGetUndef(vt), scalar, LLVMConstInt(i32, 0, 0), "");
  LLVMValueRef mask = LLVMConstNull(LLVMVectorType(i32, m->lanes));
  return LLVMBuildShuffleVector(m->b, first, LLVMGetUndef(vt), mask, "");
}

static LLVMValueRef math_f(const math *m, double v) {
  return math_splat(m, LLVMConstReal(LLVMFloatTypeInContext(m->cg->ctx), (double)(float)v));
}

static LLVMValueRef math_i(const math *m, int64_t v) {
  return math_splat(m, LLVMConstInt(LLVMInt32TypeInContext(m->cg->ctx), (unsigned long long)v, 1));
}

static LLVMValueRef math_call(const math *m, const char *name, LLVMValueRef *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef overload = m->f;
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(m->cg->mod, id, &overload, 1);
  LLVMTypeRef type = LLVMIntrinsicGetType(m->cg->ctx, id, &overload, 1);
  return LLVMBuildCall2(m->b, type, fn, args, n, "");
}

static LLVMValueRef math_fma(const math *m, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
  LLVMValueRef args[3] = {a, b, c};
  return math_call(m, "llvm.fma", args, 3);
}

static LLVMValueRef math_fabs(const math *m, LLVMValueRef x) {
  return math_call(m, "llvm.fabs", &x, 1);
}

static LLVMValueRef math_copysign(const math *m, LLVMValueRef magnitude, LLVMValueRef sign) {
  LLVMValueRef args[2] = {magnitude, sign};
  return math_call(m, "llvm.copysign", args, 2);
}

static LLVMValueRef math_mul(const math *m, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFMul(m->b, a, b, "");
}

static LLVMValueRef math_add(const math *m, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFAdd(m->b, a, b, "");
}

static LLVMValueRef math_sub(const math *m, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildFSub(m->b, a, b, "");
}

static LLVMValueRef math_less(const math *m, LLVMValueRef a, double v) {
  return LLVMBuildFCmp(m->b, LLVMRealOLT, a, math_f(m, v), "");
}

static LLVMValueRef math_greater(const math *m, LLVMValueRef a, double v) {
  return LLVMBuildFCmp(m->b, LLVMRealOGT, a, math_f(m, v), "");
}

static LLVMValueRef math_is_nan(const math *m, LLVMValueRef x) {
  return LLVMBuildFCmp(m->b, LLVMRealUNO, x, x, "");
}

static LLVMValueRef math_select(const math *m, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
  return LLVMBuildSelect(m->b, c, a, b, "");
}

/* c[0] + c[1] z + ... + c[n-1] z^(n-1) by Estrin's scheme: pairs
 * c[k] + c[k+1] z, then pairs of those with z^2, z^4, ...: about log2(n)
 * dependent fma instead of Horner's n - 1 (the fma latency, not the
 * throughput, bounds one vector's erf), for two more multiplies. n <= 16. */
static LLVMValueRef math_poly_values(const math *m, LLVMValueRef z, LLVMValueRef *c, int n) {
  LLVMValueRef level[16];
  for (int k = 0; k < n; k++) level[k] = c[k];
  LLVMValueRef power = z;
  while (n > 1) {
    int half = 0;
    for (int k = 0; k + 1 < n; k += 2) level[half++] = math_fma(m, level[k + 1], power, level[k]);
    if (n % 2 == 1) level[half++] = level[n - 1];
    n = half;
    if (n > 1) power = math_mul(m, power, power);
  }
  return level[0];
}

/* c[0] + z (c[1] + z (... c[n-1])): one rounding per step, the last one
 * c[0] + z q, where exp's leading terms 1 + r need it. */
static LLVMValueRef math_horner(const math *m, LLVMValueRef z, const float *c, int n) {
  LLVMValueRef acc = math_f(m, c[n - 1]);
  for (int k = n - 2; k >= 0; k--) acc = math_fma(m, acc, z, math_f(m, c[k]));
  return acc;
}

static LLVMValueRef math_poly(const math *m, LLVMValueRef z, const float *c, int n) {
  LLVMValueRef values[16];
  for (int k = 0; k < n; k++) values[k] = math_f(m, c[k]);
  return math_poly_values(m, z, values, n);
}

/* 2^k for integer k in [-126, 127], from the exponent bits. */
static LLVMValueRef math_pow2(const math *m, LLVMValueRef k) {
  LLVMValueRef biased = LLVMBuildAdd(m->b, k, math_i(m, 127), "");
  return LLVMBuildBitCast(m->b, LLVMBuildShl(m->b, biased, math_i(m, 23), ""), m->f, "");
}

/* ---- exp --------------------------------------------------------------------------- */

/* e^r on [-0.35, 0.35], relative error 2.3e-9 after rounding to f32. */
static const float math_exp_poly[] = {1.0f,           1.0f,          0.5f,
                                      0.166666672f,   0.0416661985f, 0.00833328161f,
                                      0.00139497663f, 0.000199088885f};

static LLVMValueRef math_exp(const math *m, LLVMValueRef x) {
  const double ln2 = 0.69314718055994530942;
  const float ln2_hi = (float)ln2, ln2_lo = (float)(ln2 - (double)ln2_hi);
  LLVMValueRef nan = math_is_nan(m, x);
  LLVMValueRef c = math_select(m, math_greater(m, x, 90.0), math_f(m, 90.0), x);
  c = math_select(m, math_less(m, c, -104.0), math_f(m, -104.0), c);
  c = math_select(m, nan, math_f(m, 0.0), c); /* the integer steps see no NaN */
  LLVMValueRef n = math_mul(m, c, math_f(m, 1.4426950408889634));
  n = math_call(m, "llvm.rint", &n, 1); /* in [-150, 130] */
  LLVMValueRef minus_n = LLVMBuildFNeg(m->b, n, "");
  LLVMValueRef r = math_fma(m, minus_n, math_f(m, ln2_hi), c);
  r = math_fma(m, minus_n, math_f(m, ln2_lo), r);
  LLVMValueRef p = math_horner(m, r, math_exp_poly, 8);
  LLVMValueRef k = LLVMBuildFPToSI(m->b, n, m->i, "");
  LLVMValueRef k1 = LLVMBuildAShr(m->b, k, math_i(m, 1), ""); /* in [-75, 65] */
  LLVMValueRef k2 = LLVMBuildSub(m->b, k, k1, "");            /* in [-75, 65] */
  /* p 2^k1 is exact (a normal number); the second product rounds once. */
  LLVMValueRef y = math_mul(m, math_mul(m, p, math_pow2(m, k1)), math_pow2(m, k2));
  return math_select(m, nan, math_add(m, x, x), y);
}

/* ---- log --------------------------------------------------------------------------- */

/* atanh(s)/s = R(s^2) on s^2 in [0, 0.0295]; relative error 3.8e-10 after
 * rounding. log m = 2 atanh((m-1)/(m+1)). */
static const float math_log_poly[] = {0.333333313f, 0.20000194f, 0.142674461f, 0.118097275f};

static LLVMValueRef math_log(const math *m, LLVMValueRef x) {
  const double ln2 = 0.69314718055994530942;
  const float ln2_hi = (float)ln2, ln2_lo = (float)(ln2 - (double)ln2_hi);
  LLVMValueRef subnormal = math_less(m, x, 0x1p-126);
  LLVMValueRef xs = math_select(m, subnormal, math_mul(m, x, math_f(m, 0x1p23)), x);
  LLVMValueRef bits = LLVMBuildBitCast(m->b, xs, m->i, "");
  LLVMValueRef e = LLVMBuildSub(m->b, LLVMBuildLShr(m->b, bits, math_i(m, 23), ""),
                                math_i(m, 127), ""); /* for x > 0; others are replaced */
  e = LLVMBuildSub(m->b, e, math_select(m, subnormal, math_i(m, 23), math_i(m, 0)), "");
  LLVMValueRef mant = LLVMBuildOr(m->b, LLVMBuildAnd(m->b, bits, math_i(m, 0x7fffff), ""),
                                  math_i(m, 0x3f800000), "");
  LLVMValueRef mf = LLVMBuildBitCast(m->b, mant, m->f, ""); /* [1, 2) */
  LLVMValueRef high = math_greater(m, mf, 1.41421356237309505);
  mf = math_select(m, high, math_mul(m, mf, math_f(m, 0.5)), mf); /* [sqrt(1/2), sqrt 2) */
  e = LLVMBuildAdd(m->b, e, LLVMBuildZExt(m->b, high, m->i, ""), "");
  LLVMValueRef one = math_f(m, 1.0);
  LLVMValueRef s = LLVMBuildFDiv(m->b, math_sub(m, mf, one), math_add(m, mf, one), "");
  LLVMValueRef two_s = math_add(m, s, s);
  LLVMValueRef z = math_mul(m, s, s);
  LLVMValueRef log_m = math_fma(m, two_s, math_mul(m, z, math_poly(m, z, math_log_poly, 4)), two_s);
  LLVMValueRef ef = LLVMBuildSIToFP(m->b, e, m->f, "");
  LLVMValueRef y = math_fma(m, ef, math_f(m, ln2_hi), math_fma(m, ef, math_f(m, ln2_lo), log_m));
  y = math_select(m, LLVMBuildFCmp(m->b, LLVMRealOEQ, x, math_f(m, INFINITY), ""), x, y);
  y = math_select(m, LLVMBuildFCmp(m->b, LLVMRealOEQ, x, math_f(m, 0.0), ""),
                  math_f(m, -INFINITY), y);
  y = math_select(m, math_less(m, x, 0.0), math_f(m, NAN), y);
  return math_select(m, math_is_nan(m, x), math_add(m, x, x), y);
}

/* ---- tanh -------------------------------------------------------------------------- */

/* tanh(x)/x = 1 + t P(t), t = x^2 in [0, 0.390625]; relative error 6.5e-9. */
static const float math_tanh_poly[] = {-0.333333284f, 0.13333182f,     -0.053944584f,
                                       0.0216912646f, -0.00815785304f, 0.00212743529f};

static LLVMValueRef math_tanh(const math *m, LLVMValueRef x) {
  LLVMValueRef a = math_fabs(m, x);
  LLVMValueRef t = math_mul(m, x, x);
  LLVMValueRef small = math_fma(m, x, math_mul(m, t, math_poly(m, t, math_tanh_poly, 6)), x);
  small = math_copysign(m, small, x); /* -0 + -0 x (-0 P) is +0 */
  LLVMValueRef e = math_exp(m, math_add(m, a, a));
  LLVMValueRef q = LLVMBuildFDiv(m->b, math_f(m, 2.0), math_add(m, e, math_f(m, 1.0)), "");
  LLVMValueRef big = math_copysign(m, math_sub(m, math_f(m, 1.0), q), x);
  return math_select(m, math_less(m, a, 0.625), small, big);
}

/* ---- erf --------------------------------------------------------------------------- */

/* erf(x)/x = c0 + t P(t), t = x^2 in [0, 1]; c0 = 2/sqrt(pi) is applied as
 * hi + lo. Relative error 7e-8 with c0 rounded, 3e-11 of the fit. */
static const float math_erf_poly[] = {-0.376126379f, 0.112837821f,     -0.0268654302f,
                                      0.00522103161f, -0.000848408032f, 0.000112659589f,
                                      -9.66704465e-06f};
#define MATH_ERF_SATURATED 3.919205904 /* an f32; erfc(x) < 2^-25 from here on */

/* erfc(centre + u): on [1, 2.2] (centre 1.6) and [2.2, 3.92] (centre
 * 3.06); absolute errors 3.8e-9 and 9.9e-9 after rounding (a sixth of an
 * ulp of erf there, which is >= 0.84). */
static const float math_erfc_near[] = {
    0.0236516204f,  -0.0872290581f, 0.139566094f,    -0.119794823f,  0.049322512f,
    0.00438325386f, -0.0155570665f, 0.00599360885f, 0.00114575098f, -0.00135847391f};
static const float math_erfc_far[] = {
    1.50755168e-05f, -9.68006934e-05f, 0.000296630402f,  -0.000572276884f, 0.000772092375f,
    -0.000776036701f, 0.000603315828f, -0.000338416925f, 0.000102128521f,  -5.24423331e-06f};

static LLVMValueRef math_erf(const math *m, LLVMValueRef x) {
  const double c0 = 1.12837916709551257390; /* 2 / sqrt(pi) */
  const float c0_hi = (float)c0, c0_lo = (float)(c0 - (double)c0_hi);
  LLVMValueRef a = math_fabs(m, x);
  LLVMValueRef t = math_mul(m, x, x);
  LLVMValueRef tp = math_mul(m, t, math_horner(m, t, math_erf_poly, 7));
  LLVMValueRef small =
      math_fma(m, x, math_f(m, c0_hi), math_mul(m, x, math_add(m, tp, math_f(m, c0_lo))));
  small = math_copysign(m, small, x); /* for -0: c0_lo < 0 makes the fma's addend +0 */
  LLVMValueRef near = math_less(m, a, 2.2);
  LLVMValueRef u = math_sub(m, a, math_select(m, near, math_f(m, 1.6), math_f(m, 3.06)));
  enum { N = sizeof math_erfc_near / sizeof math_erfc_near[0] };
  LLVMValueRef c[N]; /* the interval's coefficients, chosen lane by lane */
  for (int k = 0; k < N; k++)
    c[k] = math_select(m, near, math_f(m, math_erfc_near[k]), math_f(m, math_erfc_far[k]));
  LLVMValueRef q = math_poly_values(m, u, c, N);
  LLVMValueRef big = math_sub(m, math_f(m, 1.0), q);
  big = math_select(m, LLVMBuildFCmp(m->b, LLVMRealOGE, a, math_f(m, MATH_ERF_SATURATED), ""),
                    math_f(m, 1.0), big);
  big = math_copysign(m, big, x);
  return math_select(m, math_less(m, a, 1.0), small, big);
}

/* ---- the entry ---------------------------------------------------------------------- */

int cg_math_expands(mfx_unary_op op) {
  return op == MFX_EXP || op == MFX_LOG || op == MFX_TANH || op == MFX_ERF;
}

static LLVMValueRef math_expand(mfx_cg *cg, mfx_unary_op op, LLVMValueRef x) {
  math m = math_for(cg, x);
  switch (op) {
  case MFX_EXP: return math_exp(&m, x);
  case MFX_LOG: return math_log(&m, x);
  case MFX_TANH: return math_tanh(&m, x);
  case MFX_ERF: return math_erf(&m, x);
  default: return NULL;
  }
}

LLVMValueRef cg_math_unary(mfx_cg *cg, mfx_unary_op op, LLVMValueRef x) {
  if (!cg_math_expands(op)) return NULL;
  return math_expand(cg, op, x);
}
