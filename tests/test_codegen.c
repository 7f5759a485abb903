/* LLVM code generation for the host CPU: small loop-IR kernels built by
 * hand, JIT-compiled, run on a pool of 2 threads and serially (NULL pool),
 * and compared with plain C computed here. Also: LL/assembly/object output,
 * workspace allocation failures, and malformed funcs that must fail with a
 * message. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

/* ---- building loop IR ---------------------------------------------------------- */

static mfx_arena *A;

static mfx_expr *ref(mfx_var *v) { return mfx_var_ref(A, v); }
static mfx_expr *cst(int64_t v) { return mfx_i64(A, v); }
static mfx_expr *add(mfx_expr *x, mfx_expr *y) { return mfx_binary(A, MFX_ADD, x, y); }
static mfx_expr *mul(mfx_expr *x, mfx_expr *y) { return mfx_binary(A, MFX_MUL, x, y); }
static mfx_expr *bin(mfx_binary_op op, mfx_expr *x, mfx_expr *y) { return mfx_binary(A, op, x, y); }
static mfx_expr *load(mfx_buffer *b, mfx_expr *i) { return mfx_load(A, b, 1, &i); }
static mfx_stmt *store(mfx_buffer *b, mfx_expr *i, mfx_expr *v) {
  return mfx_stmt_store(A, b, 1, &i, v);
}
static mfx_var *var(const char *name, int64_t extent) { return mfx_var_create(A, name, extent, 0); }

static mfx_stmt *loop(mfx_var *v, mfx_loop_kind k, mfx_stmt *body) {
  return mfx_stmt_for(A, v, v->extent, k, body);
}

static mfx_stmt *seq2(mfx_stmt *x, mfx_stmt *y) { return mfx_stmt_seq(A, 2, (mfx_stmt *[]){x, y}); }

static mfx_buffer *buffer(const char *name, mfx_dtype t, int64_t n) {
  return mfx_buffer_create(A, name, t, 1, &n, MFX_SCOPE_GLOBAL);
}

static mfx_func *func(const char *name, int n_args, mfx_buffer **args, mfx_stmt *body) {
  mfx_func *fn = mfx_arena_alloc(A, sizeof *fn);
  fn->name = name;
  fn->n_args = n_args;
  fn->args = mfx_arena_alloc(A, sizeof(mfx_buffer *) * (size_t)n_args);
  memcpy(fn->args, args, sizeof(mfx_buffer *) * (size_t)n_args);
  fn->body = body;
  return fn;
}

/* io * lanes + ii */
static mfx_expr *split_index(mfx_var *io, mfx_var *ii) {
  return add(mul(ref(io), cst(ii->extent)), ref(ii));
}

/* for io < ceil(n / lanes): for ii < lanes (kind): if (io*lanes+ii < n) body */
static mfx_stmt *split_loop(mfx_var *io, mfx_var *ii, int64_t n, mfx_loop_kind inner,
                            mfx_stmt *body) {
  mfx_stmt *guarded = n % ii->extent == 0
                          ? body
                          : mfx_stmt_if(A, bin(MFX_LT, split_index(io, ii), cst(n)), body, NULL);
  return loop(io, MFX_LOOP_SERIAL, loop(ii, inner, guarded));
}

/* ---- running -------------------------------------------------------------------- */

static mfx_pool *POOL;

static void setup(void) {
  A = mfx_arena_create();
  ck_assert_int_eq(mfx_pool_create(2, &POOL), MFX_OK);
}

static void teardown(void) {
  mfx_pool_destroy(POOL);
  mfx_arena_destroy(A);
}

static mfx_jit_kernel *compile(const mfx_func *fn) {
  mfx_jit_kernel *k = NULL;
  mfx_status st = mfx_jit_compile(fn, &k);
  ck_assert_msg(st == MFX_OK, "compile %s: %s", fn->name, mfx_last_error());
  ck_assert_ptr_nonnull(mfx_jit_entry(k));
  return k;
}

static int32_t run_env(mfx_jit_kernel *k, void **args, const mfx_kernel_env *env) {
  return mfx_jit_entry(k)(args, env);
}

/* Runs on the pool, then serially; both must return 0. */
static void run_both(mfx_jit_kernel *k, void **args, void (*reset)(void), void (*check)(void)) {
  for (int serial = 0; serial < 2; serial++) {
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, serial ? NULL : POOL);
    if (reset != NULL) reset();
    ck_assert_int_eq(run_env(k, args, &env), 0);
    check();
  }
}

static void assert_close(float got, float want, const char *what, int64_t i) {
  float tol = 1e-5f * (fabsf(want) > 1.0f ? fabsf(want) : 1.0f);
  ck_assert_msg(fabsf(got - want) <= tol, "%s[%lld] = %.8g, expected %.8g", what, (long long)i,
                (double)got, (double)want);
}

static float input_value(int64_t i) { return (float)((i * 37) % 101) * 0.25f - 7.0f; }

/* ---- elementwise, vectorized, with a guarded tail ---------------------------------- */

#define MAX_N 1100
static float X[MAX_N + 16], Y[MAX_N + 16], Z[MAX_N + 16];
static int64_t N;

static void fill_inputs(void) {
  for (int64_t i = 0; i < MAX_N + 16; i++) {
    X[i] = input_value(i);
    Y[i] = input_value(i + 5) * 0.5f;
    Z[i] = -12345.0f; /* sentinel past the end */
  }
}

static void check_vec_add(void) {
  for (int64_t i = 0; i < N; i++) assert_close(Z[i], X[i] + Y[i], "Z", i);
  for (int64_t i = N; i < N + 16; i++)
    ck_assert_msg(Z[i] == -12345.0f, "Z[%lld] written past n", (long long)i);
}

START_TEST(vectorized_add_with_tail) {
  static const int64_t sizes[] = {1, 7, 8, 13, 64, 1001};
  for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
    N = sizes[t];
    mfx_buffer *a = buffer("a", MFX_F32, N), *b = buffer("b", MFX_F32, N),
               *c = buffer("c", MFX_F32, N);
    mfx_var *io = var("io", (N + 7) / 8), *ii = var("ii", 8);
    mfx_expr *i = split_index(io, ii);
    mfx_stmt *body = store(c, i, add(load(a, i), load(b, i)));
    mfx_stmt *nest = split_loop(io, ii, N, MFX_LOOP_VECTORIZED, body);
    if (t % 2 == 1) nest->u.loop.kind = MFX_LOOP_PARALLEL; /* vector code in a chunk */
    mfx_func *fn = func("vadd", 3, (mfx_buffer *[]){a, b, c}, nest);
    mfx_jit_kernel *k = compile(fn);
    run_both(k, (void *[]){X, Y, Z}, fill_inputs, check_vec_add);
    mfx_jit_free(k);
  }
}
END_TEST

/* ---- reductions --------------------------------------------------------------------- */

enum { ROWS = 13, COLS = 37 };

static void check_row_sums(void) {
  for (int r = 0; r < ROWS; r++) {
    float want = 0;
    for (int c = 0; c < COLS; c++) want += X[r * COLS + c];
    assert_close(Z[r], want, "rowsum", r);
  }
}

/* out[r] = 0; for c: out[r] = out[r] + x[r*COLS + c], rows in parallel. */
START_TEST(parallel_row_sums) {
  fill_inputs();
  mfx_buffer *x = buffer("x", MFX_F32, ROWS * COLS), *out = buffer("out", MFX_F32, ROWS);
  mfx_var *r = var("r", ROWS), *c = var("c", COLS);
  mfx_stmt *acc =
      store(out, ref(r), add(load(out, ref(r)), load(x, add(mul(ref(r), cst(COLS)), ref(c)))));
  mfx_stmt *body = seq2(store(out, ref(r), mfx_f32(A, 0)), loop(c, MFX_LOOP_SERIAL, acc));
  mfx_jit_kernel *k =
      compile(func("rowsum", 2, (mfx_buffer *[]){x, out}, loop(r, MFX_LOOP_PARALLEL, body)));
  run_both(k, (void *[]){X, Z}, NULL, check_row_sums);
  mfx_jit_free(k);
}
END_TEST

static void check_total(void) {
  float want = 0;
  for (int i = 0; i < 24; i++) want += X[i];
  assert_close(Z[0], want, "total", 0);
}

/* A vectorized reduction axis: lanes would race on out[0], so the code
 * generator must fall back to the serial loop. */
START_TEST(vectorized_reduction_axis_stays_correct) {
  fill_inputs();
  mfx_buffer *x = buffer("x", MFX_F32, 24), *out = buffer("out", MFX_F32, 1);
  mfx_var *io = var("io", 3), *ii = var("ii", 8);
  mfx_expr *i = split_index(io, ii);
  mfx_stmt *acc = store(out, cst(0), add(load(out, cst(0)), load(x, i)));
  mfx_stmt *body =
      seq2(store(out, cst(0), mfx_f32(A, 0)), split_loop(io, ii, 24, MFX_LOOP_VECTORIZED, acc));
  mfx_jit_kernel *k = compile(func("total", 2, (mfx_buffer *[]){x, out}, body));
  run_both(k, (void *[]){X, Z}, NULL, check_total);
  mfx_jit_free(k);
}
END_TEST

/* ---- parallel loop with a global scratch buffer --------------------------------------- */

static void check_scratch(void) {
  for (int r = 0; r < ROWS; r++)
    for (int c = 0; c < COLS; c++)
      assert_close(Z[r * COLS + c], X[r * COLS + (COLS - 1 - c)] * 2 + (float)r, "scratch",
                   r * COLS + c);
}

/* for r (parallel): allocate tmp[COLS] (global) {
 *   for c: tmp[c] = x[r*COLS+c] * 2;  for c: out[r*COLS+c] = tmp[COLS-1-c] + r } */
static mfx_func *scratch_func(void) {
  mfx_buffer *x = buffer("x", MFX_F32, ROWS * COLS), *out = buffer("out", MFX_F32, ROWS * COLS);
  mfx_buffer *tmp = buffer("tmp", MFX_F32, COLS);
  mfx_var *r = var("r", ROWS), *c1 = var("c1", COLS), *c2 = var("c2", COLS);
  mfx_expr *row = mul(ref(r), cst(COLS));
  mfx_stmt *fill = loop(c1, MFX_LOOP_SERIAL,
                        store(tmp, ref(c1), mul(load(x, add(row, ref(c1))), mfx_f32(A, 2))));
  mfx_expr *back = load(tmp, bin(MFX_SUB, cst(COLS - 1), ref(c2)));
  mfx_stmt *use = loop(c2, MFX_LOOP_SERIAL,
                       store(out, add(row, ref(c2)), add(back, mfx_cast(A, MFX_F32, ref(r)))));
  mfx_stmt *body = mfx_stmt_allocate(A, tmp, seq2(fill, use));
  return func("scratch", 2, (mfx_buffer *[]){x, out}, loop(r, MFX_LOOP_PARALLEL, body));
}

START_TEST(parallel_loop_with_global_scratch) {
  fill_inputs();
  mfx_jit_kernel *k = compile(scratch_func());
  run_both(k, (void *[]){X, Z}, NULL, check_scratch);
  mfx_jit_free(k);
}
END_TEST

static atomic_int alloc_budget, live_allocations;

static void *counting_alloc(size_t bytes) {
  if (atomic_fetch_sub(&alloc_budget, 1) <= 0) return NULL;
  atomic_fetch_add(&live_allocations, 1);
  return malloc(bytes);
}

static void counting_free(void *p) {
  atomic_fetch_sub(&live_allocations, 1);
  free(p);
}

/* env->alloc failing at the first, a middle, or no allocation: the kernel
 * returns 1 (0 when all succeed) and frees everything it allocated. */
START_TEST(allocation_failure_is_reported) {
  fill_inputs();
  mfx_jit_kernel *k = compile(scratch_func());
  static const int budgets[] = {0, 5, ROWS};
  for (int serial = 0; serial < 2; serial++) {
    for (size_t b = 0; b < sizeof budgets / sizeof *budgets; b++) {
      mfx_kernel_env env;
      mfx_kernel_env_init(&env, serial ? NULL : POOL);
      env.alloc = counting_alloc;
      env.free = counting_free;
      atomic_store(&alloc_budget, budgets[b]);
      atomic_store(&live_allocations, 0);
      int32_t rc = run_env(k, (void *[]){X, Z}, &env);
      ck_assert_int_eq(rc, budgets[b] < ROWS ? 1 : 0);
      ck_assert_int_eq(atomic_load(&live_allocations), 0);
    }
  }
  check_scratch();
  mfx_jit_free(k);
}
END_TEST

static void check_captures(void) {
  for (int r = 0; r < ROWS; r++)
    for (int c = 0; c < COLS; c++) {
      float want = X[r * COLS + c] + X[r] * 0.5f + (float)(r * c);
      assert_close(Z[r * COLS + c], want, "captures", r * COLS + c);
    }
}

/* for r: let s = x[r] * 0.5 in for c (parallel): out[r*COLS+c] = x[..] + s + r*c
 * (the parallel body captures r and s), and the same with r parallel too
 * (nested parallel loops run serially inside a chunk). */
START_TEST(parallel_body_captures_outer_variables) {
  for (int nested = 0; nested < 2; nested++) {
    fill_inputs();
    mfx_buffer *x = buffer("x", MFX_F32, ROWS * COLS), *out = buffer("out", MFX_F32, ROWS * COLS);
    mfx_var *r = var("r", ROWS), *c = var("c", COLS), *s = var("s", 0);
    mfx_expr *at = add(mul(ref(r), cst(COLS)), ref(c)), *sr = ref(s);
    sr->type = MFX_F32;
    mfx_expr *rc = mfx_cast(A, MFX_F32, mul(ref(r), ref(c)));
    mfx_stmt *inner = loop(c, MFX_LOOP_PARALLEL, store(out, at, add(add(load(x, at), sr), rc)));
    mfx_stmt *body = mfx_stmt_let(A, s, mul(load(x, ref(r)), mfx_f32(A, 0.5)), inner);
    mfx_stmt *outer = loop(r, nested ? MFX_LOOP_PARALLEL : MFX_LOOP_SERIAL, body);
    mfx_jit_kernel *k = compile(func("captures", 2, (mfx_buffer *[]){x, out}, outer));
    run_both(k, (void *[]){X, Z}, NULL, check_captures);
    mfx_jit_free(k);
  }
}
END_TEST

static void check_skip_three(void) {
  for (int i = 0; i < 20; i++) assert_close(Z[i], i % 8 == 3 ? -12345.0f : X[i] * 2, "skip", i);
}

/* if (ii != 3) in a vectorized loop is not a bound guard: the lanes run as
 * a serial loop, with the right answer. */
START_TEST(non_monotone_guard_runs_serially) {
  mfx_buffer *x = buffer("x", MFX_F32, 20), *out = buffer("out", MFX_F32, 20);
  mfx_var *io = var("io", 3), *ii = var("ii", 8);
  mfx_expr *i = split_index(io, ii);
  mfx_expr *guard = bin(MFX_LAND, bin(MFX_LT, i, cst(20)), bin(MFX_NE, ref(ii), cst(3)));
  mfx_stmt *body = mfx_stmt_if(A, guard, store(out, i, mul(load(x, i), mfx_f32(A, 2))), NULL);
  mfx_stmt *nest = loop(io, MFX_LOOP_SERIAL, loop(ii, MFX_LOOP_VECTORIZED, body));
  mfx_jit_kernel *k = compile(func("skip", 2, (mfx_buffer *[]){x, out}, nest));
  run_both(k, (void *[]){X, Z}, fill_inputs, check_skip_three);
  mfx_jit_free(k);
}
END_TEST

/* ---- unrolled loops, local buffers, lets -------------------------------------------------- */

static void check_unrolled(void) {
  for (int i = 0; i < 5; i++) assert_close(Z[i], X[i] * (float)i + 1, "unrolled", i);
}

START_TEST(unrolled_loop) {
  fill_inputs();
  mfx_buffer *x = buffer("x", MFX_F32, 5), *out = buffer("out", MFX_F32, 5);
  mfx_var *i = var("i", 5);
  mfx_expr *v = add(mul(load(x, ref(i)), mfx_cast(A, MFX_F32, ref(i))), mfx_f32(A, 1));
  mfx_jit_kernel *k = compile(func("unrolled", 2, (mfx_buffer *[]){x, out},
                                   loop(i, MFX_LOOP_UNROLLED, store(out, ref(i), v))));
  run_both(k, (void *[]){X, Z}, NULL, check_unrolled);
  mfx_jit_free(k);
}
END_TEST

static void check_local(void) {
  for (int j = 0; j < 8; j++) assert_close(Z[j], X[7 - j] * 3, "local", j);
}

/* allocate acc[8] (local) { for j (vectorized): acc[j] = x[j]*3; for j: out[j] = acc[7-j] } */
START_TEST(local_allocate) {
  fill_inputs();
  mfx_buffer *x = buffer("x", MFX_F32, 8), *out = buffer("out", MFX_F32, 8);
  int64_t eight = 8;
  mfx_buffer *acc = mfx_buffer_create(A, "acc", MFX_F32, 1, &eight, MFX_SCOPE_LOCAL);
  mfx_var *j1 = var("j1", 8), *j2 = var("j2", 8);
  mfx_stmt *fill =
      loop(j1, MFX_LOOP_VECTORIZED, store(acc, ref(j1), mul(load(x, ref(j1)), mfx_f32(A, 3))));
  mfx_stmt *use = /* a reversed gather */
      loop(j2, MFX_LOOP_VECTORIZED, store(out, ref(j2), load(acc, bin(MFX_SUB, cst(7), ref(j2)))));
  mfx_jit_kernel *k = compile(
      func("local", 2, (mfx_buffer *[]){x, out}, mfx_stmt_allocate(A, acc, seq2(fill, use))));
  run_both(k, (void *[]){X, Z}, NULL, check_local);
  mfx_jit_free(k);
}
END_TEST

static void check_let(void) {
  for (int i = 0; i < 16; i++) {
    float t = X[i] * 2;
    assert_close(Z[i], t + t * t, "let", i);
  }
}

/* let t = x[i]*2 in out[i] = t + t*t, serially and in a vectorized loop. */
START_TEST(let_binding) {
  for (int vectorized = 0; vectorized < 2; vectorized++) {
    fill_inputs();
    mfx_buffer *x = buffer("x", MFX_F32, 16), *out = buffer("out", MFX_F32, 16);
    mfx_var *io = var("io", 2), *ii = var("ii", 8), *t = var("t", 0);
    mfx_expr *i = split_index(io, ii);
    mfx_expr *tr = ref(t);
    tr->type = MFX_F32; /* a typed let variable */
    mfx_stmt *body =
        mfx_stmt_let(A, t, mul(load(x, i), mfx_f32(A, 2)), store(out, i, add(tr, mul(tr, tr))));
    mfx_loop_kind kind = vectorized ? MFX_LOOP_VECTORIZED : MFX_LOOP_SERIAL;
    mfx_jit_kernel *k =
        compile(func("let", 2, (mfx_buffer *[]){x, out}, split_loop(io, ii, 16, kind, body)));
    run_both(k, (void *[]){X, Z}, NULL, check_let);
    mfx_jit_free(k);
  }
}
END_TEST

/* ---- integer operations ---------------------------------------------------------------- */

enum { INT_N = 16, INT_OPS = 17 };
static int32_t IX[INT_N], IY[INT_N], IOUT[INT_OPS * INT_N];
static uint32_t IU[INT_N];
static int8_t IB[INT_N];

static void fill_ints(void) {
  for (int i = 0; i < INT_N; i++) {
    IX[i] = (i % 2 ? -1 : 1) * (i * 977 + 3) * (i % 5 + 1);
    IY[i] = i % 7 + 1 + (i > 10 ? 20000 : 0);
    IU[i] = 0x9E3779B9u * (uint32_t)(i + 1);
    IB[i] = (int8_t)(i * 37 - 200);
  }
  memset(IOUT, 0x55, sizeof IOUT);
}

static int32_t int_reference(int op, int i) {
  int32_t x = IX[i], y = IY[i];
  uint32_t u = IU[i];
  switch (op) {
  case 0: return x >> 3;
  case 1: return (int32_t)(u >> 3);
  case 2: return x / y;
  case 3: return (int32_t)(u / (uint32_t)y);
  case 4: return x % y;
  case 5: return x < y ? x : y;
  case 6: return x > y ? x : y;
  case 7: return __builtin_popcount(u);
  case 8: return (int32_t)IB[i];
  case 9: return (int32_t)u;
  case 10: return x < y ? x : y * 2;
  case 11: return (int32_t)(u < 0x80000000u ? u : 0x80000000u);
  case 12: return u > (uint32_t)x;
  case 13: return (x & y) ^ (x | 5);
  /* Integer arithmetic wraps: x + INT32_MAX < x holds for every x > 0. */
  case 15: return (int32_t)((uint32_t)x + 0x7fffffffu) < x;
  case 16: return (int32_t)((uint32_t)x * 0x10001u + (uint32_t)y);
  default: return (int32_t)(uint8_t)IB[i];
  }
}

static mfx_expr *int_expr(int op, mfx_buffer *x, mfx_buffer *y, mfx_buffer *u, mfx_buffer *b,
                          mfx_expr *i) {
  mfx_expr *X_ = load(x, i), *Y_ = load(y, i), *U_ = load(u, i), *B_ = load(b, i);
  mfx_expr *Yu = mfx_cast(A, MFX_U32, Y_);
  switch (op) {
  case 0: return bin(MFX_SHR, X_, mfx_int(A, MFX_I32, 3));
  case 1: return mfx_cast(A, MFX_I32, bin(MFX_SHR, U_, mfx_int(A, MFX_U32, 3)));
  case 2: return bin(MFX_DIV, X_, Y_);
  case 3: return mfx_cast(A, MFX_I32, bin(MFX_DIV, U_, Yu));
  case 4: return bin(MFX_MOD, X_, Y_);
  case 5: return bin(MFX_MIN, X_, Y_);
  case 6: return bin(MFX_MAX, X_, Y_);
  case 7: return mfx_cast(A, MFX_I32, mfx_unary(A, MFX_POPCOUNT, U_));
  case 8: return mfx_cast(A, MFX_I32, B_);
  case 9: return mfx_cast(A, MFX_I32, U_);
  case 10: return mfx_select(A, bin(MFX_LT, X_, Y_), X_, mul(Y_, mfx_int(A, MFX_I32, 2)));
  case 11: return mfx_cast(A, MFX_I32, bin(MFX_MIN, U_, mfx_int(A, MFX_U32, 0x80000000LL)));
  case 12: return mfx_cast(A, MFX_I32, bin(MFX_GT, U_, mfx_cast(A, MFX_U32, X_)));
  case 13: return bin(MFX_XOR, bin(MFX_AND, X_, Y_), bin(MFX_OR, X_, mfx_int(A, MFX_I32, 5)));
  case 15:
    return mfx_cast(A, MFX_I32, bin(MFX_LT, add(X_, mfx_int(A, MFX_I32, 0x7fffffff)), X_));
  case 16: return add(mul(X_, mfx_int(A, MFX_I32, 0x10001)), Y_);
  default: return mfx_cast(A, MFX_I32, mfx_cast(A, MFX_U8, B_));
  }
}

static void check_ints(void) {
  for (int op = 0; op < INT_OPS; op++)
    for (int i = 0; i < INT_N; i++)
      ck_assert_msg(IOUT[op * INT_N + i] == int_reference(op, i),
                    "op %d, i %d: got %d, expected %d", op, i, IOUT[op * INT_N + i],
                    int_reference(op, i));
}

/* Every op, in a serial loop and in a vectorized one. */
START_TEST(integer_operations) {
  for (int vectorized = 0; vectorized < 2; vectorized++) {
    mfx_buffer *x = buffer("x", MFX_I32, INT_N), *y = buffer("y", MFX_I32, INT_N);
    mfx_buffer *u = buffer("u", MFX_U32, INT_N), *b = buffer("b", MFX_I8, INT_N);
    mfx_buffer *out = buffer("out", MFX_I32, INT_OPS * INT_N);
    mfx_stmt *items[INT_OPS];
    for (int op = 0; op < INT_OPS; op++) {
      mfx_var *io = var("io", INT_N / 8), *ii = var("ii", 8);
      mfx_expr *i = split_index(io, ii);
      mfx_stmt *s = store(out, add(cst(op * INT_N), i), int_expr(op, x, y, u, b, i));
      ck_assert_ptr_nonnull(s->u.store.value);
      items[op] = split_loop(io, ii, INT_N, vectorized ? MFX_LOOP_VECTORIZED : MFX_LOOP_SERIAL, s);
    }
    mfx_func *fn =
        func("ints", 5, (mfx_buffer *[]){x, y, u, b, out}, mfx_stmt_seq(A, INT_OPS, items));
    mfx_jit_kernel *k = compile(fn);
    run_both(k, (void *[]){IX, IY, IU, IB, IOUT}, fill_ints, check_ints);
    mfx_jit_free(k);
  }
}
END_TEST

/* ---- gathers, scatters, bool buffers ------------------------------------------------------- */

static void check_strided(void) {
  for (int i = 0; i < 16; i++) {
    assert_close(Z[i], X[2 * i], "gather", i);
    assert_close(Y[2 * i], X[i] + 1, "scatter", 2 * i);
  }
}

static void reset_strided(void) { fill_inputs(); }

/* out[i] = x[2i] (gather); y[2i] = x[i] + 1 (scatter); vectorized by 8. */
START_TEST(gather_and_scatter) {
  mfx_buffer *x = buffer("x", MFX_F32, 32), *y = buffer("y", MFX_F32, 32),
             *out = buffer("out", MFX_F32, 16);
  mfx_var *io = var("io", 2), *ii = var("ii", 8), *jo = var("jo", 2), *ji = var("ji", 8);
  mfx_expr *i = split_index(io, ii), *j = split_index(jo, ji);
  mfx_stmt *gather =
      split_loop(io, ii, 16, MFX_LOOP_VECTORIZED, store(out, i, load(x, mul(cst(2), i))));
  mfx_stmt *scatter = split_loop(jo, ji, 16, MFX_LOOP_VECTORIZED,
                                 store(y, mul(j, cst(2)), add(load(x, j), mfx_f32(A, 1))));
  mfx_jit_kernel *k =
      compile(func("strided", 3, (mfx_buffer *[]){x, y, out}, seq2(gather, scatter)));
  run_both(k, (void *[]){X, Y, Z}, reset_strided, check_strided);
  mfx_jit_free(k);
}
END_TEST

static uint8_t FLAGS[24];

static void check_flags(void) {
  for (int i = 0; i < 21; i++) {
    ck_assert_int_eq(FLAGS[i], X[i] > 0.0f);
    assert_close(Z[i], X[i] > 0.0f ? X[i] : 0.0f, "relu", i);
  }
}

/* flag[i] = x[i] > 0 (bool buffer); out[i] = flag[i] ? x[i] : 0, vectorized
 * with a guarded tail. */
START_TEST(bool_buffer) {
  fill_inputs();
  mfx_buffer *x = buffer("x", MFX_F32, 21), *flag = buffer("flag", MFX_BOOL, 21),
             *out = buffer("out", MFX_F32, 21);
  mfx_var *io = var("io", 3), *ii = var("ii", 8), *jo = var("jo", 3), *ji = var("ji", 8);
  mfx_expr *i = split_index(io, ii), *j = split_index(jo, ji);
  mfx_stmt *set = split_loop(io, ii, 21, MFX_LOOP_VECTORIZED,
                             store(flag, i, bin(MFX_GT, load(x, i), mfx_f32(A, 0))));
  mfx_stmt *use =
      split_loop(jo, ji, 21, MFX_LOOP_VECTORIZED,
                 store(out, j, mfx_select(A, load(flag, j), load(x, j), mfx_f32(A, 0))));
  mfx_jit_kernel *k = compile(func("relu", 3, (mfx_buffer *[]){x, flag, out}, seq2(set, use)));
  run_both(k, (void *[]){X, FLAGS, Z}, NULL, check_flags);
  mfx_jit_free(k);
}
END_TEST

/* ---- a select on one condition for every lane ------------------------------------------- */

enum { UNI_ROWS = 5, UNI_COLS = 19 };
static int8_t CODES[UNI_ROWS] = {1, 0, 0, 1, 1};

static void check_uniform_select(void) {
  for (int r = 0; r < UNI_ROWS; r++)
    for (int c = 0; c < UNI_COLS; c++) {
      float want = CODES[r] ? X[r * UNI_COLS + c] : -0.0f;
      assert_close(Z[r * UNI_COLS + c], want, "uniform select", r * UNI_COLS + c);
    }
}

/* out[r, c] = code[r] ? x[r, c] : -0.0 with c vectorized: the condition is
 * the same for every lane. It must become a vector condition (a mask), not
 * a scalar i1 choosing between whole vectors, which the x86 backend turns
 * into a branch per value. */
START_TEST(uniform_select_is_a_vector_select) {
  fill_inputs();
  int64_t n = UNI_ROWS * UNI_COLS;
  mfx_buffer *x = buffer("x", MFX_F32, n), *code = buffer("code", MFX_I8, UNI_ROWS),
             *out = buffer("out", MFX_F32, n);
  mfx_var *r = var("r", UNI_ROWS), *co = var("co", (UNI_COLS + 7) / 8), *ci = var("ci", 8);
  mfx_expr *i = add(mul(ref(r), cst(UNI_COLS)), split_index(co, ci));
  mfx_expr *set = bin(MFX_NE, load(code, ref(r)), mfx_int(A, MFX_I8, 0));
  mfx_stmt *body = store(out, i, mfx_select(A, set, load(x, i), mfx_f32(A, -0.0)));
  mfx_stmt *nest = loop(r, MFX_LOOP_SERIAL, split_loop(co, ci, UNI_COLS, MFX_LOOP_VECTORIZED, body));
  mfx_func *fn = func("uniform_select", 3, (mfx_buffer *[]){x, code, out}, nest);
  mfx_jit_kernel *k = compile(fn);
  run_both(k, (void *[]){X, CODES, Z}, NULL, check_uniform_select);
  mfx_jit_free(k);
  char *ll = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_codegen_emit(fn, MFX_EMIT_LL, &ll, &size), MFX_OK);
  ck_assert_msg(strstr(ll, "select <8 x i1>") != NULL, "no select on an <8 x i1> condition");
  for (char *line = strtok(ll, "\n"); line != NULL; line = strtok(NULL, "\n"))
    ck_assert_msg(strstr(line, "select i1 ") == NULL || strstr(line, "x float>") == NULL,
                  "a scalar condition selects whole vectors: %s", line);
  free(ll);
}
END_TEST

/* ---- float math ---------------------------------------------------------------------------- */

static float MATH_OUT[5 * 16];

static void check_math(void) {
  for (int i = 0; i < 16; i++) {
    float x = fabsf(X[i]) + 0.5f;
    assert_close(MATH_OUT[i], sqrtf(x), "sqrt", i);
    assert_close(MATH_OUT[16 + i], expf(X[i] * 0.1f), "exp", i);
    assert_close(MATH_OUT[32 + i], logf(x), "log", i);
    assert_close(MATH_OUT[48 + i], tanhf(X[i] * 0.3f), "tanh", i);
    assert_close(MATH_OUT[64 + i], fminf(fmaxf(X[i], -2.0f), 3.0f), "clamp", i);
  }
}

START_TEST(float_math) {
  for (int vectorized = 0; vectorized < 2; vectorized++) {
    fill_inputs();
    mfx_buffer *x = buffer("x", MFX_F32, 16), *out = buffer("out", MFX_F32, 5 * 16);
    mfx_stmt *items[5];
    for (int op = 0; op < 5; op++) {
      mfx_var *io = var("io", 2), *ii = var("ii", 8);
      mfx_expr *i = split_index(io, ii), *v = load(x, i);
      mfx_expr *pos = add(mfx_unary(A, MFX_ABS, v), mfx_f32(A, 0.5));
      mfx_expr *e = op == 0   ? mfx_unary(A, MFX_SQRT, pos)
                    : op == 1 ? mfx_unary(A, MFX_EXP, mul(v, mfx_f32(A, 0.1)))
                    : op == 2 ? mfx_unary(A, MFX_LOG, pos)
                    : op == 3 ? mfx_unary(A, MFX_TANH, mul(v, mfx_f32(A, 0.3)))
                              : bin(MFX_MIN, bin(MFX_MAX, v, mfx_f32(A, -2)), mfx_f32(A, 3));
      items[op] = split_loop(io, ii, 16, vectorized ? MFX_LOOP_VECTORIZED : MFX_LOOP_SERIAL,
                             store(out, add(cst(op * 16), i), e));
    }
    mfx_jit_kernel *k =
        compile(func("math", 2, (mfx_buffer *[]){x, out}, mfx_stmt_seq(A, 5, items)));
    run_both(k, (void *[]){X, MATH_OUT}, NULL, check_math);
    mfx_jit_free(k);
  }
}
END_TEST

/* ---- erf and round: the inline polynomial, rint ------------------------------------------- */

#define ROUND_N 61 /* not a multiple of the 8 lanes: a guarded tail */
static float ROUND_X[ROUND_N + 3], ERF_OUT[ROUND_N + 3], ROUND_OUT[ROUND_N + 3];

static void fill_round_inputs(void) {
  static const float special[] = {
      0.5f,  1.5f,  2.5f,  3.5f,  -0.5f, -1.5f, -2.5f, -3.5f, 0.49999997f, -0.49999997f,
      1.0f,  -1.0f, 0.0f,  -0.0f, 8388607.5f, -8388607.5f, 8388609.0f, 1e10f, -1e10f,
      3.4e38f, 1e-40f, 4.0f, -4.0f, 10.0f, -10.0f, 0.3f, -0.3f, 2.7f, -2.7f,
      INFINITY, -INFINITY, NAN};
  int n_special = (int)(sizeof special / sizeof special[0]);
  for (int i = 0; i < ROUND_N + 3; i++) {
    ROUND_X[i] = i < n_special ? special[i] : (float)(i - 45) * 0.37f;
    ERF_OUT[i] = ROUND_OUT[i] = -12345.0f; /* sentinel past the end */
  }
}

static int same_float(float got, float want) {
  return memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want));
}

/* erf is codegen_math.c's polynomial: within its documented 1.5 ulp of
 * erf in double (tests/test_vecmath.c sweeps the whole range); NaN, +-0
 * and +-1 exactly. */
static int erf_close(float got, float x) {
  double truth = erf((double)x);
  if (isnan(truth) || truth == 0.0 || fabs(truth) == 1.0) return same_float(got, (float)truth);
  int e;
  frexp(truth, &e);
  return fabs((double)got - truth) <= 1.5 * ldexp(1.0, (e - 1 - 23 > -149 ? e - 1 - 23 : -149));
}

static void check_erf_round(void) {
  for (int i = 0; i < ROUND_N; i++) {
    ck_assert_msg(erf_close(ERF_OUT[i], ROUND_X[i]), "erf(%a) = %a, expected %a",
                  (double)ROUND_X[i], (double)ERF_OUT[i], erf((double)ROUND_X[i]));
    ck_assert_msg(same_float(ROUND_OUT[i], rintf(ROUND_X[i])), "round(%a) = %a, expected %a",
                  (double)ROUND_X[i], (double)ROUND_OUT[i], (double)rintf(ROUND_X[i]));
  }
  for (int i = ROUND_N; i < ROUND_N + 3; i++)
    ck_assert(ERF_OUT[i] == -12345.0f && ROUND_OUT[i] == -12345.0f);
  ck_assert(ROUND_OUT[0] == 0.0f && ROUND_OUT[1] == 2.0f && ROUND_OUT[2] == 2.0f); /* to even */
  ck_assert(ROUND_OUT[4] == 0.0f && signbit(ROUND_OUT[4]) && ROUND_OUT[6] == -2.0f);
}

START_TEST(erf_and_round) {
  for (int vectorized = 0; vectorized < 2; vectorized++) {
    fill_round_inputs();
    mfx_buffer *x = buffer("x", MFX_F32, ROUND_N), *e = buffer("e", MFX_F32, ROUND_N),
               *r = buffer("r", MFX_F32, ROUND_N);
    mfx_var *io = var("io", 8), *ii = var("ii", 8);
    mfx_expr *i = split_index(io, ii);
    mfx_stmt *body = seq2(store(e, i, mfx_unary(A, MFX_ERF, load(x, i))),
                          store(r, i, mfx_unary(A, MFX_ROUND, load(x, i))));
    mfx_jit_kernel *k = compile(func("erf_round", 3, (mfx_buffer *[]){x, e, r},
                                     split_loop(io, ii, ROUND_N,
                                                vectorized ? MFX_LOOP_VECTORIZED : MFX_LOOP_SERIAL,
                                                body)));
    run_both(k, (void *[]){ROUND_X, ERF_OUT, ROUND_OUT}, NULL, check_erf_round);
    mfx_jit_free(k);
  }
  /* Both take f32 only: on an integer the builder says so. */
  mfx_expr *int_value = mfx_int(A, MFX_I32, 3);
  ck_assert_ptr_null(mfx_unary(A, MFX_ERF, int_value));
  ck_assert_str_eq(mfx_last_error(), "erf needs an f32 operand, got i32");
  ck_assert_ptr_null(mfx_unary(A, MFX_ROUND, int_value));
  ck_assert_str_eq(mfx_last_error(), "round needs an f32 operand, got i32");
  ck_assert_str_eq(mfx_unary_op_name(MFX_ERF), "erf");
  ck_assert_str_eq(mfx_unary_op_name(MFX_ROUND), "round");
}
END_TEST

/* ---- several kernels, emitted artifacts ------------------------------------------------------ */

static mfx_func *vadd_func(const char *name) {
  mfx_buffer *a = buffer("a", MFX_F32, 100), *b = buffer("b", MFX_F32, 100),
             *c = buffer("c", MFX_F32, 100);
  mfx_var *io = var("io", 13), *ii = var("ii", 8);
  mfx_expr *i = split_index(io, ii);
  mfx_stmt *body = store(c, i, add(load(a, i), load(b, i)));
  return func(name, 3, (mfx_buffer *[]){a, b, c},
              split_loop(io, ii, 100, MFX_LOOP_VECTORIZED, body));
}

typedef struct {
  mfx_func *fn;
  mfx_status st;
  mfx_jit_kernel *k;
} compile_job;

static void *compile_in_thread(void *arg) {
  compile_job *job = arg;
  job->st = mfx_jit_compile(job->fn, &job->k);
  return NULL;
}

static void check_vadd100(void) {
  for (int i = 0; i < 100; i++) assert_close(Z[i], X[i] + Y[i], "vadd", i);
}

/* mfx_jit_compile from two threads at once (LLVM set up once). */
START_TEST(compile_from_two_threads) {
  compile_job jobs[2] = {{.fn = vadd_func("vadd_a")}, {.fn = vadd_func("vadd_b")}};
  pthread_t threads[2];
  for (int t = 0; t < 2; t++)
    ck_assert_int_eq(pthread_create(&threads[t], NULL, compile_in_thread, &jobs[t]), 0);
  for (int t = 0; t < 2; t++) {
    ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
    ck_assert_int_eq(jobs[t].st, MFX_OK);
    run_both(jobs[t].k, (void *[]){X, Y, Z}, fill_inputs, check_vadd100);
    mfx_jit_free(jobs[t].k);
  }
}
END_TEST

START_TEST(two_kernels_side_by_side) {
  fill_inputs();
  mfx_jit_kernel *scratch = compile(scratch_func());
  mfx_buffer *x = buffer("x", MFX_F32, 5), *out = buffer("out", MFX_F32, 5);
  mfx_var *i = var("i", 5);
  mfx_expr *v = add(mul(load(x, ref(i)), mfx_cast(A, MFX_F32, ref(i))), mfx_f32(A, 1));
  mfx_jit_kernel *unrolled = compile(func("unrolled", 2, (mfx_buffer *[]){x, out},
                                          loop(i, MFX_LOOP_UNROLLED, store(out, ref(i), v))));
  run_both(scratch, (void *[]){X, Z}, NULL, check_scratch);
  run_both(unrolled, (void *[]){X, Z}, NULL, check_unrolled);
  mfx_jit_free(scratch);
  run_both(unrolled, (void *[]){X, Z}, NULL, check_unrolled);
  mfx_jit_free(unrolled);
}
END_TEST

START_TEST(emit_ll_asm_obj) {
  char *data = NULL;
  size_t size = 0;
  mfx_func *fn = vadd_func("emitted_vadd");
  ck_assert_int_eq(mfx_codegen_emit(fn, MFX_EMIT_LL, &data, &size), MFX_OK);
  ck_assert_msg(strstr(data, "<8 x float>") != NULL, "no <8 x float> in:\n%s", data);
  ck_assert_ptr_nonnull(strstr(data, "emitted_vadd"));
  ck_assert_uint_eq(size, strlen(data));
  free(data);
  ck_assert_int_eq(mfx_codegen_emit(fn, MFX_EMIT_ASM, &data, &size), MFX_OK);
  ck_assert_uint_gt(size, 0);
  ck_assert_ptr_nonnull(strstr(data, "emitted_vadd"));
  free(data);
  ck_assert_int_eq(mfx_codegen_emit(fn, MFX_EMIT_OBJ, &data, &size), MFX_OK);
  ck_assert_uint_gt(size, 4);
  ck_assert_int_eq(memcmp(data,
                          "\x7f"
                          "ELF",
                          4),
                   0);
  free(data);
}
END_TEST

/* ---- malformed funcs ----------------------------------------------------------------------------
 */

static void assert_fails(const mfx_func *fn, const char *needle) {
  mfx_jit_kernel *k = (mfx_jit_kernel *)&k; /* must be reset to NULL */
  mfx_clear_error();
  mfx_status st = mfx_jit_compile(fn, &k);
  ck_assert_int_ne(st, MFX_OK);
  ck_assert_ptr_null(k);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
  char *data = (char *)&data;
  size_t size = 1;
  ck_assert_int_ne(mfx_codegen_emit(fn, MFX_EMIT_LL, &data, &size), MFX_OK);
  ck_assert_ptr_null(data);
}

START_TEST(malformed_funcs_fail_with_a_message) {
  mfx_buffer *x = buffer("x", MFX_F32, 8), *out = buffer("out", MFX_F32, 8);
  mfx_buffer *args[2] = {x, out};
  mfx_var *i = var("i", 8), *k = mfx_var_create(A, "k", 8, 1), *unbound = var("j", 8);
  mfx_stmt *copy = store(out, ref(i), load(x, ref(i)));

  assert_fails(func("barrier", 2, args, seq2(mfx_stmt_barrier(A), copy)), "BARRIER");
  mfx_expr *sum = mfx_reduce(A, MFX_REDUCE_SUM, 1, &k, load(x, ref(k)));
  assert_fails(func("reduce", 2, args, store(out, cst(0), sum)), "reduction");
  assert_fails(func("gpu_loop", 2, args, loop(i, MFX_LOOP_BLOCK_X, copy)), "GPU");
  int64_t eight = 8;
  mfx_buffer *shared = mfx_buffer_create(A, "smem", MFX_F32, 1, &eight, MFX_SCOPE_SHARED);
  assert_fails(
      func("shared", 2, args, mfx_stmt_allocate(A, shared, loop(i, MFX_LOOP_SERIAL, copy))),
      "smem");
  mfx_stmt *two_d = mfx_stmt_store(A, out, 2, (mfx_expr *[]){cst(0), ref(i)}, mfx_f32(A, 1));
  assert_fails(func("unflattened", 2, args, loop(i, MFX_LOOP_SERIAL, two_d)), "flatten");
  assert_fails(func("unbound", 2, args, store(out, ref(unbound), mfx_f32(A, 1))), "j");
  assert_fails(func("unknown_buffer", 1, args, loop(i, MFX_LOOP_SERIAL, copy)), "out");
  assert_fails(func("zero_extent", 2, args, mfx_stmt_for(A, i, 0, MFX_LOOP_SERIAL, copy)),
               "extent");
  assert_fails(func("no_body", 2, args, NULL), "body");
  assert_fails(func("twice", 2, (mfx_buffer *[]){x, x}, copy), "distinct");
  mfx_jit_kernel *kernel = NULL;
  ck_assert_int_eq(mfx_jit_compile(NULL, &kernel), MFX_ERR_INVALID);
  ck_assert_ptr_null(mfx_jit_entry(NULL));
  mfx_jit_free(NULL);
}
END_TEST

int main(void) {
  Suite *s = suite_create("codegen");
  TCase *tc = tcase_create("cpu");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, vectorized_add_with_tail);
  tcase_add_test(tc, parallel_row_sums);
  tcase_add_test(tc, vectorized_reduction_axis_stays_correct);
  tcase_add_test(tc, parallel_loop_with_global_scratch);
  tcase_add_test(tc, allocation_failure_is_reported);
  tcase_add_test(tc, parallel_body_captures_outer_variables);
  tcase_add_test(tc, non_monotone_guard_runs_serially);
  tcase_add_test(tc, unrolled_loop);
  tcase_add_test(tc, local_allocate);
  tcase_add_test(tc, let_binding);
  tcase_add_test(tc, integer_operations);
  tcase_add_test(tc, gather_and_scatter);
  tcase_add_test(tc, bool_buffer);
  tcase_add_test(tc, uniform_select_is_a_vector_select);
  tcase_add_test(tc, float_math);
  tcase_add_test(tc, erf_and_round);
  tcase_add_test(tc, compile_from_two_threads);
  tcase_add_test(tc, two_kernels_side_by_side);
  tcase_add_test(tc, emit_ll_asm_obj);
  tcase_add_test(tc, malformed_funcs_fail_with_a_message);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
