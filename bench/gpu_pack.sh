#!/usr/bin/env bash
# Here (with LLVM): everything a GPU machine without LLVM needs to check and
# time mfx, in one folder to copy there:
#   - mfx, test_moe and test_device linked against LLVM's static archives
#     (the target mfx_pack: pack-bin/ of the build tree), so mfx compiles and
#     tunes GPU kernels there; stripped and gzipped;
#   - mfx-runner and the op artifacts of bench/gpu_prepare.sh;
#   - the shared libraries those programs load, other than glibc's own;
#   - device_check.sh, which runs it all there and writes logs and JSON.
#   bench/gpu_pack.sh [PACK_DIR] [SM]        (gpu-pack, sm_80)
# The build tree is $MFX_PACK_BUILD (default: build, the release tree of
# `make build`, configured if it is not there yet).
# There, from the source tree: PACK_DIR/device_check.sh PACK_DIR OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
pack=${1:-gpu-pack}
sm=${2:-sm_80}
build=${MFX_PACK_BUILD:-$root/build}

[[ -f "$build/CMakeCache.txt" ]] ||
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target mfx mfx-runner mfx_pack >/dev/null

rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib"
"$here/gpu_prepare.sh" "$build" "$pack/artifacts" "$sm"
cp "$build/bin/mfx-runner" "$pack/bin/"
for program in mfx test_moe test_device; do
  strip -o "$pack/bin/$program" "$build/pack-bin/$program"
  gzip -6 "$pack/bin/$program"
done

# The libraries the programs load, but not glibc (the machine's own must serve).
for program in pack-bin/mfx pack-bin/test_moe pack-bin/test_device bin/mfx-runner; do
  ldd "$build/$program" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*) ;;
    *) cp -L "$lib" "$pack/lib/" ;;
  esac
done
cp "$here/device_check.sh" "$pack/"
echo "gpu_pack: $(du -sh "$pack" | cut -f1) in $pack for $sm; there: $pack/device_check.sh $pack \$OUT"
