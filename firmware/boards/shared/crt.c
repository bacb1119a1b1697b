/* Cortex-M runtime shared by the board ports: start-up, stack use, reset, faults. */
#include <stdint.h>

#include "cortexm.h"
#include "ek_board.h"

/* Linker script symbols (sections.ld). */
extern uint32_t __data_load[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_limit[];
extern uint32_t __stack_top[];

#define STACK_PAINT 0xA5A5A5A5u

void ek_crt_init(void) {
  const uint32_t *src = __data_load;
  volatile uint32_t *dst;
  uint32_t sp;
  for (dst = __data_start; dst < __data_end; dst++) {
    *dst = *src++;
  }
  for (dst = __bss_start; dst < __bss_end; dst++) {
    *dst = 0u;
  }
#if defined(__ARM_FP)
  EK_SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access */
  ek_dsb_isb();
#endif
  /* Paint the stack below what this function uses; ek_stack_high_water() later
   * finds the lowest word that no longer holds the paint. */
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (dst = __stack_limit; (uintptr_t)dst < sp - 64u; dst++) {
    *dst = STACK_PAINT;
  }
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
  __asm__ volatile("msr msplim, %0" ::"r"(__stack_limit));
#endif
}

uint32_t ek_stack_size(void) {
  return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)__stack_limit);
}

uint32_t ek_stack_high_water(void) {
  const volatile uint32_t *p = __stack_limit;
  while (p < __stack_top && *p == STACK_PAINT) {
    p++;
  }
  return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

void ek_board_reset(void) {
  ek_dsb_isb();
  EK_SCB_AIRCR = 0x05FA0004u; /* VECTKEY | SYSRESETREQ */
  ek_dsb_isb();
  for (;;) {
  }
}

void ek_default_handler(void) {
  /* A fault or an interrupt nobody expects: start over rather than hang. The
   * active model survives in its slot. */
  ek_board_reset();
}
