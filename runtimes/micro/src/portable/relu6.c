/* RELU6 int8, portable reference (TFLM Relu6Quantized): a clamp of the raw values. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_relu6_s8(int32_t act_min, int32_t act_max, int32_t size,
                 const int8_t *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    output[i] = (int8_t)ek_clamp(input[i], act_min, act_max);
  }
}
