/* The runtime base: status messages, dtypes, arrays, .npy files, the thread
 * pool, the kernel environment and the timer. */
#define _GNU_SOURCE
#include "mfx/device.h"
#include "mfx/runtime.h"

#include <check.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "check_main.h"

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
  char path[256];
} temp_dir;

static void temp_dir_create(temp_dir *d) {
  snprintf(d->path, sizeof d->path, "%s/mfx_test_runtime_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(d->path));
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void temp_dir_remove(temp_dir *d) { nftw(d->path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void temp_path(const temp_dir *d, const char *name, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/%s", d->path, name);
  ck_assert_int_lt(n, (int)cap);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(data, 1, n, f), n);
  ck_assert_int_eq(fclose(f), 0);
}

static long file_size(const char *path) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  long size = ftell(f);
  fclose(f);
  return size;
}

/* A v1.0 .npy file with `header` (padded to 64 bytes) and `data_bytes` of data. */
static void write_npy_raw(const char *path, const char *header, size_t data_bytes) {
  unsigned char buf[4096];
  size_t hlen = strlen(header);
  size_t padded = (10 + hlen + 1 + 63) / 64 * 64 - 10;
  ck_assert_uint_lt(10 + padded + data_bytes, sizeof buf);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(padded & 0xff);
  buf[9] = (unsigned char)(padded >> 8);
  memset(buf + 10, ' ', padded);
  memcpy(buf + 10, header, hlen);
  buf[10 + padded - 1] = '\n';
  for (size_t i = 0; i < data_bytes; i++) buf[10 + padded + i] = (unsigned char)i;
  write_bytes(path, buf, 10 + padded + data_bytes);
}

/* Loading `path` fails with `status` and a message naming the file and `what`. */
static void expect_load_error(const char *path, mfx_status status, const char *what) {
  mfx_array a;
  mfx_clear_error();
  mfx_status st = mfx_npy_load(path, &a);
  ck_assert_msg(st == status, "%s: status %s, expected %s (%s)", path, mfx_status_name(st),
                mfx_status_name(status), mfx_last_error());
  ck_assert_ptr_null(a.data);
  ck_assert_msg(strstr(mfx_last_error(), path) != NULL, "message lacks the path: %s",
                mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), what) != NULL, "message lacks '%s': %s", what,
                mfx_last_error());
}

/* ---- status --------------------------------------------------------------- */

START_TEST(test_fail_sets_message) {
  mfx_clear_error();
  ck_assert_str_eq(mfx_last_error(), "");
  mfx_status st = mfx_fail(MFX_ERR_INVALID, "dims: K=%d must be positive", 0);
  ck_assert_int_eq(st, MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "dims: K=0 must be positive");
  mfx_clear_error();
  ck_assert_str_eq(mfx_last_error(), "");
}
END_TEST

START_TEST(test_fail_context_prefixes) {
  mfx_fail(MFX_ERR_IO, "cannot open");
  ck_assert_int_eq(mfx_fail_context(MFX_ERR_FORMAT, "artifact %s", "k.mfxa"), MFX_ERR_FORMAT);
  ck_assert_str_eq(mfx_last_error(), "artifact k.mfxa: cannot open");
  mfx_fail_context(MFX_ERR_FORMAT, "load");
  ck_assert_str_eq(mfx_last_error(), "load: artifact k.mfxa: cannot open");
  mfx_clear_error();
  mfx_fail_context(MFX_ERR_IO, "only context");
  ck_assert_str_eq(mfx_last_error(), "only context");
}
END_TEST

START_TEST(test_fail_may_quote_itself) {
  mfx_fail(MFX_ERR_IO, "inner");
  mfx_fail(MFX_ERR_IO, "outer (%s)", mfx_last_error());
  ck_assert_str_eq(mfx_last_error(), "outer (inner)");
  mfx_fail_context(MFX_ERR_IO, "[%s]", mfx_last_error());
  ck_assert_str_eq(mfx_last_error(), "[outer (inner)]: outer (inner)");
}
END_TEST

START_TEST(test_fail_truncates_long_messages) {
  char big[5000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  mfx_fail(MFX_ERR_INVALID, "%s", big);
  size_t len = strlen(mfx_last_error());
  ck_assert_uint_gt(len, 100);
  ck_assert_uint_lt(len, sizeof big - 1);
  mfx_fail_context(MFX_ERR_INVALID, "%s", big);
  ck_assert_uint_eq(strlen(mfx_last_error()), len);
}
END_TEST

static void *fail_in_thread(void *arg) {
  (void)arg;
  mfx_fail(MFX_ERR_DEVICE, "other thread");
  return (void *)(strcmp(mfx_last_error(), "other thread") == 0 ? (void *)1 : NULL);
}

START_TEST(test_messages_are_per_thread) {
  mfx_fail(MFX_ERR_IO, "this thread");
  pthread_t t;
  void *ok = NULL;
  ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
  ck_assert_int_eq(pthread_join(t, &ok), 0);
  ck_assert_ptr_nonnull(ok);
  ck_assert_str_eq(mfx_last_error(), "this thread");
}
END_TEST

START_TEST(test_status_names) {
  ck_assert_str_eq(mfx_status_name(MFX_OK), "ok");
  for (int a = MFX_OK; a <= MFX_ERR_MISMATCH; a++) {
    for (int b = a + 1; b <= MFX_ERR_MISMATCH; b++) {
      ck_assert_str_ne(mfx_status_name((mfx_status)a), mfx_status_name((mfx_status)b));
    }
  }
  ck_assert_str_eq(mfx_status_name((mfx_status)99), "unknown status");
}
END_TEST

/* The timing loop: warm-up runs untimed, min_runs..max_runs, a function's
 * own time in place of the host clock's, the first failure returned. */
typedef struct {
  int calls, fail_at;
} timed_counter;

static mfx_status timed_count(void *user, double *seconds) {
  timed_counter *c = user;
  c->calls++;
  if (c->calls == c->fail_at) return mfx_fail(MFX_ERR_DEVICE, "run %d failed", c->calls);
  if (*seconds < 0.0) *seconds = (double)c->calls; /* a timed run: its "device" time */
  return MFX_OK;
}

START_TEST(test_timing_loop) {
  timed_counter c = {0, 0};
  mfx_timing plan = {.warmup = 2, .min_runs = 3, .max_runs = 3};
  double samples[8], total = 0.0, median = 0.0;
  int runs = 0;
  ck_assert_int_eq(mfx_time_runs(timed_count, &c, &plan, samples, &runs, &total), MFX_OK);
  ck_assert_int_eq(c.calls, 5);
  ck_assert_int_eq(runs, 3);
  ck_assert_double_eq(samples[0], 3.0); /* calls 1 and 2 were the warm-up */
  ck_assert_double_eq(total, 3.0 + 4.0 + 5.0);
  /* min_seconds keeps it running past min_runs, up to max_runs. */
  c = (timed_counter){0, 0};
  plan = (mfx_timing){.min_runs = 1, .max_runs = 8, .min_seconds = 6.0};
  ck_assert_int_eq(mfx_time_median(timed_count, &c, &plan, &median, &runs), MFX_OK);
  ck_assert_int_eq(runs, 3); /* 1 + 2 + 3 >= 6 */
  ck_assert_double_eq(median, 2.0);
  plan.min_runs = 4;
  c = (timed_counter){0, 0};
  ck_assert_int_eq(mfx_time_median(timed_count, &c, &plan, &median, &runs), MFX_OK);
  ck_assert_double_eq(median, 2.5); /* the mean of the middle two of 1..4 */
  /* A failure stops the loop and is returned with its message. */
  c = (timed_counter){0, 3};
  ck_assert_int_eq(mfx_time_median(timed_count, &c, &plan, &median, &runs), MFX_ERR_DEVICE);
  ck_assert_int_eq(runs, 2);
  ck_assert_str_eq(mfx_last_error(), "run 3 failed");
  /* Bad plans are refused. */
  plan = (mfx_timing){.min_runs = 0, .max_runs = 4};
  ck_assert_int_eq(mfx_time_runs(timed_count, &c, &plan, samples, &runs, NULL), MFX_ERR_INVALID);
  plan = (mfx_timing){.min_runs = 5, .max_runs = 4};
  ck_assert_int_eq(mfx_time_runs(timed_count, &c, &plan, samples, &runs, NULL), MFX_ERR_INVALID);
  double v[] = {3.0, 1.0, 2.0};
  ck_assert_double_eq(mfx_median(v, 3), 2.0);
  ck_assert_double_eq(mfx_median(v, 0), 0.0);
}
END_TEST

/* ---- dtypes and arrays ------------------------------------------------------ */

/* mfx_name_of / mfx_name_index over a plain array and over a table of
 * structs (the stride), with holes, out-of-range values and NULLs. */
START_TEST(test_enum_names) {
  static const char *const plain[] = {"zero", NULL, "two"};
  ck_assert_str_eq(mfx_name_of(plain, sizeof(char *), 3, 0, "?"), "zero");
  ck_assert_str_eq(mfx_name_of(plain, sizeof(char *), 3, 1, "?"), "?");
  ck_assert_str_eq(mfx_name_of(plain, sizeof(char *), 3, 3, "?"), "?");
  ck_assert_str_eq(mfx_name_of(plain, sizeof(char *), 3, -1, "?"), "?");
  ck_assert_int_eq(mfx_name_index(plain, sizeof(char *), 3, "two"), 2);
  ck_assert_int_eq(mfx_name_index(plain, sizeof(char *), 3, "one"), -1);
  ck_assert_int_eq(mfx_name_index(plain, sizeof(char *), 3, NULL), -1);
  ck_assert_int_eq(mfx_name_index(plain, sizeof(char *), 2, "two"), -1); /* past n */
  struct row { int before; const char *name; double after; };
  static const struct row rows[] = {{1, "a", 0.5}, {2, "bb", 1.5}};
  ck_assert_str_eq(mfx_name_of(&rows[0].name, sizeof rows[0], 2, 1, "?"), "bb");
  ck_assert_int_eq(mfx_name_index(&rows[0].name, sizeof rows[0], 2, "a"), 0);
  ck_assert_int_eq(mfx_name_index(&rows[0].name, sizeof rows[0], 2, "bb"), 1);
  ck_assert_int_eq(mfx_name_index(NULL, sizeof rows[0], 2, "bb"), -1);
}
END_TEST

START_TEST(test_dtype_table) {
  static const char *names[] = {"bool", "i8", "i16", "i32", "i64", "u8", "u32", "u64", "f32"};
  static const size_t sizes[] = {1, 1, 2, 4, 8, 1, 4, 8, 4};
  static const int is_signed[] = {0, 1, 1, 1, 1, 0, 0, 0, 0};
  for (int t = 0; t < MFX_DTYPE_COUNT; t++) {
    mfx_dtype back = MFX_DTYPE_COUNT;
    ck_assert_str_eq(mfx_dtype_name((mfx_dtype)t), names[t]);
    ck_assert_int_eq(mfx_dtype_from_name(names[t], &back), 0);
    ck_assert_int_eq(back, t);
    ck_assert_uint_eq(mfx_dtype_size((mfx_dtype)t), sizes[t]);
    ck_assert_int_eq(mfx_dtype_is_signed((mfx_dtype)t), is_signed[t]);
    ck_assert_int_eq(mfx_dtype_is_float((mfx_dtype)t), t == MFX_F32);
  }
  mfx_dtype out = MFX_I8;
  ck_assert_int_ne(mfx_dtype_from_name("f64", &out), 0);
  ck_assert_int_ne(mfx_dtype_from_name(NULL, &out), 0);
  ck_assert_int_eq(out, MFX_I8);
  ck_assert_uint_eq(mfx_dtype_size(MFX_DTYPE_COUNT), 0);
}
END_TEST

START_TEST(test_array_create) {
  mfx_array a;
  int64_t shape[3] = {2, 3, 5};
  ck_assert_int_eq(mfx_array_create(&a, MFX_I16, 3, shape), MFX_OK);
  ck_assert_int_eq(mfx_array_numel(&a), 30);
  ck_assert_ptr_nonnull(a.data);
  for (int i = 0; i < 30; i++) ck_assert_int_eq(((int16_t *)a.data)[i], 0);
  mfx_array_free(&a);
  ck_assert_ptr_null(a.data);
  mfx_array_free(&a);

  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 0, NULL), MFX_OK);
  ck_assert_int_eq(mfx_array_numel(&a), 1);
  mfx_array_free(&a);
  int64_t empty[2] = {0, 7};
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 2, empty), MFX_OK);
  ck_assert_int_eq(mfx_array_numel(&a), 0);
  mfx_array_free(&a);
}
END_TEST

START_TEST(test_array_create_errors) {
  mfx_array a;
  int64_t negative[2] = {2, -1};
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 2, negative), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "shape[1]=-1"));
  int64_t shape[MFX_MAX_DIMS + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, MFX_MAX_DIMS + 1, shape), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_array_create(&a, MFX_DTYPE_COUNT, 1, shape), MFX_ERR_INVALID);
  int64_t huge[2] = {INT64_MAX / 2, 16};
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 2, huge), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "overflow"));
  ck_assert_int_eq(mfx_array_create(NULL, MFX_F32, 1, shape), MFX_ERR_INVALID);
}
END_TEST

/* ---- .npy round trips ---------------------------------------------------- */

static const int64_t round_trip_shapes[][4] = {
  {0}, {1, 1}, {1, 5}, {2, 2, 3}, {3, 3, 1, 4}, {2, 0, 3}, {1, 1000},
};

static void fill_pattern(mfx_array *a, unsigned seed) {
  size_t bytes = (size_t)mfx_array_numel(a) * mfx_dtype_size(a->dtype);
  unsigned char *p = a->data;
  for (size_t i = 0; i < bytes; i++) p[i] = (unsigned char)(i * 131u + seed * 7u + 1u);
  if (a->dtype == MFX_BOOL) {
    for (size_t i = 0; i < bytes; i++) p[i] &= 1u;
  }
}

static void round_trip(const temp_dir *d, mfx_dtype t, const int64_t *spec) {
  int ndim = (int)spec[0];
  char path[300];
  temp_path(d, "rt.npy", path, sizeof path);
  mfx_array a, b;
  ck_assert_int_eq(mfx_array_create(&a, t, ndim, spec + 1), MFX_OK);
  fill_pattern(&a, (unsigned)t);
  ck_assert_msg(mfx_npy_save(path, &a) == MFX_OK, "%s", mfx_last_error());
  size_t bytes = (size_t)mfx_array_numel(&a) * mfx_dtype_size(t);
  long header = file_size(path) - (long)bytes;
  ck_assert_msg(header > 0 && header % 64 == 0, "header+preamble %ld not 64-aligned", header);
  ck_assert_msg(mfx_npy_load(path, &b) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(b.dtype, t);
  ck_assert_int_eq(b.ndim, ndim);
  for (int i = 0; i < ndim; i++) ck_assert_int_eq(b.shape[i], a.shape[i]);
  ck_assert_int_eq(memcmp(a.data, b.data, bytes), 0);
  mfx_array_free(&a);
  mfx_array_free(&b);
}

START_TEST(test_npy_round_trip) {
  temp_dir d;
  temp_dir_create(&d);
  size_t n_shapes = sizeof round_trip_shapes / sizeof round_trip_shapes[0];
  for (int t = 0; t < MFX_DTYPE_COUNT; t++) {
    for (size_t s = 0; s < n_shapes; s++) round_trip(&d, (mfx_dtype)t, round_trip_shapes[s]);
  }
  temp_dir_remove(&d);
}
END_TEST

START_TEST(test_npy_save_header_text) {
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "h.npy", path, sizeof path);
  int64_t shape[1] = {5};
  mfx_array a;
  ck_assert_int_eq(mfx_array_create(&a, MFX_U8, 1, shape), MFX_OK);
  ck_assert_int_eq(mfx_npy_save(path, &a), MFX_OK);
  char buf[129] = {0};
  ck_assert_int_eq(file_size(path), 128 + 5);
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fread(buf, 1, 128, f), 128);
  fclose(f);
  ck_assert_int_eq(memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
  ck_assert_ptr_nonnull(strstr(buf + 10, "{'descr': '|u1', 'fortran_order': False, "
                                         "'shape': (5,), }"));
  ck_assert_int_eq(buf[127], '\n');
  mfx_array_free(&a);
  temp_dir_remove(&d);
}
END_TEST

START_TEST(test_npy_save_errors) {
  mfx_array a = {.dtype = MFX_F32, .ndim = 1, .shape = {4}, .data = NULL};
  ck_assert_int_eq(mfx_npy_save("/tmp/never-written.npy", &a), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "data is NULL"));
  float x = 1.0f;
  a.data = &x;
  a.shape[0] = 1;
  ck_assert_int_eq(mfx_npy_save("/nonexistent-dir/x.npy", &a), MFX_ERR_IO);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "/nonexistent-dir/x.npy"));
  a.dtype = MFX_DTYPE_COUNT;
  ck_assert_int_eq(mfx_npy_save("/tmp/never-written.npy", &a), MFX_ERR_INVALID);
}
END_TEST

/* ---- .npy written by numpy ----------------------------------------------- */

/* Writes one file per case: <name>.npy holds (arange(numel) % 251) cast, with
 * f32 values i * 0.5 - 3 and bool values i % 3 == 0. */
static const char *numpy_script =
    "import sys, numpy as np\n"
    "d = sys.argv[1]\n"
    "def val(dt, shape):\n"
    "    n = int(np.prod(shape, dtype=np.int64))\n"
    "    i = np.arange(n, dtype=np.int64)\n"
    "    if dt == 'f4': v = (i * 0.5 - 3).astype('<f4')\n"
    "    elif dt == 'b1': v = (i % 3 == 0)\n"
    "    elif dt[0] == 'i': v = (i % 251 - 125).astype('<' + dt)\n"
    "    else: v = (i % 251).astype('<' + dt)\n"
    "    return v.reshape(shape)\n"
    "for dt in ['b1','i1','i2','i4','i8','u1','u4','u8','f4']:\n"
    "    for shape in [(), (1,), (7,), (3, 4), (2, 3, 5)]:\n"
    "        tag = 'x'.join(str(s) for s in shape) or 'scalar'\n"
    "        np.save('%s/%s_%s.npy' % (d, dt, tag), val(dt, shape))\n"
    "for ver in [(2, 0), (3, 0)]:\n"
    "    with open('%s/v%d.npy' % (d, ver[0]), 'wb') as f:\n"
    "        np.lib.format.write_array(f, val('i4', (3, 4)), version=ver)\n"
    "np.save(d + '/fortran.npy', np.asfortranarray(val('f4', (3, 4))))\n"
    "np.save(d + '/big.npy', val('i4', (3, 4)).astype('>i4'))\n"
    "np.save(d + '/f64.npy', np.zeros(3))\n";

/* Runs the script; returns 0 when numpy is not available. */
static int run_numpy(const temp_dir *d) {
  char script[300], cmd[700];
  temp_path(d, "gen.py", script, sizeof script);
  write_bytes(script, numpy_script, strlen(numpy_script));
  if (access("/usr/bin/python3", X_OK) != 0) {
    fprintf(stderr, "SKIP test_npy_from_numpy: /usr/bin/python3 is not installed\n");
    return 0;
  }
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import numpy' 2>/dev/null");
  if (system(cmd) != 0) {
    fprintf(stderr, "SKIP test_npy_from_numpy: numpy is not installed for /usr/bin/python3\n");
    return 0;
  }
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, d->path);
  ck_assert_msg(system(cmd) == 0, "numpy script failed: %s", cmd);
  return 1;
}

static int64_t expected_int(const char *dt, int64_t i) {
  if (strcmp(dt, "b1") == 0) return i % 3 == 0;
  return dt[0] == 'i' ? i % 251 - 125 : i % 251;
}

static void check_numpy_values(const mfx_array *a, const char *dt) {
  for (int64_t i = 0; i < mfx_array_numel(a); i++) {
    int64_t want = expected_int(dt, i);
    switch (a->dtype) {
    case MFX_F32: ck_assert_float_eq(((float *)a->data)[i], (float)i * 0.5f - 3.0f); break;
    case MFX_BOOL:
    case MFX_U8: ck_assert_int_eq(((uint8_t *)a->data)[i], want); break;
    case MFX_I8: ck_assert_int_eq(((int8_t *)a->data)[i], want); break;
    case MFX_I16: ck_assert_int_eq(((int16_t *)a->data)[i], want); break;
    case MFX_I32: ck_assert_int_eq(((int32_t *)a->data)[i], want); break;
    case MFX_I64: ck_assert_int_eq(((int64_t *)a->data)[i], want); break;
    case MFX_U32: ck_assert_int_eq(((uint32_t *)a->data)[i], want); break;
    case MFX_U64: ck_assert_int_eq((int64_t)((uint64_t *)a->data)[i], want); break;
    default: ck_abort_msg("unexpected dtype %d", a->dtype);
    }
  }
}

static void check_numpy_file(const temp_dir *d, const char *name, mfx_dtype t, int ndim,
                             const int64_t *shape, const char *dt) {
  char path[300];
  temp_path(d, name, path, sizeof path);
  mfx_array a;
  ck_assert_msg(mfx_npy_load(path, &a) == MFX_OK, "%s", mfx_last_error());
  ck_assert_int_eq(a.dtype, t);
  ck_assert_int_eq(a.ndim, ndim);
  for (int i = 0; i < ndim; i++) ck_assert_int_eq(a.shape[i], shape[i]);
  check_numpy_values(&a, dt);
  mfx_array_free(&a);
}

START_TEST(test_npy_from_numpy) {
  temp_dir d;
  temp_dir_create(&d);
  if (!run_numpy(&d)) {
    temp_dir_remove(&d);
    return;
  }
  static const char *dts[] = {"b1", "i1", "i2", "i4", "i8", "u1", "u4", "u8", "f4"};
  static const mfx_dtype types[] = {MFX_BOOL, MFX_I8,  MFX_I16, MFX_I32, MFX_I64,
                                    MFX_U8,   MFX_U32, MFX_U64, MFX_F32};
  static const struct {
    const char *tag;
    int ndim;
    int64_t shape[3];
  } shapes[] = {{"scalar", 0, {0}}, {"1", 1, {1}}, {"7", 1, {7}}, {"3x4", 2, {3, 4}},
                {"2x3x5", 3, {2, 3, 5}}};
  char name[64];
  for (int t = 0; t < 9; t++) {
    for (int s = 0; s < 5; s++) {
      snprintf(name, sizeof name, "%s_%s.npy", dts[t], shapes[s].tag);
      check_numpy_file(&d, name, types[t], shapes[s].ndim, shapes[s].shape, dts[t]);
    }
  }
  int64_t shape[2] = {3, 4};
  check_numpy_file(&d, "v2.npy", MFX_I32, 2, shape, "i4");
  check_numpy_file(&d, "v3.npy", MFX_I32, 2, shape, "i4");
  char path[300];
  temp_path(&d, "fortran.npy", path, sizeof path);
  expect_load_error(path, MFX_ERR_FORMAT, "fortran_order");
  temp_path(&d, "big.npy", path, sizeof path);
  expect_load_error(path, MFX_ERR_FORMAT, "big-endian");
  temp_path(&d, "f64.npy", path, sizeof path);
  expect_load_error(path, MFX_ERR_FORMAT, "'<f8' is not supported");
  temp_dir_remove(&d);
}
END_TEST

/* ---- .npy errors --------------------------------------------------------- */

START_TEST(test_npy_missing_file) {
  expect_load_error("/nonexistent-dir/missing.npy", MFX_ERR_IO, "cannot open");
  mfx_array a;
  ck_assert_int_eq(mfx_npy_load(NULL, &a), MFX_ERR_INVALID);
}
END_TEST

START_TEST(test_npy_bad_magic) {
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "magic.npy", path, sizeof path);
  write_bytes(path, "PK\x03\x04 not numpy at all", 22);
  expect_load_error(path, MFX_ERR_FORMAT, "magic");
  temp_path(&d, "empty.npy", path, sizeof path);
  write_bytes(path, "", 0);
  expect_load_error(path, MFX_ERR_FORMAT, "magic");
  temp_path(&d, "version.npy", path, sizeof path);
  write_bytes(path, "\x93NUMPY\x04\x00\x10\x00", 10);
  expect_load_error(path, MFX_ERR_FORMAT, "version 4.0");
  temp_dir_remove(&d);
}
END_TEST

START_TEST(test_npy_truncated) {
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "data.npy", path, sizeof path);
  write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 47);
  expect_load_error(path, MFX_ERR_FORMAT, "expected 48 bytes after the header, found 47");
  temp_path(&d, "header.npy", path, sizeof path);
  write_bytes(path, "\x93NUMPY\x01\x00\x76\x00{'descr'", 17);
  expect_load_error(path, MFX_ERR_FORMAT, "ends inside the 118-byte header");
  temp_path(&d, "length.npy", path, sizeof path);
  write_bytes(path, "\x93NUMPY\x02\x00\x76\x00", 10);
  expect_load_error(path, MFX_ERR_FORMAT, "header length");
  temp_dir_remove(&d);
}
END_TEST

/* A corrupt shape must give a format error before anything is allocated for
 * it (a 4 TB calloc would abort under AddressSanitizer), and data after the
 * array means the header and the file disagree. */
START_TEST(test_npy_size_disagrees_with_header) {
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "huge.npy", path, sizeof path);
  write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", 8);
  expect_load_error(path, MFX_ERR_FORMAT, "expected 4000000000000 bytes after the header, found 8");
  write_npy_raw(path, "{'descr': '<u8', 'fortran_order': False, "
                "'shape': (4611686018427387904, 16), }", 8);
  expect_load_error(path, MFX_ERR_FORMAT, "overflow");
  write_npy_raw(path, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 13);
  expect_load_error(path, MFX_ERR_FORMAT, "1 extra bytes after the 12 bytes");
  temp_dir_remove(&d);
}
END_TEST

START_TEST(test_npy_headers_accepted) {
  static const char *headers[] = {
    "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
    "{\"shape\": (2,3), \"descr\": \"<i4\", \"fortran_order\": False}",
    "{ 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , 'descr' : '<i4' }",
    "{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 3L)}",
  };
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "ok.npy", path, sizeof path);
  for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
    write_npy_raw(path, headers[i], 24);
    mfx_array a;
    ck_assert_msg(mfx_npy_load(path, &a) == MFX_OK, "%s: %s", headers[i], mfx_last_error());
    ck_assert_int_eq(a.dtype, MFX_I32);
    ck_assert_int_eq(a.ndim, 2);
    ck_assert_int_eq(a.shape[0], 2);
    ck_assert_int_eq(a.shape[1], 3);
    ck_assert_int_eq(((uint8_t *)a.data)[23], 23);
    mfx_array_free(&a);
  }
  static const char *one_byte[] = {"<i1", "|i1", "<u1", "|u1", "|b1"};
  for (size_t i = 0; i < 5; i++) {
    char header[128];
    snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (4,)}",
             one_byte[i]);
    write_npy_raw(path, header, 4);
    mfx_array a;
    ck_assert_msg(mfx_npy_load(path, &a) == MFX_OK, "%s: %s", header, mfx_last_error());
    ck_assert_uint_eq(mfx_dtype_size(a.dtype), 1);
    mfx_array_free(&a);
  }
  temp_dir_remove(&d);
}
END_TEST

static const struct {
  const char *header;
  const char *message;
} bad_headers[] = {
  {"not a dict", "expected '{'"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", "expected ',' or '}'"},
  {"{'descr': '<f4', 'fortran_order': False}", "lacks 'shape'"},
  {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", "True or False"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1)}", "non-negative integer"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': 2}", "'(' opening the shape"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key"},
  {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "repeats"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", "only padding"},
  {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", "after a dict entry"},
  {"{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", "expected ':'"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,),,}", "a quoted string"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,3", "',' or ')'"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", "more than 8"},
  {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
   "overflows"},
  {"{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}", "fortran_order is True"},
  {"{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", "big-endian"},
  {"{'descr': '<f2', 'fortran_order': False, 'shape': (2,)}", "'<f2' is not supported"},
  {"{'descr': '|i4', 'fortran_order': False, 'shape': (2,)}", "'|i4' is not supported"},
  {"{'descr': '<U8', 'fortran_order': False, 'shape': (2,)}", "'<U8' is not supported"},
  {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "a quoted string"},
};

START_TEST(test_npy_bad_headers) {
  temp_dir d;
  temp_dir_create(&d);
  char path[300];
  temp_path(&d, "bad.npy", path, sizeof path);
  write_npy_raw(path, bad_headers[_i].header, 64);
  expect_load_error(path, MFX_ERR_FORMAT, bad_headers[_i].message);
  temp_dir_remove(&d);
}
END_TEST

/* ---- thread pool --------------------------------------------------------- */

typedef struct {
  atomic_int *hits;
  atomic_int calls;
  atomic_llong covered;
} coverage;

static void count_indices(void *closure, int64_t begin, int64_t end) {
  coverage *c = closure;
  atomic_fetch_add(&c->calls, 1);
  atomic_fetch_add(&c->covered, (long long)(end - begin));
  for (int64_t i = begin; i < end; i++) atomic_fetch_add(&c->hits[i], 1);
}

static void check_coverage(mfx_pool *pool, int64_t n, int max_chunks) {
  coverage c;
  c.hits = calloc((size_t)n + 1, sizeof *c.hits);
  ck_assert_ptr_nonnull(c.hits);
  atomic_init(&c.calls, 0);
  atomic_init(&c.covered, 0);
  ck_assert_int_eq(mfx_pool_parallel_for(pool, count_indices, &c, n), 0);
  for (int64_t i = 0; i < n; i++) {
    ck_assert_msg(atomic_load(&c.hits[i]) == 1, "n=%lld threads=%d: index %lld ran %d times",
                  (long long)n, max_chunks, (long long)i, atomic_load(&c.hits[i]));
  }
  ck_assert_int_eq(atomic_load(&c.covered), n);
  ck_assert_int_le(atomic_load(&c.calls), n < max_chunks ? n : max_chunks);
  free(c.hits);
}

START_TEST(test_pool_covers_every_index_once) {
  static const int threads[] = {1, 2, 4};
  static const int64_t sizes[] = {0, 1, 3, 1000};
  for (int t = 0; t < 3; t++) {
    mfx_pool *pool = NULL;
    ck_assert_int_eq(mfx_pool_create(threads[t], &pool), MFX_OK);
    ck_assert_int_eq(mfx_pool_threads(pool), threads[t]);
    for (int s = 0; s < 4; s++) check_coverage(pool, sizes[s], threads[t]);
    for (int repeat = 0; repeat < 200; repeat++) check_coverage(pool, 37, threads[t]);
    mfx_pool_destroy(pool);
  }
  check_coverage(NULL, 1000, 1);
  ck_assert_int_eq(mfx_pool_threads(NULL), 1);
  mfx_pool_destroy(NULL);
}
END_TEST

START_TEST(test_pool_default_and_limits) {
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(0, &pool), MFX_OK);
  ck_assert_int_ge(mfx_pool_threads(pool), 1);
  check_coverage(pool, 100, mfx_pool_threads(pool));
  mfx_pool_destroy(pool);
  ck_assert_int_eq(mfx_pool_create(100000, &pool), MFX_ERR_INVALID);
  ck_assert_ptr_null(pool);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "threads=100000"));
  ck_assert_int_eq(mfx_pool_create(2, NULL), MFX_ERR_INVALID);
}
END_TEST

/* Each of two chunks waits for the other to start: passes only when the
 * chunks really run on two threads at once. */
typedef struct {
  atomic_int started;
  atomic_int met;
} rendezvous;

static void meet(void *closure, int64_t begin, int64_t end) {
  (void)begin;
  (void)end;
  rendezvous *r = closure;
  atomic_fetch_add(&r->started, 1);
  double deadline = mfx_now_seconds() + 10.0;
  while (atomic_load(&r->started) < 2 && mfx_now_seconds() < deadline) sched_yield();
  if (atomic_load(&r->started) >= 2) atomic_fetch_add(&r->met, 1);
}

START_TEST(test_pool_runs_concurrently) {
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  rendezvous r;
  atomic_init(&r.started, 0);
  atomic_init(&r.met, 0);
  mfx_pool_parallel_for(pool, meet, &r, 2);
  ck_assert_int_eq(atomic_load(&r.met), 2);
  mfx_pool_destroy(pool);
}
END_TEST

typedef struct {
  mfx_pool *pool;
  coverage inner;
} nested;

static void nested_body(void *closure, int64_t begin, int64_t end) {
  nested *s = closure;
  for (int64_t i = begin; i < end; i++) {
    mfx_pool_parallel_for(s->pool, count_indices, &s->inner, 10);
  }
}

START_TEST(test_pool_nested_runs_serially) {
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(4, &pool), MFX_OK);
  nested s = {.pool = pool};
  s.inner.hits = calloc(10, sizeof *s.inner.hits);
  ck_assert_ptr_nonnull(s.inner.hits);
  atomic_init(&s.inner.calls, 0);
  atomic_init(&s.inner.covered, 0);
  mfx_pool_parallel_for(pool, nested_body, &s, 8);
  /* 8 outer iterations, each one serial inner call over all 10 indices. */
  ck_assert_int_eq(atomic_load(&s.inner.calls), 8);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(atomic_load(&s.inner.hits[i]), 8);
  free(s.inner.hits);
  mfx_pool_destroy(pool);
}
END_TEST

static void *hammer_pool(void *arg) {
  mfx_pool *pool = arg;
  for (int i = 0; i < 300; i++) check_coverage(pool, 1 + i % 17, mfx_pool_threads(pool));
  return NULL;
}

START_TEST(test_pool_shared_by_two_callers) {
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(3, &pool), MFX_OK);
  pthread_t other;
  ck_assert_int_eq(pthread_create(&other, NULL, hammer_pool, pool), 0);
  hammer_pool(pool);
  ck_assert_int_eq(pthread_join(other, NULL), 0);
  mfx_pool_destroy(pool);
}
END_TEST

/* ---- kernel environment and time ------------------------------------------- */

START_TEST(test_kernel_env) {
  static const size_t sizes[] = {0, 1, 63, 64, 65, 1000, 4096};
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  for (int with_pool = 0; with_pool < 2; with_pool++) {
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, with_pool ? pool : NULL);
    ck_assert_ptr_eq(env.pool, with_pool ? (void *)pool : NULL);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *p = env.alloc(sizes[i]);
      ck_assert_ptr_nonnull(p);
      ck_assert_uint_eq((uintptr_t)p % 64, 0);
      size_t rounded = (sizes[i] + 63) / 64 * 64;
      memset(p, 0xab, rounded > 0 ? rounded : 64);
      env.free(p);
    }
    ck_assert_ptr_null(env.alloc(SIZE_MAX - 10));
    coverage c;
    c.hits = calloc(513, sizeof *c.hits);
    atomic_init(&c.calls, 0);
    atomic_init(&c.covered, 0);
    ck_assert_int_eq(env.parallel_for(env.pool, count_indices, &c, 513), 0);
    for (int i = 0; i < 513; i++) ck_assert_int_eq(atomic_load(&c.hits[i]), 1);
    ck_assert_int_le(atomic_load(&c.calls), with_pool ? 2 : 1);
    free(c.hits);
  }
  mfx_pool_destroy(pool);
}
END_TEST

/* Freed workspace is handed out again (no fresh pages, no page faults), only
 * to requests it fits without much waste, and live blocks never overlap. */
START_TEST(test_kernel_env_reuses_workspace) {
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  unsigned char *a = env.alloc(3 << 20);
  ck_assert_ptr_nonnull(a);
  memset(a, 1, 3 << 20);
  env.free(a);
  unsigned char *b = env.alloc(3 << 20);
  ck_assert_ptr_eq(b, a);
  unsigned char *c = env.alloc(3 << 20); /* b is live: a new block */
  ck_assert_ptr_ne(c, b);
  env.free(c);
  unsigned char *small = env.alloc(1000); /* c is too big to waste on it */
  ck_assert_ptr_ne(small, c);
  memset(small, 2, 1000);
  memset(b, 3, 3 << 20);
  ck_assert_int_eq(small[999], 2);
  env.free(small);
  env.free(b);
  for (int i = 0; i < 64; i++) env.free(env.alloc((size_t)(i + 1) * 4096)); /* bounded cache */
}
END_TEST

START_TEST(test_now_is_monotonic) {
  double a = mfx_now_seconds();
  struct timespec ten_ms = {0, 10 * 1000 * 1000};
  nanosleep(&ten_ms, NULL);
  double b = mfx_now_seconds();
  ck_assert_double_ge(b - a, 0.009);
  ck_assert_double_lt(b - a, 5.0);
  for (int i = 0; i < 1000; i++) {
    double c = mfx_now_seconds();
    ck_assert_double_ge(c, b);
    b = c;
  }
}
END_TEST

/* mfx_cpuinfo_field: a present key's value without blanks or the newline; an
 * absent key, a key that is only a prefix of one, and NULL arguments find
 * nothing and leave the buffer as it was. */
START_TEST(test_cpuinfo_field) {
  char buf[256];
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f != NULL) {
    fclose(f);
    if (mfx_cpuinfo_field("processor", buf, sizeof buf)) {
      ck_assert_int_gt((int)strlen(buf), 0);
      ck_assert(buf[0] != ' ' && buf[0] != '\t' && strchr(buf, '\n') == NULL);
    }
  }
  snprintf(buf, sizeof buf, "kept");
  ck_assert_int_eq(mfx_cpuinfo_field("no such cpuinfo key", buf, sizeof buf), 0);
  ck_assert_int_eq(mfx_cpuinfo_field("proc", buf, sizeof buf), 0);
  ck_assert_int_eq(mfx_cpuinfo_field(NULL, buf, sizeof buf), 0);
  ck_assert_int_eq(mfx_cpuinfo_field("processor", NULL, 16), 0);
  ck_assert_int_eq(mfx_cpuinfo_field("processor", buf, 0), 0);
  ck_assert_str_eq(buf, "kept");
  char small[3];
  if (mfx_cpuinfo_field("model name", small, sizeof small)) ck_assert_int_le((int)strlen(small), 2);
}
END_TEST

static Suite *runtime_suite(void) {
  Suite *s = suite_create("runtime");
  TCase *status = tcase_create("status");
  tcase_add_test(status, test_fail_sets_message);
  tcase_add_test(status, test_fail_context_prefixes);
  tcase_add_test(status, test_fail_may_quote_itself);
  tcase_add_test(status, test_fail_truncates_long_messages);
  tcase_add_test(status, test_messages_are_per_thread);
  tcase_add_test(status, test_status_names);
  tcase_add_test(status, test_cpuinfo_field);
  suite_add_tcase(s, status);
  TCase *arrays = tcase_create("arrays");
  tcase_add_test(arrays, test_dtype_table);
  tcase_add_test(arrays, test_enum_names);
  tcase_add_test(arrays, test_timing_loop);
  tcase_add_test(arrays, test_array_create);
  tcase_add_test(arrays, test_array_create_errors);
  suite_add_tcase(s, arrays);
  TCase *npy = tcase_create("npy");
  tcase_set_timeout(npy, 120);
  tcase_add_test(npy, test_npy_round_trip);
  tcase_add_test(npy, test_npy_save_header_text);
  tcase_add_test(npy, test_npy_save_errors);
  tcase_add_test(npy, test_npy_from_numpy);
  tcase_add_test(npy, test_npy_missing_file);
  tcase_add_test(npy, test_npy_bad_magic);
  tcase_add_test(npy, test_npy_truncated);
  tcase_add_test(npy, test_npy_size_disagrees_with_header);
  tcase_add_test(npy, test_npy_headers_accepted);
  tcase_add_loop_test(npy, test_npy_bad_headers, 0,
                      (int)(sizeof bad_headers / sizeof bad_headers[0]));
  suite_add_tcase(s, npy);
  TCase *pool = tcase_create("pool");
  tcase_set_timeout(pool, 60); /* a deadlock fails here instead of hanging */
  tcase_add_test(pool, test_pool_covers_every_index_once);
  tcase_add_test(pool, test_pool_default_and_limits);
  tcase_add_test(pool, test_pool_runs_concurrently);
  tcase_add_test(pool, test_pool_nested_runs_serially);
  tcase_add_test(pool, test_pool_shared_by_two_callers);
  tcase_add_test(pool, test_kernel_env);
  tcase_add_test(pool, test_kernel_env_reuses_workspace);
  tcase_add_test(pool, test_now_is_monotonic);
  suite_add_tcase(s, pool);
  return s;
}

int main(void) {
  return check_run_suite(runtime_suite());
}
