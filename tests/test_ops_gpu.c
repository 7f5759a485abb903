/* Every op's GPU schedule template, without a GPU.
 *
 * Correctness: each op under its GPU default and several other GPU configs,
 * on shapes that do not divide the tiles and with dims of 1, is built,
 * lowered, split into kernels and run by the GPU emulator on the CPU
 * (block and thread loops serial, barrier phases split), then compared with
 * the plain-C reference: integers within the op's int_tolerance (exact but
 * for q16_gelu's one unit: its erf is codegen_math.c's polynomial, the same
 * instructions the emulator runs on the CPU and a GPU runs), f32 within
 * 1e-4 * max|ref|.
 *
 * GPU constraints, on the programs themselves: at most 1024 threads and 48
 * KiB of static shared memory per block, every kernel launched on more than
 * one thread, shared staging present when asked for, and the
 * multiplication-free ops free of data multiplications (only i64 index
 * arithmetic multiplies).
 *
 * PTX: every op under several configs compiles to PTX that ptxas assembles
 * for sm_80 and sm_90 (ptxas from $MFX_PTXAS, PATH or /usr/local/cuda/bin;
 * without it a loud SKIP line on stderr). What only a GPU can tell, the
 * speed and the real hardware's behaviour, is not tested here.
 *
 * Configs: GPU knobs, target selection, invalid configs refused with
 * messages that say why, the artifact build for cuda:sm_80 and the tuner's
 * knob space for a cuda target. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/artifact.h"
#include "mfx/autotune.h"
#include "mfx/ops.h"
#include "guarded_rows.h"
#include "ptxas_check.h"
#include "check_main.h"

#define TOL 1e-4
#define MAX_SHAPES 6
#define MAX_CONFIGS 12

typedef struct {
  const char *op;
  int n_shapes;
  int64_t shapes[MAX_SHAPES][MFX_OP_MAX_DIMS];
  const char *configs[MAX_CONFIGS]; /* GPU JSON over the defaults; "{}" is the default */
  int multiplication_free;
} gpu_case;

static const gpu_case cases[] = {
  {"linear", 6,
   {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}, {1, 200, 19}},
   {"{}",
    "{\"shared\":0,\"unroll\":0,\"pack\":0,\"block_m\":32,\"block_n\":16,\"thread_m\":1,"
    "\"thread_n\":2,\"block_k\":8}",
    "{\"block_m\":16,\"block_n\":128,\"thread_m\":2,\"thread_n\":8,\"block_k\":4,"
    "\"threads\":64}",
    "{\"block_m\":64,\"block_n\":32,\"thread_m\":4,\"thread_n\":1,\"block_k\":32,\"pack\":0}",
    /* split_k: pieces padded past K (65 = 3 x 24 - 7), without staging, one piece per step */
    "{\"split_k\":4,\"block_k\":8}", "{\"split_k\":2,\"shared\":0,\"pack\":0}",
    "{\"split_k\":64,\"block_k\":4,\"block_m\":16,\"block_n\":16,\"thread_m\":1,"
    "\"thread_n\":1}",
    "{\"contiguous\":1,\"split_k\":2,\"block_m\":16,\"block_n\":128,\"thread_m\":2,"
    "\"thread_n\":8,\"block_k\":4}"},
   0},
  {"shift_linear", 5,
   {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}},
   {"{}", "{\"form\":1}",
    "{\"form\":1,\"pack\":0,\"block_m\":32,\"block_n\":32,\"thread_m\":2,\"thread_n\":2,"
    "\"block_k\":8,\"unroll\":0,\"threads\":64}",
    "{\"pack\":0,\"shared\":0,\"block_m\":16,\"block_n\":64,\"thread_m\":1,\"thread_n\":4}",
    "{\"form\":1,\"shared\":0,\"block_k\":64,\"block_m\":64,\"block_n\":16,\"thread_m\":8,"
    "\"thread_n\":1}",
    "{\"split_k\":4,\"block_k\":8}", "{\"split_k\":2,\"form\":1,\"shared\":0}",
    "{\"split_k\":64,\"pack\":0,\"block_k\":4}",
    "{\"contiguous\":1,\"form\":1,\"split_k\":2,\"block_m\":32,\"block_n\":32,"
    "\"thread_m\":2,\"thread_n\":4,\"block_k\":8}",
    /* form 0 (the default is form 2: the packed byte), and form 2 unpacked, split and with
     * contiguous tiles */
    "{\"form\":0}",
    "{\"form\":2,\"pack\":0,\"contiguous\":1,\"split_k\":2,\"block_m\":32,\"block_n\":32,"
    "\"thread_m\":2,\"thread_n\":4,\"block_k\":8}"},
   1},
  /* 16-bit lanes: K not a whole number of blocks of 4 (X padded to XP). */
  {"shift_linear16", 5,
   {{1, 1, 1}, {7, 13, 5}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}},
   {"{}", "{\"shared\":0}",
    "{\"block_m\":32,\"block_n\":32,\"thread_m\":2,\"thread_n\":2,\"block_k\":8,"
    "\"unroll\":0,\"threads\":64}",
    "{\"block_m\":16,\"block_n\":64,\"thread_m\":1,\"thread_n\":4,\"block_k\":1}"},
   1},
  {"matadd", 5,
   {{1, 1, 1, 1, 1}, {2, 3, 17, 9, 5}, {1, 2, 40, 33, 70}, {2, 1, 64, 64, 16}, {3, 2, 5, 1, 1}},
   {"{}",
    "{\"block_c\":8,\"block_d\":16,\"thread_c\":1,\"thread_d\":1,\"block_n\":4,\"unroll\":0}",
    "{\"shared\":0,\"block_c\":64,\"block_d\":32,\"thread_c\":8,\"thread_d\":2,\"block_n\":64}",
    "{\"block_c\":16,\"block_d\":128,\"thread_c\":4,\"thread_d\":8,\"block_n\":32}",
    "{\"split_k\":1}", "{\"split_k\":4,\"block_n\":4,\"shared\":0,\"threads\":32}",
    "{\"split_k\":256,\"block_n\":16}"},
   1},
  {"hamming", 5,
   {{1, 1, 1}, {5, 40, 3}, {70, 33, 9}, {64, 64, 8}, {3, 130, 1}},
   {"{}",
    "{\"pack\":0,\"block_n\":16,\"block_m\":32,\"thread_n\":1,\"thread_m\":2,\"block_w\":2}",
    "{\"shared\":0,\"unroll\":0,\"block_n\":128,\"block_m\":16,\"thread_n\":8,\"thread_m\":1,"
    "\"block_w\":16,\"threads\":128}",
    "{\"block_w\":1,\"block_n\":32,\"block_m\":128,\"thread_n\":2,\"thread_m\":8}"},
   1},
  /* i16 scores: the same template, 16-bit accumulators and stores */
  {"hamming16", 5,
   {{1, 1, 1}, {5, 40, 3}, {70, 33, 9}, {64, 64, 8}, {3, 130, 1}},
   {"{}",
    "{\"pack\":0,\"block_n\":16,\"block_m\":32,\"thread_n\":1,\"thread_m\":2,\"block_w\":2}",
    "{\"shared\":0,\"unroll\":0,\"block_n\":128,\"block_m\":16,\"thread_n\":8,\"thread_m\":1,"
    "\"block_w\":16,\"threads\":128}"},
   1},
  {"binary_attention", 5,
   {{1, 1, 1, 1, 1}, {2, 3, 17, 9, 5}, {1, 2, 70, 33, 20}, {2, 1, 64, 64, 16}, {1, 1, 5, 1, 3}},
   {"{}", "{\"inline_x\":0,\"threads\":64}",
    "{\"shared\":0,\"unroll\":0,\"block_c\":8,\"block_n\":16,\"block_d\":16,\"thread_r\":1,"
    "\"thread_d\":2,\"block_k\":4}",
    "{\"block_c\":64,\"block_n\":128,\"block_d\":32,\"thread_r\":8,\"thread_d\":1,"
    "\"block_k\":64,\"inline_x\":0}",
    "{\"split_k\":1}", "{\"split_k\":8,\"block_k\":4,\"shared\":0}",
    "{\"split_k\":256,\"inline_x\":0,\"threads\":64}"},
   0},
  /* The elementwise ops (M, N): one element per thread, blocks that the
   * shapes do not fill, and a block smaller than the threads knob. */
  {"gelu", 5, {{1, 1}, {3, 7}, {65, 129}, {33, 1000}, {1, 300}},
   {"{}", "{\"threads\":64}", "{\"threads\":1024}"}, 0},
  {"q16_quantize", 5, {{1, 1}, {3, 7}, {65, 129}, {33, 1000}, {1, 300}},
   {"{}", "{\"threads\":128}", "{\"threads\":1024}"}, 0},
  {"q16_dequantize", 5, {{1, 1}, {3, 7}, {65, 129}, {33, 1000}, {1, 300}},
   {"{}", "{\"threads\":512}"}, 0},
  {"q16_gelu", 5, {{1, 1}, {3, 7}, {65, 129}, {33, 1000}, {1, 300}},
   {"{}", "{\"threads\":64}", "{\"threads\":1024}"}, 0},
  /* The fused ops (fused.c): epilogues on the register tiles, the
   * q16_quantize prologue computed into the shared X tile or inlined. */
  {"linear_gelu", 5,
   {{1, 1, 1}, {37, 45, 29}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}},
   {"{}",
    "{\"shared\":0,\"unroll\":0,\"pack\":0,\"block_m\":32,\"block_n\":16,\"thread_m\":1,"
    "\"thread_n\":2,\"block_k\":8}",
    "{\"block_m\":16,\"block_n\":128,\"thread_m\":2,\"thread_n\":8,\"block_k\":4}"},
   0},
  {"shift_linear_q16_gelu", 5,
   {{1, 1, 1}, {37, 45, 29}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}},
   {"{}", "{\"form\":1}",
    "{\"form\":1,\"pack\":0,\"block_m\":32,\"block_n\":32,\"thread_m\":2,\"thread_n\":2,"
    "\"block_k\":8,\"unroll\":0,\"threads\":64}",
    "{\"pack\":0,\"shared\":0,\"block_m\":16,\"block_n\":64,\"thread_m\":1,\"thread_n\":4}"},
   0},
  {"shift_linear_dequantize", 5,
   {{1, 1, 1}, {37, 45, 29}, {33, 17, 65}, {130, 70, 40}, {3, 100, 1}},
   {"{}", "{\"form\":1}",
    "{\"form\":1,\"shared\":0,\"block_k\":64,\"block_m\":64,\"block_n\":16,\"thread_m\":8,"
    "\"thread_n\":1}"},
   0},
  /* The MoE dispatch (T, M, D) and combine (R, T, K, D): row indices from
   * data, -1 among them; K of 1, 2 and 3. */
  {"gather_rows", 5, {{1, 1, 1}, {5, 7, 13}, {33, 65, 129}, {1, 9, 300}, {40, 1000, 33}},
   {"{}", "{\"threads\":64}", "{\"threads\":1024}"}, 0},
  {"combine_rows", 6,
   {{1, 1, 1, 1}, {9, 6, 2, 19}, {9, 6, 1, 19}, {9, 6, 3, 19}, {40, 300, 2, 33}, {1, 5, 3, 7}},
   {"{}", "{\"threads\":64}", "{\"threads\":1024}"}, 0},
};

#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static int n_configs(const gpu_case *c) {
  int n = 0;
  while (n < MAX_CONFIGS && c->configs[n] != NULL) n++;
  return n;
}

static const mfx_op *find_op(const char *name) {
  const mfx_op *op = mfx_op_find(name);
  ck_assert_msg(op != NULL, "op %s is not registered", name);
  return op;
}

static void gpu_config(const mfx_op *op, const char *json, mfx_config *cfg) {
  ck_assert_msg(mfx_config_parse_json_for(op, "cuda:sm_80", json, cfg) == MFX_OK,
                "%s GPU config %s: %s", op->name, json, mfx_last_error());
}

static void describe(const mfx_op *op, const int64_t *dims, const char *json, char *buf,
                     size_t size) {
  size_t used = (size_t)snprintf(buf, size, "%s", op->name);
  for (int d = 0; d < op->n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%s=%lld", d ? "," : " ", op->dims[d],
                             (long long)dims[d]);
  if (used < size) snprintf(buf + used, size - used, " gpu %s", json);
}

/* The GPU program of one case, in arena a (fails the test when it cannot
 * be built). */
static mfx_gpu_program *program(mfx_arena *a, const mfx_op *op, const int64_t *dims,
                                const char *json) {
  mfx_config cfg;
  gpu_config(op, json, &cfg);
  mfx_gpu_program *p = NULL;
  char what[512];
  describe(op, dims, json, what, sizeof what);
  ck_assert_msg(mfx_op_gpu_program(op, a, dims, &cfg, &p) == MFX_OK, "%s: %s", what,
                mfx_last_error());
  ck_assert_msg(p->n_kernels >= 1, "%s: no kernels", what);
  return p;
}

/* ---- loop IR checks ------------------------------------------------------------------ */

static int expr_multiplies_data(const mfx_expr *e) {
  if (e == NULL) return 0;
  switch (e->kind) {
  case MFX_EXPR_LOAD:
    for (int i = 0; i < e->u.load.n; i++)
      if (expr_multiplies_data(e->u.load.idx[i])) return 1;
    return 0;
  case MFX_EXPR_BINARY:
    if ((e->u.bin.op == MFX_MUL || e->u.bin.op == MFX_DIV) && e->type != MFX_I64) return 1;
    return expr_multiplies_data(e->u.bin.a) || expr_multiplies_data(e->u.bin.b);
  case MFX_EXPR_UNARY: return expr_multiplies_data(e->u.un.a);
  case MFX_EXPR_CAST: return expr_multiplies_data(e->u.cast.a);
  case MFX_EXPR_SELECT:
    return expr_multiplies_data(e->u.sel.cond) || expr_multiplies_data(e->u.sel.a) ||
           expr_multiplies_data(e->u.sel.b);
  default: return 0;
  }
}

static int stmt_multiplies_data(const mfx_stmt *s) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return stmt_multiplies_data(s->u.loop.body);
  case MFX_STMT_STORE:
    for (int i = 0; i < s->u.store.n; i++)
      if (expr_multiplies_data(s->u.store.idx[i])) return 1;
    return expr_multiplies_data(s->u.store.value);
  case MFX_STMT_LET:
    return expr_multiplies_data(s->u.let.value) || stmt_multiplies_data(s->u.let.body);
  case MFX_STMT_IF:
    return expr_multiplies_data(s->u.if_.cond) || stmt_multiplies_data(s->u.if_.then_s) ||
           stmt_multiplies_data(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return stmt_multiplies_data(s->u.alloc.body);
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n; i++)
      if (stmt_multiplies_data(s->u.seq.items[i])) return 1;
    return 0;
  default: return 0;
  }
}

static int stmt_count_loops(const mfx_stmt *s, mfx_loop_kind kind) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return (s->u.loop.kind == kind) + stmt_count_loops(s->u.loop.body, kind);
  case MFX_STMT_LET: return stmt_count_loops(s->u.let.body, kind);
  case MFX_STMT_IF:
    return stmt_count_loops(s->u.if_.then_s, kind) + stmt_count_loops(s->u.if_.else_s, kind);
  case MFX_STMT_ALLOCATE: return stmt_count_loops(s->u.alloc.body, kind);
  case MFX_STMT_SEQ: {
    int n = 0;
    for (int i = 0; i < s->u.seq.n; i++) n += stmt_count_loops(s->u.seq.items[i], kind);
    return n;
  }
  default: return 0;
  }
}

/* Launch limits, no kernel on a single thread, no parallel loops. */
static void check_launches(const mfx_gpu_program *p, const char *what) {
  for (int i = 0; i < p->n_kernels; i++) {
    const mfx_gpu_kernel *k = &p->kernels[i];
    int64_t threads = k->block[0] * k->block[1] * k->block[2];
    int64_t blocks = k->grid[0] * k->grid[1] * k->grid[2];
    ck_assert_msg(threads >= 1 && threads <= 1024, "%s: %s has %lld threads per block", what,
                  k->name, (long long)threads);
    ck_assert_msg(k->shared_bytes <= 48 * 1024, "%s: %s uses %lld bytes of shared memory", what,
                  k->name, (long long)k->shared_bytes);
    ck_assert_msg(threads * blocks > 1, "%s: %s runs on one thread (an unbound stage)", what,
                  k->name);
    ck_assert_msg(stmt_count_loops(k->body, MFX_LOOP_PARALLEL) == 0, "%s: %s has parallel loops",
                  what, k->name);
  }
}

static int64_t program_shared_bytes(const mfx_gpu_program *p) {
  int64_t bytes = 0;
  for (int i = 0; i < p->n_kernels; i++) bytes += p->kernels[i].shared_bytes;
  return bytes;
}

/* On a shape that fills several blocks: launches within limits, shared
 * staging where asked for, multiplication-free where the op is. */
START_TEST(gpu_programs_respect_limits) {
  for (int c = 0; c < N_CASES; c++) {
    const mfx_op *op = find_op(cases[c].op);
    const int64_t *dims = cases[c].shapes[cases[c].n_shapes - 2];
    for (int k = 0; k < n_configs(&cases[c]); k++) {
      const char *json = cases[c].configs[k];
      char what[512];
      describe(op, dims, json, what, sizeof what);
      mfx_arena *a = mfx_arena_create();
      mfx_gpu_program *p = program(a, op, dims, json);
      check_launches(p, what);
      mfx_config cfg;
      gpu_config(op, json, &cfg);
      int shared = mfx_config_get(&cfg, "shared") == 1; /* -1: no such knob, no staging */
      ck_assert_msg((program_shared_bytes(p) > 0) == shared, "%s: %lld bytes of shared memory "
                    "with shared=%d", what, (long long)program_shared_bytes(p), shared);
      for (int i = 0; cases[c].multiplication_free && i < p->n_kernels; i++)
        ck_assert_msg(!stmt_multiplies_data(p->kernels[i].body),
                      "%s: kernel %s multiplies or divides data", what, p->kernels[i].name);
      mfx_arena_destroy(a);
    }
  }
}
END_TEST

/* The stages of the multi-stage templates become separate kernels. */
START_TEST(gpu_kernel_counts) {
  static const struct {
    const char *op, *json;
    int kernels;
  } want[] = {
    {"linear", "{\"pack\":1}", 2},
    {"linear", "{\"pack\":0}", 1},
    {"shift_linear", "{\"form\":0,\"pack\":1}", 3}, /* ST, GT, Y */
    {"shift_linear", "{\"form\":0,\"pack\":0}", 1},
    {"shift_linear", "{\"form\":1,\"pack\":1}", 6}, /* ST, ZM, NM, ACC, CNT, Y */
    {"shift_linear", "{\"form\":2,\"pack\":1}", 2}, /* SG, Y */
    {"shift_linear", "{\"form\":2,\"pack\":0}", 1},
    {"hamming", "{\"pack\":1}", 2},
    {"linear_gelu", "{\"pack\":0}", 1},                           /* Y with GELU at write-back */
    {"shift_linear_q16_gelu", "{\"form\":0,\"pack\":0}", 1},    /* XQ into the shared tile */
    {"shift_linear_q16_gelu", "{\"form\":0,\"pack\":0,\"shared\":0}", 1}, /* XQ inlined */
    {"shift_linear_dequantize", "{\"form\":1,\"pack\":1}", 5}, /* ST, ZM, NM, CNT, ACC+CNT
                                                                     dequantized (no Y) */
    {"matadd", "{}", 1},
    {"gelu", "{}", 1},
    {"q16_gelu", "{\"threads\":64}", 1},
    {"gather_rows", "{}", 1},
    {"combine_rows", "{}", 1},
    {"binary_attention", "{\"inline_x\":1}", 4},    /* A, XS, NRM, O */
    {"binary_attention", "{\"inline_x\":0}", 5},    /* A, XS, X, NRM, O */
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const mfx_op *op = find_op(want[i].op);
    int64_t dims[MFX_OP_MAX_DIMS];
    for (int d = 0; d < op->n_dims; d++) dims[d] = 19 + d;
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, dims, want[i].json);
    ck_assert_msg(p->n_kernels == want[i].kernels, "%s %s: %d kernels, expected %d", want[i].op,
                  want[i].json, p->n_kernels, want[i].kernels);
    ck_assert_int_eq(p->n_workspace, p->n_kernels - 1);
    mfx_arena_destroy(a);
  }
}
END_TEST

static void assert_refused(mfx_status got, mfx_status want, const char *needle,
                           const char *what) {
  ck_assert_msg(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want,
                mfx_last_error());
  ck_assert_msg(strstr(mfx_last_error(), needle) != NULL, "%s: message \"%s\" lacks \"%s\"",
                what, mfx_last_error(), needle);
}

/* ---- filling the device ------------------------------------------------------------------- */

/* ShiftAddViT's shapes: MatShift / the dense expert (M, N, K) and MatAdd /
 * binary attention (B, H, N, D, C). `small`: the kernels (bit i: kernel i)
 * that sum few outputs, one thread each (split_k's sum of a head's C x D
 * outputs): fewer than 100 x 64 threads in all, no work to
 * spread over 100 blocks; everything else must launch >= 100 blocks in the
 * GPU default and reach two waves (2 x 132 SMs) somewhere in the knob
 * space. */
#define FILL_BLOCKS 100
#define TWO_WAVES (2 * 132)

static const struct {
  const char *op;
  int64_t dims[MFX_OP_MAX_DIMS];
  unsigned small;
} shiftaddvit[] = {
  {"linear", {3136, 512, 64}, 0},   {"linear", {3136, 64, 512}, 0},
  {"linear", {784, 1024, 128}, 0},  {"linear", {784, 128, 1024}, 0},
  /* shift_linear (form 3): SG, CNT (small: one thread per column), Y; with
   * split_k SG, YP, CNT, the pieces' sum plus CNT */
  {"shift_linear", {3136, 512, 64}, 1u << 1},  {"shift_linear", {3136, 64, 512}, 1u << 2},
  {"shift_linear", {784, 1024, 128}, 1u << 1}, {"shift_linear", {784, 128, 1024}, 1u << 2},
  {"matadd", {1, 1, 3136, 32, 16}, 1u << 1}, {"matadd", {1, 2, 784, 32, 16}, 1u << 1},
  {"matadd", {1, 5, 196, 32, 16}, 1u << 1},
  {"binary_attention", {1, 1, 3136, 32, 16}, 1u << 1},
  {"binary_attention", {1, 2, 784, 32, 16}, 1u << 1},
  {"binary_attention", {1, 5, 196, 32, 16}, 1u << 1},
};
#define N_SHIFTADDVIT ((int)(sizeof shiftaddvit / sizeof shiftaddvit[0]))

static int64_t kernel_blocks(const mfx_gpu_kernel *k) { return k->grid[0] * k->grid[1] * k->grid[2]; }
static int64_t kernel_threads(const mfx_gpu_kernel *k) {
  return kernel_blocks(k) * k->block[0] * k->block[1] * k->block[2];
}

/* The fewest blocks among the kernels that must fill the device; `small`
 * lists the others (SMALL_BY_SIZE: every kernel of fewer than 100 x 64
 * threads, for configs whose kernel list the table does not spell out). */
#define SMALL_BY_SIZE (~0u)
static int64_t fill_blocks(const mfx_gpu_program *p, unsigned small, const char *what) {
  int64_t fewest = INT64_MAX;
  for (int i = 0; i < p->n_kernels; i++) {
    if (small == SMALL_BY_SIZE && kernel_threads(&p->kernels[i]) < FILL_BLOCKS * 64) continue;
    if (small != SMALL_BY_SIZE && (small >> i & 1u)) {
      ck_assert_msg(kernel_threads(&p->kernels[i]) < FILL_BLOCKS * 64, "%s: kernel %d is listed "
                    "as small but runs %lld threads", what, i,
                    (long long)kernel_threads(&p->kernels[i]));
      continue;
    }
    if (kernel_blocks(&p->kernels[i]) < fewest) fewest = kernel_blocks(&p->kernels[i]);
  }
  return fewest;
}

/* The table (printed), read from the launch configurations of the defaults. */
START_TEST(gpu_defaults_fill_the_device) {
  for (int c = 0; c < N_SHIFTADDVIT; c++) {
    const mfx_op *op = find_op(shiftaddvit[c].op);
    char what[512], line[1024];
    describe(op, shiftaddvit[c].dims, "{}", what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, shiftaddvit[c].dims, "{}");
    size_t used = (size_t)snprintf(line, sizeof line, "%-52s", what);
    for (int i = 0; i < p->n_kernels && used < sizeof line; i++)
      used += (size_t)snprintf(line + used, sizeof line - used, " k%d:%lld%s", i,
                               (long long)kernel_blocks(&p->kernels[i]),
                               shiftaddvit[c].small >> i & 1u ? "(small)" : "");
    fprintf(stderr, "blocks %s\n", line);
    int64_t fewest = fill_blocks(p, shiftaddvit[c].small, what);
    ck_assert_msg(fewest >= FILL_BLOCKS, "%s: a kernel launches %lld blocks (want >= %d): %s",
                  what, (long long)fewest, FILL_BLOCKS, line);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* Some valid config of the knob space launches two waves: split_k over its
 * choices, with the default tiles and with smaller ones. */
START_TEST(gpu_knob_space_reaches_two_waves) {
  static const char *tiles[] = {"", "\"threads\":64,",
                                "\"block_m\":64,\"block_n\":64,\"thread_m\":4,\"thread_n\":4,"
                                "\"threads\":64,",
                                "\"block_c\":8,\"block_d\":16,\"thread_c\":1,\"thread_d\":1,",
                                "\"block_n\":4,\"block_c\":8,\"block_d\":16,\"thread_r\":1,"
                                "\"thread_d\":1,\"block_k\":4,\"threads\":64,"};
  for (int c = 0; c < N_SHIFTADDVIT; c++) {
    const mfx_op *op = find_op(shiftaddvit[c].op);
    int n_knobs = 0;
    const mfx_knob *knobs = mfx_op_knobs(op, "cuda:sm_80", &n_knobs), *split = NULL;
    for (int k = 0; k < n_knobs; k++)
      if (strcmp(knobs[k].name, "split_k") == 0) split = &knobs[k];
    ck_assert_msg(split != NULL, "%s has no split_k GPU knob", op->name);
    int64_t best = 0;
    char best_json[256] = "";
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++)
      for (int v = 0; v < split->n_choices; v++) {
        char json[256];
        snprintf(json, sizeof json, "{%s\"split_k\":%lld}", tiles[t], (long long)split->choices[v]);
        mfx_config cfg;
        if (mfx_config_parse_json_for(op, "cuda:sm_80", json, &cfg) != MFX_OK) continue;
        mfx_arena *a = mfx_arena_create();
        mfx_gpu_program *p = NULL;
        if (mfx_op_gpu_program(op, a, shiftaddvit[c].dims, &cfg, &p) == MFX_OK) {
          int64_t fewest = fill_blocks(p, SMALL_BY_SIZE, json);
          if (fewest > best) {
            best = fewest;
            snprintf(best_json, sizeof best_json, "%s", json);
          }
        }
        mfx_arena_destroy(a);
      }
    char what[512];
    describe(op, shiftaddvit[c].dims, best_json, what, sizeof what);
    ck_assert_msg(best >= TWO_WAVES, "%s: at most %lld blocks in the knob space (want >= %d)",
                  what, (long long)best, TWO_WAVES);
  }
}
END_TEST

/* split_k's pieces are blocks on blockIdx.y and one more kernel sums them. */
START_TEST(split_k_adds_a_sum_kernel) {
  const mfx_op *op = find_op("linear");
  const int64_t dims[3] = {784, 128, 1024};
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *whole = program(a, op, dims, "{\"split_k\":1}");
  mfx_gpu_program *split = program(a, op, dims, "{\"split_k\":8}");
  ck_assert_int_eq(split->n_kernels, whole->n_kernels + 1);
  const mfx_gpu_kernel *w = &whole->kernels[whole->n_kernels - 1];
  const mfx_gpu_kernel *k = &split->kernels[split->n_kernels - 2];
  ck_assert_int_eq(k->grid[1], 8); /* the pieces */
  ck_assert_int_eq(kernel_blocks(k), 8 * kernel_blocks(w));
  mfx_config cfg;
  assert_refused(mfx_config_parse_json_for(op, "cuda:sm_80", "{\"split_k\":3}", &cfg),
                 MFX_ERR_INVALID, "split_k=3 is not one of its choices", "split_k=3");
  mfx_arena_destroy(a);
}
END_TEST

/* ---- emulated runs against the reference ------------------------------------------------- */

/* One case; on failure writes why into `why` and returns 0. */
static int run_emulated(const mfx_op *op, const int64_t *dims, const char *json, uint64_t seed,
                        char *why, size_t size) {
  mfx_array in[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, want), MFX_OK);
  mfx_op_random_inputs(op, dims, seed, in);
  op->reference(dims, in, want);
  void *args[2 * MFX_OP_MAX_TENSORS];
  for (int i = 0; i < op->n_inputs; i++) args[i] = in[i].data;
  for (int i = 0; i < op->n_outputs; i++) { /* garbage, so unwritten outputs show */
    memset(got[i].data, 0x7f, (size_t)mfx_array_numel(&got[i]) * mfx_dtype_size(got[i].dtype));
    args[op->n_inputs + i] = got[i].data;
  }
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = program(a, op, dims, json);
  mfx_jit_kernel *jit = NULL;
  int ok = 1;
  mfx_status st = mfx_gpu_emulate_compile(a, p, &jit);
  if (st != MFX_OK) {
    snprintf(why, size, "emulation: %s: %s", mfx_status_name(st), mfx_last_error());
    ok = 0;
  }
  mfx_kernel_env env;
  mfx_kernel_env_init(&env, NULL);
  if (ok && mfx_jit_entry(jit)(args, &env) != 0) {
    snprintf(why, size, "the emulated kernel could not allocate its workspace");
    ok = 0;
  }
  for (int i = 0; ok && i < op->n_outputs; i++) {
    mfx_compare c = mfx_compare_arrays_int(&got[i], &want[i], TOL, op->int_tolerance);
    if (!c.ok) {
      snprintf(why, size, "output %s differs: max_abs_err %g, max_rel_err %g at index %lld",
               op->outputs[i].name, c.max_abs_err, c.max_rel_err, (long long)c.worst_index);
      ok = 0;
    }
  }
  if (jit != NULL) mfx_jit_free(jit);
  mfx_arena_destroy(a);
  for (int i = 0; i < op->n_inputs; i++) mfx_array_free(&in[i]);
  for (int i = 0; i < op->n_outputs; i++) {
    mfx_array_free(&got[i]);
    mfx_array_free(&want[i]);
  }
  return ok;
}

/* Every shape under every config of case c; all failures printed, the first
 * one fails the test. */
static void check_emulated(int c) {
  const gpu_case *gc = &cases[c];
  const mfx_op *op = find_op(gc->op);
  int failures = 0, runs = 0;
  char first[2048] = "";
  /* The sanitizer tree (MFX_TEST_QUICK) runs the first three shapes (the
   * smallest, and two that divide no tile) under every config: it looks
   * for memory errors; the release tree checks every shape. */
  int n_shapes = getenv("MFX_TEST_QUICK") != NULL && gc->n_shapes > 3 ? 3 : gc->n_shapes;
  for (int s = 0; s < n_shapes; s++) {
    for (int k = 0; k < n_configs(gc); k++) {
      char why[1024], what[512];
      runs++;
      if (run_emulated(op, gc->shapes[s], gc->configs[k], (uint64_t)(s * 37 + k + 1), why,
                       sizeof why))
        continue;
      describe(op, gc->shapes[s], gc->configs[k], what, sizeof what);
      fprintf(stderr, "FAIL %s: %s\n", what, why);
      if (failures++ == 0) snprintf(first, sizeof first, "%s: %s", what, why);
    }
  }
  ck_assert_msg(failures == 0, "%d of %d emulated %s cases failed; first: %s", failures, runs,
                gc->op, first);
}

START_TEST(emulated_ops_match_reference) { check_emulated(_i); }
END_TEST

/* A row index of -1 is never read on a GPU either: emulated, with the rows
 * (input 0) right after a page that faults when touched and every index -1
 * or 0, under each config of the case. */
static void check_rows_placed(const char *name, const int64_t *dims, int at_end) {
  const mfx_op *op = find_op(name);
  const gpu_case *gc = NULL;
  for (int c = 0; c < N_CASES; c++)
    if (strcmp(cases[c].op, name) == 0) gc = &cases[c];
  ck_assert_ptr_nonnull(gc);
  guarded_rows g;
  guarded_rows_setup(op, dims, at_end, &g);
  void *args[2 * MFX_OP_MAX_TENSORS];
  for (int i = 0; i < op->n_inputs; i++) args[i] = g.in[i].data;
  args[op->n_inputs] = g.got[0].data;
  for (int k = 0; k < n_configs(gc); k++) {
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, dims, gc->configs[k]);
    mfx_jit_kernel *jit = NULL;
    ck_assert_msg(mfx_gpu_emulate_compile(a, p, &jit) == MFX_OK, "%s: %s", name,
                  mfx_last_error());
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, NULL);
    ck_assert_int_eq(mfx_jit_entry(jit)(args, &env), 0);
    mfx_compare c = mfx_compare_arrays(&g.got[0], &g.want[0], TOL);
    ck_assert_msg(c.ok, "%s gpu %s: max_rel_err %g", name, gc->configs[k], c.max_rel_err);
    mfx_jit_free(jit);
    mfx_arena_destroy(a);
  }
  guarded_rows_free(op, &g);
}

/* Rows right after a faulting page, then right before one. */
static void check_rows_in_bounds(const char *name, const int64_t *dims) {
  check_rows_placed(name, dims, 0);
  check_rows_placed(name, dims, 1);
}

START_TEST(emulated_row_index_minus_one_is_never_read) {
  check_rows_in_bounds("gather_rows", (int64_t[]){3, 70, 13});
  check_rows_in_bounds("combine_rows", (int64_t[]){2, 50, 3, 19});
}
END_TEST

/* ---- PTX ------------------------------------------------------------------------------------ */

static void check_ptx(const mfx_gpu_program *p, const char *sm, int shared, const char *what) {
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_ptx(p, sm, &ptx, &size) == MFX_OK, "%s: PTX for %s: %s", what, sm,
                mfx_last_error());
  for (int i = 0; i < p->n_kernels; i++) {
    char entry[256];
    snprintf(entry, sizeof entry, ".entry %s(", p->kernels[i].name);
    ck_assert_msg(strstr(ptx, entry) != NULL, "%s: no %s in the PTX", what, entry);
  }
  if (shared) {
    ck_assert_msg(strstr(ptx, ".shared") != NULL, "%s: staged, but no .shared in the PTX", what);
    ck_assert_msg(strstr(ptx, "bar.sync") != NULL, "%s: staged, but no bar.sync", what);
  }
  assemble(ptx, sm, what);
  free(ptx);
}

static int stmt_count_barriers(const mfx_stmt *s) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_BARRIER: return 1;
  case MFX_STMT_FOR: return stmt_count_barriers(s->u.loop.body);
  case MFX_STMT_LET: return stmt_count_barriers(s->u.let.body);
  case MFX_STMT_IF: return stmt_count_barriers(s->u.if_.then_s) + stmt_count_barriers(s->u.if_.else_s);
  case MFX_STMT_ALLOCATE: return stmt_count_barriers(s->u.alloc.body);
  case MFX_STMT_SEQ: {
    int n = 0;
    for (int i = 0; i < s->u.seq.n; i++) n += stmt_count_barriers(s->u.seq.items[i]);
    return n;
  }
  default: return 0;
  }
}

/* bar.sync instructions in the PTX of one kernel (its .entry to the next). */
static int ptx_count_barriers(const char *ptx, const char *kernel) {
  char entry[256];
  snprintf(entry, sizeof entry, ".entry %s(", kernel);
  const char *at = strstr(ptx, entry);
  if (at == NULL) return -1;
  const char *end = strstr(at + 1, ".entry ");
  int n = 0;
  for (const char *b = strstr(at, "bar.sync"); b != NULL && (end == NULL || b < end);
       b = strstr(b + 1, "bar.sync"))
    n++;
  return n;
}

/* Every staging step fills all its shared tiles between one pair of
 * barriers (before: nobody still reads the last step's tiles; after: the
 * tiles are complete), whatever the number of staged tensors (2 to 4 here):
 * two barriers in the kernel's loop IR and two bar.sync in its PTX (K long
 * enough that LLVM keeps the k-loop rolled). */
START_TEST(one_barrier_pair_per_staging_step) {
  static const struct {
    const char *op, *json;
    int64_t dims[MFX_OP_MAX_DIMS];
  } want[] = {
    {"linear", "{\"split_k\":1}", {256, 256, 1024}},
    {"linear", "{\"split_k\":8}", {256, 256, 1024}},
    {"shift_linear", "{\"split_k\":1,\"form\":0}", {256, 256, 1024}},    /* X, ST, GT */
    {"shift_linear", "{\"split_k\":1}", {256, 256, 1024}},               /* X, SG */
    {"shift_linear", "{\"split_k\":1,\"form\":1}", {256, 256, 1024}},    /* X, ST, ZM, NM */
    {"matadd", "{\"split_k\":1}", {1, 1, 1024, 32, 16}},
    {"hamming", "{}", {256, 256, 256}},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const mfx_op *op = find_op(want[i].op);
    char what[512];
    describe(op, want[i].dims, want[i].json, what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, want[i].dims, want[i].json);
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s: %s", what,
                  mfx_last_error());
    int staged = 0;
    for (int k = 0; k < p->n_kernels; k++) {
      const mfx_gpu_kernel *kern = &p->kernels[k];
      if (kern->shared_bytes == 0) {
        ck_assert_int_eq(stmt_count_barriers(kern->body), 0);
        continue;
      }
      staged++;
      ck_assert_msg(stmt_count_barriers(kern->body) == 2, "%s: %s has %d barriers in its loop "
                    "IR, expected 2", what, kern->name, stmt_count_barriers(kern->body));
      ck_assert_msg(ptx_count_barriers(ptx, kern->name) == 2, "%s: %s has %d bar.sync in its "
                    "PTX, expected 2", what, kern->name, ptx_count_barriers(ptx, kern->name));
    }
    ck_assert_msg(staged == 1, "%s: %d staged kernels", what, staged);
    free(ptx);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* Stores into buffer `acc` under a condition (inside an if). */
static int stmt_guarded_stores(const mfx_stmt *s, const char *acc, int guarded) {
  if (s == NULL) return 0;
  switch (s->kind) {
  case MFX_STMT_FOR: return stmt_guarded_stores(s->u.loop.body, acc, guarded);
  case MFX_STMT_STORE: return guarded && strcmp(s->u.store.buf->name, acc) == 0;
  case MFX_STMT_LET: return stmt_guarded_stores(s->u.let.body, acc, guarded);
  case MFX_STMT_IF:
    return stmt_guarded_stores(s->u.if_.then_s, acc, 1) +
           stmt_guarded_stores(s->u.if_.else_s, acc, 1);
  case MFX_STMT_ALLOCATE: return stmt_guarded_stores(s->u.alloc.body, acc, guarded);
  case MFX_STMT_SEQ: {
    int n = 0;
    for (int i = 0; i < s->u.seq.n; i++) n += stmt_guarded_stores(s->u.seq.items[i], acc, guarded);
    return n;
  }
  default: return 0;
  }
}

/* The PTX of one kernel: from its .entry to the next (a copy, NUL-terminated). */
static char *ptx_kernel_text(const char *ptx, const char *kernel) {
  char entry[256];
  snprintf(entry, sizeof entry, ".entry %s(", kernel);
  const char *at = strstr(ptx, entry);
  ck_assert_msg(at != NULL, "no kernel %s in the PTX", kernel);
  const char *end = strstr(at + 1, ".entry ");
  size_t n = end ? (size_t)(end - at) : strlen(at);
  char *text = malloc(n + 1);
  ck_assert_ptr_nonnull(text);
  memcpy(text, at, n);
  text[n] = '\0';
  return text;
}

/* Partial tiles cost no branch per term: where a template asks for it
 * (shift_linear, hamming; not linear, whose contiguous tiles' vector loads
 * LLVM then no longer forms) and a reduction accumulates in
 * registers from staged tiles only, the accumulator's update carries no
 * guard on the rows and columns (the shared tiles are filled with zeros
 * past the edge; the write-back stays guarded), on shapes that divide no
 * tile. Guards stay where they must: a reduction step that does not divide
 * K (zeros need not be the sum's identity term: the shift term of zeros is
 * 0, but hamming's is 32), and loads straight from global memory
 * (shared 0). And shift_linear's default (form 2) applies the sign with
 * and / xor / sub: no select, no negation in its kernel. */
/* hamming16 writes its scores with 16-bit stores (hamming: 32-bit), and
 * refuses W past the i16 range on the GPU too. */
START_TEST(hamming16_stores_16_bits) {
  static const char *names[2] = {"hamming", "hamming16"};
  const int64_t dims[3] = {70, 33, 9};
  for (int i = 0; i < 2; i++) {
    const mfx_op *op = find_op(names[i]);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, dims, "{}");
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s", mfx_last_error());
    char *text = ptx_kernel_text(ptx, p->kernels[p->n_kernels - 1].name);
    int st16 = strstr(text, "st.global.u16") != NULL || strstr(text, "st.global.b16") != NULL;
    int st32 = strstr(text, "st.global.u32") != NULL || strstr(text, "st.global.b32") != NULL;
    ck_assert_msg(st16 == (i == 1) && st32 == (i == 0), "%s: 16-bit stores %d, 32-bit %d:\n%s",
                  names[i], st16, st32, text);
    assemble(ptx, "sm_90", names[i]);
    free(text);
    free(ptx);
    mfx_arena_destroy(a);
  }
  const mfx_op *op = find_op("hamming16");
  mfx_config cfg;
  gpu_config(op, "{}", &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  assert_refused(mfx_op_build_for(op, "cuda:sm_80", a, (int64_t[]){8, 8, 1024}, &cfg, &s),
                 MFX_ERR_INVALID, "W = 1024 words", "hamming16 W=1024");
  ck_assert_msg(mfx_op_build_for(op, "cuda:sm_80", a, (int64_t[]){8, 8, 1023}, &cfg, &s) ==
                MFX_OK, "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

/* Binary attention's row norms: a warp per row (shfl.sync butterflies) and
 * rsqrt.approx, no IEEE division or square root in the norm and O kernels;
 * the norm kernel launches >= 100 blocks at ShiftAddViT's shapes
 * (gpu_defaults_fill_the_device), and lanes past D take part in the
 * shuffles (D = 20 and 33 here, in the emulation cases too). */
START_TEST(row_norms_a_warp_per_row) {
  static const int64_t shapes[][5] = {{1, 1, 3136, 32, 16}, {1, 2, 70, 20, 16},
                                      {2, 1, 19, 33, 5}};
  for (int c = 0; c < 3; c++) {
    const mfx_op *op = find_op("binary_attention");
    char what[512];
    describe(op, shapes[c], "{}", what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, shapes[c], "{}");
    const mfx_gpu_kernel *inv = &p->kernels[p->n_kernels - 2];
    ck_assert_msg(inv->block[0] % 32 == 0, "%s: %s has %lld threads (whole warps expected)",
                  what, inv->name, (long long)inv->block[0]);
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s: %s", what,
                  mfx_last_error());
    char *norm = ptx_kernel_text(ptx, inv->name);
    char *out = ptx_kernel_text(ptx, p->kernels[p->n_kernels - 1].name);
    int shuffles = 0;
    for (const char *s = strstr(norm, "shfl.sync.bfly"); s; s = strstr(s + 1, "shfl.sync.bfly"))
      shuffles++;
    ck_assert_msg(shuffles == 5, "%s: %d shfl.sync.bfly in %s, expected 5:\n%s", what, shuffles,
                  inv->name, norm);
    ck_assert_msg(strstr(norm, "rsqrt.approx") != NULL, "%s: no rsqrt.approx:\n%s", what, norm);
    ck_assert_msg(strstr(norm, "div.") == NULL && strstr(norm, "sqrt.rn") == NULL &&
                  strstr(out, "div.") == NULL && strstr(out, "sqrt.rn") == NULL,
                  "%s: IEEE division or square root in the norm or O kernel:\n%s\n%s", what,
                  norm, out);
    assemble(ptx, "sm_90", what);
    free(norm);
    free(out);
    free(ptx);
    mfx_arena_destroy(a);
  }
}
END_TEST

START_TEST(partial_tiles_guard_no_term) {
  static const struct {
    const char *op, *json, *acc;
    int64_t dims[MFX_OP_MAX_DIMS];
    int guarded;
  } want[] = {
    {"shift_linear", "{}", "ACC.local", {130, 70, 64}, 0}, /* form 3: Y = ACC + CNT */
    {"shift_linear", "{\"form\":0}", "Y.local", {130, 70, 64}, 0},
    {"shift_linear", "{\"split_k\":2}", "ACCP.local", {130, 70, 64}, 0},
    {"shift_linear", "{\"split_k\":1}", "ACC.local", {130, 70, 40}, 0}, /* form 3: zeros add 0 */
    {"linear", "{\"split_k\":1}", "Y.local", {130, 70, 64}, 1}, /* not asked for (linear.c) */
    {"hamming", "{}", "S.local", {70, 33, 16}, 0},
    {"shift_linear", "{\"split_k\":1,\"form\":2}", "Y.local", {130, 70, 40}, 1}, /* K % 16 */
    {"shift_linear", "{\"shared\":0}", "ACC.local", {130, 70, 64}, 1},
    {"hamming", "{}", "S.local", {70, 33, 9}, 1},                      /* W % 8 != 0 */
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const mfx_op *op = find_op(want[i].op);
    char what[512];
    describe(op, want[i].dims, want[i].json, what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, want[i].dims, want[i].json);
    int guarded = 0, stores = 0; /* stores: every store of acc, as if guarded */
    for (int k = 0; k < p->n_kernels; k++) {
      guarded += stmt_guarded_stores(p->kernels[k].body, want[i].acc, 0);
      stores += stmt_guarded_stores(p->kernels[k].body, want[i].acc, 1);
    }
    ck_assert_msg(stores > 0, "%s: no store of %s at all", what, want[i].acc);
    ck_assert_msg((guarded > 0) == want[i].guarded, "%s: %d guarded updates of %s, expected %s",
                  what, guarded, want[i].acc, want[i].guarded ? "some" : "none");
    mfx_arena_destroy(a);
  }
  const mfx_op *op = find_op("shift_linear");
  const int64_t dims[3] = {784, 128, 1024};
  mfx_arena *a = mfx_arena_create();
  mfx_gpu_program *p = program(a, op, dims, "{}");
  char *ptx = NULL;
  size_t size = 0;
  ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s", mfx_last_error());
  int staged = 0;
  while (staged < p->n_kernels && p->kernels[staged].shared_bytes == 0) staged++;
  ck_assert_int_lt(staged, p->n_kernels);
  char *text = ptx_kernel_text(ptx, p->kernels[staged].name);
  ck_assert_msg(strstr(text, "selp.") == NULL && strstr(text, "neg.s32") == NULL,
                "shift_linear's default kernel selects or negates:\n%s", text);
  ck_assert_msg(strstr(text, "xor.b32") != NULL && strstr(text, "shr.s32") != NULL,
                "shift_linear's default kernel has no xor / shr.s32:\n%s", text);
  assemble(ptx, "sm_90", "shift_linear default");
  free(text);
  free(ptx);
  mfx_arena_destroy(a);
}
END_TEST

/* The GPU defaults at ShiftAddViT's shapes keep their register tiles in
 * registers: ptxas -v reports no spill stores or loads for any kernel (and
 * a stack frame of 0 bytes). */
START_TEST(gpu_defaults_do_not_spill) {
  for (int c = 0; c < N_SHIFTADDVIT; c++) {
    const mfx_op *op = find_op(shiftaddvit[c].op);
    char what[512];
    describe(op, shiftaddvit[c].dims, "{}", what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, shiftaddvit[c].dims, "{}");
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s: %s", what,
                  mfx_last_error());
    static char log[65536];
    if (ptxas_run(ptx, "sm_90", "-v", log, sizeof log, what)) {
      int entries = ptx_count(log, "Compiling entry");
      ck_assert_msg(entries == p->n_kernels, "%s: ptxas -v reported %d kernels of %d:\n%s", what,
                    entries, p->n_kernels, log);
      ptxas_check_no_spills(log, "sm_90", what);
    }
    free(ptx);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* Contiguous thread tiles: a thread's columns of the staged weight tile side
 * by side, read with one vector load per 4 columns (ld.shared.v4.f32 for
 * linear's W); strided tiles have none (their columns are block_n / thread_n
 * apart). shift_linear's contiguous tiles no longer load their i8 / u8
 * weights 4 at a time: with its update unguarded (partial_tiles_guard_no_term)
 * LLVM 14 hoists the column offsets (t*4 | r) out of the k-loop and its
 * load-store vectorizer no longer sees them as consecutive; the guarded form
 * had the vector loads but 11 SASS instructions per term (the loads and
 * their decode sunk into every row's guarded block) against 4.3. */
static void check_vector_shared_loads(const char *name, const char *vector_load) {
  const mfx_op *op = find_op(name);
  const int64_t dims[3] = {784, 128, 1024};
  static const char *json[2] = {"{\"contiguous\":0}", "{\"contiguous\":1}"};
  for (int c = 0; c < 2; c++) {
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, dims, json[c]);
    char *ptx = NULL;
    size_t size = 0;
    ck_assert_msg(mfx_codegen_ptx(p, "sm_80", &ptx, &size) == MFX_OK, "%s", mfx_last_error());
    int vector = strstr(ptx, vector_load) != NULL;
    ck_assert_msg(vector == c, "%s %s: %s %s in the PTX", name, json[c], vector_load,
                  vector ? "present" : "absent");
    assemble(ptx, "sm_90", json[c]);
    free(ptx);
    mfx_arena_destroy(a);
  }
}

START_TEST(contiguous_tiles_load_vectors_from_shared) {
  check_vector_shared_loads("linear", "ld.shared.v4.f32");
}
END_TEST

START_TEST(ptx_assembles) {
  const gpu_case *gc = &cases[_i];
  const mfx_op *op = find_op(gc->op);
  const int64_t *dims = gc->shapes[2];
  for (int k = 0; k < n_configs(gc); k++) {
    char what[512];
    describe(op, dims, gc->configs[k], what, sizeof what);
    mfx_arena *a = mfx_arena_create();
    mfx_gpu_program *p = program(a, op, dims, gc->configs[k]);
    mfx_config cfg;
    gpu_config(op, gc->configs[k], &cfg);
    int shared = mfx_config_get(&cfg, "shared") == 1; /* -1: no such knob, no staging */
    check_ptx(p, "sm_80", shared, what);
    check_ptx(p, "sm_90", shared, what);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* ---- configs -------------------------------------------------------------------------------- */


START_TEST(gpu_knobs_and_targets) {
  ck_assert(mfx_target_is_gpu("cuda:sm_80"));
  ck_assert(mfx_target_is_gpu("cuda"));
  ck_assert(!mfx_target_is_gpu("cpu"));
  ck_assert(!mfx_target_is_gpu(NULL));
  for (int i = 0; i < mfx_op_count(); i++) {
    const mfx_op *op = mfx_op_at(i);
    int n = 0, n_cpu = 0;
    const mfx_knob *knobs = mfx_op_knobs(op, "cuda:sm_90", &n);
    ck_assert_ptr_eq(mfx_op_knobs(op, "cpu", &n_cpu), op->knobs);
    ck_assert_int_eq(n_cpu, op->n_knobs);
    ck_assert_msg(op->build_gpu != NULL && n > 0, "%s has no GPU template", op->name);
    ck_assert_ptr_eq(knobs, op->gpu_knobs);
    mfx_config cfg;
    mfx_config_default_for(op, "cuda:sm_80", &cfg);
    ck_assert_int_eq(cfg.n, n);
    for (int k = 0; k < n; k++) { /* every default is one of its choices */
      ck_assert_int_eq(mfx_config_get(&cfg, knobs[k].name), knobs[k].def);
      ck_assert_msg(mfx_config_set_for(op, "cuda:sm_80", &cfg, knobs[k].name, knobs[k].def) ==
                        MFX_OK, "%s: %s", op->name, mfx_last_error());
    }
    /* GPU knobs are not CPU knobs and the other way round */
    assert_refused(mfx_config_set_for(op, "cpu", &cfg, knobs[0].name, knobs[0].def),
                   MFX_ERR_INVALID, "unknown knob", op->name);
    assert_refused(mfx_config_set_for(op, "cuda:sm_80", &cfg, op->knobs[0].name,
                                      op->knobs[0].def), MFX_ERR_INVALID, "GPU template",
                   op->name);
  }
  const mfx_op *lin = find_op("linear");
  mfx_config cfg;
  ck_assert_int_eq(mfx_config_parse_json_for(lin, "cuda:sm_80", "{\"block_m\":32}", &cfg),
                   MFX_OK);
  ck_assert_int_eq(mfx_config_get(&cfg, "block_m"), 32);
  ck_assert_int_eq(mfx_config_get(&cfg, "block_k"), 16); /* the rest: GPU defaults */
  ck_assert_int_eq(mfx_config_get(&cfg, "tile_m"), -1);
  assert_refused(mfx_config_parse_json_for(lin, "cuda:sm_80", "{\"block_m\":48}", &cfg),
                 MFX_ERR_INVALID, "not one of its choices (16, 32, 64, 128)", "block_m=48");
  assert_refused(mfx_config_parse_json_for(lin, "cuda:sm_80", "{\"tile_m\":4}", &cfg),
                 MFX_ERR_INVALID, "unknown knob \"tile_m\"", "a CPU knob on the GPU");
  /* a CPU config handed to the GPU build is refused, not misread */
  mfx_config cpu;
  mfx_config_default(lin, &cpu);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  assert_refused(mfx_op_build_for(lin, "cuda:sm_80", a, (int64_t[]){8, 8, 8}, &cpu, &s),
                 MFX_ERR_INVALID, "unknown knob", "CPU config, GPU build");
  mfx_arena_destroy(a);
}
END_TEST

/* Configs past the limits of a block are refused by the build, saying why. */
START_TEST(invalid_gpu_configs_are_refused) {
  static const struct {
    const char *op, *json, *needle;
  } bad[] = {
    {"linear", "{\"block_m\":128,\"block_n\":128,\"thread_m\":1,\"thread_n\":1}",
     "16384 threads per block (at most 1024)"},
    {"linear", "{\"block_m\":128,\"block_n\":128,\"thread_m\":8,\"thread_n\":8,\"block_k\":64}",
     "65536 bytes of shared memory (at most 49152"},
    {"shift_linear", "{\"block_m\":128,\"block_n\":64,\"thread_m\":1,\"thread_n\":4}",
     "2048 threads per block"},
    {"hamming", "{\"block_n\":64,\"block_m\":128,\"thread_n\":1,\"thread_m\":2}",
     "4096 threads per block"},
    {"matadd", "{\"block_c\":64,\"block_d\":128,\"thread_c\":1,\"thread_d\":1}",
     "8192 threads per block"},
    {"binary_attention", "{\"block_n\":128,\"block_d\":64,\"thread_r\":1,\"thread_d\":2}",
     "4096 threads per block"},
    {"shift_linear", "{\"block_m\":128,\"block_n\":128,\"thread_m\":8,\"thread_n\":8,"
     "\"block_k\":64,\"form\":1}", "57344 bytes of shared memory (at most 49152"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const mfx_op *op = find_op(bad[i].op);
    int64_t dims[MFX_OP_MAX_DIMS];
    for (int d = 0; d < op->n_dims; d++) dims[d] = 64;
    mfx_config cfg;
    gpu_config(op, bad[i].json, &cfg);
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s = NULL;
    char what[512];
    describe(op, dims, bad[i].json, what, sizeof what);
    assert_refused(mfx_op_build_for(op, "cuda:sm_80", a, dims, &cfg, &s), MFX_ERR_SCHEDULE,
                   bad[i].needle, what);
    ck_assert_msg(strstr(mfx_last_error(), op->name) != NULL, "%s: the message does not name "
                  "the op: %s", what, mfx_last_error());
    mfx_arena_destroy(a);
  }
  /* the same config with shared staging off fits */
  const mfx_op *lin = find_op("linear");
  mfx_config cfg;
  gpu_config(lin, "{\"block_m\":128,\"block_n\":128,\"thread_m\":8,\"thread_n\":8,"
                  "\"block_k\":64,\"shared\":0}", &cfg);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  ck_assert_msg(mfx_op_build_for(lin, "cuda:sm_80", a, (int64_t[]){64, 64, 64}, &cfg, &s) ==
                MFX_OK, "%s", mfx_last_error());
  mfx_arena_destroy(a);
}
END_TEST

/* The artifact of a cuda target holds PTX with one launch per kernel. */
START_TEST(cuda_artifact_uses_the_gpu_template) {
  for (int c = 0; c < N_CASES; c++) {
    const mfx_op *op = find_op(cases[c].op);
    const int64_t *dims = cases[c].shapes[2];
    mfx_arena *a = mfx_arena_create();
    mfx_schedule *s = NULL;
    ck_assert_msg(mfx_op_build_for(op, "cuda:sm_80", a, dims, NULL, &s) == MFX_OK, "%s: %s",
                  op->name, mfx_last_error());
    mfx_artifact_kernel *k = calloc(1, sizeof *k);
    ck_assert_ptr_nonnull(k);
    snprintf(k->name, sizeof k->name, "%s", op->name);
    snprintf(k->op, sizeof k->op, "%s", op->name);
    snprintf(k->target, sizeof k->target, "cuda:sm_80");
    ck_assert_msg(mfx_artifact_build(s, k) == MFX_OK, "%s: %s", op->name, mfx_last_error());
    ck_assert_int_eq(k->gpu_image_kind, MFX_GPU_IMAGE_PTX);
    mfx_gpu_program *p = program(a, op, dims, "{}");
    ck_assert_int_eq(k->n_launches, p->n_kernels);
    ck_assert_int_eq(k->n_args, op->n_inputs + op->n_outputs + p->n_workspace);
    mfx_artifact_kernel_release(k);
    free(k);
    mfx_arena_destroy(a);
  }
}
END_TEST

/* The tuner's space for a cuda target enumerates the GPU knobs, and the
 * template's verdict refuses the configs a block cannot hold. */
START_TEST(tuning_space_of_a_gpu_target) {
  const mfx_op *lin = find_op("linear");
  int64_t dims[3] = {256, 256, 256};
  mfx_space space;
  ck_assert_msg(mfx_space_init_for(&space, lin, dims, "cuda:sm_80") == MFX_OK, "%s",
                mfx_last_error());
  uint64_t size = 1;
  for (int k = 0; k < lin->n_gpu_knobs; k++) size *= (uint64_t)lin->gpu_knobs[k].n_choices;
  ck_assert_uint_eq(space.size, size);
  mfx_config cfg, def;
  mfx_config_default_for(lin, "cuda:sm_80", &def);
  uint64_t index = 0;
  ck_assert_int_eq(mfx_space_index(&space, &def, &index), MFX_OK);
  mfx_space_config(&space, index, &cfg);
  ck_assert_int_eq(cfg.n, lin->n_gpu_knobs);
  for (int k = 0; k < cfg.n; k++) {
    ck_assert_str_eq(cfg.names[k], def.names[k]);
    ck_assert_int_eq(cfg.values[k], def.values[k]);
  }
  ck_assert_msg(mfx_space_check(&space, &cfg) == MFX_OK, "%s", mfx_last_error());
  gpu_config(lin, "{\"block_m\":128,\"block_n\":128,\"thread_m\":1,\"thread_n\":1}", &cfg);
  assert_refused(mfx_space_check(&space, &cfg), MFX_ERR_SCHEDULE, "threads per block",
                 "space check");
  mfx_space cpu;
  ck_assert_int_eq(mfx_space_init(&cpu, lin, dims), MFX_OK);
  mfx_space_config(&cpu, 0, &cfg);
  ck_assert_int_eq(cfg.n, lin->n_knobs);
  ck_assert_str_eq(cfg.names[0], lin->knobs[0].name);
}
END_TEST

static Suite *ops_gpu_suite(void) {
  Suite *s = suite_create("ops_gpu");
  TCase *tc = tcase_create("ops_gpu");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, gpu_knobs_and_targets);
  tcase_add_test(tc, invalid_gpu_configs_are_refused);
  tcase_add_test(tc, gpu_kernel_counts);
  tcase_add_test(tc, gpu_programs_respect_limits);
  tcase_add_test(tc, gpu_defaults_fill_the_device);
  tcase_add_test(tc, gpu_knob_space_reaches_two_waves);
  tcase_add_test(tc, split_k_adds_a_sum_kernel);
  tcase_add_loop_test(tc, emulated_ops_match_reference, 0, N_CASES);
  tcase_add_test(tc, emulated_row_index_minus_one_is_never_read);
  tcase_add_loop_test(tc, ptx_assembles, 0, N_CASES);
  tcase_add_test(tc, one_barrier_pair_per_staging_step);
  tcase_add_test(tc, gpu_defaults_do_not_spill);
  tcase_add_test(tc, contiguous_tiles_load_vectors_from_shared);
  tcase_add_test(tc, partial_tiles_guard_no_term);
  tcase_add_test(tc, hamming16_stores_16_bits);
  tcase_add_test(tc, row_norms_a_warp_per_row);
  tcase_add_test(tc, cuda_artifact_uses_the_gpu_template);
  tcase_add_test(tc, tuning_space_of_a_gpu_target);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return check_run_suite(ops_gpu_suite());
}
