/* CPU kernels of a loaded artifact: each kernel's shared object is written
 * to an anonymous memory file (memfd_create) and opened with dlopen through
 * /proc/self/fd/N, so nothing is left on disk. The descriptor stays open
 * while the object is loaded: its number keeps the path unique, and glibc
 * would otherwise hand back an earlier object loaded under the same path.
 * Where memfd or /proc is missing, a file in a private temporary directory
 * is used and removed right after dlopen. Kernels run on the artifact's own
 * thread pool through the mfx_kernel_env calling convention. */
#define _GNU_SOURCE
#include "artifact_internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define CPU_ELF_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define CPU_ELF_MACHINE EM_AARCH64
#elif defined(__powerpc64__)
#define CPU_ELF_MACHINE EM_PPC64
#elif defined(__riscv)
#define CPU_ELF_MACHINE EM_RISCV
#else
#define CPU_ELF_MACHINE EM_NONE
#endif

typedef struct {
  void *handle;
  int fd; /* the memory file, or -1 */
  mfx_cpu_kernel_fn entry;
  const mfx_artifact_kernel *meta;
} cpu_kernel;

typedef struct {
  mfx_pool *pool;
  mfx_kernel_env env;
  int n_kernels;
  cpu_kernel *kernels;
  char label[512];
} cpu_state;

/* ---- CPU features --------------------------------------------------------------- */

#if defined(__x86_64__) || defined(__i386__)
#define CPU_FEATURES(X)                                                                   \
  X("popcnt") X("sse3") X("ssse3") X("sse4.1") X("sse4.2") X("avx") X("avx2") X("fma")    \
  X("bmi") X("bmi2") X("avx512f") X("avx512bw") X("avx512dq") X("avx512vl") X("avx512cd") \
  X("avx512vnni") X("avx512vpopcntdq") X("avx512bitalg") X("avx512vbmi") X("avx512vbmi2") \
  X("avx512ifma")

int mfx_artifact_cpu_feature(const char *feature) {
  if (feature == NULL) return -1;
  __builtin_cpu_init();
#define CPU_FEATURE_CHECK(name) \
  if (strcmp(feature, name) == 0) return __builtin_cpu_supports(name) != 0;
  CPU_FEATURES(CPU_FEATURE_CHECK)
#undef CPU_FEATURE_CHECK
  return -1;
}
#else
int mfx_artifact_cpu_feature(const char *feature) {
  (void)feature;
  return -1;
}
#endif

/* The kernel's machine and every feature it was compiled for. */
static mfx_status cpu_check_machine(const char *label, const mfx_artifact_kernel *k) {
  if (strcmp(k->machine, mfx_artifact_host_machine()) != 0)
    return mfx_fail(MFX_ERR_DEVICE, "artifact %s: kernel %s was compiled for %s; this is %s",
                    label, k->name, k->machine, mfx_artifact_host_machine());
  const char *p = k->cpu_features;
  while (*p != '\0') {
    char name[64];
    size_t n = strcspn(p, ",");
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), p);
    int has = mfx_artifact_cpu_feature(name);
    if (has != 1)
      return mfx_fail(MFX_ERR_DEVICE, "artifact %s: kernel %s needs CPU feature %s, %s "
                      "(recompile it on this machine)", label, k->name, name,
                      has == 0 ? "which this CPU lacks" : "which this runtime cannot check");
    p += n + (p[n] == ',');
  }
  return MFX_OK;
}

/* ---- shared objects in memory ---------------------------------------------------- */

static mfx_status cpu_write_all(int fd, const void *data, size_t size, const char *what) {
  const unsigned char *p = data;
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return mfx_fail(MFX_ERR_IO, "%s: writing the shared object: %s", what,
                                n < 0 ? strerror(errno) : "no progress");
    p += n;
    size -= (size_t)n;
  }
  return MFX_OK;
}

static mfx_status cpu_dlopen(const char *path, const char *what, void **handle) {
  dlerror();
  *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (*handle != NULL) return MFX_OK;
  const char *why = dlerror();
  return mfx_fail(MFX_ERR_DEVICE, "%s: the dynamic loader refused the kernel's shared object: %s",
                  what, why != NULL ? why : "dlopen failed");
}

static mfx_status cpu_open_memfd(const mfx_artifact_kernel *k, const char *what, cpu_kernel *out) {
  int fd = memfd_create("mfx-kernel", MFD_CLOEXEC);
  if (fd < 0) return mfx_fail(MFX_ERR_IO, "%s: memfd_create: %s", what, strerror(errno));
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  mfx_status st = cpu_write_all(fd, k->host_so, k->host_so_bytes, what);
  if (st == MFX_OK) st = cpu_dlopen(path, what, &out->handle);
  if (st != MFX_OK) {
    close(fd);
    return st;
  }
  out->fd = fd;
  return MFX_OK;
}

/* The fallback: a file in a directory only this process uses, with a name
 * never used before in this process, removed once loaded. */
static mfx_status cpu_open_tempfile(const mfx_artifact_kernel *k, const char *what,
                                    cpu_kernel *out) {
  static atomic_uint serial;
  const char *tmp = getenv("TMPDIR");
  char dir[512], path[600];
  snprintf(dir, sizeof dir, "%s/mfx-%ld-%u-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp",
           (long)getpid(), atomic_fetch_add(&serial, 1u));
  if (mkdtemp(dir) == NULL)
    return mfx_fail(MFX_ERR_IO, "%s: cannot create a temporary directory %s: %s", what, dir,
                    strerror(errno));
  snprintf(path, sizeof path, "%s/kernel.so", dir);
  mfx_status st = MFX_OK;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  if (fd < 0) st = mfx_fail(MFX_ERR_IO, "%s: cannot create %s: %s", what, path, strerror(errno));
  if (st == MFX_OK) {
    st = cpu_write_all(fd, k->host_so, k->host_so_bytes, what);
    if (close(fd) != 0 && st == MFX_OK)
      st = mfx_fail(MFX_ERR_IO, "%s: closing %s: %s", what, path, strerror(errno));
  }
  if (st == MFX_OK) st = cpu_dlopen(path, what, &out->handle);
  unlink(path);
  rmdir(dir);
  out->fd = -1;
  return st;
}

static mfx_status cpu_open_object(const mfx_artifact_kernel *k, const char *what,
                                  cpu_kernel *out) {
  mfx_status st = cpu_open_memfd(k, what, out);
  if (st == MFX_OK || st == MFX_ERR_DEVICE) return st;
  char first[256];
  snprintf(first, sizeof first, "%s", mfx_last_error());
  st = cpu_open_tempfile(k, what, out);
  if (st != MFX_OK) mfx_fail_context(st, "after %s", first);
  return st;
}

/* The ELF header of a shared object for this machine, before the dynamic
 * loader sees it. */
static mfx_status cpu_check_elf(const mfx_artifact_kernel *k, const char *what) {
  const unsigned char *p = k->host_so;
  Elf64_Ehdr h;
  if (k->host_so_bytes < sizeof h || memcmp(p, ELFMAG, SELFMAG) != 0)
    return mfx_fail(MFX_ERR_FORMAT, "%s: the host code is not an ELF file", what);
  memcpy(&h, p, sizeof h);
  int native = h.e_ident[EI_CLASS] == ELFCLASS64 && h.e_ident[EI_DATA] == ELFDATA2LSB &&
               h.e_machine == CPU_ELF_MACHINE;
  if (!native || h.e_type != ET_DYN)
    return mfx_fail(MFX_ERR_FORMAT, "%s: the host code is not a shared object for %s", what,
                    mfx_artifact_host_machine());
  return MFX_OK;
}

static mfx_status cpu_load_kernel(const char *label, const mfx_artifact_kernel *k,
                                  cpu_kernel *out) {
  char what[600];
  snprintf(what, sizeof what, "artifact %s: kernel %s", label, k->name);
  out->meta = k;
  out->fd = -1;
  MFX_TRY(cpu_check_machine(label, k));
  MFX_TRY(cpu_check_elf(k, what));
  MFX_TRY(cpu_open_object(k, what, out));
  dlerror();
  void *sym = dlsym(out->handle, k->symbol);
  if (sym == NULL)
    return mfx_fail(MFX_ERR_FORMAT, "%s: the shared object has no entry point %s", what,
                    k->symbol);
  memcpy(&out->entry, &sym, sizeof sym);
  return MFX_OK;
}

/* ---- the backend ----------------------------------------------------------------- */

static void cpu_unload(void *state) {
  cpu_state *s = state;
  for (int i = 0; i < s->n_kernels; i++) {
    if (s->kernels[i].handle != NULL) dlclose(s->kernels[i].handle);
    if (s->kernels[i].fd >= 0) close(s->kernels[i].fd);
  }
  free(s->kernels);
  if (s->pool != NULL) mfx_pool_destroy(s->pool);
  free(s);
}

static mfx_status cpu_load(const char *device, int threads, const char *label,
                           const mfx_artifact_kernel *kernels, int n_kernels, void **state) {
  (void)device;
  cpu_state *s = calloc(1, sizeof *s);
  cpu_kernel *ks = calloc((size_t)n_kernels, sizeof *ks);
  if (s == NULL || ks == NULL) {
    free(s);
    free(ks);
    return mfx_fail(MFX_ERR_NOMEM, "artifact %s: out of memory", label);
  }
  snprintf(s->label, sizeof s->label, "%s", label);
  s->kernels = ks;
  mfx_status st = mfx_pool_create(threads, &s->pool);
  if (st != MFX_OK) mfx_fail_context(st, "artifact %s: thread pool", label);
  for (int i = 0; i < n_kernels && st == MFX_OK; i++) {
    s->n_kernels = i + 1;
    st = cpu_load_kernel(label, &kernels[i], &ks[i]);
  }
  if (st != MFX_OK) {
    cpu_unload(s);
    return st;
  }
  mfx_kernel_env_init(&s->env, s->pool);
  *state = s;
  return MFX_OK;
}

static mfx_status cpu_call(cpu_state *s, int index, const mfx_array *inputs, mfx_array *outputs) {
  const cpu_kernel *k = &s->kernels[index];
  int n_in = mfx_artifact_role_count(k->meta, MFX_ARG_INPUT);
  int n_out = mfx_artifact_role_count(k->meta, MFX_ARG_OUTPUT);
  void *args[MFX_ARTIFACT_MAX_ARGS];
  for (int i = 0; i < n_in; i++) args[i] = inputs[i].data;
  for (int i = 0; i < n_out; i++) args[n_in + i] = outputs[i].data;
  if (k->entry(args, &s->env) != 0)
    return mfx_fail(MFX_ERR_NOMEM, "artifact %s: kernel %s could not allocate its workspace",
                    s->label, k->meta->name);
  return MFX_OK;
}

static mfx_status cpu_run(void *state, int index, const mfx_array *inputs, mfx_array *outputs) {
  return cpu_call(state, index, inputs, outputs);
}

typedef struct {
  void *state;
  int index;
  const mfx_array *inputs;
  mfx_array *outputs;
} cpu_timed_call;

static mfx_status cpu_timed(void *closure, double *seconds) {
  (void)seconds; /* the host clock's */
  cpu_timed_call *c = closure;
  return cpu_call(c->state, c->index, c->inputs, c->outputs);
}

static mfx_status cpu_time(void *state, int index, const mfx_array *inputs, mfx_array *outputs,
                           int repeat, double *median_seconds) {
  cpu_timed_call call = {state, index, inputs, outputs};
  mfx_timing plan = {.warmup = 1, .min_runs = repeat, .max_runs = repeat};
  return mfx_time_median(cpu_timed, &call, &plan, median_seconds, NULL);
}

static const char *cpu_device_name(const void *state) {
  (void)state;
  return "cpu";
}

const art_backend art_cpu_backend = {
    .name = "cpu",
    .target = ART_TARGET_CPU,
    .load = cpu_load,
    .run = cpu_run,
    .time = cpu_time,
    .device_name = cpu_device_name,
    .unload = cpu_unload,
};
