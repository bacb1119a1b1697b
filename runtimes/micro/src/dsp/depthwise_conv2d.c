/* DEPTHWISE_CONV_2D int8, Armv7E-M DSP variant: the portable kernel's semantics
 * (TFLM reference_integer_ops::DepthwiseConvPerChannel). With depth_multiplier 1,
 * four channels are read per word, sign-extended (and offset) with SXTB16 / SXTAB16,
 * and accumulated with SMLABB / SMLATT (one product per channel). When every channel's
 * shift is negative and its accumulator provably stays below 2^29 (depthwise_fast),
 * requantization uses SMMULR and a shift-based RoundingDivideByPOT (same bytes), and
 * fully in-bounds 3x3 windows are unrolled; otherwise the generic loops run. Output
 * pixels are written in increasing order, each after all of its reads. */
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

static void depthwise_general(const ek_depthwise_params *p,
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

/* ---- depth_multiplier 1, fast requantization ----
 * Taken when every channel of the quads has shift in [-31, -1] and
 * |acc| <= |bias| + 255 * sum |w| < 2^29 (acc: the true sum plus bias, on any pixel).
 * Then, with x = acc:
 *   SaturatingRoundingDoublingHighMul(x, m) = (2x * m + 2^31) >> 32 = SMMULR(2x, m)
 *   (2x fits int32; no saturation is possible), and for e = -shift in [1, 31]
 *   RoundingDivideByPOT(r, e) = floor((r - (r < 0) + 2^(e-1)) / 2^e)
 *                             = ((r - (r < 0)) >> (e - 1)) + 1) >> 1,
 *   where e - 1 = ~shift, and nothing overflows (|r| <= 2^29 + 1).
 * Output pixels are still written in increasing order, each channel quad after all of
 * its reads, as the portable loop does. */

static inline int32_t ek_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/* SXTAB16 with rotate: o + (bytes 1 and 3 of w, sign-extended), per halfword. */
static inline int16x2_t ek_odd_add(int16x2_t o, uint32_t w) {
  int16x2_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(o), "r"(w));
  return r;
}

static inline int8_t ek_dw_fast_out(int32_t acc, int32_t bias, int32_t mult, int32_t shift,
                                    int32_t out_off, int32_t lo, int32_t hi) {
  const int32_t x = (int32_t)((uint32_t)(acc + bias) << 1);
  const int32_t r = ek_smmulr(x, mult);
  const int32_t t = (int32_t)((uint32_t)r - ((uint32_t)r >> 31));
  int32_t v = (((t >> (~shift)) + 1) >> 1) + out_off;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

/* Whether every channel c < n takes the fast requantization. */
static int32_t dw_fast_ok(const int32_t *shift, const int32_t *bias, const int8_t *filter,
                          int32_t taps, int32_t cout, int32_t n) {
  int32_t ch, t;
  for (ch = 0; ch < n; ch++) {
    int64_t bound = bias != 0 ? (bias[ch] < 0 ? -(int64_t)bias[ch] : (int64_t)bias[ch]) : 0;
    int32_t wabs = 0;
    if (shift[ch] > -1 || shift[ch] < -31) {
      return 0;
    }
    for (t = 0; t < taps; t++) {
      const int32_t w = filter[t * cout + ch];
      wabs += w < 0 ? -w : w;
    }
    bound += 255 * (int64_t)wabs;
    if (bound >= ((int64_t)1 << 29)) {
      return 0;
    }
  }
  return 1;
}

#define EK_DW_TAP(xp, wp)                                         \
  do {                                                            \
    const uint32_t xv_ = ek_load4(xp);                            \
    const uint32_t wv_ = ek_load4(wp);                            \
    const int16x2_t xe_ = __sxtab16(off2, (int8x4_t)xv_);         \
    const int16x2_t xo_ = ek_odd_add(off2, xv_);                  \
    const int16x2_t we_ = ek_even(wv_);                           \
    const int16x2_t wo_ = ek_odd(wv_);                            \
    a0 = __smlabb(xe_, we_, a0);                                  \
    a2 = __smlatt(xe_, we_, a2);                                  \
    a1 = __smlabb(xo_, wo_, a1);                                  \
    a3 = __smlatt(xo_, wo_, a3);                                  \
  } while (0)

static void depthwise_fast(const ek_depthwise_params *p, const int32_t *mult,
                           const int32_t *shift, const ek_dims4 *in, const int8_t *input,
                           const ek_dims4 *fd, const int8_t *filter, const int32_t *bias,
                           const ek_dims4 *out, int8_t *output) {
  const int32_t c = in->c, in_h = in->h, in_w = in->w;
  const int32_t kh = fd->h, kw = fd->w;
  const int32_t out_n = out->n, out_h = out->h, out_w = out->w, out_c = out->c;
  const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
  const int32_t pad_top = p->pad_top, pad_left = p->pad_left;
  const int32_t dil_h = p->dilation_h, dil_w = p->dilation_w;
  const int32_t out_off = p->output_offset, lo = p->act_min, hi = p->act_max;
  const int32_t in_off = p->input_offset;
  const int16x2_t off2 = ek_dup16(in_off);
  const int32_t quads = c / 4;
  const int32_t col_step = dil_w * c;
  const int32_t row_step = dil_h * in_w * c;
  const int32_t is3x3 = kh == 3 && kw == 3;
  const int32_t row_skip = row_step - 3 * col_step;
  int32_t b, y, x, q, ic;
  for (b = 0; b < out_n; b++) {
    const int8_t *image = input + b * in_h * in_w * c;
    for (y = 0; y < out_h; y++) {
      const int32_t in_y0 = y * stride_h - pad_top;
      int32_t ky0, ky1;
      tap_range(in_y0, dil_h, kh, in_h, &ky0, &ky1);
      for (x = 0; x < out_w; x++) {
        const int32_t in_x0 = x * stride_w - pad_left;
        int32_t kx0, kx1;
        tap_range(in_x0, dil_w, kw, in_w, &kx0, &kx1);
        if (is3x3 && ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3) {
          const int8_t *px = image + in_y0 * in_w * c + in_x0 * c;
          for (q = 0; q < quads; q++) {
            const int8_t *r = px + 4 * q;
            const int8_t *w = filter + 4 * q;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            int32_t ky;
            for (ky = 0; ky < 3; ky++, r += row_skip) {
              EK_DW_TAP(r, w);
              r += col_step;
              w += c;
              EK_DW_TAP(r, w);
              r += col_step;
              w += c;
              EK_DW_TAP(r, w);
              r += col_step;
              w += c;
            }
            {
              const int32_t cq = 4 * q;
              const int32_t b0 = bias != 0 ? bias[cq] : 0;
              const int32_t b1 = bias != 0 ? bias[cq + 1] : 0;
              const int32_t b2 = bias != 0 ? bias[cq + 2] : 0;
              const int32_t b3 = bias != 0 ? bias[cq + 3] : 0;
              output[cq] = ek_dw_fast_out(a0, b0, mult[cq], shift[cq], out_off, lo, hi);
              output[cq + 1] = ek_dw_fast_out(a1, b1, mult[cq + 1], shift[cq + 1], out_off, lo, hi);
              output[cq + 2] = ek_dw_fast_out(a2, b2, mult[cq + 2], shift[cq + 2], out_off, lo, hi);
              output[cq + 3] = ek_dw_fast_out(a3, b3, mult[cq + 3], shift[cq + 3], out_off, lo, hi);
            }
          }
        } else {
          for (q = 0; q < quads; q++) {
            const int32_t cq = 4 * q;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            int32_t ky, kx;
            for (ky = ky0; ky < ky1; ky++) {
              const int8_t *r = image + (in_y0 + ky * dil_h) * in_w * c +
                                (in_x0 + kx0 * dil_w) * c + cq;
              const int8_t *w = filter + (ky * kw + kx0) * c + cq;
              for (kx = kx0; kx < kx1; kx++, r += col_step, w += c) {
                EK_DW_TAP(r, w);
              }
            }
            {
              const int32_t b0 = bias != 0 ? bias[cq] : 0;
              const int32_t b1 = bias != 0 ? bias[cq + 1] : 0;
              const int32_t b2 = bias != 0 ? bias[cq + 2] : 0;
              const int32_t b3 = bias != 0 ? bias[cq + 3] : 0;
              output[cq] = ek_dw_fast_out(a0, b0, mult[cq], shift[cq], out_off, lo, hi);
              output[cq + 1] = ek_dw_fast_out(a1, b1, mult[cq + 1], shift[cq + 1], out_off, lo, hi);
              output[cq + 2] = ek_dw_fast_out(a2, b2, mult[cq + 2], shift[cq + 2], out_off, lo, hi);
              output[cq + 3] = ek_dw_fast_out(a3, b3, mult[cq + 3], shift[cq + 3], out_off, lo, hi);
            }
          }
        }
        for (ic = 4 * quads; ic < c; ic++) {
          const int32_t acc = pixel_channel(p, in, image, fd, filter, ic, ic, in_y0, in_x0,
                                            ky0, ky1, kx0, kx1);
          output[ic] = requantize_one(acc, bias, ic, mult, shift, p);
        }
        output += out_c;
      }
    }
  }
}

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  if (p->depth_multiplier == 1 && in->c >= 4 &&
      dw_fast_ok(shift, bias, filter, fd->h * fd->w, fd->c, in->c & ~3)) {
    depthwise_fast(p, mult, shift, in, input, fd, filter, bias, out, output);
  } else {
    depthwise_general(p, mult, shift, in, input, fd, filter, bias, out, output);
  }
}
