/* The kernel cache on disk (compiler/cache.c through mfx_jit_compile).
 * Every test sets its own MFX_CACHE_DIR under a fresh temporary directory;
 * Check forks each test, so the cache's once-per-process setup is fresh. */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../compiler/cache.h"
#include "cache_fixture.h"
#include "mfx/compiler.h"
#include "check_main.h"

#define N 37

static void setup(void) { cache_fixture_open("mfx_test_cache"); }
static void teardown(void) { cache_fixture_close(); }

/* out[i] = in[i] * 3 + c: a different c is a different kernel. */
static mfx_func *kernel(int64_t c) {
  int64_t n = N;
  mfx_buffer *in = mfx_buffer_create(A, "in", MFX_I32, 1, &n, MFX_SCOPE_GLOBAL);
  mfx_buffer *out = mfx_buffer_create(A, "out", MFX_I32, 1, &n, MFX_SCOPE_GLOBAL);
  mfx_var *i = mfx_var_create(A, "i", N, 0);
  mfx_expr *idx = mfx_var_ref(A, i);
  mfx_expr *v = mfx_binary(A, MFX_ADD, mfx_binary(A, MFX_MUL, mfx_load(A, in, 1, &idx),
                                                  mfx_i64(A, 3)),
                           mfx_i64(A, c));
  mfx_stmt *body = mfx_stmt_for(A, i, i->extent, MFX_LOOP_SERIAL,
                                mfx_stmt_store(A, out, 1, &idx, v));
  mfx_func *fn = mfx_arena_alloc(A, sizeof *fn);
  fn->name = "cache_kernel";
  fn->n_args = 2;
  fn->args = mfx_arena_alloc(A, 2 * sizeof(mfx_buffer *));
  fn->args[0] = in;
  fn->args[1] = out;
  fn->body = body;
  return fn;
}

/* Compile, run, compare with the reference computed here. */
static void build_and_check(int64_t c) {
  mfx_jit_kernel *k = NULL;
  mfx_status st = mfx_jit_compile(kernel(c), &k);
  ck_assert_msg(st == MFX_OK, "compile: %s", mfx_last_error());
  int32_t in[N], out[N];
  for (int i = 0; i < N; i++) in[i] = i * 7 - 100;
  void *args[2] = {in, out};
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_jit_entry(k)(args, &env), 0);
  for (int i = 0; i < N; i++) ck_assert_int_eq(out[i], in[i] * 3 + (int32_t)c);
  mfx_jit_free(k);
}

START_TEST(miss_then_hit) {
  build_and_check(5);
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.misses, 1);
  ck_assert_int_eq(s.codegens, 1);
  ck_assert_int_eq(s.writes, 1);
  ck_assert_int_eq(cache_entries("", NULL, 0), 1);
  build_and_check(5);
  s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 1);
  ck_assert_int_eq(s.codegens, 1); /* codegen skipped */
  build_and_check(6);               /* another kernel: another entry */
  s = mfx_cache_get_stats();
  ck_assert_int_eq(s.codegens, 2);
  ck_assert_int_eq(cache_entries("", NULL, 0), 2);
}
END_TEST

static void damage(int truncate_it) {
  build_and_check(9);
  char path[512];
  ck_assert_int_eq(cache_entries("", path, sizeof path), 1);
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  if (truncate_it) {
    ck_assert_int_eq(truncate(path, st.st_size - 10), 0);
  } else {
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, st.st_size / 2), 1);
    b ^= 0x40;
    ck_assert_int_eq(pwrite(fd, &b, 1, st.st_size / 2), 1);
    close(fd);
  }
  build_and_check(9);
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.corrupt, 1);
  ck_assert_int_eq(s.hits, 0);
  ck_assert_int_eq(s.codegens, 2); /* rebuilt */
  build_and_check(9);              /* the replaced entry is good */
  s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 1);
  ck_assert_int_eq(s.codegens, 2);
}

/* The LLVM pipeline is part of the key: an O1 object is never loaded for
 * an O3 build, and each pipeline's build is itself cached. */
START_TEST(pipeline_in_the_key) {
  setenv("MFX_LLVM_PIPELINE", "O1", 1);
  build_and_check(11);
  setenv("MFX_LLVM_PIPELINE", "O3", 1);
  build_and_check(11);
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 0);
  ck_assert_int_eq(s.codegens, 2);
  ck_assert_int_eq(cache_entries("", NULL, 0), 2);
  setenv("MFX_LLVM_PIPELINE", "O1", 1);
  build_and_check(11);
  s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 1);
  ck_assert_int_eq(s.codegens, 2);
}
END_TEST

/* Anything but O1, O2, O3 is refused with the setting named, not guessed. */
START_TEST(bad_pipeline_refused) {
  setenv("MFX_LLVM_PIPELINE", "O4", 1);
  mfx_jit_kernel *k = NULL;
  ck_assert_int_eq(mfx_jit_compile(kernel(3), &k), MFX_ERR_INVALID);
  ck_assert_ptr_null(k);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "MFX_LLVM_PIPELINE=O4"));
  ck_assert_int_eq(cache_entries("", NULL, 0), 0);
  ck_assert_ptr_null(mfx_llvm_pipeline());
  setenv("MFX_LLVM_PIPELINE", "O2", 1);
  ck_assert_str_eq(mfx_llvm_pipeline(), "default<O2>");
  unsetenv("MFX_LLVM_PIPELINE");
  ck_assert_str_eq(mfx_llvm_pipeline(), "default<O3>");
}
END_TEST

/* Every phase of a cold build is timed; a cache hit is counted, not timed
 * as a build. */
START_TEST(compile_times_by_phase) {
  mfx_compile_times_reset();
  build_and_check(13);
  mfx_compile_times t;
  mfx_compile_times_get(&t);
  ck_assert_int_eq(t.builds, 1);
  ck_assert_int_eq(t.cached, 0);
  for (int p = MFX_PHASE_IRGEN; p < MFX_PHASE_COUNT; p++)
    ck_assert_msg(t.seconds[p] > 0.0, "phase %s took no time", mfx_compile_phase_name(p));
  ck_assert_double_eq(t.seconds[MFX_PHASE_LOWER], 0.0); /* not through mfx_build here */
  build_and_check(13);
  mfx_compile_times_get(&t);
  ck_assert_int_eq(t.builds, 1);
  ck_assert_int_eq(t.cached, 1);
  ck_assert_str_eq(mfx_compile_phase_name(MFX_PHASE_OPTIMIZE), "optimize");
  ck_assert_str_eq(mfx_compile_phase_name(MFX_PHASE_COUNT), "?");
  mfx_compile_times_reset();
  mfx_compile_times_get(&t);
  ck_assert_int_eq(t.builds + t.cached, 0);
}
END_TEST

START_TEST(flipped_byte_rebuilt) { damage(0); }
END_TEST

START_TEST(truncated_rebuilt) { damage(1); }
END_TEST

START_TEST(concurrent_writers) {
  pid_t pids[4];
  for (int p = 0; p < 4; p++) {
    pids[p] = fork();
    ck_assert_int_ge(pids[p], 0);
    if (pids[p] == 0) {
      for (int r = 0; r < 3; r++) build_and_check(p % 2 ? 100 : 200 + r);
      _exit(0);
    }
  }
  for (int p = 0; p < 4; p++) {
    int status;
    ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  ck_assert_int_eq(cache_entries("", NULL, 0), 4); /* 100, 200, 201, 202; no temp files */
  /* every entry valid: all hits now */
  build_and_check(100);
  for (int r = 0; r < 3; r++) build_and_check(200 + r);
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.hits, 4);
  ck_assert_int_eq(s.codegens, 0);
}
END_TEST

START_TEST(eviction_tiny_limit) {
  setenv("MFX_CACHE_MAX_MB", "0", 1); /* every write evicts all but the newest */
  build_and_check(1);
  build_and_check(2);
  build_and_check(3);
  ck_assert_int_eq(cache_entries("", NULL, 0), 1);
  mfx_cache_stats s = mfx_cache_get_stats();
  ck_assert_int_eq(s.evictions, 2);
  build_and_check(3); /* the newest stayed */
  ck_assert_int_eq(mfx_cache_get_stats().hits, 1);
}
END_TEST

START_TEST(disabled_writes_nothing) {
  setenv("MFX_CACHE", "0", 1);
  build_and_check(4);
  build_and_check(4);
  ck_assert_int_eq(cache_entries("", NULL, 0), 0);
  ck_assert_ptr_null(mfx_cache_dir());
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
}
END_TEST

START_TEST(dir_is_a_file) {
  char file[300], errpath[300];
  snprintf(file, sizeof file, "%s/plain", DIRBUF);
  snprintf(errpath, sizeof errpath, "%s.stderr", DIRBUF);
  FILE *f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fclose(f);
  setenv("MFX_CACHE_DIR", file, 1);
  fflush(stderr);
  int saved = dup(2);
  int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2);
  close(fd);
  build_and_check(7);
  build_and_check(7);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  char text[1024] = {0};
  f = fopen(errpath, "r");
  size_t got = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  unlink(errpath);
  unlink(file);
  ck_assert_msg(got > 0 && strstr(text, "kernel cache off") != NULL, "stderr: %s", text);
  ck_assert_ptr_eq(strstr(text, "kernel cache off"), strstr(text, "kernel cache")); /* once */
  ck_assert_ptr_null(strstr(strstr(text, "kernel cache off") + 1, "kernel cache off"));
  ck_assert_int_eq(mfx_cache_get_stats().codegens, 2);
}
END_TEST

/* The build id in every key: the hash of the compiler's sources, the same on every call. */
START_TEST(build_id_is_the_source_hash) {
  const char *id = mfx_cache_build_id();
  ck_assert_uint_eq(strlen(id), 16);
  for (int i = 0; i < 16; i++) ck_assert_ptr_nonnull(strchr("0123456789abcdef", id[i]));
  ck_assert_ptr_eq(mfx_cache_build_id(), id);
  ck_assert_str_eq(mfx_cache_build_id(), id);
}
END_TEST

int main(void) {
  Suite *s = suite_create("cache");
  TCase *t = tcase_create("cache");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_set_timeout(t, 240);
  tcase_add_test(t, miss_then_hit);
  tcase_add_test(t, pipeline_in_the_key);
  tcase_add_test(t, bad_pipeline_refused);
  tcase_add_test(t, compile_times_by_phase);
  tcase_add_test(t, flipped_byte_rebuilt);
  tcase_add_test(t, truncated_rebuilt);
  tcase_add_test(t, concurrent_writers);
  tcase_add_test(t, eviction_tiny_limit);
  tcase_add_test(t, disabled_writes_nothing);
  tcase_add_test(t, dir_is_a_file);
  tcase_add_test(t, build_id_is_the_source_hash);
  suite_add_tcase(s, t);
  return check_run_suite(s);
}
