#!/usr/bin/env bash
# mfx lower and mfx run on kernels written as TE text: printed layers, LLVM
# IR, kernels compiled, run and checked against the IR interpreter (the
# examples under examples/kernels too), and clear errors (file:line:col,
# wrong input files, bad options) for bad input, never a crash.
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
expect 2 "--print-after needs a value (e.g. --print-after simplify" "$MFX" lower "$tmp/relu_mm.te" --print-after

# ---- mfx run FILE.te: compiled, run, checked against the IR interpreter ----
expect 0 "check    Y max_abs_err=" "$MFX" run "$tmp/relu_mm.te" --check
expect 0 "input    W f32 [3, 7] random (seed 4)" "$MFX" run "$tmp/relu_mm.te" --check --seed 4
for k in examples/kernels/*.te; do
  expect 0 " ok" "$MFX" run "$k" --check
done
expect 0 "check    S max_abs_err=0 max_rel_err=0 ok" "$MFX" run examples/kernels/hamming.te --check
expect 0 "check    Y max_abs_err=0 max_rel_err=0 ok" "$MFX" run examples/kernels/shift_linear.te --check
# --kernel: one compute (an intermediate one too) becomes the only output
expect 0 "check    R max_abs_err=0" "$MFX" run examples/kernels/relu_linear.te --kernel R --check
expect 1 "has no compute named Q (its outputs: Z)" "$MFX" run examples/kernels/relu_linear.te --kernel Q
# --out then --in: the saved output read back as an input of the right shape
expect 0 "-> $tmp/r.npy" "$MFX" run "$tmp/relu_mm.te" --kernel R --out R="$tmp/r.npy"
expect 0 "input    X f32 [5, 7] from $tmp/r.npy" "$MFX" run "$tmp/relu_mm.te" --in X="$tmp/r.npy" --check
expect 0 " ok" "$MFX" run examples/kernels/linear.te --check --repeat 3 --threads 1
# bad input: a file of the wrong shape, a missing file, unknown names, options for ops
expect 0 "-> $tmp/y.npy" "$MFX" run "$tmp/relu_mm.te" --out Y="$tmp/y.npy"
expect 1 "--in X=$tmp/y.npy: input X of $tmp/relu_mm.te must be f32 [5, 7]; the file holds f32 [5, 3]" \
  "$MFX" run "$tmp/relu_mm.te" --in X="$tmp/y.npy" --check
expect 1 "--in X=$tmp/none.npy" "$MFX" run "$tmp/relu_mm.te" --in X="$tmp/none.npy"
expect 1 "cannot read TE text from $tmp/missing.te" "$MFX" run "$tmp/missing.te" --check
expect 2 "the kernel has no input (placeholder) named Z" "$MFX" run "$tmp/relu_mm.te" --in Z="$tmp/y.npy"
expect 2 "the kernel has no output named R" "$MFX" run "$tmp/relu_mm.te" --out R="$tmp/o.npy"
expect 2 "fixes its own shapes" "$MFX" run "$tmp/relu_mm.te" --dims M=4
expect 2 "--kernel needs a value" "$MFX" run "$tmp/relu_mm.te" --kernel
expect 1 "bad.te:2:27: unknown name 'j'" "$MFX" run "$tmp/bad.te" --check
# a load that can leave its tensor, or a divisor that can be 0, is refused
# when the text is read (compiler/bounds.c), before anything runs
printf 'placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i + 1]\n' >"$tmp/oob.te"
expect 1 "outside dimension 0 of X" "$MFX" run "$tmp/oob.te" --check
printf 'placeholder A: i32[3]\nplaceholder B: i32[3]\ncompute Y: i32[3] (i) = A[i] / (B[i] & 0)\n' >"$tmp/div0.te"
expect 1 "a divisor must be provably nonzero" "$MFX" run "$tmp/div0.te" --check
expect 0 "usage: mfx run FILE.te" "$MFX" run "$tmp/relu_mm.te" --help

# ---- mfx compile FILE.te -o k.mfxa, run by mfx-runner ----
RUNNER=${MFX_BIN}/mfx-runner
E=examples/kernels
printf 'placeholder A: u32[33, 4]\nplaceholder B: u32[21, 4]\ncompute Q: u32[33, 4] (i, j) = A[i, j]\ncompute K: u32[21, 4] (i, j) = B[i, j]\n' >"$tmp/gen.te"
expect 0 "-> $tmp/k.npy" "$MFX" run "$tmp/gen.te" --seed 9 --out Q="$tmp/q.npy" --out K="$tmp/k.npy"
expect 0 "kernel 0 hamming: te" "$MFX" compile "$E/hamming.te" -o "$tmp/ham.mfxa"
expect 0 "kernel 1 mm: te" "$MFX" compile "$E/linear.te" --op "$tmp/relu_mm.te" --name mm -o "$tmp/two.mfxa"
expect 0 "output   S -> $tmp/s_runner.npy" "$RUNNER" "$tmp/ham.mfxa" --in Q="$tmp/q.npy" --in K="$tmp/k.npy" --out S="$tmp/s_runner.npy"
expect 0 "check    S max_abs_err=0 max_rel_err=0 ok" "$MFX" run "$E/hamming.te" --in Q="$tmp/q.npy" --in K="$tmp/k.npy" --out S="$tmp/s_jit.npy" --check
if ! cmp -s "$tmp/s_runner.npy" "$tmp/s_jit.npy"; then
  echo "FAIL: the artifact's hamming output differs from mfx run's (checked) output"; failures=$((failures + 1))
fi
expect 1 "no random inputs for op te; give every input with --in" "$RUNNER" "$tmp/ham.mfxa"
expect 0 "kernel 0 hamming: te  on cuda:sm_80" "$MFX" compile "$E/hamming.te" --target cuda:sm_80 -o "$tmp/g.mfxa"
expect 2 "fixes its own shapes" "$MFX" compile "$E/hamming.te" --dims N=3 -o "$tmp/g.mfxa"
expect 1 "cannot read TE text from $tmp/missing.te" "$MFX" compile "$tmp/missing.te" -o "$tmp/g.mfxa"
[ $failures = 0 ] && echo "test_te_cli: all checks passed"
exit $((failures > 0))
