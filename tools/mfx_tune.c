/* mfx tune: search an op's schedule knobs for one shape on this machine,
 * checking every candidate against the reference and recording every trial
 * in the tuning database. On a terminal a progress line is rewritten in
 * place; in logs only the final summary is printed. With --mpi (under
 * mpirun) the candidates are sharded over the ranks and rank 0 writes the
 * database. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/autotune.h"
#include "mfx/target.h"
#include "mfx_cli.h"

int tool_cmd_tune(int argc, char **argv);

static const char tool_tune_usage[] =
    "usage: mfx tune OP --dims NAME=V,... [options]\n"
    "       mfx tune FILE.te [options]   (a kernel written as text: mfx tune FILE.te --help)\n"
    "\n"
    "Search OP's schedule knobs for these dims on this machine. Every candidate is\n"
    "checked against the reference (tolerance 1e-4) before it is timed; every trial\n"
    "is committed to the tuning database at once.\n"
    "  --dims M=64,N=64,K=64   every dim of the op, once, positive\n"
    "  --target T              cpu (default), cuda, cuda:N (a GPU: candidates built to PTX\n"
    "                          here, measured with CUDA events by a worker process that is\n"
    "                          restarted after a fault) or emulate (the GPU templates run\n"
    "                          by the CPU emulation)\n"
    "  --trials N              configs to measure for this key (default 32)\n"
    "  --strategy S            exhaustive, random or model (default model)\n"
    "  --db PATH               the database (default $MFX_DB, else ~/.cache/mfx/tune.db)\n"
    "  --resume                continue: count and never remeasure the configs already\n"
    "                          in the database for this key\n"
    "  --jobs J                build J candidates in parallel (default 1; 2 for GPU\n"
    "                          targets, whose builds overlap the measurements)\n"
    "  --timeout S             run each candidate in a child process killed after S\n"
    "                          seconds (default 60); 0 runs them in this process\n"
    "  --threads N             kernel thread pool size (default: one per CPU)\n"
    "  --seed N                seed of the search (default 1)\n"
    "  --min-time S            measured time per candidate, at least (default 0.05)\n"
    "  --flush                 flush the caches before every timed call (cold timing)\n"
    "  --json                  print the summary as one JSON object\n"
    "  --mpi                   shard candidates over MPI ranks (run under mpirun)\n";

typedef struct {
  const char *op_name, *dims, *target, *db, *strategy;
  long trials, jobs, threads;
  double timeout, min_time;
  unsigned long long seed;
  int resume, json, mpi, flush, help;
} tool_tune_args;

/* ---- arguments ------------------------------------------------------------------ */

static int tool_tune_long(const char *option, const char *text, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
    return tool_error(TOOL_EXIT_USAGE, "%s: '%s' is not a whole number in %ld..%ld", option,
                      text, lo, hi);
  *out = v;
  return 0;
}

static int tool_tune_seconds(const char *option, const char *text, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 86400.0))
    return tool_error(TOOL_EXIT_USAGE, "%s: '%s' is not a number of seconds in 0..86400",
                      option, text);
  *out = v;
  return 0;
}

/* Sets the flag `name` when set is non-zero; returns whether it is one. */
static int tool_tune_flag(const char *name, tool_tune_args *a, int set) {
  static const struct { const char *name; size_t offset; } flags[] = {
      {"--resume", offsetof(tool_tune_args, resume)}, {"--json", offsetof(tool_tune_args, json)},
      {"--mpi", offsetof(tool_tune_args, mpi)},       {"--flush", offsetof(tool_tune_args, flush)},
  };
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    if (strcmp(flags[i].name, name) == 0) {
      if (set) *(int *)((char *)a + flags[i].offset) = 1;
      return 1;
    }
  }
  return 0;
}

static int tool_tune_text(const char *name, const char *value, tool_tune_args *a, int *rc) {
  static const struct { const char *name; size_t offset; } texts[] = {
      {"--dims", offsetof(tool_tune_args, dims)},     {"--target", offsetof(tool_tune_args, target)},
      {"--db", offsetof(tool_tune_args, db)},         {"--strategy", offsetof(tool_tune_args, strategy)},
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    if (strcmp(texts[i].name, name) != 0) continue;
    const char **slot = (const char **)(void *)((char *)a + texts[i].offset);
    if (*slot != NULL) *rc = tool_error(TOOL_EXIT_USAGE, "%s given twice; give it once", name);
    *slot = value;
    return 1;
  }
  return 0;
}

static int tool_tune_value(const char *name, const char *value, tool_tune_args *a) {
  int rc = 0;
  if (tool_tune_text(name, value, a, &rc)) return rc;
  if (strcmp(name, "--trials") == 0) return tool_tune_long(name, value, 1, 1000000, &a->trials);
  if (strcmp(name, "--jobs") == 0) return tool_tune_long(name, value, 1, 64, &a->jobs);
  if (strcmp(name, "--threads") == 0) return tool_tune_long(name, value, 1, 1024, &a->threads);
  if (strcmp(name, "--timeout") == 0) return tool_tune_seconds(name, value, &a->timeout);
  if (strcmp(name, "--min-time") == 0) return tool_tune_seconds(name, value, &a->min_time);
  if (strcmp(name, "--seed") == 0) {
    long v = 0;
    rc = tool_tune_long(name, value, 0, 2147483647L, &v);
    a->seed = (unsigned long long)v;
    return rc;
  }
  return tool_error(TOOL_EXIT_USAGE, "tune: unknown option '%s' (see mfx tune --help)", name);
}

static int tool_tune_option(int argc, char **argv, int *i, tool_tune_args *a) {
  char name[64];
  const char *arg = argv[*i], *eq = strchr(arg, '=');
  size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
  if (len >= sizeof name) return tool_error(TOOL_EXIT_USAGE, "tune: unknown option '%s'", arg);
  memcpy(name, arg, len);
  name[len] = '\0';
  if (tool_tune_flag(name, a, eq == NULL))
    return eq == NULL ? 0 : tool_error(TOOL_EXIT_USAGE, "%s takes no value", name);
  const char *value = eq ? eq + 1 : NULL;
  if (value == NULL && *i + 1 < argc) value = argv[++*i];
  if (value == NULL)
    return tool_error(TOOL_EXIT_USAGE, "%s needs a value (see mfx tune --help)", name);
  return tool_tune_value(name, value, a);
}

static int tool_tune_parse(int argc, char **argv, tool_tune_args *a) {
  memset(a, 0, sizeof *a);
  a->trials = 32;
  a->jobs = 0; /* not given */
  a->timeout = 60.0;
  a->min_time = 0.05;
  a->seed = 1;
  for (int i = 1; i < argc; i++) {
    int rc = 0;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) a->help = 1;
    else if (strncmp(argv[i], "--", 2) == 0) rc = tool_tune_option(argc, argv, &i, a);
    else if (argv[i][0] == '-' && argv[i][1] != '\0')
      rc = tool_error(TOOL_EXIT_USAGE, "tune: unknown option '%s' (see mfx tune --help)", argv[i]);
    else if (a->op_name == NULL) a->op_name = argv[i];
    else rc = tool_error(TOOL_EXIT_USAGE, "tune: unexpected argument '%s' after op '%s'", argv[i],
                         a->op_name);
    if (rc != 0) return rc;
  }
  return 0;
}

/* ---- the problem and options ------------------------------------------------------- */

static int tool_tune_key(const tool_tune_args *a, mfx_tune_key *key) {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  char names[128];
  if (a->op_name == NULL)
    return tool_error(TOOL_EXIT_USAGE, "tune: missing OP (see mfx ops for the list)");
  int rc = tool_find_op(a->op_name, &op);
  if (rc != 0) return rc;
  tool_format_dim_names(op, names, sizeof names);
  if (a->dims == NULL)
    return tool_error(TOOL_EXIT_USAGE, "tune %s: missing --dims; %s takes dims %s", op->name,
                      op->name, names);
  if (mfx_op_parse_dims(op, a->dims, dims) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--dims '%s': %s", a->dims, mfx_last_error());
  mfx_target target;
  if (a->target != NULL && mfx_target_parse(a->target, &target) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--target: %s", mfx_last_error());
  if (a->target != NULL && target.kind == MFX_TARGET_CUDA && target.sm > 0)
    return tool_error(TOOL_EXIT_USAGE, "--target %s names an architecture, not a device: tuning "
                      "measures on a GPU; give cuda or cuda:N", a->target);
  if (mfx_tune_key_init(key, op, dims, a->target) != MFX_OK) /* no driver, no such GPU */
    return tool_error(TOOL_EXIT_FAIL, "--target %s: %s", a->target, mfx_last_error());
  return 0;
}

static int tool_tune_options(const tool_tune_args *a, mfx_tune_options *o) {
  mfx_tune_options_default(o);
  if (a->strategy != NULL && mfx_strategy_from_name(a->strategy, &o->strategy) != 0)
    return tool_error(TOOL_EXIT_USAGE,
                      "--strategy: '%s' is not a strategy; expected exhaustive, random or model",
                      a->strategy);
  o->trials = (int)a->trials;
  o->resume = a->resume;
  o->seed = a->seed;
  o->runner.target = a->target;
  o->runner.jobs = a->jobs > 0 ? (int)a->jobs : a->target != NULL && strcmp(a->target, "cpu") != 0 ? 2 : 1;
  o->runner.threads = (int)a->threads;
  o->runner.timeout_s = a->timeout;
  o->runner.measure.min_seconds = a->min_time;
  o->runner.measure.flush_cache = a->flush;
  return 0;
}

/* ---- progress and summary ------------------------------------------------------------ */

/* "812 ns", "41.3 us", "1.207 ms", "2.5 s". */
static void tool_tune_format_time(double seconds, char *buf, size_t size) {
  if (seconds < 1e-6) snprintf(buf, size, "%.0f ns", seconds * 1e9);
  else if (seconds < 1e-3) snprintf(buf, size, "%.1f us", seconds * 1e6);
  else if (seconds < 1.0) snprintf(buf, size, "%.3f ms", seconds * 1e3);
  else snprintf(buf, size, "%.2f s", seconds);
}

static void tool_tune_progress(void *user, const mfx_tune_progress *p) {
  (void)user;
  char best[32] = "-", eta[32] = "?";
  if (p->have_best) tool_tune_format_time(p->best_s, best, sizeof best);
  if (p->eta_s >= 0.0) snprintf(eta, sizeof eta, "%.0f s", p->eta_s);
  fprintf(stderr, "\r\033[Ktrial %d/%d  best %s  elapsed %.0f s  ETA %s", p->done, p->total, best,
          p->elapsed_s, eta);
  fflush(stderr);
}

static void tool_tune_print_text(const mfx_tune_key *key, const mfx_tune_options *o,
                                 const mfx_tune_summary *s, const char *db_path) {
  char dims[256], config[1024] = "-";
  mfx_tune_key_dims_text(key, dims, sizeof dims);
  if (s->have_best) mfx_config_to_json(&s->best, config, sizeof config);
  printf("tuned    %s %s on %s (%s), %s search\n", key->op->name, dims, key->target.target,
         key->target.device, mfx_strategy_name(o->strategy));
  printf("trials   %d measured (ok %d, error %d, wrong %d), %d resumed, %d refused by the "
         "template, space %llu%s\n",
         s->trials, s->ok, s->errors, s->wrong, s->resumed, s->invalid,
         (unsigned long long)s->space_size, s->exhausted ? " (every valid config measured)" : "");
  char best[32];
  tool_tune_format_time(s->best_s, best, sizeof best);
  if (s->have_best)
    printf("best     %s (spread %.1f%%) %s\n", best, s->best_spread * 100.0, config);
  else
    printf("best     none: no candidate passed the check\n");
  printf("database %s (session %s)\ntime     %.1f s\n", db_path, s->session, s->elapsed_s);
}

static void tool_tune_print_json(const mfx_tune_key *key, const mfx_tune_options *o,
                                 const mfx_tune_summary *s, const char *db_path) {
  char dims[256], config[1024] = "null";
  mfx_tune_key_dims_text(key, dims, sizeof dims);
  if (s->have_best) mfx_config_to_json(&s->best, config, sizeof config);
  printf("{\"op\":\"%s\",\"dims\":\"%s\",\"target\":\"%s\",\"strategy\":\"%s\",", key->op->name,
         dims, key->target.target, mfx_strategy_name(o->strategy));
  printf("\"trials\":%d,\"ok\":%d,\"errors\":%d,\"wrong\":%d,\"resumed\":%d,\"invalid\":%d,",
         s->trials, s->ok, s->errors, s->wrong, s->resumed, s->invalid);
  printf("\"space\":%llu,\"exhausted\":%s,\"best_config\":%s,", (unsigned long long)s->space_size,
         s->exhausted ? "true" : "false", config);
  if (s->have_best) printf("\"best_s\":%.9g,\"best_spread\":%.4g,", s->best_s, s->best_spread);
  else printf("\"best_s\":null,\"best_spread\":null,");
  printf("\"session\":\"%s\",\"elapsed_s\":%.3f,\"db\":\"", s->session, s->elapsed_s);
  for (const char *p = db_path; *p != '\0'; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    putchar(*p);
  }
  printf("\"}\n");
}

/* ---- running ------------------------------------------------------------------------- */

static int tool_tune_local(const char *db_path, const mfx_tune_key *key, mfx_tune_options *o,
                           mfx_tune_summary *s) {
  mfx_tune_db *db = NULL;
  if (mfx_tune_db_open(db_path, &db) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "tune");
  mfx_status st = mfx_tune(db, key, o, s);
  mfx_tune_db_close(db);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "tune");
}

static int tool_tune_mpi(const char *db_path, const mfx_tune_key *key, mfx_tune_options *o,
                         mfx_tune_summary *s, int *rank) {
  int size = 1;
  if (mfx_tune_mpi_init(NULL, NULL, rank, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "tune");
  if (*rank != 0) o->progress = NULL;
  mfx_status st = mfx_tune_mpi(db_path, key, o, s);
  int rc = st == MFX_OK ? 0 : tool_error(TOOL_EXIT_FAIL, "tune (rank %d of %d): %s", *rank, size,
                                         mfx_last_error());
  mfx_tune_mpi_finalize();
  return rc;
}

static int tool_tune_run(const tool_tune_args *a, const mfx_tune_key *key, mfx_tune_options *o) {
  char db_path[1024];
  if (mfx_tune_db_path(a->db, db_path, sizeof db_path) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--db");
  int tty = isatty(STDERR_FILENO);
  if (tty) o->progress = tool_tune_progress;
  mfx_tune_summary s;
  int rank = 0;
  int rc = a->mpi ? tool_tune_mpi(db_path, key, o, &s, &rank) : tool_tune_local(db_path, key, o, &s);
  if (tty && rank == 0) fputs("\r\033[K", stderr);
  if (rc != 0 || rank != 0) return rc;
  if (a->json) tool_tune_print_json(key, o, &s, db_path);
  else tool_tune_print_text(key, o, &s, db_path);
  fflush(stdout);
  return s.have_best ? 0 : tool_error(TOOL_EXIT_FAIL, "tune: no candidate passed the check");
}

int tool_cmd_tune(int argc, char **argv) {
  if (tool_args_te_file(argc, argv)) return tool_cmd_tune_te(argc, argv); /* mfx_tune_te.c */
  tool_tune_args a;
  int rc = tool_tune_parse(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help) {
    fputs(tool_tune_usage, stdout);
    return TOOL_EXIT_OK;
  }
  if (a.mpi && !mfx_tune_mpi_available())
    return tool_error(TOOL_EXIT_FAIL,
                      "--mpi: this mfx was built without MPI; install an MPI implementation "
                      "(apt-get install libopenmpi-dev) and rebuild, or tune without --mpi");
  mfx_tune_key key;
  mfx_tune_options o;
  rc = tool_tune_key(&a, &key);
  if (rc == 0) rc = tool_tune_options(&a, &o);
  if (rc == 0) rc = tool_tune_run(&a, &key, &o);
  return rc;
}
