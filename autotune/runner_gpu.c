/* The runner on a CUDA device (TVM's builder/runner split, for CUDA).
 *
 * Builder: `jobs` host threads compile candidates from the op's GPU
 * template to PTX for the device's architecture (each an artifact image:
 * code, arguments and launches), while the calling thread hands finished
 * ones, in order, to the measuring side: builds overlap measurement.
 *
 * Runner: a fault in a kernel (an illegal address, a launch timeout)
 * poisons the whole CUDA context, and a process that forks after cuInit
 * cannot use CUDA in its child. So this process never initialises CUDA:
 * at creation it forks a single-threaded supervisor (the "zygote", which
 * inherits the inputs and the reference outputs), and the zygote forks the
 * worker that opens the device. The worker loads each candidate through the
 * driver, reads its resource use (registers, spills, shared memory, the
 * threads it may be launched with), refuses a launch over the device's
 * limits before launching, runs it once on cleared outputs, compares them
 * with the reference on the host, and times it with CUDA events: repeats of
 * grouped calls to a minimum measured time, the median and spread, with an
 * optional L2 flush (twice the L2 written) before each repeat. After any
 * error of the device the worker answers and exits; the zygote starts a
 * fresh one for the next candidate, and kills one that runs past the
 * timeout. Every candidate ends as one trial. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autotune_internal.h"
#include "mfx/artifact.h"

#define GPU_MAGIC 0x6d667867u /* "mfxg" */
#define GPU_MAX_CALLS 10000
#define GPU_MAX_IMAGE ((uint64_t)1 << 30)

struct tune_gpu {
  const mfx_op *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_runner_options o;
  const mfx_array *inputs, *expected;
  char spec[32];      /* "cuda:N" */
  char sm_target[32]; /* "cuda:sm_90": what candidates are built for */
  mfx_device_info info;
  int link;           /* socket to the zygote */
  pid_t zygote;
  int broken;         /* the zygote is gone */
};

typedef struct {
  uint32_t magic;
  uint32_t pad;
  uint64_t bytes;
} gpu_request;

typedef struct {
  mfx_trial trial;
  int sticky; /* the worker exits after this answer */
} gpu_reply;

/* ---- sockets ------------------------------------------------------------------------- */

static int gpu_send(int fd, const void *buf, size_t bytes) {
  const char *p = buf;
  while (bytes > 0) {
    ssize_t w = send(fd, p, bytes, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 0;
    p += w;
    bytes -= (size_t)w;
  }
  return 1;
}

/* Reads bytes until whole (1), EOF or error (0), or the deadline (-1;
 * deadline <= 0: none). */
static int gpu_recv(int fd, void *buf, size_t bytes, double deadline) {
  char *p = buf;
  while (bytes > 0) {
    int wait_ms = -1;
    if (deadline > 0.0) {
      double left = deadline - mfx_now_seconds();
      if (left <= 0.0) return -1;
      wait_ms = (int)(left * 1000.0) + 1;
    }
    struct pollfd pfd = {fd, POLLIN, 0};
    int ready = poll(&pfd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return 0;
    if (ready == 0) continue;
    ssize_t n = recv(fd, p, bytes, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    p += n;
    bytes -= (size_t)n;
  }
  return 1;
}

static void gpu_error(mfx_trial *t, const char *fmt, const char *what) {
  t->status = MFX_TRIAL_ERROR;
  snprintf(t->error, sizeof t->error, fmt, what);
}

/* ---- the worker: one candidate ----------------------------------------------------------- */

typedef struct {
  const tune_gpu *g;
  mfx_device *dev;
  const mfx_device_info *info;
  mfx_device_buffer in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS];
  mfx_array host_out[MFX_OP_MAX_TENSORS];
  mfx_event *start, *end;
  mfx_device_buffer flush;
  unsigned char *flush_host;
} gpu_worker;

typedef struct {
  const mfx_artifact_kernel *k;
  mfx_module *module;
  mfx_function *fn[MFX_ARTIFACT_MAX_LAUNCHES];
  mfx_function_attributes attr[MFX_ARTIFACT_MAX_LAUNCHES];
  mfx_device_buffer ws[MFX_ARTIFACT_MAX_ARGS];
  uint64_t address[MFX_ARTIFACT_MAX_ARGS];
} gpu_candidate;

static size_t gpu_array_bytes(const mfx_array *a) {
  return (size_t)mfx_array_numel(a) * mfx_dtype_size(a->dtype);
}

static mfx_status gpu_worker_open(gpu_worker *w) {
  const tune_gpu *g = w->g;
  MFX_TRY(mfx_device_open(g->spec, &w->dev));
  w->info = mfx_device_get_info(w->dev);
  for (int i = 0; i < g->op->n_inputs; i++) {
    size_t bytes = gpu_array_bytes(&g->inputs[i]);
    MFX_TRY(mfx_device_buffer_alloc(w->dev, bytes, &w->in[i]));
    MFX_TRY(mfx_device_buffer_write(&w->in[i], 0, g->inputs[i].data, bytes));
  }
  MFX_TRY(mfx_op_alloc_outputs(g->op, g->dims, w->host_out));
  for (int i = 0; i < g->op->n_outputs; i++)
    MFX_TRY(mfx_device_buffer_alloc(w->dev, gpu_array_bytes(&w->host_out[i]), &w->out[i]));
  MFX_TRY(mfx_event_create(w->dev, &w->start));
  MFX_TRY(mfx_event_create(w->dev, &w->end));
  if (g->o.measure.flush_cache) {
    size_t bytes = 2 * (w->info->l2_bytes > 0 ? w->info->l2_bytes : ((size_t)64 << 20));
    w->flush_host = calloc(1, bytes);
    if (w->flush_host == NULL) return mfx_fail(MFX_ERR_NOMEM, "worker: no memory to flush L2");
    MFX_TRY(mfx_device_buffer_alloc(w->dev, bytes, &w->flush));
  }
  return MFX_OK;
}

static uint32_t gpu_threads(const mfx_artifact_launch *l) {
  return l->block[0] * l->block[1] * l->block[2];
}

/* A launch the device or the kernel cannot take: say which limit, before
 * anything is launched. */
static int gpu_over_limits(const gpu_worker *w, const gpu_candidate *c, mfx_trial *t) {
  const mfx_device_info *d = w->info;
  for (int i = 0; i < c->k->n_launches; i++) {
    const mfx_artifact_launch *l = &c->k->launches[i];
    const mfx_function_attributes *a = &c->attr[i];
    uint64_t threads = gpu_threads(l);
    uint64_t shared = (uint64_t)a->static_shared_bytes + l->shared_dynamic;
    const char *why = NULL;
    char text[200];
    if (threads > (uint64_t)d->max_threads_per_block) {
      snprintf(text, sizeof text, "%llu threads per block; the device allows %d",
               (unsigned long long)threads, d->max_threads_per_block);
      why = text;
    } else if (a->max_threads_per_block > 0 && threads > (uint64_t)a->max_threads_per_block) {
      snprintf(text, sizeof text, "%llu threads per block; with %d registers per thread the "
               "kernel may be launched with at most %d", (unsigned long long)threads,
               a->registers, a->max_threads_per_block);
      why = text;
    } else if (shared > d->shared_per_block_optin) {
      snprintf(text, sizeof text, "%llu bytes of shared memory per block; the device allows %zu "
               "(opted in)", (unsigned long long)shared, d->shared_per_block_optin);
      why = text;
    } else if (d->registers_per_block > 0 &&
               (uint64_t)a->registers * threads > (uint64_t)d->registers_per_block) {
      snprintf(text, sizeof text, "%d registers x %llu threads per block; the device has %d",
               a->registers, (unsigned long long)threads, d->registers_per_block);
      why = text;
    }
    if (why != NULL) {
      t->status = MFX_TRIAL_ERROR;
      snprintf(t->error, sizeof t->error, "refused before launch: %s: %s", l->name, why);
      return 1;
    }
  }
  return 0;
}

/* Registers, spills, shared memory and the occupancy of the launch with the
 * most threads in all (the main one). */
static void gpu_resources(const gpu_worker *w, const gpu_candidate *c, mfx_trial *t) {
  const mfx_device_info *d = w->info;
  int main_launch = 0, regs = 0, spill = 0;
  uint64_t shared_max = 0, most = 0;
  for (int i = 0; i < c->k->n_launches; i++) {
    const mfx_artifact_launch *l = &c->k->launches[i];
    uint64_t all = (uint64_t)gpu_threads(l) * l->grid[0] * l->grid[1] * l->grid[2];
    uint64_t shared = (uint64_t)c->attr[i].static_shared_bytes + l->shared_dynamic;
    if (all > most) most = all, main_launch = i;
    if (c->attr[i].registers > regs) regs = c->attr[i].registers;
    if (c->attr[i].local_bytes > spill) spill = c->attr[i].local_bytes;
    if (shared > shared_max) shared_max = shared;
  }
  const mfx_artifact_launch *l = &c->k->launches[main_launch];
  const mfx_function_attributes *a = &c->attr[main_launch];
  double warps = ceil(gpu_threads(l) / 32.0);
  double shared = (double)a->static_shared_bytes + (double)l->shared_dynamic;
  double fit = d->max_threads_per_sm > 0 ? floor(d->max_threads_per_sm / (warps * 32.0)) : 1.0;
  if (d->max_blocks_per_sm > 0 && fit > d->max_blocks_per_sm) fit = d->max_blocks_per_sm;
  if (a->registers > 0 && d->registers_per_sm > 0)
    fit = fmin(fit, floor(d->registers_per_sm / (a->registers * warps * 32.0)));
  if (shared > 0 && d->shared_per_sm > 0) fit = fmin(fit, floor((double)d->shared_per_sm / shared));
  double occupancy = d->max_threads_per_sm > 0 ? fit * warps * 32.0 / d->max_threads_per_sm : 0;
  double blocks = (double)l->grid[0] * l->grid[1] * l->grid[2];
  double waves = fit > 0 && d->multiprocessors > 0 ? blocks / (fit * d->multiprocessors) : 0;
  snprintf(t->resources, sizeof t->resources,
           "regs %d, spill %d B, shared %llu B, threads %u, occupancy %.2f, waves %.2f, "
           "launches %d", regs, spill, (unsigned long long)shared_max, gpu_threads(l),
           occupancy, waves, c->k->n_launches);
}

static mfx_status gpu_launch_all(const gpu_candidate *c) {
  for (int i = 0; i < c->k->n_launches; i++) {
    const mfx_artifact_launch *l = &c->k->launches[i];
    mfx_launch_dims d = {{l->grid[0], l->grid[1], l->grid[2]},
                         {l->block[0], l->block[1], l->block[2]},
                         (size_t)l->shared_dynamic};
    void *params[MFX_ARTIFACT_MAX_ARGS];
    for (int p = 0; p < l->n_args; p++) params[p] = (void *)&c->address[l->args[p]];
    mfx_status st = mfx_function_launch(c->fn[i], &d, params);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}

/* Loads the module, its functions and their attributes; binds arguments. */
static mfx_status gpu_prepare(gpu_worker *w, gpu_candidate *c) {
  const mfx_artifact_kernel *k = c->k;
  MFX_TRY(mfx_module_load(w->dev, k->gpu_image, k->gpu_image_bytes, &c->module));
  for (int i = 0; i < k->n_launches; i++) {
    MFX_TRY(mfx_module_function(c->module, k->launches[i].name, &c->fn[i]));
    MFX_TRY(mfx_function_get_attributes(c->fn[i], &c->attr[i]));
  }
  int first_out = mfx_artifact_role_first(k, MFX_ARG_OUTPUT);
  for (int i = 0; i < k->n_args; i++) {
    if (k->args[i].role == MFX_ARG_INPUT) c->address[i] = w->in[i].address;
    else if (k->args[i].role == MFX_ARG_OUTPUT) c->address[i] = w->out[i - first_out].address;
  }
  return MFX_OK;
}

static mfx_status gpu_alloc_workspace(gpu_worker *w, gpu_candidate *c) {
  for (int i = 0; i < c->k->n_args; i++) {
    if (c->k->args[i].role != MFX_ARG_WORKSPACE) continue;
    MFX_TRY(mfx_device_buffer_alloc(w->dev, mfx_artifact_arg_bytes(&c->k->args[i]), &c->ws[i]));
    c->address[i] = c->ws[i].address;
  }
  return MFX_OK;
}

/* Clear the outputs, run once, read back: the check (and the warm-up). */
static mfx_status gpu_run_once(gpu_worker *w, const gpu_candidate *c) {
  const mfx_op *op = w->g->op;
  for (int i = 0; i < op->n_outputs; i++) {
    memset(w->host_out[i].data, 0xff, gpu_array_bytes(&w->host_out[i]));
    MFX_TRY(mfx_device_buffer_write(&w->out[i], 0, w->host_out[i].data,
                                     gpu_array_bytes(&w->host_out[i])));
  }
  MFX_TRY(gpu_launch_all(c));
  MFX_TRY(mfx_device_synchronize(w->dev));
  for (int i = 0; i < op->n_outputs; i++)
    MFX_TRY(mfx_device_buffer_read(&w->out[i], 0, w->host_out[i].data,
                                    gpu_array_bytes(&w->host_out[i])));
  return MFX_OK;
}

static int gpu_outputs_match(const gpu_worker *w, mfx_trial *t) {
  const tune_gpu *g = w->g;
  double tol = tune_tolerance(g->op, &t->cfg, g->o.measure.tol);
  for (int i = 0; i < g->op->n_outputs; i++) {
    mfx_compare cmp = mfx_compare_arrays_int(&w->host_out[i], &g->expected[i], tol,
                                             g->op->int_tolerance);
    if (cmp.ok) continue;
    t->status = MFX_TRIAL_WRONG;
    snprintf(t->error, sizeof t->error,
             "%s differs from the reference: max abs err %.3g, max rel err %.3g at element "
             "%lld (tolerance %g)", g->op->outputs[i].name, cmp.max_abs_err, cmp.max_rel_err,
             (long long)cmp.worst_index, tol);
    return 0;
  }
  return 1;
}

/* Seconds of `calls` back-to-back runs between two events. */
static mfx_status gpu_time_calls(gpu_worker *w, const gpu_candidate *c, int calls,
                                 double *seconds) {
  MFX_TRY(mfx_event_record(w->start));
  for (int i = 0; i < calls; i++) MFX_TRY(gpu_launch_all(c));
  MFX_TRY(mfx_event_record(w->end));
  return mfx_event_elapsed(w->start, w->end, seconds);
}

static mfx_status gpu_measure(gpu_worker *w, const gpu_candidate *c, mfx_measurement *m) {
  const mfx_measure_options *o = &w->g->o.measure;
  int calls = 1;
  if (!o->flush_cache && o->min_sample_s > 0.0) {
    double one = 0.0;
    MFX_TRY(gpu_time_calls(w, c, 1, &one));
    if (one < o->min_sample_s) {
      double n = ceil(o->min_sample_s / (one > 1e-9 ? one : 1e-9));
      calls = n > GPU_MAX_CALLS ? GPU_MAX_CALLS : (int)n;
    }
  }
  int max = o->max_repeats > 0 ? o->max_repeats : 1;
  double *samples = malloc(sizeof(double) * (size_t)max);
  if (samples == NULL) return mfx_fail(MFX_ERR_NOMEM, "measure: out of memory");
  double total = 0.0;
  int n = 0;
  mfx_status st = MFX_OK;
  while (st == MFX_OK && n < max && (n < o->min_repeats || total < o->min_seconds)) {
    if (w->flush_host != NULL)
      st = mfx_device_buffer_write(&w->flush, 0, w->flush_host, w->flush.bytes);
    double seconds = 0.0;
    if (st == MFX_OK) st = gpu_time_calls(w, c, calls, &seconds);
    if (st != MFX_OK) break;
    samples[n++] = seconds / calls;
    total += seconds;
  }
  if (st == MFX_OK) tune_summarize(samples, n, calls, total, m);
  free(samples);
  return st;
}

static void gpu_candidate_free(gpu_candidate *c) {
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++)
    if (c->ws[i].device != NULL) mfx_device_buffer_free(&c->ws[i]);
  if (c->module != NULL) mfx_module_free(c->module);
}

/* Run, check, time; an error of the device from here on may be sticky. */
static void gpu_check_and_time(gpu_worker *w, gpu_candidate *c, gpu_reply *reply) {
  mfx_trial *t = &reply->trial;
  if (gpu_alloc_workspace(w, c) != MFX_OK || gpu_run_once(w, c) != MFX_OK) {
    gpu_error(t, "run: %s", mfx_last_error());
    reply->sticky = 1;
  } else if (gpu_outputs_match(w, t)) {
    if (gpu_measure(w, c, &t->m) != MFX_OK) {
      gpu_error(t, "measure: %s", mfx_last_error());
      reply->sticky = 1;
    } else {
      t->status = MFX_TRIAL_OK;
    }
  }
}

/* The trial of one candidate image; *sticky when the device may be broken. */
static void gpu_worker_candidate(gpu_worker *w, const void *image, size_t bytes,
                                 gpu_reply *reply) {
  mfx_trial *t = &reply->trial;
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  t->status = MFX_TRIAL_ERROR;
  if (mfx_artifact_decode(image, bytes, "candidate", &kernels, &n) != MFX_OK || n != 1) {
    gpu_error(t, "worker: %s", n != 1 ? "not one kernel" : mfx_last_error());
    free(kernels);
    return;
  }
  gpu_candidate c;
  memset(&c, 0, sizeof c);
  c.k = &kernels[0];
  if (gpu_prepare(w, &c) != MFX_OK) {
    gpu_error(t, "load: %s", mfx_last_error());
  } else {
    gpu_resources(w, &c, t);
    if (!gpu_over_limits(w, &c, t)) gpu_check_and_time(w, &c, reply);
  }
  if (!reply->sticky) gpu_candidate_free(&c);
  free(kernels);
}

static void gpu_worker_main(const tune_gpu *g, int fd) {
  gpu_worker w;
  memset(&w, 0, sizeof w);
  w.g = g;
  mfx_status open = gpu_worker_open(&w);
  char why[256];
  if (open != MFX_OK) tune_copy_text(why, sizeof why, mfx_last_error());
  for (;;) {
    gpu_request req;
    if (gpu_recv(fd, &req, sizeof req, 0.0) != 1 || req.magic != GPU_MAGIC ||
        req.bytes > GPU_MAX_IMAGE)
      break;
    void *image = malloc(req.bytes ? req.bytes : 1);
    if (image == NULL || gpu_recv(fd, image, req.bytes, 0.0) != 1) break;
    gpu_reply reply;
    memset(&reply, 0, sizeof reply);
    if (open != MFX_OK) {
      gpu_error(&reply.trial, "worker: opening the device: %s", why);
      reply.sticky = 1;
    } else {
      gpu_worker_candidate(&w, image, req.bytes, &reply);
    }
    free(image);
    if (!gpu_send(fd, &reply, sizeof reply) || reply.sticky) break;
  }
  _exit(0); /* the driver's state goes with the process */
}

/* ---- the zygote --------------------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  int fd;
} gpu_child;

static int gpu_spawn_worker(const tune_gpu *g, gpu_child *w) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 0;
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    close(g->link);
    gpu_worker_main(g, sv[1]);
  }
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return 0;
  }
  w->pid = pid;
  w->fd = sv[0];
  return 1;
}

static void gpu_reap(gpu_child *w, int kill_it, int *status) {
  if (w->pid <= 0) return;
  if (kill_it) kill(w->pid, SIGKILL);
  close(w->fd);
  while (waitpid(w->pid, status, 0) < 0 && errno == EINTR) {
  }
  w->pid = -1;
  w->fd = -1;
}

/* Forward one request to a worker (started if none) and its answer back. */
static void gpu_zygote_one(const tune_gpu *g, gpu_child *w, const gpu_request *req,
                           const void *image, gpu_reply *reply) {
  memset(reply, 0, sizeof *reply);
  if (w->pid <= 0 && !gpu_spawn_worker(g, w)) {
    gpu_error(&reply->trial, "runner: cannot start a GPU worker: %s", strerror(errno));
    return;
  }
  double deadline = g->o.timeout_s > 0.0 ? mfx_now_seconds() + g->o.timeout_s : 0.0;
  int got = gpu_send(w->fd, req, sizeof *req) && gpu_send(w->fd, image, req->bytes)
                ? gpu_recv(w->fd, reply, sizeof *reply, deadline)
                : 0;
  int status = 0;
  if (got == 1) {
    if (reply->sticky) gpu_reap(w, 0, &status);
    return;
  }
  gpu_reap(w, 1, &status);
  memset(reply, 0, sizeof *reply);
  reply->trial.status = MFX_TRIAL_ERROR;
  if (got < 0)
    snprintf(reply->trial.error, sizeof reply->trial.error,
             "timed out after %g s (the GPU worker was killed; a fresh one takes the next "
             "candidate)", g->o.timeout_s);
  else if (WIFSIGNALED(status))
    snprintf(reply->trial.error, sizeof reply->trial.error,
             "the GPU worker died of signal %d (%s) running this candidate", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else
    snprintf(reply->trial.error, sizeof reply->trial.error,
             "the GPU worker exited (status %d) without answering for this candidate",
             WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void gpu_zygote_main(const tune_gpu *g, int fd) {
  signal(SIGPIPE, SIG_IGN);
  gpu_child w = {-1, -1};
  for (;;) {
    gpu_request req;
    if (gpu_recv(fd, &req, sizeof req, 0.0) != 1 || req.magic != GPU_MAGIC ||
        req.bytes > GPU_MAX_IMAGE)
      break;
    void *image = malloc(req.bytes ? req.bytes : 1);
    if (image == NULL || gpu_recv(fd, image, req.bytes, 0.0) != 1) break;
    gpu_reply reply;
    gpu_zygote_one(g, &w, &req, image, &reply);
    free(image);
    if (!gpu_send(fd, &reply, sizeof reply)) break;
  }
  gpu_reap(&w, 1, NULL);
  _exit(0);
}

/* ---- the parent: create, build, evaluate ----------------------------------------------------- */

mfx_status tune_gpu_create(const mfx_op *op, const int64_t *dims, const mfx_runner_options *o,
                           const mfx_array *inputs, const mfx_array *expected, tune_gpu **out) {
  tune_gpu *g = calloc(1, sizeof *g);
  if (g == NULL) return mfx_fail(MFX_ERR_NOMEM, "runner: out of memory");
  g->op = op;
  memcpy(g->dims, dims, sizeof(int64_t) * (size_t)op->n_dims);
  g->o = *o;
  g->inputs = inputs;
  g->expected = expected;
  g->link = -1;
  mfx_target t;
  mfx_status st = mfx_target_parse(o->target, &t);
  if (st == MFX_OK) {
    snprintf(g->spec, sizeof g->spec, "cuda:%d", t.device < 0 ? 0 : t.device);
    st = tune_gpu_probe(g->spec, &g->info);
  }
  if (st == MFX_OK) {
    snprintf(g->sm_target, sizeof g->sm_target, "cuda:sm_%d%d", g->info.compute_major,
             g->info.compute_minor);
    int sv[2];
    fflush(NULL);
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
      st = mfx_fail(MFX_ERR_IO, "runner: socketpair: %s", strerror(errno));
    else if ((g->zygote = fork()) == 0) {
      close(sv[0]);
      g->link = sv[1];
      gpu_zygote_main(g, sv[1]);
    } else {
      close(sv[1]);
      g->link = sv[0];
      if (g->zygote < 0) st = mfx_fail(MFX_ERR_IO, "runner: fork: %s", strerror(errno));
    }
  }
  if (st != MFX_OK) {
    tune_gpu_destroy(g);
    return st;
  }
  *out = g;
  return MFX_OK;
}

void tune_gpu_destroy(tune_gpu *g) {
  if (g == NULL) return;
  if (g->link >= 0) close(g->link);
  if (g->zygote > 0)
    while (waitpid(g->zygote, NULL, 0) < 0 && errno == EINTR) {
    }
  free(g);
}

typedef struct {
  tune_gpu *g;
  int n;
  const mfx_config *cfgs;
  mfx_trial *trials;
  void **images;
  size_t *sizes;
  int *built;
  int next;
  pthread_mutex_t lock;
  pthread_cond_t cond;
} gpu_batch;

static void *gpu_build_worker(void *arg) {
  gpu_batch *b = arg;
  for (;;) {
    int i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
    if (i >= b->n) return NULL;
    mfx_trial *t = &b->trials[i];
    double t0 = mfx_now_seconds();
    if (mfx_op_gpu_image(b->g->op, b->g->sm_target, b->g->dims, &b->cfgs[i], "tune",
                         &b->images[i], &b->sizes[i]) != MFX_OK) {
      b->images[i] = NULL;
      gpu_error(t, "build: %s", mfx_last_error());
    }
    t->build_s = mfx_now_seconds() - t0;
    pthread_mutex_lock(&b->lock);
    b->built[i] = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
  }
}

/* One built candidate through the zygote. */
static void gpu_measure_one(tune_gpu *g, const void *image, size_t size, mfx_trial *t) {
  gpu_request req = {GPU_MAGIC, 0, size};
  gpu_reply reply;
  if (g->broken || !gpu_send(g->link, &req, sizeof req) || !gpu_send(g->link, image, size) ||
      gpu_recv(g->link, &reply, sizeof reply, 0.0) != 1) {
    g->broken = 1;
    gpu_error(t, "runner: %s", "the GPU worker's supervisor process is gone");
    return;
  }
  mfx_config cfg = t->cfg;
  double build_s = t->build_s;
  *t = reply.trial;
  t->cfg = cfg;
  t->build_s = build_s;
}

mfx_status tune_gpu_evaluate(tune_gpu *g, int n, const mfx_config *cfgs, mfx_trial *out,
                             mfx_trial_done_fn done, void *user) {
  gpu_batch b;
  memset(&b, 0, sizeof b);
  b.g = g;
  b.n = n;
  b.cfgs = cfgs;
  b.trials = out;
  b.images = calloc((size_t)n + 1, sizeof *b.images);
  b.sizes = calloc((size_t)n + 1, sizeof *b.sizes);
  b.built = calloc((size_t)n + 1, sizeof *b.built);
  if (b.images == NULL || b.sizes == NULL || b.built == NULL) {
    free(b.images);
    free(b.sizes);
    free(b.built);
    return mfx_fail(MFX_ERR_NOMEM, "runner: out of memory");
  }
  pthread_mutex_init(&b.lock, NULL);
  pthread_cond_init(&b.cond, NULL);
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    out[i].cfg = cfgs[i];
  }
  int jobs = g->o.jobs < 1 ? 1 : g->o.jobs > 64 ? 64 : g->o.jobs;
  if (jobs > n) jobs = n;
  pthread_t threads[64];
  int started = 0;
  for (; started < jobs; started++)
    if (pthread_create(&threads[started], NULL, gpu_build_worker, &b) != 0) break;
  if (started == 0) gpu_build_worker(&b);
  for (int i = 0; i < n; i++) {
    pthread_mutex_lock(&b.lock);
    while (!b.built[i]) pthread_cond_wait(&b.cond, &b.lock);
    pthread_mutex_unlock(&b.lock);
    if (b.images[i] != NULL) gpu_measure_one(g, b.images[i], b.sizes[i], &out[i]);
    free(b.images[i]);
    b.images[i] = NULL;
    out[i].created = tune_wall_seconds();
    out[i].rank = g->o.rank;
    if (done != NULL) done(user, i, &out[i]);
  }
  for (int i = 0; i < started; i++) pthread_join(threads[i], NULL);
  pthread_mutex_destroy(&b.lock);
  pthread_cond_destroy(&b.cond);
  free(b.images);
  free(b.sizes);
  free(b.built);
  return MFX_OK;
}
