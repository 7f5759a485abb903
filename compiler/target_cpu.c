/* The host x86-64 CPU target: the kernel ABI (entry, PARALLEL loops on the
 * runtime's thread pool, GLOBAL buffers from env->alloc), a target machine
 * for the real host CPU, the ORC LLJIT and LL/assembly/object output.
 *
 * ABI (runtime.h, mfx_cpu_kernel_fn):
 *   int32_t NAME(void **args, const mfx_kernel_env *env)
 * loads each argument pointer and calls
 *   internal alwaysinline i32 NAME_body(T0 *noalias, ..., env)
 * so the optimizer keeps the no-alias facts after inlining. The body keeps
 * an i32 flag that GLOBAL allocations set to 1 when env->alloc fails; the
 * kernel returns it. A PARALLEL loop becomes
 *   internal void NAME_parallelN(i8 *closure, i64 begin, i64 end)
 * (an mfx_parallel_body) run by env->parallel_for; the closure, a struct on
 * the caller's stack, holds env, the flag's address and every variable and
 * buffer the loop body uses from outside. */
#include "cache.h"
#include "codegen_internal.h"

#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { CPU_ENV_POOL, CPU_ENV_PARALLEL_FOR, CPU_ENV_ALLOC, CPU_ENV_FREE, CPU_ENV_FIELDS };

/* ---- the kernel environment ------------------------------------------------------ */

/* void (i8 *closure, i64 begin, i64 end) */
static LLVMTypeRef cpu_parallel_body_type(mfx_cg *cg) {
  LLVMTypeRef params[3] = {cg_i8_ptr(cg), cg_i64(cg), cg_i64(cg)};
  return LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), params, 3, 0);
}

/* The function type behind a function-pointer field of the env. */
static LLVMTypeRef cpu_env_function_type(mfx_cg *cg, int field) {
  LLVMTypeRef i8p = cg_i8_ptr(cg);
  LLVMTypeRef size_t_type = LLVMIntPtrTypeInContext(cg->ctx, cg->layout);
  LLVMTypeRef parallel_for[4] = {i8p, LLVMPointerType(cpu_parallel_body_type(cg), 0), i8p,
                                 cg_i64(cg)};
  if (field == CPU_ENV_PARALLEL_FOR)
    return LLVMFunctionType(LLVMInt32TypeInContext(cg->ctx), parallel_for, 4, 0);
  if (field == CPU_ENV_ALLOC) return LLVMFunctionType(i8p, &size_t_type, 1, 0);
  return LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), &i8p, 1, 0);
}

static LLVMTypeRef cpu_env_field_type(mfx_cg *cg, int field) {
  if (field == CPU_ENV_POOL) return cg_i8_ptr(cg);
  return LLVMPointerType(cpu_env_function_type(cg, field), 0);
}

/* %mfx_kernel_env, laid out as runtime.h's struct. */
static LLVMTypeRef cpu_env_type(mfx_cg *cg) {
  LLVMTypeRef t = LLVMGetTypeByName2(cg->ctx, "mfx_kernel_env");
  if (t != NULL) return t;
  LLVMTypeRef fields[CPU_ENV_FIELDS];
  for (int i = 0; i < CPU_ENV_FIELDS; i++) fields[i] = cpu_env_field_type(cg, i);
  t = LLVMStructCreateNamed(cg->ctx, "mfx_kernel_env");
  LLVMStructSetBody(t, fields, CPU_ENV_FIELDS, 0);
  return t;
}

static LLVMTypeRef cpu_env_ptr_type(mfx_cg *cg) { return LLVMPointerType(cpu_env_type(cg), 0); }

static LLVMValueRef cpu_env_field(mfx_cg *cg, int field) {
  LLVMValueRef p = LLVMBuildStructGEP2(cg->b, cpu_env_type(cg), cg->fn.env, (unsigned)field, "");
  return LLVMBuildLoad2(cg->b, cpu_env_field_type(cg, field), p, "");
}

static LLVMValueRef cpu_call_env(mfx_cg *cg, int field, LLVMValueRef *args, unsigned n) {
  LLVMValueRef fn = cpu_env_field(cg, field);
  return LLVMBuildCall2(cg->b, cpu_env_function_type(cg, field), fn, args, n, "");
}

/* ---- the entry and its body ----------------------------------------------------- */

static LLVMTypeRef cpu_buffer_ptr_type(mfx_cg *cg, const mfx_buffer *buf) {
  return LLVMPointerType(cg_memory_type(cg, buf->dtype), cg->target->buffer_address_space);
}

/* NAME(args, env): load the argument pointers, call the body. */
static void cpu_emit_entry(mfx_cg *cg, const mfx_func *fn, LLVMValueRef entry, LLVMValueRef body,
                           LLVMTypeRef body_type, LLVMValueRef *call_args) {
  mfx_cg_function saved = cg_begin_function(cg, entry);
  LLVMValueRef args = LLVMGetParam(entry, 0);
  for (int i = 0; i < fn->n_args; i++) {
    LLVMValueRef index = LLVMConstInt(cg_i64(cg), (unsigned long long)i, 0);
    LLVMValueRef slot = LLVMBuildInBoundsGEP2(cg->b, cg_i8_ptr(cg), args, &index, 1, "");
    LLVMValueRef p = LLVMBuildLoad2(cg->b, cg_i8_ptr(cg), slot, "");
    call_args[i] = LLVMBuildBitCast(cg->b, p, cpu_buffer_ptr_type(cg, fn->args[i]), "");
  }
  call_args[fn->n_args] = LLVMGetParam(entry, 1);
  LLVMValueRef r = LLVMBuildCall2(cg->b, body_type, body, call_args, (unsigned)fn->n_args + 1, "");
  LLVMBuildRet(cg->b, r);
  cg_end_function(cg, saved, NULL);
}

static mfx_status cpu_emit_body(mfx_cg *cg, const mfx_func *fn, LLVMValueRef body) {
  mfx_cg_function saved = cg_begin_function(cg, body);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  cg->fn.env = LLVMGetParam(body, (unsigned)fn->n_args);
  cg->fn.fail_flag = cg_alloca(cg, i32, 1, "alloc_failed");
  LLVMBuildStore(cg->b, LLVMConstNull(i32), cg->fn.fail_flag);
  int mark = cg_scope_mark(cg);
  mfx_status st = MFX_OK;
  for (int i = 0; st == MFX_OK && i < fn->n_args; i++)
    st = cg_bind_buffer(cg, fn->args[i], LLVMGetParam(body, (unsigned)i));
  if (st == MFX_OK) st = cg_emit_stmt(cg, fn->body);
  if (st == MFX_OK) LLVMBuildRet(cg->b, LLVMBuildLoad2(cg->b, i32, cg->fn.fail_flag, ""));
  cg_scope_pop(cg, mark);
  cg_end_function(cg, saved, NULL);
  return st;
}

static mfx_status cpu_emit_kernel(mfx_cg *cg, const mfx_func *fn) {
  int n = fn->n_args;
  LLVMTypeRef *params = malloc(((size_t)n + 1) * sizeof *params);
  LLVMValueRef *call_args = malloc(((size_t)n + 1) * sizeof *call_args);
  char *body_name = malloc(strlen(fn->name) + sizeof "_body");
  if (params == NULL || call_args == NULL || body_name == NULL) {
    free(params), free(call_args), free(body_name);
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: entry of %d arguments", fn->name, n);
  }
  for (int i = 0; i < n; i++) params[i] = cpu_buffer_ptr_type(cg, fn->args[i]);
  params[n] = cpu_env_ptr_type(cg);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg->ctx);
  LLVMTypeRef body_type = LLVMFunctionType(i32, params, (unsigned)n + 1, 0);
  strcpy(body_name, fn->name);
  strcat(body_name, "_body");
  LLVMValueRef body = cg_add_function(cg, body_name, body_type, 1, 1);
  for (int i = 0; i < n; i++) cg_add_param_attribute(cg, body, (unsigned)i, "noalias");
  LLVMTypeRef entry_params[2] = {LLVMPointerType(cg_i8_ptr(cg), 0), cpu_env_ptr_type(cg)};
  LLVMValueRef entry =
      cg_add_function(cg, fn->name, LLVMFunctionType(i32, entry_params, 2, 0), 0, 0);
  cpu_emit_entry(cg, fn, entry, body, body_type, call_args);
  mfx_status st = cpu_emit_body(cg, fn, body);
  free(params), free(call_args), free(body_name);
  return st;
}

/* ---- PARALLEL loops -------------------------------------------------------------- */

/* The outlined loop: what it captures, its two functions, its closure. */
typedef struct {
  mfx_cg_binding *captured;
  int n;
  LLVMTypeRef closure_type; /* { env *, i32 *, captured... } */
  LLVMTypeRef chunk_type;   /* void (captured..., env *, i32 *, i64 begin, i64 end) */
  LLVMValueRef entry;       /* the mfx_parallel_body */
  LLVMValueRef chunk;       /* internal alwaysinline: the loop over a chunk */
} cpu_outline;

static mfx_status cpu_outline_types(mfx_cg *cg, cpu_outline *o) {
  LLVMTypeRef *fields = malloc(((size_t)o->n + 4) * sizeof *fields);
  if (fields == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: closure of %d values", cg->kernel, o->n);
  LLVMTypeRef env = cpu_env_ptr_type(cg),
              flag = LLVMPointerType(LLVMInt32TypeInContext(cg->ctx), 0);
  for (int i = 0; i < o->n; i++) fields[i] = LLVMTypeOf(o->captured[i].value);
  fields[o->n] = env;
  fields[o->n + 1] = flag;
  fields[o->n + 2] = cg_i64(cg);
  fields[o->n + 3] = cg_i64(cg);
  o->chunk_type = LLVMFunctionType(LLVMVoidTypeInContext(cg->ctx), fields, (unsigned)o->n + 4, 0);
  /* closure: env, flag, then the captured values */
  memmove(fields + 2, fields, (size_t)o->n * sizeof *fields);
  fields[0] = env;
  fields[1] = flag;
  o->closure_type = LLVMStructTypeInContext(cg->ctx, fields, (unsigned)o->n + 2, 0);
  free(fields);
  return MFX_OK;
}

static mfx_status cpu_outline_functions(mfx_cg *cg, cpu_outline *o) {
  char *name = cg_helper_name(cg, "parallel");
  char *chunk_name = name != NULL ? malloc(strlen(name) + sizeof "_chunk") : NULL;
  if (chunk_name == NULL) {
    free(name);
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: helper name", cg->kernel);
  }
  strcpy(chunk_name, name);
  strcat(chunk_name, "_chunk");
  o->entry = cg_add_function(cg, name, cpu_parallel_body_type(cg), 1, 0);
  o->chunk = cg_add_function(cg, chunk_name, o->chunk_type, 1, 1);
  for (int i = 0; i < o->n; i++)
    if (o->captured[i].is_buffer) cg_add_param_attribute(cg, o->chunk, (unsigned)i, "noalias");
  free(name);
  free(chunk_name);
  return MFX_OK;
}

/* Fill the closure and hand the loop to env->parallel_for. */
static void cpu_emit_parallel_call(mfx_cg *cg, const cpu_outline *o, int64_t extent) {
  LLVMValueRef closure = cg_alloca(cg, o->closure_type, 1, "closure");
  for (int i = 0; i < o->n + 2; i++) {
    LLVMValueRef v = i == 0 ? cg->fn.env : i == 1 ? cg->fn.fail_flag : o->captured[i - 2].value;
    LLVMBuildStore(cg->b, v, LLVMBuildStructGEP2(cg->b, o->closure_type, closure, (unsigned)i, ""));
  }
  LLVMValueRef args[4] = {cpu_env_field(cg, CPU_ENV_POOL), o->entry,
                          LLVMBuildBitCast(cg->b, closure, cg_i8_ptr(cg), ""),
                          LLVMConstInt(cg_i64(cg), (unsigned long long)extent, 0)};
  cpu_call_env(cg, CPU_ENV_PARALLEL_FOR, args, 4);
}

/* entry(closure, begin, end): unpack the closure, call the chunk loop. */
static mfx_status cpu_emit_parallel_entry(mfx_cg *cg, const cpu_outline *o) {
  LLVMValueRef *args = malloc(((size_t)o->n + 4) * sizeof *args);
  if (args == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: closure of %d values", cg->kernel, o->n);
  mfx_cg_function saved = cg_begin_function(cg, o->entry);
  LLVMValueRef closure =
      LLVMBuildBitCast(cg->b, LLVMGetParam(o->entry, 0), LLVMPointerType(o->closure_type, 0), "");
  for (int i = 0; i < o->n + 2; i++) {
    LLVMValueRef p = LLVMBuildStructGEP2(cg->b, o->closure_type, closure, (unsigned)i, "");
    LLVMTypeRef t = LLVMStructGetTypeAtIndex(o->closure_type, (unsigned)i);
    int slot = i < 2 ? o->n + i : i - 2; /* env, flag go after the captured values */
    args[slot] = LLVMBuildLoad2(cg->b, t, p, "");
  }
  args[o->n + 2] = LLVMGetParam(o->entry, 1);
  args[o->n + 3] = LLVMGetParam(o->entry, 2);
  LLVMBuildCall2(cg->b, o->chunk_type, o->chunk, args, (unsigned)o->n + 4, "");
  LLVMBuildRetVoid(cg->b);
  cg_end_function(cg, saved, NULL);
  free(args);
  return MFX_OK;
}

/* chunk(captured..., env, flag, begin, end): the loop over [begin, end),
 * seeing only what it was passed. */
static mfx_status cpu_emit_parallel_chunk(mfx_cg *cg, const cpu_outline *o, const mfx_stmt *s) {
  mfx_cg_function saved = cg_begin_function(cg, o->chunk);
  int floor = cg->scope_floor, mark = cg_scope_mark(cg);
  cg->scope_floor = mark;
  mfx_status st = MFX_OK;
  for (int i = 0; st == MFX_OK && i < o->n; i++)
    st = cg_rebind(cg, &o->captured[i], LLVMGetParam(o->chunk, (unsigned)i));
  cg->fn.env = LLVMGetParam(o->chunk, (unsigned)o->n);
  cg->fn.fail_flag = LLVMGetParam(o->chunk, (unsigned)o->n + 1);
  if (st == MFX_OK)
    st = cg_emit_range_loop(cg, s->u.loop.var, LLVMGetParam(o->chunk, (unsigned)o->n + 2),
                            LLVMGetParam(o->chunk, (unsigned)o->n + 3), 1, s->u.loop.body);
  if (st == MFX_OK) LLVMBuildRetVoid(cg->b);
  cg_scope_pop(cg, mark);
  cg->scope_floor = floor;
  cg_end_function(cg, saved, NULL);
  return st;
}

static mfx_status cpu_emit_parallel(mfx_cg *cg, const mfx_stmt *s) {
  cpu_outline o = {0};
  mfx_status st = cg_free_bindings(cg, s->u.loop.body, &o.captured, &o.n);
  if (st == MFX_OK) st = cpu_outline_types(cg, &o);
  if (st == MFX_OK) st = cpu_outline_functions(cg, &o);
  if (st == MFX_OK) {
    LLVMBasicBlockRef resume;
    cpu_emit_parallel_call(cg, &o, s->u.loop.extent);
    resume = LLVMGetInsertBlock(cg->b);
    st = cpu_emit_parallel_entry(cg, &o);
    if (st == MFX_OK) st = cpu_emit_parallel_chunk(cg, &o, s);
    LLVMPositionBuilderAtEnd(cg->b, resume);
  }
  free(o.captured);
  return st;
}

static mfx_status cpu_emit_for(mfx_cg *cg, const mfx_stmt *s) {
  const char *var = s->u.loop.var->name != NULL ? s->u.loop.var->name : "?";
  if (s->u.loop.kind != MFX_LOOP_PARALLEL)
    return cg_fail(cg,
                   "loop %s: %s loops need a GPU target; the %s target runs serial, "
                   "parallel, vectorized and unrolled loops",
                   var, mfx_loop_kind_name(s->u.loop.kind), cg->target->name);
  if (cg->vec_var != NULL) return cg_fail(cg, "loop %s: a parallel loop inside vector code", var);
  return cpu_emit_parallel(cg, s);
}

/* ---- GLOBAL buffers ---------------------------------------------------------------- */

/* p = env->alloc(bytes); if (!p) *flag = 1; else { body; env->free(p); } */
static mfx_status cpu_emit_allocate(mfx_cg *cg, const mfx_stmt *s) {
  const mfx_buffer *buf = s->u.alloc.buf;
  if (buf->scope != MFX_SCOPE_GLOBAL)
    return cg_fail(cg,
                   "buffer %s: shared memory needs a GPU target; the %s target has GLOBAL "
                   "and LOCAL buffers",
                   buf->name != NULL ? buf->name : "?", cg->target->name);
  int64_t numel;
  mfx_status st = cg_buffer_numel(cg, buf, &numel);
  if (st != MFX_OK) return st;
  LLVMTypeRef size_t_type = LLVMIntPtrTypeInContext(cg->ctx, cg->layout);
  LLVMValueRef bytes =
      LLVMConstInt(size_t_type, (unsigned long long)numel * mfx_dtype_size(buf->dtype), 0);
  LLVMValueRef raw = cpu_call_env(cg, CPU_ENV_ALLOC, &bytes, 1);
  LLVMBasicBlockRef failed = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, "alloc_failed");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, "allocated");
  LLVMBasicBlockRef join = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn.fn, "freed");
  LLVMBuildCondBr(cg->b, LLVMBuildIsNull(cg->b, raw, ""), failed, ok);
  LLVMPositionBuilderAtEnd(cg->b, failed);
  LLVMValueRef set =
      LLVMBuildStore(cg->b, LLVMConstInt(LLVMInt32TypeInContext(cg->ctx), 1, 0), cg->fn.fail_flag);
  LLVMSetOrdering(set, LLVMAtomicOrderingMonotonic); /* chunks may fail together */
  LLVMSetAlignment(set, 4);
  LLVMBuildBr(cg->b, join);
  LLVMPositionBuilderAtEnd(cg->b, ok);
  int mark = cg_scope_mark(cg);
  st = cg_bind_buffer(cg, buf, LLVMBuildBitCast(cg->b, raw, cpu_buffer_ptr_type(cg, buf), ""));
  if (st == MFX_OK) st = cg_emit_stmt(cg, s->u.alloc.body);
  cg_scope_pop(cg, mark);
  if (st != MFX_OK) return st;
  cpu_call_env(cg, CPU_ENV_FREE, &raw, 1);
  LLVMBuildBr(cg->b, join);
  LLVMMoveBasicBlockAfter(join, LLVMGetInsertBlock(cg->b));
  LLVMPositionBuilderAtEnd(cg->b, join);
  return MFX_OK;
}

static mfx_status cpu_emit_barrier(mfx_cg *cg, const mfx_stmt *s) {
  (void)s;
  return cg_fail(cg,
                 "BARRIER needs a GPU target; the %s target has no thread blocks to "
                 "synchronize",
                 cg->target->name);
}

static const mfx_cg_target cpu_target = {
    .name = "x86-64 host",
    .buffer_address_space = 0,
    .emit_kernel = cpu_emit_kernel,
    .emit_for = cpu_emit_for,
    .emit_allocate = cpu_emit_allocate,
    .emit_barrier = cpu_emit_barrier,
};

/* ---- the host machine ---------------------------------------------------------------- */

static pthread_once_t cpu_llvm_once = PTHREAD_ONCE_INIT;
static int cpu_llvm_failed;

static void cpu_llvm_initialize(void) {
  cpu_llvm_failed = LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter();
}

static mfx_status cpu_llvm_ready(void) {
  if (pthread_once(&cpu_llvm_once, cpu_llvm_initialize) != 0 || cpu_llvm_failed)
    return mfx_fail(MFX_ERR_CODEGEN, "codegen: this LLVM has no native (host) target or "
                                     "assembly printer");
  return MFX_OK;
}

/* The real host CPU with its features, at CodeGenLevelAggressive. */
static mfx_status cpu_target_machine(LLVMRelocMode reloc, LLVMCodeModel code_model,
                                     LLVMTargetMachineRef *out) {
  char *triple = LLVMGetDefaultTargetTriple();
  char *message = NULL;
  LLVMTargetRef target;
  if (LLVMGetTargetFromTriple(triple, &target, &message)) {
    mfx_status st = mfx_fail(MFX_ERR_CODEGEN, "codegen: host triple %s: %s", triple,
                             message != NULL ? message : "(no message)");
    LLVMDisposeMessage(message);
    LLVMDisposeMessage(triple);
    return st;
  }
  char *cpu = LLVMGetHostCPUName();
  char *features = LLVMGetHostCPUFeatures();
  *out = LLVMCreateTargetMachine(target, triple, cpu, features, LLVMCodeGenLevelAggressive, reloc,
                                 code_model);
  mfx_status st = MFX_OK;
  if (*out == NULL)
    st = mfx_fail(MFX_ERR_CODEGEN, "codegen: no target machine for %s (cpu %s)", triple, cpu);
  LLVMDisposeMessage(features);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(triple);
  return st;
}

static mfx_status cpu_build_optimized(const mfx_func *fn, LLVMContextRef ctx,
                                      LLVMTargetMachineRef tm, LLVMModuleRef *out) {
  mfx_status st = cg_build_module(fn, &cpu_target, ctx, tm, out);
  if (st == MFX_OK) st = cg_optimize_module(*out, tm);
  if (st != MFX_OK && *out != NULL) {
    LLVMDisposeModule(*out);
    *out = NULL;
  }
  return st;
}

mfx_status mfx_codegen_emit(const mfx_func *fn, mfx_emit_kind kind, char **data, size_t *size) {
  if (data == NULL || size == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_codegen_emit: NULL output");
  *data = NULL;
  *size = 0;
  mfx_status st = cpu_llvm_ready();
  LLVMTargetMachineRef tm = NULL;
  if (st == MFX_OK) st = cpu_target_machine(LLVMRelocPIC, LLVMCodeModelDefault, &tm);
  if (st != MFX_OK) return st;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = NULL;
  st = cpu_build_optimized(fn, ctx, tm, &mod);
  if (st == MFX_OK) st = cg_emit_module(mod, tm, kind, data, size);
  if (mod != NULL) LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  LLVMDisposeTargetMachine(tm);
  return st;
}

/* ---- the JIT ---------------------------------------------------------------------- */

struct mfx_jit_kernel {
  LLVMOrcLLJITRef jit;
  mfx_cpu_kernel_fn entry;
};

/* An LLJIT whose target machine is the host's (same CPU, features and
 * optimization level as cpu_target_machine), resolving library calls
 * from the process (memset, memcpy that LLVM may emit). */
static mfx_status cpu_create_jit(LLVMOrcLLJITRef *out) {
  LLVMTargetMachineRef tm;
  mfx_status st = cpu_target_machine(LLVMRelocDefault, LLVMCodeModelJITDefault, &tm);
  if (st != MFX_OK) return st;
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(
      builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
  LLVMErrorRef err = LLVMOrcCreateLLJIT(out, builder);
  if (err != NULL) return cg_fail_llvm(MFX_ERR_CODEGEN, err, "codegen: creating the LLJIT");
  LLVMOrcDefinitionGeneratorRef process;
  err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
      &process, LLVMOrcLLJITGetGlobalPrefix(*out), NULL, NULL);
  if (err != NULL) {
    LLVMConsumeError(LLVMOrcDisposeLLJIT(*out));
    *out = NULL;
    return cg_fail_llvm(MFX_ERR_CODEGEN, err, "codegen: process symbols for the LLJIT");
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(*out), process);
  return MFX_OK;
}

/* The host object for fn: from the kernel cache when a verified entry
 * exists, else built (IR, optimization, codegen with tm) and stored. */
static mfx_status cpu_object(const mfx_func *fn, LLVMTargetMachineRef tm,
                             LLVMMemoryBufferRef *out) {
  char *triple = LLVMGetTargetMachineTriple(tm), *cpu = LLVMGetTargetMachineCPU(tm);
  char *features = LLVMGetTargetMachineFeatureString(tm);
  mfx_cache_key key;
  int keyed = mfx_cache_key_func(fn, triple, cpu, features, &key) == 0;
  LLVMDisposeMessage(triple);
  LLVMDisposeMessage(cpu);
  LLVMDisposeMessage(features);
  char *data = NULL;
  size_t size = 0;
  if (keyed && mfx_cache_load(&key, &data, &size)) {
    *out = LLVMCreateMemoryBufferWithMemoryRangeCopy(data, size, fn->name);
    free(data);
    mfx_compile_note_build(1);
    return MFX_OK;
  }
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = NULL;
  mfx_status st = cpu_build_optimized(fn, ctx, tm, &mod);
  char *message = NULL;
  if (st == MFX_OK) {
    mfx_cache_note_codegen();
    mfx_compile_note_build(0);
    double t0 = mfx_now_seconds();
    LLVMBool failed = LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &message, out);
    mfx_compile_time_add(MFX_PHASE_CODEGEN, mfx_now_seconds() - t0);
    if (failed) {
      st = mfx_fail(MFX_ERR_CODEGEN, "codegen: emitting the object of %s: %s", fn->name,
                    message != NULL ? message : "(no message)");
      LLVMDisposeMessage(message);
    }
  }
  if (mod != NULL) LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  if (st == MFX_OK && keyed)
    mfx_cache_store(&key, LLVMGetBufferStart(*out), LLVMGetBufferSize(*out));
  return st;
}

/* Hand the object to the JIT (which owns it then) and find the entry. */
static mfx_status cpu_jit_load(LLVMOrcLLJITRef jit, LLVMMemoryBufferRef obj, const char *name,
                               mfx_cpu_kernel_fn *entry) {
  LLVMErrorRef err = LLVMOrcLLJITAddObjectFile(jit, LLVMOrcLLJITGetMainJITDylib(jit), obj);
  if (err != NULL)
    return cg_fail_llvm(MFX_ERR_CODEGEN, err, "codegen: adding the object to the LLJIT");
  LLVMOrcExecutorAddress address = 0;
  err = LLVMOrcLLJITLookup(jit, &address, name);
  if (err != NULL) return cg_fail_llvm(MFX_ERR_CODEGEN, err, "codegen: JIT-linking the kernel");
  *entry = (mfx_cpu_kernel_fn)(uintptr_t)address;
  return MFX_OK;
}

mfx_status mfx_jit_compile(const mfx_func *fn, mfx_jit_kernel **out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_jit_compile: NULL output");
  *out = NULL;
  mfx_status st = cpu_llvm_ready();
  LLVMTargetMachineRef tm = NULL;
  if (st == MFX_OK) st = cpu_target_machine(LLVMRelocDefault, LLVMCodeModelJITDefault, &tm);
  if (st != MFX_OK) return st;
  LLVMMemoryBufferRef obj = NULL;
  st = cpu_object(fn, tm, &obj);
  LLVMDisposeTargetMachine(tm);
  mfx_jit_kernel *k = NULL;
  if (st == MFX_OK) {
    k = calloc(1, sizeof *k);
    if (k == NULL) st = mfx_fail(MFX_ERR_NOMEM, "mfx_jit_compile: kernel handle");
  }
  if (st == MFX_OK) st = cpu_create_jit(&k->jit);
  if (st == MFX_OK) {
    double t0 = mfx_now_seconds();
    st = cpu_jit_load(k->jit, obj, fn->name, &k->entry);
    mfx_compile_time_add(MFX_PHASE_LINK, mfx_now_seconds() - t0);
    obj = NULL; /* owned by the JIT now, even on failure */
  }
  if (obj != NULL) LLVMDisposeMemoryBuffer(obj);
  if (st != MFX_OK) {
    mfx_jit_free(k);
    return st;
  }
  *out = k;
  return MFX_OK;
}

mfx_cpu_kernel_fn mfx_jit_entry(const mfx_jit_kernel *k) { return k != NULL ? k->entry : NULL; }

void mfx_jit_free(mfx_jit_kernel *k) {
  if (k == NULL) return;
  if (k->jit != NULL) {
    LLVMErrorRef err = LLVMOrcDisposeLLJIT(k->jit);
    if (err != NULL) LLVMConsumeError(err);
  }
  free(k);
}
