#!/usr/bin/env bash
# mfx lower on kernels written as TE text: printed layers, LLVM IR, and
# clear errors (file:line:col) for malformed text, never a crash.
set -u
MFX=${MFX_BIN:?}/mfx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
expect() { # status substring command...
  local want=$1 needle=$2; shift 2
  local out status
  out=$("$@" 2>&1); status=$?
  if [ "$status" != "$want" ] || [[ "$out" != *"$needle"* ]] || [[ "$out" == *Sanitizer* ]]; then
    echo "FAIL: $* -> status $status (want $want), output lacks '$needle':"; echo "$out" | head -5
    failures=$((failures + 1))
  fi
}
cat >"$tmp/relu_mm.te" <<'TE'
# relu(X) . W^T
placeholder X: f32[5, 7]
placeholder W: f32[3, 7]
compute R: f32[5, 7] (a, b) = max(X[a, b], 0)
compute Y: f32[5, 3] (i, j) = sum(k < 7: R[i, k] * W[j, k])
TE
expect 0 "compute Y: f32[5, 3] (i, j) = sum(k < 7: (R[i, k] * W[j, k]))" "$MFX" lower "$tmp/relu_mm.te"
expect 0 "allocate R: f32[5, 7] global" "$MFX" lower "$tmp/relu_mm.te"
expect 0 "define" "$MFX" lower "$tmp/relu_mm.te" --emit ll
printf 'placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[j]\n' >"$tmp/bad.te"
expect 1 "bad.te:2:27: unknown name 'j'" "$MFX" lower "$tmp/bad.te"
expect 1 "cannot read TE text" "$MFX" lower "$tmp/missing.te"
printf 'placeholder X: f32[4]\n\0garbage' >"$tmp/binary.te"
expect 1 "cannot read TE text" "$MFX" lower "$tmp/binary.te"
expect 2 "fixes its own shapes" "$MFX" lower "$tmp/relu_mm.te" --dims M=4
# The pass table: listed in order, and the IR printed after one of them.
expect 0 " 1 simplify " "$MFX" lower --passes
expect 0 " 2 flatten " "$MFX" lower --passes
expect 0 " 3 simplify " "$MFX" lower --passes
expect 0 "loop IR after flatten (run 1)" "$MFX" lower "$tmp/relu_mm.te" --print-after flatten
expect 0 "loop IR after simplify (run 2)" "$MFX" lower "$tmp/relu_mm.te" --print-after simplify
expect 2 "no such pass" "$MFX" lower "$tmp/relu_mm.te" --print-after fold
expect 2 "needs a pass name" "$MFX" lower "$tmp/relu_mm.te" --print-after
[ $failures = 0 ] && echo "test_te_cli: all checks passed"
exit $((failures > 0))
