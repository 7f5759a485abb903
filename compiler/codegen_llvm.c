/* Loop IR -> LLVM IR: the part every target shares.
 *
 * A target (target_cpu.c) makes the kernel's functions and calls
 * cg_emit_stmt on the body. Statements and expressions are emitted here,
 * in one of three modes:
 *   scalar  every value is a scalar;
 *   vector  inside a VECTORIZED loop: values that depend on its variable are
 *           <lanes x T> vectors, the others stay scalar and are broadcast
 *           when combined with a vector;
 *   lane    (cg->lane >= 0) scalar evaluation of one lane of vector code:
 *           vector-valued variables read their element `lane`.
 * A VECTORIZED loop becomes vector code only when an analysis shows that
 * running all lanes at once gives the serial result; otherwise it is a
 * serial loop, which is always correct. */
#include "codegen_internal.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CG_MAX_LANES 64

mfx_status cg_fail(const mfx_cg *cg, const char *fmt, ...) {
  char text[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  return mfx_fail(MFX_ERR_CODEGEN, "codegen %s: %s", cg->kernel, text);
}

mfx_status cg_fail_llvm(mfx_status status, LLVMErrorRef err, const char *what) {
  char *message = LLVMGetErrorMessage(err);
  mfx_fail(status, "%s: %s", what, message != NULL ? message : "(no message)");
  LLVMDisposeErrorMessage(message);
  return status;
}

static const char *cg_var_name(const mfx_var *v) {
  return v != NULL && v->name != NULL ? v->name : "?";
}

static const char *cg_buffer_name(const mfx_buffer *b) {
  return b != NULL && b->name != NULL ? b->name : "?";
}

/* ---- types ------------------------------------------------------------------ */

LLVMTypeRef cg_register_type(mfx_cg *cg, mfx_dtype t) {
  switch (t) {
  case MFX_BOOL: return LLVMInt1TypeInContext(cg->ctx);
  case MFX_I8:
  case MFX_U8: return LLVMInt8TypeInContext(cg->ctx);
  case MFX_I16: return LLVMInt16TypeInContext(cg->ctx);
  case MFX_I32:
  case MFX_U32: return LLVMInt32TypeInContext(cg->ctx);
  case MFX_I64:
  case MFX_U64: return LLVMInt64TypeInContext(cg->ctx);
  case MFX_F32: return LLVMFloatTypeInContext(cg->ctx);
  case MFX_DTYPE_COUNT: break;
  }
  return NULL;
}

LLVMTypeRef cg_memory_type(mfx_cg *cg, mfx_dtype t) {
  return t == MFX_BOOL ? LLVMInt8TypeInContext(cg->ctx) : cg_register_type(cg, t);
}

LLVMTypeRef cg_i64(mfx_cg *cg) { return LLVMInt64TypeInContext(cg->ctx); }

LLVMTypeRef cg_i8_ptr(mfx_cg *cg) { return LLVMPointerType(LLVMInt8TypeInContext(cg->ctx), 0); }

static LLVMTypeRef cg_i32(mfx_cg *cg) { return LLVMInt32TypeInContext(cg->ctx); }

static int cg_is_vector(LLVMValueRef v) {
  return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind;
}

/* elem, or <lanes x elem> when like is a vector. */
static LLVMTypeRef cg_shaped_like(LLVMTypeRef elem, LLVMValueRef like) {
  LLVMTypeRef t = LLVMTypeOf(like);
  if (LLVMGetTypeKind(t) != LLVMVectorTypeKind) return elem;
  return LLVMVectorType(elem, LLVMGetVectorSize(t));
}

mfx_status cg_buffer_numel(mfx_cg *cg, const mfx_buffer *buf, int64_t *numel) {
  int64_t n = 1;
  for (int d = 0; d < buf->ndim; d++) {
    if (buf->shape[d] <= 0)
      return cg_fail(cg, "buffer %s: dimension %d is %lld, expected a positive size",
                     cg_buffer_name(buf), d, (long long)buf->shape[d]);
    if (__builtin_mul_overflow(n, buf->shape[d], &n))
      return cg_fail(cg, "buffer %s: element count overflows 64 bits", cg_buffer_name(buf));
  }
  int64_t bytes;
  if (__builtin_mul_overflow(n, (int64_t)mfx_dtype_size(buf->dtype), &bytes))
    return cg_fail(cg, "buffer %s: byte size overflows 64 bits", cg_buffer_name(buf));
  *numel = n;
  return MFX_OK;
}

/* ---- scope ------------------------------------------------------------------ */

static mfx_status cg_push(mfx_cg *cg, mfx_cg_binding b) {
  if (cg->n_scope == cg->cap_scope) {
    int cap = cg->cap_scope > 0 ? cg->cap_scope * 2 : 32;
    mfx_cg_binding *grown = realloc(cg->scope, (size_t)cap * sizeof *grown);
    if (grown == NULL)
      return mfx_fail(MFX_ERR_NOMEM, "codegen %s: scope of %d names", cg->kernel, cap);
    cg->scope = grown;
    cg->cap_scope = cap;
  }
  cg->scope[cg->n_scope++] = b;
  return MFX_OK;
}

mfx_status cg_bind_var(mfx_cg *cg, const mfx_var *var, mfx_dtype t, LLVMValueRef value,
                       mfx_cg_linear lin) {
  return cg_push(cg, (mfx_cg_binding){var, 0, t, value, lin});
}

mfx_status cg_bind_buffer(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base) {
  return cg_push(cg, (mfx_cg_binding){buf, 1, buf->dtype, base, {0, 1, 0}});
}

mfx_status cg_rebind(mfx_cg *cg, const mfx_cg_binding *b, LLVMValueRef value) {
  mfx_cg_binding copy = *b;
  copy.value = value;
  return cg_push(cg, copy);
}

int cg_scope_mark(const mfx_cg *cg) { return cg->n_scope; }

void cg_scope_pop(mfx_cg *cg, int mark) { cg->n_scope = mark; }

const mfx_cg_binding *cg_lookup(const mfx_cg *cg, const void *key) {
  for (int i = cg->n_scope - 1; i >= cg->scope_floor; i--)
    if (cg->scope[i].key == key) return &cg->scope[i];
  return NULL;
}

static mfx_cg_linear cg_lin_const(void) { return (mfx_cg_linear){0, 1, 0}; }

/* Depends (or not) on the vectorized variable in a way we do not model. */
static mfx_cg_linear cg_lin_opaque(int dep) { return (mfx_cg_linear){dep, !dep, 0}; }

/* ---- how an expression depends on the vectorized variable -------------------- */


static mfx_cg_linear cg_lin_scaled(mfx_cg_linear a, int64_t factor) {
  int64_t c;
  if (__builtin_mul_overflow(a.coeff, factor, &c)) return cg_lin_opaque(1);
  return (mfx_cg_linear){1, 1, c};
}

static mfx_cg_linear cg_linear_binary(const mfx_cg *cg, const mfx_expr *e) {
  const mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  mfx_cg_linear a = cg_linear(cg, x), b = cg_linear(cg, y);
  int dep = a.dep || b.dep;
  if (!dep) return cg_lin_const();
  if (e->type != MFX_I64 || !a.affine || !b.affine) return cg_lin_opaque(dep);
  int64_t c;
  switch (e->u.bin.op) {
  case MFX_ADD:
    if (__builtin_add_overflow(a.coeff, b.coeff, &c)) return cg_lin_opaque(1);
    return (mfx_cg_linear){1, 1, c};
  case MFX_SUB:
    if (__builtin_sub_overflow(a.coeff, b.coeff, &c)) return cg_lin_opaque(1);
    return (mfx_cg_linear){1, 1, c};
  case MFX_MUL:
    if (!a.dep && x->kind == MFX_EXPR_INT) return cg_lin_scaled(b, x->u.i);
    if (!b.dep && y->kind == MFX_EXPR_INT) return cg_lin_scaled(a, y->u.i);
    return cg_lin_opaque(1);
  case MFX_SHL:
    if (!b.dep && y->kind == MFX_EXPR_INT && y->u.i >= 0 && y->u.i < 62)
      return cg_lin_scaled(a, (int64_t)1 << y->u.i);
    return cg_lin_opaque(1);
  default: return cg_lin_opaque(1);
  }
}

mfx_cg_linear cg_linear(const mfx_cg *cg, const mfx_expr *e) {
  if (cg->vec_var == NULL || e == NULL) return cg_lin_const();
  switch (e->kind) {
  case MFX_EXPR_INT:
  case MFX_EXPR_FLOAT: return cg_lin_const();
  case MFX_EXPR_VAR: {
    const mfx_cg_binding *b = cg_lookup(cg, e->u.var);
    return b != NULL ? b->lin : cg_lin_const();
  }
  case MFX_EXPR_LOAD: {
    int dep = 0;
    for (int i = 0; i < e->u.load.n; i++) dep |= cg_linear(cg, e->u.load.idx[i]).dep;
    return cg_lin_opaque(dep);
  }
  case MFX_EXPR_BINARY: return cg_linear_binary(cg, e);
  case MFX_EXPR_UNARY: {
    mfx_cg_linear a = cg_linear(cg, e->u.un.a);
    if (e->u.un.op == MFX_NEG && a.dep && a.affine && e->type == MFX_I64)
      return cg_lin_scaled(a, -1);
    return cg_lin_opaque(a.dep);
  }
  case MFX_EXPR_SELECT:
    return cg_lin_opaque(cg_linear(cg, e->u.sel.cond).dep || cg_linear(cg, e->u.sel.a).dep ||
                         cg_linear(cg, e->u.sel.b).dep);
  case MFX_EXPR_CAST: {
    mfx_cg_linear a = cg_linear(cg, e->u.cast.a);
    if (e->type == MFX_I64 && e->u.cast.a != NULL && e->u.cast.a->type == MFX_I64) return a;
    return cg_lin_opaque(a.dep);
  }
  case MFX_EXPR_REDUCE: return cg_lin_opaque(1);
  }
  return cg_lin_opaque(1);
}

static int cg_vector_mode(const mfx_cg *cg) { return cg->vec_var != NULL && cg->lane < 0; }

/* ---- values ----------------------------------------------------------------- */

static LLVMValueRef cg_splat(mfx_cg *cg, LLVMValueRef v) {
  if (cg_is_vector(v)) return v;
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(v), (unsigned)cg->lanes);
  LLVMValueRef first =
      LLVMBuildInsertElement(cg->b, LLVMGetUndef(vt), v, LLVMConstInt(cg_i32(cg), 0, 0), "");
  LLVMValueRef mask = LLVMConstNull(LLVMVectorType(cg_i32(cg), (unsigned)cg->lanes));
  return LLVMBuildShuffleVector(cg->b, first, LLVMGetUndef(vt), mask, "splat");
}

/* Give a and b the same shape: broadcast a scalar next to a vector. */
static void cg_match(mfx_cg *cg, LLVMValueRef *a, LLVMValueRef *b) {
  if (cg_is_vector(*a) && !cg_is_vector(*b)) *b = cg_splat(cg, *b);
  if (cg_is_vector(*b) && !cg_is_vector(*a)) *a = cg_splat(cg, *a);
}

static LLVMValueRef cg_lane_constant(mfx_cg *cg, int lane) {
  return LLVMConstInt(cg_i32(cg), (unsigned long long)lane, 0);
}

/* <0, 1, ..., lanes-1> as i64. */
static LLVMValueRef cg_lane_ids(mfx_cg *cg) {
  LLVMValueRef ids[CG_MAX_LANES];
  for (int i = 0; i < cg->lanes; i++) ids[i] = LLVMConstInt(cg_i64(cg), (unsigned long long)i, 0);
  return LLVMConstVector(ids, (unsigned)cg->lanes);
}

/* C conversion of v (scalar or vector) from one dtype to another. */
static LLVMValueRef cg_convert(mfx_cg *cg, LLVMValueRef v, mfx_dtype from, mfx_dtype to) {
  if (from == to) return v;
  LLVMTypeRef dst = cg_shaped_like(cg_register_type(cg, to), v);
  int float_from = mfx_dtype_is_float(from), float_to = mfx_dtype_is_float(to);
  if (to == MFX_BOOL)
    return float_from ? LLVMBuildFCmp(cg->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                      : LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
  if (from == MFX_BOOL)
    return float_to ? LLVMBuildUIToFP(cg->b, v, dst, "") : LLVMBuildZExt(cg->b, v, dst, "");
  if (float_from && float_to) return v;
  if (float_from)
    return mfx_dtype_is_signed(to) ? LLVMBuildFPToSI(cg->b, v, dst, "")
                                   : LLVMBuildFPToUI(cg->b, v, dst, "");
  if (float_to)
    return mfx_dtype_is_signed(from) ? LLVMBuildSIToFP(cg->b, v, dst, "")
                                     : LLVMBuildUIToFP(cg->b, v, dst, "");
  size_t from_size = mfx_dtype_size(from), to_size = mfx_dtype_size(to);
  if (to_size > from_size)
    return mfx_dtype_is_signed(from) ? LLVMBuildSExt(cg->b, v, dst, "")
                                     : LLVMBuildZExt(cg->b, v, dst, "");
  if (to_size < from_size) return LLVMBuildTrunc(cg->b, v, dst, "");
  return v;
}

static LLVMValueRef cg_to_memory(mfx_cg *cg, LLVMValueRef v, mfx_dtype t) {
  if (t != MFX_BOOL) return v;
  return LLVMBuildZExt(cg->b, v, cg_shaped_like(LLVMInt8TypeInContext(cg->ctx), v), "");
}

static LLVMValueRef cg_from_memory(mfx_cg *cg, LLVMValueRef v, mfx_dtype t) {
  if (t != MFX_BOOL) return v;
  return LLVMBuildICmp(cg->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
}

/* A call of an intrinsic overloaded on the type of its first argument. */
static LLVMValueRef cg_intrinsic(mfx_cg *cg, const char *name, LLVMValueRef *args, int n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMTypeRef overload = LLVMTypeOf(args[0]);
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, &overload, 1);
  LLVMTypeRef type = LLVMIntrinsicGetType(cg->ctx, id, &overload, 1);
  return LLVMBuildCall2(cg->b, type, fn, args, (unsigned)n, "");
}

/* ---- expressions --------------------------------------------------------------- */

static mfx_status cg_expr(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out);

static mfx_status cg_expr_at_lane(mfx_cg *cg, const mfx_expr *e, int lane, LLVMValueRef *out) {
  int saved = cg->lane;
  cg->lane = lane;
  mfx_status st = cg_expr(cg, e, out);
  cg->lane = saved;
  return st;
}

static mfx_status cg_constant(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  LLVMTypeRef t = cg_register_type(cg, e->type);
  if (mfx_dtype_is_float(e->type)) {
    double v = e->kind == MFX_EXPR_INT ? (double)e->u.i : e->u.f;
    *out = LLVMConstReal(t, v);
  } else if (e->type == MFX_BOOL) {
    int truth = e->kind == MFX_EXPR_INT ? e->u.i != 0 : e->u.f != 0.0;
    *out = LLVMConstInt(t, (unsigned long long)truth, 0);
  } else {
    int64_t v = e->kind == MFX_EXPR_INT ? e->u.i : (int64_t)e->u.f;
    *out = LLVMConstInt(t, (unsigned long long)v, 1);
  }
  return MFX_OK;
}

static mfx_status cg_expr_var(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  const mfx_cg_binding *b = cg_lookup(cg, e->u.var);
  if (b == NULL || b->value == NULL || b->is_buffer)
    return cg_fail(cg, "variable %s is used outside the loop or let that binds it",
                   cg_var_name(e->u.var));
  if (b->dtype != e->type)
    return cg_fail(cg, "variable %s holds %s but is used as %s", cg_var_name(e->u.var),
                   mfx_dtype_name(b->dtype), mfx_dtype_name(e->type));
  *out = b->value;
  if (cg->lane >= 0 && cg_is_vector(*out))
    *out = LLVMBuildExtractElement(cg->b, *out, cg_lane_constant(cg, cg->lane), "");
  return MFX_OK;
}

/* The buffer's base pointer, checking that its access has one index. */
static mfx_status cg_buffer_access(mfx_cg *cg, const mfx_buffer *buf, int n, mfx_expr *const *idx,
                                   LLVMValueRef *base) {
  if (buf == NULL) return cg_fail(cg, "load or store without a buffer");
  if (n != 1 || idx == NULL || idx[0] == NULL)
    return cg_fail(cg,
                   "access to %s has %d indices; code generation expects one flattened "
                   "index (run mfx_flatten_stmt)",
                   cg_buffer_name(buf), n);
  const mfx_cg_binding *b = cg_lookup(cg, buf);
  if (b == NULL || !b->is_buffer || b->value == NULL)
    return cg_fail(cg, "buffer %s is neither an argument nor allocated around this access",
                   cg_buffer_name(buf));
  *base = b->value;
  return MFX_OK;
}

/* The index as i64 (scalar, or a vector in vector mode). */
mfx_status cg_index(mfx_cg *cg, const mfx_expr *idx, LLVMValueRef *out) {
  if (mfx_dtype_is_float(idx->type))
    return cg_fail(cg, "index of type %s, expected an integer", mfx_dtype_name(idx->type));
  mfx_status st = cg_expr(cg, idx, out);
  if (st == MFX_OK) *out = cg_convert(cg, *out, idx->type, MFX_I64);
  return st;
}

static LLVMValueRef cg_element_ptr(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                   LLVMValueRef index) {
  return LLVMBuildInBoundsGEP2(cg->b, cg_memory_type(cg, buf->dtype), base, &index, 1, "");
}

/* Pointer to <lanes x T> at the address of lane 0. */
static mfx_status cg_contiguous_ptr(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                    const mfx_expr *idx, LLVMValueRef *out) {
  LLVMValueRef first;
  mfx_status st = cg_expr_at_lane(cg, idx, 0, &first);
  if (st != MFX_OK) return st;
  first = cg_convert(cg, first, idx->type, MFX_I64);
  LLVMValueRef p = cg_element_ptr(cg, buf, base, first);
  LLVMTypeRef vt = LLVMVectorType(cg_memory_type(cg, buf->dtype), (unsigned)cg->lanes);
  *out = LLVMBuildBitCast(cg->b, p, LLVMPointerType(vt, LLVMGetPointerAddressSpace(LLVMTypeOf(p))),
                          "");
  return MFX_OK;
}

static mfx_status cg_load_contiguous(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                     const mfx_expr *idx, LLVMValueRef *out) {
  LLVMValueRef vp;
  mfx_status st = cg_contiguous_ptr(cg, buf, base, idx, &vp);
  if (st != MFX_OK) return st;
  LLVMTypeRef vt = LLVMVectorType(cg_memory_type(cg, buf->dtype), (unsigned)cg->lanes);
  LLVMValueRef v = LLVMBuildLoad2(cg->b, vt, vp, "");
  LLVMSetAlignment(v, (unsigned)mfx_dtype_size(buf->dtype));
  *out = cg_from_memory(cg, v, buf->dtype);
  return MFX_OK;
}

static mfx_status cg_load_gather(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                 const mfx_expr *idx, LLVMValueRef *out) {
  LLVMValueRef index;
  mfx_status st = cg_index(cg, idx, &index);
  if (st != MFX_OK) return st;
  index = cg_splat(cg, index);
  LLVMTypeRef mt = cg_memory_type(cg, buf->dtype);
  LLVMValueRef v = LLVMGetUndef(LLVMVectorType(mt, (unsigned)cg->lanes));
  for (int lane = 0; lane < cg->lanes; lane++) {
    LLVMValueRef i = LLVMBuildExtractElement(cg->b, index, cg_lane_constant(cg, lane), "");
    LLVMValueRef x = LLVMBuildLoad2(cg->b, mt, cg_element_ptr(cg, buf, base, i), "");
    v = LLVMBuildInsertElement(cg->b, v, x, cg_lane_constant(cg, lane), "");
  }
  *out = cg_from_memory(cg, v, buf->dtype);
  return MFX_OK;
}

static mfx_status cg_expr_load(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  const mfx_buffer *buf = e->u.load.buf;
  LLVMValueRef base;
  mfx_status st = cg_buffer_access(cg, buf, e->u.load.n, e->u.load.idx, &base);
  if (st != MFX_OK) return st;
  const mfx_expr *idx = e->u.load.idx[0];
  if (cg_vector_mode(cg)) {
    mfx_cg_linear lin = cg_linear(cg, idx);
    if (lin.dep && lin.affine && lin.coeff == 1) return cg_load_contiguous(cg, buf, base, idx, out);
    if (lin.dep) return cg_load_gather(cg, buf, base, idx, out);
  }
  LLVMValueRef index;
  st = cg_index(cg, idx, &index);
  if (st != MFX_OK) return st;
  LLVMValueRef p = cg_element_ptr(cg, buf, base, index);
  *out =
      cg_from_memory(cg, LLVMBuildLoad2(cg->b, cg_memory_type(cg, buf->dtype), p, ""), buf->dtype);
  return MFX_OK;
}

static LLVMValueRef cg_compare(mfx_cg *cg, mfx_binary_op op, mfx_dtype t, LLVMValueRef a,
                               LLVMValueRef b) {
  static const LLVMRealPredicate real[] = {LLVMRealOLT, LLVMRealOLE, LLVMRealOGT,
                                           LLVMRealOGE, LLVMRealOEQ, LLVMRealUNE};
  static const LLVMIntPredicate sint[] = {LLVMIntSLT, LLVMIntSLE, LLVMIntSGT,
                                          LLVMIntSGE, LLVMIntEQ,  LLVMIntNE};
  static const LLVMIntPredicate uint[] = {LLVMIntULT, LLVMIntULE, LLVMIntUGT,
                                          LLVMIntUGE, LLVMIntEQ,  LLVMIntNE};
  int k = (int)op - (int)MFX_LT;
  if (mfx_dtype_is_float(t)) return LLVMBuildFCmp(cg->b, real[k], a, b, "");
  return LLVMBuildICmp(cg->b, mfx_dtype_is_signed(t) ? sint[k] : uint[k], a, b, "");
}

static LLVMValueRef cg_min_max(mfx_cg *cg, mfx_binary_op op, mfx_dtype t, LLVMValueRef a,
                               LLVMValueRef b) {
  LLVMValueRef args[2] = {a, b};
  int is_min = op == MFX_MIN;
  if (mfx_dtype_is_float(t))
    return cg_intrinsic(cg, is_min ? "llvm.minnum" : "llvm.maxnum", args, 2);
  if (mfx_dtype_is_signed(t)) return cg_intrinsic(cg, is_min ? "llvm.smin" : "llvm.smax", args, 2);
  return cg_intrinsic(cg, is_min ? "llvm.umin" : "llvm.umax", args, 2);
}

typedef LLVMValueRef (*cg_build_binary)(LLVMBuilderRef, LLVMValueRef, LLVMValueRef, const char *);

/* Arithmetic by operand class. Integer add/sub/mul wrap around (the IR's
 * semantics: shift_linear accumulates in 32 bits modulo 2^32); only i64,
 * the index type, is nsw, which helps LLVM reason about addresses. */
static const struct {
  cg_build_binary f32, sint, uint;
} cg_arithmetic[] = {
    [MFX_ADD] = {LLVMBuildFAdd, LLVMBuildNSWAdd, LLVMBuildAdd},
    [MFX_SUB] = {LLVMBuildFSub, LLVMBuildNSWSub, LLVMBuildSub},
    [MFX_MUL] = {LLVMBuildFMul, LLVMBuildNSWMul, LLVMBuildMul},
    [MFX_DIV] = {LLVMBuildFDiv, LLVMBuildSDiv, LLVMBuildUDiv},
    [MFX_MOD] = {LLVMBuildFRem, LLVMBuildSRem, LLVMBuildURem},
    [MFX_AND] = {NULL, LLVMBuildAnd, LLVMBuildAnd},
    [MFX_OR] = {NULL, LLVMBuildOr, LLVMBuildOr},
    [MFX_XOR] = {NULL, LLVMBuildXor, LLVMBuildXor},
    [MFX_SHL] = {NULL, LLVMBuildShl, LLVMBuildShl},
    [MFX_SHR] = {NULL, LLVMBuildAShr, LLVMBuildLShr},
};

/* op on two values of dtype t (same shape). */
static mfx_status cg_binary_value(mfx_cg *cg, mfx_binary_op op, mfx_dtype t, LLVMValueRef a,
                                  LLVMValueRef b, LLVMValueRef *out) {
  const char *name = mfx_binary_op_name(op);
  if (op == MFX_MIN || op == MFX_MAX) {
    *out = cg_min_max(cg, op, t, a, b);
  } else if (op >= MFX_LT && op <= MFX_NE) {
    *out = cg_compare(cg, op, t, a, b);
  } else if (op == MFX_LAND || op == MFX_LOR) {
    if (t != MFX_BOOL)
      return cg_fail(cg, "operator %s on %s operands, expected bool", name, mfx_dtype_name(t));
    *out = op == MFX_LAND ? LLVMBuildAnd(cg->b, a, b, "") : LLVMBuildOr(cg->b, a, b, "");
  } else if ((int)op >= 0 && op <= MFX_SHR) {
    int wraps = op <= MFX_MUL && t != MFX_I64; /* the plain (wrapping) form */
    cg_build_binary build = mfx_dtype_is_float(t)                    ? cg_arithmetic[op].f32
                            : mfx_dtype_is_signed(t) && !wraps ? cg_arithmetic[op].sint
                                                               : cg_arithmetic[op].uint;
    if (build == NULL)
      return cg_fail(cg, "operator %s on f32 operands, expected integers or bool", name);
    *out = build(cg->b, a, b, "");
  } else {
    return cg_fail(cg, "unknown binary operator %d", (int)op);
  }
  return MFX_OK;
}

static int cg_is_f32_mul(const mfx_expr *e) {
  return e != NULL && e->kind == MFX_EXPR_BINARY && e->u.bin.op == MFX_MUL && e->type == MFX_F32 &&
         e->u.bin.a != NULL && e->u.bin.b != NULL;
}

/* x*y + z as llvm.fmuladd: contraction as C compilers do by default
 * (FP_CONTRACT on), so the backend can use FMA. */
static mfx_status cg_fmuladd(mfx_cg *cg, const mfx_expr *mul, const mfx_expr *addend,
                             LLVMValueRef *out) {
  LLVMValueRef v[3];
  mfx_status st = cg_expr(cg, mul->u.bin.a, &v[0]);
  if (st == MFX_OK) st = cg_expr(cg, mul->u.bin.b, &v[1]);
  if (st == MFX_OK) st = cg_expr(cg, addend, &v[2]);
  if (st != MFX_OK) return st;
  if (cg_is_vector(v[0]) || cg_is_vector(v[1]) || cg_is_vector(v[2]))
    for (int i = 0; i < 3; i++) v[i] = cg_splat(cg, v[i]);
  *out = cg_intrinsic(cg, "llvm.fmuladd", v, 3);
  return MFX_OK;
}

static int cg_op_gives_bool(mfx_binary_op op) {
  return (op >= MFX_LT && op <= MFX_NE) || op == MFX_LAND || op == MFX_LOR;
}

static mfx_status cg_expr_binary(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  const mfx_expr *x = e->u.bin.a, *y = e->u.bin.b;
  mfx_binary_op op = e->u.bin.op;
  if (x == NULL || y == NULL)
    return cg_fail(cg, "operator %s misses an operand", mfx_binary_op_name(op));
  if (x->type != y->type)
    return cg_fail(cg, "operator %s on %s and %s, expected operands of one type",
                   mfx_binary_op_name(op), mfx_dtype_name(x->type), mfx_dtype_name(y->type));
  mfx_dtype natural = cg_op_gives_bool(op) ? MFX_BOOL : x->type;
  mfx_status st;
  if (op == MFX_ADD && cg_is_f32_mul(x)) {
    st = cg_fmuladd(cg, x, y, out);
  } else if (op == MFX_ADD && cg_is_f32_mul(y)) {
    st = cg_fmuladd(cg, y, x, out);
  } else {
    LLVMValueRef a, b;
    st = cg_expr(cg, x, &a);
    if (st == MFX_OK) st = cg_expr(cg, y, &b);
    if (st != MFX_OK) return st;
    cg_match(cg, &a, &b);
    st = cg_binary_value(cg, op, x->type, a, b, out);
  }
  if (st == MFX_OK) *out = cg_convert(cg, *out, natural, e->type);
  return st;
}

/* 1.0 of a float type or a vector of them. */
static LLVMValueRef cg_const_one(LLVMTypeRef type) {
  if (LLVMGetTypeKind(type) != LLVMVectorTypeKind) return LLVMConstReal(type, 1.0);
  LLVMValueRef lanes[64];
  unsigned n = LLVMGetVectorSize(type);
  for (unsigned i = 0; i < n && i < 64; i++) lanes[i] = LLVMConstReal(LLVMGetElementType(type), 1.0);
  return LLVMConstVector(lanes, n < 64 ? n : 64);
}

static mfx_status cg_unary_value(mfx_cg *cg, mfx_unary_op op, mfx_dtype t, LLVMValueRef a,
                                 LLVMValueRef *out) {
  int fl = mfx_dtype_is_float(t);
  switch (op) {
  case MFX_NEG: *out = fl ? LLVMBuildFNeg(cg->b, a, "") : LLVMBuildNeg(cg->b, a, ""); return MFX_OK;
  case MFX_ABS:
    if (fl) {
      *out = cg_intrinsic(cg, "llvm.fabs", &a, 1);
    } else if (mfx_dtype_is_signed(t)) {
      LLVMValueRef negative = LLVMBuildICmp(cg->b, LLVMIntSLT, a, LLVMConstNull(LLVMTypeOf(a)), "");
      *out = LLVMBuildSelect(cg->b, negative, LLVMBuildNeg(cg->b, a, ""), a, "");
    } else {
      *out = a;
    }
    return MFX_OK;
  case MFX_NOT:
  case MFX_POPCOUNT:
    if (fl) return cg_fail(cg, "%s on f32, expected an integer or bool", mfx_unary_op_name(op));
    *out = op == MFX_NOT ? LLVMBuildNot(cg->b, a, "") : cg_intrinsic(cg, "llvm.ctpop", &a, 1);
    return MFX_OK;
  case MFX_SQRT:
  case MFX_EXP:
  case MFX_LOG:
  case MFX_TANH:
  case MFX_ERF:
  case MFX_ROUND:
    if (!fl) return cg_fail(cg, "%s on %s, expected f32", mfx_unary_op_name(op), mfx_dtype_name(t));
    if (cg_math_expands(op)) /* inline polynomial code, the same on every target */
      *out = cg_math_unary(cg, op, a);
    else
      *out = cg_intrinsic(cg, op == MFX_SQRT ? "llvm.sqrt" : "llvm.rint", /* rint: ties to even */
                          &a, 1);
    return MFX_OK;
  case MFX_RSQRT:
  case MFX_WARP_SUM:
    if (!fl) return cg_fail(cg, "%s on %s, expected f32", mfx_unary_op_name(op), mfx_dtype_name(t));
    if (cg->target->emit_unary != NULL && cg->target->emit_unary(cg, op, a, out)) return MFX_OK;
    if (op == MFX_WARP_SUM)
      return cg_fail(cg, "warp_sum on the %s target: a warp reduction is GPU code (a CPU runs "
                     "it through the GPU emulation)", cg->target->name);
    *out = LLVMBuildFDiv(cg->b, cg_const_one(LLVMTypeOf(a)), cg_intrinsic(cg, "llvm.sqrt", &a, 1),
                         "");
    return MFX_OK;
  case MFX_UNARY_OP_COUNT: break;
  }
  return cg_fail(cg, "unknown unary operator %d", (int)op);
}

static mfx_status cg_expr_unary(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  const mfx_expr *x = e->u.un.a;
  if (x == NULL)
    return cg_fail(cg, "operator %s misses its operand", mfx_unary_op_name(e->u.un.op));
  LLVMValueRef a;
  mfx_status st = cg_expr(cg, x, &a);
  if (st == MFX_OK) st = cg_unary_value(cg, e->u.un.op, x->type, a, out);
  if (st == MFX_OK) *out = cg_convert(cg, *out, x->type, e->type);
  return st;
}

static mfx_status cg_expr_select(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  const mfx_expr *c = e->u.sel.cond, *x = e->u.sel.a, *y = e->u.sel.b;
  if (c == NULL || x == NULL || y == NULL) return cg_fail(cg, "select misses an operand");
  if (x->type != y->type)
    return cg_fail(cg, "select between %s and %s, expected one type", mfx_dtype_name(x->type),
                   mfx_dtype_name(y->type));
  LLVMValueRef cond, a, b;
  mfx_status st = cg_expr(cg, c, &cond);
  if (st == MFX_OK) st = cg_expr(cg, x, &a);
  if (st == MFX_OK) st = cg_expr(cg, y, &b);
  if (st != MFX_OK) return st;
  cond = cg_convert(cg, cond, c->type, MFX_BOOL);
  if (cg_is_vector(cond)) {
    a = cg_splat(cg, a);
    b = cg_splat(cg, b);
  } else {
    cg_match(cg, &a, &b);
    /* One condition for every lane: as a vector of it, LLVM's x86 backend
     * emits a mask and a masked operation, where a scalar condition on
     * vectors becomes a branch per value (mispredicted on random codes). */
    if (cg_is_vector(a)) cond = cg_splat(cg, cond);
  }
  *out = cg_convert(cg, LLVMBuildSelect(cg->b, cond, a, b, ""), x->type, e->type);
  return MFX_OK;
}

static mfx_status cg_expr(mfx_cg *cg, const mfx_expr *e, LLVMValueRef *out) {
  if (e == NULL) return cg_fail(cg, "missing expression");
  if (cg_register_type(cg, e->type) == NULL)
    return cg_fail(cg, "expression of unknown type %d", (int)e->type);
  switch (e->kind) {
  case MFX_EXPR_INT:
  case MFX_EXPR_FLOAT: return cg_constant(cg, e, out);
  case MFX_EXPR_VAR: return cg_expr_var(cg, e, out);
  case MFX_EXPR_LOAD: return cg_expr_load(cg, e, out);
  case MFX_EXPR_BINARY: return cg_expr_binary(cg, e, out);
  case MFX_EXPR_UNARY: return cg_expr_unary(cg, e, out);
  case MFX_EXPR_SELECT: return cg_expr_select(cg, e, out);
  case MFX_EXPR_CAST: {
    if (e->u.cast.a == NULL) return cg_fail(cg, "cast misses its operand");
    mfx_status st = cg_expr(cg, e->u.cast.a, out);
    if (st == MFX_OK) *out = cg_convert(cg, *out, e->u.cast.a->type, e->type);
    return st;
  }
  case MFX_EXPR_REDUCE:
    return cg_fail(cg,
                   "a %s reduction reached code generation; reductions must be lowered "
                   "to loops first (mfx_lower)",
                   mfx_reduce_op_name(e->u.red.op));
  }
  return cg_fail(cg, "unknown expression kind %d", (int)e->kind);
}

/* ---- statements ------------------------------------------------------------------ */

static mfx_status cg_store_scatter(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                   const mfx_expr *idx, LLVMValueRef value) {
  LLVMValueRef index;
  mfx_status st = cg_index(cg, idx, &index);
  if (st != MFX_OK) return st;
  index = cg_splat(cg, index);
  value = cg_splat(cg, value);
  for (int lane = 0; lane < cg->lanes; lane++) {
    LLVMValueRef l = cg_lane_constant(cg, lane);
    LLVMValueRef p = cg_element_ptr(cg, buf, base, LLVMBuildExtractElement(cg->b, index, l, ""));
    LLVMBuildStore(cg->b, LLVMBuildExtractElement(cg->b, value, l, ""), p);
  }
  return MFX_OK;
}

static mfx_status cg_store_vector(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base,
                                  const mfx_expr *idx, LLVMValueRef value) {
  mfx_cg_linear lin = cg_linear(cg, idx);
  if (!(lin.dep && lin.affine && lin.coeff == 1))
    return cg_store_scatter(cg, buf, base, idx, value);
  LLVMValueRef vp;
  mfx_status st = cg_contiguous_ptr(cg, buf, base, idx, &vp);
  if (st != MFX_OK) return st;
  LLVMValueRef store = LLVMBuildStore(cg->b, cg_splat(cg, value), vp);
  LLVMSetAlignment(store, (unsigned)mfx_dtype_size(buf->dtype));
  return MFX_OK;
}

/* An async store the target copies itself (cp.async): a load of the same
 * type from a global buffer into a shared one, 4, 8 or 16 bytes, scalar. */
static int cg_async_copyable(const mfx_cg *cg, const mfx_stmt *s) {
  const mfx_expr *v = s->u.store.value;
  const mfx_buffer *buf = s->u.store.buf;
  if (!s->u.store.async || cg->target->emit_async_copy == NULL || cg_vector_mode(cg) ||
      v->kind != MFX_EXPR_LOAD || v->u.load.buf->dtype != buf->dtype ||
      buf->scope != MFX_SCOPE_SHARED || v->u.load.buf->scope != MFX_SCOPE_GLOBAL)
    return 0;
  size_t size = mfx_dtype_size(buf->dtype);
  return size == 4 || size == 8 || size == 16;
}

static mfx_status cg_emit_async_copy(mfx_cg *cg, const mfx_stmt *s, LLVMValueRef dst) {
  const mfx_expr *v = s->u.store.value;
  LLVMValueRef base, index;
  mfx_status st = cg_buffer_access(cg, v->u.load.buf, v->u.load.n, v->u.load.idx, &base);
  if (st == MFX_OK) st = cg_index(cg, v->u.load.idx[0], &index);
  if (st != MFX_OK) return st;
  cg->target->emit_async_copy(cg, dst, cg_element_ptr(cg, v->u.load.buf, base, index),
                              (int)mfx_dtype_size(s->u.store.buf->dtype));
  return MFX_OK;
}

static mfx_status cg_emit_store(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_buffer *buf = s->u.store.buf;
  LLVMValueRef base, value;
  mfx_status st = cg_buffer_access(cg, buf, s->u.store.n, s->u.store.idx, &base);
  if (st != MFX_OK) return st;
  const mfx_expr *idx = s->u.store.idx[0];
  if (s->u.store.value == NULL)
    return cg_fail(cg, "store to %s misses its value", cg_buffer_name(buf));
  if (cg_async_copyable(cg, s)) {
    LLVMValueRef index;
    st = cg_index(cg, idx, &index);
    if (st != MFX_OK) return st;
    return cg_emit_async_copy(cg, s, cg_element_ptr(cg, buf, base, index));
  }
  st = cg_expr(cg, s->u.store.value, &value);
  if (st != MFX_OK) return st;
  value = cg_to_memory(cg, cg_convert(cg, value, s->u.store.value->type, buf->dtype), buf->dtype);
  if (cg_vector_mode(cg)) return cg_store_vector(cg, buf, base, idx, value);
  LLVMValueRef index;
  st = cg_index(cg, idx, &index);
  if (st != MFX_OK) return st;
  LLVMBuildStore(cg->b, value, cg_element_ptr(cg, buf, base, index));
  return MFX_OK;
}

static mfx_status cg_emit_let(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_var *var = s->u.let.var;
  if (var == NULL || s->u.let.value == NULL) return cg_fail(cg, "let misses its variable or value");
  LLVMValueRef value;
  mfx_status st = cg_expr(cg, s->u.let.value, &value);
  if (st != MFX_OK) return st;
  int mark = cg_scope_mark(cg);
  mfx_cg_linear lin = cg_vector_mode(cg) ? cg_linear(cg, s->u.let.value) : cg_lin_const();
  st = cg_bind_var(cg, var, s->u.let.value->type, value, lin);
  if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.let.body);
  cg_scope_pop(cg, mark);
  return st;
}

static LLVMBasicBlockRef cg_block(mfx_cg *cg, const char *name) {
  return LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, name);
}

static mfx_status cg_emit_branch(mfx_cg *cg, const mfx_stmt *s, LLVMBasicBlockRef block,
                                 LLVMBasicBlockRef join) {
  LLVMPositionBuilderAtEnd(cg->b, block);
  mfx_status st = s != NULL ? cg_emit_stmt(cg, s) : MFX_OK;
  if (st == MFX_OK) LLVMBuildBr(cg->b, join);
  return st;
}

/* In vector mode, conditions that depend on the vectorized variable are
 * guards checked for all lanes before (cg_emit_guarded_vector): only the
 * then-branch remains. Other conditions branch as usual. */
static mfx_status cg_emit_if(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_expr *c = s->u.if_.cond;
  if (c == NULL) return cg_fail(cg, "if misses its condition");
  if (cg_vector_mode(cg) && cg_linear(cg, c).dep)
    return s->u.if_.then_s != NULL ? cg_emit_stmt(cg, s->u.if_.then_s) : MFX_OK;
  LLVMValueRef cond;
  mfx_status st = cg_expr(cg, c, &cond);
  if (st != MFX_OK) return st;
  cond = cg_convert(cg, cond, c->type, MFX_BOOL);
  LLVMBasicBlockRef then_b = cg_block(cg, "then");
  LLVMBasicBlockRef else_b = s->u.if_.else_s != NULL ? cg_block(cg, "else") : NULL;
  LLVMBasicBlockRef join = cg_block(cg, "endif");
  LLVMBuildCondBr(cg->b, cond, then_b, else_b != NULL ? else_b : join);
  st = cg_emit_branch(cg, s->u.if_.then_s, then_b, join);
  if (st == MFX_OK && else_b != NULL) st = cg_emit_branch(cg, s->u.if_.else_s, else_b, join);
  LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(cg->b));
  LLVMPositionBuilderAtEnd(cg->b, join);
  return st;
}

static mfx_status cg_emit_local_allocate(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_buffer *buf = s->u.alloc.buf;
  int64_t numel;
  mfx_status st = cg_buffer_numel(cg, buf, &numel);
  if (st != MFX_OK) return st;
  LLVMValueRef p = cg_alloca(cg, cg_memory_type(cg, buf->dtype), numel, cg_buffer_name(buf));
  LLVMSetAlignment(p, 32);
  int mark = cg_scope_mark(cg);
  st = cg_bind_buffer(cg, buf, p);
  if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.alloc.body);
  cg_scope_pop(cg, mark);
  return st;
}

static mfx_status cg_emit_allocate(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_buffer *buf = s->u.alloc.buf;
  if (buf == NULL) return cg_fail(cg, "allocate misses its buffer");
  if (cg_register_type(cg, buf->dtype) == NULL)
    return cg_fail(cg, "buffer %s has unknown type %d", cg_buffer_name(buf), (int)buf->dtype);
  if (buf->scope == MFX_SCOPE_LOCAL) return cg_emit_local_allocate(cg, s);
  return cg->target->emit_allocate(cg, s);
}

static mfx_status cg_emit_seq(mfx_cg *cg, const mfx_stmt *s) {
  if (s->u.seq.n > 0 && s->u.seq.items == NULL) return cg_fail(cg, "sequence misses its items");
  for (int i = 0; i < s->u.seq.n; i++) {
    mfx_status st = cg_emit_stmt(cg, s->u.seq.items[i]);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}

/* ---- loops ---------------------------------------------------------------------- */

mfx_status cg_emit_range_loop(mfx_cg *cg, const mfx_var *var, LLVMValueRef begin, LLVMValueRef end,
                              int may_be_empty, const mfx_stmt *body) {
  LLVMBasicBlockRef before = LLVMGetInsertBlock(cg->b);
  LLVMBasicBlockRef head = cg_block(cg, cg_var_name(var));
  LLVMBasicBlockRef exit = cg_block(cg, "endfor");
  if (may_be_empty)
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, begin, end, ""), head, exit);
  else
    LLVMBuildBr(cg->b, head);
  LLVMPositionBuilderAtEnd(cg->b, head);
  LLVMValueRef i = LLVMBuildPhi(cg->b, cg_i64(cg), cg_var_name(var));
  LLVMAddIncoming(i, &begin, &before, 1);
  int mark = cg_scope_mark(cg);
  mfx_status st = cg_bind_var(cg, var, MFX_I64, i, cg_lin_const());
  if (st == MFX_OK) st = cg_emit_stmt(cg, body);
  cg_scope_pop(cg, mark);
  if (st != MFX_OK) return st;
  LLVMValueRef next = LLVMBuildNSWAdd(cg->b, i, LLVMConstInt(cg_i64(cg), 1, 0), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
  LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, next, end, ""), head, exit);
  LLVMAddIncoming(i, &next, &latch, 1);
  LLVMMoveBasicBlockAfter(exit, latch);
  LLVMPositionBuilderAtEnd(cg->b, exit);
  return MFX_OK;
}

static mfx_status cg_emit_serial(mfx_cg *cg, const mfx_stmt *s) {
  LLVMValueRef end = LLVMConstInt(cg_i64(cg), (unsigned long long)s->u.loop.extent, 0);
  return cg_emit_range_loop(cg, s->u.loop.var, LLVMConstInt(cg_i64(cg), 0, 0), end, 0,
                            s->u.loop.body);
}

static mfx_status cg_emit_unrolled(mfx_cg *cg, const mfx_stmt *s) {
  for (int64_t k = 0; k < s->u.loop.extent; k++) {
    int mark = cg_scope_mark(cg);
    LLVMValueRef value = LLVMConstInt(cg_i64(cg), (unsigned long long)k, 0);
    mfx_status st = cg_bind_var(cg, s->u.loop.var, MFX_I64, value, cg_lin_const());
    if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.loop.body);
    cg_scope_pop(cg, mark);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}

mfx_status cg_grow(void **items, int *cap, int n, size_t size) {
  if (n < *cap) return MFX_OK;
  int grown_cap = *cap > 0 ? *cap * 2 : 16;
  void *grown = realloc(*items, (size_t)grown_cap * size);
  if (grown == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "codegen: vectorization plan of %d entries", grown_cap);
  *items = grown;
  *cap = grown_cap;
  return MFX_OK;
}

/* if (every guard holds at lane 0 and at lane L-1) vector body, else the
 * serial loop with its guards. */
static mfx_status cg_emit_guarded_vector(mfx_cg *cg, const mfx_stmt *s, const cg_vec_plan *p) {
  LLVMValueRef all = LLVMConstInt(LLVMInt1TypeInContext(cg->ctx), 1, 0);
  for (int i = 0; i < p->n_guard; i++) {
    for (int end = 0; end < 2; end++) {
      LLVMValueRef v;
      mfx_status st = cg_expr_at_lane(cg, p->guard[i], end ? cg->lanes - 1 : 0, &v);
      if (st != MFX_OK) return st;
      all = LLVMBuildAnd(cg->b, all, cg_convert(cg, v, p->guard[i]->type, MFX_BOOL), "");
    }
  }
  LLVMBasicBlockRef vec_b = cg_block(cg, "vector");
  LLVMBasicBlockRef scalar_b = cg_block(cg, "lanes");
  LLVMBasicBlockRef join = cg_block(cg, "endvector");
  LLVMBuildCondBr(cg->b, all, vec_b, scalar_b);
  mfx_status st = cg_emit_branch(cg, s->u.loop.body, vec_b, join);
  if (st != MFX_OK) return st;
  const mfx_var *vec_var = cg->vec_var;
  cg->vec_var = NULL;
  LLVMPositionBuilderAtEnd(cg->b, scalar_b);
  st = cg_emit_serial(cg, s);
  if (st == MFX_OK) LLVMBuildBr(cg->b, join);
  cg->vec_var = vec_var;
  LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(cg->b));
  LLVMPositionBuilderAtEnd(cg->b, join);
  return st;
}

static mfx_status cg_emit_vector_body(mfx_cg *cg, const mfx_stmt *s, int *vectorized) {
  cg_vec_plan plan = {.cg = cg, .ok = 1};
  mfx_status st =
      cg_bind_var(cg, s->u.loop.var, MFX_I64, cg_lane_ids(cg), (mfx_cg_linear){1, 1, 1});
  if (st == MFX_OK) st = cg_vec_plan_body(&plan, s->u.loop.body);
  *vectorized = st == MFX_OK && plan.ok;
  if (*vectorized && plan.n_guard == 0)
    st = cg_emit_stmt(cg, s->u.loop.body);
  else if (*vectorized)
    st = cg_emit_guarded_vector(cg, s, &plan);
  cg_vec_plan_free(&plan);
  return st;
}

/* Vector code when it equals the serial loop (codegen_vec.c), else the
 * serial loop. */
static mfx_status cg_emit_vectorized(mfx_cg *cg, const mfx_stmt *s) {
  if (cg->vec_var != NULL || s->u.loop.extent < 2 || s->u.loop.extent > CG_MAX_LANES)
    return cg_emit_serial(cg, s);
  int mark = cg_scope_mark(cg);
  cg->vec_var = s->u.loop.var;
  cg->lanes = (int)s->u.loop.extent;
  cg->lane = -1;
  int vectorized = 0;
  mfx_status st = cg_emit_vector_body(cg, s, &vectorized);
  cg->vec_var = NULL;
  cg->lanes = 0;
  cg_scope_pop(cg, mark);
  if (st == MFX_OK && !vectorized) st = cg_emit_serial(cg, s);
  return st;
}

static mfx_status cg_emit_for(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_var *var = s->u.loop.var;
  if (var == NULL || s->u.loop.body == NULL)
    return cg_fail(cg, "for loop misses its variable or body");
  if (s->u.loop.extent <= 0)
    return cg_fail(cg, "loop %s: extent %lld, expected a positive constant", cg_var_name(var),
                   (long long)s->u.loop.extent);
  switch (s->u.loop.kind) {
  case MFX_LOOP_SERIAL: return cg_emit_serial(cg, s);
  case MFX_LOOP_UNROLLED: return cg_emit_unrolled(cg, s);
  case MFX_LOOP_VECTORIZED: return cg_emit_vectorized(cg, s);
  default: break;
  }
  if ((int)s->u.loop.kind < 0 || s->u.loop.kind >= MFX_LOOP_KIND_COUNT)
    return cg_fail(cg, "loop %s: unknown loop kind %d", cg_var_name(var), (int)s->u.loop.kind);
  return cg->target->emit_for(cg, s);
}

mfx_status cg_emit_stmt(mfx_cg *cg, const mfx_stmt *s) {
  if (s == NULL) return cg_fail(cg, "missing statement");
  switch (s->kind) {
  case MFX_STMT_FOR: return cg_emit_for(cg, s);
  case MFX_STMT_STORE: return cg_emit_store(cg, s);
  case MFX_STMT_LET: return cg_emit_let(cg, s);
  case MFX_STMT_IF: return cg_emit_if(cg, s);
  case MFX_STMT_ALLOCATE: return cg_emit_allocate(cg, s);
  case MFX_STMT_SEQ: return cg_emit_seq(cg, s);
  case MFX_STMT_BARRIER: return cg->target->emit_barrier(cg, s);
  case MFX_STMT_MMA: return cg_emit_mma(cg, s);
  }
  return cg_fail(cg, "unknown statement kind %d", (int)s->kind);
}

/* ---- functions -------------------------------------------------------------------- */

static void cg_add_function_attribute(mfx_cg *cg, LLVMValueRef fn, const char *attr) {
  unsigned kind = LLVMGetEnumAttributeKindForName(attr, strlen(attr));
  LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                          LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

void cg_add_param_attribute(mfx_cg *cg, LLVMValueRef fn, unsigned param, const char *attr) {
  unsigned kind = LLVMGetEnumAttributeKindForName(attr, strlen(attr));
  LLVMAddAttributeAtIndex(fn, param + 1, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

LLVMValueRef cg_add_function(mfx_cg *cg, const char *name, LLVMTypeRef type, int internal,
                             int always_inline) {
  LLVMValueRef fn = LLVMAddFunction(cg->mod, name, type);
  if (internal) LLVMSetLinkage(fn, LLVMInternalLinkage);
  cg_add_function_attribute(cg, fn, "nounwind");
  if (always_inline) cg_add_function_attribute(cg, fn, "alwaysinline");
  return fn;
}

mfx_cg_function cg_begin_function(mfx_cg *cg, LLVMValueRef fn) {
  mfx_cg_function saved = cg->fn;
  LLVMBasicBlockRef allocas = LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry");
  LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(cg->ctx, fn, "start");
  LLVMPositionBuilderAtEnd(cg->b, allocas);
  LLVMBuildBr(cg->b, start);
  LLVMPositionBuilderAtEnd(cg->b, start);
  cg->fn = (mfx_cg_function){fn, allocas, NULL, NULL};
  return saved;
}

void cg_end_function(mfx_cg *cg, mfx_cg_function saved, LLVMBasicBlockRef resume) {
  cg->fn = saved;
  if (resume != NULL) LLVMPositionBuilderAtEnd(cg->b, resume);
}

LLVMValueRef cg_alloca(mfx_cg *cg, LLVMTypeRef type, int64_t count, const char *name) {
  LLVMBuilderRef b = LLVMCreateBuilderInContext(cg->ctx);
  LLVMPositionBuilderBefore(b, LLVMGetBasicBlockTerminator(cg->fn.alloca_block));
  LLVMValueRef n = LLVMConstInt(cg_i64(cg), (unsigned long long)count, 0);
  LLVMValueRef p =
      count == 1 ? LLVMBuildAlloca(b, type, name) : LLVMBuildArrayAlloca(b, type, n, name);
  LLVMDisposeBuilder(b);
  return p;
}

char *cg_helper_name(mfx_cg *cg, const char *what) {
  int n = cg->n_helpers++;
  int len = snprintf(NULL, 0, "%s_%s%d", cg->kernel, what, n);
  char *name = malloc((size_t)len + 1);
  if (name != NULL) snprintf(name, (size_t)len + 1, "%s_%s%d", cg->kernel, what, n);
  return name;
}

/* ---- modules ---------------------------------------------------------------------- */

static mfx_status cg_check_func(const mfx_func *fn) {
  if (fn == NULL || fn->name == NULL || fn->name[0] == '\0')
    return mfx_fail(MFX_ERR_INVALID, "codegen: func without a name");
  if (fn->body == NULL)
    return mfx_fail(MFX_ERR_INVALID, "codegen %s: func without a body", fn->name);
  if (fn->n_args < 0 || (fn->n_args > 0 && fn->args == NULL))
    return mfx_fail(MFX_ERR_INVALID, "codegen %s: %d arguments without a list", fn->name,
                    fn->n_args);
  for (int i = 0; i < fn->n_args; i++) {
    const mfx_buffer *a = fn->args[i];
    if (a == NULL || (int)a->dtype < 0 || a->dtype >= MFX_DTYPE_COUNT)
      return mfx_fail(MFX_ERR_INVALID, "codegen %s: argument %d is missing or has an unknown type",
                      fn->name, i);
    for (int j = 0; j < i; j++)
      if (fn->args[j] == a)
        return mfx_fail(MFX_ERR_INVALID,
                        "codegen %s: buffer %s is arguments %d and %d; "
                        "arguments must be distinct",
                        fn->name, cg_buffer_name(a), j, i);
  }
  return MFX_OK;
}

static mfx_status cg_verify(LLVMModuleRef mod, const char *kernel) {
  char *message = NULL;
  LLVMBool broken = LLVMVerifyModule(mod, LLVMReturnStatusAction, &message);
  mfx_status st = MFX_OK;
  if (broken)
    st = mfx_fail(MFX_ERR_CODEGEN, "codegen %s: LLVM verifier: %s", kernel,
                  message != NULL ? message : "(no message)");
  LLVMDisposeMessage(message);
  return st;
}

mfx_status cg_build_module(const mfx_func *fn, const mfx_cg_target *target, LLVMContextRef ctx,
                           LLVMTargetMachineRef tm, LLVMModuleRef *out) {
  double t0 = mfx_now_seconds();
  mfx_status st = cg_build_module_with(fn, target, NULL, ctx, tm, out);
  mfx_compile_time_add(MFX_PHASE_IRGEN, mfx_now_seconds() - t0);
  return st;
}

mfx_status cg_build_module_with(const mfx_func *fn, const mfx_cg_target *target,
                                const void *target_data, LLVMContextRef ctx,
                                LLVMTargetMachineRef tm, LLVMModuleRef *out) {
  *out = NULL;
  mfx_status st = cg_check_func(fn);
  if (st != MFX_OK) return st;
  LLVMModuleRef mod = LLVMModuleCreateWithNameInContext(fn->name, ctx);
  char *triple = LLVMGetTargetMachineTriple(tm);
  LLVMSetTarget(mod, triple);
  LLVMDisposeMessage(triple);
  mfx_cg cg = {.target = target,
               .target_data = target_data,
               .ctx = ctx,
               .mod = mod,
               .kernel = fn->name,
               .lane = -1};
  cg.layout = LLVMCreateTargetDataLayout(tm);
  LLVMSetModuleDataLayout(mod, cg.layout);
  cg.b = LLVMCreateBuilderInContext(ctx);
  st = target->emit_kernel(&cg, fn);
  LLVMDisposeBuilder(cg.b);
  LLVMDisposeTargetData(cg.layout);
  free(cg.scope);
  if (st == MFX_OK) st = cg_verify(mod, fn->name);
  if (st != MFX_OK) {
    LLVMDisposeModule(mod);
    return st;
  }
  *out = mod;
  return MFX_OK;
}

mfx_status cg_optimize_module(LLVMModuleRef mod, LLVMTargetMachineRef tm) {
  const char *pipeline = mfx_llvm_pipeline();
  if (pipeline == NULL) return MFX_ERR_INVALID;
  LLVMPassBuilderOptionsRef options = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(options, 1);
  LLVMPassBuilderOptionsSetSLPVectorization(options, 1);
  LLVMPassBuilderOptionsSetLoopInterleaving(options, 1);
  LLVMPassBuilderOptionsSetLoopUnrolling(options, 1);
  double t0 = mfx_now_seconds();
  LLVMErrorRef err = LLVMRunPasses(mod, pipeline, tm, options);
  mfx_compile_time_add(MFX_PHASE_OPTIMIZE, mfx_now_seconds() - t0);
  LLVMDisposePassBuilderOptions(options);
  if (err != NULL) return cg_fail_llvm(MFX_ERR_CODEGEN, err, "codegen: LLVM optimizer");
  return MFX_OK;
}

static mfx_status cg_copy_out(const char *bytes, size_t size, char **data, size_t *out_size) {
  char *copy = malloc(size + 1);
  if (copy == NULL) return mfx_fail(MFX_ERR_NOMEM, "codegen: %zu bytes of output", size);
  memcpy(copy, bytes, size);
  copy[size] = '\0';
  *data = copy;
  *out_size = size;
  return MFX_OK;
}

mfx_status cg_emit_module(LLVMModuleRef mod, LLVMTargetMachineRef tm, mfx_emit_kind kind,
                          char **data, size_t *size) {
  if (kind == MFX_EMIT_LL) {
    char *text = LLVMPrintModuleToString(mod);
    mfx_status st = cg_copy_out(text, strlen(text), data, size);
    LLVMDisposeMessage(text);
    return st;
  }
  if (kind != MFX_EMIT_ASM && kind != MFX_EMIT_OBJ)
    return mfx_fail(MFX_ERR_INVALID, "codegen: unknown emit kind %d, expected LL, ASM or OBJ",
                    (int)kind);
  char *message = NULL;
  LLVMMemoryBufferRef buf = NULL;
  LLVMCodeGenFileType file = kind == MFX_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile;
  double t0 = mfx_now_seconds();
  LLVMBool failed = LLVMTargetMachineEmitToMemoryBuffer(tm, mod, file, &message, &buf);
  mfx_compile_time_add(MFX_PHASE_CODEGEN, mfx_now_seconds() - t0);
  if (failed) {
    mfx_status st = mfx_fail(MFX_ERR_CODEGEN, "codegen: LLVM could not emit %s: %s",
                             kind == MFX_EMIT_ASM ? "assembly" : "an object",
                             message != NULL ? message : "(no message)");
    LLVMDisposeMessage(message);
    return st;
  }
  mfx_status st = cg_copy_out(LLVMGetBufferStart(buf), LLVMGetBufferSize(buf), data, size);
  LLVMDisposeMemoryBuffer(buf);
  return st;
}
