/* A loaded artifact: the decoded kernels, the device backend that runs them
 * (module_cpu.c or module_cuda.c), and the checks every run makes on its
 * host arrays. Runs of one artifact are serialized by its own lock; nothing
 * here is global, so artifacts and threads work side by side. */
#include "artifact_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mfx_artifact {
  char label[512];
  void *bytes; /* the image; the kernels point into it */
  size_t size;
  int n_kernels;
  mfx_artifact_kernel *kernels;
  char *manifest; /* NUL-terminated copy; NULL: none */
  const art_backend *backend;
  void *state;
  pthread_mutex_t lock;
};

/* ---- loading ----------------------------------------------------------------- */

/* The device to use: the option, or what kernel 0 targets. */
static const char *art_device_spec(const mfx_artifact *art, const mfx_artifact_options *options) {
  if (options != NULL && options->device != NULL) return options->device;
  art_target t;
  art_parse_target(art->kernels[0].target, &t); /* validated by the decoder */
  return t.kind == ART_TARGET_CPU ? "cpu" : "cuda";
}

/* Every kernel's target must be of the backend's kind. */
static mfx_status art_check_targets(const mfx_artifact *art, const char *device) {
  for (int i = 0; i < art->n_kernels; i++) {
    const mfx_artifact_kernel *k = &art->kernels[i];
    art_target t;
    art_parse_target(k->target, &t);
    if (t.kind != art->backend->target)
      return mfx_fail(MFX_ERR_DEVICE, "artifact %s: kernel %s targets %s and cannot run on "
                      "device %s (load it on %s)", art->label, k->name, k->target, device,
                      t.kind == ART_TARGET_CPU ? "the cpu" : "a cuda device");
  }
  return MFX_OK;
}

static mfx_status art_open(mfx_artifact *art, const mfx_artifact_options *options) {
  mfx_status st = mfx_artifact_decode(art->bytes, art->size, art->label, &art->kernels,
                                      &art->n_kernels);
  if (st != MFX_OK) return st;
  const char *text = NULL;
  size_t bytes = 0;
  MFX_TRY(mfx_artifact_find_manifest(art->bytes, art->size, art->label, &text, &bytes));
  if (text != NULL) {
    art->manifest = malloc(bytes + 1);
    if (art->manifest == NULL) return mfx_fail(MFX_ERR_NOMEM, "artifact: out of memory");
    memcpy(art->manifest, text, bytes);
    art->manifest[bytes] = '\0';
  }
  const char *device = art_device_spec(art, options);
  art->backend = strcmp(device, "cpu") == 0 ? &art_cpu_backend : &art_cuda_backend;
  MFX_TRY(art_check_targets(art, device));
  int threads = options != NULL ? options->threads : 0;
  return art->backend->load(device, threads, art->label, art->kernels, art->n_kernels,
                            &art->state);
}

/* Takes ownership of bytes (freed on failure too). */
static mfx_status art_load_owned(void *bytes, size_t size, const char *label,
                                 const mfx_artifact_options *options, mfx_artifact **out) {
  mfx_artifact *art = calloc(1, sizeof *art);
  if (art == NULL) {
    free(bytes);
    return mfx_fail(MFX_ERR_NOMEM, "artifact %s: out of memory", label);
  }
  snprintf(art->label, sizeof art->label, "%s", label);
  art->bytes = bytes;
  art->size = size;
  if (pthread_mutex_init(&art->lock, NULL) != 0) {
    free(bytes);
    free(art);
    return mfx_fail(MFX_ERR_NOMEM, "artifact %s: cannot create its lock", label);
  }
  mfx_status st = art_open(art, options);
  if (st != MFX_OK) {
    art->state = NULL; /* a backend that failed has released what it took */
    mfx_artifact_free(art);
    return st;
  }
  *out = art;
  return MFX_OK;
}

mfx_status mfx_artifact_load(const char *path, const mfx_artifact_options *options,
                             mfx_artifact **out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_load: NULL output");
  *out = NULL;
  void *bytes = NULL;
  size_t size = 0;
  MFX_TRY(mfx_artifact_read_file(path, &bytes, &size));
  return art_load_owned(bytes, size, path, options, out);
}

mfx_status mfx_artifact_load_memory(const void *data, size_t size, const char *label,
                                    const mfx_artifact_options *options, mfx_artifact **out) {
  if (out == NULL) return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_load_memory: NULL output");
  *out = NULL;
  if (label == NULL) label = "(memory)";
  if (data == NULL && size > 0)
    return mfx_fail(MFX_ERR_INVALID, "artifact %s: data is NULL", label);
  void *copy = malloc(size > 0 ? size : 1);
  if (copy == NULL) return mfx_fail(MFX_ERR_NOMEM, "artifact %s: out of memory", label);
  if (size > 0) memcpy(copy, data, size);
  return art_load_owned(copy, size, label, options, out);
}

void mfx_artifact_free(mfx_artifact *art) {
  if (art == NULL) return;
  if (art->state != NULL) art->backend->unload(art->state);
  pthread_mutex_destroy(&art->lock);
  free(art->kernels);
  free(art->manifest);
  free(art->bytes);
  free(art);
}

/* ---- kernels ------------------------------------------------------------------- */

const char *mfx_artifact_label(const mfx_artifact *art) { return art->label; }

const char *mfx_artifact_device(const mfx_artifact *art) {
  return art->backend->device_name(art->state);
}

int mfx_artifact_kernel_count(const mfx_artifact *art) { return art->n_kernels; }

const char *mfx_artifact_manifest(const mfx_artifact *art) {
  return art != NULL ? art->manifest : NULL;
}

const mfx_artifact_kernel *mfx_artifact_kernel_at(const mfx_artifact *art, int index) {
  return index >= 0 && index < art->n_kernels ? &art->kernels[index] : NULL;
}

static void art_kernel_names(const mfx_artifact *art, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < art->n_kernels && used < size; i++) {
    int n = snprintf(buf + used, size - used, "%s%d:%s (%s)", i ? ", " : "", i,
                     art->kernels[i].name, art->kernels[i].op);
    if (n < 0) return;
    used += (size_t)n;
  }
}

/* A decimal index in range, or -1. */
static int art_parse_index(const char *key, int n) {
  if (key[0] == '\0' || strlen(key) > 6) return -1;
  int v = 0;
  for (const char *p = key; *p != '\0'; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v < n ? v : -1;
}

mfx_status mfx_artifact_find_kernel(const mfx_artifact *art, const char *key, int *index) {
  if (art == NULL || key == NULL || index == NULL)
    return mfx_fail(MFX_ERR_INVALID, "mfx_artifact_find_kernel: NULL argument");
  int by_op = -1, n_by_op = 0;
  for (int i = 0; i < art->n_kernels; i++) {
    if (strcmp(art->kernels[i].name, key) == 0) return *index = i, MFX_OK;
    if (strcmp(art->kernels[i].op, key) == 0 && n_by_op++ == 0) by_op = i;
  }
  *index = n_by_op == 1 ? by_op : art_parse_index(key, art->n_kernels);
  if (*index >= 0) return MFX_OK;
  char names[1024];
  art_kernel_names(art, names, sizeof names);
  if (n_by_op > 1)
    return mfx_fail(MFX_ERR_NOT_FOUND, "artifact %s: %d kernels compute op %s; name one: %s",
                    art->label, n_by_op, key, names);
  return mfx_fail(MFX_ERR_NOT_FOUND, "artifact %s: no kernel \"%s\"; its kernels (index:name "
                  "(op)): %s", art->label, key, names);
}

/* ---- running --------------------------------------------------------------------- */

static mfx_status art_check_array(const mfx_artifact *art, const mfx_artifact_kernel *k,
                                  const mfx_artifact_arg *a, const mfx_array *x) {
  const char *role = mfx_arg_role_name(a->role);
  if (x->data == NULL)
    return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel %s: %s %s has no data", art->label,
                    k->name, role, a->name);
  int same = x->dtype == a->dtype && x->ndim == a->ndim;
  for (int i = 0; same && i < a->ndim; i++) same = x->shape[i] == a->shape[i];
  if (same) return MFX_OK;
  char got[160], want[160];
  art_shape_text(x->ndim >= 0 && x->ndim <= MFX_MAX_DIMS ? x->ndim : 0, x->shape, ",", got,
                 sizeof got);
  art_shape_text(a->ndim, a->shape, ",", want, sizeof want);
  const char *got_type = (int)x->dtype >= 0 && x->dtype < MFX_DTYPE_COUNT
                             ? mfx_dtype_name(x->dtype) : "(invalid dtype)";
  return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel %s: %s %s is %s %s, expected %s %s",
                  art->label, k->name, role, a->name, got_type, got, mfx_dtype_name(a->dtype),
                  want);
}

static mfx_status art_check_call(const mfx_artifact *art, int index, int n_inputs,
                                 const mfx_array *inputs, int n_outputs,
                                 const mfx_array *outputs) {
  if (art == NULL) return mfx_fail(MFX_ERR_INVALID, "artifact: NULL artifact");
  if (index < 0 || index >= art->n_kernels)
    return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel index %d, expected 0..%d", art->label,
                    index, art->n_kernels - 1);
  const mfx_artifact_kernel *k = &art->kernels[index];
  int want_in = mfx_artifact_role_count(k, MFX_ARG_INPUT);
  int want_out = mfx_artifact_role_count(k, MFX_ARG_OUTPUT);
  if (n_inputs != want_in || n_outputs != want_out || (want_in > 0 && inputs == NULL) ||
      outputs == NULL)
    return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel %s takes %d inputs and %d outputs, "
                    "got %d and %d", art->label, k->name, want_in, want_out, n_inputs,
                    n_outputs);
  for (int i = 0; i < want_in; i++) MFX_TRY(art_check_array(art, k, &k->args[i], &inputs[i]));
  for (int i = 0; i < want_out; i++)
    MFX_TRY(art_check_array(art, k, &k->args[want_in + i], &outputs[i]));
  /* Index and shift inputs: no kernel reads outside its buffers. */
  char where[640];
  snprintf(where, sizeof where, "artifact %s: kernel %s", art->label, k->name);
  return mfx_op_check_inputs(k->op, k->dims, want_in, inputs, where);
}

/* Row indices (gather_rows IDX, combine_rows ROWS: input 1, int32) must be
 * -1 ("none") or a row of input 0: checked here, where inputs enter, once
 * per call, rather than guarded in every kernel (no cost in the inner loop,
 * and a bad index is an error with a message instead of a silent zero). */
static mfx_status art_check_indices(const mfx_artifact *art, const mfx_artifact_kernel *k,
                                    int n_inputs, const mfx_array *inputs) {
  if (strcmp(k->op, "gather_rows") != 0 && strcmp(k->op, "combine_rows") != 0) return MFX_OK;
  if (n_inputs < 2 || inputs[1].dtype != MFX_I32 || inputs[0].ndim < 1) return MFX_OK;
  int64_t rows = inputs[0].shape[0], n = mfx_array_numel(&inputs[1]);
  const int32_t *v = inputs[1].data;
  for (int64_t i = 0; i < n; i++)
    if (v[i] < -1 || v[i] >= rows)
      return mfx_fail(MFX_ERR_INVALID, "artifact %s: kernel %s: index input element %lld = %d "
                      "is out of range (expected -1 or 0..%lld)", art->label, k->name,
                      (long long)i, (int)v[i], (long long)rows - 1);
  return MFX_OK;
}

mfx_status mfx_artifact_run(mfx_artifact *art, int index, int n_inputs, const mfx_array *inputs,
                            int n_outputs, mfx_array *outputs) {
  MFX_TRY(art_check_call(art, index, n_inputs, inputs, n_outputs, outputs));
  MFX_TRY(art_check_indices(art, &art->kernels[index], n_inputs, inputs));
  pthread_mutex_lock(&art->lock);
  mfx_status st = art->backend->run(art->state, index, inputs, outputs);
  pthread_mutex_unlock(&art->lock);
  return st;
}

mfx_status mfx_artifact_time(mfx_artifact *art, int index, int n_inputs, const mfx_array *inputs,
                             int n_outputs, mfx_array *outputs, int repeat,
                             double *median_seconds) {
  MFX_TRY(art_check_call(art, index, n_inputs, inputs, n_outputs, outputs));
  MFX_TRY(art_check_indices(art, &art->kernels[index], n_inputs, inputs));
  if (repeat < 1 || repeat > 1000000 || median_seconds == NULL)
    return mfx_fail(MFX_ERR_INVALID, "artifact %s: time: repeat=%d, expected 1..1000000 and "
                    "a result pointer", art->label, repeat);
  pthread_mutex_lock(&art->lock);
  mfx_status st = art->backend->time(art->state, index, inputs, outputs, repeat, median_seconds);
  pthread_mutex_unlock(&art->lock);
  return st;
}
