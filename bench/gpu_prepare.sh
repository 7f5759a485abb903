#!/usr/bin/env bash
# Here (with LLVM): compile every case of bench/gpu_cases.txt for a CUDA GPU
# into one folder of artifacts that bench/gpu.sh runs on the GPU machine
# with mfx-runner, which needs no LLVM.
#   bench/gpu_prepare.sh [BUILD_DIR] [OUT_DIR] [SM]    (build, gpu-artifacts, sm_80)
# SM "cpu" compiles host artifacts instead (a smoke test of the scripts).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
out=${2:-gpu-artifacts}
sm=${3:-sm_80}
target=cuda:$sm
[ "$sm" = cpu ] && target=cpu
mkdir -p "$out"
rm -f "$out/cases.txt.new"
n=0
while read -r op dims baseline; do
  case "$op" in ''|'#'*) continue ;; esac
  n=$((n + 1))
  "$build/bin/mfx" compile "$op" --dims "$dims" --target "$target" -o "$out/case$n.mfxa" >/dev/null
  printf '%s %s %s %s\n' "case$n.mfxa" "$op" "$dims" "$baseline" >>"$out/cases.txt.new"
done <"$here/gpu_cases.txt"
mv "$out/cases.txt.new" "$out/cases.txt"
echo "gpu_prepare: $n artifacts for $target in $out"
