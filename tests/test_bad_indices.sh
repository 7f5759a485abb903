#!/usr/bin/env bash
# Row indices out of range (gather_rows IDX, combine_rows ROWS) are refused
# where inputs enter: mfx run, mfx-runner and Python's mfx.Module (through
# mfx_artifact_run), with a message naming the element; never a crash, and
# an index equal to the row count is not a silent read past the buffer.
# -1 ("none") stays legal.
#
# Environment: MFX_BIN (the directory holding mfx and mfx-runner).
set -u

source "$(dirname "$0")/lib.sh"
test_setup badidx

# gather_rows T=5, M=3, D=4; combine_rows R=5, T=3, K=2, D=4.
"$PY" - "$TMP" <<'PYEOF' || { echo "FAIL: numpy"; exit 1; }
import sys, numpy as np
d = sys.argv[1]
np.save(d + "/x.npy", np.ones((5, 4), np.float32))
np.save(d + "/g.npy", np.ones((3, 2), np.float32))
for name, v in [("big", 100000000), ("t", 5), ("neg", -2), ("ok", -1)]:
    np.save(d + "/idx_%s.npy" % name, np.array([0, v, 4], np.int32))
    np.save(d + "/rows_%s.npy" % name, np.array([[0, v], [4, 1], [-1, 2]], np.int32))
PYEOF

G="gather_rows --dims T=5,M=3,D=4 --in X=$TMP/x.npy"
C="combine_rows --dims R=5,T=3,K=2,D=4 --in YALL=$TMP/x.npy --in GATES=$TMP/g.npy"
for bad in big t neg; do
  expect 1 "is not a row of the" "$MFX" run $G --in IDX="$TMP/idx_$bad.npy" --check
  expect 1 "is not a row of the" "$MFX" run $C --in ROWS="$TMP/rows_$bad.npy" --check
done
expect 0 "ok" "$MFX" run $G --in IDX="$TMP/idx_ok.npy" --check
expect 0 "ok" "$MFX" run $C --in ROWS="$TMP/rows_ok.npy" --check

A="$TMP/k.mfxa"
expect 0 "" "$MFX" compile gather_rows --dims T=5,M=3,D=4 \
  --op combine_rows --dims R=5,T=3,K=2,D=4 -o "$A"
for bad in big t neg; do
  expect 1 "is not a row of the" "$RUNNER" "$A" --kernel gather_rows --in X="$TMP/x.npy" \
    --in IDX="$TMP/idx_$bad.npy" --check
  expect 1 "is not a row of the" "$RUNNER" "$A" --kernel combine_rows --in YALL="$TMP/x.npy" \
    --in GATES="$TMP/g.npy" --in ROWS="$TMP/rows_$bad.npy" --check
done
expect 0 "ok" "$RUNNER" "$A" --kernel gather_rows --in X="$TMP/x.npy" \
  --in IDX="$TMP/idx_ok.npy" --check

for bad in big t; do
  expect 0 "refused: " env PYTHONPATH=python LD_PRELOAD="${MFX_PYTHON_PRELOAD:-}" ASAN_OPTIONS=detect_leaks=0 "$PY" -c "
import sys, numpy as np, mfx
m = mfx.Module('$A')
try:
    m.run('gather_rows', X=np.load('$TMP/x.npy'), IDX=np.load('$TMP/idx_$bad.npy'))
    print('ran')
except Exception as e:
    print('refused:', e)
    assert 'is not a row of the' in str(e), e
"
done

# Sizes are checked before allocating: a refusal with the bytes, not an OOM kill.
expect 1 "one allocation may take at most" "$MFX" run linear \
  --dims M=1000000,N=1000000,K=1

test_summary test_bad_indices
