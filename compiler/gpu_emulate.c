/* GPU programs run on the CPU, for testing GPU schedules where no GPU is.
 *
 * A kernel's block loops become serial loops. Its thread loops become serial
 * loops too, but a barrier orders every thread's work before it against
 * every thread's work after it, so thread loops are sunk through the
 * (uniform) loops and sequences that contain barriers and re-created around
 * each barrier-free piece: the classic work-item loop fission. Shared
 * buffers stay one per block; a per-thread local buffer that lives across a
 * barrier gets one copy per thread. The kernels then run in order on the
 * host, with the workspace allocated around them. */
#include <string.h>

#include "mfx/compiler.h"

typedef struct {
  mfx_var *var;
  int64_t extent;
  mfx_loop_kind kind;
} thread_loop;

#define MAX_THREAD_LOOPS 3

typedef struct {
  mfx_arena *a;
  const char *kernel;
  mfx_status status;
} emulation;

static int is_thread(mfx_loop_kind k) { return k >= MFX_LOOP_THREAD_X && k <= MFX_LOOP_THREAD_Z; }
static int is_block(mfx_loop_kind k) { return k >= MFX_LOOP_BLOCK_X && k <= MFX_LOOP_BLOCK_Z; }

static int has_barrier(const mfx_stmt *s) {
  if (!s) return 0;
  switch (s->kind) {
  case MFX_STMT_BARRIER: return 1;
  case MFX_STMT_FOR: return has_barrier(s->u.loop.body);
  case MFX_STMT_LET: return has_barrier(s->u.let.body);
  case MFX_STMT_IF: return has_barrier(s->u.if_.then_s) || has_barrier(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return has_barrier(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (has_barrier(s->u.seq.items[i])) return 1;
    return 0;
  default: return 0;
  }
}

static int has_thread_loop(const mfx_stmt *s) {
  if (!s) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return is_thread(s->u.loop.kind) || has_thread_loop(s->u.loop.body);
  case MFX_STMT_LET: return has_thread_loop(s->u.let.body);
  case MFX_STMT_IF: return has_thread_loop(s->u.if_.then_s) || has_thread_loop(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return has_thread_loop(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (has_thread_loop(s->u.seq.items[i])) return 1;
    return 0;
  default: return 0;
  }
}

/* ---- rewriting: bound loops to serial ones, buffer redirection ------------------ */

static mfx_stmt *as_block_local(mfx_arena *a, mfx_stmt *s);

/* Every loop serial (block and thread loops included), shared buffers kept. */
static mfx_stmt *serialize(mfx_arena *a, mfx_stmt *s) {
  if (!s) return NULL;
  switch (s->kind) {
  case MFX_STMT_FOR: {
    mfx_loop_kind k = s->u.loop.kind;
    if (is_block(k) || is_thread(k)) k = MFX_LOOP_SERIAL;
    return mfx_stmt_for(a, s->u.loop.var, s->u.loop.extent, k, serialize(a, s->u.loop.body));
  }
  case MFX_STMT_LET: return mfx_stmt_let(a, s->u.let.var, s->u.let.value, serialize(a, s->u.let.body));
  case MFX_STMT_IF:
    return mfx_stmt_if(a, s->u.if_.cond, serialize(a, s->u.if_.then_s), serialize(a, s->u.if_.else_s));
  case MFX_STMT_ALLOCATE:
    if (s->u.alloc.buf->scope == MFX_SCOPE_SHARED) return serialize(a, as_block_local(a, s));
    return mfx_stmt_allocate(a, s->u.alloc.buf, serialize(a, s->u.alloc.body));
  case MFX_STMT_SEQ: {
    mfx_stmt **items = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(s->u.seq.n + 1));
    for (int i = 0; i < s->u.seq.n; i++) items[i] = serialize(a, s->u.seq.items[i]);
    return mfx_stmt_seq(a, s->u.seq.n, items);
  }
  default: return s;
  }
}

typedef struct {
  mfx_ir_mutator base;
  const mfx_buffer *from;
  mfx_buffer *to;
  mfx_expr *offset; /* added to every (flat) index */
} redirect;

static mfx_expr *redirect_expr(mfx_ir_mutator *m, mfx_expr *e) {
  const redirect *r = (const redirect *)m;
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_LOAD || c->u.load.buf != r->from) return c;
  mfx_expr *idx = mfx_add(m->arena, r->offset, c->u.load.idx[0]);
  return mfx_load(m->arena, r->to, 1, &idx);
}

/* An MMA's operands in `from` move to `to` like loads and stores (the
 * statement runs per thread here: see MFX_STMT_MMA). */
static mfx_stmt *redirect_mma(const redirect *r, mfx_stmt *c) {
  mfx_stmt *copy = NULL;
  for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
    if (c->u.mma.buf[i] != r->from) continue;
    if (copy == NULL) {
      copy = mfx_arena_alloc(r->base.arena, sizeof *copy);
      *copy = *c;
    }
    copy->u.mma.buf[i] = r->to;
    copy->u.mma.off[i] = mfx_add(r->base.arena, r->offset, c->u.mma.off[i]);
  }
  return copy != NULL ? copy : c;
}

static mfx_stmt *redirect_store(mfx_ir_mutator *m, mfx_stmt *s) {
  const redirect *r = (const redirect *)m;
  mfx_stmt *c = mfx_ir_mutate_stmt_children(m, s);
  if (c->kind == MFX_STMT_MMA) return redirect_mma(r, c);
  if (c->kind != MFX_STMT_STORE || c->u.store.buf != r->from) return c;
  mfx_expr *idx = mfx_add(m->arena, r->offset, c->u.store.idx[0]);
  return mfx_stmt_store(m->arena, r->to, 1, &idx, c->u.store.value);
}

/* Every access of `from` in s goes to `to`, at offset + its index. */
static mfx_stmt *redirect_stmt(mfx_arena *a, const mfx_buffer *from, mfx_buffer *to,
                               mfx_expr *offset, mfx_stmt *s) {
  redirect r = {{a, redirect_expr, redirect_store}, from, to, offset};
  return mfx_ir_mutate_stmt(&r.base, s);
}

static int64_t buffer_elems(const mfx_buffer *b) {
  int64_t n = 1;
  for (int d = 0; d < b->ndim; d++) n *= b->shape[d];
  return n;
}

/* A shared buffer becomes one host buffer per block: the allocation sits in
 * the block loops, outside the (sunk) thread loops. */
static mfx_stmt *as_block_local(mfx_arena *a, mfx_stmt *s) {
  const mfx_buffer *b = s->u.alloc.buf;
  mfx_buffer *copy = mfx_buffer_create(a, mfx_arena_printf(a, "%s.block", b->name), b->dtype, 1,
                                       (int64_t[]){buffer_elems(b)}, MFX_SCOPE_LOCAL);
  return mfx_stmt_allocate(a, copy, redirect_stmt(a, b, copy, mfx_i64(a, 0), s->u.alloc.body));
}

/* ---- warp sums -------------------------------------------------------------------- */

/* warp_sum(x) at lane tx becomes sum_j x[tx := tx - tx % 32 + j], j < 32:
 * the threads run one after the other, so the warp's lanes are summed by
 * evaluating x at each of them (x a pure function of the loop variables and
 * the data, the lets it reads inlined first). */
typedef struct {
  mfx_ir_mutator base;
  emulation *em;
  const mfx_var *lane;
  int64_t lanes;     /* threadIdx.x's extent */
  mfx_expr **lets;   /* var id -> its let value, lets inlined */
} warp_rewrite;

static mfx_expr *warp_expr(mfx_ir_mutator *m, mfx_expr *e) {
  warp_rewrite *w = (warp_rewrite *)m;
  mfx_expr *c = mfx_ir_mutate_expr_children(m, e);
  if (c->kind != MFX_EXPR_UNARY || c->u.un.op != MFX_WARP_SUM || w->em->status != MFX_OK)
    return c;
  mfx_arena *a = m->arena;
  if (w->lane == NULL || w->lanes % 32 != 0) {
    w->em->status = mfx_fail(MFX_ERR_SCHEDULE, "gpu emulation of %s: warp_sum %s; a warp sum "
                             "needs threadIdx.x over whole warps (a multiple of 32 threads)",
                             w->em->kernel, w->lane ? "with a partial warp" : "outside threadIdx.x");
    return c;
  }
  mfx_expr *x = mfx_expr_substitute(a, c->u.un.a, w->lets);
  mfx_expr **at = mfx_arena_alloc(a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(a));
  mfx_expr *lane = mfx_var_ref(a, (mfx_var *)w->lane);
  mfx_expr *base = mfx_sub(a, lane, mfx_binary(a, MFX_MOD, lane, mfx_i64(a, 32)));
  mfx_expr *sum = NULL;
  for (int64_t j = 0; j < 32; j++) {
    at[w->lane->id] = mfx_add(a, base, mfx_i64(a, j));
    mfx_expr *term = mfx_expr_substitute(a, x, at);
    sum = sum ? mfx_add(a, sum, term) : term;
  }
  return mfx_simplify_expr(a, sum);
}

static mfx_stmt *warp_stmt(mfx_ir_mutator *m, mfx_stmt *s) {
  warp_rewrite *w = (warp_rewrite *)m;
  mfx_arena *a = m->arena;
  if (s->kind == MFX_STMT_FOR && s->u.loop.kind == MFX_LOOP_THREAD_X) {
    const mfx_var *saved = w->lane;
    int64_t saved_lanes = w->lanes;
    w->lane = s->u.loop.var;
    w->lanes = s->u.loop.extent;
    mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.loop.body);
    w->lane = saved;
    w->lanes = saved_lanes;
    return mfx_stmt_for(a, s->u.loop.var, s->u.loop.extent, s->u.loop.kind, body);
  }
  if (s->kind != MFX_STMT_LET) return mfx_ir_mutate_stmt_children(m, s);
  mfx_expr *value = mfx_ir_mutate_expr(m, s->u.let.value);
  int id = s->u.let.var->id;
  mfx_expr *saved = w->lets[id];
  w->lets[id] = mfx_expr_substitute(a, value, w->lets);
  mfx_stmt *body = mfx_ir_mutate_stmt(m, s->u.let.body);
  w->lets[id] = saved;
  return mfx_stmt_let(a, s->u.let.var, value, body);
}

typedef struct {
  mfx_ir_visitor base;
  int found;
} warp_finder;

static void warp_find(mfx_ir_visitor *v, const mfx_expr *e) {
  if (e->kind == MFX_EXPR_UNARY && e->u.un.op == MFX_WARP_SUM) {
    ((warp_finder *)v)->found = 1;
    v->stop = 1;
    return;
  }
  mfx_ir_visit_expr_children(v, e);
}

static mfx_stmt *rewrite_warp_sums(emulation *em, mfx_stmt *s, const thread_loop *t, int nt) {
  warp_finder f = {{warp_find, NULL, 0}, 0};
  mfx_ir_visit_stmt(&f.base, s);
  if (!f.found) return s;
  warp_rewrite w = {{em->a, warp_expr, warp_stmt}, em, NULL, 0, NULL};
  w.lets = mfx_arena_alloc(em->a, sizeof(mfx_expr *) * (size_t)mfx_arena_var_count(em->a));
  for (int i = 0; i < nt; i++)
    if (t[i].kind == MFX_LOOP_THREAD_X) {
      w.lane = t[i].var;
      w.lanes = t[i].extent;
    }
  return mfx_ir_mutate_stmt(&w.base, s);
}

/* ---- fission at barriers ---------------------------------------------------------- */

/* s (free of barriers) once per thread of the pending thread loops. */
static mfx_stmt *per_thread(emulation *em, mfx_stmt *s, const thread_loop *t, int nt) {
  s = serialize(em->a, rewrite_warp_sums(em, s, t, nt));
  for (int i = nt - 1; i >= 0; i--) s = mfx_stmt_for(em->a, t[i].var, t[i].extent, MFX_LOOP_SERIAL, s);
  return s;
}

static mfx_stmt *fission(emulation *em, mfx_stmt *s, thread_loop *t, int nt);

/* A local buffer that lives across a barrier: one copy per pending thread. */
static mfx_stmt *replicate_local(emulation *em, mfx_stmt *s, thread_loop *t, int nt) {
  mfx_arena *a = em->a;
  const mfx_buffer *b = s->u.alloc.buf;
  if (has_thread_loop(s->u.alloc.body)) {
    em->status = mfx_fail(MFX_ERR_SCHEDULE,
                          "gpu emulation of %s: local buffer %s is allocated outside a thread "
                          "loop that sits across a barrier (allocate it inside the thread loops)",
                          em->kernel, b->name);
    return s;
  }
  int64_t threads = 1, elems = buffer_elems(b);
  mfx_expr *tid = mfx_i64(a, 0);
  for (int i = nt - 1; i >= 0; i--) {
    tid = mfx_add(a, tid, mfx_mul(a, mfx_var_ref(a, t[i].var), mfx_i64(a, threads)));
    threads *= t[i].extent;
  }
  mfx_buffer *copy = mfx_buffer_create(a, mfx_arena_printf(a, "%s.threads", b->name), b->dtype, 1,
                                       (int64_t[]){threads * elems}, MFX_SCOPE_LOCAL);
  mfx_expr *offset = mfx_simplify_expr(a, mfx_mul(a, tid, mfx_i64(a, elems)));
  return mfx_stmt_allocate(a, copy, fission(em, redirect_stmt(a, b, copy, offset, s->u.alloc.body), t, nt));
}

static mfx_stmt *fission_loop(emulation *em, mfx_stmt *s, thread_loop *t, int nt) {
  mfx_loop_kind k = s->u.loop.kind;
  if (is_thread(k)) {
    for (int i = 0; i < nt; i++)
      if (t[i].var == s->u.loop.var) return fission(em, s->u.loop.body, t, nt);
    if (nt == MAX_THREAD_LOOPS) {
      em->status = mfx_fail(MFX_ERR_SCHEDULE, "gpu emulation of %s: more than %d nested thread loops",
                            em->kernel, MAX_THREAD_LOOPS);
      return s;
    }
    t[nt] = (thread_loop){s->u.loop.var, s->u.loop.extent, k};
    return fission(em, s->u.loop.body, t, nt + 1);
  }
  /* A uniform loop: every thread runs all of it, so the barrier order holds
   * iteration by iteration. */
  if (is_block(k) || k == MFX_LOOP_VECTORIZED) k = MFX_LOOP_SERIAL;
  return mfx_stmt_for(em->a, s->u.loop.var, s->u.loop.extent, k, fission(em, s->u.loop.body, t, nt));
}

static mfx_stmt *fission(emulation *em, mfx_stmt *s, thread_loop *t, int nt) {
  if (!s || em->status != MFX_OK) return s;
  mfx_arena *a = em->a;
  if (!has_barrier(s)) return per_thread(em, s, t, nt);
  switch (s->kind) {
  case MFX_STMT_BARRIER: return mfx_stmt_seq(a, 0, NULL);
  case MFX_STMT_FOR: return fission_loop(em, s, t, nt);
  case MFX_STMT_SEQ: {
    mfx_stmt **items = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(s->u.seq.n + 1));
    for (int i = 0; i < s->u.seq.n; i++) items[i] = fission(em, s->u.seq.items[i], t, nt);
    return mfx_stmt_seq(a, s->u.seq.n, items);
  }
  case MFX_STMT_ALLOCATE:
    if (s->u.alloc.buf->scope == MFX_SCOPE_LOCAL && nt > 0) return replicate_local(em, s, t, nt);
    if (s->u.alloc.buf->scope == MFX_SCOPE_SHARED) {
      mfx_stmt *local = as_block_local(a, s);
      return mfx_stmt_allocate(a, local->u.alloc.buf, fission(em, local->u.alloc.body, t, nt));
    }
    return mfx_stmt_allocate(a, s->u.alloc.buf, fission(em, s->u.alloc.body, t, nt));
  default:
    em->status = mfx_fail(MFX_ERR_SCHEDULE,
                          "gpu emulation of %s: a barrier inside a conditional or a let; barriers "
                          "must be reached by every thread", em->kernel);
    return s;
  }
}

/* ---- the program -------------------------------------------------------------------- */

mfx_status mfx_gpu_emulate_lower(mfx_arena *a, const mfx_gpu_program *p, mfx_func **out) {
  mfx_stmt **parts = mfx_arena_alloc(a, sizeof(mfx_stmt *) * (size_t)(p->n_kernels + 1));
  for (int i = 0; i < p->n_kernels; i++) {
    emulation em = {a, p->kernels[i].name, MFX_OK};
    thread_loop t[MAX_THREAD_LOOPS];
    parts[i] = fission(&em, p->kernels[i].body, t, 0);
    if (em.status != MFX_OK) return em.status;
  }
  mfx_stmt *body = mfx_stmt_seq(a, p->n_kernels, parts);
  for (int i = p->n_workspace - 1; i >= 0; i--) body = mfx_stmt_allocate(a, p->workspace[i], body);
  mfx_func *fn = mfx_arena_alloc(a, sizeof *fn);
  *fn = *p->func;
  fn->name = mfx_arena_printf(a, "%s_emulated", p->func->name);
  fn->body = mfx_simplify_stmt(a, body);
  *out = fn;
  return MFX_OK;
}

mfx_status mfx_gpu_emulate_compile(mfx_arena *a, const mfx_gpu_program *p, mfx_jit_kernel **out) {
  mfx_func *fn;
  mfx_status rc = mfx_gpu_emulate_lower(a, p, &fn);
  if (rc != MFX_OK) return rc;
  return mfx_jit_compile(fn, out);
}
