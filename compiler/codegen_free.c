/* Free variables of a loop body: the variables and buffers in scope that
 * the body uses, which an outlined function (a parallel loop's body) must
 * receive (cg_free_bindings). */
#include "codegen_internal.h"

#include <stdlib.h>

typedef struct {
  const void **keys;
  int n, cap;
  mfx_status st;
} cg_keys;

static void cg_keys_add(cg_keys *k, const void *key) {
  if (key == NULL || k->st != MFX_OK) return;
  for (int i = 0; i < k->n; i++)
    if (k->keys[i] == key) return;
  void *items = (void *)k->keys;
  k->st = cg_grow(&items, &k->cap, k->n, sizeof *k->keys);
  k->keys = items;
  if (k->st == MFX_OK) k->keys[k->n++] = key;
}

static void cg_keys_expr(cg_keys *k, const mfx_expr *e) {
  if (e == NULL) return;
  switch (e->kind) {
  case MFX_EXPR_INT:
  case MFX_EXPR_FLOAT: return;
  case MFX_EXPR_VAR: cg_keys_add(k, e->u.var); return;
  case MFX_EXPR_LOAD:
    cg_keys_add(k, e->u.load.buf);
    for (int i = 0; i < e->u.load.n && e->u.load.idx != NULL; i++)
      cg_keys_expr(k, e->u.load.idx[i]);
    return;
  case MFX_EXPR_BINARY:
    cg_keys_expr(k, e->u.bin.a);
    cg_keys_expr(k, e->u.bin.b);
    return;
  case MFX_EXPR_UNARY: cg_keys_expr(k, e->u.un.a); return;
  case MFX_EXPR_SELECT:
    cg_keys_expr(k, e->u.sel.cond);
    cg_keys_expr(k, e->u.sel.a);
    cg_keys_expr(k, e->u.sel.b);
    return;
  case MFX_EXPR_CAST: cg_keys_expr(k, e->u.cast.a); return;
  case MFX_EXPR_REDUCE: cg_keys_expr(k, e->u.red.src); return;
  }
}

static void cg_keys_stmt(cg_keys *k, const mfx_stmt *s) {
  if (s == NULL) return;
  switch (s->kind) {
  case MFX_STMT_FOR: cg_keys_stmt(k, s->u.loop.body); return;
  case MFX_STMT_STORE:
    cg_keys_add(k, s->u.store.buf);
    for (int i = 0; i < s->u.store.n && s->u.store.idx != NULL; i++)
      cg_keys_expr(k, s->u.store.idx[i]);
    cg_keys_expr(k, s->u.store.value);
    return;
  case MFX_STMT_LET:
    cg_keys_expr(k, s->u.let.value);
    cg_keys_stmt(k, s->u.let.body);
    return;
  case MFX_STMT_IF:
    cg_keys_expr(k, s->u.if_.cond);
    cg_keys_stmt(k, s->u.if_.then_s);
    cg_keys_stmt(k, s->u.if_.else_s);
    return;
  case MFX_STMT_ALLOCATE: cg_keys_stmt(k, s->u.alloc.body); return;
  case MFX_STMT_SEQ:
    for (int i = 0; i < s->u.seq.n && s->u.seq.items != NULL; i++)
      cg_keys_stmt(k, s->u.seq.items[i]);
    return;
  case MFX_STMT_BARRIER: return;
  case MFX_STMT_MMA:
    for (int i = 0; i < MFX_MMA_OPERANDS; i++) {
      cg_keys_add(k, s->u.mma.buf[i]);
      cg_keys_expr(k, s->u.mma.off[i]);
    }
    cg_keys_expr(k, s->u.mma.lane);
    return;
  }
}

mfx_status cg_free_bindings(mfx_cg *cg, const mfx_stmt *body, mfx_cg_binding **out, int *n) {
  *out = NULL;
  *n = 0;
  cg_keys keys = {NULL, 0, 0, MFX_OK};
  cg_keys_stmt(&keys, body);
  if (keys.st != MFX_OK || keys.n == 0) {
    free((void *)keys.keys);
    return keys.st;
  }
  mfx_cg_binding *found = malloc((size_t)keys.n * sizeof *found);
  if (found == NULL) {
    free((void *)keys.keys);
    return mfx_fail(MFX_ERR_NOMEM, "codegen %s: %d captured names", cg->kernel, keys.n);
  }
  for (int i = 0; i < keys.n; i++) {
    const mfx_cg_binding *b = cg_lookup(cg, keys.keys[i]);
    if (b != NULL && b->value != NULL) found[(*n)++] = *b;
  }
  free((void *)keys.keys);
  *out = found;
  return MFX_OK;
}
