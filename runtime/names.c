/* Names of enums: one lookup each way for every enum whose values are
 * 0..n-1 and whose names sit in a table (dtypes, router losses, expert
 * kinds, search strategies, trial statuses). */
#include <string.h>

#include "mfx/runtime.h"

/* The name of entry i of a table whose entries are `stride` bytes apart and
 * whose name pointer starts at `names`. */
static const char *names_at(const void *names, size_t stride, int i) {
  const char *base = names;
  const char *name;
  memcpy(&name, base + (size_t)i * stride, sizeof name);
  return name;
}

const char *mfx_name_of(const void *names, size_t stride, int n, int value,
                        const char *fallback) {
  if (names == NULL || value < 0 || value >= n) return fallback;
  const char *name = names_at(names, stride, value);
  return name != NULL ? name : fallback;
}

int mfx_name_index(const void *names, size_t stride, int n, const char *name) {
  if (names == NULL || name == NULL) return -1;
  for (int i = 0; i < n; i++) {
    const char *candidate = names_at(names, stride, i);
    if (candidate != NULL && strcmp(candidate, name) == 0) return i;
  }
  return -1;
}
