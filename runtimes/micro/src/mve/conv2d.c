/* CONV_2D int8, Helium (MVE) variant of ek_conv2d_s8 (definition: portable/conv2d.c).
 *
 * Per output pixel: the window is gathered into one int8 column (im2col; a 1x1 filter
 * over an in-bounds pixel reads the input in place), padding taps filled with the input
 * zero point so that they add nothing once the offset is folded; then four output
 * channels at a time: four VMLADAVA dot products over the column, plus
 * bias + input_offset * sum(weights) (per channel, computed once per call), requantized
 * on four lanes and stored as four bytes. Each pixel's window is read before any of its
 * outputs is written and outputs are written in increasing order, so the arena plan's
 * in-place sharing holds (edgekit/memory/lifetimes.py). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "mve.h"

/* Layers larger than the stack buffers: the portable loop, unchanged. */
static void conv_scalar(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                        const ek_dims4 *in, const int8_t *input, const ek_dims4 *fd,
                        const int8_t *filter, const int32_t *bias, const ek_dims4 *out,
                        int8_t *output) {
  const int32_t cin = in->c;
  int32_t b, y, x, oc, ky, kx, ic;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      for (x = 0; x < out->w; x++) {
        for (oc = 0; oc < out->c; oc++) {
          int32_t acc = 0;
          for (ky = 0; ky < fd->h; ky++) {
            const int32_t iy = y * p->stride_h - p->pad_top + ky * p->dilation_h;
            if (iy < 0 || iy >= in->h) {
              continue;
            }
            for (kx = 0; kx < fd->w; kx++) {
              const int32_t ix = x * p->stride_w - p->pad_left + kx * p->dilation_w;
              const int8_t *px;
              const int8_t *f;
              if (ix < 0 || ix >= in->w) {
                continue;
              }
              px = input + ((b * in->h + iy) * in->w + ix) * cin;
              f = filter + ((oc * fd->h + ky) * fd->w + kx) * cin;
              for (ic = 0; ic < cin; ic++) {
                acc = ek_wrap_add(acc, (int32_t)f[ic] * ((int32_t)px[ic] + p->input_offset));
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

void ek_conv2d_s8(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                  const ek_dims4 *in, const int8_t *input,
                  const ek_dims4 *fd, const int8_t *filter,
                  const int32_t *bias,
                  const ek_dims4 *out, int8_t *output) {
  const int32_t cin = in->c;
  const int32_t kh = fd->h;
  const int32_t kw = fd->w;
  const int32_t k_len = kh * kw * cin;
  const int32_t cout = out->c;
  const int8_t pad_value = (int8_t)(-p->input_offset);
  int8_t col[EK_MVE_MAX_COL] __attribute__((aligned(16)));
  int32_t folded[EK_MVE_MAX_COUT + 3] __attribute__((aligned(16)));
  /* bias + input_offset * sum of the channel's weights, mod 2^32; a compiler that folded
   * the offset already (edgekit.backends.c.mve_fold) passes 0 and the folded bias */
  const int32_t *init = p->input_offset != 0 || bias == 0 ? folded : bias;
  /* in registers: int8 stores may alias *p, which would reload it every block */
  const int32x4_t out_offset = vdupq_n_s32(p->output_offset);
  const int32x4_t act_min = vdupq_n_s32(p->act_min);
  const int32x4_t act_max = vdupq_n_s32(p->act_max);
  int32_t b, y, x, oc;

  if (k_len > EK_MVE_MAX_COL || cout > EK_MVE_MAX_COUT) {
    conv_scalar(p, mult, shift, in, input, fd, filter, bias, out, output);
    return;
  }
  if (init == folded) {
    for (oc = 0; oc < cout; oc++) {
      const int32_t wsum = p->input_offset != 0 ? ek_mve_sum_s8(filter + oc * k_len, k_len) : 0;
      folded[oc] = ek_wrap_add(bias != 0 ? bias[oc] : 0, (int32_t)((uint32_t)wsum * (uint32_t)p->input_offset));
    }
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * cin;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        const int8_t *src;
        if (kh == 1 && kw == 1 && in_y0 >= 0 && in_y0 < in->h && in_x0 >= 0 && in_x0 < in->w) {
          src = image + (in_y0 * in->w + in_x0) * cin;
        } else {
          int32_t ky, kx;
          int8_t *dst = col;
          /* a window row lies wholly inside when its first and last taps do */
          const int32_t row_inside = in_x0 >= 0 && in_x0 + (kw - 1) * p->dilation_w < in->w;
          for (ky = 0; ky < kh; ky++) {
            const int32_t iy = in_y0 + ky * p->dilation_h;
            if (iy < 0 || iy >= in->h) {
              ek_mve_fill(dst, pad_value, kw * cin);
              dst += kw * cin;
            } else if (row_inside && p->dilation_w == 1) {
              ek_mve_copy(dst, image + (iy * in->w + in_x0) * cin, kw * cin);
              dst += kw * cin;
            } else {
              for (kx = 0; kx < kw; kx++) {
                const int32_t ix = in_x0 + kx * p->dilation_w;
                if (ix < 0 || ix >= in->w) {
                  ek_mve_fill(dst, pad_value, cin);
                } else {
                  ek_mve_copy(dst, image + (iy * in->w + ix) * cin, cin);
                }
                dst += cin;
              }
            }
          }
          src = col;
        }
        for (oc = 0; oc + 4 <= cout; oc += 4) {
          const int8_t *w0 = filter + oc * k_len;
          int32x4_t acc = ek_mve_dot4(src, w0, w0 + k_len, w0 + 2 * k_len, w0 + 3 * k_len, k_len);
          acc = vaddq_s32(acc, vldrwq_s32(init + oc));
          acc = ek_mve_requant(acc, vldrwq_s32(mult + oc), vldrwq_s32(shift + oc));
          acc = vminq_s32(vmaxq_s32(vaddq_s32(acc, out_offset), act_min), act_max);
          vstrbq_s32(output + oc, acc);
        }
        if (oc < cout) {
          /* the last one to three channels: rows past the last repeat it, their lanes
           * are neither loaded nor stored */
          const int8_t *w0 = filter + oc * k_len;
          const int8_t *w1 = oc + 1 < cout ? w0 + k_len : w0;
          const int8_t *w2 = oc + 2 < cout ? w0 + 2 * k_len : w0;
          const mve_pred16_t lanes = vctp32q((uint32_t)(cout - oc));
          int32x4_t acc = ek_mve_dot4(src, w0, w1, w2, w0, k_len);
          acc = vaddq_s32(acc, vldrwq_z_s32(init + oc, lanes));
          acc = ek_mve_requant(acc, vldrwq_z_s32(mult + oc, lanes), vldrwq_z_s32(shift + oc, lanes));
          acc = vminq_s32(vmaxq_s32(vaddq_s32(acc, out_offset), act_min), act_max);
          vstrbq_p_s32(output + oc, acc, lanes);
        }
        output += cout;
      }
    }
  }
}
