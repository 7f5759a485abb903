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
static const char *ptxas_path(void) {
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

/* ptxas -arch=sm PTX must succeed; its output is the failure message. */
static void assemble(const char *ptx, const char *arch, const char *what) {
  const char *ptxas = ptxas_path();
  if (ptxas == NULL) {
    fprintf(stderr,
            "SKIP: ptxas not found; PTX not validated (%s, %s) "
            "****************************************\n",
            what, arch);
    return;
  }
  char file[] = "/tmp/mfx_nvptx_XXXXXX.ptx";
  int fd = mkstemps(file, 4);
  ck_assert_msg(fd >= 0, "cannot create a temporary PTX file");
  size_t len = strlen(ptx);
  ck_assert_int_eq(write(fd, ptx, len), (ssize_t)len);
  close(fd);
  char command[8192];
  snprintf(command, sizeof command, "'%s' -arch=%s -o /dev/null '%s' 2>&1", ptxas, arch, file);
  FILE *out = popen(command, "r");
  ck_assert_ptr_nonnull(out);
  char log[4096] = "";
  size_t n = fread(log, 1, sizeof log - 1, out);
  log[n] = '\0';
  int status = pclose(out);
  unlink(file);
  ck_assert_msg(status == 0, "%s: ptxas -arch=%s failed:\n%s", what, arch, log);
}

#endif
