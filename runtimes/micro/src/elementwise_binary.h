/*
 * The output walk of the int8 elementwise binary kernels without requantization state
 * of their own (MAXIMUM, MINIMUM, DIV, SQUARED_DIFFERENCE, PRELU), internal header.
 *
 * EK_BINARY_WALK(d, in1, s1, in2, s2, out, EXPR) visits the output in order with a and
 * b bound to the two operands' int8 values and stores EXPR; a flat loop when both are
 * dense or single values, the 4-D stride walk otherwise (as broadcast4.h describes).
 */
#ifndef EDGEKIT_ELEMENTWISE_BINARY_H
#define EDGEKIT_ELEMENTWISE_BINARY_H

#include "broadcast4.h"

#define EK_BINARY_WALK(d, in1, s1, in2, s2, out, EXPR)                                   \
  do {                                                                                   \
    const int32_t step1_ = ek_flat_step((d), (s1));                                      \
    const int32_t step2_ = ek_flat_step((d), (s2));                                      \
    if (step1_ >= 0 && step2_ >= 0) {                                                    \
      const int32_t size_ = (d)->n * (d)->h * (d)->w * (d)->c;                           \
      int32_t i_;                                                                        \
      for (i_ = 0; i_ < size_; i_++) {                                                   \
        const int32_t a = (in1)[i_ * step1_];                                            \
        const int32_t b = (in2)[i_ * step2_];                                            \
        (out)[i_] = (int8_t)(EXPR);                                                      \
      }                                                                                  \
    } else {                                                                             \
      int8_t *o_ = (out);                                                                \
      int32_t n_, h_, w_, c_;                                                            \
      for (n_ = 0; n_ < (d)->n; n_++) {                                                  \
        for (h_ = 0; h_ < (d)->h; h_++) {                                                \
          for (w_ = 0; w_ < (d)->w; w_++) {                                              \
            const int8_t *pa_ = (in1) + n_ * (s1)->n + h_ * (s1)->h + w_ * (s1)->w;      \
            const int8_t *pb_ = (in2) + n_ * (s2)->n + h_ * (s2)->h + w_ * (s2)->w;      \
            for (c_ = 0; c_ < (d)->c; c_++) {                                            \
              const int32_t a = pa_[c_ * (s1)->c];                                       \
              const int32_t b = pb_[c_ * (s2)->c];                                       \
              *o_++ = (int8_t)(EXPR);                                                    \
            }                                                                            \
          }                                                                              \
        }                                                                                \
      }                                                                                  \
    }                                                                                    \
  } while (0)

#endif /* EDGEKIT_ELEMENTWISE_BINARY_H */
