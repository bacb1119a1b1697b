/* FULLY_CONNECTED int8 with packed weights, Armv7E-M DSP variant: the portable kernel's
 * bytes (TFLM FullyConnected / FullyConnectedPerChannel, filter offset 0) four output
 * rows at a time. Per group of 4 inputs: one input word widened with two SXTB16 serves
 * the four rows, whose 4 weight words (kernels.h layout) are read with two LDRDs and
 * widened with 8 SXTB16 for 8 SMLADs. The folded bias starts each sum. */
#include "edgekit/kernels.h"

#include "fixedpoint.h"
#include "packed.h"
#include "simd.h"

#define EK_FC_GROUP                                         \
  "ldr %[x], [%[xp]], #4\n\t"                               \
  "sxtb16 %[xo], %[x], ror #8\n\t"                          \
  "sxtb16 %[x], %[x]\n\t"                                   \
  "ldrd %[w], %[v], [%[wp]], #8\n\t"                        \
  "sxtb16 %[t], %[w], ror #8\n\t"                           \
  "sxtb16 %[w], %[w]\n\t"                                   \
  "smlad %[a0], %[w], %[x], %[a0]\n\t"                      \
  "smlad %[a0], %[t], %[xo], %[a0]\n\t"                     \
  "sxtb16 %[t], %[v], ror #8\n\t"                           \
  "sxtb16 %[v], %[v]\n\t"                                   \
  "smlad %[a1], %[v], %[x], %[a1]\n\t"                      \
  "smlad %[a1], %[t], %[xo], %[a1]\n\t"                     \
  "ldrd %[w], %[v], [%[wp]], #8\n\t"                        \
  "sxtb16 %[t], %[w], ror #8\n\t"                           \
  "sxtb16 %[w], %[w]\n\t"                                   \
  "smlad %[a2], %[w], %[x], %[a2]\n\t"                      \
  "smlad %[a2], %[t], %[xo], %[a2]\n\t"                     \
  "sxtb16 %[t], %[v], ror #8\n\t"                           \
  "sxtb16 %[v], %[v]\n\t"                                   \
  "smlad %[a3], %[v], %[x], %[a3]\n\t"                      \
  "smlad %[a3], %[t], %[xo], %[a3]\n\t"

/* acc[r] += row r . x over `groups` whole groups (x: raw bytes, any alignment). */
static inline __attribute__((always_inline)) void rows4_dot(const int8_t **xpp,
                                                            const ek_word **wpp,
                                                            int32_t groups, int32_t acc[4]) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *xp = *xpp;
  const ek_word *wp = *wpp;
  uint32_t x, xo, w, v, t;
  __asm__ volatile(
      "tst %[n], #1\n\t"
      "beq 2f\n\t"
      EK_FC_GROUP
      "2:\n\t"
      "lsrs %[n], %[n], #1\n\t"
      "beq 3f\n\t"
      "1:\n\t"
      EK_FC_GROUP
      EK_FC_GROUP
      "subs %[n], %[n], #1\n\t"
      "bne 1b\n\t"
      "3:\n\t"
      : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [xp] "+r"(xp),
        [wp] "+r"(wp), [n] "+r"(groups), [x] "=&r"(x), [xo] "=&r"(xo), [w] "=&r"(w),
        [v] "=&r"(v), [t] "=&r"(t)
      :
      : "cc", "memory");
  acc[0] = a0;
  acc[1] = a1;
  acc[2] = a2;
  acc[3] = a3;
  *xpp = xp;
  *wpp = wp;
}

static void fc_rows(
    const ek_fc_packed_params *p, const int32_t *mult, const int32_t *shift, int32_t batches,
    int32_t input_depth, int32_t output_depth, const int8_t *input, const int8_t *packed_filter,
    const int32_t *bias, int8_t *output, int32_t fast, int32_t full) {
  const int32_t groups = input_depth >> 2;
  const int32_t tail = input_depth & 3;
  const int32_t kp = (input_depth + 3) & ~3;
  const int32_t lo = p->act_min, hi = p->act_max;
  const int32_t out_off = p->output_offset, round1 = 1 + 2 * out_off;
  const int32_t per_channel = p->per_channel;
  int32_t b, o, r;
  for (b = 0; b < batches; b++) {
    const int8_t *x = input + b * input_depth;
    for (o = 0; o < output_depth; o += 4) {
      const int32_t rows = output_depth - o < 4 ? output_depth - o : 4;
      const ek_word *wp = (const ek_word *)(const void *)(packed_filter + o * kp);
      const int8_t *xp = x;
      int32_t acc[4] = {0, 0, 0, 0};
      for (r = 0; r < rows; r++) {
        acc[r] = bias[o + r];
      }
      rows4_dot(&xp, &wp, groups, acc);
      if (tail) {
        /* The last, partial group: its missing inputs meet zero weights. */
        const int8_t *wb = (const int8_t *)(const void *)wp;
        int32_t k;
        for (k = 0; k < tail; k++) {
          for (r = 0; r < 4; r++) {
            acc[r] = ek_wrap_add(acc[r], (int32_t)wb[4 * r + k] * (int32_t)xp[k]);
          }
        }
      }
      for (r = 0; r < rows; r++) {
        const int32_t q = per_channel ? o + r : 0;
        if (!fast) {
          output[o + r] = ek_packed_exact_out(acc[r], mult[q], shift[q], out_off, lo, hi);
        } else if (full) {
          output[o + r] = ek_packed_fast_out(acc[r], mult[q], ~shift[q], round1, lo, hi, 1);
        } else {
          output[o + r] = ek_packed_fast_out(acc[r], mult[q], ~shift[q], round1, lo, hi, 0);
        }
      }
    }
    output += output_depth;
  }
}

void ek_fully_connected_packed_s8(const ek_fc_packed_params *p, const int32_t *mult,
                                  const int32_t *shift, int32_t batches, int32_t input_depth,
                                  int32_t output_depth, const int8_t *input,
                                  const int8_t *packed_filter, const int32_t *folded_bias,
                                  int8_t *output) {
  /* One instance, the requantization chosen per output: the SMLAD loop dominates, and
   * code size counts on the targets (three specializations took 1.3 KB more). */
  fc_rows(p, mult, shift, batches, input_depth, output_depth, input, packed_filter, folded_bias,
          output, p->fast_requant, p->act_min == -128 && p->act_max == 127);
}
