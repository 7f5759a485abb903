#!/usr/bin/env bash
# An MoE layer in an application and in mfx-runner: `cmake --install` into
# a temporary prefix; a layer compiled by the installed `mfx compile-layer`;
# its weights written by numpy (safetensors); examples/embed_moe
# built against the prefix with find_package(mfx) (shared and static) and
# with pkg-config, with no LLVM in it (ldd), run and checked against the
# reference; mfx-runner --weights --check; and each error with its exit
# status and message: weights for other dims, of the wrong shape or dtype,
# truncated, a batch above the largest bucket, usage errors.
#
# Environment: MFX_BIN (the build's bin directory; the build is its parent),
# MFX_SOURCE_DIR (the source tree).
set -u

source "$(dirname "$0")/lib.sh"
test_setup embed_moe
BUILD=$(cd "$BIN/.." && pwd)
SOURCE="${MFX_SOURCE_DIR:-.}"
PREFIX="$TMP/prefix"

if [[ ! -x "$PY" ]] || ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 with numpy not found; no weights file can be written ******"
  exit 0
fi

# ---- install, a layer, its weights ------------------------------------------------------
check_run "cmake --install" cmake --install "$BUILD" --prefix "$PREFIX"
[[ -e "$PREFIX/include/mfx/moe.h" ]] && passed=$((passed + 1)) || fail "moe.h not installed"
L="$TMP/layer.mfxa"
check_run "mfx compile-layer" "$PREFIX/bin/mfx" compile-layer --dim 8 --hidden 16 \
  --experts mult,shift,null --k 2 --buckets 16,32 -o "$L"
# Weights files written by numpy alone (the safetensors layout of docs/moe_layer.md).
"$PY" - "$TMP" <<'PYEOF'
import json, struct, sys
import numpy as np
d = sys.argv[1]
r = np.random.default_rng(5)
def write(path, tensors, meta):
    h, off, blobs = {"__metadata__": meta}, 0, []
    for name, (dtype, a) in tensors.items():
        b = a.tobytes()
        h[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    t = json.dumps(h).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(t)))
        f.write(t)
        for b in blobs:
            f.write(b)
def meta(D):
    return {"format": "mfx-moe-1", "dim": str(D), "hidden": "16", "k": "2",
            "experts": "mult,shift,null"}
def f32(*shape, scale=0.0):
    return ("F32", r.uniform(-scale, scale, shape).astype("<f4"))
def layer(D):
    return {"router.weight": f32(3, D, scale=1), "experts.0.w1": f32(16, D, scale=.4),
            "experts.0.w2": f32(D, 16, scale=.3), "experts.1.w1": f32(16, D, scale=.4),
            "experts.1.w2": f32(D, 16, scale=.3)}
write(d + "/w.safetensors", layer(8), meta(8))
write(d + "/w4.safetensors", layer(4), meta(4))
write(d + "/shape.safetensors", {**layer(8), "router.weight": f32(3, 7)}, meta(8))
write(d + "/dtype.safetensors",
      {**layer(8), "experts.1.w2": ("F16", np.zeros((8, 16), "<f2"))}, meta(8))
np.save(d + "/x.npy", r.uniform(-1, 1, (27, 8)).astype(np.float32))
np.save(d + "/x33.npy", r.uniform(-1, 1, (33, 8)).astype(np.float32))
np.save(d + "/xi.npy", r.integers(0, 9, (27, 8)).astype(np.int32))
PYEOF
[[ -e "$TMP/w.safetensors" ]] && passed=$((passed + 1)) || fail "weights not written"
head -c 300 "$TMP/w.safetensors" > "$TMP/short.safetensors"

# ---- examples/embed_moe, three ways, no LLVM -------------------------------------------------
FLAGS=""
if readelf -d "$PREFIX/lib/libmfxrt.so" | grep -q 'libasan'; then
  FLAGS="-fsanitize=address,undefined"
fi
build_example embed_moe
export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
EMBEDS=("$TMP/shared/mfx-embed-moe" "$TMP/static/mfx-embed-moe" "$TMP/embed_pc")
sums=()
for e in "${EMBEDS[@]}"; do
  if [[ ! -x "$e" ]]; then fail "$e: not built"; continue; fi
  if ldd "$e" | grep -Eiq 'libLLVM|libsqlite3|libcjson'; then
    fail "ldd $e pulls in LLVM, SQLite or cJSON: $(ldd "$e" | grep -Ei 'llvm|sqlite|cjson')"
  else
    passed=$((passed + 1))
  fi
  if out=$("$e" "$L" "$TMP/w.safetensors" "$TMP/x.npy" "$TMP/$(basename "$(dirname "$e")")_y.npy" 2>&1) &&
     [[ "$out" == *"27 tokens, output sum"* ]]; then
    sums+=("$(echo "$out" | tail -n 1)")
    passed=$((passed + 1))
  else
    fail "$e $L: $out"
  fi
done
if (( ${#sums[@]} == 3 )) && [[ "${sums[0]}" == "${sums[1]}" && "${sums[0]}" == "${sums[2]}" ]]; then
  passed=$((passed + 1))
else
  fail "the embed builds disagree: ${sums[*]:-none}"
fi
check_run "embed (random tokens)" "$TMP/shared/mfx-embed-moe" "$L" "$TMP/w.safetensors"

# ---- mfx-runner --weights ---------------------------------------------------------------------
R="$PREFIX/bin/mfx-runner"
M="$PREFIX/bin/mfx"
expect 0 "max_rel_err" "$R" "$L" --weights "$TMP/w.safetensors" --in X="$TMP/x.npy" \
  --out Y="$TMP/runner_y.npy" --check
check_run "runner output equals the embed's" cmp "$TMP/runner_y.npy" "$TMP/shared_y.npy"
expect 0 ": ok" "$R" "$L" --weights "$TMP/w.safetensors" --check --seed 3
expect 0 "median" "$R" "$L" --weights "$TMP/w.safetensors" --bench --repeat 3

# ---- a layer for a GPU: PTX, run where a GPU is, a clear error where none is --------------------
G="$TMP/gpu.mfxa"
check_run "mfx compile-layer --target cuda:sm_80" "$M" compile-layer --dim 8 --hidden 16 \
  --experts mult,shift,null --k 2 --buckets 16,32 --target cuda:sm_80 -o "$G"
expect 0 "target cuda:sm_80" "$R" "$G" --list
out=$("$R" "$G" --weights "$TMP/w.safetensors" --in X="$TMP/x.npy" --check 2>&1)
rc=$?
if (( rc == 0 )) && [[ "$out" == *": ok"* ]]; then passed=$((passed + 1)) # a GPU is here
elif (( rc == 1 )) && [[ "$out" == *"loading the layer: artifact $G: opening device"* ]]; then
  passed=$((passed + 1))
else
  fail "the cuda layer: exit $rc: $out"
fi

# ---- errors -----------------------------------------------------------------------------------
expect 1 "written for dim=4, but the layer has dim=8" "$R" "$L" --weights "$TMP/w4.safetensors"
expect 1 "tensor router.weight has shape [3, 7]; the layer (D=8, H=16, E=3) expects [3, 8]" \
  "$R" "$L" --weights "$TMP/shape.safetensors"
expect 1 "tensor experts.1.w2 has dtype F16; expected F32" "$R" "$L" \
  --weights "$TMP/dtype.safetensors"
expect 1 "truncated" "$R" "$L" --weights "$TMP/short.safetensors"
expect 1 "weights file $TMP/nope.safetensors" "$R" "$L" --weights "$TMP/nope.safetensors"
expect 1 "a batch of 33 tokens is larger than the layer's largest bucket, 32" \
  "$R" "$L" --weights "$TMP/w.safetensors" --in X="$TMP/x33.npy"
expect 1 "expected f32 [T, 8]" "$R" "$L" --weights "$TMP/w.safetensors" --in X="$TMP/xi.npy"
expect 1 "written for dim=4" "$TMP/shared/mfx-embed-moe" "$L" "$TMP/w4.safetensors"
check_run "mfx compile" "$M" compile linear --dims M=4,N=4,K=4 -o "$TMP/k.mfxa"
expect 1 "has no layer manifest" "$R" "$TMP/k.mfxa" --weights "$TMP/w.safetensors"
expect 1 "not an mfx artifact" "$R" "$TMP/w.safetensors" --weights "$TMP/w.safetensors"
expect 2 "a layer takes one input" "$R" "$L" --weights "$TMP/w.safetensors" --in W="$TMP/x.npy"
expect 2 "--kernel runs one kernel" "$R" "$L" --weights "$TMP/w.safetensors" --kernel 0
expect 2 "--buckets '32,16': expected ascending" "$M" compile-layer --dim 8 --hidden 8 \
  --experts mult --k 1 --buckets 32,16 -o "$TMP/x.mfxa"
expect 2 "--k 3: expected 1..2" "$M" compile-layer --dim 8 --hidden 8 --experts mult,shift \
  --k 3 --buckets 16 -o "$TMP/x.mfxa"
expect 2 "unknown expert kind 'add'" "$M" compile-layer --dim 8 --hidden 8 --experts mult,add \
  --k 1 --buckets 16 -o "$TMP/x.mfxa"
expect 2 "--hidden is required" "$M" compile-layer --dim 8 --experts mult --k 1 --buckets 16 \
  -o "$TMP/x.mfxa"
expect 2 "--target 'gpu'" "$M" compile-layer --dim 8 --hidden 8 --experts mult --k 1 \
  --buckets 16 --target gpu -o "$TMP/x.mfxa"
expect 0 "usage: mfx compile-layer" "$M" help compile-layer

test_summary test_embed_moe
