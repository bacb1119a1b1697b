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
static __attribute__((noinline)) void pixel_quad(const ek_depthwise_params *p, const ek_dims4 *in, const int8_t *image,
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


/* ---- depth_multiplier 1: four channels at a time, channel quads outermost ---- */

#define EK_DW_MAX_TAPS 25

/* Requantization constants of one channel, hoisted out of the pixel loops. */
typedef struct {
  int32_t mult;
  int32_t left;    /* left shift (0 when shift <= 0); fast form: left + 1 */
  int32_t right;   /* right shift (0 when shift > 0) */
  int32_t mask;    /* (1 << right) - 1; fast form: rounding term 1 << (right - 1), or 0 */
  int32_t half;    /* mask >> 1; fast form: 1 when right > 0, else 0 */
  int32_t bias;    /* bias (0 without one) */
  int32_t bias_in; /* bias + input_offset * (sum of all taps), for interior pixels */
} ek_dw_chan;

/* (a * b + 2^31) >> 32: SMMULR. */
static inline int32_t ek_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/* ek_mbqm(acc, mult, shift). General form: any acc, mult != INT32_MIN (so that
 * SaturatingRoundingDoublingHighMul cannot saturate). Fast form (fast != 0): only for
 * |acc << left| < 2^29, where SRDHM(x, m) = (2x * m + 2^31) >> 32 exactly (SMMULR) and
 * RoundingDivideByPOT(r, e) = (r + 2^(e-1) - (r < 0 and e > 0)) >> e cannot overflow. */
static inline __attribute__((always_inline)) int32_t ek_dw_requant(int32_t acc,
                                                                   const ek_dw_chan *k,
                                                                   int fast) {
  if (fast) {
    const int32_t r = ek_smmulr((int32_t)((uint32_t)acc << k->left), k->mult);
    return (r + k->mask - ((r >> 31) & k->half)) >> k->right;
  } else {
    const int32_t x = (int32_t)((uint32_t)acc << k->left);
    const int64_t ab = (int64_t)x * (int64_t)k->mult + ((int64_t)1 << 30);
    const int32_t r = (int32_t)(ab >> 31);
    const int32_t remainder = r & k->mask;
    const int32_t threshold = k->half + (int32_t)((uint32_t)r >> 31);
    return (r >> k->right) + (remainder > threshold ? 1 : 0);
  }
}

static inline __attribute__((always_inline)) void ek_dw_store4(
    int8_t *o, int32_t a0, int32_t a1, int32_t a2, int32_t a3, const ek_dw_chan *ch,
    int interior, int32_t out_off, int32_t lo, int32_t hi, int fast) {
  int32_t v0, v1, v2, v3;
  if (interior) {
    a0 = (int32_t)((uint32_t)a0 + (uint32_t)ch[0].bias_in);
    a1 = (int32_t)((uint32_t)a1 + (uint32_t)ch[1].bias_in);
    a2 = (int32_t)((uint32_t)a2 + (uint32_t)ch[2].bias_in);
    a3 = (int32_t)((uint32_t)a3 + (uint32_t)ch[3].bias_in);
  } else {
    a0 = (int32_t)((uint32_t)a0 + (uint32_t)ch[0].bias);
    a1 = (int32_t)((uint32_t)a1 + (uint32_t)ch[1].bias);
    a2 = (int32_t)((uint32_t)a2 + (uint32_t)ch[2].bias);
    a3 = (int32_t)((uint32_t)a3 + (uint32_t)ch[3].bias);
  }
  v0 = ek_clamp(ek_dw_requant(a0, &ch[0], fast) + out_off, lo, hi);
  v1 = ek_clamp(ek_dw_requant(a1, &ch[1], fast) + out_off, lo, hi);
  v2 = ek_clamp(ek_dw_requant(a2, &ch[2], fast) + out_off, lo, hi);
  v3 = ek_clamp(ek_dw_requant(a3, &ch[3], fast) + out_off, lo, hi);
  /* act_min, act_max lie in [-128, 127] */
  {
    const uint32_t w = ((uint32_t)v0 & 0xFFu) | (((uint32_t)v1 & 0xFFu) << 8) |
                       (((uint32_t)v2 & 0xFFu) << 16) | ((uint32_t)v3 << 24);
    memcpy(o, &w, sizeof w);
  }
}

/* Geometry of one call, copied into locals (byte stores may alias any struct). */
typedef struct {
  int32_t c, in_h, in_w, out_n, out_h, out_w, out_c, kh, kw;
  int32_t stride_h, stride_w, pad_top, pad_left, dil_h, dil_w;
  int32_t x_lo, x_hi;
  int32_t out_off, lo, hi;
  int16x2_t off2;
} ek_dw_geo;

static inline __attribute__((always_inline)) void quad_pass_impl(
    const ek_dw_geo *gp, const int8_t *input, int8_t *output, int32_t c0,
    const uint32_t (*fw)[2], const ek_dw_chan *ch, int fast) {
  const ek_dw_geo g = *gp;
  const int32_t c = g.c;
  const int32_t col_step = g.dil_w * c;
  const int32_t row_step = g.dil_h * g.in_w * c;
  const int32_t x_step = g.stride_w * c;
  int32_t b, y, x;
  for (b = 0; b < g.out_n; b++) {
    const int8_t *image = input + b * g.in_h * g.in_w * c + c0;
    int8_t *o = output + b * g.out_h * g.out_w * g.out_c + c0;
    for (y = 0; y < g.out_h; y++) {
      const int32_t in_y0 = y * g.stride_h - g.pad_top;
      int32_t ky0, ky1;
      tap_range(in_y0, g.dil_h, g.kh, g.in_h, &ky0, &ky1);
      for (x = 0; x < g.out_w; x++, o += g.out_c) {
        const int32_t in_x0 = x * g.stride_w - g.pad_left;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (ky0 == 0 && ky1 == g.kh && x == g.x_lo && g.kh == 3 && g.kw == 3) {
          /* Run of interior pixels, 3x3: the input offset is folded into bias_in. */
          const int8_t *px = image + in_y0 * g.in_w * c + in_x0 * c;
          for (; x < g.x_hi; x++, o += g.out_c, px += x_step) {
            const int8_t *r = px;
            const uint32_t *f = fw[0];
            int32_t ky;
            a0 = a1 = a2 = a3 = 0;
            for (ky = 0; ky < 3; ky++, r += row_step, f += 6) {
              uint32_t xv = ek_load4(r);
              int16x2_t xe = ek_even(xv), xo = ek_odd(xv);
              a0 = __smlabb(xe, (int16x2_t)f[0], a0);
              a2 = __smlatt(xe, (int16x2_t)f[0], a2);
              a1 = __smlabb(xo, (int16x2_t)f[1], a1);
              a3 = __smlatt(xo, (int16x2_t)f[1], a3);
              xv = ek_load4(r + col_step);
              xe = ek_even(xv);
              xo = ek_odd(xv);
              a0 = __smlabb(xe, (int16x2_t)f[2], a0);
              a2 = __smlatt(xe, (int16x2_t)f[2], a2);
              a1 = __smlabb(xo, (int16x2_t)f[3], a1);
              a3 = __smlatt(xo, (int16x2_t)f[3], a3);
              xv = ek_load4(r + 2 * col_step);
              xe = ek_even(xv);
              xo = ek_odd(xv);
              a0 = __smlabb(xe, (int16x2_t)f[4], a0);
              a2 = __smlatt(xe, (int16x2_t)f[4], a2);
              a1 = __smlabb(xo, (int16x2_t)f[5], a1);
              a3 = __smlatt(xo, (int16x2_t)f[5], a3);
            }
            ek_dw_store4(o, a0, a1, a2, a3, ch, 1, g.out_off, g.lo, g.hi, fast);
          }
          x--;
          o -= g.out_c;
        } else if (ky0 == 0 && ky1 == g.kh && x >= g.x_lo && x < g.x_hi) {
          /* Every tap in bounds: the input offset is folded into bias_in. */
          const int8_t *px = image + in_y0 * g.in_w * c + in_x0 * c;
          int32_t ky, kx;
          for (ky = 0; ky < g.kh; ky++) {
            const int8_t *r = px + ky * row_step;
            const uint32_t *f = fw[ky * g.kw];
            for (kx = 0; kx < g.kw; kx++, r += col_step, f += 2) {
              const uint32_t xv = ek_load4(r);
              const int16x2_t xe = ek_even(xv), xo = ek_odd(xv);
              a0 = __smlabb(xe, (int16x2_t)f[0], a0);
              a2 = __smlatt(xe, (int16x2_t)f[0], a2);
              a1 = __smlabb(xo, (int16x2_t)f[1], a1);
              a3 = __smlatt(xo, (int16x2_t)f[1], a3);
            }
          }
          ek_dw_store4(o, a0, a1, a2, a3, ch, 1, g.out_off, g.lo, g.hi, fast);
        } else {
          int32_t kx0, kx1, ky, kx;
          tap_range(in_x0, g.dil_w, g.kw, g.in_w, &kx0, &kx1);
          for (ky = ky0; ky < ky1; ky++) {
            const int8_t *r = image + (in_y0 + ky * g.dil_h) * g.in_w * c +
                              (in_x0 + kx0 * g.dil_w) * c;
            const uint32_t *f = fw[ky * g.kw + kx0];
            for (kx = kx0; kx < kx1; kx++, r += col_step, f += 2) {
              const uint32_t xv = ek_load4(r);
              const int16x2_t xe = __sadd16(ek_even(xv), g.off2);
              const int16x2_t xo = __sadd16(ek_odd(xv), g.off2);
              a0 = __smlabb(xe, (int16x2_t)f[0], a0);
              a2 = __smlatt(xe, (int16x2_t)f[0], a2);
              a1 = __smlabb(xo, (int16x2_t)f[1], a1);
              a3 = __smlatt(xo, (int16x2_t)f[1], a3);
            }
          }
          ek_dw_store4(o, a0, a1, a2, a3, ch, 0, g.out_off, g.lo, g.hi, fast);
        }
      }
    }
  }
}

static void quad_pass_fast(const ek_dw_geo *g, const int8_t *input, int8_t *output, int32_t c0,
                           const uint32_t (*fw)[2], const ek_dw_chan *ch) {
  quad_pass_impl(g, input, output, c0, fw, ch, 1);
}

static void quad_pass_general(const ek_dw_geo *g, const int8_t *input, int8_t *output,
                              int32_t c0, const uint32_t (*fw)[2], const ek_dw_chan *ch) {
  quad_pass_impl(g, input, output, c0, fw, ch, 0);
}

/* Channels [c0, c0 + 4), depth_multiplier 1, filter of at most EK_DW_MAX_TAPS taps. */
static void quad_pass(const ek_dw_geo *g, const int32_t *mult, const int32_t *shift,
                      int32_t input_offset, const int8_t *input, const int8_t *filter,
                      const int32_t *bias, int8_t *output, int32_t c0) {
  const int32_t c = g->c;
  const int32_t taps = g->kh * g->kw;
  uint32_t fw[EK_DW_MAX_TAPS][2]; /* per tap: channels (0, 2) and (1, 3), sign-extended */
  ek_dw_chan ch[4];
  int32_t wsum[4] = {0, 0, 0, 0};
  int32_t wabs[4] = {0, 0, 0, 0};
  int fast = 1;
  int32_t t, m;

  for (t = 0; t < taps; t++) {
    const int8_t *w = filter + t * c + c0;
    const uint32_t wv = ek_load4(w);
    fw[t][0] = (uint32_t)ek_even(wv);
    fw[t][1] = (uint32_t)ek_odd(wv);
    for (m = 0; m < 4; m++) {
      wsum[m] += w[m];
      wabs[m] += w[m] < 0 ? -w[m] : w[m];
    }
  }
  for (m = 0; m < 4; m++) {
    const int32_t s = shift[c0 + m];
    const int32_t bv = bias != 0 ? bias[c0 + m] : 0;
    /* |acc| <= |bias| + 255 * sum |w| on every pixel, padded or not. */
    const int64_t bound = (bv < 0 ? -(int64_t)bv : (int64_t)bv) + 255 * (int64_t)wabs[m];
    ch[m].mult = mult[c0 + m];
    ch[m].left = s > 0 ? s : 0;
    ch[m].right = s > 0 ? 0 : -s;
    ch[m].bias = bv;
    ch[m].bias_in = (int32_t)((uint32_t)bv + (uint32_t)input_offset * (uint32_t)wsum[m]);
    if (ch[m].left > 28 || ch[m].right > 31 || (bound << ch[m].left) >= ((int64_t)1 << 29)) {
      fast = 0;
    }
  }
  if (fast) {
    for (m = 0; m < 4; m++) {
      ch[m].left += 1;
      ch[m].mask = ch[m].right > 0 ? (int32_t)1 << (ch[m].right - 1) : 0;
      ch[m].half = ch[m].right > 0 ? 1 : 0;
    }
    quad_pass_fast(g, input, output, c0, (const uint32_t(*)[2])fw, ch);
  } else {
    for (m = 0; m < 4; m++) {
      ch[m].mask = (int32_t)(((uint32_t)1 << ch[m].right) - 1u);
      ch[m].half = ch[m].mask >> 1;
    }
    quad_pass_general(g, input, output, c0, (const uint32_t(*)[2])fw, ch);
  }
}

static void depthwise_general(const ek_depthwise_params *p,
                              const int32_t *mult, const int32_t *shift,
                              const ek_dims4 *in, const int8_t *input,
                              const ek_dims4 *fd, const int8_t *filter,
                              const int32_t *bias,
                              const ek_dims4 *out, int8_t *output,
                              int32_t c_begin) {
  const int32_t m_count = p->depth_multiplier;
  const int32_t quads = m_count == 1 ? in->c / 4 : 0;
  const int32_t c_first = m_count == 1 ? c_begin : 0;
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
        for (q = c_first / 4; q < quads; q++) {
          int32_t acc[4];
          pixel_quad(p, in, image, fd, filter, 4 * q, in_y0, in_x0, ky0, ky1, kx0, kx1, acc);
          for (m = 0; m < 4; m++) {
            output[4 * q + m] = requantize_one(acc[m], bias, 4 * q + m, mult, shift, p);
          }
        }
        for (ic = c_first > 4 * quads ? c_first : 4 * quads; ic < in->c; ic++) {
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

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  const int32_t quads = in->c / 4;
  int32_t q, x, c_done = 0;
  if (p->depth_multiplier == 1 && quads > 0 && fd->h * fd->w <= EK_DW_MAX_TAPS) {
    int32_t ok = 1;
    for (q = 0; q < 4 * quads; q++) {
      if (mult[q] == EK_INT32_MIN) {
        ok = 0;
      }
    }
    if (ok) {
      ek_dw_geo g;
      g.c = in->c;
      g.in_h = in->h;
      g.in_w = in->w;
      g.out_n = out->n;
      g.out_h = out->h;
      g.out_w = out->w;
      g.out_c = out->c;
      g.kh = fd->h;
      g.kw = fd->w;
      g.stride_h = p->stride_h;
      g.stride_w = p->stride_w;
      g.pad_top = p->pad_top;
      g.pad_left = p->pad_left;
      g.dil_h = p->dilation_h;
      g.dil_w = p->dilation_w;
      g.out_off = p->output_offset;
      g.lo = p->act_min;
      g.hi = p->act_max;
      g.off2 = ek_dup16(p->input_offset);
      /* Output columns [x_lo, x_hi) have every filter column in bounds. */
      g.x_lo = g.out_w;
      g.x_hi = g.out_w;
      for (x = 0; x < g.out_w; x++) {
        int32_t kx0, kx1;
        tap_range(x * g.stride_w - g.pad_left, g.dil_w, g.kw, g.in_w, &kx0, &kx1);
        if (kx0 == 0 && kx1 == g.kw) {
          if (g.x_lo == g.out_w) {
            g.x_lo = x;
          }
          g.x_hi = x + 1;
        }
      }
      for (q = 0; q < quads; q++) {
        quad_pass(&g, mult, shift, p->input_offset, input, filter, bias, output, 4 * q);
      }
      c_done = 4 * quads;
      if (c_done == in->c) {
        return;
      }
    }
  }
  depthwise_general(p, mult, shift, in, input, fd, filter, bias, out, output, c_done);
}
