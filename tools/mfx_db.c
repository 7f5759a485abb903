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
    "  plot OP --dims D [--out FILE.svg] best-so-far time against trial number\n";

typedef struct {
  const char *command, *positional, *db, *dims, *target, *out;
  int json, help;
} tool_db_args;

/* ---- arguments ------------------------------------------------------------------ */

static int tool_db_value(const char *name, const char *value, tool_db_args *a) {
  static const struct { const char *name; size_t offset; } texts[] = {
      {"--db", offsetof(tool_db_args, db)},
      {"--dims", offsetof(tool_db_args, dims)},
      {"--target", offsetof(tool_db_args, target)},
      {"--out", offsetof(tool_db_args, out)},
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    if (strcmp(texts[i].name, name) != 0) continue;
    const char **slot = (const char **)(void *)((char *)a + texts[i].offset);
    if (*slot != NULL) return tool_error(TOOL_EXIT_USAGE, "%s given twice; give it once", name);
    *slot = value;
    return 0;
  }
  return tool_error(TOOL_EXIT_USAGE, "db: unknown option '%s' (see mfx db --help)", name);
}

static int tool_db_option(int argc, char **argv, int *i, tool_db_args *a) {
  char name[64];
  const char *arg = argv[*i], *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  if (len >= sizeof name) return tool_error(TOOL_EXIT_USAGE, "db: unknown option '%s'", arg);
  memcpy(name, arg, len);
  name[len] = '\0';
  if (strcmp(name, "--json") == 0) {
    a->json = 1;
    return eq == NULL ? 0 : tool_error(TOOL_EXIT_USAGE, "--json takes no value");
  }
  const char *value = eq ? eq + 1 : NULL;
  if (value == NULL && *i + 1 < argc) value = argv[++*i];
  if (value == NULL)
    return tool_error(TOOL_EXIT_USAGE, "%s needs a value (see mfx db --help)", name);
  return tool_db_value(name, value, a);
}

static int tool_db_parse(int argc, char **argv, tool_db_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    int rc = 0;
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) a->help = 1;
    else if (strncmp(arg, "--", 2) == 0) rc = tool_db_option(argc, argv, &i, a);
    else if (a->command == NULL) a->command = arg;
    else if (a->positional == NULL) a->positional = arg;
    else rc = tool_error(TOOL_EXIT_USAGE, "db %s: unexpected argument '%s'", a->command, arg);
    if (rc != 0) return rc;
  }
  return 0;
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

static void tool_db_json_string(const char *s) {
  putchar('"');
  for (; *s != '\0'; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s < 0x20) printf("\\u%04x", (unsigned char)*s);
    else putchar(*s);
  }
  putchar('"');
}

static int tool_db_list_one(void *user, const mfx_tune_task_info *t) {
  int json = *(int *)user;
  if (json) {
    printf("{\"op\":\"%s\",\"dims\":\"%s\",\"target\":\"%s\",\"arch\":", t->op, t->dims,
           t->target.target);
    tool_db_json_string(t->target.arch);
    printf(",\"device\":");
    tool_db_json_string(t->target.device);
    printf(",\"version\":");
    tool_db_json_string(t->target.version);
    printf(",\"trials\":%d,\"ok\":%d,\"errors\":%d,\"wrong\":%d,\"best_s\":", t->trials, t->ok,
           t->errors, t->wrong);
    if (t->ok > 0) printf("%.9g,\"best_config\":%s}\n", t->best_s, t->best_config);
    else printf("null,\"best_config\":null}\n");
    return 0;
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
  int json = a->json;
  if (!json)
    printf("%-16s %-28s %-4s %6s %4s %5s %5s %10s  %s\n", "op", "dims", "tgt", "trials", "ok",
           "error", "wrong", "best ms", "best config");
  if (mfx_tune_db_list(db, tool_db_list_one, &json) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "db list");
  return 0;
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
    printf("{\"source\":\"%s\",\"config\":%s,\"median_s\":%.9g,\"why\":",
           mfx_tune_source_name(c.source), config, c.median_s);
    tool_db_json_string(c.why);
    printf("}\n");
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
  if (rc != 0) return rc;
  if (a.help) {
    fputs(tool_db_usage, stdout);
    return TOOL_EXIT_OK;
  }
  for (size_t i = 0; a.command != NULL && i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(commands[i].name, a.command) != 0) continue;
    mfx_tune_db *db = NULL;
    rc = tool_db_open(&a, commands[i].create, &db);
    if (rc == 0) rc = commands[i].fn(&a, db);
    mfx_tune_db_close(db);
    fflush(stdout);
    return rc;
  }
  fputs(tool_db_usage, stderr);
  return tool_error(TOOL_EXIT_USAGE, "db: %s '%s'; expected list, best, export, import or plot",
                    a.command ? "unknown command" : "missing command",
                    a.command ? a.command : "");
}
