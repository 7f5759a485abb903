/* mfx tune FILE.te: the auto-scheduler's knobs of a kernel written as text,
 * searched on this machine, every candidate checked against the IR
 * interpreter, every trial in the tuning database under op "te:<hash>"
 * (ops/te_op.c). --target cpu and --target cuda[:N] go through the tuner
 * (autotune/tune.c; on a GPU its builder threads and forked device worker,
 * autotune/runner_gpu.c, recorded under target "cuda", arch sm_XX and the
 * device's name, as built-in ops' GPU records);
 * --target emulate builds each candidate's GPU schedule and runs it through
 * the GPU emulation on the CPU: a check of the GPU schedules, timed on the
 * CPU, recorded under target "cuda" with arch "emulate" so that no real GPU
 * record is ever mistaken for it. mfx compile FILE.te (tool_te_autosched_kernel)
 * compiles with the best record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mfx/artifact.h"
#include "mfx/autosched.h"
#include "mfx/autotune.h"
#include "mfx_cli.h"

static const char tool_tune_te_usage[] =
    "usage: mfx tune FILE.te [--target cpu|cuda|cuda:N|emulate] [options]\n"
    "\n"
    "Search the auto-scheduler's knobs of a kernel written as TE text (see mfx help\n"
    "lower) on this machine. The rules that fired and the knobs they expose are\n"
    "printed first. Every candidate is checked against the IR interpreter before it\n"
    "is timed; every trial goes to the tuning database as op te:<hash of the text>.\n"
    "  --target cpu            this CPU (default)\n"
    "  --target cuda, cuda:N   a CUDA GPU: candidates built to PTX here, checked and\n"
    "                          timed (CUDA events) by a worker process restarted after\n"
    "                          a fault; recorded for the device and its sm_XX\n"
    "  --target emulate        the GPU schedules, run by the GPU emulation on this CPU\n"
    "                          (checks them; times are the CPU's)\n"
    "                          mfx compile --target cuda:sm_XX takes a GPU record of\n"
    "                          that sm_XX, else the best emulated one\n"
    "  --trials N              configs to measure (default 16)\n"
    "  --strategy S            exhaustive, random or model (default model)\n"
    "  --db PATH               the database (default $MFX_DB, else ~/.cache/mfx/tune.db)\n"
    "  --seed N                seed of the search (default 1)\n"
    "  --min-time S            measured time per candidate, at least (default 0.05)\n"
    "  --timeout S             cpu: run each candidate in a child process killed after S\n"
    "                          seconds (default 60); 0 runs them in this process; cuda:\n"
    "                          kill the GPU worker after S seconds on one candidate\n"
    "  --threads N             kernel thread pool size (default: one per CPU)\n";

typedef struct {
  const char *path, *target, *db, *strategy;
  long trials, threads, seed;
  double min_time, timeout;
  int help;
} tool_tune_te_args;

/* ---- arguments ------------------------------------------------------------------------ */

static int tool_tune_te_number(const char *option, const char *text, double lo, double hi,
                               int whole, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(text, &end);
  if (text[0] == '\0' || *end != '\0' || errno != 0 || !(v >= lo && v <= hi) ||
      (whole && v != (double)(long)v))
    return tool_error(TOOL_EXIT_USAGE, "%s: '%s' is not a %s in %g..%g", option, text,
                      whole ? "whole number" : "number", lo, hi);
  *out = v;
  return 0;
}

static int tool_tune_te_value(tool_tune_te_args *a, const char *name, const char *value) {
  double v = 0.0;
  int rc = 0;
  const char **text = strcmp(name, "--target") == 0 ? &a->target
                      : strcmp(name, "--db") == 0   ? &a->db
                      : strcmp(name, "--strategy") == 0 ? &a->strategy : NULL;
  if (text != NULL) {
    if (*text != NULL) return tool_error(TOOL_EXIT_USAGE, "%s given twice; give it once", name);
    *text = value;
  } else if (strcmp(name, "--trials") == 0) {
    if ((rc = tool_tune_te_number(name, value, 1, 100000, 1, &v)) == 0) a->trials = (long)v;
  } else if (strcmp(name, "--threads") == 0) {
    if ((rc = tool_tune_te_number(name, value, 1, 1024, 1, &v)) == 0) a->threads = (long)v;
  } else if (strcmp(name, "--seed") == 0) {
    if ((rc = tool_tune_te_number(name, value, 0, 2147483647.0, 1, &v)) == 0) a->seed = (long)v;
  } else if (strcmp(name, "--min-time") == 0) {
    rc = tool_tune_te_number(name, value, 0, 86400, 0, &a->min_time);
  } else if (strcmp(name, "--timeout") == 0) {
    rc = tool_tune_te_number(name, value, 0, 86400, 0, &a->timeout);
  } else {
    rc = tool_error(TOOL_EXIT_USAGE, "tune %s: unknown option '%s' (see mfx tune %s --help)",
                    a->path, name, a->path);
  }
  return rc;
}

static int tool_tune_te_parse(int argc, char **argv, tool_tune_te_args *a) {
  memset(a, 0, sizeof *a);
  a->trials = 16;
  a->seed = 1;
  a->min_time = 0.05;
  a->timeout = 60.0;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      a->help = 1;
    } else if (strncmp(arg, "--", 2) == 0) {
      char name[32];
      const char *eq = strchr(arg, '=');
      size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
      if (len >= sizeof name) return tool_error(TOOL_EXIT_USAGE, "tune: unknown option '%s'", arg);
      memcpy(name, arg, len);
      name[len] = '\0';
      const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      if (value == NULL) return tool_error(TOOL_EXIT_USAGE, "%s needs a value", name);
      int rc = tool_tune_te_value(a, name, value);
      if (rc != 0) return rc;
    } else if (a->path == NULL && tool_is_te_file(arg)) {
      a->path = arg;
    } else {
      return tool_error(TOOL_EXIT_USAGE, "tune: unexpected argument '%s'", arg);
    }
  }
  return 0;
}

/* ---- the kernel as an op -------------------------------------------------------------- */

/* Read and analyse FILE.te; prints the plan (which rules fired) when verbose. */
static int tool_te_open_op(const char *path, int verbose, mfx_te_op **out) {
  char *text = tool_read_file(path);
  if (text == NULL) return tool_error(TOOL_EXIT_FAIL, "cannot read TE text from %s", path);
  mfx_status st = mfx_te_op_create(text, path, out);
  free(text);
  if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "auto-scheduler");
  if (verbose) {
    const mfx_op *op = mfx_te_op_get(*out);
    printf("kernel   %s as op %s\n", path, op->name);
    mfx_autosched_describe(mfx_te_op_plan(*out), stdout);
  }
  return 0;
}

/* The key of emulated GPU schedules: target "cuda" (so that the GPU knobs
 * are read back), arch and device saying "emulate". */
static mfx_status tool_te_emulate_key_init(const mfx_op *op, const int64_t *dims,
                                           mfx_tune_key *key) {
  MFX_TRY(mfx_tune_key_init(key, op, dims, "cpu"));
  mfx_tune_target t = key->target;
  snprintf(key->target.target, sizeof key->target.target, "cuda");
  snprintf(key->target.arch, sizeof key->target.arch, "emulate (GPU schedule on %.150s)", t.arch);
  snprintf(key->target.device, sizeof key->target.device, "emulate: %.170s", t.device);
  return MFX_OK;
}

static int tool_te_emulate_key(const mfx_op *op, const int64_t *dims, mfx_tune_key *key) {
  if (tool_te_emulate_key_init(op, dims, key) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "tune");
  return 0;
}

static void tool_tune_te_print_knobs(const mfx_op *op, int gpu) {
  int n = 0;
  const mfx_knob *k = mfx_op_knobs(op, gpu ? "cuda" : "cpu", &n);
  printf("knobs   ");
  for (int i = 0; i < n; i++) {
    printf(" %s{", k[i].name);
    for (int c = 0; c < k[i].n_choices; c++) printf("%s%lld", c ? "," : "", (long long)k[i].choices[c]);
    printf("}");
  }
  printf("\n");
}

/* ---- emulated GPU schedules --------------------------------------------------------------- */

typedef struct {
  const mfx_op *op;
  const int64_t *dims;
  mfx_array inputs[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS];
  mfx_kernel_env env;
  mfx_jit_kernel *jit;
} tool_emulate;

static mfx_status tool_emulate_launch(void *user, const mfx_op_kernel *k,
                                      const mfx_kernel_env *env, mfx_array *inputs,
                                      mfx_array *outputs) {
  (void)k;
  tool_emulate *e = user;
  void *args[2 * MFX_OP_MAX_TENSORS];
  for (int i = 0; i < e->op->n_inputs; i++) args[i] = inputs[i].data;
  for (int o = 0; o < e->op->n_outputs; o++) args[e->op->n_inputs + o] = outputs[o].data;
  if (mfx_jit_entry(e->jit)(args, env) != 0)
    return mfx_fail(MFX_ERR_NOMEM, "the emulated kernel could not allocate its workspace");
  return MFX_OK;
}

/* Build, check and time one config; the trial says how it went. */
static void tool_emulate_trial(tool_emulate *e, const mfx_measure_options *mo, mfx_trial *t) {
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_build_result r;
  memset(&r, 0, sizeof r);
  t->status = MFX_TRIAL_ERROR;
  if (a == NULL || mfx_op_build_for(e->op, "cuda", a, e->dims, &t->cfg, &s) != MFX_OK ||
      mfx_build(s, "kernel", "emulate", MFX_BUILD_JIT, NULL, &r) != MFX_OK) {
    snprintf(t->error, sizeof t->error, "build: %s", mfx_last_error());
  } else {
    e->jit = r.jit;
    mfx_launch l = {tool_emulate_launch, e, NULL, &e->env, e->inputs, e->got, NULL, 0};
    int ok = mfx_launch_call(&l) == MFX_OK;
    for (int o = 0; ok && o < e->op->n_outputs; o++) {
      mfx_compare c = mfx_compare_arrays(&e->got[o], &e->want[o], mo->tol);
      if (!c.ok) {
        t->status = MFX_TRIAL_WRONG;
        snprintf(t->error, sizeof t->error, "%s differs from the interpreter at element %lld",
                 e->op->outputs[o].name, (long long)c.worst_index);
        ok = 0;
      }
    }
    if (ok && mfx_measure_cpu(&l, mo, &t->m) == MFX_OK) t->status = MFX_TRIAL_OK;
    else if (t->status == MFX_TRIAL_ERROR) snprintf(t->error, sizeof t->error, "run: %s", mfx_last_error());
    mfx_jit_free(r.jit);
  }
  if (a != NULL) mfx_arena_destroy(a);
  t->created = (double)time(NULL);
}

static int tool_emulate_prepare(tool_emulate *e) {
  if (mfx_op_alloc_inputs(e->op, e->dims, e->inputs) != MFX_OK ||
      mfx_op_alloc_outputs(e->op, e->dims, e->want) != MFX_OK ||
      mfx_op_alloc_outputs(e->op, e->dims, e->got) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "allocating the tuning inputs");
  mfx_op_random_inputs(e->op, e->dims, 1, e->inputs);
  e->op->reference(e->dims, e->inputs, e->want);
  mfx_kernel_env_init(&e->env, NULL);
  return 0;
}

static int tool_tune_emulate(const tool_tune_te_args *a, const mfx_op *op, const int64_t *dims,
                             mfx_tune_db *db, const mfx_tune_key *key, mfx_strategy strategy) {
  tool_emulate e;
  memset(&e, 0, sizeof e);
  e.op = op;
  e.dims = dims;
  mfx_space space;
  mfx_search *search = NULL;
  int rc = tool_emulate_prepare(&e);
  if (rc == 0 && (mfx_space_init_for(&space, op, dims, "cuda") != MFX_OK ||
                  mfx_search_create(&space, strategy, (uint64_t)a->seed, &search) != MFX_OK))
    rc = tool_error_status(TOOL_EXIT_FAIL, "tune");
  mfx_measure_options mo;
  mfx_measure_options_default(&mo);
  mo.min_seconds = a->min_time;
  char session[40];
  snprintf(session, sizeof session, "emulate-%lld", (long long)time(NULL));
  int done = 0, ok = 0, have_best = 0;
  mfx_trial best;
  memset(&best, 0, sizeof best);
  while (rc == 0 && done < a->trials) {
    uint64_t index = 0;
    int got = 0;
    if (mfx_search_next(search, 1, &index, &got) != MFX_OK) rc = tool_error_status(TOOL_EXIT_FAIL, "tune");
    if (rc != 0 || got == 0) break;
    mfx_trial t;
    memset(&t, 0, sizeof t);
    mfx_space_config(&space, index, &t.cfg);
    tool_emulate_trial(&e, &mo, &t);
    done++;
    if (mfx_tune_db_add_trial(db, key, session, &t) != MFX_OK)
      rc = tool_error_status(TOOL_EXIT_FAIL, "recording a trial");
    mfx_search_observe(search, index, t.status == MFX_TRIAL_OK ? t.m.median_s : 0.0);
    if (t.status != MFX_TRIAL_OK) fprintf(stderr, "trial %d: %s: %s\n", done, mfx_trial_status_name(t.status), t.error);
    if (t.status == MFX_TRIAL_OK) ok++;
    if (t.status == MFX_TRIAL_OK && (!have_best || t.m.median_s < best.m.median_s)) {
      best = t;
      have_best = 1;
    }
  }
  if (rc == 0) {
    char config[1024] = "-";
    if (have_best) mfx_config_to_json(&best.cfg, config, sizeof config);
    printf("tuned    %s on emulate (GPU schedules on %s), %s search\n", op->name, key->target.device,
           mfx_strategy_name(strategy));
    printf("trials   %d measured (ok %d), %d refused by the template, space %llu\n", done, ok,
           search != NULL ? mfx_search_invalid(search) : 0, (unsigned long long)space.size);
    if (have_best) printf("best     %.4f ms %s\n", best.m.median_s * 1e3, config);
    else rc = tool_error(TOOL_EXIT_FAIL, "tune: no candidate passed the check");
  }
  mfx_search_destroy(search);
  tool_free_arrays(e.inputs, MFX_OP_MAX_TENSORS);
  tool_free_arrays(e.want, MFX_OP_MAX_TENSORS);
  tool_free_arrays(e.got, MFX_OP_MAX_TENSORS);
  return rc;
}

/* ---- the host CPU or a CUDA device, through the tuner ------------------------------------ */

/* cpu: candidates run here (in a child killed after --timeout). cuda[:N]:
 * builder threads compile them to PTX, a worker process forked by a
 * supervisor opens the device, checks each against the interpreter's output
 * and times it with CUDA events (autotune/runner_gpu.c). */
static int tool_tune_runner(const tool_tune_te_args *a, mfx_tune_db *db, const mfx_tune_key *key,
                            mfx_strategy strategy, const char *gpu) {
  mfx_tune_options o;
  mfx_tune_options_default(&o);
  o.strategy = strategy;
  o.trials = (int)a->trials;
  o.seed = (uint64_t)a->seed;
  o.runner.target = gpu;
  o.runner.jobs = gpu != NULL ? 2 : 1;
  o.runner.threads = (int)a->threads;
  o.runner.timeout_s = a->timeout;
  o.runner.measure.min_seconds = a->min_time;
  mfx_tune_summary s;
  if (mfx_tune(db, key, &o, &s) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "tune");
  char config[1024] = "-";
  if (s.have_best) mfx_config_to_json(&s.best, config, sizeof config);
  printf("tuned    %s on %s (%s%s%s), %s search\n", key->op->name, key->target.target,
         key->target.device, gpu != NULL ? ", " : "", gpu != NULL ? key->target.arch : "",
         mfx_strategy_name(strategy));
  printf("trials   %d measured (ok %d, error %d, wrong %d), %d refused by the template, space "
         "%llu\n", s.trials, s.ok, s.errors, s.wrong, s.invalid, (unsigned long long)s.space_size);
  if (!s.have_best) return tool_error(TOOL_EXIT_FAIL, "tune: no candidate passed the check");
  printf("best     %.4f ms %s%s\n", s.best_s * 1e3, config,
         gpu != NULL ? " (CUDA events)" : "");
  return 0;
}

/* The key of --target cuda[:N]: the device fingerprinted in a child
 * process (arch sm_XX, its name); no driver or no such device: exit 1. */
static int tool_te_cuda_key(const char *name, const mfx_target *target, const mfx_op *op,
                            const int64_t *dims, mfx_tune_key *key) {
  if (target->sm > 0)
    return tool_error(TOOL_EXIT_USAGE, "--target %s names an architecture, not a device: "
                      "tuning measures on a GPU; give cuda or cuda:N (mfx compile takes "
                      "cuda:sm_XX)", name);
  if (mfx_tune_key_init(key, op, dims, name) != MFX_OK)
    return tool_error(TOOL_EXIT_FAIL, "--target %s: %s", name, mfx_last_error());
  return 0;
}

static int tool_tune_te_run(const tool_tune_te_args *a, mfx_te_op *t) {
  const mfx_op *op = mfx_te_op_get(t);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(t, dims);
  mfx_target target;
  const char *name = a->target != NULL ? a->target : "cpu";
  if (mfx_target_parse(name, &target) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--target %s: %s", name, mfx_last_error());
  int emulate = target.kind == MFX_TARGET_EMULATE, cuda = target.kind == MFX_TARGET_CUDA;
  mfx_strategy strategy = MFX_SEARCH_MODEL;
  if (a->strategy != NULL && mfx_strategy_from_name(a->strategy, &strategy) != 0)
    return tool_error(TOOL_EXIT_USAGE, "--strategy: '%s' is not a strategy; expected "
                      "exhaustive, random or model", a->strategy);
  mfx_tune_key key;
  int rc = cuda ? tool_te_cuda_key(name, &target, op, dims, &key) : 0;
  if (rc != 0) return rc;
  tool_tune_te_print_knobs(op, emulate || cuda);
  if (emulate) rc = tool_te_emulate_key(op, dims, &key);
  else if (!cuda && mfx_tune_key_init(&key, op, dims, "cpu") != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "tune");
  char db_path[1024];
  if (rc == 0 && mfx_tune_db_path(a->db, db_path, sizeof db_path) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "--db");
  mfx_tune_db *db = NULL;
  if (rc == 0 && mfx_tune_db_open(db_path, &db) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "tune");
  if (rc == 0) rc = emulate ? tool_tune_emulate(a, op, dims, db, &key, strategy)
                            : tool_tune_runner(a, db, &key, strategy, cuda ? name : NULL);
  if (rc == 0) printf("database %s\n", db_path);
  mfx_tune_db_close(db);
  return rc;
}

int tool_cmd_tune_te(int argc, char **argv) {
  tool_tune_te_args a;
  int rc = tool_tune_te_parse(argc, argv, &a);
  if (rc != 0) return rc;
  if (a.help) {
    fputs(tool_tune_te_usage, stdout);
    return TOOL_EXIT_OK;
  }
  mfx_te_op *t = NULL;
  rc = tool_te_open_op(a.path, 1, &t);
  if (rc == 0) rc = tool_tune_te_run(&a, t);
  mfx_te_op_destroy(t);
  fflush(stdout);
  return rc;
}

/* ---- mfx compile FILE.te: the auto-scheduled kernel ----------------------------------------------- */

/* ---- which record mfx compile takes ------------------------------------------------------- */

/* The fastest record of this kernel at these dims on any device of one
 * architecture (target cuda, arch sm_XX), whose config the auto-scheduler
 * still accepts. */
typedef struct {
  const mfx_op *op;
  const mfx_space *space;
  const mfx_tune_target *target; /* its arch and version */
  char dims[160], dtypes[160];
  mfx_tune_task_info best;
  mfx_config cfg;
  int found;
} tool_te_arch_find;

static int tool_te_arch_visit(void *user, const mfx_tune_task_info *t) {
  tool_te_arch_find *f = user;
  mfx_config cfg;
  if (strcmp(t->op, f->op->name) != 0 || strcmp(t->dims, f->dims) != 0 ||
      strcmp(t->dtypes, f->dtypes) != 0 || strcmp(t->target.target, "cuda") != 0 ||
      strcmp(t->target.arch, f->target->arch) != 0 ||
      strcmp(t->target.version, f->target->version) != 0 ||
      t->ok == 0 || t->best_s <= 0.0 || (f->found && t->best_s >= f->best.best_s))
    return 0;
  if (mfx_config_parse_json_for(f->op, "cuda", t->best_config, &cfg) != MFX_OK ||
      mfx_space_check(f->space, &cfg) != MFX_OK) {
    mfx_clear_error(); /* a config the auto-scheduler no longer takes is no candidate */
    return 0;
  }
  f->best = *t;
  f->cfg = cfg;
  f->found = 1;
  return 0;
}

static mfx_status tool_te_arch_record(mfx_tune_db *db, const mfx_tune_key *sm_key,
                                      mfx_tune_choice *choice, int *found) {
  mfx_space space;
  tool_te_arch_find f;
  memset(&f, 0, sizeof f);
  f.op = sm_key->op;
  f.space = &space;
  mfx_tune_key_dims_text(sm_key, f.dims, sizeof f.dims);
  mfx_tune_key_dtypes_text(sm_key->op, f.dtypes, sizeof f.dtypes);
  f.target = &sm_key->target;
  *found = 0;
  MFX_TRY(mfx_space_init_for(&space, sm_key->op, sm_key->dims, "cuda"));
  MFX_TRY(mfx_tune_db_list(db, tool_te_arch_visit, &f));
  if (!f.found) return MFX_OK;
  memset(choice, 0, sizeof *choice);
  choice->cfg = f.cfg;
  choice->source = MFX_TUNE_TUNED;
  choice->median_s = f.best.best_s;
  memcpy(choice->tuned_dims, sm_key->dims, sizeof choice->tuned_dims);
  snprintf(choice->why, sizeof choice->why, "tuned on %.180s (%.16s): the best of %d trials for "
           "these dims, %.4g ms (CUDA events)", f.best.target.device, f.target->arch, f.best.trials,
           f.best.best_s * 1e3);
  *found = 1;
  return MFX_OK;
}

/* cuda:sm_XX, in order: a GPU record of that sm_XX at these dims; the
 * emulated GPU schedules' record at these dims; the nearest tuned dims of
 * this kernel on that sm_XX, then emulated; the default. */
static mfx_status tool_te_choose_gpu(mfx_tune_db *db, const mfx_op *op, const int64_t *dims,
                                     int sm, mfx_tune_choice *choice) {
  mfx_tune_key sm_key, emu_key;
  MFX_TRY(tool_te_emulate_key_init(op, dims, &emu_key));
  sm_key = emu_key;
  snprintf(sm_key.target.arch, sizeof sm_key.target.arch, "sm_%d", sm);
  sm_key.target.device[0] = '\0'; /* any device of that architecture */
  const char *emulated = " (tuned with --target emulate: checked GPU schedules, timed on the CPU)";
  int found = 0;
  if (db != NULL) MFX_TRY(tool_te_arch_record(db, &sm_key, choice, &found));
  if (found) return MFX_OK;
  mfx_tune_choice emu;
  MFX_TRY(mfx_tune_choose(db, &emu_key, &emu));
  if (emu.source != MFX_TUNE_TUNED) {
    MFX_TRY(mfx_tune_choose(db, &sm_key, choice));
    if (choice->source == MFX_TUNE_NEAREST) {
      size_t used = strlen(choice->why);
      snprintf(choice->why + used, sizeof choice->why - used, " on a %s GPU", sm_key.target.arch);
      return MFX_OK;
    }
  }
  *choice = emu;
  if (emu.source != MFX_TUNE_DEFAULT) {
    size_t used = strlen(choice->why);
    snprintf(choice->why + used, sizeof choice->why - used, "%s", emulated);
  }
  return MFX_OK;
}

/* The config of the kernel's target: cpu from its cpu records (or the
 * nearest tuned dims), cuda:sm_XX as tool_te_choose_gpu says; the default
 * otherwise. */
static int tool_te_choose(const mfx_op *op, const int64_t *dims, const mfx_target *target,
                          const char *db_given, mfx_tune_choice *choice) {
  int gpu = target->kind == MFX_TARGET_CUDA;
  mfx_tune_key key;
  if (!gpu && mfx_tune_key_init(&key, op, dims, "cpu") != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compile");
  char path[1024];
  if (mfx_tune_db_path(db_given, path, sizeof path) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "--db");
  mfx_tune_db *db = NULL;
  mfx_status st = mfx_tune_db_open_existing(path, &db);
  if (st == MFX_ERR_NOT_FOUND) mfx_clear_error();
  else if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "reading the tuning database");
  st = gpu ? tool_te_choose_gpu(db, op, dims, target->sm, choice)
            : mfx_tune_choose(db, &key, choice);
  mfx_tune_db_close(db);
  if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "reading the tuning database");
  if (choice->source == MFX_TUNE_DEFAULT && gpu)
    snprintf(choice->why, sizeof choice->why, "auto-scheduler default: no tuning record of %s "
             "on a sm_%d GPU or emulated in %.300s", op->name, target->sm, path);
  else if (choice->source == MFX_TUNE_DEFAULT)
    snprintf(choice->why, sizeof choice->why, "auto-scheduler default: no tuning record of %s "
             "for cpu in %.300s", op->name, path);
  return 0;
}

/* mfx run FILE.te --target cuda[:N]|emulate (mfx_run_te.c): the config of
 * the auto-scheduled GPU schedule. cuda: this device's record, else the
 * nearest tuned dims on its sm_XX (mfx_tune_lookup_for); then the emulated
 * record (or nearest); the default. emulate: the emulated record, or nearest. */
int tool_te_run_config(const mfx_op *op, const int64_t *dims, const char *target,
                       const char *db_given, mfx_config *cfg, char *why, size_t size) {
  mfx_tune_choice choice;
  memset(&choice, 0, sizeof choice);
  choice.source = MFX_TUNE_DEFAULT;
  int cuda = strcmp(target, "emulate") != 0;
  if (cuda && mfx_tune_lookup_for(db_given, op, dims, target, &choice) != MFX_OK)
    return tool_error(TOOL_EXIT_FAIL, "--target %s: %s", target, mfx_last_error());
  if (choice.source == MFX_TUNE_DEFAULT) {
    mfx_tune_key key;
    char path[1024];
    if (tool_te_emulate_key(op, dims, &key) != 0) return TOOL_EXIT_FAIL;
    if (mfx_tune_db_path(db_given, path, sizeof path) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "--db");
    mfx_tune_db *db = NULL;
    mfx_status st = mfx_tune_db_open_existing(path, &db);
    if (st == MFX_ERR_NOT_FOUND) mfx_clear_error();
    else if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "reading the tuning database");
    st = mfx_tune_choose(db, &key, &choice);
    mfx_tune_db_close(db);
    if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "reading the tuning database");
    size_t used = strlen(choice.why);
    if (choice.source != MFX_TUNE_DEFAULT)
      snprintf(choice.why + used, sizeof choice.why - used, " (tuned with --target emulate)");
    else
      snprintf(choice.why, sizeof choice.why, "auto-scheduler default: no tuning record of %s "
               "%sor emulated in %.300s", op->name, cuda ? "for this GPU " : "", path);
  }
  *cfg = choice.cfg;
  snprintf(why, size, "%s", choice.why);
  return 0;
}

/* FILE.te's auto-scheduled schedule for k_target in arena, with the config
 * chosen (and said) as tool_te_choose does; *config gets it as JSON. */
static int tool_te_schedule(const char *path, const char *db, const char *k_target,
                            const char *name, FILE *say, mfx_arena *arena, mfx_schedule **s,
                            char *config, size_t config_size) {
  mfx_target target;
  if (mfx_target_parse(k_target, &target) != MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--target %s: %s", k_target, mfx_last_error());
  if (target.kind == MFX_TARGET_EMULATE || (target.kind == MFX_TARGET_CUDA && target.sm == 0))
    return tool_error(TOOL_EXIT_USAGE, "%s: --target %s: compile for cpu or cuda:sm_XX (tune "
                      "with --target emulate, then compile with --target cuda:sm_XX)", path,
                      k_target);
  mfx_te_op *t = NULL;
  int rc = tool_te_open_op(path, 0, &t);
  if (rc != 0) return rc;
  const mfx_op *op = mfx_te_op_get(t);
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(t, dims);
  mfx_tune_choice choice;
  rc = tool_te_choose(op, dims, &target, db, &choice);
  if (rc == 0) {
    mfx_config_to_json(&choice.cfg, config, config_size);
    fprintf(say, "config   %s: %s as %s, %s: %s\n", name, path, op->name, config, choice.why);
    if (mfx_op_build_for(op, k_target, arena, dims, &choice.cfg, s) != MFX_OK)
      rc = tool_error_status(TOOL_EXIT_FAIL, "auto-scheduling");
  }
  mfx_te_op_destroy(t);
  return rc;
}

int tool_te_autosched_kernel(const char *path, const char *db, mfx_artifact_kernel *k) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  char config[512];
  int rc = tool_te_schedule(path, db, k->target, k->name, stdout, arena, &s, config,
                            sizeof config);
  if (rc == 0) {
    snprintf(k->op, sizeof k->op, "te"); /* no op mfx-runner knows: inputs from --in */
    k->n_dims = 0;
    snprintf(k->config, sizeof k->config, "%s", config);
    if (mfx_artifact_build(s, k) != MFX_OK) rc = tool_error_status(TOOL_EXIT_FAIL, "compile");
  }
  mfx_arena_destroy(arena);
  return rc;
}

/* mfx compile FILE.te --emit ...: the auto-scheduled kernel's code (the
 * config line goes to standard error: standard output may be the code). */
int tool_te_emit_code(const char *path, const char *db, const char *target, int what,
                      char **data, size_t *size) {
  mfx_arena *arena = mfx_arena_create();
  if (arena == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory for the IR arena");
  mfx_schedule *s = NULL;
  char config[512];
  int rc = tool_te_schedule(path, db, target, "kernel", stderr, arena, &s, config, sizeof config);
  mfx_build_result r = {0};
  if (rc == 0 && mfx_build(s, "kernel", target, (mfx_build_emit)what, NULL, &r) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "code generation");
  *data = r.data;
  *size = r.size;
  mfx_arena_destroy(arena);
  return rc;
}
