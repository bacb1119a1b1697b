/*
 * Helium (M-profile Vector Extension, MVE) helpers for the mve/ kernel variants
 * (internal header). Cortex-M55 and other Armv8.1-M cores with integer MVE.
 *
 * Sums: VMLADAVA adds the sixteen int8 x int8 products of two vectors to a scalar
 * accumulator, modulo 2^32, as the portable loops' int32 sums are (addition being
 * associative mod 2^32, a different order gives the same bytes). The input offset is
 * folded out of the product: sum_k w*(x + off) = sum_k w*x + off * sum_k w, both mod
 * 2^32, so the vector loop works on raw int8 inputs.
 *
 * Requantization: ek_mve_requant is TFLM's double-rounding MultiplyByQuantizedMultiplier
 * (ek_mbqm) on four lanes: the left shift wraps (VSHL), VQRDMULH is gemmlowp's
 * SaturatingRoundingDoublingHighMul exactly (the same saturation of -2^31 * -2^31),
 * and RoundingDivideByPOT is VRSHL by -exponent after adding -1 to negative values
 * (VQADD), which turns VRSHL's halves-up rounding into halves away from zero. This is
 * the form of CMSIS-NN's arm_requantize_mve, equal to the scalar path for every input.
 */
#ifndef EDGEKIT_MVE_H
#define EDGEKIT_MVE_H

#include <stdint.h>

#if !defined(__ARM_FEATURE_MVE) || (__ARM_FEATURE_MVE & 1) == 0
#error "the mve/ kernels need Helium integer MVE (Armv8.1-M, e.g. -mcpu=cortex-m55)"
#endif

#include <arm_mve.h>

/* Largest im2col column (filter taps x input channels) and output depth the vector
 * paths keep on the stack; larger layers take the scalar path of the same file. */
#define EK_MVE_MAX_COL 1024
#define EK_MVE_MAX_COUT 512

/* MBQM on four lanes, per-lane multiplier and shift. */
static inline int32x4_t ek_mve_requant(int32x4_t acc, int32x4_t mult, int32x4_t shift) {
  const int32x4_t zero = vdupq_n_s32(0);
  const int32x4_t left = vmaxq_s32(shift, zero);
  const int32x4_t right = vminq_s32(shift, zero); /* -exponent */
  int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, left), mult);
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(x, right), 31);
  x = vqaddq_s32(x, fixup);
  return vrshlq_s32(x, right);
}

/* Requantize four accumulators, add the output offset, clamp: lanes as int32. */
static inline int32x4_t ek_mve_finish(int32x4_t acc, int32x4_t mult, int32x4_t shift, int32_t out_offset,
                                      int32_t act_min, int32_t act_max) {
  int32x4_t v = vaddq_n_s32(ek_mve_requant(acc, mult, shift), out_offset);
  v = vmaxq_s32(v, vdupq_n_s32(act_min));
  return vminq_s32(v, vdupq_n_s32(act_max));
}

/* Four scalars as one vector. */
static inline int32x4_t ek_mve_vec4(int32_t a, int32_t b, int32_t c, int32_t d) {
  int32x4_t v = vdupq_n_s32(a);
  v = vsetq_lane_s32(b, v, 1);
  v = vsetq_lane_s32(c, v, 2);
  return vsetq_lane_s32(d, v, 3);
}

/* Sum of n int8 values, modulo 2^32. */
static inline int32_t ek_mve_sum_s8(const int8_t *p, int32_t n) {
  int32_t s = 0;
  for (; n >= 16; n -= 16, p += 16) {
    s = vaddvaq_s8(s, vldrbq_s8(p));
  }
  if (n > 0) {
    const mve_pred16_t pr = vctp8q((uint32_t)n);
    s = vaddvaq_p_s8(s, vldrbq_z_s8(p, pr), pr);
  }
  return s;
}

/* Four dot products of one column with four weight rows, n int8 each, mod 2^32: whole
 * vectors unpredicated, then one predicated tail (zeroed lanes add nothing). */
static inline int32x4_t ek_mve_dot4(const int8_t *col, const int8_t *w0, const int8_t *w1, const int8_t *w2,
                                    const int8_t *w3, int32_t n) {
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (; n >= 16; n -= 16) {
    const int8x16_t x = vldrbq_s8(col);
    a0 = vmladavaq_s8(a0, x, vldrbq_s8(w0));
    a1 = vmladavaq_s8(a1, x, vldrbq_s8(w1));
    a2 = vmladavaq_s8(a2, x, vldrbq_s8(w2));
    a3 = vmladavaq_s8(a3, x, vldrbq_s8(w3));
    col += 16;
    w0 += 16;
    w1 += 16;
    w2 += 16;
    w3 += 16;
  }
  if (n > 0) {
    const mve_pred16_t pr = vctp8q((uint32_t)n);
    const int8x16_t x = vldrbq_z_s8(col, pr);
    a0 = vmladavaq_s8(a0, x, vldrbq_z_s8(w0, pr));
    a1 = vmladavaq_s8(a1, x, vldrbq_z_s8(w1, pr));
    a2 = vmladavaq_s8(a2, x, vldrbq_z_s8(w2, pr));
    a3 = vmladavaq_s8(a3, x, vldrbq_z_s8(w3, pr));
  }
  return ek_mve_vec4(a0, a1, a2, a3);
}

/* dst[0..n) = src[0..n) (no overlap), sixteen bytes per vector: im2col's short runs
 * without a library call. */
static inline void ek_mve_copy(int8_t *dst, const int8_t *src, int32_t n) {
  for (; n >= 16; n -= 16, dst += 16, src += 16) {
    vstrbq_s8(dst, vldrbq_s8(src));
  }
  if (n > 0) {
    const mve_pred16_t pr = vctp8q((uint32_t)n);
    vstrbq_p_s8(dst, vldrbq_z_s8(src, pr), pr);
  }
}

static inline void ek_mve_fill(int8_t *dst, int8_t value, int32_t n) {
  const int8x16_t v = vdupq_n_s8(value);
  for (; n >= 16; n -= 16, dst += 16) {
    vstrbq_s8(dst, v);
  }
  if (n > 0) {
    vstrbq_p_s8(dst, v, vctp8q((uint32_t)n));
  }
}

#endif /* EDGEKIT_MVE_H */
