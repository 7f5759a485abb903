/* The JSON writer every tool and the runtime write with (runtime/json.c):
 * string escaping (quotes, backslashes, every control character, UTF-8
 * kept, bytes that are not UTF-8 replaced), numbers that read back exactly,
 * NaN and infinities as null and counted, nesting in both styles, misuse
 * reported, and random strings checked against an independent parser
 * (cJSON). */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/json.h"
#include "mfx/moe.h"
#include "check_main.h"

typedef struct {
  mfx_json w;
  FILE *f;
  char *text;
  size_t size;
} capture;

static void cap_begin(capture *c, mfx_json_style style) {
  c->text = NULL;
  c->size = 0;
  c->f = open_memstream(&c->text, &c->size);
  ck_assert_ptr_nonnull(c->f);
  mfx_json_begin(&c->w, c->f, style);
}

/* Finishes the writer (its status is returned) and closes the stream. */
static mfx_status cap_end(capture *c) {
  mfx_status st = mfx_json_finish(&c->w);
  fclose(c->f);
  return st;
}

static char *string_json(const char *s) {
  capture c;
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_string(&c.w, s);
  ck_assert_int_eq(cap_end(&c), MFX_OK);
  return c.text;
}

START_TEST(test_string_escaping) {
  static const struct { const char *in, *out; } cases[] = {
      {"plain", "\"plain\""},
      {"say \"hi\"", "\"say \\\"hi\\\"\""},
      {"C:\\dir\\", "\"C:\\\\dir\\\\\""},
      {"a/b", "\"a/b\""},
      {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
      {"\x01\x1f", "\"\\u0001\\u001f\""},
      {"del\x7f", "\"del\\u007f\""},
      {"", "\"\""},
      /* UTF-8 passes through: 2, 3 and 4 bytes */
      {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
      {"\xe2\x82\xac 5", "\"\xe2\x82\xac 5\""},
      {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""},
      {"\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""}, /* U+10FFFF */
      /* not UTF-8: each bad byte becomes U+FFFD */
      {"\xff", "\"\\ufffd\""},
      {"a\xc3", "\"a\\ufffd\""},                         /* truncated */
      {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                /* overlong '/' */
      {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},     /* overlong, 3 bytes */
      {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},     /* a UTF-16 surrogate */
      {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* past U+10FFFF */
      {"\x80x", "\"\\ufffdx\""},                         /* a lone continuation */
      {"\xe2\x82", "\"\\ufffd\\ufffd\""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *got = string_json(cases[i].in);
    ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu: got %s, expected %s", i, got,
                  cases[i].out);
    char buf[64];
    size_t need = mfx_json_escape(cases[i].in, buf, sizeof buf);
    ck_assert_str_eq(buf, cases[i].out);
    ck_assert_uint_eq(need, strlen(cases[i].out));
    free(got);
  }
  /* NULL is null. */
  char *got = string_json(NULL);
  ck_assert_str_eq(got, "null");
  free(got);
}
END_TEST

START_TEST(test_escape_truncates_whole_characters) {
  char buf[4];
  /* "a\nb" escaped is 6 characters; 3 fit: the quote, a, and not half of \n. */
  size_t need = mfx_json_escape("a\nb", buf, sizeof buf);
  ck_assert_uint_eq(need, 6);
  ck_assert_str_eq(buf, "\"a");
  ck_assert_uint_eq(mfx_json_escape("x", NULL, 0), 3);
}
END_TEST

/* Random strings of any bytes: the output always parses (cJSON), and reads
 * back to the input when the input is ASCII without NUL. */
START_TEST(test_random_strings_parse) {
  uint64_t s = 88172645463325252ull;
  for (int trial = 0; trial < 2000; trial++) {
    char in[48];
    int n = (int)(s % 40);
    int ascii = trial % 2 == 0;
    for (int i = 0; i < n; i++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      unsigned v = (unsigned)(s >> 24) & 0xff;
      in[i] = (char)(ascii ? 1 + v % 127 : 1 + v % 255);
    }
    in[n] = '\0';
    char *json = string_json(in);
    cJSON *doc = cJSON_Parse(json);
    ck_assert_msg(doc != NULL && cJSON_IsString(doc), "trial %d: %s does not parse", trial, json);
    if (ascii) ck_assert_str_eq(doc->valuestring, in);
    cJSON_Delete(doc);
    free(json);
  }
}
END_TEST

START_TEST(test_numbers) {
  capture c;
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_array(&c.w);
  mfx_json_number(&c.w, 0.1);
  mfx_json_number(&c.w, 1.0 / 3.0);
  mfx_json_number(&c.w, -0.0);
  mfx_json_number(&c.w, 1e300);
  mfx_json_number(&c.w, 5e-324);
  mfx_json_number(&c.w, 2.0);
  mfx_json_int(&c.w, INT64_MIN);
  mfx_json_int(&c.w, INT64_MAX);
  mfx_json_bool(&c.w, 1);
  mfx_json_bool(&c.w, 0);
  mfx_json_null(&c.w);
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_OK);
  ck_assert_str_eq(c.text, "[0.1,0.3333333333333333,-0,1e+300,4.94065645841247e-324,2,"
                           "-9223372036854775808,9223372036854775807,true,false,null]");
  ck_assert_int_eq(c.w.nonfinite, 0);
  free(c.text);
  /* Every double written reads back to itself. */
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 2000; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    double v;
    memcpy(&v, &s, sizeof v);
    if (!isfinite(v)) continue;
    cap_begin(&c, MFX_JSON_COMPACT);
    mfx_json_number(&c.w, v);
    ck_assert_int_eq(cap_end(&c), MFX_OK);
    ck_assert_msg(strtod(c.text, NULL) == v, "%s does not read back as %a", c.text, v);
    free(c.text);
  }
}
END_TEST

START_TEST(test_nonfinite_is_null_and_counted) {
  capture c;
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_object(&c.w);
  mfx_json_key_number(&c.w, "nan", NAN);
  mfx_json_key_number(&c.w, "inf", INFINITY);
  mfx_json_key(&c.w, "list");
  mfx_json_numbers(&c.w, (const double[]){1.5, -INFINITY, 2.5}, 3);
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_OK);
  ck_assert_str_eq(c.text, "{\"nan\":null,\"inf\":null,\"list\":[1.5,null,2.5]}");
  ck_assert_int_eq(c.w.nonfinite, 3);
  cJSON *doc = cJSON_Parse(c.text);
  ck_assert_ptr_nonnull(doc);
  cJSON_Delete(doc);
  free(c.text);
}
END_TEST

static void write_nested(mfx_json *w) {
  mfx_json_object(w);
  mfx_json_key_string(w, "name", "a\"b");
  mfx_json_key(w, "dims");
  mfx_json_numbers(w, (const double[]){8, 16}, 2);
  mfx_json_key(w, "experts");
  mfx_json_array(w);
  mfx_json_object(w);
  mfx_json_key_int(w, "id", 0);
  mfx_json_key(w, "config");
  mfx_json_raw(w, "{\"tile\":8}");
  mfx_json_end(w);
  mfx_json_object(w);
  mfx_json_end(w);
  mfx_json_end(w);
  mfx_json_key(w, "empty");
  mfx_json_array(w);
  mfx_json_end(w);
  mfx_json_end(w);
}

START_TEST(test_nesting_compact_and_pretty) {
  capture c;
  cap_begin(&c, MFX_JSON_COMPACT);
  write_nested(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_OK);
  ck_assert_str_eq(c.text, "{\"name\":\"a\\\"b\",\"dims\":[8,16],\"experts\":[{\"id\":0,"
                           "\"config\":{\"tile\":8}},{}],\"empty\":[]}");
  free(c.text);
  cap_begin(&c, MFX_JSON_PRETTY);
  c.w.base_indent = 2;
  write_nested(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_OK);
  ck_assert_str_eq(c.text, "{\n"
                           "    \"name\": \"a\\\"b\",\n"
                           "    \"dims\": [8, 16],\n"
                           "    \"experts\": [\n"
                           "      {\n"
                           "        \"id\": 0,\n"
                           "        \"config\": {\"tile\":8}\n"
                           "      },\n"
                           "      {}\n"
                           "    ],\n"
                           "    \"empty\": []\n"
                           "  }");
  cJSON *doc = cJSON_Parse(c.text);
  ck_assert_ptr_nonnull(doc);
  ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "experts")), 2);
  cJSON_Delete(doc);
  free(c.text);
}
END_TEST

START_TEST(test_misuse_is_reported) {
  capture c;
  /* a key in an array */
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_array(&c.w);
  mfx_json_key(&c.w, "k");
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "key \"k\" outside an object"));
  free(c.text);
  /* a value in an object without a key */
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_object(&c.w);
  mfx_json_int(&c.w, 1);
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "without a key"));
  ck_assert_str_eq(c.text, "{}");
  free(c.text);
  /* an end with nothing open */
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  free(c.text);
  /* left open, and a key left without its value */
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_object(&c.w);
  mfx_json_key(&c.w, "k");
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "left open"));
  free(c.text);
  cap_begin(&c, MFX_JSON_COMPACT);
  mfx_json_object(&c.w);
  mfx_json_key(&c.w, "k");
  mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  ck_assert_str_eq(c.text, "{\"k\":null}"); /* still well-formed */
  free(c.text);
  /* too deep: nothing past the limit is written, the rest stays balanced */
  cap_begin(&c, MFX_JSON_COMPACT);
  for (int i = 0; i < MFX_JSON_MAX_DEPTH + 5; i++) mfx_json_array(&c.w);
  mfx_json_int(&c.w, 7);
  for (int i = 0; i < MFX_JSON_MAX_DEPTH + 5; i++) mfx_json_end(&c.w);
  ck_assert_int_eq(cap_end(&c), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "deeper than 32"));
  ck_assert_uint_eq(strlen(c.text), 2 * MFX_JSON_MAX_DEPTH);
  cJSON *doc = cJSON_Parse(c.text);
  ck_assert_ptr_nonnull(doc);
  cJSON_Delete(doc);
  free(c.text);
}
END_TEST

START_TEST(test_write_error_is_reported) {
  FILE *full = fopen("/dev/full", "w");
  if (full == NULL) return; /* no /dev/full here: nothing to check */
  setvbuf(full, NULL, _IONBF, 0);
  mfx_json w;
  mfx_json_begin(&w, full, MFX_JSON_COMPACT);
  mfx_json_string(&w, "x");
  ck_assert_int_eq(mfx_json_finish(&w), MFX_ERR_IO);
  fclose(full);
}
END_TEST

/* ---- the latency tables the runtime saves with it ------------------------------- */

static void small_table(mfx_latency_table *t, const char *device) {
  memset(t, 0, sizeof *t);
  snprintf(t->device, sizeof t->device, "%s", device);
  snprintf(t->target, sizeof t->target, "cpu");
  t->dim = 8;
  t->hidden = 16;
  t->at_tokens = 8;
  t->experts = 2;
  for (int e = 0; e < 2; e++) {
    mfx_latency_expert *x = &t->expert[e];
    snprintf(x->name, sizeof x->name, "%s", e ? "shift" : "mult");
    x->points = 3;
    for (int i = 0; i < 3; i++) {
      x->tokens[i] = 4 << i;
      x->seconds[i] = (1.0 + e) * 1e-4 * (i + 1) / 3.0;
    }
    x->a = 1e-5 / 3.0;
    x->b = (1.0 + e) / 7.0 * 1e-6;
    x->r2 = 0.1 + e / 3.0;
    x->latency = x->a + x->b * 8;
  }
  t->alpha[0] = 2.0 / 3.0;
  t->alpha[1] = 4.0 / 3.0;
}

START_TEST(test_latency_table_round_trip) {
  char dir[] = "/tmp/mfx_json_XXXXXX", path[64];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/lat.json", dir);
  mfx_latency_table t, back;
  /* A key with a quote, a backslash, a tab and UTF-8: escaped, read back. */
  small_table(&t, "cpu: \"Caf\xc3\xa9\" \\ x\t(2 cores)");
  ck_assert_int_eq(mfx_latency_save(path, &t), MFX_OK);
  ck_assert_int_eq(mfx_latency_load(path, t.device, &back), MFX_OK);
  ck_assert_str_eq(back.device, t.device);
  ck_assert_int_eq(back.experts, 2);
  for (int e = 0; e < 2; e++) {
    ck_assert(back.expert[e].a == t.expert[e].a); /* exact: the fewest digits that read back */
    ck_assert(back.expert[e].b == t.expert[e].b);
    ck_assert(back.expert[e].r2 == t.expert[e].r2);
    ck_assert(back.alpha[e] == t.alpha[e]);
    for (int i = 0; i < 3; i++) ck_assert(back.expert[e].seconds[i] == t.expert[e].seconds[i]);
  }
  /* NaN or infinity: refused, and the file keeps what it had. */
  small_table(&t, "cpu: other");
  t.expert[1].r2 = NAN;
  ck_assert_int_eq(mfx_latency_save(path, &t), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "1 numbers are NaN or infinite"));
  ck_assert_int_eq(mfx_latency_load(path, "cpu: other", &back), MFX_ERR_NOT_FOUND);
  small_table(&t, "cpu: other");
  t.alpha[0] = INFINITY;
  ck_assert_int_eq(mfx_latency_save(path, &t), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_latency_load(path, "cpu: \"Caf\xc3\xa9\" \\ x\t(2 cores)", &back), MFX_OK);
  remove(path);
  rmdir(dir);
}
END_TEST

int main(void) {
  Suite *s = suite_create("json");
  TCase *t = tcase_create("writer");
  tcase_add_test(t, test_string_escaping);
  tcase_add_test(t, test_escape_truncates_whole_characters);
  tcase_add_test(t, test_random_strings_parse);
  tcase_add_test(t, test_numbers);
  tcase_add_test(t, test_nonfinite_is_null_and_counted);
  tcase_add_test(t, test_nesting_compact_and_pretty);
  tcase_add_test(t, test_misuse_is_reported);
  tcase_add_test(t, test_write_error_is_reported);
  suite_add_tcase(s, t);
  TCase *l = tcase_create("latency");
  tcase_add_test(l, test_latency_table_round_trip);
  suite_add_tcase(s, l);
  return check_run_suite(s);
}
