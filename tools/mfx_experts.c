/* mfx experts: measure each expert of a ShiftAddViT MoE layer at several
 * token counts, fit latency(n) = a + b n, and print and save the latency
 * table with alpha, the weights of the latency-aware router loss. Also the
 * option helpers and the SVG plot that mfx loss and mfx demo share. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfx/plot.h"
#include "mfx_moe_cli.h"

static const char tool_experts_usage[] =
    "usage: mfx experts --tokens N --dim D --hidden H [options]\n"
    "\n"
    "Measure each expert at N/8, N/4, N/2 and N tokens (median of repeats after a\n"
    "warm-up), fit latency(n) = a + b*n by least squares, and print the table, the\n"
    "fit and alpha = latency / mean latency at the balanced load N/E. The table is\n"
    "saved under this device's key for training code (mfx.load_latency).\n"
    "  --tokens N          the most tokens one expert gets (N >= 2)\n"
    "  --dim D             token dimension; --hidden H: expert hidden size\n"
    "  --experts LIST      expert kinds: mult, shift, shift16 (Q3.10 on 16-bit lanes),\n"
    "                      null; e.g. mult,shift,shift16 (default mult,shift);\n"
    "                      null experts cost nothing and have no alpha\n"
    "  --at N              read latency and alpha off the fits at N tokens\n"
    "  --target T          where the experts run: cpu (default), cuda, cuda:N, or\n"
    "                      emulate (the GPU kernels on the CPU, for testing); on a\n"
    "                      GPU the time is the kernels' (device events), without\n"
    "                      the copies of the batch to and from the host\n"
    "  --db PATH           tuning database whose records of the target's device give\n"
    "                      the kernels' configs (default $MFX_DB, else\n"
    "                      ~/.cache/mfx/tune.db; none: template defaults)\n"
    "  --threads N         thread pool size (default: one per CPU)\n"
    "  --min-time S        seconds measured per point, at least (default 0.05)\n"
    "  --json              print the table as JSON instead of text\n"
    "  --plot FILE.svg     plot latency against tokens per expert\n"
    "  --out FILE.json     the table file (default $MFX_LATENCY or\n"
    "                      ~/.cache/mfx/latency.json); other devices' tables are kept\n";

/* ==== options ================================================================ */

/* Numbers inside an option's value (a list, say), with the shared
 * parser's checks and messages. */
static int tool_flag_report(const tool_arg_error *err) {
  tool_args_print_error("mfx", err);
  return TOOL_EXIT_USAGE;
}

int tool_flag_int(const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out) {
  tool_arg_error err;
  return tool_args_int64(flag, text, lo, hi, out, &err) == 0 ? 0 : tool_flag_report(&err);
}

int tool_flag_double(const char *flag, const char *text, double lo, double hi, double *out) {
  tool_arg_error err;
  return tool_args_double(flag, text, lo, hi, 0, out, &err) == 0 ? 0 : tool_flag_report(&err);
}

int tool_flag_doubles(const char *flag, const char *text, double *out, int max, int *count) {
  *count = 0;
  const char *p = text;
  for (;;) {
    char item[64];
    size_t len = strcspn(p, ",");
    if (*count >= max)
      return tool_error(TOOL_EXIT_USAGE, "%s: more than %d values in '%s'", flag, max, text);
    if (len == 0 || len >= sizeof item)
      return tool_error(TOOL_EXIT_USAGE, "%s: '%s' has an empty or overlong value; expected "
                        "numbers like 1.5,2,3", flag, text);
    memcpy(item, p, len);
    item[len] = '\0';
    int rc = tool_flag_double(flag, item, -1e300, 1e300, &out[(*count)++]);
    if (rc != 0) return rc;
    if (p[len] == '\0') return 0;
    p += len + 1;
  }
}

/* ==== measuring ==================================================================== */

int tool_check_layer_target(const char *cmd, const char *target, int allow_auto) {
  if (mfx_moe_target_valid(target) || (allow_auto && strcmp(target, "auto") == 0)) return 0;
  return tool_error(TOOL_EXIT_USAGE, "%s: --target '%s'; expected %scpu, cuda, cuda:N or emulate",
                    cmd, target, allow_auto ? "auto, " : "");
}

int tool_experts_points(int64_t tokens, int64_t *points) {
  const int64_t divisors[4] = {8, 4, 2, 1};
  int n = 0;
  for (int i = 0; i < 4; i++) {
    int64_t v = tokens / divisors[i];
    if (v < 1) v = 1;
    if (n == 0 || v != points[n - 1]) points[n++] = v;
  }
  return n;
}

typedef struct {
  mfx_moe *moe;
  int e;
  const mfx_kernel_env *env;
  const float *x;
  float *y;
} tool_expert_call;

static mfx_status tool_expert_once(void *user, int64_t tokens) {
  tool_expert_call *c = user;
  return mfx_moe_expert_forward(c->moe, c->e, c->env, c->x, tokens, c->y);
}

/* A GPU expert's time: its kernels between device events, without the
 * copies of its batch to and from the host. */
static double tool_expert_kernel_seconds(void *user) {
  const tool_expert_call *c = user;
  return mfx_moe_last_expert_seconds(c->moe);
}

static int tool_experts_layer(const tool_experts_request *r, mfx_moe **out) {
  mfx_moe_spec spec;
  memset(&spec, 0, sizeof spec);
  spec.dim = r->dim;
  spec.hidden = r->hidden;
  spec.experts = r->experts;
  spec.k = 1;
  memcpy(spec.kinds, r->kinds, sizeof spec.kinds);
  spec.choose_config = r->choose_config;
  spec.choose_user = r->choose_user;
  spec.target = r->target;
  for (int e = 0; e < r->experts; e++) {
    if (r->kinds[e] == MFX_EXPERT_NULL)
      return tool_error(TOOL_EXIT_USAGE, "experts: expert %d is null; null experts cost nothing "
                        "and have no latency to weigh (list mult and shift experts)", e);
  }
  if (mfx_moe_create(&spec, out) != MFX_OK || mfx_moe_init_random(*out, 1) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts: creating the layer");
  return 0;
}

static void tool_fill_tokens(float *x, int64_t n) {
  uint64_t s = 0x2545F4914F6CDD1Dull;
  for (int64_t i = 0; i < n; i++)
    x[i] = (float)((double)(mfx_rng_next(&s) >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* The table's key: this host's for the CPU; a GPU's model and arch, the
 * same for every GPU of that model ("cuda: NVIDIA H100 80GB HBM3 (sm_90)");
 * "emulate: " and the CPU model for the emulation. */
static int tool_experts_table_init(const tool_experts_request *r, const mfx_moe *moe,
                                   mfx_latency_table *t) {
  memset(t, 0, sizeof *t);
  if (!mfx_moe_on_gpu(moe)) {
    if (mfx_latency_host_key(t->device, sizeof t->device) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "experts: device key");
    snprintf(t->target, sizeof t->target, "cpu");
  } else {
    int emulated = strcmp(r->target, "emulate") == 0;
    snprintf(t->target, sizeof t->target, "%s", emulated ? "emulate" : "cuda");
    const mfx_device_info *info = mfx_moe_device_info(moe);
    if (emulated) snprintf(t->device, sizeof t->device, "emulate: %.120s", info->name);
    else snprintf(t->device, sizeof t->device, "cuda: %.120s (%.24s)", info->name, info->arch);
  }
  t->dim = r->dim;
  t->hidden = r->hidden;
  t->experts = r->experts;
  t->at_tokens = r->at_tokens > 0 ? r->at_tokens : r->tokens / r->experts;
  if (t->at_tokens < 1) t->at_tokens = 1;
  return 0;
}

static int tool_experts_run(const tool_experts_request *r, tool_expert_call *call,
                            mfx_latency_table *t) {
  int64_t points[4];
  int n = tool_experts_points(r->tokens, points);
  for (int e = 0; e < r->experts; e++) {
    mfx_latency_expert *x = &t->expert[e];
    snprintf(x->name, sizeof x->name, "%s", mfx_expert_kind_name(r->kinds[e]));
    call->e = e;
    if (mfx_profile_expert(tool_expert_once, call, points, n, &r->profile, x) != MFX_OK)
      return tool_error_status(TOOL_EXIT_FAIL, "experts: measuring");
    if (r->progress == NULL) continue;
    fprintf(stderr, "%s expert %d (%s):", r->progress, e, x->name);
    for (int i = 0; i < x->points; i++)
      fprintf(stderr, " %lld tok %.3f ms%s", (long long)x->tokens[i], x->seconds[i] * 1e3,
              i + 1 < x->points ? "," : "\n");
  }
  if (mfx_latency_finish(t) != MFX_OK) return tool_error_status(TOOL_EXIT_FAIL, "experts: fit");
  return 0;
}

int tool_experts_measure(const tool_experts_request *r, mfx_pool *pool, mfx_latency_table *t) {
  if (r->tokens < 2 || r->dim < 1 || r->hidden < 1 || r->experts < 1)
    return tool_error(TOOL_EXIT_USAGE, "experts: tokens=%lld, dim=%d, hidden=%d, %d experts; "
                      "expected tokens >= 2, dims >= 1 and at least one expert",
                      (long long)r->tokens, r->dim, r->hidden, r->experts);
  mfx_moe *moe = NULL;
  int rc = tool_experts_layer(r, &moe);
  if (rc == 0) rc = tool_experts_table_init(r, moe, t);
  size_t bytes = (size_t)(r->tokens * r->dim) * sizeof(float);
  float *x = malloc(bytes), *y = malloc(bytes);
  if (rc == 0 && (x == NULL || y == NULL))
    rc = tool_error(TOOL_EXIT_FAIL, "experts: out of memory for %lld tokens", (long long)r->tokens);
  if (rc == 0) {
    tool_fill_tokens(x, r->tokens * r->dim);
    mfx_kernel_env env;
    mfx_kernel_env_init(&env, pool);
    tool_expert_call call = {moe, 0, &env, x, y};
    tool_experts_request timed = *r;
    if (mfx_moe_on_gpu(moe)) timed.profile.seconds = tool_expert_kernel_seconds;
    rc = tool_experts_run(&timed, &call, t);
  }
  free(x);
  free(y);
  mfx_moe_destroy(moe);
  return rc;
}

/* ==== printing ===================================================================== */

void tool_experts_print(FILE *out, const mfx_latency_table *t) {
  fprintf(out, "device   %s\nlayer    D=%lld H=%lld; latency and alpha at %lld tokens per "
          "expert\n\n", t->device, (long long)t->dim, (long long)t->hidden,
          (long long)t->at_tokens);
  fprintf(out, "%-8s", "expert");
  for (int i = 0; i < t->expert[0].points; i++)
    fprintf(out, " %9lld", (long long)t->expert[0].tokens[i]);
  fprintf(out, "  %9s %11s %6s %11s %7s\n", "a ms", "b us/tok", "r2", "latency ms", "alpha");
  for (int e = 0; e < t->experts; e++) {
    const mfx_latency_expert *x = &t->expert[e];
    fprintf(out, "%-8s", x->name);
    for (int i = 0; i < x->points; i++) fprintf(out, " %9.3f", x->seconds[i] * 1e3);
    fprintf(out, "  %9.4f %11.4f %6.3f %11.4f %7.3f\n", x->a * 1e3, x->b * 1e6, x->r2,
            x->latency * 1e3, t->alpha[e]);
  }
  fprintf(out, "(times in ms per call at each token count: medians)\n");
}

/* ==== the SVG plot (mfx/plot.h) ========================================================= */

static const char *const plot_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                          "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

/* The frame: from 0 to a little above the largest token count and latency
 * (measured or fitted). */
static void plot_frame_of(const mfx_latency_table *t, mfx_plot *p) {
  double xmax = 1.0, ymax = 1e-6; /* tokens, milliseconds */
  for (int e = 0; e < t->experts; e++) {
    const mfx_latency_expert *x = &t->expert[e];
    for (int i = 0; i < x->points; i++) {
      xmax = fmax(xmax, (double)x->tokens[i]);
      ymax = fmax(ymax, x->seconds[i] * 1e3);
    }
  }
  for (int e = 0; e < t->experts; e++)
    ymax = fmax(ymax, (t->expert[e].a + t->expert[e].b * xmax) * 1e3);
  p->x_lo = p->y_lo = 0.0;
  p->x_hi = xmax * 1.05;
  p->y_hi = ymax * 1.1;
}

static void plot_expert(const mfx_plot *p, const mfx_latency_table *t, int e) {
  const mfx_latency_expert *x = &t->expert[e];
  const char *color = plot_colors[e % (int)(sizeof plot_colors / sizeof plot_colors[0])];
  double tokens[MFX_LATENCY_MAX_POINTS], ms[MFX_LATENCY_MAX_POINTS];
  int n = x->points < MFX_LATENCY_MAX_POINTS ? x->points : MFX_LATENCY_MAX_POINTS;
  for (int i = 0; i < n; i++) {
    tokens[i] = (double)x->tokens[i];
    ms[i] = x->seconds[i] * 1e3;
  }
  mfx_plot_line(p, tokens, ms, n, color);
  mfx_plot_points(p, tokens, ms, n, color, 3.5);
  double n0 = x->a < 0.0 && x->b > 0.0 ? -x->a / x->b : 0.0, n1 = p->x_hi / 1.05;
  mfx_plot_segment(p, n0, (x->a + x->b * n0) * 1e3, n1, (x->a + x->b * n1) * 1e3, color, 1);
  char text[128], note[128];
  snprintf(text, sizeof text, "%s  alpha %.3f", x->name, t->alpha[e]);
  snprintf(note, sizeof note, "fit %.4f ms + %.4f us/token", x->a * 1e3, x->b * 1e6);
  mfx_plot_legend(p, e, color, text, note);
}

int tool_experts_plot(const char *path, const mfx_latency_table *t) {
  mfx_file_writer w;
  if (mfx_file_write_begin(&w, path, "plot") != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts --plot");
  char title[300];
  snprintf(title, sizeof title, "expert latency: %s (D=%lld, H=%lld; dashed: fit)", t->device,
           (long long)t->dim, (long long)t->hidden);
  mfx_plot p = {.out = w.f, .title = title, .x_label = "tokens per expert",
                .y_label = "latency (ms)", .legend_width = 230};
  plot_frame_of(t, &p);
  mfx_plot_begin(&p);
  for (int e = 0; e < t->experts; e++) plot_expert(&p, t, e);
  mfx_status st = mfx_plot_end(&p);
  if (st != MFX_OK) mfx_file_write_abort(&w);
  if (st != MFX_OK || mfx_file_write_commit(&w) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts --plot");
  return 0;
}

/* ==== the command ========================================================================= */

typedef struct {
  tool_experts_request req;
  const char *target, *plot, *out, *db;
  int json, threads;
} tool_experts_args;

/* --experts mult,shift,...: the kinds into the request. */
int tool_check_expert_kinds(void *user, const char *option, const char *value, char *why,
                            size_t size) {
  tool_experts_request *r = user;
  if (mfx_expert_kinds_parse(value, r->kinds, MFX_MOE_MAX_EXPERTS, &r->experts) == MFX_OK) return 0;
  snprintf(why, size, "%s: %s", option, mfx_last_error());
  return 1;
}

static int tool_experts_parse(int argc, char **argv, tool_experts_args *a) {
  const tool_arg options[] = {
      {.name = "--tokens", .type = TOOL_ARG_INT64, .to.i64 = &a->req.tokens, .min = 2,
       .max = 1 << 26, .example = "--tokens 3136"},
      {.name = "--dim", .type = TOOL_ARG_INT, .to.i32 = &a->req.dim, .min = 1, .max = 1 << 16,
       .example = "--dim 64"},
      {.name = "--hidden", .type = TOOL_ARG_INT, .to.i32 = &a->req.hidden, .min = 1,
       .max = 1 << 16, .example = "--hidden 512"},
      {.name = "--experts", .type = TOOL_ARG_TEXT, .example = "--experts mult,shift",
       .check = tool_check_expert_kinds, .check_user = &a->req},
      {.name = "--at", .type = TOOL_ARG_INT64, .to.i64 = &a->req.at_tokens, .min = 1,
       .max = 1 << 26, .example = "--at 1568"},
      {.name = "--threads", .type = TOOL_ARG_INT, .to.i32 = &a->threads, .min = 1, .max = 1024,
       .example = "--threads 2"},
      {.name = "--min-time", .type = TOOL_ARG_FLOAT, .to.f64 = &a->req.profile.min_seconds,
       .lo = 0.0, .hi = 60.0, .example = "--min-time 0.05"},
      {.name = "--target", .type = TOOL_ARG_TEXT, .to.text = &a->target,
       .example = "--target cpu"},
      {.name = "--plot", .type = TOOL_ARG_PATH, .to.text = &a->plot, .example = "--plot lat.svg"},
      {.name = "--out", .type = TOOL_ARG_PATH, .to.text = &a->out, .example = "--out lat.json"},
      {.name = "--db", .type = TOOL_ARG_PATH, .to.text = &a->db, .example = "--db tune.db"},
      {.name = "--json", .type = TOOL_ARG_FLAG, .to.flag = &a->json},
      {0},
  };
  tool_cmdline cl = {.program = "mfx", .command = "experts", .usage = tool_experts_usage,
                     .options = options};
  int rc = tool_args_parse(&cl, argc, argv);
  if (rc != 0) return rc;
  if (a->req.tokens == 0 || a->req.dim == 0 || a->req.hidden == 0)
    return tool_error(TOOL_EXIT_USAGE, "experts: --tokens, --dim and --hidden are required, e.g. "
                      "mfx experts --tokens 3136 --dim 64 --hidden 512");
  a->req.target = a->target;
  return tool_check_layer_target("experts", a->target, 0);
}

static void tool_experts_defaults(tool_experts_args *a) {
  memset(a, 0, sizeof *a);
  mfx_profile_options_default(&a->req.profile);
  a->req.experts = 2;
  a->req.kinds[0] = MFX_EXPERT_MULT;
  a->req.kinds[1] = MFX_EXPERT_SHIFT;
  a->req.progress = "mfx experts:";
  a->target = "cpu";
}

/* The folder of path can be written to (checked before measuring). */
static int tool_writable_dir(const char *what, const char *path) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = '\0';
  else *slash = '\0';
  if (access(dir, W_OK) != 0)
    return tool_error(TOOL_EXIT_FAIL, "experts: cannot write %s %s: folder %s: %s", what, path,
                      dir, strerror(errno));
  return 0;
}

/* Before measuring: the table's path, its folder writable, and an existing
 * file a latency table (so a long measurement does not end in an error). */
static int tool_experts_precheck(const tool_experts_args *a, char *path, size_t size) {
  if (a->out != NULL) snprintf(path, size, "%s", a->out);
  else if (mfx_latency_default_path(path, size) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts: the latency table's path");
  int rc = tool_writable_dir("the table", path);
  if (rc == 0 && a->plot != NULL) rc = tool_writable_dir("the plot", a->plot);
  if (rc != 0 || access(path, F_OK) != 0) return rc;
  mfx_latency_table *t = malloc(sizeof *t);
  mfx_status st = t ? mfx_latency_load(path, "", t) : MFX_ERR_NOMEM; /* "" is never a key */
  free(t);
  if (st == MFX_ERR_FORMAT || st == MFX_ERR_IO || st == MFX_ERR_NOMEM)
    return tool_error_status(TOOL_EXIT_FAIL, "experts: the existing table");
  mfx_clear_error();
  return 0;
}

static int tool_experts_save(const char *path, const mfx_latency_table *t) {
  if (mfx_latency_save(path, t) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts: saving the latency table");
  fprintf(stderr, "mfx experts: saved the table of '%s' to %s\n", t->device, path);
  return 0;
}

int tool_cmd_experts(int argc, char **argv) {
  tool_experts_args a;
  tool_experts_defaults(&a);
  int rc = tool_experts_parse(argc, argv, &a);
  if (rc == TOOL_ARGS_HELP) return TOOL_EXIT_OK;
  char path[1024];
  if (rc == 0) rc = tool_experts_precheck(&a, path, sizeof path);
  if (rc != 0) return rc;
  mfx_pool *pool = NULL;
  if (mfx_pool_create(a.threads, &pool) != MFX_OK)
    return tool_error_status(TOOL_EXIT_FAIL, "experts: creating the thread pool");
  tool_demo_tuning *tuning = NULL;
  rc = tool_demo_tuning_open(a.db, a.target, &tuning); /* before the device is opened */
  a.req.choose_config = tool_demo_choose;
  a.req.choose_user = tuning;
  mfx_latency_table *t = malloc(sizeof *t);
  if (rc == 0)
    rc = t ? tool_experts_measure(&a.req, pool, t) : tool_error(TOOL_EXIT_FAIL, "out of memory");
  mfx_pool_destroy(pool);
  int sources[3];
  tool_demo_tuning_sources(tuning, sources);
  if (rc == 0)
    fprintf(stderr, "mfx experts: kernel configs from the tuning database's records of %s: %d "
            "tuned, %d from the nearest tuned shape, %d template defaults\n", a.target,
            sources[0], sources[1], sources[2]);
  tool_demo_tuning_free(tuning);
  if (rc == 0 && a.json) {
    mfx_latency_write_json(stdout, t, 0);
    fputc('\n', stdout);
  } else if (rc == 0) {
    tool_experts_print(stdout, t);
  }
  if (rc == 0 && a.plot != NULL) rc = tool_experts_plot(a.plot, t);
  if (rc == 0) rc = tool_experts_save(path, t);
  free(t);
  return rc;
}
