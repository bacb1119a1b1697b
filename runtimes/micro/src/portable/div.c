/* DIV int8, TFLM DivElementwise: the divisor's Q0.31 reciprocal (GetReciprocal), the
 * dividend shifted by its headroom, one rescale to the output. Where TFLM's last right
 * shift reaches 32 bits or more (undefined in its C++), the quotient is rounded
 * correctly, as edgekit's reference does. The divisor never equals its zero point. */
#include "edgekit/kernels.h"

#include "elementwise_binary.h"
#include "fixedpoint.h"

static int32_t leading_sign_bits(int32_t x) {
  const uint32_t mag = (uint32_t)(x >= 0 ? x : ~x);
  return ek_clz32(mag) - 1;
}

static int32_t div_one(const ek_mul_params *p, int32_t a, int32_t b) {
  int32_t n = a + p->input1_offset;
  int32_t d = b + p->input2_offset;
  int32_t recip_shift, headroom, total, r;
  int32_t inv;
  if (d < 0) {
    n = -n;
    d = -d;
  }
  inv = ek_get_reciprocal(d, 31, &recip_shift);
  headroom = leading_sign_bits(n);
  r = ek_srdhm(ek_srdhm(ek_wrap_shl(n, headroom), inv), p->output_multiplier);
  total = p->output_shift - recip_shift - headroom;
  if (total >= 0) {
    /* a left shift TFLM never reaches (the reference leaves the value unshifted) */
  } else if (total >= -31) {
    r = ek_rdbp(r, -total);
  } else { /* |r| <= 2^31: rounds to 0, or to -1 for -2^31 with a shift of 32 */
    r = (total == -32 && r == EK_INT32_MIN) ? -1 : 0;
  }
  return ek_clamp(r + p->output_offset, p->act_min, p->act_max);
}

void ek_div_s8(const ek_mul_params *params, const ek_dims4 *output_dims,
               const int8_t *in1, const ek_strides4 *in1_strides,
               const int8_t *in2, const ek_strides4 *in2_strides, int8_t *output) {
  EK_BINARY_WALK(output_dims, in1, in1_strides, in2, in2_strides, output, div_one(params, a, b));
}
