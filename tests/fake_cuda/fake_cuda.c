/* A fake libcuda.so.1: the Driver API entry points that mfx's runtime uses,
 * with plausible behaviour on host memory, so that tests exercise the whole
 * CUDA path (dlopen, symbol table, contexts, error translation, JIT logs,
 * launches, events, streams) on a machine without a GPU. It does not include cuda.h:
 * it declares the ABI it needs (enums are int-sized, handles are pointers,
 * CUdeviceptr is 64 bits) with the values of cuda.h.
 *
 * Built by tests/test_device.c at test time:
 *   cc -shared -fPIC -o DIR/libcuda.so.1 fake_cuda.c [-DFAKE_CUDA_WITHOUT_LAUNCH]
 * Behaviour, from the environment at each call:
 *   FAKE_CUDA_DEVICES         device count (default 1, at most 8)
 *   FAKE_CUDA_INIT_RESULT     what cuInit returns (default 0)
 *   FAKE_CUDA_DRIVER_VERSION  cuDriverGetVersion (default 12040)
 *   FAKE_CUDA_MAX_PTX         newest PTX ISA accepted, 10*major+minor (default 84)
 *   FAKE_CUDA_NAME            device name (default "Fake CUDA Device N")
 *   FAKE_CUDA_CC              compute capability, 10*major+minor (default 90)
 *   FAKE_CUDA_SMS             multiprocessors (default 132)
 *   FAKE_CUDA_MAX_THREADS     threads per block the device allows (default 1024)
 *   FAKE_CUDA_REGS            registers per thread of every function (default 32)
 *   FAKE_CUDA_LOCAL_BYTES     local memory (spills) per thread of every function (default 0)
 *   FAKE_CUDA_FAULT_THREADS   a launch with exactly this many threads per block
 *                             faults: CUDA_ERROR_ILLEGAL_ADDRESS, sticky (every
 *                             later call of the process fails with it, as a
 *                             real context does after a fault)
 *   FAKE_CUDA_RUN_AS          every launch runs as the known kernel of this name
 *                             (below), whatever its own name: for kernels named by
 *                             a hash, as mfx's text kernels te_<hash>_..., whose
 *                             computation the test knows
 *   FAKE_CUDA_LOG             a file that gets one line per cuLaunchKernel call:
 *                             "launch|refused NAME grid X Y Z block X Y Z shared S"
 * Timing model: the device has a virtual clock that only launches advance,
 * each by fake_cuda_model_ms(name, grid, block, shared), a deterministic
 * function of the launch (waves of resident blocks over the SMs); events
 * read that clock, so an event pair around launches measures exactly the
 * model's time of what was launched between them.
 * Modules: PTX text (or "\x7fELF" followed by such text, a "cubin") that
 * declares `.entry name(.param .u64 a, ...)` loads; text without `.entry`, or
 * with an instruction called `frobnicate`, fails with CUDA_ERROR_INVALID_PTX
 * and a ptxas-like error log. Launches record their arguments (sizes from the
 * .param list) and run three known kernels on the host: vector_add_f32,
 * reverse_shared_u32 (needs 4*n bytes of dynamic shared memory),
 * fake_fault (an illegal address, reported by the next cuCtxSynchronize)
 * and mfx's q16_dequantize kernels (any name starting "q16_dequantize" with
 * two parameters: Y = Q 2^-16 over the whole output allocation). Other
 * launches succeed and compute nothing.
 * Streams: cuStreamCreate gives ids; the Async copies, memsets and launches
 * run at once, like the synchronous calls, and count on the stream they
 * were queued on (fake_cuda_counts.ops_on_stream, the launch's stream_id),
 * so a test sees which queue the runtime used. */
#define _GNU_SOURCE
#include "fake_cuda.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct fake_context *CUcontext;
typedef struct fake_module *CUmodule;
typedef struct fake_function *CUfunction;
typedef struct fake_event *CUevent;
typedef void *CUstream;

enum {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_NOT_INITIALIZED = 3,
  CUDA_ERROR_INSUFFICIENT_DRIVER = 35,
  CUDA_ERROR_NO_DEVICE = 100,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_CONTEXT = 201,
  CUDA_ERROR_INVALID_PTX = 218,
  CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_ILLEGAL_ADDRESS = 700,
  CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
};

enum { /* CUjit_option */
  CU_JIT_INFO_LOG_BUFFER = 3,
  CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
};

enum { /* CUdevice_attribute */
  CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1,
  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8,
  CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK = 12,
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
  CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38,
  CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39,
  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81,
  CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR = 82,
  CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR = 106,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
};

enum { /* CUfunction_attribute */
  CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,
  CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1,
  CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3,
  CU_FUNC_ATTRIBUTE_NUM_REGS = 4,
  CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
};

#define FAKE_MAX_DEVICES 8
#define FAKE_SHARED_DEFAULT 49152
#define FAKE_SHARED_OPTIN 232448
#define FAKE_MAX_THREADS fake_max_threads()
#define FAKE_THREADS_PER_SM 2048
#define FAKE_BLOCKS_PER_SM 32
#define FAKE_REGS_PER_SM 65536
#define FAKE_SHARED_PER_SM 233472

struct fake_context {
  int device;
  int refs;
};

struct fake_function {
  char name[64];
  int param_count;
  unsigned param_bytes[FAKE_CUDA_MAX_PARAMS];
  int max_dynamic_shared;
  struct fake_function *next;
};

struct fake_module {
  char *text;
  struct fake_function *functions;
};

struct fake_event {
  double ms;
  int recorded;
};

/* A launch a capture recorded: what cuLaunchKernel checked and copied. */
typedef struct fake_node {
  fake_cuda_launch launch;
  struct fake_node *next;
} fake_node;

struct fake_stream {
  int id; /* 1 .. FAKE_CUDA_MAX_STREAMS - 1 */
  int capturing;
  fake_node *captured, **tail; /* the launches of the open capture, in order */
};

/* A graph (CUgraph) and an instantiated one (CUgraphExec): launch lists. */
struct fake_graph {
  fake_node *nodes;
};
typedef struct fake_graph *CUgraph;
typedef struct fake_graph *CUgraphExec;

typedef struct fake_allocation {
  unsigned char *data;
  size_t bytes;
  struct fake_allocation *next;
} fake_allocation;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_context fake_contexts[FAKE_MAX_DEVICES];
static _Thread_local struct fake_context *fake_current;
static _Atomic int fake_initialized;
static fake_allocation *fake_allocations;
static fake_cuda_counts fake_counts;
static fake_cuda_launch fake_last;
static CUresult fake_pending; /* error of an earlier launch, for the next synchronize */
static int fake_streams_made;
static double fake_clock_ms; /* the virtual device clock: launches advance it */
static CUresult fake_sticky;  /* a fault that poisoned the context */
static int fake_pending_sticky; /* fake_pending poisons the context when reported */

static int fake_env_int(const char *name, int fallback) {
  const char *value = getenv(name);
  return value != NULL && value[0] != '\0' ? atoi(value) : fallback;
}

static int fake_max_threads(void) { return fake_env_int("FAKE_CUDA_MAX_THREADS", 1024); }

static int fake_regs(void) {
  int r = fake_env_int("FAKE_CUDA_REGS", 32);
  return r < 1 ? 1 : r > 255 ? 255 : r;
}

static int fake_device_count(void) {
  int n = fake_env_int("FAKE_CUDA_DEVICES", 1);
  return n < 0 ? 0 : n > FAKE_MAX_DEVICES ? FAKE_MAX_DEVICES : n;
}

/* Calls that need a context fail without a live one current. */
static CUresult fake_need_context(void) {
  if (!fake_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (fake_sticky != CUDA_SUCCESS) return fake_sticky;
  if (fake_current != NULL && fake_current->refs > 0) return CUDA_SUCCESS;
  pthread_mutex_lock(&fake_lock);
  fake_counts.bad_context_calls++;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_ERROR_INVALID_CONTEXT;
}

/* ---- errors ------------------------------------------------------------- */

static const struct {
  CUresult code;
  const char *name;
  const char *text;
} fake_errors[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_INSUFFICIENT_DRIVER, "CUDA_ERROR_INSUFFICIENT_DRIVER",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT", "invalid device context"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
    {CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
     "the provided PTX was compiled with an unsupported toolchain."},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
};

static int fake_error_index(CUresult r) {
  for (size_t i = 0; i < sizeof fake_errors / sizeof fake_errors[0]; i++)
    if (fake_errors[i].code == r) return (int)i;
  return -1;
}

CUresult cuGetErrorName(CUresult error, const char **out) {
  int i = fake_error_index(error);
  if (out == NULL || i < 0) return CUDA_ERROR_INVALID_VALUE;
  *out = fake_errors[i].name;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorString(CUresult error, const char **out) {
  int i = fake_error_index(error);
  if (out == NULL || i < 0) return CUDA_ERROR_INVALID_VALUE;
  *out = fake_errors[i].text;
  return CUDA_SUCCESS;
}

/* ---- initialization and devices -------------------------------------------- */

CUresult cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  CUresult r = fake_env_int("FAKE_CUDA_INIT_RESULT", CUDA_SUCCESS);
  if (r == CUDA_SUCCESS) fake_initialized = 1;
  return r;
}

CUresult cuDriverGetVersion(int *version) {
  if (version == NULL) return CUDA_ERROR_INVALID_VALUE;
  *version = fake_env_int("FAKE_CUDA_DRIVER_VERSION", 12040);
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count) {
  if (!fake_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (count == NULL) return CUDA_ERROR_INVALID_VALUE;
  *count = fake_device_count();
  return CUDA_SUCCESS;
}

static CUresult fake_check_device(CUdevice dev) {
  if (!fake_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  return dev >= 0 && dev < fake_device_count() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

CUresult cuDeviceGet(CUdevice *dev, int ordinal) {
  CUresult r = fake_check_device(ordinal);
  if (r == CUDA_SUCCESS) *dev = ordinal;
  return r;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  CUresult r = fake_check_device(dev);
  if (r != CUDA_SUCCESS) return r;
  if (name == NULL || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  const char *given = getenv("FAKE_CUDA_NAME");
  if (given != NULL && given[0] != '\0') snprintf(name, (size_t)len, "%s", given);
  else snprintf(name, (size_t)len, "Fake CUDA Device %d", dev);
  return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  CUresult r = fake_check_device(dev);
  if (r == CUDA_SUCCESS) *bytes = (size_t)80 << 30;
  return r;
}

static int fake_attribute(int attribute) {
  switch (attribute) {
  case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return FAKE_MAX_THREADS;
  case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: return FAKE_SHARED_DEFAULT;
  case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: return FAKE_REGS_PER_SM;
  case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return fake_env_int("FAKE_CUDA_SMS", 132);
  case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: return 50 << 20;
  case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: return FAKE_THREADS_PER_SM;
  case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: return FAKE_SHARED_PER_SM;
  case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR: return FAKE_REGS_PER_SM;
  case CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR: return FAKE_BLOCKS_PER_SM;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return fake_env_int("FAKE_CUDA_CC", 90) / 10;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return fake_env_int("FAKE_CUDA_CC", 90) % 10;
  case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: return FAKE_SHARED_OPTIN;
  default: return -1;
  }
}

CUresult cuDeviceGetAttribute(int *value, int attribute, CUdevice dev) {
  CUresult r = fake_check_device(dev);
  if (r != CUDA_SUCCESS) return r;
  int v = fake_attribute(attribute);
  if (value == NULL || v < 0) return CUDA_ERROR_INVALID_VALUE;
  *value = v;
  return CUDA_SUCCESS;
}

/* ---- contexts ------------------------------------------------------------------- */

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev) {
  CUresult r = fake_check_device(dev);
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&fake_lock);
  fake_contexts[dev].device = dev;
  fake_contexts[dev].refs++;
  fake_counts.primary_refs++;
  pthread_mutex_unlock(&fake_lock);
  *ctx = &fake_contexts[dev];
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  CUresult r = fake_check_device(dev);
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&fake_lock);
  if (fake_contexts[dev].refs > 0) {
    fake_contexts[dev].refs--;
    fake_counts.primary_refs--;
  } else {
    r = CUDA_ERROR_INVALID_CONTEXT;
  }
  pthread_mutex_unlock(&fake_lock);
  return r;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
  if (!fake_initialized) return CUDA_ERROR_NOT_INITIALIZED;
  if (ctx != NULL && ctx->refs <= 0) return CUDA_ERROR_INVALID_CONTEXT;
  fake_current = ctx;
  return CUDA_SUCCESS;
}

static CUresult fake_synchronize(int *counter);

CUresult cuCtxSynchronize(void) { return fake_synchronize(&fake_counts.context_syncs); }

/* ---- memory ------------------------------------------------------------------------ */

/* The allocation holding [address, address + bytes), or NULL. Lock held. */
static fake_allocation *fake_find(CUdeviceptr address, size_t bytes) {
  for (fake_allocation *a = fake_allocations; a != NULL; a = a->next) {
    uintptr_t begin = (uintptr_t)a->data;
    if (address >= begin && address - begin <= a->bytes && bytes <= a->bytes - (address - begin))
      return a;
  }
  return NULL;
}

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (ptr == NULL || bytes == 0) return CUDA_ERROR_INVALID_VALUE;
  if (bytes > ((size_t)80 << 30)) return CUDA_ERROR_OUT_OF_MEMORY;
  fake_allocation *a = calloc(1, sizeof *a);
  unsigned char *data = a != NULL ? malloc(bytes) : NULL;
  if (data == NULL) {
    free(a);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  memset(data, 0xcd, bytes);
  a->data = data;
  a->bytes = bytes;
  pthread_mutex_lock(&fake_lock);
  a->next = fake_allocations;
  fake_allocations = a;
  fake_counts.allocations++;
  pthread_mutex_unlock(&fake_lock);
  *ptr = (CUdeviceptr)(uintptr_t)data;
  return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&fake_lock);
  fake_allocation **link = &fake_allocations;
  while (*link != NULL && (uintptr_t)(*link)->data != ptr) link = &(*link)->next;
  fake_allocation *a = *link;
  if (a != NULL) {
    *link = a->next;
    fake_counts.allocations--;
  }
  pthread_mutex_unlock(&fake_lock);
  if (a == NULL) return CUDA_ERROR_INVALID_VALUE;
  free(a->data);
  free(a);
  return CUDA_SUCCESS;
}

/* Device memory of [address, address + bytes), or NULL when not allocated. */
static unsigned char *fake_device_memory(CUdeviceptr address, size_t bytes) {
  pthread_mutex_lock(&fake_lock);
  fake_allocation *a = fake_find(address, bytes);
  pthread_mutex_unlock(&fake_lock);
  return a != NULL ? (unsigned char *)(uintptr_t)address : NULL;
}

/* The stream id of a handle: 0 for NULL, the legacy default stream. */
static int fake_stream_id(CUstream stream) {
  return stream != NULL ? ((struct fake_stream *)stream)->id : 0;
}

/* The fake captures launches only: a copy or memset queued on a stream
 * being captured is refused. */
static int fake_capturing(CUstream stream) {
  return stream != NULL && ((struct fake_stream *)stream)->capturing;
}

/* Counts one launch, copy or memset on the stream `id`. Lock held. */
static void fake_count_op(int id) { fake_counts.ops_on_stream[id]++; }

/* The async calls run at once (the fake has no queue): the same as the
 * synchronous ones, but counted on their stream. */
static CUresult fake_htod(CUdeviceptr dst, const void *src, size_t bytes, int stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  unsigned char *device = fake_device_memory(dst, bytes);
  if (device == NULL || src == NULL) return CUDA_ERROR_INVALID_VALUE;
  memcpy(device, src, bytes);
  pthread_mutex_lock(&fake_lock);
  fake_counts.htod_bytes += bytes;
  fake_count_op(stream);
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

static CUresult fake_dtoh(void *dst, CUdeviceptr src, size_t bytes, int stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  unsigned char *device = fake_device_memory(src, bytes);
  if (device == NULL || dst == NULL) return CUDA_ERROR_INVALID_VALUE;
  memcpy(dst, device, bytes);
  pthread_mutex_lock(&fake_lock);
  fake_counts.dtoh_bytes += bytes;
  fake_count_op(stream);
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

static CUresult fake_dtod(CUdeviceptr dst, CUdeviceptr src, size_t bytes, int stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  unsigned char *to = fake_device_memory(dst, bytes), *from = fake_device_memory(src, bytes);
  if (to == NULL || from == NULL) return CUDA_ERROR_INVALID_VALUE;
  memmove(to, from, bytes);
  pthread_mutex_lock(&fake_lock);
  fake_counts.dtod_bytes += bytes;
  fake_count_op(stream);
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

static CUresult fake_memset(CUdeviceptr dst, unsigned char value, size_t bytes, int stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  unsigned char *to = fake_device_memory(dst, bytes);
  if (to == NULL) return CUDA_ERROR_INVALID_VALUE;
  memset(to, value, bytes);
  pthread_mutex_lock(&fake_lock);
  fake_counts.memset_bytes += bytes;
  fake_count_op(stream);
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t bytes) {
  return fake_htod(dst, src, bytes, 0);
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t bytes) {
  return fake_dtoh(dst, src, bytes, 0);
}

CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  return fake_dtod(dst, src, bytes, 0);
}

CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t bytes) {
  return fake_memset(dst, value, bytes, 0);
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t bytes, CUstream stream) {
  if (fake_capturing(stream)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return fake_htod(dst, src, bytes, fake_stream_id(stream));
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  if (fake_capturing(stream)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return fake_dtoh(dst, src, bytes, fake_stream_id(stream));
}

CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) {
  if (fake_capturing(stream)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return fake_dtod(dst, src, bytes, fake_stream_id(stream));
}

CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t bytes, CUstream stream) {
  if (fake_capturing(stream)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return fake_memset(dst, value, bytes, fake_stream_id(stream));
}

/* ---- streams ------------------------------------------------------------------------------ */

/* flags: 0 or CU_STREAM_NON_BLOCKING (1). */
CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (stream == NULL || flags > 1) return CUDA_ERROR_INVALID_VALUE;
  struct fake_stream *s = calloc(1, sizeof *s);
  if (s == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  pthread_mutex_lock(&fake_lock);
  s->id = 1 + fake_streams_made++ % (FAKE_CUDA_MAX_STREAMS - 1);
  fake_counts.streams++;
  pthread_mutex_unlock(&fake_lock);
  *stream = s;
  return CUDA_SUCCESS;
}

CUresult cuStreamDestroy_v2(CUstream stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (stream == NULL) return CUDA_ERROR_INVALID_HANDLE;
  free(stream);
  pthread_mutex_lock(&fake_lock);
  fake_counts.streams--;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

/* Reports an earlier launch's error as cuCtxSynchronize does (the fake
 * keeps one pending error for the whole context). */
static CUresult fake_synchronize(int *counter) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  pthread_mutex_lock(&fake_lock);
  (*counter)++;
  r = fake_pending;
  fake_pending = CUDA_SUCCESS;
  if (r != CUDA_SUCCESS && fake_pending_sticky) fake_sticky = r;
  fake_pending_sticky = 0;
  pthread_mutex_unlock(&fake_lock);
  return r;
}

/* Waiting on a stream that is being captured is an error in CUDA. */
CUresult cuStreamSynchronize(CUstream stream) {
  if (stream != NULL && ((struct fake_stream *)stream)->capturing)
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return fake_synchronize(&fake_counts.stream_syncs);
}

/* ---- graphs ------------------------------------------------------------------------------- */

static void fake_nodes_free(fake_node *n) {
  while (n != NULL) {
    fake_node *next = n->next;
    free(n);
    n = next;
  }
}

/* mode: CU_STREAM_CAPTURE_MODE_GLOBAL (0), THREAD_LOCAL (1) or RELAXED (2);
 * the legacy stream cannot be captured. */
CUresult cuStreamBeginCapture_v2(CUstream stream, int mode) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  struct fake_stream *s = stream;
  if (s == NULL) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  if (mode < 0 || mode > 2 || s->capturing) return CUDA_ERROR_INVALID_VALUE;
  s->capturing = 1;
  s->captured = NULL;
  s->tail = &s->captured;
  return CUDA_SUCCESS;
}

CUresult cuStreamEndCapture(CUstream stream, CUgraph *graph) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  struct fake_stream *s = stream;
  if (s == NULL || !s->capturing || graph == NULL) return CUDA_ERROR_INVALID_VALUE;
  s->capturing = 0;
  *graph = calloc(1, sizeof **graph);
  if (*graph == NULL) {
    fake_nodes_free(s->captured);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  (*graph)->nodes = s->captured;
  s->captured = NULL;
  pthread_mutex_lock(&fake_lock);
  fake_counts.graphs++;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph,
                                     unsigned long long flags) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (exec == NULL || graph == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  struct fake_graph *e = calloc(1, sizeof *e);
  if (e == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  fake_node **tail = &e->nodes;
  for (const fake_node *n = graph->nodes; n != NULL; n = n->next) {
    *tail = malloc(sizeof **tail);
    if (*tail == NULL) {
      fake_nodes_free(e->nodes);
      free(e);
      return CUDA_ERROR_OUT_OF_MEMORY;
    }
    (*tail)->launch = n->launch;
    (*tail)->next = NULL;
    tail = &(*tail)->next;
  }
  pthread_mutex_lock(&fake_lock);
  fake_counts.graph_execs++;
  pthread_mutex_unlock(&fake_lock);
  *exec = e;
  return CUDA_SUCCESS;
}

static CUresult fake_replay(const fake_cuda_launch *l, int stream_id);

CUresult cuGraphLaunch(CUgraphExec exec, CUstream stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (exec == NULL) return CUDA_ERROR_INVALID_HANDLE;
  if (stream != NULL && ((struct fake_stream *)stream)->capturing)
    return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  int id = fake_stream_id(stream);
  pthread_mutex_lock(&fake_lock);
  fake_counts.graph_launches++;
  fake_count_op(id);
  pthread_mutex_unlock(&fake_lock);
  for (const fake_node *n = exec->nodes; n != NULL; n = n->next) fake_replay(&n->launch, id);
  return CUDA_SUCCESS;
}

static CUresult fake_graph_free(struct fake_graph *g, int *alive) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (g == NULL) return CUDA_ERROR_INVALID_HANDLE;
  fake_nodes_free(g->nodes);
  free(g);
  pthread_mutex_lock(&fake_lock);
  (*alive)--;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuGraphExecDestroy(CUgraphExec exec) {
  return fake_graph_free(exec, &fake_counts.graph_execs);
}

CUresult cuGraphDestroy(CUgraph graph) { return fake_graph_free(graph, &fake_counts.graphs); }

/* ---- modules --------------------------------------------------------------------------- */

typedef struct {
  char *info;
  unsigned info_bytes;
  char *error;
  unsigned error_bytes;
} fake_logs;

static fake_logs fake_read_options(unsigned int count, const int *options, void **values) {
  fake_logs logs = {0};
  for (unsigned int i = 0; i < count; i++) {
    switch (options[i]) {
    case CU_JIT_INFO_LOG_BUFFER: logs.info = values[i]; break;
    case CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES: logs.info_bytes = (unsigned)(uintptr_t)values[i]; break;
    case CU_JIT_ERROR_LOG_BUFFER: logs.error = values[i]; break;
    case CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES:
      logs.error_bytes = (unsigned)(uintptr_t)values[i];
      break;
    default: break;
    }
  }
  return logs;
}

/* Writes `text` to a log buffer as the driver does: capped, NUL included,
 * and the bytes used stored back into the size option. */
static void fake_write_log(char *buffer, unsigned cap, unsigned int count, const int *options,
                           void **values, int size_option, const char *text) {
  if (buffer == NULL || cap == 0) return;
  snprintf(buffer, cap, "%s", text);
  for (unsigned int i = 0; i < count; i++)
    if (options[i] == size_option) values[i] = (void *)(uintptr_t)(strlen(buffer) + 1);
}

/* CUDA_SUCCESS, or why the PTX is refused with the error log in `log`. */
static CUresult fake_check_ptx(const char *text, char *log, size_t cap) {
  int major = 0, minor = 0, max = fake_env_int("FAKE_CUDA_MAX_PTX", 84);
  const char *version = strstr(text, ".version");
  if (version != NULL && sscanf(version, ".version %d.%d", &major, &minor) == 2 &&
      major * 10 + minor > max) {
    snprintf(log, cap,
             "ptxas application ptx input, line 1; fatal   : Unsupported .version %d.%d; current "
             "version is '%d.%d'",
             major, minor, max / 10, max % 10);
    return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
  }
  if (strstr(text, ".entry") == NULL || strstr(text, "frobnicate") != NULL) {
    snprintf(log, cap,
             "ptxas application ptx input, line 9; error   : Unknown instruction or no .entry\n"
             "ptxas fatal   : Ptx assembly aborted due to errors\n");
    return CUDA_ERROR_INVALID_PTX;
  }
  return CUDA_SUCCESS;
}

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int count, int *options,
                            void **values) {
  char error[512] = "";
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (module == NULL || image == NULL || (count > 0 && (options == NULL || values == NULL)))
    return CUDA_ERROR_INVALID_VALUE;
  const char *text = image;
  if (strncmp(text, "\x7f" "ELF", 4) == 0) text += 4;
  fake_logs logs = fake_read_options(count, options, values);
  r = fake_check_ptx(text, error, sizeof error);
  if (r != CUDA_SUCCESS) {
    fake_write_log(logs.error, logs.error_bytes, count, options, values,
                   CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, error);
    return r;
  }
  struct fake_module *m = calloc(1, sizeof *m);
  if (m == NULL || (m->text = strdup(text)) == NULL) {
    free(m);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  fake_write_log(logs.info, logs.info_bytes, count, options, values,
                 CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                 "ptxas info    : 0 bytes gmem\nptxas info    : Used 8 registers\n");
  pthread_mutex_lock(&fake_lock);
  fake_counts.modules++;
  pthread_mutex_unlock(&fake_lock);
  *module = m;
  return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule m) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (m == NULL) return CUDA_ERROR_INVALID_HANDLE;
  while (m->functions != NULL) {
    struct fake_function *next = m->functions->next;
    free(m->functions);
    m->functions = next;
  }
  free(m->text);
  free(m);
  pthread_mutex_lock(&fake_lock);
  fake_counts.modules--;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

/* Bytes of a PTX parameter type (".u64", ".f32", ...), 0 if unknown. */
static unsigned fake_param_size(const char *type) {
  int bits = 0;
  if (sscanf(type, ".%*[usbf]%d", &bits) != 1) return 0;
  return bits == 8 || bits == 16 || bits == 32 || bits == 64 ? (unsigned)bits / 8 : 0;
}

/* The `.entry name(` of the module text, or NULL. */
static const char *fake_find_entry(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *at = strstr(text, ".entry"); at != NULL; at = strstr(at + 1, ".entry")) {
    const char *p = at + 6;
    while (*p == ' ' || *p == '\t') p++;
    if (strncmp(p, name, n) != 0) continue;
    p += n;
    while (*p == ' ' || *p == '\t' || *p == '\n') p++;
    if (*p == '(') return p + 1;
  }
  return NULL;
}

/* Reads `.param .TYPE name` items up to the closing parenthesis. */
static void fake_parse_params(struct fake_function *f, const char *p) {
  const char *end = strchr(p, ')');
  for (const char *at = strstr(p, ".param"); at != NULL && (end == NULL || at < end);
       at = strstr(at + 6, ".param")) {
    const char *type = at + 6;
    while (*type == ' ' || *type == '\t') type++;
    if (f->param_count < FAKE_CUDA_MAX_PARAMS)
      f->param_bytes[f->param_count++] = fake_param_size(type);
  }
}

CUresult cuModuleGetFunction(CUfunction *out, CUmodule m, const char *name) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (out == NULL || m == NULL || name == NULL) return CUDA_ERROR_INVALID_VALUE;
  for (struct fake_function *f = m->functions; f != NULL; f = f->next)
    if (strcmp(f->name, name) == 0) {
      *out = f;
      return CUDA_SUCCESS;
    }
  const char *params = fake_find_entry(m->text, name);
  if (params == NULL || strlen(name) >= sizeof m->functions->name) return CUDA_ERROR_NOT_FOUND;
  struct fake_function *f = calloc(1, sizeof *f);
  if (f == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  snprintf(f->name, sizeof f->name, "%s", name);
  f->max_dynamic_shared = FAKE_SHARED_DEFAULT;
  fake_parse_params(f, params);
  f->next = m->functions;
  m->functions = f;
  *out = f;
  return CUDA_SUCCESS;
}

CUresult cuFuncGetAttribute(int *value, int attribute, CUfunction f) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (value == NULL || f == NULL) return CUDA_ERROR_INVALID_VALUE;
  switch (attribute) {
  case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: {
    int by_regs = FAKE_REGS_PER_SM / fake_regs() / 32 * 32;
    *value = by_regs < FAKE_MAX_THREADS ? by_regs : FAKE_MAX_THREADS;
    return CUDA_SUCCESS;
  }
  case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *value = 0; return CUDA_SUCCESS;
  case CU_FUNC_ATTRIBUTE_NUM_REGS: *value = fake_regs(); return CUDA_SUCCESS;
  case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES:
    *value = fake_env_int("FAKE_CUDA_LOCAL_BYTES", 0);
    return CUDA_SUCCESS;
  case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
    *value = f->max_dynamic_shared;
    return CUDA_SUCCESS;
  default: return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult cuFuncSetAttribute(CUfunction f, int attribute, int value) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (f == NULL || attribute != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 ||
      value > FAKE_SHARED_OPTIN)
    return CUDA_ERROR_INVALID_VALUE;
  f->max_dynamic_shared = value;
  return CUDA_SUCCESS;
}

/* ---- launches ------------------------------------------------------------------------------ */

/* FNV-1a of a kernel name: a per-kernel constant of the model. */
static uint64_t fake_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s != '\0'; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* Milliseconds one launch takes on the fake device: a fixed launch cost,
 * then waves of resident blocks over the SMs, a wave of small blocks
 * costing more (a per-block overhead that larger blocks amortize); plus a per-name constant (a microsecond or so)
 * so that different kernels never tie. */
double fake_cuda_model_ms(const char *name, const unsigned grid[3], const unsigned block[3],
                          unsigned shared) {
  uint64_t blocks = (uint64_t)grid[0] * grid[1] * grid[2];
  uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
  uint64_t warps = (threads + 31) / 32;
  uint64_t resident = FAKE_THREADS_PER_SM / (warps * 32);
  if (resident > FAKE_BLOCKS_PER_SM) resident = FAKE_BLOCKS_PER_SM;
  if (shared > 0 && FAKE_SHARED_PER_SM / shared < resident) resident = FAKE_SHARED_PER_SM / shared;
  if (resident < 1) resident = 1;
  int sms = fake_env_int("FAKE_CUDA_SMS", 132);
  uint64_t slots = resident * (uint64_t)(sms > 0 ? sms : 1);
  uint64_t waves = (blocks + slots - 1) / slots;
  return 0.002 + (double)waves * 0.001 * (1.0 + 4.0 / (double)warps) +
         (double)(fake_hash(name) % 101) * 1e-5;
}

static void fake_log_launch(const char *what, const char *name, const unsigned grid[3],
                            const unsigned block[3], unsigned shared) {
  const char *path = getenv("FAKE_CUDA_LOG");
  if (path == NULL || path[0] == '\0') return;
  FILE *f = fopen(path, "a");
  if (f == NULL) return;
  fprintf(f, "%s %s grid %u %u %u block %u %u %u shared %u\n", what, name, grid[0], grid[1],
          grid[2], block[0], block[1], block[2], shared);
  fclose(f);
}

#ifndef FAKE_CUDA_WITHOUT_LAUNCH /* a driver that lacks an entry point */
static uint64_t fake_param_u64(const fake_cuda_launch *l, int i) {
  uint64_t v = 0;
  memcpy(&v, l->params[i], l->param_bytes[i] < 8 ? l->param_bytes[i] : 8);
  return v;
}

/* c[i] = a[i] + b[i] for the threads of a one-dimensional grid below n. */
static CUresult fake_vector_add(const fake_cuda_launch *l) {
  uint32_t n = (uint32_t)fake_param_u64(l, 3);
  uint64_t threads = (uint64_t)l->grid[0] * l->block[0];
  uint64_t count = threads < n ? threads : n;
  float *a = (float *)fake_device_memory(fake_param_u64(l, 0), count * 4);
  float *b = (float *)fake_device_memory(fake_param_u64(l, 1), count * 4);
  float *c = (float *)fake_device_memory(fake_param_u64(l, 2), count * 4);
  if (a == NULL || b == NULL || c == NULL) return CUDA_ERROR_ILLEGAL_ADDRESS;
  for (uint64_t i = 0; i < count; i++) c[i] = a[i] + b[i];
  return CUDA_SUCCESS;
}

/* One block reverses data[0, n) through 4*n bytes of dynamic shared memory. */
static CUresult fake_reverse_shared(const fake_cuda_launch *l) {
  uint32_t n = (uint32_t)fake_param_u64(l, 1);
  uint32_t *data = (uint32_t *)fake_device_memory(fake_param_u64(l, 0), (size_t)n * 4);
  if (data == NULL || (uint64_t)n * 4 > l->shared_bytes) return CUDA_ERROR_ILLEGAL_ADDRESS;
  for (uint32_t i = 0; i < n / 2; i++) {
    uint32_t t = data[i];
    data[i] = data[n - 1 - i];
    data[n - 1 - i] = t;
  }
  return CUDA_SUCCESS;
}

/* The allocation's bytes from address on, 0 when not allocated. */
static size_t fake_bytes_from(CUdeviceptr address) {
  pthread_mutex_lock(&fake_lock);
  fake_allocation *a = fake_find(address, 0);
  size_t bytes = a != NULL ? a->bytes - (size_t)(address - (uintptr_t)a->data) : 0;
  pthread_mutex_unlock(&fake_lock);
  return bytes;
}

/* mfx's q16_dequantize: Y = Q 2^-16 over the output allocation. */
static CUresult fake_q16_dequantize(const fake_cuda_launch *l) {
  size_t bytes = fake_bytes_from(fake_param_u64(l, 1));
  int32_t *q = (int32_t *)fake_device_memory(fake_param_u64(l, 0), bytes);
  float *y = (float *)fake_device_memory(fake_param_u64(l, 1), bytes);
  if (q == NULL || y == NULL || bytes == 0) return CUDA_ERROR_ILLEGAL_ADDRESS;
  for (size_t i = 0; i < bytes / 4; i++) y[i] = (float)q[i] * (1.0f / 65536.0f);
  return CUDA_SUCCESS;
}

static CUresult fake_run(const fake_cuda_launch *l) {
  const char *as = getenv("FAKE_CUDA_RUN_AS"), *name = as != NULL && as[0] ? as : l->name;
  if (strncmp(name, "q16_dequantize", 14) == 0 && l->param_count == 2)
    return fake_q16_dequantize(l);
  if (strcmp(name, "vector_add_f32") == 0 && l->param_count == 4) return fake_vector_add(l);
  if (strcmp(name, "reverse_shared_u32") == 0 && l->param_count == 2)
    return fake_reverse_shared(l);
  if (strcmp(name, "fake_fault") == 0) return CUDA_ERROR_ILLEGAL_ADDRESS;
  return CUDA_SUCCESS;
}

static CUresult fake_check_launch(CUfunction f, const unsigned grid[3], const unsigned block[3],
                                  unsigned shared, void **params) {
  uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
  if (f == NULL) return CUDA_ERROR_INVALID_HANDLE;
  for (int i = 0; i < 3; i++)
    if (grid[i] == 0 || block[i] == 0) return CUDA_ERROR_INVALID_VALUE;
  if (threads > (uint64_t)FAKE_MAX_THREADS || shared > (unsigned)f->max_dynamic_shared)
    return CUDA_ERROR_INVALID_VALUE;
  if (f->param_count > 0 && params == NULL) return CUDA_ERROR_INVALID_VALUE;
  return CUDA_SUCCESS;
}

/* Records l into the open capture of stream: it runs at each replay. */
static CUresult fake_capture(CUstream stream, const fake_cuda_launch *l) {
  struct fake_stream *s = stream;
  fake_node *n = malloc(sizeof *n);
  if (n == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  n->launch = *l;
  n->next = NULL;
  *s->tail = n;
  s->tail = &n->next;
  pthread_mutex_lock(&fake_lock);
  fake_counts.captured_launches++;
  fake_count_op(l->stream_id);
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

/* A captured launch run again by cuGraphLaunch on the stream `stream_id`:
 * logged and timed as a launch, counted as a graph kernel. */
static CUresult fake_replay(const fake_cuda_launch *captured, int stream_id) {
  fake_cuda_launch l = *captured;
  l.stream_id = stream_id;
  l.stream_is_default = stream_id == 0;
  fake_log_launch("launch", l.name, l.grid, l.block, l.shared_bytes);
  CUresult r = fake_run(&l);
  double ms = fake_cuda_model_ms(l.name, l.grid, l.block, l.shared_bytes);
  pthread_mutex_lock(&fake_lock);
  fake_clock_ms += ms;
  fake_last = l;
  fake_counts.graph_kernels++;
  if (r != CUDA_SUCCESS) fake_pending = r;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shared, CUstream stream, void **params,
                        void **extra) {
  const unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
  fake_cuda_launch l = {.shared_bytes = shared, .stream_is_default = stream == NULL,
                        .stream_id = fake_stream_id(stream)};
  CUresult r = fake_need_context();
  if (r == CUDA_SUCCESS) r = fake_check_launch(f, grid, block, shared, params);
  if (r == CUDA_SUCCESS && extra != NULL) r = CUDA_ERROR_INVALID_VALUE;
  int capture = r == CUDA_SUCCESS && fake_capturing(stream);
  if (!capture)
    fake_log_launch(r == CUDA_SUCCESS ? "launch" : "refused", f != NULL ? f->name : "?", grid,
                    block, shared);
  if (r != CUDA_SUCCESS) return r;
  snprintf(l.name, sizeof l.name, "%s", f->name);
  memcpy(l.grid, grid, sizeof grid);
  memcpy(l.block, block, sizeof block);
  l.param_count = f->param_count;
  for (int i = 0; i < f->param_count; i++) {
    l.param_bytes[i] = f->param_bytes[i];
    memcpy(l.params[i], params[i], f->param_bytes[i]);
  }
  if (capture) return fake_capture(stream, &l);
  int faulting = fake_env_int("FAKE_CUDA_FAULT_THREADS", -1);
  int sticky = faulting > 0 && (uint64_t)faulting == (uint64_t)bx * by * bz;
  r = sticky ? CUDA_ERROR_ILLEGAL_ADDRESS : fake_run(&l);
  double ms = fake_cuda_model_ms(l.name, grid, block, shared);
  pthread_mutex_lock(&fake_lock);
  fake_clock_ms += ms;
  fake_last = l;
  fake_counts.launches++;
  fake_count_op(l.stream_id);
  if (r != CUDA_SUCCESS) fake_pending = r;
  if (sticky) fake_pending_sticky = 1;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}
#else
/* No cuLaunchKernel: nothing was ever captured. */
static CUresult fake_replay(const fake_cuda_launch *captured, int stream_id) {
  (void)captured;
  (void)stream_id;
  return CUDA_SUCCESS;
}
#endif

/* ---- events ---------------------------------------------------------------------------------- */

CUresult cuEventCreate(CUevent *event, unsigned int flags) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (event == NULL || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  *event = calloc(1, sizeof **event);
  if (*event == NULL) return CUDA_ERROR_OUT_OF_MEMORY;
  pthread_mutex_lock(&fake_lock);
  fake_counts.events++;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent event, CUstream stream) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  (void)stream; /* any stream: the fake's clock is one for the device */
  if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&fake_lock);
  event->ms = fake_clock_ms;
  event->recorded = 1;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

CUresult cuEventSynchronize(CUevent event) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  return event != NULL && event->recorded ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* Only the pre-12.8 name: the runtime falls back to it from
 * cuEventElapsedTime_v2, as on older drivers. */
CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (ms == NULL || start == NULL || end == NULL || !start->recorded || !end->recorded)
    return CUDA_ERROR_INVALID_HANDLE;
  *ms = (float)(end->ms - start->ms);
  return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent event) {
  CUresult r = fake_need_context();
  if (r != CUDA_SUCCESS) return r;
  if (event == NULL) return CUDA_ERROR_INVALID_HANDLE;
  free(event);
  pthread_mutex_lock(&fake_lock);
  fake_counts.events--;
  pthread_mutex_unlock(&fake_lock);
  return CUDA_SUCCESS;
}

/* ---- test hooks ------------------------------------------------------------------------------ */

void fake_cuda_last_launch(fake_cuda_launch *out) {
  pthread_mutex_lock(&fake_lock);
  *out = fake_last;
  pthread_mutex_unlock(&fake_lock);
}

void fake_cuda_counts_get(fake_cuda_counts *out) {
  pthread_mutex_lock(&fake_lock);
  *out = fake_counts;
  pthread_mutex_unlock(&fake_lock);
}
