/* Substitution of variables in expressions and statements, and the query
 * whether an expression reads a variable; on the shared visitor/mutator. */
#include "mfx/compiler.h"

typedef struct {
  mfx_ir_mutator base;
  mfx_expr **repl;
} substitution;

static mfx_expr *substitute_expr(mfx_ir_mutator *m, mfx_expr *e) {
  if (e->kind != MFX_EXPR_VAR) return mfx_ir_mutate_expr_children(m, e);
  mfx_expr *r = ((substitution *)m)->repl[e->u.var->id];
  return r ? r : e;
}

mfx_expr *mfx_expr_substitute(mfx_arena *a, mfx_expr *e, mfx_expr **repl) {
  substitution s = {{a, substitute_expr, NULL}, repl};
  return mfx_ir_mutate_expr(&s.base, e);
}

mfx_stmt *mfx_stmt_substitute(mfx_arena *a, mfx_stmt *st, mfx_expr **repl) {
  substitution s = {{a, substitute_expr, NULL}, repl};
  return mfx_ir_mutate_stmt(&s.base, st);
}

typedef struct {
  mfx_ir_visitor base;
  const mfx_var *var;
} var_use;

static void find_var(mfx_ir_visitor *v, const mfx_expr *e) {
  if (e->kind == MFX_EXPR_VAR) v->stop |= e->u.var == ((var_use *)v)->var;
  else mfx_ir_visit_expr_children(v, e);
}

int mfx_expr_uses_var(const mfx_expr *e, const mfx_var *v) {
  var_use u = {{find_var, NULL, 0}, v};
  mfx_ir_visit_expr(&u.base, e);
  return u.base.stop;
}
