/* Configurations of one op against OpenBLAS sgemm, interleaved round by
 * round, for machines too busy for bench_ops' separate medians: every round
 * runs sgemm once and each configuration once, so a burst of other work
 * slows all of them alike; the ratio of the minimum times over many rounds
 * is the number to read (the ratio of the medians is printed beside it).
 *
 * usage: bench_pair OP DIMS M N K [--heads H] [--threads T] [--rounds R] CONFIG...
 *   sgemm: Y[M,N] = X[M,K] W[N,K]^T, or with --heads H, H products
 *   C[M,N] = A[K,M]^T B[K,N] (matadd's float-code baseline: M=C, N=D, K=N)
 *   CONFIG: JSON knob values over the op's defaults ('{}' for the defaults)
 * Each configuration is checked against the op's reference before timing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_case.h"
#include "mfx/ops.h"

void openblas_set_num_threads(int n);

enum { PAIR_MAX_CONFIGS = 16 };

typedef struct {
  int m, n, k, heads;
  float *a, *b, *c;
} pair_gemm;

static int pair_cmp(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return (a > b) - (a < b);
}

/* Compile, allocate, fill and check one configuration; 0 when it is right. */
static int pair_open(bench_case *c, const char *op, const char *dims, const char *json,
                     mfx_pool *pool) {
  if (bench_case_open(c, op, dims, json, pool) != MFX_OK) {
    fprintf(stderr, "bench_pair: %s %s %s: %s\n", op, dims, json, mfx_last_error());
    return -1;
  }
  if (!bench_case_check(c)) {
    fprintf(stderr, "bench_pair: %s %s %s differs from the reference\n", op, dims, json);
    return -1;
  }
  return 0;
}

static float *pair_floats(size_t n, int mod) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; p != NULL && i < n; i++) p[i] = (float)(int)(i % (size_t)mod) - mod / 2;
  return p;
}

static void pair_gemm_run(const pair_gemm *g) {
  if (g->heads == 0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->m, g->n, g->k, 1.0f, g->a, g->k,
                g->b, g->k, 0.0f, g->c, g->n);
    return;
  }
  for (int h = 0; h < g->heads; h++)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f,
                g->a + (size_t)h * g->m * g->k, g->m, g->b + (size_t)h * g->n * g->k, g->n,
                0.0f, g->c + (size_t)h * g->m * g->n, g->n);
}

/* times[i * rounds + r]: entry i (configurations, then sgemm) in round r. */
static void pair_rounds(bench_case *cases, int n, const pair_gemm *g, int rounds,
                        double *times) {
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i <= n; i++) {
      double t0 = mfx_now_seconds();
      if (i == n) pair_gemm_run(g);
      else mfx_op_kernel_run(&cases[i].kernel, &cases[i].env, cases[i].in, cases[i].out);
      times[(size_t)i * rounds + r] = mfx_now_seconds() - t0;
    }
}

static void pair_report(char **names, int n, int rounds, double *times) {
  double *base = times + (size_t)n * rounds;
  qsort(base, (size_t)rounds, sizeof(double), pair_cmp);
  double base_med = base[rounds / 2], base_min = base[0];
  printf("%-44s %10s %10s %9s %9s\n", "", "median ms", "min ms", "x (med)", "x (min)");
  printf("%-44s %10.3f %10.3f\n", "OpenBLAS sgemm", base_med * 1e3, base_min * 1e3);
  for (int i = 0; i < n; i++) {
    double *t = times + (size_t)i * rounds;
    qsort(t, (size_t)rounds, sizeof(double), pair_cmp);
    printf("%-44s %10.3f %10.3f %8.2fx %8.2fx\n", names[i], t[rounds / 2] * 1e3, t[0] * 1e3,
           base_med / t[rounds / 2], base_min / t[0]);
  }
}

static int pair_usage(void) {
  fprintf(stderr, "usage: bench_pair OP DIMS M N K [--heads H] [--threads T] [--rounds R] "
                  "CONFIG...\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 7) return pair_usage();
  pair_gemm g = {atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), 0, NULL, NULL, NULL};
  int threads = 1, rounds = 100, n = 0, i = 6;
  char *names[PAIR_MAX_CONFIGS];
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--heads") == 0 && i + 1 < argc) g.heads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = atoi(argv[++i]);
    else if (n < PAIR_MAX_CONFIGS) names[n++] = argv[i];
    else return pair_usage();
  }
  if (g.m <= 0 || g.n <= 0 || g.k <= 0 || g.heads < 0 || threads <= 0 || rounds <= 0 || n == 0)
    return pair_usage();
  mfx_pool *pool;
  if (mfx_pool_create(threads, &pool) != MFX_OK) {
    fprintf(stderr, "bench_pair: %s\n", mfx_last_error());
    return 1;
  }
  openblas_set_num_threads(threads);
  size_t h = g.heads > 0 ? (size_t)g.heads : 1;
  g.a = pair_floats(h * g.m * g.k, 7);
  g.b = pair_floats(h * g.n * g.k, 5);
  g.c = calloc(h * g.m * g.n, sizeof(float));
  bench_case *cases = calloc((size_t)n, sizeof *cases);
  double *times = calloc((size_t)(n + 1) * rounds, sizeof(double));
  int bad = g.a == NULL || g.b == NULL || g.c == NULL || cases == NULL || times == NULL;
  int opened = 0;
  for (; !bad && opened < n; opened++)
    if (pair_open(&cases[opened], argv[1], argv[2], names[opened], pool) != 0) bad = 1;
  if (!bad) {
    pair_rounds(cases, n, &g, rounds, times);
    printf("bench_pair: %s %s, %d threads, %d rounds; x = sgemm time / mfx time\n", argv[1],
           argv[2], threads, rounds);
    pair_report(names, n, rounds, times);
  }
  for (int j = 0; j < opened; j++)
    if (cases[j].op != NULL) bench_case_close(&cases[j]);
  free(cases);
  free(times);
  free(g.a);
  free(g.b);
  free(g.c);
  mfx_pool_destroy(pool);
  return bad ? 1 : 0;
}
