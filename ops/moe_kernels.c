/* The layer's compiled kernels: a cache keyed by (op, M, N, K), where M is
 * always a token bucket (mfx_moe_bucket) so a few kernels serve every batch;
 * the workspace; and the experts as chains of kernels with the host steps
 * between them (GELU, Q16.16 conversions) run on the kernel env's pool.
 *
 *   mult:  X [M,D] -linear W1-> [M,H] -GELU-> -linear W2-> [M,D]
 *   shift: X -Q16.16-> -shift_linear S1,G1-> [M,H] -f32, GELU, Q16.16->
 *          -shift_linear S2,G2-> [M,D] -f32-> */
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

typedef struct {
  void *src, *dst;
  int64_t row; /* elements per row */
} moe_rows_job;

static void moe_gelu_body(void *c, int64_t begin, int64_t end) {
  const moe_rows_job *j = c;
  float *p = j->dst;
  for (int64_t i = begin * j->row; i < end * j->row; i++) p[i] = moe_gelu(p[i]);
}

static void moe_quantize_body(void *c, int64_t begin, int64_t end) {
  const moe_rows_job *j = c;
  const float *s = j->src;
  int32_t *d = j->dst;
  for (int64_t i = begin * j->row; i < end * j->row; i++) d[i] = moe_q16_from_float(s[i]);
}

static void moe_dequantize_body(void *c, int64_t begin, int64_t end) {
  const moe_rows_job *j = c;
  const int32_t *s = j->src;
  float *d = j->dst;
  for (int64_t i = begin * j->row; i < end * j->row; i++) d[i] = moe_q16_to_float(s[i]);
}

/* The shift expert's middle: q <- Q16.16(GELU(f32(q))), in place. */
static void moe_requantize_body(void *c, int64_t begin, int64_t end) {
  const moe_rows_job *j = c;
  int32_t *q = j->dst;
  for (int64_t i = begin * j->row; i < end * j->row; i++)
    q[i] = moe_q16_from_float(moe_gelu(moe_q16_to_float(q[i])));
}

static void moe_rows(const mfx_kernel_env *env, mfx_parallel_body body, const void *src,
                     void *dst, int64_t rows, int64_t row) {
  moe_rows_job j = {(void *)src, dst, row};
  moe_parallel(env, body, &j, rows);
}

/* ---- the kernel cache ----------------------------------------------------------- */

static mfx_status moe_compile(mfx_moe *moe, const mfx_op *op, const int64_t *dims,
                              moe_kernel_entry *entry) {
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  if (moe->spec.choose_config != NULL) {
    mfx_status st = moe->spec.choose_config(moe->spec.choose_user, "cpu", op, dims, &cfg);
    if (st != MFX_OK)
      return mfx_fail_context(st, "moe: choosing the config of %s M=%lld,N=%lld,K=%lld",
                              op->name, (long long)dims[0], (long long)dims[1],
                              (long long)dims[2]);
  }
  entry->op = op;
  memcpy(entry->dims, dims, sizeof entry->dims);
  return mfx_op_compile(op, dims, &cfg, &entry->kernel);
}

static mfx_status moe_kernel_get(mfx_moe *moe, const char *name, int64_t m, int64_t n,
                                 int64_t k, const mfx_op_kernel **out) {
  const mfx_op *op = mfx_op_find(name);
  if (op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", name);
  int64_t dims[3] = {m, n, k};
  for (int i = 0; i < moe->n_kernels; i++) {
    moe_kernel_entry *e = &moe->kernels[i];
    if (e->op == op && memcmp(e->dims, dims, sizeof dims) == 0) {
      *out = &e->kernel;
      return MFX_OK;
    }
  }
  if (moe->n_kernels == moe->cap_kernels) {
    int cap = moe->cap_kernels ? 2 * moe->cap_kernels : 16;
    moe_kernel_entry *grown = realloc(moe->kernels, (size_t)cap * sizeof *grown);
    if (grown == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
    moe->kernels = grown;
    moe->cap_kernels = cap;
  }
  moe_kernel_entry *entry = &moe->kernels[moe->n_kernels];
  memset(entry, 0, sizeof *entry);
  mfx_status st = moe_compile(moe, op, dims, entry);
  if (st != MFX_OK) return st;
  moe->n_kernels++;
  moe->compiled_since++;
  *out = &entry->kernel;
  return MFX_OK;
}

void moe_kernels_free(mfx_moe *moe) {
  for (int i = 0; i < moe->n_kernels; i++) mfx_op_kernel_free(&moe->kernels[i].kernel);
  free(moe->kernels);
  moe->kernels = NULL;
  moe->n_kernels = moe->cap_kernels = 0;
}

int mfx_moe_kernel_count(const mfx_moe *moe) {
  if (moe == NULL) return 0;
  return moe->gpu != NULL ? moe_gpu_kernel_count(moe) : moe->n_kernels;
}

const mfx_op_kernel *mfx_moe_kernel_at(const mfx_moe *moe, int i) {
  if (moe == NULL || i < 0 || i >= moe->n_kernels) return NULL;
  return &moe->kernels[i].kernel;
}

const mfx_artifact_kernel *mfx_moe_gpu_kernel_at(const mfx_moe *moe, int i) {
  return moe != NULL && moe->gpu != NULL ? moe_gpu_artifact_kernel(moe, i) : NULL;
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

/* y [m, n] = op(x [m, k], weights), through the cached kernel. */
static mfx_status moe_linear(mfx_moe *moe, const mfx_kernel_env *env, int64_t m, int64_t n,
                             int64_t k, const float *x, const float *w, float *y) {
  const mfx_op_kernel *kernel;
  mfx_status st = moe_kernel_get(moe, "linear", m, n, k, &kernel);
  if (st != MFX_OK) return st;
  mfx_array in[2] = {moe_view(MFX_F32, m, k, x), moe_view(MFX_F32, n, k, w)};
  mfx_array out = moe_view(MFX_F32, m, n, y);
  return mfx_op_kernel_run(kernel, env, in, &out);
}

static mfx_status moe_shift(mfx_moe *moe, const mfx_kernel_env *env, int64_t m, int64_t n,
                            int64_t k, const int32_t *x, const int8_t *s, const int8_t *g,
                            int32_t *y) {
  const mfx_op_kernel *kernel;
  mfx_status st = moe_kernel_get(moe, "shift_linear", m, n, k, &kernel);
  if (st != MFX_OK) return st;
  mfx_array in[3] = {moe_view(MFX_I32, m, k, x), moe_view(MFX_I8, n, k, s),
                     moe_view(MFX_I8, n, k, g)};
  mfx_array out = moe_view(MFX_I32, m, n, y);
  return mfx_op_kernel_run(kernel, env, in, &out);
}

mfx_status moe_run_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits) {
  if (moe->gpu != NULL) return moe_gpu_router(moe, env, xpad, rows, rlogits);
  return moe_linear(moe, env, rows, moe->spec.experts, moe->spec.dim, xpad, moe->router_w,
                    rlogits);
}

static mfx_status moe_run_mult(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                               int64_t rows, float *y) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  float *hb = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_HB, (size_t)(rows * H) * sizeof(float), (void **)&hb);
  if (st == MFX_OK) st = moe_linear(moe, env, rows, H, D, xb, x->w1, hb);
  if (st != MFX_OK) return st;
  moe_rows(env, moe_gelu_body, NULL, hb, rows, H);
  return moe_linear(moe, env, rows, D, H, hb, x->w2, y);
}

mfx_status moe_run_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  int32_t *xq = NULL, *hq = NULL, *yq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_XQ, (size_t)(rows * D) * 4, (void **)&xq);
  if (st == MFX_OK) st = moe_ws_get(moe, MOE_WS_HQ, (size_t)(rows * H) * 4, (void **)&hq);
  if (st == MFX_OK) st = moe_ws_get(moe, MOE_WS_YQ, (size_t)(rows * D) * 4, (void **)&yq);
  if (st == MFX_OK && moe->gpu != NULL) return moe_gpu_shift_q16(moe, e, env, xq, rows, yq);
  if (st == MFX_OK) st = moe_shift(moe, env, rows, H, D, xq, x->s1, x->g1, hq);
  if (st != MFX_OK) return st;
  moe_rows(env, moe_requantize_body, NULL, hq, rows, H);
  return moe_shift(moe, env, rows, D, H, hq, x->s2, x->g2, yq);
}

static mfx_status moe_run_shift(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                const float *xb, int64_t rows, float *y) {
  int64_t D = moe->spec.dim;
  void *xq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_XQ, (size_t)(rows * D) * 4, &xq);
  if (st != MFX_OK) return st;
  moe_rows(env, moe_quantize_body, xb, xq, rows, D);
  st = moe_run_shift_q16(moe, e, env, rows);
  if (st != MFX_OK) return st;
  moe_rows(env, moe_dequantize_body, moe->ws[MOE_WS_YQ], y, rows, D);
  return MFX_OK;
}

mfx_status moe_run_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                          int64_t rows, float *y) {
  if (moe->gpu != NULL && moe->spec.kinds[e] != MFX_EXPERT_NULL)
    return moe_gpu_expert(moe, e, env, xb, rows, y);
  switch (moe->spec.kinds[e]) {
  case MFX_EXPERT_MULT: return moe_run_mult(moe, e, env, xb, rows, y);
  case MFX_EXPERT_SHIFT: return moe_run_shift(moe, e, env, xb, rows, y);
  case MFX_EXPERT_NULL:
  case MFX_EXPERT_KIND_COUNT: break;
  }
  memset(y, 0, (size_t)(rows * moe->spec.dim) * sizeof(float));
  return MFX_OK;
}

mfx_status moe_compile_experts(mfx_moe *moe, int64_t rows) {
  if (moe->gpu != NULL) return moe_gpu_compile_experts(moe, rows);
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const mfx_op_kernel *k;
  mfx_status st = MFX_OK;
  for (int e = 0; st == MFX_OK && e < moe->spec.experts; e++) {
    const char *op = moe->spec.kinds[e] == MFX_EXPERT_MULT    ? "linear"
                     : moe->spec.kinds[e] == MFX_EXPERT_SHIFT ? "shift_linear"
                                                               : NULL;
    if (op == NULL) continue;
    st = moe_kernel_get(moe, op, rows, H, D, &k);
    if (st == MFX_OK) st = moe_kernel_get(moe, op, rows, D, H, &k);
  }
  return st;
}
