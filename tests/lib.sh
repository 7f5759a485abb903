# What the shell tests share (tests/test_*.sh). A test begins
#
#   set -u
#   source "$(dirname "$0")/lib.sh"
#   test_setup NAME [PROGRAM...]
#
# and ends with `test_summary NAME` as its last command (its status is the
# test's). Environment: MFX_BIN (the directory holding mfx and mfx-runner,
# default build/bin), MFX_SOURCE_DIR (the source tree, default .).
#
# Variables it sets: BIN, MFX, RUNNER, PY (python3), TMP (a fresh directory,
# removed on exit), passed, failed, skipped (counts), OUT (the last output).

BIN="${MFX_BIN:-build/bin}"
MFX="$BIN/mfx"
RUNNER="$BIN/mfx-runner"
PY=/usr/bin/python3

# test_setup NAME [PROGRAM...]: TMP and the counts; each PROGRAM must be an
# executable (else the test fails at once, saying to set MFX_BIN).
test_setup() {
  local name=$1 program
  shift
  for program in "$@"; do
    if [[ ! -x "$program" ]]; then
      echo "FAIL: $program is not an executable (set MFX_BIN)"
      exit 1
    fi
  done
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/mfx_$name.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  passed=0
  failed=0
  skipped=0
  OUT=""
}

# python_package: python imports mfx from the source tree, writing no bytecode.
python_package() {
  export PYTHONPATH="${MFX_SOURCE_DIR:-.}/python${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONDONTWRITEBYTECODE=1
}

# python_preloaded: a sanitized libmfxrt.so needs the ASan runtime loaded
# before the interpreter (MFX_PYTHON_PRELOAD, set by the sanitizer build);
# the interpreter's own allocations are not ours to leak-check. Points PY at
# a wrapper that does both.
python_preloaded() {
  if [[ -n "${MFX_PYTHON_PRELOAD:-}" ]]; then
    printf '#!/bin/sh\nLD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0 exec %s "$@"\n' \
      "$MFX_PYTHON_PRELOAD" "$PY" >"$TMP/python"
    chmod +x "$TMP/python"
    PY="$TMP/python"
  fi
}

# fail WHAT [OUTPUT]: a failed check, with the first lines of OUTPUT.
fail() {
  failed=$((failed + 1))
  echo "FAIL: $1"
  if [[ -n "${2:-}" ]]; then echo "$2" | head -n 20 | sed 's/^/    | /'; fi
  return 0
}

pass() { passed=$((passed + 1)); }

# crashed TEXT: true when TEXT shows a crash or a sanitizer report.
crashed() {
  [[ "$1" == *"Segmentation fault"* || "$1" == *"Sanitizer"* ||
     "$1" == *"runtime error:"* || "$1" == *"Aborted"* ]]
}

# expect STATUS TEXT COMMAND...: COMMAND exits with STATUS, without a crash or
# a sanitizer report, and its stdout+stderr contain TEXT (empty: anything).
# The output is left in OUT. With EXPECT_TIMEOUT=N, a COMMAND still running
# after N seconds is killed and fails as hung; with EXPECT_STDOUT=1, OUT
# holds stdout alone (TEXT is still looked for in both).
expect() {
  local want_status=$1 want_text=$2
  shift 2
  local status all why="" run=()
  if [[ -n "${EXPECT_TIMEOUT:-}" ]]; then run=(timeout "$EXPECT_TIMEOUT"); fi
  if [[ -n "${EXPECT_STDOUT:-}" ]]; then
    OUT=$("${run[@]}" "$@" 2>"$TMP/.stderr")
    status=$?
    all="$OUT$(cat "$TMP/.stderr")"
  else
    OUT=$("${run[@]}" "$@" 2>&1)
    status=$?
    all=$OUT
  fi
  if [[ -n "${EXPECT_TIMEOUT:-}" ]] && (( status == 124 )); then
    why="hung (killed after $EXPECT_TIMEOUT s)"
  elif (( status >= 128 )); then why="killed by signal $((status - 128))"
  elif crashed "$all"; then why="crash or sanitizer report in the output"
  elif (( status != want_status )); then why="exit status $status, expected $want_status"
  elif [[ -n "$want_text" && "$all" != *"$want_text"* ]]; then why="output lacks '$want_text'"
  fi
  if [[ -n "$why" ]]; then fail "$* -> $why" "$all"; else pass; fi
}

# expect_error STATUS TEXT COMMAND...: as expect, and the message is an mfx error.
expect_error() {
  expect "$@"
  if [[ "$OUT" != *"mfx: error: "* ]]; then fail "${*:3} -> no 'mfx: error: ' message"; fi
}

# check_status WHAT STATUS [OUTPUT]: a plain shell check passed if STATUS is 0.
check_status() {
  if [[ $2 -eq 0 ]]; then pass; else fail "$1" "${3:-}"; fi
}

# check_run WHAT COMMAND...: COMMAND must succeed (the end of its output if not).
check_run() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then pass
  else
    fail "$what: $*"
    echo "$out" | tail -n 20 | sed 's/^/    | /'
  fi
}

# build_example NAME: examples/NAME built against the mfx installed in
# PREFIX three ways, with FLAGS: find_package shared ($TMP/shared) and static
# ($TMP/static), and pkg-config ($TMP/embed_pc). SOURCE: the source tree.
build_example() {
  local dir="$SOURCE/examples/$1" pc_flags
  check_run "configure (shared)" cmake -S "$dir" -B "$TMP/shared" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$FLAGS"
  check_run "build (shared)" cmake --build "$TMP/shared"
  check_run "configure (static)" cmake -S "$dir" -B "$TMP/static" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DEMBED_STATIC=ON -DCMAKE_C_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="$FLAGS"
  check_run "build (static)" cmake --build "$TMP/static"
  pc_flags=$(PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig" pkg-config --cflags --libs mfx-runtime)
  # shellcheck disable=SC2086 # FLAGS and pc_flags are lists of flags
  check_run "pkg-config build" cc -std=gnu11 -Wall -Wextra -Werror $FLAGS "$dir/main.c" \
    $pc_flags -o "$TMP/embed_pc"
}

# test_summary NAME: the counts; true when nothing failed.
test_summary() {
  local skips=""
  if (( skipped > 0 )); then skips=", $skipped skipped"; fi
  echo "$1: $passed passed, $failed failed$skips"
  (( failed == 0 ))
}
