#!/usr/bin/env bash
# Every public header compiles on its own, as C11 and as C++ (what an
# embedding application sees), without warnings.
set -u
src=${MFX_SOURCE_DIR:?}
cc=${CC:-cc}
fail=0
for h in "$src"/include/mfx/*.h; do
  name=$(basename "$h")
  if ! printf '#include "mfx/%s"\nint main(void) { return 0; }\n' "$name" |
      "$cc" -std=c11 -Wall -Wextra -Werror -I"$src/include" -x c -fsyntax-only - 2>/tmp/mfx_hdr_$$; then
    echo "FAIL: $name does not compile on its own as C11:"; cat /tmp/mfx_hdr_$$; fail=1
  fi
  if command -v c++ >/dev/null && ! printf '#include "mfx/%s"\nint main() { return 0; }\n' "$name" |
      c++ -Wall -Wextra -Werror -I"$src/include" -x c++ -fsyntax-only - 2>/tmp/mfx_hdr_$$; then
    echo "FAIL: $name does not compile as C++:"; cat /tmp/mfx_hdr_$$; fail=1
  fi
done
rm -f /tmp/mfx_hdr_$$
[ $fail = 0 ] && echo "all public headers compile on their own"
exit $fail
