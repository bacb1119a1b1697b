/*
 * edgekit micro kernels: int8 operators for microcontrollers (C99).
 *
 * Semantics: every kernel produces the same bytes as TensorFlow Lite Micro's
 * reference kernel named in its comment, and as edgekit.reference.int8_kernels
 * (the definition, checked against the tflite_micro interpreter).
 *
 * Conventions
 * - Tensors are dense, row-major, batch first; images are NHWC.
 *   Filters: CONV_2D [Cout, KH, KW, Cin] (OHWI); DEPTHWISE_CONV_2D
 *   [1, KH, KW, Cin * depth_multiplier]; FULLY_CONNECTED [Cout, K].
 * - An "offset" is added to a raw value: input offsets are MINUS the input
 *   zero point, output offsets are the output zero point (TFLite's convention).
 * - Every fixed-point multiplier and shift is computed ahead of time by the
 *   edgekit compiler (edgekit.reference.fixedpoint) and passed in; no kernel
 *   derives one. A (multiplier, shift) pair means real = multiplier * 2^(shift-31);
 *   shift > 0 is a left shift, shift < 0 a rounding right shift.
 * - act_min / act_max are the fused activation's clamp, already quantized.
 * - Output dimensions are passed in (the compiler computed them); bottom and
 *   right padding are implied by them.
 * - No kernel allocates memory, uses libc beyond memcpy/memset, or touches
 *   float except ek_quantize_f32_s8, ek_dequantize_s8_f32 and the CAST kernels.
 * - Accumulators are int32, as in TFLM: a convolution whose depth
 *   (KH * KW * Cin, or K) exceeds 65,000 could overflow, as it could in TFLM.
 *
 * Each kernel has a portable reference (src/portable/<op>.c) and may have
 * optimized variants (src/dsp/<op>.c, Armv7E-M DSP) with the same name and
 * signature; the build compiles exactly one variant per op (see kernels.json).
 */
#ifndef EDGEKIT_KERNELS_H
#define EDGEKIT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Dimensions of a 4-D tensor (NHWC, or any 4-D shape). */
typedef struct {
  int32_t n, h, w, c;
} ek_dims4;

/* Element strides of a 4-D operand as seen from the output's index space;
 * a stride of 0 broadcasts that dimension. */
typedef struct {
  int32_t n, h, w, c;
} ek_strides4;

/* ------------------------------------------------------------------------ */
/* Convolutions and fully connected                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
  int32_t input_offset;  /* -input zero point */
  int32_t output_offset; /* output zero point */
  int32_t act_min, act_max;
} ek_conv_params;

/* CONV_2D, TFLM reference_integer_ops::ConvPerChannel.
 * For each output (b, y, x, oc):
 *   acc = sum over in-bounds taps (ky, kx) and ic of
 *         filter[oc, ky, kx, ic] * (input[b, y*sh - pad_top + ky*dh,
 *                                         x*sw - pad_left + kx*dw, ic] + input_offset)
 *   acc += bias[oc]                          (bias may be NULL)
 *   out = clamp(MBQM(acc, mult[oc], shift[oc]) + output_offset, act_min, act_max)
 * where MBQM is TFLM's double-rounding MultiplyByQuantizedMultiplier. Taps in the
 * padding are skipped (they count as the input zero point). Per-tensor filters
 * pass the same multiplier in every one of the Cout entries.
 * A 1x1 filter with no padding takes a pointwise fast path. */
void ek_conv2d_s8(const ek_conv_params *params, const int32_t *mult, const int32_t *shift,
                  const ek_dims4 *input_dims, const int8_t *input,
                  const ek_dims4 *filter_dims, const int8_t *filter,
                  const int32_t *bias,
                  const ek_dims4 *output_dims, int8_t *output);

typedef struct {
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
  int32_t depth_multiplier;
  int32_t input_offset;  /* -input zero point */
  int32_t output_offset; /* output zero point */
  int32_t act_min, act_max;
} ek_depthwise_params;

/* DEPTHWISE_CONV_2D, TFLM reference_integer_ops::DepthwiseConvPerChannel.
 * filter_dims is {1, KH, KW, Cin * depth_multiplier}; output channel
 * oc = ic * depth_multiplier + m reads input channel ic:
 *   acc = sum over in-bounds taps of filter[0, ky, kx, oc] * (input[.., ic] + input_offset)
 * then bias, MBQM(mult[oc], shift[oc]), output_offset and clamp as ek_conv2d_s8.
 * A 3x3 filter with depth_multiplier 1 and no dilation takes a fast path. */
void ek_depthwise_conv2d_s8(const ek_depthwise_params *params,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *input_dims, const int8_t *input,
                            const ek_dims4 *filter_dims, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *output_dims, int8_t *output);

typedef struct {
  int32_t input_offset;  /* -input zero point */
  int32_t filter_offset; /* -filter zero point (0 when per_channel) */
  int32_t output_offset; /* output zero point */
  int32_t act_min, act_max;
  int32_t per_channel; /* 0: mult[0], shift[0] serve every output; 1: one per output */
} ek_fc_params;

/* FULLY_CONNECTED, TFLM reference_integer_ops::FullyConnected (per tensor) and
 * FullyConnectedPerChannel, both with double-rounding MBQM:
 *   acc[b, o] = sum_k (filter[o, k] + filter_offset) * (input[b, k] + input_offset)
 *               + bias[o]                           (bias may be NULL)
 *   out[b, o] = clamp(MBQM(acc, mult[o or 0], shift[o or 0]) + output_offset, ...)
 * input is [batches, input_depth], filter [output_depth, input_depth]. */
void ek_fully_connected_s8(const ek_fc_params *params, const int32_t *mult, const int32_t *shift,
                           int32_t batches, int32_t input_depth, int32_t output_depth,
                           const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output);

/* ---- Packed convolution and fully connected (compile-time weight layout) ----
 * The same bytes as ek_conv2d_s8 / ek_fully_connected_s8, from operands the compiler
 * prepared (edgekit/backends/c/packed.py):
 * - folded_bias[oc] = bias[oc] + input_offset * sum_k filter[oc, k] (int32, wrapping),
 *   so the kernels sum filter * RAW input; taps in the padding read the input zero
 *   point (input_zero_point), which then adds nothing. Always output_depth entries.
 * - fast_requant = 1 is the compiler's proof that, for every channel, shift is in
 *   [-31, -1] and |acc| < 2^29 for any input (acc: the true sum plus bias), where
 *   MultiplyByQuantizedMultiplier equals its SMMULR form; 0 keeps the exact form. */
typedef struct {
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
  int32_t input_zero_point; /* raw value of a padding tap */
  int32_t output_offset;    /* output zero point */
  int32_t act_min, act_max;
  int32_t fast_requant;
  int32_t reverse; /* 1: output pixels from the last to the first (each pixel's outputs after
                    * all reads of its window): an output placed above its input */
} ek_conv_packed_params;

/* CONV_2D with packed filters. K = KH * KW * Cin in OHWI order, Kp = K rounded up to
 * a multiple of 4. packed_filter holds the output channels in pairs (an odd Cout gets a
 * zero channel): for pair j and group g < Kp / 4, the 4 bytes of channel 2j at
 * k = 4g..4g+3, then those of channel 2j + 1 (k >= K: 0). filter_dims are the logical
 * OHWI dimensions. scratch: 5 * Kp bytes, 4-byte aligned, for the kernel's use (the
 * int16 columns of two output pixels and one gathered window). */
void ek_conv2d_packed_s8(const ek_conv_packed_params *params, const int32_t *mult,
                         const int32_t *shift, const ek_dims4 *input_dims, const int8_t *input,
                         const ek_dims4 *filter_dims, const int8_t *packed_filter,
                         const int32_t *folded_bias, const ek_dims4 *output_dims, int8_t *output,
                         int16_t *scratch);

typedef struct {
  int32_t output_offset; /* output zero point */
  int32_t act_min, act_max;
  int32_t per_channel; /* 0: mult[0], shift[0] serve every output; 1: one per output */
  int32_t fast_requant;
} ek_fc_packed_params;

/* FULLY_CONNECTED with packed weights (filter zero point 0). Rows in blocks of four (the
 * last block padded with zero rows), K rounded up to a multiple of 4 with zeros: for
 * block b and group g, the 4 bytes of rows 4b, 4b+1, 4b+2, 4b+3 at k = 4g..4g+3. */
void ek_fully_connected_packed_s8(const ek_fc_packed_params *params, const int32_t *mult,
                                  const int32_t *shift, int32_t batches, int32_t input_depth,
                                  int32_t output_depth, const int8_t *input,
                                  const int8_t *packed_filter, const int32_t *folded_bias,
                                  int8_t *output);

/* ------------------------------------------------------------------------ */
/* Pooling                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t stride_h, stride_w;
  int32_t filter_h, filter_w;
  int32_t pad_top, pad_left;
  int32_t act_min, act_max;
} ek_pool_params;

/* AVERAGE_POOL_2D, TFLM reference_integer_ops::AveragePool (input and output share
 * their quantization): the sum of the in-bounds values divided by their count,
 * rounded half away from zero, clamped to [act_min, act_max]. Every window must
 * hold at least one in-bounds value. */
void ek_avg_pool2d_s8(const ek_pool_params *params,
                      const ek_dims4 *input_dims, const int8_t *input,
                      const ek_dims4 *output_dims, int8_t *output);

/* MAX_POOL_2D, TFLM reference_integer_ops::MaxPool: the largest in-bounds value
 * (-128 for a window wholly in the padding), clamped to [act_min, act_max]. */
void ek_max_pool2d_s8(const ek_pool_params *params,
                      const ek_dims4 *input_dims, const int8_t *input,
                      const ek_dims4 *output_dims, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Elementwise binary (4-D broadcasting through strides)                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t input1_offset, input2_offset; /* -zero points */
  int32_t left_shift;                   /* 20 for int8 */
  int32_t input1_multiplier, input1_shift; /* shifts <= 0 */
  int32_t input2_multiplier, input2_shift;
  int32_t output_multiplier, output_shift;
  int32_t output_offset;
  int32_t act_min, act_max;
} ek_add_params;

/* ADD, TFLM reference_integer_ops::Add (AddElementwise / BroadcastAdd4DSlow):
 *   a = MBQMSmallerThanOneExp((in1 + input1_offset) << left_shift, m1, s1)
 *   b = MBQMSmallerThanOneExp((in2 + input2_offset) << left_shift, m2, s2)
 *   out = clamp(MBQMSmallerThanOneExp(a + b, m_out, s_out) + output_offset, ...)
 * output_dims is the broadcast shape; in1 element (n,h,w,c) is
 * in1[n*s.n + h*s.h + w*s.w + c*s.c] with s = *in1_strides (0 broadcasts). */
void ek_add_s8(const ek_add_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides,
               int8_t *output);

/* SUB, TFLM reference_ops::Sub for int8: as ek_add_s8 with a - b. Its multipliers
 * are computed from float32 ratios (fixedpoint.sub_multipliers), not ADD's. */
void ek_sub_s8(const ek_add_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides,
               int8_t *output);

typedef struct {
  int32_t input1_offset, input2_offset; /* -zero points */
  int32_t output_multiplier, output_shift;
  int32_t output_offset;
  int32_t act_min, act_max;
} ek_mul_params;

/* MUL, TFLM reference_integer_ops::Mul / BroadcastMul4DSlow:
 *   out = clamp(MBQM((in1 + off1) * (in2 + off2), m, s) + output_offset, ...)
 * Broadcasting as ek_add_s8. */
void ek_mul_s8(const ek_mul_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides,
               int8_t *output);

/* ------------------------------------------------------------------------ */
/* Resampling and transposed convolution                                    */
/* ------------------------------------------------------------------------ */

/* RESIZE_NEAREST_NEIGHBOR, TFLM reference_ops::ResizeNearestNeighbor: output pixel
 * (b, y, x) is input pixel (b, row_index[y], col_index[x]), copied whole. The compiler
 * computes the tables with TFLM's float rule (align_corners, half_pixel_centers).
 * Input and output share their quantization. */
void ek_resize_nearest_s8(const ek_dims4 *input_dims, const int32_t *row_index,
                          const int32_t *col_index, const ek_dims4 *output_dims,
                          const int8_t *input, int8_t *output);

typedef struct {
  int32_t scale_10_h, scale_10_w; /* input / output size in 1/1024 (TFLM's integer rule) */
  int32_t half_pixel_centers;     /* 0 or 1 */
} ek_resize_bilinear_params;

/* RESIZE_BILINEAR, TFLM reference_ops::ResizeBilinearInteger (double rounding):
 * source position p = y * scale_10 (+ scale_10 / 2 - 512 with half-pixel centres),
 * taps y0 = max(p / 1024, 0), y1 = min((p + 1023) / 1024, H - 1) (C division), the four
 * taps weighted in 1/2^20, rounded half away from zero. No requantization. */
void ek_resize_bilinear_s8(const ek_resize_bilinear_params *params, const ek_dims4 *input_dims,
                           const ek_dims4 *output_dims, const int8_t *input, int8_t *output);

/* TRANSPOSE_CONV, TFLM reference_integer_ops::TransposeConv: filter [Cout, KH, KW, Cin];
 * input pixel (iy, ix) adds (input + input_offset) * filter[oc, ky, kx, ic] to output
 * (iy * stride_h - pad_top + ky, ix * stride_w - pad_left + kx, oc) when inside the output;
 * then bias, MBQM(mult[oc], shift[oc]), output_offset and clamp as ek_conv2d_s8. The
 * dilation fields of params are unused (1). Output rows no tap reaches hold the bias. */
void ek_transpose_conv_s8(const ek_conv_params *params, const int32_t *mult, const int32_t *shift,
                          const ek_dims4 *input_dims, const int8_t *input,
                          const ek_dims4 *filter_dims, const int8_t *filter,
                          const int32_t *bias,
                          const ek_dims4 *output_dims, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Data movement                                                            */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t before[4]; /* elements added before each of the 4 dimensions */
  int32_t after[4];  /* and after */
  int32_t value;     /* raw int8 fill value (the output zero point for PAD) */
} ek_pad_params;

/* PAD / PADV2, TFLM reference_ops::Pad on a 4-D tensor: output dimension d is
 * before[d] + input d + after[d]; padded elements hold value. */
void ek_pad_s8(const ek_pad_params *params, const ek_dims4 *input_dims,
               const int8_t *input, int8_t *output);

/* CONCATENATION, TFLM reference_ops::Concatenation: raw byte copies (every input
 * has the output's quantization). With the concatenation axis a, outer_size is
 * the product of the dimensions before a, inner_size of those after a, and
 * axis_sizes[i] is input i's size along a. */
void ek_concatenation_s8(int32_t num_inputs, const int8_t *const *inputs,
                         const int32_t *axis_sizes, int32_t outer_size, int32_t inner_size,
                         int8_t *output);

/* TRANSPOSE, TFLM reference_ops::Transpose on 4-D: output dimension d is input
 * dimension perm[d]. */
void ek_transpose_s8(const ek_dims4 *input_dims, const int32_t *perm,
                     const int8_t *input, int8_t *output);

/* RESHAPE, SQUEEZE and EXPAND_DIMS have no kernel: the bytes are unchanged (the
 * planner aliases the buffers). PACK is ek_concatenation_s8 (each input has size 1
 * along the packed axis). */

typedef struct {
  int32_t begin[4];  /* first input index of each dimension */
  int32_t stride[4]; /* step between selected indices (may be negative) */
  int32_t size[4];   /* number of selected indices = output dimensions */
} ek_slice_params;

/* SLICE / STRIDED_SLICE, TFLM reference_ops::Slice / StridedSlice on 4-D, with the
 * begin/end masks resolved by the compiler: output (i0, i1, i2, i3) = input
 * (begin[0] + i0 * stride[0], ..., begin[3] + i3 * stride[3]). A shrunk axis has
 * size 1 (it only changes the output's shape). Raw copies. */
void ek_slice_s8(const ek_slice_params *params, const ek_dims4 *input_dims,
                 const int8_t *input, int8_t *output);

/* SPLIT / SPLIT_V / UNPACK, TFLM reference_ops::Split / Unpack: the mirror of
 * ek_concatenation_s8. With the split axis a, outer_size is the product of the
 * dimensions before a, inner_size of those after a, and axis_sizes[i] is output i's
 * size along a (1 for UNPACK). Raw copies. */
void ek_split_s8(int32_t num_outputs, int8_t *const *outputs, const int32_t *axis_sizes,
                 int32_t outer_size, int32_t inner_size, const int8_t *input);

typedef struct {
  int32_t batch_size; /* product of the first batch_dims dimensions */
  int32_t outer_size; /* product of the dimensions from batch_dims up to the axis */
  int32_t axis_size;  /* the gathered dimension */
  int32_t inner_size; /* product of the dimensions after the axis */
  int32_t num_indices; /* indices per batch */
} ek_gather_params;

/* GATHER, TFLM gather.cc: for each batch b, outer o and index i, copies the inner
 * block input[b, o, indices[b * num_indices + i], :] (indices are checked against
 * axis_size by the compiler). Raw copies. */
void ek_gather_s8(const ek_gather_params *params, const int32_t *indices,
                  const int8_t *input, int8_t *output);

/* DEPTH_TO_SPACE, TFLM reference_ops::DepthToSpace (NHWC, DCR order). */
void ek_depth_to_space_s8(const ek_dims4 *input_dims, int32_t block_size,
                          const int8_t *input, int8_t *output);

/* SPACE_TO_DEPTH, TFLM reference_ops::SpaceToDepth (NHWC). */
void ek_space_to_depth_s8(const ek_dims4 *input_dims, int32_t block_size,
                          const int8_t *input, int8_t *output);

/* CAST, TFLM cast.cc: static_cast of each raw value (quantization ignored). Float to
 * int8 truncates toward zero, saturates outside [-128, 127] (undefined in C) and maps
 * NaN to 0. */
void ek_cast_s8_f32(int32_t size, const int8_t *input, float *output);
void ek_cast_f32_s8(int32_t size, const float *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Reductions                                                               */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t input_offset;  /* -input zero point */
  int32_t output_offset; /* output zero point */
  int32_t multiplier, shift; /* s_in / s_out folded with 1 / count (see below) */
} ek_mean_params;

/* MEAN, TFLM reference_ops::QuantizedMeanOrSum (mean): reduces the dimensions whose
 * bit is set in axis_mask (bit 0 = n, 1 = h, 2 = w, 3 = c); count is the product of
 * the reduced dimensions:
 *   out = clamp(MBQM(sum + count * input_offset, multiplier, shift) + output_offset,
 *               -128, 127)
 * The compiler folds 1/count into (multiplier, shift) as TFLM does. The output
 * holds the kept dimensions in order (keep_dims does not change the bytes). */
void ek_mean_s8(const ek_mean_params *params, const ek_dims4 *input_dims, int32_t axis_mask,
                const int8_t *input, int8_t *output);

/* SUM has no kernel of its own: it is ek_mean_s8 with (multiplier, shift) the plain
 * double(s_in) / double(s_out) (TFLM's QuantizedMeanOrSum with compute_sum). */

/* REDUCE_MAX, TFLM reduce_common.cc (EvalMinMaxHelper): the raw maximum over the
 * dimensions whose bit is set in axis_mask (as ek_mean_s8); input and output share
 * their quantization. */
void ek_reduce_max_s8(const ek_dims4 *input_dims, int32_t axis_mask, const int8_t *input,
                      int8_t *output);

/* ARG_MAX / ARG_MIN, TFLM arg_min_max.cc: for input [outer_size, axis_size, inner_size],
 * the int32 index along the middle axis of the largest raw value (the smallest when
 * is_min); ties take the lowest index. */
void ek_arg_min_max_s8(int32_t outer_size, int32_t axis_size, int32_t inner_size, int32_t is_min,
                       const int8_t *input, int32_t *output);

/* L2_NORMALIZATION, TFLM reference_integer_ops::L2Normalization: over rows of depth
 * values, acc = sum (x + input_offset)^2, out = clamp(MBQM(x + input_offset, m, s + 7))
 * with (m, s) TFLite's integer inverse square root of acc (GetInvSqrtQuantizedMultiplierExp);
 * output scale 1/128, zero point 0. */
void ek_l2_normalization_s8(int32_t input_offset, int32_t outer_size, int32_t depth,
                            const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Matrix products                                                          */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t lhs_offset;    /* -lhs zero point */
  int32_t rhs_offset;    /* -rhs zero point */
  int32_t output_offset; /* output zero point */
  int32_t multiplier, shift; /* float32(s_lhs * s_rhs) / double(s_out) */
  int32_t adj_x, adj_y;  /* 1: the operand is stored with its last two dimensions swapped */
} ek_batch_matmul_params;

/* BATCH_MATMUL, TFLM batch_matmul.cc (int8): operands as stored, their batch dimensions
 * in n and h (size 1 broadcasts) and the matrix in w x c; the output is
 * [n, h, rows, cols] with rows x depth times depth x cols:
 *   out = clamp(MBQM(sum (lhs + lhs_offset) * (rhs + rhs_offset), m, s) + output_offset) */
void ek_batch_matmul_s8(const ek_batch_matmul_params *params, const ek_dims4 *lhs_dims,
                        const int8_t *lhs, const ek_dims4 *rhs_dims, const int8_t *rhs,
                        const ek_dims4 *output_dims, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Softmax and activations                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t input_multiplier, input_left_shift; /* PreprocessSoftmaxScaling */
  int32_t diff_min;                           /* -CalculateInputRadius(5, left_shift) */
} ek_softmax_params;

/* SOFTMAX, TFLM reference_ops::Softmax (int8 in, int8 out with scale 1/256 and zero
 * point -128): gemmlowp fixed point, exp of the Q5.26 differences to the row
 * maximum, summed in Q12.19, times the reciprocal of the sum. Rows of depth values. */
void ek_softmax_s8(const ek_softmax_params *params, int32_t outer_size, int32_t depth,
                   const int8_t *input, int8_t *output);

typedef struct {
  int32_t input_offset;       /* -input zero point */
  int32_t input_multiplier;   /* input scale * 2^27 as (multiplier, left_shift) */
  int32_t input_left_shift;
  int32_t input_range_radius; /* inputs beyond +-radius saturate */
} ek_sigmoid_params;

/* LOGISTIC, TFLM reference_integer_ops::Logistic: input rescaled to Q4.27, gemmlowp
 * logistic, output scale 1/256, zero point -128. */
void ek_logistic_s8(const ek_sigmoid_params *params, int32_t size,
                    const int8_t *input, int8_t *output);

/* TANH, TFLM reference_integer_ops::Tanh: as LOGISTIC with gemmlowp tanh, output
 * scale 1/128, zero point 0. */
void ek_tanh_s8(const ek_sigmoid_params *params, int32_t size,
                const int8_t *input, int8_t *output);

typedef struct {
  int32_t input_offset;  /* -input zero point */
  int32_t output_offset; /* output zero point */
  int32_t multiplier, shift;
  int32_t act_min, act_max;
} ek_requant_params;

/* RELU, TFLM ReluQuantized: out = clamp(MBQM(in + input_offset, m, s) + output_offset,
 * act_min, act_max) with act_min = max(-128, output zero point), act_max = 127. */
void ek_relu_s8(const ek_requant_params *params, int32_t size,
                const int8_t *input, int8_t *output);

/* RELU6, TFLM Relu6Quantized: clamps the raw values to [act_min, act_max]
 * (the input zero point and the quantized 6); no requantization. */
void ek_relu6_s8(int32_t act_min, int32_t act_max, int32_t size,
                 const int8_t *input, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Quantization                                                             */
/* ------------------------------------------------------------------------ */

/* QUANTIZE float32 -> int8, TFLM reference_ops::AffineQuantize (per tensor):
 * out = clamp(round_half_away(in / scale) + zero_point, -128, 127), the division in
 * float32. NaN quantizes to the zero point. */
void ek_quantize_f32_s8(float scale, int32_t zero_point, int32_t size,
                        const float *input, int8_t *output);

/* QUANTIZE int8 -> int8, TFLM reference_ops::Requantize:
 * out = clamp(MBQM(in + input_offset, m, s) + output_offset, act_min, act_max)
 * (act_min = -128, act_max = 127 for QUANTIZE). */
void ek_requantize_s8(const ek_requant_params *params, int32_t size,
                      const int8_t *input, int8_t *output);

/* DEQUANTIZE int8 -> float32, TFLM reference_ops::Dequantize:
 * out = scale * (float)(in - zero_point), in float32. */
void ek_dequantize_s8_f32(float scale, int32_t zero_point, int32_t size,
                          const int8_t *input, float *output);

/* ------------------------------------------------------------------------ */
/* Recurrent                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
  int32_t batches, steps, input_size, hidden;
  int32_t time_major;     /* 1: input [steps, batches, input_size]; 0: [batches, steps, input_size] */
  int32_t input_offset;   /* -zero point of the input */
  int32_t hidden_offset;  /* -zero point of the hidden state (= the output's) */
  int32_t output_offset;  /* zero point of the output */
  /* per gate (input, forget, cell, output): input and recurrent products -> Q3.12 */
  int32_t input_mult[4], input_shift[4], recurrent_mult[4], recurrent_shift[4];
  int32_t forget_mult, forget_shift;         /* f * c: 2^-15 * s_c / s_c */
  int32_t input_gate_mult, input_gate_shift; /* i * g: 2^-30 / s_c */
  int32_t output_mult, output_shift;         /* o * tanh(c): 2^-30 / s_output */
  int32_t cell_tanh_multiplier, cell_tanh_shift; /* TFLM's tanh input rescale of the cell state */
  int32_t use_clip, cell_clip;               /* clamp the cell state to +-cell_clip when use_clip */
} ek_lstm_params;

/* UNIDIRECTIONAL_SEQUENCE_LSTM, TFLM lstm_eval (8-bit activations, 8-bit weights,
 * 16-bit cell state; double-rounding MBQM), states starting at zero. Per step and
 * gate: sat16(clamp16(MBQM(W x + b)) + clamp16(MBQM(R h))) -> 16-bit LUT sigmoid/tanh
 * (Q0.15); c = sat16(MBQM(f c) + MBQM(i g)) (clipped); h = MBQM(o tanh(c)) + zp -> int8,
 * written to the output row of the step (the hidden state is read back from there).
 * input_weights [4][hidden][input_size], recurrent_weights [4][hidden][hidden], bias
 * [4][hidden], gates in the order input, forget, cell, output. output must not
 * overlap input. Stack: 2 * hidden bytes (the cell state). */
void ek_lstm_s8(const ek_lstm_params *params, const int8_t *input, const int8_t *input_weights,
                const int8_t *recurrent_weights, const int32_t *bias, int8_t *output);

typedef struct {
  int32_t batches, input_size, features, rank;
  int32_t input_offset;                /* -zero point of the input */
  int32_t feature_mult, feature_shift; /* W_f x -> int16 state: float32(s_x * s_wf) / s_state */
  int32_t output_mult, output_shift;   /* -> output: float32(s_state * s_wt) / s_output */
  int32_t output_offset;               /* zero point of the output */
} ek_svdf_params;

/* SVDF, TFLM EvalIntegerSvdfReference on a zero state (edgekit's IR starts every
 * invocation from a zero state): per filter f, state = clamp16(MBQM(sum_k wf[f, k] *
 * (x[k] + input_offset))); per unit u, acc = bias[u] + sum over its rank filters of
 * state * time_weights_last[f] (int32, wrapping); out = clamp8(MBQM(acc) + output_offset).
 * No fused activation (as in TFLM's integer path). time_weights_last holds the last
 * column of the int16 weights_time, widened to int32. */
void ek_svdf_s8(const ek_svdf_params *params, const int8_t *input, const int8_t *weights_feature,
                const int32_t *time_weights_last, const int32_t *bias, int8_t *output);

/* ------------------------------------------------------------------------ */
/* Elementwise (HARD_SWISH ... SQUARED_DIFFERENCE)                          */
/* ------------------------------------------------------------------------ */

/* Unary int8 ops by table: output[i] = table[input[i] + 128]. The compiler fills the
 * 256-byte table from the reference kernel of HARD_SWISH, LEAKY_RELU, ABS, NEG, EXP,
 * LOG, SQRT, RSQRT or GELU for the tensors' quantization. */
void ek_lut_s8(const int8_t *table, int32_t size, const int8_t *input, int8_t *output);

/* MAXIMUM / MINIMUM, TFLM MaximumMinimumBroadcast: raw compare of the broadcast
 * operands (inputs and output share their quantization); strides as ek_add_s8. */
void ek_maximum_s8(const ek_dims4 *output_dims, const int8_t *in1, const ek_strides4 *in1_strides,
                   const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output);
void ek_minimum_s8(const ek_dims4 *output_dims, const int8_t *in1, const ek_strides4 *in1_strides,
                   const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output);

typedef struct {
  int32_t input_offset, alpha_offset; /* -zero points */
  int32_t output_offset;
  int32_t output_multiplier_1, output_shift_1; /* s_in / s_out (x >= zp_in) */
  int32_t output_multiplier_2, output_shift_2; /* s_in * s_alpha / s_out */
} ek_prelu_params;

/* PRELU, TFLM BroadcastPrelu4DSlow: alpha broadcast against the input through
 * alpha_strides (0 along broadcast dimensions). */
void ek_prelu_s8(const ek_prelu_params *params, const ek_dims4 *output_dims, const int8_t *input,
                 const ek_strides4 *input_strides, const int8_t *alpha, const ek_strides4 *alpha_strides,
                 int8_t *output);

/* SQUARED_DIFFERENCE, TFLM: the ek_add_params of its PrepareQuantized (left_shift 7,
 * act_min -128, act_max 127). */
void ek_squared_difference_s8(const ek_add_params *params, const ek_dims4 *output_dims,
                              const int8_t *in1, const ek_strides4 *in1_strides,
                              const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output);

/* DIV, TFLM DivElementwise, with ek_mul_params holding s1 / (s2 * s_out). */
void ek_div_s8(const ek_mul_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKIT_KERNELS_H */
