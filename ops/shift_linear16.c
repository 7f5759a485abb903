/* shift_linear16: MatShift on 16-bit lanes.
 *   Y[m, n] = sum_k G[n, k] (X[m, k] >> S[n, k])        (exact, i32 result)
 * X is i16 fixed point restricted to -8192..8191 (14 significant bits, e.g.
 * Q3.10: value = X / 1024 in [-8, 8)); S the right-shift amounts 0..15; G
 * the signs -1, 0, 1. Each term is truncated on its own (x >> s is an arithmetic
 * shift: floor(x / 2^s)), the sign applied after the shift, as ShiftAddViT's
 * TVM MatShift kernel does; the sum is exact (no rounding, no saturation):
 * |Y| <= K * 8192 fits i32 for K < 2^18, which the build checks.
 *
 * How it is computed (the bound that makes it exact). Per term, in i16,
 *   t = ((x >> s) & Z) ^ N     Z = G != 0 ? -1 : 0,  N = G < 0 ? -1 : 0
 * which is x >> s for G = 1, 0 for G = 0 and ~(x >> s) = -(x >> s) - 1 for
 * G = -1, so Y = sum t + CNT[n] with CNT[n] the count of negative signs.
 * x >> s lies in -8192..8191, and ~ maps that range onto itself, so every t
 * does too; a block of SHIFT16_BLOCK = 4 terms sums to -32768..32764, inside
 * i16: the i16 sum of a block (wrapping adds, which never wrap here) is the
 * exact sum. Blocks are widened to i32 and summed there. A larger block or a
 * wider X would overflow i16; that is why X's range is part of the op
 * (checked on every checked run: `mfx run --in`, artifacts, mfx-runner).
 * (12-bit X in blocks of 16 would widen less often, 3B + 4 ALU
 * instructions per 32 B terms, but such a block's 48 weight vectors do not
 * fit the register file beside 8 rows of accumulators, and the tiles that
 * fit measured no faster than blocks of 4 at 8 rows; so the op keeps 2 more
 * bits of X, docs/performance.md.)
 *
 * CPU template: the weights as i16 panels [n/P, k, P] of P = tile_n
 * columns (P = 32: one zmm of 32 lanes per k), the reduction over blocks of
 * 4 k with the block's 4 terms an i16 expression (vpsravw, vpternlogd,
 * vpaddw per 32 terms) added to the i32 register tile once per block. */
#include "shift16.h"

enum { S16_M, S16_N, S16_K };
#define SHIFT16_BLOCK 4

typedef mfx_expr *(*s16_weight_fn)(mfx_arena *a, mfx_expr *s, mfx_expr *g);

/* S & 15: every amount is defined (valid ones are 0..15 and unchanged). */
static mfx_expr *s16_amount(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)g;
  return mfx_binary(a, MFX_AND, mfx_cast(a, MFX_I16, s), mfx_int(a, MFX_I16, 15));
}

static mfx_expr *s16_mask(mfx_arena *a, mfx_expr *cond) {
  return mfx_select(a, cond, mfx_int(a, MFX_I16, -1), mfx_int(a, MFX_I16, 0));
}

static mfx_expr *s16_nonzero(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)s;
  return s16_mask(a, mfx_binary(a, MFX_NE, g, mfx_int(a, MFX_I8, 0)));
}

static mfx_expr *s16_negative(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)s;
  return s16_mask(a, mfx_binary(a, MFX_LT, g, mfx_int(a, MFX_I8, 0)));
}

/* K rounded up to whole blocks of B. */
static int64_t s16_padded_k(int64_t K, int64_t B) { return (K + B - 1) / B * B; }

/* A weight stage f(S, G) over (n, kp), kp < Kp; 0 (a zero term: shift 0,
 * masks 0) past K, and column N-1 repeated past N in the last panel. */
static mfx_status s16_weight_stage(mfx_arena *a, mfx_s16_parts *p, const char *name,
                                   s16_weight_fn f, mfx_tensor **out) {
  int64_t N = p->S->buf->shape[0], K = p->S->buf->shape[1], Kp = s16_padded_k(K, p->block);
  int64_t P = p->panel;
  mfx_tensor *T =
      P > 0 ? mfx_compute_begin(a, name, MFX_I16, 3, (int64_t[]){(N + P - 1) / P, Kp, P},
                                (const char *[]){"jo", "k", "ji"})
            : mfx_compute_begin(a, name, MFX_I16, 2, (int64_t[]){Kp, N},
                                (const char *[]){"k", "n"});
  if (T == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear16: weight stage %s", name);
  mfx_expr *n, *k = mfx_tmpl_axis(a, T, P > 0 ? 1 : 0);
  if (P > 0) {
    n = mfx_add(a, mfx_mul(a, mfx_tmpl_axis(a, T, 0), mfx_i64(a, P)), mfx_tmpl_axis(a, T, 2));
    if (N % P != 0) n = mfx_binary(a, MFX_MIN, n, mfx_i64(a, N - 1));
  } else {
    n = mfx_tmpl_axis(a, T, 1);
  }
  mfx_expr *kk = Kp != K ? mfx_binary(a, MFX_MIN, k, mfx_i64(a, K - 1)) : k;
  mfx_expr *body = f(a, mfx_tmpl_load2(a, p->S, n, kk), mfx_tmpl_load2(a, p->G, n, kk));
  if (Kp != K)
    body = mfx_select(a, mfx_binary(a, MFX_LT, k, mfx_i64(a, K)), body, mfx_int(a, MFX_I16, 0));
  MFX_TRY(mfx_tmpl_set_body(a, T, body));
  *out = T;
  return MFX_OK;
}

/* Stage T read at (n, k) in its own layout. */
static mfx_expr *s16_weight_load(mfx_arena *a, const mfx_s16_parts *p, mfx_tensor *T,
                                 mfx_expr *n, mfx_expr *k) {
  if (p->panel <= 0) return mfx_tmpl_load2(a, T, k, n);
  mfx_expr *idx[3] = {mfx_binary(a, MFX_DIV, n, mfx_i64(a, p->panel)), k,
                      mfx_binary(a, MFX_MOD, n, mfx_i64(a, p->panel))};
  return idx[0] && idx[2] ? mfx_tensor_load(a, T, 3, idx) : NULL;
}

/* The block's i16 sum of its B terms t = ((x >> s) & Z) ^ N, widened. */
static mfx_expr *s16_block_sum(mfx_arena *a, const mfx_s16_parts *p, mfx_expr *i, mfx_expr *j,
                               mfx_expr *ko) {
  int64_t K = p->X->buf->shape[1], B = p->block;
  mfx_expr *sum = NULL;
  for (int64_t c = 0; c < B; c++) {
    mfx_expr *k = mfx_add(a, mfx_mul(a, ko, mfx_i64(a, B)), mfx_i64(a, c));
    /* past K the weights are zero masks: any X in bounds gives t = 0 */
    mfx_expr *kx = p->XR == p->X && K % B != 0 ? mfx_binary(a, MFX_MIN, k, mfx_i64(a, K - 1)) : k;
    mfx_expr *v = mfx_binary(a, MFX_SHR, mfx_tmpl_load2(a, p->XR, i, kx),
                             s16_weight_load(a, p, p->ST, j, k));
    mfx_expr *t = mfx_binary(a, MFX_XOR,
                             mfx_binary(a, MFX_AND, v, s16_weight_load(a, p, p->ZM, j, k)),
                             s16_weight_load(a, p, p->NM, j, k));
    sum = sum == NULL ? t : mfx_add(a, sum, t);
  }
  return mfx_cast(a, MFX_I32, sum);
}

/* CNT[n] = the number of k with G[n, k] < 0. */
static mfx_status s16_negative_count(mfx_arena *a, mfx_s16_parts *p) {
  int64_t N = p->G->buf->shape[0], K = p->G->buf->shape[1];
  p->CNT = mfx_compute_begin(a, "CNT", MFX_I32, 1, (int64_t[]){N}, (const char *[]){"n"});
  if (p->CNT == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear16: CNT");
  mfx_var *k = mfx_var_create(a, "kc", K, 1);
  mfx_expr *g = mfx_tmpl_load2(a, p->G, mfx_tmpl_axis(a, p->CNT, 0), mfx_var_ref(a, k));
  mfx_expr *one = mfx_select(a, mfx_binary(a, MFX_LT, g, mfx_int(a, MFX_I8, 0)),
                             mfx_int(a, MFX_I32, 1), mfx_int(a, MFX_I32, 0));
  return mfx_tmpl_set_body(a, p->CNT, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, one));
}

/* ACC[i, j] = sum over blocks ko of the block sums; Y = ACC + CNT[j]. */
static mfx_status s16_reduction(mfx_arena *a, mfx_s16_parts *p, int64_t M, int64_t N, int64_t K) {
  p->ACC = mfx_compute_begin(a, "ACC", MFX_I32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  p->Y = mfx_compute_begin(a, "Y", MFX_I32, 2, (int64_t[]){M, N}, (const char *[]){"i", "j"});
  if (p->ACC == NULL || p->Y == NULL)
    return mfx_fail_context(MFX_ERR_INVALID, "shift_linear16: ACC, Y");
  mfx_var *ko = mfx_var_create(a, "ko", s16_padded_k(K, p->block) / p->block, 1);
  mfx_expr *body = s16_block_sum(a, p, mfx_tmpl_axis(a, p->ACC, 0), mfx_tmpl_axis(a, p->ACC, 1),
                                 mfx_var_ref(a, ko));
  MFX_TRY(mfx_tmpl_set_body(a, p->ACC, mfx_reduce(a, MFX_REDUCE_SUM, 1, &ko, body)));
  mfx_expr *i = mfx_tmpl_axis(a, p->Y, 0), *j = mfx_tmpl_axis(a, p->Y, 1);
  return mfx_tmpl_set_body(a, p->Y, mfx_add(a, mfx_tmpl_load2(a, p->ACC, i, j),
                                            j ? mfx_tensor_load(a, p->CNT, 1, &j) : NULL));
}

/* XP[m, kp] = X[m, kp] for kp < K, else 0: loads of X affine in the
 * loops (the GPU template stages them in shared memory). */
static mfx_status s16_pad_x(mfx_arena *a, mfx_s16_parts *p) {
  int64_t M = p->X->buf->shape[0], K = p->X->buf->shape[1], Kp = s16_padded_k(K, p->block);
  p->XR = mfx_compute_begin(a, "XP", MFX_I16, 2, (int64_t[]){M, Kp}, (const char *[]){"m", "k"});
  if (p->XR == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear16: XP");
  mfx_expr *k = mfx_tmpl_axis(a, p->XR, 1);
  mfx_expr *x = mfx_tmpl_load2(a, p->X, mfx_tmpl_axis(a, p->XR, 0),
                               mfx_binary(a, MFX_MIN, k, mfx_i64(a, K - 1)));
  return mfx_tmpl_set_body(a, p->XR, mfx_select(a, mfx_binary(a, MFX_LT, k, mfx_i64(a, K)), x,
                                                mfx_int(a, MFX_I16, 0)));
}

/* The tensor expressions (see shift16.h). */
mfx_status mfx_s16_te(mfx_arena *a, const int64_t *dims, int64_t panel, int pad_x,
                      mfx_s16_parts *p) {
  int64_t block = SHIFT16_BLOCK;
  int64_t M = dims[S16_M], N = dims[S16_N], K = dims[S16_K];
  if (K > MFX_SHIFT16_K_MAX)
    return mfx_fail(MFX_ERR_INVALID, "shift_linear16: K = %lld is over %lld: the exact sum "
                    "(up to K * 8192) would not fit Y's i32; split the reduction",
                    (long long)K, (long long)MFX_SHIFT16_K_MAX);
  mfx_tensor *X = p->X;
  *p = (mfx_s16_parts){.panel = panel, .block = block};
  p->X = X != NULL ? X : mfx_placeholder(a, "X", MFX_I16, 2, (int64_t[]){M, K});
  p->S = mfx_placeholder(a, "S", MFX_I8, 2, (int64_t[]){N, K});
  p->G = mfx_placeholder(a, "G", MFX_I8, 2, (int64_t[]){N, K});
  if (!p->X || !p->S || !p->G) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear16: inputs");
  p->XR = p->X;
  if (pad_x && K % block != 0) MFX_TRY(s16_pad_x(a, p));
  MFX_TRY(s16_weight_stage(a, p, "ST", s16_amount, &p->ST));
  MFX_TRY(s16_weight_stage(a, p, "ZM", s16_nonzero, &p->ZM));
  MFX_TRY(s16_weight_stage(a, p, "NM", s16_negative, &p->NM));
  MFX_TRY(s16_negative_count(a, p));
  return s16_reduction(a, p, M, N, K);
}

/* The unscheduled schedule of the op itself. */
static mfx_status s16_define(mfx_arena *a, const int64_t *dims, int64_t panel, int pad_x,
                             mfx_s16_parts *p, mfx_schedule **out) {
  p->X = NULL;
  MFX_TRY(mfx_s16_te(a, dims, panel, pad_x, p));
  return mfx_sched_create(a, 3, (mfx_tensor *[]){p->X, p->S, p->G}, 1, &p->Y, out);
}

#define S16_CPU_KNOBS(X) \
  X(tile_m) X(tile_n) X(tile_k) X(vec) X(unroll) X(parallel) X(cols_outer)
MFX_KNOB_VIEW(s16_knobs, S16_CPU_KNOBS)
#define S16_GPU_KNOBS(X) \
  X(block_m) X(block_n) X(thread_m) X(thread_n) X(block_k) X(shared) X(unroll) X(threads)
MFX_KNOB_VIEW(s16_gpu_knobs, S16_GPU_KNOBS)

/* CPU: weight panels and the count elementwise; the reduction register-tiled
 * (tile_m rows by tile_n vector columns, accumulated in registers). */
mfx_status mfx_s16_schedule(mfx_schedule *s, const mfx_s16_parts *p, const mfx_config *cfg,
                            const char *what) {
  s16_knobs k;
  MFX_TRY(s16_knobs_read(cfg, what, &k));
  int parallel = (int)k.parallel;
  mfx_tensor *weights[3] = {p->ST, p->ZM, p->NM};
  for (int i = 0; i < 3; i++) MFX_TRY(mfx_tmpl_apply_elementwise(s, weights[i], 8, 0, parallel));
  MFX_TRY(mfx_tmpl_apply_elementwise(s, p->CNT, 8, 0, parallel));
  mfx_tmpl_tiled_reduce t = {
    .x = "i", .y = "j", .r = "ko",
    .fx = k.tile_m, .fy = k.tile_n, .fr = k.tile_k,
    .vec = (int)k.vec, .unroll = (int)k.unroll,
    .parallel = parallel, .local = 1,
    .cols_outer = (int)k.cols_outer,
  };
  return mfx_tmpl_apply_tiled_reduce(s, p->ACC, &t);
}

/* The op: Y = ACC + CNT[j] applied at the tile's write-back. */
static mfx_status s16_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                            mfx_schedule **out) {
  s16_knobs k;
  MFX_TRY(s16_knobs_read(cfg, "shift_linear16", &k));
  mfx_s16_parts p;
  MFX_TRY(s16_define(a, dims, k.tile_n, 0, &p, out));
  MFX_TRY(mfx_s16_schedule(*out, &p, cfg, "shift_linear16"));
  mfx_stage *rs, *ys;
  MFX_TRY(mfx_tmpl_stage(*out, p.ACC, &rs));
  MFX_TRY(mfx_tmpl_stage(*out, p.Y, &ys));
  return mfx_sched_fuse_epilogue(*out, rs, ys);
}

/* GPU: the weight stages ([k, n], i16), the count, Y = ACC + CNT[j] (with_y) and (when K is not a
 * whole number of blocks) XP one element per thread, each its own kernel;
 * the reduction block-tiled over blocks of 4 k, its i16 block sums widened
 * as on the CPU (the same exact arithmetic). */
mfx_status mfx_s16_schedule_gpu(mfx_schedule *s, const mfx_s16_parts *p, const mfx_config *cfg,
                                const char *what, int with_y) {
  s16_gpu_knobs k;
  MFX_TRY(s16_gpu_knobs_read(cfg, what, &k));
  mfx_tensor *each[5] = {p->ST, p->ZM, p->NM, p->CNT, p->Y};
  for (int i = 0; i < 4 + (with_y != 0); i++)
    MFX_TRY(mfx_gpu_apply_elementwise(s, each[i], k.threads));
  if (p->XR != p->X) MFX_TRY(mfx_gpu_apply_elementwise(s, p->XR, k.threads));
  mfx_gpu_tiled_reduce t = {
    .what = what, .x = "i", .y = "j", .r = "ko",
    .bx = k.block_m, .by = k.block_n, .tx = k.thread_m, .ty = k.thread_n, .br = k.block_k,
    .shared = (int)k.shared, .unroll = (int)k.unroll,
    .n_staged = 4, .staged = {{p->XR, 'x'}, {p->ST, 'y'}, {p->ZM, 'y'}, {p->NM, 'y'}},
  };
  return mfx_gpu_apply_tiled_reduce(s, p->ACC, &t);
}

/* The op: Y = ACC + CNT[j] its own kernel. */
static mfx_status s16_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                mfx_schedule **out) {
  mfx_s16_parts p;
  MFX_TRY(s16_define(a, dims, 0, 1, &p, out));
  return mfx_s16_schedule_gpu(*out, &p, cfg, "shift_linear16 (GPU)", 1);
}

const mfx_op mfx_op_def_shift_linear16 = {
  MFX_OP_LISTED(shift_linear16),
  .about = "shift layer Y = sum_k G (X >> S) on 16-bit lanes: X i16 in -8192..8191 "
           "(e.g. Q3.10), exact i32 sums",
  MFX_OP_IO(shift_linear16),
  MFX_S16_KNOBS(1, 0, ),
  .build = s16_build,
  MFX_S16_GPU_KNOBS,
  .build_gpu = s16_build_gpu,
};
