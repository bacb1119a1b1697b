/* SOFTMAX int8 -> int8, portable reference (TFLM reference_ops::Softmax, quantized):
 * gemmlowp fixed point, output scale 1/256 and zero point -128. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

enum { kScaledDiffIntegerBits = 5, kAccumulationIntegerBits = 12 };

static int32_t exp_of_diff(const ek_softmax_params *p, int32_t diff) {
  const int32_t rescaled = ek_mbqm_greater_than_one(diff, p->input_multiplier, p->input_left_shift);
  return ek_exp_on_negative_values(rescaled, kScaledDiffIntegerBits);
}

void ek_softmax_s8(const ek_softmax_params *p, int32_t outer_size, int32_t depth,
                   const int8_t *input, int8_t *output) {
  int32_t r, c;
  for (r = 0; r < outer_size; r++) {
    const int8_t *x = input + r * depth;
    int8_t *y = output + r * depth;
    int32_t max_in_row = -128;
    int32_t sum_of_exps = 0; /* Q12.19 */
    int32_t num_bits_over_unit, shifted_scale, exponent;
    for (c = 0; c < depth; c++) {
      if (x[c] > max_in_row) {
        max_in_row = x[c];
      }
    }
    for (c = 0; c < depth; c++) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) {
        /* Rescale<12> from Q0.31 to Q12.19. */
        sum_of_exps = ek_wrap_add(sum_of_exps,
                                  ek_rdbp(exp_of_diff(p, diff), kAccumulationIntegerBits));
      }
    }
    shifted_scale = ek_get_reciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
    exponent = num_bits_over_unit + 31 - 8;
    for (c = 0; c < depth; c++) {
      const int32_t diff = x[c] - max_in_row;
      if (diff >= p->diff_min) {
        const int32_t prod = ek_srdhm(shifted_scale, exp_of_diff(p, diff));
        /* prod >= 0; past 31 bits of shift the rounded quotient is 0. */
        const int32_t unsat = exponent > 31 ? 0 : ek_rdbp(prod, exponent);
        y[c] = (int8_t)ek_clamp(unsat - 128, -128, 127);
      } else {
        y[c] = -128;
      }
    }
  }
}
