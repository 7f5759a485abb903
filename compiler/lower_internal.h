/* Lowering's state shared by its files: lower.c (stages to loop nests),
 * lower_region.c (buffers attached with cache_read / compute_at: region
 * inference, redirection of loads, fills) and lower_verify.c (checks on the
 * lowered loops). Internal to the compiler. */
#ifndef MFX_LOWER_INTERNAL_H
#define MFX_LOWER_INTERNAL_H

#include "mfx/compiler.h"

typedef struct {
  mfx_expr *cond;
  uint64_t mask; /* leaf positions the condition reads */
} guard;

/* An attached buffer of the stage being lowered: its region per dimension
 * is base[d] + [0, extent[d]), base in the loops outside the attach loop. */
typedef struct {
  const mfx_attached *spec;
  int pos;                      /* leaf position of the attach loop */
  mfx_buffer *buf;
  mfx_expr *base[MFX_MAX_DIMS];
  int64_t lo[MFX_MAX_DIMS];     /* region start relative to the outside part */
  mfx_expr *value;              /* compute_at: the producer's body */
  int slots;                    /* 2: double-buffered, buf[slot][region] */
  mfx_expr *slot;               /* the slot the fill writes (set while building it) */
} attachment;

typedef struct {
  mfx_arena *arena;
  mfx_schedule *schedule;
  mfx_stage *stage;
  mfx_expr **value;  /* var id -> its value in terms of the leaf loops */
  guard guards[MFX_MAX_RELATIONS];
  int n_guards;
  attachment attached[MFX_MAX_ATTACHED];
  int n_attached;
  int guards_innermost; /* shared buffers: no guard may enclose a barrier */
  mfx_expr *epilogue;   /* fuse_epilogue: the consumer's (inlined) body */
  uint64_t reduce_leaves; /* leaf positions of reduction loops (local accumulation) */
} stage_lowering;

/* The position of loop variable v among the stage's leaves (-1: none). */
int lower_leaf_position(const mfx_stage *st, const mfx_var *v);
/* The index of tensor t's stage in s (-1: a placeholder). */
int lower_stage_index(const mfx_schedule *s, const mfx_tensor *t);

/* lower_region.c: infer the region the stage reads at the attach loop, make
 * the buffer, and point the stage's loads in *src at it. */
mfx_status lower_prepare_attachment(stage_lowering *L, const mfx_attached *spec,
                                    mfx_expr *producer_body, mfx_expr **src);
/* The fills of the buffers attached at leaf position pos, before body. */
mfx_stmt *lower_wrap_attached(stage_lowering *L, int pos, mfx_stmt *body);
mfx_stmt *lower_wrap_attached_loop(stage_lowering *L, int pos, mfx_stmt *loop);

/* lower_verify.c: vectorized loops innermost, parallel loops not nested. */
mfx_status lower_check_loops(const mfx_stmt *s, const char *stage);
/* A stage computed at a loop of one consumer is read by no other. */
mfx_status lower_check_attached_readers(const mfx_schedule *s, const mfx_stage *st);

#endif
