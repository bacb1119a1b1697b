/* DEPTHWISE_CONV_2D int8, Armv7E-M DSP variant: the portable kernel's semantics
 * (TFLM reference_integer_ops::DepthwiseConvPerChannel). With depth_multiplier 1,
 * four channels are read per word, sign-extended with SXTB16, and accumulated with
 * SMLABB / SMLATT (one product per channel); other multipliers and the last
 * channels run the scalar loop. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "simd.h"

static int8_t requantize_one(int32_t acc, const int32_t *bias, int32_t oc, const int32_t *mult,
                             const int32_t *shift, const ek_depthwise_params *p) {
  if (bias != 0) {
    acc = ek_wrap_add(acc, bias[oc]);
  }
  acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
  return (int8_t)ek_clamp(acc, p->act_min, p->act_max);
}

/* In-bounds tap range [*k0, *k1) of one axis for a window starting at origin. */
static void tap_range(int32_t origin, int32_t dilation, int32_t taps, int32_t size,
                      int32_t *k0, int32_t *k1) {
  int32_t k = 0;
  while (k < taps && origin + k * dilation < 0) {
    k++;
  }
  *k0 = k;
  while (k < taps && origin + k * dilation < size) {
    k++;
  }
  *k1 = k;
}

/* Channels [c0, c0 + 4) of one output pixel, depth_multiplier 1. */
static void pixel_quad(const ek_depthwise_params *p, const ek_dims4 *in, const int8_t *image,
                       const ek_dims4 *fd, const int8_t *filter, int32_t c0, int32_t in_y0,
                       int32_t in_x0, int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1,
                       int32_t acc[4]) {
  const int32_t c = in->c;
  const int16x2_t off2 = ek_dup16(p->input_offset);
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int32_t ky, kx;
  for (ky = ky0; ky < ky1; ky++) {
    const int8_t *row = image + (in_y0 + ky * p->dilation_h) * in->w * c + c0;
    const int8_t *frow = filter + ky * fd->w * c + c0;
    for (kx = kx0; kx < kx1; kx++) {
      const uint32_t xv = ek_load4(row + (in_x0 + kx * p->dilation_w) * c);
      const uint32_t wv = ek_load4(frow + kx * c);
      const int16x2_t xe = __sadd16(ek_even(xv), off2); /* channels 0, 2 */
      const int16x2_t xo = __sadd16(ek_odd(xv), off2);  /* channels 1, 3 */
      const int16x2_t we = ek_even(wv);
      const int16x2_t wo = ek_odd(wv);
      a0 = __smlabb(xe, we, a0);
      a2 = __smlatt(xe, we, a2);
      a1 = __smlabb(xo, wo, a1);
      a3 = __smlatt(xo, wo, a3);
    }
  }
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
}

/* One output channel oc (reading input channel ic) of one output pixel. */
static int32_t pixel_channel(const ek_depthwise_params *p, const ek_dims4 *in,
                             const int8_t *image, const ek_dims4 *fd, const int8_t *filter,
                             int32_t ic, int32_t oc, int32_t in_y0, int32_t in_x0, int32_t ky0,
                             int32_t ky1, int32_t kx0, int32_t kx1) {
  int32_t acc = 0;
  int32_t ky, kx;
  for (ky = ky0; ky < ky1; ky++) {
    const int32_t iy = in_y0 + ky * p->dilation_h;
    for (kx = kx0; kx < kx1; kx++) {
      const int32_t ix = in_x0 + kx * p->dilation_w;
      acc += (int32_t)filter[(ky * fd->w + kx) * fd->c + oc] *
             ((int32_t)image[(iy * in->w + ix) * in->c + ic] + p->input_offset);
    }
  }
  return acc;
}

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  const int32_t m_count = p->depth_multiplier;
  const int32_t quads = m_count == 1 ? in->c / 4 : 0;
  int32_t b, y, x, ic, m, q;
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      int32_t ky0, ky1;
      tap_range(in_y0, p->dilation_h, fd->h, in->h, &ky0, &ky1);
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int32_t kx0, kx1;
        tap_range(in_x0, p->dilation_w, fd->w, in->w, &kx0, &kx1);
        for (q = 0; q < quads; q++) {
          int32_t acc[4];
          pixel_quad(p, in, image, fd, filter, 4 * q, in_y0, in_x0, ky0, ky1, kx0, kx1, acc);
          for (m = 0; m < 4; m++) {
            output[4 * q + m] = requantize_one(acc[m], bias, 4 * q + m, mult, shift, p);
          }
        }
        for (ic = 4 * quads; ic < in->c; ic++) {
          for (m = 0; m < m_count; m++) {
            const int32_t oc = ic * m_count + m;
            const int32_t acc = pixel_channel(p, in, image, fd, filter, ic, oc, in_y0, in_x0,
                                              ky0, ky1, kx0, kx1);
            output[oc] = requantize_one(acc, bias, oc, mult, shift, p);
          }
        }
        output += out->c;
      }
    }
  }
}
