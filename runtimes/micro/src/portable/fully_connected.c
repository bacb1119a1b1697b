/* FULLY_CONNECTED int8, portable reference (TFLM reference_integer_ops::FullyConnected
 * and FullyConnectedPerChannel, double-rounding requantization). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_fully_connected_s8(const ek_fc_params *p, const int32_t *mult, const int32_t *shift,
                           int32_t batches, int32_t input_depth, int32_t output_depth,
                           const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output) {
  int32_t b, o, k;
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * input_depth;
    for (o = 0; o < output_depth; o++) {
      const int8_t *w = filter + o * input_depth;
      const int32_t q = p->per_channel ? o : 0;
      int32_t acc = 0;
      for (k = 0; k < input_depth; k++) {
        acc += ((int32_t)w[k] + p->filter_offset) * ((int32_t)x[k] + p->input_offset);
      }
      if (bias != 0) {
        acc = ek_wrap_add(acc, bias[o]);
      }
      acc = ek_mbqm(acc, mult[q], shift[q]) + p->output_offset;
      *output++ = (int8_t)ek_clamp(acc, p->act_min, p->act_max);
    }
  }
}
