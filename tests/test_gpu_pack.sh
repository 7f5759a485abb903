#!/usr/bin/env bash
# bench/gpu_pack.sh and bench/device_check.sh, as far as a machine without a
# GPU can take them: the pack holds mfx and test_moe linked without
# libLLVM.so (the tree's target mfx_pack), mfx-runner and one artifact per case; unpacked
# and run by device_check.sh, the layer's test passes (its real-GPU case
# skipped), and the GPU steps fail with the missing driver named.
#
# Environment: MFX_SOURCE_DIR, MFX_BIN (the tree's bin/); run from the source tree.
set -u
src=${MFX_SOURCE_DIR:-.}
source "$(dirname "$0")/lib.sh"
test_setup gpu_pack

if ! MFX_PACK_BUILD="$(dirname "${MFX_BIN:?}")" "$src/bench/gpu_pack.sh" "$TMP/pack" sm_80 >"$TMP/pack.log" 2>&1; then
  cat "$TMP/pack.log"
  echo "FAIL: gpu_pack.sh"
  exit 1
fi
for f in bin/mfx.gz bin/test_moe.gz bin/mfx-runner device_check.sh artifacts/cases.txt; do
  [[ -e "$TMP/pack/$f" ]] || fail "the pack lacks $f"
done
cases=$(grep -cv '^ *\(#\|$\)' "$src/bench/gpu_cases.txt")
[[ $(wc -l <"$TMP/pack/artifacts/cases.txt") == "$cases" ]] || fail "not one artifact per case"
gunzip -c "$TMP/pack/bin/mfx.gz" >"$TMP/mfx"
if readelf -d "$TMP/mfx" | grep -q 'NEEDED.*LLVM'; then fail "the packed mfx needs libLLVM"; fi
readelf -d "$TMP/mfx" | grep -q 'NEEDED.*libc.so' || fail "readelf saw no NEEDED entries"

MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$TMP/pack/device_check.sh" "$TMP/pack" "$TMP/out" \
  >"$TMP/check.log" 2>&1
rc=$?
[[ $rc == 1 ]] || fail "device_check.sh exited $rc without a GPU, expected 1"
grep -q '^moe *rc=0 ' "$TMP/out/summary.txt" || fail "the layer's test failed: $(tail -5 "$TMP/out/moe.log")"
grep -q 'SKIP the MoE layer on a real GPU' "$TMP/out/summary.txt" || fail "no real-GPU skip line"
for s in ops experts demo; do
  grep -q "^$s *rc=1 " "$TMP/out/summary.txt" || fail "step $s did not fail without a GPU"
done
grep -q 'no CUDA driver' "$TMP/out/demo.log" || fail "the demo does not name the missing driver"
(( failed == 0 )) || { cat "$TMP/out/summary.txt"; exit 1; }
echo "gpu pack: ok ($(du -sh "$TMP/pack" | cut -f1))"
