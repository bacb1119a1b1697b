/* CRC-32, table driven; the 1 KiB table is built on first use. */
#include "ek_crc32.h"

static uint32_t table[256];
static int table_ready;

static void build_table(void) {
  uint32_t i, k;
  for (i = 0; i < 256u; i++) {
    uint32_t c = i;
    for (k = 0; k < 8u; k++) {
      c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    table[i] = c;
  }
  table_ready = 1;
}

uint32_t ek_crc32_update(uint32_t state, const uint8_t *data, uint32_t n) {
  uint32_t i;
  if (!table_ready) {
    build_table();
  }
  for (i = 0; i < n; i++) {
    state = table[(state ^ data[i]) & 0xFFu] ^ (state >> 8);
  }
  return state;
}

uint32_t ek_crc32(const uint8_t *data, uint32_t n) {
  return ek_crc32_final(ek_crc32_update(EK_CRC32_START, data, n));
}
