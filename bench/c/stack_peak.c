/*
 * Stack peak of a firmware/common/model_runner.c build, for bench/mcu.py.
 *
 * Linked with -Wl,--wrap=main: the reset handler's call to main() lands here. It paints
 * the stack from its limit up to just below its own frame, runs the real main, then
 * finds the lowest word that lost the paint and prints, through semihosting,
 *   stack peak: N bytes
 * (N counts from the top of RAM, so it holds the reset handler's and this frame too).
 * Kept in bench/ so the shipped firmware carries no measuring code.
 */
#include <stdint.h>

#include "semihosting.h"

#define EK_BENCH_PAINT 0xA5A5A5A5u

extern uint32_t __stack_limit[];
extern uint32_t __stack_top[];

int __real_main(void);
int __wrap_main(void);

static void ek_bench_write_u32(uint32_t v) {
  char buf[11];
  int i = 10;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(v % 10u));
    v /= 10u;
  } while (v != 0u);
  ek_semihosting_write0(&buf[i]);
}

int __wrap_main(void) {
  uintptr_t sp;
  volatile uint32_t *p;
  int status;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  /* Leave 64 bytes below sp alone: this frame's own spills may live there. */
  for (p = __stack_limit; (uintptr_t)p < sp - 64u; p++) {
    *p = EK_BENCH_PAINT;
  }
  status = __real_main();
  p = __stack_limit;
  while ((uintptr_t)p < (uintptr_t)__stack_top && *p == EK_BENCH_PAINT) {
    p++;
  }
  ek_semihosting_write0("stack peak: ");
  ek_bench_write_u32((uint32_t)((uintptr_t)__stack_top - (uintptr_t)p));
  ek_semihosting_write0(" bytes\n");
  return status;
}
