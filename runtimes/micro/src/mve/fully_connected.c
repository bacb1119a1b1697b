/* FULLY_CONNECTED int8, Helium (MVE) variant of ek_fully_connected_s8 (definition:
 * portable/fully_connected.c).
 *
 * Four outputs at a time: VMLADAVA dot products of the raw int8 input row with four
 * weight rows. The offsets are folded out, mod 2^32:
 *   sum (w + fo)(x + io) = sum w*x + io * sum w + fo * sum x + K * fo * io,
 * with sum w taken in the same pass (VADDVA) when io is not 0, and sum x once per row
 * when fo is not 0. Then bias and the four-lane requantization. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "mve.h"

static inline int32_t wrap_mul(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a * (uint32_t)b);
}

void ek_fully_connected_s8(const ek_fc_params *p, const int32_t *mult, const int32_t *shift,
                           int32_t batches, int32_t input_depth, int32_t output_depth,
                           const int8_t *input, const int8_t *filter, const int32_t *bias,
                           int8_t *output) {
  const int32_t k_len = input_depth;
  const int32_t io = p->input_offset;
  const int32_t fo = p->filter_offset;
  int32_t b, o, k;
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * k_len;
    const int32_t row_const = ek_wrap_add(fo != 0 ? wrap_mul(fo, ek_mve_sum_s8(x, k_len)) : 0,
                                          wrap_mul(wrap_mul(k_len, fo), io));
    for (o = 0; o < output_depth; o += 4) {
      const int8_t *w0 = filter + o * k_len;
      const int8_t *w1 = o + 1 < output_depth ? w0 + k_len : w0;
      const int8_t *w2 = o + 2 < output_depth ? w0 + 2 * k_len : w0;
      const int8_t *w3 = o + 3 < output_depth ? w0 + 3 * k_len : w0;
      const mve_pred16_t lanes = vctp32q((uint32_t)(output_depth - o));
      int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int32x4_t acc, mv, sv;
      for (k = 0; k < k_len; k += 16) {
        const mve_pred16_t pr = vctp8q((uint32_t)(k_len - k));
        const int8x16_t xv = vldrbq_z_s8(x + k, pr);
        const int8x16_t v0 = vldrbq_z_s8(w0 + k, pr);
        const int8x16_t v1 = vldrbq_z_s8(w1 + k, pr);
        const int8x16_t v2 = vldrbq_z_s8(w2 + k, pr);
        const int8x16_t v3 = vldrbq_z_s8(w3 + k, pr);
        a0 = vmladavaq_s8(a0, xv, v0);
        a1 = vmladavaq_s8(a1, xv, v1);
        a2 = vmladavaq_s8(a2, xv, v2);
        a3 = vmladavaq_s8(a3, xv, v3);
        if (io != 0) {
          s0 = vaddvaq_s8(s0, v0);
          s1 = vaddvaq_s8(s1, v1);
          s2 = vaddvaq_s8(s2, v2);
          s3 = vaddvaq_s8(s3, v3);
        }
      }
      acc = ek_mve_vec4(a0, a1, a2, a3);
      acc = vaddq_s32(acc, vmulq_n_s32(ek_mve_vec4(s0, s1, s2, s3), io));
      acc = vaddq_n_s32(acc, row_const);
      if (bias != 0) {
        acc = vaddq_s32(acc, vldrwq_z_s32(bias + o, lanes));
      }
      if (p->per_channel) {
        mv = vldrwq_z_s32(mult + o, lanes);
        sv = vldrwq_z_s32(shift + o, lanes);
      } else {
        mv = vdupq_n_s32(mult[0]);
        sv = vdupq_n_s32(shift[0]);
      }
      acc = ek_mve_finish(acc, mv, sv, p->output_offset, p->act_min, p->act_max);
      vstrbq_p_s32(output + o, acc, lanes);
    }
    output += output_depth;
  }
}
