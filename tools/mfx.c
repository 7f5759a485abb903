/* mfx: the command-line face of the compiler and runtime.
 *
 *   mfx ops                      the operators, their tensors and knobs
 *   mfx lower OP --dims ...      TE, schedule and loop IR (or LLVM IR / asm)
 *   mfx run OP --dims ...        compile, run on .npy or random inputs, check
 *   mfx demo                     a ShiftAddViT MoE layer end to end, then every op
 *
 *   mfx tune OP --dims ...       search the knobs, record in the tuning database
 *   mfx db COMMAND               query and move the tuning database
 *   mfx compile OP --dims ... -o K.mfxa  kernels ahead of time, into an artifact
 *   mfx experts --tokens N ...   expert latencies, their fit and alpha (mfx_experts.c)
 *   mfx loss KIND --logits F     a router loss of logits from a .npy (mfx_loss.c)
 *
 * Each subcommand lives in its own file (mfx_ops.c, mfx_lower.c, mfx_run.c,
 * mfx_demo.c, mfx_tune.c, mfx_db.c, mfx_compile.c); mfx_args.c and mfx_io.c hold what they
 * share (declared in mfx_cli.h). */
#include <stdio.h>
#include <string.h>

#include "mfx_cli.h"
#include "mfx_moe_cli.h"

static const char tool_command_list[] =
    "ops, lower, run, demo, tune, db, compile, experts, loss, help, version";

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
    "  run FILE.te             the same for a kernel written as TE text\n"
    "  bench OP --dims D       the tuned config against the template default\n"
    "  demo                    a ShiftAddViT MoE layer: tune, latencies, check, losses\n"
    "  tune OP --dims D        search the op's knobs, record trials in the database\n"
    "  db COMMAND              the tuning database: list, best, export, import, plot\n"
    "  compile OP --dims D     compile ahead of time into an artifact (-o K.mfxa)\n"
    "  experts --tokens N ...  measure expert latencies: fit, alpha, latency table\n"
    "  loss KIND --logits F    a router loss (switch, latency, zloss) of .npy logits\n"
    "  cache info|clear        the kernel cache on disk: where, how big; empty it\n"
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
    "       mfx lower FILE.te [--emit ll|asm]\n"
    "\n"
    "Print the tensor expression, the schedule and the loop IR of OP under the\n"
    "given dims and config (default: the op's template defaults), or of a kernel\n"
    "written as TE text (the language the tensor expression section prints;\n"
    "every loop serial).\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --config '{\"knob\":V}'   knob values over the defaults\n"
    "  --emit ll|asm           print LLVM IR or host assembly instead\n"
    "  --print-after PASS      also print the loop IR after each run of PASS\n"
    "  --passes                list the passes lowering runs, in order, and exit\n";

static const char tool_run_usage[] =
    "usage: mfx run OP --dims NAME=V,... [options]\n"
    "       mfx run FILE.te [--kernel NAME] [options]  (a kernel written as TE text,\n"
    "                          checked against the IR interpreter: mfx run FILE.te --help)\n"
    "\n"
    "Compile OP for a target and run it.\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --target T              cpu (default: JIT for this CPU), cuda or cuda:N (the GPU\n"
    "                          template as PTX for the device, loaded through the driver,\n"
    "                          timed with CUDA events) or emulate (the GPU template run by\n"
    "                          the CPU emulation); --config then sets GPU knobs\n"
    "  --in NAME=FILE.npy      an input (others get seeded random data)\n"
    "  --out NAME=FILE.npy     save an output\n"
    "  --config '{\"knob\":V}'   knob values over the defaults\n"
    "  --threads N             thread pool size (default: one per CPU)\n"
    "  --check                 compare with the plain-C reference; exit 1 on mismatch\n"
    "  --tol T                 relative tolerance of --check for f32 (default 1e-4)\n"
    "  --repeat R              time R runs after one warm-up; print the median\n"
    "  --seed S                seed of the random inputs (default 1)\n"
    "  --db PATH               tuning database (default $MFX_DB, else\n"
    "                          ~/.cache/mfx/tune.db): without --config, its best\n"
    "                          record for the op and dims (or the nearest tuned\n"
    "                          shape) is used; the output says which and why\n"
    "                          (on a GPU: the records of that device)\n";

static const char tool_bench_usage[] =
    "usage: mfx bench OP --dims NAME=V,... [--db PATH] [--config JSON] [--repeat R]\n"
    "                 [--threads N] [--seed S] [--target cpu|cuda|cuda:N|emulate] [--json]\n"
    "\n"
    "Time OP with the configuration the tuning database chooses (its best record,\n"
    "else the nearest tuned shape; or --config) against the template default, in\n"
    "one run on the same inputs, each checked against the reference first. On a\n"
    "GPU also against cuBLAS SGEMM (libcublas.so opened at run time; fp32 with TF32\n"
    "off, and TF32 on) at the op's dense float equivalent.\n"
    "  --db PATH               tuning database (default $MFX_DB, else ~/.cache/mfx/tune.db)\n"
    "  --repeat R              timed runs of each (default 20), medians\n"
    "  --target T              where: cpu (default), cuda, cuda:N or emulate\n"
    "  --json                  one JSON object\n";

static const char tool_demo_usage[] =
    "usage: mfx demo [options]\n"
    "\n"
    "A ShiftAddViT MoE MLP layer at PVTv2-B0 stage-1 size on this machine: brief\n"
    "tuning of its kernels, expert latencies and alpha, a routed forward pass on\n"
    "compiled kernels checked against the plain-C reference, the latency-aware and\n"
    "switch losses of a random router, each kernel against its dense baseline, the\n"
    "layer's kernels as an artifact, then every op on a moderate shape. Progress on\n"
    "stderr; files in the output folder. Exit 1 if any check fails.\n"
    "  --target T          where the layer runs: auto (default: the GPU if one is\n"
    "                      usable, else cpu), cpu, cuda, cuda:N, or emulate (its GPU\n"
    "                      kernels run by the CPU emulation)\n"
    "  --tokens N          tokens (default 3136 = 56x56)\n"
    "  --dim D             token dimension (default 64)\n"
    "  --hidden H          expert hidden size (default 512)\n"
    "  --experts LIST      expert kinds: mult, shift, shift16, null (default mult,shift)\n"
    "  --k K               experts per token (default 1)\n"
    "  --tune-trials N     tuning trials per kernel (default 8; 0: no tuning)\n"
    "  --threads N         thread pool size (default: one per CPU)\n"
    "  --seed S            weights and tokens (default 1)\n"
    "  --out DIR           output folder (default mfx-demo-out)\n"
    "  --no-ops            skip the per-op table\n";

static const char tool_version_usage[] = "usage: mfx version\n";

const char *tool_usage(const char *command) {
  static const struct { const char *name; const char *text; } table[] = {
      {"ops", tool_ops_usage},   {"lower", tool_lower_usage}, {"run", tool_run_usage},
      {"demo", tool_demo_usage}, {"bench", tool_bench_usage},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(table[i].name, command) == 0) return table[i].text;
  }
  return NULL;
}

static int tool_is_help_flag(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int tool_cmd_version(int argc, char **argv) {
  tool_cmdline cl = {.program = "mfx", .command = "version", .usage = tool_version_usage};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
  printf("mfx %s (%d ops, host CPU target through LLVM)\n", TOOL_VERSION, mfx_op_count());
  return TOOL_EXIT_OK;
}

static int tool_cmd_help(int argc, char **argv);

typedef int (*tool_command_fn)(int argc, char **argv);

static tool_command_fn tool_find_command(const char *name) {
  static const struct { const char *name; tool_command_fn fn; } table[] = {
      {"ops", tool_cmd_ops},   {"lower", tool_cmd_lower}, {"run", tool_cmd_run},
      {"bench", tool_cmd_bench}, {"demo", tool_cmd_demo}, {"tune", tool_cmd_tune},   {"db", tool_cmd_db},
      {"compile", tool_cmd_compile}, {"experts", tool_cmd_experts}, {"loss", tool_cmd_loss},
      {"cache", tool_cmd_cache},
      {"compile-layer", tool_cmd_compile_layer},
      {"help", tool_cmd_help}, {"version", tool_cmd_version},
      {"--help", tool_cmd_help}, {"-h", tool_cmd_help}, {"--version", tool_cmd_version},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    if (strcmp(table[i].name, name) == 0) return table[i].fn;
  }
  return NULL;
}

/* help COMMAND runs COMMAND --help: each command prints its own options. */
static int tool_cmd_help(int argc, char **argv) {
  if (argc == 1 || tool_is_help_flag(argv[1])) {
    fputs(tool_main_usage, stdout);
    return TOOL_EXIT_OK;
  }
  if (argc > 2) return tool_error(TOOL_EXIT_USAGE, "help takes at most one command");
  tool_command_fn fn = tool_find_command(argv[1]);
  if (fn == NULL || argv[1][0] == '-') {
    return tool_error(TOOL_EXIT_USAGE,
                      "help: unknown command '%s'; expected one of %s", argv[1],
                      tool_command_list);
  }
  char *help_argv[] = {argv[1], "--help", NULL};
  return fn(2, help_argv);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(tool_main_usage, stderr);
    return tool_error(TOOL_EXIT_USAGE, "missing command; expected one of %s", tool_command_list);
  }
  tool_command_fn fn = tool_find_command(argv[1]);
  if (fn == NULL) {
    return tool_error(TOOL_EXIT_USAGE, "unknown command '%s'; expected one of %s (see mfx --help)",
                      argv[1], tool_command_list);
  }
  return fn(argc - 1, argv + 1);
}
