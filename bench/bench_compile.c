/* Cold compile time per kernel, by phase, under each LLVM pipeline, and what
 * each pipeline costs the kernel: for every case, every pipeline, the kernel
 * is built with the kernel cache off (so the numbers are of a first run),
 * the phases are read from mfx_compile_times, and the kernel is checked
 * against its reference; then the pipelines' kernels of the case are run
 * (1 thread) round by round, interleaved, so that other work on a busy
 * machine slows each alike.
 *
 *   compile ms: lower + irgen + optimize + codegen + link
 *   run/O3:     the kernel's median time under this pipeline / under O3
 *   min/O3:     the same for the minimum times (the steadier on a loaded machine)
 *
 * usage: bench_compile [--repeat N]   (N builds per case and pipeline; the
 * median build is reported, default 3)
 *
 * bench_compile --gpu [--repeat N]: what the kernel cache saves on GPU
 * builds, under the default pipeline: each case's PTX artifact image
 * (mfx_op_gpu_image for cuda:sm_80, what the GPU tuner and mfx run build)
 * and its CPU emulation (mfx_op_compile_for "emulate", what tests and tuning
 * without a GPU build), cold (an empty cache in a fresh temporary
 * directory: lowering, codegen and the cache write) and warm (the same
 * build again: lowering, keying and a verified read). Medians of N. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "../compiler/cache.h"
#include "mfx/compiler.h"
#include "mfx/device.h"
#include "mfx/ops.h"

typedef struct {
  const char *op, *dims;
} compile_case;

/* The MoE layer's kernels at ShiftAddViT's MLP shape (1568 tokens, D=64,
 * H=512), the attention kernels at its first stage, and hamming and
 * binary_attention also at bench_ops' shapes (W=8 words: a word loop). */
static const compile_case cases[] = {
    {"linear", "M=512,N=512,K=512"},
    {"linear_gelu", "M=1568,N=512,K=64"},
    {"shift_linear", "M=3136,N=512,K=64"},
    {"shift_linear_q16_gelu", "M=1568,N=512,K=64"},
    {"shift_linear_dequantize", "M=1568,N=64,K=512"},
    {"matadd", "B=1,H=1,N=3136,D=32,C=16"},
    {"hamming", "N=3136,M=3136,W=1"},
    {"hamming", "N=1024,M=1024,W=8"},
    {"binary_attention", "B=1,H=1,N=3136,D=32,C=16"},
    {"binary_attention", "B=1,H=4,N=3136,D=64,C=64"},
    {"gelu", "M=1568,N=512"},
    {"q16_quantize", "M=1568,N=512"},
    {"q16_gelu", "M=1568,N=512"},
    {"q16_dequantize", "M=1568,N=512"},
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
  double compile_s, run_s, run_min_s; /* run: median and minimum over the rounds */
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

/* The kernels of one case, one per pipeline, on the same inputs. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_op_kernel k[N_PIPES];
  int built;
  mfx_array in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
} case_kernels;

static void case_free(case_kernels *ck) {
  for (int p = 0; p < ck->built; p++) mfx_op_kernel_free(&ck->k[p]);
  for (int i = 0; i < MFX_OP_MAX_TENSORS; i++) {
    mfx_array_free(&ck->in[i]);
    mfx_array_free(&ck->out[i]);
    mfx_array_free(&ck->want[i]);
  }
}

/* Every pipeline's kernel, built cold (median of `repeat` builds), checked
 * against the reference. */
static mfx_status case_build(const compile_case *c, int repeat, case_kernels *ck,
                             compile_result *r) {
  ck->op = mfx_op_find(c->op);
  if (ck->op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "no op %s", c->op);
  MFX_TRY(mfx_op_parse_dims(ck->op, c->dims, ck->dims));
  for (int p = 0; p < N_PIPES; p++) {
    setenv("MFX_LLVM_PIPELINE", pipelines[p], 1);
    memset(&r[p], 0, sizeof r[p]);
    MFX_TRY(build_median(ck->op, ck->dims, repeat, &ck->k[p], &r[p]));
    ck->built++;
  }
  MFX_TRY(mfx_op_alloc_inputs(ck->op, ck->dims, ck->in));
  MFX_TRY(mfx_op_alloc_outputs(ck->op, ck->dims, ck->out));
  MFX_TRY(mfx_op_alloc_outputs(ck->op, ck->dims, ck->want));
  mfx_op_random_inputs(ck->op, ck->dims, 7, ck->in);
  ck->op->reference(ck->dims, ck->in, ck->want);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  for (int p = 0; p < N_PIPES; p++) {
    MFX_TRY(mfx_op_kernel_run(&ck->k[p], &env, ck->in, ck->out));
    r[p].ok = mfx_compare_arrays_int(&ck->out[0], &ck->want[0], 1e-4, ck->op->int_tolerance).ok;
  }
  return MFX_OK;
}

/* Runs the pipelines' kernels round by round (the order rotating), so a
 * burst of other work on a busy machine slows all of them alike: at least
 * 15 rounds and 0.5 s. Median and minimum per pipeline. */
static void case_run(case_kernels *ck, compile_result *r) {
  enum { MAX_ROUNDS = 400 };
  static double times[N_PIPES][MAX_ROUNDS];
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  int n = 0;
  double spent = 0;
  while (n < MAX_ROUNDS && (n < 15 || spent < 0.5)) {
    for (int j = 0; j < N_PIPES; j++) {
      int p = (n + j) % N_PIPES;
      double t0 = mfx_now_seconds();
      mfx_op_kernel_run(&ck->k[p], &env, ck->in, ck->out);
      times[p][n] = mfx_now_seconds() - t0;
      spent += times[p][n];
    }
    n++;
  }
  for (int p = 0; p < N_PIPES; p++) {
    qsort(times[p], (size_t)n, sizeof(double), cmp_double);
    r[p].run_s = times[p][n / 2];
    r[p].run_min_s = times[p][0];
  }
}

/* The CPU's model name from /proc/cpuinfo ("unknown" elsewhere). */
static void cpu_model(char *out, size_t size) {
  if (!mfx_cpuinfo_field("model name", out, size)) snprintf(out, size, "unknown");
}

static void print_row(const compile_case *c, const char *pipe, const compile_result *r,
                      const compile_result *o3) {
  const double *s = r->phases.seconds;
  printf("%-24s %-26s %-4s %8.1f %7.1f %7.1f %8.1f %8.1f %6.1f %9.3f %6.2f %6.2f %s\n", c->op,
         c->dims, pipe,
         1e3 * r->compile_s, 1e3 * s[MFX_PHASE_LOWER], 1e3 * s[MFX_PHASE_IRGEN],
         1e3 * s[MFX_PHASE_OPTIMIZE], 1e3 * s[MFX_PHASE_CODEGEN], 1e3 * s[MFX_PHASE_LINK],
         1e3 * r->run_s, r->run_s / o3->run_s, r->run_min_s / o3->run_min_s,
         r->ok ? "ok" : "WRONG");
}

/* ---- --gpu: cold and warm builds through the kernel cache ------------------------ */

typedef enum { GPU_PTX, GPU_EMULATE } gpu_build_kind;

static mfx_status gpu_build_once(const mfx_op *op, const int64_t *dims, gpu_build_kind kind) {
  if (kind == GPU_PTX) {
    void *image = NULL;
    size_t size = 0;
    mfx_status st = mfx_op_gpu_image(op, "cuda:sm_80", dims, NULL, "bench", &image, &size);
    free(image);
    return st;
  }
  mfx_op_kernel k;
  mfx_status st = mfx_op_compile_for(op, "emulate", dims, NULL, &k);
  if (st == MFX_OK) mfx_op_kernel_free(&k);
  return st;
}

/* Median cold and warm seconds; the cache is emptied before each cold build. */
static mfx_status gpu_cold_warm(const char *dir, const compile_case *c, gpu_build_kind kind,
                                int repeat, double *cold, double *warm, long *codegens) {
  const mfx_op *op = mfx_op_find(c->op);
  if (op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "no op %s", c->op);
  int64_t dims[MFX_OP_MAX_DIMS];
  MFX_TRY(mfx_op_parse_dims(op, c->dims, dims));
  double t_cold[16], t_warm[16];
  long before = mfx_cache_get_stats().codegens;
  for (int i = 0; i < repeat; i++) {
    long removed;
    mfx_cache_clear(dir, &removed);
    double t0 = mfx_now_seconds();
    MFX_TRY(gpu_build_once(op, dims, kind));
    double t1 = mfx_now_seconds();
    MFX_TRY(gpu_build_once(op, dims, kind));
    t_cold[i] = t1 - t0;
    t_warm[i] = mfx_now_seconds() - t1;
  }
  *codegens = mfx_cache_get_stats().codegens - before;
  qsort(t_cold, (size_t)repeat, sizeof(double), cmp_double);
  qsort(t_warm, (size_t)repeat, sizeof(double), cmp_double);
  *cold = t_cold[repeat / 2];
  *warm = t_warm[repeat / 2];
  return MFX_OK;
}

static int gpu_main(int repeat) {
  char dir[] = "/tmp/mfx_bench_compile_XXXXXX";
  if (mkdtemp(dir) == NULL) {
    perror("bench_compile: mkdtemp");
    return 1;
  }
  setenv("MFX_CACHE_DIR", dir, 1);
  unsetenv("MFX_CACHE");
  if (mfx_cache_dir() == NULL) {
    fprintf(stderr, "bench_compile: the kernel cache is off\n");
    return 1;
  }
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  const char *pipe = getenv("MFX_LLVM_PIPELINE");
  printf("cpu: %s; kernel cache in %s; pipeline %s; median of %d\n", cpu, dir,
         pipe != NULL ? pipe : "default", repeat);
  printf("%-24s %-26s %-8s %9s %9s %7s %9s\n", "op", "dims", "build", "cold ms", "warm ms", "warm/c",
         "codegens");
  static const char *const kind_names[] = {"ptx", "emulate"};
  double log_ratio[2] = {0, 0};
  int rc = 0;
  for (size_t c = 0; c < N_CASES && rc == 0; c++)
    for (int k = 0; k < 2; k++) {
      double cold = 0, warm = 0;
      long codegens = 0;
      if (gpu_cold_warm(dir, &cases[c], (gpu_build_kind)k, repeat, &cold, &warm, &codegens) !=
          MFX_OK) {
        fprintf(stderr, "bench_compile: %s %s: %s\n", cases[c].op, kind_names[k],
                mfx_last_error());
        rc = 1;
        break;
      }
      printf("%-24s %-26s %-8s %9.1f %9.1f %7.3f %9ld\n", cases[c].op, cases[c].dims,
             kind_names[k], 1e3 * cold,
             1e3 * warm, warm / cold, codegens);
      log_ratio[k] += log(warm / cold);
    }
  if (rc == 0)
    printf("\ngeometric mean warm/cold over %zu kernels: ptx %.3f, emulate %.3f\n", N_CASES,
           exp(log_ratio[0] / N_CASES), exp(log_ratio[1] / N_CASES));
  long removed;
  mfx_cache_clear(dir, &removed);
  rmdir(dir);
  return rc;
}

int main(int argc, char **argv) {
  int repeat = 3, gpu = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
      repeat = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--gpu") == 0) {
      gpu = 1;
    } else {
      fprintf(stderr, "usage: bench_compile [--gpu] [--repeat N]  (N 1..15)\n");
      return 2;
    }
  }
  if (repeat < 1 || repeat > 15) {
    fprintf(stderr, "bench_compile: --repeat must be 1..15\n");
    return 2;
  }
  if (gpu) return gpu_main(repeat);
  setenv("MFX_CACHE", "0", 1); /* cold compiles only */
  char cpu[256];
  cpu_model(cpu, sizeof cpu);
  printf("cpu: %s; 1 thread; kernel cache off; median of %d builds\n", cpu, repeat);
  printf("%-24s %-26s %-4s %8s %7s %7s %8s %8s %6s %9s %6s %6s\n", "op", "dims", "pipe", "compile", "lower",
         "irgen", "optimize", "codegen", "link", "run ms", "run/O3", "min/O3");
  double log_compile[N_PIPES] = {0}, log_run[N_PIPES] = {0}, log_min[N_PIPES] = {0};
  int failed = 0;
  for (size_t c = 0; c < N_CASES; c++) {
    compile_result r[N_PIPES];
    case_kernels ck;
    memset(&ck, 0, sizeof ck);
    mfx_status st = case_build(&cases[c], repeat, &ck, r);
    if (st == MFX_OK) case_run(&ck, r);
    case_free(&ck);
    if (st != MFX_OK) {
      fprintf(stderr, "bench_compile: %s: %s\n", cases[c].op, mfx_last_error());
      return 1;
    }
    for (int p = 0; p < N_PIPES; p++) {
      failed |= !r[p].ok;
      print_row(&cases[c], pipelines[p], &r[p], &r[0]);
      log_compile[p] += log(r[p].compile_s / r[0].compile_s);
      log_run[p] += log(r[p].run_s / r[0].run_s);
      log_min[p] += log(r[p].run_min_s / r[0].run_min_s);
    }
  }
  printf("\ngeometric means over %zu kernels, relative to O3:\n", N_CASES);
  for (int p = 0; p < N_PIPES; p++)
    printf("  %-4s compile %.2fx   run %.2fx (median)  %.2fx (minimum)\n", pipelines[p],
           exp(log_compile[p] / N_CASES), exp(log_run[p] / N_CASES),
           exp(log_min[p] / N_CASES));
  return failed ? 1 : 0;
}
