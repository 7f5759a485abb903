/* The setup both op tests share for "no index reads outside the rows"
 * (gather_rows, combine_rows): the op's inputs with indices (input 1) that
 * cycle through valid rows (0, rows - 1), -1, and hostile ones (rows, -7,
 * 100000000, INT32_MAX, INT32_MIN), the reference's result, and input 0's
 * rows placed between two pages that fault when touched: right after the
 * first (at_end 0: a load of row -1 crashes the test) or right before the
 * second (at_end 1: a load of row `rows` crashes it). Included by test
 * programs only. */
#ifndef MFX_TESTS_GUARDED_ROWS_H
#define MFX_TESTS_GUARDED_ROWS_H

#include <check.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mfx/ops.h"

typedef struct {
  mfx_array in[MFX_OP_MAX_TENSORS], got[MFX_OP_MAX_TENSORS], want[MFX_OP_MAX_TENSORS];
  unsigned char *map; /* the guard page, then the rows */
  size_t span;
} guarded_rows;

static void guarded_rows_setup(const mfx_op *op, const int64_t *dims, int at_end,
                               guarded_rows *g) {
  ck_assert_int_eq(mfx_op_alloc_inputs(op, dims, g->in), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, g->got), MFX_OK);
  ck_assert_int_eq(mfx_op_alloc_outputs(op, dims, g->want), MFX_OK);
  mfx_op_random_inputs(op, dims, 11, g->in);
  int32_t *index = g->in[1].data;
  int32_t rows = (int32_t)g->in[0].shape[0];
  const int32_t cycle[] = {0, -1, rows, rows - 1, -7, 100000000, INT32_MAX, INT32_MIN, -1};
  int n_cycle = (int)(sizeof cycle / sizeof cycle[0]);
  for (int64_t i = 0; i < mfx_array_numel(&g->in[1]); i++) index[i] = cycle[i % n_cycle];
  op->reference(dims, g->in, g->want);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t bytes = (size_t)mfx_array_numel(&g->in[0]) * sizeof(float);
  size_t area = (bytes + page - 1) / page * page;
  g->span = page + area + page;
  g->map = mmap(NULL, g->span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert(g->map != MAP_FAILED);
  ck_assert_int_eq(mprotect(g->map, page, PROT_NONE), 0);
  ck_assert_int_eq(mprotect(g->map + page + area, page, PROT_NONE), 0);
  unsigned char *rows_at = g->map + page + (at_end ? area - bytes : 0);
  memcpy(rows_at, g->in[0].data, bytes);
  mfx_array_free(&g->in[0]);
  g->in[0].data = rows_at; /* shape and dtype as allocated */
}

static void guarded_rows_free(const mfx_op *op, guarded_rows *g) {
  munmap(g->map, g->span);
  for (int i = 1; i < op->n_inputs; i++) mfx_array_free(&g->in[i]);
  mfx_array_free(&g->got[0]);
  mfx_array_free(&g->want[0]);
}

#endif
