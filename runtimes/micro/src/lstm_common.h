/*
 * Shared parts of the ek_lstm_s8 variants (internal header): TFLite's 16-bit sigmoid and
 * tanh (the LUT kernels of reference_integer_ops) and the cell / hidden update of one
 * unit, exactly as TFLM's lstm_eval computes them (see kernels.h).
 */
#ifndef EDGEKIT_LSTM_COMMON_H
#define EDGEKIT_LSTM_COMMON_H

#include <stdint.h>

#include "edgekit/kernels.h"
#include "fixedpoint.h"

/* TFLite's sigmoid(i / 24) in 0.16 fixed point, the table its 16-bit logistic and tanh
 * kernels interpolate. */
static const uint16_t ek_sigmoid_table_u16[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535
};

/* reference_integer_ops::Logistic, int16, input Q3.12 (input_multiplier 0, shift 0). */
static inline int16_t ek_lstm_sigmoid(int32_t x) {
  const int32_t v = x * 3;
  const uint32_t a = (uint32_t)(v < 0 ? -v : v);
  const uint32_t uh = a >> 9;
  uint32_t r;
  if (uh >= 255u) {
    r = 0x7FFFu << 10;
  } else {
    const uint32_t ua = ek_sigmoid_table_u16[uh];
    const uint32_t ub = ek_sigmoid_table_u16[uh + 1u];
    r = (ua << 9) + (a & 0x1FFu) * (ub - ua);
  }
  r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
  return (int16_t)(r >> 10);
}

/* reference_integer_ops::Tanh, int16 (power-of-two form when multiplier is 0). */
static inline int16_t ek_lstm_tanh(int32_t x, int32_t multiplier, int32_t left_shift) {
  int32_t rnd, v, r;
  uint32_t a, uh;
  if (multiplier == 0) {
    multiplier = 3 << left_shift;
    left_shift = 0;
  }
  rnd = left_shift > 0 ? 1 << (left_shift - 1) : 0;
  v = (x * multiplier + rnd) >> left_shift;
  a = (uint32_t)(v < 0 ? -v : v);
  uh = a >> 8;
  if (uh >= 255u) {
    r = 0xFFFF << 8;
  } else {
    const int32_t ua = ek_sigmoid_table_u16[uh];
    const int32_t ub = ek_sigmoid_table_u16[uh + 1u];
    r = (ua << 8) + (int32_t)(a & 0xFFu) * (ub - ua);
  }
  r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
  return (int16_t)(r >> 8);
}

static inline int32_t ek_sat16(int32_t v) {
  return ek_clamp(v, -32768, 32767);
}

/* A gate's Q3.12 pre-activation from its input product (bias included) and recurrent
 * product accumulators: each requantized to int16, then a saturating add. has_h is 0 at
 * the first step (zero state: no recurrent product). */
static inline int32_t ek_lstm_pre(const ek_lstm_params *p, int32_t g, int32_t acc_in, int32_t acc_rec,
                                  int32_t has_h) {
  const int32_t a = ek_sat16(ek_mbqm(acc_in, p->input_mult[g], p->input_shift[g]));
  const int32_t r = has_h ? ek_sat16(ek_mbqm(acc_rec, p->recurrent_mult[g], p->recurrent_shift[g])) : 0;
  return ek_sat16(a + r);
}

/* One unit's step from its four pre-activations (input, forget, cell, output gates):
 * updates *cell and returns the int8 hidden value. */
static inline int8_t ek_lstm_unit(const ek_lstm_params *p, const int32_t pre[4], int16_t *cell) {
  const int32_t i = ek_lstm_sigmoid(pre[0]);
  const int32_t f = ek_lstm_sigmoid(pre[1]);
  const int32_t g = ek_lstm_tanh(pre[2], 0, 0);
  const int32_t o = ek_lstm_sigmoid(pre[3]);
  int32_t c = ek_sat16(ek_mbqm(f * (int32_t)*cell, p->forget_mult, p->forget_shift));
  const int32_t ig = ek_sat16(ek_mbqm(i * g, p->input_gate_mult, p->input_gate_shift));
  int32_t hv;
  c = ek_sat16(c + ig);
  if (p->use_clip) {
    c = ek_clamp(c, -p->cell_clip, p->cell_clip);
  }
  *cell = (int16_t)c;
  hv = ek_lstm_tanh(c, p->cell_tanh_multiplier, p->cell_tanh_shift);
  hv = ek_mbqm(hv * o, p->output_mult, p->output_shift) + p->output_offset;
  return (int8_t)ek_clamp(hv, -128, 127);
}

#endif /* EDGEKIT_LSTM_COMMON_H */
