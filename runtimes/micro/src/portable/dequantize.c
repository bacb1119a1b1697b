/* DEQUANTIZE int8 -> float32, portable reference (TFLM reference_ops::Dequantize). */
#include "edgekit/kernels.h"

void ek_dequantize_s8_f32(float scale, int32_t zero_point, int32_t size,
                          const int8_t *input, float *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    output[i] = scale * (float)((int32_t)input[i] - zero_point);
  }
}
