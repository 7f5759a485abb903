/* mfx: the command-line face of the compiler and runtime.
 *
 *   mfx ops                      the operators, their tensors and knobs
 *   mfx lower OP --dims ...      TE, schedule and loop IR (or LLVM IR / asm)
 *   mfx run OP --dims ...        compile, run on .npy or random inputs, check
 *   mfx demo                     every op on a moderate shape, timed and checked
 *
 * Each subcommand lives in its own file (mfx_ops.c, mfx_lower.c, mfx_run.c,
 * mfx_demo.c); mfx_cli.c holds what they share. */
#include <stdio.h>
#include <string.h>

#include "mfx_cli.h"

static const char tool_main_usage[] =
    "usage: mfx <command> [arguments]\n"
    "\n"
    "mfx compiles and runs the kernels of ShiftAddViT's multiplication-free\n"
    "experts: ops -> tensor expressions -> schedule -> loop IR -> LLVM.\n"
    "\n"
    "commands:\n"
    "  ops                     list the ops: dims, inputs, outputs, knobs\n"
    "  lower OP --dims D       print the tensor expression, schedule and loop IR\n"
    "  run OP --dims D         compile, run, optionally check and time one op\n"
    "  demo                    run and check every op on a moderate shape\n"
    "  help [COMMAND]          this text, or the options of one command\n"
    "  version                 the version of mfx\n"
    "\n"
    "exit status: 0 ok, 1 failure (file, compiler, check mismatch), 2 usage error\n";

static const char tool_ops_usage[] =
    "usage: mfx ops [OP]\n"
    "\n"
    "List every op (or only OP) with its dims, inputs and outputs\n"
    "(name dtype [shape]) and its schedule knobs (name, default, choices).\n";

static const char tool_lower_usage[] =
    "usage: mfx lower OP --dims NAME=V,... [--config JSON] [--emit ll|asm]\n"
    "\n"
    "Print the tensor expression, the schedule and the loop IR of OP under the\n"
    "given dims and config (default: the op's template defaults).\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --config '{\"knob\":V}'   knob values over the defaults\n"
    "  --emit ll|asm           print LLVM IR or host assembly instead\n";

static const char tool_run_usage[] =
    "usage: mfx run OP --dims NAME=V,... [options]\n"
    "\n"
    "JIT-compile OP for this CPU and run it.\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --in NAME=FILE.npy      an input (others get seeded random data)\n"
    "  --out NAME=FILE.npy     save an output\n"
    "  --config '{\"knob\":V}'   knob values over the defaults\n"
    "  --threads N             thread pool size (default: one per CPU)\n"
    "  --check                 compare with the plain-C reference; exit 1 on mismatch\n"
    "  --tol T                 relative tolerance of --check for f32 (default 1e-4)\n"
    "  --repeat R              time R runs after one warm-up; print the median\n"
    "  --seed S                seed of the random inputs (default 1)\n";

static const char tool_demo_usage[] =
    "usage: mfx demo [--threads N]\n"
    "\n"
    "Compile every op with its default config on a moderate shape, run it,\n"
    "check it against the reference and print a table: kernel median time,\n"
    "plain-C reference time, speed-up and error. Exit 1 if any check fails.\n";

static const char tool_help_usage[] = "usage: mfx help [COMMAND]\n";
static const char tool_version_usage[] = "usage: mfx version\n";

const char *tool_usage(const char *command) {
  static const struct { const char *name; const char *text; } table[] = {
      {"ops", tool_ops_usage},   {"lower", tool_lower_usage}, {"run", tool_run_usage},
      {"demo", tool_demo_usage}, {"help", tool_help_usage},   {"version", tool_version_usage},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(table[i].name, command) == 0) return table[i].text;
  }
  return NULL;
}

static int tool_cmd_help(int argc, char **argv) {
  if (argc == 1) {
    fputs(tool_main_usage, stdout);
    return TOOL_EXIT_OK;
  }
  if (argc > 2) return tool_error(TOOL_EXIT_USAGE, "help takes at most one command");
  const char *text = tool_usage(argv[1]);
  if (text == NULL) {
    return tool_error(TOOL_EXIT_USAGE,
                      "help: unknown command '%s'; expected ops, lower, run, demo, help "
                      "or version",
                      argv[1]);
  }
  fputs(text, stdout);
  return TOOL_EXIT_OK;
}

static int tool_cmd_version(int argc, char **argv) {
  if (argc > 1) return tool_error(TOOL_EXIT_USAGE, "version takes no arguments, got '%s'", argv[1]);
  printf("mfx %s (%d ops, host CPU target through LLVM)\n", TOOL_VERSION, mfx_op_count());
  return TOOL_EXIT_OK;
}

typedef int (*tool_command_fn)(int argc, char **argv);

static tool_command_fn tool_find_command(const char *name) {
  static const struct { const char *name; tool_command_fn fn; } table[] = {
      {"ops", tool_cmd_ops},   {"lower", tool_cmd_lower}, {"run", tool_cmd_run},
      {"demo", tool_cmd_demo}, {"help", tool_cmd_help},   {"version", tool_cmd_version},
      {"--help", tool_cmd_help}, {"-h", tool_cmd_help}, {"--version", tool_cmd_version},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(table[i].name, name) == 0) return table[i].fn;
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(tool_main_usage, stderr);
    return tool_error(TOOL_EXIT_USAGE, "missing command; expected one of ops, lower, run, "
                                       "demo, help, version");
  }
  tool_command_fn fn = tool_find_command(argv[1]);
  if (fn == NULL) {
    return tool_error(TOOL_EXIT_USAGE,
                      "unknown command '%s'; expected one of ops, lower, run, demo, help, "
                      "version (see mfx --help)",
                      argv[1]);
  }
  return fn(argc - 1, argv + 1);
}
