#!/usr/bin/env bash
# Every public header compiles on its own, as C11 and as C++ (what an
# embedding application sees), without warnings.
set -u
src=${MFX_SOURCE_DIR:?}
cc=${CC:-cc}
source "$(dirname "$0")/lib.sh"
test_setup headers
for h in "$src"/include/mfx/*.h; do
  name=$(basename "$h")
  if ! printf '#include "mfx/%s"\nint main(void) { return 0; }\n' "$name" |
      "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" -x c -fsyntax-only - 2>"$TMP/err"; then
    fail "$name does not compile on its own as C11:" "$(cat "$TMP/err")"
  else
    pass
  fi
  if command -v c++ >/dev/null && ! printf '#include "mfx/%s"\nint main() { return 0; }\n' "$name" |
      c++ -Wall -Wextra -Werror -I"$src/include" -x c++ -fsyntax-only - 2>"$TMP/err"; then
    fail "$name does not compile as C++:" "$(cat "$TMP/err")"
  fi
done
test_summary test_headers
