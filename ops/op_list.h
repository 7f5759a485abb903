/* The one list of mfx's ops: one row each, in the order `mfx ops` lists
 * them, with the op's interface above it. Everything that holds a row per op
 * is made from it: the registry (registry.c), the references mfx-runner
 * links (reference_table.c), the declarations and interfaces of
 * ops_internal.h, the work rates of `mfx run` (mfx_op_work), and the
 * runtime's op interfaces (runtime/interface.c), which check every artifact
 * and every run. This file is data only (rows and macros over string and
 * number literals; it includes nothing and calls nothing), so the runtime
 * may read it without depending on ops/ code (docs/architecture.md). No
 * include guard for the rows: include it with MFX_OP defined.
 *
 *   #define MFX_DIMS_<name>    {"M", "N", "K"}              the op's dims, in order
 *   #define MFX_INPUTS_<name>  {MFX_T(...), ...}            its inputs, in order
 *   #define MFX_OUTPUTS_<name> {MFX_T(...)}                 its outputs
 *   MFX_OP(name, int_tolerance, work_factor, work_dims, work_unit)
 *
 * A tensor is MFX_T(name, dtype, (shape dims...), about); an input whose
 * values the kernel reads as shifts or indices says which values it may
 * hold, and the runtime checks them before every launch:
 * MFX_T_RANGE(name, dtype, (shape...), lo, hi, about) for values in
 * [lo, hi], MFX_T_INDEX(name, (shape...), rows_dim, about) for i32 row
 * indices in [-1, rows_dim) (-1: none). A reader defines MFX_T, MFX_T_RANGE
 * and MFX_T_INDEX as the initializer of its own tensor type; the counts
 * (dims, inputs, outputs, each tensor's rank) follow from the lists
 * (MFX_OP_COUNT, MFX_OP_NDIM).
 *
 * name: the op's C name and string; ops/<file>.c defines mfx_op_def_<name>
 *   beginning with MFX_OP_LISTED(name) (counts, tolerance, references) and
 *   MFX_OP_IO(name) (dims and tensors), and the references mfx_ref_<name>
 *   (reference.c) and mfx_random_<name> (random.c).
 * int_tolerance: |got - want| allowed for integer outputs (see mfx_op).
 * work: work_factor * the product of the dims in work_dims ("M*N*K"), in
 *   units of work_unit, per run: linear multiplies and adds, shift_linear
 *   shifts and adds, hamming xors and counts 32-bit word pairs, matadd adds
 *   (bit-selected), binary attention adds in both products, the elementwise
 *   ops (GELU, Q16.16) elements, gather_rows the elements it writes,
 *   combine_rows multiplies and adds, a fused op its reduction's work.
 */
#ifndef MFX_OP_LIST_MACROS
#define MFX_OP_LIST_MACROS
/* (dims...) as an initializer, and its count: the rank of a shape. */
#define MFX_OP_SHAPE(...) {__VA_ARGS__}
#define MFX_OP_NDIM(shape) \
  ((int)(sizeof((const char *[])MFX_OP_SHAPE shape) / sizeof(const char *)))
/* The number of elements of a braced list of `type` (a constant). */
#define MFX_OP_COUNT(type, list) ((int)(sizeof((type[])list) / sizeof(type)))
#endif

/* clang-format off */
#define MFX_DIMS_linear {"M", "N", "K"}
#define MFX_INPUTS_linear {                                                    \
  MFX_T("X", MFX_F32, ("M", "K"), "activations"),                              \
  MFX_T("W", MFX_F32, ("N", "K"), "weights, one row per output feature")}
#define MFX_OUTPUTS_linear {MFX_T("Y", MFX_F32, ("M", "N"), "Y[m,n] = sum_k X[m,k] W[n,k]")}
MFX_OP(linear, 0, 2.0, "M*N*K", "GFLOP/s")

#define MFX_DIMS_shift_linear {"M", "N", "K"}
#define MFX_INPUTS_shift_linear {                                              \
  MFX_T("X", MFX_I32, ("M", "K"), "activations, Q16.16 fixed point"),          \
  MFX_T_RANGE("S", MFX_I8, ("N", "K"), 0, 15, "right-shift amounts 0..15"),    \
  MFX_T_RANGE("G", MFX_I8, ("N", "K"), -1, 1, "signs -1, 0, 1")}
#define MFX_OUTPUTS_shift_linear {                                             \
  MFX_T("Y", MFX_I32, ("M", "N"), "Y[m,n] = sum_k G[n,k] (X[m,k] >> S[n,k])")}
MFX_OP(shift_linear, 0, 2.0, "M*N*K", "Gop/s")

#define MFX_DIMS_matadd {"B", "H", "N", "D", "C"}
#define MFX_INPUTS_matadd {                                                    \
  MFX_T("Hc", MFX_I8, ("B", "H", "N", "C"), "binary codes 0/1"),               \
  MFX_T("V", MFX_F32, ("B", "H", "N", "D"), "values")}
#define MFX_OUTPUTS_matadd {                                                   \
  MFX_T("O", MFX_F32, ("B", "H", "C", "D"), "O[b,h,c,d] = sum_n Hc[b,h,n,c] V[b,h,n,d]")}
MFX_OP(matadd, 0, 1.0, "B*H*N*D*C", "Gadd/s")

#define MFX_DIMS_hamming {"N", "M", "W"}
#define MFX_INPUTS_hamming {                                                   \
  MFX_T("Q", MFX_U32, ("N", "W"), "query codes, bit j of word w is code bit 32w+j"), \
  MFX_T("K", MFX_U32, ("M", "W"), "key codes, same packing")}
#define MFX_OUTPUTS_hamming {                                                  \
  MFX_T("S", MFX_I32, ("N", "M"), "S[n,m] = 32W - 2 popcount(Q[n] xor K[m])")}
MFX_OP(hamming, 0, 1.0, "N*M*W", "Gword/s")

#define MFX_DIMS_hamming16 {"N", "M", "W"}
#define MFX_INPUTS_hamming16 MFX_INPUTS_hamming
#define MFX_OUTPUTS_hamming16 {                                                \
  MFX_T("S", MFX_I16, ("N", "M"), "S[n,m] = 32W - 2 popcount(Q[n] xor K[m]), i16 (W <= 1023)")}
MFX_OP(hamming16, 0, 1.0, "N*M*W", "Gword/s")

#define MFX_DIMS_binary_attention {"B", "H", "N", "D", "C"}
#define MFX_INPUTS_binary_attention MFX_INPUTS_matadd
#define MFX_OUTPUTS_binary_attention {                                         \
  MFX_T("O", MFX_F32, ("B", "H", "N", "D"), "rows of unit norm over d")}
MFX_OP(binary_attention, 0, 2.0, "B*H*N*D*C", "Gadd/s")

#define MFX_DIMS_gelu {"M", "N"}
#define MFX_INPUTS_gelu {MFX_T("X", MFX_F32, ("M", "N"), "activations")}
#define MFX_OUTPUTS_gelu {MFX_T("Y", MFX_F32, ("M", "N"), "Y = (0.5 X) (1 + erf(X 0.70710678f))")}
MFX_OP(gelu, 0, 1.0, "M*N", "Gelem/s")

#define MFX_DIMS_q16_quantize {"M", "N"}
#define MFX_INPUTS_q16_quantize {MFX_T("X", MFX_F32, ("M", "N"), "values")}
#define MFX_OUTPUTS_q16_quantize {                                             \
  MFX_T("Q", MFX_I32, ("M", "N"),                                              \
        "Q = rint(X 2^16) within int32 (INT32_MAX/MIN beyond, 0 for NaN)")}
MFX_OP(q16_quantize, 0, 1.0, "M*N", "Gelem/s")

#define MFX_DIMS_q16_dequantize {"M", "N"}
#define MFX_INPUTS_q16_dequantize {MFX_T("Q", MFX_I32, ("M", "N"), "Q16.16 values")}
#define MFX_OUTPUTS_q16_dequantize {MFX_T("X", MFX_F32, ("M", "N"), "X = f32(Q) 2^-16")}
MFX_OP(q16_dequantize, 0, 1.0, "M*N", "Gelem/s")

#define MFX_DIMS_q16_gelu {"M", "N"}
#define MFX_INPUTS_q16_gelu {MFX_T("Q", MFX_I32, ("M", "N"), "Q16.16 values")}
#define MFX_OUTPUTS_q16_gelu {                                                 \
  MFX_T("R", MFX_I32, ("M", "N"), "R = q16_quantize(gelu(q16_dequantize(Q)))")}
MFX_OP(q16_gelu, 1, 1.0, "M*N", "Gelem/s") /* tolerance 1, erf: elementwise.c */

#define MFX_DIMS_gather_rows {"T", "M", "D"}
#define MFX_INPUTS_gather_rows {                                               \
  MFX_T("X", MFX_F32, ("T", "D"), "rows (tokens)"),                            \
  MFX_T_INDEX("IDX", ("M"), "T", "the row of X for each row of Y, in [0, T); " \
              "-1 (padding) or any index outside: a zero row")}
#define MFX_OUTPUTS_gather_rows {                                              \
  MFX_T("Y", MFX_F32, ("M", "D"), "Y[m,d] = IDX[m] >= 0 ? X[IDX[m],d] : 0")}
MFX_OP(gather_rows, 0, 1.0, "M*D", "Gelem/s")

#define MFX_DIMS_combine_rows {"R", "T", "K", "D"}
#define MFX_INPUTS_combine_rows {                                              \
  MFX_T("YALL", MFX_F32, ("R", "D"), "rows (the experts' outputs)"),           \
  MFX_T_INDEX("ROWS", ("T", "K"), "R", "the row of YALL for each token and slot, in [0, R); " \
              "-1 (a null expert) or any index outside: no term"),             \
  MFX_T("GATES", MFX_F32, ("T", "K"), "the weight of each token's slot")}
#define MFX_OUTPUTS_combine_rows {                                             \
  MFX_T("Y", MFX_F32, ("T", "D"), "Y[t,d] = sum over s in order of ROWS[t,s] >= 0 ? "  \
        "GATES[t,s] YALL[ROWS[t,s],d] : -0.0, from 0")}
MFX_OP(combine_rows, 0, 2.0, "T*K*D", "GFLOP/s")

#define MFX_DIMS_linear_gelu {"M", "N", "K"}
#define MFX_INPUTS_linear_gelu MFX_INPUTS_linear
#define MFX_OUTPUTS_linear_gelu {MFX_T("Y", MFX_F32, ("M", "N"), "Y = gelu(linear(X, W))")}
MFX_OP(linear_gelu, 0, 2.0, "M*N*K", "GFLOP/s")

#define MFX_DIMS_shift_linear_q16_gelu {"M", "N", "K"}
#define MFX_INPUTS_shift_linear_q16_gelu {                                     \
  MFX_T("X", MFX_F32, ("M", "K"), "activations, f32 (quantized to Q16.16 in the kernel)"), \
  MFX_T_RANGE("S", MFX_I8, ("N", "K"), 0, 15, "right-shift amounts 0..15"),    \
  MFX_T_RANGE("G", MFX_I8, ("N", "K"), -1, 1, "signs -1, 0, 1")}
#define MFX_OUTPUTS_shift_linear_q16_gelu {                                    \
  MFX_T("R", MFX_I32, ("M", "N"), "R = q16_gelu(shift_linear(q16_quantize(X), S, G)), Q16.16")}
MFX_OP(shift_linear_q16_gelu, 1, 2.0, "M*N*K", "Gop/s") /* the same erf */

#define MFX_DIMS_shift_linear_dequantize {"M", "N", "K"}
#define MFX_INPUTS_shift_linear_dequantize MFX_INPUTS_shift_linear
#define MFX_OUTPUTS_shift_linear_dequantize {                                  \
  MFX_T("Y", MFX_F32, ("M", "N"), "Y = f32(shift_linear(X, S, G)) 2^-16")}
MFX_OP(shift_linear_dequantize, 0, 2.0, "M*N*K", "Gop/s")

#define MFX_DIMS_shift_linear16 {"M", "N", "K"}
#define MFX_INPUTS_shift_linear16 {                                            \
  MFX_T_RANGE("X", MFX_I16, ("M", "K"), -8192, 8191, "activations, 14-bit fixed point"), \
  MFX_T_RANGE("S", MFX_I8, ("N", "K"), 0, 15, "right-shift amounts 0..15"),    \
  MFX_T_RANGE("G", MFX_I8, ("N", "K"), -1, 1, "signs -1, 0, 1")}
#define MFX_OUTPUTS_shift_linear16 {                                           \
  MFX_T("Y", MFX_I32, ("M", "N"), "Y[m,n] = sum_k G[n,k] (X[m,k] >> S[n,k]), exact")}
MFX_OP(shift_linear16, 0, 2.0, "M*N*K", "Gop/s") /* 16-bit lanes */

#define MFX_DIMS_shift_linear16_gelu {"M", "N", "K"}
#define MFX_INPUTS_shift_linear16_gelu {                                       \
  MFX_T("X", MFX_F32, ("M", "K"), "activations, f32 (quantized in the kernel to Q3.10: " \
        "rint(X 2^10) within -8192..8191, 0 for NaN)"),                        \
  MFX_T_RANGE("S", MFX_I8, ("N", "K"), 0, 15, "right-shift amounts 0..15"),    \
  MFX_T_RANGE("G", MFX_I8, ("N", "K"), -1, 1, "signs -1, 0, 1")}
#define MFX_OUTPUTS_shift_linear16_gelu {                                      \
  MFX_T("R", MFX_I16, ("M", "N"), "R = rint(gelu(H 2^-10) 2^10) within -8192..8191, "  \
        "H = shift_linear16(Q3.10 of X, S, G)")}
MFX_OP(shift_linear16_gelu, 1, 2.0, "M*N*K", "Gop/s") /* erf: fused16.c */

#define MFX_DIMS_shift_linear16_dequantize {"M", "N", "K"}
#define MFX_INPUTS_shift_linear16_dequantize MFX_INPUTS_shift_linear16
#define MFX_OUTPUTS_shift_linear16_dequantize {                                \
  MFX_T("Y", MFX_F32, ("M", "N"), "Y = f32(shift_linear16(X, S, G)) 2^-10")}
MFX_OP(shift_linear16_dequantize, 0, 2.0, "M*N*K", "Gop/s")
/* clang-format on */
