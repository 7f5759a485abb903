/* The tuning loop. Resuming loads the key's trials from the database into
 * the search (never measured again, and counted against the budget); then,
 * round by round: the strategy proposes a batch of valid unmeasured
 * configs, the evaluation step builds and runs them, and each trial is
 * committed the moment it is final, then fed back to the search. */
#include <stdlib.h>
#include <string.h>

#include "autotune_internal.h"

void mfx_tune_options_default(mfx_tune_options *o) {
  memset(o, 0, sizeof *o);
  o->strategy = MFX_SEARCH_MODEL;
  o->trials = 32;
  o->seed = 1;
  mfx_runner_options_default(&o->runner);
}

typedef struct {
  mfx_tune_db *db;
  const mfx_tune_key *key;
  const mfx_tune_options *o;
  mfx_space space;
  mfx_search *search;
  mfx_tune_summary *sum;
  const uint64_t *batch;  /* the indices being evaluated */
  tune_map loaded;        /* resumed configs */
  int done;               /* trials of the key, resumed ones included */
  double t0;
  mfx_status commit;      /* the first failure to load or commit a trial */
} tune_state;

static void tune_consider_best(tune_state *s, const mfx_trial *t) {
  if (t->status != MFX_TRIAL_OK) return;
  mfx_tune_summary *sum = s->sum;
  if (!sum->have_best || t->m.median_s < sum->best_s) {
    sum->have_best = 1;
    sum->best = t->cfg;
    sum->best_s = t->m.median_s;
    sum->best_spread = t->m.spread;
  }
}

static void tune_report(tune_state *s, const mfx_trial *last) {
  if (s->o->progress == NULL) return;
  mfx_tune_progress p;
  memset(&p, 0, sizeof p);
  p.done = s->done;
  p.total = s->o->trials;
  p.resumed = s->sum->resumed;
  p.last = last;
  p.have_best = s->sum->have_best;
  p.best = s->sum->best;
  p.best_s = s->sum->best_s;
  p.elapsed_s = mfx_now_seconds() - s->t0;
  int ran = s->done - s->sum->resumed;
  p.eta_s = ran > 0 ? p.elapsed_s / ran * (p.total - p.done) : -1.0;
  s->o->progress(s->o->progress_user, &p);
}

/* ---- resuming ------------------------------------------------------------------- */

static int tune_load_trial(void *user, const mfx_trial *t) {
  tune_state *s = user;
  uint64_t index;
  if (mfx_space_index(&s->space, &t->cfg, &index) != MFX_OK) {
    mfx_clear_error(); /* a config of an older template: not in this space */
    return 0;
  }
  if (!tune_map_get(&s->loaded, index, NULL)) {
    s->commit = tune_map_put(&s->loaded, index, 1);
    s->sum->resumed += s->commit == MFX_OK;
  }
  double seconds = t->status == MFX_TRIAL_OK ? t->m.median_s : 0.0;
  if (s->commit == MFX_OK) s->commit = mfx_search_observe(s->search, index, seconds);
  tune_consider_best(s, t);
  return s->commit != MFX_OK;
}

static mfx_status tune_resume(tune_state *s) {
  MFX_TRY(mfx_tune_db_trials(s->db, s->key, tune_load_trial, s));
  if (s->commit != MFX_OK) return mfx_fail_context(s->commit, "resuming");
  s->done = s->sum->resumed;
  tune_report(s, NULL);
  return MFX_OK;
}

/* ---- one trial done ---------------------------------------------------------------- */

static void tune_trial_done(void *user, int i, const mfx_trial *t) {
  tune_state *s = user;
  mfx_tune_summary *sum = s->sum;
  if (s->db != NULL && s->commit == MFX_OK)
    s->commit = mfx_tune_db_add_trial(s->db, s->key, sum->session, t);
  double seconds = t->status == MFX_TRIAL_OK ? t->m.median_s : 0.0;
  if (s->commit == MFX_OK) s->commit = mfx_search_observe(s->search, s->batch[i], seconds);
  sum->trials++;
  sum->ok += t->status == MFX_TRIAL_OK;
  sum->errors += t->status == MFX_TRIAL_ERROR;
  sum->wrong += t->status == MFX_TRIAL_WRONG;
  tune_consider_best(s, t);
  s->done++;
  tune_report(s, t);
}

/* ---- the loop -------------------------------------------------------------------------- */

static mfx_status tune_round(tune_state *s, int batch, tune_evaluate_fn evaluate, void *user,
                             uint64_t *indices, mfx_trial *trials, int *got) {
  int want = s->o->trials - s->done < batch ? s->o->trials - s->done : batch;
  MFX_TRY(mfx_search_next(s->search, want, indices, got));
  if (*got == 0) return MFX_OK;
  s->batch = indices;
  MFX_TRY(evaluate(user, *got, indices, trials, tune_trial_done, s));
  return s->commit;
}

static mfx_status tune_loop(tune_state *s, int batch, tune_evaluate_fn evaluate, void *user) {
  uint64_t *indices = malloc(sizeof *indices * (size_t)batch);
  mfx_trial *trials = malloc(sizeof *trials * (size_t)batch);
  mfx_status st = indices && trials ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "tune: out of memory");
  if (st == MFX_OK && s->db != NULL && s->o->resume) st = tune_resume(s);
  while (st == MFX_OK && s->done < s->o->trials) {
    int got = 0;
    st = tune_round(s, batch, evaluate, user, indices, trials, &got);
    if (st == MFX_OK && got == 0) {
      s->sum->exhausted = 1;
      break;
    }
  }
  free(indices);
  free(trials);
  return st;
}

static mfx_status tune_check_options(const mfx_tune_key *key, const mfx_tune_options *o,
                                     mfx_tune_summary *out) {
  if (key == NULL || key->op == NULL || o == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune: key, options and summary must not be NULL");
  if (o->trials < 1)
    return mfx_fail(MFX_ERR_INVALID, "tune: trials=%d must be at least 1", o->trials);
  return MFX_OK;
}

mfx_status tune_run_loop(mfx_tune_db *db, const mfx_tune_key *key, const mfx_tune_options *o,
                         int batch, tune_evaluate_fn evaluate, void *user,
                         mfx_tune_summary *out) {
  MFX_TRY(tune_check_options(key, o, out));
  memset(out, 0, sizeof *out);
  if (o->session != NULL) tune_copy_text(out->session, sizeof out->session, o->session);
  else tune_session_id(out->session, sizeof out->session);
  tune_state s;
  memset(&s, 0, sizeof s);
  s.db = db;
  s.key = key;
  s.o = o;
  s.sum = out;
  s.t0 = mfx_now_seconds();
  tune_map_init(&s.loaded);
  MFX_TRY(tune_space_init_key(&s.space, key));
  MFX_TRY(mfx_search_create(&s.space, o->strategy, o->seed, &s.search));
  mfx_status st = tune_loop(&s, batch > 0 ? batch : 1, evaluate, user);
  out->invalid = mfx_search_invalid(s.search);
  out->space_size = s.space.size;
  out->elapsed_s = mfx_now_seconds() - s.t0;
  mfx_search_destroy(s.search);
  tune_map_free(&s.loaded);
  return st;
}

/* ---- in this process ---------------------------------------------------------------------- */

typedef struct {
  mfx_runner *runner;
  const mfx_space *space;
} tune_local;

static mfx_status tune_evaluate_local(void *user, int n, const uint64_t *indices,
                                      mfx_trial *trials, mfx_trial_done_fn done,
                                      void *done_user) {
  tune_local *l = user;
  mfx_config *cfgs = malloc(sizeof *cfgs * (size_t)n);
  if (cfgs == NULL) return mfx_fail(MFX_ERR_NOMEM, "tune: out of memory");
  for (int i = 0; i < n; i++) mfx_space_config(l->space, indices[i], &cfgs[i]);
  mfx_status st = mfx_runner_evaluate(l->runner, n, cfgs, trials, done, done_user);
  free(cfgs);
  return st;
}

int tune_default_batch(const mfx_tune_options *o) {
  if (o->batch > 0) return o->batch;
  int jobs = o->runner.jobs > 1 ? o->runner.jobs : 1;
  return 2 * jobs > 4 ? 2 * jobs : 4;
}

mfx_status mfx_tune(mfx_tune_db *db, const mfx_tune_key *key, const mfx_tune_options *o,
                    mfx_tune_summary *out) {
  MFX_TRY(tune_check_options(key, o, out));
  mfx_space space;
  MFX_TRY(tune_space_init_key(&space, key));
  tune_local local = {NULL, &space};
  MFX_TRY(mfx_runner_create(key->op, key->dims, &o->runner, &local.runner));
  mfx_status st = tune_run_loop(db, key, o, tune_default_batch(o), tune_evaluate_local, &local,
                                out);
  mfx_runner_destroy(local.runner);
  return st;
}
