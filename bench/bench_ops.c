/* Every op against the baseline a user would otherwise call, measured side by
 * side in one run on the same threads (these machines are noisy: compare
 * ratios, not absolute times):
 *
 *   linear            vs OpenBLAS sgemm (Y = X W^T)
 *   shift_linear      vs OpenBLAS sgemm of the same shape (f32 weights)
 *   shift_linear16    the same on 16-bit lanes (X i16 in -8192..8191)
 *   matadd            vs OpenBLAS sgemm on the codes as floats (O = Hc^T V per head)
 *   hamming           vs a plain C popcount loop (1 thread; the kernel gets 1 too)
 *   binary_attention  vs its float equivalent built on sgemm
 *
 * usage: bench_ops [--threads N] [--json]   (default: all CPUs) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_case.h"
#include "mfx/device.h"
#include "mfx/json.h"
#include "mfx/ops.h"

void openblas_set_num_threads(int n);

/* ---- timing ------------------------------------------------------------------ */

typedef void (*bench_fn)(void *ctx);

typedef struct {
  bench_fn fn;
  void *ctx;
} bench_call;

static mfx_status bench_timed(void *user, double *seconds) {
  (void)seconds;
  bench_call *c = user;
  c->fn(c->ctx);
  return MFX_OK;
}

/* One warm-up, then repeats until 0.3 s and at least 5 runs; the median. */
static double median_seconds(bench_fn fn, void *ctx) {
  bench_call call = {fn, ctx};
  mfx_timing plan = {.warmup = 1, .min_runs = 5, .max_runs = 1000, .min_seconds = 0.3};
  double median = 0.0;
  if (mfx_time_median(bench_timed, &call, &plan, &median, NULL) != MFX_OK)
    fprintf(stderr, "bench: %s\n", mfx_last_error());
  return median;
}

/* ---- the mfx side ------------------------------------------------------------------ */

/* ---- baselines ------------------------------------------------------------------------ */

typedef struct {
  int m, n, k, batch;
  float *a, *b, *c; /* batch of C[m,n] = A[m,k] . B^T or A^T . B (see trans_a) */
  int trans_a;
} gemm_case;

static void run_gemm(void *ctx) {
  gemm_case *g = ctx;
  for (int i = 0; i < g->batch; i++) {
    float *a = g->a + (size_t)i * g->m * g->k, *b = g->b + (size_t)i * g->n * g->k;
    float *c = g->c + (size_t)i * g->m * g->n;
    if (g->trans_a) /* A stored [k, m], B stored [k, n] */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, a, g->m, b,
                  g->n, 0.0f, c, g->n);
    else /* A [m, k], B [n, k] */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->m, g->n, g->k, 1.0f, a, g->k, b,
                  g->k, 0.0f, c, g->n);
  }
}

static float *random_floats(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  return p;
}

static gemm_case gemm_open(int m, int n, int k, int batch, int trans_a) {
  gemm_case g = {m, n, k, batch, NULL, NULL, NULL, trans_a};
  g.a = random_floats((size_t)batch * m * k, 1);
  g.b = random_floats((size_t)batch * n * k, 2);
  g.c = calloc((size_t)batch * m * n, sizeof(float));
  return g;
}

static void gemm_close(gemm_case *g) {
  free(g->a);
  free(g->b);
  free(g->c);
}

/* binary attention in floats: A = Hc^T V, X = 0.5 V + Hc A / pi, row norms. */
typedef struct {
  gemm_case kv, q;
  int n, d, c, heads;
  float *hc, *v, *x;
} attention_case;

static void run_attention(void *ctx) {
  attention_case *t = ctx;
  for (int h = 0; h < t->heads; h++) {
    const float *hc = t->hc + (size_t)h * t->n * t->c, *v = t->v + (size_t)h * t->n * t->d;
    float *kv = t->kv.c + (size_t)h * t->c * t->d, *x = t->x + (size_t)h * t->n * t->d;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->c, t->d, t->n, 1.0f, hc, t->c, v,
                t->d, 0.0f, kv, t->d);
    memcpy(x, v, sizeof(float) * (size_t)t->n * t->d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t->n, t->d, t->c, (float)(1 / M_PI),
                hc, t->c, kv, t->d, 0.5f, x, t->d);
    for (int i = 0; i < t->n; i++) {
      float *row = x + (size_t)i * t->d;
      float s = cblas_snrm2(t->d, row, 1);
      cblas_sscal(t->d, 1.0f / (s > 1e-12f ? s : 1e-12f), row, 1);
    }
  }
}

typedef struct {
  int n, m, w;
  const uint32_t *q, *k;
  int32_t *s;
} popcount_case;

static void run_popcount(void *ctx) {
  popcount_case *p = ctx;
  for (int i = 0; i < p->n; i++)
    for (int j = 0; j < p->m; j++) {
      int bits = 0;
      for (int w = 0; w < p->w; w++) bits += __builtin_popcount(p->q[i * p->w + w] ^ p->k[j * p->w + w]);
      p->s[i * p->m + j] = 32 * p->w - 2 * bits;
    }
}

/* ---- the table ------------------------------------------------------------------------- */

typedef struct {
  const char *op, *dims, *baseline;
  double mfx_s, base_s;
  int ok;
} row;

/* The CPU's model name from /proc/cpuinfo ("unknown" elsewhere). */
static void cpu_model(char *out, size_t size) {
  if (!mfx_cpuinfo_field("model name", out, size)) snprintf(out, size, "unknown");
}

/* The rows as one JSON object (mfx/json.h); a speedup of a zero time is
 * infinite and written as null, which the writer counts and we say. */
static void print_json(const row *rows, int n, int threads, const char *cpu, const char *core) {
  mfx_json w;
  mfx_json_begin(&w, stdout, MFX_JSON_PRETTY);
  mfx_json_object(&w);
  mfx_json_key_int(&w, "threads", threads);
  mfx_json_key_string(&w, "cpu", cpu);
  mfx_json_key_string(&w, "openblas_core", core);
  mfx_json_key(&w, "results");
  mfx_json_array(&w);
  for (int i = 0; i < n; i++) {
    mfx_json_object(&w);
    mfx_json_key_string(&w, "op", rows[i].op);
    mfx_json_key_string(&w, "dims", rows[i].dims);
    mfx_json_key_string(&w, "baseline", rows[i].baseline);
    mfx_json_key_number(&w, "mfx_ms", rows[i].mfx_s * 1e3);
    mfx_json_key_number(&w, "baseline_ms", rows[i].base_s * 1e3);
    mfx_json_key_number(&w, "speedup", rows[i].base_s / rows[i].mfx_s);
    mfx_json_key(&w, "ok");
    mfx_json_bool(&w, rows[i].ok);
    mfx_json_end(&w);
  }
  mfx_json_end(&w);
  mfx_json_end(&w);
  putchar('\n');
  if (mfx_json_finish(&w) != MFX_OK) fprintf(stderr, "bench_ops: %s\n", mfx_last_error());
  if (w.nonfinite > 0)
    fprintf(stderr, "bench_ops: %d numbers were NaN or infinite, written as null\n", w.nonfinite);
}

static void print_rows(const row *rows, int n, int threads, int json) {
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  const char *core = openblas_get_corename();
  if (core == NULL) core = "unknown";
  if (json) {
    print_json(rows, n, threads, cpu, core);
    return;
  }
  printf("cpu: %s; OpenBLAS core: %s\n\n", cpu, core);
  printf("%-17s %-26s %-28s %9s %9s %8s %s\n", "op", "dims", "baseline", "mfx ms", "base ms",
         "speedup", "check");
  for (int i = 0; i < n; i++)
    printf("%-17s %-26s %-28s %9.3f %9.3f %7.2fx %s\n", rows[i].op, rows[i].dims, rows[i].baseline,
           rows[i].mfx_s * 1e3, rows[i].base_s * 1e3, rows[i].base_s / rows[i].mfx_s,
           rows[i].ok ? "ok" : "WRONG");
}

static int bench_all(mfx_pool *pool, mfx_pool *single, row *rows) {
  int n = 0;
  bench_case c;
  static const struct { const char *op, *dims; int m, n, k; } dense[] = {
      {"linear", "M=512,N=512,K=512", 512, 512, 512},
      {"linear", "M=3136,N=512,K=64", 3136, 512, 64},
      {"linear", "M=1024,N=1024,K=1024", 1024, 1024, 1024},
      {"shift_linear", "M=512,N=512,K=512", 512, 512, 512},
      {"shift_linear", "M=3136,N=512,K=64", 3136, 512, 64},
      {"shift_linear", "M=3136,N=64,K=512", 3136, 64, 512},
      {"shift_linear", "M=784,N=1024,K=128", 784, 1024, 128},
      {"shift_linear", "M=784,N=128,K=1024", 784, 128, 1024},
      {"shift_linear16", "M=3136,N=512,K=64", 3136, 512, 64},
      {"shift_linear16", "M=3136,N=64,K=512", 3136, 64, 512},
      {"shift_linear16", "M=784,N=1024,K=128", 784, 1024, 128},
      {"shift_linear16", "M=784,N=128,K=1024", 784, 128, 1024},
  };
  for (size_t i = 0; i < sizeof dense / sizeof dense[0]; i++) {
    if (bench_case_open(&c, dense[i].op, dense[i].dims, NULL, pool) != MFX_OK) return -1;
    gemm_case g = gemm_open(dense[i].m, dense[i].n, dense[i].k, 1, 0);
    rows[n] = (row){dense[i].op, dense[i].dims, "OpenBLAS sgemm",
                    median_seconds(bench_case_run, &c), median_seconds(run_gemm, &g),
                    bench_case_check(&c)};
    n++;
    gemm_close(&g);
    bench_case_close(&c);
  }
  /* matadd, per head O[C,D] = Hc^T[C,N] V[N,D], at three token counts of a
   * PVT-style pyramid (56x56, 28x28 and 14x14 tokens, 64 values per head). */
  static const struct { const char *dims; int heads, n; } mat[] = {
      {"B=1,H=4,N=3136,D=64,C=64", 4, 3136},
      {"B=1,H=2,N=784,D=64,C=64", 2, 784},
      {"B=1,H=5,N=196,D=64,C=64", 5, 196},
  };
  for (size_t i = 0; i < sizeof mat / sizeof mat[0]; i++) {
    if (bench_case_open(&c, "matadd", mat[i].dims, NULL, pool) != MFX_OK) return -1;
    gemm_case g = gemm_open(64, 64, mat[i].n, mat[i].heads, 1);
    rows[n] = (row){"matadd", mat[i].dims, "OpenBLAS sgemm (float codes)",
                    median_seconds(bench_case_run, &c), median_seconds(run_gemm, &g),
                    bench_case_check(&c)};
    n++;
    gemm_close(&g);
    bench_case_close(&c);
  }
  /* binary attention, same shape. */
  if (bench_case_open(&c, "binary_attention", "B=1,H=4,N=3136,D=64,C=64", NULL, pool) != MFX_OK)
    return -1;
  attention_case t = {.n = 3136, .d = 64, .c = 64, .heads = 4};
  t.hc = random_floats((size_t)4 * 3136 * 64, 3);
  for (size_t i = 0; i < (size_t)4 * 3136 * 64; i++) t.hc[i] = t.hc[i] > 0;
  t.v = random_floats((size_t)4 * 3136 * 64, 4);
  t.x = calloc((size_t)4 * 3136 * 64, sizeof(float));
  t.kv.c = calloc((size_t)4 * 64 * 64, sizeof(float));
  rows[n] = (row){"binary_attention", "B=1,H=4,N=3136,D=64,C=64", "sgemm float attention",
                  median_seconds(bench_case_run, &c), median_seconds(run_attention, &t),
                  bench_case_check(&c)};
  n++;
  free(t.hc);
  free(t.v);
  free(t.x);
  free(t.kv.c);
  bench_case_close(&c);
  /* hamming against a plain C loop, both on one thread. */
  if (bench_case_open(&c, "hamming", "N=1024,M=1024,W=8", NULL, single) != MFX_OK) return -1;
  popcount_case p = {1024, 1024, 8, c.in[0].data, c.in[1].data, malloc(sizeof(int32_t) * 1024 * 1024)};
  rows[n] = (row){"hamming", "N=1024,M=1024,W=8", "plain C popcount (1 thread)",
                  median_seconds(bench_case_run, &c), median_seconds(run_popcount, &p),
                  bench_case_check(&c)};
  n++;
  free(p.s);
  bench_case_close(&c);
  return n;
}

int main(int argc, char **argv) {
  int threads = 0, json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0) json = 1;
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_ops [--threads N] [--json]\n");
      return 2;
    }
  }
  mfx_pool *pool, *single;
  if (mfx_pool_create(threads, &pool) != MFX_OK || mfx_pool_create(1, &single) != MFX_OK) {
    fprintf(stderr, "bench_ops: %s\n", mfx_last_error());
    return 1;
  }
  threads = mfx_pool_threads(pool);
  openblas_set_num_threads(threads);
  row rows[24];
  int n = bench_all(pool, single, rows);
  if (n < 0) {
    fprintf(stderr, "bench_ops: %s\n", mfx_last_error());
    return 1;
  }
  if (!json) printf("bench_ops: %d threads for mfx and OpenBLAS; speedup = baseline / mfx\n\n", threads);
  print_rows(rows, n, threads, json);
  mfx_pool_destroy(single);
  mfx_pool_destroy(pool);
  int ok = 1;
  for (int i = 0; i < n; i++) ok &= rows[i].ok;
  return ok ? 0 : 1;
}
