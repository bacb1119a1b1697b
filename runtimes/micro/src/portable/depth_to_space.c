/* DEPTH_TO_SPACE int8 (NHWC), portable reference (TFLM reference_ops::DepthToSpace):
 * output (b, y, x, c) = input (b, y / bs, x / bs, ((y % bs) * bs + x % bs) * C + c)
 * with C the output depth. Raw copies, shared quantization. */
#include <string.h>

#include "edgekit/kernels.h"

void ek_depth_to_space_s8(const ek_dims4 *in, int32_t block_size, const int8_t *input,
                          int8_t *output) {
  const int32_t out_c = in->c / (block_size * block_size);
  const int32_t out_h = in->h * block_size, out_w = in->w * block_size;
  int32_t b, y, x;
  for (b = 0; b < in->n; b++) {
    for (y = 0; y < out_h; y++) {
      for (x = 0; x < out_w; x++) {
        const int32_t in_y = y / block_size, in_x = x / block_size;
        const int32_t d = ((y % block_size) * block_size + x % block_size) * out_c;
        memcpy(output, input + ((b * in->h + in_y) * in->w + in_x) * in->c + d, (size_t)out_c);
        output += out_c;
      }
    }
  }
}
