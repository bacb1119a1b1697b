/* GATHER int8, portable reference (TFLM gather.cc, Gather): raw copies of whole
 * inner blocks, the output shares the input's quantization. */
#include <string.h>

#include "edgekit/kernels.h"

void ek_gather_s8(const ek_gather_params *params, const int32_t *indices,
                  const int8_t *input, int8_t *output) {
  const int32_t inner = params->inner_size;
  const int32_t axis = params->axis_size;
  int32_t b, o, i;
  for (b = 0; b < params->batch_size; b++) {
    const int32_t *idx = indices + b * params->num_indices;
    for (o = 0; o < params->outer_size; o++) {
      const int8_t *src = input + (b * params->outer_size + o) * axis * inner;
      for (i = 0; i < params->num_indices; i++) {
        memcpy(output, src + idx[i] * inner, (size_t)inner);
        output += inner;
      }
    }
  }
}
