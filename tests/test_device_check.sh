#!/usr/bin/env bash
# bench/device_check.sh's dry run without a GPU: the tune and bench steps of
# every op through the CPU emulation at small shapes, with the build tree's
# mfx, ending with its table (op, shape, default ms, tuned ms, cuBLAS
# columns empty, ratios). The real run is the same script with a GPU.
#
# Environment: MFX_BIN, MFX_SOURCE_DIR; run from the source tree.
set -u
src=${MFX_SOURCE_DIR:-.}
source "$(dirname "$0")/lib.sh"
test_setup device_check

DEVICE_CHECK_TARGET=emulate DEVICE_CHECK_SMALL=1 TRIALS=2 MFX_BIN="${MFX_BIN:-build/bin}" \
  "$src/bench/device_check.sh" - "$TMP/out" >"$TMP/check.log" 2>&1
rc=$?
[[ $rc == 0 ]] || fail "device_check.sh dry run exited $rc: $(tail -n 20 "$TMP/check.log")"
for op in shift_linear matadd hamming binary_attention; do
  grep -q "^tune_[0-9]*_$op *rc=0 " "$TMP/out/summary.txt" || fail "tune of $op did not pass"
  grep -q "^bench_[0-9]*_$op *rc=0 " "$TMP/out/summary.txt" || fail "bench of $op did not pass"
  grep -Eq "^$op +[A-Z]=[0-9,A-Z=]+ +[0-9.e-]+ +[0-9.e-]+ +[0-9.]+x +null +null" "$TMP/out/table.txt" ||
    fail "no table row for $op: $(cat "$TMP/out/table.txt")"
done
[[ $(grep -c "trials" "$TMP/out"/tune_*.log | grep -vc ':0$') == 4 ]] || fail "a tune log lacks its summary"
grep -q "op  *shape  *default ms  *tuned ms" "$TMP/out/table.txt" || fail "no table header"
(( failed == 0 )) || exit 1
echo "device_check dry run: ok"
