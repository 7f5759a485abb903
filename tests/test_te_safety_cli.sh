#!/usr/bin/env bash
# mfx lower FILE.te on kernels that used to crash it (stack overflow on deep
# text) or compile into code that reads out of bounds or divides by zero:
# each is an error naming file:line:col and the limit, status 1.
set -u
source "$(dirname "$0")/lib.sh"
test_setup te_safety_cli
head='placeholder X: f32[16]
compute Y: f32[16] (i) = '
# times N TEXT: TEXT repeated N times
times() { local out="" i; for ((i = 0; i < $1; i++)); do out+=$2; done; printf '%s' "$out"; }
printf '%s%sX[i]%s\n' "$head" "$(times 8000 '(')" "$(times 8000 ')')" >"$TMP/parens.te"
expect 1 "parens.te:2:282: expression nested more than 256 levels deep (the limit)" "$MFX" lower "$TMP/parens.te"
printf '%s%sX[i]\n' "$head" "$(times 20000 -)" >"$TMP/minus.te"
expect 1 "minus.te:2:281: expression nested more than 256 levels deep" "$MFX" lower "$TMP/minus.te"
printf '%sX[i]%s\n' "$head" "$(times 100000 ' + X[i]')" >"$TMP/chain.te"
expect 1 "chain.te:2:1809: expression more than 256 levels deep (the limit" "$MFX" lower "$TMP/chain.te"
printf '%sX[i + 100]\n' "$head" >"$TMP/oob.te"
expect 1 "oob.te:2:26: load X: index 0, (i + 100), ranges over [100, 115]" "$MFX" lower "$TMP/oob.te"
printf 'placeholder X: f32[4, 6]\ncompute Y: f32[4] (i) = sum(k < 7: X[i, k])\n' >"$TMP/red.te"
expect 1 "red.te:2:36: load X: index 1, k, ranges over [0, 6] for k < 7" "$MFX" lower "$TMP/red.te"
printf '%sX[i %% 0]\n' "$head" >"$TMP/mod.te"
expect 1 "mod.te:2:30: integer modulo by the constant 0" "$MFX" lower "$TMP/mod.te"
printf '%sX[i] * 1e999\n' "$head" >"$TMP/inf.te"
expect 1 "inf.te:2:33: float literal 1e999 is out of range" "$MFX" lower "$TMP/inf.te"
printf 'placeholder X: f32[3037000500, 3037000500]\n' >"$TMP/huge.te"
expect 1 "tensor X: too many elements" "$MFX" lower "$TMP/huge.te"
printf '%sX[15 - i] + X[(i + 3) %% 16]\n' "$head" >"$TMP/ok.te"
expect 0 "compute Y: f32[16] (i) = (X[(15 - i)] + X[((i + 3) % 16)])" "$MFX" lower "$TMP/ok.te"
test_summary test_te_safety_cli
