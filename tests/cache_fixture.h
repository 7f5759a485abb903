/* The fixture of the kernel cache's tests (tests/test_cache.c,
 * tests/test_cache_gpu.c): each test gets an arena A and its own cache
 * directory DIRBUF, a fresh temporary one set as MFX_CACHE_DIR, with the
 * other cache settings of the environment unset; Check forks each test, so
 * the cache's once-per-process setup sees them. Included by test programs
 * only. */
#ifndef MFX_TESTS_CACHE_FIXTURE_H
#define MFX_TESTS_CACHE_FIXTURE_H

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../compiler/cache.h"
#include "mfx/compiler.h"

static mfx_arena *A;
static char DIRBUF[256];

/* The test's arena and cache directory, /tmp/NAME_XXXXXX. */
static inline void cache_fixture_open(const char *name) {
  A = mfx_arena_create();
  snprintf(DIRBUF, sizeof DIRBUF, "/tmp/%s_XXXXXX", name);
  ck_assert_ptr_nonnull(mkdtemp(DIRBUF));
  unsetenv("MFX_CACHE");
  unsetenv("MFX_CACHE_MAX_MB");
  unsetenv("MFX_LLVM_PIPELINE");
  setenv("MFX_CACHE_DIR", DIRBUF, 1);
}

static inline void cache_fixture_close(void) {
  long removed;
  mfx_cache_clear(DIRBUF, &removed);
  rmdir(DIRBUF);
  mfx_arena_destroy(A);
}

/* The entries of the cache directory whose name ends in suffix (suffix "":
 * every entry but the dot ones); the first one's path in first. */
static inline int cache_entries(const char *suffix, char *first, size_t n) {
  DIR *d = opendir(DIRBUF);
  ck_assert_ptr_nonnull(d);
  size_t s = strlen(suffix);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t len = strlen(e->d_name);
    if (s == 0 ? e->d_name[0] == '.' : len <= s || strcmp(e->d_name + len - s, suffix) != 0)
      continue;
    if (count++ == 0 && first != NULL) snprintf(first, n, "%s/%s", DIRBUF, e->d_name);
  }
  closedir(d);
  return count;
}

#endif
