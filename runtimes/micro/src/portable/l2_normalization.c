/* L2_NORMALIZATION int8 over the last axis, portable reference
 * (TFLM reference_integer_ops::L2Normalization): acc = sum (x + input_offset)^2, the
 * integer inverse square root of TFLite's GetInvSqrtQuantizedMultiplierExp, output
 * scale 1/128 and zero point 0. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

/* 1/sqrt(acc) as (multiplier, left shift): gemmlowp Q3.28 Newton-Raphson, 5 steps. */
static void inv_sqrt(int32_t acc, int32_t *multiplier, int32_t *shift) {
  int32_t out_shift = 11;
  int32_t pairs, half_input, x, i;
  if (acc <= 1) {
    *multiplier = EK_INT32_MAX;
    *shift = 0;
    return;
  }
  while (acc >= (1 << 29)) {
    acc /= 4;
    out_shift++;
  }
  pairs = (ek_clz32((uint32_t)acc) - 1) / 2 - 1;
  out_shift -= pairs;
  acc <<= 2 * pairs;
  half_input = ek_rdbp(acc >> 1, 1);
  x = 1 << 28; /* 1.0 in Q3.28 */
  for (i = 0; i < 5; i++) {
    const int32_t x3 = ek_sat_shl(ek_srdhm(ek_srdhm(x, x), x), 6);
    const int32_t a = ek_srdhm((1 << 28) + (1 << 27), x); /* 1.5 * x */
    const int32_t b = ek_srdhm(half_input, x3);
    x = ek_sat_shl(ek_wrap_sub(a, b), 3);
  }
  x = ek_srdhm(x, 1518500250); /* sqrt(2) / 2 in Q0.31 */
  if (out_shift < 0) {
    x = ek_wrap_shl(x, -out_shift);
    out_shift = 0;
  }
  *multiplier = x;
  *shift = -out_shift;
}

void ek_l2_normalization_s8(int32_t input_offset, int32_t outer_size, int32_t depth,
                            const int8_t *input, int8_t *output) {
  int32_t r, c;
  for (r = 0; r < outer_size; r++) {
    const int8_t *x = input + r * depth;
    int32_t acc = 0, multiplier, shift;
    for (c = 0; c < depth; c++) {
      const int32_t v = x[c] + input_offset;
      acc = ek_wrap_add(acc, v * v);
    }
    inv_sqrt(acc, &multiplier, &shift);
    for (c = 0; c < depth; c++) {
      const int32_t v = ek_mbqm(x[c] + input_offset, multiplier, shift + 7);
      output[r * depth + c] = (int8_t)ek_clamp(v, -128, 127);
    }
  }
}
