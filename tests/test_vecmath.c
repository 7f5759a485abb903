/* The f32 exp, log, tanh and erf of compiler/codegen_math.c, through the
 * real pipeline: Y[i] = f(X[i]) as a TE, scheduled (16 lanes vectorized,
 * serial, or bound to blocks and threads and run by the GPU emulation),
 * lowered, JIT-compiled, run, and compared with double-precision libm as
 * the truth.
 *
 * Inputs: every 37th f32 bit pattern over the whole range (both signs,
 * subnormals, infinities and NaNs included), every f32 around the points
 * where a method switches (erf at 1, 2.2 and 3.919206, tanh at 0.625, exp
 * near its overflow and underflow, log near 1), and a list of edges. The
 * largest error, in units in the last place of the truth rounded to f32
 * (the ulp of a subnormal is 2^-149; a result past FLT_MAX counts as 2^128),
 * must be within the bound codegen_math.c documents; every special value
 * must be exactly what libm gives (NaN for NaN, +-inf, +-0, +-1). */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

enum { CHUNK = 1 << 20 };

typedef enum { MODE_VECTOR, MODE_SERIAL, MODE_GPU_EMULATED } run_mode;

typedef struct {
  const char *name;
  mfx_unary_op op;
  double (*truth)(double);
  double max_ulp; /* the bound codegen_math.c documents */
} function;

static const function FUNCTIONS[] = {
    {"exp", MFX_EXP, exp, 1.0},
    {"log", MFX_LOG, log, 2.0},
    {"tanh", MFX_TANH, tanh, 1.5},
    {"erf", MFX_ERF, erf, 1.5},
};

/* ---- the kernel ----------------------------------------------------------------------- */

typedef struct {
  mfx_arena *a;
  mfx_jit_kernel *k;
} kernel;

static kernel build(const function *f, run_mode mode) {
  kernel k = {mfx_arena_create(), NULL};
  mfx_arena *a = k.a;
  int64_t n = CHUNK;
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 1, &n);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *i = mfx_var_ref(a, Y->axes[0]);
  mfx_expr *x = mfx_tensor_load(a, X, 1, &i);
  ck_assert_int_eq(mfx_compute_set_body(a, Y, mfx_unary(a, f->op, x)), MFX_OK);
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  mfx_stage *st = mfx_sched_stage(s, Y);
  mfx_itervar *outer, *inner;
  if (mode != MODE_SERIAL) {
    int64_t factor = mode == MODE_VECTOR ? 16 : 128;
    ck_assert_int_eq(mfx_sched_split(s, st, mfx_sched_itervar(st, "i"), factor, MFX_TAIL_GUARD,
                                     &outer, &inner),
                     MFX_OK);
    if (mode == MODE_VECTOR) {
      ck_assert_int_eq(mfx_sched_vectorize(s, st, inner), MFX_OK);
    } else {
      ck_assert_int_eq(mfx_sched_bind(s, st, outer, MFX_LOOP_BLOCK_X), MFX_OK);
      ck_assert_int_eq(mfx_sched_bind(s, st, inner, MFX_LOOP_THREAD_X), MFX_OK);
    }
  }
  mfx_func *fn = NULL;
  ck_assert_msg(mfx_lower(s, f->name, &fn) == MFX_OK, "%s", mfx_last_error());
  mfx_status status;
  if (mode == MODE_GPU_EMULATED) {
    mfx_gpu_program *gp = NULL;
    ck_assert_msg(mfx_split_kernels(a, fn, &gp) == MFX_OK, "%s", mfx_last_error());
    status = mfx_gpu_emulate_compile(a, gp, &k.k);
  } else {
    status = mfx_jit_compile(fn, &k.k);
  }
  ck_assert_msg(status == MFX_OK, "%s: %s", f->name, mfx_last_error());
  return k;
}

static void kernel_free(kernel *k) {
  mfx_jit_free(k->k);
  mfx_arena_destroy(k->a);
}

static void run(kernel *k, float *x, float *y) {
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(k->k)((void *[]){x, y}, &env), 0);
}

/* ---- errors ----------------------------------------------------------------------------- */

/* The ulp of truth's f32 binade: 2^(e - 23), at least 2^-149, at most 2^104. */
static double ulp_of(double truth) {
  double a = fabs(truth);
  if (a < 0x1p-126) return 0x1p-149;
  if (a >= 0x1p127) return 0x1p104;
  int e;
  frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
  return ldexp(1.0, e - 1 - 23);
}

static double error_ulp(float got, double truth) {
  double g = isinf(got) ? copysign(0x1p128, got) : (double)got;
  double t = isinf(truth) ? copysign(0x1p128, truth) : truth;
  return fabs(g - t) / ulp_of(t);
}

typedef struct {
  double worst;
  float worst_x, worst_got;
  int64_t checked;
  int64_t wrong_special; /* NaN, inf or zero where libm differs */
  char first_special[160];
} tally;

/* NaN for NaN, an exact 0 (with its sign) and infinities where the truth
 * rounded to f32 is one must be exactly that; other results are measured
 * in ulps (an inf where the truth is finite counts as 2^128). */
static void tally_one(tally *t, const function *f, float x, float got) {
  double truth = f->truth((double)x);
  float want = (float)truth;
  t->checked++;
  if (isnan(truth) || isnan(got) || truth == 0.0 || (isinf(want) && isinf(got))) {
    int same = (isnan(truth) && isnan(got)) ||
               (!isnan(got) && got == want && signbit(got) == signbit(want));
    if (!same && t->wrong_special++ == 0)
      snprintf(t->first_special, sizeof t->first_special, "%s(%a) = %a, libm gives %a", f->name,
               (double)x, (double)got, truth);
    return;
  }
  double e = error_ulp(got, truth);
  if (e > t->worst) {
    t->worst = e;
    t->worst_x = x;
    t->worst_got = got;
  }
}

/* Runs the kernel on n inputs (n <= CHUNK; the rest of the chunk is 0). */
static void check_inputs(kernel *k, const function *f, float *x, float *y, int64_t n,
                         tally *t) {
  for (int64_t i = n; i < CHUNK; i++) x[i] = 0.0f;
  run(k, x, y);
  for (int64_t i = 0; i < n; i++) tally_one(t, f, x[i], y[i]);
}

static float from_bits(uint32_t b) {
  float v;
  memcpy(&v, &b, sizeof v);
  return v;
}

static uint32_t to_bits(float v) {
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

/* Every f32 from lo to hi (lo <= hi, same sign) and the same negated. */
static void check_every_float(kernel *k, const function *f, float *x, float *y, float lo,
                              float hi, tally *t) {
  int64_t n = 0;
  for (int sign = 0; sign < 2; sign++)
    for (uint32_t b = to_bits(lo); b <= to_bits(hi); b++) {
      x[n++] = sign ? -from_bits(b) : from_bits(b);
      if (n == CHUNK) check_inputs(k, f, x, y, n, t), n = 0;
    }
  if (n > 0) check_inputs(k, f, x, y, n, t);
}

static void check_stride(kernel *k, const function *f, float *x, float *y, uint32_t stride,
                         tally *t) {
  int64_t n = 0;
  for (uint64_t b = 0; b <= UINT32_MAX; b += stride) {
    x[n++] = from_bits((uint32_t)b);
    if (n == CHUNK) check_inputs(k, f, x, y, n, t), n = 0;
  }
  if (n > 0) check_inputs(k, f, x, y, n, t);
}

static const float EDGES[] = {
    0.0f, -0.0f, 0x1p-149f, -0x1p-149f, 0x1.fffffcp-127f, 0x1p-126f, -0x1p-126f, 1e-30f,
    -1e-30f, 1e-20f, 1e-10f, -1e-10f, 1e-5f, 0.5f, 1.0f, -1.0f, 0x1.fffffep-1f, 2.0f, 2.2f,
    3.919205904f, 3.919205665f, -3.919205904f, 4.0f, -4.0f, 9.0109129f, -9.0109129f, 10.0f,
    0.625f, 0.62499994f, 88.7228317f, 88.7228394f, 88.72284f, 89.0f, 90.0f, 100.0f,
    -87.3365402f, -87.3365479f, -103.972076f, -103.97208f, -104.0f, -110.0f, 1e10f, -1e10f,
    FLT_MAX, -FLT_MAX, 1.41421354f, 1.41421366f, 0.70710677f, INFINITY, -INFINITY, NAN, -NAN};

static void check_function(const function *f, run_mode mode, int dense) {
  float *x = malloc(sizeof(float) * CHUNK), *y = malloc(sizeof(float) * CHUNK);
  ck_assert(x != NULL && y != NULL);
  kernel k = build(f, mode);
  tally t = {0};
  int n_edges = (int)(sizeof EDGES / sizeof EDGES[0]);
  memcpy(x, EDGES, sizeof EDGES);
  check_inputs(&k, f, x, y, n_edges, &t);
  check_stride(&k, f, x, y, dense ? 37 : 3701, &t);
  if (dense) {
    if (f->op == MFX_ERF) {
      check_every_float(&k, f, x, y, 0.99f, 1.01f, &t);
      check_every_float(&k, f, x, y, 2.19f, 2.21f, &t);
      check_every_float(&k, f, x, y, 3.9f, 3.94f, &t);
      check_every_float(&k, f, x, y, 0x1p-149f, 0x1p-120f, &t);
    } else if (f->op == MFX_TANH) {
      check_every_float(&k, f, x, y, 0.62f, 0.63f, &t);
      check_every_float(&k, f, x, y, 8.9f, 9.1f, &t);
    } else if (f->op == MFX_EXP) {
      check_every_float(&k, f, x, y, 88.0f, 89.0f, &t);
      check_every_float(&k, f, x, y, 86.0f, 105.0f, &t);
    } else {
      check_every_float(&k, f, x, y, 0.99f, 1.01f, &t);
      check_every_float(&k, f, x, y, 1.41f, 1.42f, &t);
      check_every_float(&k, f, x, y, 0x1p-149f, 0x1p-140f, &t);
    }
  }
  static const char *const modes[] = {"vector", "serial", "gpu-emulated"};
  fprintf(stderr, "%s (%s): %lld inputs, max error %.3f ulp at x = %a (got %a, truth %.9g)\n",
          f->name, modes[mode], (long long)t.checked, t.worst, (double)t.worst_x,
          (double)t.worst_got, f->truth((double)t.worst_x));
  ck_assert_msg(t.wrong_special == 0, "%s (%s): %lld special values differ; first: %s",
                f->name, modes[mode], (long long)t.wrong_special, t.first_special);
  ck_assert_msg(t.worst <= f->max_ulp, "%s (%s): %.3f ulp at x = %a (got %a), the bound is %g",
                f->name, modes[mode], t.worst, (double)t.worst_x, (double)t.worst_got,
                f->max_ulp);
  kernel_free(&k);
  free(x);
  free(y);
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(vectorized_sweep) { check_function(&FUNCTIONS[_i], MODE_VECTOR, 1); }
END_TEST

START_TEST(serial_sweep) { check_function(&FUNCTIONS[_i], MODE_SERIAL, 0); }
END_TEST

START_TEST(gpu_emulated_sweep) { check_function(&FUNCTIONS[_i], MODE_GPU_EMULATED, 0); }
END_TEST

/* Known values that need no libm: erf and tanh keep tiny inputs' relative
 * accuracy and their sign, and saturate to exactly +-1. */
START_TEST(known_values) {
  const function *erf_f = &FUNCTIONS[3], *tanh_f = &FUNCTIONS[2];
  float *x = calloc(CHUNK, sizeof(float)), *y = malloc(sizeof(float) * CHUNK);
  ck_assert(x != NULL && y != NULL);
  static const float in[] = {1e-30f, -1e-30f, 0x1p-149f, -0.0f, 5.0f, -5.0f, 1e30f};
  enum { N_IN = sizeof in / sizeof in[0] };
  memcpy(x, in, sizeof in);
  kernel k = build(erf_f, MODE_VECTOR);
  run(&k, x, y);
  ck_assert_float_eq(y[0], (float)(1e-30 * 1.1283791670955126));
  ck_assert_float_eq(y[1], -y[0]);
  ck_assert(y[2] == 0x1p-149f); /* 1.128 x 2^-149 rounds to 2^-149 */
  ck_assert(y[3] == 0.0f && signbit(y[3]));
  ck_assert(y[4] == 1.0f && y[5] == -1.0f && y[6] == 1.0f);
  kernel_free(&k);
  k = build(tanh_f, MODE_VECTOR);
  run(&k, x, y);
  ck_assert(y[0] == 1e-30f && y[1] == -1e-30f && y[2] == 0x1p-149f);
  ck_assert(y[3] == 0.0f && signbit(y[3]));
  ck_assert(y[6] == 1.0f);
  kernel_free(&k);
  free(x);
  free(y);
}
END_TEST

/* The vectorized kernel of erf calls nothing: no erff, no other function. */
START_TEST(vectorized_erf_calls_no_library) {
  kernel k = build(&FUNCTIONS[3], MODE_VECTOR);
  kernel_free(&k);
  mfx_arena *a = mfx_arena_create();
  int64_t n = 4096;
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 1, &n);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *i = mfx_var_ref(a, Y->axes[0]);
  mfx_expr *body = mfx_unary(a, MFX_ERF, mfx_tensor_load(a, X, 1, &i));
  body = mfx_add(a, body, mfx_unary(a, MFX_TANH, body));
  body = mfx_add(a, body, mfx_unary(a, MFX_LOG, mfx_unary(a, MFX_EXP, body)));
  ck_assert_int_eq(mfx_compute_set_body(a, Y, body), MFX_OK);
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  mfx_stage *st = mfx_sched_stage(s, Y);
  mfx_itervar *outer, *inner;
  ck_assert_int_eq(mfx_sched_split(s, st, mfx_sched_itervar(st, "i"), 16, MFX_TAIL_GUARD, &outer,
                                   &inner),
                   MFX_OK);
  ck_assert_int_eq(mfx_sched_vectorize(s, st, inner), MFX_OK);
  mfx_func *fn = NULL;
  ck_assert_int_eq(mfx_lower(s, "math", &fn), MFX_OK);
  char *ll = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_emit(fn, MFX_EMIT_LL, &ll, &size) == MFX_OK, "%s", mfx_last_error());
  ck_assert_msg(strstr(ll, "erff") == NULL && strstr(ll, "tanhf") == NULL &&
                    strstr(ll, "llvm.exp.") == NULL && strstr(ll, "llvm.log.") == NULL,
                "the kernel calls a library function");
  ck_assert_msg(strstr(ll, "<16 x float>") != NULL, "the kernel is not vectorized");
  /* calls only to intrinsics */
  for (const char *p = strstr(ll, "call "); p != NULL; p = strstr(p + 1, "call "))
    ck_assert_msg(strstr(p, "@llvm.") != NULL && strstr(p, "@llvm.") < strchr(p, '\n'),
                  "a call of a function: %.80s", p);
  free(ll);
  mfx_arena_destroy(a);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("vecmath");
  TCase *tc = tcase_create("sweep");
  tcase_set_timeout(tc, 600);
  int n = (int)(sizeof FUNCTIONS / sizeof FUNCTIONS[0]);
  tcase_add_loop_test(tc, vectorized_sweep, 0, n);
  tcase_add_loop_test(tc, serial_sweep, 0, n);
  tcase_add_loop_test(tc, gpu_emulated_sweep, 0, n);
  tcase_add_test(tc, known_values);
  tcase_add_test(tc, vectorized_erf_calls_no_library);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return check_run_suite(suite());
}
