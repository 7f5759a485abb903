/* mfx-runner: loads an artifact and runs its kernels on the CPU or a CUDA
 * GPU, with .npy or seeded random inputs; checks them against the plain-C
 * references and times them. Links the runtime and the references only
 * (no LLVM), so it can be copied to a machine that has neither.
 *
 * Exit statuses: 0 success, 1 failure (a file, the device, a mismatch),
 * 2 usage error. */
#ifndef MFX_RUNNER_H
#define MFX_RUNNER_H

#include <stdint.h>

#include "mfx/artifact.h"

#define RUNNER_EXIT_OK 0
#define RUNNER_EXIT_FAIL 1
#define RUNNER_EXIT_USAGE 2
#define RUNNER_MAX_BINDINGS 16
#define RUNNER_DEFAULT_TOL 1e-4
#define RUNNER_DEFAULT_REPEAT 20

/* --in NAME=FILE or --out NAME=FILE. */
typedef struct {
  char name[MFX_ARTIFACT_NAME_BYTES];
  const char *path;
} runner_binding;

typedef struct {
  const char *artifact;
  const char *kernel; /* NULL: every kernel */
  const char *device; /* NULL: as the artifact targets */
  const char *weights; /* --weights: the artifact is an MoE layer (runner_layer.c) */
  int n_in, n_out;
  runner_binding in[RUNNER_MAX_BINDINGS];
  runner_binding out[RUNNER_MAX_BINDINGS];
  int check, bench, list, help;
  int repeat;
  int threads;
  uint64_t seed;
  double tol;
} runner_args;

/* Print "mfx-runner: error: ..." to stderr; returns code. */
int runner_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with the library's last error after "what: ". */
int runner_error_status(int code, const char *what);

int runner_parse_args(int argc, char **argv, runner_args *out);
extern const char runner_usage[];

/* One kernel: inputs (random, then --in files), run or time, check, save. */
int runner_run_kernel(mfx_artifact *art, int index, const runner_args *args);
/* An MoE layer artifact with --weights: load, run, check, save, time. */
int runner_run_layer(const runner_args *args);
/* What kernel `index` is: op, dims, target, arguments, launches. */
void runner_list_kernel(const mfx_artifact_kernel *k, int index);

#endif
