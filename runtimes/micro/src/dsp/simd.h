/*
 * Armv7E-M DSP (SIMD32) helpers for the dsp/ kernel variants (internal header).
 *
 * Four int8 values in a word are sign-extended into two int16 pairs with SXTB16:
 * the "even" pair holds bytes 0 and 2, the "odd" pair (SXTB16 of the word rotated
 * by 8) bytes 1 and 3. SMLAD then adds both products of a pair to an accumulator.
 * Every sum here is an int32 sum of exact products, taken in a different order
 * than the portable loops; int32 addition being associative mod 2^32, the bytes
 * out are the same.
 */
#ifndef EDGEKIT_DSP_SIMD_H
#define EDGEKIT_DSP_SIMD_H

#include <stdint.h>
#include <string.h>

#if !defined(__ARM_FEATURE_DSP) || !defined(__ARM_FEATURE_SIMD32)
#error "the dsp/ kernels need the Armv7E-M DSP extension (build the portable/ variant instead)"
#endif

#include <arm_acle.h>

/* GCC 12's arm_acle.h has no __ror. */
static inline uint32_t ek_ror(uint32_t x, uint32_t n) {
  return (x >> n) | (x << ((32u - n) & 31u));
}

/* Four bytes from any address (Armv7-M LDR handles unaligned addresses). */
static inline uint32_t ek_load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Both int16 lanes set to v (for SADD16 of an offset in [-32768, 32767]). */
static inline int16x2_t ek_dup16(int32_t v) {
  return (int16x2_t)(((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16));
}

static inline int16x2_t ek_even(uint32_t w) {
  return __sxtb16((int8x4_t)w);
}

/* SXTB16 with its rotate operand: one instruction. GCC does not fold ek_ror into
 * SXTB16 by itself, so GCC-compatible compilers get the instruction spelled out. */
static inline int16x2_t ek_odd(uint32_t w) {
#if defined(__GNUC__)
  int16x2_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
  return r;
#else
  return __sxtb16((int8x4_t)ek_ror(w, 8));
#endif
}

/* acc0 += sum_k w0[k] * (x[k] + off), acc1 likewise with w1, for k < len.
 * off2 is ek_dup16(off); x + off must fit int16 (it does for int8 data). */
static inline void ek_dot2_s8(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t len,
                              int32_t off, int16x2_t off2, int32_t *acc0, int32_t *acc1) {
  int32_t a0 = *acc0;
  int32_t a1 = *acc1;
  int32_t k = 0;
  for (; k + 4 <= len; k += 4) {
    const uint32_t xv = ek_load4(x + k);
    const int16x2_t xe = __sadd16(ek_even(xv), off2);
    const int16x2_t xo = __sadd16(ek_odd(xv), off2);
    const uint32_t v0 = ek_load4(w0 + k);
    const uint32_t v1 = ek_load4(w1 + k);
    a0 = __smlad(ek_even(v0), xe, a0);
    a0 = __smlad(ek_odd(v0), xo, a0);
    a1 = __smlad(ek_even(v1), xe, a1);
    a1 = __smlad(ek_odd(v1), xo, a1);
  }
  for (; k < len; k++) {
    const int32_t xk = (int32_t)x[k] + off;
    a0 += (int32_t)w0[k] * xk;
    a1 += (int32_t)w1[k] * xk;
  }
  *acc0 = a0;
  *acc1 = a1;
}

/* acc += sum_k w[k] * (x[k] + off), for k < len. */
static inline int32_t ek_dot1_s8(const int8_t *x, const int8_t *w, int32_t len, int32_t off,
                                 int16x2_t off2, int32_t acc) {
  int32_t k = 0;
  for (; k + 4 <= len; k += 4) {
    const uint32_t xv = ek_load4(x + k);
    const uint32_t v = ek_load4(w + k);
    acc = __smlad(ek_even(v), __sadd16(ek_even(xv), off2), acc);
    acc = __smlad(ek_odd(v), __sadd16(ek_odd(xv), off2), acc);
  }
  for (; k < len; k++) {
    acc += (int32_t)w[k] * ((int32_t)x[k] + off);
  }
  return acc;
}

#endif /* EDGEKIT_DSP_SIMD_H */
