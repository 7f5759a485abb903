/* The auto-scheduler's analysis: what a kernel's structure alone says about
 * how to schedule it (include/mfx/autosched.h lists the rules). Per compute:
 * its spatial and reduction axes; how each load reads along the vector axis
 * (the last spatial axis, contiguous in the output); then which stages are
 * tiled reductions, which elementwise producers are inlined or packed, which
 * elementwise consumers become a reduction's epilogue, which operands are
 * read across their rows and get packed. ops/autosched.c applies the plan. */
#include <string.h>

#include "mfx/autosched.h"

static const char *const as_rule_names[MFX_RULE_COUNT] = {
    "tile", "vectorize", "parallel", "cache_write", "inline", "fuse", "pack",
    "gpu_bind", "gpu_shared", "gpu_register",
};

const char *mfx_autosched_rule_name(mfx_autosched_rule r) {
  return r >= 0 && r < MFX_RULE_COUNT ? as_rule_names[r] : "?";
}

static const char *as_access_name(mfx_access a) {
  switch (a) {
  case MFX_ACCESS_BROADCAST: return "broadcast";
  case MFX_ACCESS_CONTIGUOUS: return "contiguous";
  case MFX_ACCESS_ROWS: return "rows";
  default: return "other";
  }
}

/* ---- loads along the vector axis ---------------------------------------------- */

static mfx_access as_classify_load(const mfx_expr *load, const mfx_var *vec) {
  int n = load->u.load.n, last_uses = 0, others_use = 0;
  if (vec == NULL) return MFX_ACCESS_BROADCAST;
  for (int i = 0; i < n; i++) {
    int uses = mfx_expr_uses_var(load->u.load.idx[i], vec);
    if (i == n - 1) last_uses = uses;
    else others_use |= uses;
  }
  if (!last_uses && !others_use) return MFX_ACCESS_BROADCAST;
  if (!others_use) return MFX_ACCESS_CONTIGUOUS;
  const mfx_expr *first = load->u.load.idx[0];
  if (n == 2 && first->kind == MFX_EXPR_VAR && first->u.var == vec &&
      !mfx_expr_uses_var(load->u.load.idx[1], vec))
    return MFX_ACCESS_ROWS;
  return MFX_ACCESS_OTHER;
}

typedef struct {
  mfx_ir_visitor base;
  const mfx_var *vec;
  mfx_autosched_stage *stage;
  mfx_status status;
} as_load_walk;

static void as_note_operand(as_load_walk *w, mfx_tensor *t, mfx_access a) {
  mfx_autosched_stage *st = w->stage;
  for (int i = 0; i < st->n_operands; i++) {
    if (st->operands[i].tensor != t) continue;
    if (a > st->operands[i].access) st->operands[i].access = a;
    return;
  }
  if (st->n_operands >= MFX_AUTOSCHED_MAX_OPERANDS) {
    w->status = mfx_fail(MFX_ERR_INVALID, "auto-scheduler: compute %s reads more than %d "
                         "tensors", st->tensor->buf->name, MFX_AUTOSCHED_MAX_OPERANDS);
    w->base.stop = 1;
    return;
  }
  st->operands[st->n_operands].tensor = t;
  st->operands[st->n_operands++].access = a;
}

static void as_visit_load(mfx_ir_visitor *v, const mfx_expr *e) {
  as_load_walk *w = (as_load_walk *)v;
  if (e->kind == MFX_EXPR_LOAD && e->u.load.buf->tensor != NULL)
    as_note_operand(w, e->u.load.buf->tensor, as_classify_load(e, w->vec));
  mfx_ir_visit_expr_children(v, e);
}

/* ---- one stage on its own ---------------------------------------------------------- */

static mfx_status as_stage_shape(mfx_autosched_stage *st, const mfx_stage *stage) {
  mfx_tensor *t = stage->tensor;
  memset(st, 0, sizeof *st);
  st->tensor = t;
  st->is_output = stage->is_output;
  st->n_spatial = t->n_axes;
  st->epilogue_of = -1;
  st->row_axis = st->vec_axis = st->red_axis = -1;
  st->is_reduction = t->body != NULL && t->body->kind == MFX_EXPR_REDUCE;
  st->n_reduce = st->is_reduction ? t->body->u.red.n_axes : 0;
  if (st->n_spatial >= 1) st->vec_axis = st->n_spatial - 1;
  if (st->is_reduction && st->n_reduce == 1 && st->n_spatial >= 2 &&
      st->n_spatial - 2 <= MFX_MAX_DIMS) {
    st->tiled = 1;
    st->row_axis = st->n_spatial - 2;
    st->red_axis = 0;
    st->n_outer = st->n_spatial - 2;
    for (int i = 0; i < st->n_outer; i++) st->outer[i] = i;
  }
  const mfx_var *vec = st->vec_axis >= 0 ? t->axes[st->vec_axis] : NULL;
  as_load_walk w = {{as_visit_load, NULL, 0}, vec, st, MFX_OK};
  mfx_ir_visit_expr(&w.base, t->body);
  return w.status;
}

int mfx_autosched_stage_index(const mfx_autosched_plan *p, const mfx_tensor *t) {
  for (int i = 0; i < p->n_stages; i++)
    if (p->stages[i].tensor == t) return i;
  return -1;
}

static mfx_access as_access_of(const mfx_autosched_stage *st, const mfx_tensor *t) {
  for (int i = 0; i < st->n_operands; i++)
    if (st->operands[i].tensor == t) return st->operands[i].access;
  return MFX_ACCESS_BROADCAST;
}

/* ---- rules across stages ---------------------------------------------------------------- */

static void as_count_consumers(mfx_autosched_plan *p) {
  for (int i = 0; i < p->n_stages; i++) {
    const mfx_autosched_stage *c = &p->stages[i];
    for (int j = 0; j < c->n_operands; j++) {
      int k = mfx_autosched_stage_index(p, c->operands[j].tensor);
      if (k >= 0) p->stages[k].n_consumers++;
    }
  }
}

/* Every consumer of t is a tiled stage that reads it across its rows. */
static int as_read_across_rows_only(const mfx_autosched_plan *p, const mfx_tensor *t) {
  int readers = 0;
  for (int i = 0; i < p->n_stages; i++) {
    const mfx_autosched_stage *c = &p->stages[i];
    for (int j = 0; j < c->n_operands; j++) {
      if (c->operands[j].tensor != t) continue;
      if (!c->tiled || c->operands[j].access != MFX_ACCESS_ROWS) return 0;
      readers++;
    }
  }
  return readers > 0 && t->buf->ndim == 2;
}

static void as_add_pack(mfx_autosched_plan *p, mfx_tensor *t) {
  for (int i = 0; i < p->n_packs; i++)
    if (p->packs[i] == t) return;
  if (p->n_packs < MFX_AUTOSCHED_MAX_OPERANDS) p->packs[p->n_packs++] = t;
}

static int as_same_shape(const mfx_tensor *a, const mfx_tensor *b) {
  if (a->buf->ndim != b->buf->ndim) return 0;
  for (int d = 0; d < a->buf->ndim; d++)
    if (a->buf->shape[d] != b->buf->shape[d]) return 0;
  return 1;
}

/* C (elementwise) as the epilogue of a tiled reduction R that only C reads,
 * at C's own index. */
static void as_find_epilogue(mfx_autosched_plan *p, int c) {
  mfx_autosched_stage *cs = &p->stages[c];
  if (cs->is_reduction) return;
  for (int j = 0; j < cs->n_operands; j++) {
    int r = mfx_autosched_stage_index(p, cs->operands[j].tensor);
    if (r < 0) continue;
    mfx_autosched_stage *rs = &p->stages[r];
    if (!rs->tiled || rs->is_output || rs->n_consumers != 1 || !as_same_shape(rs->tensor, cs->tensor))
      continue;
    if (!mfx_expr_reads_at_axes(cs->tensor->body, rs->tensor->buf, cs->tensor)) continue;
    cs->epilogue_of = r;
    cs->rules |= 1u << MFX_RULE_FUSE;
    return;
  }
}

static void as_producer_rules(mfx_autosched_plan *p, int i) {
  mfx_autosched_stage *st = &p->stages[i];
  if (st->is_output || st->is_reduction || st->epilogue_of >= 0) return;
  if (as_read_across_rows_only(p, st->tensor)) {
    st->packed = 1;
    st->rules |= 1u << MFX_RULE_PACK;
    as_add_pack(p, st->tensor);
  } else {
    st->inlined = 1;
    st->rules |= 1u << MFX_RULE_INLINE;
    for (int c = 0; c < p->n_stages; c++) /* a tiled stage reads each value many times */
      for (int j = 0; p->stages[c].tiled && j < p->stages[c].n_operands; j++)
        if (p->stages[c].operands[j].tensor == st->tensor) st->reused = 1;
  }
}

/* Placeholders read across their rows by a tiled stage. */
static void as_placeholder_packs(mfx_autosched_plan *p, const mfx_schedule *s) {
  for (int i = 0; i < s->n_inputs; i++)
    if (as_read_across_rows_only(p, s->inputs[i])) as_add_pack(p, s->inputs[i]);
}

static int as_vectorizable(const mfx_autosched_stage *st) {
  if (st->vec_axis < 0) return 0;
  for (int j = 0; j < st->n_operands; j++)
    if (st->operands[j].access == MFX_ACCESS_OTHER) return 0;
  return 1;
}

static void as_schedule_rules(mfx_autosched_plan *p, int i) {
  mfx_autosched_stage *st = &p->stages[i];
  if (st->reused && as_vectorizable(st)) st->rules |= 1u << MFX_RULE_VECTORIZE;
  if (st->inlined || st->packed || st->epilogue_of >= 0) return;
  st->rules |= 1u << MFX_RULE_PARALLEL | 1u << MFX_RULE_GPU_BIND;
  if (st->tiled) {
    st->rules |= 1u << MFX_RULE_TILE | 1u << MFX_RULE_CACHE_WRITE;
    for (int j = 0; j < st->n_operands; j++)
      if (as_access_of(st, st->operands[j].tensor) == MFX_ACCESS_ROWS)
        st->rules |= 1u << MFX_RULE_PACK;
    if (st->n_outer <= 2) st->rules |= 1u << MFX_RULE_GPU_SHARED | 1u << MFX_RULE_GPU_REGISTER;
  }
  if ((st->tiled || !st->is_reduction) && as_vectorizable(st))
    st->rules |= 1u << MFX_RULE_VECTORIZE;
}

mfx_status mfx_autosched_analyze(const mfx_schedule *s, mfx_autosched_plan *out) {
  memset(out, 0, sizeof *out);
  if (s == NULL) return mfx_fail(MFX_ERR_INVALID, "auto-scheduler: no schedule");
  if (s->n_stages > MFX_AUTOSCHED_MAX_STAGES)
    return mfx_fail(MFX_ERR_INVALID, "auto-scheduler: %d computes; at most %d are supported",
                    s->n_stages, MFX_AUTOSCHED_MAX_STAGES);
  out->n_stages = s->n_stages;
  for (int i = 0; i < s->n_stages; i++) {
    mfx_status st = as_stage_shape(&out->stages[i], s->stages[i]);
    if (st != MFX_OK) return st;
  }
  as_count_consumers(out);
  for (int i = 0; i < out->n_stages; i++) as_find_epilogue(out, i);
  for (int i = 0; i < out->n_stages; i++) as_producer_rules(out, i);
  as_placeholder_packs(out, s);
  for (int i = 0; i < out->n_stages; i++) {
    as_schedule_rules(out, i);
    out->rules |= out->stages[i].rules;
  }
  return MFX_OK;
}

/* ---- the text form ------------------------------------------------------------------------- */

static void as_describe_stage(const mfx_autosched_plan *p, const mfx_autosched_stage *st,
                              FILE *f) {
  const mfx_tensor *t = st->tensor;
  fprintf(f, "%s: %s", t->buf->name, st->is_reduction ? "reduction" : "elementwise");
  if (st->tiled)
    fprintf(f, " (rows %s, vector %s, reduce %s)", t->axes[st->row_axis]->name,
            t->axes[st->vec_axis]->name, t->body->u.red.axes[0]->name);
  if (st->epilogue_of >= 0)
    fprintf(f, " (epilogue of %s)", p->stages[st->epilogue_of].tensor->buf->name);
  fprintf(f, ";");
  for (int r = 0; r < MFX_RULE_COUNT; r++)
    if (st->rules >> r & 1u) fprintf(f, " %s", as_rule_names[r]);
  if (st->n_operands > 0) fprintf(f, "; reads");
  for (int j = 0; j < st->n_operands; j++)
    fprintf(f, "%s %s %s", j ? "," : "", st->operands[j].tensor->buf->name,
            as_access_name(st->operands[j].access));
  fprintf(f, "\n");
}

void mfx_autosched_describe(const mfx_autosched_plan *p, FILE *f) {
  for (int i = 0; i < p->n_stages; i++) as_describe_stage(p, &p->stages[i], f);
  if (p->n_packs > 0) {
    fprintf(f, "packed:");
    for (int i = 0; i < p->n_packs; i++) fprintf(f, " %s", p->packs[i]->buf->name);
    fprintf(f, "\n");
  }
}
