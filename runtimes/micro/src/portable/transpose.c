/* TRANSPOSE int8 on 4-D tensors, portable reference (TFLM reference_ops::Transpose). */
#include "edgekit/kernels.h"

void ek_transpose_s8(const ek_dims4 *in, const int32_t *perm,
                     const int8_t *input, int8_t *output) {
  const int32_t in_dims[4] = {in->n, in->h, in->w, in->c};
  const int32_t in_strides[4] = {in->h * in->w * in->c, in->w * in->c, in->c, 1};
  int32_t d[4], s[4];
  int32_t i0, i1, i2, i3, k;
  for (k = 0; k < 4; k++) {
    d[k] = in_dims[perm[k]];
    s[k] = in_strides[perm[k]];
  }
  for (i0 = 0; i0 < d[0]; i0++) {
    for (i1 = 0; i1 < d[1]; i1++) {
      for (i2 = 0; i2 < d[2]; i2++) {
        const int8_t *src = input + i0 * s[0] + i1 * s[1] + i2 * s[2];
        for (i3 = 0; i3 < d[3]; i3++) {
          *output++ = src[i3 * s[3]];
        }
      }
    }
  }
}
