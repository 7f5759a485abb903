/* CUDA devices through the Driver API. libcuda.so.1 (or MFX_CUDA_LIBRARY) is
 * opened with dlopen and its entry points are resolved into a table, once
 * per library path; the table is read-only afterwards. Each device holds its
 * GPU's primary context and makes it current on the calling thread in every
 * entry point that needs one, so devices and threads may work side by side.
 * Work goes to the legacy default stream: copies and event waits are ordered
 * after earlier launches. */
#define _GNU_SOURCE
#include "cuda_driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if MFX_CUDA_HEADERS

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>

#define MFX_CUDA_DEFAULT_LIBRARY "libcuda.so.1"
#define MFX_CUDA_ERROR_LOG_BYTES 4096

/* ---- the driver library ------------------------------------------------- */

typedef struct mfx_cuda_driver {
#define MFX_CUDA_FIELD(function, symbol, fallback) __typeof__(function) *function;
  MFX_CUDA_ENTRY_POINTS(MFX_CUDA_FIELD)
#undef MFX_CUDA_FIELD
  char *path;
  struct mfx_cuda_driver *next;
} mfx_cuda_driver;

/* Drivers loaded so far, by path: entries are appended under the lock and
 * never change or go away (a driver is not safe to unload). */
static pthread_mutex_t mfx_cuda_drivers_lock = PTHREAD_MUTEX_INITIALIZER;
static mfx_cuda_driver *mfx_cuda_drivers;

static const char *cuda_library_path(void) {
  const char *path = getenv("MFX_CUDA_LIBRARY");
  return path != NULL && path[0] != '\0' ? path : MFX_CUDA_DEFAULT_LIBRARY;
}

/* Looks `symbol` up, then `fallback`; fails naming the symbol. */
static mfx_status cuda_symbol(void *library, const char *path, const char *symbol,
                                  const char *fallback, void **out) {
  dlerror();
  *out = dlsym(library, symbol);
  if (*out == NULL && fallback != NULL) *out = dlsym(library, fallback);
  if (*out != NULL) return MFX_OK;
  const char *reason = dlerror();
  if (reason == NULL) reason = "symbol is NULL";
  if (fallback != NULL)
    return mfx_fail(MFX_ERR_DEVICE,
                    "CUDA driver %s lacks both %s and %s (driver older than mfx needs?): %s",
                    path, symbol, fallback, reason);
  return mfx_fail(MFX_ERR_DEVICE,
                  "CUDA driver %s lacks the entry point %s (driver older than mfx needs?): %s",
                  path, symbol, reason);
}

static mfx_status cuda_resolve(mfx_cuda_driver *drv, void *library, const char *path) {
  void *address;
#define MFX_CUDA_RESOLVE(function, symbol, fallback)                                  \
  if (cuda_symbol(library, path, symbol, fallback, &address) != MFX_OK)           \
    return MFX_ERR_DEVICE;                                                            \
  memcpy(&drv->function, &address, sizeof address);
  MFX_CUDA_ENTRY_POINTS(MFX_CUDA_RESOLVE)
#undef MFX_CUDA_RESOLVE
  return MFX_OK;
}

static mfx_status cuda_driver_load(const char *path, mfx_cuda_driver **out) {
  dlerror();
  void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    const char *reason = dlerror();
    return mfx_fail(MFX_ERR_DEVICE, "no CUDA driver found (%s): %s", path,
                    reason != NULL ? reason : "dlopen failed");
  }
  mfx_cuda_driver *drv = calloc(1, sizeof *drv);
  char *copy = strdup(path);
  if (drv == NULL || copy == NULL) {
    free(drv);
    free(copy);
    dlclose(library);
    return mfx_fail(MFX_ERR_NOMEM, "CUDA driver %s: out of memory", path);
  }
  if (cuda_resolve(drv, library, path) != MFX_OK) {
    free(drv);
    free(copy);
    dlclose(library);
    return MFX_ERR_DEVICE;
  }
  drv->path = copy;
  *out = drv;
  return MFX_OK;
}

/* The driver of the current MFX_CUDA_LIBRARY, loaded on first use. */
static mfx_status cuda_driver_get(const mfx_cuda_driver **out) {
  const char *path = cuda_library_path();
  mfx_status st = MFX_OK;
  pthread_mutex_lock(&mfx_cuda_drivers_lock);
  mfx_cuda_driver *drv = mfx_cuda_drivers;
  while (drv != NULL && strcmp(drv->path, path) != 0) drv = drv->next;
  if (drv == NULL) {
    st = cuda_driver_load(path, &drv);
    if (st == MFX_OK) {
      drv->next = mfx_cuda_drivers;
      mfx_cuda_drivers = drv;
    }
  }
  pthread_mutex_unlock(&mfx_cuda_drivers_lock);
  *out = drv;
  return st;
}

/* ---- errors ---------------------------------------------------------------- */

/* "CUDA_ERROR_NAME (description)" of a driver result. */
static void cuda_describe(const mfx_cuda_driver *drv, CUresult r, char *out, size_t cap) {
  const char *name = NULL, *text = NULL;
  if (drv->cuGetErrorName(r, &name) != CUDA_SUCCESS || name == NULL) {
    snprintf(out, cap, "CUDA error %d (unknown to this driver)", (int)r);
    return;
  }
  if (drv->cuGetErrorString(r, &text) != CUDA_SUCCESS || text == NULL) text = "no description";
  snprintf(out, cap, "%s (%s)", name, text);
}

static mfx_status cuda_status(CUresult r) {
  switch (r) {
  case CUDA_ERROR_OUT_OF_MEMORY: return MFX_ERR_NOMEM;
  case CUDA_ERROR_NOT_FOUND: return MFX_ERR_NOT_FOUND;
  default: return MFX_ERR_DEVICE;
  }
}

/* "where: call: CUDA_ERROR_NAME (description)" */
static mfx_status cuda_fail(const mfx_cuda_driver *drv, CUresult r, const char *where,
                                const char *call) {
  char error[256];
  cuda_describe(drv, r, error, sizeof error);
  return mfx_fail(cuda_status(r), "%s: %s: %s", where, call, error);
}

/* ---- devices --------------------------------------------------------------- */

typedef struct {
  const mfx_cuda_driver *driver;
  CUdevice device;
  CUcontext context;
  int driver_version;
  int max_threads_per_block;
  size_t shared_per_block;
  size_t shared_per_block_optin;
  CUstream stream;             /* the handle's own stream; NULL: the legacy default one */
  pthread_mutex_t launch_lock; /* raising a function's shared-memory limit, then launching */
  char name[32];               /* "cuda:0" */
  char arch[16];               /* "sm_90" */
} mfx_cuda_device;

static mfx_status cuda_check(const mfx_cuda_device *cu, CUresult r, const char *call) {
  return r == CUDA_SUCCESS ? MFX_OK : cuda_fail(cu->driver, r, cu->name, call);
}

/* Makes the device's primary context current on this thread. */
static mfx_status cuda_enter(const mfx_cuda_device *cu) {
  return cuda_check(cu, cu->driver->cuCtxSetCurrent(cu->context), "cuCtxSetCurrent");
}

/* cuInit, then the number of devices. A driver with no GPU says
 * CUDA_ERROR_NO_DEVICE from cuInit: that is a count of 0. */
static mfx_status cuda_init(const mfx_cuda_driver *drv, int *count) {
  *count = 0;
  CUresult r = drv->cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE) return MFX_OK;
  if (r != CUDA_SUCCESS) return cuda_fail(drv, r, drv->path, "cuInit");
  r = drv->cuDeviceGetCount(count);
  return r == CUDA_SUCCESS ? MFX_OK : cuda_fail(drv, r, drv->path, "cuDeviceGetCount");
}

mfx_status mfx_cuda_count(int *count) {
  const mfx_cuda_driver *drv;
  *count = 0;
  if (cuda_driver_get(&drv) != MFX_OK) return MFX_ERR_DEVICE;
  return cuda_init(drv, count);
}

static mfx_status cuda_attribute(const mfx_cuda_device *cu, CUdevice_attribute attribute,
                                     const char *what, int *out) {
  char call[96];
  snprintf(call, sizeof call, "cuDeviceGetAttribute(%s)", what);
  return cuda_check(cu, cu->driver->cuDeviceGetAttribute(out, attribute, cu->device), call);
}

/* Per-SM resources, for occupancy estimates. */
static mfx_status cuda_query_sm(mfx_cuda_device *cu, mfx_device_info *info) {
  int shared_sm = 0, l2 = 0;
  if (cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR,
                         "max threads per SM", &info->max_threads_per_sm) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR,
                         "max blocks per SM", &info->max_blocks_per_sm) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, "registers per block",
                         &info->registers_per_block) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR,
                         "registers per SM", &info->registers_per_sm) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                         "shared memory per SM", &shared_sm) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, "L2 cache size", &l2))
    return MFX_ERR_DEVICE;
  info->shared_per_sm = (size_t)shared_sm;
  info->l2_bytes = (size_t)l2;
  return MFX_OK;
}

static mfx_status cuda_query_limits(mfx_cuda_device *cu, mfx_device_info *info) {
  int shared = 0, optin = 0;
  if (cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, "compute major",
                         &info->compute_major) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, "compute minor",
                         &info->compute_minor) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, "multiprocessors",
                         &info->multiprocessors) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, "max threads per block",
                         &info->max_threads_per_block) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK,
                         "shared memory per block", &shared) ||
      cuda_attribute(cu, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                         "shared memory per block opt-in", &optin) ||
      cuda_query_sm(cu, info))
    return MFX_ERR_DEVICE;
  info->shared_per_block = (size_t)shared;
  info->shared_per_block_optin = (size_t)(optin > shared ? optin : shared);
  cu->max_threads_per_block = info->max_threads_per_block;
  cu->shared_per_block = info->shared_per_block;
  cu->shared_per_block_optin = info->shared_per_block_optin;
  return MFX_OK;
}

static mfx_status cuda_query(mfx_cuda_device *cu, int ordinal, mfx_device_info *info) {
  const mfx_cuda_driver *drv = cu->driver;
  size_t total = 0;
  memset(info, 0, sizeof *info);
  info->kind = MFX_DEVICE_CUDA;
  info->ordinal = ordinal;
  if (cuda_check(cu, drv->cuDeviceGet(&cu->device, ordinal), "cuDeviceGet") ||
      cuda_check(cu, drv->cuDeviceGetName(info->name, (int)sizeof info->name, cu->device),
                     "cuDeviceGetName") ||
      cuda_check(cu, drv->cuDeviceTotalMem_v2(&total, cu->device), "cuDeviceTotalMem_v2") ||
      cuda_check(cu, drv->cuDriverGetVersion(&cu->driver_version), "cuDriverGetVersion") ||
      cuda_query_limits(cu, info))
    return MFX_ERR_DEVICE;
  info->name[sizeof info->name - 1] = '\0';
  info->total_memory = total;
  info->driver_version = cu->driver_version;
  snprintf(info->arch, sizeof info->arch, "sm_%d%d", info->compute_major, info->compute_minor);
  snprintf(cu->arch, sizeof cu->arch, "%.15s", info->arch);
  return MFX_OK;
}

/* "cuda:0 (NVIDIA H100 80GB HBM3, sm_90), cuda:1 (...)" for messages. */
static void cuda_list_devices(const mfx_cuda_driver *drv, int count, char *out, size_t cap) {
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < count && used + 1 < cap; i++) {
    CUdevice dev = 0;
    char name[128] = "?";
    int major = 0, minor = 0;
    if (drv->cuDeviceGet(&dev, i) == CUDA_SUCCESS) {
      if (drv->cuDeviceGetName(name, (int)sizeof name, dev) != CUDA_SUCCESS) snprintf(name, sizeof name, "?");
      drv->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
      drv->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    }
    name[sizeof name - 1] = '\0';
    int n = snprintf(out + used, cap - used, "%scuda:%d (%s, sm_%d%d)", i ? ", " : "", i, name,
                     major, minor);
    if (n < 0) break;
    used += (size_t)n;
  }
}

static mfx_status cuda_check_ordinal(const mfx_cuda_driver *drv, int ordinal) {
  int count;
  if (cuda_init(drv, &count) != MFX_OK) return MFX_ERR_DEVICE;
  if (count == 0)
    return mfx_fail(MFX_ERR_DEVICE, "no CUDA device (driver %s found no GPU)", drv->path);
  if (ordinal >= count) {
    char list[512];
    cuda_list_devices(drv, count, list, sizeof list);
    return mfx_fail(MFX_ERR_DEVICE, "cuda:%d: only %d CUDA device%s here: %s", ordinal, count,
                    count == 1 ? "" : "s", list);
  }
  return MFX_OK;
}

/* Retains the primary context and makes it current. */
static mfx_status cuda_attach(mfx_cuda_device *cu) {
  CUresult r = cu->driver->cuDevicePrimaryCtxRetain(&cu->context, cu->device);
  if (r != CUDA_SUCCESS) return cuda_check(cu, r, "cuDevicePrimaryCtxRetain");
  if (cuda_enter(cu) != MFX_OK) {
    cu->driver->cuDevicePrimaryCtxRelease_v2(cu->device);
    cu->context = NULL;
    return MFX_ERR_DEVICE;
  }
  return MFX_OK;
}

mfx_status mfx_cuda_open(int ordinal, mfx_device_info *info, void **state) {
  const mfx_cuda_driver *drv;
  *state = NULL;
  if (cuda_driver_get(&drv) != MFX_OK || cuda_check_ordinal(drv, ordinal) != MFX_OK)
    return MFX_ERR_DEVICE;
  mfx_cuda_device *cu = calloc(1, sizeof *cu);
  if (cu == NULL) return mfx_fail(MFX_ERR_NOMEM, "cuda:%d: out of memory", ordinal);
  cu->driver = drv;
  snprintf(cu->name, sizeof cu->name, "cuda:%d", ordinal);
  mfx_status st = cuda_query(cu, ordinal, info);
  if (st == MFX_OK) st = cuda_attach(cu);
  if (st != MFX_OK) {
    free(cu);
    return st;
  }
  pthread_mutex_init(&cu->launch_lock, NULL);
  *state = cu;
  return MFX_OK;
}

void mfx_cuda_close(void *state) {
  mfx_cuda_device *cu = state;
  if (cu == NULL) return;
  if (cu->stream != NULL && cuda_enter(cu) == MFX_OK) cu->driver->cuStreamDestroy_v2(cu->stream);
  cu->driver->cuDevicePrimaryCtxRelease_v2(cu->device);
  pthread_mutex_destroy(&cu->launch_lock);
  free(cu);
}

/* ---- memory ---------------------------------------------------------------- */

mfx_status mfx_cuda_alloc(void *state, size_t bytes, uint64_t *address) {
  mfx_cuda_device *cu = state;
  CUdeviceptr ptr = 0;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  CUresult r = cu->driver->cuMemAlloc_v2(&ptr, bytes);
  if (r != CUDA_SUCCESS) {
    char call[64];
    snprintf(call, sizeof call, "cuMemAlloc_v2(%zu bytes)", bytes);
    return cuda_check(cu, r, call);
  }
  *address = (uint64_t)ptr;
  return MFX_OK;
}

/* A failure here (a context broken by an earlier fault) has nothing left to
 * free and is reported by the next call that matters. */
void mfx_cuda_free(void *state, uint64_t address) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) == MFX_OK) cu->driver->cuMemFree_v2((CUdeviceptr)address);
}

/* With a stream of its own, every copy is queued on it (the Async calls);
 * a read then waits for the stream, since the host needs the bytes. */
mfx_status mfx_cuda_write(void *state, uint64_t dst, const void *src, size_t bytes) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (cu->stream != NULL)
    return cuda_check(cu, cu->driver->cuMemcpyHtoDAsync_v2((CUdeviceptr)dst, src, bytes,
                                                           cu->stream),
                      "cuMemcpyHtoDAsync_v2");
  return cuda_check(cu, cu->driver->cuMemcpyHtoD_v2((CUdeviceptr)dst, src, bytes),
                        "cuMemcpyHtoD_v2");
}

mfx_status mfx_cuda_read(void *state, void *dst, uint64_t src, size_t bytes) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (cu->stream != NULL) {
    MFX_TRY(cuda_check(cu, cu->driver->cuMemcpyDtoHAsync_v2(dst, (CUdeviceptr)src, bytes,
                                                            cu->stream),
                       "cuMemcpyDtoHAsync_v2"));
    return cuda_check(cu, cu->driver->cuStreamSynchronize(cu->stream), "cuStreamSynchronize");
  }
  return cuda_check(cu, cu->driver->cuMemcpyDtoH_v2(dst, (CUdeviceptr)src, bytes),
                        "cuMemcpyDtoH_v2");
}

mfx_status mfx_cuda_copy(void *state, uint64_t dst, uint64_t src, size_t bytes) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (cu->stream != NULL)
    return cuda_check(cu, cu->driver->cuMemcpyDtoDAsync_v2((CUdeviceptr)dst, (CUdeviceptr)src,
                                                           bytes, cu->stream),
                      "cuMemcpyDtoDAsync_v2");
  return cuda_check(cu, cu->driver->cuMemcpyDtoD_v2((CUdeviceptr)dst, (CUdeviceptr)src, bytes),
                    "cuMemcpyDtoD_v2");
}

mfx_status mfx_cuda_zero(void *state, uint64_t dst, size_t bytes) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (cu->stream != NULL)
    return cuda_check(cu, cu->driver->cuMemsetD8Async((CUdeviceptr)dst, 0, bytes, cu->stream),
                      "cuMemsetD8Async");
  return cuda_check(cu, cu->driver->cuMemsetD8_v2((CUdeviceptr)dst, 0, bytes), "cuMemsetD8_v2");
}

mfx_status mfx_cuda_synchronize(void *state) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (cu->stream != NULL)
    return cuda_check(cu, cu->driver->cuStreamSynchronize(cu->stream), "cuStreamSynchronize");
  return cuda_check(cu, cu->driver->cuCtxSynchronize(), "cuCtxSynchronize");
}

mfx_status mfx_cuda_own_stream(void *state) {
  mfx_cuda_device *cu = state;
  if (cu->stream != NULL) return MFX_OK;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  CUstream stream = NULL;
  MFX_TRY(cuda_check(cu, cu->driver->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
                     "cuStreamCreate(CU_STREAM_NON_BLOCKING)"));
  cu->stream = stream;
  return MFX_OK;
}

/* ---- graphs of the own stream ----------------------------------------------- */

typedef struct {
  CUgraph graph;
  CUgraphExec exec;
} cuda_graph;

static mfx_status cuda_need_stream(const mfx_cuda_device *cu, const char *what) {
  if (cu->stream != NULL) return MFX_OK;
  return mfx_fail(MFX_ERR_INVALID, "%s: %s needs a stream of the handle's own "
                  "(mfx_device_use_own_stream); the legacy default stream cannot be captured",
                  cu->name, what);
}

/* Relaxed: buffers may be allocated while a capture is open (a pass that
 * grows its scratch). */
mfx_status mfx_cuda_capture_begin(void *state) {
  mfx_cuda_device *cu = state;
  MFX_TRY(cuda_need_stream(cu, "a graph capture"));
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  return cuda_check(cu, cu->driver->cuStreamBeginCapture_v2(cu->stream,
                                                            CU_STREAM_CAPTURE_MODE_RELAXED),
                    "cuStreamBeginCapture_v2");
}

/* Ends the capture; graph NULL: the captured work is dropped. */
mfx_status mfx_cuda_capture_end(void *state, void **graph) {
  mfx_cuda_device *cu = state;
  if (graph != NULL) *graph = NULL;
  MFX_TRY(cuda_need_stream(cu, "ending a graph capture"));
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  CUgraph captured = NULL;
  MFX_TRY(cuda_check(cu, cu->driver->cuStreamEndCapture(cu->stream, &captured),
                     "cuStreamEndCapture"));
  if (graph == NULL) {
    if (captured != NULL) cu->driver->cuGraphDestroy(captured);
    return MFX_OK;
  }
  cuda_graph *g = calloc(1, sizeof *g);
  if (g == NULL) {
    cu->driver->cuGraphDestroy(captured);
    return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory for a graph", cu->name);
  }
  g->graph = captured;
  CUresult r = cu->driver->cuGraphInstantiateWithFlags(&g->exec, captured, 0);
  if (r != CUDA_SUCCESS) {
    cu->driver->cuGraphDestroy(captured);
    free(g);
    return cuda_check(cu, r, "cuGraphInstantiateWithFlags");
  }
  *graph = g;
  return MFX_OK;
}

mfx_status mfx_cuda_graph_launch(void *state, void *graph) {
  mfx_cuda_device *cu = state;
  cuda_graph *g = graph;
  MFX_TRY(cuda_need_stream(cu, "a graph launch"));
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  return cuda_check(cu, cu->driver->cuGraphLaunch(g->exec, cu->stream), "cuGraphLaunch");
}

void mfx_cuda_graph_free(void *state, void *graph) {
  mfx_cuda_device *cu = state;
  cuda_graph *g = graph;
  if (g == NULL) return;
  if (cuda_enter(cu) == MFX_OK) {
    cu->driver->cuGraphExecDestroy(g->exec);
    cu->driver->cuGraphDestroy(g->graph);
  }
  free(g);
}

/* ---- events ---------------------------------------------------------------- */

mfx_status mfx_cuda_event_create(void *state, void **event) {
  mfx_cuda_device *cu = state;
  CUevent ev = NULL;
  if (cuda_enter(cu) != MFX_OK ||
      cuda_check(cu, cu->driver->cuEventCreate(&ev, CU_EVENT_DEFAULT), "cuEventCreate"))
    return MFX_ERR_DEVICE;
  *event = ev;
  return MFX_OK;
}

void mfx_cuda_event_destroy(void *state, void *event) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) == MFX_OK) cu->driver->cuEventDestroy_v2((CUevent)event);
}

mfx_status mfx_cuda_event_record(void *state, void *event) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  return cuda_check(cu, cu->driver->cuEventRecord((CUevent)event, cu->stream), "cuEventRecord");
}

mfx_status mfx_cuda_event_elapsed(void *state, void *start, void *end, double *seconds) {
  mfx_cuda_device *cu = state;
  float ms = 0.0f;
  if (cuda_enter(cu) != MFX_OK ||
      cuda_check(cu, cu->driver->cuEventSynchronize((CUevent)end), "cuEventSynchronize") ||
      cuda_check(cu, cu->driver->cuEventElapsedTime(&ms, (CUevent)start, (CUevent)end),
                     "cuEventElapsedTime"))
    return MFX_ERR_DEVICE;
  *seconds = (double)ms * 1e-3;
  return MFX_OK;
}

/* ---- modules --------------------------------------------------------------- */

/* A cubin (ELF) or fatbin goes to the driver as is; anything else is PTX. */
static int cuda_image_is_binary(const void *image, size_t bytes) {
  static const unsigned char elf[4] = {0x7f, 'E', 'L', 'F'};
  static const unsigned char fatbin[4] = {0x50, 0xed, 0x55, 0xba}; /* 0xba55ed50 */
  return bytes >= 4 && (memcmp(image, elf, 4) == 0 || memcmp(image, fatbin, 4) == 0);
}

/* The PTX `.version X.Y` of a text image, for messages; "?" if none. */
static void cuda_ptx_version(const char *ptx, char *out, size_t cap) {
  const char *at = strstr(ptx, ".version");
  int major = 0, minor = 0;
  if (at != NULL && sscanf(at, ".version %d.%d", &major, &minor) == 2)
    snprintf(out, cap, "%d.%d", major, minor);
  else
    snprintf(out, cap, "?");
}

/* What to try when the driver refuses an image, or "". */
static void cuda_load_hint(const mfx_cuda_device *cu, CUresult r, const char *ptx, char *out,
                               size_t cap) {
  char version[32];
  out[0] = '\0';
  if (r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION && ptx != NULL) {
    cuda_ptx_version(ptx, version, sizeof version);
    snprintf(out, cap,
             ": the PTX .version %s is newer than CUDA driver %d.%d accepts (emit an older PTX "
             "ISA, or update the driver)",
             version, cu->driver_version / 1000, cu->driver_version % 1000 / 10);
  } else if (r == CUDA_ERROR_NO_BINARY_FOR_GPU) {
    snprintf(out, cap, ": the image has no code for this device's %s", cu->arch);
  }
}

static void cuda_trim(char *text) {
  size_t n = strlen(text);
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\r'))
    text[--n] = '\0';
}

static mfx_status cuda_load_fail(const mfx_cuda_device *cu, CUresult r, const char *ptx,
                                     char *error_log) {
  char error[256], hint[256];
  cuda_trim(error_log);
  cuda_describe(cu->driver, r, error, sizeof error);
  cuda_load_hint(cu, r, ptx, hint, sizeof hint);
  return mfx_fail(cuda_status(r), "%s: cuModuleLoadDataEx: %s%s%s%s", cu->name, error, hint,
                  error_log[0] != '\0' ? ": " : "", error_log);
}

/* Loads a NUL-terminated PTX text or a binary image with the JIT logs on. */
static mfx_status cuda_load_image(mfx_cuda_device *cu, const void *image, const char *ptx,
                                      CUmodule *module, char *log, size_t log_cap) {
  char error_log[MFX_CUDA_ERROR_LOG_BYTES] = {0};
  unsigned int info_bytes = log_cap > UINT_MAX ? UINT_MAX : (unsigned int)log_cap;
  CUjit_option options[] = {CU_JIT_INFO_LOG_BUFFER, CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                            CU_JIT_LOG_VERBOSE};
  void *values[] = {log, (void *)(uintptr_t)info_bytes, error_log,
                    (void *)(uintptr_t)sizeof error_log, (void *)(uintptr_t)1};
  memset(log, 0, log_cap);
  CUresult r = cu->driver->cuModuleLoadDataEx(module, image, sizeof options / sizeof options[0],
                                              options, values);
  log[log_cap - 1] = '\0';
  error_log[sizeof error_log - 1] = '\0';
  cuda_trim(log);
  return r == CUDA_SUCCESS ? MFX_OK : cuda_load_fail(cu, r, ptx, error_log);
}

mfx_status mfx_cuda_module_load(void *state, const void *image, size_t bytes, void **module,
                                char *log, size_t log_cap) {
  mfx_cuda_device *cu = state;
  CUmodule mod = NULL;
  char *text = NULL;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  if (!cuda_image_is_binary(image, bytes)) {
    /* The driver reads PTX up to its NUL: give it one. */
    text = malloc(bytes + 1);
    if (text == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory copying PTX", cu->name);
    memcpy(text, image, bytes);
    text[bytes] = '\0';
    image = text;
  }
  mfx_status st = cuda_load_image(cu, image, text, &mod, log, log_cap);
  free(text);
  if (st == MFX_OK) *module = mod;
  return st;
}

void mfx_cuda_module_unload(void *state, void *module) {
  mfx_cuda_device *cu = state;
  if (cuda_enter(cu) == MFX_OK) cu->driver->cuModuleUnload((CUmodule)module);
}

mfx_status mfx_cuda_function_get(void *state, void *module, const char *name, void **function) {
  mfx_cuda_device *cu = state;
  CUfunction fn = NULL;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  CUresult r = cu->driver->cuModuleGetFunction(&fn, (CUmodule)module, name);
  if (r != CUDA_SUCCESS) {
    char call[160];
    snprintf(call, sizeof call, "cuModuleGetFunction(\"%.100s\")", name);
    return cuda_check(cu, r, call);
  }
  *function = fn;
  return MFX_OK;
}

/* ---- launches -------------------------------------------------------------- */

static mfx_status cuda_function_attribute(const mfx_cuda_device *cu, CUfunction fn,
                                              CUfunction_attribute attribute, int *out) {
  return cuda_check(cu, cu->driver->cuFuncGetAttribute(out, attribute, fn),
                        "cuFuncGetAttribute");
}

/* Opts the function in to `dynamic` bytes of shared memory when its static
 * plus dynamic shared memory exceeds the default per-block limit (48 KiB).
 * Called with launch_lock held: the limit only ever rises. */
static mfx_status cuda_prepare_shared(mfx_cuda_device *cu, CUfunction fn, const char *name,
                                          size_t dynamic) {
  int static_bytes = 0, allowed = 0;
  if (cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, &static_bytes))
    return MFX_ERR_DEVICE;
  size_t total = dynamic + (size_t)static_bytes;
  if (total > cu->shared_per_block_optin || dynamic > INT_MAX)
    return mfx_fail(MFX_ERR_INVALID,
                    "%s: launch %s: %zu bytes of dynamic and %d of static shared memory per "
                    "block; the device allows at most %zu",
                    cu->name, name, dynamic, static_bytes, cu->shared_per_block_optin);
  if (total <= cu->shared_per_block) return MFX_OK;
  if (cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                  &allowed))
    return MFX_ERR_DEVICE;
  if ((size_t)allowed >= dynamic) return MFX_OK;
  return cuda_check(cu,
                        cu->driver->cuFuncSetAttribute(
                            fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)dynamic),
                        "cuFuncSetAttribute(max dynamic shared size)");
}

static mfx_status cuda_check_block(const mfx_cuda_device *cu, const char *name,
                                       const mfx_launch_dims *d) {
  uint64_t threads = (uint64_t)d->block[0] * d->block[1] * d->block[2];
  if (threads <= (uint64_t)cu->max_threads_per_block) return MFX_OK;
  return mfx_fail(MFX_ERR_INVALID,
                  "%s: launch %s: block %ux%ux%u has %llu threads; the device allows at most %d",
                  cu->name, name, d->block[0], d->block[1], d->block[2],
                  (unsigned long long)threads, cu->max_threads_per_block);
}

/* A refused launch: say the kernel's own limits, which may be why. */
static mfx_status cuda_launch_fail(const mfx_cuda_device *cu, CUresult r, CUfunction fn,
                                       const char *name) {
  char error[256], hint[160] = "";
  int threads = 0, shared = 0;
  const mfx_cuda_driver *drv = cu->driver;
  cuda_describe(drv, r, error, sizeof error);
  if ((r == CUDA_ERROR_INVALID_VALUE || r == CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) &&
      drv->cuFuncGetAttribute(&threads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fn) ==
          CUDA_SUCCESS &&
      drv->cuFuncGetAttribute(&shared, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, fn) ==
          CUDA_SUCCESS)
    snprintf(hint, sizeof hint,
             " (the kernel allows at most %d threads per block and %d bytes of dynamic shared "
             "memory)",
             threads, shared);
  return mfx_fail(cuda_status(r), "%s: launch %s: cuLaunchKernel: %s%s", cu->name, name, error,
                  hint);
}

mfx_status mfx_cuda_launch(void *state, void *function, const char *name,
                           const mfx_launch_dims *d, void **args) {
  mfx_cuda_device *cu = state;
  CUfunction fn = function;
  if (cuda_enter(cu) != MFX_OK) return MFX_ERR_DEVICE;
  mfx_status st = cuda_check_block(cu, name, d);
  if (st != MFX_OK) return st;
  int opt_in = d->shared_bytes > 0;
  if (opt_in) pthread_mutex_lock(&cu->launch_lock);
  st = opt_in ? cuda_prepare_shared(cu, fn, name, d->shared_bytes) : MFX_OK;
  if (st == MFX_OK) {
    CUresult r = cu->driver->cuLaunchKernel(fn, d->grid[0], d->grid[1], d->grid[2], d->block[0],
                                            d->block[1], d->block[2], (unsigned int)d->shared_bytes,
                                            cu->stream, args, NULL);
    if (r != CUDA_SUCCESS) st = cuda_launch_fail(cu, r, fn, name);
  }
  if (opt_in) pthread_mutex_unlock(&cu->launch_lock);
  return st;
}

mfx_status mfx_cuda_function_attributes(void *state, void *function,
                                        mfx_function_attributes *out) {
  mfx_cuda_device *cu = state;
  CUfunction fn = function;
  if (cuda_enter(cu) != MFX_OK ||
      cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_NUM_REGS, &out->registers) ||
      cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, &out->local_bytes) ||
      cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                                  &out->static_shared_bytes) ||
      cuda_function_attribute(cu, fn, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK,
                                  &out->max_threads_per_block))
    return MFX_ERR_DEVICE;
  return MFX_OK;
}

#else /* !MFX_CUDA_HEADERS */

static mfx_status cuda_unavailable(void) {
  return mfx_fail(MFX_ERR_DEVICE,
                  "CUDA unavailable: mfx was built without CUDA headers (cuda.h); rebuild with "
                  "the CUDA toolkit's include directory");
}

mfx_status mfx_cuda_count(int *count) {
  *count = 0;
  return cuda_unavailable();
}

mfx_status mfx_cuda_open(int ordinal, mfx_device_info *info, void **state) {
  (void)ordinal;
  memset(info, 0, sizeof *info);
  *state = NULL;
  return cuda_unavailable();
}

#endif
