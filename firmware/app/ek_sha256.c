/* SHA-256 as FIPS 180-4 specifies it (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3, 6.2). */
#include "ek_sha256.h"

#include <string.h>

/* The first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u};

static uint32_t rotr(uint32_t x, unsigned n) {
  return (x >> n) | (x << (32u - n));
}

/* Section 6.2.2: one 512-bit block into the hash value. */
static void compress(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64];
  uint32_t a, b, c, d, e, f, g, hh;
  unsigned t;
  for (t = 0; t < 16u; t++) { /* the message is big-endian words */
    w[t] = ((uint32_t)p[4 * t] << 24) | ((uint32_t)p[4 * t + 1] << 16) |
           ((uint32_t)p[4 * t + 2] << 8) | (uint32_t)p[4 * t + 3];
  }
  for (t = 16; t < 64u; t++) {
    const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = s1 + w[t - 7] + s0 + w[t - 16];
  }
  a = h[0];
  b = h[1];
  c = h[2];
  d = h[3];
  e = h[4];
  f = h[5];
  g = h[6];
  hh = h[7];
  for (t = 0; t < 64u; t++) {
    const uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const uint32_t ch = (e & f) ^ (~e & g);
    const uint32_t t1 = hh + big_s1 + ch + K[t] + w[t];
    const uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const uint32_t t2 = big_s0 + maj;
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

void ek_sha256_init(ek_sha256_ctx *ctx) {
  /* Section 5.3.3: the first 32 bits of the fractional parts of the square roots of the
   * first 8 primes. */
  static const uint32_t H0[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
  memcpy(ctx->h, H0, sizeof H0);
  ctx->length = 0;
  ctx->fill = 0;
}

void ek_sha256_update(ek_sha256_ctx *ctx, const uint8_t *data, uint32_t n) {
  ctx->length += n;
  if (ctx->fill > 0u) {
    uint32_t take = 64u - ctx->fill;
    if (take > n) {
      take = n;
    }
    memcpy(ctx->block + ctx->fill, data, take);
    ctx->fill += take;
    data += take;
    n -= take;
    if (ctx->fill < 64u) {
      return;
    }
    compress(ctx->h, ctx->block);
    ctx->fill = 0;
  }
  while (n >= 64u) { /* whole blocks straight from the input */
    compress(ctx->h, data);
    data += 64;
    n -= 64u;
  }
  memcpy(ctx->block, data, n);
  ctx->fill = n;
}

void ek_sha256_final(ek_sha256_ctx *ctx, uint8_t digest[EK_SHA256_BYTES]) {
  /* Section 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, then the length in bits as a
   * big-endian 64-bit integer. */
  const uint64_t bits = ctx->length * 8u;
  unsigned i;
  ctx->block[ctx->fill++] = 0x80u;
  if (ctx->fill > 56u) {
    memset(ctx->block + ctx->fill, 0, 64u - ctx->fill);
    compress(ctx->h, ctx->block);
    ctx->fill = 0;
  }
  memset(ctx->block + ctx->fill, 0, 56u - ctx->fill);
  for (i = 0; i < 8u; i++) {
    ctx->block[56u + i] = (uint8_t)(bits >> (56u - 8u * i));
  }
  compress(ctx->h, ctx->block);
  for (i = 0; i < 8u; i++) {
    digest[4u * i] = (uint8_t)(ctx->h[i] >> 24);
    digest[4u * i + 1u] = (uint8_t)(ctx->h[i] >> 16);
    digest[4u * i + 2u] = (uint8_t)(ctx->h[i] >> 8);
    digest[4u * i + 3u] = (uint8_t)ctx->h[i];
  }
}

void ek_sha256(const uint8_t *data, uint32_t n, uint8_t digest[EK_SHA256_BYTES]) {
  ek_sha256_ctx ctx;
  ek_sha256_init(&ctx);
  ek_sha256_update(&ctx, data, n);
  ek_sha256_final(&ctx, digest);
}
