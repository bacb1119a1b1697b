/* FULLY_CONNECTED int8, linux variant: the portable kernel's results, arranged for GCC
 * to vectorize (NEON, AVX2). Each input row is widened once to int16 (x +
 * input_offset), each output is a dot product of its int8 filter row with it, and a
 * nonzero filter offset is applied once per output:
 * sum (w + fo)(x + io) = sum w (x + io) + fo * sum (x + io)   (mod 2^32). */
#include "edgekit/kernels.h"

#include "autovec.h"
#include "fixedpoint.h"

#define EK_ROW_CHUNK 4096

void ek_fully_connected_s8(const ek_fc_params *p, const int32_t *mult, const int32_t *shift,
                           int32_t batches, int32_t input_depth, int32_t output_depth,
                           const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output) {
  int16_t row[EK_ROW_CHUNK];
  int32_t acc[EK_BLOCK];
  int32_t mult_block[EK_BLOCK];
  int32_t shift_block[EK_BLOCK];
  int32_t b, o0, k0, i;
  const int fits = ek_offset_fits_int8(p->input_offset);
  const int simple = ek_simple_multipliers(mult, shift, p->per_channel ? output_depth : 1);
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * input_depth;
    for (o0 = 0; o0 < output_depth; o0 += EK_BLOCK) {
      const int32_t n = output_depth - o0 < EK_BLOCK ? output_depth - o0 : EK_BLOCK;
      for (i = 0; i < n; i++) {
        acc[i] = 0;
        mult_block[i] = mult[p->per_channel ? o0 + i : 0];
        shift_block[i] = shift[p->per_channel ? o0 + i : 0];
      }
      for (k0 = 0; k0 < input_depth; k0 += EK_ROW_CHUNK) {
        const int32_t len = input_depth - k0 < EK_ROW_CHUNK ? input_depth - k0 : EK_ROW_CHUNK;
        int32_t row_sum = 0;
        for (i = 0; i < len; i++) {
          row[i] = (int16_t)(x[k0 + i] + p->input_offset);
          row_sum += row[i];
        }
        for (i = 0; i < n; i++) {
          const int8_t *w = filter + (o0 + i) * input_depth + k0;
          int32_t dot;
          if (fits) {
            dot = ek_dot_s8_s16(w, row, len);
          } else {
            /* an offset outside int8 zero points: plain int32 products, wrapping */
            int32_t k;
            dot = 0;
            for (k = 0; k < len; k++) {
              dot = ek_wrap_add(dot, (int32_t)((uint32_t)w[k] * (uint32_t)(x[k0 + k] + p->input_offset)));
            }
          }
          dot = ek_wrap_add(dot, (int32_t)((uint32_t)p->filter_offset * (uint32_t)row_sum));
          acc[i] = ek_wrap_add(acc[i], dot);
        }
      }
      ek_requantize_block(acc, n, bias != 0 ? bias + o0 : 0, mult_block, shift_block, simple, p->output_offset,
                          p->act_min, p->act_max, output + b * output_depth + o0);
    }
  }
}
