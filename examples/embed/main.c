/* mfx-embed: the smallest application of the mfx runtime. It loads an
 * artifact made by `mfx compile`, fills the kernel's inputs from .npy files
 * (or with its own random data), runs the kernel and prints a checksum of
 * each output; --out saves the first output as .npy.
 *
 *   mfx-embed ARTIFACT [--kernel NAME] [--in FILE.npy]... [--out FILE.npy]
 *             [--device cpu|cuda]
 *
 * --in files are taken in the order of the kernel's inputs. Everything it
 * uses is in <mfx/artifact.h> and <mfx/runtime.h>. */
#include <mfx/artifact.h>
#include <mfx/runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMBED_MAX_INPUTS MFX_ARTIFACT_MAX_ARGS

typedef struct {
  const char *artifact, *kernel, *out, *device;
  int n_in;
  const char *in[EMBED_MAX_INPUTS];
} embed_args;

static int embed_fail(const char *what) {
  fprintf(stderr, "mfx-embed: %s: %s\n", what, mfx_last_error());
  return 1;
}

static int embed_usage(const char *why) {
  fprintf(stderr, "mfx-embed: %s\nusage: mfx-embed ARTIFACT [--kernel NAME] [--in FILE.npy]... "
                  "[--out FILE.npy] [--device cpu|cuda]\n", why);
  return 2;
}

static int embed_parse(int argc, char **argv, embed_args *a) {
  memset(a, 0, sizeof *a);
  for (int i = 1; i < argc; i++) {
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strncmp(argv[i], "--", 2) != 0) {
      if (a->artifact != NULL) return embed_usage("more than one artifact");
      a->artifact = argv[i];
      continue;
    }
    if (value == NULL) return embed_usage("an option lacks its value");
    if (strcmp(argv[i], "--kernel") == 0) a->kernel = value;
    else if (strcmp(argv[i], "--out") == 0) a->out = value;
    else if (strcmp(argv[i], "--device") == 0) a->device = value;
    else if (strcmp(argv[i], "--in") == 0 && a->n_in < EMBED_MAX_INPUTS) a->in[a->n_in++] = value;
    else return embed_usage("unknown option or too many --in");
    i++;
  }
  return a->artifact != NULL ? 0 : embed_usage("missing ARTIFACT");
}

/* Random data of its own: floats in [-1, 1), integers 0 or 1 (valid codes,
 * shifts and signs for every mfx op). */
static void embed_random(mfx_array *a, uint64_t *state) {
  int64_t n = mfx_array_numel(a);
  size_t size = mfx_dtype_size(a->dtype);
  for (int64_t i = 0; i < n; i++) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t r = (uint32_t)(*state >> 33);
    if (a->dtype == MFX_F32) {
      ((float *)a->data)[i] = (float)r / 2147483648.0f * 2.0f - 1.0f;
    } else {
      memset((char *)a->data + (size_t)i * size, 0, size);
      *((unsigned char *)a->data + (size_t)i * size) = (unsigned char)(r & 1); /* little-endian */
    }
  }
}

/* Input i from its file, checked against the kernel's argument. */
static int embed_load_input(const mfx_artifact_kernel *k, int i, const char *path,
                            mfx_array *slot) {
  mfx_array loaded;
  if (mfx_npy_load(path, &loaded) != MFX_OK) return embed_fail(path);
  const mfx_artifact_arg *want = &k->args[i];
  int same = loaded.dtype == want->dtype && loaded.ndim == want->ndim;
  for (int d = 0; same && d < want->ndim; d++) same = loaded.shape[d] == want->shape[d];
  if (!same) {
    fprintf(stderr, "mfx-embed: %s: input %s must be %s with %d dimensions of the kernel's "
                    "shape; the file holds %s with %d\n", path, want->name,
            mfx_dtype_name(want->dtype), want->ndim, mfx_dtype_name(loaded.dtype), loaded.ndim);
    mfx_array_free(&loaded);
    return 1;
  }
  mfx_array_free(slot);
  *slot = loaded;
  return 0;
}

/* Sum of the values and FNV-1a of the bytes. */
static void embed_print_checksum(const mfx_artifact_arg *arg, const mfx_array *a) {
  int64_t n = mfx_array_numel(a);
  size_t bytes = (size_t)n * mfx_dtype_size(a->dtype);
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < bytes; i++) h = (h ^ ((const unsigned char *)a->data)[i]) * 0x100000001b3ull;
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (a->dtype == MFX_F32) sum += ((const float *)a->data)[i];
    else if (a->dtype == MFX_I32) sum += ((const int32_t *)a->data)[i];
  }
  printf("output %s %s numel %lld sum %.6g fnv %016llx\n", arg->name, mfx_dtype_name(a->dtype),
         (long long)n, sum, (unsigned long long)h);
}

static int embed_run(mfx_artifact *art, const embed_args *a) {
  int index = 0;
  if (a->kernel != NULL && mfx_artifact_find_kernel(art, a->kernel, &index) != MFX_OK)
    return embed_fail("--kernel");
  const mfx_artifact_kernel *k = mfx_artifact_kernel_at(art, index);
  int n_in = mfx_artifact_role_count(k, MFX_ARG_INPUT);
  int n_out = mfx_artifact_role_count(k, MFX_ARG_OUTPUT);
  if (a->n_in > n_in) return embed_usage("more --in files than the kernel has inputs");
  mfx_array in[MFX_ARTIFACT_MAX_ARGS] = {0}, out[MFX_ARTIFACT_MAX_ARGS] = {0};
  int rc = 0;
  if (mfx_artifact_alloc_arrays(k, MFX_ARG_INPUT, in) != MFX_OK ||
      mfx_artifact_alloc_arrays(k, MFX_ARG_OUTPUT, out) != MFX_OK)
    rc = embed_fail("allocating");
  uint64_t state = 1;
  for (int i = 0; i < n_in && rc == 0; i++) {
    if (i < a->n_in) rc = embed_load_input(k, i, a->in[i], &in[i]);
    else embed_random(&in[i], &state);
  }
  if (rc == 0 && mfx_artifact_run(art, index, n_in, in, n_out, out) != MFX_OK)
    rc = embed_fail("run");
  printf("kernel %s (op %s) on %s\n", k->name, k->op, mfx_artifact_device(art));
  for (int i = 0; i < n_out && rc == 0; i++)
    embed_print_checksum(&k->args[mfx_artifact_role_first(k, MFX_ARG_OUTPUT) + i], &out[i]);
  if (rc == 0 && a->out != NULL && mfx_npy_save(a->out, &out[0]) != MFX_OK) rc = embed_fail(a->out);
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) {
    mfx_array_free(&in[i]);
    mfx_array_free(&out[i]);
  }
  return rc;
}

int main(int argc, char **argv) {
  embed_args a;
  int rc = embed_parse(argc, argv, &a);
  if (rc != 0) return rc;
  mfx_artifact_options options = {a.device, 0};
  mfx_artifact *art = NULL;
  if (mfx_artifact_load(a.artifact, &options, &art) != MFX_OK) return embed_fail("load");
  rc = embed_run(art, &a);
  mfx_artifact_free(art);
  return rc;
}
