/* mfx auto-scheduler: schedules for kernels that have no hand-written
 * template (kernels written as TE text), generated from the kernel's
 * structure alone, as Ansor's sketch rules do:
 *
 *   compiler/autosched.c  the analysis: per compute, its spatial and
 *                         reduction axes, how each operand is read along
 *                         the vector axis, and which rules fire
 *   ops/autosched.c       the rules applied with the template primitives
 *                         (ops/template.c, ops/gpu_template.c): the knob
 *                         space of a kernel and its schedule for a config
 *   ops/te_op.c           a kernel's text as an mfx_op (op "te:<hash>") that
 *                         the tuner, the database and the compiler take
 *
 * Rules (a plan says which fired on which stage):
 *   tile         multi-level tiling of a reduction with >= 2 spatial axes and
 *                one reduction axis: outer..., rows.o, cols.o, [k.o, k.i], rows.i,
 *                cols.i (a register tile of rows x vector columns)
 *   vectorize    the innermost spatial axis, contiguous in the output
 *   parallel     the outer spatial loops, fused, on the thread pool
 *   cache_write  a reduction accumulates in a local (register) tile
 *   inline       elementwise producers computed inside their consumers (a
 *                knob where a tiled consumer would recompute each value)
 *   fuse         an elementwise consumer of a reduction applied as its
 *                tile is written back (mfx_sched_fuse_epilogue)
 *   pack         an operand read across its rows along the vector axis
 *                (X[col, k]) laid out so that the vector reads contiguous
 *                memory: transposed, or in panels of the tile's width; an
 *                operand only ever read through one cast (i32(S[n, k])) is
 *                packed converted
 *   gpu_bind     blocks and threads bound to the spatial tiles
 *   gpu_shared   the operands of a reduction step staged in shared memory
 *   gpu_register a thread's register tile of outputs */
#ifndef MFX_AUTOSCHED_H
#define MFX_AUTOSCHED_H

#include "mfx/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  MFX_RULE_TILE, MFX_RULE_VECTORIZE, MFX_RULE_PARALLEL, MFX_RULE_CACHE_WRITE,
  MFX_RULE_INLINE, MFX_RULE_FUSE, MFX_RULE_PACK,
  MFX_RULE_GPU_BIND, MFX_RULE_GPU_SHARED, MFX_RULE_GPU_REGISTER,
  MFX_RULE_COUNT
} mfx_autosched_rule;

const char *mfx_autosched_rule_name(mfx_autosched_rule r); /* "tile", "pack", ... */

/* How a load reads along a stage's vector axis (its last spatial axis). */
typedef enum {
  MFX_ACCESS_BROADCAST,  /* no index uses the axis */
  MFX_ACCESS_CONTIGUOUS, /* only the last index uses it */
  MFX_ACCESS_ROWS,       /* a 2-D operand indexed [axis, e] (e free of it): packable */
  MFX_ACCESS_OTHER,      /* anything else (a gather) */
} mfx_access;

#define MFX_AUTOSCHED_MAX_STAGES 32
#define MFX_AUTOSCHED_MAX_OPERANDS 8

typedef struct {
  mfx_tensor *tensor; /* an input of the stage (placeholder or compute) */
  mfx_access access;  /* the worst of its loads */
} mfx_autosched_operand;

typedef struct {
  mfx_tensor *tensor;
  int is_output;
  int is_reduction;   /* the body is a reduction */
  int n_spatial, n_reduce;
  int n_consumers;    /* stages that read it */
  int inlined;        /* inline: an elementwise, non-output stage not packed */
  int reused;         /* inlined into a tiled stage that reuses each value (the
                       * knob `inline` 0 computes it once, as its own stage) */
  int packed;         /* pack: an elementwise producer read across its rows by a
                       * tiled stage; computed into the packed layout */
  int epilogue_of;    /* fuse: the stage index of its reduction, else -1 */
  int tiled;          /* tile (and cache_write) */
  int row_axis, vec_axis, red_axis; /* tiled: spatial axis indices, reduction index */
  int n_outer;        /* tiled: the spatial axes before the rows, outermost first */
  int outer[MFX_MAX_DIMS];
  int n_operands;
  mfx_autosched_operand operands[MFX_AUTOSCHED_MAX_OPERANDS];
  unsigned rules;     /* bit r: rule r fired on this stage */
} mfx_autosched_stage;

typedef struct {
  int n_stages;       /* the schedule's stages, in its order */
  mfx_autosched_stage stages[MFX_AUTOSCHED_MAX_STAGES];
  unsigned rules;     /* union over the stages, GPU rules included */
  int n_packs;        /* operands to pack (tensors read across their rows) */
  mfx_tensor *packs[MFX_AUTOSCHED_MAX_OPERANDS];
} mfx_autosched_plan;

/* Analyse a (parsed, unscheduled) schedule. Refuses, with a message, more
 * than MFX_AUTOSCHED_MAX_STAGES stages or operands. */
mfx_status mfx_autosched_analyze(const mfx_schedule *s, mfx_autosched_plan *out);
/* One line per stage: "Y: reduction tile(rows m, vector n, reduce k)
 * vectorize parallel cache_write; operands X broadcast, W rows -> pack". */
void mfx_autosched_describe(const mfx_autosched_plan *p, FILE *f);
/* The index of t among the plan's stages, -1 if none. */
int mfx_autosched_stage_index(const mfx_autosched_plan *p, const mfx_tensor *t);

/* ---- the space and the schedules (ops/autosched.c) ------------------------------- */

/* The knobs of a plan for a target (gpu: 0 cpu, 1 cuda/emulate); *n <=
 * MFX_OP_MAX_KNOBS. Knobs only appear where their rule fired. */
void mfx_autosched_knobs(const mfx_autosched_plan *p, int gpu, mfx_knob *knobs, int *n);
/* Parse text and schedule it for target ("cpu", or a GPU target: cuda,
 * cuda:sm_XX, emulate) with cfg (complete: every knob of
 * mfx_autosched_knobs); *plan (may be NULL) receives the analysis. An
 * impossible combination is MFX_ERR_SCHEDULE naming it. */
mfx_status mfx_autosched_build(mfx_arena *a, const char *text, const char *file,
                               const char *target, const mfx_config *cfg, mfx_schedule **out,
                               mfx_autosched_plan *plan);

/* ---- a text kernel as an op (ops/te_op.c) ---------------------------------------- */

/* The op's dims are the distinct extents of its inputs' and outputs' shapes
 * (D0, D1, ... in order of appearance, at most MFX_OP_MAX_DIMS), its inputs
 * the placeholders, its outputs the computes nothing reads (each at most
 * MFX_OP_MAX_TENSORS), its reference the IR interpreter, its knobs the
 * auto-scheduler's (tile choices past the kernel's extents dropped); its
 * int_tolerance 1 where exp, log, tanh or erf appear (the generated code's
 * expansions against libm's in the interpreter: an f32 rounded to an integer
 * may land one unit off, as for q16_gelu), else 0. Its name is "te:" and 16 hex digits of a hash of the
 * kernel as printed (mfx_print_te: comments and spacing do not count). At
 * most MFX_TE_OP_MAX ops live at once. */
#define MFX_TE_OP_MAX 16
typedef struct mfx_te_op mfx_te_op;
mfx_status mfx_te_op_create(const char *text, const char *file, mfx_te_op **out);
void mfx_te_op_destroy(mfx_te_op *t);
const mfx_op *mfx_te_op_get(const mfx_te_op *t);
void mfx_te_op_dims(const mfx_te_op *t, int64_t *dims);
const mfx_autosched_plan *mfx_te_op_plan(const mfx_te_op *t);
/* Replace the op's random inputs (NULL: back to f32 in [-1, 1), integers
 * over their whole range), e.g. with valid indices for a kernel that
 * gathers; fn receives the text kernel's dims. */
void mfx_te_op_set_random_input(mfx_te_op *t, void (*fn)(int i, const int64_t *dims,
                                                          mfx_array *a, uint64_t *rng));

#ifdef __cplusplus
}
#endif
#endif
