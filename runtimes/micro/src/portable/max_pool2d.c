/* MAX_POOL_2D int8, portable reference (TFLM reference_integer_ops::MaxPool). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_max_pool2d_s8(const ek_pool_params *p,
                      const ek_dims4 *in, const int8_t *input,
                      const ek_dims4 *out, int8_t *output) {
  const int32_t c_count = in->c;
  int32_t b, y, x, c, ky, kx;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      const int32_t ky_start = in_y0 < 0 ? -in_y0 : 0;
      const int32_t ky_end = in->h - in_y0 < p->filter_h ? in->h - in_y0 : p->filter_h;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        const int32_t kx_start = in_x0 < 0 ? -in_x0 : 0;
        const int32_t kx_end = in->w - in_x0 < p->filter_w ? in->w - in_x0 : p->filter_w;
        for (c = 0; c < c_count; c++) {
          int32_t best = -128;
          for (ky = ky_start; ky < ky_end; ky++) {
            const int8_t *row = input + (b * in->h + in_y0 + ky) * in->w * c_count + c;
            for (kx = kx_start; kx < kx_end; kx++) {
              if (row[(in_x0 + kx) * c_count] > best) {
                best = row[(in_x0 + kx) * c_count];
              }
            }
          }
          *output++ = (int8_t)ek_clamp(best, p->act_min, p->act_max);
        }
      }
    }
  }
}
