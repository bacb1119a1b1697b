/* CONV_2D int8, linux variant: the portable kernel's results, arranged for GCC to
 * vectorize (NEON, AVX2). Each output pixel gathers its receptive field once into an
 * int16 row (x + input_offset; 0 for taps outside the input, which TFLM skips), then
 * every output channel is a dot product of its OHWI filter row with that row: four
 * channels by two pixels per pass, over filter rows widened to int16 once per call
 * (int8 rows where the widened filter would not fit its 32 KiB stack buffer). */
#include "edgekit/kernels.h"

#include "autovec.h"
#include "fixedpoint.h"

/* int16 elements of the gathered row kept on the stack; a longer row is summed in
 * chunks of this size. */
#define EK_ROW_CHUNK 4096

/* Gathers the whole receptive field (fd->h * fd->w * in->c values) of the output pixel
 * whose top-left tap is (iy0, ix0) into row. */
static void gather_all(const ek_conv_params *p, const ek_dims4 *in, const int8_t *image,
                       const ek_dims4 *fd, int32_t iy0, int32_t ix0, int16_t *row) {
  const int32_t cin = in->c;
  const int16_t off = (int16_t)p->input_offset;
  const int32_t span = fd->w * cin;
  const int32_t row_inside = p->dilation_w == 1 && ix0 >= 0 && ix0 + fd->w <= in->w;
  int32_t ky, kx, i;
  for (ky = 0; ky < fd->h; ky++) {
    const int32_t iy = iy0 + ky * p->dilation_h;
    if (row_inside && iy >= 0 && iy < in->h) {
      /* the filter row's taps are contiguous in the input: one loop */
      const int8_t *src = image + (iy * in->w + ix0) * cin;
      int16_t *dst = row + ky * span;
      for (i = 0; i < span; i++) {
        dst[i] = (int16_t)(src[i] + off);
      }
      continue;
    }
    for (kx = 0; kx < fd->w; kx++) {
      const int32_t ix = ix0 + kx * p->dilation_w;
      int16_t *dst = row + (ky * fd->w + kx) * cin;
      if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) {
        for (i = 0; i < cin; i++) {
          dst[i] = 0;
        }
      } else {
        const int8_t *src = image + (iy * in->w + ix) * cin;
        for (i = 0; i < cin; i++) {
          dst[i] = (int16_t)(src[i] + off);
        }
      }
    }
  }
}

/* Gathers elements [k0, k0 + n) of that receptive field into row (rows longer than
 * EK_ROW_CHUNK). */
static void gather(const ek_conv_params *p, const ek_dims4 *in, const int8_t *image,
                   const ek_dims4 *fd, int32_t iy0, int32_t ix0, int32_t k0, int32_t n,
                   int16_t *row) {
  const int32_t cin = in->c;
  const int16_t off = (int16_t)p->input_offset;
  int32_t k = k0;
  while (k < k0 + n) {
    const int32_t tap = k / cin;
    const int32_t ic0 = k - tap * cin;
    const int32_t ky = tap / fd->w;
    const int32_t kx = tap - ky * fd->w;
    const int32_t iy = iy0 + ky * p->dilation_h;
    const int32_t ix = ix0 + kx * p->dilation_w;
    const int32_t run = (cin - ic0) < (k0 + n - k) ? (cin - ic0) : (k0 + n - k);
    int16_t *dst = row + (k - k0);
    int32_t i;
    if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) {
      for (i = 0; i < run; i++) {
        dst[i] = 0;
      }
    } else {
      const int8_t *src = image + (iy * in->w + ix) * cin + ic0;
      for (i = 0; i < run; i++) {
        dst[i] = (int16_t)(src[i] + off);
      }
    }
    k += run;
  }
}

/* acc[oc] (+)= filter row oc (elements [k0, k0 + n)) . row, for oc < cout: "=" for the
 * first chunk (no zeroing pass: GCC makes it a slow memset), "+=" after. */
static void accumulate(const int8_t *filter, int32_t depth, int32_t cout, int32_t k0, int32_t n,
                       const int16_t *row, int32_t *acc) {
  const int first = k0 == 0;
  int32_t oc = 0, k;
  for (; oc + 4 <= cout; oc += 4) {
    const int8_t *f0 = filter + oc * depth + k0;
    const int8_t *f1 = f0 + depth;
    const int8_t *f2 = f1 + depth;
    const int8_t *f3 = f2 + depth;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (k = 0; k < n; k++) {
      const int16_t x = row[k];
      a0 += (int32_t)((int16_t)f0[k] * x);
      a1 += (int32_t)((int16_t)f1[k] * x);
      a2 += (int32_t)((int16_t)f2[k] * x);
      a3 += (int32_t)((int16_t)f3[k] * x);
    }
    acc[oc] = first ? a0 : ek_wrap_add(acc[oc], a0);
    acc[oc + 1] = first ? a1 : ek_wrap_add(acc[oc + 1], a1);
    acc[oc + 2] = first ? a2 : ek_wrap_add(acc[oc + 2], a2);
    acc[oc + 3] = first ? a3 : ek_wrap_add(acc[oc + 3], a3);
  }
  for (; oc < cout; oc++) {
    const int32_t a = ek_dot_s8_s16(filter + oc * depth + k0, row, n);
    acc[oc] = first ? a : ek_wrap_add(acc[oc], a);
  }
}

/* accumulate() for two gathered rows (two output pixels) at once: each filter value
 * loaded serves both. */
static void accumulate_pair(const int16_t *filter, int32_t depth, int32_t cout, const int16_t *row0,
                            const int16_t *row1, int32_t *acc0, int32_t *acc1) {
  int32_t oc = 0, k;
  for (; oc + 4 <= cout; oc += 4) {
    const int16_t *f0 = filter + oc * depth;
    const int16_t *f1 = f0 + depth;
    const int16_t *f2 = f1 + depth;
    const int16_t *f3 = f2 + depth;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    for (k = 0; k < depth; k++) {  /* depth is a multiple of 16 after widen_filter */
      const int16_t x = row0[k];
      const int16_t z = row1[k];
      const int16_t w0 = f0[k], w1 = f1[k], w2 = f2[k], w3 = f3[k];
      a0 += (int32_t)(w0 * x);
      a1 += (int32_t)(w1 * x);
      a2 += (int32_t)(w2 * x);
      a3 += (int32_t)(w3 * x);
      b0 += (int32_t)(w0 * z);
      b1 += (int32_t)(w1 * z);
      b2 += (int32_t)(w2 * z);
      b3 += (int32_t)(w3 * z);
    }
    acc0[oc] = a0;
    acc0[oc + 1] = a1;
    acc0[oc + 2] = a2;
    acc0[oc + 3] = a3;
    acc1[oc] = b0;
    acc1[oc + 1] = b1;
    acc1[oc + 2] = b2;
    acc1[oc + 3] = b3;
  }
  for (; oc < cout; oc++) {
    int32_t a = 0, b = 0;
    for (k = 0; k < depth; k++) {
      a += (int32_t)(filter[oc * depth + k] * row0[k]);
      b += (int32_t)(filter[oc * depth + k] * row1[k]);
    }
    acc0[oc] = a;
    acc1[oc] = b;
  }
}

/* The filter widened once per call to int16 rows of `padded` values (the next multiple of
 * 16, zeros after each row), and gathered rows padded with zeros too: the dot products
 * then load int16 only (GCC picks 16-lane vectors, eight accumulators stay in registers)
 * and have no scalar tail (KWS's first conv has 40 values per row). */
#define EK_WIDE_FILTER_VALUES 16384

/* The padded row length, or 0 when the widened filter would not fit its stack buffer. */
static int32_t padded_depth(int32_t depth, int32_t cout) {
  const int32_t padded = (depth + 15) & ~15;
  return padded * cout <= EK_WIDE_FILTER_VALUES && 2 * padded <= EK_ROW_CHUNK ? padded : 0;
}

static void widen_filter(const int8_t *filter, int32_t depth, int32_t padded, int32_t cout,
                         int16_t *out) {
  int32_t oc, k;
  for (oc = 0; oc < cout; oc++) {
    for (k = 0; k < depth; k++) {
      out[oc * padded + k] = filter[oc * depth + k];
    }
    for (; k < padded; k++) {
      out[oc * padded + k] = 0;
    }
  }
}

/* The portable kernel's loop, for offsets the int16 widening cannot hold. */
static void conv_any_offset(const ek_conv_params *p, const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input, const ek_dims4 *fd,
                            const int8_t *filter, const int32_t *bias, const ek_dims4 *out,
                            int8_t *output) {
  int32_t b, y, x, oc, ky, kx, ic;
  for (b = 0; b < out->n; b++) {
    for (y = 0; y < out->h; y++) {
      for (x = 0; x < out->w; x++) {
        for (oc = 0; oc < out->c; oc++) {
          int32_t acc = 0;
          for (ky = 0; ky < fd->h; ky++) {
            const int32_t iy = y * p->stride_h - p->pad_top + ky * p->dilation_h;
            for (kx = 0; kx < fd->w; kx++) {
              const int32_t ix = x * p->stride_w - p->pad_left + kx * p->dilation_w;
              if (iy < 0 || iy >= in->h || ix < 0 || ix >= in->w) {
                continue;
              }
              for (ic = 0; ic < in->c; ic++) {
                acc = ek_wrap_add(acc, (int32_t)((uint32_t)filter[((oc * fd->h + ky) * fd->w + kx) * in->c + ic] *
                                                 (uint32_t)(input[((b * in->h + iy) * in->w + ix) * in->c + ic] +
                                                            p->input_offset)));
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
  const int32_t depth = fd->h * fd->w * in->c;
  const int32_t cout = out->c;
  int16_t row[EK_ROW_CHUNK];
  int32_t acc[EK_BLOCK];
  int32_t acc1[EK_BLOCK];
  const int simple = ek_simple_multipliers(mult, shift, cout);
  const int32_t kp = padded_depth(depth, cout);
  int16_t wide[EK_WIDE_FILTER_VALUES];
  int32_t b, y, x, oc0, k0, i;

  if (!ek_offset_fits_int8(p->input_offset)) {
    conv_any_offset(p, mult, shift, in, input, fd, filter, bias, out, output);
    return;
  }
  if (kp != 0) {
    widen_filter(filter, depth, kp, cout, wide);
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    for (y = 0; y < out->h; y++) {
      const int32_t iy0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t ix0 = x * p->stride_w - p->pad_left;
        int8_t *out_px = output + ((b * out->h + y) * out->w + x) * cout;
        if (kp != 0 && x + 1 < out->w) {
          /* two pixels of the row at once; both are read before either is written */
          gather_all(p, in, image, fd, iy0, ix0, row);
          gather_all(p, in, image, fd, iy0, ix0 + p->stride_w, row + kp);
          for (i = depth; i < kp; i++) {
            row[i] = 0;
            row[kp + i] = 0;
          }
          for (oc0 = 0; oc0 < cout; oc0 += EK_BLOCK) {
            const int32_t n = cout - oc0 < EK_BLOCK ? cout - oc0 : EK_BLOCK;
            accumulate_pair(wide + oc0 * kp, kp, n, row, row + kp, acc, acc1);
            ek_requantize_block(acc, n, bias != 0 ? bias + oc0 : 0, mult + oc0, shift + oc0, simple,
                                p->output_offset, p->act_min, p->act_max, out_px + oc0);
            ek_requantize_block(acc1, n, bias != 0 ? bias + oc0 : 0, mult + oc0, shift + oc0, simple,
                                p->output_offset, p->act_min, p->act_max, out_px + cout + oc0);
          }
          x++;
          continue;
        }
        if (kp != 0) {  /* the last pixel of an odd row: the pair path with itself */
          gather_all(p, in, image, fd, iy0, ix0, row);
          for (i = depth; i < kp; i++) {
            row[i] = 0;
          }
          for (oc0 = 0; oc0 < cout; oc0 += EK_BLOCK) {
            const int32_t n = cout - oc0 < EK_BLOCK ? cout - oc0 : EK_BLOCK;
            accumulate_pair(wide + oc0 * kp, kp, n, row, row, acc, acc1);
            ek_requantize_block(acc, n, bias != 0 ? bias + oc0 : 0, mult + oc0, shift + oc0, simple,
                                p->output_offset, p->act_min, p->act_max, out_px + oc0);
          }
          continue;
        }
        if (depth <= EK_ROW_CHUNK) {
          /* the common case: one gather serves every output channel */
          gather_all(p, in, image, fd, iy0, ix0, row);
        }
        for (oc0 = 0; oc0 < cout; oc0 += EK_BLOCK) {
          const int32_t n = cout - oc0 < EK_BLOCK ? cout - oc0 : EK_BLOCK;
          for (k0 = 0; k0 < depth; k0 += EK_ROW_CHUNK) {
            const int32_t len = depth - k0 < EK_ROW_CHUNK ? depth - k0 : EK_ROW_CHUNK;
            if (depth > EK_ROW_CHUNK) {
              gather(p, in, image, fd, iy0, ix0, k0, len, row);
            }
            accumulate(filter + oc0 * depth, depth, n, k0, len, row, acc);
          }
          ek_requantize_block(acc, n, bias != 0 ? bias + oc0 : 0, mult + oc0, shift + oc0, simple,
                              p->output_offset, p->act_min, p->act_max, out_px + oc0);
        }
      }
    }
  }
}
