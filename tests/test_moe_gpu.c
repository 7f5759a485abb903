/* The MoE layer's GPU path on device buffers (mfx_moe_forward_device):
 *   - on the emulated GPU target the whole pass runs the same code as on a
 *     GPU, on CPU-device buffers: the device forward equals the host
 *     forward bit for bit and the plain-C reference within f32 rounding,
 *     at token counts that fill no bucket;
 *   - a layer loaded from a cuda artifact (mfx compile-layer --target
 *     cuda:sm_90) on the fake driver (tests/fake_cuda): the pass stays on
 *     the device; the bytes the driver copied, by direction, are exactly
 *     the plan (indices and gates) in and the router's logits out, never x
 *     or y; the launches are the layer's kernels; the combine writes into
 *     the caller's buffer. The fake runs no mfx kernel (it has no PTX
 *     interpreter), so the loaded layer's numbers are checked on a GPU by
 *     the device script, not here;
 *   - each loaded cuda layer queues every launch and copy of a pass on a
 *     non-blocking stream of its own (none on the legacy default stream),
 *     waits on it only for the router's logits and at the end of the pass;
 *     two layers have two streams; a plain device handle likewise;
 *   - the experts' segment of a pass becomes one CUDA graph after the first
 *     pass of its key: one cuGraphLaunch replaces the gathers' and chains'
 *     launches, the same kernels run; a layer keeps a graph per key, up to
 *     8 (batches alternating between buckets capture each once), freeing
 *     the least recently used; new weights free them all;
 *   - bad input: a host layer given device buffers, null addresses, buffers
 *     too small, overlapping x and y, a batch above the largest bucket. */
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_cuda/fake_cuda.h"
#include "mfx/device.h"
#include "mfx/moe.h"
#include "moe_fixture.h"
#include "check_main.h"

static mfx_moe *emulated_layer(void) {
  mfx_moe_spec spec = moe_fixture_spec("emulate");
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_create(&spec, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, 7), MFX_OK);
  return moe;
}

/* ---- the emulated GPU: numbers --------------------------------------------------------- */

START_TEST(device_forward_equals_host_forward_emulated) {
  mfx_moe *moe = emulated_layer();
  mfx_device *dev = mfx_moe_device(moe);
  ck_assert_ptr_nonnull(dev);
  static const int64_t tokens[] = {5, 21, 33, 16};
  for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++) {
    int64_t T = tokens[c];
    size_t bytes = (size_t)(T * D) * 4;
    float *x = malloc(bytes), *y_host = malloc(bytes), *y_dev = malloc(bytes), *r = malloc(bytes);
    float *logits = malloc((size_t)(T * E) * 4);
    fill(x, T * D, 1.0f, (uint64_t)T);
    mfx_device_buffer xb, yb;
    ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &xb), MFX_OK);
    ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &yb), MFX_OK);
    ck_assert_int_eq(mfx_device_buffer_write(&xb, 0, x, bytes), MFX_OK);
    ck_assert_int_eq(mfx_device_zero(dev, yb.address, bytes), MFX_OK);
    mfx_moe_trace trace;
    memset(&trace, 0, sizeof trace);
    trace.logits = logits;
    ck_assert_msg(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, yb.address, bytes,
                                         &trace) == MFX_OK, "%s", mfx_last_error());
    ck_assert_int_eq(mfx_device_synchronize(dev), MFX_OK);
    ck_assert_int_eq(mfx_device_buffer_read(&yb, 0, y_dev, bytes), MFX_OK);
    ck_assert_int_eq(mfx_moe_forward(moe, NULL, x, T, y_host, NULL), MFX_OK);
    ck_assert_msg(memcmp(y_dev, y_host, bytes) == 0, "T=%lld: device and host forward differ",
                  (long long)T);
    ck_assert_int_eq(mfx_moe_reference(moe, x, T, logits, r, NULL), MFX_OK);
    double s = 0, m = max_diff(y_dev, r, T * D, &s);
    ck_assert_msg(s > 0.01 && m <= 1e-4 * s, "T=%lld: max diff %g of %g", (long long)T, m, s);
    /* x is left as it was */
    float *x_after = malloc(bytes);
    ck_assert_int_eq(mfx_device_buffer_read(&xb, 0, x_after, bytes), MFX_OK);
    ck_assert(memcmp(x, x_after, bytes) == 0);
    free(x_after);
    mfx_device_buffer_free(&xb);
    mfx_device_buffer_free(&yb);
    free(x);
    free(y_host);
    free(y_dev);
    free(r);
    free(logits);
  }
  mfx_moe_destroy(moe);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------------- */

START_TEST(device_forward_bad_input) {
  enum { T = 9 };
  size_t bytes = (size_t)(T * D) * 4;
  mfx_moe_spec cpu = moe_fixture_spec(NULL);
  mfx_moe *host = NULL;
  ck_assert_int_eq(mfx_moe_create(&cpu, &host), MFX_OK);
  ck_assert_ptr_null(mfx_moe_device(host));
  static float x[T * D], y[T * D];
  expect_error(mfx_moe_forward_device(host, NULL, (uint64_t)(uintptr_t)x, bytes, T,
                                      (uint64_t)(uintptr_t)y, bytes, NULL),
               "the layer runs on the host");
  mfx_moe_destroy(host);
  expect_error(mfx_moe_forward_device(NULL, NULL, 1, bytes, T, 2, bytes, NULL),
               "the layer is NULL");

  mfx_moe *moe = emulated_layer();
  mfx_device *dev = mfx_moe_device(moe);
  mfx_device_buffer xb, yb;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &xb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &yb), MFX_OK);
  expect_error(mfx_moe_forward_device(moe, NULL, 0, bytes, T, yb.address, bytes, NULL),
               "must be device addresses, not 0");
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, 0, bytes, NULL),
               "must be device addresses, not 0");
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, bytes - 4, T, yb.address, bytes,
                                      NULL),
               "need 576 each");
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, yb.address, 100, NULL),
               "y 100");
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, xb.address + 64, bytes,
                                      NULL),
               "overlap");
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, bytes, 0, yb.address, bytes, NULL),
               "expected at least 1");
  mfx_device_buffer_free(&xb);
  mfx_device_buffer_free(&yb);
  mfx_moe_destroy(moe);
}
END_TEST

/* ---- a layer loaded from a cuda artifact, on the fake driver ------------------------------ */

static char work_dir[256], fake_log[1024], layer_path[300], cpu_layer_path[300], log_path[300],
    many_path[300];
static int fake_ok;

static int run_command(const char *command) {
  FILE *p = popen(command, "r");
  if (p == NULL) return -1;
  size_t n = fread(fake_log, 1, sizeof fake_log - 1, p);
  fake_log[n] = '\0';
  char sink[256];
  while (fread(sink, 1, sizeof sink, p) > 0) continue;
  return pclose(p);
}

/* More token buckets than a layer keeps graphs for (MOE_GPU_MAX_GRAPHS in
 * moe/device.c, 8), for a layer of one mult expert and a null one, top-1:
 * the fake runs no kernel, so every token's logits are equal and it goes
 * to expert 0, and a pass's graph key is its bucket alone. */
enum { GRAPHS = 8, MANY = GRAPHS + 1 };
static const int64_t many_buckets[MANY] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static int write_spec(const mfx_moe_spec *spec, const int64_t *buckets, int n, const char *target,
                      const char *path) {
  void *image = NULL;
  size_t size = 0;
  if (mfx_moe_compile_layer(spec, buckets, n, target, &image, &size) != MFX_OK) {
    snprintf(fake_log, sizeof fake_log, "compile-layer %s: %s", target, mfx_last_error());
    return 0;
  }
  mfx_status st = mfx_artifact_write_file(path, image, size);
  free(image);
  return st == MFX_OK;
}

static int write_layer(const char *target, const char *path) {
  mfx_moe_spec spec = moe_fixture_spec(NULL);
  return write_spec(&spec, moe_fixture_buckets, 2, target, path);
}

static int write_many_layer(const char *path) {
  mfx_moe_spec spec = moe_fixture_spec(NULL);
  spec.experts = 2;
  spec.k = 1;
  spec.kinds[1] = MFX_EXPERT_NULL;
  return write_spec(&spec, many_buckets, MANY, "cuda:sm_90", path);
}

/* Once, before the tests fork: the fake driver and the two layer artifacts. */
static void fake_setup(void) {
  snprintf(work_dir, sizeof work_dir, "%s/mfx_test_moe_gpu_XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(work_dir) == NULL) return;
  char command[2048];
  const char *source_dir = getenv("MFX_SOURCE_DIR");
  const char *cc = getenv("CC") != NULL ? getenv("CC") : "cc";
  snprintf(command, sizeof command,
           "%s -std=gnu11 -O1 -Wall -shared -fPIC -o '%s/libcuda.so.1' "
           "'%s/tests/fake_cuda/fake_cuda.c' -lpthread 2>&1",
           cc, work_dir, source_dir != NULL ? source_dir : ".");
  snprintf(layer_path, sizeof layer_path, "%s/layer_cuda.mfxa", work_dir);
  snprintf(cpu_layer_path, sizeof cpu_layer_path, "%s/layer_cpu.mfxa", work_dir);
  snprintf(log_path, sizeof log_path, "%s/launches.log", work_dir);
  snprintf(many_path, sizeof many_path, "%s/layer_many.mfxa", work_dir);
  fake_ok = run_command(command) == 0 && write_layer("cuda:sm_90", layer_path) &&
            write_layer("cpu", cpu_layer_path);
}

static void fake_teardown(void) {
  char command[400];
  if (work_dir[0] == '\0') return;
  snprintf(command, sizeof command, "rm -rf '%s'", work_dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", work_dir);
}

static void use_fake(void) {
  ck_assert_msg(fake_ok, "building the fake driver or the layers failed: %s", fake_log);
  char path[300];
  snprintf(path, sizeof path, "%s/libcuda.so.1", work_dir);
  setenv("MFX_CUDA_LIBRARY", path, 1);
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  setenv("FAKE_CUDA_LOG", log_path, 1);
  remove(log_path);
}

static fake_cuda_counts fake_counts(void) {
  void *library = dlopen(getenv("MFX_CUDA_LIBRARY"), RTLD_NOW | RTLD_NOLOAD);
  ck_assert_ptr_nonnull(library);
  fake_cuda_counts_fn get;
  *(void **)&get = dlsym(library, "fake_cuda_counts_get");
  ck_assert_ptr_nonnull(get);
  fake_cuda_counts c;
  get(&c);
  dlclose(library);
  return c;
}

static fake_cuda_launch fake_last(void) {
  void *library = dlopen(getenv("MFX_CUDA_LIBRARY"), RTLD_NOW | RTLD_NOLOAD);
  ck_assert_ptr_nonnull(library);
  fake_cuda_last_launch_fn get;
  *(void **)&get = dlsym(library, "fake_cuda_last_launch");
  fake_cuda_launch l;
  get(&l);
  dlclose(library);
  return l;
}

/* How many lines of the launch log start with "launch NAME". */
static int log_count(const char *prefix) {
  FILE *f = fopen(log_path, "r");
  if (f == NULL) return 0;
  char line[512], want[160];
  snprintf(want, sizeof want, "launch %s", prefix);
  int n = 0;
  while (fgets(line, sizeof line, f) != NULL) n += strncmp(line, want, strlen(want)) == 0;
  fclose(f);
  return n;
}

static int64_t bucket_of(int64_t n) { return n <= 16 ? 16 : 48; }

/* The bytes the pass must move between host and device, from its routing:
 * in, the token of each gathered row, the row of each slot (padded to the
 * combine's bucket) and the gates; out, the router's logits. */
static void expected_copies(const mfx_moe_trace *t, int64_t T, unsigned long long *in,
                            unsigned long long *out) {
  int64_t rows = 0;
  for (int e = 0; e < 2; e++) rows += t->counts[e] > 0 ? bucket_of((int64_t)t->counts[e]) : 0;
  *in = (unsigned long long)(rows * 4 + bucket_of(T) * K * 4 + T * K * 4);
  *out = (unsigned long long)(bucket_of(T) * E * 4);
}

START_TEST(loaded_cuda_layer_stays_on_the_device) {
  use_fake();
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_load(layer_path, NULL, NULL, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, 3), MFX_OK);
  ck_assert(mfx_moe_on_gpu(moe));
  mfx_device *dev = mfx_moe_device(moe);
  ck_assert_ptr_nonnull(dev);
  ck_assert_int_eq(mfx_device_get_info(dev)->kind, MFX_DEVICE_CUDA);
  static const int64_t tokens[] = {21, 48, 7};
  for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++) {
    int64_t T = tokens[c];
    size_t bytes = (size_t)(T * D) * 4;
    float *x = malloc(bytes);
    fill(x, T * D, 1.0f, (uint64_t)T);
    mfx_device_buffer xb, yb;
    ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &xb), MFX_OK);
    ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &yb), MFX_OK);
    ck_assert_int_eq(mfx_device_buffer_write(&xb, 0, x, bytes), MFX_OK);
    mfx_moe_trace trace;
    memset(&trace, 0, sizeof trace);
    /* the first pass uploads the weights; the second moves only the plan */
    ck_assert_msg(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, yb.address, bytes,
                                         &trace) == MFX_OK, "%s", mfx_last_error());
    remove(log_path);
    fake_cuda_counts before = fake_counts();
    ck_assert_msg(mfx_moe_forward_device(moe, NULL, xb.address, bytes, T, yb.address, bytes,
                                         &trace) == MFX_OK, "%s", mfx_last_error());
    ck_assert_int_eq(mfx_device_synchronize(dev), MFX_OK);
    fake_cuda_counts after = fake_counts();
    unsigned long long in = 0, out = 0;
    expected_copies(&trace, T, &in, &out);
    ck_assert_msg(after.htod_bytes - before.htod_bytes == in, "T=%lld: %llu bytes in, expected %llu",
                  (long long)T, after.htod_bytes - before.htod_bytes, in);
    ck_assert_msg(after.dtoh_bytes - before.dtoh_bytes == out, "T=%lld: %llu bytes out, "
                  "expected %llu", (long long)T, after.dtoh_bytes - before.dtoh_bytes, out);
    /* x into the router's padded input on the device; y from the combine's
     * output unless T is a bucket (then the combine writes y itself) */
    unsigned long long dtod = bytes + (T == bucket_of(T) ? 0 : bytes);
    ck_assert_uint_eq(after.dtod_bytes - before.dtod_bytes, dtod);
    char name[64];
    snprintf(name, sizeof name, "linear_m%lld_n3_k16_", (long long)bucket_of(T));
    ck_assert_int_ge(log_count(name), 1); /* the router */
    ck_assert_int_ge(log_count("gather_rows_"), trace.counts[0] > 0 && trace.counts[1] > 0 ? 2 : 1);
    ck_assert_int_ge(log_count("combine_rows_"), 1);
    fake_cuda_launch last = fake_last();
    ck_assert_msg(strncmp(last.name, "combine_rows_", 13) == 0, "last launch %s", last.name);
    if (T == bucket_of(T)) { /* the output parameter is the caller's y */
      int found = 0;
      for (int p = 0; p < last.param_count; p++) {
        uint64_t v = 0;
        memcpy(&v, last.params[p], 8);
        found |= v == yb.address;
      }
      ck_assert_msg(found, "the combine does not write the caller's y");
    }
    /* the host forward on the same layer still works */
    float *y = malloc(bytes);
    ck_assert_msg(mfx_moe_forward(moe, NULL, x, T, y, NULL) == MFX_OK, "%s", mfx_last_error());
    free(y);
    mfx_device_buffer_free(&xb);
    mfx_device_buffer_free(&yb);
    free(x);
  }
  /* above the largest bucket */
  mfx_device_buffer big;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, 49 * D * 4, &big), MFX_OK);
  mfx_device_buffer big_y;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, 49 * D * 4, &big_y), MFX_OK);
  expect_error(mfx_moe_forward_device(moe, NULL, big.address, 49 * D * 4, 49, big_y.address,
                                      49 * D * 4, NULL),
               "48");
  mfx_device_buffer_free(&big);
  mfx_device_buffer_free(&big_y);
  mfx_moe_destroy(moe);
  fake_cuda_counts end = fake_counts();
  ck_assert_int_eq(end.allocations, 0);
  ck_assert_int_eq(end.modules, 0);
}
END_TEST

static int log_total(void) { return log_count(""); }

/* One device pass of T tokens with the launch log started afresh. */
static void pass(mfx_moe *moe, const mfx_device_buffer *xb, const mfx_device_buffer *yb,
                 int64_t T) {
  remove(log_path);
  ck_assert_msg(mfx_moe_forward_device(moe, NULL, xb->address, xb->bytes, T, yb->address,
                                       yb->bytes, NULL) == MFX_OK, "%s", mfx_last_error());
}

/* Weights are packed once: the templates' layout launches (linear's WT
 * transpose is launch _k0; shift_linear's SG, shift and sign packed in a
 * byte, _k0, and CNT, the count of negative signs, _k1 in the default
 * configs (form 3)) run in the first pass and after the weights change,
 * not in the passes between. */
START_TEST(weights_are_packed_once) {
  use_fake();
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_load(layer_path, NULL, NULL, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(moe, 5), MFX_OK);
  mfx_device *dev = mfx_moe_device(moe);
  enum { T = 40 }; /* the router, and every expert, at bucket 48 */
  mfx_device_buffer xb, yb;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, T * D * 4, &xb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, T * D * 4, &yb), MFX_OK);
  ck_assert_int_eq(mfx_device_zero(dev, xb.address, T * D * 4), MFX_OK);
  static const char *const packing[] = {"linear_m48_n3_k16_k0", "linear_gelu_m48_n24_k16_k0",
                                        "linear_m48_n16_k24_k0"};
  pass(moe, &xb, &yb, T);
  int first = log_total(), first_packs = 0;
  for (size_t i = 0; i < sizeof packing / sizeof packing[0]; i++)
    first_packs += log_count(packing[i]);
  first_packs += log_count("shift_linear_q16_gelu_m48_n24_k16_k0") +
                 log_count("shift_linear_dequantize_m48_n16_k24_k0") +
                 log_count("shift_linear_q16_gelu_m48_n24_k16_k1") +
                 log_count("shift_linear_dequantize_m48_n16_k24_k1");
  ck_assert_int_ge(log_count("linear_m48_n3_k16_k0"), 1); /* the router's W^T, packed */
  ck_assert_int_ge(first_packs, 1);
  pass(moe, &xb, &yb, T);
  int second = log_total();
  ck_assert_int_eq(log_count("linear_m48_n3_k16_k0"), 0);
  ck_assert_int_eq(log_count("linear_m48_n3_k16_k1"), 1); /* the router itself still runs */
  ck_assert_msg(first - second == first_packs, "first pass %d launches, second %d, packing %d",
                first, second, first_packs);
  pass(moe, &xb, &yb, T); /* and stays so */
  ck_assert_int_eq(log_total(), second);
  ck_assert_int_eq(mfx_moe_init_random(moe, 6), MFX_OK); /* new weights: packed again */
  pass(moe, &xb, &yb, T);
  ck_assert_int_eq(log_count("linear_m48_n3_k16_k0"), 1);
  mfx_device_buffer_free(&xb);
  mfx_device_buffer_free(&yb);
  mfx_moe_destroy(moe);
  ck_assert_int_eq(fake_counts().allocations, 0);
}
END_TEST

/* The one stream whose op count grew from `before` to `after` by all the
 * ops that were counted between them; -1 when ops went to several streams
 * or none. */
static int only_stream(const fake_cuda_counts *before, const fake_cuda_counts *after) {
  int found = -1;
  for (int i = 0; i < FAKE_CUDA_MAX_STREAMS; i++) {
    if (after->ops_on_stream[i] == before->ops_on_stream[i]) continue;
    if (found >= 0) return -1;
    found = i;
  }
  return found;
}

/* A pass of a loaded cuda layer on the fake driver: everything on one
 * stream; returns its id after checking that the pass's launches and
 * copies all went there and the host waited on it twice (the router's
 * logits and the end of the pass), never on the whole context. */
static int pass_stream(mfx_moe *moe, int64_t T) {
  mfx_device *dev = mfx_moe_device(moe);
  size_t bytes = (size_t)(T * D) * 4;
  float *x = malloc(bytes);
  fill(x, T * D, 1.0f, (uint64_t)T + 11);
  mfx_device_buffer xb, yb;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &xb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &yb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_write(&xb, 0, x, bytes), MFX_OK);
  pass(moe, &xb, &yb, T); /* the first pass also uploads and packs the weights */
  fake_cuda_counts before = fake_counts();
  pass(moe, &xb, &yb, T);
  fake_cuda_counts after = fake_counts();
  /* the second pass captures the experts' launches into a graph */
  int launches = after.launches - before.launches,
      calls = launches + (after.captured_launches - before.captured_launches) +
              (after.graph_launches - before.graph_launches),
      kernels = launches + (after.graph_kernels - before.graph_kernels);
  unsigned long long ops = 0;
  for (int i = 0; i < FAKE_CUDA_MAX_STREAMS; i++)
    ops += after.ops_on_stream[i] - before.ops_on_stream[i];
  ck_assert_int_ge(kernels, 4); /* router, gathers, the experts' chains, combine */
  ck_assert_int_eq(log_total(), kernels);
  ck_assert_msg(ops > (unsigned long long)calls, "T=%lld: %llu ops for %d launch calls: the "
                "plan's copies are missing", (long long)T, ops, calls);
  ck_assert_msg(after.ops_on_stream[0] == before.ops_on_stream[0],
                "T=%lld: %llu launches or copies on the legacy default stream", (long long)T,
                after.ops_on_stream[0] - before.ops_on_stream[0]);
  int id = only_stream(&before, &after);
  ck_assert_msg(id > 0, "T=%lld: the pass's launches and copies are on several streams",
                (long long)T);
  ck_assert_int_eq(fake_last().stream_id, id);
  ck_assert_int_eq(after.stream_syncs - before.stream_syncs, 2);
  ck_assert_int_eq(after.context_syncs, before.context_syncs);
  mfx_device_buffer_free(&xb);
  mfx_device_buffer_free(&yb);
  free(x);
  return id;
}

/* Each cuda layer queues its pass on a non-blocking stream of its own,
 * made with the layer and destroyed with it. */
START_TEST(each_layer_runs_on_its_own_stream) {
  use_fake();
  int streams = 0; /* the test's process opens the driver with the first layer */
  mfx_moe *a = NULL, *b = NULL;
  ck_assert_msg(mfx_moe_load(layer_path, NULL, NULL, &a) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(fake_counts().streams, streams + 1);
  ck_assert_msg(mfx_moe_load(layer_path, NULL, NULL, &b) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(fake_counts().streams, streams + 2);
  ck_assert_int_eq(mfx_moe_init_random(a, 3), MFX_OK);
  ck_assert_int_eq(mfx_moe_init_random(b, 4), MFX_OK);
  int sa = pass_stream(a, 21), sb = pass_stream(b, 21);
  ck_assert_int_ne(sa, sb);
  ck_assert_int_eq(pass_stream(a, 48), sa); /* another bucket, the same stream */
  ck_assert_int_eq(pass_stream(b, 7), sb);
  mfx_moe_destroy(a);
  ck_assert_int_eq(fake_counts().streams, streams + 1);
  mfx_moe_destroy(b);
  fake_cuda_counts end = fake_counts();
  ck_assert_int_eq(end.streams, streams);
  ck_assert_int_eq(end.allocations, 0);
}
END_TEST

/* The device interface's own stream on a plain handle: every call of the
 * handle goes there; the bytes are right; NULL is refused. */
START_TEST(device_handle_own_stream) {
  use_fake();
  mfx_device *dev = NULL;
  ck_assert_int_eq(mfx_device_open("cuda", &dev), MFX_OK);
  ck_assert_int_eq(mfx_device_use_own_stream(dev), MFX_OK);
  ck_assert_int_eq(mfx_device_use_own_stream(dev), MFX_OK); /* again: nothing */
  ck_assert_int_eq(fake_counts().streams, 1);
  enum { N = 37 };
  float in[N], out[N];
  fill(in, N, 2.0f, 5);
  mfx_device_buffer p, q;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, sizeof in, &p), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, sizeof in, &q), MFX_OK);
  fake_cuda_counts before = fake_counts();
  ck_assert_int_eq(mfx_device_zero(dev, q.address, sizeof in), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_write(&p, 0, in, sizeof in), MFX_OK);
  ck_assert_int_eq(mfx_device_copy(dev, q.address + 4, p.address, sizeof in - 4), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_read(&q, 0, out, sizeof out), MFX_OK);
  ck_assert_int_eq(mfx_device_synchronize(dev), MFX_OK);
  fake_cuda_counts after = fake_counts();
  int id = only_stream(&before, &after);
  ck_assert_int_gt(id, 0);
  ck_assert_uint_eq(after.ops_on_stream[id] - before.ops_on_stream[id], 4);
  ck_assert_int_eq(after.stream_syncs - before.stream_syncs, 2); /* the read, the synchronize */
  ck_assert_int_eq(after.context_syncs, before.context_syncs);
  ck_assert(out[0] == 0.0f);
  ck_assert(memcmp(out + 1, in, sizeof in - 4) == 0);
  mfx_device_buffer_free(&p);
  mfx_device_buffer_free(&q);
  mfx_device_close(dev);
  ck_assert_int_eq(fake_counts().streams, 0);
  expect_error(mfx_device_use_own_stream(NULL), "the device is NULL");
  /* graphs need the handle's own stream, and a GPU */
  ck_assert_int_eq(mfx_device_open("cuda", &dev), MFX_OK);
  expect_error(mfx_device_capture_begin(dev), "needs a stream of the handle's own");
  mfx_device_close(dev);
  ck_assert_int_eq(mfx_device_open("cpu", &dev), MFX_OK);
  expect_error(mfx_device_capture_begin(dev), "graphs need a CUDA device");
  mfx_device_close(dev);
  expect_error(mfx_device_capture_begin(NULL), "the device is NULL");
  expect_error(mfx_graph_launch(NULL), "the graph is NULL");
}
END_TEST

/* The launch log so far, whole (at most cap - 1 bytes). */
static void log_text(char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = fopen(log_path, "r");
  if (f == NULL) return;
  size_t n = fread(out, 1, cap - 1, f);
  out[n] = '\0';
  fclose(f);
}

/* A pass with a trace: the experts run plainly (timed, no graph). */
static void traced_pass(mfx_moe *moe, const mfx_device_buffer *xb, const mfx_device_buffer *yb,
                        int64_t T) {
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  remove(log_path);
  ck_assert_msg(mfx_moe_forward_device(moe, NULL, xb->address, xb->bytes, T, yb->address,
                                       yb->bytes, &trace) == MFX_OK, "%s", mfx_last_error());
}

/* A loaded cuda layer on the fake driver with seeded weights, and an input
 * and an output buffer of `rows` tokens (the input filled from seed). */
typedef struct {
  mfx_moe *moe;
  mfx_device_buffer xb, yb;
} fake_layer;

static fake_layer fake_layer_open(const char *path, int64_t rows, uint64_t seed) {
  use_fake();
  fake_layer l;
  l.moe = NULL;
  ck_assert_msg(mfx_moe_load(path, NULL, NULL, &l.moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(mfx_moe_init_random(l.moe, 5), MFX_OK);
  mfx_device *dev = mfx_moe_device(l.moe);
  size_t bytes = (size_t)(rows * D) * 4;
  float *x = malloc(bytes);
  fill(x, rows * D, 1.0f, seed);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &l.xb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, bytes, &l.yb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_write(&l.xb, 0, x, bytes), MFX_OK);
  free(x);
  return l;
}

/* Frees the buffers and the layer; the driver holds no graph and no
 * memory after. */
static void fake_layer_close(fake_layer *l) {
  mfx_device_buffer_free(&l->xb);
  mfx_device_buffer_free(&l->yb);
  mfx_moe_destroy(l->moe);
  fake_cuda_counts end = fake_counts();
  ck_assert_int_eq(end.graphs, 0);
  ck_assert_int_eq(end.graph_execs, 0);
  ck_assert_int_eq(end.allocations, 0);
}

/* The experts' segment of a pass (gathers and chains, after the plan is on
 * the device) becomes one CUDA graph: the first pass of a key runs it
 * plainly, the second captures it and launches the graph, later ones launch
 * only the graph: one cuGraphLaunch instead of N cuLaunchKernel, the same
 * kernels run in the same order with the same grids. New weights or another
 * bucket run plainly again, then capture again. */
START_TEST(experts_segment_runs_as_one_graph) {
  enum { T = 40 };
  fake_layer l = fake_layer_open(layer_path, T, 77);
  mfx_moe *moe = l.moe;
  const mfx_device_buffer xb = l.xb, yb = l.yb;
  static char plain[16384], replayed[16384];
  pass(moe, &xb, &yb, T); /* weights uploaded and packed; the first pass of its key */
  fake_cuda_counts c0 = fake_counts();
  traced_pass(moe, &xb, &yb, T); /* plain (timed per expert): the reference log */
  log_text(plain, sizeof plain);
  fake_cuda_counts c1 = fake_counts();
  ck_assert_int_eq(c1.graph_launches, c0.graph_launches);
  ck_assert_int_eq(c1.captured_launches, c0.captured_launches);
  int all = c1.launches - c0.launches; /* router, gathers, chains, combine */
  pass(moe, &xb, &yb, T); /* the second: captured */
  fake_cuda_counts c2 = fake_counts();
  int n = c2.captured_launches - c1.captured_launches;
  ck_assert_int_ge(n, 3); /* a gather and a two-kernel chain at least */
  ck_assert_int_eq(c2.launches - c1.launches, all - n); /* the router and the combine */
  ck_assert_int_eq(c2.graph_launches - c1.graph_launches, 1);
  ck_assert_int_eq(c2.graph_kernels - c1.graph_kernels, n);
  ck_assert_int_eq(c2.graphs, 1);
  pass(moe, &xb, &yb, T); /* the graph alone */
  fake_cuda_counts c3 = fake_counts();
  ck_assert_int_eq(c3.captured_launches, c2.captured_launches);
  ck_assert_int_eq(c3.launches - c2.launches, all - n);
  ck_assert_int_eq(c3.graph_launches - c2.graph_launches, 1);
  ck_assert_int_eq(c3.graph_kernels - c2.graph_kernels, n);
  log_text(replayed, sizeof replayed);
  ck_assert_msg(strlen(plain) > 0 && strcmp(plain, replayed) == 0,
                "the graph's pass ran other kernels than the plain one:\n%s\n---\n%s", plain,
                replayed);
  /* new weights: plain (and packed) again, then captured again */
  ck_assert_int_eq(mfx_moe_init_random(moe, 6), MFX_OK);
  pass(moe, &xb, &yb, T);
  fake_cuda_counts c4 = fake_counts();
  ck_assert_int_eq(c4.graph_launches, c3.graph_launches);
  ck_assert_int_ge(log_count("linear_m48_n3_k16_k0"), 1);
  pass(moe, &xb, &yb, T);
  fake_cuda_counts c5 = fake_counts();
  ck_assert_int_eq(c5.graph_launches - c4.graph_launches, 1);
  ck_assert_int_gt(c5.captured_launches, c4.captured_launches);
  /* another bucket: plain; the bucket-48 graph is kept */
  pass(moe, &xb, &yb, 7);
  fake_cuda_counts c6 = fake_counts();
  ck_assert_int_eq(c6.graph_launches, c5.graph_launches);
  ck_assert_int_eq(c6.captured_launches, c5.captured_launches);
  ck_assert_int_eq(c6.graphs, 1);
  fake_layer_close(&l);
}
END_TEST

/* What a pass did with graphs: captured launches, graph launches and the
 * kernels they replayed, plain launches, between two counts. */
typedef struct {
  int captured, graph_launches, graph_kernels, launches;
} graph_use;

static graph_use graph_use_between(const fake_cuda_counts *a, const fake_cuda_counts *b) {
  return (graph_use){b->captured_launches - a->captured_launches,
                     b->graph_launches - a->graph_launches, b->graph_kernels - a->graph_kernels,
                     b->launches - a->launches};
}

/* A pass of T tokens; what it did with graphs. */
static graph_use graph_pass(mfx_moe *moe, const mfx_device_buffer *xb,
                            const mfx_device_buffer *yb, int64_t T) {
  fake_cuda_counts a = fake_counts();
  pass(moe, xb, yb, T);
  fake_cuda_counts b = fake_counts();
  return graph_use_between(&a, &b);
}

/* The pass launched one graph with `kernels` kernels, captured nothing,
 * and launched `plain` kernels itself. */
static void expect_graph_launch(graph_use u, int kernels, int plain, int64_t T) {
  ck_assert_msg(u.graph_launches == 1 && u.captured == 0,
                "T=%lld: %d graph launches, %d launches captured; expected 1 and 0",
                (long long)T, u.graph_launches, u.captured);
  ck_assert_int_eq(u.graph_kernels, kernels);
  ck_assert_int_eq(u.launches, plain);
}

/* The pass ran plainly: no graph launched or captured. */
static void expect_plain(graph_use u, int64_t T) {
  ck_assert_msg(u.graph_launches == 0 && u.captured == 0,
                "T=%lld: %d graph launches, %d launches captured; expected none", (long long)T,
                u.graph_launches, u.captured);
}

/* The graphs and instantiated graphs the fake holds. */
static void expect_live_graphs(int n) {
  fake_cuda_counts c = fake_counts();
  ck_assert_int_eq(c.graphs, n);
  ck_assert_int_eq(c.graph_execs, n);
}

/* Batches that alternate between two buckets (a training loop's two batch
 * sizes) keep a graph each: each key is captured once, at its second pass,
 * and every later pass is one graph launch plus the router's and the
 * combine's launches, running the kernels of the plain pass in its order. */
START_TEST(alternating_buckets_keep_a_graph_each) {
  static const int64_t tokens[2] = {40, 7}; /* buckets 48 and 16 */
  fake_layer l = fake_layer_open(layer_path, tokens[0], 78);
  mfx_moe *moe = l.moe;
  const mfx_device_buffer xb = l.xb, yb = l.yb;
  static char plain[2][16384], replayed[16384];
  int all[2];
  for (int i = 0; i < 2; i++) expect_plain(graph_pass(moe, &xb, &yb, tokens[i]), tokens[i]);
  for (int i = 0; i < 2; i++) { /* the reference logs: plain, timed per expert */
    fake_cuda_counts a = fake_counts();
    traced_pass(moe, &xb, &yb, tokens[i]);
    fake_cuda_counts b = fake_counts();
    expect_plain(graph_use_between(&a, &b), tokens[i]);
    all[i] = b.launches - a.launches;
    log_text(plain[i], sizeof plain[i]);
  }
  int segment[2];
  for (int i = 0; i < 2; i++) { /* the second pass of each key: captured */
    graph_use u = graph_pass(moe, &xb, &yb, tokens[i]);
    segment[i] = u.captured;
    ck_assert_int_ge(segment[i], 3); /* a gather and a two-kernel chain at least */
    ck_assert_int_eq(u.graph_launches, 1);
    ck_assert_int_eq(u.launches, all[i] - segment[i]);
    expect_live_graphs(i + 1);
  }
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 2; i++) {
      expect_graph_launch(graph_pass(moe, &xb, &yb, tokens[i]), segment[i],
                          all[i] - segment[i], tokens[i]);
      log_text(replayed, sizeof replayed);
      ck_assert_msg(strcmp(plain[i], replayed) == 0,
                    "T=%lld: the graph's pass ran other kernels than the plain one:\n%s\n---\n%s",
                    (long long)tokens[i], plain[i], replayed);
    }
  expect_live_graphs(2);
  fake_layer_close(&l);
}
END_TEST

/* More keys than the layer keeps graphs for: the least recently launched
 * graph is freed for the new one (the fake never holds more than GRAPHS),
 * the others still launch; the freed key runs plainly, then is captured
 * again. New weights free every graph at the next pass; destroying the
 * layer frees the rest. */
START_TEST(graph_cache_evicts_the_least_recently_used) {
  ck_assert_msg(write_many_layer(many_path), "%s", fake_log);
  fake_layer l = fake_layer_open(many_path, MANY, 79);
  mfx_moe *moe = l.moe;
  const mfx_device_buffer xb = l.xb, yb = l.yb;
  /* the largest batch first, so that no later pass grows a buffer */
  expect_plain(graph_pass(moe, &xb, &yb, MANY), MANY);
  int segment = 0, plain = 0;
  for (int64_t T = 1; T <= GRAPHS; T++) {
    expect_plain(graph_pass(moe, &xb, &yb, T), T);
    graph_use u = graph_pass(moe, &xb, &yb, T);
    ck_assert_int_eq(u.graph_launches, 1);
    ck_assert_int_ge(u.captured, 2); /* a gather and the expert's chain */
    segment = u.captured;
    plain = u.launches;
    expect_live_graphs((int)T);
  }
  expect_graph_launch(graph_pass(moe, &xb, &yb, 1), segment, plain, 1); /* 2 is now the oldest */
  graph_use u = graph_pass(moe, &xb, &yb, MANY); /* seen once: captured, 2's graph freed */
  ck_assert_int_eq(u.graph_launches, 1);
  ck_assert_int_eq(u.captured, segment);
  expect_live_graphs(GRAPHS);
  for (int round = 0; round < 2; round++) {
    /* every kept key still launches its graph alone; 1 first, the oldest after */
    expect_graph_launch(graph_pass(moe, &xb, &yb, 1), segment, plain, 1);
    for (int64_t T = 3; T <= MANY; T++)
      expect_graph_launch(graph_pass(moe, &xb, &yb, T), segment, plain, T);
    /* 2's graph was freed: a first pass again, which pushes no graph out */
    if (round == 0) expect_plain(graph_pass(moe, &xb, &yb, 2), 2);
  }
  u = graph_pass(moe, &xb, &yb, 2);
  ck_assert_int_eq(u.captured, segment); /* captured again; 1's graph is the oldest now */
  expect_live_graphs(GRAPHS);
  expect_plain(graph_pass(moe, &xb, &yb, 1), 1);
  /* new weights: the next pass frees every graph, runs plainly; the one after captures */
  ck_assert_int_eq(mfx_moe_init_random(moe, 6), MFX_OK);
  expect_plain(graph_pass(moe, &xb, &yb, 5), 5);
  expect_live_graphs(0);
  ck_assert_int_eq(graph_pass(moe, &xb, &yb, 5).captured, segment);
  expect_live_graphs(1);
  expect_graph_launch(graph_pass(moe, &xb, &yb, 5), segment, plain, 5);
  fake_layer_close(&l);
}
END_TEST

/* A CPU layer artifact loads as a host layer: device buffers are refused. */
START_TEST(loaded_cpu_layer_refuses_device_buffers) {
  use_fake();
  mfx_moe *moe = NULL;
  ck_assert_msg(mfx_moe_load(cpu_layer_path, NULL, NULL, &moe) == MFX_OK, "%s", mfx_last_error());
  ck_assert(!mfx_moe_on_gpu(moe));
  mfx_device *dev = NULL;
  ck_assert_int_eq(mfx_device_open("cuda", &dev), MFX_OK);
  mfx_device_buffer xb, yb;
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, 16 * D * 4, &xb), MFX_OK);
  ck_assert_int_eq(mfx_device_buffer_alloc(dev, 16 * D * 4, &yb), MFX_OK);
  expect_error(mfx_moe_forward_device(moe, NULL, xb.address, 16 * D * 4, 16, yb.address,
                                      16 * D * 4, NULL),
               "the layer runs on the host");
  mfx_device_buffer_free(&xb);
  mfx_device_buffer_free(&yb);
  mfx_device_close(dev);
  mfx_moe_destroy(moe);
}
END_TEST

static Suite *moe_gpu_suite(void) {
  Suite *s = suite_create("moe_gpu");
  TCase *emu = tcase_create("emulated");
  tcase_set_timeout(emu, 240);
  tcase_add_test(emu, device_forward_equals_host_forward_emulated);
  tcase_add_test(emu, device_forward_bad_input);
  suite_add_tcase(s, emu);
  TCase *fake = tcase_create("fake_cuda");
  tcase_set_timeout(fake, 240);
  tcase_add_unchecked_fixture(fake, fake_setup, fake_teardown);
  tcase_add_test(fake, loaded_cuda_layer_stays_on_the_device);
  tcase_add_test(fake, loaded_cpu_layer_refuses_device_buffers);
  tcase_add_test(fake, weights_are_packed_once);
  tcase_add_test(fake, each_layer_runs_on_its_own_stream);
  tcase_add_test(fake, device_handle_own_stream);
  tcase_add_test(fake, experts_segment_runs_as_one_graph);
  tcase_add_test(fake, alternating_buckets_keep_a_graph_each);
  tcase_add_test(fake, graph_cache_evicts_the_least_recently_used);
  suite_add_tcase(s, fake);
  return s;
}

int main(void) { return check_run_suite(moe_gpu_suite()); }
