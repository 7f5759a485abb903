/* A small JSON reader (a DOM of json_value), so the runtime reads JSON
 * (latency tables, MoE layer manifests and safetensors headers) without
 * cJSON. Input is NUL-terminated text of a capped file; nesting is capped
 * at 32 levels; \uXXXX outside ASCII becomes '?'. */
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"

typedef struct {
  const char *text, *p;
  const char *what, *hint, *path;
  int depth;
} jv_parser;

void json_free(json_value *v) {
  if (v == NULL) return;
  for (int i = 0; i < v->n; i++) {
    json_free(&v->items[i]);
    if (v->keys != NULL) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->string);
  memset(v, 0, sizeof *v);
}

static mfx_status jv_error(jv_parser *ps, const char *expected) {
  return mfx_fail(MFX_ERR_FORMAT, "%s %s: byte %ld: expected %s (%s)", ps->what, ps->path,
                  (long)(ps->p - ps->text), expected, ps->hint);
}

static void jv_skip_space(jv_parser *ps) {
  while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static mfx_status jv_parse_value(jv_parser *ps, json_value *out);

static int jv_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* One character after a backslash; \uXXXX outside ASCII becomes '?'. */
static int jv_escape(jv_parser *ps, char *c) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  const char *hit = strchr(from, *ps->p);
  if (*ps->p != '\0' && hit != NULL) {
    *c = to[hit - from];
    ps->p++;
    return 1;
  }
  if (*ps->p != 'u') return 0;
  int code = 0;
  for (int i = 1; i <= 4; i++) {
    int h = jv_hex(ps->p[i]);
    if (h < 0) return 0;
    code = code * 16 + h;
  }
  ps->p += 5;
  *c = code < 0x80 && code > 0 ? (char)code : '?';
  return 1;
}

static mfx_status jv_parse_string(jv_parser *ps, char **out) {
  if (*ps->p != '"') return jv_error(ps, "a string");
  ps->p++;
  size_t cap = strlen(ps->p) + 1, n = 0;
  char *s = malloc(cap);
  if (s == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory", ps->what);
  while (*ps->p != '"') {
    char c = *ps->p;
    if (c == '\0' || (unsigned char)c < 0x20) { /* never step past the text's end */
      free(s);
      return jv_error(ps, "a closing '\"'");
    }
    ps->p++;
    if (c == '\\' && !jv_escape(ps, &c)) {
      free(s);
      return jv_error(ps, "a valid escape");
    }
    s[n++] = c;
  }
  ps->p++;
  s[n] = '\0';
  *out = s;
  return MFX_OK;
}

static mfx_status jv_grow(jv_parser *ps, json_value *v, int with_keys) {
  json_value *items = realloc(v->items, (size_t)(v->n + 1) * sizeof *items);
  if (items == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory", ps->what);
  v->items = items;
  memset(&v->items[v->n], 0, sizeof *items);
  if (!with_keys) return MFX_OK;
  char **keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *keys);
  if (keys == NULL) return mfx_fail(MFX_ERR_NOMEM, "%s: out of memory", ps->what);
  v->keys = keys;
  v->keys[v->n] = NULL;
  return MFX_OK;
}

/* Items of an array or members of an object, after the opening bracket. */
static mfx_status jv_parse_items(jv_parser *ps, json_value *out, char close) {
  int object = close == '}';
  jv_skip_space(ps);
  if (*ps->p == close) {
    ps->p++;
    return MFX_OK;
  }
  for (;;) {
    mfx_status st = jv_grow(ps, out, object);
    if (st != MFX_OK) return st;
    int i = out->n++; /* counted now, so a failure below frees what it got */
    jv_skip_space(ps);
    if (object) {
      st = jv_parse_string(ps, &out->keys[i]);
      if (st != MFX_OK) return st;
      jv_skip_space(ps);
      if (*ps->p != ':') return jv_error(ps, "':'");
      ps->p++;
    }
    st = jv_parse_value(ps, &out->items[i]);
    if (st != MFX_OK) return st;
    jv_skip_space(ps);
    if (*ps->p == close) {
      ps->p++;
      return MFX_OK;
    }
    if (*ps->p != ',') return jv_error(ps, object ? "',' or '}'" : "',' or ']'");
    ps->p++;
  }
}

static mfx_status jv_parse_word(jv_parser *ps, json_value *out) {
  static const struct { const char *word; json_type type; double value; } words[] = {
      {"true", JSON_BOOL, 1}, {"false", JSON_BOOL, 0}, {"null", JSON_NULL, 0}};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    size_t len = strlen(words[i].word);
    if (strncmp(ps->p, words[i].word, len) == 0) {
      out->type = words[i].type;
      out->number = words[i].value;
      ps->p += len;
      return MFX_OK;
    }
  }
  char *end = NULL;
  out->number = strtod(ps->p, &end);
  if (end == ps->p || (*ps->p != '-' && (*ps->p < '0' || *ps->p > '9')))
    return jv_error(ps, "a value");
  out->type = JSON_NUMBER;
  ps->p = end;
  return MFX_OK;
}

static mfx_status jv_parse_value(jv_parser *ps, json_value *out) {
  jv_skip_space(ps);
  if (++ps->depth > 32) return jv_error(ps, "at most 32 levels of nesting");
  mfx_status st;
  char c = *ps->p;
  if (c == '{' || c == '[') {
    ps->p++;
    out->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
    st = jv_parse_items(ps, out, c == '{' ? '}' : ']');
  } else if (c == '"') {
    out->type = JSON_STRING;
    st = jv_parse_string(ps, &out->string);
  } else {
    st = jv_parse_word(ps, out);
  }
  ps->depth--;
  return st;
}

mfx_status json_parse(const char *what, const char *hint, const char *path, const char *text,
                      json_value *out) {
  jv_parser ps = {text, text, what, hint, path, 0};
  memset(out, 0, sizeof *out);
  mfx_status st = jv_parse_value(&ps, out);
  if (st == MFX_OK) jv_skip_space(&ps);
  if (st == MFX_OK && *ps.p != '\0') st = jv_error(&ps, "the end of the file");
  if (st != MFX_OK) json_free(out);
  return st;
}

const json_value *json_get(const json_value *obj, const char *key) {
  if (obj == NULL || obj->type != JSON_OBJECT) return NULL;
  for (int i = 0; i < obj->n; i++) {
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  }
  return NULL;
}
