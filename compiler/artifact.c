/* The artifact writer's half in the compiler: turn a schedule into one
 * kernel of an artifact. The arguments come from the schedule (inputs, then
 * outputs), the code from code generation:
 *
 *   cpu         mfx_build -> ELF object -> `cc -shared` -> shared object,
 *               entry point mfx_<name>
 *   cuda:sm_XX  mfx_build -> launches (mfx_split_kernels) and PTX;
 *               workspace buffers become arguments
 *
 * The container itself (encoding, checksum) is runtime/artifact.c. */
#define _GNU_SOURCE
#include "mfx/artifact.h"
#include "mfx/compiler.h"

#include <errno.h>
#include <fcntl.h>
#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <llvm/Config/llvm-config.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MFX_VERSION_STRING
#define MFX_VERSION_STRING "0.1.0"
#endif

#define ART_MAX_CC_WORDS 16
#define ART_LINK_LOG_BYTES 1500

/* ---- files in a private temporary directory ---------------------------------- */

typedef struct {
  char dir[512];
  char object[600], shared[600], log[600];
} art_link_dir;

static mfx_status art_link_dir_create(art_link_dir *d) {
  const char *tmp = getenv("TMPDIR");
  snprintf(d->dir, sizeof d->dir, "%s/mfx-link-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
  if (mkdtemp(d->dir) == NULL)
    return mfx_fail(MFX_ERR_IO, "linking the CPU kernel: cannot create a temporary directory "
                    "%s: %s (set TMPDIR)", d->dir, strerror(errno));
  snprintf(d->object, sizeof d->object, "%s/kernel.o", d->dir);
  snprintf(d->shared, sizeof d->shared, "%s/kernel.so", d->dir);
  snprintf(d->log, sizeof d->log, "%s/cc.log", d->dir);
  return MFX_OK;
}

static void art_link_dir_remove(const art_link_dir *d) {
  unlink(d->object);
  unlink(d->shared);
  unlink(d->log);
  rmdir(d->dir);
}

static mfx_status art_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (f == NULL) return mfx_fail(MFX_ERR_IO, "cannot create %s: %s", path, strerror(errno));
  size_t put = fwrite(data, 1, size, f);
  int failed = fclose(f) != 0 || put != size;
  if (failed) return mfx_fail(MFX_ERR_IO, "cannot write %s", path);
  return MFX_OK;
}

/* Up to cap bytes of a file (NUL-terminated); *size the bytes read. */
static char *art_read_text(const char *path, size_t cap, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  char *buf = malloc(cap + 1);
  size_t n = buf != NULL ? fread(buf, 1, cap, f) : 0;
  fclose(f);
  if (buf != NULL) buf[n] = '\0';
  if (size != NULL) *size = n;
  return buf;
}

static mfx_status art_read_whole(const char *path, char **data, size_t *size) {
  struct stat sb;
  if (stat(path, &sb) != 0 || sb.st_size <= 0)
    return mfx_fail(MFX_ERR_IO, "the linker produced no shared object at %s", path);
  *data = art_read_text(path, (size_t)sb.st_size, size);
  if (*data == NULL || *size != (size_t)sb.st_size) {
    free(*data);
    *data = NULL;
    return mfx_fail(MFX_ERR_IO, "cannot read the shared object %s", path);
  }
  return MFX_OK;
}

/* ---- the C compiler as linker --------------------------------------------------- */

/* $CC split into words, or "cc". */
static int art_cc_words(char *buffer, size_t cap, char **words) {
  const char *cc = getenv("CC");
  snprintf(buffer, cap, "%s", cc != NULL && cc[strspn(cc, " \t")] != '\0' ? cc : "cc");
  int n = 0;
  for (char *save = NULL, *w = strtok_r(buffer, " \t", &save);
       w != NULL && n < ART_MAX_CC_WORDS; w = strtok_r(NULL, " \t", &save))
    words[n++] = w;
  return n;
}

static mfx_status art_spawn_failed(const char *cc, int err) {
  if (err == ENOENT)
    return mfx_fail(MFX_ERR_CODEGEN, "linking the CPU kernel needs a C compiler, and '%s' was "
                    "not found (install gcc or clang, or set CC to one)", cc);
  return mfx_fail(MFX_ERR_CODEGEN, "linking the CPU kernel: cannot run '%s': %s", cc,
                  strerror(err));
}

static mfx_status art_link_failed(const art_link_dir *d, const char *cc, int wstatus) {
  char *log = art_read_text(d->log, ART_LINK_LOG_BYTES, NULL);
  const char *text = log != NULL && log[0] != '\0' ? log : "(no output)\n";
  mfx_status st;
  if (WIFEXITED(wstatus))
    st = mfx_fail(MFX_ERR_CODEGEN, "linking the CPU kernel: '%s -shared' exited with status "
                  "%d: %s", cc, WEXITSTATUS(wstatus), text);
  else
    st = mfx_fail(MFX_ERR_CODEGEN, "linking the CPU kernel: '%s' was killed by signal %d", cc,
                  WTERMSIG(wstatus));
  free(log);
  return st;
}

/* cc -shared -o kernel.so kernel.o -lm, its output into cc.log. */
static mfx_status art_run_linker(const art_link_dir *d) {
  char buffer[1024];
  char *argv[ART_MAX_CC_WORDS + 8];
  int n = art_cc_words(buffer, sizeof buffer, argv);
  const char *extra[] = {"-shared", "-Wl,-z,noexecstack", "-o", d->shared, d->object, "-lm"};
  for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid;
  int err = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (err != 0) return art_spawn_failed(argv[0], err);
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR)
      return mfx_fail(MFX_ERR_CODEGEN, "linking the CPU kernel: waiting for '%s': %s", argv[0],
                      strerror(errno));
  }
  if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return MFX_OK;
  return art_link_failed(d, argv[0], wstatus);
}

/* An ELF object into a shared object (malloc'd). */
static mfx_status art_link_shared(const char *object, size_t object_size, char **so,
                                  size_t *so_size) {
  art_link_dir d;
  MFX_TRY(art_link_dir_create(&d));
  mfx_status st = art_write_file(d.object, object, object_size);
  if (st == MFX_OK) st = art_run_linker(&d);
  if (st == MFX_OK) st = art_read_whole(d.shared, so, so_size);
  art_link_dir_remove(&d);
  return st;
}

/* ---- what the kernel is ------------------------------------------------------------ */

static mfx_status art_add_arg(mfx_artifact_kernel *k, const mfx_buffer *b, mfx_arg_role role) {
  if (k->n_args >= MFX_ARTIFACT_MAX_ARGS)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: more than %d arguments", k->name,
                    MFX_ARTIFACT_MAX_ARGS);
  if (strlen(b->name) >= MFX_ARTIFACT_NAME_BYTES)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: argument name %s is longer than %d characters",
                    k->name, b->name, MFX_ARTIFACT_NAME_BYTES - 1);
  mfx_artifact_arg *a = &k->args[k->n_args++];
  memset(a, 0, sizeof *a);
  snprintf(a->name, sizeof a->name, "%s", b->name);
  a->dtype = b->dtype;
  a->role = role;
  a->ndim = b->ndim;
  for (int i = 0; i < b->ndim; i++) a->shape[i] = b->shape[i];
  return MFX_OK;
}

static mfx_status art_fill_args(const mfx_schedule *s, mfx_artifact_kernel *k) {
  k->n_args = 0;
  for (int i = 0; i < s->n_inputs; i++) MFX_TRY(art_add_arg(k, s->inputs[i]->buf, MFX_ARG_INPUT));
  for (int i = 0; i < s->n_outputs; i++)
    MFX_TRY(art_add_arg(k, s->outputs[i]->buf, MFX_ARG_OUTPUT));
  return MFX_OK;
}

/* The host CPU's features that the runtime can check at load time. */
static void art_fill_cpu_features(mfx_artifact_kernel *k) {
  char *features = LLVMGetHostCPUFeatures();
  size_t used = 0;
  k->cpu_features[0] = '\0';
  char *save = NULL;
  for (char *f = strtok_r(features, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
    if (f[0] != '+' || mfx_artifact_cpu_feature(f + 1) < 0) continue;
    size_t n = strlen(f + 1);
    if (used + n + 2 > sizeof k->cpu_features) break;
    if (used > 0) k->cpu_features[used++] = ',';
    memcpy(k->cpu_features + used, f + 1, n + 1);
    used += n;
  }
  LLVMDisposeMessage(features);
}

/* ---- cpu ---------------------------------------------------------------------------- */

static mfx_status art_build_cpu(mfx_schedule *s, mfx_artifact_kernel *k) {
  size_t len = strnlen(k->name, sizeof k->name);
  if (len + 4 >= sizeof k->symbol)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: name is longer than %zu characters", k->name,
                    sizeof k->symbol - 5);
  memcpy(k->symbol, "mfx_", 4);
  memcpy(k->symbol + 4, k->name, len + 1);
  snprintf(k->machine, sizeof k->machine, "%s", mfx_artifact_host_machine());
  art_fill_cpu_features(k);
  mfx_build_result r;
  MFX_TRY(mfx_build(s, k->symbol, "cpu", MFX_BUILD_OBJ, NULL, &r));
  char *so = NULL;
  size_t so_size = 0;
  mfx_status st = art_link_shared(r.data, r.size, &so, &so_size);
  free(r.data);
  if (st != MFX_OK) return st;
  k->host_so = so;
  k->host_so_bytes = so_size;
  return MFX_OK;
}

/* ---- cuda ---------------------------------------------------------------------------- */

/* The index of buffer b among the kernel's arguments: the function's
 * arguments, then the program's workspace. */
static int art_buffer_index(const mfx_gpu_program *prog, const mfx_buffer *b) {
  for (int i = 0; i < prog->func->n_args; i++)
    if (prog->func->args[i] == b) return i;
  for (int i = 0; i < prog->n_workspace; i++)
    if (prog->workspace[i] == b) return prog->func->n_args + i;
  return -1;
}

static mfx_status art_fill_launch(const mfx_gpu_program *prog, const mfx_gpu_kernel *g,
                                  const char *kernel, mfx_artifact_launch *l) {
  memset(l, 0, sizeof *l);
  if (strlen(g->name) >= sizeof l->name || g->n_args > MFX_ARTIFACT_MAX_ARGS)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: launch %s has a name too long or more than "
                    "%d parameters", kernel, g->name, MFX_ARTIFACT_MAX_ARGS);
  snprintf(l->name, sizeof l->name, "%s", g->name);
  for (int i = 0; i < 3; i++) {
    if (g->grid[i] < 1 || g->grid[i] > 0x7fffffff || g->block[i] < 1 || g->block[i] > 1024)
      return mfx_fail(MFX_ERR_INVALID, "kernel %s: launch %s: grid or block dimension %d out of "
                      "range", kernel, g->name, i);
    l->grid[i] = (uint32_t)g->grid[i];
    l->block[i] = (uint32_t)g->block[i];
  }
  l->shared_static = (uint64_t)g->shared_bytes;
  l->n_args = g->n_args;
  for (int i = 0; i < g->n_args; i++) {
    l->args[i] = art_buffer_index(prog, g->args[i]);
    if (l->args[i] < 0)
      return mfx_fail(MFX_ERR_INVALID, "kernel %s: launch %s touches buffer %s, which is neither "
                      "an argument nor workspace", kernel, g->name, g->args[i]->name);
  }
  return MFX_OK;
}

static mfx_status art_fill_launches(const mfx_gpu_program *prog, mfx_artifact_kernel *k) {
  for (int i = 0; i < prog->n_workspace; i++)
    MFX_TRY(art_add_arg(k, prog->workspace[i], MFX_ARG_WORKSPACE));
  if (prog->n_kernels < 1 || prog->n_kernels > MFX_ARTIFACT_MAX_LAUNCHES)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: %d launches, expected 1..%d", k->name,
                    prog->n_kernels, MFX_ARTIFACT_MAX_LAUNCHES);
  k->n_launches = prog->n_kernels;
  for (int i = 0; i < prog->n_kernels; i++)
    MFX_TRY(art_fill_launch(prog, &prog->kernels[i], k->name, &k->launches[i]));
  return MFX_OK;
}

static mfx_status art_build_cuda(mfx_schedule *s, mfx_artifact_kernel *k) {
  mfx_build_result r;
  MFX_TRY(mfx_build(s, k->name, k->target, MFX_BUILD_PTX, NULL, &r));
  mfx_status st = art_fill_launches(r.program, k);
  if (st != MFX_OK) {
    free(r.data);
    return st;
  }
  k->gpu_image_kind = MFX_GPU_IMAGE_PTX;
  k->gpu_image = r.data;
  k->gpu_image_bytes = r.size;
  return MFX_OK;
}

/* ---- building -------------------------------------------------------------------------- */

/* cpu or cuda:sm_XX: an artifact's code is for one CPU or one GPU architecture. */
static int art_target_is_cuda(const char *text, int *ok) {
  mfx_target t;
  *ok = mfx_target_parse(text, &t) == MFX_OK &&
        (t.kind == MFX_TARGET_CPU || (t.kind == MFX_TARGET_CUDA && t.sm));
  return *ok && t.kind == MFX_TARGET_CUDA;
}

static void art_reset_outputs(mfx_artifact_kernel *k) {
  k->n_args = 0;
  k->n_launches = 0;
  k->machine[0] = k->symbol[0] = k->cpu_features[0] = '\0';
  k->host_so = NULL;
  k->host_so_bytes = 0;
  k->gpu_image_kind = MFX_GPU_IMAGE_NONE;
  k->gpu_image = NULL;
  k->gpu_image_bytes = 0;
  snprintf(k->compiler, sizeof k->compiler, "mfx %s, LLVM %s", MFX_VERSION_STRING,
           LLVM_VERSION_STRING);
}

mfx_status mfx_artifact_build(struct mfx_schedule *s, mfx_artifact_kernel *k) {
  if (s == NULL || k == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_build: NULL argument");
  if (memchr(k->name, '\0', sizeof k->name) == NULL || memchr(k->target, '\0', sizeof k->target) == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_build: name or target is not terminated");
  art_reset_outputs(k);
  int ok, cuda = art_target_is_cuda(k->target, &ok);
  if (!ok)
    return mfx_fail(MFX_ERR_INVALID, "kernel %s: target \"%s\": expected cpu or cuda:sm_NN "
                    "(e.g. cuda:sm_80)", k->name, k->target);
  mfx_status st = art_fill_args(s, k);
  if (st == MFX_OK) st = cuda ? art_build_cuda(s, k) : art_build_cpu(s, k);
  if (st == MFX_OK) st = mfx_artifact_kernel_validate(k, "(being built)");
  if (st != MFX_OK) {
    mfx_artifact_kernel_release(k);
    return mfx_fail_context(st, "building kernel %s (%s) for %s", k->name, k->op, k->target);
  }
  return MFX_OK;
}

void mfx_artifact_kernel_release(mfx_artifact_kernel *k) {
  if (k == NULL) return;
  free((void *)k->host_so);
  free((void *)k->gpu_image);
  k->host_so = NULL;
  k->host_so_bytes = 0;
  k->gpu_image = NULL;
  k->gpu_image_bytes = 0;
  k->gpu_image_kind = MFX_GPU_IMAGE_NONE;
}
