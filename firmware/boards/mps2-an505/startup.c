/* mps2-an505 start-up: the vector table (124 external interrupts) and the reset
 * handler. */
#include <stdint.h>

#include "cortexm.h"

extern uint32_t __stack_top[];
int main(void);
void Reset_Handler(void);
void ek_uart_irq_handler(void);

static void default_irq(void) {
  ek_default_handler();
}

void SysTick_Handler(void) __attribute__((weak, alias("default_irq")));

typedef void (*ek_vector)(void);

__attribute__((section(".isr_vector"), used)) const ek_vector ek_vectors[16 + 124] = {
    (ek_vector)(uintptr_t)__stack_top,
    Reset_Handler,
    default_irq, /* NMI */
    default_irq, /* HardFault */
    default_irq, /* MemManage */
    default_irq, /* BusFault */
    default_irq, /* UsageFault */
    default_irq, /* SecureFault (Armv8-M) */
    0,
    0,
    0,
    default_irq, /* SVCall */
    default_irq, /* DebugMonitor */
    0,
    default_irq, /* PendSV */
    SysTick_Handler,
    /* IRQ 0 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 6 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 12 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 18 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 24 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 30 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 36 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    ek_uart_irq_handler, /* IRQ 42: UART0 combined */
    /* IRQ 43 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 49 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 55 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 61 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 67 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 73 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 79 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 85 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 91 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 97 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 103 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 109 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 115 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 121 */ default_irq, default_irq, default_irq,
};

void Reset_Handler(void) {
  ek_crt_init();
  EK_SCB_VTOR = (uint32_t)(uintptr_t)ek_vectors;
  (void)main();
  ek_default_handler();
}
