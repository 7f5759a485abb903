/* Private: the runtime's small JSON reader (runtime/json.c), shared by
 * the latency tables (profile.c) and the MoE layer's manifest and weights
 * files (moe/). */
#ifndef MFX_JSON_INTERNAL_H
#define MFX_JSON_INTERNAL_H

#include "mfx/runtime.h"

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
struct json_value {
  json_type type;
  double number; /* NUMBER, BOOL */
  char *string;  /* STRING */
  int n;         /* ARRAY, OBJECT */
  json_value *items;
  char **keys;   /* OBJECT */
};

/* Parses text (NUL-terminated) into *out. A syntax error is MFX_ERR_FORMAT:
 * "<what> <path>: byte N: expected X (<hint>)". */
mfx_status json_parse(const char *what, const char *hint, const char *path, const char *text,
                      json_value *out);
void json_free(json_value *v);
/* The member `key` of an object; NULL when absent or obj is no object. */
const json_value *json_get(const json_value *obj, const char *key);

#endif
