/* The environment every compiled CPU kernel receives: a pool to run parallel
 * loops on and a 64-byte aligned workspace allocator.
 *
 * Kernels allocate their intermediate tensors on every call. Large blocks
 * come from mmap, and touching fresh pages costs a page fault each (tens of
 * thousands per call for a few MB, serialized on the address-space lock), so
 * freed workspace is kept in a small per-thread cache and handed out again.
 * The cache is bounded and emptied when its thread exits. */
#include "mfx/runtime.h"

#include <pthread.h>
#include <stdlib.h>

#define MFX_WORKSPACE_ALIGN 64
#define CACHE_BLOCKS 8
#define CACHE_BYTES ((size_t)256 << 20)

/* Each block starts with a header (one alignment unit) holding its capacity. */
typedef struct {
  size_t capacity;
} block_header;

typedef struct {
  int n;
  size_t bytes;
  void *blocks[CACHE_BLOCKS]; /* the headers */
} workspace_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static _Thread_local workspace_cache cache;

static void cache_release(void *unused) {
  (void)unused;
  for (int i = 0; i < cache.n; i++) free(cache.blocks[i]);
  cache.n = 0;
  cache.bytes = 0;
}

static void cache_key_create(void) { pthread_key_create(&cache_key, cache_release); }

/* Register this thread's cache for emptying at thread exit. */
static void cache_register(void) {
  pthread_once(&cache_once, cache_key_create);
  if (pthread_getspecific(cache_key) == NULL) pthread_setspecific(cache_key, &cache);
}

static void *payload(block_header *h) { return (char *)h + MFX_WORKSPACE_ALIGN; }
static block_header *header_of(void *p) { return (block_header *)((char *)p - MFX_WORKSPACE_ALIGN); }

/* The smallest cached block that fits without wasting more than half of it. */
static block_header *cache_take(size_t capacity) {
  int best = -1;
  for (int i = 0; i < cache.n; i++) {
    size_t c = ((block_header *)cache.blocks[i])->capacity;
    if (c >= capacity && c / 2 <= capacity &&
        (best < 0 || c < ((block_header *)cache.blocks[best])->capacity))
      best = i;
  }
  if (best < 0) return NULL;
  block_header *h = cache.blocks[best];
  cache.blocks[best] = cache.blocks[--cache.n];
  cache.bytes -= h->capacity;
  return h;
}

static void *env_alloc(size_t bytes) {
  if (bytes > SIZE_MAX / 2) return NULL;
  size_t capacity = (bytes + MFX_WORKSPACE_ALIGN - 1) / MFX_WORKSPACE_ALIGN * MFX_WORKSPACE_ALIGN;
  if (capacity == 0) capacity = MFX_WORKSPACE_ALIGN;
  block_header *h = cache_take(capacity);
  if (h == NULL) {
    h = aligned_alloc(MFX_WORKSPACE_ALIGN, capacity + MFX_WORKSPACE_ALIGN);
    if (h == NULL) return NULL;
    h->capacity = capacity;
  }
  return payload(h);
}

static void env_free(void *ptr) {
  if (ptr == NULL) return;
  block_header *h = header_of(ptr);
  if (cache.n == CACHE_BLOCKS || cache.bytes + h->capacity > CACHE_BYTES) {
    free(h);
    return;
  }
  cache_register();
  cache.blocks[cache.n++] = h;
  cache.bytes += h->capacity;
}

static int env_parallel_for(void *pool, mfx_parallel_body body, void *closure, int64_t n) {
  return mfx_pool_parallel_for((mfx_pool *)pool, body, closure, n);
}

void mfx_kernel_env_init(mfx_kernel_env *env, mfx_pool *pool) {
  if (env == NULL) return;
  env->pool = pool;
  env->parallel_for = env_parallel_for;
  env->alloc = env_alloc;
  env->free = env_free;
}
