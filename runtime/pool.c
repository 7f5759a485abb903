/* The CPU thread pool: persistent worker threads that share one loop at a
 * time. A loop over [0, n) is cut into at most `threads` contiguous chunks;
 * workers and the calling thread claim chunks until none are left, and the
 * caller returns once every chunk has finished. A parallel_for issued from
 * inside a loop body (on any pool) runs serially on the calling thread. */
#include "mfx/runtime.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MFX_POOL_MAX_THREADS 1024

struct mfx_pool {
  int threads; /* workers + the calling thread */
  int started; /* workers actually running */
  pthread_t *workers;
  pthread_mutex_t submit; /* one loop at a time per pool */
  pthread_mutex_t lock;   /* guards everything below */
  pthread_cond_t work_ready;
  pthread_cond_t work_done;
  uint64_t generation; /* bumped for every loop */
  int shutdown;
  mfx_parallel_body body;
  void *closure;
  int64_t n;
  int chunks;
  int next_chunk;
  int pending; /* chunks not yet finished */
};

/* Non-zero while this thread runs a loop body or is a pool worker. */
static _Thread_local int mfx_pool_inside_body;

static void pool_chunk_range(int64_t n, int chunks, int i, int64_t *begin, int64_t *end) {
  int64_t base = n / chunks;
  int64_t extra = n % chunks;
  *begin = base * i + (i < extra ? i : extra);
  *end = *begin + base + (i < extra ? 1 : 0);
}

/* Claims and runs chunks of the current loop; called and returns with the
 * lock held. */
static void pool_run_chunks(mfx_pool *pool) {
  while (pool->next_chunk < pool->chunks) {
    int i = pool->next_chunk++;
    int64_t begin, end;
    pool_chunk_range(pool->n, pool->chunks, i, &begin, &end);
    mfx_parallel_body body = pool->body;
    void *closure = pool->closure;
    pthread_mutex_unlock(&pool->lock);
    body(closure, begin, end);
    pthread_mutex_lock(&pool->lock);
    if (--pool->pending == 0) pthread_cond_signal(&pool->work_done);
  }
}

static void *pool_worker(void *arg) {
  mfx_pool *pool = arg;
  mfx_pool_inside_body = 1;
  pthread_mutex_lock(&pool->lock);
  /* Loops are numbered from 1: a worker that starts after the first loop was
   * submitted still joins it while chunks are left. */
  uint64_t seen = 0;
  for (;;) {
    while (!pool->shutdown && pool->generation == seen) {
      pthread_cond_wait(&pool->work_ready, &pool->lock);
    }
    if (pool->shutdown) break;
    seen = pool->generation;
    pool_run_chunks(pool);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

static void pool_stop_workers(mfx_pool *pool) {
  pthread_mutex_lock(&pool->lock);
  pool->shutdown = 1;
  pthread_cond_broadcast(&pool->work_ready);
  pthread_mutex_unlock(&pool->lock);
  for (int i = 0; i < pool->started; i++) pthread_join(pool->workers[i], NULL);
  pool->started = 0;
}

static void pool_release(mfx_pool *pool) {
  pthread_cond_destroy(&pool->work_done);
  pthread_cond_destroy(&pool->work_ready);
  pthread_mutex_destroy(&pool->lock);
  pthread_mutex_destroy(&pool->submit);
  free(pool->workers);
  free(pool);
}

static int pool_default_threads(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) return 1;
  return cpus > MFX_POOL_MAX_THREADS ? MFX_POOL_MAX_THREADS : (int)cpus;
}

static mfx_status pool_init_sync(mfx_pool *pool) {
  int ok = pthread_mutex_init(&pool->submit, NULL) == 0;
  ok = ok && pthread_mutex_init(&pool->lock, NULL) == 0;
  ok = ok && pthread_cond_init(&pool->work_ready, NULL) == 0;
  ok = ok && pthread_cond_init(&pool->work_done, NULL) == 0;
  return ok ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "pool: cannot initialise mutexes/conditions");
}

static mfx_status pool_start_workers(mfx_pool *pool) {
  for (int i = 0; i < pool->threads - 1; i++) {
    if (pthread_create(&pool->workers[i], NULL, pool_worker, pool) != 0) {
      pool_stop_workers(pool);
      return mfx_fail(MFX_ERR_NOMEM, "pool: cannot start worker thread %d of %d", i + 1,
                      pool->threads - 1);
    }
    pool->started++;
  }
  return MFX_OK;
}

mfx_status mfx_pool_create(int threads, mfx_pool **out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "pool: output pointer is NULL");
  *out = NULL;
  if (threads > MFX_POOL_MAX_THREADS) {
    return mfx_fail(MFX_ERR_INVALID, "pool: threads=%d, expected at most %d", threads,
                    MFX_POOL_MAX_THREADS);
  }
  if (threads <= 0) threads = pool_default_threads();
  mfx_pool *pool = calloc(1, sizeof *pool);
  if (pool == NULL) return mfx_fail(MFX_ERR_NOMEM, "pool: out of memory");
  pool->threads = threads;
  pool->workers = calloc((size_t)threads, sizeof *pool->workers);
  if (pool->workers == NULL) {
    free(pool);
    return mfx_fail(MFX_ERR_NOMEM, "pool: out of memory for %d threads", threads);
  }
  mfx_status st = pool_init_sync(pool);
  if (st == MFX_OK) st = pool_start_workers(pool);
  if (st != MFX_OK) {
    pool_release(pool);
    return st;
  }
  *out = pool;
  return MFX_OK;
}

void mfx_pool_destroy(mfx_pool *pool) {
  if (pool == NULL) return;
  pool_stop_workers(pool);
  pool_release(pool);
}

int mfx_pool_threads(const mfx_pool *pool) { return pool == NULL ? 1 : pool->threads; }

static void pool_run_serial(mfx_parallel_body body, void *closure, int64_t n) {
  int outer = mfx_pool_inside_body;
  mfx_pool_inside_body = 1;
  body(closure, 0, n);
  mfx_pool_inside_body = outer;
}

static void pool_run_shared(mfx_pool *pool, mfx_parallel_body body, void *closure,
                                int64_t n, int chunks) {
  pthread_mutex_lock(&pool->submit);
  pthread_mutex_lock(&pool->lock);
  pool->body = body;
  pool->closure = closure;
  pool->n = n;
  pool->chunks = chunks;
  pool->next_chunk = 0;
  pool->pending = chunks;
  pool->generation++;
  pthread_cond_broadcast(&pool->work_ready);
  mfx_pool_inside_body = 1;
  pool_run_chunks(pool);
  mfx_pool_inside_body = 0;
  while (pool->pending > 0) pthread_cond_wait(&pool->work_done, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
  pthread_mutex_unlock(&pool->submit);
}

int mfx_pool_parallel_for(mfx_pool *pool, mfx_parallel_body body, void *closure, int64_t n) {
  if (body == NULL || n <= 0) return 0;
  int chunks = pool == NULL ? 1 : pool->threads;
  if ((int64_t)chunks > n) chunks = (int)n;
  if (chunks <= 1 || mfx_pool_inside_body) {
    pool_run_serial(body, closure, n);
  } else {
    pool_run_shared(pool, body, closure, n, chunks);
  }
  return 0;
}
