/* The layer's forward pass, in the order it runs (on a GPU target the
 * dispatch, experts and combine run on the device: device.c):
 *   router    logits = X Wr^T (compiled linear on X padded to a bucket),
 *             top-k with the selection bias (mfx_router_route)
 *   dispatch  each expert's tokens gathered into one contiguous batch,
 *             padded with zero rows to its bucket
 *   experts   each batch through its expert's kernels (experts.c) into
 *             its slice of one output buffer
 *   combine   y[t] = sum over t's slots of gate * output row, in slot order */
#include <string.h>

#include "moe_internal.h"
#include "mfx/router.h"

/* ---- router ----------------------------------------------------------------- */

typedef struct {
  float *logits; /* [T, E] */
  int32_t *chosen;
  float *gates;
  double counts[MFX_MOE_MAX_EXPERTS];
} moe_routing;

/* x on the host, or x_dev (not 0) in the caller's device buffer. */
static mfx_status moe_route(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                            uint64_t x_dev, int64_t T, moe_routing *r) {
  int64_t D = moe->spec.dim, E = moe->spec.experts, rows = moe_bucket(moe, T);
  float *xpad = NULL, *rlogits = NULL;
  mfx_status st = MFX_OK;
  if (x_dev == 0)
    st = moe_ws_get(moe, MOE_WS_XPAD, (size_t)(rows * D) * sizeof(float), (void **)&xpad);
  if (st == MFX_OK)
    st = moe_ws_get(moe, MOE_WS_RLOGITS, (size_t)(rows * E) * sizeof(float), (void **)&rlogits);
  if (st != MFX_OK) return st;
  if (x_dev != 0) {
    st = moe_gpu_router_device(moe, env, x_dev, T, rows, rlogits);
  } else {
    memcpy(xpad, x, (size_t)(T * D) * sizeof(float));
    memset(xpad + T * D, 0, (size_t)((rows - T) * D) * sizeof(float));
    st = moe_run_router(moe, env, xpad, rows, rlogits);
  }
  if (st != MFX_OK) return mfx_fail_context(st, "moe router");
  memcpy(r->logits, rlogits, (size_t)(T * E) * sizeof(float));
  st = mfx_router_route(r->logits, T, (int)E, moe->spec.k,
                        moe->has_bias ? moe->router_bias : NULL, r->chosen, r->gates,
                        r->counts);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "moe router");
}

/* ---- dispatch ------------------------------------------------------------------ */


static mfx_status moe_dispatch_plan(mfx_moe *moe, int64_t T, const int32_t *chosen,
                                    moe_dispatch *d) {
  int E = moe->spec.experts, k = moe->spec.k;
  size_t bytes = (size_t)(T * k) * sizeof(int64_t);
  mfx_status st = moe_ws_get(moe, MOE_WS_LIST, bytes, (void **)&d->list);
  if (st == MFX_OK) st = moe_ws_get(moe, MOE_WS_ROWS, bytes, (void **)&d->rows);
  if (st != MFX_OK) return st;
  memset(d->count, 0, sizeof d->count);
  for (int64_t i = 0; i < T * k; i++) d->count[chosen[i]]++;
  int64_t start = 0, offset = 0;
  for (int e = 0; e < E; e++) {
    d->start[e] = start;
    d->offset[e] = offset;
    start += d->count[e];
    if (moe->spec.kinds[e] != MFX_EXPERT_NULL) offset += moe_bucket(moe, d->count[e]);
  }
  d->total_rows = offset;
  int64_t fill[MFX_MOE_MAX_EXPERTS] = {0};
  for (int64_t i = 0; i < T * k; i++) {
    int e = chosen[i];
    d->list[d->start[e] + fill[e]] = i / k;
    d->rows[i] = moe->spec.kinds[e] == MFX_EXPERT_NULL ? -1 : d->offset[e] + fill[e];
    fill[e]++;
  }
  return MFX_OK;
}

/* xb [bucket(count), D] = the expert's tokens, then zero rows. */
static void moe_gather(const mfx_moe *moe, const moe_dispatch *d, int e, const float *x,
                       int64_t D, float *xb) {
  const int64_t *list = d->list + d->start[e];
  int64_t n = d->count[e], rows = moe_bucket(moe, n);
  for (int64_t j = 0; j < n; j++) memcpy(xb + j * D, x + list[j] * D, (size_t)D * sizeof(float));
  memset(xb + n * D, 0, (size_t)((rows - n) * D) * sizeof(float));
}

/* ---- experts -------------------------------------------------------------------------- */

static mfx_status moe_run_experts(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                                  const moe_dispatch *d, float *yall, mfx_moe_trace *trace) {
  int64_t D = moe->spec.dim;
  for (int e = 0; e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL || d->count[e] == 0) continue;
    double t0 = mfx_now_seconds();
    int64_t rows = moe_bucket(moe, d->count[e]);
    float *xb = NULL;
    mfx_status st = moe_ws_get(moe, MOE_WS_XB, (size_t)(rows * D) * sizeof(float), (void **)&xb);
    if (st != MFX_OK) return st;
    moe_gather(moe, d, e, x, D, xb);
    double t1 = mfx_now_seconds();
    st = moe_run_expert(moe, e, env, xb, rows, yall + d->offset[e] * D);
    if (st != MFX_OK)
      return mfx_fail_context(st, "moe expert %d (%s, %lld tokens)", e,
                              mfx_expert_kind_name(moe->spec.kinds[e]), (long long)d->count[e]);
    if (trace != NULL) {
      trace->dispatch_s += t1 - t0;
      trace->expert_s[e] = mfx_now_seconds() - t1;
    }
  }
  return MFX_OK;
}

/* Every kernel the experts' batches need, compiled together before any runs. */
static mfx_status moe_prepare_batches(mfx_moe *moe, const moe_dispatch *d) {
  int64_t rows[MFX_MOE_MAX_EXPERTS];
  for (int e = 0; e < moe->spec.experts; e++) rows[e] = moe_bucket(moe, d->count[e]);
  return moe_compile_experts(moe, rows);
}

/* ---- combine ----------------------------------------------------------------------------- */

typedef struct {
  const float *gates, *yall;
  const int64_t *rows;
  float *y;
  int64_t D;
  int k;
} moe_combine_job;

static void moe_combine_body(void *c, int64_t begin, int64_t end) {
  const moe_combine_job *j = c;
  for (int64_t t = begin; t < end; t++) {
    float *out = j->y + t * j->D;
    memset(out, 0, (size_t)j->D * sizeof(float));
    for (int s = 0; s < j->k; s++) {
      int64_t row = j->rows[t * j->k + s];
      if (row < 0) continue; /* a null expert adds nothing */
      float g = j->gates[t * j->k + s];
      const float *v = j->yall + row * j->D;
      for (int64_t i = 0; i < j->D; i++) out[i] += g * v[i];
    }
  }
}

/* ---- the pass ---------------------------------------------------------------------------- */

static mfx_status moe_forward_checks(const mfx_moe *moe, const float *x, int64_t T,
                                     const float *y) {
  if (moe == NULL || x == NULL || y == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe forward: layer, x and y must not be NULL");
  return moe_check_batch(moe, T, "moe forward");
}

static mfx_status moe_routing_buffers(mfx_moe *moe, int64_t T, mfx_moe_trace *trace,
                                      moe_routing *r) {
  int64_t E = moe->spec.experts, k = moe->spec.k;
  r->logits = trace ? trace->logits : NULL;
  r->chosen = trace ? trace->chosen : NULL;
  r->gates = trace ? trace->gates : NULL;
  mfx_status st = MFX_OK;
  if (r->logits == NULL)
    st = moe_ws_get(moe, MOE_WS_LOGITS, (size_t)(T * E) * sizeof(float), (void **)&r->logits);
  if (st == MFX_OK && r->chosen == NULL)
    st = moe_ws_get(moe, MOE_WS_CHOSEN, (size_t)(T * k) * sizeof(int32_t), (void **)&r->chosen);
  if (st == MFX_OK && r->gates == NULL)
    st = moe_ws_get(moe, MOE_WS_GATES, (size_t)(T * k) * sizeof(float), (void **)&r->gates);
  return st;
}

static void moe_trace_reset(mfx_moe_trace *trace) {
  if (trace == NULL) return;
  memset(trace->counts, 0, sizeof trace->counts);
  memset(trace->expert_s, 0, sizeof trace->expert_s);
  trace->router_s = trace->dispatch_s = trace->combine_s = trace->total_s = 0.0;
  trace->compile_s = 0.0;
  trace->kernels_compiled = 0;
}

/* x and y on the host, or x_dev and y_dev (not 0) on the layer's device. */
static mfx_status moe_forward_steps(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                                    uint64_t x_dev, int64_t T, float *y, uint64_t y_dev,
                                    mfx_moe_trace *trace) {
  moe_routing r;
  moe_dispatch d;
  float *yall = NULL;
  double t0 = mfx_now_seconds();
  mfx_status st = moe_routing_buffers(moe, T, trace, &r);
  if (st == MFX_OK) st = moe_route(moe, env, x, x_dev, T, &r);
  double t1 = mfx_now_seconds();
  if (st == MFX_OK) st = moe_dispatch_plan(moe, T, r.chosen, &d);
  if (st == MFX_OK && moe->gpu == NULL) /* on a GPU, YALL lives there */
    st = moe_ws_get(moe, MOE_WS_YALL, (size_t)(d.total_rows * moe->spec.dim) * sizeof(float),
                    (void **)&yall);
  if (trace != NULL) {
    trace->router_s = t1 - t0;
    trace->dispatch_s = mfx_now_seconds() - t1;
    memcpy(trace->counts, r.counts, sizeof r.counts);
  }
  double tc = mfx_now_seconds();
  if (st == MFX_OK) st = moe->gpu ? moe_gpu_prepare_pass(moe, T, &d) : moe_prepare_batches(moe, &d);
  if (trace != NULL) trace->compile_s = mfx_now_seconds() - tc;
  if (st == MFX_OK && moe->gpu != NULL)
    return moe_gpu_experts(moe, env, T, &d, r.gates, y, y_dev, trace);
  if (st == MFX_OK) st = moe_run_experts(moe, env, x, &d, yall, trace);
  if (st != MFX_OK) return st;
  double t2 = mfx_now_seconds();
  moe_combine_job job = {r.gates, yall, d.rows, y, moe->spec.dim, moe->spec.k};
  moe_parallel(env, moe_combine_body, &job, T);
  if (trace != NULL) trace->combine_s = mfx_now_seconds() - t2;
  return MFX_OK;
}

static mfx_status moe_forward_run(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                                  uint64_t x_dev, int64_t tokens, float *y, uint64_t y_dev,
                                  mfx_moe_trace *trace) {
  mfx_kernel_env serial;
  env = moe_env_or_serial(env, &serial);
  moe_trace_reset(trace);
  moe->compiled_since = 0;
  double t0 = mfx_now_seconds();
  mfx_status st = moe_forward_steps(moe, env, x, x_dev, tokens, y, y_dev, trace);
  if (trace != NULL) {
    trace->total_s = mfx_now_seconds() - t0;
    trace->kernels_compiled = moe->compiled_since;
  }
  return st;
}

mfx_status mfx_moe_forward(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                           int64_t tokens, float *y, mfx_moe_trace *trace) {
  mfx_status st = moe_forward_checks(moe, x, tokens, y);
  if (st != MFX_OK) return st;
  return moe_forward_run(moe, env, x, 0, tokens, y, 0, trace);
}

static mfx_status moe_forward_device_checks(const mfx_moe *moe, uint64_t x, size_t x_bytes,
                                            int64_t T, uint64_t y, size_t y_bytes) {
  const char *where = "moe forward on device buffers";
  if (moe == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: the layer is NULL", where);
  if (moe->gpu == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: the layer runs on the host (target %s); device "
                    "buffers need a layer on a GPU (target cuda or emulate, or loaded from a "
                    "cuda artifact): use mfx_moe_forward", where, moe->target);
  if (x == 0 || y == 0)
    return mfx_fail(MFX_ERR_INVALID, "%s: x and y must be device addresses, not 0", where);
  MFX_TRY(moe_check_batch(moe, T, where));
  size_t need = (size_t)T * (size_t)moe->spec.dim * sizeof(float);
  if (x_bytes < need || y_bytes < need)
    return mfx_fail(MFX_ERR_INVALID, "%s: x holds %zu bytes and y %zu; %lld tokens of D=%d "
                    "f32 need %zu each", where, x_bytes, y_bytes, (long long)T, moe->spec.dim,
                    need);
  if (x < y + need && y < x + need)
    return mfx_fail(MFX_ERR_INVALID, "%s: x and y overlap; expected separate buffers", where);
  return MFX_OK;
}

mfx_status mfx_moe_forward_device(mfx_moe *moe, const mfx_kernel_env *env, uint64_t x,
                                  size_t x_bytes, int64_t tokens, uint64_t y, size_t y_bytes,
                                  mfx_moe_trace *trace) {
  MFX_TRY(moe_forward_device_checks(moe, x, x_bytes, tokens, y, y_bytes));
  return moe_forward_run(moe, env, NULL, x, tokens, NULL, y, trace);
}

/* ---- one expert on its own --------------------------------------------------------------- */

mfx_status mfx_moe_expert_forward(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                  const float *x, int64_t n, float *y) {
  mfx_status st = moe_check_expert(moe, e, "moe expert forward");
  if (st == MFX_OK) st = moe_check_batch(moe, n, "moe expert forward");
  if (st == MFX_OK && (x == NULL || y == NULL))
    st = mfx_fail(MFX_ERR_INVALID, "moe expert forward: x and y must not be NULL");
  if (st != MFX_OK) return st;
  mfx_kernel_env serial;
  env = moe_env_or_serial(env, &serial);
  int64_t D = moe->spec.dim, rows = moe_bucket(moe, n);
  float *xb = NULL, *yb = NULL;
  st = moe_ws_get(moe, MOE_WS_XB, (size_t)(rows * D) * sizeof(float), (void **)&xb);
  if (st == MFX_OK)
    st = moe_ws_get(moe, MOE_WS_YALL, (size_t)(rows * D) * sizeof(float), (void **)&yb);
  if (st != MFX_OK) return st;
  memcpy(xb, x, (size_t)(n * D) * sizeof(float));
  memset(xb + n * D, 0, (size_t)((rows - n) * D) * sizeof(float));
  double t0 = mfx_now_seconds();
  st = moe_run_expert(moe, e, env, xb, rows, yb);
  if (st != MFX_OK) return mfx_fail_context(st, "moe expert %d", e);
  moe->last_expert_s = moe->gpu != NULL && moe->spec.kinds[e] != MFX_EXPERT_NULL
                           ? moe_gpu_last_expert_seconds(moe)
                           : mfx_now_seconds() - t0;
  memcpy(y, yb, (size_t)(n * D) * sizeof(float));
  return MFX_OK;
}

double mfx_moe_last_expert_seconds(const mfx_moe *moe) { return moe ? moe->last_expert_s : 0.0; }

mfx_status mfx_moe_shift_expert_q16(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                    const int32_t *xq, int64_t n, int32_t *yq) {
  mfx_status st = moe_check_expert(moe, e, "moe shift expert");
  if (st == MFX_OK) st = moe_check_batch(moe, n, "moe shift expert");
  if (st == MFX_OK && moe->spec.kinds[e] != MFX_EXPERT_SHIFT)
    st = mfx_fail(MFX_ERR_INVALID, "moe shift expert: expert %d is %s, not shift", e,
                  mfx_expert_kind_name(moe->spec.kinds[e]));
  if (st == MFX_OK && (xq == NULL || yq == NULL))
    st = mfx_fail(MFX_ERR_INVALID, "moe shift expert: xq and yq must not be NULL");
  if (st != MFX_OK) return st;
  mfx_kernel_env serial;
  env = moe_env_or_serial(env, &serial);
  int64_t D = moe->spec.dim, rows = moe_bucket(moe, n);
  int32_t *xpad = NULL;
  st = moe_ws_get(moe, MOE_WS_XQ, (size_t)(rows * D) * 4, (void **)&xpad);
  if (st != MFX_OK) return st;
  memcpy(xpad, xq, (size_t)(n * D) * 4);
  memset(xpad + n * D, 0, (size_t)((rows - n) * D) * 4);
  st = moe_run_shift_q16(moe, e, env, rows);
  if (st != MFX_OK) return mfx_fail_context(st, "moe shift expert %d", e);
  memcpy(yq, moe->ws[MOE_WS_YQ], (size_t)(n * D) * 4);
  return MFX_OK;
}

mfx_status mfx_moe_prepare(mfx_moe *moe, int64_t n) {
  if (moe == NULL) return mfx_fail(MFX_ERR_INVALID, "moe prepare: the layer is NULL");
  mfx_status st = moe_check_batch(moe, n, "moe prepare");
  if (st != MFX_OK) return st;
  int64_t rows[MFX_MOE_MAX_EXPERTS];
  for (int e = 0; e < moe->spec.experts; e++) rows[e] = moe_bucket(moe, n);
  return moe_compile_experts(moe, rows);
}
