/* mps2-an385 start-up: the vector table (32 external interrupts) and the reset
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

__attribute__((section(".isr_vector"), used)) const ek_vector ek_vectors[16 + 32] = {
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
    ek_uart_irq_handler, /* IRQ 0: UART0 RX */
    /* IRQ 1 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 7 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 13 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 19 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 25 */ default_irq, default_irq, default_irq, default_irq, default_irq, default_irq,
    /* IRQ 31 */ default_irq,
};

void Reset_Handler(void) {
  ek_crt_init();
  EK_SCB_VTOR = (uint32_t)(uintptr_t)ek_vectors;
  (void)main();
  ek_default_handler();
}
