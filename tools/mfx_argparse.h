/* The command-line parser every mfx subcommand and mfx-runner share.
 *
 * A command describes its options in a table (tool_arg) and its positional
 * arguments in another (tool_pos); tool_args_parse walks argv once, stores
 * typed values through the tables' pointers, and reports every mistake the
 * same way, with exit status 2:
 *
 *   unknown option       run: unknown option '--frob' (see mfx help run)
 *   missing value        --dims needs a value (e.g. --dims M=64,N=64,K=64)
 *   flag with a value    --check takes no value
 *   not a number         --threads: 'two' is not a whole number in 1..1024
 *   out of range         --threads: '0' is out of range; expected a whole number in 1..1024
 *   not a choice         --emit: unknown format 'obj'; expected ll or asm
 *   bad value            --print-after: no such pass 'x' (the option's own check)
 *   given twice          --dims given twice ('a' and 'b'); give it once
 *   too many             --in given more than 16 times
 *   extra argument       run: unexpected argument 'x' after OP 'linear'
 *   missing argument     mfx-runner: missing ARTIFACT (a .mfxa file from mfx compile)
 *
 * Options are written --name VALUE or --name=VALUE ("-o FILE" for one-dash
 * names); "--" ends the options; "-" alone is a positional argument (stdin).
 * --help or -h prints the command's usage to stdout and the parse returns
 * TOOL_ARGS_HELP (the command then exits 0).
 *
 * Free of the rest of mfx (libc only), so mfx, mfx-runner and the tests
 * link it alike. */
#ifndef MFX_TOOL_ARGPARSE_H
#define MFX_TOOL_ARGPARSE_H

#include <stddef.h>
#include <stdint.h>

#define TOOL_ARGS_OK 0
#define TOOL_ARGS_USAGE 2  /* the exit status of every usage error */
#define TOOL_ARGS_HELP (-1) /* --help printed the usage; exit 0 */
#define TOOL_ARGS_MAX_OPTIONS 64
#define TOOL_ARGS_MESSAGE_BYTES 512

typedef enum {
  TOOL_ARG_FLAG,  /* no value: *to.flag = 1 */
  TOOL_ARG_TEXT,  /* any non-empty text: *to.text */
  TOOL_ARG_PATH,  /* a file path: non-empty, shorter than 4096 bytes */
  TOOL_ARG_INT,   /* a whole number in min..max into an int: *to.i32 */
  TOOL_ARG_INT64, /* the same into an int64_t: *to.i64 */
  TOOL_ARG_UINT64, /* any non-negative whole number below 2^64: *to.u64 */
  TOOL_ARG_FLOAT, /* a finite number in [lo, hi] (or [lo, hi) with hi_open): *to.f64 */
  TOOL_ARG_ENUM,  /* one of choices: the text into *to.text, its index into *index */
} tool_arg_type;

typedef enum {
  TOOL_ARG_ERR_NONE,
  TOOL_ARG_ERR_UNKNOWN,       /* no such option for this command */
  TOOL_ARG_ERR_NO_VALUE,      /* the option's value is missing or empty */
  TOOL_ARG_ERR_FLAG_VALUE,    /* a flag given a value (--check=yes) */
  TOOL_ARG_ERR_NOT_NUMBER,    /* not a number of the option's kind */
  TOOL_ARG_ERR_RANGE,         /* a number outside the option's range */
  TOOL_ARG_ERR_CHOICE,        /* not one of an enum's choices */
  TOOL_ARG_ERR_VALUE,         /* refused by the option's own check, or too long */
  TOOL_ARG_ERR_DUPLICATE,     /* an option that is given once, given twice */
  TOOL_ARG_ERR_TOO_MANY,      /* a repeated option past its count */
  TOOL_ARG_ERR_EXTRA,         /* a positional argument with no slot */
  TOOL_ARG_ERR_MISSING,       /* a required positional argument absent */
} tool_arg_error_kind;

/* What the last parse refused, and the message it printed. */
typedef struct {
  tool_arg_error_kind kind;
  char message[TOOL_ARGS_MESSAGE_BYTES];
} tool_arg_error;

/* An option's (or positional argument's) own check of its text, after the
 * type's checks; it may also store the value. Returns 0, or non-zero with
 * the whole message in why ("--print-after: no such pass 'x' (see mfx lower
 * --passes)"); `name` is the option as written or the argument's name. */
typedef int (*tool_arg_check_fn)(void *user, const char *name, const char *value, char *why,
                                 size_t size);

/* One option. Tables end with an entry whose name is NULL. */
typedef struct {
  const char *name;   /* "--dims", or "-o" */
  const char *alias;  /* another spelling ("--output"), or NULL */
  tool_arg_type type;
  union {
    int *flag;
    const char **text; /* TEXT, PATH, ENUM: the argument itself (argv outlives the parse) */
    int *i32;
    int64_t *i64;
    uint64_t *u64;
    double *f64;
  } to;
  /* 0 or 1: once only. N > 1 (TEXT and PATH): to.text is an array of N
   * entries and *count says how many were given. < 0: any number of times,
   * each value handed to check (to may be NULL; the check stores it). */
  int max_count;
  int *count;
  int64_t min, max;            /* INT, INT64 */
  double lo, hi;               /* FLOAT */
  int hi_open;                 /* FLOAT: hi itself is outside */
  const char *const *choices;  /* ENUM: NULL-terminated */
  int *index;                  /* ENUM: which choice (optional) */
  const char *noun;            /* ENUM: what a choice is ("format"), for messages */
  const char *example;         /* shown when the value is missing: "--dims M=64,N=64,K=64" */
  tool_arg_check_fn check;     /* optional, after the type's own checks */
  void *check_user;
} tool_arg;

/* One positional argument, in order. Tables end with a NULL name. */
typedef struct {
  const char *name;            /* "OP", "ARTIFACT", "KIND" */
  const char **to;
  int required;                /* missing: "missing NAME<hint>" */
  const char *hint;            /* " (see mfx ops for the list)" */
  const char *const *choices;  /* optional: the argument must be one of these */
  int *index;                  /* with choices: which one */
  const char *noun;            /* with choices: "kind", "command" */
  tool_arg_check_fn check;     /* optional */
  void *check_user;
} tool_pos;

/* A command's command line. */
typedef struct {
  const char *program; /* "mfx", "mfx-runner": messages start "<program>: error: " */
  const char *command; /* "run", "db list"; NULL: the program itself */
  const char *help;    /* "mfx help run": where unknown options point; NULL: derived */
  const char *usage;   /* printed by --help; NULL: --help is an error-free no-op that
                          sets *help_given (for callers that print their own) */
  const tool_arg *options;   /* NULL: none */
  const tool_pos *positionals; /* NULL: none */
  int *help_given;     /* optional: set to 1 when --help or -h is seen */
  int silent;          /* do not print errors (tests read error instead) */
  tool_arg_error *error; /* optional: the error of the last parse */
} tool_cmdline;

/* Parses argv[1..argc-1] (argv[0] is the command name). Returns TOOL_ARGS_OK,
 * TOOL_ARGS_HELP after printing the usage, or TOOL_ARGS_USAGE after printing
 * "<program>: error: <message>" to stderr. Values already stored before an
 * error stay stored. */
int tool_args_parse(const tool_cmdline *cl, int argc, char **argv);

/* The index in argv (>= 1) of the first positional argument under cl's
 * options, 0 if none: for commands whose first word picks the rest
 * (mfx db list ...). Does not report errors. */
int tool_args_first_positional(const tool_cmdline *cl, int argc, char **argv);

/* The value checks on their own, for values that arrive some other way (a
 * list "1.5,2" split by the caller): 0, or TOOL_ARGS_USAGE with err filled
 * (nothing printed). `what` names the value in the message ("--tol"). */
int tool_args_int64(const char *what, const char *text, int64_t min, int64_t max, int64_t *out,
                    tool_arg_error *err);
int tool_args_uint64(const char *what, const char *text, uint64_t *out, tool_arg_error *err);
int tool_args_double(const char *what, const char *text, double lo, double hi, int hi_open,
                     double *out, tool_arg_error *err);

/* Prints "<program>: error: <message>" to stderr. */
void tool_args_print_error(const char *program, const tool_arg_error *err);

#endif
