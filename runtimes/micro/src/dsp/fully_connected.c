/* FULLY_CONNECTED int8, Armv7E-M DSP variant: the portable kernel's semantics
 * (TFLM FullyConnected / FullyConnectedPerChannel, double rounding) with SMLAD dot
 * products, two output rows at a time. The filter offset is applied once per
 * batch row: sum_k (w + fo)(x + io) = sum_k w (x + io) + fo * sum_k (x + io),
 * an identity of int32 arithmetic mod 2^32. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "simd.h"

static int8_t requantize_one(int32_t acc, int32_t input_sum, const int32_t *bias, int32_t o,
                             const int32_t *mult, const int32_t *shift, const ek_fc_params *p) {
  const int32_t q = p->per_channel ? o : 0;
  acc = ek_wrap_add(acc, (int32_t)((uint32_t)p->filter_offset * (uint32_t)input_sum));
  if (bias != 0) {
    acc = ek_wrap_add(acc, bias[o]);
  }
  acc = ek_mbqm(acc, mult[q], shift[q]) + p->output_offset;
  return (int8_t)ek_clamp(acc, p->act_min, p->act_max);
}

void ek_fully_connected_s8(const ek_fc_params *p, const int32_t *mult, const int32_t *shift,
                           int32_t batches, int32_t input_depth, int32_t output_depth,
                           const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output) {
  const int32_t io = p->input_offset;
  const int16x2_t off2 = ek_dup16(io);
  int32_t b, o, k;
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * input_depth;
    int32_t input_sum = 0; /* sum_k (x + io), needed only with a filter offset */
    if (p->filter_offset != 0) {
      for (k = 0; k < input_depth; k++) {
        input_sum += (int32_t)x[k] + io;
      }
    }
    for (o = 0; o + 2 <= output_depth; o += 2) {
      int32_t acc0 = 0, acc1 = 0;
      ek_dot2_s8(x, filter + o * input_depth, filter + (o + 1) * input_depth, input_depth, io,
                 off2, &acc0, &acc1);
      output[o] = requantize_one(acc0, input_sum, bias, o, mult, shift, p);
      output[o + 1] = requantize_one(acc1, input_sum, bias, o + 1, mult, shift, p);
    }
    if (o < output_depth) {
      const int32_t acc = ek_dot1_s8(x, filter + o * input_depth, input_depth, io, off2, 0);
      output[o] = requantize_one(acc, input_sum, bias, o, mult, shift, p);
    }
    output += output_depth;
  }
}
