/* Private: the CUDA backend of the device interface (runtime/cuda.c), and
 * the list of the Driver API entry points it resolves in libcuda.so.1.
 *
 * The runtime never links against libcuda: runtime/cuda.c opens it with
 * dlopen and looks each entry point up by the symbol the driver exports.
 * cuda.h maps most plain names to versioned ones (cuMemAlloc is
 * cuMemAlloc_v2); the list names the versioned symbol, so that the table
 * gets the same ABI as a program compiled against cuda.h. The function types
 * come from cuda.h's own declarations, so a wrong signature cannot compile.
 *
 * Without cuda.h (no CUDA toolkit at build time) the runtime still builds and
 * mfx_cuda_open reports "built without CUDA headers". */
#ifndef MFX_CUDA_DRIVER_H
#define MFX_CUDA_DRIVER_H

#include "mfx/device.h"

#if defined(__has_include)
#if __has_include(<cuda.h>)
#include <cuda.h>
#define MFX_CUDA_HEADERS 1
#endif
#endif
#ifndef MFX_CUDA_HEADERS
#define MFX_CUDA_HEADERS 0
#endif

#if MFX_CUDA_HEADERS
/* X(function, symbol, fallback): the table field `function` has the type of
 * cuda.h's declaration of `function` (cuda.h's macros may rename both the
 * same way) and is resolved from `symbol`, or from `fallback` when the
 * driver is older than `symbol` (NULL: none). cuEventElapsedTime_v2 is CUDA
 * 12.8; drivers before it export only cuEventElapsedTime, same signature. */
#define MFX_CUDA_ENTRY_POINTS(X)                                               \
  X(cuInit, "cuInit", NULL)                                                    \
  X(cuDriverGetVersion, "cuDriverGetVersion", NULL)                            \
  X(cuGetErrorName, "cuGetErrorName", NULL)                                    \
  X(cuGetErrorString, "cuGetErrorString", NULL)                                \
  X(cuDeviceGetCount, "cuDeviceGetCount", NULL)                                \
  X(cuDeviceGet, "cuDeviceGet", NULL)                                          \
  X(cuDeviceGetName, "cuDeviceGetName", NULL)                                  \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute", NULL)                        \
  X(cuDeviceTotalMem_v2, "cuDeviceTotalMem_v2", NULL)                          \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", NULL)                \
  X(cuDevicePrimaryCtxRelease_v2, "cuDevicePrimaryCtxRelease_v2", NULL)        \
  X(cuCtxSetCurrent, "cuCtxSetCurrent", NULL)                                  \
  X(cuCtxSynchronize, "cuCtxSynchronize", NULL)                                \
  X(cuMemAlloc_v2, "cuMemAlloc_v2", NULL)                                      \
  X(cuMemFree_v2, "cuMemFree_v2", NULL)                                        \
  X(cuMemcpyHtoD_v2, "cuMemcpyHtoD_v2", NULL)                                  \
  X(cuMemcpyDtoH_v2, "cuMemcpyDtoH_v2", NULL)                                  \
  X(cuMemcpyDtoD_v2, "cuMemcpyDtoD_v2", NULL)                                  \
  X(cuMemsetD8_v2, "cuMemsetD8_v2", NULL)                                      \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx", NULL)                            \
  X(cuModuleUnload, "cuModuleUnload", NULL)                                    \
  X(cuModuleGetFunction, "cuModuleGetFunction", NULL)                          \
  X(cuFuncGetAttribute, "cuFuncGetAttribute", NULL)                            \
  X(cuFuncSetAttribute, "cuFuncSetAttribute", NULL)                            \
  X(cuLaunchKernel, "cuLaunchKernel", NULL)                                    \
  X(cuEventCreate, "cuEventCreate", NULL)                                      \
  X(cuEventRecord, "cuEventRecord", NULL)                                      \
  X(cuEventSynchronize, "cuEventSynchronize", NULL)                            \
  X(cuEventElapsedTime, "cuEventElapsedTime_v2", "cuEventElapsedTime")         \
  X(cuEventDestroy_v2, "cuEventDestroy_v2", NULL)                              \
  X(cuStreamCreate, "cuStreamCreate", NULL)                                    \
  X(cuStreamDestroy_v2, "cuStreamDestroy_v2", NULL)                            \
  X(cuStreamSynchronize, "cuStreamSynchronize", NULL)                          \
  X(cuMemcpyHtoDAsync_v2, "cuMemcpyHtoDAsync_v2", NULL)                        \
  X(cuMemcpyDtoHAsync_v2, "cuMemcpyDtoHAsync_v2", NULL)                        \
  X(cuMemcpyDtoDAsync_v2, "cuMemcpyDtoDAsync_v2", NULL)                        \
  X(cuMemsetD8Async, "cuMemsetD8Async", NULL)                                  \
  X(cuStreamBeginCapture_v2, "cuStreamBeginCapture_v2", NULL)                  \
  X(cuStreamEndCapture, "cuStreamEndCapture", NULL)                            \
  X(cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags", NULL)          \
  X(cuGraphLaunch, "cuGraphLaunch", NULL)                                      \
  X(cuGraphExecDestroy, "cuGraphExecDestroy", NULL)                            \
  X(cuGraphDestroy, "cuGraphDestroy", NULL)
#endif

/* ---- the CUDA backend, for runtime/device.c's table ------------------------
 * `state` is what mfx_cuda_open made; device addresses are CUdeviceptr. */

mfx_status mfx_cuda_count(int *count);
/* Opens CUDA device `ordinal` (its primary context) and fills `info`. */
mfx_status mfx_cuda_open(int ordinal, mfx_device_info *info, void **state);

#if MFX_CUDA_HEADERS
void mfx_cuda_close(void *state);
mfx_status mfx_cuda_alloc(void *state, size_t bytes, uint64_t *address);
void mfx_cuda_free(void *state, uint64_t address);
mfx_status mfx_cuda_write(void *state, uint64_t dst, const void *src, size_t bytes);
mfx_status mfx_cuda_read(void *state, void *dst, uint64_t src, size_t bytes);
mfx_status mfx_cuda_copy(void *state, uint64_t dst, uint64_t src, size_t bytes);
mfx_status mfx_cuda_zero(void *state, uint64_t dst, size_t bytes);
mfx_status mfx_cuda_synchronize(void *state);
/* Gives the handle a non-blocking stream of its own (see
 * mfx_device_use_own_stream); a second call does nothing. */
mfx_status mfx_cuda_own_stream(void *state);
/* Graphs of the handle's own stream (see mfx_device_capture_begin). */
mfx_status mfx_cuda_capture_begin(void *state);
mfx_status mfx_cuda_capture_end(void *state, void **graph);
mfx_status mfx_cuda_graph_launch(void *state, void *graph);
void mfx_cuda_graph_free(void *state, void *graph);
mfx_status mfx_cuda_event_create(void *state, void **event);
void mfx_cuda_event_destroy(void *state, void *event);
mfx_status mfx_cuda_event_record(void *state, void *event);
mfx_status mfx_cuda_event_elapsed(void *state, void *start, void *end, double *seconds);
/* `log` (log_cap bytes) receives the JIT information log. */
mfx_status mfx_cuda_module_load(void *state, const void *image, size_t bytes, void **module,
                                char *log, size_t log_cap);
void mfx_cuda_module_unload(void *state, void *module);
mfx_status mfx_cuda_function_get(void *state, void *module, const char *name, void **function);
mfx_status mfx_cuda_launch(void *state, void *function, const char *name,
                           const mfx_launch_dims *dims, void **args);
mfx_status mfx_cuda_function_attributes(void *state, void *function,
                                        mfx_function_attributes *out);
#endif

#endif
