/* Building several of the layer's kernels at once: LLVM compiles one
 * kernel per thread, up to one thread per CPU, each job keeping its own
 * status and message. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moe_build.h"

typedef struct {
  void (*job)(void *ctx, int i);
  void *ctx;
  int n;
  atomic_int next;
} moe_jobs;

static void *moe_jobs_worker(void *arg) {
  moe_jobs *j = arg;
  for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->n;) j->job(j->ctx, i);
  return NULL;
}

void moe_run_jobs(int n, void (*job)(void *ctx, int i), void *ctx) {
  enum { MOE_MAX_COMPILE_THREADS = 8 };
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int threads = cpus < 1 ? 1 : cpus > MOE_MAX_COMPILE_THREADS ? MOE_MAX_COMPILE_THREADS : (int)cpus;
  if (threads > n) threads = n;
  moe_jobs j = {job, ctx, n, 0};
  pthread_t worker[MOE_MAX_COMPILE_THREADS];
  int started = 0;
  while (started < threads - 1 && pthread_create(&worker[started], NULL, moe_jobs_worker, &j) == 0)
    started++;
  moe_jobs_worker(&j); /* this thread too, and alone if no thread started */
  for (int i = 0; i < started; i++) pthread_join(worker[i], NULL);
}

/* The slots of a side-by-side build: each slot's status and message
 * (messages are per thread, so each job keeps its own). */
typedef struct {
  char *slots;
  size_t size;
  mfx_status (*build)(void *ctx, void *slot);
  void *ctx;
  mfx_status *status;
  char (*error)[512];
} moe_batch;

static void moe_batch_job(void *ctx, int i) {
  moe_batch *b = ctx;
  b->status[i] = b->build(b->ctx, b->slots + (size_t)i * b->size);
  if (b->status[i] != MFX_OK) snprintf(b->error[i], sizeof b->error[i], "%s", mfx_last_error());
}

mfx_status moe_build_side_by_side(void *slots, size_t size, int fresh,
                                  mfx_status (*build)(void *ctx, void *slot), void *ctx,
                                  int *kept) {
  moe_batch b = {slots, size, build, ctx, calloc((size_t)fresh, sizeof(mfx_status)),
                 calloc((size_t)fresh, sizeof *b.error)};
  *kept = 0;
  mfx_status st = MFX_OK;
  if (b.status == NULL || b.error == NULL) {
    st = mfx_fail(MFX_ERR_NOMEM, "moe: out of memory building %d kernels", fresh);
  } else {
    moe_run_jobs(fresh, moe_batch_job, &b);
    for (int i = 0; i < fresh; i++) {
      if (b.status[i] == MFX_OK)
        memmove(b.slots + (size_t)(*kept)++ * size, b.slots + (size_t)i * size, size);
      else if (st == MFX_OK)
        st = mfx_fail(b.status[i], "%s", b.error[i]);
    }
  }
  free(b.status);
  free(b.error);
  return st;
}
