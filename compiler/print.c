/* The text form of every layer: tensor expressions, schedules and loop IR.
 * Expressions print fully parenthesised, so the text is unambiguous. */
#include <math.h>

#include "mfx/compiler.h"

static const char *const BINARY_NAMES[MFX_BINARY_OP_COUNT] = {
    "+", "-", "*", "/", "%", "min", "max", "&", "|", "^", "<<", ">>",
    "<", "<=", ">", ">=", "==", "!=", "&&", "||"};
static const char *const UNARY_NAMES[MFX_UNARY_OP_COUNT] = {
    "-", "~", "popcount", "abs", "sqrt", "exp", "log", "tanh", "erf", "round", "rsqrt",
    "warp_sum"};
static const char *const REDUCE_NAMES[MFX_REDUCE_OP_COUNT] = {"sum", "max", "min", "or"};
static const char *const LOOP_NAMES[MFX_LOOP_KIND_COUNT] = {
    "serial", "parallel", "vectorized", "unrolled", "blockIdx.x", "blockIdx.y",
    "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z"};
static const char *const SCOPE_NAMES[] = {"global", "shared", "local"};

const char *mfx_binary_op_name(mfx_binary_op op) {
  return op < MFX_BINARY_OP_COUNT ? BINARY_NAMES[op] : "?";
}
const char *mfx_unary_op_name(mfx_unary_op op) {
  return op < MFX_UNARY_OP_COUNT ? UNARY_NAMES[op] : "?";
}
const char *mfx_reduce_op_name(mfx_reduce_op op) {
  return op < MFX_REDUCE_OP_COUNT ? REDUCE_NAMES[op] : "?";
}
const char *mfx_loop_kind_name(mfx_loop_kind k) {
  return k < MFX_LOOP_KIND_COUNT ? LOOP_NAMES[k] : "?";
}

/* ---- expressions ----------------------------------------------------------- */

static void print_float(FILE *f, double v) {
  if (isinf(v)) fputs(v > 0 ? "inf" : "-inf", f);
  else if (isnan(v)) fputs("nan", f);
  else fprintf(f, "%.9gf", v);
}

static void print_int(FILE *f, const mfx_expr *e) {
  if (e->type == MFX_BOOL) fputs(e->u.i ? "true" : "false", f);
  else if (e->type == MFX_I64) fprintf(f, "%lld", (long long)e->u.i);
  else fprintf(f, "%s(%lld)", mfx_dtype_name(e->type), (long long)e->u.i);
}

static int is_function_op(mfx_binary_op op) { return op == MFX_MIN || op == MFX_MAX; }

void mfx_print_expr(FILE *f, const mfx_expr *e) {
  if (!e) {
    fputs("<null>", f);
    return;
  }
  switch (e->kind) {
  case MFX_EXPR_INT: print_int(f, e); return;
  case MFX_EXPR_FLOAT: print_float(f, e->u.f); return;
  case MFX_EXPR_VAR: fputs(e->u.var->name, f); return;
  case MFX_EXPR_LOAD:
    fprintf(f, "%s[", e->u.load.buf->name);
    for (int i = 0; i < e->u.load.n; i++) {
      if (i) fputs(", ", f);
      mfx_print_expr(f, e->u.load.idx[i]);
    }
    fputc(']', f);
    return;
  case MFX_EXPR_BINARY:
    if (is_function_op(e->u.bin.op)) {
      fprintf(f, "%s(", mfx_binary_op_name(e->u.bin.op));
      mfx_print_expr(f, e->u.bin.a);
      fputs(", ", f);
      mfx_print_expr(f, e->u.bin.b);
      fputc(')', f);
      return;
    }
    fputc('(', f);
    mfx_print_expr(f, e->u.bin.a);
    fprintf(f, " %s ", mfx_binary_op_name(e->u.bin.op));
    mfx_print_expr(f, e->u.bin.b);
    fputc(')', f);
    return;
  case MFX_EXPR_UNARY:
    if (e->u.un.op == MFX_NEG || e->u.un.op == MFX_NOT) {
      fputs(e->u.un.op == MFX_NOT && e->type == MFX_BOOL ? "!" : mfx_unary_op_name(e->u.un.op), f);
      mfx_print_expr(f, e->u.un.a);
      return;
    }
    fprintf(f, "%s(", mfx_unary_op_name(e->u.un.op));
    mfx_print_expr(f, e->u.un.a);
    fputc(')', f);
    return;
  case MFX_EXPR_SELECT:
    fputs("select(", f);
    mfx_print_expr(f, e->u.sel.cond);
    fputs(", ", f);
    mfx_print_expr(f, e->u.sel.a);
    fputs(", ", f);
    mfx_print_expr(f, e->u.sel.b);
    fputc(')', f);
    return;
  case MFX_EXPR_CAST:
    fprintf(f, "%s(", mfx_dtype_name(e->type));
    mfx_print_expr(f, e->u.cast.a);
    fputc(')', f);
    return;
  case MFX_EXPR_REDUCE:
    fprintf(f, "%s(", mfx_reduce_op_name(e->u.red.op));
    for (int i = 0; i < e->u.red.n_axes; i++)
      fprintf(f, "%s%s < %lld", i ? ", " : "", e->u.red.axes[i]->name,
              (long long)e->u.red.axes[i]->extent);
    fputs(": ", f);
    mfx_print_expr(f, e->u.red.src);
    fputc(')', f);
    return;
  }
}

/* ---- tensor expressions ------------------------------------------------------- */

static void print_type_shape(FILE *f, const mfx_buffer *b) {
  fprintf(f, "%s[", mfx_dtype_name(b->dtype));
  for (int i = 0; i < b->ndim; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)b->shape[i]);
  fputc(']', f);
}

void mfx_print_te(FILE *f, const mfx_schedule *s) {
  for (int i = 0; i < s->n_inputs; i++) {
    fprintf(f, "placeholder %s: ", s->inputs[i]->buf->name);
    print_type_shape(f, s->inputs[i]->buf);
    fputc('\n', f);
  }
  for (int i = 0; i < s->n_stages; i++) {
    const mfx_tensor *t = s->stages[i]->tensor;
    fprintf(f, "compute %s: ", t->buf->name);
    print_type_shape(f, t->buf);
    fputs(" (", f);
    for (int d = 0; d < t->n_axes; d++) fprintf(f, "%s%s", d ? ", " : "", t->axes[d]->name);
    fputs(") = ", f);
    mfx_print_expr(f, t->body);
    fputc('\n', f);
  }
}

/* ---- schedules ------------------------------------------------------------------- */

static void print_relation(FILE *f, const mfx_relation *r) {
  if (r->kind == MFX_REL_SPLIT)
    fprintf(f, "  split %s -> %s, %s by %lld%s\n", r->parent->var->name, r->outer->var->name,
            r->inner->var->name, (long long)r->factor,
            r->parent->extent % r->factor ? " (guarded tail)" : "");
  else
    fprintf(f, "  fuse %s, %s -> %s\n", r->outer->var->name, r->inner->var->name,
            r->fused->var->name);
}

void mfx_print_schedule(FILE *f, const mfx_schedule *s) {
  for (int i = 0; i < s->n_stages; i++) {
    const mfx_stage *st = s->stages[i];
    fprintf(f, "stage %s%s%s\n", st->tensor->buf->name, st->is_output ? " (output)" : "",
            st->inlined ? " inlined" : "");
    if (st->inlined) continue;
    if (st->fused_into) {
      fprintf(f, "  epilogue of %s\n", st->fused_into->tensor->buf->name);
      continue;
    }
    for (int r = 0; r < st->n_relations; r++) print_relation(f, &st->relations[r]);
    fputs("  loops:", f);
    for (int l = 0; l < st->n_leaves; l++) {
      const mfx_itervar *iv = st->leaves[l];
      fprintf(f, "%s %s(%lld%s)", l ? "," : "", iv->var->name, (long long)iv->extent,
              iv->is_reduce ? ", reduce" : "");
      if (iv->kind != MFX_LOOP_SERIAL) fprintf(f, " %s", mfx_loop_kind_name(iv->kind));
    }
    fputc('\n', f);
    if (st->local_at) fprintf(f, "  cache_write local at %s\n", st->local_at->var->name);
    if (st->epilogue) fprintf(f, "  epilogue %s at write-back\n", st->epilogue->tensor->buf->name);
  }
}

/* ---- loop IR -------------------------------------------------------------------------- */

static void pad(FILE *f, int indent) { fprintf(f, "%*s", indent * 2, ""); }

void mfx_print_stmt(FILE *f, const mfx_stmt *s, int indent) {
  if (!s) return;
  switch (s->kind) {
  case MFX_STMT_FOR:
    pad(f, indent);
    fprintf(f, "for %s in 0..%lld", s->u.loop.var->name, (long long)s->u.loop.extent);
    if (s->u.loop.kind != MFX_LOOP_SERIAL) fprintf(f, " %s", mfx_loop_kind_name(s->u.loop.kind));
    fputs(" {\n", f);
    mfx_print_stmt(f, s->u.loop.body, indent + 1);
    pad(f, indent);
    fputs("}\n", f);
    return;
  case MFX_STMT_STORE:
    pad(f, indent);
    fprintf(f, "%s[", s->u.store.buf->name);
    for (int i = 0; i < s->u.store.n; i++) {
      if (i) fputs(", ", f);
      mfx_print_expr(f, s->u.store.idx[i]);
    }
    fputs(s->u.store.async ? "] = async " : "] = ", f);
    mfx_print_expr(f, s->u.store.value);
    fputc('\n', f);
    return;
  case MFX_STMT_LET:
    pad(f, indent);
    fprintf(f, "let %s = ", s->u.let.var->name);
    mfx_print_expr(f, s->u.let.value);
    fputc('\n', f);
    mfx_print_stmt(f, s->u.let.body, indent);
    return;
  case MFX_STMT_IF:
    pad(f, indent);
    fputs("if ", f);
    mfx_print_expr(f, s->u.if_.cond);
    fputs(" {\n", f);
    mfx_print_stmt(f, s->u.if_.then_s, indent + 1);
    if (s->u.if_.else_s) {
      pad(f, indent);
      fputs("} else {\n", f);
      mfx_print_stmt(f, s->u.if_.else_s, indent + 1);
    }
    pad(f, indent);
    fputs("}\n", f);
    return;
  case MFX_STMT_ALLOCATE:
    pad(f, indent);
    fprintf(f, "allocate %s: ", s->u.alloc.buf->name);
    print_type_shape(f, s->u.alloc.buf);
    fprintf(f, " %s\n", SCOPE_NAMES[s->u.alloc.buf->scope]);
    mfx_print_stmt(f, s->u.alloc.body, indent);
    return;
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++) mfx_print_stmt(f, s->u.seq.items[i], indent);
    return;
  case MFX_STMT_BARRIER:
    pad(f, indent);
    fputs(s->u.bar.wait_async ? "wait async copies; barrier\n" : "barrier\n", f);
    return;
  case MFX_STMT_MMA:
    pad(f, indent);
    fprintf(f, "mma.m16n8k8.tf32 %s[", s->u.mma.buf[MFX_MMA_C]->name);
    mfx_print_expr(f, s->u.mma.off[MFX_MMA_C]);
    for (int i = MFX_MMA_A; i < MFX_MMA_OPERANDS; i++) {
      fprintf(f, "] += %s[", s->u.mma.buf[i]->name);
      mfx_print_expr(f, s->u.mma.off[i]);
      fprintf(f, " : ld %lld", (long long)s->u.mma.ld[i]);
      if (i == MFX_MMA_A) fputs("] x", f);
    }
    fputs(s->u.mma.kperm ? "] k permuted, lane " : "] lane ", f);
    mfx_print_expr(f, s->u.mma.lane);
    fputc('\n', f);
    return;
  }
}

void mfx_print_func(FILE *f, const mfx_func *fn) {
  fprintf(f, "func %s(", fn->name);
  for (int i = 0; i < fn->n_args; i++) {
    fprintf(f, "%s%s: ", i ? ", " : "", fn->args[i]->name);
    print_type_shape(f, fn->args[i]);
  }
  fputs(") {\n", f);
  mfx_print_stmt(f, fn->body, 1);
  fputs("}\n", f);
}
