/* The MoE layer's row movement as ops, so that dispatch and combine compile
 * for the CPU and for GPUs like every other kernel:
 *   gather_rows   Y[m, d] = IDX[m] >= 0 ? X[IDX[m], d] : 0
 *                 (dispatch: an expert's tokens gathered into one contiguous
 *                 batch; IDX = -1 marks a padding row)
 *   combine_rows  Y[t, d] = sum over s < K, in order, of
 *                 ROWS[t, s] >= 0 ? GATES[t, s] YALL[ROWS[t, s], d] : -0.0
 *                 (combine: each token's expert outputs, weighted by its
 *                 gates; ROWS = -1 marks a null expert)
 * Indices come from data: a load whose index is another load (i32, widened
 * to i64 by the load). -1 marks "no row"; so does every other index outside
 * [0, rows) (rows = T for gather_rows, R for combine_rows): a defined
 * result, not a read out of bounds, whatever an embedding application
 * passes. The row loaded is min(max(index, 0), rows - 1), always a real row,
 * and a select, which evaluates both arms, then takes the 0 (or -0.0) arm
 * unless 0 <= index < rows. The references (ops/reference.c) do the same.
 * Where inputs enter from outside (mfx run, mfx-runner, mfx_artifact_run
 * and so mfx.Module), an index other than -1 outside [0, rows) is an error
 * naming the element before anything is launched
 * (mfx_op_check_inputs, runtime/interface.c); the guard above is what
 * a kernel called directly, or a layer's own dispatch, can rely on.
 *
 * combine_rows' sum starts from the sum identity, 0.0, and adds the terms in
 * the order of s, each product rounded once to f32: the plain-C reference's
 * "out = 0; if (row >= 0) out += g v" bit for bit on the CPU (a skipped
 * term adds -0.0, the exact identity of float addition: see matadd.c; LLVM
 * fuses no multiply-add without fast-math flags).
 *
 * Templates: CPU, gather_rows as the elementwise ops (d split by `vector`
 * and vectorized, the rows on the thread pool); combine_rows as a tiled
 * reduction of one row by `vector` columns of d, the small reduction over s
 * outside the vector loop and the sum kept in a local accumulator. GPU, one
 * output element per thread, for both. */
#include "knobs.h"

enum { GATHER_T, GATHER_M, GATHER_D };
enum { COMBINE_R, COMBINE_T, COMBINE_K, COMBINE_D };

/* ---- the expressions ------------------------------------------------------------------- */

/* min(max(index, 0), rows - 1): a real row, the one a select's unused arm
 * still loads when the index is outside [0, rows). */
static mfx_expr *gather_safe_row(mfx_arena *a, mfx_expr *index, int64_t rows) {
  if (index == NULL) return NULL;
  mfx_expr *low = mfx_binary(a, MFX_MAX, index, mfx_int(a, MFX_I32, 0));
  return mfx_binary(a, MFX_MIN, low, mfx_int(a, MFX_I32, rows - 1));
}

/* 0 <= index < rows */
static mfx_expr *gather_valid(mfx_arena *a, mfx_expr *index, int64_t rows) {
  if (index == NULL) return NULL;
  return mfx_binary(a, MFX_LAND, mfx_binary(a, MFX_GE, index, mfx_int(a, MFX_I32, 0)),
                    mfx_binary(a, MFX_LT, index, mfx_int(a, MFX_I32, rows)));
}

/* ---- gather_rows ------------------------------------------------------------------------- */

/* Y[m, d] = select(IDX[m] >= 0, X[max(IDX[m], 0), d], 0) and its (unscheduled)
 * schedule. */
static mfx_status gather_define(mfx_arena *a, const int64_t *dims, mfx_tensor **out_tensor,
                                mfx_schedule **out) {
  int64_t T = dims[GATHER_T], M = dims[GATHER_M], D = dims[GATHER_D];
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 2, (int64_t[]){T, D});
  mfx_tensor *IDX = mfx_placeholder(a, "IDX", MFX_I32, 1, (int64_t[]){M});
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){M, D},
                                    (const char *[]){"m", "d"});
  if (!X || !IDX || !Y) return mfx_fail_context(MFX_ERR_INVALID, "gather_rows: tensors");
  mfx_expr *m = mfx_tmpl_axis(a, Y, 0);
  mfx_expr *index = m != NULL ? mfx_tensor_load(a, IDX, 1, &m) : NULL;
  mfx_expr *x = mfx_tmpl_load2(a, X, gather_safe_row(a, index, T), mfx_tmpl_axis(a, Y, 1));
  mfx_expr *body = x != NULL ? mfx_select(a, gather_valid(a, index, T), x, mfx_f32(a, 0.0)) : NULL;
  MFX_TRY(mfx_tmpl_set_body(a, Y, body));
  *out_tensor = Y;
  return mfx_sched_create(a, 2, (mfx_tensor *[]){X, IDX}, 1, &Y, out);
}

static mfx_status gather_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                               mfx_schedule **out) {
  mfx_tensor *Y = NULL;
  mfx_ew_knobs k;
  MFX_TRY(mfx_ew_knobs_read(cfg, "gather_rows", &k));
  MFX_TRY(gather_define(a, dims, &Y, out));
  return mfx_tmpl_apply_elementwise(*out, Y, k.vector, (int)k.vec, (int)k.parallel);
}

static mfx_status gather_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                   mfx_schedule **out) {
  mfx_tensor *Y = NULL;
  mfx_ew_gpu_knobs k;
  MFX_TRY(mfx_ew_gpu_knobs_read(cfg, "gather_rows (GPU)", &k));
  MFX_TRY(gather_define(a, dims, &Y, out));
  return mfx_gpu_apply_elementwise(*out, Y, k.threads);
}

/* ---- combine_rows ------------------------------------------------------------------------ */

/* Y[t, d] = sum_s select(ROWS[t, s] >= 0, GATES[t, s] YALL[max(ROWS[t, s], 0), d], -0.0)
 * and its (unscheduled) schedule. */
static mfx_status combine_define(mfx_arena *a, const int64_t *dims, mfx_tensor **out_tensor,
                                 mfx_schedule **out) {
  int64_t R = dims[COMBINE_R], T = dims[COMBINE_T], K = dims[COMBINE_K], D = dims[COMBINE_D];
  mfx_tensor *YALL = mfx_placeholder(a, "YALL", MFX_F32, 2, (int64_t[]){R, D});
  mfx_tensor *ROWS = mfx_placeholder(a, "ROWS", MFX_I32, 2, (int64_t[]){T, K});
  mfx_tensor *GATES = mfx_placeholder(a, "GATES", MFX_F32, 2, (int64_t[]){T, K});
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_F32, 2, (int64_t[]){T, D},
                                    (const char *[]){"t", "d"});
  if (!YALL || !ROWS || !GATES || !Y)
    return mfx_fail_context(MFX_ERR_INVALID, "combine_rows: tensors");
  mfx_var *s = mfx_var_create(a, "s", K, 1);
  mfx_expr *t = mfx_tmpl_axis(a, Y, 0), *ss = mfx_var_ref(a, s);
  mfx_expr *row = mfx_tmpl_load2(a, ROWS, t, ss);
  mfx_expr *gate = mfx_tmpl_load2(a, GATES, t, ss);
  mfx_expr *y = mfx_tmpl_load2(a, YALL, gather_safe_row(a, row, R), mfx_tmpl_axis(a, Y, 1));
  mfx_expr *term = gate != NULL && y != NULL
                       ? mfx_select(a, gather_valid(a, row, R), mfx_mul(a, gate, y),
                                    mfx_f32(a, -0.0))
                       : NULL;
  mfx_expr *body = term != NULL ? mfx_reduce(a, MFX_REDUCE_SUM, 1, &s, term) : NULL;
  MFX_TRY(mfx_tmpl_set_body(a, Y, body));
  *out_tensor = Y;
  return mfx_sched_create(a, 3, (mfx_tensor *[]){YALL, ROWS, GATES}, 1, &Y, out);
}

#define COMBINE_CPU_KNOBS(X) X(vector) X(vec) X(parallel) X(local)
MFX_KNOB_VIEW(combine_knobs, COMBINE_CPU_KNOBS)

/* One row of t by `vector` columns of d per tile, over every s:
 *   [t.o, d.o fused, parallel], s, t.i (1), d.i (vectorized) */
static mfx_status combine_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                mfx_schedule **out) {
  mfx_tensor *Y = NULL;
  combine_knobs k;
  MFX_TRY(combine_knobs_read(cfg, "combine_rows", &k));
  MFX_TRY(combine_define(a, dims, &Y, out));
  mfx_tmpl_tiled_reduce p = {
    .n_outer = 0, .x = "t", .y = "d", .r = "s",
    .fx = 1, .fy = k.vector, .fr = 0,
    .vec = (int)k.vec, .unroll = 0, .parallel = (int)k.parallel, .local = (int)k.local,
  };
  return mfx_tmpl_apply_tiled_reduce(*out, Y, &p);
}

/* One output element per thread, its sum over s in a register. */
static mfx_status combine_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                    mfx_schedule **out) {
  mfx_tensor *Y = NULL;
  mfx_ew_gpu_knobs k;
  MFX_TRY(mfx_ew_gpu_knobs_read(cfg, "combine_rows (GPU)", &k));
  MFX_TRY(combine_define(a, dims, &Y, out));
  return mfx_gpu_apply_elementwise(*out, Y, k.threads);
}

/* ---- the ops ---------------------------------------------------------------------------- */

const mfx_op mfx_op_def_gather_rows = {
  MFX_OP_LISTED(gather_rows),
  .about = "rows of X picked by IDX (the MoE dispatch): Y[m] = X[IDX[m]], 0 where IDX[m] = -1",
  MFX_OP_IO(gather_rows),
  .n_knobs = 3,
  .knobs = {
    {"vector", "elements per vector step of d", 8, 4, {4, 8, 16, 32}},
    {"vec", "vectorize d", 1, 2, {0, 1}},
    {"parallel", "run the rows on the thread pool", 1, 2, {0, 1}},
  },
  MFX_GPU_ELEMENTWISE_KNOBS,
  .build = gather_build,
  .build_gpu = gather_build_gpu,
};

const mfx_op mfx_op_def_combine_rows = {
  MFX_OP_LISTED(combine_rows),
  .about = "gate-weighted sums of rows picked by ROWS (the MoE combine): "
           "Y[t] = sum_s GATES[t,s] YALL[ROWS[t,s]], skipping ROWS[t,s] = -1",
  MFX_OP_IO(combine_rows),
  .n_knobs = 4,
  .knobs = {
    {"vector", "columns of d per tile (the vector loop)", 8, 4, {4, 8, 16, 32}},
    {"vec", "vectorize d", 1, 2, {0, 1}},
    {"parallel", "run the tiles on the thread pool", 1, 2, {0, 1}},
    {"local", "accumulate the tile in registers (local buffer)", 1, 2, {0, 1}},
  },
  MFX_GPU_ELEMENTWISE_KNOBS,
  .build = combine_build,
  .build_gpu = combine_build_gpu,
};
