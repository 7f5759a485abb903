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

static void tool_print_layers(const tool_problem *p, mfx_schedule *s, const mfx_func *fn) {
  char dims[256], config[1024];
  tool_format_dims(p->op, p->dims, dims, sizeof dims);
  mfx_config_to_json(&p->cfg, config, sizeof config);
  printf("# %s %s config %s\n\n", p->op->name, dims, config);
  tool_print_heading("tensor expression");
  mfx_print_te(stdout, s);
  printf("\n");
  tool_print_heading("schedule");
  mfx_print_schedule(stdout, s);
  printf("\n");
  tool_print_heading("loop IR");
  mfx_print_func(stdout, fn);
}

static int tool_emit(const mfx_func *fn, const char *format) {
  mfx_emit_kind kind = strcmp(format, "asm") == 0 ? MFX_EMIT_ASM : MFX_EMIT_LL;
  char *data = NULL;
  size_t size = 0;
  if (mfx_codegen_emit(fn, kind, &data, &size) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "code generation");
  }
  fwrite(data, 1, size, stdout);
  if (size > 0 && data[size - 1] != '\n') putchar('\n');
  free(data);
  return 0;
}

static int tool_lower_problem(const tool_problem *p, const char *emit) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  mfx_func *fn = NULL;
  int rc = 0;
  if (p->op->build(arena, p->dims, &p->cfg, &s) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "building the schedule");
  } else if (mfx_lower(s, p->op->name, &fn) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "lowering");
  } else if (emit != NULL) {
    rc = tool_emit(fn, emit);
  } else {
    tool_print_layers(p, s, fn);
  }
  mfx_arena_destroy(arena);
  return rc;
}

/* ---- a kernel written as TE text (mfx_print_te's language) -------------------- */

static int tool_is_te_file(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n > 3 && strcmp(name + n - 3, ".te") == 0;
}

static char *tool_read_file(const char *path) {
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
static int tool_lower_te_file(const char *path, const char *emit) {
  char *text = tool_read_file(path);
  if (text == NULL) return tool_error_status(TOOL_EXIT_FAIL, "cannot read TE text");
  mfx_arena *arena = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_func *fn = NULL;
  int rc = 0;
  if (mfx_te_parse(arena, text, path, &s) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "parsing");
  } else if (mfx_lower(s, "kernel", &fn) != MFX_OK) {
    rc = tool_error_status(TOOL_EXIT_FAIL, "lowering");
  } else if (emit != NULL) {
    rc = tool_emit(fn, emit);
  } else {
    printf("# %s (default schedule: every loop serial)\n\n", path);
    tool_print_heading("tensor expression");
    mfx_print_te(stdout, s);
    printf("\n");
    tool_print_heading("schedule");
    mfx_print_schedule(stdout, s);
    printf("\n");
    tool_print_heading("loop IR");
    mfx_print_func(stdout, fn);
  }
  mfx_arena_destroy(arena);
  free(text);
  return rc;
}

int tool_cmd_lower(int argc, char **argv) {
  tool_args args;
  int rc = tool_parse_args(argc, argv, TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_EMIT, &args);
  if (rc != 0) return rc;
  if (args.help) {
    fputs(tool_usage("lower"), stdout);
    return TOOL_EXIT_OK;
  }
  if (tool_is_te_file(args.op_name)) {
    if (args.dims_text != NULL || args.config_json != NULL)
      return tool_error(TOOL_EXIT_USAGE, "%s: a TE file fixes its own shapes; --dims and --config "
                        "apply to ops", args.op_name);
    rc = tool_lower_te_file(args.op_name, args.emit);
    if (fflush(stdout) != 0 && rc == 0) rc = tool_error(TOOL_EXIT_FAIL, "writing standard output");
    return rc;
  }
  tool_problem p;
  rc = tool_resolve_problem(&args, &p);
  if (rc != 0) return rc;
  rc = tool_lower_problem(&p, args.emit);
  if (fflush(stdout) != 0 && rc == 0) rc = tool_error(TOOL_EXIT_FAIL, "writing standard output");
  return rc;
}
