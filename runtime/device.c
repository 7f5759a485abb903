/* The device interface: one table of functions per kind of device (the CPU
 * here, CUDA in runtime/cuda.c), and the public calls that check their
 * arguments once and dispatch through the table. */
#define _GNU_SOURCE
#include "mfx/device.h"

#include "cuda_driver.h"
#include "mfx/target.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MFX_MODULE_LOG_BYTES 4096

/* What a kind of device does. `state` is what its open made. The module
 * entries are NULL on a device that loads no modules (the CPU). */
typedef struct {
  void (*close)(void *state);
  mfx_status (*alloc)(void *state, size_t bytes, uint64_t *address);
  void (*free)(void *state, uint64_t address);
  mfx_status (*write)(void *state, uint64_t dst, const void *src, size_t bytes);
  mfx_status (*read)(void *state, void *dst, uint64_t src, size_t bytes);
  mfx_status (*copy)(void *state, uint64_t dst, uint64_t src, size_t bytes);
  mfx_status (*zero)(void *state, uint64_t dst, size_t bytes);
  mfx_status (*synchronize)(void *state);
  mfx_status (*own_stream)(void *state); /* NULL: everything runs at once */
  mfx_status (*capture_begin)(void *state); /* NULL: no graphs */
  mfx_status (*capture_end)(void *state, void **graph);
  mfx_status (*graph_launch)(void *state, void *graph);
  void (*graph_free)(void *state, void *graph);
  mfx_status (*event_create)(void *state, void **event);
  void (*event_destroy)(void *state, void *event);
  mfx_status (*event_record)(void *state, void *event);
  mfx_status (*event_elapsed)(void *state, void *start, void *end, double *seconds);
  mfx_status (*module_load)(void *state, const void *image, size_t bytes, void **module,
                            char *log, size_t log_cap);
  void (*module_unload)(void *state, void *module);
  mfx_status (*function_get)(void *state, void *module, const char *name, void **function);
  mfx_status (*launch)(void *state, void *function, const char *name, const mfx_launch_dims *dims,
                       void **args);
  mfx_status (*attributes)(void *state, void *function, mfx_function_attributes *out);
} mfx_device_ops;

struct mfx_device {
  const mfx_device_ops *ops;
  void *state;
  mfx_device_info info;
  char name[32];         /* "cpu", "cuda:0" */
  char description[320];
};

struct mfx_event {
  mfx_device *device;
  void *handle;
  int recorded;
};

struct mfx_function {
  mfx_module *module;
  void *handle;
  char *name;
  mfx_function *next;
};

struct mfx_module {
  mfx_device *device;
  void *handle;
  pthread_mutex_t lock; /* guards `functions` */
  mfx_function *functions;
  char log[MFX_MODULE_LOG_BYTES];
};

/* ---- the CPU ------------------------------------------------------------- */

static void dev_cpu_close(void *state) { (void)state; }

static mfx_status dev_cpu_alloc(void *state, size_t bytes, uint64_t *address) {
  (void)state;
  size_t rounded = (bytes + 63) / 64 * 64;
  void *ptr = rounded >= bytes ? aligned_alloc(64, rounded) : NULL;
  if (ptr == NULL) return mfx_fail(MFX_ERR_NOMEM, "cpu: out of memory allocating %zu bytes", bytes);
  *address = (uint64_t)(uintptr_t)ptr;
  return MFX_OK;
}

static void dev_cpu_free(void *state, uint64_t address) {
  (void)state;
  free((void *)(uintptr_t)address);
}

static mfx_status dev_cpu_write(void *state, uint64_t dst, const void *src, size_t bytes) {
  (void)state;
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return MFX_OK;
}

static mfx_status dev_cpu_read(void *state, void *dst, uint64_t src, size_t bytes) {
  (void)state;
  memcpy(dst, (const void *)(uintptr_t)src, bytes);
  return MFX_OK;
}

static mfx_status dev_cpu_copy(void *state, uint64_t dst, uint64_t src, size_t bytes) {
  (void)state;
  memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
  return MFX_OK;
}

static mfx_status dev_cpu_zero(void *state, uint64_t dst, size_t bytes) {
  (void)state;
  memset((void *)(uintptr_t)dst, 0, bytes);
  return MFX_OK;
}

/* CPU kernels run on the caller's thread (and its pool): nothing is queued. */
static mfx_status dev_cpu_synchronize(void *state) {
  (void)state;
  return MFX_OK;
}

/* A CPU event is the host clock reading at its record. */
static mfx_status dev_cpu_event_create(void *state, void **event) {
  (void)state;
  double *seconds = calloc(1, sizeof *seconds);
  if (seconds == NULL) return mfx_fail(MFX_ERR_NOMEM, "cpu: out of memory creating an event");
  *event = seconds;
  return MFX_OK;
}

static void dev_cpu_event_destroy(void *state, void *event) {
  (void)state;
  free(event);
}

static mfx_status dev_cpu_event_record(void *state, void *event) {
  (void)state;
  *(double *)event = mfx_now_seconds();
  return MFX_OK;
}

static mfx_status dev_cpu_event_elapsed(void *state, void *start, void *end, double *seconds) {
  (void)state;
  *seconds = *(const double *)end - *(const double *)start;
  return MFX_OK;
}

static const mfx_device_ops mfx_cpu_ops = {
    .close = dev_cpu_close,
    .alloc = dev_cpu_alloc,
    .free = dev_cpu_free,
    .write = dev_cpu_write,
    .read = dev_cpu_read,
    .copy = dev_cpu_copy,
    .zero = dev_cpu_zero,
    .synchronize = dev_cpu_synchronize,
    .event_create = dev_cpu_event_create,
    .event_destroy = dev_cpu_event_destroy,
    .event_record = dev_cpu_event_record,
    .event_elapsed = dev_cpu_event_elapsed,
};

int mfx_cpuinfo_field(const char *key, char *buf, size_t size) {
  if (key == NULL || buf == NULL || size == 0) return 0;
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f == NULL) return 0;
  char line[8192]; /* "flags" lines are long */
  size_t len = strlen(key);
  int found = 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    char *colon = strchr(line, ':');
    /* the key, then only blanks up to the colon: "model name\t: AMD EPYC ..." */
    if (colon == NULL || strncmp(line, key, len) != 0 ||
        line + len + strspn(line + len, " \t") != colon)
      continue;
    char *v = colon + 1;
    v += strspn(v, " \t");
    v[strcspn(v, "\r\n")] = '\0';
    found = v[0] != '\0';
    if (found) snprintf(buf, size, "%s", v);
  }
  fclose(f);
  return found;
}

/* The "model name" of /proc/cpuinfo, or a generic name. */
static void dev_cpu_model(char *out, size_t cap) {
  if (!mfx_cpuinfo_field("model name", out, cap)) snprintf(out, cap, "host CPU");
}

static void dev_cpu_info(mfx_device_info *info) {
  struct utsname host;
  memset(info, 0, sizeof *info);
  info->kind = MFX_DEVICE_CPU;
  dev_cpu_model(info->name, sizeof info->name);
  snprintf(info->arch, sizeof info->arch, "%.31s", uname(&host) == 0 ? host.machine : "unknown");
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
  info->multiprocessors = cpus > 0 ? (int)cpus : 1;
  info->total_memory = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
}

/* ---- CUDA (runtime/cuda.c) -------------------------------------------------- */

#if MFX_CUDA_HEADERS
static const mfx_device_ops mfx_cuda_ops = {
    .close = mfx_cuda_close,
    .alloc = mfx_cuda_alloc,
    .free = mfx_cuda_free,
    .write = mfx_cuda_write,
    .read = mfx_cuda_read,
    .copy = mfx_cuda_copy,
    .zero = mfx_cuda_zero,
    .synchronize = mfx_cuda_synchronize,
    .own_stream = mfx_cuda_own_stream,
    .capture_begin = mfx_cuda_capture_begin,
    .capture_end = mfx_cuda_capture_end,
    .graph_launch = mfx_cuda_graph_launch,
    .graph_free = mfx_cuda_graph_free,
    .event_create = mfx_cuda_event_create,
    .event_destroy = mfx_cuda_event_destroy,
    .event_record = mfx_cuda_event_record,
    .event_elapsed = mfx_cuda_event_elapsed,
    .module_load = mfx_cuda_module_load,
    .module_unload = mfx_cuda_module_unload,
    .function_get = mfx_cuda_function_get,
    .launch = mfx_cuda_launch,
    .attributes = mfx_cuda_function_attributes,
};
#endif

/* mfx_cuda_open fails, with the reason, in a runtime built without cuda.h. */
static mfx_status dev_device_open_cuda(mfx_device *dev, int ordinal) {
#if MFX_CUDA_HEADERS
  dev->ops = &mfx_cuda_ops;
#endif
  return mfx_cuda_open(ordinal, &dev->info, &dev->state);
}

/* ---- opening ------------------------------------------------------------------ */

/* "cpu", "cuda", "cuda:N" (mfx_target_parse, less the code-only targets). */
static mfx_status dev_device_parse(const char *spec, mfx_device_kind *kind, int *ordinal) {
  mfx_target t;
  *ordinal = 0;
  *kind = MFX_DEVICE_CUDA;
  if (mfx_target_parse(spec, &t) != MFX_OK || t.kind == MFX_TARGET_EMULATE || t.sm != 0)
    return mfx_fail(MFX_ERR_INVALID, "device \"%s\": expected \"cpu\", \"cuda\" or \"cuda:N\"",
                    spec != NULL ? spec : "(null)");
  *kind = t.kind == MFX_TARGET_CPU ? MFX_DEVICE_CPU : MFX_DEVICE_CUDA;
  if (t.device > 0) *ordinal = t.device;
  return MFX_OK;
}

static void dev_device_describe(mfx_device *dev) {
  const mfx_device_info *in = &dev->info;
  double gib = (double)in->total_memory / (1024.0 * 1024.0 * 1024.0);
  if (in->kind == MFX_DEVICE_CPU) {
    snprintf(dev->description, sizeof dev->description, "%s: %s, %s, %d threads, %.1f GiB",
             dev->name, in->name, in->arch, in->multiprocessors, gib);
    return;
  }
  snprintf(dev->description, sizeof dev->description,
           "%s: %s, %s, %d SMs, %.1f GiB, CUDA driver %d.%d", dev->name, in->name, in->arch,
           in->multiprocessors, gib, in->driver_version / 1000, in->driver_version % 1000 / 10);
}

mfx_status mfx_device_open(const char *spec, mfx_device **out) {
  mfx_device_kind kind;
  int ordinal;
  *out = NULL;
  mfx_status st = dev_device_parse(spec, &kind, &ordinal);
  if (st != MFX_OK) return st;
  mfx_device *dev = calloc(1, sizeof *dev);
  if (dev == NULL) return mfx_fail(MFX_ERR_NOMEM, "device %s: out of memory", spec);
  if (kind == MFX_DEVICE_CPU) {
    dev->ops = &mfx_cpu_ops;
    dev_cpu_info(&dev->info);
    snprintf(dev->name, sizeof dev->name, "cpu");
  } else {
    st = dev_device_open_cuda(dev, ordinal);
    snprintf(dev->name, sizeof dev->name, "cuda:%d", ordinal);
  }
  if (st != MFX_OK) {
    free(dev);
    return st;
  }
  dev_device_describe(dev);
  *out = dev;
  return MFX_OK;
}

void mfx_device_close(mfx_device *dev) {
  if (dev == NULL) return;
  dev->ops->close(dev->state);
  free(dev);
}

mfx_status mfx_device_count(const char *kind, int *count) {
  *count = 0;
  if (kind != NULL && strcmp(kind, "cpu") == 0) {
    *count = 1;
    return MFX_OK;
  }
  if (kind != NULL && strcmp(kind, "cuda") == 0) return mfx_cuda_count(count);
  return mfx_fail(MFX_ERR_INVALID, "device kind \"%s\": expected \"cpu\" or \"cuda\"",
                  kind != NULL ? kind : "(null)");
}

const char *mfx_device_name(const mfx_device *dev) { return dev->name; }

const char *mfx_device_description(const mfx_device *dev) { return dev->description; }

const mfx_device_info *mfx_device_get_info(const mfx_device *dev) { return &dev->info; }

mfx_status mfx_device_synchronize(mfx_device *dev) { return dev->ops->synchronize(dev->state); }

mfx_status mfx_device_use_own_stream(mfx_device *dev) {
  if (dev == NULL) return mfx_fail(MFX_ERR_INVALID, "use own stream: the device is NULL");
  return dev->ops->own_stream != NULL ? dev->ops->own_stream(dev->state) : MFX_OK;
}

struct mfx_graph {
  mfx_device *device;
  void *handle;
};

mfx_status mfx_device_capture_begin(mfx_device *dev) {
  if (dev == NULL) return mfx_fail(MFX_ERR_INVALID, "graph capture: the device is NULL");
  if (dev->ops->capture_begin == NULL)
    return mfx_fail(MFX_ERR_INVALID, "graph capture on %s: graphs need a CUDA device", dev->name);
  return dev->ops->capture_begin(dev->state);
}

mfx_status mfx_device_capture_end(mfx_device *dev, mfx_graph **out) {
  if (out != NULL) *out = NULL;
  if (dev == NULL || dev->ops->capture_end == NULL)
    return mfx_fail(MFX_ERR_INVALID, "graph capture end: no capture on %s",
                    dev == NULL ? "a NULL device" : dev->name);
  if (out == NULL) return dev->ops->capture_end(dev->state, NULL);
  mfx_graph *g = calloc(1, sizeof *g);
  if (g == NULL) {
    dev->ops->capture_end(dev->state, NULL);
    return mfx_fail(MFX_ERR_NOMEM, "graph capture end on %s: out of memory", dev->name);
  }
  g->device = dev;
  mfx_status st = dev->ops->capture_end(dev->state, &g->handle);
  if (st != MFX_OK) {
    free(g);
    return st;
  }
  *out = g;
  return MFX_OK;
}

mfx_status mfx_graph_launch(mfx_graph *g) {
  if (g == NULL) return mfx_fail(MFX_ERR_INVALID, "graph launch: the graph is NULL");
  return g->device->ops->graph_launch(g->device->state, g->handle);
}

void mfx_graph_free(mfx_graph *g) {
  if (g == NULL) return;
  g->device->ops->graph_free(g->device->state, g->handle);
  free(g);
}

/* ---- buffers ------------------------------------------------------------------- */

mfx_status mfx_device_buffer_alloc(mfx_device *dev, size_t bytes, mfx_device_buffer *out) {
  out->device = dev;
  out->address = 0;
  out->bytes = 0;
  if (bytes == 0) return MFX_OK;
  mfx_status st = dev->ops->alloc(dev->state, bytes, &out->address);
  if (st == MFX_OK) out->bytes = bytes;
  return st;
}

void mfx_device_buffer_free(mfx_device_buffer *buf) {
  if (buf == NULL || buf->device == NULL || buf->bytes == 0) return;
  buf->device->ops->free(buf->device->state, buf->address);
  buf->address = 0;
  buf->bytes = 0;
}

/* `bytes` at `offset` lie inside the buffer, and the host side is there. */
static mfx_status dev_device_buffer_check(const mfx_device_buffer *buf, size_t offset, size_t bytes,
                                   const void *host, const char *what) {
  if (buf == NULL || buf->device == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: buffer was never allocated", what);
  if (offset > buf->bytes || bytes > buf->bytes - offset)
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: %zu bytes at offset %zu run past the end of a %zu-byte buffer on %s", what,
                    bytes, offset, buf->bytes, buf->device->name);
  if (host == NULL && bytes > 0)
    return mfx_fail(MFX_ERR_INVALID, "%s: host pointer is NULL for %zu bytes", what, bytes);
  return MFX_OK;
}

mfx_status mfx_device_buffer_write(mfx_device_buffer *dst, size_t offset, const void *src,
                                   size_t bytes) {
  mfx_status st = dev_device_buffer_check(dst, offset, bytes, src, "buffer write");
  if (st != MFX_OK || bytes == 0) return st;
  mfx_device *dev = dst->device;
  return dev->ops->write(dev->state, dst->address + offset, src, bytes);
}

mfx_status mfx_device_buffer_read(const mfx_device_buffer *src, size_t offset, void *dst,
                                  size_t bytes) {
  mfx_status st = dev_device_buffer_check(src, offset, bytes, dst, "buffer read");
  if (st != MFX_OK || bytes == 0) return st;
  mfx_device *dev = src->device;
  return dev->ops->read(dev->state, dst, src->address + offset, bytes);
}

mfx_status mfx_device_copy(mfx_device *dev, uint64_t dst, uint64_t src, size_t bytes) {
  if (dev == NULL || ((dst == 0 || src == 0) && bytes > 0))
    return mfx_fail(MFX_ERR_INVALID, "device copy: device and addresses must not be NULL");
  return bytes == 0 ? MFX_OK : dev->ops->copy(dev->state, dst, src, bytes);
}

mfx_status mfx_device_zero(mfx_device *dev, uint64_t dst, size_t bytes) {
  if (dev == NULL || (dst == 0 && bytes > 0))
    return mfx_fail(MFX_ERR_INVALID, "device zero: device and address must not be NULL");
  return bytes == 0 ? MFX_OK : dev->ops->zero(dev->state, dst, bytes);
}

void *mfx_device_buffer_host(const mfx_device_buffer *buf) {
  if (buf == NULL || buf->device == NULL || buf->device->info.kind != MFX_DEVICE_CPU) return NULL;
  return (void *)(uintptr_t)buf->address;
}

/* ---- events -------------------------------------------------------------------- */

mfx_status mfx_event_create(mfx_device *dev, mfx_event **out) {
  *out = NULL;
  mfx_event *ev = calloc(1, sizeof *ev);
  if (ev == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory creating an event", dev->name);
  mfx_status st = dev->ops->event_create(dev->state, &ev->handle);
  if (st != MFX_OK) {
    free(ev);
    return st;
  }
  ev->device = dev;
  *out = ev;
  return MFX_OK;
}

void mfx_event_destroy(mfx_event *ev) {
  if (ev == NULL) return;
  ev->device->ops->event_destroy(ev->device->state, ev->handle);
  free(ev);
}

mfx_status mfx_event_record(mfx_event *ev) {
  mfx_status st = ev->device->ops->event_record(ev->device->state, ev->handle);
  if (st == MFX_OK) ev->recorded = 1;
  return st;
}

mfx_status mfx_event_elapsed(const mfx_event *start, const mfx_event *end, double *seconds) {
  *seconds = 0.0;
  if (start->device != end->device)
    return mfx_fail(MFX_ERR_INVALID,
                    "event elapsed: start is on %s, end on %s; expected one device",
                    start->device->name, end->device->name);
  if (!start->recorded || !end->recorded)
    return mfx_fail(MFX_ERR_INVALID, "event elapsed on %s: the %s event was never recorded",
                    start->device->name, !start->recorded ? "start" : "end");
  mfx_device *dev = start->device;
  return dev->ops->event_elapsed(dev->state, start->handle, end->handle, seconds);
}

/* ---- modules and launches -------------------------------------------------------- */

mfx_status mfx_module_load(mfx_device *dev, const void *image, size_t bytes, mfx_module **out) {
  *out = NULL;
  if (dev->ops->module_load == NULL)
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: loads no modules (PTX and cubin are for CUDA devices; CPU kernels come "
                    "from artifacts)",
                    dev->name);
  if (image == NULL || bytes == 0)
    return mfx_fail(MFX_ERR_INVALID, "%s: module image is empty; expected PTX text or a cubin",
                    dev->name);
  mfx_module *mod = calloc(1, sizeof *mod);
  if (mod == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory loading a module", dev->name);
  mfx_status st =
      dev->ops->module_load(dev->state, image, bytes, &mod->handle, mod->log, sizeof mod->log);
  if (st != MFX_OK) {
    free(mod);
    return st;
  }
  mod->device = dev;
  pthread_mutex_init(&mod->lock, NULL);
  *out = mod;
  return MFX_OK;
}

void mfx_module_free(mfx_module *mod) {
  if (mod == NULL) return;
  mfx_function *fn = mod->functions;
  while (fn != NULL) {
    mfx_function *next = fn->next;
    free(fn->name);
    free(fn);
    fn = next;
  }
  mod->device->ops->module_unload(mod->device->state, mod->handle);
  pthread_mutex_destroy(&mod->lock);
  free(mod);
}

const char *mfx_module_log(const mfx_module *mod) { return mod->log; }

static mfx_function *dev_module_find(const mfx_module *mod, const char *name) {
  for (mfx_function *fn = mod->functions; fn != NULL; fn = fn->next)
    if (strcmp(fn->name, name) == 0) return fn;
  return NULL;
}

/* Looks `name` up in the device's module and adds it to the list. */
static mfx_status dev_module_add(mfx_module *mod, const char *name, mfx_function **out) {
  mfx_device *dev = mod->device;
  mfx_function *fn = calloc(1, sizeof *fn);
  char *copy = strdup(name);
  mfx_status st = fn != NULL && copy != NULL
                      ? dev->ops->function_get(dev->state, mod->handle, name, &fn->handle)
                      : mfx_fail(MFX_ERR_NOMEM, "%s: out of memory looking up %s", dev->name, name);
  if (st != MFX_OK) {
    free(fn);
    free(copy);
    return st;
  }
  fn->module = mod;
  fn->name = copy;
  fn->next = mod->functions;
  mod->functions = fn;
  *out = fn;
  return MFX_OK;
}

mfx_status mfx_module_function(mfx_module *mod, const char *name, mfx_function **out) {
  *out = NULL;
  if (name == NULL || name[0] == '\0')
    return mfx_fail(MFX_ERR_INVALID, "%s: function name is empty", mod->device->name);
  pthread_mutex_lock(&mod->lock);
  mfx_function *fn = dev_module_find(mod, name);
  mfx_status st = fn != NULL ? MFX_OK : dev_module_add(mod, name, &fn);
  pthread_mutex_unlock(&mod->lock);
  *out = fn;
  return st;
}

static mfx_status dev_launch_check(const mfx_function *fn, const mfx_launch_dims *d) {
  const char *device = fn->module->device->name;
  if (d == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: launch %s: no dims", device, fn->name);
  for (int i = 0; i < 3; i++)
    if (d->grid[i] == 0 || d->block[i] == 0)
      return mfx_fail(MFX_ERR_INVALID,
                      "%s: launch %s: grid %ux%ux%u, block %ux%ux%u; every dimension must be at "
                      "least 1",
                      device, fn->name, d->grid[0], d->grid[1], d->grid[2], d->block[0],
                      d->block[1], d->block[2]);
  return MFX_OK;
}

mfx_status mfx_function_launch(mfx_function *fn, const mfx_launch_dims *dims, void **args) {
  mfx_status st = dev_launch_check(fn, dims);
  if (st != MFX_OK) return st;
  mfx_device *dev = fn->module->device;
  return dev->ops->launch(dev->state, fn->handle, fn->name, dims, args);
}

mfx_status mfx_function_get_attributes(mfx_function *fn, mfx_function_attributes *out) {
  if (fn == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "function attributes: fn and out must not be NULL");
  memset(out, 0, sizeof *out);
  mfx_device *dev = fn->module->device;
  if (dev->ops->attributes == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: %s has no function attributes", dev->name, fn->name);
  return dev->ops->attributes(dev->state, fn->handle, out);
}
