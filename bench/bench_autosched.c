/* The auto-scheduler against the hand templates, op by op, on this CPU.
 *
 *   bench_autosched [--trials T] [--threads N] [--op NAME] [--print-te]
 *
 * For each built-in op: its tensor expressions at the benchmark shape, with
 * the template's layout knobs off (pack 0, form 0: the plain definition),
 * printed as TE text (mfx_print_te; examples/kernels/<op>.te hold the same
 * kernels at small shapes) and handed to the auto-scheduler as a text kernel,
 * which sees nothing but the text. Both are tuned with the same budget (model
 * search, T trials, every candidate checked against its reference: the op's
 * plain-C one, the interpreter for the text kernel; the text kernel gets the
 * op's valid random inputs), then their best configs are timed side by side
 * in three alternating rounds and the medians compared:
 *   ratio = hand time / auto time   (>= 1: the auto-scheduler is as fast)
 * Nothing is written to any tuning database. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/autosched.h"
#include "mfx/autotune.h"

#define BENCH_ROUNDS 3

typedef struct {
  const char *op, *dims;
} bench_case;

static const bench_case bench_cases[] = {
  {"linear", "M=256,N=256,K=256"},
  {"shift_linear", "M=256,N=256,K=256"},
  {"matadd", "B=1,H=4,N=256,D=64,C=32"},
  {"hamming", "N=512,M=512,W=8"},
  {"binary_attention", "B=1,H=4,N=256,D=64,C=32"},
  {"gelu", "M=256,N=1024"},
  {"q16_quantize", "M=256,N=1024"},
  {"q16_dequantize", "M=256,N=1024"},
  {"q16_gelu", "M=256,N=1024"},
  {"gather_rows", "T=1024,M=1024,D=256"},
  {"combine_rows", "R=2048,T=1024,K=2,D=256"},
  {"linear_gelu", "M=256,N=256,K=256"},
  {"shift_linear_q16_gelu", "M=256,N=256,K=256"},
  {"shift_linear_dequantize", "M=256,N=256,K=256"},
};

typedef struct {
  int trials, threads, print_te;
  const char *only;
} bench_args;

static int bench_fail(const char *op, const char *what) {
  fprintf(stderr, "bench_autosched: %s: %s: %s\n", op, what, mfx_last_error());
  return 1;
}

/* ---- the op as text ------------------------------------------------------------------- */

/* The op's tensor expressions under dims with its layout knobs off. */
static int bench_op_text(const mfx_op *op, const int64_t *dims, char **text) {
  mfx_config cfg;
  mfx_config_default(op, &cfg);
  const char *plain[] = {"pack", "form"};
  for (int i = 0; i < 2; i++)
    if (mfx_config_get(&cfg, plain[i]) >= 0) mfx_config_set(op, &cfg, plain[i], 0);
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  if (mfx_op_build_for(op, "cpu", a, dims, &cfg, &s) != MFX_OK) {
    mfx_arena_destroy(a);
    return bench_fail(op->name, "building its definition");
  }
  size_t size = 0;
  FILE *f = open_memstream(text, &size);
  if (f == NULL) return mfx_arena_destroy(a), 1;
  fprintf(f, "# %s, the op's definition as text (bench/bench_autosched.c)\n", op->name);
  mfx_print_te(f, s);
  fclose(f);
  mfx_arena_destroy(a);
  return 0;
}

/* The text kernel's random inputs are the op's (valid indices, shifts,
 * signs): the op and its dims, for the one case being measured. */
static const mfx_op *bench_hand_op;
static int64_t bench_hand_dims[MFX_OP_MAX_DIMS];

static void bench_hand_random(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)dims;
  bench_hand_op->random_input(i, bench_hand_dims, a, rng);
}

/* ---- tuning and timing ------------------------------------------------------------------ */

static int bench_tune(const mfx_op *op, const int64_t *dims, const bench_args *a,
                      mfx_config *best, int *ok) {
  mfx_tune_key key;
  if (mfx_tune_key_init(&key, op, dims, "cpu") != MFX_OK) return bench_fail(op->name, "key");
  mfx_tune_options o;
  mfx_tune_options_default(&o);
  o.strategy = MFX_SEARCH_MODEL;
  o.trials = a->trials;
  o.runner.threads = a->threads;
  o.runner.timeout_s = 0.0;
  o.runner.measure.min_seconds = 0.02;
  mfx_tune_summary s;
  if (mfx_tune(NULL, &key, &o, &s) != MFX_OK) return bench_fail(op->name, "tune");
  if (!s.have_best) {
    fprintf(stderr, "bench_autosched: %s: no candidate passed the check (%d wrong, %d errors)\n",
            op->name, s.wrong, s.errors);
    return 1;
  }
  *best = s.best;
  *ok = s.ok;
  return 0;
}

static int bench_time(const mfx_op *op, const int64_t *dims, const mfx_config *cfg,
                      const bench_args *a, mfx_runner **r, double *seconds) {
  if (*r == NULL) {
    mfx_runner_options ro;
    mfx_runner_options_default(&ro);
    ro.threads = a->threads;
    ro.measure.min_seconds = 0.1;
    if (mfx_runner_create(op, dims, &ro, r) != MFX_OK) return bench_fail(op->name, "runner");
  }
  mfx_trial t;
  if (mfx_runner_evaluate(*r, 1, cfg, &t, NULL, NULL) != MFX_OK || t.status != MFX_TRIAL_OK) {
    fprintf(stderr, "bench_autosched: %s: the best config failed: %s\n", op->name, t.error);
    return 1;
  }
  *seconds = t.m.median_s;
  return 0;
}

static double bench_median3(const double *t) {
  return fmax(fmin(t[0], t[1]), fmin(fmax(t[0], t[1]), t[2]));
}

/* Both bests, alternating, three rounds each. */
static int bench_side_by_side(const mfx_op *hand, const int64_t *hand_dims, const mfx_config *hc,
                              const mfx_op *te, const int64_t *te_dims, const mfx_config *tc,
                              const bench_args *a, double *hand_s, double *auto_s) {
  mfx_runner *rh = NULL, *rt = NULL;
  double th[BENCH_ROUNDS], tt[BENCH_ROUNDS];
  int rc = 0;
  for (int i = 0; i < BENCH_ROUNDS && rc == 0; i++) {
    rc = bench_time(hand, hand_dims, hc, a, &rh, &th[i]);
    if (rc == 0) rc = bench_time(te, te_dims, tc, a, &rt, &tt[i]);
  }
  mfx_runner_destroy(rh);
  mfx_runner_destroy(rt);
  if (rc == 0) {
    *hand_s = bench_median3(th);
    *auto_s = bench_median3(tt);
  }
  return rc;
}

static void bench_rules(const mfx_autosched_plan *p, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int r = 0; r < MFX_RULE_COUNT && used < size; r++) {
    if (r >= MFX_RULE_GPU_BIND || !(p->rules >> r & 1u)) continue;
    used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? "," : "",
                             mfx_autosched_rule_name((mfx_autosched_rule)r));
  }
}

static int bench_case_run(const bench_case *c, const bench_args *a, double *ratio) {
  const mfx_op *op = mfx_op_find(c->op);
  int64_t dims[MFX_OP_MAX_DIMS];
  if (op == NULL) return fprintf(stderr, "bench_autosched: no op %s\n", c->op), 1;
  if (mfx_op_parse_dims(op, c->dims, dims) != MFX_OK) return bench_fail(c->op, "dims");
  char *text = NULL;
  if (bench_op_text(op, dims, &text) != 0) return 1;
  if (a->print_te) printf("%s\n", text);
  mfx_te_op *t = NULL;
  mfx_status st = mfx_te_op_create(text, c->op, &t);
  free(text);
  if (st != MFX_OK) return bench_fail(c->op, "the text kernel");
  bench_hand_op = op;
  memcpy(bench_hand_dims, dims, sizeof dims);
  mfx_te_op_set_random_input(t, bench_hand_random);
  const mfx_op *te = mfx_te_op_get(t);
  int64_t te_dims[MFX_OP_MAX_DIMS];
  mfx_te_op_dims(t, te_dims);
  mfx_config hc, tc;
  int hok = 0, tok = 0;
  double hand_s = 0, auto_s = 0;
  int rc = bench_tune(op, dims, a, &hc, &hok);
  if (rc == 0) rc = bench_tune(te, te_dims, a, &tc, &tok);
  if (rc == 0) rc = bench_side_by_side(op, dims, &hc, te, te_dims, &tc, a, &hand_s, &auto_s);
  if (rc == 0) {
    char rules[256], config[512];
    bench_rules(mfx_te_op_plan(t), rules, sizeof rules);
    mfx_config_to_json(&tc, config, sizeof config);
    *ratio = hand_s / auto_s;
    printf("| %-23s | %-23s | %9.4f | %9.4f | %5.2f | %s |\n", c->op, c->dims, hand_s * 1e3,
           auto_s * 1e3, *ratio, rules);
    fprintf(stderr, "  %s: auto config %s\n", c->op, config);
    fflush(stdout);
  }
  mfx_te_op_destroy(t);
  return rc;
}

static int bench_parse(int argc, char **argv, bench_args *a) {
  a->trials = 16;
  a->threads = 1;
  a->print_te = 0;
  a->only = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc) a->trials = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) a->threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) a->only = argv[++i];
    else if (strcmp(argv[i], "--print-te") == 0) a->print_te = 1;
    else {
      fprintf(stderr, "usage: bench_autosched [--trials T] [--threads N] [--op NAME] [--print-te]\n");
      return 2;
    }
  }
  if (a->trials < 1 || a->threads < 1) {
    fprintf(stderr, "bench_autosched: --trials and --threads must be positive\n");
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_args a;
  int rc = bench_parse(argc, argv, &a);
  if (rc != 0) return rc;
  mfx_tune_target target;
  if (mfx_tune_target_get("cpu", &target) != MFX_OK) return bench_fail("cpu", "target");
  printf("auto-scheduler vs hand templates on %s, %d thread%s, %d trials each (model search)\n\n",
         target.device, a.threads, a.threads == 1 ? "" : "s", a.trials);
  printf("| op                      | dims                    | hand ms   | auto ms   | ratio | rules fired |\n");
  printf("|---|---|---|---|---|---|\n");
  int failed = 0, n = 0;
  double log_sum = 0.0;
  for (size_t i = 0; i < sizeof bench_cases / sizeof bench_cases[0]; i++) {
    if (a.only != NULL && strcmp(a.only, bench_cases[i].op) != 0) continue;
    double ratio = 0.0;
    if (bench_case_run(&bench_cases[i], &a, &ratio) != 0) failed++;
    else {
      log_sum += log(ratio);
      n++;
    }
  }
  if (n > 0) printf("\ngeometric mean ratio %.2f over %d ops\n", exp(log_sum / n), n);
  return failed > 0;
}
