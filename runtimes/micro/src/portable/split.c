/* SPLIT / SPLIT_V / UNPACK int8, portable reference (TFLM reference_ops::Split,
 * Unpack): raw copies, every output shares the input's quantization. */
#include <string.h>

#include "edgekit/kernels.h"

void ek_split_s8(int32_t num_outputs, int8_t *const *outputs, const int32_t *axis_sizes,
                 int32_t outer_size, int32_t inner_size, const int8_t *input) {
  int32_t o, i;
  for (o = 0; o < outer_size; o++) {
    for (i = 0; i < num_outputs; i++) {
      const int32_t chunk = axis_sizes[i] * inner_size;
      memcpy(outputs[i] + o * chunk, input, (size_t)chunk);
      input += chunk;
    }
  }
}
