/* CONV_2D int8 with packed filters and folded bias, portable reference: the bytes of
 * ek_conv2d_s8 (TFLM reference_integer_ops::ConvPerChannel) from the operands the
 * compiler packed (layout: kernels.h). It defines the layout for the optimized
 * variants; it needs no scratch. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

/* filter[oc, k] of the packed layout. */
static int32_t packed_weight(const int8_t *packed, int32_t kp, int32_t oc, int32_t k) {
  const int32_t pair = oc >> 1;
  return packed[pair * 2 * kp + (k >> 2) * 8 + (oc & 1) * 4 + (k & 3)];
}

void ek_conv2d_packed_s8(const ek_conv_packed_params *p, const int32_t *mult,
                         const int32_t *shift, const ek_dims4 *in, const int8_t *input,
                         const ek_dims4 *fd, const int8_t *packed_filter,
                         const int32_t *folded_bias, const ek_dims4 *out, int8_t *output,
                         int16_t *scratch) {
  const int32_t cin = in->c;
  const int32_t kh = fd->h, kw = fd->w;
  const int32_t kp = (kh * kw * cin + 3) & ~3;
  const int32_t pixels = out->n * out->h * out->w;
  int32_t i, oc, ky, kx, ic;
  (void)scratch;
  for (i = 0; i < pixels; i++) {
    /* reverse: pixels from the last (an output placed above its input) */
    const int32_t pixel = p->reverse ? pixels - 1 - i : i;
    const int32_t b = pixel / (out->w * out->h);
    const int32_t in_y0 = (pixel / out->w) % out->h * p->stride_h - p->pad_top;
    const int32_t in_x0 = pixel % out->w * p->stride_w - p->pad_left;
    int8_t *o = output + pixel * out->c;
    for (oc = 0; oc < out->c; oc++) {
      int32_t acc = folded_bias[oc];
      int32_t k = 0;
      for (ky = 0; ky < kh; ky++) {
        const int32_t iy = in_y0 + ky * p->dilation_h;
        for (kx = 0; kx < kw; kx++) {
          const int32_t ix = in_x0 + kx * p->dilation_w;
          const int32_t inside = iy >= 0 && iy < in->h && ix >= 0 && ix < in->w;
          const int8_t *px = inside ? input + ((b * in->h + iy) * in->w + ix) * cin : input;
          for (ic = 0; ic < cin; ic++, k++) {
            const int32_t v = inside ? (int32_t)px[ic] : p->input_zero_point;
            acc = ek_wrap_add(acc, packed_weight(packed_filter, kp, oc, k) * v);
          }
        }
      }
      acc = ek_mbqm(acc, mult[oc], shift[oc]) + p->output_offset;
      o[oc] = (int8_t)ek_clamp(acc, p->act_min, p->act_max);
    }
  }
}
