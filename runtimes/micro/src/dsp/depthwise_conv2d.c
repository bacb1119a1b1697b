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
#include "packed.h"
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

/* Rare shapes (depth_multiplier > 1, no fast requantization): optimized for size. */
static __attribute__((cold, noinline)) void depthwise_general(const ek_depthwise_params *p,
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
 * (the requantization is packed.h's ek_packed_fast_out, which folds the output offset
 * into the last halving and clamps with one SSAT for the full int8 range). Each pixel's
 * taps are those in bounds (3x3 windows and rows of 3 or 2 taps unrolled); output pixels
 * are still written in increasing order, each channel quad after all of its reads, as
 * the portable loop does. */

/* SXTAB16 with rotate: o + (bytes 1 and 3 of w, sign-extended), per halfword. */
static inline int16x2_t ek_odd_add(int16x2_t o, uint32_t w) {
  int16x2_t r;
  __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(o), "r"(w));
  return r;
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

/* What every pixel of depthwise_fast shares. */
typedef struct {
  int32_t c, quads;
  int32_t col_step; /* dilation_w * c: from one tap to the next in a row */
  int32_t row_step; /* dilation_h * in_w * c: from one filter row to the next */
  int32_t wrow;     /* kw * c: one filter row */
  int16x2_t off2;
  int32_t round1, lo, hi;
  int32_t full; /* [lo, hi] = [-128, 127] */
  const int32_t *bias, *mult, *shift;
} dw_ctx;

/* The four outputs of a channel quad from m (multipliers) and s (shifts): bias already
 * in the sums. The constants come in as values: the int8 stores could alias a struct. */
#define EK_DW_OUT4(m, s, out)                                                  \
  do {                                                                         \
    (out)[0] = ek_packed_fast_out(a0, (m)[0], ~(s)[0], round1, lo, hi, full);  \
    (out)[1] = ek_packed_fast_out(a1, (m)[1], ~(s)[1], round1, lo, hi, full);  \
    (out)[2] = ek_packed_fast_out(a2, (m)[2], ~(s)[2], round1, lo, hi, full);  \
    (out)[3] = ek_packed_fast_out(a3, (m)[3], ~(s)[3], round1, lo, hi, full);  \
  } while (0)

/* One tap of a channel quad at byte offset `off` (an addressing suffix) of the input row
 * x and the filter row w. */
#define EK_DW_TAP_ASM(off)                                 \
  "ldr %[t0], [%[x]" off "]\n\t"                           \
  "ldr %[t1], [%[w]" off "]\n\t"                           \
  "sxtab16 %[t2], %[off2], %[t0]\n\t"                      \
  "sxtb16 %[t3], %[t1]\n\t"                                \
  "smlabb %[a0], %[t2], %[t3], %[a0]\n\t"                  \
  "smlatt %[a2], %[t2], %[t3], %[a2]\n\t"                  \
  "sxtab16 %[t0], %[off2], %[t0], ror #8\n\t"              \
  "sxtb16 %[t1], %[t1], ror #8\n\t"                        \
  "smlabb %[a1], %[t0], %[t1], %[a1]\n\t"                  \
  "smlatt %[a3], %[t0], %[t1], %[a3]\n\t"

/* The next row: x by `row`, w by one filter row of 3 taps (3c). */
#define EK_DW_NEXT_ROW_ASM                                 \
  "add %[x], %[x], %[row]\n\t"                             \
  "add %[w], %[w], %[c], lsl #1\n\t"                       \
  "add %[w], %[w], %[c]\n\t"

#define EK_DW_ROW3_ASM EK_DW_TAP_ASM("") EK_DW_TAP_ASM(", %[c]") EK_DW_TAP_ASM(", %[c], lsl #1")
#define EK_DW_ROW2_ASM EK_DW_TAP_ASM("") EK_DW_TAP_ASM(", %[c]")

/* The four outputs of channel quad cq from its sums: SSAT alone for the full int8 range. */
static inline __attribute__((always_inline)) void dw_requant4(const dw_ctx *k, int32_t cq,
                                                              int32_t a0, int32_t a1, int32_t a2,
                                                              int32_t a3, int8_t *out) {
  const int32_t *mult = k->mult + cq, *shift = k->shift + cq;
  const int32_t round1 = k->round1, lo = k->lo, hi = k->hi;
  if (k->full) {
    const int32_t full = 1;
    EK_DW_OUT4(mult, shift, out);
  } else {
    const int32_t full = 0;
    EK_DW_OUT4(mult, shift, out);
  }
}

/* Channel quad cq of one output pixel for a window of rows x taps, from x (its top left
 * input) and w (its top left filter tap), for a filter 3 taps wide with dilation_w 1:
 * the sums start from the bias, run in assembly (GCC's own schedule of these 13
 * registers spilled in every row), and are requantized (full int8 range: one SSAT) and
 * stored here. Other ranges take dw_quad_any (code size: the clamp in every window
 * shape cost KWS 800 bytes of flash). */
#define EK_DW_QUAD_FN(name, body)                                                           \
  static __attribute__((noinline)) void name(const dw_ctx *k, const int8_t *x,              \
                                             const int8_t *w, int32_t cq, int8_t *out) {    \
    const int32_t *b = k->bias + cq;                                                        \
    const int32_t c = k->c, row = k->row_step;                                              \
    const int16x2_t off2 = k->off2;                                                         \
    int32_t a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];                                     \
    uint32_t t0, t1, t2, t3;                                                                \
    __asm__ volatile(body                                                                   \
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),          \
                       [x] "+r"(x), [w] "+r"(w), [t0] "=&r"(t0), [t1] "=&r"(t1),            \
                       [t2] "=&r"(t2), [t3] "=&r"(t3)                                       \
                     : [c] "r"(c), [row] "r"(row), [off2] "r"(off2)                         \
                     : "memory");                                                           \
    {                                                                                       \
      const int32_t *mult = k->mult + cq, *shift = k->shift + cq;                           \
      const int32_t round1 = k->round1, lo = -128, hi = 127, full = 1;                      \
      EK_DW_OUT4(mult, shift, out);                                                         \
    }                                                                                       \
  }

EK_DW_QUAD_FN(dw_quad_3x3, EK_DW_ROW3_ASM EK_DW_NEXT_ROW_ASM EK_DW_ROW3_ASM EK_DW_NEXT_ROW_ASM
                               EK_DW_ROW3_ASM)
EK_DW_QUAD_FN(dw_quad_2x3, EK_DW_ROW3_ASM EK_DW_NEXT_ROW_ASM EK_DW_ROW3_ASM)
EK_DW_QUAD_FN(dw_quad_3x2, EK_DW_ROW2_ASM EK_DW_NEXT_ROW_ASM EK_DW_ROW2_ASM EK_DW_NEXT_ROW_ASM
                               EK_DW_ROW2_ASM)
EK_DW_QUAD_FN(dw_quad_2x2, EK_DW_ROW2_ASM EK_DW_NEXT_ROW_ASM EK_DW_ROW2_ASM)

/* Any other in-bounds window [nky x nkx] of channel quad cq (k: steps). */
static __attribute__((noinline)) void dw_quad_any(const dw_ctx *k, const int8_t *x,
                                                  const int8_t *w, int32_t nky, int32_t nkx,
                                                  int32_t cq, int8_t *out) {
  const int16x2_t off2 = k->off2;
  const int32_t *b = k->bias + cq;
  int32_t a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
  int32_t ky, kx;
  for (ky = 0; ky < nky; ky++, x += k->row_step, w += k->wrow) {
    for (kx = 0; kx < nkx; kx++) {
      EK_DW_TAP(x + kx * k->col_step, w + kx * k->c);
    }
  }
  dw_requant4(k, cq, a0, a1, a2, a3, out);
}

/* Every channel quad of one output pixel: in-bounds taps [nky x nkx] from x (input) and
 * w (filter) on; the common windows of a 3x3 filter in assembly. */
static void dw_pixel(const dw_ctx *k, const int8_t *x, const int8_t *w, int32_t nky, int32_t nkx,
                     int8_t *out) {
  const int32_t c = k->c, quads = k->quads;
  const int32_t unit = k->col_step == c && k->wrow == 3 * c; /* 3 taps wide, dilation_w 1 */
  const int32_t shape = unit && k->full && nky >= 2 && nkx >= 2 ? (nky - 2) * 2 + (nkx - 2) : -1;
  int32_t q;
#define EK_DW_QUADS(call)                                   \
  for (q = 0; q < quads; q++, x += 4, w += 4, out += 4) { \
    call;                                                   \
  }                                                         \
  break
  switch (shape) {
    case 3:
      EK_DW_QUADS(dw_quad_3x3(k, x, w, 4 * q, out));
    case 2:
      EK_DW_QUADS(dw_quad_3x2(k, x, w, 4 * q, out));
    case 1:
      EK_DW_QUADS(dw_quad_2x3(k, x, w, 4 * q, out));
    case 0:
      EK_DW_QUADS(dw_quad_2x2(k, x, w, 4 * q, out));
    default:
      EK_DW_QUADS(dw_quad_any(k, x, w, nky, nkx, 4 * q, out));
  }
#undef EK_DW_QUADS
}

static void depthwise_fast(const ek_depthwise_params *p, const int32_t *mult,
                           const int32_t *shift, const ek_dims4 *in, const int8_t *input,
                           const ek_dims4 *fd, const int8_t *filter, const int32_t *bias,
                           const ek_dims4 *out, int8_t *output) {
  static const int32_t zero_bias[4] = {0, 0, 0, 0};
  const int32_t c = in->c, in_h = in->h, in_w = in->w;
  const int32_t kh = fd->h, kw = fd->w;
  const int32_t full = p->act_min == -128 && p->act_max == 127;
  dw_ctx k;
  int32_t b, y, x, ic;
  k.c = c;
  k.quads = c / 4;
  k.col_step = p->dilation_w * c;
  k.row_step = p->dilation_h * in_w * c;
  k.wrow = kw * c;
  k.off2 = ek_dup16(p->input_offset);
  k.round1 = 1 + 2 * p->output_offset;
  k.lo = p->act_min;
  k.hi = p->act_max;
  k.full = full;
  k.bias = bias;
  k.mult = mult;
  k.shift = shift;
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in_h * in_w * c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      int32_t ky0, ky1;
      tap_range(in_y0, p->dilation_h, kh, in_h, &ky0, &ky1);
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int32_t kx0, kx1;
        tap_range(in_x0, p->dilation_w, kw, in_w, &kx0, &kx1);
        if (ky1 > ky0 && kx1 > kx0) {
          const int8_t *xp = image + ((in_y0 + ky0 * p->dilation_h) * in_w +
                                      in_x0 + kx0 * p->dilation_w) * c;
          const int8_t *wp = filter + (ky0 * kw + kx0) * c;
          if (bias == 0) {
            /* without a bias every quad starts from the same four zeros */
            dw_ctx k0 = k;
            int32_t q;
            k0.quads = 1;
            k0.bias = zero_bias;
            for (q = 0; q < k.quads; q++) {
              k0.mult = mult + 4 * q;
              k0.shift = shift + 4 * q;
              dw_pixel(&k0, xp + 4 * q, wp + 4 * q, ky1 - ky0, kx1 - kx0, output + 4 * q);
            }
          } else {
            dw_pixel(&k, xp, wp, ky1 - ky0, kx1 - kx0, output);
          }
        } else {
          /* no tap in bounds: every sum is the bias alone */
          const int32_t round1 = k.round1, lo = k.lo, hi = k.hi, full0 = 0;
          int32_t q;
          for (q = 0; q < k.quads; q++) {
            const int32_t *bq = bias != 0 ? bias + 4 * q : zero_bias;
            const int32_t a0 = bq[0], a1 = bq[1], a2 = bq[2], a3 = bq[3];
            const int32_t full = full0;
            EK_DW_OUT4(mult + 4 * q, shift + 4 * q, output + 4 * q);
          }
        }
        for (ic = 4 * k.quads; ic < c; ic++) {
          const int32_t acc = pixel_channel(p, in, image, fd, filter, ic, ic, in_y0, in_x0,
                                            ky0, ky1, kx0, kx1);
          output[ic] = requantize_one(acc, bias, ic, mult, shift, p);
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
  if (p->depth_multiplier == 1 && in->c >= 4 &&
      dw_fast_ok(shift, bias, filter, fd->h * fd->w, fd->c, in->c & ~3)) {
    depthwise_fast(p, mult, shift, in, input, fd, filter, bias, out, output);
  } else {
    depthwise_general(p, mult, shift, in, input, fd, filter, bias, out, output);
  }
}
