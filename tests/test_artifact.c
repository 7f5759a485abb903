/* Artifacts: the container format, the loader and the CPU and CUDA paths.
 *
 * - metadata of several kernels (CPU and GPU) survives encode/decode;
 * - every op, compiled into an artifact and loaded, equals its reference on
 *   several shapes, some not divisible by the tiles;
 * - a truncated, bit-flipped, re-checksummed-but-corrupted, foreign, newer
 *   or mismatched file is an error with a clear message, never a crash;
 * - wrong arrays at run time are refused; two artifacts run side by side
 *   from two threads; loading leaves no files behind;
 * - CUDA: without a driver loading says why; with the fake driver of
 *   tests/fake_cuda a GPU artifact loads, copies, launches and times (the
 *   fake computes vector_add_f32 on the host). */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfx/artifact.h"
#include "mfx/ops.h"
#include "mfx/reference.h"
#include "check_main.h"

/* ---- helpers ----------------------------------------------------------------------- */

/* Tests that change the environment put it back, so that the suite also
 * runs unforked (CK_FORK=no, e.g. under a debugger or LeakSanitizer). */
typedef struct {
  const char *name;
  char *value; /* NULL: was unset */
} saved_env;

static saved_env env_save(const char *name) {
  const char *v = getenv(name);
  return (saved_env){name, v != NULL ? strdup(v) : NULL};
}

static void env_restore(saved_env *e) {
  if (e->value != NULL) setenv(e->name, e->value, 1);
  else unsetenv(e->name);
  free(e->value);
}

static void ok(mfx_status st) { ck_assert_msg(st == MFX_OK, "%s", mfx_last_error()); }

static void assert_error(mfx_status got, mfx_status want, const char *needle) {
  ck_assert_msg(got == want, "status %s, expected %s (%s)", mfx_status_name(got),
                mfx_status_name(want), mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                mfx_last_error(), needle);
}

static void assert_failed(mfx_status got, const char *needle) {
  ck_assert_msg(got != MFX_OK, "succeeded; expected an error with \"%s\"", needle);
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                mfx_last_error(), needle);
}

/* Describe op under dims (default config) in k, as mfx compile does. */
static void describe(mfx_artifact_kernel *k, const mfx_op *op, const int64_t *dims,
                     const char *name, const char *target) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  snprintf(k->op, sizeof k->op, "%s", op->name);
  k->n_dims = op->n_dims;
  for (int d = 0; d < op->n_dims; d++) {
    snprintf(k->dim_names[d], sizeof k->dim_names[d], "%s", op->dims[d]);
    k->dims[d] = dims[d];
  }
  snprintf(k->target, sizeof k->target, "%s", target);
}

/* Build op under dims for the CPU into k. */
static mfx_status build_op(const char *op_name, const int64_t *dims, const char *name,
                           mfx_artifact_kernel *k) {
  const mfx_op *op = mfx_op_find(op_name);
  ck_assert_msg(op != NULL, "no op %s", op_name);
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  describe(k, op, dims, name, "cpu");
  mfx_config_to_json(&cfg, k->config, sizeof k->config);
  mfx_arena *arena = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_status st = op->build(arena, dims, &cfg, &s);
  if (st == MFX_OK) st = mfx_artifact_build(s, k);
  mfx_arena_destroy(arena);
  return st;
}

static void *encode(const mfx_artifact_kernel *kernels, int n, size_t *size) {
  void *data = NULL;
  ok(mfx_artifact_encode(kernels, n, &data, size));
  return data;
}

/* FNV-1a 64 of the image with its checksum field as zeros, written back:
 * an independent implementation of docs/artifact.md. */
static void reseal(unsigned char *image, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) h = (h ^ (i >= 24 && i < 32 ? 0 : image[i])) * 0x100000001b3ull;
  for (int i = 0; i < 8; i++) image[24 + i] = (unsigned char)(h >> (8 * i));
}

/* A GPU kernel by hand: c = a + b over n floats, through the PTX entry
 * vector_add_f32(a, b, c, n) that the fake driver computes; its fourth
 * parameter is a workspace buffer (the fake reads it as a large n). */
static const char vadd_ptx[] =
    ".version 7.0\n.target sm_80\n.address_size 64\n"
    ".visible .entry vector_add_f32(.param .u64 a, .param .u64 b, .param .u64 c, "
    ".param .u64 n)\n{\n\tret;\n}\n";

static void add_arg(mfx_artifact_kernel *k, const char *name, mfx_dtype t, mfx_arg_role role,
                    int64_t n) {
  mfx_artifact_arg *a = &k->args[k->n_args++];
  snprintf(a->name, sizeof a->name, "%s", name);
  a->dtype = t;
  a->role = role;
  a->ndim = 1;
  a->shape[0] = n;
}

static void cuda_vadd_kernel(mfx_artifact_kernel *k, const char *name, int64_t n,
                             const char *target) {
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", name);
  snprintf(k->op, sizeof k->op, "vadd");
  k->n_dims = 1;
  snprintf(k->dim_names[0], sizeof k->dim_names[0], "N");
  k->dims[0] = n;
  snprintf(k->target, sizeof k->target, "%s", target);
  snprintf(k->compiler, sizeof k->compiler, "by hand");
  snprintf(k->config, sizeof k->config, "{}");
  add_arg(k, "a", MFX_F32, MFX_ARG_INPUT, n);
  add_arg(k, "b", MFX_F32, MFX_ARG_INPUT, n);
  add_arg(k, "c", MFX_F32, MFX_ARG_OUTPUT, n);
  add_arg(k, "scratch", MFX_U8, MFX_ARG_WORKSPACE, 64);
  k->n_launches = 1;
  mfx_artifact_launch *l = &k->launches[0];
  snprintf(l->name, sizeof l->name, "vector_add_f32");
  l->grid[0] = (uint32_t)(n / 32);
  l->block[0] = 32;
  l->grid[1] = l->grid[2] = l->block[1] = l->block[2] = 1;
  l->n_args = 4;
  for (int i = 0; i < 4; i++) l->args[i] = i;
  k->gpu_image_kind = MFX_GPU_IMAGE_PTX;
  k->gpu_image = vadd_ptx;
  k->gpu_image_bytes = strlen(vadd_ptx);
}

static void free_arrays(mfx_array *a, int n) {
  for (int i = 0; i < n; i++) mfx_array_free(&a[i]);
}

/* ---- shared artifacts, built once before the tests fork ------------------------------ */

static const int64_t linear_dims[] = {13, 21, 9};
static const int64_t hamming_dims[] = {7, 11, 3};
static mfx_artifact_kernel shared_kernels[2];
static unsigned char *shared_image;
static size_t shared_size;
static char shared_error[1024];

static void shared_setup(void) {
  mfx_status st = build_op("linear", linear_dims, "linear", &shared_kernels[0]);
  if (st == MFX_OK) st = build_op("hamming", hamming_dims, "hamming", &shared_kernels[1]);
  if (st == MFX_OK) st = mfx_artifact_encode(shared_kernels, 2, (void **)&shared_image, &shared_size);
  if (st != MFX_OK) snprintf(shared_error, sizeof shared_error, "%s", mfx_last_error());
}

static void shared_teardown(void) {
  mfx_artifact_kernel_release(&shared_kernels[0]);
  mfx_artifact_kernel_release(&shared_kernels[1]);
  free(shared_image);
}

static unsigned char *shared_copy(void) {
  ck_assert_msg(shared_image != NULL, "building the shared artifact failed: %s", shared_error);
  unsigned char *copy = malloc(shared_size);
  memcpy(copy, shared_image, shared_size);
  return copy;
}

/* Decode must fail; returns the status. */
static mfx_status decode_status(const unsigned char *data, size_t size) {
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  mfx_status st = mfx_artifact_decode(data, size, "k.mfxa", &kernels, &n);
  if (st == MFX_OK) free(kernels);
  return st;
}

/* ---- metadata round trip ------------------------------------------------------------- */

static void assert_same_kernel(const mfx_artifact_kernel *got, const mfx_artifact_kernel *want) {
  ck_assert_str_eq(got->name, want->name);
  ck_assert_str_eq(got->op, want->op);
  ck_assert_str_eq(got->target, want->target);
  ck_assert_str_eq(got->machine, want->machine);
  ck_assert_str_eq(got->cpu_features, want->cpu_features);
  ck_assert_str_eq(got->compiler, want->compiler);
  ck_assert_str_eq(got->symbol, want->symbol);
  ck_assert_str_eq(got->config, want->config);
  ck_assert_int_eq(got->n_dims, want->n_dims);
  for (int d = 0; d < want->n_dims; d++) {
    ck_assert_str_eq(got->dim_names[d], want->dim_names[d]);
    ck_assert_int_eq(got->dims[d], want->dims[d]);
  }
  ck_assert_int_eq(got->n_args, want->n_args);
  ck_assert_mem_eq(got->args, want->args, sizeof(mfx_artifact_arg) * (size_t)want->n_args);
  ck_assert_int_eq(got->n_launches, want->n_launches);
  ck_assert_mem_eq(got->launches, want->launches,
                   sizeof(mfx_artifact_launch) * (size_t)want->n_launches);
  ck_assert_uint_eq(got->host_so_bytes, want->host_so_bytes);
  if (want->host_so_bytes > 0) ck_assert_mem_eq(got->host_so, want->host_so, want->host_so_bytes);
  ck_assert_int_eq(got->gpu_image_kind, want->gpu_image_kind);
  ck_assert_uint_eq(got->gpu_image_bytes, want->gpu_image_bytes);
  if (want->gpu_image_bytes > 0)
    ck_assert_mem_eq(got->gpu_image, want->gpu_image, want->gpu_image_bytes);
}

START_TEST(metadata_round_trip) {
  mfx_artifact_kernel in[4];
  ck_assert_msg(shared_image != NULL, "%s", shared_error);
  in[0] = shared_kernels[0];
  in[1] = shared_kernels[1];
  cuda_vadd_kernel(&in[2], "vadd", 96, "cuda:sm_80");
  cuda_vadd_kernel(&in[3], "vadd_twice", 64, "cuda:sm_90a");
  in[3].n_launches = 2;
  in[3].launches[1] = in[3].launches[0];
  in[3].launches[1].shared_static = 4096;
  in[3].launches[1].shared_dynamic = 128;
  in[3].launches[1].grid[2] = 3;
  in[3].gpu_image_kind = MFX_GPU_IMAGE_CUBIN;
  size_t size = 0;
  void *image = encode(in, 4, &size);
  mfx_artifact_kernel *out = NULL;
  int n = 0;
  ok(mfx_artifact_decode(image, size, "round.mfxa", &out, &n));
  ck_assert_int_eq(n, 4);
  for (int i = 0; i < 4; i++) assert_same_kernel(&out[i], &in[i]);
  ck_assert_str_eq(out[0].machine, mfx_artifact_host_machine());
  ck_assert_msg(strncmp(out[0].compiler, "mfx ", 4) == 0 && strstr(out[0].compiler, "LLVM"),
                "compiler \"%s\"", out[0].compiler);
  ck_assert_int_eq(mfx_artifact_role_count(&out[2], MFX_ARG_INPUT), 2);
  ck_assert_int_eq(mfx_artifact_role_count(&out[2], MFX_ARG_WORKSPACE), 1);
  ck_assert_int_eq(mfx_artifact_role_first(&out[2], MFX_ARG_OUTPUT), 2);
  ck_assert_uint_eq(mfx_artifact_arg_bytes(&out[2].args[0]), 96 * 4);
  /* The same kernels encode to the same bytes. */
  size_t again_size = 0;
  void *again = encode(out, n, &again_size);
  ck_assert_uint_eq(again_size, size);
  ck_assert_mem_eq(again, image, size);
  free(again);
  free(out);
  free(image);
}
END_TEST

/* ---- every op on the CPU ----------------------------------------------------------- */

typedef struct {
  const char *op;
  int64_t dims[5];
} op_case;

static const op_case op_cases[] = {
    {"linear", {64, 32, 16}},           {"linear", {37, 29, 19}},
    {"shift_linear", {16, 32, 8}},      {"shift_linear", {9, 33, 7}},
    {"matadd", {1, 2, 16, 16, 4}},      {"matadd", {2, 1, 17, 9, 5}},
    {"hamming", {8, 16, 2}},            {"hamming", {13, 17, 3}},
    {"binary_attention", {1, 2, 8, 16, 4}}, {"binary_attention", {2, 1, 11, 7, 6}},
    {"gather_rows", {5, 7, 13}},        {"gather_rows", {16, 32, 64}},
    {"combine_rows", {9, 6, 2, 19}},    {"combine_rows", {9, 6, 3, 19}},
    {"combine_rows", {9, 6, 1, 16}},
};

START_TEST(every_op_equals_reference) {
  const op_case *c = &op_cases[_i];
  const mfx_op *op = mfx_op_find(c->op);
  mfx_artifact_kernel k;
  ok(build_op(c->op, c->dims, "k", &k));
  size_t size = 0;
  void *image = encode(&k, 1, &size);
  mfx_artifact_kernel_release(&k);
  mfx_artifact *art = NULL;
  mfx_artifact_options options = {"cpu", 2};
  ok(mfx_artifact_load_memory(image, size, "ops.mfxa", &options, &art));
  free(image); /* the artifact holds its own copy */
  ck_assert_str_eq(mfx_artifact_device(art), "cpu");
  mfx_array in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  ok(mfx_op_alloc_inputs(op, c->dims, in));
  ok(mfx_op_alloc_outputs(op, c->dims, out));
  ok(mfx_op_alloc_outputs(op, c->dims, want));
  mfx_op_random_inputs(op, c->dims, 7, in);
  ok(mfx_artifact_run(art, 0, op->n_inputs, in, op->n_outputs, out));
  op->reference(c->dims, in, want);
  for (int i = 0; i < op->n_outputs; i++) {
    mfx_compare cmp = mfx_compare_arrays(&out[i], &want[i], 1e-4);
    ck_assert_msg(cmp.ok, "%s case %d: output %d differs (max_rel_err %g at %lld)", c->op, _i,
                  i, cmp.max_rel_err, (long long)cmp.worst_index);
  }
  double median = -1.0;
  ok(mfx_artifact_time(art, 0, op->n_inputs, in, op->n_outputs, out, 3, &median));
  ck_assert_msg(median >= 0.0, "median %g", median);
  free_arrays(in, op->n_inputs);
  free_arrays(out, op->n_outputs);
  free_arrays(want, op->n_outputs);
  mfx_artifact_free(art);
}
END_TEST

/* ---- damaged files --------------------------------------------------------------------- */

START_TEST(truncated_at_many_offsets) {
  unsigned char *image = shared_copy();
  for (size_t len = 0; len < shared_size; len += len < 2048 ? 1 : 61) {
    unsigned char *cut = malloc(len > 0 ? len : 1);
    memcpy(cut, image, len);
    mfx_status st = decode_status(cut, len);
    ck_assert_msg(st == MFX_ERR_FORMAT, "truncated to %zu of %zu bytes: %s (%s)", len,
                  shared_size, mfx_status_name(st), mfx_last_error());
    if (len >= 64)
      ck_assert_msg(strstr(mfx_last_error(), "truncated") != NULL, "at %zu: %s", len,
                    mfx_last_error());
    if (len % 997 == 0) {
      mfx_artifact *art = NULL;
      ck_assert_int_ne(mfx_artifact_load_memory(cut, len, "cut.mfxa", NULL, &art), MFX_OK);
      ck_assert_ptr_null(art);
    }
    free(cut);
  }
  ck_assert_int_eq(decode_status(image, shared_size - 1), MFX_ERR_FORMAT);
  free(image);
}
END_TEST

START_TEST(flipped_bytes_at_many_offsets) {
  unsigned char *image = shared_copy();
  static const unsigned char masks[] = {0x01, 0x80, 0xff};
  for (size_t at = 0; at < shared_size; at += at < 4096 ? 1 : 7) {
    unsigned char mask = masks[at % 3];
    image[at] ^= mask;
    mfx_status st = decode_status(image, shared_size);
    ck_assert_msg(st == MFX_ERR_FORMAT, "byte %zu flipped by 0x%02x: %s", at, mask,
                  mfx_status_name(st));
    const char *want = at < 8    ? "not an mfx artifact"
                       : at >= 16 && at < 24 ? "checksum mismatch: file truncated or modified?"
                                             : "checksum mismatch (file truncated or modified?)";
    ck_assert_msg(strstr(mfx_last_error(), want) != NULL, "byte %zu: \"%s\" lacks \"%s\"", at,
                  mfx_last_error(), want);
    image[at] ^= mask;
  }
  ck_assert_int_eq(decode_status(image, shared_size), MFX_OK);
  free(image);
}
END_TEST

/* Where the first kernel's code starts: before it lie the header, the
 * table and the first kernel's records. */
static size_t first_code_offset(const unsigned char *image) {
  mfx_artifact_kernel *kernels = NULL;
  int n = 0;
  ok(mfx_artifact_decode(image, shared_size, "k.mfxa", &kernels, &n));
  size_t at = (size_t)((const unsigned char *)kernels[0].host_so - image);
  free(kernels);
  return at;
}

/* With a valid checksum, every field is still checked: flip each byte of
 * the header, the table and the records, and random bytes among them. The
 * decoder either refuses the file or returns kernels that validate. (The
 * code itself is trusted once the checksum holds: a shared object altered
 * on purpose and resealed is as dangerous as any other library.) */
START_TEST(corrupted_but_resealed) {
  unsigned char *image = shared_copy();
  size_t records = first_code_offset(image);
  int refused = 0, tried = 0;
  for (size_t at = 0; at < records && at < shared_size; at++) {
    if (at >= 24 && at < 32) continue; /* the checksum itself */
    for (int bit = 0; bit < 8; bit += 3) {
      image[at] ^= (unsigned char)(1u << bit);
      reseal(image, shared_size);
      mfx_artifact_kernel *kernels = NULL;
      int n = 0;
      mfx_status st = mfx_artifact_decode(image, shared_size, "k.mfxa", &kernels, &n);
      tried++;
      if (st != MFX_OK) refused++;
      for (int i = 0; st == MFX_OK && i < n; i++) ok(mfx_artifact_kernel_validate(&kernels[i], "x"));
      free(kernels);
      image[at] ^= (unsigned char)(1u << bit);
    }
  }
  reseal(image, shared_size);
  ck_assert_int_eq(decode_status(image, shared_size), MFX_OK);
  ck_assert_msg(refused > tried / 2, "only %d of %d corruptions refused", refused, tried);
  uint64_t rng = 12345;
  for (int round = 0; round < 3000; round++) {
    unsigned char *copy = shared_copy();
    for (int j = 0; j < 4; j++) {
      size_t at = 32 + mfx_rng_next(&rng) % (records - 32);
      copy[at] = (unsigned char)mfx_rng_next(&rng);
    }
    reseal(copy, shared_size);
    mfx_artifact *art = NULL;
    if (mfx_artifact_load_memory(copy, shared_size, "k.mfxa", NULL, &art) == MFX_OK)
      mfx_artifact_free(art);
    free(copy);
  }
  free(image);
}
END_TEST

START_TEST(foreign_files) {
  static const char text[] = "hello, this is not an artifact\n";
  assert_error(decode_status((const unsigned char *)text, sizeof text), MFX_ERR_FORMAT,
               "artifact k.mfxa: not an mfx artifact");
  static const unsigned char npy[] = "\x93NUMPY\x01\x00{'descr': '<f4'}";
  assert_error(decode_status(npy, sizeof npy), MFX_ERR_FORMAT, "not an mfx artifact");
  assert_error(decode_status(npy, 0), MFX_ERR_FORMAT, "empty");
  static const unsigned char magic_only[] = {0x89, 'M', 'F', 'X', '\r', '\n', 0x1a};
  assert_error(decode_status(magic_only, sizeof magic_only), MFX_ERR_FORMAT, "truncated");
  /* An ELF file: this test program. */
  void *self = NULL;
  size_t size = 0;
  ok(mfx_artifact_read_file("/proc/self/exe", &self, &size));
  assert_error(decode_status(self, size), MFX_ERR_FORMAT, "not an mfx artifact");
  free(self);
  uint64_t rng = 99;
  unsigned char noise[1000];
  for (size_t i = 0; i < sizeof noise; i++) noise[i] = (unsigned char)mfx_rng_next(&rng);
  assert_error(decode_status(noise, sizeof noise), MFX_ERR_FORMAT, "not an mfx artifact");
}
END_TEST

START_TEST(newer_format_version) {
  unsigned char *image = shared_copy();
  image[8] = 2;
  reseal(image, shared_size);
  assert_error(decode_status(image, shared_size), MFX_ERR_FORMAT,
               "format version 2; this runtime reads version 1");
  free(image);
}
END_TEST

/* ---- targets --------------------------------------------------------------------------- */

static mfx_status load_kernel_on(const mfx_artifact_kernel *k, const char *device) {
  size_t size = 0;
  void *image = encode(k, 1, &size);
  mfx_artifact *art = NULL;
  mfx_artifact_options options = {device, 1};
  mfx_status st = mfx_artifact_load_memory(image, size, "t.mfxa", &options, &art);
  free(image);
  if (st == MFX_OK) mfx_artifact_free(art);
  else ck_assert_ptr_null(art);
  return st;
}

START_TEST(wrong_targets) {
  ck_assert_msg(shared_image != NULL, "%s", shared_error);
  mfx_artifact_kernel k = shared_kernels[0];
  assert_error(load_kernel_on(&k, "cuda"), MFX_ERR_DEVICE,
               "kernel linear targets cpu and cannot run on device cuda");
  assert_error(load_kernel_on(&k, "tpu:0"), MFX_ERR_DEVICE, "cannot run on device tpu:0");
  snprintf(k.machine, sizeof k.machine, "%s",
           strcmp(mfx_artifact_host_machine(), "aarch64") == 0 ? "x86_64" : "aarch64");
  assert_error(load_kernel_on(&k, "cpu"), MFX_ERR_DEVICE, "was compiled for");
  k = shared_kernels[0];
  snprintf(k.cpu_features, sizeof k.cpu_features, "amx-tile");
  assert_error(load_kernel_on(&k, "cpu"), MFX_ERR_DEVICE,
               "needs CPU feature amx-tile, which this runtime cannot check");
  k = shared_kernels[0];
  k.host_so = vadd_ptx;
  k.host_so_bytes = sizeof vadd_ptx;
  assert_error(load_kernel_on(&k, "cpu"), MFX_ERR_FORMAT,
               "kernel linear: the host code is not an ELF file");
  static const char *const x86[] = {"avx512f", "avx512vnni", "avx2", "fma", "bmi2"};
  for (size_t i = 0; i < sizeof x86 / sizeof x86[0]; i++) {
    if (mfx_artifact_cpu_feature(x86[i]) != 0) continue; /* only one this CPU lacks */
    snprintf(k.cpu_features, sizeof k.cpu_features, "%s", x86[i]);
    assert_error(load_kernel_on(&k, "cpu"), MFX_ERR_DEVICE, "which this CPU lacks");
  }
  mfx_artifact_kernel g;
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80");
  assert_error(load_kernel_on(&g, "cpu"), MFX_ERR_DEVICE,
               "kernel vadd targets cuda:sm_80 and cannot run on device cpu");
}
END_TEST

START_TEST(cuda_without_driver) {
  saved_env library = env_save("MFX_CUDA_LIBRARY");
  setenv("MFX_CUDA_LIBRARY", "/nonexistent/mfx/libcuda.so.1", 1);
  mfx_artifact_kernel g;
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80");
  mfx_status st = load_kernel_on(&g, NULL); /* the target picks the device: cuda */
  ck_assert_int_eq(st, MFX_ERR_DEVICE);
  const char *why = mfx_last_error();
  ck_assert_msg(strstr(why, "artifact t.mfxa: opening device cuda") != NULL &&
                    (strstr(why, "no CUDA driver found (/nonexistent/mfx/libcuda.so.1)") ||
                     strstr(why, "built without CUDA headers")),
                "message: %s", why);
  env_restore(&library);
}
END_TEST

/* ---- runs ------------------------------------------------------------------------------ */

static mfx_artifact *load_shared(void) {
  unsigned char *image = shared_copy();
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load_memory(image, shared_size, "shared.mfxa", NULL, &art));
  free(image);
  return art;
}

START_TEST(wrong_arrays_at_run_time) {
  mfx_artifact *art = load_shared();
  const mfx_artifact_kernel *k = mfx_artifact_kernel_at(art, 0);
  mfx_array in[2], out[1];
  ok(mfx_artifact_alloc_arrays(k, MFX_ARG_INPUT, in));
  ok(mfx_artifact_alloc_arrays(k, MFX_ARG_OUTPUT, out));
  ok(mfx_artifact_run(art, 0, 2, in, 1, out));
  assert_error(mfx_artifact_run(art, 0, 1, in, 1, out), MFX_ERR_INVALID,
               "kernel linear takes 2 inputs and 1 outputs, got 1 and 1");
  assert_error(mfx_artifact_run(art, 0, 2, in, 2, out), MFX_ERR_INVALID, "got 2 and 2");
  assert_error(mfx_artifact_run(art, 0, 2, NULL, 1, out), MFX_ERR_INVALID, "takes 2 inputs");
  assert_error(mfx_artifact_run(art, 2, 2, in, 1, out), MFX_ERR_INVALID, "kernel index 2");
  assert_error(mfx_artifact_run(art, -1, 2, in, 1, out), MFX_ERR_INVALID, "expected 0..1");
  in[1].shape[0] += 1;
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, out), MFX_ERR_INVALID,
               "kernel linear: input W is f32 [22,9], expected f32 [21,9]");
  in[1].shape[0] -= 1;
  in[0].dtype = MFX_I32;
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, out), MFX_ERR_INVALID,
               "input X is i32 [13,9], expected f32 [13,9]");
  in[0].dtype = MFX_F32;
  out[0].ndim = 1;
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, out), MFX_ERR_INVALID,
               "output Y is f32 [13], expected f32 [13,21]");
  out[0].ndim = 99;
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, out), MFX_ERR_INVALID, "output Y");
  out[0].ndim = 2;
  void *saved = in[0].data;
  in[0].data = NULL;
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, out), MFX_ERR_INVALID, "input X has no data");
  in[0].data = saved;
  double median;
  assert_error(mfx_artifact_time(art, 0, 2, in, 1, out, 0, &median), MFX_ERR_INVALID,
               "repeat=0");
  assert_error(mfx_artifact_run(NULL, 0, 2, in, 1, out), MFX_ERR_INVALID, "NULL artifact");
  ok(mfx_artifact_run(art, 0, 2, in, 1, out));
  free_arrays(in, 2);
  free_arrays(out, 1);
  mfx_artifact_free(art);
}
END_TEST

/* A thread runs one kernel of its own artifact many times against the reference. */
typedef struct {
  mfx_artifact *art;
  const char *op;
  const int64_t *dims;
  int failures;
  char message[512];
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  const mfx_op *op = mfx_op_find(w->op);
  int index = -1;
  if (mfx_artifact_find_kernel(w->art, w->op, &index) != MFX_OK) {
    snprintf(w->message, sizeof w->message, "%s", mfx_last_error());
    w->failures++;
    return NULL;
  }
  mfx_array in[MFX_OP_MAX_TENSORS], out[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  mfx_op_alloc_inputs(op, w->dims, in);
  mfx_op_alloc_outputs(op, w->dims, out);
  mfx_op_alloc_outputs(op, w->dims, want);
  for (int round = 0; round < 40; round++) {
    mfx_op_random_inputs(op, w->dims, (uint64_t)round, in);
    op->reference(w->dims, in, want);
    if (mfx_artifact_run(w->art, index, op->n_inputs, in, op->n_outputs, out) != MFX_OK) {
      snprintf(w->message, sizeof w->message, "%s", mfx_last_error());
      w->failures++;
    } else if (!mfx_compare_arrays(&out[0], &want[0], 1e-4).ok) {
      snprintf(w->message, sizeof w->message, "%s round %d differs", w->op, round);
      w->failures++;
    }
  }
  free_arrays(in, op->n_inputs);
  free_arrays(out, op->n_outputs);
  free_arrays(want, op->n_outputs);
  return NULL;
}

START_TEST(two_artifacts_two_threads) {
  mfx_artifact *a = load_shared(), *b = load_shared();
  worker w[4] = {{a, "linear", linear_dims, 0, ""},
                 {b, "hamming", hamming_dims, 0, ""},
                 {b, "linear", linear_dims, 0, ""}, /* b shared by two threads */
                 {a, "hamming", hamming_dims, 0, ""}};
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_main, &w[i]), 0);
  for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < 4; i++)
    ck_assert_msg(w[i].failures == 0, "thread %d: %d failures: %s", i, w[i].failures,
                  w[i].message);
  mfx_artifact_free(a);
  mfx_artifact_free(b);
}
END_TEST

START_TEST(find_kernels) {
  ck_assert_msg(shared_image != NULL, "%s", shared_error);
  mfx_artifact_kernel ks[3] = {shared_kernels[0], shared_kernels[0], shared_kernels[1]};
  snprintf(ks[0].name, sizeof ks[0].name, "lin_a");
  snprintf(ks[1].name, sizeof ks[1].name, "lin_b");
  size_t size = 0;
  void *image = encode(ks, 3, &size);
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load_memory(image, size, "three.mfxa", NULL, &art));
  free(image);
  ck_assert_int_eq(mfx_artifact_kernel_count(art), 3);
  ck_assert_str_eq(mfx_artifact_label(art), "three.mfxa");
  int index = -1;
  ok(mfx_artifact_find_kernel(art, "lin_b", &index));
  ck_assert_int_eq(index, 1);
  ok(mfx_artifact_find_kernel(art, "hamming", &index));
  ck_assert_int_eq(index, 2);
  ok(mfx_artifact_find_kernel(art, "0", &index));
  ck_assert_int_eq(index, 0);
  assert_error(mfx_artifact_find_kernel(art, "linear", &index), MFX_ERR_NOT_FOUND,
               "2 kernels compute op linear; name one: 0:lin_a (linear), 1:lin_b (linear)");
  assert_error(mfx_artifact_find_kernel(art, "3", &index), MFX_ERR_NOT_FOUND, "no kernel \"3\"");
  assert_error(mfx_artifact_find_kernel(art, "", &index), MFX_ERR_NOT_FOUND, "2:hamming");
  ck_assert_ptr_null(mfx_artifact_kernel_at(art, 3));
  ck_assert_ptr_null(mfx_artifact_kernel_at(art, -1));
  ck_assert_str_eq(mfx_artifact_kernel_at(art, 2)->op, "hamming");
  mfx_artifact_free(art);
}
END_TEST

/* ---- encoding bad descriptions ------------------------------------------------------------ */

typedef void (*kernel_edit)(mfx_artifact_kernel *k);
static void bad_name(mfx_artifact_kernel *k) { snprintf(k->name, sizeof k->name, "a-b"); }
static void empty_op(mfx_artifact_kernel *k) { k->op[0] = '\0'; }
static void unterminated_config(mfx_artifact_kernel *k) { memset(k->config, 'x', sizeof k->config); }
static void no_output(mfx_artifact_kernel *k) { k->n_args = 2; }
static void input_after_output(mfx_artifact_kernel *k) { k->args[2].role = MFX_ARG_INPUT; k->args[1].role = MFX_ARG_OUTPUT; }
static void zero_dim(mfx_artifact_kernel *k) { k->dims[1] = 0; }
static void zero_shape(mfx_artifact_kernel *k) { k->args[0].shape[1] = 0; }
static void bad_dtype(mfx_artifact_kernel *k) { k->args[0].dtype = MFX_DTYPE_COUNT; }
static void twin_args(mfx_artifact_kernel *k) { snprintf(k->args[1].name, sizeof k->args[1].name, "X"); }
static void no_code(mfx_artifact_kernel *k) { k->host_so = NULL; }
static void cpu_launches(mfx_artifact_kernel *k) { k->n_launches = 1; }
static void bad_target(mfx_artifact_kernel *k) { snprintf(k->target, sizeof k->target, "cuda:80"); }
static void cpu_workspace(mfx_artifact_kernel *k) { k->args[2].role = MFX_ARG_WORKSPACE; k->args[1].role = MFX_ARG_OUTPUT; }

static const struct {
  kernel_edit edit;
  const char *message;
} cpu_edits[] = {
    {bad_name, "the kernel name must be"}, {empty_op, "the op name must be"},
    {unterminated_config, "configuration is not printable"}, {no_output, "no output argument"},
    {input_after_output, "out of order"}, {zero_dim, "dim N=0 must be positive"},
    {zero_shape, "shape[1]=0"}, {bad_dtype, "unknown dtype"}, {twin_args, "appears twice"},
    {no_code, "no host shared object"}, {cpu_launches, "GPU code or launches"},
    {bad_target, "neither cpu nor cuda:sm_NN"}, {cpu_workspace, "workspace arguments"},
};

START_TEST(encode_refuses_bad_cpu_kernels) {
  ck_assert_msg(shared_image != NULL, "%s", shared_error);
  mfx_artifact_kernel k = shared_kernels[0];
  cpu_edits[_i].edit(&k);
  void *data = NULL;
  size_t size = 0;
  assert_failed(mfx_artifact_encode(&k, 1, &data, &size), cpu_edits[_i].message);
  ck_assert_ptr_null(data);
}
END_TEST

static void gpu_no_launch(mfx_artifact_kernel *k) { k->n_launches = 0; }
static void gpu_bad_param(mfx_artifact_kernel *k) { k->launches[0].args[3] = 4; }
static void gpu_big_block(mfx_artifact_kernel *k) { k->launches[0].block[1] = 64; }
static void gpu_zero_grid(mfx_artifact_kernel *k) { k->launches[0].grid[2] = 0; }
static void gpu_no_image(mfx_artifact_kernel *k) { k->gpu_image_kind = MFX_GPU_IMAGE_NONE; }
static void gpu_with_so(mfx_artifact_kernel *k) { k->host_so = vadd_ptx; k->host_so_bytes = 4; }
static void gpu_bad_sm(mfx_artifact_kernel *k) { snprintf(k->target, sizeof k->target, "cuda:sm_8"); }

static const struct {
  kernel_edit edit;
  const char *message;
} gpu_edits[] = {
    {gpu_no_launch, "0 launches"}, {gpu_bad_param, "parameter 3 names argument 4 of 4"},
    {gpu_big_block, "2048 threads per block"}, {gpu_zero_grid, "zero or too large"},
    {gpu_no_image, "no PTX or cubin"}, {gpu_with_so, "host shared object"},
    {gpu_bad_sm, "neither cpu nor cuda:sm_NN"},
};

START_TEST(encode_refuses_bad_gpu_kernels) {
  mfx_artifact_kernel k;
  cuda_vadd_kernel(&k, "vadd", 96, "cuda:sm_80");
  gpu_edits[_i].edit(&k);
  void *data = NULL;
  size_t size = 0;
  assert_failed(mfx_artifact_encode(&k, 1, &data, &size), gpu_edits[_i].message);
}
END_TEST

START_TEST(encode_refuses_bad_lists) {
  mfx_artifact_kernel k[2];
  cuda_vadd_kernel(&k[0], "vadd", 96, "cuda:sm_80");
  cuda_vadd_kernel(&k[1], "vadd", 64, "cuda:sm_80");
  void *data = NULL;
  size_t size = 0;
  assert_error(mfx_artifact_encode(k, 2, &data, &size), MFX_ERR_INVALID,
               "two kernels are named vadd");
  assert_error(mfx_artifact_encode(k, 0, &data, &size), MFX_ERR_INVALID, "0 kernels");
  assert_error(mfx_artifact_encode(NULL, 1, &data, &size), MFX_ERR_INVALID, "expected 1..256");
  assert_error(mfx_artifact_encode(k, 1, NULL, &size), MFX_ERR_INVALID, "NULL output");
}
END_TEST

/* ---- files -------------------------------------------------------------------------------- */

static char temp_dir[256];

static void temp_dir_create(void) {
  snprintf(temp_dir, sizeof temp_dir, "%s/mfx_test_artifact_XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(temp_dir));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void temp_dir_remove(void) { nftw(temp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int entries_in(const char *dir) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

START_TEST(files) {
  temp_dir_create();
  char path[512];
  snprintf(path, sizeof path, "%s/k.mfxa", temp_dir);
  unsigned char *image = shared_copy();
  ok(mfx_artifact_write_file(path, image, shared_size));
  ck_assert_int_eq(entries_in(temp_dir), 1); /* no temporary left beside it */
  struct stat sb;
  ck_assert_int_eq(stat(path, &sb), 0);
  ck_assert_int_eq(sb.st_mode & 0777, 0644);
  void *back = NULL;
  size_t size = 0;
  ok(mfx_artifact_read_file(path, &back, &size));
  ck_assert_uint_eq(size, shared_size);
  ck_assert_mem_eq(back, image, size);
  free(back);
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load(path, NULL, &art));
  ck_assert_str_eq(mfx_artifact_label(art), path);
  mfx_artifact_free(art);
  char missing[600];
  snprintf(missing, sizeof missing, "%s/missing.mfxa", temp_dir);
  assert_error(mfx_artifact_load(missing, NULL, &art), MFX_ERR_IO, "cannot open: No such file");
  ck_assert_ptr_null(art);
  assert_error(mfx_artifact_read_file(temp_dir, &back, &size), MFX_ERR_IO, "not a regular file");
  snprintf(missing, sizeof missing, "%s/no/such/dir/k.mfxa", temp_dir);
  assert_error(mfx_artifact_write_file(missing, image, shared_size), MFX_ERR_IO,
               "cannot create a file beside it");
  /* A corrupt file on disk names its path. */
  image[shared_size / 2] ^= 0x10;
  ok(mfx_artifact_write_file(path, image, shared_size));
  assert_error(mfx_artifact_load(path, NULL, &art), MFX_ERR_FORMAT, "k.mfxa: checksum mismatch");
  free(image);
  temp_dir_remove();
}
END_TEST

/* Building links in $TMPDIR and cleans up; loading writes no files at all. */
START_TEST(no_files_left_behind) {
  temp_dir_create();
  saved_env tmpdir = env_save("TMPDIR");
  setenv("TMPDIR", temp_dir, 1);
  mfx_artifact_kernel k;
  ok(build_op("hamming", hamming_dims, "h", &k));
  ck_assert_int_eq(entries_in(temp_dir), 0);
  size_t size = 0;
  void *image = encode(&k, 1, &size);
  mfx_artifact_kernel_release(&k);
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load_memory(image, size, "h.mfxa", NULL, &art));
  ck_assert_int_eq(entries_in(temp_dir), 0);
  mfx_artifact_free(art);
  free(image);
  env_restore(&tmpdir);
  temp_dir_remove();
}
END_TEST

START_TEST(build_errors) {
  mfx_artifact_kernel k;
  saved_env cc = env_save("CC");
  setenv("CC", "/nonexistent/mfx/cc", 1);
  assert_error(build_op("hamming", hamming_dims, "h", &k), MFX_ERR_CODEGEN,
               "'/nonexistent/mfx/cc' was not found (install gcc or clang, or set CC");
  ck_assert_ptr_null(k.host_so);
  setenv("CC", "false", 1);
  assert_error(build_op("hamming", hamming_dims, "h", &k), MFX_ERR_CODEGEN,
               "'false -shared' exited with status 1");
  env_restore(&cc);
  const mfx_op *op = mfx_op_find("hamming");
  mfx_arena *arena = mfx_arena_create();
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  mfx_schedule *s = NULL;
  ok(op->build(arena, hamming_dims, &cfg, &s));
  describe(&k, op, hamming_dims, "h", "tpu");
  assert_error(mfx_artifact_build(s, &k), MFX_ERR_INVALID, "target \"tpu\": expected cpu or");
  describe(&k, op, hamming_dims, "h", "cuda:sm_99");
  assert_failed(mfx_artifact_build(s, &k), "building kernel h (hamming) for cuda:sm_99");
  ck_assert_ptr_null(k.gpu_image);
  /* A loop run on the CPU thread pool has no meaning on a GPU. */
  int64_t n = 64;
  mfx_tensor *X = mfx_placeholder(arena, "X", MFX_F32, 1, &n);
  mfx_tensor *Y = mfx_compute_begin(arena, "Y", MFX_F32, 1, &n, (const char *[]){"i"});
  mfx_expr *i = mfx_var_ref(arena, Y->axes[0]);
  ok(mfx_compute_set_body(arena, Y, mfx_add(arena, mfx_tensor_load(arena, X, 1, &i),
                                            mfx_f32(arena, 1))));
  ok(mfx_sched_create(arena, 1, &X, 1, &Y, &s));
  mfx_stage *st = mfx_sched_stage(s, Y);
  ok(mfx_sched_parallel(s, st, mfx_sched_itervar(st, "i")));
  describe(&k, op, hamming_dims, "cpu_loops", "cuda:sm_80");
  assert_failed(mfx_artifact_build(s, &k), "building kernel cpu_loops (hamming) for cuda:sm_80");
  ck_assert_msg(strstr(mfx_last_error(), "parallel") != NULL, "%s", mfx_last_error());
  mfx_arena_destroy(arena);
}
END_TEST

START_TEST(reference_table_matches_ops) {
  ck_assert_int_eq(mfx_reference_count(), mfx_op_count());
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    const mfx_reference_op *r = mfx_reference_find(op->name);
    ck_assert_msg(r != NULL, "op %s has no entry in ops/reference_table.c", op->name);
    ck_assert_msg(r->reference == op->reference && r->random_input == op->random_input &&
                      r->n_dims == op->n_dims && r->n_inputs == op->n_inputs &&
                      r->n_outputs == op->n_outputs &&
                      r->int_tolerance == op->int_tolerance,
                  "op %s: ops/reference_table.c disagrees with its mfx_op", op->name);
  }
  ck_assert_ptr_null(mfx_reference_find("no_such_op"));
  ck_assert_ptr_null(mfx_reference_at(mfx_reference_count()));
}
END_TEST

/* ---- GPU programs ------------------------------------------------------------------------- */

/* T = 2X + Y (workspace), S[r] = max over c of T[r, c]: two launches. */
static mfx_schedule *two_stage_schedule(mfx_arena *a, int64_t rows, int64_t cols) {
  int64_t shape[2] = {rows, cols};
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_F32, 2, shape);
  mfx_tensor *Y = mfx_placeholder(a, "Y", MFX_F32, 2, shape);
  mfx_tensor *T = mfx_compute_begin(a, "T", MFX_F32, 2, shape, (const char *[]){"i", "k"});
  mfx_expr *idx[2] = {mfx_var_ref(a, T->axes[0]), mfx_var_ref(a, T->axes[1])};
  ok(mfx_compute_set_body(a, T, mfx_add(a, mfx_mul(a, mfx_tensor_load(a, X, 2, idx),
                                                   mfx_f32(a, 2)),
                                        mfx_tensor_load(a, Y, 2, idx))));
  mfx_tensor *S = mfx_compute_begin(a, "S", MFX_F32, 1, &rows, (const char *[]){"r"});
  mfx_var *c = mfx_var_create(a, "c", cols, 1);
  mfx_expr *tidx[2] = {mfx_var_ref(a, S->axes[0]), mfx_var_ref(a, c)};
  ok(mfx_compute_set_body(a, S, mfx_reduce(a, MFX_REDUCE_MAX, 1, &c,
                                           mfx_tensor_load(a, T, 2, tidx))));
  mfx_schedule *s = NULL;
  ok(mfx_sched_create(a, 2, (mfx_tensor *[]){X, Y}, 1, &S, &s));
  mfx_stage *ts = mfx_sched_stage(s, T), *ss = mfx_sched_stage(s, S);
  mfx_itervar *f, *o, *in;
  ok(mfx_sched_fuse(s, ts, mfx_sched_itervar(ts, "i"), mfx_sched_itervar(ts, "k"), &f));
  ok(mfx_sched_split(s, ts, f, 128, MFX_TAIL_GUARD, &o, &in));
  ok(mfx_sched_bind(s, ts, o, MFX_LOOP_BLOCK_X));
  ok(mfx_sched_bind(s, ts, in, MFX_LOOP_THREAD_X));
  ok(mfx_sched_split(s, ss, mfx_sched_itervar(ss, "r"), 32, MFX_TAIL_GUARD, &o, &in));
  ok(mfx_sched_bind(s, ss, o, MFX_LOOP_BLOCK_X));
  ok(mfx_sched_bind(s, ss, in, MFX_LOOP_THREAD_X));
  return s;
}

START_TEST(gpu_program_into_artifact) {
  mfx_arena *arena = mfx_arena_create();
  mfx_schedule *s = two_stage_schedule(arena, 37, 11);
  mfx_artifact_kernel k;
  memset(&k, 0, sizeof k);
  snprintf(k.name, sizeof k.name, "twostage");
  snprintf(k.op, sizeof k.op, "rowmax");
  snprintf(k.target, sizeof k.target, "cuda:sm_80");
  snprintf(k.config, sizeof k.config, "{}");
  ok(mfx_artifact_build(s, &k));
  mfx_arena_destroy(arena);
  ck_assert_int_eq(k.n_args, 4);
  static const char *const names[] = {"X", "Y", "S", "T"};
  static const mfx_arg_role roles[] = {MFX_ARG_INPUT, MFX_ARG_INPUT, MFX_ARG_OUTPUT,
                                       MFX_ARG_WORKSPACE};
  for (int i = 0; i < 4; i++) {
    ck_assert_str_eq(k.args[i].name, names[i]);
    ck_assert_int_eq(k.args[i].role, roles[i]);
  }
  ck_assert_int_eq(k.args[3].shape[0], 37);
  ck_assert_int_eq(k.args[3].shape[1], 11);
  ck_assert_int_eq(k.n_launches, 2);
  ck_assert_str_eq(k.launches[0].name, "twostage_k0");
  ck_assert_int_eq(k.launches[0].n_args, 3);
  ck_assert_int_eq(k.launches[0].args[2], 3); /* T, the workspace */
  ck_assert_int_eq(k.launches[0].grid[0], (37 * 11 + 127) / 128);
  ck_assert_int_eq(k.launches[0].block[0], 128);
  ck_assert_int_eq(k.launches[1].n_args, 2);
  ck_assert_int_eq(k.launches[1].args[0], 2);
  ck_assert_int_eq(k.launches[1].args[1], 3);
  ck_assert_int_eq(k.gpu_image_kind, MFX_GPU_IMAGE_PTX);
  ck_assert_msg(memmem(k.gpu_image, k.gpu_image_bytes, ".entry twostage_k1(", 19) != NULL,
                "PTX lacks the second entry");
  ck_assert_ptr_null(k.host_so);
  size_t size = 0;
  void *image = encode(&k, 1, &size);
  mfx_artifact_kernel *back = NULL;
  int n = 0;
  ok(mfx_artifact_decode(image, size, "gpu.mfxa", &back, &n));
  assert_same_kernel(&back[0], &k);
  free(back);
  free(image);
  mfx_artifact_kernel_release(&k);
}
END_TEST

/* ---- the fake CUDA driver ---------------------------------------------------------------- */

static char fake_dir[256];
static int fake_built;

static void fake_setup(void) {
  snprintf(fake_dir, sizeof fake_dir, "%s/mfx_test_artifact_cuda_XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  if (mkdtemp(fake_dir) == NULL) return;
  const char *source = getenv("MFX_SOURCE_DIR");
  char command[2048];
  snprintf(command, sizeof command,
           "%s -std=gnu11 -O1 -shared -fPIC -o '%s/libcuda.so.1' "
           "'%s/tests/fake_cuda/fake_cuda.c' -lpthread > '%s/build.log' 2>&1",
           getenv("CC") != NULL ? getenv("CC") : "cc", fake_dir, source != NULL ? source : ".",
           fake_dir);
  fake_built = system(command) == 0;
}

static void fake_teardown(void) {
  if (fake_dir[0] != '\0') nftw(fake_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Points the runtime at the fake driver; 0 (and a loud SKIP) when the
 * runtime was built without cuda.h. */
static int use_fake(void) {
  char path[512];
  ck_assert_msg(fake_built, "building tests/fake_cuda/fake_cuda.c failed (MFX_SOURCE_DIR=%s); "
                "see %s/build.log", getenv("MFX_SOURCE_DIR"), fake_dir);
  snprintf(path, sizeof path, "%s/libcuda.so.1", fake_dir);
  setenv("MFX_CUDA_LIBRARY", path, 1);
  setenv("FAKE_CUDA_DEVICES", "1", 1);
  mfx_artifact_kernel g;
  cuda_vadd_kernel(&g, "probe", 32, "cuda:sm_80");
  if (load_kernel_on(&g, "cuda") != MFX_OK && strstr(mfx_last_error(), "without CUDA headers")) {
    printf("SKIP fake-CUDA artifact tests: %s\n", mfx_last_error());
    return 0;
  }
  return 1;
}

START_TEST(cuda_runs_on_fake_driver) {
  if (!use_fake()) return;
  mfx_artifact_kernel g[2];
  cuda_vadd_kernel(&g[0], "vadd", 96, "cuda:sm_80");
  cuda_vadd_kernel(&g[1], "vadd_small", 32, "cuda:sm_90a");
  size_t size = 0;
  void *image = encode(g, 2, &size);
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load_memory(image, size, "gpu.mfxa", NULL, &art));
  free(image);
  ck_assert_str_eq(mfx_artifact_device(art), "cuda:0");
  mfx_array in[2], out[1];
  ok(mfx_artifact_alloc_arrays(&g[0], MFX_ARG_INPUT, in));
  ok(mfx_artifact_alloc_arrays(&g[0], MFX_ARG_OUTPUT, out));
  float *a = in[0].data, *b = in[1].data, *c = out[0].data;
  for (int i = 0; i < 96; i++) a[i] = (float)i, b[i] = 0.5f * (float)i;
  ok(mfx_artifact_run(art, 0, 2, in, 1, out));
  for (int i = 0; i < 96; i++) ck_assert_msg(c[i] == 1.5f * (float)i, "c[%d] = %g", i, c[i]);
  memset(c, 0, 96 * sizeof(float));
  double median = -1.0;
  ok(mfx_artifact_time(art, 0, 2, in, 1, out, 5, &median));
  ck_assert_msg(median >= 0.0, "median %g", median);
  ck_assert_msg(c[95] == 1.5f * 95.0f, "timed run left c[95] = %g", c[95]);
  assert_error(mfx_artifact_run(art, 1, 2, in, 1, out), MFX_ERR_INVALID,
               "input a is f32 [96], expected f32 [32]");
  free_arrays(in, 2);
  free_arrays(out, 1);
  mfx_artifact_free(art);
}
END_TEST

START_TEST(cuda_refused_by_fake_driver) {
  if (!use_fake()) return;
  mfx_artifact_kernel g;
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_100");
  assert_error(load_kernel_on(&g, "cuda"), MFX_ERR_DEVICE,
               "kernel vadd targets cuda:sm_100, but cuda:0");
  ck_assert_msg(strstr(mfx_last_error(), "compute capability 9.0") != NULL, "%s",
                mfx_last_error());
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80a"); /* arch-specific: exactly 8.0 */
  assert_error(load_kernel_on(&g, "cuda"), MFX_ERR_DEVICE, "targets cuda:sm_80a");
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80");
  snprintf(g.launches[0].name, sizeof g.launches[0].name, "missing_entry");
  assert_failed(load_kernel_on(&g, "cuda"), "kernel vadd: launch missing_entry");
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80");
  g.gpu_image = "this is not PTX";
  g.gpu_image_bytes = strlen(g.gpu_image);
  assert_failed(load_kernel_on(&g, "cuda"), "artifact t.mfxa: kernel vadd");
  cuda_vadd_kernel(&g, "vadd", 96, "cuda:sm_80");
  assert_failed(load_kernel_on(&g, "cuda:3"), "opening device cuda:3");
}
END_TEST

static Suite *artifact_suite(void) {
  Suite *s = suite_create("artifact");
  /* First, while this process has not run LLVM yet: the fake driver keeps
   * thread-local state, and LeakSanitizer (GCC 12, glibc 2.36) has been seen
   * to trip over the dynamic TLS of such a library in a child forked after
   * code generation ran in the parent. */
  TCase *gpu = tcase_create("gpu");
  tcase_set_timeout(gpu, 240);
  tcase_add_unchecked_fixture(gpu, fake_setup, fake_teardown);
  tcase_add_test(gpu, gpu_program_into_artifact);
  tcase_add_test(gpu, cuda_runs_on_fake_driver);
  tcase_add_test(gpu, cuda_refused_by_fake_driver);
  suite_add_tcase(s, gpu);

  TCase *format = tcase_create("format");
  tcase_set_timeout(format, 240);
  tcase_add_unchecked_fixture(format, shared_setup, shared_teardown);
  tcase_add_test(format, metadata_round_trip);
  tcase_add_test(format, truncated_at_many_offsets);
  tcase_add_test(format, flipped_bytes_at_many_offsets);
  tcase_add_test(format, corrupted_but_resealed);
  tcase_add_test(format, foreign_files);
  tcase_add_test(format, newer_format_version);
  tcase_add_loop_test(format, encode_refuses_bad_cpu_kernels, 0,
                      (int)(sizeof cpu_edits / sizeof cpu_edits[0]));
  tcase_add_loop_test(format, encode_refuses_bad_gpu_kernels, 0,
                      (int)(sizeof gpu_edits / sizeof gpu_edits[0]));
  tcase_add_test(format, encode_refuses_bad_lists);
  tcase_add_test(format, files);
  suite_add_tcase(s, format);

  TCase *load = tcase_create("load");
  tcase_set_timeout(load, 240);
  tcase_add_unchecked_fixture(load, shared_setup, shared_teardown);
  tcase_add_test(load, wrong_targets);
  tcase_add_test(load, cuda_without_driver);
  tcase_add_test(load, wrong_arrays_at_run_time);
  tcase_add_test(load, two_artifacts_two_threads);
  tcase_add_test(load, find_kernels);
  tcase_add_test(load, no_files_left_behind);
  tcase_add_test(load, build_errors);
  tcase_add_test(load, reference_table_matches_ops);
  suite_add_tcase(s, load);

  TCase *ops = tcase_create("ops");
  tcase_set_timeout(ops, 240);
  tcase_add_loop_test(ops, every_op_equals_reference, 0,
                      (int)(sizeof op_cases / sizeof op_cases[0]));
  suite_add_tcase(s, ops);

  return s;
}

int main(void) {
  return check_run_suite(artifact_suite());
}
