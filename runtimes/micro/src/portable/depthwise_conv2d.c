/* DEPTHWISE_CONV_2D int8, portable reference
 * (TFLM reference_integer_ops::DepthwiseConvPerChannel). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

static int8_t requantize_one(int32_t acc, const int32_t *bias, int32_t oc, const int32_t *mult,
                             const int32_t *shift, const ek_depthwise_params *p) {
  if (bias != 0) {
    acc = ek_wrap_add(acc, bias[oc]);
  }
  acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
  return (int8_t)ek_clamp(acc, p->act_min, p->act_max);
}

/* One output pixel, any filter: taps outside the input are skipped. */
static void pixel_generic(const ek_depthwise_params *p, const int32_t *mult, const int32_t *shift,
                          const ek_dims4 *in, const int8_t *image, const ek_dims4 *fd,
                          const int8_t *filter, const int32_t *bias, int32_t in_y0, int32_t in_x0,
                          int8_t *out_px) {
  const int32_t m_count = p->depth_multiplier;
  const int32_t cout = fd->c;
  int32_t ic, m, ky, kx;
  for (ic = 0; ic < in->c; ic++) {
    for (m = 0; m < m_count; m++) {
      const int32_t oc = ic * m_count + m;
      int32_t acc = 0;
      for (ky = 0; ky < fd->h; ky++) {
        const int32_t iy = in_y0 + ky * p->dilation_h;
        if (iy < 0 || iy >= in->h) {
          continue;
        }
        for (kx = 0; kx < fd->w; kx++) {
          const int32_t ix = in_x0 + kx * p->dilation_w;
          if (ix < 0 || ix >= in->w) {
            continue;
          }
          acc += (int32_t)filter[(ky * fd->w + kx) * cout + oc] *
                 ((int32_t)image[(iy * in->w + ix) * in->c + ic] + p->input_offset);
        }
      }
      out_px[oc] = requantize_one(acc, bias, oc, mult, shift, p);
    }
  }
}

/* One output pixel of a 3x3, depth_multiplier 1, undilated filter whose nine taps
 * all lie inside the input (top-left tap at px). */
static void pixel_3x3_inside(const ek_depthwise_params *p, const int32_t *mult,
                             const int32_t *shift, int32_t in_w, int32_t c, const int8_t *px,
                             const int8_t *filter, const int32_t *bias, int8_t *out_px) {
  const int32_t row = in_w * c;
  const int32_t off = p->input_offset;
  int32_t ch;
  for (ch = 0; ch < c; ch++) {
    const int8_t *r0 = px + ch;
    const int8_t *r1 = r0 + row;
    const int8_t *r2 = r1 + row;
    const int8_t *f = filter + ch;
    int32_t acc = f[0] * (r0[0] + off) + f[c] * (r0[c] + off) + f[2 * c] * (r0[2 * c] + off);
    acc += f[3 * c] * (r1[0] + off) + f[4 * c] * (r1[c] + off) + f[5 * c] * (r1[2 * c] + off);
    acc += f[6 * c] * (r2[0] + off) + f[7 * c] * (r2[c] + off) + f[8 * c] * (r2[2 * c] + off);
    out_px[ch] = requantize_one(acc, bias, ch, mult, shift, p);
  }
}

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  const int32_t fast3x3 = fd->h == 3 && fd->w == 3 && p->depth_multiplier == 1 &&
                          p->dilation_h == 1 && p->dilation_w == 1;
  int32_t b, y, x;
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int8_t *out_px = output + ((b * out->h + y) * out->w + x) * out->c;
        if (fast3x3 && in_y0 >= 0 && in_y0 + 3 <= in->h && in_x0 >= 0 && in_x0 + 3 <= in->w) {
          pixel_3x3_inside(p, mult, shift, in->w, in->c,
                           image + (in_y0 * in->w + in_x0) * in->c, filter, bias, out_px);
        } else {
          pixel_generic(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, out_px);
        }
      }
    }
  }
}
