#!/usr/bin/env bash
# On a GPU machine: run every artifact of bench/gpu_prepare.sh with
# mfx-runner (checked against the plain-C reference first), time it with
# CUDA events, time the dense fp32 baseline with PyTorch on the same GPU in
# the same run, and print a table and JSON of the ratios.
#   bench/gpu.sh [--runner PATH] [--dir ARTIFACTS] [--json OUT.json] [--device cuda|cpu]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runner=build/bin/mfx-runner
dir=gpu-artifacts
json=gpu-results.json
device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --runner) runner=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) echo "usage: bench/gpu.sh [--runner PATH] [--dir ARTIFACTS] [--json OUT] [--device D]" >&2; exit 2 ;;
  esac
done
[ -x "$runner" ] || { echo "gpu.sh: no runner at $runner" >&2; exit 1; }
[ -f "$dir/cases.txt" ] || { echo "gpu.sh: $dir/cases.txt missing; run bench/gpu_prepare.sh" >&2; exit 1; }
python=${PYTHON:-python3}
rows=()
status=0
while read -r file op dims baseline; do
  log=$("$runner" "$dir/$file" --device "$device" --check --bench --repeat 50 2>&1)
  rc=$?
  ms=$(printf '%s\n' "$log" | awk '/median/ { for (i = 1; i <= NF; i++) if ($i == "median") print $(i + 1) }' | head -1)
  ok=$([ $rc = 0 ] && echo true || echo false)
  [ $rc = 0 ] || { status=1; printf '%s\n' "$log" >&2; }
  base=$("$python" "$here/gpu_baseline.py" "$baseline" "$dims" --device "$device" 2>/dev/null || echo nan)
  rows+=("$op|$dims|$baseline|${ms:-nan}|$base|$ok")
done <"$dir/cases.txt"
printf '%-17s %-26s %-16s %9s %9s %8s %s\n' op dims baseline "mfx ms" "base ms" speedup check
entries=""
for r in "${rows[@]}"; do
  IFS='|' read -r op dims baseline ms base ok <<<"$r"
  speed=$(awk -v a="$base" -v b="$ms" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.3f", a / b; else print "nan" }')
  printf '%-17s %-26s %-16s %9s %9s %7sx %s\n' "$op" "$dims" "$baseline" "$ms" "$base" "$speed" \
    "$([ "$ok" = true ] && echo ok || echo FAILED)"
  entries+="${entries:+,$'\n'}  {\"op\": \"$op\", \"dims\": \"$dims\", \"baseline\": \"$baseline\", \"mfx_ms\": \"$ms\", \"baseline_ms\": \"$base\", \"speedup\": \"$speed\", \"ok\": $ok}"
done
printf '{"device": "%s", "results": [\n%s\n]}\n' "$device" "$entries" >"$json"
echo "gpu.sh: results in $json" >&2
exit $status
