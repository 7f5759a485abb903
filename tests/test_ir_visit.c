/* The IR visitor and mutator (compiler/ir_visit.c): every node kind is
 * reached, an identity rewrite shares the whole tree, a change deep in the
 * tree rebuilds exactly the path to the root, and substitution built on the
 * mutator replaces variables in expressions and statements. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "check_main.h"

/* A tree with every statement and expression kind:
 *   allocate T {
 *     for i in 0..4 {
 *       let v = i * 2
 *       if (i < 3) B[i] = select(v < 4, cast<f32>(popcount(A[i])), 1.5)
 *       else barrier
 *     }
 *     C[0] = B[0] + -B[1]
 *   } */
typedef struct {
  mfx_arena *a;
  mfx_var *i, *v;
  mfx_buffer *A, *B, *C, *T;
  mfx_expr *deep;  /* A[i], deepest load */
  mfx_expr *lval;  /* i * 2 */
  mfx_stmt *root, *loop, *let, *if_, *store, *bar, *tail, *seq;
} tree;

static tree make_tree(void) {
  tree t = {.a = mfx_arena_create()};
  mfx_arena *a = t.a;
  t.i = mfx_var_create(a, "i", 4, 0);
  t.v = mfx_var_create(a, "v", 0, 0);
  t.A = mfx_buffer_create(a, "A", MFX_I32, 1, (int64_t[]){4}, MFX_SCOPE_GLOBAL);
  t.B = mfx_buffer_create(a, "B", MFX_F32, 1, (int64_t[]){4}, MFX_SCOPE_GLOBAL);
  t.C = mfx_buffer_create(a, "C", MFX_F32, 1, (int64_t[]){1}, MFX_SCOPE_GLOBAL);
  t.T = mfx_buffer_create(a, "T", MFX_F32, 1, (int64_t[]){2}, MFX_SCOPE_LOCAL);
  mfx_expr *i = mfx_var_ref(a, t.i);
  t.deep = mfx_load(a, t.A, 1, &i);
  mfx_expr *val = mfx_select(a, mfx_binary(a, MFX_LT, mfx_var_ref(a, t.v), mfx_i64(a, 4)),
                             mfx_cast(a, MFX_F32, mfx_unary(a, MFX_POPCOUNT, t.deep)),
                             mfx_f32(a, 1.5));
  t.store = mfx_stmt_store(a, t.B, 1, &i, val);
  t.bar = mfx_stmt_barrier(a);
  t.if_ = mfx_stmt_if(a, mfx_binary(a, MFX_LT, i, mfx_i64(a, 3)), t.store, t.bar);
  t.lval = mfx_mul(a, i, mfx_i64(a, 2));
  t.let = mfx_stmt_let(a, t.v, t.lval, t.if_);
  t.loop = mfx_stmt_for(a, t.i, 4, MFX_LOOP_SERIAL, t.let);
  mfx_expr *b0 = mfx_load(a, t.B, 1, (mfx_expr *[]){mfx_i64(a, 0)});
  mfx_expr *b1 = mfx_load(a, t.B, 1, (mfx_expr *[]){mfx_i64(a, 1)});
  t.tail = mfx_stmt_store(a, t.C, 1, (mfx_expr *[]){mfx_i64(a, 0)},
                          mfx_add(a, b0, mfx_unary(a, MFX_NEG, b1)));
  t.seq = mfx_stmt_seq(a, 2, (mfx_stmt *[]){t.loop, t.tail});
  t.root = mfx_stmt_allocate(a, t.T, t.seq);
  ck_assert_ptr_nonnull(t.root);
  return t;
}

static char *stmt_text(const mfx_stmt *s) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  mfx_print_stmt(f, s, 0);
  fclose(f);
  return buf;
}

/* ---- visitor ------------------------------------------------------------------- */

typedef struct {
  mfx_ir_visitor base;
  int exprs[MFX_EXPR_REDUCE + 1];
  int stmts[MFX_STMT_BARRIER + 1];
} counter;

static void count_expr(mfx_ir_visitor *v, const mfx_expr *e) {
  ((counter *)v)->exprs[e->kind]++;
  mfx_ir_visit_expr_children(v, e);
}

static void count_stmt(mfx_ir_visitor *v, const mfx_stmt *s) {
  ((counter *)v)->stmts[s->kind]++;
  mfx_ir_visit_stmt_children(v, s);
}

START_TEST(visitor_counts_every_node) {
  tree t = make_tree();
  counter c = {{count_expr, count_stmt, 0}, {0}, {0}};
  mfx_ir_visit_stmt(&c.base, t.root);
  ck_assert_int_eq(c.stmts[MFX_STMT_ALLOCATE], 1);
  ck_assert_int_eq(c.stmts[MFX_STMT_SEQ], 1);
  ck_assert_int_eq(c.stmts[MFX_STMT_FOR], 1);
  ck_assert_int_eq(c.stmts[MFX_STMT_LET], 1);
  ck_assert_int_eq(c.stmts[MFX_STMT_IF], 1);
  ck_assert_int_eq(c.stmts[MFX_STMT_STORE], 2);
  ck_assert_int_eq(c.stmts[MFX_STMT_BARRIER], 1);
  /* i*2 | i<3 | B[i] = sel(v<4, cast(popcount(A[i])), 1.5) | C[0] = B[0] + -B[1] */
  ck_assert_int_eq(c.exprs[MFX_EXPR_VAR], 5);   /* i, i, i (B idx), v, i (A idx) */
  ck_assert_int_eq(c.exprs[MFX_EXPR_INT], 6);   /* 2, 3, 4, C's 0, B's 0 and 1 */
  ck_assert_int_eq(c.exprs[MFX_EXPR_FLOAT], 1);
  ck_assert_int_eq(c.exprs[MFX_EXPR_BINARY], 4); /* *, <, <, + */
  ck_assert_int_eq(c.exprs[MFX_EXPR_UNARY], 2);
  ck_assert_int_eq(c.exprs[MFX_EXPR_CAST], 1);
  ck_assert_int_eq(c.exprs[MFX_EXPR_SELECT], 1);
  ck_assert_int_eq(c.exprs[MFX_EXPR_LOAD], 3);
  /* Default recursion (NULL callbacks) reaches the same nodes: count only exprs. */
  counter d = {{count_expr, NULL, 0}, {0}, {0}};
  mfx_ir_visit_stmt(&d.base, t.root);
  ck_assert_int_eq(memcmp(c.exprs, d.exprs, sizeof c.exprs), 0);
  ck_assert_int_eq(d.stmts[MFX_STMT_STORE], 0);
  mfx_arena_destroy(t.a);
}
END_TEST

/* A callback that does not descend skips the subtree; stop ends the walk. */
typedef struct {
  mfx_ir_visitor base;
  int loads, stores;
} pruner;

static void prune_loops(mfx_ir_visitor *v, const mfx_stmt *s) {
  if (s->kind == MFX_STMT_FOR) return;
  if (s->kind == MFX_STMT_STORE) ((pruner *)v)->stores++;
  mfx_ir_visit_stmt_children(v, s);
}

static void stop_at_load(mfx_ir_visitor *v, const mfx_expr *e) {
  if (e->kind == MFX_EXPR_LOAD && ++((pruner *)v)->loads == 2) v->stop = 1;
  mfx_ir_visit_expr_children(v, e);
}

START_TEST(visitor_prunes_and_stops) {
  tree t = make_tree();
  pruner p = {{NULL, prune_loops, 0}, 0, 0};
  mfx_ir_visit_stmt(&p.base, t.root);
  ck_assert_int_eq(p.stores, 1); /* only the store after the loop */
  pruner q = {{stop_at_load, NULL, 0}, 0, 0};
  mfx_ir_visit_stmt(&q.base, t.root);
  ck_assert_int_eq(q.loads, 2); /* three loads, stopped at the second */
  ck_assert_int_eq(q.base.stop, 1);
  ck_assert(mfx_expr_uses_var(t.lval, t.i));
  ck_assert(!mfx_expr_uses_var(t.lval, t.v));
  ck_assert(!mfx_expr_uses_var(NULL, t.v));
  mfx_arena_destroy(t.a);
}
END_TEST

/* ---- mutator ------------------------------------------------------------------- */

static mfx_expr *same_expr(mfx_ir_mutator *m, mfx_expr *e) { return mfx_ir_mutate_expr_children(m, e); }
static mfx_stmt *same_stmt(mfx_ir_mutator *m, mfx_stmt *s) { return mfx_ir_mutate_stmt_children(m, s); }

START_TEST(identity_mutation_shares_the_tree) {
  tree t = make_tree();
  mfx_ir_mutator plain = {t.a, NULL, NULL};
  ck_assert_ptr_eq(mfx_ir_mutate_stmt(&plain, t.root), t.root);
  mfx_ir_mutator hooked = {t.a, same_expr, same_stmt};
  ck_assert_ptr_eq(mfx_ir_mutate_stmt(&hooked, t.root), t.root);
  ck_assert_ptr_eq(mfx_ir_mutate_expr(&hooked, t.store->u.store.value), t.store->u.store.value);
  ck_assert_ptr_null(mfx_ir_mutate_stmt(&hooked, NULL));
  ck_assert_ptr_null(mfx_ir_mutate_expr(&hooked, NULL));
  /* Substituting nothing, or a variable the tree does not read, changes nothing. */
  mfx_expr **repl = calloc((size_t)mfx_arena_var_count(t.a), sizeof *repl);
  ck_assert_ptr_eq(mfx_stmt_substitute(t.a, t.root, repl), t.root);
  mfx_var *unused = mfx_var_create(t.a, "unused", 3, 0);
  free(repl);
  repl = calloc((size_t)mfx_arena_var_count(t.a), sizeof *repl);
  repl[unused->id] = mfx_i64(t.a, 7);
  ck_assert_ptr_eq(mfx_stmt_substitute(t.a, t.root, repl), t.root);
  free(repl);
  mfx_arena_destroy(t.a);
}
END_TEST

/* Replace one node (the load A[i]) by A[0]. */
typedef struct {
  mfx_ir_mutator base;
  const mfx_expr *target;
  int calls;
} replace_one;

static mfx_expr *replace_target(mfx_ir_mutator *m, mfx_expr *e) {
  replace_one *r = (replace_one *)m;
  r->calls++;
  if (e != r->target) return mfx_ir_mutate_expr_children(m, e);
  return mfx_load(m->arena, e->u.load.buf, 1, (mfx_expr *[]){mfx_i64(m->arena, 0)});
}

START_TEST(deep_change_rebuilds_the_path_only) {
  tree t = make_tree();
  char *before = stmt_text(t.root);
  replace_one r = {{t.a, replace_target, NULL}, t.deep, 0};
  mfx_stmt *root = mfx_ir_mutate_stmt(&r.base, t.root);
  ck_assert_int_gt(r.calls, 10);
  /* The path: allocate, seq, for, let, if, store, select, cast, popcount, load. */
  ck_assert_ptr_ne(root, t.root);
  mfx_stmt *seq = root->u.alloc.body;
  ck_assert_ptr_ne(seq, t.seq);
  ck_assert_ptr_eq(root->u.alloc.buf, t.T);
  mfx_stmt *loop = seq->u.seq.items[0];
  ck_assert_ptr_ne(loop, t.loop);
  ck_assert_ptr_eq(seq->u.seq.items[1], t.tail); /* off the path: shared */
  ck_assert_ptr_eq(loop->u.loop.var, t.i);
  ck_assert_int_eq(loop->u.loop.extent, 4);
  mfx_stmt *let = loop->u.loop.body;
  ck_assert_ptr_ne(let, t.let);
  ck_assert_ptr_eq(let->u.let.value, t.lval);
  mfx_stmt *if_ = let->u.let.body;
  ck_assert_ptr_ne(if_, t.if_);
  ck_assert_ptr_eq(if_->u.if_.cond, t.if_->u.if_.cond);
  ck_assert_ptr_eq(if_->u.if_.else_s, t.bar);
  mfx_stmt *store = if_->u.if_.then_s;
  ck_assert_ptr_ne(store, t.store);
  ck_assert_ptr_eq(store->u.store.idx, t.store->u.store.idx); /* indices unchanged: same array */
  mfx_expr *sel = store->u.store.value, *old_sel = t.store->u.store.value;
  ck_assert_ptr_ne(sel, old_sel);
  ck_assert_ptr_eq(sel->u.sel.cond, old_sel->u.sel.cond);
  ck_assert_ptr_eq(sel->u.sel.b, old_sel->u.sel.b);
  mfx_expr *cast = sel->u.sel.a;
  ck_assert_ptr_ne(cast, old_sel->u.sel.a);
  ck_assert_ptr_ne(cast->u.cast.a, old_sel->u.sel.a->u.cast.a);
  mfx_expr *load = cast->u.cast.a->u.un.a;
  ck_assert_ptr_ne(load, t.deep);
  ck_assert_int_eq(load->u.load.idx[0]->kind, MFX_EXPR_INT);
  /* The old tree is untouched. */
  char *after_old = stmt_text(t.root), *after_new = stmt_text(root);
  ck_assert_str_eq(before, after_old);
  ck_assert_ptr_nonnull(strstr(after_new, "A[0]"));
  ck_assert_ptr_null(strstr(after_new, "A[i]"));
  ck_assert_ptr_nonnull(strstr(after_old, "A[i]"));
  free(before);
  free(after_old);
  free(after_new);
  mfx_arena_destroy(t.a);
}
END_TEST

START_TEST(substitute_replaces_variables) {
  tree t = make_tree();
  mfx_expr **repl = calloc((size_t)mfx_arena_var_count(t.a), sizeof *repl);
  repl[t.i->id] = mfx_i64(t.a, 2);
  mfx_expr *e = mfx_expr_substitute(t.a, t.lval, repl);
  ck_assert_ptr_ne(e, t.lval);
  ck_assert_int_eq(e->u.bin.a->kind, MFX_EXPR_INT);
  ck_assert_int_eq(e->u.bin.a->u.i, 2);
  ck_assert_int_eq(t.lval->u.bin.a->kind, MFX_EXPR_VAR); /* original kept */
  /* In statements every read of i changes; the loop variable stays. */
  mfx_stmt *s = mfx_stmt_substitute(t.a, t.root, repl);
  char *text = stmt_text(s);
  ck_assert_ptr_nonnull(strstr(text, "A[2]"));
  ck_assert_ptr_nonnull(strstr(text, "B[2]"));
  ck_assert_ptr_null(strstr(text, "A[i]"));
  mfx_stmt *loop = s->u.alloc.body->u.seq.items[0];
  ck_assert_int_eq(loop->kind, MFX_STMT_FOR);
  ck_assert_ptr_eq(loop->u.loop.var, t.i);
  ck_assert_ptr_eq(s->u.alloc.body->u.seq.items[1], t.tail); /* reads no i */
  free(text);
  free(repl);
  mfx_arena_destroy(t.a);
}
END_TEST

/* ---- the pass table ------------------------------------------------------------- */

typedef struct {
  int n;
  const char *names[8];
  int flat_after[8]; /* every store has one index */
} pass_log;

typedef struct {
  mfx_ir_visitor base;
  int multi;
} multi_index;

static void find_multi(mfx_ir_visitor *v, const mfx_stmt *s) {
  if (s->kind == MFX_STMT_STORE && s->u.store.n > 1) ((multi_index *)v)->multi++;
  mfx_ir_visit_stmt_children(v, s);
}

static void log_pass(const mfx_pass *pass, const mfx_func *fn, void *ctx) {
  pass_log *log = ctx;
  multi_index m = {{NULL, find_multi, 0}, 0};
  mfx_ir_visit_stmt(&m.base, fn->body);
  if (log->n < 8) {
    log->flat_after[log->n] = m.multi == 0;
    log->names[log->n] = pass->name;
  }
  log->n++;
}

/* Y[i, j] = X[i, j] + 1 on a 3 x 5 grid, default schedule. */
static mfx_schedule *add_one(mfx_arena *a) {
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){3, 5});
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){3, 5}, NULL);
  mfx_expr *idx[2] = {mfx_var_ref(a, Y->axes[0]), mfx_var_ref(a, Y->axes[1])};
  ck_assert_int_eq(mfx_compute_set_body(a, Y, mfx_add(a, mfx_tensor_load(a, X, 2, idx), mfx_f32(a, 1))),
                   MFX_OK);
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &Y, &s), MFX_OK);
  return s;
}

START_TEST(pass_table_runs_in_order) {
  int n = 0;
  const mfx_pass *passes = mfx_lower_passes(&n);
  ck_assert_int_eq(n, 3);
  const char *want[] = {"simplify", "flatten", "simplify"};
  for (int i = 0; i < n; i++) {
    ck_assert_str_eq(passes[i].name, want[i]);
    ck_assert_ptr_nonnull(passes[i].run);
    ck_assert_int_gt((int)strlen(passes[i].description), 10);
    ck_assert_ptr_null(strchr(passes[i].description, '\n'));
  }
  ck_assert_ptr_eq(passes[1].run, mfx_flatten_stmt);
  /* mfx_lower_traced runs them in that order and hands each result on. */
  mfx_arena *a = mfx_arena_create();
  pass_log log = {0};
  mfx_func *traced = NULL, *plain = NULL;
  ck_assert_int_eq(mfx_lower_traced(add_one(a), "k", log_pass, &log, &traced), MFX_OK);
  ck_assert_int_eq(log.n, n);
  for (int i = 0; i < n; i++) ck_assert_str_eq(log.names[i], want[i]);
  ck_assert(!log.flat_after[0]); /* before flattening stores have two indices */
  ck_assert(log.flat_after[1] && log.flat_after[2]);
  ck_assert_int_eq(mfx_lower(add_one(a), "k", &plain), MFX_OK);
  char *x = stmt_text(traced->body), *y = stmt_text(plain->body);
  ck_assert_str_eq(x, y);
  ck_assert_ptr_nonnull(strstr(x, "Y[((i0 * 5) + i1)]"));
  free(x);
  free(y);
  mfx_arena_destroy(a);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ir_visit");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, visitor_counts_every_node);
  tcase_add_test(tc, visitor_prunes_and_stops);
  tcase_add_test(tc, identity_mutation_shares_the_tree);
  tcase_add_test(tc, deep_change_rebuilds_the_path_only);
  tcase_add_test(tc, substitute_replaces_variables);
  tcase_add_test(tc, pass_table_runs_in_order);
  suite_add_tcase(s, tc);
  return check_run_suite(s);
}
