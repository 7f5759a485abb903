/* The dense baseline a GPU user would otherwise call: cuBLAS SGEMM, opened
 * with dlopen (MFX_CUBLAS_LIBRARY, else libcublas.so.13/.12/.11, else
 * libcublas.so), timed with the device's events on the legacy default
 * stream, fp32 with TF32 off and then on. The ops map to their float
 * equivalents as bench_ops does on the CPU: linear and the shift layers a
 * GEMM of their M, N, K; matadd one GEMM per batch and head (C x D by N);
 * binary attention two (Hc^T V, then Hc A); hamming the GEMM of the codes
 * as floats (N x M by 32 W). Not a check of mfx: a time to compare with. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx_bench.h"

typedef int (*cublas_create_fn)(void **handle);
typedef int (*cublas_destroy_fn)(void *handle);
typedef int (*cublas_math_fn)(void *handle, int mode);
typedef int (*cublas_sgemm_fn)(void *handle, int ta, int tb, int m, int n, int k,
                               const float *alpha, const float *a, int lda, const float *b,
                               int ldb, const float *beta, float *c, int ldc);

enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_MATH = 3 };

typedef struct {
  void *lib, *handle;
  cublas_create_fn create;
  cublas_destroy_fn destroy;
  cublas_math_fn math;
  cublas_sgemm_fn sgemm;
} bench_cublas;

/* One GEMM (column-major, C = op(A) op(B)) of a float equivalent. */
typedef struct {
  int m, n, k, ta, tb, lda, ldb, ldc;
  size_t a, b, c; /* element offsets into the A, B, C buffers */
} bench_gemm;

typedef struct {
  int n;
  bench_gemm g[64];
  size_t a_elems, b_elems, c_elems;
} bench_gemms;

static int64_t bench_dim(const tool_problem *p, const char *name) {
  for (int d = 0; d < p->op->n_dims; d++)
    if (strcmp(p->op->dims[d], name) == 0) return p->dims[d];
  return -1;
}

/* Row-major Y[M,N] = X[M,K] W[N,K]^T as column-major Y^T = W X^T. */
static void bench_gemm_nt(bench_gemms *s, int64_t m, int64_t n, int64_t k) {
  s->g[s->n++] = (bench_gemm){(int)n, (int)m, (int)k, CUBLAS_OP_T, CUBLAS_OP_N,
                              (int)k, (int)k, (int)n, 0, 0, 0};
  s->a_elems = (size_t)(n * k), s->b_elems = (size_t)(m * k), s->c_elems = (size_t)(m * n);
}

/* The float equivalent of the op; 0 when it has none. */
static int bench_equivalent(const tool_problem *p, bench_gemms *s) {
  const char *op = p->op->name;
  memset(s, 0, sizeof *s);
  if (strncmp(op, "linear", 6) == 0 || strncmp(op, "shift_linear", 12) == 0) {
    bench_gemm_nt(s, bench_dim(p, "M"), bench_dim(p, "N"), bench_dim(p, "K"));
    return 1;
  }
  if (strcmp(op, "hamming") == 0) {
    bench_gemm_nt(s, bench_dim(p, "N"), bench_dim(p, "M"), 32 * bench_dim(p, "W"));
    return 1;
  }
  int64_t heads = bench_dim(p, "B") * bench_dim(p, "H"), n = bench_dim(p, "N");
  int64_t d = bench_dim(p, "D"), c = bench_dim(p, "C");
  int two = strcmp(op, "binary_attention") == 0;
  if (!(two || strcmp(op, "matadd") == 0) || heads < 1 || heads * (two ? 2 : 1) > 64) return 0;
  for (int64_t h = 0; h < heads; h++) {
    size_t hc = (size_t)(h * n * c), v = (size_t)(h * n * d), a = (size_t)(h * c * d);
    /* O[c,d] = sum_n Hc[n,c] V[n,d]: column-major O^T (D x C) = V^T Hc */
    s->g[s->n++] = (bench_gemm){(int)d, (int)c, (int)n, CUBLAS_OP_N, CUBLAS_OP_T,
                                (int)d, (int)c, (int)d, v, hc, a};
    if (two) /* O (N x D) = Hc (N x C) A (C x D), row-major */
      s->g[s->n++] = (bench_gemm){(int)d, (int)n, (int)c, CUBLAS_OP_N, CUBLAS_OP_N,
                                  (int)d, (int)c, (int)d, a, hc, (size_t)(heads * c * d) + v};
  }
  s->a_elems = (size_t)(heads * n * (d > c ? d : c)) + (size_t)(heads * c * d);
  s->b_elems = (size_t)(heads * n * c);
  s->c_elems = (size_t)(heads * c * d) + (size_t)(heads * n * d);
  return 1;
}

static int bench_cublas_open(bench_cublas *cb, char *why, size_t cap) {
  const char *env = getenv("MFX_CUBLAS_LIBRARY");
  const char *names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
  memset(cb, 0, sizeof *cb);
  if (env != NULL && env[0] != '\0') cb->lib = dlopen(env, RTLD_NOW | RTLD_LOCAL);
  for (size_t i = 0; cb->lib == NULL && (env == NULL || env[0] == '\0') && i < 4; i++)
    cb->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (cb->lib == NULL) {
    const char *e = dlerror();
    snprintf(why, cap, "%s", e != NULL ? e : "libcublas.so not found");
    return 0;
  }
  *(void **)&cb->create = dlsym(cb->lib, "cublasCreate_v2");
  *(void **)&cb->destroy = dlsym(cb->lib, "cublasDestroy_v2");
  *(void **)&cb->math = dlsym(cb->lib, "cublasSetMathMode");
  *(void **)&cb->sgemm = dlsym(cb->lib, "cublasSgemm_v2");
  int rc = -1;
  if (cb->create == NULL || cb->destroy == NULL || cb->math == NULL || cb->sgemm == NULL)
    snprintf(why, cap, "the library lacks cublasCreate_v2, cublasSetMathMode or cublasSgemm_v2");
  else if ((rc = cb->create(&cb->handle)) != 0)
    snprintf(why, cap, "cublasCreate_v2 failed with status %d", rc);
  if (rc == 0) return 1;
  dlclose(cb->lib);
  cb->lib = NULL;
  return 0;
}

static int bench_gemms_run(const bench_cublas *cb, const bench_gemms *s, float *a, float *b,
                           float *c) {
  const float one = 1.0f, zero = 0.0f;
  for (int i = 0; i < s->n; i++) {
    const bench_gemm *g = &s->g[i];
    if (cb->sgemm(cb->handle, g->ta, g->tb, g->m, g->n, g->k, &one, a + g->a, g->lda, b + g->b,
                  g->ldb, &zero, c + g->c, g->ldc) != 0)
      return 0;
  }
  return 1;
}

static int bench_time_gemms(mfx_device *dev, const bench_cublas *cb, const bench_gemms *s,
                            mfx_device_buffer *buf, int repeat, double *median) {
  mfx_event *start = NULL, *end = NULL;
  double *times = calloc((size_t)repeat, sizeof *times);
  int ok = times != NULL && mfx_event_create(dev, &start) == MFX_OK &&
           mfx_event_create(dev, &end) == MFX_OK;
  float *a = (float *)(uintptr_t)buf[0].address, *b = (float *)(uintptr_t)buf[1].address,
        *c = (float *)(uintptr_t)buf[2].address;
  ok = ok && bench_gemms_run(cb, s, a, b, c) && mfx_device_synchronize(dev) == MFX_OK;
  for (int r = 0; ok && r < repeat; r++)
    ok = mfx_event_record(start) == MFX_OK && bench_gemms_run(cb, s, a, b, c) &&
         mfx_event_record(end) == MFX_OK && mfx_event_elapsed(start, end, &times[r]) == MFX_OK;
  if (ok) *median = bench_median(times, repeat);
  if (start != NULL) mfx_event_destroy(start);
  if (end != NULL) mfx_event_destroy(end);
  free(times);
  return ok;
}

int bench_cublas_times(const tool_problem *p, const char *device, int repeat, double *fp32,
                       double *tf32, char *why, size_t cap) {
  bench_gemms s;
  if (!bench_equivalent(p, &s)) {
    snprintf(why, cap, "no dense float equivalent of %s", p->op->name);
    return 0;
  }
  bench_cublas cb;
  mfx_device *dev = NULL;
  if (mfx_device_open(device, &dev) != MFX_OK) {
    snprintf(why, cap, "%s", mfx_last_error());
    return 0;
  }
  char reason[256];
  int ok = bench_cublas_open(&cb, reason, sizeof reason);
  if (!ok) snprintf(why, cap, "no cuBLAS (%s): the mfx numbers alone", reason);
  mfx_device_buffer buf[3];
  memset(buf, 0, sizeof buf);
  size_t elems[3] = {s.a_elems, s.b_elems, s.c_elems};
  for (int i = 0; ok && i < 3; i++)
    if (mfx_device_buffer_alloc(dev, elems[i] * sizeof(float), &buf[i]) != MFX_OK) {
      snprintf(why, cap, "%s", mfx_last_error());
      ok = 0;
    }
  if (ok && (cb.math(cb.handle, CUBLAS_DEFAULT_MATH) != 0 ||
             !bench_time_gemms(dev, &cb, &s, buf, repeat, fp32) ||
             cb.math(cb.handle, CUBLAS_TF32_MATH) != 0 ||
             !bench_time_gemms(dev, &cb, &s, buf, repeat, tf32))) {
    snprintf(why, cap, "cublasSgemm_v2 failed: %s", mfx_last_error());
    ok = 0;
  }
  for (int i = 0; i < 3; i++) mfx_device_buffer_free(&buf[i]);
  if (cb.lib != NULL) {
    cb.destroy(cb.handle);
    dlclose(cb.lib);
  }
  mfx_device_close(dev);
  return ok;
}
