#!/usr/bin/env bash
# Embedding the runtime: `cmake --install` into a temporary prefix, an
# artifact compiled by the installed mfx, examples/embed built against the
# prefix with find_package(mfx) (shared and static runtime) and with
# pkg-config, and its outputs compared with `mfx run` on the same inputs.
#
# Environment: MFX_BIN (the build's bin directory; the build is its parent),
# MFX_SOURCE_DIR (the source tree).
set -u

source "$(dirname "$0")/lib.sh"
test_setup embed
BUILD=$(cd "$BIN/.." && pwd)
SOURCE="${MFX_SOURCE_DIR:-.}"
PREFIX="$TMP/prefix"

# ---- install ---------------------------------------------------------------------
check_run "cmake --install" cmake --install "$BUILD" --prefix "$PREFIX"
for f in include/mfx/artifact.h include/mfx/runtime.h include/mfx/device.h \
         lib/libmfxrt.so lib/libmfx_runtime.a bin/mfx bin/mfx-runner \
         lib/cmake/mfx/mfxConfig.cmake lib/cmake/mfx/mfxConfigVersion.cmake \
         lib/pkgconfig/mfx-runtime.pc; do
  if [[ -e "$PREFIX/$f" ]]; then passed=$((passed + 1)); else fail "not installed: $f"; fi
done

# A sanitized runtime needs the sanitizer runtimes in whatever links it.
FLAGS=""
if readelf -d "$PREFIX/lib/libmfxrt.so" | grep -q 'libasan'; then
  FLAGS="-fsanitize=address,undefined"
fi

# ---- an artifact from the installed compiler ----------------------------------------
K="$TMP/k.mfxa"
check_run "mfx compile" "$PREFIX/bin/mfx" compile linear --dims M=13,N=9,K=11 \
  --op hamming --dims N=7,M=5,W=3 -o "$K"

# ---- examples/embed, three ways ----------------------------------------------------------
build_example embed
if ldd "$TMP/static/mfx-embed" | grep -q libmfxrt; then
  fail "the static build links libmfxrt.so"
else
  passed=$((passed + 1))
fi

EMBEDS=("$TMP/shared/mfx-embed" "$TMP/static/mfx-embed" "$TMP/embed_pc")
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- the same answers as mfx run -----------------------------------------------------------
# Random inputs: every build prints the same checksums.
sums=()
for e in "${EMBEDS[@]}"; do
  if [[ -x "$e" ]] && out=$("$e" "$K" --kernel hamming 2>&1); then
    sums+=("$out")
    passed=$((passed + 1))
  else
    fail "$e $K --kernel hamming: ${out:-not built}"
  fi
done
if (( ${#sums[@]} == 3 )) && [[ "${sums[0]}" == "${sums[1]}" && "${sums[0]}" == "${sums[2]}" &&
      "${sums[0]}" == *"output S i32 numel 35"* ]]; then
  passed=$((passed + 1))
else
  fail "the embed builds disagree or print no checksum: ${sums[*]:-none}"
fi

if [[ -x "$PY" ]] && "$PY" -c 'import numpy' 2>/dev/null; then
  "$PY" - "$TMP" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(11)
np.save(d + "/x.npy", rng.uniform(-1, 1, (13, 11)).astype(np.float32))
np.save(d + "/w.npy", rng.uniform(-1, 1, (9, 11)).astype(np.float32))
np.save(d + "/q.npy", rng.integers(0, 2**32, (7, 3), dtype=np.uint32))
np.save(d + "/kb.npy", rng.integers(0, 2**32, (5, 3), dtype=np.uint32))
EOF
  check_run "mfx run linear" "$PREFIX/bin/mfx" run linear --dims M=13,N=9,K=11 \
    --in X="$TMP/x.npy" --in W="$TMP/w.npy" --out Y="$TMP/run_y.npy"
  check_run "mfx run hamming" "$PREFIX/bin/mfx" run hamming --dims N=7,M=5,W=3 \
    --in Q="$TMP/q.npy" --in K="$TMP/kb.npy" --out S="$TMP/run_s.npy"
  for e in "${EMBEDS[@]}"; do
    name=$(basename "$(dirname "$e")")_$(basename "$e")
    check_run "$e linear" "$e" "$K" --kernel linear --in "$TMP/x.npy" --in "$TMP/w.npy" \
      --out "$TMP/${name}_y.npy"
    check_run "$e hamming" "$e" "$K" --kernel hamming --in "$TMP/q.npy" --in "$TMP/kb.npy" \
      --out "$TMP/${name}_s.npy"
    check_run "$e linear equals mfx run" "$PY" -c '
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.allclose(a, b, rtol=1e-5, atol=1e-6) else 1)' \
      "$TMP/run_y.npy" "$TMP/${name}_y.npy"
    check_run "$e hamming equals mfx run" cmp "$TMP/run_s.npy" "$TMP/${name}_s.npy"
  done
else
  echo "SKIP: /usr/bin/python3 with numpy not found; outputs not compared with mfx run ******"
fi

# ---- errors reach the application ------------------------------------------------------------
head -c 500 "$K" > "$TMP/short.mfxa"
out=$("$TMP/shared/mfx-embed" "$TMP/short.mfxa" 2>&1)
if (( $? == 1 )) && [[ "$out" == *"mfx-embed: load: artifact $TMP/short.mfxa: truncated"* ]]; then
  passed=$((passed + 1))
else
  fail "a truncated artifact: $out"
fi
out=$("$TMP/shared/mfx-embed" "$K" --kernel linear --in "$TMP/q.npy" 2>&1)
if (( $? == 1 )) && [[ "$out" == *"input X must be f32"* ]]; then passed=$((passed + 1))
elif [[ ! -e "$TMP/q.npy" ]]; then passed=$((passed + 1)) # no numpy: nothing to feed
else fail "a wrong input file: $out"; fi

test_summary test_embed
