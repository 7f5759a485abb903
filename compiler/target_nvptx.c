/* The nvptx64 target: a GPU program (mfx_split_kernels) to PTX text.
 *
 * Each mfx_gpu_kernel is built as its own module by the shared code
 * generator, then the modules are linked into one, optimized (O3) and
 * printed as PTX, which goes through the kernel cache (cache.c). A kernel is
 *   ptx_kernel void NAME(T0 addrspace(1)* noalias, T1 addrspace(1)* noalias, ...)
 * with kernel->args in order; arguments the kernel never stores to are also
 * readonly, so their loads may go through the read-only cache (ld.global.nc).
 * It carries the PTX-kernel calling convention and the nvvm.annotations
 * "kernel" mark (newer LLVMs read the first, LLVM 14 either), and
 * reqntidx/y/z from the launch block, so a launch with another block size
 * fails instead of computing part of the result.
 *
 * Loops bound to blockIdx/threadIdx are no loops: their variable is
 * %ctaid/%tid of that axis. When a bound loop is shorter than the launch
 * dimension of its axis (several nests of one kernel with different
 * extents), its body is guarded by `id < extent`. A barrier must be reached
 * by every thread of the block, so a BARRIER under such a thread guard, or
 * under any IF, is an error; block guards are uniform within a block and
 * may enclose barriers. A store to global or shared memory outside the
 * loops bound to some thread axis of the launch would be executed by every
 * thread along that axis: an error too.
 *
 * SHARED buffers become internal addrspace(3) arrays (static shared
 * memory), LOCAL ones allocas (registers after SROA), BARRIER
 * llvm.nvvm.barrier0 (bar.sync 0). GLOBAL allocations cannot happen inside
 * a kernel: global intermediates are workspace arguments.
 *
 * f32 math without libdevice: exp, log, tanh and erf are the inline
 * polynomial code of codegen_math.c (the same instructions as on the CPU,
 * with its error bounds; divisions are div.rn.f32); sqrt is llvm.sqrt
 * (sqrt.rn.f32) and round llvm.rint (cvt.rni.f32.f32).
 *
 * Architectures: LLVM 14 stops at sm_86 and PTX ISA 7.5. sm_87/89/90 get
 * sm_80 PTX, which the driver JIT-compiles forward; see mfx_ptx_target. */
#include "cache.h"
#include "codegen_internal.h"

#include <llvm-c/Linker.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- architectures -------------------------------------------------------------- */

typedef struct {
  int sm;      /* requested */
  int emitted; /* the LLVM CPU / PTX .target */
  int ptx;     /* the oldest PTX ISA version LLVM 14 allows for `emitted`, times 10 */
} nvptx_arch;

static const nvptx_arch nvptx_archs[] = {
    {50, 50, 60}, {52, 52, 60}, {53, 53, 60}, {60, 60, 60}, {61, 61, 60},
    {62, 62, 60}, {70, 70, 60}, {72, 72, 61}, {75, 75, 63}, {80, 80, 70},
    {86, 86, 71}, {87, 80, 70}, {89, 80, 70}, {90, 80, 70},
};

#define NVPTX_N_ARCHS ((int)(sizeof nvptx_archs / sizeof *nvptx_archs))

static int nvptx_parse_sm(const char *sm, int *number) {
  if (sm == NULL || strncmp(sm, "sm_", 3) != 0) return 0;
  const char *digits = sm + 3;
  if (strlen(digits) != 2 || digits[0] < '0' || digits[0] > '9' || digits[1] < '0' ||
      digits[1] > '9')
    return 0;
  *number = (digits[0] - '0') * 10 + (digits[1] - '0');
  return 1;
}

mfx_status mfx_ptx_target_resolve(const char *sm, mfx_ptx_target *out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_ptx_target_resolve: NULL output");
  int number = 0;
  if (nvptx_parse_sm(sm, &number))
    for (int i = 0; i < NVPTX_N_ARCHS; i++) {
      if (nvptx_archs[i].sm != number) continue;
      *out = (mfx_ptx_target){number, nvptx_archs[i].emitted, nvptx_archs[i].ptx,
                              nvptx_archs[i].emitted < number};
      return MFX_OK;
    }
  return mfx_fail(MFX_ERR_INVALID,
                  "GPU architecture \"%s\": expected one of sm_50 sm_52 sm_53 sm_60 sm_61 "
                  "sm_62 sm_70 sm_72 sm_75 sm_80 sm_86 sm_87 sm_89 sm_90",
                  sm != NULL ? sm : "(null)");
}

/* ---- launch axes ------------------------------------------------------------------ */

enum { NVPTX_AXES = 6 }; /* blockIdx.x/y/z, then threadIdx.x/y/z */

static const char *const nvptx_axis_name[NVPTX_AXES] = {
    "blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z"};
static const char *const nvptx_dim_name[NVPTX_AXES] = {"gridDim.x",  "gridDim.y",  "gridDim.z",
                                                       "blockDim.x", "blockDim.y", "blockDim.z"};
static const char *const nvptx_sreg[NVPTX_AXES] = {
    "llvm.nvvm.read.ptx.sreg.ctaid.x", "llvm.nvvm.read.ptx.sreg.ctaid.y",
    "llvm.nvvm.read.ptx.sreg.ctaid.z", "llvm.nvvm.read.ptx.sreg.tid.x",
    "llvm.nvvm.read.ptx.sreg.tid.y",   "llvm.nvvm.read.ptx.sreg.tid.z"};

/* 0..5 for BLOCK_X..THREAD_Z, -1 for the other kinds. */
static int nvptx_axis(mfx_loop_kind k) {
  if (k < MFX_LOOP_BLOCK_X || k > MFX_LOOP_THREAD_Z) return -1;
  return (int)k - (int)MFX_LOOP_BLOCK_X;
}

static int nvptx_is_thread_axis(int axis) { return axis >= 3; }

static int64_t nvptx_launch_dim(const mfx_gpu_kernel *k, int axis) {
  return axis < 3 ? k->grid[axis] : k->block[axis - 3];
}

static const char *nvptx_var_name(const mfx_var *v) {
  return v != NULL && v->name != NULL ? v->name : "?";
}

static const char *nvptx_buffer_name(const mfx_buffer *b) {
  return b != NULL && b->name != NULL ? b->name : "?";
}

/* ---- checks before emission -------------------------------------------------------- */

/* What encloses a statement of the kernel. */
typedef struct {
  const mfx_var *bound[NVPTX_AXES]; /* the loop bound to each axis, or NULL */
  const mfx_stmt *diverged;         /* an IF or a guarded thread loop, or NULL */
} nvptx_context;

static mfx_status nvptx_check_stmt(mfx_cg *cg, const mfx_stmt *s, nvptx_context c);

static mfx_status nvptx_barrier_error(mfx_cg *cg, const mfx_stmt *diverged) {
  if (diverged->kind == MFX_STMT_IF)
    return cg_fail(cg, "a barrier inside a conditional: threads that skip it would never "
                       "reach it (guards must stay inside the barriers' loops)");
  const mfx_gpu_kernel *k = cg->target_data;
  int axis = nvptx_axis(diverged->u.loop.kind);
  return cg_fail(cg,
                 "a barrier inside loop %s, bound to %s with extent %lld < %s = %lld: the "
                 "threads past the extent skip the body and would never reach the barrier",
                 nvptx_var_name(diverged->u.loop.var), nvptx_axis_name[axis],
                 (long long)diverged->u.loop.extent, nvptx_dim_name[axis],
                 (long long)nvptx_launch_dim(k, axis));
}

static mfx_status nvptx_check_bound(mfx_cg *cg, const mfx_stmt *s, nvptx_context c) {
  const mfx_gpu_kernel *k = cg->target_data;
  int axis = nvptx_axis(s->u.loop.kind);
  const char *var = nvptx_var_name(s->u.loop.var);
  if (c.bound[axis] != NULL)
    return cg_fail(cg, "loop %s is bound to %s inside loop %s, bound to the same axis", var,
                   nvptx_axis_name[axis], nvptx_var_name(c.bound[axis]));
  int64_t dim = nvptx_launch_dim(k, axis);
  if (s->u.loop.extent > dim)
    return cg_fail(cg, "loop %s has extent %lld but is bound to %s with %s = %lld", var,
                   (long long)s->u.loop.extent, nvptx_axis_name[axis], nvptx_dim_name[axis],
                   (long long)dim);
  c.bound[axis] = s->u.loop.var;
  if (nvptx_is_thread_axis(axis) && s->u.loop.extent < dim) c.diverged = s;
  return nvptx_check_stmt(cg, s->u.loop.body, c);
}

static mfx_status nvptx_check_for(mfx_cg *cg, const mfx_stmt *s, nvptx_context c) {
  if (s->u.loop.var == NULL || s->u.loop.body == NULL)
    return cg_fail(cg, "for loop misses its variable or body");
  if (s->u.loop.kind == MFX_LOOP_PARALLEL)
    return cg_fail(cg,
                   "loop %s is parallel; a GPU kernel has no thread pool: bind it to "
                   "blockIdx/threadIdx instead",
                   nvptx_var_name(s->u.loop.var));
  if (nvptx_axis(s->u.loop.kind) >= 0) return nvptx_check_bound(cg, s, c);
  return nvptx_check_stmt(cg, s->u.loop.body, c);
}

/* Every thread axis of the launch with more than one thread must be bound
 * around a store to memory the threads share. */
static mfx_status nvptx_check_store(mfx_cg *cg, const mfx_stmt *s, nvptx_context c) {
  const mfx_gpu_kernel *k = cg->target_data;
  const mfx_buffer *buf = s->u.store.buf;
  if (buf == NULL || buf->scope == MFX_SCOPE_LOCAL) return MFX_OK;
  for (int axis = 3; axis < NVPTX_AXES; axis++) {
    if (c.bound[axis] != NULL || nvptx_launch_dim(k, axis) == 1) continue;
    return cg_fail(cg,
                   "a store to %s outside every loop bound to %s: all %lld threads along it "
                   "(%s) would write it and race; bind a loop around the store to %s",
                   nvptx_buffer_name(buf), nvptx_axis_name[axis],
                   (long long)nvptx_launch_dim(k, axis), nvptx_dim_name[axis],
                   nvptx_axis_name[axis]);
  }
  return MFX_OK;
}

static mfx_status nvptx_check_stmt(mfx_cg *cg, const mfx_stmt *s, nvptx_context c) {
  if (s == NULL) return MFX_OK; /* the shared code reports missing pieces */
  mfx_status st = MFX_OK;
  switch (s->kind) {
  case MFX_STMT_FOR: return nvptx_check_for(cg, s, c);
  case MFX_STMT_STORE: return nvptx_check_store(cg, s, c);
  case MFX_STMT_LET: return nvptx_check_stmt(cg, s->u.let.body, c);
  case MFX_STMT_IF:
    c.diverged = s;
    st = nvptx_check_stmt(cg, s->u.if_.then_s, c);
    return st == MFX_OK ? nvptx_check_stmt(cg, s->u.if_.else_s, c) : st;
  case MFX_STMT_ALLOCATE: return nvptx_check_stmt(cg, s->u.alloc.body, c);
  case MFX_STMT_SEQ:
    for (int i = 0; st == MFX_OK && s->u.seq.items != NULL && i < s->u.seq.n; i++)
      st = nvptx_check_stmt(cg, s->u.seq.items[i], c);
    return st;
  case MFX_STMT_BARRIER: /* and mma.sync: the whole warp must reach it */
  case MFX_STMT_MMA: return c.diverged != NULL ? nvptx_barrier_error(cg, c.diverged) : MFX_OK;
  }
  return MFX_OK;
}

/* A PTX identifier that needs no renaming: [A-Za-z_][A-Za-z0-9_]*. */
static int nvptx_valid_name(const char *name) {
  if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) return 0;
  for (const char *p = name; *p != '\0'; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_'))
      return 0;
  return 1;
}

static mfx_status nvptx_check_launch(mfx_cg *cg, const mfx_gpu_kernel *k) {
  static const int64_t max_dim[NVPTX_AXES] = {2147483647, 65535, 65535, 1024, 1024, 64};
  for (int axis = 0; axis < NVPTX_AXES; axis++) {
    int64_t dim = nvptx_launch_dim(k, axis);
    if (dim < 1 || dim > max_dim[axis])
      return cg_fail(cg, "launch dimension %s = %lld, expected 1 to %lld", nvptx_dim_name[axis],
                     (long long)dim, (long long)max_dim[axis]);
  }
  int64_t threads = k->block[0] * k->block[1] * k->block[2];
  if (threads > MFX_GPU_MAX_THREADS)
    return cg_fail(cg, "%lld threads per block (%lld x %lld x %lld), at most %d",
                   (long long)threads, (long long)k->block[0], (long long)k->block[1],
                   (long long)k->block[2], MFX_GPU_MAX_THREADS);
  return MFX_OK;
}

static mfx_status nvptx_check_kernel(mfx_cg *cg, const mfx_gpu_kernel *k) {
  if (!nvptx_valid_name(k->name))
    return cg_fail(cg, "kernel name \"%s\" is not a PTX identifier ([A-Za-z_][A-Za-z0-9_]*)",
                   k->name);
  mfx_status st = nvptx_check_launch(cg, k);
  if (st != MFX_OK) return st;
  return nvptx_check_stmt(cg, k->body, (nvptx_context){{NULL}, NULL});
}

/* ---- intrinsics ---------------------------------------------------------------------- */

/* A call of a non-overloaded intrinsic. */
static LLVMValueRef nvptx_call_intrinsic(mfx_cg *cg, const char *name, LLVMValueRef *args,
                                         unsigned n) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
  LLVMTypeRef type = LLVMIntrinsicGetType(cg->ctx, id, NULL, 0);
  return LLVMBuildCall2(cg->b, type, fn, args, n, "");
}

static mfx_status nvptx_require_intrinsics(mfx_cg *cg) {
  static const char *const names[] = {"llvm.nvvm.barrier0", "llvm.fma", "llvm.fabs",
                                      "llvm.copysign", "llvm.rint", "llvm.nvvm.rsqrt.approx.f",
                                      "llvm.nvvm.shfl.sync.bfly.f32"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++)
    if (LLVMLookupIntrinsicID(names[i], strlen(names[i])) == 0)
      return cg_fail(cg, "this LLVM has no intrinsic %s", names[i]);
  for (int axis = 0; axis < NVPTX_AXES; axis++)
    if (LLVMLookupIntrinsicID(nvptx_sreg[axis], strlen(nvptx_sreg[axis])) == 0)
      return cg_fail(cg, "this LLVM has no intrinsic %s", nvptx_sreg[axis]);
  return MFX_OK;
}

/* ---- the kernel function ------------------------------------------------------------------ */

static int nvptx_stores_to(const mfx_stmt *s, const mfx_buffer *buf) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return nvptx_stores_to(s->u.loop.body, buf);
  case MFX_STMT_STORE: return s->u.store.buf == buf;
  case MFX_STMT_LET: return nvptx_stores_to(s->u.let.body, buf);
  case MFX_STMT_IF:
    return nvptx_stores_to(s->u.if_.then_s, buf) || nvptx_stores_to(s->u.if_.else_s, buf);
  case MFX_STMT_ALLOCATE: return nvptx_stores_to(s->u.alloc.body, buf);
  case MFX_STMT_SEQ:
    for (int i = 0; s->u.seq.items != NULL && i < s->u.seq.n; i++)
      if (nvptx_stores_to(s->u.seq.items[i], buf)) return 1;
    return 0;
  case MFX_STMT_BARRIER:
  case MFX_STMT_MMA: return 0; /* its accumulators are local */
  }
  return 0;
}

static void nvptx_annotate(mfx_cg *cg, LLVMValueRef fn, const char *key, int64_t value) {
  LLVMValueRef node[3] = {
      fn, LLVMMDStringInContext(cg->ctx, key, (unsigned)strlen(key)),
      LLVMConstInt(LLVMInt32TypeInContext(cg->ctx), (unsigned long long)value, 0)};
  LLVMAddNamedMetadataOperand(cg->mod, "nvvm.annotations", LLVMMDNodeInContext(cg->ctx, node, 3));
}

/* void NAME(T addrspace(1)* noalias [readonly], ...), a PTX kernel. */
static mfx_status nvptx_declare_kernel(mfx_cg *cg, const mfx_func *fn, LLVMValueRef *out) {
  const mfx_gpu_kernel *k = cg->target_data;
  LLVMTypeRef *params = malloc(((size_t)fn->n_args + 1) * sizeof *params);
  if (params == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: kernel of %d arguments", fn->name, fn->n_args);
  for (int i = 0; i < fn->n_args; i++)
    params[i] =
        LLVMPointerType(cg_memory_type(cg, fn->args[i]->dtype), cg->target->buffer_address_space);
  LLVMTypeRef type =
      LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), params, (unsigned)fn->n_args, 0);
  free(params);
  LLVMValueRef f = cg_add_function(cg, fn->name, type, 0, 0);
  LLVMSetFunctionCallConv(f, LLVMPTXKernelCallConv);
  for (int i = 0; i < fn->n_args; i++) {
    cg_add_param_attribute(cg, f, (unsigned)i, "noalias");
    if (!nvptx_stores_to(fn->body, fn->args[i]))
      cg_add_param_attribute(cg, f, (unsigned)i, "readonly");
  }
  nvptx_annotate(cg, f, "kernel", 1);
  nvptx_annotate(cg, f, "reqntidx", k->block[0]);
  nvptx_annotate(cg, f, "reqntidy", k->block[1]);
  nvptx_annotate(cg, f, "reqntidz", k->block[2]);
  *out = f;
  return MFX_OK;
}

static mfx_status nvptx_emit_kernel(mfx_cg *cg, const mfx_func *fn) {
  const mfx_gpu_kernel *k = cg->target_data;
  if (k == NULL) return cg_fail(cg, "the nvptx target builds mfx_gpu_kernels only");
  mfx_status st = nvptx_require_intrinsics(cg);
  if (st == MFX_OK) st = nvptx_check_kernel(cg, k);
  LLVMValueRef f = NULL;
  if (st == MFX_OK) st = nvptx_declare_kernel(cg, fn, &f);
  if (st != MFX_OK) return st;
  mfx_cg_function saved = cg_begin_function(cg, f);
  int mark = cg_scope_mark(cg);
  for (int i = 0; st == MFX_OK && i < fn->n_args; i++)
    st = cg_bind_buffer(cg, fn->args[i], LLVMGetParam(f, (unsigned)i));
  if (st == MFX_OK) st = cg_emit_stmt(cg, fn->body);
  if (st == MFX_OK) LLVMBuildRetVoid(cg->b);
  cg_scope_pop(cg, mark);
  cg_end_function(cg, saved, NULL);
  return st;
}

/* ---- bound loops, shared memory, barriers ---------------------------------------------- */

/* %ctaid or %tid of axis as i64, known to lie in [0, dim). */
static LLVMValueRef nvptx_read_index(mfx_cg *cg, int axis, int64_t dim, const char *name) {
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  LLVMValueRef id = nvptx_call_intrinsic(cg, nvptx_sreg[axis], NULL, 0);
  LLVMValueRef range[2] = {LLVMConstInt(i32, 0, 0), LLVMConstInt(i32, (unsigned long long)dim, 0)};
  LLVMSetMetadata(id, LLVMGetMDKindIDInContext(cg->ctx, "range", 5),
                  LLVMMDNodeInContext(cg->ctx, range, 2));
  return LLVMBuildZExt(cg->b, id, cg_i64(cg), name);
}

static mfx_status nvptx_emit_bound_body(mfx_cg *cg, const mfx_stmt *s, LLVMValueRef id) {
  int mark = cg_scope_mark(cg);
  mfx_status st = cg_bind_var(cg, s->u.loop.var, MFX_I64, id, (mfx_cg_linear){0, 1, 0});
  if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.loop.body);
  cg_scope_pop(cg, mark);
  return st;
}

/* The loop's variable is the block or thread index; a loop shorter than
 * the launch dimension runs its body under `id < extent`. */
static mfx_status nvptx_emit_for(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_gpu_kernel *k = cg->target_data;
  int axis = nvptx_axis(s->u.loop.kind);
  const char *var = nvptx_var_name(s->u.loop.var);
  if (axis < 0)
    return cg_fail(cg, "loop %s: %s loops cannot run on the %s target", var,
                   mfx_loop_kind_name(s->u.loop.kind), cg->target->name);
  if (cg->vec_var != NULL) return cg_fail(cg, "loop %s: a GPU-bound loop inside vector code", var);
  int64_t dim = nvptx_launch_dim(k, axis);
  LLVMValueRef id = nvptx_read_index(cg, axis, dim, var);
  if (s->u.loop.extent >= dim) return nvptx_emit_bound_body(cg, s, id);
  LLVMValueRef extent = LLVMConstInt(cg_i64(cg), (unsigned long long)s->u.loop.extent, 0);
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, "bound");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, "endbound");
  LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntULT, id, extent, ""), body, join);
  LLVMPositionBuilderAtEnd(cg->b, body);
  mfx_status st = nvptx_emit_bound_body(cg, s, id);
  if (st != MFX_OK) return st;
  LLVMBuildBr(cg->b, join);
  LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(cg->b));
  LLVMPositionBuilderAtEnd(cg->b, join);
  return MFX_OK;
}

#define NVPTX_MAX_STATIC_SHARED (48 * 1024)

/* One internal addrspace(3) array per allocation: static shared memory. */
static mfx_status nvptx_emit_allocate(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_buffer *buf = s->u.alloc.buf;
  if (buf->scope != MFX_SCOPE_SHARED)
    return cg_fail(cg,
                   "buffer %s: a GPU kernel cannot allocate global memory; global "
                   "intermediates are workspace arguments (mfx_split_kernels)",
                   nvptx_buffer_name(buf));
  int64_t numel;
  mfx_status st = cg_buffer_numel(cg, buf, &numel);
  if (st != MFX_OK) return st;
  int64_t bytes = numel * (int64_t)mfx_dtype_size(buf->dtype);
  if (bytes > NVPTX_MAX_STATIC_SHARED)
    return cg_fail(cg,
                   "shared buffer %s needs %lld bytes; static shared memory is at most %d "
                   "per block",
                   nvptx_buffer_name(buf), (long long)bytes, NVPTX_MAX_STATIC_SHARED);
  char *name = cg_helper_name(cg, "shared");
  if (name == NULL) return mfx_fail(MFX_ERR_NOMEM, "codegen %s: shared buffer name", cg->kernel);
  LLVMTypeRef elem = cg_memory_type(cg, buf->dtype);
  LLVMTypeRef array = LLVMArrayType(elem, (unsigned)numel);
  LLVMValueRef g = LLVMAddGlobalInAddressSpace(cg->mod, array, name, 3);
  free(name);
  LLVMSetLinkage(g, LLVMInternalLinkage);
  LLVMSetInitializer(g, LLVMGetUndef(array)); /* shared memory has no initial value */
  LLVMSetAlignment(g, 16);
  LLVMValueRef zero[2] = {LLVMConstInt(cg_i64(cg), 0, 0), LLVMConstInt(cg_i64(cg), 0, 0)};
  LLVMValueRef base = LLVMBuildInBoundsGEP2(cg->b, array, g, zero, 2, "");
  int mark = cg_scope_mark(cg);
  st = cg_bind_buffer(cg, buf, base);
  if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.alloc.body);
  cg_scope_pop(cg, mark);
  return st;
}

/* cp.async.ca.shared.global [dst], [src], bytes (sm_80+, cg_check_mma_arch). */
static void nvptx_emit_async_copy(mfx_cg *cg, LLVMValueRef dst, LLVMValueRef src, int bytes) {
  char name[64];
  snprintf(name, sizeof name, "llvm.nvvm.cp.async.ca.shared.global.%d", bytes);
  LLVMTypeRef i8 = LLVMInt8TypeInContext(cg->ctx);
  LLVMValueRef args[2] = {LLVMBuildBitCast(cg->b, dst, LLVMPointerType(i8, 3), ""),
                          LLVMBuildBitCast(cg->b, src, LLVMPointerType(i8, 1), "")};
  nvptx_call_intrinsic(cg, name, args, 2);
}

/* bar.sync 0, after cp.async.commit_group + cp.async.wait_group 0 when the
 * barrier waits for this thread's async copies. */
static mfx_status nvptx_emit_barrier(mfx_cg *cg, const mfx_stmt *s) {
  if (cg->vec_var != NULL) return cg_fail(cg, "a barrier inside vector code");
  if (s->u.bar.wait_async) {
    LLVMValueRef zero = LLVMConstInt(LLVMInt32TypeInContext(cg->ctx), 0, 0);
    nvptx_call_intrinsic(cg, "llvm.nvvm.cp.async.commit.group", NULL, 0);
    nvptx_call_intrinsic(cg, "llvm.nvvm.cp.async.wait.group", &zero, 1);
  }
  nvptx_call_intrinsic(cg, "llvm.nvvm.barrier0", NULL, 0);
  return MFX_OK;
}

/* rsqrt.approx.f32 (max relative error 2^-22.9 in the PTX ISA's table), and
 * the warp's sum by five butterfly shuffles (shfl.sync.bfly, all 32 lanes):
 * every lane ends with the same total, summed in the same order. */
static int nvptx_emit_unary(mfx_cg *cg, mfx_unary_op op, LLVMValueRef a, LLVMValueRef *out) {
  if (LLVMGetTypeKind(LLVMTypeOf(a)) != LLVMFloatTypeKind) return 0; /* no vector forms */
  if (op == MFX_RSQRT) {
    *out = nvptx_call_intrinsic(cg, "llvm.nvvm.rsqrt.approx.f", &a, 1);
    return 1;
  }
  if (op != MFX_WARP_SUM) return 0;
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  LLVMValueRef sum = a;
  for (unsigned lanes = 16; lanes >= 1; lanes /= 2) {
    LLVMValueRef args[4] = {LLVMConstInt(i32, 0xffffffffu, 0), sum, LLVMConstInt(i32, lanes, 0),
                            LLVMConstInt(i32, 31, 0)};
    LLVMValueRef other = nvptx_call_intrinsic(cg, "llvm.nvvm.shfl.sync.bfly.f32", args, 4);
    sum = LLVMBuildFAdd(cg->b, sum, other, "");
  }
  *out = sum;
  return 1;
}

static const mfx_cg_target nvptx_target = {
    .name = "nvptx64 (CUDA)",
    .emit_unary = nvptx_emit_unary,
    .buffer_address_space = 1,
    .emit_kernel = nvptx_emit_kernel,
    .emit_for = nvptx_emit_for,
    .emit_allocate = nvptx_emit_allocate,
    .emit_barrier = nvptx_emit_barrier,
    .emit_async_copy = nvptx_emit_async_copy,
    .emit_mma = cg_nvptx_mma,
};

/* ---- the target machine ------------------------------------------------------------------ */

#define NVPTX_TRIPLE "nvptx64-nvidia-cuda"

static pthread_once_t nvptx_llvm_once = PTHREAD_ONCE_INIT;

static void nvptx_llvm_initialize(void) {
  LLVMInitializeNVPTXTargetInfo();
  LLVMInitializeNVPTXTarget();
  LLVMInitializeNVPTXTargetMC();
  LLVMInitializeNVPTXAsmPrinter();
}

static mfx_status nvptx_target_machine(const mfx_ptx_target *t, LLVMTargetMachineRef *out) {
  if (pthread_once(&nvptx_llvm_once, nvptx_llvm_initialize) != 0)
    return mfx_fail(MFX_ERR_CODEGEN, "codegen: initializing the NVPTX target failed");
  LLVMTargetRef target;
  char *message = NULL;
  if (LLVMGetTargetFromTriple(NVPTX_TRIPLE, &target, &message)) {
    mfx_status st = mfx_fail(MFX_ERR_CODEGEN, "codegen: this LLVM has no NVPTX target (%s)",
                             message != NULL ? message : "no message");
    LLVMDisposeMessage(message);
    return st;
  }
  char cpu[16], features[16];
  snprintf(cpu, sizeof cpu, "sm_%d", t->sm_emitted);
  snprintf(features, sizeof features, "+ptx%d", t->ptx_version);
  *out = LLVMCreateTargetMachine(target, NVPTX_TRIPLE, cpu, features, LLVMCodeGenLevelAggressive,
                                 LLVMRelocDefault, LLVMCodeModelDefault);
  if (*out == NULL)
    return mfx_fail(MFX_ERR_CODEGEN, "codegen: no NVPTX target machine for %s (%s)", cpu, features);
  return MFX_OK;
}

/* ---- the program ------------------------------------------------------------------------- */

static mfx_status nvptx_check_program(const mfx_gpu_program *p) {
  if (p == NULL || p->n_kernels <= 0 || p->kernels == NULL)
    return mfx_fail(MFX_ERR_INVALID, "codegen: a GPU program without kernels");
  const char *name = p->func != NULL && p->func->name != NULL ? p->func->name : "?";
  for (int i = 0; i < p->n_kernels; i++) {
    const mfx_gpu_kernel *k = &p->kernels[i];
    if (k->name == NULL || k->body == NULL || k->n_args < 0 || (k->n_args > 0 && k->args == NULL))
      return mfx_fail(MFX_ERR_INVALID, "codegen %s: kernel %d misses its name, body or arguments",
                      name, i);
    for (int j = 0; j < i; j++)
      if (strcmp(p->kernels[j].name, k->name) == 0)
        return mfx_fail(MFX_ERR_INVALID, "codegen %s: kernels %d and %d are both named %s", name, j,
                        i, k->name);
  }
  return MFX_OK;
}

static mfx_status nvptx_build_kernel(const mfx_gpu_kernel *k, LLVMContextRef ctx,
                                     LLVMTargetMachineRef tm, LLVMModuleRef *out) {
  mfx_func fn = {.name = k->name, .n_args = k->n_args, .args = k->args, .body = k->body};
  return cg_build_module_with(&fn, &nvptx_target, k, ctx, tm, out);
}

/* Every kernel in one module: each built alone, then linked in. */
static mfx_status nvptx_build_program(const mfx_gpu_program *p, LLVMContextRef ctx,
                                      LLVMTargetMachineRef tm, LLVMModuleRef *out) {
  *out = NULL;
  mfx_status st = nvptx_check_program(p);
  for (int i = 0; st == MFX_OK && i < p->n_kernels; i++) {
    LLVMModuleRef m = NULL;
    st = nvptx_build_kernel(&p->kernels[i], ctx, tm, &m);
    if (st != MFX_OK) break;
    if (*out == NULL) {
      *out = m;
    } else if (LLVMLinkModules2(*out, m)) { /* m is gone either way */
      st = mfx_fail(MFX_ERR_CODEGEN, "codegen: linking kernel %s into the module failed",
                    p->kernels[i].name);
    }
  }
  if (st != MFX_OK && *out != NULL) {
    LLVMDisposeModule(*out);
    *out = NULL;
  }
  return st;
}

/* "// mfx: ..." and the PTX, in one malloc'd string. */
static mfx_status nvptx_prepend_note(const mfx_ptx_target *t, char **data, size_t *size) {
  char note[256];
  int n;
  if (t->forward_jit)
    n = snprintf(note, sizeof note,
                 "// mfx: requested sm_%d; LLVM 14 emits PTX up to sm_86, so this is sm_%d PTX "
                 "(ISA %d.%d) that the CUDA driver JIT-compiles for sm_%d\n",
                 t->sm_requested, t->sm_emitted, t->ptx_version / 10, t->ptx_version % 10,
                 t->sm_requested);
  else
    n = snprintf(note, sizeof note, "// mfx: sm_%d PTX (ISA %d.%d)\n", t->sm_emitted,
                 t->ptx_version / 10, t->ptx_version % 10);
  char *joined = malloc((size_t)n + *size + 1);
  if (joined == NULL) return mfx_fail(MFX_ERR_NOMEM, "codegen: %zu bytes of PTX", *size);
  memcpy(joined, note, (size_t)n);
  memcpy(joined + n, *data, *size + 1);
  free(*data);
  *data = joined;
  *size += (size_t)n;
  return MFX_OK;
}

static mfx_status nvptx_emit(const mfx_gpu_program *p, const mfx_ptx_target *t,
                             LLVMTargetMachineRef tm, mfx_emit_kind kind, char **data,
                             size_t *size) {
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = NULL;
  mfx_status st = nvptx_build_program(p, ctx, tm, &mod);
  if (st == MFX_OK) {
    mfx_cache_note_codegen();
    mfx_compile_note_build(0);
  }
  if (st == MFX_OK) st = cg_optimize_module(mod, tm);
  if (st == MFX_OK) st = cg_emit_module(mod, tm, kind, data, size);
  if (st == MFX_OK && kind == MFX_EMIT_ASM) st = nvptx_prepend_note(t, data, size);
  if (st != MFX_OK) {
    free(*data);
    *data = NULL;
    *size = 0;
  }
  if (mod != NULL) LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  return st;
}

mfx_status mfx_codegen_gpu_emit(const mfx_gpu_program *p, const char *sm, mfx_emit_kind kind,
                                char **data, size_t *size) {
  if (data == NULL || size == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_codegen_gpu_emit: NULL output");
  *data = NULL;
  *size = 0;
  if (kind != MFX_EMIT_LL && kind != MFX_EMIT_ASM)
    return mfx_fail(MFX_ERR_INVALID,
                    "mfx_codegen_gpu_emit: GPU code is LLVM IR or PTX text (MFX_EMIT_LL or "
                    "MFX_EMIT_ASM); ptxas or the CUDA driver turn PTX into a binary");
  mfx_ptx_target t;
  mfx_status st = mfx_ptx_target_resolve(sm, &t);
  if (st == MFX_OK) st = cg_check_mma_arch(p, t.sm_requested, t.sm_emitted);
  if (st != MFX_OK) return st;
  /* PTX goes through the kernel cache (compiler/cache.c); LLVM IR does not. */
  mfx_cache_key key;
  int keyed = kind == MFX_EMIT_ASM && mfx_cache_key_gpu(p, &t, &key) == 0;
  if (keyed && mfx_cache_load_kind(MFX_CACHE_PTX, &key, data, size)) {
    mfx_compile_note_build(1);
    return MFX_OK;
  }
  LLVMTargetMachineRef tm = NULL;
  st = nvptx_target_machine(&t, &tm);
  if (st != MFX_OK) return st;
  st = nvptx_emit(p, &t, tm, kind, data, size);
  LLVMDisposeTargetMachine(tm);
  if (st == MFX_OK && keyed) mfx_cache_store_kind(MFX_CACHE_PTX, &key, *data, *size);
  return st;
}

mfx_status mfx_codegen_ptx(const mfx_gpu_program *p, const char *sm, char **ptx, size_t *size) {
  return mfx_codegen_gpu_emit(p, sm, MFX_EMIT_ASM, ptx, size);
}
