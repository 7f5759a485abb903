/* Small helpers of the tuner: an integer hash map, random numbers, clocks,
 * session ids and text. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "autotune_internal.h"

/* ---- hash map ------------------------------------------------------------- */

void tune_map_init(tune_map *m) { memset(m, 0, sizeof *m); }

void tune_map_free(tune_map *m) {
  free(m->keys);
  free(m->values);
  tune_map_init(m);
}

static size_t tune_map_slot(uint64_t key, size_t cap) {
  uint64_t h = (key + 1) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

/* Insert or overwrite without growing; the map has a free slot. */
static void tune_map_store(uint64_t *keys, uint64_t *values, size_t cap, size_t *count,
                           uint64_t key, uint64_t value) {
  size_t i = tune_map_slot(key, cap);
  while (keys[i] != 0 && keys[i] != key + 1) i = (i + 1) & (cap - 1);
  if (keys[i] == 0) (*count)++;
  keys[i] = key + 1;
  values[i] = value;
}

static mfx_status tune_map_grow(tune_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  uint64_t *keys = calloc(cap, sizeof *keys), *values = calloc(cap, sizeof *values);
  if (keys == NULL || values == NULL) {
    free(keys);
    free(values);
    return mfx_fail(MFX_ERR_NOMEM, "tuner: out of memory growing a map to %zu entries", cap);
  }
  size_t count = 0;
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != 0) tune_map_store(keys, values, cap, &count, m->keys[i] - 1, m->values[i]);
  free(m->keys);
  free(m->values);
  m->keys = keys;
  m->values = values;
  m->cap = cap;
  m->count = count;
  return MFX_OK;
}

mfx_status tune_map_put(tune_map *m, uint64_t key, uint64_t value) {
  if ((m->count + 1) * 2 > m->cap) MFX_TRY(tune_map_grow(m));
  tune_map_store(m->keys, m->values, m->cap, &m->count, key, value);
  return MFX_OK;
}

int tune_map_get(const tune_map *m, uint64_t key, uint64_t *value) {
  if (m->cap == 0) return 0;
  size_t i = tune_map_slot(key, m->cap);
  while (m->keys[i] != 0) {
    if (m->keys[i] == key + 1) {
      if (value != NULL) *value = m->values[i];
      return 1;
    }
    i = (i + 1) & (m->cap - 1);
  }
  return 0;
}

/* ---- random numbers ------------------------------------------------------------ */

uint64_t tune_rng_below(uint64_t *state, uint64_t n) {
  /* Rejection keeps it uniform for any n. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = mfx_rng_next(state);
  while (x >= limit);
  return x % n;
}

double tune_rng_unit(uint64_t *state) {
  return (double)(mfx_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- misc ----------------------------------------------------------------------- */

double tune_wall_seconds(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

void tune_session_id(char *buf, size_t size) {
  uint64_t bits = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &bits, sizeof bits) != (ssize_t)sizeof bits) bits = 0;
    close(fd);
  }
  uint64_t state = bits ^ (uint64_t)getpid() * 0x100000001B3ull ^
                   (uint64_t)(tune_wall_seconds() * 1e6);
  snprintf(buf, size, "%016llx", (unsigned long long)mfx_rng_next(&state));
}

uint64_t tune_hash_text(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s != '\0'; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001B3ull;
  }
  return h;
}

void tune_copy_text(char *dst, size_t size, const char *src) {
  if (size == 0) return;
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

int tune_write_all(int fd, const void *buf, size_t bytes) {
  const char *p = buf;
  while (bytes > 0) {
    ssize_t w = write(fd, p, bytes);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return 0;
    p += w;
    bytes -= (size_t)w;
  }
  return 1;
}

/* The tolerance a candidate's float outputs are checked with: the run's,
 * or the larger one its op's template declares for the config
 * (mfx_op.float_tolerance). */
double tune_tolerance(const mfx_op *op, const mfx_config *cfg, double tol) {
  double need = op != NULL && op->float_tolerance != NULL && cfg != NULL
                    ? op->float_tolerance(cfg)
                    : 0.0;
  return need > tol ? need : tol;
}
