/* NumPy .npy files: format versions 1.0, 2.0 and 3.0, little-endian, C order.
 *
 * A file is the magic "\x93NUMPY", a version (major, minor), the header
 * length (2 bytes in 1.0, 4 bytes after), a header that is the text of a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)},
 * then the raw data. The header is parsed as a small Python literal grammar,
 * so key order, spacing, quotes and trailing commas do not matter. */
#include "mfx/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MFX_NPY_MAGIC "\x93NUMPY"
#define MFX_NPY_MAGIC_LEN 6
#define MFX_NPY_MAX_HEADER (1u << 24)
#define MFX_NPY_ALIGN 64

/* ---- dtype descriptors --------------------------------------------------- */

typedef struct {
  const char *code; /* descr without its byte-order character */
  mfx_dtype dtype;
} mfx_npy_descr;

static const mfx_npy_descr mfx_npy_descrs[] = {
  {"b1", MFX_BOOL}, {"i1", MFX_I8},  {"i2", MFX_I16}, {"i4", MFX_I32}, {"i8", MFX_I64},
  {"u1", MFX_U8},   {"u4", MFX_U32}, {"u8", MFX_U64}, {"f4", MFX_F32},
};

static const char *npy_descr_code(mfx_dtype t) {
  for (size_t i = 0; i < sizeof mfx_npy_descrs / sizeof mfx_npy_descrs[0]; i++) {
    if (mfx_npy_descrs[i].dtype == t) return mfx_npy_descrs[i].code;
  }
  return NULL;
}

/* '<' little-endian, '|' not applicable (one-byte types), '>' big-endian. */
static mfx_status npy_parse_descr(const char *path, const char *descr, mfx_dtype *out) {
  char order = descr[0];
  const char *code = descr + 1;
  for (size_t i = 0; i < sizeof mfx_npy_descrs / sizeof mfx_npy_descrs[0]; i++) {
    if (strcmp(code, mfx_npy_descrs[i].code) != 0) continue;
    mfx_dtype t = mfx_npy_descrs[i].dtype;
    int one_byte = mfx_dtype_size(t) == 1;
    if (order == '<' || (one_byte && (order == '|' || order == '>'))) {
      *out = t;
      return MFX_OK;
    }
    if (order == '>') {
      return mfx_fail(MFX_ERR_FORMAT,
                      "npy %s: descr '%s' is big-endian; only little-endian data is "
                      "supported (save with arr.astype(arr.dtype.newbyteorder('<')))",
                      path, descr);
    }
    break;
  }
  return mfx_fail(MFX_ERR_FORMAT,
                  "npy %s: descr '%s' is not supported; expected one of '|b1' '|i1' '<i2' "
                  "'<i4' '<i8' '|u1' '<u4' '<u8' '<f4'",
                  path, descr);
}

/* ---- the header: a Python dict literal ------------------------------------ */

typedef struct {
  const char *path;
  const char *text;
  size_t len;
  size_t pos;
} mfx_npy_parser;

typedef struct {
  char descr[16];
  int fortran_order;
  int ndim;
  int64_t shape[MFX_MAX_DIMS];
  unsigned seen; /* bit 0 descr, bit 1 fortran_order, bit 2 shape */
} mfx_npy_header;

static void npy_skip_space(mfx_npy_parser *p) {
  while (p->pos < p->len) {
    char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    p->pos++;
  }
}

static int npy_peek(mfx_npy_parser *p) {
  npy_skip_space(p);
  return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static mfx_status npy_syntax(mfx_npy_parser *p, const char *expected) {
  return mfx_fail(MFX_ERR_FORMAT, "npy %s: header is not a valid dict at offset %zu: "
                  "expected %s",
                  p->path, p->pos, expected);
}

static mfx_status npy_expect(mfx_npy_parser *p, char c, const char *expected) {
  if (npy_peek(p) != (unsigned char)c) return npy_syntax(p, expected);
  p->pos++;
  return MFX_OK;
}

/* A quoted string without escapes, as numpy writes them. */
static mfx_status npy_parse_string(mfx_npy_parser *p, char *out, size_t cap) {
  int quote = npy_peek(p);
  if (quote != '\'' && quote != '"') return npy_syntax(p, "a quoted string");
  size_t start = ++p->pos;
  while (p->pos < p->len && p->text[p->pos] != quote) {
    if (p->text[p->pos] == '\\') return npy_syntax(p, "a string without escapes");
    p->pos++;
  }
  if (p->pos >= p->len) return npy_syntax(p, "a closing quote");
  size_t n = p->pos - start;
  p->pos++;
  if (n >= cap) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: header string '%.*s' is longer than %zu bytes",
                    p->path, (int)(n > 40 ? 40 : n), p->text + start, cap - 1);
  }
  memcpy(out, p->text + start, n);
  out[n] = '\0';
  return MFX_OK;
}

static mfx_status npy_parse_bool(mfx_npy_parser *p, int *out) {
  npy_skip_space(p);
  const char *rest = p->text + p->pos;
  size_t left = p->len - p->pos;
  if (left >= 4 && memcmp(rest, "True", 4) == 0) {
    *out = 1;
    p->pos += 4;
  } else if (left >= 5 && memcmp(rest, "False", 5) == 0) {
    *out = 0;
    p->pos += 5;
  } else {
    return npy_syntax(p, "True or False");
  }
  return MFX_OK;
}

/* A non-negative integer; Python 2 files may carry an 'L' suffix. */
static mfx_status npy_parse_dim(mfx_npy_parser *p, int64_t *out) {
  int c = npy_peek(p);
  if (c < '0' || c > '9') return npy_syntax(p, "a non-negative integer dimension");
  int64_t v = 0;
  while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9') {
    int digit = p->text[p->pos] - '0';
    if (v > (INT64_MAX - digit) / 10) {
      return mfx_fail(MFX_ERR_FORMAT, "npy %s: shape dimension at offset %zu overflows int64",
                      p->path, p->pos);
    }
    v = v * 10 + digit;
    p->pos++;
  }
  if (p->pos < p->len && p->text[p->pos] == 'L') p->pos++;
  *out = v;
  return MFX_OK;
}

/* (), (5,), (2, 3) and (2, 3,) */
static mfx_status npy_parse_shape(mfx_npy_parser *p, mfx_npy_header *h) {
  mfx_status st = npy_expect(p, '(', "'(' opening the shape tuple");
  h->ndim = 0;
  while (st == MFX_OK && npy_peek(p) != ')') {
    if (h->ndim == MFX_MAX_DIMS) {
      return mfx_fail(MFX_ERR_FORMAT, "npy %s: shape has more than %d dimensions", p->path,
                      MFX_MAX_DIMS);
    }
    st = npy_parse_dim(p, &h->shape[h->ndim++]);
    if (st == MFX_OK && npy_peek(p) != ')') {
      st = npy_expect(p, ',', "',' or ')' in the shape tuple");
    }
  }
  if (st != MFX_OK) return st;
  p->pos++;
  return MFX_OK;
}

static mfx_status npy_parse_entry(mfx_npy_parser *p, mfx_npy_header *h) {
  char key[32];
  mfx_status st = npy_parse_string(p, key, sizeof key);
  if (st == MFX_OK) st = npy_expect(p, ':', "':' after a key");
  if (st != MFX_OK) return st;
  unsigned bit;
  if (strcmp(key, "descr") == 0) {
    bit = 1u;
    st = npy_parse_string(p, h->descr, sizeof h->descr);
  } else if (strcmp(key, "fortran_order") == 0) {
    bit = 2u;
    st = npy_parse_bool(p, &h->fortran_order);
  } else if (strcmp(key, "shape") == 0) {
    bit = 4u;
    st = npy_parse_shape(p, h);
  } else {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: header has unexpected key '%s'; expected "
                    "'descr', 'fortran_order' and 'shape'",
                    p->path, key);
  }
  if (st != MFX_OK) return st;
  if (h->seen & bit) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: header repeats key '%s'", p->path, key);
  }
  h->seen |= bit;
  return MFX_OK;
}

static mfx_status npy_parse_header(const char *path, const char *text, size_t len,
                                       mfx_npy_header *h) {
  mfx_npy_parser p = {path, text, len, 0};
  memset(h, 0, sizeof *h);
  mfx_status st = npy_expect(&p, '{', "'{' opening the header dict");
  while (st == MFX_OK && npy_peek(&p) != '}') {
    st = npy_parse_entry(&p, h);
    if (st == MFX_OK && npy_peek(&p) != '}') {
      st = npy_expect(&p, ',', "',' or '}' after a dict entry");
    }
  }
  if (st != MFX_OK) return st;
  p.pos++;
  if (npy_peek(&p) != -1) return npy_syntax(&p, "only padding after the dict");
  if (h->seen != 7u) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: header lacks %s%s%s", path,
                    (h->seen & 1u) ? "" : "'descr' ",
                    (h->seen & 2u) ? "" : "'fortran_order' ", (h->seen & 4u) ? "" : "'shape'");
  }
  return MFX_OK;
}

/* ---- load -------------------------------------------------------------- */

static uint32_t npy_read_le(const unsigned char *b, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

/* Reads the preamble and returns the header text (malloc'd) and its length. */
static mfx_status npy_read_header_text(const char *path, FILE *f, char **text,
                                           size_t *len) {
  unsigned char pre[MFX_NPY_MAGIC_LEN + 2 + 4];
  if (fread(pre, 1, MFX_NPY_MAGIC_LEN + 2, f) != MFX_NPY_MAGIC_LEN + 2 ||
      memcmp(pre, MFX_NPY_MAGIC, MFX_NPY_MAGIC_LEN) != 0) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: not a .npy file (missing the \\x93NUMPY magic)",
                    path);
  }
  int major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: format version %d.%d; expected 1.0, 2.0 or 3.0",
                    path, major, minor);
  }
  int len_bytes = major == 1 ? 2 : 4;
  if (fread(pre + 8, 1, (size_t)len_bytes, f) != (size_t)len_bytes) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: file ends inside the header length", path);
  }
  *len = npy_read_le(pre + 8, len_bytes);
  if (*len > MFX_NPY_MAX_HEADER) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: header length %zu exceeds %u bytes", path, *len,
                    MFX_NPY_MAX_HEADER);
  }
  *text = malloc(*len + 1);
  if (*text == NULL) return mfx_fail(MFX_ERR_NOMEM, "npy %s: out of memory for header", path);
  if (fread(*text, 1, *len, f) != *len) {
    free(*text);
    *text = NULL;
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: file ends inside the %zu-byte header", path,
                    *len);
  }
  (*text)[*len] = '\0';
  return MFX_OK;
}

static mfx_status npy_read_header(const char *path, FILE *f, mfx_npy_header *h) {
  char *text = NULL;
  size_t len = 0;
  mfx_status st = npy_read_header_text(path, f, &text, &len);
  if (st != MFX_OK) return st;
  if (memchr(text, '\0', len) != NULL) {
    st = mfx_fail(MFX_ERR_FORMAT, "npy %s: header contains a NUL byte", path);
  } else {
    st = npy_parse_header(path, text, len, h);
  }
  free(text);
  if (st == MFX_OK && h->fortran_order) {
    st = mfx_fail(MFX_ERR_FORMAT, "npy %s: fortran_order is True; only C order is supported "
                  "(save np.ascontiguousarray(arr))",
                  path);
  }
  return st;
}

static mfx_status npy_read_data(const char *path, FILE *f, mfx_array *a) {
  size_t bytes = (size_t)mfx_array_numel(a) * mfx_dtype_size(a->dtype);
  size_t got = fread(a->data, 1, bytes, f);
  if (got != bytes) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: data truncated: expected %zu bytes after the "
                    "header, found %zu",
                    path, bytes, got);
  }
  return MFX_OK;
}

/* Bytes of data the header describes; a format error when that overflows. */
static mfx_status npy_data_bytes(const char *path, const mfx_npy_header *h, mfx_dtype t,
                                     size_t *bytes) {
  size_t total = mfx_dtype_size(t);
  for (int i = 0; i < h->ndim; i++) {
    if (h->shape[i] != 0 && total > SIZE_MAX / (uint64_t)h->shape[i]) {
      return mfx_fail(MFX_ERR_FORMAT, "npy %s: shape dimension %d makes the data size overflow",
                      path, i);
    }
    total *= (size_t)h->shape[i];
  }
  *bytes = total;
  return MFX_OK;
}

/* Compares what is left of a regular file with what the header promises
 * before anything is allocated, so a corrupt shape cannot ask for terabytes.
 * Streams that cannot seek pass here and are checked while reading. */
static mfx_status npy_check_data_size(const char *path, FILE *f, size_t bytes) {
  long here = ftell(f);
  if (here < 0 || fseek(f, 0, SEEK_END) != 0) return MFX_OK;
  long end = ftell(f);
  if (fseek(f, here, SEEK_SET) != 0) {
    return mfx_fail(MFX_ERR_IO, "npy %s: cannot seek back to the data: %s", path,
                    strerror(errno));
  }
  size_t left = end > here ? (size_t)(end - here) : 0;
  if (left < bytes) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: data truncated: expected %zu bytes after the "
                    "header, found %zu",
                    path, bytes, left);
  }
  if (left > bytes) {
    return mfx_fail(MFX_ERR_FORMAT, "npy %s: %zu extra bytes after the %zu bytes of data the "
                    "header describes (corrupt header or file?)",
                    path, left - bytes, bytes);
  }
  return MFX_OK;
}

mfx_status mfx_npy_load(const char *path, mfx_array *out) {
  if (path == NULL || out == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "npy load: path and output must not be NULL");
  }
  memset(out, 0, sizeof *out);
  FILE *f = NULL;
  mfx_status opened = mfx_file_open_read(path, "npy", MFX_FILE_CAP_NPY, &f, NULL);
  if (opened != MFX_OK) return opened == MFX_ERR_NOT_FOUND ? MFX_ERR_IO : opened;
  mfx_npy_header h;
  mfx_dtype t = MFX_F32;
  mfx_status st = npy_read_header(path, f, &h);
  size_t bytes = 0;
  if (st == MFX_OK) st = npy_parse_descr(path, h.descr, &t);
  if (st == MFX_OK) st = npy_data_bytes(path, &h, t, &bytes);
  if (st == MFX_OK) st = npy_check_data_size(path, f, bytes);
  if (st == MFX_OK) {
    st = mfx_array_create(out, t, h.ndim, h.shape);
    if (st != MFX_OK) st = mfx_fail_context(st, "npy %s", path);
  }
  if (st == MFX_OK) st = npy_read_data(path, f, out);
  fclose(f);
  if (st != MFX_OK) mfx_array_free(out);
  return st;
}

/* ---- save -------------------------------------------------------------- */

/* Writes the dict, padded with spaces and a final newline so that the data
 * starts on a 64-byte boundary. Returns the dict length, or 0 on overflow. */
static size_t npy_format_header(const mfx_array *a, size_t preamble, char *buf,
                                    size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                              mfx_dtype_size(a->dtype) == 1 ? '|' : '<',
                              npy_descr_code(a->dtype));
  for (int i = 0; i < a->ndim && n < cap; i++) {
    n += (size_t)snprintf(buf + n, cap - n, i == 0 ? "%lld" : ", %lld",
                          (long long)a->shape[i]);
  }
  if (n < cap) n += (size_t)snprintf(buf + n, cap - n, "%s), }", a->ndim == 1 ? "," : "");
  size_t total = (preamble + n + 1 + MFX_NPY_ALIGN - 1) / MFX_NPY_ALIGN * MFX_NPY_ALIGN;
  if (total - preamble > cap) return 0;
  memset(buf + n, ' ', total - preamble - n);
  buf[total - preamble - 1] = '\n';
  return total - preamble;
}

static mfx_status npy_check_savable(const char *path, const mfx_array *a) {
  if ((int)a->dtype < 0 || a->dtype >= MFX_DTYPE_COUNT) {
    return mfx_fail(MFX_ERR_INVALID, "npy %s: cannot save dtype %d", path, (int)a->dtype);
  }
  if (a->ndim < 0 || a->ndim > MFX_MAX_DIMS) {
    return mfx_fail(MFX_ERR_INVALID, "npy %s: ndim=%d, expected 0..%d", path, a->ndim,
                    MFX_MAX_DIMS);
  }
  for (int i = 0; i < a->ndim; i++) {
    if (a->shape[i] < 0) {
      return mfx_fail(MFX_ERR_INVALID, "npy %s: shape[%d]=%lld is negative", path, i,
                      (long long)a->shape[i]);
    }
  }
  if (a->data == NULL && mfx_array_numel(a) > 0) {
    return mfx_fail(MFX_ERR_INVALID, "npy %s: array data is NULL", path);
  }
  return MFX_OK;
}

static mfx_status npy_write(const char *path, FILE *f, const mfx_array *a) {
  char header[512];
  size_t len = npy_format_header(a, MFX_NPY_MAGIC_LEN + 4, header, sizeof header);
  if (len == 0) return mfx_fail(MFX_ERR_INVALID, "npy %s: header too long", path);
  unsigned char pre[MFX_NPY_MAGIC_LEN + 4] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                               (unsigned char)(len & 0xff),
                                               (unsigned char)(len >> 8)};
  size_t bytes = (size_t)mfx_array_numel(a) * mfx_dtype_size(a->dtype);
  if (fwrite(pre, 1, sizeof pre, f) != sizeof pre || fwrite(header, 1, len, f) != len ||
      (bytes > 0 && fwrite(a->data, 1, bytes, f) != bytes)) {
    return mfx_fail(MFX_ERR_IO, "npy %s: write failed: %s", path, strerror(errno));
  }
  return MFX_OK;
}

mfx_status mfx_npy_save(const char *path, const mfx_array *a) {
  if (path == NULL || a == NULL) {
    return mfx_fail(MFX_ERR_INVALID, "npy save: path and array must not be NULL");
  }
  mfx_status st = npy_check_savable(path, a);
  if (st != MFX_OK) return st;
  mfx_file_writer w;
  st = mfx_file_write_begin(&w, path, "npy");
  if (st != MFX_OK) return st;
  st = npy_write(path, w.f, a);
  if (st == MFX_OK) return mfx_file_write_commit(&w);
  mfx_file_write_abort(&w);
  return st;
}
