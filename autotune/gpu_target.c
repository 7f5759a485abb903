/* The target keys of GPU tuning. "cuda" and "cuda:N" are fingerprinted by
 * asking the device in a child process, so that the tuner itself never
 * initialises CUDA (its measuring worker is forked later, and a process
 * that forks after cuInit has a child with a broken driver state).
 * "emulate" is the GPU templates run by the compiler's CPU emulation. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autotune_internal.h"
#include "mfx/device.h"

typedef struct {
  int ok;
  int count; /* CUDA devices */
  mfx_device_info info;
  char message[512];
} tune_probe_reply;

static void tune_probe_child(const char *spec, int fd) {
  tune_probe_reply reply;
  memset(&reply, 0, sizeof reply);
  mfx_device *dev = NULL;
  if (spec == NULL) { /* the count only */
    reply.ok = mfx_device_count("cuda", &reply.count) == MFX_OK;
    if (!reply.ok) tune_copy_text(reply.message, sizeof reply.message, mfx_last_error());
  } else if (mfx_device_open(spec, &dev) == MFX_OK) {
    reply.ok = 1;
    reply.info = *mfx_device_get_info(dev);
    mfx_device_close(dev);
  } else {
    tune_copy_text(reply.message, sizeof reply.message, mfx_last_error());
  }
  _exit(tune_write_all(fd, &reply, sizeof reply) ? 0 : 3);
}

static int tune_read_all(int fd, void *buf, size_t bytes) {
  char *p = buf;
  while (bytes > 0) {
    ssize_t n = read(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    p += n;
    bytes -= (size_t)n;
  }
  return 1;
}

static mfx_status tune_probe(const char *spec, tune_probe_reply *out);

mfx_status tune_gpu_probe(const char *spec, mfx_device_info *info) {
  tune_probe_reply reply;
  MFX_TRY(tune_probe(spec, &reply));
  *info = reply.info;
  return MFX_OK;
}

mfx_status tune_gpu_rank_target(const char *target, int rank, char *buf, size_t size) {
  mfx_target t;
  buf[0] = '\0';
  if (target == NULL || mfx_target_parse(target, &t) != MFX_OK || t.kind != MFX_TARGET_CUDA ||
      t.device >= 0 || t.sm > 0)
    return MFX_OK;
  tune_probe_reply reply;
  MFX_TRY(tune_probe(NULL, &reply));
  if (reply.count < 1) return mfx_fail(MFX_ERR_DEVICE, "no CUDA device for rank %d", rank);
  snprintf(buf, size, "cuda:%d", rank % reply.count);
  return MFX_OK;
}

/* The device spec opened, or (spec NULL) the count, in a child process. */
static mfx_status tune_probe(const char *spec, tune_probe_reply *out) {
  int fds[2];
  fflush(NULL);
  if (pipe(fds) != 0)
    return mfx_fail(MFX_ERR_IO, "probing %s: pipe: %s", spec != NULL ? spec : "cuda",
                    strerror(errno));
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    tune_probe_child(spec, fds[1]);
  }
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    return mfx_fail(MFX_ERR_IO, "probing %s: fork: %s", spec != NULL ? spec : "cuda",
                    strerror(errno));
  }
  tune_probe_reply reply;
  const char *what = spec != NULL ? spec : "cuda";
  int got = tune_read_all(fds[0], &reply, sizeof reply);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!got)
    return mfx_fail(MFX_ERR_DEVICE, "probing %s: the probing process died (status %d) before "
                    "answering", what, status);
  if (!reply.ok) return mfx_fail(MFX_ERR_DEVICE, "%s", reply.message);
  *out = reply;
  return MFX_OK;
}

void tune_gpu_describe(const mfx_device_info *info, char *buf, size_t size) {
  snprintf(buf, size, "%.120s, %d SMs, %llu MiB, driver %d.%d", info->name, info->multiprocessors,
           (unsigned long long)(info->total_memory >> 20), info->driver_version / 1000,
           info->driver_version % 1000 / 10);
}

mfx_status tune_target_gpu(const mfx_target *t, mfx_tune_target *out) {
  if (t->kind == MFX_TARGET_EMULATE) {
    mfx_tune_target cpu;
    MFX_TRY(mfx_tune_target_get("cpu", &cpu));
    tune_copy_text(out->target, sizeof out->target, "emulate");
    snprintf(out->arch, sizeof out->arch, "gpu-emulated %.170s", cpu.arch);
    tune_copy_text(out->device, sizeof out->device, cpu.device);
    tune_copy_text(out->version, sizeof out->version, cpu.version);
    return MFX_OK;
  }
  if (t->sm > 0)
    return mfx_fail(MFX_ERR_INVALID, "target 'cuda:%s' names an architecture, not a device: "
                    "tuning measures on a GPU; give cuda or cuda:N", t->sm_name);
  char spec[32];
  mfx_device_info info;
  snprintf(spec, sizeof spec, "cuda:%d", t->device < 0 ? 0 : t->device);
  MFX_TRY(tune_gpu_probe(spec, &info));
  mfx_tune_target cpu;
  MFX_TRY(mfx_tune_target_get("cpu", &cpu));
  tune_copy_text(out->target, sizeof out->target, "cuda");
  tune_copy_text(out->arch, sizeof out->arch, info.arch);
  tune_gpu_describe(&info, out->device, sizeof out->device);
  tune_copy_text(out->version, sizeof out->version, cpu.version);
  return MFX_OK;
}
