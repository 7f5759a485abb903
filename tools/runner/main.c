/* mfx-runner: the command line, loading the artifact, and the kernels to
 * run. What happens to one kernel is runner_kernel.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mfx_argparse.h"
#include "runner.h"

const char runner_usage[] =
    "usage: mfx-runner ARTIFACT [--kernel NAME|INDEX] [--in NAME=FILE.npy]...\n"
    "                  [--out NAME=FILE.npy]... [--check [--tol T]]\n"
    "                  [--bench [--repeat R]] [--device cpu|cuda|cuda:N]\n"
    "                  [--threads N] [--seed S] [--list]\n"
    "       mfx-runner LAYER.mfxa --weights W.safetensors [--in X=x.npy] [--out Y=y.npy]\n"
    "                  [--check [--tol T]] [--bench [--repeat R]] [--device D] [--threads N]\n"
    "\n"
    "Load an mfx artifact (made by mfx compile) and run its kernels; or, with\n"
    "--weights, an MoE layer (made by mfx compile-layer) and its weights, run on\n"
    "X [T, D] (default: seeded random tokens, as many as the largest bucket).\n"
    "  --kernel NAME|INDEX   one kernel, by name, op or index (default: every one)\n"
    "  --in NAME=FILE.npy    an input (others get the seeded random data of mfx run)\n"
    "  --out NAME=FILE.npy   save an output\n"
    "  --check               compare with the plain-C reference; exit 1 on mismatch\n"
    "  --tol T               relative tolerance of --check for f32 (default 1e-4);\n"
    "                        integers exact, or within the op's GPU slack for a cuda kernel\n"
    "                        (q16_gelu: 1, from the GPU's polynomial erf)\n"
    "  --bench               time the kernel: median of --repeat runs after a warm-up\n"
    "  --repeat R            runs timed by --bench (default 20)\n"
    "  --device D            cpu, cuda or cuda:N (default: what the artifact targets)\n"
    "  --threads N           CPU thread pool size (default: one per CPU)\n"
    "  --seed S              seed of the random inputs (default 1, as mfx run)\n"
    "  --list                print the kernels and their arguments, run nothing\n"
    "\n"
    "exit status: 0 ok, 1 failure (file, device, check mismatch), 2 usage error\n";

int runner_error(int code, const char *fmt, ...) {
  va_list ap;
  fputs("mfx-runner: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return code;
}

int runner_error_status(int code, const char *what) {
  const char *why = mfx_last_error();
  return runner_error(code, "%s: %s", what, why[0] != '\0' ? why : "unknown failure");
}

/* ---- arguments: the parser mfx shares (tools/mfx_argparse.c) ----------------------- */

/* --in or --out NAME=FILE into the next binding. */
static int runner_bind(void *user, const char *option, const char *text, char *why, size_t size) {
  runner_args *a = user;
  int is_in = strcmp(option, "--in") == 0;
  runner_binding *b = is_in ? &a->in[a->n_in] : &a->out[a->n_out];
  const char *eq = strchr(text, '=');
  if (eq == NULL || eq == text || eq[1] == '\0') {
    snprintf(why, size, "%s: '%s' is not NAME=FILE.npy", option, text);
    return 1;
  }
  if ((size_t)(eq - text) >= sizeof b->name) {
    snprintf(why, size, "%s: the name in '%s' is too long", option, text);
    return 1;
  }
  snprintf(b->name, sizeof b->name, "%.*s", (int)(eq - text), text);
  b->path = eq + 1;
  if (is_in) a->n_in++;
  else a->n_out++;
  return 0;
}

int runner_parse_args(int argc, char **argv, runner_args *a) {
  memset(a, 0, sizeof *a);
  a->seed = 1;
  a->tol = RUNNER_DEFAULT_TOL;
  const tool_arg options[] = {
      {.name = "--kernel", .type = TOOL_ARG_TEXT, .to.text = &a->kernel,
       .example = "--kernel linear or --kernel 0"},
      {.name = "--in", .type = TOOL_ARG_TEXT, .max_count = RUNNER_MAX_BINDINGS,
       .example = "--in X=x.npy", .check = runner_bind, .check_user = a},
      {.name = "--out", .type = TOOL_ARG_TEXT, .max_count = RUNNER_MAX_BINDINGS,
       .example = "--out Y=y.npy", .check = runner_bind, .check_user = a},
      {.name = "--check", .type = TOOL_ARG_FLAG, .to.flag = &a->check},
      {.name = "--tol", .type = TOOL_ARG_FLOAT, .to.f64 = &a->tol, .lo = 0.0, .hi = 1.0,
       .hi_open = 1, .example = "--tol 1e-4"},
      {.name = "--bench", .type = TOOL_ARG_FLAG, .to.flag = &a->bench},
      {.name = "--repeat", .type = TOOL_ARG_INT, .to.i32 = &a->repeat, .min = 1,
       .max = 1000000, .example = "--repeat 20"},
      {.name = "--device", .type = TOOL_ARG_TEXT, .to.text = &a->device,
       .example = "--device cuda"},
      {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &a->threads, .min = 1, .max = 1024,
       .example = "--threads 2"},
      {.name = "--seed", .type = TOOL_ARG_UINT64, .to.u64 = &a->seed, .example = "--seed 7"},
      {.name = "--list", .type = TOOL_ARG_FLAG, .to.flag = &a->list},
      {.name = "--weights", .type = TOOL_ARG_PATH, .to.text = &a->weights,
       .example = "--weights w.safetensors"},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "ARTIFACT", .to = &a->artifact, .required = 1,
       .hint = " (a .mfxa file from mfx compile)"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx-runner", .usage = runner_usage, .options = options,
                     .positionals = positionals};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc == TOOL_ARGS_HELP) {
    a->help = 1; /* printed */
    return 0;
  }
  if (rc != 0) return rc;
  if (a->repeat != 0 && !a->bench)
    return runner_error(RUNNER_EXIT_USAGE, "--repeat counts the runs of --bench; add --bench");
  if (a->repeat == 0) a->repeat = RUNNER_DEFAULT_REPEAT;
  return 0;
}

/* ---- the kernels ------------------------------------------------------------------ */

static int runner_run(mfx_artifact *art, const runner_args *a) {
  int n = mfx_artifact_kernel_count(art);
  int only = -1;
  if (a->kernel != NULL && mfx_artifact_find_kernel(art, a->kernel, &only) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_USAGE, "--kernel");
  if (only < 0 && n > 1 && (a->n_in > 0 || a->n_out > 0))
    return runner_error(RUNNER_EXIT_USAGE, "--in and --out need --kernel: %s holds %d kernels",
                        a->artifact, n);
  printf("artifact %s: %d kernel%s on %s\n", a->artifact, n, n == 1 ? "" : "s",
         mfx_artifact_device(art));
  int rc = 0;
  for (int i = 0; i < n; i++) {
    if (only >= 0 && i != only) continue;
    int status = runner_run_kernel(art, i, a);
    if (status > rc) rc = status; /* a usage error (2) outranks a failure (1) */
  }
  return rc;
}

/* --list reads the file only: no device is needed to see what it holds. */
static int runner_list(const runner_args *a) {
  void *data = NULL;
  size_t size = 0;
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  if (mfx_artifact_read_file(a->artifact, &data, &size) != MFX_OK ||
      mfx_artifact_decode(data, size, a->artifact, &kernels, &n) != MFX_OK) {
    free(data);
    return runner_error_status(RUNNER_EXIT_FAIL, "reading the artifact");
  }
  int rc = 0, shown = 0;
  printf("artifact %s: %d kernel%s, %zu bytes\n", a->artifact, n, n == 1 ? "" : "s", size);
  for (int i = 0; i < n; i++) {
    char index[16];
    snprintf(index, sizeof index, "%d", i);
    if (a->kernel != NULL && strcmp(a->kernel, kernels[i].name) != 0 &&
        strcmp(a->kernel, kernels[i].op) != 0 && strcmp(a->kernel, index) != 0)
      continue;
    runner_list_kernel(&kernels[i], i);
    shown++;
  }
  if (shown == 0) rc = runner_error(RUNNER_EXIT_USAGE, "--kernel %s: no such kernel", a->kernel);
  free(kernels);
  free(data);
  return rc;
}

int main(int argc, char **argv) {
  runner_args a;
  int rc = runner_parse_args(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help) return RUNNER_EXIT_OK; /* the usage is printed */
  if (a.list) return runner_list(&a);
  if (a.weights != NULL) return runner_run_layer(&a);
  mfx_artifact_options options = {a.device, a.threads};
  mfx_artifact *art = NULL;
  if (mfx_artifact_load(a.artifact, &options, &art) != MFX_OK)
    return runner_error_status(RUNNER_EXIT_FAIL, "loading the artifact");
  rc = runner_run(art, &a);
  mfx_artifact_free(art);
  if (fflush(stdout) != 0 && rc == 0) rc = runner_error(RUNNER_EXIT_FAIL, "writing stdout");
  return rc;
}
