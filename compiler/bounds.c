/* Is a tensor expression safe to compile? Interval analysis of integer
 * expressions over the axes' extents (each axis v lies in [0, v->extent)):
 * a load's index must stay in [0, size) of its dimension, a divisor must
 * not contain zero. Runs on the TE, before scheduling, where every index is
 * a function of axes with known extents; splits and tiles come later and
 * only guard what is already in bounds. Also: how deep an expression is. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"

/* ---- depth ------------------------------------------------------------------------- */

static int deeper(const mfx_expr *e, int left) {
  if (!e) return 0;
  if (left <= 0) return 1;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++)
      if (deeper(e->u.load.idx[i], left - 1)) return 1;
    return 0;
  case MFX_EXPR_BINARY: return deeper(e->u.bin.a, left - 1) || deeper(e->u.bin.b, left - 1);
  case MFX_EXPR_UNARY: return deeper(e->u.un.a, left - 1);
  case MFX_EXPR_SELECT:
    return deeper(e->u.sel.cond, left - 1) || deeper(e->u.sel.a, left - 1) ||
           deeper(e->u.sel.b, left - 1);
  case MFX_EXPR_CAST: return deeper(e->u.cast.a, left - 1);
  case MFX_EXPR_REDUCE: return deeper(e->u.red.src, left - 1);
  default: return 0;
  }
}

int mfx_expr_deeper_than(const mfx_expr *e, int limit) { return deeper(e, limit); }

/* ---- ranges ------------------------------------------------------------------------ */

/* [lo, hi], both included; known = 0: nothing is known (floats, u64). */
typedef struct {
  int known;
  int64_t lo, hi;
} range;

static const range UNKNOWN = {0, 0, 0};

static range span(int64_t lo, int64_t hi) { return (range){1, lo, hi}; }

/* Every value of an integer type (u64 does not fit: unknown). */
static range type_range(mfx_dtype t) {
  switch (t) {
  case MFX_BOOL: return span(0, 1);
  case MFX_I8: return span(INT8_MIN, INT8_MAX);
  case MFX_I16: return span(INT16_MIN, INT16_MAX);
  case MFX_I32: return span(INT32_MIN, INT32_MAX);
  case MFX_I64: return span(INT64_MIN, INT64_MAX);
  case MFX_U8: return span(0, UINT8_MAX);
  case MFX_U32: return span(0, UINT32_MAX);
  default: return UNKNOWN;
  }
}

/* The exact result r of an operation on type t: r itself if every value
 * fits (nothing wrapped), else every value of t. */
static range fit(range r, mfx_dtype t) {
  range all = type_range(t);
  if (!r.known || !all.known || r.lo < all.lo || r.hi > all.hi) return all;
  return r;
}

static int contains(range r, int64_t v) { return !r.known || (r.lo <= v && v <= r.hi); }

/* The hull of four corner values, each computed by op; unknown on overflow. */
typedef int (*corner_op)(int64_t, int64_t, int64_t *);

static int add_op(int64_t x, int64_t y, int64_t *r) { return __builtin_add_overflow(x, y, r); }
static int sub_op(int64_t x, int64_t y, int64_t *r) { return __builtin_sub_overflow(x, y, r); }
static int mul_op(int64_t x, int64_t y, int64_t *r) { return __builtin_mul_overflow(x, y, r); }
static int div_op(int64_t x, int64_t y, int64_t *r) {
  if (y == 0 || (x == INT64_MIN && y == -1)) return 1;
  *r = x / y;
  return 0;
}

static range corners(range x, range y, corner_op op) {
  int64_t v[4];
  if (op(x.lo, y.lo, &v[0]) || op(x.lo, y.hi, &v[1]) || op(x.hi, y.lo, &v[2]) ||
      op(x.hi, y.hi, &v[3]))
    return UNKNOWN;
  range r = span(v[0], v[0]);
  for (int i = 1; i < 4; i++) {
    if (v[i] < r.lo) r.lo = v[i];
    if (v[i] > r.hi) r.hi = v[i];
  }
  return r;
}

/* Truncating remainder: the sign of x, smaller in size than the largest |y|. */
static range mod_range(range x, range y) {
  int64_t ylo = y.lo == INT64_MIN ? INT64_MAX : llabs(y.lo);
  int64_t yhi = y.hi == INT64_MIN ? INT64_MAX : llabs(y.hi);
  int64_t m = (ylo > yhi ? ylo : yhi) - 1, least = ylo < yhi ? ylo : yhi;
  if (!contains(y, 0) && x.lo >= 0 && x.hi < least) return x;
  return span(x.lo < 0 ? (x.lo > -m ? x.lo : -m) : 0, x.hi > 0 ? (x.hi < m ? x.hi : m) : 0);
}

/* Smallest 2^k - 1 at or above v (v >= 0). */
static int64_t ones_above(int64_t v) {
  int64_t m = 0;
  while (m < v) m = m * 2 + 1;
  return m;
}

static range bits_range(mfx_binary_op op, range x, range y) {
  if (x.lo < 0 || y.lo < 0) return UNKNOWN;
  if (op == MFX_AND) return span(0, x.hi < y.hi ? x.hi : y.hi);
  return span(0, ones_above(x.hi > y.hi ? x.hi : y.hi)); /* OR, XOR */
}

static range shift_range(mfx_binary_op op, range x, range y) {
  if (y.lo < 0 || y.hi > 62) return UNKNOWN;
  if (op == MFX_SHL) return corners(x, span((int64_t)1 << y.lo, (int64_t)1 << y.hi), mul_op);
  int64_t v[4] = {x.lo >> y.lo, x.lo >> y.hi, x.hi >> y.lo, x.hi >> y.hi};
  range r = span(v[0], v[0]);
  for (int i = 1; i < 4; i++) {
    if (v[i] < r.lo) r.lo = v[i];
    if (v[i] > r.hi) r.hi = v[i];
  }
  return r;
}

static range range_of(const mfx_expr *e);

static range binary_range(const mfx_expr *e) {
  mfx_binary_op op = e->u.bin.op;
  if (op >= MFX_LT) return span(0, 1); /* comparisons and logic give bool */
  range x = range_of(e->u.bin.a), y = range_of(e->u.bin.b);
  if (!x.known || !y.known) return UNKNOWN;
  switch (op) {
  case MFX_ADD: return corners(x, y, add_op);
  case MFX_SUB: return corners(x, y, sub_op);
  case MFX_MUL: return corners(x, y, mul_op);
  case MFX_DIV: return contains(y, 0) ? UNKNOWN : corners(x, y, div_op);
  case MFX_MOD: return contains(y, 0) ? UNKNOWN : mod_range(x, y);
  case MFX_MIN: return span(x.lo < y.lo ? x.lo : y.lo, x.hi < y.hi ? x.hi : y.hi);
  case MFX_MAX: return span(x.lo > y.lo ? x.lo : y.lo, x.hi > y.hi ? x.hi : y.hi);
  case MFX_AND: case MFX_OR: case MFX_XOR: return bits_range(op, x, y);
  case MFX_SHL: case MFX_SHR: return shift_range(op, x, y);
  default: return UNKNOWN;
  }
}

static range unary_range(const mfx_expr *e) {
  range x = range_of(e->u.un.a);
  switch (e->u.un.op) {
  case MFX_NEG:
    return x.known && x.lo != INT64_MIN ? span(-x.hi, -x.lo) : UNKNOWN;
  case MFX_ABS:
    if (!x.known || x.lo == INT64_MIN) return UNKNOWN;
    if (x.lo >= 0) return x;
    if (x.hi <= 0) return span(-x.hi, -x.lo);
    return span(0, -x.lo > x.hi ? -x.lo : x.hi);
  case MFX_NOT:
    if (e->type == MFX_BOOL) return span(0, 1);
    return x.known ? span(~x.hi, ~x.lo) : UNKNOWN;
  case MFX_POPCOUNT: return span(0, (int64_t)mfx_dtype_size(e->type) * 8);
  default: return UNKNOWN;
  }
}

static range select_range(const mfx_expr *e) {
  range x = range_of(e->u.sel.a), y = range_of(e->u.sel.b);
  if (!x.known || !y.known) return UNKNOWN;
  return span(x.lo < y.lo ? x.lo : y.lo, x.hi > y.hi ? x.hi : y.hi);
}

/* The values e can take, for every value of the axes it uses. */
static range range_of(const mfx_expr *e) {
  if (mfx_dtype_is_float(e->type)) return UNKNOWN;
  range r;
  switch (e->kind) {
  case MFX_EXPR_INT: r = span(e->u.i, e->u.i); break;
  case MFX_EXPR_VAR:
    r = e->u.var->extent > 0 ? span(0, e->u.var->extent - 1) : UNKNOWN;
    break;
  case MFX_EXPR_BINARY: r = binary_range(e); break;
  case MFX_EXPR_UNARY: r = unary_range(e); break;
  case MFX_EXPR_SELECT: r = select_range(e); break;
  case MFX_EXPR_CAST: r = range_of(e->u.cast.a); break;
  default: r = UNKNOWN; break; /* loads: any value of their type */
  }
  if (e->type == MFX_U64 && r.known && r.lo >= 0) return r; /* fits, did not wrap */
  return fit(r, e->type);
}

/* ---- messages ------------------------------------------------------------------- */

/* e as mfx_print_te writes it, cut to fit `out`. */
static void expr_text(const mfx_expr *e, char *out, size_t size) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (!f) {
    snprintf(out, size, "?");
    return;
  }
  mfx_print_expr(f, e);
  fclose(f);
  snprintf(out, size, "%s%s", buf ? buf : "?", n + 1 > size ? "..." : "");
  free(buf);
}

/* The axes e uses, "i < 16, k < 7", for saying where a range comes from. */
static void axes_text(const mfx_expr *e, char *out, size_t size, size_t *used) {
  if (!e) return;
  switch (e->kind) {
  case MFX_EXPR_VAR: {
    char item[96];
    snprintf(item, sizeof item, "%s < %lld", e->u.var->name, (long long)e->u.var->extent);
    if (*used && strstr(out, item)) return;
    int w = snprintf(out + *used, size - *used, "%s%s", *used ? ", " : "", item);
    if (w > 0 && (size_t)w < size - *used) *used += (size_t)w;
    return;
  }
  case MFX_EXPR_BINARY: axes_text(e->u.bin.a, out, size, used); axes_text(e->u.bin.b, out, size, used); return;
  case MFX_EXPR_UNARY: axes_text(e->u.un.a, out, size, used); return;
  case MFX_EXPR_CAST: axes_text(e->u.cast.a, out, size, used); return;
  case MFX_EXPR_SELECT:
    axes_text(e->u.sel.a, out, size, used);
    axes_text(e->u.sel.b, out, size, used);
    return;
  default: return;
  }
}

/* ---- the checks --------------------------------------------------------------------- */

static int reads_data(const mfx_expr *e) {
  if (!e) return 0;
  switch (e->kind) {
  case MFX_EXPR_LOAD: return 1;
  case MFX_EXPR_BINARY: return reads_data(e->u.bin.a) || reads_data(e->u.bin.b);
  case MFX_EXPR_UNARY: return reads_data(e->u.un.a);
  case MFX_EXPR_CAST: return reads_data(e->u.cast.a);
  case MFX_EXPR_SELECT:
    return reads_data(e->u.sel.cond) || reads_data(e->u.sel.a) || reads_data(e->u.sel.b);
  default: return 0;
  }
}

static mfx_status index_error(const mfx_expr *load, int d, range r) {
  const mfx_buffer *b = load->u.load.buf;
  char text[160], axes[200] = "";
  size_t used = 0;
  expr_text(load->u.load.idx[d], text, sizeof text);
  axes_text(load->u.load.idx[d], axes, sizeof axes, &used);
  if (!r.known)
    return mfx_fail(MFX_ERR_INVALID,
                    "load %s: index %d, %s, cannot be bounded (for %s); dimension %d of %s "
                    "has size %lld", b->name, d, text, used ? axes : "no axes", d, b->name,
                    (long long)b->shape[d]);
  return mfx_fail(MFX_ERR_INVALID,
                  "load %s: index %d, %s, ranges over [%lld, %lld] for %s, outside dimension "
                  "%d of %s, [0, %lld) (the load would read out of bounds)", b->name, d, text,
                  (long long)r.lo, (long long)r.hi, used ? axes : "no axes", d, b->name,
                  (long long)b->shape[d]);
}

mfx_status mfx_check_load(const mfx_expr *load) {
  if (!load || load->kind != MFX_EXPR_LOAD) return MFX_OK;
  const mfx_buffer *b = load->u.load.buf;
  for (int d = 0; d < load->u.load.n && d < b->ndim; d++) {
    if (reads_data(load->u.load.idx[d])) continue; /* data-dependent: checked at run time */
    range r = range_of(load->u.load.idx[d]);
    if (!r.known || r.lo < 0 || r.hi >= b->shape[d]) return index_error(load, d, r);
  }
  return MFX_OK;
}

mfx_status mfx_check_division(const mfx_expr *e) {
  if (!e || e->kind != MFX_EXPR_BINARY || mfx_dtype_is_float(e->type)) return MFX_OK;
  mfx_binary_op op = e->u.bin.op;
  if (op != MFX_DIV && op != MFX_MOD) return MFX_OK;
  const char *what = op == MFX_DIV ? "division" : "modulo";
  const mfx_expr *y = e->u.bin.b;
  char text[160];
  expr_text(y, text, sizeof text);
  if (y->kind == MFX_EXPR_INT && y->u.i == 0)
    return mfx_fail(MFX_ERR_INVALID, "integer %s by the constant 0", what);
  range ry = range_of(y);
  if (contains(ry, 0)) {
    char why[512] = "its range is unknown";
    char where[200] = "";
    size_t used = 0;
    axes_text(y, where, sizeof where, &used);
    if (ry.known)
      snprintf(why, sizeof why, "it ranges over [%lld, %lld]%s%s", (long long)ry.lo,
               (long long)ry.hi, used ? " for " : "", where);
    else if (reads_data(y))
      snprintf(why, sizeof why, "it reads data");
    return mfx_fail(MFX_ERR_INVALID,
                    "integer %s by %s, which can be 0 (%s); a divisor must be provably "
                    "nonzero (a nonzero constant, or an expression of axes that excludes 0)",
                    what, text, why);
  }
  range all = type_range(e->type);
  if (mfx_dtype_is_signed(e->type) && all.known && contains(ry, -1) &&
      contains(range_of(e->u.bin.a), all.lo))
    return mfx_fail(MFX_ERR_INVALID,
                    "integer %s by %s, which can be -1 while the dividend can be the "
                    "smallest %s (the result overflows)", what, text, mfx_dtype_name(e->type));
  return MFX_OK;
}

mfx_status mfx_check_expr_safe(const mfx_expr *e) {
  if (!e) return MFX_OK;
  mfx_status rc = MFX_OK;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    for (int i = 0; rc == MFX_OK && i < e->u.load.n; i++) rc = mfx_check_expr_safe(e->u.load.idx[i]);
    return rc == MFX_OK ? mfx_check_load(e) : rc;
  case MFX_EXPR_BINARY:
    rc = mfx_check_expr_safe(e->u.bin.a);
    if (rc == MFX_OK) rc = mfx_check_expr_safe(e->u.bin.b);
    return rc == MFX_OK ? mfx_check_division(e) : rc;
  case MFX_EXPR_UNARY: return mfx_check_expr_safe(e->u.un.a);
  case MFX_EXPR_CAST: return mfx_check_expr_safe(e->u.cast.a);
  case MFX_EXPR_SELECT:
    rc = mfx_check_expr_safe(e->u.sel.cond);
    if (rc == MFX_OK) rc = mfx_check_expr_safe(e->u.sel.a);
    return rc == MFX_OK ? mfx_check_expr_safe(e->u.sel.b) : rc;
  case MFX_EXPR_REDUCE: return mfx_check_expr_safe(e->u.red.src);
  default: return MFX_OK;
  }
}
