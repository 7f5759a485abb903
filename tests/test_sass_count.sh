#!/usr/bin/env bash
# bench/sass_count.py, the SASS count of a kernel's inner k-step from the
# sm_90 cubin (ptxas, no cuobjdump): shift_linear's GPU default (form 3, two
# k a step) at 784x128x1024 is at most 3 SASS instructions per term, with
# one IADD3 per two terms and no IMAD, SGXT or byte load; form 2 (the old
# default) counts 4.25 (136 instructions per k). Skipped without ptxas.
#
# Environment: MFX_BIN (the directory holding mfx), MFX_SOURCE_DIR.
set -u
src=${MFX_SOURCE_DIR:-.}
source "$(dirname "$0")/lib.sh"
test_setup sass_count "$MFX"
tool="$src/bench/sass_count.py"
ptxas=${MFX_PTXAS:-/usr/local/cuda/bin/ptxas}
if ! command -v "$ptxas" >/dev/null 2>&1 && ! command -v ptxas >/dev/null 2>&1; then
  echo "SKIP: no ptxas; sass_count.py not run"
  skipped=$((skipped + 1))
  test_summary sass_count
  exit
fi
command -v "$ptxas" >/dev/null 2>&1 || ptxas=$(command -v ptxas)

expect 0 "SASS per term" "$PY" "$tool" --help
expect 0 "terms per step 64" "$PY" "$tool" --mfx "$MFX" --ptxas "$ptxas" --op shift_linear \
  --dims 784,128,1024
per_term=$(sed -n 's/.*: \([0-9.]*\) SASS per term.*/\1/p' <<<"$OUT")
iadd=$(awk '$1 == "IADD3" {print $2}' <<<"$OUT")
if [[ -n "$per_term" ]] && awk -v t="$per_term" 'BEGIN {exit !(t <= 3.0)}' && [[ "$iadd" == 32 ]] &&
   ! grep -qE '^ +(IMAD|SGXT|SGXT\.i|IMAD\.i) ' <<<"$OUT"; then pass
else fail "form 3: $per_term SASS per term, $iadd IADD3 for 64 terms" "$OUT"; fi

expect 0 "k-step" "$PY" "$tool" --mfx "$MFX" --ptxas "$ptxas" --op shift_linear \
  --dims 784,128,1024 --config '{"form":2}'
if grep -q "136 instructions (an inner loop)" <<<"$OUT" &&
   grep -q "4.250 SASS per term" <<<"$OUT"; then pass
else fail "form 2: not 136 instructions, 4.25 per term" "$OUT"; fi

printf 'not an ELF file' >"$TMP/bad.cubin"
expect 1 "not a 64-bit little-endian ELF" "$PY" "$tool" "$TMP/bad.cubin"
expect 2 "--op needs --dims" "$PY" "$tool" --op shift_linear
test_summary sass_count
