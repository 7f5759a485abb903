/* Tuning on a GPU without one: the tuner against the fake libcuda of
 * tests/fake_cuda (built here), whose timing model makes the time of an
 * event pair a deterministic function of what was launched, with its
 * device limits and faults set through its environment; and the tuner
 * through the compiler's GPU emulation (target emulate) on shapes that
 * divide no tile. The expected best is computed here, independently: every
 * config of the space built to PTX, its launches priced by the fake's own
 * model, over-limit and faulting ones left out. */
#define _GNU_SOURCE
#include "mfx/artifact.h"
#include "mfx/autotune.h"

#include <check.h>
#include <dlfcn.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check_main.h"

static char work_dir[256];
static char fake_path[320];
static int fake_built;
static char build_log[1024];

typedef double (*model_fn)(const char *name, const unsigned grid[3], const unsigned block[3],
                           unsigned shared);

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void setup(void) {
  snprintf(work_dir, sizeof work_dir, "%s/mfx_test_gputune_XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(work_dir) == NULL) {
    work_dir[0] = '\0';
    return;
  }
  const char *src = getenv("MFX_SOURCE_DIR") != NULL ? getenv("MFX_SOURCE_DIR") : ".";
  const char *cc = getenv("CC") != NULL ? getenv("CC") : "cc";
  char command[1200];
  snprintf(fake_path, sizeof fake_path, "%s/libcuda.so.1", work_dir);
  snprintf(command, sizeof command,
           "%s -std=gnu11 -O1 -Wall -shared -fPIC -o '%s' '%s/tests/fake_cuda/fake_cuda.c' "
           "-lpthread 2>&1", cc, fake_path, src);
  FILE *p = popen(command, "r");
  if (p == NULL) return;
  size_t n = fread(build_log, 1, sizeof build_log - 1, p);
  build_log[n] = '\0';
  fake_built = pclose(p) == 0;
}

static void teardown(void) {
  if (work_dir[0] != '\0') nftw(work_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void use_fake(void) {
  ck_assert_msg(fake_built, "building the fake libcuda failed: %s", build_log);
  setenv("MFX_CUDA_LIBRARY", fake_path, 1);
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  unsetenv("FAKE_CUDA_MAX_THREADS");
  unsetenv("FAKE_CUDA_FAULT_THREADS");
  unsetenv("FAKE_CUDA_SMS");
  unsetenv("FAKE_CUDA_NAME");
}

static void in_work(const char *name, char *out, size_t cap) {
  ck_assert_int_lt(snprintf(out, cap, "%s/%s", work_dir, name), (int)cap);
}

/* The fake's model time of cfg: every launch of its PTX build, summed. */
static double model_seconds(model_fn model, const mfx_op *op, const int64_t *dims,
                            const mfx_config *cfg) {
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_artifact_kernel k;
  memset(&k, 0, sizeof k);
  ck_assert_int_eq(mfx_op_build_for(op, "cuda:sm_90", a, dims, cfg, &s), MFX_OK);
  snprintf(k.name, sizeof k.name, "%s_tune", op->name);
  snprintf(k.op, sizeof k.op, "%s", op->name);
  snprintf(k.target, sizeof k.target, "cuda:sm_90");
  k.n_dims = op->n_dims;
  for (int d = 0; d < op->n_dims; d++) {
    snprintf(k.dim_names[d], sizeof k.dim_names[d], "%s", op->dims[d]);
    k.dims[d] = dims[d];
  }
  ck_assert_msg(mfx_artifact_build(s, &k) == MFX_OK, "%s", mfx_last_error());
  double ms = 0.0;
  for (int i = 0; i < k.n_launches; i++) {
    const mfx_artifact_launch *l = &k.launches[i];
    unsigned grid[3] = {l->grid[0], l->grid[1], l->grid[2]};
    unsigned block[3] = {l->block[0], l->block[1], l->block[2]};
    ms += model(l->name, grid, block, (unsigned)l->shared_dynamic);
  }
  mfx_artifact_kernel_release(&k);
  mfx_arena_destroy(a);
  return ms * 1e-3;
}

typedef struct {
  int n;
  mfx_trial trials[64];
} trial_list;

static int collect(void *user, const mfx_trial *t) {
  trial_list *l = user;
  if (l->n < 64) l->trials[l->n++] = *t;
  return 0;
}

static int64_t threads_of(const mfx_config *cfg) { return mfx_config_get(cfg, "threads"); }

static const mfx_trial *trial_with(const trial_list *l, int64_t threads) {
  const mfx_trial *found = NULL;
  for (int i = 0; i < l->n; i++)
    if (threads_of(&l->trials[i].cfg) == threads) {
      ck_assert_msg(found == NULL, "threads=%lld measured twice", (long long)threads);
      found = &l->trials[i];
    }
  ck_assert_msg(found != NULL, "no trial of threads=%lld", (long long)threads);
  return found;
}

static void tune_fake(const mfx_op *op, const int64_t *dims, const char *db_path,
                      mfx_tune_key *key, mfx_tune_summary *sum, int resume) {
  mfx_tune_db *db = NULL;
  mfx_tune_options o;
  ck_assert_msg(mfx_tune_key_init(key, op, dims, "cuda") == MFX_OK, "%s", mfx_last_error());
  mfx_tune_options_default(&o);
  o.strategy = MFX_SEARCH_EXHAUSTIVE;
  o.trials = 64;
  o.resume = resume;
  o.runner.target = "cuda";
  o.runner.jobs = 2;
  o.runner.timeout_s = 60.0;
  o.runner.measure.min_seconds = 1e-4;
  ck_assert_int_eq(mfx_tune_db_open(db_path, &db), MFX_OK);
  ck_assert_msg(mfx_tune(db, key, &o, sum) == MFX_OK, "%s", mfx_last_error());
  mfx_tune_db_close(db);
}

/* Limits, a sticky fault, the fake-fastest valid config, no trial lost. */
START_TEST(test_fake_fastest_valid) {
  use_fake();
  char db_path[300], log_path[300];
  in_work("fastest.db", db_path, sizeof db_path);
  in_work("launches.log", log_path, sizeof log_path);
  setenv("FAKE_CUDA_MAX_THREADS", "512", 1);  /* threads=1024 is over the limit */
  setenv("FAKE_CUDA_FAULT_THREADS", "256", 1); /* threads=256 faults, sticky */
  setenv("FAKE_CUDA_LOG", log_path, 1);
  setenv("FAKE_CUDA_NAME", "Fake H100 for tuning", 1);
  const mfx_op *op = mfx_op_find("q16_dequantize");
  ck_assert_ptr_nonnull(op);
  int64_t dims[2] = {37, 41}; /* 1517 elements: a tail for every threads choice */
  mfx_tune_key key;
  mfx_tune_summary sum;
  tune_fake(op, dims, db_path, &key, &sum, 0);

  /* keyed by the fake device */
  ck_assert_str_eq(key.target.target, "cuda");
  ck_assert_str_eq(key.target.arch, "sm_90");
  ck_assert_msg(strstr(key.target.device, "Fake H100 for tuning, 132 SMs") != NULL, "%s",
                key.target.device);
  ck_assert_msg(strstr(key.target.device, "driver 12.4") != NULL, "%s", key.target.device);

  /* the expected best, from the fake's model over the valid configs */
  void *lib = dlopen(fake_path, RTLD_NOW | RTLD_LOCAL);
  ck_assert_ptr_nonnull(lib);
  model_fn model;
  *(void **)&model = dlsym(lib, "fake_cuda_model_ms");
  ck_assert_ptr_nonnull(model);
  mfx_space space;
  ck_assert_int_eq(mfx_space_init_for(&space, op, dims, "cuda"), MFX_OK);
  double best_s = INFINITY;
  int64_t best_threads = -1;
  for (uint64_t i = 0; i < space.size; i++) {
    mfx_config cfg;
    mfx_space_config(&space, i, &cfg);
    int64_t threads = threads_of(&cfg);
    if (threads > 512 || threads == 256) continue;
    double s = model_seconds(model, op, dims, &cfg);
    if (s < best_s) best_s = s, best_threads = threads;
  }
  ck_assert_int_ne(best_threads, 64); /* the first config measured is not the answer */
  ck_assert(sum.have_best);
  ck_assert_int_eq(threads_of(&sum.best), best_threads);
  ck_assert_msg(fabs(sum.best_s - best_s) <= 1e-6 * best_s + 1e-12, "best %.9g s, model %.9g s",
                sum.best_s, best_s);

  /* every config one trial: 3 ok, the over-limit one and the faulting one errors */
  ck_assert_int_eq(sum.trials, (int)space.size);
  ck_assert_int_eq(sum.ok, (int)space.size - 2);
  ck_assert_int_eq(sum.errors, 2);
  ck_assert_int_eq(sum.wrong, 0);
  mfx_tune_db *db = NULL;
  trial_list list = {0};
  ck_assert_int_eq(mfx_tune_db_open(db_path, &db), MFX_OK);
  ck_assert_int_eq(mfx_tune_db_trials(db, &key, collect, &list), MFX_OK);
  mfx_tune_db_close(db);
  ck_assert_int_eq(list.n, (int)space.size);
  const mfx_trial *over = trial_with(&list, 1024), *fault = trial_with(&list, 256);
  ck_assert_int_eq(over->status, MFX_TRIAL_ERROR);
  ck_assert_msg(strstr(over->error, "refused before launch") != NULL &&
                    strstr(over->error, "1024 threads per block; the device allows 512") != NULL,
                "%s", over->error);
  ck_assert_int_eq(fault->status, MFX_TRIAL_ERROR);
  ck_assert_msg(strstr(fault->error, "CUDA_ERROR_ILLEGAL_ADDRESS") != NULL, "%s", fault->error);
  /* the configs after the fault were measured by a fresh worker */
  const mfx_trial *after = trial_with(&list, 512);
  ck_assert_int_eq(after->status, MFX_TRIAL_OK);
  ck_assert_msg(strstr(after->resources, "regs 32, spill 0 B") != NULL &&
                    strstr(after->resources, "threads 512") != NULL,
                "%s", after->resources);

  /* nothing over the limit reached the driver */
  FILE *f = fopen(log_path, "r");
  ck_assert_ptr_nonnull(f);
  char line[256];
  int launches = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    ck_assert_msg(strncmp(line, "launch ", 7) == 0, "the driver refused: %s", line);
    ck_assert_msg(strstr(line, "block 1024 ") == NULL, "launched over the limit: %s", line);
    launches++;
  }
  fclose(f);
  ck_assert_int_gt(launches, 3);
  dlclose(lib);
  unsetenv("FAKE_CUDA_LOG");

  /* resuming measures nothing again */
  mfx_tune_summary again;
  tune_fake(op, dims, db_path, &key, &again, 1);
  ck_assert_int_eq(again.trials, 0);
  ck_assert_int_eq(again.resumed, (int)space.size);
  ck_assert_int_eq(threads_of(&again.best), best_threads);
}
END_TEST

/* A GPU record is used for its device; nearest shapes stay on one arch. */
START_TEST(test_fake_lookup_by_device) {
  use_fake();
  char db_path[300];
  in_work("lookup.db", db_path, sizeof db_path);
  const mfx_op *op = mfx_op_find("q16_dequantize");
  int64_t dims[2] = {37, 41};
  mfx_tune_key key;
  mfx_tune_summary sum;
  setenv("FAKE_CUDA_MAX_THREADS", "128", 1);
  tune_fake(op, dims, db_path, &key, &sum, 0);
  ck_assert(sum.have_best);
  mfx_tune_db *db = NULL;
  ck_assert_int_eq(mfx_tune_db_open_readonly(db_path, &db), MFX_OK);
  mfx_tune_choice c;
  ck_assert_int_eq(mfx_tune_choose(db, &key, &c), MFX_OK);
  ck_assert_int_eq(c.source, MFX_TUNE_TUNED);
  ck_assert_int_le(threads_of(&c.cfg), 128);
  /* another shape on the same arch: the nearest tuned one */
  mfx_tune_key near = key;
  near.dims[0] = 40;
  ck_assert_int_eq(mfx_tune_choose(db, &near, &c), MFX_OK);
  ck_assert_int_eq(c.source, MFX_TUNE_NEAREST);
  /* another arch: never a record of sm_90 */
  mfx_tune_key other = near;
  snprintf(other.target.arch, sizeof other.target.arch, "sm_80");
  ck_assert_int_eq(mfx_tune_choose(db, &other, &c), MFX_OK);
  ck_assert_int_eq(c.source, MFX_TUNE_DEFAULT);
  mfx_tune_db_close(db);
}
END_TEST

/* linear tuned on a fake device of compute capability cc: the trials
 * recorded, and the summary. */
static void tune_linear_on(const char *cc, const char *db_name, trial_list *list,
                           mfx_tune_summary *sum) {
  use_fake();
  setenv("FAKE_CUDA_CC", cc, 1);
  char db_path[300];
  in_work(db_name, db_path, sizeof db_path);
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[3] = {13, 17, 19};
  mfx_tune_key key;
  mfx_tune_db *db = NULL;
  mfx_tune_options o;
  ck_assert_msg(mfx_tune_key_init(&key, op, dims, "cuda") == MFX_OK, "%s", mfx_last_error());
  mfx_tune_options_default(&o);
  o.strategy = MFX_SEARCH_RANDOM;
  o.seed = 5;
  o.trials = 10;
  o.runner.target = "cuda";
  o.runner.jobs = 2;
  o.runner.timeout_s = 60.0;
  o.runner.measure.min_seconds = 1e-4;
  ck_assert_int_eq(mfx_tune_db_open(db_path, &db), MFX_OK);
  ck_assert_msg(mfx_tune(db, &key, &o, sum) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_tune_db_trials(db, &key, collect, list), MFX_OK);
  mfx_tune_db_close(db);
  unsetenv("FAKE_CUDA_CC");
}

static int trials_with(const trial_list *l, const char *knob) {
  int n = 0;
  for (int i = 0; i < l->n; i++) n += mfx_config_get(&l->trials[i].cfg, knob) == 1;
  return n;
}

/* The space knows the arch: on an sm_75 device tensor cores (mma=1) and
 * cp.async (double_buffer=1) are invalid configs, neither built nor
 * recorded, so no trial fails; an sm_90 device has them. (The fake runs no
 * linear kernel: its trials are wrong, not failed.) */
START_TEST(test_fake_space_knows_the_arch) {
  trial_list old = {0}, new = {0};
  mfx_tune_summary sum_old, sum_new;
  tune_linear_on("75", "sm75.db", &old, &sum_old);
  ck_assert_int_eq(old.n, 10);
  ck_assert_int_eq(sum_old.errors, 0);
  for (int i = 0; i < old.n; i++)
    ck_assert_msg(old.trials[i].status != MFX_TRIAL_ERROR, "sm_75 trial failed: %s",
                  old.trials[i].error);
  ck_assert_int_eq(trials_with(&old, "mma"), 0);
  ck_assert_int_eq(trials_with(&old, "double_buffer"), 0);
  ck_assert_int_gt(sum_old.invalid, 0);
  tune_linear_on("90", "sm90.db", &new, &sum_new);
  ck_assert_int_eq(new.n, 10);
  ck_assert_int_eq(sum_new.errors, 0);
  ck_assert_int_gt(trials_with(&new, "mma"), 0);
  ck_assert_int_gt(trials_with(&new, "double_buffer"), 0);
}
END_TEST

START_TEST(test_gpu_target_errors) {
  use_fake();
  const mfx_op *op = mfx_op_find("q16_dequantize");
  int64_t dims[2] = {4, 4};
  mfx_tune_key key;
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "cuda:7"), MFX_ERR_DEVICE);
  ck_assert_msg(strstr(mfx_last_error(), "cuda:7: only 1 CUDA device here: cuda:0 (Fake CUDA "
                                         "Device 0, sm_90)") != NULL,
                "%s", mfx_last_error());
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "cuda:sm_80"), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "gpu"), MFX_ERR_INVALID);
  setenv("MFX_CUDA_LIBRARY", "/nonexistent/libcuda.so.1", 1);
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "cuda"), MFX_ERR_DEVICE);
  ck_assert_msg(strstr(mfx_last_error(), "no CUDA driver found (/nonexistent/libcuda.so.1)") !=
                    NULL,
                "%s", mfx_last_error());
}
END_TEST

/* Every candidate of the emulated GPU template checked on a shape that
 * divides no tile. */
START_TEST(test_emulate_tunes_checked) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[3] = {13, 17, 19};
  mfx_tune_key key;
  mfx_tune_options o;
  mfx_tune_summary sum;
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "emulate"), MFX_OK);
  ck_assert_str_eq(key.target.target, "emulate");
  mfx_tune_options_default(&o);
  o.strategy = MFX_SEARCH_RANDOM;
  o.trials = 4;
  o.runner.target = "emulate";
  o.runner.jobs = 2;
  o.runner.measure.min_seconds = 1e-4;
  ck_assert_msg(mfx_tune(NULL, &key, &o, &sum) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(sum.trials, 4);
  ck_assert_int_eq(sum.ok, 4);
  ck_assert(sum.have_best);
  ck_assert_int_eq(mfx_config_get(&sum.best, "block_m") > 0, 1); /* a GPU knob */
}
END_TEST

/* A synthetic GPU objective: best at 128 threads per block and small
 * thread tiles, as a launch-bound kernel might be. */
static double gpu_objective(void *user, const mfx_config *cfg) {
  (void)user;
  double bm = (double)mfx_config_get(cfg, "block_m"), bn = (double)mfx_config_get(cfg, "block_n");
  double tm = (double)mfx_config_get(cfg, "thread_m"), tn = (double)mfx_config_get(cfg, "thread_n");
  double threads = (bm / tm) * (bn / tn), off = log2(threads) - 7.0;
  /* mma=1 (tensor cores) has threads of its own (a warp per 32x32 tile),
   * which thread_m/n do not set: slower here, so the formula stays true */
  double mma = mfx_config_get(cfg, "mma") == 1 ? 2.0 : 1.0;
  return 1e-3 * mma * (1.0 + off * off) * (1.0 + 0.05 * (tm + tn));
}

static double best_of(mfx_strategy strategy, int trials) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[3] = {200, 300, 64};
  mfx_tune_key key;
  mfx_tune_options o;
  mfx_tune_summary sum;
  ck_assert_int_eq(mfx_tune_key_init(&key, op, dims, "emulate"), MFX_OK);
  mfx_tune_options_default(&o);
  o.strategy = strategy;
  o.trials = trials;
  o.seed = 3;
  o.runner.objective = gpu_objective;
  ck_assert_msg(mfx_tune(NULL, &key, &o, &sum) == MFX_OK, "%s", mfx_last_error());
  ck_assert(sum.have_best);
  return sum.best_s;
}

/* The model strategy on a GPU space (with its launch features) beats random
 * search at the same budget on an objective of threads per block. */
START_TEST(test_model_gpu_features) {
  double model = best_of(MFX_SEARCH_MODEL, 40), random = best_of(MFX_SEARCH_RANDOM, 40);
  printf("model-guided best %.6g s, random %.6g s (40 trials each)\n", model, random);
  ck_assert_msg(model <= random, "model %.6g s, random %.6g s", model, random);
  ck_assert_msg(model <= 1.2 * 1.1e-3, "model best %.6g s, the optimum 1.1e-3", model);
}
END_TEST

static Suite *gputune_suite(void) {
  Suite *s = suite_create("gputune");
  TCase *fake = tcase_create("fake");
  tcase_set_timeout(fake, 240);
  tcase_add_unchecked_fixture(fake, setup, teardown);
  tcase_add_test(fake, test_fake_fastest_valid);
  tcase_add_test(fake, test_fake_lookup_by_device);
  tcase_add_test(fake, test_gpu_target_errors);
  tcase_add_test(fake, test_fake_space_knows_the_arch);
  suite_add_tcase(s, fake);
  TCase *emulate = tcase_create("emulate");
  tcase_set_timeout(emulate, 240);
  tcase_add_test(emulate, test_emulate_tunes_checked);
  tcase_add_test(emulate, test_model_gpu_features);
  suite_add_tcase(s, emulate);
  return s;
}

int main(void) {
  return check_run_suite(gputune_suite());
}
