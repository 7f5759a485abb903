/* An MoE layer ahead of time: mfx_moe_compile_layer's artifact and a
 * safetensors weights file, loaded by the runtime (mfx_moe_load) and run
 * against the plain-C reference and against the same layer compiled on
 * first use (mfx_moe_create) on batches that fill no bucket exactly; two
 * layers side by side on two threads; the latency measurement; and every
 * bad input: a layer built for other dims, weights of the wrong shape or
 * dtype, unknown, missing and overlapping tensors, truncated and hostile
 * files, a manifest naming a missing kernel or one of other dims, an
 * artifact without a manifest, and a batch above the largest bucket. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/moe.h"
#include "moe_fixture.h"

static char dir[256], layer_path[300], weights_path[300], weights2_path[300];

/* ---- a safetensors writer for the tests ------------------------------------------ */

typedef struct {
  const char *name, *dtype;
  int ndim;
  int64_t shape[2];
  const float *data; /* NULL: zeros */
  int64_t begin, end; /* -1: packed after the previous */
} st_tensor;

static void st_write(const char *path, const st_tensor *t, int n, const char *meta) {
  char header[8192];
  size_t used = (size_t)snprintf(header, sizeof header, "{\"__metadata__\": %s", meta);
  int64_t offset = 0, packed = 0;
  for (int i = 0; i < n; i++) {
    int64_t bytes = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1) * 4;
    int64_t b = t[i].begin >= 0 ? t[i].begin : offset, e = t[i].begin >= 0 ? t[i].end : b + bytes;
    char shape[48];
    if (t[i].ndim == 2) snprintf(shape, sizeof shape, "[%lld, %lld]", (long long)t[i].shape[0],
                                 (long long)t[i].shape[1]);
    else snprintf(shape, sizeof shape, "[%lld]", (long long)t[i].shape[0]);
    used += (size_t)snprintf(header + used, sizeof header - used, ", \"%s\": {\"dtype\": \"%s\", "
                             "\"shape\": %s, \"data_offsets\": [%lld, %lld]}", t[i].name,
                             t[i].dtype, shape, (long long)b, (long long)e);
    offset = b + bytes;
    packed += bytes;
  }
  used += (size_t)snprintf(header + used, sizeof header - used, "}");
  FILE *f = fopen(path, "wb");
  if (f == NULL) {
    perror(path);
    exit(1);
  }
  unsigned char le[8];
  for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)used >> (8 * i));
  fwrite(le, 1, 8, f);
  fwrite(header, 1, used, f);
  float *zeros = calloc((size_t)packed / 4 + 1, 4);
  for (int i = 0; i < n; i++) { /* the data in order (explicit offsets: zeros, packed) */
    int64_t bytes = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1) * 4;
    fwrite(t[i].data != NULL && t[i].begin < 0 ? (const void *)t[i].data : zeros, 1,
           (size_t)bytes, f);
  }
  free(zeros);
  fclose(f);
}

static const char *meta_ok = "{\"format\": \"mfx-moe-1\", \"dim\": \"16\", \"hidden\": \"24\", "
                             "\"k\": \"2\", \"experts\": \"mult,shift,null\"}";

/* The layer's weights: router [E, D], bias [E], experts 0 (mult), 1 (shift). */
static float rw[E * D], rb[E], w[4][H * D];

static void weights_tensors(st_tensor *t) {
  st_tensor all[5] = {
      {"router.weight", "F32", 2, {E, D}, rw, -1, -1},
      {"router.bias", "F32", 1, {E, 0}, rb, -1, -1},
      {"experts.0.w1", "F32", 2, {H, D}, w[0], -1, -1},
      {"experts.0.w2", "F32", 2, {D, H}, w[1], -1, -1},
      {"experts.1.w1", "F32", 2, {H, D}, w[2], -1, -1}};
  memcpy(t, all, sizeof all);
  t[5] = (st_tensor){"experts.1.w2", "F32", 2, {D, H}, w[3], -1, -1};
}

static void make_weights(const char *path, uint64_t seed) {
  fill(rw, E * D, 1.0f, seed);
  fill(rb, E, 0.05f, seed + 1);
  for (int i = 0; i < 4; i++) fill(w[i], H * D, 0.3f, seed + 2 + (uint64_t)i);
  st_tensor t[6];
  weights_tensors(t);
  st_write(path, t, 6, meta_ok);
}

/* ---- running ------------------------------------------------------------------------- */

/* forward vs the reference, routed by the layer's logits. */
static void check_forward(mfx_moe *moe, int64_t T, uint64_t seed) {
  float *x = malloc((size_t)(T * D) * 4), *y = malloc((size_t)(T * D) * 4),
        *r = malloc((size_t)(T * D) * 4), *logits = malloc((size_t)(T * E) * 4);
  fill(x, T * D, 1.0f, seed);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = logits;
  ck_assert_msg(mfx_moe_forward(moe, NULL, x, T, y, &trace) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_reference(moe, x, T, logits, r, NULL), MFX_OK);
  double scale = 0, d = max_diff(y, r, T * D, &scale);
  ck_assert_msg(scale > 0.01 && d <= 1e-4 * scale, "T=%lld: max diff %g of %g", (long long)T, d,
                scale);
  ck_assert_int_eq(trace.kernels_compiled, 0);
  free(x);
  free(y);
  free(r);
  free(logits);
}

START_TEST(loaded_layer_matches_the_reference) {
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_load(layer_path, weights_path, NULL, &moe) == MFX_OK, "%s",
                mfx_last_error());
  const mfx_moe_spec *s = mfx_moe_get_spec(moe);
  ck_assert_int_eq(s->dim, D);
  ck_assert_int_eq(s->hidden, H);
  ck_assert_int_eq(s->k, K);
  ck_assert_int_eq(s->experts, E);
  ck_assert_int_eq(mfx_moe_bucket_count(moe), 2);
  ck_assert_int_eq(mfx_moe_bucket_at(moe, 1), 48);
  const int64_t sizes[] = {1, 7, 16, 17, 33, 48};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_forward(moe, sizes[i], i + 1);
  mfx_moe_destroy(moe);
}
END_TEST

/* The loaded layer computes what the layer compiled on first use does. */
START_TEST(loaded_layer_equals_the_jit_layer) {
  mfx_moe *loaded = NULL, *jit = NULL;
  ck_assert_int_eq(mfx_moe_load(layer_path, weights_path, NULL, &loaded), MFX_OK);
  mfx_moe_spec spec = moe_fixture_spec(NULL);
  ck_assert_int_eq(mfx_moe_create(&spec, &jit), MFX_OK);
  ck_assert_msg(mfx_moe_load_weights(jit, weights_path) == MFX_OK, "%s", mfx_last_error());
  enum { T = 40 };
  static float x[T * D], a[T * D], b[T * D];
  fill(x, T * D, 1.0f, 5);
  ck_assert_int_eq(mfx_moe_forward(loaded, NULL, x, T, a, NULL), MFX_OK);
  ck_assert_int_eq(mfx_moe_forward(jit, NULL, x, T, b, NULL), MFX_OK);
  double scale = 0, d = max_diff(a, b, T * D, &scale);
  ck_assert_msg(d <= 1e-5 * scale, "max diff %g of %g", d, scale);
  /* one expert alone, and its shift weights converted at load */
  ck_assert_int_eq(mfx_moe_expert_forward(loaded, 1, NULL, x, 20, a), MFX_OK);
  ck_assert_int_eq(mfx_moe_expert_forward(jit, 1, NULL, x, 20, b), MFX_OK);
  ck_assert(max_diff(a, b, 20 * D, &scale) <= 1e-6 * scale);
  mfx_moe_destroy(loaded);
  mfx_moe_destroy(jit);
}
END_TEST

typedef struct {
  const char *weights;
  uint64_t seed;
  int ok;
  char error[256];
} thread_job;

static void *run_layer(void *arg) {
  thread_job *j = arg;
  mfx_moe *moe = NULL;
  enum { T = 45 };
  float *x = malloc(T * D * 4), *y = malloc(T * D * 4), *r = malloc(T * D * 4),
        *logits = malloc(T * E * 4);
  mfx_status st = mfx_moe_load(layer_path, j->weights, NULL, &moe);
  j->ok = st == MFX_OK;
  for (int round = 0; j->ok && round < 20; round++) {
    fill(x, T * D, 1.0f, j->seed + (uint64_t)round);
    mfx_moe_trace trace;
    memset(&trace, 0, sizeof trace);
    trace.logits = logits;
    j->ok = mfx_moe_forward(moe, NULL, x, T, y, &trace) == MFX_OK &&
            mfx_moe_reference(moe, x, T, logits, r, NULL) == MFX_OK;
    double scale = 0;
    if (j->ok) j->ok = max_diff(y, r, T * D, &scale) <= 1e-4 * scale;
  }
  if (!j->ok) snprintf(j->error, sizeof j->error, "%s", mfx_last_error());
  mfx_moe_destroy(moe);
  free(x);
  free(y);
  free(r);
  free(logits);
  return NULL;
}

/* Two layers with different weights, side by side on two threads. */
START_TEST(two_layers_on_two_threads) {
  thread_job jobs[2] = {{weights_path, 11, 0, ""}, {weights2_path, 23, 0, ""}};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_create(&t[i], NULL, run_layer, &jobs[i]), 0);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < 2; i++) ck_assert_msg(jobs[i].ok, "thread %d: %s", i, jobs[i].error);
}
END_TEST

START_TEST(latency_of_each_expert) {
  mfx_moe *moe = NULL;
  ck_assert_int_eq(mfx_moe_load(layer_path, weights_path, NULL, &moe), MFX_OK);
  mfx_profile_options o;
  mfx_profile_options_default(&o);
  o.min_repeats = 3;
  o.max_repeats = 5;
  o.min_seconds = 0.0;
  mfx_latency_table t;
  ck_assert_msg(mfx_moe_profile(moe, NULL, (const int64_t[]){8, 16, 48}, 3, 16, &o, &t) ==
                MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(t.experts, 2); /* the null expert costs nothing and is left out */
  ck_assert_str_eq(t.expert[0].name, "mult");
  ck_assert_str_eq(t.expert[1].name, "shift");
  for (int e = 0; e < 2; e++) {
    ck_assert_int_eq(t.expert[e].points, 3);
    ck_assert(t.expert[e].seconds[0] > 0 && t.alpha[e] > 0);
  }
  expect_error(mfx_moe_profile(moe, NULL, (const int64_t[]){8, 64}, 2, 16, &o, &t),
               "largest bucket, 48");
  mfx_moe_destroy(moe);
}
END_TEST

/* ---- bad inputs ------------------------------------------------------------------------ */

START_TEST(a_batch_above_the_largest_bucket) {
  mfx_moe *moe = NULL;
  ck_assert_int_eq(mfx_moe_load(layer_path, weights_path, NULL, &moe), MFX_OK);
  static float x[49 * D], y[49 * D];
  expect_error(mfx_moe_forward(moe, NULL, x, 49, y, NULL),
               "a batch of 49 tokens is larger than the layer's largest bucket, 48");
  expect_error(mfx_moe_expert_forward(moe, 0, NULL, x, 49, y), "largest bucket, 48");
  expect_error(mfx_moe_forward(moe, NULL, x, 0, y, NULL), "expected at least 1");
  /* the Q16.16 entry needs kernels a layer artifact does not hold */
  static int32_t q[4 * D];
  expect_error(mfx_moe_shift_expert_q16(moe, 1, NULL, q, 4, q), "no kernel shift_linear");
  mfx_moe_destroy(moe);
}
END_TEST

static void expect_weights_error(const st_tensor *t, int n, const char *meta, const char *needle) {
  char path[320];
  snprintf(path, sizeof path, "%s/bad.safetensors", dir);
  st_write(path, t, n, meta);
  mfx_moe *moe = NULL;
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), needle);
  ck_assert_ptr_null(moe);
}

START_TEST(weights_of_the_wrong_shape_dtype_or_names) {
  make_weights(weights_path, 1);
  st_tensor t[7];
  weights_tensors(t);
  t[2].shape[1] = D - 1;
  expect_weights_error(t, 6, meta_ok, "tensor experts.0.w1 has shape [24, 15]; the layer (D=16, "
                                      "H=24, E=3) expects [24, 16]");
  weights_tensors(t);
  t[0].ndim = 1;
  expect_weights_error(t, 6, meta_ok, "router.weight has shape [3]");
  weights_tensors(t);
  t[3].dtype = "F16";
  expect_weights_error(t, 6, meta_ok, "tensor experts.0.w2 has dtype F16; expected F32");
  weights_tensors(t);
  t[6] = (st_tensor){"experts.2.w1", "F32", 2, {H, D}, NULL, -1, -1};
  expect_weights_error(t, 7, meta_ok, "unknown tensor \"experts.2.w1\"");
  weights_tensors(t);
  expect_weights_error(t, 5, meta_ok, "tensor experts.1.w2 is missing");
  weights_tensors(t); /* no bias: optional */
  t[1] = t[5];
  char path[320];
  snprintf(path, sizeof path, "%s/nobias.safetensors", dir);
  st_write(path, t, 5, meta_ok);
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_load(layer_path, path, NULL, &moe) == MFX_OK, "%s", mfx_last_error());
  mfx_moe_destroy(moe);
}
END_TEST

START_TEST(weights_for_another_layer) {
  st_tensor t[6];
  weights_tensors(t);
  expect_weights_error(t, 6, "{\"format\": \"mfx-moe-1\", \"dim\": \"32\", \"hidden\": \"24\", "
                       "\"k\": \"2\", \"experts\": \"mult,shift,null\"}",
                       "written for dim=32, but the layer has dim=16");
  expect_weights_error(t, 6, "{\"format\": \"mfx-moe-1\", \"dim\": \"16\", \"hidden\": \"24\", "
                       "\"k\": \"2\", \"experts\": \"shift,mult,null\"}",
                       "experts=shift,mult,null, but the layer has experts=mult,shift,null");
  expect_weights_error(t, 6, "{\"format\": \"other\"}", "\"format\" is not \"mfx-moe-1\"");
  expect_weights_error(t, 6, "{}", "\"format\" is not");
}
END_TEST

START_TEST(overlapping_and_outside_offsets) {
  st_tensor t[6];
  weights_tensors(t);
  int64_t bytes = H * D * 4;
  for (int i = 0; i < 6; i++) { /* packed by hand, then broken */
    int64_t n = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1) * 4;
    t[i].begin = i == 0 ? 0 : t[i - 1].end;
    t[i].end = t[i].begin + n;
  }
  t[3].begin = t[2].begin;
  t[3].end = t[2].begin + bytes;
  expect_weights_error(t, 6, meta_ok, "overlap");
  weights_tensors(t);
  for (int i = 0; i < 6; i++) {
    int64_t n = t[i].shape[0] * (t[i].ndim == 2 ? t[i].shape[1] : 1) * 4;
    t[i].begin = i == 0 ? 0 : t[i - 1].end;
    t[i].end = t[i].begin + n;
  }
  t[5].begin += 1 << 20;
  t[5].end += 1 << 20;
  expect_weights_error(t, 6, meta_ok, "inside the file's");
  t[5].end = t[5].begin + 8;
  expect_weights_error(t, 6, meta_ok, "do not hold its");
}
END_TEST

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

START_TEST(truncated_and_hostile_files) {
  make_weights(weights_path, 1);
  FILE *f = fopen(weights_path, "rb");
  static unsigned char good[65536];
  size_t n = fread(good, 1, sizeof good, f);
  fclose(f);
  char path[320];
  snprintf(path, sizeof path, "%s/hostile.safetensors", dir);
  mfx_moe *moe = NULL;
  const size_t cuts[] = {0, 5, 8, 100, n - 4};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    write_bytes(path, good, cuts[i]);
    ck_assert_int_ne(mfx_moe_load(layer_path, path, NULL, &moe), MFX_OK);
    ck_assert_ptr_null(moe);
  }
  write_bytes(path, good, 5);
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), "too short for a safetensors file");
  write_bytes(path, good, n - 4);
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), "truncated");
  unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
  write_bytes(path, huge, sizeof huge);
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), "a header of 18446744073709551615");
  unsigned char nul[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', 0, '}', ' '};
  write_bytes(path, nul, sizeof nul);
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), "NUL");
  unsigned char junk[14] = {6, 0, 0, 0, 0, 0, 0, 0, '[', '1', ',', ']', ' ', ' '};
  write_bytes(path, junk, sizeof junk);
  expect_error(mfx_moe_load(layer_path, path, NULL, &moe), "weights");
  expect_error(mfx_moe_load(layer_path, "/dev/zero", NULL, &moe), "/dev/zero");
  expect_error(mfx_moe_load(layer_path, dir, NULL, &moe), dir);
  ck_assert_ptr_null(moe);
}
END_TEST

/* A layer artifact re-encoded with another manifest. */
static void rewrite_manifest(const char *out, const char *from, const char *to) {
  void *data = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_artifact_read_file(layer_path, &data, &size), MFX_OK);
  mfx_artifact_kernel *k = NULL;
  int n = 0;
  ck_assert_int_eq(mfx_artifact_decode(data, size, layer_path, &k, &n), MFX_OK);
  const char *text = NULL;
  size_t bytes = 0;
  ck_assert_int_eq(mfx_artifact_find_manifest(data, size, layer_path, &text, &bytes), MFX_OK);
  ck_assert_ptr_nonnull(text);
  char *m = calloc(bytes + 256, 1);
  memcpy(m, text, bytes);
  char *at = from != NULL ? strstr(m, from) : NULL;
  if (from != NULL) {
    ck_assert_ptr_nonnull(at);
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to));
  }
  void *image = NULL;
  size_t image_size = 0;
  ck_assert_int_eq(mfx_artifact_encode_manifest(k, n, from != NULL ? m : NULL, &image,
                                                &image_size), MFX_OK);
  ck_assert_int_eq(mfx_artifact_write_file(out, image, image_size), MFX_OK);
  free(image);
  free(m);
  free(k);
  free(data);
}

START_TEST(manifests_that_do_not_fit_the_kernels) {
  char path[320];
  snprintf(path, sizeof path, "%s/bad.mfxa", dir);
  mfx_moe *moe = NULL;
  rewrite_manifest(path, "\"name\": \"linear_gelu_m48_n24_k16\"",
                   "\"name\": \"linear_gelu_m64_n24_k16\"");
  expect_error(mfx_moe_load(path, weights_path, NULL, &moe),
               "the manifest names kernel linear_gelu_m64_n24_k16 (mult.fc1, bucket 48), which "
               "the artifact does not hold");
  rewrite_manifest(path, "\"dim\": 16", "\"dim\": 8");
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "(an artifact built for other dims?)");
  rewrite_manifest(path, "\"buckets\": [16, 48]", "\"buckets\": [16, 48, 64]");
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "no router kernel for bucket 64");
  rewrite_manifest(path, "\"role\": \"router\"", "\"role\": \"gate\"");
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "unknown role \"gate\"");
  rewrite_manifest(path, "\"format\": \"mfx-moe-layer-1\"", "\"format\": 1");
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "\"format\" is not");
  rewrite_manifest(path, "{", "[");
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "moe layer");
  rewrite_manifest(path, NULL, NULL);
  expect_error(mfx_moe_load(path, NULL, NULL, &moe), "has no layer manifest");
  ck_assert_ptr_null(moe);
}
END_TEST

static Suite *layer_suite(void) {
  Suite *s = suite_create("moe_layer");
  TCase *run = tcase_create("run");
  tcase_add_test(run, loaded_layer_matches_the_reference);
  tcase_add_test(run, loaded_layer_equals_the_jit_layer);
  tcase_add_test(run, two_layers_on_two_threads);
  tcase_add_test(run, latency_of_each_expert);
  tcase_set_timeout(run, 240);
  suite_add_tcase(s, run);
  TCase *bad = tcase_create("bad_inputs");
  tcase_add_test(bad, a_batch_above_the_largest_bucket);
  tcase_add_test(bad, weights_of_the_wrong_shape_dtype_or_names);
  tcase_add_test(bad, weights_for_another_layer);
  tcase_add_test(bad, overlapping_and_outside_offsets);
  tcase_add_test(bad, truncated_and_hostile_files);
  tcase_add_test(bad, manifests_that_do_not_fit_the_kernels);
  tcase_set_timeout(bad, 120);
  suite_add_tcase(s, bad);
  return s;
}

/* The layer is compiled once, before the (forked) tests. */
static void build_layer(void) {
  snprintf(dir, sizeof dir, "%s/mfx_moe_layer.XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("test_moe_layer: mkdtemp");
    exit(1);
  }
  snprintf(layer_path, sizeof layer_path, "%s/layer.mfxa", dir);
  snprintf(weights_path, sizeof weights_path, "%s/w.safetensors", dir);
  snprintf(weights2_path, sizeof weights2_path, "%s/w2.safetensors", dir);
  mfx_moe_spec spec = moe_fixture_spec(NULL);
  void *image = NULL;
  size_t size = 0;
  if (mfx_moe_compile_layer(&spec, moe_fixture_buckets, 2, "cpu", &image, &size) != MFX_OK ||
      mfx_artifact_write_file(layer_path, image, size) != MFX_OK) {
    fprintf(stderr, "test_moe_layer: building the layer: %s\n", mfx_last_error());
    exit(1);
  }
  free(image);
  make_weights(weights2_path, 77);
  make_weights(weights_path, 1);
}

int main(void) {
  build_layer();
  SRunner *runner = srunner_create(layer_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "test_moe_layer: could not remove %s\n", dir);
  return failed == 0 ? 0 : 1;
}
