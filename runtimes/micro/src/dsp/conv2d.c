/* CONV_2D int8, Armv7E-M DSP variant: the portable kernel's semantics
 * (TFLM reference_integer_ops::ConvPerChannel) with SMLAD dot products over
 * contiguous runs of input channels, two output channels at a time. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "simd.h"

static int8_t requantize_one(int32_t acc, const int32_t *bias, int32_t oc, const int32_t *mult,
                             const int32_t *shift, const ek_conv_params *p) {
  if (bias != 0) {
    acc = ek_wrap_add(acc, bias[oc]);
  }
  acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
  return (int8_t)ek_clamp(acc, p->act_min, p->act_max);
}

/* 1x1 filter, every tap in bounds: each output pixel is a matrix-vector product. */
static void conv_1x1(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                     const ek_dims4 *in, const int8_t *input, const int8_t *filter,
                     const int32_t *bias, const ek_dims4 *out, int8_t *output) {
  const int32_t cin = in->c;
  const int32_t cout = out->c;
  const int16x2_t off2 = ek_dup16(p->input_offset);
  int32_t b, y, x, oc;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      for (x = 0; x < out->w; x++) {
        const int8_t *px = input + ((b * in->h + y * p->stride_h) * in->w + x * p->stride_w) * cin;
        for (oc = 0; oc + 2 <= cout; oc += 2) {
          int32_t acc0 = 0, acc1 = 0;
          ek_dot2_s8(px, filter + oc * cin, filter + (oc + 1) * cin, cin, p->input_offset, off2,
                     &acc0, &acc1);
          output[oc] = requantize_one(acc0, bias, oc, mult, shift, p);
          output[oc + 1] = requantize_one(acc1, bias, oc + 1, mult, shift, p);
        }
        if (oc < cout) {
          const int32_t acc = ek_dot1_s8(px, filter + oc * cin, cin, p->input_offset, off2, 0);
          output[oc] = requantize_one(acc, bias, oc, mult, shift, p);
        }
        output += cout;
      }
    }
  }
}

/* Sums of one output pixel for channels oc (and oc + 1 when two is set):
 * in-bounds filter rows, each an unbroken run of taps when dilation_w is 1. */
static void pixel_sums(const ek_conv_params *p, const ek_dims4 *in, const int8_t *image,
                       const ek_dims4 *fd, const int8_t *f0, const int8_t *f1, int32_t in_y0,
                       int32_t in_x0, int32_t *acc0, int32_t *acc1) {
  const int32_t cin = in->c;
  const int32_t kw = fd->w;
  const int16x2_t off2 = ek_dup16(p->input_offset);
  int32_t ky, kx;
  for (ky = 0; ky < fd->h; ky++) {
    const int32_t iy = in_y0 + ky * p->dilation_h;
    const int8_t *row;
    if (iy < 0 || iy >= in->h) {
      continue;
    }
    row = image + iy * in->w * cin;
    if (p->dilation_w == 1) {
      const int32_t kx0 = in_x0 < 0 ? -in_x0 : 0;
      const int32_t kx1 = in->w - in_x0 < kw ? in->w - in_x0 : kw;
      if (kx1 > kx0) {
        const int32_t tap = (ky * kw + kx0) * cin;
        ek_dot2_s8(row + (in_x0 + kx0) * cin, f0 + tap, f1 + tap, (kx1 - kx0) * cin,
                   p->input_offset, off2, acc0, acc1);
      }
      continue;
    }
    for (kx = 0; kx < kw; kx++) {
      const int32_t ix = in_x0 + kx * p->dilation_w;
      const int32_t tap = (ky * kw + kx) * cin;
      if (ix < 0 || ix >= in->w) {
        continue;
      }
      ek_dot2_s8(row + ix * cin, f0 + tap, f1 + tap, cin, p->input_offset, off2, acc0, acc1);
    }
  }
}

void ek_conv2d_s8(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                  const ek_dims4 *in, const int8_t *input,
                  const ek_dims4 *fd, const int8_t *filter,
                  const int32_t *bias,
                  const ek_dims4 *out, int8_t *output) {
  const int32_t filter_size = fd->h * fd->w * fd->c;
  const int32_t cout = out->c;
  int32_t b, y, x, oc;

  if (fd->h == 1 && fd->w == 1 && p->pad_top == 0 && p->pad_left == 0 &&
      (out->h - 1) * p->stride_h < in->h && (out->w - 1) * p->stride_w < in->w) {
    conv_1x1(p, mult, shift, in, input, filter, bias, out, output);
    return;
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        for (oc = 0; oc < cout; oc += 2) {
          /* An odd last channel runs as a pair with itself; its twin is dropped. */
          const int32_t oc1 = oc + 1 < cout ? oc + 1 : oc;
          int32_t acc0 = 0, acc1 = 0;
          pixel_sums(p, in, image, fd, filter + oc * filter_size, filter + oc1 * filter_size,
                     in_y0, in_x0, &acc0, &acc1);
          output[oc] = requantize_one(acc0, bias, oc, mult, shift, p);
          if (oc1 != oc) {
            output[oc1] = requantize_one(acc1, bias, oc1, mult, shift, p);
          }
        }
        output += cout;
      }
    }
  }
}
