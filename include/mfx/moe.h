/* mfx MoE: ShiftAddViT's mixture-of-experts MLP layer run with compiled
 * kernels, and its plain-C reference. Two rooms share this header:
 *
 *   moe/          executing the layer: routing, dispatch, the experts'
 *                 kernels, combine, its reference, and layers loaded from
 *                 an artifact (mfx/moe_layer.h); part of libmfxrt, never
 *                 LLVM
 *   ops/moe_*.c   building it: mfx_moe_create compiles the kernels on
 *                 first use (mfx_op_compile, or PTX for a GPU target)
 *
 * The expert latency table is mfx/latency.h (runtime/profile.c).
 *
 * Layer notation: tokens T, token dimension D, expert hidden size H,
 * experts E, top-k routing k. Arrays are f32 and row-major. */
#ifndef MFX_MOE_H
#define MFX_MOE_H

#include <stdio.h>

#include "mfx/artifact.h"
#include "mfx/device.h"
#include "mfx/latency.h"
#include "mfx/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== the MoE layer (moe/, built by ops/moe_*.c) ============================================ */

#define MFX_MOE_MAX_EXPERTS MFX_LATENCY_MAX_EXPERTS

typedef enum {
  MFX_EXPERT_MULT = 0, /* linear -> GELU -> linear in f32 (dense kernels) */
  MFX_EXPERT_SHIFT,    /* the same through Q16.16 shift_linear kernels */
  MFX_EXPERT_NULL,     /* zero output, no cost (AdaMoE's null experts) */
  MFX_EXPERT_SHIFT16,  /* the same through Q3.10 shift_linear16 kernels (16-bit lanes; opt in,
                        * docs/moe_layer.md) */
  MFX_EXPERT_KIND_COUNT
} mfx_expert_kind;

const char *mfx_expert_kind_name(mfx_expert_kind kind); /* "mult" */
mfx_status mfx_expert_kind_from_name(const char *name, mfx_expert_kind *out);
/* "mult,shift,shift16,null,..." -> kinds[0..*count); at most `max` names. */
mfx_status mfx_expert_kinds_parse(const char *text, mfx_expert_kind *kinds, int max,
                                  int *count);

/* ---- the arithmetic every path shares ------------------------------------- */

/* GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)) (erff). */
float mfx_gelu(float x);
/* Q16.16: round(x * 65536) to nearest (ties to even), saturated to the i32
 * range; NaN gives 0. Back: q / 65536 rounded once to f32. */
int32_t mfx_q16_from_float(float x);
float mfx_q16_to_float(int32_t q);

/* DeepShift's conversion of float weights to shift_linear's (S, G), which
 * computes G * (x >> S) = G * x * 2^-S:
 *   w == 0:          G = 0, S = 0
 *   otherwise        p = round(log2 |w|)  (half away from zero, in double)
 *                    S = -p, clamped below at 0 (|w| >= 2^-0.5 acts as 1);
 *                    S > 15 (|w| < 2^-15.5): G = 0, S = 0 (too small to keep);
 *                    else G = sign(w).
 * So w is replaced by G * 2^-S. Non-finite weights are MFX_ERR_INVALID. */
mfx_status mfx_deepshift_convert(const float *w, int64_t count, int8_t *shift, int8_t *sign);

/* The token count an expert batch of n tokens is padded to, so a handful of
 * compiled kernels serves every batch: multiples of 16 up to 128, above
 * that 8 steps per power of two (so padding adds at most 12.5%). 0 for 0. */
int64_t mfx_moe_bucket(int64_t n);

/* ---- the layer ----------------------------------------------------------- */

/* Chooses the configuration a kernel is compiled with (for instance from
 * the tuning database); called once per new (op, dims). target is what the
 * kernel is built for: "cpu", "cuda:sm_90", or "cuda" when emulated; cfg
 * arrives holding that target's defaults. NULL: defaults. */
typedef mfx_status (*mfx_moe_config_fn)(void *user, const char *target, const mfx_op *op,
                                        const int64_t *dims, mfx_config *cfg);

typedef struct {
  int dim;     /* D */
  int hidden;  /* H */
  int experts; /* E, 1..MFX_MOE_MAX_EXPERTS */
  int k;       /* 1 <= k <= E */
  mfx_expert_kind kinds[MFX_MOE_MAX_EXPERTS];
  mfx_moe_config_fn choose_config; /* NULL: template defaults */
  void *choose_user;
  /* Where the kernels run: NULL or "cpu": JIT-compiled host kernels;
   * "cuda" or "cuda:N": GPU kernels (PTX through the CUDA driver) on device
   * buffers, gathering and combining tokens there too, with only the top-k
   * routing on the host; "emulate": the
   * same GPU kernels run by the compiler's CPU emulation of GPU programs
   * (for testing GPU schedules where no GPU is). */
  const char *target;
} mfx_moe_spec;

typedef struct mfx_moe mfx_moe;

/* Checks the spec (dims positive, 1 <= k <= E, known kinds); every weight
 * starts at zero. One forward at a time per layer (it owns its workspace
 * and kernel cache); kernels run on the pool of the env passed in. */
mfx_status mfx_moe_create(const mfx_moe_spec *spec, mfx_moe **out);
void mfx_moe_destroy(mfx_moe *moe);
const mfx_moe_spec *mfx_moe_get_spec(const mfx_moe *moe);
/* 1 when target names a target of mfx_moe_spec: cpu, cuda, cuda:N or emulate. */
int mfx_moe_target_valid(const char *target);
/* Where the kernels run, in words: "cpu", "cuda:0: NVIDIA H100 ... (sm_90)". */
const char *mfx_moe_target_description(const mfx_moe *moe);
/* 1 when the layer's kernels run on a GPU target (cuda or emulate). */
int mfx_moe_on_gpu(const mfx_moe *moe);
/* The device a GPU target runs on (the CPU for emulate); NULL on cpu. */
const mfx_device_info *mfx_moe_device_info(const mfx_moe *moe);

/* Router weights [E, D]; bias [E] (selection bias of mfx_router_route, or
 * NULL for none). */
mfx_status mfx_moe_set_router(mfx_moe *moe, const float *weight, const float *bias);
/* Expert e's float weights: w1 [H, D], w2 [D, H]. A shift expert converts
 * them with mfx_deepshift_convert. A null expert takes none (NULL, NULL). */
mfx_status mfx_moe_set_expert(mfx_moe *moe, int e, const float *w1, const float *w2);
/* Every weight uniform in +-1/sqrt(fan_in) from the seed; bias zero. */
mfx_status mfx_moe_init_random(mfx_moe *moe, uint64_t seed);
/* A shift expert's converted weights: layer 0 is [H, D], layer 1 [D, H]. */
mfx_status mfx_moe_shift_weights(const mfx_moe *moe, int e, int layer, const int8_t **shift,
                                 const int8_t **sign);

/* What a forward pass saw; every pointer may be NULL (not wanted). */
typedef struct {
  float *logits;    /* [T, E] router logits */
  int32_t *chosen;  /* [T, k] experts, by descending score */
  float *gates;     /* [T, k] */
  double counts[MFX_MOE_MAX_EXPERTS];   /* tokens routed to each expert */
  double expert_s[MFX_MOE_MAX_EXPERTS]; /* seconds in each expert */
  double router_s, dispatch_s, combine_s, total_s;
  double compile_s;                     /* compiling the experts' kernels (in parallel) */
  int kernels_compiled;                 /* by this call */
} mfx_moe_trace;

/* y[T, D] = sum over the k chosen experts of gate * expert(x) for x [T, D].
 * env NULL: serial. trace may be NULL. */
mfx_status mfx_moe_forward(mfx_moe *moe, const mfx_kernel_env *env, const float *x,
                           int64_t tokens, float *y, mfx_moe_trace *trace);
/* The same on buffers already on the layer's device (for an application
 * whose activations live on the GPU): x and y are device addresses
 * (CUdeviceptr on CUDA, mfx_device_buffer.address; host pointers of the
 * CPU device when the target is emulate) of x_bytes and y_bytes, each at
 * least tokens * D * 4; they must not overlap. Only the router's logits
 * come to the host (top-k routing runs there) and only the dispatch plan
 * and gates go over; x and y are never copied through the host. For a
 * layer on a GPU target (cuda, emulate) or loaded from a cuda artifact;
 * a host layer is an error. Work is queued on the device: y is complete
 * when mfx_device_synchronize of the layer's device returns (any later
 * copy from the device waits for it). */
mfx_status mfx_moe_forward_device(mfx_moe *moe, const mfx_kernel_env *env, uint64_t x,
                                  size_t x_bytes, int64_t tokens, uint64_t y, size_t y_bytes,
                                  mfx_moe_trace *trace);
/* The device the layer's kernels run on (its buffers belong there): the
 * GPU of a cuda target or a loaded cuda layer, the CPU device for emulate;
 * NULL for a host layer. */
mfx_device *mfx_moe_device(const mfx_moe *moe);
/* Expert e alone on n tokens: y[n, D] = expert(x[n, D]) (zeros for null). */
mfx_status mfx_moe_expert_forward(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                  const float *x, int64_t n, float *y);
/* The seconds the last mfx_moe_expert_forward spent in the expert's
 * kernels, without the copies around them: device events on a GPU target,
 * the host clock on the CPU. */
double mfx_moe_last_expert_seconds(const mfx_moe *moe);
/* A shift expert on Q16.16 activations: yq[n, D] from xq[n, D], the
 * integer pipeline of the float path (shift_linear, GELU between). */
mfx_status mfx_moe_shift_expert_q16(mfx_moe *moe, int e, const mfx_kernel_env *env,
                                    const int32_t *xq, int64_t n, int32_t *yq);
/* Compiles the kernels for batches of n tokens to every expert now. */
mfx_status mfx_moe_prepare(mfx_moe *moe, int64_t n);
/* The kernels the layer has compiled so far (its cache), e.g. to build
 * them ahead of time into an artifact; NULL when i is out of range. On a
 * GPU target the count is of GPU kernels, mfx_moe_kernel_at gives NULL and
 * mfx_moe_gpu_kernel_at the built kernel (PTX and launches; NULL when
 * emulated). */
int mfx_moe_kernel_count(const mfx_moe *moe);
const mfx_op_kernel *mfx_moe_kernel_at(const mfx_moe *moe, int i);
const mfx_artifact_kernel *mfx_moe_gpu_kernel_at(const mfx_moe *moe, int i);

/* ---- a layer ahead of time: an artifact and a weights file ----------------- */

/* The layer artifact's manifest (mfx_artifact_manifest), JSON: "format",
 * "dim", "hidden", "k", "experts" ("mult,shift,null"), "target",
 * "buckets" [ascending token counts], "kernels" [{"role", "bucket",
 * "name", "op", "dims", "config"}], roles "router", "mult.fc1",
 * "mult.fc2", "shift.fc1", "shift.fc2", and for a cuda target "gather"
 * and "combine", with which a loaded layer runs its pass on the GPU
 * (docs/moe_layer.md). */
#define MFX_MOE_LAYER_FORMAT "mfx-moe-layer-1"
/* The weights file's "__metadata__" "format" (a safetensors file). */
#define MFX_MOE_WEIGHTS_FORMAT "mfx-moe-1"
#define MFX_MOE_MAX_BUCKETS 64
#define MFX_MOE_MAX_BUCKET_TOKENS ((int64_t)1 << 24)

/* Builds every kernel of the layer of spec (dims, kinds, k; configs from
 * spec->choose_config, else the template defaults) for each bucket (token
 * counts, ascending) on target ("cpu" or "cuda:sm_XX") into one artifact
 * image with the layer's manifest (*image malloc'd: free() it). The
 * compiler side (mfx_ops, LLVM). */
mfx_status mfx_moe_compile_layer(const mfx_moe_spec *spec, const int64_t *buckets,
                                 int n_buckets, const char *target, void **image,
                                 size_t *size);

typedef struct {
  const char *device; /* "cpu", "cuda", "cuda:N"; NULL: as the artifact targets */
  int threads;        /* CPU thread pool of the kernels; 0: one per online CPU */
} mfx_moe_load_options;

/* Loads a layer from an artifact written by mfx_moe_compile_layer (mfx
 * compile-layer) and its weights (mfx_moe_load_weights; NULL: every
 * weight zero). Runtime only: no LLVM. The layer runs batches of up to its
 * largest bucket with mfx_moe_forward, mfx_moe_expert_forward and
 * mfx_moe_reference, and is freed with mfx_moe_destroy. Each layer owns its
 * kernels and workspace: two layers run side by side from two threads (one
 * layer: one call at a time). options may be NULL. */
mfx_status mfx_moe_load(const char *artifact, const char *weights,
                        const mfx_moe_load_options *options, mfx_moe **out);
/* Reads a safetensors file (https://huggingface.co/docs/safetensors) of
 * the layer's weights, all F32: "router.weight" [E, D], optional
 * "router.bias" [E] (the selection bias), and for each non-null expert e
 * (0-based) "experts.<e>.w1" [H, D] and "experts.<e>.w2" [D, H];
 * "__metadata__" with "format": "mfx-moe-1" and "dim", "hidden", "k",
 * "experts" equal to the layer's. Every shape, dtype and offset is
 * checked; unknown or missing tensors are errors. Works on any layer. */
mfx_status mfx_moe_load_weights(mfx_moe *moe, const char *path);
/* The token buckets of a loaded layer (0 for a layer of mfx_moe_create,
 * which compiles for any batch). */
int mfx_moe_bucket_count(const mfx_moe *moe);
int64_t mfx_moe_bucket_at(const mfx_moe *moe, int i);
/* Measures every non-null expert alone (mfx_moe_expert_forward, timed by
 * mfx_moe_last_expert_seconds) at each of `points` token counts and fills
 * t: device key, dims, the fits, latency and alpha at at_tokens
 * (mfx_latency_finish). Null experts are left out (they cost nothing).
 * o NULL: mfx_profile_options_default. */
mfx_status mfx_moe_profile(mfx_moe *moe, const mfx_kernel_env *env, const int64_t *tokens,
                           int points, int64_t at_tokens, const mfx_profile_options *o,
                           mfx_latency_table *t);

/* ---- the plain-C reference -------------------------------------------------- */

/* The same layer in naive C: logits in double, mfx_router_route, experts
 * as straight loops (the shift path through the same Q16.16 quantization
 * and integer arithmetic), combine. route_logits: route by these [T, E]
 * (the layer's own, so a near tie between two experts cannot decide the
 * comparison) instead of the reference's; NULL: its own. logits may be
 * NULL, else receives the reference logits [T, E]. */
mfx_status mfx_moe_reference(const mfx_moe *moe, const float *x, int64_t tokens,
                             const float *route_logits, float *y, float *logits);
mfx_status mfx_moe_reference_shift_q16(const mfx_moe *moe, int e, const int32_t *xq,
                                       int64_t n, int32_t *yq);

#ifdef __cplusplus
}
#endif
#endif
