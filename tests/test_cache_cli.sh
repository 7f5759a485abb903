#!/usr/bin/env bash
# mfx cache info|clear on a temporary MFX_CACHE_DIR: entries appear after a
# run, a second run reuses them, clear empties the directory; PTX (mfx compile
# --emit ptx) is counted as a GPU entry, once per kernel and sm; bad use is an
# error; MFX_CACHE=0 says disabled.
set -u
MFX=${MFX_BIN:?}/mfx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MFX_CACHE_DIR="$tmp/cache"
unset MFX_CACHE MFX_CACHE_MAX_MB
failures=0
expect() { # status substring command...
  local want=$1 needle=$2; shift 2
  local out status
  out=$("$@" 2>&1); status=$?
  if [ "$status" != "$want" ] || [[ "$out" != *"$needle"* ]] || [[ "$out" == *Sanitizer* ]]; then
    echo "FAIL: $* -> status $status (want $want), output lacks '$needle':"; echo "$out" | head -5
    failures=$((failures + 1))
  fi
}
expect 0 "entries  0" "$MFX" cache info
expect 0 "dir      $tmp/cache" "$MFX" cache info
expect 0 "enabled  yes" "$MFX" cache info
build=$("$MFX" cache info | sed -n 's/^build    //p')
[[ "$build" =~ ^[0-9a-f]{16}$ ]] || { echo "FAIL: build id '$build'"; failures=$((failures + 1)); }
expect 0 "output" "$MFX" run linear --dims M=13,N=9,K=5
expect 0 "entries  1" "$MFX" cache info
expect 0 "cpu      1" "$MFX" cache info
expect 0 "gpu      0" "$MFX" cache info
first=$("$MFX" run linear --dims M=13,N=9,K=5 2>&1)
expect 0 "entries  1" "$MFX" cache info    # the second run hit, wrote nothing new
second=$("$MFX" run linear --dims M=13,N=9,K=5 2>&1)
[ "$first" == "$second" ] || { echo "FAIL: cached kernel output differs"; failures=$((failures + 1)); }
expect 0 "limit    1048576" env MFX_CACHE_MAX_MB=1 "$MFX" cache info
ptx1=$("$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_80 --emit ptx 2>&1)
expect 0 "gpu      1" "$MFX" cache info
ptx2=$("$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_80 --emit ptx 2>&1)
expect 0 "gpu      1" "$MFX" cache info     # the second one hit
[[ "$ptx1" == *".entry"* && "$ptx1" == "$ptx2" ]] || { echo "FAIL: cached PTX differs"; failures=$((failures + 1)); }
expect 0 ".target sm_86" "$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_86 --emit ptx
expect 0 "gpu      2" "$MFX" cache info     # another sm, another entry
expect 0 "entries  3" "$MFX" cache info
expect 0 "removed 3 entries" "$MFX" cache clear
expect 0 "entries  0" "$MFX" cache info
[ -z "$(ls -A "$tmp/cache")" ] || { echo "FAIL: cache dir not empty after clear"; failures=$((failures + 1)); }
expect 0 "enabled  no" env MFX_CACHE=0 "$MFX" cache info
expect 1 "off" env MFX_CACHE=0 "$MFX" cache clear
expect 2 "cache: missing COMMAND; expected info or clear" "$MFX" cache
expect 2 "cache: unknown command 'purge'; expected info or clear" "$MFX" cache purge
expect 0 "usage: mfx cache" "$MFX" cache --help
expect 0 "GPU kernels (*.mfxp)" "$MFX" help cache
: >"$tmp/file"
expect 0 "kernel cache off" env MFX_CACHE_DIR="$tmp/file" "$MFX" cache info
[ "$failures" = 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "ok"
