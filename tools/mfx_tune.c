/* mfx tune: search an op's schedule knobs for one shape on this machine,
 * checking every candidate against the reference and recording every trial
 * in the tuning database. On a terminal a progress line is rewritten in
 * place; in logs only the final summary is printed. With --mpi (under
 * mpirun) the candidates are sharded over the ranks and rank 0 writes the
 * database. */
#include <stdint.h>
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
  int trials, jobs, threads;
  double timeout, min_time;
  uint64_t seed;
  int resume, json, mpi, flush;
} tool_tune_args;

/* ---- arguments: the parser every mfx command shares (mfx_argparse.c) -------------- */

static const char *const tool_tune_strategies[] = {"exhaustive", "random", "model", NULL};

/* TOOL_ARGS_OK, TOOL_ARGS_HELP (usage printed) or a usage error (printed). */
static int tool_tune_parse(int argc, char **argv, tool_tune_args *a) {
  memset(a, 0, sizeof *a);
  a->trials = 32;
  a->jobs = 0; /* not given */
  a->timeout = 60.0;
  a->min_time = 0.05;
  a->seed = 1;
  const tool_arg options[] = {
      {.name = "--dims", .type = TOOL_ARG_TEXT, .to.text = &a->dims,
       .example = "--dims M=64,N=64,K=64"},
      {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
       .example = "--target cuda (cpu, cuda, cuda:N or emulate)"},
      {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db, .example = "--db tune.db"},
      {.name = "--strategy", .type = TOOL_ARG_ENUM, .to.text = &a->strategy,
       .choices = tool_tune_strategies, .noun = "strategy", .example = "--strategy model"},
      {.name = "--trials", .type = TOOL_ARG_INT, .to.i32 = &a->trials, .min = 1,
       .max = 1000000, .example = "--trials 32"},
      {.name = "--jobs", .type = TOOL_ARG_INT, .to.i32 = &a->jobs, .min = 1, .max = 64,
       .example = "--jobs 2"},
      {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &a->threads, .min = 1, .max = 1024,
       .example = "--threads 2"},
      {.name = "--timeout", .type = TOOL_ARG_FLOAT, .to.f64 = &a->timeout, .lo = 0.0,
       .hi = 86400.0, .example = "--timeout 60"},
      {.name = "--min-time", .type = TOOL_ARG_FLOAT, .to.f64 = &a->min_time, .lo = 0.0,
       .hi = 86400.0, .example = "--min-time 0.05"},
      {.name = "--seed", .type = TOOL_ARG_UINT64, .to.u64 = &a->seed, .example = "--seed 7"},
      {.name = "--resume", .type = TOOL_ARG_FLAG, .to.flag = &a->resume},
      {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &a->json},
      {.name = "--mpi", .type = TOOL_ARG_FLAG, .to.flag = &a->mpi},
      {.name = "--flush", .type = TOOL_ARG_FLAG, .to.flag = &a->flush},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "OP", .to = &a->op_name, .hint = " (see mfx ops for the list)"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "tune", .usage = tool_tune_usage,
                     .options = options, .positionals = positionals};
  return tool_args_parse(&cl, argc, argv);
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
    return tool_error_status(TOOL_EXIT_USAGE, "--strategy");
  o->trials = a->trials;
  o->resume = a->resume;
  o->seed = a->seed;
  o->runner.target = a->target;
  o->runner.jobs = a->jobs > 0 ? a->jobs : a->target != NULL && strcmp(a->target, "cpu") != 0 ? 2 : 1;
  o->runner.threads = a->threads;
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

static int tool_tune_print_json(const mfx_tune_key *key, const mfx_tune_options *o,
                                const mfx_tune_summary *s, const char *db_path) {
  char dims[256], config[1024] = "null";
  mfx_tune_key_dims_text(key, dims, sizeof dims);
  if (s->have_best) mfx_config_to_json(&s->best, config, sizeof config);
  mfx_json w;
  mfx_json_begin(&w, stdout, MFX_JSON_COMPACT);
  mfx_json_object(&w);
  mfx_json_key_string(&w, "op", key->op->name);
  mfx_json_key_string(&w, "dims", dims);
  mfx_json_key_string(&w, "target", key->target.target);
  mfx_json_key_string(&w, "strategy", mfx_strategy_name(o->strategy));
  mfx_json_key_int(&w, "trials", s->trials);
  mfx_json_key_int(&w, "ok", s->ok);
  mfx_json_key_int(&w, "errors", s->errors);
  mfx_json_key_int(&w, "wrong", s->wrong);
  mfx_json_key_int(&w, "resumed", s->resumed);
  mfx_json_key_int(&w, "invalid", s->invalid);
  mfx_json_key_int(&w, "space", (int64_t)s->space_size);
  mfx_json_key(&w, "exhausted");
  mfx_json_bool(&w, s->exhausted);
  mfx_json_key(&w, "best_config");
  mfx_json_raw(&w, config); /* mfx_config_to_json's object, or null */
  mfx_json_key(&w, "best_s");
  if (s->have_best) mfx_json_number(&w, s->best_s);
  else mfx_json_null(&w);
  mfx_json_key(&w, "best_spread");
  if (s->have_best) mfx_json_number(&w, s->best_spread);
  else mfx_json_null(&w);
  mfx_json_key_string(&w, "session", s->session);
  mfx_json_key_number(&w, "elapsed_s", s->elapsed_s);
  mfx_json_key_string(&w, "db", db_path);
  mfx_json_end(&w);
  putchar('\n');
  return tool_json_finish(&w, "tune --json");
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
  if (a->json) rc = tool_tune_print_json(key, o, &s, db_path);
  else tool_tune_print_text(key, o, &s, db_path);
  fflush(stdout);
  if (rc != 0) return rc;
  return s.have_best ? 0 : tool_error(TOOL_EXIT_FAIL, "tune: no candidate passed the check");
}

int tool_cmd_tune(int argc, char **argv) {
  if (tool_args_te_file(argc, argv)) return tool_cmd_tune_te(argc, argv); /* mfx_tune_te.c */
  tool_tune_args a;
  int rc = tool_tune_parse(argc, argv, &a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
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
