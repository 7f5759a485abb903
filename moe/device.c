/* The layer on a GPU target: every step but routing is a GPU kernel on
 * buffers that stay on the device. A pass sends the router's input over
 * once and reads its logits back; top-k routing and the dispatch plan run
 * on the host, which sends back small index lists and the gates; each
 * expert's tokens are gathered on the device (gather_rows), run through its
 * chain, and combined there (combine_rows); the output comes back once.
 *
 * Kernels run on device addresses through the layer's provider: built
 * from the ops' GPU templates (ops/moe_gpu.c; "emulate" runs the same GPU
 * programs in the compiler's CPU emulation on the CPU device's buffers),
 * or loaded from an artifact. The weights are copied over once, and again
 * after they change.
 *
 *   pass:  XPAD -router linear-> logits (to the host); per expert:
 *          XPAD -gather_rows IDX-> XALL rows -chain-> YALL rows; then
 *          YALL -combine_rows ROWS, GATES-> OUT (to the host)
 *   mult:  X -linear W1-> H -gelu-> HG -linear W2-> Y
 *   shift: X -q16_quantize-> XQ -shift_linear S1,G1-> HQ -q16_gelu-> HQ2
 *            -shift_linear S2,G2-> YQ -q16_dequantize-> Y */
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

/* What fixes the launches and arguments of a pass's experts' segment:
 * the token bucket, each expert's rows (its bucket; 0: not run) and where
 * they start in XALL, the weights, and the buffers' addresses (their
 * generation). Zeroed whole before it is filled, so memcmp compares it. */
typedef struct {
  int64_t bucket;
  int64_t rows[MFX_MOE_MAX_EXPERTS];
  int64_t offset[MFX_MOE_MAX_EXPERTS];
  unsigned long weights_version;
  unsigned long buffers_gen;
} gpu_graph_key;

/* How many keys a layer keeps a captured experts' graph for (and, apart,
 * how many keys run once without one it remembers, to capture at their
 * second pass): enough for the few token buckets a server's batches land
 * in, or the batch sizes a training loop alternates between, each with the
 * row buckets its routing gives. A new graph over the limit frees the
 * least recently launched one; a remembered key over the limit forgets the
 * least recently seen one, so one-off keys never push a graph out. Every
 * graph is freed when the weights change or a buffer is reallocated (no
 * key of theirs can match again), and with the layer. A graph holds a
 * node per launch of the segment (three per expert with tokens) in the
 * driver's memory. */
#define MOE_GPU_MAX_GRAPHS 8

/* A key with its captured graph, or (graph NULL) a key seen once. */
typedef struct {
  gpu_graph_key key;
  mfx_graph *graph;
  unsigned long used; /* the layer's use counter at its last use; 0: an empty slot */
} gpu_graph_slot;

static void gpu_graphs_drop(gpu_graph_slot *slots, const gpu_graph_key *current);

/* One expert's weights on the device (unused ones stay empty). */
typedef struct {
  mfx_device_buffer w1, w2, s1, g1, s2, g2;
} gpu_weights;

struct moe_gpu {
  int emulated;
  mfx_device *dev;
  char target[32]; /* what the ops are built for: "cuda:sm_90", or "cuda" emulated */
  char description[256];
  mfx_device_buffer buf[GPU_BUFFER_COUNT];
  mfx_device_buffer router_w;
  gpu_weights expert[MFX_MOE_MAX_EXPERTS];
  unsigned long weights_version; /* the layer's version the device holds */
  mfx_event *start, *end; /* around an expert's kernels */
  double last_expert_s;
  unsigned long buffers_gen; /* bumped whenever a device buffer is (re)allocated */
  /* The experts' segment of a pass as CUDA graphs (see gpu_experts_graph):
   * the captured ones by key, the keys run once plainly, a use counter. */
  gpu_graph_slot graphs[MOE_GPU_MAX_GRAPHS], seen[MOE_GPU_MAX_GRAPHS];
  unsigned long graph_uses;
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
  /* the layer's own stream: its launches and copies queue there, not on
   * the legacy default stream that serializes with every other user */
  MFX_TRY(mfx_device_use_own_stream(g->dev));
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

const mfx_device_info *mfx_moe_device_info(const mfx_moe *moe) {
  return moe != NULL && moe->gpu != NULL ? mfx_device_get_info(moe->gpu->dev) : NULL;
}

static void gpu_weights_free(gpu_weights *w) {
  mfx_device_buffer *all[] = {&w->w1, &w->w2, &w->s1, &w->g1, &w->s2, &w->g2};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mfx_device_buffer_free(all[i]);
}

void moe_gpu_close(mfx_moe *moe) {
  moe_gpu *g = moe->gpu;
  if (g == NULL) return;
  for (int i = 0; i < GPU_BUFFER_COUNT; i++) mfx_device_buffer_free(&g->buf[i]);
  mfx_device_buffer_free(&g->router_w);
  for (int e = 0; e < MFX_MOE_MAX_EXPERTS; e++) gpu_weights_free(&g->expert[e]);
  if (g->start != NULL) mfx_event_destroy(g->start);
  if (g->end != NULL) mfx_event_destroy(g->end);
  gpu_graphs_drop(g->graphs, NULL);
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
    g->buffers_gen++;
    MFX_TRY(mfx_device_buffer_alloc(g->dev, bytes, b));
  }
  *address = b->address;
  return MFX_OK;
}

static mfx_status gpu_upload(moe_gpu *g, mfx_device_buffer *b, const void *src, size_t bytes) {
  if (b->bytes != bytes) {
    mfx_device_buffer_free(b);
    g->buffers_gen++;
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
    } else if (moe_kind_shifts(moe->spec.kinds[e])) {
      MFX_TRY(gpu_upload(g, &w->s1, x->s1, hd));
      MFX_TRY(gpu_upload(g, &w->g1, x->g1, hd));
      MFX_TRY(gpu_upload(g, &w->s2, x->s2, hd));
      MFX_TRY(gpu_upload(g, &w->g2, x->g2, hd));
    }
  }
  g->weights_version = moe->weights_version;
  return MFX_OK;
}

/* ---- running kernels ------------------------------------------------------------------ */

const char *moe_gpu_description(const mfx_moe *moe) { return moe->gpu->description; }
mfx_device *moe_gpu_device(const mfx_moe *moe) { return moe->gpu->dev; }
mfx_device *mfx_moe_device(const mfx_moe *moe) {
  return moe != NULL && moe->gpu != NULL ? moe->gpu->dev : NULL;
}
int moe_gpu_emulated(const mfx_moe *moe) { return moe->gpu->emulated; }
const char *moe_gpu_build_target(const mfx_moe *moe) { return moe->gpu->target; }

/* Runs op at dims (n_dims of them) on device addresses through the
 * layer's provider: its inputs, then its outputs. */
static mfx_status gpu_run_dims(mfx_moe *moe, const mfx_kernel_env *env, const char *name,
                               int n_dims, const int64_t *dims, const uint64_t *addresses) {
  moe_want w[1];
  moe_want_add_dims(w, 0, name, n_dims, dims);
  moe_provider *p = moe->provider;
  if (p->ops->run_device == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe: the %s kernels run on host arrays only",
                    p->ops->kind);
  return p->ops->run_device(p, w, env, addresses);
}

/* ---- the experts and the router ---------------------------------------------------------- */

static mfx_status gpu_linear(mfx_moe *moe, const mfx_kernel_env *env, const char *op,
                             int64_t m, int64_t n, int64_t k, uint64_t x, uint64_t s, uint64_t g,
                             uint64_t y) {
  int64_t dims[3] = {m, n, k};
  if (strncmp(op, "linear", 6) == 0)
    return gpu_run_dims(moe, env, op, 3, dims, (uint64_t[]){x, s, y});
  return gpu_run_dims(moe, env, op, 3, dims, (uint64_t[]){x, s, g, y});
}

static mfx_status gpu_map(mfx_moe *moe, const mfx_kernel_env *env, const char *op, int64_t m,
                          int64_t n, uint64_t x, uint64_t y) {
  return gpu_run_dims(moe, env, op, 2, (int64_t[]){m, n}, (uint64_t[]){x, y});
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
  /* shift, shift16 (HQ i32 or i16: the hidden buffer holds either) */
  mfx_expert_kind kind = moe->spec.kinds[e];
  MFX_TRY(gpu_linear(moe, env, moe_expert_op(kind, 0), rows, H, D, a->x, w->s1.address,
                     w->g1.address, a->hq2));
  return gpu_linear(moe, env, moe_expert_op(kind, 1), rows, D, H, a->hq2, w->s2.address,
                    w->g2.address, a->y);
}

/* The router on GPU_X (rows a bucket, its input already there). */
static mfx_status gpu_router_run(mfx_moe *moe, const mfx_kernel_env *env, int64_t rows,
                                 float *rlogits) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, E = moe->spec.experts;
  uint64_t rl;
  MFX_TRY(gpu_buffer(g, GPU_RL, (size_t)(rows * E) * 4, &rl));
  MFX_TRY(gpu_linear(moe, env, "linear", rows, E, D, g->buf[GPU_X].address, g->router_w.address,
                     0, rl));
  return mfx_device_buffer_read(&g->buf[GPU_RL], 0, rlogits, (size_t)(rows * E) * 4);
}

mfx_status moe_gpu_router(mfx_moe *moe, const mfx_kernel_env *env, const float *xpad,
                          int64_t rows, float *rlogits) {
  moe_gpu *g = moe->gpu;
  uint64_t x;
  size_t bytes = (size_t)(rows * moe->spec.dim) * 4;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_buffer(g, GPU_X, bytes, &x));
  MFX_TRY(mfx_device_buffer_write(&g->buf[GPU_X], 0, xpad, bytes));
  return gpu_router_run(moe, env, rows, rlogits);
}

mfx_status moe_gpu_router_device(mfx_moe *moe, const mfx_kernel_env *env, uint64_t x,
                                 int64_t T, int64_t rows, float *rlogits) {
  moe_gpu *g = moe->gpu;
  uint64_t xpad;
  size_t row_bytes = (size_t)moe->spec.dim * 4;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_buffer(g, GPU_X, (size_t)rows * row_bytes, &xpad));
  MFX_TRY(mfx_device_copy(g->dev, xpad, x, (size_t)T * row_bytes));
  MFX_TRY(mfx_device_zero(g->dev, xpad + (uint64_t)T * row_bytes, (size_t)(rows - T) * row_bytes));
  return gpu_router_run(moe, env, rows, rlogits);
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

/* The token count combine_rows runs at: T, or for a layer whose kernels
 * exist for its buckets only (loaded), T's bucket (the padding tokens
 * combine nothing). */
static int64_t gpu_combine_tokens(const mfx_moe *moe, int64_t T) {
  return moe->n_buckets > 0 ? moe_bucket(moe, T) : T;
}

/* Rows of YALL as allocated: the bucket of the rows used, or for a loaded
 * layer the most they can be (every non-null expert at T's bucket: an
 * expert gets each token at most once), so one combine kernel per bucket
 * serves every dispatch. */
static int64_t gpu_yall_rows(const mfx_moe *moe, int64_t T, const moe_dispatch *d) {
  if (moe->n_buckets == 0) return mfx_moe_bucket(d->total_rows);
  int64_t experts = 0;
  for (int e = 0; e < moe->spec.experts; e++) experts += moe->spec.kinds[e] != MFX_EXPERT_NULL;
  return experts * moe_bucket(moe, T);
}

mfx_status moe_gpu_prepare_pass(mfx_moe *moe, int64_t T, const moe_dispatch *d) {
  int64_t rows[MFX_MOE_MAX_EXPERTS], D = moe->spec.dim;
  moe_want want[MOE_MAX_WANTS];
  for (int e = 0; e < moe->spec.experts; e++) rows[e] = moe_bucket(moe, d->count[e]);
  int n = moe_expert_wants(moe, rows, want);
  for (int e = 0; e < moe->spec.experts; e++)
    if (moe->spec.kinds[e] != MFX_EXPERT_NULL && rows[e] > 0)
      n = moe_want_add(want, n, "gather_rows", moe_bucket(moe, T), rows[e], D);
  if (d->total_rows > 0)
    n = moe_want_add_dims(want, n, "combine_rows", 4,
                          (int64_t[MOE_MAX_OP_DIMS]){gpu_yall_rows(moe, T, d),
                                                     gpu_combine_tokens(moe, T), moe->spec.k, D});
  return moe->provider->ops->ensure(moe->provider, want, n);
}

/* The host side of dispatch, as small arrays for the device: the token of
 * each YALL row (-1 padding) and the YALL row of each slot (-1 null). */
static mfx_status gpu_upload_plan(mfx_moe *moe, int64_t T, const moe_dispatch *d,
                                  const float *gates) {
  moe_gpu *g = moe->gpu;
  int64_t total = d->total_rows, slots = gpu_combine_tokens(moe, T) * moe->spec.k;
  int32_t *idx = malloc((size_t)total * 4), *rows = malloc((size_t)slots * 4);
  mfx_status st = idx && rows ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "moe: out of memory");
  for (int e = 0; st == MFX_OK && e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL || d->count[e] == 0) continue;
    int32_t *out = idx + d->offset[e];
    for (int64_t j = 0; j < moe_bucket(moe, d->count[e]); j++)
      out[j] = j < d->count[e] ? (int32_t)d->list[d->start[e] + j] : -1;
  }
  for (int64_t i = 0; st == MFX_OK && i < slots; i++)
    rows[i] = i < T * moe->spec.k ? (int32_t)d->rows[i] : -1; /* padding tokens: nothing */
  uint64_t unused;
  if (st == MFX_OK) st = gpu_buffer(g, GPU_IDX, (size_t)total * 4, &unused);
  if (st == MFX_OK) st = gpu_buffer(g, GPU_ROWS, (size_t)slots * 4, &unused);
  if (st == MFX_OK) st = gpu_buffer(g, GPU_GATES, (size_t)slots * 4, &unused);
  if (st == MFX_OK) st = mfx_device_buffer_write(&g->buf[GPU_IDX], 0, idx, (size_t)total * 4);
  if (st == MFX_OK) st = mfx_device_buffer_write(&g->buf[GPU_ROWS], 0, rows, (size_t)slots * 4);
  if (st == MFX_OK) /* the padding tokens' gates stay as they are: their rows are -1 */
    st = mfx_device_buffer_write(&g->buf[GPU_GATES], 0, gates, (size_t)(T * moe->spec.k) * 4);
  free(idx);
  free(rows);
  return st;
}

/* Expert e on its rows of XALL into its rows of YALL, its tokens gathered
 * from the router's input first. */
static mfx_status gpu_pass_expert(mfx_moe *moe, int e, const mfx_kernel_env *env, int64_t T,
                                  const moe_dispatch *d) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, rows = moe_bucket(moe, d->count[e]);
  uint64_t row_bytes = (uint64_t)D * 4, first = (uint64_t)d->offset[e];
  gpu_addresses a;
  MFX_TRY(gpu_activations(g, rows, D, moe->spec.hidden, 0, &a));
  a.x = g->buf[GPU_XALL].address + first * row_bytes;
  a.y = g->buf[GPU_YALL].address + first * row_bytes;
  uint64_t idx = g->buf[GPU_IDX].address + first * 4;
  MFX_TRY(gpu_run_dims(moe, env, "gather_rows", 3, (int64_t[]){moe_bucket(moe, T), rows, D},
                       (uint64_t[]){g->buf[GPU_X].address, idx, a.x}));
  return gpu_expert(moe, e, env, rows, &a);
}

static void gpu_graph_key_of(const mfx_moe *moe, int64_t T, const moe_dispatch *d,
                             gpu_graph_key *k) {
  memset(k, 0, sizeof *k);
  k->bucket = moe_bucket(moe, T);
  for (int e = 0; e < moe->spec.experts; e++)
    if (moe->spec.kinds[e] != MFX_EXPERT_NULL && d->count[e] > 0) {
      k->rows[e] = moe_bucket(moe, d->count[e]);
      k->offset[e] = d->offset[e];
    }
  k->weights_version = moe->weights_version;
  k->buffers_gen = moe->gpu->buffers_gen;
}

/* Each expert with tokens: its rows gathered, its chain; timed per expert
 * when trace is not NULL. */
static mfx_status gpu_experts_run(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                                  const moe_dispatch *d, mfx_moe_trace *trace) {
  for (int e = 0; e < moe->spec.experts; e++) {
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL || d->count[e] == 0) continue;
    double t0 = mfx_now_seconds();
    mfx_status st = gpu_pass_expert(moe, e, env, T, d);
    if (st == MFX_OK && trace != NULL) st = mfx_device_synchronize(moe->gpu->dev); /* to time it */
    if (st != MFX_OK)
      return mfx_fail_context(st, "moe expert %d (%s, %lld tokens)", e,
                              mfx_expert_kind_name(moe->spec.kinds[e]), (long long)d->count[e]);
    if (trace != NULL) trace->expert_s[e] = mfx_now_seconds() - t0;
  }
  return MFX_OK;
}

/* ---- the experts' graphs ------------------------------------------------------------------ */

/* Empties the slots whose key was made for other weights or buffers than
 * current's (current NULL: every slot), freeing their graphs: no key of
 * theirs can match again. */
static void gpu_graphs_drop(gpu_graph_slot *slots, const gpu_graph_key *current) {
  for (int i = 0; i < MOE_GPU_MAX_GRAPHS; i++) {
    gpu_graph_slot *s = &slots[i];
    if (s->used == 0) continue;
    if (current != NULL && s->key.weights_version == current->weights_version &&
        s->key.buffers_gen == current->buffers_gen)
      continue;
    mfx_graph_free(s->graph);
    memset(s, 0, sizeof *s);
  }
}

/* The slot holding key, or NULL. */
static gpu_graph_slot *gpu_graph_find(gpu_graph_slot *slots, const gpu_graph_key *key) {
  for (int i = 0; i < MOE_GPU_MAX_GRAPHS; i++)
    if (slots[i].used != 0 && memcmp(&slots[i].key, key, sizeof *key) == 0) return &slots[i];
  return NULL;
}

/* Puts key (and its graph, or NULL) in an empty slot, or else in the least
 * recently used one, whose graph is freed. */
static void gpu_graph_put(moe_gpu *g, gpu_graph_slot *slots, const gpu_graph_key *key,
                          mfx_graph *graph) {
  gpu_graph_slot *s = &slots[0];
  for (int i = 1; i < MOE_GPU_MAX_GRAPHS && s->used != 0; i++)
    if (slots[i].used < s->used) s = &slots[i];
  mfx_graph_free(s->graph);
  s->key = *key;
  s->graph = graph;
  s->used = ++g->graph_uses;
}

/* The first pass of a key: run plainly, the key remembered as the run
 * left the buffers (one it grew leaves no older key that can match). */
static mfx_status gpu_experts_first(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                                    const moe_dispatch *d) {
  moe_gpu *g = moe->gpu;
  MFX_TRY(gpu_experts_run(moe, env, T, d, NULL));
  gpu_graph_key key;
  gpu_graph_key_of(moe, T, d, &key);
  gpu_graphs_drop(g->graphs, &key);
  gpu_graphs_drop(g->seen, &key);
  gpu_graph_put(g, g->seen, &key, NULL);
  return MFX_OK;
}

/* The second pass of a key: its launches captured into a graph on the
 * layer's stream (not run then), kept in the cache, and launched. */
static mfx_status gpu_experts_capture(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                                      const moe_dispatch *d) {
  moe_gpu *g = moe->gpu;
  MFX_TRY(mfx_device_capture_begin(g->dev));
  mfx_status st = gpu_experts_run(moe, env, T, d, NULL);
  mfx_graph *graph = NULL;
  mfx_status end = mfx_device_capture_end(g->dev, st == MFX_OK ? &graph : NULL);
  if (st != MFX_OK) return st;
  if (end != MFX_OK) return mfx_fail_context(end, "moe: capturing the experts' launches");
  gpu_graph_key key;
  gpu_graph_key_of(moe, T, d, &key);
  gpu_graph_put(g, g->graphs, &key, graph);
  return mfx_graph_launch(graph);
}

/* The experts' segment as a CUDA graph. Routing is data-dependent, but once
 * the plan is in its device buffers (IDX, ROWS, GATES) the gathers and the
 * experts' chains have launches and arguments fixed by the key: the first
 * pass with a key runs plainly (kernels built, weights packed, buffers
 * grown), the second captures the segment and launches the graph, later
 * ones launch it alone. Up to MOE_GPU_MAX_GRAPHS keys keep their graphs
 * (least recently used freed first), so batches that alternate between
 * buckets or expert sizes capture each key once; new weights or a buffer
 * reallocated free them all at the next pass. The router (before the
 * logits come back) and the combine and copies to y (the caller's address
 * varies) stay outside. */
static mfx_status gpu_experts_graph(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                                    const moe_dispatch *d) {
  moe_gpu *g = moe->gpu;
  gpu_graph_key key;
  gpu_graph_key_of(moe, T, d, &key);
  gpu_graphs_drop(g->graphs, &key);
  gpu_graphs_drop(g->seen, &key);
  gpu_graph_slot *hit = gpu_graph_find(g->graphs, &key);
  if (hit != NULL) {
    hit->used = ++g->graph_uses;
    return mfx_graph_launch(hit->graph);
  }
  gpu_graph_slot *seen = gpu_graph_find(g->seen, &key);
  if (seen == NULL) return gpu_experts_first(moe, env, T, d);
  memset(seen, 0, sizeof *seen); /* the key moves to the graphs */
  return gpu_experts_capture(moe, env, T, d);
}

mfx_status moe_gpu_experts(mfx_moe *moe, const mfx_kernel_env *env, int64_t T,
                           const moe_dispatch *d, const float *gates, float *y, uint64_t y_dev,
                           mfx_moe_trace *trace) {
  moe_gpu *g = moe->gpu;
  int64_t D = moe->spec.dim, R = gpu_yall_rows(moe, T, d), TC = gpu_combine_tokens(moe, T);
  size_t out_bytes = (size_t)(T * D) * 4;
  if (d->total_rows == 0) { /* every token went to null experts */
    if (y_dev != 0) {
      MFX_TRY(mfx_device_zero(g->dev, y_dev, out_bytes));
      return mfx_device_synchronize(g->dev); /* the end of the pass */
    }
    memset(y, 0, out_bytes);
    return MFX_OK;
  }
  uint64_t xall, yall, out;
  MFX_TRY(gpu_sync_weights(moe));
  MFX_TRY(gpu_buffer(g, GPU_XALL, (size_t)(R * D) * 4, &xall));
  MFX_TRY(gpu_buffer(g, GPU_YALL, (size_t)(R * D) * 4, &yall));
  MFX_TRY(gpu_buffer(g, GPU_OUT, (size_t)(TC * D) * 4, &out));
  MFX_TRY(gpu_upload_plan(moe, T, d, gates));
  /* timed per expert with a trace; on the CPU (emulate) no graphs */
  if (trace != NULL || g->emulated) MFX_TRY(gpu_experts_run(moe, env, T, d, trace));
  else MFX_TRY(gpu_experts_graph(moe, env, T, d));
  double t1 = mfx_now_seconds();
  /* straight into the caller's device buffer when the combine has its shape */
  uint64_t target = y_dev != 0 && TC == T ? y_dev : out;
  MFX_TRY(gpu_run_dims(moe, env, "combine_rows", 4, (int64_t[]){R, TC, moe->spec.k, D},
                       (uint64_t[]){yall, g->buf[GPU_ROWS].address, g->buf[GPU_GATES].address,
                                    target}));
  if (y_dev != 0 && target != y_dev) MFX_TRY(mfx_device_copy(g->dev, y_dev, out, out_bytes));
  /* the end of the pass: the one wait on the layer's stream after the
   * routing's (y comes back, or y_dev is complete for any other user) */
  if (y_dev != 0) MFX_TRY(mfx_device_synchronize(g->dev));
  if (y_dev == 0) MFX_TRY(mfx_device_buffer_read(&g->buf[GPU_OUT], 0, y, out_bytes));
  if (trace != NULL) trace->combine_s = mfx_now_seconds() - t1;
  return MFX_OK;
}
