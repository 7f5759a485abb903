/* shift_linear's GPU default, form 3, without a GPU.
 *
 * Form 3 stages the packed shift-and-sign byte's decoded words (DS, DZ, DM)
 * in shared memory, sums ((X >> s) & z) ^ m (~v for a negative weight, one
 * short of -v) two k at a time per accumulator, and adds CNT[n], the count
 * of negative weights, at the write-back.
 *
 * Results: through the GPU emulation, exact against the plain-C reference on
 * shapes that divide no tile, K odd and not a multiple of block_k (form 3
 * keeps no reduction guard: the zero-filled tiles add 0), with split_k (the
 * count added once, to the pieces' sum), double_buffer, pack 0 (no SG
 * kernel), shared 0, contiguous tiles and small tiles; forms 2 and 3 agree
 * bit for bit.
 *
 * PTX: the inner k loop of the staged kernel has per iteration two k for
 * every accumulator (2 * thread_m * thread_n shr.s32, and.b32, xor.b32,
 * add.s32), no sub.s32 (form 2's - m) and no bfe (the per-thread decode),
 * its shared loads are ld.shared.v2 pairs of k (X and the decoded words);
 * ptxas -v: no spills, at most 128 registers (two 256-thread blocks per
 * SM). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"
#include "mfx/ops.h"
#include "ptxas_check.h"
#include "check_main.h"

static const int64_t shapes[][3] = {
    {1, 1, 1}, {37, 45, 29}, {33, 17, 65}, {19, 130, 7},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof *shapes))

static const char *const configs[] = {
    "{}",
    "{\"split_k\":2}",
    "{\"split_k\":4,\"block_k\":8}",
    "{\"double_buffer\":1}",
    "{\"double_buffer\":1,\"split_k\":2,\"block_k\":4}",
    "{\"pack\":0}",
    "{\"block_m\":32,\"block_n\":16,\"thread_m\":2,\"thread_n\":2,\"block_k\":4,\"unroll\":0}",
    "{\"contiguous\":1,\"block_k\":32}",
    "{\"shared\":0}", /* the decoded words inlined into global loads, guards kept */
};
#define N_CONFIGS ((int)(sizeof configs / sizeof *configs))

static const mfx_op *shift_op(void) {
  const mfx_op *op = mfx_op_find("shift_linear");
  ck_assert_ptr_nonnull(op);
  return op;
}

static void config(const char *json, mfx_config *cfg) {
  ck_assert_msg(mfx_config_parse_json_for(shift_op(), "cuda:sm_80", json, cfg) == MFX_OK,
                "config %s: %s", json, mfx_last_error());
}

static void compile_emulated(const int64_t *dims, const char *json, mfx_op_kernel *k) {
  mfx_config cfg;
  config(json, &cfg);
  ck_assert_msg(mfx_op_compile_for(shift_op(), "emulate", dims, &cfg, k) == MFX_OK, "%s: %s",
                json, mfx_last_error());
}

static void run_kernel(mfx_op_kernel *k, mfx_array *in, mfx_array *out) {
  memset(out[0].data, 0x7f, (size_t)mfx_array_numel(&out[0]) * mfx_dtype_size(out[0].dtype));
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  ck_assert_int_eq(mfx_op_kernel_run(k, &env, in, out), MFX_OK);
}

static void run_emulated(const int64_t *dims, const char *json, mfx_array *in, mfx_array *out) {
  mfx_op_kernel k;
  compile_emulated(dims, json, &k);
  run_kernel(&k, in, out);
  mfx_op_kernel_free(&k);
}

START_TEST(form3_matches_the_reference) {
  const mfx_op *op = shift_op();
  const int64_t *dims = shapes[_i];
  ck_assert_int_eq(op->n_inputs, 3);
  ck_assert_int_eq(op->n_outputs, 1);
  mfx_array in[3], got[1], ref[1], form2[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, ref), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, form2), MFX_OK);
  mfx_op_random_inputs(op, dims, (uint64_t)_i + 11, in);
  op->reference(dims, in, ref);
  size_t bytes = (size_t)mfx_array_numel(&ref[0]) * mfx_dtype_size(ref[0].dtype);
  run_emulated(dims, "{\"form\":2}", in, form2);
  /* every config on one shape (K = 29: odd, no multiple of any block_k),
   * the default and split_k on the others (compiles are what costs here) */
  int configs_here = _i == 1 ? N_CONFIGS : 2;
  if (getenv("MFX_TEST_QUICK") != NULL && configs_here > 3) configs_here = 3;
  for (int c = 0; c < configs_here; c++) {
    run_emulated(dims, configs[c], in, got);
    ck_assert_msg(memcmp(got[0].data, ref[0].data, bytes) == 0,
                  "shift_linear %lldx%lldx%lld %s: differs from the reference",
                  (long long)dims[0], (long long)dims[1], (long long)dims[2], configs[c]);
  }
  ck_assert_msg(memcmp(form2[0].data, ref[0].data, bytes) == 0,
                "shift_linear %lldx%lldx%lld form 2: differs from the reference",
                (long long)dims[0], (long long)dims[1], (long long)dims[2]);
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&got[0]);
  mfx_array_free(&ref[0]);
  mfx_array_free(&form2[0]);
}
END_TEST

/* Weights all negative (CNT[n] = K), all zero (z = 0), and shifts of 0 and
 * 31 on X at the i32 extremes: the count and the masks at their limits. */
START_TEST(form3_extreme_weights) {
  const mfx_op *op = shift_op();
  const int64_t dims[3] = {21, 19, 37};
  mfx_array in[3], got[1], ref[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, ref), MFX_OK);
  int32_t *x = in[0].data;
  int8_t *s = in[1].data, *g = in[2].data;
  for (int64_t i = 0; i < dims[0] * dims[2]; i++)
    x[i] = i % 3 == 0 ? INT32_MIN : i % 3 == 1 ? INT32_MAX : (int32_t)(i * 7919) - 40000;
  for (int c = 0; c < 2; c++) {
    mfx_op_kernel k;
    compile_emulated(dims, configs[c], &k);
    for (int pattern = 0; pattern < 3; pattern++) {
      for (int64_t i = 0; i < dims[1] * dims[2]; i++) {
        s[i] = (int8_t)(i % 2 == 0 ? 0 : 31);
        g[i] = (int8_t)(pattern == 0 ? -1 : pattern == 1 ? 0 : (i % 3) - 1);
      }
      op->reference(dims, in, ref);
      run_kernel(&k, in, got);
      ck_assert_msg(memcmp(got[0].data, ref[0].data,
                           (size_t)mfx_array_numel(&ref[0]) * sizeof(int32_t)) == 0,
                    "weight pattern %d, %s: differs from the reference", pattern, configs[c]);
    }
    mfx_op_kernel_free(&k);
  }
  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&got[0]);
  mfx_array_free(&ref[0]);
}
END_TEST

/* ---- PTX -------------------------------------------------------------------------------- */

__attribute__((noinline)) static char *program_ptx(const int64_t *dims, const char *json, mfx_gpu_program **p,
                         mfx_arena *a) {
  mfx_config cfg;
  config(json, &cfg);
  ck_assert_msg(mfx_op_gpu_program(shift_op(), a, dims, &cfg, p) == MFX_OK, "%s",
                mfx_last_error());
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_ptx(*p, "sm_80", &ptx, &size) == MFX_OK, "%s", mfx_last_error());
  return ptx;
}

/* The lines of the staged kernel's inner k loop: from the label that the
 * first backward branch after the last bar.sync jumps to, up to it. */
typedef struct {
  char text[65536];
  int lines;
} loop_text;

__attribute__((noinline)) static void inner_loop(const char *ptx, const char *kernel, loop_text *out) {
  char entry[256];
  snprintf(entry, sizeof entry, ".entry %s(", kernel);
  const char *k = strstr(ptx, entry);
  ck_assert_msg(k != NULL, "no kernel %s", kernel);
  const char *end = strstr(k + 1, ".entry ");
  if (end == NULL) end = k + strlen(k);
  const char *bar = NULL;
  for (const char *b = strstr(k, "bar.sync"); b != NULL && b < end; b = strstr(b + 1, "bar.sync"))
    bar = b;
  ck_assert_msg(bar != NULL, "%s: no bar.sync", kernel);
  for (const char *b = strstr(bar, "bra"); b != NULL && b < end; b = strstr(b + 1, "bra")) {
    const char *l = b + 3;
    if (strncmp(l, ".uni", 4) == 0) l += 4;
    while (*l == ' ' || *l == '\t') l++;
    char label[64];
    size_t n = strcspn(l, ";\n");
    if (n == 0 || n >= sizeof label) continue;
    memcpy(label, l, n);
    label[n] = '\0';
    char want[80];
    snprintf(want, sizeof want, "\n%s:", label);
    const char *top = strstr(bar, want);
    if (top == NULL || top > b) continue; /* a forward branch */
    size_t len = (size_t)(b - top);
    ck_assert_uint_lt(len, sizeof out->text);
    memcpy(out->text, top, len);
    out->text[len] = '\0';
    return;
  }
  ck_abort_msg("%s: no backward branch after the last bar.sync", kernel);
}

START_TEST(form3_inner_step_in_the_ptx) {
  static const struct {
    int64_t dims[3];
    const char *json;
    int tile;     /* thread_m * thread_n */
    int max_regs; /* 128 for the default: two blocks of 256 threads per SM */
  } cases[] = {
    {{784, 128, 1024}, "{}", 32, 128},
    {{3136, 512, 64}, "{}", 32, 128},
    {{130, 70, 40}, "{\"split_k\":1}", 32, 128},
    {{130, 70, 40}, "{\"thread_n\":8,\"split_k\":1}", 64, 255},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = NULL;
    char *ptx = program_ptx(cases[c].dims, cases[c].json, &p, a);
    int staged = 0;
    while (staged < p->n_kernels && p->kernels[staged].shared_bytes == 0) staged++;
    ck_assert_int_lt(staged, p->n_kernels);
    static loop_text loop;
    inner_loop(ptx, p->kernels[staged].name, &loop);
    char what[256];
    snprintf(what, sizeof what, "shift_linear %lldx%lldx%lld %s", (long long)cases[c].dims[0],
             (long long)cases[c].dims[1], (long long)cases[c].dims[2], cases[c].json);
    int terms = 2 * cases[c].tile;
    ck_assert_msg(ptx_count(loop.text, "shr.s32") == terms &&
                  ptx_count(loop.text, "xor.b32") == terms &&
                  ptx_count(loop.text, "and.b32") == terms &&
                  ptx_count(loop.text, "add.s32") == terms,
                  "%s: expected %d shr.s32, and.b32, xor.b32, add.s32 (two k per accumulator) "
                  "in the inner loop:\n%s", what, terms, loop.text);
    ck_assert_msg(ptx_count(loop.text, "sub.s32") == 0 && ptx_count(loop.text, "bfe.") == 0 &&
                  ptx_count(loop.text, "ld.shared.u8") == 0 && ptx_count(loop.text, "setp.lt") == 0,
                  "%s: a subtraction, a decode, a byte load or a guard in the inner loop:\n%s",
                  what, loop.text);
    ck_assert_msg(ptx_count(loop.text, "ld.shared.v2.u32") == ptx_count(loop.text, "ld.shared"),
                  "%s: shared loads other than pairs of k:\n%s", what, loop.text);
    static char log[65536];
    if (ptxas_run(ptx, "sm_90", "-v", log, sizeof log, what)) {
      ptxas_check_no_spills(log, "sm_90", what);
      char used[64];
      snprintf(used, sizeof used, "Function properties for %s", p->kernels[staged].name);
      const char *at = strstr(log, used);
      ck_assert_ptr_nonnull(at);
      const char *regs = strstr(at, "Used ");
      ck_assert_ptr_nonnull(regs);
      int n = atoi(regs + 5);
      ck_assert_msg(n > 0 && n <= cases[c].max_regs, "%s: %s uses %d registers (at most %d)",
                    what, p->kernels[staged].name, n, cases[c].max_regs);
    }
    free(ptx);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* The kernels of form 3: SG (packing), CNT, the reduction with the count
 * added at its write-back (no Y pass); with split_k the count goes into the
 * pieces' sum; pack 0 has no SG. */
START_TEST(form3_kernels) {
  static const struct {
    const char *json;
    int kernels;
  } want[] = {
    {"{\"split_k\":1}", 3}, /* SG, ACC + CNT, CNT */
    {"{\"split_k\":2}", 4}, /* SG, ACCP, CNT, sum + CNT */
    {"{\"split_k\":1,\"pack\":0}", 2},
    {"{\"split_k\":1,\"form\":1}", 6}, /* ST, ZM, NM, ACC, CNT, Y */
  };
  for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
    mfx_arena *a = mfx_arena_create();
    mfx_config cfg;
    config(want[i].json, &cfg);
    mfx_gpu_program *p = NULL;
    ck_assert_msg(mfx_op_gpu_program(shift_op(), a, (int64_t[]){37, 45, 29}, &cfg, &p) == MFX_OK,
                  "%s", mfx_last_error());
    ck_assert_msg(p->n_kernels == want[i].kernels, "%s: %d kernels, expected %d", want[i].json,
                  p->n_kernels, want[i].kernels);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* mfx_sched_unguarded_reduce needs a local accumulator, as
 * mfx_sched_unguarded_update does. */
START_TEST(unguarded_reduce_needs_a_local_accumulator) {
  mfx_arena *a = mfx_arena_create();
  mfx_tensor *X = mfx_placeholder(a, "X", MFX_I32, 2, (int64_t[]){8, 8});
  mfx_tensor *R = mfx_compute_begin(a, "R", MFX_I32, 1, (int64_t[]){8}, (const char *[]){"i"});
  mfx_var *k = mfx_var_create(a, "k", 8, 1);
  mfx_expr *i = mfx_var_ref(a, R->axes[0]);
  mfx_expr *idx[2] = {i, mfx_var_ref(a, k)};
  ck_assert_int_eq(mfx_compute_set_body(a, R, mfx_reduce(a, MFX_REDUCE_SUM, 1, &k,
                                                         mfx_tensor_load(a, X, 2, idx))),
                   MFX_OK);
  mfx_schedule *s = NULL;
  ck_assert_int_eq(mfx_sched_create(a, 1, &X, 1, &R, &s), MFX_OK);
  mfx_stage *st = mfx_sched_stage(s, R);
  ck_assert_ptr_nonnull(st);
  ck_assert_int_eq(mfx_sched_unguarded_reduce(s, st), MFX_ERR_SCHEDULE);
  ck_assert_msg(strstr(mfx_last_error(), "cache_write_local it first") != NULL, "%s",
                mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("gpu_shift");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, form3_matches_the_reference, 0, N_SHAPES);
  tcase_add_test(tc, form3_extreme_weights);
  tcase_add_test(tc, form3_inner_step_in_the_ptx);
  tcase_add_test(tc, form3_kernels);
  tcase_add_test(tc, unguarded_reduce_needs_a_local_accumulator);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return check_run_suite(suite()); }
