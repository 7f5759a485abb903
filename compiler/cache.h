/* mfx kernel cache on disk (compiler/cache.c): host objects keyed by a
 * 128-bit FNV-1a hash of the printed loop IR + target + CPU features +
 * LLVM/mfx/format versions. See README "Kernel cache". */
#ifndef MFX_COMPILER_CACHE_H
#define MFX_COMPILER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mfx/compiler.h"

typedef struct {
  uint8_t bytes[16];
} mfx_cache_key;

typedef struct {
  long hits, misses, codegens, writes, corrupt, evictions;
} mfx_cache_stats;

/* The directory in use ($MFX_CACHE_DIR, $XDG_CACHE_HOME/mfx, ~/.cache/mfx),
 * or NULL when the cache is off (MFX_CACHE=0, unusable path: one warning). */
const char *mfx_cache_dir(void);
/* Key of fn for the host with the given identity strings. */
int mfx_cache_key_func(const mfx_func *fn, const char *triple, const char *cpu,
                       const char *features, mfx_cache_key *out);
/* 1 and a malloc'd payload on a verified hit, 0 on a miss (corrupt entries
 * are counted and treated as misses). */
int mfx_cache_load(const mfx_cache_key *key, char **data, size_t *size);
/* Best effort: atomic write, then eviction down to the size bound. */
void mfx_cache_store(const mfx_cache_key *key, const char *data, size_t size);
void mfx_cache_note_codegen(void);
mfx_cache_stats mfx_cache_get_stats(void);
/* Entries and bytes in the directory; removes them all for clear. */
int mfx_cache_scan(const char *dir, long *entries, long long *bytes);
int mfx_cache_clear(const char *dir, long *removed);
long long mfx_cache_limit_bytes(void);

#endif
