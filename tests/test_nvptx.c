/* nvptx64 code generation, without a GPU. GPU schedules of small tensor
 * expressions (elementwise with a guarded tail, row sums, a matmul with
 * shared-memory staging and a register tile, a two-kernel program with a
 * workspace, Hamming scores with xor/popcount, shifts, f32 math, a
 * vectorized inner loop) are lowered, split into kernels and compiled to
 * PTX, for several shapes, some not divisible by the tiles. The PTX must
 * hold what the program implies (.entry per kernel, .shared and bar.sync
 * for staging, popc, ...) and ptxas must assemble it for sm_80 and sm_90;
 * without ptxas the tests say SKIP loudly on stderr.
 *
 * Kernel bodies come from the code generator the CPU tests run against
 * reference results; what is GPU-specific is checked here: launch
 * dimensions, argument order, workspace, bindings and the errors the GPU
 * target must report (parallel loops, barriers threads could skip, racing
 * stores, too many threads, unknown architectures). MFX_NVPTX_DUMP=dir keeps
 * the PTX of each program there. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mfx/compiler.h"
#include "ptxas_check.h"
#include "check_main.h"

static mfx_arena *A;

static void setup(void) { A = mfx_arena_create(); }
static void teardown(void) { mfx_arena_destroy(A); }

/* ---- PTX checks ---------------------------------------------------------------- */

static void assert_has(const char *text, const char *needle, const char *what) {
  ck_assert_msg(strstr(text, needle) != NULL, "%s: the output lacks \"%s\"", what, needle);
}

static void assert_lacks(const char *text, const char *needle, const char *what) {
  ck_assert_msg(strstr(text, needle) == NULL, "%s: the output has \"%s\"", what, needle);
}

static void assert_error(mfx_status got, mfx_status want, const char *needle) {
  ck_assert_msg(got == want, "status %d, expected %d (%s)", (int)got, (int)want, mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                mfx_last_error(), needle);
}

static char *ptx_for(const mfx_gpu_program *p, const char *sm) {
  char *ptx = NULL;
  size_t size = 0;
  mfx_status st = mfx_codegen_ptx(p, sm, &ptx, &size);
  ck_assert_msg(st == MFX_OK, "PTX for %s: %s", sm, mfx_last_error());
  ck_assert_ptr_nonnull(ptx);
  ck_assert_uint_eq(strlen(ptx), size);
  return ptx;
}

/* With MFX_NVPTX_DUMP=dir, the PTX is also written to dir/<kernel>.ptx. */
static void keep(const char *ptx, const char *name) {
  const char *dir = getenv("MFX_NVPTX_DUMP");
  if (dir == NULL) return;
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.ptx", dir, name);
  FILE *f = fopen(path, "w");
  if (f == NULL) return;
  fputs(ptx, f);
  fclose(f);
}

/* PTX for sm_80 and sm_90 (sm_80 PTX both), an .entry per kernel, both
 * assembled for their architecture. Returns the sm_80 text. */
static char *compile_and_assemble(const mfx_gpu_program *p, const char *what) {
  char *ptx80 = ptx_for(p, "sm_80");
  char *ptx90 = ptx_for(p, "sm_90");
  for (int i = 0; i < p->n_kernels; i++) {
    char entry[256];
    snprintf(entry, sizeof entry, ".entry %s(", p->kernels[i].name);
    assert_has(ptx80, entry, what);
    assert_has(ptx90, entry, what);
  }
  assert_has(ptx80, ".target sm_80", what);
  assert_has(ptx90, ".target sm_80", what);
  keep(ptx80, p->kernels[0].name);
  assemble(ptx80, "sm_80", what);
  assemble(ptx90, "sm_90", what);
  free(ptx90);
  return ptx80;
}

/* The kernel's .param list names exactly n parameters. */
static void assert_params(const char *ptx, const char *kernel, int n) {
  char name[256];
  snprintf(name, sizeof name, "%s_param_%d,", kernel, n - 1);
  char last[256];
  snprintf(last, sizeof last, "%s_param_%d\n", kernel, n - 1);
  ck_assert_msg(strstr(ptx, name) != NULL || strstr(ptx, last) != NULL,
                "%s: no parameter %d in the PTX", kernel, n - 1);
  snprintf(name, sizeof name, "%s_param_%d", kernel, n);
  ck_assert_msg(strstr(ptx, name) == NULL, "%s: more than %d parameters", kernel, n);
}

static void assert_dims(const int64_t *got, int64_t x, int64_t y, int64_t z, const char *what) {
  ck_assert_msg(got[0] == x && got[1] == y && got[2] == z,
                "%s: (%lld, %lld, %lld), expected (%lld, %lld, %lld)", what, (long long)got[0],
                (long long)got[1], (long long)got[2], (long long)x, (long long)y, (long long)z);
}

static void assert_args(const mfx_gpu_kernel *k, int n, mfx_buffer *const *want) {
  ck_assert_msg(k->n_args == n, "%s: %d arguments, expected %d", k->name, k->n_args, n);
  for (int i = 0; i < n; i++)
    ck_assert_msg(k->args[i] == want[i], "%s: argument %d is %s, expected %s", k->name, i,
                  k->args[i]->name, want[i]->name);
}

/* ---- building GPU programs from tensor expressions --------------------------------- */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static mfx_expr *ref(mfx_var *v) { return mfx_var_ref(A, v); }

static mfx_expr *at1(mfx_tensor *t, mfx_expr *i) { return mfx_tensor_load(A, t, 1, &i); }

static mfx_expr *at2(mfx_tensor *t, mfx_expr *i, mfx_expr *j) {
  return mfx_tensor_load(A, t, 2, (mfx_expr *[]){i, j});
}

static mfx_tensor *input1(const char *name, mfx_dtype t, int64_t n) {
  return mfx_placeholder(A, name, t, 1, &n);
}

static mfx_tensor *input2(const char *name, mfx_dtype t, int64_t m, int64_t n) {
  return mfx_placeholder(A, name, t, 2, (int64_t[]){m, n});
}

static mfx_tensor *compute(const char *name, mfx_dtype t, int ndim, const int64_t *shape,
                           const char *const *axes) {
  return mfx_compute_begin(A, name, t, ndim, shape, axes);
}

static void set_body(mfx_tensor *t, mfx_expr *body) {
  ck_assert_msg(mfx_compute_set_body(A, t, body) == MFX_OK, "body of %s: %s", t->buf->name,
                mfx_last_error());
}

static mfx_schedule *schedule(int n_in, mfx_tensor **in, int n_out, mfx_tensor **out) {
  mfx_schedule *s = NULL;
  ck_assert_msg(mfx_sched_create(A, n_in, in, n_out, out, &s) == MFX_OK, "schedule: %s",
                mfx_last_error());
  return s;
}

static void ok(mfx_status st) { ck_assert_msg(st == MFX_OK, "%s", mfx_last_error()); }

static mfx_itervar *loop_of(mfx_stage *st, const char *name) {
  mfx_itervar *iv = mfx_sched_itervar(st, name);
  ck_assert_msg(iv != NULL, "no loop %s", name);
  return iv;
}

/* Split iv by factor into (outer -> ob, inner -> ib). */
static void split_bind(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, int64_t factor,
                       mfx_loop_kind ob, mfx_loop_kind ib, mfx_itervar **outer,
                       mfx_itervar **inner) {
  ok(mfx_sched_split(s, st, iv, factor, MFX_TAIL_GUARD, outer, inner));
  ok(mfx_sched_bind(s, st, *outer, ob));
  ok(mfx_sched_bind(s, st, *inner, ib));
}

static mfx_gpu_program *lower_split(mfx_schedule *s, const char *name) {
  mfx_func *fn = NULL;
  ck_assert_msg(mfx_lower(s, name, &fn) == MFX_OK, "lower %s: %s", name, mfx_last_error());
  mfx_gpu_program *p = NULL;
  ck_assert_msg(mfx_split_kernels(A, fn, &p) == MFX_OK, "split %s: %s", name, mfx_last_error());
  return p;
}

/* ---- elementwise with a guarded tail ------------------------------------------------ */

typedef struct {
  mfx_tensor *X, *Y, *Z;
  mfx_gpu_program *p;
} binary_program;

/* Z[i] = X[i] + Y[i]; i split by threads onto blockIdx.x, threadIdx.x. */
static binary_program vadd_program(int64_t n, int64_t threads) {
  binary_program b = {input1("X", MFX_F32, n), input1("Y", MFX_F32, n), NULL, NULL};
  b.Z = compute("Z", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *i = ref(b.Z->axes[0]);
  set_body(b.Z, mfx_add(A, at1(b.X, i), at1(b.Y, i)));
  mfx_schedule *s = schedule(2, (mfx_tensor *[]){b.X, b.Y}, 1, &b.Z);
  mfx_stage *st = mfx_sched_stage(s, b.Z);
  mfx_itervar *o, *in;
  split_bind(s, st, loop_of(st, "i"), threads, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
  b.p = lower_split(s, "vadd");
  return b;
}

START_TEST(elementwise_add_with_tail) {
  static const int64_t sizes[][2] = {{1, 256}, {100, 64}, {256, 256}, {1000, 256}, {1027, 128}};
  for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
    int64_t n = sizes[t][0], threads = sizes[t][1];
    binary_program b = vadd_program(n, threads);
    ck_assert_int_eq(b.p->n_kernels, 1);
    ck_assert_int_eq(b.p->n_workspace, 0);
    const mfx_gpu_kernel *k = &b.p->kernels[0];
    ck_assert_str_eq(k->name, "vadd_k0");
    assert_dims(k->grid, ceil_div(n, threads), 1, 1, "vadd grid");
    assert_dims(k->block, threads, 1, 1, "vadd block");
    assert_args(k, 3, (mfx_buffer *[]){b.X->buf, b.Y->buf, b.Z->buf});
    ck_assert_int_eq(k->shared_bytes, 0);
    char *ptx = compile_and_assemble(b.p, "vadd");
    assert_params(ptx, "vadd_k0", 3);
    char reqntid[64];
    snprintf(reqntid, sizeof reqntid, ".reqntid %lld, 1, 1", (long long)threads);
    assert_has(ptx, reqntid, "vadd");
    if (k->grid[0] > 1) assert_has(ptx, "%ctaid.x", "vadd");
    assert_has(ptx, "%tid.x", "vadd");
    assert_has(ptx, "ld.global.nc.f32", "vadd (read-only inputs)");
    assert_has(ptx, "st.global.f32", "vadd");
    assert_lacks(ptx, ".shared", "vadd");
    assert_lacks(ptx, "bar.sync", "vadd");
    char *again = ptx_for(b.p, "sm_80");
    ck_assert_msg(strcmp(ptx, again) == 0, "vadd: two compilations differ");
    free(again);
    free(ptx);
  }
}
END_TEST

/* Z = X * Y with 4 elements per thread in a vectorized innermost loop. */
START_TEST(vectorized_inner_loop) {
  static const int64_t sizes[] = {1000, 1024, 7};
  for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
    int64_t n = sizes[t];
    mfx_tensor *X = input1("X", MFX_F32, n), *Y = input1("Y", MFX_F32, n);
    mfx_tensor *Z = compute("Z", MFX_F32, 1, &n, (const char *[]){"i"});
    mfx_expr *i = ref(Z->axes[0]);
    set_body(Z, mfx_mul(A, at1(X, i), at1(Y, i)));
    mfx_schedule *s = schedule(2, (mfx_tensor *[]){X, Y}, 1, &Z);
    mfx_stage *st = mfx_sched_stage(s, Z);
    mfx_itervar *bo, *rest, *tx, *v;
    ok(mfx_sched_split(s, st, loop_of(st, "i"), 256, MFX_TAIL_GUARD, &bo, &rest));
    ok(mfx_sched_split(s, st, rest, 4, MFX_TAIL_GUARD, &tx, &v));
    ok(mfx_sched_bind(s, st, bo, MFX_LOOP_BLOCK_X));
    ok(mfx_sched_bind(s, st, tx, MFX_LOOP_THREAD_X));
    ok(mfx_sched_vectorize(s, st, v));
    mfx_gpu_program *p = lower_split(s, "vmul");
    assert_dims(p->kernels[0].grid, ceil_div(n, 256), 1, 1, "vmul grid");
    assert_dims(p->kernels[0].block, 64, 1, 1, "vmul block");
    char *ptx = compile_and_assemble(p, "vmul");
    assert_has(ptx, "mul.rn.f32", "vmul");
    free(ptx);
  }
}
END_TEST

/* ---- row sums ----------------------------------------------------------------------- */

typedef struct {
  mfx_tensor *X, *Y;
  mfx_schedule *s;
  mfx_stage *st;
  mfx_itervar *ro, *ri;
} rowsum_program;

/* Y[r] = sum(k: X[r, k]); rows over blockIdx.x x threadIdx.x (32). */
static rowsum_program rowsum_schedule(int64_t rows, int64_t cols) {
  rowsum_program r = {.X = input2("X", MFX_F32, rows, cols)};
  r.Y = compute("Y", MFX_F32, 1, &rows, (const char *[]){"r"});
  mfx_var *k = mfx_var_create(A, "k", cols, 1);
  set_body(r.Y, mfx_reduce(A, MFX_REDUCE_SUM, 1, &k, at2(r.X, ref(r.Y->axes[0]), ref(k))));
  r.s = schedule(1, &r.X, 1, &r.Y);
  r.st = mfx_sched_stage(r.s, r.Y);
  split_bind(r.s, r.st, loop_of(r.st, "r"), 32, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &r.ro, &r.ri);
  return r;
}

START_TEST(row_sums_thread_per_row) {
  static const int64_t shapes[][2] = {{13, 37}, {64, 100}, {100, 7}};
  for (int local = 0; local < 2; local++)
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
      int64_t rows = shapes[t][0], cols = shapes[t][1];
      rowsum_program r = rowsum_schedule(rows, cols);
      if (local) ok(mfx_sched_cache_write_local(r.s, r.st, r.ri)); /* accumulate in a register */
      mfx_gpu_program *p = lower_split(r.s, "rowsum");
      ck_assert_int_eq(p->n_kernels, 1);
      assert_dims(p->kernels[0].grid, ceil_div(rows, 32), 1, 1, "rowsum grid");
      assert_dims(p->kernels[0].block, 32, 1, 1, "rowsum block");
      assert_args(&p->kernels[0], 2, (mfx_buffer *[]){r.X->buf, r.Y->buf});
      char *ptx = compile_and_assemble(p, local ? "rowsum (register accumulator)" : "rowsum");
      assert_has(ptx, "add.rn.f32", "rowsum");
      if (local) assert_lacks(ptx, ".local", "rowsum: the accumulator stays in a register");
      free(ptx);
    }
}
END_TEST

/* ---- matmul: shared-memory staging, register tile ------------------------------------ */

typedef struct {
  mfx_tensor *Am, *Bm, *C;
  mfx_gpu_program *p;
} matmul_program;

/* C[i, j] = sum(k: A[i, k] * B[k, j]). Blocks of 32 x 32 outputs over
 * (blockIdx.y, blockIdx.x), 16 x 16 threads with 2 x 2 outputs each in a
 * local tile, k in steps of 8 with A and B tiles staged in shared memory. */
static matmul_program matmul(int64_t M, int64_t N, int64_t K, int unroll) {
  matmul_program m = {input2("A", MFX_F32, M, K), input2("B", MFX_F32, K, N), NULL, NULL};
  m.C = compute("C", MFX_F32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  mfx_var *k = mfx_var_create(A, "k", K, 1);
  mfx_expr *prod =
      mfx_mul(A, at2(m.Am, ref(m.C->axes[0]), ref(k)), at2(m.Bm, ref(k), ref(m.C->axes[1])));
  set_body(m.C, mfx_reduce(A, MFX_REDUCE_SUM, 1, &k, prod));
  mfx_schedule *s = schedule(2, (mfx_tensor *[]){m.Am, m.Bm}, 1, &m.C);
  mfx_stage *st = mfx_sched_stage(s, m.C);
  mfx_itervar *bi, *ii, *bj, *jj, *ty, *ri, *tx, *rj, *ko, *ki;
  ok(mfx_sched_split(s, st, loop_of(st, "i"), 32, MFX_TAIL_GUARD, &bi, &ii));
  ok(mfx_sched_split(s, st, ii, 2, MFX_TAIL_GUARD, &ty, &ri));
  ok(mfx_sched_split(s, st, loop_of(st, "j"), 32, MFX_TAIL_GUARD, &bj, &jj));
  ok(mfx_sched_split(s, st, jj, 2, MFX_TAIL_GUARD, &tx, &rj));
  ok(mfx_sched_split(s, st, loop_of(st, "k"), 8, MFX_TAIL_GUARD, &ko, &ki));
  ok(mfx_sched_reorder(s, st, 8, (mfx_itervar *[]){bi, bj, ty, tx, ko, ki, ri, rj}));
  ok(mfx_sched_bind(s, st, bi, MFX_LOOP_BLOCK_Y));
  ok(mfx_sched_bind(s, st, bj, MFX_LOOP_BLOCK_X));
  ok(mfx_sched_bind(s, st, ty, MFX_LOOP_THREAD_Y));
  ok(mfx_sched_bind(s, st, tx, MFX_LOOP_THREAD_X));
  if (unroll) {
    ok(mfx_sched_unroll(s, st, ri));
    ok(mfx_sched_unroll(s, st, rj));
  }
  ok(mfx_sched_cache_read(s, st, m.Am, MFX_SCOPE_SHARED, ko));
  ok(mfx_sched_cache_read(s, st, m.Bm, MFX_SCOPE_SHARED, ko));
  ok(mfx_sched_cache_write_local(s, st, tx));
  m.p = lower_split(s, "matmul");
  return m;
}

START_TEST(matmul_shared_staging) {
  static const int64_t shapes[][3] = {{64, 64, 64}, {50, 70, 30}, {33, 17, 9}};
  for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
    int64_t M = shapes[t][0], N = shapes[t][1], K = shapes[t][2];
    matmul_program m = matmul(M, N, K, t % 2 == 0);
    ck_assert_int_eq(m.p->n_kernels, 1);
    const mfx_gpu_kernel *k = &m.p->kernels[0];
    assert_dims(k->grid, ceil_div(N, 32), ceil_div(M, 32), 1, "matmul grid");
    assert_dims(k->block, 16, 16, 1, "matmul block");
    assert_args(k, 3, (mfx_buffer *[]){m.Am->buf, m.Bm->buf, m.C->buf});
    ck_assert_int_eq(k->shared_bytes, (32 * 8 + 8 * 32) * 4);
    char *ptx = compile_and_assemble(m.p, "matmul");
    assert_params(ptx, "matmul_k0", 3);
    assert_has(ptx, ".shared", "matmul");
    assert_has(ptx, "bar.sync", "matmul");
    assert_has(ptx, "ld.shared.", "matmul");
    assert_has(ptx, "st.shared.f32", "matmul");
    assert_has(ptx, "fma.rn.f32", "matmul");
    assert_has(ptx, ".reqntid 16, 16, 1", "matmul");
    assert_has(ptx, "%tid.y", "matmul");
    assert_has(ptx, "%ctaid.y", "matmul");
    free(ptx);
  }
}
END_TEST

/* ---- two stages: two kernels and a workspace ------------------------------------------ */

START_TEST(two_kernels_with_workspace) {
  static const int64_t shapes[][2] = {{8, 16}, {37, 11}};
  for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
    int64_t rows = shapes[t][0], cols = shapes[t][1];
    mfx_tensor *X = input2("X", MFX_F32, rows, cols), *Y = input2("Y", MFX_F32, rows, cols);
    mfx_tensor *T = compute("T", MFX_F32, 2, (int64_t[]){rows, cols}, (const char *[]){"i", "k"});
    mfx_expr *i = ref(T->axes[0]), *c = ref(T->axes[1]);
    set_body(T, mfx_add(A, mfx_mul(A, at2(X, i, c), mfx_f32(A, 2)), at2(Y, i, c)));
    mfx_tensor *S = compute("S", MFX_F32, 1, &rows, (const char *[]){"r"});
    mfx_var *k = mfx_var_create(A, "c", cols, 1);
    set_body(S, mfx_reduce(A, MFX_REDUCE_MAX, 1, &k, at2(T, ref(S->axes[0]), ref(k))));
    mfx_schedule *s = schedule(2, (mfx_tensor *[]){X, Y}, 1, &S);
    mfx_stage *ts = mfx_sched_stage(s, T), *ss = mfx_sched_stage(s, S);
    mfx_itervar *f, *o, *in;
    ok(mfx_sched_fuse(s, ts, loop_of(ts, "i"), loop_of(ts, "k"), &f));
    split_bind(s, ts, f, 128, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
    split_bind(s, ss, loop_of(ss, "r"), 32, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
    mfx_gpu_program *p = lower_split(s, "twostage");
    ck_assert_int_eq(p->n_kernels, 2);
    ck_assert_int_eq(p->n_workspace, 1);
    ck_assert_ptr_eq(p->workspace[0], T->buf);
    assert_dims(p->kernels[0].grid, ceil_div(rows * cols, 128), 1, 1, "stage T grid");
    assert_dims(p->kernels[0].block, 128, 1, 1, "stage T block");
    assert_dims(p->kernels[1].grid, ceil_div(rows, 32), 1, 1, "stage S grid");
    assert_dims(p->kernels[1].block, 32, 1, 1, "stage S block");
    assert_args(&p->kernels[0], 3, (mfx_buffer *[]){X->buf, Y->buf, T->buf});
    assert_args(&p->kernels[1], 2, (mfx_buffer *[]){S->buf, T->buf});
    char *ptx = compile_and_assemble(p, "twostage");
    assert_params(ptx, "twostage_k0", 3);
    assert_params(ptx, "twostage_k1", 2);
    assert_has(ptx, ".reqntid 128, 1, 1", "twostage");
    assert_has(ptx, ".reqntid 32, 1, 1", "twostage");
    assert_has(ptx, "max.f32", "twostage");
    free(ptx);
  }
}
END_TEST

/* ---- integers: Hamming scores, shifts ---------------------------------------------------- */

START_TEST(hamming_popcount_xor) {
  static const int64_t shapes[][3] = {{5, 40, 3}, {16, 64, 8}, {3, 31, 1}};
  for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
    int64_t M = shapes[t][0], N = shapes[t][1], W = shapes[t][2];
    mfx_tensor *Q = input2("Q", MFX_U32, M, W), *Kb = input2("K", MFX_U32, N, W);
    mfx_tensor *S = compute("S", MFX_I32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
    mfx_var *w = mfx_var_create(A, "w", W, 1);
    mfx_expr *x =
        mfx_binary(A, MFX_XOR, at2(Q, ref(S->axes[0]), ref(w)), at2(Kb, ref(S->axes[1]), ref(w)));
    mfx_expr *bits = mfx_cast(A, MFX_I32, mfx_unary(A, MFX_POPCOUNT, x));
    set_body(S, mfx_reduce(A, MFX_REDUCE_SUM, 1, &w, bits));
    mfx_schedule *s = schedule(2, (mfx_tensor *[]){Q, Kb}, 1, &S);
    mfx_stage *st = mfx_sched_stage(s, S);
    mfx_itervar *bj, *tj;
    ok(mfx_sched_bind(s, st, loop_of(st, "i"), MFX_LOOP_BLOCK_Y));
    split_bind(s, st, loop_of(st, "j"), 32, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &bj, &tj);
    mfx_gpu_program *p = lower_split(s, "hamming");
    assert_dims(p->kernels[0].grid, ceil_div(N, 32), M, 1, "hamming grid");
    assert_dims(p->kernels[0].block, 32, 1, 1, "hamming block");
    char *ptx = compile_and_assemble(p, "hamming");
    assert_has(ptx, "popc.b32", "hamming");
    assert_has(ptx, "xor.b32", "hamming");
    assert_has(ptx, "ld.global.nc.u32", "hamming");
    free(ptx);
  }
}
END_TEST

START_TEST(shifts_on_i32) {
  static const int64_t sizes[] = {64, 77};
  for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
    int64_t n = sizes[t];
    mfx_tensor *X = input1("X", MFX_I32, n), *P = input1("P", MFX_I32, n);
    mfx_tensor *Y = compute("Y", MFX_I32, 1, &n, (const char *[]){"i"});
    mfx_expr *i = ref(Y->axes[0]);
    mfx_expr *amount = mfx_binary(A, MFX_AND, at1(P, i), mfx_int(A, MFX_I32, 7));
    mfx_expr *left = mfx_binary(A, MFX_SHL, at1(X, i), amount);
    mfx_expr *right = mfx_binary(A, MFX_SHR, at1(X, i), amount);
    set_body(Y, mfx_binary(A, MFX_XOR, left, right));
    mfx_schedule *s = schedule(2, (mfx_tensor *[]){X, P}, 1, &Y);
    mfx_stage *st = mfx_sched_stage(s, Y);
    mfx_itervar *o, *in;
    split_bind(s, st, loop_of(st, "i"), 32, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
    mfx_gpu_program *p = lower_split(s, "shifts");
    char *ptx = compile_and_assemble(p, "shifts");
    assert_has(ptx, "shl.b32", "shifts");
    assert_has(ptx, "shr.s32", "shifts (arithmetic: i32 is signed)");
    free(ptx);
  }
}
END_TEST

/* Every operator class the IR has, on f32, i64, u8 and bool values. */
START_TEST(operators_assemble) {
  int64_t n = 50;
  mfx_tensor *X = input1("X", MFX_F32, n), *I = input1("I", MFX_I64, n);
  mfx_tensor *U = input1("U", MFX_U8, n);
  mfx_tensor *Y = compute("Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_tensor *Z = compute("Z", MFX_U8, 1, &n, (const char *[]){"i"});
  mfx_expr *x = at1(X, ref(Y->axes[0])), *v = at1(I, ref(Y->axes[0]));
  mfx_expr *u = at1(U, ref(Y->axes[0]));
  mfx_expr *b = mfx_binary(A, MFX_NE, u, mfx_int(A, MFX_U8, 0));
  mfx_expr *fl = mfx_select(A, mfx_binary(A, MFX_LT, x, mfx_f32(A, 0)),
                            mfx_binary(A, MFX_SUB, x, mfx_f32(A, 3)),
                            mfx_binary(A, MFX_MIN, mfx_binary(A, MFX_DIV, x, mfx_f32(A, 7)),
                                       mfx_binary(A, MFX_MAX, x, mfx_f32(A, -2))));
  mfx_expr *in = mfx_binary(A, MFX_ADD, mfx_binary(A, MFX_DIV, v, mfx_i64(A, 3)),
                            mfx_binary(A, MFX_MOD, mfx_unary(A, MFX_ABS, v), mfx_i64(A, 5)));
  in = mfx_binary(A, MFX_SUB, in, mfx_cast(A, MFX_I64, mfx_unary(A, MFX_NOT, u)));
  in = mfx_select(A, b, mfx_unary(A, MFX_NEG, in), mfx_unary(A, MFX_POPCOUNT, in));
  set_body(Y, mfx_add(A, fl, mfx_cast(A, MFX_F32, in)));
  mfx_expr *y = at1(X, ref(Z->axes[0]));
  set_body(Z,
           mfx_cast(A, MFX_U8,
                    mfx_binary(A, MFX_LOR, mfx_binary(A, MFX_GE, y, mfx_f32(A, 1)),
                               mfx_unary(A, MFX_NOT, mfx_binary(A, MFX_LT, y, mfx_f32(A, -1))))));
  mfx_schedule *s = schedule(3, (mfx_tensor *[]){X, I, U}, 2, (mfx_tensor *[]){Y, Z});
  mfx_itervar *o, *inner;
  mfx_stage *st = mfx_sched_stage(s, Y);
  split_bind(s, st, loop_of(st, "i"), 32, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &inner);
  st = mfx_sched_stage(s, Z);
  split_bind(s, st, loop_of(st, "i"), 64, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &inner);
  mfx_gpu_program *p = lower_split(s, "ops");
  ck_assert_int_eq(p->n_kernels, 2);
  assert_args(&p->kernels[1], 2, (mfx_buffer *[]){X->buf, Z->buf});
  char *ptx = compile_and_assemble(p, "operators");
  assert_has(ptx, "popc.b64", "operators");
  assert_has(ptx, "div.rn.f32", "operators");
  assert_has(ptx, "st.global.u8", "operators (u8)");
  assert_has(ptx, "ld.global.nc.u8", "operators (u8)");
  free(ptx);
}
END_TEST

/* ---- f32 math without libdevice ------------------------------------------------------------ */

START_TEST(float_math_is_self_contained) {
  int64_t n = 100;
  mfx_tensor *X = input1("X", MFX_F32, n);
  mfx_tensor *Y = compute("Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *x = at1(X, ref(Y->axes[0]));
  mfx_expr *ax = mfx_unary(A, MFX_ABS, x);
  mfx_expr *sum =
      mfx_add(A, mfx_unary(A, MFX_EXP, x), mfx_unary(A, MFX_LOG, mfx_add(A, ax, mfx_f32(A, 1))));
  sum = mfx_add(A, sum, mfx_add(A, mfx_unary(A, MFX_TANH, x), mfx_unary(A, MFX_SQRT, ax)));
  set_body(Y, sum);
  mfx_schedule *s = schedule(1, &X, 1, &Y);
  mfx_stage *st = mfx_sched_stage(s, Y);
  mfx_itervar *o, *in;
  split_bind(s, st, loop_of(st, "i"), 64, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
  mfx_gpu_program *p = lower_split(s, "math");
  char *ptx = compile_and_assemble(p, "math");
  assert_has(ptx, "fma.rn.f32", "math (codegen_math.c's polynomials)");
  assert_has(ptx, "cvt.rni.f32.f32", "math (exp's n = rint(x log2 e))");
  assert_has(ptx, "div.rn.f32", "math (log's s, tanh's 2 / (e + 1): correctly rounded)");
  assert_lacks(ptx, "approx", "math: no approximate PTX instructions");
  assert_has(ptx, "sqrt.rn.f32", "math (sqrt)");
  assert_lacks(ptx, ".extern", "math: no library calls");
  assert_lacks(ptx, "call", "math: helpers are inlined");
  free(ptx);
  char *ll = NULL;
  size_t size = 0;
  ok(mfx_codegen_gpu_emit(p, "sm_80", MFX_EMIT_LL, &ll, &size));
  assert_lacks(ll, "tanhf", "math LL");
  assert_lacks(ll, "llvm.exp.", "math LL");
  assert_lacks(ll, "llvm.log.", "math LL");
  free(ll);
}
END_TEST

/* erf and round: erf is codegen_math.c's inline polynomial (no libm on a
 * GPU, no division), round is cvt.rni (to nearest, ties to even). */
START_TEST(erf_and_round_are_self_contained) {
  int64_t n = 100;
  mfx_tensor *X = input1("X", MFX_F32, n);
  mfx_tensor *Y = compute("Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *x = at1(X, ref(Y->axes[0]));
  set_body(Y, mfx_add(A, mfx_unary(A, MFX_ERF, x), mfx_unary(A, MFX_ROUND, x)));
  mfx_schedule *s = schedule(1, &X, 1, &Y);
  mfx_stage *st = mfx_sched_stage(s, Y);
  mfx_itervar *o, *in;
  split_bind(s, st, loop_of(st, "i"), 64, MFX_LOOP_BLOCK_X, MFX_LOOP_THREAD_X, &o, &in);
  mfx_gpu_program *p = lower_split(s, "erf_round");
  char *ptx = compile_and_assemble(p, "erf_round");
  assert_has(ptx, "cvt.rni.f32.f32", "round");
  assert_has(ptx, "fma.rn.f32", "erf (its polynomials)");
  assert_lacks(ptx, "approx", "erf: no approximate PTX instructions");
  assert_lacks(ptx, ".extern", "erf: no library calls");
  assert_lacks(ptx, "call", "erf: no function calls");
  free(ptx);
  char *ll = NULL;
  size_t size = 0;
  ok(mfx_codegen_gpu_emit(p, "sm_80", MFX_EMIT_LL, &ll, &size));
  assert_lacks(ll, "erff", "erf LL");
  free(ll);
}
END_TEST

/* ---- hand-written loop IR: bindings, barriers, errors -------------------------------------- */

static mfx_var *var(const char *name, int64_t extent) { return mfx_var_create(A, name, extent, 0); }

static mfx_buffer *buffer(const char *name, int64_t n, mfx_scope scope) {
  return mfx_buffer_create(A, name, MFX_F32, 1, &n, scope);
}

static mfx_stmt *loop(mfx_var *v, mfx_loop_kind k, mfx_stmt *body) {
  return mfx_stmt_for(A, v, v->extent, k, body);
}

static mfx_stmt *store(mfx_buffer *b, mfx_expr *i, mfx_expr *v) {
  return mfx_stmt_store(A, b, 1, &i, v);
}

static mfx_expr *load(mfx_buffer *b, mfx_expr *i) { return mfx_load(A, b, 1, &i); }

static mfx_stmt *seq(int n, mfx_stmt **items) { return mfx_stmt_seq(A, n, items); }

static mfx_func *func(const char *name, int n_args, mfx_buffer **args, mfx_stmt *body) {
  mfx_func *fn = mfx_arena_alloc(A, sizeof *fn);
  fn->name = name;
  fn->n_args = n_args;
  fn->args = mfx_arena_alloc(A, sizeof(mfx_buffer *) * (size_t)n_args);
  memcpy(fn->args, args, sizeof(mfx_buffer *) * (size_t)n_args);
  fn->body = body;
  return fn;
}

static mfx_gpu_program *split(mfx_func *fn) {
  mfx_gpu_program *p = NULL;
  ck_assert_msg(mfx_split_kernels(A, fn, &p) == MFX_OK, "split %s: %s", fn->name, mfx_last_error());
  return p;
}

/* One kernel with the given launch, bypassing mfx_split_kernels' checks. */
static mfx_gpu_program *hand_program(const char *name, mfx_buffer *arg, mfx_stmt *body,
                                     int64_t grid_x, int64_t block_x) {
  mfx_gpu_program *p = mfx_arena_alloc(A, sizeof *p);
  p->func = func(name, 1, &arg, body);
  p->n_kernels = 1;
  p->kernels = mfx_arena_alloc(A, sizeof *p->kernels);
  p->kernels[0] = (mfx_gpu_kernel){.name = name,
                                   .body = body,
                                   .grid = {grid_x, 1, 1},
                                   .block = {block_x, 1, 1},
                                   .n_args = 1,
                                   .args = p->func->args};
  return p;
}

static mfx_status try_ptx(const mfx_gpu_program *p) {
  char *ptx = NULL;
  size_t size = 0;
  mfx_status st = mfx_codegen_ptx(p, "sm_80", &ptx, &size);
  if (st == MFX_OK) free(ptx);
  return st;
}

/* for t < extent (threadIdx.x): Z[t] = Z[t] + 1 */
static mfx_stmt *thread_update(mfx_buffer *z, const char *name, int64_t extent) {
  mfx_var *t = var(name, extent);
  return loop(t, MFX_LOOP_THREAD_X,
              store(z, mfx_var_ref(A, t), mfx_add(A, load(z, mfx_var_ref(A, t)), mfx_f32(A, 1))));
}

/* warp_sum: five shfl.sync.bfly butterflies on a GPU; the emulation needs
 * whole warps of threadIdx.x; the CPU code generator refuses it. rsqrt:
 * rsqrt.approx.f32 on a GPU, 1 / sqrt on the CPU. */
START_TEST(warp_sum_and_rsqrt) {
  mfx_buffer *z = buffer("Z", 64, MFX_SCOPE_GLOBAL);
  for (int threads = 64; threads >= 16; threads -= 48) {
    mfx_var *t = var("t", threads);
    mfx_expr *x = load(z, mfx_var_ref(A, t));
    mfx_expr *v = mfx_unary(A, MFX_RSQRT, mfx_unary(A, MFX_WARP_SUM, x));
    mfx_stmt *body = loop(t, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, t), v));
    mfx_gpu_program *p = hand_program("warp", z, body, 1, threads);
    mfx_func *fn = NULL;
    if (threads == 16) {
      assert_error(mfx_gpu_emulate_lower(A, p, &fn), MFX_ERR_SCHEDULE, "partial warp");
      continue;
    }
    ok(mfx_gpu_emulate_lower(A, p, &fn));
    char *ptx = NULL;
    size_t size = 0;
    ok(mfx_codegen_ptx(p, "sm_80", &ptx, &size));
    int n = 0;
    for (const char *c = strstr(ptx, "shfl.sync.bfly"); c; c = strstr(c + 1, "shfl.sync.bfly")) n++;
    ck_assert_int_eq(n, 5);
    assert_has(ptx, "rsqrt.approx.f32", "rsqrt");
    assemble(ptx, "sm_90", "warp_sum");
    free(ptx);
  }
  mfx_var *i = var("i", 64);
  mfx_stmt *serial = loop(i, MFX_LOOP_SERIAL, store(z, mfx_var_ref(A, i),
                          mfx_unary(A, MFX_WARP_SUM, load(z, mfx_var_ref(A, i)))));
  mfx_jit_kernel *k = NULL;
  mfx_status st = mfx_jit_compile(func("cpu_warp", 1, &z, serial), &k);
  ck_assert_msg(st != MFX_OK && strstr(mfx_last_error(), "warp_sum") != NULL &&
                strstr(mfx_last_error(), "GPU code") != NULL, "%d: %s", (int)st,
                mfx_last_error());
}
END_TEST

/* Nests of one kernel with thread extents 32 and 16: the second is guarded;
 * a barrier in a full-width loop and under a block guard is fine. */
START_TEST(partial_extents_are_guarded) {
  mfx_buffer *z = buffer("Z", 64, MFX_SCOPE_GLOBAL);
  mfx_var *b1 = var("b1", 2), *b2 = var("b2", 1), *t3 = var("t3", 32);
  mfx_stmt *synced = loop(
      t3, MFX_LOOP_THREAD_X,
      seq(2, (mfx_stmt *[]){mfx_stmt_barrier(A), store(z, mfx_var_ref(A, t3), mfx_f32(A, 0))}));
  mfx_stmt *body = seq(3, (mfx_stmt *[]){loop(b1, MFX_LOOP_BLOCK_X, thread_update(z, "t1", 32)),
                                         loop(b1, MFX_LOOP_BLOCK_X, thread_update(z, "t2", 16)),
                                         loop(b2, MFX_LOOP_BLOCK_X, synced)});
  mfx_gpu_program *p = split(func("partial", 1, &z, body));
  ck_assert_int_eq(p->n_kernels, 3);
  assert_dims(p->kernels[1].block, 16, 1, 1, "a nest alone is its own kernel");
  mfx_gpu_program *one = hand_program("partial_one", z, body, 2, 32);
  char *ptx = compile_and_assemble(one, "partial extents in one kernel");
  assert_has(ptx, "bar.sync", "partial");
  assert_has(ptx, "setp", "partial: guards");
  free(ptx);
}
END_TEST

START_TEST(barrier_threads_could_skip_is_an_error) {
  mfx_buffer *z = buffer("Z", 64, MFX_SCOPE_GLOBAL);
  mfx_var *t1 = var("t1", 32), *t2 = var("t2", 16);
  mfx_stmt *full = loop(t1, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, t1), mfx_f32(A, 1)));
  mfx_stmt *partial = loop(
      t2, MFX_LOOP_THREAD_X,
      seq(2, (mfx_stmt *[]){mfx_stmt_barrier(A), store(z, mfx_var_ref(A, t2), mfx_f32(A, 2))}));
  mfx_stmt *body = seq(2, (mfx_stmt *[]){full, partial});
  assert_error(try_ptx(hand_program("skip", z, body, 1, 32)), MFX_ERR_CODEGEN, "barrier");
  assert_error(try_ptx(hand_program("skip", z, body, 1, 32)), MFX_ERR_CODEGEN, "t2");
  /* under a conditional */
  mfx_var *t3 = var("t3", 32);
  mfx_expr *cond = mfx_binary(A, MFX_LT, mfx_var_ref(A, t3), mfx_i64(A, 5));
  mfx_stmt *guarded = loop(t3, MFX_LOOP_THREAD_X,
                           seq(2, (mfx_stmt *[]){mfx_stmt_if(A, cond, mfx_stmt_barrier(A), NULL),
                                                 store(z, mfx_var_ref(A, t3), mfx_f32(A, 2))}));
  assert_error(try_ptx(hand_program("cond", z, guarded, 1, 32)), MFX_ERR_CODEGEN, "conditional");
}
END_TEST

START_TEST(gpu_errors) {
  mfx_buffer *z = buffer("Z", 4096, MFX_SCOPE_GLOBAL);
  /* parallel loops: refused by kernel formation and by the code generator */
  mfx_var *i = var("i", 8);
  mfx_stmt *par = loop(i, MFX_LOOP_PARALLEL, store(z, mfx_var_ref(A, i), mfx_f32(A, 1)));
  mfx_gpu_program *p = NULL;
  assert_error(mfx_split_kernels(A, func("par", 1, &z, par), &p), MFX_ERR_SCHEDULE, "parallel");
  assert_error(try_ptx(hand_program("par", z, par, 1, 1)), MFX_ERR_CODEGEN, "blockIdx/threadIdx");
  /* too many threads */
  mfx_var *big = var("big", 2048);
  mfx_stmt *wide = loop(big, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, big), mfx_f32(A, 1)));
  assert_error(mfx_split_kernels(A, func("wide", 1, &z, wide), &p), MFX_ERR_SCHEDULE, "threads");
  assert_error(try_ptx(hand_program("wide", z, wide, 1, 2048)), MFX_ERR_CODEGEN,
               "blockDim.x = 2048");
  mfx_var *tx = var("tx", 64), *ty = var("ty", 32);
  mfx_expr *flat = mfx_add(A, mfx_mul(A, mfx_var_ref(A, ty), mfx_i64(A, 64)), mfx_var_ref(A, tx));
  mfx_stmt *square =
      loop(ty, MFX_LOOP_THREAD_Y, loop(tx, MFX_LOOP_THREAD_X, store(z, flat, mfx_f32(A, 1))));
  assert_error(mfx_split_kernels(A, func("square", 1, &z, square), &p), MFX_ERR_SCHEDULE,
               "threads");
  p = hand_program("square", z, square, 1, 64);
  p->kernels[0].block[1] = 32;
  assert_error(try_ptx(p), MFX_ERR_CODEGEN, "2048 threads per block");
  /* a loop longer than its launch dimension */
  mfx_var *t = var("t", 64);
  mfx_stmt *over = loop(t, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, t), mfx_f32(A, 1)));
  assert_error(try_ptx(hand_program("over", z, over, 1, 32)), MFX_ERR_CODEGEN, "blockDim.x = 32");
  /* the same axis bound twice in one nest */
  mfx_var *t1 = var("t1", 4), *t2 = var("t2", 4);
  mfx_stmt *twice = loop(t1, MFX_LOOP_THREAD_X,
                         loop(t2, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, t2), mfx_f32(A, 1))));
  assert_error(try_ptx(hand_program("twice", z, twice, 1, 4)), MFX_ERR_CODEGEN, "same axis");
  /* a store every thread would make */
  mfx_var *t3 = var("t3", 32);
  mfx_stmt *racy = seq(
      2, (mfx_stmt *[]){loop(t3, MFX_LOOP_THREAD_X, store(z, mfx_var_ref(A, t3), mfx_f32(A, 1))),
                        store(z, mfx_i64(A, 0), mfx_f32(A, 5))});
  assert_error(try_ptx(hand_program("racy", z, racy, 1, 32)), MFX_ERR_CODEGEN, "race");
  /* global memory allocated inside a kernel */
  mfx_buffer *scratch = buffer("scratch", 8, MFX_SCOPE_GLOBAL);
  mfx_stmt *alloc = mfx_stmt_allocate(A, scratch, store(scratch, mfx_i64(A, 0), mfx_f32(A, 1)));
  assert_error(try_ptx(hand_program("alloc", z, alloc, 1, 1)), MFX_ERR_CODEGEN, "workspace");
  /* more shared memory than a block has */
  int64_t huge_n = 16384;
  mfx_buffer *huge = mfx_buffer_create(A, "huge", MFX_F32, 1, &huge_n, MFX_SCOPE_SHARED);
  mfx_stmt *use = mfx_stmt_allocate(A, huge, store(huge, mfx_i64(A, 0), mfx_f32(A, 1)));
  assert_error(try_ptx(hand_program("huge", z, use, 1, 1)), MFX_ERR_CODEGEN, "65536 bytes");
  /* names PTX cannot take, and programs without kernels */
  assert_error(try_ptx(hand_program("bad.name", z, store(z, mfx_i64(A, 0), mfx_f32(A, 1)), 1, 1)),
               MFX_ERR_CODEGEN, "PTX identifier");
  mfx_gpu_program empty = {0};
  assert_error(try_ptx(&empty), MFX_ERR_INVALID, "without kernels");
  assert_error(try_ptx(NULL), MFX_ERR_INVALID, "without kernels");
}
END_TEST

/* ---- architectures and outputs --------------------------------------------------------------- */

START_TEST(architectures) {
  static const struct {
    const char *sm;
    int emitted, ptx, forward;
  } cases[] = {{"sm_50", 50, 60, 0}, {"sm_75", 75, 63, 0}, {"sm_80", 80, 70, 0},
               {"sm_86", 86, 71, 0}, {"sm_87", 80, 70, 1}, {"sm_89", 80, 70, 1},
               {"sm_90", 80, 70, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    mfx_ptx_target t;
    ok(mfx_ptx_target_resolve(cases[c].sm, &t));
    ck_assert_int_eq(t.sm_emitted, cases[c].emitted);
    ck_assert_int_eq(t.ptx_version, cases[c].ptx);
    ck_assert_int_eq(t.forward_jit, cases[c].forward);
  }
  static const char *const bad[] = {"sm_99", "sm_8",  "sm_800", "compute_80",
                                    "",      "sm_35", "sm_80a", "SM_80"};
  mfx_ptx_target t;
  for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
    assert_error(mfx_ptx_target_resolve(bad[b], &t), MFX_ERR_INVALID, "expected one of");
  assert_error(mfx_ptx_target_resolve(NULL, &t), MFX_ERR_INVALID, "(null)");

  binary_program b = vadd_program(300, 128);
  char *ptx = NULL;
  size_t size = 0;
  assert_error(mfx_codegen_ptx(b.p, "sm_99", &ptx, &size), MFX_ERR_INVALID, "sm_99");
  ck_assert_ptr_null(ptx);
  ptx = ptx_for(b.p, "sm_90");
  ck_assert_msg(strncmp(ptx, "// mfx: requested sm_90", 23) == 0, "sm_90 PTX begins: %.80s", ptx);
  assert_has(ptx, ".version 7.0", "sm_90");
  free(ptx);
  ptx = ptx_for(b.p, "sm_86");
  assert_has(ptx, ".target sm_86", "sm_86");
  assert_has(ptx, ".version 7.1", "sm_86");
  assemble(ptx, "sm_86", "sm_86 PTX");
  assemble(ptx, "sm_90", "sm_86 PTX");
  free(ptx);
  ptx = ptx_for(b.p, "sm_75");
  assert_has(ptx, ".target sm_75", "sm_75");
  assert_has(ptx, ".version 6.3", "sm_75");
  assemble(ptx, "sm_75", "sm_75 PTX");
  free(ptx);
}
END_TEST

START_TEST(llvm_ir_output) {
  binary_program b = vadd_program(300, 128);
  char *ll = NULL;
  size_t size = 0;
  ok(mfx_codegen_gpu_emit(b.p, "sm_80", MFX_EMIT_LL, &ll, &size));
  ck_assert_uint_eq(strlen(ll), size);
  assert_has(ll, "nvptx64-nvidia-cuda", "LL");
  assert_has(ll, "ptx_kernel void @vadd_k0(", "LL");
  assert_has(ll, "addrspace(1)* noalias", "LL");
  assert_has(ll, "!nvvm.annotations", "LL");
  assert_has(ll, "!\"kernel\", i32 1", "LL");
  assert_has(ll, "!\"reqntidx\", i32 128", "LL");
  free(ll);
  char *data = NULL;
  assert_error(mfx_codegen_gpu_emit(b.p, "sm_80", MFX_EMIT_OBJ, &data, &size), MFX_ERR_INVALID,
               "ptxas");
  ck_assert_ptr_null(data);
  assert_error(mfx_codegen_gpu_emit(b.p, "sm_80", MFX_EMIT_LL, NULL, &size), MFX_ERR_INVALID,
               "NULL");
}
END_TEST

static Suite *nvptx_suite(void) {
  Suite *s = suite_create("nvptx");
  TCase *tc = tcase_create("nvptx");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, elementwise_add_with_tail);
  tcase_add_test(tc, vectorized_inner_loop);
  tcase_add_test(tc, row_sums_thread_per_row);
  tcase_add_test(tc, matmul_shared_staging);
  tcase_add_test(tc, two_kernels_with_workspace);
  tcase_add_test(tc, hamming_popcount_xor);
  tcase_add_test(tc, shifts_on_i32);
  tcase_add_test(tc, operators_assemble);
  tcase_add_test(tc, float_math_is_self_contained);
  tcase_add_test(tc, erf_and_round_are_self_contained);
  tcase_add_test(tc, partial_extents_are_guarded);
  tcase_add_test(tc, warp_sum_and_rsqrt);
  tcase_add_test(tc, barrier_threads_could_skip_is_an_error);
  tcase_add_test(tc, gpu_errors);
  tcase_add_test(tc, architectures);
  tcase_add_test(tc, llvm_ir_output);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return check_run_suite(nvptx_suite());
}
