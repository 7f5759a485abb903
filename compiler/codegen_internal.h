/* Private interface between the target-independent code generator
 * (codegen_llvm.c: loop IR -> LLVM IR) and the targets (target_cpu.c, and
 * later target_nvptx.c). A target is one table of function pointers: how the
 * kernel's entry is made, how loops bound to hardware (PARALLEL, BLOCK_*,
 * THREAD_*) run, how GLOBAL/SHARED buffers are allocated, what a BARRIER is.
 * Everything else (serial, vectorized and unrolled loops, stores, lets, ifs,
 * LOCAL buffers, expressions) is shared. */
#ifndef MFX_CODEGEN_INTERNAL_H
#define MFX_CODEGEN_INTERNAL_H

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>

#include "mfx/compiler.h"

typedef struct mfx_cg mfx_cg;

typedef struct mfx_cg_target {
  const char *name;              /* for messages: "x86-64 host" */
  unsigned buffer_address_space; /* of the kernel's argument buffers */
  /* Make the kernel's function(s) in cg->mod for fn and emit fn->body. */
  mfx_status (*emit_kernel)(mfx_cg *cg, const mfx_func *fn);
  /* FOR loops of the kinds the shared code does not handle: PARALLEL,
   * BLOCK_*, THREAD_*. */
  mfx_status (*emit_for)(mfx_cg *cg, const mfx_stmt *s);
  /* ALLOCATE of GLOBAL or SHARED scope (LOCAL is shared code). */
  mfx_status (*emit_allocate)(mfx_cg *cg, const mfx_stmt *s);
  mfx_status (*emit_barrier)(mfx_cg *cg, const mfx_stmt *s);
  /* optional: an async copy of `bytes` from src (global) to dst (shared) */
  void (*emit_async_copy)(mfx_cg *cg, LLVMValueRef dst, LLVMValueRef src, int bytes);
  /* Unary operators the target has its own instructions for (MFX_RSQRT,
   * MFX_WARP_SUM on a GPU): *out set and 1 returned, or 0 (the shared code's
   * form, or an error). NULL: none. */
  int (*emit_unary)(mfx_cg *cg, mfx_unary_op op, LLVMValueRef a, LLVMValueRef *out);
  /* MMA: d = a b + c from one lane's m16n8k8 TF32 fragments (f32 values,
   * not yet rounded). NULL: the shared code computes the lane's
   * accumulators itself (the host: GPU emulation). */
  mfx_status (*emit_mma)(mfx_cg *cg, const LLVMValueRef a[4], const LLVMValueRef b[2],
                         const LLVMValueRef c[4], LLVMValueRef d[4]);
} mfx_cg_target;

/* How a value depends on the variable of the vectorized loop being emitted:
 * dep = 0 when it does not; affine = value is c + coeff * var (i64). */
typedef struct {
  int dep;
  int affine;
  int64_t coeff;
} mfx_cg_linear;

/* A variable or buffer in scope. Buffers are bound to a pointer to their
 * element type in memory; variables to their value (a vector in vector
 * mode when it depends on the vectorized variable). */
typedef struct {
  const void *key; /* mfx_var * or mfx_buffer * */
  int is_buffer;
  mfx_dtype dtype; /* of the variable's value, or the buffer's elements */
  LLVMValueRef value;
  mfx_cg_linear lin;
} mfx_cg_binding;

/* The function being emitted. */
typedef struct {
  LLVMValueRef fn;
  LLVMBasicBlockRef alloca_block; /* allocas go before its terminator */
  LLVMValueRef env;               /* cpu: const mfx_kernel_env * (else NULL) */
  LLVMValueRef fail_flag;         /* cpu: i32 *, set to 1 when env->alloc fails */
} mfx_cg_function;

struct mfx_cg {
  const mfx_cg_target *target;
  const void *target_data; /* what the target's build was handed (nvptx: its mfx_gpu_kernel) */
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTargetDataRef layout;
  const char *kernel; /* the func's name, for messages and symbols */
  mfx_cg_function fn;
  mfx_cg_binding *scope;
  int n_scope, cap_scope;
  int scope_floor;        /* lookups see bindings at or above it */
  const mfx_var *vec_var; /* vector mode: the vectorized variable */
  int lanes;
  int lane;      /* >= 0: evaluate lane `lane` as scalars */
  int n_helpers; /* counter for unique helper symbol names */
};

/* Build the module for fn on target: triple and data layout from tm; the
 * module is verified. On failure *out is NULL and the message is set. */
mfx_status cg_build_module(const mfx_func *fn, const mfx_cg_target *target, LLVMContextRef ctx,
                           LLVMTargetMachineRef tm, LLVMModuleRef *out);
/* The same, with cg->target_data set for the target's hooks. */
mfx_status cg_build_module_with(const mfx_func *fn, const mfx_cg_target *target,
                                const void *target_data, LLVMContextRef ctx,
                                LLVMTargetMachineRef tm, LLVMModuleRef *out);
/* default<O3> with loop and SLP vectorization, tuned for tm. */
mfx_status cg_optimize_module(LLVMModuleRef mod, LLVMTargetMachineRef tm);
/* LL text (tm unused), assembly text or an object: malloc'd, NUL-terminated. */
mfx_status cg_emit_module(LLVMModuleRef mod, LLVMTargetMachineRef tm, mfx_emit_kind kind,
                          char **data, size_t *size);
/* Copy an LLVM error's message into mfx_fail (prefixed by what) and
 * dispose of the error. */
mfx_status cg_fail_llvm(mfx_status status, LLVMErrorRef err, const char *what);

/* ---- helpers for targets --------------------------------------------------- */

mfx_status cg_emit_stmt(mfx_cg *cg, const mfx_stmt *s);
/* An index expression as i64 (scalar mode). */
mfx_status cg_index(mfx_cg *cg, const mfx_expr *idx, LLVMValueRef *out);

/* codegen_mma.c: the MMA statement; NVPTX's emit_mma (mma.sync through
 * llvm.nvvm.mma.m16n8k8.row.col.tf32); refusing MMA below sm_80. */
mfx_status cg_emit_mma(mfx_cg *cg, const mfx_stmt *s);
mfx_status cg_nvptx_mma(mfx_cg *cg, const LLVMValueRef a[4], const LLVMValueRef b[2],
                        const LLVMValueRef c[4], LLVMValueRef d[4]);
mfx_status cg_check_mma_arch(const mfx_gpu_program *p, int sm_requested, int sm_emitted);
/* A failure of the kernel being compiled: MFX_ERR_CODEGEN with
 * "codegen <kernel>: <message>". */
mfx_status cg_fail(const mfx_cg *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Serial loop binding var over [begin, end) (i64 values); may_be_empty:
 * test before the first iteration. */
mfx_status cg_emit_range_loop(mfx_cg *cg, const mfx_var *var, LLVMValueRef begin, LLVMValueRef end,
                              int may_be_empty, const mfx_stmt *body);

LLVMTypeRef cg_register_type(mfx_cg *cg, mfx_dtype t); /* bool: i1 */
LLVMTypeRef cg_memory_type(mfx_cg *cg, mfx_dtype t);   /* bool: i8 */
LLVMTypeRef cg_i64(mfx_cg *cg);
LLVMTypeRef cg_i8_ptr(mfx_cg *cg);
/* Elements of a buffer (product of its shape); fails with a message when
 * the shape is not positive or the byte size overflows. */
mfx_status cg_buffer_numel(mfx_cg *cg, const mfx_buffer *buf, int64_t *numel);

mfx_status cg_bind_var(mfx_cg *cg, const mfx_var *var, mfx_dtype t, LLVMValueRef value,
                       mfx_cg_linear lin);
mfx_status cg_bind_buffer(mfx_cg *cg, const mfx_buffer *buf, LLVMValueRef base);
/* Bind again what cg_free_bindings found, to a new value. */
mfx_status cg_rebind(mfx_cg *cg, const mfx_cg_binding *b, LLVMValueRef value);
int cg_scope_mark(const mfx_cg *cg); /* pop back with cg_scope_pop */
void cg_scope_pop(mfx_cg *cg, int mark);
const mfx_cg_binding *cg_lookup(const mfx_cg *cg, const void *key);
/* The bindings in scope that body uses (malloc'd, *n entries; NULL if 0;
 * codegen_free.c). */
mfx_status cg_free_bindings(mfx_cg *cg, const mfx_stmt *body, mfx_cg_binding **out, int *n);

/* How e depends on the vectorized variable (scalar and vector modes). */
mfx_cg_linear cg_linear(const mfx_cg *cg, const mfx_expr *e);
/* Grow a malloc'd array of *cap items of size bytes to hold n + 1. */
mfx_status cg_grow(void **items, int *cap, int n, size_t size);

/* ---- vectorization legality (codegen_vec.c) ------------------------------------- */

/* What a vectorized body does, gathered before deciding to vectorize it. */
typedef struct {
  const mfx_buffer *buf;
  const mfx_expr *idx;
  mfx_cg_linear lin;
  int is_store;
} cg_access;

typedef struct {
  mfx_cg *cg;
  int ok; /* vector code would equal the serial loop */
  cg_access *access;
  int n_access, cap_access;
  const mfx_expr **guard; /* IF conditions */
  int n_guard, cap_guard;
} cg_vec_plan;

/* Walk a VECTORIZED loop's body (its variable bound to the lane ids) into
 * p (p->cg set, p->ok 1 on entry): p->ok stays 1 when vector code equals
 * the serial loop, p->guard lists the conditions to check at the first
 * and last lane. Free with cg_vec_plan_free. */
mfx_status cg_vec_plan_body(cg_vec_plan *p, const mfx_stmt *body);
void cg_vec_plan_free(cg_vec_plan *p);

/* ---- f32 math (codegen_math.c) ------------------------------------------------ */

/* Whether op (exp, log, tanh, erf) is expanded by cg_math_unary. */
int cg_math_expands(mfx_unary_op op);
/* op of x (an f32 or a vector of f32) as inline, branch-free polynomial
 * code at the builder's position; NULL if op is not one cg_math_expands. */
LLVMValueRef cg_math_unary(mfx_cg *cg, mfx_unary_op op, LLVMValueRef x);

/* A nounwind function in cg->mod, with internal linkage if internal and
 * alwaysinline if always_inline. */
LLVMValueRef cg_add_function(mfx_cg *cg, const char *name, LLVMTypeRef type, int internal,
                             int always_inline);
void cg_add_param_attribute(mfx_cg *cg, LLVMValueRef fn, unsigned param, const char *attr);
/* Start emitting into fn (an alloca block and a first block); returns the
 * previous function state for cg_end_function. */
mfx_cg_function cg_begin_function(mfx_cg *cg, LLVMValueRef fn);
void cg_end_function(mfx_cg *cg, mfx_cg_function saved, LLVMBasicBlockRef resume);
/* count elements of type, in the current function's alloca block. */
LLVMValueRef cg_alloca(mfx_cg *cg, LLVMTypeRef type, int64_t count, const char *name);
/* Symbol for a helper of the kernel: "<kernel>_<what><n>". Caller frees. */
char *cg_helper_name(mfx_cg *cg, const char *what);

#endif
