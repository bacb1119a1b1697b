/* Consistent Overhead Byte Stuffing: a frame without 0x00 bytes, so 0x00 can delimit
 * frames on the wire. */
#ifndef EK_COBS_H
#define EK_COBS_H

#include <stdint.h>

/* Bytes COBS may need to encode n bytes (the delimiter not included). */
#define EK_COBS_MAX_ENCODED(n) ((n) + ((n) + 253u) / 254u + 1u)

/* Encodes n bytes of in into out (EK_COBS_MAX_ENCODED(n) bytes of room); returns the
 * encoded length. in and out must not overlap. */
uint32_t ek_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out);

/* Decodes n encoded bytes (no delimiter) into out, which may be in itself (decoding
 * never writes ahead of what it reads). Returns the decoded length, or -1 when the
 * input is not valid COBS (a 0x00 inside, or a block running past the end). */
int32_t ek_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out);

#endif /* EK_COBS_H */
