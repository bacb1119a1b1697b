/* UNIDIRECTIONAL_SEQUENCE_LSTM int8, Armv7E-M DSP variant: the portable kernel's bytes
 * (TFLM's lstm_eval integer path), its eight dot products per unit taken two gates at a
 * time with SMLAD (ek_dot2_s8: int32 sums of exact products in another order, equal mod
 * 2^32). Stack: 2 * hidden bytes of cell state. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "lstm_common.h"
#include "simd.h"

void ek_lstm_s8(const ek_lstm_params *p, const int8_t *input, const int8_t *input_weights,
                const int8_t *recurrent_weights, const int32_t *bias, int8_t *output) {
  const int32_t n_b = p->batches, n_t = p->steps, n_in = p->input_size, n_h = p->hidden;
  const int16x2_t in2 = ek_dup16(p->input_offset), h2 = ek_dup16(p->hidden_offset);
  int16_t cell[n_h]; /* C99 variable-length array: one batch row's cell state */
  int32_t b, t, j, g;
  for (b = 0; b < n_b; b++) {
    for (j = 0; j < n_h; j++) {
      cell[j] = 0;
    }
    for (t = 0; t < n_t; t++) {
      const int32_t row = p->time_major ? t * n_b + b : b * n_t + t;
      const int32_t prev = p->time_major ? (t - 1) * n_b + b : b * n_t + t - 1;
      const int8_t *x = input + row * n_in;
      const int8_t *h = t > 0 ? output + prev * n_h : output; /* read only when t > 0 */
      int8_t *y = output + row * n_h;
      for (j = 0; j < n_h; j++) {
        int32_t acc_in[4] = {0, 0, 0, 0}, acc_rec[4] = {0, 0, 0, 0}, pre[4];
        for (g = 0; g < 4; g += 2) {
          ek_dot2_s8(x, input_weights + (g * n_h + j) * n_in, input_weights + ((g + 1) * n_h + j) * n_in, n_in,
                     p->input_offset, in2, &acc_in[g], &acc_in[g + 1]);
          if (t > 0) {
            ek_dot2_s8(h, recurrent_weights + (g * n_h + j) * n_h, recurrent_weights + ((g + 1) * n_h + j) * n_h,
                       n_h, p->hidden_offset, h2, &acc_rec[g], &acc_rec[g + 1]);
          }
        }
        for (g = 0; g < 4; g++) {
          pre[g] = ek_lstm_pre(p, g, ek_wrap_add(acc_in[g], bias[g * n_h + j]), acc_rec[g], t > 0);
        }
        y[j] = ek_lstm_unit(p, pre, &cell[j]);
      }
    }
  }
}
