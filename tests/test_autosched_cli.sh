#!/usr/bin/env bash
# mfx tune FILE.te (cpu and emulate), mfx compile FILE.te with the tuned
# config (cpu; cuda:sm_XX from the emulate records), the artifact run by
# mfx-runner and compared with mfx run's output checked against the IR
# interpreter; the GPU artifact loaded and launched on the fake driver; bad
# input refused with a clear message and a non-zero status. Small trial
# counts: the CI machine has 2 cores.
set -u
MFX=${MFX_BIN:?}/mfx
RUNNER=${MFX_BIN}/mfx-runner
E=examples/kernels
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MFX_DB="$tmp/tune.db"
failures=0
expect() { # status substring command...
  local want=$1 needle=$2; shift 2
  local out status
  out=$("$@" 2>&1); status=$?
  out_last=$out
  if [ "$status" != "$want" ] || [[ "$out" != *"$needle"* ]] || [[ "$out" == *Sanitizer* ]]; then
    echo "FAIL: $* -> status $status (want $want), output lacks '$needle':"; echo "$out" | head -8
    failures=$((failures + 1))
  fi
}
quick=(--trials 3 --min-time 0.001 --timeout 0)

# ---- the plan: which rules fired, the knobs ----
expect 0 "Y: reduction (rows m, vector n, reduce k); tile vectorize parallel cache_write pack" \
  "$MFX" tune "$E/linear.te" "${quick[@]}"
expect 0 "SH: elementwise; pack" "$MFX" tune "$E/shift_linear.te" "${quick[@]}"
expect 0 "Z: elementwise (epilogue of Y); fuse" "$MFX" tune "$E/relu_linear.te" "${quick[@]}"
expect 0 "knobs    tile_x{1,2,4,6,8}" "$MFX" tune "$E/hamming.te" "${quick[@]}"

# ---- tuned: the records are used by compile, which says so ----
expect 0 "trials   3 measured (ok 3" "$MFX" tune "$E/shift_linear.te" "${quick[@]}"
hash=$("$MFX" tune "$E/shift_linear.te" --trials 1 --min-time 0.001 --timeout 0 | sed -n 's/^kernel .* as op \(te:[0-9a-f]*\)$/\1/p')
expect 0 "$hash" "$MFX" db list
expect 0 "as $hash, {" "$MFX" compile "$E/shift_linear.te" -o "$tmp/shift.mfxa"
expect 0 "tuned: the best of" "$MFX" compile "$E/shift_linear.te" -o "$tmp/shift.mfxa"
expect 0 "auto-scheduler default: no tuning record" "$MFX" compile "$E/matadd.te" -o "$tmp/m.mfxa"
expect 0 "auto-scheduler default: no tuning record" "$MFX" compile "$E/hamming.te" \
  --db "$tmp/other.db" -o "$tmp/h.mfxa"

# ---- the same kernel at other sizes: one op te:<hash> (its sizes are its dims), so the
# records of one size are the nearest tuned shape of another; the artifact compiled with that
# config on a shape that divides no tile gives mfx run's checked output (i32: exact) ----
printf 'placeholder X: i32[64, 40]\nplaceholder W: i32[48, 40]\ncompute Y: i32[64, 48] (m, n) = sum(k < 40: X[m, k] * W[n, k])\n' >"$tmp/l64.te"
printf 'placeholder X: i32[61, 37]\nplaceholder W: i32[45, 37]\ncompute Y: i32[61, 45] (m, n) = sum(k < 37: X[m, k] * W[n, k])\n' >"$tmp/l61.te"
printf 'placeholder X: i32[61, 37]\nplaceholder W: i32[45, 37]\ncompute Y: i32[61, 45] (m, n) = sum(k < 37: X[m, k] + W[n, k])\n' >"$tmp/a61.te"
ndb="$tmp/near.db"
expect 0 "trials   3 measured (ok 3" "$MFX" tune "$tmp/l64.te" "${quick[@]}" --db "$ndb"
h64=$(echo "$out_last" | sed -n 's/^kernel .* as op \(te:[0-9a-f]*\)$/\1/p')
h61=$("$MFX" compile "$tmp/l61.te" --db "$ndb" -o "$tmp/l61.mfxa" 2>&1)
if [[ "$h61" != *"as $h64, {"*"nearest tuned shape: D0=64,D1=40,D2=48 (log2 distance"* ]]; then
  echo "FAIL: l61.te did not take l64.te's record as the nearest shape:"; echo "$h61" | head -3
  failures=$((failures + 1))
fi
expect 0 "auto-scheduler default: no tuning record" "$MFX" compile "$tmp/a61.te" --db "$ndb" -o "$tmp/a61.mfxa"
printf 'placeholder A: i32[61, 37]\nplaceholder B: i32[45, 37]\ncompute XA: i32[61, 37] (i, j) = A[i, j]\ncompute WB: i32[45, 37] (i, j) = B[i, j]\n' >"$tmp/gen61.te"
expect 0 "-> $tmp/w61.npy" "$MFX" run "$tmp/gen61.te" --seed 3 --out XA="$tmp/x61.npy" --out WB="$tmp/w61.npy"
in61=(--in X="$tmp/x61.npy" --in W="$tmp/w61.npy")
expect 0 "output   Y -> $tmp/y61_runner.npy" "$RUNNER" "$tmp/l61.mfxa" "${in61[@]}" --out Y="$tmp/y61_runner.npy"
expect 0 "check    Y max_abs_err=" "$MFX" run "$tmp/l61.te" "${in61[@]}" --out Y="$tmp/y61_jit.npy" --check
if ! cmp -s "$tmp/y61_runner.npy" "$tmp/y61_jit.npy"; then
  echo "FAIL: l61.te compiled with l64.te's config differs from mfx run's checked output"; failures=$((failures + 1))
fi
# ---- mfx-runner runs the artifact: the same output as the checked mfx run ----
cat >"$tmp/gen.te" <<'TE'
placeholder A: i32[31, 40]
placeholder B: i8[17, 40]
placeholder C: i8[17, 40]
compute X: i32[31, 40] (i, j) = A[i, j]
compute S: i8[17, 40] (i, j) = B[i, j]
compute G: i8[17, 40] (i, j) = C[i, j]
TE
expect 0 "-> $tmp/g.npy" "$MFX" run "$tmp/gen.te" --seed 5 --out X="$tmp/x.npy" --out S="$tmp/s.npy" --out G="$tmp/g.npy"
ins=(--in X="$tmp/x.npy" --in S="$tmp/s.npy" --in G="$tmp/g.npy")
expect 0 "output   Y -> $tmp/y_runner.npy" "$RUNNER" "$tmp/shift.mfxa" "${ins[@]}" --out Y="$tmp/y_runner.npy"
expect 0 "check    Y max_abs_err=0 max_rel_err=0 ok" "$MFX" run "$E/shift_linear.te" "${ins[@]}" --out Y="$tmp/y_jit.npy" --check
if ! cmp -s "$tmp/y_runner.npy" "$tmp/y_jit.npy"; then
  echo "FAIL: the auto-scheduled artifact's output differs from mfx run's checked one"; failures=$((failures + 1))
fi

# ---- GPU schedules: tuned on the emulation, compiled for cuda, run on the fake driver ----
expect 0 "trials   2 measured (ok 2)" "$MFX" tune "$E/shift_linear.te" --target emulate --trials 2 --min-time 0.001
expect 0 "(tuned with --target emulate: checked GPU schedules, timed on the CPU)" \
  "$MFX" compile "$E/shift_linear.te" --target cuda:sm_80 -o "$tmp/shift_gpu.mfxa"
expect 0 "auto-scheduler default" "$MFX" compile "$E/relu_linear.te" --target cuda:sm_90 -o "$tmp/relu_gpu.mfxa"
expect 0 "launch   shift_linear_k" "$RUNNER" "$tmp/shift_gpu.mfxa" --list
if cc -std=gnu11 -O1 -shared -fPIC -o "$tmp/libcuda.so.1" \
     "${MFX_SOURCE_DIR:-.}/tests/fake_cuda/fake_cuda.c" -lpthread 2>"$tmp/fake.log"; then
  out=$(MFX_CUDA_LIBRARY="$tmp/libcuda.so.1" "$RUNNER" "$tmp/shift_gpu.mfxa" "${ins[@]}" --bench --repeat 2 2>&1)
  if [[ "$out" == *"without CUDA headers"* ]]; then
    echo "SKIP: the runtime has no CUDA support; fake-driver run not checked"
  elif [[ "$out" != *"on cuda:0"* ]]; then
    echo "FAIL: the auto-scheduled GPU artifact on the fake driver:"; echo "$out" | head -5
    failures=$((failures + 1))
  fi
else
  echo "FAIL: building tests/fake_cuda/fake_cuda.c"; failures=$((failures + 1))
fi

# ---- tuned on a GPU: the fake driver (tests/fake_cuda) runs the worker; it computes only
# q16_dequantize, so q16_dequantize.te's launches run as that (FAKE_CUDA_RUN_AS) and every
# candidate is still built to PTX, loaded, launched, checked against the interpreter, timed
# with events and recorded under the device; a kernel the fake does not compute is refused
# as wrong: the check is real. The schedules' own correctness: --target emulate below. ----
FAKE="$tmp/libcuda.so.1"
if [ ! -f "$FAKE" ]; then
  echo "FAIL: no fake driver built"; failures=$((failures + 1))
elif MFX_CUDA_LIBRARY="$FAKE" "$MFX" tune "$E/q16_dequantize.te" --target cuda --trials 1 \
       --db "$tmp/probe.db" 2>&1 | grep -q "built without CUDA headers"; then
  echo "SKIP: the runtime has no CUDA support; GPU tuning of text kernels not checked"
else
  gdb="$tmp/gpu.db"
  gpu=(env MFX_CUDA_LIBRARY="$FAKE" FAKE_CUDA_RUN_AS=q16_dequantize)
  expect 0 "trials   4 measured (ok 3, error 1, wrong 0)" "${gpu[@]}" FAKE_CUDA_FAULT_THREADS=128 \
    "$MFX" tune "$E/q16_dequantize.te" --target cuda --db "$gdb" --strategy exhaustive --min-time 0.0005
  expect 0 "on cuda (Fake CUDA Device 0, 132 SMs, 81920 MiB, driver 12.4, sm_90)" echo "$out_last"
  qhash=$(echo "$out_last" | sed -n 's/^kernel .* as op \(te:[0-9a-f]*\)$/\1/p')
  expect 0 '"target":"cuda","arch":"sm_90","device":"Fake CUDA Device 0' "$MFX" db export --db "$gdb"
  expect 0 "\"op\":\"$qhash\",\"dims\":\"D0=7,D1=45\"" echo "$out_last"
  expect 0 "CUDA_ERROR_ILLEGAL_ADDRESS" echo "$out_last"
  expect 0 "regs 32, spill 0 B" echo "$out_last"
  expect 1 "(ok 0, error 0, wrong 2)" env MFX_CUDA_LIBRARY="$FAKE" "$MFX" tune "$E/q16_dequantize.te" \
    --target cuda --db "$tmp/wrong.db" --trials 2 --min-time 0.0005
  expect 0 "differs from the reference" "$MFX" db export --db "$tmp/wrong.db"
  expect 1 "no candidate passed the check" env MFX_CUDA_LIBRARY="$FAKE" "$MFX" tune \
    "$E/shift_linear.te" --target cuda:0 --db "$tmp/wrong.db" --trials 2 --min-time 0.0005
  # mfx compile for a GPU: that sm_XX's record, else the emulated one, else the default
  expect 0 "tuned on Fake CUDA Device 0, 132 SMs, 81920 MiB, driver 12.4 (sm_90): the best of 4 trials" \
    "$MFX" compile "$E/q16_dequantize.te" --target cuda:sm_90 --db "$gdb" -o "$tmp/q_gpu.mfxa"
  expect 0 "auto-scheduler default: no tuning record of $qhash on a sm_80 GPU or emulated" \
    "$MFX" compile "$E/q16_dequantize.te" --target cuda:sm_80 --db "$gdb" -o "$tmp/q_gpu.mfxa"
  expect 0 "trials   4 measured (ok 4)" "$MFX" tune "$E/q16_dequantize.te" --target emulate \
    --db "$gdb" --strategy exhaustive --min-time 0.0005
  expect 0 "(tuned with --target emulate: checked GPU schedules, timed on the CPU)" \
    "$MFX" compile "$E/q16_dequantize.te" --target cuda:sm_80 --db "$gdb" -o "$tmp/q_gpu.mfxa"
  expect 0 "tuned on Fake CUDA Device 0" \
    "$MFX" compile "$E/q16_dequantize.te" --target cuda:sm_90 --db "$gdb" -o "$tmp/q_gpu.mfxa"
  # the same kernel at other sizes: the nearest GPU record of that sm_XX, before emulated ones
  sed 's/7, 45/9, 50/g' "$E/q16_dequantize.te" >"$tmp/q9.te"
  expect 0 "nearest tuned shape: D0=7,D1=45 (log2 distance 0.39), where it ran in" \
    "$MFX" compile "$tmp/q9.te" --target cuda:sm_90 --db "$gdb" -o "$tmp/q9.mfxa"
  expect 0 "on a sm_90 GPU" echo "$out_last"
  # mfx run on the GPU: this device's record, checked against the interpreter, CUDA events
  expect 0 "(tuned: the best of 4 trials for this key" "${gpu[@]}" "$MFX" run "$E/q16_dequantize.te" \
    --target cuda --db "$gdb" --check --repeat 2
  expect 0 "check    X max_abs_err=0 max_rel_err=0 ok" echo "$out_last"
  expect 0 "(CUDA events, after 1 warm-up)" echo "$out_last"
  expect 1 "differs from the IR interpreter" env MFX_CUDA_LIBRARY="$FAKE" "$MFX" run \
    "$E/q16_dequantize.te" --target cuda:0 --db "$gdb" --check
  # errors of the GPU target
  expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 \
    "$MFX" run "$E/q16_dequantize.te" --target cuda --db "$gdb"
  expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 \
    "$MFX" tune "$E/q16_dequantize.te" --target cuda --db "$gdb"
  expect 1 "cuda:7: only 1 CUDA device here: cuda:0 (Fake CUDA Device 0, sm_90)" \
    env MFX_CUDA_LIBRARY="$FAKE" "$MFX" tune "$E/q16_dequantize.te" --target cuda:7 --db "$gdb"
fi

# ---- mfx run --target emulate: the auto-scheduled GPU schedule checked on shapes that divide
# no tile, with the emulated record of the same kernel at other sizes (nearest) and without ----
expect 0 "trials   2 measured (ok 2)" "$MFX" tune "$tmp/l64.te" --target emulate \
  --trials 2 --min-time 0.001 --db "$ndb"
expect 0 "check    Y max_abs_err=0 max_rel_err=0 ok" "$MFX" run "$tmp/l61.te" --target emulate \
  --db "$ndb" --check
expect 0 "(nearest tuned shape: D0=64,D1=40,D2=48" echo "$out_last"
expect 0 "check    Y max_abs_err=0 max_rel_err=0 ok" "$MFX" run "$E/shift_linear.te" --target emulate --check
expect 0 "check    Z max_abs_err=" "$MFX" run "$E/relu_linear.te" --target emulate --check --db "$tmp/none.db"
expect 0 "auto-scheduler default: no tuning record" echo "$out_last"
expect 2 "names an architecture, not a device" "$MFX" run "$E/linear.te" --target cuda:sm_90
expect 2 "target \"gpu\": expected cpu, cuda, cuda:N" "$MFX" run "$E/linear.te" --target gpu
expect 2 "--kernel Y: runs on --target emulate take the whole kernel" "$MFX" run "$E/linear.te" \
  --target emulate --kernel Y

# ---- the code: host assembly and PTX of the auto-scheduled kernel ----
expect 0 "vfmadd" "$MFX" compile "$E/linear.te" --emit asm
expect 0 ".entry kernel_k" "$MFX" compile "$E/relu_linear.te" --target cuda:sm_90 --emit ptx
if command -v ptxas >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/ptxas ]; then
  PTXAS=$(command -v ptxas || echo /usr/local/cuda/bin/ptxas)
  "$MFX" compile "$E/relu_linear.te" --target cuda:sm_90 --emit ptx -o "$tmp/relu.ptx" 2>/dev/null
  if ! "$PTXAS" -arch=sm_90 -o "$tmp/relu.cubin" "$tmp/relu.ptx" 2>"$tmp/ptxas.log"; then
    echo "FAIL: ptxas refused the auto-scheduled PTX:"; head -5 "$tmp/ptxas.log"; failures=$((failures + 1))
  fi
else
  echo "SKIP: no ptxas; the auto-scheduled PTX is not assembled"
fi

# ---- bad input ----
printf 'placeholder X: f32[4]\n' >"$tmp/nocompute.te"
expect 1 "nocompute.te: no compute statement" "$MFX" tune "$tmp/nocompute.te" "${quick[@]}"
expect 1 "nocompute.te: no compute statement" "$MFX" compile "$tmp/nocompute.te" -o "$tmp/x.mfxa"
printf 'placeholder X: f32[4]\ncompute Y: f32[4] (i) = X[j]\n' >"$tmp/bad.te"
expect 1 "bad.te:2:27: unknown name 'j'" "$MFX" tune "$tmp/bad.te" "${quick[@]}"
expect 1 "cannot read TE text from $tmp/missing.te" "$MFX" tune "$tmp/missing.te"
expect 2 "--target gpu" "$MFX" tune "$E/linear.te" --target gpu
expect 2 "--target cuda:sm_90 names an architecture, not a device: tuning measures on a GPU" \
  "$MFX" tune "$E/linear.te" --target cuda:sm_90
expect 2 "--strategy: 'best' is not a strategy" "$MFX" tune "$E/linear.te" --strategy best
expect 2 "--trials: '0' is not a whole number" "$MFX" tune "$E/linear.te" --trials 0
expect 2 "--trials: 'x' is not a whole number" "$MFX" tune "$E/linear.te" --trials x
expect 2 "unknown option '--dims'" "$MFX" tune "$E/linear.te" --dims M=4
expect 2 "unexpected argument 'extra'" "$MFX" tune "$E/linear.te" extra
expect 2 "--target given twice" "$MFX" tune "$E/linear.te" --target cpu --target cpu
expect 2 "--trials needs a value" "$MFX" tune "$E/linear.te" --trials
expect 2 "expected cpu or cuda:sm_XX" "$MFX" compile "$E/linear.te" --target emulate -o "$tmp/x.mfxa"
expect 2 "expected cpu or cuda:sm_XX" "$MFX" compile "$E/linear.te" --target tpu -o "$tmp/x.mfxa"
expect 2 "--emit ptx is GPU code" "$MFX" compile "$E/linear.te" --emit ptx
printf 'not sqlite' >"$tmp/broken.db"
expect 1 "$tmp/broken.db: not an SQLite database" "$MFX" tune "$E/linear.te" "${quick[@]}" --db "$tmp/broken.db"
expect 1 "$tmp/broken.db" "$MFX" compile "$E/linear.te" --db "$tmp/broken.db" -o "$tmp/x.mfxa"
expect 0 "usage: mfx tune FILE.te" "$MFX" tune "$E/linear.te" --help
[ $failures = 0 ] && echo "test_autosched_cli: all checks passed"
exit $((failures > 0))
