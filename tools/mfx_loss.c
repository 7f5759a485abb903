/* mfx loss: a router loss of logits from a .npy file, from the command line
 * (include/mfx/router.h): the switch load-balancing loss, ShiftAddViT's
 * latency-aware loss with per-expert latencies (a list, or a latency table
 * saved by mfx experts), or the router z-loss; optionally its gradient. */
#include <stdlib.h>
#include <string.h>

#include "mfx/router.h"
#include "mfx_moe_cli.h"

static const char tool_loss_usage[] =
    "usage: mfx loss KIND --logits FILE.npy [options]\n"
    "\n"
    "The router loss KIND (switch, latency or zloss) of router logits [..., E]\n"
    "(f32 .npy; leading dims are tokens) and, with --grad-out, dL/dlogits.\n"
    "  --logits FILE.npy      the router logits\n"
    "  --k K                  top-k of the switch and latency losses (default 1)\n"
    "  --latency a,b,...      per-expert latencies (any unit; latency loss only),\n"
    "  --latency FILE.json    or a latency table saved by mfx experts\n"
    "  --device KEY           the table's device key (default: this host's)\n"
    "  --grad-out FILE.npy    save the gradient, shaped like the logits\n"
    "The noisy top-k gate (switch and latency; Shazeer et al. 2017): h = z + eps *\n"
    "(softplus(r) + 0.01); the counts are replaced by the load of h:\n"
    "  --noise-logits FILE.npy  the noise logits r, shaped like the logits\n"
    "  --noise-eps FILE.npy     standard normal samples eps (default: zero)\n"
    "  --load smooth|hard       P(expert in the top k) summed over tokens, with a\n"
    "                           gradient (default), or the top-k counts of h\n"
    "  --grad-noise-out FILE.npy  save dL/dr\n"
    "  --json                 print {\"kind\", \"loss\", \"tokens\", \"experts\", \"k\",\n"
    "                         \"counts\", \"alpha\"[, \"load_kind\", \"load\"]} instead of text\n";

typedef struct {
  const char *kind_name, *logits_path, *latency, *device, *grad_out;
  const char *noise_path, *eps_path, *load_name, *grad_noise_out;
  mfx_router_loss_kind kind;
  mfx_router_load_kind load;
  int64_t k;
  int json;
} tool_loss_args;

typedef struct {
  mfx_array logits, noise, eps;
  int64_t tokens;
  int experts;
  double alpha[MFX_LATENCY_MAX_EXPERTS];
  int n_alpha;
  double counts[MFX_LATENCY_MAX_EXPERTS];
  double load[MFX_LATENCY_MAX_EXPERTS];
  double loss;
  float *grad, *grad_noise;
} tool_loss_run;

static const char *const tool_loss_kinds[] = {"switch", "latency", "zloss", NULL};
static const char *const tool_loss_loads[] = {"smooth", "hard", NULL};

/* The noisy-gate options: all need --noise-logits, which zloss refuses. */
static int tool_loss_parse_noise(tool_loss_args *a) {
  a->load = MFX_ROUTER_LOAD_SMOOTH;
  if (a->load_name != NULL && mfx_router_load_from_name(a->load_name, &a->load) != MFX_OK)
    return tool_error_status(TOOL_EXIT_USAGE, "loss: --load");
  if (a->noise_path == NULL) {
    if (a->eps_path || a->load_name || a->grad_noise_out)
      return tool_error(TOOL_EXIT_USAGE, "loss: --noise-eps, --load and --grad-noise-out need "
                        "--noise-logits FILE.npy (the noisy top-k gate)");
    return 0;
  }
  if (a->kind == MFX_ROUTER_ZLOSS)
    return tool_error(TOOL_EXIT_USAGE, "loss zloss: --noise-logits applies to the switch and "
                      "latency losses only (zloss has no load term)");
  return 0;
}

static int tool_loss_parse(int argc, char **argv, tool_loss_args *a) {
  memset(a, 0, sizeof *a);
  a->k = 1;
  const tool_arg options[] = {
      {.name = "--logits", .type = TOOL_ARG_PATH, .to.text = &a->logits_path,
       .example = "--logits z.npy"},
      {.name = "--k", .type = TOOL_ARG_INT64, .to.i64 = &a->k, .min = 1, .max = 1 << 20,
       .example = "--k 2"},
      {.name = "--latency", .type = TOOL_ARG_TEXT, .to.text = &a->latency,
       .example = "--latency 1.2,0.6 or --latency FILE.json"},
      {.name = "--device", .type = TOOL_ARG_TEXT, .to.text = &a->device,
       .example = "--device 'cpu: ...' (a key of the latency table)"},
      {.name = "--grad-out", .type = TOOL_ARG_PATH, .to.text = &a->grad_out,
       .example = "--grad-out g.npy"},
      {.name = "--noise-logits", .type = TOOL_ARG_PATH, .to.text = &a->noise_path,
       .example = "--noise-logits r.npy"},
      {.name = "--noise-eps", .type = TOOL_ARG_PATH, .to.text = &a->eps_path,
       .example = "--noise-eps eps.npy"},
      {.name = "--load", .type = TOOL_ARG_ENUM, .to.text = &a->load_name,
       .choices = tool_loss_loads, .noun = "load", .example = "--load smooth"},
      {.name = "--grad-noise-out", .type = TOOL_ARG_PATH, .to.text = &a->grad_noise_out,
       .example = "--grad-noise-out gr.npy"},
      {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &a->json},
      {0},
  };
  const tool_pos positionals[] = {
      {.name = "KIND", .to = &a->kind_name, .choices = tool_loss_kinds, .noun = "kind"},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "loss", .usage = tool_loss_usage,
                     .options = options, .positionals = positionals};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc != 0) return rc;
  if (a->kind_name == NULL || a->logits_path == NULL)
    return tool_error(TOOL_EXIT_USAGE, "loss: needs KIND and --logits, e.g. mfx loss latency "
                      "--logits z.npy --latency 1.2,0.6");
  if (mfx_router_loss_from_name(a->kind_name, &a->kind) != MFX_OK)
    return tool_error_status(TOOL_EXIT_USAGE, "loss");
  if (a->kind == MFX_ROUTER_LATENCY && a->latency == NULL)
    return tool_error(TOOL_EXIT_USAGE, "loss latency: needs --latency a,b,... (one per expert) or "
                      "--latency FILE.json");
  if (a->kind != MFX_ROUTER_LATENCY && a->latency != NULL)
    return tool_error(TOOL_EXIT_USAGE, "loss %s: --latency applies to the latency loss only",
                      a->kind_name);
  if (a->kind != MFX_ROUTER_LATENCY && a->device != NULL)
    return tool_error(TOOL_EXIT_USAGE, "loss %s: --device picks a latency table's device; it "
                      "applies to the latency loss only", a->kind_name);
  return tool_loss_parse_noise(a);
}

static int tool_loss_logits(const tool_loss_args *a, tool_loss_run *r) {
  if (mfx_npy_load(a->logits_path, &r->logits) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "loss: reading the logits");
  const mfx_array *z = &r->logits;
  if (z->dtype != MFX_F32 || z->ndim < 2)
    return tool_error(TOOL_EXIT_FAIL, "loss: %s holds %s with %d dims; expected f32 logits "
                      "[..., E] with at least 2 dims", a->logits_path, mfx_dtype_name(z->dtype),
                      z->ndim);
  r->experts = (int)z->shape[z->ndim - 1];
  r->tokens = r->experts > 0 ? mfx_array_numel(z) / r->experts : 0;
  return 0;
}

/* Noise logits (and samples) of the logits' shape. */
static int tool_loss_noise_file(const char *flag, const char *path, const mfx_array *logits,
                                mfx_array *out) {
  if (mfx_npy_load(path, out) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, flag);
  int same = out->dtype == MFX_F32 && out->ndim == logits->ndim;
  for (int d = 0; same && d < out->ndim; d++) same = out->shape[d] == logits->shape[d];
  if (!same)
    return tool_error(TOOL_EXIT_FAIL, "%s %s holds %s with %d dims; expected f32 shaped "
                      "like the logits", flag, path, mfx_dtype_name(out->dtype), out->ndim);
  return 0;
}

static int tool_loss_noise(const tool_loss_args *a, tool_loss_run *r) {
  int rc = tool_loss_noise_file("loss: --noise-logits", a->noise_path, &r->logits, &r->noise);
  if (rc == 0 && a->eps_path != NULL)
    rc = tool_loss_noise_file("loss: --noise-eps", a->eps_path, &r->logits, &r->eps);
  return rc;
}

/* alpha from a list of latencies or from a latency table file. */
static int tool_loss_alpha(const tool_loss_args *a, tool_loss_run *r) {
  double latency[MFX_LATENCY_MAX_EXPERTS];
  size_t len = strlen(a->latency);
  if (len > 5 && strcmp(a->latency + len - 5, ".json") == 0) {
    mfx_latency_table *t = malloc(sizeof *t);
    mfx_status st = t ? mfx_latency_load(a->latency, a->device, t) : MFX_ERR_NOMEM;
    if (st == MFX_OK) {
      r->n_alpha = t->experts;
      memcpy(r->alpha, t->alpha, sizeof r->alpha);
    }
    free(t);
    return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "loss: --latency");
  }
  int rc = tool_flag_doubles("--latency", a->latency, latency, MFX_LATENCY_MAX_EXPERTS,
                             &r->n_alpha);
  if (rc != 0) return rc;
  if (mfx_router_latency_alpha(latency, r->n_alpha, r->alpha) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "loss: --latency");
  return 0;
}

static int tool_loss_compute(const tool_loss_args *a, tool_loss_run *r) {
  int latency = a->kind == MFX_ROUTER_LATENCY;
  if (latency && r->n_alpha != r->experts)
    return tool_error(TOOL_EXIT_FAIL, "loss: %d latencies for E=%d experts (logits %s); expected "
                      "one per expert", r->n_alpha, r->experts, a->logits_path);
  size_t bytes = (size_t)mfx_array_numel(&r->logits) * sizeof(float) + 1;
  r->grad = malloc(bytes);
  r->grad_noise = malloc(bytes);
  if (r->grad == NULL || r->grad_noise == NULL)
    return tool_error(TOOL_EXIT_FAIL, "loss: out of memory");
  const double *alpha = latency ? r->alpha : NULL;
  int n_alpha = latency ? r->n_alpha : 0;
  if (a->noise_path != NULL) {
    if (mfx_router_noisy_loss(a->kind, a->load, r->logits.data, r->noise.data, r->eps.data,
                              r->tokens, r->experts, (int)a->k, alpha, n_alpha, &r->loss,
                              r->grad, r->grad_noise) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "loss (noisy gate)");
    if (r->experts <= MFX_LATENCY_MAX_EXPERTS &&
        mfx_router_noisy_load(a->load, r->logits.data, r->noise.data, r->eps.data, r->tokens,
                              r->experts, (int)a->k, r->load) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "loss: load");
  } else if (mfx_router_loss(a->kind, r->logits.data, r->tokens, r->experts, (int)a->k, alpha,
                             n_alpha, NULL, &r->loss, r->grad) != MFX_OK) {
    return tool_error_status(TOOL_EXIT_FAIL, "loss");
  }
  int counts = r->experts <= MFX_LATENCY_MAX_EXPERTS;
  if (counts && mfx_router_expert_counts(r->logits.data, r->tokens, r->experts, (int)a->k,
                                         r->counts) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "loss: counts");
  return 0;
}

static int tool_loss_save(const char *flag, const char *path, const mfx_array *like,
                          float *data) {
  mfx_array g = *like;
  g.data = data;
  if (mfx_npy_save(path, &g) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, flag);
  return 0;
}

static void tool_loss_list(const double *v, int n) {
  for (int i = 0; i < n; i++) printf("%s%.4g", i ? " " : "", v[i]);
}

static int tool_loss_print_json(const tool_loss_args *a, const tool_loss_run *r) {
  int counts = r->experts <= MFX_LATENCY_MAX_EXPERTS;
  mfx_json w;
  mfx_json_begin(&w, stdout, MFX_JSON_COMPACT);
  mfx_json_object(&w);
  mfx_json_key_string(&w, "kind", mfx_router_loss_name(a->kind));
  mfx_json_key_number(&w, "loss", r->loss);
  mfx_json_key_int(&w, "tokens", r->tokens);
  mfx_json_key_int(&w, "experts", r->experts);
  mfx_json_key_int(&w, "k", a->k);
  mfx_json_key(&w, "counts");
  mfx_json_numbers(&w, r->counts, counts ? r->experts : 0);
  mfx_json_key(&w, "alpha");
  mfx_json_numbers(&w, r->alpha, r->n_alpha);
  if (a->noise_path != NULL) {
    mfx_json_key_string(&w, "load_kind", mfx_router_load_name(a->load));
    mfx_json_key(&w, "load");
    mfx_json_numbers(&w, r->load, counts ? r->experts : 0);
  }
  mfx_json_end(&w);
  putchar('\n');
  return tool_json_finish(&w, "loss --json");
}

static int tool_loss_print(const tool_loss_args *a, const tool_loss_run *r) {
  int counts = r->experts <= MFX_LATENCY_MAX_EXPERTS;
  if (a->json) return tool_loss_print_json(a, r);
  printf("loss     %s %.9g\nlogits   %s: %lld tokens x %d experts, k=%lld\n",
         mfx_router_loss_name(a->kind), r->loss, a->logits_path, (long long)r->tokens, r->experts,
         (long long)a->k);
  if (counts) {
    printf("counts   ");
    tool_loss_list(r->counts, r->experts);
    printf("\n");
  }
  if (a->noise_path != NULL && counts) {
    printf("load     %s (noisy gate): ", mfx_router_load_name(a->load));
    tool_loss_list(r->load, r->experts);
    printf("\n");
  }
  if (r->n_alpha > 0) {
    printf("alpha    ");
    tool_loss_list(r->alpha, r->n_alpha);
    printf("\n");
  }
  if (a->grad_out != NULL) printf("grad     saved to %s\n", a->grad_out);
  if (a->grad_noise_out != NULL) printf("grad     of the noise logits saved to %s\n",
                                        a->grad_noise_out);
  return 0;
}

int tool_cmd_loss(int argc, char **argv) {
  tool_loss_args a;
  int rc = tool_loss_parse(argc, argv, &a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc != 0) return rc;
  tool_loss_run r;
  memset(&r, 0, sizeof r);
  rc = tool_loss_logits(&a, &r);
  if (rc == 0 && a.noise_path != NULL) rc = tool_loss_noise(&a, &r);
  if (rc == 0 && a.latency != NULL) rc = tool_loss_alpha(&a, &r);
  if (rc == 0) rc = tool_loss_compute(&a, &r);
  if (rc == 0 && a.grad_out != NULL) rc = tool_loss_save("loss: --grad-out", a.grad_out, &r.logits, r.grad);
  if (rc == 0 && a.grad_noise_out != NULL)
    rc = tool_loss_save("loss: --grad-noise-out", a.grad_noise_out, &r.logits, r.grad_noise);
  if (rc == 0) rc = tool_loss_print(&a, &r);
  mfx_array_free(&r.logits);
  mfx_array_free(&r.noise);
  mfx_array_free(&r.eps);
  free(r.grad);
  free(r.grad_noise);
  return rc;
}
