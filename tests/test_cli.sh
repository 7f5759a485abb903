#!/usr/bin/env bash
# The mfx command line end to end: ops, lower, run --check on random shapes,
# .npy round trips checked with numpy, and every class of bad input (clear
# message, exit status 2 for usage errors and 1 for failures, never a crash).
#
# Environment: MFX_BIN (the directory holding mfx); MFX_TEST_SEED to replay the
# random shapes of an earlier run (the seed is printed).
set -u

source "$(dirname "$0")/lib.sh"
test_setup cli "$MFX"

SEED=${MFX_TEST_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
echo "random shapes from MFX_TEST_SEED=$SEED"

rand() { echo $(( RANDOM % $1 + 1 )); }

# ---- help, version, ops ---------------------------------------------------------

expect 0 "usage: mfx" "$MFX" help
expect 0 "usage: mfx" "$MFX" --help
expect 0 "usage: mfx run" "$MFX" help run
expect 0 "--repeat" "$MFX" run --help
expect 0 "mfx 0." "$MFX" version
expect 0 "" "$MFX" ops
ALL_OPS="linear shift_linear matadd hamming hamming16 binary_attention gelu q16_quantize q16_dequantize q16_gelu
  gather_rows combine_rows linear_gelu shift_linear_q16_gelu shift_linear_dequantize shift_linear16
  shift_linear16_gelu shift_linear16_dequantize"
for op in $ALL_OPS; do
  if [[ "$OUT" != *"$op"* ]]; then
    failed=$((failed + 1))
    echo "FAIL: mfx ops does not list $op"
  fi
done
expect 0 "knob" "$MFX" ops linear

# ---- lower ---------------------------------------------------------------------------

expect 0 "tensor expression" "$MFX" lower linear --dims M=8,N=8,K=8
for text in "==== schedule" "==== loop IR" "for "; do
  if [[ "$OUT" != *"$text"* ]]; then
    failed=$((failed + 1))
    echo "FAIL: mfx lower linear lacks '$text'"
  fi
done
expect 0 "define" "$MFX" lower linear --dims M=8,N=8,K=8 --emit ll
expect 0 "" "$MFX" lower hamming --dims=N=5,M=7,W=3 --emit asm

# ---- run --check on random shapes -------------------------------------------------------

random_dims() {
  case $1 in
    linear|shift_linear|linear_gelu|shift_linear_*|shift_linear16|shift_linear16_*) echo "M=$(rand 40),N=$(rand 40),K=$(rand 40)" ;;
    hamming|hamming16) echo "N=$(rand 40),M=$(rand 40),W=$(rand 8)" ;;
    matadd|binary_attention)
      echo "B=$(rand 2),H=$(rand 3),N=$(rand 40),D=$(rand 40),C=$(rand 40)" ;;
    gelu|q16_*) echo "M=$(rand 70),N=$(rand 70)" ;;
    gather_rows) echo "T=$(rand 40),M=$(rand 70),D=$(rand 70)" ;;
    combine_rows) echo "R=$(rand 40),T=$(rand 40),K=$(rand 4),D=$(rand 70)" ;;
  esac
}

for op in $ALL_OPS; do
  for threads in 1 2; do
    dims=$(random_dims $op)
    echo "run $op --dims $dims --threads $threads"
    expect 0 "max_rel_err=" "$MFX" run $op --dims "$dims" --threads $threads --check \
      --seed $RANDOM
  done
done
expect 0 "median" "$MFX" run linear --dims M=16,N=16,K=16 --repeat 3
expect 0 "max_abs_err=" "$MFX" run linear --dims M=1,N=1,K=1 --check
# A zero tolerance on a long f32 sum: the kernel (f32 accumulation) and the
# reference (double) differ in the last bits, and --check must say so.
expect_error 1 "differs from the reference" "$MFX" run linear --dims M=16,N=16,K=300 \
  --check --tol 0

# ---- .npy round trips checked with numpy --------------------------------------------------

numpy_check() { # numpy_check SCRIPT: run SCRIPT with TMP as its directory
  expect 0 "numpy-ok" "$PY" -c "import sys, numpy as np; d = sys.argv[1]
$1
print('numpy-ok')" "$TMP"
}

if [[ -x "$PY" ]] && "$PY" -c "import numpy" 2>/dev/null; then
  M=$(rand 40) N=$(rand 40) K=$(rand 40)
  echo "numpy round trip: linear M=$M,N=$N,K=$K"
  numpy_check "rng = np.random.default_rng($SEED)
np.save(d + '/x.npy', rng.standard_normal(($M, $K)).astype(np.float32))
np.save(d + '/w.npy', rng.standard_normal(($N, $K)).astype(np.float32))"
  expect 0 "" "$MFX" run linear --dims "M=$M,N=$N,K=$K" --in "X=$TMP/x.npy" \
    --in "W=$TMP/w.npy" --out "Y=$TMP/y.npy"
  numpy_check "x = np.load(d + '/x.npy'); w = np.load(d + '/w.npy'); y = np.load(d + '/y.npy')
assert y.dtype == np.float32 and y.shape == ($M, $N), (y.dtype, y.shape)
want = x.astype(np.float64) @ w.astype(np.float64).T
err = np.abs(y - want).max() / max(np.abs(want).max(), 1e-30)
assert err < 1e-4, err"

  N=$(rand 40) M=$(rand 40) W=$(rand 8)
  echo "numpy round trip: hamming N=$N,M=$M,W=$W"
  numpy_check "rng = np.random.default_rng($SEED)
np.save(d + '/q.npy', rng.integers(0, 2**32, ($N, $W), dtype=np.uint32))
np.save(d + '/k.npy', rng.integers(0, 2**32, ($M, $W), dtype=np.uint32))"
  expect 0 "" "$MFX" run hamming --dims "N=$N,M=$M,W=$W" --in "Q=$TMP/q.npy" \
    --in "K=$TMP/k.npy" --out "S=$TMP/s.npy"
  numpy_check "q = np.load(d + '/q.npy'); k = np.load(d + '/k.npy'); s = np.load(d + '/s.npy')
x = q[:, None, :] ^ k[None, :, :]
bits = np.unpackbits(x.view(np.uint8), axis=-1).reshape($N, $M, -1).sum(axis=-1)
want = 32 * $W - 2 * bits.astype(np.int64)
assert s.shape == ($N, $M), s.shape
assert (s.astype(np.int64) == want).all(), (s, want)"

  M=$(rand 40) N=$(rand 40) K=$(rand 40)
  echo "numpy round trip: shift_linear M=$M,N=$N,K=$K"
  numpy_check "rng = np.random.default_rng($SEED)
np.save(d + '/sx.npy', rng.integers(-2**31, 2**31, ($M, $K), dtype=np.int32))
np.save(d + '/ss.npy', rng.integers(0, 16, ($N, $K), dtype=np.int8))
np.save(d + '/sg.npy', rng.integers(-1, 2, ($N, $K), dtype=np.int8))"
  expect 0 "" "$MFX" run shift_linear --dims "M=$M,N=$N,K=$K" --in "X=$TMP/sx.npy" \
    --in "S=$TMP/ss.npy" --in "G=$TMP/sg.npy" --out "Y=$TMP/sy.npy"
  numpy_check "x = np.load(d + '/sx.npy'); s = np.load(d + '/ss.npy')
g = np.load(d + '/sg.npy'); y = np.load(d + '/sy.npy')
assert y.dtype == np.int32 and y.shape == ($M, $N), (y.dtype, y.shape)
terms = (x[:, None, :] >> s[None, :, :]).astype(np.int64) * g[None, :, :]
want = (terms.sum(axis=-1) + 2**31) % 2**32 - 2**31
assert (y.astype(np.int64) == want).all(), (y, want)"

  B=$(rand 2) H=$(rand 3) N=$(rand 40) D=$(rand 40) C=$(rand 40)
  echo "numpy round trip: matadd B=$B,H=$H,N=$N,D=$D,C=$C"
  numpy_check "rng = np.random.default_rng($SEED)
np.save(d + '/hc.npy', rng.integers(0, 2, ($B, $H, $N, $C), dtype=np.int8))
np.save(d + '/v.npy', rng.standard_normal(($B, $H, $N, $D)).astype(np.float32))"
  expect 0 "" "$MFX" run matadd --dims "B=$B,H=$H,N=$N,D=$D,C=$C" --in "Hc=$TMP/hc.npy" \
    --in "V=$TMP/v.npy" --out "O=$TMP/o.npy"
  numpy_check "hc = np.load(d + '/hc.npy'); v = np.load(d + '/v.npy'); o = np.load(d + '/o.npy')
assert o.dtype == np.float32 and o.shape == ($B, $H, $C, $D), (o.dtype, o.shape)
want = np.einsum('bhnc,bhnd->bhcd', hc.astype(np.float64), v.astype(np.float64))
err = np.abs(o - want).max() / max(np.abs(want).max(), 1e-30)
assert err < 1e-4, err"
else
  echo "SKIP: numpy round trips ($PY has no numpy)"
fi

# ---- bad input: usage errors (2) --------------------------------------------------------------

LIN=(run linear --dims M=8,N=8,K=8)
expect_error 2 "missing command" "$MFX"
expect_error 2 "unknown command 'frobnicate'" "$MFX" frobnicate
expect_error 2 "known ops: linear" "$MFX" run nope --dims M=1
expect_error 2 "unknown op 'nope'" "$MFX" lower nope --dims M=1
expect_error 2 "missing OP" "$MFX" run
expect_error 2 "missing --dims" "$MFX" run linear
expect_error 2 "unknown dim" "$MFX" run linear --dims M=8,N=8,Q=8
expect_error 2 "K is missing" "$MFX" run linear --dims M=8,N=8
expect_error 2 "given twice" "$MFX" run linear --dims M=8,M=8,N=8,K=8
expect_error 2 "positive" "$MFX" run linear --dims M=0,N=8,K=8
expect_error 2 "integer" "$MFX" run linear --dims M=x,N=8,K=8
expect_error 2 "--dims given twice" "$MFX" "${LIN[@]}" --dims M=1,N=1,K=1
expect_error 2 "--dims needs a value" "$MFX" run linear --dims
expect_error 2 "--in needs a value" "$MFX" "${LIN[@]}" --in
expect_error 2 "not NAME=FILE.npy" "$MFX" "${LIN[@]}" --in x.npy
expect_error 2 "has no input named 'Z'" "$MFX" "${LIN[@]}" --in Z=x.npy
expect_error 2 "has no output named 'X'" "$MFX" "${LIN[@]}" --out X=x.npy
expect_error 2 "input X given twice" "$MFX" "${LIN[@]}" --in X=a.npy --in X=b.npy
expect_error 2 "--config" "$MFX" "${LIN[@]}" --config '{"tile":'
expect_error 2 "--config" "$MFX" "${LIN[@]}" --config '[1, 2]'
expect_error 2 "no_such_knob" "$MFX" "${LIN[@]}" --config '{"no_such_knob": 4}'
knob=$("$MFX" ops linear | awk '$1 == "knob" { print $2; exit }')
if [[ -n "$knob" ]]; then
  expect_error 2 "$knob" "$MFX" "${LIN[@]}" --config "{\"$knob\": 12345}"
  expect_error 2 "$knob" "$MFX" "${LIN[@]}" --config "{\"$knob\": \"big\"}"
else
  failed=$((failed + 1))
  echo "FAIL: mfx ops linear shows no knob"
fi
expect_error 2 "--threads" "$MFX" "${LIN[@]}" --threads 0
expect_error 2 "--threads" "$MFX" "${LIN[@]}" --threads two
expect_error 2 "--repeat" "$MFX" "${LIN[@]}" --repeat -3
expect_error 2 "--repeat" "$MFX" "${LIN[@]}" --repeat 5x
expect_error 2 "--seed" "$MFX" "${LIN[@]}" --seed -1
expect_error 2 "--tol" "$MFX" "${LIN[@]}" --tol abc
expect_error 2 "unknown option '--frob'" "$MFX" "${LIN[@]}" --frob
expect_error 2 "unknown option '--emit'" "$MFX" "${LIN[@]}" --emit ll
expect_error 2 "expected ll or asm" "$MFX" lower linear --dims M=8,N=8,K=8 --emit obj
expect_error 2 "unexpected argument" "$MFX" run linear hamming --dims M=8,N=8,K=8
expect_error 2 "check takes no value" "$MFX" "${LIN[@]}" --check=yes
expect_error 2 "'linear'" "$MFX" demo linear
expect_error 2 "--target 'gpu'; expected auto, cpu, cuda, cuda:N or emulate" "$MFX" demo --target gpu
expect_error 2 "unknown command 'nope'" "$MFX" help nope

# ---- bad input: failures (1) ---------------------------------------------------------------------

expect_error 1 "--in X=$TMP/absent.npy" "$MFX" "${LIN[@]}" --in "X=$TMP/absent.npy"
printf 'this is not a numpy file at all, just text\n' >"$TMP/garbage.npy"
expect_error 1 "$TMP/garbage.npy" "$MFX" "${LIN[@]}" --in "X=$TMP/garbage.npy"
head -c 8 /dev/urandom >"$TMP/short.npy"
expect_error 1 "$TMP/short.npy" "$MFX" "${LIN[@]}" --in "X=$TMP/short.npy"
if [[ -x "$PY" ]] && "$PY" -c "import numpy" 2>/dev/null; then
  "$PY" -c "import numpy as np, sys; d = sys.argv[1]
np.save(d + '/f64.npy', np.zeros((8, 8)))
np.save(d + '/i32.npy', np.zeros((8, 8), dtype=np.int32))
np.save(d + '/shape.npy', np.zeros((8, 9), dtype=np.float32))
np.save(d + '/rank.npy', np.zeros((64,), dtype=np.float32))
np.save(d + '/trunc.npy', np.zeros((8, 8), dtype=np.float32))" "$TMP"
  truncate -s -16 "$TMP/trunc.npy"
  expect_error 1 "$TMP/f64.npy" "$MFX" "${LIN[@]}" --in "X=$TMP/f64.npy"
  expect_error 1 "must be f32 [8, 8]; the file holds i32 [8, 8]" "$MFX" "${LIN[@]}" \
    --in "X=$TMP/i32.npy"
  expect_error 1 "must be f32 [8, 8]; the file holds f32 [8, 9]" "$MFX" "${LIN[@]}" \
    --in "W=$TMP/shape.npy"
  expect_error 1 "the file holds f32 [64]" "$MFX" "${LIN[@]}" --in "X=$TMP/rank.npy"
  expect_error 1 "$TMP/trunc.npy" "$MFX" "${LIN[@]}" --in "X=$TMP/trunc.npy"
else
  echo "SKIP: wrong-dtype/shape .npy files ($PY has no numpy)"
fi
expect_error 1 "--out Y=$TMP/no/such/dir/y.npy" "$MFX" "${LIN[@]}" \
  --out "Y=$TMP/no/such/dir/y.npy"
expect_error 1 "--out Y=$TMP" "$MFX" "${LIN[@]}" --out "Y=$TMP"

# The tuning database: without --config, run uses its best record and says why.
"$MFX" tune linear --dims M=8,N=8,K=8 --trials 3 --strategy random --timeout 0 \
  --db "$TMP/tune.db" >/dev/null 2>&1
expect 0 "(tuned: the best of 3 trials" "$MFX" run linear --dims M=8,N=8,K=8 --db "$TMP/tune.db" --check
expect 0 "(nearest tuned shape: M=8,N=8,K=8" "$MFX" run linear --dims M=9,N=8,K=8 --db "$TMP/tune.db"
expect 0 "(given by --config)" "$MFX" run linear --dims M=8,N=8,K=8 --db "$TMP/tune.db" \
  --config '{"tile_m":1}'
expect 0 "(template default: no tuning database" "$MFX" run linear --dims M=8,N=8,K=8 \
  --db "$TMP/none.db"
expect 0 "config   linear: tuned: the best of 3 trials" "$MFX" compile linear --dims M=8,N=8,K=8 \
  --db "$TMP/tune.db" -o "$TMP/tuned.mfxa"
expect 0 "(tuned: the best of 3 trials" "$MFX" bench linear --dims M=8,N=8,K=8 --db "$TMP/tune.db" \
  --repeat 3
expect 0 "over the template default" "$MFX" bench hamming --dims N=9,M=5,W=2 --db "$TMP/none.db" \
  --repeat 3
expect_error 2 "missing OP" "$MFX" bench
expect_error 2 "no_such_knob" "$MFX" bench linear --dims M=8,N=8,K=8 --config '{"no_such_knob":1}'
printf 'not a database at all, just some bytes that are long enough to matter\n' >"$TMP/junk.db"
expect_error 1 "not an SQLite database" "$MFX" run linear --dims M=8,N=8,K=8 --db "$TMP/junk.db"

echo "(MFX_TEST_SEED=$SEED)"
test_summary test_cli
