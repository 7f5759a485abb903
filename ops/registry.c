/* The operator table and what every op shares: dims, interface shapes,
 * argument arrays, random inputs and the comparison against the reference. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mfx/reference.h"
#include "ops_internal.h"

static const mfx_op *const mfx_op_table[] = {
#define MFX_OP(name, tol, wf, wd, wu) &mfx_op_def_##name,
#include "op_list.h"
#undef MFX_OP
};

#define MFX_OP_TABLE_SIZE ((int)(sizeof mfx_op_table / sizeof mfx_op_table[0]))

/* Dims beyond this are refused: every index stays far from overflow. */
#define MFX_OP_DIM_MAX ((int64_t)1 << 31)

int mfx_op_count(void) { return MFX_OP_TABLE_SIZE; }

const mfx_op *mfx_op_at(int i) {
  return i >= 0 && i < MFX_OP_TABLE_SIZE ? mfx_op_table[i] : NULL;
}

const mfx_op *mfx_op_find(const char *name) {
  if (name == NULL) return NULL;
  for (int i = 0; i < MFX_OP_TABLE_SIZE; i++)
    if (strcmp(mfx_op_table[i]->name, name) == 0) return mfx_op_table[i];
  return NULL;
}

/* ---- dims ------------------------------------------------------------------ */

static int reg_dim_index(const mfx_op *op, const char *name, size_t len) {
  for (int d = 0; d < op->n_dims; d++)
    if (strlen(op->dims[d]) == len && strncmp(op->dims[d], name, len) == 0) return d;
  return -1;
}

static void reg_dim_names(const mfx_op *op, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < op->n_dims && used < size; d++) {
    int n = snprintf(buf + used, size - used, "%s%s", d ? "," : "", op->dims[d]);
    if (n < 0) return;
    used += (size_t)n;
  }
}

static const char *reg_skip_space(const char *p) {
  while (*p != '\0' && isspace((unsigned char)*p)) p++;
  return p;
}

/* One "NAME=VALUE" item starting at *pp (stops at ',' or the end). */
static mfx_status reg_parse_dim_item(const mfx_op *op, const char **pp, int64_t *dims,
                                     int *seen) {
  const char *p = reg_skip_space(*pp);
  const char *name = p;
  while (*p != '\0' && (isalnum((unsigned char)*p) || *p == '_')) p++;
  size_t len = (size_t)(p - name);
  p = reg_skip_space(p);
  if (len == 0 || *p != '=')
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: expected NAME=VALUE at \"%s\"", op->name,
                    name);
  int d = reg_dim_index(op, name, len);
  if (d < 0) {
    char names[128];
    reg_dim_names(op, names, sizeof names);
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: unknown dim \"%.*s\" (the dims are %s)",
                    op->name, (int)len, name, names);
  }
  if (seen[d])
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s given twice", op->name, op->dims[d]);
  char *end = NULL;
  errno = 0;
  long long v = strtoll(p + 1, &end, 10);
  if (end == p + 1 || errno == ERANGE)
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s needs an integer value at \"%s\"",
                    op->name, op->dims[d], p + 1);
  p = reg_skip_space(end);
  if (*p != '\0' && *p != ',')
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: unexpected \"%s\" after %s=%lld", op->name,
                    p, op->dims[d], v);
  if (v <= 0)
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s=%lld must be positive", op->name,
                    op->dims[d], v);
  if (v > MFX_OP_DIM_MAX)
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s=%lld is larger than %lld", op->name,
                    op->dims[d], v, (long long)MFX_OP_DIM_MAX);
  dims[d] = v;
  seen[d] = 1;
  *pp = p;
  return MFX_OK;
}

mfx_status mfx_op_parse_dims(const mfx_op *op, const char *text, int64_t *dims) {
  if (op == NULL || text == NULL || dims == NULL)
    return mfx_fail(MFX_ERR_INVALID, "dims: op, text and dims must not be NULL");
  int seen[MFX_OP_MAX_DIMS] = {0};
  int64_t parsed[MFX_OP_MAX_DIMS] = {0};
  const char *p = text;
  for (;;) {
    mfx_status st = reg_parse_dim_item(op, &p, parsed, seen);
    if (st != MFX_OK) return st;
    if (*p == '\0') break;
    p++; /* the ',' */
  }
  for (int d = 0; d < op->n_dims; d++) {
    if (!seen[d]) {
      char names[128];
      reg_dim_names(op, names, sizeof names);
      return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s is missing (every one of %s is needed)",
                      op->name, op->dims[d], names);
    }
  }
  mfx_status st = mfx_op_check_sizes(op, parsed);
  if (st != MFX_OK) return st;
  memcpy(dims, parsed, sizeof(int64_t) * (size_t)op->n_dims);
  return MFX_OK;
}

/* ---- sizes: before anything is allocated ------------------------------------ */

/* Bytes of tensor t under dims, or 0 when they overflow 2^62. */
static uint64_t reg_op_tensor_bytes(const mfx_op *op, const mfx_op_tensor *t,
                                    const int64_t *dims) {
  int64_t shape[MFX_MAX_DIMS];
  mfx_op_tensor_shape(op, t, dims, shape);
  uint64_t bytes = mfx_dtype_size(t->dtype);
  for (int i = 0; i < t->ndim; i++) {
    if (shape[i] <= 0 || bytes > ((uint64_t)1 << 62) / (uint64_t)shape[i]) return 0;
    bytes *= (uint64_t)shape[i];
  }
  return bytes;
}

static void reg_op_shape_text(const mfx_op *op, const mfx_op_tensor *t, const int64_t *dims,
                              char *buf, size_t size) {
  int64_t shape[MFX_MAX_DIMS];
  mfx_op_tensor_shape(op, t, dims, shape);
  size_t used = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < t->ndim && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "",
                             (long long)shape[i]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

mfx_status mfx_op_check_sizes(const mfx_op *op, const int64_t *dims) {
  for (int i = 0; i < op->n_inputs + op->n_outputs; i++) {
    const mfx_op_tensor *t = i < op->n_inputs ? &op->inputs[i] : &op->outputs[i - op->n_inputs];
    if (reg_op_tensor_bytes(op, t, dims) != 0) continue;
    char shape[200];
    reg_op_shape_text(op, t, dims, shape, sizeof shape);
    return mfx_fail(MFX_ERR_INVALID, "dims of %s: %s %s would be %s %s, more than 2^62 bytes",
                    op->name, i < op->n_inputs ? "input" : "output", t->name,
                    mfx_dtype_name(t->dtype), shape);
  }
  return MFX_OK;
}

mfx_status mfx_op_check_memory(const mfx_op *op, const int64_t *dims) {
  MFX_TRY(mfx_op_check_sizes(op, dims));
  uint64_t cap = mfx_array_max_bytes(), total = 0;
  for (int i = 0; i < op->n_inputs + op->n_outputs; i++) {
    const mfx_op_tensor *t = i < op->n_inputs ? &op->inputs[i] : &op->outputs[i - op->n_inputs];
    uint64_t bytes = reg_op_tensor_bytes(op, t, dims);
    total += bytes;
    if (bytes <= cap) continue;
    char shape[200];
    reg_op_shape_text(op, t, dims, shape, sizeof shape);
    return mfx_fail(MFX_ERR_NOMEM, "%s: %s %s %s %s needs %llu bytes (%.1f GiB); one allocation "
                    "may take at most %llu bytes (%.1f GiB, this machine's memory)", op->name,
                    i < op->n_inputs ? "input" : "output", t->name, mfx_dtype_name(t->dtype),
                    shape, (unsigned long long)bytes, (double)bytes / 1073741824.0,
                    (unsigned long long)cap, (double)cap / 1073741824.0);
  }
  if (total > cap)
    return mfx_fail(MFX_ERR_NOMEM, "%s: its inputs and outputs need %llu bytes (%.1f GiB) "
                    "together, more than this machine's memory (%.1f GiB)", op->name,
                    (unsigned long long)total, (double)total / 1073741824.0,
                    (double)cap / 1073741824.0);
  return MFX_OK;
}

void mfx_op_tensor_shape(const mfx_op *op, const mfx_op_tensor *t, const int64_t *dims,
                         int64_t *shape) {
  for (int i = 0; i < t->ndim; i++) {
    int d = reg_dim_index(op, t->shape[i], strlen(t->shape[i]));
    shape[i] = d >= 0 ? dims[d] : 0;
  }
}

/* ---- work per run ---------------------------------------------------------------- */

typedef struct {
  const char *op;
  double factor;
  const char *dims; /* "M*N*K" */
  const char *unit;
} mfx_op_work_rule;

static const mfx_op_work_rule mfx_op_work_rules[] = {
#define MFX_OP(name, tol, wf, wd, wu) {#name, wf, wd, wu},
#include "op_list.h"
#undef MFX_OP
};

double mfx_op_work(const mfx_op *op, const int64_t *dims, const char **unit) {
  if (op == NULL || dims == NULL) return 0.0;
  for (size_t r = 0; r < sizeof mfx_op_work_rules / sizeof mfx_op_work_rules[0]; r++) {
    const mfx_op_work_rule *rule = &mfx_op_work_rules[r];
    if (strcmp(rule->op, op->name) != 0) continue;
    double work = rule->factor;
    for (const char *p = rule->dims; *p != '\0';) {
      size_t len = strcspn(p, "*");
      int d = reg_dim_index(op, p, len);
      if (d < 0) return 0.0;
      work *= (double)dims[d];
      p += len + (p[len] == '*');
    }
    if (unit != NULL) *unit = rule->unit;
    return work;
  }
  return 0.0;
}

/* ---- argument arrays ------------------------------------------------------------ */

static mfx_status reg_op_alloc(const mfx_op *op, const int64_t *dims, int n,
                               const mfx_op_tensor *ts, mfx_array *arrays) {
  for (int i = 0; i < n; i++) {
    int64_t shape[MFX_MAX_DIMS];
    mfx_op_tensor_shape(op, &ts[i], dims, shape);
    mfx_status st = mfx_array_create(&arrays[i], ts[i].dtype, ts[i].ndim, shape);
    if (st != MFX_OK) {
      for (int j = 0; j < i; j++) mfx_array_free(&arrays[j]);
      return mfx_fail_context(st, "%s: allocating %s", op->name, ts[i].name);
    }
  }
  return MFX_OK;
}

mfx_status mfx_op_alloc_inputs(const mfx_op *op, const int64_t *dims, mfx_array *inputs) {
  return reg_op_alloc(op, dims, op->n_inputs, op->inputs, inputs);
}

mfx_status mfx_op_alloc_outputs(const mfx_op *op, const int64_t *dims, mfx_array *outputs) {
  return reg_op_alloc(op, dims, op->n_outputs, op->outputs, outputs);
}

/* ---- random inputs ------------------------------------------------------------------ */

void mfx_op_random_inputs(const mfx_op *op, const int64_t *dims, uint64_t seed,
                          mfx_array *inputs) {
  mfx_random_inputs(op->random_input, op->n_inputs, dims, seed, inputs);
}
