#!/usr/bin/env bash
# mfx-runner end to end: its dynamic dependencies (no LLVM, SQLite or cJSON,
# so it can be copied to a GPU machine alone), an artifact of every op
# compiled here and checked against the references, the same random inputs
# as `mfx run`, benchmarks, .npy in and out, and every class of bad input
# (clear message, exit status 2 for usage and 1 for failures, never a crash).
#
# Environment: MFX_BIN (the directory holding mfx and mfx-runner).
set -u

source "$(dirname "$0")/lib.sh"
test_setup runner "$MFX" "$RUNNER"

# ---- dependencies: the runtime and the references only -----------------------
needed=$(readelf -d "$RUNNER" 2>&1 | grep NEEDED)
if [[ -z "$needed" ]]; then
  fail "readelf -d $RUNNER shows no NEEDED entries"
elif echo "$needed" | grep -Eiq 'llvm|sqlite|cjson|mfx'; then
  fail "mfx-runner needs a library it must not: $(echo "$needed" | grep -Ei 'llvm|sqlite|cjson|mfx')"
else
  passed=$((passed + 1))
fi
if ldd "$RUNNER" | grep -Eiq 'libLLVM|libsqlite3|libcjson'; then
  fail "ldd $RUNNER pulls in LLVM, SQLite or cJSON: $(ldd "$RUNNER" | grep -Ei 'llvm|sqlite|cjson')"
else
  passed=$((passed + 1))
fi

# ---- every op, one artifact ------------------------------------------------------
# Each op's dims get values from this list in order: odd sizes, not multiples
# of the tiles.
values=(13 9 11 7 5 3 3 3)
ops=()
compile_args=()
while read -r op; do
  dims_line=$("$MFX" ops "$op" | sed -n 's/^  dims  *//p')
  dims=""
  i=0
  for d in $dims_line; do
    dims+="${dims:+,}$d=${values[$i]}"
    i=$((i + 1))
  done
  ops+=("$op")
  if (( ${#compile_args[@]} == 0 )); then compile_args+=("$op" --dims "$dims")
  else compile_args+=(--op "$op" --dims "$dims"); fi
done < <("$MFX" ops | sed -n 's/^\([a-z_][a-z_0-9]*\): .*/\1/p')
if (( ${#ops[@]} < 5 )); then
  fail "mfx ops listed ${#ops[@]} ops: ${ops[*]}"
fi
ALL="$TMP/all.mfxa"
expect 0 "wrote $ALL: ${#ops[@]} kernels" "$MFX" compile "${compile_args[@]}" -o "$ALL"
expect 0 "" "$RUNNER" "$ALL" --check
oks=$(echo "$OUT" | grep -c '^check .* ok$')
if (( oks != ${#ops[@]} )); then
  fail "--check printed $oks ok lines for ${#ops[@]} ops"
  echo "$OUT" | head -n 30 | sed 's/^/    | /'
else
  passed=$((passed + 1))
fi
expect 0 "max_abs_err=" "$RUNNER" "$ALL" --kernel 0 --check --threads 1
expect 0 "time     median" "$RUNNER" "$ALL" --kernel hamming --bench --repeat 3
expect 0 "input     X f32 [13, 11]" "$RUNNER" "$ALL" --list --kernel linear
expect 2 "--kernel zz: no such kernel" "$RUNNER" "$ALL" --list --kernel zz

# ---- the same random inputs as mfx run -------------------------------------------
# Outputs of both tools on seed 5 agree (byte for byte for integer ops).
expect 0 "" "$MFX" run hamming --dims N=13,M=9,W=11 --seed 5 --out S="$TMP/run.npy"
expect 0 "output   S -> $TMP/runner.npy" "$RUNNER" "$ALL" --kernel hamming --seed 5 \
  --out S="$TMP/runner.npy"
if cmp -s "$TMP/run.npy" "$TMP/runner.npy"; then passed=$((passed + 1))
else fail "mfx run and mfx-runner give different hamming outputs for seed 5"; fi

# ---- inputs from files ---------------------------------------------------------------
if [[ -x "$PY" ]] && "$PY" -c 'import numpy' 2>/dev/null; then
  "$PY" - "$TMP" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
np.save(d + "/x.npy", rng.uniform(-1, 1, (13, 11)).astype(np.float32))
np.save(d + "/w.npy", rng.uniform(-1, 1, (9, 11)).astype(np.float32))
np.save(d + "/w_bad.npy", rng.uniform(-1, 1, (11, 9)).astype(np.float32))
EOF
  expect 0 "ok" "$RUNNER" "$ALL" --kernel linear --in X="$TMP/x.npy" --in W="$TMP/w.npy" \
    --out Y="$TMP/y.npy" --check
  "$PY" - "$TMP" <<'EOF'
import sys, numpy as np
d = sys.argv[1]
x, w, y = (np.load(d + f) for f in ("/x.npy", "/w.npy", "/y.npy"))
ref = x.astype(np.float64) @ w.astype(np.float64).T
err = np.abs(y - ref).max() / np.abs(ref).max()
sys.exit(0 if y.shape == (13, 9) and err < 1e-5 else 1)
EOF
  if (( $? == 0 )); then passed=$((passed + 1)); else fail "linear from .npy inputs differs from numpy"; fi
  expect 1 "input W of kernel linear must be f32 [9, 11]; the file holds f32 [11, 9]" \
    "$RUNNER" "$ALL" --kernel linear --in W="$TMP/w_bad.npy"
else
  echo "SKIP: /usr/bin/python3 with numpy not found; .npy input checks not run **********"
fi

# ---- a kernel that is not what its op says: --check must catch it -----------------
# matadd and binary_attention share an interface when N == C; relabel the
# matadd kernel's op (the op field of its kernel record, docs/artifact.md)
# and reseal the checksum.
LIE="$TMP/lie.mfxa"
expect 0 "" "$MFX" compile matadd --dims B=1,H=2,N=6,D=8,C=6 -o "$TMP/matadd.mfxa"
if [[ -x "$PY" ]]; then
  "$PY" - "$TMP/matadd.mfxa" "$LIE" <<'EOF'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
count = struct.unpack_from("<I", data, 36)[0]
for i in range(count):
    kind, kernel, offset, size = struct.unpack_from("<IIQQ", data, 64 + 32 * i)
    if kind == 1 and kernel == 0:
        data[offset + 64:offset + 128] = b"binary_attention".ljust(64, b"\0")
h = 0xcbf29ce484222325
for i, b in enumerate(data):
    h = ((h ^ (0 if 24 <= i < 32 else b)) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
struct.pack_into("<Q", data, 24, h)
open(sys.argv[2], "wb").write(data)
EOF
  expect 1 "MISMATCH" "$RUNNER" "$LIE" --check
  expect 1 "output differs from the reference" "$RUNNER" "$LIE" --check
else
  echo "SKIP: /usr/bin/python3 not found; relabelled-artifact check not run **********"
fi

# ---- bad inputs ---------------------------------------------------------------------
expect 2 "missing ARTIFACT" "$RUNNER"
expect 0 "usage: mfx-runner ARTIFACT" "$RUNNER" --help
expect 1 "cannot open: No such file or directory" "$RUNNER" "$TMP/missing.mfxa"
head -c 1000 "$ALL" > "$TMP/short.mfxa"
expect 1 "truncated" "$RUNNER" "$TMP/short.mfxa"
cp "$ALL" "$TMP/flipped.mfxa"
printf '\x55' | dd of="$TMP/flipped.mfxa" bs=1 seek=5000 conv=notrunc status=none
expect 1 "checksum mismatch (file truncated or modified?)" "$RUNNER" "$TMP/flipped.mfxa"
expect 1 "not an mfx artifact" "$RUNNER" "$RUNNER"
expect 2 "no kernel \"nope\"" "$RUNNER" "$ALL" --kernel nope
expect 2 "--in and --out need --kernel" "$RUNNER" "$ALL" --in X="$TMP/x.npy"
expect 2 "kernel linear has no input named Q" "$RUNNER" "$ALL" --kernel linear --in Q="$TMP/x.npy"
expect 2 "kernel linear has no output named Z" "$RUNNER" "$ALL" --kernel linear --out Z="$TMP/z.npy"
expect 1 "cannot" "$RUNNER" "$ALL" --kernel linear --in X="$TMP/does_not_exist.npy"
expect 2 "--repeat counts the runs of --bench" "$RUNNER" "$ALL" --repeat 3
expect 2 "--repeat: '0' is out of range; expected a whole number in 1..1000000" "$RUNNER" "$ALL" --bench --repeat 0
expect 2 "--tol: 'x' is not a number" "$RUNNER" "$ALL" --tol x
expect 2 "--seed: '-1' is not a non-negative" "$RUNNER" "$ALL" --seed -1
expect 2 "unknown option '--frobnicate'" "$RUNNER" "$ALL" --frobnicate
expect 2 "is not NAME=FILE.npy" "$RUNNER" "$ALL" --kernel linear --in X
expect 2 "unexpected argument" "$RUNNER" "$ALL" "$ALL"
expect 1 "targets cpu and cannot run on device cuda" "$RUNNER" "$ALL" --device cuda
expect 1 "" "$RUNNER" "$ALL" --device gpu

# ---- mfx compile's own errors -----------------------------------------------------------
expect 2 "give -o FILE.mfxa" "$MFX" compile linear --dims M=8,N=8,K=8
expect 2 "--target 'tpu'" "$MFX" compile linear --dims M=8,N=8,K=8 --target tpu -o "$TMP/x.mfxa"
expect 2 "--emit ptx is GPU code" "$MFX" compile linear --dims M=8,N=8,K=8 --emit ptx
expect 2 "--emit obj: give -o FILE.o" "$MFX" compile linear --dims M=8,N=8,K=8 --emit obj
expect 2 "writes the code of one op" "$MFX" compile linear --dims M=8,N=8,K=8 --op hamming \
  --dims N=8,M=8,W=2 --emit ll
expect 2 "--dims before any op" "$MFX" compile --dims M=8 -o "$TMP/x.mfxa"
expect 2 "missing --dims" "$MFX" compile linear -o "$TMP/x.mfxa"
expect 2 "unknown op 'nope'" "$MFX" compile nope --dims M=8 -o "$TMP/x.mfxa"
expect 2 "--name a: the artifact already has a kernel" "$MFX" compile linear --dims M=8,N=8,K=8 \
  --name a --op hamming --dims N=8,M=8,W=2 --name a -o "$TMP/x.mfxa"
expect 2 "--name linear: the artifact already has a kernel" "$MFX" compile --add "$ALL" linear \
  --dims M=8,N=8,K=8 --name linear -o "$TMP/x.mfxa"
expect 1 "a kernel named linear is already in the artifact" "$MFX" compile --add "$ALL" \
  --add "$ALL" -o "$TMP/x.mfxa"
expect 1 "checksum mismatch" "$MFX" compile --add "$TMP/flipped.mfxa" -o "$TMP/x.mfxa"

# ---- a GPU artifact of every op ------------------------------------------------------
# Compiled with each op's GPU template; it lists without a GPU, fails to
# load without a driver saying why, and on the fake driver of tests/fake_cuda
# its PTX loads and its launches run (the fake computes nothing for them, so
# no --check: that is for a real GPU, e.g. bench/gpu.sh).
GPU="$TMP/gpu.mfxa"
expect 0 "wrote $GPU: ${#ops[@]} kernels" "$MFX" compile "${compile_args[@]}" \
  --target cuda:sm_80 -o "$GPU"
expect 0 "launch   linear_k0 grid" "$RUNNER" "$GPU" --list
expect 0 ".entry linear_k0(" "$MFX" compile linear --dims M=4,N=4,K=4 --target cuda:sm_80 \
  --emit ptx
expect 0 "target triple = \"nvptx64-nvidia-cuda\"" "$MFX" compile linear --dims M=4,N=4,K=4 \
  --target cuda:sm_90 --emit ll
expect 2 "--emit obj is host code" "$MFX" compile linear --dims M=4,N=4,K=4 --target cuda:sm_80 \
  --emit obj -o "$TMP/g.o"
expect 1 "opening device cuda: no CUDA driver found (/nonexistent/libcuda.so.1)" \
  env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$RUNNER" "$GPU"
expect 1 "kernel linear targets cuda:sm_80 and cannot run on device cpu" \
  "$RUNNER" "$GPU" --device cpu
if cc -std=gnu11 -O1 -shared -fPIC -o "$TMP/libcuda.so.1" \
     "${MFX_SOURCE_DIR:-.}/tests/fake_cuda/fake_cuda.c" -lpthread 2>"$TMP/fake.log"; then
  OUT=$(MFX_CUDA_LIBRARY="$TMP/libcuda.so.1" "$RUNNER" "$GPU" --bench --repeat 2 2>&1)
  timed=$(echo "$OUT" | grep -c '^time .* on cuda:0$')
  if [[ "$OUT" == *"without CUDA headers"* ]]; then
    echo "SKIP: the runtime has no CUDA support; fake-driver run not checked **********"
  elif (( timed == ${#ops[@]} )); then passed=$((passed + 1))
  else
    fail "a GPU artifact on the fake driver: $timed of ${#ops[@]} kernels timed"
    echo "$OUT" | head -n 20 | sed 's/^/    | /'
  fi
else
  fail "building tests/fake_cuda/fake_cuda.c: $(head -n 5 "$TMP/fake.log")"
fi

# --add keeps kernels and names; a second op of the same kind gets op_2.
expect 0 "wrote $TMP/more.mfxa: $(( ${#ops[@]} + 1 )) kernels" "$MFX" compile --add "$ALL" \
  linear --dims M=4,N=4,K=4 -o "$TMP/more.mfxa"
expect 0 "linear_2" "$RUNNER" "$TMP/more.mfxa" --kernel linear_2 --check
expect 0 "" "$MFX" compile hamming --dims N=8,M=8,W=2 --emit obj -o "$TMP/h.o"
expect 0 "define" "$MFX" compile hamming --dims N=8,M=8,W=2 --emit ll

test_summary test_runner
