/* PAD / PADV2 int8 on 4-D tensors, portable reference (TFLM reference_ops::Pad). */
#include <string.h>

#include "edgekit/kernels.h"

void ek_pad_s8(const ek_pad_params *p, const ek_dims4 *in, const int8_t *input, int8_t *output) {
  const int32_t on = p->before[0] + in->n + p->after[0];
  const int32_t oh = p->before[1] + in->h + p->after[1];
  const int32_t ow = p->before[2] + in->w + p->after[2];
  const int32_t oc = p->before[3] + in->c + p->after[3];
  const int value = (int)(int8_t)p->value;
  int32_t n, h, w;
  for (n = 0; n < on; n++) {
    const int32_t in_n = n - p->before[0];
    for (h = 0; h < oh; h++) {
      const int32_t in_h = h - p->before[1];
      for (w = 0; w < ow; w++) {
        const int32_t in_w = w - p->before[2];
        if (in_n < 0 || in_n >= in->n || in_h < 0 || in_h >= in->h || in_w < 0 || in_w >= in->w) {
          memset(output, value, (size_t)oc);
        } else {
          const int8_t *src = input + ((in_n * in->h + in_h) * in->w + in_w) * in->c;
          memset(output, value, (size_t)p->before[3]);
          memcpy(output + p->before[3], src, (size_t)in->c);
          memset(output + p->before[3] + in->c, value, (size_t)p->after[3]);
        }
        output += oc;
      }
    }
  }
}
