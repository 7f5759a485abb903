/* The workspace and the experts as chains of kernels, each kernel keyed by
 * (op, M, N, K) with M a token bucket (moe_bucket) so a few kernels serve
 * every batch, and run through the layer's provider (moe_internal.h): two
 * kernels per expert, GELU and the Q16.16 conversions fused into them
 * (ops/fused.c):
 *
 *   mult:  X [M,D] -linear_gelu W1-> [M,H] -linear W2-> [M,D]
 *   shift: X [M,D] -shift_linear_q16_gelu S1,G1-> [M,H] Q16.16
 *          -shift_linear_dequantize S2,G2-> [M,D]
 *   shift16: X [M,D] -shift_linear16_gelu S1,G1-> [M,H] Q3.10 (i16)
 *          -shift_linear16_dequantize S2,G2-> [M,D]   (ops/fused16.c)
 * The Q16.16 entry (mfx_moe_shift_expert_q16) runs shift_linear, q16_gelu
 * (in place), shift_linear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_internal.h"

enum { MOE_DIM_M, MOE_DIM_N, MOE_DIM_K };

/* ---- workspace ---------------------------------------------------------- */

mfx_status moe_ws_get(mfx_moe *moe, moe_ws_slot slot, size_t bytes, void **out) {
  if (bytes == 0) bytes = 64;
  if (moe->ws_bytes[slot] < bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded);
    if (p == NULL)
      return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for a %zu-byte workspace", rounded);
    free(moe->ws[slot]);
    moe->ws[slot] = p;
    moe->ws_bytes[slot] = rounded;
  }
  *out = moe->ws[slot];
  return MFX_OK;
}

void moe_ws_free(mfx_moe *moe) {
  for (int i = 0; i < MOE_WS_COUNT; i++) {
    free(moe->ws[i]);
    moe->ws[i] = NULL;
    moe->ws_bytes[i] = 0;
  }
}

/* ---- host loops on the pool ------------------------------------------------ */

const mfx_kernel_env *moe_env_or_serial(const mfx_kernel_env *env, mfx_kernel_env *serial) {
  if (env != NULL) return env;
  mfx_kernel_env_init(serial, NULL);
  return serial;
}

void moe_parallel(const mfx_kernel_env *env, mfx_parallel_body body, void *closure, int64_t n) {
  if (n <= 0) return;
  if (env->parallel_for == NULL) body(closure, 0, n);
  else env->parallel_for(env->pool, body, closure, n);
}

/* ---- the kernels a pass wants -------------------------------------------------------- */

int moe_want_add_dims(moe_want *w, int n, const char *name, int n_dims, const int64_t *dims) {
  memset(&w[n], 0, sizeof w[n]);
  w[n].op = name;
  w[n].n_dims = n_dims < MOE_MAX_OP_DIMS ? n_dims : MOE_MAX_OP_DIMS;
  memcpy(w[n].dims, dims, (size_t)w[n].n_dims * sizeof(int64_t));
  for (int i = 0; i < n; i++)
    if (moe_want_equal(&w[i], &w[n])) return n;
  return n + 1;
}

int moe_want_add(moe_want *w, int n, const char *name, int64_t m, int64_t cols, int64_t k) {
  return moe_want_add_dims(w, n, name, k != 0 ? 3 : 2, (int64_t[MOE_MAX_OP_DIMS]){m, cols, k});
}

int moe_want_equal(const moe_want *a, const moe_want *b) {
  return strcmp(a->op, b->op) == 0 && a->n_dims == b->n_dims &&
         memcmp(a->dims, b->dims, sizeof a->dims) == 0;
}

void moe_want_text(const moe_want *w, char *buf, size_t size) {
  static const char *const names[][MOE_MAX_OP_DIMS] = {
      {"M", "N", "K", "?"}, {"T", "M", "D", "?"}, {"R", "T", "K", "D"}};
  int which = strcmp(w->op, "gather_rows") == 0 ? 1 : strcmp(w->op, "combine_rows") == 0 ? 2 : 0;
  size_t used = (size_t)snprintf(buf, size, "%s ", w->op);
  for (int d = 0; d < w->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : "",
                             names[which][d], (long long)w->dims[d]);
}

int moe_grow(void **array, int *cap, int need, size_t size) {
  if (need <= *cap) return 1;
  int grown_cap = *cap ? *cap : 16;
  while (grown_cap < need) grown_cap *= 2;
  void *grown = realloc(*array, (size_t)grown_cap * size);
  if (grown == NULL) return 0;
  *array = grown;
  *cap = grown_cap;
  return 1;
}

/* ---- running kernels ----------------------------------------------------------------- */

static mfx_array moe_view(mfx_dtype t, int64_t rows, int64_t cols, const void *data) {
  mfx_array a;
  memset(&a, 0, sizeof a);
  a.dtype = t;
  a.ndim = 2;
  a.shape[0] = rows;
  a.shape[1] = cols;
  a.data = (void *)data;
  return a;
}

/* Runs op at (m, n, k) through the layer's provider on host arrays. */
static mfx_status moe_run_kernel(mfx_moe *moe, const mfx_kernel_env *env, const char *op,
                                 int64_t m, int64_t n, int64_t k, mfx_array *in,
                                 mfx_array *out) {
  moe_want w[1];
  moe_want_add(w, 0, op, m, n, k);
  moe_provider *p = moe->provider;
  if (p->ops->run_host == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe: the %s kernels run on device buffers only",
                    p->ops->kind);
  return p->ops->run_host(p, w, env, in, out);
}

/* y [m, n] = op(x [m, k], weights): linear or linear_gelu. */
static mfx_status moe_linear(mfx_moe *moe, const mfx_kernel_env *env, const char *op,
                             int64_t m, int64_t n, int64_t k, const float *x, const float *w,
                             float *y) {
  mfx_array in[2] = {moe_view(MFX_F32, m, k, x), moe_view(MFX_F32, n, k, w)};
  mfx_array out = moe_view(MFX_F32, m, n, y);
  return moe_run_kernel(moe, env, op, m, n, k, in, &out);
}

/* The same for shift_linear and its fused forms: x and y of the op's
 * dtypes (xt, yt). */
static mfx_status moe_shift(mfx_moe *moe, const mfx_kernel_env *env, const char *op, int64_t m,
                            int64_t n, int64_t k, mfx_dtype xt, const void *x, const int8_t *s,
                            const int8_t *g, mfx_dtype yt, void *y) {
  mfx_array in[3] = {moe_view(xt, m, k, x), moe_view(MFX_I8, n, k, s), moe_view(MFX_I8, n, k, g)};
  mfx_array out = moe_view(yt, m, n, y);
  return moe_run_kernel(moe, env, op, m, n, k, in, &out);
}

mfx_status moe_run_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits) {
  if (moe->gpu != NULL) return moe_gpu_router(moe, env, xpad, rows, rlogits);
  return moe_linear(moe, env, "linear", rows, moe->spec.experts, moe->spec.dim, xpad,
                    moe->router_w, rlogits);
}

static mfx_status moe_run_mult(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                               int64_t rows, float *y) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  float *hb = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_HB, (size_t)(rows * H) * sizeof(float), (void **)&hb);
  if (st == MFX_OK) st = moe_linear(moe, env, "linear_gelu", rows, H, D, xb, x->w1, hb);
  if (st != MFX_OK) return st;
  return moe_linear(moe, env, "linear", rows, D, H, hb, x->w2, y);
}

mfx_status moe_run_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  int32_t *xq = NULL, *hq = NULL, *yq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_XQ, (size_t)(rows * D) * 4, (void **)&xq);
  if (st == MFX_OK) st = moe_ws_get(moe, MOE_WS_HQ, (size_t)(rows * H) * 4, (void **)&hq);
  if (st == MFX_OK) st = moe_ws_get(moe, MOE_WS_YQ, (size_t)(rows * D) * 4, (void **)&yq);
  if (st == MFX_OK && moe->gpu != NULL) return moe_gpu_shift_q16(moe, e, env, xq, rows, yq);
  if (st == MFX_OK) st = moe_shift(moe, env, "shift_linear", rows, H, D, MFX_I32, xq, x->s1, x->g1,
                            MFX_I32, hq);
  if (st != MFX_OK) return st;
  mfx_array h = moe_view(MFX_I32, rows, H, hq); /* elementwise: in place is safe */
  if ((st = moe_run_kernel(moe, env, "q16_gelu", rows, H, 0, &h, &h)) != MFX_OK) return st;
  return moe_shift(moe, env, "shift_linear", rows, D, H, MFX_I32, hq, x->s2, x->g2, MFX_I32, yq);
}

static mfx_status moe_run_shift(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                const float *xb, int64_t rows, float *y) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  void *hq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_HQ, (size_t)(rows * H) * 4, &hq);
  if (st == MFX_OK)
    st = moe_shift(moe, env, "shift_linear_q16_gelu", rows, H, D, MFX_F32, xb, x->s1, x->g1,
                   MFX_I32, hq);
  if (st != MFX_OK) return st;
  return moe_shift(moe, env, "shift_linear_dequantize", rows, D, H, MFX_I32, hq, x->s2, x->g2,
                   MFX_F32, y);
}

/* The shift16 expert: the same weights on 16-bit lanes, Q3.10 between. */
static mfx_status moe_run_shift16(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                  const float *xb, int64_t rows, float *y) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  void *hq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_HQ, (size_t)(rows * H) * sizeof(int16_t), &hq);
  if (st == MFX_OK)
    st = moe_shift(moe, env, "shift_linear16_gelu", rows, H, D, MFX_F32, xb, x->s1, x->g1,
                   MFX_I16, hq);
  if (st != MFX_OK) return st;
  return moe_shift(moe, env, "shift_linear16_dequantize", rows, D, H, MFX_I16, hq, x->s2, x->g2,
                   MFX_F32, y);
}

/* The two ops of each kind's chain: [kind][0] to H (GELU fused), [kind][1] back to D. */
static const char *const moe_chain_ops[MFX_EXPERT_KIND_COUNT][2] = {
    [MFX_EXPERT_MULT] = {"linear_gelu", "linear"},
    [MFX_EXPERT_SHIFT] = {"shift_linear_q16_gelu", "shift_linear_dequantize"},
    [MFX_EXPERT_SHIFT16] = {"shift_linear16_gelu", "shift_linear16_dequantize"},
};

const char *moe_expert_op(mfx_expert_kind kind, int second) {
  if ((unsigned)kind >= MFX_EXPERT_KIND_COUNT) return NULL;
  return moe_chain_ops[kind][second != 0];
}

mfx_status moe_run_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                          int64_t rows, float *y) {
  if (moe->gpu != NULL && moe->spec.kinds[e] != MFX_EXPERT_NULL)
    return moe_gpu_expert(moe, e, env, xb, rows, y);
  switch (moe->spec.kinds[e]) {
  case MFX_EXPERT_MULT: return moe_run_mult(moe, e, env, xb, rows, y);
  case MFX_EXPERT_SHIFT: return moe_run_shift(moe, e, env, xb, rows, y);
  case MFX_EXPERT_SHIFT16: return moe_run_shift16(moe, e, env, xb, rows, y);
  case MFX_EXPERT_NULL:
  case MFX_EXPERT_KIND_COUNT: break;
  }
  memset(y, 0, (size_t)(rows * moe->spec.dim) * sizeof(float));
  return MFX_OK;
}

int moe_expert_wants(const mfx_moe *moe, const int64_t *rows, moe_want *want) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  int n = 0;
  for (int e = 0; e < moe->spec.experts; e++) {
    mfx_expert_kind kind = moe->spec.kinds[e];
    if (kind == MFX_EXPERT_NULL || rows[e] <= 0) continue;
    n = moe_want_add(want, n, moe_expert_op(kind, 0), rows[e], H, D);
    n = moe_want_add(want, n, moe_expert_op(kind, 1), rows[e], D, H);
  }
  return n;
}

mfx_status moe_compile_experts(mfx_moe *moe, const int64_t *rows) {
  moe_want want[MOE_MAX_WANTS];
  int n = moe_expert_wants(moe, rows, want);
  return moe->provider->ops->ensure(moe->provider, want, n);
}

int mfx_moe_kernel_count(const mfx_moe *moe) {
  if (moe == NULL || moe->provider == NULL) return 0;
  return moe->provider->ops->count(moe->provider);
}
