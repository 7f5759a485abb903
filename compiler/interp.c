/* The interpreter: a slow, direct evaluator of tensor expressions, the
 * reference for kernels that have no plain-C one (kernels written as text).
 *
 * It reads only the TE graph (te.c), never the schedule's annotations: every
 * compute reachable from the outputs is evaluated element by element into an
 * array of its own, producers first; a reduction starts from
 * mfx_reduce_identity and combines its source over the reduction axes in the
 * declared order (the first axis outermost), as the default schedule does.
 *
 * Values follow the generated code (codegen_llvm.c), operation by operation:
 * - An integer is held as an int64 in canonical form: sign-extended from its
 *   width for signed types, zero-extended for unsigned ones and bool. add,
 *   sub, mul, neg, shl wrap modulo 2^bits; i64 add/sub/mul are emitted "nsw",
 *   so an i64 overflow is undefined there (see poison below).
 * - Division and remainder truncate toward zero (LLVM sdiv/srem = C);
 *   division by zero, and MIN / -1 of a signed type, trap or are undefined in
 *   the generated code: the interpreter reports them as errors.
 * - f32 operations are each rounded to f32, never contracted into fused
 *   multiply-adds (CMakeLists.txt compiles this file with -ffp-contract=off).
 *   The generated code does contract x*y + z (llvm.fmuladd), and on some
 *   targets uses its own exp/erf/tanh: comparisons of f32 results need a
 *   tolerance. min/max are C's fminf/fmaxf (llvm.minnum/maxnum: a NaN
 *   operand gives the other one); MOD is fmodf (frem); comparisons are
 *   ordered except != (true on NaN); round is rintf (ties to even).
 * - Conversions are C's (cg_convert): to bool "!= 0" (NaN is true), between
 *   integers truncation or sign/zero extension by the source's signedness,
 *   integer to f32 rounded to nearest.
 * - Poison: where LLVM defines no result (a shift by >= the width, an f32 to
 *   integer conversion out of range or of NaN, an i64 nsw overflow), the
 *   value is marked undefined; it spreads through every operation but the
 *   unchosen arm of a select, and an undefined value reaching a tensor is an
 *   error naming the element and the cause.
 * - select evaluates both arms, as the generated code does (a select has no
 *   branch): a load out of bounds or a division by zero in the arm not taken
 *   is still an error, because the generated code still performs it.
 * Every load is bounds-checked: out of bounds is an error, never a crash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"

/* Why a value is undefined (LLVM poison); INTERP_DEFINED if it is not. */
typedef enum {
  INTERP_DEFINED,
  INTERP_POISON_SHIFT,
  INTERP_POISON_CONVERT,
  INTERP_POISON_OVERFLOW,
} interp_poison;

typedef struct {
  int64_t i;  /* integers and bool, canonical */
  float f;    /* f32 */
  interp_poison poison;
} interp_value;

/* One tensor the evaluation touches and its values. */
typedef struct {
  const mfx_tensor *tensor;
  mfx_array array;
  int state; /* 0 not evaluated, 1 evaluating, 2 done */
  int owned; /* 1: array allocated here */
} interp_slot;

typedef struct {
  const mfx_schedule *s;
  mfx_arena *scratch;   /* reduction identities */
  int n_slots;
  interp_slot *slots;
  int64_t *vars;        /* values by var id */
  unsigned char *bound; /* which vars have a value now */
  int n_vars;
  const mfx_tensor *current; /* the compute being evaluated, for messages */
  int64_t index[MFX_MAX_DIMS]; /* its element */
  mfx_status status;
} interp_ctx;

/* ---- messages ----------------------------------------------------------------------- */

static void interp_format_index(const int64_t *idx, int n, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < n && used < size; d++) {
    int k = snprintf(buf + used, size - used, "%s%lld", d ? "," : "", (long long)idx[d]);
    if (k < 0) return;
    used += (size_t)k;
  }
}

/* Record the first error, prefixed with the element being computed. */
static void interp_error(interp_ctx *c, const char *what) {
  if (c->status != MFX_OK) return;
  char where[160];
  interp_format_index(c->index, c->current->buf->ndim, where, sizeof where);
  c->status = mfx_fail(MFX_ERR_INVALID, "interp: computing %s[%s]: %s", c->current->buf->name,
                       where, what);
}

static const char *interp_poison_cause(interp_poison p) {
  switch (p) {
  case INTERP_POISON_SHIFT: return "a shift by an amount outside [0, bits)";
  case INTERP_POISON_CONVERT:
    return "an f32 to integer conversion of NaN or of a value out of the integer's range";
  case INTERP_POISON_OVERFLOW: return "an i64 add, sub or mul that overflows (nsw)";
  case INTERP_DEFINED: break;
  }
  return "nothing";
}

/* ---- integer representation ---------------------------------------------------------- */

static int interp_bits(mfx_dtype t) {
  return t == MFX_BOOL ? 1 : (int)mfx_dtype_size(t) * 8;
}

/* The canonical int64 of the low `bits` of v in type t. */
static int64_t interp_wrap(mfx_dtype t, uint64_t v) {
  switch (t) {
  case MFX_BOOL: return (int64_t)(v & 1u);
  case MFX_I8: return (int8_t)(uint8_t)v;
  case MFX_I16: return (int16_t)(uint16_t)v;
  case MFX_I32: return (int32_t)(uint32_t)v;
  case MFX_U8: return (int64_t)(uint8_t)v;
  case MFX_U32: return (int64_t)(uint32_t)v;
  default: return (int64_t)v; /* I64, U64: all 64 bits */
  }
}

static uint64_t interp_mask(mfx_dtype t) {
  int bits = interp_bits(t);
  return bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
}

static int64_t interp_signed_min(mfx_dtype t) {
  int bits = interp_bits(t);
  return bits >= 64 ? INT64_MIN : -((int64_t)1 << (bits - 1));
}

static interp_value interp_int(int64_t v) { return (interp_value){v, 0.0f, INTERP_DEFINED}; }
static interp_value interp_float(float f) { return (interp_value){0, f, INTERP_DEFINED}; }
static interp_value interp_poisoned(interp_poison p) { return (interp_value){0, 0.0f, p}; }

/* ---- conversions (cg_convert) ---------------------------------------------------------- */

/* f32 -> integer: LLVM fptosi/fptoui, undefined unless the value truncated
 * toward zero fits the type. */
static interp_value interp_float_to_int(float f, mfx_dtype to) {
  int bits = interp_bits(to);
  double t = trunc((double)f); /* NaN stays NaN: every comparison below fails */
  double lo = mfx_dtype_is_signed(to) ? -ldexp(1.0, bits - 1) : 0.0;
  double hi = mfx_dtype_is_signed(to) ? ldexp(1.0, bits - 1) : ldexp(1.0, bits);
  if (!(t >= lo && t < hi)) return interp_poisoned(INTERP_POISON_CONVERT);
  if (mfx_dtype_is_signed(to)) return interp_int((int64_t)t);
  return interp_int(interp_wrap(to, (uint64_t)t));
}

static interp_value interp_convert(interp_value v, mfx_dtype from, mfx_dtype to) {
  if (from == to || v.poison != INTERP_DEFINED) return v;
  int float_from = mfx_dtype_is_float(from), float_to = mfx_dtype_is_float(to);
  if (to == MFX_BOOL) return interp_int(float_from ? v.f != 0.0f : v.i != 0);
  if (float_from && float_to) return v;
  if (float_from) return interp_float_to_int(v.f, to);
  if (float_to)
    return interp_float(mfx_dtype_is_signed(from) ? (float)v.i : (float)(uint64_t)v.i);
  return interp_int(interp_wrap(to, (uint64_t)v.i)); /* sext/zext by canonical form, trunc */
}

/* ---- binary operators (cg_binary_value) ------------------------------------------------- */

static int interp_is_compare(mfx_binary_op op) { return op >= MFX_LT && op <= MFX_NE; }

static interp_value interp_compare_float(mfx_binary_op op, float a, float b) {
  switch (op) {
  case MFX_LT: return interp_int(a < b);
  case MFX_LE: return interp_int(a <= b);
  case MFX_GT: return interp_int(a > b);
  case MFX_GE: return interp_int(a >= b);
  case MFX_EQ: return interp_int(a == b);
  default: return interp_int(a != b); /* unordered: NaN != x */
  }
}

static interp_value interp_compare_int(mfx_binary_op op, mfx_dtype t, int64_t a, int64_t b) {
  int lt, eq = a == b;
  if (mfx_dtype_is_signed(t)) lt = a < b;
  else lt = (uint64_t)a < (uint64_t)b;
  switch (op) {
  case MFX_LT: return interp_int(lt);
  case MFX_LE: return interp_int(lt || eq);
  case MFX_GT: return interp_int(!lt && !eq);
  case MFX_GE: return interp_int(!lt);
  case MFX_EQ: return interp_int(eq);
  default: return interp_int(!eq);
  }
}

static interp_value interp_binary_float(interp_ctx *c, mfx_binary_op op, float a, float b) {
  switch (op) {
  case MFX_ADD: return interp_float(a + b);
  case MFX_SUB: return interp_float(a - b);
  case MFX_MUL: return interp_float(a * b);
  case MFX_DIV: return interp_float(a / b);
  case MFX_MOD: return interp_float(fmodf(a, b));
  case MFX_MIN: return interp_float(fminf(a, b));
  case MFX_MAX: return interp_float(fmaxf(a, b));
  default:
    if (interp_is_compare(op)) return interp_compare_float(op, a, b);
    break;
  }
  char what[96];
  snprintf(what, sizeof what, "operator %s on f32 operands (it takes integers or bool)",
           mfx_binary_op_name(op));
  interp_error(c, what);
  return interp_int(0);
}

/* i64 add/sub/mul: nsw in the generated code, undefined on overflow. */
static interp_value interp_i64_nsw(mfx_binary_op op, int64_t a, int64_t b) {
  int64_t r;
  int overflow = op == MFX_ADD   ? __builtin_add_overflow(a, b, &r)
                 : op == MFX_SUB ? __builtin_sub_overflow(a, b, &r)
                                 : __builtin_mul_overflow(a, b, &r);
  return overflow ? interp_poisoned(INTERP_POISON_OVERFLOW) : interp_int(r);
}

static interp_value interp_divide(interp_ctx *c, mfx_binary_op op, mfx_dtype t, int64_t a,
                                  int64_t b) {
  if (b == 0) {
    interp_error(c, op == MFX_DIV ? "integer division by zero (the generated code traps)"
                                  : "integer remainder by zero (the generated code traps)");
    return interp_int(0);
  }
  if (!mfx_dtype_is_signed(t)) {
    uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
    return interp_int(interp_wrap(t, op == MFX_DIV ? ua / ub : ua % ub));
  }
  if (b == -1 && a == interp_signed_min(t)) {
    char what[128];
    snprintf(what, sizeof what, "%lld %s -1 overflows %s (undefined in the generated code)",
             (long long)a, mfx_binary_op_name(op), mfx_dtype_name(t));
    interp_error(c, what);
    return interp_int(0);
  }
  return interp_int(op == MFX_DIV ? a / b : a % b);
}

static interp_value interp_shift(mfx_binary_op op, mfx_dtype t, int64_t a, int64_t b) {
  uint64_t amount = (uint64_t)b & interp_mask(t); /* the amount's bits, unsigned */
  if (amount >= (uint64_t)interp_bits(t)) return interp_poisoned(INTERP_POISON_SHIFT);
  if (op == MFX_SHL) return interp_int(interp_wrap(t, (uint64_t)a << amount));
  if (mfx_dtype_is_signed(t)) /* arithmetic: floor division by 2^amount */
    return interp_int(a >= 0 ? a >> amount : ~(~a >> amount));
  return interp_int(interp_wrap(t, (uint64_t)a >> amount));
}

static interp_value interp_binary_int(interp_ctx *c, mfx_binary_op op, mfx_dtype t, int64_t a,
                                      int64_t b) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  int is_signed = mfx_dtype_is_signed(t);
  switch (op) {
  case MFX_ADD: case MFX_SUB: case MFX_MUL:
    if (t == MFX_I64) return interp_i64_nsw(op, a, b);
    return interp_int(interp_wrap(t, op == MFX_ADD ? ua + ub : op == MFX_SUB ? ua - ub : ua * ub));
  case MFX_DIV: case MFX_MOD: return interp_divide(c, op, t, a, b);
  case MFX_MIN: case MFX_MAX: {
    int a_less = is_signed ? a < b : ua < ub;
    return interp_int((op == MFX_MIN) == a_less ? a : b);
  }
  case MFX_AND: return interp_int(interp_wrap(t, ua & ub));
  case MFX_OR: return interp_int(interp_wrap(t, ua | ub));
  case MFX_XOR: return interp_int(interp_wrap(t, ua ^ ub));
  case MFX_SHL: case MFX_SHR: return interp_shift(op, t, a, b);
  case MFX_LAND: case MFX_LOR:
    if (t != MFX_BOOL) {
      char what[96];
      snprintf(what, sizeof what, "operator %s on %s operands (it takes bool)",
               mfx_binary_op_name(op), mfx_dtype_name(t));
      interp_error(c, what);
      return interp_int(0);
    }
    return interp_int(op == MFX_LAND ? (a && b) : (a || b));
  default:
    if (interp_is_compare(op)) return interp_compare_int(op, t, a, b);
    break;
  }
  interp_error(c, "unknown binary operator");
  return interp_int(0);
}

/* op on two values of type t; the result in the operator's natural type
 * (bool for comparisons and logic, t otherwise). */
static interp_value interp_binary_value(interp_ctx *c, mfx_binary_op op, mfx_dtype t,
                                        interp_value a, interp_value b) {
  if (a.poison != INTERP_DEFINED) return a;
  if (b.poison != INTERP_DEFINED) return b;
  if (mfx_dtype_is_float(t)) return interp_binary_float(c, op, a.f, b.f);
  return interp_binary_int(c, op, t, a.i, b.i);
}

/* ---- unary operators (cg_unary_value) ----------------------------------------------------- */

static interp_value interp_unary_float(interp_ctx *c, mfx_unary_op op, float x) {
  switch (op) {
  case MFX_NEG: return interp_float(-x);
  case MFX_ABS: return interp_float(fabsf(x));
  case MFX_SQRT: return interp_float(sqrtf(x));
  case MFX_EXP: return interp_float(expf(x));
  case MFX_LOG: return interp_float(logf(x));
  case MFX_TANH: return interp_float(tanhf(x));
  case MFX_ERF: return interp_float(erff(x));
  case MFX_ROUND: return interp_float(rintf(x)); /* ties to even in the default mode */
  case MFX_RSQRT: return interp_float(1.0f / sqrtf(x));
  default: break;
  }
  char what[96];
  snprintf(what, sizeof what, "%s on f32 (it takes an integer or bool)", mfx_unary_op_name(op));
  interp_error(c, what);
  return interp_int(0);
}

static interp_value interp_unary_int(interp_ctx *c, mfx_unary_op op, mfx_dtype t, int64_t x) {
  switch (op) {
  case MFX_NEG: return interp_int(interp_wrap(t, 0u - (uint64_t)x));
  case MFX_NOT: return interp_int(interp_wrap(t, ~(uint64_t)x));
  case MFX_POPCOUNT: return interp_int(__builtin_popcountll((uint64_t)x & interp_mask(t)));
  case MFX_ABS:
    if (mfx_dtype_is_signed(t) && x < 0) return interp_int(interp_wrap(t, 0u - (uint64_t)x));
    return interp_int(x);
  default: break;
  }
  char what[96];
  snprintf(what, sizeof what, "%s on %s (it takes f32)", mfx_unary_op_name(op),
           mfx_dtype_name(t));
  interp_error(c, what);
  return interp_int(0);
}

/* ---- expressions ---------------------------------------------------------------------------- */

static interp_value interp_expr(interp_ctx *c, const mfx_expr *e);

static interp_value interp_constant(interp_ctx *c, const mfx_expr *e) {
  double d = e->kind == MFX_EXPR_INT ? (double)e->u.i : e->u.f;
  if (mfx_dtype_is_float(e->type)) return interp_float((float)d);
  if (e->type == MFX_BOOL) return interp_int(e->kind == MFX_EXPR_INT ? e->u.i != 0 : d != 0.0);
  if (e->kind == MFX_EXPR_INT) return interp_int(interp_wrap(e->type, (uint64_t)e->u.i));
  if (!(d > -9.3e18 && d < 9.3e18)) {
    interp_error(c, "a float constant of integer type out of the int64 range");
    return interp_int(0);
  }
  return interp_int(interp_wrap(e->type, (uint64_t)(int64_t)d));
}

static interp_slot *interp_slot_of(interp_ctx *c, const mfx_buffer *buf) {
  for (int i = 0; i < c->n_slots; i++)
    if (c->slots[i].tensor->buf == buf) return &c->slots[i];
  return NULL;
}

static interp_value interp_read(const mfx_array *a, int64_t at) {
  switch (a->dtype) {
  case MFX_BOOL: return interp_int(((const uint8_t *)a->data)[at] != 0);
  case MFX_I8: return interp_int(((const int8_t *)a->data)[at]);
  case MFX_I16: return interp_int(((const int16_t *)a->data)[at]);
  case MFX_I32: return interp_int(((const int32_t *)a->data)[at]);
  case MFX_I64: return interp_int(((const int64_t *)a->data)[at]);
  case MFX_U8: return interp_int(((const uint8_t *)a->data)[at]);
  case MFX_U32: return interp_int(((const uint32_t *)a->data)[at]);
  case MFX_U64: return interp_int((int64_t)((const uint64_t *)a->data)[at]);
  case MFX_F32: return interp_float(((const float *)a->data)[at]);
  case MFX_DTYPE_COUNT: break;
  }
  return interp_int(0);
}

static void interp_write(mfx_array *a, int64_t at, interp_value v) {
  switch (a->dtype) {
  case MFX_BOOL: case MFX_U8: ((uint8_t *)a->data)[at] = (uint8_t)v.i; break;
  case MFX_I8: ((int8_t *)a->data)[at] = (int8_t)v.i; break;
  case MFX_I16: ((int16_t *)a->data)[at] = (int16_t)v.i; break;
  case MFX_I32: ((int32_t *)a->data)[at] = (int32_t)v.i; break;
  case MFX_I64: ((int64_t *)a->data)[at] = v.i; break;
  case MFX_U32: ((uint32_t *)a->data)[at] = (uint32_t)v.i; break;
  case MFX_U64: ((uint64_t *)a->data)[at] = (uint64_t)v.i; break;
  case MFX_F32: ((float *)a->data)[at] = v.f; break;
  case MFX_DTYPE_COUNT: break;
  }
}

static interp_value interp_load(interp_ctx *c, const mfx_expr *e) {
  const mfx_buffer *buf = e->u.load.buf;
  interp_slot *slot = interp_slot_of(c, buf);
  if (slot == NULL || slot->state != 2) {
    char what[160];
    snprintf(what, sizeof what, "loads %s, which is not a tensor of this schedule",
             buf ? buf->name : "(null)");
    interp_error(c, what);
    return interp_int(0);
  }
  if (e->u.load.n != buf->ndim) {
    interp_error(c, "a load with the wrong number of indices");
    return interp_int(0);
  }
  int64_t idx[MFX_MAX_DIMS], at = 0;
  for (int d = 0; d < e->u.load.n; d++) {
    interp_value v = interp_expr(c, e->u.load.idx[d]);
    if (c->status != MFX_OK) return interp_int(0);
    if (v.poison != INTERP_DEFINED) {
      char what[256];
      snprintf(what, sizeof what, "index %d of a load of %s is undefined: it depends on %s", d,
               buf->name, interp_poison_cause(v.poison));
      interp_error(c, what);
      return interp_int(0);
    }
    idx[d] = mfx_dtype_is_signed(e->u.load.idx[d]->type) || v.i >= 0 ? v.i : INT64_MAX;
    if (idx[d] < 0 || idx[d] >= buf->shape[d]) {
      char what[256], shown[160];
      interp_format_index(idx, d + 1, shown, sizeof shown);
      snprintf(what, sizeof what, "load %s[%s...] out of bounds: index %d is %lld, dimension "
               "%d of %s has %lld elements", buf->name, shown, d, (long long)idx[d], d,
               buf->name, (long long)buf->shape[d]);
      interp_error(c, what);
      return interp_int(0);
    }
    at = at * buf->shape[d] + idx[d];
  }
  return interp_read(&slot->array, at);
}

static interp_value interp_var(interp_ctx *c, const mfx_var *v) {
  if (v->id < 0 || v->id >= c->n_vars || !c->bound[v->id]) {
    char what[128];
    snprintf(what, sizeof what, "variable %s has no value here", v->name);
    interp_error(c, what);
    return interp_int(0);
  }
  return interp_int(c->vars[v->id]);
}

static int interp_gives_bool(mfx_binary_op op) {
  return interp_is_compare(op) || op == MFX_LAND || op == MFX_LOR;
}

static interp_value interp_binary(interp_ctx *c, const mfx_expr *e) {
  const mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  if (x == NULL || y == NULL || x->type != y->type) {
    interp_error(c, "a binary operator with a missing operand or operands of two types");
    return interp_int(0);
  }
  interp_value a = interp_expr(c, x), b = interp_expr(c, y);
  interp_value r = interp_binary_value(c, e->u.bin.op, x->type, a, b);
  return interp_convert(r, interp_gives_bool(e->u.bin.op) ? MFX_BOOL : x->type, e->type);
}

static interp_value interp_unary(interp_ctx *c, const mfx_expr *e) {
  const mfx_expr *x = e->u.un.a;
  if (x == NULL) {
    interp_error(c, "a unary operator without operand");
    return interp_int(0);
  }
  interp_value a = interp_expr(c, x);
  if (a.poison != INTERP_DEFINED) return a;
  interp_value r = mfx_dtype_is_float(x->type) ? interp_unary_float(c, e->u.un.op, a.f)
                                               : interp_unary_int(c, e->u.un.op, x->type, a.i);
  return interp_convert(r, x->type, e->type);
}

/* Both arms evaluated, as the generated code's select does. */
static interp_value interp_select(interp_ctx *c, const mfx_expr *e) {
  const mfx_expr *cond = e->u.sel.cond, *x = e->u.sel.a, *y = e->u.sel.b;
  if (cond == NULL || x == NULL || y == NULL || x->type != y->type) {
    interp_error(c, "a select with a missing operand or arms of two types");
    return interp_int(0);
  }
  interp_value k = interp_convert(interp_expr(c, cond), cond->type, MFX_BOOL);
  interp_value a = interp_expr(c, x), b = interp_expr(c, y);
  if (k.poison != INTERP_DEFINED) return k;
  return interp_convert(k.i ? a : b, x->type, e->type);
}

static interp_value interp_expr(interp_ctx *c, const mfx_expr *e) {
  if (c->status != MFX_OK) return interp_int(0);
  if (e == NULL) {
    interp_error(c, "a missing expression");
    return interp_int(0);
  }
  switch (e->kind) {
  case MFX_EXPR_INT: case MFX_EXPR_FLOAT: return interp_constant(c, e);
  case MFX_EXPR_VAR: return interp_var(c, e->u.var);
  case MFX_EXPR_LOAD: return interp_load(c, e);
  case MFX_EXPR_BINARY: return interp_binary(c, e);
  case MFX_EXPR_UNARY: return interp_unary(c, e);
  case MFX_EXPR_SELECT: return interp_select(c, e);
  case MFX_EXPR_CAST:
    if (e->u.cast.a == NULL) break;
    return interp_convert(interp_expr(c, e->u.cast.a), e->u.cast.a->type, e->type);
  case MFX_EXPR_REDUCE:
    interp_error(c, "a reduction inside an expression (only a whole body may be one)");
    return interp_int(0);
  }
  interp_error(c, "an expression of unknown kind");
  return interp_int(0);
}

/* ---- computes --------------------------------------------------------------------------------- */

/* Advance a row-major index over shape; 0 when it wraps around. */
static int interp_next_index(int64_t *idx, const int64_t *shape, int n) {
  for (int d = n - 1; d >= 0; d--) {
    if (++idx[d] < shape[d]) return 1;
    idx[d] = 0;
  }
  return 0;
}

static void interp_bind(interp_ctx *c, const mfx_var *v, int64_t value) {
  c->vars[v->id] = value;
  c->bound[v->id] = 1;
}

/* The combine of lower.c: acc + x, max, min, or. */
static mfx_binary_op interp_combine_op(mfx_reduce_op op) {
  switch (op) {
  case MFX_REDUCE_SUM: return MFX_ADD;
  case MFX_REDUCE_MAX: return MFX_MAX;
  case MFX_REDUCE_MIN: return MFX_MIN;
  default: return MFX_OR;
  }
}

/* A reduction body is well formed and its identity (mfx_reduce_identity)
 * evaluated, once per compute. */
static mfx_status interp_reduce_setup(interp_ctx *c, const mfx_tensor *t, interp_value *identity) {
  const mfx_expr *red = t->body;
  int n = red->u.red.n_axes;
  const char *name = t->buf->name;
  if ((int)red->u.red.op < 0 || red->u.red.op >= MFX_REDUCE_OP_COUNT)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s: an unknown reduction", name);
  if (red->u.red.src == NULL || red->u.red.src->type != t->buf->dtype || n < 1 ||
      n > MFX_MAX_DIMS * 2)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s: a malformed reduction (source missing "
                    "or of another type than the tensor, or %d axes)", name, n);
  for (int a = 0; a < n; a++)
    if (red->u.red.axes[a]->extent < 1)
      return mfx_fail(MFX_ERR_INVALID, "interp: compute %s: reduction axis %s has extent %lld",
                      name, red->u.red.axes[a]->name, (long long)red->u.red.axes[a]->extent);
  mfx_expr *e = mfx_reduce_identity(c->scratch, red->u.red.op, t->buf->dtype);
  if (e == NULL) return mfx_fail(MFX_ERR_NOMEM, "interp: out of memory");
  *identity = interp_constant(c, e);
  return c->status;
}

/* One reduction: the identity, then the source combined in over every point
 * of the reduction axes, the first axis outermost. */
static interp_value interp_reduce(interp_ctx *c, const mfx_expr *red, mfx_dtype t,
                                  interp_value identity) {
  int n = red->u.red.n_axes;
  int64_t k[MFX_MAX_DIMS * 2] = {0}, extent[MFX_MAX_DIMS * 2];
  for (int a = 0; a < n; a++) extent[a] = red->u.red.axes[a]->extent;
  mfx_binary_op combine = interp_combine_op(red->u.red.op);
  interp_value acc = identity;
  do {
    for (int a = 0; a < n; a++) interp_bind(c, red->u.red.axes[a], k[a]);
    interp_value x = interp_expr(c, red->u.red.src);
    acc = interp_binary_value(c, combine, t, acc, x);
  } while (c->status == MFX_OK && interp_next_index(k, extent, n));
  for (int a = 0; a < n; a++) c->bound[red->u.red.axes[a]->id] = 0;
  return acc;
}

static mfx_status interp_compute(interp_ctx *c, interp_slot *slot) {
  const mfx_tensor *t = slot->tensor;
  const mfx_buffer *buf = t->buf;
  if (t->body == NULL || t->n_axes != buf->ndim)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s has no body or not one axis per "
                    "dimension", buf->name);
  if (t->body->type != buf->dtype)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s: body of type %s for a %s tensor",
                    buf->name, mfx_dtype_name(t->body->type), mfx_dtype_name(buf->dtype));
  int64_t *idx = c->index, at = 0;
  memset(c->index, 0, sizeof c->index);
  c->current = t;
  int is_reduce = t->body->kind == MFX_EXPR_REDUCE;
  interp_value identity = interp_int(0);
  if (is_reduce) MFX_TRY(interp_reduce_setup(c, t, &identity));
  mfx_status st = mfx_array_create(&slot->array, buf->dtype, buf->ndim, buf->shape);
  if (st != MFX_OK) return mfx_fail_context(st, "interp: compute %s", buf->name);
  slot->owned = 1;
  do {
    for (int d = 0; d < t->n_axes; d++) interp_bind(c, t->axes[d], idx[d]);
    interp_value v = is_reduce ? interp_reduce(c, t->body, buf->dtype, identity)
                               : interp_expr(c, t->body);
    if (c->status == MFX_OK && v.poison != INTERP_DEFINED) {
      char what[200];
      snprintf(what, sizeof what, "the value is undefined in the generated code: it depends "
               "on %s", interp_poison_cause(v.poison));
      interp_error(c, what);
    }
    if (c->status != MFX_OK) return c->status;
    interp_write(&slot->array, at++, v);
  } while (interp_next_index(idx, buf->shape, buf->ndim));
  for (int d = 0; d < t->n_axes; d++) c->bound[t->axes[d]->id] = 0;
  return MFX_OK;
}

/* ---- the graph: inputs, evaluation order, outputs ------------------------------------------ */

static int interp_var_ok(const interp_ctx *c, const mfx_var *v) {
  return v != NULL && v->id >= 0 && v->id < c->n_vars;
}

/* Every axis a compute binds must have an id of the arena. */
static mfx_status interp_check_axes(const interp_ctx *c, const mfx_tensor *t) {
  int ok = 1;
  for (int d = 0; d < t->n_axes; d++) ok = ok && interp_var_ok(c, t->axes[d]);
  const mfx_expr *b = t->body;
  if (b != NULL && b->kind == MFX_EXPR_REDUCE)
    for (int a = 0; a < b->u.red.n_axes; a++) ok = ok && interp_var_ok(c, b->u.red.axes[a]);
  if (!ok)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s has an axis that is not a variable of "
                    "the schedule's arena", t->buf->name);
  return MFX_OK;
}

static mfx_status interp_add_slot(interp_ctx *c, const mfx_tensor *t, int *cap) {
  for (int i = 0; i < c->n_slots; i++)
    if (c->slots[i].tensor == t) return MFX_OK;
  if (c->n_slots == *cap) {
    int grown = *cap ? 2 * *cap : 16;
    interp_slot *s = realloc(c->slots, sizeof *s * (size_t)grown);
    if (s == NULL) return mfx_fail(MFX_ERR_NOMEM, "interp: out of memory for the tensor list");
    c->slots = s;
    *cap = grown;
  }
  c->slots[c->n_slots++] = (interp_slot){t, {0}, 0, 0};
  return MFX_OK;
}

/* Every tensor reachable from the outputs, in c->slots (any order). */
static mfx_status interp_collect(interp_ctx *c) {
  int cap = 0;
  for (int i = 0; i < c->s->n_outputs; i++) {
    if (c->s->outputs[i] == NULL || c->s->outputs[i]->is_placeholder)
      return mfx_fail(MFX_ERR_INVALID, "interp: output %d is not a compute", i);
    for (int j = 0; j < i; j++)
      if (c->s->outputs[j] == c->s->outputs[i])
        return mfx_fail(MFX_ERR_INVALID, "interp: output %s is listed twice",
                        c->s->outputs[i]->buf->name);
    MFX_TRY(interp_add_slot(c, c->s->outputs[i], &cap));
  }
  for (int i = 0; i < c->n_slots; i++) { /* the list grows as it is walked */
    const mfx_tensor *t = c->slots[i].tensor;
    for (int k = 0; k < t->n_inputs; k++) MFX_TRY(interp_add_slot(c, t->inputs[k], &cap));
  }
  return MFX_OK;
}

static int interp_same_shape(const mfx_array *a, const mfx_buffer *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < b->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

/* Input i of the schedule must match its placeholder in dtype and shape. */
static mfx_status interp_check_input(const mfx_tensor *p, int i, const mfx_array *a) {
  const mfx_buffer *b = p->buf;
  char want[160], got[160];
  interp_format_index(b->shape, b->ndim, want, sizeof want);
  if (a == NULL || a->data == NULL)
    return mfx_fail(MFX_ERR_INVALID, "interp: input %d (%s, %s [%s]) is missing", i, b->name,
                    mfx_dtype_name(b->dtype), want);
  if (a->dtype != b->dtype)
    return mfx_fail(MFX_ERR_INVALID, "interp: input %d (%s) has dtype %s, expected %s", i,
                    b->name, mfx_dtype_name(a->dtype), mfx_dtype_name(b->dtype));
  if (a->ndim < 1 || a->ndim > MFX_MAX_DIMS || !interp_same_shape(a, b)) {
    interp_format_index(a->shape, a->ndim >= 0 && a->ndim <= MFX_MAX_DIMS ? a->ndim : 0, got,
                        sizeof got);
    return mfx_fail(MFX_ERR_INVALID, "interp: input %d (%s) has shape [%s], expected [%s]", i,
                    b->name, got, want);
  }
  return MFX_OK;
}

/* Placeholders read the caller's arrays (not copied). */
static mfx_status interp_bind_inputs(interp_ctx *c, const mfx_array *inputs) {
  for (int i = 0; i < c->s->n_inputs; i++) {
    const mfx_tensor *p = c->s->inputs[i];
    MFX_TRY(interp_check_input(p, i, inputs != NULL ? &inputs[i] : NULL));
    for (int k = 0; k < c->n_slots; k++) {
      if (c->slots[k].tensor != p) continue;
      c->slots[k].array = inputs[i];
      c->slots[k].state = 2;
    }
  }
  for (int k = 0; k < c->n_slots; k++)
    if (c->slots[k].tensor->is_placeholder && c->slots[k].state != 2)
      return mfx_fail(MFX_ERR_INVALID, "interp: placeholder %s is read but is not one of the "
                      "schedule's inputs", c->slots[k].tensor->buf->name);
  return MFX_OK;
}

static interp_slot *interp_slot_of_tensor(interp_ctx *c, const mfx_tensor *t) {
  for (int i = 0; i < c->n_slots; i++)
    if (c->slots[i].tensor == t) return &c->slots[i];
  return NULL;
}

/* Producers first (depth first over the tensors a compute reads). */
static mfx_status interp_evaluate(interp_ctx *c, interp_slot *slot) {
  if (slot->state == 2) return MFX_OK;
  if (slot->state == 1)
    return mfx_fail(MFX_ERR_INVALID, "interp: compute %s depends on itself",
                    slot->tensor->buf->name);
  slot->state = 1;
  const mfx_tensor *t = slot->tensor;
  for (int k = 0; k < t->n_inputs; k++) {
    interp_slot *in = interp_slot_of_tensor(c, t->inputs[k]);
    if (in == NULL) return mfx_fail(MFX_ERR_INVALID, "interp: a tensor list out of step");
    MFX_TRY(interp_evaluate(c, in));
  }
  MFX_TRY(interp_check_axes(c, t));
  MFX_TRY(interp_compute(c, slot));
  slot->state = 2;
  return MFX_OK;
}

static void interp_release(interp_ctx *c) {
  for (int i = 0; i < c->n_slots; i++)
    if (c->slots[i].owned) mfx_array_free(&c->slots[i].array);
  free(c->slots);
  free(c->vars);
  free(c->bound);
  if (c->scratch != NULL) mfx_arena_destroy(c->scratch);
}

static mfx_status interp_setup(interp_ctx *c, const mfx_schedule *s) {
  c->s = s;
  c->status = MFX_OK;
  c->n_vars = mfx_arena_var_count(s->arena);
  c->vars = calloc((size_t)c->n_vars + 1, sizeof *c->vars);
  c->bound = calloc((size_t)c->n_vars + 1, 1);
  c->scratch = mfx_arena_create();
  if (c->vars == NULL || c->bound == NULL || c->scratch == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "interp: out of memory");
  return interp_collect(c);
}

mfx_status mfx_interp_run(const mfx_schedule *s, const mfx_array *inputs, mfx_array *outputs) {
  if (s == NULL || s->arena == NULL || outputs == NULL || (s->n_inputs > 0 && inputs == NULL))
    return mfx_fail(MFX_ERR_INVALID, "interp: schedule, inputs and outputs must not be NULL");
  for (int i = 0; i < s->n_outputs; i++) memset(&outputs[i], 0, sizeof outputs[i]);
  interp_ctx c;
  memset(&c, 0, sizeof c);
  mfx_status st = interp_setup(&c, s);
  if (st == MFX_OK) st = interp_bind_inputs(&c, inputs);
  for (int i = 0; st == MFX_OK && i < s->n_outputs; i++)
    st = interp_evaluate(&c, interp_slot_of_tensor(&c, s->outputs[i]));
  for (int i = 0; st == MFX_OK && i < s->n_outputs; i++) { /* hand the outputs over */
    interp_slot *slot = interp_slot_of_tensor(&c, s->outputs[i]);
    outputs[i] = slot->array;
    slot->owned = 0;
  }
  interp_release(&c);
  if (st != MFX_OK)
    for (int i = 0; i < s->n_outputs; i++) mfx_array_free(&outputs[i]);
  return st;
}
