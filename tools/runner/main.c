/* mfx-runner: the command line, loading the artifact, and the kernels to
 * run. What happens to one kernel is runner_kernel.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- arguments ------------------------------------------------------------------- */

static int runner_parse_number(const char *option, const char *text, long long lo, long long hi,
                               long long *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
    return runner_error(RUNNER_EXIT_USAGE, "%s: '%s' is not a whole number in %lld..%lld", option,
                        text, lo, hi);
  *out = v;
  return 0;
}

/* Any unsigned 64-bit seed, as mfx run takes it. */
static int runner_parse_seed(const char *text, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0)
    return runner_error(RUNNER_EXIT_USAGE, "--seed: '%s' is not a non-negative whole number",
                        text);
  *out = (uint64_t)v;
  return 0;
}

static int runner_parse_tol(const char *text, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || !(v >= 0.0 && v < 1.0))
    return runner_error(RUNNER_EXIT_USAGE, "--tol: '%s' is not a number in [0, 1)", text);
  *out = v;
  return 0;
}

static int runner_add_binding(const char *option, const char *text, runner_binding *list,
                              int *n) {
  const char *eq = strchr(text, '=');
  if (eq == NULL || eq == text || eq[1] == '\0')
    return runner_error(RUNNER_EXIT_USAGE, "%s: '%s' is not NAME=FILE.npy", option, text);
  if ((size_t)(eq - text) >= sizeof list[0].name)
    return runner_error(RUNNER_EXIT_USAGE, "%s: the name in '%s' is too long", option, text);
  if (*n >= RUNNER_MAX_BINDINGS)
    return runner_error(RUNNER_EXIT_USAGE, "%s given more than %d times", option,
                        RUNNER_MAX_BINDINGS);
  runner_binding *b = &list[(*n)++];
  snprintf(b->name, sizeof b->name, "%.*s", (int)(eq - text), text);
  b->path = eq + 1;
  return 0;
}

static int runner_set_once(const char *option, const char **slot, const char *value) {
  if (*slot != NULL)
    return runner_error(RUNNER_EXIT_USAGE, "%s given twice ('%s' and '%s')", option, *slot, value);
  *slot = value;
  return 0;
}

/* An option with a value. */
static int runner_apply(runner_args *a, const char *option, const char *value) {
  long long v = 0;
  int rc = 0;
  if (strcmp(option, "--kernel") == 0) return runner_set_once(option, &a->kernel, value);
  if (strcmp(option, "--device") == 0) return runner_set_once(option, &a->device, value);
  if (strcmp(option, "--weights") == 0) return runner_set_once(option, &a->weights, value);
  if (strcmp(option, "--in") == 0) return runner_add_binding(option, value, a->in, &a->n_in);
  if (strcmp(option, "--out") == 0) return runner_add_binding(option, value, a->out, &a->n_out);
  if (strcmp(option, "--tol") == 0) return runner_parse_tol(value, &a->tol);
  if (strcmp(option, "--repeat") == 0) {
    rc = runner_parse_number(option, value, 1, 1000000, &v);
    a->repeat = (int)v;
  } else if (strcmp(option, "--threads") == 0) {
    rc = runner_parse_number(option, value, 1, 1024, &v);
    a->threads = (int)v;
  } else {
    rc = runner_parse_seed(value, &a->seed);
  }
  return rc;
}

static int runner_flag(runner_args *a, const char *arg) {
  if (strcmp(arg, "--check") == 0) return a->check = 1;
  if (strcmp(arg, "--bench") == 0) return a->bench = 1;
  if (strcmp(arg, "--list") == 0) return a->list = 1;
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return a->help = 1;
  return 0;
}

static int runner_takes_value(const char *option) {
  static const char *const known[] = {"--kernel", "--in",      "--out",    "--tol", "--repeat",
                                      "--device", "--threads", "--seed",  "--weights"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(known[i], option) == 0) return 1;
  return 0;
}

static int runner_parse_option(int argc, char **argv, int *i, runner_args *a) {
  const char *arg = argv[*i];
  if (runner_flag(a, arg)) return 0;
  char option[16];
  const char *eq = strchr(arg, '=');
  size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
  snprintf(option, sizeof option, "%.*s", (int)(len < sizeof option ? len : 0), arg);
  if (len >= sizeof option || !runner_takes_value(option))
    return runner_error(RUNNER_EXIT_USAGE, "unknown option '%.*s' (see mfx-runner --help)",
                        (int)len, arg);
  const char *value = eq != NULL ? eq + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
  if (value == NULL) return runner_error(RUNNER_EXIT_USAGE, "%s needs a value", option);
  return runner_apply(a, option, value);
}

int runner_parse_args(int argc, char **argv, runner_args *a) {
  memset(a, 0, sizeof *a);
  a->seed = 1;
  a->tol = RUNNER_DEFAULT_TOL;
  for (int i = 1; i < argc; i++) {
    int rc = 0;
    if (argv[i][0] == '-' && argv[i][1] != '\0') rc = runner_parse_option(argc, argv, &i, a);
    else if (a->artifact == NULL) a->artifact = argv[i];
    else rc = runner_error(RUNNER_EXIT_USAGE, "unexpected argument '%s' after the artifact %s",
                           argv[i], a->artifact);
    if (rc != 0) return rc;
  }
  if (a->help) return 0;
  if (a->artifact == NULL)
    return runner_error(RUNNER_EXIT_USAGE, "missing ARTIFACT (a .mfxa file from mfx compile)");
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
  if (a.help) {
    fputs(runner_usage, stdout);
    return RUNNER_EXIT_OK;
  }
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
