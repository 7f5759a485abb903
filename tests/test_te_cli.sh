#!/usr/bin/env bash
# mfx lower and mfx run on kernels written as TE text: printed layers, LLVM
# IR, kernels compiled, run and checked against the IR interpreter (the
# examples under examples/kernels too), and clear errors (file:line:col,
# wrong input files, bad options) for bad input, never a crash.
set -u
source "$(dirname "$0")/lib.sh"
test_setup te_cli
cat >"$TMP/relu_mm.te" <<'TE'
# relu(X) . W^T
placeholder X: f32[5, 7]
placeholder W: f32[3, 7]
compute R: f32[5, 7] (a, b) = max(X[a, b], 0)
compute Y: f32[5, 3] (i, j) = sum(k < 7: R[i, k] * W[j, k])
TE
expect 0 "compute Y: f32[5, 3] (i, j) = sum(k < 7: (R[i, k] * W[j, k]))" "$MFX" lower "$TMP/relu_mm.te"
expect 0 "allocate R: f32[5, 7] global" "$MFX" lower "$TMP/relu_mm.te"
expect 0 "define" "$MFX" lower "$TMP/relu_mm.te" --emit ll
printf 'placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[j]\n' >"$TMP/bad.te"
expect 1 "bad.te:2:27: unknown name 'j'" "$MFX" lower "$TMP/bad.te"
expect 1 "cannot read TE text" "$MFX" lower "$TMP/missing.te"
printf 'placeholder X: f32[4]\n\0garbage' >"$TMP/binary.te"
expect 1 "cannot read TE text" "$MFX" lower "$TMP/binary.te"
expect 2 "fixes its own shapes" "$MFX" lower "$TMP/relu_mm.te" --dims M=4
# The pass table: listed in order, and the IR printed after one of them.
expect 0 " 1 simplify " "$MFX" lower --passes
expect 0 " 2 flatten " "$MFX" lower --passes
expect 0 " 3 simplify " "$MFX" lower --passes
expect 0 "loop IR after flatten (run 1)" "$MFX" lower "$TMP/relu_mm.te" --print-after flatten
expect 0 "loop IR after simplify (run 2)" "$MFX" lower "$TMP/relu_mm.te" --print-after simplify
expect 2 "no such pass" "$MFX" lower "$TMP/relu_mm.te" --print-after fold
expect 2 "--print-after needs a value (e.g. --print-after simplify" "$MFX" lower "$TMP/relu_mm.te" --print-after

# ---- mfx run FILE.te: compiled, run, checked against the IR interpreter ----
expect 0 "check    Y max_abs_err=" "$MFX" run "$TMP/relu_mm.te" --check
expect 0 "input    W f32 [3, 7] random (seed 4)" "$MFX" run "$TMP/relu_mm.te" --check --seed 4
for k in examples/kernels/*.te; do
  expect 0 " ok" "$MFX" run "$k" --check
done
expect 0 "check    S max_abs_err=0 max_rel_err=0 ok" "$MFX" run examples/kernels/hamming.te --check
expect 0 "check    Y max_abs_err=0 max_rel_err=0 ok" "$MFX" run examples/kernels/shift_linear.te --check
# --kernel: one compute (an intermediate one too) becomes the only output
expect 0 "check    R max_abs_err=0" "$MFX" run examples/kernels/relu_linear.te --kernel R --check
expect 1 "has no compute named Q (its outputs: Z)" "$MFX" run examples/kernels/relu_linear.te --kernel Q
# --out then --in: the saved output read back as an input of the right shape
expect 0 "-> $TMP/r.npy" "$MFX" run "$TMP/relu_mm.te" --kernel R --out R="$TMP/r.npy"
expect 0 "input    X f32 [5, 7] from $TMP/r.npy" "$MFX" run "$TMP/relu_mm.te" --in X="$TMP/r.npy" --check
expect 0 " ok" "$MFX" run examples/kernels/linear.te --check --repeat 3 --threads 1
# bad input: a file of the wrong shape, a missing file, unknown names, options for ops
expect 0 "-> $TMP/y.npy" "$MFX" run "$TMP/relu_mm.te" --out Y="$TMP/y.npy"
expect 1 "--in X=$TMP/y.npy: input X of $TMP/relu_mm.te must be f32 [5, 7]; the file holds f32 [5, 3]" \
  "$MFX" run "$TMP/relu_mm.te" --in X="$TMP/y.npy" --check
expect 1 "--in X=$TMP/none.npy" "$MFX" run "$TMP/relu_mm.te" --in X="$TMP/none.npy"
expect 1 "cannot read TE text from $TMP/missing.te" "$MFX" run "$TMP/missing.te" --check
expect 2 "the kernel has no input (placeholder) named Z" "$MFX" run "$TMP/relu_mm.te" --in Z="$TMP/y.npy"
expect 2 "the kernel has no output named R" "$MFX" run "$TMP/relu_mm.te" --out R="$TMP/o.npy"
expect 2 "fixes its own shapes" "$MFX" run "$TMP/relu_mm.te" --dims M=4
expect 2 "--kernel needs a value" "$MFX" run "$TMP/relu_mm.te" --kernel
expect 1 "bad.te:2:27: unknown name 'j'" "$MFX" run "$TMP/bad.te" --check
# a load that can leave its tensor, or a divisor that can be 0, is refused
# when the text is read (compiler/bounds.c), before anything runs
printf 'placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[i + 1]\n' >"$TMP/oob.te"
expect 1 "outside dimension 0 of X" "$MFX" run "$TMP/oob.te" --check
printf 'placeholder A: i32[3]\nplaceholder B: i32[3]\ncompute Y: i32[3] (i) = A[i] / (B[i] & 0)\n' >"$TMP/div0.te"
expect 1 "a divisor must be provably nonzero" "$MFX" run "$TMP/div0.te" --check
expect 0 "usage: mfx run FILE.te" "$MFX" run "$TMP/relu_mm.te" --help

# ---- mfx compile FILE.te -o k.mfxa, run by mfx-runner ----
RUNNER=${MFX_BIN}/mfx-runner
E=examples/kernels
printf 'placeholder A: u32[33, 4]\nplaceholder B: u32[21, 4]\ncompute Q: u32[33, 4] (i, j) = A[i, j]\ncompute K: u32[21, 4] (i, j) = B[i, j]\n' >"$TMP/gen.te"
expect 0 "-> $TMP/k.npy" "$MFX" run "$TMP/gen.te" --seed 9 --out Q="$TMP/q.npy" --out K="$TMP/k.npy"
expect 0 "kernel 0 hamming: te" "$MFX" compile "$E/hamming.te" -o "$TMP/ham.mfxa"
expect 0 "kernel 1 mm: te" "$MFX" compile "$E/linear.te" --op "$TMP/relu_mm.te" --name mm -o "$TMP/two.mfxa"
expect 0 "output   S -> $TMP/s_runner.npy" "$RUNNER" "$TMP/ham.mfxa" --in Q="$TMP/q.npy" --in K="$TMP/k.npy" --out S="$TMP/s_runner.npy"
expect 0 "check    S max_abs_err=0 max_rel_err=0 ok" "$MFX" run "$E/hamming.te" --in Q="$TMP/q.npy" --in K="$TMP/k.npy" --out S="$TMP/s_jit.npy" --check
if ! cmp -s "$TMP/s_runner.npy" "$TMP/s_jit.npy"; then
  echo "FAIL: the artifact's hamming output differs from mfx run's (checked) output"; failed=$((failed + 1))
fi
expect 1 "no random inputs for op te; give every input with --in" "$RUNNER" "$TMP/ham.mfxa"
expect 0 "kernel 0 hamming: te  on cuda:sm_80" "$MFX" compile "$E/hamming.te" --target cuda:sm_80 -o "$TMP/g.mfxa"
expect 2 "fixes its own shapes" "$MFX" compile "$E/hamming.te" --dims N=3 -o "$TMP/g.mfxa"
expect 1 "cannot read TE text from $TMP/missing.te" "$MFX" compile "$TMP/missing.te" -o "$TMP/g.mfxa"
test_summary test_te_cli
