/* DEPTHWISE_CONV_2D int8, Helium (MVE) variant of ek_depthwise_conv2d_s8 (definition:
 * portable/depthwise_conv2d.c).
 *
 * Depth multiplier 1: per output pixel, eight channels at a time on int32 lanes: for
 * each in-bounds tap, the inputs (widening loads) times the weights, accumulated; a
 * window wholly inside multiplies the raw inputs and starts from the bias plus
 * input_offset x the weights' sum (computed once per call), a window cut by the padding
 * skips its outside taps as TFLM does and adds the offset to each input. Then the
 * four-lane requantization and the stores. Outputs are written in increasing order,
 * each after every read it needs, so the arena plan's in-place sharing holds. Other
 * depth multipliers, and more than EK_MVE_MAX_COUT channels, take the scalar loop. */
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

/* One output pixel, depth multiplier 1, taps [ky0, ky1) x [kx0, kx1) in bounds: eight
 * channels per pass on two int32x4 accumulators (four in the last pass when C % 8 is
 * 4), predicated lanes for the channels of a C that is not a multiple of four. The
 * accumulators start at init[ch] (bias, plus input_offset x the sum of every tap's
 * weights when the whole window is inside: then the raw inputs are multiplied), or at
 * the bias with the offset added to each input (a window cut by the padding). */
/* The scalars of the params every block uses, read once per call: the int8 output
 * stores may alias *p, which would make the compiler reload it in every block. */
typedef struct {
  int32_t in_offset, out_offset, act_min, act_max;
} dw_consts;

/* Eight channels of one output pixel (see pixel_vector); ``full``: all eight exist, so
 * the loads need no predicate (a constant after inlining, as is ``folded``). */
static inline __attribute__((always_inline)) void block8(
    const dw_consts *k, const int32_t *mult, const int32_t *shift, const int8_t *xr, const int8_t *wr,
    const int32_t *init, int32_t folded, int32_t full, int32_t left, int32_t ny, int32_t nx, int32_t x_step,
    int32_t y_step, int32_t c, int32_t w_row, int8_t *out_px) {
  const mve_pred16_t lo = full ? 0xFFFF : vctp32q((uint32_t)left);
  const mve_pred16_t hi = full ? 0xFFFF : vctp32q((uint32_t)(left > 4 ? left - 4 : 0));
  const int32_t off = k->in_offset;
  int32x4_t acc0 = full ? vldrwq_s32(init) : vldrwq_z_s32(init, lo);
  int32x4_t acc1 = full ? vldrwq_s32(init + 4) : vldrwq_z_s32(init + 4, hi);
  int32_t ky, kx;
  for (ky = 0; ky < ny; ky++) {
    const int8_t *xp = xr;
    const int8_t *wp = wr;
#pragma GCC unroll 3
    for (kx = 0; kx < nx; kx++) {
      int32x4_t x0 = full ? vldrbq_s32(xp) : vldrbq_z_s32(xp, lo);
      int32x4_t x1 = full ? vldrbq_s32(xp + 4) : vldrbq_z_s32(xp + 4, hi);
      const int32x4_t w0 = full ? vldrbq_s32(wp) : vldrbq_z_s32(wp, lo);
      const int32x4_t w1 = full ? vldrbq_s32(wp + 4) : vldrbq_z_s32(wp + 4, hi);
      if (!folded) {
        x0 = vaddq_n_s32(x0, off);
        x1 = vaddq_n_s32(x1, off);
      }
      acc0 = vaddq_s32(acc0, vmulq_s32(x0, w0)); /* no vector x vector MLA in MVE */
      acc1 = vaddq_s32(acc1, vmulq_s32(x1, w1));
      xp += x_step;
      wp += c;
    }
    xr += y_step;
    wr += w_row;
  }
  acc0 = ek_mve_requant(acc0, full ? vldrwq_s32(mult) : vldrwq_z_s32(mult, lo),
                        full ? vldrwq_s32(shift) : vldrwq_z_s32(shift, lo));
  acc1 = ek_mve_requant(acc1, full ? vldrwq_s32(mult + 4) : vldrwq_z_s32(mult + 4, hi),
                        full ? vldrwq_s32(shift + 4) : vldrwq_z_s32(shift + 4, hi));
  acc0 = vminq_s32(vmaxq_s32(vaddq_n_s32(acc0, k->out_offset), vdupq_n_s32(k->act_min)), vdupq_n_s32(k->act_max));
  acc1 = vminq_s32(vmaxq_s32(vaddq_n_s32(acc1, k->out_offset), vdupq_n_s32(k->act_min)), vdupq_n_s32(k->act_max));
  if (full) {
    vstrbq_s32(out_px, acc0);
    vstrbq_s32(out_px + 4, acc1);
  } else {
    vstrbq_p_s32(out_px, acc0, lo);
    vstrbq_p_s32(out_px + 4, acc1, hi);
  }
}

/* One output pixel, depth multiplier 1, taps [ky0, ky1) x [kx0, kx1) in bounds: eight
 * channels per block on two int32x4 accumulators, predicated lanes in the last block
 * of a C that is not a multiple of eight. The accumulators start at init[ch] (the bias,
 * plus input_offset x the sum of every tap's weights when the whole window is inside:
 * then the raw inputs are multiplied), or at the bias with the offset added to each
 * input (a window cut by the padding). */
static inline __attribute__((always_inline)) void pixel_vector(
    const ek_depthwise_params *p, const dw_consts *k, const int32_t *mult, const int32_t *shift, const ek_dims4 *in,
    const int8_t *image, const ek_dims4 *fd, const int8_t *filter, const int32_t *init, int32_t folded,
    int32_t in_y0, int32_t in_x0, int32_t ky0, int32_t ky1, int32_t kx0, int32_t kx1, int8_t *out_px) {
  const int32_t c = in->c;
  const int32_t x_step = p->dilation_w * c;
  const int32_t y_step = p->dilation_h * in->w * c;
  const int32_t ny = ky1 - ky0;
  const int32_t nx = kx1 - kx0;
  const int8_t *x_base = image + ((in_y0 + ky0 * p->dilation_h) * in->w + in_x0 + kx0 * p->dilation_w) * c;
  const int8_t *w_base = filter + (ky0 * fd->w + kx0) * c;
  int32_t ch;
  for (ch = 0; ch + 8 <= c; ch += 8) {
    block8(k, mult + ch, shift + ch, x_base + ch, w_base + ch, init + ch, folded, 1, 8, ny, nx, x_step, y_step,
           c, fd->w * c, out_px + ch);
  }
  if (ch < c) {
    block8(k, mult + ch, shift + ch, x_base + ch, w_base + ch, init + ch, folded, 0, c - ch, ny, nx, x_step,
           y_step, c, fd->w * c, out_px + ch);
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
  const int32_t c = in->c;
  const int32_t vector = p->depth_multiplier == 1 && c <= EK_MVE_MAX_COUT;
  const int32_t taps = fd->h * fd->w;
  /* biases[ch]: the bias; folded[ch]: bias + input_offset * sum of the channel's weights */
  int32_t biases[EK_MVE_MAX_COUT + 8] __attribute__((aligned(16)));
  int32_t folded[EK_MVE_MAX_COUT + 8] __attribute__((aligned(16)));
  const dw_consts k = {p->input_offset, p->output_offset, p->act_min, p->act_max};
  int32_t b, y, x, ch, t;
  if (vector) {
    for (ch = 0; ch < c; ch++) {
      int32_t wsum = 0;
      for (t = 0; t < taps; t++) {
        wsum += filter[t * c + ch];
      }
      biases[ch] = bias != 0 ? bias[ch] : 0;
      folded[ch] = ek_wrap_add(biases[ch], (int32_t)((uint32_t)wsum * (uint32_t)p->input_offset));
    }
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      const int32_t ky0 = first_inside(in_y0, p->dilation_h, fd->h);
      const int32_t ky1 = end_inside(in_y0, p->dilation_h, in->h, fd->h);
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int8_t *out_px = output + ((b * out->h + y) * out->w + x) * out->c;
        if (vector) {
          const int32_t kx0 = first_inside(in_x0, p->dilation_w, fd->w);
          const int32_t kx1 = end_inside(in_x0, p->dilation_w, in->w, fd->w);
          const int32_t whole = ky0 == 0 && ky1 == fd->h && kx0 == 0 && kx1 == fd->w;
          if (whole) {
            pixel_vector(p, &k, mult, shift, in, image, fd, filter, folded, 1, in_y0, in_x0, ky0, ky1, kx0, kx1,
                         out_px);
          } else {
            pixel_vector(p, &k, mult, shift, in, image, fd, filter, biases, 0, in_y0, in_x0, ky0, ky1, kx0, kx1,
                         out_px);
          }
        } else {
          pixel_scalar(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, out_px);
        }
      }
    }
  }
}
