/* CAST int8 -> float32, portable reference (TFLM cast.cc: static_cast of each
 * element; quantization parameters are ignored). */
#include "edgekit/kernels.h"

void ek_cast_s8_f32(int32_t size, const int8_t *input, float *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    output[i] = (float)input[i];
  }
}
