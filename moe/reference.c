/* The MoE layer in plain C, token by token: the truth the compiled layer is
 * compared with. Independent of the compiler and of moe_forward.c; it shares
 * only the definitions of GELU, Q16.16 and the DeepShift weights
 * (moe_math.c) and the routing (mfx_router_route). Floats accumulate in
 * double; the shift path in wrapping 32-bit integers, exactly like the
 * shift_linear kernel; the shift16 path in Q3.10 with exact int64 sums
 * (shift_linear16's arithmetic, docs/moe_layer.md). */
#include <stdlib.h>
#include <string.h>

#include "moe_internal.h"
#include "mfx/router.h"

/* x >> s with sign fill, without implementation-defined >> of negatives. */
static int32_t moe_ref_sra(int32_t x, int s) {
  return x >= 0 ? (int32_t)(x >> s) : (int32_t)~(~x >> s);
}

static int32_t moe_ref_wrap32(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : (int32_t)((int64_t)u - 4294967296LL);
}

/* out[n] = sum_k G[n,k] (x[k] >> S[n,k]) for one token. */
static void moe_ref_shift_row(const int32_t *x, const int8_t *S, const int8_t *G, int64_t N,
                              int64_t K, int32_t *out) {
  for (int64_t n = 0; n < N; n++) {
    uint32_t acc = 0;
    for (int64_t k = 0; k < K; k++) {
      uint32_t v = (uint32_t)moe_ref_sra(x[k], S[n * K + k] & 31);
      if (G[n * K + k] > 0) acc += v;
      else if (G[n * K + k] < 0) acc -= v;
    }
    out[n] = moe_ref_wrap32(acc);
  }
}

/* out[n] = sum_k G[n,k] (x[k] >> S[n,k]) for one token of Q3.10 (i16),
 * each term truncated on its own, the sum exact. */
static void moe_ref_shift16_row(const int16_t *x, const int8_t *S, const int8_t *G, int64_t N,
                                int64_t K, int64_t *out) {
  for (int64_t n = 0; n < N; n++) {
    int64_t acc = 0;
    for (int64_t k = 0; k < K; k++) {
      int64_t v = moe_ref_sra(x[k], S[n * K + k] & 15);
      if (G[n * K + k] > 0) acc += v;
      else if (G[n * K + k] < 0) acc -= v;
    }
    out[n] = acc;
  }
}

/* out[n] = sum_k x[k] W[n,k] for one token, in double. */
static void moe_ref_linear_row(const float *x, const float *W, int64_t N, int64_t K,
                               float *out) {
  for (int64_t n = 0; n < N; n++) {
    double acc = 0.0;
    for (int64_t k = 0; k < K; k++) acc += (double)x[k] * (double)W[n * K + k];
    out[n] = (float)acc;
  }
}

/* Scratch for one token: hidden f32 / i32 and the token in Q16.16; the
 * shift16 path's Q3.10 token and hidden row and its exact sums. */
typedef struct {
  float *h;
  int32_t *xq, *hq, *yq;
  int16_t *xq16, *hq16;
  int64_t *sum;
} moe_ref_scratch;

/* shift16: XQ = q10(x), H = the exact sums, HQ = q10(gelu(f32(H) 2^-10)),
 * out = f32(sum) 2^-10 (the sum rounded once to f32, as H / 2^10 in
 * double). */
static void moe_ref_shift16(const moe_expert *w, int64_t D, int64_t H, const float *x,
                            moe_ref_scratch *s, float *out) {
  for (int64_t i = 0; i < D; i++) s->xq16[i] = moe_q10_from_float(x[i]);
  moe_ref_shift16_row(s->xq16, w->s1, w->g1, H, D, s->sum);
  for (int64_t j = 0; j < H; j++)
    s->hq16[j] = moe_q10_from_float(mfx_gelu((float)s->sum[j] / 1024.0f));
  moe_ref_shift16_row(s->hq16, w->s2, w->g2, D, H, s->sum);
  for (int64_t i = 0; i < D; i++) out[i] = (float)((double)s->sum[i] / 1024.0);
}

static void moe_ref_shift_q16(const moe_expert *w, int64_t D, int64_t H, const int32_t *xq,
                              moe_ref_scratch *s, int32_t *yq) {
  moe_ref_shift_row(xq, w->s1, w->g1, H, D, s->hq);
  for (int64_t j = 0; j < H; j++)
    s->hq[j] = mfx_q16_from_float(mfx_gelu(mfx_q16_to_float(s->hq[j])));
  moe_ref_shift_row(s->hq, w->s2, w->g2, D, H, yq);
}

/* One token through expert e: out[D]. */
static void moe_ref_expert(const mfx_moe *moe, int e, const float *x, moe_ref_scratch *s,
                           float *out) {
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  const moe_expert *w = &moe->expert[e];
  switch (moe->spec.kinds[e]) {
  case MFX_EXPERT_MULT:
    moe_ref_linear_row(x, w->w1, H, D, s->h);
    for (int64_t j = 0; j < H; j++) s->h[j] = mfx_gelu(s->h[j]);
    moe_ref_linear_row(s->h, w->w2, D, H, out);
    return;
  case MFX_EXPERT_SHIFT:
    for (int64_t i = 0; i < D; i++) s->xq[i] = mfx_q16_from_float(x[i]);
    moe_ref_shift_q16(w, D, H, s->xq, s, s->yq);
    for (int64_t i = 0; i < D; i++) out[i] = mfx_q16_to_float(s->yq[i]);
    return;
  case MFX_EXPERT_SHIFT16: moe_ref_shift16(w, D, H, x, s, out); return;
  case MFX_EXPERT_NULL:
  case MFX_EXPERT_KIND_COUNT: break;
  }
  memset(out, 0, (size_t)D * sizeof(float));
}

static mfx_status moe_ref_scratch_alloc(const mfx_moe *moe, moe_ref_scratch *s) {
  size_t D = (size_t)moe->spec.dim, H = (size_t)moe->spec.hidden;
  s->h = malloc(H * sizeof(float));
  s->hq = malloc(H * sizeof(int32_t));
  s->xq = malloc(D * sizeof(int32_t));
  s->yq = malloc(D * sizeof(int32_t));
  s->xq16 = malloc(D * sizeof(int16_t));
  s->hq16 = malloc(H * sizeof(int16_t));
  s->sum = malloc((H > D ? H : D) * sizeof(int64_t));
  if (s->h && s->hq && s->xq && s->yq && s->xq16 && s->hq16 && s->sum) return MFX_OK;
  return mfx_fail(MFX_ERR_NOMEM, "moe reference: out of memory");
}

static void moe_ref_scratch_free(moe_ref_scratch *s) {
  free(s->h);
  free(s->hq);
  free(s->xq);
  free(s->yq);
  free(s->xq16);
  free(s->hq16);
  free(s->sum);
}

/* The combine of one token, slot by slot. */
static void moe_ref_token(const mfx_moe *moe, const float *x, const int32_t *chosen,
                          const float *gates, moe_ref_scratch *s, float *row, float *y) {
  int64_t D = moe->spec.dim;
  memset(y, 0, (size_t)D * sizeof(float));
  for (int slot = 0; slot < moe->spec.k; slot++) {
    int e = chosen[slot];
    if (moe->spec.kinds[e] == MFX_EXPERT_NULL) continue;
    moe_ref_expert(moe, e, x, s, row);
    for (int64_t i = 0; i < D; i++) y[i] += gates[slot] * row[i];
  }
}

typedef struct {
  float *logits, *gates, *row;
  int32_t *chosen;
  moe_ref_scratch s;
} moe_ref_buffers;

static mfx_status moe_ref_buffers_alloc(const mfx_moe *moe, int64_t T, moe_ref_buffers *b) {
  size_t E = (size_t)moe->spec.experts, k = (size_t)moe->spec.k, t = (size_t)T;
  memset(b, 0, sizeof *b);
  b->logits = malloc(t * E * sizeof(float));
  b->gates = malloc(t * k * sizeof(float));
  b->chosen = malloc(t * k * sizeof(int32_t));
  b->row = malloc((size_t)moe->spec.dim * sizeof(float));
  if (!b->logits || !b->gates || !b->chosen || !b->row)
    return mfx_fail(MFX_ERR_NOMEM, "moe reference: out of memory for %lld tokens", (long long)T);
  return moe_ref_scratch_alloc(moe, &b->s);
}

static void moe_ref_buffers_free(moe_ref_buffers *b) {
  free(b->logits);
  free(b->gates);
  free(b->chosen);
  free(b->row);
  moe_ref_scratch_free(&b->s);
}

mfx_status mfx_moe_reference(const mfx_moe *moe, const float *x, int64_t tokens,
                             const float *route_logits, float *y, float *logits) {
  if (moe == NULL || x == NULL || y == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe reference: layer, x and y must not be NULL");
  mfx_status st = moe_check_tokens(tokens, "moe reference");
  if (st != MFX_OK) return st;
  int64_t D = moe->spec.dim, E = moe->spec.experts, k = moe->spec.k;
  moe_ref_buffers b;
  st = moe_ref_buffers_alloc(moe, tokens, &b);
  for (int64_t t = 0; st == MFX_OK && t < tokens; t++)
    moe_ref_linear_row(x + t * D, moe->router_w, E, D, b.logits + t * E);
  if (st == MFX_OK && logits != NULL)
    memcpy(logits, b.logits, (size_t)(tokens * E) * sizeof(float));
  if (st == MFX_OK)
    st = mfx_router_route(route_logits ? route_logits : b.logits, tokens, (int)E, (int)k,
                          moe->has_bias ? moe->router_bias : NULL, b.chosen, b.gates, NULL);
  for (int64_t t = 0; st == MFX_OK && t < tokens; t++)
    moe_ref_token(moe, x + t * D, b.chosen + t * k, b.gates + t * k, &b.s, b.row, y + t * D);
  moe_ref_buffers_free(&b);
  return st;
}

mfx_status mfx_moe_reference_shift_q16(const mfx_moe *moe, int e, const int32_t *xq, int64_t n,
                                       int32_t *yq) {
  mfx_status st = moe_check_expert(moe, e, "moe reference shift");
  if (st == MFX_OK) st = moe_check_tokens(n, "moe reference shift");
  if (st == MFX_OK && moe->spec.kinds[e] != MFX_EXPERT_SHIFT)
    st = mfx_fail(MFX_ERR_INVALID, "moe reference shift: expert %d is %s, not shift", e,
                  mfx_expert_kind_name(moe->spec.kinds[e]));
  if (st == MFX_OK && (xq == NULL || yq == NULL))
    st = mfx_fail(MFX_ERR_INVALID, "moe reference shift: xq and yq must not be NULL");
  if (st != MFX_OK) return st;
  int64_t D = moe->spec.dim, H = moe->spec.hidden;
  moe_ref_scratch s;
  memset(&s, 0, sizeof s);
  st = moe_ref_scratch_alloc(moe, &s);
  for (int64_t t = 0; st == MFX_OK && t < n; t++)
    moe_ref_shift_q16(&moe->expert[e], D, H, xq + t * D, &s, yq + t * D);
  moe_ref_scratch_free(&s);
  return st;
}
