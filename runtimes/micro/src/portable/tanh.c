/* TANH int8, portable reference (TFLM reference_integer_ops::Tanh):
 * output scale 1/128, zero point 0. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_tanh_s8(const ek_sigmoid_params *p, int32_t size,
                const int8_t *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    const int32_t x = (int32_t)input[i] + p->input_offset;
    int32_t v;
    if (x <= -p->input_range_radius) {
      v = -128;
    } else if (x >= p->input_range_radius) {
      v = 127;
    } else {
      const int32_t q4 = ek_mbqm(x, p->input_multiplier, p->input_left_shift); /* Q4.27 */
      const int32_t q0 = ek_tanh_q(q4, 4);                                     /* Q0.31 */
      v = ek_clamp(ek_rdbp(q0, 24), -128, 127);
    }
    output[i] = (int8_t)v;
  }
}
