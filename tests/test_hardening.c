/* Hardening (issue 15) through the C API: each bug found by the audits of
 * main, as a test that failed before its fix.
 *
 * - the runtime's op interfaces say what the ops say (ops/registry.c);
 * - a resealed artifact whose dims, shapes or dtypes disagree is refused;
 * - index and shift inputs out of range are refused before any launch, and
 *   the references never read past their rows;
 * - --check's comparison: NaN equals NaN, an infinity itself, and the first
 *   differing element is reported;
 * - reads refuse non-regular files and files over their cap; writes never
 *   replace anything but a regular file;
 * - sizes are checked before anything is allocated;
 * - alpha and latency tables within bounds, the loss finite;
 * - the tuning database: read-only opens, imports that say what is wrong,
 *   rows without a time never the best. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mfx/artifact.h"
#include "mfx/autotune.h"
#include "mfx/moe.h"
#include "mfx/ops.h"
#include "mfx/reference.h"
#include "mfx/router.h"
#include "check_main.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char temp_dir[256];

static void temp_dir_create(void) {
  snprintf(temp_dir, sizeof temp_dir, "%s/mfx_hardening.XXXXXX",
           getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(temp_dir));
}

static void temp_dir_remove(void) {
  DIR *d = opendir(temp_dir);
  if (d == NULL) return;
  struct dirent *e;
  char path[600];
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", temp_dir, e->d_name);
    if (unlink(path) != 0) rmdir(path);
  }
  closedir(d);
  rmdir(temp_dir);
}

static const char *temp_path(const char *name) {
  static char paths[8][600];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 600, "%s/%s", temp_dir, name);
  return p;
}

static void write_text(const char *path, const char *text, size_t size) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, size, f), size);
  ck_assert_int_eq(fclose(f), 0);
}

static void ok(mfx_status st) { ck_assert_msg(st == MFX_OK, "%s", mfx_last_error()); }

static void assert_error(mfx_status got, mfx_status want, const char *needle) {
  ck_assert_msg(got == want, "status %s, expected %s (%s)", mfx_status_name(got),
                mfx_status_name(want), mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "message \"%s\" lacks \"%s\"",
                mfx_last_error(), needle);
}

/* A CPU kernel of op under dims with the default configuration. */
static void build_op(const char *op_name, const int64_t *dims, mfx_artifact_kernel *k) {
  const mfx_op *op = mfx_op_find(op_name);
  ck_assert_ptr_nonnull(op);
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  memset(k, 0, sizeof *k);
  snprintf(k->name, sizeof k->name, "%s", op->name);
  snprintf(k->op, sizeof k->op, "%s", op->name);
  k->n_dims = op->n_dims;
  for (int d = 0; d < op->n_dims; d++) {
    snprintf(k->dim_names[d], sizeof k->dim_names[d], "%s", op->dims[d]);
    k->dims[d] = dims[d];
  }
  snprintf(k->target, sizeof k->target, "cpu");
  mfx_config_to_json(&cfg, k->config, sizeof k->config);
  mfx_arena *arena = mfx_arena_create();
  mfx_schedule *s = NULL;
  ok(op->build(arena, dims, &cfg, &s));
  ok(mfx_artifact_build(s, k));
  mfx_arena_destroy(arena);
}

static unsigned char *encode_one(const mfx_artifact_kernel *k, size_t *size) {
  void *data = NULL;
  ok(mfx_artifact_encode(k, 1, &data, size));
  return data;
}

/* Little-endian fields and the checksum, independently of runtime/artifact.c. */
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void reseal(unsigned char *image, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) h = (h ^ (i >= 24 && i < 32 ? 0 : image[i])) * 0x100000001b3ull;
  put_u64(image + 24, h);
}

/* The offset of section `type` (1 kernel record, 2 arguments) of kernel 0. */
static size_t section_of(const unsigned char *image, uint32_t type) {
  uint32_t n = (uint32_t)image[36] | (uint32_t)image[37] << 8;
  for (uint32_t i = 0; i < n; i++) {
    const unsigned char *e = image + 64 + 32 * i;
    if (e[0] == type && e[4] == 0) return (size_t)get_u64(e + 8);
  }
  ck_abort_msg("no section %u", type);
  return 0;
}

/* ---- the runtime's op interfaces ---------------------------------------------------------- */

static void same_tensor(const char *op, const mfx_op_tensor *t, const mfx_op_interface_tensor *f) {
  ck_assert_msg(strcmp(t->name, f->name) == 0 && t->dtype == f->dtype && t->ndim == f->ndim,
                "%s: tensor %s differs from the runtime's %s", op, t->name, f->name);
  for (int i = 0; i < t->ndim; i++)
    ck_assert_msg(strcmp(t->shape[i], f->shape[i]) == 0, "%s %s: axis %d is %s, runtime %s", op,
                  t->name, i, t->shape[i], f->shape[i]);
}

START_TEST(interfaces_match_the_ops) {
  ck_assert_int_eq(mfx_op_interface_count(), mfx_op_count());
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    const mfx_op_interface *f = mfx_op_interface_find(op->name);
    ck_assert_msg(f != NULL, "the runtime does not know op %s", op->name);
    ck_assert_int_eq(f->n_dims, op->n_dims);
    for (int d = 0; d < op->n_dims; d++) ck_assert_str_eq(f->dims[d], op->dims[d]);
    ck_assert_int_eq(f->n_inputs, op->n_inputs);
    ck_assert_int_eq(f->n_outputs, op->n_outputs);
    for (int t = 0; t < op->n_inputs; t++) same_tensor(op->name, &op->inputs[t], &f->inputs[t]);
    for (int t = 0; t < op->n_outputs; t++)
      same_tensor(op->name, &op->outputs[t], &f->outputs[t]);
  }
  ck_assert_ptr_null(mfx_op_interface_find("vadd"));
}
END_TEST

/* ---- resealed artifacts whose fields disagree --------------------------------------------- */

START_TEST(resealed_metadata_refused) {
  mfx_artifact_kernel k;
  build_op("linear", (int64_t[]){37, 5, 3}, &k);
  size_t size = 0;
  unsigned char *good = encode_one(&k, &size);
  unsigned char *image = malloc(size);
  size_t record = section_of(good, 1), args = section_of(good, 2);
  struct { const char *what; size_t at; uint64_t value; const char *text; } edits[] = {
      {"kernel record M=1000, arguments 37", record + 592 + 16, 1000, NULL},
      {"output Y [37, 4]", args + 2 * 144 + 80 + 8, 4, NULL},
      {"input X dtype i32", args + 64, 0, "i32"},
      {"input W named V", args + 144, 0, "V"},
  };
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
    memcpy(image, good, size);
    if (edits[i].text != NULL) memcpy(image + edits[i].at, edits[i].text, strlen(edits[i].text));
    else put_u64(image + edits[i].at, edits[i].value);
    reseal(image, size);
    mfx_artifact_kernel *kernels = NULL;
    int n = 0;
    mfx_status st = mfx_artifact_decode(image, size, "k.mfxa", &kernels, &n);
    ck_assert_msg(st == MFX_ERR_FORMAT && strstr(mfx_last_error(), "disagree") != NULL,
                  "%s: status %s (%s)", edits[i].what, mfx_status_name(st), mfx_last_error());
    free(kernels);
    mfx_artifact *art = NULL;
    assert_error(mfx_artifact_load_memory(image, size, "k.mfxa", NULL, &art), MFX_ERR_FORMAT,
                 "op linear with the kernel's dims takes");
  }
  /* The encoder refuses the same lies. */
  mfx_artifact_kernel lie = k;
  lie.dims[0] = 1000;
  void *data = NULL;
  assert_error(mfx_artifact_encode(&lie, 1, &data, &size), MFX_ERR_FORMAT, "disagree");
  lie = k;
  snprintf(lie.dim_names[0], sizeof lie.dim_names[0], "N");
  snprintf(lie.dim_names[1], sizeof lie.dim_names[1], "M");
  assert_error(mfx_artifact_encode(&lie, 1, &data, &size), MFX_ERR_FORMAT,
               "takes the dims M,N,K in this order");
  free(image);
  free(good);
  mfx_artifact_kernel_release(&k);
}
END_TEST

/* ---- index and shift inputs --------------------------------------------------------------- */

static void gather_inputs(mfx_array *in, const int32_t *idx) {
  ok(mfx_array_create(&in[0], MFX_F32, 2, (int64_t[]){7, 3}));
  ok(mfx_array_create(&in[1], MFX_I32, 1, (int64_t[]){5}));
  for (int i = 0; i < 21; i++) ((float *)in[0].data)[i] = (float)i;
  memcpy(in[1].data, idx, 5 * sizeof *idx);
}

START_TEST(index_inputs_checked) {
  const int64_t dims[3] = {7, 5, 3};
  mfx_array in[2];
  gather_inputs(in, (const int32_t[]){0, 6, -1, 2, 3});
  ok(mfx_op_check_inputs("gather_rows", dims, 2, in, "test"));
  ok(mfx_op_check_inputs("vadd", dims, 2, in, "test")); /* an op it does not know */
  struct { int32_t value; const char *needle; } bad[] = {
      {100000000, "test: gather_rows input IDX[2] = 100000000 is not a row of the T=7 rows"},
      {7, "IDX[2] = 7 is not a row"},
      {-2, "IDX[2] = -2"},
      {INT32_MIN, "IDX[2] = -2147483648"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ((int32_t *)in[1].data)[2] = bad[i].value;
    assert_error(mfx_op_check_inputs("gather_rows", dims, 2, in, "test"), MFX_ERR_INVALID,
                 bad[i].needle);
  }
  assert_error(mfx_op_check_inputs("gather_rows", dims, 1, in, "test"), MFX_ERR_INVALID,
               "takes 2 inputs");
  mfx_array_free(&in[0]);
  mfx_array_free(&in[1]);

  /* combine_rows: ROWS below R; shift_linear: S in 0..15, G in -1..1 */
  mfx_array c[3];
  ok(mfx_array_create(&c[0], MFX_F32, 2, (int64_t[]){4, 5}));
  ok(mfx_array_create(&c[1], MFX_I32, 2, (int64_t[]){3, 2}));
  ok(mfx_array_create(&c[2], MFX_F32, 2, (int64_t[]){3, 2}));
  ((int32_t *)c[1].data)[3] = 4;
  assert_error(mfx_op_check_inputs("combine_rows", (int64_t[]){4, 3, 2, 5}, 3, c, "t"),
               MFX_ERR_INVALID, "ROWS[1, 1] = 4 is not a row of the R=4 rows");
  for (int i = 0; i < 3; i++) mfx_array_free(&c[i]);
  mfx_array s[3];
  ok(mfx_array_create(&s[0], MFX_I32, 2, (int64_t[]){2, 3}));
  ok(mfx_array_create(&s[1], MFX_I8, 2, (int64_t[]){4, 3}));
  ok(mfx_array_create(&s[2], MFX_I8, 2, (int64_t[]){4, 3}));
  const int64_t sdims[3] = {2, 4, 3};
  ((int8_t *)s[1].data)[5] = 15;
  ((int8_t *)s[2].data)[5] = -1;
  ok(mfx_op_check_inputs("shift_linear", sdims, 3, s, "t"));
  ((int8_t *)s[1].data)[5] = 16;
  assert_error(mfx_op_check_inputs("shift_linear", sdims, 3, s, "t"), MFX_ERR_INVALID,
               "S[1, 2] = 16 is outside 0..15");
  ((int8_t *)s[1].data)[5] = -1;
  assert_error(mfx_op_check_inputs("shift_linear", sdims, 3, s, "t"), MFX_ERR_INVALID,
               "S[1, 2] = -1 is outside 0..15");
  ((int8_t *)s[1].data)[5] = 0;
  ((int8_t *)s[2].data)[0] = 2;
  assert_error(mfx_op_check_inputs("shift_linear", sdims, 3, s, "t"), MFX_ERR_INVALID,
               "G[0, 0] = 2 is outside -1..1");
  for (int i = 0; i < 3; i++) mfx_array_free(&s[i]);
}
END_TEST

/* Every run of an artifact checks them before the launch. */
START_TEST(artifact_runs_check_indices) {
  mfx_artifact_kernel k;
  build_op("gather_rows", (int64_t[]){7, 5, 3}, &k);
  size_t size = 0;
  unsigned char *image = encode_one(&k, &size);
  mfx_artifact *art = NULL;
  ok(mfx_artifact_load_memory(image, size, "g.mfxa", NULL, &art));
  mfx_array in[2], out, want;
  gather_inputs(in, (const int32_t[]){0, 6, -1, 2, 100000000});
  ok(mfx_array_create(&out, MFX_F32, 2, (int64_t[]){5, 3}));
  assert_error(mfx_artifact_run(art, 0, 2, in, 1, &out), MFX_ERR_INVALID,
               "artifact g.mfxa: kernel gather_rows: gather_rows input IDX[4] = 100000000");
  double seconds = 0.0;
  assert_error(mfx_artifact_time(art, 0, 2, in, 1, &out, 2, &seconds), MFX_ERR_INVALID,
               "IDX[4] = 100000000");
  ((int32_t *)in[1].data)[4] = 3;
  ok(mfx_artifact_run(art, 0, 2, in, 1, &out));
  ok(mfx_array_create(&want, MFX_F32, 2, (int64_t[]){5, 3}));
  mfx_reference_find("gather_rows")->reference((int64_t[]){7, 5, 3}, in, &want);
  ck_assert(mfx_compare_arrays(&out, &want, 0.0).ok);
  mfx_artifact_free(art);
  mfx_array_free(&in[0]);
  mfx_array_free(&in[1]);
  mfx_array_free(&out);
  mfx_array_free(&want);
  free(image);
  mfx_artifact_kernel_release(&k);
}
END_TEST

/* A row past the end is never read (under ASan a read would be reported):
 * the reference treats it as "no row" (zeros), as the kernels do. */
START_TEST(references_never_read_past_their_rows) {
  mfx_array in[3], out;
  gather_inputs(in, (const int32_t[]){0, 7, -1, 100000000, 6});
  ok(mfx_array_create(&out, MFX_F32, 2, (int64_t[]){5, 3}));
  mfx_reference_find("gather_rows")->reference((int64_t[]){7, 5, 3}, in, &out);
  const float *y = out.data;
  ck_assert(y[0] == 0.0f && y[3] == 0.0f && y[6] == 0.0f && y[9] == 0.0f && y[12] == 18.0f);
  mfx_array_free(&in[1]);
  mfx_array_free(&out);
  ok(mfx_array_create(&in[1], MFX_I32, 2, (int64_t[]){2, 2}));
  ok(mfx_array_create(&in[2], MFX_F32, 2, (int64_t[]){2, 2}));
  ((int32_t *)in[1].data)[1] = 7; /* token 0, slot 1: past R = 7 rows */
  for (int i = 0; i < 4; i++) ((float *)in[2].data)[i] = 1.0f;
  ok(mfx_array_create(&out, MFX_F32, 2, (int64_t[]){2, 3}));
  mfx_reference_find("combine_rows")->reference((int64_t[]){7, 2, 2, 3}, in, &out);
  ck_assert(((float *)out.data)[0] == 0.0f && ((float *)out.data)[3] == 0.0f);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&out);
}
END_TEST

/* ---- the comparison of --check ------------------------------------------------------------- */

START_TEST(compare_non_finite) {
  mfx_array a, b;
  ok(mfx_array_create(&a, MFX_F32, 1, (int64_t[]){5}));
  ok(mfx_array_create(&b, MFX_F32, 1, (int64_t[]){5}));
  float *x = a.data, *y = b.data;
  const float values[5] = {1.0f, NAN, INFINITY, -INFINITY, 2.0f};
  memcpy(x, values, sizeof values);
  memcpy(y, values, sizeof values);
  mfx_compare c = mfx_compare_arrays(&a, &b, 1e-4);
  ck_assert_msg(c.ok && c.max_abs_err == 0.0 && c.max_rel_err == 0.0 && c.first_index == -1,
                "bit-identical output with NaN and infinities: ok=%d abs=%g", c.ok,
                c.max_abs_err);
  x[2] = -INFINITY; /* inf - (-inf): a mismatch, not a NaN that slips past */
  c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok && c.first_index == 2 && c.first_got == -INFINITY &&
            c.first_want == INFINITY);
  x[2] = INFINITY;
  x[4] = NAN;
  c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok && c.first_index == 4 && isnan(c.first_got) && c.first_want == 2.0);
  x[4] = 2.0f;
  x[1] = 3.0f; /* a number where the reference has NaN */
  c = mfx_compare_arrays(&a, &b, INFINITY);
  ck_assert(!c.ok && c.first_index == 1 && c.first_got == 3.0);
  x[1] = NAN;
  x[0] = 1.00001f; /* within tolerance: the first difference is still reported */
  c = mfx_compare_arrays(&a, &b, 1e-4);
  ck_assert(c.ok && c.first_index == 0 && c.first_want == 1.0);
  mfx_array_free(&a);
  mfx_array_free(&b);
  ok(mfx_array_create(&a, MFX_I32, 1, (int64_t[]){3}));
  ok(mfx_array_create(&b, MFX_I32, 1, (int64_t[]){3}));
  ((int32_t *)a.data)[1] = -5;
  c = mfx_compare_arrays(&a, &b, 0.0);
  ck_assert(!c.ok && c.first_index == 1 && c.first_got == -5.0 && c.first_want == 0.0);
  mfx_array_free(&a);
  mfx_array_free(&b);
}
END_TEST

/* ---- files ------------------------------------------------------------------------------- */

START_TEST(reads_take_regular_files_within_a_cap) {
  temp_dir_create();
  char *data = NULL;
  size_t size = 0;
  ck_assert_int_eq(symlink("/dev/zero", temp_path("zero")), 0);
  assert_error(mfx_file_read(temp_path("zero"), "latency table", 100, &data, &size), MFX_ERR_IO,
               "zero: not a regular file (a character device); refusing to read it");
  ck_assert_int_eq(mkfifo(temp_path("fifo"), 0600), 0);
  assert_error(mfx_file_read(temp_path("fifo"), "kernel text", 100, &data, &size), MFX_ERR_IO,
               "not a regular file (a FIFO)");
  FILE *f = NULL;
  assert_error(mfx_file_open_read(temp_path("fifo"), "npy", 100, &f, &size), MFX_ERR_IO,
               "a FIFO");
  assert_error(mfx_file_read(temp_dir, "artifact", 100, &data, &size), MFX_ERR_IO,
               "a directory");
  assert_error(mfx_file_read(temp_path("missing"), "x", 100, &data, &size), MFX_ERR_NOT_FOUND,
               "cannot open: No such file");
  write_text(temp_path("eleven"), "0123456789a", 11);
  assert_error(mfx_file_read(temp_path("eleven"), "db import", 10, &data, &size), MFX_ERR_IO,
               "11 bytes, larger than the cap of 10 bytes for a db import");
  ok(mfx_file_read(temp_path("eleven"), "x", 11, &data, &size));
  ck_assert_uint_eq(size, 11);
  ck_assert_str_eq(data, "0123456789a");
  free(data);
  /* through the readers that use it */
  mfx_array a;
  assert_error(mfx_npy_load(temp_path("zero"), &a), MFX_ERR_IO, "not a regular file");
  void *image = NULL;
  assert_error(mfx_artifact_read_file(temp_path("fifo"), &image, &size), MFX_ERR_IO,
               "not a regular file");
  mfx_latency_table *t = malloc(sizeof *t);
  assert_error(mfx_latency_load(temp_path("zero"), "cpu", t), MFX_ERR_IO, "not a regular file");
  free(t);
  temp_dir_remove();
}
END_TEST

static int count_entries(void) {
  DIR *d = opendir(temp_dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

START_TEST(writes_replace_regular_files_only) {
  temp_dir_create();
  const char *image = "new contents";
  write_text(temp_path("target"), "old", 3);
  ck_assert_int_eq(symlink(temp_path("target"), temp_path("link")), 0);
  ck_assert_int_eq(mkfifo(temp_path("fifo"), 0600), 0);
  ck_assert_int_eq(mkdir(temp_path("dir"), 0700), 0);
  int device = geteuid() == 0 && mknod(temp_path("full"), S_IFCHR | 0600, makedev(1, 7)) == 0;
  int before = count_entries();
  struct { const char *name; const char *kind; } refused[] = {
      {"link", "a symbolic link"}, {"fifo", "a FIFO"}, {"dir", "a directory"},
      {"full", "a character device"}};
  for (int i = 0; i < 3 + device; i++) {
    assert_error(mfx_file_write(temp_path(refused[i].name), "artifact", image, strlen(image)),
                 MFX_ERR_IO, refused[i].kind);
    ck_assert_msg(strstr(mfx_last_error(), "refusing to replace it") != NULL, "%s",
                  mfx_last_error());
  }
  struct stat sb;
  ck_assert(lstat(temp_path("link"), &sb) == 0 && S_ISLNK(sb.st_mode));
  ck_assert(lstat(temp_path("fifo"), &sb) == 0 && S_ISFIFO(sb.st_mode));
  ck_assert(!device || (lstat(temp_path("full"), &sb) == 0 && S_ISCHR(sb.st_mode)));
  ck_assert_int_eq(count_entries(), before); /* no temporary files left */
  /* through the writers that use it */
  mfx_array a;
  ok(mfx_array_create(&a, MFX_F32, 1, (int64_t[]){3}));
  assert_error(mfx_npy_save(temp_path("fifo"), &a), MFX_ERR_IO, "refusing to replace it");
  assert_error(mfx_artifact_write_file(temp_path("link"), image, 5), MFX_ERR_IO, "symbolic link");
  mfx_array_free(&a);
  char *back = NULL;
  size_t size = 0;
  ok(mfx_file_read(temp_path("target"), "x", 100, &back, &size));
  ck_assert_str_eq(back, "old");
  free(back);
  /* a regular file (or none) is replaced whole */
  ok(mfx_file_write(temp_path("target"), "artifact", image, strlen(image)));
  ok(mfx_file_write(temp_path("fresh"), "artifact", image, strlen(image)));
  ok(mfx_file_read(temp_path("target"), "x", 100, &back, &size));
  ck_assert_str_eq(back, image);
  free(back);
  mfx_file_writer w;
  ok(mfx_file_write_begin(&w, temp_path("aborted"), "x"));
  fputs("half", w.f);
  mfx_file_write_abort(&w);
  ck_assert_int_eq(access(temp_path("aborted"), F_OK), -1);
  ck_assert_int_eq(count_entries(), before + 1);
  temp_dir_remove();
}
END_TEST

/* ---- sizes ------------------------------------------------------------------------------- */

START_TEST(sizes_checked_before_allocating) {
  mfx_array a;
  assert_error(mfx_array_create(&a, MFX_F32, 2, (int64_t[]){1000000, 1000000}), MFX_ERR_NOMEM,
               "array f32 [1000000, 1000000]: 4000000000000 bytes");
  ck_assert_ptr_null(a.data);
  const mfx_op *linear = mfx_op_find("linear"), *matadd = mfx_op_find("matadd");
  int64_t dims[MFX_OP_MAX_DIMS];
  ok(mfx_op_parse_dims(linear, "M=1000000,N=1000000,K=1", dims));
  assert_error(mfx_op_check_memory(linear, dims), MFX_ERR_NOMEM,
               "linear: output Y f32 [1000000, 1000000] needs 4000000000000 bytes");
  assert_error(mfx_op_parse_dims(matadd, "B=2147483648,H=2147483648,N=2147483648,D=4,C=4", dims),
               MFX_ERR_INVALID, "input Hc would be i8 [2147483648, 2147483648, 2147483648, 4]");
  ok(mfx_op_parse_dims(linear, "M=64,N=32,K=16", dims));
  ok(mfx_op_check_memory(linear, dims));
}
END_TEST

/* ---- router loss and latency tables ------------------------------------------------------ */

static const char latency_table[] =
    "{\"format\": \"mfx-latency-1\", \"devices\": {\"cpu: t\": {\"device\": \"cpu: t\", "
    "\"target\": \"cpu\", \"dim\": 8, \"hidden\": 16, \"at_tokens\": 8, \"experts\": ["
    "{\"name\": \"mult\", \"tokens\": [8, 16], \"seconds\": [1e-3, 2e-3], \"a\": 0, \"b\": 1e-4, "
    "\"r2\": 1, \"latency\": %s}, "
    "{\"name\": \"shift\", \"tokens\": [8, 16], \"seconds\": [1e-3, 2e-3], \"a\": 0, \"b\": 1e-4, "
    "\"r2\": 1, \"latency\": 1e-3}], \"alpha\": [%s, 1.0]}}}";

START_TEST(alpha_and_latency_bounded) {
  float logits[8] = {0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f};
  double loss = 0.0;
  assert_error(mfx_router_loss(MFX_ROUTER_LATENCY, logits, 4, 2, 1, (double[]){1e308, 1.0}, 2,
                               NULL, &loss, NULL),
               MFX_ERR_INVALID, "alpha[0]=1e+308; expected 0 < alpha <= 1e+06");
  ok(mfx_router_loss(MFX_ROUTER_LATENCY, logits, 4, 2, 1, (double[]){0.5, 1.5}, 2, NULL, &loss,
                     NULL));
  ck_assert(isfinite(loss));
  temp_dir_create();
  struct { const char *latency, *alpha, *needle; } bad[] = {
      {"1e-3", "1e308", "\"alpha\" holds a value outside 0 < alpha <= 1e6"},
      {"-1e-3", "1.0", "\"latency\" is not finite and positive"},
  };
  char text[2048];
  mfx_latency_table *t = malloc(sizeof *t);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int n = snprintf(text, sizeof text, latency_table, bad[i].latency, bad[i].alpha);
    write_text(temp_path("latency.json"), text, (size_t)n);
    assert_error(mfx_latency_load(temp_path("latency.json"), "cpu: t", t), MFX_ERR_FORMAT,
                 bad[i].needle);
  }
  int n = snprintf(text, sizeof text, latency_table, "1e-3", "1.0");
  write_text(temp_path("latency.json"), text, (size_t)n);
  ok(mfx_latency_load(temp_path("latency.json"), "cpu: t", t));
  free(t);
  temp_dir_remove();
}
END_TEST

/* ---- the tuning database ------------------------------------------------------------------ */

static const char import_line[] =
    "{\"op\":\"%s\",\"dims\":\"%s\",\"dtypes\":\"X:f32->Y:f32\",\"target\":\"cpu\","
    "\"arch\":\"x86_64 test\",\"device\":\"test\",\"version\":\"mfx test\","
    "\"config\":{\"vector\":8,\"vec\":1,\"parallel\":1},\"status\":\"ok\",\"median_s\":%s,"
    "\"session\":\"s\",\"created\":1700000000}\n";

static mfx_status import_text(mfx_tune_db *db, const char *text, size_t size) {
  write_text(temp_path("import.jsonl"), text, size);
  FILE *f = fopen(temp_path("import.jsonl"), "r");
  int added = 0, skipped = 0;
  mfx_status st = mfx_tune_db_import(db, f, "import.jsonl", &added, &skipped);
  fclose(f);
  return st;
}

static mfx_status import_one(mfx_tune_db *db, const char *op, const char *dims,
                             const char *median) {
  char line[1024];
  int n = snprintf(line, sizeof line, import_line, op, dims, median);
  return import_text(db, line, (size_t)n);
}

static int list_one(void *user, const mfx_tune_task_info *t) {
  *(mfx_tune_task_info *)user = *t;
  return 0;
}

START_TEST(database_checks) {
  temp_dir_create();
  mfx_tune_db *db = NULL;
  write_text(temp_path("empty.db"), "", 0);
  assert_error(mfx_tune_db_open_readonly(temp_path("empty.db"), &db), MFX_ERR_FORMAT,
               "the file is empty or holds no tables");
  struct stat sb;
  ck_assert(stat(temp_path("empty.db"), &sb) == 0 && sb.st_size == 0);
  assert_error(mfx_tune_db_open_readonly(temp_path("none.db"), &db), MFX_ERR_NOT_FOUND,
               "no such file");
  ok(mfx_tune_db_open(temp_path("t.db"), &db));
  assert_error(import_one(db, "nosuch", "M=4,N=8", "1e-3"), MFX_ERR_FORMAT,
               "line 1: unknown op \"nosuch\"");
  assert_error(import_one(db, "gelu", "M=-5,N=abc", "1e-3"), MFX_ERR_FORMAT,
               "line 1: dims of gelu: M=-5 must be positive");
  assert_error(import_one(db, "gelu", "M=4,N=8", "1e999"), MFX_ERR_FORMAT,
               "\"median_s\" must be a finite number");
  char nul[64] = {0};
  assert_error(import_text(db, nul, sizeof nul), MFX_ERR_FORMAT, "a NUL byte");
  ok(import_one(db, "gelu", "M=4,N=8", "2e-3"));
  mfx_tune_db_close(db);
  /* A row whose time is NULL (a broken writer) is never a best. */
  sqlite3 *h = NULL;
  ck_assert_int_eq(sqlite3_open(temp_path("t.db"), &h), SQLITE_OK);
  ck_assert_int_eq(sqlite3_exec(h, "UPDATE mfx_trials SET median_s = NULL", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(h);
  ok(mfx_tune_db_open_readonly(temp_path("t.db"), &db));
  mfx_tune_task_info info;
  memset(&info, 0, sizeof info);
  ok(mfx_tune_db_list(db, list_one, &info));
  ck_assert_str_eq(info.op, "gelu");
  ck_assert_int_eq(info.trials, 1);
  ck_assert_int_eq(info.ok, 0);
  mfx_tune_db_close(db);
  temp_dir_remove();
}
END_TEST

static Suite *hardening_suite(void) {
  Suite *s = suite_create("hardening");
  TCase *artifacts = tcase_create("artifacts");
  tcase_set_timeout(artifacts, 240);
  tcase_add_test(artifacts, interfaces_match_the_ops);
  tcase_add_test(artifacts, resealed_metadata_refused);
  tcase_add_test(artifacts, index_inputs_checked);
  tcase_add_test(artifacts, artifact_runs_check_indices);
  tcase_add_test(artifacts, references_never_read_past_their_rows);
  tcase_add_test(artifacts, compare_non_finite);
  suite_add_tcase(s, artifacts);
  TCase *files = tcase_create("files");
  tcase_set_timeout(files, 240);
  tcase_add_test(files, reads_take_regular_files_within_a_cap);
  tcase_add_test(files, writes_replace_regular_files_only);
  tcase_add_test(files, sizes_checked_before_allocating);
  tcase_add_test(files, alpha_and_latency_bounded);
  tcase_add_test(files, database_checks);
  suite_add_tcase(s, files);
  return s;
}

int main(void) {
  return check_run_suite(hardening_suite());
}
