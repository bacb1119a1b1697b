/* QUANTIZE float32 -> int8, portable reference (TFLM reference_ops::AffineQuantize). */
#include "edgekit/kernels.h"

/* round() of a float32, halves away from zero, without libm. Values of magnitude
 * 2^23 or more are already integers; below that every step here is exact. */
static float round_half_away(float v) {
  const float a = v < 0.0f ? -v : v;
  float r;
  if (!(a < 8388608.0f)) {
    return v; /* integral already (or NaN) */
  }
  r = (float)(int32_t)a;
  if (a - r >= 0.5f) {
    r += 1.0f;
  }
  return v < 0.0f ? -r : r;
}

void ek_quantize_f32_s8(float scale, int32_t zero_point, int32_t size,
                        const float *input, int8_t *output) {
  int32_t i;
  for (i = 0; i < size; i++) {
    const float r = round_half_away(input[i] / scale);
    int32_t v;
    /* The result is clamped to int8 anyway: clamp before converting to int. */
    if (r != r) {
      v = zero_point < -128 ? -128 : (zero_point > 127 ? 127 : zero_point); /* NaN */
    } else if (r >= 1024.0f) {
      v = 127;
    } else if (r <= -1024.0f) {
      v = -128;
    } else {
      v = (int32_t)r + zero_point;
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
    }
    output[i] = (int8_t)v;
  }
}
