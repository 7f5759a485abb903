/* The command-line parser the mfx subcommands and mfx-runner share
 * (tools/mfx_argparse.c), and tool_parse_args built on it (tools/mfx_args.c):
 * every error kind with its message and exit status 2, every value type at
 * and past its bounds, repeated options, positional arguments and their
 * choices, --help, "--" and "-", the program-level form mfx-runner uses, and
 * finding the subcommand word (mfx db). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mfx_argparse.h"
#include "mfx_cli.h"
#include "check_main.h"

/* ---- a command shaped like mfx run, with one option of every type ----------- */

typedef struct {
  const char *op, *file;
  const char *dims, *emit, *path, *pass;
  const char *ins[3];
  int n_in, emit_index, check, threads, help;
  int64_t big;
  uint64_t seed;
  double tol, ratio;
  tool_arg_error err;
} fixture;

static const char *const emit_formats[] = {"ll", "asm", "obj", NULL};

static int check_pass(void *user, const char *name, const char *value, char *why, size_t size) {
  fixture *f = user;
  if (strcmp(value, "simplify") == 0 || strcmp(value, "vectorize") == 0) {
    f->pass = value;
    return 0;
  }
  snprintf(why, size, "%s: no such pass '%s' (see mfx lower --passes)", name, value);
  return 1;
}

static const char usage[] = "usage: mfx t OP [FILE] [options]\n";

static int parse_as(fixture *f, const char *program, const char *command, const char *const *args) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)(command != NULL ? command : program);
  for (int i = 0; args[i] != NULL; i++) argv[argc++] = (char *)args[i];
  argv[argc] = NULL;
  const tool_arg options[] = {
      {.name = "--dims", .type = TOOL_ARG_TEXT, .to.text = &f->dims,
       .example = "--dims M=64,N=64,K=64"},
      {.name = "--check", .type = TOOL_ARG_FLAG, .to.flag = &f->check},
      {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &f->threads, .min = 1, .max = 1024},
      {.name = "--big", .type = TOOL_ARG_INT64, .to.i64 = &f->big, .min = -5,
       .max = INT64_MAX},
      {.name = "--seed", .type = TOOL_ARG_UINT64, .to.u64 = &f->seed},
      {.name = "--tol", .type = TOOL_ARG_FLOAT, .to.f64 = &f->tol, .lo = 0.0, .hi = 1.0,
       .hi_open = 1},
      {.name = "--ratio", .type = TOOL_ARG_FLOAT, .to.f64 = &f->ratio, .lo = -2.0, .hi = 2.0},
      {.name = "--emit", .type = TOOL_ARG_ENUM, .to.text = &f->emit, .index = &f->emit_index,
       .choices = emit_formats, .noun = "format"},
      {.name = "-o", .alias = "--output", .type = TOOL_ARG_PATH, .to.text = &f->path},
      {.name = "--in", .type = TOOL_ARG_TEXT, .to.text = f->ins, .max_count = 3,
       .count = &f->n_in},
      {.name = "--print-after", .type = TOOL_ARG_TEXT, .check = check_pass, .check_user = f},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "OP", .to = &f->op, .required = 1, .hint = " (see mfx ops)"},
      {.name = "FILE", .to = &f->file},
      {0},
  };
  tool_cmdline cl = {.program = program, .command = command, .usage = usage,
                     .options = options, .positionals = positionals,
                     .help_given = &f->help, .silent = 1, .error = &f->err};
  return tool_args_parse(&cl, argc, argv);
}

static int parse(fixture *f, const char *const *args) { return parse_as(f, "mfx", "t", args); }

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Each refused command line: its error kind and a piece of its message. */
typedef struct {
  const char *const *args;
  tool_arg_error_kind kind;
  const char *message;
} bad_case;

START_TEST(test_every_error_kind) {
  char long_path[5000];
  memset(long_path, 'p', sizeof long_path - 1);
  long_path[sizeof long_path - 1] = '\0';
  const bad_case cases[] = {
      {ARGS("x", "--frob"), TOOL_ARG_ERR_UNKNOWN, "t: unknown option '--frob' (see mfx help t)"},
      {ARGS("x", "--frob=3"), TOOL_ARG_ERR_UNKNOWN, "unknown option '--frob'"},
      {ARGS("x", "-q"), TOOL_ARG_ERR_UNKNOWN, "unknown option '-q'"},
      {ARGS("x", "--dim", "M=1"), TOOL_ARG_ERR_UNKNOWN, "unknown option '--dim'"},
      {ARGS("x", "-o=f"), TOOL_ARG_ERR_UNKNOWN, "unknown option '-o=f'"},
      {ARGS("x", "--dims"), TOOL_ARG_ERR_NO_VALUE,
       "--dims needs a value (e.g. --dims M=64,N=64,K=64)"},
      {ARGS("x", "--dims="), TOOL_ARG_ERR_NO_VALUE, "--dims needs a value"},
      {ARGS("x", "--dims", ""), TOOL_ARG_ERR_NO_VALUE, "--dims needs a value"},
      {ARGS("x", "--dims", "--check"), TOOL_ARG_ERR_NO_VALUE, "--dims needs a value"},
      {ARGS("x", "--threads"), TOOL_ARG_ERR_NO_VALUE, "--threads needs a value"},
      {ARGS("x", "-o"), TOOL_ARG_ERR_NO_VALUE, "-o needs a value"},
      {ARGS("x", "--check=yes"), TOOL_ARG_ERR_FLAG_VALUE, "--check takes no value"},
      {ARGS("x", "--threads", "two"), TOOL_ARG_ERR_NOT_NUMBER,
       "--threads: 'two' is not a whole number in 1..1024"},
      {ARGS("x", "--threads", "4x"), TOOL_ARG_ERR_NOT_NUMBER, "'4x' is not a whole number"},
      {ARGS("x", "--threads", "1.5"), TOOL_ARG_ERR_NOT_NUMBER, "'1.5' is not a whole number"},
      {ARGS("x", "--threads", "0x10"), TOOL_ARG_ERR_NOT_NUMBER, "'0x10' is not a whole number"},
      {ARGS("x", "--threads", "0"), TOOL_ARG_ERR_RANGE,
       "--threads: '0' is out of range; expected a whole number in 1..1024"},
      {ARGS("x", "--threads", "1025"), TOOL_ARG_ERR_RANGE, "'1025' is out of range"},
      {ARGS("x", "--threads", "-3"), TOOL_ARG_ERR_RANGE, "'-3' is out of range"},
      {ARGS("x", "--threads", "99999999999999999999"), TOOL_ARG_ERR_RANGE, "is out of range"},
      {ARGS("x", "--big", "-6"), TOOL_ARG_ERR_RANGE, "expected a whole number in -5..9223372036854775807"},
      {ARGS("x", "--big", "9223372036854775808"), TOOL_ARG_ERR_RANGE, "out of range"},
      {ARGS("x", "--seed", "-1"), TOOL_ARG_ERR_NOT_NUMBER,
       "--seed: '-1' is not a non-negative whole number"},
      {ARGS("x", "--seed", "+1"), TOOL_ARG_ERR_NOT_NUMBER, "not a non-negative whole number"},
      {ARGS("x", "--seed", "seven"), TOOL_ARG_ERR_NOT_NUMBER, "not a non-negative whole number"},
      {ARGS("x", "--seed", "18446744073709551616"), TOOL_ARG_ERR_RANGE,
       "expected a whole number in 0..18446744073709551615"},
      {ARGS("x", "--tol", "abc"), TOOL_ARG_ERR_NOT_NUMBER, "--tol: 'abc' is not a number in [0, 1)"},
      {ARGS("x", "--tol", "nan"), TOOL_ARG_ERR_NOT_NUMBER, "'nan' is not a number"},
      {ARGS("x", "--tol", "1"), TOOL_ARG_ERR_RANGE,
       "--tol: '1' is out of range; expected a number in [0, 1)"},
      {ARGS("x", "--tol", "-0.5"), TOOL_ARG_ERR_RANGE, "out of range"},
      {ARGS("x", "--tol", "1e999"), TOOL_ARG_ERR_RANGE, "'1e999' is out of range"},
      {ARGS("x", "--ratio", "inf"), TOOL_ARG_ERR_RANGE, "expected a number in [-2, 2]"},
      {ARGS("x", "--ratio", "2.0000001"), TOOL_ARG_ERR_RANGE, "out of range"},
      {ARGS("x", "--emit", "exe"), TOOL_ARG_ERR_CHOICE,
       "--emit: unknown format 'exe'; expected ll, asm or obj"},
      {ARGS("x", "--emit", "LL"), TOOL_ARG_ERR_CHOICE, "unknown format 'LL'"},
      {ARGS("x", "--print-after", "fold"), TOOL_ARG_ERR_VALUE,
       "--print-after: no such pass 'fold' (see mfx lower --passes)"},
      {ARGS("x", "-o", long_path), TOOL_ARG_ERR_VALUE, "-o: the path is 4999 bytes long"},
      {ARGS("x", "--dims", "a", "--dims", "b"), TOOL_ARG_ERR_DUPLICATE,
       "--dims given twice ('a' and 'b'); give it once"},
      {ARGS("x", "--dims=a", "--dims=a"), TOOL_ARG_ERR_DUPLICATE, "--dims given twice"},
      {ARGS("x", "--check", "--check"), TOOL_ARG_ERR_DUPLICATE, "--check given twice"},
      {ARGS("x", "--threads", "2", "--threads", "2"), TOOL_ARG_ERR_DUPLICATE, "given twice"},
      {ARGS("x", "-o", "a", "--output", "b"), TOOL_ARG_ERR_DUPLICATE, "-o given twice"},
      {ARGS("x", "--emit", "ll", "--emit", "asm"), TOOL_ARG_ERR_DUPLICATE, "--emit given twice"},
      {ARGS("x", "--in", "a", "--in", "b", "--in", "c", "--in", "d"), TOOL_ARG_ERR_TOO_MANY,
       "--in given more than 3 times"},
      {ARGS("x", "y", "z"), TOOL_ARG_ERR_EXTRA, "t: unexpected argument 'z' after FILE 'y'"},
      {ARGS("--check"), TOOL_ARG_ERR_MISSING, "t: missing OP (see mfx ops)"},
      {ARGS("--dims", "M=1"), TOOL_ARG_ERR_MISSING, "missing OP"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fixture f;
    memset(&f, 0, sizeof f);
    int rc = parse(&f, cases[i].args);
    ck_assert_msg(rc == TOOL_ARGS_USAGE, "case %zu (%s ...): status %d, expected 2", i,
                  cases[i].args[1] ? cases[i].args[1] : cases[i].args[0], rc);
    ck_assert_msg(f.err.kind == cases[i].kind, "case %zu: kind %d, expected %d (%s)", i,
                  f.err.kind, cases[i].kind, f.err.message);
    ck_assert_msg(strstr(f.err.message, cases[i].message) != NULL,
                  "case %zu: message '%s' lacks '%s'", i, f.err.message, cases[i].message);
  }
}
END_TEST

START_TEST(test_every_value_type) {
  fixture f;
  memset(&f, 0, sizeof f);
  int rc = parse(&f, ARGS("linear", "--dims", "M=8", "--check", "--threads=1024", "--big",
                          "-5", "--seed", "18446744073709551615", "--tol", "0", "--ratio",
                          "-2", "--emit", "obj", "--output", "k.mfxa", "--print-after",
                          "vectorize", "out.npy"));
  ck_assert_int_eq(rc, TOOL_ARGS_OK);
  ck_assert_int_eq(f.err.kind, TOOL_ARG_ERR_NONE);
  ck_assert_str_eq(f.op, "linear");
  ck_assert_str_eq(f.file, "out.npy");
  ck_assert_str_eq(f.dims, "M=8");
  ck_assert_int_eq(f.check, 1);
  ck_assert_int_eq(f.threads, 1024);
  ck_assert(f.big == -5);
  ck_assert(f.seed == UINT64_MAX);
  ck_assert(f.tol == 0.0);
  ck_assert(f.ratio == -2.0);
  ck_assert_str_eq(f.emit, "obj");
  ck_assert_int_eq(f.emit_index, 2);
  ck_assert_str_eq(f.path, "k.mfxa");
  ck_assert_str_eq(f.pass, "vectorize");

  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "--tol=0.999", "--ratio", "2", "--big",
                                  "9223372036854775807", "--threads", "1", "-o", "-")),
                   TOOL_ARGS_OK);
  ck_assert(f.tol == 0.999 && f.ratio == 2.0 && f.big == INT64_MAX && f.threads == 1);
  ck_assert_str_eq(f.path, "-");
  /* A value that happens to look like an option after '=' is a value. */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "--dims=--check")), TOOL_ARGS_OK);
  ck_assert_str_eq(f.dims, "--check");
  ck_assert_int_eq(f.check, 0);
  /* One dash is a value: negative numbers and "-" (stdin). */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "--ratio", "-1.5", "-")), TOOL_ARGS_OK);
  ck_assert(f.ratio == -1.5);
  ck_assert_str_eq(f.file, "-");
}
END_TEST

START_TEST(test_repeated_and_positional) {
  fixture f;
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("--in", "a", "x", "--in=b", "--in", "c")), TOOL_ARGS_OK);
  ck_assert_int_eq(f.n_in, 3);
  ck_assert_str_eq(f.ins[0], "a");
  ck_assert_str_eq(f.ins[1], "b");
  ck_assert_str_eq(f.ins[2], "c");
  ck_assert_str_eq(f.op, "x");
  ck_assert_ptr_null(f.file);
  /* "--" ends the options: what follows is positional, even "--check". */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("--check", "--", "--dims", "-o")), TOOL_ARGS_OK);
  ck_assert_str_eq(f.op, "--dims");
  ck_assert_str_eq(f.file, "-o");
  ck_assert_ptr_null(f.dims);
  ck_assert_int_eq(f.check, 1);
}
END_TEST

START_TEST(test_help) {
  fixture f;
  memset(&f, 0, sizeof f);
  /* --help wins over what is missing, and over what follows it. */
  ck_assert_int_eq(parse(&f, ARGS("--help")), TOOL_ARGS_HELP);
  ck_assert_int_eq(f.help, 1);
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "-h", "--frob")), TOOL_ARGS_HELP);
  /* An error before it is still an error. */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "--frob", "--help")), TOOL_ARGS_USAGE);
  /* After "--" it is an argument. */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse(&f, ARGS("x", "--", "--help")), TOOL_ARGS_OK);
  ck_assert_str_eq(f.file, "--help");
}
END_TEST

/* mfx-runner's form: no subcommand; messages say so. */
START_TEST(test_program_level_messages) {
  fixture f;
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse_as(&f, "mfx-runner", NULL, ARGS("a", "--frob")), TOOL_ARGS_USAGE);
  ck_assert_str_eq(f.err.message, "unknown option '--frob' (see mfx-runner --help)");
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse_as(&f, "mfx-runner", NULL, ARGS("--check")), TOOL_ARGS_USAGE);
  ck_assert_str_eq(f.err.message, "missing OP (see mfx ops)");
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse_as(&f, "mfx-runner", NULL, ARGS("a", "b", "c")), TOOL_ARGS_USAGE);
  ck_assert_str_eq(f.err.message, "unexpected argument 'c' after FILE 'b'");
  /* A two-word command points at the help of its first word. */
  memset(&f, 0, sizeof f);
  ck_assert_int_eq(parse_as(&f, "mfx", "db list", ARGS("a", "--frob")), TOOL_ARGS_USAGE);
  ck_assert_str_eq(f.err.message, "db list: unknown option '--frob' (see mfx help db)");
}
END_TEST

/* ---- positional choices and the subcommand word (mfx db, mfx cache) -------- */

static const char *const db_commands[] = {"list", "best", "plot", NULL};

START_TEST(test_positional_choices) {
  const char *command = NULL, *db = NULL;
  int index = -1, json = 0;
  tool_arg_error err;
  const tool_arg options[] = {
      {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &db},
      {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &json},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "COMMAND", .to = &command, .required = 1, .choices = db_commands,
       .index = &index, .noun = "command", .hint = "; expected list, best or plot"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "db", .options = options,
                     .positionals = positionals, .silent = 1, .error = &err};
  char *ok[] = {"db", "--db", "x.db", "best", NULL};
  ck_assert_int_eq(tool_args_parse(&cl, 4, ok), TOOL_ARGS_OK);
  ck_assert_str_eq(command, "best");
  ck_assert_int_eq(index, 1);
  ck_assert_str_eq(db, "x.db");
  char *bad[] = {"db", "frob", NULL};
  ck_assert_int_eq(tool_args_parse(&cl, 2, bad), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_CHOICE);
  ck_assert_str_eq(err.message, "db: unknown command 'frob'; expected list, best or plot");
  char *none[] = {"db", "--json", NULL};
  ck_assert_int_eq(tool_args_parse(&cl, 2, none), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_MISSING);
  ck_assert_str_eq(err.message, "db: missing COMMAND; expected list, best or plot");
  /* The subcommand word: skipping options and their values. */
  char *a[] = {"db", "--db", "x.db", "--json", "list", "--db", NULL};
  ck_assert_int_eq(tool_args_first_positional(&cl, 6, a), 4);
  char *b[] = {"db", "--db=x.db", "plot", NULL};
  ck_assert_int_eq(tool_args_first_positional(&cl, 3, b), 2);
  char *c[] = {"db", "--json", "--frob", NULL};
  ck_assert_int_eq(tool_args_first_positional(&cl, 3, c), 0);
  char *d[] = {"db", "--", "-x", NULL};
  ck_assert_int_eq(tool_args_first_positional(&cl, 3, d), 2);
}
END_TEST

/* ---- the value checks on their own ------------------------------------------ */

START_TEST(test_value_functions) {
  tool_arg_error err;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0.0;
  ck_assert_int_eq(tool_args_int64("--k", "7", 1, 8, &i, &err), 0);
  ck_assert(i == 7);
  ck_assert_int_eq(tool_args_int64("--k", "9", 1, 8, &i, &err), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_RANGE);
  ck_assert(i == 7); /* untouched on error */
  ck_assert_int_eq(tool_args_int64("--k", "", 1, 8, &i, &err), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_NOT_NUMBER);
  ck_assert_int_eq(tool_args_uint64("--seed", "0", &u, &err), 0);
  ck_assert(u == 0);
  ck_assert_int_eq(tool_args_uint64("--seed", " -1", &u, &err), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_NOT_NUMBER);
  ck_assert_int_eq(tool_args_double("x", "1e-400", 0.0, 1.0, 0, &d, &err), 0); /* underflow: ~0 */
  ck_assert(d >= 0.0 && d < 1e-300);
  ck_assert_int_eq(tool_args_double("x", "-inf", -1e300, 1e300, 0, &d, &err), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_RANGE);
  ck_assert_int_eq(tool_args_double("x", "1,5", 0.0, 2.0, 0, &d, &err), TOOL_ARGS_USAGE);
  ck_assert_int_eq(err.kind, TOOL_ARG_ERR_NOT_NUMBER);
}
END_TEST

/* ---- tool_parse_args: the options mfx run, bench and tune share -------------- */

static int parse_run(tool_args *a, const char *const *args) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = "run";
  for (int i = 0; args[i] != NULL; i++) argv[argc++] = (char *)args[i];
  argv[argc] = NULL;
  unsigned all = TOOL_OPT_DIMS | TOOL_OPT_CONFIG | TOOL_OPT_IN | TOOL_OPT_OUT |
                 TOOL_OPT_THREADS | TOOL_OPT_CHECK | TOOL_OPT_REPEAT | TOOL_OPT_SEED |
                 TOOL_OPT_TOL | TOOL_OPT_DB;
  return tool_parse_args(argc, argv, all, a);
}

START_TEST(test_tool_parse_args_compatible) {
  tool_args a;
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "--dims", "M=8,N=8,K=8", "--in", "X=x.npy",
                                      "--out=Y=y.npy", "--check", "--tol", "0.01", "--seed",
                                      "7", "--repeat", "3", "--threads", "2", "--db", "t.db")),
                   0);
  ck_assert_str_eq(a.command, "run");
  ck_assert_str_eq(a.op_name, "linear");
  ck_assert_str_eq(a.dims_text, "M=8,N=8,K=8");
  ck_assert_int_eq(a.n_in, 1);
  ck_assert_str_eq(a.in[0].name, "X");
  ck_assert_str_eq(a.in[0].path, "x.npy");
  ck_assert_int_eq(a.n_out, 1);
  ck_assert_str_eq(a.out[0].name, "Y");
  ck_assert_str_eq(a.out[0].path, "y.npy");
  ck_assert(a.check == 1 && a.tol == 0.01 && a.seed == 7 && a.repeat == 3 && a.threads == 2);
  ck_assert_str_eq(a.db_path, "t.db");
  /* Defaults, and --help reported, not printed (the caller prints). */
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "--help")), 0);
  ck_assert_int_eq(a.help, 1);
  ck_assert(a.seed == 1 && a.tol == TOOL_DEFAULT_TOL && a.threads == 0 && a.repeat == 0);
  /* Errors: exit status 2 (their messages go to stderr). */
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "--in", "x.npy")), TOOL_EXIT_USAGE);
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "--emit", "ll")), TOOL_EXIT_USAGE);
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "--threads", "0")), TOOL_EXIT_USAGE);
  ck_assert_int_eq(parse_run(&a, ARGS("linear", "hamming")), TOOL_EXIT_USAGE);
  /* The command's own options ride along (tool_parse_args_with). */
  int passes = 0;
  const tool_arg extra[] = {{.name = "--passes", .type = TOOL_ARG_FLAG, .to.flag = &passes},
                            {0}};
  char *argv[] = {"lower", "--passes", "linear", "--emit", "asm", NULL};
  ck_assert_int_eq(tool_parse_args_with(5, argv, TOOL_OPT_EMIT, extra, &a), 0);
  ck_assert_int_eq(passes, 1);
  ck_assert_str_eq(a.emit, "asm");
  ck_assert_str_eq(a.op_name, "linear");
}
END_TEST

int main(void) {
  Suite *s = suite_create("args");
  TCase *t = tcase_create("parser");
  tcase_add_test(t, test_every_error_kind);
  tcase_add_test(t, test_every_value_type);
  tcase_add_test(t, test_repeated_and_positional);
  tcase_add_test(t, test_help);
  tcase_add_test(t, test_program_level_messages);
  tcase_add_test(t, test_positional_choices);
  tcase_add_test(t, test_value_functions);
  tcase_add_test(t, test_tool_parse_args_compatible);
  suite_add_tcase(s, t);
  return check_run_suite(s);
}
