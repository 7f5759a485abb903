/* Building several of the layer's kernels at once: LLVM compiles one
 * kernel per thread, up to one thread per CPU, each job keeping its own
 * status and message; and the kernel cache both providers keep. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* ---- the kernel cache -------------------------------------------------------------------- */

void *moe_cache_at(const moe_cache *c, int i) {
  return i >= 0 && i < c->n ? c->entries + (size_t)i * c->size : NULL;
}

void *moe_cache_find(const moe_cache *c, const moe_want *w) {
  for (int i = 0; i < c->n; i++) {
    moe_cache_head *h = moe_cache_at(c, i);
    if (moe_want_equal(&h->want, w)) return h;
  }
  return NULL;
}

mfx_status moe_cache_ensure(moe_cache *c, mfx_moe *moe, const moe_want *want, int n) {
  if (!moe_grow((void **)&c->entries, &c->cap, c->n + n, c->size))
    return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
  int fresh = 0;
  for (int i = 0; i < n; i++) {
    const mfx_op *op = mfx_op_find(want[i].op);
    if (op == NULL)
      return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", want[i].op);
    if (moe_cache_find(c, &want[i]) != NULL) continue;
    moe_cache_head *h = (moe_cache_head *)(c->entries + (size_t)(c->n + fresh++) * c->size);
    memset(h, 0, c->size);
    h->op = op;
    h->want = want[i];
    MFX_TRY(c->choose(moe, h));
  }
  if (fresh == 0) return MFX_OK;
  int kept = 0;
  mfx_status st = moe_build_side_by_side(c->entries + (size_t)c->n * c->size, c->size, fresh,
                                         c->build, moe, &kept);
  c->n += kept;
  moe->compiled_since += kept;
  return st;
}

mfx_status moe_cache_get(moe_cache *c, mfx_moe *moe, const moe_want *w, void **out) {
  void *e = moe_cache_find(c, w);
  if (e == NULL) {
    MFX_TRY(moe_cache_ensure(c, moe, w, 1));
    e = moe_cache_find(c, w);
  }
  *out = e;
  return MFX_OK;
}

void moe_cache_free(moe_cache *c, void (*free_entry)(void *entry)) {
  for (int i = 0; i < c->n; i++) free_entry(moe_cache_at(c, i));
  free(c->entries);
  c->entries = NULL;
  c->n = c->cap = 0;
}

/* ---- the providers over a cache ------------------------------------------------------------ */

mfx_status moe_cached_provider_create(mfx_moe *moe, const moe_provider_ops *ops, moe_cache cache,
                                      void (*free_entry)(void *entry), moe_provider **out) {
  moe_cached_provider *c = calloc(1, sizeof *c);
  if (c == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  c->base.ops = ops;
  c->base.moe = moe;
  c->cache = cache;
  c->free_entry = free_entry;
  *out = &c->base;
  return MFX_OK;
}

moe_cache *moe_cached_cache(const moe_provider *p) {
  return &((moe_cached_provider *)(uintptr_t)p)->cache;
}

mfx_status moe_cached_ensure(moe_provider *p, const moe_want *want, int n) {
  return moe_cache_ensure(moe_cached_cache(p), p->moe, want, n);
}

int moe_cached_count(const moe_provider *p) { return moe_cached_cache(p)->n; }

void moe_cached_destroy(moe_provider *p) {
  moe_cached_provider *c = (moe_cached_provider *)p;
  moe_cache_free(&c->cache, c->free_entry);
  free(c);
}
