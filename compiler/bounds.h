/* Checks on a tensor expression before it is scheduled: how deep it is (the
 * compiler's walkers recurse), and whether it is safe to run: every load
 * stays inside its tensor and no integer division or modulo can divide by
 * zero. Shared by the TE builder (te.c), the text parser (parse.c, which
 * adds file:line:col) and the lowering entry (lower.c, after inlining). */
#ifndef MFX_BOUNDS_H
#define MFX_BOUNDS_H

#include "mfx/compiler.h"

/* The deepest expression tree (and parser nesting) the compiler accepts. */
#define MFX_MAX_EXPR_DEPTH 256

/* 1 if e is more than `limit` levels deep; looks at most limit + 1 deep. */
int mfx_expr_deeper_than(const mfx_expr *e, int limit);

/* The load reads inside its buffer for all values of the axes (each in
 * [0, extent)); an index that reads data (idx[m] in X[idx[m], d]) cannot be
 * bounded here and is skipped (the runtime checks those), its other indices
 * are checked. Else sets the message (no location, no compute name) and
 * returns MFX_ERR_INVALID. Does not look at loads inside the indices. */
mfx_status mfx_check_load(const mfx_expr *load);
/* An integer DIV or MOD node: its divisor is provably nonzero and it cannot
 * overflow (MIN / -1). Any other node: MFX_OK. */
mfx_status mfx_check_division(const mfx_expr *e);
/* Both checks on every node of e (e no deeper than MFX_MAX_EXPR_DEPTH). */
mfx_status mfx_check_expr_safe(const mfx_expr *e);

#endif
