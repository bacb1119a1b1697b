/* QUANTIZE int8 -> int8, portable reference (TFLM reference_ops::Requantize). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_requantize_s8(const ek_requant_params *p, int32_t size,
                      const int8_t *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    const int32_t v = ek_mbqm((int32_t)input[i] + p->input_offset, p->multiplier, p->shift) +
                      p->output_offset;
    output[i] = (int8_t)ek_clamp(v, p->act_min, p->act_max);
  }
}
