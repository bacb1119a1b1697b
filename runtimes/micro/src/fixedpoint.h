/*
 * int32 fixed-point arithmetic of TFLite Micro and gemmlowp (internal header).
 *
 * Each helper reproduces the C++ int32 semantics bit for bit, as written down in
 * edgekit/reference/fixedpoint.py. Where the C++ code relies on two's-complement
 * wrap-around, the arithmetic here goes through uint32_t so it is defined in C.
 * Signed right shifts are arithmetic (true of every compiler edgekit supports).
 * 64-bit multiplies are used; no 64-bit division is.
 */
#ifndef EDGEKIT_FIXEDPOINT_H
#define EDGEKIT_FIXEDPOINT_H

#include <stdint.h>

#define EK_INT32_MIN ((int32_t)(-2147483647 - 1))
#define EK_INT32_MAX ((int32_t)2147483647)

/* Two's-complement wrapping add, sub, and left shift. */
static inline int32_t ek_wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t ek_wrap_sub(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a - (uint32_t)b);
}

static inline int32_t ek_wrap_shl(int32_t a, int32_t n) {
  return (int32_t)((uint32_t)a << n);
}

static inline int32_t ek_clamp(int32_t v, int32_t lo, int32_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b + 2^30) >> 31 (floor), which
 * equals gemmlowp's nudge-and-truncate form; -2^31 * -2^31 saturates. */
static inline int32_t ek_srdhm(int32_t a, int32_t b) {
  if (a == EK_INT32_MIN && b == EK_INT32_MIN) {
    return EK_INT32_MAX;
  }
  int64_t ab = (int64_t)a * (int64_t)b;
  return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent, halves away from zero; 0 <= exponent <= 31. */
static inline int32_t ek_rdbp(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for 0 < exponent < 31. */
static inline int32_t ek_sat_shl(int32_t x, int32_t exponent) {
  const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
  if (x > threshold) {
    return EK_INT32_MAX;
  }
  if (x < -threshold) {
    return EK_INT32_MIN;
  }
  return ek_wrap_shl(x, exponent);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding, TFLM's default):
 * the left shift wraps as int32, as in the C++ code. */
static inline int32_t ek_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  return ek_rdbp(ek_srdhm(ek_wrap_shl(x, left), multiplier), right);
}

/* TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0). */
static inline int32_t ek_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int32_t left_shift) {
  return ek_rdbp(ek_srdhm(x, multiplier), -left_shift);
}

/* TFLite MultiplyByQuantizedMultiplierGreaterThanOne (left_shift >= 0). */
static inline int32_t ek_mbqm_greater_than_one(int32_t x, int32_t multiplier, int32_t left_shift) {
  return ek_srdhm(ek_wrap_shl(x, left_shift), multiplier);
}

/* gemmlowp RoundingHalfSum: (a + b) / 2, halves away from zero. */
static inline int32_t ek_rounding_half_sum(int32_t a, int32_t b) {
  const int64_t s = (int64_t)a + (int64_t)b;
  return s >= 0 ? (int32_t)((s + 1) >> 1) : (int32_t)(-((-s + 1) >> 1));
}

/* Leading zero bits of x as uint32 (32 for 0). */
static inline int32_t ek_clz32(uint32_t x) {
#if defined(__GNUC__)
  return x == 0u ? 32 : __builtin_clz(x);
#else
  int32_t n = 0;
  if (x == 0u) {
    return 32;
  }
  while ((x & 0x80000000u) == 0u) {
    x <<= 1;
    n++;
  }
  return n;
#endif
}

/* ---- gemmlowp transcendental functions on raw int32 values ---- */

/* exp(a) for Q0.31 a in [-1/4, 0); result Q0.31. */
static inline int32_t ek_exp_on_interval_neg_quarter_to_0(int32_t a) {
  const int32_t constant_term = 1895147668; /* exp(-1/8) */
  const int32_t constant_1_over_3 = 715827883;
  const int32_t x = ek_wrap_add(a, 1 << 28); /* a + 1/8 */
  const int32_t x2 = ek_srdhm(x, x);
  const int32_t x3 = ek_srdhm(x2, x);
  const int32_t x4 = ek_srdhm(x2, x2);
  const int32_t x4_over_4 = ek_rdbp(x4, 2);
  const int32_t poly = ek_wrap_add(ek_srdhm(ek_wrap_add(x4_over_4, x3), constant_1_over_3), x2);
  const int32_t t = ek_rdbp(poly, 1);
  return ek_wrap_add(constant_term, ek_srdhm(constant_term, ek_wrap_add(x, t)));
}

/* exp(a) for a <= 0 with integer_bits integer bits (1..30); result Q0.31. */
static inline int32_t ek_exp_on_negative_values(int32_t a, int32_t integer_bits) {
  static const int32_t barrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                    39332535, 720401, 242};
  const int32_t frac_bits = 31 - integer_bits;
  const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod = ek_wrap_sub(a & mask, one_quarter);
  int32_t result = ek_exp_on_interval_neg_quarter_to_0(ek_sat_shl(a_mod, integer_bits));
  const int32_t remainder = ek_wrap_sub(a_mod, a);
  int32_t i;
  for (i = 0; i < 7; i++) {
    const int32_t exponent = i - 2;
    if (integer_bits > exponent) {
      const int32_t shift_amount = frac_bits + exponent;
      if (((uint32_t)remainder >> shift_amount) & 1u) {
        result = ek_srdhm(result, barrel[i]);
      }
    }
  }
  if (integer_bits > 5) {
    const int32_t clamp = -((int32_t)1 << (36 - integer_bits));
    if (a < clamp) {
      result = 0;
    }
  }
  return a == 0 ? EK_INT32_MAX : result;
}

/* Newton-Raphson core shared by the 1/(1+x) helpers; returns Q2.29 raw. */
static inline int32_t ek_newton_reciprocal_f2(int32_t a) {
  const int32_t half_denominator = ek_rounding_half_sum(a, EK_INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  const int32_t one_f2 = 1 << 29;
  int32_t x = ek_wrap_add(constant_48_over_17, ek_srdhm(half_denominator, constant_neg_32_over_17));
  int32_t i;
  for (i = 0; i < 3; i++) {
    const int32_t one_minus = ek_wrap_sub(one_f2, ek_srdhm(half_denominator, x));
    x = ek_wrap_add(x, ek_sat_shl(ek_srdhm(x, one_minus), 2));
  }
  return x;
}

/* 1 / (1 + a) for Q0.31 a in [0, 1); result Q0.31. */
static inline int32_t ek_one_over_one_plus_x(int32_t a) {
  return ek_sat_shl(ek_newton_reciprocal_f2(a), 1);
}

/* (1 - a) / (1 + a) for Q0.31 a in [0, 1); result Q0.31. */
static inline int32_t ek_one_minus_x_over_one_plus_x(int32_t a) {
  return ek_sat_shl(ek_wrap_sub(ek_newton_reciprocal_f2(a), 1 << 29), 2);
}

/* gemmlowp logistic of a raw value with integer_bits; result Q0.31. */
static inline int32_t ek_logistic_q(int32_t a, int32_t integer_bits) {
  int32_t abs_a, r;
  if (a == 0) {
    return 1 << 30;
  }
  abs_a = a > 0 ? a : ek_wrap_sub(0, a);
  r = ek_one_over_one_plus_x(ek_exp_on_negative_values(ek_wrap_sub(0, abs_a), integer_bits));
  return a > 0 ? r : ek_wrap_sub(EK_INT32_MAX, r);
}

/* gemmlowp tanh of a raw value with integer_bits; result Q0.31. */
static inline int32_t ek_tanh_q(int32_t a, int32_t integer_bits) {
  int32_t n, t;
  if (a == 0) {
    return 0;
  }
  n = a < 0 ? a : ek_wrap_sub(0, a);
  /* exp(2n): the raw value is reinterpreted with one more integer bit. */
  t = ek_one_minus_x_over_one_plus_x(ek_exp_on_negative_values(n, integer_bits + 1));
  return a < 0 ? ek_wrap_sub(0, t) : t;
}

/* TFLite GetReciprocal: Q0.31 scaled reciprocal of positive x (x_integer_digits
 * integer bits); *num_bits_over_unit receives the scale's exponent. */
static inline int32_t ek_get_reciprocal(int32_t x, int32_t x_integer_digits,
                                        int32_t *num_bits_over_unit) {
  const int32_t headroom_plus_one = ek_clz32((uint32_t)x);
  const uint32_t shifted = headroom_plus_one >= 32 ? 0u : ((uint32_t)x << headroom_plus_one);
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  return ek_one_over_one_plus_x((int32_t)(shifted - 0x80000000u));
}

#endif /* EDGEKIT_FIXEDPOINT_H */
