/* Tensor expressions, schedule primitives, lowering, passes and printers:
 * golden text for a small kernel, the simplifier's rules, and every class of
 * invalid schedule or expression, which must fail with a message. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

/* ---- helpers ------------------------------------------------------------------- */

typedef struct {
  mfx_arena *a;
  mfx_tensor *X, *Y;
  mfx_schedule *s;
  mfx_stage *st;
} rowsum;

/* Y[i] = sum(k < K: X[i, k]) */
static rowsum make_rowsum(int64_t M, int64_t K) {
  rowsum r = {.a = mfx_arena_create()};
  r.X = mfx_placeholder(r.a, "X", MFX_F32, 2, (int64_t[]){M, K});
  r.Y = mfx_compute_begin(r.a, "Y", MFX_F32, 1, (int64_t[]){M}, (const char *[]){"i"});
  mfx_var *k = mfx_var_create(r.a, "k", K, 1);
  mfx_expr *load = mfx_tensor_load(r.a, r.X, 2,
                                   (mfx_expr *[]){mfx_var_ref(r.a, r.Y->axes[0]), mfx_var_ref(r.a, k)});
  ck_assert_int_eq(mfx_compute_set_body(r.a, r.Y, mfx_reduce(r.a, MFX_REDUCE_SUM, 1, &k, load)), MFX_OK);
  ck_assert_int_eq(mfx_sched_create(r.a, 1, &r.X, 1, &r.Y, &r.s), MFX_OK);
  r.st = mfx_sched_stage(r.s, r.Y);
  return r;
}

static char *print_to_string(void (*fn)(FILE *, const void *), const void *arg) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  fn(f, arg);
  fclose(f);
  return buf;
}

static void print_func_cb(FILE *f, const void *fn) { mfx_print_func(f, fn); }
static void print_te_cb(FILE *f, const void *s) { mfx_print_te(f, s); }
static void print_schedule_cb(FILE *f, const void *s) { mfx_print_schedule(f, s); }
static void print_expr_cb(FILE *f, const void *e) { mfx_print_expr(f, e); }

static void assert_error(mfx_status got, mfx_status want, const char *needle) {
  ck_assert_int_eq(got, want);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
}

/* ---- golden text ---------------------------------------------------------------- */

static const char *GOLDEN_TE =
    "placeholder X: f32[6, 3]\n"
    "compute Y: f32[6] (i) = sum(k < 3: X[i, k])\n";

static const char *GOLDEN_SCHEDULE =
    "stage Y (output)\n"
    "  split i -> i.o, i.i by 4 (guarded tail)\n"
    "  loops: i.o(2) parallel, k(3, reduce), i.i(4) vectorized\n";

static const char *GOLDEN_LOOPS =
    "func rowsum(X: f32[6, 3], Y: f32[6]) {\n"
    "  for i.o in 0..2 parallel {\n"
    "    for i.i in 0..4 vectorized {\n"
    "      if (((i.o * 4) + i.i) < 6) {\n"
    "        Y[((i.o * 4) + i.i)] = 0f\n"
    "      }\n"
    "    }\n"
    "    for k in 0..3 {\n"
    "      for i.i in 0..4 vectorized {\n"
    "        if (((i.o * 4) + i.i) < 6) {\n"
    "          Y[((i.o * 4) + i.i)] = (Y[((i.o * 4) + i.i)] + X[((((i.o * 4) + i.i) * 3) + k)])\n"
    "        }\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n";

START_TEST(golden_rowsum) {
  rowsum r = make_rowsum(6, 3);
  mfx_itervar *io, *ii;
  ck_assert_int_eq(mfx_sched_split(r.s, r.st, mfx_sched_itervar(r.st, "i"), 4, MFX_TAIL_GUARD, &io, &ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_reorder(r.s, r.st, 2, (mfx_itervar *[]){mfx_sched_itervar(r.st, "k"), ii}), MFX_OK);
  ck_assert_int_eq(mfx_sched_vectorize(r.s, r.st, ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_parallel(r.s, r.st, io), MFX_OK);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(r.s, "rowsum", &fn), MFX_OK);
  char *te = print_to_string(print_te_cb, r.s);
  char *sched = print_to_string(print_schedule_cb, r.s);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_str_eq(te, GOLDEN_TE);
  ck_assert_str_eq(sched, GOLDEN_SCHEDULE);
  ck_assert_str_eq(loops, GOLDEN_LOOPS);
  free(te);
  free(sched);
  free(loops);
  mfx_arena_destroy(r.a);
}
END_TEST

START_TEST(divisible_split_has_no_guard) {
  rowsum r = make_rowsum(8, 2);
  ck_assert_int_eq(mfx_sched_split(r.s, r.st, mfx_sched_itervar(r.st, "i"), 4, MFX_TAIL_EXACT, NULL, NULL), MFX_OK);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(r.s, "rowsum", &fn), MFX_OK);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_ptr_null(strstr(loops, "if "));
  free(loops);
  mfx_arena_destroy(r.a);
}
END_TEST

START_TEST(local_accumulator_and_fuse) {
  rowsum r = make_rowsum(10, 5);
  mfx_itervar *io, *ii, *ko, *ki;
  ck_assert_int_eq(mfx_sched_split(r.s, r.st, mfx_sched_itervar(r.st, "i"), 4, MFX_TAIL_GUARD, &io, &ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(r.s, r.st, mfx_sched_itervar(r.st, "k"), 2, MFX_TAIL_GUARD, &ko, &ki), MFX_OK);
  ck_assert_int_eq(mfx_sched_reorder(r.s, r.st, 4, (mfx_itervar *[]){io, ko, ki, ii}), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_write_local(r.s, r.st, io), MFX_OK);
  mfx_itervar *f;
  ck_assert_int_eq(mfx_sched_fuse(r.s, r.st, ko, ki, &f), MFX_OK);
  ck_assert_str_eq(f->var->name, "k.o.k.i.f");
  ck_assert_int_eq(f->extent, 6);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(r.s, "rowsum", &fn), MFX_OK);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_ptr_nonnull(strstr(loops, "allocate Y.local: f32[4] local"));
  ck_assert_ptr_nonnull(strstr(loops, "Y[((i.o * 4) + i.i)] = Y.local[i.i]"));
  ck_assert_ptr_nonnull(strstr(loops, "(k.o.k.i.f / 2)"));
  free(loops);
  mfx_arena_destroy(r.a);
}
END_TEST

/* ---- the simplifier ---------------------------------------------------------------- */

START_TEST(simplifier_rules) {
  mfx_arena *a = mfx_arena_create();
  mfx_var *v = mfx_var_create(a, "v", 8, 0);
  mfx_expr *x = mfx_var_ref(a, v), *w = mfx_var_ref(a, mfx_var_create(a, "w", 5, 0));
  struct { mfx_expr *in; const char *out; } cases[] = {
      {mfx_add(a, mfx_i64(a, 2), mfx_i64(a, 3)), "5"},
      {mfx_add(a, mfx_add(a, x, mfx_i64(a, 2)), mfx_i64(a, 3)), "(v + 5)"},
      {mfx_mul(a, mfx_i64(a, 1), x), "v"},
      {mfx_mul(a, x, mfx_i64(a, 0)), "0"},
      {mfx_binary(a, MFX_DIV, x, mfx_i64(a, 8)), "0"},
      {mfx_binary(a, MFX_MOD, x, mfx_i64(a, 8)), "v"},
      {mfx_binary(a, MFX_MOD, x, mfx_i64(a, 4)), "(v % 4)"},
      {mfx_binary(a, MFX_LT, x, mfx_i64(a, 8)), "true"},
      {mfx_binary(a, MFX_LT, x, mfx_i64(a, 7)), "(v < 7)"},
      {mfx_binary(a, MFX_GE, x, mfx_i64(a, 8)), "false"},
      {mfx_binary(a, MFX_SHL, mfx_int(a, MFX_I32, 3), mfx_int(a, MFX_I32, 2)), "i32(12)"},
      {mfx_binary(a, MFX_SHR, mfx_int(a, MFX_I32, -8), mfx_int(a, MFX_I32, 1)), "i32(-4)"},
      {mfx_binary(a, MFX_SHR, mfx_int(a, MFX_U32, 0xfffffff8), mfx_int(a, MFX_U32, 1)), "u32(2147483644)"},
      {mfx_cast(a, MFX_I8, mfx_int(a, MFX_I32, 300)), "i8(44)"},
      {mfx_binary(a, MFX_MIN, x, mfx_i64(a, 100)), "v"},
      /* v in [0, 8): (w*16 + v) / 8 = w*2, (w*16 + v) % 8 = v, (v + w*8) / 8 = w. */
      {mfx_binary(a, MFX_DIV, mfx_add(a, mfx_mul(a, w, mfx_i64(a, 16)), x), mfx_i64(a, 8)), "(w * 2)"},
      {mfx_binary(a, MFX_MOD, mfx_add(a, mfx_mul(a, w, mfx_i64(a, 16)), x), mfx_i64(a, 8)), "v"},
      {mfx_binary(a, MFX_DIV, mfx_add(a, x, mfx_mul(a, w, mfx_i64(a, 8))), mfx_i64(a, 8)), "w"},
      {mfx_binary(a, MFX_DIV, mfx_add(a, mfx_mul(a, w, mfx_i64(a, 8)), mfx_add(a, x, mfx_i64(a, 4))), mfx_i64(a, 8)), "(w + ((v + 4) / 8))"},
      /* Not when the rest may be negative. */
      {mfx_binary(a, MFX_DIV, mfx_add(a, mfx_mul(a, w, mfx_i64(a, 8)), mfx_sub(a, x, mfx_i64(a, 4))), mfx_i64(a, 8)), "(((w * 8) + (v - 4)) / 8)"},
      {mfx_select(a, mfx_binary(a, MFX_LT, x, mfx_i64(a, 9)), mfx_f32(a, 1), mfx_f32(a, 2)), "1f"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_ptr_nonnull(cases[i].in);
    char *got = print_to_string(print_expr_cb, mfx_simplify_expr(a, cases[i].in));
    ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu: got %s, want %s", i, got, cases[i].out);
    free(got);
  }
  mfx_arena_destroy(a);
}
END_TEST

/* A sequence inside a one-iteration loop inside a sequence: every store
 * survives (the simplifier once dropped the spliced items). */
START_TEST(simplifier_splices_sequences) {
  mfx_arena *a = mfx_arena_create();
  mfx_buffer *b = mfx_buffer_create(a, "B", MFX_I32, 1, (int64_t[]){3}, MFX_SCOPE_GLOBAL);
  mfx_var *v = mfx_var_create(a, "v", 1, 0);
  mfx_stmt *st[3];
  for (int i = 0; i < 3; i++)
    st[i] = mfx_stmt_store(a, b, 1, (mfx_expr *[]){mfx_i64(a, i)}, mfx_int(a, MFX_I32, i));
  mfx_stmt *inner = mfx_stmt_seq(a, 2, st);
  mfx_stmt *outer = mfx_stmt_seq(a, 2, (mfx_stmt *[]){mfx_stmt_for(a, v, 1, MFX_LOOP_SERIAL, inner), st[2]});
  mfx_stmt *s = mfx_simplify_stmt(a, outer);
  ck_assert_int_eq(s->kind, MFX_STMT_SEQ);
  ck_assert_int_eq(s->u.seq.n, 3);
  for (int i = 0; i < 3; i++) ck_assert_int_eq(s->u.seq.items[i]->kind, MFX_STMT_STORE);
  mfx_arena_destroy(a);
}
END_TEST

/* A loop whose whole body is a guard `v < C` (a tile wider than the tensor)
 * runs to C unguarded; a guard on anything else, with an else, or at or past
 * the extent, stays as it is. */
START_TEST(simplifier_tightens_guarded_loops) {
  mfx_arena *a = mfx_arena_create();
  mfx_buffer *b = mfx_buffer_create(a, "B", MFX_I32, 1, (int64_t[]){32}, MFX_SCOPE_GLOBAL);
  mfx_var *v = mfx_var_create(a, "v", 32, 0), *w = mfx_var_create(a, "w", 4, 0);
  mfx_expr *vr = mfx_var_ref(a, v);
  mfx_stmt *store = mfx_stmt_store(a, b, 1, (mfx_expr *[]){vr}, mfx_int(a, MFX_I32, 7));
  struct { mfx_expr *cond; int has_else; int64_t want; } cases[] = {
      {mfx_binary(a, MFX_LT, vr, mfx_i64(a, 16)), 0, 16},
      {mfx_binary(a, MFX_GT, mfx_i64(a, 5), vr), 0, 5},
      {mfx_binary(a, MFX_LT, vr, mfx_i64(a, 16)), 1, 32},
      {mfx_binary(a, MFX_LT, mfx_var_ref(a, w), mfx_i64(a, 2)), 0, 32},
      {mfx_binary(a, MFX_LE, vr, mfx_i64(a, 16)), 0, 32},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mfx_stmt *g = mfx_stmt_if(a, cases[i].cond, store, cases[i].has_else ? store : NULL);
    mfx_stmt *loop = mfx_stmt_for(a, v, 32, MFX_LOOP_VECTORIZED, mfx_stmt_seq(a, 1, &g));
    mfx_stmt *s = mfx_simplify_stmt(a, loop);
    ck_assert_int_eq(s->kind, MFX_STMT_FOR);
    ck_assert_msg(s->u.loop.extent == cases[i].want, "case %zu: extent %lld, want %lld", i,
                  (long long)s->u.loop.extent, (long long)cases[i].want);
    mfx_stmt *body = s->u.loop.body;
    while (body->kind == MFX_STMT_SEQ && body->u.seq.n == 1) body = body->u.seq.items[0];
    ck_assert_int_eq(body->kind, cases[i].want < 32 ? MFX_STMT_STORE : MFX_STMT_IF);
  }
  mfx_arena_destroy(a);
}
END_TEST

/* ---- invalid expressions ------------------------------------------------------------- */

START_TEST(expression_type_errors) {
  mfx_arena *a = mfx_arena_create();
  mfx_var *v = mfx_var_create(a, "v", 4, 0);
  mfx_expr *f = mfx_f32(a, 1), *i = mfx_cast(a, MFX_I32, mfx_var_ref(a, v));
  ck_assert_ptr_null(mfx_add(a, f, i));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "operand types differ"));
  ck_assert_ptr_null(mfx_binary(a, MFX_SHL, f, f));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "needs integer operands"));
  ck_assert_ptr_null(mfx_unary(a, MFX_POPCOUNT, f));
  ck_assert_ptr_null(mfx_unary(a, MFX_SQRT, i));
  ck_assert_ptr_null(mfx_select(a, i, f, f));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "condition must be bool"));
  mfx_var *sp = mfx_var_create(a, "s", 4, 0);
  ck_assert_ptr_null(mfx_reduce(a, MFX_REDUCE_SUM, 1, &sp, f));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "not a reduction axis"));
  mfx_arena_destroy(a);
}
END_TEST

START_TEST(compute_errors) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 1, (int64_t[]){4});
  ck_assert_ptr_null(mfx_placeholder(a, "Z", MFX_F32, 1, (int64_t[]){0}));
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "must be positive"));
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){4}, NULL);
  mfx_tensor *Z = mfx_compute_begin(a, "Z", MFX_F32, 1, (int64_t[]){4}, NULL);
  mfx_expr *y0 = mfx_var_ref(a, Y->axes[0]);
  /* Z's body uses Y's axis. */
  assert_error(mfx_compute_set_body(a, Z, mfx_tensor_load(a, X, 1, &y0)), MFX_ERR_INVALID,
               "neither one of its axes");
  /* Wrong body type. */
  assert_error(mfx_compute_set_body(a, Y, mfx_int(a, MFX_I32, 0)), MFX_OK, "");
  assert_error(mfx_compute_set_body(a, Y, mfx_cast(a, MFX_I32, mfx_tensor_load(a, X, 1, &y0))),
               MFX_ERR_INVALID, "body has type i32");
  /* A reduction inside an expression. */
  mfx_var *k = mfx_var_create(a, "k", 4, 1);
  mfx_expr *kk = mfx_var_ref(a, k);
  mfx_expr *red = mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, mfx_tensor_load(a, X, 1, &kk));
  assert_error(mfx_compute_set_body(a, Y, mfx_add(a, red, mfx_f32(a, 1))), MFX_ERR_INVALID,
               "whole body");
  /* Wrong number of indices. */
  ck_assert_ptr_null(mfx_tensor_load(a, X, 2, (mfx_expr *[]){y0, y0}));
  /* A placeholder not listed as an input. */
  ck_assert_int_eq(mfx_compute_set_body(a, Y, mfx_tensor_load(a, X, 1, &y0)), MFX_OK);
  mfx_schedule *s;
  assert_error(mfx_sched_create(a, 0, NULL, 1, &Y, &s), MFX_ERR_INVALID, "not listed as an input");
  mfx_arena_destroy(a);
}
END_TEST

/* ---- invalid schedules ------------------------------------------------------------------ */

START_TEST(schedule_errors) {
  rowsum r = make_rowsum(6, 3);
  mfx_itervar *i = mfx_sched_itervar(r.st, "i"), *k = mfx_sched_itervar(r.st, "k"), *io, *ii;
  assert_error(mfx_sched_split(r.s, r.st, i, 0, MFX_TAIL_GUARD, &io, &ii), MFX_ERR_SCHEDULE, "must be positive");
  assert_error(mfx_sched_split(r.s, r.st, i, 4, MFX_TAIL_EXACT, &io, &ii), MFX_ERR_SCHEDULE, "does not divide");
  assert_error(mfx_sched_vectorize(r.s, r.st, k), MFX_ERR_SCHEDULE, "reduction loop");
  assert_error(mfx_sched_parallel(r.s, r.st, k), MFX_ERR_SCHEDULE, "reduction loop");
  assert_error(mfx_sched_cache_write_local(r.s, r.st, k), MFX_ERR_SCHEDULE, "spatial loop");
  ck_assert_int_eq(mfx_sched_split(r.s, r.st, i, 2, MFX_TAIL_GUARD, &io, &ii), MFX_OK);
  assert_error(mfx_sched_split(r.s, r.st, i, 2, MFX_TAIL_GUARD, NULL, NULL), MFX_ERR_SCHEDULE,
               "not a leaf loop");
  assert_error(mfx_sched_fuse(r.s, r.st, io, k, NULL), MFX_ERR_SCHEDULE, "immediately before");
  assert_error(mfx_sched_reorder(r.s, r.st, 2, (mfx_itervar *[]){io, io}), MFX_ERR_SCHEDULE, "named twice");
  assert_error(mfx_sched_compute_inline(r.s, r.st), MFX_ERR_SCHEDULE, "output");
  ck_assert_int_eq(mfx_sched_parallel(r.s, r.st, io), MFX_OK);
  assert_error(mfx_sched_parallel(r.s, r.st, ii), MFX_ERR_SCHEDULE, "already has a parallel loop");
  assert_error(mfx_sched_split(r.s, r.st, io, 2, MFX_TAIL_GUARD, NULL, NULL), MFX_ERR_SCHEDULE,
               "already marked");
  assert_error(mfx_sched_bind(r.s, r.st, ii, MFX_LOOP_VECTORIZED), MFX_ERR_SCHEDULE, "not a GPU");
  mfx_arena_destroy(r.a);
}
END_TEST

START_TEST(lowering_errors) {
  /* Vectorized loop that is not innermost. */
  rowsum r = make_rowsum(6, 3);
  ck_assert_int_eq(mfx_sched_vectorize(r.s, r.st, mfx_sched_itervar(r.st, "i")), MFX_OK);
  mfx_func *fn;
  assert_error(mfx_lower(r.s, "f", &fn), MFX_ERR_SCHEDULE, "not innermost");
  mfx_arena_destroy(r.a);
  /* Local accumulator attached inside a reduction loop. */
  r = make_rowsum(6, 3);
  mfx_itervar *i = mfx_sched_itervar(r.st, "i"), *k = mfx_sched_itervar(r.st, "k");
  ck_assert_int_eq(mfx_sched_reorder(r.s, r.st, 2, (mfx_itervar *[]){k, i}), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_write_local(r.s, r.st, i), MFX_OK);
  assert_error(mfx_lower(r.s, "f", &fn), MFX_ERR_SCHEDULE, "outside the attach loop");
  mfx_arena_destroy(r.a);
  /* Unroll and vectorize limits. */
  r = make_rowsum(100, 3);
  assert_error(mfx_sched_unroll(r.s, r.st, mfx_sched_itervar(r.st, "i")), MFX_ERR_SCHEDULE, "exceeds");
  assert_error(mfx_sched_vectorize(r.s, r.st, mfx_sched_itervar(r.st, "i")), MFX_ERR_SCHEDULE, "exceeds");
  mfx_arena_destroy(r.a);
}
END_TEST

START_TEST(inline_elementwise_stage) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 1, (int64_t[]){5});
  mfx_tensor *T = mfx_compute_begin(a, "T", MFX_F32, 1, (int64_t[]){5}, (const char *[]){"t"});
  mfx_expr *t = mfx_var_ref(a, T->axes[0]);
  ck_assert_int_eq(mfx_compute_set_body(a, T, mfx_mul(a, mfx_tensor_load(a, X, 1, &t), mfx_f32(a, 2))), MFX_OK);
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 1, (int64_t[]){5}, (const char *[]){"y"});
  mfx_expr *y = mfx_var_ref(a, Y->axes[0]);
  ck_assert_int_eq(mfx_compute_set_body(a, Y, mfx_add(a, mfx_tensor_load(a, T, 1, &y), mfx_f32(a, 1))), MFX_OK);
  mfx_schedule *s;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  ck_assert_int_eq(s->n_stages, 2);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(s, "f", &fn), MFX_OK);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_ptr_nonnull(strstr(loops, "allocate T: f32[5] global"));
  free(loops);
  ck_assert_int_eq(mfx_sched_compute_inline(s, mfx_sched_stage(s, T)), MFX_OK);
  ck_assert_int_eq(mfx_lower(s, "f", &fn), MFX_OK);
  loops = print_to_string(print_func_cb, fn);
  ck_assert_ptr_null(strstr(loops, "allocate"));
  ck_assert_ptr_nonnull(strstr(loops, "Y[y] = ((X[y] * 2f) + 1f)"));
  free(loops);
  mfx_arena_destroy(a);
}
END_TEST

/* ---- epilogue fusion ------------------------------------------------------------------ */

typedef struct {
  mfx_arena *a;
  mfx_tensor *X, *B, *R;
  mfx_schedule *s;
} fusion_graph;

/* R[i] = sum(k < 5: X[i, k]) over M = 10 rows, and X, B[i] placeholders. */
static fusion_graph make_fusion_graph(void) {
  fusion_graph g = {.a = mfx_arena_create()};
  g.X = mfx_placeholder(g.a, "X", MFX_F32, 2, (int64_t[]){10, 5});
  g.B = mfx_placeholder(g.a, "B", MFX_F32, 1, (int64_t[]){10});
  g.R = mfx_compute_begin(g.a, "R", MFX_F32, 1, (int64_t[]){10}, (const char *[]){"i"});
  mfx_var *k = mfx_var_create(g.a, "k", 5, 1);
  mfx_expr *x = mfx_tensor_load(g.a, g.X, 2, (mfx_expr *[]){mfx_var_ref(g.a, g.R->axes[0]),
                                                            mfx_var_ref(g.a, k)});
  ck_assert_int_eq(mfx_compute_set_body(g.a, g.R, mfx_reduce(g.a, MFX_REDUCE_SUM, 1, &k, x)), MFX_OK);
  return g;
}

/* name[c] = f(src[idx(c)]) + B[c], idx: c itself or 9 - c (shift != 0). */
static mfx_tensor *fusion_consumer(fusion_graph *g, const char *name, mfx_tensor *src,
                                   int reversed) {
  mfx_arena *a = g->a;
  mfx_tensor *C = mfx_compute_begin(a, name, MFX_F32, 1, (int64_t[]){10}, (const char *[]){"c"});
  mfx_expr *c = mfx_var_ref(a, C->axes[0]);
  mfx_expr *at = reversed ? mfx_sub(a, mfx_i64(a, 9), c) : c;
  mfx_expr *body = mfx_add(a, mfx_mul(a, mfx_tensor_load(a, src, 1, &at), mfx_f32(a, 2)),
                           mfx_tensor_load(a, g->B, 1, &c));
  ck_assert_int_eq(mfx_compute_set_body(a, C, body), MFX_OK);
  return C;
}

static void fusion_schedule(fusion_graph *g, int n_out, mfx_tensor **outs) {
  ck_assert_int_eq(mfx_sched_create(g->a, 2, (mfx_tensor *[]){g->X, g->B}, n_out, outs, &g->s),
                   MFX_OK);
}

/* R split by 4, accumulated locally at i.o, the write-back vectorized. */
static mfx_stage *fusion_tile(fusion_graph *g) {
  mfx_stage *st = mfx_sched_stage(g->s, g->R);
  mfx_itervar *io, *ii;
  ck_assert_int_eq(mfx_sched_split(g->s, st, mfx_sched_itervar(st, "i"), 4, MFX_TAIL_GUARD, &io, &ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_reorder(g->s, st, 3, (mfx_itervar *[]){io, mfx_sched_itervar(st, "k"), ii}), MFX_OK);
  ck_assert_int_eq(mfx_sched_parallel(g->s, st, io), MFX_OK);
  ck_assert_int_eq(mfx_sched_vectorize(g->s, st, ii), MFX_OK);
  ck_assert_int_eq(mfx_sched_cache_write_local(g->s, st, io), MFX_OK);
  return st;
}

START_TEST(fuse_epilogue_at_write_back) {
  fusion_graph g = make_fusion_graph();
  mfx_tensor *C = fusion_consumer(&g, "C", g.R, 0);
  fusion_schedule(&g, 1, &C);
  mfx_stage *rs = fusion_tile(&g), *cs = mfx_sched_stage(g.s, C);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, cs), MFX_OK);
  char *sched = print_to_string(print_schedule_cb, g.s);
  ck_assert_ptr_nonnull(strstr(sched, "epilogue C at write-back"));
  ck_assert_ptr_nonnull(strstr(sched, "stage C (output)\n  epilogue of R"));
  free(sched);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(g.s, "f", &fn), MFX_OK);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_msg(strstr(loops, "C[((i.o * 4) + i.i)] = ((R.local[i.i] * 2f) + B[((i.o * 4) + i.i)])") != NULL,
                "%s", loops);
  ck_assert_ptr_null(strstr(loops, "allocate R:")); /* R is never stored */
  ck_assert_ptr_null(strstr(loops, "  R["));
  free(loops);
  /* a second epilogue, or fusing the consumer again, or inlining it */
  assert_error(mfx_sched_fuse_epilogue(g.s, rs, cs), MFX_ERR_SCHEDULE, "already has epilogue C");
  mfx_arena_destroy(g.a);
  /* a fused intermediate consumer cannot be inlined afterwards */
  g = make_fusion_graph();
  mfx_tensor *T = fusion_consumer(&g, "T", g.R, 0);
  C = fusion_consumer(&g, "C", T, 0);
  fusion_schedule(&g, 1, &C);
  rs = fusion_tile(&g);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, T)), MFX_OK);
  assert_error(mfx_sched_compute_inline(g.s, mfx_sched_stage(g.s, T)), MFX_ERR_SCHEDULE,
               "already the epilogue of R");
  ck_assert_int_eq(mfx_lower(g.s, "f", &fn), MFX_OK); /* T is kept (C reads it), R is not */
  loops = print_to_string(print_func_cb, fn);
  ck_assert_ptr_nonnull(strstr(loops, "allocate T: f32[10] global"));
  ck_assert_ptr_null(strstr(loops, "allocate R:"));
  free(loops);
  mfx_arena_destroy(g.a);
}
END_TEST

/* A consumer reading R through a stage inlined into it is fused too. */
START_TEST(fuse_epilogue_through_inlined_stage) {
  fusion_graph g = make_fusion_graph();
  mfx_tensor *T = fusion_consumer(&g, "T", g.R, 0);
  mfx_tensor *C = fusion_consumer(&g, "C", T, 0);
  fusion_schedule(&g, 1, &C);
  mfx_stage *rs = fusion_tile(&g);
  ck_assert_int_eq(mfx_sched_compute_inline(g.s, mfx_sched_stage(g.s, T)), MFX_OK);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, C)), MFX_OK);
  mfx_func *fn;
  ck_assert_int_eq(mfx_lower(g.s, "f", &fn), MFX_OK);
  char *loops = print_to_string(print_func_cb, fn);
  ck_assert_msg(strstr(loops, "(((R.local[i.i] * 2f) + B[((i.o * 4) + i.i)]) * 2f)") != NULL, "%s",
                loops);
  free(loops);
  mfx_arena_destroy(g.a);
}
END_TEST

START_TEST(fuse_epilogue_errors) {
  /* the consumer reads R at another element */
  fusion_graph g = make_fusion_graph();
  mfx_tensor *C = fusion_consumer(&g, "C", g.R, 1);
  fusion_schedule(&g, 1, &C);
  mfx_stage *rs = fusion_tile(&g), *cs = mfx_sched_stage(g.s, C);
  assert_error(mfx_sched_fuse_epilogue(g.s, rs, cs), MFX_ERR_SCHEDULE, "reads R at another index");
  assert_error(mfx_sched_fuse_epilogue(g.s, cs, cs), MFX_ERR_SCHEDULE, "its own epilogue");
  assert_error(mfx_sched_fuse_epilogue(g.s, cs, rs), MFX_ERR_SCHEDULE, "C: the stage is not a reduction");
  assert_error(mfx_sched_fuse_epilogue(g.s, NULL, cs), MFX_ERR_SCHEDULE, "no stage");
  mfx_arena_destroy(g.a);

  /* ... or through an inlined stage (found when lowering) */
  g = make_fusion_graph();
  mfx_tensor *T = fusion_consumer(&g, "T", g.R, 1);
  C = fusion_consumer(&g, "C", T, 0);
  fusion_schedule(&g, 1, &C);
  rs = fusion_tile(&g);
  ck_assert_int_eq(mfx_sched_compute_inline(g.s, mfx_sched_stage(g.s, T)), MFX_OK);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, C)), MFX_OK);
  mfx_func *fn;
  assert_error(mfx_lower(g.s, "f", &fn), MFX_ERR_SCHEDULE,
               "C reads R at another index than its own element (through an inlined stage)");
  mfx_arena_destroy(g.a);

  /* R read by another stage too */
  g = make_fusion_graph();
  C = fusion_consumer(&g, "C", g.R, 0);
  mfx_tensor *E = fusion_consumer(&g, "E", g.R, 0);
  fusion_schedule(&g, 2, (mfx_tensor *[]){C, E});
  rs = fusion_tile(&g);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, C)), MFX_OK);
  assert_error(mfx_lower(g.s, "f", &fn), MFX_ERR_SCHEDULE, "E reads R too");
  mfx_arena_destroy(g.a);

  /* R an output */
  g = make_fusion_graph();
  C = fusion_consumer(&g, "C", g.R, 0);
  fusion_schedule(&g, 2, (mfx_tensor *[]){C, g.R});
  rs = fusion_tile(&g);
  assert_error(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, C)), MFX_ERR_SCHEDULE,
               "the reduction is an output");
  mfx_arena_destroy(g.a);

  /* a reduction as consumer: D[i] = sum(k: R[i] X[i, k]) */
  g = make_fusion_graph();
  mfx_tensor *D = mfx_compute_begin(g.a, "D", MFX_F32, 1, (int64_t[]){10}, (const char *[]){"d"});
  mfx_var *k = mfx_var_create(g.a, "kd", 5, 1);
  mfx_expr *d = mfx_var_ref(g.a, D->axes[0]);
  mfx_expr *prod = mfx_mul(g.a, mfx_tensor_load(g.a, g.R, 1, &d),
                           mfx_tensor_load(g.a, g.X, 2, (mfx_expr *[]){d, mfx_var_ref(g.a, k)}));
  ck_assert_int_eq(mfx_compute_set_body(g.a, D, mfx_reduce(g.a, MFX_REDUCE_SUM, 1, &k, prod)), MFX_OK);
  fusion_schedule(&g, 1, &D);
  rs = fusion_tile(&g);
  assert_error(mfx_sched_fuse_epilogue(g.s, rs, mfx_sched_stage(g.s, D)), MFX_ERR_SCHEDULE,
               "the consumer is a reduction");
  mfx_arena_destroy(g.a);

  /* no local accumulator; a consumer with loops of its own (before and after) */
  g = make_fusion_graph();
  C = fusion_consumer(&g, "C", g.R, 0);
  fusion_schedule(&g, 1, &C);
  rs = mfx_sched_stage(g.s, g.R);
  cs = mfx_sched_stage(g.s, C);
  ck_assert_int_eq(mfx_sched_fuse_epilogue(g.s, rs, cs), MFX_OK);
  assert_error(mfx_lower(g.s, "f", &fn), MFX_ERR_SCHEDULE, "does not accumulate locally");
  ck_assert_int_eq(mfx_sched_cache_write_local(g.s, rs, mfx_sched_itervar(rs, "i")), MFX_OK);
  ck_assert_int_eq(mfx_sched_split(g.s, cs, mfx_sched_itervar(cs, "c"), 4, MFX_TAIL_GUARD, NULL, NULL), MFX_OK);
  assert_error(mfx_lower(g.s, "f", &fn), MFX_ERR_SCHEDULE, "scheduled after the fusion");
  mfx_arena_destroy(g.a);
  g = make_fusion_graph();
  C = fusion_consumer(&g, "C", g.R, 0);
  fusion_schedule(&g, 1, &C);
  cs = mfx_sched_stage(g.s, C);
  ck_assert_int_eq(mfx_sched_parallel(g.s, cs, mfx_sched_itervar(cs, "c")), MFX_OK);
  assert_error(mfx_sched_fuse_epilogue(g.s, mfx_sched_stage(g.s, g.R), cs), MFX_ERR_SCHEDULE,
               "the consumer has its own schedule");
  mfx_arena_destroy(g.a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("schedule");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, golden_rowsum);
  tcase_add_test(tc, divisible_split_has_no_guard);
  tcase_add_test(tc, local_accumulator_and_fuse);
  tcase_add_test(tc, simplifier_rules);
  tcase_add_test(tc, simplifier_splices_sequences);
  tcase_add_test(tc, simplifier_tightens_guarded_loops);
  tcase_add_test(tc, expression_type_errors);
  tcase_add_test(tc, compute_errors);
  tcase_add_test(tc, schedule_errors);
  tcase_add_test(tc, lowering_errors);
  tcase_add_test(tc, inline_elementwise_stage);
  tcase_add_test(tc, fuse_epilogue_at_write_back);
  tcase_add_test(tc, fuse_epilogue_through_inlined_stage);
  tcase_add_test(tc, fuse_epilogue_errors);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
