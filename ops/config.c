/* Knob configurations: defaults, validated settings, JSON in and out. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_internal.h"

static const mfx_knob *mfx_knob_find(const mfx_op *op, const char *name) {
  for (int i = 0; i < op->n_knobs; i++)
    if (strcmp(op->knobs[i].name, name) == 0) return &op->knobs[i];
  return NULL;
}

static int mfx_knob_allows(const mfx_knob *k, int64_t v) {
  for (int i = 0; i < k->n_choices; i++)
    if (k->choices[i] == v) return 1;
  return 0;
}

static void mfx_knob_names(const mfx_op *op, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < op->n_knobs && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", op->knobs[i].name);
    if (n < 0) return;
    used += (size_t)n;
  }
}

static void mfx_knob_choices(const mfx_knob *k, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < k->n_choices && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                     (long long)k->choices[i]);
    if (n < 0) return;
    used += (size_t)n;
  }
}

void mfx_config_default(const mfx_op *op, mfx_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < op->n_knobs && i < MFX_OP_MAX_KNOBS; i++) {
    snprintf(cfg->names[i], sizeof cfg->names[i], "%s", op->knobs[i].name);
    cfg->values[i] = op->knobs[i].def;
  }
  cfg->n = op->n_knobs < MFX_OP_MAX_KNOBS ? op->n_knobs : MFX_OP_MAX_KNOBS;
}

int64_t mfx_config_get(const mfx_config *cfg, const char *name) {
  for (int i = 0; i < cfg->n; i++)
    if (strcmp(cfg->names[i], name) == 0) return cfg->values[i];
  return -1;
}

mfx_status mfx_config_set(const mfx_op *op, mfx_config *cfg, const char *name, int64_t v) {
  const mfx_knob *k = mfx_knob_find(op, name);
  if (k == NULL) {
    char names[512];
    mfx_knob_names(op, names, sizeof names);
    return mfx_fail(MFX_ERR_INVALID, "config of %s: unknown knob \"%s\" (the knobs are %s)",
                    op->name, name, names);
  }
  if (!mfx_knob_allows(k, v)) {
    char choices[256];
    mfx_knob_choices(k, choices, sizeof choices);
    return mfx_fail(MFX_ERR_INVALID, "config of %s: %s=%lld is not one of its choices (%s)",
                    op->name, name, (long long)v, choices);
  }
  for (int i = 0; i < cfg->n; i++) {
    if (strcmp(cfg->names[i], name) == 0) {
      cfg->values[i] = v;
      return MFX_OK;
    }
  }
  if (cfg->n >= MFX_OP_MAX_KNOBS)
    return mfx_fail(MFX_ERR_INVALID, "config of %s: more than %d knobs", op->name,
                    MFX_OP_MAX_KNOBS);
  snprintf(cfg->names[cfg->n], sizeof cfg->names[cfg->n], "%s", k->name);
  cfg->values[cfg->n++] = v;
  return MFX_OK;
}

/* One member of the JSON object: an integral number for a known knob. */
static mfx_status mfx_config_json_member(const mfx_op *op, const cJSON *item, mfx_config *cfg) {
  const char *name = item->string;
  if (!cJSON_IsNumber(item)) {
    return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\" must be an integer", op->name,
                    name);
  }
  double v = item->valuedouble;
  if (!(v == floor(v)) || fabs(v) > 9.0e15) {
    return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\"=%g must be an integer", op->name,
                    name, v);
  }
  return mfx_config_set(op, cfg, name, (int64_t)v);
}

static int mfx_json_has_earlier(const cJSON *object, const cJSON *item) {
  for (const cJSON *o = object->child; o != NULL && o != item; o = o->next)
    if (strcmp(o->string, item->string) == 0) return 1;
  return 0;
}

static mfx_status mfx_config_json_object(const mfx_op *op, const cJSON *root, mfx_config *cfg) {
  if (!cJSON_IsObject(root))
    return mfx_fail(MFX_ERR_INVALID, "config of %s: expected a JSON object {\"knob\": value}",
                    op->name);
  for (const cJSON *item = root->child; item != NULL; item = item->next) {
    if (mfx_json_has_earlier(root, item))
      return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\" given twice", op->name,
                      item->string);
    mfx_status st = mfx_config_json_member(op, item, cfg);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}

mfx_status mfx_config_parse_json(const mfx_op *op, const char *json, mfx_config *cfg) {
  if (op == NULL || json == NULL || cfg == NULL)
    return mfx_fail(MFX_ERR_INVALID, "config: op, json and cfg must not be NULL");
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
  if (root == NULL) {
    size_t at = end != NULL && end >= json ? (size_t)(end - json) : 0;
    return mfx_fail(MFX_ERR_INVALID, "config of %s: malformed JSON near offset %zu of \"%s\"",
                    op->name, at, json);
  }
  mfx_config parsed;
  mfx_config_default(op, &parsed);
  mfx_status st = mfx_config_json_object(op, root, &parsed);
  cJSON_Delete(root);
  if (st == MFX_OK) *cfg = parsed;
  return st;
}

void mfx_config_to_json(const mfx_config *cfg, char *buf, size_t size) {
  if (buf == NULL || size == 0) return;
  size_t used = 0;
  int n = snprintf(buf, size, "{");
  for (int i = 0; i < cfg->n && n >= 0; i++) {
    used += (size_t)n;
    if (used >= size) return;
    n = snprintf(buf + used, size - used, "%s\"%s\":%lld", i ? "," : "", cfg->names[i],
                 (long long)cfg->values[i]);
  }
  if (n < 0) return;
  used += (size_t)n;
  if (used < size) snprintf(buf + used, size - used, "}");
}
