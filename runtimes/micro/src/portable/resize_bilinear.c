/* RESIZE_BILINEAR int8, portable reference (TFLM reference_ops::ResizeBilinearInteger,
 * double-rounding build). Positions are in 1/1024 steps; the four weights sum to 2^20, so
 * |sum| <= 128 * 2^20 fits int32 (TFLM's int64 holds the same values). */
#include "edgekit/kernels.h"

static void positions(int32_t v, int32_t scale_10, int32_t half_pixel, int32_t size,
                      int32_t *pos, int32_t *lo, int32_t *hi) {
  int32_t p = v * scale_10;
  if (half_pixel) {
    p += scale_10 / 2 - (1 << 9);
  }
  *pos = p;
  /* C division truncates, as TFLM's; the upper clamp of lo never acts on TFLite's sizes
   * (it keeps a hostile model package inside the input) */
  *lo = p / 1024 > 0 ? (p / 1024 < size - 1 ? p / 1024 : size - 1) : 0;
  *hi = (p + 1023) / 1024 < size - 1 ? (p + 1023) / 1024 : size - 1;
}

void ek_resize_bilinear_s8(const ek_resize_bilinear_params *p, const ek_dims4 *in,
                           const ek_dims4 *out, const int8_t *input, int8_t *output) {
  const int32_t depth = in->c;
  int32_t b, y, x, c;
  for (b = 0; b < out->n; b++) {
    const int8_t *batch = input + b * in->h * in->w * depth;
    for (y = 0; y < out->h; y++) {
      int32_t py, y0, y1, fy;
      positions(y, p->scale_10_h, p->half_pixel_centers, in->h, &py, &y0, &y1);
      fy = py - 1024 * y0;
      for (x = 0; x < out->w; x++) {
        int32_t px, x0, x1, fx;
        const int8_t *r00, *r10, *r01, *r11;
        positions(x, p->scale_10_w, p->half_pixel_centers, in->w, &px, &x0, &x1);
        fx = px - 1024 * x0;
        r00 = batch + (y0 * in->w + x0) * depth;
        r10 = batch + (y1 * in->w + x0) * depth;
        r01 = batch + (y0 * in->w + x1) * depth;
        r11 = batch + (y1 * in->w + x1) * depth;
        for (c = 0; c < depth; c++) {
          const int32_t acc = (int32_t)r00[c] * (1024 - fy) * (1024 - fx) +
                              (int32_t)r10[c] * fy * (1024 - fx) +
                              (int32_t)r01[c] * (1024 - fy) * fx + (int32_t)r11[c] * fy * fx;
          const int32_t round = acc > 0 ? (1 << 19) : -(1 << 19);
          *output++ = (int8_t)((acc + round) / (1 << 20));
        }
      }
    }
  }
}
