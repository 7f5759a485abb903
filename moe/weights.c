/* A layer's weights from a safetensors file
 * (https://huggingface.co/docs/safetensors): 8 bytes, the header's length
 * as a little-endian u64; the header, JSON:
 *   {NAME: {"dtype": "F32", "shape": [...], "data_offsets": [BEGIN, END]},
 *    "__metadata__": {STRING: STRING}}
 * then the data, each tensor little-endian at [BEGIN, END) of it.
 * torch and numpy write it in a few lines, and reading it takes the
 * runtime's capped file reader and JSON reader: no zip, no new library.
 * Every name, dtype, shape and offset is checked before a byte of data is
 * used; the tensors a layer takes are docs/moe_layer.md's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "moe_internal.h"

#define WEIGHTS_MAX_HEADER ((uint64_t)16 << 20)
#define WEIGHTS_MAX_TENSORS (2 + 2 * MFX_MOE_MAX_EXPERTS)

/* One tensor the layer expects, and where the file has it. */
typedef struct {
  char name[32];
  int ndim;
  int64_t shape[2];
  int optional;
  int found;
  uint64_t begin, end; /* in the data area */
} weights_tensor;

typedef struct {
  const char *path;
  const mfx_moe *moe;
  int n;
  weights_tensor t[WEIGHTS_MAX_TENSORS];
  uint64_t data_bytes; /* of the data area */
} weights_plan;

static void weights_expect(weights_plan *p, const char *name, int ndim, int64_t a, int64_t b,
                           int optional) {
  weights_tensor *t = &p->t[p->n++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->shape[0] = a;
  t->shape[1] = b;
  t->optional = optional;
}

static void weights_plan_init(weights_plan *p, const mfx_moe *moe, const char *path) {
  const mfx_moe_spec *s = &moe->spec;
  memset(p, 0, sizeof *p);
  p->path = path;
  p->moe = moe;
  weights_expect(p, "router.weight", 2, s->experts, s->dim, 0);
  weights_expect(p, "router.bias", 1, s->experts, 0, 1);
  for (int e = 0; e < s->experts; e++) {
    if (s->kinds[e] == MFX_EXPERT_NULL) continue;
    char name[32];
    snprintf(name, sizeof name, "experts.%d.w1", e);
    weights_expect(p, name, 2, s->hidden, s->dim, 0);
    snprintf(name, sizeof name, "experts.%d.w2", e);
    weights_expect(p, name, 2, s->dim, s->hidden, 0);
  }
}

static weights_tensor *weights_find(weights_plan *p, const char *name) {
  for (int i = 0; i < p->n; i++)
    if (strcmp(p->t[i].name, name) == 0) return &p->t[i];
  return NULL;
}

/* ---- the header --------------------------------------------------------------- */

/* A JSON number that is a whole number in [0, 2^53]. */
static int weights_count(const json_value *v, uint64_t *out) {
  if (v == NULL || v->type != JSON_NUMBER || !(v->number >= 0) ||
      v->number > 9007199254740992.0 || v->number != (double)(uint64_t)v->number)
    return 0;
  *out = (uint64_t)v->number;
  return 1;
}

static void weights_shape_text(const json_value *shape, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; shape != NULL && i < shape->n && i < 8 && used < size; i++) {
    uint64_t d = 0;
    if (weights_count(&shape->items[i], &d))
      used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "",
                               (unsigned long long)d);
    else
      used += (size_t)snprintf(buf + used, size - used, "%s?", i ? ", " : "");
  }
  if (used < size) snprintf(buf + used, size - used, "]");
}

static mfx_status weights_check_shape(const weights_plan *p, const weights_tensor *t,
                                      const json_value *shape) {
  int ok = shape != NULL && shape->type == JSON_ARRAY && shape->n == t->ndim;
  for (int i = 0; ok && i < t->ndim; i++) {
    uint64_t d = 0;
    ok = weights_count(&shape->items[i], &d) && d == (uint64_t)t->shape[i];
  }
  if (ok) return MFX_OK;
  char got[96], want[64];
  weights_shape_text(shape != NULL && shape->type == JSON_ARRAY ? shape : NULL, got, sizeof got);
  if (t->ndim == 1) snprintf(want, sizeof want, "[%lld]", (long long)t->shape[0]);
  else snprintf(want, sizeof want, "[%lld, %lld]", (long long)t->shape[0],
                (long long)t->shape[1]);
  return mfx_fail(MFX_ERR_INVALID, "weights %s: tensor %s has shape %s; the layer (D=%d, H=%d, "
                  "E=%d) expects %s", p->path, t->name, got, p->moe->spec.dim,
                  p->moe->spec.hidden, p->moe->spec.experts, want);
}

static mfx_status weights_read_entry(weights_plan *p, const char *name, const json_value *v) {
  weights_tensor *t = weights_find(p, name);
  if (t == NULL)
    return mfx_fail(MFX_ERR_INVALID, "weights %s: unknown tensor \"%s\"; the layer takes "
                    "router.weight, router.bias and experts.<e>.w1, experts.<e>.w2 for each "
                    "non-null expert e in 0..%d (docs/moe_layer.md)", p->path, name,
                    p->moe->spec.experts - 1);
  const json_value *dtype = json_get(v, "dtype"), *offsets = json_get(v, "data_offsets");
  if (v->type != JSON_OBJECT || dtype == NULL || dtype->type != JSON_STRING)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: tensor %s has no \"dtype\" string", p->path,
                    name);
  if (strcmp(dtype->string, "F32") != 0)
    return mfx_fail(MFX_ERR_INVALID, "weights %s: tensor %s has dtype %s; expected F32 (save "
                    "float32 tensors)", p->path, name, dtype->string);
  MFX_TRY(weights_check_shape(p, t, json_get(v, "shape")));
  if (offsets == NULL || offsets->type != JSON_ARRAY || offsets->n != 2 ||
      !weights_count(&offsets->items[0], &t->begin) || !weights_count(&offsets->items[1], &t->end))
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: tensor %s: \"data_offsets\" must be [BEGIN, "
                    "END], whole numbers", p->path, name);
  uint64_t bytes = (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1) * 4;
  if (t->begin > t->end || t->end > p->data_bytes || t->end - t->begin != bytes)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: tensor %s: data_offsets [%llu, %llu] do not "
                    "hold its %llu bytes inside the file's %llu bytes of data (truncated?)",
                    p->path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                    (unsigned long long)bytes, (unsigned long long)p->data_bytes);
  t->found = 1;
  return MFX_OK;
}

/* "__metadata__": the format and the layer it was written for. */
static mfx_status weights_read_metadata(const weights_plan *p, const json_value *meta) {
  const mfx_moe_spec *s = &p->moe->spec;
  if (meta == NULL || meta->type != JSON_OBJECT)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: no \"__metadata__\" object; expected "
                    "{\"format\": \"%s\", \"dim\", \"hidden\", \"k\", \"experts\"}", p->path,
                    MFX_MOE_WEIGHTS_FORMAT);
  const json_value *format = json_get(meta, "format");
  if (format == NULL || format->type != JSON_STRING ||
      strcmp(format->string, MFX_MOE_WEIGHTS_FORMAT) != 0)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: __metadata__ \"format\" is not \"%s\"",
                    p->path, MFX_MOE_WEIGHTS_FORMAT);
  char want[4][MFX_MOE_MAX_EXPERTS * 8 + 8]; /* "shift16," per expert */
  snprintf(want[0], sizeof want[0], "%d", s->dim);
  snprintf(want[1], sizeof want[1], "%d", s->hidden);
  snprintf(want[2], sizeof want[2], "%d", s->k);
  size_t used = 0;
  want[3][0] = '\0';
  for (int e = 0; e < s->experts; e++)
    used += (size_t)snprintf(want[3] + used, sizeof want[3] - used, "%s%s", e ? "," : "",
                             mfx_expert_kind_name(s->kinds[e]));
  static const char *const keys[4] = {"dim", "hidden", "k", "experts"};
  for (int i = 0; i < 4; i++) {
    const json_value *v = json_get(meta, keys[i]);
    if (v == NULL || v->type != JSON_STRING || strcmp(v->string, want[i]) != 0)
      return mfx_fail(MFX_ERR_INVALID, "weights %s: written for %s=%s, but the layer has "
                      "%s=%s (a layer built for other dims or experts)", p->path, keys[i],
                      v != NULL && v->type == JSON_STRING ? v->string : "(missing)", keys[i],
                      want[i]);
  }
  return MFX_OK;
}

static mfx_status weights_read_header(weights_plan *p, const json_value *doc) {
  if (doc->type != JSON_OBJECT)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: the header is not a JSON object", p->path);
  MFX_TRY(weights_read_metadata(p, json_get(doc, "__metadata__")));
  for (int i = 0; i < doc->n; i++) {
    if (strcmp(doc->keys[i], "__metadata__") == 0) continue;
    weights_tensor *t = weights_find(p, doc->keys[i]);
    if (t != NULL && t->found)
      return mfx_fail(MFX_ERR_FORMAT, "weights %s: tensor %s appears twice", p->path, t->name);
    MFX_TRY(weights_read_entry(p, doc->keys[i], &doc->items[i]));
  }
  for (int i = 0; i < p->n; i++) {
    if (!p->t[i].found && !p->t[i].optional)
      return mfx_fail(MFX_ERR_INVALID, "weights %s: tensor %s is missing (the layer's experts "
                      "are listed in __metadata__ \"experts\")", p->path, p->t[i].name);
    for (int j = 0; j < i; j++)
      if (p->t[i].found && p->t[j].found && p->t[i].begin < p->t[j].end &&
          p->t[j].begin < p->t[i].end)
        return mfx_fail(MFX_ERR_FORMAT, "weights %s: tensors %s and %s overlap in the data",
                        p->path, p->t[j].name, p->t[i].name);
  }
  return MFX_OK;
}

/* ---- the file ------------------------------------------------------------------- */

static uint64_t weights_u64le(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

static mfx_status weights_parse(weights_plan *p, FILE *f, size_t size) {
  unsigned char len[8];
  if (size < 8 || fread(len, 1, 8, f) != 8)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: %zu bytes, too short for a safetensors file "
                    "(truncated?)", p->path, size);
  uint64_t hlen = weights_u64le(len);
  if (hlen < 2 || hlen > WEIGHTS_MAX_HEADER || hlen > size - 8)
    return mfx_fail(MFX_ERR_FORMAT, "weights %s: a header of %llu bytes in a file of %zu "
                    "(expected 2..%llu bytes and inside the file; truncated or not safetensors?)",
                    p->path, (unsigned long long)hlen, size,
                    (unsigned long long)WEIGHTS_MAX_HEADER);
  p->data_bytes = size - 8 - hlen;
  char *text = malloc(hlen + 1);
  if (text == NULL) return mfx_fail(MFX_ERR_NOMEM, "weights %s: out of memory", p->path);
  mfx_status st = fread(text, 1, hlen, f) == hlen ? MFX_OK
                  : mfx_fail(MFX_ERR_IO, "weights %s: reading the header failed", p->path);
  text[hlen] = '\0';
  if (st == MFX_OK && strlen(text) != hlen)
    st = mfx_fail(MFX_ERR_FORMAT, "weights %s: the header holds a NUL byte", p->path);
  json_value doc;
  memset(&doc, 0, sizeof doc);
  if (st == MFX_OK)
    st = json_parse("weights", "not a safetensors header", p->path, text, &doc);
  free(text);
  if (st == MFX_OK) st = weights_read_header(p, &doc);
  json_free(&doc);
  return st;
}

static mfx_status weights_read_tensor(const weights_plan *p, FILE *f, uint64_t data_start,
                                      const weights_tensor *t, float *out) {
  uint64_t bytes = t->end - t->begin;
  if (fseeko(f, (off_t)(data_start + t->begin), SEEK_SET) != 0 ||
      fread(out, 1, bytes, f) != bytes)
    return mfx_fail(MFX_ERR_IO, "weights %s: reading tensor %s failed (file changed?)", p->path,
                    t->name);
  unsigned char *b = (unsigned char *)out; /* little-endian in the file */
  for (uint64_t i = 0; i + 4 <= bytes; i += 4) {
    uint32_t v = (uint32_t)b[i] | (uint32_t)b[i + 1] << 8 | (uint32_t)b[i + 2] << 16 |
                 (uint32_t)b[i + 3] << 24;
    memcpy(b + i, &v, 4);
  }
  return MFX_OK;
}

/* Reads every tensor, then sets the router and each expert. */
static mfx_status weights_apply(const weights_plan *p, mfx_moe *moe, FILE *f, uint64_t start) {
  const mfx_moe_spec *s = &moe->spec;
  size_t hd = (size_t)s->hidden * (size_t)s->dim, ed = (size_t)s->experts * (size_t)s->dim;
  float *a = malloc((hd > ed ? hd : ed) * sizeof(float)), *b = malloc(hd * sizeof(float));
  float *bias = malloc((size_t)s->experts * sizeof(float));
  mfx_status st = a && b && bias ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "weights: out of memory");
  const weights_tensor *rb = &p->t[1];
  if (st == MFX_OK) st = weights_read_tensor(p, f, start, &p->t[0], a);
  if (st == MFX_OK && rb->found) st = weights_read_tensor(p, f, start, rb, bias);
  if (st == MFX_OK) st = mfx_moe_set_router(moe, a, rb->found ? bias : NULL);
  for (int e = 0, i = 2; st == MFX_OK && e < s->experts; e++) {
    if (s->kinds[e] == MFX_EXPERT_NULL) continue;
    st = weights_read_tensor(p, f, start, &p->t[i++], a);
    if (st == MFX_OK) st = weights_read_tensor(p, f, start, &p->t[i++], b);
    if (st == MFX_OK) st = mfx_moe_set_expert(moe, e, a, b);
  }
  free(a);
  free(b);
  free(bias);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "weights %s", p->path);
}

mfx_status mfx_moe_load_weights(mfx_moe *moe, const char *path) {
  if (moe == NULL || path == NULL)
    return mfx_fail(MFX_ERR_INVALID, "moe load weights: layer and path must not be NULL");
  FILE *f = NULL;
  size_t size = 0;
  MFX_TRY(mfx_file_open_read(path, "weights file", MFX_FILE_CAP_NPY, &f, &size));
  weights_plan *p = malloc(sizeof *p);
  mfx_status st = p ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "weights %s: out of memory", path);
  if (st == MFX_OK) {
    weights_plan_init(p, moe, path);
    st = weights_parse(p, f, size);
  }
  if (st == MFX_OK) st = weights_apply(p, moe, f, size - p->data_bytes);
  free(p);
  fclose(f);
  return st;
}
