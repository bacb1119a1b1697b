/*
 * Helpers of the dsp/ packed kernels (internal header): word access to packed operands
 * and the SMMULR requantization.
 *
 * Fast requantization. With |acc| < 2^29 and shift = -e, e in [1, 31]:
 *   SaturatingRoundingDoublingHighMul(acc, m) = floor((acc * m + 2^30) / 2^31)
 *                                           = floor((2 acc * m + 2^31) / 2^32)
 *                                           = SMMULR(2 acc, m)
 * (2 acc fits int32 and the saturating case, both operands -2^31, cannot occur), and
 * for r = that product, RoundingDivideByPOT(r, e) (halves away from zero) is
 *   floor((t + 2^(e-1)) / 2^e) with t = r - (r < 0)
 *   = floor((floor(t / 2^(e-1)) + 1) / 2) = ((t >> (e - 1)) + 1) >> 1,
 * and adding the output offset z before the last halving, ((t >> (e-1)) + 1 + 2z) >> 1,
 * gives the same value plus z (2z is even). e - 1 = ~shift. Nothing overflows:
 * |r| <= 2^29 and |1 + 2z| <= 255. edgekit/backends/c/packed.py proves the bound per
 * layer (fast_requant) and tests/runtimes/test_micro_packed.py checks the identity.
 */
#ifndef EDGEKIT_DSP_PACKED_H
#define EDGEKIT_DSP_PACKED_H

#include <stdint.h>

#include "fixedpoint.h"
#include "simd.h"

/* A 32-bit word of a packed operand; may alias the int8 / int16 arrays it is read from. */
typedef uint32_t ek_word __attribute__((may_alias));

static inline int32_t ek_packed_smmulr(int32_t a, int32_t b) {
  int32_t r;
  __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}

/* round1 = 1 + 2 * output_offset, not_shift = ~shift (= e - 1); full: [lo, hi] is
 * [-128, 127], where one SSAT clamps. */
static inline __attribute__((always_inline)) int8_t ek_packed_fast_out(
    int32_t acc, int32_t mult, int32_t not_shift, int32_t round1, int32_t lo, int32_t hi,
    const int32_t full) {
  const int32_t r = ek_packed_smmulr((int32_t)((uint32_t)acc << 1), mult);
  const int32_t t = (int32_t)((uint32_t)r - ((uint32_t)r >> 31));
  int32_t v = ((t >> not_shift) + round1) >> 1;
  if (full) {
    return (int8_t)__ssat(v, 8);
  }
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return (int8_t)v;
}

static inline int8_t ek_packed_exact_out(int32_t acc, int32_t mult, int32_t shift,
                                         int32_t out_off, int32_t lo, int32_t hi) {
  return (int8_t)ek_clamp(ek_mbqm(acc, mult, shift) + out_off, lo, hi);
}

#endif /* EDGEKIT_DSP_PACKED_H */
