/* SVDF int8 (int16 state), portable reference: one invocation of TFLM's
 * EvalIntegerSvdfReference from a zero state, the semantics of edgekit's IR (every
 * invocation starts from a zero state; see kernels.h and
 * edgekit/reference/recurrent_kernels.py). After the shift of a zero state only each
 * filter's newest memory slot is non-zero, so the compiler passes just the last column
 * of weights_time (as int32) and the kernel needs no state buffer. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"

void ek_svdf_s8(const ek_svdf_params *p, const int8_t *input, const int8_t *weights_feature,
                const int32_t *time_weights_last, const int32_t *bias, int8_t *output) {
  const int32_t n_in = p->input_size, units = p->features / p->rank;
  int32_t b, u, r, k;
  for (b = 0; b < p->batches; b++) {
    const int8_t *x = input + b * n_in;
    for (u = 0; u < units; u++) {
      int32_t acc = bias[u];
      for (r = 0; r < p->rank; r++) {
        const int32_t f = u * p->rank + r;
        const int8_t *w = weights_feature + f * n_in;
        int32_t dot = 0, state;
        for (k = 0; k < n_in; k++) {
          dot += (int32_t)w[k] * ((int32_t)x[k] + p->input_offset);
        }
        state = ek_clamp(ek_mbqm(dot, p->feature_mult, p->feature_shift), -32768, 32767);
        acc = ek_wrap_add(acc, state * time_weights_last[f]);
      }
      acc = ek_mbqm(acc, p->output_mult, p->output_shift) + p->output_offset;
      *output++ = (int8_t)ek_clamp(acc, -128, 127);
    }
  }
}
