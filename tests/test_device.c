/* Devices: the CPU device; the CUDA device against a fake driver built here
 * from tests/fake_cuda/fake_cuda.c (the whole Driver API path without a
 * GPU); the missing-driver, missing-symbol and no-device errors; and, only
 * where a real libcuda.so.1 with a GPU is present, the same kernels on the
 * real device. The test PTX is checked with ptxas when the toolkit is here. */
#define _GNU_SOURCE
#include "mfx/device.h"
#include "mfx/moe.h"

#include "fake_cuda/fake_cuda.h"

#include <check.h>
#include <dlfcn.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check_main.h"

/* ---- kernels: hand-written PTX, the same on the fake and on a GPU --------- */

#define PTX_HEADER ".version 7.5\n.target sm_80\n.address_size 64\n\n"

static const char kernels_ptx[] =
    PTX_HEADER
    ".extern .shared .align 16 .b8 mfx_dynamic_shared[];\n"
    "\n"
    "// c[i] = a[i] + b[i] for i < n\n"
    ".visible .entry vector_add_f32(\n"
    "\t.param .u64 vector_add_f32_a,\n"
    "\t.param .u64 vector_add_f32_b,\n"
    "\t.param .u64 vector_add_f32_c,\n"
    "\t.param .u32 vector_add_f32_n\n"
    ")\n"
    "{\n"
    "\t.reg .pred %p<2>;\n"
    "\t.reg .b32 %r<6>;\n"
    "\t.reg .f32 %f<4>;\n"
    "\t.reg .b64 %rd<11>;\n"
    "\n"
    "\tld.param.u64 %rd1, [vector_add_f32_a];\n"
    "\tld.param.u64 %rd2, [vector_add_f32_b];\n"
    "\tld.param.u64 %rd3, [vector_add_f32_c];\n"
    "\tld.param.u32 %r2, [vector_add_f32_n];\n"
    "\tmov.u32 %r3, %ctaid.x;\n"
    "\tmov.u32 %r4, %ntid.x;\n"
    "\tmov.u32 %r5, %tid.x;\n"
    "\tmad.lo.s32 %r1, %r3, %r4, %r5;\n"
    "\tsetp.ge.u32 %p1, %r1, %r2;\n"
    "\t@%p1 bra $L_vector_add_done;\n"
    "\tcvta.to.global.u64 %rd4, %rd1;\n"
    "\tmul.wide.u32 %rd5, %r1, 4;\n"
    "\tadd.s64 %rd6, %rd4, %rd5;\n"
    "\tcvta.to.global.u64 %rd7, %rd2;\n"
    "\tadd.s64 %rd8, %rd7, %rd5;\n"
    "\tld.global.f32 %f1, [%rd6];\n"
    "\tld.global.f32 %f2, [%rd8];\n"
    "\tadd.rn.f32 %f3, %f1, %f2;\n"
    "\tcvta.to.global.u64 %rd9, %rd3;\n"
    "\tadd.s64 %rd10, %rd9, %rd5;\n"
    "\tst.global.f32 [%rd10], %f3;\n"
    "$L_vector_add_done:\n"
    "\tret;\n"
    "}\n"
    "\n"
    "// one block reverses data[0, n) through 4*n bytes of dynamic shared memory\n"
    ".visible .entry reverse_shared_u32(\n"
    "\t.param .u64 reverse_shared_u32_data,\n"
    "\t.param .u32 reverse_shared_u32_n\n"
    ")\n"
    "{\n"
    "\t.reg .pred %p<3>;\n"
    "\t.reg .b32 %r<9>;\n"
    "\t.reg .b64 %rd<11>;\n"
    "\n"
    "\tld.param.u64 %rd1, [reverse_shared_u32_data];\n"
    "\tld.param.u32 %r1, [reverse_shared_u32_n];\n"
    "\tcvta.to.global.u64 %rd2, %rd1;\n"
    "\tmov.u64 %rd3, mfx_dynamic_shared;\n"
    "\tmov.u32 %r2, %tid.x;\n"
    "\tmov.u32 %r3, %ntid.x;\n"
    "\tmov.u32 %r4, %r2;\n"
    "$L_load:\n"
    "\tsetp.ge.u32 %p1, %r4, %r1;\n"
    "\t@%p1 bra $L_load_done;\n"
    "\tmul.wide.u32 %rd4, %r4, 4;\n"
    "\tadd.s64 %rd5, %rd2, %rd4;\n"
    "\tld.global.u32 %r5, [%rd5];\n"
    "\tadd.s64 %rd6, %rd3, %rd4;\n"
    "\tst.shared.u32 [%rd6], %r5;\n"
    "\tadd.s32 %r4, %r4, %r3;\n"
    "\tbra.uni $L_load;\n"
    "$L_load_done:\n"
    "\tbar.sync 0;\n"
    "\tmov.u32 %r4, %r2;\n"
    "$L_store:\n"
    "\tsetp.ge.u32 %p2, %r4, %r1;\n"
    "\t@%p2 bra $L_store_done;\n"
    "\tsub.s32 %r6, %r1, %r4;\n"
    "\tadd.s32 %r7, %r6, -1;\n"
    "\tmul.wide.u32 %rd7, %r7, 4;\n"
    "\tadd.s64 %rd8, %rd3, %rd7;\n"
    "\tld.shared.u32 %r8, [%rd8];\n"
    "\tmul.wide.u32 %rd9, %r4, 4;\n"
    "\tadd.s64 %rd10, %rd2, %rd9;\n"
    "\tst.global.u32 [%rd10], %r8;\n"
    "\tadd.s32 %r4, %r4, %r3;\n"
    "\tbra.uni $L_store;\n"
    "$L_store_done:\n"
    "\tret;\n"
    "}\n";

/* Valid PTX but for one unknown instruction: the JIT must refuse it. */
static const char broken_ptx[] = PTX_HEADER
    ".visible .entry broken()\n"
    "{\n"
    "\t.reg .b32 %r<2>;\n"
    "\tfrobnicate.u32 %r1, %r1;\n"
    "\tret;\n"
    "}\n";

/* ---- helpers ------------------------------------------------------------------ */

#define EXPECT_OK(call)                                                                      \
  do {                                                                                       \
    mfx_status st_ = (call);                                                                 \
    ck_assert_msg(st_ == MFX_OK, "%s: %s (%s)", #call, mfx_status_name(st_), mfx_last_error()); \
  } while (0)

/* `got` is `want`, and the message contains `needle`. */
static void expect_error(mfx_status got, mfx_status want, const char *needle) {
  ck_assert_msg(got == want, "status %s, expected %s (%s)", mfx_status_name(got),
                mfx_status_name(want), mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                mfx_last_error(), needle);
}

static char work_dir[256]; /* the fake drivers and PTX files, made once per test case */
static int fake_built;
static char fake_build_log[1024];

static void path_in_work(const char *name, char *out, size_t cap) {
  ck_assert_msg(work_dir[0] != '\0', "no work directory: %s", fake_build_log);
  int n = snprintf(out, cap, "%s/%s", work_dir, name);
  ck_assert_int_lt(n, (int)cap);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_msg(f != NULL, "cannot write %s", path);
  ck_assert_int_eq(fputs(text, f) >= 0, 1);
  ck_assert_int_eq(fclose(f), 0);
}

/* Runs `command`, keeping the first bytes of its output; returns its status. */
static int run_command(const char *command, char *output, size_t cap) {
  FILE *p = popen(command, "r");
  if (p == NULL) return -1;
  size_t n = fread(output, 1, cap - 1, p);
  output[n] = '\0';
  char sink[256];
  while (fread(sink, 1, sizeof sink, p) > 0) continue;
  return pclose(p);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Compiles tests/fake_cuda/fake_cuda.c into work_dir/<variant>/libcuda.so.1. */
static int build_fake(const char *variant, const char *defines) {
  char dir[300], command[2048];
  const char *source_dir = getenv("MFX_SOURCE_DIR");
  const char *cc = getenv("CC") != NULL ? getenv("CC") : "cc";
  snprintf(dir, sizeof dir, "%s/%s", work_dir, variant);
  if (mkdir(dir, 0700) != 0) return 0;
  snprintf(command, sizeof command,
           "%s -std=gnu11 -O1 -Wall -shared -fPIC %s -o '%s/libcuda.so.1' "
           "'%s/tests/fake_cuda/fake_cuda.c' -lpthread 2>&1",
           cc, defines, dir, source_dir != NULL ? source_dir : ".");
  return run_command(command, fake_build_log, sizeof fake_build_log) == 0;
}

/* Unchecked fixtures: run once per test case, in the parent, before the
 * tests fork. */
static void work_dir_setup(void) {
  snprintf(work_dir, sizeof work_dir, "%s/mfx_test_device_XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(work_dir) == NULL) {
    snprintf(fake_build_log, sizeof fake_build_log, "mkdtemp %s failed", work_dir);
    work_dir[0] = '\0';
  }
}

static void fake_setup(void) {
  work_dir_setup();
  fake_built = work_dir[0] != '\0' && build_fake("plain", "") &&
               build_fake("nolaunch", "-DFAKE_CUDA_WITHOUT_LAUNCH");
}

static void work_dir_teardown(void) {
  if (work_dir[0] != '\0') nftw(work_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Points the runtime at the fake driver `variant` with `devices` GPUs. */
static void use_fake(const char *variant, int devices) {
  char path[512], count[16];
  ck_assert_msg(fake_built, "building the fake CUDA driver failed (MFX_SOURCE_DIR=%s): %s",
                getenv("MFX_SOURCE_DIR"), fake_build_log);
  snprintf(path, sizeof path, "%s/%s/libcuda.so.1", work_dir, variant);
  snprintf(count, sizeof count, "%d", devices);
  setenv("MFX_CUDA_LIBRARY", path, 1);
  setenv("FAKE_CUDA_DEVICES", count, 1);
  unsetenv("FAKE_CUDA_INIT_RESULT");
}

/* A runtime built without cuda.h says so on every CUDA open: skip, loudly. */
static int cuda_compiled_out(void) {
  mfx_device *dev = NULL;
  const char *saved = getenv("MFX_CUDA_LIBRARY");
  char *copy = saved != NULL ? strdup(saved) : NULL;
  setenv("MFX_CUDA_LIBRARY", "/nonexistent/mfx/libcuda.so.1", 1);
  mfx_status st = mfx_device_open("cuda", &dev);
  int out = st != MFX_OK && strstr(mfx_last_error(), "built without CUDA headers") != NULL;
  if (copy != NULL) setenv("MFX_CUDA_LIBRARY", copy, 1);
  else unsetenv("MFX_CUDA_LIBRARY");
  free(copy);
  if (out) printf("SKIP CUDA device tests: %s\n", mfx_last_error());
  return out;
}

typedef struct {
  fake_cuda_last_launch_fn last_launch;
  fake_cuda_counts_fn counts;
} fake_hooks;

/* The hooks of the fake that the runtime has loaded. */
static fake_hooks fake_hooks_get(void) {
  void *library = dlopen(getenv("MFX_CUDA_LIBRARY"), RTLD_NOW | RTLD_NOLOAD);
  ck_assert_msg(library != NULL, "the fake driver is not loaded: %s", dlerror());
  fake_hooks hooks;
  *(void **)&hooks.last_launch = dlsym(library, "fake_cuda_last_launch");
  *(void **)&hooks.counts = dlsym(library, "fake_cuda_counts_get");
  ck_assert_ptr_nonnull(hooks.last_launch);
  ck_assert_ptr_nonnull(hooks.counts);
  dlclose(library);
  return hooks;
}

static fake_cuda_counts fake_counts(void) {
  fake_cuda_counts counts;
  fake_hooks_get().counts(&counts);
  return counts;
}

static mfx_device *open_device(const char *spec) {
  mfx_device *dev = NULL;
  EXPECT_OK(mfx_device_open(spec, &dev));
  ck_assert_ptr_nonnull(dev);
  return dev;
}

/* ---- checks shared by the fake and a real GPU ------------------------------------ */

static void check_buffer_round_trip(mfx_device *dev) {
  enum { N = 777 };
  unsigned char in[N], out[N];
  mfx_device_buffer buf;
  for (int i = 0; i < N; i++) in[i] = (unsigned char)(i * 7 + 3);
  EXPECT_OK(mfx_device_buffer_alloc(dev, N, &buf));
  ck_assert_uint_eq(buf.bytes, N);
  ck_assert(buf.address != 0);
  EXPECT_OK(mfx_device_buffer_write(&buf, 0, in, N));
  memset(out, 0, sizeof out);
  EXPECT_OK(mfx_device_buffer_read(&buf, 0, out, N));
  ck_assert_int_eq(memcmp(in, out, N), 0);
  /* a slice in the middle */
  EXPECT_OK(mfx_device_buffer_write(&buf, 100, in, 50));
  EXPECT_OK(mfx_device_buffer_read(&buf, 100, out, 50));
  ck_assert_int_eq(memcmp(in, out, 50), 0);
  EXPECT_OK(mfx_device_buffer_read(&buf, N, out, 0));
  expect_error(mfx_device_buffer_write(&buf, N - 10, in, 11), MFX_ERR_INVALID,
               "11 bytes at offset 767 run past the end of a 777-byte buffer");
  expect_error(mfx_device_buffer_read(&buf, N + 1, out, 0), MFX_ERR_INVALID, "run past the end");
  expect_error(mfx_device_buffer_read(&buf, 0, NULL, 4), MFX_ERR_INVALID, "host pointer is NULL");
  mfx_device_buffer_free(&buf);
  ck_assert_uint_eq(buf.bytes, 0);
  mfx_device_buffer_free(&buf); /* idempotent */
  expect_error(mfx_device_buffer_read(&buf, 0, out, 1), MFX_ERR_INVALID, "0-byte buffer");
  /* zero-byte buffers need no memory */
  EXPECT_OK(mfx_device_buffer_alloc(dev, 0, &buf));
  ck_assert(buf.address == 0);
  EXPECT_OK(mfx_device_buffer_write(&buf, 0, in, 0));
  mfx_device_buffer_free(&buf);
}

static mfx_module *load_kernels(mfx_device *dev) {
  mfx_module *mod = NULL;
  EXPECT_OK(mfx_module_load(dev, kernels_ptx, strlen(kernels_ptx), &mod));
  ck_assert_ptr_nonnull(mod);
  return mod;
}

static mfx_function *function(mfx_module *mod, const char *name) {
  mfx_function *fn = NULL;
  EXPECT_OK(mfx_module_function(mod, name, &fn));
  ck_assert_ptr_nonnull(fn);
  return fn;
}

typedef struct {
  mfx_device_buffer a, b, c;
  uint32_t n;
} vector_add_args;

/* Launches vector_add_f32 on n elements (blocks of 128, a partial last one)
 * and checks c; leaves the buffers in `v` for the caller to inspect. */
static void run_vector_add(mfx_device *dev, mfx_function *fn, uint32_t n, vector_add_args *v) {
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  ck_assert(a != NULL && b != NULL && c != NULL);
  for (uint32_t i = 0; i < n; i++) {
    a[i] = (float)i * 0.5f;
    b[i] = (float)(n - i);
  }
  v->n = n;
  EXPECT_OK(mfx_device_buffer_alloc(dev, n * sizeof(float), &v->a));
  EXPECT_OK(mfx_device_buffer_alloc(dev, n * sizeof(float), &v->b));
  EXPECT_OK(mfx_device_buffer_alloc(dev, n * sizeof(float), &v->c));
  EXPECT_OK(mfx_device_buffer_write(&v->a, 0, a, n * sizeof(float)));
  EXPECT_OK(mfx_device_buffer_write(&v->b, 0, b, n * sizeof(float)));
  void *args[] = {&v->a.address, &v->b.address, &v->c.address, &v->n};
  mfx_launch_dims dims = {{(n + 127) / 128, 1, 1}, {128, 1, 1}, 0};
  EXPECT_OK(mfx_function_launch(fn, &dims, args));
  EXPECT_OK(mfx_device_synchronize(dev));
  EXPECT_OK(mfx_device_buffer_read(&v->c, 0, c, n * sizeof(float)));
  for (uint32_t i = 0; i < n; i++)
    ck_assert_msg(c[i] == a[i] + b[i], "vector_add_f32 n=%u: c[%u] = %g, expected %g", n, i,
                  (double)c[i], (double)(a[i] + b[i]));
  free(a);
  free(b);
  free(c);
}

static void free_vector_add(vector_add_args *v) {
  mfx_device_buffer_free(&v->a);
  mfx_device_buffer_free(&v->b);
  mfx_device_buffer_free(&v->c);
}

/* 64 KiB of dynamic shared memory: over the 48 KiB default, so the runtime
 * must opt the kernel in. */
static void check_reverse_shared(mfx_device *dev, mfx_module *mod) {
  enum { N = 16384 };
  uint32_t *data = malloc(N * sizeof *data);
  mfx_device_buffer buf;
  uint32_t n = N;
  ck_assert_ptr_nonnull(data);
  for (uint32_t i = 0; i < N; i++) data[i] = i * 3 + 1;
  EXPECT_OK(mfx_device_buffer_alloc(dev, N * sizeof *data, &buf));
  EXPECT_OK(mfx_device_buffer_write(&buf, 0, data, N * sizeof *data));
  void *args[] = {&buf.address, &n};
  mfx_launch_dims dims = {{1, 1, 1}, {256, 1, 1}, N * sizeof *data};
  mfx_function *fn = function(mod, "reverse_shared_u32");
  for (int i = 0; i < 3; i++) EXPECT_OK(mfx_function_launch(fn, &dims, args)); /* odd: reversed */
  EXPECT_OK(mfx_device_buffer_read(&buf, 0, data, N * sizeof *data));
  for (uint32_t i = 0; i < N; i++)
    ck_assert_msg(data[i] == (N - 1 - i) * 3 + 1, "reverse_shared_u32: data[%u] = %u", i, data[i]);
  mfx_device_buffer_free(&buf);
  free(data);
}

/* Launches the runtime refuses before the driver sees them. */
static void check_launch_limits(mfx_device *dev, mfx_module *mod) {
  const mfx_device_info *info = mfx_device_get_info(dev);
  mfx_function *fn = function(mod, "reverse_shared_u32");
  mfx_device_buffer buf;
  uint32_t n = 4;
  char needle[128];
  EXPECT_OK(mfx_device_buffer_alloc(dev, 16, &buf));
  void *args[] = {&buf.address, &n};
  mfx_launch_dims too_much_shared = {{1, 1, 1}, {32, 1, 1}, info->shared_per_block_optin + 4};
  snprintf(needle, sizeof needle, "the device allows at most %zu", info->shared_per_block_optin);
  expect_error(mfx_function_launch(fn, &too_much_shared, args), MFX_ERR_INVALID, needle);
  mfx_launch_dims too_many_threads = {{1, 1, 1}, {64, 32, 2}, 0};
  snprintf(needle, sizeof needle, "has 4096 threads; the device allows at most %d",
           info->max_threads_per_block);
  expect_error(mfx_function_launch(fn, &too_many_threads, args), MFX_ERR_INVALID, needle);
  mfx_launch_dims empty_grid = {{0, 1, 1}, {32, 1, 1}, 0};
  expect_error(mfx_function_launch(fn, &empty_grid, args), MFX_ERR_INVALID,
               "grid 0x1x1, block 32x1x1; every dimension must be at least 1");
  expect_error(mfx_function_launch(fn, NULL, args), MFX_ERR_INVALID, "no dims");
  mfx_device_buffer_free(&buf);
}

static void check_events(mfx_device *dev, mfx_module *mod) {
  mfx_event *start = NULL, *end = NULL;
  double seconds = -1.0;
  vector_add_args v;
  EXPECT_OK(mfx_event_create(dev, &start));
  EXPECT_OK(mfx_event_create(dev, &end));
  expect_error(mfx_event_elapsed(start, end, &seconds), MFX_ERR_INVALID,
               "the start event was never recorded");
  EXPECT_OK(mfx_event_record(start));
  run_vector_add(dev, function(mod, "vector_add_f32"), 1 << 16, &v);
  EXPECT_OK(mfx_event_record(end));
  EXPECT_OK(mfx_event_elapsed(start, end, &seconds));
  ck_assert_msg(seconds > 0.0 && seconds < 10.0, "elapsed %g s", seconds);
  free_vector_add(&v);
  mfx_event_destroy(start);
  mfx_event_destroy(end);
}

/* The driver's own description may be worded differently from the fake's:
 * the name, and a JIT log after it, are what must be there. */
static void check_broken_ptx(mfx_device *dev) {
  mfx_module *mod = NULL;
  expect_error(mfx_module_load(dev, broken_ptx, strlen(broken_ptx), &mod), MFX_ERR_DEVICE,
               "cuModuleLoadDataEx: CUDA_ERROR_INVALID_PTX (");
  ck_assert_ptr_null(mod);
  ck_assert_msg(strstr(mfx_last_error(), "): ") != NULL && strstr(mfx_last_error(), "ptxas"),
                "no JIT log in \"%s\"", mfx_last_error());
}

/* Everything the device interface offers, on a CUDA device. */
static void check_cuda_device(mfx_device *dev) {
  vector_add_args v;
  check_buffer_round_trip(dev);
  mfx_module *mod = load_kernels(dev);
  mfx_function *fn = function(mod, "vector_add_f32");
  ck_assert_ptr_eq(function(mod, "vector_add_f32"), fn); /* looked up once */
  run_vector_add(dev, fn, 1000, &v);
  free_vector_add(&v);
  run_vector_add(dev, fn, 1, &v);
  free_vector_add(&v);
  check_reverse_shared(dev, mod);
  check_launch_limits(dev, mod);
  check_events(dev, mod);
  mfx_function *missing = NULL;
  expect_error(mfx_module_function(mod, "no_such_kernel", &missing), MFX_ERR_NOT_FOUND,
               "cuModuleGetFunction(\"no_such_kernel\"): CUDA_ERROR_NOT_FOUND");
  ck_assert_ptr_null(missing);
  mfx_module_free(mod);
  check_broken_ptx(dev);
}

/* ---- the CPU device ------------------------------------------------------------------- */

START_TEST(test_cpu_info) {
  mfx_device *dev = open_device("cpu");
  const mfx_device_info *info = mfx_device_get_info(dev);
  ck_assert_str_eq(mfx_device_name(dev), "cpu");
  ck_assert_int_eq(info->kind, MFX_DEVICE_CPU);
  ck_assert_int_ge(info->multiprocessors, 1);
  ck_assert(info->total_memory > 0);
  ck_assert(info->name[0] != '\0' && info->arch[0] != '\0');
  ck_assert_int_eq(info->driver_version, 0);
  ck_assert_msg(strncmp(mfx_device_description(dev), "cpu: ", 5) == 0, "%s",
                mfx_device_description(dev));
  int count = 0;
  EXPECT_OK(mfx_device_count("cpu", &count));
  ck_assert_int_eq(count, 1);
  mfx_device_close(dev);
}
END_TEST

START_TEST(test_cpu_buffers) {
  mfx_device *dev = open_device("cpu");
  check_buffer_round_trip(dev);
  mfx_device_buffer buf;
  EXPECT_OK(mfx_device_buffer_alloc(dev, 100, &buf));
  float *host = mfx_device_buffer_host(&buf);
  ck_assert_ptr_nonnull(host);
  ck_assert_uint_eq((uintptr_t)host % 64, 0);
  ck_assert_uint_eq((uintptr_t)host, buf.address);
  host[3] = 2.5f;
  float back = 0.0f;
  EXPECT_OK(mfx_device_buffer_read(&buf, 3 * sizeof(float), &back, sizeof back));
  ck_assert(back == 2.5f);
  mfx_device_buffer_free(&buf);
  EXPECT_OK(mfx_device_synchronize(dev));
  mfx_device_close(dev);
}
END_TEST

START_TEST(test_cpu_events) {
  mfx_device *dev = open_device("cpu");
  mfx_event *start = NULL, *end = NULL;
  double seconds = -1.0;
  EXPECT_OK(mfx_event_create(dev, &start));
  EXPECT_OK(mfx_event_create(dev, &end));
  EXPECT_OK(mfx_event_record(start));
  expect_error(mfx_event_elapsed(start, end, &seconds), MFX_ERR_INVALID,
               "the end event was never recorded");
  struct timespec pause = {0, 20 * 1000 * 1000};
  nanosleep(&pause, NULL);
  EXPECT_OK(mfx_event_record(end));
  EXPECT_OK(mfx_event_elapsed(start, end, &seconds));
  ck_assert_msg(seconds >= 0.019 && seconds < 5.0, "elapsed %g s", seconds);
  mfx_device *other = open_device("cpu");
  mfx_event *foreign = NULL;
  EXPECT_OK(mfx_event_create(other, &foreign));
  EXPECT_OK(mfx_event_record(foreign));
  expect_error(mfx_event_elapsed(start, foreign, &seconds), MFX_ERR_INVALID,
               "expected one device");
  mfx_event_destroy(foreign);
  mfx_device_close(other);
  mfx_event_destroy(start);
  mfx_event_destroy(end);
  mfx_device_close(dev);
}
END_TEST

START_TEST(test_cpu_loads_no_modules) {
  mfx_device *dev = open_device("cpu");
  mfx_module *mod = NULL;
  expect_error(mfx_module_load(dev, kernels_ptx, strlen(kernels_ptx), &mod), MFX_ERR_INVALID,
               "cpu: loads no modules");
  ck_assert_ptr_null(mod);
  mfx_device_close(dev);
}
END_TEST

static const char *const bad_specs[] = {"gpu", "", "cuda:", "cuda:x", "cuda:-1", "cuda:1x",
                                        "cuda:99999999999", "CPU", "cuda0", "cuda: 1"};

START_TEST(test_device_bad_specs) {
  mfx_device *dev = (mfx_device *)1;
  char needle[128];
  snprintf(needle, sizeof needle, "device \"%s\": expected \"cpu\", \"cuda\" or \"cuda:N\"",
           bad_specs[_i]);
  expect_error(mfx_device_open(bad_specs[_i], &dev), MFX_ERR_INVALID, needle);
  ck_assert_ptr_null(dev);
}
END_TEST

START_TEST(test_device_bad_kind) {
  int count = -1;
  expect_error(mfx_device_open(NULL, &(mfx_device *){NULL}), MFX_ERR_INVALID, "(null)");
  expect_error(mfx_device_count("tpu", &count), MFX_ERR_INVALID,
               "device kind \"tpu\": expected \"cpu\" or \"cuda\"");
  ck_assert_int_eq(count, 0);
}
END_TEST

/* ---- CUDA without a driver or a device ---------------------------------------------- */

START_TEST(test_cuda_missing_driver) {
  if (cuda_compiled_out()) return;
  mfx_device *dev = (mfx_device *)1;
  int count = -1;
  setenv("MFX_CUDA_LIBRARY", "/nonexistent/mfx/libcuda.so.1", 1);
  expect_error(mfx_device_open("cuda", &dev), MFX_ERR_DEVICE,
               "no CUDA driver found (/nonexistent/mfx/libcuda.so.1): ");
  ck_assert_ptr_null(dev);
  expect_error(mfx_device_count("cuda", &count), MFX_ERR_DEVICE, "no CUDA driver found");
  ck_assert_int_eq(count, 0);
}
END_TEST

START_TEST(test_cuda_missing_symbol) {
  if (cuda_compiled_out()) return;
  mfx_device *dev = (mfx_device *)1;
  use_fake("nolaunch", 1);
  expect_error(mfx_device_open("cuda", &dev), MFX_ERR_DEVICE,
               "lacks the entry point cuLaunchKernel");
  ck_assert_ptr_null(dev);
  ck_assert_msg(strstr(mfx_last_error(), "nolaunch/libcuda.so.1") != NULL, "%s",
                mfx_last_error());
}
END_TEST

START_TEST(test_cuda_no_device) {
  if (cuda_compiled_out()) return;
  mfx_device *dev = (mfx_device *)1;
  int count = -1;
  use_fake("plain", 0);
  expect_error(mfx_device_open("cuda", &dev), MFX_ERR_DEVICE, "no CUDA device");
  ck_assert_ptr_null(dev);
  EXPECT_OK(mfx_device_count("cuda", &count));
  ck_assert_int_eq(count, 0);
  /* a driver with no GPU at all fails cuInit itself */
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  setenv("FAKE_CUDA_INIT_RESULT", "100", 1);
  expect_error(mfx_device_open("cuda:0", &dev), MFX_ERR_DEVICE, "no CUDA device");
  EXPECT_OK(mfx_device_count("cuda", &count));
  ck_assert_int_eq(count, 0);
  setenv("FAKE_CUDA_INIT_RESULT", "35", 1);
  expect_error(mfx_device_open("cuda", &dev), MFX_ERR_DEVICE,
               "cuInit: CUDA_ERROR_INSUFFICIENT_DRIVER (CUDA driver version is insufficient");
  expect_error(mfx_device_count("cuda", &count), MFX_ERR_DEVICE, "CUDA_ERROR_INSUFFICIENT_DRIVER");
  setenv("FAKE_CUDA_INIT_RESULT", "12345", 1);
  expect_error(mfx_device_open("cuda", &dev), MFX_ERR_DEVICE,
               "cuInit: CUDA error 12345 (unknown to this driver)");
}
END_TEST

START_TEST(test_cuda_bad_ordinal) {
  if (cuda_compiled_out()) return;
  mfx_device *dev = (mfx_device *)1;
  use_fake("plain", 1);
  expect_error(mfx_device_open("cuda:3", &dev), MFX_ERR_DEVICE, "cuda:3: only 1 CUDA device");
  ck_assert_ptr_null(dev);
  use_fake("plain", 2);
  expect_error(mfx_device_open("cuda:2", &dev), MFX_ERR_DEVICE, "cuda:2: only 2 CUDA devices");
}
END_TEST

/* ---- CUDA on the fake driver ---------------------------------------------------------- */

START_TEST(test_cuda_fake_info) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 3);
  int count = 0;
  EXPECT_OK(mfx_device_count("cuda", &count));
  ck_assert_int_eq(count, 3);
  mfx_device *dev = open_device("cuda:1");
  const mfx_device_info *info = mfx_device_get_info(dev);
  ck_assert_int_eq(info->kind, MFX_DEVICE_CUDA);
  ck_assert_int_eq(info->ordinal, 1);
  ck_assert_str_eq(info->name, "Fake CUDA Device 1");
  ck_assert_str_eq(info->arch, "sm_90");
  ck_assert_int_eq(info->compute_major, 9);
  ck_assert_int_eq(info->compute_minor, 0);
  ck_assert_int_eq(info->multiprocessors, 132);
  ck_assert_int_eq(info->max_threads_per_block, 1024);
  ck_assert_uint_eq(info->shared_per_block, 49152);
  ck_assert_uint_eq(info->shared_per_block_optin, 232448);
  ck_assert(info->total_memory == (uint64_t)80 << 30);
  ck_assert_int_eq(info->driver_version, 12040);
  ck_assert_str_eq(mfx_device_name(dev), "cuda:1");
  ck_assert_str_eq(mfx_device_description(dev),
                   "cuda:1: Fake CUDA Device 1, sm_90, 132 SMs, 80.0 GiB, CUDA driver 12.4");
  ck_assert_int_eq(fake_counts().primary_refs, 1);
  mfx_device_close(dev);
  ck_assert_int_eq(fake_counts().primary_refs, 0);
  dev = open_device("cuda"); /* the primary context is retained again after its release */
  ck_assert_int_eq(mfx_device_get_info(dev)->ordinal, 0);
  mfx_device_close(dev);
}
END_TEST

START_TEST(test_cuda_fake_device) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  check_cuda_device(dev);
  mfx_device_close(dev);
  fake_cuda_counts counts = fake_counts();
  ck_assert_int_eq(counts.allocations, 0);
  ck_assert_int_eq(counts.modules, 0);
  ck_assert_int_eq(counts.events, 0);
  ck_assert_int_eq(counts.primary_refs, 0);
  ck_assert_int_eq(counts.bad_context_calls, 0);
  ck_assert_int_gt(counts.launches, 0);
}
END_TEST

START_TEST(test_cuda_fake_launch_arguments) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  mfx_module *mod = load_kernels(dev);
  vector_add_args v;
  run_vector_add(dev, function(mod, "vector_add_f32"), 300, &v);
  fake_cuda_launch last;
  fake_hooks_get().last_launch(&last);
  ck_assert_str_eq(last.name, "vector_add_f32");
  ck_assert_uint_eq(last.grid[0], 3);
  ck_assert_uint_eq(last.grid[1], 1);
  ck_assert_uint_eq(last.grid[2], 1);
  ck_assert_uint_eq(last.block[0], 128);
  ck_assert_uint_eq(last.shared_bytes, 0);
  ck_assert_int_eq(last.stream_is_default, 1);
  ck_assert_int_eq(last.param_count, 4);
  uint64_t addresses[3] = {v.a.address, v.b.address, v.c.address};
  for (int i = 0; i < 3; i++) {
    ck_assert_uint_eq(last.param_bytes[i], 8);
    ck_assert_int_eq(memcmp(last.params[i], &addresses[i], 8), 0);
  }
  uint32_t n;
  ck_assert_uint_eq(last.param_bytes[3], 4);
  memcpy(&n, last.params[3], 4);
  ck_assert_uint_eq(n, 300);
  free_vector_add(&v);
  mfx_module_free(mod);
  mfx_device_close(dev);
}
END_TEST

/* The MoE layer on a (fake) GPU: every kernel is built to PTX, loaded and
 * launched in the order of the expert chains, on the layer's device
 * buffers; destroying the layer frees all of it. The fake computes nothing:
 * the numbers are checked by the emulated and real-GPU tests in test_moe. */
START_TEST(test_cuda_fake_moe_layer) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_moe_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = 16;
  spec.hidden = 24;
  spec.k = 2;
  spec.target = "cuda";
  EXPECT_OK(mfx_expert_kinds_parse("mult,shift,null", spec.kinds, MFX_MOE_MAX_EXPERTS,
                                   &spec.experts));
  mfx_moe *moe = NULL;
  EXPECT_OK(mfx_moe_create(&spec, &moe));
  ck_assert_ptr_nonnull(strstr(mfx_moe_target_description(moe), "cuda:0: "));
  ck_assert_int_eq(mfx_moe_device_info(moe)->kind, MFX_DEVICE_CUDA);
  ck_assert_int_eq(mfx_moe_device_info(moe)->compute_major, 9);
  EXPECT_OK(mfx_moe_init_random(moe, 1));
  int launches_before = fake_counts().launches;
  float x[20 * 16], y[20 * 16];
  for (int i = 0; i < 20 * 16; i++) x[i] = (float)(i % 7) - 3.0f;
  EXPECT_OK(mfx_moe_forward(moe, NULL, x, 20, y, NULL));
  fake_cuda_counts counts = fake_counts();
  /* router 1; per expert a gather, then mult: linear_gelu, linear; shift:
   * shift_linear_q16_gelu, shift_linear_dequantize; the combine -- each at
   * least one launch */
  ck_assert_int_ge(counts.launches - launches_before, 8);
  ck_assert_int_eq(counts.bad_context_calls, 0);
  fake_cuda_launch last;
  fake_hooks_get().last_launch(&last);
  ck_assert_msg(strstr(last.name, "combine_rows") != NULL, "last launch %s", last.name);
  int kernels = mfx_moe_kernel_count(moe);
  ck_assert_int_ge(kernels, 6);
  const mfx_artifact_kernel *k = mfx_moe_gpu_kernel_at(moe, 0);
  ck_assert_ptr_nonnull(k);
  ck_assert_str_eq(k->target, "cuda:sm_90");
  ck_assert_int_eq(k->gpu_image_kind, MFX_GPU_IMAGE_PTX);
  ck_assert_ptr_null(mfx_moe_gpu_kernel_at(moe, kernels));
  mfx_moe_destroy(moe);
  counts = fake_counts();
  ck_assert_int_eq(counts.allocations, 0);
  ck_assert_int_eq(counts.modules, 0);
  ck_assert_int_eq(counts.primary_refs, 0);
}
END_TEST

START_TEST(test_cuda_fake_jit_logs) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  mfx_module *mod = load_kernels(dev);
  ck_assert_msg(strstr(mfx_module_log(mod), "Used 8 registers") != NULL, "info log \"%s\"",
                mfx_module_log(mod));
  mfx_module_free(mod);
  mod = NULL;
  expect_error(mfx_module_load(dev, "not PTX at all", 14, &mod), MFX_ERR_DEVICE,
               "cuda:0: cuModuleLoadDataEx: CUDA_ERROR_INVALID_PTX (a PTX JIT compilation "
               "failed): ptxas application ptx input, line 9; error   : Unknown instruction");
  static const char future[] = ".version 9.9\n.target sm_90\n.visible .entry k() { ret; }\n";
  expect_error(mfx_module_load(dev, future, strlen(future), &mod), MFX_ERR_DEVICE,
               "CUDA_ERROR_UNSUPPORTED_PTX_VERSION (the provided PTX was compiled with an "
               "unsupported toolchain.): the PTX .version 9.9 is newer than CUDA driver 12.4 "
               "accepts");
  ck_assert_msg(strstr(mfx_last_error(), "Unsupported .version 9.9") != NULL, "%s",
                mfx_last_error());
  expect_error(mfx_module_load(dev, NULL, 10, &mod), MFX_ERR_INVALID, "module image is empty");
  expect_error(mfx_module_load(dev, kernels_ptx, 0, &mod), MFX_ERR_INVALID,
               "module image is empty");
  ck_assert_ptr_null(mod);
  mfx_device_close(dev);
  ck_assert_int_eq(fake_counts().modules, 0);
}
END_TEST

/* The PTX handed over is `bytes` long, not up to some later NUL: the driver
 * must not see what follows. */
START_TEST(test_cuda_fake_ptx_length) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  static const char text[] = PTX_HEADER ".visible .entry first() { ret; }\n"
                                        "|.visible .entry second() { ret; }\n";
  mfx_module *mod = NULL;
  EXPECT_OK(mfx_module_load(dev, text, (size_t)(strchr(text, '|') - text), &mod));
  function(mod, "first");
  mfx_function *fn = NULL;
  expect_error(mfx_module_function(mod, "second", &fn), MFX_ERR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND");
  expect_error(mfx_module_function(mod, "", &fn), MFX_ERR_INVALID, "function name is empty");
  mfx_module_free(mod);
  mfx_device_close(dev);
}
END_TEST

/* A cubin (ELF) goes to the driver untouched. */
START_TEST(test_cuda_fake_cubin) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  static const char cubin[] = "\x7f" "ELF" ".visible .entry from_cubin(.param .u32 x) { ret; }";
  mfx_module *mod = NULL;
  EXPECT_OK(mfx_module_load(dev, cubin, sizeof cubin, &mod));
  mfx_function *fn = function(mod, "from_cubin");
  uint32_t x = 7;
  void *args[] = {&x};
  mfx_launch_dims dims = {{2, 3, 4}, {5, 6, 7}, 0};
  EXPECT_OK(mfx_function_launch(fn, &dims, args));
  fake_cuda_launch last;
  fake_hooks_get().last_launch(&last);
  ck_assert_str_eq(last.name, "from_cubin");
  ck_assert_uint_eq(last.grid[2], 4);
  ck_assert_uint_eq(last.block[2], 7);
  ck_assert_uint_eq(last.param_bytes[0], 4);
  ck_assert_int_eq(memcmp(last.params[0], &x, 4), 0);
  mfx_module_free(mod);
  mfx_device_close(dev);
}
END_TEST

/* A kernel's fault shows at the next synchronize, named. */
START_TEST(test_cuda_fake_async_error) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 1);
  mfx_device *dev = open_device("cuda");
  static const char fault[] = PTX_HEADER ".visible .entry fake_fault() { ret; }\n";
  mfx_module *mod = NULL;
  EXPECT_OK(mfx_module_load(dev, fault, strlen(fault), &mod));
  mfx_launch_dims dims = {{1, 1, 1}, {1, 1, 1}, 0};
  EXPECT_OK(mfx_function_launch(function(mod, "fake_fault"), &dims, NULL));
  expect_error(mfx_device_synchronize(dev), MFX_ERR_DEVICE,
               "cuda:0: cuCtxSynchronize: CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access "
               "was encountered)");
  mfx_module_free(mod);
  mfx_device_close(dev);
}
END_TEST

typedef struct {
  mfx_device *dev;
  mfx_function *fn;
} thread_job;

static void *thread_main(void *arg) {
  thread_job *job = arg;
  vector_add_args v;
  run_vector_add(job->dev, job->fn, 513, &v);
  free_vector_add(&v);
  return NULL;
}

/* The context is made current on each thread that uses the device, and two
 * devices work side by side on one thread. */
START_TEST(test_cuda_fake_threads_and_devices) {
  if (cuda_compiled_out()) return;
  use_fake("plain", 2);
  mfx_device *dev0 = open_device("cuda:0"), *dev1 = open_device("cuda:1");
  mfx_module *mod0 = load_kernels(dev0), *mod1 = load_kernels(dev1);
  thread_job jobs[2] = {{dev0, function(mod0, "vector_add_f32")},
                        {dev1, function(mod1, "vector_add_f32")}};
  pthread_t threads[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&threads[i], NULL, thread_main, &jobs[i]), 0);
  for (int i = 0; i < 2; i++) ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
  vector_add_args v0, v1;
  run_vector_add(dev0, jobs[0].fn, 100, &v0);
  run_vector_add(dev1, jobs[1].fn, 200, &v1);
  free_vector_add(&v0);
  free_vector_add(&v1);
  ck_assert_int_eq(fake_counts().primary_refs, 2);
  mfx_module_free(mod0);
  mfx_module_free(mod1);
  mfx_device_close(dev0);
  mfx_device_close(dev1);
  fake_cuda_counts counts = fake_counts();
  ck_assert_int_eq(counts.bad_context_calls, 0);
  ck_assert_int_eq(counts.primary_refs, 0);
  ck_assert_int_eq(counts.allocations, 0);
}
END_TEST

/* ---- the toolkit's ptxas and a real GPU ---------------------------------------------------- */

/* ptxas on PATH or in /usr/local/cuda/bin, or NULL. */
static const char *find_ptxas(char *out, size_t cap) {
  const char *path = getenv("PATH");
  char *dirs = strdup(path != NULL ? path : "");
  char *save = NULL;
  ck_assert_ptr_nonnull(dirs);
  for (char *dir = strtok_r(dirs, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
    snprintf(out, cap, "%s/ptxas", dir);
    if (access(out, X_OK) == 0) {
      free(dirs);
      return out;
    }
  }
  free(dirs);
  snprintf(out, cap, "/usr/local/cuda/bin/ptxas");
  return access(out, X_OK) == 0 ? out : NULL;
}

/* ptxas status of `ptx` for `arch`; its output in `log`. */
static int ptxas_run(const char *ptxas, const char *ptx, const char *arch, char *log,
                     size_t cap) {
  char source[512], cubin[512], command[2048];
  path_in_work("test.ptx", source, sizeof source);
  path_in_work("test.cubin", cubin, sizeof cubin);
  write_text(source, ptx);
  snprintf(command, sizeof command, "'%s' -arch=%s -o '%s' '%s' 2>&1", ptxas, arch, cubin, source);
  return run_command(command, log, cap);
}

START_TEST(test_ptx_assembles) {
  char ptxas[512], log[2048];
  if (find_ptxas(ptxas, sizeof ptxas) == NULL) {
    printf("SKIP ptxas check of the test PTX: no ptxas on PATH or in /usr/local/cuda/bin "
           "(install the CUDA toolkit to check PTX without a GPU)\n");
    return;
  }
  static const char *const archs[] = {"sm_80", "sm_90"};
  for (int i = 0; i < 2; i++) {
    ck_assert_msg(ptxas_run(ptxas, kernels_ptx, archs[i], log, sizeof log) == 0,
                  "%s -arch=%s refused the kernels: %s", ptxas, archs[i], log);
    ck_assert_msg(ptxas_run(ptxas, broken_ptx, archs[i], log, sizeof log) != 0,
                  "%s -arch=%s accepted the broken PTX", ptxas, archs[i]);
    ck_assert_msg(strstr(log, "frobnicate") != NULL, "ptxas log: %s", log);
  }
}
END_TEST

/* The kernels as a cubin from the toolkit's ptxas, when the driver is at
 * least as new as the toolkit (a newer toolkit's cubin may not load). */
static void check_real_cubin(mfx_device *dev) {
  char ptxas[512], log[2048], version[256], cubin_path[512];
  const mfx_device_info *info = mfx_device_get_info(dev);
  int major = 0, minor = 0;
  if (find_ptxas(ptxas, sizeof ptxas) == NULL) {
    printf("SKIP real cubin load: no ptxas\n");
    return;
  }
  snprintf(log, sizeof log, "'%s' --version 2>&1", ptxas);
  const char *release = run_command(log, version, sizeof version) == 0
                            ? strstr(version, "release ") : NULL;
  if (release == NULL || sscanf(release, "release %d.%d", &major, &minor) != 2 ||
      major * 1000 + minor * 10 > info->driver_version) {
    printf("SKIP real cubin load: ptxas (%s) is newer than CUDA driver %d\n",
           release != NULL ? release : "unknown release", info->driver_version);
    return;
  }
  ck_assert_msg(ptxas_run(ptxas, kernels_ptx, info->arch, log, sizeof log) == 0,
                "ptxas -arch=%s: %s", info->arch, log);
  path_in_work("test.cubin", cubin_path, sizeof cubin_path);
  FILE *f = fopen(cubin_path, "rb");
  ck_assert_ptr_nonnull(f);
  static unsigned char image[1 << 20];
  size_t bytes = fread(image, 1, sizeof image, f);
  fclose(f);
  ck_assert_uint_gt(bytes, 4);
  mfx_module *mod = NULL;
  EXPECT_OK(mfx_module_load(dev, image, bytes, &mod));
  vector_add_args v;
  run_vector_add(dev, function(mod, "vector_add_f32"), 4099, &v);
  free_vector_add(&v);
  check_reverse_shared(dev, mod);
  mfx_module_free(mod);
}

START_TEST(test_real_cuda_device) {
  if (cuda_compiled_out()) return;
  mfx_device *dev = NULL;
  unsetenv("MFX_CUDA_LIBRARY");
  if (mfx_device_open("cuda", &dev) != MFX_OK) {
    printf("SKIP real CUDA device: %s\n", mfx_last_error());
    return;
  }
  printf("real CUDA device: %s\n", mfx_device_description(dev));
  check_cuda_device(dev);
  check_real_cubin(dev);
  EXPECT_OK(mfx_device_synchronize(dev));
  mfx_device_close(dev);
}
END_TEST

static Suite *device_suite(void) {
  Suite *s = suite_create("device");
  TCase *cpu = tcase_create("cpu");
  tcase_add_test(cpu, test_cpu_info);
  tcase_add_test(cpu, test_cpu_buffers);
  tcase_add_test(cpu, test_cpu_events);
  tcase_add_test(cpu, test_cpu_loads_no_modules);
  tcase_add_loop_test(cpu, test_device_bad_specs, 0, (int)(sizeof bad_specs / sizeof bad_specs[0]));
  tcase_add_test(cpu, test_device_bad_kind);
  suite_add_tcase(s, cpu);
  TCase *fake = tcase_create("cuda_fake");
  tcase_set_timeout(fake, 120);
  tcase_add_unchecked_fixture(fake, fake_setup, work_dir_teardown);
  tcase_add_test(fake, test_cuda_missing_driver);
  tcase_add_test(fake, test_cuda_missing_symbol);
  tcase_add_test(fake, test_cuda_no_device);
  tcase_add_test(fake, test_cuda_bad_ordinal);
  tcase_add_test(fake, test_cuda_fake_info);
  tcase_add_test(fake, test_cuda_fake_device);
  tcase_add_test(fake, test_cuda_fake_launch_arguments);
  tcase_add_test(fake, test_cuda_fake_jit_logs);
  tcase_add_test(fake, test_cuda_fake_moe_layer);
  tcase_add_test(fake, test_cuda_fake_ptx_length);
  tcase_add_test(fake, test_cuda_fake_cubin);
  tcase_add_test(fake, test_cuda_fake_async_error);
  tcase_add_test(fake, test_cuda_fake_threads_and_devices);
  suite_add_tcase(s, fake);
  TCase *real = tcase_create("cuda_real");
  tcase_set_timeout(real, 240);
  tcase_add_unchecked_fixture(real, work_dir_setup, work_dir_teardown);
  tcase_add_test(real, test_ptx_assembles);
  tcase_add_test(real, test_real_cuda_device);
  suite_add_tcase(s, real);
  return s;
}

int main(void) {
  return check_run_suite(device_suite());
}
