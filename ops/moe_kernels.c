/* The layer's compiled kernels: a cache keyed by (op, M, N, K), where M is
 * always a token bucket (mfx_moe_bucket) so a few kernels serve every batch;
 * the workspace; and the experts as chains of two kernels each, GELU and the
 * Q16.16 conversions fused into them (fused.c):
 *
 *   mult:  X [M,D] -linear_gelu W1-> [M,H] -linear W2-> [M,D]
 *   shift: X [M,D] -shift_linear_q16_gelu S1,G1-> [M,H] Q16.16
 *          -shift_linear_dequantize S2,G2-> [M,D]
 * The Q16.16 entry (mfx_moe_shift_expert_q16) runs shift_linear, q16_gelu
 * (in place), shift_linear. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- the kernel cache ----------------------------------------------------------- */

/* ---- compiling several kernels at once --------------------------------------------------- */

typedef struct {
  void (*job)(void *ctx, int i);
  void *ctx;
  int n;
  atomic_int next;
} moe_jobs;

static void *moe_jobs_worker(void *arg) {
  moe_jobs *j = arg;
  for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) j->job(j->ctx, i);
  return NULL;
}

void moe_run_jobs(int n, void (*job)(void *ctx, int i), void *ctx) {
  enum { MOE_MAX_COMPILE_THREADS = 8 };
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = cpus < 1 ? 1 : cpus > MOE_MAX_COMPILE_THREADS ? MOE_MAX_COMPILE_THREADS : (int)cpus;
  if (threads > n) threads = n;
  moe_jobs j = {job, ctx, n, 0};
  pthread_t worker[MOE_MAX_COMPILE_THREADS];
  int started = 0;
  while (started < threads - 1 && pthread_create(&worker[started], NULL, moe_jobs_worker, &j) == 0)
    started++;
  moe_jobs_worker(&j); /* this thread too, and alone if no thread started */
  for (int i = 0; i < started; i++) pthread_join(worker[i], NULL);
}

int moe_want_add_dims(moe_want *w, int n, const char *name, const int64_t *dims) {
  memset(&w[n], 0, sizeof w[n]);
  w[n].op = mfx_op_find(name);
  int n_dims = w[n].op != NULL ? w[n].op->n_dims : 0;
  memcpy(w[n].dims, dims, (size_t)(n_dims < MOE_MAX_OP_DIMS ? n_dims : MOE_MAX_OP_DIMS) *
                              sizeof(int64_t));
  for (int i = 0; i < n; i++)
    if (w[i].op == w[n].op && memcmp(w[i].dims, w[n].dims, sizeof w[n].dims) == 0) return n;
  return n + 1;
}

int moe_want_add(moe_want *w, int n, const char *name, int64_t m, int64_t cols, int64_t k) {
  return moe_want_add_dims(w, n, name, (int64_t[MOE_MAX_OP_DIMS]){m, cols, k});
}

/* ---- the kernel cache ----------------------------------------------------------- */

static moe_kernel_entry *moe_kernel_find(mfx_moe *moe, const mfx_op *op, const int64_t *dims) {
  for (int i = 0; i < moe->n_kernels; i++) {
    moe_kernel_entry *e = &moe->kernels[i];
    if (e->op == op && memcmp(e->dims, dims, sizeof e->dims) == 0) return e;
  }
  return NULL;
}

static mfx_status moe_choose(mfx_moe *moe, const mfx_op *op, const int64_t *dims,
                             mfx_config *cfg) {
  mfx_config_default(op, cfg);
  if (moe->spec.choose_config == NULL) return MFX_OK;
  mfx_status st = moe->spec.choose_config(moe->spec.choose_user, "cpu", op, dims, cfg);
  if (st != MFX_OK)
    return mfx_fail_context(st, "moe: choosing the config of %s M=%lld,N=%lld,K=%lld", op->name,
                            (long long)dims[0], (long long)dims[1], (long long)dims[2]);
  return MFX_OK;
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

/* The slots of a side-by-side build: each slot's status and message
 * (messages are per thread, so each job keeps its own). */
typedef struct {
  char *slots;
  size_t size;
  mfx_status (*build)(void *ctx, void *slot);
  void *ctx;
  mfx_status *status;
  char (*error)[512];
} moe_batch;

static void moe_batch_job(void *ctx, int i) {
  moe_batch *b = ctx;
  b->status[i] = b->build(b->ctx, b->slots + (size_t)i * b->size);
  if (b->status[i] != MFX_OK) snprintf(b->error[i], sizeof b->error[i], "%s", mfx_last_error());
}

mfx_status moe_build_side_by_side(void *slots, size_t size, int fresh,
                                  mfx_status (*build)(void *ctx, void *slot), void *ctx,
                                  int *kept) {
  moe_batch b = {slots, size, build, ctx, calloc((size_t)fresh, sizeof(mfx_status)),
                 calloc((size_t)fresh, sizeof *b.error)};
  *kept = 0;
  mfx_status st = MFX_OK;
  if (b.status == NULL || b.error == NULL) {
    st = mfx_fail(MFX_ERR_NOMEM, "moe: out of memory building %d kernels", fresh);
  } else {
    moe_run_jobs(fresh, moe_batch_job, &b);
    for (int i = 0; i < fresh; i++) {
      if (b.status[i] == MFX_OK)
        memmove(b.slots + (size_t)(*kept)++ * size, b.slots + (size_t)i * size, size);
      else if (st == MFX_OK)
        st = mfx_fail(b.status[i], "%s", b.error[i]);
    }
  }
  free(b.status);
  free(b.error);
  return st;
}

static mfx_status moe_compile_entry(void *ctx, void *slot) {
  (void)ctx;
  moe_kernel_entry *e = slot;
  return mfx_op_compile(e->op, e->dims, &e->cfg, &e->kernel);
}

mfx_status moe_kernels_ensure(mfx_moe *moe, const moe_want *want, int n) {
  if (!moe_grow((void **)&moe->kernels, &moe->cap_kernels, moe->n_kernels + n,
                sizeof *moe->kernels))
    return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
  int fresh = 0;
  for (int i = 0; i < n; i++) {
    if (want[i].op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "moe: an op is not registered");
    if (moe_kernel_find(moe, want[i].op, want[i].dims) != NULL) continue;
    moe_kernel_entry *e = &moe->kernels[moe->n_kernels + fresh++];
    memset(e, 0, sizeof *e);
    e->op = want[i].op;
    memcpy(e->dims, want[i].dims, sizeof e->dims);
    MFX_TRY(moe_choose(moe, e->op, e->dims, &e->cfg));
  }
  if (fresh == 0) return MFX_OK;
  int kept = 0;
  mfx_status st = moe_build_side_by_side(&moe->kernels[moe->n_kernels], sizeof *moe->kernels,
                                         fresh, moe_compile_entry, NULL, &kept);
  moe->n_kernels += kept;
  moe->compiled_since += kept;
  return st;
}

static mfx_status moe_kernel_get(mfx_moe *moe, const char *name, int64_t m, int64_t n,
                                 int64_t k, const mfx_op_kernel **out) {
  moe_want w[1];
  moe_want_add(w, 0, name, m, n, k);
  if (w[0].op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", name);
  moe_kernel_entry *e = moe_kernel_find(moe, w[0].op, w[0].dims);
  if (e == NULL) {
    MFX_TRY(moe_kernels_ensure(moe, w, 1));
    e = moe_kernel_find(moe, w[0].op, w[0].dims);
  }
  *out = &e->kernel;
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

/* y [m, n] = op(x [m, k], weights), through the cached kernel: linear or
 * linear_gelu. */
static mfx_status moe_linear(mfx_moe *moe, const mfx_kernel_env *env, const char *op,
                             int64_t m, int64_t n, int64_t k, const float *x, const float *w,
                             float *y) {
  const mfx_op_kernel *kernel;
  mfx_status st = moe_kernel_get(moe, op, m, n, k, &kernel);
  if (st != MFX_OK) return st;
  mfx_array in[2] = {moe_view(MFX_F32, m, k, x), moe_view(MFX_F32, n, k, w)};
  mfx_array out = moe_view(MFX_F32, m, n, y);
  return mfx_op_kernel_run(kernel, env, in, &out);
}

/* The same for shift_linear and its fused forms: x and y of the op's dtypes. */
static mfx_status moe_shift(mfx_moe *moe, const mfx_kernel_env *env, const char *op, int64_t m,
                            int64_t n, int64_t k, const void *x, const int8_t *s,
                            const int8_t *g, void *y) {
  const mfx_op_kernel *kernel;
  mfx_status st = moe_kernel_get(moe, op, m, n, k, &kernel);
  if (st != MFX_OK) return st;
  mfx_array in[3] = {moe_view(kernel->op->inputs[0].dtype, m, k, x), moe_view(MFX_I8, n, k, s),
                     moe_view(MFX_I8, n, k, g)};
  mfx_array out = moe_view(kernel->op->outputs[0].dtype, m, n, y);
  return mfx_op_kernel_run(kernel, env, in, &out);
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
  if (st == MFX_OK) st = moe_shift(moe, env, "shift_linear", rows, H, D, xq, x->s1, x->g1, hq);
  if (st != MFX_OK) return st;
  const mfx_op_kernel *gelu;
  if ((st = moe_kernel_get(moe, "q16_gelu", rows, H, 0, &gelu)) != MFX_OK) return st;
  mfx_array h = moe_view(MFX_I32, rows, H, hq); /* elementwise: in place is safe */
  if ((st = mfx_op_kernel_run(gelu, env, &h, &h)) != MFX_OK) return st;
  return moe_shift(moe, env, "shift_linear", rows, D, H, hq, x->s2, x->g2, yq);
}

static mfx_status moe_run_shift(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                const float *xb, int64_t rows, float *y) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *x = &moe->expert[e];
  void *hq = NULL;
  mfx_status st = moe_ws_get(moe, MOE_WS_HQ, (size_t)(rows * H) * 4, &hq);
  if (st == MFX_OK)
    st = moe_shift(moe, env, "shift_linear_q16_gelu", rows, H, D, xb, x->s1, x->g1, hq);
  if (st != MFX_OK) return st;
  return moe_shift(moe, env, "shift_linear_dequantize", rows, D, H, hq, x->s2, x->g2, y);
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

int moe_expert_wants(const mfx_moe *moe, const int64_t *rows, moe_want *want) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  int n = 0;
  for (int e = 0; e < moe->spec.experts; e++) {
    mfx_expert_kind kind = moe->spec.kinds[e];
    if (kind == MFX_EXPERT_NULL || rows[e] <= 0) continue;
    int mult = kind == MFX_EXPERT_MULT;
    n = moe_want_add(want, n, mult ? "linear_gelu" : "shift_linear_q16_gelu", rows[e], H, D);
    n = moe_want_add(want, n, mult ? "linear" : "shift_linear_dequantize", rows[e], D, H);
  }
  return n;
}

mfx_status moe_compile_experts(mfx_moe *moe, const int64_t *rows) {
  moe_want want[MOE_MAX_WANTS];
  int n = moe_expert_wants(moe, rows, want);
  if (moe->gpu != NULL) return moe_gpu_ensure(moe, want, n);
  return moe_kernels_ensure(moe, want, n);
}
