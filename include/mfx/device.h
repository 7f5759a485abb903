/* mfx devices: one interface over the CPU and CUDA GPUs. Buffers, copies,
 * synchronization and event timers on every device; modules (PTX or cubin),
 * function lookup and launches on CUDA. CUDA is reached through the Driver
 * API in libcuda.so.1, opened at run time (MFX_CUDA_LIBRARY overrides the
 * path): the runtime never links against CUDA, and a machine without a GPU
 * gets a clear error from mfx_device_open("cuda", ...), not a link failure.
 *
 * A device may be used from several threads at once; every call makes the
 * device's context current on the calling thread. CPU kernels are launched
 * by the artifact loader, not through mfx_function_launch.
 *
 * (Device buffers are mfx_device_buffer: mfx_buffer is the compiler's IR
 * buffer, and mfx_launch the tuner's launch record.) */
#ifndef MFX_DEVICE_H
#define MFX_DEVICE_H

#include "mfx/runtime.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mfx_device mfx_device;
typedef struct mfx_event mfx_event;
typedef struct mfx_module mfx_module;
typedef struct mfx_function mfx_function;

typedef enum { MFX_DEVICE_CPU = 0, MFX_DEVICE_CUDA } mfx_device_kind;

typedef struct {
  mfx_device_kind kind;
  int ordinal;               /* N of "cuda:N"; 0 for the CPU */
  char name[128];            /* "NVIDIA H100 80GB HBM3", the CPU model */
  char arch[32];             /* "sm_90", "x86_64" */
  int compute_major;         /* compute capability; 0 on the CPU */
  int compute_minor;
  int multiprocessors;       /* SMs; online CPUs on the CPU */
  int max_threads_per_block; /* 0 on the CPU */
  size_t shared_per_block;       /* shared memory a block gets by default */
  size_t shared_per_block_optin; /* and at most, opted in (> 48 KiB) */
  uint64_t total_memory;     /* bytes */
  int driver_version;        /* cuDriverGetVersion: 12040 is 12.4; 0 on the CPU */
  /* Per-SM resources, for occupancy estimates (0 on the CPU). */
  int max_threads_per_sm;
  int max_blocks_per_sm;
  int registers_per_block;
  int registers_per_sm;
  size_t shared_per_sm;
  size_t l2_bytes;           /* L2 cache size */
} mfx_device_info;

/* The value of the host's first /proc/cpuinfo line named `key` ("model
 * name", "flags"), blanks around it dropped, into buf (truncated to size).
 * Returns 1 when found and not empty, else 0 (buf then untouched). */
int mfx_cpuinfo_field(const char *key, char *buf, size_t size);

/* spec: "cpu", "cuda" (= "cuda:0") or "cuda:N". */
mfx_status mfx_device_open(const char *spec, mfx_device **out);
void mfx_device_close(mfx_device *dev);
/* How many devices of `kind` ("cpu" or "cuda") this machine has; fails with
 * the reason (no driver, ...) when CUDA cannot be asked. */
mfx_status mfx_device_count(const char *kind, int *count);

const char *mfx_device_name(const mfx_device *dev);        /* "cpu", "cuda:0" */
const char *mfx_device_description(const mfx_device *dev); /* one line, for logs and keys */
const mfx_device_info *mfx_device_get_info(const mfx_device *dev);
/* Waits until all work queued on the device has finished; reports errors of
 * earlier launches (an illegal address, ...). */
mfx_status mfx_device_synchronize(mfx_device *dev);
/* Gives this handle a queue of its own, best before any work is queued on
 * it: on CUDA a non-blocking stream (cuStreamCreate), destroyed by
 * mfx_device_close. Every later write, copy, zero, launch and event record
 * of the handle is queued on it (the Async copies), a read waits for that
 * stream only, and mfx_device_synchronize waits for that stream only. Work
 * queued through other handles of the same GPU is not ordered with it:
 * synchronize those before this handle reads what they wrote. On the CPU
 * everything runs at once and this does nothing. Calling it again does
 * nothing. */
mfx_status mfx_device_use_own_stream(mfx_device *dev);

/* CUDA graphs of a handle's own stream: between capture_begin and
 * capture_end the handle's launches are recorded, not run (relaxed mode:
 * buffers may be allocated meanwhile; no read or synchronize); the graph
 * replays them, with the same arguments, at each mfx_graph_launch, queued
 * on the stream. capture_end with out NULL drops what was captured (after
 * an error). The CPU has no graphs: capture_begin fails there. */
typedef struct mfx_graph mfx_graph;
mfx_status mfx_device_capture_begin(mfx_device *dev);
mfx_status mfx_device_capture_end(mfx_device *dev, mfx_graph **out);
mfx_status mfx_graph_launch(mfx_graph *g);
void mfx_graph_free(mfx_graph *g); /* before its device is closed */

/* ---- buffers ------------------------------------------------------------- */

/* Device memory. `address` is what a kernel receives: pass &buffer.address
 * as the kernel argument. A zero-byte buffer has address 0. CPU buffers are
 * 64-byte aligned host memory. */
typedef struct {
  mfx_device *device;
  uint64_t address;
  size_t bytes;
} mfx_device_buffer;

mfx_status mfx_device_buffer_alloc(mfx_device *dev, size_t bytes, mfx_device_buffer *out);
/* Leaves a zero-byte buffer; freeing it again does nothing. */
void mfx_device_buffer_free(mfx_device_buffer *buf);
/* Host to device: bytes at `offset` of dst. */
mfx_status mfx_device_buffer_write(mfx_device_buffer *dst, size_t offset, const void *src,
                                   size_t bytes);
/* Device to host: bytes at `offset` of src; waits for earlier launches. */
mfx_status mfx_device_buffer_read(const mfx_device_buffer *src, size_t offset, void *dst,
                                  size_t bytes);
/* On the device, by address (a buffer's, at an offset, or one an
 * application allocated itself): bytes from src to dst, and bytes of zeros
 * at dst. Queued after earlier launches. */
mfx_status mfx_device_copy(mfx_device *dev, uint64_t dst, uint64_t src, size_t bytes);
mfx_status mfx_device_zero(mfx_device *dev, uint64_t dst, size_t bytes);
/* The host pointer of a CPU buffer; NULL for other devices. */
void *mfx_device_buffer_host(const mfx_device_buffer *buf);

/* ---- timers -------------------------------------------------------------- */

/* Events mark points in the device's queue: on CUDA they are CUDA events
 * recorded on the stream, on the CPU host clock readings. */
mfx_status mfx_event_create(mfx_device *dev, mfx_event **out);
void mfx_event_destroy(mfx_event *ev);
mfx_status mfx_event_record(mfx_event *ev);
/* Seconds from start to end; waits for end to complete. Both events must be
 * recorded and belong to the same device. */
mfx_status mfx_event_elapsed(const mfx_event *start, const mfx_event *end, double *seconds);

/* ---- modules and launches (CUDA) ------------------------------------------ */

/* image: PTX text (NUL-terminated or not: `bytes` counts the text) or a
 * cubin / fatbin (ELF or fatbin magic). A PTX that the driver refuses fails
 * with the JIT error log in the message. */
mfx_status mfx_module_load(mfx_device *dev, const void *image, size_t bytes, mfx_module **out);
void mfx_module_free(mfx_module *mod); /* frees its functions too */
/* The JIT information log of the load (registers, spills); "" if none. */
const char *mfx_module_log(const mfx_module *mod);
/* The kernel `name` of the module; owned by the module. */
mfx_status mfx_module_function(mfx_module *mod, const char *name, mfx_function **out);

typedef struct {
  uint32_t grid[3];    /* blocks in x, y, z; each at least 1 */
  uint32_t block[3];   /* threads per block in x, y, z; each at least 1 */
  size_t shared_bytes; /* dynamic shared memory per block; over 48 KiB is opted in */
} mfx_launch_dims;

/* Queues a launch; args[i] points to the value of kernel parameter i (for a
 * buffer: &buffer.address). Errors of the kernel itself show at the next
 * synchronize, read or event wait. */
mfx_status mfx_function_launch(mfx_function *fn, const mfx_launch_dims *dims, void **args);

/* What the driver says a loaded function uses (CU_FUNC_ATTRIBUTE_*). */
typedef struct {
  int registers;             /* per thread (NUM_REGS) */
  int local_bytes;           /* per thread local memory: spills (LOCAL_SIZE_BYTES) */
  int static_shared_bytes;   /* per block (SHARED_SIZE_BYTES) */
  int max_threads_per_block; /* the most this function can be launched with */
} mfx_function_attributes;

mfx_status mfx_function_get_attributes(mfx_function *fn, mfx_function_attributes *out);

#ifdef __cplusplus
}
#endif
#endif
