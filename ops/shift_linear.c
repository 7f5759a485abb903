/* shift_linear (MatShift): weights that are signed powers of two.
 *   Y[m, n] = sum_k G[n, k] (X[m, k] >> S[n, k])   (i32, wrapping)
 * Multiplication-free: the sign is applied by selects or by bit masks.
 *
 * form 0: term = G > 0 ? v : (G < 0 ? -v : 0), v = X >> S.
 * form 1: term = (v & Z) ^ N with Z = (G != 0 ? -1 : 0), N = (G < 0 ? -1 : 0);
 *         for G = -1 that is ~v = -v - 1, so Y = ACC + CNT[n] where CNT[n]
 *         counts the negative weights of row n. Three vector operations per
 *         term (shift, and-xor, add) instead of six; exact under 32-bit
 *         wrap-around.
 * form 2 (GPU): shift and sign packed in one byte, P = sgn(G) << 5 | (S & 31)
 *         (u8), staged once; per term with p = P widened, s = p & 31,
 *         z = (p << 26) >> 31 (bit 5: G != 0), m = (p << 24) >> 31 (bit 7:
 *         G < 0), arithmetic shifts:
 *         term = (((X >> s) & z) ^ m) - m, the sign applied without a select
 *         or a count pass: a shift, one three-input logic op (and-xor) and one
 *         three-input add (acc + t - m) per term; the decode is per column
 *         and k, shared by the thread's rows. One kernel after the packing.
 * form 3 (GPU default): form 2's byte (SG, laid out [n, k]) decoded once per
 *         block into shared tiles DS, DZ, DM (i32 [n, k], computed in the
 *         fill), term ((X >> s) & z) ^ m (~v = -v - 1 for G < 0) and
 *         Y = ACC + CNT[n] at the write-back, as in form 1 (CNT from bit 7 of
 *         the byte, its own kernel, packed once in the MoE layer); two k per
 *         accumulator in a row (unroll_k 2): acc + t1 + t2 is one IADD3, and
 *         the shared loads pairs of k. Zero-filled tiles add exactly 0, so
 *         no guard is left in the update (mfx_sched_unguarded_reduce).
 *         2.5 SASS instructions per term plus ~0.4 of loads and loop
 *         (bench/sass_count.py, docs/performance.md).
 * pack 1 lays the weight stages out as [k, n] so the n loop is contiguous
 * (form 3's SG stays [n, k]: its decoded tiles are read two k at a time);
 * they stay i8 (a quarter of the memory traffic of i32) and are widened in
 * registers, once per k for all the tile's rows. */
#include "knobs.h"

enum { SHIFT_M, SHIFT_N, SHIFT_K };

typedef mfx_shift_parts shift_parts;

/* An i8 weight stage T over (k, n) (pack) or (n, k) computing f(S[n,k], G[n,k]). */
typedef mfx_expr *(*shift_weight_fn)(mfx_arena *a, mfx_expr *s, mfx_expr *g);

static mfx_expr *shift_amount(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)a;
  (void)g;
  return s;
}

static mfx_expr *shift_sign(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)a;
  (void)s;
  return g;
}

static mfx_expr *shift_nonzero_mask(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)s;
  return mfx_select(a, mfx_binary(a, MFX_NE, g, mfx_int(a, MFX_I8, 0)),
                    mfx_int(a, MFX_I8, -1), mfx_int(a, MFX_I8, 0));
}

static mfx_expr *shift_negative_mask(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  (void)s;
  return mfx_select(a, mfx_binary(a, MFX_LT, g, mfx_int(a, MFX_I8, 0)),
                    mfx_int(a, MFX_I8, -1), mfx_int(a, MFX_I8, 0));
}

/* sgn(G) << 5 | (S & 31) in an i8: the bits above 5 are the sign. */
static mfx_expr *shift_packed(mfx_arena *a, mfx_expr *s, mfx_expr *g) {
  mfx_expr *zero = mfx_int(a, MFX_I8, 0);
  mfx_expr *sgn = mfx_select(a, mfx_binary(a, MFX_GT, g, zero), mfx_int(a, MFX_I8, 1),
                             mfx_select(a, mfx_binary(a, MFX_LT, g, zero),
                                        mfx_int(a, MFX_I8, -1), zero));
  return mfx_binary(a, MFX_OR, mfx_binary(a, MFX_SHL, sgn, mfx_int(a, MFX_I8, 5)),
                    mfx_binary(a, MFX_AND, s, mfx_int(a, MFX_I8, 31)));
}

/* pack 2: i32 panels T[jo, k, ji] = f(S, G)[min(jo*P + ji, N-1), k] of
 * P = p->panel columns (the register tile's width; 16 when unset): each k
 * step of a column tile reads P consecutive weights (a [k, n] copy strides
 * N per k: at N = 1024 every k row maps to the same L1 set). */
static int64_t shift_panel(const shift_parts *p) { return p->panel > 0 ? p->panel : 16; }

/* pack 1's stages laid out [k, n] (n contiguous); form 3's packed byte
 * stays [n, k]: its decoded words are staged [n, k], two k side by side. */
static int shift_kn(const shift_parts *p) { return p->pack == 1 && p->form != 3; }

static mfx_tensor *shift_stage_begin(mfx_arena *a, const shift_parts *p, const char *name,
                                     mfx_dtype dtype, int64_t N, int64_t K) {
  if (p->pack == 2)
    return mfx_compute_begin(a, name, MFX_I32, 3,
                             (int64_t[]){(N + shift_panel(p) - 1) / shift_panel(p), K,
                                         shift_panel(p)},
                             (const char *[]){"jo", "k", "ji"});
  if (shift_kn(p))
    return mfx_compute_begin(a, name, dtype, 2, (int64_t[]){K, N}, (const char *[]){"k", "n"});
  return mfx_compute_begin(a, name, dtype, 2, (int64_t[]){N, K}, (const char *[]){"n", "k"});
}

static mfx_status shift_weight_stage(mfx_arena *a, shift_parts *p, const char *name,
                                     shift_weight_fn f, mfx_tensor **out) {
  int64_t N = p->S->buf->shape[0], K = p->S->buf->shape[1];
  /* the packed byte unsigned: four of them load as one ld.shared.v4.u8 */
  mfx_dtype dtype = f == shift_packed ? MFX_U8 : MFX_I8;
  mfx_tensor *T = shift_stage_begin(a, p, name, dtype, N, K);
  if (T == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear: weight stage %s", name);
  mfx_expr *n, *k;
  if (p->pack == 2) {
    n = mfx_add(a, mfx_mul(a, mfx_tmpl_axis(a, T, 0), mfx_i64(a, shift_panel(p))),
                mfx_tmpl_axis(a, T, 2));
    if (N % shift_panel(p) != 0) n = mfx_binary(a, MFX_MIN, n, mfx_i64(a, N - 1));
    k = mfx_tmpl_axis(a, T, 1);
  } else {
    n = mfx_tmpl_axis(a, T, shift_kn(p) ? 1 : 0);
    k = mfx_tmpl_axis(a, T, shift_kn(p) ? 0 : 1);
  }
  mfx_expr *body = f(a, mfx_tmpl_load2(a, p->S, n, k), mfx_tmpl_load2(a, p->G, n, k));
  if (p->pack == 2) body = mfx_cast(a, MFX_I32, body);
  else if (dtype != MFX_I8) body = mfx_cast(a, dtype, body);
  MFX_TRY(mfx_tmpl_set_body(a, T, body));
  p->weight[p->n_weight++] = T;
  *out = T;
  return MFX_OK;
}

/* The weight stage T read at (n, k) in its own layout, as i32. */
static mfx_expr *shift_weight_load(mfx_arena *a, const shift_parts *p, mfx_tensor *T,
                                   mfx_expr *n, mfx_expr *k) {
  if (p->pack == 2) {
    mfx_expr *idx[3] = {mfx_binary(a, MFX_DIV, n, mfx_i64(a, shift_panel(p))), k,
                        mfx_binary(a, MFX_MOD, n, mfx_i64(a, shift_panel(p)))};
    return idx[0] && idx[2] ? mfx_tensor_load(a, T, 3, idx) : NULL;
  }
  mfx_expr *w = shift_kn(p) ? mfx_tmpl_load2(a, T, k, n) : mfx_tmpl_load2(a, T, n, k);
  return mfx_cast(a, MFX_I32, w);
}

/* form 0: the select chain, reading S and G directly or from [k, n] copies. */
static mfx_status shift_term_select(mfx_arena *a, shift_parts *p, mfx_expr *x, mfx_expr *n,
                                    mfx_expr *k, mfx_expr **term) {
  mfx_expr *s, *g;
  if (p->pack) {
    mfx_tensor *ST = NULL, *GT = NULL;
    MFX_TRY(shift_weight_stage(a, p, "ST", shift_amount, &ST));
    MFX_TRY(shift_weight_stage(a, p, "GT", shift_sign, &GT));
    s = shift_weight_load(a, p, ST, n, k);
    g = shift_weight_load(a, p, GT, n, k);
  } else {
    s = mfx_cast(a, MFX_I32, mfx_tmpl_load2(a, p->S, n, k));
    g = mfx_tmpl_load2(a, p->G, n, k);
  }
  mfx_expr *v = mfx_binary(a, MFX_SHR, x, s);
  mfx_expr *neg = mfx_select(a, mfx_binary(a, MFX_LT, g, mfx_int(a, MFX_I32, 0)),
                             mfx_unary(a, MFX_NEG, v), mfx_int(a, MFX_I32, 0));
  *term = mfx_select(a, mfx_binary(a, MFX_GT, g, mfx_int(a, MFX_I32, 0)), v, neg);
  return MFX_OK;
}

/* form 1: (v & Z) ^ N from three weight stages. */
static mfx_status shift_term_mask(mfx_arena *a, shift_parts *p, mfx_expr *x, mfx_expr *n,
                                  mfx_expr *k, mfx_expr **term) {
  mfx_tensor *ST = NULL, *ZM = NULL, *NM = NULL;
  MFX_TRY(shift_weight_stage(a, p, "ST", shift_amount, &ST));
  MFX_TRY(shift_weight_stage(a, p, "ZM", shift_nonzero_mask, &ZM));
  MFX_TRY(shift_weight_stage(a, p, "NM", shift_negative_mask, &NM));
  mfx_expr *v = mfx_binary(a, MFX_SHR, x, shift_weight_load(a, p, ST, n, k));
  mfx_expr *kept = mfx_binary(a, MFX_AND, v, shift_weight_load(a, p, ZM, n, k));
  *term = mfx_binary(a, MFX_XOR, kept, shift_weight_load(a, p, NM, n, k));
  return MFX_OK;
}

/* The packed byte at (n, k), widened to i32: a staged copy with pack (the
 * SG stage, made on first use), else computed from S and G. */
static mfx_status shift_packed_at(mfx_arena *a, shift_parts *p, mfx_expr *n, mfx_expr *k,
                                  mfx_expr **out) {
  if (p->pack) {
    mfx_tensor *SG = p->n_weight > 0 ? p->weight[0] : NULL;
    if (SG == NULL) MFX_TRY(shift_weight_stage(a, p, "SG", shift_packed, &SG));
    *out = shift_weight_load(a, p, SG, n, k);
    return MFX_OK;
  }
  mfx_expr *byte = shift_packed(a, mfx_tmpl_load2(a, p->S, n, k), mfx_tmpl_load2(a, p->G, n, k));
  *out = mfx_cast(a, MFX_I32, mfx_cast(a, MFX_U8, byte));
  return MFX_OK;
}

/* Bits 0..4 of the packed byte (the shift), and bits 5 and 7 sign-extended
 * (G != 0, G < 0). */
static mfx_expr *shift_decode(mfx_arena *a, mfx_expr *packed, int which) {
  if (which == 0) return mfx_binary(a, MFX_AND, packed, mfx_int(a, MFX_I32, 31));
  return mfx_binary(a, MFX_SHR,
                    mfx_binary(a, MFX_SHL, packed, mfx_int(a, MFX_I32, which == 1 ? 26 : 24)),
                    mfx_int(a, MFX_I32, 31));
}

/* form 3: the decoded words DS (shift), DZ (nonzero mask), DM (sign mask),
 * [n, k] i32 stages of the packed byte that the GPU template computes into
 * its shared tiles (once per block, not once per thread and k). */
static mfx_status shift_decoded_stages(mfx_arena *a, shift_parts *p) {
  static const char *const names[3] = {"DS", "DZ", "DM"};
  int64_t N = p->S->buf->shape[0], K = p->S->buf->shape[1];
  for (int i = 0; i < 3; i++) {
    mfx_tensor *D = mfx_compute_begin(a, names[i], MFX_I32, 2, (int64_t[]){N, K},
                                      (const char *[]){"n", "k"});
    if (D == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear: stage %s", names[i]);
    mfx_expr *packed = NULL;
    MFX_TRY(shift_packed_at(a, p, mfx_tmpl_axis(a, D, 0), mfx_tmpl_axis(a, D, 1), &packed));
    MFX_TRY(mfx_tmpl_set_body(a, D, packed ? shift_decode(a, packed, i) : NULL));
    p->decoded[p->n_decoded++] = D;
  }
  return MFX_OK;
}

/* forms 2 and 3: the packed byte decoded into shift s, nonzero mask z and
 * sign mask m; term (((X >> s) & z) ^ m) - m (form 2), or without the - m
 * (form 3: ~v for G < 0, the missing +1 per negative weight counted in CNT,
 * and s, z, m read from the decoded stages). */
static mfx_status shift_term_packed(mfx_arena *a, shift_parts *p, mfx_expr *x, mfx_expr *n,
                                    mfx_expr *k, mfx_expr **term) {
  mfx_expr *w[3];
  if (p->form == 3) {
    MFX_TRY(shift_decoded_stages(a, p));
    for (int i = 0; i < 3; i++) w[i] = mfx_tmpl_load2(a, p->decoded[i], n, k);
  } else {
    mfx_expr *packed = NULL;
    MFX_TRY(shift_packed_at(a, p, n, k, &packed));
    for (int i = 0; i < 3; i++) w[i] = shift_decode(a, packed, i);
  }
  mfx_expr *v = mfx_binary(a, MFX_SHR, x, w[0]);
  mfx_expr *t = mfx_binary(a, MFX_XOR, mfx_binary(a, MFX_AND, v, w[1]), w[2]);
  *term = p->form == 3 ? t : mfx_sub(a, t, w[2]);
  return MFX_OK;
}

/* CNT[n] = number of k with G[n, k] < 0. */
static mfx_status shift_negative_count(mfx_arena *a, shift_parts *p, mfx_tensor **out) {
  int64_t N = p->G->buf->shape[0], K = p->G->buf->shape[1];
  mfx_tensor *C = mfx_compute_begin(a, "CNT", MFX_I32, 1, (int64_t[]){N},
                                    (const char *[]){"n"});
  mfx_var *k = mfx_var_create(a, "kc", K, 1);
  mfx_expr *n = mfx_tmpl_axis(a, C, 0), *one;
  if (p->form == 3 && p->pack) {
    /* bit 7 of the packed byte */
    one = mfx_binary(a, MFX_SHR, shift_weight_load(a, p, p->weight[0], n, mfx_var_ref(a, k)),
                     mfx_int(a, MFX_I32, 7));
  } else {
    mfx_expr *g = mfx_tmpl_load2(a, p->G, n, mfx_var_ref(a, k));
    one = mfx_select(a, mfx_binary(a, MFX_LT, g, mfx_int(a, MFX_I8, 0)), mfx_int(a, MFX_I32, 1),
                     mfx_int(a, MFX_I32, 0));
  }
  MFX_TRY(mfx_tmpl_set_body(a, C, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, one)));
  *out = C;
  return MFX_OK;
}

/* The reduction stage: Y itself (forms 0, 2) or ACC before the count (forms 1, 3). */
static mfx_status shift_reduction(mfx_arena *a, shift_parts *p, const char *name,
                                  int64_t M, int64_t N, int64_t K, mfx_tensor **out) {
  mfx_tensor *R = mfx_compute_begin(a, name, MFX_I32, 2, (int64_t[]){M, N},
                                    (const char *[]){"i", "j"});
  if (R == NULL) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear: %s", name);
  mfx_var *k = mfx_var_create(a, "k", K, 1);
  mfx_expr *kk = mfx_var_ref(a, k), *n = mfx_tmpl_axis(a, R, 1), *term = NULL;
  mfx_expr *x = mfx_tmpl_load2(a, p->X, mfx_tmpl_axis(a, R, 0), kk);
  if (p->form == 0) MFX_TRY(shift_term_select(a, p, x, n, kk, &term));
  else if (p->form >= 2) MFX_TRY(shift_term_packed(a, p, x, n, kk, &term));
  else MFX_TRY(shift_term_mask(a, p, x, n, kk, &term));
  MFX_TRY(mfx_tmpl_set_body(a, R, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k, term)));
  *out = R;
  return MFX_OK;
}

/* Y[i, j] = ACC[i, j] + CNT[j]. */
static mfx_status shift_add_count(mfx_arena *a, mfx_tensor *acc, mfx_tensor *cnt,
                                  mfx_tensor **out) {
  mfx_tensor *Y = mfx_compute_begin(a, "Y", MFX_I32, 2, acc->buf->shape,
                                    (const char *[]){"i", "j"});
  mfx_expr *i = mfx_tmpl_axis(a, Y, 0), *j = mfx_tmpl_axis(a, Y, 1);
  mfx_expr *body = mfx_add(a, mfx_tmpl_load2(a, acc, i, j),
                           j ? mfx_tensor_load(a, cnt, 1, &j) : NULL);
  MFX_TRY(mfx_tmpl_set_body(a, Y, body));
  *out = Y;
  return MFX_OK;
}

mfx_status mfx_shift_linear_schedule(mfx_schedule *s, const shift_parts *p, mfx_tensor *red,
                                     mfx_tensor *cnt, mfx_tensor *Y, const mfx_config *cfg) {
  mfx_shift_knobs k;
  MFX_TRY(mfx_shift_knobs_read(cfg, "shift_linear", &k));
  int parallel = (int)k.parallel;
  int vec = (int)k.vec;
  int64_t tn = k.tile_n;
  for (int i = 0; i < p->n_weight; i++) {
    if (p->pack == 2) MFX_TRY(mfx_tmpl_apply_elementwise(s, p->weight[i], 8, 0, parallel));
    else if (p->pack) MFX_TRY(mfx_tmpl_apply_transpose(s, p->weight[i], 16, parallel));
    else MFX_TRY(mfx_tmpl_apply_elementwise(s, p->weight[i], 16, vec, parallel));
  }
  if (cnt != NULL) {
    MFX_TRY(mfx_tmpl_apply_elementwise(s, cnt, 8, 0, parallel));
    if (Y != NULL) MFX_TRY(mfx_tmpl_apply_elementwise(s, Y, tn, vec, parallel));
  }
  mfx_tmpl_tiled_reduce t = {
    .x = "i", .y = "j", .r = "k",
    .fx = k.tile_m, .fy = tn, .fr = k.tile_k,
    .vec = vec, .unroll = (int)k.unroll,
    .parallel = parallel, .local = (int)k.local,
    .cols_outer = (int)k.cols_outer,
  };
  return mfx_tmpl_apply_tiled_reduce(s, red, &t);
}

/* The tensor expressions (X a placeholder unless the caller set p->X). */
mfx_status mfx_shift_linear_te(mfx_arena *a, const int64_t *dims, shift_parts *p,
                               mfx_tensor **red, mfx_tensor **cnt, mfx_tensor **Y) {
  int64_t M = dims[SHIFT_M], N = dims[SHIFT_N], K = dims[SHIFT_K];
  if (p->X == NULL) p->X = mfx_placeholder(a, "X", MFX_I32, 2, (int64_t[]){M, K});
  p->S = mfx_placeholder(a, "S", MFX_I8, 2, (int64_t[]){N, K});
  p->G = mfx_placeholder(a, "G", MFX_I8, 2, (int64_t[]){N, K});
  if (!p->X || !p->S || !p->G) return mfx_fail_context(MFX_ERR_INVALID, "shift_linear: inputs");
  *cnt = NULL;
  int counted = p->form == 1 || p->form == 3;
  MFX_TRY(shift_reduction(a, p, counted ? "ACC" : "Y", M, N, K, red));
  *Y = *red;
  if (counted) {
    MFX_TRY(shift_negative_count(a, p, cnt));
    MFX_TRY(shift_add_count(a, *red, *cnt, Y));
  }
  return MFX_OK;
}

/* The tensor expressions and the (unscheduled) schedule. */
static mfx_status shift_define(mfx_arena *a, const int64_t *dims, shift_parts *p,
                               mfx_tensor **red, mfx_tensor **cnt, mfx_tensor **Y,
                               mfx_schedule **out) {
  MFX_TRY(mfx_shift_linear_te(a, dims, p, red, cnt, Y));
  return mfx_sched_create(a, 3, (mfx_tensor *[]){p->X, p->S, p->G}, 1, Y, out);
}

static mfx_status shift_build(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                              mfx_schedule **out) {
  mfx_shift_knobs k;
  MFX_TRY(mfx_shift_knobs_read(cfg, "shift_linear", &k));
  shift_parts p = {.pack = (int)k.pack, .form = (int)k.form, .panel = k.tile_n};
  mfx_tensor *red, *cnt, *Y;
  MFX_TRY(shift_define(a, dims, &p, &red, &cnt, &Y, out));
  /* form 1 with a register tile: Y = ACC + CNT[j] at the tile's write-back
   * instead of a second pass over M x N. */
  int epilogue = Y != red && k.local == 1;
  MFX_TRY(mfx_shift_linear_schedule(*out, &p, red, cnt, epilogue ? NULL : Y, cfg));
  if (!epilogue) return MFX_OK;
  mfx_stage *rs, *ys;
  MFX_TRY(mfx_tmpl_stage(*out, red, &rs));
  MFX_TRY(mfx_tmpl_stage(*out, Y, &ys));
  return mfx_sched_fuse_epilogue(*out, rs, ys);
}

/* The weight tiles the reduction stages after X: form 3's decoded words
 * (computed into the tiles), else the weight stages, else S and G. */
static void shift_gpu_staged(const shift_parts *p, mfx_gpu_tiled_reduce *t) {
  for (int i = 0; i < p->n_decoded; i++) {
    t->computed |= 1u << t->n_staged;
    t->staged[t->n_staged++] = (mfx_gpu_staged){p->decoded[i], 'y'};
  }
  if (p->n_decoded > 0) return;
  if (p->n_weight == 0) {
    t->staged[t->n_staged++] = (mfx_gpu_staged){p->S, 'y'};
    t->staged[t->n_staged++] = (mfx_gpu_staged){p->G, 'y'};
  }
  for (int i = 0; i < p->n_weight; i++)
    t->staged[t->n_staged++] = (mfx_gpu_staged){p->weight[i], 'y'};
}

/* split_k over a K the pieces overrun: the zero-padded copies of form 3's
 * decoded stages are computed into the tiles, the stages inline there. */
static mfx_status shift_inline_padded(mfx_schedule *s, const shift_parts *p,
                                      const mfx_gpu_split *g) {
  for (int i = 0; i < p->n_decoded; i++)
    for (int j = 0; j < g->n_padded; j++)
      if (g->source[j] == p->decoded[i]) {
        mfx_stage *ds;
        MFX_TRY(mfx_tmpl_stage(s, p->decoded[i], &ds));
        MFX_TRY(mfx_sched_compute_inline(s, ds));
      }
  return MFX_OK;
}

/* GPU: the weight stages, the count and the final add one element per
 * thread, each its own kernel (form 3: the add at the reduction's
 * write-back instead); the reduction block-tiled with X and the weights
 * (i8, form 2's packed u8, or form 3's decoded words computed into the
 * tiles) staged in shared memory, with split_k in pieces (partial sums,
 * then their sum). */
static mfx_status shift_schedule_gpu_split(mfx_schedule *s, const shift_parts *p,
                                           mfx_tensor *red, mfx_tensor *cnt, mfx_tensor *Y,
                                           const mfx_gpu_split *g, const mfx_config *cfg) {
  int64_t threads = mfx_config_get(cfg, "threads");
  for (int i = 0; i < p->n_weight; i++)
    MFX_TRY(mfx_gpu_apply_elementwise(s, p->weight[i], threads));
  if (cnt != NULL) {
    MFX_TRY(mfx_gpu_apply_elementwise(s, cnt, threads));
    if (Y != NULL) MFX_TRY(mfx_gpu_apply_elementwise(s, Y, threads));
  }
  mfx_gpu_tiled_reduce t = {
    .what = "shift_linear", .x = "i", .y = "j", .r = "k",
    .bx = mfx_config_get(cfg, "block_m"), .by = mfx_config_get(cfg, "block_n"),
    .tx = mfx_config_get(cfg, "thread_m"), .ty = mfx_config_get(cfg, "thread_n"),
    .br = mfx_config_get(cfg, "block_k"),
    .shared = (int)mfx_config_get(cfg, "shared"), .unroll = (int)mfx_config_get(cfg, "unroll"),
    .contiguous = mfx_config_get(cfg, "contiguous") == 1,
    /* form 3: a term of zero-filled tiles (z = m = 0) is 0 whatever X */
    .unguarded = p->form == 3 ? 2 : 1,
    .double_buffer = mfx_config_get(cfg, "double_buffer") == 1,
    .n_staged = 1, .staged = {{p->X, 'x'}}, .computed = p->x_compute ? 1u : 0u,
    .unroll_k = p->form == 3 ? 2 : 1,
  };
  shift_gpu_staged(p, &t);
  MFX_TRY(mfx_gpu_apply_split(s, red, g, &t, threads));
  return shift_inline_padded(s, p, g);
}

mfx_status mfx_shift_linear_schedule_gpu(mfx_schedule *s, const shift_parts *p,
                                         mfx_tensor *red, mfx_tensor *cnt, mfx_tensor *Y,
                                         const mfx_config *cfg) {
  mfx_gpu_split whole = {.pieces = 1};
  return shift_schedule_gpu_split(s, p, red, cnt, Y, &whole, cfg);
}

/* As linear.c: auto split_k keeps >= 128 terms a piece. */
#define SHIFT_GPU_MIN_CHUNK 128

static mfx_status shift_build_gpu(mfx_arena *a, const int64_t *dims, const mfx_config *cfg,
                                  mfx_schedule **out) {
  mfx_shift_gpu_knobs k;
  MFX_TRY(mfx_shift_gpu_knobs_read(cfg, "shift_linear (GPU)", &k));
  shift_parts p = {.pack = (int)k.pack, .form = (int)k.form};
  mfx_tensor *red, *cnt, *Y;
  MFX_TRY(mfx_shift_linear_te(a, dims, &p, &red, &cnt, &Y));
  int64_t bm = mfx_config_get(cfg, "block_m"), bn = mfx_config_get(cfg, "block_n");
  int64_t tiles = ((dims[SHIFT_M] + bm - 1) / bm) * ((dims[SHIFT_N] + bn - 1) / bn);
  int64_t pieces = mfx_gpu_split_pieces(mfx_config_get(cfg, "split_k"), tiles, dims[SHIFT_K],
                                        mfx_config_get(cfg, "block_k"), SHIFT_GPU_MIN_CHUNK);
  mfx_gpu_split g;
  MFX_TRY(mfx_gpu_split_reduction(a, red, 0, pieces, mfx_config_get(cfg, "block_k"), &g));
  MFX_TRY(mfx_sched_create(a, 3, (mfx_tensor *[]){p.X, p.S, p.G}, 1, &Y, out));
  /* form 3: Y = ACC + CNT[j] at ACC's write-back (the sum of the pieces
   * with split_k), not a pass of its own */
  int epilogue = p.form == 3;
  MFX_TRY(shift_schedule_gpu_split(*out, &p, red, cnt, epilogue ? NULL : Y, &g, cfg));
  if (!epilogue) return MFX_OK;
  mfx_stage *rs, *ys;
  MFX_TRY(mfx_tmpl_stage(*out, red, &rs));
  MFX_TRY(mfx_tmpl_stage(*out, Y, &ys));
  return mfx_sched_fuse_epilogue(*out, rs, ys);
}

const mfx_op mfx_op_def_shift_linear = {
  MFX_OP_LISTED(shift_linear),
  .about = "shift layer Y = sum_k G (X >> S) in Q16.16 fixed point (MatShift)",
  MFX_OP_IO(shift_linear),
  MFX_SHIFT_KNOB_TABLES(MFX_KNOB_LOCAL, "threads per block of the weight, count and add kernels",
                        3, MFX_SHIFT_GPU_EXTRA, 0, ),
  .build = shift_build,
  .build_gpu = shift_build_gpu,
};
