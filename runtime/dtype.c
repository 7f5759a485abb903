/* Data type names, sizes and classes. */
#include "mfx/runtime.h"

#include <string.h>

typedef struct {
  const char *name;
  size_t size;
  int is_float;
  int is_signed;
} mfx_dtype_info;

static const mfx_dtype_info mfx_dtype_table[MFX_DTYPE_COUNT] = {
  [MFX_BOOL] = {"bool", 1, 0, 0},
  [MFX_I8] = {"i8", 1, 0, 1},
  [MFX_I16] = {"i16", 2, 0, 1},
  [MFX_I32] = {"i32", 4, 0, 1},
  [MFX_I64] = {"i64", 8, 0, 1},
  [MFX_U8] = {"u8", 1, 0, 0},
  [MFX_U32] = {"u32", 4, 0, 0},
  [MFX_U64] = {"u64", 8, 0, 0},
  [MFX_F32] = {"f32", 4, 1, 0},
};

static int dtype_valid(mfx_dtype t) {
  return (int)t >= 0 && t < MFX_DTYPE_COUNT;
}

const char *mfx_dtype_name(mfx_dtype t) {
  return mfx_name_of(&mfx_dtype_table[0].name, sizeof mfx_dtype_table[0], MFX_DTYPE_COUNT,
                     (int)t, "invalid");
}

int mfx_dtype_from_name(const char *name, mfx_dtype *out) {
  int t = mfx_name_index(&mfx_dtype_table[0].name, sizeof mfx_dtype_table[0], MFX_DTYPE_COUNT,
                         name);
  if (t < 0) return -1;
  if (out != NULL) *out = (mfx_dtype)t;
  return 0;
}

size_t mfx_dtype_size(mfx_dtype t) {
  return dtype_valid(t) ? mfx_dtype_table[t].size : 0;
}

int mfx_dtype_is_float(mfx_dtype t) {
  return dtype_valid(t) && mfx_dtype_table[t].is_float;
}

int mfx_dtype_is_signed(mfx_dtype t) {
  return dtype_valid(t) && mfx_dtype_table[t].is_signed;
}
