/* mfx lower: one op through the pipeline, printed layer by layer
 * (tensor expression, schedule, loop IR), or its LLVM IR / assembly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx_cli.h"

static void tool_print_heading(const char *title) {
  printf("==== %s ", title);
  for (size_t i = strlen(title); i < 60; i++) putchar('=');
  printf("\n");
}

/* Layers 2-4 of a kernel: its tensor expression, schedule and loop IR. */
static void tool_print_te_schedule_ir(mfx_schedule *s, const mfx_func *fn) {
  tool_print_heading("tensor expression");
  mfx_print_te(stdout, s);
  printf("\n");
  tool_print_heading("schedule");
  mfx_print_schedule(stdout, s);
  printf("\n");
  tool_print_heading("loop IR");
  mfx_print_func(stdout, fn);
}

static void tool_print_layers(const tool_problem *p, mfx_schedule *s, const mfx_func *fn) {
  char dims[256], config[1024];
  tool_format_dims(p->op, p->dims, dims, sizeof dims);
  mfx_config_to_json(&p->cfg, config, sizeof config);
  printf("# %s %s config %s\n\n", p->op->name, dims, config);
  tool_print_te_schedule_ir(s, fn);
}

/* ---- the pass table: --passes, --print-after PASS ------------------------------ */

static int tool_print_passes(void) {
  int n;
  const mfx_pass *passes = mfx_lower_passes(&n);
  printf("passes mfx lower runs on the loop IR, in order:\n");
  for (int i = 0; i < n; i++) printf("  %2d %-10s %s\n", i + 1, passes[i].name, passes[i].description);
  return TOOL_EXIT_OK;
}

static int tool_is_pass(const char *name) {
  int n;
  const mfx_pass *passes = mfx_lower_passes(&n);
  for (int i = 0; i < n; i++)
    if (strcmp(passes[i].name, name) == 0) return 1;
  return 0;
}

typedef struct {
  const char *name;
  int runs;
} tool_trace;

/* Prints the loop IR after each run of the pass the trace names. */
static void tool_print_after(const mfx_pass *pass, const mfx_func *fn, void *ctx) {
  tool_trace *t = ctx;
  if (strcmp(pass->name, t->name) != 0) return;
  char title[96];
  snprintf(title, sizeof title, "loop IR after %s (run %d)", pass->name, ++t->runs);
  tool_print_heading(title);
  mfx_print_func(stdout, fn);
  printf("\n");
}

/* Lower s (printing the IR after the pass print_after, if any), and with
 * emit ("ll" or "asm") generate host code into *r. */
static mfx_status tool_lower(mfx_schedule *s, const char *name, const char *print_after,
                             const char *emit, mfx_build_result *r) {
  tool_trace t = {print_after, 0};
  mfx_build_options opts = {print_after != NULL ? tool_print_after : NULL, &t};
  mfx_build_emit what = emit == NULL                ? MFX_BUILD_FUNC
                        : strcmp(emit, "asm") == 0 ? MFX_BUILD_ASM
                                                   : MFX_BUILD_LL;
  return mfx_build(s, name, "cpu", what, &opts, r);
}

static int tool_emit(const mfx_build_result *r) {
  fwrite(r->data, 1, r->size, stdout);
  if (r->size > 0 && r->data[r->size - 1] != '\n') putchar('\n');
  return 0;
}

static int tool_lower_problem(const tool_problem *p, const char *emit, const char *print_after) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  mfx_build_result r = {0};
  int rc = 0;
  if (p->op->build(arena, p->dims, &p->cfg, &s) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "building the schedule");
  } else if (tool_lower(s, p->op->name, print_after, emit, &r) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, emit != NULL ? "lowering and code generation"
                                                        : "lowering");
  } else if (emit != NULL) {
    rc = tool_emit(&r);
  } else {
    tool_print_layers(p, s, r.func);
  }
  free(r.data);
  mfx_arena_destroy(arena);
  return rc;
}

/* ---- a kernel written as TE text (mfx_print_te's language) -------------------- */

int tool_is_te_file(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n > 3 && strcmp(name + n - 3, ".te") == 0;
}

char *tool_read_file(const char *path) {
  char *text = NULL;
  size_t size = 0;
  if (mfx_file_read(path, "kernel text", MFX_FILE_CAP_TEXT, &text, &size) != MFX_OK) return NULL;
  if (strlen(text) != size) {
    free(text);
    mfx_fail(MFX_ERR_FORMAT, "kernel text %s: a NUL byte: not text", path);
    return NULL;
  }
  return text;
}

/* The TE as written, its default schedule (every loop serial) and loop IR. */
static int tool_lower_te_file(const char *path, const char *emit, const char *print_after) {
  char *text = tool_read_file(path);
  if (text == NULL) return tool_error_status(TOOL_EXIT_FAIL, "cannot read TE text");
  mfx_arena *arena = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_build_result r = {0};
  int rc = 0;
  if (mfx_te_parse(arena, text, path, &s) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "parsing");
  } else if (tool_lower(s, "kernel", print_after, emit, &r) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, emit != NULL ? "lowering and code generation"
                                                        : "lowering");
  } else if (emit != NULL) {
    rc = tool_emit(&r);
  } else {
    printf("# %s (default schedule: every loop serial)\n\n", path);
    tool_print_te_schedule_ir(s, r.func);
  }
  free(r.data);
  mfx_arena_destroy(arena);
  free(text);
  return rc;
}

static int tool_check_pass(void *user, const char *option, const char *value, char *why,
                           size_t size) {
  (void)user;
  if (tool_is_pass(value)) return 0;
  snprintf(why, size, "%s: no such pass '%s' (see mfx lower --passes)", option, value);
  return 1;
}

int tool_cmd_lower(int argc, char **argv) {
  tool_args args;
  int passes = 0;
  const char *print_after = NULL;
  const tool_arg own[] = {
      {.name = "--passes", .type = TOOL_ARG_FLAG, .to.flag = &passes},
      {.name = "--print-after", .type = TOOL_ARG_TEXT, .to.text = &print_after,
       .example = "--print-after simplify; mfx lower --passes lists them",
       .check = tool_check_pass},
      {0},
  };
  int rc = tool_parse_args_with(argc, argv, TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_EMIT, own,
                                &args);
  if (rc != 0) return rc;
  if (args.help) {
    fputs(tool_usage("lower"), stdout);
    return TOOL_EXIT_OK;
  }
  if (passes) return tool_print_passes();
  if (tool_is_te_file(args.op_name)) {
    if (args.dims_text != NULL || args.config_json != NULL)
      return tool_error(TOOL_EXIT_USAGE, "%s: a TE file fixes its own shapes; --dims and --config "
                        "apply to ops", args.op_name);
    rc = tool_lower_te_file(args.op_name, args.emit, print_after);
    if (fflush(stdout) != 0 && rc == 0) rc = tool_error(TOOL_EXIT_FAIL, "writing standard output");
    return rc;
  }
  tool_problem p;
  rc = tool_resolve_problem(&args, &p);
  if (rc != 0) return rc;
  rc = tool_lower_problem(&p, args.emit, print_after);
  if (fflush(stdout) != 0 && rc == 0) rc = tool_error(TOOL_EXIT_FAIL, "writing standard output");
  return rc;
}
