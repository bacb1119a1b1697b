/* SLICE / STRIDED_SLICE int8 on 4-D tensors, portable reference (TFLM
 * reference_ops::Slice and reference_ops::StridedSlice): raw copies, the output
 * shares the input's quantization. */
#include "edgekit/kernels.h"

void ek_slice_s8(const ek_slice_params *params, const ek_dims4 *in,
                 const int8_t *input, int8_t *output) {
  const int32_t in_strides[4] = {in->h * in->w * in->c, in->w * in->c, in->c, 1};
  int32_t step[4];
  int32_t i0, i1, i2, i3, k;
  const int8_t *base = input;
  for (k = 0; k < 4; k++) {
    base += params->begin[k] * in_strides[k];
    step[k] = params->stride[k] * in_strides[k];
  }
  for (i0 = 0; i0 < params->size[0]; i0++) {
    for (i1 = 0; i1 < params->size[1]; i1++) {
      for (i2 = 0; i2 < params->size[2]; i2++) {
        const int8_t *src = base + i0 * step[0] + i1 * step[1] + i2 * step[2];
        for (i3 = 0; i3 < params->size[3]; i3++) {
          *output++ = src[i3 * step[3]];
        }
      }
    }
  }
}
