/* CONCATENATION int8, portable reference (TFLM reference_ops::Concatenation):
 * raw copies, the inputs share the output's quantization. */
#include <string.h>

#include "edgekit/kernels.h"

void ek_concatenation_s8(int32_t num_inputs, const int8_t *const *inputs,
                         const int32_t *axis_sizes, int32_t outer_size, int32_t inner_size,
                         int8_t *output) {
  int32_t o, i;
  for (o = 0; o < outer_size; o++) {
    for (i = 0; i < num_inputs; i++) {
      const int32_t chunk = axis_sizes[i] * inner_size;
      memcpy(output, inputs[i] + o * chunk, (size_t)chunk);
      output += chunk;
    }
  }
}
