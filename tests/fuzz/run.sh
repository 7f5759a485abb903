#!/bin/bash
# Run one libFuzzer program: run.sh FUZZER SECONDS SEED_DIR [REGRESSION_DIR]
# First every seed and regression once (each must pass), then SECONDS of
# fuzzing from the seeds into a scratch corpus (deleted afterwards), with a
# fixed -seed so that a run is repeatable. New crashes are written to
# $MFX_FUZZ_ARTIFACTS (default: the current directory) as crash-*.
set -euo pipefail
fuzzer=$1 seconds=$2
shift 2
name=$(basename "$fuzzer")
work=$(mktemp -d "${TMPDIR:-/tmp}/mfx-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=${MFX_FUZZ_ARTIFACTS:-$PWD}
mkdir -p "$artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "$name: replaying $(find "$@" -type f | wc -l) seeds and regressions"
"$fuzzer" -runs=0 "$@" > "$work/replay.log" 2>&1 || { cat "$work/replay.log"; exit 1; }
echo "$name: fuzzing for ${seconds}s"
mkdir "$work/corpus"
"$fuzzer" -max_total_time="$seconds" -seed=1 -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$work/corpus" "$1" \
  > "$work/fuzz.log" 2>&1 || { tail -60 "$work/fuzz.log"; exit 1; }
grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE" "$work/fuzz.log" || true
echo "$name: corpus grew to $(ls "$work/corpus" | wc -l) inputs"
