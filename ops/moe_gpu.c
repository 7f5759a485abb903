/* The layer on a GPU target: every step but routing is a GPU kernel on
 * buffers that stay on the device. A pass sends the router's input over
 * once and reads its logits back; top-k routing and the dispatch plan run
 * on the host, which sends back small index lists and the gates; each
 * expert's tokens are gathered on the device (gather_rows), run through its
 * chain, and combined there (combine_rows); the output comes back once.
 *
 *   cuda     kernels built from the ops' GPU templates into PTX (the
 *            artifact builder), loaded through the CUDA driver and launched
 *            on device buffers; the weights are copied over once, and again
 *            after they change
 *   emulate  the same GPU programs run by the compiler's CPU emulation on
 *            the CPU device's buffers: the GPU schedules, the kernel chains
 *            and the buffer traffic, tested where no GPU is
 *
 *   pass:  XPAD -router linear-> logits (to the host); per expert:
 *          XPAD -gather_rows IDX-> XALL rows -chain-> YALL rows; then
 *          YALL -combine_rows ROWS, GATES-> OUT (to the host)
 *   mult:  X -linear W1-> H -gelu-> HG -linear W2-> Y
 *   shift: X -q16_quantize-> XQ -shift_linear S1,G1-> HQ -q16_gelu-> HQ2
 *            -shift_linear S2,G2-> YQ -q16_dequantize-> Y */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_internal.h"
#include "mfx/artifact.h"
#include "mfx/device.h"

/* Activation buffers, grown on demand. */
typedef enum {
  GPU_X,   /* f32 [rows, D]: the router's or an expert's input */
  GPU_RL,  /* f32 [rows, E]: router logits */
  GPU_H,   /* f32 [rows, H] */
  GPU_HG,  /* f32 [rows, H] */
  GPU_XQ,  /* i32 [rows, D] */
  GPU_HQ,  /* i32 [rows, H] */
  GPU_HQ2, /* i32 [rows, H] */
  GPU_YQ,  /* i32 [rows, D] */
  GPU_Y,   /* f32 [rows, D] */
  GPU_XALL,  /* f32 [bucket(rows of YALL), D]: every expert's gathered tokens */
  GPU_YALL,  /* f32 [bucket(rows of YALL), D]: every expert's outputs */
  GPU_IDX,   /* i32 [rows of YALL]: the token of each gathered row, -1 padding */
  GPU_ROWS,  /* i32 [T, k]: the YALL row of each slot, -1 a null expert */
  GPU_GATES, /* f32 [T, k] */
  GPU_OUT,   /* f32 [T, D]: the layer's output */
  GPU_BUFFER_COUNT
} gpu_slot;

/* One expert's weights on the device (unused ones stay empty). */
typedef struct {
  mfx_device_buffer w1, w2, s1, g1, s2, g2;
} gpu_weights;

/* A kernel of the cache: one op at one shape. */
typedef struct {
  const mfx_op *op;
  int64_t dims[MOE_MAX_OP_DIMS];
  mfx_config cfg;
  mfx_arena *arena;
  mfx_jit_kernel *jit;                 /* emulate */
  mfx_artifact_kernel art;             /* cuda: PTX, arguments, launches */
  mfx_module *module;
  mfx_function *fn[MFX_ARTIFACT_MAX_LAUNCHES];
  mfx_device_buffer ws[MFX_ARTIFACT_MAX_ARGS]; /* the workspace arguments */
} gpu_kernel;

struct moe_gpu {
  int emulated;
  mfx_device *dev;
  char target[32]; /* what the ops are built for: "cuda:sm_90", or "cuda" emulated */
  char description[256];
  gpu_kernel *kernels;
  int n_kernels, cap_kernels;
  mfx_device_buffer buf[GPU_BUFFER_COUNT];
  mfx_device_buffer router_w;
  gpu_weights expert[MFX_MOE_MAX_EXPERTS];
  unsigned long weights_version; /* the layer's version the device holds */
  mfx_event *start, *end; /* around an expert's kernels */
  double last_expert_s;
};

/* ---- opening ------------------------------------------------------------------------ */

static mfx_status gpu_open_device(moe_gpu *g, const char *target) {
  if (strcmp(target, "emulate") == 0) {
    g->emulated = 1;
    snprintf(g->target, sizeof g->target, "cuda");
    MFX_TRY(mfx_device_open("cpu", &g->dev));
    snprintf(g->description, sizeof g->description, "GPU kernels emulated on the CPU (%s)",
             mfx_device_get_info(g->dev)->name);
    return MFX_OK;
  }
  mfx_status st = mfx_device_open(target, &g->dev);
  if (st != MFX_OK) return st;
  const mfx_device_info *info = mfx_device_get_info(g->dev);
  if (info->kind != MFX_DEVICE_CUDA)
    return mfx_fail(MFX_ERR_INVALID, "moe: target '%s' is not a GPU; expected cpu, cuda, "
                    "cuda:N or emulate", target);
  snprintf(g->target, sizeof g->target, "cuda:sm_%d%d", info->compute_major,
           info->compute_minor);
  snprintf(g->description, sizeof g->description, "%s: %s (%s)", mfx_device_name(g->dev),
           info->name, info->arch);
  return MFX_OK;
}

mfx_status moe_gpu_open(mfx_moe *moe, const char *target) {
  moe_gpu *g = calloc(1, sizeof *g);
  if (g == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  moe->gpu = g;
  g->weights_version = (unsigned long)-1;
  mfx_status st = gpu_open_device(g, target);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "moe: opening target '%s'", target);
}

const char *moe_gpu_description(const mfx_moe *moe) { return moe->gpu->description; }

const mfx_device_info *mfx_moe_device_info(const mfx_moe *moe) {
  return moe != NULL && moe->gpu != NULL ? mfx_device_get_info(moe->gpu->dev) : NULL;
}

static void gpu_kernel_free(gpu_kernel *k) {
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) mfx_device_buffer_free(&k->ws[i]);
  if (k->module != NULL) mfx_module_free(k->module);
  mfx_artifact_kernel_release(&k->art);
  if (k->jit != NULL) mfx_jit_free(k->jit);
  if (k->arena != NULL) mfx_arena_destroy(k->arena);
}

static void gpu_weights_free(gpu_weights *w) {
  mfx_device_buffer *all[] = {&w->w1, &w->w2, &w->s1, &w->g1, &w->s2, &w->g2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mfx_device_buffer_free(all[i]);
}

void moe_gpu_close(mfx_moe *moe) {
  moe_gpu *g = moe->gpu;
  if (g == NULL) return;
  for (int i = 0; i < g->n_kernels; i++) gpu_kernel_free(&g->kernels[i]);
  free(g->kernels);
  for (int i = 0; i < GPU_BUFFER_COUNT; i++) mfx_device_buffer_free(&g->buf[i]);
  mfx_device_buffer_free(&g->router_w);
  for (int e = 0; e < MFX_MOE_MAX_EXPERTS; e++) gpu_weights_free(&g->expert[e]);
  if (g->start != NULL) mfx_event_destroy(g->start);
  if (g->end != NULL) mfx_event_destroy(g->end);
  if (g->dev != NULL) mfx_device_close(g->dev);
  free(g);
  moe->gpu = NULL;
}

/* ---- buffers ------------------------------------------------------------------------ */

/* The activation buffer of slot, at least `bytes`. */
static mfx_status gpu_buffer(moe_gpu *g, gpu_slot slot, size_t bytes, uint64_t *address) {
  mfx_device_buffer *b = &g->buf[slot];
  if (b->bytes < bytes) {
    mfx_device_buffer_free(b);
    MFX_TRY(mfx_device_buffer_alloc(g->dev, bytes, b));
  }
  *address = b->address;
  return MFX_OK;
}

static mfx_status gpu_upload(moe_gpu *g, mfx_device_buffer *b, const void *src, size_t bytes) {
  if (b->bytes != bytes) {
    mfx_device_buffer_free(b);
    MFX_TRY(mfx_device_buffer_alloc(g->dev, bytes, b));
  }
  return mfx_device_buffer_write(b, 0, src, bytes);
}

/* Copies the layer's weights over when they changed since the last copy. */
static mfx_status gpu_sync_weights(mfx_moe *moe) {
  moe_gpu *g = moe->gpu;
  if (g->weights_version == moe->weights_version) return MFX_OK;
  size_t hd = (size_t)moe->spec.hidden * (size_t)moe->spec.dim;
  MFX_TRY(gpu_upload(g, &g->router_w, moe->router_w,
                     (size_t)moe->spec.experts * (size_t)moe->spec.dim * sizeof(float)));
  for (int e = 0; e < moe->spec.experts; e++) {
    const moe_expert *x = &moe->expert[e];
    gpu_weights *w = &g->expert[e];
    if (moe->spec.kinds[e] == MFX_EXPERT_MULT) {
      MFX_TRY(gpu_upload(g, &w->w1, x->w1, hd * sizeof(float)));
      MFX_TRY(gpu_upload(g, &w->w2, x->w2, hd * sizeof(float)));
    } else if (moe->spec.kinds[e] == MFX_EXPERT_SHIFT) {
      MFX_TRY(gpu_upload(g, &w->s1, x->s1, hd));
      MFX_TRY(gpu_upload(g, &w->g1, x->g1, hd));
      MFX_TRY(gpu_upload(g, &w->s2, x->s2, hd));
      MFX_TRY(gpu_upload(g, &w->g2, x->g2, hd));
    }
  }
  g->weights_version = moe->weights_version;
  return MFX_OK;
}

/* ---- the kernel cache ------------------------------------------------------------------ */

static mfx_status gpu_load_cuda(moe_gpu *g, gpu_kernel *k, mfx_schedule *s) {
  mfx_artifact_kernel *a = &k->art;
  size_t used = (size_t)snprintf(a->name, sizeof a->name, "%s", k->op->name);
  for (int d = 0; d < k->op->n_dims && used < sizeof a->name; d++)
    used += (size_t)snprintf(a->name + used, sizeof a->name - used, "_%c%lld",
                             tolower((unsigned char)k->op->dims[d][0]), (long long)k->dims[d]);
  snprintf(a->op, sizeof a->op, "%s", k->op->name);
  snprintf(a->target, sizeof a->target, "%s", g->target);
  a->n_dims = k->op->n_dims;
  for (int d = 0; d < k->op->n_dims; d++) {
    snprintf(a->dim_names[d], sizeof a->dim_names[d], "%s", k->op->dims[d]);
    a->dims[d] = k->dims[d];
  }
  MFX_TRY(mfx_artifact_build(s, a));
  MFX_TRY(mfx_module_load(g->dev, a->gpu_image, a->gpu_image_bytes, &k->module));
  for (int i = 0; i < a->n_launches; i++)
    MFX_TRY(mfx_module_function(k->module, a->launches[i].name, &k->fn[i]));
  for (int i = 0; i < a->n_args; i++)
    if (a->args[i].role == MFX_ARG_WORKSPACE)
      MFX_TRY(mfx_device_buffer_alloc(g->dev, mfx_artifact_arg_bytes(&a->args[i]), &k->ws[i]));
  return MFX_OK;
}

static mfx_status gpu_choose(mfx_moe *moe, gpu_kernel *k) {
  mfx_config_default_for(k->op, "cuda", &k->cfg);
  if (moe->spec.choose_config == NULL) return MFX_OK;
  mfx_status st =
      moe->spec.choose_config(moe->spec.choose_user, moe->gpu->target, k->op, k->dims, &k->cfg);
  return st == MFX_OK ? MFX_OK
                      : mfx_fail_context(st, "moe: choosing the config of %s for %s",
                                         k->op->name, moe->gpu->target);
}

static mfx_status gpu_build(moe_gpu *g, gpu_kernel *k) {
  k->arena = mfx_arena_create();
  if (k->arena == NULL) return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for an arena");
  if (g->emulated) {
    mfx_gpu_program *p = NULL;
    MFX_TRY(mfx_op_gpu_program(k->op, k->arena, k->dims, &k->cfg, &p));
    return mfx_gpu_emulate_compile(k->arena, p, &k->jit);
  }
  mfx_schedule *s = NULL;
  MFX_TRY(mfx_op_build_for(k->op, g->target, k->arena, k->dims, &k->cfg, &s));
  mfx_config_to_json(&k->cfg, k->art.config, sizeof k->art.config);
  return gpu_load_cuda(g, k, s);
}

static gpu_kernel *gpu_kernel_find(moe_gpu *g, const mfx_op *op, const int64_t *dims) {
  for (int i = 0; i < g->n_kernels; i++)
    if (g->kernels[i].op == op &&
        memcmp(g->kernels[i].dims, dims, (size_t)op->n_dims * sizeof(int64_t)) == 0)
      return &g->kernels[i];
  return NULL;
}

/* A failed build frees what it made and says which kernel and target. */
static mfx_status gpu_build_slot(void *ctx, void *slot) {
  moe_gpu *g = ctx;
  gpu_kernel *k = slot;
  mfx_status st = gpu_build(g, k);
  if (st == MFX_OK) return MFX_OK;
  gpu_kernel_free(k);
  return mfx_fail_context(st, "moe: compiling %s for %s (%s)", k->op->name, g->target,
                          g->description);
}

mfx_status moe_gpu_ensure(mfx_moe *moe, const moe_want *want, int n) {
  moe_gpu *g = moe->gpu;
  if (!moe_grow((void **)&g->kernels, &g->cap_kernels, g->n_kernels + n, sizeof *g->kernels))
    return mfx_fail(MFX_ERR_NOMEM, "moe: out of memory for the kernel cache");
  int fresh = 0;
  for (int i = 0; i < n; i++) {
    if (want[i].op == NULL) return mfx_fail(MFX_ERR_NOT_FOUND, "moe: an op is not registered");
    if (gpu_kernel_find(g, want[i].op, want[i].dims) != NULL) continue;
    gpu_kernel *k = &g->kernels[g->n_kernels + fresh++];
    memset(k, 0, sizeof *k);
    k->op = want[i].op;
    memcpy(k->dims, want[i].dims, sizeof want[i].dims);
    MFX_TRY(gpu_choose(moe, k));
  }
  if (fresh == 0) return MFX_OK;
  int kept = 0;
  mfx_status st = moe_build_side_by_side(&g->kernels[g->n_kernels], sizeof *g->kernels, fresh,
                                         gpu_build_slot, g, &kept);
  g->n_kernels += kept;
  moe->compiled_since += kept;
  return st;
}

/* dims: the op's, in its order. */
static mfx_status gpu_kernel_get(mfx_moe *moe, const char *name, const int64_t *dims,
                                 gpu_kernel **out) {
  const mfx_op *op = mfx_op_find(name);
  if (op == NULL || op->n_dims > MOE_MAX_OP_DIMS)
    return mfx_fail(MFX_ERR_NOT_FOUND, "moe: op '%s' is not registered", name);
  moe_want w = {op, {0}};
  memcpy(w.dims, dims, (size_t)op->n_dims * sizeof(int64_t));
  gpu_kernel *k = gpu_kernel_find(moe->gpu, op, w.dims);
  if (k == NULL) {
    MFX_TRY(moe_gpu_ensure(moe, &w, 1));
    k = gpu_kernel_find(moe->gpu, op, w.dims);
  }
  *out = k;
  return MFX_OK;
}

/* Runs op at dims on device addresses: its inputs, then its outputs. */
static mfx_status gpu_run(mfx_moe *moe, const mfx_kernel_env *env, const char *name,
                          const int64_t *dims, const uint64_t *addresses) {
  gpu_kernel *k = NULL;
  MFX_TRY(gpu_kernel_get(moe, name, dims, &k));
  int n = k->op->n_inputs + k->op->n_outputs;
  if (k->jit != NULL) {
    void *args[2 * MFX_OP_MAX_TENSORS];
    for (int i = 0; i < n; i++) args[i] = (void *)(uintptr_t)addresses[i];
    if (mfx_jit_entry(k->jit)(args, env) != 0)
      return mfx_fail(MFX_ERR_NOMEM, "moe: emulated %s could not allocate its workspace", name);
    return MFX_OK;
  }
  uint64_t address[MFX_ARTIFACT_MAX_ARGS];
  for (int i = 0; i < k->art.n_args; i++)
    address[i] = i < n ? addresses[i] : k->ws[i].address;
  for (int i = 0; i < k->art.n_launches; i++) {
    const mfx_artifact_launch *l = &k->art.launches[i];
    mfx_launch_dims d = {{l->grid[0], l->grid[1], l->grid[2]},
                         {l->block[0], l->block[1], l->block[2]},
                         (size_t)l->shared_dynamic};
    void *params[MFX_ARTIFACT_MAX_ARGS];
    for (int p = 0; p < l->n_args; p++) params[p] = &address[l->args[p]];
    mfx_status st = mfx_function_launch(k->fn[i], &d, params);
    if (st != MFX_OK) return mfx_fail_context(st, "moe: launching %s (%s)", name, l->name);
  }
  return MFX_OK;
}

/* ---- the experts and the router ---------------------------------------------------------- */

static mfx_status gpu_linear(mfx_moe *moe, const mfx_kernel_env *env, const char *op,
                             int64_t m, int64_t n, int64_t k, uint64_t x, uint64_t s, uint64_t g,
                             uint64_t y) {
  int64_t dims[3] = {m, n, k};
  if (strncmp(op, "linear", 6) == 0) return gpu_run(moe, env, op, dims, (uint64_t[]){x, s, y});
  return gpu_run(moe, env, op, dims, (uint64_t[]){x, s, g, y});
}

static mfx_status gpu_map(mfx_moe *moe, const mfx_kernel_env *env, const char *op, int64_t m,
                          int64_t n, uint64_t x, uint64_t y) {
  return gpu_run(moe, env, op, (int64_t[]){m, n}, (uint64_t[]){x, y});
}

typedef struct {
  uint64_t x, h, hg, xq, hq, hq2, yq, y;
} gpu_addresses;

/* The scratch between an expert's kernels for `rows`; with_io also its own
 * input and output buffers (GPU_X, GPU_Y), else the caller sets x and y. */
static mfx_status gpu_activations(moe_gpu *g, int64_t rows, int64_t D, int64_t H, int with_io,
                                  gpu_addresses *a) {
  size_t rd = (size_t)(rows * D) * 4, rh = (size_t)(rows * H) * 4;
  if (with_io) MFX_TRY(gpu_buffer(g, GPU_X, rd, &a->x));
  if (with_io) MFX_TRY(gpu_buffer(g, GPU_Y, rd, &a->y));
  MFX_TRY(gpu_buffer(g, GPU_H, rh, &a->h));
  MFX_TRY(gpu_buffer(g, GPU_HG, rh, &a->hg));
  MFX_TRY(gpu_buffer(g, GPU_XQ, rd, &a->xq));
  MFX_TRY(gpu_buffer(g, GPU_HQ, rh, &a->hq));
  MFX_TRY(gpu_buffer(g, GPU_HQ2, rh, &a->hq2));
  return gpu_buffer(g, GPU_YQ, rd, &a->yq);
}

/* The shift expert from XQ to YQ. */
static mfx_status gpu_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows,
                                const gpu_addresses *a) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const gpu_weights *w = &moe->gpu->expert[e];
  MFX_TRY(gpu_linear(moe, env, "shift_linear", rows, H, D, a->xq, w->s1.address, w->g1.address,
                     a->hq));
  MFX_TRY(gpu_map(moe, env, "q16_gelu", rows, H, a->hq, a->hq2));
  return gpu_linear(moe, env, "shift_linear", rows, D, H, a->hq2, w->s2.address, w->g2.address,
                    a->yq);
}

/* Expert e from X to Y: two kernels, GELU and Q16.16 fused into them. */
static mfx_status gpu_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows,
                             const gpu_addresses *a) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const gpu_weights *w = &moe->gpu->expert[e];
  if (moe->spec.kinds[e] == MFX_EXPERT_MULT) {
    MFX_TRY(gpu_linear(moe, env, "linear_gelu", rows, H, D, a->x, w->w1.address, 0, a->hg));
    return gpu_linear(moe, env, "linear", rows, D, H, a->hg, w->w2.address, 0, a->y);
  }
  MFX_TRY(gpu_linear(moe, env, "shift_linear_q16_gelu", rows, H, D, a->x, w->s1.address,
                     w->g1.address, a->hq2));
  return gpu_linear(moe, env, "shift_linear_dequantize", rows, D, H, a->hq2, w->s2.address,
                    w->g2.address, a->y);
}

mfx_status moe_gpu_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, E = moe->spec.experts;
  uint64_t x, rl;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_buffer(g, GPU_X, (size_t)(rows * D) * 4, &x));
  MFX_TRY(gpu_buffer(g, GPU_RL, (size_t)(rows * E) * 4, &rl));
  MFX_TRY(mfx_device_buffer_write(&g->buf[GPU_X], 0, xpad, (size_t)(rows * D) * 4));
  MFX_TRY(gpu_linear(moe, env, "linear", rows, E, D, x, g->router_w.address, 0, rl));
  return mfx_device_buffer_read(&g->buf[GPU_RL], 0, rlogits, (size_t)(rows * E) * 4);
}

/* One of the chains above, with the host arrays around it: src [rows, D]
 * into slot in, the chain between two events, slot out into dst [rows, D]. */
typedef mfx_status (*gpu_chain)(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows,
                                const gpu_addresses *a);

static mfx_status gpu_run_chain(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t rows,
                                gpu_chain chain, gpu_slot in, const void *src, gpu_slot out,
                                void *dst) {
  moe_gpu *g = moe->gpu;
  gpu_addresses a;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_activations(g, rows, moe->spec.dim, moe->spec.hidden, 1, &a));
  size_t bytes = (size_t)(rows * moe->spec.dim) * 4;
  MFX_TRY(mfx_device_buffer_write(&g->buf[in], 0, src, bytes));
  if (g->start == NULL) MFX_TRY(mfx_event_create(g->dev, &g->start));
  if (g->end == NULL) MFX_TRY(mfx_event_create(g->dev, &g->end));
  MFX_TRY(mfx_event_record(g->start));
  MFX_TRY(chain(moe, e, env, rows, &a));
  MFX_TRY(mfx_event_record(g->end));
  MFX_TRY(mfx_device_buffer_read(&g->buf[out], 0, dst, bytes));
  return mfx_event_elapsed(g->start, g->end, &g->last_expert_s);
}

mfx_status moe_gpu_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, const float *xb,
                          int64_t rows, float *y) {
  return gpu_run_chain(moe, e, env, rows, gpu_expert, GPU_X, xb, GPU_Y, y);
}

mfx_status moe_gpu_shift_q16(mfx_moe *moe, int e, const mfx_kernel_env *env, const int32_t *xq,
                             int64_t rows, int32_t *yq) {
  return gpu_run_chain(moe, e, env, rows, gpu_shift_q16, GPU_XQ, xq, GPU_YQ, yq);
}

double moe_gpu_last_expert_seconds(const mfx_moe *moe) { return moe->gpu->last_expert_s; }

/* ---- a whole pass on the device ----------------------------------------------------------- */

/* Rows of the router's input on the device (xpad), of YALL as allocated. */
static int64_t gpu_yall_rows(const moe_dispatch *d) { return mfx_moe_bucket(d->total_rows); }

mfx_status moe_gpu_prepare_pass(mfx_moe *moe, int64_t T, const moe_dispatch *d) {
  int64_t rows[MFX_MOE_MAX_EXPERTS], D = moe->spec.dim;
  moe_want want[MOE_MAX_WANTS];
  for (int e = 0; e < moe->spec.experts; e++) rows[e] = mfx_moe_bucket(d->count[e]);
  int n = moe_expert_wants(moe, rows, want);
  for (int e = 0; e < moe->spec.experts; e++)
    if (moe->spec.kinds[e] != MFX_EXPERT_NULL && rows[e] > 0)
      n = moe_want_add(want, n, "gather_rows", mfx_moe_bucket(T), rows[e], D);
  if (d->total_rows > 0)
    n = moe_want_add_dims(want, n, "combine_rows",
                          (int64_t[MOE_MAX_OP_DIMS]){gpu_yall_rows(d), T, moe->spec.k, D});
  return moe_gpu_ensure(moe, want, n);
}

/* The host side of dispatch, as small arrays for the device: the token of
 * each YALL row (-1 padding) and the YALL row of each slot (-1 null). */
static mfx_status gpu_upload_plan(mfx_moe *moe, int64_t T, const moe_dispatch *d,
                                  const float *gates) {
  moe_gpu *g = moe->gpu;
  int64_t total = d->total_rows, slots = T * moe->spec.k;
  int32_t *idx = malloc((size_t)total * 4), *rows = malloc((size_t)slots * 4);
  mfx_status st = idx && rows ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  for (int e = 0; st == MFX_OK && e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL || d->count[e] == 0) continue;
    int32_t *out = idx + d->offset[e];
    for (int64_t j = 0; j < mfx_moe_bucket(d->count[e]); j++)
      out[j] = j < d->count[e] ? (int32_t)d->list[d->start[e] + j] : -1;
  }
  for (int64_t i = 0; st == MFX_OK && i < slots; i++) rows[i] = (int32_t)d->rows[i];
  uint64_t unused;
  if (st == MFX_OK) st = gpu_buffer(g, GPU_IDX, (size_t)total * 4, &unused);
  if (st == MFX_OK) st = gpu_buffer(g, GPU_ROWS, (size_t)slots * 4, &unused);
  if (st == MFX_OK) st = gpu_buffer(g, GPU_GATES, (size_t)slots * 4, &unused);
  if (st == MFX_OK) st = mfx_device_buffer_write(&g->buf[GPU_IDX], 0, idx, (size_t)total * 4);
  if (st == MFX_OK) st = mfx_device_buffer_write(&g->buf[GPU_ROWS], 0, rows, (size_t)slots * 4);
  if (st == MFX_OK)
    st = mfx_device_buffer_write(&g->buf[GPU_GATES], 0, gates, (size_t)slots * 4);
  free(idx);
  free(rows);
  return st;
}

/* Expert e on its rows of XALL into its rows of YALL, its tokens gathered
 * from the router's input first. */
static mfx_status gpu_pass_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t T,
                                  const moe_dispatch *d) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, rows = mfx_moe_bucket(d->count[e]);
  uint64_t row_bytes = (uint64_t)D * 4, first = (uint64_t)d->offset[e];
  gpu_addresses a;
  MFX_TRY(gpu_activations(g, rows, D, moe->spec.hidden, 0, &a));
  a.x = g->buf[GPU_XALL].address + first * row_bytes;
  a.y = g->buf[GPU_YALL].address + first * row_bytes;
  uint64_t idx = g->buf[GPU_IDX].address + first * 4;
  MFX_TRY(gpu_run(moe, env, "gather_rows", (int64_t[]){mfx_moe_bucket(T), rows, D},
                  (uint64_t[]){g->buf[GPU_X].address, idx, a.x}));
  return gpu_expert(moe, e, env, rows, &a);
}

mfx_status moe_gpu_experts(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                           const moe_dispatch *d, const float *gates, float *y,
                           mfx_moe_trace *trace) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, R = gpu_yall_rows(d);
  size_t out_bytes = (size_t)(T * D) * 4;
  if (d->total_rows == 0) { /* every token went to null experts */
    memset(y, 0, out_bytes);
    return MFX_OK;
  }
  uint64_t xall, yall, out;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_buffer(g, GPU_XALL, (size_t)(R * D) * 4, &xall));
  MFX_TRY(gpu_buffer(g, GPU_YALL, (size_t)(R * D) * 4, &yall));
  MFX_TRY(gpu_buffer(g, GPU_OUT, out_bytes, &out));
  MFX_TRY(gpu_upload_plan(moe, T, d, gates));
  for (int e = 0; e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL || d->count[e] == 0) continue;
    double t0 = mfx_now_seconds();
    mfx_status st = gpu_pass_expert(moe, e, env, T, d);
    if (st == MFX_OK && trace != NULL) st = mfx_device_synchronize(g->dev); /* to time it */
    if (st != MFX_OK)
      return mfx_fail_context(st, "moe expert %d (%s, %lld tokens)", e,
                              mfx_expert_kind_name(moe->spec.kinds[e]), (long long)d->count[e]);
    if (trace != NULL) trace->expert_s[e] = mfx_now_seconds() - t0;
  }
  double t1 = mfx_now_seconds();
  MFX_TRY(gpu_run(moe, env, "combine_rows", (int64_t[]){R, T, moe->spec.k, D},
                  (uint64_t[]){yall, g->buf[GPU_ROWS].address, g->buf[GPU_GATES].address, out}));
  MFX_TRY(mfx_device_buffer_read(&g->buf[GPU_OUT], 0, y, out_bytes));
  if (trace != NULL) trace->combine_s = mfx_now_seconds() - t1;
  return MFX_OK;
}

int moe_gpu_kernel_count(const mfx_moe *moe) { return moe->gpu->n_kernels; }

const mfx_artifact_kernel *moe_gpu_artifact_kernel(const mfx_moe *moe, int i) {
  const moe_gpu *g = moe->gpu;
  if (g->emulated || i < 0 || i >= g->n_kernels) return NULL;
  return &g->kernels[i].art;
}
