/* Unary int8 elementwise ops by table lookup: HARD_SWISH, LEAKY_RELU, ABS, NEG, EXP, LOG,
 * SQRT, RSQRT, GELU. Each is a function of the input byte alone; the compiler computes
 * its 256 outputs with the reference kernel (TFLM's arithmetic, or LiteRT's table rule),
 * so this kernel is bit-exact with it by construction. */
#include "edgekit/kernels.h"

void ek_lut_s8(const int8_t *table, int32_t size, const int8_t *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    output[i] = table[(int32_t)input[i] + 128];
  }
}
