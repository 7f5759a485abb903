/* Host timers. */
#define _POSIX_C_SOURCE 200809L
#include "mfx/runtime.h"

#include <time.h>

double mfx_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
