/* Kernel cache on disk. Why FNV-1a 128: no dependency, a few lines, and
 * 128 bits make an accidental collision between kernels negligible; it is
 * not cryptographic (the cache directory is trusted, like Triton's). Each
 * entry also carries a payload checksum (FNV-1a 64) that is verified on
 * every read: a flipped byte or a truncated file is a miss and is rebuilt.
 * Host objects and PTX text share the directory, the size bound and the
 * LRU order; the kind is in the file name (.mfxk, .mfxp) and the header. */
#define _GNU_SOURCE
#include "cache.h"
#include "mfx_source_hash.h" /* generated: MFX_COMPILER_SOURCE_HASH */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <llvm/Config/llvm-config.h> /* LLVM_VERSION_STRING (C header) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "MFXKC\0\0\1"
#define CACHE_FORMAT 1u
static const char *const cache_suffix[MFX_CACHE_KINDS] = {".mfxk", ".mfxp"};
#ifndef MFX_VERSION_STRING
#define MFX_VERSION_STRING "unknown"
#endif

typedef struct {
  char magic[8];
  uint32_t format, kind; /* kind: mfx_cache_kind (0, host objects, in format 1's first files) */
  uint8_t key[16];
  uint64_t size, checksum;
} cache_header;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static mfx_cache_stats cache_stats;

/* ---- hashing ------------------------------------------------------------------ */

__extension__ typedef unsigned __int128 cache_u128;

static cache_u128 cache_fnv128(cache_u128 h, const void *data, size_t n) {
  const cache_u128 prime = ((cache_u128)1 << 88) | 0x13Bu;
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= prime;
  }
  return h;
}

static uint64_t cache_fnv64(const void *data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* ---- the build ------------------------------------------------------------------ */

/* The mfx version names a release, not the code: a rebuilt compiler whose
 * code generation changed but whose loop IR did not would get the old
 * entries back (in ctest's cache under the build tree too). So the key
 * also holds a hash of the compiler's sources (compiler/ and the public
 * headers, cmake/source_hash.cmake, regenerated at every build): a change
 * to any of them starts fresh entries, while every program built from the
 * same sources (mfx, the tests, the benches, libmfxrt.so's users; a
 * release or a sanitizer build) shares them, since LLVM's output does not
 * depend on how mfx itself was compiled. */
const char *mfx_cache_build_id(void) { return MFX_COMPILER_SOURCE_HASH; }

static cache_u128 cache_hash_str(cache_u128 h, const char *s) {
  s = s != NULL ? s : "";
  return cache_fnv128(h, s, strlen(s) + 1); /* the NUL separates fields */
}

static int cache_func_ok(const mfx_func *fn) {
  return fn != NULL && fn->name != NULL && fn->body != NULL &&
         fn->n_args >= 0 && (fn->n_args == 0 || fn->args != NULL);
}

/* The key of printed IR `text` (freed here) for `target`, the entry name and
 * the three identity strings of the target machine. */
static int cache_key_text(char *text, size_t len, const char *target, const char *entry,
                          const char *triple, const char *cpu, const char *features,
                          mfx_cache_key *out) {
  cache_u128 h = ((cache_u128)0x6c62272e07bb0142ull << 64) | 0x62b821756295c58dull;
  h = cache_fnv128(h, text, len);
  free(text);
  char misc[300];
  const char *pipeline = mfx_llvm_pipeline();
  if (pipeline == NULL) return -1; /* the build reports the bad setting */
  snprintf(misc, sizeof misc, "llvm %s mfx %s build %s format %u entry %s %s pipeline %s",
           LLVM_VERSION_STRING, MFX_VERSION_STRING, mfx_cache_build_id(), CACHE_FORMAT, entry,
           target, pipeline);
  h = cache_hash_str(h, misc);
  h = cache_hash_str(h, triple);
  h = cache_hash_str(h, cpu);
  h = cache_hash_str(h, features);
  for (int i = 0; i < 16; i++) out->bytes[i] = (uint8_t)(h >> (8 * i));
  return 0;
}

static int cache_close_text(FILE *f, char **text) {
  if (fclose(f) == 0) return 0;
  free(*text);
  return -1;
}

int mfx_cache_key_func(const mfx_func *fn, const char *triple, const char *cpu,
                       const char *features, mfx_cache_key *out) {
  /* Malformed funcs are not keyed: the build reports what is wrong. */
  if (!cache_func_ok(fn)) return -1;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return -1;
  mfx_print_func(f, fn);
  if (cache_close_text(f, &text) != 0) return -1;
  return cache_key_text(text, len, "jit", fn->name, triple, cpu, features, out);
}

/* Each kernel as the nvptx target sees it: launch, shared bytes, then the
 * kernel as a func (its name, arguments and loop IR). */
static int cache_print_program(FILE *f, const mfx_gpu_program *p) {
  for (int i = 0; i < p->n_kernels; i++) {
    const mfx_gpu_kernel *k = &p->kernels[i];
    mfx_func fn = {.name = k->name, .n_args = k->n_args, .args = k->args, .body = k->body};
    if (!cache_func_ok(&fn)) return -1;
    fprintf(f, "kernel %d grid %lld %lld %lld block %lld %lld %lld shared %lld\n", i,
            (long long)k->grid[0], (long long)k->grid[1], (long long)k->grid[2],
            (long long)k->block[0], (long long)k->block[1], (long long)k->block[2],
            (long long)k->shared_bytes);
    mfx_print_func(f, &fn);
  }
  return 0;
}

int mfx_cache_key_gpu(const mfx_gpu_program *p, const mfx_ptx_target *t, mfx_cache_key *out) {
  if (p == NULL || t == NULL || p->n_kernels <= 0 || p->kernels == NULL) return -1;
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (f == NULL) return -1;
  int printed = cache_print_program(f, p);
  if (cache_close_text(f, &text) != 0) return -1;
  if (printed != 0) {
    free(text);
    return -1;
  }
  char cpu[32], features[32];
  snprintf(cpu, sizeof cpu, "sm_%d as sm_%d", t->sm_requested, t->sm_emitted);
  snprintf(features, sizeof features, "+ptx%d", t->ptx_version);
  const char *entry = p->func != NULL && p->func->name != NULL ? p->func->name : "";
  return cache_key_text(text, len, "nvptx", entry, "nvptx64-nvidia-cuda", cpu, features, out);
}

/* ---- the directory -------------------------------------------------------------- */

static char cache_path[4096];
static int cache_state; /* 0 unknown, 1 on, -1 off */

static int cache_mkdir(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
  struct stat st;
  return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static void cache_resolve(void) {
  const char *on = getenv("MFX_CACHE");
  if (on != NULL && strcmp(on, "0") == 0) {
    cache_state = -1;
    return;
  }
  const char *dir = getenv("MFX_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
  const char *home = getenv("HOME");
  int n;
  if (dir != NULL && *dir != '\0') n = snprintf(cache_path, sizeof cache_path, "%s", dir);
  else if (xdg != NULL && *xdg != '\0') n = snprintf(cache_path, sizeof cache_path, "%s/mfx", xdg);
  else if (home != NULL && *home != '\0')
    n = snprintf(cache_path, sizeof cache_path, "%s/.cache/mfx", home);
  else n = -1;
  if (n < 0 || n >= (int)sizeof cache_path || cache_mkdir(cache_path) != 0) {
    fprintf(stderr, "mfx: kernel cache off: %s is not a usable directory (set MFX_CACHE_DIR "
                    "to a writable directory, or MFX_CACHE=0)\n",
            n > 0 ? cache_path : "(no MFX_CACHE_DIR, XDG_CACHE_HOME or HOME)");
    cache_state = -1;
    return;
  }
  cache_state = 1;
}

const char *mfx_cache_dir(void) {
  pthread_mutex_lock(&cache_lock);
  if (cache_state == 0) cache_resolve();
  const char *d = cache_state > 0 ? cache_path : NULL;
  pthread_mutex_unlock(&cache_lock);
  return d;
}

long long mfx_cache_limit_bytes(void) {
  const char *mb = getenv("MFX_CACHE_MAX_MB");
  long long v = 256;
  if (mb != NULL && *mb != '\0') {
    char *end;
    long long x = strtoll(mb, &end, 10);
    if (*end == '\0' && x >= 0) v = x;
  }
  return v * 1024 * 1024;
}

static void cache_entry_path(const char *dir, mfx_cache_kind kind, const mfx_cache_key *key,
                             char *out, size_t n) {
  char hex[33];
  for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", key->bytes[i]);
  snprintf(out, n, "%s/%s%s", dir, hex, cache_suffix[kind]);
}

static void cache_count(long *field) {
  pthread_mutex_lock(&cache_lock);
  (*field)++;
  pthread_mutex_unlock(&cache_lock);
}

void mfx_cache_note_codegen(void) { cache_count(&cache_stats.codegens); }

mfx_cache_stats mfx_cache_get_stats(void) {
  pthread_mutex_lock(&cache_lock);
  mfx_cache_stats s = cache_stats;
  pthread_mutex_unlock(&cache_lock);
  return s;
}

/* ---- entries -------------------------------------------------------------------- */

static int cache_read_verified(const char *path, mfx_cache_kind kind, const mfx_cache_key *key,
                               char **data, size_t *size) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  if (fd < 0) return 0;
  struct stat st;
  cache_header h;
  int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
           read(fd, &h, sizeof h) == (ssize_t)sizeof h &&
           memcmp(h.magic, CACHE_MAGIC, 8) == 0 && h.format == CACHE_FORMAT &&
           h.kind == (uint32_t)kind &&
           memcmp(h.key, key->bytes, 16) == 0 &&
           (uint64_t)st.st_size == sizeof h + h.size && h.size > 0;
  char *buf = ok && h.size < SIZE_MAX ? malloc(h.size + 1) : NULL;
  if (ok) ok = buf != NULL && read(fd, buf, h.size) == (ssize_t)h.size &&
               cache_fnv64(buf, h.size) == h.checksum;
  if (ok) buf[h.size] = '\0';
  close(fd);
  if (!ok) {
    free(buf);
    return -1;
  }
  *data = buf;
  *size = h.size;
  return 1;
}

static int cache_kind_ok(mfx_cache_kind kind) { return kind >= 0 && kind < MFX_CACHE_KINDS; }

int mfx_cache_load_kind(mfx_cache_kind kind, const mfx_cache_key *key, char **data,
                        size_t *size) {
  const char *dir = mfx_cache_dir();
  if (dir == NULL || !cache_kind_ok(kind)) return 0;
  char path[4200];
  cache_entry_path(dir, kind, key, path, sizeof path);
  int r = cache_read_verified(path, kind, key, data, size);
  if (r == 1) {
    utimensat(AT_FDCWD, path, NULL, 0); /* LRU: a hit is a use */
    cache_count(&cache_stats.hits);
    return 1;
  }
  if (r < 0) cache_count(&cache_stats.corrupt);
  cache_count(&cache_stats.misses);
  return 0;
}

int mfx_cache_load(const mfx_cache_key *key, char **data, size_t *size) {
  return mfx_cache_load_kind(MFX_CACHE_OBJECT, key, data, size);
}

/* The kind an entry's name says, or -1 when it is no entry. */
static int cache_entry_kind(const char *name) {
  size_t n = strlen(name);
  for (int k = 0; k < MFX_CACHE_KINDS; k++) {
    size_t s = strlen(cache_suffix[k]);
    if (n > s && strcmp(name + n - s, cache_suffix[k]) == 0) return k;
  }
  return -1;
}

typedef struct {
  char name[64];
  int kind;
  long long bytes;
  struct timespec mtime;
} cache_file;

static int cache_older(const void *a, const void *b) {
  const cache_file *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
  return 0;
}

/* The entries of dir (regular files named *.mfxk or *.mfxp), malloc'd. */
static int cache_list(const char *dir, cache_file **out, long *n) {
  *out = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  long cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int kind = cache_entry_kind(e->d_name);
    if (kind < 0 || strlen(e->d_name) >= sizeof((cache_file *)0)->name) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      cache_file *grown = realloc(*out, (size_t)cap * sizeof **out);
      if (grown == NULL) break;
      *out = grown;
    }
    cache_file *f = &(*out)[(*n)++];
    memcpy(f->name, e->d_name, strlen(e->d_name) + 1); /* length checked above */
    f->kind = kind;
    f->bytes = st.st_size;
    f->mtime = st.st_mtim;
  }
  closedir(d);
  return 0;
}

int mfx_cache_scan(const char *dir, long *entries, long long *bytes) {
  cache_file *files;
  long n;
  if (cache_list(dir, &files, &n) != 0) return -1;
  *entries = n;
  *bytes = 0;
  for (long i = 0; i < n; i++) *bytes += files[i].bytes;
  free(files);
  return 0;
}

int mfx_cache_scan_kinds(const char *dir, long *entries) {
  cache_file *files;
  long n;
  if (cache_list(dir, &files, &n) != 0) return -1;
  for (int k = 0; k < MFX_CACHE_KINDS; k++) entries[k] = 0;
  for (long i = 0; i < n; i++) entries[files[i].kind]++;
  free(files);
  return 0;
}

int mfx_cache_clear(const char *dir, long *removed) {
  cache_file *files;
  long n;
  *removed = 0;
  if (cache_list(dir, &files, &n) != 0) return -1;
  char path[4200];
  for (long i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    if (unlink(path) == 0) (*removed)++;
  }
  free(files);
  return 0;
}

static void cache_evict(const char *dir, const char *keep) {
  cache_file *files;
  long n;
  if (cache_list(dir, &files, &n) != 0) return;
  long long total = 0, limit = mfx_cache_limit_bytes();
  for (long i = 0; i < n; i++) total += files[i].bytes;
  qsort(files, (size_t)n, sizeof *files, cache_older);
  char path[4200];
  for (long i = 0; i < n && total > limit; i++) {
    if (strcmp(files[i].name, keep) == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    if (unlink(path) == 0) cache_count(&cache_stats.evictions);
    total -= files[i].bytes;
  }
  free(files);
}

static int cache_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

void mfx_cache_store_kind(mfx_cache_kind kind, const mfx_cache_key *key, const char *data,
                          size_t size) {
  const char *dir = mfx_cache_dir();
  if (dir == NULL || size == 0 || data == NULL || !cache_kind_ok(kind)) return;
  char path[4200], tmp[4300];
  cache_entry_path(dir, kind, key, path, sizeof path);
  struct stat st;
  if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) return; /* never replace such a thing */
  static unsigned counter;
  pthread_mutex_lock(&cache_lock);
  unsigned c = counter++;
  pthread_mutex_unlock(&cache_lock);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), c);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  cache_header h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, CACHE_MAGIC, 8);
  h.format = CACHE_FORMAT;
  h.kind = (uint32_t)kind;
  memcpy(h.key, key->bytes, 16);
  h.size = size;
  h.checksum = cache_fnv64(data, size);
  int ok = cache_write_all(fd, &h, sizeof h) == 0 && cache_write_all(fd, data, size) == 0;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    return;
  }
  cache_count(&cache_stats.writes);
  cache_evict(dir, strrchr(path, '/') + 1);
}

void mfx_cache_store(const mfx_cache_key *key, const char *data, size_t size) {
  mfx_cache_store_kind(MFX_CACHE_OBJECT, key, data, size);
}
