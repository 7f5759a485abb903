/* The knob space of one op under one shape and target: every combination of
 * the target template's knob choices, numbered as a mixed-radix integer
 * (first knob fastest), and the template's own verdict on whether a
 * combination can be built. */
#include <stdio.h>
#include <string.h>

#include "autotune_internal.h"

/* Spaces larger than this are refused: indices and counts stay exact. */
#define TUNE_SPACE_MAX ((uint64_t)1 << 62)

mfx_status mfx_space_init_for(mfx_space *s, const mfx_op *op, const int64_t *dims,
                              const char *target) {
  if (s == NULL || op == NULL || dims == NULL)
    return mfx_fail(MFX_ERR_INVALID, "space: s, op and dims must not be NULL");
  if (target == NULL) target = "cpu";
  memset(s, 0, sizeof *s);
  if (strlen(target) >= sizeof s->target)
    return mfx_fail(MFX_ERR_INVALID, "space of %s: target name '%s' is too long", op->name,
                    target);
  s->op = op;
  memcpy(s->dims, dims, sizeof(int64_t) * (size_t)op->n_dims);
  tune_copy_text(s->target, sizeof s->target, target);
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(op, target, &n_knobs);
  uint64_t size = 1;
  for (int i = 0; i < n_knobs; i++) {
    uint64_t n = (uint64_t)knobs[i].n_choices;
    if (n == 0)
      return mfx_fail(MFX_ERR_INVALID, "space of %s: knob %s has no choices", op->name,
                      knobs[i].name);
    if (size > TUNE_SPACE_MAX / n)
      return mfx_fail(MFX_ERR_INVALID, "space of %s: more than 2^62 configurations", op->name);
    size *= n;
  }
  s->size = size;
  return MFX_OK;
}

/* A GPU device's key (target "cuda", arch "sm_XX") searches the template
 * for cuda:sm_XX, so that configs its arch cannot run (knobs with a
 * min_sm above it) are invalid, never built nor recorded; "emulate" and
 * "cpu" keep their own names (the emulation runs every config). */
mfx_status tune_space_init_key(mfx_space *s, const mfx_tune_key *key) {
  if (key == NULL) return mfx_fail(MFX_ERR_INVALID, "space: key must not be NULL");
  const mfx_tune_target *t = &key->target;
  char target[sizeof s->target];
  if (strcmp(t->target, "cuda") == 0 && strncmp(t->arch, "sm_", 3) == 0 &&
      strlen(t->arch) + 5 < sizeof target) {
    snprintf(target, sizeof target, "cuda:%.10s", t->arch); /* fits: checked above */
    return mfx_space_init_for(s, key->op, key->dims, target);
  }
  return mfx_space_init_for(s, key->op, key->dims, t->target);
}

mfx_status mfx_space_init(mfx_space *s, const mfx_op *op, const int64_t *dims) {
  return mfx_space_init_for(s, op, dims, "cpu");
}

void mfx_space_config(const mfx_space *s, uint64_t index, mfx_config *cfg) {
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(s->op, s->target, &n_knobs);
  mfx_config_default_for(s->op, s->target, cfg);
  for (int i = 0; i < n_knobs; i++) {
    uint64_t n = (uint64_t)knobs[i].n_choices;
    cfg->values[i] = knobs[i].choices[index % n];
    index /= n;
  }
}

static int tune_choice_of(const mfx_knob *k, int64_t v) {
  for (int c = 0; c < k->n_choices; c++)
    if (k->choices[c] == v) return c;
  return -1;
}

mfx_status mfx_space_index(const mfx_space *s, const mfx_config *cfg, uint64_t *index) {
  const mfx_op *op = s->op;
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(op, s->target, &n_knobs);
  uint64_t at = 0, scale = 1;
  for (int i = 0; i < n_knobs; i++) {
    const mfx_knob *k = &knobs[i];
    int64_t v = mfx_config_get(cfg, k->name);
    if (v < 0 && tune_choice_of(k, v) < 0) v = k->def;
    int c = tune_choice_of(k, v);
    if (c < 0)
      return mfx_fail(MFX_ERR_NOT_FOUND, "space of %s: %s=%lld is not one of its choices",
                      op->name, k->name, (long long)v);
    at += (uint64_t)c * scale;
    scale *= (uint64_t)k->n_choices;
  }
  *index = at;
  return MFX_OK;
}

mfx_status mfx_space_check(const mfx_space *s, const mfx_config *cfg) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "space: out of memory for an arena");
  mfx_schedule *schedule = NULL;
  mfx_status st = mfx_op_build_for(s->op, s->target, arena, s->dims, cfg, &schedule);
  mfx_arena_destroy(arena);
  return st;
}
