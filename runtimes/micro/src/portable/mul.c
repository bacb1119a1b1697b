/* MUL int8, portable reference (TFLM reference_integer_ops::Mul / BroadcastMul4DSlow). */
#include "edgekit/kernels.h"

#include "broadcast4.h"
#include "fixedpoint.h"

static int8_t mul_one(const ek_mul_params *p, int32_t a, int32_t b) {
  const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
  const int32_t v = ek_mbqm(prod, p->output_multiplier, p->output_shift) + p->output_offset;
  return (int8_t)ek_clamp(v, p->act_min, p->act_max);
}

void ek_mul_s8(const ek_mul_params *p, const ek_dims4 *d,
               const int8_t *in1, const ek_strides4 *s1,
               const int8_t *in2, const ek_strides4 *s2,
               int8_t *out) {
  const int32_t step1 = ek_flat_step(d, s1);
  const int32_t step2 = ek_flat_step(d, s2);
  int32_t n, h, w, c;
  if (step1 >= 0 && step2 >= 0) {
    const int32_t size = d->n * d->h * d->w * d->c;
    int32_t i;
    for (i = 0; i < size; i++) {
      out[i] = mul_one(p, in1[i * step1], in2[i * step2]);
    }
    return;
  }
  for (n = 0; n < d->n; n++) {
    for (h = 0; h < d->h; h++) {
      for (w = 0; w < d->w; w++) {
        const int8_t *a = in1 + n * s1->n + h * s1->h + w * s1->w;
        const int8_t *b = in2 + n * s2->n + h * s2->h + w * s2->w;
        for (c = 0; c < d->c; c++) {
          *out++ = mul_one(p, a[c * s1->c], b[c * s2->c]);
        }
      }
    }
  }
}
