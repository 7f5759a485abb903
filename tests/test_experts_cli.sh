#!/usr/bin/env bash
# mfx experts and mfx loss end to end: the latency table (text, JSON with
# alpha of the right length and mean 1, the saved file keyed by device, the
# default path, the SVG plot), the router losses against python's
# mfx.router_loss on the same logits, and every class of bad input (exit 2
# for usage errors, 1 for failures, a message, never a crash).
#
# Environment: MFX_BIN (the directory holding mfx), MFX_LIB_DIR (libmfxrt.so
# for the python side); run from the source tree.
set -u

source "$(dirname "$0")/lib.sh"
python_package
unset MFX_LATENCY
test_setup experts "$MFX"
python_preloaded
EXPECT_STDOUT=1 # OUT: stdout alone

# check WHAT PYTHON-CODE: runs the code (with mfx, numpy, json imported and
# argv after it); a failed assertion is a failed check.
check() {
  local what=$1
  shift
  local out
  if out=$("$PY" -c "import json, sys; import numpy as np; import mfx
$1" "${@:2}" 2>&1); then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $what"
    echo "$out" | tail -n 8 | sed 's/^/    | /'
  fi
}

SMALL=(--tokens 32 --dim 8 --hidden 16 --min-time 0.001)

# ---- mfx experts ----------------------------------------------------------------

expect 0 "alpha" "$MFX" experts "${SMALL[@]}" --out "$TMP/lat.json" --plot "$TMP/lat.svg"
[[ "$OUT" == *"mult"* && "$OUT" == *"shift"* && "$OUT" == *"r2"* ]] ||
  { failed=$((failed + 1)); echo "FAIL: experts table lacks its rows: $OUT"; }
check "the saved table has this host's key, 2 experts, alpha of mean 1" '
t = json.load(open(sys.argv[1]))
assert t["format"] == "mfx-latency-1"
e = t["devices"][mfx.host_key()]
assert [x["name"] for x in e["experts"]] == ["mult", "shift"]
assert [x["tokens"] for x in e["experts"]][0] == [4, 8, 16, 32]
assert len(e["alpha"]) == 2 and abs(sum(e["alpha"]) / 2 - 1) < 1e-9
assert e["at_tokens"] == 16' "$TMP/lat.json"
check "the plot is an SVG with axes and one measured polyline and fit line per expert" '
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg"
assert len(root.findall(ns + "polyline")) == 2
assert len([l for l in root.findall(ns + "line") if l.get("stroke-dasharray")]) == 2
texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
assert "tokens per expert" in texts and "latency (ms)" in texts and "alpha" in texts' "$TMP/lat.svg"

expect 0 '"alpha"' "$MFX" experts "${SMALL[@]}" --experts shift,mult,shift --json --out "$TMP/lat.json"
check "--json prints one table: alpha of length 3, mean 1, fits and points" '
t = json.loads(sys.argv[1])
assert len(t["alpha"]) == 3 and abs(np.mean(t["alpha"]) - 1) < 1e-9
assert [x["name"] for x in t["experts"]] == ["shift", "mult", "shift"]
for x in t["experts"]:
    assert len(x["tokens"]) == len(x["seconds"]) == 4 and x["latency"] > 0
lat = np.array([x["latency"] for x in t["experts"]])
assert np.allclose(t["alpha"], lat / lat.mean())' "$OUT"
check "saving again replaced this host's table and kept the file valid" '
t = json.load(open(sys.argv[1]))
assert len(t["devices"]) == 1
assert len(t["devices"][mfx.host_key()]["alpha"]) == 3' "$TMP/lat.json"

# shift16 (opt-in): measured like the others, named in the table
expect 0 '"alpha"' "$MFX" experts "${SMALL[@]}" --experts mult,shift16 --json
check "--experts mult,shift16 measures both" '
t = json.loads(sys.argv[1])
assert [x["name"] for x in t["experts"]] == ["mult", "shift16"]
assert all(x["latency"] > 0 for x in t["experts"])' "$OUT"

mkdir -p "$TMP/home"
expect 0 "saved the table" env HOME="$TMP/home" "$MFX" experts "${SMALL[@]}" --experts mult
[[ -f "$TMP/home/.cache/mfx/latency.json" ]] ||
  { failed=$((failed + 1)); echo "FAIL: no table at the default path ~/.cache/mfx/latency.json"; }
expect 0 "" env MFX_LATENCY="$TMP/env.json" "$MFX" experts "${SMALL[@]}" --experts mult
[[ -f "$TMP/env.json" ]] || { failed=$((failed + 1)); echo "FAIL: \$MFX_LATENCY was not used"; }

expect 0 "usage: mfx experts" "$MFX" experts --help
expect 0 "usage: mfx experts" "$MFX" help experts
expect 2 "--tokens, --dim and --hidden are required" "$MFX" experts --dim 8 --hidden 16
expect 2 "unknown expert kind 'foo'; expected mult, shift, shift16 or null" "$MFX" experts \
  "${SMALL[@]}" --experts mult,foo
expect 2 "null experts cost nothing" "$MFX" experts "${SMALL[@]}" --experts mult,null
expect 2 "--target 'gpu'; expected cpu, cuda, cuda:N or emulate" "$MFX" experts "${SMALL[@]}" --target gpu
expect 2 "--target 'cuda:x'" "$MFX" experts "${SMALL[@]}" --target cuda:x
expect 1 "opening target 'cuda'" env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 \
  "$MFX" experts "${SMALL[@]}" --target cuda --out "$TMP/nogpu.json"
[[ ! -e "$TMP/nogpu.json" ]] || { failed=$((failed + 1)); echo "FAIL: a table without a GPU"; }
# The GPU kernels, emulated on the CPU: the table is keyed by that target,
# beside this host's own table in the same file.
expect 0 "saved the table of 'emulate: " "$MFX" experts "${SMALL[@]}" --target emulate \
  --json --out "$TMP/lat.json"
check "an emulated-GPU table sits beside the CPU's" '
t = json.load(open(sys.argv[1]))
keys = list(t["devices"])
assert mfx.host_key() in keys, keys
gpu = [k for k in keys if k.startswith("emulate: ")]
assert len(gpu) == 1, keys
assert t["devices"][gpu[0]]["target"] == "emulate"
assert abs(sum(t["devices"][gpu[0]]["alpha"]) - 2.0) < 1e-9' "$TMP/lat.json"
expect 2 "--tokens: '1' is out of range; expected a whole number in 2.." "$MFX" experts --tokens 1 --dim 8 --hidden 16
expect 2 "--dim: '0'" "$MFX" experts --tokens 64 --dim 0 --hidden 16
expect 2 "--tokens needs a value" "$MFX" experts --dim 8 --hidden 16 --tokens
expect 2 "experts: unknown option '--bogus' (see mfx help experts)" "$MFX" experts "${SMALL[@]}" --bogus
expect 1 "cannot write the table" "$MFX" experts "${SMALL[@]}" --out "$TMP/no/such/dir/lat.json"
echo "not json" > "$TMP/corrupt.json"
expect 1 "not an mfx latency table" "$MFX" experts "${SMALL[@]}" --out "$TMP/corrupt.json"
[[ "$(cat "$TMP/corrupt.json")" == "not json" ]] ||
  { failed=$((failed + 1)); echo "FAIL: a corrupt table was overwritten"; }
expect 1 "cannot write the plot" "$MFX" experts "${SMALL[@]}" --out "$TMP/lat.json" --plot "$TMP/no/dir/p.svg"

# ---- mfx loss against python's mfx.router_loss -------------------------------------

"$PY" -c "
import numpy as np
rng = np.random.default_rng(7)
np.save('$TMP/z.npy', rng.normal(size=(4, 25, 3)).astype(np.float32))
np.save('$TMP/z64.npy', rng.normal(size=(10, 3)))
np.save('$TMP/z1.npy', rng.normal(size=(10,)).astype(np.float32))"

# compare KIND K LATENCY(python literal or None) MFX-ARGS...
compare() {
  local kind=$1 k=$2 latency=$3
  shift 3
  expect 0 '"loss"' "$MFX" loss "$kind" --logits "$TMP/z.npy" --k "$k" --json \
    --grad-out "$TMP/g.npy" "$@"
  check "mfx loss $kind k=$k $* equals mfx.router_loss" '
got = json.loads(sys.argv[1])
z = np.load(sys.argv[2])
loss, grad = mfx.router_loss(z, sys.argv[3], k=int(sys.argv[4]), latency=eval(sys.argv[5]))
assert abs(got["loss"] - loss) <= 1e-12 * max(1.0, abs(loss)), (got["loss"], loss)
assert got["tokens"] == 100 and got["experts"] == 3 and got["k"] == int(sys.argv[4])
g = np.load(sys.argv[6])
assert g.shape == z.shape and g.dtype == np.float32
assert np.array_equal(g, grad)
assert sum(got["counts"]) == 100 * int(sys.argv[4])' \
    "$OUT" "$TMP/z.npy" "$kind" "$k" "$latency" "$TMP/g.npy"
}

compare switch 1 None
compare switch 2 None
compare zloss 1 None
compare latency 1 "[1.5, 0.5, 1.0]" --latency 1.5,0.5,1.0
compare latency 2 "[3e-3, 1e-3, 2e-3]" --latency=3e-3,1e-3,2e-3
check "the experts table of 3 experts gives its alpha" '
t = mfx.load_latency(sys.argv[1])
print(",".join(repr(a) for a in t["alpha"]))' "$TMP/lat.json"
ALPHA=$("$PY" -c "import mfx; print(list(mfx.load_latency('$TMP/lat.json')['alpha']))")
compare latency 1 "$ALPHA" --latency "$TMP/lat.json"

# the noisy top-k gate: --noise-logits, --noise-eps, --load against mfx.noisy_router_loss
"$PY" -c "
import numpy as np
rng = np.random.default_rng(8)
np.save('$TMP/r.npy', rng.normal(size=(4, 25, 3)).astype(np.float32))
np.save('$TMP/eps.npy', rng.normal(size=(4, 25, 3)).astype(np.float32))
np.save('$TMP/r_bad.npy', rng.normal(size=(4, 25, 2)).astype(np.float32))"
compare_noisy() {
  local kind=$1 k=$2 latency=$3 load=$4 eps=$5
  shift 5
  expect 0 '"load_kind"' "$MFX" loss "$kind" --logits "$TMP/z.npy" --k "$k" --json \
    --noise-logits "$TMP/r.npy" --load "$load" --grad-out "$TMP/g.npy" \
    --grad-noise-out "$TMP/gr.npy" "$@"
  check "mfx loss $kind k=$k --load $load $* equals mfx.noisy_router_loss" '
got = json.loads(sys.argv[1])
z, r = np.load(sys.argv[2]), np.load(sys.argv[3])
eps = None if sys.argv[4] == "none" else np.load(sys.argv[4])
k, load = int(sys.argv[6]), sys.argv[8]
loss, gz, gr = mfx.noisy_router_loss(z, r, eps, sys.argv[5], k=k, latency=eval(sys.argv[7]),
                                     load=load)
assert abs(got["loss"] - loss) <= 1e-12 * max(1.0, abs(loss)), (got["loss"], loss)
assert got["load_kind"] == load
assert np.allclose(got["load"], mfx.noisy_load(z, r, eps, k=k, load=load), rtol=1e-12)
assert np.array_equal(np.load(sys.argv[9]), gz) and np.array_equal(np.load(sys.argv[10]), gr)
assert (load == "hard") == (not gr.any())' \
    "$OUT" "$TMP/z.npy" "$TMP/r.npy" "$eps" "$kind" "$k" "$latency" "$load" "$TMP/g.npy" \
    "$TMP/gr.npy"
}
compare_noisy latency 1 "[1.5, 0.5, 1.0]" smooth none --latency 1.5,0.5,1.0
compare_noisy latency 2 "[1.5, 0.5, 1.0]" smooth "$TMP/eps.npy" --latency 1.5,0.5,1.0 \
  --noise-eps "$TMP/eps.npy"
compare_noisy switch 1 None hard "$TMP/eps.npy" --noise-eps "$TMP/eps.npy"
compare_noisy switch 2 None smooth "$TMP/eps.npy" --noise-eps "$TMP/eps.npy"
expect 0 "load     smooth (noisy gate)" "$MFX" loss switch --logits "$TMP/z.npy" \
  --noise-logits "$TMP/r.npy"
expect 2 "need --noise-logits" "$MFX" loss switch --logits "$TMP/z.npy" --load hard
expect 2 "need --noise-logits" "$MFX" loss switch --logits "$TMP/z.npy" --noise-eps "$TMP/eps.npy"
expect 2 "unknown load 'soft'; expected smooth or hard" "$MFX" loss switch --logits "$TMP/z.npy" \
  --noise-logits "$TMP/r.npy" --load soft
expect 2 "zloss has no load term" "$MFX" loss zloss --logits "$TMP/z.npy" --noise-logits "$TMP/r.npy"
expect 1 "expected f32 shaped like the logits" "$MFX" loss switch --logits "$TMP/z.npy" \
  --noise-logits "$TMP/r_bad.npy"
expect 1 "loss: --noise-eps: npy" "$MFX" loss switch --logits "$TMP/z.npy" \
  --noise-logits "$TMP/r.npy" --noise-eps "$TMP/z64.npy"
expect 1 "cannot open" "$MFX" loss switch --logits "$TMP/z.npy" --noise-logits "$TMP/missing.npy"

expect 0 "loss     switch" "$MFX" loss switch --logits "$TMP/z.npy"
expect 0 "usage: mfx loss" "$MFX" loss --help
expect 2 "unknown kind 'bogus'" "$MFX" loss bogus --logits "$TMP/z.npy"
expect 2 "needs KIND and --logits" "$MFX" loss switch
expect 2 "needs --latency" "$MFX" loss latency --logits "$TMP/z.npy"
expect 2 "applies to the latency loss only" "$MFX" loss switch --logits "$TMP/z.npy" --latency 1,2,3
expect 2 "--latency: '1,,2' has an empty" "$MFX" loss latency --logits "$TMP/z.npy" --latency 1,,2
expect 2 "--latency: 'x' is not a number" "$MFX" loss latency --logits "$TMP/z.npy" --latency 1,x,2
expect 2 "--k: '0'" "$MFX" loss switch --logits "$TMP/z.npy" --k 0
expect 2 "loss: unexpected argument 'extra' after KIND 'switch'" "$MFX" loss switch extra --logits "$TMP/z.npy"
expect 1 "cannot open" "$MFX" loss switch --logits "$TMP/missing.npy"
expect 1 "k=5" "$MFX" loss switch --logits "$TMP/z.npy" --k 5
expect 1 "2 latencies for E=3 experts" "$MFX" loss latency --logits "$TMP/z.npy" --latency 1,2
expect 1 "latency[1]=0" "$MFX" loss latency --logits "$TMP/z.npy" --latency 1,0,2
expect 1 "expected f32 logits" "$MFX" loss switch --logits "$TMP/z1.npy"
expect 1 "" "$MFX" loss switch --logits "$TMP/z64.npy"
expect 1 "no table for device 'nope'" "$MFX" loss latency --logits "$TMP/z.npy" \
  --latency "$TMP/lat.json" --device nope
expect 1 "not an mfx latency table" "$MFX" loss latency --logits "$TMP/z.npy" \
  --latency "$TMP/corrupt.json"
expect 1 "--grad-out" "$MFX" loss switch --logits "$TMP/z.npy" --grad-out "$TMP/no/dir/g.npy"

test_summary test_experts_cli
