/* The builder/runner split. A batch of candidates is first built on the
 * host by `jobs` threads (each compile has its own arena and JIT), then each
 * candidate is run where it is measured: in this process, or in a child
 * process (fork) that is killed after a timeout, so that a crashing or
 * hanging kernel becomes an error trial and the tuning goes on. Running a
 * candidate means: clear the outputs, launch once (the warm-up), compare
 * every output with the reference, and only then time it. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autotune_internal.h"

struct mfx_runner {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_runner_options o;
  mfx_array inputs[MFX_OP_MAX_TENSORS];
  mfx_array expected[MFX_OP_MAX_TENSORS];
  mfx_array outputs[MFX_OP_MAX_TENSORS];
  mfx_pool *pool;                 /* in-process runs only */
  int emulate;                    /* target emulate: GPU templates JIT-emulated */
  tune_gpu *gpu;                  /* target cuda[:N] */
  unsigned char *flush;
  size_t flush_bytes;
};

void mfx_runner_options_default(mfx_runner_options *o) {
  memset(o, 0, sizeof *o);
  o->jobs = 1;
  o->input_seed = 1;
  mfx_measure_options_default(&o->measure);
}

static const char *const tune_trial_status_names[] = {
    [MFX_TRIAL_OK] = "ok",
    [MFX_TRIAL_ERROR] = "error",
    [MFX_TRIAL_WRONG] = "wrong",
};
#define TUNE_N_TRIAL_STATUS \
  ((int)(sizeof tune_trial_status_names / sizeof tune_trial_status_names[0]))

const char *mfx_trial_status_name(mfx_trial_status s) {
  return mfx_name_of(tune_trial_status_names, sizeof(char *), TUNE_N_TRIAL_STATUS, (int)s, "?");
}

int mfx_trial_status_from_name(const char *name, mfx_trial_status *out) {
  int i = mfx_name_index(tune_trial_status_names, sizeof(char *), TUNE_N_TRIAL_STATUS, name);
  if (i < 0) return -1;
  *out = (mfx_trial_status)i;
  return 0;
}

/* ---- create / destroy ------------------------------------------------------ */

static mfx_status tune_runner_arrays(mfx_runner *r) {
  const mfx_op *op = r->op;
  MFX_TRY(mfx_op_alloc_inputs(op, r->dims, r->inputs));
  mfx_op_random_inputs(op, r->dims, r->o.input_seed, r->inputs);
  MFX_TRY(mfx_op_alloc_outputs(op, r->dims, r->expected));
  MFX_TRY(mfx_op_alloc_outputs(op, r->dims, r->outputs));
  op->reference(r->dims, r->inputs, r->expected);
  return MFX_OK;
}

/* Which kind of runner o->target asks for. */
static mfx_status tune_runner_target(mfx_runner *r) {
  mfx_target t;
  if (r->o.target == NULL) return MFX_OK;
  MFX_TRY(mfx_target_parse(r->o.target, &t));
  if (t.kind == MFX_TARGET_EMULATE) r->emulate = 1;
  if (t.kind == MFX_TARGET_CUDA && t.sm > 0)
    return mfx_fail(MFX_ERR_INVALID, "runner: target '%s' names an architecture, not a device; "
                    "give cuda or cuda:N", r->o.target);
  return MFX_OK;
}

static mfx_status tune_runner_setup(mfx_runner *r) {
  if (r->o.objective != NULL) return MFX_OK;
  MFX_TRY(tune_runner_target(r));
  MFX_TRY(tune_runner_arrays(r));
  if (r->o.target != NULL && mfx_target_names_gpu(r->o.target))
    return tune_gpu_create(r->op, r->dims, &r->o, r->inputs, r->expected, &r->gpu);
  if (r->o.timeout_s <= 0.0) MFX_TRY(mfx_pool_create(r->o.threads, &r->pool));
  if (r->o.measure.flush_cache) {
    r->flush_bytes = mfx_measure_flush_bytes();
    r->flush = malloc(r->flush_bytes);
    if (r->flush == NULL)
      return mfx_fail(MFX_ERR_NOMEM, "runner: out of memory for a %zu-byte cache flush buffer",
                      r->flush_bytes);
  }
  return MFX_OK;
}

mfx_status mfx_runner_create(const mfx_op *op, const int64_t *dims, const mfx_runner_options *o,
                             mfx_runner **out) {
  if (op == NULL || dims == NULL || o == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "runner: op, dims, options and out must not be NULL");
  mfx_runner *r = calloc(1, sizeof *r);
  if (r == NULL) return mfx_fail(MFX_ERR_NOMEM, "runner: out of memory");
  r->op = op;
  memcpy(r->dims, dims, sizeof(int64_t) * (size_t)op->n_dims);
  r->o = *o;
  if (r->o.jobs < 1) r->o.jobs = 1;
  mfx_status st = tune_runner_setup(r);
  if (st != MFX_OK) {
    mfx_runner_destroy(r);
    return mfx_fail_context(st, "setting up the runner of %s", op->name);
  }
  *out = r;
  return MFX_OK;
}

void mfx_runner_destroy(mfx_runner *r) {
  if (r == NULL) return;
  for (int i = 0; i < MFX_OP_MAX_TENSORS; i++) {
    mfx_array_free(&r->inputs[i]);
    mfx_array_free(&r->expected[i]);
    mfx_array_free(&r->outputs[i]);
  }
  if (r->pool != NULL) mfx_pool_destroy(r->pool);
  tune_gpu_destroy(r->gpu);
  free(r->flush);
  free(r);
}

/* ---- building, in parallel --------------------------------------------------- */

typedef struct {
  mfx_runner *r;
  int n;
  const mfx_config *cfgs;
  mfx_op_kernel *kernels;
  mfx_trial *trials;
  int next; /* atomically claimed */
} tune_build_batch;

static void tune_build_one(tune_build_batch *b, int i) {
  mfx_trial *t = &b->trials[i];
  double t0 = mfx_now_seconds();
  mfx_status st = mfx_op_compile_for(b->r->op, b->r->emulate ? "emulate" : "cpu", b->r->dims,
                                     &b->cfgs[i], &b->kernels[i]);
  t->build_s = mfx_now_seconds() - t0;
  if (st != MFX_OK) {
    t->status = MFX_TRIAL_ERROR;
    snprintf(t->error, sizeof t->error, "build: %s", mfx_last_error());
  }
}

static void *tune_build_worker(void *arg) {
  tune_build_batch *b = arg;
  for (;;) {
    int i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
    if (i >= b->n) return NULL;
    tune_build_one(b, i);
  }
}

static mfx_status tune_build_all(tune_build_batch *b) {
  int jobs = b->r->o.jobs < b->n ? b->r->o.jobs : b->n;
  pthread_t threads[64];
  if (jobs > 64) jobs = 64;
  int started = 0;
  for (; started < jobs - 1; started++)
    if (pthread_create(&threads[started], NULL, tune_build_worker, b) != 0) break;
  tune_build_worker(b); /* the calling thread builds too */
  for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
  return MFX_OK;
}

/* ---- running one candidate ------------------------------------------------------ */

static void tune_clear_outputs(mfx_runner *r) {
  for (int i = 0; i < r->op->n_outputs; i++) {
    mfx_array *a = &r->outputs[i];
    memset(a->data, 0xff, (size_t)mfx_array_numel(a) * mfx_dtype_size(a->dtype));
  }
}

/* 1 when every output matches; otherwise describes the first that differs. */
static int tune_outputs_match(mfx_runner *r, mfx_trial *t) {
  double tol = tune_tolerance(r->op, &t->cfg, r->o.measure.tol);
  for (int i = 0; i < r->op->n_outputs; i++) {
    mfx_compare c = mfx_compare_arrays_int(&r->outputs[i], &r->expected[i], tol,
                                           r->op->int_tolerance);
    if (c.ok) continue;
    snprintf(t->error, sizeof t->error,
             "%s differs from the reference: max abs err %.3g, max rel err %.3g at element "
             "%lld (tolerance %g)",
             r->op->outputs[i].name, c.max_abs_err, c.max_rel_err, (long long)c.worst_index,
             tol);
    return 0;
  }
  return 1;
}

static void tune_run_candidate(mfx_runner *r, const mfx_op_kernel *k, mfx_pool *pool,
                               mfx_trial *t) {
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  mfx_launch l = {r->o.launch, r->o.launch_user, k, &env, r->inputs, r->outputs,
                  r->flush, r->flush_bytes};
  tune_clear_outputs(r);
  t->status = MFX_TRIAL_ERROR;
  if (mfx_launch_call(&l) != MFX_OK) {
    snprintf(t->error, sizeof t->error, "run: %s", mfx_last_error());
    return;
  }
  if (!tune_outputs_match(r, t)) {
    t->status = MFX_TRIAL_WRONG;
    return;
  }
  mfx_measure_fn measure = r->o.measure_fn != NULL ? r->o.measure_fn : mfx_measure_cpu;
  if (measure(&l, &r->o.measure, &t->m) != MFX_OK) {
    snprintf(t->error, sizeof t->error, "measure: %s", mfx_last_error());
    return;
  }
  t->status = MFX_TRIAL_OK;
}

/* ---- in a child process ----------------------------------------------------------- */

static void tune_child(mfx_runner *r, const mfx_op_kernel *k, mfx_trial *t, int fd) {
  mfx_pool *pool = NULL;
  if (mfx_pool_create(r->o.threads, &pool) != MFX_OK) {
    t->status = MFX_TRIAL_ERROR;
    snprintf(t->error, sizeof t->error, "runner child: %s", mfx_last_error());
  } else {
    tune_run_candidate(r, k, pool, t);
  }
  _exit(tune_write_all(fd, t, sizeof *t) ? 0 : 3);
}

/* Read the child's trial until it is whole, EOF, or the deadline passes.
 * Returns 1 whole, 0 EOF or short, -1 timed out. */
static int tune_read_child(int fd, mfx_trial *t, double deadline) {
  char *p = (char *)t;
  size_t got = 0;
  while (got < sizeof *t) {
    double left = deadline - mfx_now_seconds();
    if (left <= 0.0) return -1;
    struct pollfd pfd = {fd, POLLIN, 0};
    int ready = poll(&pfd, 1, (int)(left * 1000.0) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return 0;
    if (ready == 0) continue;
    ssize_t n = read(fd, p + got, sizeof *t - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    got += (size_t)n;
  }
  return 1;
}

static void tune_child_died(pid_t pid, mfx_trial *t) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  t->status = MFX_TRIAL_ERROR;
  if (WIFSIGNALED(status))
    snprintf(t->error, sizeof t->error, "the candidate crashed: its process died of signal %d (%s)",
             WTERMSIG(status), strsignal(WTERMSIG(status)));
  else
    snprintf(t->error, sizeof t->error,
             "the candidate's process exited with status %d before reporting a result",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void tune_run_forked(mfx_runner *r, const mfx_op_kernel *k, mfx_trial *t) {
  int fds[2];
  fflush(NULL); /* nothing buffered is written twice */
  if (pipe(fds) != 0) {
    t->status = MFX_TRIAL_ERROR;
    snprintf(t->error, sizeof t->error, "runner: pipe: %s", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    tune_child(r, k, t, fds[1]);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    t->status = MFX_TRIAL_ERROR;
    snprintf(t->error, sizeof t->error, "runner: fork: %s", strerror(errno));
    return;
  }
  mfx_trial result = *t;
  int got = tune_read_child(fds[0], &result, mfx_now_seconds() + r->o.timeout_s);
  close(fds[0]);
  if (got == 1) {
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    *t = result;
  } else if (got < 0) {
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    t->status = MFX_TRIAL_ERROR;
    snprintf(t->error, sizeof t->error, "timed out after %g s (the candidate was killed)",
             r->o.timeout_s);
  } else {
    tune_child_died(pid, t);
  }
}

/* ---- a batch ------------------------------------------------------------------------ */

static void tune_evaluate_objective(mfx_runner *r, int n, const mfx_config *cfgs,
                                    mfx_trial *out, mfx_trial_done_fn done, void *user) {
  for (int i = 0; i < n; i++) {
    mfx_trial *t = &out[i];
    memset(t, 0, sizeof *t);
    t->cfg = cfgs[i];
    double s = r->o.objective(r->o.objective_user, &cfgs[i]);
    t->status = s > 0.0 ? MFX_TRIAL_OK : MFX_TRIAL_ERROR;
    if (s > 0.0) t->m = (mfx_measurement){s, s, s, 0.0, 1, 1, s};
    else snprintf(t->error, sizeof t->error, "the objective refused this config");
    t->created = tune_wall_seconds();
    t->rank = r->o.rank;
    if (done != NULL) done(user, i, t);
  }
}

static void tune_run_built(mfx_runner *r, int n, mfx_op_kernel *kernels, mfx_trial *out,
                           mfx_trial_done_fn done, void *user) {
  for (int i = 0; i < n; i++) {
    mfx_trial *t = &out[i];
    if (kernels[i].jit != NULL) {
      if (r->o.timeout_s > 0.0) tune_run_forked(r, &kernels[i], t);
      else tune_run_candidate(r, &kernels[i], r->pool, t);
      mfx_op_kernel_free(&kernels[i]);
    }
    t->created = tune_wall_seconds();
    t->rank = r->o.rank;
    if (done != NULL) done(user, i, t);
  }
}

mfx_status mfx_runner_evaluate(mfx_runner *r, int n, const mfx_config *cfgs, mfx_trial *out,
                               mfx_trial_done_fn done, void *user) {
  if (r == NULL || n < 0 || (n > 0 && (cfgs == NULL || out == NULL)))
    return mfx_fail(MFX_ERR_INVALID, "runner: bad arguments to mfx_runner_evaluate");
  if (r->o.objective != NULL) {
    tune_evaluate_objective(r, n, cfgs, out, done, user);
    return MFX_OK;
  }
  if (r->gpu != NULL) return tune_gpu_evaluate(r->gpu, n, cfgs, out, done, user);
  mfx_op_kernel *kernels = calloc((size_t)n + 1, sizeof *kernels);
  if (kernels == NULL) return mfx_fail(MFX_ERR_NOMEM, "runner: out of memory");
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].cfg = cfgs[i];
  }
  tune_build_batch b = {r, n, cfgs, kernels, out, 0};
  mfx_status st = tune_build_all(&b);
  if (st == MFX_OK) tune_run_built(r, n, kernels, out, done, user);
  for (int i = 0; i < n; i++) mfx_op_kernel_free(&kernels[i]);
  free(kernels);
  return st;
}
