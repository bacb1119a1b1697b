/* FULLY_CONNECTED int8 with packed weights and folded bias, portable reference: the
 * bytes of ek_fully_connected_s8 with filter offset 0 (TFLM FullyConnected /
 * FullyConnectedPerChannel) from the operands the compiler packed (layout: kernels.h). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_fully_connected_packed_s8(const ek_fc_packed_params *p, const int32_t *mult,
                                  const int32_t *shift, int32_t batches, int32_t input_depth,
                                  int32_t output_depth, const int8_t *input,
                                  const int8_t *packed_filter, const int32_t *folded_bias,
                                  int8_t *output) {
  const int32_t kp = (input_depth + 3) & ~3;
  int32_t b, o, k;
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * input_depth;
    for (o = 0; o < output_depth; o++) {
      const int8_t *block = packed_filter + (o >> 2) * 4 * kp + (o & 3) * 4;
      const int32_t q = p->per_channel ? o : 0;
      int32_t acc = folded_bias[o];
      for (k = 0; k < input_depth; k++) {
        acc = ek_wrap_add(acc, (int32_t)block[(k >> 2) * 16 + (k & 3)] * (int32_t)x[k]);
      }
      acc = ek_mbqm(acc, mult[q], shift[q]) + p->output_offset;
      *output++ = (int8_t)ek_clamp(acc, p->act_min, p->act_max);
    }
  }
}
