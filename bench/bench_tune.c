/* What tuning buys, measured in one run.
 *
 *   bench_tune [TRIALS]
 *     Tunes linear at M=N=K=512 (model-guided search, TRIALS candidates,
 *     default 48) into a temporary database, then times the template
 *     default and the tuned best side by side (alternating, three rounds,
 *     same measurement protocol) and prints their medians and the ratio.
 *
 *   bench_tune --replay OP DIMS [--db PATH]
 *     Measures every valid config of OP at DIMS (exhaustive; resumable with
 *     --db), then replays the model-guided and the random search with a
 *     32-trial budget over those measurements for 20 seeds each, and prints
 *     how close each gets to the exhaustive best. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/autotune.h"

#define BENCH_ROUNDS 3
#define BENCH_SEEDS 20
#define BENCH_BUDGET 32

static int bench_fail(const char *what) {
  fprintf(stderr, "bench_tune: %s: %s\n", what, mfx_last_error());
  return 1;
}

static void bench_progress(void *user, const mfx_tune_progress *p) {
  (void)user;
  if (p->last == NULL) return;
  int step = p->total >= 200 ? p->total / 20 : 8;
  if (p->done % step == 0 || p->done == p->total)
    fprintf(stderr, "  trial %d/%d  best %.4f ms  %.0f s\n", p->done, p->total,
            p->have_best ? p->best_s * 1e3 : 0.0, p->elapsed_s);
}

static void bench_options(mfx_tune_options *o, mfx_strategy strategy, int trials) {
  mfx_tune_options_default(o);
  o->strategy = strategy;
  o->trials = trials;
  o->runner.jobs = 2;
  o->runner.timeout_s = 60.0;
  o->progress = bench_progress;
}

/* ---- default vs tuned ------------------------------------------------------------ */

static int bench_compare(const mfx_tune_key *key, const mfx_config *tuned) {
  mfx_runner_options ro;
  mfx_runner_options_default(&ro);
  ro.measure.min_seconds = 0.2;
  mfx_runner *r;
  if (mfx_runner_create(key->op, key->dims, &ro, &r) != MFX_OK) return bench_fail("runner");
  mfx_config cfgs[2];
  mfx_config_default(key->op, &cfgs[0]);
  cfgs[1] = *tuned;
  double t[2][BENCH_ROUNDS];
  int rc = 0;
  for (int round = 0; round < BENCH_ROUNDS && rc == 0; round++) {
    mfx_trial trials[2];
    if (mfx_runner_evaluate(r, 2, cfgs, trials, NULL, NULL) != MFX_OK) rc = bench_fail("measure");
    for (int i = 0; i < 2 && rc == 0; i++) {
      if (trials[i].status != MFX_TRIAL_OK) {
        fprintf(stderr, "bench_tune: %s config failed: %s\n", i ? "tuned" : "default",
                trials[i].error);
        rc = 1;
      }
      t[i][round] = trials[i].m.median_s;
    }
  }
  mfx_runner_destroy(r);
  if (rc != 0) return rc;
  double med[2];
  for (int i = 0; i < 2; i++) { /* median of three */
    double a = t[i][0], b = t[i][1], c = t[i][2];
    med[i] = fmax(fmin(a, b), fmin(fmax(a, b), c));
  }
  char config[1024];
  mfx_config_to_json(tuned, config, sizeof config);
  double gflop = 2.0 * (double)key->dims[0] * (double)key->dims[1] * (double)key->dims[2] * 1e-9;
  printf("default  %8.3f ms  %6.1f GFLOP/s\n", med[0] * 1e3, gflop / med[0]);
  printf("tuned    %8.3f ms  %6.1f GFLOP/s  %s\n", med[1] * 1e3, gflop / med[1], config);
  printf("ratio    %.2fx (default time / tuned time)\n", med[0] / med[1]);
  return 0;
}

static int bench_linear(int trials) {
  char dir[] = "/tmp/mfx_bench_tune_XXXXXX", path[256];
  if (mkdtemp(dir) == NULL) return perror("bench_tune: mkdtemp"), 1;
  snprintf(path, sizeof path, "%s/tune.db", dir);
  mfx_tune_key key;
  mfx_tune_options o;
  mfx_tune_summary s;
  mfx_tune_db *db = NULL;
  int64_t dims[3] = {512, 512, 512};
  if (mfx_tune_key_init(&key, mfx_op_find("linear"), dims, "cpu") != MFX_OK) return bench_fail("key");
  if (mfx_tune_db_open(path, &db) != MFX_OK) return bench_fail("database");
  bench_options(&o, MFX_SEARCH_MODEL, trials);
  printf("linear M=N=K=512 on %s, %d trials (model-guided)\n", key.target.device, trials);
  mfx_status st = mfx_tune(db, &key, &o, &s);
  mfx_tune_db_close(db);
  unlink(path);
  char wal[300];
  snprintf(wal, sizeof wal, "%s-wal", path);
  unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", path);
  unlink(wal);
  rmdir(dir);
  if (st != MFX_OK) return bench_fail("tune");
  printf("tuning   %d trials (ok %d, error %d, wrong %d) in %.1f s\n", s.trials, s.ok, s.errors,
         s.wrong, s.elapsed_s);
  if (!s.have_best) return fprintf(stderr, "bench_tune: no candidate passed\n"), 1;
  return bench_compare(&key, &s.best);
}

/* ---- replay over an exhaustive measurement ---------------------------------------------- */

typedef struct {
  const mfx_space *space;
  double *seconds; /* per index; 0 failed, -1 not measured */
} bench_table;

static int bench_record(void *user, const mfx_trial *t) {
  bench_table *b = user;
  uint64_t index;
  if (mfx_space_index(b->space, &t->cfg, &index) != MFX_OK) return 0;
  double s = t->status == MFX_TRIAL_OK ? t->m.median_s : 0.0;
  if (b->seconds[index] < 0.0 || (s > 0.0 && s < b->seconds[index])) b->seconds[index] = s;
  return 0;
}

/* Best time a strategy reaches in `budget` trials over the table. */
static double bench_replay_one(const bench_table *b, mfx_strategy strategy, uint64_t seed,
                               int budget) {
  mfx_search *search;
  if (mfx_search_create(b->space, strategy, seed, &search) != MFX_OK) return INFINITY;
  double best = INFINITY;
  for (int done = 0; done < budget;) {
    uint64_t batch[4];
    int got = 0;
    if (mfx_search_next(search, budget - done < 4 ? budget - done : 4, batch, &got) != MFX_OK ||
        got == 0)
      break;
    for (int i = 0; i < got; i++) {
      double s = b->seconds[batch[i]] > 0.0 ? b->seconds[batch[i]] : 0.0;
      mfx_search_observe(search, batch[i], s);
      if (s > 0.0 && s < best) best = s;
    }
    done += got;
  }
  mfx_search_destroy(search);
  return best;
}

static void bench_replay_report(const bench_table *b, mfx_strategy strategy, double optimum) {
  double ratios[BENCH_SEEDS], sum = 0.0, worst = 0.0;
  int within10 = 0;
  for (int seed = 0; seed < BENCH_SEEDS; seed++) {
    ratios[seed] = bench_replay_one(b, strategy, (uint64_t)seed + 1, BENCH_BUDGET) / optimum;
    sum += ratios[seed];
    worst = fmax(worst, ratios[seed]);
    within10 += ratios[seed] <= 1.10;
  }
  printf("%-10s %d trials: best/exhaustive-best mean %.3f, worst %.3f, within 10%% in %d/%d "
         "seeds\n",
         mfx_strategy_name(strategy), BENCH_BUDGET, sum / BENCH_SEEDS, worst, within10,
         BENCH_SEEDS);
}

static int bench_replay(const char *op_name, const char *dims_text, const char *db_path) {
  const mfx_op *op = mfx_op_find(op_name);
  int64_t dims[MFX_OP_MAX_DIMS];
  if (op == NULL) return fprintf(stderr, "bench_tune: unknown op %s\n", op_name), 1;
  if (mfx_op_parse_dims(op, dims_text, dims) != MFX_OK) return bench_fail("dims");
  mfx_tune_key key;
  mfx_space space;
  mfx_tune_db *db;
  mfx_tune_options o;
  mfx_tune_summary s;
  if (mfx_tune_key_init(&key, op, dims, "cpu") != MFX_OK || mfx_space_init(&space, op, dims) != MFX_OK)
    return bench_fail("key");
  if (mfx_tune_db_open(db_path, &db) != MFX_OK) return bench_fail("database");
  bench_options(&o, MFX_SEARCH_EXHAUSTIVE, (int)space.size);
  o.resume = 1;
  o.runner.measure.min_seconds = 0.02;
  printf("%s %s: measuring all %llu configs (exhaustive, resumable) into %s\n", op->name,
         dims_text, (unsigned long long)space.size, db_path);
  mfx_status st = mfx_tune(db, &key, &o, &s);
  bench_table b = {&space, malloc(sizeof(double) * space.size)};
  for (uint64_t i = 0; b.seconds != NULL && i < space.size; i++) b.seconds[i] = -1.0;
  if (st == MFX_OK && b.seconds != NULL) st = mfx_tune_db_trials(db, &key, bench_record, &b);
  mfx_tune_db_close(db);
  if (st != MFX_OK || b.seconds == NULL) return free(b.seconds), bench_fail("exhaustive");
  printf("exhaustive best %.4f ms %s\n", s.best_s * 1e3, s.have_best ? "" : "(none)");
  bench_replay_report(&b, MFX_SEARCH_MODEL, s.best_s);
  bench_replay_report(&b, MFX_SEARCH_RANDOM, s.best_s);
  free(b.seconds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "--replay") == 0) {
    const char *db = argc >= 6 && strcmp(argv[4], "--db") == 0 ? argv[5] : "bench_tune_replay.db";
    return bench_replay(argv[2], argv[3], db);
  }
  int trials = argc > 1 ? atoi(argv[1]) : 48;
  if (trials < 1) {
    fprintf(stderr, "usage: bench_tune [TRIALS] | --replay OP DIMS [--db PATH]\n");
    return 2;
  }
  return bench_linear(trials);
}
