#!/usr/bin/env bash
# On a GPU machine, from the source tree, with the folder of bench/gpu_pack.sh:
#   PACK/device_check.sh PACK OUT
# Runs, each with its own time limit (about 6 minutes in all on one H100,
# at most 8), writing OUT/<step>.log, OUT/summary.txt and OUT/table.txt:
#   1. device: test_device's real-GPU case (the Driver API path on the GPU);
#   2. moe: test_moe, the MoE layer on the GPU against the plain-C reference
#      (shapes that divide no tile), and its GPU emulation;
#   3. ops: mfx-runner + PyTorch, every op checked and timed (bench/gpu.sh);
#   4. tune_*: mfx tune of each op at the ShiftAddViT shapes (MatShift
#      3136x512x64, 3136x64x512, 784x1024x128, 784x128x1024; MatAdd, binary
#      attention [B,heads,N,d,code] = [1,1,3136,32,16], [1,2,784,32,16],
#      [1,5,196,32,16]; Hamming at the same N) with $TRIALS trials each
#      (default 24), into OUT/tune.db;
#   5. bench_*: mfx bench --target cuda --json of each, tuned against the
#      template default and cuBLAS SGEMM (fp32, TF32);
#   6. experts, demo: mfx experts and mfx demo --target cuda;
# and ends with one table: op, shape, default ms, tuned ms, cuBLAS fp32/TF32
# ms and the ratios. Exit 1 if any step failed; every step runs regardless.
#
# A dry run without a GPU (tests/test_device_check.sh): DEVICE_CHECK_TARGET=emulate
# DEVICE_CHECK_SMALL=1 MFX_BIN=build/bin device_check.sh - OUT runs steps 4-5
# through the CPU emulation at small shapes with the build tree's programs
# (PACK "-": no pack) and skips the steps that need a GPU.
set -uo pipefail
pack_arg=${1:?usage: device_check.sh PACK OUT}
out=${2:?usage: device_check.sh PACK OUT}
target=${DEVICE_CHECK_TARGET:-cuda}
trials=${TRIALS:-24}
mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(pwd)
if [[ "$pack_arg" == "-" ]]; then
  bin=$(cd "${MFX_BIN:?MFX_BIN: the folder of mfx when there is no pack}" && pwd)
  pack=""
else
  pack=$(cd "$pack_arg" && pwd)
  bin=$out/bin
  mkdir -p "$bin"
  for z in "$pack"/bin/*.gz; do gunzip -c "$z" >"$bin/$(basename "$z" .gz)"; done
  cp "$pack/bin/mfx-runner" "$bin/"
  chmod +x "$bin"/*
  export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export MFX_SOURCE_DIR=$src MFX_BIN=$bin MFX_LATENCY=$out/latency.json
export MFX_DB=$out/tune.db CK_DEFAULT_TIMEOUT=240
jobs=$(nproc 2>/dev/null || echo 2)
rm -f "$out/summary.txt" "$out"/bench_*.log

failed=0
step() { # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  printf '%-22s rc=%-3s %4ss  %s\n' "$name" "$rc" "$((SECONDS - t0))" "$*" | tee -a "$out/summary.txt"
  [ $rc = 0 ] || failed=1
}

# The cases: op, dims (small ones for the dry run).
if [[ -n "${DEVICE_CHECK_SMALL:-}" ]]; then
  cases=(
    "shift_linear M=37,N=24,K=19"
    "matadd B=1,H=2,N=29,D=8,C=4"
    "hamming N=29,M=29,W=1"
    "binary_attention B=1,H=1,N=29,D=8,C=4"
  )
else
  cases=(
    "shift_linear M=3136,N=512,K=64"
    "shift_linear M=3136,N=64,K=512"
    "shift_linear M=784,N=1024,K=128"
    "shift_linear M=784,N=128,K=1024"
    "matadd B=1,H=1,N=3136,D=32,C=16"
    "matadd B=1,H=2,N=784,D=32,C=16"
    "matadd B=1,H=5,N=196,D=32,C=16"
    "hamming N=3136,M=3136,W=1"
    "hamming N=784,M=784,W=1"
    "hamming N=196,M=196,W=1"
    "binary_attention B=1,H=1,N=3136,D=32,C=16"
    "binary_attention B=1,H=2,N=784,D=32,C=16"
    "binary_attention B=1,H=5,N=196,D=32,C=16"
  )
fi

if [[ "$target" == cuda* ]]; then
  nvidia-smi -L >"$out/nvidia-smi.txt" 2>&1
  step device 60 env CK_RUN_CASE=real "$bin/test_device"
  step moe 120 env CK_RUN_CASE=gpu "$bin/test_moe"
  if [[ -n "$pack" ]]; then
    step ops 120 "$src/bench/gpu.sh" --runner "$bin/mfx-runner" --dir "$pack/artifacts" \
      --json "$out/gpu.json"
  fi
fi

i=0
for c in "${cases[@]}"; do
  read -r op dims <<<"$c"
  i=$((i + 1))
  step "tune_$(printf %02d $i)_$op" 45 "$bin/mfx" tune "$op" --dims "$dims" --target "$target" \
    --trials "$trials" --jobs "$jobs" --min-time 0.02 --timeout 20 --db "$out/tune.db"
done
i=0
for c in "${cases[@]}"; do
  read -r op dims <<<"$c"
  i=$((i + 1))
  step "bench_$(printf %02d $i)_$op" 45 "$bin/mfx" bench "$op" --dims "$dims" --target "$target" --json \
    --repeat 20 --db "$out/tune.db"
done

if [[ "$target" == cuda* ]]; then
  step experts 90 "$bin/mfx" experts --target "$target" --tokens 3136 --dim 64 --hidden 512 \
    --json --plot "$out/latency.svg" --out "$out/latency.json"
  step demo 180 "$bin/mfx" demo --target "$target" --no-ops --out "$out/demo"
  grep -h "SKIP\|real GPU\|MoE layer on" "$out/moe.log" >>"$out/summary.txt" 2>/dev/null
fi

# The table: one row per bench JSON line.
{
  printf '%-17s %-28s %10s %10s %8s %11s %11s %9s %9s\n' op shape "default ms" "tuned ms" \
    speedup "cuBLAS fp32" "cuBLAS TF32" "fp32/mfx" "TF32/mfx"
  for f in "$out"/bench_*.log; do
    [[ -e "$f" ]] || continue
    line=$(grep '^{"op"' "$f" | tail -n 1)
    if [[ -z "$line" ]]; then
      printf '%-17s %s\n' "$(basename "$f" .log)" "failed: $(tail -n 1 "$f")"
      continue
    fi
    field() { sed -n "s/.*\"$1\":\\(\"[^\"]*\"\\|[^,}]*\\).*/\\1/p" <<<"$line" | tr -d '"'; }
    d=$(field default_ms) t=$(field chosen_ms) f32=$(field cublas_fp32_ms) t32=$(field cublas_tf32_ms)
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
    printf '%-17s %-28s %10s %10s %8s %11s %11s %9s %9s\n' "$(field op)" "$(field dims)" "$d" "$t" \
      "$(ratio "$d" "$t")" "$f32" "$t32" "$(ratio "$f32" "$t")" "$(ratio "$t32" "$t")"
  done
} | tee "$out/table.txt"
exit $failed
