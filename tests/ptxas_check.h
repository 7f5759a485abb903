/* The toolkit's ptxas as a test oracle for generated PTX, shared by the
 * tests that emit PTX. Included by test programs only. */
#ifndef MFX_TESTS_PTXAS_CHECK_H
#define MFX_TESTS_PTXAS_CHECK_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* $MFX_PTXAS (a path that is not executable, such as "none", turns the
 * validation off), ptxas on PATH, or the toolkit's default place; NULL if
 * none. */
static inline const char *ptxas_path(void) {
  static char found[4096];
  const char *env = getenv("MFX_PTXAS");
  if (env != NULL && env[0] != '\0') return access(env, X_OK) == 0 ? env : NULL;
  const char *path = getenv("PATH");
  while (path != NULL && *path != '\0') {
    size_t len = strcspn(path, ":");
    if (len > 0 && len + sizeof "/ptxas" < sizeof found) {
      memcpy(found, path, len);
      strcpy(found + len, "/ptxas");
      if (access(found, X_OK) == 0) return found;
    }
    path += len;
    if (*path == ':') path++;
  }
  return access("/usr/local/cuda/bin/ptxas", X_OK) == 0 ? "/usr/local/cuda/bin/ptxas" : NULL;
}

/* ptxas FLAGS -arch=ARCH on ptx, its output into log (size bytes): 1 when it
 * ran and accepted the PTX (a rejection fails the test with that output), 0
 * without ptxas (said as a SKIP, log empty). */
static inline int ptxas_run(const char *ptx, const char *arch, const char *flags, char *log,
                     size_t size, const char *what) {
  log[0] = '\0';
  const char *ptxas = ptxas_path();
  if (ptxas == NULL) {
    fprintf(stderr,
            "SKIP: ptxas not found; PTX not validated (%s, %s) "
            "****************************************\n",
            what, arch);
    return 0;
  }
  char file[] = "/tmp/mfx_ptx_XXXXXX.ptx";
  int fd = mkstemps(file, 4);
  ck_assert_msg(fd >= 0, "cannot create a temporary PTX file");
  size_t len = strlen(ptx);
  ck_assert_int_eq(write(fd, ptx, len), (ssize_t)len);
  close(fd);
  char command[8192];
  snprintf(command, sizeof command, "'%s' %s -arch=%s -o /dev/null '%s' 2>&1", ptxas, flags,
           arch, file);
  FILE *out = popen(command, "r");
  ck_assert_ptr_nonnull(out);
  size_t n = fread(log, 1, size - 1, out);
  log[n] = '\0';
  int status = pclose(out);
  unlink(file);
  ck_assert_msg(status == 0, "%s: ptxas %s -arch=%s failed:\n%s", what, flags, arch, log);
  return 1;
}

/* ptxas -arch=sm PTX must succeed; its output is the failure message. */
static inline void assemble(const char *ptx, const char *arch, const char *what) {
  char log[4096];
  ptxas_run(ptx, arch, "", log, sizeof log, what);
}

/* A ptxas -v report (log) says for every kernel: no stack frame, no spill
 * stores or loads. */
static inline void ptxas_check_no_spills(const char *log, const char *arch, const char *what) {
  static const char none[] = "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads";
  ck_assert_msg(strstr(log, none) != NULL, "%s: ptxas -v -arch=%s said nothing of spills:\n%s",
                what, arch, log);
  for (const char *l = strstr(log, "spill"); l != NULL; l = strstr(l + 1, "spill")) {
    const char *line = l;
    while (line > log && line[-1] != '\n') line--;
    while (*line == ' ') line++;
    ck_assert_msg(strncmp(line, none, sizeof none - 1) == 0,
                  "%s: ptxas -arch=%s reports a stack frame or spills:\n%s", what, arch, log);
  }
}

/* ptxas -v accepts the PTX and reports no spills for any kernel. */
static inline void assemble_no_spills(const char *ptx, const char *arch, const char *what) {
  static char log[65536];
  if (ptxas_run(ptx, arch, "-v", log, sizeof log, what)) ptxas_check_no_spills(log, arch, what);
}

/* How many times what occurs in text (overlapping occurrences counted).
 * Not inlined: inlined next to a freed PTX buffer, GCC 12 reports a dangling
 * pointer that is not there (-Wdangling-pointer). */
__attribute__((noinline, unused)) static int ptx_count(const char *text, const char *what) {
  int n = 0;
  size_t at = 0;
  for (const char *p; (p = strstr(text + at, what)) != NULL; n++) at = (size_t)(p - text) + 1;
  return n;
}

#endif
