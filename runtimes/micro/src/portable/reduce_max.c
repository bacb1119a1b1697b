/* REDUCE_MAX int8 over axes of a 4-D tensor, portable reference (TFLM reduce_common.cc,
 * EvalMinMaxHelper): the raw maximum (input and output share their quantization). */
#include "edgekit/kernels.h"

void ek_reduce_max_s8(const ek_dims4 *in, int32_t axis_mask, const int8_t *input, int8_t *output) {
  const int32_t dims[4] = {in->n, in->h, in->w, in->c};
  const int32_t strides[4] = {in->h * in->w * in->c, in->w * in->c, in->c, 1};
  int32_t outer[4], inner[4];
  int32_t k, o0, o1, o2, o3, r0, r1, r2, r3;
  for (k = 0; k < 4; k++) {
    const int32_t reduced = (axis_mask >> k) & 1;
    outer[k] = reduced ? 1 : dims[k];
    inner[k] = reduced ? dims[k] : 1;
  }
  for (o0 = 0; o0 < outer[0]; o0++) {
    for (o1 = 0; o1 < outer[1]; o1++) {
      for (o2 = 0; o2 < outer[2]; o2++) {
        for (o3 = 0; o3 < outer[3]; o3++) {
          const int8_t *base = input + o0 * strides[0] + o1 * strides[1] + o2 * strides[2] + o3;
          int8_t best = -128;
          for (r0 = 0; r0 < inner[0]; r0++) {
            for (r1 = 0; r1 < inner[1]; r1++) {
              for (r2 = 0; r2 < inner[2]; r2++) {
                const int8_t *row = base + r0 * strides[0] + r1 * strides[1] + r2 * strides[2];
                for (r3 = 0; r3 < inner[3]; r3++) {
                  if (row[r3] > best) {
                    best = row[r3];
                  }
                }
              }
            }
          }
          *output++ = best;
        }
      }
    }
  }
}
