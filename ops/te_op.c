/* A kernel written as TE text, as an mfx_op: what the tuner (search, runner,
 * database) and the compiler front-ends take. Its schedules come from the
 * auto-scheduler, its reference is the IR interpreter, its name is "te:" and
 * a hash of the kernel as printed with its sizes as dims (te_hash), which are
 * the op's dims D0, D1, ... An mfx_op's build and reference are plain
 * function pointers without a user pointer, so each live op takes one of
 * MFX_TE_OP_MAX slots, each with its own small functions that find the
 * op's text there. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/autosched.h"
#include "ops_internal.h"

struct mfx_te_op {
  mfx_op op;
  int slot;
  char name[40];
  char *text, *file;
  int64_t dims[MFX_OP_MAX_DIMS];
  mfx_arena *arena; /* the parsed kernel the plan and the op's tensor names point into */
  mfx_autosched_plan plan;
};

static mfx_te_op *te_slots[MFX_TE_OP_MAX];
static pthread_mutex_t te_slots_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const te_dim_names[MFX_OP_MAX_DIMS] = {"D0", "D1", "D2", "D3",
                                                          "D4", "D5", "D6", "D7"};

/* ---- what every slot's functions do ------------------------------------------------ */

static mfx_status te_check_dims(const mfx_te_op *t, const int64_t *dims) {
  for (int d = 0; d < t->op.n_dims; d++)
    if (dims[d] != t->dims[d])
      return mfx_fail(MFX_ERR_INVALID, "%s: %s=%lld, but the kernel's text fixes it at %lld",
                      t->op.name, t->op.dims[d], (long long)dims[d], (long long)t->dims[d]);
  return MFX_OK;
}

static mfx_status te_build(int slot, const char *target, mfx_arena *a, const int64_t *dims,
                           const mfx_config *cfg, mfx_schedule **out) {
  const mfx_te_op *t = te_slots[slot];
  if (t == NULL) return mfx_fail(MFX_ERR_INVALID, "text kernel op: slot %d is free", slot);
  MFX_TRY(te_check_dims(t, dims));
  return mfx_autosched_build(a, t->text, t->file, target, cfg, out, NULL);
}

/* The interpreter's outputs copied into the caller's; when it refuses the
 * inputs, outputs hold a pattern no kernel writes by chance (0xA5 bytes),
 * so every candidate is reported wrong rather than right. */
static void te_reference(int slot, const mfx_array *in, mfx_array *out) {
  const mfx_te_op *t = te_slots[slot];
  mfx_arena *a = mfx_arena_create();
  mfx_schedule *s = NULL;
  mfx_array got[MFX_OP_MAX_TENSORS];
  memset(got, 0, sizeof got);
  int ok = t != NULL && a != NULL && mfx_te_parse(a, t->text, t->file, &s) == MFX_OK &&
           mfx_interp_run(s, in, got) == MFX_OK;
  for (int o = 0; t != NULL && o < t->op.n_outputs; o++) {
    size_t bytes = (size_t)mfx_array_numel(&out[o]) * mfx_dtype_size(out[o].dtype);
    if (ok) memcpy(out[o].data, got[o].data, bytes);
    else memset(out[o].data, 0xA5, bytes);
    if (ok) mfx_array_free(&got[o]);
  }
  if (a != NULL) mfx_arena_destroy(a);
}

/* f32 uniform in [-1, 1) (24 bits, exact); integers over their whole range. */
static void te_random(int i, const int64_t *dims, mfx_array *a, uint64_t *rng) {
  (void)i;
  (void)dims;
  int64_t n = mfx_array_numel(a);
  for (int64_t j = 0; j < n; j++) {
    uint64_t r = mfx_rng_next(rng);
    if (a->dtype == MFX_F32)
      ((float *)a->data)[j] = -1.0f + 2.0f * ((float)(r >> 40) * (1.0f / 16777216.0f));
    else if (a->dtype == MFX_BOOL)
      ((uint8_t *)a->data)[j] = (uint8_t)(r & 1u);
    else
      memcpy((char *)a->data + (size_t)j * mfx_dtype_size(a->dtype), &r, mfx_dtype_size(a->dtype));
  }
}

#define TE_SLOT(i)                                                                            \
  static mfx_status te_build_cpu_##i(mfx_arena *a, const int64_t *d, const mfx_config *c,     \
                                     mfx_schedule **o) {                                      \
    return te_build(i, "cpu", a, d, c, o);                                                    \
  }                                                                                           \
  static mfx_status te_build_gpu_##i(mfx_arena *a, const int64_t *d, const mfx_config *c,     \
                                     mfx_schedule **o) {                                      \
    return te_build(i, "cuda", a, d, c, o);                                                   \
  }                                                                                           \
  static void te_reference_##i(const int64_t *d, const mfx_array *in, mfx_array *out) {       \
    (void)d;                                                                                  \
    te_reference(i, in, out);                                                                 \
  }
TE_SLOT(0) TE_SLOT(1) TE_SLOT(2) TE_SLOT(3) TE_SLOT(4) TE_SLOT(5) TE_SLOT(6) TE_SLOT(7)
TE_SLOT(8) TE_SLOT(9) TE_SLOT(10) TE_SLOT(11) TE_SLOT(12) TE_SLOT(13) TE_SLOT(14) TE_SLOT(15)

#define TE_FNS(i) {te_build_cpu_##i, te_build_gpu_##i, te_reference_##i}
static const struct {
  mfx_status (*build)(mfx_arena *, const int64_t *, const mfx_config *, mfx_schedule **);
  mfx_status (*build_gpu)(mfx_arena *, const int64_t *, const mfx_config *, mfx_schedule **);
  void (*reference)(const int64_t *, const mfx_array *, mfx_array *);
} te_fns[MFX_TE_OP_MAX] = {
  TE_FNS(0), TE_FNS(1), TE_FNS(2), TE_FNS(3), TE_FNS(4), TE_FNS(5), TE_FNS(6), TE_FNS(7),
  TE_FNS(8), TE_FNS(9), TE_FNS(10), TE_FNS(11), TE_FNS(12), TE_FNS(13), TE_FNS(14), TE_FNS(15),
};

/* ---- the op's interface --------------------------------------------------------------- */

static uint64_t te_fnv(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
  return h;
}

/* The digits at text[i..j) are an extent: inside a declaration's shape
 * ("f32[7, 45]") or a reduction's bound ("sum(k < 40: ", "k < 40, l < 3:");
 * a comparison prints in parentheses, "(i < 40)", so it is neither. */
static int te_is_extent(const char *text, size_t i, size_t j, size_t size, int in_shape) {
  if (in_shape) return 1;
  return i >= 3 && memcmp(text + i - 3, " < ", 3) == 0 && j < size &&
         (text[j] == ':' || text[j] == ',');
}

/* FNV-1a over the kernel as mfx_print_te prints it, each extent that is
 * one of the op's dims written as its name (D0, D1, ...): the same kernel
 * at other sizes gets the same name te:<hash>, its records differ in dims
 * only, and mfx compile finds them as the nearest tuned shapes. (Sizes
 * where two dims coincide are a kernel with fewer dims: another hash.) */
static mfx_status te_hash(const mfx_te_op *t, const mfx_schedule *s, uint64_t *out) {
  char *buf = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&buf, &size);
  if (f == NULL) return mfx_fail(MFX_ERR_NOMEM, "text kernel: no memory to print it");
  mfx_print_te(f, s);
  fclose(f);
  uint64_t h = 1469598103934665603ull;
  int in_shape = 0, shape_done = 0;
  for (size_t i = 0; i < size;) {
    char c = buf[i];
    if (c == '\n') in_shape = shape_done = 0;
    else if (c == '[' && !shape_done) in_shape = 1;
    else if (c == ']' && in_shape) in_shape = 0, shape_done = 1;
    size_t j = i;
    while (j < size && buf[j] >= '0' && buf[j] <= '9') j++;
    int prev_word = i > 0 && (isalnum((unsigned char)buf[i - 1]) || buf[i - 1] == '_' ||
                              buf[i - 1] == '.');
    if (j == i || prev_word || te_is_extent(buf, i, j, size, in_shape) == 0) {
      size_t n = j > i ? j - i : 1;
      h = te_fnv(h, buf + i, n);
      i += n;
      continue;
    }
    long long extent = strtoll(buf + i, NULL, 10);
    char name[24];
    int len = snprintf(name, sizeof name, "%lld", extent);
    for (int d = 0; d < t->op.n_dims; d++)
      if (t->dims[d] == extent) len = snprintf(name, sizeof name, "%s", t->op.dims[d]);
    h = te_fnv(h, name, (size_t)len);
    i = j;
  }
  free(buf);
  *out = h;
  return MFX_OK;
}

static mfx_status te_dim_of(mfx_te_op *t, int64_t extent, const char **name) {
  for (int d = 0; d < t->op.n_dims; d++)
    if (t->dims[d] == extent) {
      *name = t->op.dims[d];
      return MFX_OK;
    }
  if (t->op.n_dims >= MFX_OP_MAX_DIMS)
    return mfx_fail(MFX_ERR_INVALID, "%s: its inputs and outputs have more than %d distinct "
                    "extents; a text kernel can be tuned with at most %d", t->file,
                    MFX_OP_MAX_DIMS, MFX_OP_MAX_DIMS);
  t->dims[t->op.n_dims] = extent;
  t->op.dims[t->op.n_dims] = te_dim_names[t->op.n_dims];
  *name = t->op.dims[t->op.n_dims++];
  return MFX_OK;
}

static mfx_status te_interface(mfx_te_op *t, mfx_tensor *const *ts, int n, const char *what,
                               mfx_op_tensor *out) {
  if (n > MFX_OP_MAX_TENSORS)
    return mfx_fail(MFX_ERR_INVALID, "%s: %d %s; a text kernel can be tuned with at most %d",
                    t->file, n, what, MFX_OP_MAX_TENSORS);
  for (int i = 0; i < n; i++) {
    const mfx_buffer *b = ts[i]->buf;
    out[i].name = b->name;
    out[i].dtype = b->dtype;
    out[i].ndim = b->ndim;
    out[i].about = what;
    for (int d = 0; d < b->ndim; d++) MFX_TRY(te_dim_of(t, b->shape[d], &out[i].shape[d]));
  }
  return MFX_OK;
}

/* Integer outputs may be one unit off where an f32 from exp, log, tanh or
 * erf (the generated code's own expansions, compiler/codegen_math.c, within
 * a few ulp of libm's that the interpreter calls) is rounded to an integer,
 * as q16_gelu's int_tolerance says; exact otherwise. */
typedef struct {
  mfx_ir_visitor base;
  int approximated;
} te_math_walk;

static void te_math_visit(mfx_ir_visitor *v, const mfx_expr *e) {
  te_math_walk *w = (te_math_walk *)v;
  if (e->kind == MFX_EXPR_UNARY &&
      (e->u.un.op == MFX_EXP || e->u.un.op == MFX_LOG || e->u.un.op == MFX_TANH ||
       e->u.un.op == MFX_ERF))
    w->approximated = 1;
  mfx_ir_visit_expr_children(v, e);
}

static int64_t te_int_tolerance(const mfx_schedule *s) {
  te_math_walk w = {{te_math_visit, NULL, 0}, 0};
  for (int i = 0; i < s->n_stages; i++) mfx_ir_visit_expr(&w.base, s->stages[i]->tensor->body);
  return w.approximated ? 1 : 0;
}

static mfx_status te_describe(mfx_te_op *t) {
  mfx_schedule *s = NULL;
  MFX_TRY(mfx_te_parse(t->arena, t->text, t->file, &s));
  MFX_TRY(mfx_autosched_analyze(s, &t->plan));
  t->op.about = t->file;
  t->op.n_inputs = s->n_inputs;
  t->op.n_outputs = s->n_outputs;
  MFX_TRY(te_interface(t, s->inputs, s->n_inputs, "inputs (placeholders)", t->op.inputs));
  MFX_TRY(te_interface(t, s->outputs, s->n_outputs, "outputs", t->op.outputs));
  uint64_t h = 0;
  MFX_TRY(te_hash(t, s, &h));
  snprintf(t->name, sizeof t->name, "te:%016llx", (unsigned long long)h);
  t->op.name = t->name;
  mfx_autosched_knobs(&t->plan, 0, t->op.knobs, &t->op.n_knobs);
  mfx_autosched_knobs(&t->plan, 1, t->op.gpu_knobs, &t->op.n_gpu_knobs);
  t->op.random_input = te_random;
  t->op.int_tolerance = te_int_tolerance(s);
  return MFX_OK;
}

static int te_take_slot(mfx_te_op *t) {
  pthread_mutex_lock(&te_slots_lock);
  int slot = -1;
  for (int i = 0; i < MFX_TE_OP_MAX && slot < 0; i++)
    if (te_slots[i] == NULL) slot = i;
  if (slot >= 0) te_slots[slot] = t;
  pthread_mutex_unlock(&te_slots_lock);
  return slot;
}

mfx_status mfx_te_op_create(const char *text, const char *file, mfx_te_op **out) {
  *out = NULL;
  if (text == NULL) return mfx_fail(MFX_ERR_INVALID, "text kernel: no text");
  if (file == NULL) file = "<text>";
  mfx_te_op *t = calloc(1, sizeof *t);
  if (t == NULL) return mfx_fail(MFX_ERR_NOMEM, "text kernel %s: out of memory", file);
  t->slot = -1;
  t->text = strdup(text);
  t->file = strdup(file);
  t->arena = mfx_arena_create();
  mfx_status st = t->text && t->file && t->arena
                      ? te_describe(t)
                      : mfx_fail(MFX_ERR_NOMEM, "text kernel %s: out of memory", file);
  if (st == MFX_OK && (t->slot = te_take_slot(t)) < 0)
    st = mfx_fail(MFX_ERR_INVALID, "text kernel %s: %d text kernels are open already (the "
                  "most at once)", file, MFX_TE_OP_MAX);
  if (st != MFX_OK) {
    mfx_te_op_destroy(t);
    return st;
  }
  t->op.build = te_fns[t->slot].build;
  t->op.build_gpu = te_fns[t->slot].build_gpu;
  t->op.reference = te_fns[t->slot].reference;
  *out = t;
  return MFX_OK;
}

void mfx_te_op_destroy(mfx_te_op *t) {
  if (t == NULL) return;
  if (t->slot >= 0) {
    pthread_mutex_lock(&te_slots_lock);
    te_slots[t->slot] = NULL;
    pthread_mutex_unlock(&te_slots_lock);
  }
  if (t->arena != NULL) mfx_arena_destroy(t->arena);
  free(t->text);
  free(t->file);
  free(t);
}

const mfx_op *mfx_te_op_get(const mfx_te_op *t) { return &t->op; }

void mfx_te_op_dims(const mfx_te_op *t, int64_t *dims) {
  memcpy(dims, t->dims, sizeof t->dims);
}

const mfx_autosched_plan *mfx_te_op_plan(const mfx_te_op *t) { return &t->plan; }

void mfx_te_op_set_random_input(mfx_te_op *t, void (*fn)(int i, const int64_t *dims,
                                                          mfx_array *a, uint64_t *rng)) {
  t->op.random_input = fn != NULL ? fn : te_random;
}
