/*
 * Prints the SHA-256 (firmware/app/ek_sha256.c) of test messages, one line each:
 * "<length> <digest in one call> <digest fed in uneven pieces>". The messages are the
 * first <length> bytes of a fixed pseudo-random stream that tests/firmware/test_sha256.py
 * rebuilds, and hashlib is the oracle.
 *
 * The host build writes to stdout; with EK_SEMIHOSTING (QEMU) each line goes out through
 * SYS_WRITE0 and the program ends with a semihosting exit.
 */
#include <stdint.h>
#include <string.h>

#include "ek_sha256.h"

#ifdef EK_SEMIHOSTING
#include "semihosting.h"
static void put_line(const char *s) {
  ek_semihosting_write0(s);
}
void ek_main_returned(int status);
void ek_fault(void);
void ek_main_returned(int status) {
  ek_semihosting_exit(status);
}
void ek_fault(void) {
  ek_semihosting_exit(3);
}
#else
#include <stdio.h>
static void put_line(const char *s) {
  fputs(s, stdout);
}
#endif

#define LONGEST 100003u

static uint8_t message[LONGEST];

static const uint32_t LENGTHS_EXTRA[] = {255, 256, 257, 511, 512, 513, 1000, 4095, 4096, 4097,
                                         65535, 65536, LONGEST};

static char *put_hex(char *out, const uint8_t *d, unsigned n) {
  static const char hex[] = "0123456789abcdef";
  unsigned i;
  for (i = 0; i < n; i++) {
    *out++ = hex[d[i] >> 4];
    *out++ = hex[d[i] & 15u];
  }
  return out;
}

static char *put_dec(char *out, uint32_t v) {
  char digits[10];
  unsigned n = 0;
  do {
    digits[n++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  while (n > 0u) {
    *out++ = digits[--n];
  }
  return out;
}

static void check(uint32_t n) {
  /* Piece sizes that cross block boundaries at every phase. */
  static const uint32_t pieces[] = {1, 63, 64, 65, 7, 128, 3, 200, 55, 56};
  uint8_t one[EK_SHA256_BYTES], parts[EK_SHA256_BYTES];
  ek_sha256_ctx ctx;
  uint32_t done = 0, k = 0;
  char line[160];
  char *p = line;
  ek_sha256(message, n, one);
  ek_sha256_init(&ctx);
  while (done < n) {
    uint32_t take = pieces[k++ % (sizeof pieces / sizeof pieces[0])];
    if (take > n - done) {
      take = n - done;
    }
    ek_sha256_update(&ctx, message + done, take);
    done += take;
  }
  ek_sha256_final(&ctx, parts);
  p = put_dec(p, n);
  *p++ = ' ';
  p = put_hex(p, one, EK_SHA256_BYTES);
  *p++ = ' ';
  p = put_hex(p, parts, EK_SHA256_BYTES);
  *p++ = '\n';
  *p = '\0';
  put_line(line);
}

int main(void) {
  uint32_t x = 12345u, i;
  for (i = 0; i < LONGEST; i++) { /* the stream test_sha256.py rebuilds */
    x = x * 1103515245u + 12345u;
    message[i] = (uint8_t)(x >> 24);
  }
  for (i = 0; i <= 200u; i++) {
    check(i);
  }
  for (i = 0; i < sizeof LENGTHS_EXTRA / sizeof LENGTHS_EXTRA[0]; i++) {
    check(LENGTHS_EXTRA[i]);
  }
  put_line("done\n");
  return 0;
}
