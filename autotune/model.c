/* The cost model of the model-guided search: ridge regression of
 * log(seconds) on features of a configuration. Features: one-hot of every
 * knob's choice; for knobs with three or more choices (tile sizes, layouts)
 * also log2(1 + value) scaled to [0, 1], and the products of those for
 * every pair of them (tile sizes interact: the register tile is their
 * product). On a GPU space (the target's GPU template) also what the knobs
 * imply for the launch: threads per block (block over thread tile of each
 * block_X/thread_X pair, else the threads knob), shared memory staged per
 * block, the estimated occupancy on an SM of 2048 threads and 228 KiB, the
 * waves of blocks over 132 SMs and the idle tail of the last wave (see
 * tune_gpu_features). Fitting solves the centered normal
 * equations (X^T X + lambda I) w = X^T y by Cholesky, with lambda chosen
 * among a few by leave-one-out error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autotune_internal.h"


struct mfx_cost_model {
  mfx_space space;
  int n_features;
  int n_onehot;                       /* one-hot features come first */
  int gpu;                            /* TUNE_GPU_FEATURES more at the end */
  int offset[MFX_OP_MAX_KNOBS];       /* first one-hot feature of each knob */
  int n_ordinal;                      /* knobs with 3 or more choices */
  int ordinal[MFX_OP_MAX_KNOBS];
  double lo[MFX_OP_MAX_KNOBS], hi[MFX_OP_MAX_KNOBS]; /* log2(1+v) range */
  double *w, *mean_x;                 /* n_features each: weights in use, means */
  double *w_fit;                      /* the fitted (posterior mean) weights */
  double *chol;                       /* Cholesky factor L of X^T X + lambda I */
  double sigma;                       /* residual scale of log(seconds) */
  double lambda;                      /* ridge penalty of the fit */
  double mean_y;
  int fitted;
};

static double tune_log_value(int64_t v) { return log2(1.0 + (double)(v < 0 ? 0 : v)); }

#define TUNE_GPU_FEATURES 5
#define TUNE_GPU_SM_THREADS 2048.0
#define TUNE_GPU_SM_BLOCKS 32.0
#define TUNE_GPU_SM_SHARED (228.0 * 1024.0)
#define TUNE_GPU_SMS 132.0

/* The value of knob "name" in the config being featurized; -1 if none. */
static int64_t tune_knob(const mfx_knob *knobs, const int64_t *v, int n, const char *name) {
  for (int k = 0; k < n; k++)
    if (strcmp(knobs[k].name, name) == 0) return v[k];
  return -1;
}

/* The op's dim named like the knob suffix ("m" -> M); -1 if none. */
static int64_t tune_dim_of(const mfx_space *s, const char *suffix) {
  for (int d = 0; d < s->op->n_dims; d++)
    if (strlen(s->op->dims[d]) == 1 && (s->op->dims[d][0] | 0x20) == (suffix[0] | 0x20) &&
        suffix[1] == '\0')
      return s->dims[d];
  return -1;
}

/* Launch features of a GPU config (values v in knob order): log2 threads
 * per block, occupancy, log2(1 + waves), the idle tail of the last wave,
 * shared bytes / 48 KiB. */
static void tune_gpu_features(const mfx_space *s, const mfx_knob *knobs, const int64_t *v, int n,
                              double *x) {
  double threads = 1.0, blocks = 1.0, staged = 0.0;
  int pairs = 0;
  for (int k = 0; k < n; k++) {
    if (strncmp(knobs[k].name, "block_", 6) != 0) continue;
    char thread[40];
    snprintf(thread, sizeof thread, "thread_%s", knobs[k].name + 6);
    int64_t t = tune_knob(knobs, v, n, thread), dim = tune_dim_of(s, knobs[k].name + 6);
    if (t > 0 && v[k] >= t) {
      threads *= (double)(v[k] / t);
      staged += (double)v[k];
      pairs++;
    }
    if (t > 0 && dim > 0) blocks *= ceil((double)dim / (double)v[k]);
  }
  int64_t tk = tune_knob(knobs, v, n, "threads");
  if (pairs == 0 && tk > 0) threads = (double)tk;
  int64_t step = tune_knob(knobs, v, n, "block_k");
  if (step < 0) step = tune_knob(knobs, v, n, "block_w");
  double shared = tune_knob(knobs, v, n, "shared") > 0 && step > 0 ? staged * step * 4.0 : 0.0;
  if (tune_knob(knobs, v, n, "double_buffer") == 1) shared *= 2.0; /* two tiles each */
  if (pairs == 0) { /* one element per thread: blocks from the largest tensor */
    double elems = 1.0;
    for (int d = 0; d < s->op->n_dims; d++) elems *= (double)s->dims[d];
    blocks = ceil(elems / threads);
  }
  double resident = floor(TUNE_GPU_SM_THREADS / (32.0 * ceil(threads / 32.0)));
  if (resident > TUNE_GPU_SM_BLOCKS) resident = TUNE_GPU_SM_BLOCKS;
  if (shared > 0.0 && floor(TUNE_GPU_SM_SHARED / shared) < resident)
    resident = floor(TUNE_GPU_SM_SHARED / shared);
  if (resident < 1.0) resident = 1.0;
  double waves = blocks / (resident * TUNE_GPU_SMS);
  x[0] = log2(threads) / 10.0;
  x[1] = resident * threads / TUNE_GPU_SM_THREADS;
  x[2] = log2(1.0 + waves) / 8.0;
  x[3] = ceil(waves) - waves;
  x[4] = shared / 49152.0;
}

static void tune_model_ranges(mfx_cost_model *m) {
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(m->space.op, m->space.target, &n_knobs);
  int f = 0;
  for (int k = 0; k < n_knobs; k++) {
    const mfx_knob *knob = &knobs[k];
    m->offset[k] = f;
    f += knob->n_choices;
    m->lo[k] = m->hi[k] = tune_log_value(knob->choices[0]);
    for (int c = 1; c < knob->n_choices; c++) {
      double v = tune_log_value(knob->choices[c]);
      if (v < m->lo[k]) m->lo[k] = v;
      if (v > m->hi[k]) m->hi[k] = v;
    }
  }
  m->n_onehot = f;
  m->n_ordinal = 0;
  for (int k = 0; k < n_knobs; k++)
    if (knobs[k].n_choices >= 3) m->ordinal[m->n_ordinal++] = k;
  int n = m->n_ordinal;
  m->gpu = mfx_target_is_gpu(m->space.target);
  m->n_features = f + n + n * (n - 1) / 2 + (m->gpu ? TUNE_GPU_FEATURES : 0);
}

mfx_status mfx_cost_model_create(const mfx_space *space, mfx_cost_model **out) {
  mfx_cost_model *m = calloc(1, sizeof *m);
  if (m == NULL) return mfx_fail(MFX_ERR_NOMEM, "cost model: out of memory");
  m->space = *space;
  tune_model_ranges(m);
  size_t F = (size_t)m->n_features;
  m->w = calloc(F, sizeof *m->w);
  m->w_fit = calloc(F, sizeof *m->w_fit);
  m->mean_x = calloc(F, sizeof *m->mean_x);
  m->chol = calloc(F * F, sizeof *m->chol);
  if (m->w == NULL || m->w_fit == NULL || m->mean_x == NULL || m->chol == NULL) {
    mfx_cost_model_destroy(m);
    return mfx_fail(MFX_ERR_NOMEM, "cost model: out of memory");
  }
  *out = m;
  return MFX_OK;
}

void mfx_cost_model_destroy(mfx_cost_model *m) {
  if (m == NULL) return;
  free(m->w);
  free(m->w_fit);
  free(m->mean_x);
  free(m->chol);
  free(m);
}

/* The features of one index into x (n_features, zeroed here). */
static void tune_model_features(const mfx_cost_model *m, uint64_t index, double *x) {
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(m->space.op, m->space.target, &n_knobs);
  double u[MFX_OP_MAX_KNOBS];
  int64_t values[MFX_OP_MAX_KNOBS];
  memset(x, 0, sizeof(double) * (size_t)m->n_features);
  for (int k = 0; k < n_knobs; k++) {
    const mfx_knob *knob = &knobs[k];
    int c = (int)(index % (uint64_t)knob->n_choices);
    index /= (uint64_t)knob->n_choices;
    x[m->offset[k] + c] = 1.0;
    values[k] = knob->choices[c];
    double span = m->hi[k] - m->lo[k];
    u[k] = span > 0.0 ? (tune_log_value(knob->choices[c]) - m->lo[k]) / span : 0.0;
  }
  int f = m->n_onehot;
  for (int a = 0; a < m->n_ordinal; a++) x[f++] = u[m->ordinal[a]];
  for (int a = 0; a < m->n_ordinal; a++)
    for (int b = a + 1; b < m->n_ordinal; b++) x[f++] = u[m->ordinal[a]] * u[m->ordinal[b]];
  if (m->gpu) tune_gpu_features(&m->space, knobs, values, n_knobs, x + f);
}

/* Factor symmetric positive definite A (n x n) in place: its lower
 * triangle becomes L with A = L L^T. Then solve A w = b in place. */
static mfx_status tune_cholesky_solve(double *A, double *b, int n) {
  for (int j = 0; j < n; j++) {
    double d = A[j * n + j];
    for (int k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
    if (!(d > 0.0)) return mfx_fail(MFX_ERR_INVALID, "cost model: singular normal equations");
    double l = sqrt(d);
    A[j * n + j] = l;
    for (int i = j + 1; i < n; i++) {
      double s = A[i * n + j];
      for (int k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / l;
    }
  }
  for (int i = 0; i < n; i++) { /* L z = b */
    double s = b[i];
    for (int k = 0; k < i; k++) s -= A[i * n + k] * b[k];
    b[i] = s / A[i * n + i];
  }
  for (int i = n - 1; i >= 0; i--) { /* L^T w = z */
    double s = b[i];
    for (int k = i + 1; k < n; k++) s -= A[k * n + i] * b[k];
    b[i] = s / A[i * n + i];
  }
  return MFX_OK;
}

/* Centered features of every sample into X (n x F); sets the means. */
static void tune_model_design(mfx_cost_model *m, int n, const uint64_t *indices,
                              const double *y, double *X) {
  int F = m->n_features;
  memset(m->mean_x, 0, sizeof(double) * (size_t)F);
  m->mean_y = 0.0;
  for (int i = 0; i < n; i++) {
    tune_model_features(m, indices[i], X + (size_t)i * F);
    for (int f = 0; f < F; f++) m->mean_x[f] += X[(size_t)i * F + f] / n;
    m->mean_y += y[i] / n;
  }
  for (int i = 0; i < n; i++)
    for (int f = 0; f < F; f++) X[(size_t)i * F + f] -= m->mean_x[f];
}

/* Accumulate X^T X (lower triangle) into A and X^T (y - mean) into b. */
static void tune_model_normal(const mfx_cost_model *m, int n, const double *X, const double *y,
                              double *A, double *b) {
  int F = m->n_features;
  memset(A, 0, sizeof(double) * (size_t)F * F);
  memset(b, 0, sizeof(double) * (size_t)F);
  for (int i = 0; i < n; i++) {
    const double *x = X + (size_t)i * F;
    double r = y[i] - m->mean_y;
    for (int a = 0; a < F; a++) {
      if (x[a] == 0.0) continue;
      b[a] += x[a] * r;
      for (int c = 0; c <= a; c++) A[a * F + c] += x[a] * x[c];
    }
  }
  for (int a = 0; a < F; a++) {
    A[a * F + a] += m->lambda;
    for (int c = 0; c < a; c++) A[c * F + a] = A[a * F + c];
  }
}

/* The scale of what the fit leaves unexplained (penalty included), with a
 * floor so that a near-perfect fit still explores. */
static double tune_model_sigma(const mfx_cost_model *m, int n, const double *X, const double *y) {
  int F = m->n_features;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double r = y[i] - m->mean_y;
    for (int f = 0; f < F; f++) r -= X[(size_t)i * F + f] * m->w_fit[f];
    sum += r * r;
  }
  for (int f = 0; f < F; f++) sum += m->lambda * m->w_fit[f] * m->w_fit[f];
  double sigma = sqrt(sum / (n > 1 ? n - 1 : 1));
  return sigma > 0.05 ? sigma : 0.05;
}

/* Leave-one-out squared error of the current fit, in closed form for
 * ridge: residual / (1 - leverage), leverage = |L^-1 x|^2 + 1/n. */
static double tune_model_loo(const mfx_cost_model *m, int n, const double *X, const double *y,
                             double *z) {
  int F = m->n_features;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    const double *x = X + (size_t)i * F;
    double r = y[i] - m->mean_y, h = 1.0 / n;
    for (int f = 0; f < F; f++) r -= x[f] * m->w_fit[f];
    for (int a = 0; a < F; a++) {
      double v = x[a];
      for (int k = 0; k < a; k++) v -= m->chol[a * F + k] * z[k];
      z[a] = v / m->chol[a * F + a];
      h += z[a] * z[a];
    }
    double keep = 1.0 - h > 1e-6 ? 1.0 - h : 1e-6;
    sum += (r / keep) * (r / keep);
  }
  return sum;
}

static mfx_status tune_model_solve(mfx_cost_model *m, int n, const double *X, const double *y,
                                   double lambda) {
  m->lambda = lambda;
  tune_model_normal(m, n, X, y, m->chol, m->w_fit);
  return tune_cholesky_solve(m->chol, m->w_fit, m->n_features);
}

/* The penalty with the least leave-one-out error: nearly none when the
 * trials agree with the features (a clean landscape), more when they are
 * noisy or the landscape has interactions the features miss. */
static double tune_model_pick_lambda(mfx_cost_model *m, int n, const double *X, const double *y,
                                     double *z) {
  static const double lambdas[] = {3e-4, 3e-3, 3e-2, 0.3, 3.0};
  double best = 0.3, best_err = INFINITY;
  for (size_t i = 0; i < sizeof lambdas / sizeof lambdas[0]; i++) {
    if (tune_model_solve(m, n, X, y, lambdas[i]) != MFX_OK) continue;
    double err = tune_model_loo(m, n, X, y, z);
    if (err < best_err) {
      best_err = err;
      best = lambdas[i];
    }
  }
  mfx_clear_error();
  return best;
}

mfx_status mfx_cost_model_fit(mfx_cost_model *m, int n, const uint64_t *indices,
                              const double *log_seconds) {
  if (n <= 0) return mfx_fail(MFX_ERR_INVALID, "cost model: no samples to fit");
  int F = m->n_features;
  double *X = malloc(sizeof(double) * (size_t)n * F), *z = malloc(sizeof(double) * (size_t)F);
  mfx_status st = X && z ? MFX_OK : mfx_fail(MFX_ERR_NOMEM, "cost model: out of memory");
  if (st == MFX_OK) {
    tune_model_design(m, n, indices, log_seconds, X);
    st = tune_model_solve(m, n, X, log_seconds, tune_model_pick_lambda(m, n, X, log_seconds, z));
  }
  m->fitted = st == MFX_OK;
  if (m->fitted) {
    memcpy(m->w, m->w_fit, sizeof(double) * (size_t)F);
    m->sigma = tune_model_sigma(m, n, X, log_seconds);
  }
  free(X);
  free(z);
  return st;
}

/* A standard normal deviate (Box-Muller). */
static double tune_normal(uint64_t *rng) {
  double u = tune_rng_unit(rng), v = tune_rng_unit(rng);
  return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

void tune_cost_model_draw(mfx_cost_model *m, uint64_t *rng) {
  if (!m->fitted) return;
  int F = m->n_features;
  double *v = m->w; /* w = w_fit + sigma L^-T z, solved in place */
  for (int f = 0; f < F; f++) v[f] = tune_normal(rng);
  for (int i = F - 1; i >= 0; i--) {
    double s = v[i];
    for (int k = i + 1; k < F; k++) s -= m->chol[k * F + i] * v[k];
    v[i] = s / m->chol[i * F + i];
  }
  for (int f = 0; f < F; f++) v[f] = m->w_fit[f] + m->sigma * v[f];
}

void tune_cost_model_mean(mfx_cost_model *m) {
  memcpy(m->w, m->w_fit, sizeof(double) * (size_t)m->n_features);
}

double mfx_cost_model_predict(const mfx_cost_model *m, uint64_t index) {
  if (!m->fitted) return 0.0;
  double x[MFX_OP_MAX_KNOBS * MFX_KNOB_MAX_CHOICES + MFX_OP_MAX_KNOBS * (MFX_OP_MAX_KNOBS + 1)];
  tune_model_features(m, index, x);
  double y = m->mean_y;
  for (int f = 0; f < m->n_features; f++) y += (x[f] - m->mean_x[f]) * m->w[f];
  return y;
}
