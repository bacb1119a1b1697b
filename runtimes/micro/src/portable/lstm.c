/* UNIDIRECTIONAL_SEQUENCE_LSTM int8 (int8 activations x int8 weights -> int16 cell state),
 * portable reference: TFLM's lstm_eval integer path bit for bit (see kernels.h and
 * edgekit/reference/recurrent_kernels.py).
 *
 * Differences in form, not in bytes, from TFLM: the units are computed one at a time
 * (each unit's four gates, its cell and its hidden value only read the previous hidden
 * state and the input), so no gate buffers are needed; the previous hidden state is
 * read from the output row of the previous step (TFLM copies it there), and at the
 * first step, where the hidden state is the zero point, the recurrent products are 0
 * and are skipped. The only work memory is the cell state of one batch row, on the
 * stack (2 * hidden bytes). */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "lstm_common.h"

static int32_t dot(const int8_t *w, const int8_t *x, int32_t n, int32_t offset) {
  int32_t acc = 0, k;
  for (k = 0; k < n; k++) {
    acc += (int32_t)w[k] * ((int32_t)x[k] + offset);
  }
  return acc;
}

void ek_lstm_s8(const ek_lstm_params *p, const int8_t *input, const int8_t *input_weights,
                const int8_t *recurrent_weights, const int32_t *bias, int8_t *output) {
  const int32_t n_b = p->batches, n_t = p->steps, n_in = p->input_size, n_h = p->hidden;
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
        int32_t pre[4];
        for (g = 0; g < 4; g++) {
          const int32_t acc_in = ek_wrap_add(dot(input_weights + (g * n_h + j) * n_in, x, n_in, p->input_offset),
                                             bias[g * n_h + j]);
          const int32_t acc_rec = t > 0 ? dot(recurrent_weights + (g * n_h + j) * n_h, h, n_h, p->hidden_offset) : 0;
          pre[g] = ek_lstm_pre(p, g, acc_in, acc_rec, t > 0);
        }
        y[j] = ek_lstm_unit(p, pre, &cell[j]);
      }
    }
  }
}
