#!/usr/bin/env bash
# Writers never replace something that is not a regular file: the atomic
# rename of `mfx compile -o` would otherwise land on a FIFO, a directory or
# a device node (/dev/full as root). Refused with a message, the node kept.
#
# Environment: MFX_BIN (the directory holding mfx).
set -u
source "$(dirname "$0")/lib.sh"
test_setup badout

mkfifo "$TMP/fifo"
out=$("$MFX" compile hamming --dims N=5,M=3,W=2 -o "$TMP/fifo" 2>&1); status=$?
check_status "compile -o FIFO exits 1 (got $status: $out)" $(( status != 1 ))
[[ "$out" == *"not a regular file"* ]]; check_status "compile -o FIFO message: $out" $?
[[ -p "$TMP/fifo" ]]; check_status "the FIFO is still a FIFO" $?

ln -s /dev/null "$TMP/link"
out=$("$MFX" compile hamming --dims N=5,M=3,W=2 -o "$TMP/link" 2>&1); status=$?
check_status "compile -o symlink exits 1 (got $status: $out)" $(( status != 1 ))
[[ -L "$TMP/link" ]]; check_status "the symlink is kept" $?

out=$("$MFX" compile hamming --dims N=5,M=3,W=2 -o "$TMP/k.mfxa" 2>&1); status=$?
check_status "compile -o a new file works (got $status: $out)" $status
out=$("$MFX" compile hamming --dims N=5,M=3,W=2 -o "$TMP/k.mfxa" 2>&1); status=$?
check_status "compile -o replaces a regular file (got $status: $out)" $status

test_summary test_bad_outputs
