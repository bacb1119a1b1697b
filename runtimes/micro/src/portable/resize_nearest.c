/* RESIZE_NEAREST_NEIGHBOR int8, portable reference (TFLM reference_ops::ResizeNearestNeighbor).
 * The compiler computes TFLM's float index rule once per row and column (the tables), so the
 * kernel is a copy of whole pixels. It copies byte by byte, in order (not memcpy): the
 * memory planner may place the output over the input, shifted (edgekit/memory). */
#include "edgekit/kernels.h"

void ek_resize_nearest_s8(const ek_dims4 *in, const int32_t *row_index, const int32_t *col_index,
                          const ek_dims4 *out, const int8_t *input, int8_t *output) {
  const int32_t depth = in->c;
  int32_t b, y, x;
  for (b = 0; b < out->n; b++) {
    const int8_t *batch = input + b * in->h * in->w * depth;
    for (y = 0; y < out->h; y++) {
      const int8_t *row = batch + row_index[y] * in->w * depth;
      for (x = 0; x < out->w; x++) {
        const int8_t *src = row + col_index[x] * depth;
        int32_t c;
        for (c = 0; c < depth; c++) {
          *output++ = src[c];
        }
      }
    }
  }
}
