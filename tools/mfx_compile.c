/* mfx compile: ops compiled ahead of time, into an artifact (one file
 * holding several kernels, docs/artifact.md) or one kernel's LLVM IR,
 * assembly, object or PTX.
 *
 * Each op starts a group: the first is the positional OP, later ones follow
 * --op; --dims, --config and --name apply to the group they follow. --add
 * copies the kernels of existing artifacts in first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/artifact.h"
#include "mfx_cli.h"

#define TOOL_COMPILE_MAX_GROUPS 64
#define TOOL_COMPILE_MAX_ADDS 16

static const char tool_compile_usage[] =
    "usage: mfx compile OP --dims D [--config JSON] [--name NAME]\n"
    "                   [--op OP --dims D [--config JSON] [--name NAME]]...\n"
    "                   [--add FILE.mfxa]... [--target T] -o FILE.mfxa\n"
    "       mfx compile OP --dims D [--config JSON] [--target T] --emit F [-o FILE]\n"
    "\n"
    "Compile ops ahead of time into an artifact that mfx-runner and the runtime\n"
    "library load (see docs/artifact.md), or print one kernel's code.\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --config '{\"knob\":V}'   knob values over the defaults\n"
    "  --name NAME             the kernel's name in the artifact (default: the op,\n"
    "                          then op_2, op_3, ... when taken)\n"
    "  --op OP                 start another kernel of the same artifact\n"
    "  OP may be FILE.te, a kernel written as TE text (see mfx help lower): scheduled\n"
    "                          by the auto-scheduler with its tuned config (mfx tune\n"
    "                          FILE.te; cuda:sm_XX: a record of that sm_XX, else one\n"
    "                          tuned with --target emulate, else the nearest size) or its\n"
    "                          default, op \"te\", named after the file; mfx-runner runs\n"
    "                          it on --in inputs (it has no reference to --check it against)\n"
    "  --add FILE.mfxa         include the kernels of an existing artifact\n"
    "  --db PATH               tuning database for cpu kernels without --config\n"
    "                          (default $MFX_DB, else ~/.cache/mfx/tune.db)\n"
    "  --target cpu|cuda:sm_XX this CPU (default), or a CUDA GPU of compute\n"
    "                          capability X.X or newer\n"
    "  --emit ll|asm|obj|ptx   write one op's code instead of an artifact: LLVM IR,\n"
    "                          assembly or an ELF object (cpu); LLVM IR or PTX\n"
    "                          (cuda; asm is PTX there too)\n"
    "  -o FILE                 the output (required for artifacts and obj;\n"
    "                          text goes to standard output without it)\n";

typedef struct {
  tool_args args; /* op_name, dims_text, config_json as tool_resolve_problem wants */
  const char *name;
} tool_compile_group;

typedef struct {
  int n_groups;
  tool_compile_group groups[TOOL_COMPILE_MAX_GROUPS];
  int n_adds;
  const char *adds[TOOL_COMPILE_MAX_ADDS];
  const char *target;
  const char *emit;
  const char *output;
  const char *db; /* --db: the tuning database for cpu kernels without --config */
} tool_compile_args;

/* ---- the command line ---------------------------------------------------------- */

static const char *const tool_compile_formats[] = {"ll", "asm", "obj", "ptx", NULL};

/* OP, or --op OP: a new group. */
static int tool_compile_new_group(void *user, const char *option, const char *op, char *why,
                                  size_t size) {
  tool_compile_args *a = user;
  (void)option;
  if (a->n_groups >= TOOL_COMPILE_MAX_GROUPS) {
    snprintf(why, size, "compile: more than %d ops", TOOL_COMPILE_MAX_GROUPS);
    return 1;
  }
  tool_compile_group *g = &a->groups[a->n_groups++];
  memset(g, 0, sizeof *g);
  g->args.command = "compile";
  g->args.op_name = op;
  return 0;
}

/* --dims, --config, --name: once for the op they follow. */
static int tool_compile_group_option(void *user, const char *option, const char *value,
                                     char *why, size_t size) {
  tool_compile_args *a = user;
  if (a->n_groups == 0) {
    snprintf(why, size, "compile: %s before any op (write OP or --op OP first)", option);
    return 1;
  }
  tool_compile_group *g = &a->groups[a->n_groups - 1];
  const char **slot = strcmp(option, "--dims") == 0     ? &g->args.dims_text
                      : strcmp(option, "--config") == 0 ? &g->args.config_json
                                                         : &g->name;
  if (*slot != NULL) {
    snprintf(why, size, "%s given twice for op %s ('%s' and '%s'); give it once per op", option,
             g->args.op_name, *slot, value);
    return 1;
  }
  *slot = value;
  return 0;
}

static int tool_compile_parse(int argc, char **argv, tool_compile_args *a) {
  memset(a, 0, sizeof *a);
  const tool_arg options[] = {
      {.name = "--op", .type = TOOL_ARG_TEXT, .max_count = -1, .example = "--op hamming",
       .check = tool_compile_new_group, .check_user = a},
      {.name = "--dims", .type = TOOL_ARG_TEXT, .max_count = -1,
       .example = "--dims M=64,N=64,K=64", .check = tool_compile_group_option, .check_user = a},
      {.name = "--config", .type = TOOL_ARG_TEXT, .max_count = -1,
       .example = "--config '{\"knob\": 8}'", .check = tool_compile_group_option,
       .check_user = a},
      {.name = "--name", .type = TOOL_ARG_TEXT, .max_count = -1, .example = "--name fc1",
       .check = tool_compile_group_option, .check_user = a},
      {.name = "--add", .type = TOOL_ARG_PATH, .to.text = a->adds,
       .max_count = TOOL_COMPILE_MAX_ADDS, .count = &a->n_adds, .example = "--add k.mfxa"},
      {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
       .example = "--target cuda:sm_80"},
      {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db, .example = "--db tune.db"},
      {.name = "--emit", .type = TOOL_ARG_ENUM, .to.text = &a->emit,
       .choices = tool_compile_formats, .noun = "format", .example = "--emit asm"},
      {.name = "-o", .alias = "--output", .type = TOOL_ARG_PATH, .to.text = &a->output,
       .example = "-o k.mfxa"},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "OP", .check = tool_compile_new_group, .check_user = a},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "compile", .usage = tool_compile_usage,
                     .options = options, .positionals = positionals};
  return tool_args_parse(&cl, argc, argv);
}

static int tool_compile_check_args(const tool_compile_args *a) {
  if (a->n_groups == 0 && a->n_adds == 0)
    return tool_error(TOOL_EXIT_USAGE, "compile: missing OP (see mfx ops for the list)");
  if (a->emit != NULL) {
    if (a->n_groups != 1 || a->n_adds > 0)
      return tool_error(TOOL_EXIT_USAGE, "compile --emit writes the code of one op; give one "
                        "OP and no --op or --add");
    if (strcmp(a->emit, "obj") == 0 && a->output == NULL)
      return tool_error(TOOL_EXIT_USAGE, "compile --emit obj: give -o FILE.o (an object is not "
                        "text)");
    return 0;
  }
  if (a->output == NULL)
    return tool_error(TOOL_EXIT_USAGE, "compile: give -o FILE.mfxa for the artifact (or --emit "
                      "ll|asm|obj|ptx for one kernel's code)");
  return 0;
}

/* ---- kernels --------------------------------------------------------------------- */

typedef struct {
  int n_kernels;
  mfx_artifact_kernel kernels[MFX_ARTIFACT_MAX_KERNELS];
  int built[MFX_ARTIFACT_MAX_KERNELS]; /* code allocated by a build */
  int n_images;
  void *images[TOOL_COMPILE_MAX_ADDS]; /* artifacts the added kernels point into */
} tool_compile_state;

static void tool_compile_state_free(tool_compile_state *st) {
  for (int i = 0; i < st->n_kernels; i++)
    if (st->built[i]) mfx_artifact_kernel_release(&st->kernels[i]);
  for (int i = 0; i < st->n_images; i++) free(st->images[i]);
}

static int tool_kernel_name_taken(const tool_compile_state *st, const char *name) {
  for (int i = 0; i < st->n_kernels; i++)
    if (strcmp(st->kernels[i].name, name) == 0) return 1;
  return 0;
}

static int tool_compile_add(tool_compile_state *st, const char *path) {
  void *data = NULL;
  size_t size = 0;
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  if (mfx_artifact_read_file(path, &data, &size) != MFX_OK ||
      mfx_artifact_decode(data, size, path, &kernels, &n) != MFX_OK) {
    free(data);
    return tool_error_status(TOOL_EXIT_FAIL, "--add");
  }
  st->images[st->n_images++] = data;
  int rc = 0;
  for (int i = 0; i < n && rc == 0; i++) {
    if (tool_kernel_name_taken(st, kernels[i].name))
      rc = tool_error(TOOL_EXIT_FAIL, "--add %s: a kernel named %s is already in the artifact",
                      path, kernels[i].name);
    else if (st->n_kernels >= MFX_ARTIFACT_MAX_KERNELS)
      rc = tool_error(TOOL_EXIT_FAIL, "--add %s: more than %d kernels", path,
                      MFX_ARTIFACT_MAX_KERNELS);
    else st->kernels[st->n_kernels++] = kernels[i];
  }
  free(kernels);
  return rc;
}

/* The group's name, or op, op_2, op_3, ... whichever is free. */
static int tool_choose_name(const tool_compile_state *st, const tool_compile_group *g,
                            const char *op, char *out, size_t size) {
  if (g->name != NULL) {
    if (strlen(g->name) >= size)
      return tool_error(TOOL_EXIT_USAGE, "--name %s: at most %zu characters", g->name, size - 1);
    if (tool_kernel_name_taken(st, g->name))
      return tool_error(TOOL_EXIT_USAGE, "--name %s: the artifact already has a kernel of that "
                        "name", g->name);
    snprintf(out, size, "%s", g->name);
    return 0;
  }
  snprintf(out, size, "%s", op);
  for (int n = 2; tool_kernel_name_taken(st, out); n++) snprintf(out, size, "%s_%d", op, n);
  return 0;
}

static void tool_describe_kernel(mfx_artifact_kernel *k, const tool_problem *p,
                                 const char *target) {
  snprintf(k->op, sizeof k->op, "%s", p->op->name);
  k->n_dims = p->op->n_dims;
  for (int d = 0; d < p->op->n_dims; d++) {
    snprintf(k->dim_names[d], sizeof k->dim_names[d], "%s", p->op->dims[d]);
    k->dims[d] = p->dims[d];
  }
  snprintf(k->target, sizeof k->target, "%s", target);
  mfx_config_to_json(&p->cfg, k->config, sizeof k->config);
}

/* The op and dims of a group, and its --config over the defaults of the
 * target's template (the GPU knobs for cuda:sm_XX). */
static int tool_compile_resolve(const tool_args *args, const char *target, tool_problem *p) {
  tool_args plain = *args;
  plain.config_json = NULL;
  int rc = tool_resolve_problem(&plain, p);
  if (rc != 0) return rc;
  mfx_config_default_for(p->op, target, &p->cfg);
  if (args->config_json != NULL &&
      mfx_config_parse_json_for(p->op, target, args->config_json, &p->cfg) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--config '%s': %s", args->config_json, mfx_last_error());
  /* The tuning database holds host-CPU records; GPU kernels keep their defaults. */
  if (strcmp(target, "cpu") == 0) return tool_apply_tuned_config(args, p);
  snprintf(p->config_why, sizeof p->config_why, "%s",
           args->config_json ? "given by --config" : "GPU template default");
  return 0;
}

/* Build the op's schedule for the kernel's target and compile it into k. */
static int tool_build_kernel(const tool_problem *p, mfx_artifact_kernel *k) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  int rc = 0;
  if (mfx_op_build_for(p->op, k->target, arena, p->dims, &p->cfg, &s) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "building the schedule");
  else if (mfx_artifact_build(s, k) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "compile");
  mfx_arena_destroy(arena);
  return rc;
}

/* A kernel written as TE text (mfx_run_te.c): its default schedule. */
static int tool_compile_te_kernel(tool_compile_state *st, const tool_compile_group *g,
                                  const char *target) {
  const char *path = g->args.op_name;
  if (g->args.dims_text != NULL || g->args.config_json != NULL)
    return tool_error(TOOL_EXIT_USAGE, "%s: a TE file fixes its own shapes and schedule; --dims "
                      "and --config apply to ops", path);
  if (st->n_kernels >= MFX_ARTIFACT_MAX_KERNELS)
    return tool_error(TOOL_EXIT_USAGE, "compile: more than %d kernels", MFX_ARTIFACT_MAX_KERNELS);
  mfx_artifact_kernel *k = &st->kernels[st->n_kernels];
  memset(k, 0, sizeof *k);
  char base[MFX_ARTIFACT_NAME_BYTES];
  tool_te_default_name(path, base, sizeof base);
  int rc = tool_choose_name(st, g, base, k->name, sizeof k->name);
  if (rc != 0) return rc;
  snprintf(k->target, sizeof k->target, "%s", target);
  rc = tool_te_autosched_kernel(path, g->args.db_path, k);
  if (rc != 0) return rc;
  st->built[st->n_kernels++] = 1;
  return 0;
}

static int tool_compile_group_kernel(tool_compile_state *st, const tool_compile_group *g,
                                     const char *target) {
  if (tool_is_te_file(g->args.op_name)) return tool_compile_te_kernel(st, g, target);
  tool_problem p;
  int rc = tool_compile_resolve(&g->args, target, &p);
  if (rc != 0) return rc;
  if (st->n_kernels >= MFX_ARTIFACT_MAX_KERNELS)
    return tool_error(TOOL_EXIT_USAGE, "compile: more than %d kernels", MFX_ARTIFACT_MAX_KERNELS);
  mfx_artifact_kernel *k = &st->kernels[st->n_kernels];
  memset(k, 0, sizeof *k);
  rc = tool_choose_name(st, g, p.op->name, k->name, sizeof k->name);
  if (rc != 0) return rc;
  tool_describe_kernel(k, &p, target);
  printf("config   %s: %s\n", k->name, p.config_why);
  rc = tool_build_kernel(&p, k);
  if (rc != 0) return rc;
  st->built[st->n_kernels++] = 1;
  return 0;
}

/* ---- outputs ------------------------------------------------------------------------- */

static void tool_print_kernel(int index, const mfx_artifact_kernel *k) {
  char dims[256] = "";
  size_t used = 0;
  for (int d = 0; d < k->n_dims && used < sizeof dims; d++)
    used += (size_t)snprintf(dims + used, sizeof dims - used, "%s%s=%lld", d ? "," : "",
                             k->dim_names[d], (long long)k->dims[d]);
  size_t code = k->host_so != NULL ? k->host_so_bytes : k->gpu_image_bytes;
  printf("kernel %d %s: %s %s on %s, %zu bytes of code, config %s\n", index, k->name, k->op,
         dims, k->target, code, k->config);
}

static int tool_write_artifact(const tool_compile_state *st, const char *path) {
  void *data = NULL;
  size_t size = 0;
  if (mfx_artifact_encode(st->kernels, st->n_kernels, &data, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compile: encoding the artifact");
  mfx_status s = mfx_artifact_write_file(path, data, size);
  free(data);
  if (s != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "compile -o");
  for (int i = 0; i < st->n_kernels; i++) tool_print_kernel(i, &st->kernels[i]);
  printf("wrote %s: %d kernel%s, %zu bytes\n", path, st->n_kernels,
         st->n_kernels == 1 ? "" : "s", size);
  return 0;
}

static int tool_compile_artifact(const tool_compile_args *a) {
  tool_compile_state *st = calloc(1, sizeof *st);
  if (st == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory");
  int rc = 0;
  for (int i = 0; i < a->n_adds && rc == 0; i++) rc = tool_compile_add(st, a->adds[i]);
  for (int i = 0; i < a->n_groups && rc == 0; i++)
    rc = tool_compile_group_kernel(st, &a->groups[i], a->target);
  if (rc == 0) rc = tool_write_artifact(st, a->output);
  tool_compile_state_free(st);
  free(st);
  return rc;
}

static int tool_write_output(const char *path, const void *data, size_t size) {
  if (path != NULL) return mfx_file_write(path, "-o", data, size) == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "compile");
  FILE *f = stdout;
  size_t put = fwrite(data, 1, size, f);
  int bad = put != size;
  if (path != NULL) bad |= fclose(f) != 0;
  else bad |= fflush(f) != 0;
  if (bad) return tool_error(TOOL_EXIT_FAIL, "%s: write failed", path != NULL ? path : "stdout");
  return 0;
}

/* LLVM IR, assembly or an object of the host kernel; LLVM IR or PTX of the
 * GPU program (its kernels split at grid-wide barriers) for cuda:sm_XX. */
static int tool_emit_code(const tool_problem *p, const char *target, mfx_build_emit what,
                          const char *output) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  mfx_build_result r = {0};
  int rc = 0;
  if (mfx_op_build_for(p->op, target, arena, p->dims, &p->cfg, &s) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "building the schedule");
  else if (mfx_build(s, p->op->name, target, what, NULL, &r) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "code generation");
  else rc = tool_write_output(output, r.data, r.size);
  free(r.data);
  mfx_arena_destroy(arena);
  return rc;
}

static int tool_compile_emit(const tool_compile_args *a) {
  tool_problem p;
  int te = tool_is_te_file(a->groups[0].args.op_name);
  int rc = te ? 0 : tool_compile_resolve(&a->groups[0].args, a->target, &p);
  if (rc != 0) return rc;
  int cuda = mfx_target_names_gpu(a->target);
  if (!cuda && strcmp(a->emit, "ptx") == 0)
    return tool_error(TOOL_EXIT_USAGE, "--emit ptx is GPU code; give --target cuda:sm_XX "
                      "(e.g. cuda:sm_80)");
  if (cuda && strcmp(a->emit, "obj") == 0)
    return tool_error(TOOL_EXIT_USAGE, "--emit obj is host code; for --target %s use --emit "
                      "ptx (the CUDA driver or ptxas makes GPU binaries)", a->target);
  mfx_build_emit what = strcmp(a->emit, "ll") == 0    ? MFX_BUILD_LL
                        : strcmp(a->emit, "obj") == 0 ? MFX_BUILD_OBJ
                        : strcmp(a->emit, "ptx") == 0 ? MFX_BUILD_PTX
                                                      : MFX_BUILD_ASM;
  if (te) { /* mfx_tune_te.c: the auto-scheduled text kernel */
    char *data = NULL;
    size_t size = 0;
    rc = tool_te_emit_code(a->groups[0].args.op_name, a->db, a->target, what, &data, &size);
    if (rc == 0) rc = tool_write_output(a->output, data, size);
    free(data);
    return rc;
  }
  return tool_emit_code(&p, a->target, what, a->output);
}

static int tool_compile_check_target(const char *target) {
  mfx_target t;
  if (mfx_target_parse(target, &t) == MFX_OK &&
      (t.kind == MFX_TARGET_CPU || (t.kind == MFX_TARGET_CUDA && t.sm)))
    return 0;
  return tool_error(TOOL_EXIT_USAGE, "--target '%s': expected cpu or cuda:sm_XX (e.g. "
                    "cuda:sm_80, cuda:sm_90)", target);
}

int tool_cmd_compile(int argc, char **argv) {
  tool_compile_args *a = calloc(1, sizeof *a);
  if (a == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory");
  int rc = tool_compile_parse(argc, argv, a);
  if (rc == TOOL_ARGS_HELP) rc = TOOL_EXIT_OK;
  else if (rc == 0) {
    if (a->target == NULL) a->target = "cpu";
    for (int i = 0; i < a->n_groups; i++) a->groups[i].args.db_path = a->db;
    rc = tool_compile_check_target(a->target);
    if (rc == 0) rc = tool_compile_check_args(a);
    if (rc == 0) rc = a->emit != NULL ? tool_compile_emit(a) : tool_compile_artifact(a);
  }
  free(a);
  if (fflush(stdout) != 0 && rc == 0) rc = tool_error(TOOL_EXIT_FAIL, "writing standard output");
  return rc;
}
