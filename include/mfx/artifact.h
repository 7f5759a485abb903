/* mfx artifacts: kernels compiled ahead of time, in one self-describing
 * file (docs/artifact.md describes the format), and the runtime that loads
 * them onto a device and runs them. An application that only runs artifacts
 * links the runtime (libmfxrt) and never LLVM.
 *
 *   mfx_artifact_kernel      what one kernel is: op, dims, arguments, target,
 *                            schedule configuration, launches and code
 *   mfx_artifact_encode/decode   the container format (runtime/artifact.c)
 *   mfx_artifact_load/run/time/free  a loaded artifact (runtime/module.c)
 *   mfx_artifact_build       compile a schedule into a kernel (compiler
 *                            library, compiler/artifact.c; needs LLVM)
 *
 * Status codes and messages follow mfx/runtime.h. Two loaded artifacts are
 * independent; one loaded artifact may be shared by threads (its runs are
 * serialized). */
#ifndef MFX_ARTIFACT_H
#define MFX_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MFX_ARTIFACT_FORMAT_VERSION 1
#define MFX_ARTIFACT_MAX_KERNELS 256
#define MFX_ARTIFACT_MAX_ARGS 16
#define MFX_ARTIFACT_MAX_LAUNCHES 16
#define MFX_ARTIFACT_NAME_BYTES 64     /* kernel, op, argument names, with the NUL */
#define MFX_ARTIFACT_DIM_NAME_BYTES 16
#define MFX_ARTIFACT_LAUNCH_NAME_BYTES 128
#define MFX_ARTIFACT_CONFIG_BYTES 1024 /* schedule configuration, JSON text */
#define MFX_ARTIFACT_FEATURES_BYTES 256
#define MFX_ARTIFACT_MANIFEST_MAX_BYTES (1 << 20) /* the file's manifest, JSON text */

typedef enum {
  MFX_ARG_INPUT = 1,
  MFX_ARG_OUTPUT = 2,
  MFX_ARG_WORKSPACE = 3, /* GPU scratch the runtime allocates once per load */
} mfx_arg_role;

/* One argument of a kernel. Arguments come in order: inputs, outputs, then
 * workspace buffers. */
typedef struct {
  char name[MFX_ARTIFACT_NAME_BYTES];
  mfx_dtype dtype;
  mfx_arg_role role;
  int ndim;
  int64_t shape[MFX_MAX_DIMS];
} mfx_artifact_arg;

/* One GPU kernel launch. Its parameters are device pointers to the kernel
 * arguments named by index. */
typedef struct {
  char name[MFX_ARTIFACT_LAUNCH_NAME_BYTES]; /* the .entry in the PTX */
  uint32_t grid[3], block[3];
  uint64_t shared_static;  /* static shared memory per block (informational) */
  uint64_t shared_dynamic; /* dynamic shared memory passed at launch */
  int n_args;
  int args[MFX_ARTIFACT_MAX_ARGS]; /* indices into the kernel's args */
} mfx_artifact_launch;

typedef enum { MFX_GPU_IMAGE_NONE = 0, MFX_GPU_IMAGE_PTX, MFX_GPU_IMAGE_CUBIN } mfx_gpu_image_kind;

/* Everything about one kernel. Strings are NUL-terminated and printable.
 * Code pointers point into the bytes the kernel was decoded from, or into
 * memory a build allocated (see mfx_artifact_kernel_release). */
typedef struct {
  char name[MFX_ARTIFACT_NAME_BYTES];   /* unique in its artifact: [A-Za-z0-9_]+ */
  char op[MFX_ARTIFACT_NAME_BYTES];     /* "linear" */
  int n_dims;                           /* in the op's dim order */
  char dim_names[MFX_MAX_DIMS][MFX_ARTIFACT_DIM_NAME_BYTES];
  int64_t dims[MFX_MAX_DIMS];
  char target[32];                      /* "cpu" or "cuda:sm_80" */
  char machine[32];                     /* cpu: "x86_64", "aarch64"; cuda: "" */
  char cpu_features[MFX_ARTIFACT_FEATURES_BYTES]; /* cpu: "avx2,fma", checked at load */
  char compiler[MFX_ARTIFACT_NAME_BYTES];         /* "mfx 0.1.0, LLVM 14.0.6" */
  char symbol[MFX_ARTIFACT_NAME_BYTES]; /* cpu: entry point (mfx_cpu_kernel_fn) */
  char config[MFX_ARTIFACT_CONFIG_BYTES];         /* {"knob":value,...} */
  int n_args;
  mfx_artifact_arg args[MFX_ARTIFACT_MAX_ARGS];
  int n_launches;                       /* cuda: in order; cpu: 0 */
  mfx_artifact_launch launches[MFX_ARTIFACT_MAX_LAUNCHES];
  const void *host_so;                  /* cpu: an ELF shared object */
  size_t host_so_bytes;
  mfx_gpu_image_kind gpu_image_kind;    /* cuda: PTX text or a cubin */
  const void *gpu_image;
  size_t gpu_image_bytes;
} mfx_artifact_kernel;

/* How many arguments of k have `role`. */
int mfx_artifact_role_count(const mfx_artifact_kernel *k, mfx_arg_role role);
/* Index of the first argument of k with `role` (inputs 0, ...). */
int mfx_artifact_role_first(const mfx_artifact_kernel *k, mfx_arg_role role);
const char *mfx_arg_role_name(mfx_arg_role role); /* "input", "output", "workspace" */
/* Bytes of argument a (shape times dtype size). */
size_t mfx_artifact_arg_bytes(const mfx_artifact_arg *a);
/* Allocate one host array per argument of k with `role`, shaped as the
 * argument (arrays holds mfx_artifact_role_count(k, role) entries). */
mfx_status mfx_artifact_alloc_arrays(const mfx_artifact_kernel *k, mfx_arg_role role,
                                     mfx_array *arrays);

/* ---- what the runtime knows of each op (runtime/interface.c) --------------- */

/* One argument of an op: its shape named by the op's dims; for an input
 * whose values the kernel uses as indices or shift amounts, the values it
 * may hold: [min, max_dim) when max_dim names a dim, else [min, max]. */
typedef struct {
  const char *name;
  mfx_dtype dtype;
  int ndim;
  const char *shape[MFX_MAX_DIMS];
  int ranged; /* 0: any value */
  int64_t min;
  const char *max_dim;
  int64_t max;
} mfx_op_interface_tensor;

typedef struct {
  const char *op;
  int n_dims;
  const char *dims[MFX_MAX_DIMS];
  int n_inputs;
  mfx_op_interface_tensor inputs[4];
  int n_outputs;
  mfx_op_interface_tensor outputs[4];
} mfx_op_interface;

int mfx_op_interface_count(void);
const mfx_op_interface *mfx_op_interface_at(int i);
const mfx_op_interface *mfx_op_interface_find(const char *op); /* NULL: not an op it knows */
int mfx_op_interface_dim(const mfx_op_interface *f, const char *name); /* -1 if none */
void mfx_op_interface_shape(const mfx_op_interface *f, const mfx_op_interface_tensor *t,
                            const int64_t *dims, int64_t *shape);
/* Check the values of op's index and shift inputs (dims in the op's order);
 * MFX_OK for an op it does not know. `where` starts the message. Every
 * artifact run makes this check before a launch. */
mfx_status mfx_op_check_inputs(const char *op, const int64_t *dims, int n_inputs,
                               const mfx_array *inputs, const char *where);

/* ---- the container format (libc only) ------------------------------------- */

/* Check one kernel description as the decoder would (names, counts, shapes,
 * target, code present); `label` names the artifact in messages. */
mfx_status mfx_artifact_kernel_validate(const mfx_artifact_kernel *k, const char *label);
/* Encode kernels into one artifact image: *data is malloc'd, free() it. */
mfx_status mfx_artifact_encode(const mfx_artifact_kernel *kernels, int n_kernels, void **data,
                               size_t *size);
/* The same with a manifest: text (JSON, 1..MFX_ARTIFACT_MANIFEST_MAX_BYTES
 * bytes, no NUL) that describes the kernels as a whole, for instance an MoE
 * layer's (mfx/moe_layer.h); NULL: none (mfx_artifact_encode). */
mfx_status mfx_artifact_encode_manifest(const mfx_artifact_kernel *kernels, int n_kernels,
                                        const char *manifest, void **data, size_t *size);
/* The manifest of an image (checked as the decoder checks the file):
 * *text points into data (no NUL after it), *bytes long; NULL and 0 when
 * the artifact has none. */
mfx_status mfx_artifact_find_manifest(const void *data, size_t size, const char *label,
                                      const char **text, size_t *bytes);
/* Check magic, size, checksum, version and every field, and decode. A
 * kernel of an op the runtime knows (mfx_op_interface_find) must also agree
 * with it: dims by name and order, and every input and output's name,
 * dtype and shape under those dims (encoding checks the same). The
 * kernels (*kernels, malloc'd: free() it) point into data, which must
 * outlive them. `label` (a path) names the artifact in messages. */
mfx_status mfx_artifact_decode(const void *data, size_t size, const char *label,
                               mfx_artifact_kernel **kernels, int *n_kernels);
/* A whole file into memory (*data malloc'd), and an image onto disk
 * (written to a temporary file beside path, then renamed). */
mfx_status mfx_artifact_read_file(const char *path, void **data, size_t *size);
mfx_status mfx_artifact_write_file(const char *path, const void *data, size_t size);
/* MFX_OK when `path` is missing or a regular file (a writer may replace it);
 * MFX_ERR_IO naming `what` otherwise: a device node, FIFO, directory or
 * socket is never replaced by an atomic rename. Every writer calls it. */
mfx_status mfx_check_replaceable(const char *path, const char *what);

/* ---- loaded artifacts ------------------------------------------------------ */

typedef struct mfx_artifact mfx_artifact;

typedef struct {
  const char *device; /* "cpu", "cuda", "cuda:N"; NULL: as the kernels' target says */
  int threads;        /* CPU thread pool size; 0: one per online CPU */
} mfx_artifact_options;

/* Read, verify and load every kernel onto the device: CPU kernels from
 * their shared objects (in memory: no files are left behind), GPU kernels
 * through the CUDA driver. Each kernel's target must suit the device (cpu
 * on the CPU with the CPU features it was compiled for; cuda:sm_XX on a GPU
 * of at least that compute capability). options may be NULL. */
mfx_status mfx_artifact_load(const char *path, const mfx_artifact_options *options,
                             mfx_artifact **out);
/* The same from an image in memory (copied); label names it in messages. */
mfx_status mfx_artifact_load_memory(const void *data, size_t size, const char *label,
                                    const mfx_artifact_options *options, mfx_artifact **out);
void mfx_artifact_free(mfx_artifact *art);

/* Whether this CPU has `feature` (an x86 feature as LLVM and GCC name it:
 * "avx2", "fma", "avx512f", ...): 1 yes, 0 no, -1 a name this runtime cannot
 * check (a kernel that needs one does not load). */
int mfx_artifact_cpu_feature(const char *feature);
/* The machine this runtime was built for: "x86_64", "aarch64", ... */
const char *mfx_artifact_host_machine(void);

const char *mfx_artifact_label(const mfx_artifact *art);  /* the path or label */
const char *mfx_artifact_device(const mfx_artifact *art); /* "cpu", "cuda:0" */
int mfx_artifact_kernel_count(const mfx_artifact *art);
/* The artifact's manifest, NUL-terminated; NULL when it has none. */
const char *mfx_artifact_manifest(const mfx_artifact *art);
const mfx_artifact_kernel *mfx_artifact_kernel_at(const mfx_artifact *art, int index);
/* key: a kernel name, an op name (when one kernel has that op) or an index. */
mfx_status mfx_artifact_find_kernel(const mfx_artifact *art, const char *key, int *index);

/* Run kernel `index` on host arrays: n_inputs inputs and n_outputs outputs,
 * whose dtypes and shapes must equal the kernel's arguments. On a GPU the
 * inputs are copied to the device and the outputs back. */
mfx_status mfx_artifact_run(mfx_artifact *art, int index, int n_inputs, const mfx_array *inputs,
                            int n_outputs, mfx_array *outputs);
/* Copy inputs in, run once to warm up, run `repeat` more times and give
 * the median seconds of one run (CUDA events on a GPU, the monotonic clock
 * on the CPU), then copy outputs back. */
mfx_status mfx_artifact_time(mfx_artifact *art, int index, int n_inputs, const mfx_array *inputs,
                             int n_outputs, mfx_array *outputs, int repeat,
                             double *median_seconds);

/* ---- building (the mfx_compiler library; needs LLVM) ------------------------ */

struct mfx_schedule;

/* Compile schedule s for k->target ("cpu", or "cuda:sm_XX" for a schedule
 * bound to GPU blocks and threads). The caller fills name, op, dims,
 * dim_names, config and target; the build fills the arguments (the
 * schedule's inputs, outputs and, on a GPU, workspace), machine, features,
 * compiler, symbol or launches, and the code. The CPU code is a shared
 * object linked by the C compiler $CC (default: cc on PATH). */
mfx_status mfx_artifact_build(struct mfx_schedule *s, mfx_artifact_kernel *k);
/* Free the code a build allocated (not for decoded kernels). */
void mfx_artifact_kernel_release(mfx_artifact_kernel *k);

#ifdef __cplusplus
}
#endif
#endif
