/* ARG_MAX / ARG_MIN int8, portable reference (TFLM arg_min_max.cc): the index along the
 * reduced axis of the largest (smallest when is_min) raw value; ties take the lowest
 * index. The input is [outer_size, axis_size, inner_size]; the output int32 indices
 * [outer_size, inner_size]. */
#include "edgekit/kernels.h"

void ek_arg_min_max_s8(int32_t outer_size, int32_t axis_size, int32_t inner_size, int32_t is_min,
                       const int8_t *input, int32_t *output) {
  int32_t o, a, i;
  for (o = 0; o < outer_size; o++) {
    const int8_t *x = input + o * axis_size * inner_size;
    for (i = 0; i < inner_size; i++) {
      int32_t best = x[i];
      int32_t best_index = 0;
      for (a = 1; a < axis_size; a++) {
        const int32_t v = x[a * inner_size + i];
        if (is_min ? v < best : v > best) {
          best = v;
          best_index = a;
        }
      }
      output[o * inner_size + i] = best_index;
    }
  }
}
