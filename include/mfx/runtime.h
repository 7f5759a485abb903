/* mfx runtime: the part applications embed. Status codes and messages, data
 * types, the CPU thread pool and the kernel calling convention, timers and
 * NumPy .npy files. Depends on libc and pthreads only: never on LLVM. */
#ifndef MFX_RUNTIME_H
#define MFX_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */

typedef enum {
  MFX_OK = 0,
  MFX_ERR_INVALID,   /* bad argument, malformed input */
  MFX_ERR_SCHEDULE,  /* impossible or invalid schedule */
  MFX_ERR_IO,        /* file could not be read or written */
  MFX_ERR_FORMAT,    /* file read but its contents are wrong */
  MFX_ERR_NOMEM,
  MFX_ERR_NOT_FOUND,
  MFX_ERR_CODEGEN,   /* LLVM refused something */
  MFX_ERR_DEVICE,    /* no driver, no device, launch failed */
  MFX_ERR_MISMATCH,  /* result differs from the reference */
} mfx_status;

/* Return the status of `expr` from the calling function when it is not
 * MFX_OK (the one early-return helper of every room). */
#define MFX_TRY(expr)                          \
  do {                                         \
    mfx_status mfx_try_ = (expr);              \
    if (mfx_try_ != MFX_OK) return mfx_try_;   \
  } while (0)

/* The message of the last failure on this thread ("" if none). */
const char *mfx_last_error(void);
/* Record a message for this thread and return `status` (printf format). */
mfx_status mfx_fail(mfx_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "context: " and return `status`. */
mfx_status mfx_fail_context(mfx_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mfx_clear_error(void);
const char *mfx_status_name(mfx_status status);

/* ---- data types -------------------------------------------------------- */

typedef enum {
  MFX_BOOL = 0, /* internal: results of comparisons */
  MFX_I8,
  MFX_I16,
  MFX_I32,
  MFX_I64,
  MFX_U8,
  MFX_U32,
  MFX_U64,
  MFX_F32,
  MFX_DTYPE_COUNT
} mfx_dtype;

/* Enum names, one lookup each way: names points at the name of entry 0 of a
 * table of n entries `stride` bytes apart (a plain array of names: stride
 * sizeof(char *)); entry v names the value v. mfx_name_of: the name of
 * value, fallback when out of range or unnamed; mfx_name_index: the value
 * named name, -1 when none is. */
const char *mfx_name_of(const void *names, size_t stride, int n, int value,
                        const char *fallback);
int mfx_name_index(const void *names, size_t stride, int n, const char *name);

const char *mfx_dtype_name(mfx_dtype t);          /* "f32" */
int mfx_dtype_from_name(const char *name, mfx_dtype *out); /* 0 on success */
size_t mfx_dtype_size(mfx_dtype t);               /* bytes; bool is 1 */
int mfx_dtype_is_float(mfx_dtype t);
int mfx_dtype_is_signed(mfx_dtype t);             /* signed integers */

#define MFX_MAX_DIMS 8

/* A dense row-major host array. */
typedef struct {
  mfx_dtype dtype;
  int ndim;
  int64_t shape[MFX_MAX_DIMS];
  void *data; /* owned when created by mfx_array_create / mfx_npy_load */
} mfx_array;

int64_t mfx_array_numel(const mfx_array *a);
/* The most bytes one array may take (the machine's physical memory):
 * mfx_array_create refuses more with a message that says both sizes. */
size_t mfx_array_max_bytes(void);
mfx_status mfx_array_create(mfx_array *a, mfx_dtype t, int ndim, const int64_t *shape);
void mfx_array_free(mfx_array *a);

/* ---- NumPy .npy files (format versions 1.0-3.0, little-endian, C order) */

mfx_status mfx_npy_load(const char *path, mfx_array *out);
mfx_status mfx_npy_save(const char *path, const mfx_array *a);

/* ---- CPU thread pool and the kernel calling convention ----------------- */

typedef struct mfx_pool mfx_pool;

/* threads <= 0: one per online CPU. */
mfx_status mfx_pool_create(int threads, mfx_pool **out);
void mfx_pool_destroy(mfx_pool *pool);
int mfx_pool_threads(const mfx_pool *pool);

/* A parallel loop body: runs iterations [begin, end). */
typedef void (*mfx_parallel_body)(void *closure, int64_t begin, int64_t end);

/* Runs body over [0, n) split into contiguous chunks over the pool's threads
 * (the caller's thread takes part). Returns 0. pool may be NULL: serial. */
int mfx_pool_parallel_for(mfx_pool *pool, mfx_parallel_body body, void *closure,
                          int64_t n);

/* What every compiled CPU kernel receives besides its arguments. The field
 * order is ABI: compiled code reads it by offset. */
typedef struct mfx_kernel_env {
  void *pool;
  int (*parallel_for)(void *pool, mfx_parallel_body body, void *closure, int64_t n);
  void *(*alloc)(size_t bytes); /* 64-byte aligned workspace, NULL on failure */
  void (*free)(void *ptr);
} mfx_kernel_env;

/* Fill an env that runs on `pool` (NULL: serial). */
void mfx_kernel_env_init(mfx_kernel_env *env, mfx_pool *pool);

/* Every compiled CPU kernel: args[i] points to argument i's data.
 * Returns 0, or non-zero when a workspace allocation failed. */
typedef int32_t (*mfx_cpu_kernel_fn)(void **args, const mfx_kernel_env *env);

/* ---- files: bounded reads, atomic writes (runtime/file.c) ----------------
 * Every file mfx reads or writes goes through these. A read takes a regular
 * file only (following symlinks; a device, FIFO or directory is refused),
 * of at most `cap` bytes; a write goes to a temporary file beside `path`
 * that replaces it only once complete, and never replaces anything but a
 * regular file. `what` ("artifact", "latency table") names the file in
 * messages. A missing file reads as MFX_ERR_NOT_FOUND. */

#define MFX_FILE_CAP_TEXT ((size_t)64 << 20)     /* kernel text, JSON tables, db imports */
#define MFX_FILE_CAP_ARTIFACT ((size_t)1 << 30)  /* .mfxa */
#define MFX_FILE_CAP_NPY ((size_t)1 << 40)       /* .npy: its header bounds what is read */

/* The whole file into *data (malloc'd, a NUL after the last byte). */
mfx_status mfx_file_read(const char *path, const char *what, size_t cap, char **data,
                         size_t *size);
/* The file opened for reading, checked as above; *size its size. */
mfx_status mfx_file_open_read(const char *path, const char *what, size_t cap, FILE **f,
                              size_t *size);

typedef struct {
  FILE *f;    /* write here between begin and commit */
  char *path; /* internal */
  char *temp;
  char what[48];
} mfx_file_writer;

mfx_status mfx_file_write_begin(mfx_file_writer *w, const char *path, const char *what);
/* Flush, close and rename into place; on failure the target is untouched. */
mfx_status mfx_file_write_commit(mfx_file_writer *w);
void mfx_file_write_abort(mfx_file_writer *w);
/* One buffer, atomically. */
mfx_status mfx_file_write(const char *path, const char *what, const void *data, size_t size);

/* ---- time ---------------------------------------------------------------- */

double mfx_now_seconds(void); /* monotonic */

/* The one timing loop. fn runs once; it may set *seconds (set to -1 before
 * each timed run) to its own time (a device's), else the host clock's time
 * of the call counts. */
typedef mfx_status (*mfx_timed_fn)(void *user, double *seconds);
typedef struct {
  int warmup;         /* untimed runs first */
  int min_runs, max_runs;
  double min_seconds; /* keep running past min_runs until the runs sum to this */
} mfx_timing;
/* The runs' times in samples (room for max_runs), in order; *runs how many;
 * *total (may be NULL) their sum. Stops at fn's first failure, returning it. */
mfx_status mfx_time_runs(mfx_timed_fn fn, void *user, const mfx_timing *t, double *samples,
                         int *runs, double *total);
/* The median of the runs (the mean of the middle two for an even count). */
mfx_status mfx_time_median(mfx_timed_fn fn, void *user, const mfx_timing *t, double *median_s,
                           int *runs);
/* The median of n values (sorts them); 0 for none. */
double mfx_median(double *values, int n);

#ifdef __cplusplus
}
#endif
#endif
