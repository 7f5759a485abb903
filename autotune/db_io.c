/* The database as text: export and import as JSON lines (one trial per
 * line, with its whole key, so that a file moves records between machines
 * and back without loss), and an SVG plot of one tuning's progress. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db_internal.h"
#include "mfx/json.h"
#include "mfx/plot.h"

/* ---- export --------------------------------------------------------------------- */

static const char tune_export_sql[] =
    "SELECT t.op, t.dims, t.dtypes, t.target, t.arch, t.device, t.version, r.config, r.status,"
    " r.median_s, r.spread, r.p10_s, r.p90_s, r.repeats, r.error, r.created, r.session, r.rank,"
    " r.build_s, r.resources FROM mfx_trials r JOIN mfx_tasks t ON t.id = r.task ORDER BY r.id";

static const char *const tune_export_text[] = {"op", "dims", "dtypes", "target", "arch",
                                                "device", "version"};
static const char *const tune_export_numbers[] = {"median_s", "spread", "p10_s", "p90_s"};

static void tune_export_number(mfx_json *w, const char *name, sqlite3_stmt *stmt, int col) {
  mfx_json_key(w, name);
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) mfx_json_null(w);
  else mfx_json_number(w, sqlite3_column_double(stmt, col));
}

/* The config as stored: an object when it is one (it always is when mfx
 * wrote it), else its text as a string. */
static void tune_export_config(mfx_json *w, const char *text) {
  cJSON *config = cJSON_Parse(text);
  mfx_json_key(w, "config");
  if (cJSON_IsObject(config)) mfx_json_raw(w, text);
  else mfx_json_string(w, text);
  cJSON_Delete(config);
}

/* One trial as one line, through the shared writer (mfx/json.h). */
static mfx_status tune_export_write(mfx_tune_db *db, sqlite3_stmt *stmt, FILE *out) {
  mfx_json w;
  mfx_json_begin(&w, out, MFX_JSON_COMPACT);
  mfx_json_object(&w);
  for (int i = 0; i < 7; i++) mfx_json_key_string(&w, tune_export_text[i], tune_db_text(stmt, i));
  tune_export_config(&w, tune_db_text(stmt, 7));
  mfx_json_key_string(&w, "status", tune_db_text(stmt, 8));
  for (int i = 0; i < 4; i++) tune_export_number(&w, tune_export_numbers[i], stmt, 9 + i);
  mfx_json_key_int(&w, "repeats", sqlite3_column_int(stmt, 13));
  mfx_json_key_string(&w, "error", tune_db_text(stmt, 14));
  mfx_json_key_number(&w, "created", sqlite3_column_double(stmt, 15));
  mfx_json_key_string(&w, "session", tune_db_text(stmt, 16));
  mfx_json_key_int(&w, "rank", sqlite3_column_int(stmt, 17));
  mfx_json_key_number(&w, "build_s", sqlite3_column_double(stmt, 18));
  if (tune_db_text(stmt, 19)[0] != '\0')
    mfx_json_key_string(&w, "resources", tune_db_text(stmt, 19));
  mfx_json_end(&w);
  fputc('\n', out);
  if (mfx_json_finish(&w) != MFX_OK)
    return mfx_fail(MFX_ERR_IO, "export %s: cannot write the output", db->path);
  return MFX_OK;
}

mfx_status mfx_tune_db_export(mfx_tune_db *db, FILE *out, int *count) {
  if (db == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "export: db and out must not be NULL");
  sqlite3_stmt *stmt;
  MFX_TRY(tune_db_prepare(db, tune_export_sql, &stmt));
  int rc, n = 0;
  mfx_status st = MFX_OK;
  while (st == MFX_OK && (rc = tune_db_step(stmt)) == SQLITE_ROW) {
    st = tune_export_write(db, stmt, out);
    n += st == MFX_OK;
  }
  sqlite3_finalize(stmt);
  if (st == MFX_OK && rc != SQLITE_DONE) st = tune_db_error(db, MFX_ERR_IO, "exporting");
  if (st == MFX_OK && fflush(out) != 0)
    st = mfx_fail(MFX_ERR_IO, "export %s: cannot write the output", db->path);
  if (count != NULL) *count = n;
  return st;
}

/* ---- import ------------------------------------------------------------------------- */

typedef struct {
  const char *name; /* for messages */
  int line;
} tune_import_at;

static const char *tune_json_string(const cJSON *o, const char *field) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, field);
  return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double tune_json_number(const cJSON *o, const char *field, double fallback) {
  const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, field);
  return cJSON_IsNumber(item) ? item->valuedouble : fallback;
}

/* The key strings of a line, all required. */
static mfx_status tune_import_key(const cJSON *o, const tune_import_at *at, const char **v,
                                  mfx_tune_target *target) {
  for (int i = 0; i < 7; i++) {
    v[i] = tune_json_string(o, tune_export_text[i]);
    if (v[i] == NULL)
      return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: \"%s\" is missing or not a string",
                      at->name, at->line, tune_export_text[i]);
  }
  memset(target, 0, sizeof *target);
  tune_copy_text(target->target, sizeof target->target, v[3]);
  tune_copy_text(target->arch, sizeof target->arch, v[4]);
  tune_copy_text(target->device, sizeof target->device, v[5]);
  tune_copy_text(target->version, sizeof target->version, v[6]);
  return MFX_OK;
}

/* The config as the tuner writes it (knobs in the op's order, every knob)
 * when the op is known here; as given otherwise. */
static mfx_status tune_import_config(const cJSON *o, const char *op_name, const char *target,
                                     const tune_import_at *at, char *buf, size_t size) {
  const cJSON *config = cJSON_GetObjectItemCaseSensitive(o, "config");
  if (!cJSON_IsObject(config))
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: \"config\" must be an object", at->name,
                    at->line);
  char *text = cJSON_PrintUnformatted(config);
  if (text == NULL) return mfx_fail(MFX_ERR_NOMEM, "import %s: out of memory", at->name);
  const mfx_op *op = mfx_op_find(op_name);
  mfx_config cfg;
  mfx_status st = MFX_OK;
  if (op != NULL && (st = mfx_config_parse_json_for(op, target, text, &cfg)) == MFX_OK)
    mfx_config_to_json(&cfg, buf, size);
  else if (op == NULL)
    tune_copy_text(buf, size, text);
  free(text);
  if (st != MFX_OK)
    return mfx_fail_context(MFX_ERR_FORMAT, "import %s line %d", at->name, at->line);
  return MFX_OK;
}

static mfx_status tune_import_trial(const cJSON *o, const tune_import_at *at, mfx_trial *t,
                                    const char **session) {
  memset(t, 0, sizeof *t);
  const char *status = tune_json_string(o, "status");
  *session = tune_json_string(o, "session");
  if (status == NULL || mfx_trial_status_from_name(status, &t->status) != 0)
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: \"status\" must be ok, error or wrong",
                    at->name, at->line);
  if (*session == NULL || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "created")))
    return mfx_fail(MFX_ERR_FORMAT,
                    "import %s line %d: \"session\" (string) and \"created\" (number) are needed",
                    at->name, at->line);
  static const char *const numbers[] = {"median_s", "spread", "p10_s", "p90_s", "repeats",
                                        "created", "rank", "build_s"};
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, numbers[i]);
    if (item != NULL && !cJSON_IsNull(item) &&
        (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0.0 ||
         item->valuedouble > 1e15))
      return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: \"%s\" must be a finite number "
                      "0..1e15", at->name, at->line, numbers[i]);
  }
  t->m.median_s = tune_json_number(o, "median_s", 0.0);
  if (t->status == MFX_TRIAL_OK && !(t->m.median_s > 0.0))
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: an ok trial needs median_s > 0",
                    at->name, at->line);
  t->m.spread = tune_json_number(o, "spread", 0.0);
  t->m.p10_s = tune_json_number(o, "p10_s", 0.0);
  t->m.p90_s = tune_json_number(o, "p90_s", 0.0);
  double repeats = tune_json_number(o, "repeats", 0.0), rank = tune_json_number(o, "rank", 0.0);
  if (!(repeats >= 0 && repeats <= INT_MAX && rank >= 0 && rank <= INT_MAX)) /* (int) would be UB */
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: \"repeats\" and \"rank\" must be from 0 "
                    "to %d", at->name, at->line, INT_MAX);
  t->m.repeats = (int)repeats;
  t->created = tune_json_number(o, "created", 0.0);
  t->rank = (int)rank;
  t->build_s = tune_json_number(o, "build_s", 0.0);
  const char *error = tune_json_string(o, "error");
  tune_copy_text(t->error, sizeof t->error, error != NULL ? error : "");
  const char *resources = tune_json_string(o, "resources");
  tune_copy_text(t->resources, sizeof t->resources, resources != NULL ? resources : "");
  return MFX_OK;
}

/* The op must be one mfx knows and the dims valid for it: written as the
 * tuner writes them. */
static mfx_status tune_import_dims(const char *op_name, const char *dims,
                                   const tune_import_at *at, char *buf, size_t size) {
  const mfx_op *op = mfx_op_find(op_name);
  if (op == NULL)
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: unknown op \"%.64s\" (see mfx ops)",
                    at->name, at->line, op_name);
  mfx_tune_key key;
  memset(&key, 0, sizeof key);
  key.op = op;
  if (mfx_op_parse_dims(op, dims, key.dims) != MFX_OK)
    return mfx_fail_context(MFX_ERR_FORMAT, "import %s line %d", at->name, at->line);
  mfx_tune_key_dims_text(&key, buf, size);
  return MFX_OK;
}

static mfx_status tune_import_object(mfx_tune_db *db, const cJSON *o, const tune_import_at *at,
                                     int *inserted) {
  const char *v[7], *session;
  mfx_tune_target target;
  mfx_trial t;
  char config[1024], dims[256];
  MFX_TRY(tune_import_key(o, at, v, &target));
  MFX_TRY(tune_import_dims(v[0], v[1], at, dims, sizeof dims));
  MFX_TRY(tune_import_config(o, v[0], target.target, at, config, sizeof config));
  MFX_TRY(tune_import_trial(o, at, &t, &session));
  tune_db_task task = {v[0], dims, v[2], &target};
  sqlite3_int64 id;
  MFX_TRY(tune_db_task_id(db, &task, 1, &id));
  return tune_db_insert(db, id, config, &t, session, 1, inserted);
}

static mfx_status tune_import_line(mfx_tune_db *db, const char *line, const tune_import_at *at,
                                   int *added, int *skipped) {
  const char *p = line;
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
  if (*p == '\0') return MFX_OK;
  cJSON *o = cJSON_Parse(p);
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: not a JSON object", at->name, at->line);
  }
  int inserted = 0;
  mfx_status st = tune_import_object(db, o, at, &inserted);
  cJSON_Delete(o);
  *added += st == MFX_OK && inserted;
  *skipped += st == MFX_OK && !inserted;
  return st;
}

#define TUNE_IMPORT_LINE_BYTES 65536

/* One line into buf (without its newline): 1, 0 at the end of the input;
 * a line longer than the buffer or holding a NUL byte is an error. */
static mfx_status tune_import_read_line(FILE *in, char *buf, const tune_import_at *at,
                                        size_t *total, int *got) {
  size_t n = 0;
  int c;
  *got = 0;
  while ((c = getc(in)) != EOF) {
    *got = 1;
    if (++*total > MFX_FILE_CAP_TEXT)
      return mfx_fail(MFX_ERR_FORMAT, "import %s: more than the cap of %zu bytes for an "
                      "import", at->name, MFX_FILE_CAP_TEXT);
    if (c == '\n') break;
    if (c == '\0')
      return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: a NUL byte: not JSON lines text",
                      at->name, at->line);
    if (n + 1 >= TUNE_IMPORT_LINE_BYTES)
      return mfx_fail(MFX_ERR_FORMAT, "import %s line %d: longer than %d bytes", at->name,
                      at->line, TUNE_IMPORT_LINE_BYTES - 1);
    buf[n++] = (char)c;
  }
  buf[n] = '\0';
  return MFX_OK;
}

static mfx_status tune_import_lines(mfx_tune_db *db, FILE *in, const char *name, int *added,
                                    int *skipped) {
  char *line = malloc(TUNE_IMPORT_LINE_BYTES);
  if (line == NULL) return mfx_fail(MFX_ERR_NOMEM, "import %s: out of memory", name);
  tune_import_at at = {name, 0};
  mfx_status st = MFX_OK;
  size_t total = 0;
  int got = 1;
  while (st == MFX_OK && got) {
    at.line++;
    st = tune_import_read_line(in, line, &at, &total, &got);
    if (st == MFX_OK && got) st = tune_import_line(db, line, &at, added, skipped);
  }
  if (st == MFX_OK && ferror(in)) st = mfx_fail(MFX_ERR_IO, "import %s: read error", name);
  free(line);
  return st;
}

mfx_status mfx_tune_db_import(mfx_tune_db *db, FILE *in, const char *name, int *added,
                              int *skipped) {
  if (db == NULL || in == NULL)
    return mfx_fail(MFX_ERR_INVALID, "import: db and in must not be NULL");
  int a = 0, s = 0;
  MFX_TRY(tune_db_begin(db));
  mfx_status st = tune_import_lines(db, in, name != NULL ? name : "(input)", &a, &s);
  if (st == MFX_OK) st = tune_db_commit(db);
  if (st != MFX_OK) {
    tune_db_rollback(db);
    a = s = 0;
  }
  if (added != NULL) *added = a;
  if (skipped != NULL) *skipped = s;
  return st;
}

/* ---- plot ------------------------------------------------------------------------------- */

typedef struct {
  int n, cap;
  double *ms;   /* per trial; 0 for failed */
  int out_of_memory;
} tune_series;

static int tune_series_add(void *user, const mfx_trial *t) {
  tune_series *s = user;
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    double *ms = realloc(s->ms, sizeof *ms * (size_t)cap);
    if (ms == NULL) {
      s->out_of_memory = 1;
      return 1;
    }
    s->ms = ms;
    s->cap = cap;
  }
  s->ms[s->n++] = t->status == MFX_TRIAL_OK ? t->m.median_s * 1e3 : 0.0;
  return 0;
}

/* The best-so-far line (a step at each improvement), the trials as dots,
 * and the failed ones as red x on the trial axis (mfx/plot.h). */
static void tune_point(double *x, double *y, int *n, double xv, double yv) {
  x[*n] = xv;
  y[(*n)++] = yv;
}

static void tune_plot_series(const mfx_plot *p, const tune_series *s, double *x, double *y) {
  int n = 0;
  double best = 0.0;
  for (int i = 0; i < s->n; i++) {
    if (s->ms[i] > 0.0 && (best == 0.0 || s->ms[i] < best)) {
      if (best > 0.0) tune_point(x, y, &n, i + 1, best);
      best = s->ms[i];
    }
    if (best > 0.0) tune_point(x, y, &n, i + 1, best);
  }
  mfx_plot_line(p, x, y, n, "#1f77b4");
  n = 0;
  for (int i = 0; i < s->n; i++)
    if (s->ms[i] > 0.0) tune_point(x, y, &n, i + 1, s->ms[i]);
  mfx_plot_points(p, x, y, n, "#999", 2.5);
  n = 0;
  for (int i = 0; i < s->n; i++)
    if (s->ms[i] <= 0.0) tune_point(x, y, &n, i + 1, 0.0);
  mfx_plot_axis_marks(p, x, n, "#d62728", "x");
}

static mfx_status tune_plot_write(FILE *out, const mfx_tune_key *key, const tune_series *s) {
  double lo = INFINITY, hi = -INFINITY, best = 0.0;
  for (int i = 0; i < s->n; i++) {
    if (s->ms[i] <= 0.0) continue;
    lo = fmin(lo, s->ms[i]);
    hi = fmax(hi, s->ms[i]);
    if (best == 0.0 || s->ms[i] < best) best = s->ms[i];
  }
  if (!(lo <= hi)) lo = hi = 1.0;
  char dims[256], title[512];
  mfx_tune_key_dims_text(key, dims, sizeof dims);
  snprintf(title, sizeof title, "%s %s on %s: best %.4g ms after %d trials "
           "(line: best so far; x: failed)", key->op->name, dims, key->target.target, best, s->n);
  mfx_plot p = {.out = out, .title = title, .x_label = "trial",
                .y_label = "median time (ms, log scale)", .x_lo = 1, .x_hi = s->n,
                .y_lo = lo / pow(10.0, 0.05), .y_hi = hi * pow(10.0, 0.05), .y_log = 1,
                .x_whole = 1};
  double *x = malloc(sizeof *x * (size_t)(2 * s->n)), *y = malloc(sizeof *y * (size_t)(2 * s->n));
  mfx_status st = MFX_OK;
  if (x == NULL || y == NULL) {
    st = mfx_fail(MFX_ERR_NOMEM, "plot: out of memory");
  } else {
    mfx_plot_begin(&p);
    tune_plot_series(&p, s, x, y);
    st = mfx_plot_end(&p);
  }
  free(x);
  free(y);
  return st;
}

mfx_status mfx_tune_db_plot(mfx_tune_db *db, const mfx_tune_key *key, FILE *out) {
  if (db == NULL || key == NULL || key->op == NULL || out == NULL)
    return mfx_fail(MFX_ERR_INVALID, "plot: db, key and out must not be NULL");
  tune_series s = {0, 0, NULL, 0};
  mfx_status st = mfx_tune_db_trials(db, key, tune_series_add, &s);
  if (st == MFX_OK && s.out_of_memory) st = mfx_fail(MFX_ERR_NOMEM, "plot: out of memory");
  if (st == MFX_OK && s.n == 0) {
    char dims[256];
    mfx_tune_key_dims_text(key, dims, sizeof dims);
    st = mfx_fail(MFX_ERR_NOT_FOUND, "plot: %s has no trials of %s %s on this target", db->path,
                  key->op->name, dims);
  }
  if (st == MFX_OK) st = tune_plot_write(out, key, &s);
  free(s.ms);
  return st;
}
