/* The MMA statement (a warp's m16n8k8 TF32 tile product, see mfx/compiler.h):
 * on NVPTX the lane's fragments go to mma.sync through LLVM's NVVM
 * intrinsics; on the host (the GPU emulation) each lane computes its four
 * accumulators from the whole rows of A and columns of B, with the same TF32
 * rounding, so that emulated results are the GPU's up to the order of the
 * additions inside the tensor core. */
#include "codegen_internal.h"

#include <string.h>

typedef struct {
  LLVMValueRef base[MFX_MMA_OPERANDS]; /* pointers to the operands' elements */
  LLVMValueRef off[MFX_MMA_OPERANDS];  /* i64 */
  LLVMValueRef g, t;                   /* lane / 4, lane % 4 (i64) */
} mma_operands;

static LLVMValueRef mma_i64(mfx_cg *cg, int64_t v) {
  return LLVMConstInt(cg_i64(cg), (unsigned long long)v, 1);
}

static mfx_status mma_prepare(mfx_cg *cg, const mfx_stmt *s, mma_operands *o) {
  static const char *const role[MFX_MMA_OPERANDS] = {"C", "A", "B"};
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    const mfx_buffer *buf = s->u.mma.buf[i];
    const mfx_cg_binding *b = buf != NULL ? cg_lookup(cg, buf) : NULL;
    if (b == NULL || !b->is_buffer || b->value == NULL || buf->dtype != MFX_F32)
      return cg_fail(cg, "mma operand %s: %s is not an f32 buffer in scope", role[i],
                     buf != NULL ? buf->name : "(none)");
    o->base[i] = b->value;
    MFX_TRY(cg_index(cg, s->u.mma.off[i], &o->off[i]));
  }
  LLVMValueRef lane;
  MFX_TRY(cg_index(cg, s->u.mma.lane, &lane));
  o->g = LLVMBuildLShr(cg->b, lane, mma_i64(cg, 2), "mma.g");
  o->t = LLVMBuildAnd(cg->b, lane, mma_i64(cg, 3), "mma.t");
  return MFX_OK;
}

/* &buf[off + row * ld + col] of operand i (row, col: i64 values). */
static LLVMValueRef mma_ptr(mfx_cg *cg, const mfx_stmt *s, const mma_operands *o, int i,
                            LLVMValueRef row, LLVMValueRef col) {
  LLVMValueRef idx = LLVMBuildMul(cg->b, row, mma_i64(cg, s->u.mma.ld[i]), "");
  idx = LLVMBuildAdd(cg->b, LLVMBuildAdd(cg->b, o->off[i], idx, ""), col, "");
  return LLVMBuildInBoundsGEP2(cg->b, cg_memory_type(cg, MFX_F32), o->base[i], &idx, 1, "");
}

static LLVMValueRef mma_load(mfx_cg *cg, LLVMValueRef p) {
  return LLVMBuildLoad2(cg->b, cg_memory_type(cg, MFX_F32), p, "");
}

static LLVMValueRef mma_plus(mfx_cg *cg, LLVMValueRef v, int64_t k) {
  return k == 0 ? v : LLVMBuildAdd(cg->b, v, mma_i64(cg, k), "");
}

/* x rounded to TF32 as cvt.rna.tf32.f32: add half a unit of the 10-bit
 * mantissa's last place to the bits and clear the 13 low bits (nearest, ties
 * away from zero); infinities and NaNs pass unchanged. */
static LLVMValueRef mma_tf32(mfx_cg *cg, LLVMValueRef x) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  LLVMValueRef bits = LLVMBuildBitCast(cg->b, x, i32, "");
  LLVMValueRef r = LLVMBuildAdd(cg->b, bits, LLVMConstInt(i32, 0x1000, 0), "");
  r = LLVMBuildAnd(cg->b, r, LLVMConstInt(i32, 0xFFFFE000u, 0), "");
  LLVMValueRef exp = LLVMBuildAnd(cg->b, bits, LLVMConstInt(i32, 0x7F800000, 0), "");
  LLVMValueRef special = LLVMBuildICmp(cg->b, LLVMIntEQ, exp, LLVMConstInt(i32, 0x7F800000, 0), "");
  r = LLVMBuildSelect(cg->b, special, bits, r, "");
  return LLVMBuildBitCast(cg->b, r, cg_memory_type(cg, MFX_F32), "tf32");
}

/* Host: C[i] += sum_k tf32(A[row_i][k]) tf32(B[col_i][k]), the 8 terms in
 * order. TF32 products are exact in f32 (11 x 11 significant bits), so only
 * the additions round. */
static void mma_emit_scalar(mfx_cg *cg, const mfx_stmt *s, const mma_operands *o) {
  for (int i = 0; i < 4; i++) {
    LLVMValueRef row = mma_plus(cg, o->g, 8 * (i / 2));
    LLVMValueRef col = LLVMBuildAdd(cg->b, LLVMBuildShl(cg->b, o->t, mma_i64(cg, 1), ""),
                                    mma_i64(cg, i % 2), "");
    LLVMValueRef cp = mma_ptr(cg, s, o, MFX_MMA_C, mma_i64(cg, 0), mma_i64(cg, i));
    LLVMValueRef acc = mma_load(cg, cp);
    for (int k = 0; k < 8; k++) {
      LLVMValueRef at = mma_i64(cg, s->u.mma.kperm ? 2 * (k % 4) + k / 4 : k);
      LLVMValueRef a = mma_tf32(cg, mma_load(cg, mma_ptr(cg, s, o, MFX_MMA_A, row, at)));
      LLVMValueRef b = mma_tf32(cg, mma_load(cg, mma_ptr(cg, s, o, MFX_MMA_B, col, at)));
      acc = LLVMBuildFAdd(cg->b, acc, LLVMBuildFMul(cg->b, a, b, ""), "");
    }
    LLVMBuildStore(cg->b, acc, cp);
  }
}

/* GPU: the lane's fragments of the m16n8k8 layout (PTX ISA, "matrix
 * fragments for mma.m16n8k8", .tf32): a0..a3 = A[g][t], A[g+8][t],
 * A[g][t+4], A[g+8][t+4]; b0, b1 = B[k=t][n=g], B[k=t+4][n=g]; c0..c3 as in
 * the statement. The target makes the product. */
/* The values at k = t and t + 4 of a fragment row: two loads, or with k
 * permuted one 8-byte load at 2t (offsets and strides even: see kperm). */
static void mma_load_pair(mfx_cg *cg, const mfx_stmt *s, const mma_operands *o, int i,
                          LLVMValueRef row, LLVMValueRef out[2]) {
  if (!s->u.mma.kperm) {
    out[0] = mma_load(cg, mma_ptr(cg, s, o, i, row, o->t));
    out[1] = mma_load(cg, mma_ptr(cg, s, o, i, row, mma_plus(cg, o->t, 4)));
    return;
  }
  LLVMValueRef p = mma_ptr(cg, s, o, i, row, LLVMBuildShl(cg->b, o->t, mma_i64(cg, 1), ""));
  LLVMTypeRef v2 = LLVMVectorType(cg_memory_type(cg, MFX_F32), 2);
  p = LLVMBuildBitCast(cg->b, p, LLVMPointerType(v2, LLVMGetPointerAddressSpace(LLVMTypeOf(p))),
                       "");
  LLVMValueRef v = LLVMBuildLoad2(cg->b, v2, p, "");
  LLVMSetAlignment(v, 8);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  for (int j = 0; j < 2; j++)
    out[j] = LLVMBuildExtractElement(cg->b, v, LLVMConstInt(i32, (unsigned long long)j, 0), "");
}

static mfx_status mma_emit_fragments(mfx_cg *cg, const mfx_stmt *s, const mma_operands *o) {
  LLVMValueRef a[4], b[2], c[4], d[4], cp[4], pair[2];
  for (int r = 0; r < 2; r++) { /* a0, a2: row g; a1, a3: row g + 8 */
    mma_load_pair(cg, s, o, MFX_MMA_A, mma_plus(cg, o->g, 8 * r), pair);
    a[r] = pair[0];
    a[r + 2] = pair[1];
  }
  mma_load_pair(cg, s, o, MFX_MMA_B, o->g, b);
  for (int i = 0; i < 4; i++) {
    cp[i] = mma_ptr(cg, s, o, MFX_MMA_C, mma_i64(cg, 0), mma_i64(cg, i));
    c[i] = mma_load(cg, cp[i]);
  }
  MFX_TRY(cg->target->emit_mma(cg, a, b, c, d));
  for (int i = 0; i < 4; i++) LLVMBuildStore(cg->b, d[i], cp[i]);
  return MFX_OK;
}

mfx_status cg_emit_mma(mfx_cg *cg, const mfx_stmt *s) {
  if (cg->vec_var != NULL) return cg_fail(cg, "an mma statement inside vector code");
  mma_operands o;
  MFX_TRY(mma_prepare(cg, s, &o));
  if (cg->target->emit_mma != NULL) return mma_emit_fragments(cg, s, &o);
  mma_emit_scalar(cg, s, &o);
  return MFX_OK;
}

/* ---- NVPTX ------------------------------------------------------------------------- */

static LLVMValueRef mma_call(mfx_cg *cg, const char *name, LLVMValueRef *args, unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  if (id == 0) return NULL;
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
  LLVMTypeRef type = LLVMIntrinsicGetType(cg->ctx, id, NULL, 0);
  return LLVMBuildCall2(cg->b, type, fn, args, n, "");
}

mfx_status cg_nvptx_mma(mfx_cg *cg, const LLVMValueRef a[4], const LLVMValueRef b[2],
                        const LLVMValueRef c[4], LLVMValueRef d[4]) {
  LLVMValueRef args[10];
  for (int i = 0; i < 6; i++) {
    LLVMValueRef x = i < 4 ? a[i] : b[i - 4];
    args[i] = mma_call(cg, "llvm.nvvm.f2tf32.rna", &x, 1);
    if (args[i] == NULL) return cg_fail(cg, "this LLVM has no intrinsic llvm.nvvm.f2tf32.rna");
  }
  for (int i = 0; i < 4; i++) args[6 + i] = c[i];
  LLVMValueRef r = mma_call(cg, "llvm.nvvm.mma.m16n8k8.row.col.tf32", args, 10);
  if (r == NULL) return cg_fail(cg, "this LLVM has no intrinsic llvm.nvvm.mma.m16n8k8.row.col.tf32");
  for (int i = 0; i < 4; i++) d[i] = LLVMBuildExtractValue(cg->b, r, (unsigned)i, "");
  return MFX_OK;
}

/* ---- checks ------------------------------------------------------------------------- */

typedef struct {
  mfx_ir_visitor base;
  int found;
} mma_finder;

static void mma_find(mfx_ir_visitor *v, const mfx_stmt *s) {
  int async = s->kind == MFX_STMT_STORE && s->u.store.async;
  if (s->kind == MFX_STMT_MMA || async) {
    ((mma_finder *)v)->found = async ? 2 : 1;
    v->stop = 1;
    return;
  }
  mfx_ir_visit_stmt_children(v, s);
}

mfx_status cg_check_mma_arch(const mfx_gpu_program *p, int sm_requested, int sm_emitted) {
  if (p == NULL || sm_emitted >= 80) return MFX_OK;
  for (int i = 0; i < p->n_kernels; i++) {
    mma_finder f = {{NULL, mma_find, 0}, 0};
    mfx_ir_visit_stmt(&f.base, p->kernels[i].body);
    if (f.found == 2)
      return mfx_fail(MFX_ERR_CODEGEN,
                      "codegen %s: kernel %s copies tiles with cp.async (the knob "
                      "double_buffer=1), which needs sm_80 or newer; the target is sm_%d: "
                      "build for cuda:sm_80 or later, or set double_buffer=0",
                      p->func != NULL && p->func->name != NULL ? p->func->name : "?",
                      p->kernels[i].name, sm_requested);
    if (f.found)
      return mfx_fail(MFX_ERR_CODEGEN,
                      "codegen %s: kernel %s uses tensor cores (mma.sync m16n8k8 TF32, the "
                      "knob mma=1), which need sm_80 or newer; the target is sm_%d: build "
                      "for cuda:sm_80 or later, or set mma=0",
                      p->func != NULL && p->func->name != NULL ? p->func->name : "?",
                      p->kernels[i].name, sm_requested);
  }
  return MFX_OK;
}
