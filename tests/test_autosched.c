/* The auto-scheduler (include/mfx/autosched.h): which rules fire on which
 * kernels, the knob space they expose, and auto-scheduled kernels against
 * the IR interpreter for several configs of each space, on shapes that
 * divide no tile, for the CPU and for the GPU schedules through the GPU
 * emulation; bad input refused with a message. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "mfx/autosched.h"
#include "mfx/autotune.h"
#include "check_main.h"

/* ---- kernels (shapes chosen to divide no tile: 4, 8, 16, 32, 64) ----------------------------- */

static const char k_linear[] =
    "placeholder X: f32[37, 29]\nplaceholder W: f32[19, 29]\n"
    "compute Y: f32[37, 19] (m, n) = sum(k < 29: X[m, k] * W[n, k])\n";
static const char k_relu_linear_bias[] =
    "placeholder X: f32[37, 29]\nplaceholder W: f32[19, 29]\nplaceholder B: f32[19]\n"
    "compute R: f32[37, 29] (a, b) = max(X[a, b], 0f)\n"
    "compute Y: f32[37, 19] (i, j) = sum(k < 29: R[i, k] * W[j, k])\n"
    "compute Z: f32[37, 19] (i, j) = Y[i, j] + B[j]\n";
static const char k_shift[] =
    "placeholder X: i32[31, 40]\nplaceholder S: i8[17, 40]\nplaceholder G: i8[17, 40]\n"
    "compute SH: i32[17, 40] (n, k) = i32(S[n, k]) & 15\n"
    "compute SG: i32[17, 40] (n, k) = select((G[n, k] & i8(3)) == i8(1), i32(1), "
    "select((G[n, k] & i8(3)) == i8(2), i32(-1), i32(0)))\n"
    "compute Y: i32[31, 17] (m, n) = sum(k < 40: select(SG[n, k] > 0, X[m, k] >> SH[n, k], "
    "select(SG[n, k] < 0, -(X[m, k] >> SH[n, k]), i32(0))))\n";
/* the op's own form: S and G read across their rows, S only through a cast */
static const char k_shift_plain[] =
    "placeholder X: i32[31, 40]\nplaceholder S: i8[17, 40]\nplaceholder G: i8[17, 40]\n"
    "compute Y: i32[31, 17] (m, n) = sum(k < 40: select(G[n, k] > i8(0), X[m, k] >> "
    "(i32(S[n, k]) & 15), select(G[n, k] < i8(0), -(X[m, k] >> (i32(S[n, k]) & 15)), i32(0))))\n";
static const char k_matadd[] =
    "placeholder Hc: i8[50, 13]\nplaceholder V: f32[50, 23]\n"
    "compute O: f32[13, 23] (c, d) = sum(n < 50: select(Hc[n, c] != i8(0), V[n, d], -0f))\n";
static const char k_hamming[] =
    "placeholder Q: u32[33, 3]\nplaceholder K: u32[21, 3]\n"
    "compute S: i32[33, 21] (n, m) = sum(w < 3: i32(32) - (i32(popcount(Q[n, w] ^ K[m, w])) << 1))\n";
static const char k_batch[] =
    "placeholder A: f32[3, 13, 11]\nplaceholder B: f32[3, 11, 9]\n"
    "compute C: f32[3, 13, 9] (b, i, j) = sum(k < 11: A[b, i, k] * B[b, k, j])\n";
static const char k_gelu[] =
    "placeholder X: f32[7, 45]\n"
    "compute Y: f32[7, 45] (i, j) = X[i, j] * 0.5f * (1f + erf(X[i, j] * 0.70710678f))\n";
static const char k_rowsum[] =
    "placeholder X: f32[13, 27]\ncompute S: f32[13] (i) = sum(k < 27: X[i, k])\n";
static const char k_two_reductions[] =
    "placeholder X: f32[5, 6, 7]\ncompute S: f32[5, 6] (i, j) = sum(k < 7, l < 6: X[i, l, k])\n";

/* ---- the plan ---------------------------------------------------------------------------------- */

typedef struct {
  mfx_te_op *t;
  const mfx_autosched_plan *plan;
} open_op;

static open_op open_kernel(const char *text) {
  open_op o = {NULL, NULL};
  mfx_status st = mfx_te_op_create(text, "test.te", &o.t);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  o.plan = mfx_te_op_plan(o.t);
  return o;
}

static const mfx_autosched_stage *stage_named(const mfx_autosched_plan *p, const char *name) {
  for (int i = 0; i < p->n_stages; i++)
    if (strcmp(p->stages[i].tensor->buf->name, name) == 0) return &p->stages[i];
  ck_abort_msg("no stage %s in the plan", name);
  return NULL;
}

static int fired(const mfx_autosched_stage *st, mfx_autosched_rule r) { return st->rules >> r & 1u; }

static int has_knob(const mfx_op *op, int gpu, const char *name) {
  int n = 0;
  const mfx_knob *k = mfx_op_knobs(op, gpu ? "cuda" : "cpu", &n);
  for (int i = 0; i < n; i++)
    if (strcmp(k[i].name, name) == 0) return 1;
  return 0;
}

static mfx_access access_of(const mfx_autosched_stage *st, const char *name) {
  for (int i = 0; i < st->n_operands; i++)
    if (strcmp(st->operands[i].tensor->buf->name, name) == 0) return st->operands[i].access;
  ck_abort_msg("stage %s does not read %s", st->tensor->buf->name, name);
  return MFX_ACCESS_OTHER;
}

START_TEST(test_rules_linear) {
  open_op o = open_kernel(k_linear);
  const mfx_autosched_stage *y = stage_named(o.plan, "Y");
  ck_assert(y->tiled && y->is_reduction);
  ck_assert_str_eq(y->tensor->axes[y->row_axis]->name, "m");
  ck_assert_str_eq(y->tensor->axes[y->vec_axis]->name, "n");
  ck_assert(fired(y, MFX_RULE_TILE) && fired(y, MFX_RULE_VECTORIZE) &&
            fired(y, MFX_RULE_PARALLEL) && fired(y, MFX_RULE_CACHE_WRITE) &&
            fired(y, MFX_RULE_PACK) && fired(y, MFX_RULE_GPU_SHARED));
  ck_assert_int_eq(access_of(y, "X"), MFX_ACCESS_BROADCAST);
  ck_assert_int_eq(access_of(y, "W"), MFX_ACCESS_ROWS);
  ck_assert_int_eq(o.plan->n_packs, 1);
  ck_assert_str_eq(o.plan->packs[0]->buf->name, "W");
  const mfx_op *op = mfx_te_op_get(o.t);
  ck_assert(strncmp(op->name, "te:", 3) == 0 && strlen(op->name) == 19);
  ck_assert(has_knob(op, 0, "tile_x") && has_knob(op, 0, "pack") && has_knob(op, 0, "vec"));
  ck_assert(!has_knob(op, 0, "fuse") && !has_knob(op, 0, "ew_vec"));
  ck_assert(has_knob(op, 1, "block_x") && has_knob(op, 1, "shared") && has_knob(op, 1, "pack"));
  /* dims: the distinct extents 37, 29, 19 */
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(o.t, dims);
  ck_assert_int_eq(op->n_dims, 3);
  ck_assert(dims[0] == 37 && dims[1] == 29 && dims[2] == 19);
  mfx_te_op_destroy(o.t);
}
END_TEST

START_TEST(test_rules_inline_fuse) {
  open_op o = open_kernel(k_relu_linear_bias);
  const mfx_autosched_stage *r = stage_named(o.plan, "R"), *y = stage_named(o.plan, "Y"),
                            *z = stage_named(o.plan, "Z");
  ck_assert(r->inlined && r->reused && fired(r, MFX_RULE_INLINE) && !fired(r, MFX_RULE_PARALLEL));
  ck_assert(has_knob(mfx_te_op_get(o.t), 0, "inline") && has_knob(mfx_te_op_get(o.t), 1, "inline"));
  ck_assert_int_eq(mfx_te_op_get(o.t)->int_tolerance, 0);
  ck_assert(y->tiled && fired(y, MFX_RULE_PACK));
  ck_assert_int_eq(access_of(y, "R"), MFX_ACCESS_BROADCAST);
  ck_assert(z->epilogue_of == mfx_autosched_stage_index(o.plan, y->tensor));
  ck_assert(fired(z, MFX_RULE_FUSE) && !fired(z, MFX_RULE_PARALLEL));
  ck_assert(has_knob(mfx_te_op_get(o.t), 0, "fuse") && has_knob(mfx_te_op_get(o.t), 1, "fuse"));
  mfx_te_op_destroy(o.t);
}
END_TEST

START_TEST(test_rules_pack_producers) {
  open_op o = open_kernel(k_shift);
  const mfx_autosched_stage *sh = stage_named(o.plan, "SH"), *sg = stage_named(o.plan, "SG");
  ck_assert(sh->packed && sg->packed && !sh->inlined && !sg->inlined);
  ck_assert(fired(sh, MFX_RULE_PACK) && !fired(sh, MFX_RULE_PARALLEL));
  ck_assert_int_eq(o.plan->n_packs, 2);
  ck_assert_int_eq(access_of(stage_named(o.plan, "Y"), "SH"), MFX_ACCESS_ROWS);
  mfx_te_op_destroy(o.t);
}
END_TEST

/* Packed placeholders: S, only ever read through i32(...), is packed as i32
 * values; G, compared as i8, stays i8. */
static mfx_dtype pack_type(const mfx_schedule *s, const char *name) {
  for (int i = 0; i < s->n_stages; i++)
    if (strcmp(s->stages[i]->tensor->buf->name, name) == 0) return s->stages[i]->tensor->buf->dtype;
  ck_abort_msg("no stage %s", name);
  return MFX_I8;
}

START_TEST(test_pack_converted_values) {
  open_op o = open_kernel(k_shift_plain);
  ck_assert_int_eq(o.plan->n_packs, 2);
  const mfx_op *op = mfx_te_op_get(o.t);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(o.t, dims);
  for (int pack = 1; pack <= 2; pack++) {
    mfx_config cfg;
    mfx_config_default(op, &cfg);
    ck_assert(mfx_config_set(op, &cfg, "pack", pack) == MFX_OK);
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s = NULL;
    ck_assert_msg(mfx_op_build_for(op, "cpu", a, dims, &cfg, &s) == MFX_OK, "%s", mfx_last_error());
    ck_assert_int_eq(pack_type(s, "S_pack"), MFX_I32);
    ck_assert_int_eq(pack_type(s, "G_pack"), MFX_I8);
    mfx_arena_destroy(a);
  }
  mfx_te_op_destroy(o.t);
}
END_TEST

START_TEST(test_rules_contiguous_batch_elementwise) {
  open_op o = open_kernel(k_matadd);
  const mfx_autosched_stage *st = stage_named(o.plan, "O");
  ck_assert(st->tiled && o.plan->n_packs == 0 && !fired(st, MFX_RULE_PACK));
  ck_assert_int_eq(access_of(st, "V"), MFX_ACCESS_CONTIGUOUS);
  ck_assert(!has_knob(mfx_te_op_get(o.t), 0, "pack"));
  /* tiles fitted to the extents: 13 codes, 23 columns, 50 terms */
  int nk = 0;
  const mfx_knob *kn = mfx_op_knobs(mfx_te_op_get(o.t), "cpu", &nk);
  for (int i = 0; i < nk; i++)
    if (strcmp(kn[i].name, "tile_y") == 0) ck_assert_int_eq(kn[i].choices[kn[i].n_choices - 1], 32);
    else if (strcmp(kn[i].name, "tile_k") == 0) ck_assert_int_eq(kn[i].n_choices, 2); /* 0, 16 */
  mfx_te_op_destroy(o.t);

  o = open_kernel(k_batch);
  st = stage_named(o.plan, "C");
  ck_assert(st->tiled && st->n_outer == 1 && st->outer[0] == 0);
  ck_assert_int_eq(access_of(st, "B"), MFX_ACCESS_CONTIGUOUS);
  mfx_te_op_destroy(o.t);

  o = open_kernel(k_gelu);
  st = stage_named(o.plan, "Y");
  ck_assert(!st->tiled && !st->is_reduction && fired(st, MFX_RULE_VECTORIZE) &&
            fired(st, MFX_RULE_PARALLEL) && !fired(st, MFX_RULE_TILE));
  const mfx_op *op = mfx_te_op_get(o.t);
  ck_assert(has_knob(op, 0, "ew_vec") && !has_knob(op, 0, "tile_x") && op->n_knobs == 2);
  ck_assert_int_eq(op->int_tolerance, 1); /* erf: the generated expansion against libm's */
  ck_assert(has_knob(op, 1, "threads") && !has_knob(op, 1, "block_x"));
  mfx_te_op_destroy(o.t);

  o = open_kernel(k_rowsum); /* one spatial axis: no register tile */
  st = stage_named(o.plan, "S");
  ck_assert(!st->tiled && st->is_reduction && !fired(st, MFX_RULE_TILE));
  mfx_te_op_destroy(o.t);

  o = open_kernel(k_two_reductions); /* two reduction axes: not tiled, a gather-free read */
  st = stage_named(o.plan, "S");
  ck_assert(!st->tiled && st->n_reduce == 2);
  mfx_te_op_destroy(o.t);
}
END_TEST

START_TEST(test_hash_ignores_comments) {
  char text[1024];
  snprintf(text, sizeof text, "# a comment\n%s\n\n", k_linear);
  open_op a = open_kernel(k_linear), b = open_kernel(text), c = open_kernel(k_matadd);
  ck_assert_str_eq(mfx_te_op_get(a.t)->name, mfx_te_op_get(b.t)->name);
  ck_assert_str_ne(mfx_te_op_get(a.t)->name, mfx_te_op_get(c.t)->name);
  mfx_te_op_destroy(a.t);
  mfx_te_op_destroy(b.t);
  mfx_te_op_destroy(c.t);
}
END_TEST

/* Sizes are dims, not part of the name: the same kernel at other sizes is
 * the same op (its records are nearest shapes of each other); a changed
 * body, a changed constant index or sizes where two dims coincide are not. */
START_TEST(test_hash_ignores_sizes) {
  const char *other = "placeholder X: f32[64, 40]\nplaceholder W: f32[8, 40]\n"
                      "compute Y: f32[64, 8] (m, n) = sum(k < 40: X[m, k] * W[n, k])\n";
  const char *added = "placeholder X: f32[64, 40]\nplaceholder W: f32[8, 40]\n"
                      "compute Y: f32[64, 8] (m, n) = sum(k < 40: X[m, k] + W[n, k])\n";
  const char *square = "placeholder X: f32[40, 40]\nplaceholder W: f32[8, 40]\n"
                       "compute Y: f32[40, 8] (m, n) = sum(k < 40: X[m, k] * W[n, k])\n";
  const char *row2 = "placeholder X: f32[64, 40]\nplaceholder W: f32[8, 40]\n"
                     "compute Y: f32[64, 8] (m, n) = sum(k < 40: X[2, k] * W[n, k])\n";
  const char *row3 = "placeholder X: f32[64, 40]\nplaceholder W: f32[8, 40]\n"
                     "compute Y: f32[64, 8] (m, n) = sum(k < 40: X[3, k] * W[n, k])\n";
  open_op a = open_kernel(k_linear), b = open_kernel(other), c = open_kernel(added),
          d = open_kernel(square), e = open_kernel(row2), f = open_kernel(row3);
  const char *name = mfx_te_op_get(a.t)->name;
  ck_assert_str_eq(name, mfx_te_op_get(b.t)->name);
  ck_assert_str_ne(name, mfx_te_op_get(c.t)->name);
  ck_assert_str_ne(name, mfx_te_op_get(d.t)->name);
  ck_assert_str_ne(mfx_te_op_get(e.t)->name, mfx_te_op_get(f.t)->name);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(b.t, dims);
  ck_assert(dims[0] == 64 && dims[1] == 40 && dims[2] == 8);
  open_op all[] = {a, b, c, d, e, f};
  for (int i = 0; i < 6; i++) mfx_te_op_destroy(all[i].t);
}
END_TEST

/* ---- kernels against the interpreter --------------------------------------------------------------- */

typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_array in[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS];
} problem;

static void problem_init(problem *p, const mfx_te_op *t) {
  memset(p, 0, sizeof *p);
  p->op = mfx_te_op_get(t);
  mfx_te_op_dims(t, p->dims);
  ck_assert(mfx_op_alloc_inputs(p->op, p->dims, p->in) == MFX_OK);
  ck_assert(mfx_op_alloc_outputs(p->op, p->dims, p->want) == MFX_OK);
  ck_assert(mfx_op_alloc_outputs(p->op, p->dims, p->got) == MFX_OK);
  mfx_op_random_inputs(p->op, p->dims, 7, p->in);
  p->op->reference(p->dims, p->in, p->want); /* the interpreter */
}

static void problem_free(problem *p) {
  for (int i = 0; i < MFX_OP_MAX_TENSORS; i++) {
    mfx_array_free(&p->in[i]);
    mfx_array_free(&p->want[i]);
    mfx_array_free(&p->got[i]);
  }
}

static void problem_compare(const problem *p, const char *what, const mfx_config *cfg) {
  char config[512];
  mfx_config_to_json(cfg, config, sizeof config);
  for (int o = 0; o < p->op->n_outputs; o++) {
    mfx_compare c = mfx_compare_arrays(&p->got[o], &p->want[o], 1e-4);
    ck_assert_msg(c.ok, "%s %s: output %s differs from the interpreter at %lld (abs err %g), "
                  "config %s", what, p->op->about, p->op->outputs[o].name,
                  (long long)c.worst_index, c.max_abs_err, config);
  }
}

static void run_cpu(problem *p, const mfx_config *cfg) {
  mfx_op_kernel k;
  mfx_status st = mfx_op_compile(p->op, p->dims, cfg, &k);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  mfx_pool *pool = NULL;
  ck_assert(mfx_pool_create(2, &pool) == MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  for (int o = 0; o < p->op->n_outputs; o++)
    memset(p->got[o].data, 0x5A, (size_t)mfx_array_numel(&p->got[o]) * mfx_dtype_size(p->got[o].dtype));
  ck_assert_msg(mfx_op_kernel_run(&k, &env, p->in, p->got) == MFX_OK, "%s", mfx_last_error());
  mfx_pool_destroy(pool);
  mfx_op_kernel_free(&k);
  problem_compare(p, "cpu", cfg);
}

static void run_emulated(problem *p, const mfx_config *cfg) {
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_build_result r;
  mfx_status st = mfx_op_build_for(p->op, "cuda", a, p->dims, cfg, &s);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  st = mfx_build(s, "kernel", "emulate", MFX_BUILD_JIT, NULL, &r);
  ck_assert_msg(st == MFX_OK, "%s", mfx_last_error());
  void *args[2 * MFX_OP_MAX_TENSORS];
  for (int i = 0; i < p->op->n_inputs; i++) args[i] = p->in[i].data;
  for (int o = 0; o < p->op->n_outputs; o++) {
    memset(p->got[o].data, 0x5A, (size_t)mfx_array_numel(&p->got[o]) * mfx_dtype_size(p->got[o].dtype));
    args[p->op->n_inputs + o] = p->got[o].data;
  }
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(r.jit)(args, &env), 0);
  mfx_jit_free(r.jit);
  mfx_arena_destroy(a);
  problem_compare(p, "emulate", cfg);
}

/* The default config and n more from the space (spread over its indices),
 * each the template accepts, checked on target. */
static void check_space(const char *text, const char *target, int n) {
  open_op o = open_kernel(text);
  problem p;
  problem_init(&p, o.t);
  int gpu = strcmp(target, "cpu") != 0;
  mfx_space space;
  ck_assert(mfx_space_init_for(&space, p.op, p.dims, gpu ? "cuda" : "cpu") == MFX_OK);
  mfx_config cfg;
  mfx_config_default_for(p.op, gpu ? "cuda" : "cpu", &cfg);
  if (gpu) run_emulated(&p, &cfg);
  else run_cpu(&p, &cfg);
  int tried = 0;
  for (uint64_t i = 1; tried < n && i < 64; i++) {
    mfx_space_config(&space, (i * 2654435761u) % space.size, &cfg);
    if (mfx_space_check(&space, &cfg) != MFX_OK) {
      mfx_clear_error();
      continue;
    }
    if (gpu) run_emulated(&p, &cfg);
    else run_cpu(&p, &cfg);
    tried++;
  }
  ck_assert_int_eq(tried, n);
  problem_free(&p);
  mfx_te_op_destroy(o.t);
}

static const char *const kernels[] = {k_linear, k_relu_linear_bias, k_shift, k_shift_plain, k_matadd,
                                      k_hamming, k_batch, k_gelu, k_rowsum, k_two_reductions};
#define N_KERNELS (int)(sizeof kernels / sizeof kernels[0])

START_TEST(test_cpu_against_interpreter) { check_space(kernels[_i], "cpu", 3); }
END_TEST

START_TEST(test_emulate_against_interpreter) { check_space(kernels[_i], "emulate", 2); }
END_TEST

/* Knob combinations of one small kernel: pack x fuse x vec x inline. */
START_TEST(test_cpu_pack_fuse_combinations) {
  open_op o = open_kernel(k_relu_linear_bias);
  problem p;
  problem_init(&p, o.t);
  for (int pack = 0; pack < 3; pack++)
    for (int fuse = 0; fuse < 2; fuse++)
      for (int vec = 0; vec < 4; vec++) {
        mfx_config cfg;
        mfx_config_default(p.op, &cfg);
        ck_assert(mfx_config_set(p.op, &cfg, "pack", pack) == MFX_OK);
        ck_assert(mfx_config_set(p.op, &cfg, "fuse", fuse) == MFX_OK);
        ck_assert(mfx_config_set(p.op, &cfg, "vec", vec & 1) == MFX_OK);
        ck_assert(mfx_config_set(p.op, &cfg, "inline", vec >> 1) == MFX_OK);
        ck_assert(mfx_config_set(p.op, &cfg, "tile_y", pack == 2 ? 8 : 32) == MFX_OK);
        run_cpu(&p, &cfg);
      }
  problem_free(&p);
  mfx_te_op_destroy(o.t);
}
END_TEST

/* ---- bad input ------------------------------------------------------------------------------------- */

static void expect_refused(const char *text, const char *needle) {
  mfx_te_op *t = NULL;
  mfx_status st = mfx_te_op_create(text, "bad.te", &t);
  ck_assert_msg(st != MFX_OK && t == NULL, "accepted: %s", text);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                mfx_last_error(), needle);
}

START_TEST(test_bad_input) {
  expect_refused("placeholder X: f32[4]\n", "no compute statement");
  expect_refused("", "");
  expect_refused("placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[j]\n", "bad.te:2");
  expect_refused("placeholder A: f32[1]\nplaceholder B: f32[2]\nplaceholder C: f32[3]\n"
                 "placeholder D: f32[4]\nplaceholder E: f32[5]\n"
                 "compute Y: f32[1] (i) = A[i] + B[i] + C[i] + D[i] + E[i]\n",
                 "5 inputs (placeholders)");
  expect_refused("placeholder A: f32[1, 2, 3, 4]\nplaceholder B: f32[5, 6, 7, 8]\n"
                 "placeholder C: f32[9]\n"
                 "compute Y: f32[1] (i) = A[i, i, i, i] + B[i, i, i, i] + C[i]\n",
                 "more than 8 distinct extents");
  ck_assert(mfx_te_op_create(NULL, "x.te", &(mfx_te_op *){NULL}) != MFX_OK);

  /* a config the rules cannot honour, and dims other than the text's */
  open_op o = open_kernel(k_relu_linear_bias);
  const mfx_op *op = mfx_te_op_get(o.t);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(o.t, dims);
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  ck_assert(mfx_config_set(op, &cfg, "local", 0) == MFX_OK);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_op_build_for(op, "cpu", a, dims, &cfg, &s), MFX_ERR_SCHEDULE);
  ck_assert(strstr(mfx_last_error(), "fuse=1 needs local=1") != NULL);
  ck_assert(mfx_config_set(op, &cfg, "tile_x", 3) != MFX_OK); /* not a choice */
  mfx_config_default(op, &cfg);
  dims[0] = 38;
  ck_assert(mfx_op_build_for(op, "cpu", a, dims, &cfg, &s) != MFX_OK);
  ck_assert(strstr(mfx_last_error(), "the kernel's text fixes it at 37") != NULL);
  mfx_arena_destroy(a);
  mfx_te_op_destroy(o.t);
}
END_TEST

START_TEST(test_slots) {
  mfx_te_op *t[MFX_TE_OP_MAX];
  for (int i = 0; i < MFX_TE_OP_MAX; i++) ck_assert(mfx_te_op_create(k_gelu, "g.te", &t[i]) == MFX_OK);
  mfx_te_op *extra = NULL;
  ck_assert(mfx_te_op_create(k_gelu, "g.te", &extra) != MFX_OK);
  ck_assert(strstr(mfx_last_error(), "text kernels are open already") != NULL);
  mfx_te_op_destroy(t[3]);
  ck_assert(mfx_te_op_create(k_gelu, "g.te", &t[3]) == MFX_OK);
  for (int i = 0; i < MFX_TE_OP_MAX; i++) mfx_te_op_destroy(t[i]);
}
END_TEST

static Suite *autosched_suite(void) {
  Suite *s = suite_create("autosched");
  TCase *rules = tcase_create("rules");
  tcase_add_test(rules, test_rules_linear);
  tcase_add_test(rules, test_rules_inline_fuse);
  tcase_add_test(rules, test_rules_pack_producers);
  tcase_add_test(rules, test_rules_contiguous_batch_elementwise);
  tcase_add_test(rules, test_hash_ignores_comments);
  tcase_add_test(rules, test_hash_ignores_sizes);
  tcase_add_test(rules, test_pack_converted_values);
  suite_add_tcase(s, rules);
  TCase *kernels_tc = tcase_create("kernels");
  tcase_set_timeout(kernels_tc, 600);
  tcase_add_loop_test(kernels_tc, test_cpu_against_interpreter, 0, N_KERNELS);
  tcase_add_loop_test(kernels_tc, test_emulate_against_interpreter, 0, N_KERNELS);
  tcase_add_test(kernels_tc, test_cpu_pack_fuse_combinations);
  suite_add_tcase(s, kernels_tc);
  TCase *bad = tcase_create("bad input");
  tcase_add_test(bad, test_bad_input);
  tcase_add_test(bad, test_slots);
  suite_add_tcase(s, bad);
  return s;
}

int main(void) {
  return check_run_suite(autosched_suite());
}
