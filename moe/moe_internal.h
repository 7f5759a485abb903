/* What the MoE layer's files share; not a public interface. The layer is
 * split along the line the runtime keeps: executing it (moe/, part of
 * libmfxrt, never LLVM) and building its kernels (ops/moe_*.c, the
 * compiler side). The executor runs every kernel through a provider, a
 * table of function pointers: the builder's providers compile kernels on
 * first use (ops/moe_jit.c on the host, ops/moe_gpu.c for a GPU target);
 * a layer loaded from an artifact finds them there (moe/load.c).
 *
 *   moe/layer.c      the spec, weights, creation and destruction
 *   moe/math.c       GELU, Q16.16, the DeepShift conversion, the buckets
 *   moe/experts.c    the workspace and the experts as chains of kernels
 *   moe/device.c     a GPU target's buffers, chains and whole pass
 *   moe/launch.c     an artifact kernel on the device, weights packed once
 *   moe/load.c       a layer from an artifact: manifest, provider, profile
 *   moe/forward.c    router, dispatch, experts, combine
 *   moe/reference.c  the same layer in plain C
 *
 * ops/ includes this header (it may use moe/); moe/ never includes ops. */
#ifndef MFX_MOE_INTERNAL_H
#define MFX_MOE_INTERNAL_H

#include "mfx/artifact.h"
#include "mfx/device.h"
#include "mfx/moe.h"

/* One expert's weights: the float ones (mult, and the source of a shift
 * expert's), and a shift expert's converted ones. NULL when unused. */
typedef struct {
  float *w1, *w2;          /* [H, D], [D, H] */
  int8_t *s1, *g1;         /* [H, D] */
  int8_t *s2, *g2;         /* [D, H] */
} moe_expert;

#define MOE_MAX_OP_DIMS 4

/* A kernel the layer needs: op (a static name: "linear") at dims, in the
 * op's order (unused ones 0). */
typedef struct {
  const char *op;
  int n_dims;
  int64_t dims[MOE_MAX_OP_DIMS];
} moe_want;

/* The most token buckets a layer loaded from an artifact lists. */
#define MOE_MAX_BUCKETS MFX_MOE_MAX_BUCKETS

/* Where a layer's kernels come from. Every function is given the provider
 * it belongs to; a provider embeds moe_provider first. */
typedef struct moe_provider moe_provider;
typedef struct {
  const char *kind; /* "jit", "gpu", "artifact" */
  /* Makes each wanted kernel ready: compiles those missing (a builder), or
   * checks that the artifact holds them. */
  mfx_status (*ensure)(moe_provider *p, const moe_want *want, int n);
  /* Runs w on host arrays: its inputs, then its outputs (NULL: the provider
   * runs on device buffers only). */
  mfx_status (*run_host)(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                         mfx_array *in, mfx_array *out);
  /* Runs w on device addresses: its inputs, then its outputs (NULL: host
   * only). */
  mfx_status (*run_device)(moe_provider *p, const moe_want *w, const mfx_kernel_env *env,
                           const uint64_t *addresses);
  int (*count)(const moe_provider *p); /* kernels ready */
  void (*destroy)(moe_provider *p);
} moe_provider_ops;

struct moe_provider {
  const moe_provider_ops *ops;
  mfx_moe *moe;
};

/* Every kernel of a pass: 6 per expert (its chain and, on a GPU, its
 * gather), the router, the combine. */
#define MOE_MAX_WANTS (6 * MFX_MOE_MAX_EXPERTS + 2)

/* The workspace buffers a forward pass uses, grown on demand. */
typedef enum {
  MOE_WS_XPAD,    /* f32 [bucket(T), D]: the router's input */
  MOE_WS_RLOGITS, /* f32 [bucket(T), E]: the router's output */
  MOE_WS_LOGITS,  /* f32 [T, E] when the trace does not take them */
  MOE_WS_CHOSEN,  /* i32 [T, k] */
  MOE_WS_GATES,   /* f32 [T, k] */
  MOE_WS_ROWS,    /* i64 [T, k]: the row of each assignment in YALL, -1 null */
  MOE_WS_LIST,    /* i64 [T, k]: tokens of each expert, expert after expert */
  MOE_WS_XB,      /* f32 [bucket(n), D]: one expert's gathered tokens */
  MOE_WS_HB,      /* f32 [bucket(n), H] */
  MOE_WS_XQ,      /* i32 [bucket(n), D] */
  MOE_WS_HQ,      /* i32 [bucket(n), H] */
  MOE_WS_YQ,      /* i32 [bucket(n), D] */
  MOE_WS_YALL,    /* f32 [sum of buckets, D]: every expert's outputs */
  MOE_WS_COUNT
} moe_ws_slot;

typedef struct moe_gpu moe_gpu;

struct mfx_moe {
  mfx_moe_spec spec;
  char target[32];   /* spec.target, copied: "cpu", "cuda:1", "emulate" */
  moe_gpu *gpu;      /* NULL: host kernels */
  moe_provider *provider; /* the kernels */
  int n_buckets;     /* 0: mfx_moe_bucket; else the only token counts kernels exist for */
  int64_t buckets[MOE_MAX_BUCKETS]; /* ascending */
  unsigned long weights_version; /* bumped by every change of a weight */
  double last_expert_s; /* mfx_moe_last_expert_seconds */
  float *router_w;   /* [E, D] */
  float *router_bias; /* [E] */
  int has_bias;
  moe_expert expert[MFX_MOE_MAX_EXPERTS];
  int compiled_since; /* kernels compiled since the counter was reset */
  void *ws[MOE_WS_COUNT];
  size_t ws_bytes[MOE_WS_COUNT];
};

/* 1 for the kinds with DeepShift weights (S, G): shift and shift16. */
static inline int moe_kind_shifts(mfx_expert_kind kind) {
  return kind == MFX_EXPERT_SHIFT || kind == MFX_EXPERT_SHIFT16;
}

/* ---- the arithmetic of moe_math.c, inline for the host loops ---- */

#include <math.h>

/* glibc's erff: the kernels' erf (compiler/codegen_math.c) is within 1.5 ulp
 * of it, not bit for bit; see ops/elementwise.c for the bounds that follow. */
static inline float moe_gelu(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* Round to nearest, ties to even, without a libm call: adding and
 * subtracting 1.5 * 2^52 leaves v rounded to an integer (|v| < 2^51). */
static inline int32_t moe_q16_from_float(float x) {
  if (isnan(x)) return 0;
  double v = (double)x * 65536.0; /* exact: a power-of-two scale */
  if (v >= 2147483647.0) return INT32_MAX;
  if (v <= -2147483648.0) return INT32_MIN;
  const double magic = 6755399441055744.0; /* IEEE arithmetic: never folded away */
  return (int32_t)((v + magic) - magic);
}

static inline float moe_q16_to_float(int32_t q) { return (float)((double)q / 65536.0); }

/* Q3.10, shift16's format: rint(x 2^10) (ties to even, x 2^10 exact in
 * double) within -8192..8191 (shift_linear16's X range); NaN gives 0. */
static inline int16_t moe_q10_from_float(float x) {
  if (isnan(x)) return 0;
  double v = (double)x * 1024.0;
  if (v >= 8191.0) return 8191;
  if (v <= -8192.0) return -8192;
  const double magic = 6755399441055744.0;
  return (int16_t)((v + magic) - magic);
}

/* ---- layer.c ---- */
mfx_status moe_check_expert(const mfx_moe *moe, int e, const char *where);
mfx_status moe_check_tokens(int64_t tokens, const char *where);
/* A layer of spec with zero weights and no provider yet (the caller sets
 * moe->provider); opens the GPU target's device (moe_gpu_open). */
mfx_status moe_layer_new(const mfx_moe_spec *spec, mfx_moe **out);
/* The token count a batch of n is padded to: mfx_moe_bucket(n), or for a
 * layer with a bucket list the smallest bucket >= n (0 when none is). */
int64_t moe_bucket(const mfx_moe *moe, int64_t n);
/* MFX_OK when a batch of n tokens fits the layer's buckets; else an error
 * that names the largest bucket. */
mfx_status moe_check_batch(const mfx_moe *moe, int64_t n, const char *where);

/* ---- experts.c ---- */
/* A workspace slot of at least `bytes` (contents undefined). */
mfx_status moe_ws_get(mfx_moe *moe, moe_ws_slot slot, size_t bytes, void **out);
void moe_ws_free(mfx_moe *moe);
/* Grows *array (of *cap elements of size bytes) to hold need; 0 when out of memory. */
int moe_grow(void **array, int *cap, int need, size_t size);
/* The router: rlogits [rows, E] = xpad [rows, D] W^T, rows a bucket. */
mfx_status moe_run_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits);
/* Expert e (not null) on xb [rows, D] (rows a bucket) into y [rows, D]. */
mfx_status moe_run_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                          int64_t rows, float *y);
/* The op of a (non-null) kind's chain: second 0 the first kernel (D -> H,
 * GELU fused), 1 the second (H -> D); NULL for null. */
const char *moe_expert_op(mfx_expert_kind kind, int second);
/* A shift expert's integer pipeline on the workspace: XQ -> YQ, rows a bucket. */
mfx_status moe_run_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows);
/* Appends op `name` at (m, n, k) (k 0: a 2-dim op at (m, n)) to
 * want[0..count) unless it is there; returns the new count. */
int moe_want_add(moe_want *want, int count, const char *name, int64_t m, int64_t n, int64_t k);
/* The same for an op of n_dims (<= MOE_MAX_OP_DIMS) dims. */
int moe_want_add_dims(moe_want *want, int count, const char *name, int n_dims,
                      const int64_t *dims);
int moe_want_equal(const moe_want *a, const moe_want *b);
/* "linear M=16,N=2,K=64" into buf. */
void moe_want_text(const moe_want *w, char *buf, size_t size);
/* The kernels of every expert e with rows[e] > 0 (a bucket) into want
 * (MOE_MAX_WANTS); returns how many. */
int moe_expert_wants(const mfx_moe *moe, const int64_t *rows, moe_want *want);
/* Makes the kernels of every expert e with rows[e] > 0 ready (the
 * provider compiles those missing, several at a time). */
mfx_status moe_compile_experts(mfx_moe *moe, const int64_t *rows);

/* ---- forward.c: where each expert's batch lies ---- */
/* list[start[e] .. start[e]+count[e]) holds expert e's tokens in token
 * order; its outputs are rows offset[e] .. of YALL, a bucket of them.
 * rows[t*k+s] is the YALL row of slot s of token t (-1: a null expert). */
typedef struct {
  int64_t count[MFX_MOE_MAX_EXPERTS];
  int64_t start[MFX_MOE_MAX_EXPERTS];
  int64_t offset[MFX_MOE_MAX_EXPERTS];
  int64_t total_rows; /* of YALL */
  int64_t *list, *rows;
} moe_dispatch;

/* ---- device.c: the layer on a GPU target ---- */
struct moe_gpu;
/* target: "cuda", "cuda:N" or "emulate"; sets moe->gpu (also on failure:
 * moe_gpu_close frees what was opened). */
mfx_status moe_gpu_open(mfx_moe *moe, const char *target);
void moe_gpu_close(mfx_moe *moe);
const char *moe_gpu_description(const mfx_moe *moe);
mfx_device *moe_gpu_device(const mfx_moe *moe);
/* 1 when the GPU kernels run in the compiler's emulation on the CPU. */
int moe_gpu_emulated(const mfx_moe *moe);
/* What GPU kernels are built for: "cuda:sm_90", or "cuda" when emulated. */
const char *moe_gpu_build_target(const mfx_moe *moe);
/* As moe_run_router, moe_run_expert and moe_run_shift_q16, with host
 * arrays in and out and everything between on the device. */
mfx_status moe_gpu_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits);
/* The same from the caller's device buffer x [T, D], padded to rows there. */
mfx_status moe_gpu_router_device(mfx_moe *moe, const mfx_kernel_env *env, uint64_t x,
                                 int64_t T, int64_t rows, float *rlogits);
mfx_status moe_gpu_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                          int64_t rows, float *y);
mfx_status moe_gpu_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, const int32_t *xq,
                             int64_t rows, int32_t *yq);
/* A pass's kernels on the device, made ready together: the experts',
 * their gathers and the combine, for T tokens dispatched as d. */
mfx_status moe_gpu_prepare_pass(mfx_moe *moe, int64_t T, const moe_dispatch *d);
/* Dispatch, experts and combine on the device: each expert's tokens
 * gathered from the router's input (still on the device), its chain, and
 * y[T, D] combined there with the gates; only index lists and gates go
 * over, and y comes back to the host, or, y_dev not 0, stays in the
 * caller's device buffer y_dev. */
mfx_status moe_gpu_experts(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                           const moe_dispatch *d, const float *gates, float *y, uint64_t y_dev,
                           mfx_moe_trace *trace);
/* Device seconds of the kernels of the last moe_gpu_expert. */
double moe_gpu_last_expert_seconds(const mfx_moe *moe);

/* ---- launch.c: an artifact kernel on the layer's device ---- */
/* The weight layouts a kernel's leading launches made from one set of
 * weights (the router's, or one expert's): kept, as the weights are
 * constant between changes (issue 10: WT, ST, GT packed once). */
#define MOE_PACKS (MFX_MOE_MAX_EXPERTS + 1)
typedef struct {
  int used;   /* holds buffers for the weights below */
  int packed; /* and their layout at version */
  uint64_t weights[MFX_ARTIFACT_MAX_ARGS]; /* the weight inputs' addresses: the key */
  unsigned long version;                   /* the layer's weights_version packed */
  mfx_device_buffer ws[MFX_ARTIFACT_MAX_ARGS]; /* the workspace the packing writes */
} moe_pack;

typedef struct {
  const mfx_artifact_kernel *meta; /* outlives it */
  mfx_device *dev;
  mfx_module *module;
  mfx_function *fn[MFX_ARTIFACT_MAX_LAUNCHES];
  mfx_device_buffer ws[MFX_ARTIFACT_MAX_ARGS]; /* the workspace arguments */
  /* Launches [0, n_pack) read only weights (inputs 1..) and write only
   * workspace (packed): they run once per weight set and version. */
  int n_pack;
  int packed_ws[MFX_ARTIFACT_MAX_ARGS]; /* 1: argument i is written by the packing */
  moe_pack packs[MOE_PACKS];
  int next_evict;
} moe_gpu_kernel;
/* Loads meta's module onto dev (its target must suit dev) and allocates its
 * workspace; on failure what was made stays for moe_kernel_unload. */
mfx_status moe_kernel_load(mfx_device *dev, const mfx_artifact_kernel *meta, moe_gpu_kernel *k);
void moe_kernel_unload(moe_gpu_kernel *k);
/* Queues k's launches on addresses: its inputs, then its outputs. The
 * packing launches run only when the weights (by address) have no layout
 * packed at `version` yet. */
mfx_status moe_kernel_run(moe_gpu_kernel *k, const uint64_t *addresses, unsigned long version);

/* An env to use when the caller passed none. */
const mfx_kernel_env *moe_env_or_serial(const mfx_kernel_env *env, mfx_kernel_env *serial);
/* Runs body over [0, n) on the env's pool. */
void moe_parallel(const mfx_kernel_env *env, mfx_parallel_body body, void *closure, int64_t n);

#endif
