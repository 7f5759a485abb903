#!/usr/bin/env bash
# On a GPU machine, from the source tree, with the folder of bench/gpu_pack.sh:
#   PACK/device_check.sh PACK OUT
# Runs, each with a time limit, writing OUT/<step>.log and a summary:
#   1. test_moe: the MoE layer on the real GPU against the plain-C reference
#      (shapes that divide no tile), and its GPU emulation;
#   2. mfx-runner + PyTorch: every op checked and timed (bench/gpu.sh);
#   3. mfx experts --target cuda: the experts' kernel latencies and alpha;
#   4. mfx demo --target cuda: the whole layer, checked, its PTX artifact.
# Exit 1 if any step failed; every step runs regardless.
set -uo pipefail
pack=$(cd "${1:?usage: device_check.sh PACK OUT}" && pwd)
out=${2:?usage: device_check.sh PACK OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(pwd)
bin=$out/bin
mkdir -p "$bin"
for z in "$pack"/bin/*.gz; do gunzip -c "$z" >"$bin/$(basename "$z" .gz)"; done
cp "$pack/bin/mfx-runner" "$bin/"
chmod +x "$bin"/*
export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MFX_SOURCE_DIR=$src MFX_BIN=$bin MFX_LATENCY=$out/latency.json
export MFX_DB=$out/no-such-dir/tune.db CK_DEFAULT_TIMEOUT=240

failed=0
step() { # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  printf '%-8s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$*" | tee -a "$out/summary.txt"
  [ $rc = 0 ] || failed=1
}

nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1
step moe 240 env CK_RUN_CASE=gpu "$bin/test_moe"
step ops 240 "$src/bench/gpu.sh" --runner "$bin/mfx-runner" --dir "$pack/artifacts" \
  --json "$out/gpu.json"
step experts 120 "$bin/mfx" experts --target cuda --tokens 3136 --dim 64 --hidden 512 \
  --json --plot "$out/latency.svg" --out "$out/latency.json"
step demo 240 "$bin/mfx" demo --target cuda --no-ops --out "$out/demo"
grep -h "SKIP\|real GPU\|MoE layer on" "$out/moe.log" >>"$out/summary.txt"
exit $failed
