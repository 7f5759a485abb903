/* The artifact container: one file holding kernels and everything needed to
 * run them (docs/artifact.md). A 64-byte header (magic, format version, file
 * size, FNV-1a 64 checksum of the whole file), a table of sections, then the
 * sections: per kernel a fixed-width record, its arguments, its launches, its
 * schedule configuration and its code. All integers are little-endian and
 * fixed-width; every field is checked on decode, so a damaged file is an
 * error, never a crash. libc only. */
#include "artifact_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ------------------------------------------------------------------ */

static const unsigned char art_magic[8] = {0x89, 'M', 'F', 'X', '\r', '\n', 0x1a, '\n'};

#define ART_HEADER_BYTES 64
#define ART_ENTRY_BYTES 32
#define ART_KERNEL_BYTES 784
#define ART_ARG_BYTES 144
#define ART_LAUNCH_BYTES 240
#define ART_ALIGN 8
#define ART_CHECKSUM_OFFSET 24
#define ART_SECTIONS_PER_KERNEL 5
#define ART_MAX_SECTIONS (MFX_ARTIFACT_MAX_KERNELS * 8)
#define ART_MAX_ARG_BYTES ((uint64_t)1 << 48)
#define ART_MAX_BLOCK_THREADS 1024u

typedef enum {
  ART_SEC_KERNEL = 1,
  ART_SEC_ARGS = 2,
  ART_SEC_LAUNCHES = 3,
  ART_SEC_CONFIG = 4,
  ART_SEC_HOST_SO = 5,
  ART_SEC_PTX = 6,
  ART_SEC_CUBIN = 7,
  ART_SEC_MANIFEST = 8, /* the file's, not a kernel's: at most one, kernel index 0 */
  ART_SEC_TYPE_COUNT
} art_section_type;

static const char *const art_section_names[ART_SEC_TYPE_COUNT] = {
    "?", "kernel", "args", "launches", "config", "host_so", "ptx", "cubin", "manifest"};

typedef struct {
  uint32_t type, kernel;
  uint64_t offset, size;
} art_section;

/* ---- little-endian fields ------------------------------------------------------ */

static void art_put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void art_put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t art_get_u32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t art_get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* A string field: the text, then zeros to the field's width. */
static void art_put_string(unsigned char *p, size_t width, const char *s) {
  size_t n = strnlen(s, width - 1);
  memcpy(p, s, n);
  memset(p + n, 0, width - n);
}

/* FNV-1a 64 over the whole image, the checksum field read as zeros. */
static uint64_t art_checksum(const unsigned char *data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++) {
    unsigned char b = (i >= ART_CHECKSUM_OFFSET && i < ART_CHECKSUM_OFFSET + 8) ? 0 : data[i];
    h = (h ^ b) * 0x100000001b3ull;
  }
  return h;
}

/* ---- targets and machines ------------------------------------------------------- */

int art_parse_target(const char *text, art_target *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(text, "cpu") == 0) {
    out->kind = ART_TARGET_CPU;
    return 0;
  }
  if (strncmp(text, "cuda:sm_", 8) != 0) return -1;
  const char *p = text + 8;
  int sm = 0, digits = 0;
  while (*p >= '0' && *p <= '9' && digits < 4) sm = sm * 10 + (*p++ - '0'), digits++;
  if (digits < 2 || sm < 10) return -1;
  if (*p == 'a') out->arch_specific = 1, p++;
  if (*p != '\0') return -1;
  out->kind = ART_TARGET_CUDA;
  out->sm = sm;
  return 0;
}

const char *mfx_artifact_host_machine(void) {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
  return "ppc64le";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64";
#else
  return "unknown";
#endif
}

/* ---- kernel helpers ----------------------------------------------------------------- */

const char *mfx_arg_role_name(mfx_arg_role role) {
  switch (role) {
  case MFX_ARG_INPUT: return "input";
  case MFX_ARG_OUTPUT: return "output";
  case MFX_ARG_WORKSPACE: return "workspace";
  }
  return "unknown role";
}

int mfx_artifact_role_count(const mfx_artifact_kernel *k, mfx_arg_role role) {
  int n = 0;
  for (int i = 0; i < k->n_args; i++) n += k->args[i].role == role;
  return n;
}

int mfx_artifact_role_first(const mfx_artifact_kernel *k, mfx_arg_role role) {
  for (int i = 0; i < k->n_args; i++)
    if (k->args[i].role == role) return i;
  return k->n_args;
}

size_t mfx_artifact_arg_bytes(const mfx_artifact_arg *a) {
  size_t bytes = mfx_dtype_size(a->dtype);
  for (int i = 0; i < a->ndim; i++) bytes *= (size_t)a->shape[i];
  return bytes;
}

mfx_status mfx_artifact_alloc_arrays(const mfx_artifact_kernel *k, mfx_arg_role role,
                                     mfx_array *arrays) {
  int first = mfx_artifact_role_first(k, role), n = mfx_artifact_role_count(k, role);
  for (int i = 0; i < n; i++) {
    const mfx_artifact_arg *a = &k->args[first + i];
    mfx_status st = mfx_array_create(&arrays[i], a->dtype, a->ndim, a->shape);
    if (st != MFX_OK) {
      for (int j = 0; j < i; j++) mfx_array_free(&arrays[j]);
      return mfx_fail_context(st, "kernel %s: %s %s", k->name, mfx_arg_role_name(role), a->name);
    }
  }
  return MFX_OK;
}

/* ---- validation ----------------------------------------------------------------------- */

/* Context for messages: "artifact k.mfxa: kernel linear: ". */
typedef struct {
  const char *label;
  const char *kernel;
} art_where;

#define ART_FAIL(where, status, fmt, ...)                                                \
  mfx_fail((status), "artifact %s: kernel %s: " fmt, (where)->label, (where)->kernel, \
           __VA_ARGS__)

static int art_is_ident_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A NUL within width bytes, printable before it. */
static int art_text_ok(const char *s, size_t width) {
  const char *nul = memchr(s, '\0', width);
  if (nul == NULL) return 0;
  for (const char *p = s; p < nul; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return 0;
  return 1;
}

/* Non-empty [A-Za-z0-9_]+ not starting with a digit, NUL within width. */
static int art_ident_ok(const char *s, size_t width) {
  if (memchr(s, '\0', width) == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (const char *p = s; *p != '\0'; p++)
    if (!art_is_ident_char(*p)) return 0;
  return 1;
}

static mfx_status art_check_ident(const art_where *w, const char *what, const char *s,
                                  size_t width) {
  if (art_ident_ok(s, width)) return MFX_OK;
  return ART_FAIL(w, MFX_ERR_FORMAT, "%s must be a non-empty name of letters, digits and '_' "
                  "(at most %zu characters)", what, width - 1);
}

static mfx_status art_check_text(const art_where *w, const char *what, const char *s,
                                 size_t width) {
  if (art_text_ok(s, width)) return MFX_OK;
  return ART_FAIL(w, MFX_ERR_FORMAT, "%s is not printable text of at most %zu characters", what,
                  width - 1);
}

static mfx_status art_check_dims(const art_where *w, const mfx_artifact_kernel *k) {
  if (k->n_dims < 0 || k->n_dims > MFX_MAX_DIMS)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%d dims, expected 0..%d", k->n_dims, MFX_MAX_DIMS);
  for (int d = 0; d < k->n_dims; d++) {
    MFX_TRY(art_check_ident(w, "a dim name", k->dim_names[d], MFX_ARTIFACT_DIM_NAME_BYTES));
    if (k->dims[d] <= 0)
      return ART_FAIL(w, MFX_ERR_FORMAT, "dim %s=%lld must be positive", k->dim_names[d],
                      (long long)k->dims[d]);
  }
  return MFX_OK;
}

static mfx_status art_check_shape(const art_where *w, const mfx_artifact_arg *a) {
  if (a->ndim < 0 || a->ndim > MFX_MAX_DIMS)
    return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s has %d dimensions, expected 0..%d", a->name,
                    a->ndim, MFX_MAX_DIMS);
  uint64_t bytes = mfx_dtype_size(a->dtype);
  for (int i = 0; i < a->ndim; i++) {
    if (a->shape[i] <= 0 || (uint64_t)a->shape[i] > ART_MAX_ARG_BYTES / bytes)
      return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s: shape[%d]=%lld is not positive or is "
                      "too large", a->name, i, (long long)a->shape[i]);
    bytes *= (uint64_t)a->shape[i];
  }
  return MFX_OK;
}

/* Arguments in order inputs, outputs (at least one), workspace; unique names. */
static mfx_status art_check_args(const art_where *w, const mfx_artifact_kernel *k) {
  if (k->n_args < 1 || k->n_args > MFX_ARTIFACT_MAX_ARGS)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%d arguments, expected 1..%d", k->n_args,
                    MFX_ARTIFACT_MAX_ARGS);
  int last_role = MFX_ARG_INPUT;
  for (int i = 0; i < k->n_args; i++) {
    const mfx_artifact_arg *a = &k->args[i];
    MFX_TRY(art_check_ident(w, "an argument name", a->name, MFX_ARTIFACT_NAME_BYTES));
    if ((int)a->dtype < 0 || a->dtype >= MFX_DTYPE_COUNT)
      return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s has an unknown dtype %d", a->name,
                      (int)a->dtype);
    if (a->role < MFX_ARG_INPUT || a->role > MFX_ARG_WORKSPACE || (int)a->role < last_role)
      return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s: role %d out of order (inputs, then "
                      "outputs, then workspace)", a->name, (int)a->role);
    last_role = (int)a->role;
    MFX_TRY(art_check_shape(w, a));
    for (int j = 0; j < i; j++)
      if (strcmp(k->args[j].name, a->name) == 0)
        return ART_FAIL(w, MFX_ERR_FORMAT, "argument name %s appears twice", a->name);
  }
  if (mfx_artifact_role_count(k, MFX_ARG_OUTPUT) == 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "no output argument");
  return MFX_OK;
}

/* ---- the kernel against its op: dims, argument names, dtypes, shapes ---------------- */

void art_shape_text(int ndim, const int64_t *shape, const char *sep, char *buf, size_t size) {
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? sep : "", (long long)shape[i]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

static mfx_status art_check_op_arg(const art_where *w, const mfx_op_interface *f,
                                   const mfx_op_interface_tensor *t, const int64_t *dims,
                                   const mfx_artifact_arg *a) {
  int64_t want[MFX_MAX_DIMS] = {0};
  mfx_op_interface_shape(f, t, dims, want);
  int same = strcmp(a->name, t->name) == 0 && a->dtype == t->dtype && a->ndim == t->ndim;
  for (int i = 0; same && i < t->ndim; i++) same = a->shape[i] == want[i];
  if (same) return MFX_OK;
  char got_shape[160], want_shape[160];
  art_shape_text(a->ndim, a->shape, ", ", got_shape, sizeof got_shape);
  art_shape_text(t->ndim, want, ", ", want_shape, sizeof want_shape);
  return ART_FAIL(w, MFX_ERR_FORMAT, "%s %s is %s %s, but op %s with the kernel's dims takes "
                  "%s %s %s (dims, shapes and dtypes disagree)", mfx_arg_role_name(a->role),
                  a->name, mfx_dtype_name(a->dtype), got_shape, f->op, t->name,
                  mfx_dtype_name(t->dtype), want_shape);
}

/* For an op this runtime knows: the dims by name and order, then every input
 * and output as the op defines it under those dims. (Workspace arguments
 * are the schedule's own.) Ops it does not know get no cross-check: they
 * have no reference and no index inputs here either. */
static mfx_status art_check_op(const art_where *w, const mfx_artifact_kernel *k) {
  const mfx_op_interface *f = mfx_op_interface_find(k->op);
  if (f == NULL) return MFX_OK;
  int same = k->n_dims == f->n_dims;
  for (int d = 0; same && d < f->n_dims; d++) same = strcmp(k->dim_names[d], f->dims[d]) == 0;
  if (!same) {
    char names[160] = "";
    size_t used = 0;
    for (int d = 0; d < f->n_dims && used < sizeof names; d++)
      used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", d ? "," : "",
                               f->dims[d]);
    return ART_FAIL(w, MFX_ERR_FORMAT, "op %s takes the dims %s in this order; the kernel "
                    "record holds %d other dims", f->op, names, k->n_dims);
  }
  int n_in = mfx_artifact_role_count(k, MFX_ARG_INPUT);
  int n_out = mfx_artifact_role_count(k, MFX_ARG_OUTPUT);
  if (n_in != f->n_inputs || n_out != f->n_outputs)
    return ART_FAIL(w, MFX_ERR_FORMAT, "op %s takes %d inputs and %d outputs, the kernel %d "
                    "and %d", f->op, f->n_inputs, f->n_outputs, n_in, n_out);
  for (int i = 0; i < n_in; i++) MFX_TRY(art_check_op_arg(w, f, &f->inputs[i], k->dims,
                                                          &k->args[i]));
  for (int i = 0; i < n_out; i++)
    MFX_TRY(art_check_op_arg(w, f, &f->outputs[i], k->dims, &k->args[n_in + i]));
  return MFX_OK;
}

static mfx_status art_check_launch(const art_where *w, const mfx_artifact_kernel *k,
                                   const mfx_artifact_launch *l) {
  MFX_TRY(art_check_ident(w, "a launch name", l->name, MFX_ARTIFACT_LAUNCH_NAME_BYTES));
  uint64_t threads = 1;
  for (int i = 0; i < 3; i++) {
    if (l->grid[i] == 0 || l->block[i] == 0 || l->grid[i] > 0x7fffffffu)
      return ART_FAIL(w, MFX_ERR_FORMAT, "launch %s: grid (%u,%u,%u) or block (%u,%u,%u) has "
                      "a zero or too large entry", l->name, l->grid[0], l->grid[1], l->grid[2],
                      l->block[0], l->block[1], l->block[2]);
    threads *= l->block[i];
  }
  if (threads > ART_MAX_BLOCK_THREADS)
    return ART_FAIL(w, MFX_ERR_FORMAT, "launch %s: %llu threads per block, at most %u", l->name,
                    (unsigned long long)threads, ART_MAX_BLOCK_THREADS);
  if (l->n_args < 0 || l->n_args > MFX_ARTIFACT_MAX_ARGS)
    return ART_FAIL(w, MFX_ERR_FORMAT, "launch %s: %d parameters, expected 0..%d", l->name,
                    l->n_args, MFX_ARTIFACT_MAX_ARGS);
  for (int i = 0; i < l->n_args; i++)
    if (l->args[i] < 0 || l->args[i] >= k->n_args)
      return ART_FAIL(w, MFX_ERR_FORMAT, "launch %s: parameter %d names argument %d of %d",
                      l->name, i, l->args[i], k->n_args);
  return MFX_OK;
}

/* Features: comma-separated names of [a-z0-9._-]. */
static int art_features_ok(const char *s) {
  if (!art_text_ok(s, MFX_ARTIFACT_FEATURES_BYTES)) return 0;
  for (const char *p = s; *p != '\0'; p++) {
    int ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
             *p == '-' || (*p == ',' && p != s && p[1] != '\0' && p[1] != ',');
    if (!ok) return 0;
  }
  return 1;
}

static mfx_status art_check_cpu(const art_where *w, const mfx_artifact_kernel *k) {
  MFX_TRY(art_check_ident(w, "the CPU machine", k->machine, sizeof k->machine));
  MFX_TRY(art_check_ident(w, "the entry symbol", k->symbol, MFX_ARTIFACT_NAME_BYTES));
  if (!art_features_ok(k->cpu_features))
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "CPU features are not a comma-separated list");
  if (k->host_so == NULL || k->host_so_bytes == 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "target cpu but no host shared object");
  if (k->gpu_image_kind != MFX_GPU_IMAGE_NONE || k->n_launches != 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "target cpu but GPU code or launches");
  if (mfx_artifact_role_count(k, MFX_ARG_WORKSPACE) != 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "target cpu but workspace arguments (CPU kernels "
                    "allocate their own)");
  return MFX_OK;
}

static mfx_status art_check_cuda(const art_where *w, const mfx_artifact_kernel *k) {
  if (k->machine[0] != '\0' || k->symbol[0] != '\0' || k->cpu_features[0] != '\0' ||
      k->host_so != NULL)
    return ART_FAIL(w, MFX_ERR_FORMAT, "target %s but CPU fields or a host shared object",
                    k->target);
  if ((k->gpu_image_kind != MFX_GPU_IMAGE_PTX && k->gpu_image_kind != MFX_GPU_IMAGE_CUBIN) ||
      k->gpu_image == NULL || k->gpu_image_bytes == 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "target %s but no PTX or cubin", k->target);
  if (k->n_launches < 1 || k->n_launches > MFX_ARTIFACT_MAX_LAUNCHES)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%d launches, expected 1..%d", k->n_launches,
                    MFX_ARTIFACT_MAX_LAUNCHES);
  for (int i = 0; i < k->n_launches; i++) MFX_TRY(art_check_launch(w, k, &k->launches[i]));
  return MFX_OK;
}

static mfx_status art_check_target(const art_where *w, const mfx_artifact_kernel *k) {
  art_target t;
  if (!art_text_ok(k->target, sizeof k->target) || art_parse_target(k->target, &t) != 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "target \"%.31s\" is neither cpu nor cuda:sm_NN",
                    art_text_ok(k->target, sizeof k->target) ? k->target : "?");
  MFX_TRY(art_check_text(w, "machine", k->machine, sizeof k->machine));
  MFX_TRY(art_check_text(w, "symbol", k->symbol, sizeof k->symbol));
  MFX_TRY(art_check_text(w, "CPU features", k->cpu_features, sizeof k->cpu_features));
  return t.kind == ART_TARGET_CPU ? art_check_cpu(w, k) : art_check_cuda(w, k);
}

mfx_status mfx_artifact_kernel_validate(const mfx_artifact_kernel *k, const char *label) {
  if (k == NULL) return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel is NULL", label);
  art_where w = {label, art_ident_ok(k->name, sizeof k->name) ? k->name : "?"};
  MFX_TRY(art_check_ident(&w, "the kernel name", k->name, sizeof k->name));
  MFX_TRY(art_check_ident(&w, "the op name", k->op, sizeof k->op));
  MFX_TRY(art_check_text(&w, "the compiler version", k->compiler, sizeof k->compiler));
  MFX_TRY(art_check_text(&w, "the configuration", k->config, sizeof k->config));
  MFX_TRY(art_check_dims(&w, k));
  MFX_TRY(art_check_args(&w, k));
  return art_check_target(&w, k);
}

/* ---- encoding ----------------------------------------------------------------------- */

static uint64_t art_align(uint64_t n) { return (n + ART_ALIGN - 1) / ART_ALIGN * ART_ALIGN; }

/* The sections of kernel i, in file order (offsets not yet set). */
static int art_kernel_sections(const mfx_artifact_kernel *k, uint32_t i, art_section *out) {
  out[0] = (art_section){ART_SEC_KERNEL, i, 0, ART_KERNEL_BYTES};
  out[1] = (art_section){ART_SEC_ARGS, i, 0, (uint64_t)k->n_args * ART_ARG_BYTES};
  out[2] = (art_section){ART_SEC_LAUNCHES, i, 0, (uint64_t)k->n_launches * ART_LAUNCH_BYTES};
  out[3] = (art_section){ART_SEC_CONFIG, i, 0, strlen(k->config)};
  if (k->host_so != NULL) out[4] = (art_section){ART_SEC_HOST_SO, i, 0, k->host_so_bytes};
  else if (k->gpu_image_kind == MFX_GPU_IMAGE_PTX)
    out[4] = (art_section){ART_SEC_PTX, i, 0, k->gpu_image_bytes};
  else out[4] = (art_section){ART_SEC_CUBIN, i, 0, k->gpu_image_bytes};
  return ART_SECTIONS_PER_KERNEL;
}

static void art_write_kernel_record(unsigned char *p, const mfx_artifact_kernel *k) {
  memset(p, 0, ART_KERNEL_BYTES);
  art_put_string(p + 0, 64, k->name);
  art_put_string(p + 64, 64, k->op);
  art_put_string(p + 128, 32, k->target);
  art_put_string(p + 160, 32, k->machine);
  art_put_string(p + 192, 64, k->compiler);
  art_put_string(p + 256, 64, k->symbol);
  art_put_string(p + 320, 256, k->cpu_features);
  art_put_u32(p + 576, (uint32_t)k->n_dims);
  art_put_u32(p + 580, (uint32_t)k->n_args);
  art_put_u32(p + 584, (uint32_t)k->n_launches);
  for (int d = 0; d < k->n_dims; d++) {
    art_put_string(p + 592 + 24 * d, 16, k->dim_names[d]);
    art_put_u64(p + 592 + 24 * d + 16, (uint64_t)k->dims[d]);
  }
}

static void art_write_arg_record(unsigned char *p, const mfx_artifact_arg *a) {
  memset(p, 0, ART_ARG_BYTES);
  art_put_string(p, 64, a->name);
  art_put_string(p + 64, 8, mfx_dtype_name(a->dtype));
  art_put_u32(p + 72, (uint32_t)a->role);
  art_put_u32(p + 76, (uint32_t)a->ndim);
  for (int i = 0; i < a->ndim; i++) art_put_u64(p + 80 + 8 * i, (uint64_t)a->shape[i]);
}

static void art_write_launch_record(unsigned char *p, const mfx_artifact_launch *l) {
  memset(p, 0, ART_LAUNCH_BYTES);
  art_put_string(p, 128, l->name);
  for (int i = 0; i < 3; i++) {
    art_put_u32(p + 128 + 4 * i, l->grid[i]);
    art_put_u32(p + 140 + 4 * i, l->block[i]);
  }
  art_put_u64(p + 152, l->shared_static);
  art_put_u64(p + 160, l->shared_dynamic);
  art_put_u32(p + 168, (uint32_t)l->n_args);
  for (int i = 0; i < l->n_args; i++) art_put_u32(p + 176 + 4 * i, (uint32_t)l->args[i]);
}

static void art_write_section(unsigned char *image, const art_section *s,
                              const mfx_artifact_kernel *k) {
  unsigned char *p = image + s->offset;
  switch ((art_section_type)s->type) {
  case ART_SEC_KERNEL: art_write_kernel_record(p, k); break;
  case ART_SEC_ARGS:
    for (int i = 0; i < k->n_args; i++) art_write_arg_record(p + i * ART_ARG_BYTES, &k->args[i]);
    break;
  case ART_SEC_LAUNCHES:
    for (int i = 0; i < k->n_launches; i++)
      art_write_launch_record(p + i * ART_LAUNCH_BYTES, &k->launches[i]);
    break;
  case ART_SEC_CONFIG: memcpy(p, k->config, s->size); break;
  case ART_SEC_HOST_SO: memcpy(p, k->host_so, s->size); break;
  case ART_SEC_PTX:
  case ART_SEC_CUBIN: memcpy(p, k->gpu_image, s->size); break;
  case ART_SEC_MANIFEST: /* written by mfx_artifact_encode_manifest */
  case ART_SEC_TYPE_COUNT: break;
  }
}

static void art_write_header(unsigned char *image, uint64_t size, int n_kernels, int n_sections) {
  memcpy(image, art_magic, sizeof art_magic);
  art_put_u32(image + 8, MFX_ARTIFACT_FORMAT_VERSION);
  art_put_u32(image + 12, ART_HEADER_BYTES);
  art_put_u64(image + 16, size);
  art_put_u32(image + 32, (uint32_t)n_kernels);
  art_put_u32(image + 36, (uint32_t)n_sections);
  art_put_u64(image + 40, ART_HEADER_BYTES);
}

static mfx_status art_check_for_encoding(const mfx_artifact_kernel *kernels, int n) {
  if (kernels == NULL || n < 1 || n > MFX_ARTIFACT_MAX_KERNELS)
    return mfx_fail(MFX_ERR_INVALID, "artifact: %d kernels, expected 1..%d", n,
                    MFX_ARTIFACT_MAX_KERNELS);
  for (int i = 0; i < n; i++) {
    MFX_TRY(mfx_artifact_kernel_validate(&kernels[i], "(being written)"));
    art_where w = {"(being written)", kernels[i].name};
    MFX_TRY(art_check_op(&w, &kernels[i]));
    for (int j = 0; j < i; j++)
      if (strcmp(kernels[i].name, kernels[j].name) == 0)
        return mfx_fail(MFX_ERR_INVALID, "artifact: two kernels are named %s; kernel names "
                        "must be unique", kernels[i].name);
  }
  return MFX_OK;
}

/* Section offsets, in order after the table; the total size. */
static mfx_status art_layout(art_section *sections, int n_sections, uint64_t *size) {
  uint64_t at = art_align(ART_HEADER_BYTES + (uint64_t)n_sections * ART_ENTRY_BYTES);
  for (int i = 0; i < n_sections; i++) {
    if (sections[i].size > (UINT64_MAX >> 2) - at)
      return mfx_fail(MFX_ERR_INVALID, "artifact: section sizes overflow");
    sections[i].offset = at;
    at = art_align(at + sections[i].size);
  }
  if (at > SIZE_MAX) return mfx_fail(MFX_ERR_NOMEM, "artifact: %llu bytes do not fit in memory",
                                     (unsigned long long)at);
  *size = at;
  return MFX_OK;
}

static mfx_status art_check_manifest_text(const char *manifest) {
  if (manifest == NULL) return MFX_OK;
  size_t n = strlen(manifest);
  if (n == 0 || n > MFX_ARTIFACT_MANIFEST_MAX_BYTES)
    return mfx_fail(MFX_ERR_INVALID, "artifact: a manifest of %zu bytes; expected 1..%d",
                    n, MFX_ARTIFACT_MANIFEST_MAX_BYTES);
  return MFX_OK;
}

mfx_status mfx_artifact_encode(const mfx_artifact_kernel *kernels, int n_kernels, void **data,
                               size_t *size) {
  return mfx_artifact_encode_manifest(kernels, n_kernels, NULL, data, size);
}

mfx_status mfx_artifact_encode_manifest(const mfx_artifact_kernel *kernels, int n_kernels,
                                        const char *manifest, void **data, size_t *size) {
  if (data == NULL || size == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_encode: NULL output");
  *data = NULL;
  *size = 0;
  MFX_TRY(art_check_for_encoding(kernels, n_kernels));
  MFX_TRY(art_check_manifest_text(manifest));
  int n_kernel_sections = n_kernels * ART_SECTIONS_PER_KERNEL;
  int n_sections = n_kernel_sections + (manifest != NULL);
  art_section *sections = calloc((size_t)n_sections, sizeof *sections);
  if (sections == NULL) return mfx_fail(MFX_ERR_NOMEM, "artifact: out of memory");
  for (int i = 0; i < n_kernels; i++)
    art_kernel_sections(&kernels[i], (uint32_t)i, sections + i * ART_SECTIONS_PER_KERNEL);
  if (manifest != NULL)
    sections[n_kernel_sections] = (art_section){ART_SEC_MANIFEST, 0, 0, strlen(manifest)};
  uint64_t total = 0;
  mfx_status st = art_layout(sections, n_sections, &total);
  unsigned char *image = st == MFX_OK ? calloc(1, (size_t)total) : NULL;
  if (st == MFX_OK && image == NULL)
    st = mfx_fail(MFX_ERR_NOMEM, "artifact: out of memory for %llu bytes",
                  (unsigned long long)total);
  if (st == MFX_OK) {
    art_write_header(image, total, n_kernels, n_sections);
    for (int i = 0; i < n_sections; i++) {
      unsigned char *e = image + ART_HEADER_BYTES + i * ART_ENTRY_BYTES;
      art_put_u32(e, sections[i].type);
      art_put_u32(e + 4, sections[i].kernel);
      art_put_u64(e + 8, sections[i].offset);
      art_put_u64(e + 16, sections[i].size);
      if (sections[i].type == ART_SEC_MANIFEST)
        memcpy(image + sections[i].offset, manifest, sections[i].size);
      else
        art_write_section(image, &sections[i], &kernels[sections[i].kernel]);
    }
    art_put_u64(image + ART_CHECKSUM_OFFSET, art_checksum(image, (size_t)total));
    *data = image;
    *size = (size_t)total;
  }
  free(sections);
  return st;
}

/* ---- decoding: the header and the section table ------------------------------------- */

typedef struct {
  const unsigned char *data;
  size_t size;
  const char *label;
  uint32_t n_kernels, n_sections;
  art_section *sections;
} art_reader;

static mfx_status art_fail_file(const art_reader *r, mfx_status st, const char *what) {
  return mfx_fail(st, "artifact %s: %s", r->label, what);
}

static mfx_status art_check_magic(const art_reader *r) {
  size_t n = r->size < sizeof art_magic ? r->size : sizeof art_magic;
  if (memcmp(r->data, art_magic, n) != 0)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: not an mfx artifact (it does not start with "
                    "the artifact magic \\x89MFX\\r\\n\\x1a\\n)", r->label);
  if (r->size < ART_HEADER_BYTES)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: truncated: %zu bytes, shorter than the "
                    "%d-byte header", r->label, r->size, ART_HEADER_BYTES);
  return MFX_OK;
}

static mfx_status art_check_size_and_sum(const art_reader *r) {
  uint64_t recorded = art_get_u64(r->data + 16);
  if (recorded > r->size)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: truncated: the header says %llu bytes, the "
                    "file has %zu (checksum mismatch: file truncated or modified?)", r->label,
                    (unsigned long long)recorded, r->size);
  if (recorded < r->size)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: %zu bytes, but the header says %llu "
                    "(checksum mismatch: file truncated or modified?)", r->label, r->size,
                    (unsigned long long)recorded);
  if (art_checksum(r->data, r->size) != art_get_u64(r->data + ART_CHECKSUM_OFFSET))
    return art_fail_file(r, MFX_ERR_FORMAT, "checksum mismatch (file truncated or modified?)");
  return MFX_OK;
}

static int art_all_zero(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return 0;
  return 1;
}

static mfx_status art_read_header(art_reader *r) {
  MFX_TRY(art_check_magic(r));
  MFX_TRY(art_check_size_and_sum(r));
  uint32_t version = art_get_u32(r->data + 8);
  if (version != MFX_ARTIFACT_FORMAT_VERSION)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: format version %u; this runtime reads "
                    "version %d (recompile the artifact with a matching mfx)", r->label,
                    version, MFX_ARTIFACT_FORMAT_VERSION);
  r->n_kernels = art_get_u32(r->data + 32);
  r->n_sections = art_get_u32(r->data + 36);
  if (art_get_u32(r->data + 12) != ART_HEADER_BYTES ||
      art_get_u64(r->data + 40) != ART_HEADER_BYTES || !art_all_zero(r->data + 48, 16))
    return art_fail_file(r, MFX_ERR_FORMAT, "malformed header (header size, table offset or "
                                            "reserved bytes)");
  if (r->n_kernels < 1 || r->n_kernels > MFX_ARTIFACT_MAX_KERNELS ||
      r->n_sections > ART_MAX_SECTIONS ||
      ART_HEADER_BYTES + (uint64_t)r->n_sections * ART_ENTRY_BYTES > r->size)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: %u kernels in %u sections do not fit "
                    "(expected 1..%d kernels)", r->label, r->n_kernels, r->n_sections,
                    MFX_ARTIFACT_MAX_KERNELS);
  return MFX_OK;
}

/* Entry i of the table: a known type, an existing kernel, inside the file,
 * aligned and after the previous section. */
static mfx_status art_read_entry(art_reader *r, uint32_t i, uint64_t *previous_end) {
  const unsigned char *e = r->data + ART_HEADER_BYTES + (size_t)i * ART_ENTRY_BYTES;
  art_section *s = &r->sections[i];
  *s = (art_section){art_get_u32(e), art_get_u32(e + 4), art_get_u64(e + 8), art_get_u64(e + 16)};
  if (s->type < ART_SEC_KERNEL || s->type >= ART_SEC_TYPE_COUNT || s->kernel >= r->n_kernels ||
      !art_all_zero(e + 24, 8))
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: section %u has an unknown type %u or kernel "
                    "%u", r->label, i, s->type, s->kernel);
  if (s->offset % ART_ALIGN != 0 || s->offset < *previous_end || s->offset > r->size ||
      s->size > r->size - s->offset)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: section %u (%s) at %llu+%llu lies outside "
                    "the file or overlaps another", r->label, i, art_section_names[s->type],
                    (unsigned long long)s->offset, (unsigned long long)s->size);
  *previous_end = s->offset + s->size;
  return MFX_OK;
}

static mfx_status art_read_table(art_reader *r) {
  r->sections = calloc(r->n_sections > 0 ? r->n_sections : 1, sizeof *r->sections);
  if (r->sections == NULL) return art_fail_file(r, MFX_ERR_NOMEM, "out of memory");
  uint64_t end = ART_HEADER_BYTES + (uint64_t)r->n_sections * ART_ENTRY_BYTES;
  for (uint32_t i = 0; i < r->n_sections; i++) MFX_TRY(art_read_entry(r, i, &end));
  return MFX_OK;
}

/* ---- decoding: one kernel ------------------------------------------------------------- */

/* The sections of one kernel by type (NULL: absent). */
typedef struct {
  const art_section *of[ART_SEC_TYPE_COUNT];
} art_kernel_sections_t;

static mfx_status art_read_string(const art_where *w, const unsigned char *p, size_t width,
                                  char *out, const char *what) {
  const unsigned char *nul = memchr(p, 0, width);
  if (nul == NULL || !art_all_zero(nul, width - (size_t)(nul - p)))
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s field is not NUL-terminated and zero-padded", what);
  memcpy(out, p, width);
  return MFX_OK;
}

static mfx_status art_read_count(const art_where *w, const unsigned char *p, int max, int *out,
                                 const char *what) {
  uint32_t v = art_get_u32(p);
  if (v > (uint32_t)max)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%u %s, at most %d", v, what, max);
  *out = (int)v;
  return MFX_OK;
}

static mfx_status art_read_dims(const art_where *w, const unsigned char *p,
                                mfx_artifact_kernel *k) {
  for (int d = 0; d < MFX_MAX_DIMS; d++) {
    const unsigned char *e = p + 592 + 24 * d;
    if (d >= k->n_dims) {
      if (!art_all_zero(e, 24)) return ART_FAIL(w, MFX_ERR_FORMAT, "unused dim slot %d is not "
                                                "zero", d);
      continue;
    }
    MFX_TRY(art_read_string(w, e, 16, k->dim_names[d], "a dim name"));
    uint64_t v = art_get_u64(e + 16);
    if (v > INT64_MAX) return ART_FAIL(w, MFX_ERR_FORMAT, "dim %s is too large", k->dim_names[d]);
    k->dims[d] = (int64_t)v;
  }
  return MFX_OK;
}

static mfx_status art_read_kernel_record(const art_where *w, const unsigned char *p,
                                         mfx_artifact_kernel *k) {
  MFX_TRY(art_read_string(w, p, 64, k->name, "the kernel name"));
  MFX_TRY(art_read_string(w, p + 64, 64, k->op, "the op name"));
  MFX_TRY(art_read_string(w, p + 128, 32, k->target, "the target"));
  MFX_TRY(art_read_string(w, p + 160, 32, k->machine, "the machine"));
  MFX_TRY(art_read_string(w, p + 192, 64, k->compiler, "the compiler"));
  MFX_TRY(art_read_string(w, p + 256, 64, k->symbol, "the symbol"));
  MFX_TRY(art_read_string(w, p + 320, 256, k->cpu_features, "the CPU features"));
  MFX_TRY(art_read_count(w, p + 576, MFX_MAX_DIMS, &k->n_dims, "dims"));
  MFX_TRY(art_read_count(w, p + 580, MFX_ARTIFACT_MAX_ARGS, &k->n_args, "arguments"));
  MFX_TRY(art_read_count(w, p + 584, MFX_ARTIFACT_MAX_LAUNCHES, &k->n_launches, "launches"));
  if (art_get_u32(p + 588) != 0) return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "reserved field set");
  return art_read_dims(w, p, k);
}

static mfx_status art_read_arg(const art_where *w, const unsigned char *p, mfx_artifact_arg *a) {
  char dtype[8];
  MFX_TRY(art_read_string(w, p, 64, a->name, "an argument name"));
  MFX_TRY(art_read_string(w, p + 64, 8, dtype, "an argument dtype"));
  if (mfx_dtype_from_name(dtype, &a->dtype) != 0)
    return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s has unknown dtype \"%s\"", a->name, dtype);
  a->role = (mfx_arg_role)art_get_u32(p + 72);
  MFX_TRY(art_read_count(w, p + 76, MFX_MAX_DIMS, &a->ndim, "argument dimensions"));
  for (int i = 0; i < MFX_MAX_DIMS; i++) {
    uint64_t v = art_get_u64(p + 80 + 8 * i);
    if ((i >= a->ndim && v != 0) || v > INT64_MAX)
      return ART_FAIL(w, MFX_ERR_FORMAT, "argument %s: bad shape entry %d", a->name, i);
    a->shape[i] = (int64_t)v;
  }
  return MFX_OK;
}

static mfx_status art_read_launch(const art_where *w, const unsigned char *p,
                                  mfx_artifact_launch *l) {
  MFX_TRY(art_read_string(w, p, 128, l->name, "a launch name"));
  for (int i = 0; i < 3; i++) {
    l->grid[i] = art_get_u32(p + 128 + 4 * i);
    l->block[i] = art_get_u32(p + 140 + 4 * i);
  }
  l->shared_static = art_get_u64(p + 152);
  l->shared_dynamic = art_get_u64(p + 160);
  MFX_TRY(art_read_count(w, p + 168, MFX_ARTIFACT_MAX_ARGS, &l->n_args, "launch parameters"));
  if (art_get_u32(p + 172) != 0) return ART_FAIL(w, MFX_ERR_FORMAT, "%s", "reserved field set");
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) {
    uint32_t v = art_get_u32(p + 176 + 4 * i);
    if ((i >= l->n_args && v != 0) || v >= MFX_ARTIFACT_MAX_ARGS)
      return ART_FAIL(w, MFX_ERR_FORMAT, "launch %s: bad parameter entry %d", l->name, i);
    l->args[i] = (int)v;
  }
  return MFX_OK;
}

/* A section's size must equal count * record bytes. */
static mfx_status art_check_records(const art_where *w, const art_section *s, int count,
                                    uint64_t record_bytes) {
  if (s->size != (uint64_t)count * record_bytes)
    return ART_FAIL(w, MFX_ERR_FORMAT, "%s section holds %llu bytes, expected %d records of "
                    "%llu", art_section_names[s->type], (unsigned long long)s->size, count,
                    (unsigned long long)record_bytes);
  return MFX_OK;
}

static mfx_status art_read_config(const art_where *w, const art_reader *r, const art_section *s,
                                  mfx_artifact_kernel *k) {
  if (s->size >= MFX_ARTIFACT_CONFIG_BYTES || memchr(r->data + s->offset, 0, s->size) != NULL)
    return ART_FAIL(w, MFX_ERR_FORMAT, "the configuration (%llu bytes) is longer than %d bytes "
                    "or holds a NUL", (unsigned long long)s->size, MFX_ARTIFACT_CONFIG_BYTES - 1);
  memcpy(k->config, r->data + s->offset, s->size);
  k->config[s->size] = '\0';
  return MFX_OK;
}

static void art_read_code(const art_reader *r, const art_kernel_sections_t *ks,
                          mfx_artifact_kernel *k) {
  const art_section *so = ks->of[ART_SEC_HOST_SO], *ptx = ks->of[ART_SEC_PTX],
                    *cubin = ks->of[ART_SEC_CUBIN];
  if (so != NULL) {
    k->host_so = r->data + so->offset;
    k->host_so_bytes = so->size;
  }
  const art_section *gpu = ptx != NULL ? ptx : cubin;
  if (gpu != NULL) {
    k->gpu_image_kind = ptx != NULL ? MFX_GPU_IMAGE_PTX : MFX_GPU_IMAGE_CUBIN;
    k->gpu_image = r->data + gpu->offset;
    k->gpu_image_bytes = gpu->size;
  }
}

static mfx_status art_read_kernel(const art_reader *r, const art_kernel_sections_t *ks,
                                  uint32_t index, mfx_artifact_kernel *k) {
  char kernel_name[32];
  snprintf(kernel_name, sizeof kernel_name, "#%u", index);
  art_where w = {r->label, kernel_name};
  MFX_TRY(art_check_records(&w, ks->of[ART_SEC_KERNEL], 1, ART_KERNEL_BYTES));
  MFX_TRY(art_read_kernel_record(&w, r->data + ks->of[ART_SEC_KERNEL]->offset, k));
  w.kernel = art_ident_ok(k->name, sizeof k->name) ? k->name : kernel_name;
  MFX_TRY(art_check_records(&w, ks->of[ART_SEC_ARGS], k->n_args, ART_ARG_BYTES));
  for (int i = 0; i < k->n_args; i++)
    MFX_TRY(art_read_arg(&w, r->data + ks->of[ART_SEC_ARGS]->offset + i * ART_ARG_BYTES,
                         &k->args[i]));
  MFX_TRY(art_check_records(&w, ks->of[ART_SEC_LAUNCHES], k->n_launches, ART_LAUNCH_BYTES));
  for (int i = 0; i < k->n_launches; i++)
    MFX_TRY(art_read_launch(&w, r->data + ks->of[ART_SEC_LAUNCHES]->offset +
                                    i * ART_LAUNCH_BYTES, &k->launches[i]));
  MFX_TRY(art_read_config(&w, r, ks->of[ART_SEC_CONFIG], k));
  art_read_code(r, ks, k);
  MFX_TRY(mfx_artifact_kernel_validate(k, r->label));
  return art_check_op(&w, k);
}

/* Each kernel has exactly one kernel, args, launches and config section and
 * one code section (host_so, ptx or cubin). */
static mfx_status art_group_sections(const art_reader *r, uint32_t kernel,
                                     art_kernel_sections_t *out) {
  memset(out, 0, sizeof *out);
  int code = 0;
  for (uint32_t i = 0; i < r->n_sections; i++) {
    const art_section *s = &r->sections[i];
    if (s->kernel != kernel || s->type == ART_SEC_MANIFEST) continue;
    if (out->of[s->type] != NULL)
      return mfx_fail(MFX_ERR_FORMAT, "artifact %s: kernel #%u has two %s sections", r->label,
                      kernel, art_section_names[s->type]);
    out->of[s->type] = s;
    code += s->type >= ART_SEC_HOST_SO && s->type <= ART_SEC_CUBIN;
  }
  for (int t = ART_SEC_KERNEL; t <= ART_SEC_CONFIG; t++)
    if (out->of[t] == NULL)
      return mfx_fail(MFX_ERR_FORMAT, "artifact %s: kernel #%u has no %s section", r->label,
                      kernel, art_section_names[t]);
  if (code != 1)
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: kernel #%u has %d code sections, expected "
                    "one (host_so, ptx or cubin)", r->label, kernel, code);
  return MFX_OK;
}

static mfx_status art_read_kernels(const art_reader *r, mfx_artifact_kernel *kernels) {
  for (uint32_t i = 0; i < r->n_kernels; i++) {
    art_kernel_sections_t ks;
    MFX_TRY(art_group_sections(r, i, &ks));
    MFX_TRY(art_read_kernel(r, &ks, i, &kernels[i]));
    for (uint32_t j = 0; j < i; j++)
      if (strcmp(kernels[i].name, kernels[j].name) == 0)
        return mfx_fail(MFX_ERR_FORMAT, "artifact %s: two kernels are named %s", r->label,
                        kernels[i].name);
  }
  return MFX_OK;
}

/* The manifest section: at most one, of kernel index 0, 1 to
 * MFX_ARTIFACT_MANIFEST_MAX_BYTES of text without a NUL. */
static mfx_status art_read_manifest(const art_reader *r, const char **text, size_t *bytes) {
  const art_section *found = NULL;
  for (uint32_t i = 0; i < r->n_sections; i++) {
    const art_section *s = &r->sections[i];
    if (s->type != ART_SEC_MANIFEST) continue;
    if (found != NULL || s->kernel != 0)
      return art_fail_file(r, MFX_ERR_FORMAT, "more than one manifest section, or one that "
                                              "names a kernel");
    found = s;
  }
  if (found != NULL && (found->size == 0 || found->size > MFX_ARTIFACT_MANIFEST_MAX_BYTES ||
                        memchr(r->data + found->offset, 0, found->size) != NULL))
    return mfx_fail(MFX_ERR_FORMAT, "artifact %s: the manifest (%llu bytes) is empty, longer "
                    "than %d bytes or holds a NUL", r->label, (unsigned long long)found->size,
                    MFX_ARTIFACT_MANIFEST_MAX_BYTES);
  if (text != NULL) *text = found ? (const char *)r->data + found->offset : NULL;
  if (bytes != NULL) *bytes = found ? (size_t)found->size : 0;
  return MFX_OK;
}

mfx_status mfx_artifact_find_manifest(const void *data, size_t size, const char *label,
                                      const char **text, size_t *bytes) {
  if (text == NULL || bytes == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_find_manifest: NULL output");
  *text = NULL;
  *bytes = 0;
  art_reader r = {data, size, label != NULL ? label : "(memory)", 0, 0, NULL};
  if (data == NULL || size == 0) return art_fail_file(&r, MFX_ERR_FORMAT, "empty: not an artifact");
  mfx_status st = art_read_header(&r);
  if (st == MFX_OK) st = art_read_table(&r);
  if (st == MFX_OK) st = art_read_manifest(&r, text, bytes);
  free(r.sections);
  return st;
}

mfx_status mfx_artifact_decode(const void *data, size_t size, const char *label,
                               mfx_artifact_kernel **kernels, int *n_kernels) {
  if (kernels == NULL || n_kernels == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_decode: NULL output");
  *kernels = NULL;
  *n_kernels = 0;
  art_reader r = {data, size, label != NULL ? label : "(memory)", 0, 0, NULL};
  if (data == NULL && size > 0) return art_fail_file(&r, MFX_ERR_INVALID, "data is NULL");
  if (size == 0) return art_fail_file(&r, MFX_ERR_FORMAT, "empty (0 bytes): not an artifact");
  mfx_status st = art_read_header(&r);
  if (st == MFX_OK) st = art_read_table(&r);
  if (st == MFX_OK) st = art_read_manifest(&r, NULL, NULL);
  mfx_artifact_kernel *out = NULL;
  if (st == MFX_OK) {
    out = calloc(r.n_kernels, sizeof *out);
    if (out == NULL) st = art_fail_file(&r, MFX_ERR_NOMEM, "out of memory");
  }
  if (st == MFX_OK) st = art_read_kernels(&r, out);
  free(r.sections);
  if (st != MFX_OK) {
    free(out);
    return st;
  }
  *kernels = out;
  *n_kernels = (int)r.n_kernels;
  return MFX_OK;
}

/* ---- files ------------------------------------------------------------------------- */

mfx_status mfx_artifact_read_file(const char *path, void **data, size_t *size) {
  if (path == NULL || data == NULL || size == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_read_file: NULL argument");
  char *text = NULL;
  mfx_status st = mfx_file_read(path, "artifact", MFX_FILE_CAP_ARTIFACT, &text, size);
  *data = text;
  /* A missing artifact is an I/O error here, as it always was. */
  return st == MFX_ERR_NOT_FOUND ? MFX_ERR_IO : st;
}

mfx_status mfx_artifact_write_file(const char *path, const void *data, size_t size) {
  if (path == NULL || (data == NULL && size > 0))
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_write_file: NULL argument");
  return mfx_file_write(path, "artifact", data, size);
}
