/* Command-line parsing for the mfx tool: options, numbers, bindings, and
 * resolving the op, its dims and its config. Every error names the option,
 * what it got and what it expected, and returns exit status 2. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/autotune.h"
#include "mfx/target.h"
#include "mfx_cli.h"

int tool_error(int code, const char *fmt, ...) {
  va_list ap;
  fputs("mfx: error: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return code;
}

int tool_error_status(int code, const char *what) {
  const char *why = mfx_last_error();
  if (why[0] == '\0') why = "unknown failure (no message from the library)";
  return tool_error(code, "%s: %s", what, why);
}

int tool_json_finish(mfx_json *w, const char *what) {
  if (mfx_json_finish(w) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, what);
  if (w->nonfinite > 0)
    fprintf(stderr, "mfx: warning: %s: %d number%s NaN or infinite, written as null (JSON has "
            "no NaN)\n", what, w->nonfinite, w->nonfinite == 1 ? " was" : "s were");
  return 0;
}

/* ---- options: tool_parse_args over the shared parser (mfx_argparse.c) ---------- */

static const char *const tool_emit_formats[] = {"ll", "asm", NULL};

/* "NAME=FILE" into the next binding of --in or --out. */
static int tool_bind(void *user, const char *option, const char *text, char *why, size_t size) {
  tool_args *a = user;
  int is_in = strcmp(option, "--in") == 0;
  tool_binding *b = is_in ? &a->in[a->n_in] : &a->out[a->n_out];
  size_t len = strlen(text);
  const char *eq = strchr(text, '=');
  if (eq == NULL || eq == text || eq[1] == '\0') {
    snprintf(why, size, "%s: '%s' is not NAME=FILE.npy (e.g. %s X=x.npy)", option, text, option);
    return 1;
  }
  if (len >= sizeof b->text) {
    snprintf(why, size, "%s: argument is %zu characters long; at most %zu", option, len,
             sizeof b->text - 1);
    return 1;
  }
  memcpy(b->text, text, len + 1);
  b->text[eq - text] = '\0';
  b->name = b->text;
  b->path = b->text + (eq - text) + 1;
  if (is_in) a->n_in++;
  else a->n_out++;
  return 0;
}

/* --target names where to run: a device (cpu, cuda, cuda:N, emulate), not
 * an architecture to compile for (that is mfx compile's cuda:sm_XX). */
static int tool_check_target(void *user, const char *name, const char *value, char *why,
                             size_t size) {
  (void)user;
  mfx_target t;
  if (mfx_target_parse(value, &t) != MFX_OK) {
    snprintf(why, size, "%s: %s", name, mfx_last_error());
    return 1;
  }
  if (t.kind == MFX_TARGET_CUDA && t.sm > 0) {
    snprintf(why, size, "%s %s names an architecture, not a device; give cuda or cuda:N", name,
             value);
    return 1;
  }
  return 0;
}

/* The shared options, each with its bit; pointers into *a. */
static int tool_shared_options(tool_args *a, unsigned allowed, tool_arg *out) {
  const struct { unsigned bit; tool_arg arg; } all[] = {
      {TOOL_OPT_DIMS, {.name = "--dims", .type = TOOL_ARG_TEXT, .to.text = &a->dims_text,
                       .example = "--dims M=64,N=64,K=64"}},
      {TOOL_OPT_CONFIG, {.name = "--config", .type = TOOL_ARG_TEXT, .to.text = &a->config_json,
                         .example = "--config '{\"knob\": 8}'"}},
      {TOOL_OPT_EMIT, {.name = "--emit", .type = TOOL_ARG_ENUM, .to.text = &a->emit,
                       .choices = tool_emit_formats, .noun = "format",
                       .example = "--emit ll or --emit asm"}},
      {TOOL_OPT_IN, {.name = "--in", .type = TOOL_ARG_TEXT, .max_count = TOOL_MAX_BINDINGS,
                     .example = "--in X=x.npy", .check = tool_bind, .check_user = a}},
      {TOOL_OPT_OUT, {.name = "--out", .type = TOOL_ARG_TEXT, .max_count = TOOL_MAX_BINDINGS,
                      .example = "--out Y=y.npy", .check = tool_bind, .check_user = a}},
      {TOOL_OPT_THREADS, {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &a->threads,
                          .min = 1, .max = 1024, .example = "--threads 2"}},
      {TOOL_OPT_CHECK, {.name = "--check", .type = TOOL_ARG_FLAG, .to.flag = &a->check}},
      {TOOL_OPT_TOL, {.name = "--tol", .type = TOOL_ARG_FLOAT, .to.f64 = &a->tol, .lo = 0.0,
                      .hi = 1.0, .hi_open = 1, .example = "--tol 1e-4"}},
      {TOOL_OPT_REPEAT, {.name = "--repeat", .type = TOOL_ARG_INT, .to.i32 = &a->repeat,
                         .min = 1, .max = 1000000, .example = "--repeat 20"}},
      {TOOL_OPT_SEED, {.name = "--seed", .type = TOOL_ARG_UINT64, .to.u64 = &a->seed,
                       .example = "--seed 7"}},
      {TOOL_OPT_DB, {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db_path,
                     .example = "--db tune.db"}},
      {TOOL_OPT_TARGET, {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
                         .example = "--target cuda (cpu, cuda, cuda:N or emulate)",
                         .check = tool_check_target}},
      {TOOL_OPT_JSON, {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &a->json}},
  };
  int n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i].bit & allowed) out[n++] = all[i].arg;
  return n;
}

int tool_parse_args_with(int argc, char **argv, unsigned allowed, const tool_arg *extra,
                         tool_args *out) {
  memset(out, 0, sizeof *out);
  out->command = argv[0];
  out->seed = 1;
  out->tol = TOOL_DEFAULT_TOL;
  tool_arg options[TOOL_ARGS_MAX_OPTIONS + 1];
  int n = tool_shared_options(out, allowed, options);
  for (int i = 0; extra != NULL && extra[i].name != NULL; i++) {
    if (n >= TOOL_ARGS_MAX_OPTIONS)
      return tool_error(TOOL_EXIT_USAGE, "internal: %s has too many options", out->command);
    options[n++] = extra[i];
  }
  memset(&options[n], 0, sizeof options[n]);
  const tool_pos positionals[] = {{.name = "OP", .to = &out->op_name}, {0}};
  tool_cmdline cl = {.program = "mfx", .command = out->command, .options = options,
                     .positionals = positionals, .help_given = &out->help};
  return tool_args_parse(&cl, argc, argv);
}

int tool_parse_args(int argc, char **argv, unsigned allowed, tool_args *out) {
  return tool_parse_args_with(argc, argv, allowed, NULL, out);
}

/* ---- the op, its dims and config ------------------------------------------- */

static void tool_format_op_names(char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < mfx_op_count() && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", mfx_op_at(i)->name);
    if (n < 0) break;
    used += (size_t)n;
  }
}

int tool_find_op(const char *name, const mfx_op **out) {
  char names[512];
  *out = mfx_op_find(name);
  if (*out != NULL) return 0;
  tool_format_op_names(names, sizeof names);
  return tool_error(TOOL_EXIT_USAGE, "unknown op '%s'; known ops: %s", name, names);
}

void tool_format_dim_names(const mfx_op *op, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < op->n_dims && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? "," : "", op->dims[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
}

void tool_format_dims(const mfx_op *op, const int64_t *dims, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < op->n_dims && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s=%lld", i ? "," : "", op->dims[i],
                     (long long)dims[i]);
    if (n < 0) break;
    used += (size_t)n;
  }
}

void tool_format_shape(const int64_t *shape, int ndim, char *buf, size_t size) {
  size_t used = 0;
  int n = snprintf(buf, size, "[");
  used = n > 0 ? (size_t)n : 0;
  for (int i = 0; i < ndim && used < size; i++) {
    n = snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < 0) return;
    used += (size_t)n;
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

int tool_resolve_problem(const tool_args *args, tool_problem *out) {
  char names[128];
  memset(out, 0, sizeof *out);
  if (args->op_name == NULL) {
    return tool_error(TOOL_EXIT_USAGE, "%s: missing OP (see mfx ops for the list)", args->command);
  }
  int rc = tool_find_op(args->op_name, &out->op);
  if (rc != 0) return rc;
  tool_format_dim_names(out->op, names, sizeof names);
  if (args->dims_text == NULL) {
    int64_t example[MFX_OP_MAX_DIMS];
    char example_text[256];
    for (int i = 0; i < out->op->n_dims; i++) example[i] = 64;
    tool_format_dims(out->op, example, example_text, sizeof example_text);
    return tool_error(TOOL_EXIT_USAGE, "%s %s: missing --dims; %s takes dims %s (e.g. --dims %s)",
                      args->command, out->op->name, out->op->name, names, example_text);
  }
  if (mfx_op_parse_dims(out->op, args->dims_text, out->dims) != MFX_OK) {
    return tool_error(TOOL_EXIT_USAGE, "--dims '%s': %s", args->dims_text, mfx_last_error());
  }
  out->knobs = args->target != NULL ? args->target : "cpu";
  mfx_config_default_for(out->op, out->knobs, &out->cfg);
  snprintf(out->config_why, sizeof out->config_why, "template default");
  if (args->config_json != NULL) {
    if (mfx_config_parse_json_for(out->op, out->knobs, args->config_json, &out->cfg) != MFX_OK)
      return tool_error(TOOL_EXIT_USAGE, "--config '%s': %s", args->config_json, mfx_last_error());
    snprintf(out->config_why, sizeof out->config_why, "given by --config");
  }
  return 0;
}

/* No --config: the tuning database's best record for this op and dims on
 * this CPU, else the nearest tuned shape, else the template default. */
int tool_apply_tuned_config(const tool_args *args, tool_problem *p) {
  if (args->config_json != NULL) return 0;
  mfx_tune_choice choice;
  if (mfx_tune_lookup_for(args->db_path, p->op, p->dims, args->target, &choice) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, args->target != NULL && strcmp(args->target, "cpu")
                                                 ? "--target"
                                                 : "reading the tuning database");
  p->cfg = choice.cfg;
  snprintf(p->config_why, sizeof p->config_why, "%s", choice.why);
  return 0;
}
