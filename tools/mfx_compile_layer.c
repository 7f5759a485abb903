/* mfx compile-layer: an MoE layer ahead of time. Every kernel of the layer
 * (the router and each kind of expert's two kernels) for each token bucket,
 * with configs from the tuning database (cpu) or the GPU templates'
 * defaults (cuda), into one artifact with the layer's manifest
 * (mfx_moe_compile_layer). The weights travel separately, in a safetensors
 * file (docs/moe_layer.md); mfx-runner, mfx.MoELayer and mfx_moe_load run
 * the pair without LLVM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/autotune.h"
#include "mfx_moe_cli.h"

static const char tool_compile_layer_usage[] =
    "usage: mfx compile-layer --dim D --hidden H --experts mult,shift[,shift16,null] --k K\n"
    "                         --buckets B1,B2,... [--target cpu|cuda:sm_XX] [--db F]\n"
    "                         -o LAYER.mfxa\n"
    "\n"
    "Compile every kernel of an MoE layer for each token bucket into one artifact\n"
    "with a layer manifest (dims, experts, k, buckets, each kernel's role and\n"
    "config). Run it with its weights (a safetensors file, docs/moe_layer.md):\n"
    "  mfx-runner LAYER.mfxa --weights W.safetensors --in X=x.npy --check\n"
    "  --dim D, --hidden H   the token dimension and the experts' hidden size\n"
    "  --experts LIST        expert kinds in order: mult, shift, shift16, null\n"
    "  --k K                 experts per token, 1..E\n"
    "  --buckets LIST        ascending token counts the kernels are built for: a\n"
    "                        batch (and each expert's share of it) is padded to the\n"
    "                        smallest bucket that holds it; the largest is the\n"
    "                        largest batch the layer takes\n"
    "  --target T            cpu (this CPU, default) or cuda:sm_XX\n"
    "  --db F                tuning database for cpu configs (default $MFX_DB, else\n"
    "                        ~/.cache/mfx/tune.db; none: template defaults)\n"
    "  -o FILE               the artifact to write\n";

typedef struct {
  const char *db;
  int counts[3]; /* tuned, nearest, default */
} tool_layer_tuning;

/* The layer's config chooser: the tuning database on the CPU. */
static mfx_status tool_layer_choose(void *user, const char *target, const mfx_op *op,
                                    const int64_t *dims, mfx_config *cfg) {
  tool_layer_tuning *t = user;
  if (strcmp(target, "cpu") != 0) {
    t->counts[MFX_TUNE_DEFAULT]++;
    return MFX_OK; /* the database holds host-CPU records; GPU kernels keep their defaults */
  }
  mfx_tune_choice choice;
  mfx_status st = mfx_tune_lookup(t->db, op, dims, &choice);
  if (st != MFX_OK) return st;
  *cfg = choice.cfg;
  t->counts[choice.source]++;
  return MFX_OK;
}

typedef struct {
  const char *experts, *buckets, *target, *db, *output;
  int dim, hidden, k;
} tool_layer_args;

/* TOOL_ARGS_OK, TOOL_ARGS_HELP (usage printed) or a usage error (printed). */
static int tool_layer_parse(int argc, char **argv, tool_layer_args *a) {
  memset(a, 0, sizeof *a);
  a->target = "cpu";
  const tool_arg options[] = {
      {.name = "--dim", .type = TOOL_ARG_INT, .to.i32 = &a->dim, .min = 1, .max = 1 << 20,
       .example = "--dim 64"},
      {.name = "--hidden", .type = TOOL_ARG_INT, .to.i32 = &a->hidden, .min = 1, .max = 1 << 20,
       .example = "--hidden 512"},
      {.name = "--experts", .type = TOOL_ARG_TEXT, .to.text = &a->experts,
       .example = "--experts mult,shift"},
      {.name = "--k", .type = TOOL_ARG_INT, .to.i32 = &a->k, .min = 1, .max = MFX_MOE_MAX_EXPERTS,
       .example = "--k 1"},
      {.name = "--buckets", .type = TOOL_ARG_TEXT, .to.text = &a->buckets,
       .example = "--buckets 64,256,1024"},
      {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
       .example = "--target cpu or --target cuda:sm_90"},
      {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db, .example = "--db tune.db"},
      {.name = "-o", .type = TOOL_ARG_PATH, .to.text = &a->output, .example = "-o layer.mfxa"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "compile-layer",
                     .usage = tool_compile_layer_usage, .options = options};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc != 0) return rc;
  const char *missing = !a->dim ? "--dim" : !a->hidden ? "--hidden" : !a->experts ? "--experts"
                        : !a->k ? "--k" : !a->buckets ? "--buckets" : !a->output ? "-o" : NULL;
  if (missing != NULL)
    return tool_error(TOOL_EXIT_USAGE, "compile-layer: %s is required (mfx help compile-layer)",
                      missing);
  return 0;
}

static int tool_layer_buckets(const char *text, int64_t *buckets, int *n) {
  *n = 0;
  const char *p = text;
  for (;;) {
    if (*n >= MFX_MOE_MAX_BUCKETS)
      return tool_error(TOOL_EXIT_USAGE, "--buckets: more than %d buckets", MFX_MOE_MAX_BUCKETS);
    char item[32];
    size_t len = strcspn(p, ",");
    if (len == 0 || len >= sizeof item)
      return tool_error(TOOL_EXIT_USAGE, "--buckets '%s': expected token counts like 16,64,256",
                        text);
    memcpy(item, p, len);
    item[len] = '\0';
    int rc = tool_flag_int("--buckets", item, 1, MFX_MOE_MAX_BUCKET_TOKENS, &buckets[*n]);
    if (rc != 0) return rc;
    if (*n > 0 && buckets[*n] <= buckets[*n - 1])
      return tool_error(TOOL_EXIT_USAGE, "--buckets '%s': expected ascending token counts",
                        text);
    (*n)++;
    if (p[len] == '\0') return 0;
    p += len + 1;
  }
}

static int tool_layer_spec(const tool_layer_args *a, mfx_moe_spec *spec) {
  memset(spec, 0, sizeof *spec);
  if (mfx_expert_kinds_parse(a->experts, spec->kinds, MFX_MOE_MAX_EXPERTS, &spec->experts) !=
      MFX_OK)
    return tool_error(TOOL_EXIT_USAGE, "--experts: %s", mfx_last_error());
  if (a->k > spec->experts)
    return tool_error(TOOL_EXIT_USAGE, "--k %d: expected 1..%d (the number of experts)", a->k,
                      spec->experts);
  spec->dim = a->dim;
  spec->hidden = a->hidden;
  spec->k = a->k;
  return 0;
}

int tool_cmd_compile_layer(int argc, char **argv) {
  tool_layer_args a;
  int rc = tool_layer_parse(argc, argv, &a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
  mfx_moe_spec spec;
  int64_t buckets[MFX_MOE_MAX_BUCKETS];
  int n_buckets = 0;
  if ((rc = tool_layer_spec(&a, &spec)) != 0) return rc;
  if ((rc = tool_layer_buckets(a.buckets, buckets, &n_buckets)) != 0) return rc;
  if (strcmp(a.target, "cpu") != 0 && strncmp(a.target, "cuda:sm_", 8) != 0)
    return tool_error(TOOL_EXIT_USAGE, "--target '%s': expected cpu or cuda:sm_XX", a.target);
  if (mfx_check_replaceable(a.output, "the layer artifact") != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "-o");
  tool_layer_tuning tuning = {a.db, {0, 0, 0}};
  spec.choose_config = tool_layer_choose;
  spec.choose_user = &tuning;
  void *image = NULL;
  size_t size = 0;
  if (mfx_moe_compile_layer(&spec, buckets, n_buckets, a.target, &image, &size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "compile-layer");
  mfx_status st = mfx_artifact_write_file(a.output, image, size);
  free(image);
  if (st != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "writing the layer artifact");
  printf("wrote %s: a layer D=%d H=%d experts %s k=%d for %d buckets (%lld..%lld tokens), "
         "%zu bytes\n", a.output, spec.dim, spec.hidden, a.experts, spec.k, n_buckets,
         (long long)buckets[0], (long long)buckets[n_buckets - 1], size);
  printf("configs: %d tuned, %d from the nearest tuned shape, %d template defaults\n",
         tuning.counts[MFX_TUNE_TUNED], tuning.counts[MFX_TUNE_NEAREST],
         tuning.counts[MFX_TUNE_DEFAULT]);
  return TOOL_EXIT_OK;
}
