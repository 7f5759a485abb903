/* mfx kernel cache on disk (compiler/cache.c): host objects and PTX text,
 * keyed by a 128-bit FNV-1a hash of the printed loop IR + target (CPU
 * features, or nvptx and the sm) + LLVM/mfx/format versions + the LLVM
 * pipeline. See README "Kernel cache". */
#ifndef MFX_COMPILER_CACHE_H
#define MFX_COMPILER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mfx/compiler.h"

typedef struct {
  uint8_t bytes[16];
} mfx_cache_key;

/* What an entry holds; its file name ends in the kind's suffix (.mfxk,
 * .mfxp) and its header names the kind, checked on every read. */
typedef enum { MFX_CACHE_OBJECT = 0, MFX_CACHE_PTX = 1, MFX_CACHE_KINDS } mfx_cache_kind;

typedef struct {
  long hits, misses, codegens, writes, corrupt, evictions;
} mfx_cache_stats;

/* The directory in use ($MFX_CACHE_DIR, $XDG_CACHE_HOME/mfx, ~/.cache/mfx),
 * or NULL when the cache is off (MFX_CACHE=0, unusable path: one warning). */
const char *mfx_cache_dir(void);
/* A hash of the binary that holds the compiler (the executable or the
 * shared library), part of every key: a rebuilt compiler never gets entries
 * of another build. "unknown" when the file cannot be read. */
const char *mfx_cache_build_id(void);
/* Key of fn for the host with the given identity strings. */
int mfx_cache_key_func(const mfx_func *fn, const char *triple, const char *cpu,
                       const char *features, mfx_cache_key *out);
/* Key of a GPU program's PTX for target t: every kernel's printed loop IR,
 * launch dimensions and shared memory, "nvptx", the requested and emitted
 * sm and the PTX ISA version. -1 (no key: build uncached) when p is
 * malformed; the build reports what is wrong. */
int mfx_cache_key_gpu(const mfx_gpu_program *p, const mfx_ptx_target *t, mfx_cache_key *out);
/* 1 and a malloc'd payload on a verified hit (NUL-terminated one byte past
 * *size, so PTX text is a C string), 0 on a miss (corrupt entries are
 * counted and treated as misses). */
int mfx_cache_load_kind(mfx_cache_kind kind, const mfx_cache_key *key, char **data,
                        size_t *size);
/* Best effort: atomic write, then eviction (over entries of every kind)
 * down to the size bound. */
void mfx_cache_store_kind(mfx_cache_kind kind, const mfx_cache_key *key, const char *data,
                          size_t size);
/* The same for host objects (MFX_CACHE_OBJECT). */
int mfx_cache_load(const mfx_cache_key *key, char **data, size_t *size);
void mfx_cache_store(const mfx_cache_key *key, const char *data, size_t size);
void mfx_cache_note_codegen(void);
mfx_cache_stats mfx_cache_get_stats(void);
/* Entries and bytes in the directory; removes them all for clear. */
int mfx_cache_scan(const char *dir, long *entries, long long *bytes);
/* Entries of each kind (by file name), entries[MFX_CACHE_KINDS]. */
int mfx_cache_scan_kinds(const char *dir, long *entries);
int mfx_cache_clear(const char *dir, long *removed);
long long mfx_cache_limit_bytes(void);

#endif
