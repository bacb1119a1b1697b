/*
 * Helpers of the linux variants (internal header): loops written so that GCC -O3
 * vectorizes them for NEON (aarch64) and AVX2 (x86-64-v3), with the same results as
 * the portable kernels bit for bit.
 *
 * - Operands widen to int16: x + input_offset lies in [-255, 255] for an int8 x and
 *   an offset that is minus an int8 zero point, so filter * (x + offset) fits int16
 *   and a pair of such products fits int32 (PMADDWD, SMLAL/SADALP patterns).
 * - int32 sums mod 2^32 do not depend on the order of the additions, so reordering
 *   and blocking the accumulation changes no output.
 * - Requantization (TFLM's double-rounding MultiplyByQuantizedMultiplier) runs over a
 *   block of accumulators without branches: per-lane shifts, a 32x32->64 multiply and
 *   a logical 64-bit shift whose low 32 bits equal the arithmetic one.
 */
#ifndef EDGEKIT_LINUX_AUTOVEC_H
#define EDGEKIT_LINUX_AUTOVEC_H

#include <stdint.h>

#include "fixedpoint.h"

/* Accumulators requantized per pass; channel blocks of the kernels use this size. */
#define EK_BLOCK 64

/* The widening trick above needs the offset of an int8 zero point. */
static inline int ek_offset_fits_int8(int32_t offset) {
  return offset >= -127 && offset <= 128;
}

/* Whether every multiplier of a block is positive and every shift <= 0 (a scale below
 * one: what converters emit for convolutions): ek_requantize_block then takes its
 * short path. Checked once per call, not per pixel. */
static inline int ek_simple_multipliers(const int32_t *mult, const int32_t *shift, int32_t n) {
  int32_t i, bad = 0;
  for (i = 0; i < n; i++) {
    bad |= (mult[i] <= 0) | (shift[i] > 0);
  }
  return !bad;
}

/* out[i] = clamp(MBQM(acc[i] + bias[i], mult[i], shift[i]) + output_offset, lo, hi) for
 * i < n (bias may be NULL); the same bytes as ek_mbqm of fixedpoint.h, lane by lane.
 * simple: ek_simple_multipliers(mult, shift, n), which drops the left shift and the
 * saturation of SaturatingRoundingDoublingHighMul (it needs a multiplier of -2^31). */
static inline void ek_requantize_block(const int32_t *acc, int32_t n, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift, int simple,
                                       int32_t output_offset, int32_t lo, int32_t hi, int8_t *out) {
  int32_t i;
  if (simple) {
    for (i = 0; i < n; i++) {
      const int32_t right = -shift[i];
      const int32_t a = (int32_t)((uint32_t)acc[i] + (bias != 0 ? (uint32_t)bias[i] : 0u));
      const int64_t ab = (int64_t)a * (int64_t)mult[i];
      const int32_t hm = (int32_t)(uint32_t)((uint64_t)(ab + ((int64_t)1 << 30)) >> 31);
      const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
      const int32_t remainder = hm & mask;
      const int32_t threshold = (mask >> 1) + (hm < 0 ? 1 : 0);
      int32_t v = (hm >> right) + (remainder > threshold ? 1 : 0) + output_offset;
      v = v < lo ? lo : v;
      v = v > hi ? hi : v;
      out[i] = (int8_t)v;
    }
    return;
  }
  for (i = 0; i < n; i++) {
    const int32_t s = shift[i];
    const int32_t m = mult[i];
    const int32_t left = s > 0 ? s : 0;
    const int32_t right = s > 0 ? 0 : -s;
    const uint32_t a = (uint32_t)acc[i] + (bias != 0 ? (uint32_t)bias[i] : 0u);
    const int32_t xs = (int32_t)(a << left);
    const int64_t ab = (int64_t)xs * (int64_t)m;
    const int32_t high = (int32_t)(uint32_t)((uint64_t)(ab + ((int64_t)1 << 30)) >> 31);
    const int32_t hm = (xs == EK_INT32_MIN && m == EK_INT32_MIN) ? EK_INT32_MAX : high;
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t remainder = hm & mask;
    const int32_t threshold = (mask >> 1) + (hm < 0 ? 1 : 0);
    int32_t v = (hm >> right) + (remainder > threshold ? 1 : 0) + output_offset;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    out[i] = (int8_t)v;
  }
}

/* sum of w[k] * x[k], k < n (int32, wrapping is impossible for n < 2^16). */
static inline int32_t ek_dot_s8_s16(const int8_t *w, const int16_t *x, int32_t n) {
  int32_t acc = 0;
  int32_t k;
  for (k = 0; k < n; k++) {
    acc += (int32_t)((int16_t)w[k] * x[k]);
  }
  return acc;
}

#endif /* EDGEKIT_LINUX_AUTOVEC_H */
