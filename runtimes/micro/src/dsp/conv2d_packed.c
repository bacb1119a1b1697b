/* CONV_2D int8 with packed filters, Armv7E-M DSP variant: the portable kernel's bytes
 * (TFLM reference_integer_ops::ConvPerChannel) as a matrix product of two output pixels
 * by two output channels. The two pixels' windows are gathered (padding taps hold the
 * input zero point, which the folded bias accounts for) and widened once to int16 with
 * SXTB16 into scratch: per group of 4 taps, pixel 0's even and odd pairs, then pixel 1's.
 * Per group the inner loop reads those 4 words and the 2 filter words of a channel pair
 * (kernels.h) and does 8 SMLADs. Outputs are written pixel pair by pixel pair, each
 * after both windows were read. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "packed.h"
#include "simd.h"

/* Copies n bytes (no library call: the runs here are a few bytes). */
static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
  int32_t i;
  for (i = 0; i < n; i++) {
    dst[i] = src[i];
  }
}

static void fill_bytes(int8_t *dst, int8_t v, int32_t n) {
  int32_t i;
  for (i = 0; i < n; i++) {
    dst[i] = v;
  }
}

/* Widens n bytes (n a multiple of 4) into the column slots of one pixel: per group of 4,
 * the SXTB16 even and odd pairs, 4 words apart from group to group. */
static void widen(const int8_t *src, int32_t n, ek_word *slot) {
  int32_t i;
  for (i = 0; i < n; i += 4, slot += 4) {
    const uint32_t v = ek_load4(src + i);
    slot[0] = (uint32_t)ek_even(v);
    slot[1] = (uint32_t)ek_odd(v);
  }
}

/* One filter row (ky) of a window, kw * cin raw bytes, into dst: taps outside the input
 * hold the input zero point. */
static void gather_row(const ek_conv_packed_params *p, const ek_dims4 *in, const int8_t *row,
                       int32_t in_x0, int32_t kw, int8_t *dst) {
  const int32_t cin = in->c;
  const int8_t zp = (int8_t)p->input_zero_point;
  int32_t kx;
  if (p->dilation_w == 1) { /* zero points, one run of the input, zero points */
    const int32_t left = in_x0 < 0 ? (-in_x0 < kw ? -in_x0 : kw) : 0;
    const int32_t end = in->w - in_x0 < kw ? in->w - in_x0 : kw;
    const int32_t right = end > left ? end : left;
    fill_bytes(dst, zp, left * cin);
    copy_bytes(dst + left * cin, row + (in_x0 + left) * cin, (right - left) * cin);
    fill_bytes(dst + right * cin, zp, (kw - right) * cin);
    return;
  }
  for (kx = 0; kx < kw; kx++) {
    const int32_t ix = in_x0 + kx * p->dilation_w;
    if (ix < 0 || ix >= in->w) {
      fill_bytes(dst + kx * cin, zp, cin);
    } else {
      copy_bytes(dst + kx * cin, row + ix * cin, cin);
    }
  }
}

/* The int16 column of output pixel `pixel` into its slots. When a filter row is a whole
 * number of groups (kw * cin % 4 == 0), rows inside the input are widened straight from
 * it; other rows, and every row otherwise, go through the gathered window. */
static void fill_column(const ek_conv_packed_params *p, const ek_dims4 *in, const int8_t *input,
                        const ek_dims4 *fd, const ek_dims4 *out, int32_t pixel, int32_t kp,
                        int8_t *window, ek_word *slot) {
  const int32_t cin = in->c, kh = fd->h, kw = fd->w;
  const int32_t x = pixel % out->w;
  const int32_t y = (pixel / out->w) % out->h;
  const int32_t b = pixel / (out->w * out->h);
  const int32_t in_y0 = y * p->stride_h - p->pad_top;
  const int32_t in_x0 = x * p->stride_w - p->pad_left;
  const int32_t row_bytes = kw * cin;
  const int32_t x_inside = in_x0 >= 0 && in_x0 + (kw - 1) * p->dilation_w < in->w;
  const int8_t *image = input + b * in->h * in->w * cin;
  const uint32_t zp2 = ((uint32_t)p->input_zero_point & 0xFFFFu) * 0x10001u;
  int32_t ky;
  if ((row_bytes & 3) == 0) {
    for (ky = 0; ky < kh; ky++, slot += row_bytes) {
      const int32_t iy = in_y0 + ky * p->dilation_h;
      if (iy < 0 || iy >= in->h) { /* a row of zero points: its widened words are known */
        int32_t g;
        for (g = 0; g < row_bytes; g += 4) {
          slot[g] = zp2;
          slot[g + 1] = zp2;
        }
        continue;
      } else if (x_inside && p->dilation_w == 1) {
        widen(image + (iy * in->w + in_x0) * cin, row_bytes, slot);
        continue;
      } else {
        gather_row(p, in, image + iy * in->w * cin, in_x0, kw, window);
      }
      widen(window, row_bytes, slot);
    }
    return;
  }
  for (ky = 0; ky < kh; ky++) {
    const int32_t iy = in_y0 + ky * p->dilation_h;
    if (iy < 0 || iy >= in->h) {
      fill_bytes(window + ky * row_bytes, (int8_t)p->input_zero_point, row_bytes);
    } else {
      gather_row(p, in, image + iy * in->w * cin, in_x0, kw, window + ky * row_bytes);
    }
  }
  fill_bytes(window + kh * row_bytes, 0, kp - kh * row_bytes);
  widen(window, kp, slot);
}

/* One group of 4 taps: LDM of the 4 column words, 2 LDR of the filter words, 4 SXTB16,
 * 8 SMLAD. */
#define EK_PAIR_GROUP_ASM \
  "ldm %[xp]!, {%[x0e], %[x0o], %[x1e], %[x1o]}\n\t" \
  "ldr %[w], [%[wp]], #4\n\t" \
  "sxtb16 %[t], %[w], ror #8\n\t" \
  "sxtb16 %[w], %[w]\n\t" \
  "smlad %[a00], %[w], %[x0e], %[a00]\n\t" \
  "smlad %[a00], %[t], %[x0o], %[a00]\n\t" \
  "smlad %[a01], %[w], %[x1e], %[a01]\n\t" \
  "smlad %[a01], %[t], %[x1o], %[a01]\n\t" \
  "ldr %[w], [%[wp]], #4\n\t" \
  "sxtb16 %[t], %[w], ror #8\n\t" \
  "sxtb16 %[w], %[w]\n\t" \
  "smlad %[a10], %[w], %[x0e], %[a10]\n\t" \
  "smlad %[a10], %[t], %[x0o], %[a10]\n\t" \
  "smlad %[a11], %[w], %[x1e], %[a11]\n\t" \
  "smlad %[a11], %[t], %[x1o], %[a11]\n\t"

/* `groups` groups: one alone when the count is odd, then two per iteration. */
#define EK_PAIR_LOOP_ASM \
  "tst %[n], #1\n\t" \
  "beq 2f\n\t" \
  EK_PAIR_GROUP_ASM \
  "2:\n\t" \
  "lsrs %[n], %[n], #1\n\t" \
  "beq 3f\n\t" \
  "1:\n\t" \
  EK_PAIR_GROUP_ASM \
  EK_PAIR_GROUP_ASM \
  "subs %[n], %[n], #1\n\t" \
  "bne 1b\n\t" \
  "3:\n\t"

/* acc{channel}{pixel} += the dot products of `groups` groups (2 * groups words of the
 * filter pair at *wp, 4 * groups column words at *xp); both pointers advance. One group:
 * LDM of the 4 column words, 2 LDR of the filter words, 4 SXTB16, 8 SMLAD (LDRD of
 * both filter words would need one register more than the 13 the loop has). Two groups
 * per iteration, after one alone when `groups` is odd. The column
 * words are pinned to r0-r3 so that LDM loads them in order. */
static __attribute__((noinline)) void pair_dot(const ek_word **xpp,
                                                           const ek_word **wpp, int32_t groups,
                                                           int32_t acc[4]) {
  register uint32_t x0e __asm__("r0");
  register uint32_t x0o __asm__("r1");
  register uint32_t x1e __asm__("r2");
  register uint32_t x1o __asm__("r3");
  uint32_t w, t;
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  const ek_word *xp = *xpp, *wp = *wpp;
  __asm__ volatile(EK_PAIR_LOOP_ASM
      : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [xp] "+r"(xp),
        [wp] "+r"(wp), [n] "+r"(groups), [x0e] "=&r"(x0e), [x0o] "=&r"(x0o), [x1e] "=&r"(x1e),
        [x1o] "=&r"(x1o), [w] "=&r"(w), [t] "=&r"(t)
      :
      : "cc", "memory");
  acc[0] = a00;
  acc[1] = a01;
  acc[2] = a10;
  acc[3] = a11;
  *xpp = xp;
  *wpp = wp;
}

/* What the channel pairs of one pixel pair share (fast requantization). */
typedef struct {
  const ek_word *cols;
  int32_t groups;
  const int32_t *bias, *mult, *shift;
  int8_t *o0, *o1;
  int32_t round1, lo, hi;
} pair_job;

/* Channels oc and oc + 1 of the pixel pair: sums from the bias, the SMLAD loop, the fast
 * requantization and the four stores, in one function so that the loop's 13 registers
 * are free again for the requantization. Returns the filter pointer past the pair. */
static inline __attribute__((always_inline)) const ek_word *pair_block(const pair_job *j,
                                                                       const ek_word *wp,
                                                                       int32_t oc,
                                                                       const int32_t full) {
  register uint32_t x0e __asm__("r0");
  register uint32_t x0o __asm__("r1");
  register uint32_t x1e __asm__("r2");
  register uint32_t x1o __asm__("r3");
  uint32_t w, t;
  int32_t a00 = j->bias[oc], a10 = j->bias[oc + 1];
  int32_t a01 = a00, a11 = a10;
  const ek_word *xp = j->cols;
  int32_t groups = j->groups;
  __asm__ volatile(EK_PAIR_LOOP_ASM
                   : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
                     [xp] "+r"(xp), [wp] "+r"(wp), [n] "+r"(groups), [x0e] "=&r"(x0e),
                     [x0o] "=&r"(x0o), [x1e] "=&r"(x1e), [x1o] "=&r"(x1o), [w] "=&r"(w),
                     [t] "=&r"(t)
                   :
                   : "cc", "memory");
  {
    const int32_t m0 = j->mult[oc], m1 = j->mult[oc + 1];
    const int32_t n0 = ~j->shift[oc], n1 = ~j->shift[oc + 1];
    const int32_t round1 = j->round1, lo = j->lo, hi = j->hi;
    int8_t *o0 = j->o0 + oc, *o1 = j->o1 + oc;
    const int8_t v00 = ek_packed_fast_out(a00, m0, n0, round1, lo, hi, full);
    const int8_t v01 = ek_packed_fast_out(a01, m0, n0, round1, lo, hi, full);
    const int8_t v10 = ek_packed_fast_out(a10, m1, n1, round1, lo, hi, full);
    const int8_t v11 = ek_packed_fast_out(a11, m1, n1, round1, lo, hi, full);
    o0[0] = v00;
    o0[1] = v10;
    o1[0] = v01;
    o1[1] = v11;
  }
  return wp;
}

static __attribute__((noinline)) const ek_word *pair_block_full(const pair_job *j,
                                                                const ek_word *wp, int32_t oc) {
  return pair_block(j, wp, oc, 1);
}

static __attribute__((noinline)) const ek_word *pair_block_clamp(const pair_job *j,
                                                                 const ek_word *wp, int32_t oc) {
  return pair_block(j, wp, oc, 0);
}

/* Channels oc and oc + 1 of a single pixel (an odd last one): per group, one LDRD of its
 * two column words (its slot of the pair layout), 2 LDR of the filter words, 4 SXTB16 and
 * 4 SMLAD, then the fast requantization and two stores. */
static inline __attribute__((always_inline)) const ek_word *single_block(const pair_job *j,
                                                                         const ek_word *wp,
                                                                         int32_t oc,
                                                                         const int32_t full) {
  uint32_t xe, xo, w, t;
  int32_t a0 = j->bias[oc], a1 = j->bias[oc + 1];
  const ek_word *xp = j->cols;
  int32_t n = j->groups;
  __asm__ volatile(
      "1:\n\t"
      "ldrd %[xe], %[xo], [%[xp]], #16\n\t"
      "ldr %[w], [%[wp]], #4\n\t"
      "sxtb16 %[t], %[w], ror #8\n\t"
      "sxtb16 %[w], %[w]\n\t"
      "smlad %[a0], %[w], %[xe], %[a0]\n\t"
      "smlad %[a0], %[t], %[xo], %[a0]\n\t"
      "ldr %[w], [%[wp]], #4\n\t"
      "sxtb16 %[t], %[w], ror #8\n\t"
      "sxtb16 %[w], %[w]\n\t"
      "smlad %[a1], %[w], %[xe], %[a1]\n\t"
      "smlad %[a1], %[t], %[xo], %[a1]\n\t"
      "subs %[n], %[n], #1\n\t"
      "bne 1b\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [xp] "+r"(xp), [wp] "+r"(wp), [n] "+r"(n),
        [xe] "=&r"(xe), [xo] "=&r"(xo), [w] "=&r"(w), [t] "=&r"(t)
      :
      : "cc", "memory");
  j->o0[oc] = ek_packed_fast_out(a0, j->mult[oc], ~j->shift[oc], j->round1, j->lo, j->hi, full);
  j->o0[oc + 1] = ek_packed_fast_out(a1, j->mult[oc + 1], ~j->shift[oc + 1], j->round1, j->lo,
                                     j->hi, full);
  return wp;
}

static __attribute__((noinline)) const ek_word *single_block_full(const pair_job *j,
                                                                  const ek_word *wp, int32_t oc) {
  return single_block(j, wp, oc, 1);
}

static __attribute__((noinline)) const ek_word *single_block_clamp(const pair_job *j,
                                                                   const ek_word *wp, int32_t oc) {
  return single_block(j, wp, oc, 0);
}

/* Every channel pair of one pixel pair. `fast` (SMMULR requantization) and `full` (the
 * clamp is int8's own range: one SSAT) are constants at each call. */
static inline __attribute__((always_inline)) void channel_pairs(
    const ek_conv_packed_params *p, const int32_t *mult, const int32_t *shift,
    const ek_word *cols, int32_t groups, const ek_word *wp, const int32_t *bias, int32_t cout,
    int8_t *o0, int8_t *o1, const int32_t fast, const int32_t full) {
  const int32_t lo = p->act_min, hi = p->act_max;
  const int32_t out_off = p->output_offset;
  const int32_t round1 = 1 + 2 * out_off;
  const int32_t even = cout & ~1;
  int32_t oc;
  for (oc = 0; oc < even; oc += 2) {
    int32_t acc[4];
    const ek_word *xp = cols;
    int32_t m0, m1, s0, s1;
    acc[0] = acc[1] = bias[oc];
    acc[2] = acc[3] = bias[oc + 1];
    pair_dot(&xp, &wp, groups, acc);
    m0 = mult[oc];
    m1 = mult[oc + 1];
    s0 = shift[oc];
    s1 = shift[oc + 1];
    if (fast) {
      const int32_t n0 = ~s0, n1 = ~s1;
      o0[oc] = ek_packed_fast_out(acc[0], m0, n0, round1, lo, hi, full);
      o1[oc] = ek_packed_fast_out(acc[1], m0, n0, round1, lo, hi, full);
      o0[oc + 1] = ek_packed_fast_out(acc[2], m1, n1, round1, lo, hi, full);
      o1[oc + 1] = ek_packed_fast_out(acc[3], m1, n1, round1, lo, hi, full);
    } else {
      o0[oc] = ek_packed_exact_out(acc[0], m0, s0, out_off, lo, hi);
      o1[oc] = ek_packed_exact_out(acc[1], m0, s0, out_off, lo, hi);
      o0[oc + 1] = ek_packed_exact_out(acc[2], m1, s1, out_off, lo, hi);
      o1[oc + 1] = ek_packed_exact_out(acc[3], m1, s1, out_off, lo, hi);
    }
  }
  if (oc < cout) { /* an odd last channel: its pair's second channel is zero weights */
    int32_t acc[4];
    const ek_word *xp = cols;
    acc[0] = acc[1] = bias[oc];
    acc[2] = acc[3] = 0;
    pair_dot(&xp, &wp, groups, acc);
    if (fast) {
      o0[oc] = ek_packed_fast_out(acc[0], mult[oc], ~shift[oc], round1, lo, hi, full);
      o1[oc] = ek_packed_fast_out(acc[1], mult[oc], ~shift[oc], round1, lo, hi, full);
    } else {
      o0[oc] = ek_packed_exact_out(acc[0], mult[oc], shift[oc], out_off, lo, hi);
      o1[oc] = ek_packed_exact_out(acc[1], mult[oc], shift[oc], out_off, lo, hi);
    }
  }
}

/* An odd last channel oc of the pixel pair (fast requantization; its pair's second filter
 * is zeros). */
static __attribute__((cold, noinline)) void channel_tail(
    const ek_conv_packed_params *p, const int32_t *mult, const int32_t *shift,
    const ek_word *cols, int32_t groups, const ek_word *wp, const int32_t *bias, int32_t oc,
    int8_t *o0, int8_t *o1, int32_t full) {
  const int32_t round1 = 1 + 2 * p->output_offset;
  int32_t acc[4];
  const ek_word *xp = cols;
  acc[0] = acc[1] = bias[oc];
  acc[2] = acc[3] = 0;
  pair_dot(&xp, &wp, groups, acc);
  o0[oc] = ek_packed_fast_out(acc[0], mult[oc], ~shift[oc], round1, p->act_min, p->act_max, 0);
  o1[oc] = ek_packed_fast_out(acc[1], mult[oc], ~shift[oc], round1, p->act_min, p->act_max, 0);
  (void)full;
}

/* Layers without the fast requantization (rare: an effective scale of 0.5 or more, or
 * huge sums): optimized for size. */
static __attribute__((cold, noinline)) void channel_pairs_exact(
    const ek_conv_packed_params *p, const int32_t *mult, const int32_t *shift,
    const ek_word *cols, int32_t groups, const ek_word *wp, const int32_t *bias, int32_t cout,
    int8_t *o0, int8_t *o1) {
  channel_pairs(p, mult, shift, cols, groups, wp, bias, cout, o0, o1, 0, 0);
}

void ek_conv2d_packed_s8(const ek_conv_packed_params *p, const int32_t *mult,
                         const int32_t *shift, const ek_dims4 *in, const int8_t *input,
                         const ek_dims4 *fd, const int8_t *packed_filter,
                         const int32_t *folded_bias, const ek_dims4 *out, int8_t *output,
                         int16_t *scratch) {
  const int32_t kp = (fd->h * fd->w * in->c + 3) & ~3;
  const int32_t groups = kp >> 2;
  const int32_t cout = out->c;
  const int32_t pixels = out->n * out->h * out->w;
  ek_word *cols = (ek_word *)(void *)scratch;
  int8_t *window = (int8_t *)(void *)scratch + 4 * kp;
  const ek_word *wp = (const ek_word *)(const void *)packed_filter;
  const int32_t full = p->act_min == -128 && p->act_max == 127;
  pair_job job;
  int32_t i;
  job.cols = cols;
  job.groups = groups;
  job.bias = folded_bias;
  job.mult = mult;
  job.shift = shift;
  job.round1 = 1 + 2 * p->output_offset;
  job.lo = p->act_min;
  job.hi = p->act_max;
  for (i = 0; i < pixels; i += 2) {
    /* Pixel pairs from the first, or from the last with reverse (an output placed above
     * its input); both windows are read before either pixel is written. An odd pixel out
     * (the last one, or pixel 0 in reverse) is paired with itself (written twice, the same
     * bytes), except on the fast path with an even Cout, which has a one-pixel loop. */
    const int32_t hi = pixels - 1 - i;
    const int32_t pix = p->reverse ? (hi > 0 ? hi - 1 : 0) : i;
    const int32_t pix1 = p->reverse ? hi : (i + 1 < pixels ? i + 1 : i);
    int8_t *o0 = output + pix * cout, *o1 = output + pix1 * cout;
    fill_column(p, in, input, fd, out, pix, kp, window, cols);
    if (pix1 == pix && p->fast_requant && (cout & 1) == 0) {
      const ek_word *w = wp;
      int32_t oc;
      job.o0 = o0;
      for (oc = 0; oc < cout; oc += 2) {
        w = full ? single_block_full(&job, w, oc) : single_block_clamp(&job, w, oc);
      }
      break;
    }
    fill_column(p, in, input, fd, out, pix1, kp, window, cols + 2);
    if (p->fast_requant) {
      /* pair by pair (o1 == o0 for an odd last pixel: the same bytes twice), then an odd
       * last channel, whose pair's second filter is zeros */
      const ek_word *w = wp;
      int32_t oc;
      job.o0 = o0;
      job.o1 = o1;
      for (oc = 0; oc + 1 < cout; oc += 2) {
        w = full ? pair_block_full(&job, w, oc) : pair_block_clamp(&job, w, oc);
      }
      if (oc < cout) {
        channel_tail(p, mult, shift, cols, groups, w, folded_bias, oc, o0, o1, full);
      }
    } else {
      channel_pairs_exact(p, mult, shift, cols, groups, wp, folded_bias, cout, o0, o1);
    }
  }
}
