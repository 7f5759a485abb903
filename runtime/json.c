/* The JSON writer (include/mfx/json.h): escaping, numbers, and the layout
 * of nested objects and arrays, compact or pretty. */
#include "mfx/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (2..4), 0 if there is none. */
static size_t json_utf8_length(const unsigned char *s) {
  unsigned char c = s[0];
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF; /* the second byte's range */
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) n = 3;
  else if (c >= 0xF0 && c <= 0xF4) n = 4;
  else return 0;
  if (c == 0xE0) lo = 0xA0;      /* no overlong 3-byte forms */
  else if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
  else if (c == 0xF0) lo = 0x90; /* no overlong 4-byte forms */
  else if (c == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return n;
}

/* The escaped form of the character at *s into out (at most 7 bytes, not
 * NUL-terminated); advances *s past what it used. Returns out's length. */
static size_t json_escape_next(const unsigned char **s, char *out) {
  unsigned char c = **s;
  static const char shorts[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
  const char *hit = c != '\0' ? strchr(shorts, c) : NULL;
  if (hit != NULL) {
    (*s)++;
    out[0] = '\\';
    out[1] = letters[hit - shorts];
    return 2;
  }
  if (c < 0x20 || c == 0x7F) {
    (*s)++;
    return (size_t)snprintf(out, 8, "\\u%04x", c);
  }
  if (c < 0x80) {
    (*s)++;
    out[0] = (char)c;
    return 1;
  }
  size_t n = json_utf8_length(*s);
  if (n == 0) { /* not UTF-8: U+FFFD, the replacement character */
    (*s)++;
    memcpy(out, "\\ufffd", 6);
    return 6;
  }
  memcpy(out, *s, n);
  *s += n;
  return n;
}

static void json_append(char *buf, size_t size, size_t *used, int *full, const char *piece,
                        size_t n) {
  if (!*full && *used + n < size) {
    memcpy(buf + *used, piece, n);
    buf[*used + n] = '\0';
  } else {
    *full = 1; /* truncated at a character boundary */
  }
  *used += n;
}

size_t mfx_json_escape(const char *s, char *buf, size_t size) {
  const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
  size_t used = 0;
  int full = 0;
  char piece[8];
  if (size > 0) buf[0] = '\0';
  json_append(buf, size, &used, &full, "\"", 1);
  while (*p != '\0') {
    size_t n = json_escape_next(&p, piece);
    json_append(buf, size, &used, &full, piece, n);
  }
  json_append(buf, size, &used, &full, "\"", 1);
  return used;
}

static void json_put_string(FILE *out, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  char piece[8];
  fputc('"', out);
  while (*p != '\0') fwrite(piece, 1, json_escape_next(&p, piece), out);
  fputc('"', out);
}

/* ---- layout -------------------------------------------------------------------- */

static void json_misuse(mfx_json *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void json_misuse(mfx_json *w, const char *fmt, ...) {
  if (w->misuse[0] != '\0') return; /* the first one is the one to fix */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w->misuse, sizeof w->misuse, fmt, ap);
  va_end(ap);
}

void mfx_json_begin(mfx_json *w, FILE *out, mfx_json_style style) {
  memset(w, 0, sizeof *w);
  w->out = out;
  w->style = style;
}

static void json_newline(mfx_json *w, int level) {
  fputc('\n', w->out);
  for (int i = 0; i < w->base_indent + 2 * level; i++) fputc(' ', w->out);
}

/* Before a value: the separator and line break its place asks for. A
 * container inside an array breaks the array's items onto lines. Returns 0
 * when the value must not be written (misuse). */
static int json_before_value(mfx_json *w, int container) {
  if (w->ignored > 0) return 0;
  if (w->after_key) {
    w->after_key = 0;
    return 1;
  }
  if (w->depth == 0) {
    w->values++;
    return 1;
  }
  int d = w->depth - 1;
  if (w->open[d] == '{') {
    json_misuse(w, "a value in an object without a key (call mfx_json_key first)");
    return 0;
  }
  int pretty = w->style == MFX_JSON_PRETTY;
  if (w->items[d] > 0) fputc(',', w->out);
  if (pretty && (container || w->broken[d])) {
    w->broken[d] = 1;
    json_newline(w, w->depth);
  } else if (pretty && w->items[d] > 0) {
    fputc(' ', w->out);
  }
  w->items[d]++;
  return 1;
}

static void json_open(mfx_json *w, char bracket) {
  if (w->depth >= MFX_JSON_MAX_DEPTH || w->ignored > 0) {
    json_misuse(w, "nested deeper than %d levels", MFX_JSON_MAX_DEPTH);
    w->ignored++;
    return;
  }
  if (!json_before_value(w, 1)) return;
  fputc(bracket, w->out);
  w->open[w->depth] = bracket;
  w->items[w->depth] = 0;
  w->broken[w->depth] = 0;
  w->depth++;
}

void mfx_json_object(mfx_json *w) { json_open(w, '{'); }
void mfx_json_array(mfx_json *w) { json_open(w, '['); }

void mfx_json_end(mfx_json *w) {
  if (w->ignored > 0) {
    w->ignored--;
    return;
  }
  if (w->depth == 0) {
    json_misuse(w, "mfx_json_end with no object or array open");
    return;
  }
  if (w->after_key) {
    json_misuse(w, "an object ended after a key without its value");
    w->after_key = 0;
    fputs("null", w->out); /* keeps the text well-formed */
  }
  int d = --w->depth;
  int pretty = w->style == MFX_JSON_PRETTY;
  if (pretty && w->items[d] > 0 && (w->open[d] == '{' || w->broken[d])) json_newline(w, d);
  fputc(w->open[d] == '{' ? '}' : ']', w->out);
}

void mfx_json_key(mfx_json *w, const char *key) {
  if (w->ignored > 0) return;
  if (w->depth == 0 || w->open[w->depth - 1] != '{') {
    json_misuse(w, "key \"%.60s\" outside an object", key != NULL ? key : "(null)");
    return;
  }
  if (w->after_key) {
    json_misuse(w, "key \"%.60s\" right after another key", key != NULL ? key : "(null)");
    return;
  }
  int d = w->depth - 1;
  if (w->items[d] > 0) fputc(',', w->out);
  if (w->style == MFX_JSON_PRETTY) json_newline(w, w->depth);
  w->items[d]++;
  json_put_string(w->out, key != NULL ? key : "");
  fputs(w->style == MFX_JSON_PRETTY ? ": " : ":", w->out);
  w->after_key = 1;
}

/* ---- values ---------------------------------------------------------------------- */

void mfx_json_string(mfx_json *w, const char *s) {
  if (!json_before_value(w, 0)) return;
  if (s == NULL) fputs("null", w->out);
  else json_put_string(w->out, s);
}

/* The fewest significant digits (15..17) that read back as v. */
static void json_format_double(double v, char *buf, size_t size) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, size, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) return;
  }
}

void mfx_json_number(mfx_json *w, double v) {
  if (!json_before_value(w, 0)) return;
  if (!isfinite(v)) {
    w->nonfinite++;
    fputs("null", w->out);
    return;
  }
  char buf[40];
  json_format_double(v, buf, sizeof buf);
  fputs(buf, w->out);
}

void mfx_json_int(mfx_json *w, int64_t v) {
  if (json_before_value(w, 0)) fprintf(w->out, "%lld", (long long)v);
}

void mfx_json_bool(mfx_json *w, int v) {
  if (json_before_value(w, 0)) fputs(v ? "true" : "false", w->out);
}

void mfx_json_null(mfx_json *w) {
  if (json_before_value(w, 0)) fputs("null", w->out);
}

void mfx_json_raw(mfx_json *w, const char *json) {
  if (json == NULL || json[0] == '\0') {
    mfx_json_null(w);
    return;
  }
  int container = json[0] == '{' || json[0] == '[';
  if (json_before_value(w, container)) fputs(json, w->out);
}

void mfx_json_numbers(mfx_json *w, const double *v, int n) {
  mfx_json_array(w);
  for (int i = 0; i < n; i++) mfx_json_number(w, v[i]);
  mfx_json_end(w);
}

void mfx_json_key_string(mfx_json *w, const char *key, const char *s) {
  mfx_json_key(w, key);
  mfx_json_string(w, s);
}

void mfx_json_key_number(mfx_json *w, const char *key, double v) {
  mfx_json_key(w, key);
  mfx_json_number(w, v);
}

void mfx_json_key_int(mfx_json *w, const char *key, int64_t v) {
  mfx_json_key(w, key);
  mfx_json_int(w, v);
}

mfx_status mfx_json_finish(mfx_json *w) {
  if (w->misuse[0] != '\0') return mfx_fail(MFX_ERR_INVALID, "json writer: %s", w->misuse);
  if (w->depth > 0 || w->ignored > 0 || w->after_key)
    return mfx_fail(MFX_ERR_INVALID, "json writer: %d object(s) or array(s) left open",
                    w->depth + w->ignored + (w->after_key ? 1 : 0));
  if (w->out == NULL || ferror(w->out))
    return mfx_fail(MFX_ERR_IO, "json writer: writing the output failed");
  return MFX_OK;
}
