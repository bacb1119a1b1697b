/* CAST float32 -> int8, portable reference (TFLM cast.cc: static_cast of each
 * element; quantization parameters are ignored). Float to int8 truncates toward
 * zero; a value outside [-128, 127] (undefined in C) saturates and NaN gives 0, as
 * edgekit.reference.movement_kernels.cast defines it. */
#include "edgekit/kernels.h"

void ek_cast_f32_s8(int32_t size, const float *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    const float v = input[i];
    if (!(v == v)) {
      output[i] = 0;
    } else if (v >= 127.0f) {
      output[i] = 127;
    } else if (v <= -128.0f) {
      output[i] = -128;
    } else {
      output[i] = (int8_t)v;
    }
  }
}
