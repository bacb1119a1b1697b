/*
 * Cortex-M startup for the MPS2 boards (and any Armv6-M / Armv7-M / Armv8-M part):
 * the vector table and a reset handler that copies .data from flash, zeroes .bss,
 * enables the FPU when the code is built for one, and runs main().
 *
 * Two weak hooks let a program decide what the end of main and a fault mean
 * (a semihosting exit in tests, a reset or a blink on a board):
 *   void ek_main_returned(int status);   default: sleep forever
 *   void ek_fault(void);                 default: spin forever
 * Interrupt handlers are weak aliases of ek_default_handler; define one by name
 * (SysTick_Handler, IRQ5_Handler, ...) to install it.
 */
#include <stdint.h>

/* Linker script symbols (mps2.ld). */
extern uint32_t __data_load[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_top[];

int main(void);
void Reset_Handler(void);

void ek_main_returned(int status) __attribute__((weak));
void ek_fault(void) __attribute__((weak));

void ek_main_returned(int status) {
  (void)status;
  for (;;) {
    __asm__ volatile("wfi");
  }
}

void ek_fault(void) {
  for (;;) {
  }
}

void ek_default_handler(void) {
  ek_fault();
}

#define EK_WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("ek_default_handler")))
EK_WEAK_HANDLER(NMI_Handler);
EK_WEAK_HANDLER(HardFault_Handler);
EK_WEAK_HANDLER(MemManage_Handler);
EK_WEAK_HANDLER(BusFault_Handler);
EK_WEAK_HANDLER(UsageFault_Handler);
EK_WEAK_HANDLER(SVC_Handler);
EK_WEAK_HANDLER(DebugMon_Handler);
EK_WEAK_HANDLER(PendSV_Handler);
EK_WEAK_HANDLER(SysTick_Handler);
EK_WEAK_HANDLER(IRQ0_Handler);
EK_WEAK_HANDLER(IRQ1_Handler);
EK_WEAK_HANDLER(IRQ2_Handler);
EK_WEAK_HANDLER(IRQ3_Handler);
EK_WEAK_HANDLER(IRQ4_Handler);
EK_WEAK_HANDLER(IRQ5_Handler);
EK_WEAK_HANDLER(IRQ6_Handler);
EK_WEAK_HANDLER(IRQ7_Handler);
EK_WEAK_HANDLER(IRQ8_Handler);
EK_WEAK_HANDLER(IRQ9_Handler);
EK_WEAK_HANDLER(IRQ10_Handler);
EK_WEAK_HANDLER(IRQ11_Handler);
EK_WEAK_HANDLER(IRQ12_Handler);
EK_WEAK_HANDLER(IRQ13_Handler);
EK_WEAK_HANDLER(IRQ14_Handler);
EK_WEAK_HANDLER(IRQ15_Handler);

typedef void (*ek_vector)(void);

/* Entry 0 is the initial stack pointer, entry 1 the reset handler. */
__attribute__((section(".isr_vector"), used)) const ek_vector ek_vector_table[32] = {
    (ek_vector)(uintptr_t)__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
    IRQ0_Handler,
    IRQ1_Handler,
    IRQ2_Handler,
    IRQ3_Handler,
    IRQ4_Handler,
    IRQ5_Handler,
    IRQ6_Handler,
    IRQ7_Handler,
    IRQ8_Handler,
    IRQ9_Handler,
    IRQ10_Handler,
    IRQ11_Handler,
    IRQ12_Handler,
    IRQ13_Handler,
    IRQ14_Handler,
    IRQ15_Handler,
};

static void enable_fpu(void) {
#if defined(__ARM_FP)
  /* CPACR: full access to CP10 and CP11. */
  volatile uint32_t *const cpacr = (volatile uint32_t *)0xE000ED88u;
  *cpacr |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
}

void Reset_Handler(void) {
  const uint32_t *src = __data_load;
  uint32_t *dst;
  for (dst = __data_start; dst < __data_end; dst++) {
    *dst = *src++;
  }
  for (dst = __bss_start; dst < __bss_end; dst++) {
    *dst = 0u;
  }
  enable_fpu();
  ek_main_returned(main());
  for (;;) {
  }
}
