#!/usr/bin/env bash
# mfx tune / run on GPU targets from the command line, without a GPU: the
# fake libcuda of tests/fake_cuda (built here) with its timing model,
# limits and faults, and the CPU emulation of the GPU templates. Covers the
# device-keyed record that mfx run then uses (and says so), the emulated
# run checked on a shape that divides no tile, and the errors: no driver,
# a device that is not there, an architecture given as a device.
#
# Environment: MFX_BIN (the directory holding mfx), MFX_SOURCE_DIR, CC.
set -u

MFX="${MFX_BIN:-build/bin}/mfx"
if [[ ! -x "$MFX" ]]; then
  echo "FAIL: $MFX is not an executable (set MFX_BIN)"
  exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mfx_gpu_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export MFX_DB="$TMP/default.db"
passed=0
failed=0

fail() {
  failed=$((failed + 1))
  echo "FAIL: $1"
  [[ -n "${2:-}" ]] && echo "$2" | head -n 20 | sed 's/^/    | /'
}

# expect STATUS TEXT COMMAND...: exit status STATUS, output containing TEXT.
expect() {
  local want_status=$1 want_text=$2
  shift 2
  local status why=""
  OUT=$("$@" 2>&1)
  status=$?
  if (( status >= 128 )); then why="killed by signal $((status - 128))"
  elif [[ "$OUT" == *"Sanitizer"* || "$OUT" == *"runtime error:"* ]]; then why="sanitizer report"
  elif (( status != want_status )); then why="exit status $status, expected $want_status"
  elif [[ -n "$want_text" && "$OUT" != *"$want_text"* ]]; then why="output lacks '$want_text'"
  fi
  if [[ -n "$why" ]]; then fail "$* -> $why" "$OUT"; else passed=$((passed + 1)); fi
}

if ! "${CC:-cc}" -std=gnu11 -O1 -shared -fPIC -o "$TMP/libcuda.so.1" \
     "${MFX_SOURCE_DIR:-.}/tests/fake_cuda/fake_cuda.c" -lpthread 2>"$TMP/fake.log"; then
  fail "building tests/fake_cuda/fake_cuda.c" "$(head -n 5 "$TMP/fake.log")"
  exit 1
fi
FAKE="$TMP/libcuda.so.1"
DB="$TMP/gpu.db"
OP=q16_dequantize
DIMS=M=37,N=41

# --- tuning on the fake device, then running with its record ----------------------
export FAKE_CUDA_MAX_THREADS=512 FAKE_CUDA_FAULT_THREADS=256 FAKE_CUDA_LOG="$TMP/launches.log"
expect 0 "trials   5 measured (ok 3, error 2, wrong 0)" env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" tune $OP --dims $DIMS --target cuda --db "$DB" --strategy exhaustive --min-time 0.0005
expect 0 "on cuda (Fake CUDA Device 0, 132 SMs" echo "$OUT"
if grep -q "block 1024 " "$TMP/launches.log"; then
  fail "a config over the device's 512 threads per block was launched" "$(head -n 5 "$TMP/launches.log")"
else
  passed=$((passed + 1))
fi
expect 0 "refused before launch" "$MFX" db export --db "$DB"
expect 0 "CUDA_ERROR_ILLEGAL_ADDRESS" echo "$OUT"
expect 0 "regs 32, spill 0 B" echo "$OUT"
expect 0 "cuda/sm_90" "$MFX" db list --db "$DB"
unset FAKE_CUDA_LOG FAKE_CUDA_FAULT_THREADS

expect 0 "(tuned: the best of 5 trials for this key" env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" run $OP --dims $DIMS --target cuda --db "$DB" --check --repeat 3
expect 0 "CUDA events" echo "$OUT"
expect 0 "check    max_abs_err=0 max_rel_err=0 ok" echo "$OUT"
expect 0 "target   cuda:0: Fake CUDA Device 0 (sm_90)" echo "$OUT"
# another device model: no record of it, the template default
expect 0 "(template default: no tuning record" env MFX_CUDA_LIBRARY="$FAKE" \
  FAKE_CUDA_NAME="Another Fake GPU" FAKE_CUDA_CC=80 "$MFX" run $OP --dims $DIMS --target cuda \
  --db "$DB" --check
expect 0 "(given by --config)" env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" run $OP --dims $DIMS --target cuda:0 --db "$DB" --config '{"threads":128}' --check
expect 2 "is not one of" env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" run $OP --dims $DIMS --target cuda --config '{"threads":100}'

# --- bench: tuned against default on the device, both checked; JSON for scripts ----
expect 0 '"chosen_ms":' env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" bench $OP --dims $DIMS --target cuda --db "$DB" --repeat 3 --json
expect 0 '"config_why":"tuned: the best of 5 trials' echo "$OUT"
expect 0 '"no_cublas":"no dense float equivalent of q16_dequantize"' echo "$OUT"
expect 0 "speedup" env MFX_CUDA_LIBRARY="$FAKE" \
  "$MFX" bench $OP --dims $DIMS --target cuda --db "$DB" --repeat 3
expect 0 "on cuda:0: Fake CUDA Device 0 (sm_90)" echo "$OUT"
expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" \
  env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$MFX" bench $OP --dims $DIMS --target cuda
expect 0 "both checked" "$MFX" bench linear --dims M=13,N=17,K=19 --target emulate --repeat 3

# --- MPI: one rank per (fake) GPU, trials gathered on rank 0 ---------------------------------
if command -v mpirun >/dev/null 2>&1 &&
   ! "$MFX" tune $OP --dims $DIMS --trials 1 --mpi --db "$TMP/probe.db" 2>&1 | grep -q "built without MPI"; then
  expect 0 "trials   5 measured (ok 4, error 1" env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    mpirun --allow-run-as-root --oversubscribe -n 2 -x MFX_CUDA_LIBRARY="$FAKE" -x FAKE_CUDA_DEVICES=2 \
    "$MFX" tune $OP --dims $DIMS --target cuda --mpi --db "$TMP/mpi.db" --strategy exhaustive --min-time 0.0005
  ranks=$("$MFX" db export --db "$TMP/mpi.db" 2>/dev/null | grep -o '"rank":[01]' | sort -u | wc -l)
  if [[ "$ranks" == 2 ]]; then passed=$((passed + 1)); else fail "MPI: not both ranks measured"; fi
else
  echo "SKIP: MPI on GPUs (no mpirun, or mfx built without MPI)"
fi

# --- errors ----------------------------------------------------------------------------
expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" \
  env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$MFX" run $OP --dims $DIMS --target cuda
expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" \
  env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$MFX" tune $OP --dims $DIMS --target cuda
expect 1 "cuda:7: only 1 CUDA device here: cuda:0 (Fake CUDA Device 0, sm_90)" \
  env MFX_CUDA_LIBRARY="$FAKE" "$MFX" run $OP --dims $DIMS --target cuda:7
expect 1 "cuda:7: only 1 CUDA device here" \
  env MFX_CUDA_LIBRARY="$FAKE" "$MFX" tune $OP --dims $DIMS --target cuda:7 --db "$DB"
expect 2 "names an architecture, not a device" "$MFX" run $OP --dims $DIMS --target cuda:sm_80
expect 2 "expected cpu, cuda, cuda:N" "$MFX" run $OP --dims $DIMS --target gpu
expect 2 "--target given twice" "$MFX" run $OP --dims $DIMS --target cpu --target cuda

# --- the emulation: GPU knobs, checked on a shape that divides no tile ---------------------
expect 0 "check    max_abs_err=" "$MFX" run linear --dims M=13,N=17,K=19 --target emulate \
  --check --config '{"block_m":16,"block_n":16,"thread_m":2,"thread_n":2,"block_k":8}'
expect 0 "target   emulate" echo "$OUT"
expect 0 "wrong 0" "$MFX" tune hamming --dims N=19,M=23,W=3 --target emulate --db "$DB" \
  --trials 3 --strategy random --min-time 0.0005
expect 0 "(tuned: the best of 3 trials" "$MFX" run hamming --dims N=19,M=23,W=3 \
  --target emulate --db "$DB" --check

# --- the MoE layer on the GPU emulation: tuned there first, then configs from those records -----
expect 0 "configs the layer compiled with (emulate records):" "$MFX" demo --target emulate \
  --tokens 32 --dim 8 --hidden 16 --tune-trials 1 --no-ops --out "$TMP/demo"
expect 0 "tuning: autotuner, 1 random trials per kernel at the balanced load on emulate" echo "$OUT"
if [[ "$OUT" =~ \(emulate\ records\):\ ([0-9]+)\ tuned ]] && (( BASH_REMATCH[1] > 0 )); then
  passed=$((passed + 1))
else
  fail "the emulated layer used no tuned config" "$(echo "$OUT" | tail -n 5)"
fi

expect 0 "kernel configs from the tuning database's records of emulate:" "$MFX" experts \
  --target emulate --tokens 32 --dim 8 --hidden 16 --min-time 0.001 --db "$TMP/demo/tune.db" \
  --out "$TMP/latency.json"
if [[ "$OUT" =~ records\ of\ emulate:\ ([0-9]+)\ tuned ]] && (( BASH_REMATCH[1] > 0 )); then
  passed=$((passed + 1))
else
  fail "mfx experts --target emulate used no tuned config" "$(echo "$OUT" | tail -n 3)"
fi

echo "test_gpu_cli: $passed passed, $failed failed"
(( failed == 0 ))
