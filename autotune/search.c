/* Search strategies over a knob space. Every strategy proposes only configs
 * the template accepts (checked by building the schedule, never compiling)
 * and never proposes a config twice or one already observed.
 *
 *   exhaustive  index order
 *   random      a lazily drawn random permutation of the space
 *   model       the template default, a few random configs, then rounds
 *               steered by a cost model refitted to every result so far:
 *               simulated annealing over the model finds the config it
 *               predicts fastest; the first pick of a round uses the fitted
 *               weights over the whole space, the others weights drawn from
 *               the fit's posterior (Thompson sampling: explore where the
 *               fit is unsure) one knob change from the fastest configs so
 *               far (a trust region), and a small share stays random. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autotune_internal.h"

#define TUNE_MODEL_INIT 4        /* observations before the model steers */
#define TUNE_MODEL_EXPLORE 0.1   /* share of model rounds drawn at random */
#define TUNE_ANNEAL_CHAINS 24
#define TUNE_ANNEAL_STEPS 150
#define TUNE_ANNEAL_T0 0.6       /* in units of log(seconds) */
#define TUNE_ANNEAL_T1 0.02
#define TUNE_POOL_SIZE 32        /* best predicted configs kept while annealing */
#define TUNE_CENTERS 3           /* the trust region: around the 3 fastest */
#define TUNE_FAIL_PENALTY 1.0    /* a failed config: worst OK time x e^1 */

struct mfx_search {
  mfx_space space;
  mfx_strategy strategy;
  uint64_t rng;
  tune_map seen;       /* proposed or observed */
  tune_map invalid;    /* refused by the template */
  tune_map perm;       /* random permutation: position -> value, where moved */
  uint64_t perm_next;  /* positions drawn so far */
  uint64_t cursor;     /* exhaustive: next index */
  int n_invalid;
  int default_done;
  int n_obs, cap_obs;
  uint64_t *obs_index;
  double *obs_seconds; /* 0: failed */
  mfx_cost_model *model;
  int local;             /* picks stay one knob change from a center */
  int n_centers;
  uint64_t centers[TUNE_CENTERS]; /* the fastest observed configs */
};

static const char *const tune_strategy_names[] = {
    [MFX_SEARCH_EXHAUSTIVE] = "exhaustive",
    [MFX_SEARCH_RANDOM] = "random",
    [MFX_SEARCH_MODEL] = "model",
};
#define TUNE_N_STRATEGIES ((int)(sizeof tune_strategy_names / sizeof tune_strategy_names[0]))

const char *mfx_strategy_name(mfx_strategy s) {
  return mfx_name_of(tune_strategy_names, sizeof(char *), TUNE_N_STRATEGIES, (int)s, "?");
}

int mfx_strategy_from_name(const char *name, mfx_strategy *out) {
  int i = mfx_name_index(tune_strategy_names, sizeof(char *), TUNE_N_STRATEGIES, name);
  if (i < 0) return -1;
  *out = (mfx_strategy)i;
  return 0;
}

mfx_status mfx_search_create(const mfx_space *space, mfx_strategy strategy, uint64_t seed,
                             mfx_search **out) {
  if (space == NULL || out == NULL || space->op == NULL)
    return mfx_fail(MFX_ERR_INVALID, "search: space and out must not be NULL");
  if (mfx_strategy_name(strategy)[0] == '?')
    return mfx_fail(MFX_ERR_INVALID, "search: unknown strategy %d", (int)strategy);
  mfx_search *s = calloc(1, sizeof *s);
  if (s == NULL) return mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  s->space = *space;
  s->strategy = strategy;
  s->rng = seed ^ 0xD1B54A32D192ED03ull;
  tune_map_init(&s->seen);
  tune_map_init(&s->invalid);
  tune_map_init(&s->perm);
  if (strategy == MFX_SEARCH_MODEL) {
    mfx_status st = mfx_cost_model_create(space, &s->model);
    if (st != MFX_OK) {
      free(s);
      return st;
    }
  }
  *out = s;
  return MFX_OK;
}

void mfx_search_destroy(mfx_search *s) {
  if (s == NULL) return;
  tune_map_free(&s->seen);
  tune_map_free(&s->invalid);
  tune_map_free(&s->perm);
  free(s->obs_index);
  free(s->obs_seconds);
  mfx_cost_model_destroy(s->model);
  free(s);
}

int mfx_search_invalid(const mfx_search *s) { return s->n_invalid; }

/* ---- what may be proposed ------------------------------------------------------ */

static int tune_search_fresh(const mfx_search *s, uint64_t index) {
  return !tune_map_get(&s->seen, index, NULL) && !tune_map_get(&s->invalid, index, NULL);
}

/* Take index if it is fresh and the template accepts it: *taken = 1. */
static mfx_status tune_search_take(mfx_search *s, uint64_t index, int *taken) {
  *taken = 0;
  if (!tune_search_fresh(s, index)) return MFX_OK;
  mfx_config cfg;
  mfx_space_config(&s->space, index, &cfg);
  if (mfx_space_check(&s->space, &cfg) != MFX_OK) {
    mfx_clear_error();
    s->n_invalid++;
    return tune_map_put(&s->invalid, index, 1);
  }
  MFX_TRY(tune_map_put(&s->seen, index, 1));
  *taken = 1;
  return MFX_OK;
}

/* The next position of the random permutation; 0 when it is used up. */
static mfx_status tune_search_draw(mfx_search *s, uint64_t *index, int *ok) {
  *ok = 0;
  uint64_t n = s->space.size;
  if (s->perm_next >= n) return MFX_OK;
  uint64_t j = s->perm_next + tune_rng_below(&s->rng, n - s->perm_next);
  uint64_t at_j = j, at_next = s->perm_next;
  tune_map_get(&s->perm, j, &at_j);
  tune_map_get(&s->perm, s->perm_next, &at_next);
  MFX_TRY(tune_map_put(&s->perm, j, at_next));
  s->perm_next++;
  *index = at_j;
  *ok = 1;
  return MFX_OK;
}

/* One fresh valid random config; *got = 0 when none is left. */
static mfx_status tune_search_random_one(mfx_search *s, uint64_t *out, int *got) {
  *got = 0;
  for (;;) {
    uint64_t index;
    int ok;
    MFX_TRY(tune_search_draw(s, &index, &ok));
    if (!ok) break;
    MFX_TRY(tune_search_take(s, index, got));
    if (*got) {
      *out = index;
      return MFX_OK;
    }
  }
  /* The permutation is drawn: whatever is left fresh, in index order. */
  for (; s->cursor < s->space.size; s->cursor++) {
    MFX_TRY(tune_search_take(s, s->cursor, got));
    if (*got) {
      *out = s->cursor++;
      return MFX_OK;
    }
  }
  return MFX_OK;
}

static mfx_status tune_search_exhaustive(mfx_search *s, int n, uint64_t *out, int *got) {
  *got = 0;
  for (; *got < n && s->cursor < s->space.size; s->cursor++) {
    int taken;
    MFX_TRY(tune_search_take(s, s->cursor, &taken));
    if (taken) out[(*got)++] = s->cursor;
  }
  return MFX_OK;
}

static mfx_status tune_search_random(mfx_search *s, int n, uint64_t *out, int *got) {
  *got = 0;
  while (*got < n) {
    int one;
    MFX_TRY(tune_search_random_one(s, &out[*got], &one));
    if (!one) break;
    (*got)++;
  }
  return MFX_OK;
}

/* ---- model-guided ---------------------------------------------------------------- */

/* The configs the model predicts fastest, best first. */
typedef struct {
  int n, cap;
  uint64_t *index;
  double *pred;
  tune_map members;
} tune_pool;

static void tune_pool_consider(tune_pool *p, const mfx_search *s, uint64_t index, double pred) {
  uint64_t member = 0;
  if (!tune_search_fresh(s, index)) return;
  if (tune_map_get(&p->members, index, &member) && member) return;
  int slot = p->n;
  if (p->n == p->cap) {
    slot = 0;
    for (int i = 1; i < p->n; i++)
      if (p->pred[i] > p->pred[slot]) slot = i;
    if (pred >= p->pred[slot]) return;
    tune_map_put(&p->members, p->index[slot], 0); /* marked as left: value 0 */
  } else {
    p->n++;
  }
  p->index[slot] = index;
  p->pred[slot] = pred;
  tune_map_put(&p->members, index, 1);
}

static uint64_t tune_search_mutate(mfx_search *s, uint64_t index) {
  int n_knobs = 0;
  const mfx_knob *knobs = mfx_op_knobs(s->space.op, s->space.target, &n_knobs);
  for (int tries = 0; tries < 4 * n_knobs; tries++) {
    int k = (int)tune_rng_below(&s->rng, (uint64_t)n_knobs);
    uint64_t n = (uint64_t)knobs[k].n_choices, scale = 1;
    if (n < 2) continue;
    for (int i = 0; i < k; i++) scale *= (uint64_t)knobs[i].n_choices;
    uint64_t digit = index / scale % n;
    uint64_t next = (digit + 1 + tune_rng_below(&s->rng, n - 1)) % n;
    return index - digit * scale + next * scale;
  }
  return index;
}

/* Where chain c starts: the best observed configs first, then random ones. */
static uint64_t tune_search_chain_start(mfx_search *s, int c, const int *order, int n_ok) {
  if (c < n_ok && c < TUNE_ANNEAL_CHAINS / 3) return s->obs_index[order[c]];
  return tune_rng_below(&s->rng, s->space.size);
}

/* How many knobs differ between two configs. */
static int tune_search_distance(const mfx_search *s, uint64_t a, uint64_t b) {
  const mfx_op *op = s->space.op;
  int d = 0;
  for (int k = 0; k < op->n_knobs; k++) {
    uint64_t n = (uint64_t)op->knobs[k].n_choices;
    d += a % n != b % n;
    a /= n;
    b /= n;
  }
  return d;
}

/* Anywhere, or (local picks) at most one knob change from a center. */
static int tune_search_in_region(const mfx_search *s, uint64_t index) {
  if (!s->local) return 1;
  for (int c = 0; c < s->n_centers; c++)
    if (tune_search_distance(s, index, s->centers[c]) <= 1) return 1;
  return 0;
}

static void tune_search_anneal_chain(mfx_search *s, uint64_t start, tune_pool *pool) {
  uint64_t cur = start;
  double cur_pred = mfx_cost_model_predict(s->model, cur);
  double cool = pow(TUNE_ANNEAL_T1 / TUNE_ANNEAL_T0, 1.0 / TUNE_ANNEAL_STEPS);
  double t = TUNE_ANNEAL_T0;
  tune_pool_consider(pool, s, cur, cur_pred);
  for (int step = 0; step < TUNE_ANNEAL_STEPS; step++, t *= cool) {
    uint64_t cand = tune_search_mutate(s, cur);
    if (!tune_search_in_region(s, cand)) continue;
    double pred = mfx_cost_model_predict(s->model, cand);
    tune_pool_consider(pool, s, cand, pred);
    if (pred <= cur_pred || tune_rng_unit(&s->rng) < exp((cur_pred - pred) / t)) {
      cur = cand;
      cur_pred = pred;
    }
  }
}

/* Sort positions 0..n-1 of values ascending (insertion sort: n is small,
 * a batch's pool or a budget's observations). */
static void tune_order_by(int *order, int n, const double *values) {
  for (int i = 1; i < n; i++) {
    int v = order[i], j = i;
    for (; j > 0 && values[order[j - 1]] > values[v]; j--) order[j] = order[j - 1];
    order[j] = v;
  }
}

/* Observed OK configs, fastest first; returns how many. */
static int tune_search_rank_ok(const mfx_search *s, int *order) {
  int n = 0;
  for (int i = 0; i < s->n_obs; i++)
    if (s->obs_seconds[i] > 0.0) order[n++] = i;
  tune_order_by(order, n, s->obs_seconds);
  return n;
}

/* Fit the model: OK configs at log(seconds), failed ones well above the worst. */
static mfx_status tune_search_fit(mfx_search *s) {
  double *y = malloc(sizeof(double) * (size_t)s->n_obs);
  if (y == NULL) return mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  double worst = -INFINITY;
  for (int i = 0; i < s->n_obs; i++)
    if (s->obs_seconds[i] > 0.0 && log(s->obs_seconds[i]) > worst) worst = log(s->obs_seconds[i]);
  if (worst == -INFINITY) worst = 0.0;
  for (int i = 0; i < s->n_obs; i++)
    y[i] = s->obs_seconds[i] > 0.0 ? log(s->obs_seconds[i]) : worst + TUNE_FAIL_PENALTY;
  mfx_status st = mfx_cost_model_fit(s->model, s->n_obs, s->obs_index, y);
  free(y);
  return st;
}

/* Anneal over the model from the best configs and random ones; fill pool. */
static mfx_status tune_search_anneal(mfx_search *s, tune_pool *pool) {
  int *order = malloc(sizeof(int) * (size_t)(s->n_obs + 1));
  if (order == NULL) return mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  int n_ok = tune_search_rank_ok(s, order);
  s->n_centers = n_ok < TUNE_CENTERS ? n_ok : TUNE_CENTERS;
  for (int c = 0; c < s->n_centers; c++) s->centers[c] = s->obs_index[order[c]];
  int local = s->local && s->n_centers > 0;
  for (int c = 0; c < TUNE_ANNEAL_CHAINS; c++)
    tune_search_anneal_chain(s, local ? s->centers[c % s->n_centers]
                                      : tune_search_chain_start(s, c, order, n_ok),
                             pool);
  free(order);
  return MFX_OK;
}

/* The fastest config the current model weights predict among those never
 * proposed and accepted by the template; *got = 0 when annealing found none. */
static mfx_status tune_search_model_pick(mfx_search *s, tune_pool *pool, int *order,
                                         uint64_t *out, int *got) {
  *got = 0;
  pool->n = 0;
  tune_map_free(&pool->members);
  MFX_TRY(tune_search_anneal(s, pool));
  for (int i = 0; i < pool->n; i++) order[i] = i;
  tune_order_by(order, pool->n, pool->pred);
  for (int i = 0; i < pool->n && !*got; i++) {
    MFX_TRY(tune_search_take(s, pool->index[order[i]], got));
    if (*got) *out = pool->index[order[i]];
  }
  return MFX_OK;
}

/* Up to n model picks: the first anywhere, from the fitted weights; each
 * other one from a fresh draw of the posterior (Thompson sampling) within
 * one knob change of the fastest configs so far (a trust region: good
 * schedules have good neighbours, and the model is surest near its data). */
static mfx_status tune_search_model_picks(mfx_search *s, int n, uint64_t *out, int *got) {
  tune_pool pool = {0, TUNE_POOL_SIZE, NULL, NULL, {0}};
  tune_map_init(&pool.members);
  pool.index = malloc(sizeof(uint64_t) * (size_t)pool.cap);
  pool.pred = malloc(sizeof(double) * (size_t)pool.cap);
  int *order = malloc(sizeof(int) * (size_t)pool.cap);
  mfx_status st = pool.index && pool.pred && order
                      ? MFX_OK
                      : mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  *got = 0;
  for (int i = 0; st == MFX_OK && i < n; i++) {
    if (i == 0) tune_cost_model_mean(s->model);
    else tune_cost_model_draw(s->model, &s->rng);
    s->local = i > 0;
    int one = 0;
    st = tune_search_model_pick(s, &pool, order, &out[*got], &one);
    *got += one;
  }
  tune_map_free(&pool.members);
  free(pool.index);
  free(pool.pred);
  free(order);
  return st;
}

static mfx_status tune_search_model(mfx_search *s, int n, uint64_t *out, int *got) {
  *got = 0;
  if (!s->default_done) {
    s->default_done = 1;
    mfx_config def;
    uint64_t index;
    int taken = 0;
    mfx_config_default_for(s->space.op, s->space.target, &def);
    MFX_TRY(mfx_space_index(&s->space, &def, &index));
    MFX_TRY(tune_search_take(s, index, &taken));
    if (taken) out[(*got)++] = index;
  }
  int n_model = 0;
  if (s->n_obs >= TUNE_MODEL_INIT && *got < n) {
    int want = n - *got, explore = 0;
    for (int i = 1; i < want; i++) explore += tune_rng_unit(&s->rng) < TUNE_MODEL_EXPLORE;
    MFX_TRY(tune_search_fit(s));
    MFX_TRY(tune_search_model_picks(s, want - explore, out + *got, &n_model));
    *got += n_model;
  }
  int more;
  MFX_TRY(tune_search_random(s, n - *got, out + *got, &more));
  *got += more;
  return MFX_OK;
}

mfx_status mfx_search_next(mfx_search *s, int n, uint64_t *indices, int *got) {
  if (s == NULL || indices == NULL || got == NULL || n < 0)
    return mfx_fail(MFX_ERR_INVALID, "search: bad arguments to mfx_search_next");
  switch (s->strategy) {
  case MFX_SEARCH_EXHAUSTIVE: return tune_search_exhaustive(s, n, indices, got);
  case MFX_SEARCH_RANDOM: return tune_search_random(s, n, indices, got);
  case MFX_SEARCH_MODEL: return tune_search_model(s, n, indices, got);
  }
  return mfx_fail(MFX_ERR_INVALID, "search: unknown strategy");
}

static mfx_status tune_search_grow(mfx_search *s) {
  int cap = s->cap_obs ? 2 * s->cap_obs : 64;
  uint64_t *index = realloc(s->obs_index, sizeof *index * (size_t)cap);
  if (index == NULL) return mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  s->obs_index = index;
  double *seconds = realloc(s->obs_seconds, sizeof *seconds * (size_t)cap);
  if (seconds == NULL) return mfx_fail(MFX_ERR_NOMEM, "search: out of memory");
  s->obs_seconds = seconds;
  s->cap_obs = cap;
  return MFX_OK;
}

mfx_status mfx_search_observe(mfx_search *s, uint64_t index, double seconds) {
  if (s == NULL || index >= s->space.size)
    return mfx_fail(MFX_ERR_INVALID, "search: observed index %llu is outside the space",
                    (unsigned long long)index);
  MFX_TRY(tune_map_put(&s->seen, index, 1));
  if (s->n_obs == s->cap_obs) MFX_TRY(tune_search_grow(s));
  s->obs_index[s->n_obs] = index;
  s->obs_seconds[s->n_obs++] = seconds > 0.0 && isfinite(seconds) ? seconds : 0.0;
  return MFX_OK;
}
