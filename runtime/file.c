/* Every file mfx reads or writes goes through here. Reads take regular
 * files only (a symlink to /dev/zero or a FIFO would never end) and refuse
 * files over a cap chosen per kind of file, saying the size and the cap.
 * Writes go to a temporary file beside the target, renamed into place only
 * when everything was written; a target that exists and is not a regular
 * file (a device node, a directory, a symlink) is never replaced. libc
 * only. */
#define _GNU_SOURCE /* O_CLOEXEC in older libcs */
#include "mfx/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What kind of thing a non-regular file is, for messages. */
static const char *file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

static const char *file_what(const char *what) { return what != NULL ? what : "file"; }

/* ---- reading ------------------------------------------------------------------ */

/* Open path (following symlinks) without blocking on a FIFO, and keep it
 * only when it is a regular file of at most cap bytes. */
static mfx_status file_open_regular(const char *path, const char *what, size_t cap, int *fd_out,
                                    size_t *size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return mfx_fail(errno == ENOENT ? MFX_ERR_NOT_FOUND : MFX_ERR_IO, "%s %s: cannot open: %s",
                    what, path, strerror(errno));
  struct stat sb;
  mfx_status st = MFX_OK;
  if (fstat(fd, &sb) != 0)
    st = mfx_fail(MFX_ERR_IO, "%s %s: cannot stat: %s", what, path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    st = mfx_fail(MFX_ERR_IO, "%s %s: not a regular file (%s); refusing to read it", what, path,
                  file_type_name(sb.st_mode));
  else if ((uint64_t)sb.st_size > (uint64_t)cap)
    st = mfx_fail(MFX_ERR_IO, "%s %s: %llu bytes, larger than the cap of %zu bytes for a %s",
                  what, path, (unsigned long long)sb.st_size, cap, what);
  else {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
      st = mfx_fail(MFX_ERR_IO, "%s %s: fcntl: %s", what, path, strerror(errno));
  }
  if (st != MFX_OK) {
    close(fd);
    return st;
  }
  *fd_out = fd;
  *size = (size_t)sb.st_size;
  return MFX_OK;
}

mfx_status mfx_file_open_read(const char *path, const char *what, size_t cap, FILE **f,
                              size_t *size) {
  what = file_what(what);
  if (path == NULL || f == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: path and FILE pointer must not be NULL", what);
  *f = NULL;
  int fd = -1;
  size_t bytes = 0;
  mfx_status st = file_open_regular(path, what, cap, &fd, &bytes);
  if (st != MFX_OK) return st;
  *f = fdopen(fd, "rb");
  if (*f == NULL) {
    st = mfx_fail(MFX_ERR_IO, "%s %s: fdopen: %s", what, path, strerror(errno));
    close(fd);
    return st;
  }
  if (size != NULL) *size = bytes;
  return MFX_OK;
}

/* Everything from fd, at most cap bytes (a file that grows past its cap
 * while being read is refused too); a NUL after the last byte. */
static mfx_status file_read_fd(int fd, const char *path, const char *what, size_t cap,
                               size_t hint, char **out, size_t *size) {
  size_t room = (hint < cap ? hint : cap) + 1, used = 0;
  char *buf = malloc(room + 1);
  if (buf == NULL)
    return mfx_fail(MFX_ERR_NOMEM, "%s %s: out of memory for %zu bytes", what, path, room);
  for (;;) {
    if (used == room) {
      if (used > cap) break;
      size_t grown = room > cap / 2 ? cap + 1 : room * 2;
      char *bigger = realloc(buf, grown + 1);
      if (bigger == NULL) {
        free(buf);
        return mfx_fail(MFX_ERR_NOMEM, "%s %s: out of memory for %zu bytes", what, path, grown);
      }
      buf = bigger;
      room = grown;
    }
    ssize_t got = read(fd, buf + used, room - used);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      free(buf);
      return mfx_fail(MFX_ERR_IO, "%s %s: read error: %s", what, path, strerror(errno));
    }
    if (got == 0) break;
    used += (size_t)got;
  }
  if (used > cap) {
    free(buf);
    return mfx_fail(MFX_ERR_IO, "%s %s: more than the cap of %zu bytes for a %s (it grew while "
                    "being read)", what, path, cap, what);
  }
  buf[used] = '\0';
  *out = buf;
  *size = used;
  return MFX_OK;
}

mfx_status mfx_file_read(const char *path, const char *what, size_t cap, char **data,
                         size_t *size) {
  what = file_what(what);
  if (path == NULL || data == NULL)
    return mfx_fail(MFX_ERR_INVALID, "%s: path and data must not be NULL", what);
  *data = NULL;
  if (size != NULL) *size = 0;
  int fd = -1;
  size_t hint = 0, got = 0;
  mfx_status st = file_open_regular(path, what, cap, &fd, &hint);
  if (st != MFX_OK) return st;
  st = file_read_fd(fd, path, what, cap, hint, data, &got);
  close(fd);
  if (st == MFX_OK && size != NULL) *size = got;
  return st;
}

/* ---- writing ------------------------------------------------------------------ */

/* The target must be missing or a regular file: rename() would replace
 * whatever else is there (a device node, a symlink) with our file. */
static mfx_status file_check_target(const char *path, const char *what) {
  struct stat sb;
  if (path == NULL) return mfx_fail(MFX_ERR_INVALID, "%s: NULL path", file_what(what));
  if (lstat(path, &sb) != 0) {
    if (errno == ENOENT) return MFX_OK;
    return mfx_fail(MFX_ERR_IO, "%s %s: cannot stat: %s", what, path, strerror(errno));
  }
  if (!S_ISREG(sb.st_mode))
    return mfx_fail(MFX_ERR_IO, "%s %s: exists and is %s, not a regular file; refusing to "
                    "replace it (write to a regular file path)", what, path,
                    file_type_name(sb.st_mode));
  return MFX_OK;
}

mfx_status mfx_check_replaceable(const char *path, const char *what) {
  return file_check_target(path, file_what(what));
}

mfx_status mfx_file_write_begin(mfx_file_writer *w, const char *path, const char *what) {
  what = file_what(what);
  if (w == NULL || path == NULL || path[0] == '\0')
    return mfx_fail(MFX_ERR_INVALID, "%s: writer and path must not be NULL or empty", what);
  memset(w, 0, sizeof *w);
  mfx_status st = file_check_target(path, what);
  if (st != MFX_OK) return st;
  size_t len = strlen(path);
  w->temp = malloc(len + 16);
  w->path = malloc(len + 1);
  if (w->temp == NULL || w->path == NULL) {
    mfx_file_write_abort(w);
    return mfx_fail(MFX_ERR_NOMEM, "%s %s: out of memory", what, path);
  }
  memcpy(w->path, path, len + 1);
  snprintf(w->temp, len + 16, "%s.tmp.XXXXXX", path);
  snprintf(w->what, sizeof w->what, "%s", what);
  int fd = mkstemp(w->temp);
  if (fd < 0) {
    st = mfx_fail(MFX_ERR_IO, "%s %s: cannot create a file beside it: %s", what, path,
                  strerror(errno));
    mfx_file_write_abort(w);
    return st;
  }
  /* mkstemp makes the file private; what mfx writes are ordinary files. */
  if (fchmod(fd, 0644) != 0 || (w->f = fdopen(fd, "wb")) == NULL) {
    st = mfx_fail(MFX_ERR_IO, "%s %s: preparing %s: %s", what, path, w->temp, strerror(errno));
    close(fd);
    unlink(w->temp);
    mfx_file_write_abort(w);
    return st;
  }
  return MFX_OK;
}

void mfx_file_write_abort(mfx_file_writer *w) {
  if (w == NULL) return;
  if (w->f != NULL) {
    fclose(w->f);
    unlink(w->temp);
  }
  free(w->temp);
  free(w->path);
  memset(w, 0, sizeof *w);
}

mfx_status mfx_file_write_commit(mfx_file_writer *w) {
  if (w == NULL || w->f == NULL)
    return mfx_fail(MFX_ERR_INVALID, "file writer: commit without a successful begin");
  mfx_status st = MFX_OK;
  int bad = fflush(w->f) != 0 || ferror(w->f);
  int saved = errno;
  if (fclose(w->f) != 0 && !bad) bad = 1, saved = errno;
  w->f = NULL;
  if (bad)
    st = mfx_fail(MFX_ERR_IO, "%s %s: write failed: %s", w->what, w->path, strerror(saved));
  /* Checked again just before the rename: the target may have changed. */
  if (st == MFX_OK) st = file_check_target(w->path, w->what);
  if (st == MFX_OK && rename(w->temp, w->path) != 0)
    st = mfx_fail(MFX_ERR_IO, "%s %s: cannot replace it: %s", w->what, w->path, strerror(errno));
  if (st != MFX_OK) unlink(w->temp);
  free(w->temp);
  free(w->path);
  memset(w, 0, sizeof *w);
  return st;
}

mfx_status mfx_file_write(const char *path, const char *what, const void *data, size_t size) {
  if (data == NULL && size > 0)
    return mfx_fail(MFX_ERR_INVALID, "%s %s: data is NULL", file_what(what),
                    path != NULL ? path : "(null)");
  mfx_file_writer w;
  mfx_status st = mfx_file_write_begin(&w, path, what);
  if (st != MFX_OK) return st;
  if (size > 0 && fwrite(data, 1, size, w.f) != size) {
    st = mfx_fail(MFX_ERR_IO, "%s %s: write failed: %s", w.what, w.path, strerror(errno));
    mfx_file_write_abort(&w);
    return st;
  }
  return mfx_file_write_commit(&w);
}
