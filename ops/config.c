/* Knob configurations: defaults, validated settings, JSON in and out. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops_internal.h"

/* The knobs of one target's template, and how messages name them. */
typedef struct {
  const mfx_op *op;
  const mfx_knob *knobs;
  int n;
  const char *what; /* "linear" or "linear (GPU template)" */
  char what_buf[96];
} mfx_knob_set;

/* emulate runs the GPU templates too (on the CPU). */
int mfx_target_is_gpu(const char *target) {
  return mfx_target_names_gpu(target) || (target != NULL && strcmp(target, "emulate") == 0);
}

const mfx_knob *mfx_op_knobs(const mfx_op *op, const char *target, int *n) {
  int gpu = mfx_target_is_gpu(target);
  if (n != NULL) *n = gpu ? op->n_gpu_knobs : op->n_knobs;
  return gpu ? op->gpu_knobs : op->knobs;
}

static void cfg_knob_set_init(mfx_knob_set *ks, const mfx_op *op, const char *target) {
  ks->op = op;
  ks->knobs = mfx_op_knobs(op, target, &ks->n);
  if (ks->n > MFX_OP_MAX_KNOBS) ks->n = MFX_OP_MAX_KNOBS;
  snprintf(ks->what_buf, sizeof ks->what_buf, "%s%s", op->name,
           mfx_target_is_gpu(target) ? " (GPU template)" : "");
  ks->what = ks->what_buf;
}

static const mfx_knob *cfg_knob_find(const mfx_knob_set *ks, const char *name) {
  for (int i = 0; i < ks->n; i++)
    if (strcmp(ks->knobs[i].name, name) == 0) return &ks->knobs[i];
  return NULL;
}

static int cfg_knob_allows(const mfx_knob *k, int64_t v) {
  for (int i = 0; i < k->n_choices; i++)
    if (k->choices[i] == v) return 1;
  return 0;
}

static void cfg_knob_names(const mfx_knob_set *ks, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < ks->n && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", ks->knobs[i].name);
    if (n < 0) return;
    used += (size_t)n;
  }
}

static void cfg_knob_choices(const mfx_knob *k, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < k->n_choices && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                     (long long)k->choices[i]);
    if (n < 0) return;
    used += (size_t)n;
  }
}

static void cfg_knob_set_defaults(const mfx_knob_set *ks, mfx_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < ks->n; i++) {
    snprintf(cfg->names[i], sizeof cfg->names[i], "%s", ks->knobs[i].name);
    cfg->values[i] = ks->knobs[i].def;
  }
  cfg->n = ks->n;
}

void mfx_config_default_for(const mfx_op *op, const char *target, mfx_config *cfg) {
  mfx_knob_set ks;
  cfg_knob_set_init(&ks, op, target);
  cfg_knob_set_defaults(&ks, cfg);
}

void mfx_config_default(const mfx_op *op, mfx_config *cfg) {
  mfx_config_default_for(op, "cpu", cfg);
}

int64_t mfx_config_get(const mfx_config *cfg, const char *name) {
  for (int i = 0; i < cfg->n; i++)
    if (strcmp(cfg->names[i], name) == 0) return cfg->values[i];
  return -1;
}

mfx_status mfx_config_read(const mfx_config *cfg, const char *what, int n,
                           const char *const *names, int64_t *values) {
  if (cfg == NULL || names == NULL || values == NULL)
    return mfx_fail(MFX_ERR_INVALID, "knobs of %s: config, names and values must not be NULL",
                    what ? what : "?");
  for (int k = 0; k < n; k++) {
    int i = 0;
    while (i < cfg->n && strcmp(cfg->names[i], names[k]) != 0) i++;
    if (i < cfg->n) {
      values[k] = cfg->values[i];
      continue;
    }
    char have[512];
    size_t used = 0;
    have[0] = '\0';
    for (int j = 0; j < cfg->n && used < sizeof have; j++) {
      int w = snprintf(have + used, sizeof have - used, "%s%s", j ? ", " : "", cfg->names[j]);
      if (w < 0) break;
      used += (size_t)w;
    }
    return mfx_fail(MFX_ERR_INVALID, "knobs of %s: the template reads knob \"%s\", which the "
                    "config does not hold (it holds %s); the op's knob table and the template "
                    "disagree", what ? what : "?", names[k], cfg->n ? have : "none");
  }
  return MFX_OK;
}

static mfx_status cfg_knob_set_value(const mfx_knob_set *ks, mfx_config *cfg, const char *name,
                                     int64_t v) {
  const mfx_knob *k = cfg_knob_find(ks, name);
  if (k == NULL) {
    char names[512];
    cfg_knob_names(ks, names, sizeof names);
    return mfx_fail(MFX_ERR_INVALID, "config of %s: unknown knob \"%s\" (the knobs are %s)",
                    ks->what, name, names);
  }
  if (!cfg_knob_allows(k, v)) {
    char choices[256];
    cfg_knob_choices(k, choices, sizeof choices);
    return mfx_fail(MFX_ERR_INVALID, "config of %s: %s=%lld is not one of its choices (%s)",
                    ks->what, name, (long long)v, choices);
  }
  for (int i = 0; i < cfg->n; i++) {
    if (strcmp(cfg->names[i], name) == 0) {
      cfg->values[i] = v;
      return MFX_OK;
    }
  }
  if (cfg->n >= MFX_OP_MAX_KNOBS)
    return mfx_fail(MFX_ERR_INVALID, "config of %s: more than %d knobs", ks->what,
                    MFX_OP_MAX_KNOBS);
  snprintf(cfg->names[cfg->n], sizeof cfg->names[cfg->n], "%s", k->name);
  cfg->values[cfg->n++] = v;
  return MFX_OK;
}

mfx_status mfx_config_set_for(const mfx_op *op, const char *target, mfx_config *cfg,
                              const char *name, int64_t v) {
  mfx_knob_set ks;
  cfg_knob_set_init(&ks, op, target);
  return cfg_knob_set_value(&ks, cfg, name, v);
}

mfx_status mfx_config_set(const mfx_op *op, mfx_config *cfg, const char *name, int64_t v) {
  return mfx_config_set_for(op, "cpu", cfg, name, v);
}

mfx_status mfx_config_complete_for(const mfx_op *op, const char *target, const mfx_config *cfg,
                                   mfx_config *out) {
  mfx_knob_set ks;
  cfg_knob_set_init(&ks, op, target);
  mfx_config done;
  cfg_knob_set_defaults(&ks, &done);
  for (int i = 0; cfg != NULL && i < cfg->n; i++)
    MFX_TRY(cfg_knob_set_value(&ks, &done, cfg->names[i], cfg->values[i]));
  *out = done;
  return MFX_OK;
}

/* One member of the JSON object: an integral number for a known knob. */
static mfx_status cfg_config_json_member(const mfx_knob_set *ks, const cJSON *item,
                                         mfx_config *cfg) {
  const char *name = item->string;
  if (!cJSON_IsNumber(item)) {
    return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\" must be an integer", ks->what,
                    name);
  }
  double v = item->valuedouble;
  if (!(v == floor(v)) || fabs(v) > 9.0e15) {
    return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\"=%g must be an integer", ks->what,
                    name, v);
  }
  return cfg_knob_set_value(ks, cfg, name, (int64_t)v);
}

static int cfg_json_has_earlier(const cJSON *object, const cJSON *item) {
  for (const cJSON *o = object->child; o != NULL && o != item; o = o->next)
    if (strcmp(o->string, item->string) == 0) return 1;
  return 0;
}

static mfx_status cfg_config_json_object(const mfx_knob_set *ks, const cJSON *root,
                                         mfx_config *cfg) {
  if (!cJSON_IsObject(root))
    return mfx_fail(MFX_ERR_INVALID, "config of %s: expected a JSON object {\"knob\": value}",
                    ks->what);
  for (const cJSON *item = root->child; item != NULL; item = item->next) {
    if (cfg_json_has_earlier(root, item))
      return mfx_fail(MFX_ERR_INVALID, "config of %s: \"%s\" given twice", ks->what,
                      item->string);
    mfx_status st = cfg_config_json_member(ks, item, cfg);
    if (st != MFX_OK) return st;
  }
  return MFX_OK;
}

mfx_status mfx_config_parse_json_for(const mfx_op *op, const char *target, const char *json,
                                     mfx_config *cfg) {
  if (op == NULL || json == NULL || cfg == NULL)
    return mfx_fail(MFX_ERR_INVALID, "config: op, json and cfg must not be NULL");
  mfx_knob_set ks;
  cfg_knob_set_init(&ks, op, target);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
  if (root == NULL) {
    size_t at = end != NULL && end >= json ? (size_t)(end - json) : 0;
    return mfx_fail(MFX_ERR_INVALID, "config of %s: malformed JSON near offset %zu of \"%s\"",
                    ks.what, at, json);
  }
  mfx_config parsed;
  cfg_knob_set_defaults(&ks, &parsed);
  mfx_status st = cfg_config_json_object(&ks, root, &parsed);
  cJSON_Delete(root);
  if (st == MFX_OK) *cfg = parsed;
  return st;
}

mfx_status mfx_config_parse_json(const mfx_op *op, const char *json, mfx_config *cfg) {
  return mfx_config_parse_json_for(op, "cpu", json, cfg);
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
