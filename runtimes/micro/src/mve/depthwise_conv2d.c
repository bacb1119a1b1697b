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
 * depth multipliers, and more than EK_MVE_MAX_COUT channels, take the scalar loop.
 *
 * 3x3 filters with dilation 1, depth multiplier 1 and C a multiple of 8 up to 128 (KWS)
 * take dw3x3 at the end of the file instead (VMULLB / VMULLT on int16 lanes, repacked
 * weights, per-channel constants prepared once per call, padded windows copied). */
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

static __attribute__((noinline)) void dw_general(const ek_depthwise_params *p,
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

/* ---- 3x3, depth multiplier 1, dilation 1, C a multiple of 8 (at most EK_DW3_MAX_C) ----
 *
 * Per call: the weights are repacked per block of eight channels (the nine taps of the
 * block contiguous, so every load has a small immediate offset), and per block a table
 * of the accumulator start (bias + input_offset x the sum of the nine weights), the
 * multiplier, and the left / right shifts of ek_mve_requant, each in the lane order of
 * the accumulators: channels 0, 2, 4, 6 (the bottom halves of VMULLB) then 1, 3, 5, 7
 * (VMULLT). Per tap and block: two widening loads of eight int8 to int16, VMULLB and
 * VMULLT (exact int32 products) and two adds, on raw inputs. A window cut by the
 * padding is first copied into a 3x3xC stack window whose outside taps hold the input
 * zero point (-input_offset): w * zp cancels that tap's share of the folded offset mod
 * 2^32, so the sum equals TFLM's (outside taps skipped). The requantization is
 * ek_mve_requant's sequence (the same shifts, precomputed). The narrowing VMOVNB /
 * VMOVNT puts the lanes back in channel order for one eight-byte store. Pixels are
 * written in increasing order, each after every read of its window, as in the general
 * path. */
#define EK_DW3_MAX_C 128

/* One output pixel of dw3x3: src the window's top-left tap, ys the step between its rows
 * (the taps of a row are c apart). */
static inline __attribute__((always_inline)) void dw3_pixel(const int8_t *src, int32_t ys, const int32_t c,
                                                            const int8_t *wp, const int32_t *tb, int8_t *op,
                                                            int32_t out_offset, int32x4_t vmin, int32x4_t vmax) {
  /* pointers at the middle column: the taps at -c, 0, +c */
  const int8_t *r0 = src + c;
  const int8_t *r1 = r0 + ys;
  const int8_t *r2 = r1 + ys;
  int32_t bk;
  for (bk = 0; bk < c; bk += 8) {
    int32x4_t ae = vldrwq_s32(tb);
    int32x4_t ao = vldrwq_s32(tb + 4);
    int16x8_t xv, wv, o16;
#define EK_DW3_TAP(row, off, tap)                                \
  xv = vldrbq_s16((row) + (off));                               \
  wv = vldrbq_s16(wp + (tap) * 8);                              \
  ae = vaddq_s32(ae, vmullbq_int_s16(xv, wv));                  \
  ao = vaddq_s32(ao, vmulltq_int_s16(xv, wv));                  \
  __asm__("" : "+w"(ae), "+w"(ao)) /* one sum per tap, in registers */
    EK_DW3_TAP(r0, -c, 0);
    EK_DW3_TAP(r0, 0, 1);
    EK_DW3_TAP(r0, c, 2);
    EK_DW3_TAP(r1, -c, 3);
    EK_DW3_TAP(r1, 0, 4);
    EK_DW3_TAP(r1, c, 5);
    EK_DW3_TAP(r2, -c, 6);
    EK_DW3_TAP(r2, 0, 7);
    EK_DW3_TAP(r2, c, 8);
#undef EK_DW3_TAP
    /* ek_mve_requant with the shifts split beforehand, even lanes then odd lanes */
    {
      const int32x4_t re = vldrwq_s32(tb + 24);
      ae = vqrdmulhq_s32(vshlq_s32(ae, vldrwq_s32(tb + 16)), vldrwq_s32(tb + 8));
      ae = vqaddq_s32(ae, vshrq_n_s32(vandq_s32(ae, re), 31));
      ae = vaddq_n_s32(vrshlq_s32(ae, re), out_offset);
      ae = vminq_s32(vmaxq_s32(ae, vmin), vmax);
      o16 = vmovnbq_s32(vreinterpretq_s16_s32(ae), ae);
    }
    __asm__("" : "+w"(o16), "+w"(ao));
    {
      const int32x4_t ro = vldrwq_s32(tb + 28);
      ao = vqrdmulhq_s32(vshlq_s32(ao, vldrwq_s32(tb + 20)), vldrwq_s32(tb + 12));
      ao = vqaddq_s32(ao, vshrq_n_s32(vandq_s32(ao, ro), 31));
      ao = vaddq_n_s32(vrshlq_s32(ao, ro), out_offset);
      ao = vminq_s32(vmaxq_s32(ao, vmin), vmax);
      vstrbq_s16(op, vmovntq_s32(o16, ao));
    }
    r0 += 8;
    r1 += 8;
    r2 += 8;
    wp += 72;
    tb += 32;
    op += 8;
  }
}

/* no-schedule-insns: GCC's first scheduling pass would hoist all 18 loads of a block and
 * spill them to the stack (eight Q registers). */
static __attribute__((noinline, optimize("no-schedule-insns", "no-auto-inc-dec"))) void dw3x3(const ek_depthwise_params *p,
                                             const int32_t *mult, const int32_t *shift,
                                             const ek_dims4 *in, const int8_t *input,
                                             const int8_t *filter, const int32_t *bias,
                                             const ek_dims4 *out, int8_t *output) {
  const int32_t c = in->c;
  const int32_t blocks = c / 8;
  const int32_t in_w = in->w, in_h = in->h;
  const int32_t sh = p->stride_h, sw = p->stride_w;
  const int32_t pad_top = p->pad_top, pad_left = p->pad_left;
  const int32_t out_offset = p->output_offset;
  const int8_t zp = (int8_t)(-p->input_offset);
  const int32x4_t vmin = vdupq_n_s32(p->act_min);
  const int32x4_t vmax = vdupq_n_s32(p->act_max);
  int32_t tab[EK_DW3_MAX_C * 4] __attribute__((aligned(16)));
  int8_t wpk[EK_DW3_MAX_C * 9] __attribute__((aligned(16)));
  int8_t win[EK_DW3_MAX_C * 9] __attribute__((aligned(16)));
  int32_t bk, j, t, b, y, x;
  for (bk = 0; bk < blocks; bk++) {
    int32_t *tb = tab + bk * 32;
    for (j = 0; j < 8; j++) {
      const int32_t ch = bk * 8 + j;
      const int32_t lane = (j & 1) * 4 + (j >> 1);
      int32_t wsum = 0;
      for (t = 0; t < 9; t++) {
        wpk[bk * 72 + t * 8 + j] = filter[t * c + ch];
        wsum += filter[t * c + ch];
      }
      tb[lane] = ek_wrap_add(bias != 0 ? bias[ch] : 0, (int32_t)((uint32_t)wsum * (uint32_t)p->input_offset));
      tb[8 + lane] = mult[ch];
      tb[16 + lane] = shift[ch] > 0 ? shift[ch] : 0;
      tb[24 + lane] = shift[ch] < 0 ? shift[ch] : 0;
    }
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in_h * in_w * c;
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * sh - pad_top;
      const int32_t row_inside = in_y0 >= 0 && in_y0 + 3 <= in_h;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * sw - pad_left;
        int8_t *op = output + ((b * out->h + y) * out->w + x) * c;
        const int8_t *src;
        int32_t ys;
        if (row_inside && in_x0 >= 0 && in_x0 + 3 <= in_w) {
          src = image + (in_y0 * in_w + in_x0) * c;
          ys = in_w * c;
        } else {
          int32_t ky, kx;
          for (ky = 0; ky < 3; ky++) {
            const int32_t iy = in_y0 + ky;
            for (kx = 0; kx < 3; kx++) {
              const int32_t ix = in_x0 + kx;
              int8_t *dst = win + (ky * 3 + kx) * c;
              if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                ek_mve_fill(dst, zp, c);
              } else {
                ek_mve_copy(dst, image + (iy * in_w + ix) * c, c);
              }
            }
          }
          src = win;
          ys = 3 * c;
        }
        if (c == 64) { /* C a constant: the taps' offsets fit the loads' immediates */
          dw3_pixel(src, ys, 64, wpk, tab, op, out_offset, vmin, vmax);
        } else {
          dw3_pixel(src, ys, c, wpk, tab, op, out_offset, vmin, vmax);
        }
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
  if (p->depth_multiplier == 1 && fd->h == 3 && fd->w == 3 && p->dilation_h == 1 && p->dilation_w == 1 &&
      in->c % 8 == 0 && in->c > 0 && in->c <= EK_DW3_MAX_C && p->input_offset >= -127 && p->input_offset <= 128) {
    dw3x3(p, mult, shift, in, input, filter, bias, out, output);
  } else {
    dw_general(p, mult, shift, in, input, fd, filter, bias, out, output);
  }
}
