/* The one list of mfx's ops: one line each, in the order `mfx ops` lists
 * them. Everything that holds a row per op is made from it: the registry
 * (registry.c), the references mfx-runner links (reference_table.c), the
 * declarations of ops_internal.h and the work rates of `mfx run`
 * (mfx_op_work). No include guard: include it with MFX_OP defined.
 *
 *   MFX_OP(name, n_dims, n_inputs, n_outputs, int_tolerance, work_factor, work_dims, work_unit)
 *
 * name: the op's C name and string; ops/<file>.c defines mfx_op_def_<name>
 *   beginning with MFX_OP_LISTED(name), and the references
 *   mfx_ref_<name> (reference.c) and mfx_random_<name> (random.c).
 * n_dims, n_inputs, n_outputs: the counts of its interface (the names and
 *   shapes are in its mfx_op; tests/test_ops.c checks that they agree).
 * int_tolerance: |got - want| allowed for integer outputs (see mfx_op).
 * work: work_factor * the product of the dims in work_dims ("M*N*K"), in
 *   units of work_unit, per run: linear multiplies and adds, shift_linear
 *   shifts and adds, hamming xors and counts 32-bit word pairs, matadd adds
 *   (bit-selected), binary attention adds in both products, the elementwise
 *   ops (GELU, Q16.16) elements, gather_rows the elements it writes,
 *   combine_rows multiplies and adds, a fused op its reduction's work.
 */
/* clang-format off */
MFX_OP(linear,                  3, 2, 1, 0, 2.0, "M*N*K",     "GFLOP/s")
MFX_OP(shift_linear,            3, 3, 1, 0, 2.0, "M*N*K",     "Gop/s")
MFX_OP(matadd,                  5, 2, 1, 0, 1.0, "B*H*N*D*C", "Gadd/s")
MFX_OP(hamming,                 3, 2, 1, 0, 1.0, "N*M*W",     "Gword/s")
MFX_OP(hamming16,               3, 2, 1, 0, 1.0, "N*M*W",     "Gword/s") /* i16 scores */
MFX_OP(binary_attention,        5, 2, 1, 0, 2.0, "B*H*N*D*C", "Gadd/s")
MFX_OP(gelu,                    2, 1, 1, 0, 1.0, "M*N",       "Gelem/s")
MFX_OP(q16_quantize,            2, 1, 1, 0, 1.0, "M*N",       "Gelem/s")
MFX_OP(q16_dequantize,          2, 1, 1, 0, 1.0, "M*N",       "Gelem/s")
MFX_OP(q16_gelu,                2, 1, 1, 1, 1.0, "M*N",       "Gelem/s") /* erf: elementwise.c */
MFX_OP(gather_rows,             3, 2, 1, 0, 1.0, "M*D",       "Gelem/s")
MFX_OP(combine_rows,            4, 3, 1, 0, 2.0, "T*K*D",     "GFLOP/s")
MFX_OP(linear_gelu,             3, 2, 1, 0, 2.0, "M*N*K",     "GFLOP/s")
MFX_OP(shift_linear_q16_gelu,   3, 3, 1, 1, 2.0, "M*N*K",     "Gop/s")   /* the same erf */
MFX_OP(shift_linear_dequantize, 3, 3, 1, 0, 2.0, "M*N*K",     "Gop/s")
MFX_OP(shift_linear16,          3, 3, 1, 0, 2.0, "M*N*K",     "Gop/s")   /* 16-bit lanes */
/* clang-format on */
