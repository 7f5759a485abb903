/* mfx db: look into the tuning database. list the tuned keys, show the
 * config the compiler would pick for a key and why, export and import the
 * trials as JSON lines, and plot one tuning's best-so-far curve as SVG. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mfx/autotune.h"
#include "mfx_cli.h"

int tool_cmd_db(int argc, char **argv);

static const char tool_db_usage[] =
    "usage: mfx db COMMAND [--db PATH] [arguments]\n"
    "\n"
    "The tuning database (default $MFX_DB, else ~/.cache/mfx/tune.db).\n"
    "  list [--json]                    every tuned key: trials (ok/error/wrong), best\n"
    "  best OP --dims D [--target cpu] [--json]\n"
    "                                   the config the compiler would use, and why\n"
    "  export [--out FILE]              every trial as JSON lines (default: stdout)\n"
    "  import FILE                      add the trials of an export ('-': stdin);\n"
    "                                   trials already present are skipped\n"
    "  plot OP --dims D [--target cpu] [--out FILE.svg]\n"
    "                                   best-so-far time against trial number\n"
    "Each command takes only the options shown with it (and --db).\n";

typedef struct {
  const char *command, *positional, *db, *dims, *target, *out;
  int json;
} tool_db_args;

/* ---- arguments: each subcommand its own options ------------------------------------- */

static const char *const tool_db_commands[] = {"list", "best", "export", "import", "plot", NULL};

enum { TOOL_DB_LIST, TOOL_DB_BEST, TOOL_DB_EXPORT, TOOL_DB_IMPORT, TOOL_DB_PLOT, TOOL_DB_ANY };

/* Which subcommands take each option (bits of the enum above; ANY: all). */
static int tool_db_options(tool_db_args *a, int command, tool_arg *out) {
  const unsigned any = 1u << TOOL_DB_ANY, keyed = 1u << TOOL_DB_BEST | 1u << TOOL_DB_PLOT;
  const struct { unsigned commands; tool_arg arg; } all[] = {
      {~0u, {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db, .example = "--db tune.db"}},
      {keyed | any, {.name = "--dims", .type = TOOL_ARG_TEXT, .to.text = &a->dims,
                     .example = "--dims M=64,N=64,K=64"}},
      {keyed | any, {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
                     .example = "--target cpu"}},
      {1u << TOOL_DB_LIST | 1u << TOOL_DB_BEST | any,
       {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &a->json}},
      {1u << TOOL_DB_EXPORT | 1u << TOOL_DB_PLOT | any,
       {.name = "--out", .type = TOOL_ARG_PATH, .to.text = &a->out, .example = "--out FILE"}},
  };
  int n = 0;
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    if (all[i].commands & (1u << command)) out[n++] = all[i].arg;
  memset(&out[n], 0, sizeof out[n]);
  return n;
}

/* mfx db [options] COMMAND [ARG] [options]: the first word picks the option
 * set, so `db export --json` is an error, not ignored. */
static int tool_db_parse(int argc, char **argv, tool_db_args *a) {
  memset(a, 0, sizeof *a);
  tool_arg options[8];
  char command[32] = "db";
  int which = TOOL_DB_ANY;
  tool_db_options(a, TOOL_DB_ANY, options);
  tool_pos positionals[] = {
      {.name = "COMMAND", .to = &a->command, .required = 1, .choices = tool_db_commands,
       .index = &which, .noun = "command", .hint = "; expected list, best, export, import or plot"},
      {.name = "OP", .to = &a->positional, .required = 1, .hint = " (see mfx ops)"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = command, .help = "mfx help db",
                     .usage = tool_db_usage, .options = options, .positionals = positionals};
  int at = tool_args_first_positional(&cl, argc, argv);
  for (int i = 0; at > 0 && tool_db_commands[i] != NULL; i++)
    if (strcmp(argv[at], tool_db_commands[i]) == 0) which = i;
  if (which != TOOL_DB_ANY) {
    snprintf(command, sizeof command, "db %s", tool_db_commands[which]);
    tool_db_options(a, which, options);
    if (which == TOOL_DB_IMPORT) positionals[1] = (tool_pos){.name = "FILE", .to = &a->positional,
        .required = 1, .hint = " (a JSON-lines export, or -)"};
    if (which == TOOL_DB_LIST || which == TOOL_DB_EXPORT) positionals[1].name = NULL;
  } else {
    positionals[1].name = NULL; /* the COMMAND is missing or unknown: say that */
  }
  return tool_args_parse(&cl, argc, argv);
}

static int tool_db_open(const tool_db_args *a, int create, mfx_tune_db **db) {
  char path[1024];
  if (mfx_tune_db_path(a->db, path, sizeof path) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--db");
  mfx_status st = create ? mfx_tune_db_open(path, db) : mfx_tune_db_open_readonly(path, db);
  if (st == MFX_ERR_NOT_FOUND)
    return tool_error(TOOL_EXIT_FAIL, "db: no tuning database at %s (mfx tune creates one)", path);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "db");
}

static int tool_db_key(const tool_db_args *a, mfx_tune_key *key) {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  if (a->positional == NULL)
    return tool_error(TOOL_EXIT_USAGE, "db %s: missing OP (see mfx ops)", a->command);
  int rc = tool_find_op(a->positional, &op);
  if (rc != 0) return rc;
  if (a->dims == NULL) return tool_error(TOOL_EXIT_USAGE, "db %s %s: missing --dims", a->command, op->name);
  if (mfx_op_parse_dims(op, a->dims, dims) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--dims '%s': %s", a->dims, mfx_last_error());
  if (mfx_tune_key_init(key, op, dims, a->target) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--target: %s", mfx_last_error());
  return 0;
}

/* ---- list ---------------------------------------------------------------------------- */

typedef struct {
  int json;
  int rc; /* a failed write stops the listing with this exit status */
} tool_db_lister;

static int tool_db_list_one(void *user, const mfx_tune_task_info *t) {
  tool_db_lister *l = user;
  if (l->json) {
    mfx_json w;
    mfx_json_begin(&w, stdout, MFX_JSON_COMPACT);
    mfx_json_object(&w);
    mfx_json_key_string(&w, "op", t->op);
    mfx_json_key_string(&w, "dims", t->dims);
    mfx_json_key_string(&w, "target", t->target.target);
    mfx_json_key_string(&w, "arch", t->target.arch);
    mfx_json_key_string(&w, "device", t->target.device);
    mfx_json_key_string(&w, "version", t->target.version);
    mfx_json_key_int(&w, "trials", t->trials);
    mfx_json_key_int(&w, "ok", t->ok);
    mfx_json_key_int(&w, "errors", t->errors);
    mfx_json_key_int(&w, "wrong", t->wrong);
    mfx_json_key(&w, "best_s");
    if (t->ok > 0) mfx_json_number(&w, t->best_s);
    else mfx_json_null(&w);
    mfx_json_key(&w, "best_config");
    mfx_json_raw(&w, t->ok > 0 ? t->best_config : NULL);
    mfx_json_end(&w);
    putchar('\n');
    return l->rc = tool_json_finish(&w, "db list --json");
  }
  char best[32] = "-";
  if (t->ok > 0) snprintf(best, sizeof best, "%.4g", t->best_s * 1e3);
  char target[48]; /* a GPU's records are its arch's: "cuda/sm_90" */
  if (strcmp(t->target.target, "cuda") == 0)
    snprintf(target, sizeof target, "cuda/%.30s", t->target.arch);
  else
    snprintf(target, sizeof target, "%.40s", t->target.target);
  printf("%-16s %-28s %-4s %6d %4d %5d %5d %10s  %s\n", t->op, t->dims, target, t->trials,
         t->ok, t->errors, t->wrong, best, t->ok > 0 ? t->best_config : "-");
  return 0;
}

static int tool_db_list(const tool_db_args *a, mfx_tune_db *db) {
  tool_db_lister l = {a->json, 0};
  if (!l.json)
    printf("%-16s %-28s %-4s %6s %4s %5s %5s %10s  %s\n", "op", "dims", "tgt", "trials", "ok",
           "error", "wrong", "best ms", "best config");
  if (mfx_tune_db_list(db, tool_db_list_one, &l) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "db list");
  return l.rc;
}

/* ---- best ------------------------------------------------------------------------------ */

static int tool_db_best(const tool_db_args *a, mfx_tune_db *db) {
  mfx_tune_key key;
  mfx_tune_choice c;
  char config[1024];
  int rc = tool_db_key(a, &key);
  if (rc != 0) return rc;
  if (mfx_tune_choose(db, &key, &c) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "db best");
  mfx_config_to_json(&c.cfg, config, sizeof config);
  if (a->json) {
    mfx_json w;
    mfx_json_begin(&w, stdout, MFX_JSON_COMPACT);
    mfx_json_object(&w);
    mfx_json_key_string(&w, "source", mfx_tune_source_name(c.source));
    mfx_json_key(&w, "config");
    mfx_json_raw(&w, config);
    mfx_json_key_number(&w, "median_s", c.median_s);
    mfx_json_key_string(&w, "why", c.why);
    mfx_json_end(&w);
    putchar('\n');
    return tool_json_finish(&w, "db best --json");
  } else {
    printf("source   %s\nconfig   %s\nwhy      %s\n", mfx_tune_source_name(c.source), config,
           c.why);
  }
  return 0;
}

/* ---- export / import / plot --------------------------------------------------------------- */

/* Output to --out (atomically, a regular file only) or stdout. */
typedef mfx_status (*tool_db_writer)(mfx_tune_db *db, const void *what, FILE *out, int *count);

static int tool_db_write(const tool_db_args *a, const char *command, tool_db_writer fn,
                         mfx_tune_db *db, const void *what, int *count) {
  if (a->out == NULL) {
    if (fn(db, what, stdout, count) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, command);
    return fflush(stdout) == 0 ? 0 : tool_error(TOOL_EXIT_FAIL, "%s: cannot write stdout", command);
  }
  mfx_file_writer w;
  mfx_status st = mfx_file_write_begin(&w, a->out, "--out");
  if (st == MFX_OK && (st = fn(db, what, w.f, count)) != MFX_OK) mfx_file_write_abort(&w);
  else if (st == MFX_OK) st = mfx_file_write_commit(&w);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, command);
}

static mfx_status tool_db_export_to(mfx_tune_db *db, const void *what, FILE *out, int *count) {
  (void)what;
  return mfx_tune_db_export(db, out, count);
}

static mfx_status tool_db_plot_to(mfx_tune_db *db, const void *key, FILE *out, int *count) {
  (void)count;
  return mfx_tune_db_plot(db, key, out);
}

static int tool_db_export(const tool_db_args *a, mfx_tune_db *db) {
  int count = 0;
  int rc = tool_db_write(a, "db export", tool_db_export_to, db, NULL, &count);
  if (rc == 0) fprintf(stderr, "exported %d trials from %s\n", count, mfx_tune_db_path_of(db));
  return rc;
}

static int tool_db_import(const tool_db_args *a, mfx_tune_db *db) {
  if (a->positional == NULL)
    return tool_error(TOOL_EXIT_USAGE, "db import: missing FILE (a JSON-lines export, or -)");
  int from_stdin = strcmp(a->positional, "-") == 0;
  FILE *in = stdin;
  if (!from_stdin &&
      mfx_file_open_read(a->positional, "file", MFX_FILE_CAP_TEXT, &in, NULL) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "db import");
  int added = 0, skipped = 0;
  mfx_status st = mfx_tune_db_import(db, in, a->positional, &added, &skipped);
  if (!from_stdin) fclose(in);
  if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "db import");
  printf("imported %d trials into %s (%d already present)\n", added, mfx_tune_db_path_of(db),
         skipped);
  return 0;
}

static int tool_db_plot(const tool_db_args *a, mfx_tune_db *db) {
  mfx_tune_key key;
  int rc = tool_db_key(a, &key);
  if (rc == 0) rc = tool_db_write(a, "db plot", tool_db_plot_to, db, &key, NULL);
  if (rc == 0 && a->out != NULL) printf("wrote %s\n", a->out);
  return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

typedef int (*tool_db_fn)(const tool_db_args *a, mfx_tune_db *db);

int tool_cmd_db(int argc, char **argv) {
  static const struct { const char *name; tool_db_fn fn; int create; } commands[] = {
      {"list", tool_db_list, 0},     {"best", tool_db_best, 0}, {"export", tool_db_export, 0},
      {"import", tool_db_import, 1}, {"plot", tool_db_plot, 0},
  };
  tool_db_args a;
  int rc = tool_db_parse(argc, argv, &a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
  for (size_t i = 0; a.command != NULL && i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(commands[i].name, a.command) != 0) continue;
    mfx_tune_db *db = NULL;
    rc = tool_db_open(&a, commands[i].create, &db);
    if (rc == 0) rc = commands[i].fn(&a, db);
    mfx_tune_db_close(db);
    fflush(stdout);
    return rc;
  }
  return tool_error(TOOL_EXIT_USAGE, "internal: db command '%s' has no handler", a.command);
}
