/* TRANSPOSE_CONV int8, portable reference (TFLM reference_integer_ops::TransposeConv).
 * TFLM scatters each input pixel into an int32 scratch buffer the size of the output; this
 * kernel gathers instead (for each output, the input pixels whose taps reach it), which needs
 * no scratch and gives the same int32 sums: integer addition does not depend on the order. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_transpose_conv_s8(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                          const ek_dims4 *in, const int8_t *input,
                          const ek_dims4 *fd, const int8_t *filter,
                          const int32_t *bias,
                          const ek_dims4 *out, int8_t *output) {
  const int32_t cin = in->c;
  const int32_t kh = fd->h;
  const int32_t kw = fd->w;
  int32_t b, y, x, oc, ky, kx, ic;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      for (x = 0; x < out->w; x++) {
        for (oc = 0; oc < out->c; oc++) {
          int32_t acc = 0;
          /* the taps that land on row y: ky = y + pad_top - iy * stride_h, so every
           * stride_h-th one from (y + pad_top) mod stride_h, with iy falling from there */
          for (ky = (y + p->pad_top) % p->stride_h; ky < kh; ky += p->stride_h) {
            const int32_t iy = (y + p->pad_top - ky) / p->stride_h;
            if (iy < 0) {
              break;
            }
            if (iy >= in->h) {
              continue;
            }
            for (kx = (x + p->pad_left) % p->stride_w; kx < kw; kx += p->stride_w) {
              const int32_t ix = (x + p->pad_left - kx) / p->stride_w;
              const int8_t *px;
              const int8_t *f;
              if (ix < 0) {
                break;
              }
              if (ix >= in->w) {
                continue;
              }
              px = input + ((b * in->h + iy) * in->w + ix) * cin;
              f = filter + ((oc * kh + ky) * kw + kx) * cin;
              for (ic = 0; ic < cin; ic++) {
                acc += (int32_t)f[ic] * ((int32_t)px[ic] + p->input_offset);
              }
            }
          }
          if (bias != 0) {
            acc = ek_wrap_add(acc, bias[oc]);
          }
          acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
          *output++ = (int8_t)ek_clamp(acc, p->act_min, p->act_max);
        }
      }
    }
  }
}
