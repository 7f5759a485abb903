/* A GPU kernel of the layer on the device: an artifact kernel's launches
 * (mfx_artifact_kernel: PTX, arguments, grids) loaded as one module on the
 * layer's device, with its workspace buffers, and run on device addresses.
 * Both GPU providers use it: a layer loaded from a cuda artifact
 * (moe/load.c) and one built on first use (ops/moe_gpu.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe_internal.h"

/* The device's compute capability against the kernel's "cuda:sm_NN[a]". */
static mfx_status launch_check_target(mfx_device *dev, const mfx_artifact_kernel *k) {
  const mfx_device_info *info = mfx_device_get_info(dev);
  int sm = 0, have = info->compute_major * 10 + info->compute_minor;
  char suffix = '\0';
  if (sscanf(k->target, "cuda:sm_%d%c", &sm, &suffix) < 1)
    return mfx_fail(MFX_ERR_INVALID, "moe: kernel %s targets '%s', not a GPU (cuda:sm_XX)",
                    k->name, k->target);
  if (have < sm || (suffix == 'a' && have != sm))
    return mfx_fail(MFX_ERR_DEVICE, "moe: kernel %s targets %s, but %s (%s) has compute "
                    "capability %d.%d", k->name, k->target, mfx_device_name(dev), info->name,
                    info->compute_major, info->compute_minor);
  return MFX_OK;
}

mfx_status moe_kernel_load(mfx_device *dev, const mfx_artifact_kernel *meta, moe_gpu_kernel *k) {
  memset(k, 0, sizeof *k);
  k->meta = meta;
  MFX_TRY(launch_check_target(dev, meta));
  MFX_TRY(mfx_module_load(dev, meta->gpu_image, meta->gpu_image_bytes, &k->module));
  for (int i = 0; i < meta->n_launches; i++)
    MFX_TRY(mfx_module_function(k->module, meta->launches[i].name, &k->fn[i]));
  for (int i = 0; i < meta->n_args; i++)
    if (meta->args[i].role == MFX_ARG_WORKSPACE)
      MFX_TRY(mfx_device_buffer_alloc(dev, mfx_artifact_arg_bytes(&meta->args[i]), &k->ws[i]));
  return MFX_OK;
}

void moe_kernel_unload(moe_gpu_kernel *k) {
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) mfx_device_buffer_free(&k->ws[i]);
  if (k->module != NULL) mfx_module_free(k->module);
  k->module = NULL;
}

/* Launches [first, last) of k with the arguments at address[]. */
static mfx_status launch_range(const moe_gpu_kernel *k, int first, int last,
                               const uint64_t *address) {
  for (int i = first; i < last; i++) {
    const mfx_artifact_launch *l = &k->meta->launches[i];
    mfx_launch_dims d = {{l->grid[0], l->grid[1], l->grid[2]},
                         {l->block[0], l->block[1], l->block[2]},
                         (size_t)l->shared_dynamic};
    void *params[MFX_ARTIFACT_MAX_ARGS];
    for (int q = 0; q < l->n_args; q++) params[q] = (void *)&address[l->args[q]];
    mfx_status st = mfx_function_launch(k->fn[i], &d, params);
    if (st != MFX_OK)
      return mfx_fail_context(st, "moe: launching %s (%s)", k->meta->name, l->name);
  }
  return MFX_OK;
}

mfx_status moe_kernel_run(const moe_gpu_kernel *k, const uint64_t *addresses) {
  int io = mfx_artifact_role_count(k->meta, MFX_ARG_INPUT) +
           mfx_artifact_role_count(k->meta, MFX_ARG_OUTPUT);
  uint64_t address[MFX_ARTIFACT_MAX_ARGS];
  for (int i = 0; i < k->meta->n_args; i++)
    address[i] = i < io ? addresses[i] : k->ws[i].address;
  return launch_range(k, 0, k->meta->n_launches, address);
}
