/* The IR's storage and constructors: the arena every node of a compilation
 * lives in, typed expression builders, statement builders. Walking and
 * rewriting: ir_visit.c; substitution: ir_substitute.c. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"

/* ---- arena ------------------------------------------------------------------ */

typedef struct arena_block {
  struct arena_block *next;
  size_t used, size;
  _Alignas(16) unsigned char data[];
} arena_block;

struct mfx_arena {
  arena_block *head;
  int n_vars;
  int n_buffers;
};

mfx_arena *mfx_arena_create(void) { return calloc(1, sizeof(mfx_arena)); }

void mfx_arena_destroy(mfx_arena *a) {
  if (!a) return;
  for (arena_block *b = a->head, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(a);
}

void *mfx_arena_alloc(mfx_arena *a, size_t bytes) {
  bytes = (bytes + 15) & ~(size_t)15;
  arena_block *b = a->head;
  if (!b || b->used + bytes > b->size) {
    size_t size = bytes > 65536 ? bytes : 65536;
    b = malloc(sizeof(arena_block) + size);
    if (!b) return NULL;
    b->used = 0;
    b->size = size;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += bytes;
  memset(p, 0, bytes);
  return p;
}

char *mfx_arena_strdup(mfx_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = mfx_arena_alloc(a, n);
  if (p) memcpy(p, s, n);
  return p;
}

char *mfx_arena_printf(mfx_arena *a, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = mfx_arena_alloc(a, (size_t)n + 1);
  if (!p) return NULL;
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

int mfx_arena_var_count(const mfx_arena *a) { return a->n_vars; }

/* ---- variables and buffers ---------------------------------------------------- */

mfx_var *mfx_var_create(mfx_arena *a, const char *name, int64_t extent, int is_reduce) {
  mfx_var *v = mfx_arena_alloc(a, sizeof *v);
  if (!v) return NULL;
  v->name = mfx_arena_strdup(a, name);
  v->extent = extent;
  v->is_reduce = is_reduce;
  v->id = a->n_vars++;
  return v;
}

mfx_buffer *mfx_buffer_create(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                              const int64_t *shape, mfx_scope scope) {
  mfx_buffer *b = mfx_arena_alloc(a, sizeof *b);
  if (!b) return NULL;
  b->name = mfx_arena_strdup(a, name);
  b->dtype = t;
  b->ndim = ndim;
  for (int i = 0; i < ndim; i++) b->shape[i] = shape[i];
  b->scope = scope;
  b->id = a->n_buffers++;
  return b;
}

/* ---- expressions ---------------------------------------------------------------- */

static mfx_expr *expr_new(mfx_arena *a, mfx_expr_kind kind, mfx_dtype t) {
  mfx_expr *e = mfx_arena_alloc(a, sizeof *e);
  if (!e) return NULL;
  e->kind = kind;
  e->type = t;
  return e;
}

mfx_expr *mfx_int(mfx_arena *a, mfx_dtype t, int64_t v) {
  mfx_expr *e = expr_new(a, MFX_EXPR_INT, t);
  if (e) e->u.i = v;
  return e;
}

mfx_expr *mfx_i64(mfx_arena *a, int64_t v) { return mfx_int(a, MFX_I64, v); }

mfx_expr *mfx_f32(mfx_arena *a, double v) {
  mfx_expr *e = expr_new(a, MFX_EXPR_FLOAT, MFX_F32);
  if (e) e->u.f = (float)v;
  return e;
}

mfx_expr *mfx_var_ref(mfx_arena *a, mfx_var *v) {
  mfx_expr *e = expr_new(a, MFX_EXPR_VAR, MFX_I64);
  if (e) e->u.var = v;
  return e;
}

mfx_expr *mfx_load(mfx_arena *a, mfx_buffer *b, int n, mfx_expr *const *idx) {
  if (!b || n < 1 || n > MFX_MAX_DIMS) {
    mfx_fail(MFX_ERR_INVALID, "load: bad buffer or %d indices", n);
    return NULL;
  }
  mfx_expr *e = expr_new(a, MFX_EXPR_LOAD, b->dtype);
  if (!e) return NULL;
  e->u.load.buf = b;
  e->u.load.n = n;
  e->u.load.idx = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)n);
  for (int i = 0; i < n; i++) {
    if (!idx[i] || mfx_dtype_is_float(idx[i]->type) || idx[i]->type == MFX_BOOL) {
      mfx_fail(MFX_ERR_INVALID, "load %s: index %d must be an integer expression", b->name, i);
      return NULL;
    }
    e->u.load.idx[i] = idx[i]->type == MFX_I64 ? idx[i] : mfx_cast(a, MFX_I64, idx[i]);
  }
  return e;
}

/* An integer constant takes the type of the other operand. */
static void unify_constants(mfx_arena *a, mfx_expr **x, mfx_expr **y) {
  if ((*x)->type == (*y)->type) return;
  if ((*x)->kind == MFX_EXPR_INT && (*y)->type != MFX_BOOL) {
    *x = mfx_dtype_is_float((*y)->type) ? mfx_f32(a, (double)(*x)->u.i)
                                         : mfx_int(a, (*y)->type, (*x)->u.i);
  } else if ((*y)->kind == MFX_EXPR_INT && (*x)->type != MFX_BOOL) {
    *y = mfx_dtype_is_float((*x)->type) ? mfx_f32(a, (double)(*y)->u.i)
                                         : mfx_int(a, (*x)->type, (*y)->u.i);
  }
}

static int is_comparison(mfx_binary_op op) { return op >= MFX_LT && op <= MFX_NE; }

static const char *binary_check(mfx_binary_op op, mfx_dtype t) {
  int fl = mfx_dtype_is_float(t);
  switch (op) {
  case MFX_AND: case MFX_OR: case MFX_XOR: case MFX_SHL: case MFX_SHR:
    return fl || t == MFX_BOOL ? "needs integer operands" : NULL;
  case MFX_LAND: case MFX_LOR:
    return t != MFX_BOOL ? "needs bool operands" : NULL;
  case MFX_MOD:
    return fl ? "needs integer operands" : NULL;
  default:
    return t == MFX_BOOL && !is_comparison(op) ? "does not take bool operands" : NULL;
  }
}

mfx_expr *mfx_binary(mfx_arena *a, mfx_binary_op op, mfx_expr *x, mfx_expr *y) {
  if (!x || !y) return NULL; /* an operand failed; its message stands */
  unify_constants(a, &x, &y);
  if (x->type != y->type) {
    mfx_fail(MFX_ERR_INVALID, "operator %s: operand types differ (%s vs %s); add a cast",
             mfx_binary_op_name(op), mfx_dtype_name(x->type), mfx_dtype_name(y->type));
    return NULL;
  }
  const char *bad = binary_check(op, x->type);
  if (bad) {
    mfx_fail(MFX_ERR_INVALID, "operator %s %s, got %s", mfx_binary_op_name(op), bad,
             mfx_dtype_name(x->type));
    return NULL;
  }
  mfx_expr *e = expr_new(a, MFX_EXPR_BINARY, is_comparison(op) ? MFX_BOOL : x->type);
  if (!e) return NULL;
  e->u.bin.op = op;
  e->u.bin.a = x;
  e->u.bin.b = y;
  return e;
}

mfx_expr *mfx_unary(mfx_arena *a, mfx_unary_op op, mfx_expr *x) {
  if (!x) return NULL;
  int fl = mfx_dtype_is_float(x->type);
  const char *bad = NULL;
  if (op == MFX_POPCOUNT && (fl || x->type == MFX_BOOL)) bad = "needs an integer operand";
  if (op >= MFX_SQRT && !fl) bad = "needs an f32 operand";
  if ((op == MFX_NEG || op == MFX_ABS) && x->type == MFX_BOOL) bad = "does not take bool";
  if (op == MFX_NOT && fl) bad = "needs an integer or bool operand";
  if (bad) {
    mfx_fail(MFX_ERR_INVALID, "%s %s, got %s", mfx_unary_op_name(op), bad,
             mfx_dtype_name(x->type));
    return NULL;
  }
  mfx_expr *e = expr_new(a, MFX_EXPR_UNARY, x->type);
  if (!e) return NULL;
  e->u.un.op = op;
  e->u.un.a = x;
  return e;
}

mfx_expr *mfx_select(mfx_arena *a, mfx_expr *cond, mfx_expr *x, mfx_expr *y) {
  if (!cond || !x || !y) return NULL;
  if (cond->type != MFX_BOOL) {
    mfx_fail(MFX_ERR_INVALID, "select: condition must be bool, got %s",
             mfx_dtype_name(cond->type));
    return NULL;
  }
  unify_constants(a, &x, &y);
  if (x->type != y->type) {
    mfx_fail(MFX_ERR_INVALID, "select: branch types differ (%s vs %s)",
             mfx_dtype_name(x->type), mfx_dtype_name(y->type));
    return NULL;
  }
  mfx_expr *e = expr_new(a, MFX_EXPR_SELECT, x->type);
  if (!e) return NULL;
  e->u.sel.cond = cond;
  e->u.sel.a = x;
  e->u.sel.b = y;
  return e;
}

mfx_expr *mfx_cast(mfx_arena *a, mfx_dtype t, mfx_expr *x) {
  if (!x) return NULL;
  if (x->type == t) return x;
  mfx_expr *e = expr_new(a, MFX_EXPR_CAST, t);
  if (e) e->u.cast.a = x;
  return e;
}

mfx_expr *mfx_reduce(mfx_arena *a, mfx_reduce_op op, int n_axes, mfx_var *const *axes,
                     mfx_expr *src) {
  if (!src) return NULL;
  if (n_axes < 1 || n_axes > MFX_MAX_DIMS) {
    mfx_fail(MFX_ERR_INVALID, "reduce: %d axes (expected 1..%d)", n_axes, MFX_MAX_DIMS);
    return NULL;
  }
  for (int i = 0; i < n_axes; i++)
    if (!axes[i]->is_reduce) {
      mfx_fail(MFX_ERR_INVALID, "reduce: axis %s is not a reduction axis", axes[i]->name);
      return NULL;
    }
  if (op == MFX_REDUCE_OR && (mfx_dtype_is_float(src->type) || src->type == MFX_BOOL)) {
    mfx_fail(MFX_ERR_INVALID, "reduce or: needs integer values, got %s",
             mfx_dtype_name(src->type));
    return NULL;
  }
  mfx_expr *e = expr_new(a, MFX_EXPR_REDUCE, src->type);
  if (!e) return NULL;
  e->u.red.op = op;
  e->u.red.n_axes = n_axes;
  e->u.red.axes = mfx_arena_alloc(a, sizeof(mfx_var *) * (size_t)n_axes);
  memcpy(e->u.red.axes, axes, sizeof(mfx_var *) * (size_t)n_axes);
  e->u.red.src = src;
  return e;
}

static int64_t int_max_of(mfx_dtype t) {
  switch (t) {
  case MFX_I8: return INT8_MAX;
  case MFX_I16: return INT16_MAX;
  case MFX_I32: return INT32_MAX;
  case MFX_U8: return UINT8_MAX;
  case MFX_U32: return UINT32_MAX;
  case MFX_U64: return -1; /* all bits set */
  default: return INT64_MAX;
  }
}

static int64_t int_min_of(mfx_dtype t) {
  switch (t) {
  case MFX_I8: return INT8_MIN;
  case MFX_I16: return INT16_MIN;
  case MFX_I32: return INT32_MIN;
  case MFX_I64: return INT64_MIN;
  default: return 0;
  }
}

mfx_expr *mfx_reduce_identity(mfx_arena *a, mfx_reduce_op op, mfx_dtype t) {
  int fl = mfx_dtype_is_float(t);
  switch (op) {
  case MFX_REDUCE_MAX: return fl ? mfx_f32(a, -1.0 / 0.0) : mfx_int(a, t, int_min_of(t));
  case MFX_REDUCE_MIN: return fl ? mfx_f32(a, 1.0 / 0.0) : mfx_int(a, t, int_max_of(t));
  default: return fl ? mfx_f32(a, 0.0) : mfx_int(a, t, 0);
  }
}

/* ---- statements ------------------------------------------------------------------------ */

static mfx_stmt *stmt_new(mfx_arena *a, mfx_stmt_kind kind) {
  mfx_stmt *s = mfx_arena_alloc(a, sizeof *s);
  if (s) s->kind = kind;
  return s;
}

mfx_stmt *mfx_stmt_for(mfx_arena *a, mfx_var *v, int64_t extent, mfx_loop_kind k,
                       mfx_stmt *body) {
  mfx_stmt *s = stmt_new(a, MFX_STMT_FOR);
  if (!s) return NULL;
  s->u.loop.var = v;
  s->u.loop.extent = extent;
  s->u.loop.kind = k;
  s->u.loop.body = body;
  return s;
}

mfx_stmt *mfx_stmt_store(mfx_arena *a, mfx_buffer *b, int n, mfx_expr *const *idx,
                         mfx_expr *value) {
  mfx_stmt *s = stmt_new(a, MFX_STMT_STORE);
  if (!s) return NULL;
  s->u.store.buf = b;
  s->u.store.n = n;
  s->u.store.idx = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)n);
  for (int i = 0; i < n; i++)
    s->u.store.idx[i] = idx[i]->type == MFX_I64 ? idx[i] : mfx_cast(a, MFX_I64, idx[i]);
  s->u.store.value = value;
  return s;
}

mfx_stmt *mfx_stmt_let(mfx_arena *a, mfx_var *v, mfx_expr *value, mfx_stmt *body) {
  mfx_stmt *s = stmt_new(a, MFX_STMT_LET);
  if (!s) return NULL;
  s->u.let.var = v;
  s->u.let.value = value;
  s->u.let.body = body;
  return s;
}

mfx_stmt *mfx_stmt_if(mfx_arena *a, mfx_expr *cond, mfx_stmt *then_s, mfx_stmt *else_s) {
  mfx_stmt *s = stmt_new(a, MFX_STMT_IF);
  if (!s) return NULL;
  s->u.if_.cond = cond;
  s->u.if_.then_s = then_s;
  s->u.if_.else_s = else_s;
  return s;
}

mfx_stmt *mfx_stmt_allocate(mfx_arena *a, mfx_buffer *b, mfx_stmt *body) {
  mfx_stmt *s = stmt_new(a, MFX_STMT_ALLOCATE);
  if (!s) return NULL;
  s->u.alloc.buf = b;
  s->u.alloc.body = body;
  return s;
}

mfx_stmt *mfx_stmt_seq(mfx_arena *a, int n, mfx_stmt *const *items) {
  if (n == 1) return items[0];
  mfx_stmt *s = stmt_new(a, MFX_STMT_SEQ);
  if (!s) return NULL;
  s->u.seq.n = n;
  s->u.seq.items = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(n ? n : 1));
  for (int i = 0; i < n; i++) s->u.seq.items[i] = items[i];
  return s;
}

mfx_stmt *mfx_stmt_barrier(mfx_arena *a) { return stmt_new(a, MFX_STMT_BARRIER); }

mfx_stmt *mfx_stmt_mma(mfx_arena *a, mfx_buffer *const buf[MFX_MMA_OPERANDS],
                       mfx_expr *const off[MFX_MMA_OPERANDS], const int64_t ld[MFX_MMA_OPERANDS],
                       mfx_expr *lane) {
  static const char *const role[MFX_MMA_OPERANDS] = {"C", "A", "B"};
  if (lane == NULL || lane->type != MFX_I64) {
    mfx_fail(MFX_ERR_INVALID, "mma: the lane must be an i64 expression");
    return NULL;
  }
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    if (buf[i] == NULL || buf[i]->dtype != MFX_F32 || off[i] == NULL || off[i]->type != MFX_I64) {
      mfx_fail(MFX_ERR_INVALID, "mma: operand %s needs an f32 buffer and an i64 offset",
               role[i]);
      return NULL;
    }
    if (i != MFX_MMA_C && ld[i] < 8) {
      mfx_fail(MFX_ERR_INVALID, "mma: operand %s has stride %lld (at least 8: its 8 k values)",
               role[i], (long long)ld[i]);
      return NULL;
    }
  }
  mfx_stmt *s = stmt_new(a, MFX_STMT_MMA);
  if (!s) return NULL;
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    s->u.mma.buf[i] = buf[i];
    s->u.mma.off[i] = off[i];
    s->u.mma.ld[i] = i == MFX_MMA_C ? 1 : ld[i];
  }
  s->u.mma.lane = lane;
  return s;
}
