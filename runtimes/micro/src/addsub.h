/*
 * ADD and SUB int8 share everything but the sign of the second operand
 * (TFLM reference_integer_ops::Add and reference_ops::Sub); internal header.
 */
#ifndef EDGEKIT_ADDSUB_H
#define EDGEKIT_ADDSUB_H

#include "edgekit/kernels.h"

#include "broadcast4.h"
#include "fixedpoint.h"

static inline int8_t ek_addsub_one(const ek_add_params *p, int32_t a, int32_t b, int32_t subtract) {
  const int32_t sa = ek_wrap_shl(a + p->input1_offset, p->left_shift);
  const int32_t sb = ek_wrap_shl(b + p->input2_offset, p->left_shift);
  const int32_t ya = ek_mbqm_smaller_than_one(sa, p->input1_multiplier, p->input1_shift);
  const int32_t yb = ek_mbqm_smaller_than_one(sb, p->input2_multiplier, p->input2_shift);
  const int32_t raw = subtract ? ek_wrap_sub(ya, yb) : ek_wrap_add(ya, yb);
  const int32_t v = ek_mbqm_smaller_than_one(raw, p->output_multiplier, p->output_shift) +
                    p->output_offset;
  return (int8_t)ek_clamp(v, p->act_min, p->act_max);
}

static inline void ek_addsub_s8(const ek_add_params *p, const ek_dims4 *d,
                                const int8_t *in1, const ek_strides4 *s1,
                                const int8_t *in2, const ek_strides4 *s2,
                                int8_t *out, int32_t subtract) {
  const int32_t step1 = ek_flat_step(d, s1);
  const int32_t step2 = ek_flat_step(d, s2);
  int32_t n, h, w, c;
  if (step1 >= 0 && step2 >= 0) {
    const int32_t size = d->n * d->h * d->w * d->c;
    int32_t i;
    for (i = 0; i < size; i++) {
      out[i] = ek_addsub_one(p, in1[i * step1], in2[i * step2], subtract);
    }
    return;
  }
  for (n = 0; n < d->n; n++) {
    for (h = 0; h < d->h; h++) {
      for (w = 0; w < d->w; w++) {
        const int8_t *a = in1 + n * s1->n + h * s1->h + w * s1->w;
        const int8_t *b = in2 + n * s2->n + h * s2->h + w * s2->w;
        for (c = 0; c < d->c; c++) {
          *out++ = ek_addsub_one(p, a[c * s1->c], b[c * s2->c], subtract);
        }
      }
    }
  }
}

#endif /* EDGEKIT_ADDSUB_H */
