/* mfx/json.h: a small streaming JSON writer, the one every mfx tool and the
 * runtime's latency tables write with.
 *
 *   mfx_json w;
 *   mfx_json_begin(&w, stdout, MFX_JSON_COMPACT);
 *   mfx_json_object(&w);
 *   mfx_json_key(&w, "loss");  mfx_json_number(&w, loss);
 *   mfx_json_key(&w, "alpha"); mfx_json_numbers(&w, alpha, n);
 *   mfx_json_end(&w);
 *   if (mfx_json_finish(&w) != MFX_OK) ... mfx_last_error() says why
 *
 * Strings are escaped as JSON requires: quotes, backslashes and control
 * characters (\n, \t, ... and \u00XX for the rest); UTF-8 passes through,
 * and bytes that are not valid UTF-8 become U+FFFD, so the output is always
 * valid JSON text. JSON has no NaN or infinity: such a number is written as
 * null and counted in `nonfinite`, so the caller can say so. Numbers are
 * written with the fewest digits (up to 17) that read back to the same
 * double.
 *
 * Misuse (a key outside an object, a value without a key inside one, an
 * end with nothing open, nesting past MFX_JSON_MAX_DEPTH, a value left
 * open) is remembered and reported by mfx_json_finish; nothing the writer
 * does on misuse reads or writes out of bounds. Runtime only: libc. */
#ifndef MFX_JSON_H
#define MFX_JSON_H

#include <stdint.h>
#include <stdio.h>

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MFX_JSON_MAX_DEPTH 32

typedef enum {
  MFX_JSON_COMPACT = 0, /* one line, no spaces: {"a":1,"b":[1,2]} */
  MFX_JSON_PRETTY = 1,  /* two spaces per level, one member per line; arrays of
                           plain values on one line: "b": [1, 2] */
} mfx_json_style;

typedef struct {
  FILE *out;
  mfx_json_style style;
  int base_indent;        /* PRETTY: spaces before every line after the first */
  int depth;              /* open containers */
  char open[MFX_JSON_MAX_DEPTH];   /* '{' or '[' per level */
  int items[MFX_JSON_MAX_DEPTH];   /* values (or keys) written at that level */
  char broken[MFX_JSON_MAX_DEPTH]; /* PRETTY: the array's items are on lines of their own */
  int after_key;          /* a key is written, its value is next */
  int values;             /* top-level values written */
  int ignored;            /* levels opened past MFX_JSON_MAX_DEPTH (not written) */
  int nonfinite;          /* NaN or infinite numbers written as null */
  char misuse[160];       /* the first misuse, "" if none */
} mfx_json;

/* Start writing one JSON value (or several top-level values one after
 * another, for JSON lines: the caller writes the newline between them). */
void mfx_json_begin(mfx_json *w, FILE *out, mfx_json_style style);
void mfx_json_object(mfx_json *w);   /* { */
void mfx_json_array(mfx_json *w);    /* [ */
void mfx_json_end(mfx_json *w);      /* } or ], whichever is open */
void mfx_json_key(mfx_json *w, const char *key);
void mfx_json_string(mfx_json *w, const char *s); /* NULL: null */
void mfx_json_number(mfx_json *w, double v);      /* NaN, inf: null (counted) */
void mfx_json_int(mfx_json *w, int64_t v);
void mfx_json_bool(mfx_json *w, int v);
void mfx_json_null(mfx_json *w);
/* Text that already is one JSON value (e.g. mfx_config_to_json's), as is. */
void mfx_json_raw(mfx_json *w, const char *json);
/* An array of n numbers. */
void mfx_json_numbers(mfx_json *w, const double *v, int n);
/* Key and value in one call. */
void mfx_json_key_string(mfx_json *w, const char *key, const char *s);
void mfx_json_key_number(mfx_json *w, const char *key, double v);
void mfx_json_key_int(mfx_json *w, const char *key, int64_t v);

/* MFX_OK; MFX_ERR_INVALID on misuse or a container left open;
 * MFX_ERR_IO when the stream reports a write error. */
mfx_status mfx_json_finish(mfx_json *w);

/* s escaped as a JSON string (with its quotes) into buf, truncated to fit;
 * the length it needs (without the NUL), as snprintf. */
size_t mfx_json_escape(const char *s, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
