/* NUCLEO-L4R5ZI start-up: the vector table (96 external interrupts of the STM32L4R5)
 * and the reset handler. */
#include <stdint.h>

#include "cortexm.h"

extern uint32_t __stack_top[];
int main(void);
void Reset_Handler(void);
void ek_uart_irq_handler(void);
void SysTick_Handler(void);

static void default_irq(void) {
  ek_default_handler();
}

typedef void (*ek_vector)(void);

#define D4 default_irq, default_irq, default_irq, default_irq
#define D10 D4, D4, default_irq, default_irq

__attribute__((section(".isr_vector"), used)) const ek_vector ek_vectors[16 + 96] = {
    (ek_vector)(uintptr_t)__stack_top,
    Reset_Handler,
    default_irq, /* NMI */
    default_irq, /* HardFault */
    default_irq, /* MemManage */
    default_irq, /* BusFault */
    default_irq, /* UsageFault */
    0,
    0,
    0,
    0,
    default_irq, /* SVCall */
    default_irq, /* DebugMonitor */
    0,
    default_irq, /* PendSV */
    SysTick_Handler,
    D10, D10, D10, D10, D10, D10, D10, /* IRQ 0..69 */
    ek_uart_irq_handler,               /* IRQ 70: LPUART1 */
    D10, D10, D4, default_irq,         /* IRQ 71..95 */
};

void Reset_Handler(void) {
  ek_crt_init();
  EK_SCB_VTOR = (uint32_t)(uintptr_t)ek_vectors;
  (void)main();
  ek_default_handler();
}
