/* mfx ops: every op's interface and schedule knobs. */
#include <stdio.h>
#include <string.h>

#include "mfx_cli.h"

static void tool_print_tensor(const char *label, const mfx_op_tensor *t) {
  printf("  %-9s %-4s %-4s [", label, t->name, mfx_dtype_name(t->dtype));
  for (int d = 0; d < t->ndim; d++) printf("%s%s", d ? ", " : "", t->shape[d]);
  printf("]");
  if (t->about != NULL && t->about[0] != '\0') printf("  %s", t->about);
  printf("\n");
}

static void tool_print_knob(const char *label, const mfx_knob *k) {
  printf("  %-9s %-14s default %-4lld choices ", label, k->name, (long long)k->def);
  for (int c = 0; c < k->n_choices; c++) printf("%s%lld", c ? "," : "", (long long)k->choices[c]);
  if (k->about != NULL && k->about[0] != '\0') printf("  %s", k->about);
  printf("\n");
}

static void tool_print_op(const mfx_op *op) {
  printf("%s", op->name);
  if (op->about != NULL && op->about[0] != '\0') printf(": %s", op->about);
  printf("\n  %-9s ", "dims");
  for (int d = 0; d < op->n_dims; d++) printf("%s%s", d ? " " : "", op->dims[d]);
  printf("\n");
  for (int i = 0; i < op->n_inputs; i++) tool_print_tensor("input", &op->inputs[i]);
  for (int i = 0; i < op->n_outputs; i++) tool_print_tensor("output", &op->outputs[i]);
  /* The CPU template's knobs, then the GPU template's (cuda:sm_XX targets). */
  static const struct { const char *target, *label; } templates[] = {{"cpu", "knob"},
                                                                      {"cuda:sm_80", "gpu knob"}};
  for (size_t t = 0; t < sizeof templates / sizeof templates[0]; t++) {
    int n = 0;
    const mfx_knob *knobs = mfx_op_knobs(op, templates[t].target, &n);
    for (int i = 0; i < n; i++) tool_print_knob(templates[t].label, &knobs[i]);
    if (n == 0) printf("  %-9s (none)\n", templates[t].label);
  }
}

int tool_cmd_ops(int argc, char **argv) {
  tool_args args;
  int rc = tool_parse_args(argc, argv, 0, &args);
  if (rc != 0) return rc;
  if (args.help) {
    fputs(tool_usage("ops"), stdout);
    return TOOL_EXIT_OK;
  }
  if (args.op_name != NULL) {
    const mfx_op *op = NULL;
    rc = tool_find_op(args.op_name, &op);
    if (rc != 0) return rc;
    tool_print_op(op);
    return TOOL_EXIT_OK;
  }
  for (int i = 0; i < mfx_op_count(); i++) {
    if (i > 0) printf("\n");
    tool_print_op(mfx_op_at(i));
  }
  return TOOL_EXIT_OK;
}
