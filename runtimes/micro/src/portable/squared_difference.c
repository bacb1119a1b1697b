/* SQUARED_DIFFERENCE int8, TFLM: both inputs shifted left by left_shift (7), rescaled
 * to twice the larger input scale, subtracted, squared in int32, rescaled to the output. */
#include "edgekit/kernels.h"

#include "elementwise_binary.h"
#include "fixedpoint.h"

static int32_t sqdiff_one(const ek_add_params *p, int32_t a, int32_t b) {
  const int32_t sa = ek_mbqm_smaller_than_one((a + p->input1_offset) * (1 << p->left_shift),
                                              p->input1_multiplier, p->input1_shift);
  const int32_t sb = ek_mbqm_smaller_than_one((b + p->input2_offset) * (1 << p->left_shift),
                                              p->input2_multiplier, p->input2_shift);
  const int32_t d = sa - sb;
  const int32_t v = ek_mbqm(d * d, p->output_multiplier, p->output_shift) + p->output_offset;
  return ek_clamp(v, p->act_min, p->act_max);
}

void ek_squared_difference_s8(const ek_add_params *params, const ek_dims4 *output_dims,
                              const int8_t *in1, const ek_strides4 *in1_strides,
                              const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output) {
  EK_BINARY_WALK(output_dims, in1, in1_strides, in2, in2_strides, output, sqdiff_one(params, a, b));
}
