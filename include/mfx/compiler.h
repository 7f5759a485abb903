/* mfx compiler: tensor expressions, schedules, loop IR, passes, printers and
 * LLVM code generation. The pipeline, in file order:
 *
 *   parse.c     TE text -> tensor expressions
 *   te.c        tensor expressions (placeholders, computes, reductions);
 *               bounds.c proves every load inside its tensor
 *   schedule.c  schedule primitives: annotate stages, never rewrite them
 *   ir.c, ir_visit.c, ir_substitute.c  nodes, the visitor/mutator, substitution
 *   lower.c     schedule + TE -> loop IR (bounds, guards, local accumulators);
 *               lower_region.c (cache_read/compute_at buffers), lower_verify.c
 *   passes.c    the pass table lowering runs: simplify.c, flatten.c
 *   print.c     text form of every layer
 *   build.c     mfx_build: the one driver from a schedule to what is emitted
 *   codegen_llvm.c  loop IR -> LLVM IR -> host JIT / object / assembly;
 *               codegen_math.c expands exp, log, tanh, erf (every target)
 *   target_nvptx.c  GPU programs (kernels.c) -> PTX for nvptx64
 *
 * All nodes of one compilation live in one mfx_arena and die together. */
#ifndef MFX_COMPILER_H
#define MFX_COMPILER_H

#include <stdio.h>
#include "mfx/runtime.h"
#include "mfx/target.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- arena ---------------------------------------------------------------- */

typedef struct mfx_arena mfx_arena;

mfx_arena *mfx_arena_create(void);
void mfx_arena_destroy(mfx_arena *a);
/* Zeroed memory; aborts never: returns NULL only if malloc fails. */
void *mfx_arena_alloc(mfx_arena *a, size_t bytes);
char *mfx_arena_strdup(mfx_arena *a, const char *s);
char *mfx_arena_printf(mfx_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- expressions ---------------------------------------------------------- */

typedef enum {
  MFX_EXPR_INT,    /* integer constant of `type` */
  MFX_EXPR_FLOAT,  /* f32 constant */
  MFX_EXPR_VAR,    /* an axis / loop variable / let variable */
  MFX_EXPR_LOAD,   /* buf[idx...] */
  MFX_EXPR_BINARY,
  MFX_EXPR_UNARY,
  MFX_EXPR_SELECT, /* cond ? a : b */
  MFX_EXPR_CAST,
  MFX_EXPR_REDUCE, /* only as the whole body of a compute */
} mfx_expr_kind;

typedef enum {
  MFX_ADD, MFX_SUB, MFX_MUL, MFX_DIV, MFX_MOD, MFX_MIN, MFX_MAX,
  MFX_AND, MFX_OR, MFX_XOR, MFX_SHL, MFX_SHR, /* SHR: arithmetic if signed */
  /* Integer ADD/SUB/MUL wrap modulo 2^bits; i64 (indices) must not overflow. */
  MFX_LT, MFX_LE, MFX_GT, MFX_GE, MFX_EQ, MFX_NE,
  MFX_LAND, MFX_LOR, /* on bool */
  MFX_BINARY_OP_COUNT
} mfx_binary_op;

typedef enum {
  MFX_NEG, MFX_NOT /* bitwise, or logical on bool */, MFX_POPCOUNT,
  MFX_ABS, MFX_SQRT, MFX_EXP, MFX_LOG, MFX_TANH,
  MFX_ERF,   /* the error function */
  MFX_ROUND, /* to the nearest integer, ties to even (rint), as f32 */
  MFX_RSQRT, /* 1 / sqrt(x): on a GPU the approximate instruction (rel. error < 2^-22) */
  /* GPU only: the sum of x over the 32 lanes of the thread's warp (threadIdx.x / 32),
   * every lane getting the total; all 32 lanes must evaluate it together (no guard
   * may split a warp). The GPU emulation sums the expression over the warp's lanes. */
  MFX_WARP_SUM,
  MFX_UNARY_OP_COUNT
  /* From MFX_SQRT on, every operator takes and gives f32. */
} mfx_unary_op;

typedef enum { MFX_REDUCE_SUM, MFX_REDUCE_MAX, MFX_REDUCE_MIN, MFX_REDUCE_OR,
               MFX_REDUCE_OP_COUNT } mfx_reduce_op;

typedef struct mfx_var mfx_var;
typedef struct mfx_buffer mfx_buffer;
typedef struct mfx_expr mfx_expr;

struct mfx_var {
  const char *name;
  int64_t extent;  /* values lie in [0, extent); 0: unknown (let variables) */
  int is_reduce;   /* a reduction axis */
  int id;          /* unique within its arena */
};

typedef enum { MFX_SCOPE_GLOBAL, MFX_SCOPE_SHARED, MFX_SCOPE_LOCAL } mfx_scope;

struct mfx_buffer {
  const char *name;
  mfx_dtype dtype;
  int ndim;
  int64_t shape[MFX_MAX_DIMS];
  mfx_scope scope;
  int id;
  struct mfx_tensor *tensor; /* the tensor it holds, if any */
};

struct mfx_expr {
  mfx_expr_kind kind;
  mfx_dtype type;
  union {
    int64_t i;   /* INT */
    double f;    /* FLOAT */
    mfx_var *var;
    struct { mfx_buffer *buf; int n; mfx_expr **idx; } load;
    struct { mfx_binary_op op; mfx_expr *a, *b; } bin;
    struct { mfx_unary_op op; mfx_expr *a; } un;
    struct { mfx_expr *cond, *a, *b; } sel;
    struct { mfx_expr *a; } cast;
    struct { mfx_reduce_op op; int n_axes; mfx_var **axes; mfx_expr *src; } red;
  } u;
};

/* Builders. Binary/select builders type-check: both operands of one type
 * (integer constants adopt the other side's type), comparisons give bool.
 * On a type error they return NULL and set mfx_last_error(). */
mfx_expr *mfx_int(mfx_arena *a, mfx_dtype t, int64_t v);
mfx_expr *mfx_i64(mfx_arena *a, int64_t v);
mfx_expr *mfx_f32(mfx_arena *a, double v);
mfx_expr *mfx_var_ref(mfx_arena *a, mfx_var *v); /* type i64 */
mfx_expr *mfx_load(mfx_arena *a, mfx_buffer *b, int n, mfx_expr *const *idx);
mfx_expr *mfx_binary(mfx_arena *a, mfx_binary_op op, mfx_expr *x, mfx_expr *y);
mfx_expr *mfx_unary(mfx_arena *a, mfx_unary_op op, mfx_expr *x);
mfx_expr *mfx_select(mfx_arena *a, mfx_expr *cond, mfx_expr *x, mfx_expr *y);
mfx_expr *mfx_cast(mfx_arena *a, mfx_dtype t, mfx_expr *x);
mfx_expr *mfx_reduce(mfx_arena *a, mfx_reduce_op op, int n_axes, mfx_var *const *axes,
                     mfx_expr *src);
/* Shorthands. */
#define mfx_add(A, X, Y) mfx_binary((A), MFX_ADD, (X), (Y))
#define mfx_sub(A, X, Y) mfx_binary((A), MFX_SUB, (X), (Y))
#define mfx_mul(A, X, Y) mfx_binary((A), MFX_MUL, (X), (Y))

mfx_var *mfx_var_create(mfx_arena *a, const char *name, int64_t extent, int is_reduce);
mfx_buffer *mfx_buffer_create(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                              const int64_t *shape, mfx_scope scope);
/* The identity element of a reduction for type t, as a constant. */
mfx_expr *mfx_reduce_identity(mfx_arena *a, mfx_reduce_op op, mfx_dtype t);

/* Replace variables: returns a copy of e where var->id maps to repl[var->id]
 * (NULL: keep). repl has mfx_arena_var_count() entries. */
mfx_expr *mfx_expr_substitute(mfx_arena *a, mfx_expr *e, mfx_expr **repl);
int mfx_arena_var_count(const mfx_arena *a);
int mfx_expr_uses_var(const mfx_expr *e, const mfx_var *v);

/* ---- tensor expressions --------------------------------------------------- */

typedef struct mfx_tensor mfx_tensor;
struct mfx_tensor {
  mfx_buffer *buf;   /* name, dtype, shape */
  int is_placeholder;
  int n_axes;        /* computes: one spatial axis per dimension */
  mfx_var *axes[MFX_MAX_DIMS];
  mfx_expr *body;    /* computes: value at axes; may be a REDUCE */
  int n_inputs;      /* tensors this compute reads */
  mfx_tensor **inputs;
};

mfx_tensor *mfx_placeholder(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                            const int64_t *shape);
/* Start a compute: creates its axes (named by axis_names, or i0, i1, ...);
 * then build the body from them and finish with mfx_compute_set_body. */
mfx_tensor *mfx_compute_begin(mfx_arena *a, const char *name, mfx_dtype t, int ndim,
                              const int64_t *shape, const char *const *axis_names);
mfx_status mfx_compute_set_body(mfx_arena *a, mfx_tensor *t, mfx_expr *body);
/* Index helpers for writing bodies: t[i...] as an expression. */
mfx_expr *mfx_tensor_load(mfx_arena *a, mfx_tensor *t, int n, mfx_expr *const *idx);

/* ---- schedules -------------------------------------------------------------- */

typedef enum {
  MFX_LOOP_SERIAL,
  MFX_LOOP_PARALLEL,
  MFX_LOOP_VECTORIZED,
  MFX_LOOP_UNROLLED,
  /* GPU bindings (the nvptx target). */
  MFX_LOOP_BLOCK_X, MFX_LOOP_BLOCK_Y, MFX_LOOP_BLOCK_Z,
  MFX_LOOP_THREAD_X, MFX_LOOP_THREAD_Y, MFX_LOOP_THREAD_Z,
  MFX_LOOP_KIND_COUNT
} mfx_loop_kind;

typedef enum { MFX_TAIL_GUARD, MFX_TAIL_EXACT } mfx_tail;

typedef struct mfx_itervar mfx_itervar;
struct mfx_itervar {
  mfx_var *var;           /* the loop variable */
  int64_t extent;
  int is_reduce;
  mfx_loop_kind kind;     /* annotation, applied by lowering and codegen */
  int is_leaf;            /* not split or fused away */
};

typedef enum { MFX_REL_SPLIT, MFX_REL_FUSE } mfx_relation_kind;
typedef struct {
  mfx_relation_kind kind;
  mfx_itervar *parent, *outer, *inner; /* split: parent -> outer, inner */
  mfx_itervar *fused;                  /* fuse: outer, inner -> fused */
  int64_t factor;
  mfx_tail tail;
} mfx_relation;

#define MFX_MAX_ITERVARS 48
#define MFX_MAX_RELATIONS 40
#define MFX_MAX_ATTACHED 4
typedef struct mfx_stage mfx_stage;

/* A buffer a stage fills once per iteration of one of its loops and then
 * reads instead of the tensor: a cached copy of an input (cache_read) or the
 * needed region of an elementwise producer (compute_at). */
typedef struct {
  mfx_tensor *tensor;  /* what the stage's loads read */
  mfx_scope scope;     /* SHARED (cooperative, with barriers) or LOCAL */
  mfx_itervar *at;     /* refilled at the start of each iteration of this leaf */
  int compute;         /* 1: compute_at (evaluate the producer), 0: copy */
  int double_buffer;   /* SHARED: two buffers, the next iteration's copied
                        * (async stores) while this one's is read */
} mfx_attached;
struct mfx_stage {
  mfx_tensor *tensor;
  int n_root;                     /* the tensor's axes, then reduce axes */
  mfx_itervar *root[MFX_MAX_DIMS * 2];
  int n_itervars;
  mfx_itervar *itervars[MFX_MAX_ITERVARS];
  int n_relations;
  mfx_relation relations[MFX_MAX_RELATIONS];
  int n_leaves;                   /* the loop nest, outermost first */
  mfx_itervar *leaves[MFX_MAX_ITERVARS];
  int is_output;
  int inlined;                    /* compute_inline */
  mfx_itervar *local_at;          /* cache_write(local) accumulating below it */
  int unguarded_update;           /* 1: mfx_sched_unguarded_update, 2: _reduce */
  int n_attached;
  mfx_attached attached[MFX_MAX_ATTACHED];
  mfx_stage *attached_to;         /* compute_at: the consumer that computes it */
  mfx_stage *epilogue;            /* fuse_epilogue: the consumer applied at write-back */
  mfx_stage *fused_into;          /* fuse_epilogue: the reduction that computes it */
  struct mfx_stmt *nest;          /* mfx_sched_set_nest: its loops, built by a template */
};

typedef struct mfx_schedule {
  mfx_arena *arena;
  int n_stages;                   /* computes, producers before consumers */
  mfx_stage **stages;
  int n_inputs;                   /* placeholders: the kernel's first arguments */
  mfx_tensor **inputs;
  int n_outputs;
  mfx_tensor **outputs;
} mfx_schedule;

/* A schedule over everything the outputs read. The kernel's arguments are
 * the inputs (placeholders; every placeholder read must be listed) in the
 * given order, then the outputs. Stages start in the default order: spatial
 * axes, then reduction axes, all serial. */
mfx_status mfx_sched_create(mfx_arena *a, int n_inputs, mfx_tensor *const *inputs,
                               int n_outputs, mfx_tensor *const *outputs,
                               mfx_schedule **out);
/* Parse the text form that mfx_print_te writes (placeholder/compute lines,
 * C-precedence expressions, reductions as sum(k < K: expr)). The inputs are
 * the placeholders in order; the outputs are the computes nothing reads.
 * Errors name file:line:col and what was expected. */
mfx_status mfx_te_parse(mfx_arena *a, const char *text, const char *file, mfx_schedule **out);

mfx_stage *mfx_sched_stage(mfx_schedule *s, const mfx_tensor *t);
/* Find an itervar by name among a stage's itervars (NULL if none). */
mfx_itervar *mfx_sched_itervar(mfx_stage *st, const char *name);

mfx_status mfx_sched_split(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, int64_t factor,
                           mfx_tail tail, mfx_itervar **outer, mfx_itervar **inner);
mfx_status mfx_sched_fuse(mfx_schedule *s, mfx_stage *st, mfx_itervar *outer,
                          mfx_itervar *inner, mfx_itervar **fused);
/* New order for the named leaves; leaves not named keep their slots. */
mfx_status mfx_sched_reorder(mfx_schedule *s, mfx_stage *st, int n, mfx_itervar *const *order);
/* tile(x, y, fx, fy) = split both, reorder xo, yo, xi, yi. */
mfx_status mfx_sched_tile(mfx_schedule *s, mfx_stage *st, mfx_itervar *x, mfx_itervar *y,
                          int64_t fx, int64_t fy, mfx_tail tail, mfx_itervar **xo,
                          mfx_itervar **yo, mfx_itervar **xi, mfx_itervar **yi);
mfx_status mfx_sched_vectorize(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv);
mfx_status mfx_sched_unroll(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv);
mfx_status mfx_sched_parallel(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv);
mfx_status mfx_sched_bind(mfx_schedule *s, mfx_stage *st, mfx_itervar *iv, mfx_loop_kind k);
/* Inline an elementwise (non-reduction, non-output) stage into its consumers. */
mfx_status mfx_sched_compute_inline(mfx_schedule *s, mfx_stage *st);
/* Accumulate the stage in a local buffer covering the spatial loops below
 * `at` (a leaf), written back once per iteration of `at`. */
mfx_status mfx_sched_cache_write_local(mfx_schedule *s, mfx_stage *st, mfx_itervar *at);
/* The update of st's local accumulator (cache_write_local) runs without the
 * guards of its spatial axes where lowering finds that safe: every read of
 * the update is an attached tile (filled whole, zeros past the tensor's
 * edge) and nothing divides by data; the write-back stays guarded, and so
 * does the reduction axis. Partial tiles then cost no branch per term. */
mfx_status mfx_sched_unguarded_update(mfx_schedule *s, mfx_stage *st);
/* As mfx_sched_unguarded_update, and the reduction axis's guards go too
 * (a reduction step that does not divide K reads the zeros of its tiles
 * past K): the caller vouches that a term of zero-filled tiles is the
 * reduction's identity (shift_linear's form 3: ((x >> 0) & 0) ^ 0 = 0;
 * not hamming, whose term of zeros is 32). */
mfx_status mfx_sched_unguarded_reduce(mfx_schedule *s, mfx_stage *st);
/* Epilogue fusion: the elementwise `consumer` C[i...] = f(R[i...], ...) of
 * the reduction `reduction` (R) is computed from R's local accumulator as
 * it is written back (cache_write_local is required by lowering), R is
 * never stored, and C's loops are R's. Refuses a consumer that is a
 * reduction, scheduled, inlined or attached, of another shape, or that reads
 * R at other than its own index (through stages inlined into it too); an R
 * that is an output or read by any other stage (checked at lowering). */
mfx_status mfx_sched_fuse_epilogue(mfx_schedule *s, mfx_stage *reduction, mfx_stage *consumer);
/* 1 when every load of `buf` in e (a consumer body) reads it at exactly the
 * consumer's axes, in order; 0 if some load reads it elsewhere. */
int mfx_expr_reads_at_axes(const mfx_expr *e, const mfx_buffer *buf, const mfx_tensor *consumer);
/* 1 when e loads `buf` anywhere. */
int mfx_expr_reads(const mfx_expr *e, const mfx_buffer *buf);

/* Serve the stage's loads of `input` (a placeholder or another stage's
 * tensor) inside loop `at` from a buffer in `scope`, refilled at the start
 * of each iteration of `at`. SHARED: the block's threads fill it together
 * (thread-bound loops count as inside `at`), with barriers around the fill;
 * LOCAL: each thread (or the CPU) fills its own. The region is inferred from
 * the load indices, which must be affine in the loops. */
mfx_status mfx_sched_cache_read(mfx_schedule *s, mfx_stage *st, mfx_tensor *input,
                                mfx_scope scope, mfx_itervar *at);
/* Compute the elementwise stage `producer` inside loop `at` of `consumer`,
 * only over the region the consumer reads there, into a `scope` buffer. */
mfx_status mfx_sched_compute_at(mfx_schedule *s, mfx_stage *producer, mfx_stage *consumer,
                                mfx_itervar *at, mfx_scope scope);

/* The stage's loop nest as a template built it (loop IR, before flattening:
 * a tensor's loads and stores take one index per dimension), instead of
 * lowering its split/bound loops: for forms the schedule primitives cannot
 * state, such as a warp-level MMA (GPU tensor cores). The nest must compute
 * the whole tensor; only placeholders and the stage's own tensor may appear
 * in it, and nothing else may be scheduled on the stage. */
mfx_status mfx_sched_set_nest(mfx_schedule *s, mfx_stage *st, struct mfx_stmt *nest);

/* ---- loop IR ----------------------------------------------------------------
 *
 * What mfx_lower hands to code generation:
 * - FOR runs var over [0, extent), extent a positive constant. Kinds:
 *   SERIAL; PARALLEL (the body runs on the runtime thread pool through
 *   env->parallel_for); VECTORIZED (innermost: its body holds no FOR; lanes =
 *   extent <= 64; IF statements in it are monotone bound guards); UNROLLED
 *   (the body replicated with var constant); BLOCK_x and THREAD_x (GPU only).
 * - STORE/LOAD indices are flattened (n == 1, i64, in elements), after
 *   mfx_flatten_stmt; before it they have one index per buffer dimension.
 * - LET binds an i64 or typed value to a variable for its body (SSA).
 * - ALLOCATE makes a buffer for its body: GLOBAL scope from env->alloc
 *   (the kernel returns non-zero when that fails), LOCAL on the stack,
 *   SHARED in GPU shared memory.
 * - Variables are i64. Integer DIV/MOD in indices have non-negative operands.
 * - Buffers that are function arguments never alias each other.
 * - MMA (GPU, sm_80+): one lane's share of a warp's tensor-core tile product
 *   D = A B + C, m16n8k8 in TF32 (PTX mma.sync.aligned.m16n8k8.row.col.f32.
 *   tf32.tf32.f32). buf[1]: A, 16 rows x 8, row r at off[1] + r*ld[1];
 *   buf[2]: B by columns, column n (8 values along k) at off[2] + n*ld[2];
 *   buf[0]: the lane's four f32 accumulators at off[0] + 0..3, element i
 *   being row g + 8*(i/2), column 2*t + i%2 of the 16x8 tile (g = lane/4,
 *   t = lane%4). A and B are rounded to TF32 first (10 mantissa bits,
 *   nearest, ties away from zero: cvt.rna.tf32.f32). Its meaning per lane
 *   reads only A, B and the lane's own C (so the CPU emulation runs it per
 *   thread), but on a GPU all 32 lanes of a warp (lane = threadIdx.x % 32)
 *   must reach it together: never under a condition, A and B in shared
 *   memory written before a barrier. */

typedef enum {
  MFX_STMT_FOR, MFX_STMT_STORE, MFX_STMT_LET, MFX_STMT_IF, MFX_STMT_ALLOCATE,
  MFX_STMT_SEQ, MFX_STMT_BARRIER, MFX_STMT_MMA,
} mfx_stmt_kind;

enum { MFX_MMA_C, MFX_MMA_A, MFX_MMA_B, MFX_MMA_OPERANDS };

typedef struct mfx_stmt mfx_stmt;
struct mfx_stmt {
  mfx_stmt_kind kind;
  union {
    struct { mfx_var *var; int64_t extent; mfx_loop_kind kind; mfx_stmt *body; } loop;
    struct {
      mfx_buffer *buf; int n; mfx_expr **idx; mfx_expr *value;
      int async; /* 1: a copy (value a load of a global buffer) that may complete
                  * late, until the next barrier with wait_async (GPU: cp.async,
                  * sm_80+; elsewhere a plain store) */
    } store;
    struct { int wait_async; } bar; /* 1: first wait for this thread's async stores */
    struct { mfx_var *var; mfx_expr *value; mfx_stmt *body; } let;
    struct { mfx_expr *cond; mfx_stmt *then_s, *else_s; } if_;
    struct { mfx_buffer *buf; mfx_stmt *body; } alloc;
    struct { int n; mfx_stmt **items; } seq;
    struct {
      mfx_buffer *buf[MFX_MMA_OPERANDS]; /* MFX_MMA_C, _A, _B: f32 */
      mfx_expr *off[MFX_MMA_OPERANDS];   /* i64 element offsets */
      int64_t ld[MFX_MMA_OPERANDS];      /* row (A) / column (B) strides; C: 1 */
      mfx_expr *lane;                    /* i64, 0..31 */
      int kperm; /* 1: A's and B's 8 k values stored in the order 0 4 1 5 2 6 3 7
                  * (k at 2*(k%4) + k/4), so a lane's pair k = t, t + 4 is adjacent:
                  * one 8-byte load on a GPU, so A's and B's offsets and strides
                  * must be even */
    } mma;
  } u;
};

mfx_stmt *mfx_stmt_for(mfx_arena *a, mfx_var *v, int64_t extent, mfx_loop_kind k,
                       mfx_stmt *body);
mfx_stmt *mfx_stmt_store(mfx_arena *a, mfx_buffer *b, int n, mfx_expr *const *idx,
                         mfx_expr *value);
mfx_stmt *mfx_stmt_let(mfx_arena *a, mfx_var *v, mfx_expr *value, mfx_stmt *body);
mfx_stmt *mfx_stmt_if(mfx_arena *a, mfx_expr *cond, mfx_stmt *then_s, mfx_stmt *else_s);
mfx_stmt *mfx_stmt_allocate(mfx_arena *a, mfx_buffer *b, mfx_stmt *body);
mfx_stmt *mfx_stmt_seq(mfx_arena *a, int n, mfx_stmt *const *items);
mfx_stmt *mfx_stmt_barrier(mfx_arena *a);
/* The MMA statement (see above); NULL with mfx_last_error() set when an
 * operand is not f32, an offset or the lane not an integer, or a stride < 8. */
mfx_stmt *mfx_stmt_mma(mfx_arena *a, mfx_buffer *const buf[MFX_MMA_OPERANDS],
                       mfx_expr *const off[MFX_MMA_OPERANDS], const int64_t ld[MFX_MMA_OPERANDS],
                       mfx_expr *lane);

/* ---- visiting and rewriting the IR (ir_visit.c) -------------------------------
 * One walker and one rewriter that every pass is written on. Embed the struct
 * as the first member of a pass's own state and cast back in the callbacks.
 *
 * Visitor: mfx_ir_visit_expr/stmt call v->expr/v->stmt for each node; a NULL
 * callback means "visit the children" (mfx_ir_visit_*_children), a callback
 * that wants the children calls those itself. Setting v->stop ends the walk.
 * Statements' children are their expressions (in field order), then their
 * statements. Loop and let variables are not visited as expressions.
 *
 * Mutator: mfx_ir_mutate_expr/stmt return the callback's result (NULL
 * callback: mfx_ir_mutate_*_children). The children functions rebuild only
 * what changed: the same pointer when every child comes back unchanged,
 * otherwise a shallow copy of the node (in m->arena) with the new children;
 * a tree is thus shared, never modified in place. NULL in, NULL out. */
typedef struct mfx_ir_visitor mfx_ir_visitor;
struct mfx_ir_visitor {
  void (*expr)(mfx_ir_visitor *v, const mfx_expr *e);
  void (*stmt)(mfx_ir_visitor *v, const mfx_stmt *s);
  int stop;
};
void mfx_ir_visit_expr(mfx_ir_visitor *v, const mfx_expr *e);
void mfx_ir_visit_stmt(mfx_ir_visitor *v, const mfx_stmt *s);
void mfx_ir_visit_expr_children(mfx_ir_visitor *v, const mfx_expr *e);
void mfx_ir_visit_stmt_children(mfx_ir_visitor *v, const mfx_stmt *s);

typedef struct mfx_ir_mutator mfx_ir_mutator;
struct mfx_ir_mutator {
  mfx_arena *arena;
  mfx_expr *(*expr)(mfx_ir_mutator *m, mfx_expr *e);
  mfx_stmt *(*stmt)(mfx_ir_mutator *m, mfx_stmt *s);
};
mfx_expr *mfx_ir_mutate_expr(mfx_ir_mutator *m, mfx_expr *e);
mfx_stmt *mfx_ir_mutate_stmt(mfx_ir_mutator *m, mfx_stmt *s);
mfx_expr *mfx_ir_mutate_expr_children(mfx_ir_mutator *m, mfx_expr *e);
mfx_stmt *mfx_ir_mutate_stmt_children(mfx_ir_mutator *m, mfx_stmt *s);

/* Replace variables in a statement, as mfx_expr_substitute (loop and let
 * variables themselves stay). */
mfx_stmt *mfx_stmt_substitute(mfx_arena *a, mfx_stmt *s, mfx_expr **repl);

/* A lowered kernel: args are the schedule's inputs then its outputs. */
typedef struct {
  const char *name;
  int n_args;
  mfx_buffer **args;
  mfx_stmt *body;
} mfx_func;

/* Lower a schedule to loop IR, then run the pass table (mfx_lower_passes). */
mfx_status mfx_lower(mfx_schedule *s, const char *name, mfx_func **out);

/* The passes over loop IR that lowering runs after building the loop nests,
 * in order (passes.c): one entry per run, so a new pass is one line there. A
 * pass returns the rewritten tree (NULL only when memory runs out). */
typedef mfx_stmt *(*mfx_pass_fn)(mfx_arena *a, mfx_stmt *s);
typedef struct {
  const char *name;        /* "simplify", "flatten", ... */
  mfx_pass_fn run;
  const char *description; /* one line */
} mfx_pass;
const mfx_pass *mfx_lower_passes(int *n);
/* mfx_lower, calling after(pass, fn, ctx) once each pass has run (fn->body is
 * the tree so far); after may be NULL. */
typedef void (*mfx_pass_hook)(const mfx_pass *pass, const mfx_func *fn, void *ctx);
mfx_status mfx_lower_traced(mfx_schedule *s, const char *name, mfx_pass_hook after, void *ctx,
                            mfx_func **out);
/* Run the table on fn->body in place of it. */
mfx_status mfx_run_passes(mfx_arena *a, mfx_func *fn, mfx_pass_hook after, void *ctx);
/* The passes, also callable one by one (each returns a new tree). */
mfx_stmt *mfx_simplify_stmt(mfx_arena *a, mfx_stmt *s);
mfx_expr *mfx_simplify_expr(mfx_arena *a, mfx_expr *e);
mfx_stmt *mfx_flatten_stmt(mfx_arena *a, mfx_stmt *s); /* multi-dim -> 1-D indices */

/* ---- GPU kernels -------------------------------------------------------------
 * For a GPU target each root-level loop nest of a lowered function becomes
 * one kernel launch (stages need a grid-wide barrier between them); global
 * intermediates become workspace buffers the runtime allocates. */

typedef struct {
  const char *name;          /* <func>_k<i> */
  mfx_stmt *body;            /* bound loops read blockIdx/threadIdx */
  int64_t grid[3], block[3]; /* launch dimensions (x, y, z) */
  int n_args;                /* buffers it touches: func args, then workspace */
  mfx_buffer **args;
  int64_t shared_bytes;      /* static shared memory */
} mfx_gpu_kernel;

typedef struct {
  const mfx_func *func;
  int n_kernels;
  mfx_gpu_kernel *kernels;
  int n_workspace;
  mfx_buffer **workspace;
} mfx_gpu_program;

#define MFX_GPU_MAX_THREADS 1024
mfx_status mfx_split_kernels(mfx_arena *a, const mfx_func *fn, mfx_gpu_program **out);

typedef struct mfx_jit_kernel mfx_jit_kernel; /* a host kernel, see code generation */

/* A GPU program run on the CPU, for testing GPU schedules without a GPU:
 * block and thread loops run serially, split at barriers so every thread
 * finishes each phase before any starts the next; shared buffers are one
 * per block, per-thread buffers living across a barrier one per thread.
 * The function (and JIT kernel) takes the program's func arguments and
 * allocates the workspace itself. */
mfx_status mfx_gpu_emulate_lower(mfx_arena *a, const mfx_gpu_program *p, mfx_func **out);
mfx_status mfx_gpu_emulate_compile(mfx_arena *a, const mfx_gpu_program *p, mfx_jit_kernel **out);

/* ---- printers ----------------------------------------------------------------- */

void mfx_print_expr(FILE *f, const mfx_expr *e);
void mfx_print_te(FILE *f, const mfx_schedule *s);      /* the tensor expressions */
void mfx_print_schedule(FILE *f, const mfx_schedule *s); /* relations, loop order, kinds */
void mfx_print_stmt(FILE *f, const mfx_stmt *s, int indent);
void mfx_print_func(FILE *f, const mfx_func *fn);
const char *mfx_loop_kind_name(mfx_loop_kind k);
const char *mfx_binary_op_name(mfx_binary_op op); /* "+", "<<", "min" ... */
const char *mfx_unary_op_name(mfx_unary_op op);
const char *mfx_reduce_op_name(mfx_reduce_op op);

/* ---- code generation (LLVM C API) -------------------------------------------- */

typedef enum { MFX_EMIT_LL, MFX_EMIT_ASM, MFX_EMIT_OBJ } mfx_emit_kind;

/* A kernel JIT-compiled for the host CPU (ORC LLJIT). */

/* Compile fn for the host CPU (its real features) and JIT it. The entry
 * point follows mfx_cpu_kernel_fn. */
mfx_status mfx_jit_compile(const mfx_func *fn, mfx_jit_kernel **out);
mfx_cpu_kernel_fn mfx_jit_entry(const mfx_jit_kernel *k);
void mfx_jit_free(mfx_jit_kernel *k);

/* Compile fn for the host CPU and return LLVM IR text, assembly text or an
 * ELF object (malloc'd; *size set). */
mfx_status mfx_codegen_emit(const mfx_func *fn, mfx_emit_kind kind, char **data, size_t *size);

/* ---- code generation for NVIDIA GPUs (nvptx64, target_nvptx.c) ------------------
 * A GPU program (mfx_split_kernels) becomes one LLVM module with one PTX kernel
 * (.entry) per mfx_gpu_kernel, named kernel->name, whose parameters are
 * kernel->args in order as global-memory pointers to their element type. Loops
 * bound to blockIdx/threadIdx read the special registers; SHARED buffers are
 * static shared memory; LOCAL ones registers or local memory. The runtime
 * launches each kernel with its grid and block. */

/* What PTX a requested architecture gets. LLVM 14 generates PTX up to sm_86;
 * sm_87, sm_89 and sm_90 get sm_80 PTX, which the CUDA driver JIT-compiles
 * forward (newer GPUs run PTX of older targets). The PTX ISA version is the
 * oldest that the emitted target needs, so that old drivers accept it. */
typedef struct {
  int sm_requested; /* 90 for "sm_90" */
  int sm_emitted;   /* the PTX .target: 80 for sm_90 */
  int ptx_version;  /* the PTX .version times 10: 70 for 7.0 */
  int forward_jit;  /* sm_emitted < sm_requested: the driver compiles it forward */
} mfx_ptx_target;

/* "sm_50" ... "sm_90" (50 52 53 60 61 62 70 72 75 80 86 87 89 90). */
mfx_status mfx_ptx_target_resolve(const char *sm, mfx_ptx_target *out);

/* PTX text for sm (malloc'd, NUL-terminated; *size excludes the NUL). Its
 * first line is a comment naming the requested and the emitted target. */
mfx_status mfx_codegen_ptx(const mfx_gpu_program *p, const char *sm, char **ptx, size_t *size);
/* MFX_EMIT_LL: the optimized LLVM IR; MFX_EMIT_ASM: PTX as mfx_codegen_ptx.
 * MFX_EMIT_OBJ is refused (ptxas or the driver make GPU binaries). */
mfx_status mfx_codegen_gpu_emit(const mfx_gpu_program *p, const char *sm, mfx_emit_kind kind,
                                char **data, size_t *size);

/* ---- the build driver (build.c) ----------------------------------------------
 * Schedule -> lower -> (GPU: split into launches) -> code, in one call, as
 * every tool and library builds a kernel. The target is a target string
 * (mfx/target.h): cpu; cuda, cuda:N or emulate (the GPU program; JIT on the
 * CPU through gpu_emulate); cuda:sm_XX (also LLVM IR or PTX for that
 * architecture). */
typedef enum {
  MFX_BUILD_FUNC,    /* lowered loop IR only */
  MFX_BUILD_PROGRAM, /* GPU: the launches (mfx_split_kernels) */
  MFX_BUILD_JIT,     /* cpu: JIT for this CPU; GPU targets: the emulated program */
  MFX_BUILD_LL,      /* LLVM IR text (host, or nvptx for cuda:sm_XX) */
  MFX_BUILD_ASM,     /* host assembly text, or PTX for cuda:sm_XX */
  MFX_BUILD_OBJ,     /* cpu: an ELF object */
  MFX_BUILD_PTX,     /* cuda:sm_XX: PTX text */
} mfx_build_emit;

typedef struct {
  mfx_pass_hook after; /* called after each pass of lowering (may be NULL) */
  void *ctx;
} mfx_build_options;

typedef struct {
  mfx_func *func;           /* always, on success (in the schedule's arena) */
  mfx_gpu_program *program; /* GPU targets */
  mfx_jit_kernel *jit;      /* MFX_BUILD_JIT; free with mfx_jit_free */
  char *data;               /* LL, ASM, OBJ, PTX: malloc'd, the caller frees */
  size_t size;
} mfx_build_result;

/* name: the function's name; opts may be NULL. On failure *out holds nothing
 * to free, and the message names the step and the target. */
mfx_status mfx_build(mfx_schedule *s, const char *name, const char *target, mfx_build_emit what,
                     const mfx_build_options *opts, mfx_build_result *out);
const char *mfx_build_emit_name(mfx_build_emit what); /* "jit", "ptx", ... */

/* ---- where compile time goes (compile_stats.c) -------------------------------------
 * Every kernel build adds its phases' seconds here (summed over threads:
 * the MoE layer compiles in parallel), so a tool or a benchmark can say
 * what a cold compile costs and which phase dominates. */
typedef enum {
  MFX_PHASE_LOWER,    /* schedule -> loop IR: mfx_lower and its passes */
  MFX_PHASE_IRGEN,    /* loop IR -> LLVM IR */
  MFX_PHASE_OPTIMIZE, /* the LLVM pipeline (mfx_llvm_pipeline) */
  MFX_PHASE_CODEGEN,  /* LLVM IR -> object code or PTX */
  MFX_PHASE_LINK,     /* the JIT links the object and finds the entry */
  MFX_PHASE_COUNT
} mfx_compile_phase;

typedef struct {
  double seconds[MFX_PHASE_COUNT];
  long builds;      /* kernels whose code was generated (cache misses) */
  long cached;      /* host objects taken from the kernel cache */
} mfx_compile_times;

const char *mfx_compile_phase_name(mfx_compile_phase p); /* "lower", "optimize", ... */
void mfx_compile_time_add(mfx_compile_phase p, double seconds);
void mfx_compile_note_build(int from_cache);
void mfx_compile_times_get(mfx_compile_times *out);
void mfx_compile_times_reset(void);

/* The LLVM optimization pipeline every kernel goes through, as an LLVM
 * pass-pipeline string: $MFX_LLVM_PIPELINE when set (O1, O2 or O3), else
 * the default (see docs/performance.md "Compile time" for why). NULL with
 * a message when the variable holds anything else. Part of the kernel
 * cache's key: objects built with different pipelines never mix. */
const char *mfx_llvm_pipeline(void);

/* ---- the interpreter (interp.c) ------------------------------------------------------
 * A slow, direct evaluator of a schedule's tensor expressions: the reference
 * for kernels that have no plain-C one. The schedule's annotations are
 * ignored; every compute the outputs need is evaluated element by element,
 * reductions from mfx_reduce_identity over their axes in the declared order.
 * Values follow the generated code's rules (integers wrap modulo 2^bits,
 * division truncates, each f32 operation rounded to f32 without contraction,
 * libm's expf/logf/tanhf/erff, conversions as C): see compiler/interp.c.
 * Errors, with the element being computed: a load out of bounds, an integer
 * division by zero, and any value the generated code leaves undefined (a
 * shift by >= the width, an f32 -> integer conversion out of range) that
 * reaches a tensor.
 *
 * inputs: one array per schedule input (s->inputs order), dtype and shape
 * checked; outputs: s->n_outputs arrays, allocated here on success (free
 * each with mfx_array_free), all zeroed on failure. */
mfx_status mfx_interp_run(const mfx_schedule *s, const mfx_array *inputs, mfx_array *outputs);

#ifdef __cplusplus
}
#endif
#endif
