/* GPU kernels of a loaded artifact, through the device interface
 * (mfx/device.h): the device is opened once per loaded artifact, each
 * kernel's PTX or cubin becomes one module, and every argument (inputs,
 * outputs and workspace) gets a device buffer allocated once at load time.
 * A run copies the inputs in, queues the kernel's launches in order and
 * copies the outputs back; timing uses events recorded on the device. */
#include "artifact_internal.h"
#include "mfx/device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const mfx_artifact_kernel *meta;
  mfx_module *module;
  mfx_function *functions[MFX_ARTIFACT_MAX_LAUNCHES];
  mfx_device_buffer buffers[MFX_ARTIFACT_MAX_ARGS];
} cuda_kernel;

typedef struct {
  mfx_device *device;
  int n_kernels;
  cuda_kernel *kernels;
  char label[512];
} cuda_state;

/* The device's compute capability against the kernel's sm_NN. */
static mfx_status cuda_check_target(const cuda_state *s, const mfx_artifact_kernel *k) {
  const mfx_device_info *info = mfx_device_get_info(s->device);
  int have = info->compute_major * 10 + info->compute_minor;
  art_target t;
  art_parse_target(k->target, &t);
  if (have < t.sm || (t.arch_specific && have != t.sm))
    return mfx_fail(MFX_ERR_DEVICE, "artifact %s: kernel %s targets %s, but %s (%s) has compute "
                    "capability %d.%d", s->label, k->name, k->target,
                    mfx_device_name(s->device), info->name, info->compute_major,
                    info->compute_minor);
  return MFX_OK;
}

static mfx_status cuda_load_kernel(cuda_state *s, const mfx_artifact_kernel *k, cuda_kernel *out) {
  out->meta = k;
  MFX_TRY(cuda_check_target(s, k));
  mfx_status st = mfx_module_load(s->device, k->gpu_image, k->gpu_image_bytes, &out->module);
  if (st != MFX_OK) return mfx_fail_context(st, "artifact %s: kernel %s", s->label, k->name);
  for (int i = 0; i < k->n_launches; i++) {
    st = mfx_module_function(out->module, k->launches[i].name, &out->functions[i]);
    if (st != MFX_OK)
      return mfx_fail_context(st, "artifact %s: kernel %s: launch %s", s->label, k->name,
                              k->launches[i].name);
  }
  for (int i = 0; i < k->n_args; i++) {
    st = mfx_device_buffer_alloc(s->device, mfx_artifact_arg_bytes(&k->args[i]), &out->buffers[i]);
    if (st != MFX_OK)
      return mfx_fail_context(st, "artifact %s: kernel %s: %s %s", s->label, k->name,
                              mfx_arg_role_name(k->args[i].role), k->args[i].name);
  }
  return MFX_OK;
}

static void cuda_unload(void *state) {
  cuda_state *s = state;
  for (int i = 0; i < s->n_kernels; i++) {
    cuda_kernel *k = &s->kernels[i];
    for (int a = 0; a < MFX_ARTIFACT_MAX_ARGS; a++)
      if (k->buffers[a].device != NULL) mfx_device_buffer_free(&k->buffers[a]);
    if (k->module != NULL) mfx_module_free(k->module);
  }
  free(s->kernels);
  if (s->device != NULL) mfx_device_close(s->device);
  free(s);
}

static mfx_status cuda_load(const char *device, int threads, const char *label,
                            const mfx_artifact_kernel *kernels, int n_kernels, void **state) {
  (void)threads;
  cuda_state *s = calloc(1, sizeof *s);
  cuda_kernel *ks = calloc((size_t)n_kernels, sizeof *ks);
  if (s == NULL || ks == NULL) {
    free(s);
    free(ks);
    return mfx_fail(MFX_ERR_NOMEM, "artifact %s: out of memory", label);
  }
  snprintf(s->label, sizeof s->label, "%s", label);
  s->kernels = ks;
  mfx_status st = mfx_device_open(device, &s->device);
  if (st != MFX_OK) mfx_fail_context(st, "artifact %s: opening device %s", label, device);
  for (int i = 0; i < n_kernels && st == MFX_OK; i++) {
    s->n_kernels = i + 1;
    st = cuda_load_kernel(s, &kernels[i], &ks[i]);
  }
  if (st != MFX_OK) {
    cuda_unload(s);
    return st;
  }
  *state = s;
  return MFX_OK;
}

/* ---- running ---------------------------------------------------------------------- */

static mfx_status cuda_copy_in(cuda_kernel *k, const mfx_array *inputs) {
  int n = mfx_artifact_role_count(k->meta, MFX_ARG_INPUT);
  for (int i = 0; i < n; i++)
    MFX_TRY(mfx_device_buffer_write(&k->buffers[i], 0, inputs[i].data, k->buffers[i].bytes));
  return MFX_OK;
}

static mfx_status cuda_copy_out(cuda_kernel *k, mfx_array *outputs) {
  int first = mfx_artifact_role_first(k->meta, MFX_ARG_OUTPUT);
  int n = mfx_artifact_role_count(k->meta, MFX_ARG_OUTPUT);
  for (int i = 0; i < n; i++)
    MFX_TRY(mfx_device_buffer_read(&k->buffers[first + i], 0, outputs[i].data,
                            k->buffers[first + i].bytes));
  return MFX_OK;
}

/* Queue the kernel's launches in order. */
static mfx_status cuda_launch_all(const cuda_state *s, cuda_kernel *k) {
  for (int i = 0; i < k->meta->n_launches; i++) {
    const mfx_artifact_launch *l = &k->meta->launches[i];
    mfx_launch_dims dims = {{l->grid[0], l->grid[1], l->grid[2]},
                            {l->block[0], l->block[1], l->block[2]},
                            (size_t)l->shared_dynamic};
    void *params[MFX_ARTIFACT_MAX_ARGS];
    for (int p = 0; p < l->n_args; p++) params[p] = &k->buffers[l->args[p]].address;
    mfx_status st = mfx_function_launch(k->functions[i], &dims, params);
    if (st != MFX_OK)
      return mfx_fail_context(st, "artifact %s: kernel %s: launch %s", s->label, k->meta->name,
                              l->name);
  }
  return MFX_OK;
}

static mfx_status cuda_run(void *state, int index, const mfx_array *inputs, mfx_array *outputs) {
  cuda_state *s = state;
  cuda_kernel *k = &s->kernels[index];
  MFX_TRY(cuda_copy_in(k, inputs));
  MFX_TRY(cuda_launch_all(s, k));
  return cuda_copy_out(k, outputs);
}

/* `repeat` timed rounds of the launches, each between two events. */
static mfx_status cuda_time_rounds(cuda_state *s, cuda_kernel *k, mfx_event *start,
                                   mfx_event *end, int repeat, double *times) {
  for (int r = 0; r < repeat; r++) {
    MFX_TRY(mfx_event_record(start));
    MFX_TRY(cuda_launch_all(s, k));
    MFX_TRY(mfx_event_record(end));
    MFX_TRY(mfx_event_elapsed(start, end, &times[r]));
  }
  return MFX_OK;
}

static mfx_status cuda_time(void *state, int index, const mfx_array *inputs, mfx_array *outputs,
                            int repeat, double *median_seconds) {
  cuda_state *s = state;
  cuda_kernel *k = &s->kernels[index];
  mfx_event *start = NULL, *end = NULL;
  double *times = malloc((size_t)repeat * sizeof *times);
  mfx_status st = times != NULL ? MFX_OK
                                : mfx_fail(MFX_ERR_NOMEM, "time: out of memory for %d runs", repeat);
  if (st == MFX_OK) st = mfx_event_create(s->device, &start);
  if (st == MFX_OK) st = mfx_event_create(s->device, &end);
  if (st == MFX_OK) st = cuda_copy_in(k, inputs);
  if (st == MFX_OK) st = cuda_launch_all(s, k); /* warm-up */
  if (st == MFX_OK) st = mfx_device_synchronize(s->device);
  if (st == MFX_OK) st = cuda_time_rounds(s, k, start, end, repeat, times);
  if (st == MFX_OK) st = cuda_copy_out(k, outputs);
  if (st == MFX_OK) *median_seconds = mfx_median(times, repeat);
  if (start != NULL) mfx_event_destroy(start);
  if (end != NULL) mfx_event_destroy(end);
  free(times);
  return st;
}

static const char *cuda_device_name(const void *state) {
  const cuda_state *s = state;
  return mfx_device_name(s->device);
}

const art_backend art_cuda_backend = {
    .name = "cuda",
    .target = ART_TARGET_CUDA,
    .load = cuda_load,
    .run = cuda_run,
    .time = cuda_time,
    .device_name = cuda_device_name,
    .unload = cuda_unload,
};
