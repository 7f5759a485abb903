/* The expert latency profiler and the latency table, in the order they are
 * used: the device key and the table's path; measuring an expert (warm-up,
 * repeats to a minimum time, median) at several token counts; the fits and
 * alpha (mfx_router_latency_fit / _alpha); the table as JSON, written with
 * fprintf and read back by the small reader at the end of this file (the
 * runtime never depends on cJSON). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfx/artifact.h"
#include "mfx/device.h"
#include "mfx/json.h"
#include "mfx/latency.h"
#include "mfx/router.h"
#include "json_internal.h"

#define PROFILE_FORMAT "mfx-latency-1"

/* ==== the device key and the path ========================================== */

mfx_status mfx_latency_host_key(char *buf, size_t size) {
  if (buf == NULL || size < 16)
    return mfx_fail(MFX_ERR_INVALID, "latency host key: buffer NULL or under 16 bytes");
  char model[256];
  if (!mfx_cpuinfo_field("model name", model, sizeof model)) snprintf(model, sizeof model, "unknown CPU");
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  snprintf(buf, size, "cpu: %s (%ld cores)", model, cores > 0 ? cores : 1);
  return MFX_OK;
}

static mfx_status profile_mkdir(const char *dir) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) return MFX_OK;
  return mfx_fail(MFX_ERR_IO, "latency table: cannot create directory %s: %s", dir,
                  strerror(errno));
}

mfx_status mfx_latency_default_path(char *buf, size_t size) {
  if (buf == NULL || size == 0)
    return mfx_fail(MFX_ERR_INVALID, "latency default path: buffer is NULL");
  const char *given = getenv("MFX_LATENCY");
  if (given != NULL && given[0] != '\0') {
    snprintf(buf, size, "%s", given);
    return MFX_OK;
  }
  const char *home = getenv("HOME");
  if (home == NULL || home[0] == '\0')
    return mfx_fail(MFX_ERR_IO, "latency table: $HOME is not set; set MFX_LATENCY or pass a "
                    "path");
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/.cache", home);
  mfx_status st = profile_mkdir(dir);
  snprintf(dir, sizeof dir, "%s/.cache/mfx", home);
  if (st == MFX_OK) st = profile_mkdir(dir);
  if (st != MFX_OK) return st;
  if ((size_t)snprintf(buf, size, "%s/latency.json", dir) >= size)
    return mfx_fail(MFX_ERR_INVALID, "latency default path: %s/latency.json is too long", dir);
  return MFX_OK;
}

/* ==== measuring ================================================================ */

void mfx_profile_options_default(mfx_profile_options *o) {
  if (o == NULL) return;
  o->warmup = 1;
  o->min_repeats = 5;
  o->max_repeats = 200;
  o->min_seconds = 0.05;
  o->seconds = NULL;
}

static mfx_status profile_check_options(const mfx_profile_options *o) {
  if (o->warmup < 0 || o->min_repeats < 1 || o->max_repeats < o->min_repeats ||
      !(o->min_seconds >= 0.0))
    return mfx_fail(MFX_ERR_INVALID, "profile: options warmup=%d, repeats %d..%d, min_seconds=%g;"
                    " expected warmup >= 0, 1 <= min_repeats <= max_repeats, min_seconds >= 0",
                    o->warmup, o->min_repeats, o->max_repeats, o->min_seconds);
  return MFX_OK;
}

/* One run of the profiled function, timed by its own clock when it has one. */
typedef struct {
  mfx_profile_fn fn;
  void *user;
  int64_t tokens;
  double (*seconds)(void *user);
} profile_run;

static mfx_status profile_once(void *closure, double *seconds) {
  profile_run *r = closure;
  mfx_status st = r->fn(r->user, r->tokens);
  if (st == MFX_OK && r->seconds != NULL && *seconds < 0.0) *seconds = r->seconds(r->user);
  return st;
}

mfx_status mfx_profile_measure(mfx_profile_fn fn, void *user, int64_t tokens,
                               const mfx_profile_options *o, double *median_s) {
  mfx_profile_options defaults;
  mfx_profile_options_default(&defaults);
  if (o == NULL) o = &defaults;
  if (fn == NULL || median_s == NULL)
    return mfx_fail(MFX_ERR_INVALID, "profile: fn and median_s must not be NULL");
  mfx_status st = profile_check_options(o);
  if (st != MFX_OK) return st;
  profile_run run = {fn, user, tokens, o->seconds};
  mfx_timing plan = {o->warmup, o->min_repeats, o->max_repeats, o->min_seconds};
  if (st == MFX_OK) st = mfx_time_median(profile_once, &run, &plan, median_s, NULL);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "profile at %lld tokens", (long long)tokens);
}

static mfx_status profile_check_tokens(const int64_t *tokens, int points) {
  if (tokens == NULL || points < 2 || points > MFX_LATENCY_MAX_POINTS)
    return mfx_fail(MFX_ERR_INVALID, "profile expert: %d token counts; expected 2..%d", points,
                    MFX_LATENCY_MAX_POINTS);
  for (int i = 0; i < points; i++) {
    if (tokens[i] < 1 || (i > 0 && tokens[i] < tokens[i - 1]))
      return mfx_fail(MFX_ERR_INVALID, "profile expert: token count %d is %lld; expected "
                      "positive counts in ascending order", i, (long long)tokens[i]);
  }
  if (tokens[0] == tokens[points - 1])
    return mfx_fail(MFX_ERR_INVALID, "profile expert: every token count is %lld; expected at "
                    "least two distinct counts", (long long)tokens[0]);
  return MFX_OK;
}

static mfx_status profile_fit(mfx_latency_expert *x) {
  double n[MFX_LATENCY_MAX_POINTS];
  for (int i = 0; i < x->points; i++) n[i] = (double)x->tokens[i];
  mfx_status st = mfx_router_latency_fit(n, x->seconds, x->points, &x->a, &x->b, &x->r2);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "expert %s", x->name);
}

mfx_status mfx_profile_expert(mfx_profile_fn fn, void *user, const int64_t *tokens, int points,
                              const mfx_profile_options *o, mfx_latency_expert *out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "profile expert: out must not be NULL");
  mfx_status st = profile_check_tokens(tokens, points);
  out->points = 0;
  for (int i = 0; st == MFX_OK && i < points; i++) {
    out->tokens[i] = tokens[i];
    st = mfx_profile_measure(fn, user, tokens[i], o, &out->seconds[i]);
    out->points = i + 1;
  }
  if (st == MFX_OK) st = profile_fit(out);
  return st;
}

/* ==== fits and alpha ================================================================= */

/* The measured median whose token count is nearest to n. */
static double profile_nearest(const mfx_latency_expert *x, int64_t n) {
  int best = 0;
  for (int i = 1; i < x->points; i++) {
    if (llabs(x->tokens[i] - n) < llabs(x->tokens[best] - n)) best = i;
  }
  return x->seconds[best];
}

mfx_status mfx_latency_finish(mfx_latency_table *t) {
  if (t == NULL) return mfx_fail(MFX_ERR_INVALID, "latency finish: the table is NULL");
  if (t->experts < 1 || t->experts > MFX_LATENCY_MAX_EXPERTS || t->at_tokens < 1)
    return mfx_fail(MFX_ERR_INVALID, "latency finish: %d experts at %lld tokens; expected "
                    "1..%d experts and at least 1 token", t->experts, (long long)t->at_tokens,
                    MFX_LATENCY_MAX_EXPERTS);
  double latency[MFX_LATENCY_MAX_EXPERTS];
  for (int e = 0; e < t->experts; e++) {
    mfx_latency_expert *x = &t->expert[e];
    if (x->points < 2 || x->points > MFX_LATENCY_MAX_POINTS)
      return mfx_fail(MFX_ERR_INVALID, "latency finish: expert %d (%s) has %d points; expected "
                      "2..%d", e, x->name, x->points, MFX_LATENCY_MAX_POINTS);
    mfx_status st = profile_fit(x);
    if (st != MFX_OK) return st;
    x->latency = x->a + x->b * (double)t->at_tokens;
    if (!(x->latency > 0.0)) x->latency = profile_nearest(x, t->at_tokens);
    latency[e] = x->latency;
  }
  mfx_status st = mfx_router_latency_alpha(latency, t->experts, t->alpha);
  return st == MFX_OK ? MFX_OK : mfx_fail_context(st, "latency finish");
}

/* ==== writing JSON (the shared writer, mfx/json.h) ============================================ */

static void profile_json_expert(mfx_json *w, const mfx_latency_expert *x) {
  double tokens[MFX_LATENCY_MAX_POINTS];
  int points = x->points < 0 ? 0 : x->points > MFX_LATENCY_MAX_POINTS ? MFX_LATENCY_MAX_POINTS
                                                                       : x->points;
  for (int i = 0; i < points; i++) tokens[i] = (double)x->tokens[i];
  mfx_json_object(w);
  mfx_json_key_string(w, "name", x->name);
  mfx_json_key(w, "tokens");
  mfx_json_numbers(w, tokens, points);
  mfx_json_key(w, "seconds");
  mfx_json_numbers(w, x->seconds, points);
  mfx_json_key_number(w, "a", x->a);
  mfx_json_key_number(w, "b", x->b);
  mfx_json_key_number(w, "r2", x->r2);
  mfx_json_key_number(w, "latency", x->latency);
  mfx_json_end(w);
}

static void profile_json_table(mfx_json *w, const mfx_latency_table *t) {
  int experts = t->experts < 0 ? 0 : t->experts > MFX_LATENCY_MAX_EXPERTS ? MFX_LATENCY_MAX_EXPERTS
                                                                          : t->experts;
  mfx_json_object(w);
  mfx_json_key_string(w, "device", t->device);
  mfx_json_key_string(w, "target", t->target);
  mfx_json_key_int(w, "dim", t->dim);
  mfx_json_key_int(w, "hidden", t->hidden);
  mfx_json_key_int(w, "at_tokens", t->at_tokens);
  mfx_json_key(w, "experts");
  mfx_json_array(w);
  for (int e = 0; e < experts; e++) profile_json_expert(w, &t->expert[e]);
  mfx_json_end(w);
  mfx_json_key(w, "alpha");
  mfx_json_numbers(w, t->alpha, experts);
  mfx_json_end(w);
}

void mfx_latency_write_json(FILE *out, const mfx_latency_table *t, int indent) {
  mfx_json w;
  mfx_json_begin(&w, out, MFX_JSON_PRETTY);
  w.base_indent = indent < 0 ? 0 : indent > 60 ? 60 : indent;
  profile_json_table(&w, t);
  (void)mfx_json_finish(&w); /* the stream's own error state tells the caller */
}

/* ==== the table from its JSON ================================================================ */

typedef struct {
  const char *path, *device;
} profile_where;

static mfx_status profile_bad(const profile_where *w, const char *field, const char *expected) {
  return mfx_fail(MFX_ERR_FORMAT, "latency table %s, device '%s': \"%s\" %s", w->path, w->device,
                  field, expected);
}

static mfx_status profile_number(const profile_where *w, const json_value *obj, const char *key,
                                 double *out) {
  const json_value *v = json_get(obj, key);
  if (v == NULL || v->type != JSON_NUMBER) return profile_bad(w, key, "is missing or not a number");
  *out = v->number;
  return MFX_OK;
}

static mfx_status profile_text(const profile_where *w, const json_value *obj, const char *key, char *buf,
                               size_t size) {
  const json_value *v = json_get(obj, key);
  if (v == NULL || v->type != JSON_STRING) return profile_bad(w, key, "is missing or not a string");
  if (strlen(v->string) >= size) return profile_bad(w, key, "is too long");
  snprintf(buf, size, "%s", v->string);
  return MFX_OK;
}

static mfx_status profile_numbers(const profile_where *w, const json_value *obj, const char *key,
                                  int max, double *out, int *count) {
  const json_value *v = json_get(obj, key);
  if (v == NULL || v->type != JSON_ARRAY) return profile_bad(w, key, "is missing or not an array");
  if (v->n > max) return profile_bad(w, key, "has too many entries");
  for (int i = 0; i < v->n; i++) {
    if (v->items[i].type != JSON_NUMBER) return profile_bad(w, key, "holds a non-number");
    out[i] = v->items[i].number;
  }
  *count = v->n;
  return MFX_OK;
}

/* A count stored as a JSON number: in [0, 2^53], where the cast to int64_t
 * is defined and exact. */
static int profile_count_fits(double v) { return v >= 0 && v <= 9007199254740992.0; }

static mfx_status profile_read_expert(const profile_where *w, const json_value *obj,
                                      mfx_latency_expert *x) {
  double tokens[MFX_LATENCY_MAX_POINTS];
  int nt = 0, ns = 0;
  mfx_status st = profile_text(w, obj, "name", x->name, sizeof x->name);
  if (st == MFX_OK) st = profile_numbers(w, obj, "tokens", MFX_LATENCY_MAX_POINTS, tokens, &nt);
  if (st == MFX_OK)
    st = profile_numbers(w, obj, "seconds", MFX_LATENCY_MAX_POINTS, x->seconds, &ns);
  if (st == MFX_OK && nt != ns) st = profile_bad(w, "seconds", "differs in length from tokens");
  if (st == MFX_OK) st = profile_number(w, obj, "a", &x->a);
  if (st == MFX_OK) st = profile_number(w, obj, "b", &x->b);
  if (st == MFX_OK) st = profile_number(w, obj, "r2", &x->r2);
  if (st == MFX_OK) st = profile_number(w, obj, "latency", &x->latency);
  for (int i = 0; st == MFX_OK && i < nt; i++)
    if (!profile_count_fits(tokens[i])) st = profile_bad(w, "tokens", "holds a count out of range");
  x->points = nt;
  for (int i = 0; st == MFX_OK && i < nt; i++) {
    if (!(tokens[i] >= 1.0 && tokens[i] <= 1e12 && tokens[i] == floor(tokens[i])))
      st = profile_bad(w, "tokens", "holds a value that is not a token count 1..1e12");
    else if (!isfinite(x->seconds[i]) || x->seconds[i] < 0.0)
      st = profile_bad(w, "seconds", "holds a value that is not finite and >= 0");
    else
      x->tokens[i] = (int64_t)tokens[i];
  }
  if (st == MFX_OK && (!isfinite(x->a) || !isfinite(x->b) || !isfinite(x->r2)))
    st = profile_bad(w, "a", "b or r2 is not finite");
  if (st == MFX_OK && (!isfinite(x->latency) || x->latency <= 0.0))
    st = profile_bad(w, "latency", "is not finite and positive");
  return st;
}

static mfx_status profile_read_sizes(const profile_where *w, const json_value *obj,
                                     mfx_latency_table *t) {
  double dim = 0, hidden = 0, at = 0;
  mfx_status st = profile_number(w, obj, "dim", &dim);
  if (st == MFX_OK) st = profile_number(w, obj, "hidden", &hidden);
  if (st == MFX_OK) st = profile_number(w, obj, "at_tokens", &at);
  const double sizes[3] = {dim, hidden, at};
  for (int i = 0; st == MFX_OK && i < 3; i++)
    if (!(sizes[i] >= 1.0 && sizes[i] <= 2147483648.0 && sizes[i] == floor(sizes[i])))
      st = profile_bad(w, i == 0 ? "dim" : i == 1 ? "hidden" : "at_tokens",
                       "is not an integer 1..2^31");
  if (st != MFX_OK) return st;
  t->dim = (int64_t)dim;
  t->hidden = (int64_t)hidden;
  t->at_tokens = (int64_t)at;
  return st;
}

static mfx_status profile_read_table(const profile_where *w, const json_value *obj,
                                     mfx_latency_table *t) {
  memset(t, 0, sizeof *t);
  snprintf(t->device, sizeof t->device, "%s", w->device);
  if (obj->type != JSON_OBJECT) return profile_bad(w, "(table)", "is not an object");
  mfx_status st = profile_text(w, obj, "target", t->target, sizeof t->target);
  if (st == MFX_OK) st = profile_read_sizes(w, obj, t);
  const json_value *experts = json_get(obj, "experts");
  if (st == MFX_OK && (experts == NULL || experts->type != JSON_ARRAY || experts->n < 1 ||
                       experts->n > MFX_LATENCY_MAX_EXPERTS))
    st = profile_bad(w, "experts", "is missing or not an array of 1..64 experts");
  if (st != MFX_OK) return st;
  t->experts = experts->n;
  for (int e = 0; st == MFX_OK && e < t->experts; e++)
    st = profile_read_expert(w, &experts->items[e], &t->expert[e]);
  int na = 0;
  if (st == MFX_OK) st = profile_numbers(w, obj, "alpha", MFX_LATENCY_MAX_EXPERTS, t->alpha, &na);
  if (st == MFX_OK && na != t->experts)
    st = profile_bad(w, "alpha", "has not one entry per expert");
  for (int e = 0; st == MFX_OK && e < na; e++) {
    if (!isfinite(t->alpha[e]) || t->alpha[e] <= 0.0 || t->alpha[e] > MFX_ROUTER_ALPHA_MAX)
      st = profile_bad(w, "alpha", "holds a value outside 0 < alpha <= 1e6");
  }
  return st;
}

/* ==== the file ============================================================================ */

static mfx_status profile_read_file(const char *path, char **out) {
  return mfx_file_read(path, "latency table", MFX_FILE_CAP_TEXT, out, NULL);
}

/* The "devices" object of a parsed file, checking the format marker. */
static mfx_status profile_devices(const char *path, const json_value *doc, const json_value **out) {
  const json_value *format = json_get(doc, "format");
  if (format == NULL || format->type != JSON_STRING || strcmp(format->string, PROFILE_FORMAT) != 0)
    return mfx_fail(MFX_ERR_FORMAT, "latency table %s: no \"format\": \"%s\" (not an mfx latency "
                    "table, or a newer one)", path, PROFILE_FORMAT);
  *out = json_get(doc, "devices");
  if (*out == NULL || (*out)->type != JSON_OBJECT)
    return mfx_fail(MFX_ERR_FORMAT, "latency table %s: \"devices\" is missing or not an object",
                    path);
  return MFX_OK;
}

static mfx_status profile_parse_file(const char *path, json_value *doc, const json_value **devices) {
  char *text = NULL;
  mfx_status st = profile_read_file(path, &text);
  if (st != MFX_OK) return st;
  st = json_parse("latency table", "not an mfx latency table? delete it or pass another path", path, text, doc);
  free(text);
  if (st == MFX_OK) st = profile_devices(path, doc, devices);
  if (st != MFX_OK) json_free(doc);
  return st;
}

static mfx_status profile_not_found(const char *path, const char *device, const json_value *devices) {
  char names[600] = "";
  size_t used = 0;
  for (int i = 0; i < devices->n && used + 1 < sizeof names; i++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s'%s'", i ? ", " : "",
                             devices->keys[i]);
  return mfx_fail(MFX_ERR_NOT_FOUND, "latency table %s: no table for device '%s'; it has %s "
                  "(measure this device with mfx experts, or name one of those)", path, device,
                  devices->n ? names : "none");
}

/* No key is `device`: the one key that starts with it ("cuda" for
 * "cuda: cuda:0: NVIDIA H100 ..."); several are an error naming them. */
static mfx_status profile_by_prefix(const char *path, const char *device, const json_value *devices,
                                    const json_value **table, const char **key) {
  size_t len = strlen(device);
  int found = -1, count = 0;
  for (int i = 0; len > 0 && i < devices->n; i++) {
    if (strncmp(devices->keys[i], device, len) != 0) continue;
    found = i;
    count++;
  }
  if (count > 1)
    return mfx_fail(MFX_ERR_INVALID, "latency table %s: '%s' starts %d device keys; give the "
                    "whole key (mfx experts prints it)", path, device, count);
  if (count == 1) {
    *table = &devices->items[found];
    *key = devices->keys[found];
  }
  return MFX_OK;
}

mfx_status mfx_latency_load(const char *path, const char *device, mfx_latency_table *t) {
  if (path == NULL || t == NULL)
    return mfx_fail(MFX_ERR_INVALID, "latency load: path and table must not be NULL");
  char key[160];
  if (device == NULL) {
    mfx_status st = mfx_latency_host_key(key, sizeof key);
    if (st != MFX_OK) return st;
    device = key;
  }
  json_value doc;
  const json_value *devices;
  mfx_status st = profile_parse_file(path, &doc, &devices);
  if (st != MFX_OK) return st;
  const json_value *table = json_get(devices, device);
  if (table == NULL) st = profile_by_prefix(path, device, devices, &table, &device);
  profile_where w = {path, device};
  if (st == MFX_OK)
    st = table == NULL ? profile_not_found(path, device, devices) : profile_read_table(&w, table, t);
  json_free(&doc);
  return st;
}

/* The tables of an existing file, other than `skip`; none when no file. */
static mfx_status profile_read_others(const char *path, const char *skip,
                                      mfx_latency_table **out, int *count) {
  json_value doc;
  const json_value *devices;
  *out = NULL;
  *count = 0;
  mfx_status st = profile_parse_file(path, &doc, &devices);
  if (st == MFX_ERR_NOT_FOUND) return MFX_OK;
  if (st != MFX_OK) return st;
  *out = calloc((size_t)devices->n + 1, sizeof **out);
  if (*out == NULL) st = mfx_fail(MFX_ERR_NOMEM, "latency table: out of memory");
  for (int i = 0; st == MFX_OK && i < devices->n; i++) {
    if (strcmp(devices->keys[i], skip) == 0) continue;
    profile_where w = {path, devices->keys[i]};
    st = profile_read_table(&w, &devices->items[i], &(*out)[*count]);
    if (st == MFX_OK) (*count)++;
  }
  json_free(&doc);
  return st;
}

/* The whole file; a table with NaN or infinite numbers is refused (JSON
 * has none: they would be written as null, and no loader takes them). */
static mfx_status profile_write_file(FILE *f, const mfx_latency_table *others, int count,
                                     const mfx_latency_table *t) {
  mfx_json w;
  mfx_json_begin(&w, f, MFX_JSON_PRETTY);
  mfx_json_object(&w);
  mfx_json_key_string(&w, "format", PROFILE_FORMAT);
  mfx_json_key(&w, "devices");
  mfx_json_object(&w);
  for (int i = 0; i <= count; i++) {
    const mfx_latency_table *x = i < count ? &others[i] : t;
    mfx_json_key(&w, x->device);
    profile_json_table(&w, x);
  }
  mfx_json_end(&w);
  mfx_json_end(&w);
  fputc('\n', f);
  mfx_status st = mfx_json_finish(&w);
  if (st == MFX_OK && w.nonfinite > 0)
    st = mfx_fail(MFX_ERR_INVALID, "latency table of '%s': %d numbers are NaN or infinite (JSON "
                  "has no NaN; they would be written as null); not saved", t->device, w.nonfinite);
  return st;
}

mfx_status mfx_latency_save(const char *path, const mfx_latency_table *t) {
  if (path == NULL || t == NULL)
    return mfx_fail(MFX_ERR_INVALID, "latency save: path and table must not be NULL");
  if (t->device[0] == '\0' || t->experts < 1 || t->experts > MFX_LATENCY_MAX_EXPERTS)
    return mfx_fail(MFX_ERR_INVALID, "latency save: the table needs a device key and 1..%d "
                    "experts", MFX_LATENCY_MAX_EXPERTS);
  if (mfx_check_replaceable(path, "latency table") != MFX_OK) return MFX_ERR_IO;
  mfx_latency_table *others = NULL;
  int count = 0;
  mfx_status st = profile_read_others(path, t->device, &others, &count);
  if (st != MFX_OK) {
    free(others);
    return st;
  }
  mfx_file_writer w;
  if (st == MFX_OK) st = mfx_file_write_begin(&w, path, "latency table");
  if (st == MFX_OK) {
    st = profile_write_file(w.f, others, count, t);
    if (st == MFX_OK) st = mfx_file_write_commit(&w);
    else mfx_file_write_abort(&w);
  }
  free(others);
  return st;
}
