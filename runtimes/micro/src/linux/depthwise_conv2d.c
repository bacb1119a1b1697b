/* DEPTHWISE_CONV_2D int8, linux variant: the portable kernel's results, arranged for
 * GCC to vectorize (NEON, AVX2). With depth multiplier 1 an output pixel accumulates
 * a block of channels tap by tap (3x3 windows inside the input: all nine taps in one
 * loop): contiguous int8 loads, int16 products (see autovec.h), int32 sums; then the
 * block is requantized at once. Other depth multipliers take the portable loop. */
#include "edgekit/kernels.h"

#include "autovec.h"
#include "fixedpoint.h"

/* The portable kernel's loop for one output pixel (any depth multiplier or offset). */
static void pixel_generic(const ek_depthwise_params *p, const int32_t *mult, const int32_t *shift,
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
          acc = ek_wrap_add(acc, (int32_t)((uint32_t)filter[(ky * fd->w + kx) * cout + oc] *
                                           (uint32_t)(image[(iy * in->w + ix) * in->c + ic] +
                                                      p->input_offset)));
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

/* One output pixel, depth multiplier 1, channels [c0, c0 + n), n <= EK_BLOCK. */
static void pixel_block(const ek_depthwise_params *p, const int32_t *mult, const int32_t *shift,
                        const ek_dims4 *in, const int8_t *image, const ek_dims4 *fd,
                        const int8_t *filter, const int32_t *bias, int32_t in_y0, int32_t in_x0,
                        int32_t c0, int32_t n, int simple, int8_t *out_px) {
  const int32_t c = in->c;
  const int16_t off = (int16_t)p->input_offset;
  int32_t acc[EK_BLOCK];
  int32_t ky, kx, i;
  int first = 1;  /* the first tap sets acc: no zeroing pass (GCC makes it a slow memset) */
  for (ky = 0; ky < fd->h; ky++) {
    const int32_t iy = in_y0 + ky * p->dilation_h;
    if (iy < 0 || iy >= in->h) {
      continue;
    }
    for (kx = 0; kx < fd->w; kx++) {
      const int32_t ix = in_x0 + kx * p->dilation_w;
      const int8_t *src;
      const int8_t *f;
      if (ix < 0 || ix >= in->w) {
        continue;
      }
      src = image + (iy * in->w + ix) * c + c0;
      f = filter + (ky * fd->w + kx) * c + c0;
      if (first) {
        for (i = 0; i < n; i++) {
          acc[i] = (int32_t)((int16_t)f[i] * (int16_t)(src[i] + off));
        }
        first = 0;
      } else {
        for (i = 0; i < n; i++) {
          acc[i] += (int32_t)((int16_t)f[i] * (int16_t)(src[i] + off));
        }
      }
    }
  }
  if (first) {  /* a window with no tap inside the input */
    for (i = 0; i < n; i++) {
      acc[i] = 0;
    }
  }
  ek_requantize_block(acc, n, bias != 0 ? bias + c0 : 0, mult + c0, shift + c0, simple,
                      p->output_offset,
                      p->act_min, p->act_max, out_px + c0);
}

/* One output pixel of a 3x3, depth multiplier 1, undilated filter whose nine taps all
 * lie inside the input, channels [c0, c0 + n): the nine taps in one loop over the
 * channels, on the image and filter widened once per call (px: the top-left tap in the
 * int16 image holding x + input_offset). */
static inline void pixel_3x3_inside(const ek_depthwise_params *p, const int32_t *mult,
                                    const int32_t *shift, int32_t in_w, int32_t c, const int16_t *px,
                                    const int16_t *filter, const int32_t *bias, int32_t c0, int32_t n,
                                    int simple, int8_t *out_px) {
  const int16_t *r0 = px + c0;
  const int16_t *r1 = r0 + in_w * c;
  const int16_t *r2 = r1 + in_w * c;
  const int16_t *f = filter + c0;
  int32_t acc[EK_BLOCK];
  int32_t i;
  for (i = 0; i < n; i++) {
    acc[i] = (int32_t)(int16_t)(f[i] * r0[i]) + (int32_t)(int16_t)(f[c + i] * r0[c + i]) +
             (int32_t)(int16_t)(f[2 * c + i] * r0[2 * c + i]) + (int32_t)(int16_t)(f[3 * c + i] * r1[i]) +
             (int32_t)(int16_t)(f[4 * c + i] * r1[c + i]) + (int32_t)(int16_t)(f[5 * c + i] * r1[2 * c + i]) +
             (int32_t)(int16_t)(f[6 * c + i] * r2[i]) + (int32_t)(int16_t)(f[7 * c + i] * r2[c + i]) +
             (int32_t)(int16_t)(f[8 * c + i] * r2[2 * c + i]);
  }
  ek_requantize_block(acc, n, bias != 0 ? bias + c0 : 0, mult + c0, shift + c0, simple,
                      p->output_offset, p->act_min, p->act_max, out_px + c0);
}

/* int16 copies for the 3x3 interior path: one image of the batch (x + input_offset) and
 * the filter, when they fit these stack buffers. */
#define EK_WIDE_IMAGE_VALUES 16384
#define EK_WIDE_FILTER_VALUES 2304

void ek_depthwise_conv2d_s8(const ek_depthwise_params *p,
                            const int32_t *mult, const int32_t *shift,
                            const ek_dims4 *in, const int8_t *input,
                            const ek_dims4 *fd, const int8_t *filter,
                            const int32_t *bias,
                            const ek_dims4 *out, int8_t *output) {
  const int32_t blocked = p->depth_multiplier == 1 && ek_offset_fits_int8(p->input_offset);
  const int32_t fast3x3 = blocked && fd->h == 3 && fd->w == 3 && p->dilation_h == 1 &&
                          p->dilation_w == 1 && in->h * in->w * in->c <= EK_WIDE_IMAGE_VALUES &&
                          9 * in->c <= EK_WIDE_FILTER_VALUES;
  const int simple = ek_simple_multipliers(mult, shift, out->c);
  int16_t image16[EK_WIDE_IMAGE_VALUES];
  int16_t filter16[EK_WIDE_FILTER_VALUES];
  int32_t b, y, x, c0, i;
  if (fast3x3) {
    for (i = 0; i < 9 * in->c; i++) {
      filter16[i] = filter[i];
    }
  }
  for (b = 0; b < out->n; b++) {
    const int8_t *image = input + b * in->h * in->w * in->c;
    if (fast3x3) {
      /* the whole image is read here, before any output of it is written */
      for (i = 0; i < in->h * in->w * in->c; i++) {
        image16[i] = (int16_t)(image[i] + p->input_offset);
      }
    }
    for (y = 0; y < out->h; y++) {
      const int32_t in_y0 = y * p->stride_h - p->pad_top;
      for (x = 0; x < out->w; x++) {
        const int32_t in_x0 = x * p->stride_w - p->pad_left;
        int8_t *out_px = output + ((b * out->h + y) * out->w + x) * out->c;
        if (!blocked) {
          pixel_generic(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, out_px);
          continue;
        }
        const int32_t inside = fast3x3 && in_y0 >= 0 && in_y0 + 3 <= in->h && in_x0 >= 0 &&
                               in_x0 + 3 <= in->w;
        for (c0 = 0; c0 < out->c; c0 += EK_BLOCK) {
          const int32_t n = out->c - c0 < EK_BLOCK ? out->c - c0 : EK_BLOCK;
          if (inside && n == EK_BLOCK) {
            /* a constant count: straight-line vector code, no loop tails */
            pixel_3x3_inside(p, mult, shift, in->w, in->c, image16 + (in_y0 * in->w + in_x0) * in->c,
                             filter16, bias, c0, EK_BLOCK, simple, out_px);
          } else if (inside) {
            pixel_3x3_inside(p, mult, shift, in->w, in->c, image16 + (in_y0 * in->w + in_x0) * in->c,
                             filter16, bias, c0, n, simple, out_px);
          } else {
            pixel_block(p, mult, shift, in, image, fd, filter, bias, in_y0, in_x0, c0, n, simple,
                        out_px);
          }
        }
      }
    }
  }
}
