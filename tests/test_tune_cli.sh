#!/usr/bin/env bash
# mfx tune and mfx db end to end: tuning into a database, --json, the
# progress line on a terminal and silence in logs, --resume (also after a
# SIGKILL mid-tuning), db list/best/export/import/plot, bad databases, and
# the MPI path with two ranks (skipped visibly without mpirun or MPI).
#
# Environment: MFX_BIN (the directory holding mfx).
set -u

source "$(dirname "$0")/lib.sh"
test_setup tune_cli "$MFX"
export MFX_DB="$TMP/default.db"

# Trials in a database: lines of its export.
trial_count() { "$MFX" db export --db "$1" 2>/dev/null | grep -c '"status"'; }
distinct_configs() {
  "$MFX" db export --db "$1" 2>/dev/null | grep -o '"config":{[^}]*}' | sort -u | wc -l
}

OP=hamming
DIMS=N=16,M=24,W=2
FAST=(--min-time 0.002 --threads 1)

# ---- usage --------------------------------------------------------------------
expect 0 "usage: mfx tune" "$MFX" tune --help
expect 0 "usage: mfx db" "$MFX" db --help
expect 2 "expected exhaustive, random or model" "$MFX" tune $OP --dims $DIMS --strategy best
expect 2 "missing --dims" "$MFX" tune $OP
expect 1 "no CUDA driver found (/nonexistent/libcuda.so.1)" \
  env MFX_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$MFX" tune $OP --dims $DIMS --target cuda
expect 2 "names an architecture, not a device" "$MFX" tune $OP --dims $DIMS --target cuda:sm_80
expect 2 "expected cpu, cuda, cuda:N" "$MFX" tune $OP --dims $DIMS --target tpu
expect 2 "unknown op" "$MFX" tune nosuchop --dims $DIMS
expect 2 "expected list, best, export, import or plot" "$MFX" db frobnicate
expect 1 "no tuning database" "$MFX" db list --db "$TMP/absent.db"

# ---- tuning, quiet in logs ------------------------------------------------------
DB="$TMP/t.db"
ERR=$("$MFX" tune $OP --dims $DIMS --trials 6 --json --db "$DB" "${FAST[@]}" 2>&1 >"$TMP/t.json")
check_status "tune --json exits 0" $? "$ERR"
check_status "tune prints nothing on stderr when not a terminal" "$([[ -z "$ERR" ]]; echo $?)" "$ERR"
JSON=$(cat "$TMP/t.json")
check_status "tune --json reports 6 trials" "$([[ "$JSON" == *'"trials":6,'* && "$JSON" == *'"best_config":{'* ]]; echo $?)" "$JSON"
check_status "6 trials recorded" "$([[ $(trial_count "$DB") -eq 6 ]]; echo $?)"
expect 0 "$OP" "$MFX" db list --db "$DB"
expect 0 '"ok":' "$MFX" db list --db "$DB" --json
expect 0 "source   tuned" "$MFX" db best $OP --dims $DIMS --db "$DB"
expect 0 "nearest tuned shape" "$MFX" db best $OP --dims N=32,M=24,W=2 --db "$DB"
expect 0 "template default" "$MFX" db best linear --dims M=8,N=8,K=8 --db "$DB"
expect 0 "tuned" "$MFX" tune $OP --dims N=8,M=8,W=1 --trials 2 "${FAST[@]}"
check_status "MFX_DB is the default database" "$([[ -f "$MFX_DB" ]]; echo $?)"

# ---- the progress line on a terminal ---------------------------------------------
if command -v script >/dev/null 2>&1; then
  TTY=$(script -qec "\"$MFX\" tune $OP --dims $DIMS --trials 3 --db \"$TMP/tty.db\" --min-time 0.002 --threads 1" /dev/null 2>&1)
  check_status "a terminal shows the progress line" "$([[ "$TTY" == *"trial 3/3"*"ETA"* && "$TTY" == *$'\r'* ]]; echo $?)" "$TTY"
else
  skipped=$((skipped + 1))
  echo "SKIP: progress line (no 'script' to make a terminal)"
fi

# ---- resume ------------------------------------------------------------------------
expect 0 '"resumed":6' "$MFX" tune $OP --dims $DIMS --trials 10 --resume --json --db "$DB" "${FAST[@]}"
check_status "resume ran the 4 missing trials" "$([[ "$OUT" == *'"trials":4,'* ]]; echo $?)" "$OUT"
check_status "10 trials, 10 distinct configs" "$([[ $(trial_count "$DB") -eq 10 && $(distinct_configs "$DB") -eq 10 ]]; echo $?)"

# Killed mid-tuning: what was committed stays, resume completes the budget.
KDB="$TMP/killed.db"
"$MFX" tune $OP --dims $DIMS --trials 400 --strategy random --db "$KDB" --min-time 0.01 --threads 1 >/dev/null 2>&1 &
PID=$!
for _ in $(seq 1 300); do
  [[ -f "$KDB" && $(trial_count "$KDB") -ge 3 ]] && break
  sleep 0.05
done
kill -9 $PID 2>/dev/null
wait $PID 2>/dev/null
DONE=$(trial_count "$KDB")
check_status "trials committed before SIGKILL survive ($DONE)" "$([[ $DONE -ge 3 && $DONE -lt 400 ]]; echo $?)"
WANT=$((DONE + 4))
expect 0 "\"resumed\":$DONE" "$MFX" tune $OP --dims $DIMS --trials $WANT --strategy random --resume --json --db "$KDB" "${FAST[@]}"
check_status "after resume: $WANT trials, none measured twice" "$([[ $(trial_count "$KDB") -eq $WANT && $(distinct_configs "$KDB") -eq $WANT ]]; echo $?)"

# Two tuners writing to one database at once lose nothing.
CDB="$TMP/concurrent.db"
"$MFX" tune $OP --dims $DIMS --trials 5 --strategy random --db "$CDB" "${FAST[@]}" >/dev/null 2>&1 &
P1=$!
"$MFX" tune $OP --dims $DIMS --trials 5 --strategy random --seed 9 --db "$CDB" "${FAST[@]}" >/dev/null 2>&1 &
P2=$!
wait $P1; S1=$?
wait $P2; S2=$?
check_status "two concurrent tuners succeed" "$([[ $S1 -eq 0 && $S2 -eq 0 ]]; echo $?)"
check_status "two concurrent tuners: all 10 trials kept" "$([[ $(trial_count "$CDB") -eq 10 ]]; echo $?)"

# ---- export / import / plot ------------------------------------------------------------
expect 0 "exported 10 trials" "$MFX" db export --db "$DB" --out "$TMP/a.jsonl"
expect 0 "imported 10 trials" "$MFX" db import "$TMP/a.jsonl" --db "$TMP/copy.db"
expect 0 "imported 0 trials" "$MFX" db import "$TMP/a.jsonl" --db "$TMP/copy.db"
"$MFX" db export --db "$TMP/copy.db" --out "$TMP/b.jsonl" 2>/dev/null
check_status "export -> import -> export is the identity" "$(cmp -s "$TMP/a.jsonl" "$TMP/b.jsonl"; echo $?)"
expect 0 "wrote" "$MFX" db plot $OP --dims $DIMS --db "$DB" --out "$TMP/p.svg"
check_status "plot is an SVG with a best-so-far line" "$(grep -q '<svg' "$TMP/p.svg" && grep -q '<polyline' "$TMP/p.svg"; echo $?)"
expect 1 "has no trials" "$MFX" db plot $OP --dims N=7,M=7,W=7 --db "$DB" --out "$TMP/q.svg"
echo '{"op": "hamming"' >"$TMP/bad.jsonl"
expect 1 "line 1" "$MFX" db import "$TMP/bad.jsonl" --db "$TMP/copy.db"

# ---- bad databases -------------------------------------------------------------------
head -c 8192 /dev/urandom >"$TMP/garbage.db"
expect 1 "not an SQLite database" "$MFX" tune $OP --dims $DIMS --trials 1 --db "$TMP/garbage.db"
expect 1 "not an SQLite database" "$MFX" db list --db "$TMP/garbage.db"
if command -v sqlite3 >/dev/null 2>&1; then
  sqlite3 "$TMP/foreign.db" "CREATE TABLE notes(x); PRAGMA user_version = 3;"
  expect 1 "other tables (notes)" "$MFX" db list --db "$TMP/foreign.db"
  cp "$DB" "$TMP/newer.db"
  sqlite3 "$TMP/newer.db" "PRAGMA user_version = 42;"
  expect 1 "schema version 42 is newer" "$MFX" db best $OP --dims $DIMS --db "$TMP/newer.db"
fi

# ---- MPI: two ranks, one database ----------------------------------------------------------
if ! command -v mpirun >/dev/null 2>&1; then
  skipped=$((skipped + 1))
  echo "SKIP: MPI sharding (mpirun not found)"
elif ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$MFX" tune $OP --dims $DIMS \
    --trials 1 --mpi --db "$TMP/probe.db" 2>&1 | grep -q "built without MPI"; then
  expect 1 "built without MPI" "$MFX" tune $OP --dims $DIMS --trials 2 --mpi --db "$TMP/mpi.db"
  skipped=$((skipped + 1))
  echo "SKIP: MPI sharding (this mfx was built without MPI; --mpi gives a clear error)"
else
  MDB="$TMP/mpi.db"
  # Open MPI keeps its own allocations to the end: not ours to leak-check.
  expect 0 '"trials":8,' env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun --allow-run-as-root --oversubscribe -n 2 "$MFX" tune $OP --dims $DIMS \
    --trials 8 --mpi --json --db "$MDB" "${FAST[@]}"
  EXPORT=$("$MFX" db export --db "$MDB" 2>/dev/null)
  check_status "MPI: 8 trials gathered on rank 0" "$([[ $(echo "$EXPORT" | grep -c '"status"') -eq 8 ]]; echo $?)" "$EXPORT"
  check_status "MPI: both ranks measured" "$(echo "$EXPORT" | grep -q '"rank":1' && echo "$EXPORT" | grep -q '"rank":0'; echo $?)"
  check_status "MPI: no config twice" "$([[ $(distinct_configs "$MDB") -eq 8 ]]; echo $?)"
fi

test_summary test_tune_cli
