/* GPU kernel formation: a lowered function becomes a sequence of kernels,
 * one per root-level loop nest, with launch dimensions read off the loops
 * bound to blockIdx/threadIdx and the buffers each kernel touches. Global
 * intermediates become workspace buffers. */
#include <string.h>

#include "mfx/compiler.h"

typedef struct {
  mfx_ir_visitor base; /* the scan is a visitor (ir_visit.c) */
  mfx_arena *arena;
  const mfx_func *fn;
  mfx_gpu_kernel *k;
  mfx_buffer *touched[64];
  int n_touched;
  mfx_status status;
} kernel_scan;

static int is_block(mfx_loop_kind k) { return k >= MFX_LOOP_BLOCK_X && k <= MFX_LOOP_BLOCK_Z; }
static int is_thread(mfx_loop_kind k) { return k >= MFX_LOOP_THREAD_X && k <= MFX_LOOP_THREAD_Z; }

static void touch(kernel_scan *ks, mfx_buffer *b) {
  if (b->scope != MFX_SCOPE_GLOBAL) return;
  for (int i = 0; i < ks->n_touched; i++)
    if (ks->touched[i] == b) return;
  if (ks->n_touched == 64) {
    ks->status = mfx_fail(MFX_ERR_SCHEDULE, "kernel %s: more than 64 buffers", ks->k->name);
    return;
  }
  ks->touched[ks->n_touched++] = b;
}

/* Buffers in the order the kernel first touches them (pre-order). */
static void scan_expr(mfx_ir_visitor *v, const mfx_expr *e) {
  kernel_scan *ks = (kernel_scan *)v;
  if (e->kind == MFX_EXPR_REDUCE) return;
  if (e->kind == MFX_EXPR_LOAD) touch(ks, e->u.load.buf);
  if (ks->status != MFX_OK) v->stop = 1;
  else mfx_ir_visit_expr_children(v, e);
}

static void bind_dim(kernel_scan *ks, const mfx_stmt *loop) {
  mfx_loop_kind k = loop->u.loop.kind;
  int64_t *dims = is_block(k) ? ks->k->grid : ks->k->block;
  int axis = is_block(k) ? k - MFX_LOOP_BLOCK_X : k - MFX_LOOP_THREAD_X;
  if (loop->u.loop.extent > dims[axis]) dims[axis] = loop->u.loop.extent;
}

/* The checks and launch facts of one statement (its children come after). */
static mfx_status scan_one(kernel_scan *ks, const mfx_stmt *s) {
  switch (s->kind) {
  case MFX_STMT_FOR:
    if (s->u.loop.kind == MFX_LOOP_PARALLEL)
      return mfx_fail(MFX_ERR_SCHEDULE,
                      "kernel %s: loop %s is marked parallel; on a GPU bind it to "
                      "blockIdx/threadIdx instead", ks->k->name, s->u.loop.var->name);
    if (is_block(s->u.loop.kind) || is_thread(s->u.loop.kind)) bind_dim(ks, s);
    return MFX_OK;
  case MFX_STMT_STORE: touch(ks, s->u.store.buf); return ks->status;
  case MFX_STMT_ALLOCATE:
    if (s->u.alloc.buf->scope == MFX_SCOPE_GLOBAL)
      return mfx_fail(MFX_ERR_SCHEDULE,
                      "kernel %s: global buffer %s is allocated inside a loop nest; GPU "
                      "kernels cannot allocate global memory", ks->k->name,
                      s->u.alloc.buf->name);
    if (s->u.alloc.buf->scope == MFX_SCOPE_SHARED) {
      int64_t n = (int64_t)mfx_dtype_size(s->u.alloc.buf->dtype);
      for (int d = 0; d < s->u.alloc.buf->ndim; d++) n *= s->u.alloc.buf->shape[d];
      ks->k->shared_bytes += n;
    }
    return MFX_OK;
  default: return MFX_OK;
  }
}

static void scan_stmt_visit(mfx_ir_visitor *v, const mfx_stmt *s) {
  kernel_scan *ks = (kernel_scan *)v;
  ks->status = scan_one(ks, s);
  if (ks->status != MFX_OK) v->stop = 1;
  else mfx_ir_visit_stmt_children(v, s);
}

static void scan_stmt(kernel_scan *ks, const mfx_stmt *s) {
  ks->base = (mfx_ir_visitor){scan_expr, scan_stmt_visit, ks->status != MFX_OK};
  mfx_ir_visit_stmt(&ks->base, s);
}

static int is_func_arg(const mfx_func *fn, const mfx_buffer *b) {
  for (int i = 0; i < fn->n_args; i++)
    if (fn->args[i] == b) return 1;
  return 0;
}

static mfx_status form_kernel(mfx_arena *a, const mfx_func *fn, mfx_stmt *nest, int index,
                              mfx_gpu_kernel *k) {
  *k = (mfx_gpu_kernel){.name = mfx_arena_printf(a, "%s_k%d", fn->name, index), .body = nest,
                        .grid = {1, 1, 1}, .block = {1, 1, 1}};
  kernel_scan ks = {.arena = a, .fn = fn, .k = k, .status = MFX_OK};
  scan_stmt(&ks, nest);
  if (ks.status != MFX_OK) return ks.status;
  int64_t threads = k->block[0] * k->block[1] * k->block[2];
  if (threads > MFX_GPU_MAX_THREADS)
    return mfx_fail(MFX_ERR_SCHEDULE, "kernel %s: %lld threads per block (at most %d)", k->name,
                    (long long)threads, MFX_GPU_MAX_THREADS);
  if (k->grid[1] > 65535 || k->grid[2] > 65535)
    return mfx_fail(MFX_ERR_SCHEDULE, "kernel %s: grid y/z extent above 65535; bind the largest "
                    "loop to blockIdx.x", k->name);
  if (k->shared_bytes > 48 * 1024)
    return mfx_fail(MFX_ERR_SCHEDULE, "kernel %s: %lld bytes of shared memory (at most 49152)",
                    k->name, (long long)k->shared_bytes);
  /* Function arguments first, in their order, then workspace. */
  k->args = mfx_arena_alloc(a, sizeof(mfx_buffer *) * (size_t)(ks.n_touched + 1));
  for (int i = 0; i < fn->n_args; i++)
    for (int j = 0; j < ks.n_touched; j++)
      if (ks.touched[j] == fn->args[i]) k->args[k->n_args++] = fn->args[i];
  for (int j = 0; j < ks.n_touched; j++)
    if (!is_func_arg(fn, ks.touched[j])) k->args[k->n_args++] = ks.touched[j];
  return MFX_OK;
}

mfx_status mfx_split_kernels(mfx_arena *a, const mfx_func *fn, mfx_gpu_program **out) {
  mfx_gpu_program *p = mfx_arena_alloc(a, sizeof *p);
  p->func = fn;
  mfx_stmt *body = fn->body;
  p->workspace = mfx_arena_alloc(a, sizeof(mfx_buffer *) * 64);
  while (body && body->kind == MFX_STMT_ALLOCATE && body->u.alloc.buf->scope == MFX_SCOPE_GLOBAL) {
    if (p->n_workspace == 64) return mfx_fail(MFX_ERR_SCHEDULE, "%s: more than 64 workspace buffers", fn->name);
    p->workspace[p->n_workspace++] = body->u.alloc.buf;
    body = body->u.alloc.body;
  }
  int n = body && body->kind == MFX_STMT_SEQ ? body->u.seq.n : (body ? 1 : 0);
  p->kernels = mfx_arena_alloc(a, sizeof(mfx_gpu_kernel) * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    mfx_stmt *nest = body->kind == MFX_STMT_SEQ ? body->u.seq.items[i] : body;
    mfx_status rc = form_kernel(a, fn, nest, i, &p->kernels[i]);
    if (rc != MFX_OK) return rc;
  }
  p->n_kernels = n;
  *out = p;
  return MFX_OK;
}
