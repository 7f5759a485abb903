/* A GPU kernel of the layer on the device: an artifact kernel's launches
 * (mfx_artifact_kernel: PTX, arguments, grids) loaded as one module on the
 * layer's device, with its workspace buffers, and run on device addresses.
 * Both GPU providers use it: a layer loaded from a cuda artifact
 * (moe/load.c) and one built on first use (ops/moe_gpu.c).
 *
 * Weights packed once. A GPU template lays weights out for its inner loop
 * in leading launches of their own (linear's WT = W^T, shift_linear's ST
 * and GT, form 1's masks and counts): launches that read no activation
 * (input 0) and write no output. Their results depend on the weights
 * only, so they run when a weight set (known by its inputs' device
 * addresses) is first seen or has changed (the layer's weights_version),
 * into buffers kept for that set; later calls launch only the rest,
 * pointed at the kept layout. */
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

/* How many leading launches only pack weights: none reads input 0 or an
 * output; each argument is a weight input or workspace. At least one
 * launch must be left to compute. */
static int launch_pack_count(const mfx_artifact_kernel *m, int *packed_ws) {
  int inputs = mfx_artifact_role_count(m, MFX_ARG_INPUT), n = 0;
  if (inputs < 2) return 0;
  for (; n < m->n_launches; n++) {
    const mfx_artifact_launch *l = &m->launches[n];
    int pure = 1;
    for (int q = 0; q < l->n_args && pure; q++) {
      int a = l->args[q];
      pure = a > 0 && a < m->n_args &&
             (a < inputs || m->args[a].role == MFX_ARG_WORKSPACE);
    }
    if (!pure) break;
  }
  if (n == m->n_launches) return 0;
  memset(packed_ws, 0, MFX_ARTIFACT_MAX_ARGS * sizeof *packed_ws);
  for (int i = 0; i < n; i++)
    for (int q = 0; q < m->launches[i].n_args; q++) {
      int a = m->launches[i].args[q];
      if (m->args[a].role == MFX_ARG_WORKSPACE) packed_ws[a] = 1;
    }
  return n;
}

mfx_status moe_kernel_load(mfx_device *dev, const mfx_artifact_kernel *meta, moe_gpu_kernel *k) {
  memset(k, 0, sizeof *k);
  k->meta = meta;
  k->dev = dev;
  k->n_pack = launch_pack_count(meta, k->packed_ws);
  MFX_TRY(launch_check_target(dev, meta));
  MFX_TRY(mfx_module_load(dev, meta->gpu_image, meta->gpu_image_bytes, &k->module));
  for (int i = 0; i < meta->n_launches; i++)
    MFX_TRY(mfx_module_function(k->module, meta->launches[i].name, &k->fn[i]));
  for (int i = 0; i < meta->n_args; i++)
    if (meta->args[i].role == MFX_ARG_WORKSPACE)
      MFX_TRY(mfx_device_buffer_alloc(dev, mfx_artifact_arg_bytes(&meta->args[i]), &k->ws[i]));
  return MFX_OK;
}

static void launch_pack_free(moe_pack *p) {
  for (int i = 0; i < MFX_ARTIFACT_MAX_ARGS; i++) mfx_device_buffer_free(&p->ws[i]);
  memset(p, 0, sizeof *p);
}

void moe_kernel_unload(moe_gpu_kernel *k) {
  for (int i = 0; i < MOE_PACKS; i++) launch_pack_free(&k->packs[i]);
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

/* The kept layout of the weights at addresses[1 .. inputs), packed at
 * version: found, or made now (a free slot, else the oldest one reused). */
static mfx_status launch_pack_get(moe_gpu_kernel *k, const uint64_t *addresses,
                                  unsigned long version, uint64_t *address) {
  const mfx_artifact_kernel *m = k->meta;
  int inputs = mfx_artifact_role_count(m, MFX_ARG_INPUT);
  size_t key = (size_t)(inputs - 1) * sizeof(uint64_t);
  moe_pack *p = NULL;
  for (int i = 0; i < MOE_PACKS && p == NULL; i++)
    if (k->packs[i].used && memcmp(k->packs[i].weights, addresses + 1, key) == 0)
      p = &k->packs[i];
  for (int i = 0; i < MOE_PACKS && p == NULL; i++)
    if (!k->packs[i].used) p = &k->packs[i];
  if (p == NULL) {
    p = &k->packs[k->next_evict];
    k->next_evict = (k->next_evict + 1) % MOE_PACKS;
    launch_pack_free(p);
  }
  int fresh = !p->used || !p->packed || p->version != version;
  if (!p->used) {
    for (int a = 0; a < m->n_args; a++)
      if (k->packed_ws[a])
        MFX_TRY(mfx_device_buffer_alloc(k->dev, mfx_artifact_arg_bytes(&m->args[a]), &p->ws[a]));
    memcpy(p->weights, addresses + 1, key);
    p->used = 1;
  }
  for (int a = 0; a < m->n_args; a++)
    if (k->packed_ws[a]) address[a] = p->ws[a].address;
  if (fresh) {
    p->packed = 0; /* until the packing is queued */
    MFX_TRY(launch_range(k, 0, k->n_pack, address));
    p->packed = 1;
    p->version = version;
  }
  return MFX_OK;
}

mfx_status moe_kernel_run(moe_gpu_kernel *k, const uint64_t *addresses, unsigned long version) {
  int io = mfx_artifact_role_count(k->meta, MFX_ARG_INPUT) +
           mfx_artifact_role_count(k->meta, MFX_ARG_OUTPUT);
  uint64_t address[MFX_ARTIFACT_MAX_ARGS];
  for (int i = 0; i < k->meta->n_args; i++)
    address[i] = i < io ? addresses[i] : k->ws[i].address;
  if (k->n_pack > 0) MFX_TRY(launch_pack_get(k, addresses, version, address));
  return launch_range(k, k->n_pack, k->meta->n_launches, address);
}
