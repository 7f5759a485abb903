#!/usr/bin/env bash
# mfx cache info|clear on a temporary MFX_CACHE_DIR: entries appear after a
# run, a second run reuses them, clear empties the directory; PTX (mfx compile
# --emit ptx) is counted as a GPU entry, once per kernel and sm; bad use is an
# error; MFX_CACHE=0 says disabled.
set -u
source "$(dirname "$0")/lib.sh"
test_setup cache_cli
export MFX_CACHE_DIR="$TMP/cache"
unset MFX_CACHE MFX_CACHE_MAX_MB
expect 0 "entries  0" "$MFX" cache info
expect 0 "dir      $TMP/cache" "$MFX" cache info
expect 0 "enabled  yes" "$MFX" cache info
build=$("$MFX" cache info | sed -n 's/^build    //p')
[[ "$build" =~ ^[0-9a-f]{16}$ ]] || { echo "FAIL: build id '$build'"; failed=$((failed + 1)); }
expect 0 "output" "$MFX" run linear --dims M=13,N=9,K=5
expect 0 "entries  1" "$MFX" cache info
expect 0 "cpu      1" "$MFX" cache info
expect 0 "gpu      0" "$MFX" cache info
first=$("$MFX" run linear --dims M=13,N=9,K=5 2>&1)
expect 0 "entries  1" "$MFX" cache info    # the second run hit, wrote nothing new
second=$("$MFX" run linear --dims M=13,N=9,K=5 2>&1)
[ "$first" == "$second" ] || { echo "FAIL: cached kernel output differs"; failed=$((failed + 1)); }
expect 0 "limit    1048576" env MFX_CACHE_MAX_MB=1 "$MFX" cache info
ptx1=$("$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_80 --emit ptx 2>&1)
expect 0 "gpu      1" "$MFX" cache info
ptx2=$("$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_80 --emit ptx 2>&1)
expect 0 "gpu      1" "$MFX" cache info     # the second one hit
[[ "$ptx1" == *".entry"* && "$ptx1" == "$ptx2" ]] || { echo "FAIL: cached PTX differs"; failed=$((failed + 1)); }
expect 0 ".target sm_86" "$MFX" compile linear --dims M=13,N=9,K=5 --target cuda:sm_86 --emit ptx
expect 0 "gpu      2" "$MFX" cache info     # another sm, another entry
expect 0 "entries  3" "$MFX" cache info
expect 0 "removed 3 entries" "$MFX" cache clear
expect 0 "entries  0" "$MFX" cache info
[ -z "$(ls -A "$TMP/cache")" ] || { echo "FAIL: cache dir not empty after clear"; failed=$((failed + 1)); }
expect 0 "enabled  no" env MFX_CACHE=0 "$MFX" cache info
expect 1 "off" env MFX_CACHE=0 "$MFX" cache clear
expect 2 "cache: missing COMMAND; expected info or clear" "$MFX" cache
expect 2 "cache: unknown command 'purge'; expected info or clear" "$MFX" cache purge
expect 0 "usage: mfx cache" "$MFX" cache --help
expect 0 "GPU kernels (*.mfxp)" "$MFX" help cache
: >"$TMP/file"
expect 0 "kernel cache off" env MFX_CACHE_DIR="$TMP/file" "$MFX" cache info
test_summary test_cache_cli
