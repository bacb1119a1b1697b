#include "ek_cobs.h"

uint32_t ek_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out) {
  uint32_t code_at = 0; /* where the current block's code byte goes */
  uint32_t w = 1;
  uint8_t code = 1;
  uint32_t r;
  for (r = 0; r < n; r++) {
    if (in[r] == 0u) {
      out[code_at] = code;
      code_at = w++;
      code = 1;
      continue;
    }
    out[w++] = in[r];
    code++;
    if (code == 0xFFu) {
      out[code_at] = code;
      code_at = w++;
      code = 1;
    }
  }
  out[code_at] = code;
  return w;
}

int32_t ek_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out) {
  uint32_t r = 0;
  uint32_t w = 0;
  while (r < n) {
    const uint8_t code = in[r++];
    uint32_t i;
    if (code == 0u) {
      return -1;
    }
    for (i = 1; i < code; i++) {
      uint8_t b;
      if (r >= n) {
        return -1;
      }
      b = in[r++];
      if (b == 0u) {
        return -1;
      }
      out[w++] = b;
    }
    if (code != 0xFFu && r < n) {
      out[w++] = 0u;
    }
  }
  return (int32_t)w;
}
