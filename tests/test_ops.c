/* Every op, compiled for the host under several schedules and shapes, against
 * its plain-C reference; then the op interface's error cases. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/ops.h"

#define TOL 1e-4
#define MAX_SHAPES 8
#define MAX_CONFIGS 8

/* ---- configurations ----------------------------------------------------------- */

/* Every knob at its smallest (most serial, least split) or largest choice. */
static void config_extreme(const mfx_op *op, int largest, mfx_config *cfg) {
  mfx_config_default(op, cfg);
  for (int i = 0; i < op->n_knobs; i++) {
    const mfx_knob *k = &op->knobs[i];
    int64_t v = k->choices[0];
    for (int j = 1; j < k->n_choices; j++)
      if (largest ? k->choices[j] > v : k->choices[j] < v) v = k->choices[j];
    ck_assert_int_eq(mfx_config_set(op, cfg, k->name, v), MFX_OK);
  }
}

/* Each knob at a choice drawn from rng. */
static void config_random(const mfx_op *op, uint64_t *rng, mfx_config *cfg) {
  mfx_config_default(op, cfg);
  for (int i = 0; i < op->n_knobs; i++) {
    const mfx_knob *k = &op->knobs[i];
    int64_t v = k->choices[mfx_rng_next(rng) % (uint64_t)k->n_choices];
    ck_assert_int_eq(mfx_config_set(op, cfg, k->name, v), MFX_OK);
  }
}

/* default, all smallest, all largest, then random mixtures. */
static int configs_for(const mfx_op *op, int n_random, mfx_config *cfgs) {
  uint64_t rng = 0x5eed0000u + (uint64_t)strlen(op->name);
  int n = 0;
  mfx_config_default(op, &cfgs[n++]);
  config_extreme(op, 0, &cfgs[n++]);
  config_extreme(op, 1, &cfgs[n++]);
  for (int i = 0; i < n_random && n < MAX_CONFIGS; i++) config_random(op, &rng, &cfgs[n++]);
  return n;
}

/* ---- one case: compile, run, compare ----------------------------------------------- */

static void describe(const mfx_op *op, const int64_t *dims, const mfx_config *cfg, char *buf,
                     size_t size) {
  size_t used = (size_t)snprintf(buf, size, "%s", op->name);
  for (int d = 0; d < op->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : " ", op->dims[d],
                             (long long)dims[d]);
  if (used + 1 < size) {
    buf[used++] = ' ';
    mfx_config_to_json(cfg, buf + used, size - used);
  }
}

/* Runs one case; on failure writes why into `why` and returns 0. */
static int run_case(const mfx_op *op, const int64_t *dims, const mfx_config *cfg,
                    const mfx_kernel_env *env, uint64_t seed, char *why, size_t size) {
  mfx_array in[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_op_random_inputs(op, dims, seed, in);
  op->reference(dims, in, want);
  for (int i = 0; i < op->n_outputs; i++) /* garbage, so unwritten outputs show */
    memset(got[i].data, 0x7f, (size_t)mfx_array_numel(&got[i]) * mfx_dtype_size(got[i].dtype));
  int ok = 1;
  mfx_op_kernel k;
  mfx_status st = mfx_op_compile(op, dims, cfg, &k);
  if (st == MFX_OK) st = mfx_op_kernel_run(&k, env, in, got);
  if (st != MFX_OK) {
    snprintf(why, size, "%s: %s", mfx_status_name(st), mfx_last_error());
    ok = 0;
  }
  for (int i = 0; ok && i < op->n_outputs; i++) {
    mfx_compare c = mfx_compare_arrays(&got[i], &want[i], TOL);
    if (!c.ok) {
      snprintf(why, size, "output %s differs: max_abs_err %g, max_rel_err %g at index %lld",
               op->outputs[i].name, c.max_abs_err, c.max_rel_err, (long long)c.worst_index);
      ok = 0;
    }
  }
  mfx_op_kernel_free(&k); /* compile zeroes k first, so this is always safe */
  for (int i = 0; i < op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int i = 0; i < op->n_outputs; i++) {
    mfx_array_free(&got[i]);
    mfx_array_free(&want[i]);
  }
  return ok;
}

/* Every shape under every configuration; all failures are printed, the first
 * one fails the test. */
static void check_op(const char *name, int n_shapes, const int64_t shapes[][MFX_OP_MAX_DIMS],
                     int n_random) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_msg(op != NULL, "op %s is not registered", name);
  mfx_config cfgs[MAX_CONFIGS];
  int n_cfgs = configs_for(op, n_random, cfgs);
  mfx_pool *pool = NULL;
  ck_assert_int_eq(mfx_pool_create(2, &pool), MFX_OK);
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, pool);
  int failures = 0;
  char first[2048] = "";
  for (int s = 0; s < n_shapes; s++) {
    for (int c = 0; c < n_cfgs; c++) {
      char why[1024], what[512];
      if (run_case(op, shapes[s], &cfgs[c], &env, (uint64_t)(s * 31 + c + 1), why, sizeof why))
        continue;
      describe(op, shapes[s], &cfgs[c], what, sizeof what);
      fprintf(stderr, "FAIL %s: %s\n", what, why);
      if (failures++ == 0) snprintf(first, sizeof first, "%s: %s", what, why);
    }
  }
  mfx_pool_destroy(pool);
  ck_assert_msg(failures == 0, "%d of %d %s cases failed; first: %s", failures,
                n_shapes * n_cfgs, name, first);
}

/* ---- the ops ------------------------------------------------------------------------------ */

START_TEST(test_linear_kernels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 64, 64}, {3, 100, 1}, {1, 40, 300},
  };
  check_op("linear", 6, shapes, 2);
}
END_TEST

START_TEST(test_shift_linear_kernels) {
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {64, 64, 64}, {3, 100, 1}, {9, 8, 300},
  };
  check_op("shift_linear", 6, shapes, 2);
}
END_TEST

START_TEST(test_matadd_kernels) { /* B, H, N, D, C */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1, 1, 1}, {2, 3, 7, 5, 13}, {1, 2, 33, 17, 9}, {2, 2, 64, 32, 16}, {1, 1, 5, 100, 3},
    {3, 1, 70, 1, 2},
  };
  check_op("matadd", 6, shapes, 2);
}
END_TEST

START_TEST(test_hamming_kernels) { /* N, M, W */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1}, {7, 13, 3}, {33, 17, 5}, {64, 64, 8}, {3, 100, 1}, {5, 9, 40},
  };
  check_op("hamming", 6, shapes, 2);
}
END_TEST

START_TEST(test_binary_attention_kernels) { /* B, H, N, D, C */
  static const int64_t shapes[][MFX_OP_MAX_DIMS] = {
    {1, 1, 1, 1, 1}, {2, 3, 7, 5, 13}, {1, 2, 33, 17, 9}, {2, 2, 64, 32, 16}, {1, 1, 5, 100, 3},
  };
  check_op("binary_attention", 5, shapes, 2);
}
END_TEST

/* ---- multiplication-free: no multiply on values in the lowered kernels ----------------- */

static int value_multiplies(const mfx_expr *e) {
  if (e == NULL) return 0;
  switch (e->kind) {
  case MFX_EXPR_BINARY:
    if (e->u.bin.op == MFX_MUL && e->type != MFX_I64) return 1;
    return value_multiplies(e->u.bin.a) || value_multiplies(e->u.bin.b);
  case MFX_EXPR_UNARY: return value_multiplies(e->u.un.a);
  case MFX_EXPR_SELECT:
    return value_multiplies(e->u.sel.cond) || value_multiplies(e->u.sel.a) ||
           value_multiplies(e->u.sel.b);
  case MFX_EXPR_CAST: return value_multiplies(e->u.cast.a);
  case MFX_EXPR_REDUCE: return value_multiplies(e->u.red.src);
  default: return 0; /* constants, variables, loads (indices are i64) */
  }
}

static int stmt_multiplies(const mfx_stmt *s) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return stmt_multiplies(s->u.loop.body);
  case MFX_STMT_STORE: return value_multiplies(s->u.store.value);
  case MFX_STMT_LET: return value_multiplies(s->u.let.value) || stmt_multiplies(s->u.let.body);
  case MFX_STMT_IF: return stmt_multiplies(s->u.if_.then_s) || stmt_multiplies(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return stmt_multiplies(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (stmt_multiplies(s->u.seq.items[i])) return 1;
    return 0;
  case MFX_STMT_BARRIER: return 0;
  }
  return 0;
}

START_TEST(test_multiplication_free) {
  const char *names[] = {"shift_linear", "matadd", "hamming"};
  for (int i = 0; i < 3; i++) {
    const mfx_op *op = mfx_op_find(names[i]);
    mfx_config cfgs[MAX_CONFIGS];
    int n = configs_for(op, 2, cfgs);
    int64_t dims[MFX_OP_MAX_DIMS] = {3, 5, 7, 9, 11};
    for (int c = 0; c < n; c++) {
      mfx_arena *a = mfx_arena_create();
      mfx_schedule *s = NULL;
      mfx_func *f = NULL;
      ck_assert_int_eq(op->build(a, dims, &cfgs[c], &s), MFX_OK);
      ck_assert_msg(mfx_lower(s, op->name, &f) == MFX_OK, "%s: %s", op->name, mfx_last_error());
      ck_assert_msg(!stmt_multiplies(f->body), "%s computes a product of values", op->name);
      mfx_arena_destroy(a);
    }
  }
  /* The check itself sees a multiply: linear has one. */
  const mfx_op *lin = mfx_op_find("linear");
  mfx_config cfg;
  mfx_config_default(lin, &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_func *f = NULL;
  ck_assert_int_eq(lin->build(a, (int64_t[]){4, 4, 4}, &cfg, &s), MFX_OK);
  ck_assert_int_eq(mfx_lower(s, "linear", &f), MFX_OK);
  ck_assert(stmt_multiplies(f->body));
  mfx_arena_destroy(a);
}
END_TEST

/* ---- the registry ----------------------------------------------------------------------------- */

START_TEST(test_registry) {
  const char *names[] = {"linear", "shift_linear", "matadd", "hamming", "binary_attention"};
  ck_assert_int_eq(mfx_op_count(), 5);
  for (int i = 0; i < 5; i++) {
    const mfx_op *op = mfx_op_find(names[i]);
    ck_assert_msg(op != NULL, "%s missing", names[i]);
    ck_assert_ptr_eq(mfx_op_at(i), op);
    for (int k = 0; k < op->n_knobs; k++) { /* every default is one of its choices */
      mfx_config cfg;
      mfx_config_default(op, &cfg);
      ck_assert_int_eq(mfx_config_set(op, &cfg, op->knobs[k].name, op->knobs[k].def), MFX_OK);
    }
  }
  ck_assert_ptr_null(mfx_op_find("conv2d"));
  ck_assert_ptr_null(mfx_op_find(NULL));
  ck_assert_ptr_null(mfx_op_at(-1));
  ck_assert_ptr_null(mfx_op_at(5));
}
END_TEST

static void expect_dims_error(const mfx_op *op, const char *text, const char *fragment) {
  int64_t dims[MFX_OP_MAX_DIMS] = {0};
  mfx_clear_error();
  ck_assert_msg(mfx_op_parse_dims(op, text, dims) == MFX_ERR_INVALID, "\"%s\" accepted", text);
  ck_assert_msg(strstr(mfx_last_error(), fragment) != NULL, "\"%s\": message \"%s\" lacks \"%s\"",
                text, mfx_last_error(), fragment);
}

START_TEST(test_parse_dims) {
  const mfx_op *op = mfx_op_find("linear");
  int64_t dims[MFX_OP_MAX_DIMS] = {0};
  ck_assert_int_eq(mfx_op_parse_dims(op, "K=16,M=64,N=32", dims), MFX_OK);
  ck_assert_int_eq(dims[0], 64);
  ck_assert_int_eq(dims[1], 32);
  ck_assert_int_eq(dims[2], 16);
  ck_assert_int_eq(mfx_op_parse_dims(op, " M = 1 , N=2,K= 3 ", dims), MFX_OK);
  ck_assert(dims[0] == 1 && dims[1] == 2 && dims[2] == 3);
  expect_dims_error(op, "M=4,N=4", "K is missing");
  expect_dims_error(op, "M=4,N=4,K=4,Z=1", "unknown dim \"Z\"");
  expect_dims_error(op, "M=4,M=5,N=1,K=1", "M given twice");
  expect_dims_error(op, "M=0,N=1,K=1", "M=0 must be positive");
  expect_dims_error(op, "M=-3,N=1,K=1", "M=-3 must be positive");
  expect_dims_error(op, "M=abc,N=1,K=1", "integer");
  expect_dims_error(op, "M=4x,N=1,K=1", "unexpected");
  expect_dims_error(op, "M=4 N=4 K=4", "unexpected");
  expect_dims_error(op, "M=4,N=4,K=4,", "NAME=VALUE");
  expect_dims_error(op, "", "NAME=VALUE");
  expect_dims_error(op, "M=99999999999999999999,N=1,K=1", "integer");
  expect_dims_error(op, "M=4294967296,N=1,K=1", "larger");
  ck_assert_int_eq(dims[0], 1); /* failures leave dims alone */
  int64_t tshape[MFX_MAX_DIMS];
  ck_assert_int_eq(mfx_op_parse_dims(op, "M=2,N=3,K=5", dims), MFX_OK);
  mfx_op_tensor_shape(op, &op->inputs[1], dims, tshape); /* W: [N, K] */
  ck_assert(tshape[0] == 3 && tshape[1] == 5);
}
END_TEST

START_TEST(test_configs) {
  const mfx_op *op = mfx_op_find("linear");
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  ck_assert_int_eq(cfg.n, op->n_knobs);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), op->knobs[0].def);
  ck_assert_int_eq(mfx_config_get(&cfg, "nonesuch"), -1);
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_m", 2), MFX_OK);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 2);
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_z", 2), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "unknown knob \"tile_z\""));
  ck_assert_int_eq(mfx_config_set(op, &cfg, "tile_m", 3), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "tile_m=3 is not one of its choices"));
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 2);

  ck_assert_int_eq(mfx_config_parse_json(op, "{\"tile_m\": 4, \"vec\": 0}", &cfg), MFX_OK);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), 4);
  ck_assert_int_eq(mfx_config_get(&cfg, "vec"), 0);
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_n"), op->knobs[1].def); /* others: defaults */
  char json[512];
  mfx_config_to_json(&cfg, json, sizeof json);
  mfx_config back;
  ck_assert_int_eq(mfx_config_parse_json(op, json, &back), MFX_OK);
  ck_assert_int_eq(back.n, cfg.n);
  for (int i = 0; i < cfg.n; i++)
    ck_assert_int_eq(mfx_config_get(&back, cfg.names[i]), cfg.values[i]);
  char tiny[8];
  mfx_config_to_json(&cfg, tiny, sizeof tiny); /* truncates, stays a C string */
  ck_assert_int_lt((int)strlen(tiny), 8);

  const char *bad[][2] = {
    {"{\"tile_m\": 4", "malformed JSON"},
    {"[1, 2]", "expected a JSON object"},
    {"{\"tile_m\": \"4\"}", "must be an integer"},
    {"{\"tile_m\": 1.5}", "must be an integer"},
    {"{\"tile_m\": 3}", "not one of its choices"},
    {"{\"bogus\": 1}", "unknown knob"},
    {"{\"vec\": 1, \"vec\": 0}", "given twice"},
    {"{} trailing", "malformed JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mfx_config keep = cfg;
    ck_assert_msg(mfx_config_parse_json(op, bad[i][0], &cfg) == MFX_ERR_INVALID, "%s accepted",
                  bad[i][0]);
    ck_assert_msg(strstr(mfx_last_error(), bad[i][1]) != NULL, "%s: message \"%s\"", bad[i][0],
                  mfx_last_error());
    ck_assert_mem_eq(&keep, &cfg, sizeof cfg); /* a failed parse changes nothing */
  }
}
END_TEST

START_TEST(test_compare) {
  mfx_array a, b;
  ck_assert_int_eq(mfx_array_create(&a, MFX_F32, 1, (int64_t[]){4}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_F32, 1, (int64_t[]){4}), MFX_OK);
  float *x = a.data, *y = b.data;
  for (int i = 0; i < 4; i++) x[i] = y[i] = (float)(i + 1) * 0.5f; /* max |ref| = 2 */
  mfx_compare c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(c.ok && c.max_abs_err == 0.0);
  x[2] += 1e-4f; /* rel 5e-5 */
  c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(c.ok);
  ck_assert_int_eq(c.worst_index, 2);
  x[1] += 1e-3f; /* rel 5e-4 */
  c = mfx_compare_arrays(&a, &b, TOL);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 1);
  ck_assert_double_eq_tol(c.max_rel_err, 5e-4, 1e-6);
  x[1] = NAN;
  ck_assert(!mfx_compare_arrays(&a, &b, TOL).ok);
  ck_assert(!mfx_compare_arrays(&a, &b, INFINITY).ok); /* NaN is never within tolerance */
  mfx_array_free(&a);
  mfx_array_free(&b);

  ck_assert_int_eq(mfx_array_create(&a, MFX_I32, 2, (int64_t[]){2, 2}), MFX_OK);
  ck_assert_int_eq(mfx_array_create(&b, MFX_I32, 2, (int64_t[]){2, 2}), MFX_OK);
  ck_assert(mfx_compare_arrays(&a, &b, 0.0).ok);
  ((int32_t *)a.data)[3] = 1; /* integers are exact whatever the tolerance */
  c = mfx_compare_arrays(&a, &b, 1.0);
  ck_assert(!c.ok);
  ck_assert_int_eq(c.worst_index, 3);
  mfx_array_free(&b);
  ck_assert_int_eq(mfx_array_create(&b, MFX_I32, 2, (int64_t[]){4, 1}), MFX_OK);
  ck_assert(!mfx_compare_arrays(&a, &b, 1.0).ok); /* shapes differ */
  mfx_array_free(&a);
  mfx_array_free(&b);
}
END_TEST

START_TEST(test_compile_errors) {
  const mfx_op *op = mfx_op_find("linear");
  mfx_op_kernel k;
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  snprintf(cfg.names[0], sizeof cfg.names[0], "tile_q");
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 2, 2}, &cfg, &k), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "tile_q"));
  mfx_config_default(op, &cfg);
  cfg.values[0] = 5; /* tile_m=5 is not a choice */
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 2, 2}, &cfg, &k), MFX_ERR_INVALID);
  ck_assert_int_eq(mfx_op_compile(op, (int64_t[]){2, 0, 2}, NULL, &k), MFX_ERR_INVALID);
  ck_assert_ptr_nonnull(strstr(mfx_last_error(), "N=0"));
}
END_TEST

START_TEST(test_run_checks_arrays) {
  const mfx_op *op = mfx_op_find("shift_linear");
  int64_t dims[3] = {2, 3, 4};
  mfx_op_kernel k;
  ck_assert_msg(mfx_op_compile(op, dims, NULL, &k) == MFX_OK, "%s", mfx_last_error());
  mfx_array in[3], out[1];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, out), MFX_OK);
  mfx_op_random_inputs(op, dims, 7, in);
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_OK); /* NULL env: serial */

  mfx_array wrong;
  ck_assert_int_eq(mfx_array_create(&wrong, MFX_F32, 2, (int64_t[]){3, 4}), MFX_OK);
  mfx_array keep = in[1];
  in[1] = wrong; /* S as f32 */
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: S has dtype f32, expected i8");
  in[1] = keep;
  mfx_array_free(&wrong);

  ck_assert_int_eq(mfx_array_create(&wrong, MFX_I32, 2, (int64_t[]){3, 2}), MFX_OK);
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, &wrong), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: Y has shape [3,2], expected [2,3]");
  mfx_array_free(&wrong);

  ck_assert_int_eq(mfx_array_create(&wrong, MFX_I32, 1, (int64_t[]){8}), MFX_OK);
  keep = in[0];
  in[0] = wrong; /* X with one dimension */
  ck_assert_int_eq(mfx_op_kernel_run(&k, NULL, in, out), MFX_ERR_INVALID);
  ck_assert_str_eq(mfx_last_error(), "run shift_linear: X has shape [8], expected [2,4]");
  in[0] = keep;
  mfx_array_free(&wrong);

  for (int i = 0; i < 3; i++) mfx_array_free(&in[i]);
  mfx_array_free(&out[0]);
  mfx_op_kernel_free(&k);
  mfx_op_kernel_free(&k); /* freeing twice is harmless */
}
END_TEST

static Suite *ops_suite(void) {
  Suite *s = suite_create("ops");
  TCase *api = tcase_create("interface");
  tcase_add_test(api, test_registry);
  tcase_add_test(api, test_parse_dims);
  tcase_add_test(api, test_configs);
  tcase_add_test(api, test_compare);
  tcase_add_test(api, test_compile_errors);
  tcase_add_test(api, test_multiplication_free);
  tcase_add_test(api, test_run_checks_arrays);
  suite_add_tcase(s, api);
  TCase *kernels = tcase_create("kernels");
  tcase_set_timeout(kernels, 600);
  tcase_add_test(kernels, test_linear_kernels);
  tcase_add_test(kernels, test_shift_linear_kernels);
  tcase_add_test(kernels, test_matadd_kernels);
  tcase_add_test(kernels, test_hamming_kernels);
  tcase_add_test(kernels, test_binary_attention_kernels);
  suite_add_tcase(s, kernels);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(ops_suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
