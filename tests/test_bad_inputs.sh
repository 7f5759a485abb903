#!/usr/bin/env bash
# Hostile and broken inputs across mfx, mfx-runner and the Python package
# (issue 15, hardening): resealed artifacts whose metadata disagree, index
# and shift inputs out of range, files that are devices, FIFOs or symlinks
# to /dev/zero where a regular file is meant, outputs that would replace a
# device node, databases that are empty, read-only or hold broken rows,
# latency tables with absurd numbers, arguments Python would truncate, and
# sizes no machine has. One table: each case gives the exit status and a
# piece of the message it must print; none may crash, hang or pass silently.
#
# Environment: MFX_BIN (the directory holding mfx and mfx-runner); run from
# the source tree (PYTHONPATH is set to ./python).
set -u

source "$(dirname "$0")/lib.sh"
python_package
export MFX_DB=/nonexistent-dir/tune.db
unset MFX_LATENCY
test_setup bad "$MFX" "$RUNNER"
chmod 755 "$TMP"
python_preloaded
EXPECT_TIMEOUT=60 # a FIFO read must not hang

# still_a KIND PATH: the writer left PATH as it was.
still_a() {
  local kind=$1 path=$2 ok=0
  case "$kind" in
  char) [[ -c "$path" ]] && ok=1 ;;
  fifo) [[ -p "$path" ]] && ok=1 ;;
  link) [[ -L "$path" ]] && ok=1 ;;
  esac
  if (( ok )); then passed=$((passed + 1)); else fail "$path is no longer a $kind"; fi
}

py() { "$PY" -c "$@"; }

# ---- files ------------------------------------------------------------------------
ln -s /dev/zero "$TMP/zero.npy"
ln -s /dev/zero "$TMP/zero.mfxa"
ln -s /dev/zero "$TMP/zero.json"
ln -s /dev/zero "$TMP/zero.te"
ln -s /dev/zero "$TMP/zero.jsonl"
mkfifo "$TMP/fifo" "$TMP/fifo.npy" "$TMP/fifo.mfxa"
echo keep >"$TMP/target"
ln -s "$TMP/target" "$TMP/link.mfxa"
ln -s "$TMP/target" "$TMP/link.svg"
DEVICE=""
if [[ $(id -u) == 0 ]] && mknod "$TMP/full" c 1 7 2>/dev/null; then DEVICE="$TMP/full"; fi

py "
import numpy as np
d = '$TMP/'
np.save(d + 'idx_big.npy', np.array([0, 1, 100000000, 2, 3], np.int32))
np.save(d + 'idx_T.npy', np.array([0, 1, 7, 2, 3], np.int32))
np.save(d + 'idx_neg.npy', np.array([0, -2, 1, 2, 3], np.int32))
np.save(d + 'rows_big.npy', np.array([[0, 1], [100000000, 2], [3, -1]], np.int32))
np.save(d + 's16.npy', np.full((7, 9), 16, np.int8))
np.save(d + 's_neg.npy', np.full((7, 9), -1, np.int8))
np.save(d + 'g2.npy', np.full((7, 9), 2, np.int8))
np.save(d + 'x16_big.npy', np.full((5, 9), 8192, np.int16))
x = np.ones((4, 5), np.float32); x[1, 2] = np.nan; x[2, 3] = np.inf; x[3, 0] = -np.inf
np.save(d + 'x_nonfinite.npy', x)
np.save(d + 'logits.npy', np.random.default_rng(1).standard_normal((8, 2)).astype(np.float32))
" || fail "writing the .npy inputs"

# ---- artifacts, and resealed ones that lie ------------------------------------------
"$MFX" compile gather_rows --dims T=7,M=5,D=3 -o "$TMP/gather.mfxa" >/dev/null || fail "compile gather"
"$MFX" compile combine_rows --dims R=4,T=3,K=2,D=5 -o "$TMP/combine.mfxa" >/dev/null || fail "compile combine"
"$MFX" compile shift_linear --dims M=5,N=7,K=9 -o "$TMP/shift.mfxa" >/dev/null || fail "compile shift"
"$MFX" compile gelu --dims M=4,N=5 -o "$TMP/gelu.mfxa" >/dev/null || fail "compile gelu"
"$MFX" compile linear --dims M=37,N=5,K=3 -o "$TMP/linear.mfxa" >/dev/null || fail "compile linear"

# reseal IN OUT EDIT: rewrite fields of kernel 0 (docs/artifact.md) and seal
# the file again with a correct checksum, as a hostile writer would.
reseal() {
  py "
import struct, sys
data = bytearray(open('$1', 'rb').read())
n_sections = struct.unpack_from('<I', data, 36)[0]
sections = {}
for i in range(n_sections):
    kind, kernel, offset, size = struct.unpack_from('<IIQQ', data, 64 + 32 * i)
    if kernel == 0: sections[kind] = offset
record, args = sections[1], sections[2]
def dim(d, value): struct.pack_into('<Q', data, record + 592 + 24 * d + 16, value)
def shape(a, i, value): struct.pack_into('<Q', data, args + 144 * a + 80 + 8 * i, value)
def dtype(a, name): data[args + 144 * a + 64: args + 144 * a + 72] = name.encode().ljust(8, b'\0')
$3
data[24:32] = bytes(8)
h = 0xcbf29ce484222325
for b in data: h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
struct.pack_into('<Q', data, 24, h)
open('$2', 'wb').write(data)
" || fail "resealing $2"
}
reseal "$TMP/linear.mfxa" "$TMP/m1000.mfxa" "dim(0, 1000)"
reseal "$TMP/linear.mfxa" "$TMP/out_shape.mfxa" "shape(2, 1, 4)"
reseal "$TMP/linear.mfxa" "$TMP/in_dtype.mfxa" "dtype(0, 'i32')"
reseal "$TMP/gather.mfxa" "$TMP/gather_t.mfxa" "dim(0, 1000)"

# ---- the table ------------------------------------------------------------------------
D="the kernel's dims takes"
# 1. artifacts whose fields disagree: refused by the loader, in every program
expect 1 "$D" "$RUNNER" "$TMP/m1000.mfxa" --check
expect 1 "$D" "$RUNNER" "$TMP/out_shape.mfxa" --check
expect 1 "$D" "$RUNNER" "$TMP/in_dtype.mfxa" --check
expect 1 "$D" "$RUNNER" "$TMP/gather_t.mfxa" --check
expect 1 "$D" "$RUNNER" --list "$TMP/m1000.mfxa"
expect 1 "$D" "$PY" -c "import mfx; mfx.Module('$TMP/m1000.mfxa')"
# 2. index and shift inputs out of range
R="is not a row of the T=7 rows"
expect 1 "$R" "$MFX" run gather_rows --dims T=7,M=5,D=3 --in "IDX=$TMP/idx_big.npy" --check
expect 1 "$R" "$MFX" run gather_rows --dims T=7,M=5,D=3 --in "IDX=$TMP/idx_T.npy" --check
expect 1 "IDX[1] = -2" "$MFX" run gather_rows --dims T=7,M=5,D=3 --in "IDX=$TMP/idx_neg.npy"
expect 1 "ROWS[1, 0] = 100000000" "$MFX" run combine_rows --dims R=4,T=3,K=2,D=5 --in "ROWS=$TMP/rows_big.npy"
expect 1 "$R" "$RUNNER" "$TMP/gather.mfxa" --in "IDX=$TMP/idx_big.npy" --check
expect 1 "$R" "$RUNNER" "$TMP/gather.mfxa" --in "IDX=$TMP/idx_T.npy" --check
expect 1 "ROWS[1, 0] = 100000000" "$RUNNER" "$TMP/combine.mfxa" --in "ROWS=$TMP/rows_big.npy" --check
expect 1 "S[0, 0] = 16 is outside 0..15" "$MFX" run shift_linear --dims M=5,N=7,K=9 --in "S=$TMP/s16.npy"
expect 1 "X[0, 0] = 8192 is outside -8192..8191" "$MFX" run shift_linear16 --dims M=5,N=7,K=9 --in "X=$TMP/x16_big.npy"
expect 1 "S[0, 0] = 16 is outside 0..15" "$MFX" run shift_linear16 --dims M=5,N=7,K=9 --in "S=$TMP/s16.npy"
expect 1 "S[0, 0] = -1 is outside 0..15" "$RUNNER" "$TMP/shift.mfxa" --in "S=$TMP/s_neg.npy"
expect 1 "G[0, 0] = 2 is outside -1..1" "$RUNNER" "$TMP/shift.mfxa" --in "G=$TMP/g2.npy"
expect 1 "$R" "$PY" -c "
import mfx, numpy as np
mfx.Module('$TMP/gather.mfxa').run(0, X=np.zeros((7, 3), np.float32), IDX=np.array([0, 1, 100000000, 2, 3], np.int32))"
expect 1 "does not fit in int32" "$PY" -c "
import mfx, numpy as np
mfx.Module('$TMP/gather.mfxa').run(0, X=np.zeros((7, 3), np.float32), IDX=np.array([0, 1, 2**32 + 3, 2, 3]))"
expect 1 "S[0, 0] = 16 is outside 0..15" "$PY" -c "
import mfx, numpy as np
mfx.Module('$TMP/shift.mfxa').run(0, X=np.zeros((5, 9), np.int32), S=np.full((7, 9), 16, np.int8), G=np.ones((7, 9), np.int8))"
# 3. files that never end, or are not files
N="not a regular file"
expect 1 "$N" "$RUNNER" "$TMP/zero.mfxa"
expect 1 "$N" "$RUNNER" "$TMP/fifo.mfxa"
expect 1 "$N" "$MFX" run gelu --dims M=4,N=5 --in "X=$TMP/zero.npy"
expect 1 "$N" "$MFX" run gelu --dims M=4,N=5 --in "X=$TMP/fifo.npy"
expect 1 "$N" "$MFX" lower "$TMP/zero.te"
expect 1 "$N" "$MFX" db import "$TMP/zero.jsonl" --db "$TMP/import.db"
expect 1 "$N" "$MFX" loss latency --logits "$TMP/logits.npy" --latency "$TMP/zero.json"
expect 1 "$N" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --min-time 0.001 --threads 1 --out "$TMP/zero.json"
expect 1 "$N" "$PY" -c "import mfx; mfx.load_latency('$TMP/zero.json', device='cpu')"
expect 1 "$N" "$PY" -c "import mfx; mfx.Module('$TMP/zero.mfxa')"
# 4. outputs that would replace something other than a regular file
W="not a regular file; refusing to replace it"
expect 1 "$W" "$MFX" compile gelu --dims M=4,N=5 -o "$TMP/fifo"
still_a fifo "$TMP/fifo"
expect 1 "$W" "$MFX" compile gelu --dims M=4,N=5 -o "$TMP/link.mfxa"
still_a link "$TMP/link.mfxa"
expect 1 "$W" "$MFX" compile gelu --dims M=4,N=5 --emit asm -o "$TMP/fifo"
if [[ -n "$DEVICE" ]]; then
  expect 1 "a character device, not a regular file" "$MFX" compile gelu --dims M=4,N=5 -o "$DEVICE"
  still_a char "$DEVICE"
else
  skipped=$((skipped + 1))
  echo "SKIP: no device node to write to (not root, or mknod refused)"
fi
expect 1 "$W" "$MFX" run gelu --dims M=4,N=5 --out "Y=$TMP/fifo"
expect 1 "$W" "$RUNNER" "$TMP/gelu.mfxa" --out "Y=$TMP/fifo"
expect 1 "$W" "$MFX" loss switch --logits "$TMP/logits.npy" --grad-out "$TMP/fifo"
expect 1 "$W" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --min-time 0.001 --threads 1 --out "$TMP/ok.json" --plot "$TMP/link.svg"
still_a link "$TMP/link.svg"
# 5. databases and imports accepted silently before
"$MFX" tune gelu --dims M=4,N=8 --trials 2 --db "$TMP/tune.db" --min-time 0.001 --threads 1 >/dev/null 2>&1 ||
  fail "tuning into $TMP/tune.db"
"$MFX" db export --db "$TMP/tune.db" --out "$TMP/export.jsonl" 2>/dev/null || fail "db export"
sed 's/"op":"gelu"/"op":"nosuch"/' "$TMP/export.jsonl" >"$TMP/nosuch.jsonl"
sed 's/"dims":"M=4,N=8"/"dims":"M=-5,N=abc"/' "$TMP/export.jsonl" >"$TMP/dims.jsonl"
sed 's/"median_s":[0-9.e+-]*/"median_s":1e999/' "$TMP/export.jsonl" >"$TMP/inf.jsonl"
head -c 4096 /dev/zero >"$TMP/nul.jsonl"
expect 1 'unknown op "nosuch"' "$MFX" db import "$TMP/nosuch.jsonl" --db "$TMP/import.db"
expect 1 "M=-5 must be positive" "$MFX" db import "$TMP/dims.jsonl" --db "$TMP/import.db"
expect 1 "a NUL byte" "$MFX" db import "$TMP/nul.jsonl" --db "$TMP/import.db"
expect 1 '"median_s" must be a finite number' "$MFX" db import "$TMP/inf.jsonl" --db "$TMP/import.db"
: >"$TMP/empty.db"
expect 1 "the file is empty or holds no tables" "$MFX" db list --db "$TMP/empty.db"
if [[ -s "$TMP/empty.db" ]]; then fail "db list wrote into an empty file"; else passed=$((passed + 1)); fi
cp "$TMP/tune.db" "$TMP/null.db"
py "
import sqlite3
c = sqlite3.connect('$TMP/null.db')
c.execute('UPDATE mfx_trials SET median_s = NULL')
c.commit()" || fail "nulling times"
expect 0 '"ok":0,"errors":0,"wrong":0,"best_s":null' "$MFX" db list --json --db "$TMP/null.db"
expect 1 "$W" "$MFX" db export --db "$TMP/tune.db" --out "$TMP/fifo"
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
  mkdir -m 755 "$TMP/shared" && cp "$TMP/tune.db" "$TMP/shared/tune.db" && chmod 644 "$TMP/shared/tune.db"
  NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  expect 0 "source   tuned" "${NOBODY[@]}" "$MFX" db best gelu --dims M=4,N=8 --db "$TMP/shared/tune.db"
  expect 0 "tuned" "${NOBODY[@]}" "$MFX" run gelu --dims M=4,N=8 --db "$TMP/shared/tune.db"
else
  skipped=$((skipped + 2))
  echo "SKIP: the read-only database cases need root and setpriv"
fi
# 6. numbers: alpha, latencies, k
py "
import json
def table(alpha, latency):
    experts = [{'name': n, 'tokens': [8, 16], 'seconds': [1e-3, 2e-3], 'a': 0.0, 'b': 1e-4,
                'r2': 1.0, 'latency': l} for n, l in zip(('mult', 'shift'), latency)]
    return {'format': 'mfx-latency-1', 'devices': {'cpu: test': {
        'device': 'cpu: test', 'target': 'cpu', 'dim': 8, 'hidden': 16, 'at_tokens': 8,
        'experts': experts, 'alpha': alpha}}}
json.dump(table([1e308, 1.0], [1e-3, 1e-3]), open('$TMP/alpha.json', 'w'))
json.dump(table([0.5, 1.5], [-1e-3, 3e-3]), open('$TMP/negative.json', 'w'))
" || fail "writing latency tables"
expect 1 "alpha" "$MFX" loss latency --logits "$TMP/logits.npy" --latency "$TMP/alpha.json" --device "cpu: test"
expect 1 '"latency" is not finite and positive' "$MFX" loss latency --logits "$TMP/logits.npy" --latency "$TMP/negative.json" --device "cpu: test"
expect 1 "alpha must hold one finite positive value" "$PY" -c "import mfx; mfx.load_latency('$TMP/alpha.json', device='cpu: test')"
expect 1 "latency\" is not finite and positive" "$PY" -c "import mfx; mfx.load_latency('$TMP/negative.json', device='cpu: test')"
expect 1 "latency[0]=-1; expected finite and > 0" "$PY" -c "
import mfx, numpy as np
mfx.router_loss(np.zeros((4, 2), np.float32), 'latency', latency=[-1.0, 1.0])"
for k in "2**32 + 1" "1.5" "True"; do
  expect 1 "refused: router_loss: k" "$PY" -c "
import mfx, numpy as np
try:
    mfx.router_loss(np.zeros((4, 2), np.float32), 'switch', k=$k)
except (TypeError, ValueError) as err:
    raise SystemExit('refused: %s' % err)
raise SystemExit(0)"
done
# 7. sizes no machine has
expect 1 "needs 4000000000000 bytes" "$MFX" run linear --dims M=1000000,N=1000000,K=1
expect 2 "more than 2^62 bytes" "$MFX" run matadd --dims B=2147483648,H=2147483648,N=2147483648,D=4,C=4
# 8. bit-identical NaN and infinities check as equal
expect 0 "max_rel_err=0 ok" "$MFX" run gelu --dims M=4,N=5 --in "X=$TMP/x_nonfinite.npy" --check
expect 0 "max_rel_err=0 ok" "$RUNNER" "$TMP/gelu.mfxa" --in "X=$TMP/x_nonfinite.npy" --check

# 9. command lines: every subcommand parses through one parser (tools/mfx_argparse.c),
# so every option gets the same checks, messages and exit status 2
U="unknown option"
expect 2 "ops: unexpected argument 'extra' after OP 'linear'" "$MFX" ops linear extra
expect 2 "ops: $U '--frob' (see mfx help ops)" "$MFX" ops --frob
expect 2 "--print-after needs a value" "$MFX" lower linear --dims M=4,N=4,K=4 --print-after
expect 2 "--print-after: no such pass 'nosuch'" "$MFX" lower linear --dims M=4,N=4,K=4 --print-after nosuch
expect 2 "--emit: unknown format 'obj'; expected ll or asm" "$MFX" lower linear --dims M=4,N=4,K=4 --emit obj
expect 2 "--passes takes no value" "$MFX" lower --passes=1
expect 2 "--dims given twice ('M=1' and 'M=2'); give it once" "$MFX" lower linear --dims M=1 --dims M=2
expect 2 "cache: unknown command 'purge'; expected info or clear" "$MFX" cache purge
expect 2 "cache: unexpected argument 'extra' after COMMAND 'info'" "$MFX" cache info extra
expect 2 "version: unexpected argument 'x' (it takes no arguments)" "$MFX" version x
expect 2 "db: unknown command 'frob'; expected list, best, export, import or plot" "$MFX" db frob
expect 2 "db export: $U '--json' (see mfx help db)" "$MFX" db export --json
expect 2 "db list: $U '--dims'" "$MFX" db list --dims M=4
expect 2 "--db needs a value (e.g. --db tune.db)" "$MFX" db list --db
expect 2 "db best: missing OP (see mfx ops)" "$MFX" db best --db "$TMP/tune.db"
expect 2 "db import: missing FILE (a JSON-lines export, or -)" "$MFX" db import
expect 2 "--json given twice; give it once" "$MFX" db list --json --json
# mfx run FILE.te --kernel mfx tune and mfx compile-layer, on the shared parser too
expect 2 "--dim: '0' is out of range; expected a whole number in 1..1048576" "$MFX" compile-layer --dim 0 --hidden 8 --experts mult --k 1 --buckets 16 -o "$TMP/l.mfxa"
expect 2 "--k given twice ('1' and '2'); give it once" "$MFX" compile-layer --dim 8 --hidden 8 --experts mult,shift --k 1 --k 2 --buckets 16 -o "$TMP/l.mfxa"
expect 2 "compile-layer: $U '--bogus'" "$MFX" compile-layer --bogus
expect 2 "--kernel given twice ('Z' and 'R'); give it once" "$MFX" run examples/kernels/relu_linear.te --kernel Z --kernel R
expect 2 "--trials: '0' is out of range; expected a whole number in 1..1000000" "$MFX" tune linear --dims M=4,N=4,K=4 --trials 0
expect 2 "--timeout: '-1' is out of range; expected a number in [0, 86400]" "$MFX" tune linear --dims M=4,N=4,K=4 --timeout -1
expect 2 "--resume takes no value" "$MFX" tune linear --dims M=4,N=4,K=4 --resume=1
expect 2 "--dims given twice ('M=4,N=4,K=4' and 'M=1,N=1,K=1'); give it once" "$MFX" tune linear --dims M=4,N=4,K=4 --dims M=1,N=1,K=1
expect 2 "tune: $U '--bogus'" "$MFX" tune linear --dims M=4,N=4,K=4 --bogus
expect 2 "--seed: 'x' is not a non-negative whole number" "$MFX" tune linear --dims M=4,N=4,K=4 --seed x
expect 2 "--k: '0' is out of range; expected a whole number in 1..1048576" "$MFX" loss switch --logits "$TMP/logits.npy" --k 0
expect 2 "--k: 'two' is not a whole number in 1..1048576" "$MFX" loss switch --logits "$TMP/logits.npy" --k two
expect 2 "loss: unknown kind 'nope'; expected switch, latency or zloss" "$MFX" loss nope --logits "$TMP/logits.npy"
expect 2 "--logits given twice" "$MFX" loss switch --logits "$TMP/logits.npy" --logits "$TMP/logits.npy"
expect 2 "--json takes no value" "$MFX" loss switch --logits "$TMP/logits.npy" --json=yes
expect 2 "--device picks a latency table's device" "$MFX" loss switch --logits "$TMP/logits.npy" --device cpu
expect 2 "--tokens: '99999999999999999999' is out of range" "$MFX" experts --tokens 99999999999999999999 --dim 8 --hidden 16
expect 2 "--min-time: 'nan' is not a number in [0, 60]" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --min-time nan
expect 2 "--min-time: '61' is out of range; expected a number in [0, 60]" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --min-time 61
expect 2 "--threads: '0' is out of range; expected a whole number in 1..1024" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --threads 0
expect 2 "--experts needs a value (e.g. --experts mult,shift)" "$MFX" experts --tokens 16 --dim 8 --hidden 16 --experts
expect 2 "experts: $U '--bogus' (see mfx help experts)" "$MFX" experts --bogus
expect 2 "--seed: '-1' is not a non-negative whole number" "$MFX" demo --seed -1
expect 2 "--tokens: '1' is out of range; expected a whole number in 2..16777216" "$MFX" demo --tokens 1
expect 2 "--k: '0' is out of range" "$MFX" demo --k 0
expect 2 "demo: --k 3 with 2 experts; expected k <= E" "$MFX" demo --k 3
expect 2 "--no-ops takes no value" "$MFX" demo --no-ops=1
expect 2 "--out needs a value" "$MFX" demo --out ""
expect 2 "demo: unexpected argument 'extra' (it takes no arguments, only options)" "$MFX" demo extra
expect 2 "--emit: unknown format 'exe'; expected ll, asm, obj or ptx" "$MFX" compile gelu --dims M=4,N=5 --emit exe
expect 2 "--dims given twice for op gelu ('M=4,N=5' and 'M=1,N=1')" "$MFX" compile gelu --dims M=4,N=5 --dims M=1,N=1 -o "$TMP/x.mfxa"
expect 2 "compile: --name before any op" "$MFX" compile --name x gelu --dims M=4,N=5 -o "$TMP/x.mfxa"
expect 2 "-o needs a value (e.g. -o k.mfxa)" "$MFX" compile gelu --dims M=4,N=5 -o
expect 2 "-o given twice ('$TMP/a.mfxa' and '$TMP/b.mfxa')" "$MFX" compile gelu --dims M=4,N=5 -o "$TMP/a.mfxa" --output "$TMP/b.mfxa"
ADDS=()
for i in $(seq 17); do ADDS+=(--add "$TMP/gelu.mfxa"); done
expect 2 "--add given more than 16 times" "$MFX" compile "${ADDS[@]}" -o "$TMP/x.mfxa"
expect 2 "--seed: '18446744073709551616' is out of range" "$MFX" run gelu --dims M=4,N=5 --seed 18446744073709551616
expect 2 "--tol: 'nan' is not a number in [0, 1)" "$MFX" run gelu --dims M=4,N=5 --tol nan
INS=()
for i in $(seq 17); do INS+=(--in "X=$TMP/x_nonfinite.npy"); done
expect 2 "--in given more than 16 times" "$MFX" run gelu --dims M=4,N=5 "${INS[@]}"
expect 2 "--tol: '1' is out of range; expected a number in [0, 1)" "$RUNNER" "$TMP/gelu.mfxa" --tol 1
expect 2 "--threads: '2000' is out of range" "$RUNNER" "$TMP/gelu.mfxa" --threads 2000
expect 2 "--check takes no value" "$RUNNER" "$TMP/gelu.mfxa" --check=1
expect 2 "--kernel given twice ('a' and 'b'); give it once" "$RUNNER" "$TMP/gelu.mfxa" --kernel a --kernel b
expect 2 "--in given more than 16 times" "$RUNNER" "$TMP/gelu.mfxa" "${INS[@]}"
expect 2 "unexpected argument 'y' after ARTIFACT '$TMP/gelu.mfxa'" "$RUNNER" "$TMP/gelu.mfxa" y
expect 2 "unknown option '--frob' (see mfx-runner --help)" "$RUNNER" "$TMP/gelu.mfxa" --frob
expect 2 "missing ARTIFACT (a .mfxa file from mfx compile)" "$RUNNER" --check

test_summary test_bad_inputs
