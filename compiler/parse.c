/* The text form of tensor expressions, read back: the language mfx_print_te
 * writes, so new kernels can be described without writing C.
 *
 *   # comment
 *   placeholder X: f32[64, 32]
 *   compute Y: f32[64, 16] (i, j) = sum(k < 32: X[i, k] * W[j, k])
 *
 * A statement ends at a newline outside brackets. Expressions have C
 * precedence; functions: min max select popcount abs sqrt exp log tanh erf
 * round (to nearest, ties to even), and
 * casts written as a dtype applied to an expression (i32(x)). The inputs
 * are the placeholders in order; the outputs are the computes no other
 * compute reads. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "mfx/compiler.h"

typedef enum { TOK_END, TOK_NEWLINE, TOK_NAME, TOK_INT, TOK_FLOAT, TOK_PUNCT } tok_kind;

typedef struct {
  tok_kind kind;
  char text[64];
  int64_t i;
  double f;
  int line, col;
} token;

#define MAX_TENSORS 64
#define MAX_NAME 63 /* characters in a name */

typedef struct {
  mfx_arena *a;
  const char *src, *p, *file;
  int line, col, depth;
  int nest;       /* parse_expr / parse_unary calls open now */
  int last_depth; /* levels of the expression parsed last */
  token tok;
  mfx_status status;
  int n_tensors;
  mfx_tensor *tensors[MAX_TENSORS];
  /* The compute being parsed: its axes and reduction axes by name. */
  mfx_tensor *cur;
  int n_red;
  mfx_var *red[MFX_MAX_DIMS];
} parser;

/* ---- errors --------------------------------------------------------------------- */

/* An error at token `at` (fmt has one %s for detail). */
static mfx_status parse_error_at(parser *ps, const token *at, const char *fmt, const char *detail) {
  if (ps->status != MFX_OK) return ps->status;
  char msg[512];
  snprintf(msg, sizeof msg, fmt, detail);
  ps->status = mfx_fail(MFX_ERR_INVALID, "%s:%d:%d: %s", ps->file, at->line, at->col, msg);
  return ps->status;
}

static mfx_status parse_error(parser *ps, const char *fmt, const char *detail) {
  return parse_error_at(ps, &ps->tok, fmt, detail);
}

static const char *tok_describe(const token *t) {
  static _Thread_local char buf[96];
  switch (t->kind) {
  case TOK_END: return "end of input";
  case TOK_NEWLINE: return "end of line";
  default: snprintf(buf, sizeof buf, "'%s'", t->text); return buf;
  }
}

/* ---- tokens ------------------------------------------------------------------------ */

static void advance_char(parser *ps) {
  if (*ps->p == '\n') {
    ps->line++;
    ps->col = 1;
  } else {
    ps->col++;
  }
  ps->p++;
}

static void skip_blank(parser *ps) {
  for (;;) {
    if (*ps->p == '#') {
      while (*ps->p && *ps->p != '\n') advance_char(ps);
    } else if (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || (*ps->p == '\n' && ps->depth > 0)) {
      advance_char(ps);
    } else {
      return;
    }
  }
}

/* A literal that does not fit: an error, and the token ends the input. */
static void literal_out_of_range(parser *ps, token *t, const char *start, const char *end,
                                 const char *what) {
  char msg[160];
  size_t n = (size_t)(end - start);
  snprintf(msg, sizeof msg, "%s literal %.*s%s is out of range (%s)", t->kind == TOK_INT ? "integer" : "float",
           (int)(n < 40 ? n : 40), start, n > 40 ? "..." : "", what);
  parse_error_at(ps, t, "%s", msg);
  t->kind = TOK_END;
}

static void lex_number(parser *ps, token *t) {
  const char *start = ps->p;
  char *end;
  errno = 0;
  t->i = strtoll(start, &end, 10);
  t->kind = TOK_INT;
  int int_range = errno == ERANGE;
  if (*end == '.' || *end == 'e' || *end == 'E') {
    t->f = strtod(start, &end);
    t->kind = TOK_FLOAT;
  }
  if (t->kind == TOK_INT && int_range) {
    literal_out_of_range(ps, t, start, end, "integers are int64");
    return;
  }
  if (t->kind == TOK_FLOAT && !(fabs(t->f) <= FLT_MAX)) {
    literal_out_of_range(ps, t, start, end, "constants are f32, at most about 3.4e38");
    return;
  }
  if (*end == 'f' && (t->kind == TOK_FLOAT || !isalnum((unsigned char)end[1]))) {
    if (t->kind == TOK_INT) t->f = (double)t->i;
    t->kind = TOK_FLOAT;
    end++;
  }
  size_t n = (size_t)(end - start);
  snprintf(t->text, sizeof t->text, "%.*s", (int)(n < 63 ? n : 63), start);
  while (ps->p < end) advance_char(ps);
}

static const char *const PUNCT2[] = {"<<", ">>", "<=", ">=", "==", "!=", "&&", "||"};

static void next(parser *ps) {
  skip_blank(ps);
  token *t = &ps->tok;
  memset(t, 0, sizeof *t);
  t->line = ps->line;
  t->col = ps->col;
  char c = *ps->p;
  if (!c) {
    t->kind = TOK_END;
  } else if (c == '\n') {
    t->kind = TOK_NEWLINE;
    advance_char(ps);
  } else if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)ps->p[1]))) {
    lex_number(ps, t);
  } else if (isalpha((unsigned char)c) || c == '_') {
    int n = 0;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_' || *ps->p == '.') {
      if (n < MAX_NAME) t->text[n] = *ps->p;
      n++;
      advance_char(ps);
    }
    t->kind = TOK_NAME;
    if (n > MAX_NAME) {
      char msg[160];
      snprintf(msg, sizeof msg, "name '%.20s...' is %d characters long (at most %d)", t->text, n,
               MAX_NAME);
      parse_error_at(ps, t, "%s", msg);
      t->kind = TOK_END;
    }
  } else {
    t->kind = TOK_PUNCT;
    t->text[0] = c;
    for (size_t i = 0; i < sizeof PUNCT2 / sizeof PUNCT2[0]; i++)
      if (c == PUNCT2[i][0] && ps->p[1] == PUNCT2[i][1]) {
        t->text[1] = ps->p[1];
        advance_char(ps);
        break;
      }
    advance_char(ps);
    if (c == '(' || c == '[') ps->depth++;
    if ((c == ')' || c == ']') && ps->depth > 0) ps->depth--;
  }
}

static int is_punct(const parser *ps, const char *p) {
  return ps->tok.kind == TOK_PUNCT && strcmp(ps->tok.text, p) == 0;
}

static int is_name(const parser *ps, const char *n) {
  return ps->tok.kind == TOK_NAME && strcmp(ps->tok.text, n) == 0;
}

static int expect_punct(parser *ps, const char *p) {
  if (ps->status != MFX_OK) return 0;
  if (!is_punct(ps, p)) {
    char what[160];
    snprintf(what, sizeof what, "expected '%s', got %s", p, tok_describe(&ps->tok));
    parse_error(ps, "%s", what);
    return 0;
  }
  next(ps);
  return 1;
}

static int expect_name(parser *ps, const char *what, char *out) {
  if (ps->status != MFX_OK) return 0;
  if (ps->tok.kind != TOK_NAME) {
    char msg[160];
    snprintf(msg, sizeof msg, "expected %s, got %s", what, tok_describe(&ps->tok));
    parse_error(ps, "%s", msg);
    return 0;
  }
  strcpy(out, ps->tok.text);
  next(ps);
  return 1;
}

static int expect_int(parser *ps, const char *what, int64_t *out) {
  if (ps->status != MFX_OK) return 0;
  if (ps->tok.kind != TOK_INT) {
    char msg[160];
    snprintf(msg, sizeof msg, "expected %s, got %s", what, tok_describe(&ps->tok));
    parse_error(ps, "%s", msg);
    return 0;
  }
  *out = ps->tok.i;
  next(ps);
  return 1;
}

/* ---- names ---------------------------------------------------------------------------- */

static mfx_tensor *find_tensor(parser *ps, const char *name) {
  for (int i = 0; i < ps->n_tensors; i++)
    if (strcmp(ps->tensors[i]->buf->name, name) == 0) return ps->tensors[i];
  return NULL;
}

static mfx_var *find_axis(parser *ps, const char *name) {
  for (int i = 0; ps->cur && i < ps->cur->n_axes; i++)
    if (strcmp(ps->cur->axes[i]->name, name) == 0) return ps->cur->axes[i];
  for (int i = 0; i < ps->n_red; i++)
    if (strcmp(ps->red[i]->name, name) == 0) return ps->red[i];
  return NULL;
}

static int dtype_of(const char *name, mfx_dtype *t) {
  return mfx_dtype_from_name(name, t) == 0 && *t != MFX_BOOL;
}

/* ---- expressions -------------------------------------------------------------------- */

static mfx_expr *parse_expr(parser *ps);

/* A builder returned NULL: keep its message, add where. */
static mfx_expr *checked(parser *ps, mfx_expr *e) {
  if (!e && ps->status == MFX_OK) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", mfx_last_error());
    parse_error(ps, "%s", msg);
  }
  return e;
}

/* A check of e failed (rc): its message, at token `at`. */
static mfx_expr *refused_at(parser *ps, const token *at, mfx_status rc, mfx_expr *e) {
  if (rc == MFX_OK || !e) return e;
  char msg[400];
  snprintf(msg, sizeof msg, "%s", mfx_last_error());
  parse_error_at(ps, at, "%s", msg);
  return NULL;
}

/* e was built `depth` levels deep: remember that, refuse it past the limit
 * (the compiler's walkers recurse; a long a + b + c chain is deep too). */
static mfx_expr *built(parser *ps, mfx_expr *e, int depth, const token *at) {
  ps->last_depth = depth;
  if (!e || depth <= MFX_MAX_EXPR_DEPTH) return e;
  char msg[160];
  snprintf(msg, sizeof msg, "expression more than %d levels deep (the limit; split it into "
           "several computes)", MFX_MAX_EXPR_DEPTH);
  parse_error_at(ps, at, "%s", msg);
  return NULL;
}

/* Entering one more parse_expr or parse_unary: refuse to nest past the limit
 * (the parser itself recurses). Pair with leave(). */
static int enter(parser *ps) {
  if (++ps->nest <= MFX_MAX_EXPR_DEPTH) return 1;
  char msg[160];
  snprintf(msg, sizeof msg, "expression nested more than %d levels deep (the limit)",
           MFX_MAX_EXPR_DEPTH);
  parse_error(ps, "%s", msg);
  return 0;
}

static mfx_expr *leave(parser *ps, mfx_expr *e) {
  ps->nest--;
  return e;
}

/* Arguments in parentheses; ps->last_depth is the deepest one's. */
static int parse_args(parser *ps, mfx_expr **args, int max) {
  int n = 0, deepest = 0;
  if (!expect_punct(ps, "(")) return -1;
  do {
    if (n == max) {
      parse_error(ps, "%s", "too many arguments");
      return -1;
    }
    args[n] = parse_expr(ps);
    if (!args[n]) return -1;
    if (ps->last_depth > deepest) deepest = ps->last_depth;
    n++;
  } while (is_punct(ps, ",") && (next(ps), 1));
  ps->last_depth = deepest;
  return expect_punct(ps, ")") ? n : -1;
}

/* Parse exactly `want` arguments of `name`. */
#define MAX_ARGS 8

static int parse_arity(parser *ps, mfx_expr **args, int want, const char *name) {
  mfx_expr *got[MAX_ARGS];
  int n = parse_args(ps, got, MAX_ARGS);
  if (n < 0) return 0;
  for (int i = 0; i < n && i < want; i++) args[i] = got[i];
  if (n == want) return 1;
  char msg[96];
  snprintf(msg, sizeof msg, "%s takes %d argument%s, got %d", name, want, want == 1 ? "" : "s", n);
  parse_error(ps, "%s", msg);
  return 0;
}

static mfx_expr *parse_cast(parser *ps, mfx_dtype t, const token *at) {
  mfx_expr *arg[1];
  if (!parse_arity(ps, arg, 1, mfx_dtype_name(t))) return NULL;
  int depth = ps->last_depth + 1;
  if (arg[0]->kind == MFX_EXPR_INT && !mfx_dtype_is_float(t))
    return built(ps, mfx_int(ps->a, t, arg[0]->u.i), depth, at);
  return built(ps, checked(ps, mfx_cast(ps->a, t, arg[0])), depth, at);
}

static const struct { const char *name; mfx_unary_op op; } UNARY_FUNCS[] = {
    {"popcount", MFX_POPCOUNT}, {"abs", MFX_ABS}, {"sqrt", MFX_SQRT},
    {"exp", MFX_EXP},           {"log", MFX_LOG}, {"tanh", MFX_TANH},
    {"erf", MFX_ERF},           {"round", MFX_ROUND}, {"rsqrt", MFX_RSQRT}};

static mfx_expr *parse_call(parser *ps, const char *name, const token *at) {
  mfx_expr *args[3];
  mfx_dtype t;
  if (dtype_of(name, &t)) return parse_cast(ps, t, at);
  for (size_t i = 0; i < sizeof UNARY_FUNCS / sizeof UNARY_FUNCS[0]; i++)
    if (strcmp(name, UNARY_FUNCS[i].name) == 0) {
      if (!parse_arity(ps, args, 1, name)) return NULL;
      return built(ps, checked(ps, mfx_unary(ps->a, UNARY_FUNCS[i].op, args[0])),
                   ps->last_depth + 1, at);
    }
  if (strcmp(name, "min") == 0 || strcmp(name, "max") == 0) {
    if (!parse_arity(ps, args, 2, name)) return NULL;
    mfx_binary_op op = name[1] == 'i' ? MFX_MIN : MFX_MAX;
    return built(ps, checked(ps, mfx_binary(ps->a, op, args[0], args[1])), ps->last_depth + 1, at);
  }
  if (strcmp(name, "select") == 0) {
    if (!parse_arity(ps, args, 3, name)) return NULL;
    return built(ps, checked(ps, mfx_select(ps->a, args[0], args[1], args[2])),
                 ps->last_depth + 1, at);
  }
  parse_error(ps, "unknown function '%s'", name);
  return NULL; /* reported at the '(' after the name */
}

/* t[indices]; refused, at the tensor's name, when an index can leave t. */
static mfx_expr *parse_load(parser *ps, mfx_tensor *t, const token *at) {
  mfx_expr *idx[MFX_MAX_DIMS];
  int n = 0, deepest = 0;
  next(ps); /* [ */
  do {
    if (n == MFX_MAX_DIMS) {
      parse_error(ps, "%s", "too many indices");
      return NULL;
    }
    if (!(idx[n++] = parse_expr(ps))) return NULL;
    if (ps->last_depth > deepest) deepest = ps->last_depth;
  } while (is_punct(ps, ",") && (next(ps), 1));
  if (!expect_punct(ps, "]")) return NULL;
  mfx_expr *e = built(ps, checked(ps, mfx_tensor_load(ps->a, t, n, idx)), deepest + 1, at);
  return e ? refused_at(ps, at, mfx_check_load(e), e) : NULL;
}

static mfx_expr *parse_name(parser *ps) {
  char name[64];
  token at = ps->tok;
  strcpy(name, ps->tok.text);
  next(ps);
  ps->last_depth = 1;
  if (is_punct(ps, "(")) return parse_call(ps, name, &at);
  if (strcmp(name, "true") == 0 || strcmp(name, "false") == 0) return mfx_int(ps->a, MFX_BOOL, name[0] == 't');
  if (strcmp(name, "inf") == 0) return mfx_f32(ps->a, 1.0 / 0.0);
  mfx_tensor *t = find_tensor(ps, name);
  if (t) {
    if (!is_punct(ps, "[")) {
      parse_error_at(ps, &at, "tensor '%s' needs indices", name);
      return NULL;
    }
    return parse_load(ps, t, &at);
  }
  mfx_var *v = find_axis(ps, name);
  if (v) return mfx_var_ref(ps->a, v);
  parse_error_at(ps, &at, "unknown name '%s' (not a tensor, an axis of this compute, or a function)",
                 name);
  return NULL;
}

static mfx_expr *parse_primary(parser *ps) {
  if (ps->status != MFX_OK) return NULL;
  token t = ps->tok;
  ps->last_depth = 1;
  if (t.kind == TOK_INT) {
    next(ps);
    return mfx_i64(ps->a, t.i);
  }
  if (t.kind == TOK_FLOAT) {
    next(ps);
    return mfx_f32(ps->a, t.f);
  }
  if (t.kind == TOK_NAME) return parse_name(ps);
  if (is_punct(ps, "(")) {
    next(ps);
    mfx_expr *e = parse_expr(ps);
    return expect_punct(ps, ")") ? e : NULL;
  }
  parse_error(ps, "expected an expression, got %s", tok_describe(&t));
  return NULL;
}

static mfx_expr *parse_unary(parser *ps) {
  if (is_punct(ps, "-") || is_punct(ps, "~") || is_punct(ps, "!")) {
    token at = ps->tok;
    char op = ps->tok.text[0];
    if (!enter(ps)) return leave(ps, NULL);
    next(ps);
    mfx_expr *x = parse_unary(ps);
    if (!x) return leave(ps, NULL);
    if (op == '-' && x->kind == MFX_EXPR_INT) return leave(ps, mfx_int(ps->a, x->type, -x->u.i));
    if (op == '-' && x->kind == MFX_EXPR_FLOAT) return leave(ps, mfx_f32(ps->a, -x->u.f));
    mfx_expr *e = checked(ps, mfx_unary(ps->a, op == '-' ? MFX_NEG : MFX_NOT, x));
    return leave(ps, built(ps, e, ps->last_depth + 1, &at));
  }
  return parse_primary(ps);
}

/* Binary operators by precedence level, loosest first. */
static const struct { const char *text; mfx_binary_op op; int level; } BINARY[] = {
    {"||", MFX_LOR, 0}, {"&&", MFX_LAND, 1}, {"|", MFX_OR, 2},  {"^", MFX_XOR, 3},
    {"&", MFX_AND, 4},  {"==", MFX_EQ, 5},   {"!=", MFX_NE, 5}, {"<", MFX_LT, 6},
    {"<=", MFX_LE, 6},  {">", MFX_GT, 6},    {">=", MFX_GE, 6}, {"<<", MFX_SHL, 7},
    {">>", MFX_SHR, 7}, {"+", MFX_ADD, 8},   {"-", MFX_SUB, 8}, {"*", MFX_MUL, 9},
    {"/", MFX_DIV, 9},  {"%", MFX_MOD, 9}};
#define TOP_LEVEL 9

static int binary_at(const parser *ps, int level, mfx_binary_op *op) {
  if (ps->tok.kind != TOK_PUNCT) return 0;
  for (size_t i = 0; i < sizeof BINARY / sizeof BINARY[0]; i++)
    if (BINARY[i].level == level && strcmp(ps->tok.text, BINARY[i].text) == 0) {
      *op = BINARY[i].op;
      return 1;
    }
  return 0;
}

/* x op y op ...: left-associative, so each operator adds a level to the
 * tree; integer division or modulo refused (at the operator) unless the
 * divisor is provably nonzero. */
static mfx_expr *parse_level(parser *ps, int level) {
  if (level > TOP_LEVEL) return parse_unary(ps);
  mfx_expr *x = parse_level(ps, level + 1);
  int dx = ps->last_depth;
  mfx_binary_op op;
  while (x && binary_at(ps, level, &op)) {
    token at = ps->tok;
    next(ps);
    mfx_expr *y = parse_level(ps, level + 1);
    if (!y) return NULL;
    int d = (dx > ps->last_depth ? dx : ps->last_depth) + 1;
    x = built(ps, checked(ps, mfx_binary(ps->a, op, x, y)), d, &at);
    if (x) x = refused_at(ps, &at, mfx_check_division(x), x);
    dx = d;
  }
  ps->last_depth = dx;
  return x;
}

static mfx_expr *parse_expr(parser *ps) {
  if (ps->status != MFX_OK) return NULL;
  if (!enter(ps)) return leave(ps, NULL);
  return leave(ps, parse_level(ps, 0));
}

/* ---- statements ----------------------------------------------------------------------- */

static const struct { const char *name; mfx_reduce_op op; } REDUCERS[] = {
    {"sum", MFX_REDUCE_SUM}, {"max", MFX_REDUCE_MAX}, {"min", MFX_REDUCE_MIN}, {"or", MFX_REDUCE_OR}};

/* sum(k < 32, l < 4: expr): a reducer name, '(' and then NAME '<'. */
static int reducer_ahead(parser *ps, mfx_reduce_op *op) {
  if (ps->tok.kind != TOK_NAME) return 0;
  for (size_t i = 0; i < sizeof REDUCERS / sizeof REDUCERS[0]; i++) {
    if (strcmp(ps->tok.text, REDUCERS[i].name) != 0) continue;
    const char *q = ps->p;
    while (*q == ' ' || *q == '\t') q++;
    if (*q != '(') return 0;
    q++;
    while (isspace((unsigned char)*q)) q++;
    while (isalnum((unsigned char)*q) || *q == '_' || *q == '.') q++;
    while (*q == ' ' || *q == '\t') q++;
    if (*q != '<' || q[1] == '<' || q[1] == '=') return 0;
    *op = REDUCERS[i].op;
    return 1;
  }
  return 0;
}

static mfx_expr *parse_reduction(parser *ps, mfx_reduce_op op) {
  token at = ps->tok;
  next(ps); /* reducer */
  expect_punct(ps, "(");
  do {
    char name[64];
    int64_t extent;
    if (!expect_name(ps, "a reduction axis", name) || !expect_punct(ps, "<") ||
        !expect_int(ps, "the reduction extent", &extent))
      return NULL;
    if (extent < 1) {
      parse_error(ps, "reduction axis %s must have a positive extent", name);
      return NULL;
    }
    if (find_axis(ps, name)) {
      parse_error(ps, "axis '%s' is defined twice", name);
      return NULL;
    }
    if (ps->n_red == MFX_MAX_DIMS) {
      parse_error(ps, "%s", "too many reduction axes");
      return NULL;
    }
    ps->red[ps->n_red++] = mfx_var_create(ps->a, name, extent, 1);
  } while (is_punct(ps, ",") && (next(ps), 1));
  if (!expect_punct(ps, ":")) return NULL;
  mfx_expr *src = parse_expr(ps);
  int depth = ps->last_depth + 1;
  if (!src || !expect_punct(ps, ")")) return NULL;
  return built(ps, checked(ps, mfx_reduce(ps->a, op, ps->n_red, ps->red, src)), depth, &at);
}

/* NAME ':' dtype '[' dims ']' */
static int parse_decl(parser *ps, char *name, mfx_dtype *t, int *ndim, int64_t *shape) {
  char type[64];
  token at = ps->tok;
  if (!expect_name(ps, "a tensor name", name)) return 0;
  if (find_tensor(ps, name)) {
    parse_error_at(ps, &at, "tensor '%s' is defined twice", name);
    return 0;
  }
  if (!expect_punct(ps, ":")) return 0;
  at = ps->tok;
  if (!expect_name(ps, "a dtype", type)) return 0;
  if (!dtype_of(type, t)) {
    parse_error_at(ps, &at, "unknown dtype '%s' (expected i8 i16 i32 i64 u8 u32 u64 f32)", type);
    return 0;
  }
  if (!expect_punct(ps, "[")) return 0;
  *ndim = 0;
  do {
    if (*ndim == MFX_MAX_DIMS) {
      parse_error(ps, "%s", "too many dimensions");
      return 0;
    }
    if (!expect_int(ps, "a dimension", &shape[*ndim])) return 0;
    if (shape[*ndim] < 1) {
      parse_error(ps, "%s", "dimensions must be positive");
      return 0;
    }
    (*ndim)++;
  } while (is_punct(ps, ",") && (next(ps), 1));
  return expect_punct(ps, "]");
}

static void add_tensor(parser *ps, mfx_tensor *t) {
  if (ps->n_tensors == MAX_TENSORS) {
    parse_error(ps, "%s", "too many tensors");
    return;
  }
  ps->tensors[ps->n_tensors++] = t;
}

static void parse_placeholder(parser *ps) {
  char name[64];
  mfx_dtype t;
  int ndim;
  int64_t shape[MFX_MAX_DIMS];
  next(ps);
  if (!parse_decl(ps, name, &t, &ndim, shape)) return;
  mfx_tensor *x = mfx_placeholder(ps->a, name, t, ndim, shape); /* checks the size */
  if (x) add_tensor(ps, x);
  else checked(ps, NULL);
}

static void parse_compute(parser *ps) {
  char name[64], axes[MFX_MAX_DIMS][64];
  const char *axis_names[MFX_MAX_DIMS];
  mfx_dtype t;
  int ndim, n_axes = 0;
  int64_t shape[MFX_MAX_DIMS];
  next(ps);
  if (!parse_decl(ps, name, &t, &ndim, shape) || !expect_punct(ps, "(")) return;
  do {
    if (n_axes == ndim) {
      parse_error(ps, "compute %s: more axes than dimensions", name);
      return;
    }
    token at = ps->tok;
    if (!expect_name(ps, "an axis name", axes[n_axes])) return;
    for (int i = 0; i < n_axes; i++)
      if (strcmp(axes[i], axes[n_axes]) == 0) {
        parse_error_at(ps, &at, "axis '%.63s' is defined twice", axes[i]);
        return;
      }
    axis_names[n_axes] = axes[n_axes];
    n_axes++;
  } while (is_punct(ps, ",") && (next(ps), 1));
  if (!expect_punct(ps, ")")) return;
  if (n_axes != ndim) {
    parse_error(ps, "compute %s: fewer axes than dimensions", name);
    return;
  }
  if (!expect_punct(ps, "=")) return;
  ps->cur = mfx_compute_begin(ps->a, name, t, ndim, shape, axis_names);
  if (!ps->cur) {
    checked(ps, NULL);
    return;
  }
  ps->n_red = 0;
  mfx_reduce_op op;
  mfx_expr *body = reducer_ahead(ps, &op) ? parse_reduction(ps, op) : parse_expr(ps);
  if (body && mfx_compute_set_body(ps->a, ps->cur, body) != MFX_OK) checked(ps, NULL);
  if (ps->status == MFX_OK) add_tensor(ps, ps->cur);
  ps->cur = NULL;
}

static void parse_statement(parser *ps) {
  if (is_name(ps, "placeholder")) parse_placeholder(ps);
  else if (is_name(ps, "compute")) parse_compute(ps);
  else parse_error(ps, "expected 'placeholder' or 'compute', got %s", tok_describe(&ps->tok));
  if (ps->status == MFX_OK && ps->tok.kind != TOK_NEWLINE && ps->tok.kind != TOK_END)
    parse_error(ps, "unexpected %s after the statement", tok_describe(&ps->tok));
}

/* ---- the program -------------------------------------------------------------------- */

static int is_read(const parser *ps, const mfx_tensor *t) {
  for (int i = 0; i < ps->n_tensors; i++)
    for (int j = 0; j < ps->tensors[i]->n_inputs; j++)
      if (ps->tensors[i]->inputs[j] == t) return 1;
  return 0;
}

static mfx_status make_schedule(parser *ps, mfx_schedule **out) {
  mfx_tensor *in[MAX_TENSORS], *outs[MAX_TENSORS];
  int n_in = 0, n_out = 0;
  for (int i = 0; i < ps->n_tensors; i++) {
    mfx_tensor *t = ps->tensors[i];
    if (t->is_placeholder) in[n_in++] = t;
    else if (!is_read(ps, t)) outs[n_out++] = t;
  }
  if (n_out == 0)
    return mfx_fail(MFX_ERR_INVALID, "%s: no compute statement (nothing to compute)", ps->file);
  return mfx_sched_create(ps->a, n_in, in, n_out, outs, out);
}

mfx_status mfx_te_parse(mfx_arena *a, const char *text, const char *file, mfx_schedule **out) {
  parser ps = {.a = a, .src = text, .p = text, .file = file ? file : "<text>", .line = 1, .col = 1};
  *out = NULL;
  next(&ps);
  while (ps.status == MFX_OK && ps.tok.kind != TOK_END) {
    if (ps.tok.kind == TOK_NEWLINE) {
      next(&ps);
      continue;
    }
    parse_statement(&ps);
  }
  if (ps.status != MFX_OK) return ps.status;
  return make_schedule(&ps, out);
}
