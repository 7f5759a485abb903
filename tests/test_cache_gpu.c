/* The kernel cache's GPU entries: PTX text from mfx_codegen_ptx (compiler/
 * target_nvptx.c through compiler/cache.c). No GPU needed: PTX is text.
 * Every test sets its own MFX_CACHE_DIR under a fresh temporary directory;
 * Check forks each test, so the cache's once-per-process setup is fresh.
 * "No codegen" is read from the cache's codegen counter, which the nvptx
 * target bumps each time it builds a module. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../compiler/cache.h"
#include "cache_fixture.h"
#include "mfx/compiler.h"
#include "mfx/ops.h"
#include "check_main.h"

static void setup(void) { cache_fixture_open("mfx_test_cache_gpu"); }
static void teardown(void) { cache_fixture_close(); }

/* The GPU program of an op at dims (default config), in A. */
static mfx_gpu_program *program(const char *opname, const char *dims_text) {
  const mfx_op *op = mfx_op_find(opname);
  ck_assert_ptr_nonnull(op);
  int64_t dims[MFX_OP_MAX_DIMS];
  ck_assert_int_eq(mfx_op_parse_dims(op, dims_text, dims), MFX_OK);
  mfx_gpu_program *p = NULL;
  mfx_status st = mfx_op_gpu_program(op, A, dims, NULL, &p);
  ck_assert_msg(st == MFX_OK, "%s %s: %s", opname, dims_text, mfx_last_error());
  return p;
}

static char *ptx(const mfx_gpu_program *p, const char *sm) {
  char *text = NULL;
  size_t size = 0;
  mfx_status st = mfx_codegen_ptx(p, sm, &text, &size);
  ck_assert_msg(st == MFX_OK, "PTX for %s: %s", sm, mfx_last_error());
  ck_assert_ptr_nonnull(text);
  ck_assert_uint_eq(strlen(text), size); /* a C string, hit or miss */
  ck_assert_ptr_nonnull(strstr(text, ".entry"));
  return text;
}

START_TEST(ptx_miss_then_hit) {
  mfx_gpu_program *p = program("linear", "M=13,N=9,K=5");
  char *cold = ptx(p, "sm_80");
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.misses, 1);
  ck_assert_int_eq(s.codegens, 1);
  ck_assert_int_eq(s.writes, 1);
  ck_assert_int_eq(cache_entries(".mfxp", NULL, 0), 1);
  ck_assert_int_eq(cache_entries("", NULL, 0), 1);
  mfx_compile_times_reset();
  char *warm = ptx(p, "sm_80");
  s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 1);
  ck_assert_int_eq(s.codegens, 1); /* no codegen */
  ck_assert_str_eq(warm, cold);
  mfx_compile_times t;
  mfx_compile_times_get(&t);
  ck_assert_int_eq(t.cached, 1);
  ck_assert_int_eq(t.builds, 0);
  free(cold);
  free(warm);
  /* the same op at other dims is another kernel: another entry */
  free(ptx(program("linear", "M=14,N=9,K=5"), "sm_80"));
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
  ck_assert_int_eq(cache_entries(".mfxp", NULL, 0), 2);
}
END_TEST

/* Another sm is another key: sm_86 PTX is never handed out for sm_80, nor
 * the sm_80 PTX made for sm_90 (its note names sm_90) for sm_80. */
START_TEST(ptx_other_sm_misses) {
  mfx_gpu_program *p = program("matadd", "B=1,H=2,N=7,D=5,C=3");
  char *a = ptx(p, "sm_80"), *b = ptx(p, "sm_86"), *c = ptx(p, "sm_90");
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 0);
  ck_assert_int_eq(s.codegens, 3);
  ck_assert_int_eq(cache_entries(".mfxp", NULL, 0), 3);
  ck_assert_ptr_nonnull(strstr(a, ".target sm_80"));
  ck_assert_ptr_nonnull(strstr(b, ".target sm_86"));
  ck_assert_ptr_nonnull(strstr(c, "requested sm_90"));
  char *again = ptx(p, "sm_86");
  ck_assert_str_eq(again, b);
  ck_assert_int_eq(mfx_cache_get_stats().hits, 1);
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 3);
  free(a);
  free(b);
  free(c);
  free(again);
}
END_TEST

static void damage_ptx(int truncate_it) {
  mfx_gpu_program *p = program("hamming", "N=11,M=6,W=2");
  char *cold = ptx(p, "sm_75");
  char path[512];
  ck_assert_int_eq(cache_entries(".mfxp", path, sizeof path), 1);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  if (truncate_it) {
    ck_assert_int_eq(truncate(path, st.st_size - 7), 0);
  } else {
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    char b;
    ck_assert_int_eq(pread(fd, &b, 1, st.st_size - 20), 1);
    b ^= 0x01;
    ck_assert_int_eq(pwrite(fd, &b, 1, st.st_size - 20), 1);
    close(fd);
  }
  char *rebuilt = ptx(p, "sm_75");
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.corrupt, 1);
  ck_assert_int_eq(s.hits, 0);
  ck_assert_int_eq(s.codegens, 2); /* rebuilt, never loaded */
  ck_assert_str_eq(rebuilt, cold);
  char *warm = ptx(p, "sm_75"); /* the replaced entry is good */
  ck_assert_int_eq(mfx_cache_get_stats().hits, 1);
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
  ck_assert_str_eq(warm, cold);
  free(cold);
  free(rebuilt);
  free(warm);
}

START_TEST(ptx_flipped_byte_rebuilt) { damage_ptx(0); }
END_TEST

START_TEST(ptx_truncated_rebuilt) { damage_ptx(1); }
END_TEST

/* An entry is loaded only as the kind its header names: a PTX entry renamed
 * to a host object's name is no object (and the same key never collides
 * anyway: the target is in it). */
START_TEST(kind_checked_on_read) {
  mfx_gpu_program *p = program("linear", "M=13,N=9,K=5");
  free(ptx(p, "sm_80"));
  char path[512], renamed[520];
  ck_assert_int_eq(cache_entries(".mfxp", path, sizeof path), 1);
  ck_assert_int_eq(mfx_cache_get_stats().writes, 1);
  /* read the key back from the file name and ask for it as an object */
  const char *name = strrchr(path, '/') + 1;
  mfx_cache_key key;
  for (int i = 0; i < 16; i++) {
    unsigned v;
    ck_assert_int_eq(sscanf(name + 2 * i, "%2x", &v), 1);
    key.bytes[i] = (uint8_t)v;
  }
  char *data = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_cache_load_kind(MFX_CACHE_PTX, &key, &data, &size), 1);
  ck_assert_uint_eq(strlen(data), size);
  free(data);
  snprintf(renamed, sizeof renamed, "%.*s.mfxk", (int)(strlen(path) - 5), path);
  ck_assert_int_eq(rename(path, renamed), 0);
  ck_assert_int_eq(mfx_cache_load_kind(MFX_CACHE_OBJECT, &key, &data, &size), 0);
  ck_assert_int_eq(mfx_cache_get_stats().corrupt, 1);
}
END_TEST

/* Host objects and PTX share one directory, one size bound and one LRU
 * order; mfx_cache_scan_kinds tells them apart (what mfx cache info shows). */
START_TEST(shared_with_host_objects) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[MFX_OP_MAX_DIMS];
  ck_assert_int_eq(mfx_op_parse_dims(op, "M=13,N=9,K=5", dims), MFX_OK);
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile(op, dims, NULL, &k) == MFX_OK, "%s", mfx_last_error());
  mfx_op_kernel_free(&k);
  free(ptx(program("linear", "M=13,N=9,K=5"), "sm_80"));
  long kinds[MFX_CACHE_KINDS], entries;
  long long bytes;
  ck_assert_int_eq(mfx_cache_scan_kinds(DIRBUF, kinds), 0);
  ck_assert_int_eq(kinds[MFX_CACHE_OBJECT], 1);
  ck_assert_int_eq(kinds[MFX_CACHE_PTX], 1);
  ck_assert_int_eq(mfx_cache_scan(DIRBUF, &entries, &bytes), 0);
  ck_assert_int_eq(entries, 2);
  /* a zero bound: the newest write (PTX) evicts the host object */
  setenv("MFX_CACHE_MAX_MB", "0", 1);
  free(ptx(program("linear", "M=15,N=9,K=5"), "sm_80"));
  ck_assert_int_eq(mfx_cache_scan_kinds(DIRBUF, kinds), 0);
  ck_assert_int_eq(kinds[MFX_CACHE_OBJECT], 0);
  ck_assert_int_eq(kinds[MFX_CACHE_PTX], 1);
  ck_assert_int_eq(mfx_cache_get_stats().evictions, 2);
  long removed;
  ck_assert_int_eq(mfx_cache_clear(DIRBUF, &removed), 0);
  ck_assert_int_eq(removed, 1);
}
END_TEST

/* The pipeline is in the key for PTX too. */
START_TEST(ptx_pipeline_in_the_key) {
  mfx_gpu_program *p = program("gelu", "M=5,N=33");
  setenv("MFX_LLVM_PIPELINE", "O1", 1);
  free(ptx(p, "sm_80"));
  setenv("MFX_LLVM_PIPELINE", "O3", 1);
  free(ptx(p, "sm_80"));
  ck_assert_int_eq(mfx_cache_get_stats().hits, 0);
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
  setenv("MFX_LLVM_PIPELINE", "O1", 1);
  free(ptx(p, "sm_80"));
  ck_assert_int_eq(mfx_cache_get_stats().hits, 1);
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
  /* a bad setting is refused before any lookup, and nothing is written */
  setenv("MFX_LLVM_PIPELINE", "O9", 1);
  char *text = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_codegen_ptx(p, "sm_80", &text, &size), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "MFX_LLVM_PIPELINE=O9"));
  ck_assert_ptr_null(text);
  ck_assert_int_eq(cache_entries("", NULL, 0), 2);
}
END_TEST

/* LLVM IR is not cached; MFX_CACHE=0 builds every time and writes nothing;
 * a bad sm is an error before any lookup. */
START_TEST(uncached_cases) {
  mfx_gpu_program *p = program("linear", "M=13,N=9,K=5");
  char *ll = NULL;
  size_t size = 0;
  ck_assert_int_eq(mfx_codegen_gpu_emit(p, "sm_80", MFX_EMIT_LL, &ll, &size), MFX_OK);
  free(ll);
  ck_assert_int_eq(cache_entries("", NULL, 0), 0);
  ck_assert_int_eq(mfx_cache_get_stats().misses, 0);
  ck_assert_int_eq(mfx_codegen_ptx(p, "sm_99", &ll, &size), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "sm_99"));
  ck_assert_int_eq(cache_entries("", NULL, 0), 0);
}
END_TEST

START_TEST(disabled_writes_nothing) {
  setenv("MFX_CACHE", "0", 1);
  mfx_gpu_program *p = program("linear", "M=13,N=9,K=5");
  free(ptx(p, "sm_80"));
  free(ptx(p, "sm_80"));
  ck_assert_int_eq(cache_entries("", NULL, 0), 0);
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
  ck_assert_int_eq(mfx_cache_get_stats().hits, 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cache_gpu");
  TCase *t = tcase_create("cache_gpu");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 240);
  tcase_add_test(t, ptx_miss_then_hit);
  tcase_add_test(t, ptx_other_sm_misses);
  tcase_add_test(t, ptx_flipped_byte_rebuilt);
  tcase_add_test(t, ptx_truncated_rebuilt);
  tcase_add_test(t, kind_checked_on_read);
  tcase_add_test(t, shared_with_host_objects);
  tcase_add_test(t, ptx_pipeline_in_the_key);
  tcase_add_test(t, uncached_cases);
  tcase_add_test(t, disabled_writes_nothing);
  suite_add_tcase(s, t);
  return check_run_suite(s);
}
