/* Arm semihosting calls used by edgekit's on-target test programs. */
#include "semihosting.h"

#include <stdint.h>

enum {
  SYS_WRITE0 = 0x04,
  SYS_EXIT_EXTENDED = 0x20,
  ADP_STOPPED_APPLICATION_EXIT = 0x20026
};

static int32_t semihosting_call(int32_t op, const void *arg) {
  register int32_t r0 __asm__("r0") = op;
  register const void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void ek_semihosting_write0(const char *s) {
  (void)semihosting_call(SYS_WRITE0, s);
}

void ek_semihosting_exit(int status) {
  const uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status};
  (void)semihosting_call(SYS_EXIT_EXTENDED, block);
  for (;;) {
  }
}
