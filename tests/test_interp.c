/* The IR interpreter (compiler/interp.c):
 * (a) on every registered op's tensor expression, on three shapes (ones,
 *     odd sizes, larger odd sizes), it agrees with the op's plain-C
 *     reference: bit for bit, except where the reference accumulates in
 *     double (linear, matadd, binary_attention), within 1e-5 of the largest
 *     |reference| value: the interpreter sums n terms in f32 in order, an
 *     error below n 2^-24 sum|terms|, about 2e-6 here (n <= 33, |terms| <= 1);
 * (b) every node type and dtype edge (wrap-around, negative division, shifts,
 *     casts, NaN through min/max, ties in round, popcount, reductions) gives
 *     known values, the same as the JIT-compiled kernel of the same TE text
 *     (parse, default schedule, lower, compile: the path of `mfx lower
 *     FILE.te`); the f32 math functions within 1e-5 relative (a target may
 *     use its own approximations of exp, erf, tanh), and x*y+z, which the
 *     generated code contracts into a fused multiply-add, rounded twice here;
 * (c) bad input: a missing input, a wrong dtype or shape, a load out of
 *     bounds, a division by zero, an undefined value (shift by >= the width,
 *     f32 -> int out of range) are errors that say what and where. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"
#include "mfx/reference.h"
#include "check_main.h"

/* ---- (a) every op against its plain-C reference ------------------------------------------ */

/* Ops whose reference sums in double: the interpreter's f32 sums differ by
 * rounding only. */
static int double_reference(const char *op) {
  return strcmp(op, "linear") == 0 || strcmp(op, "linear_gelu") == 0 || strcmp(op, "matadd") == 0 ||
         strcmp(op, "binary_attention") == 0;
}

#define DOUBLE_REF_TOL 1e-5

/* Bit for bit; an f32 NaN matches any NaN (payloads are not specified). */
static int64_t first_difference(const mfx_array *got, const mfx_array *want) {
  size_t size = mfx_dtype_size(want->dtype);
  const unsigned char *g = got->data, *w = want->data;
  for (int64_t i = 0; i < mfx_array_numel(want); i++) {
    if (want->dtype == MFX_F32 && isnan(((const float *)got->data)[i]) &&
        isnan(((const float *)want->data)[i]))
      continue;
    if (memcmp(g + (size_t)i * size, w + (size_t)i * size, size) != 0) return i;
  }
  return -1;
}

static void shape_dims(const mfx_op *op, int which, int64_t *dims) {
  for (int d = 0; d < op->n_dims; d++) {
    if (which == 0) dims[d] = 1;
    else if (which == 1) dims[d] = 3 + 2 * d;               /* 3, 5, 7, ...: odd */
    else dims[d] = op->n_dims <= 3 ? 33 - 8 * d : 2 + 3 * d; /* 33, 25, 17 / 2, 5, 8, 11, 14 */
  }
}

static void check_op_shape(const mfx_op *op, const int64_t *dims) {
  const mfx_reference_op *ref = mfx_reference_find(op->name);
  ck_assert_msg(ref != NULL, "%s has no reference", op->name);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  ck_assert_msg(mfx_op_build_for(op, "cpu", a, dims, NULL, &s) == MFX_OK, "%s: %s", op->name,
                mfx_last_error());
  ck_assert_int_eq(s->n_inputs, op->n_inputs);
  ck_assert_int_eq(s->n_outputs, op->n_outputs);
  mfx_array in[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_random_inputs(ref->random_input, op->n_inputs, dims, 7, in);
  ref->reference(dims, in, want);
  ck_assert_msg(mfx_interp_run(s, in, got) == MFX_OK, "%s dims %lld,%lld,%lld: %s", op->name,
                (long long)dims[0], (long long)dims[1], (long long)dims[2], mfx_last_error());
  for (int o = 0; o < op->n_outputs; o++) {
    ck_assert_int_eq(got[o].dtype, want[o].dtype);
    ck_assert_int_eq(mfx_array_numel(&got[o]), mfx_array_numel(&want[o]));
    if (double_reference(op->name)) {
      mfx_compare c = mfx_compare_arrays(&got[o], &want[o], DOUBLE_REF_TOL);
      ck_assert_msg(c.ok, "%s output %d: max_abs_err %g (element %lld)", op->name, o,
                    c.max_abs_err, (long long)c.worst_index);
    } else {
      int64_t bad = first_difference(&got[o], &want[o]);
      ck_assert_msg(bad < 0, "%s output %d: element %lld differs from the reference", op->name,
                    o, (long long)bad);
    }
  }
  for (int i = 0; i < op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int o = 0; o < op->n_outputs; o++) {
    mfx_array_free(&want[o]);
    mfx_array_free(&got[o]);
  }
  mfx_arena_destroy(a);
}

START_TEST(every_op_matches_its_reference) {
  ck_assert_int_ge(mfx_op_count(), 11);
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    for (int which = 0; which < 3; which++) {
      int64_t dims[MFX_OP_MAX_DIMS] = {0};
      shape_dims(op, which, dims);
      check_op_shape(op, dims);
    }
  }
}
END_TEST

/* The check above can fail: a reference that differs in one element is seen. */
START_TEST(a_wrong_reference_is_seen) {
  const mfx_op *op = mfx_op_find("hamming");
  int64_t dims[3] = {3, 5, 2};
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s;
  ck_assert_int_eq(mfx_op_build_for(op, "cpu", a, dims, NULL, &s), MFX_OK);
  mfx_array in[2], want[1], got[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_op_random_inputs(op, dims, 3, in);
  op->reference(dims, in, want);
  ((uint32_t *)in[0].data)[4] ^= 1u; /* Q[2, 0]: row 2 of S moves by 2 */
  ck_assert_int_eq(mfx_interp_run(s, in, got), MFX_OK);
  ck_assert_int_eq(first_difference(&got[0], &want[0]), 2 * 5);
  mfx_array_free(&in[0]);
  mfx_array_free(&in[1]);
  mfx_array_free(&want[0]);
  mfx_array_free(&got[0]);
  mfx_arena_destroy(a);
}
END_TEST

/* ---- (b) node types and dtype edges against the JIT ---------------------------------------- */

#define MAX_ARGS 16

/* One TE text, parsed, interpreted and JIT-compiled with its default
 * schedule, on given input data. */
typedef struct {
  mfx_arena *arena;
  mfx_schedule *s;
  mfx_array in[MAX_ARGS];
  mfx_array interp[MAX_ARGS]; /* the interpreter's outputs */
  mfx_array jit[MAX_ARGS];    /* the compiled kernel's */
} te_case;

static void te_parse(te_case *t, const char *text) {
  memset(t, 0, sizeof *t);
  t->arena = mfx_arena_create();
  ck_assert_msg(mfx_te_parse(t->arena, text, "case.te", &t->s) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_le(t->s->n_inputs + t->s->n_outputs, MAX_ARGS);
  for (int i = 0; i < t->s->n_inputs; i++) {
    const mfx_buffer *b = t->s->inputs[i]->buf;
    ck_assert_int_eq(mfx_array_create(&t->in[i], b->dtype, b->ndim, b->shape), MFX_OK);
  }
}

static void te_run_jit(te_case *t) {
  mfx_func *fn;
  mfx_jit_kernel *jit;
  ck_assert_msg(mfx_lower(t->s, "kernel", &fn) == MFX_OK, "%s", mfx_last_error());
  ck_assert_msg(mfx_jit_compile(fn, &jit) == MFX_OK, "%s", mfx_last_error());
  void *args[MAX_ARGS];
  for (int i = 0; i < t->s->n_inputs; i++) args[i] = t->in[i].data;
  for (int o = 0; o < t->s->n_outputs; o++) {
    const mfx_buffer *b = t->s->outputs[o]->buf;
    ck_assert_int_eq(mfx_array_create(&t->jit[o], b->dtype, b->ndim, b->shape), MFX_OK);
    args[t->s->n_inputs + o] = t->jit[o].data;
  }
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(jit)(args, &env), 0);
  mfx_jit_free(jit);
}

/* Parse, fill inputs (the caller's fill), interpret and compile. */
static void te_run(te_case *t) {
  ck_assert_msg(mfx_interp_run(t->s, t->in, t->interp) == MFX_OK, "%s", mfx_last_error());
  te_run_jit(t);
}

static void te_free(te_case *t) {
  for (int i = 0; i < MAX_ARGS; i++) {
    mfx_array_free(&t->in[i]);
    mfx_array_free(&t->interp[i]);
    mfx_array_free(&t->jit[i]);
  }
  mfx_arena_destroy(t->arena);
}

/* Output o of the interpreter and of the JIT kernel are the same bytes. */
static void te_same(const te_case *t, int o) {
  int64_t bad = first_difference(&t->interp[o], &t->jit[o]);
  ck_assert_msg(bad < 0, "output %s: element %lld differs between interpreter and JIT",
                t->s->outputs[o]->buf->name, (long long)bad);
}

static void te_same_all(const te_case *t) {
  for (int o = 0; o < t->s->n_outputs; o++) te_same(t, o);
}

/* Output named `name` of the interpreter. */
static const mfx_array *te_out(const te_case *t, const char *name) {
  for (int o = 0; o < t->s->n_outputs; o++)
    if (strcmp(t->s->outputs[o]->buf->name, name) == 0) return &t->interp[o];
  ck_abort_msg("no output %s", name);
  return NULL;
}

static void set_i32(mfx_array *a, const int32_t *v) { memcpy(a->data, v, sizeof *v * (size_t)mfx_array_numel(a)); }
static void set_f32(mfx_array *a, const float *v) { memcpy(a->data, v, sizeof *v * (size_t)mfx_array_numel(a)); }

START_TEST(integers_wrap_around) {
  te_case t;
  te_parse(&t, "placeholder A: i8[4]\n"
               "placeholder B: i32[4]\n"
               "placeholder U: u8[4]\n"
               "compute S8: i8[4] (i) = A[i] + i8(100)\n"
               "compute M32: i32[4] (i) = B[i] * 65536\n"
               "compute D8: u8[4] (i) = U[i] - u8(3)\n"
               "compute N8: i8[4] (i) = -A[i]\n"
               "compute ABS8: i8[4] (i) = abs(A[i])\n");
  int8_t A[4] = {127, -128, 27, -1};
  int32_t B[4] = {32768, -32769, 65535, 1};
  uint8_t U[4] = {0, 2, 3, 255};
  memcpy(t.in[0].data, A, 4);
  set_i32(&t.in[1], B);
  memcpy(t.in[2].data, U, 4);
  te_run(&t);
  const int8_t *s8 = te_out(&t, "S8")->data, *n8 = te_out(&t, "N8")->data,
               *abs8 = te_out(&t, "ABS8")->data;
  const int32_t *m32 = te_out(&t, "M32")->data;
  const uint8_t *d8 = te_out(&t, "D8")->data;
  ck_assert_int_eq(s8[0], -29); /* 227 - 256 */
  ck_assert_int_eq(s8[1], -28);
  ck_assert_int_eq(s8[2], 127);
  ck_assert_int_eq(m32[0], INT32_MIN); /* 2^31 wraps */
  ck_assert_int_eq(m32[1], 2147418112); /* -(2^31 + 2^16) + 2^32 */
  ck_assert_int_eq(m32[2], -65536);
  ck_assert_int_eq(d8[0], 253);
  ck_assert_int_eq(d8[1], 255);
  ck_assert_int_eq(d8[2], 0);
  ck_assert_int_eq(n8[1], -128); /* -(-128) wraps to itself */
  ck_assert_int_eq(abs8[1], -128);
  ck_assert_int_eq(abs8[3], 1);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

START_TEST(division_truncates_toward_zero) {
  te_case t;
  te_parse(&t, "placeholder A: i32[4]\n"
               "placeholder B: i32[4]\n"
               "placeholder U: u32[4]\n"
               "compute Q2: i32[4] (i) = A[i] / 2\n"
               "compute R2: i32[4] (i) = A[i] % 2\n"
               "compute QN: i32[4] (i) = A[i] / -2\n"
               "compute RN: i32[4] (i) = A[i] % -2\n"
               "compute Q3: i32[4] (i) = A[i] / 3\n"
               "compute R3: i32[4] (i) = A[i] % 3\n"
               "compute UQ: u32[4] (i) = U[i] / u32(3)\n"
               "compute UR: u32[4] (i) = U[i] % u32(3)\n"
               "compute I: i64[4] (i) = (i64(A[i]) - 6) / 4\n");
  set_i32(&t.in[0], (int32_t[]){-7, 7, -7, INT32_MIN});
  set_i32(&t.in[1], (int32_t[]){2, -2, -2, 3});
  set_i32(&t.in[2], (int32_t[]){-1, 7, 8, 2}); /* u32: 4294967295, ... */
  te_run(&t);
  /* Divisors are constants: the compiler refuses a divisor it cannot
   * prove nonzero (compiler/bounds.c). */
  const int32_t *q2 = te_out(&t, "Q2")->data, *r2 = te_out(&t, "R2")->data;
  const int32_t *qn = te_out(&t, "QN")->data, *rn = te_out(&t, "RN")->data;
  const int32_t *q3 = te_out(&t, "Q3")->data, *r3 = te_out(&t, "R3")->data;
  const uint32_t *uq = te_out(&t, "UQ")->data, *ur = te_out(&t, "UR")->data;
  const int64_t *i64 = te_out(&t, "I")->data;
  ck_assert_int_eq(q2[0], -3);
  ck_assert_int_eq(r2[0], -1);
  ck_assert_int_eq(qn[1], -3);
  ck_assert_int_eq(rn[1], 1);
  ck_assert_int_eq(qn[2], 3);
  ck_assert_int_eq(rn[2], -1);
  ck_assert_int_eq(q3[3], -715827882);
  ck_assert_int_eq(r3[3], -2);
  ck_assert_uint_eq(uq[0], 1431655765u);
  ck_assert_uint_eq(ur[0], 0);
  ck_assert_uint_eq(ur[2], 2);
  ck_assert_int_eq(i64[0], -3); /* -13 / 4 */
  te_same_all(&t);
  te_free(&t);
}
END_TEST

START_TEST(shifts_bitwise_and_popcount) {
  te_case t;
  te_parse(&t, "placeholder A: i32[4]\n"
               "placeholder S: i32[4]\n"
               "placeholder W: u32[4]\n"
               "compute SR: i32[4] (i) = A[i] >> S[i]\n"
               "compute SL: i32[4] (i) = A[i] << S[i]\n"
               "compute UR: u32[4] (i) = W[i] >> u32(S[i])\n"
               "compute B8: i8[4] (i) = i8(1) << i8(S[i] & 7)\n"
               "compute P: i32[4] (i) = i32(popcount(W[i] ^ u32(A[i])))\n"
               "compute P8: i32[4] (i) = i32(popcount(i8(A[i])))\n"
               "compute N: i32[4] (i) = ~A[i] | (A[i] & 12)\n");
  set_i32(&t.in[0], (int32_t[]){-9, 9, INT32_MIN, -1});
  set_i32(&t.in[1], (int32_t[]){1, 3, 31, 7});
  set_i32(&t.in[2], (int32_t[]){-8, 0x0F0F0F0F, 1, 0});
  te_run(&t);
  const int32_t *sr = te_out(&t, "SR")->data, *sl = te_out(&t, "SL")->data;
  const uint32_t *ur = te_out(&t, "UR")->data;
  const int8_t *b8 = te_out(&t, "B8")->data;
  const int32_t *p = te_out(&t, "P")->data, *p8 = te_out(&t, "P8")->data;
  const int32_t *n = te_out(&t, "N")->data;
  ck_assert_int_eq(sr[0], -5); /* arithmetic: floor(-9 / 2) */
  ck_assert_int_eq(sr[1], 1);
  ck_assert_int_eq(sr[2], -1);
  ck_assert_int_eq(sl[1], 72);
  ck_assert_int_eq(sl[3], -128);
  ck_assert_uint_eq(ur[0], 0x7FFFFFFCu); /* logical */
  ck_assert_int_eq(b8[3], -128);         /* 1 << 7 in i8 */
  ck_assert_int_eq(p[0], 4);             /* 0xFFFFFFF8 ^ 0xFFFFFFF7 = 0xF */
  ck_assert_int_eq(p[3], 32);
  ck_assert_int_eq(p8[3], 8);
  ck_assert_int_eq(p8[2], 0);
  ck_assert_int_eq(n[1], ~9 | 8);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

START_TEST(casts_follow_c) {
  te_case t;
  te_parse(&t, "placeholder X: f32[6]\n"
               "placeholder A: i32[6]\n"
               "compute FI: i32[6] (i) = i32(X[i])\n"
               "compute FU: u8[6] (i) = u8(abs(X[i]))\n"
               "compute IU: u32[6] (i) = u32(A[i])\n"
               "compute I8: i8[6] (i) = i8(A[i])\n"
               "compute IF: f32[6] (i) = f32(A[i])\n"
               "compute UF: f32[6] (i) = f32(u32(A[i]))\n"
               "compute IL: i64[6] (i) = i64(u32(A[i])) + i64(i8(A[i]))\n");
  set_f32(&t.in[0], (float[]){2.7f, -2.7f, 255.9f, -0.9f, 200.25f, 100.5f});
  set_i32(&t.in[1], (int32_t[]){-1, 300, 16777217, INT32_MIN, 128, -129});
  te_run(&t);
  const int32_t *fi = te_out(&t, "FI")->data;
  const uint8_t *fu = te_out(&t, "FU")->data;
  const uint32_t *iu = te_out(&t, "IU")->data;
  const int8_t *i8 = te_out(&t, "I8")->data;
  const float *iff = te_out(&t, "IF")->data, *uf = te_out(&t, "UF")->data;
  const int64_t *il = te_out(&t, "IL")->data;
  ck_assert_int_eq(fi[0], 2);
  ck_assert_int_eq(fi[1], -2);
  ck_assert_int_eq(fi[3], 0);
  ck_assert_int_eq(fu[2], 255);
  ck_assert_uint_eq(iu[0], 4294967295u);
  ck_assert_int_eq(i8[1], 44);
  ck_assert_int_eq(i8[4], -128);
  ck_assert_int_eq(i8[5], 127);
  ck_assert(iff[2] == 16777216.0f); /* rounded to nearest even */
  ck_assert(uf[0] == 4294967296.0f);
  ck_assert_int_eq(il[0], 4294967295LL - 1);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

START_TEST(nan_through_min_max_and_compares) {
  te_case t;
  te_parse(&t, "placeholder X: f32[4]\n"
               "placeholder Y: f32[4]\n"
               "compute MX: f32[4] (i) = max(X[i], Y[i])\n"
               "compute MN: f32[4] (i) = min(X[i], Y[i])\n"
               "compute C: i32[4] (i) = select(X[i] != Y[i], i32(1), i32(0)) + select(X[i] < Y[i], i32(2), "
               "i32(0)) + select(X[i] == X[i], i32(4), i32(0)) + select(X[i] >= Y[i], i32(8), i32(0))\n"
               "compute B: u8[4] (i) = u8(X[i] != 0f) + u8(Y[i] > 0f)\n"
               "compute R: f32[4] (i) = X[i] / Y[i] - Y[i]\n");
  set_f32(&t.in[0], (float[]){NAN, 1.0f, NAN, 7.5f});
  set_f32(&t.in[1], (float[]){2.0f, NAN, NAN, -2.0f});
  te_run(&t);
  const float *mx = te_out(&t, "MX")->data, *mn = te_out(&t, "MN")->data;
  const float *r = te_out(&t, "R")->data;
  const int32_t *c = te_out(&t, "C")->data;
  ck_assert(mx[0] == 2.0f && mn[0] == 2.0f); /* NaN gives the other operand */
  ck_assert(mx[1] == 1.0f && mn[1] == 1.0f);
  ck_assert(isnan(mx[2]) && isnan(mn[2]));
  ck_assert_int_eq(c[0], 1); /* unordered: only != holds */
  ck_assert_int_eq(c[1], 1 + 4);
  ck_assert_int_eq(c[3], 1 + 4 + 8);
  ck_assert(r[3] == -1.75f);
  ck_assert_int_eq(((uint8_t *)te_out(&t, "B")->data)[0], 2); /* NaN != 0 */
  te_same_all(&t);
  te_free(&t);
}
END_TEST

/* Logic on bool, bool converted to numbers, and the dtypes not met above
 * (i16, u64). */
START_TEST(logic_and_remaining_dtypes) {
  te_case t;
  te_parse(&t, "placeholder X: f32[4]\n"
               "placeholder A: i32[4]\n"
               "compute L: u8[4] (i) = u8((X[i] > 0f || A[i] <= 1) && !(X[i] == 2f))\n"
               "compute F: f32[4] (i) = f32(X[i] >= 1f) - f32(A[i] != 0)\n"
               "compute W: i16[4] (i) = i16(A[i]) * i16(300) + i16(i)\n"
               "compute U: u64[4] (i) = u64(A[i]) - u64(i) * u64(3)\n"
               "compute M: u64[4] (i) = max(u64(A[i]), u64(5)) >> u64(1)\n");
  set_f32(&t.in[0], (float[]){2.0f, -1.0f, 0.5f, -3.0f});
  set_i32(&t.in[1], (int32_t[]){0, 1, 200, -2});
  te_run(&t);
  const uint8_t *l = te_out(&t, "L")->data;
  const float *f = te_out(&t, "F")->data;
  const int16_t *w = te_out(&t, "W")->data;
  const uint64_t *u = te_out(&t, "U")->data, *m = te_out(&t, "M")->data;
  ck_assert(l[0] == 0 && l[1] == 1 && l[2] == 1 && l[3] == 1);
  ck_assert(f[0] == 1.0f && f[1] == -1.0f && f[2] == -1.0f && f[3] == -1.0f);
  ck_assert_int_eq(w[2], (int16_t)(uint16_t)(60000 + 2)); /* wraps at 16 bits */
  ck_assert_int_eq(w[3], -597);
  ck_assert(u[0] == 0 && u[1] == UINT64_MAX - 1); /* 1 - 3 */
  ck_assert(u[3] == UINT64_MAX - 1 - 9);          /* sign-extended -2, minus 9 */
  ck_assert(m[0] == 2 && m[3] == UINT64_MAX / 2); /* unsigned max, logical shift */
  te_same_all(&t);
  te_free(&t);
}
END_TEST

/* u8(NaN) is undefined in the generated code: an error, not a value. */
START_TEST(undefined_conversions_are_errors) {
  static const float bad[] = {NAN, 3e9f, -2147483904.0f, INFINITY};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    te_case t;
    te_parse(&t, "placeholder X: f32[2]\n"
                 "compute Y: i32[2] (i) = i32(X[i])\n");
    set_f32(&t.in[0], (float[]){1.0f, bad[k]});
    ck_assert_int_ne(mfx_interp_run(t.s, t.in, t.interp), MFX_OK);
    ck_assert_msg(strstr(mfx_last_error(), "Y[1]") != NULL &&
                      strstr(mfx_last_error(), "f32 to integer conversion") != NULL,
                  "%s", mfx_last_error());
    ck_assert_ptr_null(t.interp[0].data);
    te_free(&t);
  }
  /* In range at both ends: defined. */
  te_case t;
  te_parse(&t, "placeholder X: f32[4]\ncompute Y: i32[4] (i) = i32(X[i])\n"
               "compute U: u32[4] (i) = u32(abs(X[i]))\n");
  set_f32(&t.in[0], (float[]){-2147483648.0f, 2147483520.0f, -0.99f, 0.5f});
  te_run(&t);
  ck_assert_int_eq(((int32_t *)te_out(&t, "Y")->data)[0], INT32_MIN);
  ck_assert_int_eq(((int32_t *)te_out(&t, "Y")->data)[1], 2147483520);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

START_TEST(round_ties_to_even) {
  te_case t;
  te_parse(&t, "placeholder X: f32[8]\n"
               "compute R: f32[8] (i) = round(X[i])\n"
               "compute Q: i32[8] (i) = i32(round(X[i] * 2f))\n");
  set_f32(&t.in[0], (float[]){0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 8388607.5f, 0.49999997f, -2.5f});
  te_run(&t);
  const float *r = te_out(&t, "R")->data;
  ck_assert(r[0] == 0.0f && r[1] == 2.0f && r[2] == 2.0f);
  ck_assert(r[3] == 0.0f && signbit(r[3]));
  ck_assert(r[4] == -2.0f && r[5] == 8388608.0f && r[6] == 0.0f && r[7] == -2.0f);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

/* Each f32 operation rounded alone: (1+2^-12)^2 - (1+2^-11) is 0 here; a
 * fused multiply-add (what the generated code may use) gives 2^-24. */
START_TEST(f32_operations_round_one_by_one) {
  te_case t;
  te_parse(&t, "placeholder X: f32[2]\n"
               "placeholder Z: f32[2]\n"
               "compute Y: f32[2] (i) = X[i] * X[i] + Z[i]\n");
  float x = 1.0f + 1.0f / 4096.0f;
  set_f32(&t.in[0], (float[]){x, 3.0f});
  set_f32(&t.in[1], (float[]){-(1.0f + 1.0f / 2048.0f), 0.25f});
  te_run(&t);
  const float *y = te_out(&t, "Y")->data, *j = t.jit[0].data;
  ck_assert(y[0] == 0.0f);
  ck_assert(y[1] == 9.25f);
  ck_assert(j[0] == 0.0f || j[0] == 1.0f / 16777216.0f);
  ck_assert(j[1] == 9.25f);
  te_free(&t);
}
END_TEST

/* Within rel of max(1, |want|), element by element. */
static void close_enough(const mfx_array *got, const mfx_array *want, double rel) {
  const float *g = got->data, *w = want->data;
  for (int64_t i = 0; i < mfx_array_numel(want); i++) {
    double tol = rel * fmax(1.0, fabs((double)w[i]));
    ck_assert_msg(fabs((double)g[i] - (double)w[i]) <= tol, "element %lld: %.9g vs %.9g",
                  (long long)i, (double)g[i], (double)w[i]);
  }
}

START_TEST(math_functions_are_libm_in_f32) {
  te_case t;
  te_parse(&t, "placeholder X: f32[64]\n"
               "compute E: f32[64] (i) = exp(X[i])\n"
               "compute L: f32[64] (i) = log(abs(X[i]) + 0.5f)\n"
               "compute T: f32[64] (i) = tanh(X[i])\n"
               "compute F: f32[64] (i) = erf(X[i])\n"
               "compute S: f32[64] (i) = sqrt(abs(X[i]))\n");
  float *x = t.in[0].data;
  for (int i = 0; i < 64; i++) x[i] = -8.0f + 0.25f * (float)i + 0.01f;
  te_run(&t);
  const float *e = te_out(&t, "E")->data, *f = te_out(&t, "F")->data;
  const float *s = te_out(&t, "S")->data;
  for (int i = 0; i < 64; i++) {
    ck_assert(e[i] == expf(x[i]));
    ck_assert(f[i] == erff(x[i]));
    ck_assert(s[i] == sqrtf(fabsf(x[i])));
  }
  for (int o = 0; o < t.s->n_outputs; o++) close_enough(&t.interp[o], &t.jit[o], 1e-5);
  te_free(&t);
}
END_TEST

START_TEST(reductions_in_declared_order) {
  te_case t;
  te_parse(&t, "placeholder A: i8[3, 5]\n"
               "placeholder X: f32[3, 5]\n"
               "placeholder W: u32[3, 5]\n"
               "compute S: i8[3] (i) = sum(k < 5: A[i, k])\n"
               "compute MX: f32[3] (i) = max(k < 5: X[i, k])\n"
               "compute MN: i8[3] (i) = min(k < 5: A[i, k])\n"
               "compute O: u32[3] (i) = or(k < 5: W[i, k])\n"
               "compute T: f32[1] (z) = sum(i < 3, k < 5: X[i, k] * f32(z + 1))\n");
  int8_t *a = t.in[0].data;
  float *x = t.in[1].data;
  uint32_t *w = t.in[2].data;
  for (int i = 0; i < 15; i++) {
    a[i] = (int8_t)(i % 2 ? 100 : -60 + i);
    x[i] = i == 7 ? NAN : (float)((i * 37) % 11) * 1e7f - 3e7f + (float)i;
    w[i] = 1u << (i * 2 % 32);
  }
  te_run(&t);
  const int8_t *sum = te_out(&t, "S")->data, *mn = te_out(&t, "MN")->data;
  const uint32_t *o = te_out(&t, "O")->data;
  const float *mx = te_out(&t, "MX")->data, *tot = te_out(&t, "T")->data;
  for (int i = 0; i < 3; i++) {
    uint8_t s = 0;
    int8_t m = 127;
    uint32_t ow = 0;
    float fm = -INFINITY;
    for (int k = 0; k < 5; k++) {
      s = (uint8_t)(s + (uint8_t)a[i * 5 + k]);
      if (a[i * 5 + k] < m) m = a[i * 5 + k];
      ow |= w[i * 5 + k];
      fm = fmaxf(fm, x[i * 5 + k]);
    }
    ck_assert_int_eq(sum[i], (int8_t)s);
    ck_assert_int_eq(mn[i], m);
    ck_assert_uint_eq(o[i], ow);
    ck_assert(mx[i] == fm); /* the NaN at [1, 2] is skipped */
  }
  ck_assert(isnan(tot[0])); /* sum with a NaN term */
  te_same(&t, 0);
  te_same(&t, 1);
  te_same(&t, 2);
  te_same(&t, 3);
  te_free(&t);
}
END_TEST

/* Large sums whose value depends on the order: the interpreter adds k = 0,
 * 1, 2, ... and matches that loop exactly. */
START_TEST(sum_order_is_the_declared_one) {
  te_case t;
  te_parse(&t, "placeholder X: f32[2, 6]\n"
               "compute S: f32[2] (i) = sum(k < 6: X[i, k])\n"
               "compute T: f32[1] (z) = sum(i < 2, k < 6: X[i, k] + f32(z))\n");
  float v[12] = {1e8f, 1.0f, -1e8f, 1.0f, 3.0f, 0.5f, 1.0f, 1e8f, 1.0f, -1e8f, 2.0f, 0.25f};
  set_f32(&t.in[0], v);
  te_run(&t);
  const float *s = te_out(&t, "S")->data, *tot = te_out(&t, "T")->data;
  float want[2] = {0.0f, 0.0f}, all = 0.0f;
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 6; k++) {
      want[i] += v[i * 6 + k];
      all += v[i * 6 + k];
    }
  ck_assert(s[0] == want[0] && s[1] == want[1]);
  ck_assert(s[0] == 4.5f);  /* 1e8 + 1 rounds to 1e8 */
  ck_assert(tot[0] == all);
  te_same_all(&t);
  te_free(&t);
}
END_TEST

/* select evaluates both arms, as the generated code: a clamped index in the
 * arm not taken is fine, and the value of the arm taken is used. */
START_TEST(select_and_intermediate_computes) {
  te_case t;
  te_parse(&t, "placeholder X: f32[4, 3]\n"
               "placeholder I: i32[5]\n"
               "compute R: f32[4, 3] (a, b) = max(X[a, b], 0f)\n"
               "compute G: f32[5, 3] (m, d) = select(I[m] >= 0, R[i64(max(I[m], 0)), d], -1f)\n");
  float *x = t.in[0].data;
  for (int i = 0; i < 12; i++) x[i] = (float)(i % 5) - 2.0f;
  set_i32(&t.in[1], (int32_t[]){3, -1, 0, 2, -7});
  te_run(&t);
  const float *g = te_out(&t, "G")->data;
  ck_assert(g[0] == fmaxf(x[9], 0.0f) && g[3] == -1.0f && g[12] == -1.0f);
  ck_assert(g[6] == fmaxf(x[0], 0.0f));
  te_same_all(&t);
  te_free(&t);
}
END_TEST

/* ---- (c) bad input -------------------------------------------------------------------------- */

static const char *TWO_INPUTS = "placeholder X: f32[4, 3]\n"
                                "placeholder W: i32[3]\n"
                                "compute Y: f32[4, 3] (i, j) = X[i, j] * f32(W[j])\n";

START_TEST(missing_and_mismatched_inputs_are_errors) {
  te_case t;
  te_parse(&t, TWO_INPUTS);
  ck_assert_int_eq(mfx_interp_run(t.s, NULL, t.interp), MFX_ERR_INVALID);
  mfx_array missing = t.in[1];
  t.in[1].data = NULL;
  ck_assert_int_eq(mfx_interp_run(t.s, t.in, t.interp), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "input 1 (W, i32 [3]) is missing") != NULL, "%s",
                mfx_last_error());
  t.in[1] = missing;
  mfx_array wrong;
  ck_assert_int_eq(mfx_array_create(&wrong, MFX_F32, 1, (int64_t[]){3}), MFX_OK);
  mfx_array in2[2] = {t.in[0], wrong};
  ck_assert_int_eq(mfx_interp_run(t.s, in2, t.interp), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "input 1 (W) has dtype f32, expected i32") != NULL,
                "%s", mfx_last_error());
  mfx_array_free(&wrong);
  ck_assert_int_eq(mfx_array_create(&wrong, MFX_F32, 2, (int64_t[]){3, 4}), MFX_OK);
  in2[0] = wrong;
  in2[1] = t.in[1];
  ck_assert_int_eq(mfx_interp_run(t.s, in2, t.interp), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "input 0 (X) has shape [3,4], expected [4,3]") != NULL,
                "%s", mfx_last_error());
  ck_assert_ptr_null(t.interp[0].data);
  mfx_array_free(&wrong);
  ck_assert_int_eq(mfx_interp_run(NULL, t.in, t.interp), MFX_ERR_INVALID);
  te_free(&t);
}
END_TEST

START_TEST(loads_out_of_bounds_are_errors) {
  te_case t;
  te_parse(&t, "placeholder X: f32[4]\n"
               "placeholder I: i32[2]\n"
               "compute Y: f32[2] (m) = select(I[m] >= 0, X[i64(I[m])], 0f)\n");
  set_i32(&t.in[1], (int32_t[]){2, -1}); /* -1 in the arm not taken: still loaded */
  ck_assert_int_eq(mfx_interp_run(t.s, t.in, t.interp), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "computing Y[1]: load X[-1...] out of bounds") != NULL,
                "%s", mfx_last_error());
  set_i32(&t.in[1], (int32_t[]){2, 4});
  ck_assert_int_eq(mfx_interp_run(t.s, t.in, t.interp), MFX_ERR_INVALID);
  ck_assert_msg(strstr(mfx_last_error(), "index 0 is 4, dimension 0 of X has 4 elements") != NULL,
                "%s", mfx_last_error());
  te_free(&t);
}
END_TEST

START_TEST(traps_and_undefined_values_are_errors) {
  static const struct { const char *text, *message; int32_t a, b; } cases[] = {
      /* A division by data (B[i]) no longer parses: compiler/bounds.c
       * refuses a divisor it cannot prove nonzero, so the interpreter's own
       * division checks are a second line no text kernel reaches. */
      {"compute Y: i32[1] (i) = A[i] << B[i]\n", "a shift by an amount outside [0, bits)", 1, 32},
      {"compute Y: i32[1] (i) = A[i] >> B[i]\n", "a shift by an amount outside [0, bits)", 1, -1},
      {"compute Y: i64[1] (i) = (i64(A[i]) << 62) * 4 * i64(B[i])\n", "i64 add, sub or mul", 1, 1},
      /* undefined only in the arm not taken: fine */
      {"compute Y: i32[1] (i) = select(B[i] < 32, A[i] << B[i], 0)\n", NULL, 1, 40},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char text[512];
    snprintf(text, sizeof text, "placeholder A: i32[1]\nplaceholder B: i32[1]\n%s",
             cases[k].text);
    te_case t;
    te_parse(&t, text);
    set_i32(&t.in[0], &cases[k].a);
    set_i32(&t.in[1], &cases[k].b);
    mfx_status st = mfx_interp_run(t.s, t.in, t.interp);
    if (cases[k].message == NULL) {
      ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
    } else {
      ck_assert_int_eq(st, MFX_ERR_INVALID);
      ck_assert_msg(strstr(mfx_last_error(), cases[k].message) != NULL &&
                        strstr(mfx_last_error(), "computing Y[0]") != NULL,
                    "case %zu: %s", k, mfx_last_error());
    }
    te_free(&t);
  }
}
END_TEST

/* Not hopeless: linear 64x64x64 (262144 multiply-adds). Timed in bench, not here. */
START_TEST(linear_64_cubed_runs) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[3] = {64, 64, 64};
  check_op_shape(op, dims);
}
END_TEST

static Suite *interp_suite(void) {
  Suite *s = suite_create("interp");
  TCase *ops = tcase_create("ops");
  tcase_add_test(ops, every_op_matches_its_reference);
  tcase_add_test(ops, a_wrong_reference_is_seen);
  tcase_add_test(ops, linear_64_cubed_runs);
  suite_add_tcase(s, ops);
  TCase *nodes = tcase_create("nodes");
  tcase_add_test(nodes, integers_wrap_around);
  tcase_add_test(nodes, division_truncates_toward_zero);
  tcase_add_test(nodes, shifts_bitwise_and_popcount);
  tcase_add_test(nodes, casts_follow_c);
  tcase_add_test(nodes, nan_through_min_max_and_compares);
  tcase_add_test(nodes, logic_and_remaining_dtypes);
  tcase_add_test(nodes, undefined_conversions_are_errors);
  tcase_add_test(nodes, round_ties_to_even);
  tcase_add_test(nodes, f32_operations_round_one_by_one);
  tcase_add_test(nodes, math_functions_are_libm_in_f32);
  tcase_add_test(nodes, reductions_in_declared_order);
  tcase_add_test(nodes, sum_order_is_the_declared_one);
  tcase_add_test(nodes, select_and_intermediate_computes);
  suite_add_tcase(s, nodes);
  TCase *bad = tcase_create("bad_input");
  tcase_add_test(bad, missing_and_mismatched_inputs_are_errors);
  tcase_add_test(bad, loads_out_of_bounds_are_errors);
  tcase_add_test(bad, traps_and_undefined_values_are_errors);
  suite_add_tcase(s, bad);
  return s;
}

int main(void) {
  return check_run_suite(interp_suite());
}
