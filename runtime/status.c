/* Status codes and the per-thread message of the last failure. */
#include "mfx/runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MFX_MESSAGE_CAPACITY 1024

static _Thread_local char mfx_message[MFX_MESSAGE_CAPACITY];

const char *mfx_last_error(void) { return mfx_message; }

void mfx_clear_error(void) { mfx_message[0] = '\0'; }

/* Copies as much of `text` as fits after the first `used` bytes of the
 * message; returns the new length. Truncation is silent by design. */
static size_t status_message_append(size_t used, const char *text) {
  while (used + 1 < sizeof mfx_message && *text != '\0') mfx_message[used++] = *text++;
  mfx_message[used] = '\0';
  return used;
}

/* Formats into scratch buffers first, so that the arguments may themselves
 * mention mfx_last_error() without aliasing the buffer being written. */
mfx_status mfx_fail_context(mfx_status status, const char *fmt, ...) {
  char old[MFX_MESSAGE_CAPACITY];
  char prefix[MFX_MESSAGE_CAPACITY];
  memcpy(old, mfx_message, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  size_t used = status_message_append(0, prefix);
  if (old[0] != '\0') {
    used = status_message_append(used, ": ");
    status_message_append(used, old);
  }
  return status;
}

/* Formats into a scratch buffer first: the arguments may mention
 * mfx_last_error() itself. */
mfx_status mfx_fail(mfx_status status, const char *fmt, ...) {
  char text[MFX_MESSAGE_CAPACITY];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  status_message_append(0, text);
  return status;
}

const char *mfx_status_name(mfx_status status) {
  switch (status) {
  case MFX_OK: return "ok";
  case MFX_ERR_INVALID: return "invalid";
  case MFX_ERR_SCHEDULE: return "schedule";
  case MFX_ERR_IO: return "io";
  case MFX_ERR_FORMAT: return "format";
  case MFX_ERR_NOMEM: return "out of memory";
  case MFX_ERR_NOT_FOUND: return "not found";
  case MFX_ERR_CODEGEN: return "codegen";
  case MFX_ERR_DEVICE: return "device";
  case MFX_ERR_MISMATCH: return "mismatch";
  }
  return "unknown status";
}
