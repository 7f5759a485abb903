/* The one parser of target strings (see mfx/target.h). */
#include "mfx/target.h"

#include <stdio.h>
#include <string.h>

static int target_digits(const char *p, int max, int *value) {
  int n = 0, v = 0;
  while (p[n] >= '0' && p[n] <= '9' && n <= max) v = v * 10 + (p[n++] - '0');
  *value = v;
  return n;
}

static int target_parse_sm(const char *p, mfx_target *out) {
  int sm = 0, n = target_digits(p, 3, &sm);
  if (n < 2 || n > 3 || sm < 10) return 0;
  out->arch_specific = p[n] == 'a';
  if (p[n + out->arch_specific] != '\0') return 0;
  out->sm = sm;
  snprintf(out->sm_name, sizeof out->sm_name, "sm_%d%s", sm, out->arch_specific ? "a" : "");
  return 1;
}

static int target_parse_cuda(const char *p, mfx_target *out) {
  out->kind = MFX_TARGET_CUDA;
  if (*p == '\0') return 1;
  if (*p++ != ':') return 0;
  if (strncmp(p, "sm_", 3) == 0) return target_parse_sm(p + 3, out);
  int n = target_digits(p, 5, &out->device);
  return n >= 1 && n <= 5 && p[n] == '\0' && out->device <= 65535;
}

mfx_status mfx_target_parse(const char *text, mfx_target *out) {
  mfx_target t = {.kind = MFX_TARGET_CPU, .device = -1};
  int ok = 0;
  if (text != NULL && strcmp(text, "cpu") == 0) ok = 1;
  else if (text != NULL && strcmp(text, "emulate") == 0) t.kind = MFX_TARGET_EMULATE, ok = 1;
  else if (text != NULL && strncmp(text, "cuda", 4) == 0) ok = target_parse_cuda(text + 4, &t);
  if (!ok)
    return mfx_fail(MFX_ERR_INVALID, "target \"%s\": expected cpu, cuda, cuda:N, cuda:sm_XX "
                    "(e.g. cuda:sm_80) or emulate", text != NULL ? text : "(null)");
  *out = t;
  return MFX_OK;
}

int mfx_target_names_gpu(const char *text) {
  return text != NULL && strncmp(text, "cuda", 4) == 0;
}
