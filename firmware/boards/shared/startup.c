/* Start-up of every board port: the vector table and the reset handler. A port's
 * board.h gives the number of external interrupts (EK_IRQ_COUNT) and the one its UART
 * receives on (EK_UART_IRQ); every other interrupt and fault resets the board. */
#include <stdint.h>

#include "board.h"
#include "cortexm.h"

#if !defined(EK_IRQ_COUNT) || !defined(EK_UART_IRQ)
#error "board.h must define EK_IRQ_COUNT and EK_UART_IRQ"
#endif
#if EK_UART_IRQ >= EK_IRQ_COUNT
#error "EK_UART_IRQ must be below EK_IRQ_COUNT"
#endif

extern uint32_t __stack_top[];
int main(void);
void Reset_Handler(void);
void ek_uart_irq_handler(void);

static void default_irq(void) {
  ek_default_handler();
}

/* A port with a SysTick driver (boards/shared/systick.c) defines it. */
void SysTick_Handler(void) __attribute__((weak, alias("default_irq")));

typedef void (*ek_vector)(void);

/* Every external interrupt goes to default_irq, then the UART's entry is set: the later
 * designator overrides the range on purpose. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".isr_vector"), used)) const ek_vector ek_vectors[16 + EK_IRQ_COUNT] = {
    [0] = (ek_vector)(uintptr_t)__stack_top,
    [1] = Reset_Handler,
    [2] = default_irq,  /* NMI */
    [3] = default_irq,  /* HardFault */
    [4] = default_irq,  /* MemManage */
    [5] = default_irq,  /* BusFault */
    [6] = default_irq,  /* UsageFault */
    [7] = default_irq,  /* SecureFault (Armv8-M; reserved before) */
    [11] = default_irq, /* SVCall */
    [12] = default_irq, /* DebugMonitor */
    [14] = default_irq, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 16 + EK_IRQ_COUNT - 1] = default_irq,
    [16 + EK_UART_IRQ] = ek_uart_irq_handler,
};
#pragma GCC diagnostic pop

void Reset_Handler(void) {
  ek_crt_init();
  EK_SCB_VTOR = (uint32_t)(uintptr_t)ek_vectors;
  (void)main();
  ek_default_handler();
}
