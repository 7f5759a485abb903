/* Shared by the fuzz targets: the readers under test take a path, so each
 * input becomes an in-memory file (memfd) named /proc/self/fd/N. */
#ifndef MFX_FUZZ_INPUT_H
#define MFX_FUZZ_INPUT_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* One memfd per process, rewritten for each input; path receives its name.
 * 0 on success. */
static int fuzz_input_file(const uint8_t *data, size_t size, char *path, size_t path_size) {
  static int fd = -1;
  if (fd < 0) fd = memfd_create("mfx-fuzz", 0);
  if (fd < 0 || ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) return -1;
  for (size_t done = 0; done < size;) {
    ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) return -1;
    done += (size_t)n;
  }
  snprintf(path, path_size, "/proc/self/fd/%d", fd);
  return 0;
}

#endif
