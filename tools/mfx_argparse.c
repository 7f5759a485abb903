/* The shared command-line parser (mfx_argparse.h): one walk over argv,
 * typed values through the command's tables, one message per mistake. */
#include "mfx_argparse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARGS_PATH_MAX 4096

/* One parse: the command line, the counts of each option so far, the
 * positional arguments so far. */
typedef struct {
  const tool_cmdline *cl;
  int counts[TOOL_ARGS_MAX_OPTIONS];
  const char *first[TOOL_ARGS_MAX_OPTIONS]; /* the first value, for "given twice" */
  int n_positionals;
  const char *last_positional;
  tool_arg_error *err;
} args_state;

static int args_fail(tool_arg_error *err, tool_arg_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int args_fail(tool_arg_error *err, tool_arg_error_kind kind, const char *fmt, ...) {
  va_list ap;
  err->kind = kind;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return TOOL_ARGS_USAGE;
}

void tool_args_print_error(const char *program, const tool_arg_error *err) {
  fprintf(stderr, "%s: error: %s\n", program != NULL ? program : "mfx", err->message);
}

/* ---- values ------------------------------------------------------------------- */

int tool_args_int64(const char *what, const char *text, int64_t min, int64_t max, int64_t *out,
                    tool_arg_error *err) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || end == text)
    return args_fail(err, TOOL_ARG_ERR_NOT_NUMBER, "%s: '%s' is not a whole number in %lld..%lld",
                     what, text, (long long)min, (long long)max);
  if (errno == ERANGE || v < min || v > max)
    return args_fail(err, TOOL_ARG_ERR_RANGE, "%s: '%s' is out of range; expected a whole "
                     "number in %lld..%lld", what, text, (long long)min, (long long)max);
  *out = (int64_t)v;
  return 0;
}

int tool_args_uint64(const char *what, const char *text, uint64_t *out, tool_arg_error *err) {
  char *end = NULL;
  errno = 0;
  const char *p = text;
  while (*p == ' ' || *p == '\t') p++;
  unsigned long long v = strtoull(text, &end, 10);
  if (text[0] == '\0' || *p == '-' || *p == '+' || *end != '\0' || end == text)
    return args_fail(err, TOOL_ARG_ERR_NOT_NUMBER, "%s: '%s' is not a non-negative whole number",
                     what, text);
  if (errno == ERANGE)
    return args_fail(err, TOOL_ARG_ERR_RANGE, "%s: '%s' is out of range; expected a whole "
                     "number in 0..%llu", what, text, (unsigned long long)UINT64_MAX);
  *out = (uint64_t)v;
  return 0;
}

int tool_args_double(const char *what, const char *text, double lo, double hi, int hi_open,
                     double *out, tool_arg_error *err) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  const char *close = hi_open ? ")" : "]";
  if (text[0] == '\0' || *end != '\0' || end == text || isnan(v))
    return args_fail(err, TOOL_ARG_ERR_NOT_NUMBER, "%s: '%s' is not a number in [%g, %g%s", what,
                     text, lo, hi, close);
  /* ERANGE on underflow (1e-400) is a number near 0, not an error. */
  int overflow = errno == ERANGE && isinf(v);
  if (overflow || isinf(v) || v < lo || v > hi || (hi_open && v >= hi))
    return args_fail(err, TOOL_ARG_ERR_RANGE, "%s: '%s' is out of range; expected a number in "
                     "[%g, %g%s", what, text, lo, hi, close);
  *out = v;
  return 0;
}

/* "a, b or c" of a NULL-terminated list. */
static void args_format_choices(const char *const *choices, char *buf, size_t size) {
  size_t used = 0, n = 0;
  buf[0] = '\0';
  while (choices[n] != NULL) n++;
  for (size_t i = 0; i < n && used < size; i++) {
    const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
    int w = snprintf(buf + used, size - used, "%s%s", sep, choices[i]);
    if (w < 0) return;
    used += (size_t)w;
  }
}

static int args_choice(const char *what, const char *noun, const char *const *choices,
                       const char *text, int *index, tool_arg_error *err) {
  for (int i = 0; choices[i] != NULL; i++) {
    if (strcmp(choices[i], text) == 0) {
      if (index != NULL) *index = i;
      return 0;
    }
  }
  char list[256];
  args_format_choices(choices, list, sizeof list);
  return args_fail(err, TOOL_ARG_ERR_CHOICE, "%s: unknown %s '%s'; expected %s", what,
                   noun != NULL ? noun : "value", text, list);
}

static int args_check(tool_arg_check_fn check, void *user, const char *name, const char *value,
                      tool_arg_error *err) {
  if (check == NULL) return 0;
  char why[TOOL_ARGS_MESSAGE_BYTES] = "";
  if (check(user, name, value, why, sizeof why) == 0) return 0;
  if (why[0] == '\0') snprintf(why, sizeof why, "%s: '%s' is not accepted", name, value);
  return args_fail(err, TOOL_ARG_ERR_VALUE, "%s", why);
}

/* ---- options ------------------------------------------------------------------- */

static int args_option_count(const tool_arg *options) {
  int n = 0;
  while (options != NULL && options[n].name != NULL) n++;
  return n;
}

static int args_name_is(const char *name, const char *arg, size_t len) {
  return name != NULL && strlen(name) == len && strncmp(name, arg, len) == 0;
}

static int args_find_option(const tool_arg *options, const char *arg, size_t len) {
  for (int i = 0; options != NULL && options[i].name != NULL; i++)
    if (args_name_is(options[i].name, arg, len) || args_name_is(options[i].alias, arg, len))
      return i;
  return -1;
}

/* Once-only options: the second time is an error naming both values. */
static int args_count_use(args_state *st, int index, const char *value) {
  const tool_arg *o = &st->cl->options[index];
  int n = ++st->counts[index];
  if (n == 1) st->first[index] = value;
  if (o->max_count < 0 || n == 1) return 0;
  if (o->max_count > 1) {
    if (n <= o->max_count) return 0;
    return args_fail(st->err, TOOL_ARG_ERR_TOO_MANY, "%s given more than %d times", o->name,
                     o->max_count);
  }
  if (o->type == TOOL_ARG_FLAG)
    return args_fail(st->err, TOOL_ARG_ERR_DUPLICATE, "%s given twice; give it once", o->name);
  return args_fail(st->err, TOOL_ARG_ERR_DUPLICATE, "%s given twice ('%s' and '%s'); give it once",
                   o->name, st->first[index], value);
}

static int args_store_text(args_state *st, int index, const char *value) {
  const tool_arg *o = &st->cl->options[index];
  if (o->type == TOOL_ARG_PATH && strlen(value) >= ARGS_PATH_MAX)
    return args_fail(st->err, TOOL_ARG_ERR_VALUE, "%s: the path is %zu bytes long; at most %d",
                     o->name, strlen(value), ARGS_PATH_MAX - 1);
  if (o->to.text == NULL) return 0;
  if (o->max_count > 1) {
    o->to.text[st->counts[index] - 1] = value;
    if (o->count != NULL) *o->count = st->counts[index];
  } else {
    *o->to.text = value;
  }
  return 0;
}

/* The value of option `index`, typed, checked and stored. */
static int args_store(args_state *st, int index, const char *value) {
  const tool_arg *o = &st->cl->options[index];
  tool_arg_error *err = st->err;
  int64_t v = 0;
  int rc = 0;
  switch (o->type) {
  case TOOL_ARG_FLAG:
    if (o->to.flag != NULL) *o->to.flag = 1;
    return args_check(o->check, o->check_user, o->name, "", err);
  case TOOL_ARG_TEXT:
  case TOOL_ARG_PATH: rc = args_store_text(st, index, value); break;
  case TOOL_ARG_INT:
    rc = tool_args_int64(o->name, value, o->min, o->max, &v, err);
    if (rc == 0 && o->to.i32 != NULL) *o->to.i32 = (int)v;
    break;
  case TOOL_ARG_INT64:
    rc = tool_args_int64(o->name, value, o->min, o->max, &v, err);
    if (rc == 0 && o->to.i64 != NULL) *o->to.i64 = v;
    break;
  case TOOL_ARG_UINT64: {
    uint64_t u = 0;
    rc = tool_args_uint64(o->name, value, &u, err);
    if (rc == 0 && o->to.u64 != NULL) *o->to.u64 = u;
    break;
  }
  case TOOL_ARG_FLOAT: {
    double d = 0.0;
    rc = tool_args_double(o->name, value, o->lo, o->hi, o->hi_open, &d, err);
    if (rc == 0 && o->to.f64 != NULL) *o->to.f64 = d;
    break;
  }
  case TOOL_ARG_ENUM:
    rc = args_choice(o->name, o->noun, o->choices, value, o->index, err);
    if (rc == 0 && o->to.text != NULL) *o->to.text = value;
    break;
  }
  if (rc != 0) return rc;
  return args_check(o->check, o->check_user, o->name, value, err);
}

static const char *args_help_hint(const tool_cmdline *cl, char *buf, size_t size) {
  if (cl->help != NULL) return cl->help;
  if (cl->command == NULL) {
    snprintf(buf, size, "%s --help", cl->program);
    return buf;
  }
  size_t word = strcspn(cl->command, " ");
  snprintf(buf, size, "%s help %.*s", cl->program, (int)word, cl->command);
  return buf;
}

static int args_unknown(args_state *st, const char *arg, size_t len) {
  char hint[128];
  const tool_cmdline *cl = st->cl;
  if (cl->command == NULL)
    return args_fail(st->err, TOOL_ARG_ERR_UNKNOWN, "unknown option '%.*s' (see %s)", (int)len,
                     arg, args_help_hint(cl, hint, sizeof hint));
  return args_fail(st->err, TOOL_ARG_ERR_UNKNOWN, "%s: unknown option '%.*s' (see %s)",
                   cl->command, (int)len, arg, args_help_hint(cl, hint, sizeof hint));
}

/* The next argument is the value unless it is missing or another option. */
static int args_takes_next(int argc, char **argv, int i) {
  if (i + 1 >= argc) return 0;
  const char *next = argv[i + 1];
  return !(next[0] == '-' && next[1] == '-' && next[2] != '\0');
}

static int args_no_value(args_state *st, const tool_arg *o) {
  if (o->example != NULL)
    return args_fail(st->err, TOOL_ARG_ERR_NO_VALUE, "%s needs a value (e.g. %s)", o->name,
                     o->example);
  return args_fail(st->err, TOOL_ARG_ERR_NO_VALUE, "%s needs a value", o->name);
}

/* argv[*i] starts with '-': an option, perhaps with its value. */
static int args_option(args_state *st, int argc, char **argv, int *i) {
  const char *arg = argv[*i];
  const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
  size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
  int index = args_find_option(st->cl->options, arg, len);
  if (index < 0) return args_unknown(st, arg, len);
  const tool_arg *o = &st->cl->options[index];
  const char *value = NULL;
  if (o->type == TOOL_ARG_FLAG) {
    if (eq != NULL)
      return args_fail(st->err, TOOL_ARG_ERR_FLAG_VALUE, "%s takes no value", o->name);
  } else if (eq != NULL) {
    value = eq + 1;
  } else if (args_takes_next(argc, argv, *i)) {
    value = argv[++*i];
  }
  if (o->type != TOOL_ARG_FLAG && (value == NULL || value[0] == '\0')) return args_no_value(st, o);
  int rc = args_count_use(st, index, value != NULL ? value : o->name);
  return rc != 0 ? rc : args_store(st, index, value);
}

/* ---- positional arguments ----------------------------------------------------- */

static int args_positional(args_state *st, const char *arg) {
  const tool_pos *p = st->cl->positionals;
  int n = 0;
  while (p != NULL && p[n].name != NULL) n++;
  if (st->n_positionals >= n) {
    const char *who = st->cl->command;
    if (st->n_positionals == 0) {
      const char *only = args_option_count(st->cl->options) > 0 ? ", only options" : "";
      return who != NULL ? args_fail(st->err, TOOL_ARG_ERR_EXTRA, "%s: unexpected argument '%s' "
                                     "(it takes no arguments%s)", who, arg, only)
                         : args_fail(st->err, TOOL_ARG_ERR_EXTRA, "unexpected argument '%s'", arg);
    }
    const char *last = p[n - 1].name;
    return who != NULL ? args_fail(st->err, TOOL_ARG_ERR_EXTRA, "%s: unexpected argument '%s' "
                                   "after %s '%s'", who, arg, last, st->last_positional)
                       : args_fail(st->err, TOOL_ARG_ERR_EXTRA, "unexpected argument '%s' after "
                                   "%s '%s'", arg, last, st->last_positional);
  }
  const tool_pos *slot = &p[st->n_positionals++];
  st->last_positional = arg;
  if (slot->choices != NULL) {
    char what[128];
    snprintf(what, sizeof what, "%s", st->cl->command != NULL ? st->cl->command : slot->name);
    int rc = args_choice(what, slot->noun, slot->choices, arg, slot->index, st->err);
    if (rc != 0) return rc;
  }
  if (slot->to != NULL) *slot->to = arg;
  return args_check(slot->check, slot->check_user, slot->name, arg, st->err);
}

static int args_missing_positionals(args_state *st) {
  const tool_pos *p = st->cl->positionals;
  for (int i = st->n_positionals; p != NULL && p[i].name != NULL; i++) {
    if (!p[i].required) continue;
    const char *hint = p[i].hint != NULL ? p[i].hint : "";
    if (st->cl->command == NULL)
      return args_fail(st->err, TOOL_ARG_ERR_MISSING, "missing %s%s", p[i].name, hint);
    return args_fail(st->err, TOOL_ARG_ERR_MISSING, "%s: missing %s%s", st->cl->command,
                     p[i].name, hint);
  }
  return 0;
}

/* ---- the walk ----------------------------------------------------------------- */

static int args_is_help(const char *arg) {
  return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int args_walk(args_state *st, int argc, char **argv) {
  int options_done = 0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    int rc = 0;
    if (!options_done && args_is_help(arg)) {
      if (st->cl->help_given != NULL) *st->cl->help_given = 1;
      if (st->cl->usage == NULL) continue;
      fputs(st->cl->usage, stdout);
      return TOOL_ARGS_HELP;
    }
    if (!options_done && strcmp(arg, "--") == 0) options_done = 1;
    else if (!options_done && arg[0] == '-' && arg[1] != '\0') rc = args_option(st, argc, argv, &i);
    else rc = args_positional(st, arg);
    if (rc != 0) return rc;
  }
  return args_missing_positionals(st);
}

int tool_args_parse(const tool_cmdline *cl, int argc, char **argv) {
  tool_arg_error local;
  args_state st;
  memset(&st, 0, sizeof st);
  st.cl = cl;
  st.err = cl->error != NULL ? cl->error : &local;
  memset(st.err, 0, sizeof *st.err);
  if (args_option_count(cl->options) > TOOL_ARGS_MAX_OPTIONS) {
    args_fail(st.err, TOOL_ARG_ERR_UNKNOWN, "internal: %s has more than %d options",
              cl->command != NULL ? cl->command : cl->program, TOOL_ARGS_MAX_OPTIONS);
    if (!cl->silent) tool_args_print_error(cl->program, st.err);
    return TOOL_ARGS_USAGE;
  }
  int rc = args_walk(&st, argc, argv);
  if (rc == TOOL_ARGS_USAGE && !cl->silent) tool_args_print_error(cl->program, st.err);
  return rc;
}

int tool_args_first_positional(const tool_cmdline *cl, int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) return i + 1 < argc ? i + 1 : 0;
    if (arg[0] != '-' || arg[1] == '\0') return i;
    if (args_is_help(arg)) continue;
    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    int index = args_find_option(cl->options, arg, len);
    if (index >= 0 && cl->options[index].type != TOOL_ARG_FLAG && eq == NULL &&
        args_takes_next(argc, argv, i))
      i++;
  }
  return 0;
}
