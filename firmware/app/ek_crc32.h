/* CRC-32 (IEEE 802.3: reflected, polynomial 0xEDB88320, init and final xor 0xFFFFFFFF). */
#ifndef EK_CRC32_H
#define EK_CRC32_H

#include <stdint.h>

#define EK_CRC32_START 0xFFFFFFFFu

/* Feeds n bytes into a running state (start from EK_CRC32_START). */
uint32_t ek_crc32_update(uint32_t state, const uint8_t *data, uint32_t n);

/* The CRC of a state: ek_crc32_final(ek_crc32_update(EK_CRC32_START, p, n)). */
static inline uint32_t ek_crc32_final(uint32_t state) {
  return state ^ 0xFFFFFFFFu;
}

/* CRC-32 of n bytes. */
uint32_t ek_crc32(const uint8_t *data, uint32_t n);

#endif /* EK_CRC32_H */
