/* DEPTHWISE_CONV_2D int8, Helium (MVE) variant of ek_depthwise_conv2d_s8 (definition:
 * portable/depthwise_conv2d.c).
 *
 * Depth multiplier 1: per output pixel, four channels at a time on int32 lanes: for
 * each in-bounds tap, the four inputs (widening load) plus the input offset times the
 * four weights, accumulated; padding taps are skipped as in TFLM. Then bias, four-lane
 * requantization, four bytes stored. Outputs are written in increasing order, each
 * after every read it needs, so the arena plan's in-place sharing holds. Other depth
 * multipliers take the scalar loop. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "mve.h"

static void pixel_scalar(const ek_depthwise_params *p, const int32_t *mult, const int32_t *shift,
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
          acc = ek_wrap_add(acc, (int32_t)filter[(ky * fd->w + kx) * cout + oc] *
                                     ((int32_t)image[(iy * in->w + ix) * in->c + ic] + p->input_offset));
        }
      }
      if (bias != 0) {
        acc = ek_wrap_add(acc, bias[oc]);
      }
      acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
      out_px[oc] = (int8_t)ek_clamp(acc, p->act_min, p->act_max);
    }
  }
}

/* One output pixel, depth multiplier 1: taps [ky0, ky1) x [kx0, kx1) are in bounds. */
static void pixel_vector(const ek_depthwise_params *p, const int32_t *mult, const int32_t *shift,
                         const ek_dims4 *in, const int8_t *image, const ek_dims4 *fd,
                         const int8_t *filter, const int32_t *bias, int32_t in_y0, int32_t in_x0,
                         int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1, int8_t *out_px) {
  const int32_t c = in->c;
  const int32x4_t off = vdupq_n_s32(p->input_offset);
  int32_t ch, ky, kx;
  for (ch = 0; ch < c; ch += 4) {
    const mve_pred16_t lanes = vctp32q((uint32_t)(c - ch));
    int32x4_t acc = bias != 0 ? vldrwq_z_s32(bias + ch, lanes) : vdupq_n_s32(0);
    for (ky = ky0; ky < ky1; ky++) {
      const int8_t *row = image + ((in_y0 + ky * p->dilation_h) * in->w + in_x0) * c + ch;
      const int8_t *frow = filter + ky * fd->w * c + ch;
      for (kx = kx0; kx < kx1; kx++) {
        const int32x4_t xv = vaddq_s32(vldrbq_z_s32(row + kx * p->dilation_w * c, lanes), off);
        const int32x4_t wv = vldrbq_z_s32(frow + kx * c, lanes);
        acc = vaddq_s32(acc, vmulq_s32(xv, wv)); /* no vector x vector MLA in MVE */
      }
    }
    acc = ek_mve_finish(acc, vldrwq_z_s32(mult + ch, lanes), vldrwq_z_s32(shift + ch, lanes), p->output_offset,
                        p->act_min, p->act_max);
    vstrbq_p_s32(out_px + ch, acc, lanes);
  }
}

/* The taps k of a window row (or column) at start + k * step that lie inside [0, size)
 * are one run [first_inside, end_inside). */
static int32_t first_inside(int32_t start, int32_t step, int32_t taps) {
  int32_t k = 0;
  while (k < taps && start + k * step < 0) {
    k++;
  }
  return k;
}

static int32_t end_inside(int32_t start, int32_t step, int32_t size, int32_t taps) {
  int32_t k = taps;
  while (k > 0 && start + (k - 1) * step >= size) {
    k--;
  }
  return k;
}

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  int32_t b, y, x;
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      const int32_t ky0 = first_inside(in_y0, p->dilation_h, fd->h);
      const int32_t ky1 = end_inside(in_y0, p->dilation_h, in->h, fd->h);
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int8_t *out_px = output + ((b * out->h + y) * out->w + x) * out->c;
        if (p->depth_multiplier == 1) {
          const int32_t kx0 = first_inside(in_x0, p->dilation_w, fd->w);
          const int32_t kx1 = end_inside(in_x0, p->dilation_w, in->w, fd->w);
          pixel_vector(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, ky0, ky1, kx0, kx1, out_px);
        } else {
          pixel_scalar(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, out_px);
        }
      }
    }
  }
}
