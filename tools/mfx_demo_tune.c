/* mfx demo, tuning: each kernel of the layer briefly tuned through the
 * autotuner (random search, resumed from the demo's own database, so a
 * second run measures nothing new) on the layer's target (the CPU, a GPU, or
 * the GPU emulation), and the layer's config chooser, which asks the
 * database for every kernel the layer compiles: the tuned record of that
 * device, the nearest tuned shape (other token buckets), or the template
 * default. A GPU's key is asked once, before the layer opens the device
 * (the asking happens in a child process that must not inherit CUDA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/autotune.h"
#include "mfx_moe_cli.h"

#define TOOL_TUNE_MIN_SECONDS 0.02

struct tool_demo_tuning {
  mfx_tune_db *db;
  int chosen[3]; /* configs handed to the layer, by mfx_tune_source */
  const char *target;     /* the layer's: "cpu", "cuda", "cuda:N", "emulate" */
  mfx_tune_target gpu;    /* its key when not cpu */
  int have_gpu;
};

typedef struct {
  const tool_demo_kernel *kernel;
  double t0;
} tool_tune_progress_ctx;

static void tool_tune_progress(void *user, const mfx_tune_progress *p) {
  const tool_tune_progress_ctx *c = user;
  if (p->done < p->total) return; /* one line per kernel, when it is done */
  fprintf(stderr, "[demo] tune %-10s %-12s %d/%d trials (%d from the database), best %.3f ms, "
          "%.1f s\n", c->kernel->role, c->kernel->op->name, p->done, p->total, p->resumed,
          p->have_best ? p->best_s * 1e3 : 0.0, mfx_now_seconds() - c->t0);
}

static void tool_tune_options(const char *target, int trials, tool_tune_progress_ctx *ctx,
                              mfx_tune_options *o) {
  mfx_tune_options_default(o);
  o->strategy = MFX_SEARCH_RANDOM;
  o->trials = trials;
  o->resume = 1;
  o->session = "mfx-demo";
  o->runner.target = target;
  o->runner.jobs = 2;
  o->runner.measure.min_seconds = TOOL_TUNE_MIN_SECONDS;
  o->progress = tool_tune_progress;
  o->progress_user = ctx;
}

static void tool_tune_print(const tool_demo_kernel *k, const mfx_tune_summary *s) {
  char dims[96], cfg[512] = "-";
  snprintf(dims, sizeof dims, "M=%lld,N=%lld,K=%lld", (long long)k->dims[0],
           (long long)k->dims[1], (long long)k->dims[2]);
  if (s->have_best) mfx_config_to_json(&s->best, cfg, sizeof cfg);
  printf("  %-10s %-12s %-20s %4d+%-3d %9.3f  %s\n", k->role, k->op->name, dims, s->resumed,
         s->trials, s->have_best ? s->best_s * 1e3 : 0.0, cfg);
}

/* The key of op at dims on the layer's target (GPU keys from the cache). */
static mfx_status tool_tune_key(const tool_demo_tuning *t, int gpu, const mfx_op *op,
                                const int64_t *dims, mfx_tune_key *key) {
  mfx_status st = mfx_tune_key_init(key, op, dims, "cpu");
  if (st == MFX_OK && gpu) key->target = t->gpu;
  return st;
}

static int tool_tune_one(tool_demo_tuning *t, const tool_demo_kernel *k, int trials) {
  mfx_tune_key key;
  if (tool_tune_key(t, t->have_gpu, k->op, k->dims, &key) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: tuning key");
  tool_tune_progress_ctx ctx = {k, mfx_now_seconds()};
  mfx_tune_options o;
  tool_tune_options(t->target, trials, &ctx, &o);
  mfx_tune_summary s;
  if (mfx_tune(t->db, &key, &o, &s) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: tuning");
  tool_tune_print(k, &s);
  return 0;
}

int tool_demo_tune(const char *db_path, int trials, const tool_demo_plan *plan,
                   const char *target, tool_demo_tuning **out) {
  tool_demo_tuning *t = calloc(1, sizeof *t);
  if (t == NULL) return tool_error(TOOL_EXIT_FAIL, "demo: out of memory");
  *out = t;
  t->target = target;
  if (strcmp(target, "cpu") != 0) {
    if (mfx_tune_target_get(target, &t->gpu) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "demo: the tuning key of the target");
    t->have_gpu = 1;
    printf("  device    %s %s (%s): its own records\n", t->gpu.target, t->gpu.device,
           t->gpu.arch);
  }
  if (mfx_tune_db_open(db_path, &t->db) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: the tuning database");
  if (trials == 0) {
    printf("  tuning skipped (--tune-trials 0): records already in %s, else template defaults\n",
           db_path);
    return 0;
  }
  printf("  %-10s %-12s %-20s %8s %9s  %s\n", "kernel", "op", "dims", "trials", "best ms",
         "best config");
  for (int i = 0; i < plan->n; i++) {
    int rc = tool_tune_one(t, &plan->kernels[i], trials);
    if (rc != 0) return rc;
  }
  printf("  (trials: from the database + run now; random search, each checked against its "
         "reference)\n");
  return 0;
}

mfx_status tool_demo_choose(void *tuning, const char *target, const mfx_op *op,
                            const int64_t *dims, mfx_config *cfg) {
  tool_demo_tuning *t = tuning;
  int gpu = strcmp(target, "cpu") != 0; /* "cuda:sm_XX", or "cuda" emulated */
  if (t == NULL || (gpu && !t->have_gpu)) return MFX_OK;
  mfx_tune_key key;
  mfx_tune_choice choice;
  mfx_status st = tool_tune_key(t, gpu, op, dims, &key);
  if (st == MFX_OK) st = mfx_tune_choose(t->db, &key, &choice);
  if (st != MFX_OK) return st;
  *cfg = choice.cfg;
  if ((unsigned)choice.source < 3) t->chosen[choice.source]++;
  return MFX_OK;
}

int tool_demo_tuning_open(const char *db_path, const char *target, tool_demo_tuning **out) {
  char path[1024];
  tool_demo_tuning *t = calloc(1, sizeof *t);
  if (t == NULL) return tool_error(TOOL_EXIT_FAIL, "out of memory");
  *out = t;
  t->target = target;
  if (strcmp(target, "cpu") != 0) {
    char what[96];
    snprintf(what, sizeof what, "opening target '%.40s'", target);
    if (mfx_tune_target_get(target, &t->gpu) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, what);
    t->have_gpu = 1;
  }
  if (mfx_tune_db_path(db_path, path, sizeof path) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "the tuning database");
  mfx_status st = mfx_tune_db_open_readonly(path, &t->db);
  if (st == MFX_ERR_NOT_FOUND) mfx_clear_error();
  else if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "the tuning database");
  return 0;
}

void tool_demo_tuning_sources(const tool_demo_tuning *t, int counts[3]) {
  for (int i = 0; i < 3; i++) counts[i] = t ? t->chosen[i] : 0;
}

void tool_demo_tuning_free(tool_demo_tuning *t) {
  if (t == NULL) return;
  if (t->db != NULL) mfx_tune_db_close(t->db);
  free(t);
}
