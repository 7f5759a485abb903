/* The TE text parser (compiler/parse.c), and what a parsed kernel goes
 * through next: printing and lowering to loop IR (no code generation). Any
 * input must give MFX_OK or an error status with a message, never a crash,
 * a hang or a sanitizer report. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/compiler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  if (mfx_te_parse(a, text, "fuzz.te", &s) == MFX_OK) {
    FILE *null = fopen("/dev/null", "w");
    if (null) {
      mfx_print_te(null, s);
      fclose(null);
    }
    mfx_func *fn;
    (void)mfx_lower(s, "fuzz", &fn);
  } else if (mfx_last_error()[0] == '\0') {
    abort(); /* an error must say what was wrong */
  }
  mfx_arena_destroy(a);
  free(text);
  return 0;
}
