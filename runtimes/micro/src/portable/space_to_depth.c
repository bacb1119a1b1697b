/* SPACE_TO_DEPTH int8 (NHWC), portable reference (TFLM reference_ops::SpaceToDepth):
 * output (b, y, x, ((dy * bs) + dx) * C + c) = input (b, y * bs + dy, x * bs + dx, c).
 * Raw copies, shared quantization. */
#include <string.h>

#include "edgekit/kernels.h"

void ek_space_to_depth_s8(const ek_dims4 *in, int32_t block_size, const int8_t *input,
                          int8_t *output) {
  const int32_t out_h = in->h / block_size, out_w = in->w / block_size;
  const int32_t c = in->c;
  int32_t b, y, x, dy, dx;
  for (b = 0; b < in->n; b++) {
    for (y = 0; y < out_h; y++) {
      for (x = 0; x < out_w; x++) {
        for (dy = 0; dy < block_size; dy++) {
          for (dx = 0; dx < block_size; dx++) {
            const int32_t iy = y * block_size + dy, ix = x * block_size + dx;
            memcpy(output, input + ((b * in->h + iy) * in->w + ix) * c, (size_t)c);
            output += c;
          }
        }
      }
    }
  }
}
