/* Cold compile time per kernel, by phase, under each LLVM pipeline, and what
 * each pipeline costs the kernel: for every case, every pipeline, the kernel
 * is built with the kernel cache off (so the numbers are of a first run),
 * the phases are read from mfx_compile_times, and the kernel is then run
 * (1 thread, median of repeats) and checked against its reference.
 *
 *   compile ms: lower + irgen + optimize + codegen + link
 *   run ratio:  the kernel's median time under this pipeline / under O3
 *
 * usage: bench_compile [--repeat N]   (N builds per case and pipeline; the
 * median build is reported, default 3) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "mfx/device.h"
#include "mfx/ops.h"

typedef struct {
  const char *op, *dims;
} compile_case;

/* The MoE layer's kernels at ShiftAddViT's MLP shape (1568 tokens, D=64,
 * H=512) and the attention kernels at its first stage. */
static const compile_case cases[] = {
    {"linear", "M=512,N=512,K=512"},
    {"linear_gelu", "M=1568,N=512,K=64"},
    {"shift_linear", "M=3136,N=512,K=64"},
    {"shift_linear_q16_gelu", "M=1568,N=512,K=64"},
    {"shift_linear_dequantize", "M=1568,N=64,K=512"},
    {"matadd", "B=1,H=1,N=3136,D=32,C=16"},
    {"hamming", "N=3136,M=3136,W=1"},
    {"binary_attention", "B=1,H=1,N=3136,D=32,C=16"},
    {"gelu", "M=1568,N=512"},
    {"gather_rows", "T=1568,M=1568,D=64"},
    {"combine_rows", "R=3136,T=1568,K=2,D=64"},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const char *const pipelines[] = {"O3", "O2", "O1"};
#define N_PIPES 3

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  mfx_compile_times phases; /* of the median build */
  double compile_s, run_s;
  int ok;
} compile_result;

/* Builds the case `repeat` times (cache off), keeps the median build's phases. */
static mfx_status build_median(const mfx_op *op, const int64_t *dims, int repeat,
                               mfx_op_kernel *kernel, compile_result *r) {
  double total[16];
  mfx_compile_times phases[16];
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  for (int i = 0; i < repeat; i++) {
    mfx_compile_times_reset();
    double t0 = mfx_now_seconds();
    mfx_op_kernel k;
    mfx_status st = mfx_op_compile(op, dims, &cfg, &k);
    if (st != MFX_OK) return st;
    total[i] = mfx_now_seconds() - t0;
    mfx_compile_times_get(&phases[i]);
    if (i + 1 < repeat) mfx_op_kernel_free(&k);
    else *kernel = k;
  }
  double sorted[16];
  memcpy(sorted, total, sizeof(double) * (size_t)repeat);
  qsort(sorted, (size_t)repeat, sizeof sorted[0], cmp_double);
  r->compile_s = sorted[repeat / 2];
  for (int i = 0; i < repeat; i++)
    if (total[i] == r->compile_s) r->phases = phases[i];
  return MFX_OK;
}

/* One warm-up, then repeats until 0.2 s and at least 5 runs; the median. */
static double run_median(mfx_op_kernel *k, mfx_kernel_env *env, mfx_array *in, mfx_array *out) {
  double times[500];
  int n = 0;
  double spent = 0;
  mfx_op_kernel_run(k, env, in, out);
  while (n < 500 && (n < 5 || spent < 0.2)) {
    double t0 = mfx_now_seconds();
    mfx_op_kernel_run(k, env, in, out);
    times[n] = mfx_now_seconds() - t0;
    spent += times[n++];
  }
  qsort(times, (size_t)n, sizeof times[0], cmp_double);
  return times[n / 2];
}

static mfx_status measure(const compile_case *c, int repeat, compile_result *r) {
  const mfx_op *op = mfx_op_find(c->op);
  if (op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "no op %s", c->op);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_op_kernel k;
  mfx_status built = mfx_op_parse_dims(op, c->dims, dims);
  if (built == MFX_OK) built = build_median(op, dims, repeat, &k, r);
  if (built != MFX_OK) return built;
  mfx_array in[MFX_OP_MAX_TENSORS] = {0}, out[MFX_OP_MAX_TENSORS] = {0},
            want[MFX_OP_MAX_TENSORS] = {0};
  mfx_status st = mfx_op_alloc_inputs(op, dims, in);
  if (st == MFX_OK) st = mfx_op_alloc_outputs(op, dims, out);
  if (st == MFX_OK) st = mfx_op_alloc_outputs(op, dims, want);
  if (st == MFX_OK) {
    mfx_op_random_inputs(op, dims, 7, in);
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, NULL);
    r->run_s = run_median(&k, &env, in, out);
    op->reference(dims, in, want);
    r->ok = mfx_compare_arrays_int(&out[0], &want[0], 1e-4, op->int_tolerance).ok;
  }
  for (int i = 0; i < MFX_OP_MAX_TENSORS; i++) {
    mfx_array_free(&in[i]);
    mfx_array_free(&out[i]);
    mfx_array_free(&want[i]);
  }
  mfx_op_kernel_free(&k);
  return st;
}

/* The CPU's model name from /proc/cpuinfo ("unknown" elsewhere). */
static void cpu_model(char *out, size_t size) {
  if (!mfx_cpuinfo_field("model name", out, size)) snprintf(out, size, "unknown");
}

static void print_row(const compile_case *c, const char *pipe, const compile_result *r,
                      double run_o3) {
  const double *s = r->phases.seconds;
  printf("%-24s %-4s %8.1f %7.1f %7.1f %8.1f %8.1f %6.1f %9.3f %6.2f %s\n", c->op, pipe,
         1e3 * r->compile_s, 1e3 * s[MFX_PHASE_LOWER], 1e3 * s[MFX_PHASE_IRGEN],
         1e3 * s[MFX_PHASE_OPTIMIZE], 1e3 * s[MFX_PHASE_CODEGEN], 1e3 * s[MFX_PHASE_LINK],
         1e3 * r->run_s, r->run_s / run_o3, r->ok ? "ok" : "WRONG");
}

int main(int argc, char **argv) {
  int repeat = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = atoi(argv[++i]);
    } else {
      fprintf(stderr, "usage: bench_compile [--repeat N]  (N 1..15)\n");
      return 2;
    }
  }
  if (repeat < 1 || repeat > 15) {
    fprintf(stderr, "bench_compile: --repeat must be 1..15\n");
    return 2;
  }
  setenv("MFX_CACHE", "0", 1); /* cold compiles only */
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  printf("cpu: %s; 1 thread; kernel cache off; median of %d builds\n", cpu, repeat);
  printf("%-24s %-4s %8s %7s %7s %8s %8s %6s %9s %6s\n", "op", "pipe", "compile", "lower",
         "irgen", "optimize", "codegen", "link", "run ms", "run/O3");
  double log_compile[N_PIPES] = {0}, log_run[N_PIPES] = {0};
  int failed = 0;
  for (size_t c = 0; c < N_CASES; c++) {
    compile_result r[N_PIPES];
    for (int p = 0; p < N_PIPES; p++) {
      setenv("MFX_LLVM_PIPELINE", pipelines[p], 1);
      memset(&r[p], 0, sizeof r[p]);
      if (measure(&cases[c], repeat, &r[p]) != MFX_OK) {
        fprintf(stderr, "bench_compile: %s %s: %s\n", cases[c].op, pipelines[p],
                mfx_last_error());
        return 1;
      }
      failed |= !r[p].ok;
      print_row(&cases[c], pipelines[p], &r[p], r[0].run_s);
      log_compile[p] += log(r[p].compile_s / r[0].compile_s);
      log_run[p] += log(r[p].run_s / r[0].run_s);
    }
  }
  printf("\ngeometric means over %zu kernels, relative to O3:\n", N_CASES);
  for (int p = 0; p < N_PIPES; p++)
    printf("  %-4s compile %.2fx   run %.2fx\n", pipelines[p], exp(log_compile[p] / N_CASES),
           exp(log_run[p] / N_CASES));
  return failed ? 1 : 0;
}
