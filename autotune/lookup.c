/* What the compiler front-ends ask: which configuration to compile a key
 * with, and why. In order: the best trial of exactly this key ("tuned");
 * the best trial of the nearest tuned dims of the same op, dtypes, target,
 * architecture and version, measured in log2 space, provided the template
 * accepts it for these dims ("nearest tuned shape"); the template default. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"

const char *mfx_tune_source_name(mfx_tune_source s) {
  switch (s) {
  case MFX_TUNE_TUNED: return "tuned";
  case MFX_TUNE_NEAREST: return "nearest tuned shape";
  case MFX_TUNE_DEFAULT: return "template default";
  }
  return "?";
}

typedef struct {
  int64_t dims[MFX_OP_MAX_DIMS];
  char config[1024];
  double median_s, distance;
} tune_shape;

typedef struct {
  const mfx_tune_key *key;
  tune_shape *items;
  int n, cap;
  mfx_status status;
} tune_shapes;

static double tune_log_distance(const mfx_op *op, const int64_t *a, const int64_t *b) {
  double sum = 0.0;
  for (int d = 0; d < op->n_dims; d++) {
    double x = log2((double)a[d]) - log2((double)b[d]);
    sum += x * x;
  }
  return sqrt(sum);
}

static int tune_collect_shape(void *user, const char *dims, const char *device,
                              const char *config, double median_s) {
  (void)device;
  tune_shapes *s = user;
  tune_shape item;
  if (mfx_op_parse_dims(s->key->op, dims, item.dims) != MFX_OK) {
    mfx_clear_error(); /* a record whose dims no longer parse is not a candidate */
    return 0;
  }
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    tune_shape *items = realloc(s->items, sizeof *items * (size_t)cap);
    if (items == NULL) {
      s->status = mfx_fail(MFX_ERR_NOMEM, "lookup: out of memory");
      return 1;
    }
    s->items = items;
    s->cap = cap;
  }
  tune_copy_text(item.config, sizeof item.config, config);
  item.median_s = median_s;
  item.distance = tune_log_distance(s->key->op, item.dims, s->key->dims);
  s->items[s->n++] = item;
  return 0;
}

static int tune_compare_shapes(const void *a, const void *b) {
  double x = ((const tune_shape *)a)->distance, y = ((const tune_shape *)b)->distance;
  return (x > y) - (x < y);
}

/* The nearest shape whose config the template accepts for key's dims. */
static int tune_pick_nearest(const mfx_tune_key *key, tune_shapes *s, mfx_tune_choice *out) {
  mfx_space space;
  if (tune_space_init_key(&space, key) != MFX_OK) return 0;
  if (s->n > 1) qsort(s->items, (size_t)s->n, sizeof *s->items, tune_compare_shapes);
  for (int i = 0; i < s->n; i++) {
    mfx_config cfg;
    if (mfx_config_parse_json_for(key->op, key->target.target, s->items[i].config, &cfg) !=
            MFX_OK ||
        mfx_space_check(&space, &cfg) != MFX_OK) {
      mfx_clear_error();
      continue;
    }
    char dims[256];
    mfx_tune_key tuned = *key;
    memcpy(tuned.dims, s->items[i].dims, sizeof tuned.dims);
    mfx_tune_key_dims_text(&tuned, dims, sizeof dims);
    out->cfg = cfg;
    out->source = MFX_TUNE_NEAREST;
    out->median_s = s->items[i].median_s;
    memcpy(out->tuned_dims, s->items[i].dims, sizeof out->tuned_dims);
    snprintf(out->why, sizeof out->why,
             "nearest tuned shape: %s (log2 distance %.2f), where it ran in %.4g ms", dims,
             s->items[i].distance, s->items[i].median_s * 1e3);
    return 1;
  }
  return 0;
}

static mfx_status tune_choose_nearest(mfx_tune_db *db, const mfx_tune_key *key,
                                      mfx_tune_choice *out, int *found) {
  tune_shapes s = {key, NULL, 0, 0, MFX_OK};
  mfx_status st = tune_db_tuned_shapes(db, key, tune_collect_shape, &s);
  if (st == MFX_OK) st = s.status;
  *found = st == MFX_OK && tune_pick_nearest(key, &s, out);
  free(s.items);
  return st;
}

static mfx_status tune_choose_exact(mfx_tune_db *db, const mfx_tune_key *key,
                                    mfx_tune_choice *out, int *found) {
  mfx_trial best;
  int trials = 0;
  MFX_TRY(mfx_tune_db_best(db, key, &best, found));
  if (!*found) return MFX_OK;
  MFX_TRY(mfx_tune_db_count(db, key, &trials));
  out->cfg = best.cfg;
  out->source = MFX_TUNE_TUNED;
  out->median_s = best.m.median_s;
  memcpy(out->tuned_dims, key->dims, sizeof out->tuned_dims);
  snprintf(out->why, sizeof out->why, "tuned: the best of %d trials for this key, %.4g ms",
           trials, best.m.median_s * 1e3);
  return MFX_OK;
}

mfx_status mfx_tune_choose(mfx_tune_db *db, const mfx_tune_key *key, mfx_tune_choice *out) {
  if (key == NULL || key->op == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "tune choose: key and out must not be NULL");
  memset(out, 0, sizeof *out);
  int found = 0;
  if (db != NULL) MFX_TRY(tune_choose_exact(db, key, out, &found));
  if (db != NULL && !found) MFX_TRY(tune_choose_nearest(db, key, out, &found));
  if (found) return MFX_OK;
  mfx_config_default_for(key->op, key->target.target, &out->cfg);
  out->source = MFX_TUNE_DEFAULT;
  memcpy(out->tuned_dims, key->dims, sizeof out->tuned_dims);
  snprintf(out->why, sizeof out->why, "template default: %s",
           db == NULL ? "no tuning database"
                      : "no tuning record for this op, target and architecture");
  return MFX_OK;
}

mfx_status mfx_tune_lookup(const char *db_path, const mfx_op *op, const int64_t *dims,
                           mfx_tune_choice *out) {
  return mfx_tune_lookup_for(db_path, op, dims, "cpu", out);
}

mfx_status mfx_tune_lookup_for(const char *db_path, const mfx_op *op, const int64_t *dims,
                               const char *target, mfx_tune_choice *out) {
  char path[1024];
  mfx_tune_key key;
  mfx_tune_db *db = NULL;
  MFX_TRY(mfx_tune_db_path(db_path, path, sizeof path));
  MFX_TRY(mfx_tune_key_init(&key, op, dims, target != NULL ? target : "cpu"));
  mfx_status st = mfx_tune_db_open_readonly(path, &db);
  if (st == MFX_ERR_NOT_FOUND) {
    mfx_clear_error();
    MFX_TRY(mfx_tune_choose(NULL, &key, out));
    snprintf(out->why, sizeof out->why, "template default: no tuning database at %.340s", path);
    return MFX_OK;
  }
  if (st != MFX_OK) return st;
  st = mfx_tune_choose(db, &key, out);
  mfx_tune_db_close(db);
  return st;
}
