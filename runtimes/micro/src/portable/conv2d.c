/* CONV_2D int8, portable reference (TFLM reference_integer_ops::ConvPerChannel). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

static int8_t requantize_one(int32_t acc, const int32_t *bias, int32_t oc, int32_t mult,
                             int32_t shift, const ek_conv_params *p) {
  if (bias != 0) {
    acc = ek_wrap_add(acc, bias[oc]);
  }
  acc = ek_mbqm(acc, mult, shift) + p->output_offset;
  return (int8_t)ek_clamp(acc, p->act_min, p->act_max);
}

/* 1x1 filter, every tap in bounds: a matrix product per output pixel. */
static void conv_1x1(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                     const ek_dims4 *in, const int8_t *input, const int8_t *filter,
                     const int32_t *bias, const ek_dims4 *out, int8_t *output) {
  const int32_t cin = in->c;
  const int32_t cout = out->c;
  int32_t b, y, x, oc, ic;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      for (x = 0; x < out->w; x++) {
        const int8_t *px = input + ((b * in->h + y * p->stride_h) * in->w + x * p->stride_w) * cin;
        for (oc = 0; oc < cout; oc++) {
          const int8_t *f = filter + oc * cin;
          int32_t acc = 0;
          for (ic = 0; ic < cin; ic++) {
            acc += (int32_t)f[ic] * ((int32_t)px[ic] + p->input_offset);
          }
          *output++ = requantize_one(acc, bias, oc, mult[oc], shift[oc], p);
        }
      }
    }
  }
}

void ek_conv2d_s8(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                  const ek_dims4 *in, const int8_t *input,
                  const ek_dims4 *fd, const int8_t *filter,
                  const int32_t *bias,
                  const ek_dims4 *out, int8_t *output) {
  const int32_t cin = in->c;
  const int32_t kh = fd->h;
  const int32_t kw = fd->w;
  int32_t b, y, x, oc, ky, kx, ic;

  if (kh == 1 && kw == 1 && p->pad_top == 0 && p->pad_left == 0 &&
      (out->h - 1) * p->stride_h < in->h && (out->w - 1) * p->stride_w < in->w) {
    conv_1x1(p, mult, shift, in, input, filter, bias, out, output);
    return;
  }
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        for (oc = 0; oc < out->c; oc++) {
          int32_t acc = 0;
          for (ky = 0; ky < kh; ky++) {
            const int32_t iy = in_y0 + ky * p->dilation_h;
            if (iy < 0 || iy >= in->h) {
              continue;
            }
            for (kx = 0; kx < kw; kx++) {
              const int32_t ix = in_x0 + kx * p->dilation_w;
              const int8_t *px;
              const int8_t *f;
              if (ix < 0 || ix >= in->w) {
                continue;
              }
              px = input + ((b * in->h + iy) * in->w + ix) * cin;
              f = filter + ((oc * kh + ky) * kw + kx) * cin;
              for (ic = 0; ic < cin; ic++) {
                acc += (int32_t)f[ic] * ((int32_t)px[ic] + p->input_offset);
              }
            }
          }
          *output++ = requantize_one(acc, bias, oc, mult[oc], shift[oc], p);
        }
      }
    }
  }
}
