/* The target part of a record's key. For "cpu": the architecture (machine,
 * the SIMD extensions that matter to codegen, and a hash of the full
 * /proc/cpuinfo flag list, so that two CPUs differing in any feature never
 * share records), the device (CPU model and core count) and the version of
 * mfx and of the LLVM that generated the code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<llvm/Config/llvm-config.h>)
#include <llvm/Config/llvm-config.h>
#endif
#endif

#include "autotune_internal.h"

#ifndef MFX_VERSION
#define MFX_VERSION "0.1.0"
#endif
#ifndef LLVM_VERSION_STRING
#define LLVM_VERSION_STRING "unknown"
#endif

static int tune_has_flag(const char *flags, const char *flag) {
  size_t len = strlen(flag);
  for (const char *p = flags; (p = strstr(p, flag)) != NULL; p += len) {
    int starts = p == flags || p[-1] == ' ';
    int ends = p[len] == '\0' || p[len] == ' ';
    if (starts && ends) return 1;
  }
  return 0;
}

static void tune_cpu_arch(char *buf, size_t size) {
  static const char *const notable[] = {"sse4_2",   "avx",      "avx2",     "fma",
                                        "f16c",     "avx512f",  "avx512bw", "avx512vl",
                                        "avx512_vnni", "amx_tile", "asimd",  "sve"};
  struct utsname u;
  char flags[8192] = "";
  if (!mfx_cpuinfo_field("flags", flags, sizeof flags))
    mfx_cpuinfo_field("Features", flags, sizeof flags);
  const char *machine = uname(&u) == 0 ? u.machine : "unknown";
  size_t used = (size_t)snprintf(buf, size, "%s ", machine);
  int any = 0;
  for (size_t i = 0; i < sizeof notable / sizeof notable[0] && used < size; i++) {
    if (!tune_has_flag(flags, notable[i])) continue;
    used += (size_t)snprintf(buf + used, size - used, "%s%s", any ? "," : "", notable[i]);
    any = 1;
  }
  if (used < size)
    snprintf(buf + used, size - used, "%sflags:%016llx", any ? " " : "",
             (unsigned long long)tune_hash_text(flags));
}

static void tune_cpu_device(char *buf, size_t size) {
  char model[160] = "";
  if (!mfx_cpuinfo_field("model name", model, sizeof model) &&
      !mfx_cpuinfo_field("Processor", model, sizeof model))
    tune_copy_text(model, sizeof model, "unknown CPU");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  snprintf(buf, size, "%s (%ld cores)", model, cores > 0 ? cores : 1L);
}

mfx_status mfx_tune_target_get(const char *name, mfx_tune_target *out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "target: out must not be NULL");
  memset(out, 0, sizeof *out);
  if (name == NULL) name = "cpu";
  mfx_target t;
  MFX_TRY(mfx_target_parse(name, &t));
  if (t.kind != MFX_TARGET_CPU) return tune_target_gpu(&t, out);
  tune_copy_text(out->target, sizeof out->target, "cpu");
  tune_cpu_arch(out->arch, sizeof out->arch);
  tune_cpu_device(out->device, sizeof out->device);
  snprintf(out->version, sizeof out->version, "mfx %s llvm %s", MFX_VERSION, LLVM_VERSION_STRING);
  return MFX_OK;
}

/* ---- keys ----------------------------------------------------------------------- */

mfx_status mfx_tune_key_init(mfx_tune_key *key, const mfx_op *op, const int64_t *dims,
                             const char *target) {
  if (key == NULL || op == NULL || dims == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune key: key, op and dims must not be NULL");
  memset(key, 0, sizeof *key);
  key->op = op;
  for (int d = 0; d < op->n_dims; d++) {
    if (dims[d] <= 0)
      return mfx_fail(MFX_ERR_INVALID, "tune key of %s: %s=%lld must be positive", op->name,
                      op->dims[d], (long long)dims[d]);
    key->dims[d] = dims[d];
  }
  return mfx_tune_target_get(target, &key->target);
}

void mfx_tune_key_dims_text(const mfx_tune_key *key, char *buf, size_t size) {
  size_t used = 0;
  if (size == 0) return;
  buf[0] = '\0';
  for (int d = 0; d < key->op->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : "",
                             key->op->dims[d], (long long)key->dims[d]);
}

void mfx_tune_key_dtypes_text(const mfx_op *op, char *buf, size_t size) {
  size_t used = 0;
  if (size == 0) return;
  buf[0] = '\0';
  for (int i = 0; i < op->n_inputs && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s:%s", i ? "," : "",
                             op->inputs[i].name, mfx_dtype_name(op->inputs[i].dtype));
  for (int i = 0; i < op->n_outputs && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s:%s", i ? "," : "->",
                             op->outputs[i].name, mfx_dtype_name(op->outputs[i].dtype));
}

/* ---- the default database path ------------------------------------------------------ */

static mfx_status tune_mkdir(const char *dir) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) return MFX_OK;
  return mfx_fail(MFX_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
}

mfx_status mfx_tune_db_path(const char *given, char *buf, size_t size) {
  if (buf == NULL || size == 0) return mfx_fail(MFX_ERR_INVALID, "db path: no buffer");
  const char *env = getenv("MFX_DB");
  const char *path = given != NULL ? given : (env != NULL && env[0] != '\0' ? env : NULL);
  if (path != NULL) {
    if ((size_t)snprintf(buf, size, "%s", path) >= size)
      return mfx_fail(MFX_ERR_INVALID, "db path '%s' is too long", path);
    return MFX_OK;
  }
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0')
    return mfx_fail(MFX_ERR_INVALID, "no tuning database: give --db PATH or set MFX_DB "
                                     "(HOME is not set, so ~/.cache/mfx cannot be used)");
  char dir[1024];
  if ((size_t)snprintf(dir, sizeof dir, "%s/.cache", home) >= sizeof dir ||
      (size_t)snprintf(buf, size, "%s/.cache/mfx/tune.db", home) >= size)
    return mfx_fail(MFX_ERR_INVALID, "HOME '%s' is too long for a database path", home);
  MFX_TRY(tune_mkdir(dir));
  tune_copy_text(dir + strlen(dir), sizeof dir - strlen(dir), "/mfx");
  return tune_mkdir(dir);
}
