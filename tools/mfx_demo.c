/* mfx demo: a ShiftAddViT MoE MLP layer at PVTv2-B0 stage-1 size, end to
 * end, in the order a user would go:
 *   1. tuning      each kernel of the layer, briefly (mfx_demo_tune.c)
 *   2. latencies   each expert at several token counts, fit, alpha; saved
 *   3. forward     a routed pass on compiled kernels, checked against the
 *                  plain-C reference of the same layer
 *   4. losses      the latency-aware and switch losses of the random router
 *   5. kernels     each kernel against its dense baseline; the layer's
 *                  kernels into an artifact (mfx_demo_kernels.c)
 *   6. every op    the per-op table (mfx_demo_ops.c)
 * Progress goes to stderr, the report to stdout, files to the output folder.
 * Exit status 1 when the layer (or an op) does not match its reference. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mfx/autotune.h"
#include "mfx/device.h"
#include "mfx/router.h"
#include "mfx_moe_cli.h"

#define TOOL_DEMO_TOL 1e-4
#define TOOL_DEMO_LOGIT_TOL 1e-5

typedef struct {
  int64_t tokens, trials, k;
  uint64_t seed;
  int dim, hidden, threads, ops;
  int experts;
  mfx_expert_kind kinds[MFX_MOE_MAX_EXPERTS];
  const char *out;
  const char *target; /* "auto", then what it resolved to */
} tool_demo_args;

typedef struct {
  tool_demo_args a;
  mfx_pool *pool;
  tool_demo_plan plan;
  tool_demo_tuning *tuning;
  mfx_latency_table latency;
  int have_latency;
  float *x, *y, *want, *logits, *ref_logits;
  mfx_moe *moe;
  int failed;
  double t0;
} tool_demo;

/* ==== arguments ================================================================ */

static int tool_demo_parse(int argc, char **argv, tool_demo_args *a) {
  int no_ops = 0;
  tool_experts_request kinds;
  memset(&kinds, 0, sizeof kinds);
  kinds.experts = a->experts;
  memcpy(kinds.kinds, a->kinds, sizeof kinds.kinds);
  const tool_arg options[] = {
      {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
       .example = "--target cpu"},
      {.name = "--tokens", .type = TOOL_ARG_INT64, .to.i64 = &a->tokens, .min = 2,
       .max = 1 << 24, .example = "--tokens 3136"},
      {.name = "--dim", .type = TOOL_ARG_INT, .to.i32 = &a->dim, .min = 1, .max = 1 << 16,
       .example = "--dim 64"},
      {.name = "--hidden", .type = TOOL_ARG_INT, .to.i32 = &a->hidden, .min = 1,
       .max = 1 << 16, .example = "--hidden 512"},
      {.name = "--experts", .type = TOOL_ARG_TEXT, .example = "--experts mult,shift",
       .check = tool_check_expert_kinds, .check_user = &kinds},
      {.name = "--k", .type = TOOL_ARG_INT64, .to.i64 = &a->k, .min = 1,
       .max = MFX_MOE_MAX_EXPERTS, .example = "--k 1"},
      {.name = "--tune-trials", .type = TOOL_ARG_INT64, .to.i64 = &a->trials, .min = 0,
       .max = 1000, .example = "--tune-trials 8"},
      {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &a->threads, .min = 1,
       .max = 1024, .example = "--threads 2"},
      {.name = "--seed", .type = TOOL_ARG_UINT64, .to.u64 = &a->seed, .example = "--seed 7"},
      {.name = "--out", .type = TOOL_ARG_PATH, .to.text = &a->out,
       .example = "--out mfx-demo-out"},
      {.name = "--no-ops", .type = TOOL_ARG_FLAG, .to.flag = &no_ops},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "demo", .usage = tool_usage("demo"),
                     .options = options};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc != 0) return rc;
  a->ops = !no_ops;
  a->experts = kinds.experts;
  memcpy(a->kinds, kinds.kinds, sizeof a->kinds);
  if (a->k > a->experts)
    return tool_error(TOOL_EXIT_USAGE, "demo: --k %lld with %d experts; expected k <= E",
                      (long long)a->k, a->experts);
  return tool_check_layer_target("demo", a->target, 1);
}

static void tool_demo_defaults(tool_demo_args *a) {
  memset(a, 0, sizeof *a);
  a->tokens = 3136; /* PVTv2-B0 stage 1: 56 x 56 tokens of dim 64, MLP ratio 8 */
  a->dim = 64;
  a->hidden = 512;
  a->experts = 2;
  a->kinds[0] = MFX_EXPERT_MULT;
  a->kinds[1] = MFX_EXPERT_SHIFT;
  a->k = 1;
  a->trials = 8;
  a->seed = 1;
  a->ops = 1;
  a->out = "mfx-demo-out";
  a->target = "auto";
}

/* auto: the first GPU when the driver and a device are there, else cpu. */
static void tool_demo_resolve_target(tool_demo_args *a) {
  if (strcmp(a->target, "auto") != 0) return;
  /* asked in a child process (mfx_tune_target_get): this process must not
   * initialise CUDA before the tuner forks its GPU worker */
  mfx_tune_target gpu;
  a->target = mfx_tune_target_get("cuda", &gpu) == MFX_OK ? "cuda" : "cpu";
  mfx_clear_error();
}

static int tool_demo_on_gpu(const tool_demo_args *a) { return strcmp(a->target, "cpu") != 0; }

/* ==== helpers ====================================================================== */

static void tool_demo_step(tool_demo *d, const char *what) {
  fprintf(stderr, "[demo] %5.1f s  %s\n", mfx_now_seconds() - d->t0, what);
}

static int tool_demo_path(const tool_demo *d, const char *name, char *buf, size_t size) {
  if ((size_t)snprintf(buf, size, "%s/%s", d->a.out, name) >= size)
    return tool_error(TOOL_EXIT_USAGE, "demo: --out '%s' is too long", d->a.out);
  return 0;
}

static int tool_demo_nonnull(const tool_demo_args *a) {
  int n = 0;
  for (int e = 0; e < a->experts; e++) n += a->kinds[e] != MFX_EXPERT_NULL;
  return n;
}

/* Tokens per non-null expert at a balanced load: k T / (non-null experts). */
static int64_t tool_demo_balanced(const tool_demo_args *a) {
  int n = tool_demo_nonnull(a);
  int64_t load = n > 0 ? (a->k * a->tokens + n - 1) / n : a->tokens;
  return load < a->tokens ? load : a->tokens;
}

static void tool_demo_fill(float *x, int64_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  for (int64_t i = 0; i < n; i++)
    x[i] = (float)((double)(mfx_rng_next(&s) >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* ==== the header ======================================================================= */

static void tool_demo_gpu_line(const tool_demo_args *a) {
  if (tool_demo_on_gpu(a)) return; /* the layer line names it */
  int count = 0;
  if (mfx_device_count("cuda", &count) != MFX_OK) {
    printf("  GPU       none usable (%s)\n", mfx_last_error());
    mfx_clear_error();
    return;
  }
  printf("  GPU       %s\n", count > 0 ? "present, not used (--target cpu)" : "none");
}

static void tool_demo_header(const tool_demo *d) {
  char key[160] = "";
  mfx_latency_host_key(key, sizeof key);
  int pvt = d->a.tokens == 3136 && d->a.dim == 64 && d->a.hidden == 512;
  printf("mfx demo: a ShiftAddViT MoE MLP layer%s\n",
         pvt ? " at PVTv2-B0 stage-1 size" : " (a custom size; PVTv2-B0 stage 1 is the default)");
  printf("  layer     %lld tokens, dim %d, hidden %d, experts ", (long long)d->a.tokens, d->a.dim,
         d->a.hidden);
  for (int e = 0; e < d->a.experts; e++)
    printf("%s%s", e ? "," : "", mfx_expert_kind_name(d->a.kinds[e]));
  printf(" (top-%lld)\n  host      %s, %d threads\n", (long long)d->a.k, key,
         mfx_pool_threads(d->pool));
  printf("  target    %s\n", d->a.target);
  tool_demo_gpu_line(&d->a);
  printf("  output    %s/\n", d->a.out);
}

/* ==== 1. tuning ========================================================================= */

static void tool_plan_add(tool_demo_plan *p, const char *role, const char *op, int64_t m,
                          int64_t n, int64_t k) {
  for (int i = 0; i < p->n; i++) /* experts of one kind share their kernels */
    if (strcmp(p->kernels[i].op->name, op) == 0 && p->kernels[i].dims[0] == m &&
        p->kernels[i].dims[1] == n && p->kernels[i].dims[2] == k)
      return;
  tool_demo_kernel *x = &p->kernels[p->n++];
  x->role = role;
  x->op = mfx_op_find(op);
  x->dims[0] = m;
  x->dims[1] = n;
  x->dims[2] = k;
}

static void tool_demo_make_plan(tool_demo *d) {
  const tool_demo_args *a = &d->a;
  int64_t m = mfx_moe_bucket(tool_demo_balanced(a));
  tool_plan_add(&d->plan, "router", "linear", mfx_moe_bucket(a->tokens), a->experts, a->dim);
  for (int e = 0; e < a->experts; e++) {
    if (a->kinds[e] == MFX_EXPERT_MULT) {
      /* the kernels the layer runs: GELU and Q16.16 fused into them */
      tool_plan_add(&d->plan, "mult fc1", "linear_gelu", m, a->hidden, a->dim);
      tool_plan_add(&d->plan, "mult fc2", "linear", m, a->dim, a->hidden);
    } else if (a->kinds[e] == MFX_EXPERT_SHIFT) {
      tool_plan_add(&d->plan, "shift fc1", "shift_linear_q16_gelu", m, a->hidden, a->dim);
      tool_plan_add(&d->plan, "shift fc2", "shift_linear_dequantize", m, a->dim, a->hidden);
    } else if (a->kinds[e] == MFX_EXPERT_SHIFT16) {
      tool_plan_add(&d->plan, "shift16 fc1", "shift_linear16_gelu", m, a->hidden, a->dim);
      tool_plan_add(&d->plan, "shift16 fc2", "shift_linear16_dequantize", m, a->dim, a->hidden);
    }
  }
}

static int tool_demo_tune_section(tool_demo *d) {
  char db[1100];
  int rc = tool_demo_path(d, "tune.db", db, sizeof db);
  if (rc != 0) return rc;
  printf("\n1. tuning: autotuner, %lld random trials per kernel at the balanced load on %s "
         "(database %s)\n", (long long)d->a.trials, d->a.target, db);
  tool_demo_step(d, "tuning the layer's kernels");
  return tool_demo_tune(db, (int)d->a.trials, &d->plan, d->a.target, &d->tuning);
}

/* ==== 2. expert latencies ================================================================= */

static int tool_demo_latency_request(const tool_demo *d, tool_experts_request *r) {
  memset(r, 0, sizeof *r);
  r->tokens = d->a.tokens;
  r->dim = d->a.dim;
  r->hidden = d->a.hidden;
  for (int e = 0; e < d->a.experts; e++)
    if (d->a.kinds[e] != MFX_EXPERT_NULL) r->kinds[r->experts++] = d->a.kinds[e];
  r->at_tokens = tool_demo_balanced(&d->a);
  mfx_profile_options_default(&r->profile);
  r->profile.min_seconds = 0.03;
  r->choose_config = tool_demo_choose;
  r->choose_user = d->tuning;
  r->progress = "[demo] latency";
  r->target = d->a.target;
  return r->experts;
}

static int tool_demo_latencies(tool_demo *d) {
  tool_experts_request r;
  printf("\n2. expert latencies: latency(n) = a + b n fitted by least squares; alpha = latency "
         "/ mean at the balanced load\n");
  if (tool_demo_latency_request(d, &r) == 0) {
    printf("  skipped: every expert is null (no latency to measure)\n");
    return 0;
  }
  tool_demo_step(d, "measuring expert latencies");
  int rc = tool_experts_measure(&r, d->pool, &d->latency);
  char json[1100], svg[1100];
  if (rc == 0) rc = tool_demo_path(d, "latency.json", json, sizeof json);
  if (rc == 0) rc = tool_demo_path(d, "latency.svg", svg, sizeof svg);
  if (rc != 0) return rc;
  d->have_latency = 1;
  tool_experts_print(stdout, &d->latency);
  if (mfx_latency_save(json, &d->latency) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: saving the latency table");
  rc = tool_experts_plot(svg, &d->latency);
  if (rc == 0) printf("  saved %s (mfx.load_latency) and %s\n", json, svg);
  return rc;
}

/* ==== 3. the routed forward pass ============================================================ */

static int tool_demo_layer(tool_demo *d) {
  mfx_moe_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = d->a.dim;
  spec.hidden = d->a.hidden;
  spec.experts = d->a.experts;
  spec.k = (int)d->a.k;
  memcpy(spec.kinds, d->a.kinds, sizeof spec.kinds);
  spec.choose_config = tool_demo_choose;
  spec.choose_user = d->tuning;
  spec.target = d->a.target;
  if (mfx_moe_create(&spec, &d->moe) != MFX_OK ||
      mfx_moe_init_random(d->moe, (uint64_t)d->a.seed) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: the layer");
  int64_t n = d->a.tokens * d->a.dim, z = d->a.tokens * d->a.experts;
  d->x = malloc((size_t)n * 4);
  d->y = malloc((size_t)n * 4);
  d->want = malloc((size_t)n * 4);
  d->logits = malloc((size_t)z * 4);
  d->ref_logits = malloc((size_t)z * 4);
  if (!d->x || !d->y || !d->want || !d->logits || !d->ref_logits)
    return tool_error(TOOL_EXIT_FAIL, "demo: out of memory for %lld tokens",
                      (long long)d->a.tokens);
  tool_demo_fill(d->x, n, (uint64_t)d->a.seed);
  return 0;
}

typedef struct {
  tool_demo *d;
  mfx_kernel_env env;
} tool_forward_call;

static int tool_forward_once(void *closure) {
  tool_forward_call *c = closure;
  if (mfx_moe_forward(c->d->moe, &c->env, c->d->x, c->d->a.tokens, c->d->y, NULL) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: forward");
  return 0;
}

static void tool_demo_print_trace(const tool_demo *d, const mfx_moe_trace *t, double median) {
  printf("  first pass %.1f ms (compiled %d kernels: token counts are padded to buckets, so a\n"
         "  few kernels serve every batch); then %.2f ms per pass (median)\n",
         t->total_s * 1e3, t->kernels_compiled, median * 1e3);
  printf("  %-10s %8s %10s\n", "step", "tokens", "ms (1st)");
  printf("  %-10s %8lld %10.3f\n", "router", (long long)d->a.tokens, t->router_s * 1e3);
  printf("  %-10s %8s %10.3f\n", "dispatch", "", t->dispatch_s * 1e3);
  printf("  %-10s %8s %10.3f  (the experts' kernels, side by side)\n", "compile", "",
         t->compile_s * 1e3);
  for (int e = 0; e < d->a.experts; e++) {
    char name[32];
    snprintf(name, sizeof name, "%d %s", e, mfx_expert_kind_name(d->a.kinds[e]));
    printf("  %-10s %8.0f %10.3f\n", name, t->counts[e], t->expert_s[e] * 1e3);
  }
  printf("  %-10s %8s %10.3f\n", "combine", "", t->combine_s * 1e3);
}

/* Tokens whose top-1 expert differs between the layer's and the reference's logits. */
static int64_t tool_demo_route_disagreements(const tool_demo *d) {
  int64_t differ = 0, E = d->a.experts;
  for (int64_t t = 0; t < d->a.tokens; t++) {
    int a = 0, b = 0;
    for (int e = 1; e < E; e++) {
      if (d->logits[t * E + e] > d->logits[t * E + a]) a = e;
      if (d->ref_logits[t * E + e] > d->ref_logits[t * E + b]) b = e;
    }
    differ += a != b;
  }
  return differ;
}

static void tool_demo_check(tool_demo *d) {
  int64_t n = d->a.tokens * d->a.dim, z = d->a.tokens * d->a.experts;
  mfx_array got = {MFX_F32, 1, {n}, d->y}, want = {MFX_F32, 1, {n}, d->want};
  mfx_array gl = {MFX_F32, 1, {z}, d->logits}, wl = {MFX_F32, 1, {z}, d->ref_logits};
  mfx_compare out = mfx_compare_arrays(&got, &want, TOOL_DEMO_TOL);
  mfx_compare lg = mfx_compare_arrays(&gl, &wl, TOOL_DEMO_LOGIT_TOL);
  int ok = out.ok && lg.ok;
  printf("  check vs the plain-C reference: logits max rel err %.2e (tol %.0e), output max rel "
         "err %.2e (tol %.0e): %s\n", lg.max_rel_err, TOOL_DEMO_LOGIT_TOL, out.max_rel_err,
         TOOL_DEMO_TOL, ok ? "ok" : "MISMATCH");
  printf("  routing: top-1 from the reference's own logits differs on %lld of %lld tokens (near "
         "ties; the check routes both by the layer's logits)\n",
         (long long)tool_demo_route_disagreements(d), (long long)d->a.tokens);
  if (!ok) d->failed++;
}

static int tool_demo_forward(tool_demo *d) {
  printf("\n3. routed forward pass on compiled kernels (router, dispatch, experts, combine)\n");
  int rc = tool_demo_layer(d);
  if (rc != 0) return rc;
  printf("  kernels on %s%s\n", mfx_moe_target_description(d->moe),
         mfx_moe_on_gpu(d->moe) ? "; top-k routing on the host, gather and combine on the device" : "");
  tool_forward_call call = {d, {0}};
  mfx_kernel_env_init(&call.env, d->pool);
  mfx_moe_trace trace;
  memset(&trace, 0, sizeof trace);
  trace.logits = d->logits;
  tool_demo_step(d, "forward pass (compiling its kernels)");
  if (mfx_moe_forward(d->moe, &call.env, d->x, d->a.tokens, d->y, &trace) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: forward");
  double median = 0.0;
  int runs = 0;
  rc = tool_measure(tool_forward_once, &call, 3, 50, 0.3, &median, &runs);
  if (rc != 0) return rc;
  tool_demo_print_trace(d, &trace, median);
  tool_demo_step(d, "plain-C reference of the layer");
  if (mfx_moe_reference(d->moe, d->x, d->a.tokens, d->logits, d->want, d->ref_logits) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: reference");
  tool_demo_check(d);
  return 0;
}

/* ==== 4. router losses ================================================================ */

static int tool_demo_alpha(const tool_demo *d, double *alpha) {
  if (!d->have_latency || tool_demo_nonnull(&d->a) != d->a.experts) return 0;
  for (int e = 0; e < d->a.experts; e++) alpha[e] = d->latency.alpha[e];
  return 1;
}

static void tool_demo_vector(const char *label, const double *v, int n, const char *fmt) {
  printf("  %-28s", label);
  for (int i = 0; i < n; i++) printf(fmt, v[i]);
  printf("\n");
}

static int tool_demo_latency_loss(const tool_demo *d, const double *alpha, const double *counts) {
  int E = d->a.experts;
  double loss = 0.0, weighted[MFX_MOE_MAX_EXPERTS], pull[MFX_MOE_MAX_EXPERTS] = {0};
  float *grad = malloc((size_t)(d->a.tokens * E) * sizeof(float));
  if (grad == NULL) return tool_error(TOOL_EXIT_FAIL, "demo: out of memory");
  mfx_status st = mfx_router_loss(MFX_ROUTER_LATENCY, d->logits, d->a.tokens, E, (int)d->a.k,
                                  alpha, E, NULL, &loss, grad);
  if (st == MFX_OK) {
    for (int64_t t = 0; t < d->a.tokens; t++)
      for (int e = 0; e < E; e++) pull[e] -= grad[t * E + e];
    for (int e = 0; e < E; e++) weighted[e] = alpha[e] * counts[e];
    tool_demo_vector("alpha (latency weights)", alpha, E, " %10.3f");
    tool_demo_vector("alpha x tokens", weighted, E, " %10.1f");
    printf("  %-28s %10.6f\n", "latency-aware loss", loss);
    tool_demo_vector("-sum_t dL/dz (pull)", pull, E, " %10.4f");
    printf("  (the loss pulls logits toward the experts with positive pull: faster experts\n"
           "   get more tokens until alpha x tokens is equal)\n");
  }
  free(grad);
  return st == MFX_OK ? 0 : tool_error_status(TOOL_EXIT_FAIL, "demo: latency loss");
}

static int tool_demo_losses(tool_demo *d) {
  int E = d->a.experts;
  double counts[MFX_MOE_MAX_EXPERTS], loss = 0.0, alpha[MFX_MOE_MAX_EXPERTS];
  printf("\n4. router losses of this random router (logits of the pass above, k=%lld)\n",
         (long long)d->a.k);
  if (mfx_router_expert_counts(d->logits, d->a.tokens, E, (int)d->a.k, counts) != MFX_OK ||
      mfx_router_loss(MFX_ROUTER_SWITCH, d->logits, d->a.tokens, E, (int)d->a.k, NULL, 0, NULL,
                      &loss, NULL) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "demo: switch loss");
  tool_demo_vector("tokens per expert", counts, E, " %10.0f");
  printf("  %-28s %10.6f  (1 at perfect balance)\n", "switch loss", loss);
  if (E < 2 || !tool_demo_alpha(d, alpha)) {
    printf("  latency-aware loss: skipped (needs 2+ experts, none of them null, with latencies)\n");
    return 0;
  }
  return tool_demo_latency_loss(d, alpha, counts);
}

/* ==== 5. kernels and the artifact, 6. every op =============================================== */

static int tool_demo_kernels(tool_demo *d) {
  printf("\n5. kernels of the layer against their dense baselines (configs as the layer uses "
         "them)\n");
  tool_demo_step(d, "timing kernels");
  const mfx_latency_table *latency = d->have_latency ? &d->latency : NULL;
  tool_demo_plan none = {0};
  if (tool_demo_on_gpu(&d->a))
    printf("  (the layer runs on %s: the experts below as measured there; each GPU kernel\n"
           "   against PyTorch: bench/gpu.sh)\n", d->a.target);
  int rc = tool_demo_kernel_table(tool_demo_on_gpu(&d->a) ? &none : &d->plan, d->tuning, d->pool,
                                  latency);
  char path[1100];
  if (rc == 0) rc = tool_demo_path(d, "moe_layer.mfxa", path, sizeof path);
  if (rc != 0) return rc;
  printf("\n   the layer's compiled kernels, ahead of time:\n");
  tool_demo_step(d, "building the artifact");
  return tool_demo_artifact(d->moe, path);
}

static int tool_demo_ops(tool_demo *d) {
  if (!d->a.ops) return 0;
  printf("\n6. every op on a moderate shape\n");
  tool_demo_step(d, "every op");
  d->failed += tool_demo_ops_table(d->pool);
  return 0;
}

/* ==== the command ============================================================================= */

static int tool_demo_mkdir(const char *dir) {
  if (mkdir(dir, 0755) == 0 || errno == EEXIST) return 0;
  return tool_error(TOOL_EXIT_FAIL, "demo: cannot create the output folder %s: %s", dir,
                    strerror(errno));
}

static void tool_demo_free(tool_demo *d) {
  mfx_moe_destroy(d->moe);
  tool_demo_tuning_free(d->tuning);
  mfx_pool_destroy(d->pool);
  free(d->x);
  free(d->y);
  free(d->want);
  free(d->logits);
  free(d->ref_logits);
}

static int tool_demo_run(tool_demo *d) {
  int rc = tool_demo_mkdir(d->a.out);
  if (rc == 0 && mfx_pool_create(d->a.threads, &d->pool) != MFX_OK)
    rc = tool_error_status(TOOL_EXIT_FAIL, "demo: creating the thread pool");
  if (rc != 0) return rc;
  tool_demo_header(d);
  tool_demo_make_plan(d);
  rc = tool_demo_tune_section(d);
  if (rc == 0) rc = tool_demo_latencies(d);
  if (rc == 0) rc = tool_demo_forward(d);
  if (rc == 0) rc = tool_demo_losses(d);
  if (rc == 0) rc = tool_demo_kernels(d);
  if (rc == 0) rc = tool_demo_ops(d);
  return rc;
}

static void tool_demo_summary(const tool_demo *d) {
  int sources[3];
  tool_demo_tuning_sources(d->tuning, sources);
  printf("\nconfigs the layer compiled with (%s records): %d tuned, %d from the nearest tuned "
         "shape, %d template defaults\n", d->a.target, sources[MFX_TUNE_TUNED],
         sources[MFX_TUNE_NEAREST], sources[MFX_TUNE_DEFAULT]);
  if (tool_demo_on_gpu(&d->a))
    printf("files in %s/: tune.db, latency.json, latency.svg%s\n", d->a.out,
           mfx_moe_gpu_kernel_at(d->moe, 0) != NULL ? ", moe_layer.mfxa" : "");
  else
    printf("files in %s/: tune.db, latency.json, latency.svg, moe_layer.mfxa\n", d->a.out);
  printf("done in %.1f s: %s\n", mfx_now_seconds() - d->t0,
         d->failed ? "CHECK FAILED" : "every check passed");
}

int tool_cmd_demo(int argc, char **argv) {
  tool_demo d;
  memset(&d, 0, sizeof d);
  d.t0 = mfx_now_seconds();
  tool_demo_defaults(&d.a);
  int rc = tool_demo_parse(argc, argv, &d.a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  if (rc == 0) tool_demo_resolve_target(&d.a);
  if (rc == 0) rc = tool_demo_run(&d);
  if (rc == 0) tool_demo_summary(&d);
  fflush(stdout);
  tool_demo_free(&d);
  if (rc == 0 && d.failed > 0)
    rc = tool_error(TOOL_EXIT_FAIL, "demo: %d check(s) failed", d.failed);
  return rc;
}
