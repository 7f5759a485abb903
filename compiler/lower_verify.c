/* Checks on what lowering made, on the shared visitor (ir_visit.c): a
 * vectorized loop is innermost, parallel loops do not nest, and a stage
 * computed at a loop of one consumer is read by no other stage. */
#include "lower_internal.h"

static void skip_expr(mfx_ir_visitor *v, const mfx_expr *e) { (void)v; (void)e; }

static void find_for(mfx_ir_visitor *v, const mfx_stmt *s) {
  if (s->kind == MFX_STMT_FOR) v->stop = 1;
  else mfx_ir_visit_stmt_children(v, s);
}

static int contains_for(const mfx_stmt *s) {
  mfx_ir_visitor v = {skip_expr, find_for, 0};
  mfx_ir_visit_stmt(&v, s);
  return v.stop;
}

typedef struct {
  mfx_ir_visitor base;
  int in_parallel;
  const char *stage;
  mfx_status status;
} loop_check;

static void check_loop(mfx_ir_visitor *v, const mfx_stmt *s) {
  loop_check *c = (loop_check *)v;
  if (s->kind != MFX_STMT_FOR) {
    mfx_ir_visit_stmt_children(v, s);
    return;
  }
  if (s->u.loop.kind == MFX_LOOP_VECTORIZED && contains_for(s->u.loop.body))
    c->status = mfx_fail(MFX_ERR_SCHEDULE,
                         "stage %s: vectorized loop %s is not innermost (move it inside, or "
                         "unroll nothing below it)", c->stage, s->u.loop.var->name);
  else if (s->u.loop.kind == MFX_LOOP_PARALLEL && c->in_parallel)
    c->status = mfx_fail(MFX_ERR_SCHEDULE, "stage %s: parallel loop %s is nested in another",
                         c->stage, s->u.loop.var->name);
  if (c->status != MFX_OK) {
    v->stop = 1;
    return;
  }
  int outer = c->in_parallel;
  c->in_parallel |= s->u.loop.kind == MFX_LOOP_PARALLEL;
  mfx_ir_visit_stmt(v, s->u.loop.body);
  c->in_parallel = outer;
}

mfx_status lower_check_loops(const mfx_stmt *s, const char *stage) {
  loop_check c = {{skip_expr, check_loop, 0}, 0, stage, MFX_OK};
  mfx_ir_visit_stmt(&c.base, s);
  return c.status;
}

/* A stage computed at a loop of one consumer exists nowhere else. */
mfx_status lower_check_attached_readers(const mfx_schedule *s, const mfx_stage *st) {
  for (int i = 0; i < st->tensor->n_inputs; i++) {
    int k = lower_stage_index(s, st->tensor->inputs[i]);
    if (k < 0 || !s->stages[k]->attached_to || s->stages[k]->attached_to == st) continue;
    return mfx_fail(MFX_ERR_SCHEDULE,
                    "stage %s is computed at a loop of %s but %s reads it too; inline it or "
                    "keep it at the root", st->tensor->inputs[i]->buf->name,
                    s->stages[k]->attached_to->tensor->buf->name, st->tensor->buf->name);
  }
  return MFX_OK;
}
