/* The passes lowering runs over the loop IR, as a table: mfx_lower builds
 * the loop nests and then runs these in order. A new pass is one entry. */
#include "mfx/compiler.h"

static const mfx_pass lower_passes[] = {
    {"simplify", mfx_simplify_stmt,
     "fold constants, drop guards and divisions the loop ranges decide, unwrap extent-1 loops"},
    {"flatten", mfx_flatten_stmt,
     "multi-dimensional buffer indices to one row-major element offset"},
    {"simplify", mfx_simplify_stmt, "fold the flattened index arithmetic"},
};

const mfx_pass *mfx_lower_passes(int *n) {
  *n = (int)(sizeof lower_passes / sizeof lower_passes[0]);
  return lower_passes;
}

mfx_status mfx_run_passes(mfx_arena *a, mfx_func *fn, mfx_pass_hook after, void *ctx) {
  int n;
  const mfx_pass *passes = mfx_lower_passes(&n);
  for (int i = 0; i < n; i++) {
    mfx_stmt *body = passes[i].run(a, fn->body);
    if (!body)
      return mfx_fail(MFX_ERR_NOMEM, "pass %d (%s) of %s: out of memory", i + 1, passes[i].name,
                      fn->name);
    fn->body = body;
    if (after) after(&passes[i], fn, ctx);
  }
  return MFX_OK;
}
