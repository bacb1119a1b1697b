/* SHA-256 (FIPS 180-4), incremental: the integrity check of a model package's body. */
#ifndef EK_SHA256_H
#define EK_SHA256_H

#include <stdint.h>

#define EK_SHA256_BYTES 32u

typedef struct {
  uint32_t h[8];
  uint64_t length;   /* bytes fed so far */
  uint8_t block[64]; /* the block being filled */
  uint32_t fill;     /* bytes of it filled */
} ek_sha256_ctx;

void ek_sha256_init(ek_sha256_ctx *ctx);
void ek_sha256_update(ek_sha256_ctx *ctx, const uint8_t *data, uint32_t n);
void ek_sha256_final(ek_sha256_ctx *ctx, uint8_t digest[EK_SHA256_BYTES]);

/* The digest of n bytes in one call. */
void ek_sha256(const uint8_t *data, uint32_t n, uint8_t digest[EK_SHA256_BYTES]);

#endif /* EK_SHA256_H */
