/* PRELU int8, TFLM BroadcastPrelu4DSlow: x >= zp_in is rescaled by s_in / s_out,
 * otherwise (x - zp_in) * (alpha - zp_alpha) by s_in * s_alpha / s_out. */
#include "edgekit/kernels.h"

#include "elementwise_binary.h"
#include "fixedpoint.h"

static int32_t prelu_one(const ek_prelu_params *p, int32_t x, int32_t alpha) {
  const int32_t v = x + p->input_offset;
  int32_t out;
  if (v >= 0) {
    out = ek_mbqm(v, p->output_multiplier_1, p->output_shift_1);
  } else {
    out = ek_mbqm(v * (alpha + p->alpha_offset), p->output_multiplier_2, p->output_shift_2);
  }
  return ek_clamp(out + p->output_offset, -128, 127);
}

void ek_prelu_s8(const ek_prelu_params *params, const ek_dims4 *output_dims, const int8_t *input,
                 const ek_strides4 *input_strides, const int8_t *alpha, const ek_strides4 *alpha_strides,
                 int8_t *output) {
  EK_BINARY_WALK(output_dims, input, input_strides, alpha, alpha_strides, output, prelu_one(params, a, b));
}
