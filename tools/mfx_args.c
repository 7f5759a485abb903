/* Command-line parsing for the mfx tool: options, numbers, bindings, and
 * resolving the op, its dims and its config. Every error names the option,
 * what it got and what it expected, and returns exit status 2. */
#include <errno.h>
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

/* ---- options ---------------------------------------------------------------- */

typedef struct {
  const char *name;
  unsigned bit;
  int takes_value;
  const char *example; /* shown when the value is missing */
} tool_option;

static const tool_option tool_options[] = {
    {"--dims", TOOL_OPT_DIMS, 1, "--dims M=64,N=64,K=64"},
    {"--config", TOOL_OPT_CONFIG, 1, "--config '{\"knob\": 8}'"},
    {"--emit", TOOL_OPT_EMIT, 1, "--emit ll or --emit asm"},
    {"--in", TOOL_OPT_IN, 1, "--in X=x.npy"},
    {"--out", TOOL_OPT_OUT, 1, "--out Y=y.npy"},
    {"--threads", TOOL_OPT_THREADS, 1, "--threads 2"},
    {"--check", TOOL_OPT_CHECK, 0, "--check"},
    {"--tol", TOOL_OPT_TOL, 1, "--tol 1e-4"},
    {"--repeat", TOOL_OPT_REPEAT, 1, "--repeat 20"},
    {"--seed", TOOL_OPT_SEED, 1, "--seed 7"},
    {"--db", TOOL_OPT_DB, 1, "--db tune.db"},
    {"--target", TOOL_OPT_TARGET, 1, "--target cuda (cpu, cuda, cuda:N or emulate)"},
    {"--json", TOOL_OPT_JSON, 0, "--json"},
};

static const tool_option *tool_find_option(const char *arg, size_t name_len) {
  for (size_t i = 0; i < sizeof tool_options / sizeof tool_options[0]; i++) {
    const char *name = tool_options[i].name;
    if (strlen(name) == name_len && strncmp(name, arg, name_len) == 0) return &tool_options[i];
  }
  return NULL;
}

static int tool_parse_long(const char *option, const char *text, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
    return tool_error(TOOL_EXIT_USAGE, "%s: '%s' is not a whole number in %ld..%ld", option,
                      text, lo, hi);
  }
  *out = v;
  return 0;
}

static int tool_parse_seed(const char *text, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0) {
    return tool_error(TOOL_EXIT_USAGE, "--seed: '%s' is not a non-negative whole number", text);
  }
  *out = (uint64_t)v;
  return 0;
}

static int tool_parse_tol(const char *text, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || !(v >= 0.0 && v < 1.0)) {
    return tool_error(TOOL_EXIT_USAGE, "--tol: '%s' is not a number in [0, 1)", text);
  }
  *out = v;
  return 0;
}

/* "NAME=FILE" into a binding. */
static int tool_parse_binding(const char *option, const char *text, tool_binding *b) {
  size_t len = strlen(text);
  const char *eq = strchr(text, '=');
  if (eq == NULL || eq == text || eq[1] == '\0') {
    return tool_error(TOOL_EXIT_USAGE, "%s: '%s' is not NAME=FILE.npy (e.g. %s X=x.npy)",
                      option, text, option);
  }
  if (len >= sizeof b->text) {
    return tool_error(TOOL_EXIT_USAGE, "%s: argument is %zu characters long; at most %zu",
                      option, len, sizeof b->text - 1);
  }
  memcpy(b->text, text, len + 1);
  b->text[eq - text] = '\0';
  b->name = b->text;
  b->path = b->text + (eq - text) + 1;
  return 0;
}

static int tool_add_binding(const char *option, const char *text, tool_binding *list, int *n) {
  if (*n >= TOOL_MAX_BINDINGS) {
    return tool_error(TOOL_EXIT_USAGE, "%s given more than %d times", option, TOOL_MAX_BINDINGS);
  }
  int rc = tool_parse_binding(option, text, &list[*n]);
  if (rc == 0) (*n)++;
  return rc;
}

static int tool_set_once(const char *option, const char **slot, const char *value) {
  if (*slot != NULL) {
    return tool_error(TOOL_EXIT_USAGE, "%s given twice ('%s' and '%s'); give it once", option,
                      *slot, value);
  }
  *slot = value;
  return 0;
}

static int tool_apply_option(const tool_option *o, const char *value, tool_args *a) {
  long v = 0;
  int rc = 0;
  switch (o->bit) {
  case TOOL_OPT_DIMS: return tool_set_once(o->name, &a->dims_text, value);
  case TOOL_OPT_CONFIG: return tool_set_once(o->name, &a->config_json, value);
  case TOOL_OPT_EMIT:
    if (strcmp(value, "ll") != 0 && strcmp(value, "asm") != 0) {
      return tool_error(TOOL_EXIT_USAGE, "--emit: '%s' is not a format; expected ll or asm",
                        value);
    }
    return tool_set_once(o->name, &a->emit, value);
  case TOOL_OPT_IN: return tool_add_binding(o->name, value, a->in, &a->n_in);
  case TOOL_OPT_OUT: return tool_add_binding(o->name, value, a->out, &a->n_out);
  case TOOL_OPT_THREADS:
    rc = tool_parse_long(o->name, value, 1, 1024, &v);
    a->threads = (int)v;
    return rc;
  case TOOL_OPT_REPEAT:
    rc = tool_parse_long(o->name, value, 1, 1000000, &v);
    a->repeat = (int)v;
    return rc;
  case TOOL_OPT_SEED: return tool_parse_seed(value, &a->seed);
  case TOOL_OPT_TOL: return tool_parse_tol(value, &a->tol);
  case TOOL_OPT_DB: return tool_set_once(o->name, &a->db_path, value);
  case TOOL_OPT_CHECK: a->check = 1; return 0;
  case TOOL_OPT_JSON: a->json = 1; return 0;
  case TOOL_OPT_TARGET: {
    mfx_target t;
    if (mfx_target_parse(value, &t) != MFX_OK)
      return tool_error(TOOL_EXIT_USAGE, "--target: %s", mfx_last_error());
    if (t.kind == MFX_TARGET_CUDA && t.sm > 0)
      return tool_error(TOOL_EXIT_USAGE, "--target %s names an architecture, not a device; "
                        "give cuda or cuda:N", value);
    return tool_set_once(o->name, &a->target, value);
  }
  }
  return tool_error(TOOL_EXIT_USAGE, "internal: option %s has no handler", o->name);
}

/* One argument starting with "--" at argv[*i]; may consume the next one. */
static int tool_parse_option(int argc, char **argv, int *i, unsigned allowed, tool_args *a) {
  const char *arg = argv[*i];
  const char *eq = strchr(arg, '=');
  size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
  const tool_option *o = tool_find_option(arg, name_len);
  if (o == NULL || (o->bit & allowed) == 0) {
    return tool_error(TOOL_EXIT_USAGE, "%s: unknown option '%.*s' (see mfx help %s)",
                      a->command, (int)name_len, arg, a->command);
  }
  if (!o->takes_value) {
    if (eq != NULL) return tool_error(TOOL_EXIT_USAGE, "%s takes no value", o->name);
    return tool_apply_option(o, NULL, a);
  }
  const char *value = NULL;
  if (eq != NULL) {
    value = eq + 1;
  } else if (*i + 1 < argc) {
    value = argv[++*i];
  } else {
    return tool_error(TOOL_EXIT_USAGE, "%s needs a value (e.g. %s)", o->name, o->example);
  }
  return tool_apply_option(o, value, a);
}

int tool_parse_args(int argc, char **argv, unsigned allowed, tool_args *out) {
  memset(out, 0, sizeof *out);
  out->command = argv[0];
  out->seed = 1;
  out->tol = TOOL_DEFAULT_TOL;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int rc = 0;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      out->help = 1;
    } else if (strncmp(arg, "--", 2) == 0) {
      rc = tool_parse_option(argc, argv, &i, allowed, out);
    } else if (arg[0] == '-' && arg[1] != '\0') {
      rc = tool_error(TOOL_EXIT_USAGE, "%s: unknown option '%s' (see mfx help %s)",
                      out->command, arg, out->command);
    } else if (out->op_name == NULL) {
      out->op_name = arg;
    } else {
      rc = tool_error(TOOL_EXIT_USAGE, "%s: unexpected argument '%s' after op '%s'",
                      out->command, arg, out->op_name);
    }
    if (rc != 0) return rc;
  }
  return 0;
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
